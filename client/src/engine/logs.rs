//! A container's log (`logs`): the driver's settings (`--log-driver`, `--log-opt`, checked
//! as docker checks them), and reading the files the runtime's monitor writes (the formats
//! and rotation are the runtime's, `berth_runtime::LogReader`), with `--tail`, `--since`,
//! `--until` and `-f`.

use std::path::Path;
use std::time::Duration;

use berth_runtime::{LogFormat, LogReader};
use chrono::{DateTime, Utc};

use super::record::LogConfig;
use super::{io_err, Result};

/// Which lines `logs` shows.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Only the last N lines (before following).
    pub tail: Option<usize>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// One line of output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// 1 stdout, 2 stderr.
    pub stream: u8,
    /// RFC 3339 with nanoseconds.
    pub time: String,
    pub data: Vec<u8>,
}

fn wanted(l: &LogLine, opts: &LogOptions) -> bool {
    if opts.since.is_none() && opts.until.is_none() {
        return true;
    }
    let Ok(t) = DateTime::parse_from_rfc3339(&l.time) else {
        return true;
    };
    let t = t.with_timezone(&Utc);
    opts.since.is_none_or(|s| t >= s) && opts.until.is_none_or(|u| t <= u)
}

/// Sends a json-file log's lines to `out` (see [`read_log`]).
pub fn read_logs(
    path: &Path,
    opts: &LogOptions,
    follow: Option<&dyn Fn() -> bool>,
    out: &mut dyn FnMut(&LogLine) -> bool,
) -> Result<()> {
    read_log(path, LogFormat::JsonFile, opts, follow, out)
}

