//! Byte ranges: the `Range` header of a blob read (RFC 9110 §14.2) and the `Content-Range` of
//! an upload chunk (the distribution spec's `<start>-<end>`).
//!
//! A blob read's `Range` is a request the server may decline: a header that is not one
//! well-formed `bytes` range is ignored and the whole blob is served (several ranges too:
//! RFC 9110 lets a server answer them with the whole representation). Only a well-formed
//! range that the blob cannot satisfy gets 416. An upload chunk's `Content-Range` is a claim
//! that must hold: anything malformed, or whose length does not fit in 64 bits, is refused.

use std::ops::Range;

/// One well-formed range of a `Range: bytes=…` header, before the blob's size is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `first-` and `first-last` (`last` saturates at `u64::MAX`).
    From { first: u64, last: Option<u64> },
    /// `-suffix`: the last `suffix` bytes.
    Suffix(u64),
}

impl ByteRange {
    /// The bytes this range selects from a blob of `size` bytes, or `None` when it selects
    /// none (unsatisfiable: answer 416 with `Content-Range: bytes */SIZE`).
    pub fn resolve(self, size: u64) -> Option<Range<u64>> {
        match self {
            ByteRange::From { first, .. } if first >= size => None,
            ByteRange::From { first, last } => {
                let end = last.map_or(size, |l| l.saturating_add(1).min(size));
                Some(first..end)
            }
            ByteRange::Suffix(0) => None,
            ByteRange::Suffix(_) if size == 0 => None,
            ByteRange::Suffix(n) => Some(size.saturating_sub(n)..size),
        }
    }
}

/// Reads a `Range` header value. `None` means "ignore it and send the whole blob": a unit
/// other than `bytes`, a syntax error, or several ranges.
pub fn parse_range(value: &[u8]) -> Option<ByteRange> {
    let value = std::str::from_utf8(value).ok()?;
    let (unit, set) = value.split_once('=')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    // A list may hold empty elements, which a recipient skips (RFC 9110 §5.6.1.2).
    let mut specs = set
        .split(',')
        .map(|s| s.trim_matches([' ', '\t']))
        .filter(|s| !s.is_empty());
    let spec = specs.next()?;
    if specs.next().is_some() {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    if first.is_empty() {
        return Some(ByteRange::Suffix(digits(last)?));
    }
    let first = digits(first)?;
    let last = match last {
        "" => None,
        l => Some(digits(l)?),
    };
    if last.is_some_and(|l| l < first) {
        return None;
    }
    Some(ByteRange::From { first, last })
}

/// `1*DIGIT` as a number; one too large for 64 bits saturates (it is still well-formed: a
/// last position past the end means the end).
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse().unwrap_or(u64::MAX))
}

/// Reads an upload chunk's `Content-Range: <start>-<end>` (a `bytes ` or `bytes=` prefix and a
/// `/<total>` suffix tolerated) as (start, length). `None` when it is malformed, ends before
/// it starts, or covers more than `u64::MAX` bytes.
pub fn parse_chunk_range(value: &[u8]) -> Option<(u64, u64)> {
    let s = std::str::from_utf8(value).ok()?.trim();
    let s = s
        .strip_prefix("bytes ")
        .or_else(|| s.strip_prefix("bytes="))
        .unwrap_or(s);
    let s = s.split_once('/').map_or(s, |(r, _)| r);
    let (a, b) = s.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if !(a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())) {
        return None;
    }
    let start: u64 = a.parse().ok()?;
    let end: u64 = b.parse().ok()?;
    let len = end.checked_sub(start)?.checked_add(1)?;
    Some((start, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a blob read gets.
    #[derive(Debug, Clone, PartialEq)]
    enum Want {
        /// The header is ignored: the whole blob.
        Whole,
        Part(Range<u64>),
        /// 416.
        Unsatisfiable,
    }

    #[test]
    fn blob_ranges() {
        use Want::*;
        let table = [
            ("bytes=0-9", 100, Part(0..10)),
            ("bytes=90-", 100, Part(90..100)),
            ("bytes=-10", 100, Part(90..100)),
            ("bytes=-1000", 100, Part(0..100)),
            ("bytes=95-200", 100, Part(95..100)),
            ("bytes=99-99", 100, Part(99..100)),
            ("BYTES=0-0", 100, Part(0..1)),
            ("bytes= 0-9 ", 100, Part(0..10)),
            ("bytes=0-9,", 100, Part(0..10)),
            ("bytes=0-99999999999999999999999", 100, Part(0..100)),
            ("bytes=0-18446744073709551615", 100, Part(0..100)),
            // Unsatisfiable.
            ("bytes=100-", 100, Unsatisfiable),
            ("bytes=100-200", 100, Unsatisfiable),
            ("bytes=99999999999999999999999-", 100, Unsatisfiable),
            ("bytes=-0", 100, Unsatisfiable),
            ("bytes=0-0", 0, Unsatisfiable),
            ("bytes=-5", 0, Unsatisfiable),
            // Ignored: several ranges, another unit, bad syntax.
            ("bytes=0-1,5-6", 100, Whole),
            ("bytes=200-300,400-500", 100, Whole),
            ("items=0-1", 100, Whole),
            ("bytes 0-1", 100, Whole),
            ("bytes=5-2", 100, Whole),
            ("bytes=abc", 100, Whole),
            ("bytes=-", 100, Whole),
            ("bytes=", 100, Whole),
            ("bytes=,", 100, Whole),
            ("bytes=+1-2", 100, Whole),
            ("bytes=1--2", 100, Whole),
            ("bytes=0x1-2", 100, Whole),
            ("=0-1", 100, Whole),
            ("", 100, Whole),
        ];
        for (h, size, want) in table {
            let got = match parse_range(h.as_bytes()) {
                None => Whole,
                Some(r) => r.resolve(size).map_or(Unsatisfiable, Part),
            };
            assert_eq!(got, want, "{h:?} of {size} bytes");
        }
        assert_eq!(parse_range(b"bytes=\xff-1"), None);
    }

    #[test]
    fn chunk_ranges() {
        let table: &[(&str, Option<(u64, u64)>)] = &[
            ("0-9", Some((0, 10))),
            ("bytes 10-19/100", Some((10, 10))),
            ("bytes=10-19", Some((10, 10))),
            ("5-5", Some((5, 1))),
            ("0-18446744073709551614", Some((0, u64::MAX))),
            ("0-18446744073709551615", None),
            ("1-18446744073709551615", Some((1, u64::MAX))),
            ("0-18446744073709551616", None),
            ("9-5", None),
            ("abc", None),
            ("-5", None),
            ("5-", None),
            ("+1-+2", None),
            ("", None),
        ];
        for (h, want) in table {
            assert_eq!(parse_chunk_range(h.as_bytes()), *want, "{h:?}");
        }
    }
}
