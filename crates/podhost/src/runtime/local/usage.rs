//! CPU and memory use of pods and containers from their cgroups (`podhost top`).

use std::time::{Duration, Instant};

use super::LocalRuntime;
use crate::runtime::linux::Usage;
use crate::runtime::{ContainerState, Runtime, RuntimeError};

/// How long CPU time is sampled: kubectl top shows a rate, which needs two readings.
const WINDOW: Duration = Duration::from_millis(1000);

/// One cgroup to sample, and what to call it.
struct Target {
    namespace: String,
    pod: String,
    container: String,
    cgroup: String,
}

impl LocalRuntime {
    /// Usage of every running pod (`container` empty) and of its running containers.
    pub async fn usage(&self) -> Result<Vec<Usage>, RuntimeError> {
        let mut targets = Vec::new();
        for sb in self.list_pod_sandboxes().await? {
            let c = &sb.config;
            targets.push(Target {
                namespace: c.namespace.clone(),
                pod: c.name.clone(),
                container: String::new(),
                cgroup: self.pod_cgroup(c),
            });
            for ct in self.list_containers(Some(&sb.id)).await? {
                if ct.state == ContainerState::Running {
                    targets.push(Target {
                        namespace: c.namespace.clone(),
                        pod: c.name.clone(),
                        container: ct.config.name.clone(),
                        cgroup: self.container_cgroup(c, &ct.id),
                    });
                }
            }
        }
        let cg = self.cgroups.clone();
        let first: Vec<Option<u64>> = targets.iter().map(|t| cg.cpu_usage_ns(&t.cgroup)).collect();
        let start = Instant::now();
        tokio::time::sleep(WINDOW).await;
        let elapsed = start.elapsed().as_nanos().max(1) as u64;
        let mut out = Vec::new();
        for (t, before) in targets.into_iter().zip(first) {
            // A cgroup gone meanwhile (container exited) is left out.
            let (Some(before), Some(after)) = (before, cg.cpu_usage_ns(&t.cgroup)) else {
                continue;
            };
            out.push(Usage {
                cpu_millis: after.saturating_sub(before) * 1000 / elapsed,
                memory_bytes: cg.memory_working_set(&t.cgroup).unwrap_or(0),
                namespace: t.namespace,
                pod: t.pod,
                container: t.container,
            });
        }
        Ok(out)
    }
}