/// Sends the log's lines to `out`, its rotated files first. With `follow`, keeps reading
/// what is appended (across rotations) until `follow()` says the container has stopped and
/// the end is reached. `out` returning false stops (the reader went away).
pub fn read_log(
    path: &Path,
    format: LogFormat,
    opts: &LogOptions,
    follow: Option<&dyn Fn() -> bool>,
    out: &mut dyn FnMut(&LogLine) -> bool,
) -> Result<()> {
    let mut reader = LogReader::open(path, format).map_err(io_err(path))?;
    let convert = |e: berth_runtime::LogEntry| LogLine {
        stream: e.stream,
        time: e.time,
        data: e.data,
    };
    let lines: Vec<LogLine> = reader
        .read_new()
        .map_err(io_err(path))?
        .into_iter()
        .map(convert)
        .filter(|l| wanted(l, opts))
        .collect();
    let skip = opts.tail.map_or(0, |n| lines.len().saturating_sub(n));
    if !lines[skip..].iter().all(&mut *out) {
        return Ok(());
    }
    let Some(running) = follow else {
        return Ok(());
    };
    loop {
        // Read the state before the file: output written before the exit is then seen.
        let alive = running();
        let new = reader.read_new().map_err(io_err(path))?;
        if !new
            .into_iter()
            .map(convert)
            .filter(|l| wanted(l, opts))
            .all(|l| out(&l))
        {
            return Ok(());
        }
        if !alive {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl super::Engine {
    /// `logs`: the container's log in its driver's format (see [`read_log`]); the `none`
    /// driver keeps nothing to read, which is docker's error.
    pub fn logs(
        &self,
        rec: &super::ContainerRecord,
        opts: &LogOptions,
        follow: Option<&dyn Fn() -> bool>,
        out: &mut dyn FnMut(&LogLine) -> bool,
    ) -> Result<()> {
        let Some((path, format)) = self.log_source(rec) else {
            return Err(super::EngineError::Invalid(
                "configured logging driver does not support reading".into(),
            ));
        };
        read_log(&path, format, opts, follow, out)
    }
}

/// docker's sizes for `max-size` (`10k`, `1.5m`, `2g`, `100`; powers of 1000, or of 1024
/// when `binary`).
fn parse_size(s: &str, binary: bool) -> std::result::Result<i64, String> {
    let bad = || format!("invalid size: '{s}'");
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or(unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let base: f64 = if binary { 1024.0 } else { 1000.0 };
    let mult = match unit {
        "" => 1.0,
        "k" => base,
        "m" => base.powi(2),
        "g" => base.powi(3),
        "t" => base.powi(4),
        "p" => base.powi(5),
        _ => return Err(bad()),
    };
    Ok((n * mult) as i64)
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> std::result::Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!(
            "strconv.ParseBool: parsing \"{s}\": invalid syntax"
        )),
    }
}

/// The options of docker's drivers that berth does not implement, refused by name rather
/// than taken and ignored.
const UNSUPPORTED_OPTIONS: &[&str] = &[
    "labels",
    "labels-regex",
    "env",
    "env-regex",
    "tag",
    "mode",
    "max-buffer-size",
];

/// Checks `--log-driver`/`--log-opt` as docker does and says how the monitor writes the
/// log under `dir` (`None`: the `none` driver, no log). Docker's messages.
pub fn log_settings(
    cfg: &LogConfig,
    dir: &Path,
    id: &str,
) -> std::result::Result<Option<berth_runtime::LogConfig>, String> {
    let (format, path, binary) = match cfg.driver.as_str() {
        "json-file" => (
            LogFormat::JsonFile,
            dir.join(format!("{id}-json.log")),
            false,
        ),
        "local" => (
            LogFormat::Local,
            dir.join("local-logs").join("container.log"),
            true,
        ),
        "none" if cfg.options.is_empty() => return Ok(None),
        "none" => return Err("invalid logging opts for driver none".into()),
        "syslog" | "journald" | "gelf" | "fluentd" | "awslogs" | "splunk" | "etwlogs"
        | "gcplogs" | "logentries" => {
            return Err(format!(
                "the {} log driver is not supported by berth (json-file, local and none are)",
                cfg.driver
            ))
        }
        other => {
            return Err(format!(
                "error looking up logging plugin {other}: plugin \"{other}\" not found"
            ))
        }
    };
    for key in cfg.options.keys() {
        if !matches!(key.as_str(), "max-size" | "max-file" | "compress") {
            if UNSUPPORTED_OPTIONS.contains(&key.as_str()) {
                return Err(format!(
                    "log opt '{key}' is not supported by berth (max-size, max-file and compress are)"
                ));
            }
            return Err(match format {
                LogFormat::JsonFile => format!("unknown log opt '{key}' for json-file log driver"),
                LogFormat::Local => format!("unknown log opt '{key}' for log driver local"),
            });
        }
    }
    let opt = |k: &str| cfg.options.get(k).map(String::as_str);
    // docker's local driver: 20 MiB × 5 files, compressed, unless told otherwise.
    let local = format == LogFormat::Local;
    let max_size = match opt("max-size") {
        Some(s) => {
            let n = parse_size(s, binary)?;
            if n < 0 || (n == 0 && !local) {
                return Err("max-size must be a positive number".into());
            }
            (n > 0).then_some(n as u64)
        }
        None if local => Some(20 << 20),
        None => None,
    };
    let max_files = match opt("max-file") {
        Some(s) => {
            let n: i64 = s
                .parse()
                .map_err(|_| format!("strconv.Atoi: parsing \"{s}\": invalid syntax"))?;
            if n < 1 {
                return Err("max-file cannot be less than 1".into());
            }
            n.min(u32::MAX as i64) as u32
        }
        None if local => 5,
        None => 1,
    };
    let compress = match opt("compress") {
        Some(s) => parse_bool(s)?,
        None => local,
    };
    if compress && (max_files < 2 || max_size.is_none()) && !(local && opt("compress").is_none()) {
        return Err(
            "compress cannot be true when max-file is less than 2 or max-size is not set".into(),
        );
    }
    Ok(Some(berth_runtime::LogConfig {
        path,
        format,
        max_size,
        max_files,
        compress: compress && max_files >= 2 && max_size.is_some(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_options_are_checked_as_docker_does() {
        let dir = Path::new("/c");
        let cfg = |driver: &str, opts: &[(&str, &str)]| LogConfig {
            driver: driver.into(),
            options: opts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let ok = |c: LogConfig| log_settings(&c, dir, "id").unwrap().unwrap();
        let d = ok(cfg("json-file", &[]));
        assert_eq!(
            (
                d.path.to_str().unwrap(),
                d.max_size,
                d.max_files,
                d.compress
            ),
            ("/c/id-json.log", None, 1, false)
        );
        let r = ok(cfg(
            "json-file",
            &[("max-size", "10k"), ("max-file", "3"), ("compress", "true")],
        ));
        assert_eq!(
            (r.max_size, r.max_files, r.compress),
            (Some(10_000), 3, true)
        );
        let l = ok(cfg("local", &[]));
        assert_eq!(
            (
                l.path.to_str().unwrap(),
                l.max_size,
                l.max_files,
                l.compress
            ),
            ("/c/local-logs/container.log", Some(20 << 20), 5, true)
        );
        assert_eq!(ok(cfg("local", &[("max-size", "1k")])).max_size, Some(1024));
        assert!(log_settings(&cfg("none", &[]), dir, "id")
            .unwrap()
            .is_none());
        for (c, msg) in [
            (
                cfg("json-file", &[("foo", "1")]),
                "unknown log opt 'foo' for json-file log driver",
            ),
            (
                cfg("local", &[("foo", "1")]),
                "unknown log opt 'foo' for log driver local",
            ),
            (
                cfg("json-file", &[("max-size", "0")]),
                "max-size must be a positive number",
            ),
            (
                cfg("json-file", &[("max-size", "abc")]),
                "invalid size: 'abc'",
            ),
            (
                cfg("json-file", &[("max-file", "0")]),
                "max-file cannot be less than 1",
            ),
            (
                cfg("json-file", &[("compress", "true")]),
                "compress cannot be true when max-file is less than 2 or max-size is not set",
            ),
            (
                cfg(
                    "json-file",
                    &[("max-size", "1k"), ("max-file", "2"), ("compress", "yes")],
                ),
                "strconv.ParseBool: parsing \"yes\": invalid syntax",
            ),
            (
                cfg("none", &[("max-size", "1k")]),
                "invalid logging opts for driver none",
            ),
            (
                cfg("bogus", &[]),
                "error looking up logging plugin bogus: plugin \"bogus\" not found",
            ),
        ] {
            assert_eq!(log_settings(&c, dir, "id").unwrap_err(), msg);
        }
        assert!(
            log_settings(&cfg("json-file", &[("labels", "a")]), dir, "id")
                .unwrap_err()
                .contains("not supported")
        );
    }

    #[test]
    fn tail_since_and_partial_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x-json.log");
        std::fs::write(
            &p,
            concat!(
                r#"{"log":"one\n","stream":"stdout","time":"2024-01-01T00:00:01.000000001Z"}"#,
                "\n",
                r#"{"log":"two\n","stream":"stderr","time":"2024-01-01T00:00:02Z"}"#,
                "\n",
                r#"{"log":"three\n","stream":"stdout","time":"2024-01-01T00:00:03Z"}"#,
                "\n",
                r#"{"log":"hal"#,
            ),
        )
        .unwrap();
        let collect = |opts: LogOptions| {
            let mut v = vec![];
            read_logs(&p, &opts, None, &mut |l| {
                v.push((l.stream, String::from_utf8(l.data.clone()).unwrap()));
                true
            })
            .unwrap();
            v
        };
        assert_eq!(collect(LogOptions::default()).len(), 3);
        assert_eq!(
            collect(LogOptions {
                tail: Some(1),
                ..Default::default()
            }),
            vec![(1, "three\n".to_string())]
        );
        let since = DateTime::parse_from_rfc3339("2024-01-01T00:00:02Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            collect(LogOptions {
                since: Some(since),
                ..Default::default()
            }),
            vec![(2, "two\n".to_string()), (1, "three\n".to_string())]
        );
        assert_eq!(
            collect(LogOptions {
                tail: Some(0),
                ..Default::default()
            }),
            vec![]
        );
    }
}
