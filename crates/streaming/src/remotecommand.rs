//! Exec and attach over SPDY: kubelet's remotecommand subprotocols.
//!
//! The client opens one stream per channel, each named by its `streamtype` header:
//! `error` (always), `stdin`, `stdout`, `stderr` (never with a TTY) and, from v3 with a
//! TTY, `resize` (JSON `{"Width":..,"Height":..}` objects). The server waits until all
//! expected streams are there, runs the command, closes stdout/stderr, then reports the
//! result on the error stream: v4 writes a JSON `metav1.Status` (success, or
//! `NonZeroExitCode` with an `ExitCode` cause), v1-v3 write a plain message on failure
//! only. Closing the connection ends the session.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::spdy::{self, Connection, Headers, Incoming, RecvHalf, SendHalf, Stream};

/// The stream header naming a channel (Go's `api.StreamType`, sent lowercased).
pub const STREAM_TYPE: &str = "streamtype";
/// `streamtype` of the error/status channel.
pub const STREAM_ERROR: &str = "error";
/// `streamtype` of standard input.
pub const STREAM_STDIN: &str = "stdin";
/// `streamtype` of standard output.
pub const STREAM_STDOUT: &str = "stdout";
/// `streamtype` of standard error.
pub const STREAM_STDERR: &str = "stderr";
/// `streamtype` of terminal size changes.
pub const STREAM_RESIZE: &str = "resize";
/// How long kubelet waits for a client to open its streams.
pub const DEFAULT_STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// A remotecommand subprotocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    /// `channel.k8s.io`: the original (error stream: text).
    V1,
    /// `v2.channel.k8s.io`: stdin handling fixed.
    V2,
    /// `v3.channel.k8s.io`: adds terminal resizing.
    V3,
    /// `v4.channel.k8s.io`: error stream carries a JSON status with the exit code.
    V4,
}

impl Protocol {
    /// What kubelet's streaming server accepts over SPDY, preferred first.
    pub const SUPPORTED: [&'static str; 4] = [
        "v4.channel.k8s.io",
        "v3.channel.k8s.io",
        "v2.channel.k8s.io",
        "channel.k8s.io",
    ];

    /// The protocol a negotiated name stands for ("" is the unversioned V1).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "v4.channel.k8s.io" => Some(Self::V4),
            "v3.channel.k8s.io" => Some(Self::V3),
            "v2.channel.k8s.io" => Some(Self::V2),
            "channel.k8s.io" | "" => Some(Self::V1),
            _ => None,
        }
    }

    /// Its name in `X-Stream-Protocol-Version`.
    pub fn name(self) -> &'static str {
        match self {
            Self::V4 => "v4.channel.k8s.io",
            Self::V3 => "v3.channel.k8s.io",
            Self::V2 => "v2.channel.k8s.io",
            Self::V1 => "channel.k8s.io",
        }
    }

    /// Whether a TTY session has a `resize` stream.
    pub fn supports_resize(self) -> bool {
        self >= Self::V3
    }
}

/// Which channels the session has (from the CRI Exec/Attach request).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// The client sends standard input.
    pub stdin: bool,
    /// The client receives standard output.
    pub stdout: bool,
    /// The client receives standard error (ignored with a TTY: one stream carries both).
    pub stderr: bool,
    /// A terminal: stdout and stderr merged, resize events from v3 on.
    pub tty: bool,
}

impl Options {
    fn expected_streams(&self, protocol: Protocol) -> usize {
        1 + usize::from(self.stdin)
            + usize::from(self.stdout)
            + usize::from(self.stderr && !self.tty)
            + usize::from(self.tty && protocol.supports_resize())
    }
}

