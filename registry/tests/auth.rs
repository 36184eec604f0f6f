//! Access control, driven in-process: every endpoint × {anonymous, wrong password, read-only
//! user, push user, admin} × {a repository the users are given, another one}, with Basic
//! credentials and with tokens from the built-in token service. Each answer is the expected
//! one, and no refused request changes a byte of the store.

mod authconf;
mod webutil;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use axum::http::StatusCode;
use berth_registry::auth::{Auth, AuthConfig};
use berth_registry::config::ServerConfig;
use berth_registry::{Config, Registry};
use berth_storage::testing::{self, TestStore};
use berth_storage::Digest;
use serde_json::{json, Value};
use webutil::{call, Resp};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const TEAM: &str = "team/app";
const OTHER: &str = "other/app";

/// One request with an `Authorization` header and no body.
async fn send(
    reg: &Arc<Registry>,
    method: &str,
    path: &str,
    authorization: impl Into<String>,
) -> Resp {
    call(
        reg,
        method,
        path,
        &[("authorization", authorization.into())],
        "",
    )
    .await
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// The users (passwords `<user>-pw`) and the rules of the matrix.
fn auth_config(dir: &Path, token_service: bool) -> AuthConfig {
    authconf::auth_with(dir, &["reader", "pusher", "admin"], RULES, token_service)
}

const RULES: &str = r#"
[auth.groups]
readers = ["reader"]
pushers = ["pusher"]
[[auth.rules]]
groups = ["readers", "pushers"]
repositories = ["team/*"]
actions = ["pull"]
[[auth.rules]]
groups = ["pushers"]
repositories = ["team/*"]
actions = ["push"]
[[auth.rules]]
users = ["admin"]
repositories = ["*"]
actions = ["pull", "push", "delete"]
[[auth.rules]]
anonymous = true
users = ["*"]
repositories = ["public/*"]
actions = ["pull"]
"#;

/// What the fixture holds in each repository.
struct Fixture {
    manifest: Vec<u8>,
    manifest_digest: Digest,
    layer: Digest,
    /// An upload session open in each repository.
    sessions: BTreeMap<&'static str, String>,
}

/// Fills the store through an open registry: an image tagged `v1` in each repository (and in
/// `public/app`), with a referrer, and an upload session per repository.
async fn fill(ts: &TestStore) -> Fixture {
    let open = Arc::new(Registry::new(ts.store.clone(), ServerConfig::default()));
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer = b"layer bytes".to_vec();
    let cd = Digest::sha256_of(&config);
    let ld = Digest::sha256_of(&layer);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld.to_string(), "size": layer.len()}],
    }))
    .unwrap();
    let md = Digest::sha256_of(&manifest);
    let mut sessions = BTreeMap::new();
    for repo in [TEAM, OTHER, "public/app"] {
        for blob in [&config, &layer] {
            let d = Digest::sha256_of(blob);
            let r = call(
                &open,
                "POST",
                &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
                &[],
                blob.clone(),
            )
            .await;
            assert_eq!(r.status, StatusCode::CREATED);
        }
        let ct = [("content-type", OCI_MANIFEST.to_string())];
        let r = call(
            &open,
            "PUT",
            &format!("/v2/{repo}/manifests/v1"),
            &ct,
            manifest.clone(),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED);
        let referrer = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "text/x-note",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": cd.to_string(), "size": config.len()},
            "layers": [], "subject": {"mediaType": OCI_MANIFEST, "digest": md.to_string(), "size": manifest.len()},
        }))
        .unwrap();
        let rd = Digest::sha256_of(&referrer);
        let r = call(
            &open,
            "PUT",
            &format!("/v2/{repo}/manifests/{rd}"),
            &ct,
            referrer,
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED);
        let r = call(
            &open,
            "POST",
            &format!("/v2/{repo}/blobs/uploads/"),
            &[],
            "",
        )
        .await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        let id = r.header("docker-upload-uuid").to_string();
        sessions.insert(repo, id);
    }
    Fixture {
        manifest,
        manifest_digest: md,
        layer: ld,
        sessions,
    }
}

