//! The distribution spec's endpoints over a [`Store`].
//!
//! One handler per endpoint; [`handle`] picks it from the parsed route and the method. Every
//! answer carries `Docker-Distribution-API-Version`; every error is a [`RegistryError`].
//!
//! A [`Front`] (the pull-through mirror) may stand before the handlers: it sees each routed
//! request first and answers it or leaves it to them. The front calls the handlers to serve
//! what it cached; the handlers know it only through the trait, so the arrow points one way.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_storage::{Digest, Reference, RepoName, Store, StoreError, Tag};
use bytes::Bytes;
use futures::{FutureExt, Stream, TryStreamExt};
use http_body_util::BodyExt;

use crate::auth::{Auth, Grant};
use crate::config::ServerConfig;
use crate::error::{Code, RegistryError, Result};
use crate::manifest::{Kind, Manifest, OCI_INDEX};
use crate::routes::{self, Route};

/// A layer in front of the spec handlers: it answers a routed request itself (`Some`), or
/// leaves it to the handlers (`None`). The pull-through mirror is one.
pub trait Front: Send + Sync {
    fn intercept<'a>(
        &'a self,
        reg: &'a Registry,
        route: &'a Route<'a>,
        method: &'a Method,
        query: &'a Query,
        range: Option<HeaderValue>,
    ) -> futures::future::BoxFuture<'a, Result<Option<Response>>>;

    /// Its counters, appended to `/metrics` in Prometheus' text format.
    fn render_metrics(&self, out: &mut String);

    /// The upstreams it caches, with their counters (the mirror's; none for other fronts).
    fn upstreams(&self) -> Vec<UpstreamSummary> {
        Vec::new()
    }
}

/// Another face of the registry on the same port (the web page): it claims the requests that
/// are its own before access control and routing see them, and answers them itself. The spec
/// endpoints never reach it, so their answers do not depend on it.
pub trait Page: Send + Sync {
    /// Whether the request is the page's (its path, and for `/` a browser's `Accept`).
    fn claims(&self, req: &Request<Body>) -> bool;

    fn answer(
        &self,
        reg: Arc<Registry>,
        req: Request<Body>,
    ) -> futures::future::BoxFuture<'static, Response>;
}

/// What the mirror tells about one upstream, for the web page.
#[derive(Debug, Clone, Default)]
pub struct UpstreamSummary {
    /// As configured: the `ns` and first path component that route to it.
    pub host: String,
    pub url: String,
    /// The store's repositories that cache it start with this and `/`.
    pub cache_prefix: String,
    pub manifest_hits: u64,
    pub manifest_misses: u64,
    pub blob_hits: u64,
    pub blob_misses: u64,
    pub errors: u64,
}

/// What every request handler shares.
pub struct Registry {
    pub store: Store,
    pub config: ServerConfig,
    manifests: ManifestCache,
    /// What stands before the handlers: the pull-through cache, when the config has a
    /// `[mirror]` section.
    front: Option<Box<dyn Front>>,
    /// Access control; `None` lets everyone do everything.
    auth: Option<Auth>,
    /// The web page, when it is on.
    page: Option<Arc<dyn Page>>,
    /// What this process's garbage collections did.
    pub collections: Arc<crate::gc::Counters>,
    /// Where events go (`[notifications]`).
    pub notifier: Option<crate::notify::Notifier>,
    /// Log a line per request (`[log] requests`).
    pub log_requests: bool,
}

impl Registry {
    pub fn new(store: Store, config: ServerConfig) -> Registry {
        Registry {
            store,
            config,
            manifests: ManifestCache::default(),
            front: None,
            auth: None,
            page: None,
            collections: Arc::default(),
            notifier: None,
            log_requests: false,
        }
    }

    /// Serves the web page beside the API.
    pub fn with_page(mut self, page: impl Page + 'static) -> Registry {
        self.page = Some(Arc::new(page));
        self
    }

    /// The access control, when `[auth]` is configured.
    pub fn auth(&self) -> Option<&Auth> {
        self.auth.as_ref()
    }

    /// What stands before the handlers (the mirror), if anything.
    pub fn front(&self) -> Option<&dyn Front> {
        self.front.as_deref()
    }

    pub fn with_auth(mut self, auth: Option<Auth>) -> Registry {
        self.auth = auth;
        self
    }

    /// Whether the caller `auth::admit` let in may see (and mount from) `repo`.
    fn may_pull(&self, grant: Option<&Grant>, repo: &str) -> bool {
        match (&self.auth, grant) {
            (None, _) => true,
            (Some(auth), Some(grant)) => auth.may_pull(grant, repo),
            (Some(_), None) => false,
        }
    }

    /// Puts a layer before the handlers (the mirror: upstream registries' content beside the
    /// local repositories).
    pub fn with_front(mut self, front: impl Front + 'static) -> Registry {
        self.front = Some(Box::new(front));
        self
    }
}

/// How long a cached manifest may be served without asking the store again.
const MANIFEST_TTL: std::time::Duration = std::time::Duration::from_secs(5);
const MANIFEST_CACHE_ENTRIES: usize = 4096;

