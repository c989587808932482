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
use crate::runtime::ContainerState;

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
}

/// One CRI log line → (timestamp, text with newline unless partial).
pub fn parse_cri_line(line: &str) -> Option<(&str, String)> {
    let mut it = line.splitn(4, ' ');
    let ts = it.next()?;
    let _stream = it.next()?;
    let tag = it.next()?;
    let text = it.next().unwrap_or("");
    let text = text.strip_suffix('\n').unwrap_or(text);
    Some((
        ts,
        if tag == "P" {
            text.to_string()
        } else {
            format!("{text}\n")
        },
    ))
}

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
    let chosen = if q.previous {
        track.previous.clone()
    } else {
        track.current.clone()
    };
    let Some(status) = chosen else {
        let msg = if q.previous {
            format!("previous terminated container \"{container}\" in pod \"{name}\" not found")
        } else {
            format!("container \"{container}\" in pod \"{name}\" is waiting to start")
        };
        return Err(ApiError::bad(msg));
    };
    let path: PathBuf = status.log_path.clone();
    let container_id = status.id.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(64);
    let follow = q.follow && !q.previous;
    let timestamps = q.timestamps;
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
                            if send_line(&tx, &line, timestamps).await.is_err() {
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
                    if send_line(&tx, &line, timestamps).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {
                    if send_line(&tx, &line, timestamps).await.is_err() {
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
        .body(Body::from_stream(stream))
        .map_err(ApiError::internal)
}

async fn send_line(
    tx: &tokio::sync::mpsc::Sender<Result<String, std::io::Error>>,
    line: &str,
    timestamps: bool,
) -> Result<(), ()> {
    let Some((ts, text)) = parse_cri_line(line) else {
        return Ok(());
    };
    let out = if timestamps {
        format!("{ts} {text}")
    } else {
        text
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

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses_cri_lines() {
        assert_eq!(
            parse_cri_line("2026-01-01T00:00:00.1Z stdout F hello world\n"),
            Some(("2026-01-01T00:00:00.1Z", "hello world\n".to_string()))
        );
        assert_eq!(
            parse_cri_line("t stderr P part"),
            Some(("t", "part".to_string()))
        );
        assert_eq!(parse_cri_line("t stdout F "), Some(("t", "\n".to_string())));
    }
}
