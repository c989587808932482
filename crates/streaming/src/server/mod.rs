//! Kubelet's streaming server, for CRI's Exec, Attach and PortForward: the RPC only
//! stores the request under a one-time token and answers with a URL on this server
//! (`http://127.0.0.1:PORT/exec/TOKEN`); the client (kubelet, crictl) then POSTs there,
//! upgrades the connection to SPDY/3.1 and runs the session, which is bridged to the
//! [`Runtime`] (the shim's exec/attach frames, or a connection inside the pod's network
//! namespace).
//!
//! # Security
//! - The server listens on a loopback address only (`127.0.0.1:0` by default). Pods have
//!   network namespaces of their own, where 127.0.0.1 is the pod's, so a container cannot
//!   reach it; a `hostNetwork` pod shares the host's loopback and can connect, as to a
//!   kubelet's streaming server, but without a token it gets 404 only.
//! - Tokens are 128 random bits from the OS, work once, and expire after a minute; at
//!   most 1000 wait at once (kubelet's numbers but for the token length, 64 bits there).
//! - A token is consumed by the first request naming it, even a failed upgrade.
//! - Port-forward connects to 127.0.0.1 inside the sandbox's recorded namespace only, and
//!   to the ports the CRI request listed when it listed any.
//! - Bounded: HTTP connections and sessions at once, streams per SPDY connection,
//!   forwarded connections per port-forward session, and every buffer on the way
//!   (SPDY windows, shim frames of at most 1 MiB).
//!
//! WebSocket (`v5.channel.k8s.io`, `v2.portforward.k8s.io`) is not served: kubelet 1.29
//! and crictl 1.29 fall back to SPDY, which every client speaks.
//!
//! # Layout
//! - [`cache`]: the one-time token cache.
//! - `session`: exec and attach (SPDY streams ↔ shim frames) and port-forward bridges.

pub mod cache;
mod session;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming as Body;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use podhost_cri_api::{
    AttachRequest, AttachResponse, ExecRequest, ExecResponse, PortForwardRequest,
    PortForwardResponse,
};
use podhost_runtime::Runtime;
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tonic::Status;

use crate::portforward;
use crate::remotecommand::{self, Protocol};
use crate::upgrade::SpdyUpgrade;
use cache::{CacheError, RequestCache};

/// Settings of the streaming server; the defaults are kubelet's where it has them.
#[derive(Debug, Clone)]
pub struct StreamingConfig {
    /// Where to listen: a loopback address; port 0 picks a free one.
    pub addr: SocketAddr,
    /// How long a client may take to open its streams (kubelet: 30 s).
    pub stream_creation_timeout: Duration,
    /// How long a token stays valid (kubelet: 1 minute).
    pub token_ttl: Duration,
    /// Most tokens waiting at once (kubelet: 1000).
    pub max_in_flight: usize,
    /// Most HTTP connections and sessions at once.
    pub max_sessions: usize,
    /// Most forwarded connections at once in one port-forward session.
    pub max_forwards: usize,
}

impl Default for StreamingConfig {
    fn default() -> Self {
        StreamingConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stream_creation_timeout: remotecommand::DEFAULT_STREAM_CREATION_TIMEOUT,
            token_ttl: Duration::from_secs(60),
            max_in_flight: 1000,
            max_sessions: 256,
            max_forwards: 128,
        }
    }
}

/// Why the streaming server did not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The address is not a loopback one: sessions would be open to the network.
    #[error("streaming server address {0} is not a loopback address (127.0.0.0/8 or ::1)")]
    NotLoopback(SocketAddr),
    /// Binding the address failed (in use, not local).
    #[error("streaming server: binding {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// A request waiting for its streaming connection.
#[derive(Debug, Clone)]
enum Cached {
    Exec(ExecRequest),
    Attach(AttachRequest),
    PortForward(PortForwardRequest),
}

