//! Turning a Pod's container into what the runtime runs: env, mounts, log path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod, VolumeMount};

use super::env::{resolve_env, PodFacts};
use super::subpath::{self, ReleaseError, SubPathError};
use super::volumes;
use crate::objects::Objects;
use podhost_runtime::{
    ContainerConfig, DnsConfig, HostAlias, Mount, Owner, PortMapping, Propagation, SandboxConfig,
    Sensitive,
};

/// Why a container's config could not be made (kubelet's CreateContainerConfigError).
///
/// The messages of missing objects and keys are kubelet's own, word for word.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A volumeMount names a volume the pod does not have (validation should catch it).
    #[error("container {container}: volumeMount {volume:?} names no volume of the pod")]
    NoSuchVolume {
        /// Container name.
        container: String,
        /// Volume name.
        volume: String,
    },
    /// A volume type podhost cannot provide.
    #[error("volume {volume:?}: type not supported")]
    Unsupported {
        /// Volume name.
        volume: String,
    },
    /// Creating a volume directory failed.
    #[error("volume {volume:?} at {path}: {source}")]
    Io {
        /// Volume name.
        volume: String,
        /// Its host path.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A ConfigMap the pod needs does not exist.
    #[error("configmap {name:?} not found")]
    ConfigMapNotFound {
        /// Its name.
        name: String,
    },
    /// A Secret the pod needs does not exist.
    #[error("secret {name:?} not found")]
    SecretNotFound {
        /// Its name.
        name: String,
    },
    /// A key an env var needs is not in its ConfigMap or Secret.
    #[error("couldn't find key {key} in {kind} {namespace}/{name}")]
    KeyNotFound {
        /// The key.
        key: String,
        /// `ConfigMap` or `Secret`.
        kind: &'static str,
        /// The object's namespace.
        namespace: String,
        /// The object's name.
        name: String,
    },
    /// A key a volume's `items` lists is not in its object.
    #[error("{kind} references non-existent {} key: {key}", if *.kind == "secret" { "secret" } else { "config" })]
    MissingVolumeKey {
        /// `configmap` or `secret`.
        kind: &'static str,
        /// The key.
        key: String,
    },
    /// Setting up a volume failed.
    #[error("MountVolume.SetUp failed for volume {volume:?} : {source}")]
    VolumeSetup {
        /// Volume name.
        volume: String,
        /// Why.
        #[source]
        source: Box<ConfigError>,
    },
    /// A hostPath is not of its declared `type`.
    #[error("{message}")]
    HostPathType {
        /// The host path.
        path: PathBuf,
        /// kubelet's wording (`hostPath type check failed: /x is not a directory`).
        message: String,
    },
    /// A `DirectoryOrCreate` or `FileOrCreate` hostPath could not be created.
    #[error("hostPath {path}: creating: {source}")]
    HostPathCreate {
        /// The host path.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A fieldRef path podhost does not know (validation should catch it).
    #[error("unsupported fieldPath: {field}")]
    UnsupportedField {
        /// The fieldPath.
        field: String,
    },
    /// A resourceFieldRef resource podhost does not know.
    #[error("unsupported container resource : {resource:?}")]
    UnsupportedResource {
        /// The resource (`limits.cpu` …).
        resource: String,
    },
    /// A resourceFieldRef names a container the pod does not have.
    #[error("container {container:?} not found in the pod")]
    NoSuchContainer {
        /// The container name.
        container: String,
    },
    /// A quantity could not be read.
    #[error("quantity {quantity:?}: {message}")]
    Quantity {
        /// The quantity.
        quantity: String,
        /// Why.
        message: String,
    },
    /// A subPath or expanded subPathExpr could not be mounted from inside its volume.
    #[error("container {container}: volumeMount {volume:?}: {source}")]
    SubPath {
        /// Container name.
        container: String,
        /// Volume name.
        volume: String,
        /// What is wrong with it.
        #[source]
        source: SubPathError,
    },
    /// The subPath mounts of the container's previous attempt could not be taken away.
    #[error("container {container}: {source}")]
    SubPathRelease {
        /// Container name.
        container: String,
        /// What stayed.
        #[source]
        source: ReleaseError,
    },
}

/// What the config of a container needs besides the pod.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// `<volumes_dir>/<uid>`: the pod's volume directories.
    pub volumes_root: &'a Path,
    /// ConfigMaps and Secrets.
    pub objects: &'a Objects,
    /// Pod IP, host IP, node capacity.
    pub facts: &'a PodFacts,
}

