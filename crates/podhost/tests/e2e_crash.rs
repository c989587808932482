//! End-to-end crash safety (issue 8): the daemon, a shim or the whole machine dies, and
//! after the restart no pod, exit code, log line or IP is lost and nothing leaks.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{alive, container_status, Env};

/// Short CrashLoopBackOff so restarts in these tests take a second, not ten.
fn env() -> Env {
    Env::with_daemon_env(&[
        ("PODHOST_BACKOFF_INITIAL", "1s"),
        ("PODHOST_BACKOFF_MAX", "2s"),
    ])
}

fn pod_yaml(name: &str, policy: &str, script: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  restartPolicy: {policy}
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "{script}"]
"#
    )
}

/// Pids of processes whose command line names this test's root (shims, helpers).
fn procs_naming(root: &Path, what: &str) -> Vec<u32> {
    let root = root.display().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd);
        if cmd.contains(&root) && cmd.contains(what) && alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// Every process in this test's cgroup parent (pauses and containers of all its pods).
fn cgroup_pids(env: &Env) -> Vec<u32> {
    fn walk(dir: &Path, out: &mut Vec<u32>) {
        if let Ok(t) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            out.extend(t.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
        }
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                walk(&e.path(), out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&env.cgroup_parent_dir("pids"), &mut out);
    out.sort_unstable();
    out.dedup();
    out.retain(|p| alive(*p));
    out
}

fn sigkill(pid: u32) {
    signal(pid, libc::SIGKILL);
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) of a process this test's daemon started.
    unsafe { libc::kill(pid as i32, sig) };
}