/// Manifests by (repository, digest). Their bytes never change, so only a deletion can make an
/// entry wrong: this process forgets its own deletions at once, and an entry lives at most
/// [`MANIFEST_TTL`], so a deletion made through another process is seen soon after. Tags are
/// never cached: a tag read goes to the store every time.
#[derive(Default)]
struct ManifestCache {
    entries: std::sync::Mutex<CachedManifests>,
}

/// By digest, then by repository: a lookup borrows both keys (no copy of either).
#[derive(Default)]
struct CachedManifests {
    by_digest: HashMap<Digest, HashMap<RepoName, CachedManifest>>,
    len: usize,
}

/// When it was read, and the answer to a GET of it.
#[derive(Clone)]
struct CachedManifest {
    at: std::time::Instant,
    answer: ManifestAnswer,
}

/// A manifest's answer, built once: its header values and its bytes (each clone shares them).
#[derive(Clone)]
struct ManifestAnswer {
    content_type: Option<HeaderValue>,
    content_length: HeaderValue,
    digest: Option<HeaderValue>,
    etag: Option<HeaderValue>,
    body: Bytes,
}

const DOCKER_CONTENT_DIGEST: header::HeaderName =
    header::HeaderName::from_static("docker-content-digest");
const API_VERSION: header::HeaderName =
    header::HeaderName::from_static("docker-distribution-api-version");

impl ManifestAnswer {
    fn new(media_type: &str, d: &Digest, body: Bytes) -> ManifestAnswer {
        ManifestAnswer {
            content_type: HeaderValue::from_str(media_type).ok(),
            content_length: HeaderValue::from(body.len()),
            digest: HeaderValue::from_str(d.as_str()).ok(),
            etag: HeaderValue::from_str(&format!("\"{d}\"")).ok(),
            body,
        }
    }

    fn response(self) -> Response {
        let mut resp = Response::new(Body::from(self.body));
        let h = resp.headers_mut();
        // The four below and the API version `handle` adds, without growing the map.
        h.reserve(5);
        if let Some(v) = self.content_type {
            h.insert(header::CONTENT_TYPE, v);
        }
        h.insert(header::CONTENT_LENGTH, self.content_length);
        if let Some(v) = self.digest {
            h.insert(DOCKER_CONTENT_DIGEST, v);
        }
        if let Some(v) = self.etag {
            h.insert(header::ETAG, v);
        }
        resp
    }
}

impl ManifestCache {
    fn get(&self, repo: &RepoName, d: &Digest) -> Option<ManifestAnswer> {
        let map = crate::lock(&self.entries);
        let hit = map.by_digest.get(d)?.get(repo)?;
        (hit.at.elapsed() < MANIFEST_TTL).then(|| hit.answer.clone())
    }

    fn insert(&self, repo: &RepoName, d: &Digest, answer: ManifestAnswer) {
        let mut map = crate::lock(&self.entries);
        if map.len >= MANIFEST_CACHE_ENTRIES {
            map.by_digest.retain(|_, repos| {
                repos.retain(|_, e| e.at.elapsed() < MANIFEST_TTL);
                !repos.is_empty()
            });
            map.len = map.by_digest.values().map(HashMap::len).sum();
            if map.len >= MANIFEST_CACHE_ENTRIES {
                *map = CachedManifests::default();
            }
        }
        let entry = CachedManifest {
            at: std::time::Instant::now(),
            answer,
        };
        let repos = map.by_digest.entry(d.clone()).or_default();
        if repos.insert(repo.clone(), entry).is_none() {
            map.len += 1;
        }
    }

    fn remove(&self, repo: &RepoName, d: &Digest) {
        let mut map = crate::lock(&self.entries);
        let Some(repos) = map.by_digest.get_mut(d) else {
            return;
        };
        let removed = repos.remove(repo).is_some();
        if repos.is_empty() {
            map.by_digest.remove(d);
        }
        if removed {
            map.len -= 1;
        }
    }
}

/// A request's query parameters.
pub type Query = HashMap<String, String>;

/// Who `auth::admit` let in, when access is controlled.
fn grant(req: &Request<Body>) -> Option<Grant> {
    req.extensions().get::<Grant>().cloned()
}

