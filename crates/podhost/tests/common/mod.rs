//! End-to-end harness: a real daemon per test under its own root and cgroup parent,
//! driven through the `podhost` binary the way a user does, with a leak check at the end.

#![allow(dead_code)]

pub mod registry;
pub mod terminal;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The `podhost` binary under test (its helpers sit next to it).
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_podhost"))
}

fn require_helpers() {
    let dir = bin().parent().map(Path::to_path_buf).unwrap_or_default();
    for b in ["podhost-shim", "podhost-runc", "pause"] {
        assert!(
            dir.join(b).exists(),
            "{} missing: run `cargo build --workspace --bins` first (./podhost.sh test does)",
            dir.join(b).display()
        );
    }
}

/// A time limit of the tests stretched by `PODHOST_E2E_TIME_SCALE` (a factor ≥ 1, default
/// 1) for slow machines: the cgroup-v2 guest runs under software emulation.
pub fn scaled(limit: Duration) -> Duration {
    static SCALE: OnceLock<f64> = OnceLock::new();
    let scale = *SCALE.get_or_init(|| {
        std::env::var("PODHOST_E2E_TIME_SCALE")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|f| f.is_finite())
            .map_or(1.0, |f| f.max(1.0))
    });
    limit.mul_f64(scale)
}

/// `--timeout=Ns` for `podhost wait`, [`scaled`].
pub fn timeout_flag(secs: u64) -> String {
    format!("--timeout={}s", scaled(Duration::from_secs(secs)).as_secs())
}

/// Where this test binary keeps its busybox archive; removed when the process exits.
fn image_dir() -> PathBuf {
    std::env::temp_dir().join(format!("podhost-e2e-image-{}", std::process::id()))
}

extern "C" fn remove_image_dir() {
    let _ = std::fs::remove_dir_all(image_dir());
}

/// The busybox image archive, built once per test binary from Debian's busybox-static
/// (or the one `PODHOST_E2E_BUSYBOX_TAR` names, made by the same script beforehand).
pub fn busybox_tar() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        if let Some(tar) = std::env::var_os("PODHOST_E2E_BUSYBOX_TAR") {
            return PathBuf::from(tar);
        }
        let dir = image_dir();
        std::fs::create_dir_all(&dir).expect("image dir");
        // The test harness has no teardown of its own: the archive goes when the
        // process exits (the harness ends with exit(), which runs atexit handlers).
        // SAFETY: registers a plain function that only removes a directory.
        unsafe { libc::atexit(remove_image_dir) };
        let tar = dir.join("busybox.tar");
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make-busybox-image.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(&tar)
            .output()
            .expect("run make-busybox-image.sh");
        assert!(
            out.status.success(),
            "make-busybox-image.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tar
    })
}

/// One test's daemon and everything it owns.
pub struct Env {
    /// State, run and log dirs live under it.
    pub root: PathBuf,
    /// Unique cgroup parent of this test's pods.
    pub cgroup_parent: String,
    /// This daemon's CNI bridge (`ph<hex>`); the default network is named after it.
    pub bridge: String,
    /// This daemon's pod CIDR: a /24 in 10.128–227.x, clear of every default.
    pub cidr: String,
    daemon: Option<Child>,
    /// Pids seen during the test that must be gone at the end (pause, containers, shims).
    pub watched_pids: Vec<u32>,
    /// Extra environment of the daemon (e.g. a short CrashLoopBackOff).
    pub daemon_env: Vec<(String, String)>,
    /// The `podhost` the daemon runs; it finds its helpers next to itself.
    pub daemon_bin: PathBuf,
}

impl Env {
    /// Start a daemon with its own root and load the busybox image.
    pub fn new() -> Env {
        Env::with_daemon_env(&[])
    }

    /// Like [`Env::new`], with extra environment for the daemon (`PODHOST_BACKOFF_*` …).
    pub fn with_daemon_env(vars: &[(&str, &str)]) -> Env {
        require_helpers();
        Env::start(vars, bin())
    }

    /// Like [`Env::new`], with the daemon (and so its helpers) run from `dir`.
    pub fn with_bin_dir(dir: &Path) -> Env {
        Env::start(&[], dir.join("podhost"))
    }

