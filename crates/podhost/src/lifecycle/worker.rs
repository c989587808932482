//! The per-pod worker: one task per pod driving the runtime toward the spec, kubelet-style.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Container;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;

use super::podspec;
use super::restart::{should_restart, BackoffDecision, BackoffPolicy, RestartPolicy};
use super::status::{self, is_sidecar, Phase};
use super::{ContainerTrack, PodRecord};
use crate::runtime::{ContainerState, Runtime, RuntimeEvent};
use crate::store::PodStore;
use crate::timefmt::k8s_time;

/// Orders the API gives a worker.
#[derive(Debug)]
pub enum WorkerCmd {
    /// Delete the pod with this grace period (seconds; None = the pod's own).
    Delete {
        /// Override of terminationGracePeriodSeconds.
        grace: Option<i64>,
    },
}

/// The API's handle on a running worker.
#[derive(Debug, Clone)]
pub struct PodHandle {
    /// Latest record published by the worker.
    pub snapshot: watch::Receiver<PodRecord>,
    /// Orders to the worker.
    pub cmd: mpsc::Sender<WorkerCmd>,
}

/// Wall-clock nanoseconds that follow tokio's clock, so paused-clock tests are exact.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base_nanos: i64,
    base: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            base_nanos: crate::timefmt::now_nanos(),
            base: Instant::now(),
        }
    }
}

impl Clock {
    /// Unix nanoseconds now.
    pub fn now(&self) -> i64 {
        self.base_nanos + self.base.elapsed().as_nanos() as i64
    }
}

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
    /// How often to resync without events.
    pub resync: Duration,
}

/// One pod's worker.
pub struct PodWorker {
    rt: Arc<dyn Runtime>,
    store: Option<PodStore>,
    rec: PodRecord,
    settings: Settings,
    tx: watch::Sender<PodRecord>,
    last_saved: Vec<u8>,
    removed: bool,
}

/// Why a step could not go on: wait until (optional) time and sync again.
type Step = Result<(), Option<Instant>>;

