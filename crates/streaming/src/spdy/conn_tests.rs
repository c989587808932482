use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;
use crate::spdy::frame::{Decoder, Encoder, FLAG_FIN};

fn headers(pairs: &[(&str, &str)]) -> Headers {
    let mut h = Headers::new();
    for (n, v) in pairs {
        h.set(n, *v);
    }
    h
}

/// A peer driven frame by frame, to see exactly what a connection sends.
struct RawPeer {
    io: DuplexStream,
    encoder: Encoder,
    decoder: Decoder,
    buf: BytesMut,
}

impl RawPeer {
    fn new(io: DuplexStream) -> Self {
        Self {
            io,
            encoder: Encoder::new(),
            decoder: Decoder::new(1 << 20),
            buf: BytesMut::new(),
        }
    }

    async fn send(&mut self, frame: Frame) {
        let mut out = BytesMut::new();
        self.encoder.encode(&frame, &mut out).unwrap();
        self.io.write_all(&out).await.unwrap();
    }

    /// The next frame, or `None` at EOF.
    async fn recv(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.buf).unwrap() {
                return Some(frame);
            }
            if self.io.read_buf(&mut self.buf).await.unwrap() == 0 {
                return None;
            }
        }
    }

    async fn open(&mut self, id: u32, pairs: &[(&str, &str)]) {
        self.send(Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            slot: 0,
            flags: 0,
            headers: headers(pairs),
        })
        .await;
    }
}

fn pair(server: Config, client: Config) -> ((Connection, Incoming), (Connection, Incoming)) {
    let (a, b) = duplex(256 * 1024);
    (Connection::server(a, server), Connection::client(b, client))
}

#[tokio::test]
async fn streams_carry_data_both_ways_and_fin_ends_reads() {
    let ((_server, mut incoming), (client, _)) = pair(Config::default(), Config::default());
    let echo = tokio::spawn(async move {
        let pending = incoming.next().await.unwrap();
        assert_eq!(pending.id(), 1);
        assert_eq!(pending.headers().get("streamType"), Some("stdin"));
        let mut stream = pending.accept();
        let mut got = Vec::new();
        stream.read_to_end(&mut got).await.unwrap();
        stream.write_all(&got).await.unwrap();
        stream.write_all(b" back").await.unwrap();
        stream.shutdown().await.unwrap();
    });
    let mut stream = client
        .open_stream(headers(&[("streamType", "stdin")]))
        .await
        .unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    stream.write_all(&big).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut back = Vec::new();
    stream.read_to_end(&mut back).await.unwrap();
    assert_eq!(back.len(), big.len() + 5);
    assert_eq!(&back[..big.len()], &big[..]);
    assert!(back.ends_with(b" back"));
    echo.await.unwrap();
    // Writing after our FIN is an error, not silently dropped data.
    assert_eq!(
        stream.write_all(b"late").await.unwrap_err().kind(),
        io::ErrorKind::BrokenPipe
    );
}

