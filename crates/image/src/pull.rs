//! Pulling images from OCI / Docker v2 registries into the store.
//!
//! The distribution protocol (auth challenges, tokens, HTTP) is `oci-client`'s;
//! what to fetch and how to store it is ours:
//! - the reference is normalised like Kubernetes (`busybox` →
//!   `docker.io/library/busybox:latest`) and resolved through the registry
//!   configuration (mirrors first; never the registry itself when its mirrors
//!   replace it);
//! - manifest lists / OCI indexes are followed to this host's platform;
//! - every manifest and blob is checked against its sha256 digest, layers also
//!   against their diff_id while they are unpacked — by the same unpacker as
//!   archive imports (`ImageStore::ensure_layer`), so pulled layers get the
//!   same path-safety checks and whiteout conversion;
//! - layers already unpacked are not downloaded again; at most
//!   [`DEFAULT_CONCURRENCY`] layers download at once, each into
//!   `downloads/<hex>` which survives failures and restarts, so the next try
//!   resumes with a `Range` request.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt};
use oci_client::client::{
    BlobResponse, Certificate, CertificateEncoding, ClientConfig, ClientProtocol,
};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::Client;
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

use crate::archive::{
    platform_matches, MT_DOCKER_LIST, MT_DOCKER_MANIFEST, MT_OCI_INDEX, MT_OCI_MANIFEST,
};
use crate::digest::{digest_hex, sha256_of};
use crate::reference::Reference;
use crate::registry::{Endpoint, RegistryConfig, RegistryConfigError};
use crate::{Image, ImageError, ImageStore};

/// Layers downloaded at once (containerd's default is 3).
pub const DEFAULT_CONCURRENCY: usize = 3;
/// Tries per blob; each retry resumes where the last one stopped.
const BLOB_ATTEMPTS: usize = 4;
/// Manifests and configs are small; refuse absurd ones.
const MAX_MANIFEST: usize = 16 * 1024 * 1024;
/// Nested indexes followed at most this deep.
const MAX_INDEX_DEPTH: usize = 3;
/// Progress events are sent at most every this many bytes per layer.
const PROGRESS_STEP: u64 = 512 * 1024;

const MANIFEST_TYPES: &[&str] = &[
    MT_OCI_MANIFEST,
    MT_OCI_INDEX,
    MT_DOCKER_MANIFEST,
    MT_DOCKER_LIST,
];

