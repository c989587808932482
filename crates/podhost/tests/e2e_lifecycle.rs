//! End-to-end: kubelet lifecycle semantics on real pods (root): init ordering, native
//! sidecars, CrashLoopBackOff, probes, hooks and graceful termination.

mod common;

use std::time::{Duration, Instant};

use common::{condition, container_status, Env};

/// A daemon with a short CrashLoopBackOff (1s, 2s, capped at 2s) so restarts are quick.
fn env() -> Env {
    Env::with_daemon_env(&[
        ("PODHOST_BACKOFF_INITIAL", "1s"),
        ("PODHOST_BACKOFF_MAX", "2s"),
    ])
}

fn exec(env: &Env, pod: &str, c: &str, cmd: &[&str]) -> String {
    let mut args = vec!["exec", pod, "-c", c, "--"];
    args.extend_from_slice(cmd);
    env.ok(&args)
}

fn init_status<'a>(p: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    p["status"]["initContainerStatuses"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or(&serde_json::Value::Null)
}

/// The `get pods` row of `name`.
fn row(env: &Env, name: &str) -> String {
    env.ok(&["get", "pods"])
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn init_containers_run_one_at_a_time_in_order() {
    let env = env();
    env.apply(
        "init.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: init-order}
spec:
  initContainers:
  - name: first
    image: busybox
    command: [sh, -c, "sleep 1; echo first >> /work/order"]
    volumeMounts: [{name: work, mountPath: /work}]
  - name: second
    image: busybox
    command: [sh, -c, "echo second >> /work/order"]
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: app
    image: busybox
    command: [sh, -c, "echo app >> /work/order; exec sleep 3600"]
    volumeMounts: [{name: work, mountPath: /work}]
  volumes:
  - {name: work, emptyDir: {}}
"#,
    );
    // While the first init container runs, kubectl shows Init:0/2.
    let deadline = Instant::now() + common::scaled(Duration::from_secs(5));
    loop {
        let r = row(&env, "init-order");
        if r.contains("Init:0/2") {
            break;
        }
        assert!(Instant::now() < deadline, "{r}");
        std::thread::sleep(Duration::from_millis(50));
    }
    env.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/init-order",
        &common::timeout_flag(60),
    ]);
    let order = exec(&env, "init-order", "app", &["cat", "/work/order"]);
    assert_eq!(order, "first\nsecond\napp\n");
    let p = env.pod("init-order");
    for name in ["first", "second"] {
        let s = init_status(&p, name);
        assert_eq!(s["state"]["terminated"]["reason"], "Completed", "{s}");
        assert_eq!(s["ready"], true, "{s}");
    }
    assert!(condition(&p, "Initialized"));
    assert!(condition(&p, "PodReadyToStartContainers"));
    env.teardown();
}

#[test]
fn sidecar_outlives_main_restarts_and_stops_when_a_job_completes() {
    let env = env();
    // Two pods: main crashing under Always (restarts), and a Job-like one (Never).
    env.apply(
        "sidecar.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: restarts}
spec:
  initContainers:
  - name: helper
    image: busybox
    restartPolicy: Always
    command: [sleep, "3600"]
  containers:
  - name: main
    image: busybox
    command: [sh, -c, "sleep 1; exit 1"]
---
apiVersion: v1
kind: Pod
metadata: {name: job}
spec:
  restartPolicy: Never
  initContainers:
  - name: helper
    image: busybox
    restartPolicy: Always
    command: [sleep, "3600"]
  containers:
  - name: main
    image: busybox
    command: [sh, -c, "sleep 2; echo done"]
"#,
    );
    // The sidecar is running while main starts, and keeps running across main's restarts.
    let p = env.wait_for(
        "restarts",
        "main restarted twice",
        Duration::from_secs(60),
        |p| container_status(p, "main")["restartCount"].as_i64() >= Some(2),
    );
    let helper = init_status(&p, "helper");
    assert!(helper["state"]["running"].is_object(), "{helper}");
    assert_eq!(helper["restartCount"], 0, "{helper}");
    assert_eq!(helper["started"], true, "{helper}");

    // The Job-like pod completes although its sidecar never exits on its own.
    let p = env.wait_for("job", "Succeeded", Duration::from_secs(60), |p| {
        p["status"]["phase"] == "Succeeded"
    });
    let helper = init_status(&p, "helper");
    assert!(
        helper["state"]["terminated"].is_object(),
        "sidecar stopped: {helper}"
    );
    assert_eq!(
        container_status(&p, "main")["state"]["terminated"]["reason"],
        "Completed"
    );
    let r = row(&env, "job");
    assert!(r.contains("Completed"), "{r}");
    assert_eq!(env.ok(&["logs", "job", "-c", "main"]), "done\n");
    env.teardown();
}

