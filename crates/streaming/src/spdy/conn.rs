//! A SPDY/3.1 connection: streams multiplexed over one byte stream (an upgraded HTTP
//! connection), as Go's moby/spdystream runs it for kubelet.
//!
//! Two tasks own the transport: the reader decodes frames and dispatches them to stream
//! buffers; the writer encodes frames from one ordered queue (so a stream's SYN_STREAM
//! or SYN_REPLY always precedes its data, and its FIN follows it). Handles ([`Stream`],
//! its halves, [`PendingStream`]) share the state behind a mutex that is never held
//! across an await.
//!
//! Flow control: this side grants each stream a receive window (64 KiB unless
//! configured) and returns WINDOW_UPDATEs (per stream and, SPDY/3.1, for the session)
//! as the application consumes data. Go's spdystream neither sends WINDOW_UPDATE nor
//! honours a window: it relies on TCP backpressure. So by default this side does not
//! wait for the peer's window either (`Config::enforce_send_window`), or a kubelet-style
//! peer would stall it after 64 KiB; the window is still accounted. What a peer sends
//! beyond a stream's buffer is not read off the socket until the application consumes
//! (bounded memory, TCP backpressure, like spdystream).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinHandle;

use super::frame::{
    Decoder, Encoder, Frame, RstStatus, Setting, FLAG_FIN, FLAG_UNIDIRECTIONAL, MAX_STREAM_ID,
    SETTINGS_INITIAL_WINDOW_SIZE,
};
use super::headers::Headers;

/// SPDY/3's initial window, per stream and (3.1) per session.
pub const DEFAULT_WINDOW: u32 = 64 * 1024;
/// Data frames queued for the writer, over all streams, before writes wait.
const MAX_QUEUED_DATA: usize = 1024 * 1024;
/// Control frames (pings, window updates, resets) the peer can make us queue while
/// not reading: past this it is flooding, and the connection ends.
const MAX_QUEUED_CONTROL: usize = 4096;
/// GOAWAY status for a peer that broke the protocol.
const GOAWAY_PROTOCOL_ERROR: u32 = 1;

/// Tunables of a connection; the defaults match kubelet's peers.
#[derive(Clone, Debug)]
pub struct Config {
    /// Receive window granted per stream, which is also how much of one stream's
    /// unread data is buffered before the connection stops reading.
    pub initial_window: u32,
    /// Wait for the peer's WINDOW_UPDATEs before sending past its window (SPDY/3.1
    /// flow control). Off by default: Go's spdystream never sends them.
    pub enforce_send_window: bool,
    /// Streams the peer may have open at once; more are refused (REFUSED_STREAM).
    pub max_incoming_streams: usize,
    /// Largest decompressed header block accepted (a zlib bomb is a protocol error).
    pub max_header_block: usize,
    /// Largest data frame this side sends (Go's io.Copy writes 32 KiB at a time).
    pub max_data_frame: usize,
    /// Streams the peer opened that wait for the application to take them.
    pub accept_backlog: usize,
    /// How long queued frames may take to drain after close before the transport is
    /// dropped anyway (a peer that stops reading cannot hold the connection).
    pub close_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            initial_window: DEFAULT_WINDOW,
            enforce_send_window: false,
            max_incoming_streams: 1000,
            max_header_block: 256 * 1024,
            max_data_frame: 32 * 1024,
            accept_backlog: 16,
            close_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a connection or stream operation failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// The peer answered our SYN_STREAM with RST_STREAM.
    #[error("stream {id} refused by the peer: {status}")]
    Refused {
        /// The stream.
        id: u32,
        /// The peer's status.
        status: RstStatus,
    },
    /// The peer sent GOAWAY: it takes no new streams.
    #[error("the peer is going away; stream {id} was not accepted")]
    GoneAway {
        /// The stream that was not accepted.
        id: u32,
    },
    /// The connection ended (peer closed, transport error, protocol error, close).
    #[error("SPDY connection ended: {0}")]
    Closed(String),
    /// All 2^30 stream ids of this side are used.
    #[error("no stream ids left on this connection")]
    IdsExhausted,
}

/// A frame for the writer, or the order to stop after the frames before it.
enum Out {
    Frame(Frame),
    Shutdown,
}

