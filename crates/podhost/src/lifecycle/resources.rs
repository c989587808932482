//! kubelet's formulas from a Pod to cgroup limits and security settings: QoS class,
//! cpu.shares / CFS quota / memory limit per container and per pod, oom_score_adj, and
//! the security context with pod-level values applied (SPEC-lifecycle.md "Resources").

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, SeccompProfile as K8sSeccomp};
use podhost_api::quantity::{parse_bytes, parse_cpu_millis};

use podhost_runtime::{
    ContainerLinux, ContainerResources, PodLinux, SeccompProfile, SecurityConfig,
};

/// CFS period kubelet uses (100 ms, in µs).
pub const CPU_PERIOD_US: u64 = 100_000;
/// Smallest CFS quota the kernel accepts (1 ms).
const MIN_QUOTA_US: i64 = 1_000;
/// cpu.shares of a container without CPU request (kubelet's MinShares).
const MIN_SHARES: u64 = 2;
/// oom_score_adj of Guaranteed containers.
pub const GUARANTEED_OOM_SCORE_ADJ: i32 = -997;
/// oom_score_adj of BestEffort containers.
pub const BEST_EFFORT_OOM_SCORE_ADJ: i32 = 1000;

/// Requests and limits of one container, in millicores and bytes (0 = absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Amounts {
    cpu_request: i64,
    cpu_limit: i64,
    mem_request: i64,
    mem_limit: i64,
}

fn amounts(c: &Container) -> Amounts {
    let r = c.resources.clone().unwrap_or_default();
    let req = r.requests.unwrap_or_default();
    let lim = r.limits.unwrap_or_default();
    // Validation already rejected malformed quantities; one here counts as absent.
    let cpu = |m: &BTreeMap<String, _>| {
        m.get("cpu")
            .and_then(
                |q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity| {
                    parse_cpu_millis(&q.0).ok()
                },
            )
            .unwrap_or(0)
    };
    let mem = |m: &BTreeMap<String, _>| {
        m.get("memory")
            .and_then(
                |q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity| {
                    parse_bytes(&q.0).ok()
                },
            )
            .unwrap_or(0)
    };
    let (cpu_limit, mem_limit) = (cpu(&lim), mem(&lim));
    // A limit without a request makes the request equal to the limit (also done by
    // defaulting; repeated so a pod stored before defaulting computes the same).
    let cpu_request = match cpu(&req) {
        0 => cpu_limit,
        v => v,
    };
    let mem_request = match mem(&req) {
        0 => mem_limit,
        v => v,
    };
    Amounts {
        cpu_request,
        cpu_limit,
        mem_request,
        mem_limit,
    }
}

fn all_containers(spec: &PodSpec) -> impl Iterator<Item = &Container> {
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
}

