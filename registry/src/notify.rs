//! Webhooks: what happened (push, pull, delete, mount), sent to the endpoints of
//! `[notifications]` in CNCF distribution's notification envelope, so receivers written for
//! distribution work unchanged.
//!
//! Each endpoint has a queue on disk, a directory under `[notifications] queue`: an event that
//! passes the endpoint's filter is a file there (written whole, then renamed into place)
//! before the request that caused it is answered, and a file goes only once the endpoint
//! answered 2xx to a POST that carried it. So events wait out an endpoint that is down and a
//! restart of berth; a delivery the endpoint acknowledged is not sent again unless berth was
//! killed between the acknowledgement and the removal (each event has an `id` for that case).
//! Failed deliveries are retried with a backoff that doubles from `backoff` up to
//! `max_backoff`. One process delivers a queue at a time (an `flock` on it).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, Method, StatusCode};
use serde::{Deserialize, Serialize};

use crate::routes::{self, Route};

/// The envelope's content type.
pub const EVENTS_MEDIA_TYPE: &str = "application/vnd.docker.distribution.events.v1+json";
/// Events sent in one POST at most.
const BATCH: usize = 32;
/// A blob's media type in events, as distribution writes it.
const BLOB_MEDIA_TYPE: &str = "application/octet-stream";

/// The `[notifications]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    /// Where undelivered events wait, a directory per endpoint (default: `notifications/`
    /// beside the filesystem store, else under berth's default data directory). Keep it on
    /// a local disk of this host: each replica has its own.
    pub queue: Option<PathBuf>,
    #[serde(default)]
    pub endpoints: Vec<EndpointConfig>,
}

/// One `[[notifications.endpoints]]`: distribution's endpoint settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// Names the endpoint in logs and its queue's directory.
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub disabled: bool,
    /// Headers sent with every POST (a name may have several values).
    #[serde(default)]
    pub headers: BTreeMap<String, Vec<String>>,
    /// How long one POST may take. Default 5s.
    #[serde(
        default = "default_timeout",
        deserialize_with = "berth_storage::gc::duration"
    )]
    pub timeout: Duration,
    /// The wait before the first retry; each failure doubles it. Default 1s.
    #[serde(
        default = "default_backoff",
        deserialize_with = "berth_storage::gc::duration"
    )]
    pub backoff: Duration,
    /// The longest wait between retries. Default 5m.
    #[serde(
        default = "default_max_backoff",
        deserialize_with = "berth_storage::gc::duration"
    )]
    pub max_backoff: Duration,
    /// Events about these media types are not sent (distribution's `ignoredmediatypes`).
    #[serde(default)]
    pub ignored_media_types: Vec<String>,
    #[serde(default)]
    pub ignore: Ignore,
    /// Only events about repositories matching one of these patterns are sent (`*` matches
    /// anything, `/` included); empty: all.
    #[serde(default)]
    pub repositories: Vec<String>,
}

/// What an endpoint does not want (distribution's `ignore`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ignore {
    #[serde(default)]
    pub media_types: Vec<String>,
    /// `push`, `pull`, `delete`, `mount`.
    #[serde(default)]
    pub actions: Vec<String>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_backoff() -> Duration {
    Duration::from_secs(1)
}

fn default_max_backoff() -> Duration {
    Duration::from_secs(300)
}

