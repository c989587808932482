//! The upstream kubelet (v1.26.1 of the shared CRI test kit, standalone: static pods from a
//! directory, no API server) runs a two-container pod on podhost's CRI socket: shared
//! localhost, PID namespace and emptyDir, logs in the kubelet's log directory, a killed
//! container restarted by the kubelet, a liveness probe (ExecSync) failing into a restart,
//! the pod's CPU and memory in the kubelet's summary API, the daemon restarted under the
//! running kubelet without the pod being recreated, and the pod stopped and its sandbox
//! removed when its manifest goes. A pod of the podhost CLI runs beside it throughout,
//! never seen (nor its image collected) by the kubelet. Issue 14's acceptance.
//!
//! One kubelet per machine (it binds 127.0.0.1:10250 and 10248): the test holds a host-wide
//! lock while its kubelet runs. The kit's `stop` removes the kubelet's iptables chains and
//! the bind mount of its root dir, also when the test fails (the guard's Drop).

mod common;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{alive, crictl, Env};
use serde_json::Value;

/// The static pod: `web` serves the emptyDir over localhost, `client` fetches from it;
/// `web`'s liveness probe needs the page it wrote.
fn static_pod(namespace: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: {namespace}
spec:
  shareProcessNamespace: true
  terminationGracePeriodSeconds: 2
  containers:
  - name: web
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'echo hello from web > /www/index.html; exec httpd -f -p 8080 -h /www']
    volumeMounts: [{{name: www, mountPath: /www}}]
    livenessProbe:
      exec: {{command: [test, -f, /www/index.html]}}
      periodSeconds: 1
      failureThreshold: 1
  - name: client
    image: busybox
    imagePullPolicy: Never
    command: [sh, -c, 'while true; do wget -qO- http://127.0.0.1:8080/; sleep 1; done']
    volumeMounts: [{{name: www, mountPath: /www}}]
  volumes:
  - name: www
    emptyDir: {{}}
"
    )
}

