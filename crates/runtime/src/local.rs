//! The `Runtime` of this machine: per-pod shims, pinned netns, overlay rootfs, OCI bundles.
//!
//! Creation steps register their undo; a failure runs the undos in reverse so nothing
//! half-created stays behind (CRI-O's resource cleaner idea).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use podhost_image::pull::Puller;
use podhost_image::ImageStore;

use super::cgroups::{self, Cgroups};
use super::dial;
use super::mounts;
use super::netns;
use super::network::{Attachment, Network};
use super::shim_client::{is_gone, ShimClient, ShimStatus};
use super::*;
use crate::clock::now_nanos;
use crate::config::RuntimeConfig;
use crate::shim_client::ShimNews;
use crate::state_file::{private_dir, read_json, write_json_atomic, write_json_replace};
use crate::status_cache::{Answer, StatusCache, HEARTBEAT_STALE};
use crate::step;
use podhost_oci::cgroup::CgroupFs;
use podhost_shim::proto::ContainerState as ShimState;
use podhost_shim::proto::{ErrorCode, PAUSE_ID};
use tracing::Instrument;

mod cri_ops;
mod image_gc;
mod images;
mod sandbox;
mod usage;

use cri_ops::LastSeen;

/// Durable record of a sandbox, enough to tear it down after a crash.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SandboxRecord {
    id: String,
    config: SandboxConfig,
    created_at: i64,
    netns_path: PathBuf,
    pause_pid: Option<u32>,
    /// The pod's CNI attachment (owns the netns pin); none for hostNetwork pods.
    #[serde(default)]
    network: Option<Attachment>,
}

/// Durable record of a container, enough to report and remove it after a crash.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ContainerRecord {
    id: String,
    sandbox_id: String,
    config: ContainerConfig,
    created_at: i64,
    image_id: String,
    log_path: PathBuf,
    /// Cgroup of the container relative to the hierarchy root: where its OOM kills are
    /// counted once it has exited.
    #[serde(default)]
    cgroup: String,
    /// What the shim last reported, saved when the sandbox was stopped (the shim and
    /// its memory go with the stop): an exited container stays exited, with its code.
    #[serde(default)]
    last_seen: Option<LastSeen>,
}

/// The runtime of this machine.
pub struct LocalRuntime {
    config: RuntimeConfig,
    /// The machine's cgroup hierarchy (v1 or v2).
    cgroups: Cgroups,
    /// Lowest oom_score_adj a container may get here (negative needs CAP_SYS_RESOURCE).
    oom_score_floor: i32,
    /// Capabilities the runtime itself holds: a container cannot get more.
    host_caps: Option<u64>,
    /// The cgroupfs as container specs need it (v1 hierarchies to make read-only, or v2).
    cgroupfs: CgroupFs,
    images: Arc<ImageStore>,
    /// Registry pulls into `images` (see `images.rs`).
    puller: Arc<Puller>,
    sandboxes: Mutex<HashMap<String, SandboxRecord>>,
    containers: Mutex<HashMap<String, ContainerRecord>>,
    events: broadcast::Sender<RuntimeEvent>,
    /// What each shim last said, for listings and container statuses without a request
    /// per shim (see [`crate::status_cache`]).
    statuses: Arc<StatusCache>,
    network: Network,
    /// Held from the hostPort check until the sandbox is recorded, so two pods cannot
    /// both pass the check for the same port.
    host_ports: tokio::sync::Mutex<()>,
}

/// The host's network namespace, which hostNetwork pods join: the daemon's own. Not
/// PID 1's: opening that needs ptrace rights over init, which root lacks when the
/// bounding set is smaller than init's capabilities (as on these machines).
fn host_netns() -> PathBuf {
    PathBuf::from(format!("/proc/{}/ns/net", std::process::id()))
}

/// Undo steps of a create in progress, run in reverse on failure.
struct Undo(Vec<Box<dyn FnOnce() -> Result<(), RuntimeError> + Send>>);

impl Undo {
    fn new() -> Self {
        Undo(Vec::new())
    }
    fn push(&mut self, f: impl FnOnce() -> Result<(), RuntimeError> + Send + 'static) {
        self.0.push(Box::new(f));
    }
    /// Undo everything; keep the first cleanup failure next to the original error.
    fn fail(self, error: RuntimeError) -> RuntimeError {
        let mut cleanup_err = None;
        for f in self.0.into_iter().rev() {
            if let Err(e) = f() {
                cleanup_err.get_or_insert(e);
            }
        }
        match cleanup_err {
            None => error,
            Some(c) => RuntimeError::WithCleanup {
                error: Box::new(error),
                cleanup: Box::new(c),
            },
        }
    }
}

/// How often a stopping container's status is asked when no exit event came.
const STOP_POLL: Duration = Duration::from_millis(100);

