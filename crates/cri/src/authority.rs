//! The CRI socket's connection layer: a per-connection HTTP/2 front that repairs the
//! `:authority` of older gRPC-Go clients before tonic sees their requests.
//!
//! gRPC-Go before 1.60 (crictl 1.29, kubelets before 1.30) sends the unix socket's path
//! as the `:authority` pseudo-header (`/run/podhost/cri.sock`). That is not a valid URI
//! authority, and h2 (tonic's HTTP/2) rejects the request as malformed before any RPC
//! runs (grpc-rust issues #576 and #742); containerd's Go server accepts it. So each
//! accepted connection goes through [`Rewriter`]: the client's header blocks are decoded
//! (HPACK, with the client's dynamic table), an invalid `:authority` is replaced by
//! `localhost`, and every block is encoded again as literals *without* indexing, so the
//! server's decoder never adds to its dynamic table and our encoder keeps no state that
//! could diverge from it. Every other frame, and everything from server to client, passes
//! through untouched. tonic gets the rewritten byte stream over an in-memory duplex.

use std::borrow::Cow;
use std::io;

use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::net::{UnixListener, UnixStream};

/// The client connection preface of HTTP/2 (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Length of a frame header.
const FRAME_HEADER: usize = 9;
/// Frame types this layer looks into.
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
/// Flags of HEADERS and CONTINUATION frames.
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// Largest frame payload we emit: the smallest SETTINGS_MAX_FRAME_SIZE a peer may have
/// (RFC 9113 §4.2), so a rewritten block fits whatever the server announced.
const MAX_OUT_FRAME: usize = 16_384;
/// Largest header block (compressed, summed over CONTINUATIONs) and largest decoded
/// header list accepted: far above any CRI request, small enough to bound memory.
const MAX_BLOCK: usize = 1 << 20;
/// Replacement for an `:authority` h2 would reject.
const LOCALHOST: &[u8] = b"localhost";

/// Why a connection was dropped by the rewriter (the client broke HTTP/2 framing or HPACK).
#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    /// The header block does not decode.
    #[error("HPACK: {0}")]
    Hpack(String),
    /// A header block or its decoded list exceeds [`MAX_BLOCK`].
    #[error("header block over {MAX_BLOCK} bytes")]
    BlockTooLarge,
    /// A frame other than CONTINUATION of the same stream came in the middle of a header
    /// block.
    #[error("frame type {frame_type} on stream {stream} where a CONTINUATION of stream {expected} was due")]
    ContinuationExpected {
        /// The frame's type.
        frame_type: u8,
        /// Its stream.
        stream: u32,
        /// The stream whose header block is open.
        expected: u32,
    },
    /// A CONTINUATION with no header block open.
    #[error("CONTINUATION on stream {0} without a HEADERS frame")]
    StrayContinuation(u32),
    /// Padding or priority fields longer than the frame.
    #[error("HEADERS frame on stream {0}: padding or priority longer than the frame")]
    BadPadding(u32),
}

/// A header block being collected across HEADERS and CONTINUATION frames.
struct OpenBlock {
    stream: u32,
    /// Flags of the HEADERS frame (END_STREAM, PRIORITY); END_HEADERS and PADDED are
    /// recomputed.
    flags: u8,
    /// The 5 priority bytes, when the HEADERS frame had PRIORITY.
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
}

/// The client-to-server half of a connection: bytes in, the same bytes out except for
/// re-encoded header blocks. Pure (no I/O), so it is tested on frames.
pub struct Rewriter {
    decoder: loona_hpack::Decoder<'static>,
    /// Bytes not yet forming a whole frame (or the preface).
    pending: Vec<u8>,
    /// The preface has been passed on.
    started: bool,
    /// Not HTTP/2 after all: pass everything through (the server will refuse it).
    passthrough: bool,
    block: Option<OpenBlock>,
}

impl Default for Rewriter {
    fn default() -> Self {
        Rewriter {
            decoder: loona_hpack::Decoder::new(),
            pending: Vec::new(),
            started: false,
            passthrough: false,
            block: None,
        }
    }
}

