//! kubectl's `get pods` columns, computed from a Pod with status.
//!
//! These follow kubectl's table printer for pods (kubernetes
//! pkg/printers/internalversion/printers.go, `printPod`, ≥ 1.29 with native
//! sidecars) so podhost's output reads exactly like kubectl's for the same state.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::jiff::Timestamp;

/// The STATUS column: pod reason or phase, refined by init and container states.
pub fn status_column(pod: &Pod) -> String {
    summarize(pod).reason
}

/// The READY column: `ready/total` over regular containers and sidecars.
pub fn ready_column(pod: &Pod) -> String {
    let s = summarize(pod);
    format!("{}/{}", s.ready, s.total)
}

/// The RESTARTS column: `3` or, with a known last termination, `3 (5m ago)`.
pub fn restarts_column(pod: &Pod, now: Timestamp) -> String {
    let s = summarize(pod);
    match s.last_restart {
        Some(at) if s.restarts != 0 => format!("{} ({} ago)", s.restarts, since(at, now)),
        _ => s.restarts.to_string(),
    }
}

/// The AGE column: time since creation, or `<unknown>` without a creation time.
pub fn age_column(pod: &Pod, now: Timestamp) -> String {
    match &pod.metadata.creation_timestamp {
        Some(created) => since(created.0, now),
        None => "<unknown>".to_string(),
    }
}

/// Time from `then` to `now` as [`age`] prints it; a clock up to 1s behind reads
/// `0s`, further behind `<invalid>` (kubectl tolerates small skew the same way).
pub fn since(then: Timestamp, now: Timestamp) -> String {
    let seconds = now.as_second() - then.as_second();
    let nanos = i64::from(now.subsec_nanosecond()) - i64::from(then.subsec_nanosecond());
    let total_nanos = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
    if total_nanos < 0 {
        // Truncation toward zero, as Go's int(d.Seconds()).
        let whole_seconds = total_nanos / 1_000_000_000;
        return if whole_seconds < -1 {
            "<invalid>".to_string()
        } else {
            "0s".to_string()
        };
    }
    let secs = u64::try_from(total_nanos / 1_000_000_000).unwrap_or(u64::MAX);
    age(Duration::from_secs(secs))
}

/// A duration as kubectl's `HumanDuration`: `5s`, `119s`, `2m3s`, `7m`, `3h`, `2d3h`, `8d`, `2y`.
///
/// Precision drops as the duration grows, so a column stays short and stable.
pub fn age(d: Duration) -> String {
    let seconds = d.as_secs();
    if seconds < 2 * 60 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 3 * 60 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{h}h")
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        let dy = days % 365;
        return if dy == 0 {
            format!("{years}y")
        } else {
            format!("{years}y{dy}d")
        };
    }
    format!("{years}y")
}

/// What the three state columns need, computed in one pass as kubectl does.
struct Summary {
    reason: String,
    ready: usize,
    total: usize,
    restarts: i64,
    last_restart: Option<Timestamp>,
}

/// When a status's previous run ended, if it did.
fn last_finished(status: &ContainerStatus) -> Option<Timestamp> {
    status
        .last_state
        .as_ref()?
        .terminated
        .as_ref()?
        .finished_at
        .as_ref()
        .map(|t| t.0)
}

