//! End-to-end: the CLI as a kubectl user drives it (issue 15): names, selectors,
//! re-apply, output formats, pipes, and the verbs beyond the basics.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::registry::Registry;
use common::{bin, busybox_tar, Env};

/// A pod that sleeps, with labels.
fn sleeper(name: &str, labels: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: busybox\n    command: [sleep, \"3600\"]\n"
    )
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Defect 6: a reader that stops early (`| head -1`) ends the CLI by SIGPIPE, as it
/// ends kubectl, never with a panic.
#[test]
fn output_into_a_closed_pipe_ends_by_sigpipe_without_a_panic() {
    let env = Env::new();
    env.apply("a.yaml", &sleeper("a", "app: web"));
    for args in [
        &["get", "pods", "-o", "yaml"][..],
        &["get", "events", "-o", "wide"][..],
        &["get", "pods"][..],
    ] {
        // A pipe whose reading end is closed before podhost writes: its first write fails.
        let (rd, wr) = nix::unistd::pipe().expect("pipe");
        drop(rd);
        let out = Command::new(bin())
            .args(args)
            .env("PODHOST_ROOT", &env.root)
            .stdin(Stdio::null())
            .stdout(Stdio::from(wr))
            .stderr(Stdio::piped())
            .output()
            .expect("run podhost");
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGPIPE),
            "{args:?}: {:?} {err}",
            out.status
        );
    }
    env.teardown();
}

