//! HTTP/1.1 client of the daemon's unix socket.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

/// The daemon could not be reached, or went away in the middle of an answer (a restart):
/// a following client may try again.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DaemonGone(String);

/// A connection factory for the daemon's socket.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    /// Client of the daemon listening on `socket`.
    pub fn new(socket: &Path) -> Self {
        Client {
            socket: socket.to_path_buf(),
        }
    }

    async fn send(&self, req: Request<Full<Bytes>>) -> Result<Response<Incoming>> {
        let stream = UnixStream::connect(&self.socket).await.map_err(|e| {
            DaemonGone(format!(
                "cannot reach the podhost daemon at {} ({e}).\nStart it with `podhost serve` (as root), or run `./podhost.sh setup` which installs and starts it.",
                self.socket.display()
            ))
        })?;
        let gone = |e: hyper::Error| DaemonGone(format!("the podhost daemon hung up: {e}"));
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(gone)?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(sender.send_request(req).await.map_err(gone)?)
    }

    fn build(
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Request<Full<Bytes>>> {
        let bytes = match body {
            Some(v) => Bytes::from(serde_json::to_vec(&v)?),
            None => Bytes::new(),
        };
        Ok(Request::builder()
            .method(method)
            .uri(format!("http://podhost{path}"))
            .header("host", "podhost")
            .header("content-type", "application/json")
            .body(Full::new(bytes))?)
    }

    /// Send a request and decode a JSON answer; API errors become their message.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T> {
        let resp = self.send(Self::build(method, path, body)?).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!("{}", error_text(status, &bytes));
        }
        serde_json::from_slice(&bytes).with_context(|| format!("decoding answer of {path}"))
    }

    /// A streamed text answer (logs): `on_head` sees the headers, then `on_chunk` each piece.
    pub async fn stream(
        &self,
        path: &str,
        on_head: impl FnOnce(&hyper::HeaderMap),
        on_chunk: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        self.stream_request(Self::build(Method::GET, path, None)?, on_head, on_chunk)
            .await
    }

    /// A POST whose answer is streamed (pull progress).
    pub async fn stream_post(
        &self,
        path: &str,
        body: serde_json::Value,
        on_chunk: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        self.stream_request(
            Self::build(Method::POST, path, Some(body))?,
            |_| {},
            on_chunk,
        )
        .await
    }

    async fn stream_request(
        &self,
        req: Request<Full<Bytes>>,
        on_head: impl FnOnce(&hyper::HeaderMap),
        mut on_chunk: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let resp = self.send(req).await?;
        let status = resp.status();
        on_head(resp.headers());
        let mut body = resp.into_body();
        if !status.is_success() {
            let bytes = body.collect().await?.to_bytes();
            bail!("{}", error_text(status, &bytes));
        }
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| DaemonGone(format!("the podhost daemon hung up: {e}")))?;
            if let Ok(data) = frame.into_data() {
                on_chunk(&data)?;
            }
        }
        Ok(())
    }

    /// Upgrade the connection (exec) and return the raw stream.
    pub async fn upgrade(&self, path: &str) -> Result<TokioIo<hyper::upgrade::Upgraded>> {
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("http://podhost{path}"))
            .header("host", "podhost")
            .header("connection", "upgrade")
            .header("upgrade", "podhost-exec")
            .body(Full::new(Bytes::new()))?;
        let resp = self.send(req).await?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            let status = resp.status();
            let bytes = resp.into_body().collect().await?.to_bytes();
            bail!("{}", error_text(status, &bytes));
        }
        Ok(TokioIo::new(hyper::upgrade::on(resp).await?))
    }
}

fn error_text(status: StatusCode, bytes: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or_else(|| {
            format!(
                "daemon answered {status}: {}",
                String::from_utf8_lossy(bytes)
            )
        })
}

/// Percent-encode a query value.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
