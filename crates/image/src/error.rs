//! Errors of the image store; each variant names what failed and where.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while importing, finding or removing images.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The reference is not a valid image name.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference {
        reference: String,
        reason: &'static str,
    },
    /// A digest is not of the form `sha256:<64 lowercase hex>`.
    #[error("invalid digest {digest:?} in {context}: only sha256:<64 lowercase hex> is supported")]
    InvalidDigest { digest: String, context: String },
    /// Content does not hash to the digest that names it.
    #[error("digest mismatch for {what}: expected {expected}, content hashes to {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    /// A blob's length differs from its descriptor.
    #[error(
        "size mismatch for blob {digest}: descriptor says {expected} bytes, content has {actual}"
    )]
    SizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
    },
    /// The path is neither a docker-archive, an OCI layout nor an OCI archive.
    #[error("{path}: not an image archive ({reason}); expected a `docker save` tar, an OCI archive tar or an OCI layout directory")]
    UnknownFormat { path: PathBuf, reason: String },
    /// The archive itself is compressed; entries cannot be read in place.
    #[error("{path}: archive is {compression}-compressed; decompress it first (e.g. `gunzip -k` or `zstd -d`)")]
    CompressedArchive {
        path: PathBuf,
        compression: &'static str,
    },
    /// A file the archive's metadata points to is absent.
    #[error("{archive}: missing entry {entry:?}")]
    MissingEntry { archive: PathBuf, entry: String },
    /// An entry of the archive is malformed (bad symlink, path escape …).
    #[error("{archive}: bad entry {entry:?}: {reason}")]
    BadArchiveEntry {
        archive: PathBuf,
        entry: String,
        reason: &'static str,
    },
    /// A JSON document (manifest, index, config, images.json) does not parse.
    #[error("{path}: invalid {what}: {source}")]
    Json {
        path: PathBuf,
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// An OCI document does not parse or cannot be built.
    #[error("{what}: {source}")]
    OciSpec {
        what: String,
        #[source]
        source: oci_spec::OciSpecError,
    },
    /// A media type the store cannot handle (e.g. a foreign or encrypted layer).
    #[error("{archive}: unsupported media type {media_type} for {digest}")]
    UnsupportedMediaType {
        archive: PathBuf,
        media_type: String,
        digest: String,
    },
    /// The OCI layout declares a version this code does not know.
    #[error("{path}: unsupported OCI image layout version {version:?} (expected 1.0.0)")]
    UnsupportedLayoutVersion { path: PathBuf, version: String },
    /// `images.json` was written by a newer podhost.
    #[error("{path}: image index version {version} is not supported (expected {expected}); was it written by a newer podhost?")]
    UnsupportedIndexVersion {
        path: PathBuf,
        version: u32,
        expected: u32,
    },
    /// Manifest and config disagree about the number of layers.
    #[error("image {image}: manifest has {layers} layers but config has {diff_ids} diff_ids")]
    LayerCountMismatch {
        image: String,
        layers: usize,
        diff_ids: usize,
    },
    /// A multi-platform index has no linux/amd64 image.
    #[error("{archive}: index {digest} has no linux/amd64 manifest")]
    NoMatchingPlatform { archive: PathBuf, digest: String },
    /// The archive holds no image at all.
    #[error("{archive}: contains no image")]
    NoImages { archive: PathBuf },
    /// The `tag` argument would name several images at once.
    #[error("{archive}: tag {tag} would name {count} images; import them without a tag or one at a time")]
    AmbiguousTag {
        archive: PathBuf,
        tag: String,
        count: usize,
    },
    /// A layer tar entry is unsafe or impossible to write.
    #[error("layer {layer}: entry {entry:?}: {reason}")]
    UnsafeLayerEntry {
        layer: String,
        entry: String,
        reason: &'static str,
    },
    /// Reading a layer tar stream failed (corrupt tar or decompression error).
    #[error("layer {layer}: reading tar stream: {source}")]
    LayerStream {
        layer: String,
        #[source]
        source: io::Error,
    },
    /// Writing one entry of a layer failed.
    #[error("layer {layer}: entry {entry:?}: {op}: {source}")]
    LayerEntryIo {
        layer: String,
        entry: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// No image has this reference or id.
    #[error("image {reference:?} not found")]
    NotFound { reference: String },
    /// An id prefix matches more than one image.
    #[error("image id prefix {prefix:?} is ambiguous: matches {candidates:?}")]
    AmbiguousId {
        prefix: String,
        candidates: Vec<String>,
    },
    /// An image's own metadata is missing from the store (store corrupted).
    #[error("image {image}: {what} blob {digest} is missing from the store; remove and re-import the image")]
    MissingBlob {
        image: String,
        what: &'static str,
        digest: String,
    },
    /// An image's unpacked layer is missing from the store (store corrupted).
    #[error(
        "image {image}: layer {diff_id} is not unpacked at {path}; remove and re-import the image"
    )]
    MissingLayer {
        image: String,
        diff_id: String,
        path: PathBuf,
    },
}

impl ImageError {
    /// Wraps an I/O error with the operation and path it concerns.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        ImageError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
