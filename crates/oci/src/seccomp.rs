//! Seccomp profiles: `RuntimeDefault` (podhost's own, at least as strict as Docker's and
//! containerd's default profile) and `Localhost` (an OCI-format JSON file).
//!
//! `RuntimeDefault` is an allow list, like Docker's: a syscall the list does not name
//! fails with EPERM, so a syscall added to a later kernel stays refused until it is
//! reviewed. The list is Docker's without io_uring (whose operations bypass seccomp and
//! whose bugs made containerd and Docker drop it), plus a few newer syscalls that only
//! repeat older ones (fchmodat2, cachestat, futex_wait/wake/requeue, map_shadow_stack,
//! mseal). Syscalls reserved to a capability are allowed when the container holds it (a
//! `SYS_ADMIN` container may mount, as under Docker); `socket` refuses AF_VSOCK (a host
//! channel), `personality` accepts only the personas Docker allows, and `clone` creates no
//! namespace without `SYS_ADMIN` (`clone3`, whose flags seccomp cannot read, answers
//! ENOSYS so that libc falls back to `clone`).

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder,
    LinuxSeccompBuilder, LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};

use crate::{build_err, OciError};

/// Syscalls every container may make.
#[rustfmt::skip]
const ALLOWED: &[&str] = &[
    // Files and directories.
    "access", "faccessat", "faccessat2", "chdir", "fchdir", "getcwd", "chmod", "fchmod",
    "fchmodat", "fchmodat2", "chown", "chown32", "fchown", "fchown32", "fchownat", "lchown",
    "lchown32", "creat", "open", "openat", "openat2", "close", "close_range", "dup", "dup2",
    "dup3", "fcntl", "fcntl64", "flock", "fsync", "fdatasync", "sync", "syncfs",
    "sync_file_range", "link", "linkat", "symlink", "symlinkat", "unlink", "unlinkat",
    "rename", "renameat", "renameat2", "mkdir", "mkdirat", "rmdir", "mknod", "mknodat",
    "readlink", "readlinkat", "stat", "stat64", "lstat", "lstat64", "fstat", "fstat64",
    "fstatat64", "newfstatat", "statx", "statfs", "statfs64", "fstatfs", "fstatfs64",
    "truncate", "truncate64", "ftruncate", "ftruncate64", "fallocate", "fadvise64",
    "fadvise64_64", "readahead", "getdents", "getdents64", "umask", "utime", "utimes",
    "utimensat", "utimensat_time64", "futimesat", "cachestat",
    // Extended attributes.
    "getxattr", "lgetxattr", "fgetxattr", "setxattr", "lsetxattr", "fsetxattr", "listxattr",
    "llistxattr", "flistxattr", "removexattr", "lremovexattr", "fremovexattr",
    // Reading and writing.
    "read", "readv", "pread64", "preadv", "preadv2", "write", "writev", "pwrite64",
    "pwritev", "pwritev2", "lseek", "_llseek", "sendfile", "sendfile64", "splice", "tee",
    "vmsplice", "copy_file_range", "ioctl", "pipe", "pipe2",
    // POSIX asynchronous I/O (not io_uring).
    "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",
    "io_pgetevents_time64",
    // Waiting for events.
    "select", "_newselect", "pselect6", "pselect6_time64", "poll", "ppoll", "ppoll_time64",
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_wait",
    "epoll_wait_old", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "signalfd",
    "signalfd4", "timerfd_create", "timerfd_settime", "timerfd_settime64",
    "timerfd_gettime", "timerfd_gettime64", "inotify_init", "inotify_init1",
    "inotify_add_watch", "inotify_rm_watch", "fanotify_mark",
    // Memory.
    "brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync",
    "mlock", "mlock2", "mlockall", "munlock", "munlockall", "remap_file_pages",
    "membarrier", "memfd_create", "memfd_secret", "pkey_alloc", "pkey_free",
    "pkey_mprotect", "process_mrelease", "map_shadow_stack", "mseal",
    // Processes and threads.
    "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid",
    "waitpid", "kill", "tkill", "tgkill", "pidfd_open", "pidfd_send_signal", "getpid",
    "getppid", "gettid", "getpgid", "setpgid", "getpgrp", "getsid", "setsid", "prctl",
    "set_tid_address", "set_robust_list", "get_robust_list", "rseq", "restart_syscall",
    "seccomp", "capget", "capset", "set_thread_area", "get_thread_area", "ptrace",
    "process_vm_readv", "process_vm_writev", "futex", "futex_time64", "futex_waitv",
    "futex_wake", "futex_wait", "futex_requeue",
    // Credentials.
    "getuid", "getuid32", "geteuid", "geteuid32", "getgid", "getgid32", "getegid",
    "getegid32", "getresuid", "getresuid32", "getresgid", "getresgid32", "getgroups",
    "getgroups32", "setuid", "setuid32", "setgid", "setgid32", "setreuid", "setreuid32",
    "setregid", "setregid32", "setresuid", "setresuid32", "setresgid", "setresgid32",
    "setfsuid", "setfsuid32", "setfsgid", "setfsgid32", "setgroups", "setgroups32",
    // Signals.
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigsuspend",
    "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_sigqueueinfo", "rt_tgsigqueueinfo",
    "sigaltstack", "sigreturn", "sigprocmask", "pause", "alarm",
    // Time (setting the clock needs CAP_SYS_TIME, checked by the kernel).
    "time", "gettimeofday", "clock_gettime", "clock_gettime64", "clock_getres",
    "clock_getres_time64", "clock_nanosleep", "clock_nanosleep_time64", "nanosleep",
    "adjtimex", "clock_adjtime", "clock_adjtime64", "getitimer", "setitimer",
    "timer_create", "timer_delete", "timer_gettime", "timer_gettime64", "timer_settime",
    "timer_settime64", "timer_getoverrun", "times",
    // Scheduling.
    "sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getattr",
    "sched_setattr", "sched_getparam", "sched_setparam", "sched_getscheduler",
    "sched_setscheduler", "sched_get_priority_max", "sched_get_priority_min",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "getpriority", "setpriority",
    "ioprio_get", "ioprio_set", "getcpu",
    // Limits and system information.
    "getrlimit", "ugetrlimit", "setrlimit", "prlimit64", "getrusage", "sysinfo", "uname",
    "getrandom",
    // Sockets (`socket` itself is filtered by address family below).
    "socketpair", "socketcall", "bind", "connect", "listen", "accept", "accept4",
    "getsockname", "getpeername", "getsockopt", "setsockopt", "send", "sendto", "sendmsg",
    "sendmmsg", "recv", "recvfrom", "recvmsg", "recvmmsg", "recvmmsg_time64", "shutdown",
    // System V IPC and POSIX message queues (namespaced).
    "ipc", "msgget", "msgsnd", "msgrcv", "msgctl", "semget", "semop", "semtimedop",
    "semtimedop_time64", "semctl", "shmget", "shmat", "shmdt", "shmctl", "mq_open",
    "mq_unlink", "mq_timedsend", "mq_timedsend_time64", "mq_timedreceive",
    "mq_timedreceive_time64", "mq_notify", "mq_getsetattr",
    // Unprivileged sandboxing.
    "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
];

