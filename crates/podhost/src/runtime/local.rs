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

use super::mounts;
use super::netns;
use super::shim_client::{is_gone, ShimClient, ShimStatus};
use super::*;
use crate::config::Config;
use crate::store::{read_json, write_json_atomic};
use crate::timefmt::now_nanos;
use podhost_shim::proto::ContainerState as ShimState;

mod images;

/// Durable record of a sandbox, enough to tear it down after a crash.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SandboxRecord {
    id: String,
    config: SandboxConfig,
    created_at: i64,
    netns_path: PathBuf,
    pause_pid: Option<u32>,
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
}

/// The runtime of this machine.
pub struct LocalRuntime {
    config: Config,
    images: Arc<ImageStore>,
    /// Registry pulls into `images` (see `images.rs`).
    puller: Arc<Puller>,
    sandboxes: Mutex<HashMap<String, SandboxRecord>>,
    containers: Mutex<HashMap<String, ContainerRecord>>,
    events: broadcast::Sender<RuntimeEvent>,
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
    pub fn open(config: Config) -> Result<Arc<Self>, RuntimeError> {
        for d in [
            config.state_dir.clone(),
            config.run_dir.clone(),
            config.runc_root(),
            config.netns_dir(),
        ] {
            std::fs::create_dir_all(&d).map_err(RuntimeError::io("creating", &d))?;
        }
        let images =
            ImageStore::open(&config.image_dir()).map_err(|source| RuntimeError::Image {
                reference: String::new(),
                source,
            })?;
        let (events, _) = broadcast::channel(256);
        let images = Arc::new(images);
        let rt = Arc::new(LocalRuntime {
            puller: Arc::new(Puller::new(images.clone(), config.registry_config.clone())),
            images,
            sandboxes: Mutex::new(HashMap::new()),
            containers: Mutex::new(HashMap::new()),
            events,
            config,
        });
        rt.load_records();
        for id in rt.sandbox_ids() {
            rt.watch_shim(&id);
        }
        Ok(rt)
    }

    /// The image store (for `image load` and `images`).
    pub fn images(&self) -> Arc<ImageStore> {
        self.images.clone()
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
        ShimClient::new(
            sandbox_id,
            &self.config.sandbox_run_dir(sandbox_id).join("shim.sock"),
        )
    }

    /// Forward the shim's exit events to subscribers; report the sandbox gone when the shim is.
    fn watch_shim(&self, sandbox_id: &str) {
        let client = self.shim(sandbox_id);
        let tx = self.events.clone();
        let sid = sandbox_id.to_string();
        tokio::spawn(async move {
            let tx2 = tx.clone();
            let sid2 = sid.clone();
            let _ = client
                .subscribe(move |id| {
                    let ev = if id == "pause" {
                        RuntimeEvent::SandboxExited {
                            sandbox_id: sid2.clone(),
                        }
                    } else {
                        RuntimeEvent::ContainerExited {
                            sandbox_id: sid2.clone(),
                            container_id: id,
                        }
                    };
                    let _ = tx2.send(ev);
                })
                .await;
            let _ = tx.send(RuntimeEvent::SandboxExited { sandbox_id: sid });
        });
    }

    async fn shim_status(&self, sandbox_id: &str) -> Option<ShimStatus> {
        self.shim(sandbox_id).status().await.ok()
    }

