//! berth-remote, the registry HTTP client: everything berth says to a distribution-spec
//! registry, and the image references ([`reference`]) people name images with.
//!
//! A crate of its own so that both sides can link it alone: the client (pull, push, search,
//! login) and the registry's mirror (fetching from upstreams). It knows nothing of either:
//! it takes a registry, a repository and a reference, and gives bytes, digests and streams. [`Remote`] is cheap to clone (an `Arc`)
//! and shares one connection pool, token cache and scheme cache between clones.
//!
//! - A *registry* argument is a host as a reference names it (`docker.io`, `localhost:5000`,
//!   `ghcr.io`) or a base URL (`http://127.0.0.1:5000`, `https://mirror.lan/`). `docker.io`
//!   is served by `registry-1.docker.io`. A bare host is reached over HTTPS, except loopback
//!   hosts (127.0.0.0/8, `::1`, `localhost`) and those in [`RemoteConfig::insecure`], which
//!   are probed over HTTPS once and fall back to plain HTTP, as docker does.
//! - Reads (manifests, blobs, tags) go first to the registry's configured mirrors, each asked
//!   with `?ns=<registry>` as containerd does, then to the registry itself.
//! - A registry host's own CA certificates and client certificate come from certs.d
//!   directories laid out as docker's ([`certs`]); a certificate failure names the directory
//!   to put the CA in.
//! - Auth follows the registry's `WWW-Authenticate` challenge ([`auth`]): Basic, or Bearer
//!   tokens from the realm, cached per (host, scope).
//! - Idempotent requests are retried with exponential backoff on 429, 5xx and dropped
//!   connections; a blob body cut short is resumed with `Range` from where it stopped, and a
//!   whole-blob download is verified against its digest while it streams ([`BlobStream`]).

pub mod auth;
pub mod certs;
pub mod config;
pub mod credentials;
pub mod platform;
pub mod reference;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use berth_storage::{ByteStream, Digest, Hasher, Mismatch, Reference, RepoName};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, RANGE};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use auth::{AuthCache, Challenge};
pub use config::ConfigError;
pub use platform::{Platform, PlatformError};

pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MEDIA_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const MEDIA_DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const MEDIA_OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// The `Accept` header for manifests: every manifest and index type berth understands.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// Manifests larger than this are refused (distribution's own limit is 4 MiB).
pub const MAX_MANIFEST_LEN: usize = 4 << 20;

/// Whether a media type is an index (a list of per-platform manifests).
pub fn is_index(media_type: &str) -> bool {
    media_type == MEDIA_OCI_INDEX || media_type == MEDIA_DOCKER_LIST
}

/// A user name and password for one registry host.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({}, ***)", self.username)
    }
}

/// How a [`Remote`] reaches registries.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// Hosts (`host` or `host:port`) that may be reached over plain HTTP or unverified TLS,
    /// beyond the loopback hosts that always may.
    pub insecure: Vec<String>,
    /// The host (`registry.lan:5000`) that answers for `docker.io`: names without a registry
    /// (`busybox`) are pulled from, pushed to and searched on it. `None`: Docker Hub.
    pub default_registry: Option<String>,
    /// Mirror base URLs to try, in order, before a registry (keyed by registry host).
    pub mirrors: BTreeMap<String, Vec<String>>,
    /// Credentials by registry host (`docker.io`, `localhost:5000`).
    pub credentials: BTreeMap<String, Credential>,
    /// Bearer tokens by registry host, sent as they are on every request to that host (a
    /// registry token issued out of band, as the mirror's upstream config may give one).
    pub tokens: BTreeMap<String, String>,
    /// Credential helpers, asked before `credentials`.
    pub helpers: credentials::Helpers,
    /// certs.d roots holding per-host CA and client certificates ([`certs`]), searched in
    /// order.
    pub certs_dirs: Vec<std::path::PathBuf>,
    pub user_agent: String,
    /// Further attempts after a retryable failure (429, 5xx, a dropped connection).
    pub retries: u32,
    /// The first backoff; each retry doubles it.
    pub backoff: Duration,
    pub connect_timeout: Duration,
    /// Longest wait for any one read from a registry's connection (headers or a body chunk).
    pub read_timeout: Option<Duration>,
}

impl Default for RemoteConfig {
    fn default() -> RemoteConfig {
        RemoteConfig {
            insecure: Vec::new(),
            default_registry: None,
            mirrors: BTreeMap::new(),
            credentials: BTreeMap::new(),
            helpers: credentials::Helpers::default(),
            certs_dirs: Vec::new(),
            user_agent: format!("berth/{}", env!("CARGO_PKG_VERSION")),
            retries: 4,
            backoff: Duration::from_millis(200),
            connect_timeout: Duration::from_secs(15),
            read_timeout: None,
            tokens: BTreeMap::new(),
        }
    }
}

/// What went wrong talking to a registry. Messages are one line a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("invalid registry {0:?}")]
    InvalidRegistry(String),
    #[error("cannot reach registry {registry}: {message}")]
    Unreachable { registry: String, message: String },
    #[error("{registry}: unauthorized: {message}")]
    Unauthorized { registry: String, message: String },
    #[error("{registry}: denied: {message}")]
    Denied { registry: String, message: String },
    #[error("{registry}: {what} not found: {message}")]
    NotFound {
        registry: String,
        what: String,
        message: String,
    },
    #[error("{registry} answered {status} to {method} {path}: {message}")]
    Status {
        registry: String,
        status: u16,
        method: String,
        path: String,
        message: String,
    },
    #[error("{registry}: {message}")]
    Protocol { registry: String, message: String },
    /// A host's certs.d directory holds something unusable.
    #[error("{registry}: {message}")]
    Certificates { registry: String, message: String },
    #[error(transparent)]
    Mismatch(#[from] Mismatch),
    #[error("reading the content to send failed: {0}")]
    Source(std::io::Error),
    #[error("no matching manifest for {wanted} in the manifest list entries (the index has: {available})")]
    NoPlatform { wanted: String, available: String },
}

impl RemoteError {
    /// Failures worth another attempt: the network, or a registry that is briefly unwell.
    pub fn is_retryable(&self) -> bool {
        match self {
            RemoteError::Unreachable { .. } => true,
            RemoteError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, RemoteError::NotFound { .. })
    }
}

pub type Result<T, E = RemoteError> = std::result::Result<T, E>;

/// A manifest or index as a registry served it.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub bytes: Bytes,
    pub media_type: String,
    /// The digest of `bytes` (verified against the request when it named a digest).
    pub digest: Digest,
}

/// What a HEAD of a manifest says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

/// The descriptor fields of an index entry that selection needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexEntry {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct IndexDoc {
    #[serde(default)]
    manifests: Vec<IndexEntry>,
}

/// Picks the manifest for `wanted` out of an index's bytes.
pub fn select_platform(index: &[u8], wanted: &Platform) -> Result<IndexEntry, RemoteError> {
    let doc: IndexDoc = serde_json::from_slice(index).map_err(|e| RemoteError::Protocol {
        registry: String::new(),
        message: format!("the index is not valid JSON: {e}"),
    })?;
    let mut available = Vec::new();
    for entry in &doc.manifests {
        if let Some(p) = &entry.platform {
            if wanted.matches(p) {
                return Ok(entry.clone());
            }
            if p.os != "unknown" {
                available.push(p.to_string());
            }
        }
    }
    Err(RemoteError::NoPlatform {
        wanted: wanted.to_string(),
        available: if available.is_empty() {
            "no platforms".into()
        } else {
            available.join(", ")
        },
    })
}

