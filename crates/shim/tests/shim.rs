//! End-to-end tests: a real shim, the real pause binary, real namespaces and
//! a fake `podhost-runc` shell script. Needs root. Each test uses its own
//! temp dir and netns so they run in parallel.

use podhost_shim::proto::{self, frame, Client, ContainerState, ErrorCode, Event, Request};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static SEQ: AtomicU32 = AtomicU32::new(0);

const FAKE_RUNC: &str = r#"#!/bin/sh
# Fake podhost-runc: containers are plain background shells.
root=; errf=/dev/null
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root=$2; shift 2;;
    --error-file) errf=$2; shift 2;;
    *) break;;
  esac
done
op=$1; shift
case "$op" in
create)
  while [ $# -gt 1 ]; do
    case "$1" in
      --bundle) bundle=$2; shift 2;;
      --pid-file) pidf=$2; shift 2;;
      --console-socket) console=$2; shift 2;;
      *) break;;
    esac
  done
  id=$1
  if [ -f "$bundle/fail" ]; then cat "$bundle/fail" > "$errf"; exit 1; fi
  if [ -f "$bundle/gate" ]; then
    # A slow create: runs until the test opens the gate.
    : > "$bundle/entered"
    while [ ! -e "$bundle/open" ]; do sleep 0.01; done
  fi
  if [ -f "$bundle/die-early" ]; then
    # The init is handed to the shim (its parent exits) and dies while this helper still
    # runs; the helper exits once the shim has reaped it.
    sh -c 'sh -c "echo \$\$ > \"\$1\"; exit 7" init "$1" &' x "$pidf"
    while [ ! -s "$pidf" ]; do sleep 0.01; done
    pid=$(cat "$pidf")
    while kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
    exit 0
  fi
  mkdir -p "$root/$id" && mkfifo "$root/$id/start" || exit 1
  if [ -n "$console" ]; then
    # A TTY container: the console part as for exec (see fake_console_helper), which
    # sends the master at once; the workload then waits for `start` on its terminal.
    PODHOST_FAKE_CONSOLE="$console" \
      PODHOST_FAKE_CONSOLE_CMD="read x < '$root/$id/start'; exec sh '$bundle/cmd'" \
      "$PODHOST_FAKE_CONSOLE_BIN" --exact fake_console_helper --quiet > /dev/null 2>&1 &
  else
    # The init waits on the fifo until `start`, then becomes the workload. It keeps the
    # stdin the shim gave (a background job would get /dev/null).
    exec 3<&0
    sh -c 'read x < "$1"; exec sh "$2"' init "$root/$id/start" "$bundle/cmd" <&3 &
  fi
  echo $! > "$pidf"
  ;;
start)
  [ -p "$root/$1/start" ] || { echo "container $1 does not exist" > "$errf"; exit 1; }
  echo go > "$root/$1/start"
  ;;
exec)
  if [ "$1" = "--console-socket" ]; then
    # TTY exec: this test binary plays the OCI runtime's console part (see
    # fake_console_helper); the command is one shell line.
    sock=$2; shift 3; [ "$1" = "--" ] && shift
    if [ "$*" = "fail-before-console" ]; then echo "no such command in image" > "$errf"; exit 1; fi
    PODHOST_FAKE_CONSOLE="$sock" PODHOST_FAKE_CONSOLE_CMD="$*" \
      exec "$PODHOST_FAKE_CONSOLE_BIN" --exact fake_console_helper --quiet > /dev/null
  fi
  shift; [ "$1" = "--" ] && shift
  # As libcontainer's exec: the command is the helper's child, not the helper itself.
  exec 3<&0
  "$@" <&3 3<&- &
  exec 3<&-
  wait $!
  ;;
delete)
  [ "$1" = "--force" ] && shift
  rm -rf "$root/$1"
  ;;
*) echo "unknown op $op" >&2; exit 2;;
esac
"#;

fn shim_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_podhost-shim"))
}

/// The pause binary: `$PODHOST_TEST_PAUSE`, else next to the shim binary
/// (built by `cargo test -p pause -p podhost-shim` or `cargo build -p pause`).
fn pause_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("PODHOST_TEST_PAUSE") {
        return PathBuf::from(p);
    }
    let p = shim_bin().with_file_name("pause");
    assert!(
        p.exists(),
        "{} missing: run `cargo build -p pause` (same profile/target dir) or set PODHOST_TEST_PAUSE",
        p.display()
    );
    p
}

