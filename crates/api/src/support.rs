//! What this version of podhost actually runs. Valid Kubernetes fields that the runtime
//! does not honour yet produce one warning each, naming the field, so that nothing a
//! user wrote is silently ignored (DESIGN: "rejected or warned about by name").
//!
//! Shrink these lists as the lifecycle, resources, networking and volume work lands.

use k8s_openapi::api::core::v1::{Container, Pod};

const NOT_YET: &str = "not implemented yet by podhost: ignored";

/// Warnings for the fields of `pod` that podhost accepts but does not apply yet.
pub fn not_yet_implemented(pod: &Pod) -> Vec<String> {
    let mut w = Vec::new();
    let Some(spec) = &pod.spec else { return w };
    let mut warn = |field: String| w.push(format!("{field}: {NOT_YET}"));
    if spec.host_pid == Some(true) {
        warn("spec.hostPID (the pod gets its own PID namespaces)".into());
    }
    if spec.host_ipc == Some(true) {
        warn("spec.hostIPC (the pod gets its own IPC namespace)".into());
    }
    if spec
        .security_context
        .as_ref()
        .is_some_and(|s| s != &Default::default())
    {
        warn("spec.securityContext".into());
    }
    if spec.active_deadline_seconds.is_some() {
        warn("spec.activeDeadlineSeconds".into());
    }
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        if let Some(e) = &v.empty_dir {
            if e.medium.as_deref() == Some("Memory") {
                warn(format!(
                    "spec.volumes[{i}].emptyDir.medium=Memory (a disk directory is used)"
                ));
            }
            if e.size_limit.is_some() {
                warn(format!("spec.volumes[{i}].emptyDir.sizeLimit"));
            }
        }
        if v.host_path
            .as_ref()
            .is_some_and(|h| h.type_.as_deref().is_some_and(|t| !t.is_empty()))
        {
            warn(format!("spec.volumes[{i}].hostPath.type (not checked)"));
        }
    }
    let groups: [(&str, &[Container]); 2] = [
        (
            "initContainers",
            spec.init_containers.as_deref().unwrap_or_default(),
        ),
        ("containers", &spec.containers),
    ];
    for (group, containers) in groups {
        for (i, c) in containers.iter().enumerate() {
            let at = format!("spec.{group}[{i}]");
            for (set, field) in [
                (c.liveness_probe.is_some(), "livenessProbe"),
                (c.readiness_probe.is_some(), "readinessProbe"),
                (c.startup_probe.is_some(), "startupProbe"),
                (c.lifecycle.is_some(), "lifecycle"),
                (c.security_context.is_some(), "securityContext"),
                (
                    c.resources
                        .as_ref()
                        .is_some_and(|r| r.limits.is_some() || r.requests.is_some()),
                    "resources",
                ),
                (c.tty == Some(true), "tty"),
                (c.stdin == Some(true), "stdin"),
            ] {
                if set {
                    warn(format!("{at}.{field}"));
                }
            }
            for (j, m) in c.volume_mounts.iter().flatten().enumerate() {
                if m.sub_path_expr.is_some() {
                    warn(format!("{at}.volumeMounts[{j}].subPathExpr"));
                }
                if m.mount_propagation.as_deref().is_some_and(|p| p != "None") {
                    warn(format!("{at}.volumeMounts[{j}].mountPropagation"));
                }
            }
            for (j, e) in c.env.iter().flatten().enumerate() {
                let unsupported_field = e
                    .value_from
                    .as_ref()
                    .and_then(|vf| vf.field_ref.as_ref())
                    .is_some_and(|f| {
                        !matches!(
                            f.field_path.as_str(),
                            "metadata.name" | "metadata.namespace" | "metadata.uid"
                        )
                    });
                let resource = e
                    .value_from
                    .as_ref()
                    .is_some_and(|vf| vf.resource_field_ref.is_some());
                if unsupported_field || resource {
                    warn(format!("{at}.env[{j}].valueFrom (the variable is empty)"));
                }
            }
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        let mut m = crate::parse_manifests(yaml, "t.yaml").expect("parse");
        let crate::Manifest::Pod(p) = m.remove(0);
        *p
    }

    #[test]
    fn networking_fields_are_implemented() {
        let p = pod("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  hostNetwork: true\n  dnsPolicy: None\n  dnsConfig: {nameservers: [192.0.2.1]}\n  hostAliases: [{ip: 10.1.1.1, hostnames: [x]}]\n  containers:\n  - {name: a, image: busybox, ports: [{containerPort: 80, hostPort: 80}]}\n");
        assert!(
            not_yet_implemented(&p).is_empty(),
            "{:?}",
            not_yet_implemented(&p)
        );
    }

    #[test]
    fn plain_pod_has_no_warnings() {
        let p = pod("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - {name: a, image: busybox, ports: [{containerPort: 80}]}\n");
        assert!(not_yet_implemented(&p).is_empty());
    }

    #[test]
    fn probes_and_resources_are_named() {
        let p = pod(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: a\n    image: busybox\n    livenessProbe: {exec: {command: [\"true\"]}}\n    resources: {limits: {memory: 64Mi}}\n",
        );
        let w = not_yet_implemented(&p);
        for f in [
            "spec.containers[0].livenessProbe",
            "spec.containers[0].resources",
        ] {
            assert!(w.iter().any(|x| x.starts_with(f)), "{f} missing in {w:?}");
        }
    }
}