/// Per-stream state, shared by the stream's handles and the reader.
struct StreamState {
    /// The peer opened it (counts against `max_incoming_streams`).
    peer_opened: bool,
    /// Received data not yet read by the application.
    recv: VecDeque<Bytes>,
    /// Total bytes in `recv`.
    recv_len: usize,
    /// The peer sent FIN: after `recv` drains, reads return EOF.
    recv_fin: bool,
    /// Bytes consumed since the last WINDOW_UPDATE we sent for this stream.
    recv_unacked: u32,
    /// A reader waiting for data.
    read_waker: Option<Waker>,
    /// The receiving handle still exists (else arriving data is discarded).
    recv_attached: bool,
    /// The sending handle still exists.
    send_attached: bool,
    /// We sent FIN (or may not send: unidirectional).
    send_fin: bool,
    /// What the peer's window still allows us to send.
    send_window: i64,
    /// A writer waiting for window.
    write_waker: Option<Waker>,
    /// Reset (by either side), with the status.
    reset: Option<RstStatus>,
    /// Our SYN_STREAM waits for the peer's SYN_REPLY or RST_STREAM.
    reply: Option<oneshot::Sender<Result<(), Error>>>,
}

impl StreamState {
    fn new(peer_opened: bool, send_window: i64) -> Self {
        Self {
            peer_opened,
            recv: VecDeque::new(),
            recv_len: 0,
            recv_fin: false,
            recv_unacked: 0,
            read_waker: None,
            recv_attached: true,
            send_attached: true,
            send_fin: false,
            send_window,
            write_waker: None,
            reset: None,
            reply: None,
        }
    }

    fn wake(&mut self) {
        if let Some(w) = self.read_waker.take() {
            w.wake();
        }
        if let Some(w) = self.write_waker.take() {
            w.wake();
        }
    }
}

/// Connection-wide state.
struct State {
    /// Open streams by id.
    streams: HashMap<u32, StreamState>,
    /// Next id for a stream we open (odd for clients, even for servers).
    next_stream_id: u32,
    /// Highest id the peer opened (ids must increase; GOAWAY reports it).
    last_peer_stream_id: u32,
    /// Peer-opened streams in `streams`.
    peer_streams: usize,
    /// The peer's initial per-stream window (SETTINGS may change it).
    peer_initial_window: i64,
    /// What the peer's session window still allows (SPDY/3.1).
    session_send_window: i64,
    /// Bytes consumed on all streams since our last session WINDOW_UPDATE.
    session_recv_unacked: u32,
    /// Bytes of data frames waiting in the writer's queue.
    queued_data: usize,
    /// Control frames waiting in the writer's queue.
    queued_control: usize,
    /// Writers waiting for `queued_data` to drop.
    blocked_writers: Vec<Waker>,
    /// Why the connection ended, once it has.
    ended: Option<String>,
    /// Writing failed (the peer may be gone): sends fail, but what the peer sent
    /// before is still read until EOF.
    write_failed: Option<String>,
    /// We sent GOAWAY: new peer streams are refused.
    goaway_sent: bool,
    /// The peer sent GOAWAY: we may not open streams.
    goaway_received: bool,
    /// Our pings waiting for their echo.
    pings: HashMap<u32, oneshot::Sender<()>>,
    /// Next id for a ping we send (odd for clients, even for servers).
    next_ping_id: u32,
}

/// What every handle of a connection shares.
struct Shared {
    /// Connection and stream state.
    state: Mutex<State>,
    /// The writer's queue.
    out: mpsc::UnboundedSender<Out>,
    /// Wakes the reader when an application read made room in a stream buffer.
    reader_space: Notify,
    /// Becomes true when the connection ends.
    ended: watch::Sender<bool>,
    /// Becomes true when this side starts closing (starts the writer's drain timer).
    closing: watch::Sender<bool>,
    /// The tunables.
    config: Config,
    /// This side is the server (peer stream ids are odd).
    server: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data; keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a control frame; ends the connection if the peer makes us queue too many.
    fn control(&self, state: &mut State, frame: Frame) {
        state.queued_control += 1;
        if state.queued_control > MAX_QUEUED_CONTROL {
            self.end_locked(state, "peer does not read its control frames".into());
            return;
        }
        let _ = self.out.send(Out::Frame(frame));
    }

    fn reset_stream(&self, state: &mut State, id: u32, status: RstStatus) {
        if let Some(st) = state.streams.get_mut(&id) {
            if st.reset.is_none() {
                st.reset = Some(status);
                st.wake();
            }
        }
        self.control(
            state,
            Frame::RstStream {
                stream_id: id,
                status,
            },
        );
        self.maybe_remove(state, id);
    }

