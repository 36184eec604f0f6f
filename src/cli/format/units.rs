//! Sizes, times and strings as docker's CLI writes them (go-units and docker's formatter).

use chrono::{DateTime, Utc};

/// docker's `units.HumanSizeWithPrecision(size, 3)`: `4.26MB`, `512B`, `1.2GB` (listings:
/// `images`, `ps -s`, `history`).
pub fn human_size(size: u64) -> String {
    size_with_precision(size, 3)
}

/// docker's `units.HumanSize`, four significant digits: `1.982MB`, `102.4kB` (`system df`,
/// the prunes' `Total reclaimed space`).
pub fn human_size4(size: u64) -> String {
    size_with_precision(size, 4)
}

fn size_with_precision(size: u64, precision: usize) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut s = size as f64;
    let mut i = 0;
    while s >= 1000.0 && i < UNITS.len() - 1 {
        s /= 1000.0;
        i += 1;
    }
    format!("{}{}", format_g(s, precision), UNITS[i])
}

/// docker's `units.BytesSize`, binary units and four significant digits: `1.5MiB`,
/// `7.654GiB`, `0B` (`stats`' memory).
pub fn bytes_size(size: u64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut s = size as f64;
    let mut i = 0;
    while s >= 1024.0 && i < UNITS.len() - 1 {
        s /= 1024.0;
        i += 1;
    }
    format!("{}{}", format_g(s, 4), UNITS[i])
}

/// Go's `%.<p>g`: `p` significant digits, no trailing zeros, and Go's exponent form when
/// the rounded value needs more digits than `p` (`999.7` at 3 digits: `1e+03`).
fn format_g(v: f64, p: usize) -> String {
    fn trim(s: &str) -> &str {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.')
        } else {
            s
        }
    }
    if v == 0.0 {
        return "0".into();
    }
    let p = p.max(1);
    let sci = format!("{:.*e}", p - 1, v);
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("{:e}'s exponent is a number");
    if exp < -4 || exp >= p as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{}e{sign}{:02}", trim(mantissa), exp.abs());
    }
    let decimals = (p as i32 - 1 - exp).max(0) as usize;
    trim(&format!("{v:.decimals$}")).to_string()
}

/// docker's `units.HumanDuration`: `Less than a second`, `About a minute`, `3 weeks`.
pub fn human_duration(d: chrono::Duration) -> String {
    let secs = d.num_seconds();
    let minutes = d.num_minutes();
    let hours = d.num_hours();
    match () {
        _ if secs < 1 => "Less than a second".into(),
        _ if secs == 1 => "1 second".into(),
        _ if secs < 60 => format!("{secs} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours.abs() == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", hours / 24 / 365),
    }
}

/// `2 weeks ago` for an RFC 3339 time; `N/A` when unknown.
pub fn human_ago(created: Option<&str>) -> String {
    match created.and_then(|c| DateTime::parse_from_rfc3339(c).ok()) {
        Some(t) => format!(
            "{} ago",
            human_duration(Utc::now().signed_duration_since(t))
        ),
        None => "N/A".into(),
    }
}

/// How long since an RFC 3339 time (`3 minutes`); empty when unknown.
pub fn human_since(t: Option<&str>) -> String {
    t.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| human_duration(Utc::now().signed_duration_since(t)))
        .unwrap_or_default()
}

/// docker's `CreatedAt`: `2024-01-02 03:04:05 +0000 UTC`; empty when unknown.
pub fn created_at(t: Option<&str>) -> String {
    t.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| {
            t.with_timezone(&Utc)
                .format("%Y-%m-%d %H:%M:%S +0000 UTC")
                .to_string()
        })
        .unwrap_or_default()
}

/// docker's history `CreatedAt` (Go's `time.RFC3339` of the Unix second:
/// `2024-01-02T03:04:05Z`); empty when unknown.
pub fn rfc3339_seconds(t: Option<&str>) -> String {
    t.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| {
            t.with_timezone(&Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
        .unwrap_or_default()
}

/// docker's `ellipsis`: at most `n` characters, the last one `…` when cut.
pub fn ellipsis(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// Go's `strconv.Quote` (the `ps` COMMAND column): the one the image config's history uses.
pub use berth_client::dockerfile::config::go_quote;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(human_size(4_261_000), "4.26MB");
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(1_200_000_000), "1.2GB");
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size4(102_400), "102.4kB");
        assert_eq!(human_size4(1_982_262), "1.982MB");
        // Go's %.3g of 999.7: the exponent form, as docker prints it.
        assert_eq!(human_size(999_700), "1e+03kB");
        assert_eq!(bytes_size(0), "0B");
        assert_eq!(bytes_size(1536 * 1024), "1.5MiB");
        assert_eq!(bytes_size(8_218_148_864), "7.654GiB");
        assert_eq!(bytes_size(1023), "1023B");
        assert_eq!(
            human_duration(chrono::Duration::seconds(90)),
            "About a minute"
        );
        assert_eq!(human_duration(chrono::Duration::days(15)), "2 weeks");
    }

    #[test]
    fn command_column() {
        assert_eq!(
            go_quote(&ellipsis("sh -c 'while true; do sleep 1; done'", 20)),
            "\"sh -c 'while true; …\""
        );
        assert_eq!(go_quote("echo \"hi\""), "\"echo \\\"hi\\\"\"");
    }
}
