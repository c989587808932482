//! Every mapping between CRI's protobuf messages and the runtime's types, in one place:
//! requests are checked here (InvalidArgument for what podhost refuses or cannot do),
//! and statuses are built here from what the runtime reports.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use podhost_cri_api as cri;
use podhost_runtime::{
    ContainerConfig, ContainerLinux, ContainerResources, ContainerState, ContainerStats,
    ContainerStatus, DnsConfig, ImageInfo, Mount, PodLinux, PortMapping, Propagation,
    SandboxConfig, SandboxState, SandboxStats, SandboxStatus, SeccompProfile, SecurityConfig,
    Sensitive,
};
use tonic::Status;

use crate::error::invalid;

/// What the sandbox status reports as the pause "image": podhost's is built in.
pub const PAUSE_IMAGE: &str = "podhost/pause (built in)";

fn map(m: &BTreeMap<String, String>) -> HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn btree(m: &HashMap<String, String>) -> BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// A user or group id CRI gives as int64: within what Linux allows.
fn id(what: &str, v: i64) -> Result<i64, Status> {
    if (0..=i64::from(u32::MAX - 1)).contains(&v) {
        Ok(v)
    } else {
        Err(invalid(format!("{what} {v} is out of range")))
    }
}

/// A kubelet's pod cgroup: a cgroupfs path, or a systemd slice name turned into its path
/// (`kubepods-besteffort-pod1.slice` → `kubepods.slice/kubepods-besteffort.slice/…`).
/// `..` is refused: the parent must stay inside the cgroup filesystem's tree.
pub fn cgroup_parent(parent: &str) -> Result<Option<String>, Status> {
    let parent = parent.trim();
    if parent.is_empty() {
        return Ok(None);
    }
    let path = if parent.ends_with(".slice") && !parent.contains('/') {
        expand_slice(parent)?
    } else {
        parent.trim_matches('/').to_string()
    };
    let bad = Path::new(&path)
        .components()
        .any(|c| !matches!(c, Component::Normal(_)));
    if bad || path.is_empty() {
        return Err(invalid(format!(
            "cgroup_parent {parent:?} must be a path below the cgroup root, without . or .."
        )));
    }
    Ok(Some(path))
}

/// systemd's slice naming: each `-` separated prefix is a parent slice.
fn expand_slice(slice: &str) -> Result<String, Status> {
    let name = slice.trim_end_matches(".slice");
    if name == "-" || name.is_empty() {
        return Ok(String::new());
    }
    if name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return Err(invalid(format!("invalid systemd slice name {slice:?}")));
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for part in name.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str(&prefix);
        path.push_str(".slice");
    }
    Ok(path)
}

/// Namespaced sysctls only (Kubernetes' list): anything else would change the host.
/// With the host's network, `net.*` would too.
fn sysctls(
    given: &HashMap<String, String>,
    host_network: bool,
    host_ipc: bool,
) -> Result<BTreeMap<String, String>, Status> {
    for name in given.keys() {
        let n = name.replace('/', ".");
        let shared =
            (host_network && n.starts_with("net.")) || (host_ipc && !n.starts_with("net."));
        if !podhost_api::security::is_namespaced_sysctl(name) || shared {
            return Err(invalid(format!(
                "sysctl {name} is not namespaced in this pod: setting it would change the host"
            )));
        }
    }
    Ok(btree(given))
}

/// CRI `RunPodSandboxRequest.config` → the runtime's sandbox config.
pub fn sandbox_config(c: &cri::PodSandboxConfig) -> Result<SandboxConfig, Status> {
    let meta = c
        .metadata
        .as_ref()
        .ok_or_else(|| invalid("sandbox config has no metadata"))?;
    for (what, v) in [
        ("name", &meta.name),
        ("uid", &meta.uid),
        ("namespace", &meta.namespace),
    ] {
        if v.is_empty() {
            return Err(invalid(format!("sandbox metadata has no {what}")));
        }
    }
    let linux = c.linux.clone().unwrap_or_default();
    let sec = linux.security_context.clone().unwrap_or_default();
    let ns = sec.namespace_options.clone().unwrap_or_default();
    if ns.pid() == cri::NamespaceMode::Target || ns.network() == cri::NamespaceMode::Target {
        return Err(invalid(
            "namespace mode TARGET is not supported for a sandbox",
        ));
    }
    if ns
        .userns_options
        .as_ref()
        .is_some_and(|u| u.mode() != cri::NamespaceMode::Node)
    {
        return Err(invalid("user namespaces are not supported yet"));
    }
    let host_network = ns.network() == cri::NamespaceMode::Node;
    let host_ipc = ns.ipc() == cri::NamespaceMode::Node;
    // UTS follows NET: a sandbox on the host's network has the host's name. Without a
    // hostname (a kubelet always gives one, at most 63 characters) the host's too, as
    // containerd does: a sandbox name may be longer than a hostname can be.
    let hostname = match c.hostname.is_empty() || host_network {
        true => host_name().unwrap_or_else(|| "localhost".into()),
        false => c.hostname.clone(),
    };
    if hostname.len() > 64 {
        return Err(invalid(format!(
            "hostname {hostname:?} is longer than 64 characters"
        )));
    }
    let mut port_mappings = Vec::new();
    for p in &c.port_mappings {
        let port = |what: &str, v: i32| {
            u16::try_from(v)
                .map_err(|_| invalid(format!("port mapping: {what} {v} is out of range")))
        };
        let (container_port, host_port) = (
            port("container port", p.container_port)?,
            port("host port", p.host_port)?,
        );
        // Only host ports are published; a container port alone is reached at the pod IP.
        if host_port == 0 || host_network {
            continue;
        }
        port_mappings.push(PortMapping {
            protocol: match p.protocol() {
                cri::Protocol::Tcp => "TCP",
                cri::Protocol::Udp => "UDP",
                cri::Protocol::Sctp => "SCTP",
            }
            .to_string(),
            container_port,
            host_port,
            host_ip: p.host_ip.clone(),
        });
    }
    Ok(SandboxConfig {
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        attempt: meta.attempt,
        hostname,
        share_pid: ns.pid() == cri::NamespaceMode::Pod,
        log_directory: PathBuf::from(&c.log_directory),
        labels: btree(&c.labels),
        annotations: btree(&c.annotations),
        linux: PodLinux {
            // The kubelet sets the pod cgroup's limits and QoS itself.
            qos_class: String::new(),
            resources: ContainerResources::default(),
            host_pid: ns.pid() == cri::NamespaceMode::Node,
            host_ipc,
            cgroup_parent: cgroup_parent(&linux.cgroup_parent)?,
            sysctls: sysctls(&linux.sysctls, host_network, host_ipc)?,
        },
        host_network,
        port_mappings,
        // A kubelet's DNS settings replace the host's resolv.conf entirely.
        dns: c.dns_config.as_ref().map(|d| DnsConfig {
            replace_host: true,
            servers: d.servers.clone(),
            searches: d.searches.clone(),
            options: d.options.clone(),
        }),
        host_aliases: Vec::new(),
        // Stamped by the CRI view of the runtime.
        owner: podhost_runtime::Owner::Cri,
    })
}

fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// The namespace options a sandbox was made with, as CRI reports them.
fn namespace_option(c: &SandboxConfig) -> cri::NamespaceOption {
    let mode = |host: bool, pod: bool| {
        if host {
            cri::NamespaceMode::Node
        } else if pod {
            cri::NamespaceMode::Pod
        } else {
            cri::NamespaceMode::Container
        }
    } as i32;
    cri::NamespaceOption {
        network: mode(c.host_network, true),
        pid: mode(c.linux.host_pid, c.share_pid),
        ipc: mode(c.linux.host_ipc, true),
        ..Default::default()
    }
}

fn sandbox_metadata(c: &SandboxConfig) -> cri::PodSandboxMetadata {
    cri::PodSandboxMetadata {
        name: c.name.clone(),
        uid: c.uid.clone(),
        namespace: c.namespace.clone(),
        attempt: c.attempt,
    }
}

fn sandbox_state(s: SandboxState) -> cri::PodSandboxState {
    match s {
        SandboxState::Ready => cri::PodSandboxState::SandboxReady,
        // CRI has no unknown sandbox state.
        SandboxState::NotReady | SandboxState::Unknown => cri::PodSandboxState::SandboxNotready,
    }
}

/// A sandbox as `ListPodSandbox` shows it.
pub fn pod_sandbox(s: &SandboxStatus) -> cri::PodSandbox {
    cri::PodSandbox {
        id: s.id.clone(),
        metadata: Some(sandbox_metadata(&s.config)),
        state: sandbox_state(s.state) as i32,
        created_at: s.created_at,
        labels: map(&s.config.labels),
        annotations: map(&s.config.annotations),
        runtime_handler: String::new(),
    }
}

/// A sandbox as `PodSandboxStatus` shows it.
pub fn sandbox_status(s: &SandboxStatus) -> cri::PodSandboxStatus {
    cri::PodSandboxStatus {
        id: s.id.clone(),
        metadata: Some(sandbox_metadata(&s.config)),
        state: sandbox_state(s.state) as i32,
        created_at: s.created_at,
        network: Some(cri::PodSandboxNetworkStatus {
            ip: s.ip.clone().unwrap_or_default(),
            additional_ips: s
                .additional_ips
                .iter()
                .map(|ip| cri::PodIp { ip: ip.clone() })
                .collect(),
        }),
        linux: Some(cri::LinuxPodSandboxStatus {
            namespaces: Some(cri::Namespace {
                options: Some(namespace_option(&s.config)),
            }),
        }),
        labels: map(&s.config.labels),
        annotations: map(&s.config.annotations),
        runtime_handler: String::new(),
    }
}

/// `PodSandboxStatus`'s verbose `info`: what `crictl inspectp` shows besides the status.
pub fn sandbox_info(s: &SandboxStatus) -> HashMap<String, String> {
    let info = serde_json::json!({
        "pid": s.pause_pid,
        "image": PAUSE_IMAGE,
        "netns": s.netns_path,
        "hostname": s.config.hostname,
        "logDirectory": s.config.log_directory,
        "cgroupParent": s.config.linux.cgroup_parent,
        "portMappings": s.config.port_mappings,
        "notReadyReason": s.not_ready_reason,
    });
    HashMap::from([("info".to_string(), info.to_string())])
}

/// CRI `LinuxContainerResources` → limits; zero means "not given", as in the kubelet.
pub fn resources(r: &cri::LinuxContainerResources) -> ContainerResources {
    let pos = |v: i64| (v > 0).then_some(v);
    ContainerResources {
        cpu_shares: pos(r.cpu_shares).and_then(|v| u64::try_from(v).ok()),
        cpu_quota: pos(r.cpu_quota),
        cpu_period: pos(r.cpu_period).and_then(|v| u64::try_from(v).ok()),
        memory_limit: pos(r.memory_limit_in_bytes),
        oom_score_adj: i32::try_from(r.oom_score_adj).ok(),
    }
}

fn cri_resources(r: &ContainerResources) -> cri::LinuxContainerResources {
    cri::LinuxContainerResources {
        cpu_period: r
            .cpu_period
            .and_then(|v| i64::try_from(v).ok())
            .unwrap_or(0),
        cpu_quota: r.cpu_quota.unwrap_or(0),
        cpu_shares: r
            .cpu_shares
            .and_then(|v| i64::try_from(v).ok())
            .unwrap_or(0),
        memory_limit_in_bytes: r.memory_limit.unwrap_or(0),
        oom_score_adj: r.oom_score_adj.map(i64::from).unwrap_or(0),
        ..Default::default()
    }
}

