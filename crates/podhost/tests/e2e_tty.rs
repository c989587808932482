//! End-to-end: `podhost exec -it` driven through a real pseudo-terminal, as a user at a
//! terminal does (root). The CLI runs as the session leader of a pty this test owns;
//! the test types on the master side and reads what the terminal shows.

mod common;

use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::terminal::{canonical, winsize, Terminal, PATIENCE};
use common::Env;

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: tty
spec:
  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
"#;

fn start_pod() -> Env {
    let env = Env::new();
    env.apply("tty.yaml", POD);
    env.wait_ready("tty");
    env
}

/// No exec helper, console socket or libcontainer console link outlives a session.
fn assert_sessions_gone(env: &Env) {
    let root = env.root.display().to_string();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut left = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(&root) && cmd.contains(" exec ") && common::alive(pid) {
                left.push(format!("process {pid}: {cmd}"));
            }
        }
        for dir in walk(&env.root.join("run")) {
            let name = dir.file_name().unwrap_or_default().to_string_lossy();
            if name.starts_with("tenant-tty-")
                || (name.starts_with("tty") && !name.ends_with(".log"))
            {
                left.push(format!("file left: {}", dir.display()));
            }
        }
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "left after the exec sessions:\n{}",
            left.join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Pids whose command line is exactly `cmdline` (NUL-separated).
