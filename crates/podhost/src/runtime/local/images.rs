//! CRI ImageService of the local runtime: pull, remove, and which images
//! containers use (never removed, by `rmi`, prune or disk-pressure GC).

use std::collections::HashSet;

use super::*;

impl LocalRuntime {
    /// Pulls `reference` into the store, forwarding progress events.
    pub(super) async fn pull(
        &self,
        reference: &str,
        auth: Option<AuthConfig>,
        progress: Option<PullProgress>,
    ) -> Result<PulledImage, RuntimeError> {
        let send = move |ev| {
            if let Some(tx) = &progress {
                // The client may have gone away; the pull goes on regardless.
                let _ = tx.send(ev);
            }
        };
        let auth = auth.map(|a| (a.username, a.password));
        let result = self.puller.pull(reference, auth, &send).await?;
        let stop_signal = {
            let images = self.images.clone();
            let image = result.image.clone();
            tokio::task::spawn_blocking(move || {
                images
                    .config(&image)
                    .ok()
                    .and_then(|c| c.config().clone())
                    .and_then(|c| c.stop_signal().clone())
            })
            .await
            .ok()
            .flatten()
        };
        Ok(PulledImage {
            image: ImageInfo {
                id: result.image.id.clone(),
                repo_tags: result.image.repo_tags.clone(),
                size: result.image.size,
                stop_signal,
                repo_digests: result.image.repo_digests.clone(),
            },
            repo_digest: result.repo_digest.clone(),
            downloaded: result.downloaded,
            seconds: result.seconds,
        })
    }

    /// Image ids used by any container record (running or not: an exited
    /// container may restart and its pod still needs the image).
    pub fn images_in_use(&self) -> HashSet<String> {
        self.containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|c| c.image_id.clone())
            .collect()
    }

    /// Removes an image by reference or id, refusing while a container uses it.
    pub(super) async fn remove_unused_image(&self, reference: &str) -> Result<(), RuntimeError> {
        let images = self.images.clone();
        let r = reference.to_string();
        let image_err = |source| RuntimeError::Image {
            reference: reference.to_string(),
            source,
        };
        let found =
            images
                .get(&r)
                .map_err(image_err)?
                .ok_or_else(|| RuntimeError::ImageNotFound {
                    reference: r.clone(),
                })?;
        let users: Vec<String> = self
            .containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|c| c.image_id == found.id)
            .map(|c| c.id.chars().take(13).collect())
            .collect();
        // Untagging one of several names never removes content: allowed.
        let only_untags = found.repo_tags.len() > 1
            && podhost_image::normalize_reference(&r).is_ok_and(|n| found.repo_tags.contains(&n));
        if !users.is_empty() && !only_untags {
            return Err(RuntimeError::ImageInUse {
                reference: r,
                containers: users.join(", "),
            });
        }
        tokio::task::spawn_blocking(move || images.remove(&r))
            .await
            .map_err(|e| RuntimeError::Io {
                action: "image remove task",
                path: PathBuf::new(),
                source: std::io::Error::other(e),
            })?
            .map_err(image_err)
    }
}
