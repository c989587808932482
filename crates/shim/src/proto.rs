//! Wire protocol between the podhost daemon (client) and `podhost-shim`.
//!
//! The socket carries newline-delimited JSON: each [`Request`] line gets
//! exactly one [`Response`] line. After a successful `subscribe`, [`Event`]
//! lines may arrive at any time on that connection. After a successful
//! `exec` or `attach`, the connection switches to binary frames (see [`frame`]).

use serde::{Deserialize, Serialize};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// A request from the daemon, tagged by `"op"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Create (but do not start) a container from an OCI bundle.
    CreateContainer {
        id: String,
        bundle: String,
        log_path: String,
        /// Run the container on a pseudo-terminal (CRI `tty`): its output is the
        /// terminal's, logged as stdout. Left out of the JSON when false, so that shims
        /// older than terminals still understand a request that needs none.
        #[serde(default, skip_serializing_if = "is_false")]
        tty: bool,
        /// Keep the container's stdin open for [`Request::Attach`] (CRI `stdin`); without
        /// it the container reads `/dev/null`.
        #[serde(default, skip_serializing_if = "is_false")]
        stdin: bool,
        /// Close the container's stdin once the first attach session that had it ends
        /// (CRI `stdin_once`; as containerd, not with a TTY, whose input has no end).
        #[serde(default, skip_serializing_if = "is_false")]
        stdin_once: bool,
    },
    /// Start a created container.
    StartContainer { id: String },
    /// Send a signal to a running container's init process.
    Signal { id: String, signal: i32 },
    /// Report the pause process and every known container.
    Status,
    /// Receive [`Event`] lines on this connection from now on.
    Subscribe,
    /// Delete a container that is not running and forget it.
    RemoveContainer { id: String },
    /// Close a running container's log file and open its path again (CRI
    /// `ReopenContainerLog`): the kubelet renamed the file to rotate it.
    ReopenLog { id: String },
    /// Run a command inside a running container; switches to [`frame`]s.
    Exec {
        id: String,
        cmd: Vec<String>,
        /// Run the command on a pseudo-terminal (stdout and stderr merged, like CRI's
        /// `tty`). Left out of the JSON when false so the non-TTY request stays as it was.
        #[serde(default, skip_serializing_if = "is_false")]
        tty: bool,
        /// Window size set on the terminal before the command gets any input.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<TerminalSize>,
    },
    /// Attach to a running container's stdio (CRI `Attach`); switches to [`frame`]s:
    /// the container's output from now on as STDOUT/STDERR frames (a TTY's all as
    /// STDOUT), STDIN frames into its stdin (if it was created with one), RESIZE frames
    /// to its terminal. When the container exits the shim sends EXIT with its code and
    /// closes; STDIN_CLOSE ends the session (EOF without EXIT) unless the container is
    /// `stdin_once` without a TTY, whose stdin is closed instead.
    Attach {
        id: String,
        /// The client sends input.
        #[serde(default)]
        stdin: bool,
        /// The client wants the container's stdout (a TTY's whole output).
        #[serde(default)]
        stdout: bool,
        /// The client wants the container's stderr (nothing comes with a TTY).
        #[serde(default)]
        stderr: bool,
    },
    /// Kill everything, stop the pause process and exit the shim.
    Shutdown {
        /// The daemon removes the sandbox next, and with it the pod cgroup (the
        /// containers' below it) and libcontainer's state of each container: the shim
        /// skips its `delete` of each container (a helper process each, most of a
        /// shutdown's time). Left out of the JSON when false; a shim older than it
        /// ignores it and deletes them.
        #[serde(default, skip_serializing_if = "is_false")]
        removing: bool,
    },
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Size of a terminal window in character cells (CRI's `TerminalSize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalSize {
    /// Columns.
    pub width: u16,
    /// Rows.
    pub height: u16,
}

/// Lifecycle state of a container as seen by the shim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    Created,
    Running,
    Exited,
}

/// Status of one container; times are unix nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStatus {
    pub id: String,
    pub pid: i32,
    pub state: ContainerState,
    /// Exit code; 128+signal when killed by a signal.
    pub exit_code: Option<i32>,
    /// The signal that killed the process, if any.
    pub signal: Option<i32>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub log_path: String,
}

