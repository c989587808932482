//! End-to-end: the pod worker answers while it is busy (issues 15 and 16). A delete is
//! taken in the middle of a long start, cuts a running stop, hook or kill short; status
//! and events show as things happen; failed creates back off and their events are
//! counted; a pod asking for too many containers is refused.
//!
//! Time bounds here are generous ceilings against "waits behind the work", never
//! benchmarks: each is far below what the old behaviour took (stated per test).

mod common;

use std::time::{Duration, Instant};

use common::{container_status, Env};

/// Short back-offs: 1 s, doubled, capped at 4 s.
fn env() -> Env {
    Env::with_daemon_env(&[
        ("PODHOST_BACKOFF_INITIAL", "1s"),
        ("PODHOST_BACKOFF_MAX", "4s"),
    ])
}

fn init_status<'a>(p: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    p["status"]["initContainerStatuses"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or(&serde_json::Value::Null)
}

/// The reasons of the pod's events, as `describe` lists them.
fn described(env: &Env, name: &str) -> String {
    env.ok(&["describe", "pod", name])
}

/// Wait until `describe` shows every one of `reasons` among the events.
fn wait_events(env: &Env, name: &str, reasons: &[&str], timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let d = described(env, name);
        let events = d.split("Events:").nth(1).unwrap_or_default();
        if reasons.iter().all(|r| events.contains(r)) {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "events {reasons:?} not shown within {timeout:?}:\n{d}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `podhost ARGS`, and how long it took.
fn timed(env: &Env, args: &[&str]) -> Duration {
    let t = Instant::now();
    env.ok(args);
    t.elapsed()
}

/// A 300-container pod is being started (about 7 containers a second: most of a
/// minute); a delete meanwhile is taken before the next container, shown at once, and
/// the pod goes without starting the rest. The old worker read orders only between
/// syncs: the delete waited until all 300 had started, and the status showed none of
/// them until then.
#[test]
fn delete_of_a_300_container_pod_during_its_start_is_taken_at_once() {
    let env = env();
    let mut yaml = String::from(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: many}\nspec:\n  terminationGracePeriodSeconds: 2\n  containers:\n",
    );
    for i in 0..300 {
        yaml.push_str(&format!(
            "  - {{name: c{i}, image: busybox, command: [sleep, \"3600\"]}}\n"
        ));
    }
    env.apply("many.yaml", &yaml);
    let running = |p: &serde_json::Value| {
        p["status"]["containerStatuses"].as_array().map_or(0, |cs| {
            cs.iter()
                .filter(|c| c["state"]["running"].is_object())
                .count()
        })
    };
    // The status follows the start as it goes (not all 300 at the end).
    let p = env.wait_for(
        "many",
        "a few containers shown running while the others start",
        Duration::from_secs(60),
        |p| (3..300).contains(&running(p)),
    );
    assert_ne!(p["status"]["phase"], "Running", "still starting");
    env.ok(&["delete", "pod", "many", "--wait=false"]);
    let p = env.pod("many");
    assert!(
        p["metadata"]["deletionTimestamp"].is_string(),
        "the delete is taken during the start: {}",
        p["metadata"]
    );
    let started = running(&p);
    assert!(started < 300, "{started} containers started");
    let t = Instant::now();
    env.ok(&["wait", "--for=delete", "pod/many", "--timeout=120s"]);
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "deleted in {:?}",
        t.elapsed()
    );
    env.teardown();
}

/// A native sidecar that ignores SIGTERM takes its 20 s grace when the main container
/// has exited: meanwhile the main container shows terminated, the sidecar running.
/// Before, the status stayed `2/2 Running` for the whole grace.
#[test]
fn native_sidecar_pod_shows_its_exited_main_container_at_once() {
    let env = env();
    env.apply(
        "sc.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: sc}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 20
  initContainers:
  - {name: log, image: busybox, restartPolicy: Always, command: [sleep, "3600"]}
  containers:
  - {name: main, image: busybox, command: [sh, -c, "sleep 2"]}
"#,
    );
    let p = env.wait_for(
        "sc",
        "main shown terminated",
        Duration::from_secs(15),
        |p| container_status(p, "main")["state"]["terminated"].is_object(),
    );
    assert!(
        init_status(&p, "log")["state"]["running"].is_object(),
        "the sidecar is still stopping: {}",
        p["status"]
    );
    assert_ne!(p["status"]["phase"], "Succeeded");
    env.wait_for("sc", "Succeeded", Duration::from_secs(60), |p| {
        p["status"]["phase"] == "Succeeded"
    });
    env.teardown();
}

/// A postStart hook fails and the container (ignoring SIGTERM) is killed within the
/// pod's 60 s: the Started, FailedPostStartHook and Killing events show as they
/// happen, and `delete --grace-period=1` cuts the kill short. Before, the pod showed
/// ContainerCreating with no such event for the whole kill, and the delete waited it out.
#[test]
fn failed_post_start_shows_at_once_and_a_short_delete_cuts_its_kill() {
    let env = env();
    env.apply(
        "ps.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: ps}
spec:
  terminationGracePeriodSeconds: 60
  containers:
  - name: web
    image: busybox
    command: [sleep, "3600"]
    lifecycle:
      postStart: {exec: {command: [sh, -c, "echo no >&2; exit 3"]}}
"#,
    );
    let d = wait_events(
        &env,
        "ps",
        &["Started", "FailedPostStartHook", "Killing"],
        Duration::from_secs(20),
    );
    assert!(!d.contains("ContainerCreating"), "{d}");
    let took = timed(&env, &["delete", "pod", "ps", "--grace-period=1"]);
    assert!(took < Duration::from_secs(20), "delete took {took:?}");
    env.teardown();
}