fn query(req: &Request<Body>) -> Query {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

pub(crate) fn name(raw: &str) -> Result<RepoName> {
    raw.parse()
        .map_err(|e: berth_storage::NameError| RegistryError::new(Code::NameInvalid, e.to_string()))
}

pub(crate) fn digest(raw: &str) -> Result<Digest> {
    raw.parse().map_err(|e: berth_storage::DigestError| {
        RegistryError::new(Code::DigestInvalid, e.to_string())
    })
}

pub(crate) fn unsupported_method() -> RegistryError {
    RegistryError::new(
        Code::Unsupported,
        "the method is not supported on this endpoint",
    )
}

/// The request body as a stream of chunks for the store.
fn body_stream(body: Body) -> impl Stream<Item = std::io::Result<Bytes>> + Send {
    TryStreamExt::map_err(body.into_data_stream(), std::io::Error::other)
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

pub(crate) fn response(
    status: StatusCode,
    headers: &[(&'static str, String)],
    body: Body,
) -> Response {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(*k, v);
        }
    }
    resp
}

/// Answers one request.
pub async fn handle(reg: Arc<Registry>, mut req: Request<Body>) -> Response {
    crate::metrics::REQUESTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if let Some(page) = reg.page.clone() {
        if page.claims(&req) {
            return page.answer(reg, req).await;
        }
    }
    let started = std::time::Instant::now();
    // A clone of the URI shares its bytes: no copy of the path.
    let uri = req.uri().clone();
    let path = uri.path();
    let method = req.method().clone();
    let admitted = match &reg.auth {
        Some(auth) => crate::auth::admit(auth, &mut req).await,
        None => Ok(None),
    };
    // The signed-in user; none for anonymous callers (as distribution's events and logs).
    let user = match req.extensions().get::<Grant>().map(|g| &g.caller) {
        Some(crate::auth::Caller::User(name)) => Some(name.clone()),
        _ => None,
    };
    // The request's id, for its events and its access log line; without either, none (its
    // random bytes are a getrandom call, a seventh of a cached manifest GET's system calls).
    let id = if reg.notifier.is_some() || reg.log_requests {
        uuid::Uuid::new_v4().simple().to_string()
    } else {
        String::new()
    };
    // What the events of this request will need, read before the handlers consume it.
    let facts = reg.notifier.as_ref().map(|_| crate::notify::RequestFacts {
        id: id.clone(),
        method: method.clone(),
        path: path.to_string(),
        query: query(&req),
        headers: req.headers().clone(),
        peer: req.extensions().get::<crate::Peer>().map(|p| p.0),
        tls: req
            .extensions()
            .get::<crate::Transport>()
            .is_some_and(|t| t.tls),
        user: user.clone(),
    });
    let answer = async {
        match admitted {
            Ok(None) => route(&reg, path, req).await,
            Ok(Some(resp)) => Ok(resp),
            Err(e) => Err(e),
        }
    };
    // A bug that panics costs the request it met, answered 500, never the server: the
    // connection and every other request go on. (Locks here tolerate a holder that panicked:
    // see `crate::lock`.)
    let answer = match std::panic::AssertUnwindSafe(answer).catch_unwind().await {
        Ok(answer) => answer,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(%method, %path, panic = %what, "the request's handler panicked");
            Err(RegistryError::new(
                Code::Internal,
                "internal error: the registry failed while answering this request",
            ))
        }
    };
    let mut resp = match answer {
        Ok(r) => r,
        Err(e) => {
            if e.status.is_server_error() {
                tracing::error!(%method, %path, error = %e, "request failed");
            } else {
                tracing::debug!(%method, %path, error = %e, "request refused");
            }
            e.into_response()
        }
    };
    resp.headers_mut()
        .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    if let (Some(n), Some(f)) = (&reg.notifier, &facts) {
        let store = &reg.store;
        let (status, headers) = (resp.status(), resp.headers().clone());
        n.observe(f, status, &headers, |d: String| async move {
            match d.parse::<Digest>() {
                Ok(d) => store.blobs.stat(&d).await.ok().flatten().unwrap_or(0),
                Err(_) => 0,
            }
        })
        .await;
    }
    if reg.log_requests {
        // The answer's body: its declared length, else the length of a body already whole.
        let bytes = match method {
            Method::HEAD => 0,
            _ => resp
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .or_else(|| http_body::Body::size_hint(resp.body()).exact())
                .unwrap_or(0),
        };
        tracing::info!(
            target: "berth::access",
            request_id = %id,
            %method,
            %path,
            status = resp.status().as_u16(),
            bytes,
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            user = user.as_deref().unwrap_or(""),
            "request"
        );
    }
    if method == Method::HEAD {
        // HEAD answers carry the GET's headers (Content-Length included) and no body.
        *resp.body_mut() = Body::empty();
    }
    resp
}

/// `/metrics`: the request counter and the front's counters.
fn metrics(reg: &Registry) -> Response {
    let text = crate::metrics::text(|out| {
        if let Some(front) = &reg.front {
            front.render_metrics(out);
        }
        reg.collections.render(out);
    });
    response(
        StatusCode::OK,
        &[
            ("content-type", crate::metrics::CONTENT_TYPE.to_string()),
            ("content-length", text.len().to_string()),
        ],
        Body::from(text),
    )
}

/// Answers a request that access control has let through (or that needs none): the front,
/// then the spec handlers.
pub(crate) async fn route(reg: &Registry, path: &str, req: Request<Body>) -> Result<Response> {
    let method = req.method().clone();
    let is = |m: &Method| method == *m;
    let route = routes::parse(path);
    if let Some(front) = &reg.front {
        let range = match route {
            Route::Blob(_, d) if is(&Method::GET) => wanted_range(req.headers(), d),
            _ => None,
        };
        let query = query(&req);
        if let Some(resp) = front.intercept(reg, &route, &method, &query, range).await? {
            return Ok(resp);
        }
    }
    match route {
        Route::Base if is(&Method::GET) || is(&Method::HEAD) => Ok(json_response(
            StatusCode::OK,
            Bytes::from_static(b"{}"),
            &[],
        )),
        Route::Catalog if is(&Method::GET) => catalog(reg, query(&req), grant(&req)).await,
        Route::Tags(n) if is(&Method::GET) => tags(reg, &name(n)?, query(&req)).await,
        Route::Manifest(n, r) => {
            let repo = name(n)?;
            match method {
                Method::GET | Method::HEAD => get_manifest(reg, &repo, r).await,
                Method::PUT => put_manifest(reg, &repo, r, req).await,
                Method::DELETE => delete_manifest(reg, &repo, r).await,
                _ => Err(unsupported_method()),
            }
        }
        Route::Blob(n, d) => {
            let repo = name(n)?;
            let d = digest(d)?;
            match method {
                Method::GET => {
                    let range = wanted_range(req.headers(), d.as_str());
                    get_blob(reg, &repo, &d, BlobRead::Get(range)).await
                }
                Method::HEAD => get_blob(reg, &repo, &d, BlobRead::Head).await,
                Method::DELETE => delete_blob(reg, &repo, &d).await,
                _ => Err(unsupported_method()),
            }
        }
        Route::UploadStart(n) if is(&Method::POST) => start_upload(reg, &name(n)?, req).await,
        Route::Upload(n, id) => {
            let repo = name(n)?;
            match method {
                Method::GET => upload_status(reg, &repo, id).await,
                Method::PATCH => patch_upload(reg, &repo, id, req).await,
                Method::PUT => finish_upload(reg, &repo, id, req).await,
                Method::DELETE => cancel_upload(reg, &repo, id).await,
                _ => Err(unsupported_method()),
            }
        }
        Route::Referrers(n, d) if is(&Method::GET) => {
            referrers(reg, &name(n)?, &digest(d)?, query(&req)).await
        }
        Route::Search if is(&Method::GET) => search(reg, query(&req), grant(&req)).await,
        Route::Metrics if is(&Method::GET) => Ok(metrics(reg)),
        Route::Livez if is(&Method::GET) || is(&Method::HEAD) => Ok(health(StatusCode::OK, "ok")),
        Route::Readyz if is(&Method::GET) || is(&Method::HEAD) => Ok(readiness(reg).await),
        Route::NotFound => Err(RegistryError::new(Code::NameUnknown, "no such endpoint")
            .with_status(StatusCode::NOT_FOUND)),
        _ => Err(unsupported_method()),
    }
}

/// How long `/readyz` waits for the store to answer.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn health(status: StatusCode, text: &str) -> Response {
    let body = format!("{text}\n");
    response(
        status,
        &[
            ("content-type", "text/plain; charset=utf-8".to_string()),
            ("content-length", body.len().to_string()),
        ],
        Body::from(body),
    )
}

