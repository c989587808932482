//! End-to-end: container log rotation (issue 16). The shim rotates `<n>.log` between
//! records at `--container-log-max-size`, keeps `--container-log-max-files`, and
//! `logs` / `logs -f` read across the rotated files.

mod common;

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{container_status, Env};

/// The small limit of these tests (the default is kubelet's 10Mi).
const MAX_SIZE: u64 = 64 * 1024;
const MAX_FILES: usize = 3;

fn env_with(extra: &[(&str, &str)]) -> Env {
    let mut vars = vec![
        ("PODHOST_CONTAINER_LOG_MAX_SIZE", "64Ki"),
        ("PODHOST_CONTAINER_LOG_MAX_FILES", "3"),
        ("PODHOST_BACKOFF_INITIAL", "1s"),
        ("PODHOST_BACKOFF_MAX", "1s"),
    ];
    vars.extend_from_slice(extra);
    Env::with_daemon_env(&vars)
}

/// A one-container pod running `script` (a YAML block), with `extra` spec lines.
fn pod_yaml(name: &str, script: &str, extra: &str) -> String {
    let script: String = script.lines().map(|l| format!("      {l}\n")).collect();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 1\n{extra}  containers:\n  - name: main\n    image: busybox\n    command:\n    - sh\n    - -c\n    - |\n{script}"
    )
}

/// The `main` container's log directory of pod `name`.
fn log_dir(env: &Env, name: &str) -> PathBuf {
    let uid = env.pod(name)["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    env.root
        .join("log")
        .join(format!("default_{name}_{uid}"))
        .join("main")
}

/// Distinct files (by inode: a rename seen mid-way may list one file twice) and their
/// total size; files removed while looking are left out.
fn usage(dir: &Path) -> (Vec<(String, u64)>, u64) {
    let mut seen = HashSet::new();
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(m) = std::fs::metadata(e.path()) else {
            continue;
        };
        if seen.insert(m.ino()) {
            files.push((e.file_name().to_string_lossy().into_owned(), m.len()));
        }
    }
    files.sort();
    let total = files.iter().map(|(_, n)| n).sum();
    (files, total)
}

/// Numbers of the `line N …` lines of a log.
fn line_numbers(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.strip_prefix("line "))
        .filter_map(|rest| rest.split(' ').next()?.parse().ok())
        .collect()
}

/// A `podhost logs -f` writing to a file; killed on drop.
struct Follower {
    child: Child,
    out: PathBuf,
}

