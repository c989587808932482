//! podhost's container runtime, behind one door: the CRI-shaped [`Runtime`] trait.
//!
//! Methods mirror CRI's RuntimeService/ImageService (RunPodSandbox, CreateContainer,
//! StartContainer, StopContainer, ContainerStatus, Exec, ImageStatus …) so that the CRI
//! gRPC server is a thin mapping, and so that the layers above (lifecycle, the HTTP API,
//! the CRI server) are tested against [`fake::FakeRuntime`] with tokio's paused clock.
//!
//! # Layout
//! - [`local`]: the runtime of this machine: sandboxes (netns pin, per-pod shim, pause),
//!   containers (overlay rootfs, OCI bundle, `podhost-runc`), images, recovery after a
//!   daemon crash, usage from cgroups.
//! - [`network`]: the pod network: CNI plugins run on the pinned netns.
//! - [`cgroups`]: pod and container cgroups, v1 and v2.
//! - [`linux`]: the Linux parts of sandbox and container configs (resources, security).
//! - `shim_client`, `netns`, `mounts`: talking to a pod's shim, pinning namespaces, mounts.
//! - [`dial`]: connecting to a port inside a pod's network namespace (probes,
//!   port-forward).
//! - [`config`]: where the runtime keeps its state and finds its helpers.
//! - [`state_file`]: durable JSON files written atomically.
//! - [`clock`]: timestamps, from a clock tests can pause.
//! - [`trace`]: the start-up trace (a span per step of a pod's creation).
//! - [`owned`]: one front door's view (podhost's lifecycle or CRI): only its sandboxes.
//! - [`fake`] (feature `fake`): an in-memory runtime for tests.
//! - [`error`]: the errors, [`RuntimeError`].

pub mod cgroups;
pub mod clock;
pub mod config;
pub mod dial;
pub mod du;
pub mod error;
#[cfg(feature = "fake")]
pub mod fake;
pub mod linux;
pub mod local;
mod mounts;
mod netns;
pub mod network;
pub mod owned;
mod shim_client;
pub mod state_file;
mod status_cache;
pub mod trace;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};

pub use error::RuntimeError;
pub use linux::{ContainerLinux, ContainerResources, PodLinux, SeccompProfile, SecurityConfig};
pub use network::{DnsConfig, HostAlias, PortMapping};

/// What a sandbox needs to know about its pod (CRI `PodSandboxConfig`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SandboxConfig {
    /// Pod name.
    pub name: String,
    /// Pod namespace.
    pub namespace: String,
    /// Pod UID: names the pod's cgroup, volumes and log directory.
    pub uid: String,
    /// Sandbox attempt (0 for the first sandbox of the pod).
    pub attempt: u32,
    /// Hostname inside the pod (the pod name unless `spec.hostname`).
    pub hostname: String,
    /// `shareProcessNamespace`: containers join the pause's PID namespace.
    pub share_pid: bool,
    /// `/var/log/pods/<ns>_<name>_<uid>`: container log paths are relative to it.
    pub log_directory: PathBuf,
    /// Pod labels, kept for listing and selection.
    pub labels: BTreeMap<String, String>,
    /// Pod annotations (CRI keeps them for the kubelet; podhost's own pods have none).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// QoS class, pod cgroup limits, host namespaces.
    #[serde(default)]
    pub linux: PodLinux,
    /// `hostNetwork`: share the host's network namespace (no CNI, no pod IP of its own).
    #[serde(default)]
    pub host_network: bool,
    /// `hostPort`s of all containers, published through CNI's portmap.
    #[serde(default)]
    pub port_mappings: Vec<PortMapping>,
    /// resolv.conf settings; `None`: a copy of the host's.
    #[serde(default)]
    pub dns: Option<DnsConfig>,
    /// `hostAliases`, appended to the pod's /etc/hosts.
    #[serde(default)]
    pub host_aliases: Vec<HostAlias>,
    /// Which front door made the sandbox; each sees and touches only its own (see
    /// [`owned::Owned`]). Records of older versions are podhost's.
    #[serde(default)]
    pub owner: Owner,
}

/// Who drives a sandbox: podhost's own lifecycle (pods applied with the CLI) or a
/// kubelet through CRI. A kubelet removes every sandbox it does not know, and podhost's
/// start-time cleanup removes sandboxes no pod record refers to: each must only ever
/// see its own.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum Owner {
    /// Pods of podhost's HTTP API and lifecycle.
    #[default]
    Podhost,
    /// Sandboxes created through the CRI gRPC API.
    Cri,
}

