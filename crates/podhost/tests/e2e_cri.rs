//! podhost as a CRI runtime, driven by the real crictl (v1.29, from the shared test kit)
//! on the daemon's CRI socket: a two-container sandbox sharing localhost, ExecSync, logs,
//! stats, inspect, stop and removal; meanwhile a pod of the podhost CLI runs and is never
//! listed or touched through CRI, and CRI's pods never show in the CLI. Nothing is left
//! at the end (the harness's leak check).

mod common;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};

use common::{crictl, Env};

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn crictl_runs_a_two_container_sandbox_beside_a_cli_pod() {
    if crictl().is_none() {
        eprintln!("skipped: no crictl (shared/cri-testkit) found");
        return;
    }
    let mut env = Env::new();
    let cli_pod = env.start_cli_pod();

    // The socket is root's only, and crictl 1.29 (socket path as :authority) gets in.
    let meta = std::fs::metadata(env.cri_socket()).expect("CRI socket");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let version = env.crictl_ok(&["version"]);
    assert!(version.contains("RuntimeName:  podhost"), "{version}");
    let info = json(&env.crictl_ok(&["info"]));
    let ready: Vec<&str> = info["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .filter(|c| c["status"] == true)
        .filter_map(|c| c["type"].as_str())
        .collect();
    assert_eq!(ready, ["RuntimeReady", "NetworkReady"]);
    // The CLI's pod is not CRI's.
    assert_eq!(env.crictl_ok(&["pods", "-q"]).trim(), "");
    assert_eq!(env.crictl_ok(&["ps", "-a", "-q"]).trim(), "");
    // Images are shared: the busybox the CLI loaded is there.
    assert!(env
        .crictl_ok(&["images"])
        .contains("docker.io/library/busybox"));

    let logs = env.root.join("log/cri-pod");
    let dir = env.root.join("cri");
    std::fs::create_dir_all(&dir).expect("config dir");
    let pod_json = dir.join("pod.json");
    std::fs::write(
        &pod_json,
        serde_json::json!({
            "metadata": {"name": "cri-pod", "namespace": "kube-test", "uid": "cri-uid-1", "attempt": 0},
            "hostname": "cri-pod",
            "log_directory": logs,
            "labels": {"app": "cri"},
            "linux": {}
        })
        .to_string(),
    )
    .expect("pod.json");
    let container = |name: &str, script: &str| {
        let path = dir.join(format!("{name}.json"));
        std::fs::write(
            &path,
            serde_json::json!({
                "metadata": {"name": name},
                "image": {"image": "busybox"},
                "command": ["sh", "-c", script],
                "log_path": format!("{name}/0.log"),
                "labels": {"io.kubernetes.container.name": name},
                "linux": {}
            })
            .to_string(),
        )
        .expect("container json");
        path.display().to_string()
    };
    let web = container(
        "web",
        "mkdir -p /www && echo hello from web > /www/index.html && echo web up && exec httpd -f -p 8080 -h /www",
    );
    let client = container("client", "while true; do echo tick; sleep 1; done");
    let pod_json = pod_json.display().to_string();

    let pod = env.crictl_ok(&["runp", &pod_json]).trim().to_string();
    let web_id = env
        .crictl_ok(&["create", &pod, &web, &pod_json])
        .trim()
        .to_string();
    let client_id = env
        .crictl_ok(&["create", &pod, &client, &pod_json])
        .trim()
        .to_string();
    env.crictl_ok(&["start", &web_id, &client_id]);

    // Listing: CRI's sandbox and its containers, by short id too; not the CLI's pod.
    let pods = json(&env.crictl_ok(&["pods", "-o", "json"]));
    let items = pods["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{pods}");
    assert_eq!(items[0]["metadata"]["name"], "cri-pod");
    assert_eq!(items[0]["state"], "SANDBOX_READY");
    let short = &pod[..13];
    assert!(env.crictl_ok(&["pods", "--id", short, "-q"]).contains(&pod));
    assert!(env
        .crictl_ok(&["pods", "--label", "app=other", "-q"])
        .trim()
        .is_empty());
    let ps = env.crictl_ok(&["ps", "-a", "-q"]);
    let mut listed: Vec<&str> = ps.lines().collect();
    listed.sort();
    let mut expected = vec![web_id.as_str(), client_id.as_str()];
    expected.sort();
    assert_eq!(listed, expected);
    let cli_ps = env.ok(&["ps", "-a"]);
    assert!(
        !cli_ps.contains(&web_id[..12]) && !cli_ps.contains(&pod[..12]),
        "the CLI lists CRI's: {cli_ps}"
    );
    assert!(!env.ok(&["get", "pods", "-A"]).contains("cri-pod"));

    // The two containers share localhost (the pause's network namespace).
    let page = env.crictl_ok(&[
        "exec",
        "-s",
        &client_id,
        "sh",
        "-c",
        "for i in $(seq 50); do wget -qO- http://127.0.0.1:8080/ && exit 0; sleep 0.2; done; exit 1",
    ]);
    // crictl prints stdout and stderr each with a newline of its own.
    assert_eq!(page.trim_end(), "hello from web");
    // An exit code comes back as crictl's failure.
    let failed = env.crictl(&["exec", "-s", &client_id, "sh", "-c", "echo out; exit 3"]);
    assert!(!failed.status.success());
    let said = String::from_utf8_lossy(&failed.stderr);
    assert!(
        said.contains("exit code 3") || said.contains("exited with 3"),
        "{said}"
    );
    // One PID namespace for the pod (CRI's default namespace mode, POD): the pause is
    // PID 1.
    let init = env.crictl_ok(&["exec", "-s", &web_id, "cat", "/proc/1/cmdline"]);
    assert!(init.contains("pause"), "{init:?}");

    // inspectp / inspect.
    let status = json(&env.crictl_ok(&["inspectp", &pod]));
    assert_eq!(status["status"]["state"], "SANDBOX_READY");
    let ip = status["status"]["network"]["ip"].as_str().expect("ip");
    assert!(ip.starts_with("10."), "{status}");
    assert_eq!(
        status["status"]["linux"]["namespaces"]["options"]["pid"],
        "POD"
    );
    let pause = status["info"]["pid"].as_u64().expect("pause pid") as u32;
    env.watched_pids.push(pause);
    let c = json(&env.crictl_ok(&["inspect", &web_id]));
    assert_eq!(c["status"]["state"], "CONTAINER_RUNNING");
    assert_eq!(
        c["status"]["logPath"],
        logs.join("web/0.log").display().to_string()
    );
    env.watched_pids
        .push(c["info"]["pid"].as_u64().expect("pid") as u32);

    // Logs, written by the shim in CRI format under the sandbox's log directory.
    let web_logs = env.crictl_ok(&["logs", &web_id]);
    assert!(web_logs.contains("web up"), "{web_logs}");
    let tick = env.crictl_ok(&["logs", "--tail", "1", &client_id]);
    assert_eq!(tick, "tick\n");

    // Stats: cumulative CPU and memory of both containers and of the pod.
    let stats = json(&env.crictl_ok(&["stats", "-o", "json"]));
    let st = stats["stats"].as_array().expect("stats");
    assert_eq!(st.len(), 2, "{stats}");
    for s in st {
        assert!(s["cpu"]["timestamp"].as_str().is_some_and(|t| t != "0"));
        let mem: u64 = s["memory"]["workingSetBytes"]["value"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .expect("working set");
        assert!(mem > 0, "{s}");
    }
    let podstats = json(&env.crictl_ok(&["statsp", "-o", "json"]));
    assert_eq!(
        podstats["stats"].as_array().map(Vec::len),
        Some(1),
        "{podstats}"
    );

    // Stop one container (SIGTERM, then SIGKILL), remove it; then the sandbox.
    env.crictl_ok(&["stop", "--timeout", "1", &client_id]);
    let c = json(&env.crictl_ok(&["inspect", &client_id]));
    assert_eq!(c["status"]["state"], "CONTAINER_EXITED");
    env.crictl_ok(&["rm", &client_id]);
    env.crictl_ok(&["stopp", &pod]);
    let status = json(&env.crictl_ok(&["inspectp", &pod]));
    assert_eq!(status["status"]["state"], "SANDBOX_NOTREADY");
    let c = json(&env.crictl_ok(&["inspect", &web_id]));
    assert_eq!(c["status"]["state"], "CONTAINER_EXITED", "the exit is kept");
    env.crictl_ok(&["rmp", &pod]);
    assert_eq!(env.crictl_ok(&["pods", "-q"]).trim(), "");
    // crictl asks for the status before it removes: a gone sandbox is NotFound there
    // (the RemovePodSandbox RPC itself is idempotent, see the cri crate's tests).
    let again = env.crictl(&["rmp", &pod]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("NotFound"));

    // The CLI's pod ran through all of it, untouched.
    cli_pod.assert_untouched(&env);

    // The kubelet removes its pods' log directories; here the test does.
    std::fs::remove_dir_all(&logs).expect("remove CRI logs");
    std::fs::remove_dir_all(&dir).expect("remove configs");
    env.teardown();
}
