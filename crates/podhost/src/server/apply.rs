//! `POST /v1/apply`: parse the file, then apply each object on its own, as kubectl
//! does: one object's failure (invalid, forbidden update, port conflict) is reported
//! and the others are applied. A file that does not parse applies nothing.
//! ConfigMaps and Secrets are created or updated (unless immutable); pods are created,
//! or get their labels and annotations updated (the rest of a pod's spec is fixed).

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use k8s_openapi::api::core::v1::Pod;
use podhost_api::Manifest;
use serde::{Deserialize, Serialize};

use super::{ApiError, Daemon};
use crate::lifecycle::{PodMeta, PodRecord};
use crate::timefmt::k8s_time;

/// Body of an apply: the manifest text and where it came from (for error positions).
#[derive(Debug, Serialize, Deserialize)]
pub struct ApplyRequest {
    /// YAML text, several documents allowed.
    pub yaml: String,
    /// File name shown in errors.
    pub source: String,
    /// Check and report as usual, change nothing (`--dry-run=server`).
    #[serde(default)]
    pub dry_run: bool,
    /// Create only: a pod that exists already is an error (`podhost run`, like
    /// kubectl create), never updated.
    #[serde(default)]
    pub create_only: bool,
}

/// Result of an apply: one line per object and the warnings.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ApplyResponse {
    /// `pod/web created`, `pod/web unchanged`, `configmap/cfg configured`.
    pub results: Vec<String>,
    /// Valid fields podhost does not honour and lint findings, one line each.
    pub warnings: Vec<String>,
    /// Objects that were not applied, one message each, in document order.
    #[serde(default)]
    pub errors: Vec<String>,
}

/// Outcome of one document: its result line, or why it was not applied.
type Outcome = Result<String, String>;

pub(super) async fn apply(
    State(d): State<Arc<Daemon>>,
    Json(req): Json<ApplyRequest>,
) -> Result<Json<ApplyResponse>, ApiError> {
    let manifests = podhost_api::parse_manifests(&req.yaml, &req.source)
        .map_err(|e| ApiError::bad(e.to_string()))?;
    let suffix = if req.dry_run { " (server dry run)" } else { "" };
    let now = d.settings.clock.now();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; manifests.len()];
    let mut pods = Vec::new();
    // ConfigMaps and Secrets first, so pods of the same file find them when they start.
    for (i, m) in manifests.into_iter().enumerate() {
        let outcome = match m {
            Manifest::Pod(pod) => {
                pods.push((i, *pod));
                continue;
            }
            Manifest::ConfigMap(mut cm) => {
                podhost_api::default_config_map(&mut cm);
                let name = cm.metadata.name.clone().unwrap_or_default();
                podhost_api::validate_config_map(&cm)
                    .map_err(|e| e.to_string())
                    .and_then(|()| {
                        if req.dry_run {
                            let would = d.objects.check_config_map(&cm);
                            return would.map(|o| o.as_str()).map_err(|e| e.to_string());
                        }
                        d.objects
                            .apply_config_map(*cm, now)
                            .map(|o| o.as_str())
                            .map_err(|e| e.to_string())
                    })
                    .map(|word| format!("configmap/{name} {word}{suffix}"))
            }
            Manifest::Secret(mut secret) => {
                podhost_api::default_secret(&mut secret);
                let name = secret.metadata.name.clone().unwrap_or_default();
                podhost_api::validate_secret(&secret)
                    .map_err(|e| e.to_string())
                    .and_then(|()| {
                        if req.dry_run {
                            let would = d.objects.check_secret(&secret);
                            return would.map(|o| o.as_str()).map_err(|e| e.to_string());
                        }
                        d.objects
                            .apply_secret(*secret, now)
                            .map(|o| o.as_str())
                            .map_err(|e| e.to_string())
                    })
                    .map(|word| format!("secret/{name} {word}{suffix}"))
            }
        };
        outcomes[i] = Some(outcome);
    }
    let mut warnings = Vec::new();
    // Pods this apply creates, for host port conflicts among them.
    let mut created: Vec<Pod> = Vec::new();
    for (i, pod) in pods {
        let outcome = apply_pod(&d, pod, &mut created, &mut warnings, &req, now)
            .await
            .map(|line| format!("{line}{suffix}"));
        outcomes[i] = Some(outcome);
    }
    let mut resp = ApplyResponse {
        warnings,
        ..Default::default()
    };
    for o in outcomes.into_iter().flatten() {
        match o {
            Ok(line) => resp.results.push(line),
            Err(e) => resp.errors.push(e),
        }
    }
    Ok(Json(resp))
}

