//! Startup, liveness and readiness probes, as kubelet's prober runs them.
//!
//! One task per (container, probe kind) probes every `periodSeconds` after
//! `initialDelaySeconds` from the container's start, each attempt bounded by
//! `timeoutSeconds`. A result flips only after `successThreshold`/`failureThreshold`
//! equal outcomes in a row ([`ProbeCounter`]). Every failed attempt and every flip is sent
//! to the pod worker, which records `Unhealthy` events, sets `started`/`ready`, and kills
//! containers whose liveness or startup probe failed. A task belongs to one container ID:
//! a restarted container gets fresh tasks, hence fresh results.
//!
//! Handlers: `exec` through [`Runtime::exec_sync`]; `httpGet` and `tcpSocket` connect
//! inside the pod's network namespace (see [`super::dial`]); `grpc` is not supported
//! (it always fails, and apply warns about it).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::dial::{self, HttpGet};
use super::worker::Clock;
use podhost_runtime::{Runtime, RuntimeError};

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProbeKind {
    /// Gates the others until the container started.
    Startup,
    /// Failure restarts the container.
    Liveness,
    /// Drives `ready`.
    Readiness,
}

impl ProbeKind {
    /// `Liveness`, as kubelet's events spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }
    /// The result a container has before its first decisive probe (kubelet's initial values).
    pub fn initial(self) -> ProbeResult {
        match self {
            ProbeKind::Startup => ProbeResult::Unknown,
            ProbeKind::Liveness => ProbeResult::Success,
            ProbeKind::Readiness => ProbeResult::Failure,
        }
    }
    /// The probe of this kind in a container's spec.
    pub fn of(self, c: &Container) -> Option<&Probe> {
        match self {
            ProbeKind::Startup => c.startup_probe.as_ref(),
            ProbeKind::Liveness => c.liveness_probe.as_ref(),
            ProbeKind::Readiness => c.readiness_probe.as_ref(),
        }
    }
}

/// A probe's current verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProbeResult {
    /// Passed (threshold reached).
    Success,
    /// Failed (threshold reached).
    Failure,
    /// Not decided yet.
    Unknown,
}

/// Counts consecutive outcomes and flips the result at the thresholds (kubelet's worker).
#[derive(Debug, Clone)]
pub struct ProbeCounter {
    result: ProbeResult,
    last: Option<bool>,
    run: u32,
    success_threshold: u32,
    failure_threshold: u32,
}

impl ProbeCounter {
    /// A counter starting at the kind's initial result.
    pub fn new(kind: ProbeKind, success_threshold: u32, failure_threshold: u32) -> Self {
        ProbeCounter {
            result: kind.initial(),
            last: None,
            run: 0,
            success_threshold: success_threshold.max(1),
            failure_threshold: failure_threshold.max(1),
        }
    }
    /// The current result.
    pub fn result(&self) -> ProbeResult {
        self.result
    }
    /// Record one attempt; returns the new result when it changed.
    pub fn observe(&mut self, ok: bool) -> Option<ProbeResult> {
        if self.last == Some(ok) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(ok);
            self.run = 1;
        }
        let needed = if ok {
            self.success_threshold
        } else {
            self.failure_threshold
        };
        if self.run < needed {
            return None;
        }
        let new = if ok {
            ProbeResult::Success
        } else {
            ProbeResult::Failure
        };
        if new == self.result {
            return None;
        }
        self.result = new;
        Some(new)
    }
}

/// What a probe or hook does, with ports resolved against the container's named ports.
#[derive(Debug, Clone)]
pub enum Action {
    /// Run a command in the container.
    Exec(Vec<String>),
    /// HTTP GET inside the pod's network namespace.
    Http(HttpGet),
    /// TCP connect inside the pod's network namespace.
    Tcp {
        /// Host (127.0.0.1 unless given).
        host: String,
        /// Port.
        port: u16,
    },
    /// gRPC health check inside the pod's network namespace.
    Grpc {
        /// Host (127.0.0.1: kubelet dials the pod IP, which is the pod's own here).
        host: String,
        /// Port.
        port: u16,
        /// Service name asked about (empty: the server as a whole).
        service: String,
    },
    /// Hook only: sleep this long.
    Sleep(Duration),
    /// Cannot run (unsupported handler, unknown port name): always fails with this text.
    Invalid(String),
}

/// Resolve a probe/hook port: a number, or the name of one of the container's ports.
pub fn resolve_port(port: &IntOrString, c: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            c.ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| format!("couldn't find port {name:?} in container {}", c.name))
        }
    }
}

/// The default host of probes and hooks: kubelet uses the pod IP; inside the pod's
/// network namespace loopback reaches the same listeners (those bound to 0.0.0.0).
pub const DEFAULT_HOST: &str = "127.0.0.1";