    /// Forgets a stream once no handle refers to it and neither side can send on it.
    fn maybe_remove(&self, state: &mut State, id: u32) {
        let Some(st) = state.streams.get(&id) else {
            return;
        };
        if st.recv_attached || st.send_attached {
            return;
        }
        if st.reset.is_some() || (st.recv_fin && st.send_fin) {
            if st.peer_opened {
                state.peer_streams -= 1;
            }
            state.streams.remove(&id);
            // A stream dropped with unread data frees reader space.
            self.reader_space.notify_one();
        }
    }

    /// A handle went away: finish our side of the stream as gracefully as possible.
    fn detach(&self, id: u32, recv: bool, send: bool) {
        let mut state = self.lock();
        let ended = state.ended.is_some();
        let Some(st) = state.streams.get_mut(&id) else {
            return;
        };
        let mut send_fin = false;
        if recv && st.recv_attached {
            st.recv_attached = false;
            let unread = st.recv_len;
            st.recv.clear();
            st.recv_len = 0;
            if unread > 0 {
                self.reader_space.notify_one();
            }
        }
        if send && st.send_attached {
            st.send_attached = false;
            if !st.send_fin && st.reset.is_none() && !ended {
                st.send_fin = true;
                send_fin = true;
            }
        }
        let abandon =
            !st.recv_attached && !st.send_attached && st.reset.is_none() && !st.recv_fin && !ended;
        if send_fin {
            // Data already queued goes first: FIN follows it in the same queue.
            let _ = self.out.send(Out::Frame(Frame::Data {
                stream_id: id,
                fin: true,
                data: Bytes::new(),
            }));
        }
        if abandon {
            // Nobody will read what the peer still sends: tell it to stop.
            self.reset_stream(&mut state, id, RstStatus::CANCEL);
        } else {
            self.maybe_remove(&mut state, id);
        }
    }

    fn write_failed(&self, reason: String) {
        let mut state = self.lock();
        tracing::debug!(%reason, "SPDY connection cannot send");
        state.write_failed.get_or_insert(reason);
        for st in state.streams.values_mut() {
            if let Some(w) = st.write_waker.take() {
                w.wake();
            }
        }
        for w in state.blocked_writers.drain(..) {
            w.wake();
        }
    }

    fn end(&self, reason: String) {
        let mut state = self.lock();
        self.end_locked(&mut state, reason);
    }

    fn end_locked(&self, state: &mut State, reason: String) {
        if state.ended.is_some() {
            return;
        }
        tracing::debug!(%reason, "SPDY connection ended");
        state.ended = Some(reason.clone());
        for st in state.streams.values_mut() {
            if let Some(reply) = st.reply.take() {
                let _ = reply.send(Err(Error::Closed(reason.clone())));
            }
            st.wake();
        }
        state.pings.clear();
        for w in state.blocked_writers.drain(..) {
            w.wake();
        }
        let _ = self.out.send(Out::Shutdown);
        self.reader_space.notify_one();
        self.ended.send_replace(true);
    }

    fn closed_error(state: &State) -> Error {
        let reason = state.ended.as_ref().or(state.write_failed.as_ref());
        Error::Closed(reason.cloned().unwrap_or_else(|| "closed".into()))
    }
}

/// One SPDY connection. Dropping it closes the connection (GOAWAY, then the transport
/// once queued frames are written); keep it while its streams are in use.
pub struct Connection {
    /// State shared with the streams and the tasks.
    shared: Arc<Shared>,
    /// The reader task (aborted on drop: the peer may never close).
    reader: Option<JoinHandle<()>>,
    /// The writer task, awaited by [`Connection::close`].
    writer: Option<JoinHandle<()>>,
}

/// Streams the peer opens, waiting to be accepted or refused.
pub struct Incoming {
    /// Fed by the reader task; ends with the connection.
    rx: mpsc::Receiver<PendingStream>,
}

impl Incoming {
    /// The next stream the peer opened; `None` once the connection ended.
    pub async fn next(&mut self) -> Option<PendingStream> {
        self.rx.recv().await
    }
}