/// The CRI test kit (`shared/cri-testkit` beside the repository or an ancestor).
fn kit() -> Option<PathBuf> {
    let kit = crictl()?.parent()?.parent()?.to_path_buf();
    kit.join("kubelet-standalone.sh").is_file().then_some(kit)
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The kit's kubelet on one daemon's CRI socket, with its root dir under the test's root;
/// holds the host-wide lock while it lives.
struct Kubelet {
    kit: PathBuf,
    /// `KUBELET_ROOT`: config, log, PID file, pods/ (emptyDirs).
    root: PathBuf,
    manifests: PathBuf,
    socket: PathBuf,
    /// The static pods' namespace, unique to this test.
    namespace: String,
    stopped: bool,
    _lock: File,
}

impl Kubelet {
    fn start(env: &Env, kit: PathBuf) -> Kubelet {
        let lock = File::create("/run/lock/podhost-kubelet-e2e.lock").expect("lock file");
        // SAFETY: flock(2) on a descriptor we own; blocks until the other test is done.
        let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
        let kubelet = Kubelet {
            kit,
            root: env.root.join("kubelet"),
            manifests: env.root.join("manifests"),
            socket: env.cri_socket(),
            namespace: format!("podhost-e2e-{}", std::process::id()),
            stopped: false,
            _lock: lock,
        };
        let out = kubelet
            .script()
            .arg("start")
            .arg(&kubelet.socket)
            .arg(&kubelet.manifests)
            .output()
            .expect("kubelet-standalone.sh start");
        assert!(
            out.status.success(),
            "kubelet did not start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        kubelet
    }

    fn script(&self) -> Command {
        let mut c = Command::new(self.kit.join("kubelet-standalone.sh"));
        c.env("KUBELET_ROOT", &self.root).stdin(Stdio::null());
        c
    }

    /// Write a manifest as the kit says: a dotfile first (ignored), then renamed.
    fn put(&self, name: &str, yaml: &str) {
        let tmp = self.manifests.join(format!(".{name}"));
        std::fs::write(&tmp, yaml).expect("write manifest");
        std::fs::rename(&tmp, self.manifests.join(name)).expect("rename manifest");
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.root.join("kubelet.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Stop the kubelet (the kit also drops its iptables chains and root bind mount).
    fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let out = self.script().arg("stop").output().expect("kit stop");
        assert!(
            out.status.success() || std::thread::panicking(),
            "kubelet stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// What of the kubelet could outlive it: its chains, its root's mount, its pods'
    /// cgroups, logs and symlinks.
    fn leaks(&self, pod_uid: &str) -> Vec<String> {
        let mut leaks = Vec::new();
        for table in ["filter", "nat", "mangle"] {
            let save = Command::new("iptables-save")
                .args(["-t", table])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            leaks.extend(
                save.lines()
                    .filter(|l| l.contains("KUBE-"))
                    .map(|l| format!("iptables ({table}): {l}")),
            );
        }
        let root = self.root.display().to_string();
        leaks.extend(
            std::fs::read_to_string("/proc/mounts")
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains(&root))
                .map(|l| format!("mount left: {l}")),
        );
        leaks.extend(
            pod_cgroups(pod_uid)
                .iter()
                .map(|d| format!("pod cgroup left: {}", d.display())),
        );
        leaks.extend(
            self.log_files()
                .iter()
                .map(|p| format!("log left: {}", p.display())),
        );
        leaks
    }

    /// `/var/log/pods/<ns>_*` and `/var/log/containers/*_<ns>_*` of this test's pods.
    fn log_files(&self) -> Vec<PathBuf> {
        let pods = format!("{}_", self.namespace);
        let containers = format!("_{}_", self.namespace);
        let mut found = Vec::new();
        for (dir, pattern) in [
            ("/var/log/pods", &pods),
            ("/var/log/containers", &containers),
        ] {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if (dir.ends_with("pods") && name.starts_with(pattern.as_str()))
                    || (dir.ends_with("containers") && name.contains(pattern.as_str()))
                {
                    found.push(e.path());
                }
            }
        }
        found
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.stop();
            return;
        }
        // A failed test: the kubelet first (it would recreate what is removed), then its
        // sandboxes (the daemon still runs: the Env is dropped after this guard), then
        // what the kubelet would have cleaned up after them.
        let _ = std::fs::remove_dir_all(&self.manifests);
        self.stop();
        let endpoint = format!("unix://{}", self.socket.display());
        let uids: Vec<String> = crictl()
            .and_then(|c| {
                Command::new(c)
                    .args(["--runtime-endpoint", &endpoint, "pods", "-o", "json"])
                    .output()
                    .ok()
            })
            .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok())
            .and_then(|v| v["items"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p["metadata"]["uid"].as_str().map(str::to_string))
            .collect();
        if let Some(c) = crictl() {
            let _ = Command::new(c)
                .args(["--runtime-endpoint", &endpoint, "rmp", "--all", "--force"])
                .output();
        }
        for uid in uids {
            for dir in pod_cgroups(&uid) {
                let _ = std::fs::remove_dir(dir);
            }
        }
        for p in self.log_files() {
            let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
        }
    }
}

/// The kubelet's cgroup of pod `uid` in every hierarchy (`kubepods/[qos/]pod<uid>`).
fn pod_cgroups(uid: &str) -> Vec<PathBuf> {
    let name = format!("pod{uid}");
    let mut roots: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("kubepods"))
        .collect();
    roots.push(PathBuf::from("/sys/fs/cgroup/kubepods"));
    let mut found = Vec::new();
    for root in roots {
        for qos in ["", "burstable", "besteffort"] {
            let d = root.join(qos).join(&name);
            if d.is_dir() {
                found.push(d);
            }
        }
    }
    found
}

/// The test's CRI view: containers and sandboxes of the static pod's namespace.
struct View {
    namespace: String,
}

impl View {
    fn sandboxes(&self, env: &Env) -> Vec<Value> {
        let v = json(&env.crictl_ok(&["pods", "--namespace", &self.namespace, "-o", "json"]));
        v["items"].as_array().cloned().unwrap_or_default()
    }

    /// Every container of the pod, exited ones too.
    fn containers(&self, env: &Env) -> Vec<Value> {
        let v = json(&env.crictl_ok(&["ps", "-a", "-o", "json"]));
        v["containers"].as_array().cloned().unwrap_or_default()
    }

    /// The running container `name`, if any.
    fn running(&self, env: &Env, name: &str) -> Option<Value> {
        self.containers(env)
            .into_iter()
            .find(|c| c["metadata"]["name"] == name && c["state"] == "CONTAINER_RUNNING")
    }

    fn attempt(c: &Value) -> u64 {
        c["metadata"]["attempt"].as_u64().unwrap_or(0)
    }

    /// Wait until the running `name` is at `attempt`; returns its id.
    fn wait_running(
        &self,
        env: &Env,
        name: &str,
        attempt: u64,
        kubelet: &Kubelet,
        timeout: u64,
    ) -> String {
        wait(
            &format!("{name} running at attempt {attempt}"),
            timeout,
            kubelet,
            || {
                self.running(env, name)
                    .filter(|c| Self::attempt(c) == attempt)
                    .and_then(|c| c["id"].as_str().map(str::to_string))
            },
        )
    }

    fn pid(&self, env: &Env, id: &str) -> u32 {
        let c = json(&env.crictl_ok(&["inspect", id]));
        c["info"]["pid"].as_u64().expect("pid") as u32
    }

    fn exec(&self, env: &Env, id: &str, cmd: &[&str]) -> String {
        let mut args = vec!["exec", "-s", id];
        args.extend_from_slice(cmd);
        env.crictl_ok(&args)
    }
}

/// Poll `probe` every 200 ms until it gives a value, or fail after `secs` with the
/// kubelet's log.
fn wait<T>(what: &str, secs: u64, kubelet: &Kubelet, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}; kubelet log tail:\n{}",
            kubelet.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Pod `uid` in the kubelet's summary API (anonymous, AlwaysAllow: the kit's config).