/// A sandbox as the runtime recorded it, without asking its shim (cheap; for cleanup
/// and ownership checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxRef {
    /// Sandbox id.
    pub id: String,
    /// UID of its pod.
    pub pod_uid: String,
    /// Who made it.
    pub owner: Owner,
}

/// A container as the runtime recorded it, without asking its shim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRef {
    /// Container id.
    pub id: String,
    /// Its sandbox.
    pub sandbox_id: String,
    /// `sha256:<config digest>` of the image it was created from.
    pub image_id: String,
}

/// Cumulative resource counters of one container at one instant (CRI `ContainerStats`):
/// rates come from two samples, as kubelet computes them. Counters are `None` where the
/// container has no cgroup (not created yet, or removed).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerStats {
    /// Container id.
    pub id: String,
    /// Container name in its pod.
    pub name: String,
    /// Its state when sampled: CRI lists created and exited containers too, `top` only
    /// running ones.
    pub state: ContainerState,
    /// When the counters were read, unix nanoseconds.
    pub timestamp: i64,
    /// CPU time used since the container started, nanoseconds.
    pub cpu_usage_ns: Option<u64>,
    /// Memory working set (usage minus inactive file cache), bytes.
    pub memory_working_set: Option<u64>,
    /// Memory usage including all caches, bytes.
    #[serde(default)]
    pub memory_usage: Option<u64>,
    /// Bytes and inodes of the container's writable layer (the overlay's upper dir).
    #[serde(default)]
    pub writable_layer: Option<LayerUsage>,
}

/// Whose writable layers a stats call measures: walking every file a container wrote
/// is the costly part of the stats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerWalk {
    /// Every container's.
    All,
    /// Only those of the containers of these sandboxes (ids).
    Sandboxes(HashSet<String>),
}

/// Space used by a container's writable layer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LayerUsage {
    /// Bytes of its files.
    pub bytes: u64,
    /// Its files and directories.
    pub inodes: u64,
    /// Directory holding the layers of all containers, for CRI's `FilesystemIdentifier`.
    pub mountpoint: PathBuf,
}

/// Cumulative resource counters of one pod and its running containers (CRI
/// `PodSandboxStats`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SandboxStats {
    /// Sandbox id.
    pub id: String,
    /// Pod name.
    pub name: String,
    /// Pod namespace.
    pub namespace: String,
    /// Pod UID.
    pub uid: String,
    /// When the pod's counters were read, unix nanoseconds.
    pub timestamp: i64,
    /// CPU time of the whole pod cgroup, nanoseconds.
    pub cpu_usage_ns: Option<u64>,
    /// Memory working set of the whole pod cgroup, bytes.
    pub memory_working_set: Option<u64>,
    /// Memory usage of the whole pod cgroup including caches, bytes.
    #[serde(default)]
    pub memory_usage: Option<u64>,
    /// Its containers, whatever their state.
    pub containers: Vec<ContainerStats>,
}

/// Space of the filesystem holding the images (CRI `ImageFsInfo`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FsUsage {
    /// The image store's directory (a kubelet finds the filesystem's size from it).
    #[serde(default)]
    pub mountpoint: PathBuf,
    /// Bytes used by the image store.
    pub used_bytes: u64,
    /// Inodes used by the image store.
    pub inodes_used: u64,
    /// Percent of the filesystem in use, as `df` shows it.
    pub percent_used: f64,
}

/// What an image prune or garbage collection removed.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct PruneResult {
    /// Image ids removed.
    pub removed: Vec<String>,
    /// Sum of their sizes (shared layers make it an upper bound).
    pub reclaimed: u64,
}

/// Whether the sandbox's pause process is alive (CRI `PodSandboxState`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum SandboxState {
    /// Pause running, namespaces held.
    Ready,
    /// Pause gone (stopped or died).
    NotReady,
    /// The runtime cannot tell: the pod's shim lives but does not answer. Nothing should
    /// be decided from it; CRI has no such state and reports NotReady.
    Unknown,
}

