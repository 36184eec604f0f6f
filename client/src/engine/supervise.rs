//! The supervisor: what docker's daemon does for a running container, done by one process
//! per container instead (there is no daemon): restarts by the container's policy, its
//! healthcheck, and what follows its last exit (`--rm`'s removal, giving back published
//! ports).
//!
//! Which process: the runtime's monitor owns one run of the process (stdio, log, exit) and
//! knows nothing of images, names or networks, while a restart rebuilds the run from the
//! engine's record (the Spec, /etc files, the bridge). So the binary that holds the engine
//! starts a supervisor (`berth __supervise ID`, a new session of its own) when a started container
//! needs one ([`Engine::needs_supervisor`]); it lives across the container's runs and ends
//! when the container stays down or is removed.
//!
//! One supervisor per container: it holds `containers/<id>/supervisor.lock` (flock) for its
//! life; one that finds it held leaves. Decisions that race with people's commands are taken
//! under `containers/<id>/lock`: a `start` starts the container and only then looks for a
//! supervisor; a supervisor that sees the exit takes the lock, finds either a new run (and
//! watches it) or an exit to act on, and gives up its own lock before the container's when it
//! leaves. `stop`, `kill` and `rm -f` set `restart_cancelled` under the lock first, so their
//! exit is never restarted.
//!
//! Restarts follow docker's restart manager: 100 ms before the first, doubled each time up to
//! one minute, back to 100 ms after a run of 10 s or more; `on-failure:N` restarts at most N
//! times in a row; `RestartCount` counts the restarts since the last start by a person.
//!
//! Healthchecks follow docker's: the first probe one interval after the start, then every
//! interval; a probe is the check's command exec'd in the container, 0 is healthy, anything
//! else (a timeout too) a failure; `retries` failures in a row make it unhealthy, failures
//! within the start period do not count until a probe has succeeded; the last five results
//! are kept with 4 KiB of output each, in `containers/<id>/health.json`.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use berth_runtime::AttachOptions;
use serde::{Deserialize, Serialize};

use super::{
    container_event, io_err, write_file, ContainerRecord, Engine, EngineError, ExecOptions,
    ExecStdio, Result, Status,
};
use crate::engine::record::{Healthcheck, RestartPolicy};

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(60);
const STEADY_RUN: Duration = Duration::from_secs(10);
const HEALTH_LOG_ENTRIES: usize = 5;
const HEALTH_OUTPUT: usize = 4096;
/// How often a supervisor waiting to restart looks whether a person acted meanwhile.
const BACKOFF_TICK: Duration = Duration::from_millis(100);
/// A test hook: with `BERTH_TEST_RESTART_PAUSE_MS=N`, a supervisor holds the container's
/// lock N ms (at most [`RESTART_PAUSE_LIMIT`]) right before it starts a restart's run, so
/// that a test can make a `stop` or `kill` arrive in that moment.
const RESTART_PAUSE_ENV: &str = "BERTH_TEST_RESTART_PAUSE_MS";
const RESTART_PAUSE_LIMIT: Duration = Duration::from_secs(10);

/// docker's `State.Health`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    pub failing_streak: u32,
    pub log: Vec<HealthResult>,
}

/// One probe's result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HealthResult {
    pub start: String,
    pub end: String,
    /// The probe's exit code; -1 when it could not run or timed out.
    pub exit_code: i64,
    pub output: String,
}

impl Health {
    fn starting() -> Health {
        Health {
            status: "starting".into(),
            failing_streak: 0,
            log: vec![],
        }
    }
}

/// Whether, after an exit with `exit_code`, the policy restarts the container (docker's
/// restart manager, with the restarts done since the last manual start).
pub(crate) fn should_restart(rec: &ContainerRecord, exit_code: i32) -> bool {
    if rec.restart_cancelled {
        return false;
    }
    match rec.restart_policy {
        RestartPolicy::No => false,
        RestartPolicy::Always => true,
        RestartPolicy::UnlessStopped => !rec.manually_stopped,
        RestartPolicy::OnFailure(max) => exit_code != 0 && (max == 0 || rec.restart_count < max),
    }
}

/// Whether a container that is down when the host starts is started again (docker's
/// daemon at its start: a fresh restart manager, so neither a `stop`'s ExitOnNext nor the
/// restarts counted so far hold it back; `unless-stopped` stays down after a `stop`).
pub(crate) fn starts_at_boot(rec: &ContainerRecord, exit_code: i32) -> bool {
    match rec.restart_policy {
        RestartPolicy::No => false,
        RestartPolicy::Always => true,
        RestartPolicy::UnlessStopped => !rec.manually_stopped,
        RestartPolicy::OnFailure(_) => exit_code != 0,
    }
}