#[tokio::test]
async fn refused_and_reset_streams_report_errors() {
    let ((_server, mut incoming), (client, _)) = pair(Config::default(), Config::default());
    let server = tokio::spawn(async move {
        incoming.next().await.unwrap().refuse();
        let stream = incoming.next().await.unwrap().accept();
        stream.reset(RstStatus::CANCEL);
        // Keep the connection until the client saw the reset.
        incoming.next().await;
    });
    let refused = client.open_stream(headers(&[("a", "1")])).await;
    assert_eq!(
        refused.err(),
        Some(Error::Refused {
            id: 1,
            status: RstStatus::REFUSED_STREAM
        })
    );
    let mut stream = client.open_stream(headers(&[("a", "2")])).await.unwrap();
    let mut buf = [0u8; 4];
    let err = stream.read(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    assert!(err.to_string().contains("CANCEL"), "{err}");
    assert_eq!(
        stream.write_all(b"x").await.unwrap_err().kind(),
        io::ErrorKind::ConnectionReset
    );
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn a_peer_that_never_sends_window_updates_is_not_waited_for() {
    // Go's spdystream never sends WINDOW_UPDATE: by default we send past the window.
    let (a, b) = duplex(1 << 20);
    let (_server, mut incoming) = Connection::server(a, Config::default());
    let mut peer = RawPeer::new(b);
    peer.open(1, &[("streamtype", "stdout")]).await;
    let mut stream = incoming.next().await.unwrap().accept();
    let writer = tokio::spawn(async move {
        stream.write_all(&vec![7u8; 200 * 1024]).await.unwrap();
        stream.shutdown().await.unwrap();
        stream
    });
    assert!(matches!(
        peer.recv().await,
        Some(Frame::SynReply {
            stream_id: 1,
            fin: false,
            ..
        })
    ));
    let mut received = 0;
    loop {
        match peer.recv().await.unwrap() {
            Frame::Data {
                stream_id: 1,
                fin,
                data,
            } => {
                assert!(data.len() <= 32 * 1024);
                received += data.len();
                if fin {
                    break;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(received, 200 * 1024);
    writer.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_enforced_send_window_waits_for_window_updates() {
    let (a, b) = duplex(1 << 20);
    let config = Config {
        enforce_send_window: true,
        ..Config::default()
    };
    let (_server, mut incoming) = Connection::server(a, config);
    let mut peer = RawPeer::new(b);
    peer.open(1, &[("streamtype", "stdout")]).await;
    let mut stream = incoming.next().await.unwrap().accept();
    let writer = tokio::spawn(async move {
        stream.write_all(&vec![1u8; 100 * 1024]).await.unwrap();
        stream.shutdown().await.unwrap();
        stream
    });
    assert!(matches!(peer.recv().await, Some(Frame::SynReply { .. })));
    let mut received = 0;
    while received < 64 * 1024 {
        match peer.recv().await.unwrap() {
            Frame::Data {
                data, fin: false, ..
            } => received += data.len(),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(received, 64 * 1024, "exactly one window, not more");
    // The paused clock only advances once every task is idle: the writer is blocked.
    let waited = tokio::time::timeout(Duration::from_secs(5), peer.recv()).await;
    assert!(waited.is_err(), "sent past the window: {waited:?}");
    // Stream credit alone is not enough: SPDY/3.1 also has a session window.
    peer.send(Frame::WindowUpdate {
        stream_id: 1,
        delta: 64 * 1024,
    })
    .await;
    assert!(tokio::time::timeout(Duration::from_secs(5), peer.recv())
        .await
        .is_err());
    peer.send(Frame::WindowUpdate {
        stream_id: 0,
        delta: 64 * 1024,
    })
    .await;
    loop {
        match peer.recv().await.unwrap() {
            Frame::Data { data, fin, .. } => {
                received += data.len();
                if fin {
                    break;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(received, 100 * 1024);
    writer.await.unwrap();
}

#[tokio::test]
async fn consumed_data_is_acknowledged_with_window_updates() {
    let (a, b) = duplex(1 << 20);
    let (_server, mut incoming) = Connection::server(a, Config::default());
    let mut peer = RawPeer::new(b);
    peer.open(1, &[("streamtype", "stdin")]).await;
    let mut stream = incoming.next().await.unwrap().accept();
    assert!(matches!(peer.recv().await, Some(Frame::SynReply { .. })));
    peer.send(Frame::Data {
        stream_id: 1,
        fin: false,
        data: Bytes::from(vec![3u8; 40 * 1024]),
    })
    .await;
    let mut got = vec![0u8; 40 * 1024];
    stream.read_exact(&mut got).await.unwrap();
    // Half the 64 KiB window consumed: both the stream and the session get credit.
    let mut updates = vec![peer.recv().await.unwrap(), peer.recv().await.unwrap()];
    updates.sort_by_key(|f| match f {
        Frame::WindowUpdate { stream_id, .. } => *stream_id,
        _ => u32::MAX,
    });
    assert_eq!(
        updates,
        [
            Frame::WindowUpdate {
                stream_id: 0,
                delta: 40 * 1024
            },
            Frame::WindowUpdate {
                stream_id: 1,
                delta: 40 * 1024
            },
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_stream_buffers_at_most_its_window_before_reading_stops() {
    // A peer ignoring windows (as Go's does) cannot make us buffer without bound:
    // once a stream holds a window of unread data, the connection stops reading, so
    // a second stream's data waits too (TCP backpressure, as in spdystream).
    let (a, b) = duplex(8 * 1024 * 1024);
    let (_server, mut incoming) = Connection::server(a, Config::default());
    let mut peer = RawPeer::new(b);
    peer.open(1, &[("streamtype", "stdin")]).await;
    peer.open(3, &[("streamtype", "resize")]).await;
    let mut first = incoming.next().await.unwrap().accept();
    let mut second = incoming.next().await.unwrap().accept();
    for _ in 0..4 {
        peer.send(Frame::Data {
            stream_id: 1,
            fin: false,
            data: Bytes::from(vec![1u8; 32 * 1024]),
        })
        .await;
    }
    peer.send(Frame::Data {
        stream_id: 3,
        fin: false,
        data: Bytes::from_static(b"{}"),
    })
    .await;
    let mut small = [0u8; 2];
    let blocked = tokio::time::timeout(Duration::from_secs(5), second.read_exact(&mut small)).await;
    assert!(
        blocked.is_err(),
        "the reader should be parked behind stream 1"
    );
    // Draining stream 1 lets the reader go on to stream 3's frame.
    let mut drained = vec![0u8; 128 * 1024];
    first.read_exact(&mut drained).await.unwrap();
    second.read_exact(&mut small).await.unwrap();
    assert_eq!(&small, b"{}");
}

#[tokio::test]
async fn pings_are_answered_both_ways() {
    let ((server, _si), (client, _ci)) = pair(Config::default(), Config::default());
    client.ping().await.unwrap();
    server.ping().await.unwrap();

    let (a, b) = duplex(64 * 1024);
    let (_server, _incoming) = Connection::server(a, Config::default());
    let mut peer = RawPeer::new(b);
    peer.send(Frame::Ping { id: 7 }).await;
    assert_eq!(peer.recv().await, Some(Frame::Ping { id: 7 }));
}

#[tokio::test]
async fn close_sends_queued_data_then_goaway() {
    let (a, b) = duplex(64 * 1024);
    let (server, mut incoming) = Connection::server(a, Config::default());
    let mut peer = RawPeer::new(b);
    peer.open(1, &[("streamtype", "error")]).await;
    let mut stream = incoming.next().await.unwrap().accept();
    stream.write_all(b"status").await.unwrap();
    stream.shutdown().await.unwrap();
    let closing = tokio::spawn(server.close());
    assert!(matches!(peer.recv().await, Some(Frame::SynReply { .. })));
    assert_eq!(
        peer.recv().await,
        Some(Frame::Data {
            stream_id: 1,
            fin: false,
            data: Bytes::from_static(b"status")
        })
    );
    assert_eq!(
        peer.recv().await,
        Some(Frame::Data {
            stream_id: 1,
            fin: true,
            data: Bytes::new()
        })
    );
    assert_eq!(
        peer.recv().await,
        Some(Frame::GoAway {
            last_good_stream_id: 1,
            status: 0
        })
    );
    assert_eq!(peer.recv().await, None);
    // close() reads on until the peer closes too.
    drop(peer);
    closing.await.unwrap();
    // The stream handle outlived the connection: it reports that, not a hang.
    assert!(stream.write_all(b"x").await.is_err());
}

#[tokio::test]
async fn streams_beyond_the_limit_and_bad_ids_are_refused() {
    let (a, b) = duplex(64 * 1024);
    let config = Config {
        max_incoming_streams: 1,
        ..Config::default()
    };
    let (_server, mut incoming) = Connection::server(a, config);
    let mut peer = RawPeer::new(b);
    peer.open(1, &[("streamtype", "stdin")]).await;
    let _first = incoming.next().await.unwrap().accept();
    peer.open(3, &[("streamtype", "stdout")]).await;
    // Even ids belong to the server; ids must grow.
    peer.open(4, &[("streamtype", "stderr")]).await;
    peer.open(1, &[("streamtype", "resize")]).await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(peer.recv().await.unwrap());
    }
    assert!(seen
        .iter()
        .any(|f| matches!(f, Frame::SynReply { stream_id: 1, .. })));
    assert!(seen.contains(&Frame::RstStream {
        stream_id: 3,
        status: RstStatus::REFUSED_STREAM
    }));
    assert!(seen.contains(&Frame::RstStream {
        stream_id: 4,
        status: RstStatus::PROTOCOL_ERROR
    }));
    // A second SYN_STREAM for the open stream 1 resets it.
    assert!(seen.contains(&Frame::RstStream {
        stream_id: 1,
        status: RstStatus::STREAM_IN_USE
    }));
}

#[tokio::test]
async fn a_header_bomb_ends_the_connection_with_a_protocol_error() {
    let (a, b) = duplex(1 << 20);
    let config = Config {
        max_header_block: 4096,
        ..Config::default()
    };
    let (server, mut incoming) = Connection::server(a, config);
    let mut peer = RawPeer::new(b);
    peer.open(1, &[("streamtype", &"x".repeat(64 * 1024))])
        .await;
    assert!(incoming.next().await.is_none());
    assert_eq!(
        peer.recv().await,
        Some(Frame::GoAway {
            last_good_stream_id: 0,
            status: 1
        })
    );
    server.closed().await;
    assert!(server.end_reason().unwrap().contains("inflates past 4096"));
}

#[tokio::test]
async fn a_fin_in_syn_stream_and_data_after_fin() {
    let (a, b) = duplex(64 * 1024);
    let (_server, mut incoming) = Connection::server(a, Config::default());
    let mut peer = RawPeer::new(b);
    peer.send(Frame::SynStream {
        stream_id: 1,
        associated_to: 0,
        priority: 0,
        slot: 0,
        flags: FLAG_FIN,
        headers: headers(&[("streamtype", "error")]),
    })
    .await;
    let mut stream = incoming.next().await.unwrap().accept();
    let mut buf = Vec::new();
    // FIN in SYN_STREAM: the peer sends nothing, reads end at once.
    assert_eq!(stream.read_to_end(&mut buf).await.unwrap(), 0);
    assert!(matches!(peer.recv().await, Some(Frame::SynReply { .. })));
    peer.send(Frame::Data {
        stream_id: 1,
        fin: false,
        data: Bytes::from_static(b"late"),
    })
    .await;
    assert_eq!(
        peer.recv().await,
        Some(Frame::RstStream {
            stream_id: 1,
            status: RstStatus::STREAM_ALREADY_CLOSED
        })
    );
}

#[tokio::test]
async fn dropping_a_stream_the_peer_still_writes_to_resets_it() {
    let (a, b) = duplex(64 * 1024);
    let (_server, mut incoming) = Connection::server(a, Config::default());
    let mut peer = RawPeer::new(b);
    peer.open(1, &[("streamtype", "data")]).await;
    let stream = incoming.next().await.unwrap().accept();
    drop(stream);
    assert!(matches!(peer.recv().await, Some(Frame::SynReply { .. })));
    // Our side finishes its direction (FIN), then cancels the peer's.
    assert_eq!(
        peer.recv().await,
        Some(Frame::Data {
            stream_id: 1,
            fin: true,
            data: Bytes::new()
        })
    );
    assert_eq!(
        peer.recv().await,
        Some(Frame::RstStream {
            stream_id: 1,
            status: RstStatus::CANCEL
        })
    );
}