impl PodWorker {
    /// Start a worker for `rec` and return its handle.
    pub fn spawn(
        rt: Arc<dyn Runtime>,
        store: Option<PodStore>,
        rec: PodRecord,
        settings: Settings,
    ) -> PodHandle {
        let (tx, snapshot) = watch::channel(rec.clone());
        let (cmd_tx, cmd_rx) = mpsc::channel(8);
        let events = rt.events();
        let w = PodWorker {
            rt,
            store,
            rec,
            settings,
            tx,
            last_saved: Vec::new(),
            removed: false,
        };
        tokio::spawn(w.run(cmd_rx, events));
        PodHandle {
            snapshot,
            cmd: cmd_tx,
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

    async fn run(
        mut self,
        mut cmd_rx: mpsc::Receiver<WorkerCmd>,
        mut events: broadcast::Receiver<RuntimeEvent>,
    ) {
        loop {
            let wake = self.sync().await;
            self.publish().await;
            if self.removed {
                return;
            }
            let deadline = wake.unwrap_or_else(|| Instant::now() + self.settings.resync);
            loop {
                tokio::select! {
                    cmd = cmd_rx.recv() => {
                        match cmd {
                            Some(WorkerCmd::Delete { grace }) => {
                                let own = self.rec.pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).unwrap_or(30);
                                let g = grace.unwrap_or(own);
                                // A shorter grace wins over one already running, like the API server.
                                self.rec.deleting = Some(self.rec.deleting.map_or(g, |d| d.min(g)));
                                let now = self.now();
                                self.rec.pod.metadata.deletion_timestamp = Some(k8s_time(now));
                                self.rec.pod.metadata.deletion_grace_period_seconds = Some(g);
                            }
                            None => return,
                        }
                        break;
                    }
                    ev = events.recv() => {
                        match ev {
                            Ok(RuntimeEvent::ContainerExited { sandbox_id, .. }) | Ok(RuntimeEvent::SandboxExited { sandbox_id })
                                if Some(&sandbox_id) == self.rec.sandbox_id.as_ref() => break,
                            Ok(_) => continue,
                            Err(broadcast::error::RecvError::Lagged(_)) => break,
                            Err(broadcast::error::RecvError::Closed) => {
                                tokio::time::sleep_until(deadline).await;
                                break;
                            }
                        }
                    }
                    _ = tokio::time::sleep_until(deadline) => break,
                }
            }
        }
    }

    /// Compute and publish the status; persist when something changed.
    async fn publish(&mut self) {
        let sandbox_ready = match &self.rec.sandbox_id {
            Some(id) => self
                .rt
                .pod_sandbox_status(id)
                .await
                .is_ok_and(|s| s.state == crate::runtime::SandboxState::Ready),
            None => false,
        };
        let now = self.now();
        let st = status::pod_status(&self.rec, sandbox_ready, now);
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

    /// One pass of kubelet's SyncPod. Returns when to come back (None: resync period).
    async fn sync(&mut self) -> Option<Instant> {
        if let Some(grace) = self.rec.deleting {
            self.terminate(grace).await;
            return None;
        }
        if self.rec.finished {
            return None;
        }
        self.refresh().await;
        match self.sync_steps().await {
            Ok(()) => None,
            Err(wake) => wake,
        }
    }

    async fn sync_steps(&mut self) -> Step {
        self.ensure_sandbox().await?;
        let spec = self.rec.pod.spec.clone().unwrap_or_default();
        let policy = self.policy();
        // Init containers, one at a time; sidecars keep running.
        for c in spec.init_containers.iter().flatten() {
            if is_sidecar(c) {
                self.ensure_running(c, RestartPolicy::Always).await?;
                let running = self.state_of(&c.name) == Some(ContainerState::Running);
                if !running && !self.rec.initialized {
                    return Err(None);
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
                Some((ContainerState::Running, _)) => return Err(None),
                _ => {
                    // Regular init containers restart on failure under Always and OnFailure.
                    self.ensure_running(c, RestartPolicy::OnFailure).await?;
                    return Err(None);
                }
            }
        }
        self.rec.initialized = true;
        let mut wake: Option<Instant> = None;
        for c in &spec.containers {
            if let Err(w) = self.ensure_running(c, policy).await {
                wake = match (wake, w) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        // The pod is done when no regular container runs or will run again.
        let done = spec.containers.iter().all(|c| match self.current(&c.name) {
            Some(s) => s.state == ContainerState::Exited && !should_restart(policy, s),
            None => false,
        });
        if done {
            self.finish().await;
            return Err(None);
        }
        match wake {
            Some(w) => Err(Some(w)),
            None => Ok(()),
        }
    }

    fn track(&self, name: &str) -> ContainerTrack {
        self.rec.containers.get(name).cloned().unwrap_or_default()
    }
    fn track_mut(&mut self, name: &str) -> &mut ContainerTrack {
        self.rec.containers.entry(name.to_string()).or_default()
    }
    fn current(&self, name: &str) -> Option<&crate::runtime::ContainerStatus> {
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
                if let Some(fresh) = list.iter().find(|c| c.id == cur.id) {
                    t.current = Some(fresh.clone());
                }
            }
        }
    }

    /// Make sure a ready sandbox exists (kubelet: recreate when the pause died).
    async fn ensure_sandbox(&mut self) -> Step {
        if let Some(id) = self.rec.sandbox_id.clone() {
            let ready = self
                .rt
                .pod_sandbox_status(&id)
                .await
                .is_ok_and(|s| s.state == crate::runtime::SandboxState::Ready);
            if ready {
                return Ok(());
            }
            let now = self.now();
            self.rec.event(
                now,
                "Normal",
                "SandboxChanged",
                "Pod sandbox changed, it will be killed and re-created.".into(),
            );
            self.kill_containers(2, false).await;
            self.refresh().await;
            self.mark_lost_containers();
            if let Err(e) = self.rt.remove_pod_sandbox(&id).await {
                tracing::warn!("pod {}: removing dead sandbox {id}: {e}", self.rec.key());
            }
            self.rec.sandbox_id = None;
            let any_ran = self.rec.containers.values().any(|t| t.current.is_some());
            if self.policy() == RestartPolicy::Never && any_ran {
                self.rec.finished = true;
                return Err(None);
            }
        }
        let volumes = self.settings.volumes_dir.join(self.rec.uid());
        if let Err(e) = podspec::prepare_volumes(&self.rec.pod, &volumes) {
            self.fail_sandbox(e.to_string());
            return Err(Some(Instant::now() + Duration::from_secs(5)));
        }
        let cfg = podspec::sandbox_config(
            &self.rec.pod,
            self.rec.sandbox_attempts,
            &self.settings.log_dir,
        );
        match self.rt.run_pod_sandbox(&cfg).await {
            Ok(id) => {
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
            return self.create_and_start(c, 0).await;
        };
        if cur.state == ContainerState::Running {
            return Ok(());
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
                }
                let t = self.track_mut(&c.name);
                t.backoff_ms = Some(next_delay_ms);
                t.previous = Some(cur);
                t.current = None;
                t.restart_count += 1;
                let attempt = t.restart_count;
                self.create_and_start(c, attempt).await
            }
        }
    }

    fn set_waiting(
        &mut self,
        name: &str,
        reason: &str,
        message: String,
        kind: &str,
        event_reason: &str,
    ) -> Step {
        let now = self.now();
        self.rec.event(now, kind, event_reason, message.clone());
        self.track_mut(name).waiting = Some((reason.to_string(), message));
        Err(Some(Instant::now() + self.settings.backoff.initial))
    }

    async fn create_and_start(&mut self, c: &Container, attempt: u32) -> Step {
        let Some(sid) = self.rec.sandbox_id.clone() else {
            return Err(None);
        };
        let now = self.now();
        let backoff = self.settings.backoff;
        super::image_pull::ensure_image(self.rt.as_ref(), &mut self.rec, c, backoff, now).await?;
        let volumes = self.settings.volumes_dir.join(self.rec.uid());
        let cfg = match podspec::container_config(&self.rec.pod, c, attempt, &volumes) {
            Ok(cfg) => cfg,
            Err(e) => {
                return self.set_waiting(
                    &c.name,
                    "CreateContainerConfigError",
                    e.to_string(),
                    "Warning",
                    "Failed",
                )
            }
        };
        let sandbox_cfg = podspec::sandbox_config(
            &self.rec.pod,
            self.rec.sandbox_attempts.saturating_sub(1),
            &self.settings.log_dir,
        );
        let id = match self.rt.create_container(&sid, &cfg, &sandbox_cfg).await {
            Ok(id) => id,
            Err(e) => {
                return self.set_waiting(
                    &c.name,
                    "CreateContainerError",
                    e.to_string(),
                    "Warning",
                    "Failed",
                )
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
            return self.set_waiting(
                &c.name,
                "RunContainerError",
                e.to_string(),
                "Warning",
                "Failed",
            );
        }
        let now = self.now();
        self.rec.event(
            now,
            "Normal",
            "Started",
            format!("Started container {}", c.name),
        );
        let st = self.rt.container_status(&id).await.ok();
        let t = self.track_mut(&c.name);
        t.waiting = None;
        t.current = st;
        Ok(())
    }

    /// Stop running containers: regular ones in parallel, then sidecars in reverse order.
    async fn kill_containers(&mut self, grace: i64, sidecars_only: bool) {
        let spec = self.rec.pod.spec.clone().unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(grace.max(0) as u64);
        let regular: Vec<String> = if sidecars_only {
            Vec::new()
        } else {
            spec.containers.iter().map(|c| c.name.clone()).collect()
        };
        let mut sidecars: Vec<String> = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| c.name.clone())
            .collect();
        sidecars.reverse();
        let mut set = tokio::task::JoinSet::new();
        for name in &regular {
            if let Some(job) = self.stop_job(name, deadline).await {
                set.spawn(job);
            }
        }
        while set.join_next().await.is_some() {}
        for name in &sidecars {
            if let Some(job) = self.stop_job(name, deadline).await {
                job.await;
            }
        }
        self.refresh().await;
    }

    /// A future that stops one running container within what remains of the grace period.
    async fn stop_job(
        &mut self,
        name: &str,
        deadline: Instant,
    ) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        let cur = self.current(name)?.clone();
        if cur.state != ContainerState::Running && cur.state != ContainerState::Created {
            return None;
        }
        let now = self.now();
        self.rec.event(
            now,
            "Normal",
            "Killing",
            format!("Stopping container {name}"),
        );
        let signal = match self.rt.image_status(&cur.config.image).await {
            Ok(Some(img)) => img
                .stop_signal
                .as_deref()
                .and_then(signal_number)
                .unwrap_or(libc::SIGTERM),
            _ => libc::SIGTERM,
        };
        let rt = self.rt.clone();
        let key = self.rec.key();
        // Kubelet gives at least 2 seconds even when the grace period ran out.
        let timeout = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(2));
        let timeout = if deadline <= Instant::now() && cur.state == ContainerState::Created {
            Duration::ZERO
        } else {
            timeout
        };
        Some(async move {
            if let Err(e) = rt.stop_container(&cur.id, timeout, signal).await {
                tracing::warn!("pod {key}: stopping container {}: {e}", cur.id);
            }
        })
    }

