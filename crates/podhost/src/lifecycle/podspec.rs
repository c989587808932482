//! Turning a Pod's container into what the runtime runs: env, mounts, log path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::runtime::{ContainerConfig, Mount, SandboxConfig};

/// Why a container's config could not be made (kubelet's CreateContainerConfigError).
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
}

/// The sandbox config for a pod.
pub fn sandbox_config(pod: &Pod, attempt: u32, log_root: &Path) -> SandboxConfig {
    let meta = &pod.metadata;
    let name = meta.name.clone().unwrap_or_default();
    let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
    let uid = meta.uid.clone().unwrap_or_default();
    let spec = pod.spec.as_ref();
    SandboxConfig {
        hostname: spec
            .and_then(|s| s.hostname.clone())
            .unwrap_or_else(|| name.clone()),
        share_pid: spec
            .and_then(|s| s.share_process_namespace)
            .unwrap_or(false),
        log_directory: log_root.join(format!("{namespace}_{name}_{uid}")),
        labels: meta.labels.clone().unwrap_or_default(),
        linux: super::resources::pod_linux(pod),
        name,
        namespace,
        uid,
        attempt,
    }
}

/// Host directory of a pod's emptyDir volume.
pub fn empty_dir_path(volumes_root: &Path, volume: &str) -> PathBuf {
    volumes_root.join("empty-dir").join(volume)
}

/// Create the pod's emptyDir directories (mode 0777, like kubelet); `medium: Memory`
/// ones are tmpfs mounts (see [`super::resources::memory_volume_size`]).
pub fn prepare_volumes(pod: &Pod, volumes_root: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
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
            std::fs::create_dir_all(&path).map_err(io)?;
            let in_memory =
                v.empty_dir.as_ref().and_then(|e| e.medium.as_deref()) == Some("Memory");
            // A restarted sandbox finds the tmpfs still mounted (and its data kept, as
            // kubelet keeps emptyDirs for the pod's lifetime).
            if in_memory && !is_mount_point(&path) {
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
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).map_err(io)?;
        }
    }
    Ok(())
}

/// Unmount the pod's memory-backed emptyDirs (before its volume directory is removed).
pub fn unmount_volumes(pod: &Pod, volumes_root: &Path) {
    for v in pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
    {
        let path = empty_dir_path(volumes_root, &v.name);
        if v.empty_dir.is_some() && is_mount_point(&path) {
            if let Err(e) = nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH) {
                tracing::warn!("unmounting emptyDir {}: {e}", path.display());
            }
        }
    }
}

/// Whether `path` is the root of a mount (its device differs from its parent's).
fn is_mount_point(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (
        std::fs::metadata(path),
        path.parent().map(std::fs::metadata),
    ) {
        (Ok(m), Some(Ok(p))) => m.dev() != p.dev(),
        _ => false,
    }
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

/// Build the runtime config of `container` for its `attempt`.
pub fn container_config(
    pod: &Pod,
    container: &Container,
    attempt: u32,
    volumes_root: &Path,
) -> Result<ContainerConfig, ConfigError> {
    let meta = &pod.metadata;
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    let mut envs = Vec::new();
    for e in container.env.iter().flatten() {
        let value = if let Some(v) = &e.value {
            expand(v, &vars)
        } else if let Some(f) = e.value_from.as_ref().and_then(|vf| vf.field_ref.as_ref()) {
            match f.field_path.as_str() {
                "metadata.name" => meta.name.clone().unwrap_or_default(),
                "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
                "metadata.uid" => meta.uid.clone().unwrap_or_default(),
                "spec.nodeName" | "status.hostIP" => String::new(),
                _ => String::new(),
            }
        } else {
            String::new()
        };
        vars.insert(e.name.clone(), value.clone());
        envs.push((e.name.clone(), value));
    }
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    let mut mounts = Vec::new();
    for vm in container.volume_mounts.iter().flatten() {
        let vol = volumes.iter().find(|v| v.name == vm.name).ok_or_else(|| {
            ConfigError::NoSuchVolume {
                container: container.name.clone(),
                volume: vm.name.clone(),
            }
        })?;
        let mut host = if vol.empty_dir.is_some() {
            empty_dir_path(volumes_root, &vol.name)
        } else if let Some(hp) = &vol.host_path {
            PathBuf::from(&hp.path)
        } else {
            return Err(ConfigError::Unsupported {
                volume: vol.name.clone(),
            });
        };
        if let Some(sub) = vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
            host = host.join(sub);
            std::fs::create_dir_all(&host).map_err(|source| ConfigError::Io {
                volume: vol.name.clone(),
                path: host.clone(),
                source,
            })?;
        }
        mounts.push(Mount {
            host_path: host,
            container_path: vm.mount_path.clone(),
            readonly: vm.read_only.unwrap_or(false),
        });
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
        command: container
            .command
            .iter()
            .flatten()
            .map(|c| expand(c, &vars))
            .collect(),
        args: container
            .args
            .iter()
            .flatten()
            .map(|c| expand(c, &vars))
            .collect(),
        working_dir: container.working_dir.clone().filter(|w| !w.is_empty()),
        envs,
        mounts,
        log_path: format!("{}/{}.log", container.name, attempt),
        labels,
        linux: super::resources::container_linux(pod, container),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_like_kubernetes() {
        let mut v = BTreeMap::new();
        v.insert("A".to_string(), "x".to_string());
        assert_eq!(expand("$(A)-$(B)-$$(A)-$", &v), "x-$(B)-$(A)-$");
    }
}