    fn start(vars: &[(&str, &str)], daemon_bin: PathBuf) -> Env {
        let tag: String = format!("{}-{}", std::process::id(), rand_suffix());
        let root = PathBuf::from(format!("/tmp/podhost-e2e-{tag}"));
        std::fs::create_dir_all(&root).expect("root");
        let net: [u8; 2] = rand::random();
        let mut env = Env {
            root,
            cgroup_parent: format!("podhost-e2e-{tag}"),
            bridge: format!("ph{}", rand_suffix()),
            cidr: format!("10.{}.{}.0/24", 128 + net[0] % 100, net[1]),
            daemon: None,
            watched_pids: Vec::new(),
            daemon_env: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            daemon_bin,
        };
        env.start_daemon();
        let out = env.ok(&["image", "load", "-i", busybox_tar().to_str().expect("utf8")]);
        assert!(out.contains("busybox"), "image load: {out}");
        env
    }

    /// (Re)start the daemon and wait until it answers.
    pub fn start_daemon(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("daemon.log"))
            .expect("daemon log");
        let child = Command::new(&self.daemon_bin)
            .arg("serve")
            .env("PODHOST_ROOT", &self.root)
            .env("PODHOST_CGROUP_PARENT", &self.cgroup_parent)
            .envs(self.daemon_env.iter().map(|(k, v)| (k, v)))
            .env("PODHOST_CNI_BRIDGE", &self.bridge)
            .env("PODHOST_CLUSTER_CIDR", &self.cidr)
            // The disk is shared with other work: no image GC under a test.
            .env("PODHOST_IMAGE_GC_HIGH_THRESHOLD", "100")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn podhost serve");
        self.daemon = Some(child);
        // A ceiling, not a benchmark: on a machine loaded by parallel builds, opening the
        // state (fs work only) once took over 20 s.
        let deadline = Instant::now() + scaled(Duration::from_secs(60));
        while Instant::now() < deadline {
            if self.run(&["get", "pods"]).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "daemon did not answer within {:?}; log:\n{}",
            scaled(Duration::from_secs(60)),
            self.daemon_log()
        );
    }

    /// SIGKILL the daemon (pods must survive).
    pub fn kill_daemon(&mut self) -> u32 {
        let mut child = self.daemon.take().expect("daemon running");
        let pid = child.id();
        child.kill().expect("kill daemon");
        child.wait().expect("wait daemon");
        pid
    }

    /// Stop the daemon as a service manager does (SIGTERM) and wait for it to exit;
    /// returns its pid. Fails if it is still running after 15 s.
    pub fn stop_daemon(&mut self) -> u32 {
        let mut child = self.daemon.take().expect("daemon running");
        let pid = child.id();
        // SAFETY: kill(2) of our own child.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        let deadline = Instant::now() + scaled(Duration::from_secs(15));
        while child.try_wait().expect("try_wait daemon").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the daemon did not stop within {:?} of SIGTERM",
                    scaled(Duration::from_secs(15))
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        pid
    }

    /// The daemon's log so far.
    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.root.join("daemon.log")).unwrap_or_default()
    }

    /// Run `podhost ARGS` against this daemon.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_in(Path::new("."), args)
    }

    /// Run `podhost ARGS` in directory `cwd` (relative file names, as a user types them).
    pub fn run_in(&self, cwd: &Path, args: &[&str]) -> Output {
        Command::new(bin())
            .current_dir(cwd)
            .args(args)
            .env("PODHOST_ROOT", &self.root)
            .env("PODHOST_CGROUP_PARENT", &self.cgroup_parent)
            .stdin(Stdio::null())
            .output()
            .expect("run podhost")
    }

    /// Run and require success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "podhost {args:?} failed ({}):\nstdout: {}\nstderr: {}\ndaemon log tail:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail(&self.daemon_log(), 20)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run and require failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "podhost {args:?} should fail but printed:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Write a manifest into the test root and return its path.
    pub fn manifest(&self, name: &str, yaml: &str) -> String {
        let p = self.root.join(name);
        std::fs::write(&p, yaml).expect("write manifest");
        p.display().to_string()
    }

    /// Apply a manifest given inline.
    pub fn apply(&self, name: &str, yaml: &str) -> String {
        let p = self.manifest(name, yaml);
        self.ok(&["apply", "-f", &p])
    }

    /// The pod as JSON.
    pub fn pod(&self, name: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["get", "pod", name, "-o", "json"])).expect("pod json")
    }

    /// Wait until `check(pod)` holds (within `timeout`, [`scaled`]).
    pub fn wait_for(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + scaled(timeout);
        loop {
            let out = self.run(&["get", "pod", name, "-o", "json"]);
            if out.status.success() {
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
                if check(&v) {
                    return v;
                }
                if Instant::now() > deadline {
                    panic!("pod {name}: timed out waiting for {what}; last state:\n{}\ndaemon log tail:\n{}", serde_json::to_string_pretty(&v).unwrap_or_default(), tail(&self.daemon_log(), 30));
                }
            } else if Instant::now() > deadline {
                panic!(
                    "pod {name}: timed out waiting for {what}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait for the Ready condition.
    pub fn wait_ready(&self, name: &str) -> serde_json::Value {
        self.wait_for(name, "Ready", Duration::from_secs(60), |p| {
            condition(p, "Ready")
        })
    }

    /// `ps -a` rows as (name, pod, state, pid).
    pub fn containers(&self) -> Vec<ContainerRow> {
        let out = self.ok(&["ps", "-a"]);
        out.lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                // CONTAINER IMAGE... CREATED is "Ns ago"; parse from the right.
                let n = f.len();
                if n < 9 {
                    return None;
                }
                Some(ContainerRow {
                    id: f[0].to_string(),
                    pid: f[n - 1].parse().ok(),
                    pod: f[n - 2].to_string(),
                    attempt: f[n - 4].parse().unwrap_or(0),
                    name: f[n - 5].to_string(),
                    state: f[n - 6].to_string(),
                })
            })
            .collect()
    }

    /// Host pid of a running container (`POD` = the pause) of a pod.
    pub fn pid_of(&mut self, pod: &str, name: &str) -> u32 {
        let key = if pod.contains('/') {
            pod.to_string()
        } else {
            format!("default/{pod}")
        };
        let pid = self
            .containers()
            .into_iter()
            .find(|c| c.pod == key && c.name == name && c.state == "Running")
            .and_then(|c| c.pid)
            .unwrap_or_else(|| panic!("no running {name} in {pod}: {:?}", self.containers()));
        self.watched_pids.push(pid);
        pid
    }

    /// Delete every pod, stop the daemon, and assert nothing of the test remains.
    pub fn teardown(mut self) {
        self.delete_all();
        self.wait_startup_cleanup();
        self.kill_daemon();
        let leaks = self.leaks();
        // Before the verdict: a failed check must not leave the mount on the host (the
        // leaks are listed, and the rest of the root stays for a look).
        self.unmount_run_dir();
        assert!(
            leaks.is_empty(),
            "leaks after teardown:\n{}\ndaemon log tail:\n{}",
            leaks.join("\n"),
            tail(&self.daemon_log(), 30)
        );
        let _ = std::fs::remove_dir_all(&self.root);
    }

    /// The run dir's tmpfs (the daemon mounts one where the run dir is on a disk, as under
    /// /tmp here) outlives the daemon, like /run outlives a service: the test removes it.
    fn unmount_run_dir(&self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.root.join("run"))
            .stderr(Stdio::null())
            .status();
    }

    /// The daemon's start-time cleanup runs behind the API: it must be over before
    /// the daemon is killed and leaks are looked for, or its half-done work would show.
    fn wait_startup_cleanup(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let log = self.daemon_log();
            let start = log.rfind("podhost daemon listening").unwrap_or(0);
            if log[start..].contains("start-time cleanup done") || self.daemon.is_none() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn delete_all(&mut self) {
        // Sandboxes a test made through CRI are not the CLI's to delete.
        if let Some(crictl) = crictl() {
            let _ = self
                .crictl_command(&crictl)
                .args(["rmp", "--all", "--force"])
                .output();
        }
        let out = self.run(&["get", "pods", "-o", "name"]);
        let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        for n in names {
            let _ = self.run(&["delete", &n, "--grace-period", "1"]);
        }
    }

    /// Lines of /proc/mounts below this test's root, but for the run dir's own tmpfs
    /// (which outlives the daemon, as /run does).
    pub fn pod_mounts(&self) -> Vec<String> {
        let root = self.root.display().to_string();
        let run_tmpfs = format!("tmpfs {} tmpfs ", self.root.join("run").display());
        std::fs::read_to_string("/proc/mounts")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&root) && !l.starts_with(&run_tmpfs))
            .map(str::to_string)
            .collect()
    }

    /// What is left of this test: processes, mounts, netns pins, cgroups and state.
    pub fn leaks(&self) -> Vec<String> {
        let root = self.root.display().to_string();
        let mut leaks = Vec::new();
        for pid in &self.watched_pids {
            if alive(*pid) {
                leaks.push(format!("process {pid} still alive"));
            }
        }
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmd).contains(&root) && alive(pid) {
                leaks.push(format!(
                    "process {pid} ({}) still alive",
                    String::from_utf8_lossy(&cmd).replace('\0', " ")
                ));
            }
        }
        for m in self.pod_mounts() {
            leaks.push(format!("mount left: {m}"));
        }
        leaks.extend(self.network_leaks());
        for dir in [
            "run/netns",
            "run/containers",
            "lib/networks",
            "lib/containers",
            "lib/sandboxes",
            "lib/pods",
            "lib/volumes",
            "log",
            "run/runc",
            "run/s",
        ] {
            let p = self.root.join(dir);
            for e in std::fs::read_dir(&p).into_iter().flatten().flatten() {
                leaks.push(format!(
                    "left in {}: {}",
                    p.display(),
                    e.file_name().to_string_lossy()
                ));
            }
        }
        for hierarchy in cgroup_hierarchies() {
            let dir = hierarchy.join(&self.cgroup_parent);
            if dir.is_dir() {
                for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    if e.path().is_dir() {
                        leaks.push(format!("cgroup left: {}", cgroup_tree(&e.path())));
                    }
                }
                let _ = std::fs::remove_dir(&dir);
            }
        }
        leaks
    }
}