/// Until `events` tells of the exit of `container_id` (or its sandbox), or they lag.
async fn exit_of(
    events: &mut broadcast::Receiver<RuntimeEvent>,
    sandbox_id: &str,
    container_id: &str,
) {
    loop {
        match events.recv().await {
            Ok(RuntimeEvent::ContainerExited {
                container_id: c, ..
            }) if c == container_id => return,
            Ok(RuntimeEvent::SandboxExited { sandbox_id: s }) if s == sandbox_id => return,
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// How long a port-forward connection may take to be accepted inside the pod.
const FORWARD_DIAL_TIMEOUT: Duration = Duration::from_secs(10);

fn new_id() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sigkill() -> i32 {
    libc::SIGKILL
}

impl LocalRuntime {
    /// Open the runtime: the image store, and the records of sandboxes and containers left
    /// by a previous daemon (their shims keep running across daemon restarts).
    pub fn open(config: RuntimeConfig) -> Result<Arc<Self>, RuntimeError> {
        // The run dir first: its tmpfs goes on while it is still empty. Then every top
        // directory, whose mode an older podhost left 0755, is made 0700.
        config.prepare_run_dir()?;
        for d in config.private_dirs() {
            private_dir(&d)?;
        }
        let images =
            ImageStore::open(&config.image_dir()).map_err(|source| RuntimeError::Image {
                reference: String::new(),
                source,
            })?;
        let (events, _) = broadcast::channel(256);
        let network = Network::open(
            &config.network,
            &config.network_state_dir(),
            &config.netns_dir(),
        )?;
        let images = Arc::new(images);
        let cgroups = Cgroups::detect();
        if let Some(limit) = config.pods_memory_limit {
            // Not fatal: pods then run without the node's bound, as before, and say so.
            match cgroups.limit_node(&config.cgroup_parent, limit) {
                Ok(()) => tracing::info!(
                    "node allocatable: cgroup {} limited to {limit} bytes of memory",
                    config.cgroup_parent
                ),
                Err(e) => tracing::warn!(
                    "node allocatable: limiting cgroup {} to {limit} bytes: {e}",
                    config.cgroup_parent
                ),
            }
        }
        // One detection decides both: the pod cgroups podhost writes and what containers see.
        let cgroupfs = match (cgroups.version(), CgroupFs::host()) {
            (cgroups::Version::V2, _) => CgroupFs::V2,
            (cgroups::Version::V1, CgroupFs::V1(hierarchies)) => CgroupFs::V1(hierarchies),
            (cgroups::Version::V1, CgroupFs::V2) => CgroupFs::V1(Vec::new()),
        };
        let rt = Arc::new(LocalRuntime {
            puller: Arc::new(Puller::new(images.clone(), config.registry_config.clone())),
            images,
            cgroups,
            cgroupfs,
            oom_score_floor: lowest_oom_score_adj(),
            host_caps: podhost_oci::caps::host_bounding_mask(),
            network,
            host_ports: tokio::sync::Mutex::new(()),
            sandboxes: Mutex::new(HashMap::new()),
            containers: Mutex::new(HashMap::new()),
            events,
            statuses: Arc::default(),
            config,
        });
        rt.load_records();
        rt.move_legacy_secrets();
        for id in rt.sandbox_ids() {
            rt.watch_shim(&id);
        }
        // Networks of sandboxes a crash left half made or half removed: listed now, before
        // any new sandbox exists, and released in the background.
        let in_use: std::collections::HashSet<String> = rt
            .lock_sandboxes()
            .values()
            .flat_map(|r| [Some(r.id.clone()), r.network.as_ref().map(|a| a.id.clone())])
            .flatten()
            .collect();
        rt.collect_stale_pod_cgroups();
        let half_made = rt.half_made();
        if !half_made.is_empty() {
            let rt2 = rt.clone();
            tokio::spawn(async move { rt2.collect_half_made(half_made).await });
        }
        // Always, even with nothing listed: its end sweeps a shared masquerade rule that
        // a crash between the last pod's DEL and the rule's removal left.
        let (orphans, pins) = rt.network.garbage(&in_use);
        let rt2 = rt.clone();
        tokio::spawn(async move { rt2.network.collect_garbage(orphans, pins).await });
        Ok(rt)
    }

    /// Pod cgroups that no sandbox record owns (a daemon killed between making the
    /// cgroup and recording the sandbox): what runs in them is killed and they are removed.
    /// Synchronous, before any worker can make the same pod's cgroup again.
    fn collect_stale_pod_cgroups(&self) {
        let owned: Vec<String> = self
            .lock_sandboxes()
            .values()
            .map(|r| r.config.uid.clone())
            .collect();
        let parent = &self.config.cgroup_parent;
        for (qos, uid) in self.cgroups.pods(parent) {
            if owned.contains(&uid) {
                continue;
            }
            let killed = self
                .cgroups
                .kill_pod(&cgroups::pod_cgroup(parent, &qos, &uid));
            self.cgroups.remove_pod(parent, &qos, &uid);
            tracing::info!(
                "removed the cgroup of pod uid {uid} (left by an interrupted create; {killed} process(es) killed)"
            );
        }
    }

    /// What a daemon killed in the middle of a create or remove left without a record:
    /// sandbox run dirs (maybe with a live shim) and state dirs, container dirs and
    /// bundles, and containers whose sandbox record is gone. Listed before any new
    /// sandbox exists.
    fn half_made(&self) -> Vec<PathBuf> {
        let sandboxes: Vec<String> = self.sandbox_ids();
        let shorts: Vec<PathBuf> = sandboxes
            .iter()
            .map(|id| self.config.sandbox_run_dir(id))
            .collect();
        let containers: Vec<String> = self
            .lock_containers()
            .values()
            .filter(|c| sandboxes.contains(&c.sandbox_id))
            .map(|c| c.id.clone())
            .collect();
        let entries = |dir: PathBuf| {
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .collect::<Vec<_>>()
        };
        let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
        let mut out: Vec<PathBuf> = entries(self.config.run_dir.join("s"))
            .into_iter()
            .filter(|p| !shorts.contains(p))
            .collect();
        out.extend(
            entries(self.config.state_dir.join("sandboxes"))
                .into_iter()
                .filter(|p| name(p).is_none_or(|n| !sandboxes.contains(&n))),
        );
        out.extend(
            entries(self.config.state_dir.join("containers"))
                .into_iter()
                .filter(|p| name(p).is_none_or(|n| !containers.contains(&n))),
        );
        for dir in [
            self.config.runc_root(),
            self.config.run_dir.join("containers"),
        ] {
            out.extend(
                entries(dir)
                    .into_iter()
                    .filter(|p| name(p).is_none_or(|n| !containers.contains(&n))),
            );
        }
        out
    }

    /// Remove what [`LocalRuntime::half_made`] listed: a shim still listening is told to
    /// shut down (it kills its pause and containers), mounts are detached, dirs removed.
    async fn collect_half_made(&self, paths: Vec<PathBuf>) {
        for p in paths {
            let sock = p.join("shim.sock");
            if sock.exists() {
                let client = ShimClient::new("(no record)", &sock);
                if let Err(e) = client.stop(false).await {
                    tracing::warn!("shutting down the shim at {}: {e}", sock.display())
                }
            }
            let id = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            self.lock_containers().remove(&id);
            let res = mounts::unmount(&p.join("shm"))
                .and_then(|()| mounts::unmount(&p.join("rootfs")))
                .and_then(|()| mounts::remove_dir(&p));
            match res {
                Ok(()) => tracing::info!(
                    "removed {} (left by an interrupted create or remove)",
                    p.display()
                ),
                Err(e) => tracing::warn!(
                    "removing {} (left by an interrupted create or remove): {e}",
                    p.display()
                ),
            }
        }
    }

    fn load_records(&self) {
        for r in records::<SandboxRecord>(&self.config.state_dir.join("sandboxes"), "sandbox.json")
        {
            self.lock_sandboxes().insert(r.id.clone(), r);
        }
        for r in
            records::<ContainerRecord>(&self.config.state_dir.join("containers"), "container.json")
        {
            self.lock_containers().insert(r.id.clone(), r);
        }
    }

    /// An older podhost kept each container's resolved environment on the disk, in its
    /// record and its bundle: the records (read without it) are written again, and
    /// each bundle moves to the run dir, leaving a symlink where libcontainer, which
    /// recorded the old path, reads it for execs.
    fn move_legacy_secrets(&self) {
        let records: Vec<ContainerRecord> = self.lock_containers().values().cloned().collect();
        for rec in records {
            let dir = self.config.container_dir(&rec.id);
            let moved = write_json_atomic(&dir.join("container.json"), &rec).and_then(|()| {
                move_bundle_spec(&dir.join("config.json"), &self.config.bundle_dir(&rec.id))
            });
            match moved {
                Ok(false) => {}
                Ok(true) => tracing::info!(
                    "container {}: its spec moved to {} (it holds its environment)",
                    rec.id,
                    self.config.bundle_dir(&rec.id).display()
                ),
                Err(e) => tracing::warn!("container {}: {e}", rec.id),
            }
        }
    }

    fn lock_sandboxes(&self) -> std::sync::MutexGuard<'_, HashMap<String, SandboxRecord>> {
        self.sandboxes.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn lock_containers(&self) -> std::sync::MutexGuard<'_, HashMap<String, ContainerRecord>> {
        self.containers.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn sandbox_ids(&self) -> Vec<String> {
        self.lock_sandboxes().keys().cloned().collect()
    }

    fn sandbox(&self, id: &str) -> Result<SandboxRecord, RuntimeError> {
        self.lock_sandboxes()
            .get(id)
            .cloned()
            .ok_or_else(|| RuntimeError::SandboxNotFound(id.to_string()))
    }
    fn container(&self, id: &str) -> Result<ContainerRecord, RuntimeError> {
        self.lock_containers()
            .get(id)
            .cloned()
            .ok_or_else(|| RuntimeError::ContainerNotFound(id.to_string()))
    }

    fn shim(&self, sandbox_id: &str) -> ShimClient {
        ShimClient::new(sandbox_id, &self.shim_socket(sandbox_id))
            .invalidating(self.statuses.clone())
    }

    fn shim_socket(&self, sandbox_id: &str) -> PathBuf {
        self.config.sandbox_run_dir(sandbox_id).join("shim.sock")
    }

    /// Forward the shim's exit events to subscribers, and its silence (a stopped or
    /// hung shim cannot report itself); keep its heartbeats for the status cache; report
    /// the sandbox gone when the shim is.
    fn watch_shim(&self, sandbox_id: &str) {
        let client = self.shim(sandbox_id);
        let tx = self.events.clone();
        let sid = sandbox_id.to_string();
        let statuses = self.statuses.clone();
        tokio::spawn(async move {
            let (tx2, sid2, statuses2) = (tx.clone(), sid.clone(), statuses.clone());
            let _ = client
                .subscribe(HEARTBEAT_STALE, move |news| {
                    let ev = match news {
                        ShimNews::Alive => {
                            statuses2.alive(&sid2, std::time::Instant::now());
                            return;
                        }
                        ShimNews::Silent => RuntimeEvent::ShimSilent {
                            sandbox_id: sid2.clone(),
                        },
                        ShimNews::Exit(id) if id == PAUSE_ID => RuntimeEvent::SandboxExited {
                            sandbox_id: sid2.clone(),
                        },
                        ShimNews::Exit(id) => RuntimeEvent::ContainerExited {
                            sandbox_id: sid2.clone(),
                            container_id: id,
                        },
                    };
                    // Before the event goes out: whoever acts on it asks the shim.
                    statuses2.invalidate(&sid2);
                    let _ = tx2.send(ev);
                })
                .await;
            statuses.invalidate(&sid);
            let _ = tx.send(RuntimeEvent::SandboxExited { sandbox_id: sid });
        });
    }

    async fn shim_status(&self, sandbox_id: &str) -> Option<ShimStatus> {
        self.ask_shim(sandbox_id).await.ok()
    }

    /// The shim's status, asked now; the answer is kept for [`Self::cached_shim_status`].
    async fn ask_shim(&self, sandbox_id: &str) -> Result<ShimStatus, RuntimeError> {
        let generation = self.statuses.begin(sandbox_id);
        let r = self.shim(sandbox_id).status().await;
        let answer = match &r {
            Ok(s) => Some(Answer::Status(s.clone())),
            Err(RuntimeError::ShimUnresponsive { op, timeout, .. }) => Some(Answer::Unresponsive {
                op,
                timeout: *timeout,
            }),
            // Gone: asking again costs a failed connect, and the record may yet change.
            Err(_) => None,
        };
        if let Some(a) = answer {
            self.statuses
                .store(sandbox_id, generation, a, std::time::Instant::now());
        }
        r
    }

    /// The shim's last status while nothing can have changed it (no exit event, no
    /// request of ours since, younger than the cache's time to live), else asked now.
    async fn cached_shim_status(&self, sandbox_id: &str) -> Result<ShimStatus, RuntimeError> {
        match self.statuses.get(sandbox_id, std::time::Instant::now()) {
            Some(Answer::Status(s)) => Ok(s),
            Some(Answer::Unresponsive { op, timeout }) => Err(RuntimeError::ShimUnresponsive {
                sandbox_id: sandbox_id.to_string(),
                op,
                socket: self.shim_socket(sandbox_id),
                timeout,
            }),
            None => self.ask_shim(sandbox_id).await,
        }
    }

    /// A sandbox's status from its record and its shim's answer.
    fn sandbox_status_of(
        &self,
        rec: &SandboxRecord,
        shim: Result<ShimStatus, RuntimeError>,
    ) -> SandboxStatus {
        let (st, state, not_ready_reason) = match shim {
            Ok(s) if s.pause_running => (Some(s), SandboxState::Ready, None),
            Ok(s) => (
                Some(s),
                SandboxState::NotReady,
                Some("the pause process exited".to_string()),
            ),
            Err(e @ RuntimeError::ShimUnresponsive { .. }) => {
                (None, SandboxState::Unknown, Some(e.to_string()))
            }
            Err(e) => (None, SandboxState::NotReady, Some(e.to_string())),
        };
        SandboxStatus {
            not_ready_reason,
            id: rec.id.clone(),
            config: rec.config.clone(),
            state,
            created_at: rec.created_at,
            pause_pid: st.and_then(|s| s.pause_pid).or(rec.pause_pid),
            ip: rec.network.as_ref().and_then(|a| a.ips.first().cloned()),
            additional_ips: rec
                .network
                .as_ref()
                .map(|a| a.ips.iter().skip(1).cloned().collect())
                .unwrap_or_default(),
            netns_path: rec.netns_path.clone(),
        }
    }

    async fn start_shim(
        &self,
        id: &str,
        cfg: &SandboxConfig,
        pin: &Path,
    ) -> Result<u32, RuntimeError> {
        let dir = self.config.sandbox_run_dir(id);
        // Under a kubelet its container log manager rotates (and asks ReopenContainerLog):
        // a second rotator in the shim would rename files under its feet.
        let rotation = match cfg.owner {
            Owner::Cri => None,
            Owner::Podhost => self.config.container_log_rotation,
        };
        let rotation = rotation.map(|p| {
            [
                "--log-max-size".to_string(),
                p.max_size.to_string(),
                "--log-max-files".to_string(),
                p.max_files.to_string(),
            ]
        });
        let out = tokio::process::Command::new(self.config.bin("podhost-shim"))
            .arg("--id")
            .arg(id)
            .arg("--dir")
            .arg(&dir)
            .arg("--netns")
            .arg(pin)
            .arg("--hostname")
            .arg(&cfg.hostname)
            .arg("--pause")
            .arg(self.config.bin("pause"))
            .arg("--runc")
            .arg(self.config.bin("podhost-runc"))
            .arg("--runc-root")
            .arg(self.config.runc_root())
            .args(cfg.linux.host_pid.then_some("--host-pid"))
            .args(cfg.linux.host_ipc.then_some("--host-ipc"))
            .args(cfg.host_network.then_some("--host-uts"))
            .args(rotation.iter().flatten())
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| RuntimeError::ShimStart {
                sandbox_id: id.to_string(),
                message: format!("running {}: {e}", self.config.bin("podhost-shim").display()),
            })?;
        if !out.status.success() {
            return Err(RuntimeError::ShimStart {
                sandbox_id: id.to_string(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| RuntimeError::ShimStart {
                sandbox_id: id.to_string(),
                message: format!(
                    "unreadable readiness line {:?}: {e}",
                    String::from_utf8_lossy(&out.stdout)
                ),
            })?;
        if let Some(us) = v.get("pause_us").and_then(serde_json::Value::as_u64) {
            tracing::Span::current().record("pause_us", us);
        }
        v.get("pause_pid")
            .and_then(serde_json::Value::as_u64)
            .map(|p| p as u32)
            .ok_or_else(|| RuntimeError::ShimStart {
                sandbox_id: id.to_string(),
                message: "no pause_pid".into(),
            })
    }

    /// Resolve the image and build the OCI spec of a container.
    fn container_params(
        &self,
        sandbox: &SandboxRecord,
        cfg: &ContainerConfig,
        rootfs: &Path,
        image_cfg: &oci_spec::image::ImageConfiguration,
        pause_pid: u32,
        cid: &str,
    ) -> Result<podhost_oci::ContainerParams, RuntimeError> {
        let icfg = image_cfg.config().clone().unwrap_or_default();
        let entrypoint = icfg.entrypoint().clone().unwrap_or_default();
        let cmd = icfg.cmd().clone().unwrap_or_default();
        // Kubernetes: command replaces Entrypoint (and drops Cmd); args replace Cmd.
        let args = match (cfg.command.is_empty(), cfg.args.is_empty()) {
            (false, _) => cfg.command.iter().chain(cfg.args.iter()).cloned().collect(),
            (true, false) => entrypoint.iter().chain(cfg.args.iter()).cloned().collect(),
            (true, true) => entrypoint.iter().chain(cmd.iter()).cloned().collect(),
        };
        let mut env: Vec<(String, String)> = Vec::new();
        let mut set = |k: &str, v: &str| {
            if let Some(slot) = env.iter_mut().find(|(ek, _)| ek == k) {
                slot.1 = v.to_string();
            } else {
                env.push((k.to_string(), v.to_string()));
            }
        };
        set(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        );
        for kv in icfg.env().clone().unwrap_or_default() {
            let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
            set(k, v);
        }
        set("HOSTNAME", &sandbox.config.hostname);
        for (k, v) in cfg.envs.iter() {
            set(k, v);
        }
        let cwd = cfg
            .working_dir
            .clone()
            .or_else(|| icfg.working_dir().clone().filter(|w| !w.is_empty()))
            .unwrap_or_else(|| "/".to_string());
        let sec = &cfg.linux.security;
        let (uid, gid, image_groups) = cri_ops::container_user(rootfs, &icfg, cfg)?;
        let ns = |n: &str| Some(PathBuf::from(format!("/proc/{pause_pid}/ns/{n}")));
        let sb_state = self.config.sandbox_state_dir(&sandbox.id);
        let mut mounts: Vec<podhost_oci::BindMount> = cfg
            .mounts
            .iter()
            .map(|m| podhost_oci::BindMount {
                source: m.host_path.clone(),
                destination: m.container_path.clone().into(),
                readonly: m.readonly,
                propagation: match m.propagation {
                    Propagation::Private => podhost_oci::Propagation::Private,
                    Propagation::HostToContainer => podhost_oci::Propagation::Slave,
                    Propagation::Bidirectional => podhost_oci::Propagation::Shared,
                },
            })
            .collect();
        for (file, dest) in [
            ("hosts", "/etc/hosts"),
            ("hostname", "/etc/hostname"),
            ("resolv.conf", "/etc/resolv.conf"),
        ] {
            if !cfg.mounts.iter().any(|m| m.container_path == dest) {
                mounts.push(podhost_oci::BindMount {
                    source: sb_state.join(file),
                    destination: dest.into(),
                    readonly: false,
                    ..Default::default()
                });
            }
        }
        mounts.push(podhost_oci::BindMount {
            source: self.config.sandbox_run_dir(&sandbox.id).join("shm"),
            destination: "/dev/shm".into(),
            readonly: false,
            ..Default::default()
        });
        Ok(podhost_oci::ContainerParams {
            rootfs: rootfs.to_path_buf(),
            args,
            env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
            cwd,
            uid,
            gid,
            additional_gids: sec
                .supplemental_groups
                .iter()
                .filter_map(|g| u32::try_from(*g).ok())
                .chain(image_groups)
                .collect(),
            namespaces: podhost_oci::PodNamespaces {
                net: ns("net"),
                // hostIPC: no entry, the host's namespace (the pause kept it too).
                ipc: if sandbox.config.linux.host_ipc {
                    None
                } else {
                    ns("ipc")
                },
                uts: ns("uts"),
                pid: if sandbox.config.share_pid {
                    ns("pid")
                } else {
                    None
                },
                host_pid: sandbox.config.linux.host_pid,
            },
            mounts,
            cgroups_path: format!(
                "/{}",
                self.container_cgroup(&sandbox.id, &sandbox.config, cid)
            ),
            cgroupfs: self.cgroupfs.clone(),
            readonly_rootfs: sec.readonly_rootfs,
            terminal: cfg.tty,
            resources: podhost_oci::Resources {
                cpu_shares: cfg.linux.resources.cpu_shares,
                cpu_quota: cfg.linux.resources.cpu_quota,
                cpu_period: cfg.linux.resources.cpu_period,
                memory_limit: cfg.linux.resources.memory_limit,
                pids_limit: None,
            },
            oom_score_adj: cfg
                .linux
                .resources
                .oom_score_adj
                .map(|v| v.max(self.oom_score_floor)),
            security: podhost_oci::Security {
                privileged: sec.privileged,
                cap_add: sec.cap_add.clone(),
                cap_drop: sec.cap_drop.clone(),
                host_cap_mask: self.host_caps,
                no_new_privileges: sec.no_new_privs,
                seccomp: match &sec.seccomp {
                    SeccompProfile::Unconfined => podhost_oci::Seccomp::Unconfined,
                    SeccompProfile::RuntimeDefault => podhost_oci::Seccomp::RuntimeDefault,
                    SeccompProfile::Localhost(name) => podhost_oci::Seccomp::Localhost(
                        self.config.seccomp_dir().join(name.trim_start_matches('/')),
                    ),
                    SeccompProfile::Path(path) => podhost_oci::Seccomp::Localhost(path.clone()),
                },
                unmasked_proc: sec.unmasked_proc,
                sysctls: sec.sysctls.clone(),
                masked_paths: sec.masked_paths.clone(),
                readonly_paths: sec.readonly_paths.clone(),
            },
        })
    }

    /// The sandbox's cgroup, relative to the hierarchy root: podhost's pod cgroup, or,
    /// below a kubelet's pod cgroup, one per sandbox (a pod's stopped sandbox and its new
    /// one live side by side there until the kubelet removes the old).
    fn pod_cgroup(&self, sandbox_id: &str, sb: &SandboxConfig) -> String {
        match &sb.linux.cgroup_parent {
            Some(parent) => format!("{}/{sandbox_id}", parent.trim_matches('/')),
            None => cgroups::pod_cgroup(&self.config.cgroup_parent, &sb.linux.qos_class, &sb.uid),
        }
    }

    /// A container's cgroup, inside its sandbox's.
    fn container_cgroup(&self, sandbox_id: &str, sb: &SandboxConfig, cid: &str) -> String {
        format!("{}/{cid}", self.pod_cgroup(sandbox_id, sb))
    }

    fn status_from(&self, rec: &ContainerRecord, shim: Option<&ShimStatus>) -> ContainerStatus {
        let sc = shim.and_then(|s| s.containers.iter().find(|c| c.id == rec.id));
        let (state, pid, started_at, finished_at, exit_code) = match sc {
            Some(c) => {
                let st = match c.state {
                    ShimState::Created => ContainerState::Created,
                    ShimState::Running => ContainerState::Running,
                    ShimState::Exited => ContainerState::Exited,
                };
                (
                    st,
                    u32::try_from(c.pid).ok(),
                    c.started_at,
                    c.finished_at,
                    c.exit_code,
                )
            }
            // The shim is gone: what it said last, if the sandbox's stop saved it.
            None => match &rec.last_seen {
                Some(l) => (l.state(), None, l.started_at, l.finished_at, l.exit_code),
                None => (ContainerState::Unknown, None, None, None, None),
            },
        };
        // The memory cgroup counts its OOM kills; it stays until the container is removed.
        let oom_killed = state == ContainerState::Exited
            && !rec.cgroup.is_empty()
            && self.cgroups.oom_kills(&rec.cgroup).unwrap_or(0) > 0;
        let reason = exit_code.map(|c| {
            if oom_killed {
                "OOMKilled"
            } else if c == 0 {
                "Completed"
            } else {
                "Error"
            }
            .to_string()
        });
        ContainerStatus {
            id: rec.id.clone(),
            sandbox_id: rec.sandbox_id.clone(),
            config: rec.config.clone(),
            state,
            created_at: rec.created_at,
            started_at,
            finished_at,
            exit_code,
            reason,
            image_id: rec.image_id.clone(),
            pid: if state == ContainerState::Running {
                pid
            } else {
                None
            },
            log_path: rec.log_path.clone(),
        }
    }

    /// Remove a container's host-side resources (rootfs mount, its directory, its bundle,
    /// its record).
    fn remove_container_files(&self, id: &str) -> Result<(), RuntimeError> {
        self.container_files(id).remove()?;
        self.lock_containers().remove(id);
        Ok(())
    }

    /// Where container `id`'s host-side files are.
    fn container_files(&self, id: &str) -> ContainerFiles {
        ContainerFiles {
            dir: self.config.container_dir(id),
            bundle: self.config.bundle_dir(id),
            runc_state: self.config.runc_root().join(id),
        }
    }
}

/// A container's host-side files: its directory (with the rootfs mount), its bundle and
/// libcontainer's state of it.
struct ContainerFiles {
    dir: PathBuf,
    bundle: PathBuf,
    runc_state: PathBuf,
}

impl ContainerFiles {
    /// Unmount the rootfs and remove the three trees.
    fn remove(&self) -> Result<(), RuntimeError> {
        mounts::unmount(&self.dir.join("rootfs"))?;
        mounts::remove_dir(&self.dir)?;
        mounts::remove_dir(&self.bundle)?;
        // libcontainer's state of the container: the shim deletes it, unless the shim
        // died first; then it is ours to remove.
        mounts::remove_dir(&self.runc_state)
    }
}

/// Moves the regular file `spec` (an older podhost's `config.json` on the disk) to
/// `bundle/config.json` (0600 in a 0700 dir) and puts a symlink to it in its place.
/// Returns whether there was one to move.
/// The PID namespace a container joins with CRI's mode TARGET: the target's, seen
/// through its process. The target must run in the same sandbox. Its namespace is never
/// the host's unless the pod runs with hostPID: a pid reused by a host process since the
/// shim reported it must not hand the new container the host's processes.
fn target_pid_namespace(
    sandbox_id: &str,
    sandbox: &SandboxConfig,
    status: Option<&ShimStatus>,
    target: &str,
) -> Result<PathBuf, RuntimeError> {
    let refuse = |message: String| RuntimeError::Shim {
        sandbox_id: sandbox_id.to_string(),
        op: "create_container",
        code: ErrorCode::FailedPrecondition,
        message,
    };
    let pid = status
        .and_then(|s| {
            s.containers
                .iter()
                .find(|c| c.id == target && c.state == ShimState::Running)
        })
        .and_then(|c| u32::try_from(c.pid).ok())
        .filter(|p| *p > 0)
        .ok_or_else(|| {
            refuse(format!(
                "target container {target} is not running in this sandbox"
            ))
        })?;
    let path = PathBuf::from(format!("/proc/{pid}/ns/pid"));
    let inode = |p: &Path| std::fs::metadata(p).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    let theirs = inode(&path).map_err(RuntimeError::io(
        "reading the target's PID namespace",
        &path,
    ))?;
    let host = Path::new("/proc/self/ns/pid");
    let ours = inode(host).map_err(RuntimeError::io("reading the host's PID namespace", host))?;
    if theirs == ours && !sandbox.linux.host_pid {
        return Err(refuse(format!(
            "target container {target}: process {pid} is in the host's PID namespace (it exited and its pid was reused?)"
        )));
    }
    Ok(path)
}

fn move_bundle_spec(spec: &Path, bundle: &Path) -> Result<bool, RuntimeError> {
    use std::os::unix::fs::OpenOptionsExt;
    if !std::fs::symlink_metadata(spec).is_ok_and(|m| m.is_file()) {
        return Ok(false);
    }
    private_dir(bundle)?;
    let target = bundle.join("config.json");
    let data = std::fs::read(spec).map_err(RuntimeError::io("reading", spec))?;
    let _ = std::fs::remove_file(&target);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&target)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &data))
        .map_err(RuntimeError::io("writing", &target))?;
    // The link replaces the file in one rename: an exec never finds no spec.
    let link = spec.with_extension("json.link");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&target, &link).map_err(RuntimeError::io("linking", &link))?;
    std::fs::rename(&link, spec).map_err(RuntimeError::io("renaming into", spec))?;
    Ok(true)
}

/// Every `<root>/*/<file>` record; unreadable ones are reported and skipped so that one
/// corrupt file does not stop the others from being recovered.
fn records<T: serde::de::DeserializeOwned>(root: &Path, file: &str) -> Vec<T> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        match read_json::<T>(&e.path().join(file)) {
            Ok(Some(r)) => out.push(r),
            Ok(None) => {}
            Err(err) => tracing::warn!("skipping record: {err}"),
        }
    }
    out
}

