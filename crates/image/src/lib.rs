//! podhost's image store: content-addressed blobs, layers unpacked once and
//! shared as overlayfs lowerdirs, and an index of named images.
//!
//! On-disk layout under the store root:
//! - `blobs/sha256/<hex>`: manifests, configs and layers as imported
//!   (compressed or not), each verified against its digest;
//! - `layers/sha256/<diff-id-hex>/`: each layer unpacked once, OCI whiteouts
//!   converted to overlay whiteouts;
//! - `images.json`: the image index, replaced atomically.
//!
//! Crash safety: blobs and layers are written under temporary names in the
//! same directory and renamed into place when complete; an image is recorded
//! in `images.json` only after all its content is in place. Leftover
//! temporaries are deleted by [`ImageStore::open`].

mod archive;
mod digest;
mod error;
pub mod pull;
mod reference;
pub mod registry;
mod source;
mod unpack;

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock};

use oci_spec::image::{ImageConfiguration, ImageManifest};
use serde::{Deserialize, Serialize};

use crate::archive::{blob_name, read_verified_blob, Candidate, CandidateKind, NameHint};
use crate::digest::{digest_hex, is_sha256_digest, sha256_of, HashingReader};
pub use crate::error::ImageError;
pub use crate::reference::normalize_reference;
use crate::reference::Reference;
use crate::source::Source;
use crate::unpack::{detect_file_compression, unpack_layer};

const INDEX_FILE: &str = "images.json";
const INDEX_VERSION: u32 = 1;
/// Prefix of in-progress files and directories; never a valid hex digest.
const TMP_PREFIX: &str = ".tmp-";
/// Where pulls keep partial layer downloads, resumed by the next try.
pub const DOWNLOADS_DIR: &str = "downloads";
/// A partial download untouched this long is dropped when the store opens: nobody is
/// going to resume it (containerd expires its ingests the same way).
pub const DOWNLOAD_EXPIRY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// Shortest id prefix accepted by [`ImageStore::get`], as in the brief and
/// close to Docker's habit of showing 12.
const MIN_ID_PREFIX: usize = 6;

/// One image in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// The config digest, `sha256:<hex>` (Docker's and CRI's image id).
    pub id: String,
    /// Normalised references naming this image, e.g. `docker.io/library/busybox:latest`.
    pub repo_tags: Vec<String>,
    /// Digest of the image manifest (synthesised for docker-archives).
    pub manifest_digest: String,
    /// Uncompressed layer digests, bottom layer first.
    pub diff_ids: Vec<String>,
    /// Bytes of config plus layer blobs as stored (compressed size).
    pub size: u64,
    /// `name@sha256:…` references the image was pulled by (CRI's
    /// `repo_digests`); the digest is the one the registry serves for the
    /// name, an index's digest for multi-platform images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repo_digests: Vec<String>,
    /// Tags this image got from an archive (`image load`) and from no registry since:
    /// the image a user loaded under a tag is the one they mean by it, even where a
    /// pull policy of Always would ask the registry (see [`Image::loaded_as`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loaded_tags: Vec<String>,
    /// When the store first recorded the image (ms since the Unix epoch; kubelet's
    /// `firstDetected`). Absent in indexes written before it existed: oldest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen_ms: Option<u64>,
    /// When a container was last created from the image (ms since the Unix epoch;
    /// kubelet's `lastUsed`). Absent: never used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_ms: Option<u64>,
}

impl Image {
    /// Whether `reference` (normalised, `docker.io/library/busybox:latest`) names this
    /// image because it was loaded from an archive under that name and never pulled
    /// under it. Indexes of an older podhost recorded no provenance: there an image
    /// without registry digests was loaded.
    pub fn loaded_as(&self, reference: &str) -> bool {
        self.repo_tags.iter().any(|t| t == reference)
            && (self.loaded_tags.iter().any(|t| t == reference)
                || (self.loaded_tags.is_empty() && self.repo_digests.is_empty()))
    }
}

/// Milliseconds since the Unix epoch, the unit of [`Image::first_seen_ms`] and
/// [`Image::last_used_ms`].
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// How precisely [`ImageStore::mark_used`] records an image's last use, in ms: far
/// below [`GC_MIN_AGE`], so GC's order and its minimum age barely move.
pub const USE_GRANULARITY_MS: u64 = 10_000;

