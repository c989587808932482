//! Async client of a pod's shim (`<sandbox run dir>/shim.sock`), speaking
//! `podhost_shim::proto` (newline-delimited JSON, then exec frames).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use podhost_shim::proto::{
    ContainerState, ContainerStatus, ErrorCode, Event, Request, Response, TerminalSize,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::RuntimeError;
use crate::status_cache::StatusCache;

/// The shim's answer to `status`.
#[derive(Debug, Clone)]
pub struct ShimStatus {
    /// Pid of the pause (host pid namespace).
    pub pause_pid: Option<u32>,
    /// Whether the pause still runs.
    pub pause_running: bool,
    /// Every container the shim knows.
    pub containers: Vec<ContainerStatus>,
}

impl ShimStatus {
    /// Whether the container runs.
    pub fn is_running(&self, id: &str) -> bool {
        self.containers
            .iter()
            .any(|c| c.id == id && c.state == ContainerState::Running)
    }
}

/// Handle on one shim's socket.
#[derive(Debug, Clone)]
pub struct ShimClient {
    sandbox_id: String,
    socket: PathBuf,
    /// Cached status answers, invalidated by every request that may change the shim's
    /// state (see [`crate::status_cache`]).
    statuses: Option<Arc<StatusCache>>,
}

/// How long a quick request (status, signal, remove, shutdown) may wait for its answer.
/// The shim answers in microseconds unless it is running a start or delete helper, which
/// blocks its loop for a second or two on a loaded machine (a create's helper does not).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// Create, start and exec run the container helper inside the shim.
const HELPER_TIMEOUT: Duration = Duration::from_secs(60);

/// The class of an error from a shim older than error codes, which still runs pods
/// started before an upgrade: only "not found" matters to the daemon, and those shims
/// said it in one fixed phrase.
fn legacy_code(message: &str) -> ErrorCode {
    if message.contains(" not found in sandbox ") {
        ErrorCode::NotFound
    } else {
        ErrorCode::Internal
    }
}

/// The shim is gone (so there is nothing left on its side to ask or stop).
pub fn is_gone(e: &RuntimeError) -> bool {
    matches!(e, RuntimeError::ShimGone { .. })
}

impl ShimClient {
    /// Client of the shim listening on `socket`.
    pub fn new(sandbox_id: &str, socket: &Path) -> Self {
        ShimClient {
            sandbox_id: sandbox_id.to_string(),
            socket: socket.to_path_buf(),
            statuses: None,
        }
    }

    /// The same client, invalidating `statuses` of its sandbox after each request that
    /// may change the shim's state.
    pub fn invalidating(mut self, statuses: Arc<StatusCache>) -> Self {
        self.statuses = Some(statuses);
        self
    }

    fn err(&self, op: &'static str, message: impl ToString) -> RuntimeError {
        self.failed(op, ErrorCode::Internal, message.to_string())
    }

    fn failed(&self, op: &'static str, code: ErrorCode, message: String) -> RuntimeError {
        RuntimeError::Shim {
            sandbox_id: self.sandbox_id.clone(),
            op,
            code,
            message,
        }
    }

    fn gone(&self, op: &'static str, cause: impl ToString) -> RuntimeError {
        RuntimeError::ShimGone {
            sandbox_id: self.sandbox_id.clone(),
            op,
            socket: self.socket.clone(),
            cause: cause.to_string(),
        }
    }

    fn unresponsive(&self, op: &'static str, timeout: Duration) -> RuntimeError {
        RuntimeError::ShimUnresponsive {
            sandbox_id: self.sandbox_id.clone(),
            op,
            socket: self.socket.clone(),
            timeout,
        }
    }

    async fn connect(&self, op: &'static str) -> Result<UnixStream, RuntimeError> {
        UnixStream::connect(&self.socket).await.map_err(|e| {
            // A full backlog: the shim lives but does not accept (stopped or hung).
            if e.kind() == std::io::ErrorKind::WouldBlock {
                self.unresponsive(op, Duration::ZERO)
            } else {
                self.gone(op, e)
            }
        })
    }

    /// `fut` (a connect and request) within `limit`; past it the shim is unresponsive.
    async fn within<T>(
        &self,
        op: &'static str,
        limit: Duration,
        fut: impl std::future::Future<Output = Result<T, RuntimeError>>,
    ) -> Result<T, RuntimeError> {
        tokio::time::timeout(limit, fut)
            .await
            .unwrap_or_else(|_| Err(self.unresponsive(op, limit)))
    }