impl Connection {
    /// The server side of an upgraded connection (the peer opens odd streams).
    pub fn server<T>(io: T, config: Config) -> (Connection, Incoming)
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        Self::new(io, true, config)
    }

    /// The client side (this side opens odd streams).
    pub fn client<T>(io: T, config: Config) -> (Connection, Incoming)
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        Self::new(io, false, config)
    }

    fn new<T>(io: T, server: bool, config: Config) -> (Connection, Incoming)
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (incoming_tx, incoming_rx) = mpsc::channel(config.accept_backlog.max(1));
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                streams: HashMap::new(),
                next_stream_id: if server { 2 } else { 1 },
                last_peer_stream_id: 0,
                peer_streams: 0,
                peer_initial_window: i64::from(DEFAULT_WINDOW),
                session_send_window: i64::from(DEFAULT_WINDOW),
                session_recv_unacked: 0,
                queued_data: 0,
                queued_control: 0,
                blocked_writers: Vec::new(),
                ended: None,
                write_failed: None,
                goaway_sent: false,
                goaway_received: false,
                pings: HashMap::new(),
                next_ping_id: if server { 2 } else { 1 },
            }),
            out: out_tx,
            reader_space: Notify::new(),
            ended: watch::channel(false).0,
            closing: watch::channel(false).0,
            config,
            server,
        });
        if shared.config.initial_window != DEFAULT_WINDOW {
            let mut state = shared.lock();
            shared.control(
                &mut state,
                Frame::Settings {
                    flags: 0,
                    entries: vec![Setting {
                        flags: 0,
                        id: SETTINGS_INITIAL_WINDOW_SIZE,
                        value: shared.config.initial_window,
                    }],
                },
            );
        }
        let (read, write) = tokio::io::split(io);
        let reader = tokio::spawn(read_loop(shared.clone(), read, incoming_tx));
        let writer = tokio::spawn(write_loop(shared.clone(), write, out_rx));
        (
            Connection {
                shared,
                reader: Some(reader),
                writer: Some(writer),
            },
            Incoming { rx: incoming_rx },
        )
    }

    /// Opens a stream with `headers` and waits for the peer to accept it (SYN_REPLY).
    /// Go's client does this once per kubelet stream (`streamtype: stdout`, ...).
    pub async fn open_stream(&self, headers: Headers) -> Result<Stream, Error> {
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut state = self.shared.lock();
            if state.ended.is_some() || state.write_failed.is_some() {
                return Err(Shared::closed_error(&state));
            }
            let id = state.next_stream_id;
            if state.goaway_received {
                return Err(Error::GoneAway { id });
            }
            if id > MAX_STREAM_ID {
                return Err(Error::IdsExhausted);
            }
            state.next_stream_id += 2;
            let mut st = StreamState::new(false, state.peer_initial_window);
            st.reply = Some(tx);
            state.streams.insert(id, st);
            // Queued under the lock: stream ids must reach the wire in increasing order.
            let _ = self.shared.out.send(Out::Frame(Frame::SynStream {
                stream_id: id,
                associated_to: 0,
                priority: 0,
                slot: 0,
                flags: 0,
                headers: headers.clone(),
            }));
            id
        };
        // Built before waiting so a cancelled open still cleans up (drop resets it).
        let stream = Stream::new(self.shared.clone(), id, Arc::new(headers));
        match rx.await {
            Ok(Ok(())) => Ok(stream),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Shared::closed_error(&self.shared.lock())),
        }
    }

    /// Sends a PING and waits for its echo.
    pub async fn ping(&self) -> Result<Duration, Error> {
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.shared.lock();
            if state.ended.is_some() {
                return Err(Shared::closed_error(&state));
            }
            let id = state.next_ping_id;
            state.next_ping_id = if id > MAX_STREAM_ID - 2 {
                id & 1
            } else {
                id + 2
            };
            state.pings.insert(id, tx);
            self.shared.control(&mut state, Frame::Ping { id });
        }
        let start = Instant::now();
        rx.await
            .map_err(|_| Shared::closed_error(&self.shared.lock()))?;
        Ok(start.elapsed())
    }

    /// Closes gracefully: GOAWAY after everything queued, then closes the transport's
    /// write side and waits until written (at most `close_timeout` past this call).
    pub async fn close(mut self) {
        self.start_close();
        if let Some(writer) = self.writer.take() {
            let _ = writer.await;
        }
        // Read on until the peer closes too (it does on GOAWAY): closing a socket with
        // unread input makes the kernel reset it, and the peer could lose our last frames.
        if let Some(reader) = self.reader.take() {
            let abort = reader.abort_handle();
            if tokio::time::timeout(self.shared.config.close_timeout, reader)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    /// Resolves when the connection has ended (peer closed, error, or close).
    pub async fn closed(&self) {
        let mut rx = self.shared.ended.subscribe();
        let _ = rx.wait_for(|ended| *ended).await;
    }

    /// Why the connection ended, if it has.
    pub fn end_reason(&self) -> Option<String> {
        self.shared.lock().ended.clone()
    }

    fn start_close(&self) {
        let mut state = self.shared.lock();
        if !state.goaway_sent && state.ended.is_none() {
            state.goaway_sent = true;
            let last = state.last_peer_stream_id;
            let _ = self.shared.out.send(Out::Frame(Frame::GoAway {
                last_good_stream_id: last,
                status: 0,
            }));
        }
        self.shared
            .end_locked(&mut state, "closed by this side".into());
        self.shared.closing.send_replace(true);
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.start_close();
        if let Some(reader) = &self.reader {
            reader.abort();
        }
    }
}

/// A stream the peer opened, not yet answered. Dropping it refuses it.
pub struct PendingStream {
    /// The connection.
    shared: Arc<Shared>,
    /// Accepted: dropping it no longer refuses it.
    accepted: bool,
    /// The stream id.
    id: u32,
    /// The headers of its SYN_STREAM.
    headers: Arc<Headers>,
}

impl PendingStream {
    /// The stream id (odd: the client opened it).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The headers the peer opened it with.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// Accepts the stream: SYN_REPLY with no headers, as kubelet's server answers.
    pub fn accept(mut self) -> Stream {
        self.accepted = true;
        let shared = self.shared.clone();
        let state = shared.lock();
        let open = state
            .streams
            .get(&self.id)
            .is_some_and(|st| st.reset.is_none());
        if open && state.ended.is_none() {
            let _ = shared.out.send(Out::Frame(Frame::SynReply {
                stream_id: self.id,
                fin: false,
                headers: Headers::new(),
            }));
        }
        drop(state);
        Stream::new(shared.clone(), self.id, self.headers.clone())
    }

    /// Refuses the stream (RST_STREAM REFUSED_STREAM).
    pub fn refuse(self) {}
}

impl Drop for PendingStream {
    fn drop(&mut self) {
        if !self.accepted {
            let mut state = self.shared.lock();
            if let Some(st) = state.streams.get_mut(&self.id) {
                st.recv_attached = false;
                st.send_attached = false;
            }
            self.shared
                .reset_stream(&mut state, self.id, RstStatus::REFUSED_STREAM);
        }
    }
}

/// One bidirectional stream: read what the peer sends, write to it, shut down to send
/// FIN (half-close, as Go's `Stream.Close`). Dropping it sends FIN if not yet sent,
/// or resets it if the peer is still sending.
pub struct Stream {
    /// Reading side.
    recv: RecvHalf,
    /// Writing side.
    send: SendHalf,
}

impl Stream {
    fn new(shared: Arc<Shared>, id: u32, headers: Arc<Headers>) -> Self {
        Self {
            recv: RecvHalf {
                shared: shared.clone(),
                id,
                headers: headers.clone(),
            },
            send: SendHalf {
                shared,
                id,
                headers,
            },
        }
    }

    /// The stream id.
    pub fn id(&self) -> u32 {
        self.recv.id
    }

    /// The headers it was opened with.
    pub fn headers(&self) -> &Headers {
        &self.recv.headers
    }

    /// Ends the stream abnormally in both directions (RST_STREAM).
    pub fn reset(&self, status: RstStatus) {
        self.send.reset(status);
    }

    /// Splits into halves that can move to different tasks.
    pub fn into_split(self) -> (RecvHalf, SendHalf) {
        (self.recv, self.send)
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.recv).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.send).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.send).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.send).poll_shutdown(cx)
    }
}