/// Why a pull failed; each names the reference and, when known, the
/// registry and the digest.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The reference does not parse.
    #[error(transparent)]
    InvalidReference(ImageError),
    /// The registry configuration or the credentials file is broken.
    #[error("{reference}: {source}")]
    Config {
        /// The image.
        reference: String,
        /// What is wrong in the file.
        #[source]
        source: RegistryConfigError,
    },
    /// The registry answered with an error (not found, unauthorized …) or
    /// could not be reached.
    #[error("pulling {reference} from {registry}: {source}")]
    Registry {
        /// The image.
        reference: String,
        /// `host[:port]` that was asked.
        registry: String,
        /// The protocol-level error, with the registry's own message.
        #[source]
        source: OciDistributionError,
    },
    /// Every endpoint (mirrors and registry) failed.
    #[error("pulling {reference}: every source failed:\n  {}", errors.join("\n  "))]
    AllSourcesFailed {
        /// The image.
        reference: String,
        /// One message per endpoint, in the order tried.
        errors: Vec<String>,
    },
    /// Content does not match its digest or size.
    #[error("pulling {reference} from {registry}: {what} {digest}: {problem}")]
    Verify {
        /// The image.
        reference: String,
        /// Where it came from.
        registry: String,
        /// Manifest, config or layer.
        what: &'static str,
        /// Expected digest.
        digest: String,
        /// What was wrong.
        problem: String,
    },
    /// A manifest of a kind podhost cannot run (schema 1, artifact, no
    /// matching platform, encrypted layer …).
    #[error("pulling {reference} from {registry}: {problem}")]
    Unsupported {
        /// The image.
        reference: String,
        /// Where it came from.
        registry: String,
        /// What is unsupported.
        problem: String,
    },
    /// Storing or unpacking failed.
    #[error("pulling {reference}: {source}")]
    Store {
        /// The image.
        reference: String,
        /// The store's error (names the layer and entry).
        #[source]
        source: ImageError,
    },
    /// A download file could not be written.
    #[error("pulling {reference}: {op} {path}: {source}")]
    Io {
        /// The image.
        reference: String,
        /// Operation.
        op: &'static str,
        /// File.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Progress of a pull, streamed to `podhost pull` as JSON lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum PullEvent {
    /// Asking a registry or mirror for the manifest.
    Resolving {
        /// Normalised reference.
        reference: String,
        /// `host[:port]/repository` asked.
        source: String,
    },
    /// The manifest is known: what will be fetched.
    Resolved {
        /// Digest of the platform manifest.
        manifest_digest: String,
        /// (digest, compressed size) of each layer, bottom first.
        layers: Vec<(String, u64)>,
    },
    /// The layer is unpacked already: nothing to download.
    LayerExists {
        /// Layer blob digest.
        digest: String,
    },
    /// Bytes of a layer downloaded so far (resumed bytes included).
    LayerProgress {
        /// Layer blob digest.
        digest: String,
        /// Bytes on disk.
        done: u64,
        /// Size from the manifest.
        total: u64,
    },
    /// The layer is downloaded and verified; unpacking starts.
    LayerDownloaded {
        /// Layer blob digest.
        digest: String,
    },
    /// The layer is unpacked.
    LayerDone {
        /// Layer blob digest.
        digest: String,
    },
    /// A mirror or registry failed; the next one is tried.
    SourceFailed {
        /// `host[:port]`.
        source: String,
        /// Why.
        error: String,
    },
}

/// Outcome of a successful pull.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PullResult {
    /// The image as recorded in the store.
    pub image: Image,
    /// `name@sha256:…` the registry served (index digest for multi-platform).
    pub repo_digest: String,
    /// Bytes downloaded by this pull (0 when everything was present).
    pub downloaded: u64,
    /// Wall time of the pull.
    pub seconds: f64,
    /// `host[:port]` the content came from (a mirror or the registry).
    pub source: String,
}

/// Pulls images into an [`ImageStore`].
pub struct Puller {
    store: Arc<ImageStore>,
    config_path: PathBuf,
    concurrency: usize,
    /// One download per blob digest at a time (concurrent pulls sharing a layer).
    blob_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// What resolving a reference on one endpoint gives.
struct Resolved {
    client: Client,
    oci_ref: oci_client::Reference,
    endpoint: Endpoint,
    top_digest: String,
    manifest_digest: String,
    manifest_bytes: Vec<u8>,
    manifest: ImageManifest,
}

impl Puller {
    /// A puller for `store` reading the registry configuration at `config_path`.
    pub fn new(store: Arc<ImageStore>, config_path: PathBuf) -> Puller {
        Puller {
            store,
            config_path,
            concurrency: DEFAULT_CONCURRENCY,
            blob_locks: Mutex::new(HashMap::new()),
        }
    }

