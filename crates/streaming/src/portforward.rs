//! Port forwarding over SPDY: kubelet's `portforward.k8s.io` subprotocol.
//!
//! For each forwarded connection the client opens two streams carrying the same
//! `port` and `requestid` headers: `streamtype: error` (which it half-closes at once:
//! only the server writes there) and `streamtype: data`. Once both arrived the server
//! connects to the port inside the pod and copies bytes both ways; a failure is written
//! as text on the error stream. When the pod side closes, the server closes both streams,
//! which is what the client waits for.

use std::collections::HashMap;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::remotecommand::{STREAM_ERROR, STREAM_TYPE};
use crate::spdy::{Connection, Incoming, PendingStream, Stream};

/// The subprotocol name.
pub const PROTOCOL_V1: &str = "portforward.k8s.io";
/// What kubelet's server accepts.
pub const SUPPORTED: [&str; 1] = [PROTOCOL_V1];
/// The header with the port in the pod.
pub const PORT_HEADER: &str = "port";
/// The header pairing a data stream with its error stream.
pub const REQUEST_ID_HEADER: &str = "requestid";
/// `streamtype` of the data stream.
pub const STREAM_DATA: &str = "data";

/// One forwarded connection: both streams have arrived.
pub struct ForwardRequest {
    /// The port in the pod.
    pub port: u16,
    /// The client's id for this connection.
    pub request_id: String,
    /// The bytes of the forwarded connection.
    pub data: Stream,
    /// Where the server reports failure (text).
    pub error: Stream,
}

impl ForwardRequest {
    /// Copies between the data stream and `target` (the connection to the pod's port)
    /// until the pod side closes, then closes both streams. A client half-close is
    /// passed on as a half-close of `target`. Errors are reported on the error stream.
    pub async fn forward<T>(self, target: T)
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        let ForwardRequest {
            data, mut error, ..
        } = self;
        let (mut from_client, mut to_client) = data.into_split();
        let (mut from_pod, mut to_pod) = tokio::io::split(target);
        let upstream = async {
            let copied = tokio::io::copy(&mut from_client, &mut to_pod).await;
            let _ = to_pod.shutdown().await;
            copied
        };
        let downstream = async {
            let copied = tokio::io::copy(&mut from_pod, &mut to_client).await;
            let _ = to_client.shutdown().await;
            copied
        };
        tokio::pin!(upstream, downstream);
        let mut upstream_done = false;
        let failure = loop {
            tokio::select! {
                done = &mut upstream, if !upstream_done => {
                    upstream_done = true;
                    if let Err(e) = done {
                        break Some(format!("error copying from client to pod: {e}"));
                    }
                }
                done = &mut downstream => {
                    break done.err().map(|e| format!("error copying from pod to client: {e}"));
                }
            }
        };
        if let Some(message) = failure {
            let _ = error.write_all(message.as_bytes()).await;
        }
        let _ = error.shutdown().await;
    }

    /// Reports that the port could not be reached and closes the streams.
    pub async fn fail(self, message: &str) {
        let ForwardRequest {
            mut data,
            mut error,
            ..
        } = self;
        let _ = error.write_all(message.as_bytes()).await;
        let _ = error.shutdown().await;
        let _ = data.shutdown().await;
    }
}

/// Half of a pair, waiting for the other half.
struct Partial {
    /// The `port` header.
    port: u16,
    /// The data stream, once here.
    data: Option<Stream>,
    /// The error stream, once here.
    error: Option<Stream>,
    /// When the pair is given up.
    deadline: Instant,
}

/// Pairs the streams of a port-forward connection into [`ForwardRequest`]s.
pub struct PortForwardStreams {
    /// The connection; closing it ends all forwards.
    conn: Connection,
    /// Streams the client opens.
    incoming: Incoming,
    /// Pairs waiting for their second stream, by request id.
    pending: HashMap<String, Partial>,
    /// How long a pair may wait for its second stream.
    timeout: Duration,
}

