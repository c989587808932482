//! Kubelet semantics, one worker per pod (see `shared/SPEC-lifecycle.md`).
//!
//! - [`restart`]: `shouldRestart` and CrashLoopBackOff — where restarts are decided.
//! - [`status`]: phase, conditions and container statuses as Kubernetes reports them.
//! - [`podspec`]: a Pod's container → the runtime's `ContainerConfig` (env, mounts, logs).
//! - [`env`]: a container's environment (envFrom, env, valueFrom) as kubelet builds it.
//! - [`volumes`]: hostPath checks; configMap, secret, downwardAPI, projected files.
//! - [`subpath`]: subPaths resolved inside their volume, bind mounted at private points.
//! - [`image_pull`]: `imagePullPolicy`, pulls and `ImagePullBackOff` before a container is created.
//! - [`worker`]: the per-pod loop: sandbox, init containers, containers, termination.
//! - [`probes`]: startup/liveness/readiness probe tasks and their thresholds.
//! - [`hooks`]: postStart and preStop handlers.
//! - [`eviction`]: kubelet's eviction manager: ephemeral-storage limits measured per tick.
//! - [`dial`]: connecting inside a pod's network namespace (httpGet, tcpSocket).
//!
//! Lifecycle talks only to the [`podhost_runtime::Runtime`] trait.

pub mod dial;
pub mod env;
pub mod eviction;
pub mod hooks;
pub mod image_pull;
pub mod podspec;
pub mod probes;
pub mod resources;
pub mod restart;
pub mod status;
pub mod subpath;
pub mod volumes;
pub mod worker;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};

use podhost_runtime::ContainerStatus;
use probes::{ProbeKind, ProbeResult};

pub use worker::{PodHandle, PodMeta, PodWorker, WorkerCmd};

/// Everything the daemon keeps about one pod: the object and what lifecycle tracks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PodRecord {
    /// The Pod: metadata and spec as applied (defaulted), status as last computed.
    pub pod: Pod,
    /// Current sandbox, if one exists.
    pub sandbox_id: Option<String>,
    /// How many sandboxes were created for this pod (CRI attempt).
    pub sandbox_attempts: u32,
    /// Per container name (init and regular).
    pub containers: BTreeMap<String, ContainerTrack>,
    /// All regular init containers completed once; they never run again.
    pub initialized: bool,
    /// Phase is final (Succeeded/Failed) and the sandbox is torn down.
    pub finished: bool,
    /// Events about this pod, oldest first (bounded).
    pub events: Vec<PodEvent>,
    /// Deletion requested: the grace period in seconds to use.
    pub deleting: Option<i64>,
    /// Evicted (see [`eviction`]): why, the pod's status message with reason `Evicted`.
    #[serde(default)]
    pub evicted: Option<String>,
}

/// What lifecycle knows about one container of the pod across restarts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerTrack {
    /// The current container (running, or the last one that ran).
    pub current: Option<ContainerStatus>,
    /// The one before the current (`logs --previous`, `lastState`).
    pub previous: Option<ContainerStatus>,
    /// Restarts so far (kubelet's restartCount).
    pub restart_count: u32,
    /// Why it is waiting, when it is not running: (reason, message).
    pub waiting: Option<(String, String)>,
    /// Current CrashLoopBackOff delay in ms (absent: next restart is immediate).
    pub backoff_ms: Option<u64>,
    /// Back-off of failed creates and starts (CreateContainerError …): the delay in ms
    /// and when (unix ns) the try failed. Cleared when a container is created.
    #[serde(default)]
    pub create_backoff: Option<(u64, i64)>,
    /// Ran to completion (exit 0) as an init container.
    pub init_done: bool,
    /// Startup probe result of the current container (absent: not decided, Unknown).
    #[serde(default)]
    pub startup: Option<ProbeResult>,
    /// Liveness probe result of the current container (absent: initial Success).
    #[serde(default)]
    pub liveness: Option<ProbeResult>,
    /// Readiness probe result of the current container (absent: initial Failure).
    #[serde(default)]
    pub readiness: Option<ProbeResult>,
}

impl ContainerTrack {
    /// The attempt number of a container created now while none is current: a restart
    /// (after a failed create too) once one ran, else the first.
    pub fn next_attempt(&self) -> u32 {
        match self.previous {
            Some(_) => self.restart_count + 1,
            None => 0,
        }
    }
}