/// One result of a `/v1/search` query, in docker's wire format.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchResult {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub star_count: u64,
    #[serde(default)]
    pub is_official: bool,
    #[serde(default)]
    pub is_automated: bool,
}

/// A `/v1/search` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchResults {
    #[serde(default)]
    pub num_results: u64,
    #[serde(default)]
    pub query: String,
    #[serde(default)]
    pub results: Vec<SearchResult>,
}

/// Where the bytes of a blob to push come from; opened again for each attempt and chunk.
#[async_trait]
pub trait BlobSource: Send + Sync {
    async fn open(&self, range: Range<u64>) -> std::io::Result<ByteStream>;
}

#[async_trait]
impl BlobSource for Bytes {
    async fn open(&self, range: Range<u64>) -> std::io::Result<ByteStream> {
        let part = self.slice(range.start as usize..range.end as usize);
        Ok(Box::pin(futures::stream::once(async move { Ok(part) })))
    }
}

/// Told the number of bytes of a blob sent so far.
pub type ProgressFn = Arc<dyn Fn(u64) + Send + Sync>;

/// How [`Remote::push_blob`] sends a blob.
#[derive(Debug, Clone, Copy)]
pub struct PushOptions {
    /// Blobs larger than this go in PATCH chunks of this size; smaller in one PUT.
    pub chunk_size: u64,
}

impl Default for PushOptions {
    fn default() -> PushOptions {
        PushOptions {
            chunk_size: 32 << 20,
        }
    }
}

/// One way to reach a registry: the registry itself or one of its mirrors.
#[derive(Debug, Clone)]
struct Endpoint {
    /// The registry as the caller named it (for messages and the mirror's `ns`).
    registry: String,
    /// `scheme://authority` when fixed; `None` to decide by probing.
    base: Option<String>,
    /// `host[:port]`: the key for credentials, tokens and the scheme cache.
    host: String,
    /// `?ns=` value when this endpoint is a mirror.
    ns: Option<String>,
    insecure: bool,
}

struct Inner {
    config: RemoteConfig,
    /// The shared clients, made on first use: building one loads the system's CA
    /// certificates, which a command that contacts no registry should not pay for.
    secure: OnceLock<reqwest::Client>,
    insecure: OnceLock<reqwest::Client>,
    auth: Mutex<AuthCache>,
    schemes: Mutex<HashMap<String, &'static str>>,
    /// What credential helpers answered, by host.
    helped: Mutex<HashMap<String, Option<Credential>>>,
    /// Clients for hosts with certs.d material, by (host, insecure); `None`: the shared ones.
    per_host: Mutex<HashMap<(String, bool), Option<reqwest::Client>>>,
}

/// The registry client. See the module documentation.
#[derive(Clone)]
pub struct Remote {
    inner: Arc<Inner>,
}

fn build_client(config: &RemoteConfig, insecure: bool) -> reqwest::Client {
    client_builder(config, insecure)
        .build()
        .expect("the TLS backend initialises")
}

fn client_builder(config: &RemoteConfig, insecure: bool) -> reqwest::ClientBuilder {
    let mut builder = reqwest::Client::builder()
        .user_agent(config.user_agent.clone())
        .connect_timeout(config.connect_timeout)
        .pool_idle_timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .danger_accept_invalid_certs(insecure);
    if let Some(t) = config.read_timeout {
        builder = builder.read_timeout(t);
    }
    builder
}

/// Whether a transport failure is about a certificate (not worth retrying).
fn is_certificate_error(message: &str) -> bool {
    message.to_ascii_lowercase().contains("certificate")
}

/// The deepest message of an error chain: "connection refused" rather than "error sending
/// request".
fn root_message(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        msg = s.to_string();
        cur = s.source();
    }
    msg
}

