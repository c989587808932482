//! Lifecycle rules against the fake runtime, on tokio's paused clock (no sleeps, exact timing).

use std::sync::Arc;
use std::time::Duration;

use podhost::lifecycle::restart::BackoffPolicy;
use podhost::lifecycle::worker::{Clock, Settings};
use podhost::lifecycle::{PodHandle, PodRecord, PodWorker, WorkerCmd};
use podhost_runtime::fake::FakeRuntime;
use podhost_runtime::Runtime;

fn pod(yaml: &str) -> PodRecord {
    let mut m = podhost_api::parse_manifests(yaml, "test.yaml").expect("parse");
    let podhost_api::Manifest::Pod(p) = m.remove(0) else {
        panic!("not a pod")
    };
    let mut p = *p;
    podhost_api::default_pod(&mut p);
    p.metadata.uid = Some("uid-1".into());
    PodRecord::new(p)
}

fn start(yaml: &str) -> (Arc<FakeRuntime>, PodHandle, tempfile::TempDir) {
    let fake = Arc::new(FakeRuntime::new(Clock::default(), &["busybox"]));
    let dir = tempfile::tempdir().expect("tempdir");
    let rt: Arc<dyn Runtime> = fake.clone();
    let h = PodWorker::spawn(rt, None, pod(yaml), settings(dir.path()));
    (fake, h, dir)
}

fn settings(dir: &std::path::Path) -> Settings {
    Settings {
        backoff: BackoffPolicy {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
        },
        log_dir: dir.join("log"),
        volumes_dir: dir.join("vol"),
        clock: Clock::default(),
        resync: Duration::from_secs(1),
        steady_check: Duration::from_secs(10),
        steady_resync: Duration::from_secs(300),
        objects: podhost::objects::Objects::in_memory(),
    }
}

/// Let the worker run until it is idle at the current instant.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

fn phase(h: &PodHandle) -> String {
    h.snapshot
        .borrow()
        .pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

fn waiting_reason(h: &PodHandle, name: &str) -> Option<String> {
    let rec = h.snapshot.borrow();
    let st = rec.pod.status.as_ref()?;
    st.container_statuses
        .iter()
        .flatten()
        .chain(st.init_container_statuses.iter().flatten())
        .find(|c| c.name == name)?
        .state
        .as_ref()?
        .waiting
        .as_ref()?
        .reason
        .clone()
}

fn restarts(h: &PodHandle, name: &str) -> i32 {
    let rec = h.snapshot.borrow();
    rec.pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == name))
        .map(|c| c.restart_count)
        .unwrap_or(-1)
}

const WEB: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - {name: web, image: busybox, command: [httpd, -f]}
  - {name: sidecar, image: busybox, command: [sleep, "1000"]}
"#;

#[tokio::test(start_paused = true)]
async fn containers_start_and_pod_runs() {
    let (fake, h, _d) = start(WEB);
    settle().await;
    assert_eq!(fake.running(), 2);
    assert_eq!(phase(&h), "Running");
    let calls = fake.calls();
    assert_eq!(calls[0], "run_pod_sandbox");
}

#[tokio::test(start_paused = true)]
async fn crash_loop_backoff_doubles() {
    let (fake, h, _d) = start(WEB);
    settle().await;
    // First exit: restarted at once.
    assert!(fake.exit("web", 1));
    settle().await;
    assert_eq!(restarts(&h, "web"), 1);
    assert_eq!(fake.running(), 2);
    // Second exit: CrashLoopBackOff for 10s.
    assert!(fake.exit("web", 1));
    settle().await;
    assert_eq!(
        waiting_reason(&h, "web").as_deref(),
        Some("CrashLoopBackOff")
    );
    tokio::time::advance(Duration::from_secs(9)).await;
    settle().await;
    assert_eq!(restarts(&h, "web"), 1);
    tokio::time::advance(Duration::from_millis(1100)).await;
    settle().await;
    assert_eq!(restarts(&h, "web"), 2);
    // Third exit: 20s.
    assert!(fake.exit("web", 1));
    settle().await;
    tokio::time::advance(Duration::from_secs(19)).await;
    settle().await;
    assert_eq!(restarts(&h, "web"), 2);
    tokio::time::advance(Duration::from_millis(1100)).await;
    settle().await;
    assert_eq!(restarts(&h, "web"), 3);
    // The other container was never touched.
    assert_eq!(restarts(&h, "sidecar"), 0);
}

#[tokio::test(start_paused = true)]
async fn never_policy_ends_failed_and_releases_sandbox() {
    let (fake, h, _d) = start(&WEB.replace("spec:\n", "spec:\n  restartPolicy: Never\n"));
    settle().await;
    fake.exit("web", 0);
    settle().await;
    assert_eq!(phase(&h), "Running");
    fake.exit("sidecar", 2);
    settle().await;
    assert_eq!(phase(&h), "Failed");
    assert!(fake.calls().contains(&"remove_pod_sandbox".to_string()));
}

#[tokio::test(start_paused = true)]
async fn init_containers_run_in_order_before_containers() {
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: init}
spec:
  initContainers:
  - {name: one, image: busybox, command: ["true"]}
  - {name: two, image: busybox, command: ["true"]}
  containers:
  - {name: app, image: busybox, command: [sleep, "1000"]}
"#;
    let (fake, h, _d) = start(yaml);
    settle().await;
    assert_eq!(
        fake.calls(),
        vec!["run_pod_sandbox", "create:one", "start:one"]
    );
    assert_eq!(phase(&h), "Pending");
    fake.exit("one", 0);
    settle().await;
    fake.exit("two", 0);
    settle().await;
    assert_eq!(
        fake.calls(),
        vec![
            "run_pod_sandbox",
            "create:one",
            "start:one",
            "create:two",
            "start:two",
            "create:app",
            "start:app"
        ]
    );
    assert_eq!(phase(&h), "Running");
}

#[tokio::test(start_paused = true)]
async fn delete_stops_everything_and_ends_worker() {
    let (fake, h, _d) = start(WEB);
    settle().await;
    h.cmd
        .send(WorkerCmd::Delete { grace: Some(5) })
        .await
        .expect("send");
    settle().await;
    assert_eq!(fake.running(), 0);
    assert!(h.cmd.is_closed());
    assert!(fake.calls().contains(&"remove_pod_sandbox".to_string()));
}

#[tokio::test(start_paused = true)]
async fn dead_pause_recreates_sandbox_and_restarts_containers() {
    let (fake, h, _d) = start(WEB);
    settle().await;
    fake.kill_sandboxes();
    settle().await;
    let calls = fake.calls();
    assert_eq!(calls.iter().filter(|c| *c == "run_pod_sandbox").count(), 2);
    assert_eq!(phase(&h), "Running");
    assert_eq!(fake.running(), 2);
}

// ---- Helpers for the rules below ----

