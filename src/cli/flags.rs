//! Flag values several commands read the same way: times (`--since`, `--until`), byte sizes
//! (`--memory`), and the confirmation a `prune` asks for without `--force`.

use std::io::Write;

use anyhow::{anyhow, bail, Result};
use chrono::{DateTime, Utc};

/// `--since`/`--until`: RFC 3339, a Unix time (`1700000000[.123]`), or a duration before
/// now (`10m`, `1h30m`, `45s`).
pub fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(secs) = s.parse::<f64>() {
        let nanos = (secs.fract() * 1e9) as u32;
        return DateTime::from_timestamp(secs.trunc() as i64, nanos)
            .ok_or_else(|| anyhow!("invalid time {s:?}"));
    }
    let mut total = 0f64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let n: f64 = num.parse().map_err(|_| anyhow!("invalid time {s:?}"))?;
        total += n * match c {
            'h' => 3600.0,
            'm' => 60.0,
            's' => 1.0,
            _ => bail!("invalid time {s:?}: use RFC 3339, a Unix time, or a duration like 10m"),
        };
        num.clear();
    }
    if !num.is_empty() || s.is_empty() {
        bail!("invalid time {s:?}: use RFC 3339, a Unix time, or a duration like 10m");
    }
    Ok(Utc::now() - chrono::Duration::milliseconds((total * 1000.0) as i64))
}

/// `32m`, `1g`, `512k`, `1024` (bytes) → bytes, as docker reads them.
pub fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow!("invalid size: '{s}' (use a number with k, m, g or t)"))?;
    if n < 0.0 {
        bail!("invalid size: '{s}'");
    }
    Ok((n * mult as f64) as i64)
}

/// docker's prune prompt: the warning, then `Are you sure you want to continue? [y/N]`;
/// true when the person answers yes.
pub fn confirm(warning: &str) -> Result<bool> {
    print!("{warning}\nAre you sure you want to continue? [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("32m").unwrap(), 32 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("1.5k").unwrap(), 1536);
        assert_eq!(parse_bytes("100").unwrap(), 100);
        assert_eq!(parse_bytes("64MB").unwrap(), 64 << 20);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("-1m").is_err());
    }

    #[test]
    fn times() {
        let t = parse_time("2024-01-02T03:04:05Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-01-02T03:04:05+00:00");
        assert_eq!(parse_time("1700000000").unwrap().timestamp(), 1_700_000_000);
        let ago = Utc::now() - parse_time("1h30m").unwrap();
        assert!((ago.num_seconds() - 5400).abs() < 5);
        assert!(parse_time("10x").is_err());
        assert!(parse_time("").is_err());
    }
}