/// A seccomp profile from the structured field, else the deprecated path string.
fn seccomp(profile: Option<&cri::SecurityProfile>, path: &str) -> Result<SeccompProfile, Status> {
    use cri::security_profile::ProfileType;
    let localhost = |p: &str| {
        if Path::new(p).is_absolute() {
            Ok(SeccompProfile::Path(PathBuf::from(p)))
        } else {
            Err(invalid(format!(
                "seccomp localhost profile {p:?} must be an absolute path"
            )))
        }
    };
    match profile {
        Some(p) => match p.profile_type() {
            ProfileType::RuntimeDefault => Ok(SeccompProfile::RuntimeDefault),
            ProfileType::Unconfined => Ok(SeccompProfile::Unconfined),
            ProfileType::Localhost => localhost(&p.localhost_ref),
        },
        None => match path {
            "" | "unconfined" => Ok(SeccompProfile::Unconfined),
            "runtime/default" | "docker/default" => Ok(SeccompProfile::RuntimeDefault),
            p => match p.strip_prefix("localhost/") {
                Some(file) => localhost(file),
                None => Err(invalid(format!("unknown seccomp profile {p:?}"))),
            },
        },
    }
}

fn security(
    sc: &cri::LinuxContainerSecurityContext,
    sandbox: &SandboxConfig,
) -> Result<SecurityConfig, Status> {
    let run_as_user = sc
        .run_as_user
        .as_ref()
        .map(|v| id("run_as_user", v.value))
        .transpose()?;
    let run_as_group = sc
        .run_as_group
        .as_ref()
        .map(|v| id("run_as_group", v.value))
        .transpose()?;
    let run_as_username = Some(sc.run_as_username.clone()).filter(|n| !n.is_empty());
    if run_as_group.is_some() && run_as_user.is_none() && run_as_username.is_none() {
        return Err(invalid(
            "run_as_group is set without run_as_user or run_as_username",
        ));
    }
    let caps = sc.capabilities.clone().unwrap_or_default();
    if !caps.add_ambient_capabilities.is_empty() {
        return Err(invalid("ambient capabilities are not supported"));
    }
    let groups = sc
        .supplemental_groups
        .iter()
        .map(|g| id("supplemental group", *g))
        .collect::<Result<Vec<_>, _>>()?;
    let lists = |v: &Vec<String>| Some(v.clone()).filter(|v| !v.is_empty());
    Ok(SecurityConfig {
        privileged: sc.privileged,
        cap_add: caps.add_capabilities,
        cap_drop: caps.drop_capabilities,
        run_as_user,
        run_as_username,
        run_as_group,
        // The kubelet checks runAsNonRoot itself before it creates a container.
        run_as_non_root: false,
        supplemental_groups: groups,
        readonly_rootfs: sc.readonly_rootfs,
        no_new_privs: sc.no_new_privs,
        // Kubelets before 1.25 only fill the deprecated path field.
        #[allow(deprecated)]
        seccomp: seccomp(sc.seccomp.as_ref(), &sc.seccomp_profile_path)?,
        unmasked_proc: false,
        sysctls: sandbox.linux.sysctls.clone(),
        masked_paths: lists(&sc.masked_paths),
        readonly_paths: lists(&sc.readonly_paths),
    })
}

fn mount(m: &cri::Mount) -> Result<Mount, Status> {
    if m.image.is_some() {
        return Err(invalid(format!(
            "mount {}: image volumes are not supported",
            m.container_path
        )));
    }
    if !m.uid_mappings.is_empty() || !m.gid_mappings.is_empty() {
        return Err(invalid(format!(
            "mount {}: id-mapped mounts are not supported",
            m.container_path
        )));
    }
    if !Path::new(&m.container_path).is_absolute() || !Path::new(&m.host_path).is_absolute() {
        return Err(invalid(format!(
            "mount {} from {}: both paths must be absolute",
            m.container_path, m.host_path
        )));
    }
    Ok(Mount {
        host_path: PathBuf::from(&m.host_path),
        container_path: m.container_path.clone(),
        readonly: m.readonly || m.recursive_read_only,
        propagation: match m.propagation() {
            cri::MountPropagation::PropagationPrivate => Propagation::Private,
            cri::MountPropagation::PropagationHostToContainer => Propagation::HostToContainer,
            cri::MountPropagation::PropagationBidirectional => Propagation::Bidirectional,
        },
    })
}

/// CRI `CreateContainerRequest.config` → the runtime's container config, in a sandbox made
/// with `sandbox` (its sysctls apply to every container).
pub fn container_config(
    c: &cri::ContainerConfig,
    sandbox: &SandboxConfig,
) -> Result<ContainerConfig, Status> {
    let meta = c
        .metadata
        .as_ref()
        .ok_or_else(|| invalid("container config has no metadata"))?;
    if meta.name.is_empty() {
        return Err(invalid("container metadata has no name"));
    }
    let image = c
        .image
        .as_ref()
        .map(|i| i.image.clone())
        .filter(|i| !i.is_empty())
        .ok_or_else(|| invalid(format!("container {}: no image", meta.name)))?;
    if !c.devices.is_empty() || !c.cdi_devices.is_empty() {
        return Err(invalid(format!(
            "container {}: devices are not supported yet",
            meta.name
        )));
    }
    let linux = c.linux.clone().unwrap_or_default();
    let sc = linux.security_context.clone().unwrap_or_default();
    // Ephemeral containers: the target container's PID namespace (kubelet names it by id).
    let pid_target = match sc.namespace_options.as_ref() {
        Some(n) if n.pid() == cri::NamespaceMode::Target => {
            if n.target_id.is_empty() {
                return Err(invalid(format!(
                    "container {}: namespace mode TARGET without a target_id",
                    meta.name
                )));
            }
            Some(n.target_id.clone())
        }
        _ => None,
    };
    Ok(ContainerConfig {
        name: meta.name.clone(),
        attempt: meta.attempt,
        image,
        command: Sensitive(c.command.clone()),
        args: Sensitive(c.args.clone()),
        working_dir: Some(c.working_dir.clone()).filter(|w| !w.is_empty()),
        envs: Sensitive(
            c.envs
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.clone()))
                .collect(),
        ),
        mounts: c.mounts.iter().map(mount).collect::<Result<_, _>>()?,
        log_path: c.log_path.clone(),
        labels: btree(&c.labels),
        annotations: btree(&c.annotations),
        linux: ContainerLinux {
            resources: linux.resources.as_ref().map(resources).unwrap_or_default(),
            security: security(&sc, sandbox)?,
            pid_target,
        },
        tty: c.tty,
        stdin: c.stdin,
        stdin_once: c.stdin_once,
    })
}

