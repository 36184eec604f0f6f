//! The pull-through cache: `berth serve` as a registry mirror for docker, containerd and podman.
//!
//! A request's repository is routed ([`Mirror::target`]) by, in order: containerd's `ns` query
//! parameter (an upstream's host); a configured local prefix; a first path component that names
//! an upstream (`/v2/ghcr.io/org/app/...`); the default upstream. What an upstream serves is
//! cached in the registry's own store under `<host>/<repository>` (`docker.io/library/busybox`),
//! so the spec handlers in [`crate::api`] serve it once it is there, and `_catalog` shows it.
//!
//! - Manifests by digest are fetched once and kept; a tag is trusted for `tag_ttl`, then
//!   revalidated with a HEAD, downloading nothing when its digest did not change. A failing
//!   upstream leaves cached tags served (stale, logged) and the rest answered 5xx in time.
//! - A missing blob is fetched by one [`BlobFlight`] however many clients want it: its chunks go
//!   to a spool file and into the store as they arrive, and every client reads the spool at its
//!   own pace (memory holds the newest 16 MiB, whatever the blob's size); the newest piece is held
//!   back until the digest is verified, so a client never receives a whole wrong blob, and a
//!   wrong blob is never stored. Manifests have the same single flight ([`Flights`]).
//! - Upstreams are reached with the client's [`Remote`] (auth challenges, token cache, retries).

pub mod config;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;
use berth_remote::{Credential, Remote, RemoteConfig, RemoteError};
use berth_storage::{Digest, Reference, RepoName, Store, Tag};
use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::{SinkExt, StreamExt};
use tokio::sync::watch;

use crate::api::{self, Registry};
use crate::error::{Code, RegistryError, Result};
use crate::routes::Route;
pub use config::{host_component, MirrorConfig, UpstreamConfig};

/// One upstream registry and the client that talks to it.
pub struct Upstream {
    pub host: String,
    url: String,
    remote: Remote,
    timeout: Duration,
    /// What the mirror counted for this upstream alone (the web page shows them).
    counters: Counters,
}

impl Upstream {
    fn new(host: &str, c: &UpstreamConfig, certs_d: Option<&std::path::Path>) -> Upstream {
        let url = c.url.trim_end_matches('/').to_string();
        let api_host = c.api_host();
        let mut rc = RemoteConfig {
            retries: 2,
            backoff: Duration::from_millis(100),
            connect_timeout: Duration::from_secs(c.connect_timeout),
            read_timeout: Some(c.timeout()),
            certs_dirs: certs_d.into_iter().map(|d| d.to_path_buf()).collect(),
            ..RemoteConfig::default()
        };
        if let (Some(u), Some(p)) = (&c.username, &c.password) {
            rc.credentials.insert(
                api_host.clone(),
                Credential {
                    username: u.clone(),
                    password: p.clone(),
                },
            );
        }
        if let Some(t) = &c.token {
            rc.tokens.insert(api_host, t.clone());
        }
        Upstream {
            host: host.to_string(),
            url,
            remote: Remote::new(rc),
            timeout: c.timeout(),
            counters: Counters::default(),
        }
    }

    /// Runs an upstream call within the upstream's timeout.
    async fn call<T>(
        &self,
        f: impl Future<Output = std::result::Result<T, RemoteError>>,
    ) -> std::result::Result<T, RemoteError> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(r) => r,
            Err(_) => Err(RemoteError::Unreachable {
                registry: self.host.clone(),
                message: format!("no answer within {} s", self.timeout.as_secs()),
            }),
        }
    }
}

/// Where a repository named in a request lives.
pub enum Target {
    /// An ordinary repository of this registry.
    Local,
    /// A cache of an upstream's repository.
    Cached(Cached),
    /// Nothing serves it; the reason.
    Nowhere(String),
}

/// An upstream's repository (`repo`, as the upstream names it) and its cache in the store
/// (`cache`, the same name under the upstream's host).
#[derive(Clone)]
pub struct Cached {
    pub upstream: Arc<Upstream>,
    pub repo: RepoName,
    pub cache: RepoName,
}

/// What the mirror counts, exposed on `/metrics`.
#[derive(Default)]
pub struct Counters {
    pub manifest_hits: AtomicU64,
    pub manifest_misses: AtomicU64,
    pub blob_hits: AtomicU64,
    pub blob_misses: AtomicU64,
    pub upstream_bytes: AtomicU64,
    pub upstream_errors: AtomicU64,
    pub stale_served: AtomicU64,
}

