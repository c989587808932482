//! SPDY/3.1 as kubelet, kubectl and crictl speak it (Go's moby/spdystream): frames,
//! header compression and multiplexed streams over one connection.

mod conn;
mod dictionary;
mod frame;
mod headers;
mod zlib;

pub use conn::{
    Config, Connection, Error, Incoming, PendingStream, RecvHalf, SendHalf, Stream, DEFAULT_WINDOW,
};
pub use frame::{
    Decoder, Encoder, Frame, FrameError, RstStatus, Setting, FLAG_CLEAR_SETTINGS, FLAG_FIN,
    FLAG_UNIDIRECTIONAL, MAX_PAYLOAD, MAX_STREAM_ID, SETTINGS_INITIAL_WINDOW_SIZE, VERSION,
};
pub use headers::{HeaderBlockError, Headers};
pub use zlib::ZlibError;