#[test]
fn crashing_container_backs_off_and_keeps_its_previous_log() {
    let env = env();
    env.apply(
        "crash.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: crash}
spec:
  containers:
  - name: app
    image: busybox
    command: [sh, -c, "echo run; exit 3"]
"#,
    );
    let mut saw_backoff = false;
    let deadline = Instant::now() + common::scaled(Duration::from_secs(60));
    loop {
        let r = row(&env, "crash");
        saw_backoff |= r.contains("CrashLoopBackOff");
        let p = env.pod("crash");
        let s = container_status(&p, "app");
        if saw_backoff && s["restartCount"].as_i64() >= Some(3) {
            assert_eq!(s["lastState"]["terminated"]["exitCode"], 3, "{s}");
            assert_eq!(s["lastState"]["terminated"]["reason"], "Error", "{s}");
            break;
        }
        assert!(Instant::now() < deadline, "no CrashLoopBackOff: {r}\n{s}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(env.ok(&["logs", "crash", "--previous"]), "run\n");
    let ev = env.ok(&["get", "events"]);
    assert!(ev.contains("BackOff"), "{ev}");
    env.teardown();
}

#[test]
fn failing_liveness_probe_restarts_the_container() {
    let env = env();
    env.apply(
        "live.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: live}
spec:
  containers:
  - name: app
    image: busybox
    command: [sh, -c, "touch /tmp/healthy; sleep 2; rm /tmp/healthy; exec sleep 3600"]
    livenessProbe:
      exec: {command: [cat, /tmp/healthy]}
      periodSeconds: 1
      # Well above what an exec takes, also under emulation (the cgroup-v2 guest): the
      # probe fails because the file is gone, not because it timed out.
      timeoutSeconds: 20
      failureThreshold: 2
      terminationGracePeriodSeconds: 1
"#,
    );
    let p = env.wait_for("live", "a liveness restart", Duration::from_secs(60), |p| {
        container_status(p, "app")["restartCount"].as_i64() >= Some(1)
    });
    assert_eq!(
        container_status(&p, "app")["lastState"]["terminated"]["exitCode"],
        137
    );
    let d = env.ok(&["describe", "pod", "live"]);
    assert!(
        d.contains(
            "Liveness:       exec [cat /tmp/healthy] delay=0s timeout=20s period=1s #success=1 #failure=2"
        ),
        "{d}"
    );
    assert!(
        d.contains("Liveness probe failed: cat: can't open '/tmp/healthy'"),
        "{d}"
    );
    assert!(
        d.contains("Container app failed liveness probe, will be restarted"),
        "{d}"
    );
    env.teardown();
}

#[test]
fn http_readiness_probe_flips_ready() {
    let env = env();
    env.apply(
        "ready.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: ready}
spec:
  containers:
  - name: web
    image: busybox
    command: [sh, -c, "mkdir -p /www; exec httpd -f -p 8080 -h /www"]
    ports: [{name: http, containerPort: 8080}]
    readinessProbe:
      httpGet: {path: /ok, port: http}
      periodSeconds: 1
      failureThreshold: 1
    livenessProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 1
"#,
    );
    env.wait_for("ready", "running", Duration::from_secs(30), |p| {
        container_status(p, "web")["state"]["running"].is_object()
    });
    std::thread::sleep(Duration::from_secs(2));
    let p = env.pod("ready");
    assert!(!condition(&p, "Ready"), "no /ok yet: 404 keeps it unready");
    assert!(row(&env, "ready").contains("0/1"));
    exec(&env, "ready", "web", &["touch", "/www/ok"]);
    env.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/ready",
        &common::timeout_flag(20),
    ]);
    assert!(row(&env, "ready").contains("1/1"));
    exec(&env, "ready", "web", &["rm", "/www/ok"]);
    env.wait_for("ready", "unready", Duration::from_secs(20), |p| {
        !condition(p, "Ready") && !condition(p, "ContainersReady")
    });
    let p = env.pod("ready");
    // The tcpSocket liveness probe kept passing all along.
    assert_eq!(container_status(&p, "web")["restartCount"], 0);
    let ev = env.ok(&["get", "events"]);
    assert!(
        ev.contains("Readiness probe failed: HTTP probe failed with statuscode: 404"),
        "{ev}"
    );
    env.teardown();
}

