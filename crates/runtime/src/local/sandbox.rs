//! Sandbox creation and removal of the local runtime (CRI RunPodSandbox and
//! RemovePodSandbox), with the pod network: one file to open for "what happens on run".

use super::*;
use crate::network::{files, PodRef};
use crate::step;
use tracing::Instrument;

impl LocalRuntime {
    /// RunPodSandbox: pod files, `/dev/shm`, the network (new, or `reuse`d from a
    /// sandbox whose pause died), then the shim and the pause. A failure undoes every
    /// step in reverse, the network included (a reused one too: its sandbox is gone).
    pub(super) async fn create_sandbox(
        &self,
        cfg: &SandboxConfig,
        reuse: Option<Attachment>,
    ) -> Result<String, RuntimeError> {
        let id = new_id();
        let mut undo = Undo::new();
        let run_dir = self.config.sandbox_run_dir(&id);
        let state_dir = self.config.sandbox_state_dir(&id);
        // Pods with hostPorts are created one at a time: check, attach, record.
        let _ports = match cfg.port_mappings.is_empty() {
            true => None,
            false => Some(self.host_ports.lock().await),
        };
        let mut attached: Option<Attachment> = reuse;
        let root = step!("sandbox", pod = %format_args!("{}/{}", cfg.namespace, cfg.name));
        let steps = async {
            self.check_host_ports(cfg)?;
            step!("dirs").in_scope(|| {
                for d in [&run_dir, &state_dir] {
                    private_dir(d)?;
                    let d = d.clone();
                    undo.push(move || mounts::remove_dir(&d));
                }
                write_file(&state_dir.join("hostname"), &format!("{}\n", cfg.hostname))
            })?;
            step!("shm").in_scope(|| {
                let shm = run_dir.join("shm");
                mounts::mount_shm(&shm)?;
                undo.push(move || mounts::unmount(&shm));
                Ok::<(), RuntimeError>(())
            })?;
            // The namespace first; then the plugins run on it while the shim starts the
            // pause in it (both are tens of ms, and neither needs the other's result).
            let mut pending = None;
            let netns_path = if cfg.host_network {
                host_netns()
            } else {
                if let Some(old) = attached.take_if(|a| !a.netns.exists()) {
                    // The pin vanished under us: release its IP, make a new one.
                    tracing::warn!("sandbox {id}: netns {} is gone", old.netns.display());
                    self.network.detach(&old).await?;
                }
                match &attached {
                    Some(a) => a.netns.clone(),
                    None => {
                        let pod = PodRef {
                            name: &cfg.name,
                            namespace: &cfg.namespace,
                            uid: &cfg.uid,
                            kubelet: cfg.owner == Owner::Cri,
                        };
                        let p = self
                            .network
                            .begin_attach(&id, &pod, &cfg.port_mappings)
                            .await?;
                        let pin = p.netns().to_path_buf();
                        pending = Some(p);
                        pin
                    }
                }
            };
            let network = async {
                match pending {
                    Some(p) => self
                        .network
                        .finish_attach(p)
                        .instrument(step!("network"))
                        .await
                        .map(Some),
                    None => Ok(None),
                }
            };
            let pause = async {
                step!("cgroup").in_scope(|| self.create_pod_cgroup(&id, cfg))?;
                let (rt_cg, sb_cg) = (self.cgroups.clone(), self.pod_cgroup(&id, cfg));
                let (parent, qos, uid, kubelet) = (
                    self.config.cgroup_parent.clone(),
                    cfg.linux.qos_class.clone(),
                    cfg.uid.clone(),
                    cfg.linux.cgroup_parent.is_some(),
                );
                undo.push(move || {
                    match kubelet {
                        true => rt_cg.remove_sandbox(&sb_cg),
                        false => rt_cg.remove_pod(&parent, &qos, &uid),
                    }
                    Ok(())
                });
                let pause_pid = self
                    .start_shim(&id, cfg, &netns_path)
                    .instrument(step!("shim", pause_us = tracing::field::Empty))
                    .await?;
                // The pause belongs to the pod: its memory and pids count toward the pod's.
                let pause_cg = format!("{}/{}", self.pod_cgroup(&id, cfg), cgroups::PAUSE_CGROUP);
                let joined = step!("pause_cgroup")
                    .in_scope(|| self.cgroups.add_process(&pause_cg, pause_pid));
                if let Err(e) = joined {
                    let _ = self.shim(&id).shutdown(false).await;
                    return Err(RuntimeError::from(e));
                }
                Ok::<u32, RuntimeError>(pause_pid)
            };
            let (network, pause) = tokio::join!(network, pause);
            match network {
                // The error path below detaches it when the pause failed.
                Ok(Some(a)) => attached = Some(a),
                Ok(None) => {}
                Err(e) => {
                    if pause.is_ok() {
                        let _ = self.shim(&id).shutdown(false).await;
                    }
                    return Err(e);
                }
            }
            let pause_pid = pause?;
            // From here on a failure also stops the running shim (and its pause).
            let saved = (|| {
                step!("pod_files")
                    .in_scope(|| self.write_pod_files(&state_dir, cfg, attached.as_ref()))?;
                let rec = SandboxRecord {
                    id: id.clone(),
                    config: cfg.clone(),
                    created_at: now_nanos(),
                    netns_path,
                    pause_pid: Some(pause_pid),
                    network: attached.clone(),
                };
                // No fsync: after a power loss the pod's processes are gone anyway, and a
                // state dir without a readable record is removed at start as half made.
                step!("record")
                    .in_scope(|| write_json_replace(&state_dir.join("sandbox.json"), &rec))?;
                Ok::<_, RuntimeError>(rec)
            })();
            let rec = match saved {
                Ok(rec) => rec,
                Err(e) => {
                    let _ = self.shim(&id).shutdown(false).await;
                    return Err(e);
                }
            };
            self.lock_sandboxes().insert(id.clone(), rec);
            Ok::<(), RuntimeError>(())
        }
        .instrument(root)
        .await;
        match steps {
            Ok(()) => {
                self.watch_shim(&id);
                Ok(id)
            }
            Err(e) => {
                // The network came after the dirs and /dev/shm: it goes first.
                let e = match attached.take() {
                    Some(a) => match self.network.detach(&a).await {
                        Ok(()) => e,
                        Err(c) => RuntimeError::WithCleanup {
                            error: Box::new(e),
                            cleanup: Box::new(c),
                        },
                    },
                    None => e,
                };
                Err(undo.fail(e))
            }
        }
    }

