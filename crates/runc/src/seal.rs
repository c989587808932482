//! The helper runs the processes it starts in containers from a copy of itself that no
//! container can write (CVE-2019-5736).
//!
//! The container init and every exec'd process are clones of this helper until their
//! execve. If the container's payload can make the kernel run `/proc/self/exe` (an
//! image whose binary is `#!/proc/self/exe`), the container holds the helper's binary
//! and, once no helper runs, writes it through `/proc/self/fd/N`: the next helper call
//! runs the container's code as host root. So `create` and `exec` first re-execute
//! themselves from a sealed copy:
//! - a private, detached overlayfs mount without an upper layer over the helper's
//!   directory (as runc does since 1.2): no copy, and the file opened through it can
//!   never be written (the superblock is read-only, a remount cannot add an upper
//!   layer), whatever capabilities the writer holds;
//! - where overlayfs cannot be mounted, a memfd copy with every write sealed.
//!
//! The other subcommands never put a process in a container and run as they are.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Set in the environment of the re-executed helper, so that a copy the checks below do
/// not recognise as sealed fails instead of re-executing forever.
const MARKER: &str = "_PODHOST_RUNC_SEALED";

/// Every seal that keeps a memfd's content as it is.
const MEMFD_SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

// linux/mount.h; not in every libc release.
const FSOPEN_CLOEXEC: libc::c_uint = 0x1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 0x1;
const MOUNT_ATTR_RDONLY: libc::c_uint = 0x1;
const MOUNT_ATTR_NOSUID: libc::c_uint = 0x2;
const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;

/// Returns when this process runs from a sealed binary; otherwise re-executes it, with
/// the same arguments and environment, from a sealed copy (and does not return).
///
/// `spare_dir` is an existing directory that is neither inside nor above the helper's
/// directory (the state root): overlayfs needs a second, bottom layer.
pub fn ensure_sealed(spare_dir: &Path) -> Result<()> {
    let reexecuted = std::env::var_os(MARKER).is_some();
    // Single-threaded here: nothing reads the environment concurrently.
    std::env::remove_var(MARKER);
    let exe = File::open("/proc/self/exe").context("open /proc/self/exe")?;
    if is_sealed(&exe)? {
        return Ok(());
    }
    if reexecuted {
        bail!("re-executed from a sealed copy of the helper, but /proc/self/exe is writable");
    }
    let sealed = match overlay_copy(spare_dir) {
        Ok(fd) => fd,
        Err(overlay_err) => memfd_copy(&exe)
            .with_context(|| format!("no overlayfs copy of the helper either ({overlay_err:#})"))?,
    };
    drop(exe);
    reexec(&sealed)
}

/// The binary behind `exe` cannot be written: a memfd with all seals, or a file on a
/// read-only mount or superblock. (A read-only mount of the host's mount namespace
/// cannot be made writable from a container's, which neither holds nor can reach it.)
pub fn is_sealed(exe: &File) -> Result<bool> {
    // SAFETY: fcntl on a descriptor we own; no pointer arguments.
    let seals = unsafe { libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS) };
    if seals >= 0 && seals & MEMFD_SEALS == MEMFD_SEALS {
        return Ok(true);
    }
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: st is a valid out pointer; the descriptor is ours.
    if unsafe { libc::fstatvfs(exe.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error()).context("fstatvfs /proc/self/exe");
    }
    // SAFETY: fstatvfs succeeded and filled st.
    let st = unsafe { st.assume_init() };
    Ok(st.f_flag & libc::ST_RDONLY != 0)
}

fn cvt(ret: libc::c_long, what: &str) -> Result<libc::c_long> {
    if ret < 0 {
        Err(std::io::Error::last_os_error()).with_context(|| what.to_string())
    } else {
        Ok(ret)
    }
}

fn cstring(s: &OsStr) -> Result<CString> {
    CString::new(s.as_bytes()).with_context(|| format!("{s:?} contains a NUL byte"))
}

