//! Reading the metadata of image archives: which images an archive holds,
//! what they are called, and where their manifest, config and layers are.
//!
//! Naming rules (documented for users in `ImageStore::load`):
//! - docker-archive: every `RepoTags` entry, normalised.
//! - OCI: `io.containerd.image.name` (a full reference) wins; otherwise
//!   `org.opencontainers.image.ref.name` is used as a full reference when it
//!   contains `/`, `:` or `@`, and as a bare tag otherwise (see `NameHint`).

use std::path::Path;

use oci_spec::image::{Descriptor, ImageIndex};
use serde::Deserialize;

use crate::digest::{digest_hex, sha256_of};
use crate::error::ImageError;
use crate::reference::{normalize_reference, valid_tag};
use crate::source::Source;

const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

pub(crate) const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Nested indexes deeper than this are refused (loops are impossible with
/// content addressing, but a bogus archive could still nest absurdly).
const MAX_INDEX_DEPTH: usize = 4;

/// The platform podhost runs images for: the one it was built for.
#[cfg(target_arch = "x86_64")]
pub(crate) const HOST_ARCH: &str = "amd64";
#[cfg(target_arch = "aarch64")]
pub(crate) const HOST_ARCH: &str = "arm64";
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) const HOST_ARCH: &str = std::env::consts::ARCH;
pub(crate) const HOST_OS: &str = "linux";

/// How the archive names one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NameHint {
    /// Full, normalised references.
    Full(Vec<String>),
    /// Only a tag (OCI `ref.name` like `latest`): needs a repository from
    /// the caller's `tag` argument.
    BareTag(String),
    /// No name at all.
    None,
}

/// One image found in an archive, not yet imported.
#[derive(Debug)]
pub(crate) struct Candidate {
    pub names: NameHint,
    pub kind: CandidateKind,
}

/// Where the image's metadata lives in the archive.
#[derive(Debug)]
pub(crate) enum CandidateKind {
    /// An OCI/Docker v2 manifest stored as a blob.
    Manifest { digest: String, size: u64 },
    /// A `docker save` manifest.json entry (no real manifest exists).
    Docker { config: String, layers: Vec<String> },
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OciLayout {
    image_layout_version: String,
}

/// The archive path of a blob named by a (validated) digest.
pub(crate) fn blob_name(digest: &str, context: &str) -> Result<String, ImageError> {
    Ok(format!("blobs/sha256/{}", digest_hex(digest, context)?))
}

/// Reads a JSON blob by digest from the archive and verifies digest and size.
pub(crate) fn read_verified_blob(
    src: &Source,
    digest: &str,
    size: u64,
) -> Result<Vec<u8>, ImageError> {
    let name = blob_name(digest, &src.path().display().to_string())?;
    let bytes = src.read_small(&name)?;
    if bytes.len() as u64 != size {
        return Err(ImageError::SizeMismatch {
            digest: digest.to_string(),
            expected: size,
            actual: bytes.len() as u64,
        });
    }
    let actual = sha256_of(&bytes);
    if actual != digest {
        return Err(ImageError::DigestMismatch {
            what: format!("blob {name} in {}", src.path().display()),
            expected: digest.to_string(),
            actual,
        });
    }
    Ok(bytes)
}

/// Lists the images of an archive, whichever its format.
pub(crate) fn candidates(src: &Source) -> Result<Vec<Candidate>, ImageError> {
    if src.exists("index.json") {
        oci_candidates(src)
    } else if src.exists("manifest.json") {
        docker_candidates(src)
    } else {
        Err(ImageError::UnknownFormat {
            path: src.path().to_path_buf(),
            reason: "neither index.json nor manifest.json found".to_string(),
        })
    }
}

fn docker_candidates(src: &Source) -> Result<Vec<Candidate>, ImageError> {
    let bytes = src.read_small("manifest.json")?;
    let entries: Vec<DockerManifestEntry> =
        serde_json::from_slice(&bytes).map_err(|e| ImageError::Json {
            path: src.path().join("manifest.json"),
            what: "docker-archive manifest.json".to_string(),
            source: e,
        })?;
    entries
        .into_iter()
        .map(|entry| {
            let tags = entry
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|t| normalize_reference(t))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Candidate {
                names: if tags.is_empty() {
                    NameHint::None
                } else {
                    NameHint::Full(tags)
                },
                kind: CandidateKind::Docker {
                    config: entry.config,
                    layers: entry.layers,
                },
            })
        })
        .collect()
}

