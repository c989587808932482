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
fn assert_evicted(env: &Env, pod: &str, message: &str) -> serde_json::Value {
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
    // kubectl prints the pod's reason until the killed containers' terminated states
    // come in, then theirs ("Error" for a kill), as it does for a kubelet's evicted pod
    // (kubernetes#105467): either is right, a running pod's status is not.
    let get = env.ok(&["get", "pods"]);
    assert!(
        get.lines()
            .any(|l| l.starts_with(pod) && (l.contains(" Evicted ") || l.contains(" Error "))),
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
    let env = env();
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
        &env,
        "filler",
        "Usage of EmptyDir volume \"scratch\" exceeds the limit \"10Mi\". ",
    );
    assert_eq!(container_status(&p, "app")["restartCount"], 0);
    let uid = p["metadata"]["uid"].as_str().expect("uid");
    // The volume is kept until the pod is deleted (then the leak check sees it gone).
    let file = env
        .root
        .join(format!("lib/volumes/{uid}/empty-dir/scratch/f"));
    assert!(file.is_file(), "{}", file.display());
    env.teardown();
}

#[test]
fn a_container_over_its_ephemeral_storage_limit_evicts_the_pod() {
    let env = env();
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
        &env,
        "writer",
        "Container app exceeded its local ephemeral storage limit \"20Mi\". ",
    );
    env.teardown();
}

#[test]
fn a_pod_within_its_limits_keeps_running() {
    let env = env();
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
    let done = env
        .root
        .join(format!("lib/volumes/{uid}/empty-dir/scratch/done"));
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

/// Bytes of memory of this machine.
fn mem_total() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").expect("meminfo");
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("MemTotal")
        * 1024
}

#[test]
fn memory_pressure_evicts_best_effort_before_burstable_within_its_request() {
    // Pods get 400Mi together (the rest is reserved); below 150Mi left, one is evicted.
    let reserved = format!("memory={}", mem_total() - (400 << 20));
    let env = Env::with_daemon_env(&[
        ("PODHOST_EVICTION_INTERVAL", "1s"),
        ("PODHOST_SYSTEM_RESERVED", &reserved),
        ("PODHOST_KUBE_RESERVED", "memory=0"),
        ("PODHOST_EVICTION_HARD", "memory.available<150Mi"),
    ]);
    // The node allocatable cgroup is the pods' parent, limited to capacity − reserved.
    let parent = env.cgroup_parent_dir("memory");
    let limit_file = if common::cgroup_v2() {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    let limit = std::fs::read_to_string(parent.join(limit_file)).expect("limit");
    assert_eq!(limit.trim(), (400u64 << 20).to_string());
    // Memory-backed emptyDirs charge what is written to the pod's memory.
    env.apply(
        "steady.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: steady}
spec:
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "dd if=/dev/zero of=/mem/f bs=1M count=40; touch /mem/done; sleep 3600"]
    volumeMounts: [{name: mem, mountPath: /mem}]
    resources:
      requests: {memory: 100Mi}
  volumes:
  - name: mem
    emptyDir: {medium: Memory}
"#,
    );
    env.wait_ready("steady");
    env.wait_for("steady", "40Mi written", Duration::from_secs(30), |_| {
        env.run(&["exec", "steady", "--", "test", "-e", "/mem/done"])
            .status
            .success()
    });
    env.apply(
        "hog.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  containers:
  - name: hog
    image: busybox
    command: ["sh", "-c", "i=0; while [ $i -lt 30 ]; do dd if=/dev/zero of=/mem/f$i bs=1M count=10 2>/dev/null; i=$((i+1)); sleep 0.3; done; sleep 3600"]
    volumeMounts: [{name: mem, mountPath: /mem}]
  volumes:
  - name: mem
    emptyDir: {medium: Memory}
"#,
    );
    let p = env.wait_for("hog", "eviction", Duration::from_secs(90), |p| {
        p["status"]["phase"] == "Failed"
    });
    assert_eq!(p["status"]["reason"], "Evicted", "{p:#}");
    let msg = p["status"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with(
            "The node was low on resource: memory. Threshold quantity: 150Mi, available: "
        ) && msg.contains("Container hog was using ")
            && msg.ends_with(", request is 0, has larger consumption of memory. "),
        "{msg}"
    );
    // The hog's memory is given back (its memory volume unmounted): the pressure ends,
    // and the Burstable pod within its request stays.
    env.wait_for(
        "steady",
        "no more memory pressure",
        Duration::from_secs(60),
        |_| {
            let node: serde_json::Value =
                serde_json::from_str(&env.ok(&["get", "nodes", "-o", "json"])).expect("json");
            node["items"][0]["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "MemoryPressure" && c["status"] == "False")
        },
    );
    let steady = env.pod("steady");
    assert_eq!(steady["status"]["phase"], "Running", "{steady:#}");
    let hog = env.pod("hog");
    assert_eq!(
        hog["status"]["containerStatuses"][0]["restartCount"], 0,
        "{hog:#}"
    );
    let node = env.ok(&["describe", "node"]);
    assert!(node.contains("MemoryPressure"), "{node}");
    assert!(
        node.contains("default                     steady") || node.contains("steady"),
        "{node}"
    );
    env.teardown();
}

#[test]
fn get_and_describe_node() {
    let env = Env::with_daemon_env(&[
        ("PODHOST_SYSTEM_RESERVED", "memory=1Gi,cpu=500m"),
        ("PODHOST_KUBE_RESERVED", "memory=512Mi"),
    ]);
    env.apply(
        "small.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: small}
spec:
  containers:
  - name: app
    image: busybox
    command: ["sleep", "3600"]
    resources:
      requests: {cpu: 100m, memory: 64Mi}
      limits: {memory: 128Mi}
"#,
    );
    env.wait_ready("small");
    let get = env.ok(&["get", "nodes"]);
    let mut lines = get.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        "{get}"
    );
    let row: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(row[1], "Ready", "{get}");
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["get", "node", row[0], "-o", "json"])).expect("json");
    let cap_mem = json["status"]["capacity"]["memory"]
        .as_str()
        .expect("capacity");
    let alloc_mem = json["status"]["allocatable"]["memory"]
        .as_str()
        .expect("allocatable");
    let bytes = |q: &str| podhost_api::quantity::parse_bytes(q).expect("quantity") as u64;
    // Allocatable = capacity − 1Gi − 512Mi − the 100Mi hard eviction threshold.
    assert_eq!(
        bytes(cap_mem) - bytes(alloc_mem),
        (1 << 30) + (512 << 20) + (100 << 20),
        "{json:#}"
    );
    let conditions: Vec<(String, String)> = json["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap_or_default().to_string(),
                c["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    for (kind, status) in [
        ("MemoryPressure", "False"),
        ("DiskPressure", "False"),
        ("PIDPressure", "False"),
        ("Ready", "True"),
    ] {
        assert!(
            conditions.iter().any(|(k, s)| k == kind && s == status),
            "{kind}: {conditions:?}"
        );
    }
    let d = env.ok(&["describe", "node"]);
    for want in [
        "Conditions:",
        "KubeletHasSufficientMemory",
        "kubelet is posting ready status",
        "Capacity:",
        "Allocatable:",
        "Non-terminated Pods:          (1 in total)",
        "100m (",
        "64Mi (",
        "128Mi (",
        "Allocated resources:",
    ] {
        assert!(d.contains(want), "{want:?} missing in:\n{d}");
    }
    assert!(
        d.lines()
            .any(|l| l.contains("small") && l.contains("default")),
        "{d}"
    );
    env.teardown();
}
