//! The node as kubelet reports and protects it: capacity, allocatable (capacity minus
//! `--system-reserved`, `--kube-reserved` and the hard eviction thresholds), the
//! observations of its eviction signals and the conditions they set
//! (MemoryPressure, DiskPressure, PIDPressure, Ready).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeCondition, NodeStatus, NodeSystemInfo};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::local_storage::quantity;
use super::thresholds::{Reserved, Signal, Threshold};

/// kubelet's default `--max-pods`.
pub const MAX_PODS: u64 = 110;

/// What the node protects and how (the `serve` flags).
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// `--eviction-hard`.
    pub thresholds: Vec<Threshold>,
    /// `--system-reserved`.
    pub system_reserved: Reserved,
    /// `--kube-reserved`.
    pub kube_reserved: Reserved,
    /// The daemon's root directory: its filesystem is `nodefs`.
    pub root_dir: PathBuf,
    /// The node allocatable cgroup (the cgroup parent of every pod).
    pub cgroup_parent: String,
}

/// What the node has, in base units (milli-CPU for cpu).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capacity {
    /// Milli-CPUs online.
    pub cpu_milli: u64,
    /// Bytes of memory.
    pub memory: u64,
    /// Bytes of the root directory's filesystem.
    pub ephemeral_storage: u64,
    /// kernel.pid_max.
    pub pids: u64,
}

impl Capacity {
    /// This machine's.
    pub fn detect(root_dir: &Path) -> Capacity {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
        let (fs_total, _) = fs_space(root_dir).unwrap_or((0, 0));
        Capacity {
            cpu_milli: cpus * 1000,
            memory: meminfo("MemTotal").unwrap_or(0),
            ephemeral_storage: fs_total,
            pids: std::fs::read_to_string("/proc/sys/kernel/pid_max")
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(32768),
        }
    }
}

/// Defaults that leave the host and the daemon room when no reservation is given:
/// system-reserved memory is a tenth of the memory (at most 1Gi), kube-reserved 256Mi
/// (at most a tenth). kubelet reserves nothing by default; a node without a reservation
/// lets pods take the memory sshd and the daemon need.
pub fn default_reserved(capacity: &Capacity) -> (Reserved, Reserved) {
    let tenth = capacity.memory / 10;
    let system = Reserved::from([("memory".to_string(), tenth.min(1 << 30))]);
    let kube = Reserved::from([("memory".to_string(), tenth.min(256 << 20))]);
    (system, kube)
}

fn reserved(cfg: &NodeConfig, resource: &str) -> u64 {
    cfg.system_reserved
        .get(resource)
        .copied()
        .unwrap_or(0)
        .saturating_add(cfg.kube_reserved.get(resource).copied().unwrap_or(0))
}

/// The memory limit of the node allocatable cgroup: capacity minus the reservations
/// (kubelet's `--enforce-node-allocatable=pods`; the eviction threshold is left inside,
/// so that eviction acts before the cgroup's OOM killer does).
pub fn pods_memory_limit(cfg: &NodeConfig, capacity: &Capacity) -> u64 {
    capacity.memory.saturating_sub(reserved(cfg, "memory"))
}

fn threshold_of(cfg: &NodeConfig, signal: Signal, capacity: u64) -> u64 {
    cfg.thresholds
        .iter()
        .find(|t| t.signal == signal)
        .map_or(0, |t| t.floor(capacity))
}

/// Allocatable, as kubelet computes it: capacity minus reservations minus the hard
/// eviction thresholds.
pub fn allocatable(cfg: &NodeConfig, c: &Capacity) -> Capacity {
    Capacity {
        cpu_milli: c.cpu_milli.saturating_sub(reserved(cfg, "cpu")),
        memory: c
            .memory
            .saturating_sub(reserved(cfg, "memory"))
            .saturating_sub(threshold_of(cfg, Signal::MemoryAvailable, c.memory)),
        ephemeral_storage: c
            .ephemeral_storage
            .saturating_sub(reserved(cfg, "ephemeral-storage"))
            .saturating_sub(threshold_of(
                cfg,
                Signal::NodeFsAvailable,
                c.ephemeral_storage,
            )),
        pids: c.pids.saturating_sub(reserved(cfg, "pid")),
    }
}

/// One measurement of an eviction signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// Which.
    pub signal: Signal,
    /// What is left.
    pub available: u64,
    /// Of how much (percent thresholds are taken of it).
    pub capacity: u64,
}

