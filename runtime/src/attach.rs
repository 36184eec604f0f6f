//! Talking to a container's monitor over `<state dir>/attach.sock`: attach to its stdio,
//! start it, wait for its exit.
//!
//! Wire format (a unix stream socket; integers big-endian):
//!
//! - the client opens with an 8-byte hello: `b"BRTH"`, version `1`, a flags byte
//!   (`1` stdin, `2` stdout, `4` stderr: the streams it wants), two zero bytes;
//! - then both sides send frames: an 8-byte header `[kind, 0, 0, 0, len: u32]` and `len`
//!   bytes of payload (docker's stdcopy header, extended with control kinds).
//!
//! | kind | direction | payload |
//! |---|---|---|
//! | 0 `STDIN` | client → monitor | bytes for the container's stdin |
//! | 1 `STDOUT`, 2 `STDERR` | monitor → client | container output (a tty's output is all STDOUT) |
//! | 0x10 `STARTED` | monitor → client | the init's host pid, decimal |
//! | 0x11 `START_FAILED` | monitor → client | `S`/`N`/`X` (setup / not found / not executable) + message |
//! | 0x12 `EXIT` | monitor → client | JSON `Exit`; the last frame, the monitor then closes |
//! | 0x13 `ERROR` | monitor → client | text, e.g. starting a container that has exited |
//! | 0x20 `START` | client → monitor | none: run the command (answered by STARTED or START_FAILED) |
//! | 0x21 `RESIZE` | client → monitor | rows: u16, cols: u16 (terminal containers) |
//! | 0x22 `CLOSE_STDIN` | client → monitor | none: close the container's stdin once written |
//!
//! Output produced while no client is attached is only in the log: attach before `START`
//! to see all of it (`run` and `start -a` do). A client that reads slowly slows the
//! container's output down rather than losing it. The monitor keeps serving until the
//! container exits; a client that sees the connection end without an `EXIT` frame reads the
//! state file, which tells a recorded exit from a dead monitor.

use crate::error::{Error, Result};
use crate::init::decode_failure;
use crate::state::{Exit, Record, Status, SOCKET_FILE};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(crate) const MAGIC: &[u8; 4] = b"BRTH";
pub(crate) const VERSION: u8 = 1;
pub(crate) const WANT_STDIN: u8 = 1;
pub(crate) const WANT_STDOUT: u8 = 2;
pub(crate) const WANT_STDERR: u8 = 4;

pub(crate) const STDIN: u8 = 0;
pub(crate) const STDOUT: u8 = 1;
pub(crate) const STDERR: u8 = 2;
pub(crate) const STARTED: u8 = 0x10;
pub(crate) const START_FAILED: u8 = 0x11;
pub(crate) const EXIT: u8 = 0x12;
pub(crate) const ERROR: u8 = 0x13;
pub(crate) const START: u8 = 0x20;
pub(crate) const RESIZE: u8 = 0x21;
pub(crate) const CLOSE_STDIN: u8 = 0x22;

pub(crate) const MAX_FRAME: usize = 1 << 20;

pub(crate) fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + payload.len());
    f.extend_from_slice(&[kind, 0, 0, 0]);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Which of the container's streams an attached client wants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttachOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// What an attached client receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// The container exited; nothing follows.
    Exit(Exit),
}

/// The socket path, made short through /proc/self/fd when the directory's path is long
/// (a unix socket path holds at most 107 bytes). The returned file keeps that fd alive.
pub(crate) fn socket_path(state_dir: &Path) -> io::Result<(Option<std::fs::File>, PathBuf)> {
    let full = state_dir.join(SOCKET_FILE);
    if full.as_os_str().len() < 100 {
        return Ok((None, full));
    }
    use std::os::fd::AsRawFd;
    let dir = std::fs::File::open(state_dir)?;
    let short = PathBuf::from(format!("/proc/self/fd/{}/{SOCKET_FILE}", dir.as_raw_fd()));
    Ok((Some(dir), short))
}

/// A connection to a container's monitor. Read events with `next_event`; send input from
/// another thread through `input()`.
pub struct Attach {
    stream: UnixStream,
    state_dir: PathBuf,
    pending: VecDeque<Event>,
    done: bool,
}

/// The sending half of an attach connection (a clone of its socket).
pub struct AttachInput {
    stream: UnixStream,
}

impl AttachInput {
    /// Sends bytes to the container's stdin.
    pub fn write_stdin(&mut self, data: &[u8]) -> io::Result<()> {
        for chunk in data.chunks(MAX_FRAME) {
            self.stream.write_all(&frame(STDIN, chunk))?;
        }
        Ok(())
    }

    /// Closes the container's stdin after what was sent (pipes only; a tty stays open).
    pub fn close_stdin(&mut self) -> io::Result<()> {
        self.stream.write_all(&frame(CLOSE_STDIN, &[]))
    }

    /// Sets the terminal size of a terminal container.
    pub fn resize(&mut self, rows: u16, cols: u16) -> io::Result<()> {
        let mut p = rows.to_be_bytes().to_vec();
        p.extend_from_slice(&cols.to_be_bytes());
        self.stream.write_all(&frame(RESIZE, &p))
    }
}

impl Attach {
    pub(crate) fn connect(state_dir: &Path, opts: AttachOptions) -> io::Result<Attach> {
        let (_keep, path) = socket_path(state_dir)?;
        let mut stream = UnixStream::connect(path)?;
        let mut flags = 0;
        for (on, bit) in [
            (opts.stdin, WANT_STDIN),
            (opts.stdout, WANT_STDOUT),
            (opts.stderr, WANT_STDERR),
        ] {
            if on {
                flags |= bit;
            }
        }
        let mut hello = MAGIC.to_vec();
        hello.extend_from_slice(&[VERSION, flags, 0, 0]);
        stream.write_all(&hello)?;
        Ok(Attach {
            stream,
            state_dir: state_dir.to_path_buf(),
            pending: VecDeque::new(),
            done: false,
        })
    }