/// `/readyz`: 200 while the store answers, 503 with the reason while it does not.
async fn readiness(reg: &Registry) -> Response {
    let probe = reg.store.backend().reachable();
    match tokio::time::timeout(READY_TIMEOUT, probe).await {
        Ok(Ok(())) => health(StatusCode::OK, "ok"),
        Ok(Err(e)) => {
            tracing::warn!("not ready: the store does not answer: {e}");
            health(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("store unreachable: {e}"),
            )
        }
        Err(_) => health(
            StatusCode::SERVICE_UNAVAILABLE,
            "store unreachable: no answer within 5 seconds",
        ),
    }
}

pub(crate) fn json_response(
    status: StatusCode,
    body: Bytes,
    extra: &[(&'static str, String)],
) -> Response {
    let mut headers = vec![
        ("content-type", "application/json".to_string()),
        ("content-length", body.len().to_string()),
    ];
    headers.extend_from_slice(extra);
    response(status, &headers, Body::from(body))
}

// ---- manifests ----

/// A manifest URL's reference for a PUT: a bad digest is DIGEST_INVALID, a bad tag
/// MANIFEST_INVALID.
pub(crate) fn manifest_reference(raw: &str) -> Result<Reference> {
    raw.parse().map_err(|e: berth_storage::NameError| {
        let code = if raw.contains(':') {
            Code::DigestInvalid
        } else {
            Code::ManifestInvalid
        };
        RegistryError::new(code, e.to_string())
    })
}

/// A manifest URL's reference for a read or a delete: one that is neither a tag nor a digest
/// names nothing the registry could hold, so it is unknown (404 MANIFEST_UNKNOWN, as
/// distribution and the conformance suite have it), not a bad request.
pub(crate) fn known_reference(raw: &str) -> Result<Reference> {
    raw.parse().map_err(|e: berth_storage::NameError| {
        RegistryError::new(Code::ManifestUnknown, e.to_string())
            .with_detail(serde_json::json!({ "reference": raw }))
    })
}

async fn repo_exists(reg: &Registry, repo: &RepoName) -> bool {
    reg.store.repos.exists(repo).await.unwrap_or(false)
}

async fn manifest_unknown(reg: &Registry, repo: &RepoName, reference: &str) -> RegistryError {
    if repo_exists(reg, repo).await {
        RegistryError::new(Code::ManifestUnknown, "manifest unknown to registry")
            .with_detail(serde_json::json!({ "reference": reference }))
    } else {
        RegistryError::new(Code::NameUnknown, "repository name not known to registry")
            .with_detail(serde_json::json!({ "name": repo.as_str() }))
    }
}

pub(crate) async fn get_manifest(
    reg: &Registry,
    repo: &RepoName,
    reference: &str,
) -> Result<Response> {
    let d = match known_reference(reference)? {
        Reference::Digest(d) => d,
        Reference::Tag(t) => match reg.store.repos.tag(repo, &t).await? {
            Some(d) => d,
            None => return Err(manifest_unknown(reg, repo, t.as_str()).await),
        },
    };
    let answer = match reg.manifests.get(repo, &d) {
        Some(hit) => hit,
        None => {
            let Some(media_type) = reg.store.repos.manifest(repo, &d).await? else {
                return Err(manifest_unknown(reg, repo, d.as_str()).await);
            };
            let body = reg.store.blobs.read(&d).await?;
            let answer = ManifestAnswer::new(&media_type, &d, body);
            reg.manifests.insert(repo, &d, answer.clone());
            answer
        }
    };
    Ok(answer.response())
}

fn manifest_too_large(limit: usize) -> RegistryError {
    RegistryError::new(
        Code::SizeInvalid,
        format!("manifest is larger than the {limit} bytes this registry accepts"),
    )
    .with_status(StatusCode::PAYLOAD_TOO_LARGE)
}

async fn read_limited(body: Body, limit: usize) -> Result<Bytes> {
    let limited = http_body_util::Limited::new(body, limit);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(manifest_too_large(limit)),
        Err(e) => Err(RegistryError::new(
            Code::ManifestInvalid,
            format!("reading the manifest failed: {e}"),
        )),
    }
}

async fn put_manifest(
    reg: &Registry,
    repo: &RepoName,
    reference: &str,
    req: Request<Body>,
) -> Result<Response> {
    let limit = reg.config.max_manifest_size;
    if content_length(req.headers()).is_some_and(|n| n > limit as u64) {
        return Err(manifest_too_large(limit));
    }
    let reference = manifest_reference(reference)?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_string())
        .unwrap_or_default();
    let query = query(&req);
    let body = read_limited(req.into_body(), limit).await?;
    let manifest = Manifest::parse(&body, &content_type)?;
    let d = match &reference {
        Reference::Digest(want) => {
            let got = Digest::of(want.algorithm(), &body);
            if &got != want {
                return Err(RegistryError::new(
                    Code::DigestInvalid,
                    format!("manifest has digest {got}, not {want}"),
                ));
            }
            got
        }
        Reference::Tag(_) => Digest::sha256_of(&body),
    };
    let blob_unknown = |d: &Digest| {
        RegistryError::new(
            Code::ManifestBlobUnknown,
            format!("manifest references {d} which is not in {repo}"),
        )
        .with_detail(serde_json::json!({ "digest": d.to_string() }))
    };
    // Every referenced blob or child manifest must already be in this repository.
    for r in &manifest.references {
        let present = match manifest.kind {
            Kind::Image if r.foreign => true,
            Kind::Image => {
                reg.store.repos.has_blob(repo, &r.digest).await?
                    && reg.store.blobs.exists(&r.digest).await?
            }
            Kind::Index => reg.store.repos.manifest(repo, &r.digest).await?.is_some(),
        };
        if !present {
            return Err(blob_unknown(&r.digest));
        }
    }
    let size = body.len() as u64;
    reg.store.blobs.put_bytes(&d, body.clone()).await?;
    // A blob a collection deleted between the check above and the link is reported missing
    // here (see berth_storage::gc): the manifest is taken back and the client pushes it again.
    let missing = reg
        .store
        .repos
        .link_manifest(repo, &d, &manifest.media_type, &body)
        .await?;
    if let Some(gone) = missing.iter().find(|m| {
        manifest
            .references
            .iter()
            .any(|r| &r.digest == *m && !(manifest.kind == Kind::Image && r.foreign))
    }) {
        reg.store.repos.unlink_manifest(repo, &d).await?;
        return Err(blob_unknown(gone));
    }
    if let Some(subject) = &manifest.subject {
        reg.store
            .repos
            .add_referrer(repo, subject, &manifest.as_referrer(&d, size))
            .await?;
    }
    let mut tags: Vec<Tag> = Vec::new();
    if let Reference::Tag(t) = &reference {
        tags.push(t.clone());
    }
    // OCI 1.1 lets a PUT by digest carry `?tag=` parameters.
    for (k, v) in &query {
        if k == "tag" {
            tags.push(v.parse().map_err(|e: berth_storage::NameError| {
                RegistryError::new(Code::ManifestInvalid, e.to_string())
            })?);
        }
    }
    for t in &tags {
        reg.store.repos.set_tag(repo, t, &d).await?;
    }
    let mut headers = vec![
        ("location", format!("/v2/{repo}/manifests/{d}")),
        ("docker-content-digest", d.to_string()),
        ("content-length", "0".to_string()),
    ];
    if let Some(s) = &manifest.subject {
        headers.push(("oci-subject", s.to_string()));
    }
    Ok(response(StatusCode::CREATED, &headers, Body::empty()))
}

