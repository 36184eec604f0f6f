//! The container log: written by the monitor, read by anyone (`logs`, `logs -f`), in one of
//! docker's two file formats, with docker's rotation.
//!
//! - `json-file`: one JSON object per line,
//!   `{"log":"hello\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}`.
//! - `local`: docker's binary format: each entry is a protobuf `LogEntry` (1 source, 2
//!   time_nano, 3 line without its newline, 4 partial) framed by its length as a big-endian
//!   u32 before and after it.
//!
//! Output is cut at newlines; a line longer than 16 KiB is written in pieces, the last one
//! carrying the newline (as docker does); a last line without a newline is written at exit.
//!
//! Rotation (docker's `max-size`, `max-file`, `compress`): before a write, a live file that
//! has reached `max_size` is renamed `<path>.1` (the older ones shifted to `.2`, …, the
//! oldest beyond `max_files` removed) and a new live file is started; with one file only,
//! the live file is truncated instead. With `compress`, `<path>.1` is gzipped to
//! `<path>.1.gz`, whose gzip header's extra field holds `{"lastTime":…,"inode":…}` (docker
//! keeps the last time there; the inode of the file it was, so that a follower can tell
//! which rotated file it held). A reader prefers `<path>.N` to `<path>.N.gz` while both
//! exist. The monitor compresses in its own loop (zlib-rs at its fastest level: a few tens
//! of milliseconds for a 10 MB file, while the container's output waits in its pipe): it
//! can neither fork a helper nor start a thread, as its children are born in the
//! container's pid namespace (a helper there would hold the container's exit up) and a
//! process whose children's pid namespace is not its own cannot make threads.
//!
//! [`LogReader`] reads the rotated files oldest first, then the live file, and follows it
//! across rotations (`logs -f`): when the path names another file than the one it holds,
//! it finishes the one it holds (the monitor writes no more to a rotated file), reads the
//! files rotated after it, and goes on with the new live file.

use crate::state::{now_rfc3339, rfc3339};
use prost::Message;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MAX_LINE: usize = 16 * 1024;
/// A `local` entry larger than this is corruption, not a line (docker's reader says 1 MiB).
const MAX_LOCAL_ENTRY: usize = 1 << 20;

/// Which file format the log is in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// docker's `json-file`.
    #[default]
    JsonFile,
    /// docker's `local` (protobuf entries framed by their length).
    Local,
}

/// Where and how the monitor writes the container's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// The live file; rotated files sit beside it as `<path>.1`, `<path>.2.gz`, …
    pub path: PathBuf,
    pub format: LogFormat,
    /// Rotate once the live file holds this many bytes; `None`: never.
    pub max_size: Option<u64>,
    /// How many files to keep, the live one included (at least 1).
    pub max_files: u32,
    /// gzip the rotated files.
    pub compress: bool,
}

impl LogConfig {
    /// A log that is never rotated.
    pub fn unrotated(path: PathBuf, format: LogFormat) -> LogConfig {
        LogConfig {
            path,
            format,
            max_size: None,
            max_files: 1,
            compress: false,
        }
    }
}

/// docker's `local` log entry.
#[derive(Clone, PartialEq, prost::Message)]
struct LocalEntry {
    #[prost(string, tag = "1")]
    source: String,
    #[prost(int64, tag = "2")]
    time_nano: i64,
    #[prost(bytes = "vec", tag = "3")]
    line: Vec<u8>,
    #[prost(bool, tag = "4")]
    partial: bool,
}

fn rotated(path: &Path, n: u32, gz: bool) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}{}", if gz { ".gz" } else { "" }));
    PathBuf::from(s)
}

pub(crate) struct LogWriter {
    cfg: LogConfig,
    file: File,
    size: u64,
    partial: [Vec<u8>; 2],
}