/// Observed state of one sandbox (CRI `PodSandboxStatus`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SandboxStatus {
    /// Sandbox id (hex).
    pub id: String,
    /// The config it was created from.
    pub config: SandboxConfig,
    /// Ready while the pause lives.
    pub state: SandboxState,
    /// Creation time, unix nanoseconds.
    pub created_at: i64,
    /// Pid of the pause process (host pid namespace).
    pub pause_pid: Option<u32>,
    /// Pod IP, once networking assigns one.
    pub ip: Option<String>,
    /// Further pod IPs (the other address family), like CRI's `additional_ips`.
    #[serde(default)]
    pub additional_ips: Vec<String>,
    /// Pinned network namespace.
    pub netns_path: PathBuf,
    /// Why the sandbox is not ready or unknown, when the runtime knows (the pause exited,
    /// the shim is gone or does not answer): said in the pod's events and status.
    #[serde(default)]
    pub not_ready_reason: Option<String>,
}

/// A volume or file to bind into a container (CRI `Mount`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Mount {
    /// Path on the host.
    pub host_path: PathBuf,
    /// Path inside the container.
    pub container_path: String,
    /// Mounted read-only.
    pub readonly: bool,
    /// Mount propagation (CRI `MountPropagation`); private unless the pod asks.
    #[serde(default)]
    pub propagation: Propagation,
}

/// How mounts below a bind mount travel between host and container (CRI names).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum Propagation {
    /// Neither way (`mountPropagation: None`, rprivate).
    #[default]
    Private,
    /// Host mounts appear in the container (`HostToContainer`, rslave).
    HostToContainer,
    /// Both ways (`Bidirectional`, rshared; privileged containers only).
    Bidirectional,
}

/// A value resolved for a container that may hold a Secret (its environment, and the
/// command and args `$(VAR)` expands from it): kept in memory only. It serializes as
/// `null` and reads back empty (whatever a record holds), and prints as `<redacted>`,
/// so no record, event or log gets it; the runtime writes it only into the container's
/// spec on the run dir's tmpfs, and lifecycle resolves it again from the Secret for
/// every new container, as kubelet does.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Sensitive<T>(pub T);

impl<T> std::ops::Deref for Sensitive<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for Sensitive<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T> Serialize for Sensitive<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_none()
    }
}

impl<'de, T: Default> Deserialize<'de> for Sensitive<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Records of an older podhost hold the values: they are dropped on reading.
        serde::de::IgnoredAny::deserialize(d)?;
        Ok(Sensitive(T::default()))
    }
}

/// What to run in a container (CRI `ContainerConfig`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ContainerConfig {
    /// Container name within the pod.
    pub name: String,
    /// Restart attempt: 0 for the first run, then the restart count.
    pub attempt: u32,
    /// Image reference as written in the pod.
    pub image: String,
    /// Kubernetes `command` (replaces the image Entrypoint), `$(VAR)`s expanded.
    #[serde(default)]
    pub command: Sensitive<Vec<String>>,
    /// Kubernetes `args` (replaces the image Cmd), `$(VAR)`s expanded.
    #[serde(default)]
    pub args: Sensitive<Vec<String>>,
    /// Kubernetes `workingDir`.
    pub working_dir: Option<String>,
    /// Environment, in order, added to the image's.
    #[serde(default)]
    pub envs: Sensitive<Vec<(String, String)>>,
    /// Volumes and pod files to bind in.
    pub mounts: Vec<Mount>,
    /// Log file path relative to the sandbox's log directory (`<name>/<attempt>.log`).
    pub log_path: String,
    /// Labels, used to find containers of a pod by name.
    pub labels: BTreeMap<String, String>,
    /// Annotations (CRI keeps them for the kubelet).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Cgroup limits and security context.
    #[serde(default)]
    pub linux: ContainerLinux,
    /// Run on a pseudo-terminal (CRI `tty`): stdout and stderr merged into the terminal's
    /// output (logged as stdout), window sizes from attach sessions.
    #[serde(default)]
    pub tty: bool,
    /// Keep stdin open for [`Runtime::attach`] (CRI `stdin`); otherwise it reads
    /// `/dev/null`.
    #[serde(default)]
    pub stdin: bool,
    /// Close stdin when the first attach session that had it ends (CRI `stdin_once`;
    /// without a TTY, as containerd).
    #[serde(default)]
    pub stdin_once: bool,
}

/// Container state as CRI reports it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum ContainerState {
    /// Created, not started.
    Created,
    /// Its process runs.
    Running,
    /// Its process ended.
    Exited,
    /// The runtime lost track of it.
    Unknown,
}

