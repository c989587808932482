//! cgroup v1 hierarchies that libcontainer does not manage: the named `name=systemd`
//! one, and controllers its v1 manager does not know (rdma, misc …).
//!
//! libcontainer puts a container only into the controllers it knows, and bind-mounts
//! every other hierarchy into the container at the path its creator has there. Created
//! from the shim, that is the daemon's path, often the host's root: the container saw
//! the whole host tree (and its `release_agent`) at `/sys/fs/cgroup/systemd`. As runc
//! does for `name=systemd`, this helper first moves itself into `<hierarchy>/<cgroups
//! path>` of each such hierarchy, so that the init it creates inherits its own cgroup
//! there, and removes those cgroups with the container. On cgroup v2 there is nothing
//! to do.

use std::fs;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// Controllers libcontainer 0.7's v1 manager puts containers into.
const MANAGED: [&str; 12] = [
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "hugetlb",
    "memory",
    "pids",
    "perf_event",
    "blkio",
    "net_prio",
    "net_cls",
    "freezer",
];

/// Where the hierarchies are mounted (libcontainer looks nowhere else either).
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// One unmanaged hierarchy of this process: its directory under `/sys/fs/cgroup` and the
/// cgroup this process is in there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Mount directory name (`systemd` for `name=systemd`, `rdma` …).
    pub name: String,
    /// This process's cgroup in it, relative to the hierarchy root.
    pub current: String,
}

/// The v1 hierarchies of a `/proc/<pid>/cgroup` text in which no controller is managed
/// by libcontainer.
pub fn unmanaged(proc_cgroup: &str) -> Vec<Hierarchy> {
    proc_cgroup
        .lines()
        .filter_map(|line| {
            let mut f = line.splitn(3, ':');
            let (id, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            if id == "0" || ctrls.is_empty() {
                return None; // the v2 entry
            }
            if ctrls.split(',').any(|c| MANAGED.contains(&c)) {
                return None;
            }
            let name = ctrls.strip_prefix("name=").unwrap_or(ctrls);
            Some(Hierarchy {
                name: name.to_string(),
                current: path.to_string(),
            })
        })
        .collect()
}

/// A cgroups path from a bundle, checked to stay inside a hierarchy.
pub fn relative(cgroups_path: &str) -> Result<PathBuf> {
    let rel = Path::new(cgroups_path.trim_start_matches('/'));
    if rel.as_os_str().is_empty() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        bail!("cgroups path {cgroups_path:?} is not a plain relative path");
    }
    Ok(rel.to_path_buf())
}

fn hierarchies() -> Result<Vec<Hierarchy>> {
    let text = fs::read_to_string("/proc/self/cgroup").context("read /proc/self/cgroup")?;
    Ok(unmanaged(&text)
        .into_iter()
        .filter(|h| Path::new(CGROUP_ROOT).join(&h.name).is_dir())
        .collect())
}

fn move_self(dir: &Path) -> Result<()> {
    let procs = dir.join("cgroup.procs");
    fs::write(&procs, std::process::id().to_string())
        .with_context(|| format!("move this helper into {}", dir.display()))
}

/// Cgroups this helper joined, to leave again if the container is not made.
pub struct Joined {
    /// (the cgroup made for the container, where this process was before).
    moves: Vec<(PathBuf, PathBuf)>,
}

/// Moves this process into `<hierarchy>/<cgroups_path>` of every unmanaged hierarchy.
pub fn join(cgroups_path: &str) -> Result<Joined> {
    let rel = relative(cgroups_path)?;
    let mut joined = Joined { moves: Vec::new() };
    for h in hierarchies()? {
        let root = Path::new(CGROUP_ROOT).join(&h.name);
        let dir = root.join(&rel);
        let before = root.join(h.current.trim_start_matches('/'));
        let step = fs::create_dir_all(&dir)
            .with_context(|| format!("create cgroup {}", dir.display()))
            .and_then(|()| move_self(&dir));
        if let Err(e) = step {
            joined.leave();
            return Err(e);
        }
        joined.moves.push((dir, before));
    }
    Ok(joined)
}

impl Joined {
    /// Back to where this process was, and the cgroups made for the container removed.
    pub fn leave(self) {
        for (dir, before) in self.moves.into_iter().rev() {
            let _ = move_self(&before);
            rmdir_retry(&dir);
        }
    }
}

/// Removes the container's cgroup in every unmanaged hierarchy (best effort). The pod's
/// cgroup above it goes with the pod: the daemon removes it in every hierarchy.
pub fn remove(cgroups_path: &str) {
    let (Ok(rel), Ok(hs)) = (relative(cgroups_path), hierarchies()) else {
        return;
    };
    for h in hs {
        rmdir_retry(&Path::new(CGROUP_ROOT).join(&h.name).join(&rel));
    }
}

/// The last processes leave a cgroup slightly after they die: EBUSY is retried for 1 s.
pub fn rmdir_retry(dir: &Path) {
    for _ in 0..20 {
        match fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_and_unknown_hierarchies_only() {
        let text = "12:rdma:/\n11:cpu,cpuacct:/x\n9:name=systemd:/system.slice/podhost.service\n\
                    4:memory:/process_api/abc\n1:net_cls,net_prio:/\n0::/\n";
        assert_eq!(
            unmanaged(text),
            vec![
                Hierarchy {
                    name: "rdma".into(),
                    current: "/".into()
                },
                Hierarchy {
                    name: "systemd".into(),
                    current: "/system.slice/podhost.service".into()
                },
            ]
        );
        // cgroup v2: nothing.
        assert!(unmanaged("0::/user.slice\n").is_empty());
    }

    #[test]
    fn cgroups_path_must_stay_inside() {
        assert_eq!(
            relative("/podhost/podu1/c1").unwrap(),
            PathBuf::from("podhost/podu1/c1")
        );
        for bad in ["/", "", "/a/../../etc", "../x"] {
            assert!(relative(bad).is_err(), "{bad:?}");
        }
    }
}