/// Why a session could not be set up or finished.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The negotiated name is no remotecommand protocol.
    #[error("unknown remotecommand protocol {0:?}")]
    UnknownProtocol(String),
    /// The client did not open its streams in time.
    #[error("timed out waiting for the client to create streams ({got} of {expected})")]
    Timeout {
        /// Streams received.
        got: usize,
        /// Streams expected.
        expected: usize,
    },
    /// The connection ended while waiting for streams.
    #[error("connection ended while waiting for streams ({got} of {expected})")]
    ConnectionEnded {
        /// Streams received.
        got: usize,
        /// Streams expected.
        expected: usize,
    },
    /// Writing the status failed.
    #[error("writing the exec status: {0}")]
    Io(#[from] std::io::Error),
    /// A resize message that is not the JSON kubelet expects.
    #[error("bad resize message: {0}")]
    Resize(#[from] serde_json::Error),
    /// A resize message over the size limit.
    #[error("resize message longer than {0} bytes")]
    ResizeTooLong(usize),
    /// The v4 status from the server is not what kubelet writes.
    #[error("error stream protocol error: {0}")]
    BadStatus(String),
    /// Opening a stream (client side) failed.
    #[error(transparent)]
    Spdy(#[from] spdy::Error),
}

/// How the command ended, as reported on the error stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// Exit code 0.
    Success,
    /// A non-zero exit code (0-255 on the wire; 128+N for signal N).
    Code(i32),
    /// The command could not be run (kubelet: InternalError 500).
    Failed(String),
}

/// A terminal size from the `resize` stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalSize {
    /// Columns.
    #[serde(rename = "Width")]
    pub width: u16,
    /// Rows.
    #[serde(rename = "Height")]
    pub height: u16,
}

/// The channels of an accepted exec/attach session.
pub struct Session {
    /// The negotiated protocol.
    protocol: Protocol,
    /// What the client types (take with [`Session::take_stdin`]).
    stdin: Option<RecvHalf>,
    /// Where the command's output goes.
    stdout: Option<SendHalf>,
    /// Where the command's errors go.
    stderr: Option<SendHalf>,
    /// Terminal resizes.
    resize: Option<ResizeEvents>,
    /// The status channel.
    error: Option<Stream>,
    /// Halves kept so the client does not see them end early: Go's client stops
    /// sending stdin as soon as the server closes its side of the stdin stream.
    keep_send: Vec<SendHalf>,
    /// The other halves of stdout/stderr (a dropped pair would reset the stream).
    keep_recv: Vec<RecvHalf>,
    /// The connection, closed by [`Session::finish`].
    conn: Connection,
}

