//! Random access to the files of an image archive, whether it is a directory
//! (OCI layout) or a tar (OCI archive, `docker save`).
//!
//! A tar is indexed once (name → data offset) and entries are then read in
//! place with seek, so a multi-gigabyte archive is never copied to a
//! temporary directory.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use crate::error::ImageError;
use crate::unpack::{detect_file_compression, Compression};

/// Limit for JSON documents (manifests, indexes, configs): real ones are a
/// few KiB; this only stops a bogus archive from exhausting memory.
pub(crate) const MAX_JSON: u64 = 64 * 1024 * 1024;

/// Symlink hops followed inside a tar before giving up (loops).
const MAX_LINK_HOPS: usize = 16;

#[derive(Debug)]
pub(crate) enum TarItem {
    File { offset: u64, size: u64 },
    Symlink(PathBuf),
    HardLink(String),
    Dir,
}

/// An image archive whose entries can be opened by name.
#[derive(Debug)]
pub(crate) enum Source {
    Dir(PathBuf),
    Tar {
        path: PathBuf,
        entries: HashMap<String, TarItem>,
    },
}

impl Source {
    /// Opens a directory or indexes a tar file.
    pub fn open(path: &Path) -> Result<Source, ImageError> {
        let meta = std::fs::metadata(path).map_err(|e| ImageError::io("stat", path, e))?;
        if meta.is_dir() {
            return Ok(Source::Dir(path.to_path_buf()));
        }
        match detect_file_compression(path)? {
            Compression::Gzip => {
                return Err(ImageError::CompressedArchive {
                    path: path.to_path_buf(),
                    compression: "gzip",
                })
            }
            Compression::Zstd => {
                return Err(ImageError::CompressedArchive {
                    path: path.to_path_buf(),
                    compression: "zstd",
                })
            }
            Compression::None => {}
        }
        let file = File::open(path).map_err(|e| ImageError::io("open", path, e))?;
        let mut archive = tar::Archive::new(file);
        let not_tar = |e: io::Error| ImageError::UnknownFormat {
            path: path.to_path_buf(),
            reason: format!("not a readable tar: {e}"),
        };
        let mut entries = HashMap::new();
        for entry in archive.entries_with_seek().map_err(not_tar)? {
            let entry = entry.map_err(not_tar)?;
            let raw = entry.path().map_err(not_tar)?.into_owned();
            let bad = |reason| ImageError::BadArchiveEntry {
                archive: path.to_path_buf(),
                entry: raw.display().to_string(),
                reason,
            };
            let Some(name) = clean_name(&raw) else {
                return Err(bad("path leaves the archive root"));
            };
            let kind = entry.header().entry_type();
            let item = if kind.is_file() || kind == tar::EntryType::Continuous {
                TarItem::File {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                }
            } else if kind.is_dir() {
                TarItem::Dir
            } else if kind.is_symlink() {
                let target = entry
                    .link_name()
                    .map_err(not_tar)?
                    .ok_or_else(|| bad("symlink without a target"))?;
                TarItem::Symlink(target.into_owned())
            } else if kind.is_hard_link() {
                let target = entry
                    .link_name()
                    .map_err(not_tar)?
                    .ok_or_else(|| bad("hard link without a target"))?;
                let target = clean_name(&target).ok_or_else(|| bad("link leaves the archive"))?;
                TarItem::HardLink(target)
            } else {
                // Devices, fifos, sparse files: never part of an image archive.
                continue;
            };
            entries.insert(name, item);
        }
        Ok(Source::Tar {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// The archive's path, for messages.
    pub fn path(&self) -> &Path {
        match self {
            Source::Dir(p) => p,
            Source::Tar { path, .. } => path,
        }
    }

    /// True when `name` exists (as a file) in the archive.
    pub fn exists(&self, name: &str) -> bool {
        match self {
            Source::Dir(dir) => clean_name(Path::new(name)).is_some_and(|n| dir.join(n).is_file()),
            Source::Tar { path, entries } => resolve(path, entries, name).is_ok(),
        }
    }

    /// Opens the file `name`; returns a reader and the file's size.
    pub fn open_entry(&self, name: &str) -> Result<(Box<dyn Read>, u64), ImageError> {
        match self {
            Source::Dir(dir) => {
                let rel =
                    clean_name(Path::new(name)).ok_or_else(|| ImageError::BadArchiveEntry {
                        archive: dir.clone(),
                        entry: name.to_string(),
                        reason: "path leaves the image directory",
                    })?;
                let path = dir.join(rel);
                let file = File::open(&path).map_err(|e| {
                    if e.kind() == io::ErrorKind::NotFound {
                        ImageError::MissingEntry {
                            archive: dir.clone(),
                            entry: name.to_string(),
                        }
                    } else {
                        ImageError::io("open", &path, e)
                    }
                })?;
                let size = file
                    .metadata()
                    .map_err(|e| ImageError::io("stat", &path, e))?
                    .len();
                Ok((Box::new(file), size))
            }
            Source::Tar { path, entries } => {
                let (offset, size) = resolve(path, entries, name)?;
                let mut file = File::open(path).map_err(|e| ImageError::io("open", path, e))?;
                file.seek(SeekFrom::Start(offset))
                    .map_err(|e| ImageError::io("seek", path, e))?;
                Ok((Box::new(file.take(size)), size))
            }
        }
    }

    /// Reads a small file (JSON) fully, refusing anything over `MAX_JSON`.
    pub fn read_small(&self, name: &str) -> Result<Vec<u8>, ImageError> {
        let (mut reader, size) = self.open_entry(name)?;
        if size > MAX_JSON {
            return Err(ImageError::BadArchiveEntry {
                archive: self.path().to_path_buf(),
                entry: name.to_string(),
                reason: "metadata file larger than 64 MiB",
            });
        }
        let mut buf = Vec::with_capacity(size as usize);
        reader
            .read_to_end(&mut buf)
            .map_err(|e| ImageError::io("read", self.path().join(name), e))?;
        Ok(buf)
    }
}

/// Follows symlinks and hard links inside a tar to a regular file's
/// `(offset, size)`.
fn resolve(
    path: &Path,
    entries: &HashMap<String, TarItem>,
    name: &str,
) -> Result<(u64, u64), ImageError> {
    let missing = || ImageError::MissingEntry {
        archive: path.to_path_buf(),
        entry: name.to_string(),
    };
    let bad = |reason| ImageError::BadArchiveEntry {
        archive: path.to_path_buf(),
        entry: name.to_string(),
        reason,
    };
    let mut current = clean_name(Path::new(name)).ok_or_else(missing)?;
    for _ in 0..MAX_LINK_HOPS {
        match entries.get(&current).ok_or_else(missing)? {
            TarItem::File { offset, size } => return Ok((*offset, *size)),
            TarItem::Dir => return Err(bad("is a directory")),
            TarItem::HardLink(target) => current = target.clone(),
            TarItem::Symlink(target) => {
                // `docker save` links duplicate layers as `../<id>/layer.tar`;
                // resolve relative to the link's directory, within the archive.
                let base = Path::new(&current)
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default();
                let joined = if target.is_absolute() {
                    target.clone()
                } else {
                    base.join(target)
                };
                current = clean_name(&joined).ok_or_else(|| bad("symlink leaves the archive"))?;
            }
        }
    }
    Err(bad("too many levels of links"))
}

/// Normalises an archive path (`./a/../b` → `b`); `None` if it climbs above
/// the root.
fn clean_name(path: &Path) -> Option<String> {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(c) => parts.push(c),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    let joined: PathBuf = parts.iter().collect();
    Some(joined.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_names() {
        assert_eq!(clean_name(Path::new("./a/b")).as_deref(), Some("a/b"));
        assert_eq!(clean_name(Path::new("/a/../b")).as_deref(), Some("b"));
        assert_eq!(clean_name(Path::new("../x")), None);
    }
}