impl Rewriter {
    /// Feed bytes read from the client; what is ready for the server is appended to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), RewriteError> {
        if self.passthrough {
            out.extend_from_slice(input);
            return Ok(());
        }
        self.pending.extend_from_slice(input);
        let mut at = 0;
        if !self.started {
            let have = self.pending.len().min(PREFACE.len());
            if self.pending[..have] != PREFACE[..have] {
                self.passthrough = true;
                out.append(&mut self.pending);
                return Ok(());
            }
            if have < PREFACE.len() {
                return Ok(());
            }
            out.extend_from_slice(PREFACE);
            self.started = true;
            at = PREFACE.len();
        }
        let result = loop {
            let rest = &self.pending[at..];
            if rest.len() < FRAME_HEADER {
                break Ok(());
            }
            let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
            if rest.len() < FRAME_HEADER + len {
                break Ok(());
            }
            let (kind, flags) = (rest[3], rest[4]);
            let stream = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]) & 0x7fff_ffff;
            let frame = rest[..FRAME_HEADER + len].to_vec();
            at += FRAME_HEADER + len;
            if let Err(e) = self.frame(kind, flags, stream, &frame, out) {
                break Err(e);
            }
        };
        self.pending.drain(..at);
        result
    }

    fn frame(
        &mut self,
        kind: u8,
        flags: u8,
        stream: u32,
        frame: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), RewriteError> {
        let payload = &frame[FRAME_HEADER..];
        match (&mut self.block, kind) {
            (Some(open), CONTINUATION) if open.stream == stream => {
                if open.fragment.len() + payload.len() > MAX_BLOCK {
                    return Err(RewriteError::BlockTooLarge);
                }
                open.fragment.extend_from_slice(payload);
            }
            (Some(open), _) => {
                return Err(RewriteError::ContinuationExpected {
                    frame_type: kind,
                    stream,
                    expected: open.stream,
                })
            }
            (None, CONTINUATION) => return Err(RewriteError::StrayContinuation(stream)),
            (None, HEADERS) => {
                let mut body = payload;
                let mut pad = 0;
                if flags & PADDED != 0 {
                    let (&n, rest) = body.split_first().ok_or(RewriteError::BadPadding(stream))?;
                    pad = usize::from(n);
                    body = rest;
                }
                let priority = if flags & PRIORITY != 0 {
                    let p: [u8; 5] = body
                        .get(..5)
                        .and_then(|p| p.try_into().ok())
                        .ok_or(RewriteError::BadPadding(stream))?;
                    body = &body[5..];
                    Some(p)
                } else {
                    None
                };
                let end = body
                    .len()
                    .checked_sub(pad)
                    .ok_or(RewriteError::BadPadding(stream))?;
                self.block = Some(OpenBlock {
                    stream,
                    flags: flags & !(PADDED | END_HEADERS),
                    priority,
                    fragment: body[..end].to_vec(),
                });
            }
            (None, _) => {
                out.extend_from_slice(frame);
                return Ok(());
            }
        }
        if flags & END_HEADERS != 0 {
            if let Some(block) = self.block.take() {
                self.emit(block, out)?;
            }
        }
        Ok(())
    }

    /// Decode a complete header block, repair it, encode it again as HEADERS (and
    /// CONTINUATION) frames.
    fn emit(&mut self, block: OpenBlock, out: &mut Vec<u8>) -> Result<(), RewriteError> {
        let mut headers: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut size = 0usize;
        self.decoder
            .decode_with_cb(&block.fragment, |name: Cow<[u8]>, value: Cow<[u8]>| {
                // Count everything (a block of indexed references can expand a lot), keep
                // only what fits.
                size = size.saturating_add(name.len() + value.len() + 32);
                if size <= MAX_BLOCK {
                    headers.push((name.into_owned(), value.into_owned()));
                }
            })
            .map_err(|e| RewriteError::Hpack(e.to_string()))?;
        if size > MAX_BLOCK {
            return Err(RewriteError::BlockTooLarge);
        }
        let mut encoded = Vec::with_capacity(block.fragment.len() + 64);
        for (name, value) in &headers {
            let value: &[u8] = if name == b":authority" && !valid_authority(value) {
                LOCALHOST
            } else {
                value
            };
            encode_literal(name, value, &mut encoded);
        }
        let mut first = Vec::with_capacity(5);
        if let Some(p) = block.priority {
            first.extend_from_slice(&p);
        }
        let room = MAX_OUT_FRAME - first.len();
        let (head, mut rest) = encoded.split_at(encoded.len().min(room));
        first.extend_from_slice(head);
        let flags = block.flags | if rest.is_empty() { END_HEADERS } else { 0 };
        write_frame(out, HEADERS, flags, block.stream, &first);
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(rest.len().min(MAX_OUT_FRAME));
            let flags = if tail.is_empty() { END_HEADERS } else { 0 };
            write_frame(out, CONTINUATION, flags, block.stream, chunk);
            rest = tail;
        }
        Ok(())
    }
}

