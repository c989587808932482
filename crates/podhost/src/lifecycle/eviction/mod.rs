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
pub mod node;
pub mod rank;
pub mod thresholds;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use tokio::sync::watch;

use podhost_runtime::du::{self, Limits};
use podhost_runtime::{ContainerState, LayerWalk, Runtime, SandboxStats};

use super::{podspec, PodHandle, PodRecord, WorkerCmd};
use local_storage::PodUsage;
use node::{Capacity, NodeConfig, Observation};
use rank::Candidate;
use thresholds::Signal;

/// A Pod from YAML without its `apiVersion` and `kind` lines (unit tests).
#[cfg(test)]
pub(crate) fn test_pod(yaml: &str) -> k8s_openapi::api::core::v1::Pod {
    let text = format!("apiVersion: v1\nkind: Pod\n{yaml}");
    match podhost_api::parse_manifests(&text, "t.yaml")
        .expect("pod")
        .remove(0)
    {
        podhost_api::Manifest::Pod(p) => *p,
        _ => panic!("not a pod"),
    }
}

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
    /// Node pressure: thresholds, reservations, and where the node object is published.
    node: Option<NodeWatch>,
    /// The pod last evicted for node pressure and when: no other is evicted for pressure
    /// until it is cleaned up (kubelet's waitForPodsCleanup), or for 30 s at the most;
    /// what it frees shows only then, and would otherwise cost a second pod.
    cleaning: std::sync::Mutex<Option<(PodHandle, tokio::time::Instant)>>,
}

/// kubelet's podCleanupTimeout.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The node part of the manager.
struct NodeWatch {
    cfg: NodeConfig,
    capacity: Capacity,
    tx: watch::Sender<Node>,
    /// The machine's cgroups: the allocatable cgroup's working set is read there.
    cgroups: podhost_runtime::cgroups::Cgroups,
}

/// One pod as a tick saw it.
struct Seen {
    handle: PodHandle,
    rec: PodRecord,
    disk: PodUsage,
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
                .map(|(name, dir)| (name, walk(&dir)))
                .collect(),
        }
    }
}

/// Whether the eviction manager looks at `rec`: not done, being deleted or already
/// evicted, with a sandbox and a spec.
fn running(rec: &PodRecord) -> bool {
    !rec.finished
        && rec.deleting.is_none()
        && rec.evicted.is_none()
        && rec.sandbox_id.is_some()
        && rec.pod.spec.is_some()
}

/// Tell `h`'s worker to evict its pod; false when its queue is full (told again at the
/// next tick).
fn evict(h: &PodHandle, rec: &PodRecord, message: String) -> bool {
    tracing::info!("eviction manager: evicting pod {}: {message}", rec.key());
    h.cmd.try_send(WorkerCmd::Evict { message }).is_ok()
}

impl NodeWatch {
    /// Publish the node object with `pressure`.
    fn publish(&self, pressure: &[Signal]) {
        let alloc = node::allocatable(&self.cfg, &self.capacity);
        let now = crate::timefmt::k8s_time(crate::timefmt::now_nanos()).0;
        let prev = self.tx.borrow().clone();
        self.tx.send_replace(node::node_object(
            &prev,
            &self.capacity,
            &alloc,
            pressure,
            now,
        ));
    }

    /// Whether the pods' memory is read from their parent cgroup (else summed from the
    /// pods' stats).
    fn reads_pods_memory(&self) -> bool {
        self.cgroups
            .memory_working_set(&self.cfg.cgroup_parent)
            .is_some()
    }

    /// Measure the node's signals, publish the conditions; the thresholds met, most
    /// urgent first (memory, then disk), with what is available.
    fn observe(&self, stats: &[SandboxStats]) -> Vec<(thresholds::Threshold, u64)> {
        let cap = &self.capacity;
        let mut obs = Vec::new();
        if let Some(a) = node::node_memory_available() {
            obs.push(Observation {
                signal: Signal::MemoryAvailable,
                available: a,
                capacity: cap.memory,
            });
        }
        // allocatableMemory.available: the pods' cgroup limit minus its working set
        // (what evicted pods left charged there included), or the pods' sum.
        let limit = node::pods_memory_limit(&self.cfg, cap);
        let used: u64 = self
            .cgroups
            .memory_working_set(&self.cfg.cgroup_parent)
            .unwrap_or_else(|| {
                stats
                    .iter()
                    .filter_map(|s| s.memory_working_set)
                    .fold(0, u64::saturating_add)
            });
        obs.push(Observation {
            signal: Signal::MemoryAvailable,
            available: limit.saturating_sub(used),
            capacity: limit,
        });
        if let Some((total, avail)) = node::fs_space(&self.cfg.root_dir) {
            obs.push(Observation {
                signal: Signal::NodeFsAvailable,
                available: avail,
                capacity: total,
            });
        }
        if let Some((total, free)) = node::fs_inodes(&self.cfg.root_dir) {
            obs.push(Observation {
                signal: Signal::NodeFsInodesFree,
                available: free,
                capacity: total,
            });
        }
        obs.push(Observation {
            signal: Signal::PidAvailable,
            available: cap.pids.saturating_sub(node::processes()),
            capacity: cap.pids,
        });
        let mut met: Vec<(thresholds::Threshold, Observation)> =
            node::met(&self.cfg.thresholds, &obs)
                .into_iter()
                .map(|(t, o)| (t.clone(), o))
                .collect();
        met.sort_by_key(|(t, _)| t.signal);
        let pressure: Vec<Signal> = met.iter().map(|(t, _)| t.signal).collect();
        self.publish(&pressure);
        met.into_iter().map(|(t, o)| (t, o.available)).collect()
    }