/// A container state as CRI names it.
pub fn container_state(s: ContainerState) -> cri::ContainerState {
    match s {
        ContainerState::Created => cri::ContainerState::ContainerCreated,
        ContainerState::Running => cri::ContainerState::ContainerRunning,
        ContainerState::Exited => cri::ContainerState::ContainerExited,
        ContainerState::Unknown => cri::ContainerState::ContainerUnknown,
    }
}

fn container_metadata(c: &ContainerConfig) -> cri::ContainerMetadata {
    cri::ContainerMetadata {
        name: c.name.clone(),
        attempt: c.attempt,
    }
}

fn image_spec(image: &str) -> cri::ImageSpec {
    cri::ImageSpec {
        image: image.to_string(),
        ..Default::default()
    }
}

/// A container as `ListContainers` shows it.
pub fn container(s: &ContainerStatus) -> cri::Container {
    cri::Container {
        id: s.id.clone(),
        pod_sandbox_id: s.sandbox_id.clone(),
        metadata: Some(container_metadata(&s.config)),
        image: Some(image_spec(&s.config.image)),
        image_ref: s.image_id.clone(),
        state: container_state(s.state) as i32,
        created_at: s.created_at,
        labels: map(&s.config.labels),
        annotations: map(&s.config.annotations),
        image_id: s.image_id.clone(),
    }
}

/// A container as `ContainerStatus` shows it.
pub fn container_status(s: &ContainerStatus) -> cri::ContainerStatus {
    let c = &s.config;
    cri::ContainerStatus {
        id: s.id.clone(),
        metadata: Some(container_metadata(c)),
        state: container_state(s.state) as i32,
        created_at: s.created_at,
        started_at: s.started_at.unwrap_or(0),
        finished_at: s.finished_at.unwrap_or(0),
        exit_code: s.exit_code.unwrap_or(0),
        image: Some(image_spec(&c.image)),
        image_ref: s.image_id.clone(),
        reason: s.reason.clone().unwrap_or_default(),
        message: String::new(),
        labels: map(&c.labels),
        annotations: map(&c.annotations),
        mounts: c
            .mounts
            .iter()
            .map(|m| cri::Mount {
                container_path: m.container_path.clone(),
                host_path: m.host_path.display().to_string(),
                readonly: m.readonly,
                propagation: match m.propagation {
                    Propagation::Private => cri::MountPropagation::PropagationPrivate,
                    Propagation::HostToContainer => {
                        cri::MountPropagation::PropagationHostToContainer
                    }
                    Propagation::Bidirectional => cri::MountPropagation::PropagationBidirectional,
                } as i32,
                ..Default::default()
            })
            .collect(),
        log_path: s.log_path.display().to_string(),
        resources: Some(cri::ContainerResources {
            linux: Some(cri_resources(&c.linux.resources)),
            windows: None,
        }),
        image_id: s.image_id.clone(),
        user: None,
    }
}

/// A status whose container was created from an image id (a kubelet resolves the pod's
/// image to its id and creates from that) names the image as containerd does: its first
/// tag as `image`, its first repo digest (else the id) as `image_ref`, which a kubelet
/// shows as the pod status' `image` and `imageID`.
pub fn name_image(s: &mut cri::ContainerStatus, image: &ImageInfo) {
    let by_id = s.image.as_ref().is_none_or(|i| i.image == image.id);
    if !by_id {
        return;
    }
    if let Some(tag) = image.repo_tags.first() {
        s.image = Some(image_spec(tag));
    }
    if let Some(digest) = image.repo_digests.first() {
        s.image_ref = digest.clone();
    }
}

/// `ContainerStatus`'s verbose `info`: what `crictl inspect` shows besides the status.
pub fn container_info(s: &ContainerStatus) -> HashMap<String, String> {
    let c = &s.config;
    let info = serde_json::json!({
        "sandboxID": s.sandbox_id,
        "pid": s.pid,
        "config": {
            "command": c.command,
            "args": c.args,
            "workingDir": c.working_dir,
            "envs": c.envs.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            "tty": c.tty,
            "stdin": c.stdin,
            "stdinOnce": c.stdin_once,
            "privileged": c.linux.security.privileged,
        },
    });
    HashMap::from([("info".to_string(), info.to_string())])
}