fn status_of(h: &PodHandle, name: &str) -> serde_json::Value {
    let rec = h.snapshot.borrow();
    let v = serde_json::to_value(rec.pod.status.clone()).expect("json");
    for list in ["containerStatuses", "initContainerStatuses"] {
        if let Some(s) = v[list]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        {
            return s.clone();
        }
    }
    serde_json::Value::Null
}

fn condition(h: &PodHandle, kind: &str) -> String {
    let rec = h.snapshot.borrow();
    rec.pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == kind))
        .map(|c| c.status.clone())
        .unwrap_or_default()
}

fn events(h: &PodHandle) -> Vec<(String, String)> {
    h.snapshot
        .borrow()
        .events
        .iter()
        .map(|e| (e.reason.clone(), e.message.clone()))
        .collect()
}

fn column(h: &PodHandle) -> String {
    podhost_api::display::status_column(&h.snapshot.borrow().pod)
}

fn ready_col(h: &PodHandle) -> String {
    podhost_api::display::ready_column(&h.snapshot.borrow().pod)
}

/// Advance the paused clock in small steps so every timer fires in order.
async fn advance(secs: u64) {
    for _ in 0..secs * 4 {
        tokio::time::advance(Duration::from_millis(250)).await;
        settle().await;
    }
}

fn starts(fake: &FakeRuntime) -> Vec<String> {
    fake.calls()
        .into_iter()
        .filter(|c| c.starts_with("start:") || c.starts_with("stop:"))
        .collect()
}

// ---- Restart policy and phase ----

#[tokio::test(start_paused = true)]
async fn on_failure_policy_restarts_failures_and_succeeds_on_zero() {
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: job}
spec:
  restartPolicy: OnFailure
  containers:
  - {name: job, image: busybox}
"#;
    let (fake, h, _d) = start(yaml);
    settle().await;
    fake.exit("job", 3);
    settle().await;
    assert_eq!(
        restarts(&h, "job"),
        1,
        "non-zero exit restarts under OnFailure"
    );
    assert_eq!(phase(&h), "Running");
    fake.exit("job", 0);
    settle().await;
    assert_eq!(phase(&h), "Succeeded");
    assert_eq!(column(&h), "Completed");
    assert_eq!(condition(&h, "Ready"), "False");
}

#[tokio::test(start_paused = true)]
async fn always_policy_restarts_even_after_success() {
    let (fake, h, _d) = start(WEB);
    settle().await;
    fake.exit("web", 0);
    settle().await;
    assert_eq!(restarts(&h, "web"), 1);
    assert_eq!(phase(&h), "Running");
}

#[tokio::test(start_paused = true)]
async fn backoff_resets_after_ten_minutes_of_running() {
    let (fake, h, _d) = start(WEB);
    settle().await;
    fake.exit("web", 1);
    settle().await;
    fake.exit("web", 1);
    settle().await;
    assert_eq!(
        waiting_reason(&h, "web").as_deref(),
        Some("CrashLoopBackOff")
    );
    advance(11).await;
    assert_eq!(restarts(&h, "web"), 2);
    // Runs for more than 10 minutes, then fails: restarted at once, no back-off.
    tokio::time::advance(Duration::from_secs(601)).await;
    settle().await;
    fake.exit("web", 1);
    settle().await;
    assert_eq!(restarts(&h, "web"), 3);
    assert_eq!(waiting_reason(&h, "web"), None);
}

#[tokio::test(start_paused = true)]
async fn backoff_is_capped() {
    let (fake, h, _d) = start(WEB);
    settle().await;
    // Delays 0, 10, 20, 40, 80, 160, then 300 (cap), 300.
    let mut expected = 0;
    for delay in [0u64, 10, 20, 40, 80, 160, 300, 300] {
        assert!(fake.exit("web", 1));
        settle().await;
        if delay > 0 {
            tokio::time::advance(Duration::from_secs(delay) - Duration::from_millis(100)).await;
            settle().await;
            assert_eq!(restarts(&h, "web"), expected, "still backing off {delay}s");
            let msg = status_of(&h, "web")["state"]["waiting"]["message"].clone();
            let human = if delay >= 60 {
                format!("{}m{}s", delay / 60, delay % 60)
            } else {
                format!("{delay}s")
            };
            assert!(
                msg.as_str()
                    .unwrap_or("")
                    .starts_with(&format!("back-off {human} ")),
                "{msg}"
            );
            tokio::time::advance(Duration::from_millis(200)).await;
            settle().await;
        }
        expected += 1;
        assert_eq!(restarts(&h, "web"), expected, "restarted after {delay}s");
    }
}

// ---- Init containers ----

const INIT_FAIL: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: init}
spec:
  restartPolicy: Never
  initContainers:
  - {name: one, image: busybox}
  - {name: two, image: busybox}
  containers:
  - {name: app, image: busybox}
"#;

#[tokio::test(start_paused = true)]
async fn init_failure_with_never_fails_the_pod() {
    let (fake, h, _d) = start(INIT_FAIL);
    settle().await;
    assert_eq!(column(&h), "Init:0/2");
    fake.exit("one", 1);
    settle().await;
    assert_eq!(phase(&h), "Failed");
    assert_eq!(column(&h), "Init:Error");
    assert!(!fake.calls().iter().any(|c| c == "start:two"));
}

#[tokio::test(start_paused = true)]
async fn init_failure_with_always_restarts_with_backoff() {
    let (fake, h, _d) = start(&INIT_FAIL.replace("restartPolicy: Never", "restartPolicy: Always"));
    settle().await;
    fake.exit("one", 1);
    settle().await;
    assert_eq!(phase(&h), "Pending");
    fake.exit("one", 1);
    settle().await;
    assert_eq!(column(&h), "Init:CrashLoopBackOff");
    advance(11).await;
    fake.exit("one", 0);
    settle().await;
    assert_eq!(column(&h), "Init:1/2");
    fake.exit("two", 0);
    settle().await;
    assert_eq!(phase(&h), "Running");
    assert_eq!(condition(&h, "Initialized"), "True");
    // Regular init containers never run again once the pod is initialized.
    fake.exit("app", 1);
    settle().await;
    let one_starts = fake.calls().iter().filter(|c| *c == "start:one").count();
    assert_eq!(one_starts, 3);
}

// ---- Native sidecars ----

const SIDECAR: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: sc}
spec:
  restartPolicy: Never
  initContainers:
  - name: log
    image: busybox
    restartPolicy: Always
    startupProbe: {exec: {command: [check-log]}, periodSeconds: 1, failureThreshold: 30}
  - {name: setup, image: busybox}
  - {name: proxy, image: busybox, restartPolicy: Always}
  containers:
  - {name: main, image: busybox}
"#;

