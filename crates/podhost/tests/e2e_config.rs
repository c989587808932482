//! End-to-end: volumes and configuration — hostPath, ConfigMaps, Secrets, the downward
//! API, subPath, live ConfigMap updates and pods waiting for a missing ConfigMap.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{container_status, Env};

/// `podhost exec POD -c C -- sh -c SCRIPT`, stdout.
fn sh(env: &Env, pod: &str, container: &str, script: &str) -> String {
    env.ok(&["exec", pod, "-c", container, "--", "sh", "-c", script])
}

/// Retries `check` on the output of `script` for up to `timeout`.
fn eventually(
    env: &Env,
    pod: &str,
    container: &str,
    script: &str,
    timeout: Duration,
    check: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let out = env.run(&["exec", pod, "-c", container, "--", "sh", "-c", script]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && check(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{pod}/{container}: `{script}` never matched; last output: {text:?} stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn waiting(p: &serde_json::Value, c: &str) -> (String, String) {
    let w = &container_status(p, c)["state"]["waiting"];
    (
        w["reason"].as_str().unwrap_or("").to_string(),
        w["message"].as_str().unwrap_or("").to_string(),
    )
}

#[test]
fn host_path_log_directory_and_type_checks() {
    let env = Env::new();
    let logs = env.root.join("hostlogs");
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: writer}}\nspec:\n  containers:\n  - name: app\n    image: busybox\n    command: [sh, -c, 'echo started > /var/log/app/app.log; sleep 3600']\n    volumeMounts:\n    - {{name: logs, mountPath: /var/log/app}}\n  volumes:\n  - name: logs\n    hostPath: {{path: {}, type: DirectoryOrCreate}}\n",
        logs.display()
    );
    env.apply("writer.yaml", &yaml);
    env.wait_ready("writer");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(logs.join("app.log")).unwrap_or_default() != "started\n" {
        assert!(
            Instant::now() < deadline,
            "app.log never written on the host"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // type: Directory on a missing path fails the container, naming the check.
    let missing = env.root.join("no-such-dir");
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: strict}}\nspec:\n  containers:\n  - name: app\n    image: busybox\n    command: [sleep, '3600']\n    volumeMounts:\n    - {{name: data, mountPath: /data}}\n  volumes:\n  - name: data\n    hostPath: {{path: {}, type: Directory}}\n",
        missing.display()
    );
    env.apply("strict.yaml", &yaml);
    let pod = env.wait_for(
        "strict",
        "CreateContainerConfigError",
        Duration::from_secs(30),
        |p| waiting(p, "app").0 == "CreateContainerConfigError",
    );
    let (_, message) = waiting(&pod, "app");
    assert_eq!(
        message,
        format!(
            "MountVolume.SetUp failed for volume \"data\" : hostPath type check failed: {} is not a directory",
            missing.display()
        )
    );
    assert!(!missing.exists(), "type Directory must not create the path");
    env.teardown();
    // The host directory is the user's: it outlives the pod (teardown removed the root).
}

const CONFIG: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app-config}\ndata:\n  color: blue\n  app.conf: |\n    mode=fast\n---\n";

