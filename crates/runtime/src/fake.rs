//! An in-memory `Runtime` for lifecycle tests: no processes, controllable exits,
//! time from the lifecycle [`Clock`](crate::clock::Clock) (tokio's, pausable).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use podhost_shim::proto::frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::{broadcast, watch};

use super::*;
use crate::clock::Clock;

#[derive(Default)]
struct State {
    sandboxes: HashMap<String, SandboxStatus>,
    containers: HashMap<String, ContainerStatus>,
    next: u64,
    /// Every call, for assertions on order (`run_pod_sandbox`, `start:<name>` …).
    calls: Vec<String>,
    /// Status questions (sandbox and container status and lists): what a real runtime
    /// would ask its shims.
    queries: usize,
    /// Images present.
    images: Vec<String>,
    /// Containers (by name) that ignore the stop signal and need the SIGKILL.
    ignore_term: HashSet<String>,
    /// Every stop: (container name, timeout given, signal).
    stops: Vec<(String, Duration, i32)>,
    /// Images the fake registry serves to `pull_image`.
    pullable: Vec<String>,
    /// Containers (by name) whose create fails, with the runtime's message.
    failing_creates: HashMap<String, String>,
    /// How long each `create_container` and `pull_image` takes (tokio's clock).
    slowness: Duration,
    /// Exit codes of containers, for their attach sessions (by container id).
    exits: HashMap<String, watch::Sender<Option<i32>>>,
    /// Ports `port_forward` finds nobody listening on.
    refused_ports: HashSet<u16>,
    /// Sends `ShimSilent` when the shims stop answering, as the local runtime does.
    reports_silence: bool,
    /// Container states cannot be read (see [`FakeRuntime::set_unknown_statuses`]).
    unknown_statuses: bool,
}

/// What the local runtime reports of a container whose shim gave no answer.
fn unknown(c: &ContainerStatus) -> ContainerStatus {
    ContainerStatus {
        state: ContainerState::Unknown,
        started_at: None,
        finished_at: None,
        exit_code: None,
        reason: None,
        pid: None,
        ..c.clone()
    }
}

impl State {
    /// What a status question gets for `c`: its state, or `Unknown` while states cannot
    /// be read.
    fn reported(&self, c: &ContainerStatus) -> ContainerStatus {
        if self.unknown_statuses {
            unknown(c)
        } else {
            c.clone()
        }
    }

    /// Marks a running container exited with `code` and tells its attach sessions.
    fn exited(&mut self, id: &str, code: i32, now: i64) -> bool {
        let Some(c) = self
            .containers
            .get_mut(id)
            .filter(|c| c.state == ContainerState::Running)
        else {
            return false;
        };
        c.state = ContainerState::Exited;
        c.exit_code = Some(code);
        c.finished_at = Some(now);
        if let Some(tx) = self.exits.get(id) {
            tx.send_replace(Some(code));
        }
        true
    }
}

/// What the fake reports for an image present under `reference`.
fn fake_image(reference: &str) -> ImageInfo {
    ImageInfo {
        id: "sha256:fake".into(),
        repo_tags: vec![reference.to_string()],
        size: 0,
        stop_signal: None,
        repo_digests: Vec::new(),
        loaded_tags: vec![reference.to_string()],
        user: None,
        pinned: false,
    }
}

/// The error the local runtime gives for a request that needs a running container.
fn not_running(c: &ContainerStatus, op: &'static str) -> RuntimeError {
    RuntimeError::Shim {
        sandbox_id: c.sandbox_id.clone(),
        op,
        code: podhost_shim::proto::ErrorCode::FailedPrecondition,
        message: format!("container {} is not running", c.id),
    }
}

/// How a fake exec ends: `Some(result)`, or `None` to hang until the timeout.
pub type ExecHandler = dyn Fn(&str, &[String]) -> Option<ExecResult> + Send + Sync;

/// A fake runtime whose containers run until told to exit.
pub struct FakeRuntime {
    state: Mutex<State>,
    exec_handler: Mutex<Option<Arc<ExecHandler>>>,
    clock: Clock,
    events: broadcast::Sender<RuntimeEvent>,
}

