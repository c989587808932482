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
    // A shim that does not answer would hold the session's handshake for a minute.
    if let Some(st) = rec
        .pod
        .status
        .as_ref()
        .filter(|s| s.reason.as_deref() == Some(crate::lifecycle::status::SHIM_UNREACHABLE))
    {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "pod {name} is Unknown: {}",
                st.message.as_deref().unwrap_or("its shim does not answer")
            ),
        ));
    }
    let cur = rec
        .containers
        .get(&container)
        .and_then(|t| t.current.clone())
        .filter(|c| c.state == ContainerState::Running)
        .ok_or_else(|| {
            ApiError(StatusCode::BAD_REQUEST, format!("unable to upgrade connection: container {container} not found or not running in pod {name}"))
        })?;
    let opts = q.options();
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