impl LogWriter {
    pub fn open(cfg: &LogConfig) -> io::Result<LogWriter> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&cfg.path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            cfg: cfg.clone(),
            file,
            size,
            partial: [vec![], vec![]],
        })
    }

    /// Takes output of stream 1 (stdout) or 2 (stderr).
    pub fn write(&mut self, stream: u8, mut data: &[u8]) {
        let i = usize::from(stream == 2);
        while !data.is_empty() {
            let room = MAX_LINE - self.partial[i].len();
            let cut = match data.iter().position(|b| *b == b'\n') {
                Some(n) if n < room => n + 1,
                _ => data.len().min(room),
            };
            self.partial[i].extend_from_slice(&data[..cut]);
            data = &data[cut..];
            if self.partial[i].ends_with(b"\n") || self.partial[i].len() >= MAX_LINE {
                self.emit(i);
            }
        }
    }

    /// Writes what is left of unterminated lines.
    pub fn finish(&mut self) {
        for i in 0..2 {
            if !self.partial[i].is_empty() {
                self.emit(i);
            }
        }
    }

    fn emit(&mut self, i: usize) {
        let line = std::mem::take(&mut self.partial[i]);
        let stream = if i == 0 { "stdout" } else { "stderr" };
        let record = match self.cfg.format {
            LogFormat::JsonFile => {
                let mut text = serde_json::json!({
                    "log": String::from_utf8_lossy(&line),
                    "stream": stream,
                    "time": now_rfc3339(),
                })
                .to_string();
                text.push('\n');
                text.into_bytes()
            }
            LogFormat::Local => {
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos() as i64;
                let partial = !line.ends_with(b"\n");
                let mut line = line;
                if !partial {
                    line.pop();
                }
                let entry = LocalEntry {
                    source: stream.into(),
                    time_nano: nanos,
                    line,
                    partial,
                };
                let len = (entry.encoded_len() as u32).to_be_bytes();
                let mut buf = Vec::with_capacity(entry.encoded_len() + 8);
                buf.extend_from_slice(&len);
                entry.encode(&mut buf).expect("a Vec grows");
                buf.extend_from_slice(&len);
                buf
            }
        };
        if self.cfg.max_size.is_some_and(|max| self.size >= max) {
            if let Err(e) = self.rotate() {
                // Keep writing to the file we have: losing rotation beats losing output.
                let _ = e;
            }
        }
        // A full disk must not stop the container: the line is lost, the output still flows.
        if self.file.write_all(&record).is_ok() {
            self.size += record.len() as u64;
        }
    }

    fn rotate(&mut self) -> io::Result<()> {
        let path = self.cfg.path.clone();
        if self.cfg.max_files < 2 {
            self.file.set_len(0)?;
            self.file.seek(SeekFrom::Start(0))?;
            self.size = 0;
            return Ok(());
        }
        let last = self.cfg.max_files - 1;
        for gz in [false, true] {
            let _ = std::fs::remove_file(rotated(&path, last, gz));
        }
        for n in (1..last).rev() {
            for gz in [false, true] {
                let _ = std::fs::rename(rotated(&path, n, gz), rotated(&path, n + 1, gz));
            }
        }
        let inode = self.file.metadata()?.ino();
        let first = rotated(&path, 1, false);
        std::fs::rename(&path, &first)?;
        self.file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)?;
        self.size = 0;
        if self.cfg.compress {
            // A file that cannot be compressed stays as it is, still readable.
            let _ = compress(&first, inode);
        }
        Ok(())
    }
}

/// Gzips `file` into `file.gz` (through a temporary name), then removes `file`.
fn compress(file: &Path, inode: u64) -> io::Result<()> {
    let mut src = File::open(file)?;
    let mut data = vec![];
    src.read_to_end(&mut data)?;
    let with = |ext: &str| {
        let mut s = file.as_os_str().to_owned();
        s.push(ext);
        PathBuf::from(s)
    };
    let (gz, tmp) = (with(".gz"), with(".gz.tmp"));
    let extra = serde_json::json!({ "lastTime": now_rfc3339(), "inode": inode }).to_string();
    let out = File::create(&tmp)?;
    let mut enc = flate2::GzBuilder::new()
        .extra(extra.into_bytes())
        .write(out, flate2::Compression::fast());
    enc.write_all(&data)?;
    enc.finish()?;
    std::fs::rename(&tmp, &gz)?;
    std::fs::remove_file(file)
}