/// QoS class (kubelet's GetPodQOS): BestEffort without any CPU/memory request or limit;
/// Guaranteed when every container has CPU and memory limits equal to its requests;
/// Burstable otherwise. Quantities are compared by value (`1` = `1000m`).
pub fn qos_class(spec: &PodSpec) -> &'static str {
    let mut any = false;
    let mut guaranteed = true;
    for c in all_containers(spec) {
        let a = amounts(c);
        if a != Amounts::default() {
            any = true;
        }
        if a.cpu_limit == 0
            || a.mem_limit == 0
            || a.cpu_request != a.cpu_limit
            || a.mem_request != a.mem_limit
        {
            guaranteed = false;
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

/// cpu.shares = max(2, millicores × 1024 / 1000).
pub fn milli_cpu_to_shares(milli: i64) -> u64 {
    let shares = milli.max(0) as u64 * 1024 / 1000;
    shares.max(MIN_SHARES)
}

/// CFS quota for a CPU limit: millicores × period / 1000, at least 1 ms.
pub fn milli_cpu_to_quota(milli: i64) -> i64 {
    (milli * CPU_PERIOD_US as i64 / 1000).max(MIN_QUOTA_US)
}

/// Kubelet's oom_score_adj for a container of a pod of `qos` requesting `mem_request`
/// bytes on a node of `capacity` bytes (before clamping to what the machine permits).
pub fn oom_score_adj(qos: &str, mem_request: i64, capacity: i64) -> i32 {
    match qos {
        "Guaranteed" => GUARANTEED_OOM_SCORE_ADJ,
        "BestEffort" => BEST_EFFORT_OOM_SCORE_ADJ,
        _ => {
            let capacity = capacity.max(1) as i128;
            let adj = 1000 - (1000 * mem_request.max(0) as i128) / capacity;
            // Never as protected as Guaranteed, never as exposed as BestEffort.
            adj.clamp(3, 999) as i32
        }
    }
}

/// Memory of this machine in bytes (MemTotal), the node capacity of the formulas.
pub fn node_memory() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(i64::MAX / 2)
}

/// Limits of one container.
pub fn container_resources(pod: &Pod, c: &Container, capacity: i64) -> ContainerResources {
    let spec = pod.spec.clone().unwrap_or_default();
    let qos = qos_class(&spec);
    let a = amounts(c);
    ContainerResources {
        cpu_shares: Some(milli_cpu_to_shares(a.cpu_request)),
        cpu_quota: (a.cpu_limit > 0).then(|| milli_cpu_to_quota(a.cpu_limit)),
        cpu_period: (a.cpu_limit > 0).then_some(CPU_PERIOD_US),
        memory_limit: (a.mem_limit > 0).then_some(a.mem_limit),
        oom_score_adj: Some(oom_score_adj(qos, a.mem_request, capacity)),
    }
}

/// Pod-level settings: QoS class and the pod cgroup's limits (kubelet's
/// ResourceConfigForPod): shares from the summed requests; a CPU quota or memory limit
/// only when every container has one. Init containers run one at a time, so the pod
/// needs max(largest init container, sum of the others).
pub fn pod_linux(pod: &Pod) -> PodLinux {
    let spec = pod.spec.clone().unwrap_or_default();
    let qos = qos_class(&spec);
    let regular: Vec<Amounts> = spec
        .containers
        .iter()
        .chain(
            spec.init_containers
                .iter()
                .flatten()
                .filter(|c| podhost_api::is_sidecar(c)),
        )
        .map(amounts)
        .collect();
    let init: Vec<Amounts> = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| !podhost_api::is_sidecar(c))
        .map(amounts)
        .collect();
    let total = |f: fn(&Amounts) -> i64| -> i64 {
        let sum: i64 = regular.iter().map(f).sum();
        init.iter().map(f).max().unwrap_or(0).max(sum)
    };
    let all_have = |f: fn(&Amounts) -> i64| regular.iter().chain(init.iter()).all(|a| f(a) > 0);
    let resources = if qos == "BestEffort" {
        ContainerResources {
            cpu_shares: Some(MIN_SHARES),
            ..Default::default()
        }
    } else {
        let cpu_limit = total(|a| a.cpu_limit);
        let mem_limit = total(|a| a.mem_limit);
        let cpu_limited = all_have(|a| a.cpu_limit);
        ContainerResources {
            cpu_shares: Some(milli_cpu_to_shares(total(|a| a.cpu_request))),
            cpu_quota: cpu_limited.then(|| milli_cpu_to_quota(cpu_limit)),
            cpu_period: cpu_limited.then_some(CPU_PERIOD_US),
            memory_limit: all_have(|a| a.mem_limit).then_some(mem_limit),
            oom_score_adj: None,
        }
    };
    PodLinux {
        qos_class: qos.to_string(),
        resources,
        host_pid: spec.host_pid.unwrap_or(false),
        host_ipc: spec.host_ipc.unwrap_or(false),
        // podhost's own pods: podhost's cgroup layout, sysctls per container.
        cgroup_parent: None,
        sysctls: Default::default(),
    }
}

