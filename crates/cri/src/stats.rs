//! ContainerStats, ListContainerStats, PodSandboxStats, ListPodSandboxStats: cumulative
//! CPU time and memory from the cgroups (the kubelet derives rates from two samples), the
//! writable layer's size, of CRI's ready sandboxes and every container in them.

use std::collections::HashMap;

use podhost_cri_api::*;
use podhost_runtime::{ContainerConfig, SandboxConfig, SandboxStats};
use tonic::Status;

use crate::{convert, error, filter, Cri};

/// One sample of CRI's ready sandboxes with the configs their stats are labelled with.
struct Sample {
    stats: Vec<SandboxStats>,
    sandboxes: HashMap<String, SandboxConfig>,
    containers: HashMap<String, ContainerConfig>,
}

/// Only ready sandboxes have stats.
fn not_ready(what: &str, id: &str) -> Status {
    Status::not_found(format!(
        "no stats for {what} {id}: its sandbox is not ready"
    ))
}

impl Cri {
    async fn sample(&self) -> Result<Sample, Status> {
        let stats = self
            .runtime
            .list_pod_sandbox_stats()
            .await
            .map_err(error::status)?;
        let sandboxes = self
            .runtime
            .list_pod_sandboxes()
            .await
            .map_err(error::status)?
            .into_iter()
            .map(|s| (s.id, s.config))
            .collect();
        let containers = self
            .runtime
            .list_containers(None)
            .await
            .map_err(error::status)?
            .into_iter()
            .map(|c| (c.id, c.config))
            .collect();
        Ok(Sample {
            stats,
            sandboxes,
            containers,
        })
    }

    pub(crate) async fn container_stats(
        &self,
        req: ContainerStatsRequest,
    ) -> Result<ContainerStatsResponse, Status> {
        let id = self.container_id(&req.container_id).await?;
        let sample = self.sample().await?;
        let found = sample
            .stats
            .iter()
            .flat_map(|s| &s.containers)
            .find(|c| c.id == id)
            .and_then(|c| {
                sample
                    .containers
                    .get(&id)
                    .map(|cfg| convert::container_stats(c, cfg))
            });
        Ok(ContainerStatsResponse {
            stats: Some(found.ok_or_else(|| not_ready("container", &id))?),
        })
    }

    pub(crate) async fn list_container_stats(
        &self,
        req: ListContainerStatsRequest,
    ) -> Result<ListContainerStatsResponse, Status> {
        let f = req.filter.unwrap_or_default();
        let sample = self.sample().await?;
        let mut stats = Vec::new();
        for s in &sample.stats {
            for c in &s.containers {
                let Some(cfg) = sample.containers.get(&c.id) else {
                    continue;
                };
                if filter::container_stats(&f, &s.id, c, &cfg.labels) {
                    stats.push(convert::container_stats(c, cfg));
                }
            }
        }
        Ok(ListContainerStatsResponse { stats })
    }

    pub(crate) async fn pod_sandbox_stats(
        &self,
        req: PodSandboxStatsRequest,
    ) -> Result<PodSandboxStatsResponse, Status> {
        let id = self.sandbox_id(&req.pod_sandbox_id).await?;
        let sample = self.sample().await?;
        let found = sample.stats.iter().find(|s| s.id == id).and_then(|s| {
            let cfg = sample.sandboxes.get(&id)?;
            Some(convert::sandbox_stats(s, cfg, &sample.containers))
        });
        Ok(PodSandboxStatsResponse {
            stats: Some(found.ok_or_else(|| not_ready("sandbox", &id))?),
        })
    }

    pub(crate) async fn list_pod_sandbox_stats(
        &self,
        req: ListPodSandboxStatsRequest,
    ) -> Result<ListPodSandboxStatsResponse, Status> {
        let f = req.filter.unwrap_or_default();
        let sample = self.sample().await?;
        let stats = sample
            .stats
            .iter()
            .filter_map(|s| {
                let cfg = sample.sandboxes.get(&s.id)?;
                filter::sandbox_stats(&f, &s.id, &cfg.labels)
                    .then(|| convert::sandbox_stats(s, cfg, &sample.containers))
            })
            .collect();
        Ok(ListPodSandboxStatsResponse { stats })
    }
}
