//! `POST /v1/pods/{ns}/{name}/streaming/{exec|attach|portforward}`: the URL of a session
//! on the daemon's streaming server (kubelet's SPDY protocols), for a podhost pod, as CRI's
//! Exec, Attach and PortForward give a kubelet one for its pods. Tools that speak those
//! protocols (and the end-to-end tests) use it; the `podhost` CLI has its own sessions.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use podhost_cri_api::{AttachRequest, ExecRequest, PortForwardRequest};
use serde::{Deserialize, Serialize};

use super::exec::running_container;
use super::portforward::pod_sandbox;
use super::{ApiError, Daemon};

/// What a session asks for (CRI's request fields; a container by name).
#[derive(Debug, Deserialize)]
pub struct StreamingRequest {
    /// The container (default: the first); exec and attach.
    #[serde(default)]
    pub container: Option<String>,
    /// The command; exec.
    #[serde(default)]
    pub cmd: Vec<String>,
    /// On a terminal.
    #[serde(default)]
    pub tty: bool,
    /// The client sends input.
    #[serde(default)]
    pub stdin: bool,
    /// The client receives stdout.
    #[serde(default)]
    pub stdout: bool,
    /// The client receives stderr.
    #[serde(default)]
    pub stderr: bool,
    /// The ports a port-forward session may reach (none: any).
    #[serde(default)]
    pub ports: Vec<u16>,
}

/// Where the session is.
#[derive(Debug, Serialize, Deserialize)]
pub struct StreamingUrl {
    /// `http://127.0.0.1:PORT/KIND/TOKEN`, good once, for a minute.
    pub url: String,
}

/// A gRPC status from the streaming server as an HTTP answer.
fn status(s: tonic::Status) -> ApiError {
    let code = match s.code() {
        tonic::Code::InvalidArgument => StatusCode::UNPROCESSABLE_ENTITY,
        tonic::Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        tonic::Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError(code, s.message().to_string())
}

pub(super) async fn streaming_url(
    State(d): State<Arc<Daemon>>,
    Path((ns, name, kind)): Path<(String, String, String)>,
    Json(r): Json<StreamingRequest>,
) -> Result<Json<StreamingUrl>, ApiError> {
    let server = &d.streaming;
    let url = match kind.as_str() {
        "exec" => {
            let target = running_container(&d, &ns, &name, r.container.as_deref())?;
            let req = ExecRequest {
                container_id: target.id,
                cmd: r.cmd,
                tty: r.tty,
                stdin: r.stdin,
                stdout: r.stdout,
                stderr: r.stderr,
            };
            server.get_exec(&req).map_err(status)?.url
        }
        "attach" => {
            let target = running_container(&d, &ns, &name, r.container.as_deref())?;
            let req = AttachRequest {
                container_id: target.id,
                tty: r.tty,
                stdin: r.stdin,
                stdout: r.stdout,
                stderr: r.stderr,
            };
            server.get_attach(&req).map_err(status)?.url
        }
        "portforward" => {
            let req = PortForwardRequest {
                pod_sandbox_id: pod_sandbox(&d, &ns, &name)?,
                port: r.ports.iter().map(|p| i32::from(*p)).collect(),
            };
            server.get_port_forward(&req).map_err(status)?.url
        }
        other => {
            return Err(ApiError::not_found("streaming session kinds", other));
        }
    };
    Ok(Json(StreamingUrl { url }))
}