/// Defect 8: the daemon's flags belong to `serve`; client verbs neither show nor take them.
#[test]
fn daemon_flags_only_on_serve() {
    let help = |args: &[&str]| {
        let out = Command::new(bin()).args(args).output().expect("help");
        stdout(&out)
    };
    let serve = help(&["serve", "--help"]);
    for flag in [
        "--cgroup-parent",
        "--pod-pids-limit",
        "--cni-conf-dir",
        "--cluster-cidr",
        "--registry-config",
        "--image-gc-high-threshold",
    ] {
        assert!(serve.contains(flag), "serve --help lacks {flag}:\n{serve}");
        for verb in ["get", "apply", "logs", "exec", "delete"] {
            let h = help(&[verb, "--help"]);
            assert!(!h.contains(flag), "{verb} --help shows {flag}:\n{h}");
        }
    }
    let out = Command::new(bin())
        .args(["get", "pods", "--cluster-cidr", "10.0.0.0/8"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unexpected argument '--cluster-cidr'"),
        "{}",
        stderr(&out)
    );
}

/// Defect 7: several names print what was found and one error per missing name;
/// `pod/NAME` is taken by exec, logs, describe and delete.
#[test]
fn several_names_and_pod_slash_name() {
    let env = Env::new();
    env.apply("a.yaml", &sleeper("a", "app: web"));
    env.apply("b.yaml", &sleeper("b", "app: db"));
    env.wait_ready("a");
    env.wait_ready("b");
    let out = env.run(&["get", "pods", "a", "missing", "b"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let table = stdout(&out);
    let names: Vec<&str> = table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, ["a", "b"], "{table}");
    assert_eq!(
        stderr(&out).trim(),
        "Error from server (NotFound): pods \"missing\" not found"
    );
    let out = env.run(&["get", "configmaps", "nope", "-o", "name"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("configmaps \"nope\" not found"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("No resources found"));

    assert_eq!(env.ok(&["exec", "pod/a", "--", "echo", "hi"]).trim(), "hi");
    env.ok(&[
        "exec",
        "a",
        "--",
        "sh",
        "-c",
        "echo to-the-log > /proc/1/fd/1",
    ]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !env.ok(&["logs", "pod/a"]).contains("to-the-log") {
        assert!(std::time::Instant::now() < deadline, "log line never came");
        std::thread::sleep(Duration::from_millis(100));
    }
    let d = env.ok(&["describe", "pod/a"]);
    assert!(d.starts_with("Name:             a\n"), "{d}");
    let out = env.run(&["describe", "pods", "a", "nope", "b"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("Name:             a\n") && text.contains("Name:             b\n"));
    assert!(
        stderr(&out).contains("pods \"nope\" not found"),
        "{}",
        stderr(&out)
    );
    env.ok(&["delete", "pod/b", "--grace-period=1"]);
    env.teardown();
}

/// Defect 5: set-based selectors select as the API server's; an invalid selector is an
/// error, not an empty answer.
#[test]
fn set_based_and_invalid_selectors() {
    let env = Env::new();
    env.apply("a.yaml", &sleeper("a", "app: web, tier: front"));
    env.apply("b.yaml", &sleeper("b", "app: db"));
    env.apply("c.yaml", &sleeper("c", "tier: batch"));
    let names = |sel: &str| -> Vec<String> {
        env.ok(&["get", "pods", "-l", sel, "-o", "name"])
            .lines()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(names("!app"), ["pod/c"]);
    assert_eq!(names("app in (web,db)"), ["pod/a", "pod/b"]);
    assert_eq!(names("app notin (web)"), ["pod/b", "pod/c"]);
    assert_eq!(names("app,tier"), ["pod/a"]);
    assert_eq!(names("app!=web"), ["pod/b", "pod/c"]);
    for bad in ["app in (web", "app=web,", "=x", "app==we b"] {
        let err = env.fails(&["get", "pods", "-l", bad]);
        assert!(
            err.contains("unable to parse requirement"),
            "{bad:?}: {err}"
        );
    }
    let err = env.fails(&["get", "cm", "-l", "app in ()"]);
    assert!(err.contains("unable to parse requirement"), "{err}");
    env.teardown();
}

/// Defect 1: applying a file again reports each object `unchanged` or `configured`;
/// labels and annotations of a pod update in place; one refused object (a spec change)
/// does not keep the file's other objects from being applied.
#[test]
fn reapply_is_per_object_and_updates_labels_and_annotations() {
    let env = Env::new();
    let cm = |v: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  k: \"{v}\"\n")
    };
    let pod = |labels: &str, annotations: &str, cmd: &str| {
        sleeper("web", labels)
            .replace(
                "  labels:",
                &format!("  annotations: {{{annotations}}}\n  labels:"),
            )
            .replace("\"3600\"", cmd)
    };
    let file = |labels: &str, ann: &str, cmd: &str, v: &str| {
        format!("{}---\n{}", pod(labels, ann, cmd), cm(v))
    };
    let out = env.apply("f.yaml", &file("app: web", "note: a", "\"3600\"", "1"));
    assert_eq!(out, "pod/web created\nconfigmap/cfg created\n");
    env.wait_ready("web");
    let out = env.apply("f.yaml", &file("app: web", "note: a", "\"3600\"", "1"));
    assert_eq!(out, "pod/web unchanged\nconfigmap/cfg unchanged\n");
    let out = env.apply(
        "f.yaml",
        &file("app: web, v: \"2\"", "note: b", "\"3600\"", "1"),
    );
    assert_eq!(out, "pod/web configured\nconfigmap/cfg unchanged\n");
    let p = env.pod("web");
    assert_eq!(p["metadata"]["labels"]["v"], "2", "{p}");
    assert_eq!(p["metadata"]["annotations"]["note"], "b", "{p}");
    assert_eq!(
        env.ok(&["get", "pods", "-l", "v=2", "-o", "name"]),
        "pod/web\n"
    );
    // The pod keeps running: the change is in place.
    assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 0);

    // A spec change is refused for the pod; the ConfigMap in the same file is applied.
    let path = env.manifest(
        "f.yaml",
        &file("app: web, v: \"2\"", "note: b", "\"7200\"", "2"),
    );
    let out = env.run(&["apply", "-f", &path]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "configmap/cfg configured\n");
    assert!(
        stderr(&out).contains("The Pod \"web\" is invalid: spec: Forbidden"),
        "{}",
        stderr(&out)
    );
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["get", "cm", "cfg", "-o", "json"])).expect("json");
    assert_eq!(v["data"]["k"], "2");
    // Labels survive a daemon restart: the worker writes them into the pod's record.
    let mut env = env;
    let uid = p["metadata"]["uid"].as_str().expect("uid").to_string();
    let record = env.root.join("lib/pods").join(format!("{uid}.json"));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let saved = |path: &std::path::Path| -> Option<serde_json::Value> {
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
    };
    while saved(&record).and_then(|r| r.pointer("/pod/metadata/annotations/note").cloned())
        != Some(serde_json::json!("b"))
    {
        assert!(std::time::Instant::now() < deadline, "labels never saved");
        std::thread::sleep(Duration::from_millis(100));
    }
    env.kill_daemon();
    env.start_daemon();
    assert_eq!(env.pod("web")["metadata"]["labels"]["v"], "2");
    env.teardown();
}

/// Defect 9: `status.hostIP` is the node's address, the same the downward API gives.
#[test]
fn host_ip_is_the_nodes_address_everywhere() {
    let env = Env::new();
    env.apply(
        "h.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: h\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: busybox\n    command: [sleep, \"3600\"]\n    env:\n    - name: HOST\n      valueFrom: {fieldRef: {fieldPath: status.hostIP}}\n",
    );
    let p = env.wait_ready("h");
    let status_ip = p["status"]["hostIP"].as_str().expect("hostIP").to_string();
    assert_eq!(p["status"]["hostIPs"][0]["ip"], status_ip.as_str(), "{p}");
    let env_ip = env.ok(&["exec", "h", "--", "sh", "-c", "echo $HOST"]);
    assert_eq!(env_ip.trim(), status_ip);
    // The address of this machine's default route, when it has one (not loopback).
    let routed = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("192.0.2.1:9")?;
            s.local_addr()
        })
        .map(|a| a.ip().to_string());
    if let Ok(ip) = routed {
        assert_eq!(status_ip, ip);
    }
    let d = env.ok(&["describe", "pod", "h"]);
    assert!(d.contains(&format!("/{status_ip}\n")), "{d}");
    env.teardown();
}