/// Class of a failed request, so the daemon acts on it without reading the message
/// (the gRPC codes CRI answers with). Shims of older versions send none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The container is not in this sandbox.
    NotFound,
    /// A container of that id already exists.
    AlreadyExists,
    /// The request itself is malformed (ids, paths, empty command).
    InvalidArgument,
    /// The container or sandbox is in the wrong state (not running, already running,
    /// exited, pause gone).
    FailedPrecondition,
    /// Anything else: the helper failed, a system call failed.
    Internal,
}

/// One response line. Fields other than `ok`/`error`/`code` are set only by the
/// requests that produce them (`status`: pause and containers; `create_container`: pid).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Class of the error, with `ok: false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shim_pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_running: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containers: Option<Vec<ContainerStatus>>,
    /// Microseconds the `podhost-runc` helper of a create or start ran (start-up trace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helper_us: Option<u64>,
}

impl Response {
    /// A bare `{"ok":true}`.
    pub fn ok() -> Self {
        Response {
            ok: true,
            ..Default::default()
        }
    }

    /// `{"ok":false,"error":msg}`, an internal error.
    pub fn err(msg: impl Into<String>) -> Self {
        Response::fail(ErrorCode::Internal, msg)
    }

    /// `{"ok":false,"error":msg,"code":code}`.
    pub fn fail(code: ErrorCode, msg: impl Into<String>) -> Self {
        Response {
            ok: false,
            error: Some(msg.into()),
            code: Some(code),
            ..Default::default()
        }
    }

    /// Turns an `ok:false` response into an error carrying the shim's message.
    pub fn into_result(self) -> io::Result<Response> {
        if self.ok {
            Ok(self)
        } else {
            let msg = self
                .error
                .unwrap_or_else(|| "shim error without message".into());
            Err(io::Error::other(msg))
        }
    }
}

/// An asynchronous notification sent to subscribed connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A container (or the pause process, `id == "pause"`) exited.
    Exit {
        id: String,
        exit_code: i32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
    },
    /// The shim's loop still runs (every `--heartbeat-ms`): a subscriber that stops
    /// getting these has a shim that hangs or was stopped.
    Alive,
}

/// How often subscribers get [`Event::Alive`] when `--heartbeat-ms` is not given. The
/// daemon counts a shim silent for two and a half of these as one to ask.
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(5);

/// `id` used in [`Event::Exit`] for the pause process.
pub const PAUSE_ID: &str = "pause";

/// Binary framing used on a connection after a successful `exec` or `attach`:
/// `[u8 kind][u32 big-endian length][payload]`.
pub mod frame {
    use std::io::{self, Read, Write};

    /// client -> shim: data for the process's stdin.
    pub const STDIN: u8 = 0;
    /// shim -> client: process stdout data.
    pub const STDOUT: u8 = 1;
    /// shim -> client: process stderr data; on a TTY (which merges the process's stderr
    /// into its output) the runtime helper's own messages.
    pub const STDERR: u8 = 2;
    /// shim -> client: payload is the i32 big-endian exit code; the shim then closes.
    pub const EXIT: u8 = 3;
    /// client -> shim: close the process's stdin (ignored on a TTY, which has no end of
    /// input).
    pub const STDIN_CLOSE: u8 = 4;
    /// client -> shim: new terminal size, payload from [`resize_payload`]; ignored
    /// without a TTY.
    pub const RESIZE: u8 = 5;
    /// Payload length of a [`RESIZE`] frame.
    pub const RESIZE_LEN: usize = 4;

    /// Payload of a [`RESIZE`] frame: width then height, u16 big-endian each.
    pub fn resize_payload(size: super::TerminalSize) -> [u8; RESIZE_LEN] {
        let w = size.width.to_be_bytes();
        let h = size.height.to_be_bytes();
        [w[0], w[1], h[0], h[1]]
    }

    /// Parses a [`RESIZE`] payload; `None` if it has the wrong length.
    pub fn parse_resize(payload: &[u8]) -> Option<super::TerminalSize> {
        match payload {
            &[w0, w1, h0, h1] => Some(super::TerminalSize {
                width: u16::from_be_bytes([w0, w1]),
                height: u16::from_be_bytes([h0, h1]),
            }),
            _ => None,
        }
    }
    /// Largest payload either side accepts.
    pub const MAX_PAYLOAD: usize = 1 << 20;
    /// Size of the frame header.
    pub const HEADER: usize = 5;

    /// Appends one encoded frame to `out`.
    pub fn encode(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
        out.push(kind);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
    }

    /// Writes one frame.
    pub fn write<W: Write>(w: &mut W, kind: u8, payload: &[u8]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(HEADER + payload.len());
        encode(&mut buf, kind, payload);
        w.write_all(&buf)
    }

