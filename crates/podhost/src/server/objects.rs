//! `/v1/configmaps` and `/v1/secrets`: list, get and delete (apply is in [`super::apply`]).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::Json;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};

use super::{ApiError, Daemon, ListQuery};

/// The namespace a list asks for (`None`: all namespaces).
fn namespace(q: &ListQuery) -> Option<String> {
    if q.all_namespaces {
        None
    } else {
        Some(q.namespace.clone().unwrap_or_else(|| "default".into()))
    }
}

pub(super) async fn list_config_maps(
    State(d): State<Arc<Daemon>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<ConfigMap>>, ApiError> {
    let selector = q.selector()?;
    let mut list = d.objects.config_maps(namespace(&q).as_deref());
    list.retain(|c| selector.matches(c.metadata.labels.as_ref()));
    Ok(Json(list))
}

pub(super) async fn list_secrets(
    State(d): State<Arc<Daemon>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<Secret>>, ApiError> {
    let selector = q.selector()?;
    let mut list = d.objects.secrets(namespace(&q).as_deref());
    list.retain(|c| selector.matches(c.metadata.labels.as_ref()));
    Ok(Json(list))
}

pub(super) async fn get_config_map(
    State(d): State<Arc<Daemon>>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Json<ConfigMap>, ApiError> {
    d.objects
        .config_map(&ns, &name)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("configmaps", &name))
}

pub(super) async fn get_secret(
    State(d): State<Arc<Daemon>>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Json<Secret>, ApiError> {
    d.objects
        .secret(&ns, &name)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("secrets", &name))
}

pub(super) async fn delete_config_map(
    State(d): State<Arc<Daemon>>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    match d.objects.delete_config_map(&ns, &name) {
        Ok(true) => Ok(Json(
            serde_json::json!({ "deleted": format!("{ns}/{name}") }),
        )),
        Ok(false) => Err(ApiError::not_found("configmaps", &name)),
        Err(e) => Err(ApiError::internal(e)),
    }
}

pub(super) async fn delete_secret(
    State(d): State<Arc<Daemon>>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    match d.objects.delete_secret(&ns, &name) {
        Ok(true) => Ok(Json(
            serde_json::json!({ "deleted": format!("{ns}/{name}") }),
        )),
        Ok(false) => Err(ApiError::not_found("secrets", &name)),
        Err(e) => Err(ApiError::internal(e)),
    }
}
