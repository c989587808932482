//! A streaming server on 127.0.0.1 as the CRI server will run one: hyper HTTP/1.1,
//! SPDY upgrade, then a session task. Exec runs a real host process (`sh`, `cat`):
//! the glue between a session and a process, minus the container.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming as Body;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use podhost_streaming::portforward::{self, PortForwardStreams};
use podhost_streaming::remotecommand::{ExitStatus, Options, Protocol, Session};
use podhost_streaming::spdy::Config;
use podhost_streaming::upgrade::SpdyUpgrade;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the test server does with a request.
#[derive(Clone)]
pub enum Route {
    /// Exec `argv` on the host with these channels.
    Exec { argv: Vec<String>, options: Options },
    /// Forward to 127.0.0.1:<port in the stream headers>.
    PortForward,
}

/// Serves HTTP on 127.0.0.1:0; `route` maps a request path to what it does.
pub async fn serve<F>(route: F) -> (SocketAddr, JoinHandle<()>)
where
    F: Fn(&str) -> Option<Route> + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let route = Arc::new(route);
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let route = route.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Body>| {
                    let route = route.clone();
                    async move {
                        let chosen = route(req.uri().path());
                        Ok::<_, Infallible>(handle(req, chosen))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    (addr, task)
}

fn handle(mut req: Request<Body>, route: Option<Route>) -> Response<Full<Bytes>> {
    let Some(route) = route else {
        let mut response = Response::new(Full::new(Bytes::from_static(b"not found")));
        *response.status_mut() = http::StatusCode::NOT_FOUND;
        return response;
    };
    let protocols: &[&str] = match route {
        Route::Exec { .. } => &Protocol::SUPPORTED,
        Route::PortForward => &portforward::SUPPORTED,
    };
    let upgrade = match SpdyUpgrade::accept(&mut req, protocols) {
        Ok(upgrade) => upgrade,
        Err(e) => return e.to_response(),
    };
    let response = upgrade.response();
    let protocol = upgrade.protocol().to_string();
    tokio::spawn(async move {
        let Ok((conn, incoming)) = upgrade.connect(Config::default()).await else {
            return;
        };
        match route {
            Route::Exec { argv, options } => {
                let session =
                    Session::accept(conn, incoming, &protocol, options, Duration::from_secs(30))
                        .await
                        .unwrap();
                let status = run_process(&argv, session).await;
                status.0.finish(status.1).await.unwrap();
            }
            Route::PortForward => {
                let mut streams = PortForwardStreams::new(conn, incoming, Duration::from_secs(30));
                while let Some(request) = streams.next().await {
                    tokio::spawn(async move {
                        match TcpStream::connect(("127.0.0.1", request.port)).await {
                            Ok(target) => request.forward(target).await,
                            Err(e) => {
                                let message = format!("connecting to port {}: {e}", request.port);
                                request.fail(&message).await
                            }
                        }
                    });
                }
            }
        }
    });
    response
}

/// Runs `argv` with the session's channels as its stdio; returns the exit status.
pub async fn run_process(argv: &[String], mut session: Session) -> (Session, ExitStatus) {
    let mut command = tokio::process::Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            return (
                session,
                ExitStatus::Failed(format!("starting {argv:?}: {e}")),
            )
        }
    };
    let mut child_stdin = child.stdin.take().unwrap();
    let mut child_stdout = child.stdout.take().unwrap();
    let mut child_stderr = child.stderr.take().unwrap();
    let stdin = session.take_stdin();
    let stdout = session.take_stdout();
    let stderr = session.take_stderr();
    let feed = tokio::spawn(async move {
        if let Some(mut stdin) = stdin {
            let _ = tokio::io::copy(&mut stdin, &mut child_stdin).await;
        }
        // EOF on the client's stdin (or none): close the process's stdin.
        let _ = child_stdin.shutdown().await;
    });
    let out = async {
        match stdout {
            Some(mut stdout) => {
                let _ = tokio::io::copy(&mut child_stdout, &mut stdout).await;
                let _ = stdout.shutdown().await;
            }
            None => {
                let _ = tokio::io::copy(&mut child_stdout, &mut tokio::io::sink()).await;
            }
        }
    };
    let err = async {
        match stderr {
            Some(mut stderr) => {
                let _ = tokio::io::copy(&mut child_stderr, &mut stderr).await;
                let _ = stderr.shutdown().await;
            }
            None => {
                let _ = tokio::io::copy(&mut child_stderr, &mut tokio::io::sink()).await;
            }
        }
    };
    tokio::join!(out, err);
    let status = child.wait().await;
    feed.abort();
    let status = match status {
        Ok(status) => match status.code() {
            Some(0) => ExitStatus::Success,
            Some(code) => ExitStatus::Code(code),
            None => ExitStatus::Code(
                128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0),
            ),
        },
        Err(e) => ExitStatus::Failed(e.to_string()),
    };
    (session, status)
}

/// Runs a TCP echo server on 127.0.0.1:0 (the "pod port" of port-forward tests).
pub async fn echo_server() -> (u16, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    (port, task)
}

/// Awaits `f` for at most a minute (a hang fails the test instead of blocking CI).
pub async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("the test's exchange hung")
}
