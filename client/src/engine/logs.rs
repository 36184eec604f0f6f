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

/// Reads the complete lines of `path` from byte `pos` on, returning them and the position
/// after the last one. A half-written last line is left for the next read.
fn read_from(path: &Path, pos: u64, opts: &LogOptions) -> Result<(Vec<LogLine>, u64)> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((vec![], pos)),
        Err(e) => return Err(io_err(path)(e)),
    };
    file.seek(SeekFrom::Start(pos)).map_err(io_err(path))?;
    let mut reader = BufReader::new(file);
    let (mut lines, mut pos, mut buf) = (Vec::new(), pos, String::new());
    loop {
        buf.clear();
        let n = reader.read_line(&mut buf).map_err(io_err(path))?;
        if n == 0 || !buf.ends_with('\n') {
            return Ok((lines, pos));
        }
        pos += n as u64;
        if let Some(l) = parse(buf.trim_end()).filter(|l| wanted(l, opts)) {
            lines.push(l);
        }
    }
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
    let (lines, mut pos) = read_from(path, 0, opts)?;
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
        let (lines, next) = read_from(path, pos, opts)?;
        pos = next;
        if !lines.iter().all(&mut *out) {
            return Ok(());
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