#[tokio::test(start_paused = true)]
async fn sidecar_startup_probe_gates_next_init_container() {
    let ok = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (fake, h, _d) = start(SIDECAR);
    let flag = ok.clone();
    fake.on_exec(move |_, cmd| {
        let pass = cmd[0] != "check-log" || flag.load(std::sync::atomic::Ordering::SeqCst);
        Some(podhost_runtime::ExecResult {
            exit_code: if pass { 0 } else { 1 },
            ..Default::default()
        })
    });
    settle().await;
    advance(3).await;
    assert_eq!(
        starts(&fake),
        vec!["start:log"],
        "setup waits for the startup probe"
    );
    assert_eq!(status_of(&h, "log")["started"], false);
    assert_eq!(column(&h), "Init:0/3");
    ok.store(true, std::sync::atomic::Ordering::SeqCst);
    advance(1).await;
    assert_eq!(status_of(&h, "log")["started"], true);
    assert_eq!(starts(&fake), vec!["start:log", "start:setup"]);
    fake.exit("setup", 0);
    settle().await;
    assert_eq!(
        starts(&fake),
        vec!["start:log", "start:setup", "start:proxy", "start:main"]
    );
    assert_eq!(phase(&h), "Running");
    assert_eq!(ready_col(&h), "3/3");
}

#[tokio::test(start_paused = true)]
async fn sidecar_restarts_under_never_and_pod_succeeds_when_main_exits() {
    let (fake, h, _d) = start(&SIDECAR.replace("    startupProbe: {exec: {command: [check-log]}, periodSeconds: 1, failureThreshold: 30}\n", ""));
    settle().await;
    fake.exit("setup", 0);
    settle().await;
    assert_eq!(phase(&h), "Running");
    // A sidecar is restarted whatever the pod's restartPolicy.
    fake.exit("log", 1);
    settle().await;
    assert_eq!(status_of(&h, "log")["restartCount"], 1);
    assert_eq!(fake.running(), 3);
    // Main done: sidecars are stopped in reverse order and the pod succeeds.
    fake.exit("main", 0);
    settle().await;
    let stops: Vec<String> = fake.stops().into_iter().map(|s| s.0).collect();
    assert_eq!(stops, vec!["proxy", "log"]);
    assert_eq!(phase(&h), "Succeeded");
    assert_eq!(fake.running(), 0);
    assert!(fake.calls().contains(&"remove_pod_sandbox".to_string()));
}

// ---- Probes ----

const PROBED: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: web
    image: busybox
    livenessProbe: {exec: {command: [live]}, periodSeconds: 1, failureThreshold: 3}
    readinessProbe: {exec: {command: [ready]}, initialDelaySeconds: 2, periodSeconds: 1, successThreshold: 2, failureThreshold: 2}
"#;

fn scripted(fake: &FakeRuntime) -> Arc<std::sync::Mutex<std::collections::HashMap<String, i32>>> {
    let codes = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    let c = codes.clone();
    fake.on_exec(move |_, cmd| {
        let code = *c.lock().expect("lock").get(&cmd[0]).unwrap_or(&0);
        Some(podhost_runtime::ExecResult {
            exit_code: code,
            stdout: format!("{} says {code}", cmd[0]).into_bytes(),
            ..Default::default()
        })
    });
    codes
}

#[tokio::test(start_paused = true)]
async fn readiness_starts_failed_then_flips_after_thresholds() {
    let (fake, h, _d) = start(PROBED);
    let codes = scripted(&fake);
    settle().await;
    assert_eq!(
        status_of(&h, "web")["ready"],
        false,
        "initial readiness is Failure"
    );
    assert_eq!(status_of(&h, "web")["started"], true);
    assert_eq!(condition(&h, "Ready"), "False");
    // initialDelaySeconds 2, successThreshold 2: ready after the probes at 2s and 3s.
    advance(2).await;
    assert_eq!(status_of(&h, "web")["ready"], false);
    advance(1).await;
    assert_eq!(status_of(&h, "web")["ready"], true);
    assert_eq!(condition(&h, "Ready"), "True");
    assert_eq!(condition(&h, "ContainersReady"), "True");
    assert_eq!(ready_col(&h), "1/1");
    codes.lock().expect("lock").insert("ready".into(), 1);
    advance(1).await;
    assert_eq!(
        status_of(&h, "web")["ready"],
        true,
        "one failure is below the threshold"
    );
    advance(1).await;
    assert_eq!(status_of(&h, "web")["ready"], false);
    assert_eq!(condition(&h, "Ready"), "False");
    assert!(events(&h)
        .iter()
        .any(|(r, m)| r == "Unhealthy" && m == "Readiness probe failed: ready says 1"));
    // Readiness never restarts a container.
    assert_eq!(restarts(&h, "web"), 0);
}

#[tokio::test(start_paused = true)]
async fn liveness_failure_kills_and_restarts_with_new_results() {
    let (fake, h, _d) = start(PROBED);
    let codes = scripted(&fake);
    settle().await;
    codes.lock().expect("lock").insert("live".into(), 1);
    // Probes at 0s, 1s, 2s fail: the third reaches failureThreshold.
    advance(1).await;
    assert_eq!(restarts(&h, "web"), 0);
    codes.lock().expect("lock").insert("live".into(), 0);
    codes.lock().expect("lock").insert("live".into(), 1);
    advance(2).await;
    assert_eq!(restarts(&h, "web"), 1);
    assert!(events(&h)
        .iter()
        .any(|(r, m)| r == "Killing"
            && m == "Container web failed liveness probe, will be restarted"));
    // The new container starts with fresh results: not ready.
    assert_eq!(status_of(&h, "web")["ready"], false);
    let last = &status_of(&h, "web")["lastState"]["terminated"];
    assert_eq!(last["exitCode"], 143);
}

#[tokio::test(start_paused = true)]
async fn liveness_kill_uses_the_probes_grace_period() {
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  terminationGracePeriodSeconds: 60
  containers:
  - name: web
    image: busybox
    livenessProbe: {exec: {command: [live]}, periodSeconds: 1, failureThreshold: 1, terminationGracePeriodSeconds: 5}
"#;
    let (fake, h, _d) = start(yaml);
    let codes = scripted(&fake);
    fake.ignore_term("web");
    settle().await;
    codes.lock().expect("lock").insert("live".into(), 1);
    advance(1).await;
    advance(6).await;
    let stops = fake.stops();
    assert_eq!(stops[0].0, "web");
    assert!(
        stops[0].1 <= Duration::from_secs(5) && stops[0].1 > Duration::from_secs(4),
        "{stops:?}"
    );
    assert_eq!(restarts(&h, "web"), 1);
}