impl Counters {
    fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// The counters in Prometheus' text format.
    pub fn render(&self, out: &mut String) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut family = |name: &str, help: &str, rows: &[(&str, u64)]| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
            for (labels, v) in rows {
                out.push_str(&format!("{name}{labels} {v}\n"));
            }
        };
        family(
            "berth_mirror_cache_hits_total",
            "Requests for upstream content answered from the cache.",
            &[
                ("{kind=\"manifest\"}", get(&self.manifest_hits)),
                ("{kind=\"blob\"}", get(&self.blob_hits)),
            ],
        );
        family(
            "berth_mirror_cache_misses_total",
            "Requests for upstream content that had to fetch it from the upstream.",
            &[
                ("{kind=\"manifest\"}", get(&self.manifest_misses)),
                ("{kind=\"blob\"}", get(&self.blob_misses)),
            ],
        );
        family(
            "berth_mirror_upstream_bytes_total",
            "Blob bytes read from upstreams.",
            &[("", get(&self.upstream_bytes))],
        );
        family(
            "berth_mirror_upstream_errors_total",
            "Upstream requests that failed (unreachable, timed out, 5xx, bad digest).",
            &[("", get(&self.upstream_errors))],
        );
        family(
            "berth_mirror_stale_tags_served_total",
            "Tags served past their time to live because the upstream could not be asked.",
            &[("", get(&self.stale_served))],
        );
    }
}

/// The mirror: upstreams, tag freshness, flights in progress, counters. Cheap to clone.
#[derive(Clone)]
pub struct Mirror {
    inner: Arc<Inner>,
}

struct Inner {
    config: MirrorConfig,
    upstreams: HashMap<String, Arc<Upstream>>,
    /// When each cached tag was last confirmed with its upstream (in this process).
    checked: Mutex<HashMap<(RepoName, Tag), Instant>>,
    manifests: Flights<Digest>,
    blobs: Mutex<HashMap<Digest, Arc<BlobFlight>>>,
    /// Where blobs in flight are spooled.
    spool_dir: std::path::PathBuf,
    counters: Counters,
}

impl api::Front for Mirror {
    fn intercept<'a>(
        &'a self,
        reg: &'a Registry,
        route: &'a Route<'a>,
        method: &'a Method,
        query: &'a api::Query,
        range: Option<HeaderValue>,
    ) -> BoxFuture<'a, Result<Option<Response>>> {
        self.answer(reg, route, method, query, range).boxed()
    }

    fn render_metrics(&self, out: &mut String) {
        self.counters().render(out);
    }

    fn upstreams(&self) -> Vec<api::UpstreamSummary> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out: Vec<api::UpstreamSummary> = self
            .inner
            .upstreams
            .values()
            .map(|up| api::UpstreamSummary {
                host: up.host.clone(),
                url: up.url.clone(),
                cache_prefix: host_component(&up.host),
                manifest_hits: get(&up.counters.manifest_hits),
                manifest_misses: get(&up.counters.manifest_misses),
                blob_hits: get(&up.counters.blob_hits),
                blob_misses: get(&up.counters.blob_misses),
                errors: get(&up.counters.upstream_errors),
            })
            .collect();
        out.sort_by(|a, b| a.host.cmp(&b.host));
        out
    }
}

