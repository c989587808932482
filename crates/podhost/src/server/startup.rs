//! The start-time cleanup of what a killed daemon left half done: sandboxes and
//! containers no pod record refers to, volume directories of pods without a record.
//!
//! It runs behind an API that already answers. Each pod whose part of it is not done
//! yet is held (not synced) and shows why (reason `StartupCleanup`): removing a stale
//! sandbox kills what is left in the pod's cgroup, which a new sandbox of the same pod
//! would share, so the pod's worker must not make one meanwhile.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Daemon;
use crate::lifecycle::PodRecord;

/// What a held pod shows until the runtime's records have been looked through.
pub const LOOKING: &str =
    "the daemon's start-time cleanup is looking for sandboxes and containers no pod record refers to";

/// What the loaded records say, taken before their workers start.
pub struct Plan {
    /// Sandbox id → UID of the pod whose record refers to it.
    referenced: HashMap<String, String>,
    /// UIDs of the pods whose records were loaded.
    loaded: HashSet<String>,
    /// Containers some record knows (current or previous).
    known: HashSet<String>,
}

impl Plan {
    /// The plan for `records`, the pods loaded at start.
    pub fn of(records: &[PodRecord]) -> Plan {
        Plan {
            referenced: records
                .iter()
                .filter_map(|r| r.sandbox_id.clone().map(|s| (s, r.uid())))
                .collect(),
            loaded: records.iter().map(|r| r.uid()).collect(),
            known: records
                .iter()
                .flat_map(|r| r.containers.values())
                .flat_map(|t| [t.current.as_ref(), t.previous.as_ref()])
                .flatten()
                .map(|c| c.id.clone())
                .collect(),
        }
    }
}

/// One pod's part: containers in its sandbox no record knows, its own sandboxes its
/// record does not refer to.
#[derive(Default)]
struct Part {
    containers: Vec<String>,
    sandboxes: Vec<String>,
}

impl Part {
    fn describe(&self) -> String {
        format!(
            "the daemon's start-time cleanup is removing {} container(s) and {} sandbox(es) of this pod that no record refers to; the pod is synced once they are gone",
            self.containers.len(),
            self.sandboxes.len()
        )
    }
}

/// Run the whole cleanup, releasing each pod of `holds` (UID → its worker's hold) as
/// soon as its part is done, then the parts of pods that have no record any more.
pub async fn clean_up(
    daemon: Arc<Daemon>,
    plan: Plan,
    holds: HashMap<String, watch::Sender<Option<String>>>,
) {
    // Anything that ends the cleanup early releases every pod still held.
    let release = |uid: &str| {
        if let Some(h) = holds.get(uid) {
            h.send_replace(None);
        }
    };
    let (sandboxes, containers) = match (
        daemon.runtime.sandbox_refs().await,
        daemon.runtime.container_refs().await,
    ) {
        (Ok(s), Ok(c)) => (s, c),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!("start-time cleanup skipped: listing the runtime's records: {e}");
            for uid in holds.keys() {
                release(uid);
            }
            return;
        }
    };
    let mut parts: HashMap<String, Part> = HashMap::new();
    let mut recordless = Vec::new();
    // Sandboxes no record refers to: of a loaded pod (a daemon killed between creating
    // a sandbox and saving the pod's record) or of a pod whose record is gone. A pod
    // whose record file exists but is unreadable keeps its sandbox: it is the user's to
    // repair. The daemon's runtime view holds only podhost's own sandboxes.
    for s in sandboxes {
        if plan.referenced.contains_key(&s.id) {
            continue;
        }
        if plan.loaded.contains(&s.pod_uid) {
            parts.entry(s.pod_uid).or_default().sandboxes.push(s.id);
        } else if !daemon.store.has_file(&s.pod_uid) {
            recordless.push(s.id);
        }
    }
    // Containers created in a live sandbox by a daemon killed before it saved the pod:
    // the worker makes another, so these would run unseen until the pod is deleted.
    for c in containers {
        if plan.known.contains(&c.id) {
            continue;
        }
        if let Some(uid) = plan.referenced.get(&c.sandbox_id) {
            parts.entry(uid.clone()).or_default().containers.push(c.id);
        }
    }
    for uid in holds.keys() {
        match parts.get(uid) {
            Some(part) => {
                if let Some(h) = holds.get(uid) {
                    h.send_replace(Some(part.describe()));
                }
            }
            None => release(uid),
        }
    }
    for (uid, part) in parts {
        for cid in &part.containers {
            remove_container(&daemon, cid).await;
        }
        for id in &part.sandboxes {
            remove_sandbox(&daemon, id).await;
        }
        release(&uid);
    }
    for id in &recordless {
        remove_sandbox(&daemon, id).await;
    }
    collect_orphan_pod_dirs(&daemon, &plan.loaded);
    tracing::info!("{DONE}");
}

/// Logged once the cleanup is over (tests wait for it before they look for leaks).
pub const DONE: &str = "start-time cleanup done";

async fn remove_container(daemon: &Daemon, cid: &str) {
    let removed = async {
        daemon
            .runtime
            .stop_container(cid, Duration::ZERO, libc::SIGKILL)
            .await?;
        daemon.runtime.remove_container(cid).await
    };
    match removed.await {
        Ok(()) => tracing::info!("removed container {cid}: no pod record refers to it"),
        Err(e) => tracing::warn!("removing container {cid} no pod record refers to: {e}"),
    }
}

async fn remove_sandbox(daemon: &Daemon, id: &str) {
    match daemon.runtime.remove_pod_sandbox(id).await {
        Ok(()) => tracing::info!("removed sandbox {id}: no pod record refers to it"),
        Err(e) => tracing::warn!("removing sandbox {id} no pod record refers to: {e}"),
    }
}

/// Volume directories of pods that have no record file (a corrupt record the user
/// removed, as the README advises): their tmpfs mounts are unmounted and the trees
/// removed, so no secret stays in memory and nothing is left on disk. A pod applied
/// meanwhile has its record saved before its worker makes any directory.
fn collect_orphan_pod_dirs(daemon: &Daemon, loaded: &HashSet<String>) {
    let gone = |uid: &str| !loaded.contains(uid) && !daemon.store.has_file(uid);
    let volumes = &daemon.settings.volumes_dir;
    for e in std::fs::read_dir(volumes).into_iter().flatten().flatten() {
        let uid = e.file_name().to_string_lossy().into_owned();
        if !gone(&uid) {
            continue;
        }
        let path = e.path();
        let busy = crate::lifecycle::volumes::unmount_all_under(&path);
        if !busy.is_empty() {
            tracing::warn!(
                "volumes of gone pod {uid}: {} still mounted; left in place",
                busy.len()
            );
            continue;
        }
        match std::fs::remove_dir_all(&path) {
            Ok(()) => tracing::info!("removed volumes of pod {uid}: no pod record refers to them"),
            Err(e) => tracing::warn!("removing volumes {}: {e}", path.display()),
        }
    }
    // Log directories stay: `/var/log/pods` may hold other runtimes' pods, and
    // nothing marks which are podhost's.
}