    async fn start_shim(
        &self,
        id: &str,
        cfg: &SandboxConfig,
        pin: &Path,
    ) -> Result<u32, RuntimeError> {
        let dir = self.config.sandbox_run_dir(id);
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
    ) -> podhost_oci::ContainerParams {
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
        for (k, v) in &cfg.envs {
            set(k, v);
        }
        let cwd = cfg
            .working_dir
            .clone()
            .or_else(|| icfg.working_dir().clone().filter(|w| !w.is_empty()))
            .unwrap_or_else(|| "/".to_string());
        let (uid, gid) = resolve_user(rootfs, icfg.user().as_deref().unwrap_or(""));
        let ns = |n: &str| Some(PathBuf::from(format!("/proc/{pause_pid}/ns/{n}")));
        let sb_state = self.config.sandbox_state_dir(&sandbox.id);
        let mut mounts: Vec<podhost_oci::BindMount> = cfg
            .mounts
            .iter()
            .map(|m| podhost_oci::BindMount {
                source: m.host_path.clone(),
                destination: m.container_path.clone().into(),
                readonly: m.readonly,
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
                });
            }
        }
        mounts.push(podhost_oci::BindMount {
            source: self.config.sandbox_run_dir(&sandbox.id).join("shm"),
            destination: "/dev/shm".into(),
            readonly: false,
        });
        podhost_oci::ContainerParams {
            rootfs: rootfs.to_path_buf(),
            args,
            env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
            cwd,
            uid,
            gid,
            additional_gids: Vec::new(),
            namespaces: podhost_oci::PodNamespaces {
                net: ns("net"),
                ipc: ns("ipc"),
                uts: ns("uts"),
                pid: if sandbox.config.share_pid {
                    ns("pid")
                } else {
                    None
                },
            },
            mounts,
            cgroups_path: format!(
                "/{}/pod{}/{}",
                self.config.cgroup_parent.trim_matches('/'),
                sandbox.config.uid,
                cid
            ),
            readonly_rootfs: false,
            terminal: false,
        }
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
            None => (ContainerState::Unknown, None, None, None, None),
        };
        let reason = exit_code.map(|c| if c == 0 { "Completed" } else { "Error" }.to_string());
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

    /// Remove a container's host-side resources (rootfs mount, its directory, its record).
    fn remove_container_files(&self, id: &str) -> Result<(), RuntimeError> {
        let dir = self.config.container_dir(id);
        mounts::unmount(&dir.join("rootfs"))?;
        mounts::remove_dir(&dir)?;
        self.lock_containers().remove(id);
        Ok(())
    }
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

/// `User` of an image or pod: numeric `uid[:gid]`, or names looked up in the rootfs.
fn resolve_user(rootfs: &Path, user: &str) -> (u32, u32) {
    if user.is_empty() {
        return (0, 0);
    }
    let (u, g) = user
        .split_once(':')
        .map(|(u, g)| (u, Some(g)))
        .unwrap_or((user, None));
    let lookup = |file: &str, name: &str, field: usize| -> Option<u32> {
        let text = std::fs::read_to_string(rootfs.join(file)).ok()?;
        text.lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.first() == Some(&name))
            .and_then(|f| f.get(field).and_then(|v| v.parse().ok()))
    };
    let uid = u
        .parse()
        .ok()
        .or_else(|| lookup("etc/passwd", u, 2))
        .unwrap_or(0);
    let gid = match g {
        Some(g) => g
            .parse()
            .ok()
            .or_else(|| lookup("etc/group", g, 2))
            .unwrap_or(0),
        None => lookup("etc/passwd", u, 3).unwrap_or(0),
    };
    (uid, gid)
}

fn write_file(path: &Path, text: &str) -> Result<(), RuntimeError> {
    std::fs::write(path, text).map_err(RuntimeError::io("writing", path))
}

#[async_trait::async_trait]
impl Runtime for LocalRuntime {
    async fn run_pod_sandbox(&self, cfg: &SandboxConfig) -> Result<String, RuntimeError> {
        let id = new_id();
        let mut undo = Undo::new();
        let run_dir = self.config.sandbox_run_dir(&id);
        let state_dir = self.config.sandbox_state_dir(&id);
        let pin = self.config.netns_dir().join(&id);
        let steps = async {
            for d in [&run_dir, &state_dir] {
                std::fs::create_dir_all(d).map_err(RuntimeError::io("creating sandbox dir", d))?;
                let d = d.clone();
                undo.push(move || mounts::remove_dir(&d));
            }
            // Pod files every container binds: like kubelet's etc-hosts and containerd's.
            write_file(&state_dir.join("hostname"), &format!("{}\n", cfg.hostname))?;
            write_file(
                &state_dir.join("hosts"),
                &format!(
                    "# Kubernetes-managed hosts file (podhost).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{}\n",
                    cfg.hostname
                ),
            )?;
            let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            write_file(&state_dir.join("resolv.conf"), &resolv)?;
            let shm = run_dir.join("shm");
            mounts::mount_shm(&shm)?;
            undo.push(move || mounts::unmount(&shm));
            netns::create_pinned(&pin)?;
            let pin2 = pin.clone();
            undo.push(move || netns::remove_pinned(&pin2));
            let pause_pid = self.start_shim(&id, cfg, &pin).await?;
            let rec = SandboxRecord {
                id: id.clone(),
                config: cfg.clone(),
                created_at: now_nanos(),
                netns_path: pin.clone(),
                pause_pid: Some(pause_pid),
            };
            if let Err(e) = write_json_atomic(&state_dir.join("sandbox.json"), &rec) {
                let _ = self.shim(&id).shutdown().await;
                return Err(e);
            }
            self.lock_sandboxes().insert(id.clone(), rec);
            Ok::<(), RuntimeError>(())
        }
        .await;
        match steps {
            Ok(()) => {
                self.watch_shim(&id);
                Ok(id)
            }
            Err(e) => Err(undo.fail(e)),
        }
    }