/// kubelet's default `--minimum-image-ttl-duration`: an image seen (or used) more
/// recently is not garbage collected, so a pull is not undone before its container
/// is created.
pub const GC_MIN_AGE: std::time::Duration = std::time::Duration::from_secs(120);

/// The images disk-pressure GC may remove, in the order it removes them: kubelet's
/// image manager order, least recently used first (never used counts as oldest), ties
/// broken by first seen. Images in `in_use` are never candidates, nor images first
/// seen or used within `min_age` of `now_ms`.
pub fn gc_candidates(
    images: &[Image],
    in_use: &HashSet<String>,
    now_ms: u64,
    min_age: std::time::Duration,
) -> Vec<Image> {
    let min_age_ms = u64::try_from(min_age.as_millis()).unwrap_or(u64::MAX);
    let mut out: Vec<Image> = images
        .iter()
        .filter(|i| !in_use.contains(&i.id))
        .filter(|i| {
            let recent = i
                .first_seen_ms
                .unwrap_or(0)
                .max(i.last_used_ms.unwrap_or(0));
            now_ms.saturating_sub(recent) >= min_age_ms
        })
        .cloned()
        .collect();
    // A stable sort: equal keys keep index (import) order.
    out.sort_by_key(|i| (i.last_used_ms.unwrap_or(0), i.first_seen_ms.unwrap_or(0)));
    out
}

#[derive(Debug, Serialize, Deserialize)]
struct IndexFile {
    version: u32,
    images: Vec<Image>,
}

/// The content store and image index rooted at one directory.
#[derive(Debug)]
pub struct ImageStore {
    root: PathBuf,
    /// The image list; always mirrors `images.json`.
    index: Mutex<Vec<Image>>,
    /// Loads share it; `remove` takes it exclusively so garbage collection
    /// never deletes a blob or layer a concurrent load is about to record.
    gc: RwLock<()>,
    /// Digests (blobs and diff_ids) a pull in progress has written or is
    /// about to write but not recorded yet: garbage collection keeps them.
    pins: Mutex<HashMap<String, usize>>,
}

/// Keeps digests pinned (see `ImageStore::pin`) until dropped.
pub(crate) struct PinGuard<'a> {
    store: &'a ImageStore,
    digests: Vec<String>,
}

impl Drop for PinGuard<'_> {
    fn drop(&mut self) {
        let mut pins = self.store.pins.lock().unwrap_or_else(|e| e.into_inner());
        for d in &self.digests {
            if let Some(n) = pins.get_mut(d) {
                *n -= 1;
                if *n == 0 {
                    pins.remove(d);
                }
            }
        }
    }
}

/// How `get`/`remove` matched a reference.
enum Match {
    Tag(String),
    Id,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name for a temporary sibling that is unique within the host.
fn tmp_name(hint: &str) -> String {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{TMP_PREFIX}{hint}-{}-{n}", std::process::id())
}

impl ImageStore {
    /// Opens (creating if needed) the store at `root` and removes temporaries
    /// an interrupted import or removal left behind.
    pub fn open(root: &Path) -> Result<ImageStore, ImageError> {
        for dir in [root.join("blobs/sha256"), root.join("layers/sha256")] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| ImageError::io("create directory", &dir, e))?;
            remove_temporaries(&dir)?;
        }
        remove_temporaries(root)?;
        remove_stale_downloads(&root.join(DOWNLOADS_DIR), DOWNLOAD_EXPIRY);
        let index_path = root.join(INDEX_FILE);
        let images = match fs::read(&index_path) {
            Ok(bytes) => {
                let file: IndexFile =
                    serde_json::from_slice(&bytes).map_err(|e| ImageError::Json {
                        path: index_path.clone(),
                        what: "image index".to_string(),
                        source: e,
                    })?;
                if file.version != INDEX_VERSION {
                    return Err(ImageError::UnsupportedIndexVersion {
                        path: index_path,
                        version: file.version,
                        expected: INDEX_VERSION,
                    });
                }
                file.images
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(ImageError::io("read", &index_path, e)),
        };
        Ok(ImageStore {
            root: root.to_path_buf(),
            index: Mutex::new(images),
            gc: RwLock::new(()),
            pins: Mutex::new(HashMap::new()),
        })
    }