#[test]
fn config_map_as_files_env_subpath_and_live_update() {
    let env = Env::new();
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: cfg}\nspec:\n  containers:\n  - name: app\n    image: busybox\n    command: [sh, -c, 'echo color=$COLOR; sleep 3600']\n    env:\n    - name: COLOR\n      valueFrom: {configMapKeyRef: {name: app-config, key: color}}\n    envFrom:\n    - configMapRef: {name: app-config}\n      prefix: CFG_\n    volumeMounts:\n    - {name: config, mountPath: /etc/config}\n    - {name: config, mountPath: /etc/app.conf, subPath: app.conf}\n    - {name: modes, mountPath: /etc/modes}\n  volumes:\n  - name: config\n    configMap: {name: app-config}\n  - name: modes\n    configMap:\n      name: app-config\n      defaultMode: 0400\n      items:\n      - {key: color, path: sub/the-color, mode: 0600}\n";
    let out = env.apply("cfg.yaml", &format!("{CONFIG}{pod}"));
    assert!(out.contains("configmap/app-config created"), "{out}");
    assert!(out.contains("pod/cfg created"), "{out}");
    env.wait_ready("cfg");

    assert_eq!(sh(&env, "cfg", "app", "cat /etc/config/color"), "blue");
    assert_eq!(
        sh(&env, "cfg", "app", "echo $COLOR $CFG_color"),
        "blue blue\n"
    );
    assert_eq!(sh(&env, "cfg", "app", "cat /etc/app.conf"), "mode=fast\n");
    // Kubernetes' layout: ..data -> ..<timestamp>, each key a symlink into ..data.
    assert_eq!(
        sh(&env, "cfg", "app", "readlink /etc/config/color"),
        "..data/color\n"
    );
    assert!(sh(&env, "cfg", "app", "readlink /etc/config/..data").starts_with(".."));
    assert_eq!(
        sh(&env, "cfg", "app", "cat /etc/modes/sub/the-color"),
        "blue"
    );
    assert_eq!(
        sh(&env, "cfg", "app", "stat -L -c %a /etc/modes/sub/the-color"),
        "600\n"
    );
    // API data is read-only in the container.
    assert!(!env
        .run(&[
            "exec",
            "cfg",
            "-c",
            "app",
            "--",
            "sh",
            "-c",
            "echo x > /etc/config/new"
        ])
        .status
        .success());
    let logs = env.ok(&["logs", "cfg", "-c", "app"]);
    assert!(logs.contains("color=blue"), "{logs}");

    let table = env.ok(&["get", "configmaps"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("app-config") && l.split_whitespace().nth(1) == Some("2")),
        "{table}"
    );
    assert!(env
        .ok(&["get", "cm", "app-config", "-o", "yaml"])
        .contains("color: blue"));

    // An update reaches the mounted files within seconds, through one ..data swap.
    let before = sh(&env, "cfg", "app", "readlink /etc/config/..data");
    let out = env.apply(
        "cfg2.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app-config}\ndata:\n  color: green\n  app.conf: |\n    mode=slow\n",
    );
    assert!(out.contains("configmap/app-config configured"), "{out}");
    eventually(
        &env,
        "cfg",
        "app",
        "cat /etc/config/color",
        Duration::from_secs(10),
        |o| o == "green",
    );
    assert_ne!(
        sh(&env, "cfg", "app", "readlink /etc/config/..data"),
        before
    );
    assert_eq!(
        sh(&env, "cfg", "app", "cat /etc/config/app.conf"),
        "mode=slow\n"
    );
    // A subPath mount and the environment keep what the container started with, as on Kubernetes.
    assert_eq!(sh(&env, "cfg", "app", "cat /etc/app.conf"), "mode=fast\n");
    assert_eq!(sh(&env, "cfg", "app", "echo $COLOR"), "blue\n");
    // Same content again: unchanged.
    let out = env.apply(
        "cfg2.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app-config}\ndata:\n  color: green\n  app.conf: |\n    mode=slow\n",
    );
    assert!(out.contains("configmap/app-config unchanged"), "{out}");
    // Deleting by file removes the ConfigMap; the running pod keeps its last files.
    let file = env.root.join("cfg2.yaml").display().to_string();
    let out = env.ok(&["delete", "-f", &file]);
    assert!(out.contains("configmap \"app-config\" deleted"), "{out}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(sh(&env, "cfg", "app", "cat /etc/config/color"), "green");
    env.teardown();
}

