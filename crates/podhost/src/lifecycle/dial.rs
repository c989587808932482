//! Reaching a pod's ports from the daemon for probes and hooks (httpGet, tcpSocket,
//! grpc): HTTP, TLS and gRPC over a connection made inside the pod's network namespace
//! by [`podhost_runtime::dial`] (which port-forward uses too).

use std::path::Path;
use std::time::Duration;

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub use podhost_runtime::dial::go_error;

/// Why a connection or an HTTP request to a pod failed; the text goes into events.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The connection itself (namespace, name, TCP).
    #[error(transparent)]
    Dial(#[from] podhost_runtime::dial::DialError),
    /// Sending the request or reading the answer failed.
    #[error("{url}: {}", go_error(source))]
    Http {
        /// The request URL.
        url: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake of an HTTPS request failed.
    #[error("{url}: TLS handshake: {}", go_error(source))]
    Tls {
        /// The request URL.
        url: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The answer was not HTTP.
    #[error("{url}: malformed HTTP response {line:?}")]
    BadResponse {
        /// The request URL.
        url: String,
        /// The first line received.
        line: String,
    },
}

/// Connect to `host:port` inside the network namespace at `netns` (empty: the daemon's).
pub async fn connect(
    netns: &Path,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<tokio::net::TcpStream, DialError> {
    Ok(podhost_runtime::dial::connect(netns, host, port, timeout).await?)
}

/// An HTTP GET as kubelet's prober sends it.
#[derive(Debug, Clone)]
pub struct HttpGet {
    /// Host to connect to (and the Host header).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Path with query.
    pub path: String,
    /// Extra headers (`Host` among them replaces the default).
    pub headers: Vec<(String, String)>,
    /// `scheme: HTTPS`: TLS first, without checking the server's certificate, like
    /// kubelet's prober (pods serve self-signed certificates; only the answer counts).
    pub tls: bool,
}

impl HttpGet {
    /// `http[s]://host:port/path`, for messages.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}:{}{}", self.host, self.port, self.path)
    }
}

/// Send the GET inside `netns` and return the status code (body discarded, capped).
pub async fn http_get(netns: &Path, req: &HttpGet, timeout: Duration) -> Result<u16, DialError> {
    let s = connect(netns, &req.host, req.port, timeout).await?;
    if !req.tls {
        return exchange(s, req).await;
    }
    let tls = |source| DialError::Tls {
        url: req.url(),
        source,
    };
    let name = ServerName::try_from(req.host.clone())
        .map_err(|e| tls(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
    let stream = tls_connector()
        .map_err(tls)?
        .connect(name, s)
        .await
        .map_err(tls)?;
    exchange(stream, req).await
}

/// The request and the status line of the answer, over plain TCP or TLS.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    req: &HttpGet,
) -> Result<u16, DialError> {
    let url = req.url();
    let http = |source| DialError::Http {
        url: url.clone(),
        source,
    };
    let path = if req.path.is_empty() { "/" } else { &req.path };
    let mut head = format!("GET {path} HTTP/1.1\r\n");
    let has = |name: &str| {
        req.headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    };
    if !has("host") {
        head.push_str(&format!("Host: {}:{}\r\n", req.host, req.port));
    }
    if !has("user-agent") {
        head.push_str("User-Agent: kube-probe/1.31\r\n");
    }
    if !has("accept") {
        head.push_str("Accept: */*\r\n");
    }
    for (k, v) in &req.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    s.write_all(head.as_bytes()).await.map_err(http)?;
    // Only the status line matters; read until it is complete.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.contains(&b'\n') && buf.len() < 8192 {
        let n = s.read(&mut chunk).await.map_err(http)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&buf)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let code = line
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok());
    code.ok_or(DialError::BadResponse { url, line })
}

/// What a gRPC health check answered, or why it did not get an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrpcHealth {
    /// `SERVING`.
    Serving,
    /// Another status (`NOT_SERVING`, `SERVICE_UNKNOWN`, `UNKNOWN`), by its proto name.
    NotServing(String),
    /// The call failed (`rpc error: code = … desc = …`, kubelet's words).
    RpcError(String),
}

/// `grpc.health.v1.Health/Check` for `service` at `host:port` inside `netns`, plaintext
/// like kubelet's gRPC prober, over one connection made in the pod's namespace.
pub async fn grpc_health(
    netns: &Path,
    host: &str,
    port: u16,
    service: &str,
    timeout: Duration,
) -> Result<GrpcHealth, DialError> {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
    let stream = connect(netns, host, port, timeout).await?;
    let slot = Arc::new(std::sync::Mutex::new(Some(stream)));
    // The channel asks its connector for a stream: hand it the one made in the pod.
    let connector = tower::service_fn(move |_: hyper::Uri| {
        let taken = slot.lock().ok().and_then(|mut s| s.take());
        async move {
            taken
                .map(hyper_util::rt::TokioIo::new)
                .ok_or_else(|| std::io::Error::other("the probe's connection was used"))
        }
    });
    let addr = format!("{host}:{port}");
    let rpc = |e: String| GrpcHealth::RpcError(e);
    let channel = match tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| podhost_runtime::dial::DialError::Connect {
            addr: addr.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
        })?
        .connect_with_connector(connector)
        .await
    {
        Ok(c) => c,
        Err(e) => return Ok(rpc(format!("failed to connect service {addr:?}: {e}"))),
    };
    let req = HealthCheckRequest {
        service: service.to_string(),
    };
    match HealthClient::new(channel).check(req).await {
        Ok(r) => {
            let status = r.into_inner().status;
            Ok(match ServingStatus::try_from(status) {
                Ok(ServingStatus::Serving) => GrpcHealth::Serving,
                Ok(other) => GrpcHealth::NotServing(other.as_str_name().to_string()),
                Err(_) => GrpcHealth::NotServing(status.to_string()),
            })
        }
        Err(s) => Ok(rpc(format!(
            "rpc error: code = {:?} desc = {}",
            s.code(),
            s.message()
        ))),
    }
}