    /// The registry configuration file this puller reads.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Pulls `reference` (normalised like Kubernetes) and records it in the
    /// store; `progress` is called from the pulling task.
    ///
    /// `auth` (user, password) is used for the registry named by the reference, like
    /// CRI's `PullImageRequest.auth` (kubelet fills it from `imagePullSecrets`); mirrors
    /// and requests without it use the credentials file of the registry configuration.
    pub async fn pull(
        &self,
        reference: &str,
        auth: Option<(String, String)>,
        progress: &(dyn Fn(PullEvent) + Send + Sync),
    ) -> Result<PullResult, PullError> {
        let started = Instant::now();
        let r = Reference::parse(reference).map_err(PullError::InvalidReference)?;
        let full = r.to_string();
        let (domain, path) = r.name.split_once('/').unwrap_or(("docker.io", &r.name));
        let config_err = |source| PullError::Config {
            reference: full.clone(),
            source,
        };
        let config = RegistryConfig::load(&self.config_path).map_err(config_err)?;
        let endpoints = config.endpoints(domain, path);
        let mut errors = Vec::new();
        let mut resolved = None;
        for ep in endpoints {
            progress(PullEvent::Resolving {
                reference: full.clone(),
                source: format!("{}/{}", ep.host, ep.repository),
            });
            match self
                .resolve(&config, ep.clone(), auth.as_ref(), &r, &full)
                .await
            {
                Ok(res) => {
                    resolved = Some(res);
                    break;
                }
                Err(e) => {
                    tracing::warn!("{e}");
                    progress(PullEvent::SourceFailed {
                        source: ep.host.clone(),
                        error: e.to_string(),
                    });
                    errors.push(e);
                }
            }
        }
        let Some(res) = resolved else {
            return Err(match errors.len() {
                1 => errors.remove(0),
                _ => PullError::AllSourcesFailed {
                    reference: full,
                    errors: errors.iter().map(ToString::to_string).collect(),
                },
            });
        };
        let registry = res.endpoint.host.clone();

        // The config: small, fetched to memory and verified.
        let config_desc = res.manifest.config().clone();
        let config_digest = config_desc.digest().to_string();
        let config_bytes = self
            .fetch_small(&res, &config_digest, "config", &full)
            .await?;
        let image_config = ImageConfiguration::from_reader(&config_bytes[..]).map_err(|e| {
            PullError::Unsupported {
                reference: full.clone(),
                registry: registry.clone(),
                problem: format!("config {config_digest} is not an image configuration: {e}"),
            }
        })?;
        let diff_ids = image_config.rootfs().diff_ids().clone();
        let layers: Vec<Descriptor> = res.manifest.layers().clone();
        if diff_ids.len() != layers.len() {
            return Err(PullError::Store {
                reference: full,
                source: ImageError::LayerCountMismatch {
                    image: config_digest,
                    layers: layers.len(),
                    diff_ids: diff_ids.len(),
                },
            });
        }
        for layer in &layers {
            let mt = layer.media_type().to_string();
            if mt.contains("encrypted") || !(mt.contains("tar") || mt.contains("layer")) {
                return Err(PullError::Unsupported {
                    reference: full,
                    registry,
                    problem: format!(
                        "layer {} has media type {mt}, which is not a (plain, gzip or zstd) tar layer",
                        layer.digest()
                    ),
                });
            }
            digest_hex(layer.digest().as_ref(), "manifest layers").map_err(|source| {
                PullError::Store {
                    reference: full.clone(),
                    source,
                }
            })?;
        }
        progress(PullEvent::Resolved {
            manifest_digest: res.manifest_digest.clone(),
            layers: layers
                .iter()
                .map(|l| (l.digest().to_string(), l.size()))
                .collect(),
        });

        let mut pinned: Vec<String> = vec![config_digest.clone(), res.manifest_digest.clone()];
        pinned.extend(layers.iter().map(|l| l.digest().to_string()));
        pinned.extend(diff_ids.iter().cloned());
        let _pins = self.store.pin(pinned);

        // Owned inputs and a collected Vec: a lazy iterator of borrowing
        // closures makes the future non-`Send` (higher-ranked lifetimes).
        let work: Vec<(String, u64, String)> = layers
            .iter()
            .zip(&diff_ids)
            .map(|(l, d)| (l.digest().to_string(), l.size(), d.clone()))
            .collect();
        let mut jobs = Vec::new();
        for (digest, size, diff_id) in work {
            jobs.push(self.fetch_layer(&res, digest, size, diff_id, &full, progress));
        }
        let downloaded: Vec<u64> = futures_util::stream::iter(jobs)
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await?;

        let size = config_desc.size() + layers.iter().map(|l| l.size()).sum::<u64>();
        let repo_tags = match (&r.tag, &r.digest) {
            (Some(tag), _) => vec![format!("{}:{tag}", r.name)],
            (None, _) => Vec::new(),
        };
        let repo_digest = format!("{}@{}", r.name, res.top_digest);
        let image = Image {
            id: config_digest.clone(),
            repo_tags,
            manifest_digest: res.manifest_digest.clone(),
            diff_ids,
            size,
            repo_digests: vec![repo_digest.clone()],
            loaded_tags: Vec::new(),
            first_seen_ms: None,
            last_used_ms: None,
        };
        let store = self.store.clone();
        let manifest_bytes = res.manifest_bytes.clone();
        let manifest_digest = res.manifest_digest.clone();
        let recorded = tokio::task::spawn_blocking(move || {
            let _shared = store.gc.read().unwrap_or_else(|e| e.into_inner());
            store.put_bytes(&config_digest, &config_bytes)?;
            store.put_bytes(&manifest_digest, &manifest_bytes)?;
            store.record(vec![image])
        })
        .await
        .map_err(|e| PullError::Io {
            reference: full.clone(),
            op: "join",
            path: PathBuf::from("record task"),
            source: std::io::Error::other(e),
        })?
        .map_err(|source| PullError::Store {
            reference: full.clone(),
            source,
        })?;
        let image = recorded
            .into_iter()
            .next()
            .ok_or_else(|| PullError::Store {
                reference: full.clone(),
                source: ImageError::NotFound {
                    reference: full.clone(),
                },
            })?;
        Ok(PullResult {
            image,
            repo_digest,
            downloaded: downloaded.iter().sum(),
            seconds: started.elapsed().as_secs_f64(),
            source: registry,
        })
    }

