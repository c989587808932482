//! Turning a Pod's container into what the runtime runs: env, mounts, log path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::runtime::{ContainerConfig, DnsConfig, HostAlias, Mount, PortMapping, SandboxConfig};

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
        log_directory: log_root.join(format!("{namespace}_{name}_{uid}")),
        labels: meta.labels.clone().unwrap_or_default(),
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

/// Create the pod's emptyDir directories (mode 0777, like kubelet).
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
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).map_err(io)?;
        }
    }
    Ok(())
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
