//! Helpers of the web page's tests: a registry with the page (and optionally access control),
//! images pushed through the API, requests with a cookie jar, and reading the answers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use berth_registry::auth::{Auth, AuthConfig};
use berth_registry::config::ServerConfig;
use berth_registry::web::{Web, WebConfig};
use berth_registry::{api, Config, Registry, Server};
use berth_storage::testing::{self, TestStore};
use berth_storage::Digest;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::json;
use std::net::SocketAddr;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

pub async fn store() -> TestStore {
    testing::store("fs").await
}

/// How the registry under test is set up.
pub struct Setup {
    pub web: bool,
    pub prefix: &'static str,
    pub server: ServerConfig,
    pub auth: Option<AuthConfig>,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            web: true,
            prefix: "/ui",
            server: ServerConfig::default(),
            auth: None,
        }
    }
}

pub fn registry(ts: &TestStore, setup: Setup) -> Arc<Registry> {
    let auth = setup.auth.as_ref().map(|a| Auth::new(a, false).unwrap());
    let mut reg = Registry::new(ts.store.clone(), setup.server).with_auth(auth);
    if setup.web {
        let config = WebConfig {
            prefix: setup.prefix.to_string(),
            ..WebConfig::default()
        };
        config.validate().unwrap();
        reg = reg.with_page(Web::new(config));
    }
    Arc::new(reg)
}

/// An open registry over the same store, to fill it whatever the access rules.
pub fn filler(ts: &TestStore) -> Arc<Registry> {
    Arc::new(Registry::new(ts.store.clone(), ServerConfig::default()))
}

/// The users `alice` (pull and delete on team/*), `bob` (pull on team/*), and the anonymous
/// rule for public/*; passwords are `<user>-pw`.
pub fn auth_config(dir: &Path, token_service: bool) -> AuthConfig {
    crate::authconf::auth_with(dir, &["alice", "bob"], RULES, token_service)
}

const RULES: &str = r#"
[[auth.rules]]
users = ["alice", "bob"]
repositories = ["team/*"]
actions = ["pull"]
[[auth.rules]]
users = ["alice"]
repositories = ["team/*"]
actions = ["delete"]
[[auth.rules]]
anonymous = true
users = ["*"]
repositories = ["public/*"]
actions = ["pull"]
"#;

