//! Connecting to a port *inside* a pod's network namespace: what probes, hooks and
//! port-forward do.
//!
//! Pods may have no routable IP (and a hostNetwork pod shares the host's), so the
//! connection is made in the pod's namespace: a short-lived thread `setns()`s into the
//! sandbox's pinned netns and connects to `host:port` (127.0.0.1 usually). A socket keeps
//! the namespace it was created in, so the connected stream is then used from the async
//! side like any other. The thread ends right after, so no daemon thread is ever left in
//! a pod's namespace. An empty netns path means "the daemon's own" (host network, or the
//! fake runtime in tests).

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// An OS error as Go (and so kubelet's probe messages) prints it: `connection refused`,
/// not Rust's `Connection refused (os error 111)`.
pub fn go_error(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match (e.raw_os_error(), text.rfind(" (os error ")) {
        (Some(_), Some(i)) => text[..i].to_string(),
        _ => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// Why a connection inside a pod's network namespace failed.
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
    #[error("resolving {host}: {}", go_error(source))]
    Resolve {
        /// The host as written.
        host: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// TCP connect failed (refused, unreachable, timed out).
    #[error("dial tcp {addr}: connect: {}", go_error(source))]
    Connect {
        /// Where to.
        addr: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refused_connection_names_the_address() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        let e = connect(Path::new(""), "127.0.0.1", port, Duration::from_secs(1))
            .await
            .expect_err("refused");
        assert!(e.to_string().contains("refused"), "{e}");
        assert!(e.to_string().contains(&port.to_string()), "{e}");
    }

    #[tokio::test]
    async fn a_missing_namespace_is_named() {
        let e = connect(
            Path::new("/nonexistent/netns"),
            "127.0.0.1",
            1,
            Duration::from_secs(1),
        )
        .await
        .expect_err("no netns");
        assert!(matches!(e, DialError::Netns { .. }), "{e}");
        assert!(e.to_string().contains("/nonexistent/netns"), "{e}");
    }
}
