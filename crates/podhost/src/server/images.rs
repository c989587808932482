//! Image endpoints beyond list/load: pull (progress streamed as JSON lines),
//! remove, prune, and kubelet-style image garbage collection on disk pressure.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{ApiError, Daemon};
use crate::runtime::PulledImage;

/// Body of `POST /v1/images/pull`.
#[derive(Debug, Deserialize)]
pub(super) struct PullRequest {
    reference: String,
}

/// One line of the pull stream: a progress event, the result, or the error.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PullLine {
    /// Progress. First: an event's own `error` field (SourceFailed) must
    /// not make it read as the final error.
    Event(podhost_image::pull::PullEvent),
    /// The pull finished.
    Done {
        /// What was pulled.
        done: PulledImage,
    },
    /// The pull failed.
    Error {
        /// Why (with reference, registry and the registry's message).
        error: String,
    },
}

pub(super) async fn pull(State(d): State<Arc<Daemon>>, Json(req): Json<PullRequest>) -> Response {
    let (line_tx, line_rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let runtime = d.runtime.clone();
    let to_line = |l: &PullLine| {
        let mut v = serde_json::to_vec(l).unwrap_or_default();
        v.push(b'\n');
        Bytes::from(v)
    };
    let (result_tx, result_rx) = tokio::sync::oneshot::channel();
    // The pull is not tied to the connection: a client that goes away
    // (^C) does not leave a half-written image, the pull just completes.
    tokio::spawn(async move {
        let _ = result_tx.send(runtime.pull_image(&req.reference, None, Some(ev_tx)).await);
    });
    // Events first, in order; the result line once the pull dropped its sender.
    tokio::spawn(async move {
        while let Some(ev) = ev_rx.recv().await {
            let _ = line_tx.send(to_line(&PullLine::Event(ev)));
        }
        let last = match result_rx.await {
            Ok(Ok(done)) => PullLine::Done { done },
            Ok(Err(e)) => PullLine::Error {
                error: e.to_string(),
            },
            Err(_) => PullLine::Error {
                error: "the pull task ended without a result".into(),
            },
        };
        let _ = line_tx.send(to_line(&last));
    });
    let stream = futures_util::stream::unfold(line_rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// Body of `POST /v1/images/remove`.
#[derive(Debug, Deserialize)]
pub(super) struct RemoveRequest {
    reference: String,
}

pub(super) async fn remove(
    State(d): State<Arc<Daemon>>,
    Json(req): Json<RemoveRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    match d.runtime.remove_image(&req.reference).await {
        Ok(()) => Ok(Json(serde_json::json!({ "removed": req.reference }))),
        Err(crate::runtime::RuntimeError::ImageNotFound { reference }) => {
            Err(ApiError::not_found("image", &reference))
        }
        Err(e) => Err(ApiError::bad(e.to_string())),
    }
}

/// Body of `POST /v1/images/prune`.
#[derive(Debug, Deserialize)]
pub(super) struct PruneRequest {
    #[serde(default)]
    all: bool,
}

/// What a prune or GC removed.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PruneResult {
    /// Image ids removed.
    pub removed: Vec<String>,
    /// Sum of their sizes (shared layers make it an upper bound).
    pub reclaimed: u64,
}

pub(super) async fn prune(
    State(d): State<Arc<Daemon>>,
    Json(req): Json<PruneRequest>,
) -> Result<Json<PruneResult>, ApiError> {
    let store = d.local.images();
    let in_use = d.local.images_in_use();
    let all = req.all;
    tokio::task::spawn_blocking(move || {
        let mut result = PruneResult::default();
        let images = store.list().map_err(ApiError::internal)?;
        for image in images {
            // Like `docker image prune`: dangling (untagged) images only,
            // every unused image with --all.
            if in_use.contains(&image.id) || (!all && !image.repo_tags.is_empty()) {
                continue;
            }
            store.remove(&image.id).map_err(ApiError::internal)?;
            result.reclaimed += image.size;
            result.removed.push(image.id);
        }
        Ok(Json(result))
    })
    .await
    .map_err(ApiError::internal)?
}

/// Percent of the filesystem holding `path` in use, as `df` shows it
/// (used / (used + available): root-reserved blocks count as neither).
fn disk_usage_percent(path: &std::path::Path) -> Option<f64> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    let used = st.blocks().saturating_sub(st.blocks_free()) as f64;
    let avail = st.blocks_available() as f64;
    if used + avail == 0.0 {
        return None;
    }
    Some(100.0 * used / (used + avail))
}

/// kubelet's image GC: when the image filesystem is fuller than the high
/// threshold, remove unused images, least recently used first, until it is below
/// the low threshold. Images used by any container are never removed. A high
/// threshold of 100 disables it.
pub(super) fn spawn_image_gc(d: Arc<Daemon>, high: u8, low: u8, period: Duration) {
    if high >= 100 {
        tracing::info!("image GC disabled (--image-gc-high-threshold 100)");
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            let store = d.local.images();
            let in_use = d.local.images_in_use();
            let freed = tokio::task::spawn_blocking(move || {
                touch_in_use(&store, &in_use, podhost_image::now_ms());
                collect(&store, &in_use, high, low)
            })
            .await;
            match freed {
                Ok(Ok(r)) if !r.removed.is_empty() => tracing::info!(
                    "image GC: removed {} image(s), ~{} bytes: {}",
                    r.removed.len(),
                    r.reclaimed,
                    r.removed.join(", ")
                ),
                Ok(Err(e)) => tracing::warn!("image GC: {e}"),
                _ => {}
            }
        }
    });
}

