//! CRI ImageService of the local runtime: pull, remove, and which images
//! containers use (never removed, by `rmi`, prune or disk-pressure GC).

use std::collections::HashSet;

use super::*;

/// An image of the store as the runtime reports it (CRI `Image`).
pub(super) fn image_info(i: podhost_image::Image, stop_signal: Option<String>) -> ImageInfo {
    ImageInfo {
        loaded_tags: loaded_tags(&i),
        id: i.id,
        repo_tags: i.repo_tags,
        size: i.size,
        stop_signal,
        repo_digests: i.repo_digests,
        user: None,
        pinned: false,
    }
}

/// The tags `loaded_as` holds for (old indexes included).
pub(super) fn loaded_tags(i: &podhost_image::Image) -> Vec<String> {
    i.repo_tags
        .iter()
        .filter(|t| i.loaded_as(t))
        .cloned()
        .collect()
}

/// Runs blocking image store work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RuntimeError> + Send + 'static,
) -> Result<T, RuntimeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RuntimeError::Io {
            action: "image store task",
            path: PathBuf::new(),
            source: std::io::Error::other(e),
        })?
}

fn store_err(reference: &str) -> impl FnOnce(podhost_image::ImageError) -> RuntimeError + '_ {
    move |source| RuntimeError::Image {
        reference: reference.to_string(),
        source,
    }
}

impl LocalRuntime {
    /// Loads an archive into the store (`podhost image load`).
    pub(super) async fn load(
        &self,
        path: &std::path::Path,
        tag: Option<&str>,
    ) -> Result<Vec<ImageInfo>, RuntimeError> {
        let images = self.images.clone();
        let (path, tag) = (path.to_path_buf(), tag.map(str::to_string));
        blocking(move || {
            let loaded = images
                .load(&path, tag.as_deref())
                .map_err(store_err(&path.to_string_lossy()))?;
            Ok(loaded
                .into_iter()
                .map(|i| {
                    let stop = images
                        .config(&i)
                        .ok()
                        .and_then(|c| c.config().clone())
                        .and_then(|c| c.stop_signal().clone());
                    image_info(i, stop)
                })
                .collect())
        })
        .await
    }

    /// Removes unused images: dangling (untagged) ones, every unused one with `all`.
    pub(super) async fn prune(&self, all: bool) -> Result<PruneResult, RuntimeError> {
        let store = self.images.clone();
        let in_use = self.images_in_use();
        blocking(move || {
            let mut result = PruneResult::default();
            for image in store.list().map_err(store_err(""))? {
                if in_use.contains(&image.id) || (!all && !image.repo_tags.is_empty()) {
                    continue;
                }
                store.remove(&image.id).map_err(store_err(&image.id))?;
                result.reclaimed += image.size;
                result.removed.push(image.id);
            }
            Ok(result)
        })
        .await
    }

    /// Disk-pressure image GC (see [`image_gc`](super::image_gc)).
    pub(super) async fn gc(&self, high: u8, low: u8) -> Result<PruneResult, RuntimeError> {
        let store = self.images.clone();
        let in_use = self.images_in_use();
        blocking(move || {
            super::image_gc::touch_in_use(&store, &in_use, podhost_image::now_ms());
            super::image_gc::collect(&store, &in_use, high, low).map_err(store_err(""))
        })
        .await
    }

    /// Bytes and inodes of the image store, and how full its filesystem is.
    pub(super) async fn fs_info(&self) -> Result<FsUsage, RuntimeError> {
        let root = self.images.root().to_path_buf();
        blocking(move || {
            let (used_bytes, inodes_used) = super::cri_ops::tree_usage(&root).unwrap_or((0, 0));
            Ok(FsUsage {
                mountpoint: root.clone(),
                used_bytes,
                inodes_used,
                percent_used: super::image_gc::disk_usage_percent(&root).unwrap_or(0.0),
            })
        })
        .await
    }

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
            image: image_info(result.image.clone(), stop_signal),
            repo_digest: result.repo_digest.clone(),
            downloaded: result.downloaded,
            seconds: result.seconds,
        })
    }

    /// Image ids used by any container record (running or not: an exited
    /// container may restart and its pod still needs the image).
    fn images_in_use(&self) -> HashSet<String> {
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
