//! Starting the pod's pause process, locked down like any container.
//!
//! The pause is PID 1 of the pod and a process every container of a shared PID
//! namespace can reach through /proc/1: it must give nothing of the host away. It runs
//! in its own mount namespace whose root is a read-only tmpfs holding only the pause
//! binary (bind-mounted read-only, so /proc/1/exe cannot be written), as uid/gid 65535
//! without supplementary groups or capabilities, with no_new_privs, an empty environment
//! and only /dev/null on 0-2. The pause installs its seccomp filter itself (see the
//! `pause` crate) because one set here would also have to allow glibc's start-up calls.

use crate::launch::Config;
use crate::sys::{self, ctx};
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::AsRawFd;

/// uid and gid of the pause, as containerd's pause image: owns no host file.
const PAUSE_ID: libc::c_long = 65535;

/// The pause binary inside its own root.
const PAUSE_IN_ROOT: &CStr = c"/pause";

/// The pause's root: a tmpfs with room for the root directory and one file.
const ROOT_OPTIONS: &CStr = c"mode=0555,size=4k,nr_inodes=4";

/// Steps of the launch, in order; a failing child reports its step's index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Step {
    JoinNet,
    Unshare,
    Hostname,
    PrivateMounts,
    OpenPause,
    MountRoot,
    EnterRoot,
    BindTarget,
    BindPause,
    PauseReadOnly,
    RootReadOnly,
    PivotRoot,
    DetachOldRoot,
    ChdirRoot,
    ForkPause,
    DropGroups,
    SetGid,
    DropBounding,
    ClearAmbient,
    SetUid,
    ClearCaps,
    NoNewPrivs,
    CloseFds,
    Exec,
}

/// What each [`Step`] does, indexed by its value.
const STEPS: [&str; Step::Exec as usize + 1] = [
    "setns(CLONE_NEWNET)",
    "unshare(CLONE_NEWNS|CLONE_NEWIPC|CLONE_NEWUTS|CLONE_NEWPID, minus the host's namespaces asked for)",
    "sethostname",
    "make every mount private (mount / MS_REC|MS_PRIVATE)",
    "open_tree (clone) the pause binary",
    "mount the pause's root tmpfs on",
    "chdir into the pause's root",
    "create the bind-mount target /pause",
    "move_mount the pause binary onto /pause",
    "remount /pause read-only,nosuid,nodev",
    "remount the pause's root read-only",
    "pivot_root into the pause's root",
    "detach the host's root (umount2 MNT_DETACH)",
    "chdir /",
    "fork pause",
    "setgroups(0)",
    "setresgid(65535)",
    "drop the capability bounding set (PR_CAPBSET_DROP)",
    "clear ambient capabilities",
    "setresuid(65535)",
    "capset (clear every capability)",
    "prctl(PR_SET_NO_NEW_PRIVS)",
    "close_range(3.., CLOSE_RANGE_CLOEXEC)",
    "exec pause binary",
];

/// Child-side error report through a pipe: errno plus the failing step.
fn child_fail(fd: libc::c_int, step: Step) -> ! {
    // SAFETY: only async-signal-safe calls between fork and exec/_exit.
    unsafe {
        let errno = *libc::__errno_location();
        let mut msg = [0u8; 5];
        msg[0] = step as u8;
        msg[1..].copy_from_slice(&errno.to_ne_bytes());
        libc::write(fd, msg.as_ptr().cast(), msg.len());
        libc::_exit(127)
    }
}

/// `cap_user_header_t` of capset(2).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// One `cap_user_data_t` element (version 3 takes two: capabilities 0-31 and 32-63).
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// open_tree(2): a detached copy of the mount at the path (a bind mount to be).
const OPEN_TREE_CLONE: libc::c_uint = 1;
/// move_mount(2): the source is the descriptor itself.
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// Everything the children need, made before the fork (no allocation after it).
struct Prepared {
    netns: std::fs::File,
    pause: CString,
    root_dir: CString,
    hostname: CString,
    own_uts: bool,
    unshare_flags: libc::c_int,
    argv: [*const libc::c_char; 2],
    envp: [*const libc::c_char; 1],
}

