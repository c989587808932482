//! Reaching a pod's ports from the daemon for probes and hooks (httpGet, tcpSocket).
//!
//! Pods may have no routable IP (and a hostNetwork pod shares the host's), so podhost
//! connects *inside* the pod's network namespace: a short-lived thread `setns()`s into
//! the sandbox's pinned netns and connects to `host:port` (127.0.0.1 by default). A
//! socket keeps the namespace it was created in, so the connected stream is then used
//! from the async side like any other. The thread ends right after, so no daemon thread
//! is ever left in a pod's namespace. An empty netns path means "the daemon's own"
//! (host network, or the fake runtime in tests).

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Why a connection or an HTTP request to a pod failed; the text goes into events.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The pod's network namespace could not be entered.
    #[error("entering network namespace {path}: {source}")]
    Netns {
        /// The pinned netns.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The host name did not resolve.
    #[error("resolving {host}: {source}")]
    Resolve {
        /// The host as written.
        host: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// TCP connect failed (refused, unreachable, timed out).
    #[error("dial tcp {addr}: connect: {source}")]
    Connect {
        /// Where to.
        addr: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Sending the request or reading the answer failed.
    #[error("{url}: {source}")]
    Http {
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
    /// The helper thread died.
    #[error("connect helper thread failed")]
    Thread,
}

/// Connect to `host:port` inside the network namespace at `netns` (empty: the daemon's).
pub async fn connect(
    netns: &Path,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<tokio::net::TcpStream, DialError> {
    let netns = netns.to_path_buf();
    let host = host.to_string();
    let (tx, rx) = tokio::sync::oneshot::channel();
    // A plain thread, not a tokio blocking-pool thread: it changes its own namespace
    // and must die afterwards instead of going back to a pool.
    std::thread::Builder::new()
        .name("podhost-dial".into())
        .spawn(move || {
            let _ = tx.send(connect_blocking(&netns, &host, port, timeout));
        })
        .map_err(|_| DialError::Thread)?;
    let std_stream = rx.await.map_err(|_| DialError::Thread)??;
    let addr = std_stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let connect_err = |source| DialError::Connect {
        addr: addr.clone(),
        source,
    };
    std_stream.set_nonblocking(true).map_err(connect_err)?;
    tokio::net::TcpStream::from_std(std_stream).map_err(connect_err)
}

fn connect_blocking(
    netns: &Path,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<TcpStream, DialError> {
    if !netns.as_os_str().is_empty() {
        enter_netns(netns).map_err(|source| DialError::Netns {
            path: netns.to_path_buf(),
            source,
        })?;
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|source| DialError::Resolve {
            host: host.to_string(),
            source,
        })?
        .collect();
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for a in &addrs {
        match TcpStream::connect_timeout(a, timeout.max(Duration::from_millis(1))) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(DialError::Connect {
        addr: format!("{host}:{port}"),
        source: last,
    })
}

/// Move the calling thread into the network namespace pinned at `path`.
fn enter_netns(path: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path)?;
    // SAFETY: setns on a namespace fd we hold open; only this thread changes namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
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
}

impl HttpGet {
    /// `http://host:port/path`, for messages.
    pub fn url(&self) -> String {
        format!("http://{}:{}{}", self.host, self.port, self.path)
    }
}

/// Send the GET inside `netns` and return the status code (body discarded, capped).
pub async fn http_get(netns: &Path, req: &HttpGet, timeout: Duration) -> Result<u16, DialError> {
    let mut s = connect(netns, &req.host, req.port, timeout).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[tokio::test]
    async fn refused_connection_names_the_address() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        let e = connect(Path::new(""), "127.0.0.1", port, Duration::from_secs(1))
            .await
            .expect_err("refused");
        assert!(
            e.to_string().contains("connection refused") || e.to_string().contains("refused"),
            "{e}"
        );
    }
}