/// The TLS client of HTTPS probes and hooks, made once.
fn tls_connector() -> Result<tokio_rustls::TlsConnector, std::io::Error> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map(|b| {
                Arc::new(
                    b.dangerous()
                        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                        .with_no_client_auth(),
                )
            })
            .map_err(|e| e.to_string())
    });
    match config {
        Ok(c) => Ok(tokio_rustls::TlsConnector::from(c.clone())),
        Err(e) => Err(std::io::Error::other(e.clone())),
    }
}

/// Accepts any server certificate (kubelet's `InsecureSkipVerify`), but still checks
/// that the server holds the key of the certificate it sent.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[tokio::test]
    async fn http_get_reads_status_in_own_netns() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let t = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut c, _) = l.accept().expect("accept");
            let mut b = [0u8; 1024];
            let n = c.read(&mut b).expect("read");
            let req = String::from_utf8_lossy(&b[..n]).to_string();
            c.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
                .expect("write");
            req
        });
        let req = HttpGet {
            host: "127.0.0.1".into(),
            port,
            path: "/healthz".into(),
            headers: vec![("X-A".into(), "b".into())],
            tls: false,
        };
        let code = http_get(Path::new(""), &req, Duration::from_secs(2))
            .await
            .expect("get");
        assert_eq!(code, 503);
        let sent = t.join().expect("join");
        assert!(sent.starts_with("GET /healthz HTTP/1.1\r\n"), "{sent}");
        assert!(sent.contains("User-Agent: kube-probe/"), "{sent}");
        assert!(sent.contains("X-A: b"), "{sent}");
    }

    /// A self-signed certificate and key made with the openssl command.
    fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let st = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
            .args(["-subj", "/CN=pod.invalid", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run openssl (apt-get install openssl)");
        assert!(st.success(), "openssl req failed");
        (cert, key)
    }

    #[tokio::test]
    async fn https_get_skips_certificate_checks_like_kubelet() {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::PrivateKeyDer;
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = self_signed(dir.path());
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
            .expect("cert file")
            .collect::<Result<_, _>>()
            .expect("certs");
        let key = PrivateKeyDer::from_pem_file(&key).expect("key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = l.local_addr().expect("addr").port();
        let serve = tokio::spawn(async move {
            let (tcp, _) = l.accept().await.expect("accept");
            let mut tls = acceptor.accept(tcp).await.expect("handshake");
            let mut b = [0u8; 1024];
            let n = tls.read(&mut b).await.expect("read");
            tls.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                .await
                .expect("write");
            let _ = tls.shutdown().await;
            String::from_utf8_lossy(&b[..n]).to_string()
        });
        let req = HttpGet {
            host: "127.0.0.1".into(),
            port,
            path: "/secure".into(),
            headers: Vec::new(),
            tls: true,
        };
        let code = http_get(Path::new(""), &req, Duration::from_secs(5))
            .await
            .expect("https get");
        assert_eq!(code, 204);
        let sent = serve.await.expect("server");
        assert!(sent.starts_with("GET /secure HTTP/1.1\r\n"), "{sent}");
        assert_eq!(req.url(), format!("https://127.0.0.1:{port}/secure"));
    }

    #[tokio::test]
    async fn https_to_a_plain_http_server_is_a_tls_error() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let t = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut c, _) = l.accept().expect("accept");
            let mut b = [0u8; 1024];
            let _ = c.read(&mut b);
            let _ = c.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        });
        let req = HttpGet {
            host: "127.0.0.1".into(),
            port,
            path: "/".into(),
            headers: Vec::new(),
            tls: true,
        };
        let e = http_get(Path::new(""), &req, Duration::from_secs(5))
            .await
            .expect_err("not TLS");
        assert!(matches!(e, DialError::Tls { .. }), "{e}");
        let _ = t.join();
    }

    #[tokio::test]
    async fn grpc_health_check_reads_serving_and_not_serving() {
        use tonic_health::ServingStatus;
        let (reporter, service) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("", ServingStatus::Serving)
            .await;
        reporter
            .set_service_status("db", ServingStatus::NotServing)
            .await;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = l.local_addr().expect("addr").port();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream_of(l)),
        );
        let t = Duration::from_secs(5);
        let check = |svc: &'static str| grpc_health(Path::new(""), "127.0.0.1", port, svc, t);
        assert_eq!(check("").await.expect("check"), GrpcHealth::Serving);
        assert_eq!(
            check("db").await.expect("check"),
            GrpcHealth::NotServing("NOT_SERVING".into())
        );
        match check("nope").await.expect("check") {
            GrpcHealth::RpcError(e) => assert!(e.contains("NotFound"), "{e}"),
            other => panic!("unknown service: {other:?}"),
        }
        server.abort();
    }

    /// Accepted connections of `l` as the stream tonic's server takes.
    fn tokio_stream_of(
        l: tokio::net::TcpListener,
    ) -> impl futures_util::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
        futures_util::stream::unfold(l, |l| async move {
            let r = l.accept().await.map(|(s, _)| s);
            Some((r, l))
        })
    }

    #[tokio::test]
    async fn refused_connection_names_the_address() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        let e = connect(Path::new(""), "127.0.0.1", port, Duration::from_secs(1))
            .await
            .expect_err("refused");
        // Go's wording, as kubelet's probe messages: no Rust `(os error 111)`.
        assert_eq!(
            e.to_string(),
            format!("dial tcp 127.0.0.1:{port}: connect: connection refused")
        );
    }
}
