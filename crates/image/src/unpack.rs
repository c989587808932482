//! Unpacking one layer tar into a directory usable as an overlayfs lowerdir.
//!
//! The `tar` crate's own `unpack` is not used: it does not convert OCI
//! whiteouts to overlay whiteouts, and we want full control over how paths
//! are resolved. Every entry is written relative to the layer root; parents
//! are checked with `lstat` so no symlink inside the layer is ever followed
//! (the directory is private to this unpack, so nothing can race the check),
//! and files are created with `O_NOFOLLOW | O_EXCL`.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use tar::EntryType;

use crate::digest::HashingReader;
use crate::error::ImageError;

/// Copy `src` into `dst`, seeking over all-zero chunks instead of writing them, then
/// fix the length: the result reads the same but its zero runs are holes.
fn copy_sparse(src: &mut impl Read, dst: &mut File) -> io::Result<u64> {
    use std::io::{Seek, SeekFrom, Write};
    let mut buf = vec![0u8; HOLE_CHUNK];
    let mut total = 0u64;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match src.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            break;
        }
        if buf[..filled].iter().all(|b| *b == 0) {
            dst.seek(SeekFrom::Current(filled as i64))?;
        } else {
            dst.write_all(&buf[..filled])?;
        }
        total += filled as u64;
        if filled < buf.len() {
            break;
        }
    }
    // A trailing hole is only recorded by the length.
    dst.set_len(total)?;
    Ok(total)
}

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const PAX_XATTR_PREFIX: &str = "SCHILY.xattr.";
/// Largest file a layer may hold (apparent size). Real images stay far below it; a
/// crafted entry (e.g. a GNU sparse file claiming terabytes) is refused up front.
const MAX_ENTRY_SIZE: u64 = 64 << 30;
/// Zero runs of this size are written as holes, so a file of zeros (a decompression
/// bomb, or an expanded sparse entry) costs no disk blocks.
const HOLE_CHUNK: usize = 64 << 10;

/// Compression of a layer blob, detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Detects gzip (`1f 8b`) and zstd (`28 b5 2f fd`); anything else is taken
    /// as a plain tar (the tar parser reports it if it is not one).
    pub fn detect(magic: &[u8]) -> Compression {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The OCI layer media type for this compression.
    pub fn oci_media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// Reads the first bytes of a file to detect its compression.
pub(crate) fn detect_file_compression(path: &Path) -> Result<Compression, ImageError> {
    let mut file = File::open(path).map_err(|e| ImageError::io("open", path, e))?;
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < magic.len() {
        match file.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ImageError::io("read", path, e)),
        }
    }
    Ok(Compression::detect(&magic[..got]))
}

/// Unpacks the (possibly compressed) layer blob at `blob` into the empty
/// directory `dest`, converting whiteouts, and checks that the uncompressed
/// stream hashes to `diff_id`. On error `dest` may hold partial content; the
/// caller removes it.
pub(crate) fn unpack_layer(blob: &Path, dest: &Path, diff_id: &str) -> Result<(), ImageError> {
    let file = File::open(blob).map_err(|e| ImageError::io("open", blob, e))?;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let magic = reader
        .fill_buf()
        .map_err(|e| ImageError::io("read", blob, e))?;
    let stream: Box<dyn Read> = match Compression::detect(magic) {
        Compression::None => Box::new(reader),
        // Multi-member gzip is legal and produced by some parallel compressors.
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(reader).map_err(
            |e| ImageError::LayerStream {
                layer: diff_id.to_string(),
                source: e,
            },
        )?),
    };
    let mut archive = tar::Archive::new(HashingReader::new(stream));
    let mut unpacker = Unpacker {
        root: dest,
        layer: diff_id,
        dir_times: Vec::new(),
    };
    let stream_err = |e| ImageError::LayerStream {
        layer: diff_id.to_string(),
        source: e,
    };
    for entry in archive.entries().map_err(stream_err)? {
        let entry = entry.map_err(stream_err)?;
        unpacker.entry(entry)?;
    }
    unpacker.finish()?;
    // The diff_id covers the whole uncompressed stream, end-of-archive blocks
    // included, so drain what the tar reader did not consume.
    let (actual, _) = archive.into_inner().finish().map_err(stream_err)?;
    if actual != diff_id {
        return Err(ImageError::DigestMismatch {
            what: format!("uncompressed layer {}", blob.display()),
            expected: diff_id.to_string(),
            actual,
        });
    }
    Ok(())
}

