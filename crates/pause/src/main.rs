//! `pause`: the infra process of a podhost pod.
//!
//! It is PID 1 of the pod's PID namespace and holds the pod's network, IPC
//! and UTS namespaces open. As PID 1 it must reap orphaned zombies, and it
//! exits cleanly on SIGINT/SIGTERM. It is linked statically (see build.rs)
//! and uses only libc so that it costs almost no memory per pod. Before anything
//! else it confines itself with a seccomp filter (see the library).
#![no_main]

use core::ffi::{c_char, c_int};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn write_fd(fd: c_int, msg: &[u8]) {
    // SAFETY: writing a valid buffer; a short or failed write to a log is harmless.
    unsafe {
        libc::write(fd, msg.as_ptr().cast(), msg.len());
    }
}

extern "C" fn on_shutdown(_sig: c_int) {
    // exit(0) rather than _exit to match pause.c; nothing is buffered anyway.
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(0) }
}

extern "C" fn on_child(_sig: c_int) {
    // One SIGCHLD may stand for many dead children: reap until none is left.
    // SAFETY: waitpid is async-signal-safe; errno is saved so the interrupted
    // pause() loop is not confused.
    unsafe {
        let errno = *libc::__errno_location();
        while libc::waitpid(-1, core::ptr::null_mut(), libc::WNOHANG) > 0 {}
        *libc::__errno_location() = errno;
    }
}

fn install(sig: c_int, handler: extern "C" fn(c_int), flags: c_int) -> bool {
    // SAFETY: sigaction with a zeroed struct, an empty mask and a plain handler.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = handler as usize;
        sa.sa_flags = flags;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(sig, &sa, core::ptr::null_mut()) == 0
    }
}

/// C entry point: `pause [-v]`.
#[no_mangle]
extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    if argc > 1 {
        // SAFETY: argv has argc valid NUL-terminated entries.
        let arg = unsafe { core::ffi::CStr::from_ptr(*argv.add(1)) };
        if arg.to_bytes() == b"-v" {
            write_fd(1, b"podhost-pause ");
            write_fd(1, VERSION.as_bytes());
            write_fd(1, b"\n");
            return 0;
        }
    }
    // SAFETY: getpid has no preconditions.
    if unsafe { libc::getpid() } != 1 {
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
        return 1;
    }
    let ok = install(libc::SIGINT, on_shutdown, 0)
        && install(libc::SIGTERM, on_shutdown, 0)
        && install(
            libc::SIGCHLD,
            on_child,
            libc::SA_NOCLDSTOP | libc::SA_RESTART,
        );
    if !ok {
        write_fd(2, b"pause: sigaction failed\n");
        return 1;
    }
    // The parent may have spawned us with signals blocked; make sure ours arrive.
    // SAFETY: an empty set is a valid mask.
    unsafe {
        let mut set: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, core::ptr::null_mut());
        loop {
            // sigsuspend rather than pause(2), which aarch64 lacks (glibc would emulate
            // it with ppoll): one call the seccomp filter allows on every arch.
            libc::sigsuspend(&set);
        }
    }
}

/// `n` in decimal, in the tail of `buf`.
fn decimal(mut n: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}
