//! Pod objects for podhost: Kubernetes' own `v1` Pod schema read from YAML, defaulted
//! and validated as an API server would, and printed as kubectl prints it.
//!
//! # Layout
//! - [`parse`]: YAML text (several documents) → [`Manifest`]s, with strict decoding
//!   (unknown fields are errors naming their path) and YAML positions in errors.
//! - [`defaults`]: [`default_pod`], Kubernetes' defaulting of the fields podhost uses.
//! - [`validate`]: [`validate_pod`], Kubernetes' validation rules plus podhost's own
//!   limits (one machine: cluster-only fields are warnings or errors by name).
//! - [`quantity`]: resource quantities (`500m`, `64Mi`) as integers, for validation
//!   and cgroup limits.
//! - [`objects`]: ConfigMap and Secret defaulting and validation.
//! - [`security`]: security contexts and sysctls.
//! - [`lint`]: advice about valid pods (shared ports, host ports, sidecars without
//!   limits, secrets in env with a shared PID namespace, fields podhost ignores …).
//! - [`display`]: kubectl's `get pods` columns (STATUS, READY, RESTARTS, AGE).
//!
//! Typical use: `parse_manifests` → `default_pod` → `validate_pod` → `lint::lint_pod`.

pub mod defaults;
pub mod display;
pub mod lint;
mod names;
pub mod objects;
pub mod parse;
pub mod quantity;
pub mod security;
pub mod validate;

pub use defaults::{default_pod, pull_policy_for};
pub use k8s_openapi;
pub use k8s_openapi::api::core::v1::{
    ConfigMap, Container, ContainerState, ContainerStatus, EphemeralContainer, Pod, PodCondition,
    PodSpec, PodStatus, Probe, Secret, Volume, VolumeMount,
};
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
pub use k8s_openapi::jiff;
pub use objects::{
    default_config_map, default_secret, validate_config_map, validate_secret, InvalidObject,
};
pub use parse::{parse_manifests, Manifest, ParseError};
pub use quantity::QuantityError;
pub use validate::{
    validate_ephemeral_update, validate_pod, FieldError, FieldErrorKind, InvalidPod, Validation,
};

/// The namespace of objects that do not name one.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The pod's `namespace/name` key (namespace `default` when unset).
pub fn pod_key(pod: &Pod) -> String {
    let namespace = pod
        .metadata
        .namespace
        .as_deref()
        .filter(|ns| !ns.is_empty())
        .unwrap_or(DEFAULT_NAMESPACE);
    format!(
        "{namespace}/{}",
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Whether an init container is a native sidecar (`restartPolicy: Always`).
pub fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// An ephemeral container as a container: the fields they share (all but
/// `targetContainerName`), so that what creates, logs or addresses containers treats
/// both alike. The fields ephemeral containers may not have are validated away.
pub fn ephemeral_as_container(e: &EphemeralContainer) -> Container {
    Container {
        args: e.args.clone(),
        command: e.command.clone(),
        env: e.env.clone(),
        env_from: e.env_from.clone(),
        image: e.image.clone(),
        image_pull_policy: e.image_pull_policy.clone(),
        lifecycle: e.lifecycle.clone(),
        liveness_probe: e.liveness_probe.clone(),
        name: e.name.clone(),
        ports: e.ports.clone(),
        readiness_probe: e.readiness_probe.clone(),
        resize_policy: e.resize_policy.clone(),
        resources: e.resources.clone(),
        restart_policy: e.restart_policy.clone(),
        restart_policy_rules: e.restart_policy_rules.clone(),
        security_context: e.security_context.clone(),
        startup_probe: e.startup_probe.clone(),
        stdin: e.stdin,
        stdin_once: e.stdin_once,
        termination_message_path: e.termination_message_path.clone(),
        termination_message_policy: e.termination_message_policy.clone(),
        tty: e.tty,
        volume_devices: e.volume_devices.clone(),
        volume_mounts: e.volume_mounts.clone(),
        working_dir: e.working_dir.clone(),
    }
}

/// Every container of a pod a user can address by name (`logs -c`, `exec -c`,
/// `attach -c`): init containers, regular ones, then ephemeral ones.
pub fn all_containers(spec: &PodSpec) -> Vec<Container> {
    spec.init_containers
        .iter()
        .flatten()
        .cloned()
        .chain(spec.containers.iter().cloned())
        .chain(
            spec.ephemeral_containers
                .iter()
                .flatten()
                .map(ephemeral_as_container),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_defaults_namespace() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("web".into());
        assert_eq!(pod_key(&pod), "default/web");
        pod.metadata.namespace = Some("prod".into());
        assert_eq!(pod_key(&pod), "prod/web");
    }

    #[test]
    fn sidecar_detection() {
        let mut c = Container::default();
        assert!(!is_sidecar(&c));
        c.restart_policy = Some("Always".into());
        assert!(is_sidecar(&c));
    }
}
