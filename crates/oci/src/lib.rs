//! OCI runtime spec (config.json) builder for the containers of a pod.
//!
//! The defaults follow containerd's CRI plugin (and CRI-O): a new mount and
//! PID namespace per container, the pod's network/IPC/UTS namespaces joined
//! by path, the default capability set, masked and read-only /proc paths and
//! the standard /proc, /dev, /sys mounts. Resources (cgroup limits) and the security
//! context (capabilities, privileged, seccomp, no_new_privs, sysctls) come from the pod.

pub mod caps;
pub mod cgroup;
pub mod seccomp;

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDeviceCgroup,
    LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxMemoryBuilder, LinuxNamespace,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, Mount,
    MountBuilder, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};
pub use oci_spec::OciSpecError;

/// OCI runtime spec version written into config.json (libcontainer accepts 1.x).
pub const OCI_VERSION: &str = "1.2.0";

/// PATH given to a container whose image does not set one (containerd's default).
pub const DEFAULT_PATH_ENV: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Capabilities granted by default, identical to containerd's `defaultUnixCaps`.
pub const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Paths hidden from the container (containerd's `defaultMaskedPaths`).
pub const DEFAULT_MASKED_PATHS: [&str; 12] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/interrupts",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths made read-only in the container (containerd's `defaultReadonlyPaths`).
pub const DEFAULT_READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Everything needed to describe one container of a pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerParams {
    /// Root filesystem (overlay mount point), already mounted by the caller; absolute.
    pub rootfs: PathBuf,
    /// argv of the container process; must not be empty.
    pub args: Vec<String>,
    /// `KEY=value` entries; they override the default PATH.
    pub env: Vec<String>,
    /// Absolute working directory inside the container.
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// Namespaces to join (paths) or to create/inherit.
    pub namespaces: PodNamespaces,
    /// Bind mounts (emptyDirs, /etc/hosts, /dev/shm of the pod …); they
    /// replace a default mount with the same destination.
    pub mounts: Vec<BindMount>,
    /// Cgroup path, e.g. "/podhost/pod<uid>/<container-id>".
    pub cgroups_path: String,
    /// The host's cgroupfs: decides the cgroup namespace and what is made read-only.
    pub cgroupfs: cgroup::CgroupFs,
    pub readonly_rootfs: bool,
    pub terminal: bool,
    /// Cgroup limits libcontainer writes into the container's cgroup.
    pub resources: Resources,
    /// `process.oomScoreAdj`, already clamped by the caller to what the machine permits.
    pub oom_score_adj: Option<i32>,
    /// Capabilities, privileged mode, seccomp, no_new_privs, /proc masking, sysctls.
    pub security: Security,
}

/// Cgroup limits of one container (`linux.resources`); `None` leaves the kernel default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// cpu.shares (v1); libcontainer converts it to cpu.weight on v2.
    pub cpu_shares: Option<u64>,
    /// CFS quota in microseconds per period.
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds.
    pub cpu_period: Option<u64>,
    /// Memory limit in bytes.
    pub memory_limit: Option<i64>,
    /// Maximum number of processes.
    pub pids_limit: Option<i64>,
}

/// Security settings of one container (Kubernetes `securityContext`, resolved).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    /// Every capability, all devices, no masked paths, writable /sys, no seccomp.
    pub privileged: bool,
    /// `capabilities.add` (names with or without `CAP_`, or `ALL`).
    pub cap_add: Vec<String>,
    /// `capabilities.drop`.
    pub cap_drop: Vec<String>,
    /// Capabilities this machine can grant (bit mask); others are left out.
    pub host_cap_mask: Option<u64>,
    /// `allowPrivilegeEscalation: false`.
    pub no_new_privileges: bool,
    /// `seccompProfile`.
    pub seccomp: Seccomp,
    /// `procMount: Unmasked`: no masked or read-only /proc paths.
    pub unmasked_proc: bool,
    /// Namespaced sysctls (`net.*`, `kernel.shm*` …), written in the container's namespaces.
    pub sysctls: BTreeMap<String, String>,
    /// Masked paths replacing [`DEFAULT_MASKED_PATHS`] (CRI `masked_paths`).
    pub masked_paths: Option<Vec<String>>,
    /// Read-only paths replacing [`DEFAULT_READONLY_PATHS`] (CRI `readonly_paths`).
    pub readonly_paths: Option<Vec<String>>,
}

/// Which seccomp filter a container runs under.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Seccomp {
    /// No filter (Kubernetes' default when nothing is asked).
    #[default]
    Unconfined,
    /// podhost's default profile ([`seccomp::runtime_default`]).
    RuntimeDefault,
    /// An OCI-format JSON profile on the host.
    Localhost(PathBuf),
}

