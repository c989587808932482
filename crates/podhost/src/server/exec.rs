//! `POST /v1/pods/{ns}/{name}/exec`: HTTP upgrade, then bytes are relayed between the
//! client and the shim untouched (the shim's frame protocol end to end, so a TTY's resize
//! frames reach the shim as the client wrote them).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use super::logs::pick_container;
use super::{ApiError, Daemon};
use crate::runtime::{ContainerState, ExecOptions, TerminalSize};

/// Options of `exec`.
#[derive(Debug, Deserialize)]
pub(super) struct ExecQuery {
    container: Option<String>,
    /// The command, JSON-encoded array (query strings have no lists).
    cmd: String,
    /// Run on a pseudo-terminal (kubectl's `-t`); resizes then come as frames.
    #[serde(default)]
    tty: bool,
    /// Initial terminal columns (with `tty`).
    width: Option<u16>,
    /// Initial terminal rows (with `tty`).
    height: Option<u16>,
}

pub(super) async fn exec(
    State(d): State<Arc<Daemon>>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<ExecQuery>,
    mut req: Request,
) -> Result<Response, ApiError> {
    let cmd: Vec<String> =
        serde_json::from_str(&q.cmd).map_err(|e| ApiError::bad(format!("cmd: {e}")))?;
    if cmd.is_empty() {
        return Err(ApiError::bad(
            "you must specify at least one command for the container",
        ));
    }
    let rec = d
        .record(&ns, &name)
        .ok_or_else(|| ApiError::not_found("pods", &name))?;
    let container = pick_container(&rec.pod, q.container.as_deref())?;
    let cur = rec
        .containers
        .get(&container)
        .and_then(|t| t.current.clone())
        .filter(|c| c.state == ContainerState::Running)
        .ok_or_else(|| {
            ApiError(StatusCode::BAD_REQUEST, format!("unable to upgrade connection: container {container} not found or not running in pod {name}"))
        })?;
    let size = match (q.width, q.height) {
        (Some(width), Some(height)) if q.tty => Some(TerminalSize { width, height }),
        _ => None,
    };
    let opts = ExecOptions { tty: q.tty, size };
    let shim_stream = d
        .runtime
        .exec(&cur.id, cmd, opts)
        .await
        .map_err(|e| ApiError::bad(e.to_string()))?;
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut client = TokioIo::new(upgraded);
        let mut shim = shim_stream;
        let _ = tokio::io::copy_bidirectional(&mut client, &mut shim).await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "podhost-exec")
        .body(Body::empty())
        .map_err(ApiError::internal)
}
