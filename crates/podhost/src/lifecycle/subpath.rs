//! subPath mounts that cannot leave their volume (kubelet's CVE-2017-1002101 and
//! CVE-2021-25741 fixes, done with openat2).
//!
//! A container that can write to a volume can swap any path in it for a symlink at any
//! moment. So the subPath is never handed on as a path string to be resolved again:
//! the kernel resolves it once, beneath the volume's directory (`RESOLVE_BENEATH`: a
//! symlink leading out fails with EXDEV, one that stays in, like a configMap key's
//! `key -> ..data/key`, is followed), missing directories are made with `mkdirat`
//! relative to directories opened the same way, and the resulting `O_PATH` descriptor
//! is bind mounted (through `/proc/self/fd/N`, which names that very inode) onto a
//! daemon-private mount point:
//!
//! ```text
//! <volumes_root>/volume-subpaths/<volume>/<container>/<index of the volumeMount>
//! ```
//!
//! The container's mount source is that point: nothing a container does afterwards can
//! redirect it, and no container sees the directory (it is beside the volumes, never
//! inside one). The points of a container are replaced when it is created again, and
//! all of a pod's go when it finishes or is deleted; the pod's volume teardown (also the
//! daemon's start-time cleanup after a crash) unmounts everything under
//! `<volumes_root>`, these included.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::mount::MsFlags;
use nix::sys::stat::{fchmod, fstat, mkdirat, Mode, SFlag};

use super::volumes;

/// Why a subPath could not be mounted for a container.
#[derive(Debug, thiserror::Error)]
pub enum SubPathError {
    /// Absolute, or with a `..` component (validation refuses these in `subPath`; an
    /// expanded `subPathExpr` is only known here).
    #[error("subPath {sub_path:?} must be a relative path without '..'")]
    NotRelative {
        /// The subPath as given (or expanded).
        sub_path: String,
    },
    /// Resolving it left the volume: a symlink on the path points outside.
    #[error(
        "subPath {sub_path:?} leads out of the volume (a symlink on the path points outside it)"
    )]
    Escapes {
        /// The subPath.
        sub_path: String,
    },
    /// A name that cannot be one component of the private mount point's path.
    #[error("subPath {sub_path:?}: {name:?} cannot name a mount point directory")]
    BadName {
        /// The subPath.
        sub_path: String,
        /// The volume or container name.
        name: String,
    },
    /// A system call on the volume or the private mount point failed.
    #[error("subPath {sub_path:?}: {action} {path}: {source}")]
    Sys {
        /// The subPath.
        sub_path: String,
        /// What was being done (`opening`, `creating directory` …).
        action: &'static str,
        /// The path it was done on (inside the volume: volume dir joined with the part).
        path: PathBuf,
        /// The error.
        #[source]
        source: Errno,
    },
    /// Making the private mount point failed.
    #[error("subPath {sub_path:?}: creating mount point {path}: {source}")]
    MountPoint {
        /// The subPath.
        sub_path: String,
        /// The mount point.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// A private subPath mount point that could not be taken away.
#[derive(Debug, thiserror::Error)]
#[error("subPath mount point {path}: {action}: {source}")]
pub struct ReleaseError {
    /// The mount point (or its directory).
    pub path: PathBuf,
    /// `unmounting` or `removing`.
    pub action: &'static str,
    /// The error.
    #[source]
    pub source: io::Error,
}

/// `<volumes_root>/volume-subpaths`: the pod's private subPath mount points.
pub fn private_root(volumes_root: &Path) -> PathBuf {
    volumes_root.join("volume-subpaths")
}

/// The private mount point of a container's `index`-th volumeMount.
pub fn target(volumes_root: &Path, volume: &str, container: &str, index: usize) -> PathBuf {
    private_root(volumes_root)
        .join(volume)
        .join(container)
        .join(index.to_string())
}

/// `sub` as a relative path of plain components (`.` and empty ones dropped).
fn relative(sub: &str) -> Result<PathBuf, SubPathError> {
    let mut out = PathBuf::new();
    for c in Path::new(sub).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::RootDir | Component::ParentDir | Component::Prefix(_) => {
                return Err(SubPathError::NotRelative {
                    sub_path: sub.to_string(),
                })
            }
        }
    }
    Ok(out)
}