    /// Fetches and follows the manifest on one endpoint.
    async fn resolve(
        &self,
        config: &RegistryConfig,
        endpoint: Endpoint,
        given: Option<&(String, String)>,
        r: &Reference,
        full: &str,
    ) -> Result<Resolved, PullError> {
        let registry = endpoint.host.clone();
        let client = make_client(&endpoint).map_err(|problem| PullError::Unsupported {
            reference: full.to_string(),
            registry: registry.clone(),
            problem,
        })?;
        let from_request = given.filter(|_| !endpoint.is_mirror);
        let auth = match from_request
            .cloned()
            .map(Some)
            .map_or_else(|| config.credentials(&endpoint.host), Ok)
        {
            Ok(Some((user, password))) => RegistryAuth::Basic(user, password),
            Ok(None) => RegistryAuth::Anonymous,
            Err(source) => {
                return Err(PullError::Config {
                    reference: full.to_string(),
                    source,
                })
            }
        };
        let reg_err = |source| PullError::Registry {
            reference: full.to_string(),
            registry: registry.clone(),
            source,
        };
        let top_ref = match (&r.digest, &r.tag) {
            (Some(d), _) => oci_client::Reference::with_digest(
                endpoint.host.clone(),
                endpoint.repository.clone(),
                d.clone(),
            ),
            (None, tag) => oci_client::Reference::with_tag(
                endpoint.host.clone(),
                endpoint.repository.clone(),
                tag.clone().unwrap_or_else(|| "latest".into()),
            ),
        };
        let (bytes, _) = client
            .pull_manifest_raw(&top_ref, &auth, MANIFEST_TYPES)
            .await
            .map_err(reg_err)?;
        let top_digest = sha256_of(&bytes);
        if let Some(d) = &r.digest {
            if *d != top_digest {
                return Err(self.verify_err(
                    full,
                    &registry,
                    "manifest",
                    d,
                    format!("content hashes to {top_digest}"),
                ));
            }
        }
        let mut digest = top_digest.clone();
        let mut bytes = bytes.to_vec();
        for depth in 0..=MAX_INDEX_DEPTH {
            if bytes.len() > MAX_MANIFEST {
                return Err(self.unsupported(
                    full,
                    &registry,
                    format!("manifest {digest} is larger than 16 MiB"),
                ));
            }
            let kind = manifest_kind(&bytes);
            match kind.as_deref() {
                Some(MT_OCI_MANIFEST) | Some(MT_DOCKER_MANIFEST) | None => {
                    let manifest = ImageManifest::from_reader(&bytes[..]).map_err(|e| {
                        self.unsupported(full, &registry, format!("manifest {digest}: {e}"))
                    })?;
                    let oci_ref = oci_client::Reference::with_digest(
                        endpoint.host.clone(),
                        endpoint.repository.clone(),
                        digest.clone(),
                    );
                    return Ok(Resolved {
                        client,
                        oci_ref,
                        endpoint,
                        top_digest,
                        manifest_digest: digest,
                        manifest_bytes: bytes,
                        manifest,
                    });
                }
                Some(MT_OCI_INDEX) | Some(MT_DOCKER_LIST) => {
                    if depth == MAX_INDEX_DEPTH {
                        break;
                    }
                    let index = ImageIndex::from_reader(&bytes[..]).map_err(|e| {
                        self.unsupported(full, &registry, format!("index {digest}: {e}"))
                    })?;
                    let child = select_platform(&index).ok_or_else(|| {
                        let platforms: Vec<String> = index
                            .manifests()
                            .iter()
                            .filter_map(|m| m.platform().as_ref())
                            .map(|p| format!("{}/{}", p.os(), p.architecture()))
                            .collect();
                        self.unsupported(
                            full,
                            &registry,
                            format!(
                                "index {digest} has no {}/{} image (it has: {})",
                                crate::archive::HOST_OS,
                                crate::archive::HOST_ARCH,
                                platforms.join(", ")
                            ),
                        )
                    })?;
                    let child_ref = oci_client::Reference::with_digest(
                        endpoint.host.clone(),
                        endpoint.repository.clone(),
                        child.clone(),
                    );
                    let (b, _) = client
                        .pull_manifest_raw(&child_ref, &auth, MANIFEST_TYPES)
                        .await
                        .map_err(reg_err)?;
                    let actual = sha256_of(&b);
                    if actual != child {
                        return Err(self.verify_err(
                            full,
                            &registry,
                            "manifest",
                            &child,
                            format!("content hashes to {actual}"),
                        ));
                    }
                    digest = child;
                    bytes = b.to_vec();
                }
                Some(other) => {
                    return Err(self.unsupported(
                        full,
                        &registry,
                        format!("{digest} has media type {other}, not an image manifest or index"),
                    ))
                }
            }
        }
        Err(self.unsupported(full, &registry, "image indexes nested too deeply".into()))
    }

