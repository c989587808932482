//! Kubernetes defaulting (pkg/apis/core/v1/defaults.go) for the fields podhost uses.
//!
//! An API server fills these before validation and storage, so `-o yaml` shows them
//! and the lifecycle code can rely on them being set.

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EphemeralContainer, HTTPGetAction, LifecycleHandler, Pod, PodSpec,
    Probe, ResourceRequirements, Volume,
};
use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, PodSecurityContext};

use crate::DEFAULT_NAMESPACE;

/// Fills Kubernetes' defaults into `pod` (idempotent; explicit values are kept).
pub fn default_pod(pod: &mut Pod) {
    if pod
        .metadata
        .namespace
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        pod.metadata.namespace = Some(DEFAULT_NAMESPACE.to_string());
    }
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    default_spec(spec);
}

/// Pod-level defaults, then every container and volume.
fn default_spec(spec: &mut PodSpec) {
    set_if_empty(&mut spec.restart_policy, "Always");
    set_if_empty(&mut spec.dns_policy, "ClusterFirst");
    set_if_empty(&mut spec.scheduler_name, "default-scheduler");
    spec.termination_grace_period_seconds.get_or_insert(30);
    spec.enable_service_links.get_or_insert(true);
    spec.security_context
        .get_or_insert_with(PodSecurityContext::default);
    let host_network = spec.host_network.unwrap_or(false);

    for c in spec.init_containers.iter_mut().flatten() {
        default_container(c, host_network);
    }
    for c in &mut spec.containers {
        default_container(c, host_network);
    }
    for c in spec.ephemeral_containers.iter_mut().flatten() {
        default_ephemeral(c);
    }
    for v in spec.volumes.iter_mut().flatten() {
        default_volume(v);
    }
}

/// Container defaults shared by init and regular containers.
fn default_container(c: &mut Container, host_network: bool) {
    if c.image_pull_policy
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        c.image_pull_policy = Some(pull_policy_for(c.image.as_deref().unwrap_or_default()).into());
    }
    set_if_empty(&mut c.termination_message_path, "/dev/termination-log");
    set_if_empty(&mut c.termination_message_policy, "File");
    for port in c.ports.iter_mut().flatten() {
        default_port(port, host_network);
    }
    for probe in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        default_probe(probe);
    }
    if let Some(lifecycle) = c.lifecycle.as_mut() {
        for handler in [&mut lifecycle.post_start, &mut lifecycle.pre_stop]
            .into_iter()
            .flatten()
        {
            default_handler(handler);
        }
    }
    if let Some(resources) = c.resources.as_mut() {
        default_resources(resources);
    }
}

/// Ephemeral containers get the same image and termination-message defaults.
fn default_ephemeral(c: &mut EphemeralContainer) {
    if c.image_pull_policy
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        c.image_pull_policy = Some(pull_policy_for(c.image.as_deref().unwrap_or_default()).into());
    }
    set_if_empty(&mut c.termination_message_path, "/dev/termination-log");
    set_if_empty(&mut c.termination_message_policy, "File");
    for port in c.ports.iter_mut().flatten() {
        default_port(port, false);
    }
}

/// `Always` for `:latest` or untagged images (they may change), else `IfNotPresent`.
///
/// Like Kubernetes, an image pinned only by digest counts as tagged.
pub fn pull_policy_for(image: &str) -> &'static str {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    // A ':' after the last '/' is a tag; earlier ones are a registry port.
    let last_component = name.rsplit('/').next().unwrap_or(name);
    let tag = last_component.split_once(':').map(|(_, tag)| tag);
    match (tag, digest) {
        (Some("latest"), _) | (None, None) => "Always",
        _ => "IfNotPresent",
    }
}

/// Protocol TCP; with host networking the host port is the container port.
fn default_port(port: &mut ContainerPort, host_network: bool) {
    set_if_empty(&mut port.protocol, "TCP");
    if host_network && port.host_port.unwrap_or(0) == 0 {
        port.host_port = Some(port.container_port);
    }
}

/// Probe timing defaults; Kubernetes treats 0 as unset here.
fn default_probe(p: &mut Probe) {
    for (field, default) in [
        (&mut p.timeout_seconds, 1),
        (&mut p.period_seconds, 10),
        (&mut p.success_threshold, 1),
        (&mut p.failure_threshold, 3),
    ] {
        if field.unwrap_or(0) == 0 {
            *field = Some(default);
        }
    }
    if let Some(get) = p.http_get.as_mut() {
        default_http_get(get);
    }
}

