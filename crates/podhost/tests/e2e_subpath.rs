//! End-to-end: subPath containment (issue 12, item 1). A container that owns a volume
//! swaps a subPath for a symlink while another container of the pod is created with
//! that subPath (kubelet CVE-2017-1002101 / CVE-2021-25741): the second container must
//! never see anything outside the volume, and nothing may be created on the host.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{container_status, Env};

/// Restarts within a fraction of a second: the victim is recreated as often as possible.
fn env() -> Env {
    Env::with_daemon_env(&[
        ("PODHOST_BACKOFF_INITIAL", "100ms"),
        ("PODHOST_BACKOFF_MAX", "200ms"),
    ])
}

/// How long the race runs. The unfixed daemon gave a victim the host's `/` after
/// 1.2-5.7 s (12 runs of 12); this is five times the slowest.
const RACE_FOR: Duration = Duration::from_secs(30);

/// Host directory of emptyDir `volume` of pod `uid`.
fn empty_dir(env: &Env, uid: &str, volume: &str) -> PathBuf {
    env.root
        .join("lib/volumes")
        .join(uid)
        .join("empty-dir")
        .join(volume)
}

fn waiting(p: &serde_json::Value, c: &str) -> (String, String) {
    let w = &container_status(p, c)["state"]["waiting"];
    (
        w["reason"].as_str().unwrap_or("").to_string(),
        w["message"].as_str().unwrap_or("").to_string(),
    )
}

