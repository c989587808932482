//! CRI container log format: `<RFC3339Nano> <stream> <F|P> <text>\n`.
//!
//! Kubelet and crictl parse these files; a line longer than [`MAX_LINE`] is
//! split into partial (`P`) records so that readers never need unbounded
//! buffers, and the last record is `F` once the newline arrives.

/// One record → (timestamp, text with its newline unless the record is partial `P`).
pub fn parse_line(line: &str) -> Option<(&str, String)> {
    let mut it = line.splitn(4, ' ');
    let ts = it.next()?;
    let _stream = it.next()?;
    let tag = it.next()?;
    let text = it.next().unwrap_or("");
    let text = text.strip_suffix('\n').unwrap_or(text);
    Some((
        ts,
        if tag == "P" {
            text.to_string()
        } else {
            format!("{text}\n")
        },
    ))
}

/// Longest text carried by one log record.
pub const MAX_LINE: usize = 16 * 1024;

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of a
    // 400-year era's years; then each era is exactly 146097 days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // month index starting at March
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Broken-down UTC time of an instant.
pub(crate) struct Utc {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
    pub nanos: i64,
}

/// Unix nanoseconds as UTC calendar fields.
pub(crate) fn utc(unix_ns: i64) -> Utc {
    let secs = unix_ns.div_euclid(1_000_000_000);
    let sod = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    Utc {
        year,
        month,
        day,
        hour: sod / 3600,
        minute: (sod / 60) % 60,
        second: sod % 60,
        nanos: unix_ns.rem_euclid(1_000_000_000),
    }
}

/// Formats unix nanoseconds as RFC 3339 UTC with 9 fractional digits,
/// e.g. `2026-11-22T06:50:01.123456789Z` (fixed width, as kubelet writes).
pub fn rfc3339_nano(unix_ns: i64) -> String {
    let t = utc(unix_ns);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.nanos
    )
}

/// Appends one CRI log record to `out`.
pub fn format_record(out: &mut Vec<u8>, unix_ns: i64, stream: &str, full: bool, text: &[u8]) {
    out.extend_from_slice(rfc3339_nano(unix_ns).as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_bytes());
    out.extend_from_slice(if full { b" F " } else { b" P " });
    out.extend_from_slice(text);
    out.push(b'\n');
}

/// Splits one output stream into log records, keeping an unterminated tail.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Feeds bytes; calls `emit(text, full)` for every complete record.
    pub fn push(&mut self, data: &[u8], emit: &mut impl FnMut(&[u8], bool)) {
        self.pending.extend_from_slice(data);
        let mut start = 0;
        loop {
            let window = &self.pending[start..];
            let probe = &window[..window.len().min(MAX_LINE + 1)];
            if let Some(i) = probe.iter().position(|&b| b == b'\n') {
                emit(&window[..i], true);
                start += i + 1;
            } else if window.len() > MAX_LINE {
                emit(&window[..MAX_LINE], false);
                start += MAX_LINE;
            } else {
                break;
            }
        }
        self.pending.drain(..start);
        if self.pending.capacity() > 2 * (MAX_LINE + 1) && self.pending.len() <= MAX_LINE {
            // Do not keep a large burst's buffer around for the pod's lifetime.
            self.pending.shrink_to(MAX_LINE + 1);
        }
    }

    /// End of stream: an unterminated tail becomes a partial record.
    pub fn finish(&mut self, emit: &mut impl FnMut(&[u8], bool)) {
        if !self.pending.is_empty() {
            emit(&self.pending, false);
        }
        self.pending = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records() {
        assert_eq!(
            parse_line("2026-01-01T00:00:00.1Z stdout F hello world\n"),
            Some(("2026-01-01T00:00:00.1Z", "hello world\n".to_string()))
        );
        assert_eq!(
            parse_line("t stderr P part"),
            Some(("t", "part".to_string()))
        );
        assert_eq!(parse_line("t stdout F "), Some(("t", "\n".to_string())));
        assert_eq!(parse_line("garbage"), None);
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_nano(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339_nano(1), "1970-01-01T00:00:00.000000001Z");
        assert_eq!(rfc3339_nano(-1), "1969-12-31T23:59:59.999999999Z");
        // 2000-02-29 (leap day in a /400 year) 12:34:56.5
        assert_eq!(
            rfc3339_nano(951_827_696_500_000_000),
            "2000-02-29T12:34:56.500000000Z"
        );
        assert_eq!(
            rfc3339_nano(1_795_417_801_123_456_789),
            "2026-11-23T07:10:01.123456789Z"
        );
        // 2100 is not a leap year: Feb 28 is followed by Mar 1.
        assert_eq!(
            rfc3339_nano(4_107_456_000 * 1_000_000_000),
            "2100-02-28T00:00:00.000000000Z"
        );
        assert_eq!(
            rfc3339_nano((4_107_456_000 + 86_400) * 1_000_000_000),
            "2100-03-01T00:00:00.000000000Z"
        );
        assert_eq!(rfc3339_nano(i64::MAX), "2262-04-11T23:47:16.854775807Z");
    }

    #[test]
    fn matches_day_by_day_walk() {
        // Cross-check civil_from_days against a naive calendar walk.
        let (mut y, mut m, mut d) = (1970i64, 1u32, 1u32);
        for days in 0..(366 * 140) {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let dim = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            d += 1;
            if d > dim[(m - 1) as usize] {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn record_layout() {
        let mut out = Vec::new();
        format_record(&mut out, 0, "stderr", false, b"ab");
        assert_eq!(out, b"1970-01-01T00:00:00.000000000Z stderr P ab\n");
    }

    fn split(chunks: &[&[u8]]) -> Vec<(Vec<u8>, bool)> {
        let mut s = LineSplitter::default();
        let mut got = Vec::new();
        for c in chunks {
            s.push(c, &mut |t, f| got.push((t.to_vec(), f)));
        }
        s.finish(&mut |t, f| got.push((t.to_vec(), f)));
        got
    }

    #[test]
    fn splits_lines_across_chunks() {
        let got = split(&[b"a\nb", b"c\n\nd"]);
        assert_eq!(
            got,
            vec![
                (b"a".to_vec(), true),
                (b"bc".to_vec(), true),
                (b"".to_vec(), true),
                (b"d".to_vec(), false),
            ]
        );
    }

    #[test]
    fn long_lines_become_partials() {
        let long = vec![b'x'; MAX_LINE * 2 + 10];
        let mut input = long.clone();
        input.push(b'\n');
        let got = split(&[&input[..100], &input[100..]]);
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].0.len(), got[0].1), (MAX_LINE, false));
        assert_eq!((got[1].0.len(), got[1].1), (MAX_LINE, false));
        assert_eq!((got[2].0.len(), got[2].1), (10, true));
    }

    #[test]
    fn exactly_max_line_is_full() {
        let mut input = vec![b'y'; MAX_LINE];
        input.push(b'\n');
        let got = split(&[&input[..MAX_LINE], &input[MAX_LINE..]]);
        assert_eq!(got, vec![(vec![b'y'; MAX_LINE], true)]);
    }

    #[test]
    fn empty_stream_emits_nothing() {
        assert!(split(&[]).is_empty());
    }
}