/// Observed state of one container (CRI `ContainerStatus`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerStatus {
    /// Container id (hex).
    pub id: String,
    /// Its sandbox.
    pub sandbox_id: String,
    /// Config it was created from (name, attempt, image …).
    pub config: ContainerConfig,
    /// Current state.
    pub state: ContainerState,
    /// Unix nanoseconds.
    pub created_at: i64,
    /// Unix nanoseconds, when it started.
    pub started_at: Option<i64>,
    /// Unix nanoseconds, when it exited.
    pub finished_at: Option<i64>,
    /// Exit code once exited (128+signal when killed by a signal).
    pub exit_code: Option<i32>,
    /// Short reason (`Completed`, `Error`, `OOMKilled` …) once exited.
    pub reason: Option<String>,
    /// Resolved image id (`sha256:…`).
    pub image_id: String,
    /// Host pid of the container's main process while running.
    pub pid: Option<u32>,
    /// Absolute path of the log file.
    pub log_path: PathBuf,
}

/// An image known to the runtime (CRI `Image`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ImageInfo {
    /// `sha256:<config digest>`.
    pub id: String,
    /// Normalised references.
    pub repo_tags: Vec<String>,
    /// Bytes of its layers.
    pub size: u64,
    /// `STOPSIGNAL` of the image, if any.
    pub stop_signal: Option<String>,
    /// `name@sha256:…` it was pulled by; empty for images loaded from archives.
    #[serde(default)]
    pub repo_digests: Vec<String>,
    /// Of `repo_tags`, those the image got from an archive and no registry since: with
    /// `imagePullPolicy: Always` podhost uses them as they are (nothing to ask a
    /// registry about; the user chose this image for the name).
    #[serde(default)]
    pub loaded_tags: Vec<String>,
    /// The image config's `User` (`uid`, `name`, `uid:gid` …), when the runtime read it.
    #[serde(default)]
    pub user: Option<String>,
    /// A container of another front door uses it (CRI `pinned`): this viewer must not
    /// collect it. A kubelet's image GC skips pinned images, so it never tries to remove
    /// the image of a pod it cannot see (the runtime would refuse anyway).
    #[serde(default)]
    pub pinned: bool,
}

/// Outcome of [`Runtime::pull_image`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PulledImage {
    /// The image now in the store.
    pub image: ImageInfo,
    /// `name@sha256:…` the registry served for the reference (an index's
    /// digest for multi-platform images).
    #[serde(default)]
    pub repo_digest: String,
    /// Bytes downloaded (0 when every layer was present).
    pub downloaded: u64,
    /// Wall time of the pull in seconds.
    pub seconds: f64,
}

/// Receives pull progress events (for `podhost pull`'s progress bars).
pub type PullProgress = tokio::sync::mpsc::UnboundedSender<podhost_image::pull::PullEvent>;

/// Registry credentials for one pull (CRI `AuthConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

/// Something the runtime noticed on its own (CRI `ContainerEventResponse`).
#[derive(Debug, Clone, PartialEq)]
pub enum RuntimeEvent {
    /// A container's process exited.
    ContainerExited {
        /// Sandbox the container belongs to.
        sandbox_id: String,
        /// The container.
        container_id: String,
    },
    /// The pause process of a sandbox exited.
    SandboxExited {
        /// The sandbox.
        sandbox_id: String,
    },
    /// A sandbox's shim has been silent past its heartbeat: it may be stopped or hung.
    ShimSilent {
        /// The sandbox.
        sandbox_id: String,
    },
}

/// Byte stream of an exec session, speaking the shim's frame protocol
/// (see `podhost_shim::proto`): stdin, stdout, stderr and the exit code, and with a TTY
/// the `RESIZE` frames that stand for CRI's resize channel.
pub type ExecStream = Box<dyn ExecIo>;

pub use podhost_shim::proto::TerminalSize;

/// How an exec session runs (CRI `ExecRequest`'s `tty`, plus the first window size).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// Run on a pseudo-terminal: stdout and stderr arrive merged, resizes apply.
    pub tty: bool,
    /// Window size the terminal has before the command reads anything.
    pub size: Option<TerminalSize>,
}

/// Anything bidirectional and async, for [`ExecStream`] and [`ForwardStream`].
pub trait ExecIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> ExecIo for T {}