#[tokio::test(start_paused = true)]
async fn startup_probe_gates_liveness_and_readiness() {
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: web
    image: busybox
    startupProbe: {exec: {command: [boot]}, periodSeconds: 1, failureThreshold: 5}
    livenessProbe: {exec: {command: [live]}, periodSeconds: 1}
    readinessProbe: {exec: {command: [ready]}, periodSeconds: 1}
"#;
    let (fake, h, _d) = start(yaml);
    let codes = scripted(&fake);
    codes.lock().expect("lock").insert("boot".into(), 1);
    settle().await;
    advance(2).await;
    assert_eq!(status_of(&h, "web")["started"], false);
    let probed: Vec<String> = fake
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("exec:"))
        .collect();
    assert!(
        probed.iter().all(|c| c == "exec:web:boot"),
        "only startup runs: {probed:?}"
    );
    codes.lock().expect("lock").insert("boot".into(), 0);
    advance(1).await;
    assert_eq!(status_of(&h, "web")["started"], true);
    advance(1).await;
    assert_eq!(status_of(&h, "web")["ready"], true);
    let calls = fake.calls();
    let after: Vec<&String> = calls
        .iter()
        .skip_while(|c| *c != "exec:web:ready")
        .filter(|c| c.starts_with("exec:"))
        .collect();
    assert!(
        !after.iter().any(|c| *c == "exec:web:boot"),
        "startup stops once it succeeded"
    );
}

#[tokio::test(start_paused = true)]
async fn startup_probe_failure_restarts_container() {
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: web
    image: busybox
    startupProbe: {exec: {command: [boot]}, periodSeconds: 1, failureThreshold: 2}
"#;
    let (fake, h, _d) = start(yaml);
    let codes = scripted(&fake);
    codes.lock().expect("lock").insert("boot".into(), 1);
    settle().await;
    advance(2).await;
    assert_eq!(restarts(&h, "web"), 1);
    assert!(events(&h).iter().any(
        |(r, m)| r == "Killing" && m == "Container web failed startup probe, will be restarted"
    ));
}

// ---- Hooks and termination ----

#[tokio::test(start_paused = true)]
async fn post_start_failure_kills_container_with_hook_error() {
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: web
    image: busybox
    lifecycle: {postStart: {exec: {command: [hook]}}}
"#;
    let (fake, h, _d) = start(yaml);
    // The worker first runs at the first yield: the hook fails from the start.
    let codes = scripted(&fake);
    codes.lock().expect("lock").insert("hook".into(), 7);
    settle().await;
    let evs = events(&h);
    assert!(
        evs.iter().any(|(r, m)| r == "FailedPostStartHook"
            && m.starts_with("Exec lifecycle hook ([\"hook\"]) for Container \"web\"")),
        "{evs:?}"
    );
    assert!(evs
        .iter()
        .any(|(r, m)| r == "Killing" && m == "FailedPostStartHook"));
    // Killed, restarted once at once, failed again: now backing off.
    assert_eq!(restarts(&h, "web"), 1);
    assert_eq!(
        waiting_reason(&h, "web").as_deref(),
        Some("CrashLoopBackOff")
    );
    assert_eq!(status_of(&h, "web")["started"], false);
    // Under Never, the failed hook ends the pod.
    let (fake, h, _d) = start(&yaml.replace("spec:\n", "spec:\n  restartPolicy: Never\n"));
    let codes = scripted(&fake);
    codes.lock().expect("lock").insert("hook".into(), 7);
    settle().await;
    assert_eq!(phase(&h), "Failed");
    assert_eq!(restarts(&h, "web"), 0);
}

#[tokio::test(start_paused = true)]
async fn post_start_completes_before_the_next_init_container() {
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  initContainers:
  - name: log
    image: busybox
    restartPolicy: Always
    lifecycle: {postStart: {exec: {command: [hook]}}}
  - {name: setup, image: busybox}
  containers:
  - {name: app, image: busybox}
"#;
    let (fake, _h, _d) = start(yaml);
    settle().await;
    let calls = fake.calls();
    let pos = |n: &str| calls.iter().position(|c| c == n).expect(n);
    assert!(pos("start:log") < pos("exec:log:hook"));
    assert!(pos("exec:log:hook") < pos("create:setup"));
}

#[tokio::test(start_paused = true)]
async fn delete_stops_regular_then_sidecars_in_reverse_with_pre_stop_first() {
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  terminationGracePeriodSeconds: 10
  initContainers:
  - {name: s1, image: busybox, restartPolicy: Always}
  - {name: s2, image: busybox, restartPolicy: Always}
  containers:
  - name: a
    image: busybox
    lifecycle: {preStop: {exec: {command: [bye]}}}
  - {name: b, image: busybox}
"#;
    let (fake, h, _d) = start(yaml);
    settle().await;
    fake.ignore_term("b");
    h.cmd
        .send(WorkerCmd::Delete { grace: None })
        .await
        .expect("send");
    settle().await;
    // Terminating shows while the grace period runs.
    assert_eq!(column(&h), "Terminating");
    advance(11).await;
    let calls = fake.calls();
    let order: Vec<&String> = calls
        .iter()
        .filter(|c| c.starts_with("stop:") || c.starts_with("exec:"))
        .collect();
    assert_eq!(
        order[0], "exec:a:bye",
        "preStop before the signal: {order:?}"
    );
    let pos = |n: &str| calls.iter().position(|c| c == n).expect(n);
    assert!(pos("exec:a:bye") < pos("stop:a"));
    assert!(pos("stop:a") < pos("stop:s2") && pos("stop:b") < pos("stop:s2"));
    assert!(pos("stop:s2") < pos("stop:s1"));
    // b ignored SIGTERM: it got the whole grace period, then SIGKILL; the sidecars
    // got what remained (at least 2s).
    let stops = fake.stops();
    let b = stops.iter().find(|s| s.0 == "b").expect("b");
    assert!(b.1 > Duration::from_secs(9), "{stops:?}");
    let s2 = stops.iter().find(|s| s.0 == "s2").expect("s2");
    assert_eq!(s2.1, Duration::from_secs(2), "{stops:?}");
    assert!(h.cmd.is_closed());
}

#[tokio::test(start_paused = true)]
async fn force_delete_skips_grace_and_pre_stop() {
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: a
    image: busybox
    lifecycle: {preStop: {exec: {command: [bye]}}}
"#;
    let (fake, h, _d) = start(yaml);
    settle().await;
    h.cmd
        .send(WorkerCmd::Delete { grace: Some(0) })
        .await
        .expect("send");
    settle().await;
    assert!(!fake.calls().iter().any(|c| c.starts_with("exec:")));
    assert_eq!(fake.stops()[0].1, Duration::ZERO);
    assert!(h.cmd.is_closed());
}