/// One entry of a container's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// 1 stdout, 2 stderr.
    pub stream: u8,
    /// RFC 3339 with nanoseconds, UTC.
    pub time: String,
    /// The bytes, with the newline that ended them (none on a partial line).
    pub data: Vec<u8>,
}

fn parse_json(line: &[u8]) -> Option<LogEntry> {
    #[derive(serde::Deserialize)]
    struct Json {
        log: String,
        stream: String,
        time: String,
    }
    let e: Json = serde_json::from_slice(line).ok()?;
    Some(LogEntry {
        stream: if e.stream == "stderr" { 2 } else { 1 },
        time: e.time,
        data: e.log.into_bytes(),
    })
}

fn parse_local(frame: &[u8]) -> Option<LogEntry> {
    let e = LocalEntry::decode(frame).ok()?;
    let mut data = e.line;
    if !e.partial {
        data.push(b'\n');
    }
    let time = UNIX_EPOCH + Duration::from_nanos(e.time_nano.max(0) as u64);
    Some(LogEntry {
        stream: if e.source == "stderr" { 2 } else { 1 },
        time: rfc3339(time),
        data,
    })
}

/// Splits `buf` into the complete entries it holds; returns them and the bytes used.
/// Unreadable entries are skipped (a torn write after a crash), never fatal.
fn split(format: LogFormat, buf: &[u8]) -> (Vec<LogEntry>, usize) {
    let mut out = vec![];
    let mut used = 0;
    match format {
        LogFormat::JsonFile => {
            while let Some(n) = buf[used..].iter().position(|b| *b == b'\n') {
                out.extend(parse_json(&buf[used..used + n]));
                used += n + 1;
            }
        }
        LogFormat::Local => {
            while buf.len() - used >= 4 {
                let len = u32::from_be_bytes(buf[used..used + 4].try_into().unwrap()) as usize;
                if len > MAX_LOCAL_ENTRY {
                    // Not a frame: nothing after it can be trusted to line up.
                    return (out, buf.len());
                }
                if buf.len() - used < len + 8 {
                    break;
                }
                out.extend(parse_local(&buf[used + 4..used + 4 + len]));
                used += len + 8;
            }
        }
    }
    (out, used)
}

/// The identity of a rotated file: the inode of the live file it was.
fn identity(path: &Path, gz: bool) -> Option<u64> {
    if !gz {
        return std::fs::metadata(path).ok().map(|m| m.ino());
    }
    let f = File::open(path).ok()?;
    let dec = flate2::read::GzDecoder::new(f);
    let extra = dec.header()?.extra()?;
    let v: serde_json::Value = serde_json::from_slice(extra).ok()?;
    v.get("inode")?.as_u64()
}

/// Reads a whole rotated file, `None` when it is gone.
fn read_rotated(path: &Path, n: u32) -> Option<Vec<u8>> {
    if let Ok(data) = std::fs::read(rotated(path, n, false)) {
        return Some(data);
    }
    let f = File::open(rotated(path, n, true)).ok()?;
    let mut data = vec![];
    flate2::read::GzDecoder::new(f)
        .read_to_end(&mut data)
        .ok()?;
    Some(data)
}

/// The rotated files that exist, newest first, with their identities.
fn rotated_files(path: &Path) -> Vec<(u32, Option<u64>)> {
    let mut v = vec![];
    for n in 1.. {
        let plain = rotated(path, n, false);
        let id = if plain.exists() {
            identity(&plain, false)
        } else if rotated(path, n, true).exists() {
            identity(&rotated(path, n, true), true)
        } else {
            break;
        };
        v.push((n, id));
    }
    v
}