impl ContainerTrack {
    /// The stored result of a probe kind, or its initial value.
    pub fn probe(&self, kind: ProbeKind) -> ProbeResult {
        let r = match kind {
            ProbeKind::Startup => self.startup,
            ProbeKind::Liveness => self.liveness,
            ProbeKind::Readiness => self.readiness,
        };
        r.unwrap_or(kind.initial())
    }
    /// Store a probe result for the current container.
    pub fn set_probe(&mut self, kind: ProbeKind, r: ProbeResult) {
        match kind {
            ProbeKind::Startup => self.startup = Some(r),
            ProbeKind::Liveness => self.liveness = Some(r),
            ProbeKind::Readiness => self.readiness = Some(r),
        }
    }
}

/// A Kubernetes-style event (`kubectl describe` / `get events`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PodEvent {
    /// Unix nanoseconds of the last occurrence.
    pub time: i64,
    /// Normal or Warning.
    pub kind: String,
    /// CamelCase reason: Scheduled, Created, Started, Killing, BackOff …
    pub reason: String,
    /// Human text.
    pub message: String,
    /// How many times it happened (an event series, as the API server counts them).
    pub count: u32,
    /// Unix nanoseconds of the first occurrence (0 in records of an older podhost).
    #[serde(default)]
    pub first_time: i64,
}

impl crate::store::Record for PodRecord {
    fn uid(&self) -> String {
        PodRecord::uid(self)
    }
}

impl PodRecord {
    /// A new record for an applied (defaulted, validated) pod.
    pub fn new(pod: Pod) -> Self {
        PodRecord {
            pod,
            sandbox_id: None,
            sandbox_attempts: 0,
            containers: BTreeMap::new(),
            initialized: false,
            finished: false,
            events: Vec::new(),
            deleting: None,
            evicted: None,
        }
    }
    /// The pod's UID.
    pub fn uid(&self) -> String {
        self.pod.metadata.uid.clone().unwrap_or_default()
    }
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!(
            "{}/{}",
            self.pod.metadata.namespace.as_deref().unwrap_or("default"),
            self.pod.metadata.name.as_deref().unwrap_or("")
        )
    }
    /// Record an event. One seen before with the same type, reason and message is one
    /// series, as the API server's event correlator makes it: its count grows, its last
    /// time moves to now (and it moves to the end, the list staying in time order).
    /// Messages that differ only in the ids they name (a new container id per failed
    /// create) count as the same; the series keeps the latest text. A failure retried
    /// for hours is one line, not hundreds.
    pub fn event(&mut self, now: i64, kind: &str, reason: &str, message: String) {
        let key = without_ids(&message);
        let same = self
            .events
            .iter()
            .rposition(|e| e.kind == kind && e.reason == reason && without_ids(&e.message) == key);
        if let Some(i) = same {
            let mut e = self.events.remove(i);
            e.count = e.count.saturating_add(1);
            if e.first_time == 0 {
                e.first_time = e.time;
            }
            e.time = now;
            e.message = message;
            self.events.push(e);
            return;
        }
        self.events.push(PodEvent {
            time: now,
            kind: kind.into(),
            reason: reason.into(),
            message,
            count: 1,
            first_time: now,
        });
        if self.events.len() > 100 {
            self.events.remove(0);
        }
    }
}

/// `text` with every run of 32 or more hex digits (container and sandbox ids, digests)
/// replaced by `*`: what two messages about different incarnations have in common.
fn without_ids(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    for ch in text.chars() {
        if ch.is_ascii_hexdigit() {
            run.push(ch);
            continue;
        }
        out.push_str(if run.len() >= 32 { "*" } else { &run });
        run.clear();
        out.push(ch);
    }
    out.push_str(if run.len() >= 32 { "*" } else { &run });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_masked_for_event_series() {
        let a = format!("container {}: not found in $PATH", "ab".repeat(32));
        let b = format!("container {}: not found in $PATH", "cd".repeat(32));
        assert_eq!(without_ids(&a), without_ids(&b));
        assert_eq!(without_ids(&a), "container *: not found in $PATH");
        assert_eq!(without_ids("exit 1 in 0.5s é"), "exit 1 in 0.5s é");
        assert_ne!(without_ids("deadbeef one"), without_ids("deadbeef two"));
    }
}