/// The exit docker records for a container whose process went with the host (its
/// monitor, and so its exit, is gone).
const EXIT_LOST: i32 = 255;

/// Docker's growing delay between restarts.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    delay: Option<Duration>,
}

impl Backoff {
    /// The wait before the next restart, given how long the last run lasted.
    pub fn next(&mut self, ran: Duration) -> Duration {
        if ran >= STEADY_RUN {
            self.delay = None;
        }
        let d = match self.delay {
            None => FIRST_DELAY,
            Some(d) => (d * 2).min(MAX_DELAY),
        };
        self.delay = Some(d);
        d
    }
}

/// Folds a probe's result into the health, returns whether the status changed.
pub(crate) fn record_probe(
    h: &mut Health,
    check: &Healthcheck,
    result: HealthResult,
    within_start_period: bool,
) -> bool {
    let before = h.status.clone();
    if result.exit_code == 0 {
        h.failing_streak = 0;
        h.status = "healthy".into();
    } else if !(h.status == "starting" && within_start_period) {
        h.failing_streak += 1;
        let retries = if check.retries > 0 {
            check.retries
        } else {
            Healthcheck::DEFAULT_RETRIES
        };
        if i64::from(h.failing_streak) >= retries {
            h.status = "unhealthy".into();
        }
    }
    h.log.push(result);
    if h.log.len() > HEALTH_LOG_ENTRIES {
        h.log.remove(0);
    }
    h.status != before
}

fn nanos(n: i64, default: i64) -> Duration {
    Duration::from_nanos(if n > 0 { n } else { default } as u64)
}

fn since(t: &Option<String>) -> Duration {
    t.as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| {
            let t: SystemTime = t.with_timezone(&chrono::Utc).into();
            SystemTime::now().duration_since(t).unwrap_or_default()
        })
        .unwrap_or_default()
}

fn ran_for(started: &Option<String>, finished: &Option<String>) -> Duration {
    let parse = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    match (parse(started), parse(finished)) {
        (Some(s), Some(f)) => (f - s).to_std().unwrap_or_default(),
        _ => Duration::ZERO,
    }
}

