//! `POST /v1/pods/{ns}/{name}/attach`: HTTP upgrade, then the shim's frame protocol end
//! to end, as for exec: the container's output from now on, input for its stdin (if it
//! has one), terminal sizes, its exit code when it exits.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::response::Response;
use serde::Deserialize;

use super::exec::{relay_upgraded, running_container};
use super::{ApiError, Daemon};
use podhost_runtime::AttachOptions;

/// Options of `attach`.
#[derive(Debug, Deserialize)]
pub(super) struct AttachQuery {
    container: Option<String>,
    /// Pass the client's input to the container's stdin (kubectl's `-i`).
    #[serde(default)]
    stdin: bool,
}

pub(super) async fn attach(
    State(d): State<Arc<Daemon>>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<AttachQuery>,
    mut req: Request,
) -> Result<Response, ApiError> {
    let target = running_container(&d, &ns, &name, q.container.as_deref())?;
    // A terminal merges the streams: everything comes as stdout.
    let tty = target.spec.tty == Some(true);
    let opts = AttachOptions {
        stdin: q.stdin,
        stdout: true,
        stderr: !tty,
    };
    let stream = d
        .runtime
        .attach(&target.id, opts)
        .await
        .map_err(|e| ApiError::bad(e.to_string()))?;
    relay_upgraded(&mut req, stream, "podhost-attach")
}
