//! Pod phase, conditions and container statuses, computed the way kubelet does
//! (`getPhase`, status/generate.go).

use k8s_openapi::api::core::v1::{
    Container, ContainerState as K8sState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus as K8sStatus, Pod, PodCondition, PodStatus,
};

use super::restart::RestartPolicy;
use super::{ContainerTrack, PodRecord};
use crate::runtime::{ContainerState, ContainerStatus};
use crate::timefmt::k8s_time;

/// Kubernetes pod phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not all containers started yet.
    Pending,
    /// At least one container runs or restarts.
    Running,
    /// All containers exited 0 and will not restart.
    Succeeded,
    /// All containers ended, one or more failed, none restarts.
    Failed,
}

impl Phase {
    /// Kubernetes' word.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
        }
    }
    /// Succeeded and Failed never change.
    pub fn is_final(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }
}

/// Whether an init container is a native sidecar (`restartPolicy: Always`).
pub fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

fn terminated(s: &ContainerStatus) -> ContainerStateTerminated {
    let code = s.exit_code.unwrap_or(0);
    ContainerStateTerminated {
        container_id: Some(format!("podhost://{}", s.id)),
        exit_code: code,
        reason: Some(
            s.reason
                .clone()
                .unwrap_or_else(|| if code == 0 { "Completed" } else { "Error" }.into()),
        ),
        started_at: s.started_at.map(k8s_time),
        finished_at: s.finished_at.map(k8s_time),
        signal: None,
        message: None,
    }
}

