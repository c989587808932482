//! `POST /v1/pods/{ns}/{name}/portforward?port=N`: HTTP upgrade, then the bytes of one
//! TCP connection to `127.0.0.1:N` inside the pod's network namespace (`podhost
//! port-forward` makes one request per local connection).

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::response::Response;
use serde::Deserialize;

use super::exec::{check_reachable, relay_upgraded};
use super::{ApiError, Daemon};
use podhost_runtime::RuntimeError;

/// Options of `portforward`.
#[derive(Debug, Deserialize)]
pub(super) struct ForwardQuery {
    /// The port inside the pod.
    port: u16,
}

/// The sandbox of pod `ns/name`, for a session inside its network namespace.
pub(super) fn pod_sandbox(d: &Daemon, ns: &str, name: &str) -> Result<String, ApiError> {
    let rec = d
        .record(ns, name)
        .ok_or_else(|| ApiError::not_found("pods", name))?;
    check_reachable(&rec, name)?;
    rec.sandbox_id
        .ok_or_else(|| ApiError::bad(format!("pod {name} has no sandbox yet: it is not running")))
}

pub(super) async fn port_forward(
    State(d): State<Arc<Daemon>>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<ForwardQuery>,
    mut req: Request,
) -> Result<Response, ApiError> {
    if q.port == 0 {
        return Err(ApiError::bad("port 0 is not a port to forward to"));
    }
    let sandbox = pod_sandbox(&d, &ns, &name)?;
    let port = q.port;
    let stream = d.runtime.port_forward(&sandbox, port).await.map_err(|e| {
        let cause = match e {
            RuntimeError::PortForward { source, .. } => source.to_string(),
            e => e.to_string(),
        };
        ApiError::bad(format!(
            "error forwarding port {port} to pod {name}: {cause}"
        ))
    })?;
    relay_upgraded(&mut req, stream, "podhost-portforward")
}
