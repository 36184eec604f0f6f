//! The user's side of an attached container: the terminal in raw mode, stdin forwarded with
//! docker's detach keys, window sizes and signals passed on, output copied until the exit.

use std::io::{IsTerminal, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use berth_client::engine::{AttachInput, Attached, Exit, Output};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::termios::{self, SetArg, Termios};

/// The terminal put in raw mode; restored on drop.
pub struct RawTerminal {
    saved: Termios,
}

impl RawTerminal {
    /// Raw mode on stdin, when stdin is a terminal.
    pub fn enter() -> Option<RawTerminal> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return None;
        }
        let saved = termios::tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// The size of the user's terminal (rows, cols).
pub fn window_size() -> Option<(u16, u16)> {
    for fd in [1, 0, 2] {
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ fills a winsize.
        if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_row > 0 {
            return Some((ws.ws_row, ws.ws_col));
        }
    }
    None
}

/// Sets the size of a pty whose master we hold.
pub fn set_pty_size(pty: BorrowedFd<'_>, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize.
    unsafe { libc::ioctl(pty.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

/// The signals docker's client passes on to the container (its sig-proxy), plus SIGWINCH.
const PROXIED: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Blocks SIGWINCH, and with `proxy` the proxied signals, in this thread (and the threads it
/// starts) and hands each to `on_signal` from a thread of its own; signals not proxied keep
/// their default effect on berth. Call before starting other threads.
pub fn route_signals(proxy: bool, on_signal: impl Fn(Signal) + Send + 'static) {
    let mut set = SigSet::empty();
    if proxy {
        for s in PROXIED {
            set.add(*s);
        }
    }
    set.add(Signal::SIGWINCH);
    if set.thread_block().is_err() {
        return;
    }
    std::thread::spawn(move || loop {
        match set.wait() {
            Ok(sig) => on_signal(sig),
            Err(_) => return,
        }
    });
}

/// docker's `CheckTty`: feeding a container's terminal from here needs a terminal here
/// (piped or redirected input cannot be one). Says so as docker 28 does and returns true
/// when the command must stop (with status 1).
pub fn input_not_a_tty(attach_stdin: bool, tty: bool) -> bool {
    use std::io::IsTerminal;
    if tty && attach_stdin && !std::io::stdin().is_terminal() {
        eprintln!("the input device is not a TTY");
        return true;
    }
    false
}

/// Parses docker's `--detach-keys` (`ctrl-p,ctrl-q`, `a`, `ctrl-@`…) into bytes.
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for key in s.split(',') {
        let b = match key.strip_prefix("ctrl-") {
            Some(k) if k.len() == 1 => {
                let c = k.as_bytes()[0].to_ascii_lowercase();
                match c {
                    b'a'..=b'z' => c - b'a' + 1,
                    b'@' => 0,
                    b'[' => 27,
                    b'\\' => 28,
                    b']' => 29,
                    b'^' => 30,
                    b'_' => 31,
                    _ => bail!("invalid detach keys {s:?}: unknown key {key:?}"),
                }
            }
            None if key.len() == 1 => key.as_bytes()[0],
            _ => bail!("invalid detach keys {s:?}: unknown key {key:?}"),
        };
        out.push(b);
    }
    Ok(out)
}

/// Watches a byte stream for the detach sequence, holding back a partial match.
pub struct DetachScanner {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachScanner {
    pub fn new(keys: Vec<u8>) -> DetachScanner {
        DetachScanner { keys, matched: 0 }
    }

    /// The bytes to forward from `input`, and whether the sequence completed.
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if self.keys.is_empty() {
                out.push(b);
                continue;
            }
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return (out, true);
                }
                continue;
            }
            // Not the sequence after all: release what was held back.
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if b == self.keys[0] {
                self.matched = 1;
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

/// How an attached session ended.
pub enum Outcome {
    Exited(Exit),
    Detached,
}

/// What an attached session does with the user's side.
pub struct Session {
    /// Forward the user's stdin.
    pub stdin: bool,
    /// The container has a terminal: raw mode, window sizes.
    pub tty: bool,
    /// Pass SIGINT, SIGTERM… to the container (docker's `--sig-proxy`, without a tty).
    pub sig_proxy: bool,
    pub detach_keys: Vec<u8>,
}

/// Copies the container's output to ours and our input to it until it exits or the user
/// detaches. `start` runs the command once everything is wired (run, start -a); `kill` sends
/// a proxied signal.
pub fn attach(
    attach: &mut Attached,
    session: Session,
    start: bool,
    kill: impl Fn(i32) + Send + 'static,
) -> Result<Outcome> {
    let mut resize = attach.input()?;
    if session.tty {
        if let Some((r, c)) = window_size() {
            let _ = resize.resize(r, c);
        }
    }
    {
        let resize = std::sync::Mutex::new(resize);
        let tty = session.tty;
        let proxy = session.sig_proxy && !session.tty;
        route_signals(proxy, move |sig| {
            if sig == Signal::SIGWINCH {
                if let (true, Some((r, c))) = (tty, window_size()) {
                    if let Ok(mut i) = resize.lock() {
                        let _ = i.resize(r, c);
                    }
                }
            } else {
                kill(sig as i32);
            }
        });
    }
    let raw = if session.tty && session.stdin {
        RawTerminal::enter()
    } else {
        None
    };
    if start {
        attach.start()?;
    }
    let detached = Arc::new(AtomicBool::new(false));
    if session.stdin {
        let input = attach.input()?;
        let detached = detached.clone();
        let scanner = DetachScanner::new(session.detach_keys.clone());
        let tty = session.tty;
        std::thread::spawn(move || forward_stdin(input, scanner, tty, &detached));
    }
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    let outcome = loop {
        if detached.load(Ordering::SeqCst) {
            break Outcome::Detached;
        }
        match attach.next(Some(Duration::from_millis(100)))? {
            Some(Output::Stdout(b)) => {
                let _ = stdout.write_all(&b);
                let _ = stdout.flush();
            }
            Some(Output::Stderr(b)) => {
                let _ = stderr.write_all(&b);
                let _ = stderr.flush();
            }
            Some(Output::Exit(e)) => break Outcome::Exited(e),
            None => {}
        }
    };
    drop(raw);
    Ok(outcome)
}

fn forward_stdin(
    mut input: AttachInput,
    mut scanner: DetachScanner,
    tty: bool,
    detached: &AtomicBool,
) {
    let mut stdin = std::io::stdin().lock();
    let mut buf = [0u8; 32 * 1024];
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => {
                if !tty {
                    let _ = input.close_stdin();
                }
                return;
            }
            Ok(n) => {
                let (data, detach) = scanner.feed(&buf[..n]);
                if !data.is_empty() && input.write_stdin(&data).is_err() {
                    return;
                }
                if detach {
                    detached.store(true, Ordering::SeqCst);
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// How long the output of an exec'd process that has exited is still copied: a process it
/// left in the background may hold the pty open for ever (the monitor drains a container's
/// output as long).
const EXEC_DRAIN: Duration = Duration::from_secs(2);

/// Copies between the user's terminal and an exec'd process's pty until the process's output
/// ends, or for [`EXEC_DRAIN`] more once `exited` says the process has exited (a message or
/// its sender dropped). Window size changes follow.
pub fn pump_pty(pty: OwnedFd, stdin: bool, exited: std::sync::mpsc::Receiver<()>) -> Result<()> {
    let master = std::fs::File::from(pty);
    if let Some((r, c)) = window_size() {
        set_pty_size(master.as_fd(), r, c);
    }
    let for_resize = master.try_clone()?;
    route_signals(false, move |sig| {
        if sig == Signal::SIGWINCH {
            if let Some((r, c)) = window_size() {
                set_pty_size(for_resize.as_fd(), r, c);
            }
        }
    });
    let _raw = if stdin { RawTerminal::enter() } else { None };
    if stdin {
        let mut to = master.try_clone()?;
        std::thread::spawn(move || {
            let mut buf = [0u8; 32 * 1024];
            let mut from = std::io::stdin().lock();
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 || to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        });
    }
    let mut from = master;
    let mut out = std::io::stdout();
    let mut buf = [0u8; 32 * 1024];
    let mut drain_until = None;
    loop {
        if drain_until.is_none() && exited.try_recv() != Err(std::sync::mpsc::TryRecvError::Empty) {
            drain_until = Some(std::time::Instant::now() + EXEC_DRAIN);
        }
        let wait = match drain_until {
            Some(d) => d.saturating_duration_since(std::time::Instant::now()),
            None => Duration::from_millis(100),
        };
        if wait.is_zero() {
            return Ok(());
        }
        let mut fds = [libc::pollfd {
            fd: from.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(fds.as_mut_ptr(), 1, wait.as_millis() as libc::c_int) } <= 0 {
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                let _ = out.write_all(&buf[..n]);
                let _ = out.flush();
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // EIO: the last process holding the pty's other end has exited.
            Err(_) => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(parse_detach_keys("a,ctrl-@").unwrap(), vec![b'a', 0]);
        assert!(parse_detach_keys("ctrl-").is_err());
        assert!(parse_detach_keys("shift-x").is_err());
        let mut s = DetachScanner::new(vec![16, 17]);
        assert_eq!(s.feed(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(s.feed(b"c"), (b"\x10c".to_vec(), false));
        assert_eq!(s.feed(b"\x10\x10\x11"), (b"\x10".to_vec(), true));
    }
}