/// The Kubernetes status of one container from what lifecycle tracks.
pub fn container_status(
    spec: &Container,
    track: Option<&ContainerTrack>,
    default_waiting: &str,
) -> K8sStatus {
    let empty = ContainerTrack::default();
    let t = track.unwrap_or(&empty);
    let cur = t.current.as_ref();
    let waiting = |reason: &str, message: Option<String>| K8sState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()),
            message,
        }),
        ..Default::default()
    };
    let state = match (&t.waiting, cur) {
        (Some((reason, msg)), _) => waiting(reason, Some(msg.clone()).filter(|m| !m.is_empty())),
        (None, Some(c)) => match c.state {
            ContainerState::Running => K8sState {
                running: Some(ContainerStateRunning {
                    started_at: c.started_at.map(k8s_time),
                }),
                ..Default::default()
            },
            ContainerState::Exited => K8sState {
                terminated: Some(terminated(c)),
                ..Default::default()
            },
            ContainerState::Created => waiting(default_waiting, None),
            ContainerState::Unknown => K8sState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 137,
                    reason: Some("ContainerStatusUnknown".into()),
                    message: Some(
                        "The container could not be located when the pod was terminated".into(),
                    ),
                    ..Default::default()
                }),
                ..Default::default()
            },
        },
        (None, None) => waiting(default_waiting, None),
    };
    // lastState: the previous container when the current one runs or waits to restart.
    let last = match (&t.waiting, cur) {
        (Some(_), Some(c)) if c.state == ContainerState::Exited => Some(c),
        _ => t
            .previous
            .as_ref()
            .filter(|p| p.state == ContainerState::Exited),
    };
    let running = state.running.is_some();
    K8sStatus {
        name: spec.name.clone(),
        image: spec.image.clone().unwrap_or_default(),
        image_id: cur.map(|c| c.image_id.clone()).unwrap_or_default(),
        container_id: cur.map(|c| format!("podhost://{}", c.id)),
        restart_count: t.restart_count as i32,
        started: Some(running),
        ready: running,
        state: Some(state),
        last_state: last.map(|l| K8sState {
            terminated: Some(terminated(l)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// kubelet's `getPhase` over computed container statuses.
pub fn phase(pod: &Pod, init: &[K8sStatus], regular: &[K8sStatus]) -> Phase {
    let spec = pod.spec.as_ref();
    let policy = RestartPolicy::parse(spec.and_then(|s| s.restart_policy.as_deref()));
    let init_specs = spec
        .and_then(|s| s.init_containers.clone())
        .unwrap_or_default();
    let any_regular_started = regular.iter().any(|s| {
        s.state
            .as_ref()
            .is_some_and(|st| st.running.is_some() || st.terminated.is_some())
            || s.last_state.is_some()
    });
    let mut pending_init = false;
    for (c, s) in init_specs.iter().zip(init) {
        if is_sidecar(c) {
            continue;
        }
        let st = s.state.as_ref();
        match st.and_then(|st| st.terminated.as_ref()) {
            Some(t) if t.exit_code == 0 => {}
            Some(_) if policy == RestartPolicy::Never => return Phase::Failed,
            _ => {
                if st.and_then(|s| s.waiting.as_ref()).is_some()
                    && s.last_state.is_some()
                    && policy == RestartPolicy::Never
                {
                    return Phase::Failed;
                }
                pending_init = true;
            }
        }
    }
    if pending_init && !any_regular_started {
        return Phase::Pending;
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in regular {
        let st = s.state.clone().unwrap_or_default();
        if st.running.is_some() {
            running += 1;
        } else if let Some(t) = &st.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if st.waiting.is_some() {
            if let Some(t) = s.last_state.as_ref().and_then(|l| l.terminated.as_ref()) {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            } else {
                waiting += 1;
            }
        }
    }
    if waiting > 0 {
        return Phase::Pending;
    }
    if running > 0 {
        return Phase::Running;
    }
    if stopped > 0 {
        return match policy {
            RestartPolicy::Always => Phase::Running,
            _ if stopped == succeeded => Phase::Succeeded,
            RestartPolicy::Never => Phase::Failed,
            RestartPolicy::OnFailure => Phase::Running,
        };
    }
    Phase::Pending
}

fn condition(kind: &str, ok: bool, now: i64, reason: Option<&str>) -> PodCondition {
    PodCondition {
        type_: kind.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        last_transition_time: Some(k8s_time(now)),
        reason: if ok { None } else { reason.map(str::to_string) },
        ..Default::default()
    }
}

/// Compute the full `PodStatus` of a record. `sandbox_ready` is the pause's liveness.
pub fn pod_status(rec: &PodRecord, sandbox_ready: bool, now: i64) -> PodStatus {
    let spec = rec.pod.spec.clone().unwrap_or_default();
    let inits = spec.init_containers.clone().unwrap_or_default();
    let default_waiting = if inits.is_empty() {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let init: Vec<K8sStatus> = inits
        .iter()
        .map(|c| {
            let mut s = container_status(c, rec.containers.get(&c.name), "PodInitializing");
            if !is_sidecar(c) {
                // Init containers are "ready" once they completed.
                s.ready = s
                    .state
                    .as_ref()
                    .and_then(|st| st.terminated.as_ref())
                    .is_some_and(|t| t.exit_code == 0);
            }
            s
        })
        .collect();
    let regular: Vec<K8sStatus> = spec
        .containers
        .iter()
        .map(|c| container_status(c, rec.containers.get(&c.name), default_waiting))
        .collect();
    let mut ph = phase(&rec.pod, &init, &regular);
    // Final phases stick (kubelet never leaves Succeeded/Failed).
    let prev = rec.pod.status.as_ref().and_then(|s| s.phase.clone());
    if let Some(p) = prev.as_deref() {
        if p == "Succeeded" {
            ph = Phase::Succeeded;
        } else if p == "Failed" {
            ph = Phase::Failed;
        }
    }
    let initialized = inits.iter().zip(&init).all(|(c, s)| {
        if is_sidecar(c) {
            s.started == Some(true)
        } else {
            s.ready
        }
    }) || rec.initialized;
    let sidecars_ready = inits
        .iter()
        .zip(&init)
        .filter(|(c, _)| is_sidecar(c))
        .all(|(_, s)| s.ready);
    let containers_ready = regular.iter().all(|s| s.ready) && sidecars_ready;
    let start_time = rec
        .pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.clone())
        .or_else(|| Some(k8s_time(now)));
    let keep_time = |kind: &str, c: PodCondition| -> PodCondition {
        // Keep lastTransitionTime when the status did not change.
        match rec
            .pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|x| x.type_ == kind))
        {
            Some(old) if old.status == c.status => PodCondition {
                last_transition_time: old.last_transition_time.clone(),
                ..c
            },
            _ => c,
        }
    };
    let conditions = vec![
        keep_time(
            "PodReadyToStartContainers",
            condition("PodReadyToStartContainers", sandbox_ready, now, None),
        ),
        keep_time(
            "Initialized",
            condition(
                "Initialized",
                initialized,
                now,
                Some("ContainersNotInitialized"),
            ),
        ),
        keep_time(
            "Ready",
            condition(
                "Ready",
                containers_ready && ph == Phase::Running,
                now,
                Some("ContainersNotReady"),
            ),
        ),
        keep_time(
            "ContainersReady",
            condition(
                "ContainersReady",
                containers_ready,
                now,
                Some("ContainersNotReady"),
            ),
        ),
        keep_time("PodScheduled", condition("PodScheduled", true, now, None)),
    ];
    PodStatus {
        phase: Some(ph.as_str().to_string()),
        conditions: Some(conditions),
        container_statuses: Some(regular),
        init_container_statuses: if init.is_empty() { None } else { Some(init) },
        start_time,
        host_ip: Some("127.0.0.1".into()),
        qos_class: Some(qos_class(&spec)),
        ..Default::default()
    }
}

/// QoS class from requests/limits (BestEffort / Burstable / Guaranteed).
pub fn qos_class(spec: &k8s_openapi::api::core::v1::PodSpec) -> String {
    super::resources::qos_class(spec).to_string()
}