fn prepare(cfg: &Config) -> io::Result<Prepared> {
    let netns = std::fs::File::open(&cfg.netns)
        .map_err(|e| ctx(e, format!("open network namespace {}", cfg.netns.display())))?;
    // Checked here for a clear error; the launcher opens it again in the new mount
    // namespace (a bind mount's source must be a mount of the caller's namespace).
    let kind = std::fs::metadata(&cfg.pause)
        .map_err(|e| ctx(e, format!("pause binary {}", cfg.pause.display())))?
        .file_type();
    if !kind.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("pause binary {} is not a regular file", cfg.pause.display()),
        ));
    }
    let hostname = CString::new(cfg.hostname.clone().into_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "hostname contains NUL"))?;
    // UTS is the pod's own (its hostname) unless the pod uses the host's network; IPC and
    // PID stay the host's when the pod asks for hostIPC / hostPID. The mount namespace is
    // always the pause's own.
    let own_uts = !cfg.host_uts;
    let mut unshare_flags = libc::CLONE_NEWNS;
    if own_uts {
        unshare_flags |= libc::CLONE_NEWUTS;
    }
    if !cfg.host_ipc {
        unshare_flags |= libc::CLONE_NEWIPC;
    }
    if !cfg.host_pid {
        unshare_flags |= libc::CLONE_NEWPID;
    }
    Ok(Prepared {
        netns,
        pause: sys::cpath(&cfg.pause)?,
        // The state directory exists and is ours: the root tmpfs is mounted over it,
        // in the pause's mount namespace only.
        root_dir: sys::cpath(&cfg.dir)?,
        hostname,
        own_uts,
        unshare_flags,
        argv: [PAUSE_IN_ROOT.as_ptr(), std::ptr::null()],
        envp: [std::ptr::null()],
    })
}

