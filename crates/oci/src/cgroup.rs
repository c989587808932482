//! What a container sees of the host's cgroups, and the one cgroup v1 → v2 CPU weight
//! conversion podhost uses for pod and container cgroups alike.
//!
//! containerd's CRI plugin mounts the cgroupfs read-only into every unprivileged
//! container; on cgroup v2 it also gives each one a private cgroup namespace, so the
//! container sees its own cgroup as the root of `/sys/fs/cgroup` and nothing of its
//! neighbours. A privileged container gets neither (the host's tree, writable).

use std::path::{Component, Path, PathBuf};

/// The host's cgroup filesystem, as far as a container spec depends on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupFs {
    /// cgroup v1 (legacy or hybrid): the names of the hierarchies mounted right under
    /// `/sys/fs/cgroup` (`memory`, `cpu,cpuacct`, `systemd` …). libcontainer bind-mounts
    /// each of them into the container at `/sys/fs/cgroup/<name>`.
    V1(Vec<String>),
    /// The unified hierarchy (cgroup v2) at `/sys/fs/cgroup`.
    V2,
}

impl Default for CgroupFs {
    /// No hierarchy known: no cgroup namespace, only the cgroupfs root made read-only.
    /// Callers describe the real host with [`CgroupFs::host`].
    fn default() -> Self {
        CgroupFs::V1(Vec::new())
    }
}

/// Where every runtime mounts the cgroupfs, on the host and in containers.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// A mount of [`CgroupFs::v1_mounts`]: destination, and source (`None`: the tmpfs).
pub type CgroupMount = (String, Option<PathBuf>);

impl CgroupFs {
    /// This machine's cgroupfs, from `/proc/self/mountinfo`; v1 with no hierarchy when
    /// it cannot be read.
    pub fn host() -> CgroupFs {
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        CgroupFs::from_mountinfo(&text)
    }

    /// Parses a `mountinfo` text: v2 when `/sys/fs/cgroup` itself is a cgroup2 mount,
    /// otherwise v1 with the `cgroup` (v1) mounts directly below it, in mount order.
    /// The `unified` cgroup2 mount of a hybrid host is not a v1 hierarchy: libcontainer
    /// does not mount it into containers.
    pub fn from_mountinfo(text: &str) -> CgroupFs {
        let mut hierarchies = Vec::new();
        for line in text.lines() {
            // "<id> <parent> <dev> <root> <mount point> <options> [optional…] - <type> …"
            let fields: Vec<&str> = line.split(' ').collect();
            let Some(sep) = fields.iter().position(|f| *f == "-") else {
                continue;
            };
            let (Some(mount_point), Some(fs_type)) = (fields.get(4), fields.get(sep + 1)) else {
                continue;
            };
            if *mount_point == CGROUP_ROOT && *fs_type == "cgroup2" {
                return CgroupFs::V2;
            }
            if *fs_type != "cgroup" {
                continue;
            }
            let Some(name) = mount_point
                .strip_prefix(CGROUP_ROOT)
                .and_then(|r| r.strip_prefix('/'))
            else {
                continue;
            };
            if !name.is_empty() && !name.contains('/') && !hierarchies.iter().any(|h| h == name) {
                hierarchies.push(name.to_string());
            }
        }
        CgroupFs::V1(hierarchies)
    }

    /// Container paths to remount read-only so that nothing under `/sys/fs/cgroup` can be
    /// written: its root and, on v1, every hierarchy mounted below it. libcontainer 0.7
    /// ignores the `ro` option of a v1 cgroup mount (it bind-mounts each hierarchy
    /// read-write onto a writable tmpfs); a read-only path is remounted after all mounts.
    /// On v2 the `ro` cgroup2 mount suffices, the root is listed anyway in case
    /// libcontainer falls back to a bind mount (which ignores `ro` too).
    pub fn readonly_paths(&self) -> Vec<String> {
        let mut out = vec![CGROUP_ROOT.to_string()];
        if let CgroupFs::V1(hierarchies) = self {
            out.extend(hierarchies.iter().map(|h| format!("{CGROUP_ROOT}/{h}")));
        }
        out
    }

    /// Container paths of the names a co-mounted v1 hierarchy is also known by (`cpu` and
    /// `cpuacct` of `cpu,cpuacct`, symlinks on the host), with that hierarchy's name;
    /// names that are hierarchies of their own are not aliases.
    fn comount_aliases(&self) -> Vec<(String, String)> {
        let CgroupFs::V1(hierarchies) = self else {
            return Vec::new();
        };
        let mut out: Vec<(String, String)> = Vec::new();
        for h in hierarchies.iter().filter(|h| h.contains(',')) {
            for alias in h.split(',') {
                let path = format!("{CGROUP_ROOT}/{alias}");
                if !hierarchies.iter().any(|o| o == alias) && !out.iter().any(|(p, _)| *p == path) {
                    out.push((path, h.clone()));
                }
            }
        }
        out
    }

