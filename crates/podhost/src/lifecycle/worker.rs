//! The per-pod worker: one task per pod driving the runtime toward the spec, kubelet-style.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, EphemeralContainer, PodSpec};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;

use super::hooks::{self, Hook};
use super::podspec;
use super::probes::{self, ProbeKind, ProbeResult, ProbeSpec, ProbeTarget, ProbeUpdate};
use super::restart::{should_restart, BackoffDecision, BackoffPolicy, RestartPolicy};
use super::status::{self, is_sidecar, Phase};
use super::{ContainerTrack, PodRecord};
use crate::store::PodStore;
use crate::timefmt::k8s_time;
use podhost_runtime::{
    ContainerState, Runtime, RuntimeError, RuntimeEvent, SandboxState, SandboxStatus,
};

/// Orders the API gives a worker.
#[derive(Debug)]
pub enum WorkerCmd {
    /// Delete the pod with this grace period (seconds; None = the pod's own).
    Delete {
        /// Override of terminationGracePeriodSeconds.
        grace: Option<i64>,
    },
    /// Evict the pod (the eviction manager's verdict, this message): containers killed
    /// at once, phase Failed with reason `Evicted`, never restarted, volumes kept until
    /// the pod is deleted.
    Evict {
        /// Why, worded like kubelet's (`Usage of EmptyDir volume "x" exceeds …`).
        message: String,
    },
}

/// The API's handle on a running worker.
#[derive(Debug, Clone)]
pub struct PodHandle {
    /// Latest record published by the worker.
    pub snapshot: watch::Receiver<PodRecord>,
    /// Orders to the worker.
    pub cmd: mpsc::Sender<WorkerCmd>,
    /// The pod's labels and annotations as last applied or labelled: the worker takes
    /// them into its record when it next publishes; readers overlay them until then.
    pub meta: Arc<watch::Sender<PodMeta>>,
    /// The pod's `spec.ephemeralContainers` (`podhost debug` adds to them): the worker
    /// takes them into its spec when it next publishes and starts the new ones.
    pub ephemeral: Arc<watch::Sender<Vec<EphemeralContainer>>>,
}

/// The mutable part of a pod's metadata (`apply`, `label`, `annotate`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodMeta {
    /// `metadata.labels`.
    pub labels: Option<std::collections::BTreeMap<String, String>>,
    /// `metadata.annotations`.
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

impl PodMeta {
    /// The labels and annotations of `pod`.
    pub fn of(pod: &k8s_openapi::api::core::v1::Pod) -> Self {
        PodMeta {
            labels: pod.metadata.labels.clone(),
            annotations: pod.metadata.annotations.clone(),
        }
    }
    /// Put them on `pod`.
    pub fn set_on(&self, pod: &mut k8s_openapi::api::core::v1::Pod) {
        pod.metadata.labels.clone_from(&self.labels);
        pod.metadata.annotations.clone_from(&self.annotations);
    }
}

pub use podhost_runtime::clock::Clock;

/// What a worker needs besides its pod.
#[derive(Debug, Clone)]
pub struct Settings {
    /// CrashLoopBackOff initial delay and cap.
    pub backoff: BackoffPolicy,
    /// `/var/log/pods`.
    pub log_dir: PathBuf,
    /// Root of per-pod volume dirs (`<root>/<uid>`).
    pub volumes_dir: PathBuf,
    /// Where "now" comes from.
    pub clock: Clock,
    /// How often a pod with work left (starting, restarting, Unknown …) syncs without
    /// events.
    pub resync: Duration,
    /// How often a steady pod (see [`PodWorker::steady`]) checks that its shim still
    /// answers (by its heartbeat, or by asking): what a shim cannot report by event
    /// (stopped, hung). Spread ±25 %. Not at all with a runtime that reports such a shim
    /// itself ([`Runtime::reports_silence`]).
    pub steady_check: Duration,
    /// A steady pod's full sync without events, like kubelet's evented PLEG relist
    /// (300 s). Spread ±25 %.
    pub steady_resync: Duration,
    /// ConfigMaps and Secrets the pod's env and volumes read.
    pub objects: crate::objects::Objects,
}

/// One pod's worker.
pub struct PodWorker {
    /// The only way lifecycle touches the machine.
    rt: Arc<dyn Runtime>,
    /// Where the record is persisted (None in tests).
    store: Option<PodStore<PodRecord>>,
    /// The pod and what lifecycle tracks about it.
    rec: PodRecord,
    /// Backoff, paths, clock.
    settings: Settings,
    /// Publishes snapshots to the API.
    tx: watch::Sender<PodRecord>,
    /// Last persisted bytes, to skip identical writes.
    last_saved: Vec<u8>,
    /// The pod was deleted: the worker ends.
    removed: bool,
    /// Probe tasks report here; the run loop turns reports into syncs.
    probe_tx: mpsc::Sender<ProbeUpdate>,
    /// Running probe tasks by (container name, kind), with the container ID they probe.
    probe_tasks: HashMap<(String, ProbeKind), (String, tokio::task::AbortHandle)>,
    /// Why the last sandbox creation failed (CNI errors …), shown as the pod's status
    /// reason and message until a sandbox is created.
    sandbox_error: Option<String>,
    /// Orders from the API; also read while containers are being stopped, so that a
    /// second delete with a shorter grace period cuts the running one short.
    cmd_rx: mpsc::Receiver<WorkerCmd>,
    /// Why the pod's shim does not answer while it lives (stopped, hung): the pod is then
    /// `Unknown` and nothing is decided from what cannot be seen.
    unresponsive: Option<String>,
    /// While the daemon's start-time cleanup has work left on this pod: what it does
    /// (the pod's status message, reason `StartupCleanup`). The pod is not synced then.
    held: Option<String>,
    /// Labels and annotations changed through the API.
    meta_rx: watch::Receiver<PodMeta>,
    /// The sandbox status a failed steady check got, for the sync it triggers.
    checked: Option<Result<SandboxStatus, RuntimeError>>,
    /// Ephemeral containers added through the API.
    ephemeral_rx: watch::Receiver<Vec<EphemeralContainer>>,
    /// Regular containers created ahead of their start in this sync, by name.
    premade: HashMap<String, Premade>,
}

/// The pod's status reason while the start-time cleanup has work left on it.
pub const STARTUP_CLEANUP: &str = "StartupCleanup";

/// Why a step could not go on: wait until (optional) time and sync again.
type Step = Result<(), Option<Instant>>;

/// The earlier of two optional wake-up times.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `d` ±25 %, at random: periodic work of many pods spread over time.
fn spread(d: Duration) -> Duration {
    d.mul_f64(rand::random_range(0.75..1.25))
}

/// Kubelet never gives a container less than this to stop, even past the grace period.
const MIN_STOP_GRACE: Duration = Duration::from_secs(2);

/// How soon a container whose state is not known, and whose kill could not be
/// confirmed, is tried again (nothing replaces it meanwhile).
const UNKNOWN_RETRY: Duration = Duration::from_secs(1);

/// How many regular containers of a pod are created at once when they start together
/// (a pod's first start): their create helpers overlap, their starts keep the order.
const CREATE_AHEAD: usize = 4;

/// A regular container created ahead of its turn ([`PodWorker::create_ahead`]), taken
/// by its start in order; one no start took is removed at the end of the sync.
struct Premade {
    attempt: u32,
    created: Result<String, RuntimeError>,
}

/// What stopping one container needs, gathered before the stop runs concurrently.
struct StopJob {
    name: String,
    id: String,
    spec: Option<Container>,
    signal: i32,
}

impl PodWorker {
    /// Start a worker for `rec` and return its handle.
    pub fn spawn(
        rt: Arc<dyn Runtime>,
        store: Option<PodStore<PodRecord>>,
        rec: PodRecord,
        settings: Settings,
    ) -> PodHandle {
        Self::spawn_held(rt, store, rec, settings, None)
    }