/// Syscalls of one architecture family (names of other architectures are ignored).
const ALLOWED_X86: &[&str] = &["arch_prctl", "modify_ldt"];
const ALLOWED_ARM: &[&str] = &[
    "arm_fadvise64_64",
    "arm_sync_file_range",
    "sync_file_range2",
    "breakpoint",
    "cacheflush",
    "set_tls",
];

/// Syscalls allowed only to a container holding one of the capabilities.
const CAP_GATED: &[(&[&str], &[Capability])] = &[
    (
        &[
            "mount",
            "umount",
            "umount2",
            "unshare",
            "setns",
            "clone",
            "clone3",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "move_mount",
            "open_tree",
            "open_tree_attr",
            "mount_setattr",
            "fanotify_init",
            "lookup_dcookie",
            "quotactl",
            "quotactl_fd",
            "name_to_handle_at",
            "sethostname",
            "setdomainname",
        ],
        &[Capability::SysAdmin],
    ),
    (&["bpf"], &[Capability::SysAdmin, Capability::Bpf]),
    (
        &["perf_event_open"],
        &[Capability::SysAdmin, Capability::Perfmon],
    ),
    (&["syslog"], &[Capability::SysAdmin, Capability::Syslog]),
    (&["open_by_handle_at"], &[Capability::DacReadSearch]),
    (&["reboot"], &[Capability::SysBoot]),
    (&["chroot"], &[Capability::SysChroot]),
    (
        &["init_module", "finit_module", "delete_module"],
        &[Capability::SysModule],
    ),
    (&["acct"], &[Capability::SysPacct]),
    (
        &["kcmp", "pidfd_getfd", "process_madvise"],
        &[Capability::SysPtrace],
    ),
    (&["iopl", "ioperm"], &[Capability::SysRawio]),
    (
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
        &[Capability::SysTime],
    ),
    (&["vhangup"], &[Capability::SysTtyConfig]),
    (
        &[
            "get_mempolicy",
            "set_mempolicy",
            "set_mempolicy_home_node",
            "mbind",
        ],
        &[Capability::SysNice],
    ),
];

