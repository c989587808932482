//! End-to-end containment on the host side (issue 12, items 4 and 5): an unprivileged
//! host user reaches nothing of a pod (state and run trees, container root filesystems
//! with their setuid binaries and device nodes, emptyDirs, the pod's /dev/shm), and a
//! Secret's values used as env, envFrom and volume never reach the disk.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::{container_status, Env};

/// A host user made for one test with `useradd` and removed with `userdel` when dropped
/// (also when the test panics).
struct HostUser {
    name: String,
}

/// Runs a shadow-utils command, retrying while another process holds /etc/passwd's lock.
fn shadow_tool(args: &[&str]) -> Output {
    let mut last = None;
    for _ in 0..50 {
        let out = Command::new(args[0])
            .args(&args[1..])
            .output()
            .expect("run shadow tool");
        if out.status.success() || !String::from_utf8_lossy(&out.stderr).contains("lock") {
            return out;
        }
        last = Some(out);
        std::thread::sleep(Duration::from_millis(100));
    }
    last.expect("at least one try")
}

impl HostUser {
    fn create() -> HostUser {
        let suffix: u32 = rand::random();
        let name = format!("phsec{suffix:08x}");
        let out = shadow_tool(&[
            "useradd",
            "--system",
            "--no-create-home",
            "--user-group",
            "--shell",
            "/usr/sbin/nologin",
            &name,
        ]);
        assert!(
            out.status.success(),
            "useradd {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let user = HostUser { name };
        let id = user.run(&["id", "-u"]);
        let uid = String::from_utf8_lossy(&id.stdout).trim().to_string();
        assert!(
            !uid.is_empty() && uid != "0",
            "uid of {}: {uid:?}",
            user.name
        );
        user
    }

    /// Runs `argv` as this user, as a login of it would (runuser: its uid, gid and
    /// groups, no capabilities). Not `setpriv --reuid`: its own exec of a file under
    /// `/proc/<pid>/root` of a root process was seen to succeed where the same exec from
    /// a shell of the user gets EACCES.
    fn run(&self, argv: &[&str]) -> Output {
        Command::new("runuser")
            .args(["-u", &self.name, "--"])
            .args(argv)
            .output()
            .expect("run runuser")
    }

    /// `argv` as this user must fail with EACCES ("Permission denied"); what happened
    /// otherwise. `target` must exist for root, so that a wrong path cannot pass for a
    /// refusal.
    fn denied(&self, what: &str, target: &Path, argv: &[&str]) -> Result<(), String> {
        assert!(
            std::fs::symlink_metadata(target).is_ok(),
            "{what}: {} does not exist (the test looks in the wrong place)",
            target.display()
        );
        let out = self.run(argv);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && stderr.contains("Permission denied") {
            return Ok(());
        }
        Err(format!(
            "{what}: {argv:?} as {} should fail with EACCES, got {} stdout {:?} stderr {stderr:?}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stdout),
        ))
    }
}

impl Drop for HostUser {
    fn drop(&mut self) {
        let out = shadow_tool(&["userdel", &self.name]);
        if !out.status.success() {
            eprintln!(
                "userdel {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// The only entry of a directory.
fn only_entry(dir: &Path) -> PathBuf {
    let entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(entries.len(), 1, "{}: {entries:?}", dir.display());
    entries[0].clone()
}

fn container_id(pod: &serde_json::Value, name: &str) -> String {
    container_status(pod, name)["containerID"]
        .as_str()
        .and_then(|s| s.strip_prefix("podhost://"))
        .unwrap_or_else(|| panic!("no containerID for {name}: {pod}"))
        .to_string()
}

const REACH: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: reach}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: root
    image: podhost-suid:test
    command: [sh, -c, 'echo data > /scratch/file; echo shm > /dev/shm/file; echo logline; exec sleep 3600']
    volumeMounts: [{name: scratch, mountPath: /scratch}]
  - name: user
    image: podhost-suid:test
    command: [sleep, '3600']
    securityContext: {runAsUser: 1000}
    volumeMounts: [{name: scratch, mountPath: /scratch}]
  volumes:
  - {name: scratch, emptyDir: {}}
"#;

/// An image whose extra layer ships a setuid-root busybox and a device node (1,3: a
/// null device, mode 0666), made and loaded into `env`.
fn load_suid_image(env: &Env) {
    let extra = env.root.join("suid-layer");
    // Named busybox: it picks its applet by the name it runs under.
    std::fs::create_dir_all(extra.join("opt/suid")).expect("layer dir");
    std::fs::copy("/bin/busybox", extra.join("opt/suid/busybox")).expect("copy busybox");
    std::fs::set_permissions(
        extra.join("opt/suid/busybox"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .expect("chmod 4755");
    let st = Command::new("mknod")
        .args(["-m", "0666"])
        .arg(extra.join("opt/null-dev"))
        .args(["c", "1", "3"])
        .status()
        .expect("mknod");
    assert!(st.success());
    let layout = common::registry::layout_with_layer(
        common::busybox_tar(),
        &env.root,
        "docker.io/library/podhost-suid:test",
        &extra,
    );
    let out = env.ok(&["image", "load", "-i", layout.to_str().expect("utf8")]);
    assert!(out.contains("podhost-suid"), "{out}");
    let _ = std::fs::remove_dir_all(&extra);
    let _ = std::fs::remove_dir_all(&layout);
}

/// Before: `lib/{containers,volumes,pods,sandboxes}` and `run/s/*` were 0755, so any host
/// user ran a container's setuid-root binary (euid 0), opened its device nodes, read
/// and planted symlinks in emptyDirs and wrote into the pod's /dev/shm.
#[test]
fn host_users_reach_nothing_of_a_pod() {
    let user = HostUser::create();
    let mut env = Env::new();
    load_suid_image(&env);
    env.apply("reach.yaml", REACH);
    let pod = env.wait_ready("reach");
    let root = env.root.clone();
    let lib = root.join("lib");
    let run = root.join("run");
    let uid = pod["metadata"]["uid"].as_str().expect("uid").to_string();
    let cid = container_id(&pod, "root");
    let rootfs = lib.join("containers").join(&cid).join("rootfs");
    let empty_dir = lib.join("volumes").join(&uid).join("empty-dir/scratch");
    let sandbox_run = only_entry(&run.join("s"));
    let sandbox_state = only_entry(&lib.join("sandboxes"));
    let shm = sandbox_run.join("shm");
    let log_dir = root.join("log").join(format!("default_reach_{uid}"));
    let log = log_dir.join("root/0.log");
    let layer = std::fs::read_dir(lib.join("images/layers/sha256"))
        .expect("layers")
        .flatten()
        .map(|e| e.path().join("opt/suid/busybox"))
        .find(|p| p.exists())
        .expect("the layer with the setuid busybox");
    let pid = env.pid_of("reach", "root");
    let proc_root = PathBuf::from(format!("/proc/{pid}/root/opt/suid/busybox"));

    let s = |p: &Path| p.to_str().expect("utf8").to_string();
    let ping = |bin: &Path| -> Vec<String> {
        [s(bin).as_str(), "ping", "-c1", "-W1", "127.0.0.1"]
            .map(str::to_string)
            .to_vec()
    };
    let bb = |args: &[&str]| -> Vec<String> {
        std::iter::once("/bin/busybox")
            .chain(args.iter().copied())
            .map(str::to_string)
            .collect()
    };
    let attempts: Vec<(&str, PathBuf, Vec<String>)> = vec![
        ("list the state tree", lib.clone(), bb(&["ls", &s(&lib)])),
        ("list the run tree", run.clone(), bb(&["ls", &s(&run)])),
        (
            "read the pod record",
            lib.join(format!("pods/{uid}.json")),
            bb(&["cat", &s(&lib.join(format!("pods/{uid}.json")))]),
        ),
        (
            "run the setuid binary of the rootfs",
            rootfs.join("opt/suid/busybox"),
            ping(&rootfs.join("opt/suid/busybox")),
        ),
        (
            "run the setuid binary of the image layer",
            layer.clone(),
            ping(&layer),
        ),
        (
            "run the setuid binary through /proc/<pid>/root",
            proc_root.clone(),
            ping(&proc_root),
        ),
        (
            "open the image's device node",
            rootfs.join("opt/null-dev"),
            bb(&["cat", &s(&rootfs.join("opt/null-dev"))]),
        ),
        (
            "read the emptyDir",
            empty_dir.join("file"),
            bb(&["cat", &s(&empty_dir.join("file"))]),
        ),
        (
            "plant a symlink in the emptyDir",
            empty_dir.clone(),
            bb(&["ln", "-s", "/", &s(&empty_dir.join("evil"))]),
        ),
        (
            "write into the pod's /dev/shm",
            shm.join("file"),
            bb(&["sh", "-c", &format!("echo x > {}", s(&shm.join("evil")))]),
        ),
        (
            "read the sandbox's files",
            sandbox_state.join("hosts"),
            bb(&["cat", &s(&sandbox_state.join("hosts"))]),
        ),
        ("read a container log", log.clone(), bb(&["cat", &s(&log)])),
    ];
    let reached: Vec<String> = attempts
        .iter()
        .filter_map(|(what, target, argv)| {
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            user.denied(what, target, &argv).err()
        })
        .collect();
    assert!(reached.is_empty(), "reached:\n{}", reached.join("\n"));
    assert!(!empty_dir.join("evil").exists() && !shm.join("evil").exists());

    // The container's own view keeps its semantics: setuid works inside (busybox's ping
    // needs euid 0 for its raw socket; the plain one is refused), the emptyDir is
    // writable by every user, /dev/shm too.
    let inside = |args: &[&str]| {
        let mut all = vec!["exec", "reach", "-c", "user", "--"];
        all.extend_from_slice(args);
        env.run(&all)
    };
    let suid_ping = inside(&["/opt/suid/busybox", "ping", "-c1", "-W1", "127.0.0.1"]);
    assert!(
        suid_ping.status.success(),
        "setuid inside the container: {}",
        String::from_utf8_lossy(&suid_ping.stderr)
    );
    assert!(!inside(&["ping", "-c1", "-W1", "127.0.0.1"])
        .status
        .success());
    let out = env.ok(&[
        "exec",
        "reach",
        "-c",
        "user",
        "--",
        "sh",
        "-c",
        "id -u; cat /scratch/file /dev/shm/file; echo u > /scratch/u && echo u > /dev/shm/u && echo wrote",
    ]);
    assert_eq!(out, "1000\ndata\nshm\nwrote\n");

    // The modes themselves (the report lists them).
    let bundle = run.join("containers").join(&cid);
    let expected: Vec<(PathBuf, u32)> = vec![
        (lib.clone(), 0o700),
        (run.clone(), 0o700),
        (lib.join("pods"), 0o700),
        (lib.join(format!("pods/{uid}.json")), 0o600),
        (lib.join("containers"), 0o700),
        (lib.join("containers").join(&cid), 0o700),
        (lib.join("sandboxes"), 0o700),
        (sandbox_state.clone(), 0o700),
        (lib.join("volumes"), 0o700),
        (lib.join("volumes").join(&uid), 0o700),
        (lib.join("volumes").join(&uid).join("empty-dir"), 0o700),
        (empty_dir.clone(), 0o777),
        (lib.join("images"), 0o700),
        (lib.join("networks"), 0o700),
        (run.join("containers"), 0o700),
        (bundle.clone(), 0o700),
        (bundle.join("config.json"), 0o600),
        (run.join("runc"), 0o700),
        (run.join("runc").join(&cid), 0o700),
        (run.join("s"), 0o700),
        (sandbox_run.clone(), 0o700),
        (shm.clone(), 0o1777),
        (run.join("netns"), 0o700),
        (run.join("podhost.sock"), 0o600),
        // Kubernetes' log layout (kubelet: 0755 dirs, the runtime: 0640 files).
        (root.join("log"), 0o755),
        (log_dir.clone(), 0o755),
        (log.clone(), 0o640),
    ];
    let mut wrong = Vec::new();
    for (p, want) in &expected {
        let got = mode(p);
        eprintln!("{:04o} {}", got, p.display());
        if got != *want {
            wrong.push(format!("{}: {got:04o}, want {want:04o}", p.display()));
        }
    }
    assert!(wrong.is_empty(), "modes:\n{}", wrong.join("\n"));
    env.teardown();
    drop(user);
}

/// The mounts below `root` as (mount point, filesystem type).
fn mounts_under(root: &Path) -> Vec<(PathBuf, String)> {
    let text = std::fs::read_to_string("/proc/mounts").expect("mounts");
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((PathBuf::from(f.get(1)?), f.get(2)?.to_string()))
        })
        .filter(|(p, _)| p.starts_with(root))
        .collect()
}

/// A file holding one of the searched strings.
#[derive(Debug)]
struct Hit {
    path: PathBuf,
    fs: String,
    mode: u32,
}

/// Every regular file below `dir` that holds one of `needles`, with the type of the
/// filesystem it is on. Mounts other than tmpfs are not entered (an overlay rootfs
/// shows the layers and upper dir walked elsewhere; netns pins are nsfs).
fn files_holding(
    dir: &Path,
    fs: &str,
    mounts: &[(PathBuf, String)],
    needles: &[String],
) -> Vec<Hit> {
    let mut hits = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        let fs = match mounts.iter().rev().find(|(m, _)| *m == path) {
            Some((_, t)) if t == "tmpfs" => t.as_str(),
            Some(_) => continue,
            None => fs,
        };
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            hits.extend(files_holding(&path, fs, mounts, needles));
        } else if meta.is_file() {
            let data = std::fs::read(&path).unwrap_or_default();
            let text = String::from_utf8_lossy(&data);
            if needles.iter().any(|n| text.contains(n.as_str())) {
                hits.push(Hit {
                    path,
                    fs: fs.to_string(),
                    mode: meta.permissions().mode() & 0o7777,
                });
            }
        }
    }
    hits
}

fn b64(s: &str) -> String {
    common::filter(&["base64", "-w0"], s.as_bytes())
}

/// Before: the values were plain text, mode 0644, in `lib/pods/<uid>.json` and
/// `lib/containers/<id>/{config.json,container.json}`.
#[test]
fn secret_values_never_reach_the_disk() {
    let mut env = Env::with_daemon_env(&[
        ("RUST_LOG", "debug"),
        ("PODHOST_BACKOFF_INITIAL", "1s"),
        ("PODHOST_BACKOFF_MAX", "2s"),
    ]);
    let tag: u64 = rand::random();
    let (v_env, v_from, v_file) = (
        format!("envval{tag:016x}"),
        format!("fromval{tag:016x}"),
        format!("fileval{tag:016x}"),
    );
    env.apply(
        "creds.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: creds}}\ndata:\n  env: {}\n  from: {}\n  file: {}\n",
            b64(&v_env),
            b64(&v_from),
            b64(&v_file)
        ),
    );
    let pod = r#"apiVersion: v1
kind: Pod
metadata: {name: secret}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    command: [sh, -c, 'exec sleep 3600', 'arg-$(SECRET_ENV)']
    env:
    - name: SECRET_ENV
      valueFrom: {secretKeyRef: {name: creds, key: env}}
    - {name: DSN, value: 'db://$(SECRET_ENV)@host'}
    envFrom:
    - {prefix: FROM_, secretRef: {name: creds}}
    volumeMounts: [{name: creds, mountPath: /etc/creds}]
  volumes:
  - {name: creds, secret: {secretName: creds}}
"#;
    env.apply("secret.yaml", pod);
    env.wait_ready("secret");
    let script = "echo $SECRET_ENV $DSN $FROM_from; cat /etc/creds/file";
    let want = format!("{v_env} db://{v_env}@host {v_from}\n{v_file}");
    let seen = |env: &Env| env.ok(&["exec", "secret", "-c", "app", "--", "sh", "-c", script]);
    assert_eq!(seen(&env), want);

