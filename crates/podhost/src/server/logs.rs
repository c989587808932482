//! `GET /v1/pods/{ns}/{name}/log`: CRI log files back to plain text, optionally followed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{ApiError, Daemon};
use podhost_runtime::ContainerState;

/// Options of `logs`, like kubectl's.
#[derive(Debug, Deserialize)]
pub(super) struct LogQuery {
    container: Option<String>,
    #[serde(default)]
    follow: bool,
    #[serde(default)]
    previous: bool,
    #[serde(default)]
    timestamps: bool,
    /// Send the CRI records as the file has them (for a client that resumes).
    #[serde(default)]
    raw: bool,
    /// Resume: the container instance an earlier stream read (the current or previous
    /// one), named by the `x-podhost-container-id` header of that stream …
    container_id: Option<String>,
    /// … and how many records of its log that stream delivered.
    #[serde(default)]
    skip: usize,
}

/// Response header naming the container instance whose log is streamed.
pub const CONTAINER_ID_HEADER: &str = "x-podhost-container-id";

/// The container a command addresses: the named one, or the pod's only/first container.
pub(super) fn pick_container(
    pod: &k8s_openapi::api::core::v1::Pod,
    name: Option<&str>,
) -> Result<String, ApiError> {
    let spec = pod.spec.clone().unwrap_or_default();
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let all: Vec<String> = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .map(|c| c.name.clone())
        .collect();
    match name {
        Some(n) if all.iter().any(|c| c == n) => Ok(n.to_string()),
        Some(n) => Err(ApiError::bad(format!(
            "container {n} is not valid for pod {pod_name}: choose one of: [{}]",
            all.join(" ")
        ))),
        None => spec
            .containers
            .first()
            .map(|c| c.name.clone())
            .ok_or_else(|| ApiError::bad(format!("pod {pod_name} has no containers"))),
    }
}

pub(super) async fn logs(
    State(d): State<Arc<Daemon>>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Result<Response, ApiError> {
    let rec = d
        .record(&ns, &name)
        .ok_or_else(|| ApiError::not_found("pods", &name))?;
    let container = pick_container(&rec.pod, q.container.as_deref())?;
    let track = rec.containers.get(&container).cloned().unwrap_or_default();
    let chosen = match &q.container_id {
        Some(id) => [track.current.clone(), track.previous.clone()]
            .into_iter()
            .flatten()
            .find(|c| &c.id == id),
        None if q.previous => track.previous.clone(),
        None => track.current.clone(),
    };
    let Some(status) = chosen else {
        let msg = if let Some(id) = &q.container_id {
            format!("container \"{container}\" in pod \"{name}\" was replaced twice since {}: its log is gone", &id[..id.len().min(12)])
        } else if q.previous {
            format!("previous terminated container \"{container}\" in pod \"{name}\" not found")
        } else {
            format!("container \"{container}\" in pod \"{name}\" is waiting to start")
        };
        return Err(ApiError::bad(msg));
    };
    let path: PathBuf = status.log_path.clone();
    let container_id = status.id.clone();
    let container_id_header = container_id.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(64);
    let follow = q.follow && !q.previous;
    let format = if q.raw {
        Format::Raw
    } else {
        Format::Text {
            timestamps: q.timestamps,
        }
    };
    let mut skip = q.skip;
    tokio::spawn(async move {
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && follow => {
                // Not written yet: wait a little for the first line.
                tokio::time::sleep(Duration::from_millis(200)).await;
                match tokio::fs::File::open(&path).await {
                    Ok(f) => f,
                    Err(_) => return,
                }
            }
            Err(_) => return,
        };
        let mut reader = BufReader::new(file);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line).await {
                Ok(0) => {
                    if !follow || !still_running(&d, &ns, &name, &container, &container_id) {
                        // One more read: lines written just before the exit.
                        line.clear();
                        if matches!(reader.read_line(&mut line).await, Ok(n) if n > 0) {
                            if send_line(&tx, &line, format, &mut skip).await.is_err() {
                                return;
                            }
                            continue;
                        }
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok(_) if !line.ends_with('\n') => {
                    // A line still being written: wait for the rest.
                    let mut rest = String::new();
                    loop {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        match reader.read_line(&mut rest).await {
                            Ok(_) if rest.ends_with('\n') => break,
                            Ok(_) => continue,
                            Err(_) => return,
                        }
                    }
                    line.push_str(&rest);
                    if send_line(&tx, &line, format, &mut skip).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {
                    if send_line(&tx, &line, format, &mut skip).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .header("content-type", "text/plain; charset=utf-8")
        .header(CONTAINER_ID_HEADER, container_id_header)
        .body(Body::from_stream(stream))
        .map_err(ApiError::internal)
}

/// How records are sent.
#[derive(Debug, Clone, Copy)]
enum Format {
    /// As in the file.
    Raw,
    /// The text only, optionally after its timestamp (kubectl's `--timestamps`).
    Text { timestamps: bool },
}

async fn send_line(
    tx: &tokio::sync::mpsc::Sender<Result<String, std::io::Error>>,
    line: &str,
    format: Format,
    skip: &mut usize,
) -> Result<(), ()> {
    if *skip > 0 {
        // Already delivered by the stream this one resumes.
        *skip -= 1;
        return Ok(());
    }
    let out = match format {
        Format::Raw => line.to_string(),
        Format::Text { timestamps } => {
            let Some((ts, text)) = podhost_shim::crilog::parse_line(line) else {
                return Ok(());
            };
            if timestamps {
                format!("{ts} {text}")
            } else {
                text
            }
        }
    };
    tx.send(Ok(out)).await.map_err(drop)
}

fn still_running(d: &Daemon, ns: &str, name: &str, container: &str, id: &str) -> bool {
    let Some(rec) = d.record(ns, name) else {
        return false;
    };
    rec.containers
        .get(container)
        .and_then(|t| t.current.as_ref())
        .is_some_and(|c| {
            c.id == id && matches!(c.state, ContainerState::Running | ContainerState::Created)
        })
}