impl FakeRuntime {
    /// A fake with the given images present.
    pub fn new(clock: Clock, images: &[&str]) -> Self {
        let (events, _) = broadcast::channel(64);
        let state = State {
            images: images.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        FakeRuntime {
            state: Mutex::new(state),
            exec_handler: Mutex::new(None),
            clock,
            events,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decide what `exec_sync` returns, given the container name and the command
    /// (default: exit 0, no output). Calls are recorded as `exec:<name>:<cmd words>`.
    pub fn on_exec(
        &self,
        f: impl Fn(&str, &[String]) -> Option<ExecResult> + Send + Sync + 'static,
    ) {
        *self.exec_handler.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(f));
    }

    /// Make the container named `name` ignore its stop signal (it dies by SIGKILL
    /// when the stop timeout ends).
    pub fn ignore_term(&self, name: &str) {
        self.lock().ignore_term.insert(name.to_string());
    }

    /// Make `create_container` of the container named `name` fail with `message`
    /// (None: succeed again), as a runtime that cannot create it would.
    pub fn fail_create(&self, name: &str, message: Option<&str>) {
        let mut st = self.lock();
        match message {
            Some(m) => st.failing_creates.insert(name.to_string(), m.to_string()),
            None => st.failing_creates.remove(name),
        };
    }

    /// Make every `create_container` and `pull_image` take `d` (on tokio's clock), like
    /// a real runtime's helper process or a registry.
    pub fn set_slowness(&self, d: Duration) {
        self.lock().slowness = d;
    }

    async fn take_time(&self) {
        let slowness = self.lock().slowness;
        if !slowness.is_zero() {
            tokio::time::sleep(slowness).await;
        }
    }

    /// Report shims that stop answering by a `ShimSilent` event (see
    /// [`Runtime::reports_silence`]), as the local runtime does.
    pub fn set_reports_silence(&self, on: bool) {
        self.lock().reports_silence = on;
    }

    /// Make container states unreadable (`Unknown`, as the local runtime reports them
    /// when a shim does not answer in time) while the sandboxes still look ready, or
    /// readable again. Meanwhile a stop reaches nothing: the local runtime signals only
    /// a container it was told runs.
    pub fn set_unknown_statuses(&self, on: bool) {
        self.lock().unknown_statuses = on;
    }

    /// How many status questions were asked so far (see `State::queries`).
    pub fn queries(&self) -> usize {
        self.lock().queries
    }

    /// Every stop so far: (container name, timeout, signal).
    pub fn stops(&self) -> Vec<(String, Duration, i32)> {
        self.lock().stops.clone()
    }

    /// Let `pull_image` succeed for `reference` from now on.
    pub fn add_pullable(&self, reference: &str) {
        self.lock().pullable.push(reference.to_string());
    }

    /// The calls made so far.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// Make `port_forward` to `port` fail as if nothing listened there.
    pub fn refuse_port(&self, port: u16) {
        self.lock().refused_ports.insert(port);
    }

    /// Make the running container named `name` exit with `code`.
    pub fn exit(&self, name: &str, code: i32) -> bool {
        let now = self.clock.now();
        let mut st = self.lock();
        let found = st
            .containers
            .values()
            .find(|c| c.config.name == name && c.state == ContainerState::Running)
            .map(|c| c.id.clone());
        let Some(id) = found else { return false };
        st.exited(&id, code, now);
        let Some(c) = st.containers.get_mut(&id) else {
            return false;
        };
        c.reason = Some(if code == 0 { "Completed" } else { "Error" }.into());
        let ev = RuntimeEvent::ContainerExited {
            sandbox_id: c.sandbox_id.clone(),
            container_id: c.id.clone(),
        };
        drop(st);
        let _ = self.events.send(ev);
        true
    }

    /// Kill the pause of every sandbox (the sandbox becomes NotReady).
    pub fn kill_sandboxes(&self) {
        let mut st = self.lock();
        let ids: Vec<String> = st.sandboxes.keys().cloned().collect();
        for s in st.sandboxes.values_mut() {
            s.state = SandboxState::NotReady;
        }
        drop(st);
        for id in ids {
            let _ = self
                .events
                .send(RuntimeEvent::SandboxExited { sandbox_id: id });
        }
    }

    /// Make every shim stop answering (sandboxes `Unknown`), or answer again (`Ready`
    /// when the pause was), like a SIGSTOPped shim and its SIGCONT.
    pub fn set_unresponsive(&self, unresponsive: bool) {
        let mut st = self.lock();
        if unresponsive && st.reports_silence {
            for id in st.sandboxes.keys() {
                let _ = self.events.send(RuntimeEvent::ShimSilent {
                    sandbox_id: id.clone(),
                });
            }
        }
        for s in st.sandboxes.values_mut() {
            match (unresponsive, s.state) {
                (true, SandboxState::Ready) => {
                    s.state = SandboxState::Unknown;
                    s.not_ready_reason = Some("the pod's shim gave no answer in 5s".into());
                }
                (false, SandboxState::Unknown) => {
                    s.state = SandboxState::Ready;
                    s.not_ready_reason = None;
                }
                _ => {}
            }
        }
    }

    /// Number of containers currently running.
    pub fn running(&self) -> usize {
        self.lock()
            .containers
            .values()
            .filter(|c| c.state == ContainerState::Running)
            .count()
    }
}

#[async_trait::async_trait]
impl Runtime for FakeRuntime {
    async fn run_pod_sandbox(&self, config: &SandboxConfig) -> Result<String, RuntimeError> {
        let now = self.clock.now();
        let mut st = self.lock();
        st.next += 1;
        let id = format!("sb{}", st.next);
        st.calls.push("run_pod_sandbox".into());
        st.sandboxes.insert(
            id.clone(),
            SandboxStatus {
                id: id.clone(),
                config: config.clone(),
                state: SandboxState::Ready,
                created_at: now,
                pause_pid: Some(1),
                ip: None,
                additional_ips: Vec::new(),
                netns_path: PathBuf::new(),
                not_ready_reason: None,
            },
        );
        Ok(id)
    }
    async fn stop_pod_sandbox(&self, sandbox_id: &str) -> Result<(), RuntimeError> {
        let now = self.clock.now();
        let mut st = self.lock();
        st.calls.push("stop_pod_sandbox".into());
        if let Some(s) = st.sandboxes.get_mut(sandbox_id) {
            s.state = SandboxState::NotReady;
        }
        let ids: Vec<String> = st
            .containers
            .values()
            .filter(|c| c.sandbox_id == sandbox_id)
            .map(|c| c.id.clone())
            .collect();
        for id in ids {
            st.exited(&id, 137, now);
        }
        Ok(())
    }
    async fn remove_pod_sandbox(&self, sandbox_id: &str) -> Result<(), RuntimeError> {
        let mut st = self.lock();
        st.calls.push("remove_pod_sandbox".into());
        st.sandboxes.remove(sandbox_id);
        st.containers.retain(|_, c| c.sandbox_id != sandbox_id);
        Ok(())
    }
    async fn pod_sandbox_status(&self, sandbox_id: &str) -> Result<SandboxStatus, RuntimeError> {
        let mut st = self.lock();
        st.queries += 1;
        st.sandboxes
            .get(sandbox_id)
            .cloned()
            .ok_or_else(|| RuntimeError::SandboxNotFound(sandbox_id.into()))
    }
    async fn list_pod_sandboxes(&self) -> Result<Vec<SandboxStatus>, RuntimeError> {
        let mut st = self.lock();
        st.queries += 1;
        Ok(st.sandboxes.values().cloned().collect())
    }
    async fn create_container(
        &self,
        sandbox_id: &str,
        config: &ContainerConfig,
        _sandbox: &SandboxConfig,
    ) -> Result<String, RuntimeError> {
        self.lock().calls.push(format!("create:{}", config.name));
        self.take_time().await;
        let now = self.clock.now();
        let mut st = self.lock();
        st.next += 1;
        let id = format!("c{}", st.next);
        if let Some(message) = st.failing_creates.get(&config.name) {
            return Err(RuntimeError::Shim {
                sandbox_id: sandbox_id.into(),
                op: "create_container",
                code: podhost_shim::proto::ErrorCode::Internal,
                message: message.clone(),
            });
        }
        st.containers.insert(
            id.clone(),
            ContainerStatus {
                id: id.clone(),
                sandbox_id: sandbox_id.into(),
                config: config.clone(),
                state: ContainerState::Created,
                created_at: now,
                started_at: None,
                finished_at: None,
                exit_code: None,
                reason: None,
                image_id: "sha256:fake".into(),
                pid: None,
                log_path: PathBuf::new(),
            },
        );
        st.exits.insert(id.clone(), watch::channel(None).0);
        Ok(id)
    }
    async fn start_container(&self, container_id: &str) -> Result<(), RuntimeError> {
        let now = self.clock.now();
        let mut st = self.lock();
        let c = st
            .containers
            .get_mut(container_id)
            .ok_or_else(|| RuntimeError::ContainerNotFound(container_id.into()))?;
        c.state = ContainerState::Running;
        c.started_at = Some(now);
        let name = c.config.name.clone();
        st.calls.push(format!("start:{name}"));
        Ok(())
    }
    async fn stop_container(
        &self,
        container_id: &str,
        timeout: Duration,
        signal: i32,
    ) -> Result<(), RuntimeError> {
        let (stubborn, running) = {
            let mut st = self.lock();
            let Some(c) = st.containers.get(container_id) else {
                return Ok(());
            };
            let name = c.config.name.clone();
            let running = c.state == ContainerState::Running;
            st.calls.push(format!("stop:{name}"));
            if st.unknown_statuses {
                return Ok(());
            }
            st.stops.push((name.clone(), timeout, signal));
            (st.ignore_term.contains(&name), running)
        };
        // A container that ignores the signal lives until the SIGKILL at the timeout.
        if stubborn && running {
            tokio::time::sleep(timeout).await;
        }
        let now = self.clock.now();
        let mut st = self.lock();
        let code = if stubborn { 137 } else { 128 + signal };
        if st.exited(container_id, code, now) {
            if let Some(c) = st.containers.get_mut(container_id) {
                c.reason = Some("Error".into());
            }
        }
        Ok(())
    }
    async fn remove_container(&self, container_id: &str) -> Result<(), RuntimeError> {
        let mut st = self.lock();
        if let Some(c) = st.containers.remove(container_id) {
            st.calls.push(format!("remove:{}", c.config.name));
        }
        st.exits.remove(container_id);
        Ok(())
    }
    async fn container_status(&self, container_id: &str) -> Result<ContainerStatus, RuntimeError> {
        let mut st = self.lock();
        st.queries += 1;
        st.containers
            .get(container_id)
            .map(|c| st.reported(c))
            .ok_or_else(|| RuntimeError::ContainerNotFound(container_id.into()))
    }
    async fn list_containers(
        &self,
        sandbox_id: Option<&str>,
    ) -> Result<Vec<ContainerStatus>, RuntimeError> {
        let mut st = self.lock();
        st.queries += 1;
        Ok(st
            .containers
            .values()
            .filter(|c| sandbox_id.is_none_or(|s| c.sandbox_id == s))
            .map(|c| st.reported(c))
            .collect())
    }
    /// A session that first writes what the exec handler says (default: nothing, exit
    /// 0), then acts as `cat`: stdin comes back as stdout, with a TTY each window size as
    /// a `size WxH` line; the end of input ends it with the handler's exit code.
    async fn exec(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        opts: ExecOptions,
    ) -> Result<ExecStream, RuntimeError> {
        let name = {
            let mut st = self.lock();
            let c = st
                .containers
                .get(container_id)
                .ok_or_else(|| RuntimeError::ContainerNotFound(container_id.into()))?;
            if c.state != ContainerState::Running {
                return Err(not_running(c, "exec"));
            }
            let name = c.config.name.clone();
            st.calls
                .push(format!("exec-session:{name}:{}", cmd.join(" ")));
            name
        };
        let handler = self
            .exec_handler
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let result = match handler {
            Some(h) => h(&name, &cmd),
            None => Some(ExecResult::default()),
        };
        let mut greeting = Vec::new();
        if let Some(r) = &result {
            for (kind, data) in [(frame::STDOUT, &r.stdout), (frame::STDERR, &r.stderr)] {
                if !data.is_empty() {
                    frame::encode(&mut greeting, kind, data);
                }
            }
        }
        if let (true, Some(size)) = (opts.tty, opts.size) {
            let line = format!("size {}x{}\n", size.width, size.height);
            frame::encode(&mut greeting, frame::STDOUT, line.as_bytes());
        }
        let session = FakeStdio {
            greeting,
            stdin: true,
            stdout: true,
            tty: opts.tty,
            // A handler that hangs: the session never ends by itself.
            end_of_input: result.map(|r| r.exit_code),
            exit: None,
        };
        Ok(Box::new(session.spawn()))
    }
    /// A session on a `cat`-like container: input (with `stdin`) comes back as stdout,
    /// a TTY's window sizes as `size WxH` lines; the end of input ends the session, the
    /// container's exit ([`FakeRuntime::exit`], stops) sends its code.
    async fn attach(
        &self,
        container_id: &str,
        opts: AttachOptions,
    ) -> Result<ExecStream, RuntimeError> {
        let mut st = self.lock();
        let c = st
            .containers
            .get(container_id)
            .ok_or_else(|| RuntimeError::ContainerNotFound(container_id.into()))?;
        if c.state != ContainerState::Running {
            return Err(not_running(c, "attach"));
        }
        let tty = c.config.tty;
        let name = c.config.name.clone();
        let exit = st.exits.get(container_id).map(watch::Sender::subscribe);
        st.calls.push(format!("attach:{name}"));
        let session = FakeStdio {
            greeting: Vec::new(),
            stdin: opts.stdin,
            stdout: opts.stdout,
            tty,
            end_of_input: None,
            exit,
        };
        Ok(Box::new(session.spawn()))
    }
    /// An echo server on every port of a ready sandbox, but those [`FakeRuntime::refuse_port`]
    /// closed.
    async fn port_forward(
        &self,
        sandbox_id: &str,
        port: u16,
    ) -> Result<ForwardStream, RuntimeError> {
        let mut st = self.lock();
        let sandbox = st
            .sandboxes
            .get(sandbox_id)
            .ok_or_else(|| RuntimeError::SandboxNotFound(sandbox_id.into()))?;
        if sandbox.state != SandboxState::Ready {
            return Err(RuntimeError::Shim {
                sandbox_id: sandbox_id.into(),
                op: "port_forward",
                code: podhost_shim::proto::ErrorCode::FailedPrecondition,
                message: "sandbox is not ready".into(),
            });
        }
        st.calls.push(format!("port_forward:{sandbox_id}:{port}"));
        if st.refused_ports.contains(&port) {
            return Err(RuntimeError::PortForward {
                sandbox_id: sandbox_id.into(),
                port,
                source: crate::dial::DialError::Connect {
                    addr: format!("127.0.0.1:{port}"),
                    source: std::io::ErrorKind::ConnectionRefused.into(),
                },
            });
        }
        let (ours, pod) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let (mut r, mut w) = tokio::io::split(pod);
            let _ = tokio::io::copy(&mut r, &mut w).await;
            let _ = w.shutdown().await;
        });
        Ok(Box::new(ours))
    }
    async fn exec_sync(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecResult, RuntimeError> {
        let name = {
            let mut st = self.lock();
            let c = st
                .containers
                .get(container_id)
                .filter(|c| c.state == ContainerState::Running)
                .ok_or_else(|| RuntimeError::ContainerNotFound(container_id.into()))?;
            let name = c.config.name.clone();
            st.calls.push(format!("exec:{name}:{}", cmd.join(" ")));
            name
        };
        let handler = self
            .exec_handler
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let result = match handler {
            Some(h) => h(&name, &cmd),
            None => Some(ExecResult::default()),
        };
        match result {
            Some(r) => Ok(r),
            None => {
                tokio::time::sleep(timeout).await;
                Err(RuntimeError::ExecTimeout {
                    container_id: container_id.into(),
                    cmd,
                    timeout,
                })
            }
        }
    }
    async fn image_status(&self, reference: &str) -> Result<Option<ImageInfo>, RuntimeError> {
        let st = self.lock();
        Ok(st
            .images
            .iter()
            .any(|i| i == reference)
            .then(|| fake_image(reference)))
    }
    async fn list_images(&self) -> Result<Vec<ImageInfo>, RuntimeError> {
        Ok(self.lock().images.iter().map(|i| fake_image(i)).collect())
    }
    async fn pull_image(
        &self,
        reference: &str,
        _auth: Option<AuthConfig>,
        _progress: Option<PullProgress>,
    ) -> Result<PulledImage, RuntimeError> {
        self.lock().calls.push(format!("pull:{reference}"));
        self.take_time().await;
        let mut st = self.lock();
        // The fake registry serves what `add_pullable` put there.
        if !st.pullable.iter().any(|i| i == reference) {
            return Err(RuntimeError::ImageNotFound {
                reference: reference.to_string(),
            });
        }
        st.images.push(reference.to_string());
        Ok(PulledImage {
            image: ImageInfo {
                id: "sha256:fake".into(),
                repo_tags: vec![reference.to_string()],
                size: 0,
                stop_signal: None,
                repo_digests: vec![format!("{reference}@sha256:fake")],
                loaded_tags: Vec::new(),
                user: None,
                pinned: false,
            },
            repo_digest: format!("{reference}@sha256:fake"),
            downloaded: 0,
            seconds: 0.0,
        })
    }
    async fn remove_image(&self, reference: &str) -> Result<(), RuntimeError> {
        self.lock().images.retain(|i| i != reference);
        Ok(())
    }
    async fn load_image(
        &self,
        path: &std::path::Path,
        tag: Option<&str>,
    ) -> Result<Vec<ImageInfo>, RuntimeError> {
        let mut st = self.lock();
        st.calls.push(format!("load:{}", path.display()));
        let name = tag.map_or_else(|| format!("loaded{}", path.display()), str::to_string);
        st.images.push(name.clone());
        Ok(vec![fake_image(&name)])
    }
    async fn prune_images(&self, all: bool) -> Result<PruneResult, RuntimeError> {
        let mut st = self.lock();
        st.calls.push(format!("prune:{all}"));
        // Fake images are all tagged: only `all` removes, and never one a container uses.
        if !all {
            return Ok(PruneResult::default());
        }
        let used: HashSet<String> = st
            .containers
            .values()
            .map(|c| c.config.image.clone())
            .collect();
        let (gone, kept) = st.images.drain(..).partition(|i| !used.contains(i));
        st.images = kept;
        Ok(PruneResult {
            removed: gone,
            reclaimed: 0,
        })
    }
    async fn collect_images(&self, high: u8, low: u8) -> Result<PruneResult, RuntimeError> {
        self.lock()
            .calls
            .push(format!("collect_images:{high}:{low}"));
        Ok(PruneResult::default())
    }
    async fn image_fs_info(&self) -> Result<FsUsage, RuntimeError> {
        Ok(FsUsage {
            mountpoint: PathBuf::from("/fake/images"),
            used_bytes: 0,
            inodes_used: self.lock().images.len() as u64,
            percent_used: 0.0,
        })
    }
    async fn list_pod_sandbox_stats(&self) -> Result<Vec<SandboxStats>, RuntimeError> {
        let st = self.lock();
        let now = self.clock.now();
        let mut out: Vec<SandboxStats> = st
            .sandboxes
            .values()
            .filter(|s| s.state == SandboxState::Ready)
            .map(|s| SandboxStats {
                id: s.id.clone(),
                name: s.config.name.clone(),
                namespace: s.config.namespace.clone(),
                uid: s.config.uid.clone(),
                timestamp: now,
                cpu_usage_ns: Some(0),
                memory_working_set: Some(0),
                memory_usage: Some(0),
                containers: st
                    .containers
                    .values()
                    .filter(|c| c.sandbox_id == s.id)
                    .map(|c| ContainerStats {
                        id: c.id.clone(),
                        name: c.config.name.clone(),
                        state: c.state,
                        timestamp: now,
                        // A created container has a cgroup too (and no CPU time yet).
                        cpu_usage_ns: Some(0),
                        memory_working_set: Some(0),
                        memory_usage: Some(0),
                        writable_layer: None,
                    })
                    .collect(),
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
    async fn update_container_resources(
        &self,
        container_id: &str,
        resources: &ContainerResources,
    ) -> Result<(), RuntimeError> {
        let mut st = self.lock();
        let c = st
            .containers
            .get_mut(container_id)
            .ok_or_else(|| RuntimeError::ContainerNotFound(container_id.into()))?;
        if !matches!(c.state, ContainerState::Created | ContainerState::Running) {
            return Err(not_running(c, "update_container_resources"));
        }
        let kept = &mut c.config.linux.resources;
        *kept = ContainerResources {
            cpu_shares: resources.cpu_shares.or(kept.cpu_shares),
            cpu_quota: resources.cpu_quota.or(kept.cpu_quota),
            cpu_period: resources.cpu_period.or(kept.cpu_period),
            memory_limit: resources.memory_limit.or(kept.memory_limit),
            oom_score_adj: kept.oom_score_adj,
        };
        let name = c.config.name.clone();
        st.calls.push(format!("update:{name}"));
        Ok(())
    }
    async fn reopen_container_log(&self, container_id: &str) -> Result<(), RuntimeError> {
        let mut st = self.lock();
        let c = st
            .containers
            .get(container_id)
            .ok_or_else(|| RuntimeError::ContainerNotFound(container_id.into()))?;
        if c.state != ContainerState::Running {
            return Err(not_running(c, "reopen_container_log"));
        }
        let name = c.config.name.clone();
        st.calls.push(format!("reopen_log:{name}"));
        Ok(())
    }
    async fn sandbox_refs(&self) -> Result<Vec<SandboxRef>, RuntimeError> {
        Ok(self
            .lock()
            .sandboxes
            .values()
            .map(|s| SandboxRef {
                id: s.id.clone(),
                pod_uid: s.config.uid.clone(),
                owner: s.config.owner,
            })
            .collect())
    }
    async fn container_refs(&self) -> Result<Vec<ContainerRef>, RuntimeError> {
        Ok(self
            .lock()
            .containers
            .values()
            .map(|c| ContainerRef {
                id: c.id.clone(),
                sandbox_id: c.sandbox_id.clone(),
                image_id: c.image_id.clone(),
            })
            .collect())
    }
    fn events(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.events.subscribe()
    }
    fn reports_silence(&self) -> bool {
        self.lock().reports_silence
    }
}

/// The container or command end of a fake exec or attach session (shim frames).
struct FakeStdio {
    /// Frames sent first.
    greeting: Vec<u8>,
    /// Input is read (else dropped).
    stdin: bool,
    /// Output is sent (else dropped).
    stdout: bool,
    /// Window sizes are reported.
    tty: bool,
    /// The end of input ends the session with this exit code (an exec); `None`: without
    /// one (an attach), or never if there is no `exit` either.
    end_of_input: Option<i32>,
    /// The container's exit code, once it exits (an attach).
    exit: Option<watch::Receiver<Option<i32>>>,
}

impl FakeStdio {
    fn spawn(self) -> DuplexStream {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        tokio::spawn(self.run(theirs));
        ours
    }

    async fn run(mut self, mut io: DuplexStream) {
        let mut out = std::mem::take(&mut self.greeting);
        let mut inbuf = Vec::new();
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            if !out.is_empty() && io.write_all(&std::mem::take(&mut out)).await.is_err() {
                return;
            }
            let exited = async {
                match &mut self.exit {
                    Some(rx) => rx.wait_for(Option::is_some).await.ok().and_then(|c| *c),
                    None => std::future::pending().await,
                }
            };
            let n = tokio::select! {
                n = io.read(&mut chunk) => n,
                code = exited => {
                    if let Some(code) = code {
                        frame::encode(&mut out, frame::EXIT, &code.to_be_bytes());
                        let _ = io.write_all(&out).await;
                    }
                    let _ = io.shutdown().await;
                    return;
                }
            };
            let n = match n {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            inbuf.extend_from_slice(&chunk[..n]);
            let mut used = 0;
            while let Ok(Some((kind, payload, len))) = frame::decode(&inbuf[used..]) {
                used += len;
                match kind {
                    frame::STDIN if self.stdin && self.stdout => {
                        frame::encode(&mut out, frame::STDOUT, payload)
                    }
                    frame::RESIZE if self.tty && self.stdout => {
                        if let Some(size) = frame::parse_resize(payload) {
                            let line = format!("size {}x{}\n", size.width, size.height);
                            frame::encode(&mut out, frame::STDOUT, line.as_bytes());
                        }
                    }
                    // An exec whose handler hangs takes no end of input.
                    frame::STDIN_CLOSE
                        if self.stdin && (self.end_of_input.is_some() || self.exit.is_some()) =>
                    {
                        if let Some(code) = self.end_of_input {
                            frame::encode(&mut out, frame::EXIT, &code.to_be_bytes());
                        }
                        let _ = io.write_all(&out).await;
                        let _ = io.shutdown().await;
                        return;
                    }
                    _ => {}
                }
            }
            inbuf.drain(..used);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_frame(io: &mut ExecStream) -> Option<(u8, Vec<u8>)> {
        crate::read_frame(io).await.expect("frame")
    }

    async fn send(io: &mut ExecStream, kind: u8, payload: &[u8]) {
        let mut buf = Vec::new();
        frame::encode(&mut buf, kind, payload);
        io.write_all(&buf).await.expect("write frame");
    }

    async fn running(fake: &FakeRuntime, tty: bool) -> String {
        let sb = fake
            .run_pod_sandbox(&crate::owned::tests::sandbox("p"))
            .await
            .expect("sandbox");
        let mut config = crate::owned::tests::container("app");
        config.tty = tty;
        let c = fake
            .create_container(&sb, &config, &crate::owned::tests::sandbox("p"))
            .await
            .expect("create");
        fake.start_container(&c).await.expect("start");
        c
    }

    #[tokio::test]
    async fn attach_echoes_and_ends_with_the_containers_exit() {
        let fake = FakeRuntime::new(Clock::default(), &["busybox"]);
        let c = running(&fake, true).await;
        let opts = AttachOptions {
            stdin: true,
            stdout: true,
            stderr: false,
        };
        let mut a = fake.attach(&c, opts).await.expect("attach");
        send(&mut a, frame::STDIN, b"hi").await;
        assert_eq!(
            read_frame(&mut a).await,
            Some((frame::STDOUT, b"hi".to_vec()))
        );
        let size = TerminalSize {
            width: 80,
            height: 24,
        };
        send(&mut a, frame::RESIZE, &frame::resize_payload(size)).await;
        assert_eq!(
            read_frame(&mut a).await,
            Some((frame::STDOUT, b"size 80x24\n".to_vec()))
        );
        assert!(fake.exit("app", 3));
        assert_eq!(
            read_frame(&mut a).await,
            Some((frame::EXIT, 3i32.to_be_bytes().to_vec()))
        );
        assert_eq!(read_frame(&mut a).await, None);
        // Exited: no more sessions.
        assert!(fake.attach(&c, opts).await.is_err());
        assert!(fake.calls().contains(&"attach:app".to_string()));
    }

    #[tokio::test]
    async fn port_forward_echoes_unless_refused() {
        let fake = FakeRuntime::new(Clock::default(), &["busybox"]);
        let c = running(&fake, false).await;
        let sb = fake.container_status(&c).await.expect("status").sandbox_id;
        let mut s = fake.port_forward(&sb, 8080).await.expect("forward");
        s.write_all(b"ping").await.expect("write");
        let mut back = [0u8; 4];
        s.read_exact(&mut back).await.expect("read");
        assert_eq!(&back, b"ping");
        fake.refuse_port(81);
        let e = fake.port_forward(&sb, 81).await.err().expect("refused");
        assert!(e.to_string().contains("port 81"), "{e}");
        assert!(matches!(
            fake.port_forward("nope", 80).await,
            Err(RuntimeError::SandboxNotFound(_))
        ));
    }
}