#[tokio::test(start_paused = true)]
async fn failed_pre_stop_only_emits_an_event() {
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: a
    image: busybox
    lifecycle: {preStop: {exec: {command: [bye]}}}
"#;
    let (fake, h, _d) = start(yaml);
    let codes = scripted(&fake);
    codes.lock().expect("lock").insert("bye".into(), 2);
    settle().await;
    h.cmd
        .send(WorkerCmd::Delete { grace: Some(5) })
        .await
        .expect("send");
    settle().await;
    let calls = fake.calls();
    let pos = |n: &str| calls.iter().position(|c| c == n).expect(n);
    assert!(pos("exec:a:bye") < pos("stop:a"), "the stop still happens");
    assert!(events(&h).iter().any(|(r, m)| r == "FailedPreStopHook"
        && m.contains("failed - error: command 'bye' exited with 2")));
    assert!(h.cmd.is_closed());
}

#[tokio::test(start_paused = true)]
async fn unresponsive_shim_makes_the_pod_unknown_and_nothing_is_decided_meanwhile() {
    let (fake, h, _d) = start(WEB);
    settle().await;
    assert_eq!(phase(&h), "Running");
    assert_eq!(condition(&h, "Ready"), "True");
    fake.set_unresponsive(true);
    // A container exits while nobody can see it: it must not be restarted blind.
    assert!(fake.exit("web", 1));
    tokio::time::advance(Duration::from_secs(2)).await;
    settle().await;
    assert_eq!(phase(&h), "Unknown");
    let reason = h
        .snapshot
        .borrow()
        .pod
        .status
        .as_ref()
        .and_then(|s| s.reason.clone());
    assert_eq!(reason.as_deref(), Some("ShimUnreachable"));
    assert_eq!(condition(&h, "Ready"), "False");
    assert_eq!(column(&h), "ShimUnreachable");
    assert_eq!(restarts(&h, "web"), 0);
    let sandboxes = fake
        .calls()
        .iter()
        .filter(|c| *c == "run_pod_sandbox")
        .count();
    assert_eq!(
        sandboxes, 1,
        "no sandbox is recreated while the shim is silent"
    );
    let ev = events(&h);
    assert_eq!(
        ev.iter().filter(|(r, _)| r == "ShimUnreachable").count(),
        1,
        "one event when it starts: {ev:?}"
    );
    // Time passes: still Unknown, still no decision.
    tokio::time::advance(Duration::from_secs(30)).await;
    settle().await;
    assert_eq!(phase(&h), "Unknown");
    assert_eq!(restarts(&h, "web"), 0);
    // The shim answers again: the exit is seen and handled like any other.
    fake.set_unresponsive(false);
    tokio::time::advance(Duration::from_secs(2)).await;
    settle().await;
    assert_eq!(phase(&h), "Running");
    assert_eq!(restarts(&h, "web"), 1);
    assert_eq!(restarts(&h, "sidecar"), 0);
    assert!(events(&h).iter().any(|(r, _)| r == "ShimReachable"));
    let sandboxes = fake
        .calls()
        .iter()
        .filter(|c| *c == "run_pod_sandbox")
        .count();
    assert_eq!(sandboxes, 1);
}

/// A steady pod (sandbox ready, its containers running, no probes) is not synced
/// without an event: its shim is only asked now and then whether it still answers
/// (steady_check, 10 s ±25 % here), and an exit is still acted on at once.
#[tokio::test(start_paused = true)]
async fn a_steady_pod_costs_one_question_per_check_and_events_still_act_at_once() {
    let (fake, h, _d) = start(WEB);
    settle().await;
    assert_eq!(phase(&h), "Running");
    let before = fake.queries();
    // Under 7.5 s: not even the check.
    tokio::time::advance(Duration::from_secs(7)).await;
    settle().await;
    assert_eq!(
        fake.queries(),
        before,
        "nothing asked before the first check"
    );
    // Past 12.5 s: exactly one check, and it found nothing to sync.
    tokio::time::advance(Duration::from_millis(5600)).await;
    settle().await;
    assert_eq!(fake.queries(), before + 1, "one status question: the check");
    assert!(fake.exit("web", 1));
    settle().await;
    assert_eq!(restarts(&h, "web"), 1, "the exit is handled at once");
    assert_eq!(phase(&h), "Running");
}

/// With a runtime that reports a silent shim itself, a steady pod asks nothing at all
/// between its rare full syncs, and a shim that stops answering still makes it Unknown
/// at once.
#[tokio::test(start_paused = true)]
async fn a_steady_pod_asks_nothing_when_the_runtime_reports_silence() {
    let (fake, h, _d) = start(WEB);
    fake.set_reports_silence(true);
    settle().await;
    assert_eq!(phase(&h), "Running");
    let before = fake.queries();
    // Well past the steady check (10 s), short of the full resync (300 s −25 %).
    advance(200).await;
    assert_eq!(fake.queries(), before, "no status question in 200 s");
    fake.set_unresponsive(true);
    settle().await;
    assert_eq!(phase(&h), "Unknown");
    fake.set_unresponsive(false);
    advance(2).await;
    assert_eq!(phase(&h), "Running");
}

#[tokio::test(start_paused = true)]
async fn unknown_pod_can_be_deleted() {
    let (fake, h, _d) = start(WEB);
    settle().await;
    fake.set_unresponsive(true);
    // A stopped shim cannot say so: the steady check (10 s ±25 %) finds it.
    tokio::time::advance(Duration::from_secs(13)).await;
    settle().await;
    assert_eq!(phase(&h), "Unknown");
    h.cmd
        .send(WorkerCmd::Delete { grace: None })
        .await
        .expect("worker alive");
    tokio::time::advance(Duration::from_secs(1)).await;
    settle().await;
    assert!(fake.calls().iter().any(|c| c == "remove_pod_sandbox"));
    // No graceful stop was attempted through a shim that cannot answer.
    assert!(fake.stops().is_empty(), "{:?}", fake.stops());
}

#[tokio::test(start_paused = true)]
async fn a_second_delete_with_a_shorter_grace_cuts_the_running_stop_short() {
    let (fake, h, _d) = start(WEB);
    settle().await;
    fake.ignore_term("web");
    // The pod's own grace: 30s, which web (ignoring SIGTERM) would use up.
    h.cmd
        .send(WorkerCmd::Delete { grace: None })
        .await
        .expect("send");
    advance(3).await;
    assert_eq!(column(&h), "Terminating");
    assert_eq!(fake.running(), 1, "web still waits out its grace");
    // `delete --grace-period=0` meanwhile: killed at once, no 27 more seconds.
    h.cmd
        .send(WorkerCmd::Delete { grace: Some(0) })
        .await
        .expect("send");
    advance(1).await;
    assert_eq!(fake.running(), 0);
    assert!(fake.calls().iter().any(|c| c == "remove_pod_sandbox"));
    let web: Vec<Duration> = fake
        .stops()
        .into_iter()
        .filter(|s| s.0 == "web")
        .map(|s| s.1)
        .collect();
    assert_eq!(
        web.len(),
        2,
        "stopped again with the shorter grace: {web:?}"
    );
    assert!(
        web[0] > Duration::from_secs(29) && web[1] == Duration::ZERO,
        "{web:?}"
    );
    // The pod says which grace is in force.
    assert_eq!(
        h.snapshot
            .borrow()
            .pod
            .metadata
            .deletion_grace_period_seconds,
        Some(0)
    );
}

