//! `GET /v1/pods/{ns}/{name}/log`: CRI log files back to plain text, optionally followed.
//!
//! A container instance's log is its rotated files, oldest first, then the current one
//! (see [`super::logfiles`]); `follow` goes on across rotations.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::logfiles::{Advance, LogReader};
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
    /// … the timestamp of the last record that stream delivered …
    after: Option<String>,
    /// … and how many records with that very timestamp it delivered last (records read
    /// in one go share their timestamp). A position in the log that survives rotation,
    /// where a count of records from the start would not once old files are removed.
    #[serde(default)]
    after_count: usize,
    /// Only the last N records of the log (`logs --tail=N`); negative: all.
    tail: Option<i64>,
    /// Only records at or after this RFC 3339 time (`logs --since`, `--since-time`).
    since_time: Option<String>,
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
    let all: Vec<String> = podhost_api::all_containers(&spec)
        .into_iter()
        .map(|c| c.name)
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
    let mut cursor = q.after.map(|ts| Cursor {
        ts,
        remaining: q.after_count,
    });
    let since = match q.since_time.as_deref() {
        Some(t) => Some(
            t.parse::<k8s_openapi::jiff::Timestamp>()
                .map_err(|e| ApiError::bad(format!("invalid sinceTime {t:?}: {e}")))?,
        ),
        None => None,
    };
    // The last N records are known once the log was read to its current end: they
    // wait here until then. A resumed stream (`after`) has had its tail already.
    let mut tail: Option<(usize, std::collections::VecDeque<String>)> = q
        .tail
        .filter(|_| cursor.is_none())
        .and_then(|n| usize::try_from(n).ok())
        .map(|n| (n, std::collections::VecDeque::new()));
    tokio::spawn(async move {
        let start = cursor.as_ref().map(|c| c.ts.clone());
        // Without follow: what the log holds now, not what the container writes while
        // it is read (a flood would keep the reader going for ever).
        let open = move || LogReader::open(&path, start.as_deref(), !follow);
        let mut reader = match blocking(open.clone()).await {
            Ok(Some(r)) => r,
            Ok(None) if follow => {
                // Not written yet: wait a little for the first line.
                tokio::time::sleep(Duration::from_millis(200)).await;
                match blocking(open).await {
                    Ok(Some(r)) => r,
                    _ => return,
                }
            }
            Ok(None) => return,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        // The container stopped: read what is left, then end.
        let mut last_pass = false;
        loop {
            let (r, batch) = match tokio::task::spawn_blocking(move || {
                let batch = reader.read_batch(64 * 1024);
                (reader, batch)
            })
            .await
            {
                Ok(done) => done,
                Err(_) => return,
            };
            reader = r;
            let (records, end) = match batch {
                Ok(b) => b,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            for record in records {
                let line = String::from_utf8_lossy(&record);
                if cursor.as_mut().is_some_and(|c| c.already_delivered(&line)) {
                    continue;
                }
                cursor = None;
                if since.is_some_and(|since| before(&line, since)) {
                    continue;
                }
                if let Some((n, buf)) = &mut tail {
                    buf.push_back(line.into_owned());
                    if buf.len() > *n {
                        buf.pop_front();
                    }
                    continue;
                }
                if send_line(&tx, &line, format).await.is_err() {
                    return;
                }
            }
            if matches!(end, Some(Advance::AtCurrent | Advance::Finished)) {
                if let Some((_, buf)) = tail.take() {
                    for line in buf {
                        if send_line(&tx, &line, format).await.is_err() {
                            return;
                        }
                    }
                }
            }
            match end {
                None => continue,
                Some(Advance::AtCurrent) if follow && !last_pass => {
                    if !still_running(&d, &ns, &name, &container, &container_id) {
                        last_pass = true;
                        continue;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Some(_) => return,
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

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(std::io::Error::other)?
}

/// Where a resumed stream goes on: after the records the stream it resumes delivered.
#[derive(Debug)]
struct Cursor {
    /// Timestamp of the last record delivered.
    ts: String,
    /// Records with that timestamp still to pass over.
    remaining: usize,
}

impl Cursor {
    /// Whether `record` was delivered already (records are in timestamp order).
    fn already_delivered(&mut self, record: &str) -> bool {
        let ts = record.split(' ').next().unwrap_or("");
        match ts.cmp(self.ts.as_str()) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Equal if self.remaining > 0 => {
                self.remaining -= 1;
                true
            }
            // The next one; or the records up to the cursor were rotated away meanwhile.
            _ => false,
        }
    }
}

/// Whether a CRI record was written before `since`.
fn before(record: &str, since: k8s_openapi::jiff::Timestamp) -> bool {
    record
        .split(' ')
        .next()
        .and_then(|ts| ts.parse::<k8s_openapi::jiff::Timestamp>().ok())
        .is_some_and(|ts| ts < since)
}

async fn send_line(
    tx: &tokio::sync::mpsc::Sender<Result<String, std::io::Error>>,
    line: &str,
    format: Format,
) -> Result<(), ()> {
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

#[cfg(test)]
mod tests {
    use super::Cursor;

    const LOG: [&str; 5] = [
        "2026-01-01T00:00:01.000000000Z stdout F a\n",
        "2026-01-01T00:00:02.000000000Z stdout F b\n",
        "2026-01-01T00:00:02.000000000Z stderr F c\n",
        "2026-01-01T00:00:02.000000000Z stdout F d\n",
        "2026-01-01T00:00:03.000000000Z stdout F e\n",
    ];

    /// The texts a stream resumed at `ts`/`count` delivers.
    fn resumed(ts: &str, count: usize) -> Vec<char> {
        let mut c = Some(Cursor {
            ts: ts.to_string(),
            remaining: count,
        });
        LOG.iter()
            .filter(|r| {
                if c.as_mut().is_some_and(|c| c.already_delivered(r)) {
                    return false;
                }
                c = None;
                true
            })
            .map(|r| r.trim_end().chars().last().unwrap_or(' '))
            .collect()
    }

    #[test]
    fn resumes_after_the_records_delivered() {
        assert_eq!(
            resumed("2026-01-01T00:00:01.000000000Z", 1),
            ['b', 'c', 'd', 'e']
        );
        // Cut in the middle of records sharing a timestamp.
        assert_eq!(
            resumed("2026-01-01T00:00:02.000000000Z", 1),
            ['c', 'd', 'e']
        );
        assert_eq!(resumed("2026-01-01T00:00:02.000000000Z", 3), ['e']);
        assert_eq!(
            resumed("2026-01-01T00:00:03.000000000Z", 1),
            Vec::<char>::new()
        );
        // The last record delivered was rotated away since: the next one left is next.
        assert_eq!(
            resumed("2026-01-01T00:00:01.500000000Z", 1),
            ['b', 'c', 'd', 'e']
        );
    }
}
