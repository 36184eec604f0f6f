//! The container's state directory and the record in it.
//!
//! Layout of a state directory (the runtime owns all of it; `delete` removes it):
//!
//! ```text
//! state.json     the record below, rewritten atomically (temp + rename) at each transition
//! attach.sock    the monitor's socket (see `attach`); present while the monitor runs
//! config.json    the Spec the container was created from, as runc keeps a bundle's
//! rootfs/        empty mount point; the root is mounted on it only inside the container's
//!                own mount namespace, so the host never sees the mount
//! ```
//!
//! The log file lives where `ContainerConfig::log` says (often `<state dir>/container.log`).

use crate::cgroup::CgroupPaths;
use crate::error::{Context, Error, Result};
use crate::sys;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) const STATE_FILE: &str = "state.json";
pub(crate) const SOCKET_FILE: &str = "attach.sock";
pub(crate) const ROOTFS_DIR: &str = "rootfs";
pub(crate) const SPEC_FILE: &str = "config.json";

/// Where a container is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Set up and waiting for `start`; the command has not been executed yet.
    Created,
    /// The command runs.
    Running,
    /// Frozen by `pause`.
    Paused,
    /// The command has exited; `State::exit` says how.
    Stopped,
    /// The monitor died before recording an exit: the container may or may not still run.
    /// `delete(force)` cleans it up.
    MonitorDied,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
            Status::MonitorDied => "unknown (monitor died)",
        })
    }
}

/// How the container's command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    /// The exit code as docker reports it: the process's code, or 128 + signal.
    pub code: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// The cgroup's OOM killer killed a process of the container.
    pub oom_killed: bool,
}

/// A function the monitor calls with the container's exit (given by the container's
/// creator; kept here beside [`Exit`] so that neither the monitor nor the container module
/// needs the other for it). It runs before the exit is saved: whoever reads the stopped
/// state finds what the hook recorded.
#[derive(Clone)]
pub struct ExitHook(pub std::sync::Arc<dyn Fn(&Exit) + Send + Sync>);

impl std::fmt::Debug for ExitHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExitHook")
    }
}

/// A function the monitor calls once the container's command has started (given by the
/// container's creator, as [`ExitHook`]). It runs in the monitor before any exit of that run
/// is seen, so what it records comes before what the exit hook records, and before the
/// running state is saved.
#[derive(Clone)]
pub struct StartHook(pub std::sync::Arc<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for StartHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StartHook")
    }
}

/// What `Container::state` reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    pub status: Status,
    /// Host pid of the container's init, once created.
    pub pid: Option<i32>,
    /// Host pid of the monitor.
    pub monitor_pid: i32,
    /// RFC 3339 times with nanoseconds, UTC.
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub exit: Option<Exit>,
    /// Why the command could not be started, when it could not (docker's State.Error).
    pub error: Option<String>,
    pub log_path: Option<PathBuf>,
}

/// The on-disk record: the public state plus what the runtime needs to act on the container.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Record {
    #[serde(flatten)]
    pub state: State,
    pub pid_start: u64,
    pub monitor_start: u64,
    pub cgroups: CgroupPaths,
    pub terminal: bool,
}

impl Record {
    pub fn load(dir: &Path) -> Result<Record> {
        let path = dir.join(STATE_FILE);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(dir.to_path_buf()))
            }
            Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
        };
        serde_json::from_slice(&data)
            .map_err(|e| Error::Protocol(format!("{}: {e}", path.display())))
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let tmp = dir.join(".state.json.tmp");
        let data = serde_json::to_vec(self).expect("state serializes");
        std::fs::write(&tmp, data).ctx(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, dir.join(STATE_FILE)).ctx(|| format!("rename {}", tmp.display()))
    }

    pub fn monitor_alive(&self) -> bool {
        sys::process_alive(self.state.monitor_pid, self.monitor_start)
    }
}

/// Now, as RFC 3339 with nanoseconds in UTC, trailing zeros trimmed (Go's RFC3339Nano,
/// which docker uses in logs and inspect).
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

pub(crate) fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let (y, m, dd) = civil_from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    let nanos = d.subsec_nanos();
    if nanos != 0 {
        let frac = format!(".{nanos:09}");
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_matches_go_format() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 120_000_000);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.12Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap = UNIX_EPOCH + Duration::new(951_825_600, 1);
        assert_eq!(rfc3339(leap), "2000-02-29T12:00:00.000000001Z");
    }
}
