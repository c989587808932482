//! Linux-specific parts of sandbox and container configs (CRI's `LinuxPodSandboxConfig`,
//! `LinuxContainerResources`, `LinuxContainerSecurityContext`), already resolved from the
//! Pod by lifecycle (kubelet's formulas, pod-level defaults applied).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Pod-level Linux settings of a sandbox.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct PodLinux {
    /// QoS class: `Guaranteed`, `Burstable` or `BestEffort`; chooses the cgroup level.
    pub qos_class: String,
    /// Limits of the pod cgroup (sums over the containers).
    pub resources: ContainerResources,
    /// `hostPID`: the pod uses the host's PID namespace.
    pub host_pid: bool,
    /// `hostIPC`: the pod uses the host's IPC namespace.
    pub host_ipc: bool,
    /// The pod cgroup a kubelet made (CRI `linux.cgroup_parent`): the kubelet owns it and
    /// its QoS level and limits, so the runtime puts the sandbox below it and neither
    /// makes, limits nor removes it. `None`: podhost's own layout under its parent.
    pub cgroup_parent: Option<String>,
    /// Pod sysctls as CRI gives them at the sandbox (namespaced ones); the CRI server
    /// passes them on to each container's [`SecurityConfig::sysctls`].
    pub sysctls: BTreeMap<String, String>,
}

/// Cgroup limits and OOM score of a container or of a pod cgroup.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ContainerResources {
    /// cpu.shares = max(2, request millicores × 1024 / 1000).
    pub cpu_shares: Option<u64>,
    /// CFS quota (µs per period) = limit millicores × period / 1000.
    pub cpu_quota: Option<i64>,
    /// CFS period (µs), 100 ms.
    pub cpu_period: Option<u64>,
    /// Memory limit in bytes.
    pub memory_limit: Option<i64>,
    /// Kubelet's oom_score_adj for the QoS class, before clamping to what the machine allows.
    pub oom_score_adj: Option<i32>,
}

/// Seccomp profile asked for by `securityContext.seccompProfile`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum SeccompProfile {
    /// No filter (Kubernetes' default).
    #[default]
    Unconfined,
    /// The runtime's default profile.
    RuntimeDefault,
    /// A profile file, relative to the daemon's seccomp profile root.
    Localhost(String),
    /// A profile file at this absolute host path (CRI's `localhost_ref`, which the
    /// kubelet resolves under its own profile root).
    Path(std::path::PathBuf),
}

/// Resolved security context of one container (pod-level values already applied).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct SecurityConfig {
    /// `privileged`.
    pub privileged: bool,
    /// `capabilities.add`.
    pub cap_add: Vec<String>,
    /// `capabilities.drop`.
    pub cap_drop: Vec<String>,
    /// `runAsUser`; the image's user otherwise.
    pub run_as_user: Option<i64>,
    /// A user name looked up in the image's /etc/passwd (CRI `run_as_username`), when no
    /// `run_as_user` is given.
    pub run_as_username: Option<String>,
    /// `runAsGroup`; the user's primary group otherwise.
    pub run_as_group: Option<i64>,
    /// `runAsNonRoot`: refuse to run as uid 0.
    pub run_as_non_root: bool,
    /// Pod `supplementalGroups` and `fsGroup`.
    pub supplemental_groups: Vec<i64>,
    /// `readOnlyRootFilesystem`.
    pub readonly_rootfs: bool,
    /// `allowPrivilegeEscalation: false`.
    pub no_new_privs: bool,
    /// `seccompProfile`.
    pub seccomp: SeccompProfile,
    /// `procMount: Unmasked`.
    pub unmasked_proc: bool,
    /// Pod `sysctls` (namespaced ones only; validation refuses the others).
    pub sysctls: BTreeMap<String, String>,
    /// Paths hidden from the container, replacing the runtime's default list (CRI
    /// `masked_paths`); `None`: the defaults.
    pub masked_paths: Option<Vec<String>>,
    /// Paths made read-only, replacing the default list (CRI `readonly_paths`); `None`:
    /// the defaults.
    pub readonly_paths: Option<Vec<String>>,
}

/// Container-level Linux settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ContainerLinux {
    /// Cgroup limits and OOM score.
    pub resources: ContainerResources,
    /// Security context.
    pub security: SecurityConfig,
    /// CRI's namespace mode TARGET (ephemeral containers' `targetContainerName`): the id
    /// of a running container of the same sandbox whose PID namespace this one joins,
    /// as `docker run --pid=container:ID`.
    pub pid_target: Option<String>,
}

/// An image's `STOPSIGNAL` (`SIGTERM`, `TERM` or `15`) → signal number; `None` for names
/// this runtime does not know.
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
