//! SPDY/3 frames and their wire format (SPDY/3 draft, section 2), as Go's
//! moby/spdystream reads and writes them.
//!
//! Every frame starts with 8 bytes. A control frame: control bit, 15-bit version (3),
//! 16-bit type, 8-bit flags, 24-bit length. A data frame: control bit clear, 31-bit
//! stream id, 8-bit flags, 24-bit length. The payload follows.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::headers::{HeaderBlockError, Headers};
use super::zlib::{Deflater, Inflater, ZlibError};

/// The SPDY version this codec speaks.
pub const VERSION: u16 = 3;
/// Largest payload a frame's 24-bit length can announce.
pub const MAX_PAYLOAD: usize = (1 << 24) - 1;
/// Largest stream id (31 bits).
pub const MAX_STREAM_ID: u32 = 0x7fff_ffff;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

/// FIN: the sender sends nothing more on this stream (control and data frames).
pub const FLAG_FIN: u8 = 0x01;
/// UNIDIRECTIONAL (SYN_STREAM): the receiver may not send on this stream.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// CLEAR_SETTINGS (SETTINGS).
pub const FLAG_CLEAR_SETTINGS: u8 = 0x01;

/// SETTINGS id of the initial per-stream flow-control window.
pub const SETTINGS_INITIAL_WINDOW_SIZE: u32 = 7;

/// Status code of a RST_STREAM frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RstStatus(pub u32);

impl RstStatus {
    /// The peer broke the protocol on this stream.
    pub const PROTOCOL_ERROR: Self = Self(1);
    /// A frame for a stream that is not open.
    pub const INVALID_STREAM: Self = Self(2);
    /// The stream was not accepted (refused before any processing).
    pub const REFUSED_STREAM: Self = Self(3);
    /// Unsupported SPDY version.
    pub const UNSUPPORTED_VERSION: Self = Self(4);
    /// The stream is no longer needed (what Go's `Stream.Reset` sends).
    pub const CANCEL: Self = Self(5);
    /// The sender failed internally.
    pub const INTERNAL_ERROR: Self = Self(6);
    /// The peer sent more than its window allowed.
    pub const FLOW_CONTROL_ERROR: Self = Self(7);
    /// A SYN_STREAM for a stream id that is open.
    pub const STREAM_IN_USE: Self = Self(8);
    /// Data after FIN.
    pub const STREAM_ALREADY_CLOSED: Self = Self(9);
    /// Frame larger than the receiver supports.
    pub const FRAME_TOO_LARGE: Self = Self(11);
}

impl std::fmt::Display for RstStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.0 {
            1 => "PROTOCOL_ERROR",
            2 => "INVALID_STREAM",
            3 => "REFUSED_STREAM",
            4 => "UNSUPPORTED_VERSION",
            5 => "CANCEL",
            6 => "INTERNAL_ERROR",
            7 => "FLOW_CONTROL_ERROR",
            8 => "STREAM_IN_USE",
            9 => "STREAM_ALREADY_CLOSED",
            10 => "INVALID_CREDENTIALS",
            11 => "FRAME_TOO_LARGE",
            _ => return write!(f, "status {}", self.0),
        };
        f.write_str(name)
    }
}

/// One SETTINGS entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    /// 8-bit flags (persist value / persisted).
    pub flags: u8,
    /// 24-bit id, e.g. [`SETTINGS_INITIAL_WINDOW_SIZE`].
    pub id: u32,
    /// The value.
    pub value: u32,
}

