//! The per-connection zlib contexts of SPDY/3 header blocks.
//!
//! SPDY/3 compresses all header blocks a side sends as ONE zlib stream, primed with the
//! SPDY dictionary and sync-flushed after each block: a block can only be decompressed
//! by a context that has seen every earlier block of the connection, in order. So each
//! connection has exactly one [`Deflater`] (owned by its writer) and one [`Inflater`]
//! (owned by its reader).

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::dictionary::dictionary;

/// Compresses the header blocks one side sends.
pub(crate) struct Deflater {
    /// The zlib stream shared by all blocks of the connection.
    zlib: Compress,
    /// The dictionary is set before the first block.
    primed: bool,
}

impl Deflater {
    pub(crate) fn new() -> Self {
        Self {
            // Best compression with a zlib header, as Go's spdystream (NewWriterLevelDict).
            zlib: Compress::new(Compression::best(), true),
            primed: false,
        }
    }

    /// Compresses one block and sync-flushes, so the peer can decompress it alone.
    pub(crate) fn compress(&mut self, block: &[u8]) -> Result<Vec<u8>, ZlibError> {
        if !self.primed {
            self.zlib
                .set_dictionary(&dictionary())
                .map_err(|e| ZlibError::Compress(e.to_string()))?;
            self.primed = true;
        }
        let mut out = Vec::with_capacity(block.len() / 2 + 64);
        let start = self.zlib.total_in();
        loop {
            let consumed = (self.zlib.total_in() - start) as usize;
            if out.len() == out.capacity() {
                out.reserve(256);
            }
            let before = out.len();
            self.zlib
                .compress_vec(&block[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| ZlibError::Compress(e.to_string()))?;
            let consumed = (self.zlib.total_in() - start) as usize;
            // Done when all input is in and the flush fit in the space we gave.
            if consumed == block.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            if consumed == block.len() && out.len() == before {
                return Ok(out);
            }
        }
    }
}

/// Decompresses the header blocks the peer sends.
pub(crate) struct Inflater {
    /// The zlib stream shared by all blocks of the connection.
    zlib: Decompress,
    /// Cap on one decompressed block: a small compressed block can inflate enormously.
    limit: usize,
}

impl Inflater {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            zlib: Decompress::new(true),
            limit,
        }
    }

    /// Decompresses one complete compressed block.
    pub(crate) fn decompress(&mut self, block: &[u8]) -> Result<Vec<u8>, ZlibError> {
        let mut out = Vec::with_capacity((block.len() * 4).min(self.limit) + 64);
        let start = self.zlib.total_in();
        loop {
            let consumed = (self.zlib.total_in() - start) as usize;
            if out.len() == out.capacity() {
                if out.len() >= self.limit {
                    return Err(ZlibError::TooLarge(self.limit));
                }
                out.reserve(1024.min(self.limit + 1 - out.len()));
            }
            let before_in = self.zlib.total_in();
            let before_out = out.len();
            match self
                .zlib
                .decompress_vec(&block[consumed..], &mut out, FlushDecompress::Sync)
            {
                Ok(Status::StreamEnd) => return Err(ZlibError::StreamEnded),
                Ok(_) => {}
                Err(e) => match e.needs_dictionary() {
                    // The first block names the SPDY dictionary by its checksum.
                    Some(_) => {
                        self.zlib
                            .set_dictionary(&dictionary())
                            .map_err(|e| ZlibError::Decompress(e.to_string()))?;
                        continue;
                    }
                    None => return Err(ZlibError::Decompress(e.to_string())),
                },
            }
            if out.len() > self.limit {
                return Err(ZlibError::TooLarge(self.limit));
            }
            let consumed = (self.zlib.total_in() - start) as usize;
            let progressed = self.zlib.total_in() != before_in || out.len() != before_out;
            if consumed == block.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            if !progressed {
                // All input is in but zlib wants more: the block did not end on a flush.
                return Err(ZlibError::Incomplete);
            }
        }
    }
}

/// A header block that could not be (de)compressed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ZlibError {
    /// zlib refused to compress (should not happen with in-memory buffers).
    #[error("compressing a header block: {0}")]
    Compress(String),
    /// The peer's data is not a valid continuation of its zlib stream.
    #[error("decompressing a header block: {0}")]
    Decompress(String),
    /// The block inflates past the configured limit.
    #[error("header block inflates past {0} bytes")]
    TooLarge(usize),
    /// The block did not end where its frame ends (no sync flush).
    #[error("header block ends mid-stream")]
    Incomplete,
    /// The peer ended its zlib stream, after which no block could follow.
    #[error("peer ended its header compression stream")]
    StreamEnded,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_share_one_context_in_order() {
        let mut deflater = Deflater::new();
        let mut inflater = Inflater::new(1 << 20);
        let blocks: Vec<Vec<u8>> = vec![
            b"\0\0\0\x01\0\0\0\x0astreamtype\0\0\0\x05error".to_vec(),
            b"\0\0\0\x01\0\0\0\x0astreamtype\0\0\0\x05stdin".to_vec(),
            b"\0\0\0\0".to_vec(),
        ];
        let compressed: Vec<Vec<u8>> = blocks
            .iter()
            .map(|b| deflater.compress(b).unwrap())
            .collect();
        // The first block opens the zlib stream: header 0x78 0xf9 (best, FDICT set),
        // then the dictionary's Adler-32, as a Go peer expects.
        assert_eq!(&compressed[0][..6], &[0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2]);
        // Later blocks have no zlib header and reuse the history: the repeated header
        // compresses far smaller than the first time.
        assert!(compressed[1].len() < compressed[0].len());
        // Every block ends with a sync flush.
        for c in &compressed {
            assert!(c.ends_with(&[0, 0, 0xff, 0xff]), "{c:x?}");
        }
        for (block, c) in blocks.iter().zip(&compressed) {
            assert_eq!(&inflater.decompress(c).unwrap(), block);
        }
        // A fresh context cannot read the second block alone: the context is shared.
        assert!(Inflater::new(1 << 20).decompress(&compressed[1]).is_err());
    }

    #[test]
    fn dictionary_words_compress_to_back_references() {
        // "content-type" is in the dictionary: even the first block is tiny.
        let mut deflater = Deflater::new();
        let block = b"\0\0\0\x01\0\0\0\x0ccontent-type\0\0\0\x0aapplication/xml";
        let compressed = deflater.compress(block).unwrap();
        let mut plain = Compress::new(Compression::best(), true);
        let mut without = Vec::with_capacity(256);
        plain
            .compress_vec(block, &mut without, FlushCompress::Sync)
            .unwrap();
        assert!(
            compressed.len() < without.len(),
            "{compressed:x?} vs {without:x?}"
        );
    }

    #[test]
    fn inflation_is_capped() {
        let mut deflater = Deflater::new();
        let bomb = vec![b'a'; 1 << 20];
        let compressed = deflater.compress(&bomb).unwrap();
        assert!(compressed.len() < 8 * 1024);
        let mut inflater = Inflater::new(64 * 1024);
        assert_eq!(
            inflater.decompress(&compressed),
            Err(ZlibError::TooLarge(64 * 1024))
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut inflater = Inflater::new(1 << 20);
        assert!(inflater.decompress(b"\x78\xf9garbage").is_err());
        let mut inflater = Inflater::new(1 << 20);
        assert!(inflater.decompress(b"not zlib at all").is_err());
    }
}