/// Starts the pause binary as PID 1 of a new PID namespace, in the pinned network
/// namespace, new IPC/UTS namespaces and its own mount namespace, locked down (see the
/// module doc). Returns its pid (in our namespace); it becomes our child once the
/// intermediate process exits.
pub fn start_pause(cfg: &Config) -> io::Result<libc::pid_t> {
    let p = prepare(cfg)?;
    let (rep_r, rep_w) = sys::pipe().map_err(|e| ctx(e, "create pause report pipe"))?;

    // SAFETY: single-threaded; the child uses only async-signal-safe calls
    // on data prepared before the fork.
    let mid = unsafe { libc::fork() };
    if mid < 0 {
        return Err(ctx(io::Error::last_os_error(), "fork pause launcher"));
    }
    if mid == 0 {
        launcher(&p, rep_w.as_raw_fd());
    }
    drop(rep_w);
    drop(p);
    let mut msg = [0u8; 5];
    let mut got = 0;
    while got < msg.len() {
        match sys::read(rep_r.as_raw_fd(), &mut msg[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(_) => break,
        }
    }
    let status = sys::wait_pid(mid).map_err(|e| ctx(e, "wait for pause launcher"))?;
    let value = i32::from_ne_bytes([msg[1], msg[2], msg[3], msg[4]]);
    if got == msg.len() && msg[0] == 0xff {
        return Ok(value);
    }
    if got == msg.len() {
        let step = STEPS
            .get(msg[0] as usize)
            .copied()
            .unwrap_or("unknown step");
        let err = io::Error::from_raw_os_error(value);
        let what = match msg[0] {
            s if s == Step::JoinNet as u8 => format!("{step} into {}", cfg.netns.display()),
            s if s == Step::Hostname as u8 => format!("{step} {:?}", cfg.hostname),
            s if s == Step::MountRoot as u8 => format!("{step} {}", cfg.dir.display()),
            s if s == Step::OpenPause as u8 || s == Step::Exec as u8 => {
                format!("{step} {}", cfg.pause.display())
            }
            _ => step.to_string(),
        };
        return Err(ctx(err, format!("start pause: {what}")));
    }
    Err(io::Error::other(format!(
        "start pause: launcher exited without report (status {:?})",
        sys::decode_status(status)
    )))
}

/// The intermediate process: enters the pod's namespaces and the pause's root, forks
/// the pause (PID 1 of a new PID namespace must be a child of the unsharer) and reports
/// its pid or the failed step on `w`.
fn launcher(p: &Prepared, w: libc::c_int) -> ! {
    // SAFETY: only async-signal-safe calls on data prepared before the fork.
    unsafe {
        if libc::setns(p.netns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
            child_fail(w, Step::JoinNet);
        }
        if libc::unshare(p.unshare_flags) != 0 {
            child_fail(w, Step::Unshare);
        }
        if p.own_uts && libc::sethostname(p.hostname.as_ptr(), p.hostname.as_bytes().len()) != 0 {
            child_fail(w, Step::Hostname);
        }
        if let Err(step) = enter_root(p) {
            child_fail(w, step);
        }
        let mut ex = [0 as libc::c_int; 2];
        if libc::pipe2(ex.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            child_fail(w, Step::ForkPause);
        }
        let pid = libc::fork();
        if pid < 0 {
            child_fail(w, Step::ForkPause);
        }
        if pid == 0 {
            // The pause must see SIGTERM/SIGCHLD, which the shim blocks.
            sys::reset_signals_for_exec();
            if let Err(step) = drop_privileges() {
                child_fail(ex[1], step);
            }
            libc::execve(PAUSE_IN_ROOT.as_ptr(), p.argv.as_ptr(), p.envp.as_ptr());
            child_fail(ex[1], Step::Exec);
        }
        libc::close(ex[1]);
        // EOF means exec succeeded (CLOEXEC closed the write end).
        let mut msg = [0u8; 5];
        let n = libc::read(ex[0], msg.as_mut_ptr().cast(), msg.len());
        if n == msg.len() as isize {
            libc::waitpid(pid, std::ptr::null_mut(), 0);
            libc::write(w, msg.as_ptr().cast(), msg.len());
            libc::_exit(1);
        }
        let mut ok = [0xffu8; 5];
        ok[1..].copy_from_slice(&pid.to_ne_bytes());
        libc::write(w, ok.as_ptr().cast(), ok.len());
        libc::_exit(0)
    }
}

/// In the new mount namespace: makes every mount private (nothing propagates to or from
/// the host), clones the binary's mount (before the tmpfs covers the state directory,
/// under which it might lie), mounts the root tmpfs over the state directory, attaches
/// the clone onto /pause read-only, makes the tmpfs read-only and pivots into it,
/// detaching the host's tree. The working directory ends as `/`.
///
/// # Safety
/// Between fork and exec: only system calls, on C strings prepared before the fork.
unsafe fn enter_root(p: &Prepared) -> Result<(), Step> {
    let none = std::ptr::null::<libc::c_char>();
    let check = |r: libc::c_long, step: Step| if r == 0 { Ok(()) } else { Err(step) };
    let mount = |src: *const libc::c_char,
                 target: &CStr,
                 fstype: *const libc::c_char,
                 flags: libc::c_ulong,
                 data: *const libc::c_char,
                 step: Step| {
        check(
            libc::mount(src, target.as_ptr(), fstype, flags, data.cast()).into(),
            step,
        )
    };
    mount(
        none,
        c"/",
        none,
        libc::MS_REC | libc::MS_PRIVATE,
        none,
        Step::PrivateMounts,
    )?;
    // A bind mount whose source is a mount of this namespace: open_tree here, after the
    // unshare (a descriptor opened before it would name the shim's namespace).
    let tree = libc::syscall(
        libc::SYS_open_tree,
        libc::AT_FDCWD,
        p.pause.as_ptr(),
        OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
    );
    if tree < 0 {
        return Err(Step::OpenPause);
    }
    mount(
        c"tmpfs".as_ptr(),
        &p.root_dir,
        c"tmpfs".as_ptr(),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        ROOT_OPTIONS.as_ptr(),
        Step::MountRoot,
    )?;
    check(libc::chdir(p.root_dir.as_ptr()).into(), Step::EnterRoot)?;
    let target = libc::open(
        c"pause".as_ptr(),
        libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        0o555,
    );
    if target < 0 {
        return Err(Step::BindTarget);
    }
    libc::close(target);
    check(
        libc::syscall(
            libc::SYS_move_mount,
            tree as libc::c_int,
            c"".as_ptr(),
            libc::AT_FDCWD,
            c"pause".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        ),
        Step::BindPause,
    )?;
    libc::close(tree as libc::c_int);
    // A bind mount takes its flags only from a remount.
    mount(
        none,
        c"pause",
        none,
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
        none,
        Step::PauseReadOnly,
    )?;
    // Read-only superblock and mount: not even the pause can add a file.
    mount(
        none,
        c".",
        none,
        libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        none,
        Step::RootReadOnly,
    )?;
    // pivot_root(".", "."): the old root ends up stacked on the new one, and the
    // umount of "." detaches it (no directory for it needed in a read-only root).
    check(
        libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()),
        Step::PivotRoot,
    )?;
    check(
        libc::umount2(c".".as_ptr(), libc::MNT_DETACH).into(),
        Step::DetachOldRoot,
    )?;
    check(libc::chdir(c"/".as_ptr()).into(), Step::ChdirRoot)
}