#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }

    pub fn code(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body).unwrap_or_default()["errors"][0]
            ["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Every `href` that starts with `prefix`, in order, unescaped.
    pub fn links_to(&self, prefix: &str) -> Vec<String> {
        let text = self.text();
        text.split("href=\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .map(|h| h.replace("&amp;", "&"))
            .filter(|h| h.starts_with(prefix))
            .collect()
    }

    /// The CSRF token of the page's forms.
    pub fn csrf(&self) -> String {
        let text = self.text();
        let at = text
            .find(r#"name="csrf" value=""#)
            .expect("the page has a form with a CSRF token");
        text[at + r#"name="csrf" value=""#.len()..]
            .split('"')
            .next()
            .unwrap()
            .to_string()
    }

    /// The `Set-Cookie` line for `name`.
    pub fn set_cookie(&self, name: &str) -> String {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .unwrap_or("")
            .to_string()
    }
}

pub async fn call(
    reg: &Arc<Registry>,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: impl Into<Bytes>,
) -> Resp {
    call_with(reg, method, path, headers, body, false).await
}

pub async fn call_with(
    reg: &Arc<Registry>,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: impl Into<Bytes>,
    tls: bool,
) -> Resp {
    let body: Bytes = body.into();
    let mut b = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(path)
        .header("host", "registry.test:5000")
        .header("content-length", body.len());
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    let mut req = b.body(Body::from(body)).unwrap();
    req.extensions_mut()
        .insert(berth_registry::Transport { tls });
    let resp = api::handle(reg.clone(), req).await;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Resp {
        status,
        headers,
        body,
    }
}

/// A browser's GET of a page.
pub async fn get(reg: &Arc<Registry>, path: &str, cookie: Option<&str>) -> Resp {
    let mut headers = vec![("accept", "text/html,*/*;q=0.8".to_string())];
    if let Some(c) = cookie {
        headers.push(("cookie", c.to_string()));
    }
    call(reg, "GET", path, &headers, "").await
}

/// Requests with the cookies the page set, as a browser keeps them.
#[derive(Debug, Clone, Default)]
pub struct Browser {
    pub cookies: BTreeMap<String, String>,
    pub tls: bool,
}

impl Browser {
    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, resp: &Resp) {
        for line in resp.headers.get_all("set-cookie") {
            let line = line.to_str().unwrap();
            let (pair, attrs) = line.split_once(';').unwrap_or((line, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
    }

    pub async fn get(&mut self, reg: &Arc<Registry>, path: &str) -> Resp {
        let headers = [
            ("accept", "text/html".to_string()),
            ("cookie", self.cookie_header()),
        ];
        let r = call_with(reg, "GET", path, &headers, "", self.tls).await;
        self.keep(&r);
        r
    }

    pub async fn post(
        &self,
        reg: &Arc<Registry>,
        path: &str,
        form: &str,
        extra: &[(&str, &str)],
    ) -> Resp {
        let mut headers = vec![
            (
                "content-type",
                "application/x-www-form-urlencoded".to_string(),
            ),
            ("cookie", self.cookie_header()),
        ];
        headers.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        call_with(reg, "POST", path, &headers, form.to_string(), self.tls).await
    }

    /// A POST that keeps what the answer sets (sign-in, sign-out).
    pub async fn submit(&mut self, reg: &Arc<Registry>, path: &str, form: &str) -> Resp {
        let r = self.post(reg, path, form, &[]).await;
        self.keep(&r);
        r
    }

    pub async fn post_typed(
        &self,
        reg: &Arc<Registry>,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> Resp {
        let headers = [
            ("content-type", content_type.to_string()),
            ("cookie", self.cookie_header()),
        ];
        call_with(reg, "POST", path, &headers, body.to_string(), self.tls).await
    }
}

/// What an image pushed for a test holds.
#[derive(Default)]
pub struct ImageSpec {
    /// Distinguishes images with otherwise equal content.
    pub seed: u8,
    pub architecture: Option<(&'static str, Option<&'static str>)>,
}

pub struct Pushed {
    pub digest: Digest,
    pub manifest_len: usize,
    /// Config and layers, as the page adds them up.
    pub size: u64,
    pub layers: Vec<Digest>,
    pub layer_sizes: Vec<u64>,
}

async fn put_blob(reg: &Arc<Registry>, repo: &str, blob: &[u8]) -> Digest {
    let d = Digest::sha256_of(blob);
    let r = call(
        reg,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
        &[],
        blob.to_vec(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    d
}

pub async fn put_manifest(
    reg: &Arc<Registry>,
    repo: &str,
    reference: &str,
    media_type: &str,
    body: &[u8],
) -> Digest {
    let r = call(
        reg,
        "PUT",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("content-type", media_type.to_string())],
        body.to_vec(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    Digest::sha256_of(body)
}

/// An image with two layers and a config with env, cmd, entrypoint, labels, ports, volumes
/// and a history of three steps (one without a layer).
pub async fn push_image(reg: &Arc<Registry>, repo: &str, tag: &str, spec: &ImageSpec) -> Pushed {
    let (arch, variant) = spec.architecture.unwrap_or(("amd64", None));
    let layers: Vec<Vec<u8>> = vec![
        vec![spec.seed; 1500],
        vec![spec.seed.wrapping_add(1); 23_456],
    ];
    let mut config = json!({
        "architecture": arch, "os": "linux",
        "created": "2026-01-02T03:04:05Z",
        "config": {
            "Env": ["PATH=/usr/bin:/bin", "GREETING=hello <world>"],
            "Cmd": ["/bin/serve", "--port", "8080"],
            "Entrypoint": ["/entry.sh"],
            "WorkingDir": "/srv",
            "Labels": {"org.opencontainers.image.source": "https://example.invalid/app"},
            "ExposedPorts": {"8080/tcp": {}},
            "Volumes": {"/data": {}},
        },
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [
            {"created": "2026-01-01T00:00:00Z", "created_by": "ADD rootfs.tar /"},
            {"created": "2026-01-02T00:00:00Z", "created_by": "ENV GREETING=hello", "empty_layer": true},
            {"created": "2026-01-02T03:04:05Z", "created_by": "RUN make install"},
        ],
    });
    if let Some(v) = variant {
        config["variant"] = json!(v);
    }
    let config = serde_json::to_vec(&config).unwrap();
    let cd = put_blob(reg, repo, &config).await;
    let mut descs = Vec::new();
    let mut digests = Vec::new();
    for l in &layers {
        let d = put_blob(reg, repo, l).await;
        descs.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d.to_string(), "size": l.len()}));
        digests.push(d);
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": config.len()},
        "layers": descs,
    }))
    .unwrap();
    let digest = put_manifest(reg, repo, tag, OCI_MANIFEST, &manifest).await;
    let layer_sizes: Vec<u64> = layers.iter().map(|l| l.len() as u64).collect();
    Pushed {
        digest,
        manifest_len: manifest.len(),
        size: config.len() as u64 + layer_sizes.iter().sum::<u64>(),
        layers: digests,
        layer_sizes,
    }
}

/// An index of two images (linux/amd64, linux/arm64/v8), tagged `tag`.
pub async fn push_index(reg: &Arc<Registry>, repo: &str, tag: &str) -> Digest {
    let amd = push_image(
        reg,
        repo,
        "amd64-only",
        &ImageSpec {
            seed: 10,
            architecture: Some(("amd64", None)),
        },
    )
    .await;
    let arm = push_image(
        reg,
        repo,
        "arm64-only",
        &ImageSpec {
            seed: 20,
            architecture: Some(("arm64", Some("v8"))),
        },
    )
    .await;
    // The children need no tags of their own.
    for t in ["amd64-only", "arm64-only"] {
        let r = call(reg, "DELETE", &format!("/v2/{repo}/manifests/{t}"), &[], "").await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
    }
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": amd.digest.to_string(), "size": amd.manifest_len,
             "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": OCI_MANIFEST, "digest": arm.digest.to_string(), "size": arm.manifest_len,
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        ],
    }))
    .unwrap();
    put_manifest(reg, repo, tag, OCI_INDEX, &index).await
}