impl Mirror {
    /// The mirror of `config`; an error (one line) when its spool directory cannot hold files.
    pub fn new(config: MirrorConfig) -> std::result::Result<Mirror, String> {
        let spool_dir = config.spool.clone().unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&spool_dir)
            .and_then(|()| Spool::create(&spool_dir).map(drop))
            .map_err(|e| {
                format!(
                    "mirror: cannot keep blobs in flight in {} (the mirror's spool): {e}",
                    spool_dir.display()
                )
            })?;
        let upstreams = config
            .upstream
            .iter()
            .map(|(host, c)| {
                let up = Upstream::new(host, c, config.certs_d.as_deref());
                (host.clone(), Arc::new(up))
            })
            .collect();
        Ok(Mirror {
            inner: Arc::new(Inner {
                config,
                upstreams,
                checked: Mutex::new(HashMap::new()),
                manifests: Flights::default(),
                blobs: Mutex::new(HashMap::new()),
                spool_dir,
                counters: Counters::default(),
            }),
        })
    }

    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// Counts on the mirror's counters and on the upstream's own.
    fn count(&self, up: &Upstream, which: fn(&Counters) -> &AtomicU64, n: u64) {
        Counters::add(which(&self.inner.counters), n);
        Counters::add(which(&up.counters), n);
    }

    fn tag_ttl(&self) -> Duration {
        Duration::from_secs(self.inner.config.tag_ttl)
    }

    /// Routes a repository name (as the request spelled it) and an optional `ns`.
    pub fn target(&self, raw: &str, ns: Option<&str>) -> Result<Target> {
        let name: RepoName = api::name(raw)?;
        let cached = |host: &str, repo: RepoName| -> Result<Target> {
            let upstream = self.inner.upstreams.get(host).cloned().ok_or_else(|| {
                RegistryError::new(Code::Internal, format!("no upstream {host} is configured"))
            })?;
            let cache = api::name(&format!("{}/{repo}", host_component(host)))?;
            Ok(Target::Cached(Cached {
                upstream,
                repo,
                cache,
            }))
        };
        if let Some(ns) = ns {
            let ns = ns.to_ascii_lowercase();
            return match self.inner.upstreams.get(&ns) {
                Some(u) => cached(&u.host, name),
                None => Ok(Target::Nowhere(format!(
                    "this mirror has no upstream for ns={ns}"
                ))),
            };
        }
        let under = |prefix: &str| {
            name.as_str() == prefix
                || name
                    .as_str()
                    .strip_prefix(prefix)
                    .is_some_and(|r| r.starts_with('/'))
        };
        if self.inner.config.local.iter().any(|p| under(p)) {
            return Ok(Target::Local);
        }
        if let Some((first, rest)) = name.as_str().split_once('/') {
            if let Some(u) = self
                .inner
                .upstreams
                .values()
                .find(|u| host_component(&u.host) == first)
            {
                return cached(&u.host, api::name(rest)?);
            }
        }
        match &self.inner.config.default {
            Some(d) => cached(d, name),
            None => Ok(Target::Nowhere(format!(
                "{name} is neither a local repository nor under an upstream of this mirror"
            ))),
        }
    }

    /// Answers a request for a repository that the mirror serves; `None` for local ones (and
    /// for endpoints without a repository), which the registry answers as usual.
    async fn answer(
        &self,
        reg: &Registry,
        route: &Route<'_>,
        method: &Method,
        query: &api::Query,
        range: Option<HeaderValue>,
    ) -> Result<Option<Response>> {
        let raw = match route {
            Route::Tags(n)
            | Route::Manifest(n, _)
            | Route::Blob(n, _)
            | Route::UploadStart(n)
            | Route::Upload(n, _)
            | Route::Referrers(n, _) => *n,
            _ => return Ok(None),
        };
        let read = *method == Method::GET || *method == Method::HEAD;
        let c = match self.target(raw, query.get("ns").map(String::as_str))? {
            Target::Local => return Ok(None),
            Target::Nowhere(why) if read => {
                return Err(RegistryError::new(Code::NameUnknown, why)
                    .with_detail(serde_json::json!({ "name": raw })))
            }
            Target::Nowhere(why) => return Err(RegistryError::new(Code::Unsupported, why)),
            Target::Cached(c) => c,
        };
        if !read {
            return Err(RegistryError::new(
                Code::Unsupported,
                format!(
                    "{raw} is a cache of {}; push to that registry itself, or to a local repository",
                    c.upstream.host
                ),
            ));
        }
        let resp = match route {
            Route::Manifest(_, r) => {
                let d = self.manifest(reg, &c, api::manifest_reference(r)?).await?;
                api::get_manifest(reg, &c.cache, d.as_str()).await?
            }
            Route::Blob(_, d) => {
                let d = api::digest(d)?;
                if *method == Method::HEAD {
                    self.head_blob(reg, &c, &d).await?
                } else {
                    self.get_blob(reg, &c, &d, range).await?
                }
            }
            Route::Tags(_) => self.tags(reg, &c, query).await?,
            Route::Referrers(_, d) => {
                api::referrers(reg, &c.cache, &api::digest(d)?, query.clone()).await?
            }
            _ => return Err(api::unsupported_method()),
        };
        Ok(Some(resp))
    }

    fn upstream_failed(&self, up: &Upstream, e: &RemoteError) {
        self.count(up, |k| &k.upstream_errors, 1);
        tracing::warn!(upstream = %up.host, error = %e, "upstream request failed");
    }

    // ---- manifests ----

    /// Makes sure the manifest a reference names is in the cache; returns its digest.
    async fn manifest(&self, reg: &Registry, c: &Cached, reference: Reference) -> Result<Digest> {
        let cache = &c.cache;
        match reference {
            Reference::Digest(d) => {
                if reg.store.repos.manifest(cache, &d).await?.is_some() {
                    self.count(&c.upstream, |k| &k.manifest_hits, 1);
                    return Ok(d);
                }
                let key = format!("{cache}@{d}");
                let work = |this: Mirror, store: Store, c: Cached| async move {
                    this.count(&c.upstream, |k| &k.manifest_misses, 1);
                    this.fetch_manifest(&store, &c, &Reference::Digest(d)).await
                };
                self.single_flight(reg, c, key, work).await
            }
            Reference::Tag(t) => {
                let local = reg.store.repos.tag(cache, &t).await?;
                let fresh = crate::lock(&self.inner.checked)
                    .get(&(cache.clone(), t.clone()))
                    .is_some_and(|at| at.elapsed() < self.tag_ttl());
                if let (Some(d), true) = (&local, fresh) {
                    self.count(&c.upstream, |k| &k.manifest_hits, 1);
                    return Ok(d.clone());
                }
                let key = format!("{cache}:{t}");
                let work = |this: Mirror, store: Store, c: Cached| async move {
                    this.revalidate_tag(&store, &c, &t, local).await
                };
                self.single_flight(reg, c, key, work).await
            }
        }
    }

    /// Runs `work` once for `key` however many requests want it at the same time, in a task
    /// of its own that gets owned copies of what it needs.
    async fn single_flight<F, Fut>(
        &self,
        reg: &Registry,
        c: &Cached,
        key: String,
        work: F,
    ) -> Result<Digest>
    where
        F: FnOnce(Mirror, Store, Cached) -> Fut,
        Fut: Future<Output = Result<Digest>> + Send + 'static,
    {
        let fut = work(self.clone(), reg.store.clone(), c.clone());
        self.inner.manifests.run(key, fut).await
    }

    /// Asks the upstream what a tag points at now (HEAD), fetching the manifest only when the
    /// cache does not hold it; serves the cached tag when the upstream cannot be asked.
    async fn revalidate_tag(
        &self,
        store: &Store,
        c: &Cached,
        tag: &Tag,
        local: Option<Digest>,
    ) -> Result<Digest> {
        let (up, repo, cache) = (&c.upstream, &c.repo, &c.cache);
        let reference = Reference::Tag(tag.clone());
        let head = up
            .call(up.remote.head_manifest(&up.url, repo, &reference, None))
            .await;
        let d = match head {
            Ok(Some(h)) => {
                if store.repos.manifest(cache, &h.digest).await?.is_some() {
                    self.count(up, |k| &k.manifest_hits, 1);
                } else {
                    self.count(up, |k| &k.manifest_misses, 1);
                    self.fetch_manifest(store, c, &Reference::Digest(h.digest.clone()))
                        .await?;
                }
                h.digest
            }
            Ok(None) => return Err(manifest_unknown(up, repo, &reference)),
            Err(e) => {
                self.upstream_failed(up, &e);
                return match local {
                    Some(d) => {
                        self.count(up, |k| &k.stale_served, 1);
                        self.count(up, |k| &k.manifest_hits, 1);
                        tracing::warn!(
                            "serving {cache}:{tag} = {d} past its time to live: the upstream could not be asked ({e})"
                        );
                        Ok(d)
                    }
                    None => Err(upstream_error(up, e)),
                };
            }
        };
        if local.as_ref() != Some(&d) {
            store.repos.set_tag(cache, tag, &d).await?;
        }
        crate::lock(&self.inner.checked).insert((cache.clone(), tag.clone()), Instant::now());
        Ok(d)
    }

    /// GETs a manifest from the upstream (verified against a digest reference) and caches it.
    async fn fetch_manifest(
        &self,
        store: &Store,
        c: &Cached,
        reference: &Reference,
    ) -> Result<Digest> {
        let (up, repo, cache) = (&c.upstream, &c.repo, &c.cache);
        let m = match up
            .call(up.remote.get_manifest(&up.url, repo, reference, None))
            .await
        {
            Ok(m) => m,
            Err(e) if e.is_not_found() => return Err(manifest_unknown(up, repo, reference)),
            Err(e) => {
                self.upstream_failed(up, &e);
                return Err(upstream_error(up, e));
            }
        };
        store.blobs.put_bytes(&m.digest, m.bytes.clone()).await?;
        // Its layers come when a client asks for them: those missing now are expected.
        store
            .repos
            .link_manifest(cache, &m.digest, &m.media_type, &m.bytes)
            .await?;
        Ok(m.digest)
    }

    async fn tags(&self, reg: &Registry, c: &Cached, query: &api::Query) -> Result<Response> {
        let (up, repo, cache) = (&c.upstream, &c.repo, &c.cache);
        match up.call(up.remote.tags(&up.url, repo)).await {
            Ok(mut tags) => {
                tags.sort();
                let (n, last) = api::page_params(query)?;
                if let Some(last) = &last {
                    tags.retain(|t| t > last);
                }
                let more = n.is_some_and(|n| tags.len() > n);
                if let Some(n) = n {
                    tags.truncate(n);
                }
                let link = api::next_link(&format!("/v2/{repo}/tags/list"), n, tags.last(), more);
                let body =
                    serde_json::to_vec(&serde_json::json!({ "name": repo.as_str(), "tags": tags }))
                        .unwrap_or_default();
                Ok(api::json_response(StatusCode::OK, body.into(), &link))
            }
            Err(e) if e.is_not_found() => Err(RegistryError::new(
                Code::NameUnknown,
                format!("{} has no repository {repo}", up.host),
            )),
            // Down or unwell: what the cache holds is the best answer there is.
            Err(e) if e.is_retryable() => {
                self.upstream_failed(up, &e);
                tracing::warn!(
                    "listing the cached tags of {cache}: the upstream could not be asked"
                );
                api::tags(reg, cache, query.clone()).await
            }
            // It answered, but nothing usable (a malformed page, a Link elsewhere): a 502.
            Err(e) => {
                self.upstream_failed(up, &e);
                Err(upstream_error(up, e))
            }
        }
    }

    // ---- blobs ----

    /// Whether the cache may serve a blob for `cache`: linked there, or held for another
    /// repository and confirmed by the upstream (or the upstream cannot be asked).
    async fn cached_blob(&self, reg: &Registry, c: &Cached, d: &Digest) -> Result<Option<bool>> {
        let (up, repo, cache) = (&c.upstream, &c.repo, &c.cache);
        if !reg.store.blobs.exists(d).await? {
            return Ok(None);
        }
        if reg.store.repos.has_blob(cache, d).await? {
            return Ok(Some(true));
        }
        match up.call(up.remote.blob_exists(&up.url, repo, d)).await {
            Ok(Some(_)) => {}
            Ok(None) => return Ok(Some(false)),
            Err(e) => self.upstream_failed(up, &e),
        }
        reg.store.repos.link_blob(cache, d).await?;
        Ok(Some(true))
    }

    async fn head_blob(&self, reg: &Registry, c: &Cached, d: &Digest) -> Result<Response> {
        let (up, repo, cache) = (&c.upstream, &c.repo, &c.cache);
        match self.cached_blob(reg, c, d).await? {
            Some(true) => return api::get_blob(reg, cache, d, api::BlobRead::Head).await,
            Some(false) => return Err(blob_unknown(d)),
            None => {}
        }
        match up.call(up.remote.blob_exists(&up.url, repo, d)).await {
            Ok(Some(size)) => Ok(blob_head(d, Some(size))),
            Ok(None) => Err(blob_unknown(d)),
            Err(e) => {
                self.upstream_failed(up, &e);
                Err(upstream_error(up, e))
            }
        }
    }

    async fn get_blob(
        &self,
        reg: &Registry,
        c: &Cached,
        d: &Digest,
        range: Option<HeaderValue>,
    ) -> Result<Response> {
        let cache = &c.cache;
        match self.cached_blob(reg, c, d).await? {
            Some(true) => {
                self.count(&c.upstream, |k| &k.blob_hits, 1);
                return api::get_blob(reg, cache, d, api::BlobRead::Get(range)).await;
            }
            Some(false) => return Err(blob_unknown(d)),
            None => {}
        }
        let flight = self.blob_flight(reg, c, d);
        let (total, spool) = match flight.opened().await {
            Opened::Streaming(total, spool) => (total, spool),
            Opened::Stored => return api::get_blob(reg, cache, d, api::BlobRead::Get(range)).await,
            Opened::Failed(e) => return Err(e),
        };
        // A Range header that is to be ignored is as good as none.
        let Some(wanted) = range
            .as_ref()
            .and_then(|r| crate::range::parse_range(r.as_bytes()))
        else {
            let mut resp = blob_head(d, total);
            *resp.body_mut() = Body::from_stream(flight.reader(spool, 0, None));
            return Ok(resp);
        };
        // A ranged read of a blob on its way in: answered once the whole is there and checked.
        let size = flight.finished().await?;
        if flight.stored_already() {
            return api::get_blob(reg, cache, d, api::BlobRead::Get(range)).await;
        }
        let Some(range) = wanted.resolve(size) else {
            return Ok(api::range_not_satisfiable(d, size));
        };
        let mut resp = blob_head(d, Some(range.end - range.start));
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        let content_range = format!("bytes {}-{}/{size}", range.start, range.end - 1);
        let content_range = HeaderValue::try_from(content_range)
            .map_err(|e| RegistryError::new(Code::Internal, e.to_string()))?;
        resp.headers_mut().insert("content-range", content_range);
        *resp.body_mut() = Body::from_stream(flight.reader(spool, range.start, Some(range.end)));
        Ok(resp)
    }

    /// The flight fetching `d`, joined if one is under way, else started.
    fn blob_flight(&self, reg: &Registry, c: &Cached, d: &Digest) -> Arc<BlobFlight> {
        let mut flights = crate::lock(&self.inner.blobs);
        if let Some(f) = flights.get(d) {
            return f.clone();
        }
        let flight = Arc::new(BlobFlight::new());
        flights.insert(d.clone(), flight.clone());
        drop(flights);
        self.count(&c.upstream, |k| &k.blob_misses, 1);
        let (this, store, c, d) = (self.clone(), reg.store.clone(), c.clone(), d.clone());
        let f = flight.clone();
        tokio::spawn(async move {
            this.fly(&store, &c, &d, &f).await;
            crate::lock(&this.inner.blobs).remove(&d);
        });
        flight
    }

    /// The body of a blob flight: upstream → (every reader, the store).
    async fn fly(&self, store: &Store, c: &Cached, d: &Digest, flight: &BlobFlight) {
        let (up, repo, cache) = (&c.upstream, &c.repo, &c.cache);
        // A flight that began just as another one finished finds the blob stored.
        if matches!(store.repos.has_blob(cache, d).await, Ok(true))
            && matches!(store.blobs.exists(d).await, Ok(true))
        {
            flight.update(|s| s.stored_already = true);
            return;
        }
        let mut stream = match up.call(up.remote.get_blob(&up.url, repo, d)).await {
            Ok(s) => s,
            Err(e) => {
                let err = if e.is_not_found() {
                    blob_unknown(d)
                } else {
                    self.upstream_failed(up, &e);
                    upstream_error(up, e)
                };
                flight.update(|s| s.end = Some(Err(err)));
                return;
            }
        };
        let spool = match Spool::create(&self.inner.spool_dir) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                tracing::error!("spooling {d} from {}: {e}", up.host);
                flight.update(|s| s.end = Some(Err(spool_error(&e))));
                return;
            }
        };
        flight.update(|s| {
            s.opened = true;
            s.total = stream.total;
            s.spool = Some(spool.clone());
        });
        let (mut tx, rx) = futures::channel::mpsc::channel::<std::io::Result<Bytes>>(16);
        let put = {
            let (store, d) = (store.clone(), d.clone());
            tokio::spawn(async move { store.blobs.put(&d, rx).await })
        };
        let mut storing = true;
        // Chunks are gathered into pieces of PIECE bytes (each costs every reader a wake-up and
        // a read); a piece is written to the spool and sent to the store, and readers are let
        // up to the end of the piece before it: the newest waits until the next one is written
        // or the digest is checked.
        let mut filling = bytes::BytesMut::new();
        let mut written = 0u64;
        let failure = loop {
            let next = stream.next().await;
            let piece = match &next {
                Some(Ok(chunk)) => {
                    self.count(&c.upstream, |k| &k.upstream_bytes, chunk.len() as u64);
                    filling.extend_from_slice(chunk);
                    (filling.len() >= PIECE).then(|| filling.split().freeze())
                }
                None if !filling.is_empty() => Some(filling.split().freeze()),
                _ => None,
            };
            if let Some(piece) = piece {
                let at = written;
                written += piece.len() as u64;
                let (sp, p) = (spool.clone(), piece.clone());
                let wrote = tokio::task::spawn_blocking(move || sp.write_at(&p, at))
                    .await
                    .unwrap_or_else(|e| Err(std::io::Error::other(e)));
                if let Err(e) = wrote {
                    break Some(Failed::Spool(e));
                }
                if storing && tx.send(Ok(piece.clone())).await.is_err() {
                    storing = false;
                }
                flight.update(|s| {
                    s.ready = at;
                    s.recent.push_back((at, piece));
                    if s.recent.len() > RECENT_PIECES {
                        s.recent.pop_front();
                    }
                });
            }
            match next {
                Some(Ok(_)) => {}
                Some(Err(e)) => break Some(Failed::Upstream(e)),
                None => break None,
            }
        };
        match failure {
            Some(Failed::Spool(e)) => {
                let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                drop(tx);
                let _ = put.await;
                tracing::error!("spooling {d} from {}: {e}", up.host);
                flight.update(|s| s.end = Some(Err(spool_error(&e))));
            }
            Some(Failed::Upstream(e)) => {
                let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                drop(tx);
                let _ = put.await;
                self.upstream_failed(up, &e);
                let err = match &e {
                    RemoteError::Mismatch(m) => RegistryError::new(
                        Code::DigestInvalid,
                        format!(
                            "{} sent a blob that does not match its digest: {m}",
                            up.host
                        ),
                    )
                    .with_status(StatusCode::BAD_GATEWAY),
                    _ => upstream_error(up, e),
                };
                flight.update(|s| s.end = Some(Err(err)));
            }
            None => {
                flight.update(|s| {
                    s.ready = written;
                    s.end = Some(Ok(()));
                });
                drop(tx);
                match put.await {
                    Ok(Ok(_)) => {
                        if let Err(e) = store.repos.link_blob(cache, d).await {
                            tracing::error!("caching {d} for {cache}: {e}");
                        }
                    }
                    Ok(Err(e)) => tracing::error!("caching {d} from {}: {e}", up.host),
                    Err(e) => tracing::error!("caching {d} from {}: {e}", up.host),
                }
            }
        }
    }
}

