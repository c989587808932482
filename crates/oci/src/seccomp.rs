//! Seccomp profiles: `RuntimeDefault` (podhost's own, blocking what Docker's default
//! profile blocks) and `Localhost` (an OCI-format JSON file).
//!
//! Docker's profile is an allow list of ~350 syscalls; this one is the equivalent block
//! list: everything is allowed except the syscalls Docker leaves out, each unblocked when
//! the container holds the capability that Docker's profile ties it to (a privileged or
//! `SYS_ADMIN` container may mount, as under Docker). A block list stays correct when
//! the kernel adds harmless syscalls; the dangerous ones are the short list below.

use std::collections::HashSet;
use std::path::Path;

use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder,
    LinuxSeccompBuilder, LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};

use crate::{build_err, OciError};

/// Syscalls Docker's default profile denies, and the capabilities that allow them again.
const BLOCKED: &[(&[&str], &[Capability])] = &[
    // Kernel keyring: not namespaced (Docker never allows them).
    (&["add_key", "keyctl", "request_key"], &[]),
    // Mounting and namespaces.
    (
        &[
            "mount",
            "umount",
            "umount2",
            "pivot_root",
            "unshare",
            "setns",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "move_mount",
            "open_tree",
            "mount_setattr",
            "fanotify_init",
            "lookup_dcookie",
            "quotactl",
            "quotactl_fd",
            "swapon",
            "swapoff",
            "name_to_handle_at",
        ],
        &[Capability::SysAdmin],
    ),
    (&["open_by_handle_at"], &[Capability::DacReadSearch]),
    (&["bpf"], &[Capability::SysAdmin, Capability::Bpf]),
    (
        &["perf_event_open"],
        &[Capability::SysAdmin, Capability::Perfmon],
    ),
    (
        &["reboot", "kexec_load", "kexec_file_load"],
        &[Capability::SysBoot],
    ),
    (
        &[
            "init_module",
            "finit_module",
            "delete_module",
            "create_module",
            "query_module",
            "get_kernel_syms",
        ],
        &[Capability::SysModule],
    ),
    (
        &["settimeofday", "stime", "clock_settime", "clock_adjtime"],
        &[Capability::SysTime],
    ),
    (&["acct"], &[Capability::SysPacct]),
    (&["iopl", "ioperm"], &[Capability::SysRawio]),
    (&["syslog"], &[Capability::Syslog]),
    (&["vhangup"], &[Capability::SysTtyConfig]),
    (
        &["get_mempolicy", "set_mempolicy", "mbind", "move_pages"],
        &[Capability::SysNice],
    ),
    (&["userfaultfd"], &[Capability::SysPtrace]),
    // Obsolete or never safe in a container.
    (
        &[
            "nfsservctl",
            "uselib",
            "ustat",
            "sysfs",
            "_sysctl",
            "vm86",
            "vm86old",
        ],
        &[],
    ),
];

/// Namespace flags of clone(2) that Docker's profile refuses without CAP_SYS_ADMIN.
const CLONE_NS_FLAGS: [u64; 7] = [
    0x0002_0000, // CLONE_NEWNS
    0x0200_0000, // CLONE_NEWCGROUP
    0x0400_0000, // CLONE_NEWUTS
    0x0800_0000, // CLONE_NEWIPC
    0x1000_0000, // CLONE_NEWUSER
    0x2000_0000, // CLONE_NEWPID
    0x4000_0000, // CLONE_NEWNET
];

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

fn rule(names: &[&str], errno: u32, args: Option<(usize, u64)>) -> Result<LinuxSyscall, OciError> {
    let mut b = LinuxSyscallBuilder::default()
        .names(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .action(LinuxSeccompAction::ScmpActErrno)
        .errno_ret(errno);
    if let Some((index, flag)) = args {
        // (arg & flag) == flag: the flag is set. value and valueTwo are both the flag,
        // so the rule reads the same whichever of them a runtime takes as the mask.
        let arg = LinuxSeccompArgBuilder::default()
            .index(index)
            .value(flag)
            .value_two(flag)
            .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
            .build()
            .map_err(build_err("linux.seccomp"))?;
        b = b.args(vec![arg]);
    }
    b.build().map_err(build_err("linux.seccomp"))
}

/// The `RuntimeDefault` profile for a container holding `caps`.
pub fn runtime_default(caps: &HashSet<Capability>) -> Result<LinuxSeccomp, OciError> {
    let mut syscalls = Vec::new();
    for (names, unlocking) in BLOCKED {
        if !unlocking.iter().any(|c| caps.contains(c)) {
            syscalls.push(rule(names, EPERM, None)?);
        }
    }
    if !caps.contains(&Capability::SysAdmin) {
        for flag in CLONE_NS_FLAGS {
            // clone's flags are its first argument on x86_64 and arm64.
            syscalls.push(rule(&["clone"], EPERM, Some((0, flag)))?);
        }
        // clone3 passes its flags in memory, out of seccomp's sight: answer ENOSYS so
        // that libc falls back to clone(2), which is filtered (Docker does the same).
        syscalls.push(rule(&["clone3"], ENOSYS, None)?);
    }
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
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

    fn blocked(p: &LinuxSeccomp, name: &str) -> bool {
        p.syscalls()
            .iter()
            .flatten()
            .any(|s| s.names().iter().any(|n| n == name) && s.args().is_none())
    }

    #[test]
    fn default_caps_block_mount_unshare_keyctl_reboot() {
        let caps = crate::caps::capability_set(false, &[], &[], None);
        let p = runtime_default(&caps).unwrap();
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActAllow);
        for n in ["mount", "unshare", "keyctl", "reboot", "bpf", "setns"] {
            assert!(blocked(&p, n), "{n} should be blocked");
        }
        let clone_rules = p
            .syscalls()
            .iter()
            .flatten()
            .filter(|s| s.names() == &vec!["clone".to_string()])
            .count();
        assert_eq!(clone_rules, 7);
    }

    #[test]
    fn capabilities_unblock_their_syscalls() {
        let caps = crate::caps::capability_set(false, &["SYS_ADMIN".into()], &[], None);
        let p = runtime_default(&caps).unwrap();
        assert!(!blocked(&p, "mount"));
        assert!(!blocked(&p, "unshare"));
        assert!(blocked(&p, "keyctl"), "keyring stays blocked");
        assert!(blocked(&p, "reboot"));
        assert!(!blocked(&p, "clone3"));
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
