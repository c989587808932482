//! `POST /v1/{pods|configmaps|secrets}/{ns}/{name}/metadata`: `label` and `annotate`,
//! with kubectl's rules (a value already set changes only with `overwrite`; `null`
//! removes a key).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{ApiError, Daemon};
use crate::lifecycle::PodMeta;
use crate::objects::Applied;

/// Changes to labels and annotations: a value sets, `null` removes.
#[derive(Debug, Deserialize)]
pub(super) struct MetaRequest {
    #[serde(default)]
    labels: BTreeMap<String, Option<String>>,
    #[serde(default)]
    annotations: BTreeMap<String, Option<String>>,
    #[serde(default)]
    overwrite: bool,
}

/// Whether anything changed (kubectl prints `labeled` or `not labeled`).
#[derive(Debug, Serialize, Deserialize)]
pub struct MetaResult {
    /// The object's labels or annotations are different now.
    pub changed: bool,
}

/// Applies `changes` to `map`; an error names a key set already, unless `overwrite`.
fn change(
    map: &mut Option<BTreeMap<String, String>>,
    changes: &BTreeMap<String, Option<String>>,
    overwrite: bool,
) -> Result<(), String> {
    let m = map.get_or_insert_with(BTreeMap::new);
    for (k, v) in changes {
        match (m.get(k), v) {
            (Some(old), Some(new)) if old != new && !overwrite => {
                return Err(format!(
                    "'{k}' already has a value ({old}), and --overwrite is false"
                ))
            }
            (_, Some(new)) => {
                m.insert(k.clone(), new.clone());
            }
            (_, None) => {
                m.remove(k);
            }
        }
    }
    if m.is_empty() {
        *map = None;
    }
    Ok(())
}

fn check(req: &MetaRequest) -> Result<(), ApiError> {
    for (k, v) in &req.labels {
        crate::selector::check_key(k).map_err(|e| ApiError::bad(e.to_string()))?;
        if let Some(v) = v {
            crate::selector::check_value(v).map_err(|e| ApiError::bad(e.to_string()))?;
        }
    }
    for k in req.annotations.keys() {
        crate::selector::check_key(k).map_err(|e| ApiError::bad(e.to_string()))?;
    }
    Ok(())
}

/// New labels and annotations from `old`, or the conflict.
fn updated(old: &PodMeta, req: &MetaRequest) -> Result<PodMeta, ApiError> {
    let mut new = old.clone();
    let conflict = |e: String| ApiError(StatusCode::CONFLICT, e);
    change(&mut new.labels, &req.labels, req.overwrite).map_err(conflict)?;
    change(&mut new.annotations, &req.annotations, req.overwrite).map_err(conflict)?;
    Ok(new)
}

/// The changes of `req` on an object's metadata.
fn relabel(meta: &mut ObjectMeta, req: &MetaRequest) -> Result<(), ApiError> {
    let old = PodMeta {
        labels: meta.labels.take(),
        annotations: meta.annotations.take(),
    };
    let new = updated(&old, req)?;
    meta.labels = new.labels;
    meta.annotations = new.annotations;
    Ok(())
}

pub(super) async fn set_metadata(
    State(d): State<Arc<Daemon>>,
    Path((plural, ns, name)): Path<(String, String, String)>,
    Json(req): Json<MetaRequest>,
) -> Result<Json<MetaResult>, ApiError> {
    check(&req)?;
    let now = d.settings.clock.now();
    let changed = match plural.as_str() {
        "pods" => {
            let handle = d
                .handle(&ns, &name)
                .ok_or_else(|| ApiError::not_found("pods", &name))?;
            // Under the sender's lock: two label commands at once both count.
            let mut outcome = Ok(false);
            handle.meta.send_if_modified(|m| match updated(m, &req) {
                Ok(new) if new != *m => {
                    *m = new;
                    outcome = Ok(true);
                    true
                }
                Ok(_) => false,
                Err(e) => {
                    outcome = Err(e);
                    false
                }
            });
            outcome?
        }
        "configmaps" => {
            let mut cm = d
                .objects
                .config_map(&ns, &name)
                .ok_or_else(|| ApiError::not_found("configmaps", &name))?;
            relabel(&mut cm.metadata, &req)?;
            let applied = d.objects.apply_config_map(cm, now);
            applied.map_err(|e| ApiError::bad(e.to_string()))? != Applied::Unchanged
        }
        "secrets" => {
            let mut s = d
                .objects
                .secret(&ns, &name)
                .ok_or_else(|| ApiError::not_found("secrets", &name))?;
            relabel(&mut s.metadata, &req)?;
            let applied = d.objects.apply_secret(s, now);
            applied.map_err(|e| ApiError::bad(e.to_string()))? != Applied::Unchanged
        }
        other => return Err(ApiError::not_found("resource type", other)),
    };
    Ok(Json(MetaResult { changed }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overwrite_rules() {
        let mut m = Some(BTreeMap::from([("app".to_string(), "web".to_string())]));
        let set =
            |k: &str, v: Option<&str>| BTreeMap::from([(k.to_string(), v.map(str::to_string))]);
        assert!(change(&mut m, &set("app", Some("db")), false).is_err());
        assert!(change(&mut m, &set("app", Some("web")), false).is_ok());
        change(&mut m, &set("app", Some("db")), true).expect("overwrite");
        assert_eq!(
            m.as_ref().and_then(|m| m.get("app")).map(String::as_str),
            Some("db")
        );
        change(&mut m, &set("app", None), false).expect("remove");
        assert_eq!(m, None);
    }
}