// ---- Responsiveness: orders, status and events while the worker is busy ----

/// `n` regular containers `c0` … `c{n-1}`.
fn many(n: usize) -> String {
    let mut y =
        String::from("apiVersion: v1\nkind: Pod\nmetadata: {name: many}\nspec:\n  containers:\n");
    for i in 0..n {
        y.push_str(&format!("  - {{name: c{i}, image: busybox}}\n"));
    }
    y
}

fn creates(fake: &FakeRuntime, name: &str) -> usize {
    let call = format!("create:{name}");
    fake.calls().iter().filter(|c| **c == call).count()
}

fn terminating(h: &PodHandle) -> bool {
    h.snapshot
        .borrow()
        .pod
        .metadata
        .deletion_timestamp
        .is_some()
}

#[tokio::test(start_paused = true)]
async fn delete_during_a_long_start_is_taken_at_once_and_stops_it() {
    let (fake, h, _d) = start(&many(300));
    // Each create takes 100 ms, like podhost-runc: the start would take 30 s even with
    // the worker's four creates at a time.
    fake.set_slowness(Duration::from_millis(100));
    advance(1).await;
    let created = fake
        .calls()
        .iter()
        .filter(|c| c.starts_with("create:"))
        .count();
    assert!((2..=60).contains(&created), "{created} creates in 1 s");
    // The status follows the start as it goes, not once all 300 run.
    let running = h
        .snapshot
        .borrow()
        .pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default()
        .iter()
        .filter(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
        .count();
    // Only those created ahead and not started yet are not shown running.
    assert!(
        running + 4 >= created,
        "{running} shown running of {created}"
    );
    h.cmd
        .send(WorkerCmd::Delete { grace: Some(30) })
        .await
        .expect("send");
    // Taken before the next container: Terminating shows, nothing more is created.
    tokio::time::advance(Duration::from_millis(150)).await;
    settle().await;
    assert!(terminating(&h), "the delete is shown while the start runs");
    advance(2).await;
    assert!(h.cmd.is_closed(), "the worker deleted the pod");
    let total = fake
        .calls()
        .iter()
        .filter(|c| c.starts_with("create:"))
        .count();
    assert!(total <= created + 4, "{total} created after the delete");
    assert_eq!(fake.running(), 0);
}

const THREE: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: a, image: busybox}\n  - {name: b, image: busybox}\n  - {name: c, image: busybox}\n";

/// A pod's regular containers are created together (their create helpers overlap) and
/// started one after the other in the pod's order, each with its events in order.
#[tokio::test(start_paused = true)]
async fn regular_containers_are_created_together_and_started_in_order() {
    let (fake, h, _d) = start(THREE);
    settle().await;
    assert_eq!(
        fake.calls(),
        [
            "run_pod_sandbox",
            "create:a",
            "create:b",
            "create:c",
            "start:a",
            "start:b",
            "start:c"
        ]
    );
    assert_eq!(phase(&h), "Running");
    let order: Vec<String> = events(&h)
        .into_iter()
        .filter(|(r, _)| r == "Created" || r == "Started")
        .map(|(r, m)| format!("{r} {}", m.rsplit(' ').next().unwrap_or_default()))
        .collect();
    assert_eq!(
        order,
        [
            "Created a",
            "Started a",
            "Created b",
            "Started b",
            "Created c",
            "Started c"
        ]
    );
    // A restart creates only the container that exited (the old one is kept for
    // `logs --previous`).
    fake.exit("b", 1);
    advance(11).await;
    let after: Vec<String> = fake.calls().into_iter().skip(7).collect();
    assert_eq!(after, ["create:b", "start:b"]);
}

/// A delete taken between two starts leaves no container that was created ahead of its
/// start: they are removed before the pod's sandbox goes.
#[tokio::test(start_paused = true)]
async fn containers_created_ahead_of_a_start_cut_short_are_removed() {
    let (fake, h, _d) = start(THREE);
    fake.set_slowness(Duration::from_millis(100));
    tokio::time::advance(Duration::from_millis(50)).await;
    settle().await;
    h.cmd
        .send(WorkerCmd::Delete { grace: Some(0) })
        .await
        .expect("send");
    advance(3).await;
    assert!(h.cmd.is_closed(), "the worker deleted the pod");
    let calls = fake.calls();
    let pos = |call: &str| calls.iter().position(|c| c == call);
    assert_eq!(pos("start:b"), None, "{calls:?}");
    assert_eq!(pos("start:c"), None, "{calls:?}");
    for name in ["b", "c"] {
        let removed = pos(&format!("remove:{name}"));
        assert!(
            removed.is_some() && removed < pos("remove_pod_sandbox"),
            "{calls:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn delete_during_an_image_pull_drops_the_pull() {
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: a, image: reg.test/big:1}\n";
    let (fake, h, _d) = start(yaml);
    fake.add_pullable("reg.test/big:1");
    fake.set_slowness(Duration::from_secs(600));
    advance(2).await;
    assert!(fake.calls().iter().any(|c| c == "pull:reg.test/big:1"));
    assert!(
        events(&h).iter().any(|(r, _)| r == "Pulling"),
        "{:?}",
        events(&h)
    );
    h.cmd
        .send(WorkerCmd::Delete { grace: None })
        .await
        .expect("send");
    advance(1).await;
    assert!(h.cmd.is_closed(), "deleted without waiting for the pull");
    assert_eq!(creates(&fake, "a"), 0);
}

const STUBBORN_SIDECAR: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: sc}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 20
  initContainers:
  - {name: log, image: busybox, restartPolicy: Always}
  containers:
  - {name: main, image: busybox}
"#;

#[tokio::test(start_paused = true)]
async fn an_exited_main_container_shows_while_its_sidecar_stops() {
    let (fake, h, _d) = start(STUBBORN_SIDECAR);
    settle().await;
    fake.ignore_term("log");
    assert_eq!(ready_col(&h), "2/2");
    fake.exit("main", 0);
    advance(1).await;
    // The sidecar takes its 20 s; main's end and the Killing are shown meanwhile.
    assert_eq!(fake.running(), 1, "the sidecar is still stopping");
    let main = status_of(&h, "main");
    assert_eq!(main["state"]["terminated"]["reason"], "Completed", "{main}");
    assert_eq!(ready_col(&h), "1/2");
    assert!(events(&h)
        .iter()
        .any(|(r, m)| r == "Killing" && m == "Stopping container log"));
    advance(20).await;
    assert_eq!(phase(&h), "Succeeded");
}

