//! The sessions behind the URLs. Exec and attach bridge the client's SPDY streams to the
//! runtime's stream of shim frames (stdin, stdout, stderr, resize, exit); port-forward
//! connects each forwarded connection to its port inside the pod.

use std::sync::Arc;
use std::time::Duration;

use podhost_cri_api::{AttachRequest, ExecRequest, PortForwardRequest};
use podhost_runtime::{
    read_frame, AttachOptions, ExecOptions, ExecStream, RuntimeError, TerminalSize,
};
use podhost_shim::proto::frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use super::{Cached, Inner};
use crate::portforward::{ForwardRequest, PortForwardStreams};
use crate::remotecommand::{ExitStatus, Options, ResizeEvents, Session};
use crate::spdy::{self, Connection, Incoming};
use crate::upgrade::SpdyUpgrade;

/// Streams a remotecommand client may open: error, stdin, stdout, stderr, resize; a
/// few more are refused, not queued.
const MAX_SESSION_STREAMS: usize = 8;
/// How long an exec on a terminal waits for the client's first window size before the
/// command starts without one (client-go and crictl send it right after their streams).
const FIRST_SIZE_WAIT: Duration = Duration::from_secs(1);
/// Input chunk read from the client (Go's io.Copy size).
const CHUNK: usize = 32 * 1024;

/// Runs the session of `request` on the upgraded connection.
pub(super) async fn run(inner: Arc<Inner>, upgrade: SpdyUpgrade, request: Cached) {
    let protocol = upgrade.protocol().to_string();
    let max_incoming_streams = match request {
        // Two streams per forwarded connection.
        Cached::PortForward(_) => 2 * inner.config.max_forwards + 2,
        _ => MAX_SESSION_STREAMS,
    };
    let config = spdy::Config {
        max_incoming_streams,
        ..Default::default()
    };
    let (conn, incoming) = match upgrade.connect(config).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!("streaming session: {e}");
            return;
        }
    };
    match request {
        Cached::Exec(r) => exec(&inner, conn, incoming, &protocol, r).await,
        Cached::Attach(r) => attach(&inner, conn, incoming, &protocol, r).await,
        Cached::PortForward(r) => port_forward(&inner, conn, incoming, r).await,
    }
}

/// Waits for the client's streams; `None` (logged) if they do not come.
async fn accept(
    inner: &Inner,
    conn: Connection,
    incoming: Incoming,
    protocol: &str,
    options: Options,
    what: &str,
) -> Option<Session> {
    let timeout = inner.config.stream_creation_timeout;
    match Session::accept(conn, incoming, protocol, options, timeout).await {
        Ok(session) => Some(session),
        Err(e) => {
            tracing::debug!("{what} session: {e}");
            None
        }
    }
}

async fn exec(
    inner: &Inner,
    conn: Connection,
    incoming: Incoming,
    protocol: &str,
    req: ExecRequest,
) {
    let options = Options {
        stdin: req.stdin,
        stdout: req.stdout,
        stderr: req.stderr,
        tty: req.tty,
    };
    let what = format!("exec in container {}", req.container_id);
    let Some(mut session) = accept(inner, conn, incoming, protocol, options, &what).await else {
        return;
    };
    let mut resize = session.take_resize();
    // With the first size set before the command starts, a shell starts at the size of
    // the user's window instead of 0x0.
    let size = match (&mut resize, req.tty) {
        (Some(events), true) => first_size(events).await,
        _ => None,
    };
    let opts = ExecOptions { tty: req.tty, size };
    let status = match inner.runtime.exec(&req.container_id, req.cmd, opts).await {
        Ok(stream) => match relay(&mut session, stream, resize, req.tty).await {
            Ok(Some(0)) => ExitStatus::Success,
            Ok(Some(code)) => ExitStatus::Code(code),
            Ok(None) => {
                ExitStatus::Failed("the command's session ended without its exit code".into())
            }
            Err(e) => ExitStatus::Failed(e),
        },
        Err(e) => ExitStatus::Failed(e.to_string()),
    };
    if let Err(e) = session.finish(status).await {
        tracing::debug!("{what}: {e}");
    }
}

async fn attach(
    inner: &Inner,
    conn: Connection,
    incoming: Incoming,
    protocol: &str,
    req: AttachRequest,
) {
    let options = Options {
        stdin: req.stdin,
        stdout: req.stdout,
        stderr: req.stderr,
        tty: req.tty,
    };
    let what = format!("attach to container {}", req.container_id);
    let Some(mut session) = accept(inner, conn, incoming, protocol, options, &what).await else {
        return;
    };
    let resize = session.take_resize();
    let opts = AttachOptions {
        stdin: req.stdin,
        stdout: req.stdout,
        stderr: req.stderr,
    };
    let status = match inner.runtime.attach(&req.container_id, opts).await {
        // As with kubelet and containerd, an attach that ran ends in success: the
        // container's exit code is in its status, not the session's.
        Ok(stream) => match relay(&mut session, stream, resize, req.tty).await {
            Ok(_) => ExitStatus::Success,
            Err(e) => ExitStatus::Failed(e),
        },
        Err(e) => ExitStatus::Failed(e.to_string()),
    };
    if let Err(e) = session.finish(status).await {
        tracing::debug!("{what}: {e}");
    }
}