#[test]
fn pre_stop_runs_before_sigterm_and_delete_shows_terminating() {
    let env = env();
    let out = env.root.join("hook-out");
    std::fs::create_dir_all(&out).expect("dir");
    env.apply(
        "stop.yaml",
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: stop}}
spec:
  terminationGracePeriodSeconds: 10
  containers:
  - name: app
    image: busybox
    command: [sh, -c, "trap 'echo got-TERM >> /out/log; exit 0' TERM; echo started >> /out/log; while true; do sleep 0.2; done"]
    volumeMounts: [{{name: out, mountPath: /out}}]
    lifecycle:
      preStop:
        exec: {{command: [sh, -c, "echo pre-stop >> /out/log; sleep 1"]}}
  volumes:
  - {{name: out, hostPath: {{path: {}}}}}
"#,
            out.display()
        ),
    );
    env.wait_ready("stop");
    env.ok(&["delete", "pod", "stop", "--wait=false"]);
    // The preStop hook takes a second: the pod shows Terminating meanwhile.
    let deadline = Instant::now() + common::scaled(Duration::from_secs(5));
    loop {
        let r = row(&env, "stop");
        if r.contains("Terminating") {
            break;
        }
        assert!(Instant::now() < deadline, "never Terminating: {r}");
        std::thread::sleep(Duration::from_millis(50));
    }
    env.ok(&[
        "wait",
        "--for=delete",
        "pod/stop",
        &common::timeout_flag(30),
    ]);
    let log = std::fs::read_to_string(out.join("log")).expect("hook log");
    assert_eq!(log, "started\npre-stop\ngot-TERM\n");
    env.teardown();
}

/// `delete --force` while a graceful delete is still waiting on a container that ignores
/// SIGTERM: the container is killed at once instead of after the rest of the grace.
#[test]
fn force_delete_cuts_a_running_graceful_delete_short() {
    let env = env();
    env.apply(
        "stubborn.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: stubborn}
spec:
  terminationGracePeriodSeconds: 120
  containers:
  - name: app
    image: busybox
    command: [sh, -c, "trap '' TERM; while true; do sleep 0.2; done"]
"#,
    );
    env.wait_ready("stubborn");
    env.ok(&["delete", "pod", "stubborn", "--wait=false"]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(row(&env, "stubborn").contains("Terminating"));
    env.ok(&["delete", "pod", "stubborn", "--force"]);
    // Well under the 118 s left of the first delete's grace: the limit tells "cut
    // short" from "waited it out", not how fast.
    env.ok(&["wait", "--for=delete", "pod/stubborn", "--timeout=60s"]);
    env.teardown();
}

/// An HTTPS readiness probe against a server with a self-signed certificate (openssl
/// s_server on the host, reached from a hostNetwork pod) passes: kubelet's prober does
/// not check certificates either.
#[test]
fn https_readiness_probe_accepts_a_self_signed_server() {
    let env = env();
    let dir = env.root.join("tls");
    std::fs::create_dir_all(&dir).expect("dir");
    let st = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=probe.invalid"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl (apt-get install openssl)");
    assert!(st.success());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut server = std::process::Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(dir.join("cert.pem"))
        .arg("-key")
        .arg(dir.join("key.pem"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server");
    env.apply(
        "tls.yaml",
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: tls}}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    command: [sleep, "3600"]
    readinessProbe:
      httpGet: {{port: {port}, scheme: HTTPS, path: /}}
      periodSeconds: 1
"#
        ),
    );
    let pod = env.wait_ready("tls");
    assert_eq!(container_status(&pod, "app")["ready"], true);
    let _ = server.kill();
    let _ = server.wait();
    env.teardown();
}

/// A gRPC liveness/readiness probe (grpc.health.v1) against a health server on the
/// host, reached from a hostNetwork pod: Ready while it says SERVING; when it says
/// NOT_SERVING the pod turns unready with kubelet's message in the events.
#[test]
fn grpc_readiness_probe_follows_the_health_service() {
    use tonic_health::ServingStatus;
    let env = env();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (reporter, service) = tonic_health::server::health_reporter();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    rt.block_on(reporter.set_service_status("db", ServingStatus::Serving));
    let incoming = futures_util::stream::unfold(listener, |l| async move {
        let r = l.accept().await.map(|(s, _)| s);
        Some((r, l))
    });
    let server = rt.spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming),
    );
    env.apply(
        "grpc.yaml",
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: grpc}}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    command: [sleep, "3600"]
    readinessProbe:
      grpc: {{port: {port}, service: db}}
      periodSeconds: 1
      failureThreshold: 1
"#
        ),
    );
    env.wait_ready("grpc");
    rt.block_on(reporter.set_service_status("db", ServingStatus::NotServing));
    env.wait_for("grpc", "unready", Duration::from_secs(30), |p| {
        !condition(p, "Ready")
    });
    let described = env.ok(&["describe", "pod", "grpc"]);
    assert!(
        described.contains("service unhealthy (responded with \"NOT_SERVING\")"),
        "{described}"
    );
    server.abort();
    env.teardown();
}
