//! The HTTP/1.1 upgrade that starts a kubelet streaming session, as
//! k8s.io/apimachinery's httpstream does it: the client POSTs with
//! `Connection: Upgrade`, `Upgrade: SPDY/3.1` and one `X-Stream-Protocol-Version`
//! per subprotocol it speaks (its preference first); the server picks the first it
//! supports and answers `101 Switching Protocols` naming it, then both speak SPDY.
//! A server that shares no subprotocol answers 403 listing its own in
//! `X-Accepted-Stream-Protocol-Versions`; a request that is no upgrade gets 400.

use bytes::Bytes;
use http::header::{CONNECTION, HOST, UPGRADE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::spdy::{Config, Connection, Incoming};

/// The header naming subprotocols (`v4.channel.k8s.io`, `portforward.k8s.io`, ...).
pub const HEADER_PROTOCOL_VERSION: &str = "x-stream-protocol-version";
/// The header a refusing server lists its subprotocols in.
pub const HEADER_ACCEPTED_PROTOCOL_VERSIONS: &str = "x-accepted-stream-protocol-versions";
/// The `Upgrade` token of SPDY.
pub const SPDY_31: &str = "SPDY/3.1";

/// Why an upgrade did not happen.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// The request lacks `Connection: Upgrade` / `Upgrade: SPDY/3.1`.
    #[error("unable to upgrade: missing upgrade headers in request")]
    NotAnUpgrade,
    /// The request names no subprotocol.
    #[error("unable to upgrade: header {HEADER_PROTOCOL_VERSION} is missing or empty")]
    NoProtocol,
    /// No subprotocol of the client is one of the server's.
    #[error("unable to upgrade: unable to negotiate protocol: client supports {client:?}, server accepts {server:?}")]
    NoCommonProtocol {
        /// What the client offered.
        client: Vec<String>,
        /// What the server speaks.
        server: Vec<String>,
    },
    /// The request was no longer upgradable (already taken, or not HTTP/1.1).
    #[error("unable to upgrade: the connection cannot be taken over")]
    NotUpgradable,
    /// The connection failed during or after the 101 answer.
    #[error("upgrading the connection: {0}")]
    Hyper(#[from] hyper::Error),
    /// Client side: the server answered something other than 101 to SPDY.
    #[error("server refused the upgrade: {status} {body}")]
    Refused {
        /// The HTTP status.
        status: StatusCode,
        /// The server's explanation.
        body: String,
    },
    /// Client side: the request could not be built.
    #[error("building the upgrade request: {0}")]
    Request(#[from] http::Error),
}

impl UpgradeError {
    /// The answer kubelet's server gives for this error (before any upgrade).
    pub fn to_response(&self) -> Response<Full<Bytes>> {
        let status = match self {
            UpgradeError::NoCommonProtocol { .. } => StatusCode::FORBIDDEN,
            UpgradeError::NotAnUpgrade | UpgradeError::NoProtocol => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut response = Response::new(Full::new(Bytes::from(format!("{self}\n"))));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let UpgradeError::NoCommonProtocol { server, .. } = self {
            for protocol in server {
                if let Ok(value) = HeaderValue::from_str(protocol) {
                    headers.append(HEADER_ACCEPTED_PROTOCOL_VERSIONS, value);
                }
            }
        }
        response
    }
}

/// True when the request asks for an HTTP upgrade (to SPDY or WebSocket).
pub fn is_upgrade_request(headers: &HeaderMap) -> bool {
    header_contains(headers, CONNECTION.as_str(), "upgrade")
}

fn header_contains(headers: &HeaderMap, name: &str, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.to_ascii_lowercase().contains(&token.to_ascii_lowercase()))
    })
}