/// The sandbox config for a pod.
pub fn sandbox_config(pod: &Pod, attempt: u32, log_root: &Path) -> SandboxConfig {
    let meta = &pod.metadata;
    let name = meta.name.clone().unwrap_or_default();
    let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
    let uid = meta.uid.clone().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    SandboxConfig {
        // UTS follows NET: a hostNetwork pod sees the node's hostname.
        hostname: match host_network {
            true => nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| name.clone()),
            false => spec
                .and_then(|s| s.hostname.clone())
                .unwrap_or_else(|| name.clone()),
        },
        host_network,
        port_mappings: spec.map(port_mappings).unwrap_or_default(),
        dns: spec.and_then(dns_config),
        host_aliases: spec
            .and_then(|s| s.host_aliases.as_ref())
            .into_iter()
            .flatten()
            .map(|a| HostAlias {
                ip: a.ip.clone(),
                hostnames: a.hostnames.clone().unwrap_or_default(),
            })
            .collect(),
        share_pid: spec
            .and_then(|s| s.share_process_namespace)
            .unwrap_or(false),
        // Stamped by the runtime view the lifecycle drives (podhost's own).
        owner: Owner::Podhost,
        log_directory: log_root.join(format!("{namespace}_{name}_{uid}")),
        labels: meta.labels.clone().unwrap_or_default(),
        annotations: Default::default(),
        linux: super::resources::pod_linux(pod),
        name,
        namespace,
        uid,
        attempt,
    }
}

/// The `hostPort`s of every container (init ones too), as kubelet passes them to CRI.
/// hostNetwork pods publish nothing: their ports are the host's already.
fn port_mappings(spec: &k8s_openapi::api::core::v1::PodSpec) -> Vec<PortMapping> {
    if spec.host_network == Some(true) {
        return Vec::new();
    }
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let host_port = u16::try_from(p.host_port?).ok().filter(|&h| h != 0)?;
            Some(PortMapping {
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                container_port: u16::try_from(p.container_port).ok()?,
                host_port,
                host_ip: p.host_ip.clone().unwrap_or_default(),
            })
        })
        .collect()
}

/// resolv.conf settings from `dnsPolicy` and `dnsConfig` (kubelet's `GetPodDNS`). There is
/// no cluster DNS here, so ClusterFirst falls back to the host's file, as kubelet does
/// without `--cluster-dns`; `dnsConfig` is merged in; policy None uses it alone.
fn dns_config(spec: &k8s_openapi::api::core::v1::PodSpec) -> Option<DnsConfig> {
    let none = spec.dns_policy.as_deref() == Some("None");
    let c = spec.dns_config.as_ref();
    if c.is_none() && !none {
        return None;
    }
    Some(DnsConfig {
        replace_host: none,
        servers: c.and_then(|c| c.nameservers.clone()).unwrap_or_default(),
        searches: c.and_then(|c| c.searches.clone()).unwrap_or_default(),
        options: c
            .and_then(|c| c.options.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|o| {
                let name = o.name.clone()?;
                Some(match &o.value {
                    Some(v) => format!("{name}:{v}"),
                    None => name,
                })
            })
            .collect(),
    })
}

/// Host directory of a pod's emptyDir volume.
pub fn empty_dir_path(volumes_root: &Path, volume: &str) -> PathBuf {
    volumes_root.join("empty-dir").join(volume)
}

