//! End-to-end: the pause a container reaches as PID 1 gives nothing of the host away
//! (issue 12, item 3). Before, the pause was host root in the host's mount namespace:
//! with `shareProcessNamespace` and SYS_PTRACE, `/proc/1/root/etc/shadow` was the host's.

mod common;

use common::{ns, Env};

/// Status fields of a process (`name:` value, trimmed).
fn status(pid: u32, name: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

/// The pause of `pod`, seen from the host: confined as crates/shim/src/pause.rs says.
fn assert_pause_confined(env: &mut Env, pod: &str) {
    let pause = env.pid_of(pod, "POD");
    for (field, want) in [
        ("Uid", "65535\t65535\t65535\t65535"),
        ("Gid", "65535\t65535\t65535\t65535"),
        ("Groups", ""),
        ("CapEff", "0000000000000000"),
        ("CapPrm", "0000000000000000"),
        ("CapBnd", "0000000000000000"),
        ("CapAmb", "0000000000000000"),
        ("NoNewPrivs", "1"),
        ("Seccomp", "2"),
    ] {
        assert_eq!(status(pause, field), want, "{field} of the pause of {pod}");
    }
    assert_ne!(ns(pause, "mnt"), ns(std::process::id(), "mnt"));
    // `describe` reads the pause's /proc/<pid>/ns links (as root): still all there.
    let out = env.ok(&["describe", "pod", pod]);
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("Namespaces:"))
        .unwrap_or_else(|| panic!("no Namespaces line:\n{out}"));
    for kind in ["net", "ipc", "uts", "pid", "mnt"] {
        assert!(line.contains(&ns(pause, kind)), "{kind} in {line}");
    }
}

/// What a container of a shared PID namespace finds through PID 1, as `key=value` lines.
const PROBE: &str = r#"
echo "root=$(ls -A /proc/1/root/ | tr '\n' ' ')"
echo "cwd=$(ls -A /proc/1/cwd/ | tr '\n' ' ')"
echo "shadow=$(cat /proc/1/root/etc/shadow 2>&1)"
echo "exe=$( (echo x > /proc/1/exe) 2>&1)"
echo "rootexe=$( (echo x > /proc/1/root/pause) 2>&1)"
echo "plant=$( (echo x > /proc/1/root/planted) 2>&1)"
echo "environ=$(wc -c < /proc/1/environ)"
echo "comm=$(cat /proc/1/comm)"
"#;

/// Runs [`PROBE`] in `container` of `pod`; returns its lines.
fn probe(env: &Env, pod: &str, container: &str) -> Vec<(String, String)> {
    let out = env.ok(&["exec", pod, "-c", container, "--", "sh", "-c", PROBE]);
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

fn value<'a>(lines: &'a [(String, String)], key: &str) -> &'a str {
    lines
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in {lines:?}"))
}

/// A pod of one sleeping busybox container `attacker`, with `spec` lines (`key: value`)
/// added to the pod spec and the container's `securityContext`.
fn pod(name: &str, spec: &[&str], security: &str) -> String {
    let spec = spec.join("\n  ");
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  {spec}\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: attacker\n    \
         image: busybox\n    command: [sleep, \"3600\"]\n    securityContext: {security}\n"
    )
}

/// The attack of issue 12 from a SYS_PTRACE container and from a privileged one. Both
/// reach the pause's /proc/1/root (the listing proves it): it holds only the read-only
/// pause binary. A privileged container is the host's root by design (devices, module
/// loading, every capability); what must hold for it too is that the pause adds no way
/// out: no host file under /proc/1/root and a binary that cannot be written.
#[test]
fn a_container_sharing_the_pid_namespace_finds_no_host_file_through_the_pause() {
    let mut env = Env::new();
    let yaml = [
        pod(
            "ptrace",
            &["shareProcessNamespace: true"],
            "{capabilities: {add: [SYS_PTRACE]}}",
        ),
        pod(
            "privileged",
            &["shareProcessNamespace: true"],
            "{privileged: true}",
        ),
    ]
    .join("---\n");
    env.apply("attack.yaml", &yaml);
    for pod in ["ptrace", "privileged"] {
        env.wait_ready(pod);
        let lines = probe(&env, pod, "attacker");
        assert_eq!(value(&lines, "comm"), "pause", "{pod}: PID 1");
        assert_eq!(value(&lines, "root"), "pause", "{pod}: the pause's root");
        assert_eq!(value(&lines, "cwd"), "pause", "{pod}: the pause's cwd");
        let shadow = value(&lines, "shadow");
        assert!(shadow.contains("No such file"), "{pod}: shadow: {shadow}");
        for key in ["exe", "rootexe", "plant"] {
            let v = value(&lines, key);
            assert!(v.contains("Read-only file system"), "{pod}: {key}: {v}");
        }
        assert_eq!(value(&lines, "environ"), "0", "{pod}: environment");
        assert_pause_confined(&mut env, pod);
    }
    env.teardown();
}

/// hostPID, hostIPC and hostNetwork keep working with a confined pause.
#[test]
fn a_pause_in_the_hosts_namespaces_is_confined_too() {
    let mut env = Env::new();
    let yaml = pod(
        "hostns",
        &["hostPID: true", "hostIPC: true", "hostNetwork: true"],
        "{}",
    );
    env.apply("hostns.yaml", &yaml);
    env.wait_ready("hostns");
    let pause = env.pid_of("hostns", "POD");
    let me = std::process::id();
    for kind in ["pid", "ipc", "net", "uts"] {
        assert_eq!(ns(pause, kind), ns(me, kind), "{kind} of the pause");
    }
    assert_pause_confined(&mut env, "hostns");
    env.teardown();
}