fn deletion_disabled() -> RegistryError {
    RegistryError::new(Code::Unsupported, "deletion is disabled on this registry")
}

async fn delete_manifest(reg: &Registry, repo: &RepoName, reference: &str) -> Result<Response> {
    if !reg.config.delete {
        return Err(deletion_disabled());
    }
    match known_reference(reference)? {
        Reference::Tag(t) => {
            if !reg.store.repos.delete_tag(repo, &t).await? {
                return Err(manifest_unknown(reg, repo, t.as_str()).await);
            }
        }
        Reference::Digest(d) => {
            if reg.store.repos.manifest(repo, &d).await?.is_none() {
                return Err(manifest_unknown(reg, repo, d.as_str()).await);
            }
            // Forget the referrer record and every tag that pointed here, as distribution does.
            if let Ok(body) = reg.store.blobs.read(&d).await {
                if let Ok(m) = Manifest::parse(&body, "") {
                    if let Some(s) = m.subject {
                        reg.store.repos.remove_referrer(repo, &s, &d).await?;
                    }
                }
            }
            for t in reg.store.repos.tags_of(repo, &d).await? {
                reg.store.repos.delete_tag(repo, &t).await?;
            }
            reg.store.repos.unlink_manifest(repo, &d).await?;
            reg.manifests.remove(repo, &d);
        }
    }
    Ok(response(
        StatusCode::ACCEPTED,
        &[("content-length", "0".into())],
        Body::empty(),
    ))
}