/// Personas `personality(2)` may set: Linux, Linux32 (for `linux32`), each with
/// UNAME26, and 0xffffffff, which only reads the current one.
const PERSONAS: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// Address family `socket(2)` may not create: AF_VSOCK talks to the host or hypervisor.
const AF_VSOCK: u64 = 40;

/// Namespace flags of clone(2) (CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET).
const CLONE_NS_FLAGS: u64 = 0x7E02_0000;

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

/// Architectures a filter must cover so that the 32-bit syscall entry points cannot
/// bypass it.
fn architectures() -> Vec<Arch> {
    if cfg!(target_arch = "x86_64") {
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    } else if cfg!(target_arch = "aarch64") {
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    } else {
        vec![Arch::ScmpArchNative]
    }
}

fn syscall_rule(
    names: Vec<String>,
    action: LinuxSeccompAction,
    errno: Option<u32>,
    arg: Option<(LinuxSeccompOperator, u64, u64)>,
) -> Result<LinuxSyscall, OciError> {
    let mut b = LinuxSyscallBuilder::default().names(names).action(action);
    if let Some(errno) = errno {
        b = b.errno_ret(errno);
    }
    if let Some((op, value, value_two)) = arg {
        let arg = LinuxSeccompArgBuilder::default()
            .index(0usize)
            .value(value)
            .value_two(value_two)
            .op(op)
            .build()
            .map_err(build_err("linux.seccomp"))?;
        b = b.args(vec![arg]);
    }
    b.build().map_err(build_err("linux.seccomp"))
}

fn allow_if(
    name: &str,
    op: LinuxSeccompOperator,
    value: u64,
    value_two: u64,
) -> Result<LinuxSyscall, OciError> {
    syscall_rule(
        vec![name.to_string()],
        LinuxSeccompAction::ScmpActAllow,
        None,
        Some((op, value, value_two)),
    )
}