/// How stale the recorded use of an image that containers still use may get before
/// it is renewed: kubelet renews it at each image detection (every 5 minutes), so a
/// long-running container's image is recently used, not used when it started.
const IN_USE_REFRESH_MS: u64 = 5 * 60 * 1000;

fn touch_in_use(store: &podhost_image::ImageStore, in_use: &HashSet<String>, now: u64) {
    let Ok(images) = store.list() else { return };
    for image in images.iter().filter(|i| in_use.contains(&i.id)) {
        if now.saturating_sub(image.last_used_ms.unwrap_or(0)) >= IN_USE_REFRESH_MS {
            if let Err(e) = store.mark_used(&image.id, now) {
                tracing::warn!("image GC: recording the use of {}: {e}", image.id);
            }
        }
    }
}

fn collect(
    store: &podhost_image::ImageStore,
    in_use: &HashSet<String>,
    high: u8,
    low: u8,
) -> Result<PruneResult, podhost_image::ImageError> {
    let root = store.root().to_path_buf();
    let Some(usage) = disk_usage_percent(&root) else {
        return Ok(PruneResult::default());
    };
    if usage < f64::from(high) {
        return Ok(PruneResult::default());
    }
    tracing::info!("image GC: disk usage {usage:.1}% >= {high}%: freeing down to {low}%");
    let candidates = podhost_image::gc_candidates(
        &store.list()?,
        in_use,
        podhost_image::now_ms(),
        podhost_image::GC_MIN_AGE,
    );
    free_down_to(
        candidates,
        || disk_usage_percent(&root),
        low,
        |image| store.remove(&image.id),
    )
}

/// Removes `candidates` in their order until `usage` is below `low` percent.
fn free_down_to<E>(
    candidates: Vec<podhost_image::Image>,
    mut usage: impl FnMut() -> Option<f64>,
    low: u8,
    mut remove: impl FnMut(&podhost_image::Image) -> Result<(), E>,
) -> Result<PruneResult, E> {
    let mut result = PruneResult::default();
    for image in candidates {
        if usage().is_some_and(|u| u < f64::from(low)) {
            break;
        }
        remove(&image)?;
        result.reclaimed += image.size;
        result.removed.push(image.id);
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use podhost_image::{gc_candidates, Image};

    const MIN: u64 = 60 * 1000;

    fn image(id: &str, first_seen: Option<u64>, last_used: Option<u64>) -> Image {
        Image {
            id: id.into(),
            repo_tags: vec![format!("{id}:latest")],
            manifest_digest: String::new(),
            diff_ids: Vec::new(),
            size: 10,
            repo_digests: Vec::new(),
            first_seen_ms: first_seen,
            last_used_ms: last_used,
        }
    }

    #[test]
    fn least_recently_used_first_and_never_one_in_use() {
        let now = 1000 * MIN;
        let images = vec![
            image("old-import-used-lately", Some(MIN), Some(now - 10 * MIN)),
            image("used-long-ago", Some(5 * MIN), Some(now - 500 * MIN)),
            image("never-used-new", Some(now - 30 * MIN), None),
            image("in-use", Some(0), Some(MIN)),
            image("never-used-old", Some(2 * MIN), None),
            image("from-an-old-index", None, None),
            image("just-pulled", Some(now - 30_000), None),
            image("just-used", Some(0), Some(now - 1000)),
        ];
        let in_use: HashSet<String> = ["in-use".to_string()].into();
        let order: Vec<String> = gc_candidates(&images, &in_use, now, podhost_image::GC_MIN_AGE)
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(
            order,
            [
                "from-an-old-index",
                "never-used-old",
                "never-used-new",
                "used-long-ago",
                "old-import-used-lately",
            ]
        );
    }

    #[test]
    fn frees_until_below_the_low_threshold() {
        let now = 1000 * MIN;
        let images = vec![
            image("b", Some(0), Some(3 * MIN)),
            image("a", Some(0), Some(2 * MIN)),
            image("busy", Some(0), Some(MIN)),
            image("c", Some(0), Some(4 * MIN)),
        ];
        let in_use: HashSet<String> = ["busy".to_string()].into();
        let candidates = gc_candidates(&images, &in_use, now, Duration::ZERO);
        // 90% full; each removal frees 6 points; low threshold 80%.
        let usage = std::cell::Cell::new(90.0);
        let mut removed = Vec::new();
        let r = free_down_to(
            candidates.clone(),
            || Some(usage.get()),
            80,
            |i: &Image| {
                removed.push(i.id.clone());
                usage.set(usage.get() - 6.0);
                Ok::<(), ()>(())
            },
        )
        .expect("gc");
        assert_eq!(removed, ["a", "b"]);
        assert_eq!(r.removed, ["a", "b"]);
        assert_eq!(r.reclaimed, 20);
        // Even if nothing gets below the threshold, the image in use stays.
        let mut removed = Vec::new();
        free_down_to(
            candidates,
            || Some(99.0),
            80,
            |i: &Image| {
                removed.push(i.id.clone());
                Ok::<(), ()>(())
            },
        )
        .expect("gc");
        assert_eq!(removed, ["a", "b", "c"]);
    }
}