/// An image as `ImageStatus` and `ListImages` show it; the `User` of its config gives
/// `uid` (numeric) or `username`, as containerd reports them.
pub fn image(i: &ImageInfo) -> cri::Image {
    let user = i.user.as_deref().unwrap_or("");
    let name = user.split(':').next().unwrap_or("");
    let (uid, username) = match name.parse::<i64>() {
        Ok(uid) => (Some(cri::Int64Value { value: uid }), String::new()),
        Err(_) => (None, name.to_string()),
    };
    cri::Image {
        id: i.id.clone(),
        repo_tags: i.repo_tags.clone(),
        repo_digests: i.repo_digests.clone(),
        size: i.size,
        uid,
        username,
        spec: Some(image_spec(&i.id)),
        pinned: i.pinned,
    }
}

fn u64_value(v: Option<u64>) -> Option<cri::UInt64Value> {
    v.map(|value| cri::UInt64Value { value })
}

/// Cumulative CPU time and memory at `timestamp`, as CRI reports them.
fn usage(
    timestamp: i64,
    cpu_ns: Option<u64>,
    working_set: Option<u64>,
    memory: Option<u64>,
) -> (Option<cri::CpuUsage>, Option<cri::MemoryUsage>) {
    let cpu = cri::CpuUsage {
        timestamp,
        usage_core_nano_seconds: u64_value(cpu_ns),
        usage_nano_cores: None,
    };
    let mem = cri::MemoryUsage {
        timestamp,
        working_set_bytes: u64_value(working_set),
        usage_bytes: u64_value(memory),
        ..Default::default()
    };
    (Some(cpu), Some(mem))
}

/// CRI stats of one container, with the labels and annotations of its config.
pub fn container_stats(s: &ContainerStats, config: &ContainerConfig) -> cri::ContainerStats {
    let (cpu, memory) = usage(
        s.timestamp,
        s.cpu_usage_ns,
        s.memory_working_set,
        s.memory_usage,
    );
    cri::ContainerStats {
        attributes: Some(cri::ContainerAttributes {
            id: s.id.clone(),
            metadata: Some(container_metadata(config)),
            labels: map(&config.labels),
            annotations: map(&config.annotations),
        }),
        cpu,
        memory,
        writable_layer: s.writable_layer.as_ref().map(|l| cri::FilesystemUsage {
            timestamp: s.timestamp,
            fs_id: Some(cri::FilesystemIdentifier {
                mountpoint: l.mountpoint.display().to_string(),
            }),
            used_bytes: Some(cri::UInt64Value { value: l.bytes }),
            inodes_used: Some(cri::UInt64Value { value: l.inodes }),
        }),
        swap: None,
    }
}

