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
use podhost_runtime::{ContainerState, ExecOptions, TerminalSize};

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

impl ExecQuery {
    /// The session's options; a size only counts with a TTY and both dimensions.
    fn options(&self) -> ExecOptions {
        let size = match (self.width, self.height) {
            (Some(width), Some(height)) if self.tty => Some(TerminalSize { width, height }),
            _ => None,
        };
        ExecOptions {
            tty: self.tty,
            size,
        }
    }
}

/// A running container of a pod, found for a session.
pub(super) struct Target {
    /// Its runtime id.
    pub id: String,
    /// Its spec (tty, stdin).
    pub spec: k8s_openapi::api::core::v1::Container,
}

/// The running container `container` (default: the first) of pod `ns/name`; refused
/// while the pod's shim does not answer (it would hold the session's handshake for a
/// minute).
pub(super) fn running_container(
    d: &Daemon,
    ns: &str,
    name: &str,
    container: Option<&str>,
) -> Result<Target, ApiError> {
    let rec = d
        .record(ns, name)
        .ok_or_else(|| ApiError::not_found("pods", name))?;
    check_reachable(&rec, name)?;
    let container = pick_container(&rec.pod, container)?;
    let cur = rec
        .containers
        .get(&container)
        .and_then(|t| t.current.clone())
        .filter(|c| c.state == ContainerState::Running)
        .ok_or_else(|| {
            ApiError(StatusCode::BAD_REQUEST, format!("unable to upgrade connection: container {container} not found or not running in pod {name}"))
        })?;
    let spec = rec
        .pod
        .spec
        .iter()
        .flat_map(podhost_api::all_containers)
        .find(|c| c.name == container)
        .unwrap_or_default();
    Ok(Target { id: cur.id, spec })
}

/// A pod whose shim does not answer cannot have a session.
pub(super) fn check_reachable(
    rec: &crate::lifecycle::PodRecord,
    name: &str,
) -> Result<(), ApiError> {
    let unreachable = rec
        .pod
        .status
        .as_ref()
        .filter(|s| s.reason.as_deref() == Some(crate::lifecycle::status::SHIM_UNREACHABLE));
    match unreachable {
        Some(st) => Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "pod {name} is Unknown: {}",
                st.message.as_deref().unwrap_or("its shim does not answer")
            ),
        )),
        None => Ok(()),
    }
}

/// Answers 101 and relays the upgraded connection and `io` byte for byte until either
/// side ends.
pub(super) fn relay_upgraded(
    req: &mut Request,
    mut io: Box<dyn podhost_runtime::ExecIo>,
    protocol: &'static str,
) -> Result<Response, ApiError> {
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut client = TokioIo::new(upgraded);
        let _ = tokio::io::copy_bidirectional(&mut client, &mut io).await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, protocol)
        .body(Body::empty())
        .map_err(ApiError::internal)
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
    let target = running_container(&d, &ns, &name, q.container.as_deref())?;
    let opts = q.options();
    let shim_stream = d
        .runtime
        .exec(&target.id, cmd, opts)
        .await
        .map_err(|e| ApiError::bad(e.to_string()))?;
    relay_upgraded(&mut req, shim_stream, "podhost-exec")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(q: &str) -> ExecQuery {
        let uri: axum::http::Uri = format!("http://podhost/exec?{q}").parse().unwrap();
        Query::<ExecQuery>::try_from_uri(&uri).unwrap().0
    }

    #[test]
    fn exec_query_to_options() {
        let plain = query("cmd=%5B%22sh%22%5D");
        assert_eq!(plain.cmd, r#"["sh"]"#);
        assert_eq!(plain.options(), ExecOptions::default());
        let tty = query("cmd=x&tty=true&width=132&height=50");
        assert_eq!(
            tty.options(),
            ExecOptions {
                tty: true,
                size: Some(TerminalSize {
                    width: 132,
                    height: 50
                })
            }
        );
        // A size without a TTY, or half a size, is no size.
        assert_eq!(
            query("cmd=x&width=132&height=50").options(),
            ExecOptions::default()
        );
        assert_eq!(query("cmd=x&tty=true&width=132").options().size, None);
        assert!(Query::<ExecQuery>::try_from_uri(
            &"http://podhost/exec?cmd=x&width=70000".parse().unwrap()
        )
        .is_err());
    }
}
