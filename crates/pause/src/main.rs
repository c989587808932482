//! `pause`: the infra process of a podhost pod.
//!
//! It is PID 1 of the pod's PID namespace and holds the pod's network, IPC
//! and UTS namespaces open. As PID 1 it must reap orphaned zombies, and it
//! exits cleanly on SIGINT/SIGTERM. Before anything else it confines itself with a
//! seccomp filter (see the library).
//!
//! It calls no libc: its own `_start`, raw system calls (`pause::sys`), no allocation,
//! no panic paths. With glibc's start-up (static, IRELATIVE resolvers, locale, stdio)
//! 664 KiB of the binary were resident in every pause; now glibc's and std's code is
//! still in the file (std is linked because the workspace profile unwinds, and lld keeps
//! what its unwind tables name) but never runs, so only the pages the pause touches are
//! mapped: 148 KiB VmRSS instead of 716. build.rs links it `-nostartfiles -static`.
//! Nothing here may call into core or std functions that reach libc (CStr::from_ptr
//! calls strlen, an IFUNC nothing resolves) or panic (the handler needs glibc's TLS).
#![no_main]

use core::ffi::c_int;
use pause::sys::syscall4;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `struct sigaction` as the kernel takes it (not glibc's layout).
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// Size of the kernel's signal set, the last argument of the rt_sig* calls.
const SIGSET_SIZE: usize = 8;
/// The kernel returns from a handler through the restorer given with this flag.
const SA_RESTORER: u64 = 0x0400_0000;

fn write_fd(fd: c_int, msg: &[u8]) {
    // SAFETY: writing a valid buffer; a short or failed write to a log is harmless.
    unsafe {
        syscall4(
            libc::SYS_write,
            fd as usize,
            msg.as_ptr() as usize,
            msg.len(),
            0,
        );
    }
}

fn exit(code: i32) -> ! {
    loop {
        // SAFETY: exit_group ends the process.
        unsafe {
            syscall4(libc::SYS_exit_group, code as usize, 0, 0, 0);
        }
    }
}

extern "C" fn on_shutdown(_sig: c_int) {
    exit(0)
}

extern "C" fn on_child(_sig: c_int) {
    // One SIGCHLD may stand for many dead children: reap until none is left.
    // SAFETY: wait4 with no status or rusage pointer.
    while unsafe { syscall4(libc::SYS_wait4, usize::MAX, 0, libc::WNOHANG as usize, 0) } > 0 {}
}

// x86_64 has no kernel-provided return path from a handler: sa_restorer must call
// rt_sigreturn (glibc's __restore_rt does the same). arm64 uses the vDSO's.
#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".globl pause_restore_rt",
    "pause_restore_rt:",
    "mov eax, 15", // SYS_rt_sigreturn
    "syscall",
);

#[cfg(target_arch = "x86_64")]
extern "C" {
    fn pause_restore_rt();
}

fn install(sig: c_int, handler: extern "C" fn(c_int), flags: u64) -> bool {
    #[cfg(target_arch = "x86_64")]
    let (flags, restorer) = (flags | SA_RESTORER, pause_restore_rt as *const () as usize);
    #[cfg(not(target_arch = "x86_64"))]
    let (flags, restorer) = (flags & !SA_RESTORER, 0usize);
    let sa = KernelSigaction {
        handler: handler as usize,
        flags,
        restorer,
        mask: 0,
    };
    // SAFETY: a valid kernel sigaction; the handlers only make system calls.
    unsafe {
        syscall4(
            libc::SYS_rt_sigaction,
            sig as usize,
            &sa as *const KernelSigaction as usize,
            0,
            SIGSET_SIZE,
        ) == 0
    }
}

// The process entry: the kernel leaves argc, argv[], NULL, envp[] at the stack pointer.
#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".globl _start",
    "_start:",
    "xor ebp, ebp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call pause_main",
    "ud2",
);

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".globl _start",
    "_start:",
    "mov x29, #0",
    "mov x30, #0",
    "mov x0, sp",
    "bl pause_main",
    "brk #0",
);

/// `pause [-v]`; `sp` points at argc.
///
/// # Safety
/// Called once, by `_start`, with the initial stack pointer.
#[no_mangle]
unsafe extern "C" fn pause_main(sp: *const usize) -> ! {
    // SAFETY: the kernel's initial stack: argc, then argc pointers and a NULL.
    let (argc, argv) = unsafe { (*sp, sp.add(1) as *const *const u8) };
    // Byte by byte: CStr would call libc's strlen (an IFUNC that nothing here resolves).
    // SAFETY: argv[1] exists (argc > 1) and is NUL-terminated, so reading up to its
    // first NUL (at most three bytes here) stays inside it.
    let version = argc > 1
        && unsafe {
            let a = *argv.add(1);
            *a == b'-' && *a.add(1) == b'v' && *a.add(2) == 0
        };
    {
        if version {
            write_fd(1, b"podhost-pause ");
            write_fd(1, VERSION.as_bytes());
            write_fd(1, b"\n");
            exit(0);
        }
    }
    // SAFETY: getpid has no arguments.
    if unsafe { syscall4(libc::SYS_getpid, 0, 0, 0, 0) } != 1 {
        write_fd(2, b"pause: warning: not running as PID 1\n");
    }
    // Fail closed: a pause that cannot confine itself must not hold a pod's namespaces.
    if let Err((step, errno)) = pause::lock_down() {
        write_fd(2, b"pause: ");
        write_fd(2, step.as_bytes());
        write_fd(2, b" failed, errno ");
        let mut digits = [0u8; 10];
        write_fd(2, decimal(errno.unsigned_abs(), &mut digits));
        write_fd(2, b"\n");
        exit(1);
    }
    let ok = install(libc::SIGINT, on_shutdown, 0)
        && install(libc::SIGTERM, on_shutdown, 0)
        && install(
            libc::SIGCHLD,
            on_child,
            (libc::SA_NOCLDSTOP | libc::SA_RESTART) as u64,
        );
    if !ok {
        write_fd(2, b"pause: sigaction failed\n");
        exit(1);
    }
    // The parent may have spawned us with signals blocked; make sure ours arrive.
    let empty: u64 = 0;
    // SAFETY: an empty set is a valid mask.
    unsafe {
        syscall4(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK as usize,
            &empty as *const u64 as usize,
            0,
            SIGSET_SIZE,
        );
    }
    loop {
        // sigsuspend rather than pause(2), which aarch64 lacks: one call the seccomp
        // filter allows on every arch.
        // SAFETY: as above.
        unsafe {
            syscall4(
                libc::SYS_rt_sigsuspend,
                &empty as *const u64 as usize,
                SIGSET_SIZE,
                0,
                0,
            );
        }
    }
}

/// `n` in decimal, in the tail of `buf` (no indexing: nothing here may panic).
fn decimal(mut n: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut len = 0;
    for slot in buf.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
        len += 1;
        if n == 0 {
            break;
        }
    }
    let from = buf.len().saturating_sub(len);
    buf.get(from..).unwrap_or_default()
}
