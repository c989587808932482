//! The streaming server over real TCP on 127.0.0.1 with our SPDY client, on the fake
//! runtime (no root): URLs from the CRI-shaped calls, one-time tokens, exec and attach
//! bridged to the runtime's frames, port-forward to the runtime's connections.

mod common;

use std::sync::Arc;

use common::within;
use podhost_cri_api::{AttachRequest, ExecRequest, PortForwardRequest};
use podhost_runtime::clock::Clock;
use podhost_runtime::fake::FakeRuntime;
use podhost_runtime::{ContainerConfig, ExecResult, Runtime, SandboxConfig};
use podhost_streaming::portforward::{self, open_pair, read_error};
use podhost_streaming::remotecommand::{
    ClientStreams, ExitStatus, Options, Protocol, TerminalSize,
};
use podhost_streaming::server::{StreamingConfig, StreamingServer};
use podhost_streaming::spdy::{Config, Connection, Incoming};
use podhost_streaming::upgrade::{self, UpgradeError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CLIENT_GO: &[&str] = &[
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

/// A fake runtime with one running container `app` (optionally on a TTY) in sandbox
/// `sb`, and a streaming server on it.
struct Setup {
    fake: Arc<FakeRuntime>,
    server: StreamingServer,
    container: String,
    sandbox: String,
}

async fn setup(tty: bool, config: StreamingConfig) -> Setup {
    let fake = Arc::new(FakeRuntime::new(Clock::default(), &["busybox"]));
    let sandbox_config = SandboxConfig {
        name: "pod".into(),
        namespace: "default".into(),
        uid: "uid-1".into(),
        ..Default::default()
    };
    let sandbox = fake.run_pod_sandbox(&sandbox_config).await.unwrap();
    let config_c = ContainerConfig {
        name: "app".into(),
        image: "busybox".into(),
        tty,
        stdin: true,
        ..Default::default()
    };
    let container = fake
        .create_container(&sandbox, &config_c, &sandbox_config)
        .await
        .unwrap();
    fake.start_container(&container).await.unwrap();
    let runtime: Arc<dyn Runtime> = fake.clone();
    let server = StreamingServer::start(config, runtime).await.unwrap();
    Setup {
        fake,
        server,
        container,
        sandbox,
    }
}

/// Connects to a session URL and upgrades with `protocols`.
async fn connect(
    url: &str,
    protocols: &[&str],
) -> Result<(String, Connection, Incoming), UpgradeError> {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_at(rest.find('/').expect("path"));
    let tcp = TcpStream::connect(host).await.expect("connect");
    upgrade::connect(tcp, host, path, protocols, Config::default()).await
}

fn exec_request(container: &str, cmd: &[&str], tty: bool) -> ExecRequest {
    ExecRequest {
        container_id: container.into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty,
        stdin: true,
        stdout: true,
        stderr: !tty,
    }
}

fn options(stdin: bool, stdout: bool, stderr: bool, tty: bool) -> Options {
    Options {
        stdin,
        stdout,
        stderr,
        tty,
    }
}

#[tokio::test]
async fn exec_relays_stdio_and_the_exit_code() {
    let s = setup(false, StreamingConfig::default()).await;
    s.fake.on_exec(|_, cmd| {
        (cmd[0] == "greet").then(|| ExecResult {
            exit_code: 3,
            stdout: b"hello\n".to_vec(),
            stderr: b"oops\n".to_vec(),
        })
    });
    let url = s
        .server
        .get_exec(&exec_request(&s.container, &["greet"], false))
        .unwrap()
        .url;
    within(async {
        let (protocol, conn, _incoming) = connect(&url, CLIENT_GO).await.unwrap();
        assert_eq!(protocol, "v4.channel.k8s.io");
        let mut streams =
            ClientStreams::open(&conn, Protocol::V4, options(true, true, true, false))
                .await
                .unwrap();
        let mut stdin = streams.stdin.take().unwrap();
        // More than one SPDY window and one frame of the shim protocol.
        let input: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let sent = input.clone();
        let writer = tokio::spawn(async move {
            stdin.write_all(&sent).await.unwrap();
            stdin.shutdown().await.unwrap();
            stdin
        });
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut stdout = streams.stdout.take().unwrap();
        let mut stderr = streams.stderr.take().unwrap();
        let (a, b) = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
        a.unwrap();
        b.unwrap();
        let mut want = b"hello\n".to_vec();
        want.extend_from_slice(&input);
        assert!(out == want, "stdout: {} bytes", out.len());
        assert_eq!(err, b"oops\n");
        assert_eq!(
            streams.status(Protocol::V4).await.unwrap(),
            ExitStatus::Code(3)
        );
        writer.await.unwrap();
    })
    .await;
    assert!(s
        .fake
        .calls()
        .contains(&"exec-session:app:greet".to_string()));
}

#[tokio::test]
async fn a_tty_exec_starts_at_the_first_size_and_follows_resizes() {
    let s = setup(true, StreamingConfig::default()).await;
    let url = s
        .server
        .get_exec(&exec_request(&s.container, &["sh"], true))
        .unwrap()
        .url;
    within(async {
        let (_, conn, _incoming) = connect(&url, &["v4.channel.k8s.io"]).await.unwrap();
        let mut streams =
            ClientStreams::open(&conn, Protocol::V4, options(true, true, false, true))
                .await
                .unwrap();
        assert!(streams.stderr.is_none());
        // client-go sends the size right after its streams: the command starts with it.
        streams
            .resize(TerminalSize {
                width: 80,
                height: 24,
            })
            .await
            .unwrap();
        let mut stdout = streams.stdout.take().unwrap();
        let mut seen = String::new();
        read_until(&mut stdout, &mut seen, "size 80x24\n").await;
        streams
            .resize(TerminalSize {
                width: 132,
                height: 43,
            })
            .await
            .unwrap();
        read_until(&mut stdout, &mut seen, "size 132x43\n").await;
        let mut stdin = streams.stdin.take().unwrap();
        stdin.write_all(b"typed").await.unwrap();
        read_until(&mut stdout, &mut seen, "typed").await;
        stdin.shutdown().await.unwrap();
        let mut rest = Vec::new();
        stdout.read_to_end(&mut rest).await.unwrap();
        assert_eq!(
            streams.status(Protocol::V4).await.unwrap(),
            ExitStatus::Success
        );
    })
    .await;
}

async fn read_until<R: AsyncReadExt + Unpin>(r: &mut R, seen: &mut String, want: &str) {
    let mut buf = [0u8; 4096];
    while !seen.contains(want) {
        let n = r.read(&mut buf).await.unwrap();
        assert!(n > 0, "EOF before {want:?}; got {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

#[tokio::test]
async fn tokens_work_once_and_only_for_their_kind() {
    let s = setup(false, StreamingConfig::default()).await;
    let url = s
        .server
        .get_exec(&exec_request(&s.container, &["true"], false))
        .unwrap()
        .url;
    within(async {
        let (_, conn, _incoming) = connect(&url, CLIENT_GO).await.unwrap();
        let mut streams =
            ClientStreams::open(&conn, Protocol::V4, options(true, true, true, false))
                .await
                .unwrap();
        streams.stdin.take().unwrap().shutdown().await.unwrap();
        assert_eq!(
            streams.status(Protocol::V4).await.unwrap(),
            ExitStatus::Success
        );
        // The same URL again: the token is gone.
        let again = connect(&url, CLIENT_GO).await.err().unwrap();
        assert!(
            matches!(&again, UpgradeError::Refused { status, .. } if status.as_u16() == 404),
            "{again}"
        );
        // An exec token on the attach route is refused, and spent.
        let url = s
            .server
            .get_exec(&exec_request(&s.container, &["true"], false))
            .unwrap()
            .url;
        let wrong = url.replace("/exec/", "/attach/");
        let refused = connect(&wrong, CLIENT_GO).await.err().unwrap();
        assert!(matches!(&refused, UpgradeError::Refused { status, .. } if status.as_u16() == 404));
        let spent = connect(&url, CLIENT_GO).await.err().unwrap();
        assert!(matches!(&spent, UpgradeError::Refused { status, .. } if status.as_u16() == 404));
        // A guess is refused.
        let base = s.server.base_url();
        let guess = format!("{base}/exec/{}", "0".repeat(32));
        assert!(connect(&guess, CLIENT_GO).await.is_err());
        // A protocol the server does not speak: 403 naming the ones it does (the token
        // is spent all the same).
        let url = s
            .server
            .get_exec(&exec_request(&s.container, &["true"], false))
            .unwrap()
            .url;
        match connect(&url, &["v5.channel.k8s.io"]).await {
            Err(UpgradeError::Refused { status, body }) => {
                assert_eq!(status.as_u16(), 403);
                assert!(body.contains("v4.channel.k8s.io"), "{body}");
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("upgraded to v5"),
        }
    })
    .await;
}

#[tokio::test]
async fn a_failed_exec_reports_the_runtimes_error() {
    let s = setup(false, StreamingConfig::default()).await;
    assert!(s.fake.exit("app", 0));
    let url = s
        .server
        .get_exec(&exec_request(&s.container, &["sh"], false))
        .unwrap()
        .url;
    within(async {
        let (_, conn, _incoming) = connect(&url, CLIENT_GO).await.unwrap();
        let mut streams =
            ClientStreams::open(&conn, Protocol::V4, options(true, true, true, false))
                .await
                .unwrap();
        match streams.status(Protocol::V4).await.unwrap() {
            ExitStatus::Failed(message) => assert!(message.contains("not running"), "{message}"),
            other => panic!("{other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn attach_follows_the_container_until_it_exits() {
    let s = setup(true, StreamingConfig::default()).await;
    let request = AttachRequest {
        container_id: s.container.clone(),
        stdin: true,
        tty: true,
        stdout: true,
        stderr: false,
    };
    let url = s.server.get_attach(&request).unwrap().url;
    within(async {
        let (protocol, conn, _incoming) = connect(&url, CLIENT_GO).await.unwrap();
        let protocol = Protocol::from_name(&protocol).unwrap();
        let mut streams = ClientStreams::open(&conn, protocol, options(true, true, false, true))
            .await
            .unwrap();
        let mut stdout = streams.stdout.take().unwrap();
        let mut seen = String::new();
        streams
            .resize(TerminalSize {
                width: 100,
                height: 30,
            })
            .await
            .unwrap();
        read_until(&mut stdout, &mut seen, "size 100x30\n").await;
        streams
            .stdin
            .as_mut()
            .unwrap()
            .write_all(b"hi there")
            .await
            .unwrap();
        read_until(&mut stdout, &mut seen, "hi there").await;
        // The container exits: the session ends in success, as kubelet's does.
        assert!(s.fake.exit("app", 3));
        let mut rest = Vec::new();
        stdout.read_to_end(&mut rest).await.unwrap();
        assert_eq!(streams.status(protocol).await.unwrap(), ExitStatus::Success);
    })
    .await;
    assert!(s.fake.calls().contains(&"attach:app".to_string()));
}

#[tokio::test]
async fn port_forward_reaches_the_pods_ports_and_reports_failures() {
    let config = StreamingConfig {
        max_forwards: 2,
        ..Default::default()
    };
    let s = setup(false, config).await;
    s.fake.refuse_port(81);
    let request = PortForwardRequest {
        pod_sandbox_id: s.sandbox.clone(),
        port: vec![80, 81, 8080],
    };
    let url = s.server.get_port_forward(&request).unwrap().url;
    within(async {
        let (protocol, conn, _incoming) = connect(&url, &[portforward::PROTOCOL_V1]).await.unwrap();
        assert_eq!(protocol, portforward::PROTOCOL_V1);
        let (error_a, mut data_a) = open_pair(&conn, 80, 0).await.unwrap();
        let (error_b, mut data_b) = open_pair(&conn, 8080, 1).await.unwrap();
        data_a.write_all(b"to 80").await.unwrap();
        data_b.write_all(b"to 8080").await.unwrap();
        let mut buf = [0u8; 7];
        data_b.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"to 8080");
        data_a.read_exact(&mut buf[..5]).await.unwrap();
        assert_eq!(&buf[..5], b"to 80");
        // Both slots are taken: a third connection at once is refused.
        let (mut error_c, mut data_c) = open_pair(&conn, 80, 2).await.unwrap();
        let mut nothing = Vec::new();
        data_c.read_to_end(&mut nothing).await.unwrap();
        let message = read_error(&mut error_c).await.unwrap();
        assert!(
            message.contains("too many forwarded connections"),
            "{message}"
        );
        for (mut data, mut error) in [(data_a, error_a), (data_b, error_b)] {
            data.shutdown().await.unwrap();
            data.read_to_end(&mut nothing).await.unwrap();
            assert_eq!(read_error(&mut error).await.unwrap(), "");
        }
    })
    .await;
    // Failures, in a session of their own (its own slots).
    let url = s.server.get_port_forward(&request).unwrap().url;
    within(async {
        let (_, conn, _incoming) = connect(&url, &[portforward::PROTOCOL_V1]).await.unwrap();
        let mut nothing = Vec::new();
        // Nobody on 81: the error stream says so.
        let (mut error, mut data) = open_pair(&conn, 81, 0).await.unwrap();
        data.read_to_end(&mut nothing).await.unwrap();
        let message = read_error(&mut error).await.unwrap();
        assert!(
            message.starts_with(&format!("error forwarding port 81 to pod {}", s.sandbox))
                && message.contains("refused"),
            "{message}"
        );
        // A port the request did not list.
        let (mut error, mut data) = open_pair(&conn, 22, 1).await.unwrap();
        data.read_to_end(&mut nothing).await.unwrap();
        let message = read_error(&mut error).await.unwrap();
        assert!(message.contains("port 22 was not asked for"), "{message}");
    })
    .await;
    let calls = s.fake.calls();
    let forwards: Vec<&String> = calls
        .iter()
        .filter(|c| c.starts_with("port_forward:"))
        .collect();
    assert_eq!(forwards.len(), 3, "{forwards:?}");
}

#[tokio::test]
async fn shutdown_ends_open_sessions() {
    let s = setup(false, StreamingConfig::default()).await;
    // A command that never ends.
    s.fake.on_exec(|_, _| None);
    let url = s
        .server
        .get_exec(&exec_request(&s.container, &["sleep"], false))
        .unwrap()
        .url;
    let base = s.server.local_addr();
    within(async move {
        let (_, conn, _incoming) = connect(&url, CLIENT_GO).await.unwrap();
        let mut streams =
            ClientStreams::open(&conn, Protocol::V4, options(true, true, true, false))
                .await
                .unwrap();
        let mut stdin = streams.stdin.take().unwrap();
        stdin.write_all(b"echo").await.unwrap();
        let mut buf = [0u8; 4];
        streams
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut buf)
            .await
            .unwrap();
        s.server.shutdown().await;
        conn.closed().await;
        assert!(TcpStream::connect(base).await.is_err(), "still listening");
    })
    .await;
}
