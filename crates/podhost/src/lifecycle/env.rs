//! A container's environment as kubelet builds it (`makeEnvironmentVariables`):
//! `envFrom` sources first (later ones win), then `env` in order, each `value` expanded
//! with `$(VAR)` from the variables defined before it; `valueFrom` reads the pod's own
//! fields, its resources, ConfigMaps and Secrets.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, ObjectFieldSelector, Pod, ResourceFieldSelector, Secret,
};

use super::podspec::{expand, ConfigError};
use crate::objects::Objects;

/// Facts about the pod that are not in its spec: where it runs.
#[derive(Debug, Clone, Default)]
pub struct PodFacts {
    /// The pod's IP, once the sandbox has one.
    pub pod_ip: Option<String>,
    /// This machine's IP (`status.hostIP`).
    pub host_ip: String,
    /// Node allocatable CPU in millicores: the value of an unset `limits.cpu`.
    pub node_cpu_millis: i64,
    /// Node allocatable memory in bytes: the value of an unset `limits.memory`.
    pub node_memory_bytes: i64,
    /// Node ephemeral storage in bytes: the value of an unset `limits.ephemeral-storage`.
    pub node_storage_bytes: i64,
}

impl PodFacts {
    /// Facts of this machine, with the sandbox's IP when it has one.
    pub fn of_this_machine(pod_ip: Option<String>) -> Self {
        PodFacts {
            pod_ip,
            host_ip: node_ip().to_string(),
            node_cpu_millis: std::thread::available_parallelism()
                .map(|n| n.get() as i64 * 1000)
                .unwrap_or(1000),
            node_memory_bytes: mem_total(),
            node_storage_bytes: fs_total("/"),
        }
    }
}

/// The node's address, as every part of podhost reports it (`status.hostIP`, the
/// downward API, `describe`): found once per daemon, as kubelet finds its node IP at
/// start, so that one pod never shows two.
pub fn node_ip() -> &'static str {
    static IP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    IP.get_or_init(host_ip)
}

/// The machine's primary IPv4 address: the source address of its default route (a UDP
/// `connect` sends nothing), else loopback.
fn host_ip() -> String {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("192.0.2.1:9")?;
            s.local_addr()
        })
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| "127.0.0.1".into())
}

/// `MemTotal` of /proc/meminfo in bytes (0 when unreadable).
fn mem_total() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Size of the filesystem holding `path` in bytes (0 when unknown).
fn fs_total(path: &str) -> i64 {
    nix::sys::statvfs::statvfs(path)
        .map(|s| (s.blocks() as i64).saturating_mul(s.fragment_size() as i64))
        .unwrap_or(0)
}

/// The namespace of the pod (`default` when unset).
pub fn pod_namespace(pod: &Pod) -> String {
    pod.metadata
        .namespace
        .clone()
        .unwrap_or_else(|| podhost_api::DEFAULT_NAMESPACE.into())
}

/// A ConfigMap the pod refers to, or kubelet's error.
pub fn config_map(objects: &Objects, ns: &str, name: &str) -> Result<ConfigMap, ConfigError> {
    objects
        .config_map(ns, name)
        .ok_or_else(|| ConfigError::ConfigMapNotFound { name: name.into() })
}

/// A Secret the pod refers to, or kubelet's error.
pub fn secret(objects: &Objects, ns: &str, name: &str) -> Result<Secret, ConfigError> {
    objects
        .secret(ns, name)
        .ok_or_else(|| ConfigError::SecretNotFound { name: name.into() })
}

/// Every key of a ConfigMap with its value (`binaryData` as lossy UTF-8).
pub fn config_map_entries(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    for (k, v) in cm.binary_data.iter().flatten() {
        out.insert(k.clone(), v.0.clone());
    }
    out
}

/// Every key of a Secret with its bytes.
pub fn secret_entries(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    s.data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}

/// The value of a `fieldRef` (env and downward API files share it).
pub fn field_value(
    pod: &Pod,
    facts: &PodFacts,
    f: &ObjectFieldSelector,
) -> Result<String, ConfigError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let path = f.field_path.as_str();
    let keyed = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix("']"))
            .map(str::to_string)
    };
    if let Some(key) = keyed("metadata.labels['") {
        return Ok(meta
            .labels
            .as_ref()
            .and_then(|l| l.get(&key).cloned())
            .unwrap_or_default());
    }
    if let Some(key) = keyed("metadata.annotations['") {
        return Ok(meta
            .annotations
            .as_ref()
            .and_then(|l| l.get(&key).cloned())
            .unwrap_or_default());
    }
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => pod_namespace(pod),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        // Every pod has a service account on an API server: `default` unless named.
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone().or(s.service_account.clone()))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".into()),
        "status.podIP" | "status.podIPs" => facts.pod_ip.clone().unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => facts.host_ip.clone(),
        other => {
            return Err(ConfigError::UnsupportedField {
                field: other.to_string(),
            })
        }
    })
}

