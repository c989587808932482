//! Raw Linux system calls, so that the pause binary links no libc: a static glibc costs
//! ~660 KiB of mapped text per pause (its start-up code, IRELATIVE resolvers, locale),
//! ten times what the pause itself needs. A call returns the kernel's value: a result,
//! or `-errno`.

use core::arch::asm;

/// System call `nr` with up to four arguments.
///
/// # Safety
/// The arguments must be what the kernel expects for `nr` (valid pointers included).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub unsafe fn syscall4(nr: i64, a: usize, b: usize, c: usize, d: usize) -> isize {
    let ret: isize;
    // SAFETY: the caller vouches for the arguments; `syscall` clobbers rcx and r11.
    // The fifth and sixth arguments are zero, not whatever r8/r9 held: prctl checks
    // them (PR_SET_NO_NEW_PRIVS fails with EINVAL unless arguments 3-5 are 0).
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a,
            in("rsi") b,
            in("rdx") c,
            in("r10") d,
            in("r8") 0usize,
            in("r9") 0usize,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// System call `nr` with up to four arguments.
///
/// # Safety
/// The arguments must be what the kernel expects for `nr` (valid pointers included).
#[cfg(target_arch = "aarch64")]
#[inline(always)]
pub unsafe fn syscall4(nr: i64, a: usize, b: usize, c: usize, d: usize) -> isize {
    let ret: isize;
    // SAFETY: the caller vouches for the arguments. Arguments five and six are zero
    // (see the x86_64 version).
    unsafe {
        asm!(
            "svc 0",
            in("x8") nr,
            inlateout("x0") a => ret,
            in("x1") b,
            in("x2") c,
            in("x3") d,
            in("x4") 0usize,
            in("x5") 0usize,
            options(nostack),
        );
    }
    ret
}