    /// Send one request and read its response line, byte by byte so that nothing that
    /// follows the line (exec frames, events) is swallowed by a buffer.
    async fn request_on(
        &self,
        stream: &mut UnixStream,
        op: &'static str,
        req: &Request,
    ) -> Result<Response, RuntimeError> {
        let mut line = serde_json::to_vec(req).map_err(|e| self.err(op, e))?;
        line.push(b'\n');
        stream
            .write_all(&line)
            .await
            .map_err(|e| self.gone(op, e))?;
        let mut buf = Vec::with_capacity(256);
        loop {
            let b = stream
                .read_u8()
                .await
                .map_err(|_| self.gone(op, "it closed the connection"))?;
            if b == b'\n' {
                break;
            }
            buf.push(b);
        }
        let resp: Response = serde_json::from_slice(&buf).map_err(|e| self.err(op, e))?;
        if resp.ok {
            return Ok(resp);
        }
        let message = resp
            .error
            .unwrap_or_else(|| "shim error without message".into());
        let code = resp.code.unwrap_or_else(|| legacy_code(&message));
        Err(self.failed(op, code, message))
    }

    async fn request(&self, op: &'static str, req: Request) -> Result<Response, RuntimeError> {
        let limit = match req {
            Request::Status | Request::Signal { .. } | Request::ReopenLog { .. } => ANSWER_TIMEOUT,
            // These run the container helper (create, start, delete) inside the shim.
            _ => HELPER_TIMEOUT,
        };
        let changes = !matches!(req, Request::Status | Request::ReopenLog { .. });
        let out = self
            .within(op, limit, async {
                let mut s = self.connect(op).await?;
                self.request_on(&mut s, op, &req).await
            })
            .await;
        // Also after an error or a timeout: the request may have done part of its work.
        if let (true, Some(c)) = (changes, &self.statuses) {
            c.invalidate(&self.sandbox_id);
        }
        out
    }

    /// Create a container from its bundle; output goes to `log_path`. `config` says
    /// whether it gets a terminal and keeps stdin for attach.
    pub async fn create_container(
        &self,
        id: &str,
        bundle: &Path,
        log_path: &Path,
        config: &crate::ContainerConfig,
    ) -> Result<(), RuntimeError> {
        let req = Request::CreateContainer {
            id: id.into(),
            bundle: bundle.display().to_string(),
            log_path: log_path.display().to_string(),
            tty: config.tty,
            stdin: config.stdin,
            stdin_once: config.stdin_once,
        };
        let resp = self.request("create_container", req).await?;
        record_helper_time(&resp);
        Ok(())
    }

    /// Start a created container.
    pub async fn start_container(&self, id: &str) -> Result<(), RuntimeError> {
        let resp = self
            .request("start_container", Request::StartContainer { id: id.into() })
            .await?;
        record_helper_time(&resp);
        Ok(())
    }

    /// Signal a container's main process.
    pub async fn signal(&self, id: &str, signal: i32) -> Result<(), RuntimeError> {
        self.request(
            "signal",
            Request::Signal {
                id: id.into(),
                signal,
            },
        )
        .await
        .map(drop)
    }

