//! `POST /v1/apply`: parse, default, validate every document first, then create.
//! Nothing is created unless every document is valid (one bad pod, no pods).
//! ConfigMaps and Secrets are created or updated (unless immutable); pods are created.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use podhost_api::Manifest;
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

/// One checked document.
enum Checked {
    Pod(Box<Pod>),
    ConfigMap(Box<ConfigMap>),
    Secret(Box<Secret>),
}

/// Parse and check everything; return the objects in document order and the warnings.
async fn check(d: &Daemon, req: &ApplyRequest) -> Result<(Vec<Checked>, Vec<String>), ApiError> {
    let manifests = podhost_api::parse_manifests(&req.yaml, &req.source)
        .map_err(|e| ApiError::bad(e.to_string()))?;
    let mut checked = Vec::new();
    let mut warnings = Vec::new();
    for m in manifests {
        let pod = match m {
            Manifest::Pod(pod) => pod,
            Manifest::ConfigMap(mut cm) => {
                podhost_api::default_config_map(&mut cm);
                podhost_api::validate_config_map(&cm).map_err(|e| ApiError::bad(e.to_string()))?;
                d.objects
                    .check_config_map(&cm)
                    .map_err(|e| ApiError::bad(e.to_string()))?;
                checked.push(Checked::ConfigMap(cm));
                continue;
            }
            Manifest::Secret(mut secret) => {
                podhost_api::default_secret(&mut secret);
                podhost_api::validate_secret(&secret).map_err(|e| ApiError::bad(e.to_string()))?;
                d.objects
                    .check_secret(&secret)
                    .map_err(|e| ApiError::bad(e.to_string()))?;
                checked.push(Checked::Secret(secret));
                continue;
            }
        };
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
        checked.push(Checked::Pod(Box::new(pod)));
    }
    Ok((checked, warnings))
}

pub(super) async fn apply(
    State(d): State<Arc<Daemon>>,
    Json(req): Json<ApplyRequest>,
) -> Result<Json<ApplyResponse>, ApiError> {
    let (checked, warnings) = check(&d, &req).await?;
    // One result line per document, in document order.
    let mut results: Vec<String> = vec![String::new(); checked.len()];
    // Conflicts are checked for all documents before any pod is created.
    let mut to_create = Vec::new();
    let mut objects = Vec::new();
    for (i, doc) in checked.into_iter().enumerate() {
        let pod = match doc {
            Checked::Pod(pod) => *pod,
            other => {
                objects.push((i, other));
                continue;
            }
        };
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
                results[i] = format!("pod/{name} unchanged");
            }
            Some(_) => {
                return Err(ApiError::bad(format!(
                    "The Pod \"{name}\" is invalid: spec: Forbidden: pod updates may not change fields other than those podhost can update in place; delete the pod first (`podhost delete pod {name}`)"
                )));
            }
            None => {
                let pending: Vec<Pod> = to_create
                    .iter()
                    .map(|(_, p): &(usize, Pod)| p.clone())
                    .collect();
                check_host_ports(&d, &pod, &pending)?;
                to_create.push((i, pod));
            }
        }
    }
    let now = d.settings.clock.now();
    // ConfigMaps and Secrets first, so pods of the same file find them when they start.
    for (i, doc) in objects {
        let (kind, name, outcome) = match doc {
            Checked::ConfigMap(cm) => {
                let name = cm.metadata.name.clone().unwrap_or_default();
                ("configmap", name, d.objects.apply_config_map(*cm, now))
            }
            Checked::Secret(s) => {
                let name = s.metadata.name.clone().unwrap_or_default();
                ("secret", name, d.objects.apply_secret(*s, now))
            }
            Checked::Pod(_) => continue,
        };
        let outcome = outcome.map_err(|e| ApiError::bad(e.to_string()))?;
        results[i] = format!("{kind}/{name} {}", outcome.as_str());
    }
    for (i, mut pod) in to_create {
        let name = pod.metadata.name.clone().unwrap_or_default();
        pod.metadata.uid = Some(crate::objects::new_uid());
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
        results[i] = format!("pod/{name} created");
    }
    Ok(Json(ApplyResponse { results, warnings }))
}

/// A hostPort another pod (running, or created by this apply) already publishes is an
/// error now, not a pod stuck later: the runtime checks again when it creates sandboxes.
fn check_host_ports(d: &Daemon, pod: &Pod, also: &[Pod]) -> Result<(), ApiError> {
    let ports = |p: &Pod| {
        crate::lifecycle::podspec::sandbox_config(p, 0, std::path::Path::new("")).port_mappings
    };
    let mine = ports(pod);
    if mine.is_empty() {
        return Ok(());
    }
    let existing = d
        .records()
        .into_iter()
        .filter(|r| !r.finished)
        .map(|r| r.pod)
        .chain(also.iter().cloned());
    for other in existing {
        for theirs in ports(&other) {
            if let Some(m) = mine.iter().find(|m| m.conflicts(&theirs)) {
                return Err(ApiError::bad(format!(
                    "pod/{}: hostPort {}/{} is already allocated to pod {}/{}: choose another hostPort or delete that pod first",
                    pod.metadata.name.as_deref().unwrap_or(""),
                    m.host_port,
                    m.protocol,
                    other.metadata.namespace.as_deref().unwrap_or("default"),
                    other.metadata.name.as_deref().unwrap_or(""),
                )));
            }
        }
    }
    Ok(())
}

/// The node name: this machine's hostname.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}
