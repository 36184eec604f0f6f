//! Durations as Go's `time.ParseDuration` reads them, which is how docker reads every
//! duration it is given (`--health-interval 30s`, `HEALTHCHECK --interval=1m30s`).

/// A duration as Go's `time.ParseDuration` reads it (`30s`, `1m30s`, `1.5h`, `500ms`, `-2s`,
/// `0`), in nanoseconds; the error is Go's text, which docker prints.
pub fn parse_go_duration(s: &str) -> std::result::Result<i64, String> {
    let invalid = || format!("time: invalid duration \"{s}\"");
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        if num.is_empty() || num == "." {
            return Err(invalid());
        }
        let n: f64 = num.parse().map_err(|_| invalid())?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let scale = match unit {
            "" => return Err(format!("time: missing unit in duration \"{s}\"")),
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            other => {
                return Err(format!(
                    "time: unknown unit \"{other}\" in duration \"{s}\""
                ))
            }
        };
        total += n * scale;
        if total > i64::MAX as f64 {
            return Err(invalid());
        }
        rest = next;
    }
    let n = total.round() as i64;
    Ok(if negative { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        for (s, n) in [
            ("0", 0),
            ("30s", 30_000_000_000),
            ("1m30s", 90_000_000_000),
            ("1.5h", 5_400_000_000_000),
            ("500ms", 500_000_000),
            ("250us", 250_000),
            ("-2s", -2_000_000_000),
            ("1h2m3s4ms", 3_723_004_000_000),
        ] {
            assert_eq!(parse_go_duration(s), Ok(n), "{s}");
        }
        for (s, msg) in [
            ("", r#"time: invalid duration """#),
            ("1", r#"time: missing unit in duration "1""#),
            ("1x", r#"time: unknown unit "x" in duration "1x""#),
            ("s", r#"time: invalid duration "s""#),
            ("1s-", r#"time: unknown unit "s-" in duration "1s-""#),
        ] {
            assert_eq!(parse_go_duration(s), Err(msg.to_string()), "{s}");
        }
    }
}
