//! The daemon's HTTP API served on the fake runtime: no root, no processes. Shows that
//! `server::run` takes its runtime as an argument, and that podhost's view never sees
//! or removes sandboxes another front door (CRI) created on the same runtime.

use std::sync::Arc;
use std::time::Duration;

use hyper::Method;
use k8s_openapi::api::core::v1::Pod;
use podhost::cli::client::Client;
use podhost::config::Config;
use podhost::server::{ApplyResponse, ContainerRow, Usage};
use podhost_runtime::clock::Clock;
use podhost_runtime::fake::FakeRuntime;
use podhost_runtime::owned::Owned;
use podhost_runtime::{ImageInfo, Owner, Runtime, SandboxConfig, SandboxState};

const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: app
    image: busybox
    command: [sleep, '3600']
";

/// A kubelet's sandbox, made through the CRI view before the daemon starts.
fn kubelet_sandbox() -> SandboxConfig {
    SandboxConfig {
        name: "kube-pod".into(),
        namespace: "kube-system".into(),
        uid: "kube-uid".into(),
        hostname: "kube-pod".into(),
        log_directory: "/var/log/pods/x".into(),
        owner: Owner::Cri,
        ..Default::default()
    }
}

/// Polls `f` until it returns `Some`, for at most 10 s of real time.
async fn until<T, F: std::future::Future<Output = Option<T>>>(mut f: impl FnMut() -> F) -> T {
    for _ in 0..200 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_on_the_fake_runtime_sees_only_its_own_sandboxes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config::rooted(dir.path());
    let fake = Arc::new(FakeRuntime::new(Clock::default(), &["busybox"]));
    let shared: Arc<dyn Runtime> = fake.clone();
    let cri = Owned::new(shared.clone(), Owner::Cri);
    let kube = cri
        .run_pod_sandbox(&kubelet_sandbox())
        .await
        .expect("kubelet sandbox");

    let prepared = podhost::server::prepare(&config).expect("prepare");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(podhost::server::run(
        prepared,
        shared.clone(),
        Arc::new(podhost_cri::Unsupported),
        config.clone(),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let client = Client::new(&config.api_socket());
    // The socket appears once the daemon serves.
    until(|| async { config.api_socket().exists().then_some(()) }).await;

    let applied: ApplyResponse = client
        .call(
            Method::POST,
            "/v1/apply",
            Some(serde_json::json!({ "yaml": POD, "source": "pod.yaml" })),
        )
        .await
        .expect("apply");
    assert_eq!(applied.results.len(), 1, "{applied:?}");

    let pod = until(|| async {
        let pods: Vec<Pod> = client.call(Method::GET, "/v1/pods", None).await.ok()?;
        pods.into_iter()
            .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
    })
    .await;
    assert_eq!(pod.metadata.name.as_deref(), Some("web"));

    // `ps -a`: the pod's sandbox and container, never the kubelet's sandbox.
    let rows: Vec<ContainerRow> = client
        .call(Method::GET, "/v1/containers", None)
        .await
        .expect("containers");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.pod == "default/web"), "{rows:?}");
    assert!(rows.iter().all(|r| r.pod_id != kube), "{rows:?}");

    // Images are shared between the front doors; load goes through the trait.
    let loaded: Vec<ImageInfo> = client
        .call(
            Method::POST,
            "/v1/images/load",
            Some(serde_json::json!({ "path": "/nowhere.tar", "tag": "example.com/x:1" })),
        )
        .await
        .expect("load");
    assert_eq!(loaded[0].repo_tags, ["example.com/x:1"]);
    let images: Vec<ImageInfo> = client
        .call(Method::GET, "/v1/images", None)
        .await
        .expect("images");
    assert_eq!(images.len(), 2, "{images:?}");

    // top: rates from two samples of the runtime's counters, own pods only.
    let top: Vec<Usage> = client
        .call(Method::GET, "/v1/top", None)
        .await
        .expect("top");
    assert!(top.iter().all(|u| u.pod == "web"), "{top:?}");
    assert!(top.iter().any(|u| u.container == "app"), "{top:?}");

    let _: serde_json::Value = client
        .call(Method::DELETE, "/v1/pods/default/web?grace=0", None)
        .await
        .expect("delete");
    until(|| async {
        let pods: Vec<Pod> = client.call(Method::GET, "/v1/pods", None).await.ok()?;
        pods.is_empty().then_some(())
    })
    .await;
    until(|| async {
        let rows: Vec<ContainerRow> = client
            .call(Method::GET, "/v1/containers", None)
            .await
            .ok()?;
        rows.is_empty().then_some(())
    })
    .await;

    // The kubelet's sandbox went through the daemon's start and the pod's deletion.
    let _ = stop_tx.send(());
    daemon.await.expect("join").expect("daemon");
    assert_eq!(
        shared
            .pod_sandbox_status(&kube)
            .await
            .expect("kubelet sandbox kept")
            .state,
        SandboxState::Ready
    );
}
