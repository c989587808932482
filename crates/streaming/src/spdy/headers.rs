//! The name/value header block of SYN_STREAM, SYN_REPLY and HEADERS frames.

/// Header pairs of one frame; names are lowercase as SPDY/3 requires.
///
/// Kept as a list (not a map) so the wire order is the insertion order; a name set twice
/// with [`Headers::append`] goes out as one entry whose values are NUL-separated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    /// (lowercase name, value) in insertion order; a name may repeat.
    pairs: Vec<(String, String)>,
}

impl Headers {
    /// An empty header block (what a SYN_REPLY of kubelet's server carries).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `value`, replacing earlier values (Go's `Header.Set`).
    pub fn set(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        let name = name.to_ascii_lowercase();
        self.pairs.retain(|(n, _)| *n != name);
        self.pairs.push((name, value.into()));
        self
    }

    /// Adds a value to `name`, keeping earlier ones (Go's `Header.Add`).
    pub fn append(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        self.pairs.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// The first value of `name` (compared case-insensitively, as Go's `Header.Get`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All pairs, a repeated name once per value.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// True when no header is set.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The uncompressed block: a 32-bit count, then per distinct name a 32-bit length
    /// and the name, a 32-bit length and the values joined by NUL.
    pub(crate) fn to_block(&self) -> Vec<u8> {
        let mut names: Vec<&str> = Vec::new();
        for (name, _) in &self.pairs {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
        let mut out = Vec::new();
        out.extend_from_slice(&(names.len() as u32).to_be_bytes());
        for name in names {
            let value = self.get_all(name).collect::<Vec<_>>().join("\0");
            out.extend_from_slice(&(name.len() as u32).to_be_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(value.len() as u32).to_be_bytes());
            out.extend_from_slice(value.as_bytes());
        }
        out
    }

    /// Parses an uncompressed block; what a peer sends is checked, never trusted.
    pub(crate) fn from_block(block: &[u8]) -> Result<Self, HeaderBlockError> {
        let mut rest = block;
        let count = take_u32(&mut rest)?;
        // Each entry needs at least its two lengths: a count beyond that is a lie.
        if u64::from(count) * 8 > rest.len() as u64 {
            return Err(HeaderBlockError::Truncated);
        }
        let mut headers = Headers::new();
        for _ in 0..count {
            let name = take_string(&mut rest)?;
            if name.is_empty() {
                return Err(HeaderBlockError::EmptyName);
            }
            if name.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err(HeaderBlockError::UppercaseName(name));
            }
            if headers.get(&name).is_some() {
                return Err(HeaderBlockError::DuplicateName(name));
            }
            let value = take_string(&mut rest)?;
            for part in value.split('\0') {
                headers.pairs.push((name.clone(), part.to_string()));
            }
        }
        if !rest.is_empty() {
            return Err(HeaderBlockError::TrailingBytes(rest.len()));
        }
        Ok(headers)
    }
}

fn take_u32(rest: &mut &[u8]) -> Result<u32, HeaderBlockError> {
    let (head, tail) = rest
        .split_first_chunk::<4>()
        .ok_or(HeaderBlockError::Truncated)?;
    *rest = tail;
    Ok(u32::from_be_bytes(*head))
}

fn take_string(rest: &mut &[u8]) -> Result<String, HeaderBlockError> {
    let len = take_u32(rest)? as usize;
    if len > rest.len() {
        return Err(HeaderBlockError::Truncated);
    }
    let (bytes, tail) = rest.split_at(len);
    *rest = tail;
    String::from_utf8(bytes.to_vec()).map_err(|_| HeaderBlockError::NotUtf8)
}

/// Why a decompressed header block was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderBlockError {
    /// A length or count points past the end of the block.
    #[error("header block truncated")]
    Truncated,
    /// Bytes after the last announced header.
    #[error("{0} bytes after the last header")]
    TrailingBytes(usize),
    /// A header with an empty name.
    #[error("empty header name")]
    EmptyName,
    /// SPDY/3 requires lowercase names (Go's framer rejects others too).
    #[error("header name {0:?} is not lowercase")]
    UppercaseName(String),
    /// A name twice in one block (values of one name are NUL-joined instead).
    #[error("header {0:?} appears twice")]
    DuplicateName(String),
    /// Names and values are text in every protocol built on this.
    #[error("header name or value is not UTF-8")]
    NotUtf8,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_round_trips_and_joins_repeated_names_with_nul() {
        let mut headers = Headers::new();
        headers
            .set("streamType", "error")
            .append("X-Stream-Protocol-Version", "v4.channel.k8s.io")
            .append("x-stream-protocol-version", "v3.channel.k8s.io");
        let block = headers.to_block();
        let mut expected = Vec::new();
        expected.extend_from_slice(&2u32.to_be_bytes());
        expected.extend_from_slice(&10u32.to_be_bytes());
        expected.extend_from_slice(b"streamtype");
        expected.extend_from_slice(&5u32.to_be_bytes());
        expected.extend_from_slice(b"error");
        expected.extend_from_slice(&25u32.to_be_bytes());
        expected.extend_from_slice(b"x-stream-protocol-version");
        expected.extend_from_slice(&35u32.to_be_bytes());
        expected.extend_from_slice(b"v4.channel.k8s.io\0v3.channel.k8s.io");
        assert_eq!(block, expected);

        let parsed = Headers::from_block(&block).unwrap();
        assert_eq!(parsed, headers);
        assert_eq!(parsed.get("StreamType"), Some("error"));
        assert_eq!(
            parsed
                .get_all("x-stream-protocol-version")
                .collect::<Vec<_>>(),
            ["v4.channel.k8s.io", "v3.channel.k8s.io"]
        );
    }

    #[test]
    fn hostile_blocks_are_rejected() {
        // A count of 2^32-1 headers in a 4-byte block must not allocate or loop.
        assert_eq!(
            Headers::from_block(&[0xff, 0xff, 0xff, 0xff]),
            Err(HeaderBlockError::Truncated)
        );
        let mut long_name = 1u32.to_be_bytes().to_vec();
        long_name.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
        assert_eq!(
            Headers::from_block(&long_name),
            Err(HeaderBlockError::Truncated)
        );

        let one = |name: &[u8]| {
            let mut b = 1u32.to_be_bytes().to_vec();
            b.extend_from_slice(&(name.len() as u32).to_be_bytes());
            b.extend_from_slice(name);
            b.extend_from_slice(&1u32.to_be_bytes());
            b.push(b'x');
            b
        };
        assert_eq!(
            Headers::from_block(&one(b"Port")),
            Err(HeaderBlockError::UppercaseName("Port".into()))
        );
        assert_eq!(
            Headers::from_block(&one(b"")),
            Err(HeaderBlockError::EmptyName)
        );
        assert_eq!(
            Headers::from_block(&one(b"\xff")),
            Err(HeaderBlockError::NotUtf8)
        );
        let mut twice = one(b"port");
        twice[3] = 2;
        twice.extend_from_slice(&one(b"port")[4..]);
        assert_eq!(
            Headers::from_block(&twice),
            Err(HeaderBlockError::DuplicateName("port".into()))
        );
        let mut trailing = one(b"port");
        trailing.push(0);
        assert_eq!(
            Headers::from_block(&trailing),
            Err(HeaderBlockError::TrailingBytes(1))
        );
    }
}