/// Opens `rel` beneath the directory `dir`: the kernel refuses (EXDEV) any resolution,
/// through `..` or a symlink, that would leave it, and any /proc magic link.
fn open_beneath(dir: BorrowedFd<'_>, rel: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    // EAGAIN: a rename raced with a `..` in the resolution, which the kernel then
    // cannot vouch for; a few tries, then the error is the pod's to retry.
    let mut tries = 0;
    let fd = loop {
        match openat2(dir.as_raw_fd(), rel, how) {
            Err(Errno::EAGAIN) if tries < 8 => tries += 1,
            r => break r?,
        }
    };
    // SAFETY: openat2 returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens `sub` inside the volume `base` as an `O_PATH` descriptor, creating missing
/// directories (with the volume directory's mode, as kubelet) one component at a time.
/// Nothing outside the volume is ever opened, created or changed.
pub fn open(base: &Path, sub: &str) -> Result<OwnedFd, SubPathError> {
    let rel = relative(sub)?;
    let sys = |action: &'static str, path: &Path| {
        let path = base.join(path);
        move |source: Errno| match source {
            Errno::EXDEV => SubPathError::Escapes {
                sub_path: sub.to_string(),
            },
            source => SubPathError::Sys {
                sub_path: sub.to_string(),
                action,
                path,
                source,
            },
        }
    };
    // The volume's own directory is the daemon's (or, for a hostPath, the pod author's
    // choice): opened as named.
    let volume = nix::fcntl::open(
        base,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys("opening volume", Path::new("")))?;
    // SAFETY: open returned a new descriptor that nothing else owns.
    let volume = unsafe { OwnedFd::from_raw_fd(volume) };
    let beneath = |rel: &Path, flags: OFlag| {
        // openat2 has no AT_EMPTY_PATH: the volume itself is ".".
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        open_beneath(volume.as_fd(), rel, flags)
    };
    match beneath(&rel, OFlag::O_PATH) {
        Err(Errno::ENOENT) => {}
        found => return found.map_err(sys("opening", &rel)),
    }
    let mode = Mode::from_bits_truncate(
        fstat(volume.as_raw_fd())
            .map_err(sys("reading the mode of", Path::new("")))?
            .st_mode
            & 0o7777,
    );
    let mut prefix = PathBuf::new();
    let mut parent = beneath(Path::new(""), OFlag::O_PATH | OFlag::O_DIRECTORY)
        .map_err(sys("opening", Path::new("")))?;
    for c in rel.components() {
        prefix.push(c);
        match beneath(&prefix, OFlag::O_PATH | OFlag::O_DIRECTORY) {
            Ok(dir) => {
                parent = dir;
                continue;
            }
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(sys("opening", &prefix)(e)),
        }
        let created = match mkdirat(Some(parent.as_raw_fd()), c.as_os_str(), mode) {
            Ok(()) => true,
            // Made meanwhile (by a container): whatever it is, it is opened below.
            Err(Errno::EEXIST) => false,
            Err(e) => return Err(sys("creating directory", &prefix)(e)),
        };
        // Opened again from the volume: what now bears the name (a container may have
        // swapped it already) is still resolved beneath the volume.
        let dir = beneath(&prefix, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
            .map_err(sys("opening", &prefix))?;
        if created {
            // mkdirat applied the umask.
            fchmod(dir.as_raw_fd(), mode).map_err(sys("setting the mode of", &prefix))?;
        }
        parent = dir;
    }
    beneath(&rel, OFlag::O_PATH).map_err(sys("opening", &rel))
}

/// Resolves `sub` inside the volume `base` (see [`open`]) and bind mounts what it names
/// onto the private mount point `target`, a directory or a file like it. Whatever was
/// mounted there before is unmounted first.
pub fn bind(base: &Path, sub: &str, target: &Path) -> Result<(), SubPathError> {
    let point = |source| SubPathError::MountPoint {
        sub_path: sub.to_string(),
        path: target.to_path_buf(),
        source,
    };
    // Done before the path is opened, so that little time passes between opening and
    // mounting: a directory removed meanwhile cannot be mounted (ENOENT).
    clear_target(target).map_err(point)?;
    let fd = open(base, sub)?;
    let sys = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source: Errno| SubPathError::Sys {
            sub_path: sub.to_string(),
            action,
            path,
            source,
        }
    };
    let st = fstat(fd.as_raw_fd()).map_err(sys("reading the type of", &base.join(sub)))?;
    let is_dir = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;
    make_point(target, is_dir).map_err(point)?;
    // The magic link names the opened inode itself: the path is not resolved again.
    let source = format!("/proc/self/fd/{}", fd.as_raw_fd());
    // Recursive, as the container's own bind mount of a volume is (rbind).
    let mounted = nix::mount::mount(
        Some(source.as_str()),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    );
    if let Err(e) = mounted {
        let _ = remove_target(target);
        return Err(sys("bind mounting onto", target)(e));
    }
    Ok(())
}

