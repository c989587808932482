//! CPU and memory counters of pods and containers from their cgroups, and the size of
//! containers' writable layers (CRI stats; `podhost top` turns two samples into rates).

use super::LocalRuntime;
use crate::clock::now_nanos;
use crate::{ContainerStats, LayerWalk, Runtime, RuntimeError, SandboxState, SandboxStats};

impl LocalRuntime {
    /// Counters of every ready sandbox and of its containers, with the writable layers
    /// `walk` names.
    pub(super) async fn stats(&self, walk: &LayerWalk) -> Result<Vec<SandboxStats>, RuntimeError> {
        let cg = self.cgroups.clone();
        let mut out = Vec::new();
        for sb in self.list_pod_sandboxes().await? {
            if sb.state != SandboxState::Ready {
                continue;
            }
            let c = &sb.config;
            let pod_cgroup = self.pod_cgroup(&sb.id, c);
            let mut containers = Vec::new();
            let listed = self.list_containers(Some(&sb.id)).await?;
            let walked = match walk {
                LayerWalk::All => true,
                LayerWalk::Sandboxes(ids) => ids.contains(&sb.id),
            };
            // Writable layers are walked on a blocking thread: a container decides how
            // many files its layer holds.
            let uppers: Vec<_> = match walked {
                true => listed.iter().map(|ct| self.upper_dir(&ct.id)).collect(),
                false => Vec::new(),
            };
            let mountpoint = self.config.state_dir.join("containers");
            let layers = tokio::task::spawn_blocking(move || {
                uppers
                    .iter()
                    .map(|u| super::cri_ops::layer_usage(u, mountpoint.clone()))
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
            let mut layers = layers.into_iter();
            for ct in listed {
                let cgroup = self.container_cgroup(&sb.id, c, &ct.id);
                containers.push(ContainerStats {
                    timestamp: now_nanos(),
                    cpu_usage_ns: cg.cpu_usage_ns(&cgroup),
                    memory_working_set: cg.memory_working_set(&cgroup),
                    memory_usage: cg.memory_usage(&cgroup),
                    writable_layer: layers.next().flatten(),
                    state: ct.state,
                    id: ct.id,
                    name: ct.config.name,
                });
            }
            out.push(SandboxStats {
                id: sb.id.clone(),
                name: c.name.clone(),
                namespace: c.namespace.clone(),
                uid: c.uid.clone(),
                timestamp: now_nanos(),
                cpu_usage_ns: cg.cpu_usage_ns(&pod_cgroup),
                memory_working_set: cg.memory_working_set(&pod_cgroup),
                memory_usage: cg.memory_usage(&pod_cgroup),
                containers,
            });
        }
        Ok(out)
    }
}