#[test]
fn secret_env_prefix_and_root_only_storage() {
    let env = Env::new();
    let yaml = "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\ntype: Opaque\nstringData:\n  username: admin\n  password: s3cr3t-pw\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: app}\nspec:\n  containers:\n  - name: app\n    image: busybox\n    command: [sleep, '3600']\n    env:\n    - name: DB_PASSWORD\n      valueFrom: {secretKeyRef: {name: db, key: password}}\n    - name: DSN\n      value: 'db://$(DB_PASSWORD)@host'\n    envFrom:\n    - secretRef: {name: db}\n      prefix: DB_\n    volumeMounts:\n    - {name: creds, mountPath: /etc/creds}\n  volumes:\n  - name: creds\n    secret:\n      secretName: db\n      items:\n      - {key: username, path: user}\n";
    env.apply("secret.yaml", yaml);
    env.wait_ready("app");
    assert_eq!(
        sh(&env, "app", "app", "echo $DB_PASSWORD $DB_username $DSN"),
        "s3cr3t-pw admin db://s3cr3t-pw@host\n"
    );
    assert_eq!(
        sh(&env, "app", "app", "cat /etc/creds/user; ls /etc/creds"),
        "adminuser\n"
    );

    let yaml_out = env.ok(&["get", "secret", "db", "-o", "yaml"]);
    assert!(yaml_out.contains("password: czNjcjN0LXB3"), "{yaml_out}");
    assert!(!yaml_out.contains("s3cr3t-pw"), "{yaml_out}");
    let described = env.ok(&["describe", "secret", "db"]);
    assert!(described.contains("password:  9 bytes"), "{described}");
    assert!(!described.contains("s3cr3t-pw"), "{described}");
    let table = env.ok(&["get", "secrets"]);
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == [
                    "db",
                    "Opaque",
                    "2",
                    l.split_whitespace().last().unwrap_or("")
                ]),
        "{table}"
    );
    let mode = |p: std::path::PathBuf| {
        std::fs::metadata(&p)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    assert_eq!(mode(env.root.join("lib/secrets")), 0o700);
    assert_eq!(mode(env.root.join("lib/secrets/default/db.json")), 0o600);

    assert!(env
        .ok(&["delete", "secret", "db"])
        .contains("secret \"db\" deleted"));
    let err = env.fails(&["get", "secret", "db"]);
    assert!(err.contains("secrets \"db\" not found"), "{err}");
    env.teardown();
}

#[test]
fn downward_api_files_and_env() {
    let env = Env::new();
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: info\n  labels: {app: web, tier: front}\n  annotations: {build: '42'}\nspec:\n  containers:\n  - name: app\n    image: busybox\n    command: [sleep, '3600']\n    resources:\n      limits: {memory: 64Mi, cpu: 500m}\n    env:\n    - name: POD_NAME\n      valueFrom: {fieldRef: {fieldPath: metadata.name}}\n    - name: POD_NAMESPACE\n      valueFrom: {fieldRef: {fieldPath: metadata.namespace}}\n    - name: POD_IP\n      valueFrom: {fieldRef: {fieldPath: status.podIP}}\n    - name: NODE\n      valueFrom: {fieldRef: {fieldPath: spec.nodeName}}\n    - name: APP\n      valueFrom: {fieldRef: {fieldPath: \"metadata.labels['app']\"}}\n    - name: MEM_LIMIT\n      valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}\n    - name: CPU_LIMIT\n      valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1m}}\n    volumeMounts:\n    - {name: podinfo, mountPath: /etc/podinfo}\n  volumes:\n  - name: podinfo\n    downwardAPI:\n      items:\n      - {path: name, fieldRef: {fieldPath: metadata.name}}\n      - {path: namespace, fieldRef: {fieldPath: metadata.namespace}}\n      - {path: labels, fieldRef: {fieldPath: metadata.labels}}\n      - {path: annotations, fieldRef: {fieldPath: metadata.annotations}}\n      - path: mem_limit\n        resourceFieldRef: {containerName: app, resource: limits.memory, divisor: 1Mi}\n";
    env.apply("info.yaml", yaml);
    let pod = env.wait_ready("info");
    let node = pod["spec"]["nodeName"].as_str().unwrap_or("").to_string();
    let ip = pod["status"]["podIP"].as_str().unwrap_or("").to_string();
    assert_eq!(
        sh(
            &env,
            "info",
            "app",
            "echo $POD_NAME/$POD_NAMESPACE/$APP/$MEM_LIMIT/$CPU_LIMIT/$NODE"
        ),
        format!("info/default/web/64/500/{node}\n")
    );
    // The pod IP is empty until networking assigns one; then it is the pod's.
    assert_eq!(
        sh(&env, "info", "app", "echo \"[$POD_IP]\""),
        format!("[{ip}]\n")
    );
    assert_eq!(
        sh(&env, "info", "app", "cat /etc/podinfo/name; echo; cat /etc/podinfo/namespace; echo; cat /etc/podinfo/labels; echo; cat /etc/podinfo/annotations; echo; cat /etc/podinfo/mem_limit"),
        "info\ndefault\napp=\"web\"\ntier=\"front\"\nbuild=\"42\"\n64"
    );
    env.teardown();
}

#[test]
fn pod_waits_for_missing_config_map_then_starts() {
    let env = Env::new();
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: late}\nspec:\n  containers:\n  - name: app\n    image: busybox\n    command: [sh, -c, 'echo level=$LEVEL file=$(cat /cfg/level); sleep 3600']\n    env:\n    - name: LEVEL\n      valueFrom: {configMapKeyRef: {name: late-config, key: level}}\n    volumeMounts:\n    - {name: cfg, mountPath: /cfg}\n  volumes:\n  - name: cfg\n    configMap: {name: late-config}\n";
    env.apply("late.yaml", pod);
    let p = env.wait_for(
        "late",
        "CreateContainerConfigError",
        Duration::from_secs(30),
        |p| waiting(p, "app").0 == "CreateContainerConfigError",
    );
    assert_eq!(waiting(&p, "app").1, "configmap \"late-config\" not found");
    let table = env.ok(&["get", "pods"]);
    assert!(table.contains("CreateContainerConfigError"), "{table}");

    // The ConfigMap exists but lacks the key: kubelet's exact message.
    env.apply(
        "cm1.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: late-config}\ndata: {other: x}\n",
    );
    env.wait_for(
        "late",
        "missing key message",
        Duration::from_secs(30),
        |p| waiting(p, "app").1 == "couldn't find key level in ConfigMap default/late-config",
    );
    // With the key, the pod starts at once (no back-off wait).
    let created = Instant::now();
    env.apply(
        "cm2.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: late-config}\ndata: {level: '7'}\n",
    );
    env.wait_ready("late");
    assert!(
        created.elapsed() < Duration::from_secs(8),
        "took {:?}",
        created.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logs = env.ok(&["logs", "late"]);
        if logs.contains("level=7 file=7") {
            break;
        }
        assert!(Instant::now() < deadline, "{logs}");
        std::thread::sleep(Duration::from_millis(100));
    }
    env.teardown();
}

/// Lines of /proc/mounts whose mount point is `dir`.
fn mounts_at(dir: &std::path::Path) -> Vec<String> {
    let dir = dir.display().to_string();
    std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some(dir.as_str()))
        .map(str::to_string)
        .collect()
}