/// Why a blob flight ended early.
enum Failed {
    Upstream(RemoteError),
    Spool(std::io::Error),
}

fn spool_error(e: &std::io::Error) -> RegistryError {
    RegistryError::new(
        Code::Internal,
        format!("the mirror cannot spool the blob: {e}"),
    )
}

fn manifest_unknown(up: &Upstream, repo: &RepoName, reference: &Reference) -> RegistryError {
    RegistryError::new(
        Code::ManifestUnknown,
        format!("{} has no manifest {reference} in {repo}", up.host),
    )
    .with_detail(serde_json::json!({ "reference": reference.to_string() }))
}

fn blob_unknown(d: &Digest) -> RegistryError {
    RegistryError::new(Code::BlobUnknown, "blob unknown to registry")
        .with_detail(serde_json::json!({ "digest": d.to_string() }))
}

/// The headers of a blob answer, without its body.
fn blob_head(d: &Digest, size: Option<u64>) -> Response {
    let mut headers = vec![
        ("content-type", "application/octet-stream".to_string()),
        ("docker-content-digest", d.to_string()),
        ("etag", format!("\"{d}\"")),
    ];
    if let Some(size) = size {
        headers.push(("content-length", size.to_string()));
    }
    api::response(StatusCode::OK, &headers, Body::empty())
}