/// Namespaces of the pod (usually `/proc/<pause-pid>/ns/*`).
///
/// `None` means: new namespace for `pid`, the host's namespace for the others.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodNamespaces {
    pub net: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
    pub pid: Option<PathBuf>,
    /// `hostPID`: no PID namespace of its own (overrides `pid`).
    pub host_pid: bool,
}

/// A bind mount of a host path into the container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BindMount {
    pub source: PathBuf,
    pub destination: PathBuf,
    pub readonly: bool,
    /// Propagation of mounts below it (rprivate unless set).
    pub propagation: Propagation,
}

/// Mount propagation of a bind mount, as OCI mount options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Propagation {
    /// `rprivate`: nothing crosses (the CRI default).
    #[default]
    Private,
    /// `rslave`: host mounts below the source appear in the container.
    Slave,
    /// `rshared`: mounts cross both ways.
    Shared,
}

impl Propagation {
    /// The OCI mount option.
    pub fn option(self) -> &'static str {
        match self {
            Propagation::Private => "rprivate",
            Propagation::Slave => "rslave",
            Propagation::Shared => "rshared",
        }
    }
}

/// Errors while building or writing a container's OCI spec.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("container args are empty: the container needs a command to run")]
    EmptyArgs,
    #[error("rootfs {0:?} must be an absolute path")]
    RelativeRootfs(PathBuf),
    #[error("working directory {0:?} must be an absolute path")]
    RelativeCwd(String),
    #[error("mount destination {0:?} must be an absolute path")]
    RelativeMountDestination(PathBuf),
    #[error("mount source {0:?} (for {1:?}) must be an absolute path")]
    RelativeMountSource(PathBuf, PathBuf),
    #[error("{kind} namespace path {path:?} must be an absolute path")]
    RelativeNamespacePath { kind: &'static str, path: PathBuf },
    #[error("environment entry {0:?} is not of the form KEY=value")]
    InvalidEnv(String),
    #[error("failed to build the {part} section of the OCI spec")]
    Build {
        part: &'static str,
        #[source]
        source: OciSpecError,
    },
    #[error("failed to serialize the OCI spec for bundle {bundle:?}")]
    Serialize {
        bundle: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("seccomp profile {path:?} is not a valid OCI seccomp JSON document")]
    SeccompProfile {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("failed to {op} {path:?}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub(crate) fn build_err(part: &'static str) -> impl FnOnce(OciSpecError) -> OciError {
    move |source| OciError::Build { part, source }
}

/// Builds the OCI runtime spec of a container from its parameters.
pub fn container_spec(p: &ContainerParams) -> Result<Spec, OciError> {
    validate(p)?;

    let sec = &p.security;
    let caps: HashSet<Capability> = caps::capability_set(
        sec.privileged,
        &sec.cap_add,
        &sec.cap_drop,
        sec.host_cap_mask,
    );
    let seccomp = match (&sec.seccomp, sec.privileged) {
        // containerd: a privileged container is never filtered.
        (_, true) | (Seccomp::Unconfined, _) => None,
        (Seccomp::RuntimeDefault, false) => Some(seccomp::runtime_default(&caps)?),
        (Seccomp::Localhost(path), false) => Some(seccomp::load_localhost(path)?),
    };
    let mut capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .build()
        .map_err(build_err("process.capabilities"))?;
    // The builder starts from oci-spec's Default, which fills inheritable and
    // ambient; containerd leaves both empty (ambient caps would survive exec
    // for non-root users).
    capabilities.set_inheritable(None).set_ambient(None);

    let user = UserBuilder::default()
        .uid(p.uid)
        .gid(p.gid)
        .additional_gids(p.additional_gids.clone())
        .build()
        .map_err(build_err("process.user"))?;

    // rlimits are cleared after the build (oci-spec's Default sets NOFILE
    // 1024): the container inherits the runtime's limits like containerd 2,
    // and a limit above the runtime's hard limit would fail creation.
    let mut process = ProcessBuilder::default()
        .terminal(p.terminal)
        .args(p.args.clone())
        .env(merged_env(&p.env, p.terminal))
        .cwd(PathBuf::from(&p.cwd))
        .user(user)
        .capabilities(capabilities)
        .build()
        .map_err(build_err("process"))?;
    process.set_rlimits(None);
    // Kubernetes' default is allowPrivilegeEscalation=true, i.e. no no_new_privs bit.
    // "false" must be expressed as absent: libcontainer loads seccomp before dropping
    // capabilities only when the field is unset; with Some(false) it loads it after,
    // without CAP_SYS_ADMIN and without no_new_privs, and the kernel refuses.
    process.set_no_new_privileges(sec.no_new_privileges.then_some(true));
    process.set_oom_score_adj(p.oom_score_adj);

    let root = RootBuilder::default()
        .path(p.rootfs.clone())
        .readonly(p.readonly_rootfs)
        .build()
        .map_err(build_err("root"))?;

    let resources = resources(&p.resources, sec.privileged)?;
    // Privileged and procMount=Unmasked containers see /proc and /sys unmasked; others
    // get the defaults unless the caller gave its own lists (a kubelet does).
    let (masked, mut readonly) = if sec.privileged || sec.unmasked_proc {
        (Vec::new(), Vec::new())
    } else {
        (
            sec.masked_paths
                .clone()
                .unwrap_or_else(|| DEFAULT_MASKED_PATHS.map(String::from).to_vec()),
            sec.readonly_paths
                .clone()
                .unwrap_or_else(|| DEFAULT_READONLY_PATHS.map(String::from).to_vec()),
        )
    };
    // The cgroupfs is read-only whatever procMount says; only a privileged container may
    // write it (containerd's WithWriteableCgroupfs).
    if !sec.privileged {
        readonly.extend(p.cgroupfs.readonly_paths());
    }
    // On v2 a private cgroup namespace, except for privileged containers, as containerd.
    let cgroupns = p.cgroupfs == cgroup::CgroupFs::V2 && !sec.privileged;
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces(&p.namespaces, cgroupns)?)
        .cgroups_path(PathBuf::from(&p.cgroups_path))
        .resources(resources)
        .masked_paths(masked)
        .readonly_paths(readonly)
        .build()
        .map_err(build_err("linux"))?;
    linux.set_seccomp(seccomp);
    // Mounts made in the container reach the host only if the container's root is shared
    // too (libcontainer makes it a slave otherwise), as containerd does for Bidirectional.
    if p.mounts
        .iter()
        .any(|m| m.propagation == Propagation::Shared)
    {
        linux.set_rootfs_propagation(Some("shared".to_string()));
    }
    if !sec.sysctls.is_empty() {
        linux.set_sysctl(Some(sec.sysctls.clone().into_iter().collect()));
    }

    let mut spec = SpecBuilder::default()
        .version(OCI_VERSION)
        .process(process)
        .root(root)
        .mounts(mounts(&p.mounts, sec.privileged)?)
        .linux(linux)
        .build()
        .map_err(build_err("spec"))?;
    // The hostname belongs to the pod: it is set once in the pause process's
    // UTS namespace. A container joining that namespace (or the host's) must
    // not set it, so it is never part of a container spec.
    spec.set_hostname(None);
    Ok(spec)
}

/// Writes `spec` as `bundle_dir/config.json`, atomically (temp file + rename),
/// creating `bundle_dir` (0700) if needed. The file is 0600: it holds the container's
/// environment, Secrets included.
pub fn write_bundle(bundle_dir: &Path, spec: &Spec) -> Result<(), OciError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let io_err = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| OciError::Io { op, path, source }
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(bundle_dir)
        .map_err(io_err("create bundle directory", bundle_dir))?;
    let data = serde_json::to_vec_pretty(spec).map_err(|source| OciError::Serialize {
        bundle: bundle_dir.to_path_buf(),
        source,
    })?;
    let final_path = bundle_dir.join("config.json");
    let tmp_path = bundle_dir.join(".config.json.tmp");
    // A temp file a crash left keeps its mode when opened: start from a new one.
    let _ = fs::remove_file(&tmp_path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp_path)
        .map_err(io_err("create", &tmp_path))?;
    file.write_all(&data).map_err(io_err("write", &tmp_path))?;
    // fsync before rename so a crash never leaves an empty config.json behind.
    file.sync_all().map_err(io_err("sync", &tmp_path))?;
    drop(file);
    fs::rename(&tmp_path, &final_path).map_err(io_err("rename into place", &final_path))?;
    Ok(())
}

