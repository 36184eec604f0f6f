//! The runtime's error type: one enum whose variants carry what the engine needs to decide an
//! exit code (`125` for the runtime's own failures, `126`/`127` for a command that cannot run).

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in berth-runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Spec asks for something this runtime cannot do, or is malformed.
    #[error("invalid container spec: {0}")]
    InvalidSpec(String),
    /// A system call or file operation failed; `context` says which and on what.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// cgroup setup or control failed.
    #[error("cgroup: {0}")]
    Cgroup(String),
    /// The container's init failed while preparing the container (mounts, pivot_root, ...).
    #[error("container setup failed: {0}")]
    Setup(String),
    /// The command does not exist in the container (docker and runc report 127).
    #[error("exec: {0}: executable file not found")]
    CommandNotFound(String),
    /// The command exists but cannot be executed (docker and runc report 126).
    #[error("exec: {0}: permission denied")]
    NotExecutable(String),
    /// No container state in this directory.
    #[error("no container in {0}")]
    NotFound(PathBuf),
    /// A container already has state in this directory.
    #[error("a container already exists in {0}")]
    AlreadyExists(PathBuf),
    /// The operation does not fit the container's current status.
    #[error("container {id} is {status}: {what}")]
    InvalidState {
        id: String,
        status: String,
        what: &'static str,
    },
    /// The monitor process of the container is gone without recording an exit.
    #[error("the monitor of container {0} died; its state is unknown")]
    MonitorDied(String),
    /// A signal name or number that does not exist.
    #[error("unknown signal {0:?}")]
    UnknownSignal(String),
    /// A user or group that cannot be resolved in the container's /etc files.
    #[error("unable to find user {0}")]
    UnknownUser(String),
    /// A `--group-add` name the container's /etc/group does not have (docker's words).
    #[error("Unable to find group {0}: no matching entries in group file")]
    UnknownGroup(String),
    /// The monitor spoke something this side does not understand.
    #[error("monitor protocol: {0}")]
    Protocol(String),
    /// A bounded wait ran out.
    #[error("timed out {0}")]
    Timeout(&'static str),
    /// Rootless berth cannot set up the user's namespace (no /etc/subuid range, no
    /// newuidmap, a runtime directory that is not the user's).
    #[error("rootless: {0}")]
    Rootless(String),
    /// Bridge networking failed: the bridge, an address, a veth pair or a published port.
    #[error("network: {0}")]
    Network(String),
    /// A published port's host address and port cannot be had, in docker's words ("Bind for
    /// 0.0.0.0:8080 failed: port is already allocated"), which name no network.
    #[error("{0}")]
    PortTaken(String),
}

impl Error {
    /// The exit code docker uses for this failure: 127 (command not found), 126 (not
    /// executable), else 125 (an error of the runtime itself).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::CommandNotFound(_) => 127,
            Error::NotExecutable(_) => 126,
            _ => 125,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds a human context to an `io::Result`.
pub(crate) trait Context<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(context(), e))
    }
}

impl<T> Context<T> for nix::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(context(), io::Error::from(e)))
    }
}