/// Every file of the store and its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                let key = p.strip_prefix(dir).unwrap().display().to_string();
                out.insert(key, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Anonymous,
    WrongPassword,
    Reader,
    Pusher,
    Admin,
}

impl Who {
    fn user(self) -> Option<(&'static str, &'static str)> {
        match self {
            Who::Anonymous => None,
            Who::WrongPassword => Some(("reader", "not-the-password")),
            Who::Reader => Some(("reader", "reader-pw")),
            Who::Pusher => Some(("pusher", "pusher-pw")),
            Who::Admin => Some(("admin", "admin-pw")),
        }
    }

    /// What the rules give this caller on `repo`.
    fn may(self, repo: &str, action: &str) -> bool {
        let team = repo == TEAM;
        match self {
            Who::Anonymous | Who::WrongPassword => false,
            Who::Reader => team && action == "pull",
            Who::Pusher => team && (action == "pull" || action == "push"),
            Who::Admin => true,
        }
    }
}

/// One endpoint of the matrix: its request and the action it needs.
struct Endpoint {
    name: &'static str,
    action: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    ok: u16,
}

fn endpoints(repo: &str, f: &Fixture) -> Vec<Endpoint> {
    let session = &f.sessions[repo];
    let fresh = b"a fresh blob".to_vec();
    let fd = Digest::sha256_of(&fresh);
    let ep = |name, action, method, path: String, ok| Endpoint {
        name,
        action,
        method,
        path,
        headers: vec![],
        body: vec![],
        ok,
    };
    let md = &f.manifest_digest;
    let ld = &f.layer;
    vec![
        ep("tags", "pull", "GET", format!("/v2/{repo}/tags/list"), 200),
        ep(
            "manifest GET",
            "pull",
            "GET",
            format!("/v2/{repo}/manifests/v1"),
            200,
        ),
        ep(
            "manifest HEAD",
            "pull",
            "HEAD",
            format!("/v2/{repo}/manifests/{md}"),
            200,
        ),
        Endpoint {
            headers: vec![("content-type", OCI_MANIFEST.to_string())],
            body: f.manifest.clone(),
            ..ep(
                "manifest PUT",
                "push",
                "PUT",
                format!("/v2/{repo}/manifests/v2"),
                201,
            )
        },
        ep(
            "manifest DELETE",
            "delete",
            "DELETE",
            format!("/v2/{repo}/manifests/{md}"),
            202,
        ),
        ep(
            "blob GET",
            "pull",
            "GET",
            format!("/v2/{repo}/blobs/{ld}"),
            200,
        ),
        ep(
            "blob HEAD",
            "pull",
            "HEAD",
            format!("/v2/{repo}/blobs/{ld}"),
            200,
        ),
        ep(
            "blob DELETE",
            "delete",
            "DELETE",
            format!("/v2/{repo}/blobs/{ld}"),
            202,
        ),
        ep(
            "upload POST",
            "push",
            "POST",
            format!("/v2/{repo}/blobs/uploads/"),
            202,
        ),
        Endpoint {
            body: fresh.clone(),
            ..ep(
                "upload monolithic",
                "push",
                "POST",
                format!("/v2/{repo}/blobs/uploads/?digest={fd}"),
                201,
            )
        },
        Endpoint {
            body: fresh.clone(),
            ..ep(
                "upload PATCH",
                "push",
                "PATCH",
                format!("/v2/{repo}/blobs/uploads/{session}"),
                202,
            )
        },
        Endpoint {
            body: fresh,
            ..ep(
                "upload PUT",
                "push",
                "PUT",
                format!("/v2/{repo}/blobs/uploads/{session}?digest={fd}"),
                201,
            )
        },
        ep(
            "upload GET",
            "push",
            "GET",
            format!("/v2/{repo}/blobs/uploads/{session}"),
            204,
        ),
        ep(
            "upload DELETE",
            "push",
            "DELETE",
            format!("/v2/{repo}/blobs/uploads/{session}"),
            204,
        ),
        ep(
            "referrers",
            "pull",
            "GET",
            format!("/v2/{repo}/referrers/{md}"),
            200,
        ),
    ]
}

