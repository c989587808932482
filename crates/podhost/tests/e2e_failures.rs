//! End-to-end: failures surface as Kubernetes reasons and leave nothing behind;
//! finished pods and followed logs behave as with kubectl.

mod common;

use std::time::Duration;

use common::{container_status, Env};

#[test]
fn missing_executable_is_a_container_error_and_delete_cleans_up() {
    let env = Env::new();
    env.apply(
        "bad-cmd.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: bad-cmd}\nspec:\n  containers:\n  - {name: app, image: busybox, command: [/no/such/binary]}\n",
    );
    let pod = env.wait_for(
        "bad-cmd",
        "a container error",
        Duration::from_secs(30),
        |p| {
            let r = container_status(p, "app")["state"]["waiting"]["reason"]
                .as_str()
                .unwrap_or("")
                .to_string();
            r == "CreateContainerError" || r == "RunContainerError"
        },
    );
    let waiting = &container_status(&pod, "app")["state"]["waiting"];
    assert!(
        waiting["message"]
            .as_str()
            .unwrap_or("")
            .contains("/no/such/binary"),
        "{waiting}"
    );
    let table = env.ok(&["get", "pods"]);
    assert!(table.contains("ContainerError"), "{table}");
    env.teardown();
}

#[test]
fn never_pod_completes_and_logs_follow_to_the_end() {
    let env = Env::new();
    env.apply(
        "counter.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: counter}\nspec:\n  restartPolicy: Never\n  containers:\n  - {name: count, image: busybox, command: [sh, -c, 'for i in 1 2 3 4 5; do echo line $i; sleep 0.3; done']}\n",
    );
    // Follow while it runs: the stream ends when the container exits, with every line.
    // Wait for the start rather than sleep: sandbox setup (CNI) takes a variable time.
    env.wait_for("counter", "count started", Duration::from_secs(30), |p| {
        let st = &container_status(p, "count")["state"];
        !st["running"].is_null() || !st["terminated"].is_null()
    });
    let out = env.ok(&["logs", "-f", "counter"]);
    assert_eq!(out, "line 1\nline 2\nline 3\nline 4\nline 5\n");
    let pod = env.wait_for("counter", "Succeeded", Duration::from_secs(30), |p| {
        p["status"]["phase"] == "Succeeded"
    });
    let term = &container_status(&pod, "count")["state"]["terminated"];
    assert_eq!(term["reason"], "Completed", "{term}");
    assert_eq!(term["exitCode"], 0);
    let table = env.ok(&["get", "pods"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("counter") && l.contains("0/1") && l.contains("Completed")),
        "{table}"
    );
    // Logs stay readable after the pod finished.
    assert!(env.ok(&["logs", "counter"]).contains("line 5"));
    env.teardown();
}

#[test]
fn failing_never_pod_is_failed_with_exit_code() {
    let env = Env::new();
    env.apply(
        "fail.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: fail}\nspec:\n  restartPolicy: Never\n  containers:\n  - {name: app, image: busybox, command: [sh, -c, 'exit 3']}\n",
    );
    let pod = env.wait_for("fail", "Failed", Duration::from_secs(30), |p| {
        p["status"]["phase"] == "Failed"
    });
    let term = &container_status(&pod, "app")["state"]["terminated"];
    assert_eq!(term["exitCode"], 3);
    assert_eq!(term["reason"], "Error");
    let table = env.ok(&["get", "pods"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("fail") && l.contains("Error")),
        "{table}"
    );
    env.teardown();
}

#[test]
fn graceful_delete_sends_sigterm_first() {
    let env = Env::new();
    std::fs::create_dir_all(env.root.join("out")).expect("out dir");
    env.apply(
        "graceful.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: graceful}\nspec:\n  terminationGracePeriodSeconds: 20\n  volumes: [{name: out, hostPath: {path: PATH}}]\n  containers:\n  - name: app\n    image: busybox\n    command: [sh, -c, 'trap \"echo got TERM > /out/term; exit 0\" TERM; while true; do sleep 0.1; done']\n    volumeMounts: [{name: out, mountPath: /out}]\n"
            .replace("PATH", &env.root.join("out").display().to_string())
            .as_str(),
    );
    env.wait_ready("graceful");
    let t = std::time::Instant::now();
    env.ok(&["delete", "pod", "graceful"]);
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "a container that exits on SIGTERM must not wait for the grace period"
    );
    let term = std::fs::read_to_string(env.root.join("out/term")).unwrap_or_default();
    assert_eq!(term.trim(), "got TERM");
    std::fs::remove_dir_all(env.root.join("out")).expect("clean out");
    env.teardown();
}