impl NotificationsConfig {
    pub fn validate(&self) -> Result<(), String> {
        let mut names = std::collections::HashSet::new();
        for (i, e) in self.endpoints.iter().enumerate() {
            let ok_name = !e.name.is_empty()
                && e.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                && !e.name.starts_with('.');
            if !ok_name {
                return Err(format!(
                    "notifications.endpoints[{i}].name {:?} must be letters, digits, '-', '_' or '.'",
                    e.name
                ));
            }
            if !names.insert(&e.name) {
                return Err(format!(
                    "notifications.endpoints[{i}].name {:?} is used twice",
                    e.name
                ));
            }
            let url = reqwest::Url::parse(&e.url)
                .map_err(|err| format!("notifications.endpoints[{i}].url {:?}: {err}", e.url))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(format!(
                    "notifications.endpoints[{i}].url {:?} must be http or https",
                    e.url
                ));
            }
            for (name, values) in &e.headers {
                let bad = reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                    || values
                        .iter()
                        .any(|v| reqwest::header::HeaderValue::from_str(v).is_err());
                if bad {
                    return Err(format!(
                        "notifications.endpoints[{i}].headers.{name} is not a valid header"
                    ));
                }
            }
            for a in &e.ignore.actions {
                if !["push", "pull", "delete", "mount"].contains(&a.as_str()) {
                    return Err(format!(
                        "notifications.endpoints[{i}].ignore.actions: {a:?} is not push, pull, delete or mount"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// One event, as distribution writes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub id: String,
    pub timestamp: String,
    pub action: String,
    pub target: Target,
    pub request: RequestRecord,
    pub actor: Actor,
    pub source: Source,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub media_type: String,
    pub size: u64,
    pub digest: String,
    pub length: u64,
    pub repository: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub from_repository: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tag: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RequestRecord {
    pub id: String,
    pub addr: String,
    pub host: String,
    pub method: String,
    pub useragent: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Actor {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Source {
    pub addr: String,
    #[serde(rename = "instanceID")]
    pub instance_id: String,
}

/// The envelope a POST carries.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    pub events: Vec<Event>,
}

/// What `api::handle` knows of a request before it is consumed.
pub struct RequestFacts {
    pub id: String,
    pub method: Method,
    pub path: String,
    /// The query's parameters (the same map as `api::Query`, named here so that this module
    /// does not import `api`, which imports it).
    pub query: std::collections::HashMap<String, String>,
    pub headers: HeaderMap,
    pub peer: Option<SocketAddr>,
    pub tls: bool,
    /// The signed-in user, if any.
    pub user: Option<String>,
}

impl RequestFacts {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }
}

fn header_u64(h: &HeaderMap, name: &str) -> u64 {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

struct Endpoint {
    config: EndpointConfig,
    dir: PathBuf,
    wake: tokio::sync::Notify,
}

/// The endpoints and their queues.
pub struct Notifier {
    endpoints: Vec<Arc<Endpoint>>,
    source: Source,
    seq: AtomicU64,
    client: reqwest::Client,
}

/// A queue file's name: time, then a counter, so names sort in the order events happened.
fn queue_name(seq: u64) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{nanos:024}-{seq:012}.json")
}

impl Notifier {
    /// Opens (creating) each endpoint's queue under `queue`.
    pub fn new(
        config: &NotificationsConfig,
        queue: &Path,
        listen: SocketAddr,
    ) -> Result<Notifier, String> {
        let mut endpoints = Vec::new();
        for e in config.endpoints.iter().filter(|e| !e.disabled) {
            let dir = queue.join(&e.name);
            std::fs::create_dir_all(&dir)
                .map_err(|err| format!("notification queue {}: {err}", dir.display()))?;
            endpoints.push(Arc::new(Endpoint {
                config: e.clone(),
                dir,
                wake: tokio::sync::Notify::new(),
            }));
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| format!("notifications: {e}"))?;
        Ok(Notifier {
            endpoints,
            source: Source {
                addr: format!("{host}:{}", listen.port()),
                instance_id: uuid::Uuid::new_v4().to_string(),
            },
            seq: AtomicU64::new(0),
            client,
        })
    }

    /// Starts delivering each endpoint's queue; the tasks end with the runtime.
    pub fn start(&self) {
        for e in &self.endpoints {
            tokio::spawn(deliver(e.clone(), self.client.clone()));
        }
    }

    /// The events a request caused, given its answer; queued for every endpoint whose filter
    /// lets them through. `blob_size` finds a blob's size when the answer does not say it.
    pub async fn observe<F, Fut>(
        &self,
        facts: &RequestFacts,
        status: StatusCode,
        resp: &HeaderMap,
        blob_size: F,
    ) where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = u64>,
    {
        if self.endpoints.is_empty() {
            return;
        }
        let Some((action, mut target)) = classify(facts, status, resp) else {
            return;
        };
        if target.size == 0 && target.media_type == BLOB_MEDIA_TYPE && action != "delete" {
            target.size = blob_size(target.digest.clone()).await;
        }
        target.length = target.size;
        let scheme = if facts.tls { "https" } else { "http" };
        let host = facts.header("host");
        if !host.is_empty() && !target.digest.is_empty() {
            let kind = if target.media_type == BLOB_MEDIA_TYPE {
                "blobs"
            } else {
                "manifests"
            };
            target.url = format!(
                "{scheme}://{host}/v2/{}/{kind}/{}",
                target.repository, target.digest
            );
        }
        let event = Event {
            id: uuid::Uuid::new_v4().to_string(),
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            action: action.to_string(),
            target,
            request: RequestRecord {
                id: facts.id.clone(),
                addr: facts.peer.map(|p| p.to_string()).unwrap_or_default(),
                host,
                method: facts.method.to_string(),
                useragent: facts.header("user-agent"),
            },
            actor: Actor {
                name: facts.user.clone().unwrap_or_default(),
            },
            source: self.source.clone(),
        };
        let data = serde_json::to_vec(&event).expect("an event serialises");
        for e in &self.endpoints {
            if !wants(&e.config, &event) {
                continue;
            }
            let name = queue_name(self.seq.fetch_add(1, Ordering::Relaxed));
            let (dir, data) = (e.dir.clone(), data.clone());
            let written = tokio::task::spawn_blocking(move || {
                let tmp = dir.join(format!(".{name}"));
                std::fs::write(&tmp, &data)?;
                std::fs::rename(&tmp, dir.join(&name))
            })
            .await;
            match written {
                Ok(Ok(())) => e.wake.notify_one(),
                Ok(Err(err)) => tracing::error!(
                    "notification for {} not queued in {}: {err}",
                    e.config.name,
                    e.dir.display()
                ),
                Err(err) => tracing::error!("notification for {} not queued: {err}", e.config.name),
            }
        }
    }
}

/// Whether an endpoint's filters let an event through.
fn wants(c: &EndpointConfig, ev: &Event) -> bool {
    let mt = &ev.target.media_type;
    !c.ignore.actions.contains(&ev.action)
        && !c.ignore.media_types.contains(mt)
        && !c.ignored_media_types.contains(mt)
        && (c.repositories.is_empty()
            || c.repositories
                .iter()
                .any(|p| berth_storage::name::glob_matches(p, &ev.target.repository)))
}

/// The event a successful request makes, if any: its action and target (size 0 when the
/// answer does not tell it).
fn classify(f: &RequestFacts, status: StatusCode, h: &HeaderMap) -> Option<(&'static str, Target)> {
    let status = status.as_u16();
    let digest_header = || {
        h.get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let target = |repo: &str, media_type: String, size: u64, digest: String, tag: &str| Target {
        media_type,
        size,
        digest,
        length: size,
        repository: repo.to_string(),
        from_repository: String::new(),
        url: String::new(),
        tag: tag.to_string(),
    };
    let is_digest = |r: &str| r.contains(':');
    match (routes::parse(&f.path), &f.method, status) {
        (Route::Manifest(n, r), &Method::PUT, 201) => {
            let media_type = f
                .header("content-type")
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_string();
            let tag = if is_digest(r) {
                f.query.get("tag").map(String::as_str).unwrap_or("")
            } else {
                r
            };
            let size = header_u64(&f.headers, "content-length");
            Some(("push", target(n, media_type, size, digest_header(), tag)))
        }
        (Route::Manifest(n, r), &Method::GET, 200) => {
            let media_type = h
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let tag = if is_digest(r) { "" } else { r };
            let size = header_u64(h, "content-length");
            Some(("pull", target(n, media_type, size, digest_header(), tag)))
        }
        (Route::Manifest(n, r), &Method::DELETE, 202) => {
            let (digest, tag) = if is_digest(r) {
                (r.to_string(), "")
            } else {
                (String::new(), r)
            };
            Some(("delete", target(n, String::new(), 0, digest, tag)))
        }
        (Route::Blob(n, d), &Method::GET, 200 | 206) => {
            // A ranged read counts once: the read that starts at the beginning.
            let from_start = status == 200
                || h.get("content-range")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("bytes 0-"));
            from_start.then(|| {
                let size = if status == 200 {
                    header_u64(h, "content-length")
                } else {
                    0
                };
                (
                    "pull",
                    target(n, BLOB_MEDIA_TYPE.into(), size, d.to_string(), ""),
                )
            })
        }
        (Route::Blob(n, d), &Method::DELETE, 202) => Some((
            "delete",
            target(n, BLOB_MEDIA_TYPE.into(), 0, d.to_string(), ""),
        )),
        (Route::UploadStart(n) | Route::Upload(n, _), &Method::POST | &Method::PUT, 201) => {
            let mut t = target(n, BLOB_MEDIA_TYPE.into(), 0, digest_header(), "");
            match (f.query.get("mount"), f.query.get("from")) {
                (Some(_), from) if f.method == Method::POST && !f.query.contains_key("digest") => {
                    t.from_repository = from.cloned().unwrap_or_default();
                    Some(("mount", t))
                }
                _ => Some(("push", t)),
            }
        }
        _ => None,
    }
}

/// Delivers one endpoint's queue, oldest first, for as long as the runtime runs.
async fn deliver(e: Arc<Endpoint>, client: reqwest::Client) {
    // One process per queue: another berth on this host with the same queue waits here.
    let lock = e.dir.join(".lock");
    let _held = loop {
        let lock = lock.clone();
        let got = tokio::task::spawn_blocking(move || {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock)?;
            match f.try_lock() {
                Ok(()) => Ok(Some(f)),
                Err(std::fs::TryLockError::WouldBlock) => Ok(None),
                Err(std::fs::TryLockError::Error(err)) => Err(err),
            }
        })
        .await;
        match got {
            Ok(Ok(Some(f))) => break f,
            Ok(Ok(None)) => tokio::time::sleep(Duration::from_secs(5)).await,
            Ok(Err(err)) => {
                tracing::error!("notification queue {}: {err}", e.dir.display());
                return;
            }
            Err(_) => return,
        }
    };
    let mut backoff = e.config.backoff;
    loop {
        let batch = match read_batch(&e.dir).await {
            Ok(b) => b,
            Err(err) => {
                tracing::error!("notification queue {}: {err}", e.dir.display());
                tokio::time::sleep(e.config.max_backoff).await;
                continue;
            }
        };
        if batch.is_empty() {
            // Woken by the next event (a permit is kept if it came first), or checked again
            // now and then.
            let _ = tokio::time::timeout(Duration::from_secs(30), e.wake.notified()).await;
            continue;
        }
        let envelope = Envelope {
            events: batch.iter().map(|(_, ev)| ev.clone()).collect(),
        };
        match post(&client, &e.config, &envelope).await {
            Ok(()) => {
                backoff = e.config.backoff;
                for (path, _) in &batch {
                    let _ = tokio::fs::remove_file(path).await;
                }
            }
            Err(err) => {
                tracing::warn!(
                    "notification endpoint {} ({}): {err}; {} event(s) kept, next try in {:?}",
                    e.config.name,
                    e.config.url,
                    batch.len(),
                    backoff
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(e.config.max_backoff);
            }
        }
    }
}

/// The oldest events of a queue, at most [`BATCH`]; files that are not events are removed.
async fn read_batch(dir: &Path) -> std::io::Result<Vec<(PathBuf, Event)>> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut names: Vec<String> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.') && n.ends_with(".json"))
            .collect();
        names.sort();
        let mut out = Vec::new();
        for n in names.into_iter().take(BATCH) {
            let path = dir.join(&n);
            match std::fs::read(&path).map(|d| serde_json::from_slice::<Event>(&d)) {
                Ok(Ok(ev)) => out.push((path, ev)),
                Ok(Err(err)) => {
                    tracing::warn!("dropping {}: not an event: {err}", path.display());
                    let _ = std::fs::remove_file(&path);
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
        Ok(out)
    })
    .await
    .map_err(std::io::Error::other)?
}

async fn post(
    client: &reqwest::Client,
    c: &EndpointConfig,
    envelope: &Envelope,
) -> Result<(), String> {
    let mut req = client
        .post(&c.url)
        .timeout(c.timeout)
        .header("content-type", EVENTS_MEDIA_TYPE)
        .body(serde_json::to_vec(envelope).expect("an envelope serialises"));
    for (name, values) in &c.headers {
        for v in values {
            req = req.header(name.as_str(), v.as_str());
        }
    }
    let resp = req.send().await.map_err(|e| e.to_string())?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", resp.status()))
    }
}