fn alive(pid: i32) -> bool {
    // A zombie is dead for our purposes.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A test sandbox: temp dir, pinned netns, fake runc; torn down on drop.
struct Env {
    name: String,
    dir: PathBuf,
    netns: PathBuf,
    pids: Vec<i32>,
    /// The test dir was made a shared mount (see [`Env::share_dir`]).
    shared: bool,
}

impl Env {
    fn new(tag: &str) -> Env {
        let name = format!(
            "phshim-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let dir = std::env::temp_dir().join(&name);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("runc-root")).unwrap();
        let runc = dir.join("fake-runc");
        fs::write(&runc, FAKE_RUNC).unwrap();
        fs::set_permissions(&runc, fs::Permissions::from_mode(0o755)).unwrap();
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap();
        assert!(st.success(), "ip netns add {name}");
        Env {
            netns: PathBuf::from("/run/netns").join(&name),
            name,
            dir,
            pids: Vec::new(),
            shared: false,
        }
    }

    /// Makes the test dir a shared mount (as systemd makes `/`), so that a mount made
    /// under it in a namespace that forgot to go private would show up on the host.
    fn share_dir(&mut self) {
        let d = sys_path(&self.dir);
        // SAFETY: mount(2) with valid C strings.
        unsafe {
            let r = libc::mount(
                d.as_ptr(),
                d.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            );
            assert_eq!(r, 0, "bind {}", self.dir.display());
            self.shared = true;
            let r = libc::mount(
                std::ptr::null(),
                d.as_ptr(),
                std::ptr::null(),
                libc::MS_SHARED,
                std::ptr::null(),
            );
            assert_eq!(r, 0, "make-shared {}", self.dir.display());
        }
    }

    /// Lines of the host's (our) mount table naming the test dir.
    fn host_mounts(&self) -> Vec<String> {
        let needle = self.dir.to_str().unwrap();
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(needle))
            .map(String::from)
            .collect()
    }

    fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    fn sock(&self) -> PathBuf {
        self.state().join("shim.sock")
    }

    fn shim_cmd(&self, pause: &Path, netns: &Path) -> Command {
        let mut c = Command::new(shim_bin());
        c.arg("--id")
            .arg(&self.name)
            .arg("--dir")
            .arg(self.state())
            .arg("--netns")
            .arg(netns)
            .arg("--hostname")
            .arg("pod-host-1")
            .arg("--pause")
            .arg(pause)
            .arg("--runc")
            .arg(self.dir.join("fake-runc"))
            .arg("--runc-root")
            .arg(self.dir.join("runc-root"))
            .env(
                "PODHOST_FAKE_CONSOLE_BIN",
                std::env::current_exe().expect("test binary"),
            )
            .stdin(Stdio::null());
        c
    }

    /// Starts the shim; returns (pause_pid, shim_pid).
    fn start(&mut self) -> (i32, i32) {
        self.start_with(&[])
    }

    /// Starts the shim with extra flags; returns (pause_pid, shim_pid).
    fn start_with(&mut self, extra: &[&str]) -> (i32, i32) {
        let mut cmd = self.shim_cmd(&pause_bin(), &self.netns.clone());
        cmd.args(extra);
        self.start_cmd(cmd)
    }

    /// Runs a shim command line; returns (pause_pid, shim_pid).
    fn start_cmd(&mut self, mut cmd: Command) -> (i32, i32) {
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "shim start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8(out.stdout).unwrap();
        assert_eq!(line.lines().count(), 1, "one JSON line: {line:?}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let pause = v["pause_pid"].as_i64().unwrap() as i32;
        let shim = v["shim_pid"].as_i64().unwrap() as i32;
        self.pids.extend([pause, shim]);
        (pause, shim)
    }

    /// Writes a bundle whose container runs `script` under sh.
    fn bundle(&self, id: &str, script: &str) -> String {
        let b = self.dir.join("bundles").join(id);
        fs::create_dir_all(&b).unwrap();
        fs::write(b.join("cmd"), script).unwrap();
        b.to_str().unwrap().to_string()
    }

    fn log_path(&self, id: &str) -> String {
        self.dir
            .join(format!("logs/{id}/0.log"))
            .to_str()
            .unwrap()
            .to_string()
    }

    fn call(&self, req: Request) -> proto::Response {
        proto::call(&self.sock(), &req).unwrap()
    }

    fn create(&mut self, id: &str, script: &str) -> i32 {
        self.create_with(id, script, false, false, false)
    }

    /// Creates a container with CRI's `tty`, `stdin` and `stdin_once`.
    fn create_with(
        &mut self,
        id: &str,
        script: &str,
        tty: bool,
        stdin: bool,
        stdin_once: bool,
    ) -> i32 {
        let r = self
            .call(Request::CreateContainer {
                id: id.into(),
                bundle: self.bundle(id, script),
                log_path: self.log_path(id),
                tty,
                stdin,
                stdin_once,
            })
            .into_result()
            .unwrap();
        let pid = r.pid.unwrap();
        self.pids.push(pid);
        pid
    }

    /// Every process whose command line mentions this test's directory.
    fn leftovers(&self) -> Vec<String> {
        let needle = self.dir.to_str().unwrap().as_bytes().to_vec();
        let mut found = Vec::new();
        for e in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if let Ok(cmd) = fs::read(format!("/proc/{pid}/cmdline")) {
                if cmd.windows(needle.len()).any(|w| w == needle) && alive(pid) {
                    found.push(format!("{pid}: {}", String::from_utf8_lossy(&cmd)));
                }
            }
        }
        found
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for &p in &self.pids {
            if alive(p) {
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
        if self.shared {
            // SAFETY: umount2 with a valid C string.
            unsafe { libc::umount2(sys_path(&self.dir).as_ptr(), libc::MNT_DETACH) };
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn sys_path(p: &Path) -> std::ffi::CString {
    std::ffi::CString::new(p.to_str().unwrap()).unwrap()
}

fn ns_ino(pid: &str, ns: &str) -> u64 {
    fs::metadata(format!("/proc/{pid}/ns/{ns}")).unwrap().ino()
}

fn read_log(path: &str, want_lines: usize) -> Vec<String> {
    let mut lines = Vec::new();
    wait_until("log lines", Duration::from_secs(10), || {
        lines = fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect();
        lines.len() >= want_lines
    });
    lines
}

/// Splits a CRI log line, checking the timestamp's shape.
fn parse_cri(line: &str) -> (String, String, String) {
    let mut it = line.splitn(4, ' ');
    let ts = it.next().unwrap();
    let b = ts.as_bytes();
    assert_eq!(b.len(), 30, "timestamp {ts:?}");
    assert!(
        b[4] == b'-' && b[10] == b'T' && b[19] == b'.' && b[29] == b'Z',
        "timestamp {ts:?}"
    );
    assert!(ts.starts_with("20"), "timestamp {ts:?}");
    (
        it.next().unwrap().to_string(),
        it.next().unwrap().to_string(),
        it.next().unwrap_or("").to_string(),
    )
}

fn next_exit(sub: &mut Client, id: &str) -> (i32, Option<i32>) {
    loop {
        if let Event::Exit {
            id: got,
            exit_code,
            signal,
        } = sub.next_event().unwrap()
        {
            if got == id {
                return (exit_code, signal);
            }
        }
    }
}

/// Runs an exec session: sends `stdin` then closes it; returns (stdout, stderr, exit).
fn exec(sock: &Path, id: &str, cmd: &[&str], stdin: &[u8]) -> (Vec<u8>, Vec<u8>, i32) {
    let mut c = Client::connect(sock).unwrap();
    c.stream()
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    c.call(&Request::Exec {
        id: id.into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty: false,
        size: None,
    })
    .unwrap()
    .into_result()
    .unwrap();
    if !stdin.is_empty() {
        frame::write(c.frames_writer(), frame::STDIN, stdin).unwrap();
    }
    frame::write(c.frames_writer(), frame::STDIN_CLOSE, &[]).unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    loop {
        let (kind, payload) = frame::read(c.frames_reader())
            .unwrap()
            .expect("exit frame before EOF");
        match kind {
            frame::STDOUT => out.extend_from_slice(&payload),
            frame::STDERR => err.extend_from_slice(&payload),
            frame::EXIT => {
                let code = i32::from_be_bytes(payload[..4].try_into().unwrap());
                assert!(frame::read(c.frames_reader()).unwrap().is_none());
                return (out, err, code);
            }
            k => panic!("unexpected frame kind {k}"),
        }
    }
}

#[test]
fn pod_lifecycle() {
    let mut env = Env::new("life");
    let (pause, shim) = env.start();
    let st = env.state();
    assert_eq!(
        fs::read_to_string(st.join("pause.pid")).unwrap().trim(),
        pause.to_string()
    );
    assert_eq!(
        fs::read_to_string(st.join("shim.pid")).unwrap().trim(),
        shim.to_string()
    );
    assert_eq!(
        fs::metadata(env.sock()).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Namespaces: new net (the pinned one), ipc, uts and pid.
    let p = pause.to_string();
    for ns in ["net", "ipc", "uts", "pid"] {
        assert_ne!(ns_ino(&p, ns), ns_ino("self", ns), "{ns} namespace shared");
    }
    assert_eq!(ns_ino(&p, "net"), fs::metadata(&env.netns).unwrap().ino());
    let status = fs::read_to_string(format!("/proc/{pause}/status")).unwrap();
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert!(nspid.trim_end().ends_with("\t1"), "pause is PID 1: {nspid}");
    let stat = fs::read_to_string(format!("/proc/{pause}/stat")).unwrap();
    let ppid: i32 = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(ppid, shim, "pause is the shim's child");
    let out = Command::new("nsenter")
        .arg(format!("--uts=/proc/{pause}/ns/uts"))
        .args(["cat", "/proc/sys/kernel/hostname"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "pod-host-1");

    let r = env.call(Request::Status);
    assert!(r.ok && r.pause_running == Some(true) && r.pause_pid == Some(pause));

    let mut sub = Client::connect(&env.sock()).unwrap();
    sub.stream()
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    assert!(sub.call(&Request::Subscribe).unwrap().ok);

    // A container that prints and exits 3.
    let long = "x".repeat(20_000);
    let c1 = env.create(
        "c1",
        &format!("echo line1\necho oops >&2\necho {long}\nprintf no-newline\nexit 3\n"),
    );
    let r = env.call(Request::Status);
    let cs = &r.containers.unwrap()[0];
    assert_eq!(
        (cs.id.as_str(), cs.pid, cs.state),
        ("c1", c1, ContainerState::Created)
    );
    assert!(cs.started_at.is_none() && cs.exit_code.is_none());
    env.call(Request::StartContainer { id: "c1".into() })
        .into_result()
        .unwrap();
    assert_eq!(next_exit(&mut sub, "c1"), (3, None));
    let lines = read_log(&env.log_path("c1"), 5);
    let parsed: Vec<_> = lines.iter().map(|l| parse_cri(l)).collect();
    let mut stdout: Vec<_> = parsed.iter().filter(|p| p.0 == "stdout").cloned().collect();
    let stderr: Vec<_> = parsed.iter().filter(|p| p.0 == "stderr").cloned().collect();
    assert_eq!(stderr, vec![("stderr".into(), "F".into(), "oops".into())]);
    assert_eq!(stdout.len(), 4, "{lines:?}");
    assert_eq!(stdout[0], ("stdout".into(), "F".into(), "line1".into()));
    assert_eq!((stdout[1].1.as_str(), stdout[1].2.len()), ("P", 16 * 1024));
    assert_eq!(
        (stdout[2].1.as_str(), stdout[2].2.len()),
        ("F", 20_000 - 16 * 1024)
    );
    let last = stdout.pop().unwrap();
    assert_eq!(last, ("stdout".into(), "P".into(), "no-newline".into()));
    let r = env.call(Request::Status);
    let cs = &r.containers.unwrap()[0];
    assert_eq!(
        (cs.state, cs.exit_code, cs.signal),
        (ContainerState::Exited, Some(3), None)
    );
    assert!(cs.started_at.unwrap() >= cs.created_at);
    assert!(cs.finished_at.unwrap() >= cs.started_at.unwrap());

    // Signals: SIGTERM kills `sleep`, reported as 128+15.
    let c2 = env.create("c2", "exec sleep 1000\n");
    let r = env.call(Request::Signal {
        id: "c2".into(),
        signal: 15,
    });
    assert_eq!(r.code, Some(ErrorCode::FailedPrecondition), "{r:?}");
    assert!(!r.ok && r.error.unwrap().contains("not running"));
    env.call(Request::StartContainer { id: "c2".into() })
        .into_result()
        .unwrap();
    wait_until("c2 running", Duration::from_secs(5), || {
        fs::read_to_string(format!("/proc/{c2}/cmdline")).is_ok_and(|c| c.starts_with("sleep"))
    });
    env.call(Request::Signal {
        id: "c2".into(),
        signal: 15,
    })
    .into_result()
    .unwrap();
    assert_eq!(next_exit(&mut sub, "c2"), (143, Some(15)));
    let r = env.call(Request::Status);
    let cs = r
        .containers
        .unwrap()
        .into_iter()
        .find(|c| c.id == "c2")
        .unwrap();
    assert_eq!((cs.exit_code, cs.signal), (Some(143), Some(15)));

    // Exec: stdin/stdout/stderr relayed, exit code returned; sessions overlap.
    env.create("c3", "echo ready\nexec sleep 1000\n");
    env.call(Request::StartContainer { id: "c3".into() })
        .into_result()
        .unwrap();
    let sock = env.sock();
    let slow =
        std::thread::spawn(move || exec(&sock, "c3", &["sh", "-c", "sleep 1; echo slow"], b""));
    let t0 = Instant::now();
    let (out, err, code) = exec(
        &env.sock(),
        "c3",
        &["sh", "-c", "cat; echo to-err >&2; exit 7"],
        b"hello exec\n",
    );
    assert!(
        t0.elapsed() < Duration::from_millis(900),
        "exec sessions must not block each other"
    );
    assert_eq!(
        (out.as_slice(), err.as_slice(), code),
        (&b"hello exec\n"[..], &b"to-err\n"[..], 7)
    );
    let big = vec![b'z'; 300_000];
    let (out, _, code) = exec(&env.sock(), "c3", &["cat"], &big);
    assert_eq!((out.len(), code), (big.len(), 0));
    assert_eq!(slow.join().unwrap(), (b"slow\n".to_vec(), vec![], 0));
    let r = env.call(Request::Exec {
        id: "c1".into(),
        cmd: vec!["true".into()],
        tty: false,
        size: None,
    });
    assert_eq!(r.code, Some(ErrorCode::FailedPrecondition), "{r:?}");
    assert!(!r.ok && r.error.unwrap().contains("not running"));

    // Removal and error paths.
    let r = env.call(Request::RemoveContainer { id: "c3".into() });
    assert_eq!(r.code, Some(ErrorCode::FailedPrecondition), "{r:?}");
    assert!(!r.ok && r.error.unwrap().contains("running"));
    env.call(Request::RemoveContainer { id: "c1".into() })
        .into_result()
        .unwrap();
    let r = env.call(Request::StartContainer { id: "c1".into() });
    assert_eq!(r.code, Some(ErrorCode::NotFound), "{r:?}");
    assert!(
        !r.ok && r.error.as_deref().unwrap().contains("\"c1\" not found"),
        "{r:?}"
    );
    let b = env.bundle("bad", "true\n");
    fs::write(Path::new(&b).join("fail"), "bundle is broken: no rootfs\n").unwrap();
    let r = env.call(Request::CreateContainer {
        id: "bad".into(),
        bundle: b,
        log_path: env.log_path("bad"),
        tty: false,
        stdin: false,
        stdin_once: false,
    });
    assert_eq!(r.code, Some(ErrorCode::Internal), "{r:?}");
    let e = r.error.unwrap();
    assert!(e.contains("bad") && e.contains("no rootfs"), "{e}");
    let r = env.call(Request::CreateContainer {
        id: "c2".into(),
        bundle: env.bundle("c2", "true\n"),
        log_path: env.log_path("c2"),
        tty: false,
        stdin: false,
        stdin_once: false,
    });
    assert_eq!(r.code, Some(ErrorCode::AlreadyExists), "{r:?}");
    assert!(r.error.unwrap().contains("already exists"));
    let r = proto::call(&env.sock(), &Request::Status).unwrap();
    assert_eq!(r.containers.unwrap().len(), 2);

    // Shutdown with c3 still running.
    let c3 = env
        .call(Request::Status)
        .containers
        .unwrap()
        .into_iter()
        .find(|c| c.id == "c3")
        .unwrap()
        .pid;
    env.call(Request::Shutdown { removing: false })
        .into_result()
        .unwrap();
    wait_until("shim, pause and c3 gone", Duration::from_secs(10), || {
        !alive(shim) && !alive(pause) && !alive(c3)
    });
    assert!(!env.sock().exists() && !st.join("shim.pid").exists());
    assert_eq!(env.leftovers(), Vec::<String>::new());
}

/// With `--log-max-size`, a container writing fast gets its log rotated between records:
/// at most `--log-max-files` files, none over the limit, the newest lines kept in order.
#[test]
fn logs_rotate_between_records() {
    const MAX: u64 = 8192;
    let mut env = Env::new("rot");
    env.start_with(&["--log-max-size", &MAX.to_string(), "--log-max-files", "3"]);
    let mut sub = Client::connect(&env.sock()).unwrap();
    sub.stream()
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    assert!(sub.call(&Request::Subscribe).unwrap().ok);
    env.create(
        "c",
        "i=0; while [ $i -lt 3000 ]; do echo \"line $i\"; i=$((i+1)); done\n",
    );
    env.call(Request::StartContainer { id: "c".into() })
        .into_result()
        .unwrap();
    assert_eq!(next_exit(&mut sub, "c"), (0, None));
    let log = PathBuf::from(env.log_path("c"));
    // The exit may come before the last output is read: wait for the last line.
    wait_until("the last line", Duration::from_secs(10), || {
        fs::read_to_string(&log).is_ok_and(|t| t.ends_with(" stdout F line 2999\n"))
    });
    let rotated = podhost_shim::logrotate::rotated_files(&log).unwrap();
    assert_eq!(rotated.len(), 2, "{rotated:?}");
    let mut numbers = Vec::new();
    for f in rotated.iter().chain([&log]) {
        let text = fs::read_to_string(f).unwrap();
        assert!(text.len() as u64 <= MAX, "{f:?} has {} bytes", text.len());
        for l in text.lines() {
            let (stream, tag, text) = parse_cri(l);
            assert_eq!((stream.as_str(), tag.as_str()), ("stdout", "F"), "{l}");
            numbers.push(text.strip_prefix("line ").unwrap().parse::<u32>().unwrap());
        }
    }
    // Older lines went with the removed files: what is left is a contiguous tail.
    let first = numbers[0];
    assert!(first > 0, "nothing rotated away");
    assert_eq!(numbers, (first..3000).collect::<Vec<_>>());
    let names: Vec<String> = fs::read_dir(log.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    for n in &names {
        assert!(n == "0.log" || n.starts_with("0.log.20"), "{names:?}");
    }
}

#[test]
fn start_failures_are_reported() {
    let env = Env::new("fail");
    let out = env
        .shim_cmd(Path::new("/nonexistent/pause"), &env.netns)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pause binary /nonexistent/pause"), "{err}");
    assert!(out.stdout.is_empty());

    let out = env
        .shim_cmd(&pause_bin(), Path::new("/run/netns/does-not-exist"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/run/netns/does-not-exist"), "{err}");

    let out = Command::new(shim_bin()).arg("--id").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    wait_until("no leftovers", Duration::from_secs(5), || {
        env.leftovers().is_empty()
    });
}

#[test]
fn reopen_log_writes_to_a_new_file_after_a_rename() {
    let mut env = Env::new("reopen");
    env.start();
    let r = env.call(Request::ReopenLog { id: "nope".into() });
    assert_eq!(r.code, Some(ErrorCode::NotFound), "{r:?}");
    env.create(
        "c",
        "i=0; while :; do i=$((i+1)); echo line$i; sleep 0.05; done\n",
    );
    let r = env.call(Request::ReopenLog { id: "c".into() });
    assert_eq!(
        r.code,
        Some(ErrorCode::FailedPrecondition),
        "created: {r:?}"
    );
    env.call(Request::StartContainer { id: "c".into() })
        .into_result()
        .unwrap();
    let log = env.log_path("c");
    read_log(&log, 2);
    let rotated = format!("{log}.1");
    fs::rename(&log, &rotated).unwrap();
    env.call(Request::ReopenLog { id: "c".into() })
        .into_result()
        .unwrap();
    let new = read_log(&log, 2);
    let old_len = fs::read_to_string(&rotated).unwrap().lines().count();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        fs::read_to_string(&rotated).unwrap().lines().count(),
        old_len,
        "the rotated file is left alone"
    );
    // Nothing lost or repeated across the switch: the numbers go on where the old file
    // ended.
    let last_old = fs::read_to_string(&rotated)
        .unwrap()
        .lines()
        .last()
        .map(parse_cri)
        .unwrap()
        .2;
    let first_new = parse_cri(&new[0]).2;
    let n = |s: &str| s.trim_start_matches("line").parse::<u32>().unwrap();
    assert_eq!(n(&first_new), n(&last_old) + 1);
    env.call(Request::Signal {
        id: "c".into(),
        signal: 9,
    })
    .into_result()
    .unwrap();
}

#[test]
fn an_abandoned_exec_session_kills_its_command() {
    let mut env = Env::new("abandon");
    env.start();
    env.create("c", "exec sleep 1000\n");
    env.call(Request::StartContainer { id: "c".into() })
        .into_result()
        .unwrap();
    // A marker no other test's process carries.
    let marker = format!("{}", 3_000_000 + std::process::id());
    let running = || {
        fs::read_dir("/proc").unwrap().flatten().any(|e| {
            fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| c == format!("sleep\0{marker}\0").as_bytes())
        })
    };
    let mut c = Client::connect(&env.sock()).unwrap();
    c.call(&Request::Exec {
        id: "c".into(),
        cmd: vec!["sleep".into(), marker.clone()],
        tty: false,
        size: None,
    })
    .unwrap()
    .into_result()
    .unwrap();
    wait_until("the command runs", Duration::from_secs(10), &running);
    // The client goes away (an exec_sync past its timeout drops its session).
    drop(c);
    wait_until("the command is gone", Duration::from_secs(10), || {
        !running()
    });
    env.call(Request::Signal {
        id: "c".into(),
        signal: 9,
    })
    .into_result()
    .unwrap();
}

/// A create whose helper takes long holds up neither the shim's other answers nor the
/// other creates of the pod; its own client gets its answer when the helper is done.
#[test]
fn a_slow_create_holds_up_no_other_request() {
    let mut env = Env::new("overlap");
    env.start();
    let slow = PathBuf::from(env.bundle("slow", "exec sleep 1000\n"));
    fs::write(slow.join("gate"), "").unwrap();
    let (sock, log) = (env.sock(), env.log_path("slow"));
    let req = Request::CreateContainer {
        id: "slow".into(),
        bundle: slow.to_str().unwrap().into(),
        log_path: log,
        tty: false,
        stdin: false,
        stdin_once: false,
    };
    let again = req.clone();
    let waiting = std::thread::spawn(move || proto::call(&sock, &req));
    wait_until("the slow helper runs", Duration::from_secs(10), || {
        slow.join("entered").exists()
    });
    // Meanwhile: another create, a status, and the same id again.
    let fast = env.create("fast", "exec sleep 1000\n");
    let st = env.call(Request::Status).into_result().unwrap();
    let st = st.containers.unwrap_or_default();
    let ids: Vec<&str> = st.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["fast"], "{st:?}");
    let r = env.call(again);
    assert_eq!(r.code, Some(ErrorCode::AlreadyExists), "{r:?}");
    assert!(!waiting.is_finished(), "answered before its helper exited");
    fs::write(slow.join("open"), "").unwrap();
    let r = waiting.join().unwrap().unwrap().into_result().unwrap();
    let slow_pid = r.pid.unwrap();
    env.pids.push(slow_pid);
    for id in ["slow", "fast"] {
        env.call(Request::StartContainer { id: id.into() })
            .into_result()
            .unwrap();
    }
    let st = env.call(Request::Status).into_result().unwrap();
    let st = st.containers.unwrap_or_default();
    for (id, pid) in [("slow", slow_pid), ("fast", fast)] {
        let c = st.iter().find(|c| c.id == id).unwrap();
        assert_eq!((c.pid, c.state), (pid, ContainerState::Running), "{st:?}");
    }
    env.call(Request::Shutdown { removing: false })
        .into_result()
        .unwrap();
    wait_until("no leftovers", Duration::from_secs(10), || {
        env.leftovers().is_empty()
    });
}

/// A container's init that dies before its create helper has exited (the shim reaps it
/// first, not knowing it yet) is reported exited with its code once created.
#[test]
fn an_init_dying_during_its_create_is_reported_exited() {
    let mut env = Env::new("early");
    env.start();
    let mut sub = Client::connect(&env.sock()).unwrap();
    sub.stream()
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    sub.call(&Request::Subscribe)
        .unwrap()
        .into_result()
        .unwrap();
    let b = PathBuf::from(env.bundle("early", "exit 0\n"));
    fs::write(b.join("die-early"), "").unwrap();
    env.create("early", "");
    assert_eq!(next_exit(&mut sub, "early"), (7, None));
    let st = env.call(Request::Status).into_result().unwrap();
    let st = st.containers.unwrap_or_default();
    let c = st.iter().find(|c| c.id == "early").unwrap();
    assert_eq!(
        (c.state, c.exit_code),
        (ContainerState::Exited, Some(7)),
        "{st:?}"
    );
    let r = env.call(Request::StartContainer { id: "early".into() });
    assert_eq!(r.code, Some(ErrorCode::FailedPrecondition), "{r:?}");
    env.call(Request::Shutdown { removing: false })
        .into_result()
        .unwrap();
    wait_until("no leftovers", Duration::from_secs(10), || {
        env.leftovers().is_empty()
    });
}

#[test]
fn sigterm_shuts_the_pod_down() {
    let mut env = Env::new("term");
    let (pause, shim) = env.start();
    let c = env.create("c", "exec sleep 1000\n");
    env.call(Request::StartContainer { id: "c".into() })
        .into_result()
        .unwrap();
    unsafe { libc::kill(shim, libc::SIGTERM) };
    wait_until("everything gone", Duration::from_secs(10), || {
        !alive(shim) && !alive(pause) && !alive(c)
    });
    assert!(!env.sock().exists());
    assert_eq!(env.leftovers(), Vec::<String>::new());
}

/// Subscribers get an `alive` event at once and then every `--heartbeat-ms`, between
/// exits too; a stopped shim sends none (what the daemon's staleness check relies on).
#[test]
fn subscribers_get_a_heartbeat_while_the_loop_runs() {
    let mut env = Env::new("beat");
    let (_pause, shim) = env.start_with(&["--heartbeat-ms", "200"]);
    let mut sub = Client::connect(&env.sock()).unwrap();
    sub.stream()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    sub.call(&Request::Subscribe)
        .unwrap()
        .into_result()
        .unwrap();
    assert_eq!(sub.next_event().unwrap(), Event::Alive, "the first at once");
    for _ in 0..3 {
        assert_eq!(sub.next_event().unwrap(), Event::Alive);
    }
    // An exit in between comes as it happens, and the beat goes on.
    env.create("c", "exit 4\n");
    env.call(Request::StartContainer { id: "c".into() })
        .into_result()
        .unwrap();
    assert_eq!(next_exit(&mut sub, "c"), (4, None));
    assert_eq!(sub.next_event().unwrap(), Event::Alive);
    // Stopped, it goes silent; continued, it beats again.
    unsafe { libc::kill(shim, libc::SIGSTOP) };
    wait_until("the shim stopped", Duration::from_secs(5), || {
        status_field(shim, "State").starts_with('T')
    });
    // What it sent before it stopped is still on the way: take it.
    sub.stream()
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    while sub.next_event().is_ok() {}
    sub.stream()
        .set_read_timeout(Some(Duration::from_millis(600)))
        .unwrap();
    let err = sub.next_event().expect_err("a stopped shim sends nothing");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    unsafe { libc::kill(shim, libc::SIGCONT) };
    sub.stream()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(sub.next_event().unwrap(), Event::Alive);
    // Bad values are refused at start.
    let out = env
        .shim_cmd(&pause_bin(), &env.netns.clone())
        .args(["--heartbeat-ms", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--heartbeat-ms"));
}

/// Not a test on its own: the fake runc runs this test binary with
/// `PODHOST_FAKE_CONSOLE` set to do what libcontainer does for `exec --console-socket`:
/// a pty whose slave is the controlling terminal and stdio of a new session running the
/// command, and whose master goes to the console socket over SCM_RIGHTS.
#[test]
fn fake_console_helper() {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::net::UnixStream;
    use std::os::unix::process::CommandExt;
    let Some(sock) = std::env::var_os("PODHOST_FAKE_CONSOLE") else {
        return;
    };
    let cmd = std::env::var("PODHOST_FAKE_CONSOLE_CMD").unwrap();
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: out-pointers to two ints; no name, default termios and size.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "openpty");
    // SAFETY: openpty returned two fresh descriptors.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let conn = UnixStream::connect(&sock).unwrap();
    // Send the master first, as libcontainer does before the process runs its command.
    let name = b"/dev/ptmx";
    let mut iov = libc::iovec {
        iov_base: name.as_ptr() as *mut libc::c_void,
        iov_len: name.len(),
    };
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data; the buffers outlive the call; the libc macros
    // fill one SCM_RIGHTS header inside `control`.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<i32>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<i32>(), master.as_raw_fd());
        assert!(libc::sendmsg(conn.as_raw_fd(), &msg, 0) >= 0, "sendmsg");
    }
    drop((conn, master));
    let mut child = Command::new("sh");
    child
        .args(["-c", &cmd])
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave));
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        child.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let status = child.status().unwrap();
    std::process::exit(status.code().unwrap_or(128 + 9));
}

/// Reads STDOUT frames until `want` shows; panics on other frames than STDOUT/STDERR.
fn read_until(c: &mut Client, seen: &mut String, want: &str) {
    while !seen.contains(want) {
        let (kind, payload) = frame::read(c.frames_reader())
            .unwrap()
            .unwrap_or_else(|| panic!("EOF before {want:?}; got {seen:?}"));
        match kind {
            frame::STDOUT => seen.push_str(&String::from_utf8_lossy(&payload)),
            k => panic!("unexpected frame {k} before {want:?}; got {seen:?}"),
        }
    }
}

#[test]
fn tty_exec_relays_a_terminal_with_its_size() {
    let mut env = Env::new("tty");
    env.start();
    env.create("c1", "exec sleep 1000\n");
    env.call(Request::StartContainer { id: "c1".into() })
        .into_result()
        .unwrap();

    let mut c = Client::connect(&env.sock()).unwrap();
    c.stream()
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // The command waits for a first line: by then the shim has set the initial size.
    let script = "read a; stty size; echo err-$a >&2; [ -t 2 ] && echo tty-ok; \
                  read b; stty size; exit 4";
    c.call(&Request::Exec {
        id: "c1".into(),
        cmd: vec![script.into()],
        tty: true,
        size: Some(proto::TerminalSize {
            width: 100,
            height: 30,
        }),
    })
    .unwrap()
    .into_result()
    .unwrap();
    frame::write(c.frames_writer(), frame::STDIN, b"go\n").unwrap();
    let mut seen = String::new();
    read_until(&mut c, &mut seen, "30 100");
    // stderr comes through the terminal, as stdout frames.
    read_until(&mut c, &mut seen, "err-go");
    read_until(&mut c, &mut seen, "tty-ok");
    // Frames apply in order: the resize is done before the next line is written.
    let mut frames = Vec::new();
    let size = proto::TerminalSize {
        width: 132,
        height: 50,
    };
    frame::encode(&mut frames, frame::RESIZE, &frame::resize_payload(size));
    // A terminal has no end of input: the session goes on.
    frame::encode(&mut frames, frame::STDIN_CLOSE, &[]);
    frame::encode(&mut frames, frame::STDIN, b"x\n");
    use std::io::Write;
    c.frames_writer().write_all(&frames).unwrap();
    read_until(&mut c, &mut seen, "50 132");
    let code = loop {
        let (kind, payload) = frame::read(c.frames_reader()).unwrap().expect("exit frame");
        if kind == frame::EXIT {
            break i32::from_be_bytes(payload[..4].try_into().unwrap());
        }
    };
    assert_eq!(code, 4, "{seen}");

    // The helper failing before it has a terminal: an error answer with its message.
    let r = env.call(Request::Exec {
        id: "c1".into(),
        cmd: vec!["fail-before-console".into()],
        tty: true,
        size: None,
    });
    let e = r.error.unwrap_or_default();
    assert!(!r.ok && e.contains("no such command in image"), "{e}");
    // Neither console sockets nor error files are left.
    let left: Vec<String> = fs::read_dir(env.state())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("tty"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    env.call(Request::Shutdown { removing: false })
        .into_result()
        .unwrap();
}

/// `name:` of /proc/<pid>/status, trimmed ("" when absent).
fn status_field(pid: i32, name: &str) -> String {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

/// Everything issue 12 asks of the pause: see crates/shim/src/pause.rs.
fn assert_locked_down(env: &Env, pause: i32, shim: i32) {
    // The seccomp filter is the pause's first act in main.
    wait_until("pause's seccomp filter", Duration::from_secs(5), || {
        status_field(pause, "Seccomp") == "2"
    });
    for (field, want) in [
        ("Uid", "65535\t65535\t65535\t65535"),
        ("Gid", "65535\t65535\t65535\t65535"),
        ("Groups", ""),
        ("CapInh", "0000000000000000"),
        ("CapPrm", "0000000000000000"),
        ("CapEff", "0000000000000000"),
        ("CapBnd", "0000000000000000"),
        ("CapAmb", "0000000000000000"),
        ("NoNewPrivs", "1"),
        ("Seccomp_filters", "1"),
    ] {
        assert_eq!(status_field(pause, field), want, "{field} of the pause");
    }
    // Not dumpable: its /proc files are root's, so a container that happens to run as
    // 65535 can neither ptrace it nor open them.
    let environ = format!("/proc/{pause}/environ");
    assert_eq!(fs::metadata(&environ).unwrap().uid(), 0);
    assert_eq!(fs::read(&environ).unwrap(), b"", "empty environment");

    let p = pause.to_string();
    assert_ne!(
        ns_ino(&p, "mnt"),
        ns_ino("self", "mnt"),
        "mnt ns of the host"
    );
    assert_ne!(
        ns_ino(&p, "mnt"),
        ns_ino(&shim.to_string(), "mnt"),
        "mnt ns of the shim"
    );
    // Its root: a read-only tmpfs holding only the binary, itself a read-only bind.
    let root = PathBuf::from(format!("/proc/{pause}/root"));
    let names: Vec<String> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["pause"], "the pause's root");
    let mounts = fs::read_to_string(format!("/proc/{pause}/mountinfo")).unwrap();
    // By mount point: the kernel lists them in the order they were made.
    let mut mounts: Vec<(&str, &str, &str)> = mounts
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let fstype = f[f.iter().position(|x| *x == "-").unwrap() + 1];
            (f[4], f[5], fstype)
        })
        .collect();
    mounts.sort();
    assert_eq!(mounts.len(), 2, "{mounts:?}");
    assert_eq!(mounts[0], ("/", "ro,nosuid,nodev,noexec,relatime", "tmpfs"));
    assert_eq!(
        (mounts[1].0, &mounts[1].1[..15]),
        ("/pause", "ro,nosuid,nodev")
    );
    let err = fs::write(root.join("planted"), "x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    // The binary cannot be replaced through /proc/<pause>/exe: EROFS, whether or not
    // it is running (ETXTBSY would only hold while it runs).
    for path in [
        format!("/proc/{pause}/exe"),
        format!("/proc/{pause}/root/pause"),
    ] {
        let err = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{path}: {err}");
    }
    assert_eq!(
        fs::read_link(format!("/proc/{pause}/cwd")).unwrap(),
        Path::new("/")
    );
    assert_eq!(
        fs::read_link(format!("/proc/{pause}/exe")).unwrap(),
        Path::new("/pause")
    );
    let mut fds: Vec<(String, PathBuf)> = fs::read_dir(format!("/proc/{pause}/fd"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read_link(e.path()).unwrap(),
            )
        })
        .collect();
    fds.sort();
    let null = PathBuf::from("/dev/null");
    assert_eq!(
        fds,
        [
            ("0".into(), null.clone()),
            ("1".into(), null.clone()),
            ("2".into(), null)
        ]
    );
    // Nothing of the pause's mounts reached the host, although the test dir is shared.
    assert_eq!(env.host_mounts().len(), 1, "{:?}", env.host_mounts());
}

#[test]
fn pause_runs_locked_down() {
    let mut env = Env::new("lock");
    env.share_dir();
    // The binary under the directory the pause's root tmpfs covers: it is reached
    // through a descriptor, not its path. A copy, so that a failure cannot harm the build.
    fs::create_dir_all(env.state()).unwrap();
    let pause_copy = env.state().join("pause-copy");
    fs::copy(pause_bin(), &pause_copy).unwrap();
    let cmd = env.shim_cmd(&pause_copy, &env.netns.clone());
    let (pause, shim) = env.start_cmd(cmd);
    assert_locked_down(&env, pause, shim);
    // Still PID 1 of its own PID namespace, holding the pod's net/ipc/uts.
    assert!(status_field(pause, "NSpid").ends_with("\t1"));
    for ns in ["net", "ipc", "uts", "pid"] {
        assert_ne!(ns_ino(&pause.to_string(), ns), ns_ino("self", ns), "{ns}");
    }
    env.call(Request::Shutdown { removing: false })
        .into_result()
        .unwrap();
    wait_until("shim and pause gone", Duration::from_secs(10), || {
        !alive(shim) && !alive(pause)
    });
    assert_eq!(env.leftovers(), Vec::<String>::new());
    assert_eq!(env.host_mounts().len(), 1, "{:?}", env.host_mounts());
}

#[test]
fn pause_with_the_hosts_namespaces_is_locked_down_too() {
    let mut env = Env::new("lockhost");
    env.share_dir();
    let mut cmd = env.shim_cmd(&pause_bin(), &env.netns.clone());
    cmd.args(["--host-pid", "--host-ipc", "--host-uts"]);
    let (pause, shim) = env.start_cmd(cmd);
    assert_locked_down(&env, pause, shim);
    let p = pause.to_string();
    for ns in ["pid", "ipc", "uts"] {
        assert_eq!(ns_ino(&p, ns), ns_ino("self", ns), "{ns} is the host's");
    }
    assert_eq!(ns_ino(&p, "net"), fs::metadata(&env.netns).unwrap().ino());
    assert_eq!(
        status_field(pause, "NSpid"),
        p,
        "one PID namespace: the host's"
    );
    env.call(Request::Shutdown { removing: false })
        .into_result()
        .unwrap();
    wait_until("shim and pause gone", Duration::from_secs(10), || {
        !alive(shim) && !alive(pause)
    });
}

/// An attach session: the shim's answer, then frames.
fn attach(env: &Env, id: &str, stdin: bool, stdout: bool, stderr: bool) -> Client {
    let mut c = Client::connect(&env.sock()).unwrap();
    c.stream()
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    c.call(&Request::Attach {
        id: id.into(),
        stdin,
        stdout,
        stderr,
    })
    .unwrap()
    .into_result()
    .unwrap();
    c
}

/// Reads frames until stdout and stderr contain `out` and `err`; returns the frames'
/// text so far by kind. Panics on EXIT or EOF before.
fn read_both(c: &mut Client, out: &str, err: &str) -> (String, String) {
    let (mut o, mut e) = (String::new(), String::new());
    while !(o.contains(out) && e.contains(err)) {
        let (kind, payload) = frame::read(c.frames_reader())
            .unwrap()
            .unwrap_or_else(|| panic!("EOF before {out:?}/{err:?}; got {o:?}/{e:?}"));
        let text = String::from_utf8_lossy(&payload);
        match kind {
            frame::STDOUT => o.push_str(&text),
            frame::STDERR => e.push_str(&text),
            k => panic!("frame {k} before {out:?}/{err:?}; got {o:?}/{e:?}"),
        }
    }
    (o, e)
}

/// Reads frames to the end: (stdout text, exit code if an EXIT frame came).
fn read_to_end(c: &mut Client) -> (String, Option<i32>) {
    let mut out = String::new();
    loop {
        match frame::read(c.frames_reader()).unwrap() {
            None => return (out, None),
            Some((frame::STDOUT, p)) => out.push_str(&String::from_utf8_lossy(&p)),
            Some((frame::EXIT, p)) => {
                let code = i32::from_be_bytes(p[..4].try_into().unwrap());
                assert!(frame::read(c.frames_reader()).unwrap().is_none());
                return (out, Some(code));
            }
            Some(_) => {}
        }
    }
}

fn send(c: &mut Client, kind: u8, payload: &[u8]) {
    frame::write(c.frames_writer(), kind, payload).unwrap();
}

#[test]
fn attach_relays_a_containers_stdio_and_stdin_once_closes_it() {
    let mut env = Env::new("attach");
    env.start();
    let script = "while read l; do echo \"got $l\"; echo \"err $l\" >&2; done; echo bye; exit 7\n";
    env.create_with("c1", script, false, true, true);
    // Not running yet: nothing to attach to.
    let r = env.call(Request::Attach {
        id: "c1".into(),
        stdin: true,
        stdout: true,
        stderr: false,
    });
    assert_eq!(r.code, Some(ErrorCode::FailedPrecondition), "{r:?}");
    env.call(Request::StartContainer { id: "c1".into() })
        .into_result()
        .unwrap();
    let mut sub = Client::connect(&env.sock()).unwrap();
    sub.call(&Request::Subscribe)
        .unwrap()
        .into_result()
        .unwrap();

    let mut a = attach(&env, "c1", true, true, true);
    // A second client watching stdout only sees what the first one's input caused.
    let mut watcher = attach(&env, "c1", false, true, false);
    send(&mut a, frame::STDIN, b"one\n");
    read_both(&mut a, "got one\n", "err one\n");
    let (seen, _) = read_both(&mut watcher, "got one\n", "");
    assert!(!seen.contains("err"), "{seen}");
    // Without stdin, a client's input and end of input change nothing.
    send(&mut watcher, frame::STDIN, b"ignored\n");
    send(&mut watcher, frame::STDIN_CLOSE, &[]);
    send(&mut a, frame::STDIN, b"two\n");
    read_both(&mut a, "got two\n", "err two\n");
    read_both(&mut watcher, "got two\n", "");
    // stdin_once: the first session's end of input is the container's.
    send(&mut a, frame::STDIN_CLOSE, &[]);
    let (out, code) = read_to_end(&mut a);
    assert_eq!((out.as_str(), code), ("bye\n", Some(7)));
    let (out, code) = read_to_end(&mut watcher);
    assert_eq!((out.as_str(), code), ("bye\n", Some(7)));
    assert_eq!(next_exit(&mut sub, "c1"), (7, None));
    // Everything also went to the log, as always.
    let lines = read_log(&env.log_path("c1"), 5);
    let texts: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            let (stream, _, text) = parse_cri(l);
            (stream, text)
        })
        .collect();
    for want in [
        ("stdout", "got one"),
        ("stderr", "err one"),
        ("stdout", "got two"),
        ("stdout", "bye"),
    ] {
        assert!(
            texts.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} not in {texts:?}"
        );
    }
    assert!(
        !texts.iter().any(|(_, t)| t.contains("ignored")),
        "{texts:?}"
    );
    // An exited container cannot be attached to.
    let r = env.call(Request::Attach {
        id: "c1".into(),
        stdin: false,
        stdout: true,
        stderr: false,
    });
    assert_eq!(r.code, Some(ErrorCode::FailedPrecondition), "{r:?}");
    env.call(Request::Shutdown { removing: false })
        .into_result()
        .unwrap();
}

/// The last `n` bytes of a file (empty if it is not there yet).
fn tail(path: &str, n: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(n)));
    let mut s = String::new();
    let _ = f.read_to_string(&mut s);
    s
}