#[test]
fn secret_and_projected_volumes_live_on_tmpfs() {
    let mut env = Env::new();
    let yaml = "apiVersion: v1\nkind: Secret\nmetadata: {name: token}\nstringData: {key: first, other: x}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain}\ndata: {setting: enabled}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: tok}\nspec:\n  containers:\n  - name: app\n    image: busybox\n    command: [sleep, '3600']\n    volumeMounts:\n    - {name: creds, mountPath: /etc/creds}\n    - {name: all, mountPath: /etc/all}\n    - {name: cfg, mountPath: /etc/cfg}\n  volumes:\n  - name: creds\n    secret: {secretName: token, defaultMode: 0400}\n  - name: all\n    projected:\n      sources:\n      - secret: {name: token, items: [{key: key, path: s/key}]}\n      - configMap: {name: plain}\n  - name: cfg\n    configMap: {name: plain}\n";
    env.apply("tok.yaml", yaml);
    let pod = env.wait_ready("tok");
    let uid = pod["metadata"]["uid"].as_str().expect("uid").to_string();
    let vols = env.root.join("lib/volumes").join(&uid);
    let secret_dir = vols.join("secret/creds");
    let projected_dir = vols.join("projected/all");
    // kubelet's layout: a tmpfs at the volume directory of secret and projected volumes.
    for dir in [&secret_dir, &projected_dir] {
        let m = mounts_at(dir);
        assert_eq!(m.len(), 1, "{}: {m:?}", dir.display());
        assert!(
            m[0].starts_with("tmpfs ") && m[0].contains(" tmpfs "),
            "{m:?}"
        );
        assert!(m[0].contains("nosuid") && m[0].contains("nodev"), "{m:?}");
    }
    // A configMap stays on disk, as on a kubelet.
    assert!(mounts_at(&vols.join("configmap/cfg")).is_empty());
    assert_eq!(
        sh(
            &env,
            "tok",
            "app",
            "cat /etc/creds/key /etc/all/s/key /etc/all/setting"
        ),
        "firstfirstenabled"
    );
    assert_eq!(
        sh(&env, "tok", "app", "stat -L -c %a /etc/creds/key"),
        "400\n"
    );

    // Live update through the ..data swap, inside the tmpfs.
    env.apply(
        "tok2.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: token}\nstringData: {key: second, other: x}\n",
    );
    for path in ["/etc/creds/key", "/etc/all/s/key"] {
        eventually(
            &env,
            "tok",
            "app",
            &format!("cat {path}"),
            Duration::from_secs(10),
            |o| o == "second",
        );
    }
    assert_eq!(mounts_at(&secret_dir).len(), 1);

    // A restarted daemon finds the tmpfs mounted and neither mounts again nor loses it.
    env.kill_daemon();
    env.start_daemon();
    env.apply(
        "tok3.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: token}\nstringData: {key: third, other: x}\n",
    );
    eventually(
        &env,
        "tok",
        "app",
        "cat /etc/creds/key",
        Duration::from_secs(10),
        |o| o == "third",
    );
    // A new container instance (the old one killed) binds the same tmpfs.
    let before = env
        .containers()
        .into_iter()
        .find(|c| c.name == "app")
        .and_then(|c| c.pid)
        .expect("app pid");
    let _ = std::process::Command::new("kill")
        .args(["-9", &before.to_string()])
        .status();
    env.wait_for("tok", "app restarted", Duration::from_secs(60), |p| {
        container_status(p, "app")["restartCount"].as_i64() == Some(1)
            && container_status(p, "app")["ready"].as_bool() == Some(true)
    });
    assert_eq!(sh(&env, "tok", "app", "cat /etc/creds/key"), "third");
    for dir in [&secret_dir, &projected_dir] {
        assert_eq!(mounts_at(dir).len(), 1, "{}", dir.display());
    }

    env.ok(&["delete", "pod", "tok"]);
    env.ok(&["wait", "--for=delete", "pod/tok", "--timeout=60s"]);
    let left = env.pod_mounts();
    assert!(left.is_empty(), "{left:?}");
    assert!(!vols.exists(), "{} left", vols.display());
    env.teardown();
}