    let root = env.root.clone();
    let plain = vec![v_env.clone(), v_from.clone(), v_file.clone()];
    let encoded: Vec<String> = plain.iter().map(|v| b64(v)).collect();
    let check = |env: &Env| {
        let mounts = mounts_under(&root);
        assert!(
            mounts
                .iter()
                .any(|(p, t)| *p == root.join("run") && t == "tmpfs"),
            "the run dir is not a tmpfs: {mounts:?}"
        );
        let pod = env.pod("secret");
        let uid = pod["metadata"]["uid"].as_str().expect("uid");
        let cid = container_id(&pod, "app");
        let secret_volumes = root.join("lib/volumes").join(uid).join("secret");
        let hits = files_holding(&root, "disk", &mounts, &plain);
        let bad: Vec<&Hit> = hits
            .iter()
            .filter(|h| {
                h.fs != "tmpfs" || (h.mode & 0o077 != 0 && !h.path.starts_with(&secret_volumes))
            })
            .collect();
        assert!(
            bad.is_empty(),
            "secret values on disk or readable by others: {bad:#?}\n(all: {hits:#?})"
        );
        // The walk does look where the values must be: the bundle on the run tmpfs.
        let bundle = root.join("run/containers").join(&cid).join("config.json");
        assert!(
            hits.iter().any(|h| h.path == bundle && h.mode == 0o600),
            "{} not among {hits:#?}",
            bundle.display()
        );
        assert!(
            hits.iter().any(|h| h.path.starts_with(&secret_volumes)),
            "{hits:#?}"
        );
        // Base64, the values are the Secret object itself (0600 in a 0700 dir), and the
        // manifest this test wrote.
        let object = root.join("lib/secrets/default/creds.json");
        let stray: Vec<Hit> = files_holding(&root, "disk", &mounts, &encoded)
            .into_iter()
            .filter(|h| h.path != object && h.path != root.join("creds.yaml"))
            .collect();
        assert!(stray.is_empty(), "secret values in base64: {stray:#?}");
    };
    check(&env);

    // The daemon restarts: the container keeps its environment; then the container
    // restarts under the new daemon, which resolves the Secret again.
    env.stop_daemon();
    env.start_daemon();
    assert_eq!(seen(&env), want);
    let pid = env.pid_of("secret", "app");
    // SAFETY: kill(2) of the container's process, which this test created.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    env.wait_for(
        "secret",
        "a restarted container",
        Duration::from_secs(30),
        |p| {
            let s = container_status(p, "app");
            s["restartCount"] == 1 && s["state"]["running"].is_object()
        },
    );
    assert_eq!(seen(&env), want);
    check(&env);
    env.teardown();
}
