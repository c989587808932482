//! Network namespaces pinned by bind mount, like `ip netns add`.
//!
//! The namespace is created and pinned before the pause starts, so CNI can run on the
//! pinned path and the pod IP survives the pause and every container.

use std::fs::File;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

use super::RuntimeError;

/// Create a new network namespace, bring `lo` up in it, and bind-mount it at `pin`.
///
/// Runs in a throwaway OS thread: `unshare(CLONE_NEWNET)` changes only the calling
/// thread, which must never go back to serving the async runtime.
pub fn create_pinned(pin: &Path) -> Result<(), RuntimeError> {
    if let Some(dir) = pin.parent() {
        std::fs::create_dir_all(dir).map_err(RuntimeError::io("creating netns dir", dir))?;
    }
    File::create(pin).map_err(RuntimeError::io("creating netns pin file", pin))?;
    let pin_owned = pin.to_path_buf();
    let result = std::thread::spawn(move || -> Result<(), RuntimeError> {
        unshare(CloneFlags::CLONE_NEWNET)
            .map_err(RuntimeError::sys("unshare(CLONE_NEWNET) for", &pin_owned))?;
        set_loopback_up().map_err(RuntimeError::io("bringing lo up in", &pin_owned))?;
        // SAFETY-free: gettid is always valid; the thread's own ns file names its netns.
        let tid = nix::unistd::gettid();
        let src = format!("/proc/self/task/{tid}/ns/net");
        mount(
            Some(src.as_str()),
            &pin_owned,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(RuntimeError::sys("bind-mounting netns at", &pin_owned))
    })
    .join()
    .unwrap_or_else(|_| {
        Err(RuntimeError::Io {
            action: "netns thread panicked for",
            path: pin.to_path_buf(),
            source: std::io::Error::other("panic"),
        })
    });
    if result.is_err() {
        let _ = std::fs::remove_file(pin);
    }
    result
}

/// Whether `pin` holds a network namespace (a bind mount of nsfs), rather than being
/// missing or the empty file a pin starts as.
pub fn is_pinned(pin: &Path) -> bool {
    nix::sys::statfs::statfs(pin)
        .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

/// Unmount and delete a pinned netns. Missing pins are fine (idempotent teardown).
pub fn remove_pinned(pin: &Path) -> Result<(), RuntimeError> {
    if !pin.exists() {
        return Ok(());
    }
    match umount2(pin, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(e) => {
            return Err(RuntimeError::Sys {
                action: "unmounting netns",
                path: pin.to_path_buf(),
                source: e,
            })
        }
    }
    match std::fs::remove_file(pin) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RuntimeError::Io {
            action: "removing netns pin",
            path: pin.to_path_buf(),
            source: e,
        }),
    }
}

/// SIOCSIFFLAGS IFF_UP on `lo` in the calling thread's network namespace.
fn set_loopback_up() -> std::io::Result<()> {
    // SAFETY: plain socket/ioctl calls on a zeroed ifreq we own; the fd is closed below.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let mut rc = libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut req);
        if rc == 0 {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            rc = libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &req);
        }
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if rc != 0 {
            return Err(err);
        }
    }
    Ok(())
}