impl Session {
    /// Waits for the client's streams (kubelet's `waitForStreams`): each stream of a
    /// known type is accepted as it comes; the session is ready once the count the
    /// options call for has arrived. Unknown and repeated types are refused.
    pub async fn accept(
        conn: Connection,
        mut incoming: Incoming,
        protocol: &str,
        options: Options,
        timeout: Duration,
    ) -> Result<Session, Error> {
        let protocol =
            Protocol::from_name(protocol).ok_or_else(|| Error::UnknownProtocol(protocol.into()))?;
        let expected = options.expected_streams(protocol);
        let mut session = Session {
            protocol,
            stdin: None,
            stdout: None,
            stderr: None,
            resize: None,
            error: None,
            keep_send: Vec::new(),
            keep_recv: Vec::new(),
            conn,
        };
        let mut got = 0;
        let wait = async {
            while got < expected {
                let Some(pending) = incoming.next().await else {
                    return Err(Error::ConnectionEnded { got, expected });
                };
                let kind = pending.headers().get(STREAM_TYPE).unwrap_or("").to_string();
                let taken = match kind.as_str() {
                    STREAM_ERROR => session.error.is_some(),
                    STREAM_STDIN => session.stdin.is_some(),
                    STREAM_STDOUT => session.stdout.is_some(),
                    STREAM_STDERR => session.stderr.is_some(),
                    STREAM_RESIZE => session.resize.is_some(),
                    _ => true,
                };
                if taken {
                    tracing::debug!(stream = %kind, "refusing unexpected exec stream");
                    pending.refuse();
                    continue;
                }
                let stream = pending.accept();
                got += 1;
                if kind == STREAM_ERROR {
                    session.error = Some(stream);
                    continue;
                }
                let (recv, send) = stream.into_split();
                match kind.as_str() {
                    STREAM_STDIN => {
                        session.stdin = Some(recv);
                        session.keep_send.push(send);
                    }
                    STREAM_STDOUT => {
                        session.stdout = Some(send);
                        session.keep_recv.push(recv);
                    }
                    STREAM_STDERR => {
                        session.stderr = Some(send);
                        session.keep_recv.push(recv);
                    }
                    _ => {
                        session.resize = Some(ResizeEvents::new(recv));
                        session.keep_send.push(send);
                    }
                }
            }
            Ok(())
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(())) => Ok(session),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Timeout { got, expected }),
        }
        // Dropping `incoming` here refuses any stream the client opens later.
    }

    /// The negotiated protocol.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Resolves once the connection has ended (the client went away, or closed it).
    pub async fn closed(&self) {
        self.conn.closed().await
    }

    /// Standard input from the client; EOF when the client closes it.
    pub fn take_stdin(&mut self) -> Option<RecvHalf> {
        self.stdin.take()
    }

    /// Standard output to the client; shut it down (or drop it) when output ends.
    pub fn take_stdout(&mut self) -> Option<SendHalf> {
        self.stdout.take()
    }

    /// Standard error to the client (never with a TTY).
    pub fn take_stderr(&mut self) -> Option<SendHalf> {
        self.stderr.take()
    }

    /// Terminal size changes (TTY sessions, v3 and later).
    pub fn take_resize(&mut self) -> Option<ResizeEvents> {
        self.resize.take()
    }

    /// Reports how the command ended and closes the session: stdout and stderr get
    /// FIN (if still held), the status goes out on the error stream, then the
    /// connection closes after everything queued is written.
    pub async fn finish(mut self, status: ExitStatus) -> Result<(), Error> {
        drop(self.stdout.take());
        drop(self.stderr.take());
        let result = match self.error.take() {
            Some(mut error) => {
                let message = status_message(self.protocol, &status);
                let written = match message {
                    Some(bytes) => error.write_all(&bytes).await,
                    None => Ok(()),
                };
                let _ = error.shutdown().await;
                written.map_err(Error::from)
            }
            None => Ok(()),
        };
        self.keep_send.clear();
        self.keep_recv.clear();
        drop(self.stdin.take());
        drop(self.resize.take());
        self.conn.close().await;
        result
    }
}

/// The bytes kubelet writes on the error stream for `status` (None: nothing).
pub fn status_message(protocol: Protocol, status: &ExitStatus) -> Option<Vec<u8>> {
    let message = match status {
        ExitStatus::Success => None,
        ExitStatus::Code(code) => Some(format!(
            "command terminated with non-zero exit code: exit status {code}"
        )),
        ExitStatus::Failed(reason) => Some(format!("Internal error occurred: {reason}")),
    };
    if protocol < Protocol::V4 {
        return message.map(String::into_bytes);
    }
    let status = match status {
        ExitStatus::Success => Status {
            metadata: Empty {},
            status: "Success",
            message: None,
            reason: None,
            details: None,
            code: None,
        },
        ExitStatus::Code(code) => Status {
            metadata: Empty {},
            status: "Failure",
            message,
            reason: Some("NonZeroExitCode"),
            details: Some(Details {
                causes: vec![Cause {
                    reason: Some("ExitCode".into()),
                    message: code.to_string(),
                }],
            }),
            code: None,
        },
        ExitStatus::Failed(reason) => Status {
            metadata: Empty {},
            status: "Failure",
            message,
            reason: Some("InternalError"),
            details: Some(Details {
                causes: vec![Cause {
                    reason: None,
                    message: reason.clone(),
                }],
            }),
            code: Some(500),
        },
    };
    serde_json::to_vec(&status).ok()
}

/// metav1.Status as Go marshals it (field order, omitted empties, `reason` for the
/// cause type: `StatusCause.Type` is tagged `json:"reason"`).
#[derive(Serialize, Deserialize)]
struct Status<'a> {
    metadata: Empty,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    details: Option<Details>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    code: Option<u16>,
}

#[derive(Serialize, Deserialize)]
struct Empty {}

#[derive(Serialize, Deserialize)]
struct Details {
    #[serde(default)]
    causes: Vec<Cause>,
}

