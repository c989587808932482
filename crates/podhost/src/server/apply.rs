//! `POST /v1/apply`: parse, default, validate every document first, then create.
//! Nothing is created unless every document is valid (one bad pod, no pods).

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};

use super::{ApiError, Daemon};
use crate::lifecycle::PodRecord;
use crate::timefmt::k8s_time;

/// Body of an apply: the manifest text and where it came from (for error positions).
#[derive(Debug, Serialize, Deserialize)]
pub struct ApplyRequest {
    /// YAML text, several documents allowed.
    pub yaml: String,
    /// File name shown in errors.
    pub source: String,
}

/// Result of an apply: one line per object and the warnings.
#[derive(Debug, Serialize, Deserialize)]
pub struct ApplyResponse {
    /// `pod/web created`, `pod/web unchanged`.
    pub results: Vec<String>,
    /// Valid fields podhost does not honour, one line each.
    pub warnings: Vec<String>,
}

fn new_uid() -> String {
    let b: [u8; 16] = rand::random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    // RFC 4122 v4 layout, like Kubernetes UIDs.
    format!(
        "{}-{}-4{}-{}{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        ["8", "9", "a", "b"][(b[8] & 3) as usize],
        &h[17..20],
        &h[20..32]
    )
}

/// Parse and check everything; return the pods to create and the warnings.
async fn check(d: &Daemon, req: &ApplyRequest) -> Result<(Vec<Pod>, Vec<String>), ApiError> {
    let manifests = podhost_api::parse_manifests(&req.yaml, &req.source)
        .map_err(|e| ApiError::bad(e.to_string()))?;
    let mut pods = Vec::new();
    let mut warnings = Vec::new();
    for m in manifests {
        let podhost_api::Manifest::Pod(pod) = m;
        let mut pod = *pod;
        podhost_api::default_pod(&mut pod);
        let name = pod.metadata.name.clone().unwrap_or_default();
        let pod_warnings = podhost_api::validate_pod(&pod)
            .into_result(&name)
            .map_err(|e| ApiError::bad(e.to_string()))?;
        warnings.extend(pod_warnings.into_iter().map(|w| format!("pod/{name}: {w}")));
        let spec = pod.spec.clone().unwrap_or_default();
        for c in spec
            .init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
        {
            // Images are pulled when containers start; only `Never` needs
            // the image here already (kubelet would report ErrImageNeverPull).
            let image = c.image.clone().unwrap_or_default();
            let present = d
                .runtime
                .image_status(&image)
                .await
                .map_err(|e| ApiError::bad(format!("pod/{name}: container {:?}: {e}", c.name)))?
                .is_some();
            if !present && c.image_pull_policy.as_deref() == Some("Never") {
                return Err(ApiError::bad(format!(
                    "pod/{name}: container {:?}: image {image:?} is not in podhost's image store and imagePullPolicy is Never: load it with `podhost image load -i FILE` or pull it with `podhost pull {image}`",
                    c.name
                )));
            }
        }
        pods.push(pod);
    }
    Ok((pods, warnings))
}

pub(super) async fn apply(
    State(d): State<Arc<Daemon>>,
    Json(req): Json<ApplyRequest>,
) -> Result<Json<ApplyResponse>, ApiError> {
    let (pods, warnings) = check(&d, &req).await?;
    let mut results = Vec::new();
    // Conflicts are checked for all documents before any pod is created.
    let mut to_create = Vec::new();
    for pod in pods {
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        match d.record(&ns, &name) {
            Some(existing) if existing.deleting.is_some() => {
                return Err(ApiError::bad(format!(
                    "pod/{name} is being deleted; apply again once it is gone"
                )));
            }
            Some(existing)
                if existing.pod.spec == pod.spec
                    && existing.pod.metadata.labels == pod.metadata.labels =>
            {
                results.push(format!("pod/{name} unchanged"));
            }
            Some(_) => {
                return Err(ApiError::bad(format!(
                    "The Pod \"{name}\" is invalid: spec: Forbidden: pod updates may not change fields other than those podhost can update in place; delete the pod first (`podhost delete pod {name}`)"
                )));
            }
            None => to_create.push(pod),
        }
    }
    let now = d.settings.clock.now();
    for mut pod in to_create {
        let name = pod.metadata.name.clone().unwrap_or_default();
        pod.metadata.uid = Some(new_uid());
        pod.metadata.creation_timestamp = Some(k8s_time(now));
        pod.metadata.resource_version = Some("1".into());
        if let Some(spec) = pod.spec.as_mut() {
            spec.node_name = Some(hostname());
        }
        let mut rec = PodRecord::new(pod);
        rec.event(
            now,
            "Normal",
            "Scheduled",
            format!("Successfully assigned {} to {}", rec.key(), hostname()),
        );
        d.store.save(&rec).map_err(ApiError::internal)?;
        d.start_worker(rec);
        results.push(format!("pod/{name} created"));
    }
    Ok(Json(ApplyResponse { results, warnings }))
}

/// The node name: this machine's hostname.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}