/// The reading side of a [`Stream`].
pub struct RecvHalf {
    shared: Arc<Shared>,
    id: u32,
    headers: Arc<Headers>,
}

impl RecvHalf {
    /// The stream id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The headers the stream was opened with.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }
}

impl AsyncRead for RecvHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let shared = &self.shared;
        let window = shared.config.initial_window / 2;
        let mut guard = shared.lock();
        let state = &mut *guard;
        let Some(st) = state.streams.get_mut(&self.id) else {
            return Poll::Ready(Ok(()));
        };
        if st.recv_len > 0 {
            let mut n = 0;
            while buf.remaining() > 0 {
                let Some(front) = st.recv.front_mut() else {
                    break;
                };
                let take = front.len().min(buf.remaining());
                buf.put_slice(&front[..take]);
                front.advance(take);
                if front.is_empty() {
                    st.recv.pop_front();
                }
                n += take;
            }
            st.recv_len -= n;
            st.recv_unacked += n as u32;
            state.session_recv_unacked += n as u32;
            let mut updates = Vec::new();
            if !st.recv_fin && st.reset.is_none() && st.recv_unacked >= window {
                updates.push(Frame::WindowUpdate {
                    stream_id: self.id,
                    delta: std::mem::take(&mut st.recv_unacked),
                });
            }
            if state.session_recv_unacked >= window {
                updates.push(Frame::WindowUpdate {
                    stream_id: 0,
                    delta: std::mem::take(&mut state.session_recv_unacked),
                });
            }
            for update in updates {
                shared.control(state, update);
            }
            drop(guard);
            shared.reader_space.notify_one();
            return Poll::Ready(Ok(()));
        }
        if st.recv_fin {
            // The peer finished before any reset: the data is complete.
            return Poll::Ready(Ok(()));
        }
        if let Some(status) = st.reset {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                format!("SPDY stream {} reset: {status}", self.id),
            )));
        }
        if let Some(reason) = &state.ended {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "SPDY connection ended before stream {} did: {reason}",
                    self.id
                ),
            )));
        }
        st.read_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for RecvHalf {
    fn drop(&mut self) {
        self.shared.detach(self.id, true, false);
    }
}