// ---- blobs ----

/// A read of a blob: a HEAD, or a GET with the `Range` header to honour (already dropped by
/// [`wanted_range`] when `If-Range` does not match).
#[derive(Debug, Clone)]
pub(crate) enum BlobRead {
    Head,
    Get(Option<HeaderValue>),
}

/// The `Range` a GET of a blob whose ETag is `"<digest>"` asks for: none when `If-Range` names
/// another entity tag or a date (a blob has no Last-Modified to match), as RFC 9110 §13.1.5
/// says.
pub(crate) fn wanted_range(headers: &HeaderMap, digest: &str) -> Option<HeaderValue> {
    let range = headers.get(header::RANGE)?;
    match headers.get(header::IF_RANGE) {
        None => Some(range.clone()),
        Some(v) => {
            let v = v.as_bytes();
            let tag = v.strip_prefix(b"\"").and_then(|t| t.strip_suffix(b"\""));
            (tag == Some(digest.as_bytes())).then(|| range.clone())
        }
    }
}

/// 416 for a range the blob cannot satisfy: `Content-Range: bytes */SIZE` and no body (the
/// spec has no error code for it; RANGE_INVALID is about upload chunks).
pub(crate) fn range_not_satisfiable(d: &Digest, size: u64) -> Response {
    response(
        StatusCode::RANGE_NOT_SATISFIABLE,
        &[
            ("content-range", format!("bytes */{size}")),
            ("content-length", "0".to_string()),
            ("docker-content-digest", d.to_string()),
            ("accept-ranges", "bytes".to_string()),
        ],
        Body::empty(),
    )
}

/// Answers a blob read. A HEAD never opens the blob (on S3: no GetObject), only stats it.
pub(crate) async fn get_blob(
    reg: &Registry,
    repo: &RepoName,
    d: &Digest,
    read: BlobRead,
) -> Result<Response> {
    let blob_unknown = || {
        RegistryError::new(Code::BlobUnknown, "blob unknown to registry")
            .with_detail(serde_json::json!({ "digest": d.to_string() }))
    };
    if !reg.store.repos.has_blob(repo, d).await? {
        return Err(blob_unknown());
    }
    let Some(size) = reg.store.blobs.stat(d).await? else {
        return Err(blob_unknown());
    };
    let mut out = vec![
        ("content-type", "application/octet-stream".to_string()),
        ("docker-content-digest", d.to_string()),
        ("accept-ranges", "bytes".to_string()),
        ("etag", format!("\"{d}\"")),
    ];
    let range_header = match read {
        BlobRead::Head => {
            out.push(("content-length", size.to_string()));
            return Ok(response(StatusCode::OK, &out, Body::empty()));
        }
        BlobRead::Get(r) => r,
    };
    let range = match range_header.and_then(|v| crate::range::parse_range(v.as_bytes())) {
        None => None,
        Some(r) => match r.resolve(size) {
            Some(range) => Some(range),
            None => return Ok(range_not_satisfiable(d, size)),
        },
    };
    let status = match &range {
        Some(r) => {
            out.push((
                "content-range",
                format!("bytes {}-{}/{size}", r.start, r.end - 1),
            ));
            out.push(("content-length", (r.end - r.start).to_string()));
            StatusCode::PARTIAL_CONTENT
        }
        None => {
            out.push(("content-length", size.to_string()));
            StatusCode::OK
        }
    };
    let stream = reg.store.blobs.get(d, range).await?;
    Ok(response(status, &out, Body::from_stream(stream)))
}