    /// Imports a docker-archive tar (`docker save`: manifest.json plus
    /// `<x>/layer.tar` or blobs), an OCI image layout directory, or an OCI
    /// archive tar (oci-layout + index.json + blobs). Returns the imported
    /// images.
    ///
    /// Names: docker-archive `RepoTags`; OCI `io.containerd.image.name`, or
    /// `org.opencontainers.image.ref.name` when it is a full reference. When
    /// `tag` is given it replaces the archive's names; if the archive only
    /// has a bare OCI tag (`ref.name=1.36`) and `tag` has no tag of its own
    /// (`example.com/app`), the image is named `example.com/app:1.36`. An
    /// image with no usable name is imported untagged (reachable by id).
    /// A name already on another image moves to the imported one.
    /// From an index with several platforms only the host's (linux/amd64
    /// on x86_64) is imported. Re-importing is cheap: existing blobs and
    /// layers are kept, nothing is unpacked twice.
    pub fn load(&self, path: &Path, tag: Option<&str>) -> Result<Vec<Image>, ImageError> {
        let src = Source::open(path)?;
        let candidates = archive::candidates(&src)?;
        if candidates.is_empty() {
            return Err(ImageError::NoImages {
                archive: path.to_path_buf(),
            });
        }
        let names = assign_names(path, &candidates, tag)?;

        let _shared = self.gc.read().unwrap_or_else(|e| e.into_inner());
        let mut imported = Vec::new();
        for (candidate, names) in candidates.iter().zip(names) {
            let mut image = match &candidate.kind {
                CandidateKind::Manifest { digest, size } => {
                    self.import_manifest(&src, digest, *size)?
                }
                CandidateKind::Docker { config, layers } => {
                    self.import_docker(&src, config, layers)?
                }
            };
            image.repo_tags = names;
            imported.push(image);
        }
        self.record(imported)
    }

    /// All images, in import order.
    pub fn list(&self) -> Result<Vec<Image>, ImageError> {
        Ok(self.lock_index().clone())
    }

    /// Finds an image by reference (normalised: `busybox` ==
    /// `docker.io/library/busybox:latest`; `name@sha256:…` matches the
    /// manifest digest), by full id or by a unique id prefix (at least 6 hex
    /// characters, with or without `sha256:`). Names take precedence over id
    /// prefixes, as in Docker.
    pub fn get(&self, reference: &str) -> Result<Option<Image>, ImageError> {
        let images = self.lock_index();
        Ok(find(&images, reference)?.map(|(i, _)| images[i].clone()))
    }

    /// Removes a reference. A tag is untagged, and the image deleted once it
    /// has no tag left; an id (or digest reference) deletes the image with
    /// all its tags. Blobs and layers no image uses any more are deleted.
    pub fn remove(&self, reference: &str) -> Result<(), ImageError> {
        let _exclusive = self.gc.write().unwrap_or_else(|e| e.into_inner());
        let remaining = {
            let mut images = self.lock_index();
            let Some((i, how)) = find(&images, reference)? else {
                return Err(ImageError::NotFound {
                    reference: reference.to_string(),
                });
            };
            let mut next = images.clone();
            match how {
                Match::Tag(tag) => {
                    next[i].repo_tags.retain(|t| *t != tag);
                    if next[i].repo_tags.is_empty() {
                        next.remove(i);
                    }
                }
                Match::Id => {
                    next.remove(i);
                }
            }
            self.write_index(&next)?;
            *images = next.clone();
            next
        };
        self.collect_garbage(&remaining)
    }

    /// Unpacked layer directories, bottom layer first (for an overlay
    /// `lowerdir` the caller reverses them).
    pub fn layer_dirs(&self, image: &Image) -> Result<Vec<PathBuf>, ImageError> {
        image
            .diff_ids
            .iter()
            .map(|diff_id| {
                let path = self.layer_path(diff_id)?;
                if path.is_dir() {
                    Ok(path)
                } else {
                    Err(ImageError::MissingLayer {
                        image: image.id.clone(),
                        diff_id: diff_id.clone(),
                        path,
                    })
                }
            })
            .collect()
    }

