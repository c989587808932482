//! End-to-end: exec, attach and port-forward with a real daemon and real containers,
//! through the daemon's streaming server in kubelet's protocols (our SPDY client acting
//! as kubectl/crictl, URLs from `/v1/pods/…/streaming/…`, as CRI's Exec/Attach/PortForward
//! give them), and through `podhost attach` and `podhost port-forward`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::terminal::{winsize, Terminal, PATIENCE};
use common::{container_status, Env};
use hyper::Method;
use podhost::cli::client::Client;
use podhost::server::StreamingUrl;
use podhost_streaming::portforward::{self, open_pair, read_error};
use podhost_streaming::remotecommand::{
    ClientStreams, ExitStatus, Options, Protocol, TerminalSize,
};
use podhost_streaming::spdy::{Config, Connection, Incoming};
use podhost_streaming::upgrade;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What client-go offers.
const CLIENT_GO: &[&str] = &[
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

const SHELL: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: shell
spec:
  restartPolicy: Never
  containers:
  - name: sh
    image: busybox
    command: ["sh"]
    stdin: true
    tty: true
"#;

const WEB: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: httpd
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo hello-from-the-pod > /www/index.html && exec httpd -f -p 8080 -h /www"]
    readinessProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 1
"#;

const READER: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: reader
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "while read l; do echo \"got $l\"; done; echo bye; exit 7"]
    stdin: true
    stdinOnce: true
"#;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Awaits `f` for at most [`PATIENCE`]: a hang fails the test.
async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, f)
        .await
        .expect("the streaming exchange hung")
}

/// A session URL from the daemon for pod `pod`.
async fn session_url(env: &Env, pod: &str, kind: &str, body: serde_json::Value) -> String {
    let socket = podhost::config::Config::rooted(&env.root).api_socket();
    let path = format!("/v1/pods/default/{pod}/streaming/{kind}");
    let url: StreamingUrl = Client::new(&socket)
        .call(Method::POST, &path, Some(body))
        .await
        .expect("streaming URL");
    assert!(url.url.starts_with("http://127.0.0.1:"), "{}", url.url);
    url.url
}

/// Connects to a session URL as client-go does.
async fn connect(url: &str, protocols: &[&str]) -> (String, Connection, Incoming) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_at(rest.find('/').expect("path"));
    let tcp = tokio::net::TcpStream::connect(host).await.expect("connect");
    upgrade::connect(tcp, host, path, protocols, Config::default())
        .await
        .expect("upgrade")
}