async fn delete_blob(reg: &Registry, repo: &RepoName, d: &Digest) -> Result<Response> {
    if !reg.config.delete {
        return Err(deletion_disabled());
    }
    if !reg.store.repos.unlink_blob(repo, d).await? {
        return Err(
            RegistryError::new(Code::BlobUnknown, "blob unknown to registry")
                .with_detail(serde_json::json!({ "digest": d.to_string() })),
        );
    }
    Ok(response(
        StatusCode::ACCEPTED,
        &[("content-length", "0".into())],
        Body::empty(),
    ))
}

// ---- uploads ----

fn blob_created(repo: &RepoName, d: &Digest) -> Response {
    response(
        StatusCode::CREATED,
        &[
            ("location", format!("/v2/{repo}/blobs/{d}")),
            ("docker-content-digest", d.to_string()),
            ("content-length", "0".to_string()),
        ],
        Body::empty(),
    )
}

fn upload_accepted(status: StatusCode, repo: &RepoName, id: &str, offset: u64) -> Response {
    response(
        status,
        &[
            ("location", format!("/v2/{repo}/blobs/uploads/{id}")),
            ("range", format!("0-{}", offset.saturating_sub(1))),
            ("docker-upload-uuid", id.to_string()),
            ("content-length", "0".to_string()),
        ],
        Body::empty(),
    )
}

async fn start_upload(reg: &Registry, repo: &RepoName, req: Request<Body>) -> Result<Response> {
    let q = query(&req);
    if let Some(m) = q.get("mount") {
        let d = digest(m)?;
        let mountable = match q.get("from") {
            Some(from) => match from.parse::<RepoName>() {
                Ok(from) if reg.may_pull(grant(&req).as_ref(), from.as_str()) => {
                    reg.store.repos.has_blob(&from, &d).await?
                }
                _ => false,
            },
            // Automatic mount (OCI 1.1): any repository's copy will do, unless access is
            // controlled: then the caller must name a source it may pull.
            None => reg.auth.is_none(),
        };
        if mountable && reg.store.blobs.exists(&d).await? {
            reg.store.repos.link_blob(repo, &d).await?;
            return Ok(blob_created(repo, &d));
        }
    }
    if let Some(want) = q.get("digest") {
        let d = digest(want)?;
        let declared = content_length(req.headers());
        let n = reg
            .store
            .blobs
            .put(&d, body_stream(req.into_body()))
            .await?;
        if let Some(declared) = declared {
            if declared != n {
                return Err(StoreError::SizeMismatch {
                    declared,
                    actual: n,
                }
                .into());
            }
        }
        reg.store.repos.link_blob(repo, &d).await?;
        return Ok(blob_created(repo, &d));
    }
    let session = reg.store.uploads.start(repo).await?;
    Ok(upload_accepted(StatusCode::ACCEPTED, repo, &session.id, 0))
}

/// Where a chunk must start and how long it is, from `Content-Range` and `Content-Length`
/// (the store checks the start against the session). A malformed range, or one whose length
/// does not fit in 64 bits, is 416.
fn chunk_bounds(headers: &HeaderMap) -> Result<(Option<u64>, Option<u64>)> {
    let declared = content_length(headers);
    let Some(v) = headers.get(header::CONTENT_RANGE) else {
        return Ok((None, declared));
    };
    let Some((start, len)) = crate::range::parse_chunk_range(v.as_bytes()) else {
        return Err(RegistryError::new(
            Code::BlobUploadInvalid,
            "Content-Range must be <start>-<end>, with start <= end < 2^64 - 1",
        )
        .with_status(StatusCode::RANGE_NOT_SATISFIABLE));
    };
    if let Some(d) = declared.filter(|d| *d != len) {
        return Err(RegistryError::new(
            Code::SizeInvalid,
            format!("Content-Range covers {len} bytes but Content-Length is {d}"),
        ));
    }
    Ok((Some(start), Some(len)))
}

async fn patch_upload(
    reg: &Registry,
    repo: &RepoName,
    id: &str,
    req: Request<Body>,
) -> Result<Response> {
    let (offset, declared) = chunk_bounds(req.headers())?;
    let s = reg
        .store
        .uploads
        .append_in(repo, id, offset, declared, body_stream(req.into_body()))
        .await?;
    Ok(upload_accepted(StatusCode::ACCEPTED, repo, id, s.offset))
}

async fn finish_upload(
    reg: &Registry,
    repo: &RepoName,
    id: &str,
    req: Request<Body>,
) -> Result<Response> {
    let q = query(&req);
    let Some(want) = q.get("digest") else {
        return Err(RegistryError::new(
            Code::DigestInvalid,
            "the digest query parameter is required to complete an upload",
        ));
    };
    let d = digest(want)?;
    // A final chunk may ride on the PUT.
    let (offset, declared) = chunk_bounds(req.headers())?;
    let body = body_stream(req.into_body());
    reg.store
        .finish_upload(repo, id, offset, declared, body, &d)
        .await?;
    Ok(blob_created(repo, &d))
}