#[test]
fn an_attach_client_that_stops_reading_is_dropped_and_the_container_goes_on() {
    let mut env = Env::new("attachflood");
    env.start();
    // 24 MiB of output once told to, three times what the shim queues for a client.
    let flood = 24 << 20;
    let script = format!(
        "read go; yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c {flood}; echo; echo flood-done; exec sleep 600\n"
    );
    env.create_with("c1", &script, false, true, false);
    env.call(Request::StartContainer { id: "c1".into() })
        .into_result()
        .unwrap();
    let mut hostile = attach(&env, "c1", true, true, true);
    send(&mut hostile, frame::STDIN, b"go\n");
    // The client reads nothing; the container writes all of it anyway (into its log).
    let log = env.log_path("c1");
    wait_until(
        "the flood's end in the log",
        Duration::from_secs(120),
        || tail(&log, 4096).contains("flood-done"),
    );
    // The shim dropped the client: what was queued for it, then the end of the stream,
    // no exit frame (the container still runs).
    // (It may end inside a frame: the queue is dropped as it is.)
    let mut got = 0usize;
    loop {
        match frame::read(hostile.frames_reader()) {
            Ok(None) => break,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Ok(Some((frame::STDOUT, p))) => got += p.len(),
            other => panic!("{other:?} in a flood"),
        }
    }
    assert!(got < flood, "the whole flood was queued: {got} bytes");
    // The shim serves on, and the container runs.
    let mut late = attach(&env, "c1", true, true, false);
    send(&mut late, frame::STDIN, b"still-here\n");
    let r = env.call(Request::Attach {
        id: "c1".into(),
        stdin: false,
        stdout: true,
        stderr: false,
    });
    assert!(r.code.is_none(), "{r:?}");
    env.call(Request::Shutdown { removing: false })
        .into_result()
        .unwrap();
}