/// An artifact of `artifact_type` whose subject is `subject` (a signature, an SBOM).
pub async fn push_referrer(
    reg: &Arc<Registry>,
    repo: &str,
    subject: &Pushed,
    artifact_type: &str,
    seed: u8,
) -> Digest {
    let blob = vec![seed; 100];
    let d = put_blob(reg, repo, &blob).await;
    let empty = put_blob(reg, repo, b"{}").await;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.to_string(), "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": d.to_string(), "size": blob.len()}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject.digest.to_string(), "size": subject.manifest_len},
        "annotations": {"org.opencontainers.image.created": format!("2026-02-0{seed}T00:00:00Z")},
    }))
    .unwrap();
    let digest = Digest::sha256_of(&manifest);
    put_manifest(reg, repo, &digest.to_string(), OCI_MANIFEST, &manifest).await
}

pub async fn tag_exists(reg: &Arc<Registry>, repo: &str, tag: &str) -> bool {
    let r = call(reg, "HEAD", &format!("/v2/{repo}/manifests/{tag}"), &[], "").await;
    r.status == StatusCode::OK
}

/// A size as the page prints it.
pub fn pages_size(n: u64) -> String {
    berth_registry::web::human_size(n)
}

/// A `berth serve` on a loopback port, stopped when dropped.
pub struct Serving {
    pub addr: SocketAddr,
    pub registry: Arc<Registry>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn serve(extra: &str) -> Serving {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\nbackend = \"filesystem\"\nroot = {:?}\n{extra}",
        dir.path().join("store")
    );
    let config = Config::parse(&text, "test").unwrap();
    let server = Server::bind(config).await.unwrap();
    let addr = server.local_addr();
    let registry = server.registry();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    Serving {
        addr,
        registry,
        stop: Some(stop),
        _dir: dir,
    }
}

/// An open registry over the store a `berth serve` serves, to fill it whatever its rules.
pub fn filler_of(serving: &Serving) -> Arc<Registry> {
    Arc::new(Registry::new(
        serving.registry.store.clone(),
        ServerConfig::default(),
    ))
}