impl PortForwardStreams {
    /// Starts pairing streams; a pair incomplete after `timeout` is dropped with an
    /// error message (kubelet's streamCreationTimeout, 30 s).
    pub fn new(conn: Connection, incoming: Incoming, timeout: Duration) -> Self {
        Self {
            conn,
            incoming,
            pending: HashMap::new(),
            timeout,
        }
    }

    /// The connection (to close it, or wait for it to end).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The next complete pair; `None` once the connection ended.
    pub async fn next(&mut self) -> Option<ForwardRequest> {
        loop {
            let deadline = self.pending.values().map(|p| p.deadline).min();
            let pending = tokio::select! {
                pending = self.incoming.next() => pending?,
                _ = sleep_until(deadline) => {
                    self.expire().await;
                    continue;
                }
            };
            if let Some(request) = self.add(pending).await {
                return Some(request);
            }
        }
    }

    async fn expire(&mut self) {
        let now = Instant::now();
        let expired: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some(partial) = self.pending.remove(&id) {
                tracing::debug!(request = %id, "port-forward streams incomplete, dropping");
                if let Some(mut error) = partial.error {
                    let message = format!("timed out waiting for streams of request {id}");
                    let _ = error.write_all(message.as_bytes()).await;
                    let _ = error.shutdown().await;
                }
            }
        }
    }

    async fn add(&mut self, pending: PendingStream) -> Option<ForwardRequest> {
        let headers = pending.headers();
        let port = match headers.get(PORT_HEADER).map(str::parse::<u16>) {
            Some(Ok(port)) if port > 0 => port,
            _ => {
                tracing::debug!("refusing port-forward stream without a valid port");
                pending.refuse();
                return None;
            }
        };
        let kind = headers.get(STREAM_TYPE).unwrap_or("").to_string();
        if kind != STREAM_DATA && kind != STREAM_ERROR {
            pending.refuse();
            return None;
        }
        let request_id = match headers.get(REQUEST_ID_HEADER) {
            Some(id) if !id.is_empty() => id.to_string(),
            // Clients older than request ids open error then data with consecutive
            // odd ids; kubelet pairs them by id the same way.
            _ if kind == STREAM_ERROR => pending.id().to_string(),
            _ => pending.id().saturating_sub(2).to_string(),
        };
        let deadline = Instant::now() + self.timeout;
        let partial = self
            .pending
            .entry(request_id.clone())
            .or_insert_with(|| Partial {
                port,
                data: None,
                error: None,
                deadline,
            });
        let slot = if kind == STREAM_DATA {
            &mut partial.data
        } else {
            &mut partial.error
        };
        if slot.is_some() || partial.port != port {
            pending.refuse();
            return None;
        }
        *slot = Some(pending.accept());
        if partial.data.is_some() && partial.error.is_some() {
            let partial = self.pending.remove(&request_id)?;
            return Some(ForwardRequest {
                port: partial.port,
                request_id,
                data: partial.data?,
                error: partial.error?,
            });
        }
        None
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Client side: opens the error and data streams of one forwarded connection as
/// client-go does (error first, half-closed at once). Read the error stream to its end
/// after the data stream ended to learn whether the server failed.
pub async fn open_pair(
    conn: &Connection,
    port: u16,
    request_id: u32,
) -> Result<(Stream, Stream), crate::spdy::Error> {
    let mut headers = crate::spdy::Headers::new();
    headers
        .set(STREAM_TYPE, STREAM_ERROR)
        .set(PORT_HEADER, port.to_string())
        .set(REQUEST_ID_HEADER, request_id.to_string());
    let mut error = conn.open_stream(headers.clone()).await?;
    let _ = error.shutdown().await;
    headers.set(STREAM_TYPE, STREAM_DATA);
    let data = conn.open_stream(headers).await?;
    Ok((error, data))
}

/// Reads what the server wrote on an error stream (empty: no error).
pub async fn read_error(error: &mut Stream) -> std::io::Result<String> {
    let mut message = Vec::new();
    error.read_to_end(&mut message).await?;
    Ok(String::from_utf8_lossy(&message).into_owned())
}