#[test]
fn attach_sessions_end_without_closing_stdin_unless_stdin_once() {
    let mut env = Env::new("attach2");
    env.start();
    env.create_with(
        "c1",
        "while read l; do echo \"got $l\"; done; exit 5\n",
        false,
        true,
        false,
    );
    env.call(Request::StartContainer { id: "c1".into() })
        .into_result()
        .unwrap();
    let mut a = attach(&env, "c1", true, true, false);
    send(&mut a, frame::STDIN, b"one\n");
    read_both(&mut a, "got one\n", "");
    // The client's end of input ends its own session only: no exit code, container on.
    send(&mut a, frame::STDIN_CLOSE, &[]);
    assert_eq!(read_to_end(&mut a), (String::new(), None));
    // A client that goes away does not close the container's stdin either.
    let mut b = attach(&env, "c1", true, true, false);
    send(&mut b, frame::STDIN, b"two\n");
    read_both(&mut b, "got two\n", "");
    drop(b);
    let mut c = attach(&env, "c1", true, true, false);
    send(&mut c, frame::STDIN, b"three\n");
    read_both(&mut c, "got three\n", "");
    let st = env.call(Request::Status);
    let running = st.containers.unwrap_or_default();
    assert_eq!(running[0].state, ContainerState::Running);
    env.call(Request::Signal {
        id: "c1".into(),
        signal: libc::SIGKILL,
    })
    .into_result()
    .unwrap();
    assert_eq!(read_to_end(&mut c), (String::new(), Some(137)));
    env.call(Request::Shutdown { removing: false })
        .into_result()
        .unwrap();
}