    fn unsupported(&self, full: &str, registry: &str, problem: String) -> PullError {
        PullError::Unsupported {
            reference: full.to_string(),
            registry: registry.to_string(),
            problem,
        }
    }

    fn verify_err(
        &self,
        full: &str,
        registry: &str,
        what: &'static str,
        digest: &str,
        problem: String,
    ) -> PullError {
        PullError::Verify {
            reference: full.to_string(),
            registry: registry.to_string(),
            what,
            digest: digest.to_string(),
            problem,
        }
    }

    /// A small blob (config) into memory, verified.
    async fn fetch_small(
        &self,
        res: &Resolved,
        digest: &str,
        what: &'static str,
        full: &str,
    ) -> Result<Vec<u8>, PullError> {
        let registry = &res.endpoint.host;
        if let Ok(path) = self.store.blob_path(digest) {
            if let Ok(bytes) = std::fs::read(&path) {
                if sha256_of(&bytes) == digest {
                    return Ok(bytes);
                }
            }
        }
        let mut out = Vec::new();
        res.client
            .pull_blob(&res.oci_ref, digest, &mut out)
            .await
            .map_err(|source| PullError::Registry {
                reference: full.to_string(),
                registry: registry.clone(),
                source,
            })?;
        let actual = sha256_of(&out);
        if actual != digest {
            return Err(self.verify_err(
                full,
                registry,
                what,
                digest,
                format!("content hashes to {actual}"),
            ));
        }
        Ok(out)
    }