/// overlayfs splits `lowerdir` on ':' and takes '\' as an escape.
fn escape_lowerdir(dir: &Path) -> OsString {
    let mut out = Vec::new();
    for &b in dir.as_os_str().as_bytes() {
        if b == b':' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    OsStr::from_bytes(&out).to_os_string()
}

/// An `O_PATH` descriptor of the helper's binary seen through a new read-only overlayfs
/// whose layers are the helper's directory (on top) and `spare_dir`. The mount is never
/// attached anywhere: it lives as long as a descriptor or a process uses it.
pub fn overlay_copy(spare_dir: &Path) -> Result<OwnedFd> {
    let path = std::fs::read_link("/proc/self/exe").context("readlink /proc/self/exe")?;
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        bail!("unexpected path of the helper {path:?}");
    };
    if !path.is_file() {
        bail!("the helper's binary {path:?} is gone");
    }
    let spare = std::fs::canonicalize(spare_dir).with_context(|| format!("{spare_dir:?}"))?;
    let fstype = CString::new("overlay")?;
    // SAFETY: plain syscall with a valid C string; the result is checked.
    let ctx = cvt(
        unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) },
        "fsopen overlay",
    )?;
    // SAFETY: fsopen returned a new descriptor that nothing else owns.
    let ctx = unsafe { OwnedFd::from_raw_fd(ctx as RawFd) };
    let mut lower = escape_lowerdir(dir);
    lower.push(":");
    lower.push(escape_lowerdir(&spare));
    let set = |key: &str, value: &OsStr| -> Result<()> {
        let (k, v) = (CString::new(key)?, cstring(value)?);
        // SAFETY: valid descriptor and C strings; the result is checked.
        cvt(
            unsafe {
                libc::syscall(
                    libc::SYS_fsconfig,
                    ctx.as_raw_fd(),
                    FSCONFIG_SET_STRING,
                    k.as_ptr(),
                    v.as_ptr(),
                    0,
                )
            },
            &format!("fsconfig overlay {key}={value:?}"),
        )
        .map(drop)
    };
    set("lowerdir", &lower)?;
    // Only quiets the kernel log when the layers are on different filesystems.
    let _ = set("xino", OsStr::new("off"));
    // SAFETY: valid descriptor, no pointers; the result is checked.
    cvt(
        unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                ctx.as_raw_fd(),
                FSCONFIG_CMD_CREATE,
                std::ptr::null::<libc::c_char>(),
                std::ptr::null::<libc::c_char>(),
                0,
            )
        },
        "create the overlayfs",
    )?;
    // SAFETY: valid descriptor, no pointers; the result is checked.
    let mnt = cvt(
        unsafe {
            libc::syscall(
                libc::SYS_fsmount,
                ctx.as_raw_fd(),
                FSMOUNT_CLOEXEC,
                MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
            )
        },
        "fsmount the overlayfs",
    )?;
    // SAFETY: fsmount returned a new descriptor that nothing else owns.
    let mnt = unsafe { OwnedFd::from_raw_fd(mnt as RawFd) };
    let name = cstring(name)?;
    // SAFETY: valid descriptor and C string; the result is checked.
    let fd = cvt(
        unsafe {
            libc::openat(
                mnt.as_raw_fd(),
                name.as_ptr(),
                libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        } as libc::c_long,
        "open the helper through the overlayfs",
    )?;
    // SAFETY: openat returned a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    // The top layer may have changed since we started (an upgrade): the file must at
    // least be the regular file of the size we run from.
    let seen = File::from(fd.try_clone().context("dup")?).metadata();
    let ours = std::fs::metadata("/proc/self/exe").context("stat /proc/self/exe")?;
    match seen {
        Ok(m) if m.is_file() && m.len() == ours.len() => Ok(fd),
        _ => bail!("{name:?} in the overlayfs is not the helper's binary"),
    }
}

