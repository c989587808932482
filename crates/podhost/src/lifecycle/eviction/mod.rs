//! kubelet's eviction manager (pkg/kubelet/eviction), for the pods of this daemon.
//!
//! Every tick (10 s, `serve --eviction-interval`), what each running pod uses of the
//! disk is measured: per container its writable layer (the runtime's stats) and its log
//! files, per pod its disk-backed emptyDirs. A pod over an emptyDir's `sizeLimit`, over
//! the sum of its containers' `limits.ephemeral-storage`, or with a container over its
//! own limit is evicted ([`local_storage::verdict`]): its worker gets
//! [`WorkerCmd::Evict`] and kills it at once (grace 0), the pod ends Failed with reason
//! `Evicted`, and is never restarted; its volumes stay until it is deleted.
//!
//! The directories walked are the pods' own, written by hostile containers: the walk
//! ([`podhost_runtime::du`]) follows no symlink, counts allocated blocks and hard links
//! once, is bounded per tree, and runs on a blocking thread, never on the async runtime.

pub mod local_storage;
pub mod rank;
pub mod thresholds;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use podhost_runtime::du::{self, Limits};
use podhost_runtime::{ContainerState, Runtime};

use super::{podspec, PodHandle, PodRecord, WorkerCmd};
use local_storage::PodUsage;

/// The default period between two measurements (kubelet's housekeeping is 10 s).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// Where the pods this manager watches come from (the daemon's live workers).
pub type PodSource = Arc<dyn Fn() -> Vec<PodHandle> + Send + Sync>;

/// What the eviction manager needs to find a pod's files.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `/var/log/pods`.
    pub log_dir: PathBuf,
    /// Root of per-pod volume dirs (`<root>/<uid>`).
    pub volumes_dir: PathBuf,
}

/// The eviction manager: measures and evicts, one tick at a time.
pub struct Manager {
    rt: Arc<dyn Runtime>,
    pods: PodSource,
    paths: Paths,
    /// Ticks completed (tests wait on it; the log shows it nowhere).
    ticks: Arc<AtomicU64>,
}

/// The files one pod's usage is measured from (gathered on the async side, walked on
/// a blocking thread).
struct Measure {
    /// Per container name: its writable layer's bytes (from the runtime) and its log dir.
    containers: Vec<(String, u64, PathBuf)>,
    /// Per disk-backed emptyDir: name and directory.
    volumes: Vec<(String, PathBuf)>,
}

impl Measure {
    fn run(self) -> PodUsage {
        let walk = |dir: &Path| du::usage(dir, Limits::default()).map_or(0, |u| u.bytes);
        PodUsage {
            containers: self
                .containers
                .into_iter()
                .map(|(name, layer, logs)| (name, layer.saturating_add(walk(&logs))))
                .collect(),
            volumes: self
                .volumes
                .into_iter()
                .map(|(name, dir)| {
                    let bytes = walk(&dir);
                    (name, bytes)
                })
                .collect(),
        }
    }
}

impl Manager {
    /// A manager over the pods `pods` lists.
    pub fn new(rt: Arc<dyn Runtime>, pods: PodSource, paths: Paths) -> Self {
        Manager {
            rt,
            pods,
            paths,
            ticks: Arc::default(),
        }
    }

    /// How many ticks have completed, counted as they end.
    pub fn ticks(&self) -> Arc<AtomicU64> {
        self.ticks.clone()
    }

    /// Run a tick every `period` for as long as the daemon runs.
    pub fn spawn(self, period: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            // A slow walk delays the next tick rather than bunching ticks up.
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                self.tick().await;
                self.ticks.fetch_add(1, Ordering::SeqCst);
            }
        })
    }

    /// Measure every running pod once and evict those over a limit; returns how many
    /// were told to go.
    pub async fn tick(&self) -> usize {
        // Writable layers by container id, as the runtime measured them.
        let layers: HashMap<String, u64> = match self.rt.list_pod_sandbox_stats().await {
            Ok(stats) => stats
                .into_iter()
                .flat_map(|s| s.containers)
                .filter_map(|c| Some((c.id, c.writable_layer?.bytes)))
                .collect(),
            Err(e) => {
                tracing::warn!("eviction manager: reading container stats: {e}");
                HashMap::new()
            }
        };
        let mut evicted = 0;
        for h in (self.pods)() {
            let rec = h.snapshot.borrow().clone();
            let Some(measure) = self.measure_of(&rec, &layers) else {
                continue;
            };
            let Ok(usage) = tokio::task::spawn_blocking(move || measure.run()).await else {
                continue;
            };
            if let Some(message) = local_storage::verdict(&rec.pod, &usage) {
                tracing::info!("eviction manager: evicting pod {}: {message}", rec.key());
                // A worker busy with a full queue is told again at the next tick.
                if h.cmd.try_send(WorkerCmd::Evict { message }).is_ok() {
                    evicted += 1;
                }
            }
        }
        evicted
    }

    /// What to measure of `rec`; `None` for a pod that is not running (done, being
    /// deleted, already evicted, no sandbox).
    fn measure_of(&self, rec: &PodRecord, layers: &HashMap<String, u64>) -> Option<Measure> {
        if rec.finished || rec.deleting.is_some() || rec.evicted.is_some() {
            return None;
        }
        rec.sandbox_id.as_ref()?;
        let spec = rec.pod.spec.as_ref()?;
        let logs = podspec::sandbox_config(&rec.pod, 0, &self.paths.log_dir).log_directory;
        let containers = spec
            .containers
            .iter()
            .map(|c| {
                let layer = rec
                    .containers
                    .get(&c.name)
                    .and_then(|t| t.current.as_ref())
                    .filter(|s| s.state != ContainerState::Unknown)
                    .and_then(|s| layers.get(&s.id).copied())
                    .unwrap_or(0);
                (c.name.clone(), layer, logs.join(&c.name))
            })
            .collect();
        let root = self.paths.volumes_dir.join(rec.uid());
        let volumes = spec
            .volumes
            .iter()
            .flatten()
            .filter(|v| {
                // Memory-backed ones are tmpfs sized by their limit, and count as memory.
                v.empty_dir
                    .as_ref()
                    .is_some_and(|e| e.medium.as_deref() != Some("Memory"))
            })
            .map(|v| (v.name.clone(), podspec::empty_dir_path(&root, &v.name)))
            .collect();
        Some(Measure {
            containers,
            volumes,
        })
    }
}