/// A label or annotation map as the downward API writes it: sorted `key="value"` lines.
pub fn format_map(m: Option<&BTreeMap<String, String>>) -> String {
    m.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The value of a `resourceFieldRef` for `container` (its own when the selector names
/// none), divided by the divisor and rounded up as kubelet does. Unset limits are the
/// node's allocatable amount; unset requests are 0.
pub fn resource_value(
    pod: &Pod,
    facts: &PodFacts,
    container: Option<&str>,
    r: &ResourceFieldSelector,
) -> Result<String, ConfigError> {
    let name = r
        .container_name
        .as_deref()
        .filter(|n| !n.is_empty())
        .or(container)
        .unwrap_or_default();
    let spec = pod.spec.as_ref();
    let c = spec
        .into_iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .find(|c| c.name == name)
        .ok_or_else(|| ConfigError::NoSuchContainer {
            container: name.to_string(),
        })?;
    let (kind, resource) =
        r.resource
            .split_once('.')
            .ok_or_else(|| ConfigError::UnsupportedResource {
                resource: r.resource.clone(),
            })?;
    let res = c.resources.as_ref();
    let set = match kind {
        "limits" => res.and_then(|r| r.limits.as_ref()),
        "requests" => res.and_then(|r| r.requests.as_ref()),
        _ => None,
    }
    .and_then(|m| m.get(resource))
    .map(|q| q.0.clone());
    let bad = |q: &str, e: podhost_api::QuantityError| ConfigError::Quantity {
        quantity: q.to_string(),
        message: e.to_string(),
    };
    let divisor = r
        .divisor
        .as_ref()
        .map(|d| d.0.clone())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "1".into());
    match resource {
        "cpu" => {
            let value = match set {
                Some(q) => podhost_api::quantity::parse_cpu_millis(&q).map_err(|e| bad(&q, e))?,
                None if kind == "limits" => facts.node_cpu_millis,
                None => 0,
            };
            let div = podhost_api::quantity::parse_cpu_millis(&divisor)
                .map_err(|e| bad(&divisor, e))?
                .max(1);
            Ok(ceil_div(value, div).to_string())
        }
        "memory" | "ephemeral-storage" => {
            let node = if resource == "memory" {
                facts.node_memory_bytes
            } else {
                facts.node_storage_bytes
            };
            let value = match set {
                Some(q) => podhost_api::quantity::parse_bytes(&q).map_err(|e| bad(&q, e))?,
                None if kind == "limits" => node,
                None => 0,
            };
            let div = podhost_api::quantity::parse_bytes(&divisor)
                .map_err(|e| bad(&divisor, e))?
                .max(1);
            Ok(ceil_div(value, div).to_string())
        }
        _ => Err(ConfigError::UnsupportedResource {
            resource: r.resource.clone(),
        }),
    }
}

/// `ceil(a / b)` for non-negative `a` and positive `b`.
fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1).div_euclid(b)
}

/// Sets `name` to `value` in an ordered env list: a redefinition replaces the value in
/// place (the last definition wins, as in kubelet's map).
fn set(envs: &mut Vec<(String, String)>, name: &str, value: String) {
    match envs.iter_mut().find(|(k, _)| k == name) {
        Some(slot) => slot.1 = value,
        None => envs.push((name.to_string(), value)),
    }
}