    /// The v1 cgroupfs of a container as explicit mounts, instead of libcontainer 0.7's
    /// `cgroup` mount, for a container that joins its pod's PID namespace: (destination,
    /// source) pairs, a tmpfs at `/sys/fs/cgroup` (source `None`), then for each
    /// hierarchy and alias the container's own cgroup there (`cgroups_path`, where
    /// libcontainer, and podhost-runc for the hierarchies libcontainer leaves alone, put
    /// the init), bind-mounted.
    ///
    /// libcontainer's v1 cgroup mount strips "the cgroup of PID 1" from the init's cgroup
    /// paths and looks that PID up as `/proc/<init's pid>` when the init has no parent in
    /// its PID namespace: in a joined namespace that pid (the init's pid *there*) names an
    /// unrelated host process or none. None: the create failed ("failed to prepare
    /// rootfs", NotFound /proc/<pid>) once the pod's namespace had used up the pids the
    /// host's kernel threads hold; some other process: its cgroup was stripped from the
    /// container's. `None` on v2 (a cgroup2 mount in a cgroup namespace) and with no
    /// hierarchy known; `Err` with a cgroups path that is not a plain absolute path.
    pub fn v1_mounts(
        &self,
        cgroups_path: &str,
    ) -> Result<Option<Vec<CgroupMount>>, crate::OciError> {
        let CgroupFs::V1(hierarchies) = self else {
            return Ok(None);
        };
        if hierarchies.is_empty() {
            return Ok(None);
        }
        let relative = Path::new(cgroups_path);
        let plain = relative.is_absolute()
            && relative
                .components()
                .skip(1)
                .all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            return Err(crate::OciError::CgroupsPath(cgroups_path.to_string()));
        }
        let relative = relative.strip_prefix("/").unwrap_or(relative);
        let mut out = vec![(CGROUP_ROOT.to_string(), None)];
        let own = |h: &str| Path::new(CGROUP_ROOT).join(h).join(relative);
        out.extend(
            hierarchies
                .iter()
                .map(|h| (format!("{CGROUP_ROOT}/{h}"), Some(own(h)))),
        );
        out.extend(
            self.comount_aliases()
                .into_iter()
                .map(|(alias, h)| (alias, Some(own(&h)))),
        );
        Ok(Some(out))
    }
}

/// cgroup v2 `cpu.weight` for v1 `cpu.shares`: the conversion of runc ≥ 1.3 and
/// opencontainers/cgroups (`ConvertCPUSharesToCgroupV2Value`), which current kubelets and
/// libcontainer 0.7 use. A quadratic in log2(shares) through (2, 1), (1024, 100) and
/// (262144, 10000), so the v1 default 1024 becomes the v2 default 100; the older linear
/// formula made it 39 and 250m (256 shares) 10 instead of 35. 0 means unset.
pub fn shares_to_weight(shares: u64) -> u64 {
    const MIN_SHARES: u64 = 2;
    const MAX_SHARES: u64 = 262_144;
    const MAX_WEIGHT: u64 = 10_000;
    match shares {
        0 => 0,
        s if s <= MIN_SHARES => 1,
        s if s >= MAX_SHARES => MAX_WEIGHT,
        s => {
            // Computed in the same order as libcontainer, so that pod and container
            // cgroups get the same value to the last bit.
            let l = (s as f64).log2();
            let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
            (10f64.powf(exponent).ceil() as u64).clamp(1, MAX_WEIGHT)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_matches_runc_1_3() {
        // opencontainers/cgroups' table: unset, below the minimum, the minimum, just
        // above it, the default, just below the maximum, the maximum, above it.
        for (shares, weight) in [
            (0, 0),
            (1, 1),
            (2, 1),
            (3, 2),
            (1024, 100),
            (262_143, 10_000),
            (262_144, 10_000),
            (262_145, 10_000),
        ] {
            assert_eq!(shares_to_weight(shares), weight, "shares {shares}");
        }
        // kubelet's milliCPUToShares: 100m → 102, 250m → 256, 1 CPU → 1024, 2 → 2048;
        // what libcontainer wrote into container cgroups for these.
        assert_eq!(shares_to_weight(102), 17);
        assert_eq!(shares_to_weight(256), 35);
        assert_eq!(shares_to_weight(2048), 174);
        // Monotonic over the whole range.
        let mut last = 0;
        for s in (2..=262_144).step_by(97) {
            let w = shares_to_weight(s);
            assert!(w >= last, "{s}: {w} < {last}");
            last = w;
        }
    }

    const HYBRID: &str = "\
23 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 23 0:39 / /mnt/elsewhere rw,relatime - cgroup cgroup rw,pids
43 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
";

    #[test]
    fn detects_v1_hierarchies_and_v2() {
        assert_eq!(
            CgroupFs::from_mountinfo(HYBRID),
            CgroupFs::V1(vec![
                "cpu".into(),
                "cpu,cpuacct".into(),
                "memory".into(),
                "systemd".into()
            ])
        );
        let v2 = "23 1 8:1 / / rw - ext4 /dev/vda rw\n\
                  30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(CgroupFs::from_mountinfo(v2), CgroupFs::V2);
        assert_eq!(CgroupFs::from_mountinfo(""), CgroupFs::V1(Vec::new()));
    }

    #[test]
    fn readonly_paths_cover_every_hierarchy() {
        assert_eq!(
            CgroupFs::from_mountinfo(HYBRID).readonly_paths(),
            vec![
                "/sys/fs/cgroup",
                "/sys/fs/cgroup/cpu",
                "/sys/fs/cgroup/cpu,cpuacct",
                "/sys/fs/cgroup/memory",
                "/sys/fs/cgroup/systemd"
            ]
        );
        assert_eq!(CgroupFs::V2.readonly_paths(), vec!["/sys/fs/cgroup"]);
    }
}