    /// The sandbox's cgroup: podhost's pod cgroup with the pod's limits, or, when a
    /// kubelet gave its own pod cgroup, a plain one below it (the kubelet limits its own).
    fn create_pod_cgroup(&self, id: &str, cfg: &SandboxConfig) -> Result<(), RuntimeError> {
        match cfg.linux.cgroup_parent {
            Some(_) => self.cgroups.create_sandbox(&self.pod_cgroup(id, cfg))?,
            None => self.cgroups.create_pod(
                &self.config.cgroup_parent,
                &cfg.linux.qos_class,
                &cfg.uid,
                &cfg.linux.resources,
                self.config.pod_pids_limit,
            )?,
        }
        Ok(())
    }

    /// `/etc/hostname` is written earlier; here `/etc/hosts` (with the pod IP) and
    /// `/etc/resolv.conf`. hostNetwork pods get the host's hosts file, as with kubelet.
    fn write_pod_files(
        &self,
        state_dir: &Path,
        cfg: &SandboxConfig,
        att: Option<&Attachment>,
    ) -> Result<(), RuntimeError> {
        let hosts = if cfg.host_network {
            std::fs::read_to_string("/etc/hosts").unwrap_or_default()
        } else {
            let ips = att.map(|a| a.ips.clone()).unwrap_or_default();
            files::hosts_file(&cfg.hostname, &ips, &cfg.host_aliases)
        };
        write_file(&state_dir.join("hosts"), &hosts)?;
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        write_file(
            &state_dir.join("resolv.conf"),
            &files::resolv_conf(&host_resolv, cfg.dns.as_ref()),
        )
    }

    /// Another pod's sandbox publishing one of `cfg`'s host ports is an error.
    fn check_host_ports(&self, cfg: &SandboxConfig) -> Result<(), RuntimeError> {
        for rec in self.lock_sandboxes().values() {
            // The same pod's, or a stopped sandbox whose network (and ports) are released.
            if rec.config.uid == cfg.uid || rec.network.is_none() {
                continue;
            }
            for theirs in &rec.config.port_mappings {
                if let Some(m) = cfg.port_mappings.iter().find(|m| m.conflicts(theirs)) {
                    return Err(RuntimeError::HostPortInUse {
                        host_port: m.host_port,
                        protocol: m.protocol.clone(),
                        pod: format!("{}/{}", rec.config.namespace, rec.config.name),
                    });
                }
            }
        }
        Ok(())
    }