fn oci_candidates(src: &Source) -> Result<Vec<Candidate>, ImageError> {
    if src.exists("oci-layout") {
        let bytes = src.read_small("oci-layout")?;
        let layout: OciLayout = serde_json::from_slice(&bytes).map_err(|e| ImageError::Json {
            path: src.path().join("oci-layout"),
            what: "oci-layout".to_string(),
            source: e,
        })?;
        if layout.image_layout_version != "1.0.0" {
            return Err(ImageError::UnsupportedLayoutVersion {
                path: src.path().to_path_buf(),
                version: layout.image_layout_version,
            });
        }
    }
    let bytes = src.read_small("index.json")?;
    let index = parse_index(&bytes, &src.path().join("index.json"))?;
    let mut out = Vec::new();
    let mut skipped = None;
    for desc in index.manifests() {
        let names = names_of(desc)?;
        match select_manifest(src, desc, 0)? {
            Some((digest, size)) => out.push(Candidate {
                names,
                kind: CandidateKind::Manifest { digest, size },
            }),
            None => {
                skipped.get_or_insert_with(|| desc.digest().to_string());
            }
        }
    }
    // Entries for other platforms are skipped silently as long as something
    // runnable here was found; an archive with nothing for us is an error.
    if let (true, Some(digest)) = (out.is_empty(), skipped) {
        return Err(ImageError::NoMatchingPlatform {
            archive: src.path().to_path_buf(),
            digest,
        });
    }
    Ok(out)
}

fn parse_index(bytes: &[u8], path: &Path) -> Result<ImageIndex, ImageError> {
    ImageIndex::from_reader(bytes).map_err(|e| ImageError::OciSpec {
        what: format!("{}: invalid image index", path.display()),
        source: e,
    })
}

/// The names an index entry's annotations give.
fn names_of(desc: &Descriptor) -> Result<NameHint, ImageError> {
    let Some(annotations) = desc.annotations() else {
        return Ok(NameHint::None);
    };
    if let Some(full) = annotations.get(ANNOTATION_CONTAINERD_NAME) {
        return Ok(NameHint::Full(vec![normalize_reference(full)?]));
    }
    match annotations.get(ANNOTATION_REF_NAME) {
        Some(r) if r.contains(['/', ':', '@']) => Ok(NameHint::Full(vec![normalize_reference(r)?])),
        Some(r) if valid_tag(r) => Ok(NameHint::BareTag(r.clone())),
        Some(r) => Ok(NameHint::Full(vec![normalize_reference(r)?])),
        None => Ok(NameHint::None),
    }
}

/// True when a descriptor's platform (if any) is this host's.
pub(crate) fn platform_matches(desc: &Descriptor) -> bool {
    desc.platform()
        .as_ref()
        .is_none_or(|p| p.os().to_string() == HOST_OS && p.architecture().to_string() == HOST_ARCH)
}

/// Follows an index entry down to one image manifest for this platform.
/// `None` when the entry is for another platform or is not an image.
fn select_manifest(
    src: &Source,
    desc: &Descriptor,
    depth: usize,
) -> Result<Option<(String, u64)>, ImageError> {
    let media_type = desc.media_type().to_string();
    let digest = desc.digest().to_string();
    match media_type.as_str() {
        MT_OCI_MANIFEST | MT_DOCKER_MANIFEST => {
            if platform_matches(desc) {
                Ok(Some((digest, desc.size())))
            } else {
                Ok(None)
            }
        }
        MT_OCI_INDEX | MT_DOCKER_LIST => {
            if depth >= MAX_INDEX_DEPTH {
                return Err(ImageError::BadArchiveEntry {
                    archive: src.path().to_path_buf(),
                    entry: digest,
                    reason: "image indexes nested too deeply",
                });
            }
            let bytes = read_verified_blob(src, &digest, desc.size())?;
            let index = parse_index(&bytes, &src.path().join(blob_name(&digest, "index")?))?;
            // Entries with an explicit matching platform come first; an
            // entry without platform is only taken when nothing else fits.
            let mut fallback = None;
            for child in index.manifests() {
                // Attestations and signatures carry unknown/unknown platforms
                // and are filtered out by the platform check.
                let explicit = child.platform().is_some();
                if let Some(found) = select_manifest(src, child, depth + 1)? {
                    if explicit {
                        return Ok(Some(found));
                    }
                    fallback.get_or_insert(found);
                }
            }
            Ok(fallback)
        }
        // Artifacts (signatures, SBOMs) are not runnable images.
        _ => Ok(None),
    }
}