/// Metadata common to all entry kinds, collected before the data is read.
struct Meta {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: (i64, i64),
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

struct Unpacker<'a> {
    root: &'a Path,
    layer: &'a str,
    /// Directory mtimes are set last: creating children changes them.
    dir_times: Vec<(PathBuf, (i64, i64))>,
}

impl Unpacker<'_> {
    fn unsafe_entry(&self, entry: &Path, reason: &'static str) -> ImageError {
        ImageError::UnsafeLayerEntry {
            layer: self.layer.to_string(),
            entry: entry.display().to_string(),
            reason,
        }
    }

    fn entry_io(&self, entry: &Path, op: &'static str) -> impl Fn(io::Error) -> ImageError + '_ {
        let entry = entry.display().to_string();
        move |source| ImageError::LayerEntryIo {
            layer: self.layer.to_string(),
            entry: entry.clone(),
            op,
            source,
        }
    }

    /// Makes a tar path relative and clean; `..` is refused outright rather
    /// than resolved, because no legitimate layer needs it.
    fn sanitize(&self, raw: &Path) -> Result<PathBuf, ImageError> {
        let mut rel = PathBuf::new();
        for component in raw.components() {
            match component {
                Component::Normal(c) => rel.push(c),
                Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
                Component::ParentDir => {
                    return Err(self.unsafe_entry(raw, "path contains a '..' component"))
                }
            }
        }
        Ok(rel)
    }

    /// Ensures every parent of `rel` is a real directory under the root,
    /// creating missing ones (tars may omit directory entries) when `create`.
    fn check_parents(&self, rel: &Path, create: bool) -> Result<(), ImageError> {
        let mut cur = self.root.to_path_buf();
        let Some(parent) = rel.parent() else {
            return Ok(());
        };
        for component in parent.components() {
            cur.push(component);
            match fs::symlink_metadata(&cur) {
                Ok(m) if m.file_type().is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(self.unsafe_entry(rel, "path passes through a symlink"))
                }
                Ok(_) => return Err(self.unsafe_entry(rel, "a parent is not a directory")),
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    fs::DirBuilder::new()
                        .mode(0o755)
                        .create(&cur)
                        .map_err(self.entry_io(rel, "mkdir parent"))?;
                }
                Err(e) => return Err(self.entry_io(rel, "lstat parent")(e)),
            }
        }
        Ok(())
    }

    /// Removes whatever is at `path` (tar semantics: a later entry replaces an
    /// earlier one), except a directory that is to stay a directory.
    /// Returns true when an existing directory was kept.
    fn clear(&self, rel: &Path, path: &Path, keep_dir: bool) -> Result<bool, ImageError> {
        match fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_dir() => {
                if keep_dir {
                    return Ok(true);
                }
                fs::remove_dir_all(path).map_err(self.entry_io(rel, "remove existing dir"))?;
            }
            Ok(_) => fs::remove_file(path).map_err(self.entry_io(rel, "remove existing"))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.entry_io(rel, "lstat")(e)),
        }
        Ok(false)
    }

    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), ImageError> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        let raw = entry
            .path()
            .map_err(|e| ImageError::LayerStream {
                layer: self.layer.to_string(),
                source: e,
            })?
            .into_owned();
        let rel = self.sanitize(&raw)?;
        let meta = self.meta(&mut entry, &rel)?;

        let Some(name) = rel.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            // The layer root itself (`./`): keep its mode and owner; it is
            // created by us, so nothing else needs doing.
            if kind.is_dir() {
                self.apply_meta(&rel, self.root, &meta, false)?;
                self.dir_times.push((self.root.to_path_buf(), meta.mtime));
            }
            return Ok(());
        };

        if name == OPAQUE_MARKER {
            return self.opaque(&rel);
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            // `.wh..wh.*` other than the opaque marker are aufs bookkeeping.
            if hidden.starts_with(WHITEOUT_PREFIX) {
                return Ok(());
            }
            return self.whiteout(&rel, hidden);
        }

        self.check_parents(&rel, true)?;
        let path = self.root.join(&rel);
        match kind {
            EntryType::Directory => {
                if !self.clear(&rel, &path, true)? {
                    fs::DirBuilder::new()
                        .mode(0o700)
                        .create(&path)
                        .map_err(self.entry_io(&rel, "mkdir"))?;
                }
                self.apply_meta(&rel, &path, &meta, false)?;
                self.dir_times.push((path, meta.mtime));
            }
            // The tar crate expands GNU sparse data when reading, so the
            // content copied below is complete for sparse entries too.
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.clear(&rel, &path, false)?;
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(&path)
                    .map_err(self.entry_io(&rel, "create"))?;
                if entry.size() > MAX_ENTRY_SIZE {
                    drop(file);
                    let _ = fs::remove_file(&path);
                    return Err(self.unsafe_entry(&rel, "file larger than 64 GiB"));
                }
                copy_sparse(&mut entry, &mut file).map_err(self.entry_io(&rel, "write"))?;
                drop(file);
                self.apply_meta(&rel, &path, &meta, false)?;
                self.set_times(&rel, &path, meta.mtime)?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(self.entry_io(&rel, "read link name"))?
                    .ok_or_else(|| self.unsafe_entry(&rel, "symlink without a target"))?
                    .into_owned();
                self.clear(&rel, &path, false)?;
                // The target is stored verbatim: it is only resolved inside the
                // container's root, never by us.
                std::os::unix::fs::symlink(&target, &path)
                    .map_err(self.entry_io(&rel, "symlink"))?;
                self.apply_meta(&rel, &path, &meta, true)?;
                self.set_times(&rel, &path, meta.mtime)?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(self.entry_io(&rel, "read link name"))?
                    .ok_or_else(|| self.unsafe_entry(&rel, "hard link without a target"))?
                    .into_owned();
                let target_rel = self.sanitize(&target)?;
                if target_rel.as_os_str().is_empty() {
                    return Err(self.unsafe_entry(&rel, "hard link to the layer root"));
                }
                self.check_parents(&target_rel, false)?;
                let target_path = self.root.join(&target_rel);
                match fs::symlink_metadata(&target_path) {
                    Ok(m) if m.file_type().is_dir() => {
                        return Err(self.unsafe_entry(&rel, "hard link to a directory"))
                    }
                    Ok(_) => {}
                    Err(_) => {
                        return Err(self.unsafe_entry(
                            &rel,
                            "hard link target is not an earlier entry of this layer",
                        ))
                    }
                }
                if target_path == path {
                    return Ok(());
                }
                self.clear(&rel, &path, false)?;
                // link(2) does not follow a symlink in its last component, so
                // a link to a symlink links the symlink itself.
                fs::hard_link(&target_path, &path).map_err(self.entry_io(&rel, "link"))?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (file_type, dev) = match kind {
                    EntryType::Fifo => (libc::S_IFIFO, 0),
                    _ => {
                        let major = entry
                            .header()
                            .device_major()
                            .map_err(self.entry_io(&rel, "device major"))?
                            .unwrap_or(0);
                        let minor = entry
                            .header()
                            .device_minor()
                            .map_err(self.entry_io(&rel, "device minor"))?
                            .unwrap_or(0);
                        let t = if kind == EntryType::Char {
                            libc::S_IFCHR
                        } else {
                            libc::S_IFBLK
                        };
                        (t, libc::makedev(major, minor))
                    }
                };
                self.clear(&rel, &path, false)?;
                mknod(&path, file_type | 0o600, dev).map_err(self.entry_io(&rel, "mknod"))?;
                self.apply_meta(&rel, &path, &meta, false)?;
                self.set_times(&rel, &path, meta.mtime)?;
            }
            _ => {
                return Err(self.unsafe_entry(&rel, "unsupported tar entry type"));
            }
        }
        Ok(())
    }

    /// Collects mode, owner, mtime and xattrs, PAX values taking precedence.
    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>, rel: &Path) -> Result<Meta, ImageError> {
        let header = entry.header();
        let mut meta = Meta {
            mode: header.mode().map_err(self.entry_io(rel, "mode"))? & 0o7777,
            uid: header.uid().map_err(self.entry_io(rel, "uid"))?,
            gid: header.gid().map_err(self.entry_io(rel, "gid"))?,
            mtime: (
                header.mtime().map_err(self.entry_io(rel, "mtime"))? as i64,
                0,
            ),
            xattrs: Vec::new(),
        };
        if let Some(exts) = entry
            .pax_extensions()
            .map_err(self.entry_io(rel, "pax headers"))?
        {
            for ext in exts {
                let ext = ext.map_err(self.entry_io(rel, "pax headers"))?;
                let key = ext.key_bytes();
                let value = ext.value_bytes();
                if let Some(name) = key.strip_prefix(PAX_XATTR_PREFIX.as_bytes()) {
                    // A layer must not smuggle overlay metadata (redirects,
                    // opaque flags, metacopy) into a lowerdir; whiteouts are
                    // expressed with `.wh.` names only.
                    if !name.starts_with(b"trusted.overlay.") {
                        meta.xattrs.push((name.to_vec(), value.to_vec()));
                    }
                    continue;
                }
                let text = std::str::from_utf8(value).unwrap_or("");
                match key {
                    b"uid" => meta.uid = text.parse().unwrap_or(meta.uid),
                    b"gid" => meta.gid = text.parse().unwrap_or(meta.gid),
                    b"mtime" => {
                        if let Some(t) = parse_pax_time(text) {
                            meta.mtime = t;
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(meta)
    }

    /// Owner, then mode (chown clears set-id bits), then xattrs.
    fn apply_meta(
        &self,
        rel: &Path,
        path: &Path,
        meta: &Meta,
        is_symlink: bool,
    ) -> Result<(), ImageError> {
        let uid =
            u32::try_from(meta.uid).map_err(|_| self.unsafe_entry(rel, "uid out of range"))?;
        let gid =
            u32::try_from(meta.gid).map_err(|_| self.unsafe_entry(rel, "gid out of range"))?;
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
            .map_err(self.entry_io(rel, "chown"))?;
        if !is_symlink {
            // The path is a file, dir or node we just created, never a symlink,
            // so chmod following links is safe here.
            fs::set_permissions(path, fs::Permissions::from_mode(meta.mode))
                .map_err(self.entry_io(rel, "chmod"))?;
        }
        for (name, value) in &meta.xattrs {
            match lsetxattr(path, name, value) {
                Ok(()) => {}
                // Linux refuses user.* xattrs on symlinks; tars made on
                // other systems may still carry them. Nothing reads them.
                Err(e) if is_symlink && e.raw_os_error() == Some(libc::EPERM) => {}
                Err(e) => return Err(self.entry_io(rel, "setxattr")(e)),
            }
        }
        Ok(())
    }

    fn set_times(&self, rel: &Path, path: &Path, mtime: (i64, i64)) -> Result<(), ImageError> {
        lutimes(path, mtime).map_err(self.entry_io(rel, "set mtime"))
    }

    /// `.wh.<name>` → a 0:0 character device `<name>`, overlayfs' whiteout.
    fn whiteout(&mut self, rel: &Path, hidden: &str) -> Result<(), ImageError> {
        if hidden.is_empty() || hidden == "." || hidden == ".." {
            return Err(self.unsafe_entry(rel, "whiteout of an invalid name"));
        }
        self.check_parents(rel, true)?;
        let target_rel = rel.with_file_name(hidden);
        let path = self.root.join(&target_rel);
        self.clear(&target_rel, &path, false)?;
        mknod(&path, libc::S_IFCHR, libc::makedev(0, 0))
            .map_err(self.entry_io(rel, "mknod whiteout"))?;
        Ok(())
    }

    /// `.wh..wh..opq` → `trusted.overlay.opaque=y` on the containing directory.
    fn opaque(&mut self, rel: &Path) -> Result<(), ImageError> {
        self.check_parents(rel, true)?;
        let dir = match rel.parent() {
            Some(p) if !p.as_os_str().is_empty() => self.root.join(p),
            // An opaque root makes no sense for a lowerdir; overlay would
            // ignore it on the root anyway.
            _ => return Ok(()),
        };
        lsetxattr(&dir, OVERLAY_OPAQUE_XATTR.as_bytes(), b"y")
            .map_err(self.entry_io(rel, "set trusted.overlay.opaque"))
    }

    fn finish(&mut self) -> Result<(), ImageError> {
        for (path, mtime) in self.dir_times.iter().rev() {
            lutimes(path, *mtime).map_err(|e| ImageError::LayerEntryIo {
                layer: self.layer.to_string(),
                entry: path.display().to_string(),
                op: "set dir mtime",
                source: e,
            })?;
        }
        Ok(())
    }
}

/// Parses a PAX time (`secs[.frac]`, possibly negative) into (secs, nanos).
fn parse_pax_time(text: &str) -> Option<(i64, i64)> {
    let (secs, frac) = match text.split_once('.') {
        Some((s, f)) => (s, f),
        None => (text, ""),
    };
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: i64 = 0;
    for (i, c) in frac.chars().take(9).enumerate() {
        let d = c.to_digit(10)? as i64;
        nanos += d * 10i64.pow(8 - i as u32);
    }
    // In a negative time the fraction counts downwards too: -1.5 is -2 + 0.5.
    if text.starts_with('-') && nanos > 0 {
        return Some((secs - 1, 1_000_000_000 - nanos));
    }
    Some((secs, nanos))
}

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

fn mknod(path: &Path, mode: libc::mode_t, dev: libc::dev_t) -> io::Result<()> {
    let p = cpath(path)?;
    // SAFETY: `p` is a valid NUL-terminated string for the duration of the call.
    if unsafe { libc::mknod(p.as_ptr(), mode, dev) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn lsetxattr(path: &Path, name: &[u8], value: &[u8]) -> io::Result<()> {
    let p = cpath(path)?;
    let n = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "xattr name contains NUL"))?;
    // SAFETY: both strings are NUL-terminated and `value` is valid for its length.
    let rc = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn lutimes(path: &Path, (secs, nanos): (i64, i64)) -> io::Result<()> {
    let p = cpath(path)?;
    let t = libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: nanos as _,
    };
    let times = [t, t];
    // SAFETY: `p` is NUL-terminated and `times` holds the two required entries.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            p.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_compression() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(b"bin/"), Compression::None);
        assert_eq!(Compression::detect(b""), Compression::None);
    }

    #[test]
    fn parses_pax_times() {
        assert_eq!(parse_pax_time("12"), Some((12, 0)));
        assert_eq!(parse_pax_time("12.5"), Some((12, 500_000_000)));
        assert_eq!(parse_pax_time("1.000000001"), Some((1, 1)));
        assert_eq!(parse_pax_time("-1.5"), Some((-2, 500_000_000)));
        assert_eq!(parse_pax_time("x"), None);
    }
}
