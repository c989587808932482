//! Capability sets of a container: containerd's defaults, `securityContext.capabilities`
//! add/drop, `privileged`, all limited to what this machine can actually grant.

use std::collections::HashSet;
use std::str::FromStr;

use oci_spec::runtime::Capability;

use crate::DEFAULT_CAPABILITIES;

/// Every capability the OCI spec knows, with its bit number in `/proc/<pid>/status`
/// masks (linux/capability.h).
pub const ALL_CAPABILITIES: [(Capability, u32); 41] = [
    (Capability::Chown, 0),
    (Capability::DacOverride, 1),
    (Capability::DacReadSearch, 2),
    (Capability::Fowner, 3),
    (Capability::Fsetid, 4),
    (Capability::Kill, 5),
    (Capability::Setgid, 6),
    (Capability::Setuid, 7),
    (Capability::Setpcap, 8),
    (Capability::LinuxImmutable, 9),
    (Capability::NetBindService, 10),
    (Capability::NetBroadcast, 11),
    (Capability::NetAdmin, 12),
    (Capability::NetRaw, 13),
    (Capability::IpcLock, 14),
    (Capability::IpcOwner, 15),
    (Capability::SysModule, 16),
    (Capability::SysRawio, 17),
    (Capability::SysChroot, 18),
    (Capability::SysPtrace, 19),
    (Capability::SysPacct, 20),
    (Capability::SysAdmin, 21),
    (Capability::SysBoot, 22),
    (Capability::SysNice, 23),
    (Capability::SysResource, 24),
    (Capability::SysTime, 25),
    (Capability::SysTtyConfig, 26),
    (Capability::Mknod, 27),
    (Capability::Lease, 28),
    (Capability::AuditWrite, 29),
    (Capability::AuditControl, 30),
    (Capability::Setfcap, 31),
    (Capability::MacOverride, 32),
    (Capability::MacAdmin, 33),
    (Capability::Syslog, 34),
    (Capability::WakeAlarm, 35),
    (Capability::BlockSuspend, 36),
    (Capability::AuditRead, 37),
    (Capability::Perfmon, 38),
    (Capability::Bpf, 39),
    (Capability::CheckpointRestore, 40),
];

/// A Kubernetes capability name (`NET_ADMIN`, `CAP_NET_ADMIN`, any case); `None` if unknown.
pub fn parse_capability(name: &str) -> Option<Capability> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    Capability::from_str(bare).ok()
}

/// Whether `name` is a capability name or `ALL` (for validation).
pub fn is_valid_capability_name(name: &str) -> bool {
    name.eq_ignore_ascii_case("ALL") || parse_capability(name).is_some()
}

/// Bounding set of the calling process (`CapBnd` of /proc/self/status); `None` if unreadable.
///
/// A container cannot get a capability its runtime lacks (capset fails), and this machine
/// lacks CAP_SYS_RESOURCE: the daemon passes this mask so such capabilities are left out
/// instead of failing the container.
pub fn host_bounding_mask() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))?
        .trim();
    u64::from_str_radix(hex, 16).ok()
}

/// The capability set of a container, as containerd computes it: privileged gets every
/// capability; otherwise the defaults, minus `drop` (`ALL` drops all), plus `add` (`ALL`
/// adds all). Capabilities outside `host_mask` are removed. Unknown names are ignored
/// (validation rejects them earlier).
pub fn capability_set(
    privileged: bool,
    add: &[String],
    drop: &[String],
    host_mask: Option<u64>,
) -> HashSet<Capability> {
    let all = || ALL_CAPABILITIES.iter().map(|(c, _)| *c);
    let has_all = |list: &[String]| list.iter().any(|n| n.eq_ignore_ascii_case("ALL"));
    let mut set: HashSet<Capability> = if privileged {
        all().collect()
    } else {
        let mut set: HashSet<Capability> = DEFAULT_CAPABILITIES.into_iter().collect();
        if has_all(drop) {
            set.clear();
        }
        for c in drop.iter().filter_map(|n| parse_capability(n)) {
            set.remove(&c);
        }
        if has_all(add) {
            set.extend(all());
        }
        set.extend(add.iter().filter_map(|n| parse_capability(n)));
        set
    };
    if let Some(mask) = host_mask {
        set.retain(|c| {
            ALL_CAPABILITIES
                .iter()
                .find(|(k, _)| k == c)
                .is_some_and(|(_, bit)| mask & (1u64 << bit) != 0)
        });
    }
    set
}

/// The `CapEff` mask of a capability set (what /proc/<pid>/status shows).
pub fn mask_of(set: &HashSet<Capability>) -> u64 {
    ALL_CAPABILITIES
        .iter()
        .filter(|(c, _)| set.contains(c))
        .fold(0, |m, (_, bit)| m | (1u64 << bit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_kubernetes_names() {
        assert_eq!(parse_capability("NET_ADMIN"), Some(Capability::NetAdmin));
        assert_eq!(
            parse_capability("CAP_SYS_ADMIN"),
            Some(Capability::SysAdmin)
        );
        assert_eq!(parse_capability("sys_time"), Some(Capability::SysTime));
        assert_eq!(parse_capability("NOPE"), None);
        assert!(is_valid_capability_name("all"));
    }

    #[test]
    fn default_mask_is_containerds() {
        let set = capability_set(false, &[], &[], None);
        // The well-known default CapEff of docker/containerd containers.
        assert_eq!(mask_of(&set), 0x00000000a80425fb);
    }

    #[test]
    fn add_drop_privileged_and_host_mask() {
        let set = capability_set(false, &s(&["NET_ADMIN"]), &s(&["CHOWN", "KILL"]), None);
        assert!(set.contains(&Capability::NetAdmin));
        assert!(!set.contains(&Capability::Chown));
        assert!(!set.contains(&Capability::Kill));
        let set = capability_set(false, &s(&["NET_BIND_SERVICE"]), &s(&["ALL"]), None);
        assert_eq!(set, HashSet::from([Capability::NetBindService]));
        let set = capability_set(true, &[], &s(&["ALL"]), None);
        assert_eq!(set.len(), 41);
        // Without CAP_SYS_RESOURCE on the host, privileged simply lacks it.
        let set = capability_set(true, &[], &[], Some(0x000001fffeffffff));
        assert_eq!(set.len(), 40);
        assert!(!set.contains(&Capability::SysResource));
    }
}