const FAILING_POST_START: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  terminationGracePeriodSeconds: 60
  containers:
  - name: web
    image: busybox
    lifecycle: {postStart: {exec: {command: [hook]}}}
"#;

#[tokio::test(start_paused = true)]
async fn a_failed_post_start_shows_at_once_and_a_shorter_delete_cuts_its_kill() {
    let (fake, h, _d) = start(FAILING_POST_START);
    let codes = scripted(&fake);
    codes.lock().expect("lock").insert("hook".into(), 7);
    fake.ignore_term("web");
    settle().await;
    // The kill takes the pod's 60 s; what happened is shown now, not then.
    let evs: Vec<String> = events(&h).into_iter().map(|(r, _)| r).collect();
    for want in ["Created", "Started", "FailedPostStartHook", "Killing"] {
        assert!(evs.iter().any(|r| r == want), "{want} missing: {evs:?}");
    }
    assert_ne!(column(&h), "ContainerCreating");
    advance(5).await;
    assert_eq!(fake.running(), 1, "web waits out its grace");
    h.cmd
        .send(WorkerCmd::Delete { grace: Some(1) })
        .await
        .expect("send");
    advance(3).await;
    assert!(
        h.cmd.is_closed(),
        "deleted in the 1 s (at least 2 s) it allows"
    );
    assert_eq!(fake.running(), 0);
}