/// Whether a host (with or without port) is a loopback name.
fn is_loopback(host: &str) -> bool {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return ip.is_loopback();
    }
    let bare = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    if bare.eq_ignore_ascii_case("localhost") {
        return true;
    }
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The registry's error body, shortened to `CODE: message`.
fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<Errors>(body) {
        if !e.errors.is_empty() {
            return e
                .errors
                .iter()
                .map(|e| {
                    if e.message.is_empty() {
                        e.code.clone()
                    } else {
                        e.message.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join("; ");
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "no details given".to_string()
    } else {
        text.chars()
            .take(200)
            .collect::<String>()
            .replace('\n', " ")
    }
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// `application/json; charset=utf-8` → `application/json`.
fn bare_media_type(ct: &str) -> String {
    ct.split(';').next().unwrap_or("").trim().to_string()
}

/// A manifest's media type: its `Content-Type`, or its own `mediaType` field when the
/// server sent something generic.
fn manifest_media_type(content_type: Option<&str>, bytes: &[u8]) -> String {
    let ct = content_type.map(bare_media_type).unwrap_or_default();
    if ct.contains("vnd.") {
        return ct;
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Sniff {
        #[serde(default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Sniff>(bytes) {
        Ok(Sniff {
            media_type: Some(m),
            ..
        }) => m,
        Ok(Sniff {
            manifests: Some(_), ..
        }) => MEDIA_OCI_INDEX.to_string(),
        _ => MEDIA_OCI_MANIFEST.to_string(),
    }
}

impl Remote {
    pub fn new(config: RemoteConfig) -> Remote {
        Remote {
            inner: Arc::new(Inner {
                secure: OnceLock::new(),
                insecure: OnceLock::new(),
                config,
                auth: Mutex::new(AuthCache::default()),
                schemes: Mutex::new(HashMap::new()),
                helped: Mutex::new(HashMap::new()),
                per_host: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn config(&self) -> &RemoteConfig {
        &self.inner.config
    }

    fn insecure_host(&self, host: &str) -> bool {
        is_loopback(host)
            || self.inner.config.insecure.iter().any(|h| {
                h.eq_ignore_ascii_case(host)
                    || host
                        .rsplit_once(':')
                        .is_some_and(|(bare, _)| h.eq_ignore_ascii_case(bare))
            })
    }

    /// Where `docker.io`'s API is: the configured default registry, else Docker Hub's.
    fn default_api_host(&self) -> &str {
        self.inner
            .config
            .default_registry
            .as_deref()
            .unwrap_or(crate::reference::DEFAULT_REGISTRY_API_HOST)
    }

    /// The registry's own endpoint.
    fn endpoint(&self, registry: &str) -> Result<Endpoint> {
        let invalid = || RemoteError::InvalidRegistry(registry.to_string());
        for scheme in ["http://", "https://"] {
            if let Some(rest) = registry.strip_prefix(scheme) {
                let host = rest.split('/').next().unwrap_or("").to_ascii_lowercase();
                if host.is_empty() {
                    return Err(invalid());
                }
                return Ok(Endpoint {
                    registry: registry.to_string(),
                    base: Some(format!("{scheme}{host}")),
                    insecure: self.insecure_host(&host),
                    host,
                    ns: None,
                });
            }
        }
        if registry.is_empty() || registry.contains(['/', ' ', '?', '#', '@']) {
            return Err(invalid());
        }
        let host = registry.to_ascii_lowercase();
        let (api, key) = if host == crate::reference::DEFAULT_REGISTRY {
            (self.default_api_host().to_string(), host)
        } else {
            (host.clone(), host)
        };
        let insecure = self.insecure_host(&api);
        // Docker Hub's credentials are docker.io's; with a default registry configured,
        // docker.io names go to that host, and only its own credentials may go with them.
        let hub = key == crate::reference::DEFAULT_REGISTRY
            && self.inner.config.default_registry.is_none();
        Ok(Endpoint {
            registry: registry.to_string(),
            base: (!insecure).then(|| format!("https://{api}")),
            host: if hub { key } else { api },
            ns: None,
            insecure,
        })
    }

    /// Where reads go, in order: the registry's mirrors, then the registry.
    fn read_endpoints(&self, registry: &str) -> Result<Vec<Endpoint>> {
        let own = self.endpoint(registry)?;
        let mut out = Vec::new();
        if let Some(mirrors) = self
            .inner
            .config
            .mirrors
            .get(&registry.to_ascii_lowercase())
        {
            for m in mirrors {
                let mut ep = self.endpoint(m.trim_end_matches('/'))?;
                ep.registry = registry.to_string();
                ep.ns = Some(registry.to_string());
                out.push(ep);
            }
        }
        out.push(own);
        Ok(out)
    }

    /// `scheme://authority` for an endpoint, probing HTTPS once for hosts that may be plain.
    async fn base(&self, ep: &Endpoint) -> String {
        if let Some(b) = &ep.base {
            return b.clone();
        }
        let api = if ep.host == crate::reference::DEFAULT_REGISTRY {
            self.default_api_host()
        } else {
            &ep.host
        };
        if let Some(s) = self
            .inner
            .schemes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&ep.host)
        {
            return format!("{s}://{api}");
        }
        // The host's own client (certs.d: a client certificate the server may demand).
        let probe = self
            .client_for(&ep.registry, &ep.host, true)
            .unwrap_or_else(|_| self.shared(true))
            .get(format!("https://{api}/v2/"))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        let scheme = if probe.is_ok() { "https" } else { "http" };
        self.inner
            .schemes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(ep.host.clone(), scheme);
        format!("{scheme}://{api}")
    }

    fn client(&self, ep: &Endpoint) -> Result<reqwest::Client> {
        self.client_for(&ep.registry, &ep.host, ep.insecure)
    }

    /// The client for `host`: one of its own when its certs.d directories hold CA or client
    /// certificates, else the shared one.
    fn client_for(&self, registry: &str, host: &str, insecure: bool) -> Result<reqwest::Client> {
        let key = (host.to_string(), insecure);
        if let Some(c) = self
            .inner
            .per_host
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Ok(c.clone().unwrap_or_else(|| self.shared(insecure)));
        }
        let config = &self.inner.config;
        let own = certs::for_host(&config.certs_dirs, host)
            .map_err(|message| RemoteError::Certificates {
                registry: registry.to_string(),
                message,
            })?
            .map(|tls| {
                let mut builder = client_builder(config, insecure);
                for root in tls.roots {
                    builder = builder.add_root_certificate(root);
                }
                if let Some(identity) = tls.identity {
                    builder = builder.identity(identity);
                }
                builder.build().map_err(|e| RemoteError::Certificates {
                    registry: registry.to_string(),
                    message: format!("the certificates for {host}: {}", root_message(&e)),
                })
            })
            .transpose()?;
        self.inner
            .per_host
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, own.clone());
        Ok(own.unwrap_or_else(|| self.shared(insecure)))
    }

    fn shared(&self, insecure: bool) -> reqwest::Client {
        let cell = if insecure {
            &self.inner.insecure
        } else {
            &self.inner.secure
        };
        cell.get_or_init(|| build_client(&self.inner.config, insecure))
            .clone()
    }

    /// A transport failure as one line; a certificate failure says where the CA goes.
    fn unreachable(&self, registry: &str, host: &str, e: &reqwest::Error) -> RemoteError {
        let mut message = root_message(e);
        if is_certificate_error(&message) {
            let dirs: Vec<String> = self
                .inner
                .config
                .certs_dirs
                .iter()
                .map(|d| d.join(host).join("ca.crt").display().to_string())
                .collect();
            if !dirs.is_empty() {
                message.push_str(&format!(
                    "; if the registry's certificate is signed by a private CA, put the CA \
                     certificate in {}",
                    dirs.join(" or ")
                ));
            }
        }
        RemoteError::Unreachable {
            registry: registry.to_string(),
            message,
        }
    }

    /// The host's credential: its credential helper's answer (asked once per host), else
    /// the `auths` entry.
    fn credential(&self, host: &str) -> Option<Credential> {
        if let Some(helper) = self.inner.config.helpers.for_host(host) {
            let known = self
                .inner
                .helped
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(host)
                .cloned();
            let answer = match known {
                Some(a) => a,
                None => {
                    let a = credentials::helper_get(helper, host).unwrap_or_else(|e| {
                        tracing::warn!("{e}");
                        None
                    });
                    self.inner
                        .helped
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(host.to_string(), a.clone());
                    a
                }
            };
            if answer.is_some() {
                return answer;
            }
        }
        self.inner.config.credentials.get(host).cloned()
    }

    /// The `Authorization` value to send for (host, scope), fetching a token if the host
    /// is known to want one.
    async fn authorization(&self, ep: &Endpoint, scope: &str) -> Result<Option<String>> {
        if let Some(t) = self.inner.config.tokens.get(&ep.host) {
            return Ok(Some(format!("Bearer {t}")));
        }
        let challenge = {
            let cache = self
                .inner
                .auth
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match cache.challenge(&ep.host) {
                None => return Ok(None),
                Some(Challenge::Basic) => {
                    return Ok(self.credential(&ep.host).as_ref().map(basic_header));
                }
                Some(c @ Challenge::Bearer { .. }) => {
                    if let Some(t) = cache.token(&ep.host, scope) {
                        return Ok(Some(format!("Bearer {t}")));
                    }
                    c.clone()
                }
            }
        };
        let token = self.fetch_token(ep, &challenge, scope).await?;
        Ok(Some(format!("Bearer {token}")))
    }

    /// Asks a Bearer challenge's realm for a token covering `scope` (space-separated scopes).
    async fn fetch_token(
        &self,
        ep: &Endpoint,
        challenge: &Challenge,
        scope: &str,
    ) -> Result<String> {
        let Challenge::Bearer { realm, service, .. } = challenge else {
            unreachable!("only bearer challenges have tokens")
        };
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = service {
            query.push(("service", s));
        }
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            query.push(("scope", s));
        }
        let realm_host = realm_host(realm);
        let client = self.client_for(&ep.registry, realm_host, self.insecure_host(realm_host))?;
        let mut attempt = 0;
        let resp = loop {
            let mut req = client.get(realm).query(&query);
            if let Some(c) = self.credential(&ep.host) {
                req = req.basic_auth(&c.username, Some(&c.password));
            }
            match req.send().await {
                Ok(r) if retryable_status(r.status()) && attempt < self.inner.config.retries => {}
                Ok(r) => break r,
                Err(e)
                    if attempt < self.inner.config.retries
                        && !is_certificate_error(&root_message(&e)) => {}
                Err(e) => {
                    return Err(self.unreachable(
                        &format!("{} (token service {realm})", ep.registry),
                        realm_host,
                        &e,
                    ))
                }
            }
            self.backoff(attempt, None).await;
            attempt += 1;
        };
        let status = resp.status();
        let body = if status.is_success() {
            read_limited(resp, MAX_TOKEN_ANSWER, ep).await?
        } else {
            error_body(resp).await
        };
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let message = if self.credential(&ep.host).is_some() {
                format!("incorrect username or password ({})", error_message(&body))
            } else {
                format!("authentication required ({})", error_message(&body))
            };
            return Err(RemoteError::Unauthorized {
                registry: ep.registry.clone(),
                message,
            });
        }
        if !status.is_success() {
            return Err(RemoteError::Status {
                registry: ep.registry.clone(),
                status: status.as_u16(),
                method: "GET".into(),
                path: realm.clone(),
                message: error_message(&body),
            });
        }
        let token: auth::TokenResponse =
            serde_json::from_slice(&body).map_err(|e| RemoteError::Protocol {
                registry: ep.registry.clone(),
                message: format!("the token service answered with invalid JSON: {e}"),
            })?;
        let Some(t) = token.token() else {
            return Err(RemoteError::Protocol {
                registry: ep.registry.clone(),
                message: "the token service answered without a token".into(),
            });
        };
        let t = t.to_string();
        self.inner
            .auth
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .set_token(&ep.host, scope, t.clone(), token.lifetime());
        Ok(t)
    }

    async fn backoff(&self, attempt: u32, retry_after: Option<Duration>) {
        let exp = self
            .inner
            .config
            .backoff
            .saturating_mul(2u32.saturating_pow(attempt.min(8)));
        let wait = retry_after.unwrap_or(exp).min(Duration::from_secs(10));
        tokio::time::sleep(wait).await;
    }

    /// Sends a request built by `make` (called again for every attempt), handling auth
    /// challenges and, when `retry`, retrying 429/5xx and transport failures.
    async fn send(
        &self,
        ep: &Endpoint,
        scope: &str,
        retry: bool,
        mut make: impl FnMut(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        let base = self.base(ep).await;
        let client = self.client(ep)?;
        let retries = if retry { self.inner.config.retries } else { 0 };
        let mut attempt = 0;
        let mut challenged = false;
        loop {
            let mut req = make(&client, &base);
            if let Some(a) = self.authorization(ep, scope).await? {
                req = req.header(AUTHORIZATION, a);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    if attempt < retries && !is_certificate_error(&root_message(&e)) {
                        tracing::debug!("retrying {}: {}", ep.registry, root_message(&e));
                        self.backoff(attempt, None).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(self.unreachable(&ep.registry, &ep.host, &e));
                }
            };
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED {
                let challenge =
                    header_str(resp.headers(), "www-authenticate").and_then(auth::parse_challenge);
                let body = error_body(resp).await;
                match challenge {
                    Some(c) if !challenged => {
                        challenged = true;
                        if c == Challenge::Basic && self.credential(&ep.host).is_none() {
                            return Err(RemoteError::Unauthorized {
                                registry: ep.registry.clone(),
                                message: format!(
                                    "authentication required and no credentials for {} (docker's config.json)",
                                    ep.host
                                ),
                            });
                        }
                        let mut cache = self
                            .inner
                            .auth
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner);
                        cache.forget_token(&ep.host, scope);
                        cache.set_challenge(&ep.host, c);
                        continue;
                    }
                    _ => {
                        let message = if self.credential(&ep.host).is_some() {
                            format!("incorrect username or password ({})", error_message(&body))
                        } else {
                            format!("authentication required ({})", error_message(&body))
                        };
                        return Err(RemoteError::Unauthorized {
                            registry: ep.registry.clone(),
                            message,
                        });
                    }
                }
            }
            if retryable_status(status) && attempt < retries {
                let after = header_str(resp.headers(), "retry-after")
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                self.backoff(attempt, after).await;
                attempt += 1;
                continue;
            }
            return Ok(resp);
        }
    }

    /// Turns an unsuccessful response into an error.
    async fn fail(
        &self,
        ep: &Endpoint,
        resp: reqwest::Response,
        method: &str,
        what: &str,
    ) -> RemoteError {
        let status = resp.status();
        let path = resp.url().path().to_string();
        let body = error_body(resp).await;
        let message = error_message(&body);
        match status {
            StatusCode::NOT_FOUND => RemoteError::NotFound {
                registry: ep.registry.clone(),
                what: what.to_string(),
                message,
            },
            StatusCode::FORBIDDEN => RemoteError::Denied {
                registry: ep.registry.clone(),
                message,
            },
            StatusCode::UNAUTHORIZED => RemoteError::Unauthorized {
                registry: ep.registry.clone(),
                message,
            },
            _ => RemoteError::Status {
                registry: ep.registry.clone(),
                status: status.as_u16(),
                method: method.to_string(),
                path,
                message,
            },
        }
    }

    /// Tries each read endpoint in turn; a mirror's failure falls through to the next one,
    /// the registry's own answer is final.
    async fn on_read_endpoints<T, F, Fut>(&self, registry: &str, mut f: F) -> Result<T>
    where
        F: FnMut(Endpoint) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let eps = self.read_endpoints(registry)?;
        let last = eps.len() - 1;
        for (i, ep) in eps.into_iter().enumerate() {
            let mirror = ep.ns.is_some();
            match f(ep).await {
                Err(e) if i < last && mirror => {
                    tracing::debug!("mirror failed, trying the next endpoint: {e}");
                }
                other => return other,
            }
        }
        unreachable!("the registry itself is always the last endpoint")
    }

    /// Checks that the registry answers the API base (`GET /v2/`), authenticating if asked.
    pub async fn ping(&self, registry: &str) -> Result<()> {
        let ep = self.endpoint(registry)?;
        let resp = self
            .send(&ep, "", true, |c, base| c.get(format!("{base}/v2/")))
            .await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.fail(&ep, resp, "GET", "API").await)
        }
    }

    /// Fetches a manifest or index by tag or digest. `accept` defaults to
    /// [`MANIFEST_ACCEPT`]. A manifest fetched by digest is verified against it.
    pub async fn get_manifest(
        &self,
        registry: &str,
        repo: &RepoName,
        reference: &Reference,
        accept: Option<&str>,
    ) -> Result<Manifest> {
        let accept = accept.unwrap_or(MANIFEST_ACCEPT).to_string();
        self.on_read_endpoints(registry, |ep| {
            let accept = accept.clone();
            async move {
                let scope = pull_scope(repo);
                let url_path = format!("/v2/{repo}/manifests/{reference}");
                let resp = self
                    .send(&ep, &scope, true, |c, base| {
                        with_ns(c.get(format!("{base}{url_path}")), &ep).header(ACCEPT, &accept)
                    })
                    .await?;
                if !resp.status().is_success() {
                    return Err(self
                        .fail(&ep, resp, "GET", &format!("manifest {reference}"))
                        .await);
                }
                let content_type = header_str(resp.headers(), "content-type").map(str::to_string);
                let bytes = read_limited(resp, MAX_MANIFEST_LEN, &ep).await?;
                let media_type = manifest_media_type(content_type.as_deref(), &bytes);
                if media_type == "application/vnd.docker.distribution.manifest.v1+json"
                    || media_type == "application/vnd.docker.distribution.manifest.v1+prettyjws"
                {
                    return Err(RemoteError::Protocol {
                        registry: ep.registry.clone(),
                        message:
                            "the image uses docker schema 1 manifests, which berth does not support"
                                .into(),
                    });
                }
                let digest = match reference {
                    Reference::Digest(d) => {
                        let actual = Digest::of(d.algorithm(), &bytes);
                        if &actual != d {
                            return Err(Mismatch {
                                expected: d.clone(),
                                actual,
                            }
                            .into());
                        }
                        actual
                    }
                    Reference::Tag(_) => Digest::sha256_of(&bytes),
                };
                Ok(Manifest {
                    bytes,
                    media_type,
                    digest,
                })
            }
        })
        .await
    }

    /// HEADs a manifest: `None` when the registry does not have it.
    pub async fn head_manifest(
        &self,
        registry: &str,
        repo: &RepoName,
        reference: &Reference,
        accept: Option<&str>,
    ) -> Result<Option<ManifestHead>> {
        let accept = accept.unwrap_or(MANIFEST_ACCEPT).to_string();
        self.on_read_endpoints(registry, |ep| {
            let accept = accept.clone();
            async move {
                let scope = pull_scope(repo);
                let url_path = format!("/v2/{repo}/manifests/{reference}");
                let resp = self
                    .send(&ep, &scope, true, |c, base| {
                        with_ns(c.head(format!("{base}{url_path}")), &ep).header(ACCEPT, &accept)
                    })
                    .await?;
                if resp.status() == StatusCode::NOT_FOUND {
                    return Ok(None);
                }
                if !resp.status().is_success() {
                    return Err(self
                        .fail(&ep, resp, "HEAD", &format!("manifest {reference}"))
                        .await);
                }
                let h = resp.headers();
                let digest = header_str(h, "docker-content-digest").and_then(|d| d.parse().ok());
                let size = header_str(h, "content-length")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let media_type = header_str(h, "content-type")
                    .map(bare_media_type)
                    .unwrap_or_default();
                match digest {
                    Some(digest) => Ok(Some(ManifestHead {
                        digest,
                        media_type,
                        size,
                    })),
                    None => Err(RemoteError::Protocol {
                        registry: ep.registry.clone(),
                        message: "HEAD of a manifest did not say its digest".into(),
                    }),
                }
            }
        })
        .await
    }

    /// Resolves a manifest to the one for `platform` when it is an index. Returns the
    /// manifest and, when there was one, the index it was chosen from.
    pub async fn get_image_manifest(
        &self,
        registry: &str,
        repo: &RepoName,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<(Manifest, Option<Manifest>)> {
        let top = self.get_manifest(registry, repo, reference, None).await?;
        if !is_index(&top.media_type) {
            return Ok((top, None));
        }
        let entry = select_platform(&top.bytes, platform)?;
        let m = self
            .get_manifest(registry, repo, &Reference::Digest(entry.digest), None)
            .await?;
        Ok((m, Some(top)))
    }

    /// The size of a blob, or `None` when the repository does not have it.
    pub async fn blob_exists(
        &self,
        registry: &str,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<u64>> {
        let ep = self.endpoint(registry)?;
        let scope = pull_scope(repo);
        let resp = self
            .send(&ep, &scope, true, |c, base| {
                c.head(format!("{base}/v2/{repo}/blobs/{digest}"))
            })
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(
                header_str(resp.headers(), "content-length")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
            )),
            _ => Err(self
                .fail(&ep, resp, "HEAD", &format!("blob {digest}"))
                .await),
        }
    }

    /// Streams a whole blob, verified against its digest; resumes with `Range` when the
    /// connection drops.
    pub async fn get_blob(
        &self,
        registry: &str,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<BlobStream> {
        self.get_blob_from(registry, repo, digest, 0, Hasher::new(digest.algorithm()))
            .await
    }

    /// Streams a blob from `offset` to its end, for a caller that already holds (and has
    /// hashed into `prefix`) the bytes before it. The stream yields every chunk, then an
    /// error item if the whole did not hash to `digest`.
    pub async fn get_blob_from(
        &self,
        registry: &str,
        repo: &RepoName,
        digest: &Digest,
        offset: u64,
        prefix: Hasher,
    ) -> Result<BlobStream> {
        let stream = self
            .on_read_endpoints(registry, |ep| {
                let prefix = prefix.clone();
                async move {
                    let mut fetch = BlobFetch {
                        remote: self.clone(),
                        ep,
                        repo: repo.clone(),
                        digest: digest.clone(),
                        offset,
                        end: None,
                        hasher: Some(prefix),
                        body: None,
                        skip: 0,
                        failures: 0,
                        done: false,
                        total: None,
                    };
                    fetch.open().await?;
                    Ok(fetch)
                }
            })
            .await?;
        let total = stream.total;
        Ok(BlobStream {
            total,
            inner: Box::pin(futures::stream::unfold(stream, |mut f| async move {
                f.next_chunk().await.map(|item| (item, f))
            })),
        })
    }

    /// Streams a byte range of a blob, unverified (the caller sees only a part).
    pub async fn get_blob_range(
        &self,
        registry: &str,
        repo: &RepoName,
        digest: &Digest,
        range: Range<u64>,
    ) -> Result<BlobStream> {
        let stream = self
            .on_read_endpoints(registry, |ep| {
                let range = range.clone();
                async move {
                    let mut fetch = BlobFetch {
                        remote: self.clone(),
                        ep,
                        repo: repo.clone(),
                        digest: digest.clone(),
                        offset: range.start,
                        end: Some(range.end),
                        hasher: None,
                        body: None,
                        skip: 0,
                        failures: 0,
                        done: range.is_empty(),
                        total: None,
                    };
                    if !fetch.done {
                        fetch.open().await?;
                    }
                    Ok(fetch)
                }
            })
            .await?;
        Ok(BlobStream {
            total: Some(range.end - range.start),
            inner: Box::pin(futures::stream::unfold(stream, |mut f| async move {
                f.next_chunk().await.map(|item| (item, f))
            })),
        })
    }

    /// Asks the registry to mount a blob from another of its repositories. `true` when it
    /// did; `false` when it does not have the blob there (the caller then uploads it).
    pub async fn mount_blob(
        &self,
        registry: &str,
        repo: &RepoName,
        digest: &Digest,
        from: &RepoName,
    ) -> Result<bool> {
        let ep = self.endpoint(registry)?;
        let scope = format!("{} {}", push_scope(repo), pull_scope(from));
        let resp = self
            .send(&ep, &scope, true, |c, base| {
                c.post(format!("{base}/v2/{repo}/blobs/uploads/"))
                    .query(&[("mount", digest.as_str()), ("from", from.as_str())])
                    .header(CONTENT_LENGTH, 0)
            })
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                // An upload session was opened instead; give it back.
                if let Some(loc) = header_str(resp.headers(), "location") {
                    let url = resolve_location(&self.base(&ep).await, loc);
                    let _ = self
                        .send(&ep, &scope, false, |c, _| c.delete(url.clone()))
                        .await;
                }
                Ok(false)
            }
            _ => Err(self.fail(&ep, resp, "POST", "blob upload").await),
        }
    }

    /// Uploads a blob of `size` bytes whose content is `digest`: one PUT when it fits in
    /// `options.chunk_size`, else PATCH chunks then a closing PUT. `progress` is told the
    /// bytes sent so far. A failed attempt is retried from the start (bounded).
    #[allow(clippy::too_many_arguments)]
    pub async fn push_blob(
        &self,
        registry: &str,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
        source: &dyn BlobSource,
        options: PushOptions,
        progress: &ProgressFn,
    ) -> Result<()> {
        let mut attempt = 0;
        loop {
            match self
                .push_blob_once(registry, repo, digest, size, source, options, progress)
                .await
            {
                Err(e) if e.is_retryable() && attempt < self.inner.config.retries => {
                    tracing::debug!("retrying the upload of {digest}: {e}");
                    self.backoff(attempt, None).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn push_blob_once(
        &self,
        registry: &str,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
        source: &dyn BlobSource,
        options: PushOptions,
        progress: &ProgressFn,
    ) -> Result<()> {
        let ep = self.endpoint(registry)?;
        let scope = push_scope(repo);
        let base = self.base(&ep).await;
        let resp = self
            .send(&ep, &scope, true, |c, base| {
                c.post(format!("{base}/v2/{repo}/blobs/uploads/"))
                    .header(CONTENT_LENGTH, 0)
            })
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.fail(&ep, resp, "POST", "blob upload").await);
        }
        let mut location = location_of(&resp, &base, &ep)?;
        let chunk = options.chunk_size.max(1);
        let mut sent = 0u64;
        if size > chunk {
            while sent < size {
                let end = (sent + chunk).min(size);
                let body = counted_body(
                    source.open(sent..end).await.map_err(RemoteError::Source)?,
                    sent,
                    progress,
                );
                let mut body = Some(body);
                let url = location.clone();
                let resp = self
                    .send(&ep, &scope, false, |c, _| {
                        c.patch(url.clone())
                            .header(CONTENT_TYPE, "application/octet-stream")
                            .header(CONTENT_LENGTH, end - sent)
                            .header("Content-Range", format!("{}-{}", sent, end - 1))
                            .body(
                                body.take()
                                    .unwrap_or_else(|| reqwest::Body::from(Vec::new())),
                            )
                    })
                    .await?;
                if resp.status() != StatusCode::ACCEPTED {
                    return Err(self.fail(&ep, resp, "PATCH", "blob upload").await);
                }
                location = location_of(&resp, &base, &ep)?;
                sent = end;
            }
            let url = with_digest(&location, digest);
            let resp = self
                .send(&ep, &scope, false, |c, _| {
                    c.put(url.clone()).header(CONTENT_LENGTH, 0)
                })
                .await?;
            if resp.status() != StatusCode::CREATED {
                return Err(self.fail(&ep, resp, "PUT", "blob upload").await);
            }
        } else {
            let body = counted_body(
                source.open(0..size).await.map_err(RemoteError::Source)?,
                0,
                progress,
            );
            let mut body = Some(body);
            let url = with_digest(&location, digest);
            let resp = self
                .send(&ep, &scope, false, |c, _| {
                    c.put(url.clone())
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_LENGTH, size)
                        .body(
                            body.take()
                                .unwrap_or_else(|| reqwest::Body::from(Vec::new())),
                        )
                })
                .await?;
            if resp.status() != StatusCode::CREATED {
                return Err(self.fail(&ep, resp, "PUT", "blob upload").await);
            }
        }
        progress(size);
        Ok(())
    }

    /// Uploads a manifest under a tag or digest; returns its digest.
    pub async fn put_manifest(
        &self,
        registry: &str,
        repo: &RepoName,
        reference: &Reference,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest> {
        let ep = self.endpoint(registry)?;
        let scope = push_scope(repo);
        let resp = self
            .send(&ep, &scope, true, |c, base| {
                c.put(format!("{base}/v2/{repo}/manifests/{reference}"))
                    .header(CONTENT_TYPE, media_type)
                    .body(bytes.clone())
            })
            .await?;
        if resp.status() != StatusCode::CREATED && !resp.status().is_success() {
            return Err(self.fail(&ep, resp, "PUT", "manifest").await);
        }
        Ok(Digest::sha256_of(&bytes))
    }

    /// Every tag of a repository, following `Link` pagination.
    pub async fn tags(&self, registry: &str, repo: &RepoName) -> Result<Vec<String>> {
        self.on_read_endpoints(registry, |ep| async move {
            #[derive(Deserialize)]
            struct TagList {
                #[serde(default)]
                tags: Option<Vec<String>>,
            }
            let scope = pull_scope(repo);
            let base = self.base(&ep).await;
            let mut url = format!("{base}/v2/{repo}/tags/list?n=1000");
            if let Some(ns) = &ep.ns {
                url.push_str(&format!("&ns={ns}"));
            }
            let protocol = |message: String| RemoteError::Protocol {
                registry: ep.registry.clone(),
                message,
            };
            let mut out = Vec::new();
            let mut seen = std::collections::HashSet::new();
            let mut bytes_left = MAX_TAG_LIST_BYTES;
            loop {
                if !seen.insert(url.clone()) {
                    return Err(protocol(format!(
                        "the tag list's pages loop: {url} was already read"
                    )));
                }
                if seen.len() > MAX_TAG_PAGES {
                    return Err(protocol(format!(
                        "the tag list goes on for more than {MAX_TAG_PAGES} pages"
                    )));
                }
                let u = url.clone();
                let resp = self
                    .send(&ep, &scope, true, |c, _| c.get(u.clone()))
                    .await?;
                if !resp.status().is_success() {
                    return Err(self.fail(&ep, resp, "GET", "repository").await);
                }
                let next = match header_str(resp.headers(), "link") {
                    None => None,
                    Some(link) => next_page(link, &url).map_err(|e| {
                        protocol(format!("the tag list's Link header {link:?}: {e}"))
                    })?,
                };
                let body = read_limited(resp, bytes_left, &ep).await?;
                bytes_left = bytes_left.saturating_sub(body.len());
                let list: TagList = serde_json::from_slice(&body)
                    .map_err(|e| protocol(format!("tag list is not valid JSON: {e}")))?;
                out.extend(list.tags.unwrap_or_default());
                match next {
                    Some(n) => url = n,
                    None => return Ok(out),
                }
            }
        })
        .await
    }

    /// Asks the registry's `/v1/search` for repositories matching `term`.
    pub async fn search(
        &self,
        registry: &str,
        term: &str,
        limit: Option<u32>,
    ) -> Result<SearchResults> {
        let registry = if registry != crate::reference::DEFAULT_REGISTRY {
            registry
        } else if let Some(default) = &self.inner.config.default_registry {
            default
        } else {
            "https://index.docker.io"
        };
        let ep = self.endpoint(registry)?;
        let mut query = vec![("q", term.to_string())];
        if let Some(n) = limit {
            query.push(("n", n.to_string()));
        }
        let resp = self
            .send(&ep, "", true, |c, base| {
                c.get(format!("{base}/v1/search")).query(&query)
            })
            .await?;
        if !resp.status().is_success() {
            return Err(self.fail(&ep, resp, "GET", "search").await);
        }
        let body = read_limited(resp, 16 << 20, &ep).await?;
        serde_json::from_slice(&body).map_err(|e| RemoteError::Protocol {
            registry: ep.registry.clone(),
            message: format!("search results are not valid JSON: {e}"),
        })
    }
}

fn retryable_status(s: StatusCode) -> bool {
    s == StatusCode::TOO_MANY_REQUESTS || matches!(s.as_u16(), 500 | 502 | 503 | 504)
}

fn basic_header(c: &Credential) -> String {
    let raw = format!("{}:{}", c.username, c.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn realm_host(realm: &str) -> &str {
    let rest = realm
        .strip_prefix("https://")
        .or_else(|| realm.strip_prefix("http://"))
        .unwrap_or(realm);
    rest.split('/').next().unwrap_or(rest)
}

/// The pull scope of a repository in the token protocol.
pub fn pull_scope(repo: &RepoName) -> String {
    format!("repository:{repo}:pull")
}

/// The pull and push scope of a repository.
pub fn push_scope(repo: &RepoName) -> String {
    format!("repository:{repo}:pull,push")
}

fn with_ns(req: reqwest::RequestBuilder, ep: &Endpoint) -> reqwest::RequestBuilder {
    match &ep.ns {
        Some(ns) => req.query(&[("ns", ns)]),
        None => req,
    }
}

/// A `Location` header made absolute against the endpoint.
fn resolve_location(base: &str, loc: &str) -> String {
    if loc.starts_with("http://") || loc.starts_with("https://") {
        loc.to_string()
    } else if loc.starts_with('/') {
        format!("{base}{loc}")
    } else {
        format!("{base}/{loc}")
    }
}

fn location_of(resp: &reqwest::Response, base: &str, ep: &Endpoint) -> Result<String> {
    header_str(resp.headers(), "location")
        .map(|l| resolve_location(base, l))
        .ok_or_else(|| RemoteError::Protocol {
            registry: ep.registry.clone(),
            message: "an upload answer had no Location header".into(),
        })
}

fn with_digest(location: &str, digest: &Digest) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!(
        "{location}{sep}digest={}",
        digest.as_str().replace(':', "%3A")
    )
}

/// The most pages of a tag list followed, and the most bytes read over all of them.
const MAX_TAG_PAGES: usize = 1000;
const MAX_TAG_LIST_BYTES: usize = 64 << 20;

/// The next page a `Link` header (RFC 8288: `<url>; rel="next"`, several links separated by
/// commas) names, resolved against the URL of the page it came with. `Ok(None)` when no link is
/// `rel="next"`; an error when the header is malformed or the next page is on another origin
/// (scheme, host and port): credentials for one registry are never sent to another.
pub fn next_page(link: &str, current: &str) -> std::result::Result<Option<String>, String> {
    let current = reqwest::Url::parse(current).map_err(|e| format!("{current}: {e}"))?;
    for value in link.split(',').map(str::trim).filter(|v| !v.is_empty()) {
        let Some((target, params)) = value
            .strip_prefix('<')
            .and_then(|rest| rest.split_once('>'))
        else {
            return Err(format!("{value:?} is not <url>; params"));
        };
        let is_next = params.split(';').any(|p| {
            let Some((name, v)) = p.split_once('=') else {
                return false;
            };
            let v = v.trim().trim_matches('"');
            name.trim().eq_ignore_ascii_case("rel")
                && v.split_ascii_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))
        });
        if !is_next {
            continue;
        }
        let next = current
            .join(target)
            .map_err(|e| format!("{target:?} is not a URL: {e}"))?;
        if next.origin() != current.origin() {
            return Err(format!(
                "the next page {next} is not on {}",
                current.origin().ascii_serialization()
            ));
        }
        return Ok(Some(next.to_string()));
    }
    Ok(None)
}

/// The most of a token service's answer that is read (a token is a few KiB).
const MAX_TOKEN_ANSWER: usize = 1 << 20;
/// The most of an error answer's body that is read: enough for any error list; the rest of
/// a hostile or broken peer's body is dropped unread.
const MAX_ERROR_BODY: usize = 64 << 10;

/// The start of an error answer's body (at most [`MAX_ERROR_BODY`]); a body that breaks off
/// gives what arrived.
async fn error_body(resp: reqwest::Response) -> Bytes {
    let mut out = bytes::BytesMut::new();
    let mut stream = resp.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        let room = MAX_ERROR_BODY - out.len();
        out.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
        if out.len() >= MAX_ERROR_BODY {
            break;
        }
    }
    out.freeze()
}

