//! The registry's side of garbage collection: the background schedule of `berth serve` and
//! the counters `/metrics` shows. The collection itself is the store's
//! ([`berth_storage::gc`]), the same one `berth gc` and the client's `rmi` run, so one store
//! shared by several replicas and a client has one collector at a time and one notion of
//! what is live.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_storage::gc::{self, Options, Policy, Report};
use berth_storage::{Store, StoreError};

/// What collections in this process did, for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    pub runs: AtomicU64,
    pub failures: AtomicU64,
    /// Runs skipped because another process was collecting.
    pub skipped: AtomicU64,
    pub blobs: AtomicU64,
    pub bytes: AtomicU64,
    pub manifests: AtomicU64,
    pub tags: AtomicU64,
    pub uploads: AtomicU64,
    /// Milliseconds the last run took.
    pub last_duration_ms: AtomicU64,
    /// Seconds since the epoch when a run last succeeded (0: never).
    pub last_success: AtomicU64,
}

impl Counters {
    /// Counts one finished collection.
    pub fn record(&self, result: &Result<Report, StoreError>) {
        match result {
            Ok(r) => {
                self.runs.fetch_add(1, Ordering::Relaxed);
                self.blobs.fetch_add(r.blobs, Ordering::Relaxed);
                self.bytes.fetch_add(r.bytes, Ordering::Relaxed);
                self.manifests
                    .fetch_add(r.manifests.len() as u64, Ordering::Relaxed);
                self.tags.fetch_add(r.tags.len() as u64, Ordering::Relaxed);
                self.uploads
                    .fetch_add(r.uploads + r.abandoned_writes, Ordering::Relaxed);
                self.last_duration_ms
                    .store(r.duration.as_millis() as u64, Ordering::Relaxed);
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                self.last_success.store(now, Ordering::Relaxed);
            }
            Err(StoreError::CollectionBusy(_)) => {
                self.skipped.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.runs.fetch_add(1, Ordering::Relaxed);
                self.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The counters in Prometheus' text format.
    pub fn render(&self, out: &mut String) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            ));
        };
        metric(
            "berth_gc_runs_total",
            "counter",
            "Garbage collections run by this process.",
            get(&self.runs).to_string(),
        );
        metric(
            "berth_gc_failures_total",
            "counter",
            "Garbage collections that failed.",
            get(&self.failures).to_string(),
        );
        metric(
            "berth_gc_skipped_total",
            "counter",
            "Scheduled collections skipped because another process was collecting.",
            get(&self.skipped).to_string(),
        );
        metric(
            "berth_gc_blobs_deleted_total",
            "counter",
            "Blobs deleted by garbage collection.",
            get(&self.blobs).to_string(),
        );
        metric(
            "berth_gc_bytes_freed_total",
            "counter",
            "Bytes freed by garbage collection.",
            get(&self.bytes).to_string(),
        );
        metric(
            "berth_gc_manifests_deleted_total",
            "counter",
            "Untagged manifests (and their referrers) deleted by rule.",
            get(&self.manifests).to_string(),
        );
        metric(
            "berth_gc_tags_deleted_total",
            "counter",
            "Tags deleted by retention rules.",
            get(&self.tags).to_string(),
        );
        metric(
            "berth_gc_uploads_expired_total",
            "counter",
            "Abandoned upload sessions (and writes killed half way) removed.",
            get(&self.uploads).to_string(),
        );
        metric(
            "berth_gc_last_duration_seconds",
            "gauge",
            "How long the last successful collection took.",
            format!("{:.3}", get(&self.last_duration_ms) as f64 / 1000.0),
        );
        metric(
            "berth_gc_last_success_timestamp_seconds",
            "gauge",
            "When a collection last succeeded (seconds since the epoch; 0: never).",
            get(&self.last_success).to_string(),
        );
    }
}

/// Runs one collection by the policy and counts it.
pub async fn collect_once(
    store: &Store,
    policy: &Policy,
    counters: &Counters,
) -> Result<Report, StoreError> {
    let result = gc::collect(store, policy, &Options::default()).await;
    counters.record(&result);
    match &result {
        Ok(r) => tracing::info!(
            blobs = r.blobs,
            bytes = r.bytes,
            manifests = r.manifests.len(),
            tags = r.tags.len(),
            uploads = r.uploads,
            abandoned_writes = r.abandoned_writes,
            seconds = r.duration.as_secs_f64(),
            "garbage collection done"
        ),
        Err(StoreError::CollectionBusy(holder)) => {
            tracing::info!("garbage collection skipped: {holder} is collecting")
        }
        Err(e) => tracing::error!("garbage collection failed: {e}"),
    }
    result
}

/// Collects every `interval` until the task is dropped. Replicas over one bucket each run the
/// schedule; the lease lets one collect and the others skip.
pub async fn schedule(store: Store, policy: Policy, interval: Duration, counters: Arc<Counters>) {
    loop {
        tokio::time::sleep(interval).await;
        let _ = collect_once(&store, &policy, &counters).await;
    }
}