/// The subprotocols a client offers, in its order: every header line, comma-split.
pub fn offered_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(HEADER_PROTOCOL_VERSION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Picks the client's first subprotocol that the server supports.
pub fn negotiate(headers: &HeaderMap, server: &[&str]) -> Result<String, UpgradeError> {
    let client = offered_protocols(headers);
    if client.is_empty() {
        return Err(UpgradeError::NoProtocol);
    }
    client
        .iter()
        .find(|p| server.contains(&p.as_str()))
        .cloned()
        .ok_or_else(|| UpgradeError::NoCommonProtocol {
            client,
            server: server.iter().map(|s| s.to_string()).collect(),
        })
}

/// An accepted SPDY upgrade: send [`SpdyUpgrade::response`] as the handler's answer,
/// then await [`SpdyUpgrade::connect`] (typically in a spawned task) for the connection.
pub struct SpdyUpgrade {
    /// The negotiated subprotocol.
    protocol: String,
    /// Completes once hyper has sent the 101 and hands over the connection.
    on_upgrade: OnUpgrade,
}

impl SpdyUpgrade {
    /// Checks `request` as kubelet's server does and picks a subprotocol from `server`.
    pub fn accept<B>(request: &mut Request<B>, server: &[&str]) -> Result<Self, UpgradeError> {
        let headers = request.headers();
        if !is_upgrade_request(headers) || !header_contains(headers, UPGRADE.as_str(), SPDY_31) {
            return Err(UpgradeError::NotAnUpgrade);
        }
        let protocol = negotiate(headers, server)?;
        let on_upgrade = request
            .extensions_mut()
            .remove::<OnUpgrade>()
            .ok_or(UpgradeError::NotUpgradable)?;
        Ok(Self {
            protocol,
            on_upgrade,
        })
    }

    /// The negotiated subprotocol.
    pub fn protocol(&self) -> &str {
        &self.protocol
    }

    /// The 101 answer: `Connection: Upgrade`, `Upgrade: SPDY/3.1` and the subprotocol.
    pub fn response(&self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(UPGRADE, HeaderValue::from_static(SPDY_31));
        if let Ok(value) = HeaderValue::from_str(&self.protocol) {
            headers.insert(HEADER_PROTOCOL_VERSION, value);
        }
        response
    }

    /// Waits for the upgraded connection and starts SPDY on it as the server.
    pub async fn connect(self, config: Config) -> Result<(Connection, Incoming), UpgradeError> {
        let upgraded = self.on_upgrade.await?;
        Ok(Connection::server(TokioIo::new(upgraded), config))
    }
}

/// The client side: sends the upgrade request for `path` over `io` and starts SPDY.
/// Returns the negotiated subprotocol ("" when the server named none, which Go
/// clients take as the oldest protocol).
pub async fn connect<T>(
    io: T,
    host: &str,
    path: &str,
    protocols: &[&str],
    config: Config,
) -> Result<(String, Connection, Incoming), UpgradeError>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "upgrade client connection ended");
        }
    });
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(HOST, host)
        .header(CONNECTION, "Upgrade")
        .header(UPGRADE, SPDY_31);
    for protocol in protocols {
        request = request.header(HEADER_PROTOCOL_VERSION, *protocol);
    }
    let request = request.body(http_body_util::Empty::<Bytes>::new())?;
    let mut response = sender.send_request(request).await?;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS
        || !header_contains(response.headers(), UPGRADE.as_str(), SPDY_31)
    {
        let status = response.status();
        use http_body_util::BodyExt;
        let body = match response.into_body().collect().await {
            Ok(body) => String::from_utf8_lossy(&body.to_bytes()).into_owned(),
            Err(e) => e.to_string(),
        };
        return Err(UpgradeError::Refused {
            status,
            body: body.trim_end().to_string(),
        });
    }
    let protocol = response
        .headers()
        .get(HEADER_PROTOCOL_VERSION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let upgraded = hyper::upgrade::on(&mut response).await?;
    let (conn, incoming) = Connection::client(TokioIo::new(upgraded), config);
    Ok((protocol, conn, incoming))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(pairs: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::builder().method(Method::POST).uri("/exec/token");
        for (n, v) in pairs {
            builder = builder.header(*n, *v);
        }
        builder.body(()).unwrap()
    }

    const SERVER: &[&str] = &[
        "v4.channel.k8s.io",
        "v3.channel.k8s.io",
        "v2.channel.k8s.io",
        "channel.k8s.io",
    ];

    #[test]
    fn the_clients_first_supported_protocol_wins() {
        // client-go 1.29 offers v5 first (websocket-only on kubelet): v4 is chosen.
        let req = request(&[
            ("X-Stream-Protocol-Version", "v5.channel.k8s.io"),
            ("X-Stream-Protocol-Version", "v4.channel.k8s.io"),
            (
                "X-Stream-Protocol-Version",
                "v3.channel.k8s.io, v2.channel.k8s.io",
            ),
        ]);
        assert_eq!(
            negotiate(req.headers(), SERVER).unwrap(),
            "v4.channel.k8s.io"
        );
        let req = request(&[(
            "x-stream-protocol-version",
            "channel.k8s.io,v2.channel.k8s.io",
        )]);
        assert_eq!(negotiate(req.headers(), SERVER).unwrap(), "channel.k8s.io");
    }

    #[test]
    fn refusals_carry_kubelets_status_and_headers() {
        let req = request(&[("X-Stream-Protocol-Version", "portforward.k8s.io")]);
        let err = negotiate(req.headers(), SERVER).unwrap_err();
        let response = err.to_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let accepted: Vec<_> = response
            .headers()
            .get_all(HEADER_ACCEPTED_PROTOCOL_VERSIONS)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(accepted, SERVER);

        let mut no_upgrade = request(&[("X-Stream-Protocol-Version", "v4.channel.k8s.io")]);
        let err = SpdyUpgrade::accept(&mut no_upgrade, SERVER).err().unwrap();
        assert!(matches!(err, UpgradeError::NotAnUpgrade));
        assert_eq!(err.to_response().status(), StatusCode::BAD_REQUEST);

        let mut no_protocol = request(&[("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1")]);
        let err = SpdyUpgrade::accept(&mut no_protocol, SERVER).err().unwrap();
        assert!(matches!(err, UpgradeError::NoProtocol));
        assert_eq!(err.to_response().status(), StatusCode::BAD_REQUEST);

        let mut websocket = request(&[
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("X-Stream-Protocol-Version", "v4.channel.k8s.io"),
        ]);
        assert!(matches!(
            SpdyUpgrade::accept(&mut websocket, SERVER),
            Err(UpgradeError::NotAnUpgrade)
        ));
    }
}