/// A held flock, released when dropped.
pub(crate) struct Flock(#[allow(dead_code)] std::fs::File);

pub(super) fn flock(path: &std::path::Path, exclusive: bool, wait: bool) -> Result<Option<Flock>> {
    use rustix::fs::FlockOperation as Op;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    let op = match (exclusive, wait) {
        (true, true) => Op::LockExclusive,
        (true, false) => Op::NonBlockingLockExclusive,
        (false, true) => Op::LockShared,
        (false, false) => Op::NonBlockingLockShared,
    };
    match rustix::fs::flock(&file, op) {
        Ok(()) => Ok(Some(Flock(file))),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(None),
        Err(e) => Err(io_err(path)(e.into())),
    }
}

impl Engine {
    fn lock_path(&self, id: &str) -> PathBuf {
        self.dir(id).join("lock")
    }

    fn supervisor_lock_path(&self, id: &str) -> PathBuf {
        self.dir(id).join("supervisor.lock")
    }

    fn health_path(&self, id: &str) -> PathBuf {
        self.dir(id).join("health.json")
    }

    /// Takes the container's lock (decisions about starting and restarting it).
    pub(crate) fn lock(&self, id: &str) -> Result<Flock> {
        let path = self.lock_path(id);
        if !self.dir(id).join("config.json").exists() {
            return Err(EngineError::NotFound(id.to_string()));
        }
        Ok(flock(&path, true, true)?.expect("a blocking flock returns locked"))
    }

    /// Reads, changes and writes the record under the container's lock.
    pub(crate) fn update(
        &self,
        id: &str,
        f: impl FnOnce(&mut ContainerRecord),
    ) -> Result<ContainerRecord> {
        let _lock = self.lock(id)?;
        let mut rec = self.load(id)?;
        f(&mut rec);
        self.save(&rec)?;
        Ok(rec)
    }

    /// Whether a supervisor process watches the container now.
    pub fn supervisor_alive(&self, rec: &ContainerRecord) -> bool {
        let path = self.supervisor_lock_path(&rec.id);
        path.exists() && matches!(flock(&path, false, false), Ok(None))
    }

    /// Whether a started container needs a supervisor: a restart policy, a healthcheck,
    /// `--rm`, or published ports to give back.
    pub fn needs_supervisor(&self, rec: &ContainerRecord) -> bool {
        self.needs_watching(rec)
            || rec.host.auto_remove
            || (rec.host.network == super::NetworkMode::Bridge
                && !rec.host.port_bindings.is_empty())
    }

    /// Whether a container needs a supervisor while it runs, even with a person attached
    /// who cleans up after its exit: a restart policy or a healthcheck.
    pub fn needs_watching(&self, rec: &ContainerRecord) -> bool {
        rec.restart_policy != RestartPolicy::No
            || rec
                .config
                .healthcheck
                .as_ref()
                .and_then(Healthcheck::argv)
                .is_some()
    }

    /// The container's health (docker's `State.Health`), when it has a healthcheck and has
    /// been started: `starting` until the first probe; as docker's, `unhealthy` with the last
    /// results once it is down.
    pub fn health(&self, rec: &ContainerRecord) -> Option<Health> {
        self.health_in(rec, &self.state(rec))
    }

    /// [`Engine::health`] for a state already read.
    pub fn health_in(&self, rec: &ContainerRecord, st: &super::ContainerState) -> Option<Health> {
        rec.config
            .healthcheck
            .as_ref()
            .and_then(Healthcheck::argv)?;
        let data = std::fs::read(self.health_path(&rec.id)).ok();
        let mut h: Health = data
            .and_then(|d| serde_json::from_slice(&d).ok())
            .unwrap_or_else(Health::starting);
        match st.status {
            Status::Running | Status::Paused => {}
            Status::Created if st.started_at.is_none() => return None,
            Status::Created => {}
            Status::Exited | Status::Dead => {
                h.status = "unhealthy".into();
                h.failing_streak = 0;
            }
        }
        Some(h)
    }

    fn save_health(&self, id: &str, h: &Health) -> Result<()> {
        write_file(
            &self.health_path(id),
            &serde_json::to_vec(h).expect("health serialises"),
        )
    }

    /// An event of the container's life in the journal (`health_status: healthy`); `die`
    /// `start`, `restart` and `die` come from the monitor (see `start_event`).
    fn event(&self, rec: &ContainerRecord, action: &str) {
        self.journal().record(container_event(rec, action));
    }

    /// What docker's daemon does at its start, for one container, after a reboot (run once
    /// at boot: `berth system boot`): a container whose run was lost with the host (its
    /// monitor gone without an exit) is settled as exited with 255; then one that is down
    /// and whose policy asks for it is started, as a person's start (RestartCount 0).
    /// True when it was started. A container started meanwhile, waiting to restart, or never
    /// started is left alone.
    pub fn start_at_boot(&self, id: &str) -> Result<bool> {
        let _lock = self.lock(id)?;
        let mut rec = self.load(id)?;
        let mut st = self.state(&rec);
        if st.status == Status::Dead {
            if let Some(old) = self.runtime(&rec) {
                old.delete(true)?;
            }
            rec.last_run = Some(super::LastRun {
                started_at: st.started_at.clone(),
                finished_at: Some(berth_runtime::now_rfc3339()),
                exit_code: EXIT_LOST,
                oom_killed: false,
                error: None,
            });
            rec.restarting = false;
            self.save(&rec)?;
            self.disconnect(&rec);
            st = self.state(&rec);
        }
        let started_before = st.started_at.is_some() || rec.last_run.is_some();
        if st.status != Status::Exited
            || st.restarting
            || !started_before
            || !starts_at_boot(&rec, st.exit_code)
        {
            return Ok(false);
        }
        self.start_run(&mut rec, true)?;
        Ok(true)
    }

    /// Runs the supervisor of container `id` until the container stays down or is
    /// removed. Returns at once when another supervisor has it.
    pub fn supervise(&self, id: &str) -> Result<()> {
        let Some(_mine) = flock(&self.supervisor_lock_path(id), true, false)? else {
            return Ok(());
        };
        let mut backoff = Backoff::default();
        loop {
            self.watch_run(id)?;
            // The run ended. Under the container's lock: a new run (someone started it),
            // the end, or a restart.
            let lock = match self.lock(id) {
                Ok(l) => l,
                Err(EngineError::NotFound(_)) => return Ok(()),
                Err(e) => return Err(e),
            };
            let Ok(mut rec) = self.load(id) else {
                return Ok(());
            };
            let st = self.state(&rec);
            if matches!(
                st.status,
                Status::Running | Status::Paused | Status::Created
            ) && self.runtime(&rec).is_some()
            {
                continue;
            }
            if st.status != Status::Exited || !should_restart(&rec, st.exit_code) {
                drop(_mine);
                drop(lock);
                return self.after_last_exit(id);
            }
            let delay = backoff.next(ran_for(&st.started_at, &st.finished_at));
            rec.restart_count += 1;
            rec.restarting = true;
            self.save(&rec)?;
            // Give the address and ports back while it waits, under the lock: a person's
            // start right after it must not have its new network taken away.
            self.disconnect(&rec);
            drop(lock);
            if !self.wait_to_restart(id, delay)? {
                drop(_mine);
                return self.after_last_exit(id);
            }
        }
    }

    /// Waits `delay`, then restarts the container under its lock. False when it is to stay
    /// down (stopped or removed meanwhile), true when it runs again (started by us or by a
    /// person meanwhile).
    fn wait_to_restart(&self, id: &str, delay: Duration) -> Result<bool> {
        let until = Instant::now() + delay;
        loop {
            let now = Instant::now();
            if now < until {
                std::thread::sleep(BACKOFF_TICK.min(until - now));
            }
            let Ok(rec) = self.load(id) else {
                return Ok(false);
            };
            if rec.restart_cancelled || !rec.restarting {
                // A person stopped it, or started it (a manual start clears `restarting`).
                let running = self.runtime(&rec).is_some()
                    && matches!(
                        self.state(&rec).status,
                        Status::Running | Status::Paused | Status::Created
                    );
                return Ok(running);
            }
            if now < until {
                continue;
            }
            let _lock = self.lock(id)?;
            let mut rec = self.load(id)?;
            if rec.restart_cancelled || !rec.restarting {
                continue;
            }
            if let Some(ms) = std::env::var(RESTART_PAUSE_ENV)
                .ok()
                .and_then(|v| v.parse().ok())
            {
                std::thread::sleep(Duration::from_millis(ms).min(RESTART_PAUSE_LIMIT));
            }
            // `restarting` holds until the new run exists: between the two, the container
            // never reads as exited (docker's Restarting lasts until the start).
            let started = self.start_run(&mut rec, false);
            rec.restarting = false;
            self.save(&rec)?;
            return match started {
                // The run's `start` and `restart` events are the monitor's (see `start_event`).
                Ok(()) => Ok(true),
                Err(e) => {
                    tracing::warn!("restarting container {}: {e}", rec.id);
                    Ok(false)
                }
            };
        }
    }

    /// What docker's daemon does once a container stays down: `--rm` removes it, otherwise
    /// its address and published ports are given back.
    fn after_last_exit(&self, id: &str) -> Result<()> {
        let Ok(rec) = self.load(id) else {
            return Ok(());
        };
        if rec.restarting {
            let _ = self.update(id, |r| r.restarting = false);
        }
        match self.state(&rec).status {
            Status::Exited if rec.host.auto_remove => self.remove(&rec, false, true),
            Status::Exited => {
                // Under the container's lock, on the state read there: a person's start
                // meanwhile has a network of its own that must stay, and an `rm` (or a
                // `network rm` after it) comes after the `disconnect` event, not before.
                let _lock = match self.lock(id) {
                    Ok(l) => l,
                    Err(EngineError::NotFound(_)) => return Ok(()),
                    Err(e) => return Err(e),
                };
                let Ok(rec) = self.load(id) else {
                    return Ok(());
                };
                if self.state(&rec).status == Status::Exited && !rec.restarting {
                    self.disconnect(&rec);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Waits for the current run to end, probing its health meanwhile.
    fn watch_run(&self, id: &str) -> Result<()> {
        let Ok(rec) = self.load(id) else {
            return Ok(());
        };
        let Some(c) = self.runtime(&rec) else {
            return Ok(());
        };
        let check = rec
            .config
            .healthcheck
            .clone()
            .filter(|h| h.argv().is_some());
        let mut health = Health::starting();
        if check.is_some() {
            self.save_health(id, &health)?;
        }
        let Ok(mut attach) = c.attach(AttachOptions::default()) else {
            return Ok(());
        };
        // docker's: within the start period and while starting, every `start_interval`
        // (default 5 s); otherwise every `interval`.
        let started_at = self.state(&rec).started_at;
        let interval = |health: &Health| {
            check.as_ref().map(|h| {
                let start_period = Duration::from_nanos(h.start_period.max(0) as u64);
                if health.status == "starting" && since(&started_at) < start_period {
                    nanos(h.start_interval, Healthcheck::DEFAULT_START_INTERVAL)
                } else {
                    nanos(h.interval, Healthcheck::DEFAULT_INTERVAL)
                }
            })
        };
        let mut next_probe = interval(&health).map(|i| Instant::now() + i);
        loop {
            let timeout = next_probe.map(|t| t.saturating_duration_since(Instant::now()));
            match attach.wait_exit(timeout) {
                Ok(Some(_)) | Err(_) => return Ok(()),
                Ok(None) => {}
            }
            let Some(check) = &check else {
                continue;
            };
            let rec = match self.load(id) {
                Ok(r) => r,
                Err(_) => return Ok(()),
            };
            let st = self.state(&rec);
            let result = self.probe(&rec, check);
            let start_period = Duration::from_nanos(check.start_period.max(0) as u64);
            let within = since(&st.started_at) < start_period;
            if record_probe(&mut health, check, result, within) {
                self.event(&rec, &format!("health_status: {}", health.status));
            }
            // A run that ended meanwhile keeps its last health for inspect, as docker's.
            self.save_health(id, &health)?;
            next_probe = interval(&health).map(|i| Instant::now() + i);
        }
    }

    /// Runs the check's command in the container once.
    fn probe(&self, rec: &ContainerRecord, check: &Healthcheck) -> HealthResult {
        let start = berth_runtime::now_rfc3339();
        let timeout = nanos(check.timeout, Healthcheck::DEFAULT_TIMEOUT);
        let (code, output) = match self.run_probe(rec, check, timeout) {
            Ok(r) => r,
            Err(e) => (-1, e.to_string()),
        };
        HealthResult {
            start,
            end: berth_runtime::now_rfc3339(),
            exit_code: code,
            output,
        }
    }

    fn run_probe(
        &self,
        rec: &ContainerRecord,
        check: &Healthcheck,
        timeout: Duration,
    ) -> Result<(i64, String)> {
        let (mut reader, writer) = std::io::pipe().map_err(io_err(&self.dir(&rec.id)))?;
        let writer = OwnedFd::from(writer);
        let null = std::fs::File::open("/dev/null").map_err(io_err("/dev/null".as_ref()))?;
        let stdio = ExecStdio::Fds {
            stdin: OwnedFd::from(null),
            stdout: writer.try_clone().map_err(io_err("/dev/null".as_ref()))?,
            stderr: writer,
        };
        let opts = ExecOptions {
            cmd: check.argv().unwrap_or_default(),
            ..Default::default()
        };
        let mut process = self.exec(rec, &opts, stdio)?;
        let deadline = Instant::now() + timeout;
        let mut output = vec![];
        let mut buf = [0u8; 4096];
        let timed_out = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break true;
            }
            let mut fds = [libc::pollfd {
                fd: reader.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), 1, left.as_millis() as i32 + 1) };
            if r <= 0 {
                continue;
            }
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break false,
                Ok(n) => {
                    let room = HEALTH_OUTPUT.saturating_sub(output.len());
                    output.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        };
        // Its output closed (or the time ran out): the process itself has the rest of the
        // timeout to exit.
        let left = deadline.saturating_duration_since(Instant::now());
        let timed_out =
            timed_out || !super::exits_within(process.process.pid(), left).unwrap_or(false);
        if timed_out {
            // SAFETY: a signal to our own child, not yet reaped.
            unsafe { libc::kill(process.process.pid(), libc::SIGKILL) };
            let _ = process.wait();
            return Ok((
                -1,
                format!(
                    "Health check exceeded timeout ({})",
                    humantime_secs(timeout)
                ),
            ));
        }
        let exit = process.wait()?;
        Ok((
            i64::from(exit.code),
            String::from_utf8_lossy(&output).into_owned(),
        ))
    }
}

/// Go's duration text for whole and fractional seconds (`30s`, `1.5s`, `500ms`).
fn humantime_secs(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_minute_and_resets_after_a_steady_run() {
        let mut b = Backoff::default();
        let short = Duration::from_secs(1);
        let ms: Vec<u128> = (0..12).map(|_| b.next(short).as_millis()).collect();
        assert_eq!(
            ms,
            [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000]
        );
        assert_eq!(b.next(Duration::from_secs(10)).as_millis(), 100);
        assert_eq!(b.next(short).as_millis(), 200);
    }

    #[test]
    fn probes_count_failures_after_the_start_period() {
        let check = Healthcheck {
            test: vec!["CMD".into(), "true".into()],
            retries: 2,
            ..Default::default()
        };
        let result = |code| HealthResult {
            start: String::new(),
            end: String::new(),
            exit_code: code,
            output: format!("{code}\n"),
        };
        let mut h = Health::starting();
        // Failures within the start period leave it starting.
        assert!(!record_probe(&mut h, &check, result(1), true));
        assert_eq!((h.status.as_str(), h.failing_streak), ("starting", 0));
        assert!(!record_probe(&mut h, &check, result(1), false));
        assert_eq!(h.failing_streak, 1);
        assert!(record_probe(&mut h, &check, result(-1), false));
        assert_eq!(h.status, "unhealthy");
        assert!(record_probe(&mut h, &check, result(0), false));
        assert_eq!((h.status.as_str(), h.failing_streak), ("healthy", 0));
        // Once healthy, the start period no longer forgives.
        record_probe(&mut h, &check, result(1), true);
        assert_eq!(h.failing_streak, 1);
        for _ in 0..5 {
            record_probe(&mut h, &check, result(3), false);
        }
        assert_eq!(h.log.len(), HEALTH_LOG_ENTRIES);
        assert_eq!(h.failing_streak, 6);
    }

    #[test]
    fn policies_decide_as_docker_does() {
        let mut rec: ContainerRecord = serde_json::from_value(serde_json::json!({
            "id": "0".repeat(64), "name": "x", "created": "", "image": "bb",
            "image_id": format!("sha256:{}", "0".repeat(64)), "layers": [],
            "config": {"hostname": "", "user": "", "env": [], "cmd": ["true"],
                "entrypoint": [], "working_dir": "", "tty": false, "open_stdin": false},
            "host": {"binds": [], "network": "none", "auto_remove": false, "memory": 0,
                "memory_swap": 0, "nano_cpus": 0, "pids_limit": 0, "readonly_rootfs": false},
            "mounts": []
        }))
        .unwrap();
        let cases = [
            (RestartPolicy::No, 1, false, false),
            (RestartPolicy::Always, 0, false, true),
            (RestartPolicy::Always, 0, true, true),
            (RestartPolicy::UnlessStopped, 0, false, true),
            (RestartPolicy::UnlessStopped, 0, true, false),
            (RestartPolicy::OnFailure(0), 0, false, false),
            (RestartPolicy::OnFailure(0), 1, false, true),
            (RestartPolicy::OnFailure(2), 1, false, true),
        ];
        for (policy, code, manual, want) in cases {
            rec.restart_policy = policy;
            rec.manually_stopped = manual;
            assert_eq!(
                should_restart(&rec, code),
                want,
                "{policy:?} {code} {manual}"
            );
        }
        rec.restart_policy = RestartPolicy::OnFailure(2);
        rec.restart_count = 2;
        assert!(!should_restart(&rec, 1));
        rec.restart_policy = RestartPolicy::Always;
        rec.restart_cancelled = true;
        assert!(!should_restart(&rec, 1));
    }

    #[test]
    fn restart_policies_parse_with_dockers_messages() {
        assert_eq!(RestartPolicy::parse("no"), Ok(RestartPolicy::No));
        assert_eq!(
            RestartPolicy::parse("on-failure:3"),
            Ok(RestartPolicy::OnFailure(3))
        );
        assert_eq!(
            RestartPolicy::parse("on-failure"),
            Ok(RestartPolicy::OnFailure(0))
        );
        assert_eq!(
            RestartPolicy::parse("unless-stopped"),
            Ok(RestartPolicy::UnlessStopped)
        );
        for (bad, msg) in [
            ("bogus", "invalid restart policy 'bogus'"),
            (
                "always:3",
                "maximum retry count cannot be used with restart policy 'always'",
            ),
            ("on-failure:-1", "maximum retry count cannot be negative"),
            (
                ":3",
                "invalid restart policy format: no policy provided before colon",
            ),
            (
                "on-failure:x",
                "invalid restart policy format: maximum retry count must be an integer",
            ),
        ] {
            assert_eq!(RestartPolicy::parse(bad), Err(msg.to_string()));
        }
    }
}