fn pids_running(cmdline: &[u8]) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == cmdline)
                && common::alive(*pid)
        })
        .collect()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn exec_it_runs_a_shell_on_a_terminal() {
    let env = start_pod();
    let mut t = Terminal::spawn(
        &env,
        &["exec", "-it", "tty", "-c", "main", "--", "sh"],
        winsize(33, 111),
    );
    // busybox sh's prompt for root.
    t.wait_for(0, "# ");
    // The CLI switched the local terminal to raw mode.
    assert!(
        !canonical(&t.local_mode()),
        "local terminal not in raw mode"
    );

    // A terminal inside the container, on stdin, stdout and stderr alike.
    let end = t.run("tty", "/dev/pts/");
    // The rest of the line may come in a later read.
    t.wait_for(end, "\r\n");
    let screen = t.screen();
    let n: String = screen[end..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    assert!(!n.is_empty(), "tty printed no /dev/pts/N:\n{screen}");
    t.run(
        "[ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo tty-$((40+2))",
        "tty-42",
    );
    t.run("readlink /proc/self/fd/2", &format!("/dev/pts/{n}"));
    t.run("echo TERM=$TERM", "TERM=xterm");
    // A session leader, with the pty as controlling terminal (fields 6 and 7 of stat).
    t.run(
        "set -- $(cat /proc/$$/stat); [ \"$6\" = $$ ] && [ \"$7\" != 0 ] && echo ctty-$((1+2))",
        "ctty-3",
    );
    // stderr comes through the terminal (the CLI's own stderr is a pipe here).
    t.run("echo err-$((6*7)) >&2", "err-42");

    // The size the local terminal had at the start.
    t.run("stty size", "33 111");
    // A resize of the local terminal (the kernel sends the CLI SIGWINCH) reaches the pty.
    // The new size travels apart from the keys, so ask until it has arrived.
    let ws = winsize(50, 132);
    // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
    let r = unsafe { libc::ioctl(t.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    assert_eq!(r, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
    let deadline = Instant::now() + PATIENCE;
    loop {
        let from = t.len();
        t.type_keys("stty size\r");
        let end = t.wait_for(from, "# ");
        if t.screen()[from..end].contains("50 132") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stty size never showed 50 132:\n{}",
            t.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Ctrl-C at the shell's foreground job interrupts the job, not the shell.
    t.type_keys("sleep 1019\r");
    let deadline = Instant::now() + PATIENCE;
    while pids_running(b"sleep\x001019\x00").is_empty() {
        assert!(Instant::now() < deadline, "sleep 1019 never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let from = t.len();
    t.type_keys("\x03");
    t.wait_for(from, "# ");
    t.run("echo status-$?", "status-130");

    // The exit code of the session is the shell's.
    t.type_keys("exit 7\r");
    let (code, err) = t.finish_keep_mode_check();
    assert_eq!(code, 7, "exit code");
    assert_eq!(err, "", "the CLI's stderr");
    assert_sessions_gone(&env);
    env.teardown();
}

impl Terminal {
    /// [`Terminal::finish`], then checks the CLI gave the local terminal its settings back.
    fn finish_keep_mode_check(self) -> (i32, String) {
        let master = self.master.try_clone().expect("dup master");
        let r = self.finish();
        let mode = nix::sys::termios::tcgetattr(&master).expect("tcgetattr");
        assert!(canonical(&mode), "local terminal left in raw mode");
        r
    }
}

#[test]
fn exec_it_exit_code_ctrl_c_and_the_non_tty_path() {
    let env = start_pod();

    // The exit code of a command on a TTY.
    let t = Terminal::spawn(
        &env,
        &[
            "exec",
            "-it",
            "tty",
            "--",
            "sh",
            "-c",
            "echo hi-$((1+1)); exit 7",
        ],
        winsize(24, 80),
    );
    t.wait_for(0, "hi-2");
    let (code, err) = t.finish_keep_mode_check();
    assert_eq!(code, 7);
    assert_eq!(err, "");

    // Ctrl-C is a key like any other for the local terminal (raw mode); the container's
    // line discipline turns it into SIGINT for the foreground process, which ends.
    let mut t = Terminal::spawn(
        &env,
        &[
            "exec",
            "-it",
            "tty",
            "--",
            "sh",
            "-c",
            "echo sleep-$((2+2)); exec sleep 100",
        ],
        winsize(24, 80),
    );
    // Output shows only once the CLI is in raw mode, so the key goes to the container.
    t.wait_for(0, "sleep-4");
    t.type_keys("\x03");
    let (code, err) = t.finish_keep_mode_check();
    assert_eq!(code, 128 + libc::SIGINT, "sleep ends by SIGINT");
    assert_eq!(err, "");

    // The CLI told to stop (SIGTERM) mid-session: it gives the terminal back, and its
    // going away hangs the session up, which ends the process in the container.
    let t = Terminal::spawn(
        &env,
        &[
            "exec",
            "-it",
            "tty",
            "--",
            "sh",
            "-c",
            "echo up-$((3+3)); exec sleep 1017",
        ],
        winsize(24, 80),
    );
    t.wait_for(0, "up-6");
    // The echo comes before the exec: wait for the sleep itself.
    let deadline = Instant::now() + PATIENCE;
    let sleeper = loop {
        let found = pids_running(b"sleep\x001017\x00");
        if !found.is_empty() {
            break found;
        }
        assert!(Instant::now() < deadline, "sleep 1017 never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(sleeper.len(), 1, "sleep 1017 processes: {sleeper:?}");
    nix::sys::signal::kill(t.pid(), nix::sys::signal::Signal::SIGTERM).expect("SIGTERM the CLI");
    let (code, err) = t.finish_keep_mode_check();
    assert_eq!(code, 128 + libc::SIGTERM);
    assert_eq!(err, "");
    let deadline = Instant::now() + PATIENCE;
    while common::alive(sleeper[0]) {
        assert!(Instant::now() < deadline, "sleep 1017 outlived its session");
        std::thread::sleep(Duration::from_millis(50));
    }

    // A command the image does not have: the runtime's message on the CLI's stderr.
    let t = Terminal::spawn(
        &env,
        &["exec", "-it", "tty", "--", "no-such-command"],
        winsize(24, 80),
    );
    let (code, err) = t.finish_keep_mode_check();
    assert_ne!(code, 0);
    assert!(
        err.contains("no-such-command") && err.contains("not found"),
        "stderr: {err:?}"
    );

    // -t with an input that is no terminal: kubectl's warning, then no TTY.
    let out = Command::new(common::bin())
        .args(["exec", "-it", "tty", "--", "sh", "-c", "tty; echo err >&2"])
        .env("PODHOST_ROOT", &env.root)
        .stdin(Stdio::null())
        .output()
        .expect("exec -it without a terminal");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Unable to use a TTY - input is not a terminal or the right kind of file"),
        "{stderr}"
    );
    assert!(stderr.ends_with("err\n"), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "not a tty\n");
    assert_eq!(out.status.code(), Some(0));

    // The non-TTY path as before: separate streams, stdin relayed, exit code.
    let out = env.run(&[
        "exec",
        "tty",
        "--",
        "sh",
        "-c",
        "[ -t 1 ] || echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    let mut child = Command::new(common::bin())
        .args(["exec", "-i", "tty", "--", "tr", "a-z", "A-Z"])
        .env("PODHOST_ROOT", &env.root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn exec -i");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"hello stdin\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "HELLO STDIN\n");

    assert_sessions_gone(&env);
    env.teardown();
}