/// An httpGet action (probe or hook) with its port resolved.
pub fn http_action(get: &k8s_openapi::api::core::v1::HTTPGetAction, c: &Container) -> Action {
    match resolve_port(&get.port, c) {
        Ok(port) => Action::Http(HttpGet {
            tls: get.scheme.as_deref() == Some("HTTPS"),
            host: get
                .host
                .clone()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| DEFAULT_HOST.into()),
            port,
            path: get.path.clone().unwrap_or_else(|| "/".into()),
            headers: get
                .http_headers
                .iter()
                .flatten()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect(),
        }),
        Err(e) => Action::Invalid(e),
    }
}

/// A probe's action and timing, defaults applied (Kubernetes': 0s, 10s, 1s, 1, 3).
#[derive(Debug, Clone)]
pub struct ProbeSpec {
    /// Which probe.
    pub kind: ProbeKind,
    /// What to run.
    pub action: Action,
    /// From the container's start to the first attempt.
    pub initial_delay: Duration,
    /// Between attempts.
    pub period: Duration,
    /// Bound of one attempt.
    pub timeout: Duration,
    /// Successes in a row to flip to Success.
    pub success_threshold: u32,
    /// Failures in a row to flip to Failure.
    pub failure_threshold: u32,
}

fn secs(v: Option<i32>, default: i32, min: i32) -> Duration {
    let s = v.filter(|s| *s >= min).unwrap_or(default);
    Duration::from_secs(u64::try_from(s).unwrap_or(0))
}

impl ProbeSpec {
    /// From the container's probe of `kind`.
    pub fn new(kind: ProbeKind, p: &Probe, c: &Container) -> Self {
        let action = if let Some(e) = &p.exec {
            Action::Exec(e.command.clone().unwrap_or_default())
        } else if let Some(get) = &p.http_get {
            http_action(get, c)
        } else if let Some(tcp) = &p.tcp_socket {
            match resolve_port(&tcp.port, c) {
                Ok(port) => Action::Tcp {
                    host: tcp
                        .host
                        .clone()
                        .filter(|h| !h.is_empty())
                        .unwrap_or_else(|| DEFAULT_HOST.into()),
                    port,
                },
                Err(e) => Action::Invalid(e),
            }
        } else if let Some(g) = &p.grpc {
            match u16::try_from(g.port) {
                Ok(port) if port > 0 => Action::Grpc {
                    host: DEFAULT_HOST.into(),
                    port,
                    service: g.service.clone().unwrap_or_default(),
                },
                _ => Action::Invalid(format!("invalid grpc probe port {}", g.port)),
            }
        } else {
            Action::Invalid("probe has no handler".into())
        };
        ProbeSpec {
            kind,
            action,
            initial_delay: secs(p.initial_delay_seconds, 0, 0),
            period: secs(p.period_seconds, 10, 1),
            timeout: secs(p.timeout_seconds, 1, 1),
            success_threshold: u32::try_from(p.success_threshold.unwrap_or(1)).unwrap_or(1),
            failure_threshold: u32::try_from(p.failure_threshold.unwrap_or(3)).unwrap_or(3),
        }
    }
}

/// The container a probe task watches.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    /// Container name.
    pub container: String,
    /// Container ID: results belong to it.
    pub container_id: String,
    /// When it started (unix ns): the initial delay counts from here.
    pub started_at: i64,
    /// The pod's pinned network namespace (empty: the daemon's).
    pub netns: PathBuf,
}

/// A probe task's report to the pod worker.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeUpdate {
    /// Container name.
    pub container: String,
    /// Container ID the probe ran against (stale reports are dropped).
    pub container_id: String,
    /// Which probe.
    pub kind: ProbeKind,
    /// This attempt failed: the text for the `Unhealthy` event.
    pub failure: Option<String>,
    /// The result flipped to this.
    pub result: Option<ProbeResult>,
}