/// A SPDY/3 frame in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Opens a stream.
    SynStream {
        /// Odd when the client opens it, even for the server.
        stream_id: u32,
        /// Stream this one belongs to (0: none).
        associated_to: u32,
        /// 3-bit priority, 0 highest.
        priority: u8,
        /// Credential slot (unused by kubelet's protocols).
        slot: u8,
        /// [`FLAG_FIN`] and/or [`FLAG_UNIDIRECTIONAL`].
        flags: u8,
        /// The stream's headers (`streamtype`, `port`, ...).
        headers: Headers,
    },
    /// Accepts a stream the peer opened.
    SynReply {
        /// The accepted stream.
        stream_id: u32,
        /// The accepting side sends nothing on it.
        fin: bool,
        /// Reply headers (kubelet sends none).
        headers: Headers,
    },
    /// Ends a stream abnormally.
    RstStream {
        /// The stream.
        stream_id: u32,
        /// Why.
        status: RstStatus,
    },
    /// Connection parameters.
    Settings {
        /// [`FLAG_CLEAR_SETTINGS`].
        flags: u8,
        /// The entries.
        entries: Vec<Setting>,
    },
    /// Liveness check; the receiver echoes a ping the other side started.
    Ping {
        /// Odd from the client, even from the server.
        id: u32,
    },
    /// The sender will accept no new streams.
    GoAway {
        /// Last stream the sender opened on the peer's request.
        last_good_stream_id: u32,
        /// 0 OK, 1 protocol error, 2 internal error.
        status: u32,
    },
    /// More headers for an open stream.
    Headers {
        /// The stream.
        stream_id: u32,
        /// The sender sends nothing more on it.
        fin: bool,
        /// The headers.
        headers: Headers,
    },
    /// More flow-control window: the receiver consumed `delta` bytes.
    WindowUpdate {
        /// The stream (0: the whole connection, SPDY/3.1).
        stream_id: u32,
        /// Bytes added to the window (31 bits).
        delta: u32,
    },
    /// Stream payload.
    Data {
        /// The stream.
        stream_id: u32,
        /// Last frame the sender sends on this stream.
        fin: bool,
        /// The payload.
        data: Bytes,
    },
    /// A control frame of a type this codec does not know (CREDENTIAL, NOOP, ...):
    /// SPDY says to ignore it.
    Unknown {
        /// Its type field.
        frame_type: u16,
    },
}