/// Keeps the later of two optional times.
fn latest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// kubectl's `printPod`, minus the name and age.
fn summarize(pod: &Pod) -> Summary {
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let init_specs = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    let sidecar_by_name: HashMap<&str, bool> = init_specs
        .iter()
        .map(|c| (c.name.as_str(), crate::is_sidecar(c)))
        .collect();
    let is_sidecar = |name: &str| sidecar_by_name.get(name).copied().unwrap_or(false);

    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or_default();
    let mut reason = status
        .and_then(|s| s.reason.as_deref())
        .filter(|r| !r.is_empty())
        .unwrap_or(phase)
        .to_string();
    let conditions = status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let condition_true = |type_: &str| {
        conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == "True")
    };
    if conditions
        .iter()
        .any(|c| c.type_ == "PodScheduled" && c.reason.as_deref() == Some("SchedulingGated"))
    {
        reason = "SchedulingGated".to_string();
    }

    let total = spec.map_or(0, |s| s.containers.len())
        + init_specs.iter().filter(|c| crate::is_sidecar(c)).count();
    let mut ready = 0;
    let mut restarts: i64 = 0;
    let mut last_restart = None;
    let mut sidecar_restarts: i64 = 0;
    let mut last_sidecar_restart = None;

    // Walk init containers in order until the first one that is neither done nor a
    // started sidecar: that one explains why the pod is still initializing.
    let mut initializing = false;
    let init_statuses = status
        .and_then(|s| s.init_container_statuses.as_deref())
        .unwrap_or_default();
    for (i, cs) in init_statuses.iter().enumerate() {
        restarts += i64::from(cs.restart_count);
        last_restart = latest(last_restart, last_finished(cs));
        let sidecar = is_sidecar(&cs.name);
        if sidecar {
            sidecar_restarts += i64::from(cs.restart_count);
            last_sidecar_restart = latest(last_sidecar_restart, last_finished(cs));
        }
        let state = cs.state.as_ref();
        let terminated = state.and_then(|s| s.terminated.as_ref());
        let waiting_reason = state
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.as_deref())
            .filter(|r| !r.is_empty());
        if terminated.is_some_and(|t| t.exit_code == 0) {
            continue;
        }
        if sidecar && cs.started == Some(true) {
            if cs.ready {
                ready += 1;
            }
            continue;
        }
        reason = if let Some(t) = terminated {
            match t.reason.as_deref().filter(|r| !r.is_empty()) {
                Some(r) => format!("Init:{r}"),
                None => match t.signal.filter(|s| *s != 0) {
                    Some(signal) => format!("Init:Signal:{signal}"),
                    None => format!("Init:ExitCode:{}", t.exit_code),
                },
            }
        } else if let Some(r) = waiting_reason.filter(|r| *r != "PodInitializing") {
            format!("Init:{r}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    if !initializing || condition_true("Initialized") {
        // Only sidecars' restarts stay once the pod is initialized: regular init
        // containers' restarts are history.
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        let statuses = status
            .and_then(|s| s.container_statuses.as_deref())
            .unwrap_or_default();
        // Backwards, so the first container with a reason wins (kubectl's order).
        for cs in statuses.iter().rev() {
            restarts += i64::from(cs.restart_count);
            last_restart = latest(last_restart, last_finished(cs));
            let state = cs.state.as_ref();
            let waiting = state
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.as_deref())
                .filter(|r| !r.is_empty());
            let terminated = state.and_then(|s| s.terminated.as_ref());
            if let Some(w) = waiting {
                reason = w.to_string();
            } else if let Some(t) = terminated {
                reason = match t.reason.as_deref().filter(|r| !r.is_empty()) {
                    Some(r) => r.to_string(),
                    None => match t.signal.filter(|s| *s != 0) {
                        Some(signal) => format!("Signal:{signal}"),
                        None => format!("ExitCode:{}", t.exit_code),
                    },
                };
            } else if cs.ready && state.is_some_and(|s| s.running.is_some()) {
                has_running = true;
                ready += 1;
            }
        }
        // A finished container set "Completed" but others still run: the pod is
        // running (or not ready), not done.
        if reason == "Completed" && has_running {
            reason = if condition_true("Ready") {
                "Running".to_string()
            } else {
                "NotReady".to_string()
            };
        }
    }

    if pod.metadata.deletion_timestamp.is_some() {
        if status.and_then(|s| s.reason.as_deref()) == Some("NodeLost") {
            reason = "Unknown".to_string();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".to_string();
        }
    }

    Summary {
        reason,
        ready,
        total,
        restarts,
        last_restart,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
        ContainerStateWaiting, PodCondition, PodSpec, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn human_durations() {
        let cases: &[(u64, &str)] = &[
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (123, "2m3s"),
            (599, "9m59s"),
            (600, "10m"),
            (7 * 60, "7m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60, "3h1m"),
            (7 * 3600 + 59 * 60, "7h59m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (51 * 3600, "2d3h"),
            (7 * 86400 + 23 * 3600, "7d23h"),
            (8 * 86400, "8d"),
            (729 * 86400, "729d"),
            (730 * 86400, "2y"),
            (731 * 86400, "2y1d"),
            (8 * 365 * 86400, "8y"),
            (20 * 365 * 86400, "20y"),
        ];
        for (secs, want) in cases {
            assert_eq!(age(Duration::from_secs(*secs)), *want, "{secs}s");
        }
    }

    #[test]
    fn since_tolerates_small_skew() {
        let now = Timestamp::from_second(1_000_000).expect("valid");
        let at = |s: i64| Timestamp::from_second(1_000_000 + s).expect("valid");
        assert_eq!(since(at(-300), now), "5m");
        assert_eq!(since(at(1), now), "0s");
        assert_eq!(since(at(5), now), "<invalid>");
    }

    /// A container status in one state.
    enum S {
        Running {
            ready: bool,
        },
        Waiting(&'static str),
        Done {
            code: i32,
            reason: &'static str,
            signal: i32,
        },
        StartedSidecar {
            ready: bool,
        },
        NoState,
    }

    fn status(name: &str, s: &S, restarts: i32) -> ContainerStatus {
        let running = || ContainerState {
            running: Some(ContainerStateRunning::default()),
            ..Default::default()
        };
        let (state, ready, started) = match s {
            S::Running { ready } => (Some(running()), *ready, Some(true)),
            S::StartedSidecar { ready } => (Some(running()), *ready, Some(true)),
            S::Waiting(reason) => (
                Some(ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some((*reason).into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                false,
                Some(false),
            ),
            S::Done {
                code,
                reason,
                signal,
            } => (
                Some(ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: *code,
                        reason: Some((*reason).into()).filter(|r: &String| !r.is_empty()),
                        signal: Some(*signal),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                false,
                Some(false),
            ),
            S::NoState => (None, false, None),
        };
        ContainerStatus {
            name: name.into(),
            state,
            ready,
            started,
            restart_count: restarts,
            ..Default::default()
        }
    }

    /// Builds a pod: init containers (name, sidecar?, state), regular containers, phase.
    fn pod(
        init: &[(&str, bool, S)],
        regular: &[(&str, S)],
        phase: &str,
        ready_condition: bool,
    ) -> Pod {
        let container = |name: &str, sidecar: bool| Container {
            name: name.into(),
            restart_policy: sidecar.then(|| "Always".to_string()),
            ..Default::default()
        };
        let mut conditions = vec![PodCondition {
            type_: "Ready".into(),
            status: if ready_condition { "True" } else { "False" }.into(),
            ..Default::default()
        }];
        let initialized = init.iter().all(|(_, sidecar, s)| match s {
            S::Done { code: 0, .. } => true,
            S::StartedSidecar { .. } => *sidecar,
            _ => false,
        });
        conditions.push(PodCondition {
            type_: "Initialized".into(),
            status: if initialized { "True" } else { "False" }.into(),
            ..Default::default()
        });
        Pod {
            spec: Some(PodSpec {
                init_containers: Some(init.iter().map(|(n, sc, _)| container(n, *sc)).collect()),
                containers: regular.iter().map(|(n, _)| container(n, false)).collect(),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: Some(conditions),
                init_container_statuses: Some(
                    init.iter().map(|(n, _, s)| status(n, s, 0)).collect(),
                ),
                container_statuses: Some(regular.iter().map(|(n, s)| status(n, s, 0)).collect()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn ok0() -> S {
        S::Done {
            code: 0,
            reason: "Completed",
            signal: 0,
        }
    }

    #[test]
    fn status_and_ready_columns() {
        let cases: Vec<(&str, Pod, &str, &str)> = vec![
            (
                "running",
                pod(&[], &[("web", S::Running { ready: true })], "Running", true),
                "Running",
                "1/1",
            ),
            (
                "creating",
                pod(
                    &[],
                    &[("web", S::Waiting("ContainerCreating"))],
                    "Pending",
                    false,
                ),
                "ContainerCreating",
                "0/1",
            ),
            (
                "crashloop",
                pod(
                    &[],
                    &[
                        ("a", S::Running { ready: true }),
                        ("b", S::Waiting("CrashLoopBackOff")),
                    ],
                    "Running",
                    false,
                ),
                "CrashLoopBackOff",
                "1/2",
            ),
            (
                "first container with a reason wins",
                pod(
                    &[],
                    &[
                        ("a", S::Waiting("ErrImagePull")),
                        ("b", S::Waiting("CrashLoopBackOff")),
                    ],
                    "Pending",
                    false,
                ),
                "ErrImagePull",
                "0/2",
            ),
            (
                "completed",
                pod(&[], &[("job", ok0())], "Succeeded", false),
                "Completed",
                "0/1",
            ),
            (
                "error",
                pod(
                    &[],
                    &[(
                        "job",
                        S::Done {
                            code: 1,
                            reason: "Error",
                            signal: 0,
                        },
                    )],
                    "Failed",
                    false,
                ),
                "Error",
                "0/1",
            ),
            (
                "oom",
                pod(
                    &[],
                    &[(
                        "job",
                        S::Done {
                            code: 137,
                            reason: "OOMKilled",
                            signal: 0,
                        },
                    )],
                    "Running",
                    false,
                ),
                "OOMKilled",
                "0/1",
            ),
            (
                "exit code without reason",
                pod(
                    &[],
                    &[(
                        "job",
                        S::Done {
                            code: 3,
                            reason: "",
                            signal: 0,
                        },
                    )],
                    "Failed",
                    false,
                ),
                "ExitCode:3",
                "0/1",
            ),
            (
                "signal without reason",
                pod(
                    &[],
                    &[(
                        "job",
                        S::Done {
                            code: 137,
                            reason: "",
                            signal: 9,
                        },
                    )],
                    "Failed",
                    false,
                ),
                "Signal:9",
                "0/1",
            ),
            (
                "completed but another runs, ready",
                pod(
                    &[],
                    &[("a", S::Running { ready: true }), ("b", ok0())],
                    "Running",
                    true,
                ),
                "Running",
                "1/2",
            ),
            (
                "completed but another runs, not ready",
                pod(
                    &[],
                    &[("a", S::Running { ready: true }), ("b", ok0())],
                    "Running",
                    false,
                ),
                "NotReady",
                "1/2",
            ),
            (
                "running not ready",
                pod(
                    &[],
                    &[("web", S::Running { ready: false })],
                    "Running",
                    false,
                ),
                "Running",
                "0/1",
            ),
            (
                "phase only",
                pod(&[], &[("web", S::NoState)], "Pending", false),
                "Pending",
                "0/1",
            ),
            (
                "init 0/2",
                pod(
                    &[
                        ("i1", false, S::Running { ready: false }),
                        ("i2", false, S::NoState),
                    ],
                    &[("web", S::Waiting("PodInitializing"))],
                    "Pending",
                    false,
                ),
                "Init:0/2",
                "0/1",
            ),
            (
                "init 1/2",
                pod(
                    &[
                        ("i1", false, ok0()),
                        ("i2", false, S::Running { ready: false }),
                    ],
                    &[("web", S::Waiting("PodInitializing"))],
                    "Pending",
                    false,
                ),
                "Init:1/2",
                "0/1",
            ),
            (
                "init waiting PodInitializing counts",
                pod(
                    &[("i1", false, S::Waiting("PodInitializing"))],
                    &[("web", S::Waiting("PodInitializing"))],
                    "Pending",
                    false,
                ),
                "Init:0/1",
                "0/1",
            ),
            (
                "init crashloop",
                pod(
                    &[("i1", false, S::Waiting("CrashLoopBackOff"))],
                    &[("web", S::Waiting("PodInitializing"))],
                    "Pending",
                    false,
                ),
                "Init:CrashLoopBackOff",
                "0/1",
            ),
            (
                "init error",
                pod(
                    &[(
                        "i1",
                        false,
                        S::Done {
                            code: 1,
                            reason: "Error",
                            signal: 0,
                        },
                    )],
                    &[("web", S::Waiting("PodInitializing"))],
                    "Failed",
                    false,
                ),
                "Init:Error",
                "0/1",
            ),
            (
                "init exit code",
                pod(
                    &[(
                        "i1",
                        false,
                        S::Done {
                            code: 2,
                            reason: "",
                            signal: 0,
                        },
                    )],
                    &[("web", S::Waiting("PodInitializing"))],
                    "Pending",
                    false,
                ),
                "Init:ExitCode:2",
                "0/1",
            ),
            (
                "init signal",
                pod(
                    &[(
                        "i1",
                        false,
                        S::Done {
                            code: 143,
                            reason: "",
                            signal: 15,
                        },
                    )],
                    &[("web", S::Waiting("PodInitializing"))],
                    "Pending",
                    false,
                ),
                "Init:Signal:15",
                "0/1",
            ),
            (
                "init done, main initializing",
                pod(
                    &[("i1", false, ok0())],
                    &[("web", S::Waiting("PodInitializing"))],
                    "Pending",
                    false,
                ),
                "PodInitializing",
                "0/1",
            ),
            (
                "sidecar started, not ready; next init pending",
                pod(
                    &[
                        ("log", true, S::Running { ready: false }),
                        ("i2", false, S::NoState),
                    ],
                    &[("web", S::NoState)],
                    "Pending",
                    false,
                ),
                "Init:1/2",
                "0/2",
            ),
            (
                "sidecar ready, next init runs",
                pod(
                    &[
                        ("log", true, S::StartedSidecar { ready: true }),
                        ("i2", false, S::Running { ready: false }),
                    ],
                    &[("web", S::Waiting("PodInitializing"))],
                    "Pending",
                    false,
                ),
                "Init:1/2",
                "1/2",
            ),
            (
                "sidecar and main running",
                pod(
                    &[("log", true, S::StartedSidecar { ready: true })],
                    &[("web", S::Running { ready: true })],
                    "Running",
                    true,
                ),
                "Running",
                "2/2",
            ),
            (
                "sidecar not ready",
                pod(
                    &[("log", true, S::StartedSidecar { ready: false })],
                    &[("web", S::Running { ready: true })],
                    "Running",
                    false,
                ),
                "Running",
                "1/2",
            ),
            (
                "main done, sidecar still running",
                pod(
                    &[("log", true, S::StartedSidecar { ready: true })],
                    &[("job", ok0())],
                    "Succeeded",
                    false,
                ),
                "Completed",
                "1/2",
            ),
        ];
        for (name, pod, status, ready) in cases {
            assert_eq!(status_column(&pod), status, "{name}: status");
            assert_eq!(ready_column(&pod), ready, "{name}: ready");
        }
    }

    #[test]
    fn sidecar_starting_shows_init_progress() {
        // The sidecar has not started yet (started=false): it blocks like an init container.
        let mut p = pod(
            &[("log", true, S::Running { ready: false })],
            &[("web", S::NoState)],
            "Pending",
            false,
        );
        if let Some(s) = p
            .status
            .as_mut()
            .and_then(|s| s.init_container_statuses.as_mut())
        {
            s[0].started = Some(false);
        }
        assert_eq!(status_column(&p), "Init:0/1");
    }

    #[test]
    fn pod_reason_and_gates() {
        let mut p = pod(&[], &[("web", S::NoState)], "Failed", false);
        if let Some(s) = p.status.as_mut() {
            s.reason = Some("Evicted".into());
        }
        assert_eq!(status_column(&p), "Evicted");

        let mut p = pod(&[], &[("web", S::NoState)], "Pending", false);
        if let Some(s) = p.status.as_mut() {
            s.conditions = Some(vec![PodCondition {
                type_: "PodScheduled".into(),
                status: "False".into(),
                reason: Some("SchedulingGated".into()),
                ..Default::default()
            }]);
        }
        assert_eq!(status_column(&p), "SchedulingGated");
    }

    #[test]
    fn terminating() {
        let now = Time(Timestamp::from_second(1_000_000).expect("valid"));
        let mut p = pod(&[], &[("web", S::Running { ready: true })], "Running", true);
        p.metadata.deletion_timestamp = Some(now.clone());
        assert_eq!(status_column(&p), "Terminating");
        // A finished pod being deleted keeps its final status.
        let mut p = pod(&[], &[("job", ok0())], "Succeeded", false);
        p.metadata.deletion_timestamp = Some(now);
        assert_eq!(status_column(&p), "Completed");
    }

    #[test]
    fn restarts() {
        let t = |s: i64| Time(Timestamp::from_second(1_000_000 + s).expect("valid"));
        let now = t(600).0;
        let with_last = |mut cs: ContainerStatus, finished: i64| {
            cs.last_state = Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 1,
                    finished_at: Some(t(finished)),
                    ..Default::default()
                }),
                ..Default::default()
            });
            cs
        };

        let mut p = pod(
            &[],
            &[
                ("a", S::Running { ready: true }),
                ("b", S::Running { ready: true }),
            ],
            "Running",
            true,
        );
        assert_eq!(restarts_column(&p, now), "0");
        if let Some(statuses) = p
            .status
            .as_mut()
            .and_then(|s| s.container_statuses.as_mut())
        {
            statuses[0].restart_count = 2;
            statuses[1] = with_last(status("b", &S::Running { ready: true }, 1), 300);
        }
        assert_eq!(restarts_column(&p, now), "3 (5m ago)");

        // Sidecar restarts count; regular init container restarts do not once initialized.
        let mut p = pod(
            &[
                ("init", false, ok0()),
                ("log", true, S::StartedSidecar { ready: true }),
            ],
            &[("web", S::Running { ready: true })],
            "Running",
            true,
        );
        if let Some(statuses) = p
            .status
            .as_mut()
            .and_then(|s| s.init_container_statuses.as_mut())
        {
            statuses[0] = with_last(status("init", &ok0(), 4), 10);
            statuses[1] = with_last(status("log", &S::StartedSidecar { ready: true }, 2), 540);
        }
        assert_eq!(restarts_column(&p, now), "2 (60s ago)");

        // While initializing, init container restarts are what counts.
        let mut p = pod(
            &[("init", false, S::Waiting("CrashLoopBackOff"))],
            &[("web", S::Waiting("PodInitializing"))],
            "Pending",
            false,
        );
        if let Some(statuses) = p
            .status
            .as_mut()
            .and_then(|s| s.init_container_statuses.as_mut())
        {
            statuses[0] = with_last(status("init", &S::Waiting("CrashLoopBackOff"), 5), 595);
        }
        assert_eq!(restarts_column(&p, now), "5 (5s ago)");
        assert_eq!(status_column(&p), "Init:CrashLoopBackOff");

        // Restarts without a known termination time print the bare count.
        let mut p = pod(&[], &[("web", S::Running { ready: true })], "Running", true);
        if let Some(statuses) = p
            .status
            .as_mut()
            .and_then(|s| s.container_statuses.as_mut())
        {
            statuses[0].restart_count = 7;
        }
        assert_eq!(restarts_column(&p, now), "7");
    }

    #[test]
    fn age_of_pod() {
        let now = Timestamp::from_second(1_000_000).expect("valid");
        let mut p = Pod::default();
        assert_eq!(age_column(&p, now), "<unknown>");
        p.metadata.creation_timestamp = Some(Time(
            Timestamp::from_second(1_000_000 - 3 * 3600).expect("valid"),
        ));
        assert_eq!(age_column(&p, now), "3h");
    }
}