impl Env {
    /// The daemon's CRI socket (`ROOT/run/cri.sock`).
    pub fn cri_socket(&self) -> PathBuf {
        self.root.join("run/cri.sock")
    }

    /// `crictl` with this daemon's endpoints, stdin /dev/null (the caller may replace it).
    pub fn crictl_command(&self, crictl: &Path) -> Command {
        let endpoint = format!("unix://{}", self.cri_socket().display());
        let mut c = Command::new(crictl);
        c.args([
            "--runtime-endpoint",
            &endpoint,
            "--image-endpoint",
            &endpoint,
        ])
        .args(["--timeout", "30s"])
        .stdin(Stdio::null());
        c
    }

    /// Run the test kit's `crictl ARGS` against this daemon's CRI socket.
    pub fn crictl(&self, args: &[&str]) -> Output {
        let crictl = crictl().expect("crictl of shared/cri-testkit");
        self.crictl_command(&crictl)
            .args(args)
            .output()
            .expect("run crictl")
    }

    /// `crictl ARGS`, required to succeed; its stdout.
    pub fn crictl_ok(&self, args: &[&str]) -> String {
        let out = self.crictl(args);
        assert!(
            out.status.success(),
            "crictl {args:?} failed: {}\ndaemon log tail:\n{}",
            String::from_utf8_lossy(&out.stderr),
            tail(&self.daemon_log(), 20)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// crictl of the shared CRI test kit (`shared/cri-testkit/bin/crictl` beside the
/// repository or an ancestor of it, or `$CRICTL`); `None` without it, except in CI where
/// it must be there.
pub fn crictl() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CRICTL") {
        return Some(PathBuf::from(p));
    }
    let found = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join("shared/cri-testkit/bin/crictl"))
        .find(|p| p.is_file());
    assert!(
        found.is_some() || std::env::var_os("CI").is_none(),
        "the CRI test kit's crictl is missing in CI"
    );
    found
}

