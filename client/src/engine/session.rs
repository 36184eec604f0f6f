//! What a command holds while it talks to a container's processes, in the engine's own types:
//! an attached container's streams ([`Attached`], [`AttachInput`], [`Output`]), a process
//! started by `exec` ([`ExecProcess`]), signals ([`Signals`], [`parse_signal`]) and how a
//! process ended ([`Exit`]). The command line holds these and never the runtime's.
//!
//! ```text
//! Engine::attach_new(rec, stdin) -> Attached     run, start -a: prepared, command not started
//! Engine::attach(rec, stdin) -> Attached         attach: a running container
//! Attached::input() -> AttachInput               write_stdin, close_stdin, resize (rows, cols)
//! Attached::start()                              runs the command once everything is wired
//! Attached::next(timeout) -> Option<Output>      Stdout / Stderr bytes, then Exit
//! Attached::signals() -> Signals                 Signals::send(sig) from any thread
//! Engine::exec(rec, opts, ExecStdio) -> ExecProcess   take_pty(), wait() -> Exit
//! ```

use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use berth_runtime::{AttachOptions, Container};

use super::{ContainerRecord, Engine, EngineError, Result, Status};
use crate::events::{Event, Journal};

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The exit code as docker reports it: the process's code, or 128 + signal.
    pub code: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// The cgroup's OOM killer killed a process of the container.
    pub oom_killed: bool,
}

impl From<berth_runtime::Exit> for Exit {
    fn from(e: berth_runtime::Exit) -> Exit {
        Exit {
            code: e.code,
            signal: e.signal,
            oom_killed: e.oom_killed,
        }
    }
}

/// What an attached command receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// The container exited; nothing follows.
    Exit(Exit),
}

/// A container's standard streams, attached.
pub struct Attached {
    attach: berth_runtime::Attach,
    container: Container,
}

/// The sending half of an attached container's streams: its stdin and its terminal's size.
pub struct AttachInput(berth_runtime::AttachInput);

impl AttachInput {
    /// Sends bytes to the container's stdin.
    pub fn write_stdin(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.write_stdin(data)
    }

    /// Closes the container's stdin after what was sent (pipes only; a tty stays open).
    pub fn close_stdin(&mut self) -> io::Result<()> {
        self.0.close_stdin()
    }

    /// Sets the size of the container's terminal.
    pub fn resize(&mut self, rows: u16, cols: u16) -> io::Result<()> {
        self.0.resize(rows, cols)
    }
}

/// Sends signals to a container's main process; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct Signals(Container);

impl Signals {
    pub fn send(&self, signal: i32) -> Result<()> {
        Ok(self.0.kill(signal)?)
    }
}

impl Attached {
    /// The sending half, for a thread that forwards stdin or window sizes.
    pub fn input(&self) -> Result<AttachInput> {
        Ok(AttachInput(self.attach.input()?))
    }

    /// Runs the container's command (after [`Engine::attach_new`]).
    pub fn start(&mut self) -> Result<()> {
        // The monitor writes the `start` event (see `start_event`).
        self.attach.start()?;
        Ok(())
    }

    /// The next output, waiting at most `timeout` (`None`: as long as it takes); `None` when
    /// the time ran out.
    pub fn next(&mut self, timeout: Option<Duration>) -> Result<Option<Output>> {
        Ok(self.attach.next_event_timeout(timeout)?.map(|e| match e {
            berth_runtime::Event::Stdout(b) => Output::Stdout(b),
            berth_runtime::Event::Stderr(b) => Output::Stderr(b),
            berth_runtime::Event::Exit(x) => Output::Exit(x.into()),
        }))
    }

    pub fn signals(&self) -> Signals {
        Signals(self.container.clone())
    }

    /// After a run that failed to start: waits a moment for the monitor to record the exit
    /// (126/127), so that `inspect` right after says so.
    pub fn settle(&self) {
        let _ = self.container.wait_timeout(Some(Duration::from_secs(5)));
    }
}