/// Size of a `medium: Memory` emptyDir: min(sizeLimit, pod memory limit, node memory).
/// Its pages are charged to the memory cgroup of whoever writes them, i.e. the pod.
pub fn memory_volume_size(pod: &Pod, v: &k8s_openapi::api::core::v1::Volume) -> i64 {
    let limit = v
        .empty_dir
        .as_ref()
        .and_then(|e| e.size_limit.as_ref())
        .and_then(|q| parse_bytes(&q.0).ok())
        .filter(|b| *b > 0);
    let pod_limit = pod_linux(pod).resources.memory_limit;
    [limit, pod_limit, Some(node_memory())]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(i64::MAX)
}

fn seccomp(p: Option<&K8sSeccomp>) -> Option<SeccompProfile> {
    let p = p?;
    Some(match p.type_.as_str() {
        "RuntimeDefault" => SeccompProfile::RuntimeDefault,
        "Localhost" => SeccompProfile::Localhost(p.localhost_profile.clone().unwrap_or_default()),
        _ => SeccompProfile::Unconfined,
    })
}

/// The security context of a container: its own fields, else the pod's.
pub fn security(pod: &Pod, c: &Container) -> SecurityConfig {
    let psc = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let sc = c.security_context.clone().unwrap_or_default();
    let caps = sc.capabilities.clone().unwrap_or_default();
    let mut groups: Vec<i64> = psc.supplemental_groups.clone().unwrap_or_default();
    // kubelet adds fsGroup to every container's supplementary groups.
    if let Some(g) = psc.fs_group {
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    SecurityConfig {
        privileged: sc.privileged.unwrap_or(false),
        cap_add: caps.add.unwrap_or_default(),
        cap_drop: caps.drop.unwrap_or_default(),
        run_as_user: sc.run_as_user.or(psc.run_as_user),
        run_as_username: None,
        run_as_group: sc.run_as_group.or(psc.run_as_group),
        run_as_non_root: sc.run_as_non_root.or(psc.run_as_non_root).unwrap_or(false),
        supplemental_groups: groups,
        readonly_rootfs: sc.read_only_root_filesystem.unwrap_or(false),
        no_new_privs: sc.allow_privilege_escalation == Some(false),
        seccomp: seccomp(sc.seccomp_profile.as_ref())
            .or_else(|| seccomp(psc.seccomp_profile.as_ref()))
            .unwrap_or_default(),
        unmasked_proc: sc.proc_mount.as_deref() == Some("Unmasked"),
        sysctls: psc
            .sysctls
            .iter()
            .flatten()
            .map(|s| (s.name.clone(), s.value.clone()))
            .collect(),
        masked_paths: None,
        readonly_paths: None,
    }
}

/// Resources and security of a container, for its runtime config.
pub fn container_linux(pod: &Pod, c: &Container) -> ContainerLinux {
    ContainerLinux {
        resources: container_resources(pod, c, node_memory()),
        security: security(pod, c),
        // Set by the worker for ephemeral containers with a target.
        pid_target: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        let mut m = podhost_api::parse_manifests(yaml, "t.yaml").expect("parse");
        let podhost_api::Manifest::Pod(p) = m.remove(0) else {
            panic!("not a pod")
        };
        *p
    }

    const BURSTABLE: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: a
    image: busybox
    resources:
      requests: {cpu: 250m, memory: 64Mi}
      limits: {cpu: 500m, memory: 128Mi}
  - name: b
    image: busybox
    resources:
      limits: {cpu: "1", memory: 32Mi}
"#;

    #[test]
    fn qos_classes() {
        let spec = |y: &str| pod(y).spec.unwrap();
        assert_eq!(qos_class(&spec(BURSTABLE)), "Burstable");
        let g = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: a\n    image: busybox\n    resources:\n      requests: {cpu: '1', memory: 1Gi}\n      limits: {cpu: 1000m, memory: 1024Mi}\n";
        assert_eq!(qos_class(&spec(g)), "Guaranteed");
        let be = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: a\n    image: busybox\n";
        assert_eq!(qos_class(&spec(be)), "BestEffort");
    }

    #[test]
    fn kubelet_formulas() {
        assert_eq!(milli_cpu_to_shares(0), 2);
        assert_eq!(milli_cpu_to_shares(1), 2);
        assert_eq!(milli_cpu_to_shares(250), 256);
        assert_eq!(milli_cpu_to_shares(1000), 1024);
        assert_eq!(milli_cpu_to_quota(500), 50_000);
        assert_eq!(milli_cpu_to_quota(1), 1_000);
        assert_eq!(oom_score_adj("Guaranteed", 1, 100), -997);
        assert_eq!(oom_score_adj("BestEffort", 0, 100), 1000);
        assert_eq!(oom_score_adj("Burstable", 25, 100), 750);
        assert_eq!(oom_score_adj("Burstable", 0, 100), 999);
        assert_eq!(oom_score_adj("Burstable", 100, 100), 3);
    }

    #[test]
    fn container_and_pod_limits() {
        let p = pod(BURSTABLE);
        let spec = p.spec.clone().unwrap();
        let a = container_resources(&p, &spec.containers[0], 1 << 30);
        assert_eq!(a.cpu_shares, Some(256));
        assert_eq!(a.cpu_quota, Some(50_000));
        assert_eq!(a.cpu_period, Some(100_000));
        assert_eq!(a.memory_limit, Some(128 << 20));
        // 1000 - 1000 * 64Mi / 1Gi = 937.5 → 938 (integer division of the product).
        assert_eq!(a.oom_score_adj, Some(938));
        let b = container_resources(&p, &spec.containers[1], 1 << 30);
        assert_eq!(b.cpu_shares, Some(1024), "request defaults to the limit");
        let pl = pod_linux(&p);
        assert_eq!(pl.qos_class, "Burstable");
        assert_eq!(pl.resources.cpu_shares, Some(milli_cpu_to_shares(1250)));
        assert_eq!(pl.resources.cpu_quota, Some(150_000));
        assert_eq!(pl.resources.memory_limit, Some(160 << 20));
    }

    #[test]
    fn pod_limit_only_when_every_container_has_one() {
        let p = pod("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: a\n    image: busybox\n    resources: {limits: {memory: 32Mi}}\n  - name: b\n    image: busybox\n    resources: {requests: {cpu: 100m}}\n");
        let pl = pod_linux(&p);
        assert_eq!(pl.resources.memory_limit, None);
        assert_eq!(pl.resources.cpu_quota, None);
        assert_eq!(pl.resources.cpu_shares, Some(102));
    }

    #[test]
    fn security_context_pod_defaults_and_overrides() {
        let p = pod(r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  securityContext:
    runAsUser: 1000
    runAsNonRoot: true
    fsGroup: 2000
    supplementalGroups: [3000]
    seccompProfile: {type: RuntimeDefault}
    sysctls: [{name: net.ipv4.ip_local_port_range, value: "1024 65000"}]
  containers:
  - name: a
    securityContext:
      runAsUser: 1001
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities: {add: [NET_ADMIN], drop: [ALL]}
  - name: b
    securityContext:
      seccompProfile: {type: Unconfined}
"#);
        let spec = p.spec.clone().unwrap();
        let a = security(&p, &spec.containers[0]);
        assert_eq!(a.run_as_user, Some(1001));
        assert!(a.run_as_non_root && a.no_new_privs && a.readonly_rootfs);
        assert_eq!(a.supplemental_groups, vec![3000, 2000]);
        assert_eq!(a.seccomp, SeccompProfile::RuntimeDefault);
        assert_eq!(a.cap_add, vec!["NET_ADMIN".to_string()]);
        assert_eq!(a.sysctls.len(), 1);
        let b = security(&p, &spec.containers[1]);
        assert_eq!(b.run_as_user, Some(1000));
        assert_eq!(b.seccomp, SeccompProfile::Unconfined);
        assert!(!b.no_new_privs);
    }
}
