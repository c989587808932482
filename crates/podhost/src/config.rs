//! Where podhost keeps its state and finds its helper binaries.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Paths and knobs shared by the daemon and the CLI.
#[derive(Debug, Clone)]
pub struct Config {
    /// Durable state: pod records, images, container writable layers, volumes.
    pub state_dir: PathBuf,
    /// Volatile state: API socket, netns pins, shim sockets, libcontainer state.
    pub run_dir: PathBuf,
    /// Root of CRI-format container logs (`<ns>_<name>_<uid>/<container>/<n>.log`).
    pub log_dir: PathBuf,
    /// Cgroup parent under which each pod gets `pod<uid>/<container>`.
    pub cgroup_parent: String,
    /// Directory holding `podhost-shim`, `podhost-runc` and `pause`.
    pub bin_dir: PathBuf,
    /// First CrashLoopBackOff delay (kubelet: 10s).
    pub backoff_initial: Duration,
    /// CrashLoopBackOff cap (kubelet: 300s).
    pub backoff_max: Duration,
    /// Registry configuration (mirrors, plain HTTP, CAs, credentials file).
    pub registry_config: PathBuf,
    /// Image GC starts when the image filesystem is fuller than this (percent; kubelet: 85).
    pub image_gc_high_percent: u8,
    /// Image GC frees space until usage is below this (percent; kubelet: 80).
    pub image_gc_low_percent: u8,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            state_dir: PathBuf::from("/var/lib/podhost"),
            run_dir: PathBuf::from("/run/podhost"),
            log_dir: PathBuf::from("/var/log/pods"),
            cgroup_parent: "podhost".to_string(),
            bin_dir: default_bin_dir(),
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            registry_config: PathBuf::from("/etc/podhost/registries.json"),
            image_gc_high_percent: 85,
            image_gc_low_percent: 80,
        }
    }
}

/// The helper binaries ship next to `podhost` itself.
fn default_bin_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("/usr/local/bin"))
}

impl Config {
    /// Config rooted under one directory (tests and `--root`): state, run and logs inside it.
    pub fn rooted(root: &Path) -> Self {
        Config {
            state_dir: root.join("lib"),
            run_dir: root.join("run"),
            log_dir: root.join("log"),
            registry_config: root.join("registries.json"),
            ..Config::default()
        }
    }
    /// The daemon's API socket.
    pub fn api_socket(&self) -> PathBuf {
        self.run_dir.join("podhost.sock")
    }
    /// Pinned network namespaces, like `ip netns` (`/run/podhost/netns/<sandbox>`).
    pub fn netns_dir(&self) -> PathBuf {
        self.run_dir.join("netns")
    }
    /// Per-sandbox volatile directory: shim socket, pid files, /dev/shm mount.
    ///
    /// Named by a 16-hex prefix of the id under `s/`: the shim's socket path must fit
    /// in a unix socket address (108 bytes), as containerd's `/run/containerd/s/` does.
    pub fn sandbox_run_dir(&self, sandbox_id: &str) -> PathBuf {
        let short = sandbox_id.get(..16).unwrap_or(sandbox_id);
        self.run_dir.join("s").join(short)
    }
    /// Per-sandbox durable directory: hosts, hostname, resolv.conf.
    pub fn sandbox_state_dir(&self, sandbox_id: &str) -> PathBuf {
        self.state_dir.join("sandboxes").join(sandbox_id)
    }
    /// Per-container directory: bundle (config.json), rootfs mount point, upper/work dirs.
    pub fn container_dir(&self, container_id: &str) -> PathBuf {
        self.state_dir.join("containers").join(container_id)
    }
    /// libcontainer's state root (one dir per container).
    pub fn runc_root(&self) -> PathBuf {
        self.run_dir.join("runc")
    }
    /// Image content store.
    pub fn image_dir(&self) -> PathBuf {
        self.state_dir.join("images")
    }
    /// Pod records.
    pub fn pods_dir(&self) -> PathBuf {
        self.state_dir.join("pods")
    }
    /// Per-pod volumes (emptyDir) like kubelet's `/var/lib/kubelet/pods/<uid>/volumes`.
    pub fn pod_volumes_dir(&self, pod_uid: &str) -> PathBuf {
        self.state_dir.join("volumes").join(pod_uid)
    }
    /// Path of a helper binary.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }
}
