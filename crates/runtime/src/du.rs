//! Disk usage of a directory tree a container can write to (its writable layer, its
//! logs, an emptyDir), measured the way a hostile tree cannot abuse: directories are
//! opened relative to their parent's descriptor with `O_NOFOLLOW`, so swapping a
//! directory for a symlink mid-walk cannot send the walk onto the host; allocated blocks
//! are counted (a sparse file of 1 TiB apparent size costs what it uses); a file with
//! several hard links counts once; other filesystems are not entered; and the work is
//! bounded (entries and depth), the result then marked incomplete (a lower bound).
//! Blocking: run it on a blocking thread, never on the async runtime.

use std::collections::HashSet;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode, SFlag};

/// What one walk found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes of allocated blocks (`st_blocks × 512`), the directories' own included.
    pub bytes: u64,
    /// Files, directories and other entries below the root (the root not counted).
    pub inodes: u64,
    /// False when a bound stopped the walk or a directory could not be opened: the
    /// numbers are then a lower bound.
    pub complete: bool,
}

/// Bounds on one walk.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// At most this many entries are examined.
    pub entries: u64,
    /// Directories deeper than this are not entered (each level holds a descriptor).
    pub depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // A million entries is a second or two of fstatat: a tree of millions of files
        // is then reported as at least what was counted, and the next walk starts over.
        Limits {
            entries: 1_000_000,
            depth: 512,
        }
    }
}

/// Usage of the tree at `root`; `None` when `root` is missing or not a directory (a
/// symlink at `root` itself is not followed either).
pub fn usage(root: &Path, limits: Limits) -> Option<Usage> {
    let fd = open_dir(None, root.as_os_str()).ok()?;
    let root_stat = fstat(fd.as_raw_fd()).ok()?;
    let mut walk = Walk {
        dev: root_stat.st_dev,
        limits,
        seen_links: HashSet::new(),
        out: Usage {
            bytes: block_bytes(&root_stat),
            inodes: 0,
            complete: true,
        },
    };
    walk.dir(&fd, 0);
    Some(walk.out)
}

struct Walk {
    dev: u64,
    limits: Limits,
    /// (dev, inode) of files with more than one link, counted once.
    seen_links: HashSet<(u64, u64)>,
    out: Usage,
}

/// Opens the directory `name` (relative to `dir` when given) without following a
/// symlink in its last component.
fn open_dir(dir: Option<RawFd>, name: &std::ffi::OsStr) -> nix::Result<OwnedFd> {
    let fd = openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn block_bytes(st: &FileStat) -> u64 {
    u64::try_from(st.st_blocks).unwrap_or(0).saturating_mul(512)
}

impl Walk {
    /// Count the entries of the open directory `dir` and descend into its
    /// subdirectories (depth first: the descriptors held are one per level).
    fn dir(&mut self, dir: &OwnedFd, depth: usize) {
        // The directory is read through its descriptor: /proc/self/fd/N names the very
        // directory opened, whatever its path has become since.
        let names: Vec<std::ffi::OsString> =
            match std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd())) {
                Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.file_name())).collect(),
                Err(_) => {
                    self.out.complete = false;
                    return;
                }
            };
        for name in names {
            if self.out.inodes >= self.limits.entries {
                self.out.complete = false;
                return;
            }
            let Ok(st) = fstatat(
                Some(dir.as_raw_fd()),
                name.as_os_str(),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            ) else {
                // Removed since it was listed.
                continue;
            };
            self.out.inodes += 1;
            let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
            let is_dir = kind == SFlag::S_IFDIR;
            if !is_dir && st.st_nlink > 1 && !self.seen_links.insert((st.st_dev, st.st_ino)) {
                continue;
            }
            self.out.bytes = self.out.bytes.saturating_add(block_bytes(&st));
            if !is_dir || st.st_dev != self.dev {
                continue;
            }
            if depth + 1 > self.limits.depth {
                self.out.complete = false;
                continue;
            }
            match open_dir(Some(dir.as_raw_fd()), name.as_os_str()) {
                Ok(fd) => self.dir(&fd, depth + 1),
                // Swapped for a symlink or removed since it was examined, or out of
                // descriptors: not followed, not counted further.
                Err(_) => self.out.complete = false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_files_and_dirs_by_blocks() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        std::fs::write(d.path().join("a/b/f"), vec![1u8; 100_000]).unwrap();
        std::fs::write(d.path().join("g"), b"xyz").unwrap();
        let u = usage(d.path(), Limits::default()).unwrap();
        assert_eq!(u.inodes, 4);
        assert!(u.complete);
        assert!(u.bytes >= 100_000, "{u:?}");
        assert_eq!(usage(&d.path().join("missing"), Limits::default()), None);
    }

    #[test]
    fn symlinks_are_not_followed() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("big"), vec![1u8; 1_000_000]).unwrap();
        let d = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("dir-link")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("big"), d.path().join("file-link")).unwrap();
        let u = usage(d.path(), Limits::default()).unwrap();
        assert_eq!(u.inodes, 2);
        assert!(u.bytes < 100_000, "the linked file was counted: {u:?}");
        // The root itself a symlink: not walked.
        let root_link = d.path().join("dir-link");
        assert_eq!(usage(&root_link, Limits::default()), None);
    }

    #[test]
    fn hard_links_count_once() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("f"), vec![1u8; 1_000_000]).unwrap();
        let one = usage(d.path(), Limits::default()).unwrap();
        for i in 0..20 {
            std::fs::hard_link(d.path().join("f"), d.path().join(format!("l{i}"))).unwrap();
        }
        let many = usage(d.path(), Limits::default()).unwrap();
        assert_eq!(many.inodes, 21);
        assert_eq!(many.bytes, one.bytes, "hard links counted again");
    }

    #[test]
    fn sparse_files_count_what_they_use() {
        let d = tempfile::tempdir().unwrap();
        let f = std::fs::File::create(d.path().join("sparse")).unwrap();
        f.set_len(1 << 40).unwrap();
        let u = usage(d.path(), Limits::default()).unwrap();
        assert!(u.bytes < 1 << 20, "{u:?}");
    }

    #[test]
    fn bounds_stop_the_walk_and_say_so() {
        let d = tempfile::tempdir().unwrap();
        for i in 0..50 {
            std::fs::write(d.path().join(format!("f{i}")), b"x").unwrap();
        }
        let u = usage(
            d.path(),
            Limits {
                entries: 10,
                depth: 512,
            },
        )
        .unwrap();
        assert_eq!(u.inodes, 10);
        assert!(!u.complete);
        let mut deep = d.path().join("deep");
        for _ in 0..5 {
            deep.push("d");
        }
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("f"), vec![1u8; 100_000]).unwrap();
        let shallow = usage(
            &d.path().join("deep"),
            Limits {
                entries: 1000,
                depth: 2,
            },
        )
        .unwrap();
        assert!(!shallow.complete);
        assert!(shallow.bytes < 100_000, "{shallow:?}");
    }
}
