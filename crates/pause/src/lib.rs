//! The pause binary's own confinement, a library so that it is tested without root.
//!
//! The shim starts the pause already locked down (own mount namespace on a read-only
//! root holding only the binary, uid/gid 65535, no capabilities, no_new_privs, empty
//! environment, only /dev/null on 0-2). What the shim cannot do without also filtering
//! glibc's start-up (brk, arch_prctl, rseq, prlimit64, readlink, getrandom, mprotect …,
//! a list that changes with glibc) is the seccomp filter: the pause installs it itself
//! at the start of `main`, allowing only the few calls its loop makes.
#![no_std]

use core::ffi::c_long;

pub mod sys;

/// `AUDIT_ARCH_*` of the target: the filter refuses system calls made with any other
/// calling convention (i386 `int 0x80`, x32 on x86_64) whose numbers mean other calls.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("pause: no seccomp audit arch known for this target (add its AUDIT_ARCH_*)");

/// x32 system calls on x86_64 carry this bit and pass the arch check: refuse them.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Every system call the pause makes once the filter is in place: signal handling,
/// reaping, its two messages on stderr, and exit. Nothing opens, maps, execs or signals.
pub const ALLOWED: [c_long; 9] = [
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigsuspend,
    // A call interrupted by a stop (SIGSTOP, ptrace) is resumed through restart_syscall.
    libc::SYS_restart_syscall,
    libc::SYS_wait4,
    libc::SYS_write,
    libc::SYS_exit,
    libc::SYS_exit_group,
];

/// Offsets into `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

const LD_ABS_W: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
#[cfg(target_arch = "x86_64")]
const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// Result of a refused call of the right arch: EPERM (as containerd's RuntimeDefault),
/// so a stray call fails instead of killing every container of a shared PID namespace.
pub const DENY: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
/// Result of a call made with a foreign calling convention.
pub const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;
/// Result of an allowed call.
pub const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;

const fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// Instructions before the per-call comparisons (arch check, load nr, x32 check).
#[cfg(target_arch = "x86_64")]
const HEAD: usize = 4;
#[cfg(not(target_arch = "x86_64"))]
const HEAD: usize = 3;

/// Length of [`FILTER`]: head, one comparison per allowed call, three returns.
pub const LEN: usize = HEAD + ALLOWED.len() + 3;

/// The classic-BPF program: `[arch check] [x32 check] (nr == allowed → ALLOW)* DENY`,
/// followed by the ALLOW and KILL returns the jumps land on.
pub const FILTER: [libc::sock_filter; LEN] = build();

const fn build() -> [libc::sock_filter; LEN] {
    // Absolute positions of the three returns at the end.
    const DENY_AT: usize = LEN - 3;
    const ALLOW_AT: usize = LEN - 2;
    const KILL_AT: usize = LEN - 1;
    let mut p = [stmt(RET_K, KILL); LEN];
    // A jump from instruction i lands at i + 1 + offset.
    p[0] = stmt(LD_ABS_W, DATA_ARCH);
    p[1] = jump(JEQ_K, AUDIT_ARCH, 0, (KILL_AT - 2) as u8);
    p[2] = stmt(LD_ABS_W, DATA_NR);
    #[cfg(target_arch = "x86_64")]
    {
        p[3] = jump(JGE_K, X32_SYSCALL_BIT, (KILL_AT - 4) as u8, 0);
    }
    let mut i = 0;
    while i < ALLOWED.len() {
        let at = HEAD + i;
        p[at] = jump(JEQ_K, ALLOWED[i] as u32, (ALLOW_AT - at - 1) as u8, 0);
        i += 1;
    }
    p[DENY_AT] = stmt(RET_K, DENY);
    p[ALLOW_AT] = stmt(RET_K, ALLOW);
    p[KILL_AT] = stmt(RET_K, KILL);
    p
}

/// Sets no_new_privs, makes the process non-dumpable and installs [`FILTER`].
/// On failure returns the step that failed and its errno.
///
/// no_new_privs is what lets a process without CAP_SYS_ADMIN install a filter (the
/// shim already set it; setting it again keeps a pause started any other way safe).
/// Non-dumpable makes /proc/<pause>/* root's and ptrace need CAP_SYS_PTRACE, so a
/// container that happens to run as uid 65535 in a shared PID namespace cannot attach
/// to the pause or open its /proc files.
#[inline]
pub fn lock_down() -> Result<(), (&'static str, i32)> {
    let prog = libc::sock_fprog {
        len: LEN as u16,
        filter: FILTER.as_ptr().cast_mut(),
    };
    let prctl = |op: libc::c_int, arg: usize| {
        // SAFETY: prctl with integer arguments, or (seccomp) a filter program that
        // outlives the call (the kernel copies it).
        let r = unsafe { sys::syscall4(libc::SYS_prctl, op as usize, arg, 0, 0) };
        match r {
            0 => Ok(()),
            e => Err(-(e as i32)),
        }
    };
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1).map_err(|e| ("prctl(PR_SET_NO_NEW_PRIVS)", e))?;
    prctl(libc::PR_SET_DUMPABLE, 0).map_err(|e| ("prctl(PR_SET_DUMPABLE)", e))?;
    // PR_SET_SECCOMP takes the mode then the program: shift them into place.
    // SAFETY: as above.
    let r = unsafe {
        sys::syscall4(
            libc::SYS_prctl,
            libc::PR_SET_SECCOMP as usize,
            libc::SECCOMP_MODE_FILTER as usize,
            &prog as *const libc::sock_fprog as usize,
            0,
        )
    };
    if r != 0 {
        return Err(("seccomp filter", -(r as i32)));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