/// A registry with auth over a freshly filled store.
async fn setup(token: bool) -> (Arc<Registry>, TestStore, Fixture, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let ts = testing::fs_store();
    let f = fill(&ts).await;
    let auth = Auth::new(&auth_config(dir.path(), token), false).unwrap();
    let reg = Registry::new(ts.store.clone(), ServerConfig::default()).with_auth(Some(auth));
    (Arc::new(reg), ts, f, dir)
}

/// The `Authorization` header `who` sends: Basic credentials, or (token mode) a token the
/// token service issued for `scope` (`None` when the token service refused the password).
async fn authorization(reg: &Arc<Registry>, who: Who, token: bool, scope: &str) -> Option<String> {
    let (user, password) = who.user()?;
    if !token {
        return Some(basic(user, password));
    }
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("service", "registry.test")
        .append_pair("scope", scope)
        .finish();
    let r = call(
        reg,
        "GET",
        &format!("/token?{q}"),
        &[("authorization", basic(user, password))],
        "",
    )
    .await;
    if who == Who::WrongPassword {
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "the token service refuses a wrong password"
        );
        assert_eq!(r.code(), "UNAUTHORIZED");
        assert!(r.header("www-authenticate").starts_with("Basic "));
        // The client then tries with whatever it has: here, a token that is not one.
        return Some("Bearer not.a.token".to_string());
    }
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    Some(format!("Bearer {}", r.json()["token"].as_str().unwrap()))
}

/// Checks a refusal: 401 with a challenge for callers who have not signed in, 403 DENIED for
/// those who have.
fn expect_refused(r: &Resp, who: Who, token: bool, what: &str) {
    // A HEAD answer has the status and headers, and no body to hold the code.
    let head = what.contains("HEAD");
    match who {
        Who::Anonymous | Who::WrongPassword => {
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {:?}", r.body);
            assert!(head || r.code() == "UNAUTHORIZED", "{what}: {:?}", r.body);
            let challenge = r.header("www-authenticate");
            let want = if token {
                "Bearer realm=\"http://registry.test:5000/token\",service=\"registry.test\""
            } else {
                "Basic realm=\"berth\""
            };
            assert!(challenge.starts_with(want), "{what}: {challenge}");
        }
        _ => {
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{what}: {:?}", r.body);
            assert!(head || r.code() == "DENIED", "{what}: {:?}", r.body);
        }
    }
}