fn pod_summary(uid: &str) -> Option<Value> {
    let out = Command::new("curl")
        .args(["-skf", "--max-time", "10"])
        .arg("https://127.0.0.1:10250/stats/summary")
        .output()
        .ok()?;
    let summary: Value = serde_json::from_slice(&out.stdout).ok()?;
    summary["pods"]
        .as_array()?
        .iter()
        .find(|p| p["podRef"]["uid"] == uid)
        .cloned()
}

/// A container's cumulative CPU time in a pod's summary.
fn cpu_of(pod: &Value, name: &str) -> Option<u64> {
    pod["containers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)?["cpu"]["usageCoreNanoSeconds"]
        .as_u64()
}

fn positive(v: &Value) -> bool {
    v.as_u64().is_some_and(|n| n > 0)
}

#[test]
fn the_upstream_kubelet_runs_a_static_pod_beside_a_cli_pod() {
    let Some(kit) = kit() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "the CRI test kit's kubelet is missing in CI"
        );
        eprintln!("skipped: no shared/cri-testkit with kubelet-standalone.sh");
        return;
    };
    // Declared before the kubelet: on a panic the kubelet goes first, then the daemon.
    let mut env = Env::new();
    // The CLI pod first: the kubelet must neither remove it nor collect its image (here
    // the disk is past the kubelet's eviction thresholds, so it tries to free space by
    // removing every image it thinks unused: the busybox of both pods is pinned).
    let cli_pod = env.start_cli_pod();

    let mut kubelet = Kubelet::start(&env, kit);
    let ns = kubelet.namespace.clone();
    let view = View {
        namespace: ns.clone(),
    };
    let images = json(&env.crictl_ok(&["images", "-o", "json"]));
    assert_eq!(images["images"][0]["pinned"], true, "{images}");

    // The manifest → both containers running, in one sandbox named <name>-<node>.
    kubelet.put("web.yaml", &static_pod(&ns));
    let web = view.wait_running(&env, "web", 0, &kubelet, 90);
    let client = view.wait_running(&env, "client", 0, &kubelet, 30);
    let sandboxes = view.sandboxes(&env);
    assert_eq!(sandboxes.len(), 1, "{sandboxes:?}");
    let sandbox = &sandboxes[0];
    let sandbox_id = sandbox["id"].as_str().expect("sandbox id").to_string();
    let uid = sandbox["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_string();
    assert!(
        sandbox["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("web-")),
        "{sandbox}"
    );
    let status = json(&env.crictl_ok(&["inspectp", &sandbox_id]));
    let pause = status["info"]["pid"].as_u64().expect("pause pid") as u32;
    env.watched_pids.push(pause);
    // The kubelet's pod cgroup (cgroupfs driver) holds the sandbox.
    assert!(
        status["info"]["cgroupParent"]
            .as_str()
            .is_some_and(|p| p.starts_with("kubepods/") && p.ends_with(&format!("pod{uid}"))),
        "{status}"
    );
    assert!(!pod_cgroups(&uid).is_empty(), "no kubepods cgroup of {uid}");
    let web_pid = view.pid(&env, &web);
    let client_pid = view.pid(&env, &client);
    env.watched_pids.extend([web_pid, client_pid]);

    // The kubelet sees only its own sandbox; the CLI only its own pod (CRI's pods are
    // hidden from `podhost get pods`), which runs on untouched.
    assert_eq!(env.crictl_ok(&["pods", "-q"]).lines().count(), 1);
    let cli_pods = env.ok(&["get", "pods", "-A"]);
    assert!(
        cli_pods.contains("cli-pod") && !cli_pods.contains(&ns),
        "{cli_pods}"
    );

    // Shared localhost: the client's log (in the kubelet's log directory) has the page.
    let log_dir = PathBuf::from(format!(
        "/var/log/pods/{ns}_{}_{uid}",
        sandbox["metadata"]["name"].as_str().unwrap_or_default()
    ));
    wait("the page in the client's log", 30, &kubelet, || {
        std::fs::read_to_string(log_dir.join("client/0.log"))
            .ok()
            .filter(|l| l.contains(" stdout F hello from web"))
    });
    assert!(env.crictl_ok(&["logs", &client]).contains("hello from web"));
    // The emptyDir: the kubelet's directory, mounted in both.
    assert_eq!(
        view.exec(&env, &client, &["cat", "/www/index.html"])
            .trim_end(),
        "hello from web"
    );
    let empty_dir = kubelet
        .root
        .join(format!("pods/{uid}/volumes/kubernetes.io~empty-dir/www"));
    assert!(empty_dir.join("index.html").is_file());
    // shareProcessNamespace: podhost's pause is PID 1 and the client sees httpd.
    let ps = view.exec(&env, &client, &["ps", "-o", "pid,args"]);
    assert!(ps.contains("httpd -f -p 8080"), "{ps}");
    let init = view.exec(&env, &client, &["cat", "/proc/1/cmdline"]);
    assert!(init.contains("pause"), "{init:?}");

    // The summary API: the pod's CPU and memory, and both containers'.
    wait("the pod's stats in /stats/summary", 90, &kubelet, || {
        let pod = pod_summary(&uid)?;
        let containers = pod["containers"].as_array()?;
        let each = ["web", "client"].iter().all(|n| {
            containers.iter().any(|c| {
                c["name"] == *n
                    && positive(&c["cpu"]["usageCoreNanoSeconds"])
                    && positive(&c["memory"]["workingSetBytes"])
            })
        });
        (each
            && positive(&pod["cpu"]["usageCoreNanoSeconds"])
            && positive(&pod["memory"]["workingSetBytes"]))
        .then_some(())
    });

    // A killed container: the kubelet starts it again, attempt 1.
    // SAFETY: kill(2) of a container process of this test's pod.
    unsafe { libc::kill(client_pid as i32, libc::SIGKILL) };
    let client = view.wait_running(&env, "client", 1, &kubelet, 60);
    let restarted = json(&env.crictl_ok(&["inspect", &client]));
    assert_eq!(
        restarted["status"]["annotations"]["io.kubernetes.container.restartCount"],
        "1"
    );
    assert_eq!(
        restarted["status"]["image"]["image"], "docker.io/library/busybox:latest",
        "{restarted}"
    );
    env.watched_pids.push(view.pid(&env, &client));

    // The liveness probe (ExecSync) fails: web is restarted and writes its page again.
    view.exec(&env, &web, &["rm", "/www/index.html"]);
    let web = view.wait_running(&env, "web", 1, &kubelet, 60);
    env.watched_pids.push(view.pid(&env, &web));
    assert!(!alive(web_pid));
    wait("web's page again", 30, &kubelet, || {
        empty_dir.join("index.html").is_file().then_some(())
    });
    let log = std::fs::read_to_string(kubelet.root.join("kubelet.log")).unwrap_or_default();
    assert!(
        log.contains("failed liveness probe"),
        "{}",
        kubelet.log_tail()
    );

    // The daemon restarts under the running kubelet: the pod goes on in the same sandbox
    // and containers. The kubelet reconnects (its summary, which asks CRI for container
    // stats at each request, shows the client's CPU time growing again) and recreates
    // nothing.
    let before = pod_summary(&uid)
        .and_then(|p| cpu_of(&p, "client"))
        .expect("client's CPU time");
    env.stop_daemon();
    std::thread::sleep(Duration::from_secs(2));
    env.start_daemon();
    wait("fresh CRI stats after the restart", 60, &kubelet, || {
        pod_summary(&uid)
            .and_then(|p| cpu_of(&p, "client"))
            .filter(|&t| t > before)
    });
    assert_eq!(
        view.running(&env, "client").expect("client")["id"],
        client.as_str()
    );
    let sandboxes = view.sandboxes(&env);
    assert_eq!(sandboxes.len(), 1, "{sandboxes:?}");
    assert_eq!(sandboxes[0]["id"], sandbox_id.as_str());
    assert_eq!(sandboxes[0]["state"], "SANDBOX_READY");
    assert!(alive(pause));
    let running_web = view.running(&env, "web").expect("web still running");
    assert_eq!(running_web["id"], web.as_str());

    // The manifest goes: the kubelet stops the pod and removes its sandbox, cgroup and
    // logs (its housekeeping, within about a minute).
    std::fs::remove_file(kubelet.manifests.join("web.yaml")).expect("remove manifest");
    wait("the sandbox removed", 120, &kubelet, || {
        view.sandboxes(&env).is_empty().then_some(())
    });
    assert!(view.containers(&env).is_empty());
    wait("the pod's cgroup and logs removed", 120, &kubelet, || {
        (pod_cgroups(&uid).is_empty() && kubelet.log_files().is_empty()).then_some(())
    });
    assert!(!alive(pause));

    // The CLI pod ran through all of it, untouched.
    cli_pod.assert_untouched(&env);

    // The kubelet stopped: none of its chains, mounts, cgroups or logs remain.
    kubelet.stop();
    let leaks = kubelet.leaks(&uid);
    assert!(leaks.is_empty(), "kubelet leftovers:\n{}", leaks.join("\n"));
    drop(kubelet);
    env.teardown();
}
