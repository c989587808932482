//! The seccomp probe (probe.c) and what it must print, shared by podhost-runc's tests
//! and podhost's end-to-end tests (which include this file by path).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// What the probe prints under RuntimeDefault with the default capabilities (or fewer:
/// none of these calls is unlocked by a default capability).
pub const RUNTIME_DEFAULT: &str = "io_uring_setup EPERM\nsocket_vsock EPERM\nsocket_inet ok\n\
    personality_query ok\npersonality_set EPERM\nclone3 ENOSYS\nkeyctl EPERM\nfork ok\n\
    clone_newuser EPERM\nunshare_user EPERM\n";

/// Builds the probe statically as `dir/seccomp-probe` (its source next to it) and
/// returns its path.
pub fn build(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).expect("probe dir");
    let src = dir.join("seccomp-probe.c");
    std::fs::write(&src, include_str!("probe.c")).expect("write the probe's source");
    let bin = dir.join("seccomp-probe");
    let out = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .expect("gcc (with a static libc, Debian's libc6-dev) is needed for the seccomp tests");
    assert!(
        out.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

/// The security-relevant lines of a /proc/<pid>/status, whitespace normalised.
pub fn security_status(status: &str) -> Vec<String> {
    const FIELDS: [&str; 12] = [
        "Uid:",
        "Gid:",
        "Groups:",
        "Umask:",
        "NoNewPrivs:",
        "Seccomp:",
        "Seccomp_filters:",
        "CapInh:",
        "CapPrm:",
        "CapEff:",
        "CapBnd:",
        "CapAmb:",
    ];
    status
        .lines()
        .filter(|l| FIELDS.iter().any(|f| l.starts_with(f)))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}