    /// RemovePodSandbox. With `keep_network` the CNI attachment survives and is returned
    /// for a new sandbox of the same pod; if removal fails it is released after all.
    pub(super) async fn remove_sandbox(
        &self,
        sandbox_id: &str,
        keep_network: bool,
    ) -> Result<Option<Attachment>, RuntimeError> {
        let Ok(rec) = self.sandbox(sandbox_id) else {
            return Ok(None);
        };
        // The processes first: nothing may run in the netns or the cgroup when they go.
        let stopped = async {
            self.stop_sandbox(sandbox_id, false, true).await?;
            // A shim that crashed (or a daemon that lost it) left its pause and containers
            // running, reparented to init: they are found by the pod cgroup and killed, so
            // that their mounts, netns and cgroups can go. After a clean shutdown the
            // cgroup is already empty and this is a read of a few files.
            let (cg, pod_cg) = (
                self.cgroups.clone(),
                self.pod_cgroup(sandbox_id, &rec.config),
            );
            let killed = tokio::task::spawn_blocking(move || cg.kill_pod(&pod_cg))
                .await
                .unwrap_or(0);
            if killed > 0 {
                tracing::warn!(
                    "sandbox {sandbox_id} of pod {}/{}: killed {killed} process(es) its shim left behind",
                    rec.config.namespace,
                    rec.config.name
                );
            }
            Ok::<(), RuntimeError>(())
        }
        .await;
        let removed = async {
            stopped?;
            let ids: Vec<String> = self
                .lock_containers()
                .values()
                .filter(|c| c.sandbox_id == sandbox_id)
                .map(|c| c.id.clone())
                .collect();
            // Unmounts and trees of files: blocking, and an unmount may wait for the
            // kernel (an RCU grace period). On the async threads, hundreds of pods
            // removed together left the CPU idle while every pod's worker waited.
            let files: Vec<ContainerFiles> =
                ids.iter().map(|id| self.container_files(id)).collect();
            let run_dir = self.config.sandbox_run_dir(sandbox_id);
            let state_dir = self.config.sandbox_state_dir(sandbox_id);
            let sandbox_files = tokio::task::spawn_blocking(move || {
                for f in &files {
                    f.remove()?;
                }
                mounts::unmount(&run_dir.join("shm"))?;
                mounts::remove_dir(&run_dir)?;
                mounts::remove_dir(&state_dir)
            });
            match sandbox_files.await {
                Ok(r) => r?,
                Err(e) => {
                    return Err(RuntimeError::Io {
                        action: "removing the files of sandbox",
                        path: self.config.sandbox_run_dir(sandbox_id),
                        source: std::io::Error::other(e),
                    })
                }
            }
            {
                let mut containers = self.lock_containers();
                for id in &ids {
                    containers.remove(id);
                }
            }
            let (cg, parent, qos, uid) = (
                self.cgroups.clone(),
                self.config.cgroup_parent.clone(),
                rec.config.linux.qos_class.clone(),
                rec.config.uid.clone(),
            );
            let sandbox_cg = rec
                .config
                .linux
                .cgroup_parent
                .is_some()
                .then(|| self.pod_cgroup(sandbox_id, &rec.config));
            // Blocking: rmdir is retried while the last processes leave.
            let _ = tokio::task::spawn_blocking(move || match sandbox_cg {
                Some(rel) => cg.remove_sandbox(&rel),
                None => cg.remove_pod(&parent, &qos, &uid),
            })
            .await;
            self.lock_sandboxes().remove(sandbox_id);
            self.statuses.forget(sandbox_id);
            Ok::<(), RuntimeError>(())
        };
        if keep_network {
            // Whether the network is kept depends on the removal: one after the other.
            let removed = removed.await;
            if let (Some(a), true) = (&rec.network, removed.is_ok()) {
                return Ok(Some(a.clone()));
            }
            let network = self.release_network(&rec).await;
            return removed.and(network).map(|()| None);
        }
        // The files and cgroups go while the plugins' DEL runs: neither needs the other.
        let (removed, network) = tokio::join!(removed, self.release_network(&rec));
        removed.and(network).map(|()| None)
    }

    /// DEL with the stored config and result; on failure its record stays for the
    /// garbage collection at the next start. A sandbox recorded before pod networking:
    /// its pin is all there is.
    async fn release_network(&self, rec: &SandboxRecord) -> Result<(), RuntimeError> {
        match &rec.network {
            Some(a) => self.network.detach(a).await,
            None if !rec.config.host_network => netns::remove_pinned(&rec.netns_path),
            None => Ok(()),
        }
    }
}