impl Env {
    /// This test's cgroup parent in the hierarchy of `controller` (v1), or in the one tree
    /// of cgroup v2.
    pub fn cgroup_parent_dir(&self, controller: &str) -> PathBuf {
        let root = Path::new("/sys/fs/cgroup");
        if cgroup_v2() {
            root.join(&self.cgroup_parent)
        } else {
            root.join(controller).join(&self.cgroup_parent)
        }
    }

    /// Veths on this test's bridge, IPs held in its IPAM store, iptables rules naming
    /// its network (ipMasq and portmap tag theirs with the network name).
    pub fn network_leaks(&self) -> Vec<String> {
        let mut leaks = Vec::new();
        let out = Command::new("ip")
            .args(["-o", "link", "show", "master", &self.bridge])
            .output()
            .expect("ip link");
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            leaks.push(format!("port left on bridge {}: {l}", self.bridge));
        }
        let ipam = self.root.join("lib/cni/networks").join(&self.bridge);
        for e in std::fs::read_dir(&ipam).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name != "lock" && !name.starts_with("last_reserved_ip") {
                leaks.push(format!("IP still allocated in {}: {name}", ipam.display()));
            }
        }
        let tag = format!("name: \\\"{}\\\"", self.bridge);
        let save = Command::new("iptables-save")
            .args(["-t", "nat"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for l in save.lines().filter(|l| l.contains(&tag)) {
            leaks.push(format!("iptables rule left: {l}"));
        }
        leaks
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // A failed test (no teardown) still deletes its pods, so their CNI DEL runs and
        // no veth, IP or iptables rule outlives it, then stops its daemon.
        let deleted = self.daemon.is_some() && std::thread::panicking();
        if deleted {
            self.delete_all();
        }
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
        // Not while pods may still run (their daemon died): their shim sockets and
        // netns pins are on it, what a daemon needs to find and remove them.
        if deleted {
            self.unmount_run_dir();
        }
        // The cgroup parent too, once its pods are gone (teardown's leak check did it
        // already when the test got that far).
        for hierarchy in cgroup_hierarchies() {
            let _ = std::fs::remove_dir(hierarchy.join(&self.cgroup_parent));
        }
        // CNI's bridge plugin never deletes its bridge; this test's is ours to remove.
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
    }
}