/// Whether h2 accepts this `:authority` (the URI authority grammar; a path is not one).
fn valid_authority(value: &[u8]) -> bool {
    http::uri::Authority::try_from(value).is_ok()
}

/// HPACK "literal header field without indexing, new name" (RFC 7541 §6.2.2), strings
/// as plain octets: the decoder on the other side keeps no state from it.
fn encode_literal(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    out.push(0x00);
    for s in [name, value] {
        encode_length(s.len(), out);
        out.extend_from_slice(s);
    }
}

/// An HPACK integer with a 7-bit prefix and the Huffman bit clear (RFC 7541 §5.1).
fn encode_length(mut n: usize, out: &mut Vec<u8>) {
    if n < 0x7f {
        out.push(n as u8);
        return;
    }
    out.push(0x7f);
    n -= 0x7f;
    while n >= 0x80 {
        out.push((n % 0x80) as u8 | 0x80);
        n /= 0x80;
    }
    out.push(n as u8);
}

fn write_frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len();
    out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Size of the in-memory pipe between a connection's rewriter and tonic.
const DUPLEX_BUFFER: usize = 256 * 1024;

/// Connections accepted on `listener`, each behind its own rewriter: the stream tonic's
/// `serve_with_incoming` takes. Accept errors (out of file descriptors …) are logged and
/// retried after a pause rather than ending the server.
pub fn incoming(listener: UnixListener) -> impl Stream<Item = io::Result<DuplexStream>> {
    futures_util::stream::unfold(listener, |listener| async move {
        loop {
            match listener.accept().await {
                Ok((client, _)) => {
                    let (ours, theirs) = tokio::io::duplex(DUPLEX_BUFFER);
                    tokio::spawn(proxy(client, ours));
                    return Some((Ok(theirs), listener));
                }
                Err(e) => {
                    tracing::warn!("CRI socket: accepting a connection: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    })
}

/// Shuttle one connection: client bytes through a [`Rewriter`] to tonic, tonic's bytes
/// back unchanged. Ends when both directions are done or the client breaks the protocol.
pub async fn proxy(client: UnixStream, server: DuplexStream) {
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = tokio::io::split(server);
    let up = rewrite(client_read, server_write);
    let down = copy_then_close(server_read, client_write);
    tokio::pin!(up, down);
    tokio::select! {
        r = &mut up => match r {
            // The client is done sending: its answers may still be on their way.
            Ok(()) => {
                let _ = down.await;
            }
            // A client that broke the protocol has its connection closed both ways (by
            // dropping both ends here).
            Err(e) => tracing::debug!("CRI connection dropped: {e}"),
        },
        // tonic closed the connection: nothing more will be read from the client.
        _ = &mut down => {}
    }
}

async fn rewrite(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
) -> io::Result<()> {
    let mut rewriter = Rewriter::default();
    let mut buf = vec![0u8; 16 * 1024];
    let mut out = Vec::new();
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        rewriter
            .feed(&buf[..n], &mut out)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        to.write_all(&out).await?;
        out.clear();
    }
    to.shutdown().await
}

async fn copy_then_close(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
) -> io::Result<()> {
    tokio::io::copy(&mut from, &mut to).await?;
    to.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client-side HPACK encoder that indexes (as Go's does), to drive the decoder.
    fn client_block(enc: &mut loona_hpack::Encoder<'static>, headers: &[(&str, &str)]) -> Vec<u8> {
        enc.encode(headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_frame(&mut out, kind, flags, stream, payload);
        out
    }

    /// Split output into (type, flags, stream, payload) after the preface.
    fn frames(mut bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
        assert!(bytes.starts_with(PREFACE));
        bytes = &bytes[PREFACE.len()..];
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let len =
                usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
            let stream = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
            out.push((bytes[3], bytes[4], stream, bytes[9..9 + len].to_vec()));
            bytes = &bytes[9 + len..];
        }
        out
    }

    /// What the server's decoder makes of a block: also proves the encoding is stateless
    /// (a fresh decoder per block would fail on any indexed reference to a new entry).
    fn decode_fresh(block: &[u8]) -> Vec<(String, String)> {
        loona_hpack::Decoder::new()
            .decode(block)
            .expect("decodes")
            .into_iter()
            .map(|(n, v)| {
                (
                    String::from_utf8(n).expect("utf8"),
                    String::from_utf8(v).expect("utf8"),
                )
            })
            .collect()
    }

    fn request(authority: &str, path: &str) -> Vec<(&'static str, String)> {
        vec![
            (":method", "POST".into()),
            (":scheme", "http".into()),
            (":path", path.into()),
            (":authority", authority.into()),
            ("content-type", "application/grpc".into()),
            ("user-agent", "grpc-go/1.58.3".into()),
            ("te", "trailers".into()),
        ]
    }

    fn run(input: &[u8]) -> Vec<u8> {
        let mut r = Rewriter::default();
        let mut out = Vec::new();
        r.feed(input, &mut out).expect("rewrites");
        out
    }

    #[test]
    fn a_socket_path_authority_becomes_localhost_and_the_rest_is_kept() {
        let mut enc = loona_hpack::Encoder::new();
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100])); // SETTINGS
        let first = request(
            "/run/podhost/cri.sock",
            "/runtime.v1.RuntimeService/Version",
        );
        let first: Vec<(&str, &str)> = first.iter().map(|(n, v)| (*n, v.as_str())).collect();
        input.extend(frame(
            HEADERS,
            END_HEADERS,
            1,
            &client_block(&mut enc, &first),
        ));
        input.extend(frame(0x0, 0x1, 1, b"\0\0\0\0\x04\x0a\x02v1")); // DATA, END_STREAM
                                                                     // The second request of the connection refers to the first one's dynamic-table
                                                                     // entries (the client's encoder indexed them): decoded with the client's table.
        let second = request("/run/podhost/cri.sock", "/runtime.v1.RuntimeService/Status");
        let second: Vec<(&str, &str)> = second.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let block = client_block(&mut enc, &second);
        assert!(
            block.contains(&(0x80 | 62)),
            "the client refers to its table: {block:?}"
        );
        input.extend(frame(HEADERS, END_HEADERS | 0x1, 3, &block));

        let out = frames(&run(&input));
        assert_eq!(out.len(), 4);
        assert_eq!(out[0], (0x4, 0, 0, vec![0, 3, 0, 0, 0, 100]));
        assert_eq!(out[2], (0x0, 0x1, 1, b"\0\0\0\0\x04\x0a\x02v1".to_vec()));
        for (i, path) in [(1, "Version"), (3, "Status")] {
            let (kind, flags, _, payload) = &out[i];
            assert_eq!(*kind, HEADERS);
            assert!(flags & END_HEADERS != 0);
            let headers = decode_fresh(payload);
            let get = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            assert_eq!(get(":authority").as_deref(), Some("localhost"));
            assert_eq!(
                get(":path"),
                Some(format!("/runtime.v1.RuntimeService/{path}"))
            );
            assert_eq!(get("user-agent").as_deref(), Some("grpc-go/1.58.3"));
            assert_eq!(get("te").as_deref(), Some("trailers"));
            assert_eq!(headers.len(), 7);
        }
        assert_eq!(out[3].1 & 0x1, 0x1, "END_STREAM kept");
    }

    #[test]
    fn a_valid_authority_is_left_alone() {
        let mut enc = loona_hpack::Encoder::new();
        let mut input = PREFACE.to_vec();
        let block = client_block(
            &mut enc,
            &[(":method", "POST"), (":authority", "localhost:1234")],
        );
        input.extend(frame(HEADERS, END_HEADERS, 1, &block));
        let out = frames(&run(&input));
        assert_eq!(
            decode_fresh(&out[0].3),
            vec![
                (":method".to_string(), "POST".to_string()),
                (":authority".to_string(), "localhost:1234".to_string())
            ]
        );
    }

    #[test]
    fn padding_priority_and_continuations_are_handled() {
        let mut enc = loona_hpack::Encoder::new();
        let block = client_block(
            &mut enc,
            &[(":authority", "/tmp/x.sock"), ("x-long", &"a".repeat(300))],
        );
        let (a, b) = block.split_at(10);
        let (b, c) = b.split_at(100);
        let mut headers = vec![4u8]; // pad length
        headers.extend_from_slice(&[0x80, 0, 0, 7, 200]); // exclusive dependency on 7, weight
        headers.extend_from_slice(a);
        headers.extend_from_slice(&[0; 4]);
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, PADDED | PRIORITY | 0x1, 5, &headers));
        input.extend(frame(CONTINUATION, 0, 5, b));
        input.extend(frame(CONTINUATION, END_HEADERS, 5, c));
        // Fed a byte at a time: frames straddle reads.
        let mut r = Rewriter::default();
        let mut out = Vec::new();
        for byte in &input {
            r.feed(std::slice::from_ref(byte), &mut out)
                .expect("rewrites");
        }
        let out = frames(&out);
        assert_eq!(out.len(), 1);
        let (kind, flags, stream, payload) = &out[0];
        assert_eq!((*kind, *stream), (HEADERS, 5));
        assert_eq!(*flags, PRIORITY | 0x1 | END_HEADERS, "PADDED dropped");
        assert_eq!(&payload[..5], &[0x80, 0, 0, 7, 200]);
        let decoded = decode_fresh(&payload[5..]);
        assert_eq!(decoded[0], (":authority".into(), "localhost".into()));
        assert_eq!(decoded[1].1.len(), 300);
    }

    #[test]
    fn a_large_block_is_split_into_continuations() {
        let mut enc = loona_hpack::Encoder::new();
        let big = "v".repeat(40_000);
        let block = client_block(&mut enc, &[(":authority", "/s"), ("x-big", &big)]);
        let mut input = PREFACE.to_vec();
        // The client may send frames up to the server's announced max frame size.
        input.extend(frame(HEADERS, END_HEADERS, 1, &block));
        let out = frames(&run(&input));
        assert_eq!(out.len(), 3);
        assert_eq!((out[0].0, out[0].1), (HEADERS, 0));
        assert_eq!((out[1].0, out[1].1), (CONTINUATION, 0));
        assert_eq!((out[2].0, out[2].1), (CONTINUATION, END_HEADERS));
        assert!(out.iter().all(|f| f.3.len() <= MAX_OUT_FRAME));
        let joined: Vec<u8> = out.iter().flat_map(|f| f.3.clone()).collect();
        assert_eq!(decode_fresh(&joined)[1].1, big);
    }

    #[test]
    fn broken_framing_is_an_error() {
        let mut enc = loona_hpack::Encoder::new();
        let block = client_block(&mut enc, &[(":authority", "/s")]);
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, 0, 1, &block)); // no END_HEADERS
        input.extend(frame(0x0, 0, 1, b"data"));
        let mut r = Rewriter::default();
        assert!(matches!(
            r.feed(&input, &mut Vec::new()),
            Err(RewriteError::ContinuationExpected { .. })
        ));

        let mut input = PREFACE.to_vec();
        input.extend(frame(CONTINUATION, END_HEADERS, 1, &block));
        assert!(matches!(
            Rewriter::default().feed(&input, &mut Vec::new()),
            Err(RewriteError::StrayContinuation(1))
        ));

        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, END_HEADERS | PADDED, 1, &[200, 1, 2]));
        assert!(matches!(
            Rewriter::default().feed(&input, &mut Vec::new()),
            Err(RewriteError::BadPadding(1))
        ));

        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, END_HEADERS, 1, &[0xff, 0xff, 0xff, 0x7f]));
        assert!(matches!(
            Rewriter::default().feed(&input, &mut Vec::new()),
            Err(RewriteError::Hpack(_))
        ));
    }

    #[test]
    fn an_expanding_block_is_refused() {
        // One literal indexed into the table, then referenced many times: a few bytes
        // that decode to megabytes.
        let mut block = vec![0x40, 1, b'x', 0x7f, 0xb9, 0x16];
        block.extend(std::iter::repeat_n(b'v', 3000));
        block.extend(std::iter::repeat_n(0x80 | 62, 1000));
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, END_HEADERS, 1, &block));
        assert!(matches!(
            Rewriter::default().feed(&input, &mut Vec::new()),
            Err(RewriteError::BlockTooLarge)
        ));
    }

    #[test]
    fn not_http2_passes_through() {
        let out = run(b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(out, b"GET / HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn hpack_lengths_use_the_continuation_bytes() {
        let mut out = Vec::new();
        encode_length(10, &mut out);
        encode_length(127, &mut out);
        encode_length(1337, &mut out);
        // RFC 7541 C.1.2 shows 1337 with a 5-bit prefix; with 7 bits: 127, then 1210.
        assert_eq!(out, vec![10, 0x7f, 0, 0x7f, 0xba, 0x09]);
    }
}
