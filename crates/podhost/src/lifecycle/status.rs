//! Pod phase, conditions and container statuses, computed the way kubelet does
//! (`getPhase`, status/generate.go).

use k8s_openapi::api::core::v1::{
    Container, ContainerState as K8sState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus as K8sStatus, Pod, PodCondition, PodStatus,
};

use super::probes::{ProbeKind, ProbeResult};
use super::restart::RestartPolicy;
use super::{ContainerTrack, PodRecord};
use crate::timefmt::k8s_time;
use podhost_runtime::{ContainerState, ContainerStatus};

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
    // started = running && (no startupProbe || startup Success);
    // ready = started && (no readinessProbe || readiness Success).
    let started = running
        && (spec.startup_probe.is_none() || t.probe(ProbeKind::Startup) == ProbeResult::Success);
    let ready = started
        && (spec.readiness_probe.is_none()
            || t.probe(ProbeKind::Readiness) == ProbeResult::Success);
    K8sStatus {
        name: spec.name.clone(),
        image: spec.image.clone().unwrap_or_default(),
        image_id: cur.map(|c| c.image_id.clone()).unwrap_or_default(),
        container_id: cur.map(|c| format!("podhost://{}", c.id)),
        restart_count: t.restart_count as i32,
        started: Some(started),
        ready,
        state: Some(state),
        last_state: last.map(|l| K8sState {
            terminated: Some(terminated(l)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn find<'a>(statuses: &'a [K8sStatus], name: &str) -> Option<&'a K8sStatus> {
    statuses.iter().find(|s| s.name == name)
}

fn last_terminated(s: &K8sStatus) -> Option<&ContainerStateTerminated> {
    s.last_state.as_ref().and_then(|l| l.terminated.as_ref())
}

/// kubelet's `getPhase` over computed container statuses. `terminal`: the pod is done
/// (its sidecars are being or were stopped), so nothing restarts whatever the policy.
pub fn phase(pod: &Pod, init: &[K8sStatus], regular: &[K8sStatus], terminal: bool) -> Phase {
    let spec = pod.spec.as_ref();
    let policy = RestartPolicy::parse(spec.and_then(|s| s.restart_policy.as_deref()));
    let init_specs = spec
        .and_then(|s| s.init_containers.clone())
        .unwrap_or_default();
    let regular_specs = spec.map(|s| s.containers.clone()).unwrap_or_default();

    // Regular init containers.
    let (mut pending_init, mut failed_init) = (0, 0);
    for c in init_specs.iter().filter(|c| !is_sidecar(c)) {
        let Some(s) = find(init, &c.name) else {
            pending_init += 1;
            continue;
        };
        let st = s.state.clone().unwrap_or_default();
        if st.running.is_some() {
            pending_init += 1;
        } else if let Some(t) = &st.terminated {
            if t.exit_code != 0 {
                failed_init += 1;
            }
        } else if st.waiting.is_some() {
            match last_terminated(s) {
                Some(t) if t.exit_code != 0 => failed_init += 1,
                Some(_) => {}
                None => pending_init += 1,
            }
        } else {
            pending_init += 1;
        }
    }

    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    let mut pending_sidecars = 0;
    // Sidecars count as running, never as stopped: they do not decide completion.
    for c in init_specs.iter().filter(|c| is_sidecar(c)) {
        let Some(s) = find(init, &c.name) else {
            unknown += 1;
            continue;
        };
        let st = s.state.clone().unwrap_or_default();
        if st.running.is_some() {
            if s.started != Some(true) {
                pending_sidecars += 1;
            }
            running += 1;
        } else if st.terminated.is_some() {
            // Neither running nor stopped: only regular containers decide completion.
        } else if st.waiting.is_some() {
            if last_terminated(s).is_none() {
                pending_sidecars += 1;
            }
        } else {
            pending_sidecars += 1;
            unknown += 1;
        }
    }
    let mut regular_ever_started = false;
    for c in &regular_specs {
        let Some(s) = find(regular, &c.name) else {
            unknown += 1;
            continue;
        };
        let st = s.state.clone().unwrap_or_default();
        if st.running.is_some() {
            running += 1;
            regular_ever_started = true;
        } else if let Some(t) = &st.terminated {
            stopped += 1;
            regular_ever_started = true;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if st.waiting.is_some() {
            if last_terminated(s).is_some() {
                stopped += 1;
                regular_ever_started = true;
            } else {
                waiting += 1;
            }
        } else {
            unknown += 1;
        }
    }

    if failed_init > 0 && policy == RestartPolicy::Never {
        return Phase::Failed;
    }
    if pending_init > 0 || (pending_sidecars > 0 && !regular_ever_started) || waiting > 0 {
        return Phase::Pending;
    }
    if running > 0 && unknown == 0 {
        return Phase::Running;
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        if terminal {
            return if stopped == succeeded {
                Phase::Succeeded
            } else {
                Phase::Failed
            };
        }
        return match policy {
            RestartPolicy::Always => Phase::Running,
            _ if stopped == succeeded => Phase::Succeeded,
            RestartPolicy::Never => Phase::Failed,
            RestartPolicy::OnFailure => Phase::Running,
        };
    }
    Phase::Pending
}

fn condition(kind: &str, ok: bool, now: i64, reason: &str, message: String) -> PodCondition {
    PodCondition {
        type_: kind.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        last_transition_time: Some(k8s_time(now)),
        reason: (!ok && !reason.is_empty()).then(|| reason.to_string()),
        message: (!ok && !message.is_empty()).then_some(message),
        ..Default::default()
    }
}

fn names(list: &[&str]) -> String {
    format!("[{}]", list.join(" "))
}

/// Status reason of a pod whose shim lives but does not answer.
pub const SHIM_UNREACHABLE: &str = "ShimUnreachable";

/// Turn a computed status into what Kubernetes shows for a pod on a lost node: phase
/// `Unknown` with a reason, not ready. Container states stay the last ones seen (they may
/// well still run), but none is claimed ready.
pub fn mark_unknown(st: &mut PodStatus, message: String, now: i64) {
    st.phase = Some("Unknown".into());
    st.reason = Some(SHIM_UNREACHABLE.into());
    st.message = Some(message.clone());
    for c in st.conditions.iter_mut().flatten() {
        if matches!(c.type_.as_str(), "Ready" | "ContainersReady") && c.status == "True" {
            *c = condition(&c.type_, false, now, SHIM_UNREACHABLE, message.clone());
        }
    }
    let containers = st.container_statuses.iter_mut().flatten();
    for c in containers.chain(st.init_container_statuses.iter_mut().flatten()) {
        // Completed init containers stay "ready": that is a fact, not an observation.
        if c.state.as_ref().is_none_or(|s| s.terminated.is_none()) {
            c.ready = false;
        }
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
    // Ephemeral containers do not count for phase or readiness; they are never ready.
    let ephemeral: Vec<K8sStatus> = spec
        .ephemeral_containers
        .iter()
        .flatten()
        .map(|e| {
            let c = podhost_api::ephemeral_as_container(e);
            let mut s = container_status(&c, rec.containers.get(&c.name), "ContainerCreating");
            s.ready = false;
            s
        })
        .collect();
    let mut ph = phase(&rec.pod, &init, &regular, rec.finished);
    if rec.evicted.is_some() {
        // kubelet's eviction ends the pod: Failed, whatever its containers did.
        ph = Phase::Failed;
    }
    // Final phases stick (kubelet never leaves Succeeded/Failed).
    let prev = rec.pod.status.as_ref().and_then(|s| s.phase.clone());
    if let Some(p) = prev.as_deref() {
        if p == "Succeeded" {
            ph = Phase::Succeeded;
        } else if p == "Failed" {
            ph = Phase::Failed;
        }
    }
    // Initialized: every regular init container exited 0 and every sidecar started
    // (and it stays true once regular containers ran).
    let not_initialized: Vec<&str> = inits
        .iter()
        .zip(&init)
        .filter(|(c, s)| {
            if is_sidecar(c) {
                s.started != Some(true)
            } else {
                !s.ready
            }
        })
        .map(|(c, _)| c.name.as_str())
        .collect();
    let initialized = not_initialized.is_empty() || rec.initialized;
    // ContainersReady: every sidecar and regular container ready.
    let unready: Vec<&str> = inits
        .iter()
        .zip(&init)
        .filter(|(c, s)| is_sidecar(c) && !s.ready)
        .map(|(c, _)| c.name.as_str())
        .chain(regular.iter().filter(|s| !s.ready).map(|s| s.name.as_str()))
        .collect();
    let containers_ready = unready.is_empty();
    let (ready_reason, ready_message) = if ph == Phase::Succeeded {
        ("PodCompleted", String::new())
    } else if !initialized {
        (
            "ContainersNotInitialized",
            format!(
                "containers with incomplete status: {}",
                names(&not_initialized)
            ),
        )
    } else {
        (
            "ContainersNotReady",
            format!("containers with unready status: {}", names(&unready)),
        )
    };
    // Readiness gates: conditions nothing on this machine sets, so they hold Ready back.
    let missing_gate = spec
        .readiness_gates
        .iter()
        .flatten()
        .map(|g| g.condition_type.clone())
        .find(|t| {
            !rec.pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| &c.type_ == t && c.status == "True"))
        });
    let pod_ready = containers_ready && ph != Phase::Succeeded && missing_gate.is_none();
    let (pod_ready_reason, pod_ready_message) = match (&missing_gate, containers_ready) {
        (Some(g), true) => (
            "ReadinessGatesNotReady",
            format!("corresponding condition of pod readiness gate {g:?} does not exist."),
        ),
        _ => (ready_reason, ready_message.clone()),
    };
    let start_time = rec
        .pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.clone())
        .or_else(|| Some(k8s_time(now)));
    let keep_time = |c: PodCondition| -> PodCondition {
        // Keep lastTransitionTime when the status did not change.
        match rec
            .pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|x| x.type_ == c.type_))
        {
            Some(old) if old.status == c.status => PodCondition {
                last_transition_time: old.last_transition_time.clone(),
                ..c
            },
            _ => c,
        }
    };
    let (init_reason, init_message) = if initialized {
        ("", String::new())
    } else {
        (
            "ContainersNotInitialized",
            format!(
                "containers with incomplete status: {}",
                names(&not_initialized)
            ),
        )
    };
    let conditions = vec![
        keep_time(condition(
            "PodReadyToStartContainers",
            sandbox_ready,
            now,
            "",
            String::new(),
        )),
        keep_time(condition(
            "Initialized",
            initialized,
            now,
            init_reason,
            init_message,
        )),
        keep_time(condition(
            "Ready",
            pod_ready,
            now,
            pod_ready_reason,
            pod_ready_message,
        )),
        keep_time(condition(
            "ContainersReady",
            containers_ready && ph != Phase::Succeeded,
            now,
            ready_reason,
            ready_message,
        )),
        keep_time(condition("PodScheduled", true, now, "", String::new())),
    ];
    let mut conditions = conditions;
    if let Some(why) = &rec.evicted {
        // What kubelet adds to a pod it evicts (PodDisruptionConditions, GA in 1.31).
        conditions.push(keep_time(PodCondition {
            reason: Some("TerminationByKubelet".into()),
            message: Some(why.clone()),
            ..condition("DisruptionTarget", true, now, "", String::new())
        }));
    }
    PodStatus {
        reason: rec.evicted.as_ref().map(|_| "Evicted".to_string()),
        message: rec.evicted.clone(),
        phase: Some(ph.as_str().to_string()),
        conditions: Some(conditions),
        container_statuses: Some(regular),
        init_container_statuses: if init.is_empty() { None } else { Some(init) },
        ephemeral_container_statuses: (!ephemeral.is_empty()).then_some(ephemeral),
        start_time,
        host_ip: Some(super::env::node_ip().to_string()),
        host_ips: Some(vec![k8s_openapi::api::core::v1::HostIP {
            ip: super::env::node_ip().to_string(),
        }]),
        qos_class: Some(qos_class(&spec)),
        ..Default::default()
    }
}