/// Which of a running container's streams an attach session gets (CRI `AttachRequest`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttachOptions {
    /// The session writes to the container's stdin (if it was created with one).
    pub stdin: bool,
    /// The session receives stdout (with a TTY: the terminal's whole output).
    pub stdout: bool,
    /// The session receives stderr (nothing comes with a TTY).
    pub stderr: bool,
}

/// A TCP connection to a port inside a pod's network namespace ([`Runtime::port_forward`]).
pub type ForwardStream = Box<dyn ExecIo>;

/// What a finished `exec_sync` command produced (CRI `ExecSyncResponse`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecResult {
    /// Exit code of the command.
    pub exit_code: i32,
    /// Its stdout, capped at [`EXEC_SYNC_MAX_OUTPUT`] bytes.
    pub stdout: Vec<u8>,
    /// Its stderr, capped at [`EXEC_SYNC_MAX_OUTPUT`] bytes.
    pub stderr: Vec<u8>,
}

/// Output kept per stream by `exec_sync` (kubelet keeps 10 KiB of probe output).
pub const EXEC_SYNC_MAX_OUTPUT: usize = 16 * 1024;

/// Reads one frame of an exec or attach stream (`podhost_shim::proto::frame`): its
/// kind and payload; `None` at a clean end between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    use podhost_shim::proto::frame;
    use tokio::io::AsyncReadExt;
    let mut head = [0u8; frame::HEADER];
    let mut got = 0;
    while got < head.len() {
        match r.read(&mut head[got..]).await? {
            0 if got == 0 => return Ok(None),
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => got += n,
        }
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > frame::MAX_PAYLOAD {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "frame of {len} bytes exceeds the {} byte limit",
                frame::MAX_PAYLOAD
            ),
        ));
    }
    let mut data = vec![0u8; len];
    r.read_exact(&mut data).await?;
    Ok(Some((head[0], data)))
}

/// Read an exec stream's frames until its exit frame (the body of `exec_sync`).
async fn collect_exec(
    container_id: &str,
    stream: &mut ExecStream,
) -> Result<ExecResult, RuntimeError> {
    use podhost_shim::proto::frame;
    use tokio::io::AsyncWriteExt;
    let io = |action| {
        let path = PathBuf::from(container_id);
        move |source| RuntimeError::Io {
            action,
            path,
            source,
        }
    };
    // The command gets no stdin: close it at once so `cat`-like commands do not hang.
    let mut close = Vec::new();
    frame::encode(&mut close, frame::STDIN_CLOSE, &[]);
    stream
        .write_all(&close)
        .await
        .map_err(io("exec_sync: closing stdin of"))?;
    let mut out = ExecResult::default();
    loop {
        let (kind, data) = read_frame(stream)
            .await
            .map_err(io("exec_sync: reading output of"))?
            .ok_or_else(|| {
                io("exec_sync: reading output of")(std::io::ErrorKind::UnexpectedEof.into())
            })?;
        let keep = |buf: &mut Vec<u8>, data: &[u8]| {
            let room = EXEC_SYNC_MAX_OUTPUT.saturating_sub(buf.len());
            buf.extend_from_slice(&data[..data.len().min(room)]);
        };
        match kind {
            frame::STDOUT => keep(&mut out.stdout, &data),
            frame::STDERR => keep(&mut out.stderr, &data),
            frame::EXIT if data.len() == 4 => {
                out.exit_code = i32::from_be_bytes([data[0], data[1], data[2], data[3]]);
                return Ok(out);
            }
            _ => {}
        }
    }
}