/// Lifecycle hooks share the HTTP defaults with probes.
fn default_handler(h: &mut LifecycleHandler) {
    if let Some(get) = h.http_get.as_mut() {
        default_http_get(get);
    }
}

/// Path `/` and scheme `HTTP`.
fn default_http_get(get: &mut HTTPGetAction) {
    set_if_empty(&mut get.path, "/");
    set_if_empty(&mut get.scheme, "HTTP");
}

/// A limit without a request makes the request equal to the limit (so a container
/// with only limits is Guaranteed QoS, as on a kubelet).
fn default_resources(r: &mut ResourceRequirements) {
    let Some(limits) = r.limits.as_ref() else {
        return;
    };
    let requests = r.requests.get_or_insert_with(Default::default);
    // A malformed limit is reported once by validation, not again as a request.
    for (name, quantity) in limits
        .iter()
        .filter(|(_, q)| crate::quantity::check(&q.0).is_ok())
    {
        requests
            .entry(name.clone())
            .or_insert_with(|| quantity.clone());
    }
}

/// A volume naming no source is an emptyDir.
fn default_volume(v: &mut Volume) {
    if crate::validate::volume_sources(v).is_empty() {
        v.empty_dir = Some(EmptyDirVolumeSource::default());
    }
}

/// Sets `field` to `value` when it is unset or empty.
fn set_if_empty(field: &mut Option<String>, value: &str) {
    if field.as_deref().unwrap_or_default().is_empty() {
        *field = Some(value.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    #[test]
    fn pull_policy_table() {
        let cases = [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.25", "IfNotPresent"),
            ("localhost:5000/busybox", "Always"),
            ("localhost:5000/busybox:1.36", "IfNotPresent"),
            ("busybox@sha256:abcd", "IfNotPresent"),
            ("busybox:latest@sha256:abcd", "Always"),
        ];
        for (image, want) in cases {
            assert_eq!(pull_policy_for(image), want, "{image}");
        }
    }

    #[test]
    fn defaults_fill_unset_fields_only() {
        let mut pod = Pod {
            spec: Some(PodSpec {
                restart_policy: Some("Never".into()),
                host_network: Some(true),
                containers: vec![Container {
                    name: "web".into(),
                    image: Some("nginx:1.25".into()),
                    ports: Some(vec![ContainerPort {
                        container_port: 80,
                        ..Default::default()
                    }]),
                    readiness_probe: Some(Probe {
                        period_seconds: Some(5),
                        http_get: Some(HTTPGetAction::default()),
                        ..Default::default()
                    }),
                    resources: Some(ResourceRequirements {
                        limits: Some([("cpu".to_string(), Quantity("1".into()))].into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                volumes: Some(vec![Volume {
                    name: "scratch".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        default_pod(&mut pod);
        let once = pod.clone();
        default_pod(&mut pod);
        assert_eq!(pod, once, "defaulting is idempotent");

        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
        let spec = pod.spec.as_ref().expect("spec");
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.dns_policy.as_deref(), Some("ClusterFirst"));
        assert_eq!(spec.scheduler_name.as_deref(), Some("default-scheduler"));
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
        assert_eq!(spec.enable_service_links, Some(true));
        let c = &spec.containers[0];
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert_eq!(
            c.termination_message_path.as_deref(),
            Some("/dev/termination-log")
        );
        assert_eq!(c.termination_message_policy.as_deref(), Some("File"));
        let port = &c.ports.as_ref().expect("ports")[0];
        assert_eq!(port.protocol.as_deref(), Some("TCP"));
        assert_eq!(port.host_port, Some(80));
        let probe = c.readiness_probe.as_ref().expect("probe");
        assert_eq!(probe.period_seconds, Some(5));
        assert_eq!(probe.timeout_seconds, Some(1));
        assert_eq!(probe.success_threshold, Some(1));
        assert_eq!(probe.failure_threshold, Some(3));
        let get = probe.http_get.as_ref().expect("httpGet");
        assert_eq!(get.path.as_deref(), Some("/"));
        assert_eq!(get.scheme.as_deref(), Some("HTTP"));
        let requests = c
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .expect("requests");
        assert_eq!(requests.get("cpu"), Some(&Quantity("1".into())));
        let volume = &spec.volumes.as_ref().expect("volumes")[0];
        assert!(volume.empty_dir.is_some());
    }
}