/// Why bytes could not be read or written as a frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// A control frame of another SPDY version.
    #[error("SPDY version {0} is not supported (only 3)")]
    UnsupportedVersion(u16),
    /// A control frame whose length does not fit its type.
    #[error("{kind} frame with invalid length {length}")]
    BadLength {
        /// Frame type.
        kind: &'static str,
        /// The announced length.
        length: usize,
    },
    /// Stream id 0 where a stream is required (or other invalid id).
    #[error("{kind} frame with invalid stream id {stream_id}")]
    BadStreamId {
        /// Frame type.
        kind: &'static str,
        /// The id.
        stream_id: u32,
    },
    /// RST_STREAM with status 0, PING with id 0, flags where none are allowed.
    #[error("invalid {0} frame")]
    Invalid(&'static str),
    /// The header block's compression failed.
    #[error(transparent)]
    Zlib(#[from] ZlibError),
    /// The decompressed header block is malformed.
    #[error(transparent)]
    HeaderBlock(#[from] HeaderBlockError),
    /// A payload larger than 24 bits can express.
    #[error("payload of {0} bytes does not fit a frame")]
    TooLarge(usize),
}

/// Writes frames; owns the connection's sending zlib context.
pub struct Encoder {
    /// Compresses every header block this side sends, in order.
    deflater: Deflater,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    /// An encoder with a fresh compression context (one per connection).
    pub fn new() -> Self {
        Self {
            deflater: Deflater::new(),
        }
    }

    /// Appends `frame` to `out`.
    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<(), FrameError> {
        match frame {
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                slot,
                flags,
                headers,
            } => {
                check_id("SYN_STREAM", *stream_id)?;
                let block = self.deflater.compress(&headers.to_block())?;
                control_header(out, TYPE_SYN_STREAM, *flags, 10 + block.len())?;
                out.put_u32(*stream_id);
                out.put_u32(associated_to & MAX_STREAM_ID);
                out.put_u8((priority & 0x07) << 5);
                out.put_u8(*slot);
                out.put_slice(&block);
            }
            Frame::SynReply {
                stream_id,
                fin,
                headers,
            } => {
                self.stream_headers(out, TYPE_SYN_REPLY, "SYN_REPLY", *stream_id, *fin, headers)?
            }
            Frame::Headers {
                stream_id,
                fin,
                headers,
            } => self.stream_headers(out, TYPE_HEADERS, "HEADERS", *stream_id, *fin, headers)?,
            Frame::RstStream { stream_id, status } => {
                check_id("RST_STREAM", *stream_id)?;
                if status.0 == 0 {
                    return Err(FrameError::Invalid("RST_STREAM"));
                }
                control_header(out, TYPE_RST_STREAM, 0, 8)?;
                out.put_u32(*stream_id);
                out.put_u32(status.0);
            }
            Frame::Settings { flags, entries } => {
                control_header(out, TYPE_SETTINGS, *flags, 4 + 8 * entries.len())?;
                out.put_u32(entries.len() as u32);
                for entry in entries {
                    out.put_u32((u32::from(entry.flags) << 24) | (entry.id & 0x00ff_ffff));
                    out.put_u32(entry.value);
                }
            }
            Frame::Ping { id } => {
                if *id == 0 {
                    return Err(FrameError::Invalid("PING"));
                }
                control_header(out, TYPE_PING, 0, 4)?;
                out.put_u32(*id);
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                control_header(out, TYPE_GOAWAY, 0, 8)?;
                out.put_u32(last_good_stream_id & MAX_STREAM_ID);
                out.put_u32(*status);
            }
            Frame::WindowUpdate { stream_id, delta } => {
                if *delta == 0 || *delta > MAX_STREAM_ID {
                    return Err(FrameError::Invalid("WINDOW_UPDATE"));
                }
                control_header(out, TYPE_WINDOW_UPDATE, 0, 8)?;
                out.put_u32(stream_id & MAX_STREAM_ID);
                out.put_u32(*delta);
            }
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                check_id("DATA", *stream_id)?;
                if data.len() > MAX_PAYLOAD {
                    return Err(FrameError::TooLarge(data.len()));
                }
                out.put_u32(*stream_id);
                out.put_u32((u32::from(u8::from(*fin)) << 24) | data.len() as u32);
                out.put_slice(data);
            }
            Frame::Unknown { .. } => return Err(FrameError::Invalid("unknown")),
        }
        Ok(())
    }

    fn stream_headers(
        &mut self,
        out: &mut BytesMut,
        frame_type: u16,
        kind: &'static str,
        stream_id: u32,
        fin: bool,
        headers: &Headers,
    ) -> Result<(), FrameError> {
        check_id(kind, stream_id)?;
        let block = self.deflater.compress(&headers.to_block())?;
        control_header(out, frame_type, u8::from(fin), 4 + block.len())?;
        out.put_u32(stream_id);
        out.put_slice(&block);
        Ok(())
    }
}

fn check_id(kind: &'static str, stream_id: u32) -> Result<(), FrameError> {
    if stream_id == 0 || stream_id > MAX_STREAM_ID {
        return Err(FrameError::BadStreamId { kind, stream_id });
    }
    Ok(())
}

fn control_header(
    out: &mut BytesMut,
    frame_type: u16,
    flags: u8,
    length: usize,
) -> Result<(), FrameError> {
    if length > MAX_PAYLOAD {
        return Err(FrameError::TooLarge(length));
    }
    out.reserve(8 + length);
    out.put_u16(0x8000 | VERSION);
    out.put_u16(frame_type);
    out.put_u32((u32::from(flags) << 24) | length as u32);
    Ok(())
}

/// Reads frames; owns the connection's receiving zlib context.
pub struct Decoder {
    /// Decompresses every header block the peer sends, in order.
    inflater: Inflater,
}

impl Decoder {
    /// A decoder whose header blocks may inflate to at most `max_header_block` bytes.
    pub fn new(max_header_block: usize) -> Self {
        Self {
            inflater: Inflater::new(max_header_block),
        }
    }