async fn upload_status(reg: &Registry, repo: &RepoName, id: &str) -> Result<Response> {
    let s = reg.store.uploads.status_in(repo, id).await?;
    Ok(upload_accepted(StatusCode::NO_CONTENT, repo, id, s.offset))
}

async fn cancel_upload(reg: &Registry, repo: &RepoName, id: &str) -> Result<Response> {
    reg.store.uploads.cancel_in(repo, id).await?;
    Ok(response(
        StatusCode::NO_CONTENT,
        &[("content-length", "0".into())],
        Body::empty(),
    ))
}

// ---- listings ----

/// Reads `n` and `last` for a paginated listing.
pub(crate) fn page_params(q: &Query) -> Result<(Option<usize>, Option<String>)> {
    let n = match q.get("n") {
        None => None,
        Some(v) => Some(v.parse::<usize>().map_err(|_| {
            RegistryError::new(Code::Unsupported, format!("n={v} is not a count"))
                .with_status(StatusCode::BAD_REQUEST)
        })?),
    };
    Ok((n, q.get("last").cloned()))
}

pub(crate) fn next_link(
    path: &str,
    n: Option<usize>,
    last: Option<&String>,
    more: bool,
) -> Vec<(&'static str, String)> {
    match (more, last, n) {
        (true, Some(last), Some(n)) => {
            let q: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("n", &n.to_string())
                .append_pair("last", last)
                .finish();
            vec![("link", format!("<{path}?{q}>; rel=\"next\""))]
        }
        _ => Vec::new(),
    }
}

pub(crate) async fn tags(reg: &Registry, repo: &RepoName, q: Query) -> Result<Response> {
    let (n, last) = page_params(&q)?;
    let page = if n == Some(0) {
        berth_storage::Page::default()
    } else {
        reg.store.repos.tags(repo, last.as_deref(), n).await?
    };
    if page.items.is_empty() && last.is_none() && !repo_exists(reg, repo).await {
        return Err(
            RegistryError::new(Code::NameUnknown, "repository name not known to registry")
                .with_detail(serde_json::json!({ "name": repo.as_str() })),
        );
    }
    let link = next_link(
        &format!("/v2/{repo}/tags/list"),
        n,
        page.items.last(),
        page.more,
    );
    let body =
        serde_json::to_vec(&serde_json::json!({ "name": repo.as_str(), "tags": page.items }))
            .unwrap_or_default();
    Ok(json_response(StatusCode::OK, body.into(), &link))
}

async fn catalog(reg: &Registry, q: Query, grant: Option<Grant>) -> Result<Response> {
    let (n, last) = page_params(&q)?;
    let page = if n == Some(0) {
        berth_storage::Page::default()
    } else if reg.auth.is_some() {
        // Only what the caller may pull, paginated after filtering.
        let mut items = reg.store.repos.catalog(last.as_deref(), None).await?.items;
        items.retain(|r| reg.may_pull(grant.as_ref(), r));
        let more = n.is_some_and(|n| items.len() > n);
        items.truncate(n.unwrap_or(usize::MAX));
        berth_storage::Page { items, more }
    } else {
        reg.store.repos.catalog(last.as_deref(), n).await?
    };
    let link = next_link("/v2/_catalog", n, page.items.last(), page.more);
    let body =
        serde_json::to_vec(&serde_json::json!({ "repositories": page.items })).unwrap_or_default();
    Ok(json_response(StatusCode::OK, body.into(), &link))
}

pub(crate) async fn referrers(
    reg: &Registry,
    repo: &RepoName,
    subject: &Digest,
    q: Query,
) -> Result<Response> {
    let mut list = reg.store.repos.referrers(repo, subject).await?;
    let mut extra = Vec::new();
    if let Some(t) = q.get("artifactType") {
        list.retain(|d| d.artifact_type.as_deref() == Some(t.as_str()));
        extra.push(("oci-filters-applied", "artifactType".to_string()));
    }
    let body = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": list,
    }))
    .unwrap_or_default();
    let mut resp = json_response(StatusCode::OK, body.into(), &extra);
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static(OCI_INDEX));
    Ok(resp)
}

/// `GET /v1/search?q=…&n=…`: docker's search API over the catalog.
async fn search(reg: &Registry, q: Query, grant: Option<Grant>) -> Result<Response> {
    let term = q.get("q").cloned().unwrap_or_default().to_lowercase();
    let limit: usize = q
        .get("n")
        .and_then(|n| n.parse().ok())
        .unwrap_or(25)
        .clamp(1, 100);
    let all = reg.store.repos.catalog(None, None).await?.items;
    let results: Vec<serde_json::Value> = all
        .iter()
        .filter(|name| name.contains(&term) && reg.may_pull(grant.as_ref(), name))
        .take(limit)
        .map(|name| {
            serde_json::json!({
                "name": name,
                "description": "",
                "star_count": 0,
                "is_official": name.starts_with("library/"),
                "is_automated": false,
            })
        })
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({
        "num_results": results.len(),
        "num_pages": 1,
        "page": 1,
        "page_size": limit,
        "query": term,
        "results": results,
    }))
    .unwrap_or_default();
    Ok(json_response(StatusCode::OK, body.into(), &[]))
}
