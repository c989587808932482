//! Validation of security contexts and sysctls (Kubernetes' rules plus podhost's: only
//! namespaced sysctls, which cannot change the host). Secrets in `env` of a pod sharing
//! its PID namespace are a [`crate::lint`] rule.

use k8s_openapi::api::core::v1::{Container, Pod, SeccompProfile};

use crate::validate::{quote, FieldError};

/// Capability names Kubernetes accepts (without `CAP_`), plus `ALL`.
const CAPABILITIES: [&str; 42] = [
    "ALL",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Whether a sysctl belongs to a namespace of the pod (IPC or network), so that setting
/// it cannot change the host (Kubernetes' namespaced list).
pub fn is_namespaced_sysctl(name: &str) -> bool {
    let n = name.replace('/', ".");
    n == "kernel.sem"
        || n.starts_with("kernel.shm")
        || n.starts_with("kernel.msg")
        || n.starts_with("fs.mqueue.")
        || n.starts_with("net.")
}

/// Errors and warnings about the pod's security settings.
pub fn check(pod: &Pod, errors: &mut Vec<FieldError>, warnings: &mut Vec<String>) {
    let Some(spec) = &pod.spec else { return };
    let host_net = spec.host_network == Some(true);
    let host_ipc = spec.host_ipc == Some(true);
    if let Some(psc) = &spec.security_context {
        let at = "spec.securityContext";
        id_range(errors, &format!("{at}.runAsUser"), psc.run_as_user);
        id_range(errors, &format!("{at}.runAsGroup"), psc.run_as_group);
        id_range(errors, &format!("{at}.fsGroup"), psc.fs_group);
        for (i, g) in psc.supplemental_groups.iter().flatten().enumerate() {
            id_range(errors, &format!("{at}.supplementalGroups[{i}]"), Some(*g));
        }
        if let Some(p) = &psc.fs_group_change_policy {
            // Kubernetes' validateFSGroupChangePolicy.
            const POLICIES: &[&str] = &["OnRootMismatch", "Always"];
            if !POLICIES.contains(&p.as_str()) {
                errors.push(FieldError::not_supported(
                    format!("{at}.fsGroupChangePolicy"),
                    p,
                    POLICIES,
                ));
            }
        }
        seccomp(
            errors,
            &format!("{at}.seccompProfile"),
            &psc.seccomp_profile,
        );
        for (i, s) in psc.sysctls.iter().flatten().enumerate() {
            let field = format!("{at}.sysctls[{i}].name");
            let n = s.name.replace('/', ".");
            if !is_namespaced_sysctl(&n) {
                errors.push(FieldError::forbidden(
                    field,
                    format!(
                        "sysctl {} is not namespaced: setting it would change the whole machine (allowed: kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*, net.*)",
                        quote(&s.name)
                    ),
                ));
            } else if host_net && n.starts_with("net.") {
                errors.push(FieldError::forbidden(
                    field,
                    "sysctl \"net.*\" not allowed with hostNetwork enabled",
                ));
            } else if host_ipc && !n.starts_with("net.") {
                errors.push(FieldError::forbidden(
                    field,
                    format!("sysctl {} not allowed with hostIPC enabled", quote(&s.name)),
                ));
            }
        }
        for (set, f) in [
            (psc.se_linux_options.is_some(), "seLinuxOptions"),
            (psc.app_armor_profile.is_some(), "appArmorProfile"),
            (psc.windows_options.is_some(), "windowsOptions"),
        ] {
            if set {
                warnings.push(format!("{at}.{f}: not implemented yet by podhost: ignored"));
            }
        }
    }
    let ephemeral: Vec<Container> = spec
        .ephemeral_containers
        .iter()
        .flatten()
        .map(crate::ephemeral_as_container)
        .collect();
    let groups: [(&str, &[Container]); 3] = [
        (
            "initContainers",
            spec.init_containers.as_deref().unwrap_or_default(),
        ),
        ("containers", &spec.containers),
        ("ephemeralContainers", &ephemeral),
    ];
    for (group, containers) in groups {
        for (i, c) in containers.iter().enumerate() {
            container(errors, warnings, &format!("spec.{group}[{i}]"), c);
        }
    }
}

fn container(errors: &mut Vec<FieldError>, warnings: &mut Vec<String>, at: &str, c: &Container) {
    let Some(sc) = &c.security_context else {
        return;
    };
    let at = format!("{at}.securityContext");
    id_range(errors, &format!("{at}.runAsUser"), sc.run_as_user);
    id_range(errors, &format!("{at}.runAsGroup"), sc.run_as_group);
    seccomp(errors, &format!("{at}.seccompProfile"), &sc.seccomp_profile);
    if let Some(caps) = &sc.capabilities {
        for (list, name) in [(&caps.add, "add"), (&caps.drop, "drop")] {
            for (j, cap) in list.iter().flatten().enumerate() {
                let bare = cap.to_ascii_uppercase();
                let bare = bare.strip_prefix("CAP_").unwrap_or(&bare);
                if !CAPABILITIES.contains(&bare) {
                    errors.push(FieldError::invalid(
                        format!("{at}.capabilities.{name}[{j}]"),
                        quote(cap),
                        "unknown capability (e.g. NET_ADMIN, SYS_TIME, ALL)",
                    ));
                }
            }
        }
    }
    if let Some(pm) = sc.proc_mount.as_deref() {
        if pm != "Default" && pm != "Unmasked" {
            errors.push(FieldError::not_supported(
                format!("{at}.procMount"),
                pm,
                &["Default", "Unmasked"],
            ));
        }
    }
    let sys_admin = sc.capabilities.as_ref().is_some_and(|c| {
        c.add.iter().flatten().any(|n| {
            let u = n.to_ascii_uppercase();
            u == "SYS_ADMIN" || u == "CAP_SYS_ADMIN"
        })
    });
    if sc.allow_privilege_escalation == Some(false) {
        if sc.privileged == Some(true) {
            errors.push(FieldError::invalid(
                format!("{at}.allowPrivilegeEscalation"),
                "false".into(),
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            ));
        }
        if sys_admin {
            errors.push(FieldError::invalid(
                format!("{at}.allowPrivilegeEscalation"),
                "false".into(),
                "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
            ));
        }
    }
    for (set, f) in [
        (sc.se_linux_options.is_some(), "seLinuxOptions"),
        (sc.app_armor_profile.is_some(), "appArmorProfile"),
        (sc.windows_options.is_some(), "windowsOptions"),
    ] {
        if set {
            warnings.push(format!("{at}.{f}: not implemented yet by podhost: ignored"));
        }
    }
}

fn id_range(errors: &mut Vec<FieldError>, field: &str, v: Option<i64>) {
    if let Some(v) = v {
        if !(0..=i64::from(i32::MAX)).contains(&v) {
            errors.push(FieldError::invalid(
                field,
                v.to_string(),
                "must be between 0 and 2147483647, inclusive",
            ));
        }
    }
}

fn seccomp(errors: &mut Vec<FieldError>, field: &str, p: &Option<SeccompProfile>) {
    let Some(p) = p else { return };
    match p.type_.as_str() {
        "RuntimeDefault" | "Unconfined" => {
            if p.localhost_profile.is_some() {
                errors.push(FieldError::forbidden(
                    format!("{field}.localhostProfile"),
                    "can only be set if the type is \"Localhost\"",
                ));
            }
        }
        "Localhost" => match p.localhost_profile.as_deref() {
            None | Some("") => errors.push(FieldError::required(
                format!("{field}.localhostProfile"),
                "must be set when seccomp type is Localhost",
            )),
            Some(path) if path.starts_with('/') || path.split('/').any(|c| c == "..") => errors
                .push(FieldError::invalid(
                    format!("{field}.localhostProfile"),
                    quote(path),
                    "must be a relative path without '..' (under <state>/seccomp)",
                )),
            Some(_) => {}
        },
        other => errors.push(FieldError::not_supported(
            format!("{field}.type"),
            other,
            &["Localhost", "RuntimeDefault", "Unconfined"],
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(yaml: &str) -> (Vec<String>, Vec<String>) {
        let mut m = crate::parse_manifests(yaml, "t.yaml").expect("parse");
        let crate::Manifest::Pod(p) = m.remove(0) else {
            panic!("not a pod")
        };
        let (mut e, mut w) = (Vec::new(), Vec::new());
        check(&p, &mut e, &mut w);
        (e.iter().map(|e| e.to_string()).collect(), w)
    }

    #[test]
    fn fs_group_and_change_policy() {
        let pod = |policy: &str| {
            format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: a}}\nspec:\n  securityContext: {{fsGroup: 2000, supplementalGroups: [3000], fsGroupChangePolicy: {policy}}}\n  containers:\n  - {{name: a, image: busybox}}\n")
        };
        let (e, w) = run(&pod("OnRootMismatch"));
        assert!(e.is_empty() && w.is_empty(), "{e:?} {w:?}");
        let (e, _) = run(&pod("Sometimes"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("spec.securityContext.fsGroupChangePolicy")
                && e[0].contains("\"OnRootMismatch\", \"Always\""),
            "{e:?}"
        );
    }

    #[test]
    fn sysctls_must_be_namespaced() {
        let (e, _) = run("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  securityContext:\n    sysctls:\n    - {name: net.ipv4.ip_local_port_range, value: '1024 65000'}\n    - {name: kernel.shm_rmid_forced, value: '1'}\n    - {name: vm.overcommit_memory, value: '1'}\n  containers:\n  - {name: a, image: busybox}\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("sysctls[2]") && e[0].contains("not namespaced"),
            "{e:?}"
        );
    }

    #[test]
    fn capabilities_seccomp_and_escalation() {
        let (e, _) = run("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: a\n    image: busybox\n    securityContext:\n      privileged: true\n      allowPrivilegeEscalation: false\n      capabilities: {add: [NET_ADMIN, CAP_SYS_TIME, FLY]}\n      seccompProfile: {type: Localhost}\n");
        let all = e.join("\n");
        assert!(all.contains("capabilities.add[2]"), "{all}");
        assert!(!all.contains("capabilities.add[0]"), "{all}");
        assert!(all.contains("localhostProfile"), "{all}");
        assert!(all.contains("allowPrivilegeEscalation"), "{all}");
    }
}