    /// The sending half, for a thread that forwards stdin or window sizes.
    pub fn input(&self) -> io::Result<AttachInput> {
        Ok(AttachInput {
            stream: self.stream.try_clone()?,
        })
    }

    /// The raw socket, for a caller that speaks the wire format itself (e.g. with tokio).
    pub fn into_stream(self) -> UnixStream {
        self.stream
    }

    /// Runs the container's command. Output that arrives before the answer is kept for
    /// `next_event`. Returns the init's host pid.
    pub fn start(&mut self) -> Result<i32> {
        self.stream
            .write_all(&frame(START, &[]))
            .map_err(|e| Error::io("send start to the monitor", e))?;
        loop {
            let Some((kind, payload)) = self.read_frame(None)? else {
                return Err(self.hangup_error());
            };
            match kind {
                STARTED => {
                    return String::from_utf8_lossy(&payload)
                        .parse()
                        .map_err(|_| Error::Protocol("bad pid in STARTED".into()))
                }
                START_FAILED => return Err(decode_failure(&payload)),
                ERROR => return Err(Error::Protocol(String::from_utf8_lossy(&payload).into())),
                _ => {
                    if let Some(ev) = self.decode(kind, payload)? {
                        self.pending.push_back(ev);
                    }
                }
            }
        }
    }

    /// The next output or the exit. `Ok(None)` only after the exit was returned, or when
    /// `timeout` passes.
    pub fn next_event_timeout(&mut self, timeout: Option<Duration>) -> Result<Option<Event>> {
        if let Some(ev) = self.pending.pop_front() {
            return Ok(Some(ev));
        }
        if self.done {
            return Ok(None);
        }
        loop {
            match self.read_frame(timeout) {
                Ok(Some((kind, payload))) => {
                    if let Some(ev) = self.decode(kind, payload)? {
                        return Ok(Some(ev));
                    }
                }
                Ok(None) => {
                    // The monitor hung up without an EXIT: the record says why.
                    self.done = true;
                    return settled_exit(&self.state_dir).map(|e| Some(Event::Exit(e)));
                }
                Err(Error::Timeout(_)) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// The next output or the exit; `None` once the exit has been returned.
    pub fn next_event(&mut self) -> Result<Option<Event>> {
        self.next_event_timeout(None)
    }

    /// Reads until the exit, dropping output.
    pub fn wait_exit(&mut self, timeout: Option<Duration>) -> Result<Option<Exit>> {
        loop {
            match self.next_event_timeout(timeout)? {
                Some(Event::Exit(e)) => return Ok(Some(e)),
                Some(_) => {}
                None => return Ok(None),
            }
        }
    }

    fn hangup_error(&self) -> Error {
        match settled_exit(&self.state_dir) {
            Ok(_) => Error::InvalidState {
                id: String::new(),
                status: "stopped".into(),
                what: "cannot start a container that has exited",
            },
            Err(e) => e,
        }
    }

    fn decode(&mut self, kind: u8, payload: Vec<u8>) -> Result<Option<Event>> {
        Ok(match kind {
            STDOUT => Some(Event::Stdout(payload)),
            STDERR => Some(Event::Stderr(payload)),
            EXIT => {
                self.done = true;
                let exit = serde_json::from_slice(&payload)
                    .map_err(|e| Error::Protocol(format!("bad EXIT frame: {e}")))?;
                Some(Event::Exit(exit))
            }
            STARTED | START_FAILED | ERROR => None,
            other => return Err(Error::Protocol(format!("unknown frame kind {other}"))),
        })
    }

    fn read_frame(&mut self, timeout: Option<Duration>) -> Result<Option<(u8, Vec<u8>)>> {
        // A zero timeout means "only what is there now"; sockets refuse a zero timeout.
        let timeout = timeout.map(|t| t.max(Duration::from_micros(1)));
        self.stream
            .set_read_timeout(timeout)
            .map_err(|e| Error::io("set socket timeout", e))?;
        let mut header = [0u8; 8];
        match self.stream.read_exact(&mut header) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(Error::Timeout("waiting for the container"))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::UnexpectedEof
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::BrokenPipe
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(Error::io("read from the monitor", e)),
        }
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        if len > MAX_FRAME {
            return Err(Error::Protocol(format!("frame of {len} bytes")));
        }
        let mut payload = vec![0; len];
        // Once a header arrived, its payload follows at once.
        self.stream.set_read_timeout(None).ok();
        match self.stream.read_exact(&mut payload) {
            Ok(()) => Ok(Some((header[0], payload))),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(Error::io("read from the monitor", e)),
        }
    }
}

/// After the monitor hung up: the recorded exit, or why there is none.
pub(crate) fn settled_exit(state_dir: &Path) -> Result<Exit> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let rec = Record::load(state_dir)?;
        if rec.state.status == Status::Stopped {
            if let Some(e) = rec.state.exit {
                return Ok(e);
            }
        }
        if !rec.monitor_alive() {
            // Read once more: the monitor may have written its last record and exited.
            let rec = Record::load(state_dir)?;
            return match (rec.state.status, rec.state.exit) {
                (Status::Stopped, Some(e)) => Ok(e),
                _ => Err(Error::MonitorDied(rec.state.id)),
            };
        }
        // The monitor is alive and between its last record and its exit, or not answering.
        if std::time::Instant::now() > deadline {
            return Err(Error::Timeout("waiting for the monitor to record the exit"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