    /// The image configuration (Entrypoint, Cmd, Env, WorkingDir, User,
    /// StopSignal …).
    pub fn config(&self, image: &Image) -> Result<ImageConfiguration, ImageError> {
        let path = self.blob_path(&image.id)?;
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ImageError::MissingBlob {
                    image: image.id.clone(),
                    what: "config",
                    digest: image.id.clone(),
                })
            }
            Err(e) => return Err(ImageError::io("read", &path, e)),
        };
        parse_config(&bytes, &path)
    }

    /// Records that a container is being created from image `id` at `at_ms` (for
    /// least-recently-used GC), persisted in the index. A use within
    /// [`USE_GRANULARITY_MS`] of the recorded one is not written: a hundred pods of one
    /// image would otherwise rewrite and fsync the whole index a hundred times, each
    /// under the index lock. An unknown id is a no-op (the image went meanwhile;
    /// creating the container will say so).
    pub fn mark_used(&self, id: &str, at_ms: u64) -> Result<(), ImageError> {
        let mut images = self.lock_index();
        let Some(i) = images.iter().position(|i| i.id == id) else {
            return Ok(());
        };
        if images[i]
            .last_used_ms
            .is_some_and(|t| t.saturating_add(USE_GRANULARITY_MS) > at_ms)
        {
            return Ok(());
        }
        let mut next = images.clone();
        next[i].last_used_ms = Some(at_ms);
        self.write_index(&next)?;
        *images = next;
        Ok(())
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Pins digests so garbage collection keeps them until the guard drops.
    pub(crate) fn pin(&self, digests: Vec<String>) -> PinGuard<'_> {
        let mut pins = self.pins.lock().unwrap_or_else(|e| e.into_inner());
        for d in &digests {
            *pins.entry(d.clone()).or_insert(0) += 1;
        }
        PinGuard {
            store: self,
            digests,
        }
    }

    /// True when the layer with this diff_id is unpacked already.
    pub(crate) fn has_layer(&self, diff_id: &str) -> bool {
        self.layer_path(diff_id).is_ok_and(|p| p.is_dir())
    }

    fn lock_index(&self) -> MutexGuard<'_, Vec<Image>> {
        // The vector is only ever replaced wholesale after a successful
        // write, so a panic elsewhere cannot leave it half-updated.
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn blob_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        let hex = digest_hex(digest, "image store")?;
        Ok(self.root.join("blobs/sha256").join(hex))
    }

    fn layer_path(&self, diff_id: &str) -> Result<PathBuf, ImageError> {
        let hex = digest_hex(diff_id, "image diff_ids")?;
        Ok(self.root.join("layers/sha256").join(hex))
    }

    /// Imports an image whose manifest is a blob in the archive.
    fn import_manifest(&self, src: &Source, digest: &str, size: u64) -> Result<Image, ImageError> {
        let manifest_bytes = read_verified_blob(src, digest, size)?;
        let manifest =
            ImageManifest::from_reader(&manifest_bytes[..]).map_err(|e| ImageError::OciSpec {
                what: format!("{}: invalid image manifest {digest}", src.path().display()),
                source: e,
            })?;
        let config_desc = manifest.config();
        let config_digest = config_desc.digest().to_string();
        let config_bytes = read_verified_blob(src, &config_digest, config_desc.size())?;
        let config = parse_config(
            &config_bytes,
            &src.path().join(blob_name(&config_digest, "config")?),
        )?;
        let diff_ids = config.rootfs().diff_ids().clone();
        if diff_ids.len() != manifest.layers().len() {
            return Err(ImageError::LayerCountMismatch {
                image: config_digest,
                layers: manifest.layers().len(),
                diff_ids: diff_ids.len(),
            });
        }
        let mut total = config_desc.size();
        for (layer, diff_id) in manifest.layers().iter().zip(&diff_ids) {
            let media_type = layer.media_type().to_string();
            let layer_digest = layer.digest().to_string();
            if media_type.contains("encrypted") {
                return Err(ImageError::UnsupportedMediaType {
                    archive: src.path().to_path_buf(),
                    media_type,
                    digest: layer_digest,
                });
            }
            let name = blob_name(&layer_digest, "manifest layers")?;
            let blob = self.put_blob(src, &name, Some((&layer_digest, layer.size())))?;
            self.ensure_layer(diff_id, &blob.path)?;
            total += blob.size;
        }
        self.put_bytes(&config_digest, &config_bytes)?;
        self.put_bytes(digest, &manifest_bytes)?;
        Ok(Image {
            id: config_digest,
            repo_tags: Vec::new(),
            manifest_digest: digest.to_string(),
            diff_ids,
            size: total,
            repo_digests: Vec::new(),
            loaded_tags: Vec::new(),
            first_seen_ms: None,
            last_used_ms: None,
        })
    }

    /// Imports a `docker save` entry. Such archives carry no manifest, so an
    /// OCI manifest is synthesised (deterministically, so re-imports agree)
    /// and stored like any other.
    fn import_docker(
        &self,
        src: &Source,
        config_name: &str,
        layer_names: &[String],
    ) -> Result<Image, ImageError> {
        let config_bytes = src.read_small(config_name)?;
        let config_digest = sha256_of(&config_bytes);
        // Newer `docker save` stores the config as blobs/sha256/<hex>: then
        // the name is a digest to check.
        if let Some(expected) = digest_from_blob_name(config_name) {
            if expected != config_digest {
                return Err(ImageError::DigestMismatch {
                    what: format!("{config_name} in {}", src.path().display()),
                    expected,
                    actual: config_digest,
                });
            }
        }
        let config = parse_config(&config_bytes, &src.path().join(config_name))?;
        let diff_ids = config.rootfs().diff_ids().clone();
        if diff_ids.len() != layer_names.len() {
            return Err(ImageError::LayerCountMismatch {
                image: config_digest,
                layers: layer_names.len(),
                diff_ids: diff_ids.len(),
            });
        }
        let mut layers = Vec::new();
        let mut total = config_bytes.len() as u64;
        for (name, diff_id) in layer_names.iter().zip(&diff_ids) {
            let expected = digest_from_blob_name(name);
            let blob = self.put_blob(src, name, expected.as_deref().map(|d| (d, u64::MAX)))?;
            self.ensure_layer(diff_id, &blob.path)?;
            let compression = detect_file_compression(&blob.path)?;
            layers.push(serde_json::json!({
                "mediaType": compression.oci_media_type(),
                "digest": blob.digest,
                "size": blob.size,
            }));
            total += blob.size;
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config_bytes.len(),
            },
            "layers": layers,
        });
        let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| ImageError::Json {
            path: src.path().to_path_buf(),
            what: "synthesised manifest".to_string(),
            source: e,
        })?;
        let manifest_digest = sha256_of(&manifest_bytes);
        self.put_bytes(&config_digest, &config_bytes)?;
        self.put_bytes(&manifest_digest, &manifest_bytes)?;
        Ok(Image {
            id: config_digest,
            repo_tags: Vec::new(),
            manifest_digest,
            diff_ids,
            size: total,
            repo_digests: Vec::new(),
            loaded_tags: Vec::new(),
            first_seen_ms: None,
            last_used_ms: None,
        })
    }

    /// Copies archive entry `name` into the blob store, verifying it against
    /// `expected` (digest, size; size `u64::MAX` = unknown) if given.
    fn put_blob(
        &self,
        src: &Source,
        name: &str,
        expected: Option<(&str, u64)>,
    ) -> Result<StoredBlob, ImageError> {
        if let Some((digest, _)) = expected {
            let path = self.blob_path(digest)?;
            // Already verified when it was stored: a re-import reads nothing.
            if let Ok(meta) = fs::metadata(&path) {
                return Ok(StoredBlob {
                    digest: digest.to_string(),
                    size: meta.len(),
                    path,
                });
            }
        }
        let (reader, entry_size) = src.open_entry(name)?;
        if let Some((digest, size)) = expected {
            if size != u64::MAX && size != entry_size {
                return Err(ImageError::SizeMismatch {
                    digest: digest.to_string(),
                    expected: size,
                    actual: entry_size,
                });
            }
        }
        let dir = self.root.join("blobs/sha256");
        let tmp = dir.join(tmp_name("blob"));
        let result = (|| {
            let mut file = create_private(&tmp)?;
            let mut hashing = HashingReader::new(reader);
            io::copy(&mut hashing, &mut file)
                .map_err(|e| ImageError::io("copy blob", src.path().join(name), e))?;
            let (actual, size) = hashing
                .finish()
                .map_err(|e| ImageError::io("read", src.path().join(name), e))?;
            if let Some((digest, _)) = expected {
                if actual != digest {
                    return Err(ImageError::DigestMismatch {
                        what: format!("blob {name} in {}", src.path().display()),
                        expected: digest.to_string(),
                        actual,
                    });
                }
            }
            file.sync_all()
                .map_err(|e| ImageError::io("fsync", &tmp, e))?;
            let path = self.blob_path(&actual)?;
            fs::rename(&tmp, &path).map_err(|e| ImageError::io("rename blob", &path, e))?;
            Ok(StoredBlob {
                digest: actual,
                size,
                path,
            })
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Stores bytes already verified to hash to `digest`.
    pub(crate) fn put_bytes(&self, digest: &str, bytes: &[u8]) -> Result<(), ImageError> {
        let path = self.blob_path(digest)?;
        if path.exists() {
            return Ok(());
        }
        write_atomic(&path, bytes)
    }

    /// Unpacks a layer blob to `layers/sha256/<diff_id>` unless it already is.
    pub(crate) fn ensure_layer(&self, diff_id: &str, blob: &Path) -> Result<(), ImageError> {
        let dest = self.layer_path(diff_id)?;
        if dest.is_dir() {
            return Ok(());
        }
        let parent = self.root.join("layers/sha256");
        let tmp = parent.join(tmp_name(digest_hex(diff_id, "diff_ids")?));
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&tmp)
            .map_err(|e| ImageError::io("create layer directory", &tmp, e))?;
        let result = unpack_layer(blob, &tmp, diff_id).and_then(|()| {
            // One syncfs instead of an fsync per file: the layer must be on
            // disk before its final name makes it visible.
            let dir = File::open(&tmp).map_err(|e| ImageError::io("open", &tmp, e))?;
            // SAFETY: `dir` is an open descriptor for the duration of the call.
            if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
                return Err(ImageError::io("syncfs", &tmp, io::Error::last_os_error()));
            }
            match fs::rename(&tmp, &dest) {
                Ok(()) => Ok(()),
                // A concurrent load unpacked the same layer first: keep theirs.
                Err(_) if dest.is_dir() => {
                    remove_tree(&tmp);
                    Ok(())
                }
                Err(e) => Err(ImageError::io("rename layer", &dest, e)),
            }
        });
        if result.is_err() {
            remove_tree(&tmp);
        }
        result
    }

    /// Adds imported images to the index (merging with existing ones of the
    /// same id and moving tags) and persists it.
    pub(crate) fn record(&self, imported: Vec<Image>) -> Result<Vec<Image>, ImageError> {
        let mut images = self.lock_index();
        let mut next = images.clone();
        let mut ids = Vec::new();
        for mut image in imported {
            // A pull records the registry's digest; an archive has none.
            let loaded = image.repo_digests.is_empty();
            for other in next.iter_mut().filter(|o| o.id != image.id) {
                other.repo_tags.retain(|t| !image.repo_tags.contains(t));
                other.loaded_tags.retain(|t| !image.repo_tags.contains(t));
            }
            if loaded {
                image.loaded_tags.clone_from(&image.repo_tags);
            }
            match next.iter_mut().find(|o| o.id == image.id) {
                Some(existing) => {
                    if loaded {
                        for tag in &image.repo_tags {
                            if !existing.loaded_tags.contains(tag) {
                                existing.loaded_tags.push(tag.clone());
                            }
                        }
                    } else {
                        existing
                            .loaded_tags
                            .retain(|t| !image.repo_tags.contains(t));
                    }
                    // Keep the first manifest digest: re-importing the same
                    // image from another format must not change it.
                    for tag in image.repo_tags {
                        if !existing.repo_tags.contains(&tag) {
                            existing.repo_tags.push(tag);
                        }
                    }
                    for digest in image.repo_digests {
                        if !existing.repo_digests.contains(&digest) {
                            existing.repo_digests.push(digest);
                        }
                    }
                }
                None => next.push(Image {
                    first_seen_ms: Some(now_ms()),
                    ..image.clone()
                }),
            }
            if !ids.contains(&image.id) {
                ids.push(image.id);
            }
        }
        self.write_index(&next)?;
        *images = next;
        Ok(ids
            .iter()
            .filter_map(|id| images.iter().find(|i| &i.id == id).cloned())
            .collect())
    }

    fn write_index(&self, images: &[Image]) -> Result<(), ImageError> {
        let path = self.root.join(INDEX_FILE);
        let file = IndexFile {
            version: INDEX_VERSION,
            images: images.to_vec(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| ImageError::Json {
            path: path.clone(),
            what: "image index".to_string(),
            source: e,
        })?;
        write_atomic(&path, &bytes)
    }

    /// Deletes every blob and layer that no image in `images` references.
    /// Runs with loads excluded, so in-progress temporaries cannot exist and
    /// a full scan is safe (it also reclaims leftovers of crashes).
    fn collect_garbage(&self, images: &[Image]) -> Result<(), ImageError> {
        let mut blobs: HashSet<String> = HashSet::new();
        let mut layers: HashSet<String> = HashSet::new();
        let mut blobs_known = true;
        {
            // In-progress pulls: keep what they wrote (both kinds of digest).
            let pins = self.pins.lock().unwrap_or_else(|e| e.into_inner());
            blobs.extend(pins.keys().cloned());
            layers.extend(pins.keys().cloned());
        }
        for image in images {
            blobs.insert(image.id.clone());
            blobs.insert(image.manifest_digest.clone());
            layers.extend(image.diff_ids.iter().cloned());
            match self.manifest_layers(&image.manifest_digest) {
                Ok(digests) => blobs.extend(digests),
                // Without the manifest we cannot tell which layer blobs are
                // in use: keep all blobs rather than guess.
                Err(_) => blobs_known = false,
            }
        }
        if blobs_known {
            sweep(&self.root.join("blobs/sha256"), &blobs, false)?;
        }
        sweep(&self.root.join("layers/sha256"), &layers, true)
    }

    fn manifest_layers(&self, manifest_digest: &str) -> Result<Vec<String>, ImageError> {
        let path = self.blob_path(manifest_digest)?;
        let bytes = fs::read(&path).map_err(|e| ImageError::io("read", &path, e))?;
        let manifest = ImageManifest::from_reader(&bytes[..]).map_err(|e| ImageError::OciSpec {
            what: format!("{}: invalid image manifest", path.display()),
            source: e,
        })?;
        Ok(manifest
            .layers()
            .iter()
            .map(|l| l.digest().to_string())
            .collect())
    }
}

struct StoredBlob {
    digest: String,
    size: u64,
    path: PathBuf,
}

/// `blobs/sha256/<hex>` → `sha256:<hex>` (newer `docker save` layout).
fn digest_from_blob_name(name: &str) -> Option<String> {
    let hex = name
        .trim_start_matches("./")
        .strip_prefix("blobs/sha256/")?;
    let digest = format!("sha256:{hex}");
    is_sha256_digest(&digest).then_some(digest)
}

fn parse_config(bytes: &[u8], path: &Path) -> Result<ImageConfiguration, ImageError> {
    ImageConfiguration::from_reader(bytes).map_err(|e| ImageError::OciSpec {
        what: format!("{}: invalid image config", path.display()),
        source: e,
    })
}

/// The final names for each candidate (see [`ImageStore::load`]); refuses a
/// name that would land on two different images of the same archive.
fn assign_names(
    archive: &Path,
    candidates: &[Candidate],
    tag: Option<&str>,
) -> Result<Vec<Vec<String>>, ImageError> {
    let tag_ref = tag.map(Reference::parse).transpose()?;
    // "Has its own tag" is judged on the text: parsing adds `:latest`.
    let tag_is_repo_only = tag.is_some_and(|t| {
        !t.contains('@') && !t.rsplit('/').next().is_some_and(|last| last.contains(':'))
    });
    let mut out: Vec<Vec<String>> = Vec::new();
    for candidate in candidates {
        let names = match (&candidate.names, &tag_ref) {
            (NameHint::BareTag(t), Some(r)) if tag_is_repo_only => {
                vec![format!("{}:{t}", r.name)]
            }
            (_, Some(r)) => vec![r.to_string()],
            (NameHint::Full(names), None) => names.clone(),
            (NameHint::BareTag(_) | NameHint::None, None) => Vec::new(),
        };
        out.push(names);
    }
    for (i, names) in out.iter().enumerate() {
        for name in names {
            let holders: Vec<usize> = out
                .iter()
                .enumerate()
                .filter(|(_, n)| n.contains(name))
                .map(|(j, _)| j)
                .collect();
            // The same manifest listed twice under one name is harmless.
            let distinct = holders
                .iter()
                .any(|&j| !same_image(&candidates[i], &candidates[j]));
            if distinct {
                return Err(ImageError::AmbiguousTag {
                    archive: archive.to_path_buf(),
                    tag: name.clone(),
                    count: holders.len(),
                });
            }
        }
    }
    Ok(out)
}

fn same_image(a: &Candidate, b: &Candidate) -> bool {
    match (&a.kind, &b.kind) {
        (CandidateKind::Manifest { digest: x, .. }, CandidateKind::Manifest { digest: y, .. }) => {
            x == y
        }
        (CandidateKind::Docker { config: x, .. }, CandidateKind::Docker { config: y, .. }) => {
            x == y
        }
        _ => false,
    }
}

/// Resolves a reference or id to an index position.
fn find(images: &[Image], reference: &str) -> Result<Option<(usize, Match)>, ImageError> {
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
    let is_hex = !hex.is_empty()
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if is_hex && hex.len() == 64 {
        let id = format!("sha256:{hex}");
        return Ok(images
            .iter()
            .position(|i| i.id == id)
            .map(|i| (i, Match::Id)));
    }
    let parsed = Reference::parse(reference);
    if let Ok(r) = &parsed {
        let found = match &r.digest {
            Some(digest) => images
                .iter()
                .position(|i| {
                    let by_name = format!("{}@{digest}", r.name);
                    i.repo_digests.contains(&by_name)
                        || (i.manifest_digest == *digest
                            && i.repo_tags
                                .iter()
                                .any(|t| Reference::parse(t).is_ok_and(|tr| tr.name == r.name)))
                })
                .map(|i| (i, Match::Id)),
            None => {
                let full = r.to_string();
                images
                    .iter()
                    .position(|i| i.repo_tags.contains(&full))
                    .map(|i| (i, Match::Tag(full)))
            }
        };
        if found.is_some() {
            return Ok(found);
        }
    }
    if is_hex && hex.len() >= MIN_ID_PREFIX {
        let matches: Vec<usize> = images
            .iter()
            .enumerate()
            .filter(|(_, i)| {
                i.id.strip_prefix("sha256:")
                    .is_some_and(|h| h.starts_with(hex))
            })
            .map(|(n, _)| n)
            .collect();
        return match matches.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some((*one, Match::Id))),
            many => Err(ImageError::AmbiguousId {
                prefix: reference.to_string(),
                candidates: many.iter().map(|&n| images[n].id.clone()).collect(),
            }),
        };
    }
    match parsed {
        Ok(_) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates a new file readable only by root (content is verified later).
fn create_private(path: &Path) -> Result<File, ImageError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| ImageError::io("create", path, e))
}