/// An upstream failure as the mirror's client sees it: 503 when the upstream could not be
/// reached in time, 502 when it answered something unusable.
fn upstream_error(up: &Upstream, e: RemoteError) -> RegistryError {
    let status = match e {
        RemoteError::Unreachable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_GATEWAY,
    };
    RegistryError::new(
        Code::Unavailable,
        format!("upstream {} failed: {e}", up.host),
    )
    .with_status(status)
}

// ---- single flights ----

/// One future per key at a time: callers that ask while it runs share its result. The future
/// runs in its own task, so a caller that goes away does not cancel it for the others.
struct Flights<T: Clone> {
    running: Mutex<HashMap<String, Shared<BoxFuture<'static, Result<T>>>>>,
}

impl<T: Clone> Default for Flights<T> {
    fn default() -> Flights<T> {
        Flights {
            running: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: Clone + Send + Sync + 'static> Flights<T> {
    async fn run(
        &self,
        key: String,
        work: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let shared = {
            let mut running = crate::lock(&self.running);
            match running.get(&key) {
                Some(s) => s.clone(),
                None => {
                    let task = tokio::spawn(work);
                    let s = async move {
                        task.await.unwrap_or_else(|e| {
                            Err(RegistryError::new(
                                Code::Internal,
                                format!("the upstream fetch failed: {e}"),
                            ))
                        })
                    }
                    .boxed()
                    .shared();
                    running.insert(key.clone(), s.clone());
                    s
                }
            }
        };
        let out = shared.clone().await;
        let mut running = crate::lock(&self.running);
        if running.get(&key).is_some_and(|s| s.ptr_eq(&shared)) {
            running.remove(&key);
        }
        out
    }
}

/// The size of the pieces a blob in flight is handed on in.
const PIECE: usize = 512 << 10;

/// How many of a flight's newest pieces stay in memory (16 MiB): readers keeping up with the
/// upstream are handed these without a copy; one that falls further behind reads the spool.
/// (20 concurrent cold pulls on 2 cores drift several MiB apart: with 4 MiB, a third of what
/// they read came from the spool.)
const RECENT_PIECES: usize = 32;

/// One blob on its way from an upstream, shared by every client that asked for it meanwhile.
/// Its bytes go to a spool file as they come (memory holds the newest [`RECENT_PIECES`],
/// whatever the blob's size); every reader reads at its own pace, up to what is `ready`.
pub struct BlobFlight {
    state: Mutex<FlightState>,
    changed: watch::Sender<u64>,
}

#[derive(Default)]
struct FlightState {
    /// The upstream answered; `total` is its Content-Length.
    opened: bool,
    total: Option<u64>,
    /// Where the bytes go, once opened.
    spool: Option<Arc<Spool>>,
    /// How many of the spool's bytes readers may have: all but the newest piece until the
    /// digest is checked, then all.
    ready: u64,
    /// The newest pieces (at most [`RECENT_PIECES`]) by offset, also in the spool.
    recent: std::collections::VecDeque<(u64, Bytes)>,
    /// Finished: `ready` covers the whole blob, or the reason it failed.
    end: Option<Result<()>>,
    /// The blob turned out to be in the store already; read it there.
    stored_already: bool,
}

enum Opened {
    Streaming(Option<u64>, Arc<Spool>),
    Stored,
    Failed(RegistryError),
}

impl BlobFlight {
    fn new() -> BlobFlight {
        BlobFlight {
            state: Mutex::new(FlightState::default()),
            changed: watch::Sender::new(0),
        }
    }

    fn update(&self, f: impl FnOnce(&mut FlightState)) {
        f(&mut crate::lock(&self.state));
        self.changed.send_modify(|v| *v += 1);
    }

    fn stored_already(&self) -> bool {
        crate::lock(&self.state).stored_already
    }

    /// Waits until `ready` says something about the state.
    async fn wait<R>(&self, mut ready: impl FnMut(&FlightState) -> Option<R>) -> R {
        let mut rx = self.changed.subscribe();
        loop {
            if let Some(r) = ready(&crate::lock(&self.state)) {
                return r;
            }
            // The sender lives as long as `self`.
            let _ = rx.changed().await;
        }
    }

    async fn opened(&self) -> Opened {
        self.wait(|s| {
            if s.stored_already {
                return Some(Opened::Stored);
            }
            if let Some(spool) = &s.spool {
                return Some(Opened::Streaming(s.total, spool.clone()));
            }
            match &s.end {
                Some(Err(e)) => Some(Opened::Failed(e.clone())),
                _ => None,
            }
        })
        .await
    }

    /// Waits for the whole blob; its size (0 when it was in the store already).
    async fn finished(&self) -> Result<u64> {
        self.wait(|s| {
            if s.stored_already {
                return Some(Ok(0));
            }
            match &s.end {
                Some(Ok(())) => Some(Ok(s.ready)),
                Some(Err(e)) => Some(Err(e.clone())),
                None => None,
            }
        })
        .await
    }

    /// The blob's bytes from `start` (to `end`, or to the blob's end) as they become ready; an
    /// error item (which cuts the client's connection) when the flight fails.
    fn reader(
        self: Arc<Self>,
        spool: Arc<Spool>,
        start: u64,
        end: Option<u64>,
    ) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send {
        futures::stream::unfold(Some((self, spool, start)), move |state| async move {
            let (flight, spool, at) = state?;
            if end.is_some_and(|e| at >= e) {
                return None;
            }
            let next = flight
                .wait(|s| {
                    if s.ready > at {
                        let upto = end.map_or(s.ready, |e| s.ready.min(e));
                        // In memory still: a slice of the piece, no copy.
                        let held = s
                            .recent
                            .iter()
                            .find(|(off, p)| *off <= at && at < off + p.len() as u64);
                        return Some(Ok(match held {
                            Some((off, p)) => Next::Held(p.slice(
                                (at - off) as usize
                                    ..(upto.min(off + p.len() as u64) - off) as usize,
                            )),
                            None => Next::Spooled(upto),
                        }));
                    }
                    match &s.end {
                        Some(Ok(())) => Some(Ok(Next::Spooled(at))),
                        Some(Err(e)) => Some(Err(std::io::Error::other(e.to_string()))),
                        None => None,
                    }
                })
                .await;
            let upto = match next {
                Ok(Next::Held(b)) => {
                    let next = at + b.len() as u64;
                    return Some((Ok(b), Some((flight, spool, next))));
                }
                Ok(Next::Spooled(u)) if u > at => u,
                Ok(_) => return None,
                Err(e) => return Some((Err(e), None)),
            };
            let len = (upto - at).min(PIECE as u64) as usize;
            let sp = spool.clone();
            let read = tokio::task::spawn_blocking(move || sp.read_at(at, len))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            match read {
                Ok(b) => {
                    let next = at + b.len() as u64;
                    Some((Ok(b), Some((flight, spool, next))))
                }
                Err(e) => Some((Err(e), None)),
            }
        })
    }
}

/// What a reader of a flight gets next.
enum Next {
    /// These bytes, from a piece still in memory.
    Held(Bytes),
    /// Read the spool up to here.
    Spooled(u64),
}

/// A blob's bytes on their way: an unnamed file in the spool directory, gone when the last
/// reader lets go of it (or the process ends).
pub struct Spool {
    file: Option<std::fs::File>,
}

impl Spool {
    /// A new, empty spool file in `dir` (which must exist).
    pub fn create(dir: &std::path::Path) -> std::io::Result<Spool> {
        use std::os::unix::fs::OpenOptionsExt;
        let unnamed = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE)
            .open(dir);
        let file = match unnamed {
            Ok(f) => f,
            // A filesystem without O_TMPFILE: a named file, removed at once.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR)) => {
                static N: AtomicU64 = AtomicU64::new(0);
                let path = dir.join(format!(
                    ".berth-spool-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)?;
                std::fs::remove_file(&path)?;
                f
            }
            Err(e) => return Err(e),
        };
        Ok(Spool { file: Some(file) })
    }

    fn file(&self) -> &std::fs::File {
        self.file.as_ref().expect("only taken on drop")
    }

    fn write_at(&self, bytes: &[u8], at: u64) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(self.file(), bytes, at)
    }

    /// `len` bytes from `at`, read straight into a new buffer (not zeroed first: with 20
    /// readers, zeroing cost as much as the reading).
    fn read_at(&self, at: u64, len: usize) -> std::io::Result<Bytes> {
        use std::os::fd::AsRawFd;
        let mut buf = bytes::BytesMut::with_capacity(len);
        while buf.len() < len {
            let filled = buf.len();
            let spare = &mut buf.spare_capacity_mut()[..len - filled];
            // SAFETY: pread writes at most `spare.len()` bytes into `spare`, memory this
            // buffer owns; the descriptor is the spool's, open while `self` lives.
            let n = unsafe {
                libc::pread(
                    self.file().as_raw_fd(),
                    spare.as_mut_ptr().cast(),
                    spare.len(),
                    (at + filled as u64) as libc::off_t,
                )
            };
            match n {
                0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                n if n < 0 => {
                    let e = std::io::Error::last_os_error();
                    if e.kind() != std::io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
                // SAFETY: pread initialized the first `n` bytes of the spare capacity.
                n => unsafe { buf.set_len(filled + n as usize) },
            }
        }
        Ok(buf.freeze())
    }
}

impl Drop for Spool {
    /// Freeing a large file's blocks can take a while (a synchronous discard on some disks):
    /// off the request threads when there are any.
    fn drop(&mut self) {
        if let (Some(f), Ok(rt)) = (self.file.take(), tokio::runtime::Handle::try_current()) {
            rt.spawn_blocking(move || drop(f));
        }
    }
}
