//! End-to-end: the learner's view of issue 15 beyond the basics: `podhost lint` (files,
//! apply's warnings, a running pod's listeners), describe's namespaces marked shared,
//! own or host, and `get -o go-template`.

mod common;

use std::process::Output;
use std::time::Duration;

use common::Env;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A pod of the pre-1.29 sidecar habits: the same containerPort twice, a sidecar without
/// limits, a sleep until the sidecar is up, and a secret in env with a shared PID
/// namespace. It runs all the same.
const HABITS: &str = "apiVersion: v1
kind: Pod
metadata:
  name: habits
  labels: {app: web}
spec:
  terminationGracePeriodSeconds: 1
  shareProcessNamespace: true
  containers:
  - name: app
    image: busybox
    command: [sh, -c, 'sleep 1 && exec sleep 3600']
    ports: [{containerPort: 8080}]
    env: [{name: API_TOKEN, value: t0k}]
  - name: proxy
    image: busybox
    command: [sleep, '3600']
    ports: [{containerPort: 8080}]
";

/// Lint of files (no daemon needed), the same findings as apply's warnings, exit codes.
#[test]
fn lint_files_and_apply_warnings() {
    let env = Env::new();
    let habits = env.manifest("habits.yaml", HABITS);
    let out = env.run(&["lint", "-f", &habits]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    for (field, rule) in [
        (
            "spec.containers[1].ports[0].containerPort",
            "duplicate-container-port",
        ),
        (
            "spec.containers[1].resources.limits.memory",
            "sidecar-without-limits",
        ),
        ("spec.containers[0].command[2]", "wait-for-sidecar"),
        ("spec.containers[0].env[0]", "secret-env-shared-pid"),
    ] {
        let line = format!("{habits}: pod/habits: {field}: ");
        assert!(
            text.lines()
                .any(|l| l.starts_with(&line) && l.ends_with(&format!("[{rule}]"))),
            "{rule} at {field}:\n{text}"
        );
    }
    assert!(text.contains("restartPolicy: Always"), "{text}");
    assert_eq!(text.lines().count(), 4, "{text}");

    // A hostPort a program of this machine listens on, and a privileged one: checked
    // against the machine by a bind test (this test holds the port).
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = held.local_addr().expect("addr").port();
    let host_ports = env.manifest(
        "hostports.yaml",
        &format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: hp}}\nspec:\n  containers:\n  - name: a\n    image: busybox\n    ports:\n    - {{containerPort: 80, hostPort: {port}}}\n    - {{containerPort: 22, hostPort: 22}}\n"),
    );
    let out = env.run(&["lint", "-f", &host_ports]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "spec.containers[0].ports[0].hostPort: {port}/TCP is already in use on this machine"
        )) && text.contains("[host-port-in-use]"),
        "{text}"
    );
    assert!(
        text.contains("spec.containers[0].ports[1].hostPort: 22/TCP is a privileged port")
            && text.contains("[privileged-host-port]"),
        "{text}"
    );
    // apply says the same as warnings (kubectl's `Warning:` lines) and goes on.
    let out = env.run(&["apply", "-f", &host_ports, "--dry-run=server"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let warnings = stderr(&out);
    assert!(
        warnings.contains(&format!(
            "Warning: pod/hp: spec.containers[0].ports[0].hostPort: {port}/TCP is already in use"
        )),
        "{warnings}"
    );
    drop(held);

    // A clean file and a directory of them: exit 0.
    let dir = env.manifest("clean", "");
    std::fs::remove_file(&dir).expect("rm");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(
        format!("{dir}/ok.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: ok}\nspec:\n  containers:\n  - {name: a, image: busybox, ports: [{containerPort: 80}]}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: b}\n",
    )
    .expect("write");
    let out = env.run(&["lint", "-f", &dir]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).is_empty() && stderr(&out).contains("No findings."));
    // Invalid objects are findings; a file that does not parse is exit 2.
    let invalid = env.manifest(
        "invalid.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec:\n  containers:\n  - {name: a}\n",
    );
    let out = env.run(&["lint", "-f", &invalid]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("spec.containers[0].image: Required value"),
        "{}",
        stdout(&out)
    );
    let broken = env.manifest("broken.yaml", "kind: Pod\n  metadata: [\n");
    assert_eq!(env.run(&["lint", "-f", &broken]).status.code(), Some(2));

    // The pod is created despite its warnings, each naming its field.
    let out = env.run(&["apply", "-f", &habits]);
    assert!(out.status.success(), "{}", stderr(&out));
    let warnings = stderr(&out);
    assert!(
        warnings.contains("Warning: pod/habits: spec.containers[1].ports[0].containerPort: duplicate port definition with spec.containers[0].ports[0]"),
        "{warnings}"
    );
    assert!(
        warnings.contains("Warning: pod/habits: spec.containers[0].env[0]: \"API_TOKEN\" with shareProcessNamespace"),
        "{warnings}"
    );
    assert_eq!(warnings.lines().count(), 4, "{warnings}");
    assert!(stdout(&out).contains("pod/habits created"));
    env.wait_ready("habits");

    // go-template, as kubectl's: a List for several, the object for one name.
    let names = env.ok(&[
        "get",
        "pods",
        "-o",
        r#"go-template={{range .items}}{{.metadata.name}} {{.status.phase}} {{index .metadata.labels "app"}} {{len .spec.containers}}{{"\n"}}{{end}}"#,
    ]);
    assert_eq!(names, "habits Running web 2\n");
    let one = env.ok(&[
        "get",
        "pod",
        "habits",
        "-o",
        r#"go-template={{range .spec.containers}}{{printf "%s:%v;" .name (index .ports 0).containerPort}}{{end}}{{.metadata.nothing}}"#,
    ]);
    assert_eq!(one, "app:8080;proxy:8080;<no value>");
    let file = env.manifest(
        "t.tmpl",
        "{{with .data}}{{base64decode .password}}{{end}} {{exists . \"data\" \"user\"}}",
    );
    env.apply(
        "s.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {password: s3cr3t}\n",
    );
    assert_eq!(
        env.ok(&[
            "get",
            "secret",
            "s",
            "-o",
            &format!("go-template-file={file}")
        ]),
        "s3cr3t false"
    );
    let err = env.fails(&["get", "pods", "-o", "go-template={{.items"]);
    assert!(err.contains("error parsing template"), "{err}");
    env.teardown();
}

/// `lint pod`: a server on 0.0.0.0 on a port no containerPort declares (only the pod's
/// containers are meant to use it) → bind it to 127.0.0.1. And describe's namespaces,
/// shared with the pod, own or the host's, with and without shareProcessNamespace.
#[test]
fn lint_running_pod_and_describe_namespaces() {
    let env = Env::new();
    env.apply(
        "l.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: l\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: web\n    image: busybox\n    command: [httpd, -f, -p, \"0.0.0.0:8080\"]\n    ports: [{containerPort: 8080}]\n  - name: db\n    image: busybox\n    command: [httpd, -f, -p, \"0.0.0.0:5432\"]\n    resources: {limits: {memory: 32Mi}}\n  - name: cache\n    image: busybox\n    command: [httpd, -f, -p, \"127.0.0.1:6379\"]\n    resources: {limits: {memory: 32Mi}}\n",
    );
    env.apply(
        "shared.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: shared\nspec:\n  terminationGracePeriodSeconds: 1\n  shareProcessNamespace: true\n  containers:\n  - name: main\n    image: busybox\n    command: [sleep, \"3600\"]\n",
    );
    env.wait_ready("l");
    env.wait_ready("shared");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let out = loop {
        let out = env.run(&["lint", "pod", "l"]);
        if stdout(&out).contains("5432") {
            break out;
        }
        assert!(std::time::Instant::now() < deadline, "{}", stdout(&out));
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("pod/l: spec.containers[1].ports: \"db\" listens on 0.0.0.0:5432/TCP (httpd), a port no containerPort declares")
            && text.contains("bind it to 127.0.0.1:5432")
            && text.contains("[wildcard-listener]"),
        "{text}"
    );
    // Declared (8080) or bound to 127.0.0.1 (6379): nothing to say.
    assert_eq!(text.lines().count(), 1, "{text}");
    assert_eq!(env.run(&["lint", "pod/l"]).status.code(), Some(1));
    // Several pods: each one's findings, one error per missing name, the worst status.
    let out = env.run(&["lint", "pod", "l", "missing", "shared"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("Error from server (NotFound)") && stderr(&out).contains("missing"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), text);

    // Namespaces of each container against the pause's and the machine's.
    let groups = |pod: &str| -> Vec<(String, Vec<String>)> {
        let d = env.ok(&["describe", "pod", pod]);
        let line = d
            .lines()
            .find(|l| l.starts_with("    Namespaces:"))
            .unwrap_or_else(|| panic!("no container Namespaces line:\n{d}"));
        line.trim_start_matches("    Namespaces:")
            .trim()
            .split(", ")
            .map(|g| {
                let (kinds, label) = g.split_once(" (").expect("KINDS (LABEL)");
                (
                    label.trim_end_matches(')').to_string(),
                    kinds.split(' ').map(str::to_string).collect(),
                )
            })
            .collect()
    };
    let group_of = |groups: &[(String, Vec<String>)], kind: &str| {
        groups
            .iter()
            .find(|(_, k)| k.iter().any(|k| k == kind))
            .map(|(l, _)| l.clone())
            .unwrap_or_default()
    };
    let plain = groups("l");
    let shared = groups("shared");
    for kind in ["net", "ipc", "uts"] {
        assert_eq!(group_of(&plain, kind), "shared with the pod", "{plain:?}");
        assert_eq!(group_of(&shared, kind), "shared with the pod", "{shared:?}");
    }
    assert_eq!(group_of(&plain, "pid"), "own", "{plain:?}");
    assert_eq!(
        group_of(&shared, "pid"),
        "shared with the pod",
        "{shared:?}"
    );
    assert_eq!(group_of(&plain, "mnt"), "own", "{plain:?}");
    // No user or time namespace for pods: the machine's.
    assert_eq!(group_of(&plain, "user"), "host", "{plain:?}");
    assert_eq!(group_of(&plain, "time"), "host", "{plain:?}");
    let all: usize = plain.iter().map(|(_, k)| k.len()).sum();
    assert_eq!(all, 8, "{plain:?}");
    env.teardown();
}
