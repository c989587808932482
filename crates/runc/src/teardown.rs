//! `delete --force` without libcontainer's cgroup manager.
//!
//! libcontainer 0.7's v1 manager looks up the mount point of each of its twelve
//! controllers in `/proc/self/mountinfo`, and its forced delete builds two managers (one
//! to kill, one to remove): 24 reads of a file listing every mount of the host, two
//! overlays, a `/dev/shm` and a netns pin per pod. Deleting one container thus cost
//! O(pods); deleting 200 pods spent half the machine's CPU in the kernel formatting
//! mountinfo for these helpers. A container's cgroups are `<hierarchy>/<cgroups path>`
//! under `/sys/fs/cgroup` (where libcontainer creates them too), so they are found,
//! emptied and removed here without reading it.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::named_cgroups::{relative, rmdir_retry, CGROUP_ROOT};

/// How long the processes of a container get to die before the delete gives up on its
/// cgroups (they are then left for the pod's removal, which kills by the pod cgroup).
const KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// The container's cgroup directories that exist: the one of cgroup v2, or one per v1
/// hierarchy (named ones included).
pub fn cgroup_dirs(cgroup_root: &Path, cgroups_path: &str) -> Result<Vec<PathBuf>> {
    let rel = relative(cgroups_path)?;
    if cgroup_root.join("cgroup.controllers").exists() {
        let dir = cgroup_root.join(&rel);
        return Ok(if dir.is_dir() { vec![dir] } else { Vec::new() });
    }
    let mut dirs = Vec::new();
    let entries =
        fs::read_dir(cgroup_root).with_context(|| format!("list {}", cgroup_root.display()))?;
    for e in entries.flatten() {
        let dir = e.path().join(&rel);
        // A controller mounted twice (cpu and cpuacct are links to cpu,cpuacct) is one
        // hierarchy: kept once.
        if dir.is_dir() && !e.path().is_symlink() {
            dirs.push(dir);
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// The pids in `dirs` (each `cgroup.procs`), without duplicates.
fn pids(dirs: &[PathBuf]) -> Vec<i32> {
    let mut all: Vec<i32> = dirs
        .iter()
        .filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|t| {
            t.lines()
                .filter_map(|l| l.trim().parse::<i32>().ok())
                .collect::<Vec<_>>()
        })
        .filter(|p| *p > 1 && u32::try_from(*p).ok() != Some(std::process::id()))
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// Whether `pid` has exited and waits to be reaped (or is gone).
fn zombie(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may hold any.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

/// The v1 freezer cgroup among `dirs`, if there is one.
fn freezer(dirs: &[PathBuf]) -> Option<&PathBuf> {
    dirs.iter().find(|d| d.join("freezer.state").exists())
}

/// SIGKILLs every process of the container's cgroups until none is left (or
/// [`KILL_TIMEOUT`] passes); returns whether they are empty. Frozen first where a
/// freezer exists, and `cgroup.kill` on v2, so that a process forking in a loop cannot
/// outrun the kills.
pub fn kill_all(dirs: &[PathBuf]) -> bool {
    let deadline = Instant::now() + KILL_TIMEOUT;
    let freezer = freezer(dirs);
    loop {
        for d in dirs {
            // cgroup v2 (5.14+): the kernel kills the whole cgroup at once.
            let _ = fs::write(d.join("cgroup.kill"), "1");
        }
        if let Some(f) = freezer {
            let _ = fs::write(f.join("freezer.state"), "FROZEN");
        }
        // Zombies are dead: their parent (the shim, waiting for this helper) reaps them.
        let left: Vec<i32> = pids(dirs).into_iter().filter(|p| !zombie(*p)).collect();
        for pid in &left {
            // SAFETY: kill(2) of a process of this container's cgroup; one that has
            // exited meanwhile fails with ESRCH, which is fine.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
        // A frozen process dies of SIGKILL only once thawed.
        if let Some(f) = freezer {
            let _ = fs::write(f.join("freezer.state"), "THAWED");
        }
        if left.is_empty() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Forced delete of a container whose cgroups path is `cgroups_path` and whose state
/// directory is `state_dir`: its processes killed, its cgroups and state removed.
pub fn delete_forced(cgroups_path: &str, state_dir: &Path) -> Result<()> {
    let dirs = cgroup_dirs(Path::new(CGROUP_ROOT), cgroups_path)?;
    if !kill_all(&dirs) {
        anyhow::bail!(
            "processes of cgroup {cgroups_path:?} still alive after {KILL_TIMEOUT:?} of SIGKILL"
        );
    }
    for d in &dirs {
        rmdir_retry(d);
    }
    match fs::remove_dir_all(state_dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("remove container state {}", state_dir.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_dirs_are_the_hierarchies_holding_the_path_once_each() {
        let root = tempfile::tempdir().expect("tempdir");
        for h in ["cpu,cpuacct", "memory", "systemd", "pids"] {
            fs::create_dir_all(root.path().join(h)).expect("mkdir");
        }
        for h in ["cpu,cpuacct", "memory", "systemd"] {
            fs::create_dir_all(root.path().join(h).join("pod/ctr")).expect("mkdir");
        }
        std::os::unix::fs::symlink("cpu,cpuacct", root.path().join("cpu")).expect("link");
        let dirs = cgroup_dirs(root.path(), "/pod/ctr").expect("dirs");
        let names: Vec<String> = dirs
            .iter()
            .map(|d| {
                d.strip_prefix(root.path())
                    .expect("under root")
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(
            names,
            ["cpu,cpuacct/pod/ctr", "memory/pod/ctr", "systemd/pod/ctr"]
        );
    }

    #[test]
    fn v2_dir_is_the_one_tree_and_paths_stay_inside() {
        let root = tempfile::tempdir().expect("tempdir");
        fs::write(root.path().join("cgroup.controllers"), "memory pids\n").expect("write");
        assert!(cgroup_dirs(root.path(), "pod/ctr")
            .expect("dirs")
            .is_empty());
        fs::create_dir_all(root.path().join("pod/ctr")).expect("mkdir");
        assert_eq!(
            cgroup_dirs(root.path(), "pod/ctr").expect("dirs"),
            [root.path().join("pod/ctr")]
        );
        assert!(cgroup_dirs(root.path(), "../etc").is_err());
    }

    #[test]
    fn a_live_process_is_no_zombie_and_a_reaped_one_is_gone() {
        assert!(!zombie(std::process::id() as i32));
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id() as i32;
        child.wait().expect("wait");
        assert!(zombie(pid));
    }

    #[test]
    fn pids_of_several_files_once_each_never_init_or_this_process() {
        let root = tempfile::tempdir().expect("tempdir");
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        fs::create_dir_all(&a).expect("mkdir");
        fs::create_dir_all(&b).expect("mkdir");
        let me = std::process::id();
        fs::write(a.join("cgroup.procs"), format!("1\n42\n{me}\n7\n")).expect("write");
        fs::write(b.join("cgroup.procs"), "42\n9\n").expect("write");
        assert_eq!(pids(&[a, b]), [7, 9, 42]);
    }
}
