//! Lifecycle rules against the fake runtime, on tokio's paused clock (no sleeps, exact timing).

use std::sync::Arc;
use std::time::Duration;

use podhost::lifecycle::restart::BackoffPolicy;
use podhost::lifecycle::worker::{Clock, Settings};
use podhost::lifecycle::{PodHandle, PodRecord, PodWorker, WorkerCmd};
use podhost::runtime::fake::FakeRuntime;
use podhost::runtime::Runtime;

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
    let clock = Clock::default();
    let fake = Arc::new(FakeRuntime::new(clock, &["busybox"]));
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = Settings {
        backoff: BackoffPolicy {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
        },
        log_dir: dir.path().join("log"),
        volumes_dir: dir.path().join("vol"),
        clock,
        resync: Duration::from_secs(1),
        objects: podhost::objects::Objects::in_memory(),
    };
    let rt: Arc<dyn Runtime> = fake.clone();
    let h = PodWorker::spawn(rt, None, pod(yaml), settings);
    (fake, h, dir)
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
