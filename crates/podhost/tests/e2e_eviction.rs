//! End-to-end: kubelet's local-storage eviction (emptyDir sizeLimit, a container's
//! limits.ephemeral-storage), measured by the daemon every second here.

mod common;

use std::time::Duration;

use common::{container_status, Env};

fn env() -> Env {
    Env::with_daemon_env(&[("PODHOST_EVICTION_INTERVAL", "1s")])
}

/// Wait until the pod is Failed, and check it was evicted with `message`: reason,
/// event, containers killed and not restarted.
fn assert_evicted(env: &mut Env, pod: &str, message: &str) -> serde_json::Value {
    let p = env.wait_for(pod, "eviction", Duration::from_secs(60), |p| {
        p["status"]["phase"] == "Failed"
    });
    assert_eq!(p["status"]["reason"], "Evicted", "{p:#}");
    assert_eq!(p["status"]["message"], message, "{p:#}");
    let describe = env.ok(&["describe", "pod", pod]);
    assert!(
        describe.contains("Evicted") && describe.contains(message.trim_end()),
        "{describe}"
    );
    let get = env.ok(&["get", "pods"]);
    assert!(
        get.lines()
            .any(|l| l.starts_with(pod) && l.contains("Evicted")),
        "{get}"
    );
    // Killed, and never started again (restartPolicy Always notwithstanding).
    assert!(
        env.containers()
            .iter()
            .all(|c| c.pod != pod || c.state != "Running"),
        "{:?}",
        env.containers()
    );
    p
}

#[test]
fn an_empty_dir_filled_past_its_size_limit_evicts_the_pod() {
    let mut env = env();
    env.apply(
        "filler.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: filler}
spec:
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "dd if=/dev/zero of=/scratch/f bs=1M count=16; sleep 3600"]
    volumeMounts: [{name: scratch, mountPath: /scratch}]
  volumes:
  - name: scratch
    emptyDir: {sizeLimit: 10Mi}
"#,
    );
    // Applied without a warning that the limit is not enforced.
    let p = assert_evicted(
        &mut env,
        "filler",
        "Usage of EmptyDir volume \"scratch\" exceeds the limit \"10Mi\". ",
    );
    assert_eq!(container_status(&p, "app")["restartCount"], 0);
    let uid = p["metadata"]["uid"].as_str().expect("uid");
    // The volume is kept until the pod is deleted (then the leak check sees it gone).
    let file = env.root.join(format!("lib/volumes/{uid}/empty-dir/scratch/f"));
    assert!(file.is_file(), "{}", file.display());
    env.teardown();
}

#[test]
fn a_container_over_its_ephemeral_storage_limit_evicts_the_pod() {
    let mut env = env();
    // Two containers of 20Mi each: the pod (40Mi) is within its limit, `app` is not.
    env.apply(
        "writer.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: writer}
spec:
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "dd if=/dev/zero of=/big bs=1M count=30; sleep 3600"]
    resources:
      limits: {ephemeral-storage: 20Mi}
  - name: idle
    image: busybox
    command: ["sleep", "3600"]
    resources:
      limits: {ephemeral-storage: 20Mi}
"#,
    );
    assert_evicted(
        &mut env,
        "writer",
        "Container app exceeded its local ephemeral storage limit \"20Mi\". ",
    );
    env.teardown();
}

#[test]
fn a_pod_within_its_limits_keeps_running() {
    let mut env = env();
    env.apply(
        "modest.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: modest}
spec:
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "dd if=/dev/zero of=/scratch/f bs=1M count=4; dd if=/dev/zero of=/f bs=1M count=4; touch /scratch/done; sleep 3600"]
    volumeMounts: [{name: scratch, mountPath: /scratch}]
    resources:
      limits: {ephemeral-storage: 20Mi}
  volumes:
  - name: scratch
    emptyDir: {sizeLimit: 10Mi}
"#,
    );
    env.wait_ready("modest");
    let p = env.pod("modest");
    let uid = p["metadata"]["uid"].as_str().expect("uid").to_string();
    let done = env.root.join(format!("lib/volumes/{uid}/empty-dir/scratch/done"));
    env.wait_for("modest", "writes done", Duration::from_secs(30), |_| {
        done.exists()
    });
    // Several measurements later (the daemon logs each eviction; there is none).
    let log_mark = "eviction manager: evicting pod default/modest";
    std::thread::sleep(Duration::from_secs(3));
    assert!(!env.daemon_log().contains(log_mark));
    assert_eq!(env.pod("modest")["status"]["phase"], "Running");
    env.teardown();
}
