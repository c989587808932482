//! Mounts the runtime makes on the host: the run dir's tmpfs, overlay root filesystems
//! and the pod's /dev/shm.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::RuntimeError;

/// Mount a tmpfs (0700) at the run dir unless it is on one already, as `/run` is on most
/// systems but not all: the OCI bundles there hold resolved Secrets, which must never
/// reach a disk. A run dir on a disk that holds files already (an older podhost's, its
/// pods still running) is left as it is, with a warning: hiding the files would orphan
/// the pods. Only the first daemon start mounts; restarts find the tmpfs.
pub fn ensure_run_tmpfs(dir: &Path) -> Result<(), RuntimeError> {
    use nix::sys::statfs::{statfs, TMPFS_MAGIC};
    let fs = statfs(dir).map_err(RuntimeError::sys("statfs", dir))?;
    if fs.filesystem_type() == TMPFS_MAGIC {
        return Ok(());
    }
    let empty = std::fs::read_dir(dir)
        .map_err(RuntimeError::io("listing", dir))?
        .next()
        .is_none();
    if !empty {
        tracing::warn!(
            "{} is not on a tmpfs and holds files already: container specs with resolved Secrets are written there, to the disk; empty it (stop the pods) or mount a tmpfs on it",
            dir.display()
        );
        return Ok(());
    }
    mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        // systemd's flags and size for /run.
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0700,size=20%"),
    )
    .map_err(RuntimeError::sys("mounting a tmpfs at the run dir", dir))?;
    tracing::info!("mounted a tmpfs at {} (it was on a disk)", dir.display());
    Ok(())
}

/// Mount an overlay at `target` from image layers (bottom first) and a writable upper dir.
pub fn mount_overlay(
    layers_bottom_first: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), RuntimeError> {
    for dir in [upper, work, target] {
        std::fs::create_dir_all(dir).map_err(RuntimeError::io("creating overlay dir", dir))?;
    }
    // overlayfs wants the topmost lower layer first.
    let lower: Vec<String> = layers_bottom_first
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect();
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    // Not nosuid/nodev: libcontainer bind-mounts this mount as the container's root, and
    // a bind keeps the flags, so setuid binaries would stop working inside the container
    // too (tried: busybox's setuid ping is then refused). As with containerd, host users
    // are kept out by the 0700 directories above it instead.
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
    .map_err(RuntimeError::sys("mounting overlay rootfs at", target))
}

/// A tmpfs for the pod's /dev/shm, 64 MiB like containerd and CRI-O.
pub fn mount_shm(target: &Path) -> Result<(), RuntimeError> {
    std::fs::create_dir_all(target).map_err(RuntimeError::io("creating shm dir", target))?;
    mount(
        Some("shm"),
        target,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=65536k"),
    )
    .map_err(RuntimeError::sys("mounting /dev/shm tmpfs at", target))
}

/// Unmount if mounted; a path that is not a mount point (or is gone) is fine.
pub fn unmount(target: &Path) -> Result<(), RuntimeError> {
    match umount2(target, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => Ok(()),
        Err(e) => Err(RuntimeError::Sys {
            action: "unmounting",
            path: target.to_path_buf(),
            source: e,
        }),
    }
}

/// Remove a directory tree; missing is fine.
pub fn remove_dir(path: &Path) -> Result<(), RuntimeError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RuntimeError::Io {
            action: "removing",
            path: path.to_path_buf(),
            source: e,
        }),
    }
}