    /// Delete a stopped container (its cgroup, libcontainer state).
    pub async fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        self.request(
            "remove_container",
            Request::RemoveContainer { id: id.into() },
        )
        .await
        .map(drop)
    }

    /// Make the shim write a running container's output to a new file at its log path.
    pub async fn reopen_log(&self, id: &str) -> Result<(), RuntimeError> {
        self.request("reopen_log", Request::ReopenLog { id: id.into() })
            .await
            .map(drop)
    }

    /// Pause and container states.
    pub async fn status(&self) -> Result<ShimStatus, RuntimeError> {
        let r = self.request("status", Request::Status).await?;
        Ok(ShimStatus {
            pause_pid: r.pause_pid.and_then(|p| u32::try_from(p).ok()),
            pause_running: r.pause_running.unwrap_or(false),
            containers: r.containers.unwrap_or_default(),
        })
    }

    /// Kill what remains, stop the pause, and let the shim exit. With `removing` the
    /// caller removes the sandbox next (its cgroups and the containers' runtime state):
    /// the shim leaves that to it.
    pub async fn shutdown(&self, removing: bool) -> Result<(), RuntimeError> {
        self.request("shutdown", Request::Shutdown { removing })
            .await
            .map(drop)
    }

    /// Shut the shim down (it kills what still runs and the pause, then exits). A shim that
    /// does not answer is killed instead; what it leaves in the pod cgroup is for the
    /// caller's removal to kill. A shim already gone is fine. `removing`: as for
    /// [`ShimClient::shutdown`].
    pub async fn stop(&self, removing: bool) -> Result<(), RuntimeError> {
        // A quick question first: a stopped or hung shim would hold a shutdown for the
        // helper's whole time limit.
        let asked = match self.status().await {
            Ok(_) => self.shutdown(removing).await,
            Err(e) => Err(e),
        };
        match asked {
            Err(e @ RuntimeError::ShimUnresponsive { .. }) => {
                if self.kill().await {
                    Ok(())
                } else {
                    Err(e)
                }
            }
            Err(e) if !is_gone(&e) => Err(e),
            _ => Ok(()),
        }
    }

    /// SIGKILL a shim that does not answer (stopped or hung), found by the pid file it wrote
    /// next to its socket; true when it is gone afterwards. The pid is checked against the
    /// process's command line first, so a reused pid is never hit.
    pub async fn kill(&self) -> bool {
        let Some(dir) = self.socket.parent() else {
            return false;
        };
        let pid = std::fs::read_to_string(dir.join("shim.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        let Some(pid) = pid else {
            return false;
        };
        let ours = |pid: i32| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
                args.first().is_some_and(|a| a.ends_with(b"podhost-shim"))
                    && args.contains(&dir.as_os_str().as_encoded_bytes())
            })
        };
        if !ours(pid) {
            return true;
        }
        tracing::warn!(
            "sandbox {}: killing its shim (pid {pid}), which does not answer",
            self.sandbox_id
        );
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        if let Some(c) = &self.statuses {
            c.invalidate(&self.sandbox_id);
        }
        // Not our child: it is reaped by init (or a subreaper); wait until it is.
        for _ in 0..100 {
            if !ours(pid) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// Start an exec session, on a pty with `tty`; the returned stream speaks the shim's
    /// frame protocol.
    pub async fn exec(
        &self,
        id: &str,
        cmd: &[String],
        tty: bool,
        size: Option<TerminalSize>,
    ) -> Result<UnixStream, RuntimeError> {
        let req = Request::Exec {
            id: id.into(),
            cmd: cmd.to_vec(),
            tty,
            size,
        };
        // Only the handshake is bounded: the session then lasts as long as the command.
        self.within("exec", HELPER_TIMEOUT, async {
            let mut s = self.connect("exec").await?;
            self.request_on(&mut s, "exec", &req).await?;
            Ok(s)
        })
        .await
    }

    /// Attach to a running container's stdio; the returned stream speaks the shim's frame
    /// protocol (see [`Request::Attach`]).
    pub async fn attach(
        &self,
        id: &str,
        opts: crate::AttachOptions,
    ) -> Result<UnixStream, RuntimeError> {
        let req = Request::Attach {
            id: id.into(),
            stdin: opts.stdin,
            stdout: opts.stdout,
            stderr: opts.stderr,
        };
        self.within("attach", ANSWER_TIMEOUT, async {
            let mut s = self.connect("attach").await?;
            self.request_on(&mut s, "attach", &req).await?;
            Ok(s)
        })
        .await
    }

    /// Subscribe to the shim's news until it goes away: each exit, each heartbeat, and
    /// a heartbeat overdue by `silent_after` (once per silence). Unbounded: a stopped
    /// shim answers once it is continued, and its heartbeats resume.
    pub async fn subscribe(
        &self,
        silent_after: Duration,
        mut on_news: impl FnMut(ShimNews),
    ) -> Result<(), RuntimeError> {
        let mut s = self.connect("subscribe").await?;
        self.request_on(&mut s, "subscribe", &Request::Subscribe)
            .await?;
        let mut lines = BufReader::new(s).lines();
        let mut silent = false;
        loop {
            let line = match tokio::time::timeout(silent_after, lines.next_line()).await {
                Ok(Ok(Some(line))) => line,
                Ok(_) => return Ok(()),
                Err(_) => {
                    if !silent {
                        silent = true;
                        on_news(ShimNews::Silent);
                    }
                    continue;
                }
            };
            silent = false;
            match serde_json::from_str::<Event>(&line) {
                Ok(Event::Exit { id, .. }) => on_news(ShimNews::Exit(id)),
                Ok(Event::Alive) => on_news(ShimNews::Alive),
                // A newer shim's event this daemon does not know.
                Err(_) => {}
            }
        }
    }
}

/// What a shim's event subscription brings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShimNews {
    /// A container (its id) or the pause (`"pause"`) exited.
    Exit(String),
    /// The shim's heartbeat: its loop runs.
    Alive,
    /// No heartbeat for longer than expected: the shim may be stopped or hung (or be
    /// from before heartbeats).
    Silent,
}

/// The shim's own timing of its `podhost-runc` helper, into the caller's start-up span.
fn record_helper_time(resp: &Response) {
    if let Some(us) = resp.helper_us {
        tracing::Span::current().record("helper_us", us);
    }
}