/// The writing side of a [`Stream`]; `shutdown` sends FIN.
pub struct SendHalf {
    shared: Arc<Shared>,
    id: u32,
    headers: Arc<Headers>,
}

impl SendHalf {
    /// The stream id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The headers the stream was opened with.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// Ends the stream abnormally in both directions (RST_STREAM).
    pub fn reset(&self, status: RstStatus) {
        let mut state = self.shared.lock();
        let open = state
            .streams
            .get(&self.id)
            .is_some_and(|st| st.reset.is_none());
        if open && state.ended.is_none() {
            self.shared.reset_stream(&mut state, self.id, status);
        }
    }
}

impl AsyncWrite for SendHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let shared = &self.shared;
        let mut guard = shared.lock();
        let state = &mut *guard;
        if let Some(reason) = state.ended.as_ref().or(state.write_failed.as_ref()) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!("SPDY connection ended: {reason}"),
            )));
        }
        let Some(st) = state.streams.get_mut(&self.id) else {
            return Poll::Ready(Err(closed_for_writing(self.id)));
        };
        if let Some(status) = st.reset {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                format!("SPDY stream {} reset: {status}", self.id),
            )));
        }
        if st.send_fin {
            return Poll::Ready(Err(closed_for_writing(self.id)));
        }
        if state.queued_data >= MAX_QUEUED_DATA {
            state.blocked_writers.push(cx.waker().clone());
            return Poll::Pending;
        }
        let mut n = buf.len().min(shared.config.max_data_frame);
        if shared.config.enforce_send_window {
            let allowed = st.send_window.min(state.session_send_window);
            if allowed <= 0 {
                st.write_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            n = n.min(allowed as usize);
        }
        st.send_window -= n as i64;
        state.session_send_window -= n as i64;
        state.queued_data += n;
        let _ = shared.out.send(Out::Frame(Frame::Data {
            stream_id: self.id,
            fin: false,
            data: Bytes::copy_from_slice(&buf[..n]),
        }));
        Poll::Ready(Ok(n))
    }

    /// Frames are queued in order and written by the connection's writer; there is no
    /// per-stream buffer to flush.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.shared.lock();
        let ended = state.ended.is_some();
        if let Some(st) = state.streams.get_mut(&self.id) {
            if !st.send_fin && st.reset.is_none() && !ended {
                st.send_fin = true;
                let _ = self.shared.out.send(Out::Frame(Frame::Data {
                    stream_id: self.id,
                    fin: true,
                    data: Bytes::new(),
                }));
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for SendHalf {
    fn drop(&mut self) {
        self.shared.detach(self.id, false, true);
    }
}

fn closed_for_writing(id: u32) -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        format!("SPDY stream {id} is closed for writing"),
    )
}