/// A liveness probe kills a container that ignores SIGTERM, in a pod with a 120 s grace:
/// the Unhealthy and Killing events show at once, and `delete --force` ends it in
/// seconds. Before, neither event showed and the force delete waited for the kill.
#[test]
fn force_delete_during_a_liveness_restart_completes_in_seconds() {
    let env = env();
    env.apply(
        "lv.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: lv}
spec:
  terminationGracePeriodSeconds: 120
  containers:
  - name: web
    image: busybox
    command: [sleep, "3600"]
    livenessProbe: {exec: {command: ["false"]}, periodSeconds: 1, failureThreshold: 1}
"#,
    );
    wait_events(
        &env,
        "lv",
        &["Unhealthy", "Killing"],
        Duration::from_secs(30),
    );
    let took = timed(&env, &["delete", "pod", "lv", "--force"]);
    assert!(took < Duration::from_secs(20), "force delete took {took:?}");
    env.teardown();
}

/// A pod deleted with its 120 s grace, the container ignoring SIGTERM: a force delete
/// meanwhile ends it in seconds.
#[test]
fn force_delete_during_a_120s_graceful_stop_completes_in_seconds() {
    let env = env();
    env.apply(
        "gs.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: gs}
spec:
  terminationGracePeriodSeconds: 120
  containers:
  - {name: web, image: busybox, command: [sleep, "3600"]}
"#,
    );
    env.wait_ready("gs");
    env.ok(&["delete", "pod", "gs", "--wait=false"]);
    wait_events(&env, "gs", &["Killing"], Duration::from_secs(10));
    let took = timed(&env, &["delete", "pod", "gs", "--force"]);
    assert!(took < Duration::from_secs(20), "force delete took {took:?}");
    env.teardown();
}

/// Files the pod's shim left under the run dir with this suffix.
fn files_ending(dir: &std::path::Path, suffix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(files_ending(&p, suffix));
        } else if p.to_string_lossy().ends_with(suffix) {
            out.push(p.display().to_string());
        }
    }
    out
}

/// A container whose command is not in the image cannot be created: tries back off
/// (1 s, 2 s, 4 s, 4 s … here), each leaves no error file behind, and the events are
/// one counted series shown as kubectl does, `(xN over Ts)`. Before, the worker tried
/// at every wake-up (every second), left one `.err` file per try, and listed two events
/// per try.
#[test]
fn create_errors_back_off_leave_no_files_and_are_counted_events() {
    let env = env();
    env.apply(
        "ce.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: ce}
spec:
  containers:
  - {name: web, image: busybox, command: [/no/such/command]}
  - name: probed
    image: busybox
    command: [sleep, "3600"]
    readinessProbe: {exec: {command: ["true"]}, periodSeconds: 1}
"#,
    );
    env.wait_for("ce", "CreateContainerError", Duration::from_secs(30), |p| {
        let w = &container_status(p, "web")["state"]["waiting"]["reason"];
        w == "CreateContainerError" || w == "RunContainerError"
    });
    let since = Instant::now();
    std::thread::sleep(Duration::from_secs(12));
    let d = described(&env, "ce");
    let events = d.split("Events:").nth(1).unwrap_or_default().to_string();
    let failed: Vec<&str> = events
        .lines()
        .filter(|l| l.contains("Failed") && l.contains("kubelet"))
        .collect();
    assert_eq!(failed.len(), 1, "one series:\n{events}");
    // Tries at about 0, 1, 3, 7, 11 s: 5 in the 12 s watched, 6 with the first.
    let count: u32 = failed[0]
        .split("(x")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no (xN over …) in {:?}", failed[0]));
    assert!(
        (2..=7).contains(&count),
        "{count} tries in {:?}:\n{events}",
        since.elapsed()
    );
    assert!(failed[0].contains(" over "), "{}", failed[0]);
    let err_files = files_ending(&env.root.join("run"), ".err");
    assert!(err_files.is_empty(), "{err_files:?}");
    env.teardown();
}

/// A pod of more containers than podhost takes is refused with the bound named, before
/// anything is created.
#[test]
fn a_pod_with_too_many_containers_is_refused() {
    let env = env();
    let mut yaml = String::from(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: huge}\nspec:\n  initContainers:\n  - {name: init, image: busybox}\n  containers:\n",
    );
    for i in 0..500 {
        yaml.push_str(&format!("  - {{name: c{i}, image: busybox}}\n"));
    }
    let p = env.manifest("huge.yaml", &yaml);
    let err = env.fails(&["apply", "-f", &p]);
    assert!(
        err.contains("spec.containers: Too many: 501: must have at most 500 items (containers, initContainers and ephemeralContainers together"),
        "{err}"
    );
    let out = env.run(&["get", "pods"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("No resources found"));
    env.teardown();
}
