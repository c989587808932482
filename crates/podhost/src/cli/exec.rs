//! Client side of an exec session: stdin → frames, frames → stdout/stderr, exit code.

use anyhow::Result;
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

/// Relay until the exit frame; returns the command's exit code.
pub async fn relay<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    io: S,
    with_stdin: bool,
) -> Result<i32> {
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
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    let code = loop {
        let mut head = [0u8; 5];
        if rd.read_exact(&mut head).await.is_err() {
            break 1;
        }
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut data = vec![0u8; len];
        rd.read_exact(&mut data).await?;
        match head[0] {
            STDOUT => {
                stdout.write_all(&data).await?;
                stdout.flush().await?;
            }
            STDERR => {
                stderr.write_all(&data).await?;
                stderr.flush().await?;
            }
            EXIT if data.len() == 4 => {
                break i32::from_be_bytes([data[0], data[1], data[2], data[3]])
            }
            _ => {}
        }
    };
    stdin_task.abort();
    Ok(code)
}
