//! Flag values several commands read the same way: times (`--since`, `--until`), byte sizes
//! (`--memory`), the confirmation a `prune` asks for without `--force`, and where a tar goes
//! (`-o FILE` or stdout: `save`, `export`).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use berth_client::dockerfile::instructions::parse_duration;
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
    let nanos = parse_duration(s).map_err(|_| {
        anyhow!("invalid time {s:?}: use RFC 3339, a Unix time, or a duration like 10m")
    })?;
    Ok(Utc::now() - chrono::Duration::nanoseconds(nanos))
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
    // docker takes "y" or "Y" alone (its prompt.Confirm); "yes" is a no.
    Ok(answer.trim().eq_ignore_ascii_case("y"))
}

/// A prune command's end, as docker's: unless `force`, the warning and its question (a "no"
/// ends with nothing done), then `prune` and its `Total reclaimed space` line.
pub fn confirm_and_prune(
    force: bool,
    warning: &str,
    prune: impl FnOnce() -> Result<u64>,
) -> Result<i32> {
    if !force && !confirm(warning)? {
        return Ok(0);
    }
    let reclaimed = prune()?;
    println!(
        "Total reclaimed space: {}",
        crate::cli::format::human_size4(reclaimed)
    );
    Ok(0)
}

/// `KEY=VALUE` (or `KEY` alone: an empty value), as docker reads `--label` and `--opt`.
pub fn key_values(given: &[String], what: &str) -> Result<Vec<(String, String)>> {
    given
        .iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            if k.is_empty() {
                bail!("invalid {what} {kv:?}: expected KEY=VALUE");
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

/// A `label=` filter of a listing: `KEY` (has the label) or `KEY=VALUE` (has that value).
pub fn has_label(labels: &std::collections::BTreeMap<String, String>, want: &str) -> bool {
    match want.split_once('=') {
        Some((key, val)) => labels.get(key).is_some_and(|x| x == val),
        None => labels.contains_key(want),
    }
}

/// The `--filter` of the prunes (`container`, `image`, `network`, `volume`, `builder`,
/// `system prune`): `until=TIME` (made before it) and `label=KEY[=VALUE]` / `label!=…`;
/// every filter must admit a thing for it to go.
#[derive(Debug, Default)]
pub struct PruneFilters {
    pub until: Option<DateTime<Utc>>,
    /// `KEY[=VALUE]`, and whether it must not match (`label!=`).
    labels: Vec<(String, bool)>,
}

impl PruneFilters {
    /// Reads `--filter` values; another key is docker's `Invalid filter`.
    pub fn parse(given: &[String]) -> Result<PruneFilters> {
        let mut f = PruneFilters::default();
        for given in given {
            let Some((k, v)) = given.split_once('=') else {
                bail!("bad format of filter (expected name=value)");
            };
            match k {
                "until" => f.until = Some(parse_time(v)?),
                "label" | "label!" => f.labels.push((v.to_string(), k == "label!")),
                other => bail!("Invalid filter '{}'", other.trim_end_matches('!')),
            }
        }
        Ok(f)
    }

    /// Whether a label filter was given (so a thing's labels must be read).
    pub fn has_labels(&self) -> bool {
        !self.labels.is_empty()
    }

    /// Whether something made at `created` (RFC 3339; unknown: not old enough for `until`)
    /// with `labels` is to be pruned.
    pub fn admit(
        &self,
        created: Option<&str>,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> bool {
        let old_enough = self.until.is_none_or(|t| {
            created
                .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
                .is_some_and(|c| c < t)
        });
        old_enough
            && self
                .labels
                .iter()
                .all(|(want, negated)| has_label(labels, want) != *negated)
    }
}

/// Where `save` and `export` write their tar, as docker's CLI does: `-o FILE` appears whole
/// or not at all (a temporary file beside it, renamed at the end), and without `-o` a
/// terminal gets an error instead of the bytes.
pub struct TarOutput {
    file: Option<(tempfile::NamedTempFile, PathBuf)>,
}

impl TarOutput {
    /// Checks the destination before any work is done.
    pub fn open(path: Option<&Path>) -> Result<TarOutput> {
        let Some(path) = path else {
            if std::io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            return Ok(TarOutput { file: None });
        };
        validate_output_path(path)?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(TarOutput {
            file: Some((tmp, path.to_path_buf())),
        })
    }

    /// The tar's way out (buffered).
    pub fn writer(&self) -> Result<Box<dyn Write + Send>> {
        const BUF: usize = 1 << 20;
        Ok(match &self.file {
            Some((tmp, _)) => Box::new(std::io::BufWriter::with_capacity(BUF, tmp.reopen()?)),
            None => Box::new(std::io::BufWriter::with_capacity(BUF, std::io::stdout())),
        })
    }

    /// Puts the finished file in place (once everything written through [`Self::writer`]
    /// is flushed).
    pub fn finish(self) -> Result<()> {
        if let Some((tmp, path)) = self.file {
            tmp.persist(&path)
                .map_err(|e| e.error)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }
}

/// docker's check of a local output path: its directory exists, and it is a directory or a
/// regular file if it exists.
pub fn validate_output_path(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            bail!(
                "invalid output path: directory {:?} does not exist",
                dir.display().to_string()
            );
        }
    }
    if let Ok(m) = std::fs::metadata(path) {
        if !m.is_dir() && !m.is_file() {
            bail!(
                "invalid output path: {:?} must be a directory or a regular file",
                path.display().to_string()
            );
        }
    }
    Ok(())
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