/// As the pause just before exec: gid, then the capability bounding and ambient sets
/// (which need CAP_SETPCAP), then uid (which clears the permitted and effective sets),
/// then the inheritable set; no_new_privs; every descriptor but 0-2 closed at exec.
/// Raw system calls: glibc's set*id wrappers synchronise threads, which a forked child
/// must not rely on (it has one thread, so the raw call covers the process).
///
/// # Safety
/// Between fork and exec: only system calls.
unsafe fn drop_privileges() -> Result<(), Step> {
    let check = |r: libc::c_long, step: Step| if r == 0 { Ok(()) } else { Err(step) };
    check(
        libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()),
        Step::DropGroups,
    )?;
    check(
        libc::syscall(libc::SYS_setresgid, PAUSE_ID, PAUSE_ID, PAUSE_ID),
        Step::SetGid,
    )?;
    // Up to the kernel's last capability: the first unknown one is EINVAL.
    for cap in 0..64 as libc::c_ulong {
        if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 {
            if cap > 0 && *libc::__errno_location() == libc::EINVAL {
                break;
            }
            return Err(Step::DropBounding);
        }
    }
    check(
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
        .into(),
        Step::ClearAmbient,
    )?;
    check(
        libc::syscall(libc::SYS_setresuid, PAUSE_ID, PAUSE_ID, PAUSE_ID),
        Step::SetUid,
    )?;
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    check(
        libc::syscall(libc::SYS_capset, &header, data.as_ptr()),
        Step::ClearCaps,
    )?;
    check(
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0).into(),
        Step::NoNewPrivs,
    )?;
    // CLOEXEC rather than closing: the exec-error pipe must stay open until the exec.
    check(
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        ),
        Step::CloseFds,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_has_its_name() {
        assert_eq!(STEPS.len(), Step::Exec as usize + 1);
        assert_eq!(STEPS[Step::JoinNet as usize], "setns(CLONE_NEWNET)");
        assert_eq!(STEPS[Step::ForkPause as usize], "fork pause");
        assert_eq!(STEPS[Step::SetUid as usize], "setresuid(65535)");
        assert_eq!(STEPS[Step::Exec as usize], "exec pause binary");
    }
}