    /// Downloads (unless unpacked already) and unpacks one layer; returns the
    /// bytes downloaded.
    async fn fetch_layer(
        &self,
        res: &Resolved,
        digest: String,
        size: u64,
        diff_id: String,
        full: &str,
        progress: &(dyn Fn(PullEvent) + Send + Sync),
    ) -> Result<u64, PullError> {
        let lock = {
            let mut locks = self.blob_locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry(digest.clone()).or_default().clone()
        };
        let _one_at_a_time = lock.lock().await;
        if self.store.has_layer(&diff_id) {
            progress(PullEvent::LayerExists { digest });
            return Ok(0);
        }
        let store_err = |source| PullError::Store {
            reference: full.to_string(),
            source,
        };
        let blob = self.store.blob_path(&digest).map_err(store_err)?;
        let mut downloaded = 0;
        if !blob.exists() {
            downloaded = self.download(res, &digest, size, full, progress).await?;
        }
        progress(PullEvent::LayerDownloaded {
            digest: digest.clone(),
        });
        let store = self.store.clone();
        let partial = self.partial_path(&digest).map_err(store_err)?;
        let d = diff_id.clone();
        tokio::task::spawn_blocking(move || {
            // Shared with loads; excludes a concurrent `remove` mid-unpack.
            let _shared = store.gc.read().unwrap_or_else(|e| e.into_inner());
            if !blob.exists() {
                std::fs::rename(&partial, &blob)
                    .map_err(|e| ImageError::io("rename download", &blob, e))?;
            }
            store.ensure_layer(&d, &blob)
        })
        .await
        .map_err(|e| PullError::Io {
            reference: full.to_string(),
            op: "join",
            path: PathBuf::from("unpack task"),
            source: std::io::Error::other(e),
        })?
        .map_err(store_err)?;
        progress(PullEvent::LayerDone { digest });
        Ok(downloaded)
    }

    fn partial_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        Ok(self
            .store
            .root()
            .join(crate::DOWNLOADS_DIR)
            .join(digest_hex(digest, "layer")?))
    }

