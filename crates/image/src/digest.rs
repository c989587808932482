//! sha256 digests: validation (they become path names, so they must be
//! checked before use) and hashing while streaming.

use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

use crate::error::ImageError;

/// True for `sha256:` followed by exactly 64 lowercase hex digits.
pub(crate) fn is_sha256_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The hex part of a validated digest; `context` names where it came from.
pub(crate) fn digest_hex<'a>(digest: &'a str, context: &str) -> Result<&'a str, ImageError> {
    if is_sha256_digest(digest) {
        Ok(&digest["sha256:".len()..])
    } else {
        Err(ImageError::InvalidDigest {
            digest: digest.to_string(),
            context: context.to_string(),
        })
    }
}

/// `sha256:<hex>` of a byte slice.
pub(crate) fn sha256_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A reader that hashes and counts everything read through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Reads the rest of the stream (so trailing padding is hashed too) and
    /// returns `(sha256:<hex>, bytes read)`.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((
            format!("sha256:{}", hex::encode(self.hasher.finalize())),
            self.count,
        ))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_digests() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert!(is_sha256_digest(&good));
        assert!(!is_sha256_digest(&format!("sha256:{}", "A".repeat(64))));
        assert!(!is_sha256_digest(&format!("sha512:{}", "a".repeat(64))));
        assert!(!is_sha256_digest("sha256:../../etc"));
        assert!(digest_hex("sha256:..", "test").is_err());
    }

    #[test]
    fn hashing_reader_hashes_everything() {
        let r = HashingReader::new(&b"hello"[..]);
        let (d, n) = r.finish().ok().unwrap_or_default();
        assert_eq!(n, 5);
        assert_eq!(d, sha256_of(b"hello"));
    }
}