    async fn stop_pod_sandbox(&self, sandbox_id: &str) -> Result<(), RuntimeError> {
        self.sandbox(sandbox_id)?;
        // The shim kills what still runs and the pause, then exits; unreachable = gone.
        match self.shim(sandbox_id).shutdown().await {
            Err(e) if !is_gone(&e) => Err(e),
            _ => Ok(()),
        }
    }

    async fn remove_pod_sandbox(&self, sandbox_id: &str) -> Result<(), RuntimeError> {
        let Ok(rec) = self.sandbox(sandbox_id) else {
            return Ok(());
        };
        self.stop_pod_sandbox(sandbox_id).await?;
        let ids: Vec<String> = self
            .lock_containers()
            .values()
            .filter(|c| c.sandbox_id == sandbox_id)
            .map(|c| c.id.clone())
            .collect();
        for id in ids {
            self.remove_container_files(&id)?;
        }
        let run_dir = self.config.sandbox_run_dir(sandbox_id);
        mounts::unmount(&run_dir.join("shm"))?;
        netns::remove_pinned(&rec.netns_path)?;
        mounts::remove_dir(&run_dir)?;
        mounts::remove_dir(&self.config.sandbox_state_dir(sandbox_id))?;
        mounts::remove_pod_cgroups(&self.config.cgroup_parent, &rec.config.uid);
        self.lock_sandboxes().remove(sandbox_id);
        Ok(())
    }

    async fn pod_sandbox_status(&self, sandbox_id: &str) -> Result<SandboxStatus, RuntimeError> {
        let rec = self.sandbox(sandbox_id)?;
        let st = self.shim_status(sandbox_id).await;
        let ready = st.as_ref().map(|s| s.pause_running).unwrap_or(false);
        Ok(SandboxStatus {
            id: rec.id.clone(),
            config: rec.config.clone(),
            state: if ready {
                SandboxState::Ready
            } else {
                SandboxState::NotReady
            },
            created_at: rec.created_at,
            pause_pid: st.and_then(|s| s.pause_pid).or(rec.pause_pid),
            ip: None,
            netns_path: rec.netns_path.clone(),
        })
    }