    /// Reads one frame; `Ok(None)` on a clean end of stream between frames.
    pub fn read<R: Read>(r: &mut R) -> io::Result<Option<(u8, Vec<u8>)>> {
        let mut hdr = [0u8; HEADER];
        let mut got = 0;
        while got < HEADER {
            match r.read(&mut hdr[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let len = u32::from_be_bytes([hdr[1], hdr[2], hdr[3], hdr[4]]) as usize;
        if len > MAX_PAYLOAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("exec frame of {len} bytes exceeds the {MAX_PAYLOAD} byte limit"),
            ));
        }
        let mut payload = vec![0u8; len];
        r.read_exact(&mut payload)?;
        Ok(Some((hdr[0], payload)))
    }

    /// A decoded frame: kind, payload, and bytes consumed from the buffer.
    pub type Decoded<'a> = (u8, &'a [u8], usize);

    /// Decodes one frame from the front of `buf` if a whole frame is there.
    pub fn decode(buf: &[u8]) -> Result<Option<Decoded<'_>>, String> {
        if buf.len() < HEADER {
            return Ok(None);
        }
        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        if len > MAX_PAYLOAD {
            return Err(format!(
                "exec frame of {len} bytes exceeds the {MAX_PAYLOAD} byte limit"
            ));
        }
        if buf.len() < HEADER + len {
            return Ok(None);
        }
        Ok(Some((buf[0], &buf[HEADER..HEADER + len], HEADER + len)))
    }
}

/// A blocking connection to a shim, for the daemon and tests.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connects to `<state-dir>/shim.sock`.
    pub fn connect(sock: &Path) -> io::Result<Client> {
        let writer = UnixStream::connect(sock).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("connect to shim socket {}: {e}", sock.display()),
            )
        })?;
        let reader = BufReader::new(writer.try_clone()?);
        Ok(Client { reader, writer })
    }

    /// Sends one request and reads its response (which may be `ok:false`).
    pub fn call(&mut self, req: &Request) -> io::Result<Response> {
        let mut line = serde_json::to_vec(req).map_err(io::Error::other)?;
        line.push(b'\n');
        self.writer.write_all(&line)?;
        let line = self.read_line()?;
        serde_json::from_str(&line).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad response from shim: {e}: {line:?}"),
            )
        })
    }

    /// Reads the next event after a successful `subscribe`.
    pub fn next_event(&mut self) -> io::Result<Event> {
        let line = self.read_line()?;
        serde_json::from_str(&line).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad event from shim: {e}: {line:?}"),
            )
        })
    }

    fn read_line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "shim closed the connection",
            ));
        }
        Ok(line)
    }

    /// Read side for exec frames, after a successful `exec` (keeps any buffered bytes).
    pub fn frames_reader(&mut self) -> &mut impl Read {
        &mut self.reader
    }

    /// Write side for exec frames.
    pub fn frames_writer(&mut self) -> &mut UnixStream {
        &mut self.writer
    }

    /// The underlying socket (e.g. for timeouts).
    pub fn stream(&self) -> &UnixStream {
        &self.writer
    }
}