/// Nothing mounted at or left at `target`, its parents there and private.
fn clear_target(target: &Path) -> io::Result<()> {
    let failed = volumes::unmount_all_under(target);
    if let Some(p) = failed.first() {
        return Err(io::Error::other(format!("{} stays mounted", p.display())));
    }
    remove_target(target)?;
    match target.parent() {
        // Only root crosses them: the container reaches its mount through its own
        // mount namespace, never through these directories.
        Some(parent) => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent),
        None => Ok(()),
    }
}

/// An empty directory or file at the cleared `target`, to mount a directory or a file on.
fn make_point(target: &Path, is_dir: bool) -> io::Result<()> {
    if is_dir {
        std::fs::DirBuilder::new().mode(0o700).create(target)
    } else {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(target)
            .map(drop)
    }
}

/// Removes one mount point: rmdir or unlink only, which fail (EBUSY) on a point that is
/// still mounted instead of removing the volume's files through it.
fn remove_target(target: &Path) -> io::Result<()> {
    let r = match std::fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() => std::fs::remove_dir(target),
        Ok(_) => std::fs::remove_file(target),
        Err(e) => Err(e),
    };
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// Removes `dir` and what is under it, `depth` directory levels above the mount points,
/// which are only ever removed by [`remove_target`].
fn remove_points(dir: &Path, depth: usize) -> Result<(), ReleaseError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReleaseError {
            path,
            action: "removing",
            source,
        }
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(err(dir)(e)),
    };
    for e in entries {
        let e = e.map_err(err(dir))?;
        let path = e.path();
        let is_dir = e.file_type().map_err(err(&path))?.is_dir();
        match depth {
            1.. if is_dir => remove_points(&path, depth - 1)?,
            _ => remove_target(&path).map_err(err(&path))?,
        }
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(err(dir)(e)),
        _ => Ok(()),
    }
}

/// Unmounts everything under `dir`; fails if anything stays mounted.
fn unmount_under(dir: &Path) -> Result<(), ReleaseError> {
    match volumes::unmount_all_under(dir).into_iter().next() {
        None => Ok(()),
        Some(path) => Err(ReleaseError {
            path,
            action: "unmounting",
            source: io::Error::from(io::ErrorKind::ResourceBusy),
        }),
    }
}

/// Unmounts and removes the private mount points of `container` (an earlier attempt's,
/// or a failed create's).
pub fn release_container(volumes_root: &Path, container: &str) -> Result<(), ReleaseError> {
    let root = private_root(volumes_root);
    let volumes = match std::fs::read_dir(&root) {
        Ok(v) => v,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ReleaseError {
                path: root,
                action: "removing",
                source,
            })
        }
    };
    for v in volumes.flatten() {
        let dir = v.path().join(container);
        unmount_under(&dir)?;
        remove_points(&dir, 0)?;
        // Other containers' points may still be there.
        let _ = std::fs::remove_dir(v.path());
    }
    let _ = std::fs::remove_dir(&root);
    Ok(())
}

/// Unmounts and removes every private mount point of the pod.
pub fn release_pod(volumes_root: &Path) -> Result<(), ReleaseError> {
    let root = private_root(volumes_root);
    unmount_under(&root)?;
    remove_points(&root, 2)
}

