//! Garbage collection: the store's one answer to "is this blob needed?", and the only code
//! that deletes blobs.
//!
//! A blob is live while any of these needs it: a tag, a manifest link in any repository (tagged
//! or not, until a rule removes it), an index's child, a referrer, a hold (`holds/<name>`: the
//! client's images and what its containers run), or a push in flight (a blob or blob link
//! younger than [`Policy::delay`]; upload sessions keep their chunks under `uploads/`, which
//! only expiry removes). `berth rmi`, `image prune` and the registry's collection all ask
//! [`collect`], so neither side deletes what the other still needs.
//!
//! A collection runs online, beside pushes, on a file system or S3:
//! 1. it takes the lease ([`lease`]): one collector per store, however many processes;
//! 2. it applies the rules ([`rules`]): retention, untagged manifests, stale blob links,
//!    expired uploads;
//! 3. it marks: one scan of `repositories/` and `holds/`, every manifest read once;
//! 4. the doomed are the blobs that are not live and older than the delay: it writes their
//!    list to `gc/doomed/<sweep>`, records the sweep in the lease, and marks again, so that a
//!    link written before the sweep was announced is seen (a second scan, page by page,
//!    reading only the manifests the first mark had not walked);
//! 5. it deletes the doomed in batches, each after reading the rescues that writers who
//!    linked a doomed blob since left ([`guard`]), and only while its lease is fresh;
//! 6. it ends the sweep and gives the lease up.
//!
//! Killed at any point, it leaves a store where nothing live is gone: rules delete metadata
//! one key at a time in an order that never leaves a tag without its manifest link, and blobs
//! go only when dead; the next collection takes the expired lease (at once, when the dead
//! holder ran on the same host) and finishes the job.

pub(crate) mod guard;
pub(crate) mod lease;
pub(crate) mod mark;
pub mod rules;

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures::TryStreamExt;
use serde::{Deserialize, Deserializer};

use crate::backend::{list_all, Backend};
use crate::blobs::blob_key;
use crate::digest::Digest;
use crate::error::{Result, StoreError};
use crate::repos::{blob_link_key, manifest_key, tag_key};
use crate::Store;

use self::lease::Lease;
use self::mark::{compact_from_path, gather, live, manifest_roots, CompactDigest, RefsCache};

/// Blobs deleted per batch (S3's DeleteObjects takes a thousand keys).
const SWEEP_BATCH: usize = 1000;

/// What a collection may delete, and when (a registry config's `[gc]` section).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// How often a server (`berth serve`) collects in the background; zero: never. Default
    /// 24h. A collection itself does not read it.
    #[serde(default = "default_interval", deserialize_with = "duration")]
    pub interval: Duration,
    /// Blobs and blob links younger than this are kept: a push's blobs arrive before its
    /// manifest. Default one hour.
    #[serde(default = "default_delay", deserialize_with = "duration")]
    pub delay: Duration,
    /// Untagged manifests whose link is older than this are deleted (with their referrers);
    /// absent: untagged manifests are kept.
    #[serde(default, deserialize_with = "optional_duration")]
    pub untagged: Option<Duration>,
    /// Upload sessions untouched this long are removed with their chunks; absent: never.
    /// Default one day.
    #[serde(default = "default_uploads", deserialize_with = "optional_duration")]
    pub uploads: Option<Duration>,
    /// Which tags go, per repository pattern; the first rule that matches a repository
    /// applies to it.
    #[serde(default)]
    pub retention: Vec<Retention>,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            interval: default_interval(),
            delay: default_delay(),
            untagged: None,
            uploads: default_uploads(),
            retention: Vec::new(),
        }
    }
}

fn default_interval() -> Duration {
    Duration::from_secs(24 * 3600)
}

fn default_delay() -> Duration {
    Duration::from_secs(3600)
}

fn default_uploads() -> Option<Duration> {
    Some(Duration::from_secs(24 * 3600))
}