/// One-shot helper: connect, send `req`, return the response.
pub fn call(sock: &Path, req: &Request) -> io::Result<Response> {
    Client::connect(sock)?.call(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_wire_format() {
        let r: Request = serde_json::from_str(r#"{"op":"status"}"#).unwrap();
        assert_eq!(r, Request::Status);
        let r: Request = serde_json::from_str(r#"{"op":"signal","id":"c1","signal":15}"#).unwrap();
        assert_eq!(
            r,
            Request::Signal {
                id: "c1".into(),
                signal: 15
            }
        );
        let s = serde_json::to_string(&Request::Exec {
            id: "c".into(),
            cmd: vec!["sh".into()],
            tty: false,
            size: None,
        })
        .unwrap();
        assert_eq!(s, r#"{"op":"exec","id":"c","cmd":["sh"]}"#);
        let r: Request = serde_json::from_str(&s).unwrap();
        assert!(matches!(
            r,
            Request::Exec {
                tty: false,
                size: None,
                ..
            }
        ));
        let tty = Request::Exec {
            id: "c".into(),
            cmd: vec!["sh".into()],
            tty: true,
            size: Some(TerminalSize {
                width: 80,
                height: 24,
            }),
        };
        let s = serde_json::to_string(&tty).unwrap();
        assert_eq!(
            s,
            r#"{"op":"exec","id":"c","cmd":["sh"],"tty":true,"size":{"width":80,"height":24}}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), tty);
        assert!(serde_json::from_str::<Request>(r#"{"op":"nope"}"#).is_err());
    }

    #[test]
    fn stdio_of_a_container_is_left_out_unless_asked() {
        let plain = Request::CreateContainer {
            id: "c".into(),
            bundle: "/b".into(),
            log_path: "/l".into(),
            tty: false,
            stdin: false,
            stdin_once: false,
        };
        // What a shim older than attach reads (it denies unknown fields).
        let s = serde_json::to_string(&plain).unwrap();
        assert_eq!(
            s,
            r#"{"op":"create_container","id":"c","bundle":"/b","log_path":"/l"}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), plain);
        let interactive = Request::CreateContainer {
            id: "c".into(),
            bundle: "/b".into(),
            log_path: "/l".into(),
            tty: true,
            stdin: true,
            stdin_once: true,
        };
        let s = serde_json::to_string(&interactive).unwrap();
        assert!(
            s.ends_with(r#""tty":true,"stdin":true,"stdin_once":true}"#),
            "{s}"
        );
        assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), interactive);
        let attach: Request =
            serde_json::from_str(r#"{"op":"attach","id":"c","stdout":true}"#).unwrap();
        assert_eq!(
            attach,
            Request::Attach {
                id: "c".into(),
                stdin: false,
                stdout: true,
                stderr: false
            }
        );
    }

    #[test]
    fn response_and_event_wire_format() {
        assert_eq!(
            serde_json::to_string(&Response::ok()).unwrap(),
            r#"{"ok":true}"#
        );
        assert_eq!(
            serde_json::to_string(&Response::err("x")).unwrap(),
            r#"{"ok":false,"error":"x","code":"internal"}"#
        );
        assert_eq!(
            serde_json::to_string(&Response::fail(ErrorCode::NotFound, "y")).unwrap(),
            r#"{"ok":false,"error":"y","code":"not_found"}"#
        );
        // An older shim's answer has no code.
        let old: Response = serde_json::from_str(r#"{"ok":false,"error":"z"}"#).unwrap();
        assert_eq!(old.code, None);
        let ev = Event::Exit {
            id: "c".into(),
            exit_code: 3,
            signal: None,
        };
        assert_eq!(
            serde_json::to_string(&ev).unwrap(),
            r#"{"event":"exit","id":"c","exit_code":3}"#
        );
        let st = ContainerStatus {
            id: "c".into(),
            pid: 5,
            state: ContainerState::Created,
            exit_code: None,
            signal: None,
            created_at: 1,
            started_at: None,
            finished_at: None,
            log_path: "/l".into(),
        };
        let s = serde_json::to_string(&st).unwrap();
        assert!(s.contains(r#""state":"created","exit_code":null"#), "{s}");
    }

    #[test]
    fn frame_roundtrip() {
        let mut buf = Vec::new();
        frame::encode(&mut buf, frame::STDOUT, b"hello");
        assert_eq!(&buf[..5], &[1, 0, 0, 0, 5]);
        assert_eq!(frame::decode(&buf[..7]).unwrap(), None);
        let (k, p, n) = frame::decode(&buf).unwrap().unwrap();
        assert_eq!((k, p, n), (frame::STDOUT, &b"hello"[..], 10));
        let mut r = &buf[..];
        assert_eq!(
            frame::read(&mut r).unwrap(),
            Some((frame::STDOUT, b"hello".to_vec()))
        );
        assert_eq!(frame::read(&mut r).unwrap(), None);
    }

    #[test]
    fn resize_frame_roundtrip() {
        let size = TerminalSize {
            width: 0x1234,
            height: 40,
        };
        let mut buf = Vec::new();
        frame::encode(&mut buf, frame::RESIZE, &frame::resize_payload(size));
        assert_eq!(buf, [5, 0, 0, 0, 4, 0x12, 0x34, 0, 40]);
        let (kind, payload, n) = frame::decode(&buf).unwrap().unwrap();
        assert_eq!((kind, n), (frame::RESIZE, 9));
        assert_eq!(frame::parse_resize(payload), Some(size));
        assert_eq!(frame::parse_resize(&[0, 80, 0]), None);
        assert_eq!(frame::parse_resize(&[0, 80, 0, 24, 0]), None);
        let max = TerminalSize {
            width: u16::MAX,
            height: u16::MAX,
        };
        assert_eq!(frame::parse_resize(&frame::resize_payload(max)), Some(max));
    }
}