/// Reads a container's log from its oldest rotated file on, and follows it.
pub struct LogReader {
    path: PathBuf,
    format: LogFormat,
    file: Option<File>,
    inode: u64,
    pos: u64,
    /// Rotated files not read yet, by number, oldest first.
    backlog: Vec<u32>,
}

impl LogReader {
    /// Opens the log at `path` (which need not exist yet).
    pub fn open(path: &Path, format: LogFormat) -> io::Result<LogReader> {
        let mut r = LogReader {
            path: path.to_path_buf(),
            format,
            file: None,
            inode: 0,
            pos: 0,
            backlog: vec![],
        };
        r.open_live()?;
        // Rotated files older than the live file we hold; should the one we hold have been
        // rotated meanwhile, only those older than it (the newest file that was it: an
        // older one may name the same inode, freed and reused).
        let files = rotated_files(path);
        let moved =
            r.file.is_some() && std::fs::metadata(path).map(|m| m.ino()).ok() != Some(r.inode);
        let held = if moved {
            files.iter().position(|(_, id)| *id == Some(r.inode))
        } else {
            None
        };
        let older = match held {
            Some(i) => &files[i + 1..],
            None => &files[..],
        };
        r.backlog = older.iter().rev().map(|(n, _)| *n).collect();
        Ok(r)
    }

    fn open_live(&mut self) -> io::Result<()> {
        match File::open(&self.path) {
            Ok(f) => {
                self.inode = f.metadata()?.ino();
                self.file = Some(f);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.file = None;
                self.inode = 0;
            }
            Err(e) => return Err(e),
        }
        self.pos = 0;
        Ok(())
    }

