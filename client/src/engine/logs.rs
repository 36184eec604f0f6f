//! Reading a container's json-file log (`logs`): one JSON object per line,
//! `{"log":"…","stream":"stdout","time":"…"}`, as the runtime's monitor writes it.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

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

#[derive(Deserialize)]
struct Entry {
    log: String,
    stream: String,
    time: String,
}

fn parse(line: &str) -> Option<LogLine> {
    let e: Entry = serde_json::from_str(line).ok()?;
    Some(LogLine {
        stream: if e.stream == "stderr" { 2 } else { 1 },
        time: e.time,
        data: e.log.into_bytes(),
    })
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

/// Sends the log's lines to `out`. With `follow`, keeps reading what is appended until
/// `follow()` says the container has stopped and the end is reached. `out` returning false
/// stops (the reader went away).
pub fn read_logs(
    path: &Path,
    opts: &LogOptions,
    follow: Option<&dyn Fn() -> bool>,
    out: &mut dyn FnMut(&LogLine) -> bool,
) -> Result<()> {
    let file = match std::fs::File::open(path) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(path)(e)),
    };
    let mut pos = 0u64;
    if let Some(file) = file {
        let mut lines: Vec<LogLine> = Vec::new();
        let mut reader = BufReader::new(file);
        let mut buf = String::new();
        loop {
            buf.clear();
            let n = reader.read_line(&mut buf).map_err(io_err(path))?;
            // A line still being written (no newline yet) is read on the next round.
            if n == 0 || !buf.ends_with('\n') {
                break;
            }
            pos += n as u64;
            if let Some(l) = parse(buf.trim_end()).filter(|l| wanted(l, opts)) {
                lines.push(l);
            }
        }
        let skip = match opts.tail {
            Some(n) => lines.len().saturating_sub(n),
            None => 0,
        };
        for l in &lines[skip..] {
            if !out(l) {
                return Ok(());
            }
        }
    }
    let Some(running) = follow else {
        return Ok(());
    };
    let mut line = String::new();
    loop {
        // Read the state before the file: output written before the exit is then seen.
        let alive = running();
        if let Ok(mut f) = std::fs::File::open(path) {
            f.seek(SeekFrom::Start(pos)).map_err(io_err(path))?;
            let mut reader = BufReader::new(f);
            loop {
                line.clear();
                let n = reader.read_line(&mut line).map_err(io_err(path))?;
                // A half-written line is read again, whole, on the next round.
                if n == 0 || !line.ends_with('\n') {
                    break;
                }
                pos += n as u64;
                if let Some(l) = parse(line.trim_end()).filter(|l| wanted(l, opts)) {
                    if !out(&l) {
                        return Ok(());
                    }
                }
            }
        }
        if !alive {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