/// The repository names of a search answer.
fn result_names(r: &Resp) -> Vec<String> {
    r.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

async fn matrix(token: bool) {
    let whos = [
        Who::Anonymous,
        Who::WrongPassword,
        Who::Reader,
        Who::Pusher,
        Who::Admin,
    ];
    for repo in [TEAM, OTHER] {
        let names: Vec<&str> = {
            let (_, _, f, _) = setup(token).await;
            endpoints(repo, &f).iter().map(|e| e.name).collect()
        };
        for (i, name) in names.iter().enumerate() {
            for who in whos {
                // A fresh store per cell: an allowed write must not disturb the next cell.
                let (reg, ts, f, _dir) = setup(token).await;
                let e = &endpoints(repo, &f)[i];
                let what = format!(
                    "{} {who:?} {name} on {repo}",
                    if token { "token" } else { "basic" }
                );
                let scope = format!("repository:{repo}:pull,push,delete");
                let mut headers = e.headers.clone();
                if let Some(a) = authorization(&reg, who, token, &scope).await {
                    headers.push(("authorization", a));
                }
                let before = snapshot(ts.dir.as_ref().unwrap().path());
                let r = call(&reg, e.method, &e.path, &headers, e.body.clone()).await;
                if who.may(repo, e.action) {
                    assert_eq!(r.status.as_u16(), e.ok, "{what}: {:?}", r.body);
                } else {
                    expect_refused(&r, who, token, &what);
                    let after = snapshot(ts.dir.as_ref().unwrap().path());
                    assert!(
                        before == after,
                        "{what}: a refused request changed the store"
                    );
                }
            }
        }
    }
    // Endpoints that are not about one repository.
    let (reg, _ts, _f, _dir) = setup(token).await;
    for who in whos {
        let what = format!("{who:?}");
        let auth = authorization(&reg, who, token, "registry:catalog:*").await;
        let headers: Vec<(&str, String)> = auth.into_iter().map(|a| ("authorization", a)).collect();
        let base = call(&reg, "GET", "/v2/", &headers, "").await;
        let catalog = call(&reg, "GET", "/v2/_catalog", &headers, "").await;
        let search = call(&reg, "GET", "/v1/search?q=app", &headers, "").await;
        match who {
            Who::WrongPassword => {
                for r in [&base, &catalog, &search] {
                    expect_refused(r, who, token, &what);
                }
            }
            Who::Anonymous => {
                expect_refused(&base, who, token, &what);
                // Anonymous callers may pull public/*, so they may list it and nothing else.
                assert_eq!(catalog.status, StatusCode::OK, "{what}");
                assert_eq!(
                    catalog.json()["repositories"],
                    json!(["public/app"]),
                    "{what}"
                );
                let names = result_names(&search);
                assert_eq!(names, ["public/app"], "{what}");
            }
            _ => {
                assert_eq!(base.status, StatusCode::OK, "{what}");
                let want: &[&str] = match who {
                    Who::Admin => &["other/app", "public/app", "team/app"],
                    _ => &["public/app", "team/app"],
                };
                assert_eq!(catalog.status, StatusCode::OK, "{what}");
                assert_eq!(catalog.json()["repositories"], json!(want), "{what}");
                let page = call(&reg, "GET", "/v2/_catalog?n=1", &headers, "").await;
                assert_eq!(page.json()["repositories"], json!([want[0]]), "{what}");
                assert!(
                    page.header("link")
                        .contains(&format!("last={}", want[0].replace('/', "%2F"))),
                    "{what}"
                );
                let mut names = result_names(&search);
                names.sort();
                assert_eq!(names, want, "{what}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_for_every_caller_with_basic_auth() {
    matrix(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_for_every_caller_with_tokens() {
    matrix(true).await;
}

/// A mount from another repository needs pull there; without it the registry opens an
/// ordinary upload instead (202), and never links the blob.
#[tokio::test]
async fn a_mount_needs_pull_on_the_source() {
    for token in [false, true] {
        let (reg, ts, f, _dir) = setup(token).await;
        let ld = &f.layer;
        // The pusher may push team/* but not read other/*.
        let scope = format!("repository:{TEAM}:pull,push repository:{OTHER}:pull");
        let auth = authorization(&reg, Who::Pusher, token, &scope)
            .await
            .unwrap();
        let h = [("authorization", auth.clone())];
        // Unlink the layer from team/app first, so a mount would be visible.
        let admin = authorization(
            &reg,
            Who::Admin,
            token,
            &format!("repository:{TEAM}:delete"),
        )
        .await
        .unwrap();
        let r = send(&reg, "DELETE", &format!("/v2/{TEAM}/blobs/{ld}"), admin).await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        let r = call(
            &reg,
            "POST",
            &format!("/v2/{TEAM}/blobs/uploads/?mount={ld}&from={OTHER}"),
            &h,
            "",
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::ACCEPTED,
            "token={token}: no mount, an upload session"
        );
        let r = call(
            &reg,
            "POST",
            &format!("/v2/{TEAM}/blobs/uploads/?mount={ld}"),
            &h,
            "",
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::ACCEPTED,
            "token={token}: no automatic mount under auth"
        );
        let r = call(&reg, "HEAD", &format!("/v2/{TEAM}/blobs/{ld}"), &h, "").await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "token={token}: the blob was not linked"
        );
        // From public/app, which everyone may pull, the mount happens.
        let scope = format!("repository:{TEAM}:pull,push repository:public/app:pull");
        let auth = authorization(&reg, Who::Pusher, token, &scope)
            .await
            .unwrap();
        let r = send(
            &reg,
            "POST",
            &format!("/v2/{TEAM}/blobs/uploads/?mount={ld}&from=public/app"),
            auth,
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "token={token}");
        drop(ts);
    }
}

/// The token service grants the intersection of what was asked and what the rules allow, and
/// the registry checks signature, audience and scope.
#[tokio::test]
async fn tokens_grant_what_the_rules_allow() {
    let (reg, _ts, _f, dir) = setup(true).await;
    let q = "service=registry.test&scope=repository:team/app:pull,push,delete&scope=repository:other/app:pull";
    let r = send(
        &reg,
        "GET",
        &format!("/token?{q}"),
        basic("pusher", "pusher-pw"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let body = r.json();
    assert_eq!(body["expires_in"], 300);
    assert!(body["issued_at"].as_str().unwrap().ends_with('Z'));
    let token = body["token"].as_str().unwrap().to_string();
    assert_eq!(body["access_token"].as_str().unwrap(), token);
    let claims: Value = {
        use base64::Engine;
        let part = token.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(claims["sub"], "pusher");
    assert_eq!(claims["aud"], "registry.test");
    assert_eq!(
        claims["access"],
        json!([{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}])
    );

    // containerd's OAuth2 password grant.
    let form = "grant_type=password&username=reader&password=reader-pw&service=registry.test&scope=repository:team/app:pull&client_id=c";
    let r = call(
        &reg,
        "POST",
        "/token",
        &[(
            "content-type",
            "application/x-www-form-urlencoded".to_string(),
        )],
        form,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(r.json()["access_token"].is_string());
    // What the token service refuses, and how.
    let refusals = [
        (
            "POST",
            "/token",
            "grant_type=password&username=reader&password=no",
            401,
            "",
        ),
        (
            "POST",
            "/token",
            "grant_type=refresh_token&refresh_token=x",
            400,
            "unsupported_grant_type",
        ),
        ("GET", "/token?service=another", "", 400, "invalid_request"),
        (
            "GET",
            "/token?service=registry.test&scope=nonsense",
            "",
            400,
            "invalid_scope",
        ),
    ];
    for (method, path, body, status, error) in refusals {
        let r = call(&reg, method, path, &[], body).await;
        assert_eq!(r.status.as_u16(), status, "{method} {path} {body}");
        if !error.is_empty() {
            assert_eq!(r.json()["error"], error, "{method} {path} {body}");
        }
    }

    // Anonymous tokens carry what anonymous callers may do.
    let r = call(&reg, "GET", "/token?service=registry.test&scope=repository:public/app:pull,push&scope=repository:team/app:pull", &[], "").await;
    let anon = r.json()["token"].as_str().unwrap().to_string();
    let h = [("authorization", format!("Bearer {anon}"))];
    assert_eq!(
        call(&reg, "GET", "/v2/public/app/manifests/v1", &h, "")
            .await
            .status,
        StatusCode::OK
    );
    let r = call(&reg, "GET", "/v2/team/app/manifests/v1", &h, "").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r
        .header("www-authenticate")
        .contains("scope=\"repository:team/app:pull\""));

    // A token short of a scope its holder could have: 401 insufficient_scope, so the client
    // fetches a better one.
    let r = send(
        &reg,
        "GET",
        "/token?service=registry.test&scope=repository:team/app:pull",
        basic("pusher", "pusher-pw"),
    )
    .await;
    let pull_only = r.json()["token"].as_str().unwrap().to_string();
    let h = [("authorization", format!("Bearer {pull_only}"))];
    let r = call(&reg, "POST", "/v2/team/app/blobs/uploads/", &h, "").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let challenge = r.header("www-authenticate");
    assert!(
        challenge.contains("scope=\"repository:team/app:pull,push\"")
            && challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );

    // A token signed with another key, or for another audience, is refused.
    let other_dir = tempfile::tempdir().unwrap();
    let mut other_cfg = auth_config(other_dir.path(), true);
    let other = Arc::new(
        Registry::new(testing::fs_store().store, ServerConfig::default())
            .with_auth(Some(Auth::new(&other_cfg, false).unwrap())),
    );
    let foreign = pusher_token(&other, q).await;
    let r = send(
        &reg,
        "GET",
        "/v2/team/app/manifests/v1",
        format!("Bearer {foreign}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r
        .header("www-authenticate")
        .contains("error=\"invalid_token\""));
    // ... unless the registry trusts that service: an external token service.
    other_cfg.token.as_mut().unwrap().service = "registry.test".into();
    other_cfg.token.as_mut().unwrap().issuer = "external".into();
    let external = Auth::new(&other_cfg, false).unwrap();
    let ext_reg = Arc::new(
        Registry::new(testing::fs_store().store, ServerConfig::default()).with_auth(Some(external)),
    );
    let ext_token = pusher_token(&ext_reg, q).await;
    let cert = external_certificate(&other_dir.path().join("token.pem"), dir.path());
    let mut trusting = auth_config(dir.path(), true);
    trusting.token.as_mut().unwrap().trust = vec![berth_registry::auth::TrustConfig {
        issuer: "external".into(),
        key: cert,
    }];
    let trusting = Arc::new(
        Registry::new(_ts.store.clone(), ServerConfig::default())
            .with_auth(Some(Auth::new(&trusting, false).unwrap())),
    );
    let r = send(
        &trusting,
        "GET",
        "/v2/team/app/manifests/v1",
        format!("Bearer {ext_token}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // Its issuer must be the one configured with that key.
    let r = send(
        &reg,
        "GET",
        "/v2/team/app/manifests/v1",
        format!("Bearer {ext_token}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

/// The token the token service of `reg` gives the pusher for the query `q`.
async fn pusher_token(reg: &Arc<Registry>, q: &str) -> String {
    let r = send(
        reg,
        "GET",
        &format!("/token?{q}"),
        basic("pusher", "pusher-pw"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.json()["token"].as_str().unwrap().to_string()
}

/// A self-signed certificate over the external service's signing key, as such services publish.
fn external_certificate(key_pem: &Path, dir: &Path) -> std::path::PathBuf {
    let pem = std::fs::read_to_string(key_pem).unwrap();
    let key = rcgen::KeyPair::from_pem(&pem).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["auth.test".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let path = dir.join("external.crt");
    std::fs::write(&path, cert.pem()).unwrap();
    path
}

#[tokio::test]
async fn start_up_refuses_what_it_cannot_check() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = auth_config(dir.path(), false);
    std::fs::write(
        dir.path().join("htpasswd"),
        "alice:$apr1$xyz$0123456789abcdefghijkl\n",
    )
    .unwrap();
    let err = Auth::new(&cfg, false).err().unwrap();
    assert!(
        err.contains("line 1") && err.contains("alice") && err.contains("htpasswd -B"),
        "{err}"
    );
    cfg.htpasswd = dir.path().join("missing");
    assert!(Auth::new(&cfg, false).err().unwrap().contains("missing"));
    let bad = "[auth]\nhtpasswd = \"x\"\n[[auth.rules]]\ngroups = [\"nope\"]\nrepositories = [\"*\"]\nactions = [\"pull\"]\n";
    let cfg = Config::parse(bad, "t").unwrap().auth.unwrap();
    std::fs::write(dir.path().join("h2"), "").unwrap();
    let cfg = AuthConfig {
        htpasswd: dir.path().join("h2"),
        ..cfg
    };
    assert!(Auth::new(&cfg, false)
        .err()
        .unwrap()
        .contains("group \"nope\""));
    let err = Config::parse("[auth]\nhtpasswd = \"x\"\n[[auth.rules]]\nusers = [\"a\"]\nrepositories = [\"*\"]\nactions = [\"fly\"]\n", "t").err().unwrap();
    assert!(err.to_string().contains("fly"), "{err}");
}

/// A thousand wrong passwords, sent 8 at a time, while a signed-in user keeps pulling: every
/// wrong one is refused, every pull answers, and the right password still works after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_wrong_passwords_leave_others_served() {
    let (reg, _ts, _f, _dir) = setup(false).await;
    let good = [("authorization", basic("reader", "reader-pw"))];
    assert_eq!(
        call(&reg, "GET", "/v2/team/app/manifests/v1", &good, "")
            .await
            .status,
        StatusCode::OK
    );
    let attacker = {
        let reg = reg.clone();
        tokio::spawn(async move {
            let mut refused = 0;
            for batch in 0..125 {
                let calls = (0..8).map(|i| {
                    let reg = reg.clone();
                    async move {
                        let h = [(
                            "authorization",
                            basic("admin", &format!("guess-{batch}-{i}")),
                        )];
                        call(&reg, "GET", "/v2/", &h, "").await.status
                    }
                });
                for s in futures::future::join_all(calls).await {
                    assert_eq!(s, StatusCode::UNAUTHORIZED);
                    refused += 1;
                }
            }
            refused
        })
    };
    let mut pulls = 0;
    while !attacker.is_finished() {
        let r = call(&reg, "GET", "/v2/team/app/manifests/v1", &good, "").await;
        assert_eq!(r.status, StatusCode::OK);
        pulls += 1;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(attacker.await.unwrap(), 1000);
    assert!(pulls > 0);
    let admin = [("authorization", basic("admin", "admin-pw"))];
    assert_eq!(
        call(&reg, "GET", "/v2/", &admin, "").await.status,
        StatusCode::OK
    );
}

/// `/metrics` asks for a user (any user with valid credentials) unless `auth.metrics` is
/// `"public"`; a value it does not know is refused with the key named.
#[tokio::test]
async fn metrics_need_a_user_unless_public() {
    for token in [false, true] {
        let (reg, _ts, _f, _dir) = setup(token).await;
        let r = call(&reg, "GET", "/metrics", &[], "").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "token {token}");
        assert_eq!(r.code(), "UNAUTHORIZED");
        assert!(!r.header("www-authenticate").is_empty());
        let r = send(&reg, "GET", "/metrics", basic("reader", "wrong")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "token {token}");
        let r = send(&reg, "GET", "/metrics", basic("reader", "reader-pw")).await;
        assert_eq!(r.status, StatusCode::OK, "token {token}");
        assert!(String::from_utf8_lossy(&r.body).contains("berth_http_requests_total"));
        if token {
            // An anonymous token (anyone can have one) is not a user.
            let t = call(
                &reg,
                "GET",
                "/token?service=registry.test&scope=repository:public/app:pull",
                &[],
                "",
            )
            .await;
            assert_eq!(t.status, StatusCode::OK);
            let bearer = format!("Bearer {}", t.json()["token"].as_str().unwrap());
            let r = send(&reg, "GET", "/metrics", bearer).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED);
            let bearer = authorization(&reg, Who::Reader, true, "repository:team/app:pull")
                .await
                .unwrap();
            let r = send(&reg, "GET", "/metrics", bearer).await;
            assert_eq!(
                r.status,
                StatusCode::OK,
                "a reader's token names the reader"
            );
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = auth_config(dir.path(), false);
    config.metrics = berth_registry::auth::MetricsAccess::Public;
    let ts = testing::fs_store();
    let reg = Arc::new(
        Registry::new(ts.store.clone(), ServerConfig::default())
            .with_auth(Some(Auth::new(&config, false).unwrap())),
    );
    let r = call(&reg, "GET", "/metrics", &[], "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        call(&reg, "GET", "/v2/team/app/tags/list", &[], "")
            .await
            .status,
        StatusCode::UNAUTHORIZED,
        "only /metrics is opened"
    );
    let err = Config::parse("[auth]\nhtpasswd = \"x\"\nmetrics = \"everyone\"\n", "t")
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("metrics") && err.to_string().contains("public"),
        "{err}"
    );
}
