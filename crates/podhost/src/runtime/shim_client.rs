//! Async client of a pod's shim (`<sandbox run dir>/shim.sock`, newline-delimited JSON).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::RuntimeError;

/// One container as the shim reports it.
#[derive(Debug, Clone, Deserialize)]
pub struct ShimContainer {
    pub id: String,
    pub pid: Option<u32>,
    pub state: String,
    pub exit_code: Option<i32>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// The shim's answer to `status`.
#[derive(Debug, Clone, Deserialize)]
pub struct ShimStatus {
    pub pause_pid: Option<u32>,
    pub pause_running: bool,
    pub containers: Vec<ShimContainer>,
}

/// Handle on one shim's socket.
#[derive(Debug, Clone)]
pub struct ShimClient {
    sandbox_id: String,
    socket: PathBuf,
}

impl ShimClient {
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
    /// follows the line (exec frames) is swallowed by a buffer.
    async fn request_on(
        &self,
        stream: &mut UnixStream,
        op: &'static str,
        req: Value,
    ) -> Result<Value, RuntimeError> {
        let mut line = serde_json::to_vec(&req).map_err(|e| self.err(op, e))?;
        line.push(b'\n');
        stream.write_all(&line).await.map_err(|e| self.err(op, e))?;
        let mut buf = Vec::with_capacity(256);
        loop {
            let mut b = [0u8; 1];
            let n = stream.read(&mut b).await.map_err(|e| self.err(op, e))?;
            if n == 0 {
                return Err(self.err(op, "shim closed the connection"));
            }
            if b[0] == b'\n' {
                break;
            }
            buf.push(b[0]);
        }
        let resp: Value = serde_json::from_slice(&buf).map_err(|e| self.err(op, e))?;
        if resp.get("ok").and_then(Value::as_bool) == Some(true) {
            Ok(resp)
        } else {
            let msg = resp
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("unknown shim error");
            Err(self.err(op, msg))
        }
    }

    async fn request(&self, op: &'static str, req: Value) -> Result<Value, RuntimeError> {
        let mut s = self.connect(op).await?;
        self.request_on(&mut s, op, req).await
    }

    pub async fn create_container(
        &self,
        id: &str,
        bundle: &Path,
        log_path: &Path,
    ) -> Result<(), RuntimeError> {
        self.request(
            "create_container",
            json!({"op": "create_container", "id": id, "bundle": bundle, "log_path": log_path}),
        )
        .await
        .map(drop)
    }

    pub async fn start_container(&self, id: &str) -> Result<(), RuntimeError> {
        self.request(
            "start_container",
            json!({"op": "start_container", "id": id}),
        )
        .await
        .map(drop)
    }

    pub async fn signal(&self, id: &str, signal: i32) -> Result<(), RuntimeError> {
        self.request(
            "signal",
            json!({"op": "signal", "id": id, "signal": signal}),
        )
        .await
        .map(drop)
    }

    pub async fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        self.request(
            "remove_container",
            json!({"op": "remove_container", "id": id}),
        )
        .await
        .map(drop)
    }

    pub async fn status(&self) -> Result<ShimStatus, RuntimeError> {
        let v = self.request("status", json!({"op": "status"})).await?;
        serde_json::from_value(v).map_err(|e| self.err("status", e))
    }

    pub async fn shutdown(&self) -> Result<(), RuntimeError> {
        self.request("shutdown", json!({"op": "shutdown"}))
            .await
            .map(drop)
    }

    /// Start an exec session; the returned stream speaks the shim's frame protocol.
    pub async fn exec(&self, id: &str, cmd: &[String]) -> Result<UnixStream, RuntimeError> {
        let mut s = self.connect("exec").await?;
        self.request_on(&mut s, "exec", json!({"op": "exec", "id": id, "cmd": cmd}))
            .await?;
        Ok(s)
    }

    /// Subscribe to exit events: calls `on_event(container id or "pause")` per exit until the
    /// shim goes away.
    pub async fn subscribe(&self, mut on_event: impl FnMut(String)) -> Result<(), RuntimeError> {
        let mut s = self.connect("subscribe").await?;
        self.request_on(&mut s, "subscribe", json!({"op": "subscribe"}))
            .await?;
        let mut lines = BufReader::new(s).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if let Some(id) = v.get("id").and_then(Value::as_str) {
                    on_event(id.to_string());
                }
            }
        }
        Ok(())
    }
}