/// The thresholds `obs` breaks, with the observation that breaks each, in the order of
/// `thresholds`.
pub fn met<'a>(
    thresholds: &'a [Threshold],
    obs: &[Observation],
) -> Vec<(&'a Threshold, Observation)> {
    thresholds
        .iter()
        .filter_map(|t| {
            // The scarcest observation of the signal (node and allocatable memory).
            obs.iter()
                .filter(|o| o.signal == t.signal && o.available < t.floor(o.capacity))
                .min_by_key(|o| o.available)
                .map(|o| (t, *o))
        })
        .collect()
}

/// A value from /proc/meminfo, bytes.
pub fn meminfo(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    })
}

/// The node's memory not in its working set: free memory plus the inactive file cache
/// (what kubelet's `capacity − (usage − inactive_file)` of the root cgroup comes to).
pub fn node_memory_available() -> Option<u64> {
    Some(meminfo("MemFree")?.saturating_add(meminfo("Inactive(file)").unwrap_or(0)))
}

/// (total, available to unprivileged users) bytes of the filesystem holding `dir`.
pub fn fs_space(dir: &Path) -> Option<(u64, u64)> {
    let st = nix::sys::statvfs::statvfs(dir).ok()?;
    let frag = st.fragment_size();
    Some((st.blocks() * frag, st.blocks_available() * frag))
}

/// (total, free) inodes of the filesystem holding `dir`.
pub fn fs_inodes(dir: &Path) -> Option<(u64, u64)> {
    let st = nix::sys::statvfs::statvfs(dir).ok()?;
    Some((st.files(), st.files_available()))
}

/// Processes running on the node (entries of /proc that are pids).
pub fn processes() -> u64 {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .count() as u64
}

/// kubelet's words for each condition: (type, reason when true, message when true,
/// reason when false, message when false).
const CONDITIONS: [(Signal, &str, &str, &str, &str, &str); 3] = [
    (
        Signal::MemoryAvailable,
        "MemoryPressure",
        "KubeletHasInsufficientMemory",
        "kubelet has insufficient memory available",
        "KubeletHasSufficientMemory",
        "kubelet has sufficient memory available",
    ),
    (
        Signal::NodeFsAvailable,
        "DiskPressure",
        "KubeletHasDiskPressure",
        "kubelet has disk pressure",
        "KubeletHasNoDiskPressure",
        "kubelet has no disk pressure",
    ),
    (
        Signal::PidAvailable,
        "PIDPressure",
        "KubeletHasInsufficientPID",
        "kubelet has insufficient PID available",
        "KubeletHasSufficientPID",
        "kubelet has sufficient PID available",
    ),
];