/// Defect 4: which tags were loaded from an archive is known per tag. `busybox` loaded
/// from an archive runs offline with `imagePullPolicy: Always` although the same image
/// was also pulled from a registry under another name (which gave its ID a registry
/// digest); that other name, pulled from a registry, is asked again, and the failed
/// pull says why (its cause chain).
#[test]
fn loaded_tag_runs_offline_with_always_and_pull_errors_show_their_cause() {
    let env = Env::new();
    let reg = Registry::start(None);
    reg.push(
        &format!("oci-archive:{}", busybox_tar().display()),
        "test/busybox:1",
        false,
    );
    let pulled = format!("{}/test/busybox:1", reg.addr);
    env.ok(&["pull", &pulled]);
    let images = env.ok(&["images"]);
    let ids: Vec<&str> = images
        .lines()
        .filter(|l| l.contains("busybox"))
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    assert!(
        ids.len() == 2 && ids[0] == ids[1],
        "one image, two names:\n{images}"
    );
    // Offline: the registry is gone, and docker.io is never reachable from the tests.
    drop(reg);
    let pod = |name: &str, image: &str| {
        format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {image}\n    imagePullPolicy: Always\n    command: [sleep, \"3600\"]\n")
    };
    env.apply("loaded.yaml", &pod("loaded", "busybox"));
    env.wait_ready("loaded");
    env.apply("pulled.yaml", &pod("pulled", &pulled));
    let p = env.wait_for("pulled", "a pull error", Duration::from_secs(60), |p| {
        let reason = p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"].as_str();
        matches!(reason, Some("ErrImagePull" | "ImagePullBackOff"))
    });
    let msg = p["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(msg.contains("refused"), "the cause is missing: {msg}");
    env.teardown();
}

/// Defect 11: describe shows what kubectl's does: limits and requests, where each
/// environment value comes from, envFrom, the volumes' sources, host ports, RFC 1123
/// times, and probe errors in Go's words.
#[test]
fn describe_pod_like_kubectl() {
    let env = Env::new();
    let host_port = 20000 + rand::random::<u16>() % 20000;
    let yaml = format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: cfg}}
