//! The collection lease: `gc/lease`, one small object that says who collects, until when, and
//! whether its sweep (the deleting phase) has begun.
//!
//! Taken with the backend's conditional writes (S3's `If-None-Match: *` to create,
//! `If-Match: <etag>` to renew or take over an expired lease; an `flock`ed compare on a file
//! system), so of several processes over one bucket exactly one collects, and no other service
//! is needed. The holder renews it every [`RENEW_EVERY`] and stops deleting once it has gone
//! [`SAFE_FOR`] without a successful renewal, well before anyone else may take it over: a
//! paused or partitioned collector cannot delete under a new one. A holder that died is
//! recognised at once when it ran on this host (same boot, its process gone), and by expiry
//! otherwise. The object exists only while a collection runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::error::{Result, StoreError};

pub(crate) const LEASE_KEY: &str = "gc/lease";
/// How long a lease lasts without renewal.
pub(crate) const TTL: Duration = Duration::from_secs(60);
const RENEW_EVERY: Duration = Duration::from_secs(10);
/// How long after its last renewal a holder still deletes.
const SAFE_FOR: Duration = Duration::from_secs(30);

/// What `gc/lease` holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Record {
    /// A fresh id per collection.
    pub owner: String,
    pub host: String,
    /// `/proc/sys/kernel/random/boot_id`: a holder on this host and boot can be checked.
    pub boot: String,
    pub pid: u32,
    /// The holder's process start time (clock ticks since boot), against pid reuse.
    pub started: u64,
    /// Seconds since the epoch after which the lease is free.
    pub expires: f64,
    /// The sweep in progress: its doomed list is `gc/doomed/<sweep>`.
    #[serde(default)]
    pub sweep: Option<String>,
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// A process's start time in clock ticks since boot (field 22 of `/proc/PID/stat`).
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether process `pid`, started at `started`, still runs on this host. When its `/proc`
/// entry cannot be read (another user's, hidden), the kernel is asked; only a certain "no
/// such process" counts as dead.
fn process_alive(pid: u32, started: u64) -> bool {
    match process_start(pid) {
        Some(s) => s == started,
        None => {
            let Ok(pid) = libc::pid_t::try_from(pid) else {
                return true;
            };
            // SAFETY: signal 0 only checks that the process exists.
            let r = unsafe { libc::kill(pid, 0) };
            r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
        }
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

impl Record {
    fn mine(owner: &str) -> Record {
        let pid = std::process::id();
        Record {
            owner: owner.to_string(),
            host: host_name(),
            boot: boot_id(),
            pid,
            started: process_start(pid).unwrap_or(0),
            expires: now_secs() + TTL.as_secs_f64(),
            sweep: None,
        }
    }

    /// Whether the holder may still be collecting.
    pub fn live(&self) -> bool {
        if now_secs() >= self.expires {
            return false;
        }
        let here = !self.boot.is_empty() && self.boot == boot_id();
        !here || process_alive(self.pid, self.started)
    }

    /// Who holds it, for a person.
    pub fn holder(&self) -> String {
        format!("process {} on {}", self.pid, self.host)
    }

    pub fn parse(data: &[u8]) -> Option<Record> {
        serde_json::from_slice(data).ok()
    }

    fn bytes(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("the lease serialises"))
    }
}

/// The current lease, if a live one exists.
pub(crate) async fn current(backend: &dyn Backend) -> Result<Option<Record>> {
    let data = match backend.read(LEASE_KEY).await {
        Ok(d) => d,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(Record::parse(&data).filter(Record::live))
}

struct Held {
    record: Record,
    etag: String,
}

/// A lease this process holds; renewed in the background until released.
pub(crate) struct Lease {
    backend: Arc<dyn Backend>,
    held: Arc<tokio::sync::Mutex<Held>>,
    lost: Arc<AtomicBool>,
    renewed: Arc<Mutex<Instant>>,
    renewer: tokio::task::JoinHandle<()>,
}

/// Someone else collects.
#[derive(Debug, Clone)]
pub(crate) struct Busy(pub String);

impl Lease {
    /// Takes the lease, or says who holds it.
    pub async fn acquire(backend: Arc<dyn Backend>) -> Result<std::result::Result<Lease, Busy>> {
        let owner = uuid::Uuid::new_v4().simple().to_string();
        loop {
            let mine = Record::mine(&owner);
            if let Some(etag) = backend.create_new(LEASE_KEY, mine.bytes()).await? {
                return Ok(Ok(Lease::start(backend, mine, etag)));
            }
            let Some(theirs) = backend.read_versioned(LEASE_KEY).await? else {
                continue; // released in between
            };
            if let Some(r) = Record::parse(&theirs.data).filter(Record::live) {
                return Ok(Err(Busy(r.holder())));
            }
            // Expired, or its holder died: take it over, unless someone else just did.
            if let Some(etag) = backend
                .replace(LEASE_KEY, mine.bytes(), &theirs.etag)
                .await?
            {
                return Ok(Ok(Lease::start(backend, mine, etag)));
            }
        }
    }

    fn start(backend: Arc<dyn Backend>, record: Record, etag: String) -> Lease {
        let held = Arc::new(tokio::sync::Mutex::new(Held { record, etag }));
        let lost = Arc::new(AtomicBool::new(false));
        let renewed = Arc::new(Mutex::new(Instant::now()));
        let renewer = tokio::spawn({
            let (backend, held, lost, renewed) =
                (backend.clone(), held.clone(), lost.clone(), renewed.clone());
            async move {
                loop {
                    tokio::time::sleep(RENEW_EVERY).await;
                    let mut h = held.lock().await;
                    match write(&*backend, &mut h, None).await {
                        Ok(Some(at)) => *renewed.lock().unwrap() = at,
                        Ok(None) => {
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        // A failed renewal is tried again; the holder stops deleting when
                        // the last success is too old.
                        Err(e) => tracing::warn!("renewing the collection lease: {e}"),
                    }
                }
            }
        });
        Lease {
            backend,
            held,
            lost,
            renewed,
            renewer,
        }
    }

    /// Fails unless the lease is certainly still ours: checked before every deletion.
    pub fn check(&self) -> Result<()> {
        let fresh = self.renewed.lock().unwrap().elapsed() < SAFE_FOR;
        if self.lost.load(Ordering::SeqCst) || !fresh {
            return Err(StoreError::LeaseLost);
        }
        Ok(())
    }

    /// Records the sweep in progress (or its end) in the lease, renewing it.
    pub async fn set_sweep(&self, sweep: Option<String>) -> Result<()> {
        let mut h = self.held.lock().await;
        match write(&*self.backend, &mut h, Some(sweep)).await? {
            Some(at) => {
                *self.renewed.lock().unwrap() = at;
                Ok(())
            }
            None => {
                self.lost.store(true, Ordering::SeqCst);
                Err(StoreError::LeaseLost)
            }
        }
    }

    /// Gives the lease up.
    pub async fn release(self) -> Result<()> {
        self.renewer.abort();
        let h = self.held.lock().await;
        if self.check().is_err() {
            return Ok(());
        }
        // Only our own, still valid lease is removed: one taken over is not ours to delete.
        if let Some(v) = self.backend.read_versioned(LEASE_KEY).await? {
            if v.etag == h.etag {
                self.backend.delete(LEASE_KEY).await?;
            }
        }
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// Rewrites the lease with a new expiry (and sweep, when given); returns when the write
/// began, or `None` when the lease is no longer ours.
async fn write(
    backend: &dyn Backend,
    h: &mut Held,
    sweep: Option<Option<String>>,
) -> Result<Option<Instant>> {
    let mut next = h.record.clone();
    next.expires = now_secs() + TTL.as_secs_f64();
    if let Some(s) = sweep {
        next.sweep = s;
    }
    let started = Instant::now();
    match backend.replace(LEASE_KEY, next.bytes(), &h.etag).await? {
        Some(etag) => {
            h.record = next;
            h.etag = etag;
            Ok(Some(started))
        }
        None => Ok(None),
    }
}