/// Checks that `name` (a volume or container name) is one plain path component.
pub fn check_name(sub: &str, name: &str) -> Result<(), SubPathError> {
    let mut c = Path::new(name).components();
    match (c.next(), c.next()) {
        (Some(Component::Normal(n)), None) if n == name => Ok(()),
        _ => Err(SubPathError::BadName {
            sub_path: sub.to_string(),
            name: name.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn root() -> bool {
        nix::unistd::Uid::effective().is_root()
    }

    /// What an O_PATH descriptor names, as /proc shows it.
    fn path_of(fd: &OwnedFd) -> PathBuf {
        std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("readlink")
    }

    /// A volume `vol` and, beside it, `outside` that nothing may reach.
    fn volume() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().expect("tmp");
        let base = tmp.path().join("vol");
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&base).expect("vol");
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        std::fs::create_dir(&outside).expect("outside");
        std::fs::write(outside.join("secret"), "s").expect("secret");
        (tmp, base, outside)
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("ls")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn relative_paths_only() {
        assert_eq!(relative("a/./b//c/").expect("ok"), Path::new("a/b/c"));
        assert_eq!(relative(".").expect("ok"), Path::new(""));
        for bad in ["/etc", "../x", "a/../../x", "a/.."] {
            assert!(
                matches!(relative(bad), Err(SubPathError::NotRelative { .. })),
                "{bad}"
            );
        }
        check_name("s", "shared").expect("plain");
        for bad in ["", "..", ".", "a/b", "/a"] {
            assert!(check_name("s", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn symlinks_inside_the_volume_are_followed() {
        let (_tmp, base, _) = volume();
        // configMap layout: key -> ..data/key, ..data -> ..<version>.
        std::fs::create_dir(base.join("..v1")).expect("version");
        std::fs::write(base.join("..v1/key"), "x").expect("file");
        symlink("..v1", base.join("..data")).expect("symlink");
        symlink("..data/key", base.join("key")).expect("symlink");
        let fd = open(&base, "key").expect("key");
        assert_eq!(path_of(&fd), base.join("..v1/key"));
        // A symlink in the middle of the path, relative and going up but staying in.
        std::fs::create_dir_all(base.join("a/b")).expect("dirs");
        symlink("../..v1", base.join("a/up")).expect("symlink");
        let fd = open(&base, "a/up/key").expect("through");
        assert_eq!(path_of(&fd), base.join("..v1/key"));
        // The volume itself.
        assert_eq!(path_of(&open(&base, ".").expect("root")), base);
    }

    #[test]
    fn symlinks_leading_out_fail_and_create_nothing() {
        let (tmp, base, outside) = volume();
        symlink("/", base.join("abs")).expect("symlink");
        symlink("../outside", base.join("rel")).expect("symlink");
        std::fs::create_dir(base.join("mid")).expect("dir");
        symlink("../../outside", base.join("mid/out")).expect("symlink");
        symlink("/proc/self/root", base.join("magic")).expect("symlink");
        let before = entries(tmp.path());
        for sub in [
            "abs",
            "abs/etc",
            "rel",
            "rel/secret",
            "rel/new/a/b",
            "mid/out",
            "mid/out/new",
            "magic",
            "abs/tmp/podhost-never/a/b",
        ] {
            match open(&base, sub) {
                Err(SubPathError::Escapes { sub_path }) => assert_eq!(sub_path, sub),
                other => panic!("{sub}: {other:?}"),
            }
        }
        assert_eq!(entries(&outside), ["secret"], "nothing made outside");
        assert_eq!(entries(tmp.path()), before);
        assert!(!Path::new("/tmp/podhost-never").exists());
        assert!(matches!(
            open(&base, "../outside"),
            Err(SubPathError::NotRelative { .. })
        ));
        // A volume that holds magic links (a hostPath of /proc): never followed.
        let magic = open(Path::new("/proc/self"), "root/etc");
        assert!(magic.is_err(), "{:?}", magic.map(|fd| path_of(&fd)));
    }

    #[test]
    fn missing_directories_are_made_inside_with_the_volume_mode() {
        let (_tmp, base, _) = volume();
        // setgid, as an fsGroup leaves it: kept on what is made.
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o2775)).expect("chmod");
        std::fs::create_dir(base.join("real")).expect("dir");
        symlink("real", base.join("link")).expect("symlink");
        let fd = open(&base, "link/logs/web").expect("made");
        assert_eq!(path_of(&fd), base.join("real/logs/web"));
        for d in ["real/logs", "real/logs/web"] {
            let mode = std::fs::metadata(base.join(d))
                .expect(d)
                .permissions()
                .mode();
            assert_eq!(mode & 0o7777, 0o2775, "{d}");
        }
        // An existing directory keeps its own permission bits.
        let mode = std::fs::metadata(base.join("real")).expect("real");
        assert_eq!(mode.permissions().mode() & 0o777, 0o755);
        // A file in the middle is not a directory to make things in.
        std::fs::write(base.join("file"), "x").expect("file");
        assert!(matches!(
            open(&base, "file/sub"),
            Err(SubPathError::Sys {
                source: Errno::ENOTDIR | Errno::EEXIST,
                ..
            })
        ));
    }

    /// Unmounts what a test mounted, also when it panics (declared after the tempdir,
    /// so dropped before it).
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            volumes::unmount_all_under(&self.0);
        }
    }

    fn mounted(target: &Path) -> usize {
        volumes::mounts_under(target)
            .iter()
            .filter(|m| m.as_path() == target)
            .count()
    }

    // Runs as root (like the daemon): mounting needs it.
    #[test]
    fn binds_directories_and_files_and_releases_them() {
        if !root() {
            return;
        }
        let (tmp, base, _) = volume();
        let _guard = Unmount(tmp.path().to_path_buf());
        let pod = tmp.path().join("pod");
        std::fs::write(base.join("file"), "content").expect("file");
        let dir_target = target(&pod, "vol", "app", 0);
        let file_target = target(&pod, "vol", "app", 1);
        let other = target(&pod, "vol", "side", 0);
        bind(&base, "d/e", &dir_target).expect("dir");
        bind(&base, "file", &file_target).expect("file");
        bind(&base, "d", &other).expect("other container");
        assert_eq!(
            std::fs::read_to_string(&file_target).expect("read"),
            "content"
        );
        std::fs::write(dir_target.join("w"), "1").expect("write through");
        assert_eq!(
            std::fs::read_to_string(base.join("d/e/w")).expect("read"),
            "1"
        );
        // A container swapping the path afterwards changes nothing for the mount.
        std::fs::rename(base.join("d"), base.join("moved")).expect("rename");
        symlink("/", base.join("d")).expect("symlink");
        assert_eq!(entries(&dir_target), ["w"]);
        // A new attempt replaces the point instead of stacking mounts on it.
        bind(&base, "moved/e", &dir_target).expect("again");
        assert_eq!(mounted(&dir_target), 1);
        // Released, then asked for a path leading out: refused before any point is made.
        release_container(&pod, "app").expect("release");
        assert!(matches!(
            bind(&base, "d/etc", &dir_target),
            Err(SubPathError::Escapes { .. })
        ));
        assert!(!dir_target.exists() && !file_target.exists());
        assert_eq!(mounted(&other), 1, "the other container's stays");
        assert_eq!(entries(&private_root(&pod)), ["vol"]);
        release_pod(&pod).expect("pod");
        assert!(!private_root(&pod).exists());
        assert!(volumes::mounts_under(tmp.path()).is_empty());
        // The volume's files are all still there.
        assert_eq!(entries(&base.join("moved/e")), ["w"]);
        assert_eq!(entries(&base), ["d", "file", "moved"]);
    }

    #[test]
    fn a_point_still_mounted_is_never_emptied() {
        if !root() {
            return;
        }
        let (tmp, base, _) = volume();
        let _guard = Unmount(tmp.path().to_path_buf());
        std::fs::create_dir(base.join("data")).expect("dir");
        std::fs::write(base.join("data/keep"), "k").expect("file");
        let pod = tmp.path().join("pod");
        let t = target(&pod, "vol", "app", 0);
        bind(&base, "data", &t).expect("bind");
        // What a failed unmount would leave: the removal must not go through it.
        assert!(remove_points(&private_root(&pod), 2).is_err());
        assert_eq!(entries(&base.join("data")), ["keep"]);
        release_pod(&pod).expect("release");
        assert_eq!(entries(&base.join("data")), ["keep"]);
    }
}
