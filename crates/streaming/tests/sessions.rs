//! Exec and port-forward sessions end to end over TCP on 127.0.0.1: our client side
//! against our server side, through the real HTTP upgrade.

mod common;

use common::{echo_server, serve, within, Route};
use podhost_streaming::portforward::{self, open_pair, read_error};
use podhost_streaming::remotecommand::{
    ClientStreams, ExitStatus, Options, Protocol, TerminalSize,
};
use podhost_streaming::spdy::Config;
use podhost_streaming::upgrade::{self, UpgradeError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CLIENT_GO_PROTOCOLS: &[&str] = &[
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

fn exec(argv: &[&str], options: Options) -> Option<Route> {
    Some(Route::Exec {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        options,
    })
}

#[tokio::test]
async fn exec_echoes_stdin_and_reports_the_exit_code() {
    let options = Options {
        stdin: true,
        stdout: true,
        stderr: true,
        tty: false,
    };
    let (addr, server) = serve(move |path| match path {
        "/exec/cat" => exec(&["sh", "-c", "cat; echo oops >&2; exit 3"], options),
        _ => None,
    })
    .await;
    within(async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (protocol, conn, _incoming) = upgrade::connect(
            tcp,
            &addr.to_string(),
            "/exec/cat",
            CLIENT_GO_PROTOCOLS,
            Config::default(),
        )
        .await
        .unwrap();
        assert_eq!(protocol, "v4.channel.k8s.io");
        let protocol = Protocol::from_name(&protocol).unwrap();
        let mut streams = ClientStreams::open(&conn, protocol, options).await.unwrap();
        let mut stdin = streams.stdin.take().unwrap();
        // More than the 64 KiB window: the sides keep going without WINDOW_UPDATEs.
        let input: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let to_send = input.clone();
        let writer = tokio::spawn(async move {
            stdin.write_all(&to_send).await.unwrap();
            stdin.shutdown().await.unwrap();
            stdin
        });
        let mut stdout = streams.stdout.take().unwrap();
        let mut stderr = streams.stderr.take().unwrap();
        let mut out = Vec::new();
        let mut err = Vec::new();
        let (a, b) = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
        a.unwrap();
        b.unwrap();
        assert_eq!(out, input);
        assert_eq!(err, b"oops\n");
        assert_eq!(streams.status(protocol).await.unwrap(), ExitStatus::Code(3));
        writer.await.unwrap();
        conn.closed().await;
    })
    .await;
    server.abort();
}

#[tokio::test]
async fn tty_sessions_carry_resize_events() {
    let options = Options {
        stdin: true,
        stdout: true,
        stderr: true,
        tty: true,
    };
    let (addr, server) = serve(move |_| exec(&["true"], options)).await;
    // The server side here is a session that reports sizes instead of running a
    // process: accept, read two resizes, answer on stdout, finish with success.
    let listener_addr = addr;
    within(async {
        let tcp = TcpStream::connect(listener_addr).await.unwrap();
        let (protocol, conn, _incoming) = upgrade::connect(
            tcp,
            "localhost",
            "/exec/tty",
            &["v3.channel.k8s.io"],
            Config::default(),
        )
        .await
        .unwrap();
        assert_eq!(protocol, "v3.channel.k8s.io");
        let protocol = Protocol::V3;
        let mut streams = ClientStreams::open(&conn, protocol, options).await.unwrap();
        assert!(streams.stderr.is_none(), "a TTY has no stderr stream");
        assert!(streams.resize.is_some());
        streams
            .resize(TerminalSize {
                width: 80,
                height: 24,
            })
            .await
            .unwrap();
        let mut out = Vec::new();
        streams
            .stdout
            .take()
            .unwrap()
            .read_to_end(&mut out)
            .await
            .unwrap();
        // v3 reports success as an empty error stream.
        assert_eq!(streams.status(protocol).await.unwrap(), ExitStatus::Success);
    })
    .await;
    server.abort();
}

#[tokio::test]
async fn resize_events_reach_the_session() {
    use podhost_streaming::remotecommand::Session;
    use podhost_streaming::spdy::Connection;
    use std::time::Duration;

    let (a, b) = tokio::io::duplex(64 * 1024);
    let options = Options {
        stdin: false,
        stdout: true,
        stderr: false,
        tty: true,
    };
    let server = tokio::spawn(async move {
        let (conn, incoming) = Connection::server(a, Config::default());
        let mut session = Session::accept(
            conn,
            incoming,
            "v4.channel.k8s.io",
            options,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
        let mut resize = session.take_resize().unwrap();
        let mut stdout = session.take_stdout().unwrap();
        while let Some(size) = resize.next().await {
            let size = size.unwrap();
            let line = format!("{}x{}\n", size.width, size.height);
            stdout.write_all(line.as_bytes()).await.unwrap();
        }
        drop(stdout);
        session.finish(ExitStatus::Code(130)).await.unwrap();
    });
    within(async {
        let (conn, _incoming) = Connection::client(b, Config::default());
        let mut streams = ClientStreams::open(&conn, Protocol::V4, options)
            .await
            .unwrap();
        for (width, height) in [(80, 24), (132, 43)] {
            streams
                .resize(TerminalSize { width, height })
                .await
                .unwrap();
        }
        streams.resize.take().unwrap().shutdown().await.unwrap();
        let mut out = String::new();
        streams
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .await
            .unwrap();
        assert_eq!(out, "80x24\n132x43\n");
        assert_eq!(
            streams.status(Protocol::V4).await.unwrap(),
            ExitStatus::Code(130)
        );
    })
    .await;
    server.await.unwrap();
}

#[tokio::test]
async fn an_unknown_protocol_is_refused_with_the_accepted_list() {
    let (addr, server) = serve(|_| exec(&["true"], Options::default())).await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let refused = upgrade::connect(
        tcp,
        "localhost",
        "/exec/x",
        &["v9.channel.k8s.io"],
        Config::default(),
    )
    .await;
    match refused {
        Err(UpgradeError::Refused { status, body }) => {
            assert_eq!(status, http::StatusCode::FORBIDDEN);
            assert!(body.contains("v4.channel.k8s.io"), "{body}");
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("upgraded with an unknown protocol"),
    }
    server.abort();
}

#[tokio::test]
async fn port_forward_pairs_streams_and_reports_failures() {
    let (port, echo) = echo_server().await;
    let (addr, server) =
        serve(|path| (path == "/portforward/t").then_some(Route::PortForward)).await;
    within(async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (protocol, conn, _incoming) = upgrade::connect(
            tcp,
            "localhost",
            "/portforward/t",
            &[portforward::PROTOCOL_V1],
            Config::default(),
        )
        .await
        .unwrap();
        assert_eq!(protocol, "portforward.k8s.io");

        // Two forwarded connections at once on one SPDY connection.
        let (mut error_a, mut data_a) = open_pair(&conn, port, 0).await.unwrap();
        let (mut error_b, mut data_b) = open_pair(&conn, port, 1).await.unwrap();
        data_a.write_all(b"first").await.unwrap();
        data_b.write_all(b"second").await.unwrap();
        let mut buf = [0u8; 6];
        data_b.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"second");
        data_a.read_exact(&mut buf[..5]).await.unwrap();
        assert_eq!(&buf[..5], b"first");
        // Half-close: the echo server sees EOF, closes, and the server ends both streams.
        data_a.shutdown().await.unwrap();
        let mut rest = Vec::new();
        data_a.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        assert_eq!(read_error(&mut error_a).await.unwrap(), "");
        data_b.shutdown().await.unwrap();
        data_b.read_to_end(&mut rest).await.unwrap();
        assert_eq!(read_error(&mut error_b).await.unwrap(), "");

        // A port nobody listens on: the error stream says so.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let (mut error, mut data) = open_pair(&conn, closed, 2).await.unwrap();
        let mut nothing = Vec::new();
        data.read_to_end(&mut nothing).await.unwrap();
        let message = read_error(&mut error).await.unwrap();
        assert!(
            message.contains(&format!("connecting to port {closed}")),
            "{message}"
        );
    })
    .await;
    server.abort();
    echo.abort();
}