fn validate(p: &ContainerParams) -> Result<(), OciError> {
    if p.args.is_empty() {
        return Err(OciError::EmptyArgs);
    }
    if !p.rootfs.is_absolute() {
        return Err(OciError::RelativeRootfs(p.rootfs.clone()));
    }
    if !p.cwd.starts_with('/') {
        return Err(OciError::RelativeCwd(p.cwd.clone()));
    }
    for m in &p.mounts {
        if !m.destination.is_absolute() {
            return Err(OciError::RelativeMountDestination(m.destination.clone()));
        }
        if !m.source.is_absolute() {
            return Err(OciError::RelativeMountSource(
                m.source.clone(),
                m.destination.clone(),
            ));
        }
    }
    for e in &p.env {
        match e.split_once('=') {
            Some((key, _)) if !key.is_empty() => {}
            _ => return Err(OciError::InvalidEnv(e.clone())),
        }
    }
    let ns = &p.namespaces;
    for (kind, path) in [
        ("net", &ns.net),
        ("ipc", &ns.ipc),
        ("uts", &ns.uts),
        ("pid", &ns.pid),
    ] {
        if let Some(path) = path {
            if !path.is_absolute() {
                return Err(OciError::RelativeNamespacePath {
                    kind,
                    path: path.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Default PATH first, then the caller's entries; a later entry replaces an
/// earlier one with the same key (image env, then pod env, like CRI).
fn merged_env(env: &[String], terminal: bool) -> Vec<String> {
    let mut out: Vec<String> = vec![DEFAULT_PATH_ENV.to_string()];
    if terminal {
        // CRI adds TERM for TTY containers so that shells behave.
        out.push("TERM=xterm".to_string());
    }
    for entry in env {
        let key = entry.split_once('=').map_or(entry.as_str(), |(k, _)| k);
        out.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
        out.push(entry.clone());
    }
    out
}

fn namespaces(ns: &PodNamespaces, cgroupns: bool) -> Result<Vec<LinuxNamespace>, OciError> {
    let mk = |typ: LinuxNamespaceType, path: Option<&PathBuf>| {
        let b = LinuxNamespaceBuilder::default().typ(typ);
        let b = match path {
            Some(p) => b.path(p.clone()),
            None => b,
        };
        b.build().map_err(build_err("linux.namespaces"))
    };
    // The mount namespace is always new: each container has its own rootfs.
    let mut out = vec![mk(LinuxNamespaceType::Mount, None)?];
    // PID: the host's (hostPID: no entry), the pod's (shareProcessNamespace) or a
    // private one.
    if !ns.host_pid {
        out.push(mk(LinuxNamespaceType::Pid, ns.pid.as_ref())?);
    }
    // net/ipc/uts: join the pause process's; absent means the host's
    // (hostNetwork/hostIPC), which is expressed by omitting the entry.
    for (typ, path) in [
        (LinuxNamespaceType::Network, &ns.net),
        (LinuxNamespaceType::Ipc, &ns.ipc),
        (LinuxNamespaceType::Uts, &ns.uts),
    ] {
        if let Some(path) = path {
            out.push(mk(typ, Some(path))?);
        }
    }
    // A new cgroup namespace, entered by libcontainer once the init is in the container's
    // cgroup: that cgroup is the root of what the container sees (`0::/`).
    if cgroupns {
        out.push(mk(LinuxNamespaceType::Cgroup, None)?);
    }
    Ok(out)
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, OciError> {
    MountBuilder::default()
        .destination(PathBuf::from(dest))
        .typ(typ)
        .source(PathBuf::from(source))
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(build_err("mounts"))
}

/// containerd's default mounts (minus /run, which CRI drops), followed by
/// the caller's bind mounts; a bind mount replaces a default one with the
/// same destination (e.g. the pod's /dev/shm).
fn mounts(binds: &[BindMount], privileged: bool) -> Result<Vec<Mount>, OciError> {
    // A privileged container may write /sys and its cgroups (containerd does the same).
    let sys_ro: &[&str] = if privileged { &[] } else { &["ro"] };
    let sys_opts = |extra: &[&'static str]| {
        let mut v = extra.to_vec();
        v.extend_from_slice(sys_ro);
        v
    };
    let defaults = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &sys_opts(&["nosuid", "noexec", "nodev"]),
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &sys_opts(&["nosuid", "noexec", "nodev", "relatime"]),
        )?,
    ];
    let overridden: HashSet<&Path> = binds.iter().map(|b| b.destination.as_path()).collect();
    let mut out: Vec<Mount> = defaults
        .into_iter()
        .filter(|m| !overridden.contains(m.destination().as_path()))
        .collect();
    for b in binds {
        let rw = if b.readonly { "ro" } else { "rw" };
        out.push(
            MountBuilder::default()
                .destination(b.destination.clone())
                .typ("bind")
                .source(b.source.clone())
                // rprivate by default: mounts made later on the host do not leak
                // into the container (and vice versa), as CRI does.
                .options(vec![
                    "rbind".to_string(),
                    b.propagation.option().to_string(),
                    rw.to_string(),
                ])
                .build()
                .map_err(build_err("mounts"))?,
        );
    }
    Ok(out)
}

/// `linux.resources`: the device rules and the cgroup limits.
fn resources(
    r: &Resources,
    privileged: bool,
) -> Result<oci_spec::runtime::LinuxResources, OciError> {
    let mut b = LinuxResourcesBuilder::default().devices(device_rules(privileged)?);
    if r.cpu_shares.is_some() || r.cpu_quota.is_some() || r.cpu_period.is_some() {
        let mut cpu = LinuxCpuBuilder::default();
        if let Some(v) = r.cpu_shares {
            cpu = cpu.shares(v);
        }
        if let Some(v) = r.cpu_quota {
            cpu = cpu.quota(v);
        }
        if let Some(v) = r.cpu_period {
            cpu = cpu.period(v);
        }
        b = b.cpu(cpu.build().map_err(build_err("linux.resources.cpu"))?);
    }
    if let Some(limit) = r.memory_limit {
        let mem = LinuxMemoryBuilder::default()
            .limit(limit)
            .build()
            .map_err(build_err("linux.resources.memory"))?;
        b = b.memory(mem);
    }
    if let Some(limit) = r.pids_limit {
        let pids = LinuxPidsBuilder::default()
            .limit(limit)
            .build()
            .map_err(build_err("linux.resources.pids"))?;
        b = b.pids(pids);
    }
    b.build().map_err(build_err("linux.resources"))
}

/// Device cgroup: deny everything, then allow the default device nodes
/// (null, zero, full, random, urandom, tty, ptmx and the pty slaves), which
/// is runc/containerd's default allow list.
fn device_rules(privileged: bool) -> Result<Vec<LinuxDeviceCgroup>, OciError> {
    let rule =
        |allow: bool, typ: Option<LinuxDeviceType>, major: Option<i64>, minor: Option<i64>| {
            let mut b = LinuxDeviceCgroupBuilder::default()
                .allow(allow)
                .access("rwm");
            if let Some(t) = typ {
                b = b.typ(t);
            }
            if let Some(m) = major {
                b = b.major(m);
            }
            if let Some(m) = minor {
                b = b.minor(m);
            }
            b.build().map_err(build_err("linux.resources.devices"))
        };
    if privileged {
        return Ok(vec![rule(true, None, None, None)?]);
    }
    let c = Some(LinuxDeviceType::C);
    let mut rules = vec![rule(false, None, None, None)?];
    for (major, minor) in [
        (1, Some(3)), // null
        (1, Some(5)), // zero
        (1, Some(7)), // full
        (1, Some(8)), // random
        (1, Some(9)), // urandom
        (5, Some(0)), // tty
        (5, Some(2)), // ptmx
        (136, None),  // /dev/pts/*
    ] {
        rules.push(rule(true, c, Some(major), minor)?);
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ContainerParams {
        ContainerParams {
            rootfs: "/var/lib/podhost/rootfs/c1".into(),
            args: vec!["sh".into(), "-c".into(), "echo hi".into()],
            env: vec!["FOO=bar".into(), "PATH=/bin".into()],
            cwd: "/work".into(),
            uid: 1000,
            gid: 1001,
            additional_gids: vec![10, 20],
            namespaces: PodNamespaces {
                net: Some("/proc/42/ns/net".into()),
                ipc: Some("/proc/42/ns/ipc".into()),
                uts: Some("/proc/42/ns/uts".into()),
                pid: None,
                host_pid: false,
            },
            mounts: vec![
                BindMount {
                    source: "/run/podhost/pod1/hosts".into(),
                    destination: "/etc/hosts".into(),
                    readonly: true,
                    ..Default::default()
                },
                BindMount {
                    source: "/run/podhost/pod1/shm".into(),
                    destination: "/dev/shm".into(),
                    readonly: false,
                    propagation: Propagation::Slave,
                },
            ],
            cgroups_path: "/podhost/pod1/c1".into(),
            readonly_rootfs: true,
            terminal: false,
            ..Default::default()
        }
    }

    fn ns_of(spec: &Spec) -> Vec<(LinuxNamespaceType, Option<PathBuf>)> {
        spec.linux()
            .as_ref()
            .unwrap()
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| (n.typ(), n.path().clone()))
            .collect()
    }

    #[test]
    fn process_fields() {
        let spec = container_spec(&params()).unwrap();
        let proc = spec.process().as_ref().unwrap();
        assert_eq!(proc.args().as_ref().unwrap(), &params().args);
        assert_eq!(proc.cwd(), &PathBuf::from("/work"));
        assert_eq!(proc.user().uid(), 1000);
        assert_eq!(proc.user().gid(), 1001);
        assert_eq!(
            proc.user().additional_gids().as_ref().unwrap(),
            &vec![10, 20]
        );
        assert_eq!(proc.terminal(), Some(false));
        // Caller's PATH replaces the default one; order otherwise preserved.
        assert_eq!(
            proc.env().as_ref().unwrap(),
            &vec!["FOO=bar".to_string(), "PATH=/bin".to_string()]
        );
        assert!(proc.rlimits().is_none());
        assert!(proc.oom_score_adj().is_none());
        assert_eq!(spec.hostname(), &None);
        assert_eq!(spec.version(), OCI_VERSION);
        let root = spec.root().as_ref().unwrap();
        assert_eq!(root.path(), &PathBuf::from("/var/lib/podhost/rootfs/c1"));
        assert_eq!(root.readonly(), Some(true));
        assert_eq!(
            spec.linux().as_ref().unwrap().cgroups_path(),
            &Some(PathBuf::from("/podhost/pod1/c1"))
        );
    }

    #[test]
    fn default_env_and_terminal() {
        let mut p = params();
        p.env = vec![];
        p.terminal = true;
        let spec = container_spec(&p).unwrap();
        let proc = spec.process().as_ref().unwrap();
        assert_eq!(
            proc.env().as_ref().unwrap(),
            &vec![DEFAULT_PATH_ENV.to_string(), "TERM=xterm".to_string()]
        );
        assert_eq!(proc.terminal(), Some(true));
    }

    #[test]
    fn capabilities_are_containerd_defaults() {
        let spec = container_spec(&params()).unwrap();
        let caps = spec
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .as_ref()
            .unwrap();
        let want: HashSet<Capability> = DEFAULT_CAPABILITIES.into_iter().collect();
        assert_eq!(want.len(), 14);
        assert_eq!(caps.bounding().as_ref().unwrap(), &want);
        assert_eq!(caps.effective().as_ref().unwrap(), &want);
        assert_eq!(caps.permitted().as_ref().unwrap(), &want);
        assert!(caps.ambient().is_none());
        assert!(caps.inheritable().is_none());
        assert!(!want.contains(&Capability::SysAdmin));
    }

    #[test]
    fn joins_pod_namespaces_new_mount_and_pid() {
        let spec = container_spec(&params()).unwrap();
        let ns = ns_of(&spec);
        assert_eq!(
            ns,
            vec![
                (LinuxNamespaceType::Mount, None),
                (LinuxNamespaceType::Pid, None),
                (LinuxNamespaceType::Network, Some("/proc/42/ns/net".into())),
                (LinuxNamespaceType::Ipc, Some("/proc/42/ns/ipc".into())),
                (LinuxNamespaceType::Uts, Some("/proc/42/ns/uts".into())),
            ]
        );
    }

    #[test]
    fn shared_pid_namespace_and_host_namespaces() {
        let mut p = params();
        p.namespaces = PodNamespaces {
            pid: Some("/proc/7/ns/pid".into()),
            ..Default::default()
        };
        let spec = container_spec(&p).unwrap();
        assert_eq!(
            ns_of(&spec),
            vec![
                (LinuxNamespaceType::Mount, None),
                (LinuxNamespaceType::Pid, Some("/proc/7/ns/pid".into())),
            ]
        );
        // No UTS namespace of its own: setting a hostname would rename the host.
        assert_eq!(spec.hostname(), &None);
    }

    #[test]
    fn mounts_defaults_and_binds() {
        let spec = container_spec(&params()).unwrap();
        let mounts = spec.mounts().as_ref().unwrap();
        let dests: Vec<_> = mounts
            .iter()
            .map(|m| m.destination().to_str().unwrap().to_string())
            .collect();
        assert_eq!(
            dests,
            vec![
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup",
                "/etc/hosts",
                "/dev/shm"
            ]
        );
        let sys = &mounts[4];
        assert!(sys.options().as_ref().unwrap().contains(&"ro".to_string()));
        let cg = &mounts[5];
        assert_eq!(cg.typ().as_deref(), Some("cgroup"));
        assert!(cg.options().as_ref().unwrap().contains(&"ro".to_string()));
        let hosts = &mounts[6];
        assert_eq!(hosts.typ().as_deref(), Some("bind"));
        assert_eq!(
            hosts.source().as_ref().unwrap(),
            &PathBuf::from("/run/podhost/pod1/hosts")
        );
        assert_eq!(
            hosts.options().as_ref().unwrap(),
            &vec!["rbind".to_string(), "rprivate".into(), "ro".into()]
        );
        assert_eq!(
            mounts[7].options().as_ref().unwrap(),
            &vec!["rbind".to_string(), "rslave".into(), "rw".into()],
            "propagation becomes the mount option"
        );
    }

    #[test]
    fn a_shared_mount_makes_the_root_shared() {
        let spec = container_spec(&params()).unwrap();
        assert_eq!(spec.linux().as_ref().unwrap().rootfs_propagation(), &None);
        let mut p = params();
        p.mounts.push(BindMount {
            source: "/srv/shared".into(),
            destination: "/shared".into(),
            readonly: false,
            propagation: Propagation::Shared,
        });
        let spec = container_spec(&p).unwrap();
        assert_eq!(
            spec.linux()
                .as_ref()
                .unwrap()
                .rootfs_propagation()
                .as_deref(),
            Some("shared")
        );
    }

    #[test]
    fn default_shm_without_pod_shm() {
        let mut p = params();
        p.mounts.clear();
        let spec = container_spec(&p).unwrap();
        let shm = spec
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.destination() == Path::new("/dev/shm"))
            .unwrap();
        assert_eq!(shm.typ().as_deref(), Some("tmpfs"));
    }

    #[test]
    fn masked_readonly_and_devices() {
        let spec = container_spec(&params()).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        let masked = linux.masked_paths().as_ref().unwrap();
        assert!(masked.contains(&"/proc/kcore".to_string()));
        assert!(masked.contains(&"/sys/firmware".to_string()));
        let ro = linux.readonly_paths().as_ref().unwrap();
        assert!(ro.contains(&"/proc/sys".to_string()));
        assert!(ro.contains(&"/proc/sysrq-trigger".to_string()));
        let devs = linux
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .as_ref()
            .unwrap();
        assert!(!devs[0].allow());
        assert_eq!(devs[0].typ(), None);
        let allowed: Vec<(i64, Option<i64>)> = devs[1..]
            .iter()
            .map(|d| {
                assert!(d.allow());
                assert_eq!(d.typ(), Some(LinuxDeviceType::C));
                (d.major().unwrap(), d.minor())
            })
            .collect();
        for dev in [
            (1, Some(3)),
            (1, Some(5)),
            (1, Some(7)),
            (1, Some(8)),
            (1, Some(9)),
            (5, Some(0)),
        ] {
            assert!(allowed.contains(&dev), "{dev:?} not allowed");
        }
    }

    #[test]
    fn rejects_bad_input() {
        let mut p = params();
        p.args.clear();
        assert!(matches!(container_spec(&p), Err(OciError::EmptyArgs)));
        let mut p = params();
        p.rootfs = "rootfs".into();
        assert!(matches!(
            container_spec(&p),
            Err(OciError::RelativeRootfs(_))
        ));
        let mut p = params();
        p.cwd = "work".into();
        assert!(matches!(container_spec(&p), Err(OciError::RelativeCwd(_))));
        let mut p = params();
        p.mounts[0].destination = "etc/hosts".into();
        assert!(matches!(
            container_spec(&p),
            Err(OciError::RelativeMountDestination(_))
        ));
        let mut p = params();
        p.env.push("NOEQUALS".into());
        assert!(matches!(container_spec(&p), Err(OciError::InvalidEnv(_))));
        let mut p = params();
        p.namespaces.net = Some("ns/net".into());
        let err = container_spec(&p).unwrap_err();
        assert!(err.to_string().contains("net namespace path"), "{err}");
    }

    #[test]
    fn resources_and_oom_score() {
        let mut p = params();
        p.resources = Resources {
            cpu_shares: Some(512),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            memory_limit: Some(32 << 20),
            pids_limit: Some(100),
        };
        p.oom_score_adj = Some(500);
        let spec = container_spec(&p).unwrap();
        let r = spec.linux().as_ref().unwrap().resources().clone().unwrap();
        let cpu = r.cpu().clone().unwrap();
        assert_eq!(cpu.shares(), Some(512));
        assert_eq!(cpu.quota(), Some(50_000));
        assert_eq!(cpu.period(), Some(100_000));
        assert_eq!(r.memory().unwrap().limit(), Some(32 << 20));
        assert_eq!(r.pids().unwrap().limit(), 100);
        assert_eq!(spec.process().as_ref().unwrap().oom_score_adj(), Some(500));
        // Nothing asked, nothing written: the kernel defaults stay.
        let spec = container_spec(&params()).unwrap();
        let r = spec.linux().as_ref().unwrap().resources().clone().unwrap();
        assert!(r.cpu().is_none() && r.memory().is_none() && r.pids().is_none());
    }

    #[test]
    fn security_context() {
        let mut p = params();
        p.security.no_new_privileges = true;
        p.security.seccomp = Seccomp::RuntimeDefault;
        p.security.cap_drop = vec!["ALL".into()];
        p.security
            .sysctls
            .insert("net.ipv4.ip_forward".into(), "1".into());
        let spec = container_spec(&p).unwrap();
        let proc = spec.process().as_ref().unwrap();
        assert_eq!(proc.no_new_privileges(), Some(true));
        let caps = proc.capabilities().as_ref().unwrap();
        assert!(caps.effective().as_ref().unwrap().is_empty());
        let linux = spec.linux().as_ref().unwrap();
        assert!(linux.seccomp().is_some());
        assert_eq!(
            linux.sysctl().as_ref().unwrap().get("net.ipv4.ip_forward"),
            Some(&"1".to_string())
        );
        // Default: no no_new_privs field at all (see container_spec), no seccomp.
        let spec = container_spec(&params()).unwrap();
        assert_eq!(spec.process().as_ref().unwrap().no_new_privileges(), None);
        assert!(spec.linux().as_ref().unwrap().seccomp().is_none());
    }

    #[test]
    fn given_masked_and_readonly_lists_replace_the_defaults() {
        let mut p = params();
        p.security.masked_paths = Some(vec!["/bin/ls".into()]);
        p.security.readonly_paths = Some(vec!["/tmp".into()]);
        let spec = container_spec(&p).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        assert_eq!(
            linux.masked_paths().as_deref(),
            Some(&["/bin/ls".to_string()][..])
        );
        // The cgroupfs stays read-only whatever list a caller gives.
        let mut readonly = vec!["/tmp".to_string()];
        readonly.extend(p.cgroupfs.readonly_paths());
        assert_eq!(linux.readonly_paths().as_deref(), Some(&readonly[..]));
        // Privileged still means unmasked, whatever the lists say.
        p.security.privileged = true;
        let spec = container_spec(&p).unwrap();
        assert!(spec
            .linux()
            .as_ref()
            .unwrap()
            .masked_paths()
            .as_ref()
            .unwrap()
            .is_empty());
    }

    #[test]
    fn privileged_unmasks_and_allows_devices() {
        let mut p = params();
        p.security.privileged = true;
        p.security.seccomp = Seccomp::RuntimeDefault;
        let spec = container_spec(&p).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        assert!(linux.masked_paths().as_ref().unwrap().is_empty());
        assert!(linux.seccomp().is_none());
        let devs = linux
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .clone()
            .unwrap();
        assert_eq!(devs.len(), 1);
        assert!(devs[0].allow());
        let caps = spec
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .clone()
            .unwrap();
        assert!(caps
            .effective()
            .as_ref()
            .unwrap()
            .contains(&Capability::SysAdmin));
        let sys = spec
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.destination() == Path::new("/sys"))
            .unwrap();
        assert!(!sys.options().as_ref().unwrap().contains(&"ro".to_string()));
    }

    fn readonly_of(spec: &Spec) -> Vec<String> {
        spec.linux()
            .as_ref()
            .unwrap()
            .readonly_paths()
            .clone()
            .unwrap_or_default()
    }

    fn cgroup_mount_options(spec: &Spec) -> Vec<String> {
        spec.mounts()
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.destination() == Path::new("/sys/fs/cgroup"))
            .and_then(|m| m.options().clone())
            .unwrap()
    }

    #[test]
    fn v2_private_cgroup_namespace_and_read_only_cgroupfs() {
        let mut p = params();
        p.cgroupfs = cgroup::CgroupFs::V2;
        let spec = container_spec(&p).unwrap();
        assert!(ns_of(&spec).contains(&(LinuxNamespaceType::Cgroup, None)));
        assert!(cgroup_mount_options(&spec).contains(&"ro".to_string()));
        let ro = readonly_of(&spec);
        assert!(ro.contains(&"/sys/fs/cgroup".to_string()), "{ro:?}");
        assert!(ro.contains(&"/proc/sys".to_string()), "{ro:?}");
    }

    #[test]
    fn v1_every_hierarchy_read_only_and_no_cgroup_namespace() {
        let mut p = params();
        p.cgroupfs = cgroup::CgroupFs::V1(vec!["memory".into(), "systemd".into()]);
        let spec = container_spec(&p).unwrap();
        assert!(!ns_of(&spec)
            .iter()
            .any(|(t, _)| *t == LinuxNamespaceType::Cgroup));
        let ro = readonly_of(&spec);
        for path in [
            "/sys/fs/cgroup",
            "/sys/fs/cgroup/memory",
            "/sys/fs/cgroup/systemd",
        ] {
            assert!(ro.contains(&path.to_string()), "{path} in {ro:?}");
        }
        // procMount: Unmasked opens /proc, never the cgroupfs.
        p.security.unmasked_proc = true;
        let ro = readonly_of(&container_spec(&p).unwrap());
        assert_eq!(
            ro,
            vec![
                "/sys/fs/cgroup",
                "/sys/fs/cgroup/memory",
                "/sys/fs/cgroup/systemd"
            ]
        );
    }

    #[test]
    fn privileged_sees_the_host_cgroupfs_writable() {
        for fs in [
            cgroup::CgroupFs::V2,
            cgroup::CgroupFs::V1(vec!["memory".into(), "systemd".into()]),
        ] {
            let mut p = params();
            p.cgroupfs = fs;
            p.security.privileged = true;
            let spec = container_spec(&p).unwrap();
            assert!(!ns_of(&spec)
                .iter()
                .any(|(t, _)| *t == LinuxNamespaceType::Cgroup));
            assert!(readonly_of(&spec).is_empty());
            assert!(!cgroup_mount_options(&spec).contains(&"ro".to_string()));
        }
    }

    #[test]
    fn write_bundle_round_trip() {
        let dir = std::env::temp_dir().join(format!(
            "podhost-oci-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let bundle = dir.join("bundle");
        let spec = container_spec(&params()).unwrap();
        write_bundle(&bundle, &spec).unwrap();
        // Overwriting an existing bundle works too (rename replaces).
        write_bundle(&bundle, &spec).unwrap();
        let loaded = Spec::load(bundle.join("config.json")).unwrap();
        assert_eq!(loaded, spec);
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&bundle.join("config.json")), 0o600);
        assert_eq!(mode(&bundle), 0o700);
        let raw = fs::read_to_string(bundle.join("config.json")).unwrap();
        assert!(!raw.contains("\"hostname\""));
        assert!(!bundle.join(".config.json.tmp").exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