/// What the handlers share.
struct Inner {
    /// Where sessions run.
    runtime: Arc<dyn Runtime>,
    /// Requests by token.
    cache: RequestCache<Cached>,
    /// `http://ADDR`, the URLs' prefix.
    base_url: String,
    /// Settings.
    config: StreamingConfig,
    /// Flips to true when the server stops: every connection and session ends.
    stopped: watch::Receiver<bool>,
}

/// Kubelet's streaming server: answers CRI's Exec, Attach and PortForward with URLs and
/// serves the sessions behind them. Stops when dropped or [shut down](Self::shutdown).
pub struct StreamingServer {
    inner: Arc<Inner>,
    /// The address listened on (the port chosen when 0 was asked).
    local_addr: SocketAddr,
    /// Tells the accept loop and every session to stop.
    stop: watch::Sender<bool>,
    /// The accept loop.
    task: Option<tokio::task::JoinHandle<()>>,
}

impl StreamingServer {
    /// Binds `config.addr` and serves sessions on `runtime`. The runtime is the shared
    /// one: callers (the CRI server) check that a container or sandbox is theirs before
    /// asking for a URL.
    pub async fn start(
        config: StreamingConfig,
        runtime: Arc<dyn Runtime>,
    ) -> Result<StreamingServer, ServerError> {
        if !config.addr.ip().is_loopback() {
            return Err(ServerError::NotLoopback(config.addr));
        }
        let bind = |source| ServerError::Bind {
            addr: config.addr,
            source,
        };
        let listener = TcpListener::bind(config.addr).await.map_err(bind)?;
        let local_addr = listener.local_addr().map_err(bind)?;
        let (stop, stopped) = watch::channel(false);
        let inner = Arc::new(Inner {
            runtime,
            cache: RequestCache::new(config.token_ttl, config.max_in_flight),
            base_url: format!("http://{local_addr}"),
            config,
            stopped,
        });
        let task = tokio::spawn(accept_loop(listener, inner.clone()));
        tracing::info!("streaming server listening on {local_addr}");
        Ok(StreamingServer {
            inner,
            local_addr,
            stop,
            task: Some(task),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://ADDR`: what session URLs start with.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// The URL of an exec session (CRI `Exec`), after kubelet's checks of the request.
    pub fn get_exec(&self, req: &ExecRequest) -> Result<ExecResponse, Status> {
        validate_exec(req)?;
        let url = self.url("exec", Cached::Exec(req.clone()))?;
        Ok(ExecResponse { url })
    }

    /// The URL of an attach session (CRI `Attach`), after kubelet's checks.
    pub fn get_attach(&self, req: &AttachRequest) -> Result<AttachResponse, Status> {
        validate_attach(req)?;
        let url = self.url("attach", Cached::Attach(req.clone()))?;
        Ok(AttachResponse { url })
    }

    /// The URL of a port-forward session (CRI `PortForward`), after kubelet's checks.
    pub fn get_port_forward(
        &self,
        req: &PortForwardRequest,
    ) -> Result<PortForwardResponse, Status> {
        validate_port_forward(req)?;
        let url = self.url("portforward", Cached::PortForward(req.clone()))?;
        Ok(PortForwardResponse { url })
    }

    fn url(&self, kind: &str, request: Cached) -> Result<String, Status> {
        let token = self.inner.cache.insert(request).map_err(|e| match e {
            CacheError::Full(_) => Status::resource_exhausted(e.to_string()),
            CacheError::Random(_) => Status::internal(e.to_string()),
        })?;
        Ok(format!("{}/{kind}/{token}", self.inner.base_url))
    }

    /// Stops listening and ends every session (their clients see the connection close).
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// The CRI server's Exec, Attach and PortForward answer with this server's URLs (the CRI
/// server has checked the container or sandbox is CRI's and running).
impl podhost_cri::StreamingProvider for StreamingServer {
    fn get_exec(&self, req: &ExecRequest) -> Result<ExecResponse, Status> {
        StreamingServer::get_exec(self, req)
    }
    fn get_attach(&self, req: &AttachRequest) -> Result<AttachResponse, Status> {
        StreamingServer::get_attach(self, req)
    }
    fn get_port_forward(&self, req: &PortForwardRequest) -> Result<PortForwardResponse, Status> {
        StreamingServer::get_port_forward(self, req)
    }
}

impl Drop for StreamingServer {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// Resolves once `stopped` says so (or its sender is gone).
async fn stop_signal(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

async fn accept_loop(listener: TcpListener, inner: Arc<Inner>) {
    // One permit per HTTP connection, kept by its session after the upgrade.
    let permits = Arc::new(Semaphore::new(inner.config.max_sessions));
    let stop = stop_signal(inner.stopped.clone());
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => Arc::new(p),
                Err(_) => return,
            },
            _ = &mut stop => return,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut stop => return,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of descriptors and the like: wait a little instead of spinning.
                tracing::warn!("streaming server: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let inner = inner.clone();
        tokio::spawn(async move {
            let stopped = inner.stopped.clone();
            let service = service_fn(move |req: Request<Body>| {
                let inner = inner.clone();
                let permit = permit.clone();
                async move { Ok::<_, Infallible>(handle(inner, req, permit)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades();
            tokio::select! {
                r = conn => if let Err(e) = r {
                    tracing::debug!("streaming server connection: {e}");
                },
                _ = stop_signal(stopped) => {}
            }
        });
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{text}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Routes `/exec/TOKEN`, `/attach/TOKEN` and `/portforward/TOKEN` (GET or POST, as
/// kubelet): the token is consumed, the connection upgraded, the session spawned.
fn handle(
    inner: Arc<Inner>,
    mut req: Request<Body>,
    permit: Arc<OwnedSemaphorePermit>,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    let route = req
        .uri()
        .path()
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .filter(|(_, token)| !token.is_empty() && !token.contains('/'))
        .map(|(kind, token)| (kind.to_string(), token.to_string()));
    let Some((kind, token)) = route else {
        return plain(StatusCode::NOT_FOUND, "404 page not found");
    };
    // Consumed whatever follows: a token is good for one request.
    let request = match (kind.as_str(), inner.cache.consume(&token)) {
        ("exec", Some(r @ Cached::Exec(_)))
        | ("attach", Some(r @ Cached::Attach(_)))
        | ("portforward", Some(r @ Cached::PortForward(_))) => r,
        _ => return plain(StatusCode::NOT_FOUND, "404 page not found"),
    };
    let protocols: &[&str] = match request {
        Cached::PortForward(_) => &portforward::SUPPORTED,
        _ => &Protocol::SUPPORTED,
    };
    let upgrade = match SpdyUpgrade::accept(&mut req, protocols) {
        Ok(u) => u,
        Err(e) => return e.to_response(),
    };
    let response = upgrade.response();
    let stopped = inner.stopped.clone();
    tokio::spawn(async move {
        let session = session::run(inner, upgrade, request);
        tokio::select! {
            _ = session => {}
            _ = stop_signal(stopped) => {}
        }
        drop(permit);
    });
    response
}

/// Kubelet's checks of the streams a session asks for.
fn validate_streams(stdin: bool, stdout: bool, stderr: bool, tty: bool) -> Result<(), Status> {
    if tty && stderr {
        // A terminal merges stderr into stdout: there is nothing to send on it.
        return Err(Status::invalid_argument(
            "tty and stderr cannot both be true",
        ));
    }
    if !stdin && !stdout && !stderr {
        return Err(Status::invalid_argument(
            "one of stdin, stdout, or stderr must be set",
        ));
    }
    Ok(())
}

fn validate_exec(req: &ExecRequest) -> Result<(), Status> {
    if req.container_id.is_empty() {
        return Err(Status::invalid_argument("missing required container_id"));
    }
    if req.cmd.is_empty() || req.cmd[0].is_empty() {
        return Err(Status::invalid_argument("missing required cmd"));
    }
    validate_streams(req.stdin, req.stdout, req.stderr, req.tty)
}

fn validate_attach(req: &AttachRequest) -> Result<(), Status> {
    if req.container_id.is_empty() {
        return Err(Status::invalid_argument("missing required container_id"));
    }
    validate_streams(req.stdin, req.stdout, req.stderr, req.tty)
}

fn validate_port_forward(req: &PortForwardRequest) -> Result<(), Status> {
    if req.pod_sandbox_id.is_empty() {
        return Err(Status::invalid_argument("missing required pod_sandbox_id"));
    }
    if let Some(bad) = req
        .port
        .iter()
        .find(|p| u16::try_from(**p).map_or(true, |p| p == 0))
    {
        return Err(Status::invalid_argument(format!(
            "invalid port {bad}: ports are 1 to 65535"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(cmd: &[&str], stdin: bool, stdout: bool, stderr: bool, tty: bool) -> ExecRequest {
        ExecRequest {
            container_id: "c1".into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            tty,
            stdin,
            stdout,
            stderr,
        }
    }

    #[test]
    fn requests_are_checked_as_kubelet_does() {
        let invalid = |r: Result<(), Status>| r.unwrap_err().code() == tonic::Code::InvalidArgument;
        assert!(validate_exec(&exec(&["sh"], true, true, true, false)).is_ok());
        assert!(validate_exec(&exec(&["sh"], true, true, false, true)).is_ok());
        assert!(invalid(validate_exec(&exec(&[], true, true, false, false))));
        assert!(invalid(validate_exec(&exec(
            &[""],
            true,
            true,
            false,
            false
        ))));
        let e = validate_exec(&exec(&["sh"], true, true, true, true)).unwrap_err();
        assert!(e.message().contains("tty and stderr"), "{e}");
        let e = validate_exec(&exec(&["sh"], false, false, false, false)).unwrap_err();
        assert!(
            e.message().contains("one of stdin, stdout, or stderr"),
            "{e}"
        );
        let mut no_id = exec(&["sh"], true, false, false, false);
        no_id.container_id.clear();
        assert!(invalid(validate_exec(&no_id)));

        let attach = AttachRequest {
            container_id: "c1".into(),
            stdin: true,
            tty: true,
            stdout: true,
            stderr: false,
        };
        assert!(validate_attach(&attach).is_ok());
        assert!(invalid(validate_attach(&AttachRequest {
            stderr: true,
            ..attach.clone()
        })));
        assert!(invalid(validate_attach(&AttachRequest {
            stdin: false,
            stdout: false,
            ..attach.clone()
        })));
        assert!(invalid(validate_attach(&AttachRequest {
            container_id: String::new(),
            ..attach
        })));

        let pf = |id: &str, port: Vec<i32>| PortForwardRequest {
            pod_sandbox_id: id.into(),
            port,
        };
        assert!(validate_port_forward(&pf("sb", vec![])).is_ok());
        assert!(validate_port_forward(&pf("sb", vec![80, 65535])).is_ok());
        assert!(invalid(validate_port_forward(&pf("", vec![80]))));
        assert!(invalid(validate_port_forward(&pf("sb", vec![0]))));
        assert!(invalid(validate_port_forward(&pf("sb", vec![65536]))));
        assert!(invalid(validate_port_forward(&pf("sb", vec![-1]))));
    }

    #[tokio::test]
    async fn only_loopback_addresses_are_served() {
        let runtime: Arc<dyn Runtime> = Arc::new(podhost_runtime::fake::FakeRuntime::new(
            Default::default(),
            &[],
        ));
        let config = StreamingConfig {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            ..Default::default()
        };
        let e = StreamingServer::start(config, runtime.clone())
            .await
            .err()
            .unwrap();
        assert!(matches!(e, ServerError::NotLoopback(_)), "{e}");
        let server = StreamingServer::start(StreamingConfig::default(), runtime)
            .await
            .unwrap();
        assert!(server.local_addr().ip().is_loopback());
        assert_ne!(server.local_addr().port(), 0);
        let url = server
            .get_exec(&exec(&["sh"], true, true, false, true))
            .unwrap()
            .url;
        let prefix = format!("http://127.0.0.1:{}/exec/", server.local_addr().port());
        assert!(url.starts_with(&prefix), "{url}");
        server.shutdown().await;
    }
}