/// CRI stats of a sandbox and its containers (`configs` by container id).
pub fn sandbox_stats(
    s: &SandboxStats,
    sandbox: &SandboxConfig,
    configs: &HashMap<String, ContainerConfig>,
) -> cri::PodSandboxStats {
    let (cpu, memory) = usage(
        s.timestamp,
        s.cpu_usage_ns,
        s.memory_working_set,
        s.memory_usage,
    );
    cri::PodSandboxStats {
        attributes: Some(cri::PodSandboxAttributes {
            id: s.id.clone(),
            metadata: Some(sandbox_metadata(sandbox)),
            labels: map(&sandbox.labels),
            annotations: map(&sandbox.annotations),
        }),
        linux: Some(cri::LinuxPodSandboxStats {
            cpu,
            memory,
            network: None,
            process: None,
            containers: s
                .containers
                .iter()
                .filter_map(|c| configs.get(&c.id).map(|cfg| container_stats(c, cfg)))
                .collect(),
        }),
        windows: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox_request() -> cri::PodSandboxConfig {
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: "web".into(),
                uid: "u1".into(),
                namespace: "default".into(),
                attempt: 2,
            }),
            hostname: "web-0".into(),
            log_directory: "/var/log/pods/default_web_u1".into(),
            dns_config: Some(cri::DnsConfig {
                servers: vec!["10.10.10.10".into()],
                searches: vec!["example.com".into()],
                options: vec!["ndots:8".into()],
            }),
            port_mappings: vec![
                cri::PortMapping {
                    protocol: cri::Protocol::Udp as i32,
                    container_port: 53,
                    host_port: 5353,
                    host_ip: "127.0.0.1".into(),
                },
                cri::PortMapping {
                    container_port: 80,
                    ..Default::default()
                },
            ],
            labels: [("app".to_string(), "web".to_string())].into(),
            annotations: [("a".to_string(), "b".to_string())].into(),
            linux: Some(cri::LinuxPodSandboxConfig {
                cgroup_parent: "/kubepods/burstable/podu1".into(),
                sysctls: [("net.ipv4.ip_forward".to_string(), "1".to_string())].into(),
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(cri::NamespaceOption {
                        pid: cri::NamespaceMode::Container as i32,
                        ipc: cri::NamespaceMode::Node as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_sandbox_request_maps_every_field() {
        let c = sandbox_config(&sandbox_request()).unwrap();
        assert_eq!(
            (c.name.as_str(), c.uid.as_str(), c.attempt),
            ("web", "u1", 2)
        );
        assert_eq!(c.hostname, "web-0");
        assert_eq!(
            c.log_directory,
            PathBuf::from("/var/log/pods/default_web_u1")
        );
        assert_eq!(c.labels["app"], "web");
        assert_eq!(c.annotations["a"], "b");
        assert_eq!(
            c.port_mappings,
            vec![PortMapping {
                protocol: "UDP".into(),
                container_port: 53,
                host_port: 5353,
                host_ip: "127.0.0.1".into()
            }],
            "a container port alone publishes nothing"
        );
        let dns = c.dns.clone().unwrap();
        assert!(dns.replace_host);
        assert_eq!(dns.options, vec!["ndots:8"]);
        assert_eq!(
            c.linux.cgroup_parent.as_deref(),
            Some("kubepods/burstable/podu1")
        );
        assert!(!c.share_pid && !c.linux.host_pid && c.linux.host_ipc && !c.host_network);
        assert_eq!(c.linux.sysctls["net.ipv4.ip_forward"], "1");
        assert_eq!(c.owner, podhost_runtime::Owner::Cri);

        // Back: the status shows what was asked.
        let st = SandboxStatus {
            id: "sb1".into(),
            config: c,
            state: SandboxState::Ready,
            created_at: 42,
            pause_pid: Some(7),
            ip: Some("10.77.0.5".into()),
            additional_ips: vec!["fd00::5".into()],
            netns_path: PathBuf::from("/run/podhost/netns/sb1"),
            not_ready_reason: None,
        };
        let s = sandbox_status(&st);
        assert_eq!(s.metadata.as_ref().unwrap().attempt, 2);
        assert_eq!(s.state(), cri::PodSandboxState::SandboxReady);
        let net = s.network.unwrap();
        assert_eq!(net.ip, "10.77.0.5");
        assert_eq!(net.additional_ips[0].ip, "fd00::5");
        let ns = s.linux.unwrap().namespaces.unwrap().options.unwrap();
        assert_eq!(ns.pid(), cri::NamespaceMode::Container);
        assert_eq!(ns.ipc(), cri::NamespaceMode::Node);
        assert_eq!(ns.network(), cri::NamespaceMode::Pod);
        assert_eq!(s.annotations["a"], "b");
        let info: serde_json::Value = serde_json::from_str(&sandbox_info(&st)["info"]).unwrap();
        assert_eq!(info["pid"], 7);
        let listed = pod_sandbox(&st);
        assert_eq!((listed.id.as_str(), listed.created_at), ("sb1", 42));
        let unknown = SandboxStatus {
            state: SandboxState::Unknown,
            ..st
        };
        assert_eq!(
            pod_sandbox(&unknown).state(),
            cri::PodSandboxState::SandboxNotready
        );
    }

    #[test]
    fn sandbox_requests_podhost_cannot_honour_are_refused() {
        let with = |f: &dyn Fn(&mut cri::PodSandboxConfig)| {
            let mut r = sandbox_request();
            f(&mut r);
            sandbox_config(&r)
        };
        assert!(with(&|r| r.metadata = None).is_err());
        assert!(with(&|r| r.metadata.as_mut().unwrap().uid.clear()).is_err());
        assert!(with(&|r| {
            r.linux.as_mut().unwrap().sysctls = [("vm.overcommit_memory".into(), "1".into())].into()
        })
        .is_err());
        // With the host's IPC namespace, IPC sysctls would change the host's.
        assert!(with(&|r| {
            r.linux.as_mut().unwrap().sysctls = [("kernel.msgmax".into(), "1".into())].into()
        })
        .is_err());
        assert!(
            with(&|r| r.linux.as_mut().unwrap().cgroup_parent = "/kubepods/../../etc".into())
                .is_err()
        );
        assert!(with(&|r| r.port_mappings[0].host_port = 70_000).is_err());
        assert!(with(&|r| r.hostname = "h".repeat(65)).is_err());
        let target = with(&|r| {
            let ns = r.linux.as_mut().unwrap().security_context.as_mut().unwrap();
            ns.namespace_options.as_mut().unwrap().pid = cri::NamespaceMode::Target as i32;
        });
        assert_eq!(target.unwrap_err().code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn defaults_of_a_bare_sandbox_request() {
        let c = sandbox_config(&cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: "bare".into(),
                uid: "u".into(),
                namespace: "ns".into(),
                attempt: 0,
            }),
            ..Default::default()
        })
        .unwrap();
        // CRI's default namespace mode is POD: one PID namespace for the pod.
        assert!(c.share_pid);
        assert_eq!(Some(c.hostname), host_name());
        assert_eq!(c.linux.cgroup_parent, None);
        assert_eq!(c.dns, None);
        assert!(c.log_directory.as_os_str().is_empty());
    }

    #[test]
    fn systemd_slices_become_paths() {
        assert_eq!(
            cgroup_parent("kubepods-besteffort-pod12.slice")
                .unwrap()
                .as_deref(),
            Some("kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice")
        );
        assert_eq!(
            cgroup_parent("/kubepods/pod1/").unwrap().as_deref(),
            Some("kubepods/pod1")
        );
        assert_eq!(cgroup_parent("").unwrap(), None);
        assert!(cgroup_parent("a--b.slice").is_err());
        assert!(cgroup_parent("/").is_err());
    }

    fn container_request() -> cri::ContainerConfig {
        cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: "app".into(),
                attempt: 3,
            }),
            image: Some(cri::ImageSpec {
                image: "sha256:abc".into(),
                ..Default::default()
            }),
            command: vec!["sh".into()],
            args: vec!["-c".into(), "top".into()],
            working_dir: "/srv".into(),
            envs: vec![cri::KeyValue {
                key: "A".into(),
                value: "1".into(),
            }],
            mounts: vec![cri::Mount {
                container_path: "/data".into(),
                host_path: "/srv/data".into(),
                readonly: true,
                propagation: cri::MountPropagation::PropagationHostToContainer as i32,
                selinux_relabel: true,
                ..Default::default()
            }],
            labels: [(
                "io.kubernetes.container.name".to_string(),
                "app".to_string(),
            )]
            .into(),
            annotations: [("hash".to_string(), "1".to_string())].into(),
            log_path: "app/3.log".into(),
            stdin: true,
            stdin_once: true,
            tty: true,
            linux: Some(cri::LinuxContainerConfig {
                resources: Some(cri::LinuxContainerResources {
                    cpu_period: 100_000,
                    cpu_quota: 50_000,
                    cpu_shares: 512,
                    memory_limit_in_bytes: 1 << 26,
                    oom_score_adj: 900,
                    ..Default::default()
                }),
                security_context: Some(cri::LinuxContainerSecurityContext {
                    capabilities: Some(cri::Capability {
                        add_capabilities: vec!["NET_ADMIN".into()],
                        drop_capabilities: vec!["NET_RAW".into()],
                        ..Default::default()
                    }),
                    run_as_user: Some(cri::Int64Value { value: 1000 }),
                    run_as_group: Some(cri::Int64Value { value: 2000 }),
                    supplemental_groups: vec![3000],
                    readonly_rootfs: true,
                    no_new_privs: true,
                    masked_paths: vec!["/proc/kcore".into()],
                    seccomp: Some(cri::SecurityProfile {
                        profile_type: cri::security_profile::ProfileType::Localhost as i32,
                        localhost_ref: "/var/lib/kubelet/seccomp/p.json".into(),
                    }),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }
    }

    fn sandbox() -> SandboxConfig {
        sandbox_config(&sandbox_request()).unwrap()
    }

    #[test]
    fn a_container_request_maps_every_field_and_back() {
        let c = container_config(&container_request(), &sandbox()).unwrap();
        assert_eq!((c.name.as_str(), c.attempt), ("app", 3));
        assert_eq!(c.image, "sha256:abc");
        assert_eq!(c.working_dir.as_deref(), Some("/srv"));
        assert_eq!(c.envs.0, vec![("A".to_string(), "1".to_string())]);
        assert_eq!(
            c.mounts,
            vec![Mount {
                host_path: "/srv/data".into(),
                container_path: "/data".into(),
                readonly: true,
                propagation: Propagation::HostToContainer
            }]
        );
        assert!(c.tty && c.stdin && c.stdin_once);
        let r = &c.linux.resources;
        assert_eq!(
            (
                r.cpu_shares,
                r.cpu_quota,
                r.cpu_period,
                r.memory_limit,
                r.oom_score_adj
            ),
            (
                Some(512),
                Some(50_000),
                Some(100_000),
                Some(1 << 26),
                Some(900)
            )
        );
        let s = &c.linux.security;
        assert_eq!((s.run_as_user, s.run_as_group), (Some(1000), Some(2000)));
        assert_eq!(s.cap_add, vec!["NET_ADMIN"]);
        assert_eq!(s.cap_drop, vec!["NET_RAW"]);
        assert!(s.readonly_rootfs && s.no_new_privs && !s.privileged);
        assert_eq!(s.masked_paths, Some(vec!["/proc/kcore".to_string()]));
        assert_eq!(s.readonly_paths, None, "none given: the defaults");
        assert_eq!(
            s.seccomp,
            SeccompProfile::Path("/var/lib/kubelet/seccomp/p.json".into())
        );
        assert_eq!(s.sysctls["net.ipv4.ip_forward"], "1", "the sandbox's");

        let status = ContainerStatus {
            id: "c1".into(),
            sandbox_id: "sb1".into(),
            config: c,
            state: ContainerState::Exited,
            created_at: 1,
            started_at: Some(2),
            finished_at: Some(3),
            exit_code: Some(137),
            reason: Some("OOMKilled".into()),
            image_id: "sha256:abc".into(),
            pid: None,
            log_path: "/var/log/pods/default_web_u1/app/3.log".into(),
        };
        let s = container_status(&status);
        assert_eq!(s.state(), cri::ContainerState::ContainerExited);
        assert_eq!((s.exit_code, s.reason.as_str()), (137, "OOMKilled"));
        assert_eq!((s.started_at, s.finished_at), (2, 3));
        assert_eq!(s.image_ref, "sha256:abc");
        assert_eq!(s.log_path, "/var/log/pods/default_web_u1/app/3.log");
        assert_eq!(
            s.mounts[0].propagation(),
            cri::MountPropagation::PropagationHostToContainer
        );
        assert!(!s.mounts[0].selinux_relabel);
        let lr = s.resources.unwrap().linux.unwrap();
        assert_eq!((lr.cpu_quota, lr.memory_limit_in_bytes), (50_000, 1 << 26));
        let listed = container(&status);
        assert_eq!(listed.pod_sandbox_id, "sb1");
        assert_eq!(listed.annotations["hash"], "1");
        let info: serde_json::Value =
            serde_json::from_str(&container_info(&status)["info"]).unwrap();
        assert_eq!(info["sandboxID"], "sb1");
    }

    #[test]
    fn container_requests_podhost_cannot_honour_are_refused() {
        let with = |f: &dyn Fn(&mut cri::ContainerConfig)| {
            let mut r = container_request();
            f(&mut r);
            container_config(&r, &sandbox())
        };
        fn sc(r: &mut cri::ContainerConfig) -> &mut cri::LinuxContainerSecurityContext {
            r.linux.as_mut().unwrap().security_context.as_mut().unwrap()
        }
        assert!(with(&|r| r.image = None).is_err());
        assert!(with(&|r| r.metadata.as_mut().unwrap().name.clear()).is_err());
        assert!(with(&|r| r.mounts[0].container_path = "data".into()).is_err());
        assert!(with(&|r| r.devices.push(cri::Device::default())).is_err());
        // Ephemeral containers: TARGET names the container whose PID namespace it joins.
        let target = |id: &'static str| {
            with(&move |r| {
                let ns = sc(r).namespace_options.get_or_insert_with(Default::default);
                ns.pid = cri::NamespaceMode::Target as i32;
                ns.target_id = id.into();
            })
        };
        assert!(target("").is_err());
        assert_eq!(
            target("abc").unwrap().linux.pid_target.as_deref(),
            Some("abc")
        );
        assert!(
            with(&|r| sc(r).run_as_user = None).is_err(),
            "group without user"
        );
        assert!(with(&|r| sc(r).run_as_user = Some(cri::Int64Value { value: -1 })).is_err());
        assert!(
            with(&|r| sc(r).seccomp.as_mut().unwrap().localhost_ref = "p.json".into()).is_err()
        );
        // A user name instead of an id makes a group acceptable.
        assert!(with(&|r| {
            sc(r).run_as_user = None;
            sc(r).run_as_username = "www-data".into();
        })
        .is_ok());
    }

    #[test]
    fn seccomp_from_the_profile_or_the_old_path_field() {
        use cri::security_profile::ProfileType;
        let p = |t: ProfileType| cri::SecurityProfile {
            profile_type: t as i32,
            localhost_ref: "/p.json".into(),
        };
        assert_eq!(seccomp(None, "").unwrap(), SeccompProfile::Unconfined);
        assert_eq!(
            seccomp(Some(&p(ProfileType::RuntimeDefault)), "").unwrap(),
            SeccompProfile::RuntimeDefault
        );
        assert_eq!(
            seccomp(Some(&p(ProfileType::Unconfined)), "runtime/default").unwrap(),
            SeccompProfile::Unconfined
        );
        assert_eq!(
            seccomp(None, "localhost//abs/p.json").unwrap(),
            SeccompProfile::Path("/abs/p.json".into())
        );
        assert_eq!(
            seccomp(None, "docker/default").unwrap(),
            SeccompProfile::RuntimeDefault
        );
        assert!(seccomp(None, "bogus").is_err());
    }

    #[test]
    fn a_container_made_from_an_image_id_shows_the_image_s_tag_and_digest() {
        let image = ImageInfo {
            id: "sha256:abc".into(),
            repo_tags: vec!["docker.io/library/busybox:latest".into()],
            repo_digests: vec!["docker.io/library/busybox@sha256:def".into()],
            ..ImageInfo::default()
        };
        let status = |image: &str| cri::ContainerStatus {
            image: Some(image_spec(image)),
            image_ref: "sha256:abc".into(),
            ..Default::default()
        };
        let mut s = status("sha256:abc");
        name_image(&mut s, &image);
        assert_eq!(s.image.unwrap().image, "docker.io/library/busybox:latest");
        assert_eq!(s.image_ref, "docker.io/library/busybox@sha256:def");
        // A container made from a name keeps it; an image loaded from an archive (no
        // digest) keeps its id as the ref.
        let mut s = status("busybox:1.36");
        name_image(&mut s, &image);
        assert_eq!(s.image.unwrap().image, "busybox:1.36");
        let mut s = status("sha256:abc");
        name_image(
            &mut s,
            &ImageInfo {
                repo_digests: Vec::new(),
                ..image
            },
        );
        assert_eq!(s.image_ref, "sha256:abc");
    }

    #[test]
    fn images_report_uid_or_user_name() {
        let info = |user: Option<&str>| ImageInfo {
            id: "sha256:1".into(),
            repo_tags: vec!["gcr.io/x/y:1".into()],
            size: 10,
            stop_signal: None,
            repo_digests: vec!["gcr.io/x/y@sha256:2".into()],
            loaded_tags: Vec::new(),
            user: user.map(str::to_string),
            pinned: false,
        };
        let i = image(&info(Some("1002")));
        assert_eq!(
            (i.uid.map(|u| u.value), i.username.as_str()),
            (Some(1002), "")
        );
        let i = image(&info(Some("www-data:users")));
        assert_eq!((i.uid, i.username.as_str()), (None, "www-data"));
        let i = image(&info(Some("1003:users")));
        assert_eq!(i.uid.map(|u| u.value), Some(1003));
        let i = image(&info(None));
        assert_eq!((i.uid, i.username.as_str()), (None, ""));
        assert_eq!((i.size, i.repo_digests.len()), (10, 1));
        assert_eq!(i.spec.unwrap().image, "sha256:1");
    }

    #[test]
    fn stats_carry_counters_and_attributes() {
        let cfg = container_config(&container_request(), &sandbox()).unwrap();
        let cs = ContainerStats {
            id: "c1".into(),
            name: "app".into(),
            state: ContainerState::Running,
            timestamp: 99,
            cpu_usage_ns: Some(5),
            memory_working_set: Some(6),
            memory_usage: Some(7),
            writable_layer: Some(podhost_runtime::LayerUsage {
                bytes: 8,
                inodes: 9,
                mountpoint: "/var/lib/podhost/containers".into(),
            }),
        };
        let s = container_stats(&cs, &cfg);
        assert_eq!(
            s.attributes
                .as_ref()
                .unwrap()
                .metadata
                .as_ref()
                .unwrap()
                .name,
            "app"
        );
        let cpu = s.cpu.unwrap();
        assert_eq!(
            (cpu.timestamp, cpu.usage_core_nano_seconds.unwrap().value),
            (99, 5)
        );
        let mem = s.memory.unwrap();
        assert_eq!(
            (
                mem.working_set_bytes.unwrap().value,
                mem.usage_bytes.unwrap().value
            ),
            (6, 7)
        );
        assert_eq!(s.writable_layer.unwrap().inodes_used.unwrap().value, 9);

        let sb = SandboxStats {
            id: "sb1".into(),
            name: "web".into(),
            namespace: "default".into(),
            uid: "u1".into(),
            timestamp: 100,
            cpu_usage_ns: Some(50),
            memory_working_set: None,
            memory_usage: None,
            containers: vec![cs],
        };
        let configs = HashMap::from([("c1".to_string(), cfg)]);
        let p = sandbox_stats(&sb, &sandbox(), &configs);
        let linux = p.linux.unwrap();
        assert_eq!(
            linux.cpu.unwrap().usage_core_nano_seconds.unwrap().value,
            50
        );
        assert_eq!(linux.memory.unwrap().working_set_bytes, None);
        assert_eq!(linux.containers.len(), 1);
        assert_eq!(p.attributes.unwrap().labels["app"], "web");
    }
}