/// The host side of the `index`-th volumeMount: the volume set up, then its subPath
/// resolved inside it and bind mounted at a private point (see [`subpath`]).
fn mount_for(
    pod: &Pod,
    container: &Container,
    index: usize,
    vm: &VolumeMount,
    vars: &BTreeMap<String, String>,
    inputs: &Inputs<'_>,
) -> Result<Mount, ConfigError> {
    let vol = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .and_then(|vs| vs.iter().find(|v| v.name == vm.name))
        .ok_or_else(|| ConfigError::NoSuchVolume {
            container: container.name.clone(),
            volume: vm.name.clone(),
        })?;
    let mut readonly = vm.read_only.unwrap_or(false);
    let base = if vol.empty_dir.is_some() {
        empty_dir_path(inputs.volumes_root, &vol.name)
    } else if let Some(hp) = &vol.host_path {
        let path = PathBuf::from(&hp.path);
        volumes::check_host_path(&path, hp.type_.as_deref().unwrap_or_default()).map_err(|e| {
            ConfigError::VolumeSetup {
                volume: vol.name.clone(),
                source: Box::new(e),
            }
        })?;
        path
    } else if let Some(dir) =
        volumes::setup(pod, vol, inputs.volumes_root, inputs.objects, inputs.facts)?
    {
        // API data is read-only in the container, as on a kubelet.
        readonly = true;
        dir
    } else {
        return Err(ConfigError::Unsupported {
            volume: vol.name.clone(),
        });
    };
    let sub = match (&vm.sub_path, &vm.sub_path_expr) {
        (Some(p), _) if !p.is_empty() => Some(p.clone()),
        (_, Some(e)) if !e.is_empty() => Some(expand(e, vars)),
        _ => None,
    };
    let host_path = match sub {
        Some(sub) => {
            let target = subpath::target(inputs.volumes_root, &vol.name, &container.name, index);
            subpath::check_name(&sub, &vol.name)
                .and_then(|()| subpath::check_name(&sub, &container.name))
                .and_then(|()| subpath::bind(&base, &sub, &target))
                .map_err(|source| ConfigError::SubPath {
                    container: container.name.clone(),
                    volume: vol.name.clone(),
                    source,
                })?;
            target
        }
        None => base,
    };
    let propagation = match vm.mount_propagation.as_deref() {
        Some("HostToContainer") => Propagation::HostToContainer,
        Some("Bidirectional") => Propagation::Bidirectional,
        _ => Propagation::Private,
    };
    Ok(Mount {
        host_path,
        container_path: vm.mount_path.clone(),
        readonly,
        propagation,
    })
}

/// Create the pod's emptyDir directories (mode 0777, like kubelet); `medium: Memory`
/// ones are tmpfs mounts (see [`super::resources::memory_volume_size`]). With an
/// fsGroup they are group-owned by it, setgid and group-writable.
pub fn prepare_volumes(pod: &Pod, volumes_root: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let group = volumes::fs_group(pod);
    for v in pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
    {
        if v.empty_dir.is_some() {
            let path = empty_dir_path(volumes_root, &v.name);
            let io = |source| ConfigError::Io {
                volume: v.name.clone(),
                path: path.clone(),
                source,
            };
            // 0700 parents (`<volumes>/<uid>/empty-dir`): a host user must not reach
            // what the pod keeps here; the volume itself is 0777 below.
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(crate::store::PRIVATE_DIR_MODE)
                .create(&path)
                .map_err(io)?;
            let in_memory =
                v.empty_dir.as_ref().and_then(|e| e.medium.as_deref()) == Some("Memory");
            // A restarted sandbox finds the tmpfs still mounted (and its data kept, as
            // kubelet keeps emptyDirs for the pod's lifetime).
            if in_memory && !volumes::is_mount_point(&path) {
                let size = super::resources::memory_volume_size(pod, v);
                nix::mount::mount(
                    Some("tmpfs"),
                    &path,
                    Some("tmpfs"),
                    nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
                    Some(format!("mode=0777,size={size}").as_str()),
                )
                .map_err(|e| io(std::io::Error::from(e)))?;
            }
            // Only the permission bits, like kubelet: an fsGroup's setgid bit stays.
            let mode = std::fs::metadata(&path).map_err(io)?.permissions().mode();
            if mode & 0o777 != 0o777 {
                std::fs::set_permissions(
                    &path,
                    std::fs::Permissions::from_mode((mode & !0o777) | 0o777),
                )
                .map_err(io)?;
            }
            if let Some(g) = group {
                volumes::set_volume_ownership(&path, g.gid, false, g.on_root_mismatch)
                    .map_err(io)?;
            }
        }
    }
    Ok(())
}

/// Unmount everything mounted in the pod's volume directory (memory-backed emptyDirs,
/// secret and projected tmpfs, subPath mount points) before the directory is removed.
/// The mount table, not the spec, says what is mounted, so a crash between mount and
/// record leaves nothing. False when something stays mounted: the tree must then not
/// be removed (a subPath of a hostPath volume would be removed through its mount).
///
/// A pod whose spec can have put no mount there is not looked up: the mount table lists
/// every mount of the machine (each pod's rootfs, shm, netns …), and reading it for each
/// of hundreds of pods deleted together made the delete quadratic.
pub fn unmount_volumes(pod: &Pod, volumes_root: &Path) -> bool {
    !volumes_may_hold_mounts(pod) || volumes::unmount_all_under(volumes_root).is_empty()
}