/// The client's first terminal size, if it sends one soon.
async fn first_size(events: &mut ResizeEvents) -> Option<TerminalSize> {
    match tokio::time::timeout(FIRST_SIZE_WAIT, events.next()).await {
        Ok(Some(Ok(size))) => Some(TerminalSize {
            width: size.width,
            height: size.height,
        }),
        _ => None,
    }
}

fn encode(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame::HEADER + payload.len());
    frame::encode(&mut out, kind, payload);
    out
}

/// Bridges the session's streams and the runtime's frames until the runtime's stream
/// ends: the EXIT frame's code, or `None` when it ended without one. Err when the client
/// went away or the runtime's stream broke. Without a stdin stream the runtime gets the
/// end of input at once (a command then reads EOF, as from /dev/null).
async fn relay(
    session: &mut Session,
    stream: ExecStream,
    resize: Option<ResizeEvents>,
    tty: bool,
) -> Result<Option<i32>, String> {
    let (mut from_runtime, mut to_runtime) = tokio::io::split(stream);
    // One writer for both input and resizes; a few frames in flight at most.
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(8);
    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        while let Some(frame) = rx.recv().await {
            if to_runtime.write_all(&frame).await.is_err() {
                return;
            }
        }
    });
    let stdin = session.take_stdin();
    let input = tx.clone();
    tasks.spawn(async move {
        if let Some(mut stdin) = stdin {
            let mut buf = vec![0u8; CHUNK];
            // A reset stream is an end of input too.
            while let Ok(n @ 1..) = stdin.read(&mut buf).await {
                if input.send(encode(frame::STDIN, &buf[..n])).await.is_err() {
                    return;
                }
            }
        }
        let _ = input.send(encode(frame::STDIN_CLOSE, &[])).await;
    });
    if let Some(mut events) = resize {
        let sizes = tx.clone();
        tasks.spawn(async move {
            while let Some(Ok(size)) = events.next().await {
                let size = TerminalSize {
                    width: size.width,
                    height: size.height,
                };
                let payload = frame::resize_payload(size);
                if sizes.send(encode(frame::RESIZE, &payload)).await.is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    let mut stdout = session.take_stdout();
    let mut stderr = session.take_stderr();
    let output = async {
        loop {
            let Some((kind, data)) = read_frame(&mut from_runtime)
                .await
                .map_err(|e| format!("reading from the runtime: {e}"))?
            else {
                return Ok(None);
            };
            let target = match kind {
                frame::STDOUT => stdout.as_mut(),
                // On a terminal stderr frames are the runtime's own messages (the
                // command is not in the image ...): the terminal is where they show.
                frame::STDERR if tty => stdout.as_mut(),
                frame::STDERR => stderr.as_mut(),
                frame::EXIT if data.len() == 4 => {
                    return Ok(Some(i32::from_be_bytes([
                        data[0], data[1], data[2], data[3],
                    ])))
                }
                _ => None,
            };
            if let Some(target) = target {
                target
                    .write_all(&data)
                    .await
                    .map_err(|e| format!("writing to the client: {e}"))?;
            }
        }
    };
    let result = tokio::select! {
        r = output => r,
        _ = session.closed() => Err("the client closed the connection".into()),
    };
    // Input and resizes stop with the session (dropping the set aborts them), and the
    // runtime's stream closes: an exec's process still running is killed by the shim.
    drop(tasks);
    result
}

async fn port_forward(
    inner: &Arc<Inner>,
    conn: Connection,
    incoming: Incoming,
    req: PortForwardRequest,
) {
    let mut streams = PortForwardStreams::new(conn, incoming, inner.config.stream_creation_timeout);
    let slots = Arc::new(Semaphore::new(inner.config.max_forwards));
    let mut forwards = JoinSet::new();
    while let Some(fwd) = streams.next().await {
        while forwards.try_join_next().is_some() {}
        let port = fwd.port;
        if !req.port.is_empty() && !req.port.contains(&i32::from(port)) {
            let message = format!("port {port} was not asked for in the PortForward request");
            forwards.spawn(fail(fwd, message));
            continue;
        }
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            let max = inner.config.max_forwards;
            let message = format!("too many forwarded connections at once (at most {max})");
            forwards.spawn(fail(fwd, message));
            continue;
        };
        let runtime = inner.runtime.clone();
        let sandbox = req.pod_sandbox_id.clone();
        forwards.spawn(async move {
            match runtime.port_forward(&sandbox, port).await {
                Ok(target) => {
                    fwd.forward(target).await;
                    drop(slot);
                }
                Err(e) => {
                    drop(slot);
                    let cause = match e {
                        RuntimeError::PortForward { source, .. } => source.to_string(),
                        e => e.to_string(),
                    };
                    let message = format!("error forwarding port {port} to pod {sandbox}: {cause}");
                    fwd.fail(&message).await
                }
            }
        });
    }
    // The connection ended: its forwards end with it (dropping the set aborts them).
}

async fn fail(fwd: ForwardRequest, message: String) {
    fwd.fail(&message).await
}