/// Reads `r` until what was read contains `want`.
async fn read_until<R: AsyncReadExt + Unpin>(r: &mut R, seen: &mut String, want: &str) {
    let mut buf = [0u8; 4096];
    while !seen.contains(want) {
        let n = r.read(&mut buf).await.expect("read");
        assert!(n > 0, "EOF before {want:?}; got {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

fn tty_options() -> Options {
    Options {
        stdin: true,
        stdout: true,
        stderr: false,
        tty: true,
    }
}

#[test]
fn exec_and_attach_on_a_terminal_through_the_streaming_server_and_the_cli() {
    let env = Env::new();
    env.apply("shell.yaml", SHELL);
    env.wait_for("shell", "running", Duration::from_secs(60), |p| {
        container_status(p, "sh")["state"]["running"].is_object()
    });
    let rt = runtime();

    // exec on a TTY: the command starts at the client's first size and follows resizes.
    rt.block_on(within(async {
        let body = serde_json::json!({
            "container": "sh",
            "cmd": ["sh", "-c", "stty size; while read x; do stty size; done; exit 3"],
            "tty": true, "stdin": true, "stdout": true,
        });
        let url = session_url(&env, "shell", "exec", body).await;
        let (protocol, conn, _incoming) = connect(&url, CLIENT_GO).await;
        assert_eq!(protocol, "v4.channel.k8s.io");
        let mut streams = ClientStreams::open(&conn, Protocol::V4, tty_options())
            .await
            .expect("streams");
        streams
            .resize(TerminalSize {
                width: 111,
                height: 33,
            })
            .await
            .expect("resize");
        let mut stdout = streams.stdout.take().expect("stdout");
        let mut seen = String::new();
        read_until(&mut stdout, &mut seen, "33 111").await;
        streams
            .resize(TerminalSize {
                width: 132,
                height: 50,
            })
            .await
            .expect("resize");
        // The size and the keys travel on different streams: ask until it has arrived.
        let mut stdin = streams.stdin.take().expect("stdin");
        let deadline = Instant::now() + PATIENCE;
        while !seen.contains("50 132") {
            assert!(Instant::now() < deadline, "no resize: {seen:?}");
            stdin.write_all(b"x\n").await.expect("stdin");
            let mut buf = [0u8; 1024];
            let n = tokio::time::timeout(Duration::from_millis(500), stdout.read(&mut buf))
                .await
                .unwrap_or(Ok(0))
                .expect("read");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        // Ctrl-D on the terminal: `read` sees the end of input, the command exits 3.
        stdin.write_all(&[4]).await.expect("stdin");
        let mut rest = Vec::new();
        stdout.read_to_end(&mut rest).await.expect("stdout");
        assert_eq!(
            streams.status(Protocol::V4).await.expect("status"),
            ExitStatus::Code(3)
        );
    }));

    // attach to the container's own shell: its terminal, its size; the end of the
    // client's input ends the session and leaves the shell running.
    rt.block_on(within(async {
        let body = serde_json::json!({
            "container": "sh", "tty": true, "stdin": true, "stdout": true,
        });
        let url = session_url(&env, "shell", "attach", body).await;
        let (protocol, conn, _incoming) = connect(&url, CLIENT_GO).await;
        let protocol = Protocol::from_name(&protocol).expect("protocol");
        let mut streams = ClientStreams::open(&conn, protocol, tty_options())
            .await
            .expect("streams");
        streams
            .resize(TerminalSize {
                width: 90,
                height: 25,
            })
            .await
            .expect("resize");
        let mut stdin = streams.stdin.take().expect("stdin");
        let mut stdout = streams.stdout.take().expect("stdout");
        let mut seen = String::new();
        stdin
            .write_all(b"echo $((6*7))-attached\n")
            .await
            .expect("stdin");
        read_until(&mut stdout, &mut seen, "42-attached").await;
        let deadline = Instant::now() + PATIENCE;
        while !seen.contains("25 90") {
            assert!(Instant::now() < deadline, "no resize: {seen:?}");
            stdin.write_all(b"stty size\n").await.expect("stdin");
            let mut buf = [0u8; 1024];
            let n = tokio::time::timeout(Duration::from_millis(500), stdout.read(&mut buf))
                .await
                .unwrap_or(Ok(0))
                .expect("read");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        stdin.shutdown().await.expect("close stdin");
        let mut rest = Vec::new();
        stdout.read_to_end(&mut rest).await.expect("stdout");
        assert_eq!(
            streams.status(protocol).await.expect("status"),
            ExitStatus::Success
        );
    }));
    let p = env.pod("shell");
    assert!(
        container_status(&p, "sh")["state"]["running"].is_object(),
        "{p}"
    );

    // `podhost attach -it` on a real terminal of ours, then the shell's own exit.
    let mut t = Terminal::spawn(
        &env,
        &["attach", "-it", "shell", "-c", "sh"],
        winsize(30, 100),
    );
    t.type_keys("\r");
    t.wait_for(0, "# ");
    t.run("echo attached-$((40+2))", "attached-42");
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
    t.type_keys("exit 5\r");
    let (code, err) = t.finish();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("If you don't see a command prompt"), "{err}");
    let p = env.wait_for("shell", "terminated", PATIENCE, |p| {
        container_status(p, "sh")["state"]["terminated"].is_object()
    });
    assert_eq!(
        container_status(&p, "sh")["state"]["terminated"]["exitCode"],
        5
    );
    env.teardown();
}

#[test]
fn port_forward_reaches_a_server_inside_the_pod() {
    let env = Env::new();
    env.apply("web.yaml", WEB);
    env.wait_ready("web");
    let rt = runtime();
    rt.block_on(within(async {
        let body = serde_json::json!({ "ports": [8080, 8081] });
        let url = session_url(&env, "web", "portforward", body).await;
        let (protocol, conn, _incoming) = connect(&url, &[portforward::PROTOCOL_V1]).await;
        assert_eq!(protocol, portforward::PROTOCOL_V1);
        // Two requests, one connection each, on one session.
        for id in 0..2 {
            let (mut error, mut data) = open_pair(&conn, 8080, id).await.expect("streams");
            data.write_all(b"GET / HTTP/1.0\r\n\r\n")
                .await
                .expect("request");
            let mut answer = Vec::new();
            data.read_to_end(&mut answer).await.expect("answer");
            let answer = String::from_utf8_lossy(&answer);
            assert!(answer.starts_with("HTTP/1.") && answer.contains("hello-from-the-pod"));
            assert_eq!(read_error(&mut error).await.expect("error stream"), "");
        }
        // Nobody listens on 8081 inside the pod (the host's 8081 does not count).
        let (mut error, mut data) = open_pair(&conn, 8081, 2).await.expect("streams");
        let mut nothing = Vec::new();
        data.read_to_end(&mut nothing).await.expect("data");
        let message = read_error(&mut error).await.expect("error stream");
        assert!(
            message.contains("error forwarding port 8081") && message.contains("refused"),
            "{message}"
        );
        // A port the request did not name.
        let (mut error, mut data) = open_pair(&conn, 80, 3).await.expect("streams");
        data.read_to_end(&mut nothing).await.expect("data");
        let message = read_error(&mut error).await.expect("error stream");
        assert!(message.contains("not asked for"), "{message}");
    }));

    // `podhost port-forward` on a free local port, as kubectl's `:8080`.
    let mut child = Command::new(common::bin())
        .args(["port-forward", "pod/web", ":8080"])
        .env("PODHOST_ROOT", &env.root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("podhost port-forward");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a line").expect("utf8");
    let local: u16 = first
        .strip_prefix("Forwarding from 127.0.0.1:")
        .and_then(|r| r.strip_suffix(" -> 8080"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
    for _ in 0..2 {
        let mut tcp = std::net::TcpStream::connect(("127.0.0.1", local)).expect("connect");
        tcp.set_read_timeout(Some(PATIENCE)).expect("timeout");
        tcp.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")
            .expect("request");
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).expect("answer");
        assert!(answer.contains("hello-from-the-pod"), "{answer}");
    }
    assert_eq!(
        lines.next().expect("a line").expect("utf8"),
        format!("Handling connection for {local}")
    );
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status}");
    // An unknown pod is refused before anything listens.
    let out = env.run(&["port-forward", "pod/nope", ":8080"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not found"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.teardown();
}

#[test]
fn attach_feeds_stdin_and_stdin_once_ends_it() {
    let env = Env::new();
    env.apply("reader.yaml", READER);
    env.wait_for("reader", "running", Duration::from_secs(60), |p| {
        container_status(p, "main")["state"]["running"].is_object()
    });
    let mut child = Command::new(common::bin())
        .args(["attach", "-i", "reader"])
        .env("PODHOST_ROOT", &env.root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("podhost attach");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"one\ntwo\n")
        .expect("write");
    // stdin is closed now: with stdinOnce the container reads its end, says bye, exits 7.
    let out = child.wait_with_output().expect("attach");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, "got one\ngot two\nbye\n");
    let p = env.wait_for("reader", "terminated", PATIENCE, |p| {
        container_status(p, "main")["state"]["terminated"].is_object()
    });
    assert_eq!(
        container_status(&p, "main")["state"]["terminated"]["exitCode"],
        7
    );
    // What went through the attach is in the log too.
    let logs = env.ok(&["logs", "reader"]);
    assert_eq!(logs, "got one\ngot two\nbye\n");
    // No attach to a container that is not running.
    let err = env.fails(&["attach", "reader"]);
    assert!(err.contains("not running"), "{err}");
    env.teardown();
}