    /// Start a worker that does not sync its pod while `hold` says why (the daemon's
    /// start-time cleanup still has work on the pod); it shows that as the pod's status
    /// and takes orders meanwhile. `None` in `hold` releases it.
    pub fn spawn_held(
        rt: Arc<dyn Runtime>,
        store: Option<PodStore<PodRecord>>,
        rec: PodRecord,
        settings: Settings,
        hold: Option<watch::Receiver<Option<String>>>,
    ) -> PodHandle {
        let (tx, snapshot) = watch::channel(rec.clone());
        let (cmd_tx, cmd_rx) = mpsc::channel(8);
        let (meta_tx, meta_rx) = watch::channel(PodMeta::of(&rec.pod));
        let (ephemeral_tx, ephemeral_rx) = watch::channel(ephemeral_of(&rec.pod));
        let (probe_tx, probe_rx) = mpsc::channel(64);
        let events = rt.events();
        let w = PodWorker {
            rt,
            store,
            rec,
            settings,
            tx,
            last_saved: Vec::new(),
            removed: false,
            probe_tx,
            probe_tasks: HashMap::new(),
            sandbox_error: None,
            unresponsive: None,
            held: None,
            cmd_rx,
            meta_rx,
            checked: None,
            ephemeral_rx,
            premade: HashMap::new(),
        };
        tokio::spawn(w.run(events, probe_rx, hold));
        PodHandle {
            snapshot,
            cmd: cmd_tx,
            meta: Arc::new(meta_tx),
            ephemeral: Arc::new(ephemeral_tx),
        }
    }

    fn now(&self) -> i64 {
        self.settings.clock.now()
    }

    fn policy(&self) -> RestartPolicy {
        RestartPolicy::parse(
            self.rec
                .pod
                .spec
                .as_ref()
                .and_then(|s| s.restart_policy.as_deref()),
        )
    }

    fn pod_ref(&self) -> String {
        let m = &self.rec.pod.metadata;
        format!(
            "{}_{}({})",
            m.name.as_deref().unwrap_or(""),
            m.namespace.as_deref().unwrap_or(""),
            m.uid.as_deref().unwrap_or("")
        )
    }

