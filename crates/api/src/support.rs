//! What this version of podhost actually runs. Valid Kubernetes fields that the runtime
//! does not honour yet produce one warning each, naming the field, so that nothing a
//! user wrote is silently ignored (DESIGN: "rejected or warned about by name").
//!
//! Shrink these lists as the lifecycle, resources, networking and volume work lands.

use k8s_openapi::api::core::v1::Pod;

const NOT_YET: &str = "not implemented yet by podhost: ignored";

/// Warnings for the fields of `pod` that podhost accepts but does not apply yet.
pub fn not_yet_implemented(pod: &Pod) -> Vec<String> {
    let mut w = Vec::new();
    let Some(spec) = &pod.spec else { return w };
    let mut warn = |field: String| w.push(format!("{field}: {NOT_YET}"));
    if spec.active_deadline_seconds.is_some() {
        warn("spec.activeDeadlineSeconds".into());
    }
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        if let Some(e) = &v.empty_dir {
            // Memory emptyDirs are tmpfs sized by sizeLimit; a disk one is not capped.
            if e.size_limit.is_some() && e.medium.as_deref() != Some("Memory") {
                warn(format!(
                    "spec.volumes[{i}].emptyDir.sizeLimit (enforced for medium: Memory only)"
                ));
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
        let crate::Manifest::Pod(p) = m.remove(0) else {
            panic!("not a pod")
        };
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
    fn tty_and_stdin_are_implemented() {
        let p = pod("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - {name: a, image: busybox, tty: true, stdin: true, stdinOnce: true}\n");
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
    fn exec_http_https_tcp_grpc_probes_and_hooks_are_supported() {
        let p = pod(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: a\n    image: busybox\n    livenessProbe: {grpc: {port: 9000, service: db}}\n    readinessProbe: {httpGet: {port: 80}}\n    startupProbe: {tcpSocket: {port: 80}}\n    lifecycle: {postStart: {httpGet: {port: 443, scheme: HTTPS}}, preStop: {httpGet: {port: 80}}}\n",
        );
        assert!(not_yet_implemented(&p).is_empty());
    }
}
