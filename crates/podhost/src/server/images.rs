//! Image endpoints beyond list/load: pull (progress streamed as JSON lines),
//! remove, prune, and kubelet-style image garbage collection on disk pressure.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{ApiError, Daemon};
pub use podhost_runtime::PruneResult;
use podhost_runtime::PulledImage;

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
                error: crate::lifecycle::image_pull::error_chain(&e),
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
        Err(podhost_runtime::RuntimeError::ImageNotFound { reference }) => {
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

pub(super) async fn prune(
    State(d): State<Arc<Daemon>>,
    Json(req): Json<PruneRequest>,
) -> Result<Json<PruneResult>, ApiError> {
    d.runtime
        .prune_images(req.all)
        .await
        .map(Json)
        .map_err(ApiError::internal)
}

/// kubelet's image GC, run periodically: when the image filesystem is fuller than the
/// high threshold the runtime removes unused images, least recently used first, until
/// it is below the low threshold (see `Runtime::collect_images`). A high threshold of
/// 100 disables it.
pub(super) fn spawn_image_gc(d: Arc<Daemon>, high: u8, low: u8, period: Duration) {
    if high >= 100 {
        tracing::info!("image GC disabled (--image-gc-high-threshold 100)");
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            match d.runtime.collect_images(high, low).await {
                Ok(r) if !r.removed.is_empty() => tracing::info!(
                    "image GC: removed {} image(s), ~{} bytes: {}",
                    r.removed.len(),
                    r.reclaimed,
                    r.removed.join(", ")
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!("image GC: {e}"),
            }
        }
    });
}