/// The attack of the issue, in its two forms: `swap-rm` turns `d` into a directory for
/// 3 ms, removes it and makes `d` a symlink to `/` for 3 ms, in a loop; `swap-mv` does
/// the same with `e` but renames the directory away instead of removing it (so a mount
/// of it stays usable). `victim-d` and `victim-e` mount `d` and `e` as their subPaths
/// and report, into a volume of their own, when their mount shows the host's
/// `/etc/shadow`. With restarts every 100-200 ms they are created again and again; they
/// must only ever see an in-volume directory or fail to be created.
#[test]
fn subpath_swapped_for_a_symlink_never_reaches_the_host() {
    let env = env();
    let yaml = r#"apiVersion: v1
kind: Pod
metadata: {name: race}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: swap-rm
    image: busybox
    command: [sh, -c, 'cd /vol; while true; do rm -rf d; mkdir d; usleep 3000; rmdir d; ln -s / d; usleep 3000; done']
    volumeMounts:
    - {name: shared, mountPath: /vol}
  - name: swap-mv
    image: busybox
    command: [sh, -c, 'cd /vol; i=0; while true; do i=$((i+1)); mkdir e; usleep 3000; mv e kept$i; ln -s / e; usleep 3000; rm e; done']
    volumeMounts:
    - {name: shared, mountPath: /vol}
  - name: victim-d
    image: busybox
    command: [sh, -c, 'if test -e /mnt/etc/shadow; then echo escaped > /report/d; sleep 3600; fi; exit 1']
    volumeMounts:
    - {name: shared, mountPath: /mnt, subPath: d}
    - {name: report, mountPath: /report}
  - name: victim-e
    image: busybox
    command: [sh, -c, 'if test -e /mnt/etc/shadow; then echo escaped > /report/e; sleep 3600; fi; exit 1']
    volumeMounts:
    - {name: shared, mountPath: /mnt, subPath: e}
    - {name: report, mountPath: /report}
  volumes:
  - {name: shared, emptyDir: {}}
  - {name: report, emptyDir: {}}
"#;
    env.apply("race.yaml", yaml);
    let started = Instant::now();
    let uid = env.pod("race")["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_string();
    let report = empty_dir(&env, &uid, "report");
    let mut led_out = 0;
    let mut escaped = None;
    while started.elapsed() < RACE_FOR {
        if let Some(e) = std::fs::read_dir(&report).ok().and_then(|mut d| d.next()) {
            let name = e.map(|e| e.file_name()).unwrap_or_default();
            escaped = Some((name, started.elapsed()));
            break;
        }
        let p = env.pod("race");
        for (victim, sub) in [("victim-d", "d"), ("victim-e", "e")] {
            let (reason, message) = waiting(&p, victim);
            if reason == "CreateContainerConfigError" {
                assert!(
                    message.contains(&format!("subPath \"{sub}\""))
                        && message.contains("volumeMount \"shared\""),
                    "the error names the subPath and the volume: {message}"
                );
                if message.contains("leads out of the volume") {
                    led_out += 1;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let p = env.pod("race");
    let restarts = |c: &str| {
        container_status(&p, c)["restartCount"]
            .as_u64()
            .unwrap_or(0)
    };
    let (runs_d, runs_e) = (restarts("victim-d"), restarts("victim-e"));
    eprintln!(
        "race: victim-d restarted {runs_d} times, victim-e {runs_e} times, {led_out} polls saw \
         a subPath refused as leading out; escaped: {escaped:?}"
    );
    assert!(
        escaped.is_none(),
        "a victim saw the host's / through its subPath: {escaped:?}"
    );
    // The race was really run: the subPaths were resolved while they were symlinks
    // (refused) and while they were directories (victim-e ran from them, exited 1).
    assert!(led_out > 0, "no subPath was ever refused");
    assert!(runs_e >= 5, "victim-e only restarted {runs_e} times");
    env.teardown();
}

/// `esc -> /` and `subPath: esc/<dir>/a/b`: refused with CreateContainerConfigError
/// naming the subPath and the volume, and no directory is made where `esc` points.
#[test]
fn subpath_through_a_symlink_out_creates_nothing_on_the_host() {
    let env = env();
    // A directory of this test's root stands for any host path: `esc/<root>/escape`
    // is `<root>/escape` on the host if the symlink is followed.
    let outside = env.root.join("escape");
    let rel = format!(
        "esc{}/a/b",
        outside.display().to_string().trim_end_matches('/')
    );
    let yaml = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: esc}}
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: plant
    image: busybox
    command: [ln, -s, /, /vol/esc]
    volumeMounts:
    - {{name: shared, mountPath: /vol}}
  containers:
  - name: app
    image: busybox
    command: [sleep, '3600']
    volumeMounts:
    - {{name: shared, mountPath: /data, subPath: '{rel}'}}
  volumes:
  - {{name: shared, emptyDir: {{}}}}
"#
    );
    env.apply("esc.yaml", &yaml);
    let p = env.wait_for(
        "esc",
        "CreateContainerConfigError",
        Duration::from_secs(60),
        |p| waiting(p, "app").0 == "CreateContainerConfigError",
    );
    assert!(
        !exists(&outside),
        "{} was created on the host",
        outside.display()
    );
    let message = waiting(&p, "app").1;
    assert!(
        message.contains(&format!("subPath {rel:?}")) && message.contains("\"shared\""),
        "{message}"
    );
    assert!(message.contains("leads out of the volume"), "{message}");
    let table = env.ok(&["get", "pods"]);
    assert!(table.contains("CreateContainerConfigError"), "{table}");
    env.teardown();
}

/// Well-behaved subPaths keep working: a missing nested path is created inside the
/// volume with the volume's mode, a symlink that stays inside is followed, a file
/// subPath is mounted as that file; what the container writes lands in the volume.
#[test]
fn subpaths_inside_the_volume_work() {
    let mut env = env();
    let yaml = r#"apiVersion: v1
kind: Pod
metadata: {name: inside}
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: prepare
    image: busybox
    command: [sh, -c, 'mkdir -p /vol/real/dir && ln -s real/dir /vol/link && echo hello > /vol/real/file && ln -s ../file /vol/real/dir/alias']
    volumeMounts:
    - {name: shared, mountPath: /vol}
  containers:
  - name: app
    image: busybox
    command: [sh, -c, 'echo made > /new/out; echo linked > /linked/out; sleep 3600']
    volumeMounts:
    - {name: shared, mountPath: /new, subPath: logs/web}
    - {name: shared, mountPath: /linked, subPath: link}
    - {name: shared, mountPath: /etc/greeting, subPath: link/alias}
  volumes:
  - {name: shared, emptyDir: {}}
"#;
    env.apply("inside.yaml", yaml);
    let p = env.wait_ready("inside");
    let uid = p["metadata"]["uid"].as_str().expect("uid").to_string();
    let vol = empty_dir(&env, &uid, "shared");
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(10);
    while read(&vol.join("real/dir/out")) != "linked\n"
        || read(&vol.join("logs/web/out")) != "made\n"
    {
        assert!(
            Instant::now() < deadline,
            "writes did not land in the volume"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    use std::os::unix::fs::PermissionsExt;
    for d in ["logs", "logs/web"] {
        let mode = std::fs::metadata(vol.join(d))
            .expect(d)
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o777, "{d}: the emptyDir's mode");
    }
    let out = env.ok(&["exec", "inside", "-c", "app", "--", "cat", "/etc/greeting"]);
    assert_eq!(out, "hello\n");
    // The container's sources are daemon-private bind mounts, one per subPath.
    let private = env
        .root
        .join("lib/volumes")
        .join(&uid)
        .join("volume-subpaths");
    assert_eq!(mounts_under(&private).len(), 3);
    // A new instance of the container gets them afresh, not stacked on the old ones.
    let pid = env.pid_of("inside", "app");
    // SAFETY: kill(2) of a container process this test started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    env.wait_for("inside", "app restarted", Duration::from_secs(60), |p| {
        container_status(p, "app")["restartCount"].as_i64() == Some(1)
            && container_status(p, "app")["ready"].as_bool() == Some(true)
    });
    let out = env.ok(&["exec", "inside", "-c", "app", "--", "cat", "/etc/greeting"]);
    assert_eq!(out, "hello\n");
    assert_eq!(mounts_under(&private).len(), 3);
    // Deleting the pod takes them away (the teardown's leak check would see any mount
    // under the test's root, and any directory left under lib/volumes).
    env.ok(&["delete", "pod", "inside"]);
    env.ok(&["wait", "--for=delete", "pod/inside", "--timeout=60s"]);
    let left = env.pod_mounts();
    assert!(left.is_empty(), "{left:?}");
    assert!(!private.exists());
    env.teardown();
}

/// Mount points (from /proc/mounts) at or under `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.display().to_string();
    std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|m| m.starts_with(&dir))
        .map(str::to_string)
        .collect()
}

fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}