/// Run a probe-like action once; `Err` carries kubelet-style failure output.
pub async fn run_action(
    rt: &Arc<dyn Runtime>,
    container_id: &str,
    netns: &std::path::Path,
    action: &Action,
    timeout: Duration,
) -> Result<(), String> {
    match action {
        Action::Exec(cmd) => match rt.exec_sync(container_id, cmd.clone(), timeout).await {
            Ok(r) if r.exit_code == 0 => Ok(()),
            Ok(r) => {
                let mut out = String::from_utf8_lossy(&r.stdout).into_owned();
                out.push_str(&String::from_utf8_lossy(&r.stderr));
                let out = out.trim_end().to_string();
                Err(if out.is_empty() {
                    format!("command {cmd:?} exited with {}", r.exit_code)
                } else {
                    out
                })
            }
            Err(RuntimeError::ExecTimeout { .. }) => {
                Err(format!("command {cmd:?} timed out after {timeout:?}"))
            }
            Err(e) => Err(e.to_string()),
        },
        Action::Http(get) => {
            match tokio::time::timeout(timeout, dial::http_get(netns, get, timeout)).await {
                Ok(Ok(code)) if (200..400).contains(&code) => Ok(()),
                Ok(Ok(code)) => Err(format!("HTTP probe failed with statuscode: {code}")),
                Ok(Err(e)) => Err(format!("Get {:?}: {e}", get.url())),
                Err(_) => Err(format!(
                    "Get {:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                    get.url()
                )),
            }
        }
        Action::Tcp { host, port } => {
            match tokio::time::timeout(timeout, dial::connect(netns, host, *port, timeout)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("dial tcp {host}:{port}: i/o timeout")),
            }
        }
        Action::Grpc {
            host,
            port,
            service,
        } => {
            let check = dial::grpc_health(netns, host, *port, service, timeout);
            match tokio::time::timeout(timeout, check).await {
                Ok(Ok(dial::GrpcHealth::Serving)) => Ok(()),
                Ok(Ok(dial::GrpcHealth::NotServing(s))) => {
                    Err(format!("service unhealthy (responded with {s:?})"))
                }
                Ok(Ok(dial::GrpcHealth::RpcError(e))) => Err(e),
                Ok(Err(e)) => Err(format!("failed to connect service \"{host}:{port}\": {e}")),
                Err(_) => Err(format!(
                    "timeout: health rpc did not complete within {timeout:?}"
                )),
            }
        }
        Action::Sleep(d) => {
            tokio::time::sleep((*d).min(timeout)).await;
            Ok(())
        }
        Action::Invalid(why) => Err(why.clone()),
    }
}

/// Start probing `target` with `spec`; reports go to `tx`. Abort the handle when the
/// container is gone or replaced.
pub fn spawn(
    rt: Arc<dyn Runtime>,
    clock: Clock,
    target: ProbeTarget,
    spec: ProbeSpec,
    tx: mpsc::Sender<ProbeUpdate>,
) -> tokio::task::AbortHandle {
    tokio::spawn(async move {
        let mut counter =
            ProbeCounter::new(spec.kind, spec.success_threshold, spec.failure_threshold);
        // The initial delay counts from the container's start, not from this task's.
        let ran = Duration::from_nanos(
            u64::try_from(clock.now().saturating_sub(target.started_at)).unwrap_or(0),
        );
        let mut next = Instant::now() + spec.initial_delay.saturating_sub(ran);
        loop {
            tokio::time::sleep_until(next).await;
            next += spec.period;
            let outcome = run_action(
                &rt,
                &target.container_id,
                &target.netns,
                &spec.action,
                spec.timeout,
            )
            .await;
            let update = ProbeUpdate {
                container: target.container.clone(),
                container_id: target.container_id.clone(),
                kind: spec.kind,
                failure: outcome.as_ref().err().cloned(),
                result: counter.observe(outcome.is_ok()),
            };
            if (update.failure.is_some() || update.result.is_some())
                && tx.send(update).await.is_err()
            {
                return;
            }
            match (spec.kind, counter.result()) {
                // The container will be killed: stop until a new container ID (kubelet's
                // onHold), so nothing execs into a dying container.
                (ProbeKind::Liveness | ProbeKind::Startup, ProbeResult::Failure) => return,
                // Startup probing ends once it succeeded.
                (ProbeKind::Startup, ProbeResult::Success) => return,
                _ => {}
            }
            // An attempt that overran the period starts the next one at once.
            next = next.max(Instant::now());
        }
    })
    .abort_handle()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_results_are_kubelets() {
        assert_eq!(
            ProbeCounter::new(ProbeKind::Readiness, 1, 3).result(),
            ProbeResult::Failure
        );
        assert_eq!(
            ProbeCounter::new(ProbeKind::Liveness, 1, 3).result(),
            ProbeResult::Success
        );
        assert_eq!(
            ProbeCounter::new(ProbeKind::Startup, 1, 3).result(),
            ProbeResult::Unknown
        );
    }

    #[test]
    fn result_flips_only_after_threshold_in_a_row() {
        let mut c = ProbeCounter::new(ProbeKind::Liveness, 1, 3);
        assert_eq!(c.observe(false), None);
        assert_eq!(c.observe(false), None);
        // A success in between restarts the count.
        assert_eq!(c.observe(true), None);
        assert_eq!(c.observe(false), None);
        assert_eq!(c.observe(false), None);
        assert_eq!(c.observe(false), Some(ProbeResult::Failure));
        assert_eq!(c.observe(false), None);

        let mut r = ProbeCounter::new(ProbeKind::Readiness, 2, 1);
        assert_eq!(r.observe(true), None);
        assert_eq!(r.observe(true), Some(ProbeResult::Success));
        assert_eq!(r.observe(false), Some(ProbeResult::Failure));
    }

    #[test]
    fn named_ports_resolve() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "web", "ports": [{"name": "http", "containerPort": 8080}]
        }))
        .expect("container");
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &c),
            Ok(8080)
        );
        assert_eq!(resolve_port(&IntOrString::Int(81), &c), Ok(81));
        assert!(resolve_port(&IntOrString::String("nope".into()), &c).is_err());
    }
}