    /// Pod reached a final phase: stop what remains (sidecars), release the sandbox.
    async fn finish(&mut self) {
        let grace = self
            .rec
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30);
        self.kill_containers(grace, false).await;
        if let Some(id) = self.rec.sandbox_id.take() {
            if let Err(e) = self.rt.stop_pod_sandbox(&id).await {
                tracing::warn!("pod {}: stopping sandbox: {e}", self.rec.key());
            }
            if let Err(e) = self.rt.remove_pod_sandbox(&id).await {
                tracing::warn!("pod {}: removing sandbox: {e}", self.rec.key());
            }
        }
        for t in self.rec.containers.values_mut() {
            t.waiting = None;
        }
        self.mark_lost_containers();
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
        self.rec.finished = true;
    }

    /// Delete: kill everything within the grace period, then remove all the pod created.
    async fn terminate(&mut self, grace: i64) {
        if self.rec.sandbox_id.is_some() {
            self.refresh().await;
            self.kill_containers(grace, false).await;
        }
        if let Some(id) = self.rec.sandbox_id.take() {
            if let Err(e) = self.rt.remove_pod_sandbox(&id).await {
                tracing::error!("pod {}: removing sandbox {id}: {e}", self.rec.key());
            }
        }
        let uid = self.rec.uid();
        super::image_pull::forget_pod(&uid);
        let _ = std::fs::remove_dir_all(self.settings.volumes_dir.join(&uid));
        let cfg = podspec::sandbox_config(&self.rec.pod, 0, &self.settings.log_dir);
        let _ = std::fs::remove_dir_all(&cfg.log_directory);
        if let Some(store) = &self.store {
            if let Err(e) = store.remove(&uid) {
                tracing::error!("pod {}: {e}", self.rec.key());
            }
        }
        self.removed = true;
    }
}

/// `SIGTERM`, `TERM` or `15` → signal number.
pub fn signal_number(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse() {
        return Some(n);
    }
    let name = s.trim_start_matches("SIG");
    Some(match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "WINCH" => libc::SIGWINCH,
        "STOP" => libc::SIGSTOP,
        _ => return None,
    })
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
