//! CRI's Exec, Attach and PortForward driven by the real crictl (v1.29, from the shared
//! test kit) on the daemon's CRI socket: the RPCs answer with one-time URLs on the
//! daemon's loopback streaming server, where crictl runs the sessions over SPDY, as a
//! kubelet's clients do. `exec -it` on a real terminal of the test's, `exec -i` with
//! stdin, `attach -it` to a TTY container, `attach -i` to a stdinOnce one, `port-forward`
//! to busybox httpd inside the sandbox (and not to the host's loopback).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::terminal::{winsize, Terminal, PATIENCE};
use common::{crictl, Env};

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Writes a CRI container config; its path.
fn container_config(dir: &Path, name: &str, script: &str, extra: serde_json::Value) -> String {
    let mut c = serde_json::json!({
        "metadata": {"name": name},
        "image": {"image": "busybox"},
        "command": ["sh", "-c", script],
        "log_path": format!("{name}/0.log"),
        "linux": {}
    });
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        c.extend(extra.clone());
    }
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, c.to_string()).expect("container json");
    path.display().to_string()
}

/// A crictl that runs in the background (port-forward), killed if the test fails.
struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `crictl port-forward POD :PORT`: the child and the local port it listens on.
fn port_forward(env: &Env, crictl: &Path, pod: &str, port: u16) -> (Background, u16) {
    let mut child = env
        .crictl_command(crictl)
        .args(["port-forward", pod, &format!(":{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("crictl port-forward");
    let stdout = child.stdout.take().expect("stdout");
    let child = Background(child);
    // "Forwarding from 127.0.0.1:NNNN -> PORT" (client-go's line; ::1 may follow).
    let mut stdout = BufReader::new(stdout);
    let mut first = String::new();
    stdout.read_line(&mut first).expect("crictl's first line");
    // The rest ("Handling connection for …") is read on: a closed pipe would kill crictl.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let local: u16 = first
        .trim_end()
        .strip_prefix("Forwarding from 127.0.0.1:")
        .and_then(|r| r.strip_suffix(&format!(" -> {port}")))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
    (child, local)
}

/// A plain HTTP/1.0 GET through a local port; the whole answer.
fn http_get(port: u16) -> String {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    tcp.set_read_timeout(Some(PATIENCE)).expect("timeout");
    tcp.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")
        .expect("request");
    let mut answer = String::new();
    let _ = tcp.read_to_string(&mut answer);
    answer
}

#[test]
fn crictl_exec_attach_and_port_forward_through_the_streaming_server() {
    let Some(crictl) = crictl() else {
        eprintln!("skipped: no crictl (shared/cri-testkit) found");
        return;
    };
    let env = Env::new();
    let logs = env.root.join("log/cri-stream");
    let dir = env.root.join("cri");
    std::fs::create_dir_all(&dir).expect("config dir");
    let pod_json = dir.join("pod.json");
    std::fs::write(
        &pod_json,
        serde_json::json!({
            "metadata": {"name": "stream-pod", "namespace": "kube-test", "uid": "cri-stream-1", "attempt": 0},
            "hostname": "stream-pod",
            "log_directory": logs,
            "linux": {}
        })
        .to_string(),
    )
    .expect("pod.json");
    let pod_json = pod_json.display().to_string();
    let web = container_config(
        &dir,
        "web",
        "mkdir -p /www && echo hello-through-crictl > /www/index.html && exec httpd -f -p 8080 -h /www",
        serde_json::json!({}),
    );
    let shell = container_config(
        &dir,
        "shell",
        "exec sh",
        serde_json::json!({"tty": true, "stdin": true}),
    );
    let reader = container_config(
        &dir,
        "reader",
        "while read l; do echo \"got $l\"; done; echo bye; exit 7",
        serde_json::json!({"stdin": true, "stdin_once": true}),
    );
    let pod = env.crictl_ok(&["runp", &pod_json]).trim().to_string();
    let ids: Vec<String> = [&web, &shell, &reader]
        .iter()
        .map(|c| {
            env.crictl_ok(&["create", &pod, c, &pod_json])
                .trim()
                .to_string()
        })
        .collect();
    let (web_id, shell_id, reader_id) = (&ids[0], &ids[1], &ids[2]);
    env.crictl_ok(&["start", web_id, shell_id, reader_id]);

    // exec -it: a shell on the test's terminal, its size and resizes, its exit code.
    let mut cmd = env.crictl_command(&crictl);
    cmd.args(["exec", "-it", web_id, "sh"]);
    let mut t = Terminal::spawn_command(cmd, winsize(30, 100));
    t.run("echo exec-$((40+2))", "exec-42");
    t.run("stty size", "30 100");
    let ws = winsize(40, 120);
    // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
    let r = unsafe { libc::ioctl(t.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    assert_eq!(r, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
    let deadline = Instant::now() + PATIENCE;
    loop {
        let from = t.len();
        t.type_keys("stty size\r");
        std::thread::sleep(Duration::from_millis(200));
        if t.screen()[from..].contains("40 120") {
            break;
        }
        assert!(Instant::now() < deadline, "no resize:\n{}", t.screen());
    }
    t.type_keys("exit 4\r");
    let (code, err) = t.finish();
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("exit code 4"), "{err}");

    // exec -i: stdin in, stdout and stderr apart, the exit code.
    let mut child = env
        .crictl_command(&crictl)
        .args([
            "exec",
            "-i",
            web_id,
            "sh",
            "-c",
            "cat; echo to-stderr >&2; exit 3",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("crictl exec -i");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"line one\nline two\n")
        .expect("write");
    let out = child.wait_with_output().expect("crictl exec -i");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "line one\nline two\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("to-stderr") && err.contains("exit code 3"),
        "{err}"
    );

    // attach -it to the TTY container's own shell; its exit ends the session.
    let mut cmd = env.crictl_command(&crictl);
    cmd.args(["attach", "-it", shell_id]);
    let mut t = Terminal::spawn_command(cmd, winsize(25, 90));
    // The shell printed its prompt before anyone attached: ask for a new line.
    let deadline = Instant::now() + PATIENCE;
    while !t.screen().contains("attached-42") {
        assert!(Instant::now() < deadline, "no shell:\n{}", t.screen());
        t.type_keys("echo attached-$((40+2))\r");
        std::thread::sleep(Duration::from_millis(300));
    }
    t.run("stty size", "25 90");
    t.type_keys("exit 5\r");
    let (code, err) = t.finish();
    assert_eq!(code, 0, "{err}");
    let c = json(&env.crictl_ok(&["inspect", shell_id]));
    assert_eq!(c["status"]["state"], "CONTAINER_EXITED", "{c}");
    assert_eq!(c["status"]["exitCode"], 5, "{c}");

    // attach -i to a stdinOnce container: the end of crictl's input is the container's.
    let mut child = env
        .crictl_command(&crictl)
        .args(["attach", "-i", reader_id])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("crictl attach -i");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"one\ntwo\n")
        .expect("write");
    let out = child.wait_with_output().expect("crictl attach -i");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "got one\ngot two\nbye\n"
    );
    let deadline = Instant::now() + PATIENCE;
    loop {
        let c = json(&env.crictl_ok(&["inspect", reader_id]));
        if c["status"]["state"] == "CONTAINER_EXITED" {
            assert_eq!(c["status"]["exitCode"], 7, "{c}");
            break;
        }
        assert!(Instant::now() < deadline, "the reader did not exit: {c}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // port-forward into the sandbox: httpd answers (it may take a moment to listen).
    let (forward, local) = port_forward(&env, &crictl, &pod, 8080);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let answer = http_get(local);
        if answer.contains("hello-through-crictl") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no answer through crictl: {answer:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A second connection on the same session.
    assert!(http_get(local).contains("hello-through-crictl"));
    drop(forward);

    // The same port number on the host's loopback is not the pod's: a server there is
    // never reached, the forwarded connection just ends.
    let host = TcpListener::bind("127.0.0.1:0").expect("host listener");
    host.set_nonblocking(true).expect("nonblocking");
    let host_port = host.local_addr().expect("addr").port();
    let (forward, local) = port_forward(&env, &crictl, &pod, host_port);
    assert_eq!(http_get(local), "");
    match host.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the host's loopback was reached through port-forward: {other:?}"),
    }
    drop(forward);

    env.crictl_ok(&["stopp", &pod]);
    env.crictl_ok(&["rmp", &pod]);
    std::fs::remove_dir_all(&logs).expect("remove CRI logs");
    std::fs::remove_dir_all(&dir).expect("remove configs");
    env.teardown();
}