/// A retention rule: in the repositories it names, a tag is deleted when no `keep` pattern
/// matches it, it is not among the `keep_newest` most recently pushed, and it is older than
/// `delete_older_than` (each condition only when set; at least one of the last two is).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Repository patterns (`*` matches anything, `/` included).
    pub repositories: Vec<String>,
    /// Tag patterns that are always kept; `semver` stands for semantic versions.
    #[serde(default)]
    pub keep: Vec<String>,
    pub keep_newest: Option<usize>,
    #[serde(default, deserialize_with = "optional_duration")]
    pub delete_older_than: Option<Duration>,
}

impl Policy {
    /// Checks what serde cannot: a rule that names no limit would delete every tag.
    pub fn validate(&self) -> std::result::Result<(), String> {
        for (i, r) in self.retention.iter().enumerate() {
            if r.repositories.is_empty() {
                return Err(format!(
                    "gc.retention[{i}].repositories must name at least one pattern"
                ));
            }
            if r.keep_newest.is_none() && r.delete_older_than.is_none() {
                return Err(format!(
                    "gc.retention[{i}] needs keep_newest or delete_older_than (or both)"
                ));
            }
        }
        Ok(())
    }
}

/// Parses `90d`, `12h`, `30m`, `45s`, `500ms`, `1h30m` or a number of seconds.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let bad = || format!("{text:?} is not a duration (write 90d, 12h, 30m, 45s, 500ms or 1h30m)");
    let mut total = Duration::ZERO;
    let mut rest = t;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let (number, tail) = rest.split_at(digits);
        let letters = tail.len()
            - tail
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let (unit, tail) = tail.split_at(letters);
        let n: u64 = number.parse().map_err(|_| bad())?;
        let one = match unit {
            "d" => Duration::from_secs(86400),
            "h" => Duration::from_secs(3600),
            "m" => Duration::from_secs(60),
            "s" => Duration::from_secs(1),
            "ms" => Duration::from_millis(1),
            _ => return Err(bad()),
        };
        let part = one
            .checked_mul(u32::try_from(n).map_err(|_| bad())?)
            .ok_or_else(bad)?;
        total = total.checked_add(part).ok_or_else(bad)?;
        rest = tail;
    }
    Ok(total)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum DurationText {
    Seconds(u64),
    Text(String),
}

/// Deserializes a duration written as text (`"7d"`) or seconds (`3600`).
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Duration, D::Error> {
    match DurationText::deserialize(d)? {
        DurationText::Seconds(s) => Ok(Duration::from_secs(s)),
        DurationText::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
    }
}

/// [`duration`], optional.
pub fn optional_duration<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// What one collection looks at.
#[derive(Debug, Clone, Default)]
pub enum Scope {
    /// Every blob, after the policy's rules (the registry's collection).
    #[default]
    All,
    /// Only these blobs, and no rules: what `rmi` leaves behind. Their age does not protect
    /// them; everything else that makes a blob live does.
    Only(BTreeSet<Digest>),
}

/// Where a collection stands, for a progress line.
pub trait Progress: Send + Sync {
    /// `step` is what is being done ("marking", "sweeping"), `done` of `total` units.
    fn update(&self, step: &str, done: u64, total: Option<u64>);
}

/// How to run a collection.
#[derive(Clone, Default)]
pub struct Options {
    pub scope: Scope,
    /// Plan and report, delete nothing (and take no lease).
    pub dry_run: bool,
    /// How long to wait for another collection to finish; none: fail at once when busy.
    pub wait: Option<Duration>,
    pub progress: Option<Arc<dyn Progress>>,
}

/// What a collection deleted (or, in a dry run, would delete).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub dry_run: bool,
    /// `repository:tag`, by retention.
    pub tags: Vec<String>,
    /// `repository@digest`: untagged manifests and the referrers that followed them.
    pub manifests: Vec<String>,
    pub blobs: u64,
    pub bytes: u64,
    /// Blob links no manifest needed (abandoned pushes).
    pub blob_links: u64,
    pub uploads: u64,
    /// Writes that killed writers left half done (temporary files, incomplete multipart
    /// uploads), expired with the upload sessions.
    pub abandoned_writes: u64,
    /// Blobs a writer linked while they were being swept, and so kept.
    pub rescued: u64,
    pub duration: Duration,
}

