//! Client side of an exec or attach session: stdin → frames, frames → stdout/stderr,
//! exit code; with a TTY also raw mode for the local terminal and window size changes.

use std::io::Read;
use std::os::fd::AsFd;
use std::sync::{Mutex, Once};

use anyhow::{Context, Result};
use nix::sys::termios::{self, SetArg};
use podhost_shim::proto::frame::{resize_payload, RESIZE};
use podhost_shim::proto::TerminalSize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const EXIT: u8 = 3;
const STDIN_CLOSE: u8 = 4;

async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    kind: u8,
    data: &[u8],
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(5 + data.len());
    buf.push(kind);
    buf.extend_from_slice(&(data.len() as u32).to_be_bytes());
    buf.extend_from_slice(data);
    w.write_all(&buf).await?;
    w.flush().await
}

/// Relay until the session ends: the exit code of its exit frame (`None`: the stream
/// ended without one).
pub async fn relay<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    io: S,
    with_stdin: bool,
) -> Result<Option<i32>> {
    let (mut rd, mut wr) = tokio::io::split(io);
    let stdin_task = tokio::spawn(async move {
        if with_stdin {
            let mut stdin = tokio::io::stdin();
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match stdin.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if write_frame(&mut wr, STDIN, &buf[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
        let _ = write_frame(&mut wr, STDIN_CLOSE, &[]).await;
        // Keep the write half open until the session ends.
        std::future::pending::<()>().await;
    });
    let code = print_frames(&mut rd, false, None).await?;
    stdin_task.abort();
    Ok(code)
}

/// An exec session fed `input` on its stdin (then closed), its stdout collected, its
/// stderr passed to ours (`cp`'s tar): the exit code (1 if the stream ends without one)
/// and the output.
pub async fn collect<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    io: S,
    input: Vec<u8>,
) -> Result<(i32, Vec<u8>)> {
    let (mut rd, mut wr) = tokio::io::split(io);
    let writer = tokio::spawn(async move {
        for chunk in input.chunks(32 * 1024) {
            if write_frame(&mut wr, STDIN, chunk).await.is_err() {
                return;
            }
        }
        let _ = write_frame(&mut wr, STDIN_CLOSE, &[]).await;
        // Keep the write half open until the session ends.
        std::future::pending::<()>().await;
    });
    let mut out = Vec::new();
    let code = print_frames(&mut rd, false, Some(&mut out)).await;
    writer.abort();
    Ok((code?.unwrap_or(1), out))
}

/// Print the session's output frames until its exit code (`None` if the stream ends
/// first). On a raw terminal the runtime's own stderr messages need `\r\n` (see
/// [`crlf`]). With `collect`, the process's stdout goes there instead of ours (`cp`).
async fn print_frames<R: tokio::io::AsyncRead + Unpin>(
    rd: &mut R,
    raw_terminal: bool,
    mut collect: Option<&mut Vec<u8>>,
) -> Result<Option<i32>> {
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    loop {
        let Ok(Some((kind, data))) = podhost_runtime::read_frame(rd).await else {
            return Ok(None);
        };
        match kind {
            STDOUT if collect.is_some() => {
                if let Some(buf) = collect.as_mut() {
                    buf.extend_from_slice(&data);
                }
            }
            STDOUT => {
                let written = match stdout.write_all(&data).await {
                    Ok(()) => stdout.flush().await,
                    Err(e) => Err(e),
                };
                match written {
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => super::die_of_sigpipe(),
                    r => r?,
                }
            }
            STDERR => {
                let data = if raw_terminal { crlf(&data) } else { data };
                stderr.write_all(&data).await?;
                stderr.flush().await?;
            }
            EXIT if data.len() == 4 => {
                return Ok(Some(i32::from_be_bytes([
                    data[0], data[1], data[2], data[3],
                ])))
            }
            _ => {}
        }
    }
}

/// The local terminal's size: stdout's if it is a terminal, else stdin's (as kubectl).
pub fn terminal_size() -> Option<TerminalSize> {
    [libc::STDOUT_FILENO, libc::STDIN_FILENO]
        .into_iter()
        .find_map(|fd| {
            let mut ws = libc::winsize {
                ws_row: 0,
                ws_col: 0,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            // SAFETY: TIOCGWINSZ writes one winsize into a valid pointer.
            let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
            (r == 0 && ws.ws_col > 0 && ws.ws_row > 0).then_some(TerminalSize {
                width: ws.ws_col,
                height: ws.ws_row,
            })
        })
}

/// Original settings of the terminal in raw mode, for the panic hook: a panic that
/// does not unwind through [`RawMode`] (another thread, a double panic) must not leave
/// the user's shell in raw mode either.
static SAVED_TERMIOS: Mutex<Option<libc::termios>> = Mutex::new(None);

fn restore_saved() {
    let saved = SAVED_TERMIOS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(t) = saved {
        // SAFETY: tcsetattr reads one termios from a valid pointer.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSADRAIN, &t) };
    }
}

/// The local terminal (stdin) in raw mode while this lives: keys, Ctrl-C included, go to
/// the remote pty, whose line discipline does the echo and the signals.
pub struct RawMode {
    _private: (),
}

impl RawMode {
    /// Saves stdin's settings and switches it to raw mode.
    pub fn enter() -> Result<RawMode> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).context("read the terminal's settings")?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        *SAVED_TERMIOS.lock().unwrap_or_else(|p| p.into_inner()) = Some(saved.into());
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore_saved();
                previous(info);
            }));
        });
        let guard = RawMode { _private: () };
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)
            .context("put the terminal in raw mode")?;
        Ok(guard)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore_saved();
    }
}