/// Whether anything can be mounted under the pod's volume directory. Only podhost mounts
/// there (tmpfs for memory-backed emptyDirs and secret/projected volumes, subPath
/// binds) and, through Bidirectional propagation, a container; a container's own mounts
/// otherwise stay in its mount namespace. Volume kinds not known to be mount-free count
/// as mounted, so a new kind errs on the side of looking.
pub fn volumes_may_hold_mounts(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    let plain = |v: &k8s_openapi::api::core::v1::Volume| {
        let disk_empty_dir = v
            .empty_dir
            .as_ref()
            .is_some_and(|e| e.medium.as_deref() != Some("Memory"));
        let written_to_disk =
            (v.config_map.is_some() || v.downward_api.is_some()) && !volumes::on_tmpfs(v);
        disk_empty_dir || v.host_path.is_some() || written_to_disk
    };
    let mounts_anything = |m: &k8s_openapi::api::core::v1::VolumeMount| {
        m.sub_path.as_deref().is_some_and(|p| !p.is_empty())
            || m.sub_path_expr.as_deref().is_some_and(|p| !p.is_empty())
            || m.mount_propagation.as_deref() == Some("Bidirectional")
    };
    let mounts = podhost_api::all_containers(spec)
        .iter()
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .any(mounts_anything);
    mounts || !spec.volumes.iter().flatten().all(plain)
}