/// Where an exec'd process's stdin, stdout and stderr go when it has no terminal.
#[derive(Debug)]
pub enum ExecStdio {
    /// The caller's own fds 0, 1 and 2.
    Inherit,
    /// /dev/null for all three (detached exec).
    Null,
    /// These fds.
    Fds {
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
}

impl From<ExecStdio> for berth_runtime::ExecStdio {
    fn from(s: ExecStdio) -> berth_runtime::ExecStdio {
        match s {
            ExecStdio::Inherit => berth_runtime::ExecStdio::Inherit,
            ExecStdio::Null => berth_runtime::ExecStdio::Null,
            ExecStdio::Fds {
                stdin,
                stdout,
                stderr,
            } => berth_runtime::ExecStdio::Fds {
                stdin,
                stdout,
                stderr,
            },
        }
    }
}

/// A process started by [`Engine::exec`]: a child of the caller.
pub struct ExecProcess {
    pub(super) process: berth_runtime::ExecProcess,
    /// The journal and the `exec_die` event to write at the exit.
    pub(super) on_exit: Option<(Journal, Event)>,
}

impl ExecProcess {
    /// The terminal's master side when the process has one: copy the user's terminal to and
    /// from it.
    pub fn take_pty(&mut self) -> Option<OwnedFd> {
        self.process.take_pty()
    }

    /// Waits for the process and reaps it.
    pub fn wait(&mut self) -> Result<Exit> {
        let exit: Exit = self.process.wait()?.into();
        if let Some((journal, event)) = self.on_exit.take() {
            journal.record(event.attr("exitCode", exit.code.to_string()));
        }
        Ok(exit)
    }
}

/// A signal by name (`TERM`, `SIGTERM`) or number, as `kill -s` and `stop -s` take it.
pub fn parse_signal(s: &str) -> Result<i32> {
    Ok(berth_runtime::parse_signal(s)?)
}

fn streams(stdin: bool) -> AttachOptions {
    AttachOptions {
        stdin,
        stdout: true,
        stderr: true,
    }
}

impl Engine {
    /// `run` and `start -a`: prepares the container (created, plugged in, its command not
    /// started) and attaches to its output, and to its stdin with `stdin`.
    /// [`Attached::start`] runs the command.
    pub fn attach_new(&self, rec: &mut ContainerRecord, stdin: bool) -> Result<Attached> {
        let container = self.prepare(rec)?;
        let mut streams = streams(stdin);
        let chosen = &rec.config.attach;
        if !chosen.is_empty() {
            // `-a`: only the streams named.
            let has = |s: &str| chosen.iter().any(|c| c == s);
            streams = AttachOptions {
                stdin: stdin && has("stdin"),
                stdout: has("stdout"),
                stderr: has("stderr"),
            };
        }
        let attach = container.attach(streams)?;
        Ok(Attached { attach, container })
    }

    /// `attach`: a running container's streams, refused as docker refuses a paused or
    /// stopped one.
    pub fn attach(&self, rec: &ContainerRecord, stdin: bool) -> Result<Attached> {
        let st = self.state(rec);
        if st.status == Status::Paused {
            return Err(EngineError::Invalid(
                "You cannot attach to a paused container, unpause it first".into(),
            ));
        }
        let Some(container) = self.runtime(rec).filter(|_| st.status == Status::Running) else {
            return Err(EngineError::Invalid(
                "You cannot attach to a stopped container, start it first".into(),
            ));
        };
        let attach = container.attach(streams(stdin))?;
        Ok(Attached { attach, container })
    }

    /// Whether a container's log may still grow: its command runs, or is about to (prepared
    /// by another command and not started yet). `logs -f` follows while it is so.
    pub fn log_may_grow(&self, rec: &ContainerRecord) -> bool {
        matches!(
            self.state(rec).status,
            Status::Running | Status::Paused | Status::Created
        ) && self.runtime(rec).is_some()
    }
}