    fn pod_grace(&self) -> i64 {
        self.rec
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30)
    }

    async fn run(
        mut self,
        mut events: broadcast::Receiver<RuntimeEvent>,
        mut probe_rx: mpsc::Receiver<ProbeUpdate>,
        hold: Option<watch::Receiver<Option<String>>>,
    ) {
        if let Some(hold) = hold {
            if !self.wait_for_release(hold).await {
                return;
            }
        }
        // A status at once (Pending, Init:0/N): the first sync may take a while.
        self.publish().await;
        // A ConfigMap or Secret change may unblock a waiting container or update a volume.
        let mut objects_changed = self.settings.objects.subscribe();
        loop {
            let wake = self.sync().await;
            self.publish().await;
            if self.removed {
                return;
            }
            if self.interrupted() {
                // A delete or eviction taken in the middle of the sync: act on it now.
                continue;
            }
            // A steady pod is woken by events (exits, probes, orders); between them only
            // a look at its shim now and then, and rarely a full sync. Spread, so that
            // pods applied together do not all wake together.
            let steady = wake.is_none() && self.steady();
            let full = Instant::now()
                + match steady {
                    true => spread(self.settings.steady_resync),
                    false => self.settings.resync,
                };
            // A runtime that reports a silent shim itself makes the look needless: at
            // 500 idle pods it was a fifth of the daemon's CPU.
            let checks = steady && !self.rec.finished && !self.rt.reports_silence();
            let every = self.settings.steady_check;
            let next_check = move || match checks {
                true => full.min(Instant::now() + spread(every)),
                false => full,
            };
            let mut deadline = wake.unwrap_or_else(next_check);
            loop {
                tokio::select! {
                    cmd = self.cmd_rx.recv() => {
                        match cmd {
                            Some(cmd) => {
                                self.take(cmd);
                                // Show Terminating at once: stopping may take the whole grace.
                                self.publish().await;
                            }
                            None => return,
                        }
                        break;
                    }
                    Some(u) = probe_rx.recv() => {
                        if self.apply_probe(u) {
                            break;
                        }
                    }
                    ev = events.recv() => {
                        match ev {
                            Ok(RuntimeEvent::ContainerExited { sandbox_id, .. })
                            | Ok(RuntimeEvent::SandboxExited { sandbox_id })
                            | Ok(RuntimeEvent::ShimSilent { sandbox_id })
                                if Some(&sandbox_id) == self.rec.sandbox_id.as_ref() => break,
                            Ok(_) => continue,
                            Err(broadcast::error::RecvError::Lagged(_)) => break,
                            Err(broadcast::error::RecvError::Closed) => {
                                tokio::time::sleep_until(deadline).await;
                                break;
                            }
                        }
                    }
                    changed = objects_changed.changed() => {
                        if changed.is_err() {
                            // The store is gone (daemon shutting down): plain resync.
                            tokio::time::sleep_until(deadline).await;
                        } else {
                            // New objects are news to a container that waits for one:
                            // its back-off does not hold it back from trying now.
                            for t in self.rec.containers.values_mut() {
                                if t.waiting.as_ref().is_some_and(|(r, _)| r == "CreateContainerConfigError") {
                                    t.create_backoff = None;
                                }
                            }
                        }
                        break;
                    }
                    changed = self.ephemeral_rx.changed() => {
                        if changed.is_err() {
                            // The handle is gone (daemon shutting down): plain resync.
                            tokio::time::sleep_until(deadline).await;
                        } else {
                            // A debug container to start: into the spec, shown at once.
                            let list = self.ephemeral_rx.borrow_and_update().clone();
                            set_ephemeral(&mut self.rec.pod, list);
                            self.publish().await;
                        }
                        break;
                    }
                    _ = tokio::time::sleep_until(deadline) => {
                        if steady && deadline < full && self.steady_check().await {
                            deadline = next_check();
                            continue;
                        }
                        break;
                    }
                }
            }
        }
    }

    /// Record an order; returns the grace period now in force (0 for an eviction).
    fn take(&mut self, cmd: WorkerCmd) -> i64 {
        match cmd {
            WorkerCmd::Delete { grace } => self.on_delete(grace),
            WorkerCmd::Evict { message } => {
                self.on_evict(message);
                0
            }
        }
    }

    /// Record an eviction: the Evicted event now, the kill at the next step of the sync
    /// (grace 0, like kubelet's local-storage and hard-threshold evictions). A pod that
    /// is already done or being deleted is left as it is.
    fn on_evict(&mut self, message: String) {
        if self.rec.evicted.is_some() || self.rec.finished || self.rec.deleting.is_some() {
            return;
        }
        let now = self.now();
        self.rec.event(now, "Warning", "Evicted", message.clone());
        self.rec.evicted = Some(message);
    }

    /// A delete or an eviction waits to be acted on: the sync in progress stops.
    fn interrupted(&self) -> bool {
        self.rec.deleting.is_some() || (self.rec.evicted.is_some() && !self.rec.finished)
    }

    /// Nothing to do until something happens: the pod finished, or its sandbox is there
    /// and answers, every regular container and sidecar runs, and no delete is pending.
    /// Whatever would change that (an exit, the pause or shim dying, a probe result, an
    /// order, an eviction) comes as an event; only a shim that stops answering does not, which the
    /// steady check looks for.
    fn steady(&self) -> bool {
        if self.interrupted() || self.held.is_some() || self.unresponsive.is_some() {
            return false;
        }
        if self.rec.finished {
            return true;
        }
        let spec = self.rec.pod.spec.as_ref();
        self.rec.sandbox_id.is_some()
            && self.rec.initialized
            && spec.is_some_and(|s| {
                s.init_containers
                    .iter()
                    .flatten()
                    .filter(|c| is_sidecar(c))
                    .chain(&s.containers)
                    .all(|c| self.state_of(&c.name) == Some(ContainerState::Running))
                    // An ephemeral container is started once: steady once it was.
                    && s.ephemeral_containers.iter().flatten().all(|c| {
                        matches!(
                            self.state_of(&c.name),
                            Some(ContainerState::Running | ContainerState::Exited)
                        )
                    })
            })
    }

    /// The steady check: the sandbox's status, for which the runtime asks the shim only
    /// when its heartbeat has gone quiet (a stopped or hung shim). True when the pause
    /// runs (nothing to sync); otherwise the caller syncs, with this answer (a shim that
    /// does not answer is not waited for twice).
    async fn steady_check(&mut self) -> bool {
        let Some(id) = &self.rec.sandbox_id else {
            return false;
        };
        let st = self.rt.pod_sandbox_status(id).await;
        if st.as_ref().is_ok_and(|s| s.state == SandboxState::Ready) {
            return true;
        }
        self.checked = Some(st);
        false
    }

    /// Record a delete order; returns the grace period now in force. A shorter grace
    /// wins over one already running, like the API server's.
    fn on_delete(&mut self, grace: Option<i64>) -> i64 {
        let g = grace.unwrap_or_else(|| self.pod_grace());
        let g = self.rec.deleting.map_or(g, |d| d.min(g));
        self.rec.deleting = Some(g);
        let now = self.now();
        if self.rec.pod.metadata.deletion_timestamp.is_none() {
            self.rec.pod.metadata.deletion_timestamp = Some(k8s_time(now));
        }
        self.rec.pod.metadata.deletion_grace_period_seconds = Some(g);
        g
    }

    /// While the start-time cleanup has work on this pod: show it, take orders, and
    /// return once released (false: the daemon dropped the pod's handle).
    async fn wait_for_release(&mut self, mut hold: watch::Receiver<Option<String>>) -> bool {
        loop {
            let why = hold.borrow_and_update().clone();
            let Some(why) = why else {
                self.held = None;
                return true;
            };
            self.held = Some(why);
            self.publish().await;
            tokio::select! {
                changed = hold.changed() => {
                    if changed.is_err() {
                        // The cleanup task ended without a word: nothing holds the pod.
                        self.held = None;
                        return true;
                    }
                }
                cmd = self.cmd_rx.recv() => match cmd {
                    // Acted on once released: the cleanup may still be killing what
                    // a delete would tear down under it.
                    Some(cmd) => { self.take(cmd); }
                    None => return false,
                },
            }
        }
    }

    /// Await `fut` while taking orders: a delete is recorded and shown at once, and
    /// ends the wait (`None`, `fut` dropped); the caller leaves its step, and the pod
    /// is terminated. kubelet cancels a sync the same way when a pod is deleted.
    async fn or_delete<T>(&mut self, fut: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::pin!(fut);
        tokio::select! {
            out = &mut fut => Some(out),
            cmd = self.cmd_rx.recv() => match cmd {
                Some(cmd) => {
                    self.take(cmd);
                    self.publish().await;
                    None
                }
                // The handle is gone (daemon stopping): nothing can interrupt any more.
                None => Some(fut.await),
            },
        }
    }

    /// Between two steps of a sync: take the orders that came meanwhile, and show what
    /// changed (`changed`: a container started). True when the pod is being deleted:
    /// the sync stops there.
    async fn checkpoint(&mut self, changed: bool) -> bool {
        let mut ordered = false;
        while let Ok(cmd) = self.cmd_rx.try_recv() {
            self.take(cmd);
            ordered = true;
        }
        if changed || ordered {
            self.publish().await;
        }
        self.interrupted()
    }

    /// Compute and publish the status; persist when something changed.
    async fn publish(&mut self) {
        if self.meta_rx.has_changed().unwrap_or(false) {
            self.meta_rx.borrow_and_update().set_on(&mut self.rec.pod);
        }
        if self.ephemeral_rx.has_changed().unwrap_or(false) {
            let list = self.ephemeral_rx.borrow_and_update().clone();
            set_ephemeral(&mut self.rec.pod, list);
        }
        if let Some(why) = &self.held {
            // Not synced yet: the status last stored stands (its shim is not even
            // asked: it may be what the cleanup waits for), marked with the reason.
            let mut st = self.rec.pod.status.clone().unwrap_or_default();
            st.reason = Some(STARTUP_CLEANUP.into());
            st.message = Some(why.clone());
            self.rec.pod.status = Some(st);
            self.tx.send_replace(self.rec.clone());
            return;
        }
        // An unresponsive shim would hold every publish for the request's time limit.
        let sandbox = match (&self.rec.sandbox_id, &self.unresponsive) {
            (Some(id), None) => self.rt.pod_sandbox_status(id).await.ok(),
            _ => None,
        };
        let sandbox_ready = sandbox
            .as_ref()
            .is_some_and(|s| s.state == SandboxState::Ready);
        let now = self.now();
        let mut st = status::pod_status(&self.rec, sandbox_ready, now);
        self.network_status(&mut st, sandbox.as_ref());
        if let Some(why) = &self.unresponsive {
            status::mark_unknown(&mut st, format!("Pod's shim does not answer: {why}"), now);
        }
        self.rec.pod.status = Some(st);
        if !self.removed {
            if let Some(store) = &self.store {
                let bytes = serde_json::to_vec(&self.rec).unwrap_or_default();
                if bytes != self.last_saved {
                    match store.save(&self.rec) {
                        Ok(()) => self.last_saved = bytes,
                        Err(e) => tracing::error!("pod {}: saving state: {e}", self.rec.key()),
                    }
                }
            }
        }
        self.tx.send_replace(self.rec.clone());
    }

    /// A probe task's report: record it; true when the pod must be synced again.
    fn apply_probe(&mut self, u: ProbeUpdate) -> bool {
        let current = self
            .current(&u.container)
            .is_some_and(|c| c.id == u.container_id);
        if !current {
            // A report about a container that was replaced: its results died with it.
            return false;
        }
        if let Some(out) = &u.failure {
            let now = self.now();
            self.rec.event(
                now,
                "Warning",
                "Unhealthy",
                format!("{} probe failed: {out}", u.kind.as_str()),
            );
        }
        if let Some(r) = u.result {
            self.track_mut(&u.container).set_probe(u.kind, r);
        }
        true
    }

    /// podIP/podIPs from the sandbox (kept once the sandbox is gone, like the API server
    /// keeps them for finished pods; a hostNetwork pod has the host's), and the last
    /// sandbox creation error as the pod's reason and message.
    fn network_status(
        &self,
        st: &mut k8s_openapi::api::core::v1::PodStatus,
        sandbox: Option<&podhost_runtime::SandboxStatus>,
    ) {
        use k8s_openapi::api::core::v1::PodIP;
        let prev = self.rec.pod.status.as_ref();
        let host_network = self
            .rec
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        let ips: Vec<String> = match sandbox {
            _ if host_network => st.host_ip.clone().into_iter().collect(),
            Some(s) => s.ip.iter().chain(&s.additional_ips).cloned().collect(),
            None => prev
                .and_then(|p| p.pod_ips.as_ref())
                .into_iter()
                .flatten()
                .map(|p| p.ip.clone())
                .collect(),
        };
        if !ips.is_empty() {
            st.pod_ip = ips.first().cloned();
            st.pod_ips = Some(ips.into_iter().map(|ip| PodIP { ip }).collect());
        }
        if let (Some(msg), None) = (&self.sandbox_error, &self.rec.sandbox_id) {
            st.reason = Some("FailedCreatePodSandBox".into());
            st.message = Some(format!("Failed to create pod sandbox: {msg}"));
        }
    }

    /// One pass of kubelet's SyncPod. Returns when to come back (None: resync period).
    async fn sync(&mut self) -> Option<Instant> {
        let checked = self.checked.take();
        if let Some(grace) = self.rec.deleting {
            self.stop_probes();
            self.terminate(grace).await;
            return None;
        }
        if self.rec.finished {
            self.stop_probes();
            return None;
        }
        if self.rec.evicted.is_some() {
            // Killed at once and never restarted; the volumes stay until the delete.
            self.stop_probes();
            if self.unresponsive.is_none() {
                self.refresh().await;
                self.kill_containers(0).await;
            }
            self.finish().await;
            // Memory-backed volumes (tmpfs emptyDirs, secrets) are what an eviction for
            // memory must give back: unmounted now; disk volumes stay until the delete.
            let volumes = self.settings.volumes_dir.join(self.rec.uid());
            if !podspec::unmount_volumes(&self.rec.pod, &volumes) {
                tracing::warn!(
                    "pod {}: evicted, but its volumes stay mounted",
                    self.rec.key()
                );
            }
            return None;
        }
        let sandbox = match self.rec.sandbox_id.clone() {
            Some(id) => Some(match checked {
                Some(st) => st,
                None => self.rt.pod_sandbox_status(&id).await,
            }),
            None => None,
        };
        if self.note_unresponsive(sandbox.as_ref()) {
            // Probes would fail against a stopped shim and kill what may be healthy.
            self.stop_probes();
            return None;
        }
        self.refresh().await;
        let wake = match self.sync_steps(sandbox).await {
            Ok(()) => None,
            Err(wake) => wake,
        };
        self.discard_premade().await;
        if self.rec.finished {
            self.stop_probes();
        } else {
            self.sync_probes().await;
        }
        wake
    }

    /// Regular containers all exited and none will run again: the pod is done.
    fn main_done(&self, spec: &PodSpec, policy: RestartPolicy) -> bool {
        self.rec.initialized
            && spec.containers.iter().all(|c| match self.current(&c.name) {
                Some(s) => s.state == ContainerState::Exited && !should_restart(policy, s),
                None => false,
            })
    }

    /// started = running && (no startupProbe || startup Success).
    fn started(&self, c: &Container) -> bool {
        self.state_of(&c.name) == Some(ContainerState::Running)
            && (c.startup_probe.is_none()
                || self.track(&c.name).probe(ProbeKind::Startup) == ProbeResult::Success)
    }

    /// Track whether the pod's shim lives but does not answer; true while it does not.
    /// Events mark when that starts and when it ends.
    fn note_unresponsive(&mut self, sandbox: Option<&Result<SandboxStatus, RuntimeError>>) -> bool {
        let why = match sandbox {
            Some(Ok(s)) if s.state == SandboxState::Unknown => Some(
                s.not_ready_reason
                    .clone()
                    .unwrap_or_else(|| "no answer".into()),
            ),
            _ => None,
        };
        let now = self.now();
        match (&self.unresponsive, &why) {
            (None, Some(w)) => self.rec.event(
                now,
                "Warning",
                status::SHIM_UNREACHABLE,
                format!("Pod's shim does not answer, the pod is Unknown until it does and nothing is restarted meanwhile: {w}"),
            ),
            (Some(_), None) => self.rec.event(
                now,
                "Normal",
                "ShimReachable",
                "Pod's shim answers again".into(),
            ),
            _ => {}
        }
        self.unresponsive = why;
        self.unresponsive.is_some()
    }

    async fn sync_steps(&mut self, sandbox: Option<Result<SandboxStatus, RuntimeError>>) -> Step {
        self.ensure_sandbox(sandbox).await?;
        self.refresh_volumes().await;
        let spec = self.rec.pod.spec.clone().unwrap_or_default();
        let policy = self.policy();
        // Containers whose liveness or startup probe failed are killed; the steps below
        // then restart them like any exited container (restartPolicy, backoff).
        self.kill_unhealthy(&spec).await;
        if self.checkpoint(false).await {
            return Err(Some(Instant::now()));
        }
        if self.main_done(&spec, policy) {
            self.finish().await;
            return Err(None);
        }
        // Ephemeral containers start before init containers, as kubelet starts them: a
        // debugger must reach a pod whose init container fails.
        let mut wake = self.ensure_ephemeral(&spec).await?;
        // Init containers, one at a time; sidecars start in order and keep running.
        for c in spec.init_containers.iter().flatten() {
            if is_sidecar(c) {
                // Sidecars restart whenever they exit, whatever the pod's policy.
                let started = self.ensure_running_and_show(c, RestartPolicy::Always).await;
                if self.interrupted() {
                    return Err(Some(Instant::now()));
                }
                if let Err(w) = started {
                    if !self.rec.initialized {
                        return Err(w);
                    }
                    wake = earliest(wake, w);
                }
                // The next init container waits until this sidecar started (postStart
                // done, startup probe passed); a probe report wakes the worker.
                if !self.rec.initialized && !self.started(c) {
                    return Err(wake);
                }
                continue;
            }
            if self.rec.initialized || self.track(&c.name).init_done {
                continue;
            }
            match self.current(&c.name).map(|s| (s.state, s.exit_code)) {
                Some((ContainerState::Exited, Some(0))) => {
                    self.track_mut(&c.name).init_done = true;
                    continue;
                }
                Some((ContainerState::Exited, _)) if policy == RestartPolicy::Never => {
                    self.finish().await;
                    return Err(None);
                }
                Some((ContainerState::Running, _)) => return Err(wake),
                _ => {
                    // Regular init containers restart on failure under Always and OnFailure.
                    self.ensure_running_and_show(c, RestartPolicy::OnFailure)
                        .await?;
                    return Err(wake);
                }
            }
        }
        self.rec.initialized = true;
        for (i, c) in spec.containers.iter().enumerate() {
            if self.fresh(c) {
                self.create_ahead(&spec.containers[i..]).await;
            }
            let started = self.ensure_running_and_show(c, policy).await;
            if self.interrupted() {
                return Err(Some(Instant::now()));
            }
            if let Err(w) = started {
                wake = earliest(wake, w);
            }
        }
        // The pod is done when no regular container runs or will run again.
        if self.main_done(&spec, policy) {
            self.finish().await;
            return Err(None);
        }
        match wake {
            Some(w) => Err(Some(w)),
            None => Ok(()),
        }
    }

    /// [`Self::ensure_running`], then the checkpoint between containers: the status
    /// shows each container as it starts (a start of hundreds takes minutes), and a
    /// delete that came meanwhile stops the sync before the next one.
    async fn ensure_running_and_show(&mut self, c: &Container, policy: RestartPolicy) -> Step {
        let before = self.current(&c.name).map(|s| s.id.clone());
        let r = self.ensure_running(c, policy).await;
        let after = self.current(&c.name).map(|s| s.id.clone());
        if self.checkpoint(before != after).await {
            return Err(Some(Instant::now()));
        }
        r
    }

    /// Start each ephemeral container once; none is ever restarted (kubelet's
    /// EphemeralContainersToStart). One whose create failed is tried again after its
    /// create back-off, as any container's.
    async fn ensure_ephemeral(
        &mut self,
        spec: &PodSpec,
    ) -> Result<Option<Instant>, Option<Instant>> {
        let mut wake = None;
        for e in spec.ephemeral_containers.iter().flatten() {
            let c = podhost_api::ephemeral_as_container(e);
            let started = self.ensure_running_and_show(&c, RestartPolicy::Never).await;
            if self.rec.deleting.is_some() {
                return Err(Some(Instant::now()));
            }
            if let Err(w) = started {
                wake = earliest(wake, w);
            }
        }
        Ok(wake)
    }

    /// The container whose PID namespace `name` joins: the running container of its
    /// `targetContainerName` (ephemeral containers only). An error while that one does
    /// not run.
    fn pid_target(&self, name: &str) -> Result<Option<String>, String> {
        let target = self
            .rec
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.ephemeral_containers.as_ref())
            .and_then(|list| list.iter().find(|e| e.name == name))
            .and_then(|e| e.target_container_name.clone());
        let Some(target) = target else {
            return Ok(None);
        };
        match self.current(&target) {
            Some(c) if c.state == ContainerState::Running => Ok(Some(c.id.clone())),
            _ => Err(format!(
                "target container {target:?} of container {name:?} is not running: its PID namespace cannot be joined"
            )),
        }
    }

    /// Sidecars and regular containers: the ones that may have probes.
    fn long_running(spec: &PodSpec) -> Vec<Container> {
        spec.init_containers
            .iter()
            .flatten()
            .filter(|c| is_sidecar(c))
            .chain(spec.containers.iter())
            .cloned()
            .collect()
    }

    /// Kill running containers whose liveness or startup probe result is Failure.
    async fn kill_unhealthy(&mut self, spec: &PodSpec) {
        for c in Self::long_running(spec) {
            // A delete taken during an earlier kill stops the rest of the pod itself.
            if self.interrupted() {
                return;
            }
            if self.state_of(&c.name) != Some(ContainerState::Running) {
                continue;
            }
            let t = self.track(&c.name);
            let kind = [ProbeKind::Startup, ProbeKind::Liveness]
                .into_iter()
                .find(|k| k.of(&c).is_some() && t.probe(*k) == ProbeResult::Failure);
            let Some(kind) = kind else { continue };
            // The probe's own terminationGracePeriodSeconds wins over the pod's.
            let grace = kind
                .of(&c)
                .and_then(|p| p.termination_grace_period_seconds)
                .unwrap_or_else(|| self.pod_grace());
            let msg = format!(
                "Container {} failed {} probe, will be restarted",
                c.name,
                kind.as_str().to_lowercase()
            );
            self.stop_now(&c.name, grace, msg).await;
        }
    }

    /// Stop one container (Killing event, preStop, signal, grace) and wait for it,
    /// showing the Killing at once and taking orders meanwhile: a delete whose grace
    /// ends sooner cuts this stop short (the deletion then stops the container within
    /// its own grace), a longer one lets it finish.
    async fn stop_now(&mut self, name: &str, grace: i64, message: String) {
        let deadline = Instant::now() + Duration::from_secs(u64::try_from(grace).unwrap_or(0));
        if let Some(job) = self.stop_job(name, message).await {
            self.publish().await;
            let fut = self.stop_future(job, deadline, grace == 0).await;
            tokio::pin!(fut);
            loop {
                tokio::select! {
                    failure = &mut fut => {
                        self.record_prestop_failure(failure);
                        break;
                    }
                    cmd = self.cmd_rx.recv() => match cmd {
                        Some(cmd) => {
                            let g = self.take(cmd);
                            self.publish().await;
                            let ends = Instant::now() + Duration::from_secs(u64::try_from(g).unwrap_or(0));
                            if g <= 0 || ends < deadline {
                                break;
                            }
                        }
                        None => {
                            let failure = (&mut fut).await;
                            self.record_prestop_failure(failure);
                            break;
                        }
                    },
                }
            }
        }
        self.refresh().await;
    }

    fn record_prestop_failure(&mut self, failure: Option<String>) {
        if let Some(msg) = failure {
            let now = self.now();
            self.rec.event(now, "Warning", "FailedPreStopHook", msg);
        }
    }

    /// Start, keep or stop probe tasks so that each running container has the ones its
    /// spec asks for: only startup until it succeeded, then liveness and readiness.
    async fn sync_probes(&mut self) {
        let spec = self.rec.pod.spec.clone().unwrap_or_default();
        let mut want: HashMap<(String, ProbeKind), (String, i64, ProbeSpec)> = HashMap::new();
        if self.rec.deleting.is_none() {
            for c in Self::long_running(&spec) {
                let Some(cur) = self.current(&c.name) else {
                    continue;
                };
                if cur.state != ContainerState::Running {
                    continue;
                }
                let (id, started_at) = (cur.id.clone(), cur.started_at.unwrap_or(0));
                let t = self.track(&c.name);
                let kinds: Vec<ProbeKind> = if c.startup_probe.is_some()
                    && t.probe(ProbeKind::Startup) != ProbeResult::Success
                {
                    vec![ProbeKind::Startup]
                } else {
                    vec![ProbeKind::Liveness, ProbeKind::Readiness]
                };
                for k in kinds {
                    let Some(p) = k.of(&c) else { continue };
                    // A failed liveness/startup probe waits for the container's restart.
                    if k != ProbeKind::Readiness && t.probe(k) == ProbeResult::Failure {
                        continue;
                    }
                    want.insert(
                        (c.name.clone(), k),
                        (id.clone(), started_at, ProbeSpec::new(k, p, &c)),
                    );
                }
            }
        }
        self.probe_tasks.retain(|key, (id, handle)| {
            let keep = want.get(key).is_some_and(|(wid, _, _)| wid == id);
            if !keep {
                handle.abort();
            }
            keep
        });
        let missing: Vec<_> = want
            .into_iter()
            .filter(|(k, _)| !self.probe_tasks.contains_key(k))
            .collect();
        if missing.is_empty() {
            return;
        }
        let netns = self.netns().await;
        for ((name, kind), (id, started_at, pspec)) in missing {
            let target = ProbeTarget {
                container: name.clone(),
                container_id: id.clone(),
                started_at,
                netns: netns.clone(),
            };
            let h = probes::spawn(
                self.rt.clone(),
                self.settings.clock,
                target,
                pspec,
                self.probe_tx.clone(),
            );
            self.probe_tasks.insert((name, kind), (id, h));
        }
    }

    fn stop_probes(&mut self) {
        for (_, (_, h)) in self.probe_tasks.drain() {
            h.abort();
        }
    }

    /// The pinned network namespace of the current sandbox (empty when unknown).
    async fn netns(&self) -> PathBuf {
        match &self.rec.sandbox_id {
            Some(id) => self
                .rt
                .pod_sandbox_status(id)
                .await
                .map(|s| s.netns_path)
                .unwrap_or_default(),
            None => PathBuf::new(),
        }
    }

    fn track(&self, name: &str) -> ContainerTrack {
        self.rec.containers.get(name).cloned().unwrap_or_default()
    }
    fn track_mut(&mut self, name: &str) -> &mut ContainerTrack {
        self.rec.containers.entry(name.to_string()).or_default()
    }
    fn current(&self, name: &str) -> Option<&podhost_runtime::ContainerStatus> {
        self.rec
            .containers
            .get(name)
            .and_then(|t| t.current.as_ref())
    }
    fn state_of(&self, name: &str) -> Option<ContainerState> {
        self.current(name).map(|s| s.state)
    }

    /// Re-read the state of every current container from the runtime.
    async fn refresh(&mut self) {
        let Some(sid) = self.rec.sandbox_id.clone() else {
            return;
        };
        let Ok(list) = self.rt.list_containers(Some(&sid)).await else {
            return;
        };
        for t in self.rec.containers.values_mut() {
            if let Some(cur) = &t.current {
                // Unknown is the runtime not being able to tell (a shim that stopped
                // answering since the last look), not news: the last state seen stays.
                if let Some(fresh) = list
                    .iter()
                    .find(|c| c.id == cur.id && c.state != ContainerState::Unknown)
                {
                    t.current = Some(fresh.clone());
                }
            }
        }
    }

    /// Make sure a ready sandbox exists (kubelet: recreate when the pause died), given the
    /// current sandbox's status.
    async fn ensure_sandbox(
        &mut self,
        status: Option<Result<SandboxStatus, RuntimeError>>,
    ) -> Step {
        let mut dead_sandbox = None;
        if let (Some(id), Some(status)) = (self.rec.sandbox_id.clone(), status) {
            if status
                .as_ref()
                .is_ok_and(|s| s.state == SandboxState::Ready)
            {
                return Ok(());
            }
            let now = self.now();
            // Say why (a crashed shim, a dead pause) before kubelet's generic event.
            let why = match &status {
                Ok(s) => s.not_ready_reason.clone(),
                Err(e) => Some(e.to_string()),
            };
            if let Some(why) = why {
                self.rec.event(
                    now,
                    "Warning",
                    "SandboxNotReady",
                    format!("Pod sandbox {} is not ready: {why}", short_id(&id)),
                );
            }
            self.rec.event(
                now,
                "Normal",
                "SandboxChanged",
                "Pod sandbox changed, it will be killed and re-created.".into(),
            );
            self.kill_containers(2).await;
            self.refresh().await;
            self.mark_lost_containers();
            self.rec.sandbox_id = None;
            let any_ran = self.rec.containers.values().any(|t| t.current.is_some());
            if self.policy() == RestartPolicy::Never && any_ran {
                if let Err(e) = self.rt.remove_pod_sandbox(&id).await {
                    tracing::warn!("pod {}: removing dead sandbox {id}: {e}", self.rec.key());
                }
                self.rec.finished = true;
                return Err(None);
            }
            // Removed by the recreate below, which may keep its network (the pod IP).
            dead_sandbox = Some(id);
        }
        let volumes = self.settings.volumes_dir.join(self.rec.uid());
        if let Err(e) = podspec::prepare_volumes(&self.rec.pod, &volumes) {
            if let Some(id) = dead_sandbox {
                let _ = self.rt.remove_pod_sandbox(&id).await;
            }
            self.fail_sandbox(e.to_string());
            return Err(Some(Instant::now() + Duration::from_secs(5)));
        }
        let cfg = podspec::sandbox_config(
            &self.rec.pod,
            self.rec.sandbox_attempts,
            &self.settings.log_dir,
        );
        let created = match dead_sandbox {
            Some(old) => self.rt.recreate_pod_sandbox(&old, &cfg).await,
            None => self.rt.run_pod_sandbox(&cfg).await,
        };
        match created {
            Ok(id) => {
                self.sandbox_error = None;
                self.rec.sandbox_id = Some(id);
                self.rec.sandbox_attempts += 1;
                // Init containers run again from the first unless a regular one already started.
                let spec = self.rec.pod.spec.clone().unwrap_or_default();
                let regular_started = spec
                    .containers
                    .iter()
                    .any(|c| self.current(&c.name).is_some());
                if !regular_started {
                    self.rec.initialized = false;
                    for c in spec.init_containers.iter().flatten() {
                        self.track_mut(&c.name).init_done = false;
                    }
                }
                Ok(())
            }
            Err(e) => {
                self.fail_sandbox(e.to_string());
                Err(Some(Instant::now() + Duration::from_secs(5)))
            }
        }
    }

    fn fail_sandbox(&mut self, message: String) {
        self.sandbox_error = Some(message.clone());
        let now = self.now();
        self.rec.event(
            now,
            "Warning",
            "FailedCreatePodSandBox",
            format!("Failed to create pod sandbox: {message}"),
        );
    }

    /// Containers whose sandbox vanished while they "ran" are lost (exit 137, Unknown).
    fn mark_lost_containers(&mut self) {
        let now = self.now();
        for t in self.rec.containers.values_mut() {
            if let Some(c) = &mut t.current {
                if matches!(
                    c.state,
                    ContainerState::Running | ContainerState::Created | ContainerState::Unknown
                ) {
                    c.state = ContainerState::Exited;
                    c.exit_code = Some(137);
                    c.reason = Some("ContainerStatusUnknown".into());
                    c.finished_at = Some(now);
                    c.pid = None;
                }
            }
        }
    }

    /// Start the container if it should run and is not running (kubelet's computePodActions
    /// for one container), honouring CrashLoopBackOff.
    async fn ensure_running(&mut self, c: &Container, policy: RestartPolicy) -> Step {
        let track = self.track(&c.name);
        let Some(cur) = track.current.clone() else {
            // Never created, or a restart whose create failed: tried again once its
            // create back-off is over, as the same attempt (restartCount moves only
            // when a container is created, as kubelet counts the runtime's containers).
            if let Some((delay_ms, at)) = track.create_backoff {
                let until =
                    at.saturating_add(i64::try_from(delay_ms).unwrap_or(i64::MAX / 2) * 1_000_000);
                let now = self.now();
                if now < until {
                    let left = Duration::from_nanos(u64::try_from(until - now).unwrap_or(0));
                    return Err(Some(Instant::now() + left));
                }
            }
            return self.create_and_start(c, track.next_attempt()).await;
        };
        if cur.state == ContainerState::Running {
            return Ok(());
        }
        if cur.state == ContainerState::Unknown {
            // kubelet: whether it still runs is not known, so it is killed before a new
            // one starts (two instances of one container must never run); while that
            // cannot be confirmed, nothing starts.
            let message = format!(
                "Container {} is in \"Unknown\" state, try killing it before restart",
                c.name
            );
            self.stop_now(&c.name, self.pod_grace(), message).await;
            if self.state_of(&c.name) == Some(ContainerState::Unknown) {
                return Err(Some(Instant::now() + UNKNOWN_RETRY));
            }
            return Err(Some(Instant::now()));
        }
        if !should_restart(policy, &cur) {
            return Ok(());
        }
        let now = self.now();
        let finished = cur.finished_at.unwrap_or(now);
        let started = cur.started_at.unwrap_or(finished);
        match self
            .settings
            .backoff
            .decide(track.backoff_ms, started, finished, now)
        {
            BackoffDecision::Wait { remaining, delay } => {
                let msg = format!(
                    "back-off {} restarting failed container={} pod={}",
                    human(delay),
                    c.name,
                    self.pod_ref()
                );
                self.track_mut(&c.name).waiting = Some(("CrashLoopBackOff".into(), msg));
                self.rec.event(
                    now,
                    "Warning",
                    "BackOff",
                    "Back-off restarting failed container".to_string()
                        + &format!(" {} in pod {}", c.name, self.pod_ref()),
                );
                Err(Some(Instant::now() + remaining))
            }
            BackoffDecision::RestartNow { next_delay_ms } => {
                // Keep one previous container (for lastState and logs --previous).
                if let Some(prev) = track.previous.clone() {
                    if let Err(e) = self.rt.remove_container(&prev.id).await {
                        tracing::warn!(
                            "pod {}: removing old container {}: {e}",
                            self.rec.key(),
                            prev.id
                        );
                    }
                    // Its log files go with it, as kubelet's container GC removes them:
                    // otherwise a crash-looping container's logs grow by one full set
                    // of rotated files per restart.
                    if !prev.log_path.as_os_str().is_empty() {
                        if let Err(e) = podhost_shim::logrotate::remove_all(&prev.log_path) {
                            tracing::warn!(
                                "pod {}: removing the log of old container {} ({}): {e}",
                                self.rec.key(),
                                prev.id,
                                prev.log_path.display()
                            );
                        }
                    }
                }
                let t = self.track_mut(&c.name);
                t.backoff_ms = Some(next_delay_ms);
                t.previous = Some(cur);
                t.current = None;
                let attempt = t.restart_count + 1;
                self.create_and_start(c, attempt).await
            }
        }
    }

    /// A container could not be created or started (CreateContainerConfigError,
    /// CreateContainerError, RunContainerError): it waits with that reason, and the next
    /// try comes after a back-off like a crash loop's (the same initial delay, doubled
    /// per failure up to the same cap), so a broken container costs a try every five
    /// minutes, not one per sync. The Failed event is one counted series.
    fn create_failed(&mut self, name: &str, reason: &str, message: String) -> Step {
        let now = self.now();
        self.rec.event(now, "Warning", "Failed", message.clone());
        let backoff = self.settings.backoff;
        let t = self.track_mut(name);
        t.waiting = Some((reason.to_string(), message));
        let delay = match t.create_backoff {
            Some((ms, _)) => (Duration::from_millis(ms) * 2).min(backoff.max),
            None => backoff.initial,
        };
        t.create_backoff = Some((u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), now));
        Err(Some(Instant::now() + delay))
    }

    async fn create_and_start(&mut self, c: &Container, attempt: u32) -> Step {
        let Some(sid) = self.rec.sandbox_id.clone() else {
            return Err(None);
        };
        let now = self.now();
        let backoff = self.settings.backoff;
        let pull = super::image_pull::prepare(
            self.rt.as_ref(),
            &self.settings.objects,
            &mut self.rec,
            c,
            backoff,
            now,
        )
        .await?;
        if let Some(job) = pull {
            // A pull may take minutes: Pulling shows now, and a delete does not wait
            // for it. The pull goes on by itself (the image is the machine's, and
            // an abandoned download would only be resumed later).
            self.publish().await;
            let (rt, image, auth) = (self.rt.clone(), job.image.clone(), job.auth.clone());
            let pulling = tokio::spawn(async move {
                rt.pull_image(&image, auth, None)
                    .await
                    .map_err(|e| super::image_pull::pull_error_text(&e))
            });
            let Some(joined) = self.or_delete(pulling).await else {
                return Err(Some(Instant::now()));
            };
            let pulled = joined.unwrap_or_else(|e| Err(format!("the pull stopped: {e}")));
            let now = self.now();
            super::image_pull::finish(&mut self.rec, c, job, pulled, backoff, now)?;
        }
        let created = match self.premade.remove(&c.name) {
            Some(p) if p.attempt == attempt => p.created,
            stale => {
                if let Some(p) = stale {
                    self.discard(&c.name, p).await;
                }
                let facts = self.pod_facts(&sid).await;
                let cfg = match self.container_config(c, attempt, &facts) {
                    Ok(cfg) => cfg,
                    Err(msg) => {
                        return self.create_failed(&c.name, "CreateContainerConfigError", msg)
                    }
                };
                let sandbox_cfg = self.sandbox_config();
                self.rt.create_container(&sid, &cfg, &sandbox_cfg).await
            }
        };
        let id = match created {
            Ok(id) => id,
            Err(e) => {
                self.release_sub_paths(Some(&c.name));
                // A config contradicting the image (runAsNonRoot and a root image) is
                // the pod's fault, not the runtime's: kubelet's CreateContainerConfigError.
                let reason = match e {
                    podhost_runtime::RuntimeError::ContainerConfig(_) => {
                        "CreateContainerConfigError"
                    }
                    // runc finds it when it starts the process, kubelet reports it so.
                    ref e if e.is_executable_not_found() => "RunContainerError",
                    _ => "CreateContainerError",
                };
                return self.create_failed(&c.name, reason, e.to_string());
            }
        };
        let now = self.now();
        self.rec.event(
            now,
            "Normal",
            "Created",
            format!("Created container {}", c.name),
        );
        if let Err(e) = self.rt.start_container(&id).await {
            let _ = self.rt.remove_container(&id).await;
            self.release_sub_paths(Some(&c.name));
            return self.create_failed(&c.name, "RunContainerError", e.to_string());
        }
        let now = self.now();
        self.rec.event(
            now,
            "Normal",
            "Started",
            format!("Started container {}", c.name),
        );
        let st = match self.rt.container_status(&id).await {
            // The start succeeded: a status that cannot tell (a shim slow to answer on
            // a loaded machine) is not news, and taken for `Created` or `Unknown` it
            // would have this container started a second time beside itself. It runs
            // since now; the next refresh or its exit event says more.
            Ok(mut s) if s.state == ContainerState::Unknown => {
                s.state = ContainerState::Running;
                s.started_at = Some(now);
                Some(s)
            }
            st => st.ok(),
        };
        let t = self.track_mut(&c.name);
        t.waiting = None;
        t.current = st;
        t.create_backoff = None;
        t.restart_count = t.restart_count.max(attempt);
        // A new container ID: probe results start over from their initial values.
        t.startup = None;
        t.liveness = None;
        t.readiness = None;
        // postStart runs before the container counts as started: the worker waits here,
        // so a sidecar's next init container and the pod's status wait too.
        if let Some(handler) = Hook::PostStart.of(c) {
            // Created and Started show now; a delete does not wait for the hook.
            self.publish().await;
            let netns = self.netns().await;
            let grace = Duration::from_secs(u64::try_from(self.pod_grace()).unwrap_or(30));
            let (rt, cid, spec, handler, pod_ref) = (
                self.rt.clone(),
                id.clone(),
                c.clone(),
                handler.clone(),
                self.pod_ref(),
            );
            let hook = async move {
                hooks::run(
                    &rt,
                    &cid,
                    &netns,
                    &spec,
                    &handler,
                    &pod_ref,
                    grace.max(MIN_STOP_GRACE),
                )
                .await
            };
            let Some(r) = self.or_delete(hook).await else {
                return Err(Some(Instant::now()));
            };
            if let Err(msg) = r {
                let now = self.now();
                self.rec
                    .event(now, "Warning", "FailedPostStartHook", msg.clone());
                self.stop_now(&c.name, self.pod_grace(), "FailedPostStartHook".into())
                    .await;
                self.track_mut(&c.name).waiting = Some(("PostStartHookError".into(), msg));
                // Come back at once: the exited container is then restarted (or not)
                // like any other, with backoff.
                return Err(Some(Instant::now()));
            }
        }
        Ok(())
    }

    /// The runtime config of `c` for `attempt`, or why there is none (kubelet's
    /// CreateContainerConfigError).
    fn container_config(
        &self,
        c: &Container,
        attempt: u32,
        facts: &super::env::PodFacts,
    ) -> Result<podhost_runtime::ContainerConfig, String> {
        let volumes = self.settings.volumes_dir.join(self.rec.uid());
        let inputs = podspec::Inputs {
            volumes_root: &volumes,
            objects: &self.settings.objects,
            facts,
        };
        let mut cfg = podspec::container_config(&self.rec.pod, c, attempt, &inputs)
            .map_err(|e| e.to_string())?;
        match self.pid_target(&c.name) {
            Ok(target) => cfg.linux.pid_target = target,
            Err(msg) => {
                self.release_sub_paths(Some(&c.name));
                return Err(msg);
            }
        }
        Ok(cfg)
    }

    fn sandbox_config(&self) -> podhost_runtime::SandboxConfig {
        podspec::sandbox_config(
            &self.rec.pod,
            self.rec.sandbox_attempts.saturating_sub(1),
            &self.settings.log_dir,
        )
    }

    /// `c` was never created (nor is it waiting out a failed create): its start creates
    /// it, and may create it ahead.
    fn fresh(&self, c: &Container) -> bool {
        let t = self.track(&c.name);
        t.current.is_none() && t.create_backoff.is_none() && !self.premade.contains_key(&c.name)
    }

    /// Creates the fresh containers among the first [`CREATE_AHEAD`] of `rest` whose
    /// image is there and whose config can be made, all at once: each create waits on
    /// its helper for most of its time. Their starts then take them in the pod's order
    /// (events, postStart hooks and the checkpoint between containers as before); any
    /// container left out is created by its start as usual.
    async fn create_ahead(&mut self, rest: &[Container]) {
        let Some(sid) = self.rec.sandbox_id.clone() else {
            return;
        };
        let facts = self.pod_facts(&sid).await;
        let mut jobs = Vec::new();
        for c in rest.iter().take(CREATE_AHEAD) {
            if !self.fresh(c) || !super::image_pull::ready(self.rt.as_ref(), c).await {
                continue;
            }
            let attempt = self.track(&c.name).next_attempt();
            // A config error is reported by the container's own start.
            if let Ok(cfg) = self.container_config(c, attempt, &facts) {
                jobs.push((c.name.clone(), attempt, cfg));
            }
        }
        if jobs.is_empty() {
            return;
        }
        let sandbox_cfg = self.sandbox_config();
        let rt = self.rt.clone();
        let created = futures_util::future::join_all(
            jobs.iter()
                .map(|(_, _, cfg)| rt.create_container(&sid, cfg, &sandbox_cfg)),
        )
        .await;
        for ((name, attempt, _), created) in jobs.into_iter().zip(created) {
            self.premade.insert(name, Premade { attempt, created });
        }
    }

    /// Removes a container created ahead that no start took (the sync was cut short).
    async fn discard(&mut self, name: &str, p: Premade) {
        if let Ok(id) = p.created {
            if let Err(e) = self.rt.remove_container(&id).await {
                tracing::warn!(
                    "pod {}: removing container {id} ({name}) created ahead: {e}",
                    self.rec.key()
                );
            }
        }
        self.release_sub_paths(Some(name));
    }

    async fn discard_premade(&mut self) {
        for (name, p) in std::mem::take(&mut self.premade) {
            self.discard(&name, p).await;
        }
    }

    /// Unmount and remove the private subPath mount points of one container (a failed
    /// create undoes its mounts) or, with `None`, of the whole pod (no container runs).
    fn release_sub_paths(&self, container: Option<&str>) {
        let volumes = self.settings.volumes_dir.join(self.rec.uid());
        let released = match container {
            Some(name) => super::subpath::release_container(&volumes, name),
            None => super::subpath::release_pod(&volumes),
        };
        if let Err(e) = released {
            tracing::warn!("pod {}: {e}", self.rec.key());
        }
    }

    /// Where the pod runs: its sandbox's IP (once networking gives one) and this machine.
    async fn pod_facts(&self, sandbox_id: &str) -> super::env::PodFacts {
        let ip = match self.rt.pod_sandbox_status(sandbox_id).await {
            Ok(s) => s.ip,
            Err(_) => None,
        };
        super::env::PodFacts::of_this_machine(ip)
    }

    /// Bring configMap, secret, downwardAPI and projected volumes up to date (the `..data` swap).
    async fn refresh_volumes(&mut self) {
        let Some(sid) = self.rec.sandbox_id.clone() else {
            return;
        };
        if !super::volumes::has_api_data(&self.rec.pod) {
            return;
        }
        let volumes = self.settings.volumes_dir.join(self.rec.uid());
        let facts = self.pod_facts(&sid).await;
        let n = super::volumes::refresh(&self.rec.pod, &volumes, &self.settings.objects, &facts);
        if n > 0 {
            tracing::info!(
                "pod {}: updated {n} volume(s) from their objects",
                self.rec.key()
            );
        }
    }

    /// Stop running containers within `grace` seconds: regular ones in parallel, then
    /// init containers (sidecars) one by one in reverse spec order, in what remains.
    async fn kill_containers(&mut self, grace: i64) {
        let mut grace = grace;
        // A delete with a shorter grace (`--grace-period=0`, `--force`) while containers
        // are stopping starts the stops again with what it allows, as kubelet does.
        while let Some(shorter) = self.kill_containers_within(grace).await {
            grace = shorter;
            self.refresh().await;
        }
        self.refresh().await;
    }

    /// Stop regular containers together, then sidecars in reverse order, within `grace`.
    /// Returns early with the new grace when a delete order shortens it.
    async fn kill_containers_within(&mut self, grace: i64) -> Option<i64> {
        let spec = self.rec.pod.spec.clone().unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(u64::try_from(grace).unwrap_or(0));
        let immediate = grace <= 0;
        let mut inits: Vec<Container> = spec.init_containers.clone().unwrap_or_default();
        inits.reverse();
        // Regular and ephemeral containers in one batch, then each sidecar alone.
        let first: Vec<Container> = spec
            .containers
            .iter()
            .cloned()
            .chain(
                spec.ephemeral_containers
                    .iter()
                    .flatten()
                    .map(podhost_api::ephemeral_as_container),
            )
            .collect();
        let batches = std::iter::once(first).chain(inits.into_iter().map(|c| vec![c]));
        for batch in batches {
            let mut set = tokio::task::JoinSet::new();
            for c in &batch {
                if let Some(job) = self
                    .stop_job(&c.name, format!("Stopping container {}", c.name))
                    .await
                {
                    set.spawn(self.stop_future(job, deadline, immediate).await);
                }
            }
            // The Killing events, and the containers that already ended (the main
            // container of a pod whose sidecars now stop), show while the stops run.
            if !set.is_empty() {
                self.publish().await;
            }
            loop {
                tokio::select! {
                    r = set.join_next() => match r {
                        Some(r) => self.record_prestop_failure(r.ok().flatten()),
                        None => break,
                    },
                    Some(cmd) = self.cmd_rx.recv() => {
                        let now_grace = self.take(cmd);
                        self.publish().await;
                        // Cut short only when the new grace ends sooner than the running one.
                        let ends = Instant::now() + Duration::from_secs(u64::try_from(now_grace).unwrap_or(0));
                        if now_grace <= 0 || ends < deadline {
                            set.abort_all();
                            return Some(now_grace);
                        }
                    }
                }
            }
        }
        None
    }

    /// Gather what stopping a running container needs, and record the Killing event.
    async fn stop_job(&mut self, name: &str, message: String) -> Option<StopJob> {
        let cur = self.current(name)?.clone();
        if !matches!(
            cur.state,
            ContainerState::Running | ContainerState::Created | ContainerState::Unknown
        ) {
            return None;
        }
        let now = self.now();
        self.rec.event(now, "Normal", "Killing", message);
        let signal = match self.rt.image_info(&cur.config.image).await {
            Ok(Some(img)) => img
                .stop_signal
                .as_deref()
                .and_then(podhost_runtime::linux::signal_number)
                .unwrap_or(libc::SIGTERM),
            _ => libc::SIGTERM,
        };
        let spec = self.rec.pod.spec.as_ref().and_then(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
                .find(|c| c.name == name)
                .cloned()
        });
        Some(StopJob {
            name: name.to_string(),
            id: cur.id,
            spec: spec.filter(|_| cur.state == ContainerState::Running),
            signal,
        })
    }

    /// The stop itself, runnable concurrently: preStop (bounded by the grace left), then
    /// the stop signal, then SIGKILL after what remains (at least 2s; none when
    /// `immediate`, i.e. `--force`/grace 0). Yields the FailedPreStopHook message, if any.
    async fn stop_future(
        &self,
        job: StopJob,
        deadline: Instant,
        immediate: bool,
    ) -> impl std::future::Future<Output = Option<String>> + Send + 'static {
        let rt = self.rt.clone();
        let key = self.rec.key();
        let pod_ref = self.pod_ref();
        let handler = job.spec.as_ref().and_then(|c| Hook::PreStop.of(c).cloned());
        let netns = if handler.is_some() {
            self.netns().await
        } else {
            PathBuf::new()
        };
        async move {
            let mut failure = None;
            if let (Some(h), Some(c), false) = (&handler, &job.spec, immediate) {
                let left = deadline.saturating_duration_since(Instant::now());
                if let Err(msg) = hooks::run(&rt, &job.id, &netns, c, h, &pod_ref, left).await {
                    failure = Some(msg);
                }
            }
            let timeout = if immediate {
                Duration::ZERO
            } else {
                deadline
                    .saturating_duration_since(Instant::now())
                    .max(MIN_STOP_GRACE)
            };
            if let Err(e) = rt.stop_container(&job.id, timeout, job.signal).await {
                tracing::warn!(
                    "pod {key}: stopping container {} ({}): {e}",
                    job.name,
                    job.id
                );
            }
            failure
        }
    }

    /// Pod reached a final phase: stop what remains (sidecars), release the sandbox.
    async fn finish(&mut self) {
        self.stop_probes();
        let grace = self.pod_grace();
        self.kill_containers(grace).await;
        if let Some(id) = self.rec.sandbox_id.take() {
            if let Err(e) = self.rt.stop_pod_sandbox(&id).await {
                tracing::warn!("pod {}: stopping sandbox: {e}", self.rec.key());
            }
            if let Err(e) = self.rt.remove_pod_sandbox(&id).await {
                tracing::warn!("pod {}: removing sandbox: {e}", self.rec.key());
            }
        }
        // The containers are gone with the sandbox: their subPath mounts go too.
        self.release_sub_paths(None);
        for t in self.rec.containers.values_mut() {
            t.waiting = None;
        }
        self.mark_lost_containers();
        self.rec.finished = true;
        // Phase is decided from the final container states and then sticks.
        let now = self.now();
        let st = status::pod_status(&self.rec, false, now);
        let ph = st.phase.clone();
        self.rec.pod.status = Some(st);
        if !matches!(ph.as_deref(), Some("Succeeded") | Some("Failed")) {
            let failed = self
                .rec
                .containers
                .values()
                .any(|t| t.current.as_ref().is_some_and(|c| c.exit_code != Some(0)));
            let phase = if failed {
                Phase::Failed
            } else {
                Phase::Succeeded
            };
            if let Some(s) = self.rec.pod.status.as_mut() {
                s.phase = Some(phase.as_str().into());
            }
        }
    }

    /// Delete: kill everything within the grace period, then remove all the pod created.
    async fn terminate(&mut self, grace: i64) {
        // Without an answering shim no grace can be given: the removal kills it all.
        if self.rec.sandbox_id.is_some() && self.unresponsive.is_none() {
            self.refresh().await;
            self.kill_containers(grace).await;
        }
        if let Some(id) = self.rec.sandbox_id.take() {
            if let Err(e) = self.rt.remove_pod_sandbox(&id).await {
                tracing::error!("pod {}: removing sandbox {id}: {e}", self.rec.key());
            }
        }
        let uid = self.rec.uid();
        let volumes = self.settings.volumes_dir.join(&uid);
        super::image_pull::forget_pod(&uid);
        let cfg = podspec::sandbox_config(&self.rec.pod, 0, &self.settings.log_dir);
        if podspec::unmount_volumes(&self.rec.pod, &volumes) {
            let _ = std::fs::remove_dir_all(&volumes);
        } else {
            // Removing through a mount would remove what it shows (a hostPath's files).
            tracing::error!(
                "pod {}: {} stays mounted; left in place",
                self.rec.key(),
                volumes.display()
            );
        }
        let _ = std::fs::remove_dir_all(&cfg.log_directory);
        if let Some(store) = &self.store {
            if let Err(e) = store.remove(&uid) {
                tracing::error!("pod {}: {e}", self.rec.key());
            }
        }
        self.removed = true;
    }
}

/// The pod's ephemeral containers.
fn ephemeral_of(pod: &k8s_openapi::api::core::v1::Pod) -> Vec<EphemeralContainer> {
    pod.spec
        .as_ref()
        .and_then(|s| s.ephemeral_containers.clone())
        .unwrap_or_default()
}

/// Put `list` as the pod's ephemeral containers (none: the field stays unset).
pub fn set_ephemeral(pod: &mut k8s_openapi::api::core::v1::Pod, list: Vec<EphemeralContainer>) {
    if let Some(spec) = pod.spec.as_mut() {
        spec.ephemeral_containers = (!list.is_empty()).then_some(list);
    }
}

/// `10s`, `1m20s`, `5m0s` as Go prints durations in kubelet messages.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// The first 12 characters of an id, as `crictl` and `docker` print them.
fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}