#[tokio::test(start_paused = true)]
async fn delete_during_a_hanging_post_start_hook_does_not_wait_for_it() {
    let (fake, h, _d) = start(FAILING_POST_START);
    // The hook never ends: it would hold the worker for the pod's 60 s.
    fake.on_exec(|_, _| None);
    advance(2).await;
    assert!(fake.calls().iter().any(|c| c == "exec:web:hook"));
    h.cmd
        .send(WorkerCmd::Delete { grace: Some(0) })
        .await
        .expect("send");
    settle().await;
    assert!(h.cmd.is_closed());
    assert_eq!(fake.running(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_liveness_kill_shows_at_once_and_a_force_delete_cuts_it() {
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  terminationGracePeriodSeconds: 60
  containers:
  - name: web
    image: busybox
    livenessProbe: {exec: {command: [live]}, periodSeconds: 1, failureThreshold: 1}
"#;
    let (fake, h, _d) = start(yaml);
    let codes = scripted(&fake);
    fake.ignore_term("web");
    settle().await;
    codes.lock().expect("lock").insert("live".into(), 1);
    advance(2).await;
    let evs = events(&h);
    assert!(evs.iter().any(|(r, _)| r == "Unhealthy"), "{evs:?}");
    assert!(
        evs.iter().any(|(r, m)| r == "Killing"
            && m == "Container web failed liveness probe, will be restarted"),
        "{evs:?}"
    );
    assert_eq!(fake.running(), 1, "web waits out its 60 s");
    h.cmd
        .send(WorkerCmd::Delete { grace: Some(0) })
        .await
        .expect("send");
    settle().await;
    assert!(
        h.cmd.is_closed(),
        "a force delete does not wait for the liveness kill"
    );
    assert_eq!(fake.running(), 0);
    assert_eq!(restarts(&h, "web"), 0, "no restart after the delete");
}

#[tokio::test(start_paused = true)]
async fn a_longer_delete_lets_a_liveness_kill_finish() {
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  terminationGracePeriodSeconds: 60
  containers:
  - name: web
    image: busybox
    livenessProbe: {exec: {command: [live]}, periodSeconds: 1, failureThreshold: 1, terminationGracePeriodSeconds: 5}
"#;
    let (fake, h, _d) = start(yaml);
    let codes = scripted(&fake);
    fake.ignore_term("web");
    settle().await;
    codes.lock().expect("lock").insert("live".into(), 1);
    advance(2).await;
    h.cmd
        .send(WorkerCmd::Delete { grace: Some(30) })
        .await
        .expect("send");
    settle().await;
    assert!(terminating(&h));
    // The kill already ends sooner than the delete's 30 s: it is not started again,
    // and once it is done the pod goes.
    advance(6).await;
    assert!(h.cmd.is_closed());
    let web: Vec<Duration> = fake.stops().into_iter().map(|s| s.1).collect();
    assert_eq!(web.len(), 1, "{web:?}");
    assert!(web[0] <= Duration::from_secs(5), "{web:?}");
}

#[tokio::test(start_paused = true)]
async fn create_errors_back_off_like_crash_loops_and_their_events_are_counted() {
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - {name: web, image: busybox}
  - name: probed
    image: busybox
    readinessProbe: {exec: {command: [ready]}, periodSeconds: 1}
"#;
    let (fake, h, _d) = start(yaml);
    let why = "exec: \"nope\": executable file not found in $PATH";
    fake.fail_create("web", Some(why));
    settle().await;
    assert_eq!(
        waiting_reason(&h, "web").as_deref(),
        Some("CreateContainerError")
    );
    // Tries at 0, 10, 30, 70, 150, 310, 610 s (the readiness probe wakes the worker
    // every second meanwhile: a wake-up is not a try).
    let mut elapsed = 0;
    for (n, at) in [(1, 10), (2, 30), (3, 70), (4, 150), (5, 310), (6, 610)] {
        advance(at - elapsed - 1).await;
        assert_eq!(creates(&fake, "web"), n, "tries before {at} s");
        advance(2).await;
        elapsed = at + 1;
        assert_eq!(creates(&fake, "web"), n + 1, "tries after {at} s");
        assert_eq!(
            waiting_reason(&h, "web").as_deref(),
            Some("CreateContainerError")
        );
    }
    // One series per event, counted: not one line per try.
    let rec = h.snapshot.borrow().clone();
    let failed: Vec<_> = rec.events.iter().filter(|e| e.reason == "Failed").collect();
    assert_eq!(failed.len(), 1, "{:?}", rec.events);
    assert_eq!(failed[0].count, 7);
    assert!(failed[0].message.ends_with(why), "{}", failed[0].message);
    assert_eq!(
        (failed[0].time - failed[0].first_time) / 1_000_000_000,
        610,
        "first and last try"
    );
    assert!(rec.events.len() < 10, "{:?}", rec.events);
    assert_eq!(restarts(&h, "web"), 0);
    // Fixed: the next try (at the 5 min cap) starts it, and the back-off is forgotten.
    fake.fail_create("web", None);
    advance(300).await;
    assert!(status_of(&h, "web")["state"]["running"].is_object());
    assert_eq!(creates(&fake, "web"), 8);
    assert_eq!(h.snapshot.borrow().containers["web"].create_backoff, None);
}

#[tokio::test(start_paused = true)]
async fn a_failed_restart_keeps_its_attempt_and_backs_off() {
    let (fake, h, _d) = start(WEB);
    settle().await;
    fake.fail_create("web", Some("no space left on device"));
    fake.exit("web", 1);
    settle().await;
    // The restart (attempt 1) failed to create: retried after 10 s, as attempt 1.
    // kubelet counts restarts from the runtime's containers: none was made yet.
    assert_eq!(creates(&fake, "web"), 2);
    assert_eq!(restarts(&h, "web"), 0);
    assert_eq!(
        waiting_reason(&h, "web").as_deref(),
        Some("CreateContainerError")
    );
    advance(5).await;
    assert_eq!(creates(&fake, "web"), 2);
    fake.fail_create("web", None);
    advance(6).await;
    assert_eq!(creates(&fake, "web"), 3);
    assert_eq!(restarts(&h, "web"), 1);
    let attempt = h.snapshot.borrow().containers["web"]
        .current
        .as_ref()
        .map(|c| c.config.attempt);
    assert_eq!(attempt, Some(1));
}

/// Wait (a bounded number of real short sleeps) for what a blocking thread computes:
/// the eviction manager walks directories off the async runtime.
async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..2000 {
        settle().await;
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("never happened: {what}");
}

const SCRATCH: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: filler}
spec:
  containers:
  - name: app
    image: busybox
    command: [sleep, "1000"]
    volumeMounts: [{name: scratch, mountPath: /scratch}]
  volumes:
  - {name: scratch, emptyDir: {sizeLimit: 1Mi}}
"#;

#[tokio::test(start_paused = true)]
async fn the_eviction_tick_evicts_a_pod_over_its_empty_dir_limit() {
    use podhost::lifecycle::eviction::{Manager, Paths};
    use std::sync::atomic::Ordering;
    let (fake, h, d) = start(SCRATCH);
    settle().await;
    assert_eq!(phase(&h), "Running");
    let handles = vec![h.clone()];
    let mgr = Manager::new(
        fake.clone(),
        Arc::new(move || handles.clone()),
        Paths {
            log_dir: d.path().join("log"),
            volumes_dir: d.path().join("vol"),
        },
    );
    let ticks = mgr.ticks();
    let task = mgr.spawn(Duration::from_secs(10));
    // The first tick is at once, with nothing over its limit.
    until("first tick", || ticks.load(Ordering::SeqCst) == 1).await;
    let dir = d.path().join("vol/uid-1/empty-dir/scratch");
    std::fs::write(dir.join("f"), vec![1u8; 2 << 20]).expect("fill");
    // Nothing is measured before the period ends.
    advance(9).await;
    assert_eq!(ticks.load(Ordering::SeqCst), 1);
    assert_eq!(phase(&h), "Running");
    assert_eq!(fake.running(), 1);
    advance(1).await;
    until("evicted", || phase(&h) == "Failed").await;
    let rec = h.snapshot.borrow().clone();
    let st = rec.pod.status.clone().expect("status");
    let msg = "Usage of EmptyDir volume \"scratch\" exceeds the limit \"1Mi\". ";
    assert_eq!(st.reason.as_deref(), Some("Evicted"));
    assert_eq!(st.message.as_deref(), Some(msg));
    assert!(rec
        .events
        .iter()
        .any(|e| e.kind == "Warning" && e.reason == "Evicted" && e.message == msg));
    // Killed at once (grace 0), never restarted; the volume stays until the delete.
    assert_eq!(fake.running(), 0);
    assert!(fake.calls().iter().any(|c| c.starts_with("stop:")));
    advance(60).await;
    assert_eq!(fake.running(), 0);
    assert_eq!(phase(&h), "Failed");
    assert_eq!(restarts(&h, "app"), 0);
    assert!(dir.join("f").is_file());
    // Later ticks leave an evicted pod alone.
    assert!(ticks.load(Ordering::SeqCst) >= 8);
    assert_eq!(
        h.snapshot
            .borrow()
            .events
            .iter()
            .filter(|e| e.reason == "Evicted")
            .map(|e| e.count)
            .sum::<u32>(),
        1
    );
    task.abort();
}

/// A container whose state cannot be read right after its start (its shim slow to
/// answer on a loaded machine) shows running, is not killed, and is never started a
/// second time beside itself.
#[tokio::test(start_paused = true)]
async fn a_started_container_whose_state_cannot_be_read_is_not_started_again() {
    let (fake, h, _d) = start(WEB);
    fake.set_unknown_statuses(true);
    settle().await;
    advance(30).await;
    assert_eq!((creates(&fake, "web"), creates(&fake, "sidecar")), (1, 1));
    assert_eq!(phase(&h), "Running");
    assert!(status_of(&h, "web")["state"]["running"].is_object());
    assert!(!events(&h).iter().any(|(r, _)| r == "Killing"));
    fake.set_unknown_statuses(false);
    advance(30).await;
    assert_eq!((creates(&fake, "web"), creates(&fake, "sidecar")), (1, 1));
    assert_eq!((restarts(&h, "web"), restarts(&h, "sidecar")), (0, 0));
    assert_eq!(fake.running(), 2);
}

/// kubelet: a container in `Unknown` state may still run, so it is killed before
/// anything replaces it. While the kill cannot be confirmed nothing starts; once its
/// state can be read again, a container found running is kept.
#[tokio::test(start_paused = true)]
async fn a_container_in_unknown_state_is_killed_before_it_is_replaced() {
    let (fake, h, dir) = start(WEB);
    settle().await;
    assert_eq!(fake.running(), 2);
    // A daemon restart that finds the record an older daemon left: web Unknown.
    let mut rec = h.snapshot.borrow().clone();
    drop(h);
    settle().await;
    let calls_before = fake.calls().len();
    advance(2).await;
    assert_eq!(fake.calls().len(), calls_before, "the first worker ended");
    let web = rec
        .containers
        .get_mut("web")
        .and_then(|t| t.current.as_mut());
    web.expect("web's status").state = podhost_runtime::ContainerState::Unknown;
    fake.set_unknown_statuses(true);
    let rt: Arc<dyn Runtime> = fake.clone();
    let h = PodWorker::spawn(rt, None, rec, settings(dir.path()));
    settle().await;
    advance(20).await;
    assert_eq!(
        creates(&fake, "web"),
        1,
        "nothing replaced it: {:?}",
        fake.calls()
    );
    assert!(fake.calls().iter().any(|c| c == "stop:web"));
    assert!(
        events(&h).iter().any(|(r, m)| r == "Killing"
            && m == "Container web is in \"Unknown\" state, try killing it before restart"),
        "{:?}",
        events(&h)
    );
    fake.set_unknown_statuses(false);
    advance(5).await;
    assert_eq!(creates(&fake, "web"), 1);
    assert_eq!(fake.running(), 2);
    assert_eq!(restarts(&h, "web"), 0);
    assert!(status_of(&h, "web")["state"]["running"].is_object());
}