fn wait_dead(pid: u32, what: &str) {
    let deadline = Instant::now() + common::scaled(Duration::from_secs(15));
    while alive(pid) {
        assert!(Instant::now() < deadline, "{what} (pid {pid}) still alive");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Priority 1: the container exits while the daemon is down; the shim keeps the exit,
/// and the restarted daemon reports it and restarts per policy, counting from the record.
/// A delete the API acknowledged survives a daemon killed before the pod's worker got
/// to it (the worker is busy in a postStart hook): the restarted daemon deletes the pod.
/// Before the delete was recorded durably, the pod came back Running.
#[test]
fn acknowledged_delete_survives_a_daemon_kill() {
    let mut env = env();
    env.apply(
        "busy.yaml",
        r#"apiVersion: v1
kind: Pod
metadata:
  name: busy
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "while true; do sleep 1; done"]
    lifecycle:
      postStart:
        exec:
          command: ["sleep", "8"]
"#,
    );
    // Once the container runs, the worker is inside the hook: it takes the order at
    // once, and the kill lands while it acts on it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !env
        .containers()
        .iter()
        .any(|c| c.name == "main" && c.state == "Running")
    {
        assert!(Instant::now() < deadline, "main never ran");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    env.ok(&[
        "delete",
        "pod",
        "busy",
        "--grace-period",
        "0",
        "--wait=false",
    ]);
    env.kill_daemon();
    env.start_daemon();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !env.ok(&["get", "pods", "-o", "name"]).trim().is_empty() {
        assert!(Instant::now() < deadline, "the deleted pod came back");
        std::thread::sleep(Duration::from_millis(200));
    }
    env.teardown();
}

#[test]
fn container_exit_while_daemon_is_down_is_reported_and_restarted() {
    let mut env = env();
    // Exits 3 on SIGTERM (the trap runs between two sleeps).
    let script = "trap 'exit 3' TERM; echo up; while true; do sleep 0.1; done";
    env.apply("always.yaml", &pod_yaml("always", "Always", script));
    env.apply("never.yaml", &pod_yaml("never", "Never", script));
    env.wait_ready("always");
    env.wait_ready("never");
    let always = env.pid_of("always", "main");
    let never = env.pid_of("never", "main");
    let pause = env.pid_of("always", "POD");

    env.kill_daemon();
    for pid in [always, never] {
        // SAFETY: kill(2) of a container process of this test.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    }
    wait_dead(always, "always/main after SIGTERM");
    wait_dead(never, "never/main after SIGTERM");
    env.start_daemon();

    let pod = env.wait_for(
        "always",
        "restart after the exit seen by the shim",
        Duration::from_secs(30),
        |p| {
            let s = container_status(p, "main");
            s["restartCount"] == 1 && s["state"]["running"].is_object()
        },
    );
    let last = &container_status(&pod, "main")["lastState"]["terminated"];
    assert_eq!(last["exitCode"], 3, "{last}");
    assert_eq!(last["reason"], "Error", "{last}");
    assert!(alive(pause), "the pause survives a container exit");
    assert_eq!(env.pid_of("always", "POD"), pause, "same sandbox");

    let pod = env.wait_for("never", "Failed", Duration::from_secs(30), |p| {
        p["status"]["phase"] == "Failed"
    });
    let s = container_status(&pod, "main");
    assert_eq!(s["restartCount"], 0, "{s}");
    assert_eq!(s["state"]["terminated"]["exitCode"], 3, "{s}");
    env.teardown();
}

/// Priority 6: a second daemon on the same state directory is refused, and the first
/// keeps serving.
#[test]
fn second_daemon_on_the_same_state_dir_is_refused() {
    let env = Env::new();
    let mut child = Command::new(common::bin())
        .arg("serve")
        .env("PODHOST_ROOT", &env.root)
        .env("PODHOST_CGROUP_PARENT", &env.cgroup_parent)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn second serve");
    let deadline = Instant::now() + common::scaled(Duration::from_secs(10));
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a second `podhost serve` on the same root kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("output");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!status.success(), "second serve succeeded: {err}");
    assert!(
        err.contains("another podhost daemon is already running")
            && err.contains(&env.root.display().to_string()),
        "unclear message: {err}"
    );
    // The first daemon still answers on its socket.
    env.ok(&["get", "pods"]);
    env.teardown();
}

/// Priority 5: a torn pod record is reported with its path and the other pods recover.
#[test]
fn corrupt_pod_record_is_reported_and_others_recover() {
    let mut env = env();
    let script = "while true; do sleep 1; done";
    env.apply("a.yaml", &pod_yaml("a", "Always", script));
    env.apply("b.yaml", &pod_yaml("b", "Always", script));
    let a = env.wait_ready("a");
    env.wait_ready("b");
    let b_main = env.pid_of("b", "main");
    let uid = a["metadata"]["uid"].as_str().expect("uid").to_string();
    env.kill_daemon();
    let record = env.root.join("lib/pods").join(format!("{uid}.json"));
    let good = std::fs::read(&record).expect("pod record");
    std::fs::write(&record, &good[..good.len() / 2]).expect("truncate");
    env.start_daemon();
    env.wait_ready("b");
    assert_eq!(env.pid_of("b", "main"), b_main, "b kept its container");
    let log = env.daemon_log();
    assert!(
        log.lines()
            .any(|l| l.contains("pod record not loaded")
                && l.contains(&record.display().to_string())),
        "daemon log does not name {}:\n{log}",
        record.display()
    );
    assert!(
        !env.run(&["get", "pod", "a"]).status.success(),
        "a torn record must not become a pod"
    );
    // Repaired, the pod is managed again (and torn down cleanly by teardown).
    env.kill_daemon();
    std::fs::write(&record, &good).expect("restore");
    env.start_daemon();
    env.wait_ready("a");
    env.teardown();
}

/// Priority 2: a SIGKILLed shim leaves its pause and containers running; the daemon kills
/// them, tears the sandbox down and recreates the pod, which keeps its IP.
#[test]
fn killed_shim_orphans_are_killed_and_pod_is_recreated() {
    let mut env = env();
    env.apply(
        "s.yaml",
        &pod_yaml("s", "Always", "while true; do sleep 1; done"),
    );
    let pod = env.wait_ready("s");
    let ip = pod["status"]["podIP"].clone();
    let pause = env.pid_of("s", "POD");
    let main = env.pid_of("s", "main");
    let shims = procs_naming(&env.root, "podhost-shim");
    assert_eq!(shims.len(), 1, "one shim: {shims:?}");
    env.watched_pids.extend(&shims);
    sigkill(shims[0]);
    wait_dead(main, "the orphaned container");
    wait_dead(pause, "the orphaned pause");
    let pod = env.wait_for(
        "s",
        "recreated after the shim crash",
        Duration::from_secs(30),
        |p| {
            common::condition(p, "Ready")
                && container_status(p, "main")["state"]["running"].is_object()
                && container_status(p, "main")["restartCount"] == 1
        },
    );
    assert_ne!(env.pid_of("s", "POD"), pause, "a new sandbox");
    assert_eq!(pod["status"]["podIP"], ip, "the pod keeps its IP");
    let last = &container_status(&pod, "main")["lastState"]["terminated"];
    assert_eq!(last["exitCode"], 137, "{last}");
    let events = env.ok(&["describe", "pod", "s"]);
    assert!(events.contains("SandboxChanged"), "{events}");
    assert!(
        events.contains("SandboxNotReady") && events.contains("shim is gone"),
        "the events say the shim crashed: {events}"
    );
    assert_eq!(
        procs_naming(&env.root, "podhost-shim").len(),
        1,
        "one new shim"
    );
    env.teardown();
}

/// A shim that lives but does not answer (SIGSTOP) leaves its pod `Unknown` with a reason,
/// and nothing is restarted blind; once it answers the pod is Running again with the same
/// processes. A pod deleted while its shim is silent goes, shim and all.
#[test]
fn stopped_shim_makes_the_pod_unknown_until_it_answers() {
    let mut env = env();
    env.apply(
        "u.yaml",
        &pod_yaml("u", "Always", "while true; do sleep 1; done"),
    );
    env.wait_ready("u");
    let main = env.pid_of("u", "main");
    let shims = procs_naming(&env.root, "podhost-shim");
    assert_eq!(shims.len(), 1, "one shim: {shims:?}");
    let shim = shims[0];
    env.watched_pids.push(shim);
    let unknown = |p: &serde_json::Value| {
        p["status"]["phase"] == "Unknown" && p["status"]["reason"] == "ShimUnreachable"
    };
    signal(shim, libc::SIGSTOP);
    let pod = env.wait_for("u", "Unknown", Duration::from_secs(30), unknown);
    assert!(!common::condition(&pod, "Ready"), "not ready while unknown");
    let row = env.ok(&["get", "pods"]);
    assert!(
        row.contains("0/1") && row.contains("ShimUnreachable"),
        "{row}"
    );
    let described = env.ok(&["describe", "pod", "u"]);
    assert!(
        described.contains("Status:           Unknown")
            && described.contains("Reason:           ShimUnreachable"),
        "{described}"
    );
    let err = env.fails(&["exec", "u", "--", "true"]);
    assert!(err.contains("is Unknown"), "exec says why at once: {err}");
    // Unknown is not dead: the container was left alone.
    std::thread::sleep(Duration::from_secs(2));
    assert!(alive(main), "the container still runs");
    signal(shim, libc::SIGCONT);
    let pod = env.wait_for("u", "Running again", Duration::from_secs(30), |p| {
        p["status"]["phase"] == "Running" && common::condition(p, "Ready")
    });
    assert_eq!(container_status(&pod, "main")["restartCount"], 0);
    assert_eq!(env.pid_of("u", "main"), main, "the same container");
    let described = env.ok(&["describe", "pod", "u"]);
    assert!(
        described.contains("ShimUnreachable") && described.contains("ShimReachable"),
        "{described}"
    );
    // Silent again, then deleted: the shim is killed and everything goes.
    signal(shim, libc::SIGSTOP);
    env.wait_for("u", "Unknown", Duration::from_secs(30), unknown);
    env.ok(&["delete", "pod", "u"]);
    let deadline = Instant::now() + common::scaled(Duration::from_secs(30));
    while env.run(&["get", "pod", "u"]).status.success() {
        assert!(Instant::now() < deadline, "pod u still listed");
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_dead(shim, "the stopped shim");
    wait_dead(main, "the container of the deleted pod");
    env.teardown();
}

/// The start-time cleanup (here: containers a daemon killed before saving its record
/// never recorded) runs behind an API that already answers, and the pod it concerns is
/// shown `StartupCleanup` until its part is done; then the pod syncs as usual. The
/// pod's shim is stopped meanwhile so that the cleanup cannot finish early. Before, the
/// socket was bound only once the whole cleanup was done (105 s for a pod of 10,000
/// containers), and nothing showed why a pod was not synced.
#[test]
fn startup_cleanup_runs_behind_a_serving_api_and_marks_its_pods() {
    let mut env = env();
    let mut yaml = pod_yaml("cl", "Always", "while true; do sleep 1; done");
    for extra in ["b", "c"] {
        yaml.push_str(&format!(
            "  - name: {extra}\n    image: busybox\n    command: [sleep, \"3600\"]\n"
        ));
    }
    env.apply("cl.yaml", &yaml);
    let pod = env.wait_ready("cl");
    let forgotten: Vec<u32> = ["main", "b", "c"]
        .iter()
        .map(|c| env.pid_of("cl", c))
        .collect();
    env.stop_daemon();
    // The record forgets its containers, as when the daemon died before saving them.
    let uid = pod["metadata"]["uid"].as_str().expect("uid");
    let record = env.root.join(format!("lib/pods/{uid}.json"));
    let mut rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).expect("record")).expect("json");
    rec["containers"] = serde_json::json!({});
    std::fs::write(&record, serde_json::to_vec(&rec).expect("json")).expect("write record");
    let shims = procs_naming(&env.root, "podhost-shim");
    assert_eq!(shims.len(), 1, "{shims:?}");
    env.watched_pids.push(shims[0]);
    signal(shims[0], libc::SIGSTOP);
    env.start_daemon();
    let marked = env.pod("cl");
    signal(shims[0], libc::SIGCONT);
    assert_eq!(
        marked["status"]["reason"], "StartupCleanup",
        "served during the cleanup, pod marked: {}",
        marked["status"]
    );
    let why = marked["status"]["message"].as_str().unwrap_or_default();
    assert!(why.contains("no record"), "{why}");
    // Once its part is done: the forgotten containers are gone, new ones run.
    for pid in forgotten {
        wait_dead(pid, "a container no record knew");
    }
    let pod = env.wait_for("cl", "Ready, unmarked", Duration::from_secs(60), |p| {
        common::condition(p, "Ready") && p["status"]["reason"].is_null()
    });
    assert_eq!(container_status(&pod, "main")["restartCount"], 0);
    env.teardown();
}

/// Priority 3: a reboot kills every pod process and empties the run dir. Always pods come
/// back in new sandboxes; Never pods keep their final state; the records of the vanished
/// sandboxes and containers are collected.
#[test]
fn reboot_recreates_pods_and_collects_vanished_sandboxes() {
    let mut env = env();
    env.apply(
        "up.yaml",
        &pod_yaml("up", "Always", "while true; do sleep 1; done"),
    );
    env.apply("done.yaml", &pod_yaml("done", "Never", "echo bye"));
    let up = env.wait_ready("up");
    env.wait_for("done", "Succeeded", Duration::from_secs(30), |p| {
        p["status"]["phase"] == "Succeeded"
    });
    let old_pause = env.pid_of("up", "POD");
    let sandboxes_before: Vec<String> = list(&env.root.join("lib/sandboxes"));
    let containers_before: Vec<String> = list(&env.root.join("lib/containers"));

    // The "reboot": daemon, shims, pauses, containers; then every mount and the run dir.
    env.kill_daemon();
    let mut victims = procs_naming(&env.root, "podhost-shim");
    victims.extend(cgroup_pids(&env));
    env.watched_pids.extend(&victims);
    for p in &victims {
        sigkill(*p);
    }
    for p in &victims {
        wait_dead(*p, "a pod process at reboot");
    }
    let root = env.root.display().to_string();
    let mounts = std::fs::read_to_string("/proc/mounts").expect("mounts");
    let mut targets: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|t| t.starts_with(&root))
        .collect();
    targets.reverse();
    for t in targets {
        let _ = Command::new("umount").args(["-l", t]).status();
    }
    std::fs::remove_dir_all(env.root.join("run")).expect("empty the run dir");

    env.start_daemon();
    // The stored status says Ready until the first sync: wait for the new container.
    let old_id = container_status(&up, "main")["containerID"].clone();
    env.wait_for("up", "a new container", Duration::from_secs(30), |p| {
        let s = container_status(p, "main");
        common::condition(p, "Ready")
            && s["state"]["running"].is_object()
            && s["containerID"] != old_id
    });
    let new_pause = env.pid_of("up", "POD");
    assert_ne!(new_pause, old_pause);
    let done = env.pod("done");
    assert_eq!(done["status"]["phase"], "Succeeded", "{done}");
    assert_eq!(
        container_status(&done, "main")["state"]["terminated"]["exitCode"],
        0
    );
    // Vanished sandboxes and containers: records gone (only the new sandbox remains).
    let deadline = Instant::now() + common::scaled(Duration::from_secs(20));
    loop {
        let sb = list(&env.root.join("lib/sandboxes"));
        let ct = list(&env.root.join("lib/containers"));
        let stale_sb: Vec<_> = sb.iter().filter(|s| sandboxes_before.contains(s)).collect();
        let stale_ct: Vec<_> = ct
            .iter()
            .filter(|c| containers_before.contains(c))
            .collect();
        if stale_sb.is_empty() && stale_ct.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stale records: sandboxes {stale_sb:?}, containers {stale_ct:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    env.teardown();
}

/// Seconds since midnight UTC of an RFC 3339 timestamp (`…T09:46:36.123456789Z`).
fn day_seconds(ts: &str) -> f64 {
    let time = ts.split('T').nth(1).unwrap_or("").trim_end_matches('Z');
    let parts: Vec<f64> = time.split(':').filter_map(|p| p.parse().ok()).collect();
    assert_eq!(parts.len(), 3, "timestamp {ts:?}");
    parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
}

/// The timestamp of the log line whose text is `text` in `logs --timestamps` output.
fn stamp_of(log: &str, text: &str) -> f64 {
    let line = log
        .lines()
        .find(|l| l.split_once(' ').is_some_and(|(_, t)| t == text))
        .unwrap_or_else(|| panic!("no {text:?} in {log}"));
    day_seconds(line.split(' ').next().unwrap_or(""))
}

/// NAME READY STATUS RESTARTS of `get pods` (AGE changes by itself).
fn pod_rows(out: &str) -> Vec<String> {
    out.lines()
        .map(|l| l.split_whitespace().take(4).collect::<Vec<_>>().join(" "))
        .collect()
}

/// A container in CrashLoopBackOff when the daemon dies waits out the rest of its delay
/// after the restart, counted from its recorded exit: not a fresh delay, and not none.
/// `get pods` right after the restart shows what it showed before.
#[test]
fn crash_loop_backoff_is_kept_across_a_daemon_restart() {
    let mut env = Env::with_daemon_env(&[
        ("PODHOST_BACKOFF_INITIAL", "8s"),
        ("PODHOST_BACKOFF_MAX", "8s"),
    ]);
    env.apply(
        "loop.yaml",
        &pod_yaml("loop", "Always", "echo start; sleep 1; echo end; exit 1"),
    );
    // Exit, restart at once, exit again: then 8s of back-off.
    env.wait_for("loop", "CrashLoopBackOff", Duration::from_secs(30), |p| {
        container_status(p, "main")["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    });
    // Well into the delay, so that a fresh one after the restart would show.
    std::thread::sleep(Duration::from_secs(3));
    let before = pod_rows(&env.ok(&["get", "pods"]));
    env.kill_daemon();
    env.start_daemon();
    let after = pod_rows(&env.ok(&["get", "pods"]));
    assert_eq!(before, after, "get pods right after the restart");
    assert!(after[1].contains("CrashLoopBackOff 1"), "{after:?}");
    env.wait_for(
        "loop",
        "the restart after the back-off",
        Duration::from_secs(30),
        |p| container_status(p, "main")["restartCount"] == 2,
    );
    let previous = env.ok(&["logs", "loop", "--previous", "--timestamps"]);
    let current = env.ok(&["logs", "loop", "--timestamps"]);
    let gap = stamp_of(&current, "start") - stamp_of(&previous, "end");
    let gap = if gap < 0.0 { gap + 86400.0 } else { gap };
    assert!(
        (8.0..11.5).contains(&gap),
        "the back-off counts from the recorded exit: {gap:.2}s between the exit and the next start"
    );
    env.teardown();
}

/// Numbers of the `line N` lines of a log.
fn line_numbers(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.strip_prefix("line "))
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

/// Priority 4: the shim writes the log files, so a daemon restart loses no line, and a
/// running `logs -f` waits for the restarted daemon and goes on where it stopped: no line
/// lost, none twice. Both after a SIGKILL and after a SIGTERM with the stream open.
#[test]
fn logs_follow_goes_on_across_a_daemon_restart() {
    let mut env = env();
    env.apply(
        "talk.yaml",
        &pod_yaml(
            "talk",
            "Always",
            "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.02; done",
        ),
    );
    env.wait_ready("talk");
    let out_path = env.root.join("follow.out");
    let err_path = env.root.join("follow.err");
    let file = |p: &Path| std::fs::File::create(p).expect("create");
    let mut follow = Command::new(common::bin())
        .args(["logs", "-f", "talk"])
        .env("PODHOST_ROOT", &env.root)
        .stdin(Stdio::null())
        .stdout(file(&out_path))
        .stderr(file(&err_path))
        .spawn()
        .expect("logs -f");
    let followed = || line_numbers(&std::fs::read_to_string(&out_path).unwrap_or_default());
    std::thread::sleep(Duration::from_millis(500));
    env.kill_daemon();
    let at_kill = followed().len();
    // The container keeps writing while nobody serves the log.
    std::thread::sleep(Duration::from_millis(1500));
    env.start_daemon();
    let deadline = Instant::now() + common::scaled(Duration::from_secs(20));
    while followed().len() < at_kill + 150 {
        if Instant::now() > deadline {
            let _ = follow.kill();
            let _ = follow.wait();
            panic!(
                "`logs -f` did not go on after the restart: {} lines, {} at the kill; stderr: {}",
                followed().len(),
                at_kill,
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Stopped the polite way this time, with the follower's stream still open: the
    // daemon does not wait for it for ever, the container goes on, so does the follower.
    let main = env.pid_of("talk", "main");
    env.stop_daemon();
    assert!(alive(main), "the pod outlives a stopped daemon");
    let at_stop = followed().len();
    std::thread::sleep(Duration::from_millis(500));
    env.start_daemon();
    let deadline = Instant::now() + common::scaled(Duration::from_secs(20));
    while followed().len() < at_stop + 100 {
        if Instant::now() > deadline {
            let _ = follow.kill();
            let _ = follow.wait();
            panic!("`logs -f` did not go on after the stop and start");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = follow.kill();
    let _ = follow.wait();
    let numbers = followed();
    for (i, n) in numbers.iter().enumerate() {
        assert_eq!(
            *n, i as u64,
            "followed line {i} missing, repeated or out of order"
        );
    }
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(
        err.contains("daemon went away"),
        "the follower says why it paused: {err}"
    );
    // And the file itself: everything from line 0, in order.
    let numbers = line_numbers(&env.ok(&["logs", "talk"]));
    assert!(numbers.len() > 100, "too few lines: {}", numbers.len());
    for (i, n) in numbers.iter().enumerate() {
        assert_eq!(*n, i as u64, "line {i} missing or out of order");
    }
    env.teardown();
}

/// Start-time GC: a pod cgroup that no sandbox record owns (a daemon killed between making
/// it and recording the sandbox leaves one) has what runs in it killed and is removed from
/// every hierarchy when the daemon starts, on cgroup v1 and v2 alike.
#[test]
fn stale_pod_cgroup_is_emptied_and_removed_at_start() {
    let mut env = env();
    env.kill_daemon();
    let uid = "0badc0de-stale";
    let mut stray = Command::new("sleep")
        .arg("600")
        .spawn()
        .expect("spawn sleep");
    env.watched_pids.push(stray.id());
    // v1: the hierarchies the daemon reads pids from; v2: the one tree.
    let controllers: &[&str] = if common::cgroup_v2() {
        &["unified"]
    } else {
        &["memory", "pids"]
    };
    let pods: Vec<std::path::PathBuf> = controllers
        .iter()
        .map(|c| {
            env.cgroup_parent_dir(c)
                .join("besteffort")
                .join(format!("pod{uid}"))
        })
        .collect();
    for pod in &pods {
        let leaf = pod.join("pause");
        std::fs::create_dir_all(&leaf).expect("make the stale cgroup");
        std::fs::write(leaf.join("cgroup.procs"), stray.id().to_string()).expect("move the stray");
    }
    env.start_daemon();
    let deadline = Instant::now() + common::scaled(Duration::from_secs(15));
    while stray.try_wait().expect("try_wait").is_none() {
        assert!(Instant::now() < deadline, "the stray process survived");
        std::thread::sleep(Duration::from_millis(50));
    }
    for pod in &pods {
        assert!(!pod.exists(), "{} left", pod.display());
    }
    assert!(
        env.daemon_log()
            .contains(&format!("removed the cgroup of pod uid {uid}")),
        "{}",
        env.daemon_log()
    );
    env.teardown();
}

/// Iterations of the chaos test: the issue's acceptance asks for 100.
const CHAOS_ROUNDS: usize = 100;
/// Pods alive at once in the chaos test: each round deletes the oldest beyond this.
const CHAOS_KEEP: usize = 4;

/// Priority 7: 100 rounds of creates and deletes with the daemon SIGKILLed at a random
/// point of each round (during a create, a delete or between them) and restarted; in the
/// end every surviving pod runs with restartCount 0 (its container never exited) and the
/// teardown's leak check finds nothing of the deleted ones.
#[test]
fn chaos_daemon_sigkill_during_create_and_delete_leaks_nothing() {
    let mut env = env();
    let started = Instant::now();
    let mut alive_pods: Vec<String> = Vec::new();
    let pause = |max_ms: u16| {
        std::thread::sleep(Duration::from_millis(u64::from(
            rand::random::<u16>() % max_ms,
        )))
    };
    for i in 0..CHAOS_ROUNDS {
        let name = format!("chaos-{i}");
        // With a subPath: its private bind mount is made in every create the kill
        // may interrupt, and must be gone with the pod like the rest.
        let yaml = pod_yaml(&name, "Always", "while true; do sleep 1; done")
            + "    volumeMounts:\n    - {name: v, mountPath: /data, subPath: a/b}\n  volumes:\n  - {name: v, emptyDir: {}}\n";
        env.apply(&format!("{name}.yaml"), &yaml);
        alive_pods.push(name);
        // A sandbox and its container take 100-300 ms: the kill lands anywhere in them.
        pause(400);
        if alive_pods.len() > CHAOS_KEEP {
            let victim = alive_pods.remove(0);
            // Graceful and forced deletes go different ways through the worker.
            let grace = if i % 3 == 0 { "0" } else { "1" };
            let _ = env.run(&[
                "delete",
                "pod",
                &victim,
                "--grace-period",
                grace,
                "--wait=false",
            ]);
        }
        pause(300);
        env.kill_daemon();
        env.start_daemon();
    }
    eprintln!("chaos: {CHAOS_ROUNDS} rounds in {:?}", started.elapsed());
    // Deleted pods finish deleting; the others run.
    let deadline = Instant::now() + common::scaled(Duration::from_secs(60));
    let mut want = alive_pods.clone();
    want.sort();
    loop {
        let out = env.ok(&["get", "pods", "-o", "name"]);
        let mut names: Vec<String> = out
            .lines()
            .map(|l| l.trim_start_matches("pod/").to_string())
            .collect();
        names.sort();
        if names == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pods {names:?}, expected {want:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for name in &alive_pods {
        let pod = env.wait_ready(name);
        assert_eq!(pod["status"]["phase"], "Running", "{name}");
        let main = container_status(&pod, "main");
        assert_eq!(main["restartCount"], 0, "{name} never exited: {main}");
    }
    // A bound against hangs, far above the 2-4 minutes this takes.
    assert!(
        started.elapsed() < Duration::from_secs(900),
        "chaos took {:?}",
        started.elapsed()
    );
    env.teardown();
}

fn list(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}
