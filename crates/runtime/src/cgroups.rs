//! Pod cgroups, the same way on cgroups v1 and v2: kubelet's layout
//! `<parent>/[burstable|besteffort/]pod<uid>/{pause,<container>}`, the pod-level limits
//! (sums over the containers), and what is read back from cgroup files: OOM kills of a
//! container and CPU/memory use for `podhost top`.
//!
//! Container cgroups themselves are created and limited by libcontainer from the OCI
//! spec; this module owns the levels above them and the pause's leaf. The pause gets a
//! leaf of its own because v2 forbids processes in a cgroup whose children have
//! controllers enabled ("no internal processes"); doing the same on v1 keeps one code path.
//! The root is a parameter so that both versions are tested against fixture files.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::linux::ContainerResources;

/// Controllers podhost limits or reads (v1 hierarchies; v2 enables them on the path).
const CONTROLLERS: [&str; 4] = ["memory", "cpu", "cpuacct", "pids"];

/// Name of the pause's leaf cgroup inside the pod cgroup.
pub const PAUSE_CGROUP: &str = "pause";

/// Which cgroup hierarchy the machine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// One hierarchy per controller under `<root>/<controller>` (legacy or hybrid).
    V1,
    /// The unified hierarchy at `<root>`.
    V2,
}

/// Failures of cgroup file operations, with the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Creating a cgroup directory failed.
    #[error("creating cgroup {path}: {source}")]
    Create {
        /// The directory.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Writing a limit or a pid failed.
    #[error("writing {value:?} to {path}: {source}")]
    Write {
        /// The cgroup file.
        path: PathBuf,
        /// What was written.
        value: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// The cgroup filesystem of this machine (or a fixture of it).
#[derive(Debug, Clone)]
pub struct Cgroups {
    root: PathBuf,
    version: Version,
}

/// Relative path of a pod's cgroup: Guaranteed pods sit right under the parent, the
/// others under a per-QoS directory, like kubelet's `kubepods[/burstable]/pod<uid>`.
pub fn pod_cgroup(parent: &str, qos_class: &str, pod_uid: &str) -> String {
    let parent = parent.trim_matches('/');
    match qos_dir(qos_class) {
        Some(q) => format!("{parent}/{q}/pod{pod_uid}"),
        None => format!("{parent}/pod{pod_uid}"),
    }
}

fn qos_dir(qos_class: &str) -> Option<&'static str> {
    match qos_class {
        "Burstable" => Some("burstable"),
        "BestEffort" => Some("besteffort"),
        _ => None,
    }
}

// v1 cpu.shares → v2 cpu.weight of the pod and QoS levels: the same conversion as
// libcontainer's for container cgroups (runc ≥ 1.3, current kubelet), so both agree.
use podhost_oci::cgroup::shares_to_weight;

impl Cgroups {
    /// The machine's cgroups at /sys/fs/cgroup: v2 when the unified hierarchy is mounted
    /// there (it has `cgroup.controllers`), v1 otherwise (legacy and hybrid).
    pub fn detect() -> Cgroups {
        let root = PathBuf::from("/sys/fs/cgroup");
        let version = if root.join("cgroup.controllers").exists() {
            Version::V2
        } else {
            Version::V1
        };
        Cgroups { root, version }
    }

    /// Cgroups rooted elsewhere (fixtures in tests).
    pub fn with_root(root: impl Into<PathBuf>, version: Version) -> Cgroups {
        Cgroups {
            root: root.into(),
            version,
        }
    }

    /// The hierarchy version.
    pub fn version(&self) -> Version {
        self.version
    }

    fn dir(&self, controller: &str, rel: &str) -> PathBuf {
        let rel = rel.trim_matches('/');
        match self.version {
            Version::V1 => self.root.join(controller).join(rel),
            Version::V2 => self.root.join(rel),
        }
    }

    /// Create the pod cgroup (and its QoS level and pause leaf) with the pod's limits.
    pub fn create_pod(
        &self,
        parent: &str,
        qos_class: &str,
        pod_uid: &str,
        res: &ContainerResources,
        pids_limit: Option<i64>,
    ) -> Result<(), CgroupError> {
        let pod = pod_cgroup(parent, qos_class, pod_uid);
        let qos = qos_dir(qos_class).map(|q| format!("{}/{q}", parent.trim_matches('/')));
        self.make_with_pause_leaf(&pod)?;
        // kubelet gives BestEffort pods, together, the smallest CPU weight.
        if qos_class == "BestEffort" {
            if let Some(q) = &qos {
                self.write_cpu_shares(q, 2)?;
            }
        }
        self.set_limits(&pod, res)?;
        if let Some(limit) = pids_limit {
            write(&self.dir("pids", &pod).join("pids.max"), &limit.to_string())?;
        }
        Ok(())
    }

    /// The node allocatable cgroup (kubelet's `kubepods` with
    /// `--enforce-node-allocatable=pods`): `parent`, holding every pod, limited to
    /// `memory` bytes, so that pods together cannot take what is reserved for the host
    /// and the daemon. On v2 the controllers are enabled down to it.
    pub fn limit_node(&self, parent: &str, memory: u64) -> Result<(), CgroupError> {
        let parent = parent.trim_matches('/');
        match self.version {
            Version::V1 => mkdir_all(&self.dir("memory", parent))?,
            Version::V2 => {
                mkdir_all(&self.dir("", parent))?;
                let mut cur = self.root.clone();
                for part in parent.split('/') {
                    let _ = write(&cur.join("cgroup.subtree_control"), "+cpu +memory +pids");
                    cur = cur.join(part);
                }
            }
        }
        let limit = i64::try_from(memory).unwrap_or(i64::MAX);
        self.set_limits(
            parent,
            &ContainerResources {
                memory_limit: Some(limit),
                ..Default::default()
            },
        )
    }

    /// Memory limit of cgroup `rel` (None: unlimited or unreadable).
    pub fn memory_limit(&self, rel: &str) -> Option<u64> {
        let file = match self.version {
            Version::V1 => "memory.limit_in_bytes",
            Version::V2 => "memory.max",
        };
        let text = std::fs::read_to_string(self.dir("memory", rel).join(file)).ok()?;
        // v1 shows "unlimited" as a huge page-aligned number, v2 as "max".
        text.trim().parse().ok().filter(|v| *v < (1u64 << 62))
    }

    /// Create the cgroup of a sandbox below a pod cgroup someone else made and limits (a
    /// kubelet's, CRI `cgroup_parent`), with the pause's leaf and no limits of its own.
    pub fn create_sandbox(&self, rel: &str) -> Result<(), CgroupError> {
        self.make_with_pause_leaf(rel)
    }

    /// `rel` and its pause leaf in every hierarchy podhost uses; on v2 with the
    /// controllers enabled down to it.
    fn make_with_pause_leaf(&self, rel: &str) -> Result<(), CgroupError> {
        let rel = rel.trim_matches('/');
        let leaf = format!("{rel}/{PAUSE_CGROUP}");
        match self.version {
            Version::V1 => {
                for ctrl in CONTROLLERS {
                    if !self.root.join(ctrl).is_dir() {
                        continue;
                    }
                    mkdir_all(&self.dir(ctrl, &leaf))?;
                }
            }
            Version::V2 => {
                mkdir_all(&self.dir("", &leaf))?;
                // Controllers must be enabled in every ancestor for the pod's files to
                // exist; some may be absent from this kernel or delegation: best effort.
                let mut cur = self.root.clone();
                for part in rel.split('/') {
                    let _ = write(&cur.join("cgroup.subtree_control"), "+cpu +memory +pids");
                    cur = cur.join(part);
                }
                let _ = write(&cur.join("cgroup.subtree_control"), "+cpu +memory +pids");
            }
        }
        Ok(())
    }

    /// Write the CPU and memory limits `res` gives to cgroup `rel` (a pod's, or a running
    /// container's for CRI `UpdateContainerResources`); those it leaves out are unchanged.
    pub fn set_limits(&self, rel: &str, res: &ContainerResources) -> Result<(), CgroupError> {
        if let Some(shares) = res.cpu_shares {
            self.write_cpu_shares(rel, shares)?;
        }
        if let Some(quota) = res.cpu_quota {
            let period = res.cpu_period.unwrap_or(100_000);
            match self.version {
                Version::V1 => {
                    let d = self.dir("cpu", rel);
                    write(&d.join("cpu.cfs_period_us"), &period.to_string())?;
                    write(&d.join("cpu.cfs_quota_us"), &quota.to_string())?;
                }
                Version::V2 => write(
                    &self.dir("cpu", rel).join("cpu.max"),
                    &format!("{quota} {period}"),
                )?,
            }
        }
        if let Some(limit) = res.memory_limit {
            match self.version {
                Version::V1 => self.write_v1_memory_limit(rel, limit)?,
                Version::V2 => write(
                    &self.dir("memory", rel).join("memory.max"),
                    &limit.to_string(),
                )?,
            }
        }
        Ok(())
    }

    /// v1 memory limit. With swap accounting, memory may never exceed memory+swap: a
    /// limit raised above a container's memory+swap limit (libcontainer sets one) raises
    /// that first, to the same value (no swap, as runc does when none is asked).
    fn write_v1_memory_limit(&self, rel: &str, limit: i64) -> Result<(), CgroupError> {
        let d = self.dir("memory", rel);
        let mem = d.join("memory.limit_in_bytes");
        let memsw = d.join("memory.memsw.limit_in_bytes");
        match write(&mem, &limit.to_string()) {
            Err(CgroupError::Write { source, .. })
                if source.raw_os_error() == Some(libc::EINVAL) && memsw.exists() =>
            {
                write(&memsw, &limit.to_string())?;
                write(&mem, &limit.to_string())
            }
            r => r,
        }
    }

    fn write_cpu_shares(&self, rel: &str, shares: u64) -> Result<(), CgroupError> {
        match self.version {
            Version::V1 => write(
                &self.dir("cpu", rel).join("cpu.shares"),
                &shares.to_string(),
            ),
            Version::V2 => write(
                &self.dir("cpu", rel).join("cpu.weight"),
                &shares_to_weight(shares).to_string(),
            ),
        }
    }

    /// Every hierarchy a pod may have dirs in: on v1 not only the controllers podhost
    /// writes but also those libcontainer makes container cgroups in (cpuset, devices …).
    fn hierarchies(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = match self.version {
            Version::V1 => std::fs::read_dir(&self.root)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .collect(),
            Version::V2 => Vec::new(),
        };
        out.push(self.root.clone());
        out
    }

    /// Pod cgroups under `parent` in any hierarchy, as (QoS class, pod uid): what a
    /// daemon killed between making a pod cgroup and recording its sandbox leaves.
    pub fn pods(&self, parent: &str) -> Vec<(String, String)> {
        let parent = parent.trim_matches('/');
        let mut out = Vec::new();
        for h in self.hierarchies() {
            for (class, sub) in [
                ("Guaranteed", ""),
                ("Burstable", "burstable"),
                ("BestEffort", "besteffort"),
            ] {
                let dir = h.join(parent).join(sub);
                for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if let Some(uid) = name.strip_prefix("pod") {
                        let entry = (class.to_string(), uid.to_string());
                        if e.path().is_dir() && !out.contains(&entry) {
                            out.push(entry);
                        }
                    }
                }
            }
        }
        out
    }

    /// Move process `pid` into cgroup `rel` (every v1 hierarchy podhost uses, or v2's).
    pub fn add_process(&self, rel: &str, pid: u32) -> Result<(), CgroupError> {
        match self.version {
            Version::V1 => {
                for ctrl in CONTROLLERS {
                    let d = self.dir(ctrl, rel);
                    if d.is_dir() {
                        write(&d.join("cgroup.procs"), &pid.to_string())?;
                    }
                }
                Ok(())
            }
            Version::V2 => write(&self.dir("", rel).join("cgroup.procs"), &pid.to_string()),
        }
    }

    /// Remove the pod cgroup (children first: the pause leaf, container cgroups a crash
    /// left) and its QoS level when no other pod uses it. Best effort, retried briefly
    /// because the last processes leave their cgroup slightly after they are killed.
    pub fn remove_pod(&self, parent: &str, qos_class: &str, pod_uid: &str) {
        let pod = pod_cgroup(parent, qos_class, pod_uid);
        let qos = qos_dir(qos_class).map(|q| format!("{}/{q}", parent.trim_matches('/')));
        self.remove_sandbox(&pod);
        if let Some(q) = &qos {
            for h in self.hierarchies() {
                // Fails (ENOTEMPTY/EBUSY) while another pod of the class lives: fine.
                let _ = std::fs::remove_dir(h.join(q));
            }
        }
    }

    /// Remove a sandbox's cgroup `rel` and everything below it (the containers' cgroups,
    /// which a shut-down shim leaves, and any a container made inside its own) in every
    /// hierarchy; the levels above stay (they are a kubelet's, or
    /// [`Cgroups::remove_pod`] handles them).
    pub fn remove_sandbox(&self, rel: &str) {
        let rel = rel.trim_matches('/');
        for h in self.hierarchies() {
            let dir = h.join(rel);
            if dir.is_dir() {
                remove_tree(&dir);
            }
        }
    }

    /// Pids of every process in the pod cgroup `rel` and its child cgroups (the pause's
    /// leaf, the containers'). On v1 one hierarchy is enough: podhost and libcontainer put
    /// each process in all of them; the first that has the pod is read.
    pub fn pod_pids(&self, rel: &str) -> Vec<u32> {
        let dir = match self.version {
            Version::V1 => CONTROLLERS
                .iter()
                .map(|c| self.dir(c, rel))
                .find(|d| d.is_dir()),
            Version::V2 => Some(self.dir("", rel)).filter(|d| d.is_dir()),
        };
        let Some(dir) = dir else {
            return Vec::new();
        };
        let mut dirs = vec![dir.clone()];
        dirs.extend(
            std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir()),
        );
        dirs.iter()
            .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|t| {
                t.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<u32>>()
            })
            .collect()
    }

    /// SIGKILL every process left in the pod cgroup `rel` until none remains (or 5 s
    /// pass): after a shim crash its pause and containers keep running, reparented to
    /// init, and nobody else knows them. Returns how many processes were killed.
    pub fn kill_pod(&self, rel: &str) -> usize {
        let mut killed = std::collections::HashSet::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let pids: Vec<u32> = self
                .pod_pids(rel)
                .into_iter()
                .filter(|p| *p > 1 && *p != std::process::id() && !zombie(*p))
                .collect();
            if pids.is_empty() || std::time::Instant::now() > deadline {
                return killed.len();
            }
            for pid in pids {
                if let Ok(p) = i32::try_from(pid) {
                    // SAFETY: kill(2) of a process of this pod's cgroup; a pid that just
                    // exited fails with ESRCH, which is fine.
                    unsafe { libc::kill(p, libc::SIGKILL) };
                    killed.insert(pid);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many times the kernel's OOM killer killed a process of cgroup `rel`;
    /// `None` when the cgroup is gone or the kernel does not count.
    pub fn oom_kills(&self, rel: &str) -> Option<u64> {
        let file = match self.version {
            Version::V1 => "memory.oom_control",
            Version::V2 => "memory.events",
        };
        let text = std::fs::read_to_string(self.dir("memory", rel).join(file)).ok()?;
        keyed(&text, "oom_kill")
    }

    /// CPU time used by cgroup `rel`, in nanoseconds.
    pub fn cpu_usage_ns(&self, rel: &str) -> Option<u64> {
        match self.version {
            Version::V1 => std::fs::read_to_string(self.dir("cpuacct", rel).join("cpuacct.usage"))
                .ok()?
                .trim()
                .parse()
                .ok(),
            Version::V2 => {
                let text = std::fs::read_to_string(self.dir("cpu", rel).join("cpu.stat")).ok()?;
                keyed(&text, "usage_usec").map(|us| us * 1000)
            }
        }
    }

    /// Memory usage of cgroup `rel`, caches included, in bytes.
    pub fn memory_usage(&self, rel: &str) -> Option<u64> {
        let file = match self.version {
            Version::V1 => "memory.usage_in_bytes",
            Version::V2 => "memory.current",
        };
        std::fs::read_to_string(self.dir("memory", rel).join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Working set of cgroup `rel`: memory usage minus inactive file cache (kubectl top's
    /// figure; the cache can be reclaimed, so it does not count toward an OOM).
    pub fn memory_working_set(&self, rel: &str) -> Option<u64> {
        let d = self.dir("memory", rel);
        let inactive_key = match self.version {
            Version::V1 => "total_inactive_file",
            Version::V2 => "inactive_file",
        };
        let usage = self.memory_usage(rel)?;
        let stat = std::fs::read_to_string(d.join("memory.stat")).unwrap_or_default();
        let inactive = keyed(&stat, inactive_key).unwrap_or(0);
        Some(usage.saturating_sub(inactive))
    }
}

/// Value of `key N` in a flat-keyed cgroup file.
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

fn mkdir_all(path: &Path) -> Result<(), CgroupError> {
    // A concurrent removal of an empty QoS level (another pod going away) can race
    // with the creation of its child: try again once.
    let mut last = None;
    for _ in 0..3 {
        match std::fs::create_dir_all(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => last = Some(e),
            Err(source) => {
                return Err(CgroupError::Create {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
    }
    Err(CgroupError::Create {
        path: path.to_path_buf(),
        source: last.unwrap_or_else(|| std::io::Error::from(ErrorKind::NotFound)),
    })
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(|source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    })
}

/// A process that has exited but is not reaped yet (its parent, init after a shim
/// crash, does that): killing it again is pointless.
fn zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
        s.rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next())
            .is_some_and(|st| st == "Z" || st == "X")
    })
}

/// Remove cgroup `top` with its descendants, deepest first. Iterative: a container may
/// nest cgroups deeply (no depth limit on v1).
fn remove_tree(top: &Path) {
    // Directories in the order found (parents before children); removed in reverse.
    let mut found = vec![top.to_path_buf()];
    let mut next = 0;
    while next < found.len() {
        let subdirs: Vec<PathBuf> = std::fs::read_dir(&found[next])
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        found.extend(subdirs);
        next += 1;
    }
    for dir in found.iter().rev() {
        rmdir_retry(dir);
    }
}

fn rmdir_retry(path: &Path) {
    for _ in 0..20 {
        match std::fs::remove_dir(path) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixture root: cgroup files are plain files, so `write` creates them.
    fn fixture(version: Version) -> (PathBuf, Cgroups) {
        let dir = std::env::temp_dir().join(format!(
            "podhost-cgroups-{}-{:?}-{}",
            std::process::id(),
            version,
            rand::random::<u32>()
        ));
        if version == Version::V1 {
            for c in CONTROLLERS {
                std::fs::create_dir_all(dir.join(c)).unwrap();
            }
        } else {
            std::fs::create_dir_all(&dir).unwrap();
        }
        let cg = Cgroups::with_root(&dir, version);
        (dir, cg)
    }

    fn res() -> ContainerResources {
        ContainerResources {
            cpu_shares: Some(512),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            memory_limit: Some(64 << 20),
            oom_score_adj: None,
        }
    }

    fn read(p: PathBuf) -> String {
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn lists_pod_cgroups_of_every_qos_level_and_hierarchy() {
        let (dir, cg) = fixture(Version::V1);
        for p in [
            "memory/k/besteffort/poda/pause",
            "cpuset/k/besteffort/poda/c1",
            "pids/k/podb",
            "cpu/k/burstable/podc",
            "cpu/k/burstable/not-a-pod",
            "cpu/other/podd",
        ] {
            std::fs::create_dir_all(dir.join(p)).unwrap();
        }
        let mut pods = cg.pods("/k/");
        pods.sort();
        assert_eq!(
            pods,
            vec![
                ("BestEffort".to_string(), "a".to_string()),
                ("Burstable".to_string(), "c".to_string()),
                ("Guaranteed".to_string(), "b".to_string()),
            ]
        );
        cg.remove_pod("k", "BestEffort", "a");
        assert!(!dir.join("cpuset/k/besteffort").exists(), "all hierarchies");
        assert!(!dir.join("memory/k/besteffort").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn layout_follows_kubelet() {
        assert_eq!(pod_cgroup("/podhost/", "Guaranteed", "u1"), "podhost/podu1");
        assert_eq!(
            pod_cgroup("podhost", "Burstable", "u1"),
            "podhost/burstable/podu1"
        );
        assert_eq!(
            pod_cgroup("podhost", "BestEffort", "u1"),
            "podhost/besteffort/podu1"
        );
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 100);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    #[test]
    fn v2_pod_limits_pause_and_reads() {
        let (dir, cg) = fixture(Version::V2);
        cg.create_pod("p", "Burstable", "u1", &res(), Some(100))
            .unwrap();
        let pod = dir.join("p/burstable/podu1");
        assert_eq!(read(pod.join("cpu.max")), "50000 100000");
        assert_eq!(
            read(pod.join("cpu.weight")),
            shares_to_weight(512).to_string()
        );
        assert_eq!(read(pod.join("memory.max")), (64u64 << 20).to_string());
        assert_eq!(read(pod.join("pids.max")), "100");
        assert_eq!(
            read(dir.join("cgroup.subtree_control")),
            "+cpu +memory +pids"
        );
        assert_eq!(
            read(pod.join("cgroup.subtree_control")),
            "+cpu +memory +pids"
        );
        assert!(pod.join(PAUSE_CGROUP).is_dir());
        cg.add_process("p/burstable/podu1/pause", 42).unwrap();
        assert_eq!(read(pod.join("pause/cgroup.procs")), "42");

        let c = pod.join("c1");
        std::fs::create_dir_all(&c).unwrap();
        std::fs::write(
            c.join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        )
        .unwrap();
        std::fs::write(c.join("cpu.stat"), "usage_usec 2500\nuser_usec 2000\n").unwrap();
        std::fs::write(c.join("memory.current"), "1000000\n").unwrap();
        std::fs::write(c.join("memory.stat"), "anon 1\ninactive_file 400000\n").unwrap();
        let rel = "p/burstable/podu1/c1";
        assert_eq!(cg.oom_kills(rel), Some(1));
        assert_eq!(cg.cpu_usage_ns(rel), Some(2_500_000));
        assert_eq!(cg.memory_working_set(rel), Some(600_000));
        assert_eq!(cg.oom_kills("p/none"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn v1_pod_limits_and_reads() {
        let (dir, cg) = fixture(Version::V1);
        cg.create_pod(
            "p",
            "BestEffort",
            "u2",
            &ContainerResources::default(),
            None,
        )
        .unwrap();
        assert_eq!(read(dir.join("cpu/p/besteffort/cpu.shares")), "2");
        assert!(dir.join("memory/p/besteffort/podu2/pause").is_dir());
        assert!(!dir.join("cpu/p/besteffort/podu2/cpu.cfs_quota_us").exists());
        cg.create_pod("p", "Guaranteed", "u3", &res(), Some(50))
            .unwrap();
        assert_eq!(read(dir.join("cpu/p/podu3/cpu.cfs_quota_us")), "50000");
        assert_eq!(read(dir.join("cpu/p/podu3/cpu.shares")), "512");
        assert_eq!(
            read(dir.join("memory/p/podu3/memory.limit_in_bytes")),
            (64u64 << 20).to_string()
        );
        assert_eq!(read(dir.join("pids/p/podu3/pids.max")), "50");
        cg.add_process("p/podu3/pause", 7).unwrap();
        for c in CONTROLLERS {
            assert_eq!(read(dir.join(c).join("p/podu3/pause/cgroup.procs")), "7");
        }
        let m = dir.join("memory/p/podu3/c");
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(
            m.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        std::fs::write(m.join("memory.usage_in_bytes"), "5000\n").unwrap();
        std::fs::write(m.join("memory.stat"), "cache 1\ntotal_inactive_file 1000\n").unwrap();
        std::fs::create_dir_all(dir.join("cpuacct/p/podu3/c")).unwrap();
        std::fs::write(dir.join("cpuacct/p/podu3/c/cpuacct.usage"), "123456\n").unwrap();
        assert_eq!(cg.oom_kills("p/podu3/c"), Some(2));
        assert_eq!(cg.memory_working_set("p/podu3/c"), Some(4000));
        assert_eq!(cg.cpu_usage_ns("p/podu3/c"), Some(123_456));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn remove_pod_removes_levels_on_a_real_directory_tree() {
        // Empty directories stand in for cgroups (rmdir of a real cgroup with only
        // kernel files succeeds the same way).
        let (dir, cg) = fixture(Version::V1);
        for c in CONTROLLERS {
            std::fs::create_dir_all(dir.join(c).join("p/burstable/podu4/pause")).unwrap();
            std::fs::create_dir_all(dir.join(c).join("p/burstable/podu4/ctr")).unwrap();
            std::fs::create_dir_all(dir.join(c).join("p/burstable/podu5")).unwrap();
        }
        cg.remove_pod("p", "Burstable", "u4");
        assert!(!dir.join("memory/p/burstable/podu4").exists());
        // Another Burstable pod still lives: the QoS level stays.
        assert!(dir.join("memory/p/burstable/podu5").exists());
        cg.remove_pod("p", "Burstable", "u5");
        assert!(!dir.join("memory/p/burstable").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_sandbox_below_a_kubelet_pod_cgroup_leaves_the_pod_cgroup_alone() {
        let (dir, cg) = fixture(Version::V1);
        // The kubelet made and limited its pod cgroup.
        let kubelet = dir.join("memory/kubepods/burstable/podk1");
        std::fs::create_dir_all(&kubelet).unwrap();
        std::fs::write(kubelet.join("memory.limit_in_bytes"), "1000").unwrap();
        cg.create_sandbox("/kubepods/burstable/podk1/sb1").unwrap();
        for c in CONTROLLERS {
            assert!(dir
                .join(c)
                .join("kubepods/burstable/podk1/sb1/pause")
                .is_dir());
        }
        assert_eq!(read(kubelet.join("memory.limit_in_bytes")), "1000");
        // A container's cgroup, and cgroups the container made inside its own.
        std::fs::create_dir_all(kubelet.join("sb1/ctr/nested/deeper")).unwrap();
        std::fs::create_dir_all(kubelet.join("sb1/ctr/other")).unwrap();
        cg.remove_sandbox("kubepods/burstable/podk1/sb1");
        assert!(!kubelet.join("sb1").exists());
        assert!(kubelet.is_dir(), "the kubelet's own cgroup stays");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn set_limits_changes_only_what_is_given() {
        let (dir, cg) = fixture(Version::V2);
        let c = dir.join("p/podu1/c1");
        std::fs::create_dir_all(&c).unwrap();
        std::fs::write(c.join("memory.max"), "max").unwrap();
        cg.set_limits(
            "p/podu1/c1",
            &ContainerResources {
                cpu_quota: Some(20_000),
                cpu_period: Some(100_000),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(read(c.join("cpu.max")), "20000 100000");
        assert_eq!(read(c.join("memory.max")), "max", "not given: unchanged");
        assert!(!c.join("cpu.weight").exists());

        let (dir1, cg1) = fixture(Version::V1);
        for ctrl in CONTROLLERS {
            std::fs::create_dir_all(dir1.join(ctrl).join("p/podu1/c1")).unwrap();
        }
        cg1.set_limits("p/podu1/c1", &res()).unwrap();
        assert_eq!(read(dir1.join("cpu/p/podu1/c1/cpu.shares")), "512");
        assert_eq!(read(dir1.join("cpu/p/podu1/c1/cpu.cfs_quota_us")), "50000");
        assert_eq!(
            read(dir1.join("memory/p/podu1/c1/memory.limit_in_bytes")),
            (64 << 20).to_string()
        );
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&dir1).unwrap();
    }
}
