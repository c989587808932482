//! Behaviour of the real `pause` binary.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PAUSE: &str = env!("CARGO_BIN_EXE_pause");

#[test]
fn prints_version() {
    let out = Command::new(PAUSE).arg("-v").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("podhost-pause {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn is_statically_linked() {
    // No PT_INTERP (3) and no PT_DYNAMIC (2) program header.
    let elf = std::fs::read(PAUSE).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let off = phoff + i * phentsize;
        let p_type = u32::from_le_bytes(elf[off..off + 4].try_into().unwrap());
        assert!(
            p_type != 2 && p_type != 3,
            "program header {i} has type {p_type}"
        );
    }
}

fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        assert!(Instant::now() < end, "pause did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal_ready(pid: u32) -> bool {
    // Handlers are installed once SigCgt shows SIGTERM (bit 14).
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|m| m & (1 << 14) != 0)
}

#[test]
fn exits_zero_on_sigterm_and_sigint() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let mut child = Command::new(PAUSE).stderr(Stdio::null()).spawn().unwrap();
        let end = Instant::now() + Duration::from_secs(5);
        while !signal_ready(child.id()) {
            assert!(Instant::now() < end, "pause never installed handlers");
            std::thread::sleep(Duration::from_millis(5));
        }
        unsafe { libc::kill(child.id() as i32, sig) };
        assert_eq!(wait_exit(&mut child).code(), Some(0), "signal {sig}");
    }
}

#[test]
fn confines_itself_before_handling_signals() {
    // However it is started: the shim sets no_new_privs, but the filter is the pause's.
    let mut child = Command::new(PAUSE).stderr(Stdio::null()).spawn().unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    while !signal_ready(child.id()) {
        assert!(Instant::now() < end, "pause never installed handlers");
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(field("NoNewPrivs:"), "1", "{status}");
    assert_eq!(field("Seccomp:"), "2", "{status}");
    assert_eq!(field("Seccomp_filters:"), "1", "{status}");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(wait_exit(&mut child).code(), Some(0));
}

#[test]
fn reaps_orphans_as_pid_1() {
    // pause as PID 1 of a fresh PID namespace; an orphan inside must be reaped.
    let mut child = Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child", PAUSE])
        .spawn()
        .unwrap();
    let unshare_pid = child.id();
    let end = Instant::now() + Duration::from_secs(5);
    let pause_pid = loop {
        let kids =
            std::fs::read_to_string(format!("/proc/{unshare_pid}/task/{unshare_pid}/children"))
                .unwrap_or_default();
        if let Some(p) = kids.split_whitespace().next() {
            let p: u32 = p.parse().unwrap();
            if signal_ready(p) {
                break p;
            }
        }
        assert!(Instant::now() < end, "pause did not start");
        std::thread::sleep(Duration::from_millis(10));
    };
    // The inner shell exits at once, orphaning `true` children to pause.
    let st = Command::new("nsenter")
        .args(["-t", &pause_pid.to_string(), "-p", "--", "sh", "-c"])
        .arg("for i in 1 2 3 4 5; do (sleep 0.1; true) & done")
        .status()
        .unwrap();
    assert!(st.success());
    std::thread::sleep(Duration::from_millis(300));
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let kids = std::fs::read_to_string(format!("/proc/{pause_pid}/task/{pause_pid}/children"))
            .unwrap_or_default();
        if kids.trim().is_empty() {
            break;
        }
        assert!(Instant::now() < end, "pause left children/zombies: {kids}");
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::kill(pause_pid as i32, libc::SIGTERM) };
    let st = wait_exit(&mut child);
    assert_eq!(st.code(), Some(0));
}