/// The container's environment in order: envFrom keys, then env; errors name the missing
/// ConfigMap, Secret or key exactly as kubelet's CreateContainerConfigError does.
pub fn resolve_env(
    pod: &Pod,
    c: &Container,
    objects: &Objects,
    facts: &PodFacts,
) -> Result<Vec<(String, String)>, ConfigError> {
    let ns = pod_namespace(pod);
    let mut envs: Vec<(String, String)> = Vec::new();
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let entries = if let Some(r) = &from.config_map_ref {
            match config_map(objects, &ns, &r.name) {
                Ok(cm) => config_map_entries(&cm),
                Err(_) if r.optional == Some(true) => continue,
                Err(e) => return Err(e),
            }
        } else if let Some(r) = &from.secret_ref {
            match secret(objects, &ns, &r.name) {
                Ok(s) => secret_entries(&s),
                Err(_) if r.optional == Some(true) => continue,
                Err(e) => return Err(e),
            }
        } else {
            continue;
        };
        for (k, v) in entries {
            let name = format!("{prefix}{k}");
            // A name with '=' cannot be an environment variable; kubelet skips it too.
            if name.contains('=') {
                continue;
            }
            set(&mut envs, &name, String::from_utf8_lossy(&v).into_owned());
        }
    }
    for e in c.env.iter().flatten() {
        let value = match &e.value_from {
            None => {
                let vars: BTreeMap<String, String> = envs.iter().cloned().collect();
                expand(e.value.as_deref().unwrap_or_default(), &vars)
            }
            Some(from) => {
                if let Some(f) = &from.field_ref {
                    field_value(pod, facts, f)?
                } else if let Some(r) = &from.resource_field_ref {
                    resource_value(pod, facts, Some(&c.name), r)?
                } else if let Some(r) = &from.config_map_key_ref {
                    match config_map(objects, &ns, &r.name) {
                        Ok(cm) => match config_map_entries(&cm).remove(&r.key) {
                            Some(v) => String::from_utf8_lossy(&v).into_owned(),
                            None if r.optional == Some(true) => continue,
                            None => {
                                return Err(ConfigError::KeyNotFound {
                                    key: r.key.clone(),
                                    kind: "ConfigMap",
                                    namespace: ns.clone(),
                                    name: r.name.clone(),
                                })
                            }
                        },
                        Err(_) if r.optional == Some(true) => continue,
                        Err(e) => return Err(e),
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    match secret(objects, &ns, &r.name) {
                        Ok(s) => match secret_entries(&s).remove(&r.key) {
                            Some(v) => String::from_utf8_lossy(&v).into_owned(),
                            None if r.optional == Some(true) => continue,
                            None => {
                                return Err(ConfigError::KeyNotFound {
                                    key: r.key.clone(),
                                    kind: "Secret",
                                    namespace: ns.clone(),
                                    name: r.name.clone(),
                                })
                            }
                        },
                        Err(_) if r.optional == Some(true) => continue,
                        Err(e) => return Err(e),
                    }
                } else {
                    String::new()
                }
            }
        };
        set(&mut envs, &e.name, value);
    }
    Ok(envs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::ByteString;

    fn pod(yaml: &str) -> Pod {
        let text = format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: prod\n  uid: u-1\n  labels: {{app: web, tier: front}}\nspec:\n{yaml}");
        match podhost_api::parse_manifests(&text, "t")
            .expect("parses")
            .remove(0)
        {
            podhost_api::Manifest::Pod(p) => *p,
            other => panic!("{other:?}"),
        }
    }

    fn facts() -> PodFacts {
        PodFacts {
            pod_ip: Some("10.1.0.5".into()),
            host_ip: "192.168.1.2".into(),
            node_cpu_millis: 2000,
            node_memory_bytes: 4 << 30,
            node_storage_bytes: 0,
        }
    }

    fn objects() -> Objects {
        let o = Objects::in_memory();
        let meta = |name: &str| k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.into()),
            namespace: Some("prod".into()),
            ..Default::default()
        };
        o.apply_config_map(
            ConfigMap {
                metadata: meta("cfg"),
                data: Some(
                    [("mode", "fast"), ("level", "3")]
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .into(),
                ),
                ..Default::default()
            },
            0,
        )
        .expect("cm");
        o.apply_secret(
            Secret {
                metadata: meta("db"),
                data: Some([("password".to_string(), ByteString(b"pw".to_vec()))].into()),
                ..Default::default()
            },
            0,
        )
        .expect("secret");
        o
    }

    fn env_of(spec: &str) -> Result<Vec<(String, String)>, ConfigError> {
        let p = pod(spec);
        let c = p.spec.as_ref().expect("spec").containers[0].clone();
        resolve_env(&p, &c, &objects(), &facts())
    }

    fn get(envs: &[(String, String)], k: &str) -> Option<String> {
        envs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn field_refs_and_expansion_of_earlier_vars() {
        let envs = env_of("  containers:\n  - name: c\n    image: b\n    env:\n    - {name: LATER, value: '$(NAME)-x'}\n    - name: NAME\n      valueFrom: {fieldRef: {fieldPath: metadata.name}}\n    - {name: BOTH, value: '$(NAME).$(NS).$(MISSING).$$(NAME)'}\n    - name: NS\n      valueFrom: {fieldRef: {fieldPath: metadata.namespace}}\n    - name: IP\n      valueFrom: {fieldRef: {fieldPath: status.podIP}}\n    - name: HOST\n      valueFrom: {fieldRef: {fieldPath: status.hostIP}}\n    - name: APP\n      valueFrom: {fieldRef: {fieldPath: \"metadata.labels['app']\"}}\n    - name: SA\n      valueFrom: {fieldRef: {fieldPath: spec.serviceAccountName}}\n").expect("env");
        // $(VAR) only sees variables defined before it; unknown ones stay as written.
        assert_eq!(get(&envs, "LATER").as_deref(), Some("$(NAME)-x"));
        assert_eq!(
            get(&envs, "BOTH").as_deref(),
            Some("web.$(NS).$(MISSING).$(NAME)")
        );
        assert_eq!(get(&envs, "IP").as_deref(), Some("10.1.0.5"));
        assert_eq!(get(&envs, "HOST").as_deref(), Some("192.168.1.2"));
        assert_eq!(get(&envs, "APP").as_deref(), Some("web"));
        assert_eq!(get(&envs, "SA").as_deref(), Some("default"));
    }

    #[test]
    fn resource_field_refs_round_up_by_divisor() {
        let envs = env_of("  containers:\n  - name: c\n    image: b\n    resources:\n      limits: {memory: 64Mi, cpu: 250m}\n      requests: {memory: 32Mi}\n    env:\n    - name: MEM\n      valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}\n    - name: CPU\n      valueFrom: {resourceFieldRef: {resource: limits.cpu}}\n    - name: CPU_M\n      valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1m}}\n    - name: REQ\n      valueFrom: {resourceFieldRef: {resource: requests.memory}}\n    - name: REQ_CPU\n      valueFrom: {resourceFieldRef: {resource: requests.cpu}}\n").expect("env");
        assert_eq!(get(&envs, "MEM").as_deref(), Some("64"));
        assert_eq!(get(&envs, "CPU").as_deref(), Some("1"));
        assert_eq!(get(&envs, "CPU_M").as_deref(), Some("250"));
        assert_eq!(get(&envs, "REQ").as_deref(), Some("33554432"));
        assert_eq!(get(&envs, "REQ_CPU").as_deref(), Some("0"));
        let envs = env_of("  containers:\n  - name: c\n    image: b\n    env:\n    - name: MEM\n      valueFrom: {resourceFieldRef: {resource: limits.memory}}\n").expect("env");
        assert_eq!(
            get(&envs, "MEM").as_deref(),
            Some((4i64 << 30).to_string().as_str()),
            "unset limit is the node's"
        );
    }

    #[test]
    fn config_map_and_secret_refs() {
        let envs = env_of("  containers:\n  - name: c\n    image: b\n    envFrom:\n    - configMapRef: {name: cfg}\n      prefix: CFG_\n    - secretRef: {name: db}\n    - configMapRef: {name: absent, optional: true}\n    env:\n    - name: PW\n      valueFrom: {secretKeyRef: {name: db, key: password}}\n    - name: MODE\n      valueFrom: {configMapKeyRef: {name: cfg, key: mode}}\n    - name: OPT\n      valueFrom: {configMapKeyRef: {name: cfg, key: nope, optional: true}}\n    - {name: DERIVED, value: '$(CFG_level)x'}\n").expect("env");
        assert_eq!(get(&envs, "CFG_mode").as_deref(), Some("fast"));
        assert_eq!(get(&envs, "password").as_deref(), Some("pw"));
        assert_eq!(get(&envs, "PW").as_deref(), Some("pw"));
        assert_eq!(get(&envs, "MODE").as_deref(), Some("fast"));
        assert_eq!(get(&envs, "OPT"), None, "optional missing key: not set");
        assert_eq!(get(&envs, "DERIVED").as_deref(), Some("3x"));
    }

    #[test]
    fn missing_objects_give_kubelets_messages() {
        let err = |spec: &str| env_of(spec).expect_err("missing").to_string();
        assert_eq!(
            err("  containers:\n  - name: c\n    image: b\n    envFrom:\n    - configMapRef: {name: x}\n"),
            "configmap \"x\" not found"
        );
        assert_eq!(
            err("  containers:\n  - name: c\n    image: b\n    env:\n    - name: A\n      valueFrom: {secretKeyRef: {name: nope, key: k}}\n"),
            "secret \"nope\" not found"
        );
        assert_eq!(
            err("  containers:\n  - name: c\n    image: b\n    env:\n    - name: A\n      valueFrom: {configMapKeyRef: {name: cfg, key: k}}\n"),
            "couldn't find key k in ConfigMap prod/cfg"
        );
        assert_eq!(
            err("  containers:\n  - name: c\n    image: b\n    env:\n    - name: A\n      valueFrom: {secretKeyRef: {name: db, key: k}}\n"),
            "couldn't find key k in Secret prod/db"
        );
    }

    #[test]
    fn label_maps_are_sorted_quoted_lines() {
        let m: BTreeMap<String, String> = [("b", "2"), ("a", "x\"y")]
            .map(|(k, v)| (k.into(), v.into()))
            .into();
        assert_eq!(format_map(Some(&m)), "a=\"x\\\"y\"\nb=\"2\"");
    }
}
