//! `berth build`'s progress as BuildKit shows it: numbered steps in its plain format
//! (`--progress=plain`, and whenever stderr is not a terminal), or a live view redrawn in
//! place on a terminal; and a failed build's report (the step's last output, the Dockerfile
//! lines around the failing instruction, `ERROR: failed to solve: …`).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_client::build::Progress;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plain,
    Tty,
    Quiet,
}

#[derive(Default)]
struct Vertex {
    name: String,
    started: Option<Instant>,
    finished: Option<Duration>,
    cached: bool,
    error: Option<String>,
    /// Status lines (`transferring context: 2B done`).
    statuses: Vec<String>,
    /// Complete output lines, with their time from the start.
    logs: Vec<(Duration, String)>,
    /// Output not yet ended by a newline.
    partial: Vec<u8>,
}

struct State {
    vertices: BTreeMap<usize, Vertex>,
    warnings: Vec<String>,
    /// Lines the live view drew last time (to move back over them).
    drawn: usize,
}

/// The printer; cheap to share between the build's threads.
pub struct BuildProgress {
    mode: Mode,
    started: Instant,
    state: Mutex<State>,
    width: usize,
}

/// Lines of a running step's output the live view keeps under it.
const TTY_LOG_LINES: usize = 6;

fn terminal_width() -> usize {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ fills a winsize; fd 2 is ours.
    let ok = unsafe { libc::ioctl(2, libc::TIOCGWINSZ, &mut ws) } == 0;
    if ok && ws.ws_col > 20 {
        ws.ws_col as usize
    } else {
        80
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

impl BuildProgress {
    pub fn new(mode: Mode) -> Arc<BuildProgress> {
        let p = Arc::new(BuildProgress {
            mode,
            started: Instant::now(),
            state: Mutex::new(State {
                vertices: BTreeMap::new(),
                warnings: vec![],
                drawn: 0,
            }),
            width: terminal_width(),
        });
        if mode == Mode::Tty {
            // Time moves on screen while a step runs without output.
            let weak = Arc::downgrade(&p);
            std::thread::spawn(move || loop {
                std::thread::sleep(Duration::from_millis(150));
                match weak.upgrade() {
                    Some(p) => p.redraw(false),
                    None => return,
                }
            });
        }
        p
    }

    fn plain(&self, line: &str) {
        if self.mode == Mode::Plain {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{line}");
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut s = self.state.lock().expect("not poisoned");
        f(&mut s)
    }

    /// Draws the live view again over the last one.
    fn redraw(&self, last: bool) {
        if self.mode != Mode::Tty {
            return;
        }
        let mut s = self.state.lock().expect("not poisoned");
        let total = s.vertices.len();
        let done = s
            .vertices
            .values()
            .filter(|v| v.finished.is_some() || v.cached)
            .count();
        let mut lines = Vec::new();
        let head = if last { "FINISHED" } else { "" };
        lines.push(format!(
            "[+] Building {} ({done}/{total}) {head}",
            secs(self.started.elapsed())
        ));
        let w = self.width;
        for v in s.vertices.values() {
            let time = match (v.finished, v.started) {
                (Some(d), _) => secs(d),
                (None, Some(t)) => secs(t.elapsed()),
                _ => String::new(),
            };
            let name = if v.cached {
                format!(" => CACHED {}", v.name)
            } else if v.error.is_some() {
                format!(" => ERROR {}", v.name)
            } else {
                format!(" => {}", v.name)
            };
            lines.push(fit(&name, &time, w));
            for st in &v.statuses {
                lines.push(fit(&format!(" => => {st}"), "", w));
            }
            if v.finished.is_none() && !v.cached {
                let skip = v.logs.len().saturating_sub(TTY_LOG_LINES);
                for (_, l) in &v.logs[skip..] {
                    lines.push(fit(&format!(" => => # {l}"), "", w));
                }
            }
        }
        let mut out = String::new();
        if s.drawn > 0 {
            out.push_str(&format!("\x1b[{}A", s.drawn));
        }
        for l in &lines {
            out.push_str("\r\x1b[2K");
            out.push_str(l);
            out.push('\n');
        }
        // A shorter view leaves no old lines below it.
        out.push_str("\x1b[J");
        s.drawn = lines.len();
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(out.as_bytes());
        let _ = err.flush();
    }

    /// Ends the display: the final live view, the warnings.
    pub fn finish(&self) {
        self.redraw(true);
        let warnings = self.with(|s| std::mem::take(&mut s.warnings));
        if self.mode != Mode::Quiet {
            for w in warnings {
                eprintln!("[WARNING]: {w}");
            }
        }
    }

    /// The report of a failed build, as BuildKit prints it.
    pub fn failure(
        &self,
        dockerfile: &str,
        file_name: &str,
        lines: Option<(usize, usize)>,
        message: &str,
    ) {
        let failed = self.with(|s| {
            s.vertices
                .values()
                .find(|v| v.error.is_some())
                .map(|v| (v.name.clone(), v.logs.clone()))
        });
        let mut err = std::io::stderr().lock();
        if let Some((name, logs)) = failed {
            let _ = writeln!(err, "------");
            let _ = writeln!(err, " > {name}:");
            let skip = logs.len().saturating_sub(10);
            for (t, l) in &logs[skip..] {
                let _ = writeln!(err, "{:.3} {l}", t.as_secs_f64());
            }
            let _ = writeln!(err, "------");
        }
        if let Some((start, end)) = lines {
            let text: Vec<&str> = dockerfile.lines().collect();
            let from = start.saturating_sub(3).max(1);
            let to = (end + 1).min(text.len());
            let _ = writeln!(err, "{file_name}:{start}");
            let _ = writeln!(err, "--------------------");
            for n in from..=to {
                let mark = if (start..=end).contains(&n) {
                    ">>>"
                } else {
                    "   "
                };
                let _ = writeln!(
                    err,
                    "{n:>4} | {mark} {}",
                    text.get(n - 1).copied().unwrap_or_default()
                );
            }
            let _ = writeln!(err, "--------------------");
        }
        let _ = writeln!(err, "ERROR: failed to solve: {message}");
    }
}

/// A name and a right-aligned time in `width` columns.
fn fit(left: &str, right: &str, width: usize) -> String {
    let room = width.saturating_sub(right.len() + 1);
    let mut l: String = left.chars().take(room).collect();
    if !right.is_empty() {
        let pad = room.saturating_sub(l.chars().count());
        l.push_str(&" ".repeat(pad));
        l.push(' ');
        l.push_str(right);
    }
    l
}

impl Progress for BuildProgress {
    fn start(&self, v: usize, name: &str) {
        self.with(|s| {
            let e = s.vertices.entry(v).or_default();
            e.name = name.to_string();
            e.started = Some(Instant::now());
        });
        self.plain(&format!("#{v} {name}"));
        self.redraw(false);
    }

    fn status(&self, v: usize, text: &str) {
        self.with(|s| {
            s.vertices
                .entry(v)
                .or_default()
                .statuses
                .push(text.to_string())
        });
        self.plain(&format!("#{v} {text}"));
        self.redraw(false);
    }

    fn log(&self, v: usize, data: &[u8]) {
        let lines = self.with(|s| {
            let e = s.vertices.entry(v).or_default();
            let t = e.started.map(|t| t.elapsed()).unwrap_or_default();
            e.partial.extend_from_slice(data);
            let mut out = Vec::new();
            while let Some(i) = e.partial.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = e.partial.drain(..=i).collect();
                let text = String::from_utf8_lossy(&line[..line.len() - 1])
                    .trim_end_matches('\r')
                    .to_string();
                e.logs.push((t, text.clone()));
                out.push((t, text));
            }
            out
        });
        for (t, l) in lines {
            self.plain(&format!("#{v} {:.3} {l}", t.as_secs_f64()));
        }
        self.redraw(false);
    }

    fn cached(&self, v: usize) {
        self.with(|s| {
            let e = s.vertices.entry(v).or_default();
            e.cached = true;
            e.finished = Some(Duration::ZERO);
        });
        self.plain(&format!("#{v} CACHED\n"));
        self.redraw(false);
    }

    fn done(&self, v: usize) {
        let (elapsed, rest) = self.with(|s| {
            let e = s.vertices.entry(v).or_default();
            let d = e.started.map(|t| t.elapsed()).unwrap_or_default();
            e.finished = Some(d);
            // Output without a final newline is shown too.
            let rest = std::mem::take(&mut e.partial);
            if !rest.is_empty() {
                let text = String::from_utf8_lossy(&rest).to_string();
                e.logs.push((d, text.clone()));
                (d, Some(text))
            } else {
                (d, None)
            }
        });
        if let Some(r) = rest {
            self.plain(&format!("#{v} {:.3} {r}", elapsed.as_secs_f64()));
        }
        self.plain(&format!("#{v} DONE {}\n", secs(elapsed)));
        self.redraw(false);
    }

    fn error(&self, v: usize, message: &str) {
        self.with(|s| {
            let e = s.vertices.entry(v).or_default();
            e.error = Some(message.to_string());
            e.finished = Some(e.started.map(|t| t.elapsed()).unwrap_or_default());
        });
        self.plain(&format!("#{v} ERROR: {message}"));
        self.redraw(false);
    }

    fn warning(&self, text: &str) {
        self.with(|s| s.warnings.push(text.to_string()));
    }
}