/// Expand `$(VAR)` references from `vars` as Kubernetes does (`$$` escapes; unknown stays).
pub fn expand(s: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(end) => {
                    let name = &body[..end];
                    match vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &body[end + 1..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Build the runtime config of `container` for its `attempt`: env resolved, volumes set
/// up (hostPath checked, API-data volumes written), mounts with their subPaths.
pub fn container_config(
    pod: &Pod,
    container: &Container,
    attempt: u32,
    inputs: &Inputs<'_>,
) -> Result<ContainerConfig, ConfigError> {
    let meta = &pod.metadata;
    let envs = resolve_env(pod, container, inputs.objects, inputs.facts)?;
    // command, args and subPathExpr see the whole environment (kubelet's final env map).
    let vars: BTreeMap<String, String> = envs.iter().cloned().collect();
    // An earlier attempt's subPath mounts are resolved afresh: the volume may have
    // changed since (and they must not stack).
    let release = || {
        subpath::release_container(inputs.volumes_root, &container.name).map_err(|source| {
            ConfigError::SubPathRelease {
                container: container.name.clone(),
                source,
            }
        })
    };
    release()?;
    let mut mounts = Vec::new();
    for (index, vm) in container.volume_mounts.iter().flatten().enumerate() {
        match mount_for(pod, container, index, vm, &vars, inputs) {
            Ok(m) => mounts.push(m),
            Err(e) => {
                // Undo the subPath mounts made so far.
                if let Err(r) = release() {
                    tracing::warn!("{r}");
                }
                return Err(e);
            }
        }
    }
    let mut labels = BTreeMap::new();
    labels.insert(
        "io.kubernetes.container.name".to_string(),
        container.name.clone(),
    );
    labels.insert(
        "io.kubernetes.pod.name".to_string(),
        meta.name.clone().unwrap_or_default(),
    );
    labels.insert(
        "io.kubernetes.pod.namespace".to_string(),
        meta.namespace.clone().unwrap_or_default(),
    );
    labels.insert(
        "io.kubernetes.pod.uid".to_string(),
        meta.uid.clone().unwrap_or_default(),
    );
    Ok(ContainerConfig {
        name: container.name.clone(),
        attempt,
        image: container.image.clone().unwrap_or_default(),
        command: Sensitive(
            container
                .command
                .iter()
                .flatten()
                .map(|c| expand(c, &vars))
                .collect(),
        ),
        args: Sensitive(
            container
                .args
                .iter()
                .flatten()
                .map(|c| expand(c, &vars))
                .collect(),
        ),
        working_dir: container.working_dir.clone().filter(|w| !w.is_empty()),
        envs: Sensitive(envs),
        mounts,
        log_path: format!("{}/{}.log", container.name, attempt),
        labels,
        annotations: Default::default(),
        linux: super::resources::container_linux(pod, container),
        // Kubernetes' names: `podhost attach` (kubectl attach) needs them.
        tty: container.tty.unwrap_or(false),
        stdin: container.stdin.unwrap_or(false),
        stdin_once: container.stdin_once.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Pod {
        let podhost_api::Manifest::Pod(pod) = podhost_api::parse_manifests(text, "p")
            .expect("parses")
            .remove(0)
        else {
            panic!("not a pod")
        };
        *pod
    }

    /// The pod of `volumes` (YAML flow list) with container `mounts`.
    fn with(volumes: &str, mounts: &str) -> Pod {
        parsed(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - {{name: c, image: busybox, volumeMounts: {mounts}}}\n  volumes: {volumes}\n"
        ))
    }

    #[test]
    fn only_a_spec_that_can_mount_under_the_volumes_is_looked_up() {
        let plain = "[{name: a, emptyDir: {}}, {name: h, hostPath: {path: /tmp}}, {name: m, configMap: {name: x}}, {name: d, downwardAPI: {items: []}}]";
        let mounts = "[{name: a, mountPath: /a}, {name: h, mountPath: /h, mountPropagation: HostToContainer}]";
        assert!(!volumes_may_hold_mounts(&with(plain, mounts)));
        assert!(!volumes_may_hold_mounts(&with("[]", "[]")));
        for volumes in [
            "[{name: a, emptyDir: {medium: Memory}}]",
            "[{name: s, secret: {secretName: x}}]",
            "[{name: p, projected: {sources: []}}]",
            // A kind not known to be mount-free.
            "[{name: pvc, persistentVolumeClaim: {claimName: x}}]",
        ] {
            assert!(volumes_may_hold_mounts(&with(volumes, "[]")), "{volumes}");
        }
        for mounts in [
            "[{name: a, mountPath: /a, subPath: x}]",
            "[{name: a, mountPath: /a, subPathExpr: x}]",
            "[{name: h, mountPath: /h, mountPropagation: Bidirectional}]",
        ] {
            assert!(volumes_may_hold_mounts(&with(plain, mounts)), "{mounts}");
        }
        let mut debugged = with(plain, "[]");
        let ephemeral = parsed("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: c, image: busybox}\n  ephemeralContainers:\n  - {name: e, image: busybox, volumeMounts: [{name: a, mountPath: /a, subPath: x}]}\n");
        if let (Some(spec), Some(e)) = (debugged.spec.as_mut(), ephemeral.spec) {
            spec.ephemeral_containers = e.ephemeral_containers;
        }
        assert!(volumes_may_hold_mounts(&debugged));
    }

    // Runs as root (like the daemon): the subPath is bind mounted.
    #[test]
    fn command_args_and_sub_path_expr_see_the_whole_env() {
        if !nix::unistd::Uid::effective().is_root() {
            return;
        }
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: default}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    command: [echo, '$(GREETING)', '$(LATER)']\n    args: ['$(POD)', '$$(POD)', '$(NOPE)']\n    env:\n    - {name: GREETING, value: 'hi $(POD)'}\n    - name: POD\n      valueFrom: {fieldRef: {fieldPath: metadata.name}}\n    - {name: LATER, value: last}\n    volumeMounts:\n    - {name: logs, mountPath: /logs, subPathExpr: '$(POD)/$(LATER)'}\n  volumes:\n  - {name: logs, emptyDir: {}}\n";
        let podhost_api::Manifest::Pod(pod) = podhost_api::parse_manifests(text, "p")
            .expect("parses")
            .remove(0)
        else {
            panic!("not a pod")
        };
        let tmp = tempfile::tempdir().expect("tmp");
        // Dropped before the tempdir: nothing stays mounted if an assertion fails.
        struct Unmount<'a>(&'a Path);
        impl Drop for Unmount<'_> {
            fn drop(&mut self) {
                volumes::unmount_all_under(self.0);
            }
        }
        let _guard = Unmount(tmp.path());
        prepare_volumes(&pod, tmp.path()).expect("emptyDir");
        let objects = Objects::in_memory();
        let facts = PodFacts::default();
        let inputs = Inputs {
            volumes_root: tmp.path(),
            objects: &objects,
            facts: &facts,
        };
        let c = &pod.spec.as_ref().expect("spec").containers[0];
        let cfg = container_config(&pod, c, 0, &inputs).expect("config");
        // GREETING was expanded before POD existed; command and args see every variable.
        assert_eq!(*cfg.command, ["echo", "hi $(POD)", "last"]);
        assert_eq!(*cfg.args, ["p", "$(POD)", "$(NOPE)"]);
        // The expanded subPath was made in the volume and bound at the private point.
        let host = &cfg.mounts[0].host_path;
        assert_eq!(host, &subpath::target(tmp.path(), "logs", "c", 0));
        assert!(tmp.path().join("empty-dir/logs/p/last").is_dir());
        assert_eq!(volumes::mounts_under(host), std::slice::from_ref(host));
        subpath::release_container(tmp.path(), "c").expect("release");
        assert!(volumes::mounts_under(tmp.path()).is_empty());
    }

    #[test]
    fn expands_like_kubernetes() {
        let mut v = BTreeMap::new();
        v.insert("A".to_string(), "x".to_string());
        assert_eq!(expand("$(A)-$(B)-$$(A)-$", &v), "x-$(B)-$(A)-$");
    }
}
