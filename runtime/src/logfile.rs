//! The container log in docker's json-file format: one JSON object per line,
//! `{"log":"hello\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}`.
//! Output is cut at newlines; a line longer than 16 KiB is written in pieces, the last one
//! carrying the newline (as docker does); a last line without a newline is written at exit.

use crate::state::now_rfc3339;
use std::fs::File;
use std::io::Write;
use std::path::Path;

const MAX_LINE: usize = 16 * 1024;

pub(crate) struct LogWriter {
    file: File,
    partial: [Vec<u8>; 2],
}

impl LogWriter {
    pub fn open(path: &Path) -> std::io::Result<LogWriter> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(LogWriter {
            file,
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
        let record = serde_json::json!({
            "log": String::from_utf8_lossy(&line),
            "stream": if i == 0 { "stdout" } else { "stderr" },
            "time": now_rfc3339(),
        });
        let mut text = record.to_string();
        text.push('\n');
        // A full disk must not stop the container: the line is lost, the output still flows.
        let _ = self.file.write_all(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_partials() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut w = LogWriter::open(&path).unwrap();
        w.write(1, b"a\nb");
        w.write(2, b"err\n");
        w.write(1, b"c\nd");
        w.finish();
        let text = std::fs::read_to_string(&path).unwrap();
        let recs: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let logs: Vec<(&str, &str)> = recs
            .iter()
            .map(|r| (r["log"].as_str().unwrap(), r["stream"].as_str().unwrap()))
            .collect();
        assert_eq!(
            logs,
            [
                ("a\n", "stdout"),
                ("err\n", "stderr"),
                ("bc\n", "stdout"),
                ("d", "stdout")
            ]
        );
        assert!(recs[0]["time"].as_str().unwrap().ends_with('Z'));
    }
}