#[derive(Serialize, Deserialize)]
struct Cause {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    reason: Option<String>,
    #[serde(default)]
    message: String,
}

/// Reads a v4 error-stream message as client-go does (`errorDecoderV4`).
pub fn parse_status(message: &[u8]) -> Result<ExitStatus, Error> {
    if message.is_empty() {
        return Ok(ExitStatus::Success);
    }
    let status: Status<'_> =
        serde_json::from_slice(message).map_err(|e| Error::BadStatus(e.to_string()))?;
    match (status.status, status.reason) {
        ("Success", _) => Ok(ExitStatus::Success),
        ("Failure", Some("NonZeroExitCode")) => {
            let details = status
                .details
                .ok_or_else(|| Error::BadStatus("details must be set".into()))?;
            let cause = details
                .causes
                .iter()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
                .ok_or_else(|| Error::BadStatus("no ExitCode cause given".into()))?;
            let code: u8 = cause
                .message
                .parse()
                .map_err(|_| Error::BadStatus(format!("invalid exit code {:?}", cause.message)))?;
            Ok(ExitStatus::Code(i32::from(code)))
        }
        ("Failure", _) => Ok(ExitStatus::Failed(status.message.unwrap_or_default())),
        (other, _) => Err(Error::BadStatus(format!("unknown status {other:?}"))),
    }
}

/// Terminal sizes the client sends, one JSON object after another.
pub struct ResizeEvents {
    /// The resize stream.
    stream: RecvHalf,
    /// Bytes read but not yet parsed.
    buf: BytesMut,
}

/// A resize message is a few dozen bytes; a longer one is garbage or hostile.
const MAX_RESIZE_MESSAGE: usize = 4096;

impl ResizeEvents {
    fn new(stream: RecvHalf) -> Self {
        Self {
            stream,
            buf: BytesMut::new(),
        }
    }

    /// The next size; `None` when the client closed the stream.
    pub async fn next(&mut self) -> Option<Result<TerminalSize, Error>> {
        loop {
            let mut values =
                serde_json::Deserializer::from_slice(&self.buf).into_iter::<TerminalSize>();
            match values.next() {
                Some(Ok(size)) => {
                    let used = values.byte_offset();
                    self.buf.advance(used);
                    return Some(Ok(size));
                }
                Some(Err(e)) if !e.is_eof() => return Some(Err(e.into())),
                _ => {}
            }
            if self.buf.len() > MAX_RESIZE_MESSAGE {
                return Some(Err(Error::ResizeTooLong(MAX_RESIZE_MESSAGE)));
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) => {
                    let rest = std::str::from_utf8(&self.buf).unwrap_or("x");
                    if rest.trim().is_empty() {
                        return None;
                    }
                    return Some(Err(Error::BadStatus(
                        "resize stream ended mid-message".into(),
                    )));
                }
                Ok(_) => {}
                Err(e) => return Some(Err(e.into())),
            }
        }
    }
}

/// The client's streams of a session, opened in client-go's order.
pub struct ClientStreams {
    /// Read the status from it (until EOF).
    pub error: Stream,
    /// Write stdin; shut it down for EOF.
    pub stdin: Option<Stream>,
    /// Read stdout.
    pub stdout: Option<Stream>,
    /// Read stderr.
    pub stderr: Option<Stream>,
    /// Write [`TerminalSize`] JSON.
    pub resize: Option<Stream>,
}