/// kubelet's runAsNonRoot check (verifyRunAsNonRoot), with the same messages.
fn verify_run_as_non_root(
    cfg: &ContainerConfig,
    image_user: &str,
    uid: u32,
) -> Result<(), RuntimeError> {
    let sec = &cfg.linux.security;
    if !sec.run_as_non_root {
        return Ok(());
    }
    if let Some(u) = sec.run_as_user {
        if u == 0 {
            return Err(RuntimeError::ContainerConfig(format!(
                "container's runAsUser breaks non-root policy (container: {})",
                cfg.name
            )));
        }
        return Ok(());
    }
    let name = image_user.split(':').next().unwrap_or("");
    if !name.is_empty() && name.parse::<u32>().is_err() {
        return Err(RuntimeError::ContainerConfig(format!(
            "container has runAsNonRoot and image has non-numeric user ({name}), cannot verify user is non-root (container: {})",
            cfg.name
        )));
    }
    if uid == 0 {
        return Err(RuntimeError::ContainerConfig(format!(
            "container has runAsNonRoot and image will run as root (container: {})",
            cfg.name
        )));
    }
    Ok(())
}

/// The lowest oom_score_adj this machine lets the runtime give: lowering a score below
/// the inherited one needs CAP_SYS_RESOURCE, which some machines withhold even from
/// root. Probed once in a child shell (so the daemon's own score is untouched); when
/// refused, containers get no lower than the daemon's own score.
fn lowest_oom_score_adj() -> i32 {
    let refused = !std::process::Command::new("/bin/sh")
        .args(["-c", "echo -997 > /proc/self/oom_score_adj"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !refused {
        return -1000;
    }
    let own = std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    tracing::info!(
        "negative oom_score_adj not permitted here (no CAP_SYS_RESOURCE): containers get at least {own}"
    );
    own
}

fn write_file(path: &Path, text: &str) -> Result<(), RuntimeError> {
    std::fs::write(path, text).map_err(RuntimeError::io("writing", path))
}

impl LocalRuntime {
    /// CreateContainer's steps, each a start-up span: image, rootfs, bundle, helper.
    async fn create_container_steps(
        &self,
        sandbox_id: &str,
        sandbox: SandboxRecord,
        cfg: &ContainerConfig,
    ) -> Result<String, RuntimeError> {
        let status = self
            .shim_status(sandbox_id)
            .instrument(crate::step!("shim_status"))
            .await;
        let pause_pid = match &status {
            Some(ShimStatus {
                pause_running: true,
                pause_pid: Some(p),
                ..
            }) => *p,
            _ => {
                return Err(RuntimeError::Shim {
                    sandbox_id: sandbox_id.to_string(),
                    op: "create_container",
                    code: ErrorCode::FailedPrecondition,
                    message: "sandbox is not ready (pause not running)".into(),
                })
            }
        };
        let pid_ns = match &cfg.linux.pid_target {
            Some(target) => Some(target_pid_namespace(
                sandbox_id,
                &sandbox.config,
                status.as_ref(),
                target,
            )?),
            None => None,
        };
        let images = self.images.clone();
        let reference = cfg.image.clone();
        let image_span = crate::step!("image");
        let (image, image_cfg, layers) = tokio::task::spawn_blocking(move || {
            let _in = image_span.enter();
            let img = images
                .get(&reference)
                .map_err(|source| RuntimeError::Image {
                    reference: reference.clone(),
                    source,
                })?
                .ok_or_else(|| RuntimeError::ImageNotFound {
                    reference: reference.clone(),
                })?;
            let icfg = images.config(&img).map_err(|source| RuntimeError::Image {
                reference: reference.clone(),
                source,
            })?;
            let layers = images
                .layer_dirs(&img)
                .map_err(|source| RuntimeError::Image {
                    reference: reference.clone(),
                    source,
                })?;
            // For least-recently-used GC. A failed write costs only GC order: the
            // container is still created.
            if let Err(e) = images.mark_used(&img.id, podhost_image::now_ms()) {
                tracing::warn!("image {}: recording its use: {e}", img.id);
            }
            Ok::<_, RuntimeError>((img, icfg, layers))
        })
        .await
        .map_err(|e| RuntimeError::Io {
            action: "image lookup task",
            path: PathBuf::new(),
            source: std::io::Error::other(e),
        })??;

        let id = new_id();
        let dir = self.config.container_dir(&id);
        let bundle = self.config.bundle_dir(&id);
        let rootfs = dir.join("rootfs");
        // No log directory or path (a CRI client may give none): output is discarded.
        let log_path =
            match cfg.log_path.is_empty() || sandbox.config.log_directory.as_os_str().is_empty() {
                true => PathBuf::new(),
                false => sandbox.config.log_directory.join(&cfg.log_path),
            };
        let mut undo = Undo::new();
        let steps = async {
            step!("dirs").in_scope(|| {
                for d in [&dir, &bundle] {
                    private_dir(d)?;
                    let d = d.clone();
                    undo.push(move || mounts::remove_dir(&d));
                }
                Ok::<(), RuntimeError>(())
            })?;
            step!("overlay").in_scope(|| {
                mounts::mount_overlay(&layers, &dir.join("upper"), &dir.join("work"), &rootfs)
            })?;
            let r = rootfs.clone();
            undo.push(move || mounts::unmount(&r));
            let bundle_span = step!("bundle").entered();
            let params =
                self.container_params(&sandbox, cfg, &rootfs, &image_cfg, pause_pid, &id)?;
            let mut params = params;
            if let Some(ns) = &pid_ns {
                params.namespaces.pid = Some(ns.clone());
            }
            let image_user = image_cfg
                .config()
                .as_ref()
                .and_then(|c| c.user().clone())
                .unwrap_or_default();
            verify_run_as_non_root(cfg, &image_user, params.uid)?;
            let spec =
                podhost_oci::container_spec(&params).map_err(|source| RuntimeError::Oci {
                    container: cfg.name.clone(),
                    source,
                })?;
            // The spec holds the resolved environment: it goes to the run dir's tmpfs
            // (0600), never next to the durable record.
            podhost_oci::write_bundle(&bundle, &spec).map_err(|source| RuntimeError::Oci {
                container: cfg.name.clone(),
                source,
            })?;
            if let Some(p) = log_path.parent() {
                std::fs::create_dir_all(p).map_err(RuntimeError::io("creating log dir", p))?;
            }
            drop(bundle_span);
            let rec = ContainerRecord {
                id: id.clone(),
                sandbox_id: sandbox_id.to_string(),
                config: cfg.clone(),
                created_at: now_nanos(),
                image_id: image.id.clone(),
                log_path: log_path.clone(),
                cgroup: self.container_cgroup(sandbox_id, &sandbox.config, &id),
                last_seen: None,
            };
            // No fsync (see the sandbox record): a lost record makes the dir half made.
            step!("record").in_scope(|| write_json_replace(&dir.join("container.json"), &rec))?;
            let shim_log = match log_path.as_os_str().is_empty() {
                true => Path::new("/dev/null"),
                false => log_path.as_path(),
            };
            self.shim(sandbox_id)
                .create_container(&id, &bundle, shim_log, cfg)
                .instrument(step!("create", helper_us = tracing::field::Empty))
                .await
                .map_err(|e| e.executable_not_found(&id))?;
            // libcontainer makes its state dir 0755, and podhost-runc's exec writes the
            // container's process there (its environment) for a moment.
            let state = self.config.runc_root().join(&id);
            if let Err(e) = private_dir(&state) {
                tracing::warn!("container {id}: {e}");
            }
            self.lock_containers().insert(id.clone(), rec);
            Ok::<(), RuntimeError>(())
        }
        .await;
        match steps {
            Ok(()) => Ok(id),
            Err(e) => Err(undo.fail(e)),
        }
    }
}

#[async_trait::async_trait]
impl Runtime for LocalRuntime {
    async fn run_pod_sandbox(&self, cfg: &SandboxConfig) -> Result<String, RuntimeError> {
        self.create_sandbox(cfg, None).await
    }

    async fn recreate_pod_sandbox(
        &self,
        old_id: &str,
        cfg: &SandboxConfig,
    ) -> Result<String, RuntimeError> {
        // Same pod, same network mode: the new sandbox takes the old one's netns and CNI
        // result over, so the pod keeps its IP (Kubernetes would give a new one).
        let keep = self
            .sandbox(old_id)
            .is_ok_and(|r| r.config.uid == cfg.uid && r.config.host_network == cfg.host_network);
        let kept = self.remove_sandbox(old_id, keep).await?;
        self.create_sandbox(cfg, kept).await
    }

    async fn stop_pod_sandbox(&self, sandbox_id: &str) -> Result<(), RuntimeError> {
        self.stop_sandbox(sandbox_id, true, false).await
    }

    async fn remove_pod_sandbox(&self, sandbox_id: &str) -> Result<(), RuntimeError> {
        self.remove_sandbox(sandbox_id, false).await.map(drop)
    }

    /// Asks the shim unless its heartbeat is recent and nothing changed since its last
    /// answer: the pod worker's check of a shim that cannot report being stopped or hung
    /// relies on that (a silent shim is asked, and found unresponsive).
    async fn pod_sandbox_status(&self, sandbox_id: &str) -> Result<SandboxStatus, RuntimeError> {
        let rec = self.sandbox(sandbox_id)?;
        let shim = match self
            .statuses
            .get_live(sandbox_id, std::time::Instant::now())
        {
            Some(s) => Ok(s),
            None => self.ask_shim(sandbox_id).await,
        };
        Ok(self.sandbox_status_of(&rec, shim))
    }

    async fn list_pod_sandboxes(&self) -> Result<Vec<SandboxStatus>, RuntimeError> {
        let recs: Vec<SandboxRecord> = self.lock_sandboxes().values().cloned().collect();
        // From the cache; the shims of the others all at once.
        let all = futures_util::future::join_all(recs.into_iter().map(|rec| async move {
            let shim = self.cached_shim_status(&rec.id).await;
            self.sandbox_status_of(&rec, shim)
        }))
        .await;
        let mut out: Vec<SandboxStatus> = all;
        out.sort_by_key(|s| s.created_at);
        Ok(out)
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        cfg: &ContainerConfig,
        _sandbox: &SandboxConfig,
    ) -> Result<String, RuntimeError> {
        let sandbox = self.sandbox(sandbox_id)?;
        let root = crate::step!(
            "container",
            pod = %format_args!("{}/{}", sandbox.config.namespace, sandbox.config.name),
            container = %cfg.name
        );
        self.create_container_steps(sandbox_id, sandbox, cfg)
            .instrument(root)
            .await
    }

    async fn start_container(&self, container_id: &str) -> Result<(), RuntimeError> {
        let rec = self.container(container_id)?;
        let pod = self
            .sandbox(&rec.sandbox_id)
            .map(|s| format!("{}/{}", s.config.namespace, s.config.name))
            .unwrap_or_default();
        let root = crate::step!(
            "start",
            pod = %pod,
            container = %rec.config.name,
            helper_us = tracing::field::Empty
        );
        self.shim(&rec.sandbox_id)
            .start_container(container_id)
            .instrument(root)
            .await
    }

    async fn stop_container(
        &self,
        container_id: &str,
        timeout: Duration,
        signal: i32,
    ) -> Result<(), RuntimeError> {
        let rec = self.container(container_id)?;
        let shim = self.shim(&rec.sandbox_id);
        let running = |s: &ShimStatus| s.is_running(container_id);
        match shim.status().await {
            Ok(s) if running(&s) => {}
            _ => return Ok(()),
        }
        // Subscribed before the signal, so that its exit cannot be missed.
        let mut exits = self.events.subscribe();
        // No grace: the SIGKILL at once (containerd's StopContainer with timeout 0).
        let mut killed = timeout.is_zero();
        let first = if killed { sigkill() } else { signal };
        let _ = shim.signal(container_id, first).await;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Woken by the shim's exit event; the status is still asked now and then
            // (an event lost to a lagging receiver, the shim gone).
            let _ = tokio::time::timeout(
                STOP_POLL,
                exit_of(&mut exits, &rec.sandbox_id, container_id),
            )
            .await;
            match shim.status().await {
                Ok(s) if running(&s) => {}
                _ => return Ok(()),
            }
            if !killed && tokio::time::Instant::now() >= deadline {
                let _ = shim.signal(container_id, sigkill()).await;
                killed = true;
            }
            if killed && tokio::time::Instant::now() >= deadline + Duration::from_secs(10) {
                return Err(RuntimeError::Shim {
                    sandbox_id: rec.sandbox_id.clone(),
                    op: "stop_container",
                    code: ErrorCode::Internal,
                    message: format!("container {container_id} still running 10s after SIGKILL"),
                });
            }
        }
    }

    async fn remove_container(&self, container_id: &str) -> Result<(), RuntimeError> {
        let Ok(rec) = self.container(container_id) else {
            return Ok(());
        };
        match self
            .shim(&rec.sandbox_id)
            .remove_container(container_id)
            .await
        {
            Ok(()) => {}
            // The shim is gone (sandbox stopped) or never knew it: nothing left on its side.
            Err(e) if is_gone(&e) => {}
            Err(RuntimeError::Shim {
                code: ErrorCode::NotFound,
                ..
            }) => {}
            Err(e) => return Err(e),
        }
        self.remove_container_files(container_id)
    }

    async fn container_status(&self, container_id: &str) -> Result<ContainerStatus, RuntimeError> {
        let rec = self.container(container_id)?;
        let st = self.cached_shim_status(&rec.sandbox_id).await.ok();
        Ok(self.status_from(&rec, st.as_ref()))
    }

    async fn list_containers(
        &self,
        sandbox_id: Option<&str>,
    ) -> Result<Vec<ContainerStatus>, RuntimeError> {
        let recs: Vec<ContainerRecord> = self
            .lock_containers()
            .values()
            .filter(|c| sandbox_id.is_none_or(|s| c.sandbox_id == s))
            .cloned()
            .collect();
        let mut ids: Vec<String> = recs.iter().map(|r| r.sandbox_id.clone()).collect();
        ids.sort();
        ids.dedup();
        // All shims at once: one that does not answer costs its time limit once.
        let statuses = futures_util::future::join_all(
            ids.iter()
                .map(|id| async { self.cached_shim_status(id).await.ok() }),
        )
        .await;
        let by_sandbox: HashMap<String, Option<ShimStatus>> =
            ids.into_iter().zip(statuses).collect();
        let mut out = Vec::new();
        for rec in recs {
            let st = by_sandbox.get(&rec.sandbox_id).and_then(Option::as_ref);
            out.push(self.status_from(&rec, st));
        }
        out.sort_by_key(|c| c.created_at);
        Ok(out)
    }

    async fn exec(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        opts: ExecOptions,
    ) -> Result<ExecStream, RuntimeError> {
        let rec = self.container(container_id)?;
        let s = self
            .shim(&rec.sandbox_id)
            .exec(container_id, &cmd, opts.tty, opts.size)
            .await?;
        Ok(Box::new(s))
    }

    async fn attach(
        &self,
        container_id: &str,
        opts: AttachOptions,
    ) -> Result<ExecStream, RuntimeError> {
        let rec = self.container(container_id)?;
        let s = self
            .shim(&rec.sandbox_id)
            .attach(container_id, opts)
            .await?;
        Ok(Box::new(s))
    }

    async fn port_forward(
        &self,
        sandbox_id: &str,
        port: u16,
    ) -> Result<ForwardStream, RuntimeError> {
        let rec = self.sandbox(sandbox_id)?;
        // The recorded namespace, never one from the request: a pinned netns, or the
        // daemon's own for hostNetwork pods. A forward is one connection, so it waits
        // as long as a kubelet's dialer for the pod's accept queue.
        let stream = dial::connect(&rec.netns_path, "127.0.0.1", port, FORWARD_DIAL_TIMEOUT)
            .await
            .map_err(|source| RuntimeError::PortForward {
                sandbox_id: sandbox_id.to_string(),
                port,
                source,
            })?;
        Ok(Box::new(stream))
    }

    async fn image_status(&self, reference: &str) -> Result<Option<ImageInfo>, RuntimeError> {
        let images = self.images.clone();
        let r = reference.to_string();
        tokio::task::spawn_blocking(move || {
            let err = |source| RuntimeError::Image {
                reference: r.clone(),
                source,
            };
            let Some(img) = images.get(&r).map_err(err)? else {
                return Ok(None);
            };
            let config = images.config(&img).ok().and_then(|c| c.config().clone());
            Ok(Some(ImageInfo {
                id: img.id.clone(),
                repo_tags: img.repo_tags.clone(),
                size: img.size,
                stop_signal: config.as_ref().and_then(|c| c.stop_signal().clone()),
                repo_digests: img.repo_digests.clone(),
                loaded_tags: images::loaded_tags(&img),
                user: config
                    .and_then(|c| c.user().clone())
                    .filter(|u| !u.is_empty()),
                pinned: false,
            }))
        })
        .await
        .map_err(|e| RuntimeError::Io {
            action: "image lookup task",
            path: PathBuf::new(),
            source: std::io::Error::other(e),
        })?
    }

    async fn list_images(&self) -> Result<Vec<ImageInfo>, RuntimeError> {
        let images = self.images.clone();
        tokio::task::spawn_blocking(move || {
            let list = images.list().map_err(|source| RuntimeError::Image {
                reference: String::new(),
                source,
            })?;
            Ok(list
                .into_iter()
                .map(|i| ImageInfo {
                    loaded_tags: images::loaded_tags(&i),
                    id: i.id,
                    repo_tags: i.repo_tags,
                    size: i.size,
                    stop_signal: None,
                    repo_digests: i.repo_digests,
                    user: None,
                    pinned: false,
                })
                .collect())
        })
        .await
        .map_err(|e| RuntimeError::Io {
            action: "image list task",
            path: PathBuf::new(),
            source: std::io::Error::other(e),
        })?
    }

    async fn pull_image(
        &self,
        reference: &str,
        auth: Option<AuthConfig>,
        progress: Option<PullProgress>,
    ) -> Result<PulledImage, RuntimeError> {
        self.pull(reference, auth, progress).await
    }

    async fn remove_image(&self, reference: &str) -> Result<(), RuntimeError> {
        self.remove_unused_image(reference).await
    }

    async fn load_image(
        &self,
        path: &Path,
        tag: Option<&str>,
    ) -> Result<Vec<ImageInfo>, RuntimeError> {
        self.load(path, tag).await
    }

    async fn prune_images(&self, all: bool) -> Result<PruneResult, RuntimeError> {
        self.prune(all).await
    }

    async fn collect_images(&self, high: u8, low: u8) -> Result<PruneResult, RuntimeError> {
        self.gc(high, low).await
    }

    async fn image_fs_info(&self) -> Result<FsUsage, RuntimeError> {
        self.fs_info().await
    }

    async fn list_pod_sandbox_stats(&self) -> Result<Vec<SandboxStats>, RuntimeError> {
        self.stats(&crate::LayerWalk::All).await
    }

    async fn pod_sandbox_stats_walking(
        &self,
        walk: &crate::LayerWalk,
    ) -> Result<Vec<SandboxStats>, RuntimeError> {
        self.stats(walk).await
    }

    async fn update_container_resources(
        &self,
        container_id: &str,
        resources: &ContainerResources,
    ) -> Result<(), RuntimeError> {
        self.update_resources(container_id, resources).await
    }

    async fn reopen_container_log(&self, container_id: &str) -> Result<(), RuntimeError> {
        let rec = self.container(container_id)?;
        self.shim(&rec.sandbox_id).reopen_log(container_id).await
    }

    async fn sandbox_refs(&self) -> Result<Vec<SandboxRef>, RuntimeError> {
        Ok(self
            .lock_sandboxes()
            .values()
            .map(|r| SandboxRef {
                id: r.id.clone(),
                pod_uid: r.config.uid.clone(),
                owner: r.config.owner,
            })
            .collect())
    }

    async fn container_refs(&self) -> Result<Vec<ContainerRef>, RuntimeError> {
        Ok(self
            .lock_containers()
            .values()
            .map(|r| ContainerRef {
                id: r.id.clone(),
                sandbox_id: r.sandbox_id.clone(),
                image_id: r.image_id.clone(),
            })
            .collect())
    }

    // One record looked up, not all of them listed: ownership checks of the owned views
    // run on every per-pod call (a steady pod's check too).
    async fn sandbox_ref(&self, id: &str) -> Result<Option<SandboxRef>, RuntimeError> {
        Ok(self.lock_sandboxes().get(id).map(|r| SandboxRef {
            id: r.id.clone(),
            pod_uid: r.config.uid.clone(),
            owner: r.config.owner,
        }))
    }

    async fn container_ref(&self, id: &str) -> Result<Option<ContainerRef>, RuntimeError> {
        Ok(self.lock_containers().get(id).map(|r| ContainerRef {
            id: r.id.clone(),
            sandbox_id: r.sandbox_id.clone(),
            image_id: r.image_id.clone(),
        }))
    }

    fn events(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.events.subscribe()
    }
    /// Each shim's subscription ([`Self::watch_shim`]) reports its heartbeats going quiet
    /// and its end.
    fn reports_silence(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn an_older_spec_on_the_disk_moves_to_the_bundle_dir() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let spec = tmp.path().join("lib/c1/config.json");
        std::fs::create_dir_all(spec.parent().expect("parent")).expect("dir");
        std::fs::write(&spec, "{\"env\": [\"PW=s3cret\"]}").expect("write");
        let bundle = tmp.path().join("run/containers/c1");
        assert!(move_bundle_spec(&spec, &bundle).expect("move"));
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert!(std::fs::symlink_metadata(&spec)
            .expect("link")
            .file_type()
            .is_symlink());
        assert_eq!(
            std::fs::read_to_string(&spec).expect("read through the link"),
            "{\"env\": [\"PW=s3cret\"]}"
        );
        assert_eq!(mode(&bundle.join("config.json")), 0o600);
        assert_eq!(mode(&bundle), 0o700);
        // Moved once: the next start finds the link and leaves it.
        assert!(!move_bundle_spec(&spec, &bundle).expect("again"));
    }
}
