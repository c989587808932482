extern crate std;

use super::*;
use std::vec::Vec;

/// Runs `prog` on one `seccomp_data` the way the kernel does (only the instructions
/// the filter uses; anything else fails the test).
fn run(prog: &[libc::sock_filter], nr: u32, arch: u32) -> u32 {
    let (mut pc, mut acc) = (0usize, 0u32);
    loop {
        let ins = prog[pc];
        match ins.code {
            LD_ABS_W => {
                acc = match ins.k {
                    DATA_NR => nr,
                    DATA_ARCH => arch,
                    k => panic!("load of seccomp_data offset {k}"),
                };
                pc += 1;
            }
            RET_K => return ins.k,
            code => {
                let taken = match code {
                    JEQ_K => acc == ins.k,
                    c if c == (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16 => acc >= ins.k,
                    c => panic!("unexpected BPF code {c:#x} at {pc}"),
                };
                pc += 1 + usize::from(if taken { ins.jt } else { ins.jf });
            }
        }
    }
}

/// Calls the pause never makes, each a way out of a sandbox or into another process.
const REFUSED: [c_long; 12] = [
    libc::SYS_openat,
    libc::SYS_execve,
    libc::SYS_ptrace,
    libc::SYS_kill,
    libc::SYS_mmap,
    libc::SYS_socket,
    libc::SYS_prctl,
    libc::SYS_setns,
    libc::SYS_mount,
    libc::SYS_process_vm_writev,
    libc::SYS_io_uring_setup,
    libc::SYS_getppid,
];

#[test]
fn program_allows_the_list_refuses_the_rest_and_kills_foreign_conventions() {
    for nr in ALLOWED {
        assert_eq!(run(&FILTER, nr as u32, AUDIT_ARCH), ALLOW, "syscall {nr}");
    }
    for nr in REFUSED {
        assert_eq!(run(&FILTER, nr as u32, AUDIT_ARCH), DENY, "syscall {nr}");
    }
    // The same numbers under another arch (i386, arm) mean other calls.
    for arch in [0x4000_0003u32, 0x4000_0028] {
        for nr in ALLOWED.iter().chain(REFUSED.iter()) {
            assert_eq!(run(&FILTER, *nr as u32, arch), KILL, "arch {arch:#x}");
        }
    }
    #[cfg(target_arch = "x86_64")]
    for nr in ALLOWED {
        assert_eq!(run(&FILTER, nr as u32 | X32_SYSCALL_BIT, AUDIT_ARCH), KILL);
    }
    assert_eq!(FILTER.len(), LEN);
}

/// Forks; the child locks itself down, runs `f` and writes its results to a pipe.
/// Returns (results, wait status).
fn in_locked_child(f: fn() -> [c_long; 4]) -> (Vec<c_long>, i32) {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array; the child makes only raw system calls (no
    // allocation, no locks) before _exit.
    unsafe {
        assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
        let pid = libc::fork();
        assert!(pid >= 0, "fork");
        if pid == 0 {
            libc::close(fds[0]);
            if lock_down().is_err() {
                libc::_exit(100);
            }
            let out = f();
            libc::write(fds[1], out.as_ptr().cast(), core::mem::size_of_val(&out));
            libc::_exit(0);
        }
        libc::close(fds[1]);
        let mut buf: [c_long; 4] = [0; 4];
        let n = libc::read(
            fds[0],
            buf.as_mut_ptr().cast(),
            core::mem::size_of_val(&buf),
        );
        libc::close(fds[0]);
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        let got = if n == core::mem::size_of_val(&buf) as isize {
            buf.to_vec()
        } else {
            Vec::new()
        };
        (got, status)
    }
}

fn errno() -> i32 {
    // SAFETY: errno of the calling thread.
    unsafe { *libc::__errno_location() }
}

/// -errno of a failed call, else its result.
fn result(r: c_long) -> c_long {
    if r == -1 {
        -c_long::from(errno())
    } else {
        r
    }
}

#[test]
fn the_kernel_enforces_the_filter() {
    let (got, status) = in_locked_child(|| {
        // SAFETY: raw system calls with valid arguments.
        unsafe {
            [
                result(libc::syscall(libc::SYS_getppid)),
                result(libc::syscall(
                    libc::SYS_openat,
                    libc::AT_FDCWD,
                    c"/".as_ptr(),
                    libc::O_RDONLY,
                )),
                result(libc::syscall(
                    libc::SYS_rt_sigprocmask,
                    libc::SIG_BLOCK,
                    core::ptr::null::<libc::sigset_t>(),
                    core::ptr::null_mut::<libc::sigset_t>(),
                    8,
                )),
                result(libc::syscall(
                    libc::SYS_wait4,
                    -1,
                    core::ptr::null_mut::<i32>(),
                    libc::WNOHANG,
                    core::ptr::null_mut::<libc::rusage>(),
                )),
            ]
        }
    });
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "status {status:#x}"
    );
    let eperm = -c_long::from(libc::EPERM);
    // Refused: getppid, openat. Allowed: sigprocmask (0), wait4 (no child: ECHILD).
    assert_eq!(got, [eperm, eperm, 0, -c_long::from(libc::ECHILD)]);
}

#[cfg(target_arch = "x86_64")]
#[test]
fn an_x32_call_kills_the_process() {
    let (got, status) = in_locked_child(|| {
        // SAFETY: a raw system call; the filter kills the process before it runs.
        let r = unsafe { libc::syscall(libc::SYS_getpid | X32_SYSCALL_BIT as c_long) };
        [r, 0, 0, 0]
    });
    assert!(got.is_empty(), "the child went on: {got:?}");
    assert!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSYS,
        "status {status:#x}"
    );
}
