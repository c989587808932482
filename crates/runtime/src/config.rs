//! Where the runtime keeps its state, finds its helper binaries and its pod network.

use std::path::{Path, PathBuf};

/// Paths and knobs of the local runtime (the daemon adds its own in `podhost::config`).
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Durable state: pod records, images, container writable layers, volumes.
    pub state_dir: PathBuf,
    /// Volatile state: API socket, netns pins, shim sockets, libcontainer state.
    pub run_dir: PathBuf,
    /// Root of CRI-format container logs (`<ns>_<name>_<uid>/<container>/<n>.log`).
    pub log_dir: PathBuf,
    /// Cgroup parent under which each pod gets `pod<uid>/<container>`.
    pub cgroup_parent: String,
    /// pids.max of every pod cgroup (`--pod-pids-limit`); `None` = unlimited.
    pub pod_pids_limit: Option<i64>,
    /// Memory limit of the cgroup parent holding every pod (node allocatable: capacity
    /// minus `--system-reserved` and `--kube-reserved`); `None` = not limited.
    pub pods_memory_limit: Option<u64>,
    /// Directory holding `podhost-shim`, `podhost-runc` and `pause`.
    pub bin_dir: PathBuf,
    /// Registry configuration (mirrors, plain HTTP, CAs, credentials file).
    pub registry_config: PathBuf,
    /// Pod networking: CNI config and plugin dirs, the default network's bridge and CIDR.
    pub network: NetworkSettings,
    /// Rotation of container logs by their shims (kubelet: 10Mi × 5 files); `None` = never.
    pub container_log_rotation: Option<podhost_shim::logrotate::Policy>,
}

/// Where CNI configs and plugins live, and what the default network looks like.
#[derive(Debug, Clone)]
pub struct NetworkSettings {
    /// Directory of CNI network configs (`*.conflist`, `*.conf`, `*.json`; the first by
    /// name wins, as in containerd). podhost writes its default conflist here when empty.
    /// Not `/etc/cni/net.d` by default: on Debian that often holds podman's network.
    pub cni_conf_dir: PathBuf,
    /// Directories searched for plugin binaries, in order (`CNI_PATH`).
    pub cni_bin_dirs: Vec<PathBuf>,
    /// Pod CIDR of the default network (kubelet's `--cluster-cidr`).
    pub cluster_cidr: String,
    /// Linux bridge of the default network; the network is named after it.
    pub bridge: String,
    /// `host-local` IPAM store of the default network (one file per allocated IP).
    pub ipam_data_dir: PathBuf,
}

/// Default pod CIDR: clear of podman (10.88/16, 10.89/16), CRI-O (10.85/16), flannel and
/// kind (10.244/16), k3s (10.42/16), weave (10.32/12), the service CIDR (10.96/12), docker.
pub const DEFAULT_CLUSTER_CIDR: &str = "10.77.0.0/16";

impl NetworkSettings {
    fn under(state_dir: &Path, conf_dir: PathBuf) -> Self {
        NetworkSettings {
            cni_conf_dir: conf_dir,
            cni_bin_dirs: vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")],
            cluster_cidr: DEFAULT_CLUSTER_CIDR.to_string(),
            bridge: "podhost0".to_string(),
            ipam_data_dir: state_dir.join("cni").join("networks"),
        }
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            state_dir: PathBuf::from("/var/lib/podhost"),
            run_dir: PathBuf::from("/run/podhost"),
            log_dir: PathBuf::from("/var/log/pods"),
            cgroup_parent: "podhost".to_string(),
            pod_pids_limit: Some(4096),
            pods_memory_limit: None,
            bin_dir: default_bin_dir(),
            registry_config: PathBuf::from("/etc/podhost/registries.json"),
            network: NetworkSettings::under(
                Path::new("/var/lib/podhost"),
                PathBuf::from("/etc/podhost/cni/net.d"),
            ),
            container_log_rotation: Some(podhost_shim::logrotate::Policy {
                max_size: 10 * 1024 * 1024,
                max_files: podhost_shim::logrotate::DEFAULT_MAX_FILES,
            }),
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

impl RuntimeConfig {
    /// Config rooted under one directory (tests and `--root`): state, run and logs inside it.
    pub fn rooted(root: &Path) -> Self {
        RuntimeConfig {
            state_dir: root.join("lib"),
            run_dir: root.join("run"),
            log_dir: root.join("log"),
            registry_config: root.join("registries.json"),
            network: NetworkSettings::under(&root.join("lib"), root.join("cni").join("net.d")),
            ..RuntimeConfig::default()
        }
    }
    /// Pinned network namespaces, like `ip netns` (`/run/podhost/netns/<sandbox>`).
    pub fn netns_dir(&self) -> PathBuf {
        self.run_dir.join("netns")
    }
    /// Durable records of CNI attachments (`<id>.json`), so teardown works after a crash.
    pub fn network_state_dir(&self) -> PathBuf {
        self.state_dir.join("networks")
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
    /// Root of `Localhost` seccomp profiles (kubelet's `/var/lib/kubelet/seccomp`).
    pub fn seccomp_dir(&self) -> PathBuf {
        self.state_dir.join("seccomp")
    }
    /// Per-container durable directory: rootfs mount point, upper/work dirs, record.
    pub fn container_dir(&self, container_id: &str) -> PathBuf {
        self.state_dir.join("containers").join(container_id)
    }
    /// Per-container OCI bundle (`config.json`, the helper's pid file): in the run dir,
    /// which is a tmpfs, since the spec holds the resolved environment, Secrets included.
    pub fn bundle_dir(&self, container_id: &str) -> PathBuf {
        self.run_dir.join("containers").join(container_id)
    }
    /// Make the run dir (0700) and, unless it is on one already and while it is still
    /// empty, mount a tmpfs on it (see `mounts::ensure_run_tmpfs`). The daemon does this
    /// first, before putting its API socket there; the runtime again when it opens.
    pub fn prepare_run_dir(&self) -> Result<(), crate::RuntimeError> {
        crate::state_file::private_dir(&self.run_dir)?;
        crate::mounts::ensure_run_tmpfs(&self.run_dir)
    }
    /// The directories below the state and run dirs that the runtime creates at start,
    /// in creation order; each is 0700 (see [`crate::state_file::PRIVATE_DIR_MODE`]).
    pub fn private_dirs(&self) -> Vec<PathBuf> {
        vec![
            self.state_dir.clone(),
            self.run_dir.clone(),
            self.state_dir.join("containers"),
            self.state_dir.join("sandboxes"),
            self.image_dir(),
            self.network_state_dir(),
            self.run_dir.join("containers"),
            self.runc_root(),
            self.run_dir.join("s"),
            self.netns_dir(),
        ]
    }
    /// libcontainer's state root (one dir per container).
    pub fn runc_root(&self) -> PathBuf {
        self.run_dir.join("runc")
    }
    /// Image content store.
    pub fn image_dir(&self) -> PathBuf {
        self.state_dir.join("images")
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