    /// Evict the first pod in kubelet's order for `threshold`'s resource; its handle
    /// when one was told to go.
    fn evict_one(
        &self,
        threshold: &thresholds::Threshold,
        available: u64,
        seen: &[Seen],
        stats: &[SandboxStats],
    ) -> Option<PodHandle> {
        let signal = threshold.signal;
        let resource = match signal {
            Signal::MemoryAvailable => "memory",
            Signal::NodeFsAvailable | Signal::NodeFsInodesFree => "ephemeral-storage",
            // kubelet ranks by process count; podhost does not count them per pod yet.
            Signal::PidAvailable => return None,
        };
        let pod_stats = |rec: &PodRecord| stats.iter().find(|s| s.uid == rec.uid());
        // Per pod: (usage, per container (name, usage, request)).
        let usage_of = |s: &Seen| -> (u64, Vec<(String, u64, u64)>) {
            let spec = s.rec.pod.spec.clone().unwrap_or_default();
            let request = |name: &str| {
                spec.containers
                    .iter()
                    .find(|c| c.name == name)
                    .and_then(|c| {
                        c.resources
                            .as_ref()?
                            .requests
                            .as_ref()?
                            .get(resource)
                            .cloned()
                    })
                    .and_then(|q| podhost_api::quantity::parse_bytes(&q.0).ok())
                    .and_then(|v| u64::try_from(v).ok())
                    .unwrap_or(0)
            };
            if resource == "memory" {
                let ps = pod_stats(&s.rec);
                let total = ps.and_then(|p| p.memory_working_set).unwrap_or(0);
                let per = ps
                    .map(|p| {
                        p.containers
                            .iter()
                            .filter(|c| c.state == ContainerState::Running)
                            .map(|c| {
                                let u = c.memory_working_set.unwrap_or(0);
                                (c.name.clone(), u, request(&c.name))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                (total, per)
            } else {
                let per = s
                    .disk
                    .containers
                    .iter()
                    .map(|(n, u)| (n.clone(), *u, request(n)))
                    .collect();
                (s.disk.total(), per)
            }
        };
        let candidates: Vec<Candidate> = seen
            .iter()
            .map(|s| {
                let (usage, _) = usage_of(s);
                Candidate {
                    key: s.rec.key(),
                    usage,
                    request: rank::pod_request(&s.rec.pod, resource),
                    priority: s
                        .rec
                        .pod
                        .spec
                        .as_ref()
                        .and_then(|p| p.priority)
                        .unwrap_or(0),
                }
            })
            .collect();
        let mut order = candidates.clone();
        rank::rank(&mut order);
        let i = order
            .first()
            .and_then(|first| candidates.iter().position(|c| c.key == first.key))?;
        let s = &seen[i];
        let (_, per) = usage_of(s);
        let capacity = match signal {
            Signal::MemoryAvailable => node::pods_memory_limit(&self.cfg, &self.capacity),
            _ => self.capacity.ephemeral_storage,
        };
        let message = rank::pressure_message(resource, &threshold.shown(capacity), available, &per);
        evict(&s.handle, &s.rec, message).then(|| s.handle.clone())
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
            node: None,
            cleaning: std::sync::Mutex::new(None),
        }
    }

    /// Also watch the node: evict under memory or disk pressure as kubelet ranks pods,
    /// and publish the node object (capacity, allocatable, conditions) on `tx`.
    pub fn with_node(mut self, cfg: NodeConfig, tx: watch::Sender<Node>) -> Self {
        let capacity = Capacity::detect(&cfg.root_dir);
        let w = NodeWatch {
            cfg,
            capacity,
            tx,
            cgroups: podhost_runtime::cgroups::Cgroups::detect(),
        };
        w.publish(&[]);
        self.node = Some(w);
        self
    }

    fn lock_cleaning(
        &self,
    ) -> std::sync::MutexGuard<'_, Option<(PodHandle, tokio::time::Instant)>> {
        self.cleaning.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pod last evicted for pressure is not cleaned up yet (killed, its sandbox and
    /// memory volumes gone), and has had less than [`CLEANUP_TIMEOUT`].
    fn still_cleaning(&self) -> bool {
        let mut cleaning = self.lock_cleaning();
        let busy = cleaning.as_ref().is_some_and(|(h, since)| {
            let rec = h.snapshot.borrow();
            // A worker that ended (the pod deleted meanwhile) cleaned up too.
            !rec.finished && !h.cmd.is_closed() && since.elapsed() < CLEANUP_TIMEOUT
        });
        if !busy {
            *cleaning = None;
        }
        busy
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

    /// Measure every running pod that has a local-storage limit and evict those over
    /// it, then, when the node is watched, evict one pod if a node threshold is met;
    /// returns how many pods were told to go. A pod without such a limit is walked only
    /// while the node is short of disk, to rank it: walking every pod's files at each
    /// tick cost an idle daemon more than all else (3 % of a core at 500 pods), and the
    /// pods' counters are read only when needed (another 2 %).
    pub async fn tick(&self) -> usize {
        // Records are cloned below only for the pods this tick looks at: cloning every
        // pod's record (events included) each tick was most of an idle tick's cost.
        let handles: Vec<PodHandle> = (self.pods)();
        let limited: HashSet<String> = handles
            .iter()
            .filter_map(|h| {
                let r = h.snapshot.borrow();
                local_storage::has_limits(&r.pod)
                    .then(|| r.sandbox_id.clone())
                    .flatten()
            })
            .collect();
        // The pods' counters (a few cgroup files per container) are read when something
        // needs them: the limited pods' layers, the node's memory when its pods' cgroup
        // cannot be read, a threshold met (to rank the pods).
        let limited_walk = LayerWalk::Sandboxes(limited.clone());
        let node_needs_stats = self.node.as_ref().is_some_and(|n| !n.reads_pods_memory());
        let read_now = !limited.is_empty() || node_needs_stats;
        let mut stats = match read_now {
            true => self.stats(&limited_walk).await,
            false => Vec::new(),
        };
        let met = self
            .node
            .as_ref()
            .map(|n| n.observe(&stats))
            .unwrap_or_default();
        let short_of_disk = met
            .iter()
            .any(|(t, _)| matches!(t.signal, Signal::NodeFsAvailable | Signal::NodeFsInodesFree));
        if short_of_disk && limited.len() < handles.len() {
            stats = self.stats(&LayerWalk::All).await;
        } else if !met.is_empty() && !read_now {
            stats = self.stats(&limited_walk).await;
        }
        // Writable layers by container id, as the runtime measured them.
        let layers: HashMap<String, u64> = stats
            .iter()
            .flat_map(|s| &s.containers)
            .filter_map(|c| Some((c.id.clone(), c.writable_layer.as_ref()?.bytes)))
            .collect();
        let mut evicted = 0;
        let mut seen = Vec::new();
        // Without a node threshold met, only the walked pods can be evicted (by their
        // own limits) and none needs ranking.
        let rank = !met.is_empty();
        for h in handles {
            let (rec, walk) = {
                let r = h.snapshot.borrow();
                let walk =
                    short_of_disk || r.sandbox_id.as_ref().is_some_and(|id| limited.contains(id));
                if !running(&r) || !(walk || rank) {
                    continue;
                }
                (r.clone(), walk)
            };
            let usage = match walk.then(|| self.measure_of(&rec, &layers)).flatten() {
                Some(measure) => match tokio::task::spawn_blocking(move || measure.run()).await {
                    Ok(usage) => usage,
                    Err(_) => continue,
                },
                None => PodUsage::default(),
            };
            if let Some(message) = local_storage::verdict(&rec.pod, &usage) {
                if evict(&h, &rec, message) {
                    evicted += 1;
                }
                continue;
            }
            seen.push(Seen {
                handle: h,
                rec,
                disk: usage,
            });
        }
        if let Some(node) = &self.node {
            // One pod per tick, as kubelet, once the last one is cleaned up.
            if evicted == 0 && !self.still_cleaning() {
                if let Some((threshold, available)) = met.first() {
                    if let Some(h) = node.evict_one(threshold, *available, &seen, &stats) {
                        evicted += 1;
                        *self.lock_cleaning() = Some((h, tokio::time::Instant::now()));
                    }
                }
            }
        }
        evicted
    }

    /// The runtime's pod stats with the writable layers `walk` names (none on error).
    async fn stats(&self, walk: &LayerWalk) -> Vec<SandboxStats> {
        match self.rt.pod_sandbox_stats_walking(walk).await {
            Ok(stats) => stats,
            Err(e) => {
                tracing::warn!("eviction manager: reading pod stats: {e}");
                Vec::new()
            }
        }
    }

    /// What to measure of a [`running`] `rec`; `None` without a spec.
    fn measure_of(&self, rec: &PodRecord, layers: &HashMap<String, u64>) -> Option<Measure> {
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