async fn read_loop<R>(shared: Arc<Shared>, mut io: R, incoming: mpsc::Sender<PendingStream>)
where
    R: AsyncRead + Unpin,
{
    let mut decoder = Decoder::new(shared.config.max_header_block);
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let reason = loop {
        match decoder.decode(&mut buf) {
            Ok(Some(frame)) => {
                if let Err(reason) = handle_frame(&shared, frame, &incoming).await {
                    break reason;
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                let mut state = shared.lock();
                if !state.goaway_sent {
                    state.goaway_sent = true;
                    let last = state.last_peer_stream_id;
                    let _ = shared.out.send(Out::Frame(Frame::GoAway {
                        last_good_stream_id: last,
                        status: GOAWAY_PROTOCOL_ERROR,
                    }));
                }
                break format!("protocol error from peer: {e}");
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16 * 1024);
        }
        match io.read_buf(&mut buf).await {
            Ok(0) if buf.is_empty() => break "peer closed the connection".to_string(),
            Ok(0) => break "peer closed the connection mid-frame".to_string(),
            Ok(_) => {}
            Err(e) => break format!("reading: {e}"),
        }
    };
    shared.end(reason);
}

/// Applies one frame from the peer. Errors end the connection.
async fn handle_frame(
    shared: &Arc<Shared>,
    frame: Frame,
    incoming: &mpsc::Sender<PendingStream>,
) -> Result<(), String> {
    match frame {
        Frame::SynStream {
            stream_id,
            flags,
            headers,
            ..
        } => {
            let pending = {
                let mut guard = shared.lock();
                let state = &mut *guard;
                if state.ended.is_some() {
                    return Err(Shared::closed_error(state).to_string());
                }
                let peer_parity = if shared.server { 1 } else { 0 };
                if state.streams.contains_key(&stream_id) {
                    // Reusing an open stream's id: that stream cannot be trusted either.
                    shared.reset_stream(state, stream_id, RstStatus::STREAM_IN_USE);
                    return Ok(());
                }
                if stream_id % 2 != peer_parity || stream_id <= state.last_peer_stream_id {
                    // Like spdystream: reset the offending stream, keep the connection.
                    shared.control(
                        state,
                        Frame::RstStream {
                            stream_id,
                            status: RstStatus::PROTOCOL_ERROR,
                        },
                    );
                    return Ok(());
                }
                state.last_peer_stream_id = stream_id;
                if state.goaway_sent || state.peer_streams >= shared.config.max_incoming_streams {
                    shared.control(
                        state,
                        Frame::RstStream {
                            stream_id,
                            status: RstStatus::REFUSED_STREAM,
                        },
                    );
                    return Ok(());
                }
                let mut st = StreamState::new(true, state.peer_initial_window);
                st.recv_fin = flags & FLAG_FIN != 0;
                st.send_fin = flags & FLAG_UNIDIRECTIONAL != 0;
                state.streams.insert(stream_id, st);
                state.peer_streams += 1;
                PendingStream {
                    shared: shared.clone(),
                    accepted: false,
                    id: stream_id,
                    headers: Arc::new(headers),
                }
            };
            // Waits while the application is not accepting (bounded backlog); if it
            // dropped `Incoming`, the returned stream is dropped, which refuses it.
            let _ = incoming.send(pending).await;
        }
        Frame::SynReply { stream_id, fin, .. } => {
            let mut state = shared.lock();
            if let Some(st) = state.streams.get_mut(&stream_id) {
                if let Some(reply) = st.reply.take() {
                    let _ = reply.send(Ok(()));
                }
                if fin {
                    st.recv_fin = true;
                    st.wake();
                }
            }
        }
        Frame::Data {
            stream_id,
            fin,
            data,
        } => handle_data(shared, stream_id, fin, data).await,
        Frame::RstStream { stream_id, status } => {
            let mut state = shared.lock();
            if let Some(st) = state.streams.get_mut(&stream_id) {
                st.reset = Some(status);
                if let Some(reply) = st.reply.take() {
                    let _ = reply.send(Err(Error::Refused {
                        id: stream_id,
                        status,
                    }));
                }
                // Data that arrived before the reset stays readable: Go's kubelet
                // writes the exit status and then resets every stream on close.
                st.wake();
                shared.maybe_remove(&mut state, stream_id);
            }
        }
        Frame::Settings { entries, .. } => {
            let mut state = shared.lock();
            for entry in entries {
                if entry.id == SETTINGS_INITIAL_WINDOW_SIZE {
                    let value = i64::from(entry.value & MAX_STREAM_ID);
                    let delta = value - state.peer_initial_window;
                    state.peer_initial_window = value;
                    for st in state.streams.values_mut() {
                        st.send_window += delta;
                        st.wake();
                    }
                }
            }
        }
        Frame::Ping { id } => {
            let mut state = shared.lock();
            let ours = (id % 2 == 0) == shared.server;
            if ours {
                if let Some(waiter) = state.pings.remove(&id) {
                    let _ = waiter.send(());
                }
            } else {
                shared.control(&mut state, Frame::Ping { id });
            }
        }
        Frame::GoAway {
            last_good_stream_id,
            ..
        } => {
            let mut state = shared.lock();
            state.goaway_received = true;
            for (id, st) in state.streams.iter_mut() {
                if !st.peer_opened && *id > last_good_stream_id {
                    if let Some(reply) = st.reply.take() {
                        let _ = reply.send(Err(Error::GoneAway { id: *id }));
                    }
                }
            }
        }
        Frame::Headers { stream_id, fin, .. } => {
            if fin {
                let mut state = shared.lock();
                if let Some(st) = state.streams.get_mut(&stream_id) {
                    st.recv_fin = true;
                    st.wake();
                }
                shared.maybe_remove(&mut state, stream_id);
            }
        }
        Frame::WindowUpdate { stream_id, delta } => {
            let mut state = shared.lock();
            let delta = i64::from(delta);
            if stream_id == 0 {
                state.session_send_window += delta;
                for st in state.streams.values_mut() {
                    st.wake();
                }
            } else if let Some(st) = state.streams.get_mut(&stream_id) {
                st.send_window += delta;
                let overflow = st.send_window > i64::from(MAX_STREAM_ID);
                st.wake();
                if overflow {
                    shared.reset_stream(&mut state, stream_id, RstStatus::FLOW_CONTROL_ERROR);
                }
            }
        }
        Frame::Unknown { .. } => {}
    }
    Ok(())
}

async fn handle_data(shared: &Arc<Shared>, stream_id: u32, fin: bool, data: Bytes) {
    let cap = shared.config.initial_window as usize;
    loop {
        let space = shared.reader_space.notified();
        {
            let mut guard = shared.lock();
            let state = &mut *guard;
            // Once ended nobody frees space: keep what was already read, do not wait.
            let may_wait = state.ended.is_none();
            let Some(st) = state.streams.get_mut(&stream_id) else {
                // A stream that is gone (reset, finished): spdystream ignores these.
                return;
            };
            if st.reset.is_some() {
                return;
            }
            if st.recv_fin {
                shared.reset_stream(state, stream_id, RstStatus::STREAM_ALREADY_CLOSED);
                return;
            }
            if may_wait && st.recv_attached && st.recv_len > 0 && st.recv_len + data.len() > cap {
                // Full: stop reading the connection until the application reads.
            } else {
                let len = data.len();
                if st.recv_attached {
                    if len > 0 {
                        st.recv.push_back(data);
                        st.recv_len += len;
                    }
                } else {
                    // Nobody reads it, but a window-honouring peer still needs credit.
                    st.recv_unacked += len as u32;
                    state.session_recv_unacked += len as u32;
                }
                if fin {
                    st.recv_fin = true;
                }
                st.wake();
                if fin {
                    shared.maybe_remove(state, stream_id);
                }
                return;
            }
        }
        space.await;
    }
}

async fn write_loop<W>(shared: Arc<Shared>, mut io: W, mut rx: mpsc::UnboundedReceiver<Out>)
where
    W: AsyncWrite + Unpin,
{
    let mut encoder = Encoder::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut closing = shared.closing.subscribe();
    let close_timeout = shared.config.close_timeout;
    // Past this, the transport is dropped even if the peer does not read.
    let deadline = async move {
        let _ = closing.wait_for(|c| *c).await;
        tokio::time::sleep(close_timeout).await;
    };
    tokio::pin!(deadline);
    let mut shutdown = false;
    'outer: while !shutdown {
        let first = tokio::select! {
            item = rx.recv() => item,
            _ = &mut deadline => break 'outer,
        };
        let Some(mut item) = first else { break };
        let mut data_written = 0;
        let mut control_written = 0;
        loop {
            match item {
                Out::Shutdown => {
                    shutdown = true;
                    break;
                }
                Out::Frame(frame) => {
                    match &frame {
                        Frame::Data { data, .. } => data_written += data.len(),
                        _ => control_written += 1,
                    }
                    if let Err(e) = encoder.encode(&frame, &mut buf) {
                        shared.end(format!("encoding a frame: {e}"));
                        break 'outer;
                    }
                }
            }
            if buf.len() >= 64 * 1024 {
                break;
            }
            match rx.try_recv() {
                Ok(next) => item = next,
                Err(_) => break,
            }
        }
        let written = tokio::select! {
            r = async { io.write_all(&buf).await?; io.flush().await } => r,
            _ = &mut deadline => break 'outer,
        };
        buf.clear();
        if let Err(e) = written {
            shared.write_failed(format!("writing: {e}"));
            break;
        }
        let mut state = shared.lock();
        state.queued_data = state.queued_data.saturating_sub(data_written);
        state.queued_control = state.queued_control.saturating_sub(control_written);
        if state.queued_data < MAX_QUEUED_DATA {
            for w in state.blocked_writers.drain(..) {
                w.wake();
            }
        }
    }
    let _ = tokio::time::timeout(close_timeout, io.shutdown()).await;
}

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;