    /// Downloads a blob to `downloads/<hex>`, resuming what an earlier try
    /// left there, and verifies size and digest. Returns the bytes fetched.
    async fn download(
        &self,
        res: &Resolved,
        digest: &str,
        size: u64,
        full: &str,
        progress: &(dyn Fn(PullEvent) + Send + Sync),
    ) -> Result<u64, PullError> {
        let registry = res.endpoint.host.clone();
        let path = self
            .partial_path(digest)
            .map_err(|source| PullError::Store {
                reference: full.to_string(),
                source,
            })?;
        let io_err = |op: &'static str, path: &Path| {
            let path = path.to_path_buf();
            let reference = full.to_string();
            move |source| PullError::Io {
                reference,
                op,
                path,
                source,
            }
        };
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(io_err("create directory", dir))?;
        }
        let mut fetched = 0u64;
        let mut last_error = None;
        for attempt in 0..BLOB_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * attempt as u64)).await;
            }
            // Hash what an earlier attempt (or pull) left, then ask for the rest.
            let (mut hasher, mut have) = hash_file(&path).await.map_err(io_err("read", &path))?;
            if have > size {
                tokio::fs::remove_file(&path)
                    .await
                    .map_err(io_err("remove", &path))?;
                (hasher, have) = (Sha256::new(), 0);
            }
            if have < size || size == 0 {
                let response = if have > 0 {
                    res.client
                        .pull_blob_stream_partial(&res.oci_ref, digest, have, None)
                        .await
                } else {
                    res.client
                        .pull_blob_stream(&res.oci_ref, digest)
                        .await
                        .map(BlobResponse::Full)
                };
                let stream = match response {
                    Ok(BlobResponse::Partial(s)) => s,
                    Ok(BlobResponse::Full(s)) => {
                        // The registry ignored the Range: start over.
                        hasher = Sha256::new();
                        have = 0;
                        s
                    }
                    Err(e) => {
                        // Unreachable registry or HTTP error: worth a retry,
                        // but "not found"/"denied" will not change.
                        let permanent = matches!(
                            e,
                            OciDistributionError::ImageManifestNotFoundError(_)
                                | OciDistributionError::UnauthorizedError { .. }
                                | OciDistributionError::AuthenticationFailure(_)
                                | OciDistributionError::ServerError { .. }
                        );
                        last_error = Some(PullError::Registry {
                            reference: full.to_string(),
                            registry: registry.clone(),
                            source: e,
                        });
                        if permanent {
                            break;
                        }
                        continue;
                    }
                };
                let file = tokio::fs::OpenOptions::new()
                    .create(true)
                    .write(true)
                    .append(have > 0)
                    .truncate(have == 0)
                    .open(&path)
                    .await
                    .map_err(io_err("open", &path))?;
                let mut file = tokio::io::BufWriter::with_capacity(1 << 20, file);
                let mut stream = stream.stream;
                let mut reported = have;
                let mut broken = None;
                while let Some(chunk) = stream.next().await {
                    let chunk = match chunk {
                        Ok(c) => c,
                        Err(e) => {
                            broken = Some(e);
                            break;
                        }
                    };
                    file.write_all(&chunk)
                        .await
                        .map_err(io_err("write", &path))?;
                    hasher.update(&chunk);
                    have += chunk.len() as u64;
                    fetched += chunk.len() as u64;
                    if have > size {
                        break;
                    }
                    if have - reported >= PROGRESS_STEP {
                        reported = have;
                        progress(PullEvent::LayerProgress {
                            digest: digest.to_string(),
                            done: have,
                            total: size,
                        });
                    }
                }
                file.flush().await.map_err(io_err("write", &path))?;
                file.get_ref()
                    .sync_all()
                    .await
                    .map_err(io_err("fsync", &path))?;
                if let Some(e) = broken {
                    last_error = Some(PullError::Io {
                        reference: full.to_string(),
                        op: "download (will resume)",
                        path: path.clone(),
                        source: e,
                    });
                    continue;
                }
            }
            progress(PullEvent::LayerProgress {
                digest: digest.to_string(),
                done: have,
                total: size,
            });
            let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
            if have != size || actual != digest {
                // Bad bytes cannot be resumed from: start clean next time.
                let _ = tokio::fs::remove_file(&path).await;
                let problem = if have != size {
                    format!("descriptor says {size} bytes, registry sent {have}")
                } else {
                    format!("content hashes to {actual}")
                };
                return Err(self.verify_err(full, &registry, "layer", digest, problem));
            }
            return Ok(fetched);
        }
        Err(last_error.unwrap_or_else(|| {
            self.verify_err(full, &registry, "layer", digest, "download failed".into())
        }))
    }
}

/// `mediaType` of a manifest document (None when absent: Docker and OCI
/// manifests may omit it; `manifests` then marks an index).
fn manifest_kind(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        schema_version: Option<u32>,
    }
    let head: Head = serde_json::from_slice(bytes).ok()?;
    if head.schema_version == Some(1) {
        return Some("application/vnd.docker.distribution.manifest.v1+json".into());
    }
    match head.media_type {
        Some(mt) => Some(mt),
        None if head.manifests.is_some() => Some(MT_OCI_INDEX.into()),
        None => None,
    }
}