/// A memfd holding a copy of `exe`, sealed against any write.
pub fn memfd_copy(exe: &File) -> Result<OwnedFd> {
    let name = CString::new("podhost-runc")?;
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // MFD_EXEC (Linux 6.3) keeps the copy executable where vm.memfd_noexec defaults to
    // no-exec memfds; older kernels reject the flag and make executable memfds anyway.
    // SAFETY: valid C string; the result is checked.
    let mut fd = unsafe { libc::memfd_create(name.as_ptr(), flags | libc::MFD_EXEC) };
    if fd < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // SAFETY: as above.
        fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    }
    let fd = cvt(fd as libc::c_long, "memfd_create")?;
    // SAFETY: memfd_create returned a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let len = exe.metadata().context("stat /proc/self/exe")?.len();
    let mut copied = 0u64;
    while copied < len {
        let want = usize::try_from(len - copied)
            .unwrap_or(usize::MAX)
            .min(1 << 30);
        // copy_file_range refuses to cross filesystems; sendfile copies in the kernel
        // from any file to the memfd. A null offset reads on from exe's file position.
        // SAFETY: valid descriptors, null offset; the result is checked.
        let n = cvt(
            unsafe { libc::sendfile(fd.as_raw_fd(), exe.as_raw_fd(), std::ptr::null_mut(), want) }
                as libc::c_long,
            "copy the helper into a memfd",
        )?;
        if n == 0 {
            bail!("the helper's binary shrank while being copied");
        }
        copied += n as u64;
    }
    // SAFETY: fcntl on our descriptor with an integer argument; the result is checked.
    cvt(
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, MEMFD_SEALS) } as libc::c_long,
        "seal the memfd",
    )?;
    Ok(fd)
}

/// execveat(fd, "", argv, envp + MARKER, AT_EMPTY_PATH); returns only with the error.
fn reexec(fd: &OwnedFd) -> Result<()> {
    let args: Vec<CString> = std::env::args_os()
        .map(|a| cstring(&a))
        .collect::<Result<_>>()?;
    let mut env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            cstring(&kv)
        })
        .collect::<Result<_>>()?;
    env.push(CString::new(format!("{MARKER}=1"))?);
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let empty = CString::new("")?;
    // SAFETY: NUL-terminated argument and environment arrays of C strings that outlive
    // the call; on success the process image is replaced.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            empty.as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
    }
    Err(std::io::Error::last_os_error()).context("execveat the sealed copy of the helper")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Opens the file behind `fd` for writing the way the attack does: through
    /// `/proc/self/fd/N`, which reaches the file even where no path does.
    fn open_for_write(fd: &OwnedFd) -> std::io::Result<File> {
        std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/self/fd/{}", fd.as_raw_fd()))
    }

    #[test]
    fn memfd_copy_is_sealed_and_identical() {
        let exe = File::open("/proc/self/exe").unwrap();
        let fd = memfd_copy(&exe).unwrap();
        let copy = File::from(fd.try_clone().unwrap());
        assert!(is_sealed(&copy).unwrap());
        assert_eq!(
            std::fs::read(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap(),
            std::fs::read("/proc/self/exe").unwrap()
        );
        // Even root cannot change it: the open succeeds, every write is refused.
        let mut w = open_for_write(&fd).unwrap();
        let err = w.write_all(b"#!/bin/sh\n").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
        assert!(w.set_len(0).is_err());
    }

    #[test]
    fn overlay_copy_is_read_only_and_the_test_binary_is_not() {
        let spare = tempfile::tempdir().unwrap();
        let fd = overlay_copy(spare.path()).unwrap();
        let err = open_for_write(&fd).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
        let through = File::open(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        assert!(is_sealed(&through).unwrap());
        assert_eq!(
            std::fs::read(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap(),
            std::fs::read("/proc/self/exe").unwrap()
        );
        // The unsealed original, for contrast (cargo's target dir is writable).
        let exe = File::open("/proc/self/exe").unwrap();
        assert!(!is_sealed(&exe).unwrap());
    }

    #[test]
    fn lowerdir_escapes() {
        assert_eq!(
            escape_lowerdir(Path::new("/a:b\\c")),
            OsString::from("/a\\:b\\\\c")
        );
    }
}