data: {{color: blue}}
---
apiVersion: v1
kind: Secret
metadata: {{name: sec}}
stringData: {{password: hunter2}}
---
apiVersion: v1
kind: Pod
metadata:
  name: d
  labels: {{app: d}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: [sleep, "3600"]
    ports:
    - {{containerPort: 8080, hostPort: {host_port}}}
    resources:
      limits: {{cpu: 500m, memory: 64Mi}}
      requests: {{cpu: 250m, memory: 32Mi}}
    readinessProbe:
      tcpSocket: {{port: 1}}
      periodSeconds: 1
    envFrom:
    - configMapRef: {{name: cfg}}
      prefix: CFG_
    - secretRef: {{name: sec}}
    env:
    - name: COLOR
      valueFrom: {{configMapKeyRef: {{name: cfg, key: color}}}}
    - name: PASSWORD
      valueFrom: {{secretKeyRef: {{name: sec, key: password}}}}
    - name: POD
      valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
    - name: CPU
      valueFrom: {{resourceFieldRef: {{resource: limits.cpu}}}}
    volumeMounts:
    - {{name: c, mountPath: /c}}
    - {{name: s, mountPath: /s}}
    - {{name: info, mountPath: /info}}
    - {{name: all, mountPath: /all}}
  volumes:
  - name: c
    configMap: {{name: cfg}}
  - name: s
    secret: {{secretName: sec}}
  - name: info
    downwardAPI:
      items:
      - {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}
  - name: all
    projected:
      sources:
      - configMap: {{name: cfg}}
      - secret: {{name: sec}}
"#
    );
    env.apply("d.yaml", &yaml);
    env.wait_for("d", "running", Duration::from_secs(60), |p| {
        p["status"]["containerStatuses"][0]["state"]["running"].is_object()
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let d = loop {
        let d = env.ok(&["describe", "pod", "d"]);
        if d.contains("Readiness probe failed") {
            break d;
        }
        assert!(std::time::Instant::now() < deadline, "no probe event:\n{d}");
        std::thread::sleep(Duration::from_millis(200));
    };
    for want in [
        "    Port:           8080/TCP\n",
        &format!("    Host Port:      {host_port}/TCP\n"),
        "    Limits:\n      cpu:     500m\n      memory:  64Mi\n",
        "    Requests:\n      cpu:     250m\n      memory:  32Mi\n",
        "    Environment Variables from:\n",
        "cfg   ConfigMap with prefix 'CFG_'   Optional: false",
        "sec   Secret                         Optional: false",
        "COLOR:      <set to the key 'color' of config map 'cfg'>   Optional: false",
        "PASSWORD:   <set to the key 'password' in secret 'sec'>   Optional: false",
        "POD:        d (v1:metadata.name)",
        "CPU:        1 (limits.cpu)",
        "ConfigMap (a volume populated by a ConfigMap)",
        "Secret (a volume populated by a Secret)",
        "SecretName:   sec",
        "DownwardAPI (a volume populated by information about the pod)",
        "metadata.labels -> labels",
        "Projected (a volume that contains injected data from multiple sources)",
        "ConfigMapName:       cfg",
        "connect: connection refused",
    ] {
        assert!(d.contains(want), "describe lacks {want:?}:\n{d}");
    }
    assert!(!d.contains("hunter2"), "a secret value in describe:\n{d}");
    assert!(!d.contains("os error"), "{d}");
    let start = d
        .lines()
        .find_map(|l| l.strip_prefix("Start Time:"))
        .expect("Start Time")
        .trim();
    // RFC 1123 with a numeric zone: `Mon, 07 Dec 2026 05:35:04 +0000`.
    let parts: Vec<&str> = start.split(' ').collect();
    assert!(
        parts.len() == 6 && parts[0].ends_with(',') && parts[5].starts_with('+'),
        "{start}"
    );
    env.teardown();
}

/// Defect 10: a command missing from the image is a start error as Kubernetes shows
/// it: the container terminated with `StartError` (exit 128), the pod waiting in
/// `RunContainerError` or back-off, and the message `exec: "x": executable file not
/// found in $PATH`, not libcontainer's chain.
#[test]
fn missing_executable_is_a_start_error() {
    let env = Env::new();
    env.apply(
        "x.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: busybox\n    command: [no-such-program, arg]\n  - name: abs\n    image: busybox\n    command: [/bin/nope]\n",
    );
    let p = env.wait_for("x", "a start error", Duration::from_secs(60), |p| {
        let st = &p["status"]["containerStatuses"];
        (0..2).all(|i| {
            let w = st[i]["state"]["waiting"]["reason"].as_str().unwrap_or("");
            let t = st[i]["lastState"]["terminated"]["reason"]
                .as_str()
                .unwrap_or("");
            t == "StartError" || matches!(w, "RunContainerError" | "CrashLoopBackOff")
        })
    });
    let text = p.to_string();
    assert!(
        text.contains(r#"exec: \"no-such-program\": executable file not found in $PATH"#),
        "{text}"
    );
    assert!(
        text.contains(r#"exec: \"/bin/nope\": stat /bin/nope: no such file or directory"#),
        "{text}"
    );
    assert!(!text.contains("CreateContainerError"), "{text}");
    let table = env.ok(&["get", "pods", "x"]);
    assert!(
        table.contains("RunContainerError")
            || table.contains("StartError")
            || table.contains("CrashLoopBackOff"),
        "{table}"
    );
    env.teardown();
}

/// `get`'s kubectl flags: several types, jsonpath and custom columns, labels as
/// columns, sorting, no headers, field selectors; `-w` prints changes as they come.
#[test]
fn get_flags_and_watch() {
    let env = Env::new();
    env.apply("a.yaml", &sleeper("a", "app: web, tier: front"));
    env.apply("b.yaml", &sleeper("b", "app: db"));
    env.apply(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {k: v}\n",
    );
    env.wait_ready("a");
    env.wait_ready("b");
    assert_eq!(
        env.ok(&["get", "pods", "-o", "jsonpath={.items[*].metadata.name}"]),
        "a b"
    );
    assert_eq!(
        env.ok(&["get", "pod", "a", "-o", "jsonpath={.metadata.labels.app}"]),
        "web"
    );
    assert_eq!(
        env.ok(&[
            "get",
            "pods",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.status.phase}{\"\\n\"}{end}"
        ]),
        "a=Running\nb=Running\n"
    );
    assert_eq!(
        env.ok(&[
            "get",
            "pods",
            "-o",
            "custom-columns=NAME:.metadata.name,TIER:.metadata.labels.tier",
            "--sort-by=.metadata.name"
        ]),
        "NAME   TIER\na      front\nb      <none>\n"
    );
    assert_eq!(
        env.ok(&[
            "get",
            "pods",
            "--sort-by={.metadata.labels.app}",
            "-o",
            "name"
        ]),
        "pod/b\npod/a\n"
    );
    let t = env.ok(&["get", "pods", "--show-labels", "-L", "tier", "--no-headers"]);
    let a_line = t.lines().find(|l| l.starts_with("a ")).expect("row a");
    assert!(
        a_line.contains("front") && a_line.ends_with("app=web,tier=front"),
        "{t}"
    );
    assert!(!t.contains("NAME"), "{t}");
    assert_eq!(
        env.ok(&[
            "get",
            "pods",
            "--field-selector",
            "status.phase=Running,metadata.name!=a",
            "-o",
            "name"
        ]),
        "pod/b\n"
    );
    let err = env.fails(&["get", "pods", "--field-selector", "spec.nope=x"]);
    assert!(
        err.contains("field label not supported: spec.nope"),
        "{err}"
    );
    let both = env.ok(&["get", "pods,cm"]);
    assert!(
        both.contains("pod/a") && both.contains("configmap/cfg"),
        "{both}"
    );
    assert_eq!(
        env.ok(&["get", "pod/a", "cm/cfg", "-o", "name"]),
        "pod/a\nconfigmap/cfg\n"
    );

    // -w: a new pod appears, then its changes, on lines of their own.
    let mut watch = Command::new(bin())
        .args(["get", "pods", "-w", "--output-watch-events"])
        .env("PODHOST_ROOT", &env.root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("watch");
    let stdout_pipe = watch.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout_pipe)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    env.apply("c.yaml", &sleeper("c", "app: new"));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    // c comes as ADDED, then MODIFIED lines until it runs (or ADDED already running,
    // when the daemon was quicker than a poll).
    while !lines
        .iter()
        .any(|l: &String| l.contains(" c ") && l.contains("Running"))
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => panic!("no Running line for c: {lines:?}"),
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    let _ = reader.join();
    assert!(
        lines[0].starts_with("EVENT") && lines[0].contains("NAME"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ADDED") && l.contains(" c ")),
        "{lines:?}"
    );
    env.teardown();
}

/// logs --tail/--since/--all-containers/--prefix/-l; delete --all/-l/--ignore-not-found;
/// apply -f DIR and --dry-run; label and annotate; ps --pod.
#[test]
fn logs_delete_apply_label_and_ps_flags() {
    let env = Env::new();
    let dir = env.root.join("manifests");
    std::fs::create_dir_all(&dir).expect("dir");
    let talker = |name: &str| {
        format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{app: talk}}\nspec:\n  terminationGracePeriodSeconds: 1\n  initContainers:\n  - name: init\n    image: busybox\n    command: [sh, -c, 'echo init-line']\n  containers:\n  - name: main\n    image: busybox\n    command: [sh, -c, 'for i in 1 2 3 4 5; do echo line-$i; done; sleep 3600']\n")
    };
    std::fs::write(dir.join("t1.yaml"), talker("t1")).expect("write");
    std::fs::write(dir.join("t2.yml"), talker("t2")).expect("write");
    std::fs::write(dir.join("notes.txt"), "not a manifest").expect("write");
    let d = dir.to_str().expect("utf8");
    assert_eq!(
        env.ok(&["apply", "-f", d, "--dry-run=server"]),
        "pod/t1 created (server dry run)\npod/t2 created (server dry run)\n"
    );
    assert!(
        env.run(&["get", "pod", "t1"]).status.code() == Some(1),
        "dry run created a pod"
    );
    assert_eq!(
        env.ok(&["apply", "-f", d]),
        "pod/t1 created\npod/t2 created\n"
    );
    assert_eq!(
        env.ok(&["apply", "-f", d, "--dry-run=client"]),
        "pod/t1 unchanged (dry run)\npod/t2 unchanged (dry run)\n"
    );
    env.wait_ready("t1");
    env.wait_ready("t2");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !env.ok(&["logs", "t1"]).contains("line-5") {
        assert!(std::time::Instant::now() < deadline, "no log");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(env.ok(&["logs", "t1", "--tail=2"]), "line-4\nline-5\n");
    assert_eq!(env.ok(&["logs", "t1", "--tail=0"]), "");
    assert_eq!(
        env.ok(&["logs", "t1", "--since=1h", "--tail=1"]),
        "line-5\n"
    );
    assert_eq!(
        env.ok(&["logs", "t1", "--since-time=2999-01-01T00:00:00Z"]),
        ""
    );
    assert_eq!(
        env.ok(&["logs", "pod/t1", "--all-containers", "--prefix", "--tail=1"]),
        "[pod/t1/init] init-line\n[pod/t1/main] line-5\n"
    );
    let sel = env.ok(&["logs", "-l", "app=talk", "--tail=1", "--prefix"]);
    assert_eq!(sel, "[pod/t1/main] line-5\n[pod/t2/main] line-5\n");

    // label and annotate, with kubectl's overwrite rule.
    assert_eq!(
        env.ok(&["label", "pod", "t1", "tier=a"]),
        "pod/t1 labeled\n"
    );
    let err = env.fails(&["label", "pod", "t1", "tier=b"]);
    assert!(
        err.contains("'tier' already has a value (a), and --overwrite is false"),
        "{err}"
    );
    assert_eq!(
        env.ok(&["label", "pod/t1", "tier=b", "--overwrite"]),
        "pod/t1 labeled\n"
    );
    assert_eq!(
        env.ok(&["label", "pods", "-l", "app=talk", "team=x"]),
        "pod/t1 labeled\npod/t2 labeled\n"
    );
    assert_eq!(
        env.ok(&["get", "pods", "-l", "tier=b", "-o", "name"]),
        "pod/t1\n"
    );
    assert_eq!(env.ok(&["label", "pod", "t1", "tier-"]), "pod/t1 labeled\n");
    assert_eq!(
        env.ok(&["annotate", "pod", "t2", "note=hi"]),
        "pod/t2 annotated\n"
    );
    assert_eq!(
        env.ok(&["annotate", "pod", "t2", "note=hi"]),
        "pod/t2 not annotated\n"
    );
    assert_eq!(env.pod("t2")["metadata"]["annotations"]["note"], "hi");
    assert!(env.pod("t1")["metadata"]["labels"].get("tier").is_none());

    // ps --pod: that pod's pause and containers only.
    let ps = env.ok(&["ps", "-a", "--pod", "t1"]);
    assert!(ps.lines().skip(1).all(|l| l.contains("default/t1")), "{ps}");
    assert!(ps.lines().any(|l| l.contains(" main ")), "{ps}");

    // delete: --ignore-not-found, -l, --all.
    env.ok(&["delete", "pod", "nope", "--ignore-not-found"]);
    assert!(env.run(&["delete", "pod", "nope"]).status.code() == Some(1));
    let out = env.ok(&[
        "delete",
        "pods",
        "-l",
        "tier!=zzz,team=x",
        "--grace-period=1",
    ]);
    assert_eq!(out, "pod \"t1\" deleted\npod \"t2\" deleted\n");
    env.apply(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {k: v}\n",
    );
    assert_eq!(
        env.ok(&["delete", "cm", "--all"]),
        "configmap \"cfg\" deleted\n"
    );
    env.teardown();
}

/// `run`: a one-off pod as kubectl's generator makes it; a second run of the same name
/// is refused, not an update.
#[test]
fn run_creates_a_one_off_pod() {
    let env = Env::new();
    assert_eq!(
        env.ok(&[
            "run",
            "r",
            "--image=busybox",
            "--restart=Never",
            "--",
            "echo",
            "hi"
        ]),
        "pod/r created\n"
    );
    let p = env.wait_for("r", "Succeeded", Duration::from_secs(60), |p| {
        p["status"]["phase"] == "Succeeded"
    });
    assert_eq!(p["metadata"]["labels"]["run"], "r");
    assert_eq!(p["spec"]["containers"][0]["args"][1], "hi");
    assert_eq!(env.ok(&["logs", "r"]), "hi\n");
    let err = env.fails(&["run", "r", "--image=busybox", "-l", "x=y"]);
    assert!(err.contains("pods \"r\" already exists"), "{err}");
    assert!(env.pod("r")["metadata"]["labels"].get("x").is_none());
    let yaml = env.ok(&[
        "run",
        "s",
        "--image=busybox",
        "--command",
        "--env",
        "A=1",
        "--dry-run=client",
        "-o",
        "yaml",
        "--",
        "sleep",
        "5",
    ]);
    assert!(
        yaml.contains("kind: Pod") && yaml.contains("- sleep") && yaml.contains("name: A"),
        "{yaml}"
    );
    assert_eq!(env.run(&["get", "pod", "s"]).status.code(), Some(1));
    // Attached sessions are in e2e_debug; --rm alone is refused as kubectl refuses it.
    let err = env.fails(&["run", "t", "--image=busybox", "--rm"]);
    assert!(err.contains("attached containers"), "{err}");
    env.teardown();
}

/// `cp` both ways, a file and a directory, through the container's tar.
#[test]
fn cp_both_directions() {
    let env = Env::new();
    env.apply("a.yaml", &sleeper("a", "app: web"));
    env.wait_ready("a");
    let local = env.root.join("cp");
    std::fs::create_dir_all(local.join("dir/sub")).expect("dirs");
    std::fs::write(local.join("file.txt"), "hello\n").expect("write");
    std::fs::write(local.join("dir/sub/deep.txt"), "deep\n").expect("write");
    let l = |p: &str| local.join(p).display().to_string();
    env.ok(&["cp", &l("file.txt"), "a:/tmp/copied.txt"]);
    assert_eq!(
        env.ok(&["exec", "a", "--", "cat", "/tmp/copied.txt"]),
        "hello\n"
    );
    env.ok(&["cp", &l("dir"), "default/a:/tmp/tree"]);
    assert_eq!(
        env.ok(&["exec", "a", "--", "cat", "/tmp/tree/sub/deep.txt"]),
        "deep\n"
    );
    env.ok(&[
        "exec",
        "a",
        "--",
        "sh",
        "-c",
        "mkdir -p /srv/out && echo from-pod > /srv/out/f",
    ]);
    env.ok(&["cp", "a:/srv/out", &l("back")]);
    assert_eq!(
        std::fs::read_to_string(local.join("back/f")).expect("read"),
        "from-pod\n"
    );
    env.ok(&["cp", "a:/tmp/copied.txt", &l("back")]);
    assert_eq!(
        std::fs::read_to_string(local.join("back/copied.txt")).expect("read"),
        "hello\n"
    );
    let err = env.fails(&["cp", "a:/nope", &l("x")]);
    assert!(err.contains("exited with"), "{err}");
    env.teardown();
}

/// The learner's view: describe says which container listens on which address.
#[test]
fn describe_shows_who_listens_where() {
    let env = Env::new();
    env.apply(
        "l.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: l\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: web\n    image: busybox\n    command: [httpd, -f, -p, \"0.0.0.0:8080\"]\n  - name: db\n    image: busybox\n    command: [httpd, -f, -p, \"127.0.0.1:5432\"]\n  - name: idle\n    image: busybox\n    command: [sleep, \"3600\"]\n",
    );
    env.wait_ready("l");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let d = loop {
        let d = env.ok(&["describe", "pod", "l"]);
        if d.contains("0.0.0.0:8080/TCP (httpd)") && d.contains("127.0.0.1:5432/TCP (httpd)") {
            break d;
        }
        assert!(std::time::Instant::now() < deadline, "{d}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let idle = d.split("  idle:").nth(1).expect("idle section");
    assert!(idle.contains("Listening:      <none>"), "{d}");
    env.teardown();
}
