//! End-to-end: the Kubernetes documentation's examples for injecting data into pods
//! (`examples/k8s-docs/`, images replaced by busybox) run unchanged and print what the
//! documentation says they print.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{container_status, Env};

/// Waits until the logs of `pod` contain every one of `want`.
fn logs_contain(env: &Env, pod: &str, want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = env.run(&["logs", pod]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if want.iter().all(|w| text.contains(w)) {
            return;
        }
        if Instant::now() > deadline {
            let pod_json = env.run(&["get", "pod", pod, "-o", "json"]);
            panic!(
                "logs of {pod} lack {want:?}:\n{text}\npod: {}",
                String::from_utf8_lossy(&pod_json.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until the first container of `pod` started at least once (its config resolved).
fn started(env: &Env, pod: &str, container: &str) {
    env.wait_for(
        pod,
        "the container to start",
        Duration::from_secs(60),
        |p| {
            let st = container_status(p, container);
            st["restartCount"].as_i64().unwrap_or(0) > 0
                || st["state"]["running"].is_object()
                || st["state"]["terminated"].is_object()
        },
    );
}

#[test]
fn documentation_examples_run_unchanged() {
    let env = Env::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/k8s-docs");
    // Objects first, as the pages create them first; then every pod.
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("examples/k8s-docs")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort_by_key(|f| {
        let objects_only = [
            "/secret.yaml",
            "/configmaps.yaml",
            "/configmap-multikeys.yaml",
        ];
        (!objects_only.iter().any(|o| f.ends_with(o)), f.clone())
    });
    for f in &files {
        let out = env.ok(&["apply", "-f", f]);
        assert!(out.contains("created"), "{f}: {out}");
    }

    // Define a Command and Arguments for a Container.
    logs_contain(&env, "command-demo", &["command-demo\n"]);
    // Define Environment Variables / Distribute Credentials: no command of their own
    // (nginx-like images); what matters is that their env resolved and they started.
    for pod in ["envar-demo", "secret-test-pod"] {
        started(
            &env,
            pod,
            if pod == "envar-demo" {
                "envar-demo-container"
            } else {
                "test-container"
            },
        );
    }
    for pod in [
        "env-single-secret",
        "envvars-multiple-secrets",
        "envfrom-secret",
    ] {
        started(&env, pod, "envars-test-container");
    }
    // Define Dependent Environment Variables.
    logs_contain(
        &env,
        "dependent-envars-demo",
        &[
            "UNCHANGED_REFERENCE=$(PROTOCOL)://172.17.0.1:80\n",
            "SERVICE_ADDRESS=https://172.17.0.1:80\n",
            "ESCAPED_REFERENCE=$(PROTOCOL)://172.17.0.1:80\n",
        ],
    );
    // Expose Pod Information Through Environment Variables.
    let node = env.pod("dapi-envars-fieldref")["spec"]["nodeName"]
        .as_str()
        .unwrap_or("")
        .to_string();
    logs_contain(
        &env,
        "dapi-envars-fieldref",
        &[
            &format!("{node}\ndapi-envars-fieldref\ndefault\n"),
            "default\n",
        ],
    );
    logs_contain(
        &env,
        "dapi-envars-resourcefieldref",
        &["1\n1\n33554432\n67108864\n"],
    );
    // Expose Pod Information Through Files.
    logs_contain(
        &env,
        "kubernetes-downwardapi-volume-example",
        &[
            "cluster=\"test-cluster1\"\nrack=\"rack-22\"\nzone=\"us-est-coast\"",
            "build=\"two\"\nbuilder=\"john-doe\"",
        ],
    );
    logs_contain(
        &env,
        "kubernetes-downwardapi-volume-example-2",
        &["\n250\n", "\n125\n", "\n64\n", "\n32"],
    );
    // Configure a Pod to Use a ConfigMap.
    logs_contain(&env, "dapi-test-pod", &["SPECIAL_LEVEL_KEY=very\n"]);
    logs_contain(
        &env,
        "dapi-test-pod-multiple",
        &["SPECIAL_LEVEL_KEY=very\n", "LOG_LEVEL=INFO\n"],
    );
    logs_contain(
        &env,
        "dapi-test-pod-envfrom",
        &["SPECIAL_LEVEL=very\n", "SPECIAL_TYPE=charm\n"],
    );
    logs_contain(&env, "dapi-test-pod-valuefrom", &["very charm\n"]);
    logs_contain(
        &env,
        "dapi-test-pod-volume",
        &["SPECIAL_LEVEL\nSPECIAL_TYPE\n"],
    );
    logs_contain(&env, "dapi-test-pod-specific-key", &["very"]);
    // Configure a Pod to Use a Projected Volume.
    env.wait_ready("test-projected-volume");
    let out = env.ok(&[
        "exec",
        "test-projected-volume",
        "--",
        "sh",
        "-c",
        "ls /projected-volume; cat /projected-volume/username.txt /projected-volume/password.txt",
    ]);
    assert_eq!(out, "password.txt\nusername.txt\nadmin1f2d1e2e67df");
    env.wait_ready("volume-test");
    let out = env.ok(&[
        "exec",
        "volume-test",
        "--",
        "sh",
        "-c",
        "cd /projected-volume; cat my-group/my-username; echo; cat my-group/my-config; echo; cat labels; echo; cat cpu_limit",
    ]);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(
        out,
        format!("my-username\nmy-config\napp=\"volume-test\"\n{cpus}"),
        "an unset cpu limit is the node's allocatable CPUs"
    );
    env.teardown();
}