#[test]
fn volumes_of_a_pod_without_record_are_unmounted_at_start() {
    let mut env = Env::new();
    let yaml = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {k: v}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: gone}\nspec:\n  containers:\n  - name: app\n    image: busybox\n    command: [sleep, '3600']\n    volumeMounts:\n    - {name: s, mountPath: /s}\n    - {name: m, mountPath: /m}\n    - {name: m, mountPath: /sub, subPath: a/b}\n    - {name: s, mountPath: /k, subPath: k}\n  volumes:\n  - name: s\n    secret: {secretName: s}\n  - name: m\n    emptyDir: {medium: Memory}\n";
    env.apply("gone.yaml", yaml);
    let pod = env.wait_ready("gone");
    let uid = pod["metadata"]["uid"].as_str().expect("uid").to_string();
    let vols = env.root.join("lib/volumes").join(&uid);
    assert_eq!(mounts_at(&vols.join("secret/s")).len(), 1);
    assert_eq!(mounts_at(&vols.join("empty-dir/m")).len(), 1);
    // subPaths: private bind mounts beside the volumes, a directory and a file.
    for index in [2, 3] {
        let volume = if index == 2 { "m" } else { "s" };
        let point = vols.join(format!("volume-subpaths/{volume}/app/{index}"));
        assert_eq!(mounts_at(&point).len(), 1, "{}", point.display());
    }
    for c in env.containers() {
        env.watched_pids.extend(c.pid);
    }
    // As if the daemon died deleting the pod, right after its record went.
    env.kill_daemon();
    std::fs::remove_file(env.root.join("lib/pods").join(format!("{uid}.json")))
        .expect("remove record");
    env.start_daemon();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !env.pod_mounts().is_empty() || vols.exists() {
        assert!(
            Instant::now() < deadline,
            "volumes of the gone pod left: {}",
            env.daemon_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(env.ok(&["get", "pods", "-o", "name"]).trim().is_empty());
    // Logs of pods without a record are not collected (the log root may be shared).
    let logs = env.root.join("log");
    for e in std::fs::read_dir(&logs).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().ends_with(&uid) {
            std::fs::remove_dir_all(e.path()).expect("remove log dir");
        }
    }
    env.teardown();
}