/// The index entry for this host: an explicit platform match first, then an
/// entry without platform.
fn select_platform(index: &ImageIndex) -> Option<String> {
    let runnable = |d: &&Descriptor| {
        let mt = d.media_type().to_string();
        MANIFEST_TYPES.contains(&mt.as_str())
    };
    index
        .manifests()
        .iter()
        .filter(runnable)
        .find(|d| d.platform().is_some() && platform_matches(d))
        .or_else(|| {
            index
                .manifests()
                .iter()
                .filter(runnable)
                .find(|d| d.platform().is_none())
        })
        .map(|d| d.digest().to_string())
}

/// Hashes an existing partial download; (empty hasher, 0) when absent.
async fn hash_file(path: &Path) -> std::io::Result<(Sha256, u64)> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut hasher = Sha256::new();
        match std::fs::File::open(&path) {
            Ok(mut f) => {
                let n = std::io::copy(&mut f, &mut hasher)?;
                Ok((hasher, n))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((hasher, 0)),
            Err(e) => Err(e),
        }
    })
    .await
    .map_err(std::io::Error::other)?
}

/// An `oci-client` for one endpoint: scheme, TLS trust, timeouts.
fn make_client(endpoint: &Endpoint) -> Result<Client, String> {
    static PROVIDER: Once = Once::new();
    // reqwest is built without a default TLS provider (ring keeps the build
    // free of aws-lc's C toolchain needs); install ring once per process.
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    let mut certs = Vec::new();
    for path in &endpoint.ca_files {
        let data =
            std::fs::read(path).map_err(|e| format!("reading CA file {}: {e}", path.display()))?;
        certs.push(Certificate {
            encoding: CertificateEncoding::Pem,
            data,
        });
    }
    let config = ClientConfig {
        protocol: if endpoint.plain_http {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        accept_invalid_certificates: endpoint.insecure_skip_verify,
        extra_root_certificates: certs,
        // We follow indexes ourselves (platform choice, digest checks).
        platform_resolver: None,
        max_concurrent_download: DEFAULT_CONCURRENCY,
        connect_timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(Duration::from_secs(60)),
        user_agent: concat!("podhost/", env!("CARGO_PKG_VERSION")),
        ..ClientConfig::default()
    };
    Ok(Client::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_kinds() {
        assert_eq!(
            manifest_kind(br#"{"schemaVersion":2,"manifests":[]}"#).as_deref(),
            Some(MT_OCI_INDEX)
        );
        assert_eq!(
            manifest_kind(br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#).as_deref(),
            Some(MT_DOCKER_MANIFEST)
        );
        assert_eq!(manifest_kind(br#"{"schemaVersion":2,"layers":[]}"#), None);
        assert!(manifest_kind(br#"{"schemaVersion":1}"#).is_some_and(|m| m.contains("v1")));
    }

    #[test]
    fn picks_the_host_platform() {
        let other = if crate::archive::HOST_ARCH == "amd64" {
            "arm64"
        } else {
            "amd64"
        };
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MT_OCI_INDEX}","manifests":[
            {{"mediaType":"{MT_OCI_MANIFEST}","digest":"sha256:{a}","size":1,"platform":{{"os":"linux","architecture":"{other}"}}}},
            {{"mediaType":"{MT_OCI_MANIFEST}","digest":"sha256:{b}","size":1,"platform":{{"os":"linux","architecture":"{host}"}}}}]}}"#,
            a = "a".repeat(64),
            b = "b".repeat(64),
            host = crate::archive::HOST_ARCH
        );
        let index = ImageIndex::from_reader(json.as_bytes()).expect("index");
        assert_eq!(
            select_platform(&index),
            Some(format!("sha256:{}", "b".repeat(64)))
        );
    }
}