impl Follower {
    fn start(env: &Env, pod: &str) -> Follower {
        let out = env.root.join(format!("{pod}.follow"));
        let child = Command::new(common::bin())
            .args(["logs", "-f", pod])
            .env("PODHOST_ROOT", &env.root)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("create"))
            .stderr(Stdio::null())
            .spawn()
            .expect("logs -f");
        Follower { child, out }
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Waits until the output holds `what`.
    fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(&self.text()) {
            let t = self.text();
            assert!(
                Instant::now() < deadline,
                "`logs -f`: no {what}; it printed {} lines, ending: {:?}",
                t.lines().count(),
                t.lines().last()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lines written in each burst: one burst (about 80 KB of records) is more than a file
/// and less than two, so a burst rotates the log once or twice while the follower is
/// never more than a burst behind and never loses a file it has not read.
const BURST: u64 = 600;
const BURSTS: u64 = 12;

/// Starts pod `talk`, which writes [`BURSTS`] bursts of numbered lines, each when the
/// test creates `ack/<burst>` (a hostPath), so that a follower is never more than a
/// burst behind however loaded the machine is. Returns the ack directory.
fn start_talker(env: &Env) -> PathBuf {
    let ack = env.root.join("ack");
    std::fs::create_dir_all(&ack).expect("ack dir");
    let script = format!(
        "echo ready\nb=0; i=0\nwhile [ $b -lt {BURSTS} ]; do\n  until [ -e /ack/$b ]; do sleep 0.05; done\n  j=0\n  while [ $j -lt {BURST} ]; do echo \"line $i {pad}\"; i=$((i+1)); j=$((j+1)); done\n  b=$((b+1))\ndone\necho done\nexec sleep 3600\n",
        pad = "x".repeat(80)
    );
    let volumes = format!(
        "  volumes:\n  - name: ack\n    hostPath: {{path: {}, type: Directory}}\n",
        ack.display()
    );
    let yaml = pod_yaml("talk", &script, &volumes).replace(
        "    command:",
        "    volumeMounts:\n    - {name: ack, mountPath: /ack}\n    command:",
    );
    env.apply("talk.yaml", &yaml);
    env.wait_for("talk", "main running", Duration::from_secs(60), |p| {
        container_status(p, "main")["state"]["running"].is_object()
    });
    ack
}

/// Lets burst `b` go.
fn release(ack: &Path, b: u64) {
    std::fs::write(ack.join(b.to_string()), b"").expect("ack");
}

/// Issue 16 acceptance: a container writing numbered lines fast gets its log rotated;
/// afterwards at most 3 files, none over the limit, `logs` prints a contiguous tail
/// ending at the last line, and a `logs -f` that ran through every rotation printed each
/// line exactly once, in order.
#[test]
fn rotation_keeps_a_tail_and_follow_sees_every_line_once() {
    let env = env_with(&[]);
    let ack = start_talker(&env);
    let follow = Follower::start(&env, "talk");
    follow.wait_for("ready", |t| t.starts_with("ready\n"));
    for b in 0..BURSTS {
        release(&ack, b);
        follow.wait_for(&format!("burst {b}"), |t| {
            line_numbers(t).len() as u64 >= (b + 1) * BURST
        });
    }
    follow.wait_for("done", |t| t.ends_with("done\n"));
    let total = BURST * BURSTS;
    assert_eq!(
        line_numbers(&follow.text()),
        (0..total).collect::<Vec<_>>(),
        "followed lines missing, repeated or out of order"
    );
    drop(follow);

    let dir = log_dir(&env, "talk");
    let (files, _) = usage(&dir);
    assert!(files.len() <= MAX_FILES, "{files:?}");
    assert!(files.iter().any(|(n, _)| n == "0.log"), "{files:?}");
    for (name, size) in &files {
        assert!(*size <= MAX_SIZE, "{name}: {size} bytes");
        let stamp = name.strip_prefix("0.log.").unwrap_or("20000101-000000");
        assert!(
            name == "0.log" || (stamp.len() >= 15 && stamp.as_bytes()[8] == b'-'),
            "kubelet's rotated name: {name}"
        );
    }
    let logs = env.ok(&["logs", "talk"]);
    let numbers = line_numbers(&logs);
    let first = *numbers.first().expect("some lines");
    assert!(first > 0, "older lines are rotated away");
    assert_eq!(
        numbers,
        (first..total).collect::<Vec<_>>(),
        "a contiguous tail"
    );
    assert!(
        logs.ends_with("done\n") && !logs.contains("ready"),
        "{first}"
    );
    // --timestamps as before: every line after its record's timestamp.
    let stamped = env.ok(&["logs", "talk", "--timestamps"]);
    assert_eq!(stamped.lines().count(), logs.lines().count());
    for (s, l) in stamped.lines().zip(logs.lines()) {
        let (ts, text) = s.split_once(' ').expect("timestamp");
        assert!(ts.len() == 30 && ts.ends_with('Z'), "{s}");
        assert_eq!(text, l);
    }
    env.teardown();
}

/// A `logs -f` cut by a daemon restart goes on after the last line it printed although
/// the file it was reading has been rotated meanwhile (the position is a timestamp, not
/// a count of lines from the start, which rotation invalidates).
#[test]
fn follow_resumes_across_rotations_after_a_daemon_restart() {
    let mut env = env_with(&[]);
    let ack = start_talker(&env);
    let follow = Follower::start(&env, "talk");
    follow.wait_for("ready", |t| t.starts_with("ready\n"));
    let dir = log_dir(&env, "talk");
    let written = |upto: u64| {
        let mut files =
            podhost_shim::logrotate::rotated_files(&dir.join("0.log")).unwrap_or_default();
        files.push(dir.join("0.log"));
        files.iter().any(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .contains(&format!(" line {upto} "))
        })
    };
    for b in 0..BURSTS {
        if b % 3 == 1 {
            // This burst is written while no daemon serves the follower.
            env.kill_daemon();
            let names = || -> Vec<String> { usage(&dir).0.into_iter().map(|(n, _)| n).collect() };
            let before = names();
            release(&ack, b);
            let deadline = Instant::now() + Duration::from_secs(30);
            while !written((b + 1) * BURST - 1) {
                assert!(Instant::now() < deadline, "burst {b} not written");
                std::thread::sleep(Duration::from_millis(20));
            }
            // The file the follower was reading is a rotated one now.
            assert_ne!(names(), before, "burst {b} rotated the log");
            env.start_daemon();
        } else {
            release(&ack, b);
        }
        follow.wait_for(&format!("burst {b}"), |t| {
            line_numbers(t).len() as u64 >= (b + 1) * BURST
        });
    }
    follow.wait_for("done", |t| t.ends_with("done\n"));
    assert_eq!(
        line_numbers(&follow.text()),
        (0..BURST * BURSTS).collect::<Vec<_>>(),
        "followed lines missing, repeated or out of order"
    );
    drop(follow);
    env.teardown();
}

/// The attack of issue 16: `yes` filled one 4.4 GiB file in 20 s. With rotation the
/// container's log directory stays within max-files × max-size all along, and `logs`
/// of the flooding container ends (it reads what was there when asked).
#[test]
fn a_flood_keeps_the_log_directory_bounded() {
    let env = env_with(&[]);
    env.apply("flood.yaml", &pod_yaml("flood", "exec yes", ""));
    env.wait_for("flood", "main running", Duration::from_secs(60), |p| {
        container_status(p, "main")["state"]["running"].is_object()
    });
    let dir = log_dir(&env, "flood");
    let bound = MAX_FILES as u64 * MAX_SIZE;
    let mut largest = 0;
    let mut rotations_seen = HashSet::new();
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        let (files, total) = usage(&dir);
        assert!(files.len() <= MAX_FILES, "{files:?}");
        assert!(total <= bound, "{total} bytes in {files:?}");
        largest = largest.max(total);
        rotations_seen.extend(files.into_iter().map(|(n, _)| n));
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        rotations_seen.len() > 2 * MAX_FILES,
        "the flood was rotated many times: {rotations_seen:?}"
    );
    assert!(largest > MAX_SIZE, "the files filled up: {largest}");
    let out = env.ok(&["logs", "flood"]);
    assert!(out.len() as u64 <= bound, "{} bytes", out.len());
    assert!(out.lines().all(|l| l == "y"), "only the flood's lines");
    env.teardown();
}

/// Kubelet's container GC removes a container's logs with it: a crash-looping container
/// keeps the log sets of its current and previous run only, not one per restart.
#[test]
fn a_crash_loop_keeps_two_log_sets() {
    let env = env_with(&[]);
    env.apply("loop.yaml", &pod_yaml("loop", "echo run; exit 1", ""));
    env.wait_for("loop", "4 restarts", Duration::from_secs(90), |p| {
        container_status(p, "main")["restartCount"]
            .as_u64()
            .is_some_and(|n| n >= 4)
    });
    let dir = log_dir(&env, "loop");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (files, _) = usage(&dir);
        let restarts = container_status(&env.pod("loop"), "main")["restartCount"]
            .as_u64()
            .unwrap_or(0);
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        let want = [format!("{}.log", restarts - 1), format!("{restarts}.log")];
        if names == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "restart {restarts}: log files {names:?}, want {want:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(env.ok(&["logs", "loop", "--previous"]).starts_with("run\n"));
    env.teardown();
}

/// A shim started before the upgrade (here: by a daemon with rotation off) gets no
/// rotation flags and keeps writing one file; a daemon with rotation on reads and
/// follows it as before.
#[test]
fn a_shim_started_without_rotation_keeps_working() {
    let mut env = env_with(&[("PODHOST_CONTAINER_LOG_MAX_SIZE", "-1")]);
    env.apply(
        "old.yaml",
        &pod_yaml(
            "old",
            &format!(
                "i=0; while [ $i -lt 1000 ]; do echo \"line $i {}\"; i=$((i+1)); done\nwhile [ ! -e /tmp/more ]; do sleep 0.05; done\necho \"line 1000\"\nexec sleep 3600\n",
                "y".repeat(100)
            ),
            "",
        ),
    );
    env.wait_for("old", "main running", Duration::from_secs(60), |p| {
        container_status(p, "main")["state"]["running"].is_object()
    });
    let dir = log_dir(&env, "old");
    let deadline = Instant::now() + Duration::from_secs(30);
    while line_numbers(&env.ok(&["logs", "old"])).len() < 1000 {
        assert!(Instant::now() < deadline, "the first 1000 lines");
        std::thread::sleep(Duration::from_millis(50));
    }
    env.kill_daemon();
    env.daemon_env
        .retain(|(k, _)| k != "PODHOST_CONTAINER_LOG_MAX_SIZE");
    env.daemon_env
        .push(("PODHOST_CONTAINER_LOG_MAX_SIZE".into(), "64Ki".into()));
    env.start_daemon();
    let follow = Follower::start(&env, "old");
    follow.wait_for("the first 1000 lines", |t| line_numbers(t).len() >= 1000);
    env.ok(&["exec", "old", "--", "touch", "/tmp/more"]);
    follow.wait_for("line 1000", |t| line_numbers(t).len() > 1000);
    assert_eq!(line_numbers(&follow.text()), (0..=1000).collect::<Vec<_>>());
    drop(follow);
    let (files, total) = usage(&dir);
    assert_eq!(files.len(), 1, "never rotated: {files:?}");
    assert!(total > MAX_SIZE, "one file past the new limit: {total}");
    env.teardown();
}
