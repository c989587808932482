//! What a kubelet needs of the local runtime beyond podhost's own lifecycle: a sandbox
//! stop that keeps its containers' last states and releases the pod network (CRI
//! StopPodSandbox), resource updates of running containers, the container's user as
//! containerd resolves it (names, the image's groups), the writable layer's size.

use super::*;

/// What the shim said about a container when its sandbox was stopped.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct LastSeen {
    /// Created (never started) or exited; running ones were killed before.
    pub created_only: bool,
    pub exit_code: Option<i32>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl LastSeen {
    /// The state to report for it.
    pub fn state(&self) -> ContainerState {
        if self.created_only {
            ContainerState::Created
        } else {
            ContainerState::Exited
        }
    }
}

/// How long a stop waits for killed containers to be reaped by their shim.
const STOP_WAIT: Duration = Duration::from_secs(10);

impl LocalRuntime {
    /// Stop a sandbox: kill its running containers and wait until the shim reaped them,
    /// keep what the shim last knew of each container (its exit code survives the
    /// shim), shut the shim and pause down, and with `release_network` give the pod's
    /// IP and host ports back (CNI DEL; a stopped sandbox is never started again).
    /// `removing`: the sandbox is removed next, which deletes the containers' cgroups
    /// and runtime state; the shim then skips deleting each. Idempotent.
    pub(super) async fn stop_sandbox(
        &self,
        sandbox_id: &str,
        release_network: bool,
        removing: bool,
    ) -> Result<(), RuntimeError> {
        let rec = self.sandbox(sandbox_id)?;
        let shim = self.shim(sandbox_id);
        if let Ok(status) = shim.status().await {
            let status = self.kill_all(&shim, status).await;
            self.save_last_seen(sandbox_id, &status)?;
        }
        shim.stop(removing).await?;
        match (release_network, rec.network) {
            (true, Some(att)) => {
                self.network.detach(&att).await?;
                let mut rec = self.sandbox(sandbox_id)?;
                rec.network = None;
                write_json_atomic(
                    &self
                        .config
                        .sandbox_state_dir(sandbox_id)
                        .join("sandbox.json"),
                    &rec,
                )?;
                self.lock_sandboxes().insert(sandbox_id.to_string(), rec);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// SIGKILL every running container of the shim and wait (bounded) until none runs;
    /// the last status seen.
    async fn kill_all(&self, shim: &ShimClient, mut status: ShimStatus) -> ShimStatus {
        let deadline = tokio::time::Instant::now() + STOP_WAIT;
        loop {
            let running: Vec<String> = status
                .containers
                .iter()
                .filter(|c| c.state == ShimState::Running)
                .map(|c| c.id.clone())
                .collect();
            if running.is_empty() || tokio::time::Instant::now() >= deadline {
                return status;
            }
            for id in &running {
                let _ = shim.signal(id, sigkill()).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            match shim.status().await {
                Ok(s) => status = s,
                Err(_) => return status,
            }
        }
    }

    fn save_last_seen(&self, sandbox_id: &str, status: &ShimStatus) -> Result<(), RuntimeError> {
        for c in &status.containers {
            let Ok(mut rec) = self.container(&c.id) else {
                continue;
            };
            if rec.sandbox_id != sandbox_id {
                continue;
            }
            rec.last_seen = Some(LastSeen {
                created_only: c.state == ShimState::Created,
                exit_code: c.exit_code,
                started_at: c.started_at,
                finished_at: c.finished_at,
            });
            write_json_atomic(
                &self.config.container_dir(&rec.id).join("container.json"),
                &rec,
            )?;
            self.lock_containers().insert(rec.id.clone(), rec);
        }
        Ok(())
    }

    /// CRI UpdateContainerResources: new limits in the container's cgroup, kept in its
    /// record so that its status shows them.
    pub(super) async fn update_resources(
        &self,
        container_id: &str,
        resources: &ContainerResources,
    ) -> Result<(), RuntimeError> {
        let mut rec = self.container(container_id)?;
        let state = self.status_from(&rec, self.shim_status(&rec.sandbox_id).await.as_ref());
        if !matches!(
            state.state,
            ContainerState::Created | ContainerState::Running
        ) {
            return Err(RuntimeError::Shim {
                sandbox_id: rec.sandbox_id.clone(),
                op: "update_container_resources",
                code: ErrorCode::FailedPrecondition,
                message: format!(
                    "container {container_id} is {:?}: only created or running containers can be updated",
                    state.state
                ),
            });
        }
        let (cg, rel, res) = (self.cgroups.clone(), rec.cgroup.clone(), resources.clone());
        tokio::task::spawn_blocking(move || cg.set_limits(&rel, &res))
            .await
            .map_err(|e| RuntimeError::Io {
                action: "cgroup update task",
                path: PathBuf::from(container_id),
                source: std::io::Error::other(e),
            })??;
        let kept = &mut rec.config.linux.resources;
        *kept = ContainerResources {
            cpu_shares: resources.cpu_shares.or(kept.cpu_shares),
            cpu_quota: resources.cpu_quota.or(kept.cpu_quota),
            cpu_period: resources.cpu_period.or(kept.cpu_period),
            memory_limit: resources.memory_limit.or(kept.memory_limit),
            oom_score_adj: kept.oom_score_adj,
        };
        write_json_atomic(
            &self
                .config
                .container_dir(container_id)
                .join("container.json"),
            &rec,
        )?;
        self.lock_containers().insert(rec.id.clone(), rec);
        Ok(())
    }

    /// Where a container's writable layer (the overlay's upper dir) is.
    pub(super) fn upper_dir(&self, container_id: &str) -> PathBuf {
        self.config.container_dir(container_id).join("upper")
    }
}

/// Bytes and inodes of a writable layer at `upper` (blocking: a hostile container
/// decides how big the tree is; see [`crate::du`]).
pub(super) fn layer_usage(upper: &Path, mountpoint: PathBuf) -> Option<LayerUsage> {
    let u = crate::du::usage(upper, crate::du::Limits::default())?;
    Some(LayerUsage {
        bytes: u.bytes,
        inodes: u.inodes,
        mountpoint,
    })
}

/// Disk space (allocated blocks) and number of entries under `dir`; `None` when `dir`
/// is missing. Blocking.
pub(super) fn tree_usage(dir: &Path) -> Option<(u64, u64)> {
    let u = crate::du::usage(dir, crate::du::Limits::default())?;
    Some((u.bytes, u.inodes))
}

/// A file of the container's image, read only when neither it nor a directory on the way
/// is a symlink: a hostile image could point `etc/passwd` at a host file.
fn image_file(rootfs: &Path, rel: &str) -> Option<String> {
    let mut p = rootfs.to_path_buf();
    for part in rel.split('/') {
        p.push(part);
        if std::fs::symlink_metadata(&p).ok()?.file_type().is_symlink() {
            return None;
        }
    }
    std::fs::read_to_string(p).ok()
}

/// The `field`th field of the first colon-separated line of `text` whose `key_field`th
/// field is `key`.
fn field_of(text: &str, key_field: usize, key: &str, field: usize) -> Option<String> {
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.get(key_field) == Some(&key))
        .and_then(|f| f.get(field).map(|v| v.to_string()))
}

/// The user a container runs as, as containerd resolves it: `runAsUser` (its primary
/// group from the image's /etc/passwd when it has an entry there, else 0), or a
/// `run_as_username` that must exist in the image, or the image's `User` (`uid`, `name`,
/// `uid:gid`, `name:group`); `runAsGroup` replaces the group. Also the groups the image's
/// /etc/group lists the user in, added to its supplementary groups like containerd does.
pub(super) fn container_user(
    rootfs: &Path,
    image: &oci_spec::image::Config,
    cfg: &ContainerConfig,
) -> Result<(u32, u32, Vec<u32>), RuntimeError> {
    let passwd = image_file(rootfs, "etc/passwd").unwrap_or_default();
    let group = image_file(rootfs, "etc/group").unwrap_or_default();
    let sec = &cfg.linux.security;
    let by_name = |name: &str| -> Option<(u32, u32)> {
        let uid = field_of(&passwd, 0, name, 2)?.parse().ok()?;
        let gid = field_of(&passwd, 0, name, 3)?.parse().ok()?;
        Some((uid, gid))
    };
    let primary_gid = |uid: u32| -> u32 {
        field_of(&passwd, 2, &uid.to_string(), 3)
            .and_then(|g| g.parse().ok())
            .unwrap_or(0)
    };
    // ids outside u32 were refused by validation (podhost's, the CRI server's).
    let (uid, gid) = if let Some(u) = sec.run_as_user.and_then(|u| u32::try_from(u).ok()) {
        (u, primary_gid(u))
    } else if let Some(name) = &sec.run_as_username {
        by_name(name).ok_or_else(|| {
            RuntimeError::ContainerConfig(format!(
                "container {}: user {name:?} is not in the image's /etc/passwd",
                cfg.name
            ))
        })?
    } else {
        let user = image.user().clone().unwrap_or_default();
        let (u, g) = match user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (user.as_str(), None),
        };
        let (uid, pgid) = match u.parse::<u32>() {
            Ok(uid) => (uid, primary_gid(uid)),
            Err(_) if u.is_empty() => (0, 0),
            Err(_) => by_name(u).unwrap_or((0, 0)),
        };
        let gid = match g {
            Some(g) => g
                .parse()
                .ok()
                .or_else(|| field_of(&group, 0, g, 2).and_then(|v| v.parse().ok()))
                .unwrap_or(0),
            None => pgid,
        };
        (uid, gid)
    };
    let gid = sec
        .run_as_group
        .and_then(|g| u32::try_from(g).ok())
        .unwrap_or(gid);
    let name = field_of(&passwd, 2, &uid.to_string(), 0);
    let image_groups = match name {
        Some(name) => group
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .filter(|f| f.get(3).is_some_and(|m| m.split(',').any(|m| m == name)))
            .filter_map(|f| f.get(2).and_then(|g| g.parse().ok()))
            .filter(|g| *g != gid)
            .collect(),
        None => Vec::new(),
    };
    Ok((uid, gid, image_groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs(passwd: &str, group: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(d.path().join("etc")).expect("etc");
        std::fs::write(d.path().join("etc/passwd"), passwd).expect("passwd");
        std::fs::write(d.path().join("etc/group"), group).expect("group");
        d
    }

    fn image(user: &str) -> oci_spec::image::Config {
        let mut c = oci_spec::image::Config::default();
        c.set_user(Some(user.to_string()));
        c
    }

    fn cfg(f: impl FnOnce(&mut SecurityConfig)) -> ContainerConfig {
        let mut c = ContainerConfig {
            name: "c".into(),
            ..Default::default()
        };
        f(&mut c.linux.security);
        c
    }

    const PASSWD: &str = "root:x:0:0::/root:/bin/sh\nwww-data:x:33:33::/:/bin/sh\ndefault-user:x:1000:1000::/:/bin/sh\n";
    const GROUP: &str =
        "root:x:0:\nusers:x:100:\ngroup-defined-in-image:x:50000:default-user,www-data\n";

    #[test]
    fn users_resolve_like_containerd() {
        let r = rootfs(PASSWD, GROUP);
        let p = r.path();
        let user = |img: &str, c: ContainerConfig| container_user(p, &image(img), &c).unwrap();
        assert_eq!(user("", cfg(|_| {})), (0, 0, vec![]));
        assert_eq!(user("www-data", cfg(|_| {})), (33, 33, vec![50000]));
        assert_eq!(user("1002", cfg(|_| {})), (1002, 0, vec![]));
        assert_eq!(user("1003:users", cfg(|_| {})), (1003, 100, vec![]));
        assert_eq!(user("www-data:7", cfg(|_| {})), (33, 7, vec![50000]));
        // runAsUser takes its primary group from the image's passwd, and its groups.
        assert_eq!(
            user("", cfg(|s| s.run_as_user = Some(1000))),
            (1000, 1000, vec![50000])
        );
        assert_eq!(
            user(
                "",
                cfg(|s| {
                    s.run_as_user = Some(1001);
                    s.run_as_group = Some(1002);
                })
            ),
            (1001, 1002, vec![])
        );
        assert_eq!(
            user("", cfg(|s| s.run_as_username = Some("www-data".into()))),
            (33, 33, vec![50000])
        );
        let missing = container_user(
            p,
            &image(""),
            &cfg(|s| s.run_as_username = Some("nobody".into())),
        );
        assert!(matches!(missing, Err(RuntimeError::ContainerConfig(m)) if m.contains("nobody")));
    }

    #[test]
    fn a_symlinked_passwd_is_not_read() {
        let r = rootfs("", GROUP);
        let p = r.path();
        std::fs::remove_file(p.join("etc/passwd")).unwrap();
        let host = p.join("host-passwd");
        std::fs::write(&host, "evil:x:4242:4242::/:/bin/sh\n").unwrap();
        std::os::unix::fs::symlink(&host, p.join("etc/passwd")).unwrap();
        assert!(container_user(p, &image("evil"), &cfg(|_| {})).is_ok_and(|(u, _, _)| u == 0));
    }
}