impl ClientStreams {
    /// Opens the streams as client-go does: error, stdin, stdout, stderr, resize.
    pub async fn open(
        conn: &Connection,
        protocol: Protocol,
        options: Options,
    ) -> Result<Self, Error> {
        let open = |kind: &'static str| {
            let mut headers = Headers::new();
            headers.set(STREAM_TYPE, kind);
            conn.open_stream(headers)
        };
        let error = open(STREAM_ERROR).await?;
        let stdin = match options.stdin {
            true => Some(open(STREAM_STDIN).await?),
            false => None,
        };
        let stdout = match options.stdout {
            true => Some(open(STREAM_STDOUT).await?),
            false => None,
        };
        let stderr = match options.stderr && !options.tty {
            true => Some(open(STREAM_STDERR).await?),
            false => None,
        };
        let resize = match options.tty && protocol.supports_resize() {
            true => Some(open(STREAM_RESIZE).await?),
            false => None,
        };
        Ok(Self {
            error,
            stdin,
            stdout,
            stderr,
            resize,
        })
    }

    /// Sends a terminal size (JSON plus newline, as Go's json.Encoder).
    pub async fn resize(&mut self, size: TerminalSize) -> Result<(), Error> {
        if let Some(stream) = &mut self.resize {
            let mut line = serde_json::to_vec(&size)?;
            line.push(b'\n');
            stream.write_all(&line).await?;
        }
        Ok(())
    }

    /// Reads the error stream to its end and decodes it for `protocol`.
    pub async fn status(&mut self, protocol: Protocol) -> Result<ExitStatus, Error> {
        let mut message = Vec::new();
        match self.error.read_to_end(&mut message).await {
            Ok(_) => {}
            // Go's kubelet ends a session by resetting every stream, after the status.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => return Err(e.into()),
        }
        if protocol >= Protocol::V4 {
            return parse_status(&message);
        }
        match message.is_empty() {
            true => Ok(ExitStatus::Success),
            false => Ok(ExitStatus::Failed(
                String::from_utf8_lossy(&message).into_owned(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_status_matches_what_kubelet_writes() {
        assert_eq!(
            status_message(Protocol::V4, &ExitStatus::Success).unwrap(),
            br#"{"metadata":{},"status":"Success"}"#
        );
        assert_eq!(
            String::from_utf8(status_message(Protocol::V4, &ExitStatus::Code(3)).unwrap()).unwrap(),
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: exit status 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
        );
        let failed = status_message(
            Protocol::V4,
            &ExitStatus::Failed("no such container".into()),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(failed.clone()).unwrap(),
            r#"{"metadata":{},"status":"Failure","message":"Internal error occurred: no such container","reason":"InternalError","details":{"causes":[{"message":"no such container"}]},"code":500}"#
        );
        for status in [
            ExitStatus::Success,
            ExitStatus::Code(3),
            ExitStatus::Code(255),
        ] {
            let bytes = status_message(Protocol::V4, &status).unwrap();
            assert_eq!(parse_status(&bytes).unwrap(), status);
        }
        assert_eq!(
            parse_status(&failed).unwrap(),
            ExitStatus::Failed("Internal error occurred: no such container".into())
        );
    }

    #[test]
    fn older_protocols_report_failures_as_text_only() {
        assert_eq!(status_message(Protocol::V3, &ExitStatus::Success), None);
        assert_eq!(
            status_message(Protocol::V2, &ExitStatus::Code(1)).unwrap(),
            b"command terminated with non-zero exit code: exit status 1"
        );
    }

    #[test]
    fn client_go_status_rules() {
        // client-go parses the exit code as an 8-bit unsigned number.
        let bad = br#"{"metadata":{},"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"300"}]}}"#;
        assert!(parse_status(bad).is_err());
        let no_details = br#"{"metadata":{},"status":"Failure","reason":"NonZeroExitCode"}"#;
        assert!(parse_status(no_details).is_err());
        assert!(parse_status(b"not json").is_err());
        assert_eq!(parse_status(b"").unwrap(), ExitStatus::Success);
    }

    #[test]
    fn expected_streams_follow_kubelets_count() {
        let all = Options {
            stdin: true,
            stdout: true,
            stderr: true,
            tty: false,
        };
        assert_eq!(all.expected_streams(Protocol::V4), 4);
        let tty = Options { tty: true, ..all };
        // With a TTY stderr is merged, resize comes from v3 on.
        assert_eq!(tty.expected_streams(Protocol::V4), 4);
        assert_eq!(tty.expected_streams(Protocol::V2), 3);
        assert_eq!(Protocol::from_name(""), Some(Protocol::V1));
        assert_eq!(Protocol::from_name("v5.channel.k8s.io"), None);
    }
}