/// Reads the terminal on a plain thread: a blocking read of a terminal cannot be
/// cancelled, and on tokio's blocking pool it would hold up the runtime's shutdown until
/// the next key press.
fn spawn_stdin_reader() -> tokio::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    });
    rx
}

/// Relays a TTY session (call with the terminal in [`RawMode`]): keys as stdin frames,
/// window changes (SIGWINCH) as resize frames, the merged output to stdout. `sent_size`
/// is the size the session was opened with. Returns the exit code of the session's exit
/// frame (`None`: it ended without one), or 128+signal if this client is told to stop
/// (SIGTERM, SIGHUP, SIGINT from `kill`).
pub async fn relay_tty<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    io: S,
    sent_size: Option<TerminalSize>,
) -> Result<Option<i32>> {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut winch = signal(SignalKind::window_change()).context("watch SIGWINCH")?;
    let mut term = signal(SignalKind::terminate()).context("watch SIGTERM")?;
    let mut hup = signal(SignalKind::hangup()).context("watch SIGHUP")?;
    let mut int = signal(SignalKind::interrupt()).context("watch SIGINT")?;
    let mut keys = spawn_stdin_reader();
    let writer = tokio::spawn(async move {
        // A resize during the handshake came before SIGWINCH was watched.
        let now = terminal_size();
        if now.is_some() && now != sent_size {
            if let Some(size) = now {
                if write_frame(&mut wr, RESIZE, &resize_payload(size))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        let mut stdin_open = true;
        loop {
            tokio::select! {
                data = keys.recv(), if stdin_open => {
                    let sent = match data {
                        Some(d) => write_frame(&mut wr, STDIN, &d).await,
                        None => {
                            stdin_open = false;
                            write_frame(&mut wr, STDIN_CLOSE, &[]).await
                        }
                    };
                    if sent.is_err() {
                        return;
                    }
                }
                Some(()) = winch.recv() => {
                    if let Some(size) = terminal_size() {
                        if write_frame(&mut wr, RESIZE, &resize_payload(size)).await.is_err() {
                            return;
                        }
                    }
                }
                else => return,
            }
        }
    });
    // The pty merges the process's stderr into stdout: stderr frames are the runtime's
    // own messages (e.g. a command not found), for our stderr.
    let output = print_frames(&mut rd, true, None);
    let code = tokio::select! {
        code = output => code,
        Some(()) = term.recv() => Ok(Some(128 + libc::SIGTERM)),
        Some(()) = hup.recv() => Ok(Some(128 + libc::SIGHUP)),
        Some(()) = int.recv() => Ok(Some(128 + libc::SIGINT)),
    };
    writer.abort();
    code
}

/// `\n` as `\r\n` (except where the `\r` is there already), for text written to a
/// terminal in raw mode.
fn crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 8);
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' && (i == 0 || data[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::crlf;

    #[test]
    fn crlf_adds_carriage_returns_once() {
        assert_eq!(crlf(b"a\nb\n"), b"a\r\nb\r\n");
        assert_eq!(crlf(b"a\r\nb"), b"a\r\nb");
        assert_eq!(crlf(b"\n\n"), b"\r\n\r\n");
        assert_eq!(crlf(b""), b"");
    }
}