/// The `RuntimeDefault` profile for a container holding `caps`.
pub fn runtime_default(caps: &HashSet<Capability>) -> Result<LinuxSeccomp, OciError> {
    let mut allowed: BTreeSet<&str> = ALLOWED.iter().copied().collect();
    if cfg!(any(target_arch = "x86_64", target_arch = "x86")) {
        allowed.extend(ALLOWED_X86);
    }
    if cfg!(any(target_arch = "aarch64", target_arch = "arm")) {
        allowed.extend(ALLOWED_ARM);
    }
    for (names, unlocking) in CAP_GATED {
        if unlocking.iter().any(|c| caps.contains(c)) {
            allowed.extend(names.iter().copied());
        }
    }
    let mut syscalls = vec![syscall_rule(
        allowed.iter().map(|s| s.to_string()).collect(),
        LinuxSeccompAction::ScmpActAllow,
        None,
        None,
    )?];
    syscalls.push(allow_if(
        "socket",
        LinuxSeccompOperator::ScmpCmpNe,
        AF_VSOCK,
        0,
    )?);
    for persona in PERSONAS {
        syscalls.push(allow_if(
            "personality",
            LinuxSeccompOperator::ScmpCmpEq,
            persona,
            0,
        )?);
    }
    if !allowed.contains("clone") {
        // (flags & CLONE_NS_FLAGS) == 0. libcontainer takes valueTwo as the mask and value
        // as the datum (runc reads them the other way round): the config is libcontainer's.
        syscalls.push(allow_if(
            "clone",
            LinuxSeccompOperator::ScmpCmpMaskedEq,
            0,
            CLONE_NS_FLAGS,
        )?);
    }
    if !allowed.contains("clone3") {
        syscalls.push(syscall_rule(
            vec!["clone3".to_string()],
            LinuxSeccompAction::ScmpActErrno,
            Some(ENOSYS),
            None,
        )?);
    }
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActErrno)
        .default_errno_ret(EPERM)
        .architectures(architectures())
        .syscalls(syscalls)
        .build()
        .map_err(build_err("linux.seccomp"))
}

