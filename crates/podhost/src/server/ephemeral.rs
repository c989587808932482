//! `POST /v1/pods/{ns}/{name}/ephemeralcontainers`: the API server's `ephemeralcontainers`
//! subresource, which `podhost debug` uses as kubectl debug does. The body is the pod's
//! whole new list; existing entries may be neither changed nor removed, and only a running
//! pod takes new ones. The pod's worker starts them.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use k8s_openapi::api::core::v1::{EphemeralContainer, Pod};
use serde::{Deserialize, Serialize};

use super::{ApiError, Daemon};
use crate::lifecycle::worker::set_ephemeral;

/// Body of the request: `spec.ephemeralContainers` as it shall be.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EphemeralRequest {
    /// The existing entries, unchanged, and the new ones.
    pub ephemeral_containers: Vec<EphemeralContainer>,
}

/// How long the answer waits for the worker to show the new containers in the pod (so
/// that a `get` right after sees them); the worker takes them in at its next step.
const SHOWN_WITHIN: Duration = Duration::from_secs(2);

pub(super) async fn update(
    State(d): State<Arc<Daemon>>,
    Path((ns, name)): Path<(String, String)>,
    Json(req): Json<EphemeralRequest>,
) -> Result<Json<Pod>, ApiError> {
    let handle = d
        .handle(&ns, &name)
        .ok_or_else(|| ApiError::not_found("pods", &name))?;
    let rec = super::view(&handle);
    if rec.deleting.is_some() || rec.pod.metadata.deletion_timestamp.is_some() {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("pod {name:?} is being deleted: ephemeral containers cannot be added"),
        ));
    }
    let phase = rec
        .pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default();
    if phase != "Running" || rec.finished {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("pod {name:?} is not running (phase {phase}): ephemeral containers can only be added to a running pod"),
        ));
    }
    let mut new_pod = rec.pod.clone();
    set_ephemeral(&mut new_pod, req.ephemeral_containers);
    podhost_api::default_pod(&mut new_pod);
    let list = new_pod
        .spec
        .as_ref()
        .and_then(|s| s.ephemeral_containers.clone())
        .unwrap_or_default();
    // Checked against the list as it is at the moment of the change, so that two
    // debuggers added at once cannot both pass against the same old list.
    let mut outcome = Ok(());
    handle.ephemeral.send_if_modified(|current| {
        let mut old_pod = rec.pod.clone();
        set_ephemeral(&mut old_pod, current.clone());
        match podhost_api::validate_ephemeral_update(&old_pod, &new_pod) {
            Ok(_) if *current == list => false,
            Ok(_) => {
                *current = list.clone();
                true
            }
            Err(e) => {
                outcome = Err(e);
                false
            }
        }
    });
    outcome.map_err(|e| ApiError::bad(e.to_string()))?;
    let names: Vec<String> = list.iter().map(|e| e.name.clone()).collect();
    let mut snap = handle.snapshot.clone();
    let _ = tokio::time::timeout(
        SHOWN_WITHIN,
        snap.wait_for(|r| {
            let shown = r
                .pod
                .spec
                .as_ref()
                .and_then(|s| s.ephemeral_containers.as_ref());
            names
                .iter()
                .all(|n| shown.is_some_and(|l| l.iter().any(|e| &e.name == n)))
        }),
    )
    .await;
    Ok(Json(super::view(&handle).pod))
}
