//! Mounts the runtime makes on the host: overlay root filesystems and the pod's /dev/shm.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::RuntimeError;

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