/// A `Localhost` profile: an OCI-format seccomp JSON file (`defaultAction`, `syscalls` …).
pub fn load_localhost(path: &Path) -> Result<LinuxSeccomp, OciError> {
    let data = std::fs::read(path).map_err(|source| OciError::Io {
        op: "read seccomp profile",
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&data).map_err(|source| OciError::SeccompProfile {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_profile() -> LinuxSeccomp {
        runtime_default(&crate::caps::capability_set(false, &[], &[], None)).unwrap()
    }

    /// Allowed whatever the arguments.
    fn allowed(p: &LinuxSeccomp, name: &str) -> bool {
        p.syscalls().iter().flatten().any(|s| {
            s.action() == LinuxSeccompAction::ScmpActAllow
                && s.args().is_none()
                && s.names().iter().any(|n| n == name)
        })
    }

    fn rules_for<'a>(p: &'a LinuxSeccomp, name: &str) -> Vec<&'a LinuxSyscall> {
        p.syscalls()
            .iter()
            .flatten()
            .filter(|s| s.names().iter().any(|n| n == name))
            .collect()
    }

    /// What Docker's default profile never allows to a container with default
    /// capabilities, and what we refuse beyond it (io_uring).
    #[rustfmt::skip]
    const REFUSED_BY_DEFAULT: &[&str] = &[
        "io_uring_setup", "io_uring_enter", "io_uring_register", "add_key", "keyctl",
        "request_key", "mount", "umount2", "unshare", "setns", "pivot_root", "fsopen",
        "fsmount", "move_mount", "open_tree", "mount_setattr", "bpf", "perf_event_open",
        "userfaultfd", "kexec_load", "kexec_file_load", "init_module", "finit_module",
        "delete_module", "reboot", "swapon", "swapoff", "acct", "settimeofday",
        "clock_settime", "iopl", "ioperm", "syslog", "vhangup", "quotactl",
        "lookup_dcookie", "fanotify_init", "open_by_handle_at", "name_to_handle_at", "kcmp",
        "pidfd_getfd", "process_madvise", "move_pages", "migrate_pages", "get_mempolicy",
        "set_mempolicy", "mbind", "nfsservctl", "uselib", "ustat", "sysfs", "_sysctl",
        "vm86", "vm86old", "create_module", "query_module", "get_kernel_syms",
        "sethostname", "setdomainname", "listmount", "statmount",
];

    #[test]
    fn default_profile_refuses_everything_not_listed() {
        let p = default_profile();
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(EPERM));
        for n in REFUSED_BY_DEFAULT {
            assert!(rules_for(&p, n).is_empty(), "{n} must not be allowed");
            assert!(!ALLOWED.contains(n), "{n} is in the allow list");
        }
        for n in [
            "read",
            "write",
            "execve",
            "clone3",
            "socket",
            "personality",
            "ptrace",
        ] {
            assert!(!rules_for(&p, n).is_empty(), "{n} has a rule");
        }
        for n in [
            "read",
            "openat",
            "execve",
            "wait4",
            "chroot",
            "arch_prctl",
            "fchmodat2",
        ] {
            assert!(allowed(&p, n), "{n} should be allowed");
        }
    }

    #[test]
    fn socket_personality_clone_are_filtered_by_argument() {
        let p = default_profile();
        let socket = rules_for(&p, "socket");
        assert_eq!(socket.len(), 1);
        let arg = &socket[0].args().as_ref().unwrap()[0];
        assert_eq!(
            (arg.index(), arg.op(), arg.value()),
            (0, LinuxSeccompOperator::ScmpCmpNe, 40)
        );

        let personas: Vec<u64> = rules_for(&p, "personality")
            .iter()
            .map(|r| {
                let a = &r.args().as_ref().unwrap()[0];
                assert_eq!((a.index(), a.op()), (0, LinuxSeccompOperator::ScmpCmpEq));
                assert_eq!(r.action(), LinuxSeccompAction::ScmpActAllow);
                a.value()
            })
            .collect();
        assert_eq!(personas, vec![0, 8, 0x20000, 0x20008, 0xffff_ffff]);

        let clone = rules_for(&p, "clone");
        assert_eq!(clone.len(), 1);
        let a = &clone[0].args().as_ref().unwrap()[0];
        assert_eq!(a.op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
        assert_eq!((a.value(), a.value_two()), (0, Some(0x7E02_0000)));

        let clone3 = rules_for(&p, "clone3");
        assert_eq!(clone3.len(), 1);
        assert_eq!(clone3[0].action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(clone3[0].errno_ret(), Some(ENOSYS));
    }

    #[test]
    fn capabilities_unlock_their_syscalls() {
        let admin = runtime_default(&crate::caps::capability_set(
            false,
            &["SYS_ADMIN".into()],
            &[],
            None,
        ))
        .unwrap();
        for n in [
            "mount", "unshare", "setns", "clone", "clone3", "bpf", "syslog",
        ] {
            assert!(allowed(&admin, n), "{n} with SYS_ADMIN");
        }
        // No argument filter left on clone, no ENOSYS on clone3.
        assert_eq!(rules_for(&admin, "clone").len(), 1);
        assert_eq!(rules_for(&admin, "clone3").len(), 1);
        for n in [
            "keyctl",
            "reboot",
            "io_uring_setup",
            "kexec_load",
            "userfaultfd",
        ] {
            assert!(rules_for(&admin, n).is_empty(), "{n} stays refused");
        }
        // Each gated group opens with each of its capabilities, and only then.
        for (names, unlocking) in CAP_GATED {
            for cap in *unlocking {
                let set = HashSet::from([*cap]);
                let p = runtime_default(&set).unwrap();
                for n in *names {
                    assert!(allowed(&p, n), "{n} with {cap:?}");
                }
            }
            let p = runtime_default(&HashSet::new()).unwrap();
            for n in *names {
                assert!(!allowed(&p, n), "{n} without capabilities");
            }
        }
    }

    #[test]
    fn dropping_sys_chroot_refuses_chroot() {
        let p = runtime_default(&crate::caps::capability_set(
            false,
            &[],
            &["SYS_CHROOT".into()],
            None,
        ))
        .unwrap();
        assert!(rules_for(&p, "chroot").is_empty());
    }

    #[test]
    fn localhost_profile_round_trip() {
        let dir = std::env::temp_dir().join(format!("podhost-seccomp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("p.json");
        std::fs::write(
            &f,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}"#,
        )
        .unwrap();
        let p = load_localhost(&f).unwrap();
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        std::fs::write(&f, "{").unwrap();
        assert!(load_localhost(&f).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