    /// Takes one frame off the front of `buf`, or returns `None` (consuming nothing)
    /// while the frame is incomplete. Header blocks are only decompressed once their
    /// frame is complete, so partial reads never disturb the zlib context.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let first = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let second = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let flags = (second >> 24) as u8;
        let length = (second & 0x00ff_ffff) as usize;
        if buf.len() < 8 + length {
            buf.reserve(8 + length - buf.len());
            return Ok(None);
        }
        buf.advance(8);
        let mut payload = buf.split_to(length).freeze();
        if first & 0x8000_0000 == 0 {
            let stream_id = first & MAX_STREAM_ID;
            check_id("DATA", stream_id)?;
            return Ok(Some(Frame::Data {
                stream_id,
                fin: flags & FLAG_FIN != 0,
                data: payload,
            }));
        }
        let version = ((first >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(FrameError::UnsupportedVersion(version));
        }
        let frame_type = (first & 0xffff) as u16;
        let fixed = |kind: &'static str, want: usize| {
            if length == want {
                Ok(())
            } else {
                Err(FrameError::BadLength { kind, length })
            }
        };
        let frame = match frame_type {
            TYPE_SYN_STREAM => {
                if length < 10 {
                    return Err(FrameError::BadLength {
                        kind: "SYN_STREAM",
                        length,
                    });
                }
                let stream_id = payload.get_u32() & MAX_STREAM_ID;
                let associated_to = payload.get_u32() & MAX_STREAM_ID;
                let priority = payload.get_u8() >> 5;
                let slot = payload.get_u8();
                // Decompress before validating the id: the block is part of the
                // connection's zlib stream whatever we think of the frame.
                let headers = self.headers(&payload)?;
                check_id("SYN_STREAM", stream_id)?;
                Frame::SynStream {
                    stream_id,
                    associated_to,
                    priority,
                    slot,
                    flags,
                    headers,
                }
            }
            TYPE_SYN_REPLY | TYPE_HEADERS => {
                let kind = if frame_type == TYPE_SYN_REPLY {
                    "SYN_REPLY"
                } else {
                    "HEADERS"
                };
                if length < 4 {
                    return Err(FrameError::BadLength { kind, length });
                }
                let stream_id = payload.get_u32() & MAX_STREAM_ID;
                let headers = self.headers(&payload)?;
                check_id(kind, stream_id)?;
                let fin = flags & FLAG_FIN != 0;
                if frame_type == TYPE_SYN_REPLY {
                    Frame::SynReply {
                        stream_id,
                        fin,
                        headers,
                    }
                } else {
                    Frame::Headers {
                        stream_id,
                        fin,
                        headers,
                    }
                }
            }
            TYPE_RST_STREAM => {
                fixed("RST_STREAM", 8)?;
                let stream_id = payload.get_u32() & MAX_STREAM_ID;
                let status = RstStatus(payload.get_u32());
                check_id("RST_STREAM", stream_id)?;
                if status.0 == 0 {
                    return Err(FrameError::Invalid("RST_STREAM"));
                }
                Frame::RstStream { stream_id, status }
            }
            TYPE_SETTINGS => {
                if length < 4 {
                    return Err(FrameError::BadLength {
                        kind: "SETTINGS",
                        length,
                    });
                }
                let count = payload.get_u32() as usize;
                if count.checked_mul(8) != Some(length - 4) {
                    return Err(FrameError::BadLength {
                        kind: "SETTINGS",
                        length,
                    });
                }
                let entries = (0..count)
                    .map(|_| {
                        let flags_id = payload.get_u32();
                        Setting {
                            flags: (flags_id >> 24) as u8,
                            id: flags_id & 0x00ff_ffff,
                            value: payload.get_u32(),
                        }
                    })
                    .collect();
                Frame::Settings { flags, entries }
            }
            TYPE_PING => {
                fixed("PING", 4)?;
                let id = payload.get_u32();
                if id == 0 {
                    return Err(FrameError::Invalid("PING"));
                }
                Frame::Ping { id }
            }
            TYPE_GOAWAY => {
                fixed("GOAWAY", 8)?;
                Frame::GoAway {
                    last_good_stream_id: payload.get_u32() & MAX_STREAM_ID,
                    status: payload.get_u32(),
                }
            }
            TYPE_WINDOW_UPDATE => {
                fixed("WINDOW_UPDATE", 8)?;
                Frame::WindowUpdate {
                    stream_id: payload.get_u32() & MAX_STREAM_ID,
                    delta: payload.get_u32() & MAX_STREAM_ID,
                }
            }
            other => Frame::Unknown { frame_type: other },
        };
        Ok(Some(frame))
    }

    fn headers(&mut self, compressed: &[u8]) -> Result<Headers, FrameError> {
        let block = self.inflater.decompress(compressed)?;
        Ok(Headers::from_block(&block)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        let mut h = Headers::new();
        for (n, v) in pairs {
            h.append(n, *v);
        }
        h
    }

    fn all_frames() -> Vec<Frame> {
        vec![
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 0,
                slot: 0,
                flags: 0,
                headers: headers(&[("streamtype", "error")]),
            },
            Frame::SynStream {
                stream_id: 3,
                associated_to: 1,
                priority: 7,
                slot: 2,
                flags: FLAG_FIN | FLAG_UNIDIRECTIONAL,
                headers: headers(&[("streamtype", "data"), ("port", "8080"), ("requestid", "0")]),
            },
            Frame::SynReply {
                stream_id: 1,
                fin: false,
                headers: Headers::new(),
            },
            Frame::Headers {
                stream_id: 2,
                fin: true,
                headers: headers(&[("a", "1"), ("a", "2")]),
            },
            Frame::RstStream {
                stream_id: 5,
                status: RstStatus::CANCEL,
            },
            Frame::Settings {
                flags: FLAG_CLEAR_SETTINGS,
                entries: vec![Setting {
                    flags: 1,
                    id: SETTINGS_INITIAL_WINDOW_SIZE,
                    value: 1 << 20,
                }],
            },
            Frame::Ping { id: 2 },
            Frame::GoAway {
                last_good_stream_id: 7,
                status: 0,
            },
            Frame::WindowUpdate {
                stream_id: 0,
                delta: 32768,
            },
            Frame::Data {
                stream_id: 9,
                fin: true,
                data: Bytes::from_static(b"hello"),
            },
            Frame::Data {
                stream_id: 9,
                fin: false,
                data: Bytes::new(),
            },
        ]
    }

    #[test]
    fn every_frame_type_round_trips_through_one_connection_context() {
        let mut encoder = Encoder::new();
        let mut decoder = Decoder::new(1 << 16);
        let mut wire = BytesMut::new();
        let frames = all_frames();
        for frame in &frames {
            encoder.encode(frame, &mut wire).unwrap();
        }
        let mut decoded = Vec::new();
        while let Some(frame) = decoder.decode(&mut wire).unwrap() {
            decoded.push(frame);
        }
        assert_eq!(decoded, frames);
        assert!(wire.is_empty());
    }

    #[test]
    fn frames_arriving_byte_by_byte_decode_the_same() {
        let mut encoder = Encoder::new();
        let mut all = BytesMut::new();
        for frame in &all_frames() {
            encoder.encode(frame, &mut all).unwrap();
        }
        let mut decoder = Decoder::new(1 << 16);
        let mut buf = BytesMut::new();
        let mut decoded = Vec::new();
        for byte in all.iter() {
            buf.put_u8(*byte);
            while let Some(frame) = decoder.decode(&mut buf).unwrap() {
                decoded.push(frame);
            }
        }
        assert_eq!(decoded, all_frames());
    }

    #[test]
    fn fixed_frames_have_the_spec_byte_layout() {
        let mut encoder = Encoder::new();
        let mut out = BytesMut::new();
        encoder
            .encode(
                &Frame::RstStream {
                    stream_id: 3,
                    status: RstStatus::CANCEL,
                },
                &mut out,
            )
            .unwrap();
        assert_eq!(
            &out[..],
            &[0x80, 0x03, 0x00, 0x03, 0, 0, 0, 8, 0, 0, 0, 3, 0, 0, 0, 5]
        );
        out.clear();
        encoder
            .encode(
                &Frame::Data {
                    stream_id: 1,
                    fin: true,
                    data: Bytes::from_static(b"ok"),
                },
                &mut out,
            )
            .unwrap();
        assert_eq!(&out[..], &[0, 0, 0, 1, 0x01, 0, 0, 2, b'o', b'k']);
        out.clear();
        encoder
            .encode(
                &Frame::WindowUpdate {
                    stream_id: 1,
                    delta: 65536,
                },
                &mut out,
            )
            .unwrap();
        assert_eq!(
            &out[..],
            &[0x80, 0x03, 0x00, 0x09, 0, 0, 0, 8, 0, 0, 0, 1, 0, 1, 0, 0]
        );
        out.clear();
        encoder
            .encode(
                &Frame::SynStream {
                    stream_id: 1,
                    associated_to: 0,
                    priority: 0,
                    slot: 0,
                    flags: 0,
                    headers: headers(&[("streamtype", "error")]),
                },
                &mut out,
            )
            .unwrap();
        // Control bit + version 3, type 1, no flags, then id 1, associated 0,
        // priority 0, slot 0, then the zlib stream with the SPDY dictionary's id.
        assert_eq!(&out[..4], &[0x80, 0x03, 0x00, 0x01]);
        assert_eq!(
            out.len() - 8,
            u32::from_be_bytes([0, out[5], out[6], out[7]]) as usize
        );
        assert_eq!(&out[8..18], &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&out[18..24], &[0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2]);
    }

    /// Frames written by Go's spdystream framer (Debian's golang-github-docker-spdystream,
    /// the same wire code kubelet, kubectl and crictl vendor from moby/spdystream):
    /// SYN_STREAM 1 `streamType: error`, SYN_STREAM 3 `streamType: stdin`, SYN_REPLY 2
    /// with no headers, DATA 3 "hi" with FIN; one compression context, as on a
    /// connection. Go's deflate is not zlib's, so these bytes test our inflater against
    /// a foreign compressor, dictionary id included.
    const GO_FRAMES: &str = "80030001000000290000000100000000000078f9e3c6a7c26260606004a7b392a2d4c45c6851c29a0a0a6800000000ffff800300010000001700000003000000000000c22e555c92929907000000ffff800300020000000e000000026260606000000000ffff00000003010000026869";

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn frames_written_by_go_spdystream_decode() {
        let mut wire = BytesMut::from(&unhex(GO_FRAMES)[..]);
        let mut decoder = Decoder::new(1 << 16);
        let mut frames = Vec::new();
        while let Some(frame) = decoder.decode(&mut wire).unwrap() {
            frames.push(frame);
        }
        let syn = |id, kind| Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            slot: 0,
            flags: 0,
            headers: headers(&[("streamtype", kind)]),
        };
        assert_eq!(
            frames,
            [
                syn(1, "error"),
                syn(3, "stdin"),
                Frame::SynReply {
                    stream_id: 2,
                    fin: false,
                    headers: Headers::new()
                },
                Frame::Data {
                    stream_id: 3,
                    fin: true,
                    data: Bytes::from_static(b"hi")
                },
            ]
        );
    }

    #[test]
    fn malformed_frames_are_errors() {
        let mut decoder = Decoder::new(1 << 16);
        let mut v2 = BytesMut::from(&[0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1][..]);
        assert_eq!(
            decoder.decode(&mut v2),
            Err(FrameError::UnsupportedVersion(2))
        );
        let mut short_ping = BytesMut::from(&[0x80, 0x03, 0x00, 0x06, 0, 0, 0, 2, 0, 1][..]);
        assert!(matches!(
            decoder.decode(&mut short_ping),
            Err(FrameError::BadLength { kind: "PING", .. })
        ));
        let mut zero_data = BytesMut::from(&[0, 0, 0, 0, 0, 0, 0, 0][..]);
        assert!(matches!(
            decoder.decode(&mut zero_data),
            Err(FrameError::BadStreamId { .. })
        ));
        let mut zero_status =
            BytesMut::from(&[0x80, 0x03, 0x00, 0x03, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0][..]);
        assert_eq!(
            decoder.decode(&mut zero_status),
            Err(FrameError::Invalid("RST_STREAM"))
        );
        let mut lying_settings =
            BytesMut::from(&[0x80, 0x03, 0x00, 0x04, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            decoder.decode(&mut lying_settings),
            Err(FrameError::BadLength { .. })
        ));
        let mut unknown = BytesMut::from(&[0x80, 0x03, 0x00, 0x0a, 0, 0, 0, 2, 1, 2][..]);
        assert_eq!(
            decoder.decode(&mut unknown),
            Ok(Some(Frame::Unknown { frame_type: 10 }))
        );
        assert!(unknown.is_empty());
    }
}