/// QoS class from requests/limits (BestEffort / Burstable / Guaranteed).
pub fn qos_class(spec: &k8s_openapi::api::core::v1::PodSpec) -> String {
    super::resources::qos_class(spec).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ContainerState as S;

    fn pod(policy: &str, inits: &[(&str, bool)], regular: &[&str]) -> Pod {
        let c = |n: &str, sidecar: bool| Container {
            name: n.into(),
            restart_policy: sidecar.then(|| "Always".to_string()),
            ..Default::default()
        };
        Pod {
            spec: Some(k8s_openapi::api::core::v1::PodSpec {
                restart_policy: Some(policy.into()),
                init_containers: Some(inits.iter().map(|(n, s)| c(n, *s)).collect()),
                containers: regular.iter().map(|n| c(n, false)).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// r = running, s = running+started-false, w = waiting, wl = waiting with last
    /// termination (exit 1), t0/t1 = terminated with that code.
    fn cs(name: &str, code: &str) -> K8sStatus {
        let term = |exit_code| ContainerStateTerminated {
            exit_code,
            ..Default::default()
        };
        let (state, last, started) = match code {
            "r" => (
                S {
                    running: Some(ContainerStateRunning::default()),
                    ..Default::default()
                },
                None,
                true,
            ),
            "s" => (
                S {
                    running: Some(ContainerStateRunning::default()),
                    ..Default::default()
                },
                None,
                false,
            ),
            "w" | "wl" => (
                S {
                    waiting: Some(ContainerStateWaiting::default()),
                    ..Default::default()
                },
                (code == "wl").then(|| S {
                    terminated: Some(term(1)),
                    ..Default::default()
                }),
                false,
            ),
            "t0" | "t1" => (
                S {
                    terminated: Some(term(if code == "t0" { 0 } else { 1 })),
                    ..Default::default()
                },
                None,
                false,
            ),
            _ => panic!("{code}"),
        };
        K8sStatus {
            name: name.into(),
            state: Some(state),
            last_state: last,
            started: Some(started),
            ..Default::default()
        }
    }

    #[test]
    fn phase_table() {
        use Phase::*;
        // (policy, init specs, init states, regular states, terminal, expected)
        type Case<'a> = (
            &'a str,
            &'a [(&'a str, bool)],
            &'a [&'a str],
            &'a [&'a str],
            bool,
            Phase,
        );
        let cases: &[Case] = &[
            // 1. A regular init container failed under Never.
            ("Never", &[("i", false)], &["t1"], &["w"], false, Failed),
            ("Never", &[("i", false)], &["wl"], &["w"], false, Failed),
            // 2. Init pending, or a container waiting for its first start.
            ("Always", &[("i", false)], &["r"], &["w"], false, Pending),
            ("Always", &[("i", false)], &["wl"], &["w"], false, Pending),
            ("Always", &[], &[], &["r", "w"], false, Pending),
            ("Always", &[("sc", true)], &["s"], &["w"], false, Pending),
            // 3. Something running.
            ("Always", &[("i", false)], &["t0"], &["r"], false, Running),
            ("Never", &[], &[], &["r", "t1"], false, Running),
            // 4. Nothing running, something stopped.
            ("Always", &[], &[], &["t0"], false, Running),
            ("Always", &[], &[], &["wl"], false, Running),
            ("OnFailure", &[], &[], &["t0", "t0"], false, Succeeded),
            ("OnFailure", &[], &[], &["t1"], false, Running),
            ("Never", &[], &[], &["t0", "t1"], false, Failed),
            ("Never", &[], &[], &["t0"], false, Succeeded),
            // Sidecars keep the pod Running while they run, and do not count once stopped.
            ("Never", &[("sc", true)], &["r"], &["t0"], false, Running),
            ("Never", &[("sc", true)], &["t1"], &["t0"], true, Succeeded),
            ("Always", &[("sc", true)], &["t1"], &["t1"], true, Failed),
            // 5. Otherwise Pending.
            ("Always", &[], &[], &[], false, Pending),
        ];
        for (i, (policy, inits, init_states, states, terminal, want)) in cases.iter().enumerate() {
            let regular: Vec<String> = (0..states.len()).map(|i| format!("c{i}")).collect();
            let names: Vec<&str> = regular.iter().map(String::as_str).collect();
            let p = pod(policy, inits, &names);
            let init: Vec<K8sStatus> = inits
                .iter()
                .zip(init_states.iter())
                .map(|((n, _), s)| cs(n, s))
                .collect();
            let reg: Vec<K8sStatus> = names
                .iter()
                .zip(states.iter())
                .map(|(n, s)| cs(n, s))
                .collect();
            assert_eq!(
                phase(&p, &init, &reg, *terminal),
                *want,
                "case {i}: {policy} {init_states:?} {states:?}"
            );
        }
    }
}