    async fn list_pod_sandboxes(&self) -> Result<Vec<SandboxStatus>, RuntimeError> {
        let mut out = Vec::new();
        for id in self.sandbox_ids() {
            if let Ok(s) = self.pod_sandbox_status(&id).await {
                out.push(s);
            }
        }
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
        let status = self.shim_status(sandbox_id).await;
        let pause_pid = match status {
            Some(ShimStatus {
                pause_running: true,
                pause_pid: Some(p),
                ..
            }) => p,
            _ => {
                return Err(RuntimeError::Shim {
                    sandbox_id: sandbox_id.to_string(),
                    op: "create_container",
                    message: "sandbox is not ready (pause not running)".into(),
                })
            }
        };
        let images = self.images.clone();
        let reference = cfg.image.clone();
        let (image, image_cfg, layers) = tokio::task::spawn_blocking(move || {
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
        let rootfs = dir.join("rootfs");
        let log_path = sandbox.config.log_directory.join(&cfg.log_path);
        let mut undo = Undo::new();
        let steps = async {
            std::fs::create_dir_all(&dir)
                .map_err(RuntimeError::io("creating container dir", &dir))?;
            let d = dir.clone();
            undo.push(move || mounts::remove_dir(&d));
            mounts::mount_overlay(&layers, &dir.join("upper"), &dir.join("work"), &rootfs)?;
            let r = rootfs.clone();
            undo.push(move || mounts::unmount(&r));
            let params = self.container_params(&sandbox, cfg, &rootfs, &image_cfg, pause_pid, &id);
            let spec =
                podhost_oci::container_spec(&params).map_err(|source| RuntimeError::Oci {
                    container: cfg.name.clone(),
                    source,
                })?;
            podhost_oci::write_bundle(&dir, &spec).map_err(|source| RuntimeError::Oci {
                container: cfg.name.clone(),
                source,
            })?;
            if let Some(p) = log_path.parent() {
                std::fs::create_dir_all(p).map_err(RuntimeError::io("creating log dir", p))?;
            }
            let rec = ContainerRecord {
                id: id.clone(),
                sandbox_id: sandbox_id.to_string(),
                config: cfg.clone(),
                created_at: now_nanos(),
                image_id: image.id.clone(),
                log_path: log_path.clone(),
            };
            write_json_atomic(&dir.join("container.json"), &rec)?;
            self.shim(sandbox_id)
                .create_container(&id, &dir, &log_path)
                .await?;
            self.lock_containers().insert(id.clone(), rec);
            Ok::<(), RuntimeError>(())
        }
        .await;
        match steps {
            Ok(()) => Ok(id),
            Err(e) => Err(undo.fail(e)),
        }
    }

    async fn start_container(&self, container_id: &str) -> Result<(), RuntimeError> {
        let rec = self.container(container_id)?;
        self.shim(&rec.sandbox_id)
            .start_container(container_id)
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
        let _ = shim.signal(container_id, signal).await;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut killed = false;
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
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
            Err(RuntimeError::Shim { message, .. }) if message.contains("not found") => {}
            Err(e) => return Err(e),
        }
        self.remove_container_files(container_id)
    }

    async fn container_status(&self, container_id: &str) -> Result<ContainerStatus, RuntimeError> {
        let rec = self.container(container_id)?;
        let st = self.shim_status(&rec.sandbox_id).await;
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
        let mut by_sandbox: HashMap<String, Option<ShimStatus>> = HashMap::new();
        let mut out = Vec::new();
        for rec in recs {
            if !by_sandbox.contains_key(&rec.sandbox_id) {
                let st = self.shim_status(&rec.sandbox_id).await;
                by_sandbox.insert(rec.sandbox_id.clone(), st);
            }
            let st = by_sandbox.get(&rec.sandbox_id).and_then(Option::as_ref);
            out.push(self.status_from(&rec, st));
        }
        out.sort_by_key(|c| c.created_at);
        Ok(out)
    }

    async fn exec(&self, container_id: &str, cmd: Vec<String>) -> Result<ExecStream, RuntimeError> {
        let rec = self.container(container_id)?;
        let s = self.shim(&rec.sandbox_id).exec(container_id, &cmd).await?;
        Ok(Box::new(s))
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
            let stop_signal = images
                .config(&img)
                .ok()
                .and_then(|c| c.config().clone())
                .and_then(|c| c.stop_signal().clone());
            Ok(Some(ImageInfo {
                id: img.id.clone(),
                repo_tags: img.repo_tags.clone(),
                size: img.size,
                stop_signal,
                repo_digests: img.repo_digests.clone(),
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
                    id: i.id,
                    repo_tags: i.repo_tags,
                    size: i.size,
                    stop_signal: None,
                    repo_digests: i.repo_digests,
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
        progress: Option<PullProgress>,
    ) -> Result<PulledImage, RuntimeError> {
        self.pull(reference, progress).await
    }

    async fn remove_image(&self, reference: &str) -> Result<(), RuntimeError> {
        self.remove_unused_image(reference).await
    }

    fn events(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.events.subscribe()
    }
}