#[test]
fn a_tty_container_is_attached_through_its_terminal() {
    let mut env = Env::new("attachtty");
    env.start();
    let script = "read a; stty size; echo out-$a; echo err-$a >&2; [ -t 0 ] && echo is-tty; \
                  read b; echo bye-$b; exit 3\n";
    env.create_with("c1", script, true, true, true);
    env.call(Request::StartContainer { id: "c1".into() })
        .into_result()
        .unwrap();
    let mut a = attach(&env, "c1", true, true, false);
    let size = proto::TerminalSize {
        width: 100,
        height: 30,
    };
    send(&mut a, frame::RESIZE, &frame::resize_payload(size));
    send(&mut a, frame::STDIN, b"x\n");
    // One stream: stderr comes through the terminal too.
    let mut seen = String::new();
    read_until(&mut a, &mut seen, "30 100");
    read_until(&mut a, &mut seen, "out-x");
    read_until(&mut a, &mut seen, "err-x");
    read_until(&mut a, &mut seen, "is-tty");
    // A terminal's input has no end: the session ends, the container reads on (even
    // with stdin_once, as with containerd).
    send(&mut a, frame::STDIN_CLOSE, &[]);
    let (_, code) = read_to_end(&mut a);
    assert_eq!(code, None);
    let mut b = attach(&env, "c1", true, true, false);
    send(&mut b, frame::STDIN, b"y\n");
    let (out, code) = read_to_end(&mut b);
    assert!(out.contains("bye-y"), "{out}");
    assert_eq!(code, Some(3));
    // The terminal's output is logged as stdout.
    let lines = read_log(&env.log_path("c1"), 4);
    assert!(
        lines
            .iter()
            .any(|l| parse_cri(l).0 == "stdout" && l.contains("err-x")),
        "{lines:?}"
    );
    // No console socket is left.
    let left: Vec<String> = fs::read_dir(env.state())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("tty"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    env.call(Request::Shutdown { removing: false })
        .into_result()
        .unwrap();
}

/// A shutdown before the sandbox's removal kills the containers (running and created)
/// and the pause but leaves their deletion to the caller: no helper runs for them.
#[test]
fn a_shutdown_for_removal_kills_but_deletes_nothing() {
    let mut env = Env::new("rmshut");
    let (pause, shim) = env.start();
    let running = env.create("run", "sleep 1000\n");
    env.call(Request::StartContainer { id: "run".into() })
        .into_result()
        .unwrap();
    let created = env.create("made", "sleep 1000\n");
    env.call(Request::Shutdown { removing: true })
        .into_result()
        .unwrap();
    wait_until(
        "shim, pause and containers gone",
        Duration::from_secs(10),
        || !alive(shim) && !alive(pause) && !alive(running) && !alive(created),
    );
    assert_eq!(env.leftovers(), Vec::<String>::new());
    // The fake runtime's state of both is still there: no `delete` ran.
    for id in ["run", "made"] {
        assert!(env.dir.join("runc-root").join(id).exists(), "{id} deleted");
    }
}