/// Writes `bytes` to `path` via a temporary sibling, fsync and rename, then
/// fsyncs the directory so the rename itself is durable.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(tmp_name("write"));
    let result = (|| {
        let mut file = create_private(&tmp)?;
        file.write_all(bytes)
            .map_err(|e| ImageError::io("write", &tmp, e))?;
        file.sync_all()
            .map_err(|e| ImageError::io("fsync", &tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| ImageError::io("rename", path, e))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| ImageError::io("fsync directory", dir, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Deletes entries of `dir` whose `sha256:<name>` is not in `keep`. Layer
/// directories are first renamed to a temporary name so a crash during the
/// deletion never leaves half a layer under its real name.
fn sweep(dir: &Path, keep: &HashSet<String>, is_layers: bool) -> Result<(), ImageError> {
    for entry in fs::read_dir(dir).map_err(|e| ImageError::io("read directory", dir, e))? {
        let entry = entry.map_err(|e| ImageError::io("read directory", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if keep.contains(&format!("sha256:{name}")) {
            continue;
        }
        let path = entry.path();
        if is_layers {
            let doomed = dir.join(tmp_name("del"));
            fs::rename(&path, &doomed).map_err(|e| ImageError::io("rename", &path, e))?;
            fs::remove_dir_all(&doomed).map_err(|e| ImageError::io("remove", &doomed, e))?;
        } else {
            fs::remove_file(&path).map_err(|e| ImageError::io("remove", &path, e))?;
        }
    }
    Ok(())
}

/// Deletes leftovers (`.tmp-*`) of interrupted writes in `dir`.
fn remove_temporaries(dir: &Path) -> Result<(), ImageError> {
    for entry in fs::read_dir(dir).map_err(|e| ImageError::io("read directory", dir, e))? {
        let entry = entry.map_err(|e| ImageError::io("read directory", dir, e))?;
        if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            remove_tree(&entry.path());
        }
    }
    Ok(())
}

/// Deletes partial downloads in `dir` not written to for `expiry`. Best effort: a
/// download left behind only costs disk until the next start.
fn remove_stale_downloads(dir: &Path, expiry: std::time::Duration) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > expiry);
        if stale {
            remove_tree(&entry.path());
        }
    }
}

/// Best-effort removal of a file or directory tree during cleanup, where the
/// original error is the one worth reporting.
fn remove_tree(path: &Path) {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(_) => Ok(()),
    };
    drop(result);
}