/// A `sleep` pod of the CLI run beside CRI's pods (crictl's, a kubelet's): CRI must
/// never list nor touch it.
pub struct CliPod {
    pause: u32,
    app: u32,
}

/// Its manifest.
const CLI_POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: cli-pod
spec:
  containers:
  - name: app
    image: busybox
    command: [sleep, '3600']
";

impl Env {
    /// Apply `cli-pod` and wait until it is ready.
    pub fn start_cli_pod(&mut self) -> CliPod {
        self.apply("cli-pod", CLI_POD);
        self.wait_ready("cli-pod");
        CliPod {
            pause: self.pid_of("cli-pod", "POD"),
            app: self.pid_of("cli-pod", "app"),
        }
    }
}

impl CliPod {
    /// Still running, in the same processes, never restarted.
    pub fn assert_untouched(&self, env: &Env) {
        assert!(alive(self.pause) && alive(self.app));
        let p = env.pod("cli-pod");
        assert_eq!(p["status"]["phase"], "Running");
        assert_eq!(
            container_status(&p, "app")["restartCount"],
            serde_json::json!(0)
        );
    }
}

/// The stdout of `argv` given `input` on its stdin (coreutils as filters).
pub fn filter(argv: &[&str], input: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write");
    let out = child.wait_with_output().expect("filter output");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One row of `podhost ps -a`.
#[derive(Debug, Clone)]
pub struct ContainerRow {
    pub id: String,
    pub state: String,
    pub name: String,
    pub attempt: u32,
    pub pod: String,
    pub pid: Option<u32>,
}

/// The machine runs cgroup v2 only (the unified hierarchy at /sys/fs/cgroup).
pub fn cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// Roots of every cgroup hierarchy: the one tree on v2, each `/sys/fs/cgroup/<name>` on
/// v1 (controllers, named ones like `systemd`, and hybrid's `unified`).
pub fn cgroup_hierarchies() -> Vec<PathBuf> {
    let root = PathBuf::from("/sys/fs/cgroup");
    if cgroup_v2() {
        return vec![root];
    }
    std::fs::read_dir(&root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect()
}

/// Alive and not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let state = s
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next())
                .unwrap_or("");
            state != "Z" && state != "X"
        }
        Err(_) => false,
    }
}

/// Namespace inode link of a process (`net:[4026…]`).
pub fn ns(pid: u32, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// Condition `kind` is True.
pub fn condition(p: &serde_json::Value, kind: &str) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == kind && c["status"] == "True")
    })
}

/// Status of a container of the pod.
pub fn container_status<'a>(p: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    p["status"]["containerStatuses"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or(&serde_json::Value::Null)
}

fn rand_suffix() -> String {
    let b: [u8; 4] = rand::random();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A cgroup dir and what is below it, with the processes still in each.
fn cgroup_tree(dir: &Path) -> String {
    let mut out = dir.display().to_string();
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    let procs: Vec<&str> = procs.split_whitespace().collect();
    if !procs.is_empty() {
        out.push_str(&format!(" (processes {})", procs.join(" ")));
    }
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.push_str(&format!(
                "\n  {}",
                cgroup_tree(&e.path()).replace('\n', "\n  ")
            ));
        }
    }
    out
}