fn report_progress(options: &Options, step: &str, done: u64, total: Option<u64>) {
    if let Some(p) = &options.progress {
        p.update(step, done, total);
    }
}

/// Runs one collection (see the module's text).
pub async fn collect(store: &Store, policy: &Policy, options: &Options) -> Result<Report> {
    let started = Instant::now();
    let now = SystemTime::now();
    let backend = store.backend().clone();
    let lease = if options.dry_run {
        None
    } else {
        Some(take_lease(&backend, options.wait).await?)
    };
    let result = run(store, policy, options, now, lease.as_ref()).await;
    if let Some(lease) = lease {
        let ended = lease.set_sweep(None).await;
        if ended.is_ok() && result.is_ok() {
            // Doomed lists and rescues of this sweep and of any that died before it.
            let leftovers: Vec<String> = list_all(&*backend, "gc/")
                .await?
                .into_iter()
                .filter(|k| k != lease::LEASE_KEY)
                .collect();
            backend.delete_many(&leftovers).await?;
        }
        lease.release().await?;
        ended?;
    }
    let mut report = result?;
    report.duration = started.elapsed();
    Ok(report)
}

async fn take_lease(backend: &Arc<dyn Backend>, wait: Option<Duration>) -> Result<Lease> {
    let deadline = Instant::now() + wait.unwrap_or_default();
    loop {
        match Lease::acquire(backend.clone()).await? {
            Ok(lease) => return Ok(lease),
            Err(lease::Busy(holder)) if Instant::now() >= deadline => {
                return Err(StoreError::CollectionBusy(holder))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn run(
    store: &Store,
    policy: &Policy,
    options: &Options,
    now: SystemTime,
    lease: Option<&Lease>,
) -> Result<Report> {
    let backend = store.backend();
    let mut report = Report {
        dry_run: options.dry_run,
        ..Report::default()
    };
    let check = || lease.map_or(Ok(()), Lease::check);
    let fresh_links = now
        .checked_sub(policy.delay)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let progress = |n: u64| report_progress(options, "marking", n, None);

    // The rules.
    let mut meta = gather(&**backend).await?;
    let mut refs = RefsCache::default();
    refs.load(&**backend, manifest_roots(&meta), &progress)
        .await?;
    if matches!(options.scope, Scope::All) {
        let plan = rules::plan(&meta, &refs, policy, now);
        report.tags = plan
            .tags
            .iter()
            .map(|t| format!("{}:{}", t.repo, t.tag))
            .collect();
        report.manifests = plan
            .manifests
            .iter()
            .map(|l| format!("{}@{}", l.repo, l.digest))
            .collect();
        let uploads = match policy.uploads {
            Some(age) => rules::expired_uploads(&**backend, age, now).await?,
            None => (0, Vec::new()),
        };
        report.uploads = uploads.0 as u64;
        if !options.dry_run {
            check()?;
            carry_out(&**backend, &plan, &check).await?;
            check()?;
            backend.delete_many(&uploads.1).await?;
        }
        // What killed writers left (by the same age as sessions: a session's chunk being
        // written is younger than its session's last touch).
        if let Some(age) = policy.uploads {
            report.abandoned_writes = backend
                .expire_abandoned_writes(age, now, options.dry_run)
                .await?;
        }
        plan.apply_to(&mut meta);
        if !options.dry_run {
            relink_tagged(store, &meta).await?;
        }
    }
    // Blob links: the fresh keep their blobs; the stale (with the rules) go, last.
    let all = matches!(options.scope, Scope::All);
    let (fresh, stale) = rules::blob_links(&**backend, &meta, &refs, fresh_links, all).await?;
    meta.blob_links = fresh;
    report.blob_links = stale.len() as u64;
    if !options.dry_run && !stale.is_empty() {
        check()?;
        delete_unchanged_links(&**backend, &stale, &check).await?;
    }
    drop(stale);
    // The mark, and the doomed. The first mark's manifests and references go once the live
    // set is built: the second mark needs only which manifests it walked.
    let first = live(meta, refs, fresh_links);
    let (live1, walked) = (first.live, first.walked);
    give_back_freed_memory();
    let only: Option<HashSet<CompactDigest>> = match &options.scope {
        Scope::All => None,
        Scope::Only(set) => Some(set.iter().map(CompactDigest::new).collect()),
    };
    let mut doomed: Vec<(CompactDigest, u64)> = Vec::new();
    let mut pages = backend.scan("blobs/");
    while let Some(page) = pages.try_next().await? {
        for e in page {
            let Some(d) = e.key.strip_prefix("blobs/").and_then(compact_from_path) else {
                continue;
            };
            let wanted = match &only {
                Some(set) => set.contains(&d),
                // Unknown ages count as new.
                None => e.modified.is_some_and(|m| m < fresh_links),
            };
            if wanted && !live1.contains_compact(&d) {
                doomed.push((d, e.size));
            }
        }
    }
    drop(live1);
    give_back_freed_memory();
    // Sorted, for the second mark's questions; sized to fit, for the rest of the sweep.
    doomed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    doomed.shrink_to_fit();
    if options.dry_run || doomed.is_empty() {
        report.blobs = doomed.len() as u64;
        report.bytes = doomed.iter().map(|(_, s)| s).sum();
        return Ok(report);
    }
    let lease = lease.expect("a collection that deletes holds the lease");

    // The sweep: announce it, mark again, delete what is still dead.
    let sweep = uuid::Uuid::new_v4().simple().to_string();
    write_doomed(&**backend, &guard::doomed_key(&sweep), &doomed).await?;
    lease.set_sweep(Some(sweep)).await?;
    mark::still_dead(&**backend, &walked, fresh_links, &mut doomed).await?;
    drop(walked);
    give_back_freed_memory();
    let total = doomed.len() as u64;
    let mut done = 0;
    for batch in doomed.chunks(SWEEP_BATCH) {
        report_progress(options, "sweeping", done, Some(total));
        let rescued: HashSet<String> = list_all(&**backend, "gc/rescue/")
            .await?
            .into_iter()
            .filter_map(|k| {
                Some(blob_key(&crate::repos::digest_from_path(
                    k.strip_prefix("gc/rescue/")?,
                )?))
            })
            .collect();
        let mut keys = Vec::with_capacity(batch.len());
        for (d, size) in batch {
            let key = blob_key(&d.digest());
            if rescued.contains(&key) {
                report.rescued += 1;
                continue;
            }
            keys.push(key);
            report.blobs += 1;
            report.bytes += size;
        }
        lease.check()?;
        backend.delete_many(&keys).await?;
        done += batch.len() as u64;
    }
    report_progress(options, "sweeping", done, Some(total));
    Ok(report)
}

/// Gives the pages the allocator holds free back to the system. glibc keeps what a phase
/// freed (the rules' maps, the first mark's links) for later, and the next phase's structures
/// have other sizes: without this a collection's peak RSS is its largest phase plus the
/// leftovers of the ones before (2 MB more over 100,000 blobs, `bench/gc.sh`).
fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only reads and trims the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Writes the doomed list (a digest a line) in pieces: 100,000 doomed blobs are 7 MB of
/// text, which a collection need not hold at once.
async fn write_doomed(
    backend: &dyn Backend,
    key: &str,
    doomed: &[(CompactDigest, u64)],
) -> Result<()> {
    let mut w = backend.writer(key).await?;
    for part in doomed.chunks(1024) {
        let mut text = String::with_capacity(part.len() * 72);
        for (d, _) in part {
            text.push_str(&d.to_string());
            text.push('\n');
        }
        w.write(Bytes::from(text)).await?;
    }
    w.commit().await?;
    Ok(())
}

/// Links again the manifests that tags point at in repositories that lost their link (a
/// rule deleted it while a push was tagging it): the tag keeps the content live in any case,
/// and this keeps it reachable by its tag.
async fn relink_tagged(store: &Store, meta: &mark::Meta) -> Result<()> {
    let linked: HashSet<(&crate::name::RepoName, &CompactDigest)> = meta
        .manifests
        .iter()
        .map(|l| (&*l.repo, &l.digest))
        .collect();
    for t in &meta.tags {
        if linked.contains(&(&*t.repo, &t.target)) {
            continue;
        }
        let target = t.target.digest();
        let body = match store.blobs.read(&target).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Kind {
            media_type: Option<String>,
            manifests: Option<serde_json::Value>,
        }
        let kind: Option<Kind> = serde_json::from_slice(&body).ok();
        let media_type = match kind {
            Some(Kind {
                media_type: Some(m),
                ..
            }) => m,
            Some(Kind {
                manifests: Some(_), ..
            }) => "application/vnd.oci.image.index.v1+json".to_string(),
            _ => "application/vnd.oci.image.manifest.v1+json".to_string(),
        };
        tracing::warn!(
            "{}:{} pointed at {} which its repository no longer linked: linked again",
            t.repo,
            t.tag,
            t.target
        );
        store
            .repos
            .link_manifest(&t.repo, &target, &media_type, &body)
            .await?;
    }
    Ok(())
}

/// Deletes what the rules planned, each key only if it did not change since it was read
/// (a tag moved, a manifest pushed again): tags first, then referrer records and manifest
/// links (blob links come after, [`delete_unchanged_links`]), so that no tag is left
/// pointing at a manifest its repository lost.
async fn carry_out(
    backend: &dyn Backend,
    plan: &rules::Plan,
    check: &(dyn Fn() -> Result<()> + Sync),
) -> Result<()> {
    let mut keys = Vec::new();
    for t in &plan.tags {
        if let Some(k) = unchanged(backend, tag_key(&t.repo, &t.tag), t.modified).await? {
            keys.push(k);
        }
    }
    check()?;
    backend.delete_many(&keys).await?;
    let referrers: Vec<String> = plan
        .referrers
        .iter()
        .map(|r| {
            format!(
                "repositories/{}/_referrers/{}/{}",
                r.repo,
                r.subject.hex(),
                r.referrer.hex()
            )
        })
        .collect();
    check()?;
    backend.delete_many(&referrers).await?;
    let mut keys = Vec::new();
    for l in &plan.manifests {
        if let Some(k) = unchanged(
            backend,
            manifest_key(&l.repo, &l.digest.digest()),
            l.modified,
        )
        .await?
        {
            keys.push(k);
        }
    }
    check()?;
    backend.delete_many(&keys).await?;
    Ok(())
}

/// Deletes blob links, each only if it did not change since it was listed.
async fn delete_unchanged_links(
    backend: &dyn Backend,
    links: &[mark::Link],
    check: &(dyn Fn() -> Result<()> + Sync),
) -> Result<()> {
    let mut keys = Vec::new();
    for l in links {
        let key = blob_link_key(&l.repo, &l.digest.digest());
        if let Some(k) = unchanged(backend, key, l.modified).await? {
            keys.push(k);
        }
    }
    check()?;
    backend.delete_many(&keys).await?;
    Ok(())
}

/// `key` when it still has the modification time `modified` (to the second: listings and
/// HEAD give times at different precisions, S3 milliseconds and seconds).
async fn unchanged(
    backend: &dyn Backend,
    key: String,
    modified: Option<SystemTime>,
) -> Result<Option<String>> {
    let secs = |t: Option<SystemTime>| {
        t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
    };
    let now = backend.stat(&key).await?;
    Ok(now
        .is_some_and(|m| secs(m.modified) == secs(modified))
        .then_some(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let table = [
            ("90d", Some(90 * 86400)),
            ("12h", Some(12 * 3600)),
            ("1h30m", Some(5400)),
            ("45s", Some(45)),
            ("3600", Some(3600)),
            ("0", Some(0)),
            ("", None),
            ("h", None),
            ("5", Some(5)),
            ("5x", None),
            ("1d2", None),
            ("-1h", None),
            ("500ms", Some(0)),
            ("1m30s", Some(90)),
        ];
        for (text, want) in table {
            assert_eq!(
                parse_duration(text).ok().map(|d| d.as_secs()),
                want,
                "{text}"
            );
        }
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    }
}