/// The CRI-shaped interface between the layers above (lifecycle, HTTP API, CRI) and the
/// machine.
#[async_trait::async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// Create and start a sandbox: netns pinned, shim and pause running. Returns its id.
    async fn run_pod_sandbox(&self, config: &SandboxConfig) -> Result<String, RuntimeError>;
    /// Replace a sandbox whose pause died by a new one for the same pod, keeping what can
    /// outlive the pause (the local runtime keeps the pinned netns, so the pod IP stays).
    /// The old sandbox is gone afterwards, even on error.
    async fn recreate_pod_sandbox(
        &self,
        old_id: &str,
        config: &SandboxConfig,
    ) -> Result<String, RuntimeError> {
        self.remove_pod_sandbox(old_id).await?;
        self.run_pod_sandbox(config).await
    }
    /// Stop the pause (containers must be stopped first). Idempotent.
    async fn stop_pod_sandbox(&self, sandbox_id: &str) -> Result<(), RuntimeError>;
    /// Remove everything the sandbox holds (shim, netns pin, shm, files). Idempotent.
    async fn remove_pod_sandbox(&self, sandbox_id: &str) -> Result<(), RuntimeError>;
    /// Current state of a sandbox.
    async fn pod_sandbox_status(&self, sandbox_id: &str) -> Result<SandboxStatus, RuntimeError>;
    /// Every sandbox the runtime knows.
    async fn list_pod_sandboxes(&self) -> Result<Vec<SandboxStatus>, RuntimeError>;
    /// Create a container in a sandbox (not started). Returns its id.
    async fn create_container(
        &self,
        sandbox_id: &str,
        config: &ContainerConfig,
        sandbox: &SandboxConfig,
    ) -> Result<String, RuntimeError>;
    /// Start a created container.
    async fn start_container(&self, container_id: &str) -> Result<(), RuntimeError>;
    /// Send `signal` (SIGTERM or the image's STOPSIGNAL), wait up to `timeout`, then SIGKILL.
    async fn stop_container(
        &self,
        container_id: &str,
        timeout: Duration,
        signal: i32,
    ) -> Result<(), RuntimeError>;
    /// Remove a stopped container and its rootfs. Idempotent.
    async fn remove_container(&self, container_id: &str) -> Result<(), RuntimeError>;
    /// Current state of a container.
    async fn container_status(&self, container_id: &str) -> Result<ContainerStatus, RuntimeError>;
    /// Containers, optionally of one sandbox.
    async fn list_containers(
        &self,
        sandbox_id: Option<&str>,
    ) -> Result<Vec<ContainerStatus>, RuntimeError>;
    /// Run a command in a running container (CRI `Exec`); the stream carries its stdio,
    /// exit code and, with `opts.tty`, terminal resizes.
    async fn exec(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        opts: ExecOptions,
    ) -> Result<ExecStream, RuntimeError>;
    /// Run a command in a running container to completion, within `timeout` (CRI
    /// `ExecSync`): what probes and hooks use. On timeout the session is dropped, which
    /// makes the shim kill the command.
    async fn exec_sync(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecResult, RuntimeError> {
        let mut stream = self
            .exec(container_id, cmd.clone(), ExecOptions::default())
            .await?;
        match tokio::time::timeout(timeout, collect_exec(container_id, &mut stream)).await {
            Ok(r) => r,
            Err(_) => Err(RuntimeError::ExecTimeout {
                container_id: container_id.to_string(),
                cmd,
                timeout,
            }),
        }
    }
    /// Attach to a running container's stdio (CRI `Attach`). The stream speaks the shim's
    /// frame protocol like an exec's: the container's output from now on, STDIN frames
    /// into its stdin, RESIZE frames for its terminal. An EXIT frame with the container's
    /// code ends it when the container exits; the stream ends without one when the
    /// session's end of input (STDIN_CLOSE) ended it. Dropping it detaches.
    async fn attach(
        &self,
        container_id: &str,
        opts: AttachOptions,
    ) -> Result<ExecStream, RuntimeError>;
    /// Connect to `port` on 127.0.0.1 inside the sandbox's network namespace (CRI
    /// `PortForward`; a hostNetwork pod's namespace is the host's).
    async fn port_forward(
        &self,
        sandbox_id: &str,
        port: u16,
    ) -> Result<ForwardStream, RuntimeError>;
    /// The image a reference resolves to, if present.
    async fn image_status(&self, reference: &str) -> Result<Option<ImageInfo>, RuntimeError>;
    /// The same without `pinned` (which a view computes over every container): what a
    /// pod worker asks before each create and stop, where only presence and the stop
    /// signal count.
    async fn image_info(&self, reference: &str) -> Result<Option<ImageInfo>, RuntimeError> {
        self.image_status(reference).await
    }
    /// All images.
    async fn list_images(&self) -> Result<Vec<ImageInfo>, RuntimeError>;
    /// Pull an image from its registry (CRI `PullImage`), with credentials for that
    /// registry when the pod has them (`imagePullSecrets`), reporting progress if asked.
    async fn pull_image(
        &self,
        reference: &str,
        auth: Option<AuthConfig>,
        progress: Option<PullProgress>,
    ) -> Result<PulledImage, RuntimeError>;
    /// Remove an image (CRI `RemoveImage`); refused while a container uses it.
    async fn remove_image(&self, reference: &str) -> Result<(), RuntimeError>;
    /// Load images from an archive (docker-archive, OCI archive or OCI layout directory)
    /// on this machine, tagging a single image with `tag` if given.
    async fn load_image(
        &self,
        path: &std::path::Path,
        tag: Option<&str>,
    ) -> Result<Vec<ImageInfo>, RuntimeError>;
    /// Remove the images no container uses: untagged ones, or all with `all` (like
    /// `docker image prune [-a]`).
    async fn prune_images(&self, all: bool) -> Result<PruneResult, RuntimeError>;
    /// kubelet's image GC: when the image filesystem is fuller than `high` percent,
    /// remove unused images least recently used first until it is below `low`; images
    /// containers use have their last use renewed.
    async fn collect_images(&self, high: u8, low: u8) -> Result<PruneResult, RuntimeError>;
    /// Space used by images (CRI `ImageFsInfo`).
    async fn image_fs_info(&self) -> Result<FsUsage, RuntimeError>;
    /// Cumulative CPU and memory counters of every ready sandbox and its containers (CRI
    /// `ListPodSandboxStats` and `ListContainerStats`).
    async fn list_pod_sandbox_stats(&self) -> Result<Vec<SandboxStats>, RuntimeError>;
    /// [`Runtime::list_pod_sandbox_stats`] with only the writable layers `walk` names
    /// measured (the others' `writable_layer` is `None`).
    async fn pod_sandbox_stats_walking(
        &self,
        _walk: &LayerWalk,
    ) -> Result<Vec<SandboxStats>, RuntimeError> {
        self.list_pod_sandbox_stats().await
    }
    /// Change the cgroup limits of a created or running container (CRI
    /// `UpdateContainerResources`); its status reports them from then on. The OOM score
    /// is fixed at creation and not changed.
    async fn update_container_resources(
        &self,
        container_id: &str,
        resources: &ContainerResources,
    ) -> Result<(), RuntimeError>;
    /// Make the writer of a running container's log reopen its file (CRI
    /// `ReopenContainerLog`), after the file was renamed for rotation.
    async fn reopen_container_log(&self, container_id: &str) -> Result<(), RuntimeError>;
    /// Every recorded sandbox, without asking shims.
    async fn sandbox_refs(&self) -> Result<Vec<SandboxRef>, RuntimeError>;
    /// Every recorded container, without asking shims.
    async fn container_refs(&self) -> Result<Vec<ContainerRef>, RuntimeError>;
    /// The recorded sandbox `id`, if any, without asking its shim.
    async fn sandbox_ref(&self, id: &str) -> Result<Option<SandboxRef>, RuntimeError> {
        Ok(self.sandbox_refs().await?.into_iter().find(|r| r.id == id))
    }
    /// The recorded container `id`, if any, without asking its shim.
    async fn container_ref(&self, id: &str) -> Result<Option<ContainerRef>, RuntimeError> {
        Ok(self
            .container_refs()
            .await?
            .into_iter()
            .find(|r| r.id == id))
    }
    /// Events about exits, so lifecycle reacts without polling (CRI `GetContainerEvents`).
    fn events(&self) -> tokio::sync::broadcast::Receiver<RuntimeEvent>;
    /// Whether [`Self::events`] also tells of a sandbox that stops answering
    /// ([`RuntimeEvent::ShimSilent`]) and of one that is gone: a steady pod then needs no
    /// periodic look of its own.
    fn reports_silence(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    struct Rec {
        name: String,
        #[serde(default)]
        envs: Sensitive<Vec<(String, String)>>,
    }

    #[test]
    fn sensitive_values_are_neither_written_nor_read_nor_printed() {
        let rec = Rec {
            name: "app".into(),
            envs: Sensitive(vec![("PW".into(), "s3cret".into())]),
        };
        assert_eq!(rec.envs[0].1, "s3cret");
        let json = serde_json::to_string(&rec).expect("json");
        assert_eq!(json, r#"{"name":"app","envs":null}"#);
        assert!(!format!("{rec:?}").contains("s3cret"));
        // A record an older podhost wrote with the values, and one without the field.
        let old: Rec =
            serde_json::from_str(r#"{"name":"app","envs":[["PW","s3cret"]]}"#).expect("old");
        assert!(old.envs.is_empty());
        let bare: Rec = serde_json::from_str(r#"{"name":"app"}"#).expect("bare");
        assert!(bare.envs.is_empty());
    }
}