async fn read_limited(resp: reqwest::Response, limit: usize, ep: &Endpoint) -> Result<Bytes> {
    if resp.content_length().is_some_and(|l| l as usize > limit) {
        return Err(RemoteError::Protocol {
            registry: ep.registry.clone(),
            message: format!("the answer is larger than {limit} bytes"),
        });
    }
    let mut out = bytes::BytesMut::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| RemoteError::Unreachable {
            registry: ep.registry.clone(),
            message: root_message(&e),
        })?;
        if out.len() + chunk.len() > limit {
            return Err(RemoteError::Protocol {
                registry: ep.registry.clone(),
                message: format!("the answer is larger than {limit} bytes"),
            });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

/// A body that reports, after each chunk, how many bytes of the blob have been sent.
fn counted_body(stream: ByteStream, start: u64, progress: &ProgressFn) -> reqwest::Body {
    let progress = progress.clone();
    let mut sent = start;
    progress(sent);
    reqwest::Body::wrap_stream(stream.map(move |chunk| {
        if let Ok(b) = &chunk {
            sent += b.len() as u64;
            progress(sent);
        }
        chunk
    }))
}

/// A blob arriving from a registry. Yields chunks; a whole-blob stream yields an error item
/// at the end instead of finishing when the bytes did not hash to the digest.
pub struct BlobStream {
    /// The number of bytes this stream will yield, when the registry said.
    pub total: Option<u64>,
    inner: Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>,
}

impl Stream for BlobStream {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

type BodyStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// The state of one blob download, reopened with `Range` after a failure.
struct BlobFetch {
    remote: Remote,
    ep: Endpoint,
    repo: RepoName,
    digest: Digest,
    /// The next byte to yield.
    offset: u64,
    end: Option<u64>,
    hasher: Option<Hasher>,
    body: Option<BodyStream>,
    /// Bytes to drop from the body (a server that ignored our Range).
    skip: u64,
    failures: u32,
    done: bool,
    total: Option<u64>,
}

impl BlobFetch {
    async fn open(&mut self) -> Result<()> {
        let scope = pull_scope(&self.repo);
        let path = format!("/v2/{}/blobs/{}", self.repo, self.digest);
        let range = match (self.offset, self.end) {
            (0, None) => None,
            (start, None) => Some(format!("bytes={start}-")),
            (start, Some(end)) => Some(format!("bytes={start}-{}", end - 1)),
        };
        let ep = self.ep.clone();
        let resp = self
            .remote
            .send(&self.ep, &scope, true, |c, base| {
                let mut r = with_ns(c.get(format!("{base}{path}")), &ep);
                if let Some(range) = &range {
                    r = r.header(RANGE, range);
                }
                r
            })
            .await?;
        let status = resp.status();
        if status == StatusCode::PARTIAL_CONTENT {
            self.skip = 0;
        } else if status.is_success() {
            self.skip = self.offset;
        } else {
            return Err(self
                .remote
                .fail(&self.ep, resp, "GET", &format!("blob {}", self.digest))
                .await);
        }
        if self.total.is_none() {
            self.total = resp.content_length().map(|l| {
                if status == StatusCode::PARTIAL_CONTENT {
                    l
                } else {
                    l.saturating_sub(self.offset)
                }
            });
        }
        self.body = Some(Box::pin(resp.bytes_stream()));
        Ok(())
    }

    async fn next_chunk(&mut self) -> Option<Result<Bytes>> {
        loop {
            if self.done {
                return None;
            }
            if self.body.is_none() {
                if let Err(e) = self.open().await {
                    self.done = true;
                    return Some(Err(e));
                }
            }
            let body = self.body.as_mut().expect("opened above");
            match body.next().await {
                Some(Ok(mut chunk)) => {
                    if self.skip > 0 {
                        let n = (self.skip as usize).min(chunk.len());
                        chunk = chunk.slice(n..);
                        self.skip -= n as u64;
                    }
                    if let Some(end) = self.end {
                        let left = end.saturating_sub(self.offset) as usize;
                        chunk.truncate(left);
                    }
                    if chunk.is_empty() {
                        continue;
                    }
                    self.offset += chunk.len() as u64;
                    if let Some(h) = &mut self.hasher {
                        h.update(&chunk);
                    }
                    self.failures = 0;
                    return Some(Ok(chunk));
                }
                Some(Err(e)) => {
                    self.body = None;
                    if self.failures < self.remote.inner.config.retries {
                        tracing::debug!(
                            "blob {} interrupted at {}: {}; resuming",
                            self.digest,
                            self.offset,
                            root_message(&e)
                        );
                        self.remote.backoff(self.failures, None).await;
                        self.failures += 1;
                        continue;
                    }
                    self.done = true;
                    return Some(Err(RemoteError::Unreachable {
                        registry: self.ep.registry.clone(),
                        message: root_message(&e),
                    }));
                }
                None => {
                    if self.end.is_some_and(|end| self.offset < end) {
                        self.body = None;
                        if self.failures < self.remote.inner.config.retries {
                            self.failures += 1;
                            continue;
                        }
                    }
                    self.done = true;
                    if let Some(h) = self.hasher.take() {
                        let actual = h.finish();
                        if actual != self.digest {
                            return Some(Err(Mismatch {
                                expected: self.digest.clone(),
                                actual,
                            }
                            .into()));
                        }
                    }
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:80",
            "127.9.9.9",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["example.com", "10.0.0.1:5000", "localhost.example.com"] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn endpoints() {
        let mut cfg = RemoteConfig::default();
        cfg.mirrors
            .insert("docker.io".into(), vec!["http://127.0.0.1:1".into()]);
        let r = Remote::new(cfg);
        // Made without its HTTP clients (nor the system's CA certificates they load): the
        // first request makes them.
        assert!(r.inner.secure.get().is_none() && r.inner.insecure.get().is_none());
        let eps = r.read_endpoints("docker.io").unwrap();
        assert_eq!(eps.len(), 2);
        assert_eq!(eps[0].base.as_deref(), Some("http://127.0.0.1:1"));
        assert_eq!(eps[0].ns.as_deref(), Some("docker.io"));
        assert_eq!(eps[1].base.as_deref(), Some("https://registry-1.docker.io"));
        assert_eq!(eps[1].host, "docker.io");
        let local = r.endpoint("localhost:5000").unwrap();
        assert!(local.base.is_none() && local.insecure);
        assert!(r.endpoint("a b").is_err());
        // With a default registry, docker.io names use that host's credentials, never Hub's.
        let mut cfg = RemoteConfig {
            default_registry: Some("registry.lan:5000".into()),
            ..RemoteConfig::default()
        };
        cfg.credentials.insert(
            "docker.io".into(),
            Credential {
                username: "hub".into(),
                password: "hub".into(),
            },
        );
        let r = Remote::new(cfg);
        let ep = r.endpoint("docker.io").unwrap();
        assert_eq!(ep.host, "registry.lan:5000");
        assert!(r.credential(&ep.host).is_none());
    }

    #[test]
    fn locations_and_links() {
        assert_eq!(
            resolve_location("http://h", "/v2/x?a=1"),
            "http://h/v2/x?a=1"
        );
        assert_eq!(
            with_digest("http://h/u?s=1", &Digest::sha256_of(b"")),
            "http://h/u?s=1&digest=sha256%3Ae3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    /// (Link header, the next page or the start of the error)
    #[test]
    fn links() {
        let page = "http://h:5000/v2/x/tags/list?n=2";
        let table: &[(&str, Result<Option<&str>, &str>)] = &[
            (
                r#"</v2/x/tags/list?n=2&last=b>; rel="next""#,
                Ok(Some("http://h:5000/v2/x/tags/list?n=2&last=b")),
            ),
            (
                r#"<http://h:5000/v2/x/tags/list?last=b>; rel=next"#,
                Ok(Some("http://h:5000/v2/x/tags/list?last=b")),
            ),
            (
                r#"</a>; rel="prev", <list?last=c>; REL="last next""#,
                Ok(Some("http://h:5000/v2/x/tags/list?last=c")),
            ),
            (r#"</a>; rel="prev""#, Ok(None)),
            ("", Ok(None)),
            (",,", Ok(None)),
            (r#">x<; rel="next""#, Err("\">x<")),
            (r#"/v2/x/tags/list; rel="next""#, Err("\"/v2/x")),
            (r#"<no end; rel="next""#, Err("\"<no end")),
            (
                r#"<http://other:5000/v2/x>; rel="next""#,
                Err("the next page"),
            ),
            (r#"<https://h:5000/v2/x>; rel="next""#, Err("the next page")),
            (r#"<//evil/v2/x>; rel="next""#, Err("the next page")),
            (
                r#"<http://[::1>; rel="next""#,
                Err("\"http://[::1\" is not a URL"),
            ),
        ];
        for (link, want) in table {
            match (next_page(link, page), want) {
                (Ok(got), Ok(want)) => assert_eq!(got.as_deref(), *want, "{link}"),
                (Err(e), Err(want)) => assert!(e.starts_with(want), "{link}: {e}"),
                (got, want) => panic!("{link}: {got:?}, wanted {want:?}"),
            }
        }
    }
}
