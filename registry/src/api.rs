//! The distribution spec's endpoints over a [`Store`].
//!
//! One handler per endpoint; [`handle`] picks it from the parsed route and the method. Every
//! answer carries `Docker-Distribution-API-Version`; every error is a [`RegistryError`].

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_storage::{Digest, Reference, RepoName, Store, StoreError, Tag};
use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use http_body_util::BodyExt;

use crate::auth::{Auth, Grant};
use crate::config::ServerConfig;
use crate::error::{Code, RegistryError, Result};
use crate::manifest::{Kind, Manifest, OCI_INDEX};
use crate::mirror::Mirror;
use crate::routes::{self, Route};

/// What every request handler shares.
pub struct Registry {
    pub store: Store,
    pub config: ServerConfig,
    manifests: ManifestCache,
    /// The pull-through cache, when the config has a `[mirror]` section.
    pub mirror: Option<Mirror>,
    /// Access control; `None` lets everyone do everything.
    auth: Option<Auth>,
    /// What this process's garbage collections did.
    pub collections: Arc<crate::gc::Counters>,
}

impl Registry {
    pub fn new(store: Store, config: ServerConfig) -> Registry {
        Registry {
            store,
            config,
            manifests: ManifestCache::default(),
            mirror: None,
            auth: None,
            collections: Arc::default(),
        }
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

    /// Serves upstream registries' content beside the local repositories.
    pub fn with_mirror(mut self, mirror: Mirror) -> Registry {
        self.mirror = Some(mirror);
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
    entries: std::sync::Mutex<HashMap<(RepoName, Digest), CachedManifest>>,
}

/// When it was read, its media type, its bytes.
type CachedManifest = (std::time::Instant, String, Bytes);

impl ManifestCache {
    fn get(&self, repo: &RepoName, d: &Digest) -> Option<(String, Bytes)> {
        let map = self.entries.lock().unwrap();
        let (at, media_type, body) = map.get(&(repo.clone(), d.clone()))?;
        (at.elapsed() < MANIFEST_TTL).then(|| (media_type.clone(), body.clone()))
    }

    fn insert(&self, repo: &RepoName, d: &Digest, media_type: String, body: Bytes) {
        let mut map = self.entries.lock().unwrap();
        if map.len() >= MANIFEST_CACHE_ENTRIES {
            map.retain(|_, (at, _, _)| at.elapsed() < MANIFEST_TTL);
            if map.len() >= MANIFEST_CACHE_ENTRIES {
                map.clear();
            }
        }
        map.insert(
            (repo.clone(), d.clone()),
            (std::time::Instant::now(), media_type, body),
        );
    }

    fn remove(&self, repo: &RepoName, d: &Digest) {
        self.entries
            .lock()
            .unwrap()
            .remove(&(repo.clone(), d.clone()));
    }
}

pub(crate) type Query = HashMap<String, String>;

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
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let admitted = match &reg.auth {
        Some(auth) => crate::auth::admit(auth, &mut req).await,
        None => Ok(None),
    };
    let answer = match admitted {
        Ok(None) => route(&reg, &path, req).await,
        Ok(Some(resp)) => Ok(resp),
        Err(e) => Err(e),
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
    resp.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    if method == Method::HEAD {
        // HEAD answers carry the GET's headers (Content-Length included) and no body.
        *resp.body_mut() = Body::empty();
    }
    resp
}

async fn route(reg: &Registry, path: &str, req: Request<Body>) -> Result<Response> {
    let method = req.method().clone();
    let is = |m: &Method| method == *m;
    let route = routes::parse(path);
    if let Some(mirror) = &reg.mirror {
        let range = req.headers().get(header::RANGE).cloned();
        if let Some(resp) = mirror
            .intercept(reg, &route, &method, &query(&req), range)
            .await?
        {
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
                Method::GET | Method::HEAD => {
                    let range = req.headers().get(header::RANGE).cloned();
                    get_blob(reg, &repo, &d, range).await
                }
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
        Route::Metrics if is(&Method::GET) => Ok(crate::metrics::render(reg)),
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

/// A manifest URL's reference: a bad digest is DIGEST_INVALID, a bad tag MANIFEST_INVALID.
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
    let d = match manifest_reference(reference)? {
        Reference::Digest(d) => d,
        Reference::Tag(t) => match reg.store.repos.tag(repo, &t).await? {
            Some(d) => d,
            None => return Err(manifest_unknown(reg, repo, t.as_str()).await),
        },
    };
    let (media_type, body) = match reg.manifests.get(repo, &d) {
        Some(hit) => hit,
        None => {
            let Some(media_type) = reg.store.repos.manifest(repo, &d).await? else {
                return Err(manifest_unknown(reg, repo, d.as_str()).await);
            };
            let body = reg.store.blobs.read(&d).await?;
            reg.manifests
                .insert(repo, &d, media_type.clone(), body.clone());
            (media_type, body)
        }
    };
    Ok(response(
        StatusCode::OK,
        &[
            ("content-type", media_type),
            ("content-length", body.len().to_string()),
            ("docker-content-digest", d.to_string()),
            ("etag", format!("\"{d}\"")),
        ],
        Body::from(body),
    ))
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
    match reference.parse::<Reference>() {
        Ok(Reference::Tag(t)) => {
            if !reg.store.repos.delete_tag(repo, &t).await? {
                return Err(manifest_unknown(reg, repo, t.as_str()).await);
            }
        }
        Ok(Reference::Digest(d)) => {
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
        Err(e) => return Err(RegistryError::new(Code::DigestInvalid, e.to_string())),
    }
    Ok(response(
        StatusCode::ACCEPTED,
        &[("content-length", "0".into())],
        Body::empty(),
    ))
}

// ---- blobs ----

/// Parses a `Range: bytes=…` header against a blob of `size` bytes.
pub(crate) fn parse_range(value: &str, size: u64) -> Option<std::ops::Range<u64>> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || size == 0 {
            return None;
        }
        return Some(size.saturating_sub(n)..size);
    }
    let start: u64 = a.parse().ok()?;
    let end = if b.is_empty() {
        size.checked_sub(1)?
    } else {
        b.parse::<u64>().ok()?.min(size.checked_sub(1)?)
    };
    if start > end || start >= size {
        return None;
    }
    Some(start..end + 1)
}

pub(crate) async fn get_blob(
    reg: &Registry,
    repo: &RepoName,
    d: &Digest,
    range_header: Option<HeaderValue>,
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
    let range = match range_header.as_ref().and_then(|v| v.to_str().ok()) {
        None => None,
        Some(r) => match parse_range(r, size) {
            Some(range) => Some(range),
            None => {
                return Err(RegistryError::new(
                    Code::RangeInvalid,
                    format!("range {r} cannot be satisfied by a blob of {size} bytes"),
                )
                .with_header("content-range", format!("bytes */{size}")))
            }
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

/// Loads a session and checks that it belongs to the repository in the URL.
/// Reads `Content-Range: <start>-<end>` (the `bytes ` prefix tolerated).
fn content_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>> {
    let Some(v) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let bad = || {
        RegistryError::new(
            Code::BlobUploadInvalid,
            "Content-Range must be <start>-<end>",
        )
        .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
    };
    let s = v.to_str().map_err(|_| bad())?.trim();
    let s = s
        .strip_prefix("bytes ")
        .or(s.strip_prefix("bytes="))
        .unwrap_or(s);
    let s = s.split('/').next().unwrap_or(s);
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let start: u64 = a.trim().parse().map_err(|_| bad())?;
    let end: u64 = b.trim().parse().map_err(|_| bad())?;
    if end < start {
        return Err(bad());
    }
    Ok(Some((start, end)))
}

/// Where a chunk must start and how long it is, from `Content-Range` and `Content-Length`
/// (the store checks the start against the session).
fn chunk_bounds(headers: &HeaderMap) -> Result<(Option<u64>, Option<u64>)> {
    let declared = content_length(headers);
    match content_range(headers)? {
        None => Ok((None, declared)),
        Some((start, end)) => {
            let len = end - start + 1;
            if declared.is_some_and(|d| d != len) {
                return Err(RegistryError::new(
                    Code::SizeInvalid,
                    format!(
                        "Content-Range covers {len} bytes but Content-Length is {}",
                        declared.unwrap_or(0)
                    ),
                ));
            }
            Ok((Some(start), Some(len)))
        }
    }
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
        .uploads
        .finish_in(repo, id, offset, declared, body, &d)
        .await?;
    reg.store.repos.link_blob(repo, &d).await?;
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

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        let table = [
            ("bytes=0-9", 100, Some(0..10)),
            ("bytes=90-", 100, Some(90..100)),
            ("bytes=-10", 100, Some(90..100)),
            ("bytes=95-200", 100, Some(95..100)),
            ("bytes=100-", 100, None),
            ("bytes=5-2", 100, None),
            ("bytes=0-1,5-6", 100, None),
            ("items=0-1", 100, None),
            ("bytes=0-0", 0, None),
            ("bytes=-0", 100, None),
        ];
        for (h, size, want) in table {
            assert_eq!(parse_range(h, size), want, "{h}");
        }
    }
}