/// The node object: `prev` (for transition times) updated with what was observed.
pub fn node_object(
    prev: &Node,
    capacity: &Capacity,
    allocatable: &Capacity,
    pressure: &[Signal],
    now: k8s_openapi::jiff::Timestamp,
) -> Node {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    let old = |kind: &str| -> Option<NodeCondition> {
        prev.status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == kind)
            .cloned()
    };
    let cond = |kind: &str, on: bool, reason: &str, message: &str| -> NodeCondition {
        let status = if on { "True" } else { "False" };
        let since = old(kind)
            .filter(|c| c.status == status)
            .and_then(|c| c.last_transition_time)
            .unwrap_or(Time(now));
        NodeCondition {
            type_: kind.to_string(),
            status: status.to_string(),
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            last_heartbeat_time: Some(Time(now)),
            last_transition_time: Some(since),
        }
    };
    let mut conditions: Vec<NodeCondition> = CONDITIONS
        .iter()
        .map(|(signal, kind, r_on, m_on, r_off, m_off)| {
            let on = pressure.contains(signal)
                || (*signal == Signal::NodeFsAvailable
                    && pressure.contains(&Signal::NodeFsInodesFree));
            if on {
                cond(kind, true, r_on, m_on)
            } else {
                cond(kind, false, r_off, m_off)
            }
        })
        .collect();
    conditions.push(cond(
        "Ready",
        true,
        "KubeletReady",
        "kubelet is posting ready status",
    ));
    let resources = |c: &Capacity| -> BTreeMap<String, Quantity> {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu(c.cpu_milli))),
            (
                "ephemeral-storage".to_string(),
                Quantity(quantity(c.ephemeral_storage)),
            ),
            ("memory".to_string(), Quantity(quantity(c.memory))),
            ("pods".to_string(), Quantity(MAX_PODS.to_string())),
        ])
    };
    let name = hostname();
    let created = prev
        .metadata
        .creation_timestamp
        .clone()
        .unwrap_or(Time(now));
    Node {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            creation_timestamp: Some(created),
            labels: Some(BTreeMap::from([
                (
                    "kubernetes.io/arch".to_string(),
                    std::env::consts::ARCH
                        .replace("x86_64", "amd64")
                        .replace("aarch64", "arm64"),
                ),
                ("kubernetes.io/hostname".to_string(), name.clone()),
                ("kubernetes.io/os".to_string(), "linux".to_string()),
            ])),
            ..Default::default()
        },
        spec: None,
        status: Some(NodeStatus {
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: super::super::env::node_ip().to_string(),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: name,
                },
            ]),
            capacity: Some(resources(capacity)),
            allocatable: Some(resources(allocatable)),
            conditions: Some(conditions),
            node_info: Some(NodeSystemInfo {
                architecture: std::env::consts::ARCH.to_string(),
                container_runtime_version: format!("podhost://{}", env!("CARGO_PKG_VERSION")),
                kernel_version: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default(),
                kubelet_version: format!("podhost-{}", env!("CARGO_PKG_VERSION")),
                operating_system: "linux".into(),
                os_image: os_image(),
                machine_id: std::fs::read_to_string("/etc/machine-id")
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default(),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// milli-CPUs as Kubernetes prints them: whole CPUs when whole.
fn cpu(milli: u64) -> String {
    if milli.is_multiple_of(1000) {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

fn os_image() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Linux".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::eviction::thresholds::{parse_reserved, parse_thresholds};

    const GI: u64 = 1 << 30;

    fn cfg() -> NodeConfig {
        NodeConfig {
            thresholds: parse_thresholds("memory.available<100Mi,nodefs.available<10%").unwrap(),
            system_reserved: parse_reserved("memory=1Gi,cpu=500m").unwrap(),
            kube_reserved: parse_reserved("memory=512Mi").unwrap(),
            root_dir: PathBuf::from("/"),
            cgroup_parent: "podhost".into(),
        }
    }

    #[test]
    fn allocatable_is_capacity_minus_reserves_and_thresholds() {
        let c = Capacity {
            cpu_milli: 2000,
            memory: 8 * GI,
            ephemeral_storage: 100 * GI,
            pids: 4_194_304,
        };
        let a = allocatable(&cfg(), &c);
        assert_eq!(a.cpu_milli, 1500);
        assert_eq!(a.memory, 8 * GI - GI - (512 << 20) - (100 << 20));
        assert_eq!(a.ephemeral_storage, 90 * GI);
        // The cgroup keeps the threshold: eviction acts before its OOM killer.
        assert_eq!(pods_memory_limit(&cfg(), &c), 8 * GI - GI - (512 << 20));
        let (sys, kube) = default_reserved(&c);
        assert_eq!(sys["memory"], 8 * GI / 10);
        assert_eq!(kube["memory"], 256 << 20);
    }

    #[test]
    fn thresholds_met_take_the_scarcest_observation() {
        let t = cfg().thresholds;
        let obs = [
            Observation {
                signal: Signal::MemoryAvailable,
                available: 4 * GI,
                capacity: 8 * GI,
            },
            Observation {
                signal: Signal::MemoryAvailable,
                available: 50 << 20,
                capacity: 300 << 20,
            },
            Observation {
                signal: Signal::NodeFsAvailable,
                available: 11 * GI,
                capacity: 100 * GI,
            },
        ];
        let m = met(&t, &obs);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].0.signal, Signal::MemoryAvailable);
        assert_eq!(m[0].1.available, 50 << 20);
        let ok = [Observation {
            signal: Signal::NodeFsAvailable,
            available: 10 * GI,
            capacity: 100 * GI,
        }];
        assert!(met(&t, &ok).is_empty(), "at the threshold is not below it");
    }

    #[test]
    fn conditions_keep_their_transition_time() {
        let c = Capacity::default();
        let t0 = k8s_openapi::jiff::Timestamp::from_second(1000).unwrap();
        let t1 = k8s_openapi::jiff::Timestamp::from_second(2000).unwrap();
        let n0 = node_object(&Node::default(), &c, &c, &[], t0);
        let n1 = node_object(&n0, &c, &c, &[Signal::MemoryAvailable], t1);
        let conds = n1.status.unwrap().conditions.unwrap();
        let get = |k: &str| conds.iter().find(|c| c.type_ == k).unwrap().clone();
        assert_eq!(get("MemoryPressure").status, "True");
        assert_eq!(
            get("MemoryPressure").reason.as_deref(),
            Some("KubeletHasInsufficientMemory")
        );
        assert_eq!(get("MemoryPressure").last_transition_time.unwrap().0, t1);
        assert_eq!(get("DiskPressure").status, "False");
        assert_eq!(get("DiskPressure").last_transition_time.unwrap().0, t0);
        assert_eq!(get("DiskPressure").last_heartbeat_time.unwrap().0, t1);
        assert_eq!(get("Ready").status, "True");
        assert_eq!(
            get("PIDPressure").reason.as_deref(),
            Some("KubeletHasSufficientPID")
        );
    }
}