    /// The complete entries written since the last call (all of them at the first), in
    /// order. Call again to follow the log.
    pub fn read_new(&mut self) -> io::Result<Vec<LogEntry>> {
        let mut out = vec![];
        for n in std::mem::take(&mut self.backlog) {
            if let Some(data) = read_rotated(&self.path, n) {
                out.extend(split(self.format, &data).0);
            }
        }
        loop {
            out.extend(self.read_held()?);
            let now = match std::fs::metadata(&self.path) {
                Ok(m) => Some(m.ino()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            };
            if self.file.is_some() && now == Some(self.inode) {
                return Ok(out);
            }
            if self.file.is_none() && now.is_none() {
                return Ok(out);
            }
            // Rotated (or created): what we hold is complete; read what was rotated after
            // it, then the new live file.
            out.extend(self.read_held()?);
            if self.file.is_some() {
                let files = rotated_files(&self.path);
                let held = files.iter().position(|(_, id)| *id == Some(self.inode));
                let newer = &files[..held.unwrap_or(files.len())];
                for (n, _) in newer.iter().rev() {
                    if let Some(data) = read_rotated(&self.path, *n) {
                        out.extend(split(self.format, &data).0);
                    }
                }
            }
            self.open_live()?;
        }
    }

    /// Reads the complete entries of the held file from where we are.
    fn read_held(&mut self) -> io::Result<Vec<LogEntry>> {
        let Some(f) = &mut self.file else {
            return Ok(vec![]);
        };
        let len = f.metadata()?.len();
        if len < self.pos {
            // Truncated in place (a log of one file is rotated so).
            self.pos = 0;
        }
        f.seek(SeekFrom::Start(self.pos))?;
        let mut buf = vec![];
        f.read_to_end(&mut buf)?;
        let (entries, used) = split(self.format, &buf);
        self.pos += used as u64;
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(entries: &[LogEntry]) -> Vec<(String, u8)> {
        entries
            .iter()
            .map(|e| (String::from_utf8_lossy(&e.data).into_owned(), e.stream))
            .collect()
    }

    #[test]
    fn lines_and_partials_in_both_formats() {
        for format in [LogFormat::JsonFile, LogFormat::Local] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("log");
            let mut w = LogWriter::open(&LogConfig::unrotated(path.clone(), format)).unwrap();
            w.write(1, b"a\nb");
            w.write(2, b"err\n");
            w.write(1, b"c\nd");
            w.finish();
            let entries = LogReader::open(&path, format).unwrap().read_new().unwrap();
            assert_eq!(
                texts(&entries),
                [
                    ("a\n".into(), 1),
                    ("err\n".into(), 2),
                    ("bc\n".into(), 1),
                    ("d".into(), 1)
                ]
            );
            assert!(entries[0].time.ends_with('Z'));
            if format == LogFormat::JsonFile {
                let first = std::fs::read_to_string(&path).unwrap();
                let v: serde_json::Value =
                    serde_json::from_str(first.lines().next().unwrap()).unwrap();
                assert_eq!(v["log"], "a\n");
                assert_eq!(v["stream"], "stdout");
            }
        }
    }

    #[test]
    fn rotation_keeps_max_files_and_a_follower_misses_nothing() {
        for (format, compress) in [
            (LogFormat::JsonFile, false),
            (LogFormat::JsonFile, true),
            (LogFormat::Local, true),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("log");
            let cfg = LogConfig {
                path: path.clone(),
                format,
                max_size: Some(300),
                max_files: 4,
                compress,
            };
            let mut w = LogWriter::open(&cfg).unwrap();
            let mut follower = LogReader::open(&path, format).unwrap();
            let mut seen = vec![];
            for i in 0..200 {
                w.write(1, format!("line {i}\n").as_bytes());
                // The follower looks now and then: several rotations may pass unseen.
                if i % 7 == 0 {
                    seen.extend(follower.read_new().unwrap());
                }
            }
            w.finish();
            seen.extend(follower.read_new().unwrap());
            let want: Vec<(String, u8)> = (0..200).map(|i| (format!("line {i}\n"), 1)).collect();
            assert_eq!(texts(&seen), want, "{format:?} compress={compress}");
            // Four files at most, the rotated ones compressed when asked.
            assert!(!rotated(&path, 4, compress).exists());
            assert!(rotated(&path, 3, compress).exists());
            assert_eq!(rotated(&path, 2, true).exists(), compress);
            // A new reader sees the newest lines, in order, ending with the last.
            let all = LogReader::open(&path, format).unwrap().read_new().unwrap();
            let all = texts(&all);
            assert_eq!(all.last().unwrap().0, "line 199\n");
            let first: usize = all[0].0[5..].trim().parse().unwrap();
            assert_eq!(all, want[first..]);
        }
    }

    #[test]
    fn one_file_is_truncated_and_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let cfg = LogConfig {
            max_size: Some(200),
            ..LogConfig::unrotated(path.clone(), LogFormat::JsonFile)
        };
        let mut w = LogWriter::open(&cfg).unwrap();
        let mut r = LogReader::open(&path, LogFormat::JsonFile).unwrap();
        let mut seen = vec![];
        for i in 0..3 {
            w.write(1, format!("{i}\n").as_bytes());
        }
        seen.extend(r.read_new().unwrap());
        for i in 3..5 {
            w.write(1, format!("{i}\n").as_bytes());
        }
        seen.extend(r.read_new().unwrap());
        assert_eq!(seen.len(), 5);
        assert!(std::fs::metadata(&path).unwrap().len() <= 200 + 80);
        assert!(!rotated(&path, 1, false).exists());
    }

    #[test]
    fn hostile_local_frames_are_skipped() {
        let (entries, used) = split(LogFormat::Local, &[0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
        assert!(entries.is_empty());
        assert_eq!(used, 7);
        let (entries, used) = split(LogFormat::Local, &[0, 0, 0, 2, 0xff, 0xff, 0, 0, 0, 2]);
        assert!(entries.is_empty());
        assert_eq!(used, 10);
        let (entries, _) = split(LogFormat::JsonFile, b"not json\n{\"log\":1}\n");
        assert!(entries.is_empty());
    }
}