/// Check and apply one pod: created, unchanged, or its labels and annotations updated.
async fn apply_pod(
    d: &Daemon,
    mut pod: Pod,
    created: &mut Vec<Pod>,
    warnings: &mut Vec<String>,
    req: &ApplyRequest,
    now: i64,
) -> Outcome {
    let dry_run = req.dry_run;
    podhost_api::default_pod(&mut pod);
    let name = pod.metadata.name.clone().unwrap_or_default();
    let pod_warnings = podhost_api::validate_pod(&pod)
        .into_result(&name)
        .map_err(|e| e.to_string())?;
    warnings.extend(pod_warnings.into_iter().map(|w| format!("pod/{name}: {w}")));
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    // A pod that runs already would find its own host ports (hostNetwork) in use.
    let findings = match d.handle(&ns, &name) {
        Some(_) => podhost_api::lint::lint_pod(&pod, &podhost_api::lint::NoHost),
        None => podhost_api::lint::lint_pod(&pod, &podhost_api::lint::ThisHost),
    };
    warnings.extend(findings.iter().map(|f| format!("pod/{name}: {f}")));
    let spec = pod.spec.clone().unwrap_or_default();
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
    {
        // Images are pulled when containers start; only `Never` needs
        // the image here already (kubelet would report ErrImageNeverPull). Asking the
        // store for every container made a 100-pod apply take seconds.
        if c.image_pull_policy.as_deref() != Some("Never") {
            continue;
        }
        let image = c.image.clone().unwrap_or_default();
        let present = d
            .runtime
            .image_info(&image)
            .await
            .map_err(|e| format!("pod/{name}: container {:?}: {e}", c.name))?
            .is_some();
        if !present {
            return Err(format!(
                "pod/{name}: container {:?}: image {image:?} is not in podhost's image store and imagePullPolicy is Never: load it with `podhost image load -i FILE` or pull it with `podhost pull {image}`",
                c.name
            ));
        }
    }
    if let Some(handle) = d.handle(&ns, &name) {
        if req.create_only {
            return Err(format!("pods \"{name}\" already exists"));
        }
        let existing = super::view(&handle);
        if existing.deleting.is_some() {
            return Err(format!(
                "pod/{name} is being deleted; apply again once it is gone"
            ));
        }
        // spec.nodeName is the server's: a manifest without it asks for no change.
        let mut old_spec = existing.pod.spec.clone().unwrap_or_default();
        if spec.node_name.is_none() {
            old_spec.node_name = None;
        }
        // Ephemeral containers change through their own subresource (`podhost debug`),
        // never by an update of the pod, whatever the file says: the API server
        // keeps the old ones in an update.
        let mut new_spec = spec.clone();
        new_spec.ephemeral_containers = None;
        old_spec.ephemeral_containers = None;
        if old_spec != new_spec {
            return Err(format!(
                "The Pod \"{name}\" is invalid: spec: Forbidden: pod updates may not change fields other than metadata.labels and metadata.annotations in podhost; delete the pod first (`podhost delete pod {name}`) and apply again"
            ));
        }
        let meta = PodMeta::of(&pod);
        if meta == PodMeta::of(&existing.pod) {
            return Ok(format!("pod/{name} unchanged"));
        }
        if !dry_run {
            handle.meta.send_replace(meta);
        }
        return Ok(format!("pod/{name} configured"));
    }
    let create_errors = podhost_api::validate::validate_pod_create(&pod);
    if !create_errors.is_empty() {
        return Err(podhost_api::InvalidPod {
            name,
            errors: create_errors,
        }
        .to_string());
    }
    check_host_ports(d, &pod, created).map_err(|e| e.1)?;
    created.push(pod.clone());
    if dry_run {
        return Ok(format!("pod/{name} created"));
    }
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
    d.store.save(&rec).map_err(|e| e.to_string())?;
    d.start_worker(rec);
    Ok(format!("pod/{name} created"))
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
