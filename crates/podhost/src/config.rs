//! The daemon's configuration: the runtime's paths and network, plus the knobs of the
//! kubelet part (back-off, image GC) and where the API lives.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use podhost_runtime::config::{NetworkSettings, RuntimeConfig, DEFAULT_CLUSTER_CIDR};

/// Paths and knobs shared by the daemon and the CLI.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the local runtime keeps state, run files and logs; its cgroups and network.
    pub runtime: RuntimeConfig,
    /// First CrashLoopBackOff delay (kubelet: 10s).
    pub backoff_initial: Duration,
    /// CrashLoopBackOff cap (kubelet: 300s).
    pub backoff_max: Duration,
    /// Image GC starts when the image filesystem is fuller than this (percent; kubelet: 85).
    pub image_gc_high_percent: u8,
    /// Image GC frees space until usage is below this (percent; kubelet: 80).
    pub image_gc_low_percent: u8,
    /// Where the streaming server for exec, attach and port-forward sessions listens
    /// (kubelet's protocols; a loopback address, port 0 picks one).
    pub streaming_addr: std::net::SocketAddr,
    /// The CRI socket a kubelet or crictl talks to (`RUN/cri.sock`); `None`: no CRI server.
    pub cri_socket: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config::with_runtime(RuntimeConfig::default())
    }
}

impl Config {
    fn with_runtime(runtime: RuntimeConfig) -> Self {
        Config {
            cri_socket: Some(runtime.run_dir.join("cri.sock")),
            runtime,
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            image_gc_high_percent: 85,
            image_gc_low_percent: 80,
            streaming_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
    /// Config rooted under one directory (tests and `--root`): state, run and logs inside it.
    pub fn rooted(root: &Path) -> Self {
        Config::with_runtime(RuntimeConfig::rooted(root))
    }
    /// The daemon's API socket.
    pub fn api_socket(&self) -> PathBuf {
        self.runtime.run_dir.join("podhost.sock")
    }
    /// Pod records.
    pub fn pods_dir(&self) -> PathBuf {
        self.runtime.state_dir.join("pods")
    }
    /// Root of per-pod volume dirs (`<root>/<uid>`), like kubelet's `pods/<uid>/volumes`.
    pub fn volumes_dir(&self) -> PathBuf {
        self.runtime.state_dir.join("volumes")
    }
}
