//! Async client of a pod's shim (`<sandbox run dir>/shim.sock`), speaking
//! `podhost_shim::proto` (newline-delimited JSON, then exec frames).

use std::path::{Path, PathBuf};

use podhost_shim::proto::{ContainerState, ContainerStatus, Event, Request, Response};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::RuntimeError;

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
}

/// Messages that mean the shim is gone (so there is nothing left on its side).
pub fn is_gone(e: &RuntimeError) -> bool {
    matches!(e, RuntimeError::Shim { message, .. } if message.contains("unreachable") || message.contains("closed the connection"))
}

impl ShimClient {
    /// Client of the shim listening on `socket`.
    pub fn new(sandbox_id: &str, socket: &Path) -> Self {
        ShimClient {
            sandbox_id: sandbox_id.to_string(),
            socket: socket.to_path_buf(),
        }
    }

    fn err(&self, op: &'static str, message: impl ToString) -> RuntimeError {
        RuntimeError::Shim {
            sandbox_id: self.sandbox_id.clone(),
            op,
            message: message.to_string(),
        }
    }

    async fn connect(&self, op: &'static str) -> Result<UnixStream, RuntimeError> {
        UnixStream::connect(&self.socket).await.map_err(|e| {
            self.err(
                op,
                format!("shim unreachable at {}: {e}", self.socket.display()),
            )
        })
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
        stream.write_all(&line).await.map_err(|e| self.err(op, e))?;
        let mut buf = Vec::with_capacity(256);
        loop {
            let b = stream
                .read_u8()
                .await
                .map_err(|_| self.err(op, "shim closed the connection"))?;
            if b == b'\n' {
                break;
            }
            buf.push(b);
        }
        let resp: Response = serde_json::from_slice(&buf).map_err(|e| self.err(op, e))?;
        if resp.ok {
            Ok(resp)
        } else {
            Err(self.err(
                op,
                resp.error
                    .unwrap_or_else(|| "shim error without message".into()),
            ))
        }
    }

    async fn request(&self, op: &'static str, req: Request) -> Result<Response, RuntimeError> {
        let mut s = self.connect(op).await?;
        self.request_on(&mut s, op, &req).await
    }

    /// Create a container from its bundle; output goes to `log_path`.
    pub async fn create_container(
        &self,
        id: &str,
        bundle: &Path,
        log_path: &Path,
    ) -> Result<(), RuntimeError> {
        let req = Request::CreateContainer {
            id: id.into(),
            bundle: bundle.display().to_string(),
            log_path: log_path.display().to_string(),
        };
        self.request("create_container", req).await.map(drop)
    }

    /// Start a created container.
    pub async fn start_container(&self, id: &str) -> Result<(), RuntimeError> {
        self.request("start_container", Request::StartContainer { id: id.into() })
            .await
            .map(drop)
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

    /// Pause and container states.
    pub async fn status(&self) -> Result<ShimStatus, RuntimeError> {
        let r = self.request("status", Request::Status).await?;
        Ok(ShimStatus {
            pause_pid: r.pause_pid.and_then(|p| u32::try_from(p).ok()),
            pause_running: r.pause_running.unwrap_or(false),
            containers: r.containers.unwrap_or_default(),
        })
    }

    /// Kill what remains, stop the pause, and let the shim exit.
    pub async fn shutdown(&self) -> Result<(), RuntimeError> {
        self.request("shutdown", Request::Shutdown).await.map(drop)
    }

    /// Start an exec session; the returned stream speaks the shim's frame protocol.
    pub async fn exec(&self, id: &str, cmd: &[String]) -> Result<UnixStream, RuntimeError> {
        let mut s = self.connect("exec").await?;
        self.request_on(
            &mut s,
            "exec",
            &Request::Exec {
                id: id.into(),
                cmd: cmd.to_vec(),
            },
        )
        .await?;
        Ok(s)
    }

    /// Subscribe to exit events: calls `on_exit(container id or "pause")` per exit until the
    /// shim goes away.
    pub async fn subscribe(&self, mut on_exit: impl FnMut(String)) -> Result<(), RuntimeError> {
        let mut s = self.connect("subscribe").await?;
        self.request_on(&mut s, "subscribe", &Request::Subscribe)
            .await?;
        let mut lines = BufReader::new(s).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(Event::Exit { id, .. }) = serde_json::from_str::<Event>(&line) {
                on_exit(id);
            }
        }
        Ok(())
    }
}
