//! The distribution spec, endpoint by endpoint and error by error, driven in-process through
//! the registry's request handler on the file system and on S3 (s3s-fs and moto).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use berth_registry::config::ServerConfig;
use berth_registry::{api, Registry};
use berth_storage::testing::{self, TestStore};
use berth_storage::Digest;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{json, Value};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

struct T {
    reg: Arc<Registry>,
    ts: TestStore,
}

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Resp {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    fn code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
    fn expect(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {:?}", self.body);
        assert_eq!(self.code(), code, "body: {:?}", self.body);
    }
}

fn registry(ts: &TestStore, delete: bool) -> Arc<Registry> {
    Arc::new(Registry::new(
        ts.store.clone(),
        ServerConfig {
            delete,
            ..ServerConfig::default()
        },
    ))
}

impl T {
    async fn new(kind: &str) -> T {
        let ts = testing::store(kind).await;
        T {
            reg: registry(&ts, true),
            ts,
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Resp {
        call(&self.reg, method, path, headers, body).await
    }

    /// Pushes a blob monolithically and returns its digest.
    async fn blob(&self, repo: &str, data: &[u8]) -> Digest {
        let d = Digest::sha256_of(data);
        let r = self
            .call(
                "POST",
                &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
                &[],
                data.to_vec(),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        d
    }

    /// Pushes an image manifest with a config and layers; returns (digest, bytes).
    async fn image(&self, repo: &str, tag: &str, layers: &[&[u8]]) -> (Digest, Vec<u8>) {
        let config = format!(
            "{{\"architecture\":\"amd64\",\"os\":\"linux\",\"n\":{}}}",
            layers.len()
        );
        let cd = self.blob(repo, config.as_bytes()).await;
        let mut descs = Vec::new();
        for l in layers {
            let d = self.blob(repo, l).await;
            descs.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d.to_string(), "size": l.len()}));
        }
        let m = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": config.len()},
            "layers": descs,
        });
        let body = serde_json::to_vec_pretty(&m).unwrap();
        let r = self
            .call(
                "PUT",
                &format!("/v2/{repo}/manifests/{tag}"),
                &[("content-type", OCI_MANIFEST)],
                body.clone(),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        (Digest::sha256_of(&body), body)
    }
}

async fn call(
    reg: &Arc<Registry>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Resp {
    let body: Bytes = body.into();
    let mut b = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(path);
    let mut has_len = false;
    for (k, v) in headers {
        has_len |= k.eq_ignore_ascii_case("content-length");
        b = b.header(*k, *v);
    }
    if !has_len && !body.is_empty() {
        b = b.header("content-length", body.len());
    }
    let resp = api::handle(reg.clone(), b.body(Body::from(body)).unwrap()).await;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        headers.get("docker-distribution-api-version").unwrap(),
        "registry/2.0"
    );
    Resp {
        status,
        headers,
        body,
    }
}

async fn base_and_errors_for_names(t: T) {
    let r = t.call("GET", "/v2/", &[], "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, "{}");
    for path in [
        "/v2/a/../b/manifests/latest",
        "/v2/UPPER/manifests/latest",
        "/v2/a//b/tags/list",
        "/v2/-a/blobs/uploads/",
        "/v2/_x/blobs/sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ] {
        let method = if path.ends_with("uploads/") {
            "POST"
        } else {
            "GET"
        };
        t.call(method, path, &[], "")
            .await
            .expect(400, "NAME_INVALID");
    }
    let long = format!("/v2/{}/tags/list", "a".repeat(256));
    t.call("GET", &long, &[], "")
        .await
        .expect(400, "NAME_INVALID");
    t.call("GET", "/v2/nothing/tags/list", &[], "")
        .await
        .expect(404, "NAME_UNKNOWN");
    t.call("GET", "/v2/nothing/manifests/latest", &[], "")
        .await
        .expect(404, "NAME_UNKNOWN");
    t.call("GET", "/v2/a/blobs/sha256:abc", &[], "")
        .await
        .expect(400, "DIGEST_INVALID");
    t.call("GET", "/v2/a/blobs/md5:abc", &[], "")
        .await
        .expect(400, "DIGEST_INVALID");
    t.call("POST", "/v2/a/manifests/latest", &[], "")
        .await
        .expect(405, "UNSUPPORTED");
}

async fn blobs_get_head_range_delete(t: T) {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let d = t.blob("app", &data).await;
    let path = format!("/v2/app/blobs/{d}");
    let r = t.call("HEAD", &path, &[], "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-length"), "100000");
    assert_eq!(r.header("docker-content-digest"), d.as_str());
    assert!(r.body.is_empty());
    let r = t.call("GET", &path, &[], "").await;
    assert_eq!(r.body, data);
    assert_eq!(r.header("content-type"), "application/octet-stream");
    let r = t.call("GET", &path, &[("range", "bytes=10-19")], "").await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.body, &data[10..20]);
    assert_eq!(r.header("content-range"), "bytes 10-19/100000");
    assert_eq!(r.header("content-length"), "10");
    let r = t.call("GET", &path, &[("range", "bytes=-5")], "").await;
    assert_eq!(r.body, &data[99_995..]);
    // RFC 9110: what is not one well-formed bytes range is ignored (the whole blob, 200);
    // past the end is clamped; what selects nothing is 416 with `bytes */SIZE` and no code.
    let etag = format!("\"{d}\"");
    // (request headers, status, the bytes that come back)
    type Case<'a> = (&'a [(&'a str, &'a str)], u16, std::ops::Range<usize>);
    let cases: &[Case] = &[
        (&[("range", "items=0-9")], 200, 0..100_000),
        (&[("range", "bytes=abc")], 200, 0..100_000),
        (&[("range", "bytes 0-9")], 200, 0..100_000),
        (&[("range", "bytes=9-5")], 200, 0..100_000),
        (&[("range", "bytes=0-1,5-6")], 200, 0..100_000),
        (&[("range", "bytes=0-1,200000-")], 200, 0..100_000),
        (&[("range", "bytes=99990-200000")], 206, 99_990..100_000),
        (
            &[("range", "bytes=99990-99999999999999999999999")],
            206,
            99_990..100_000,
        ),
        (&[("range", "bytes=-200000")], 206, 0..100_000),
        (&[("range", "Bytes=0-0")], 206, 0..1),
        (&[("range", "bytes=100000-")], 416, 0..0),
        (&[("range", "bytes=100000-100005")], 416, 0..0),
        (&[("range", "bytes=-0")], 416, 0..0),
        (&[("range", "bytes=18446744073709551615-")], 416, 0..0),
        // If-Range: the blob's own ETag keeps the range; another tag or a date drops it.
        (&[("range", "bytes=0-9"), ("if-range", &etag)], 206, 0..10),
        (
            &[("range", "bytes=0-9"), ("if-range", "\"sha256:other\"")],
            200,
            0..100_000,
        ),
        (
            &[
                ("range", "bytes=0-9"),
                ("if-range", "Wed, 21 Oct 2015 07:28:00 GMT"),
            ],
            200,
            0..100_000,
        ),
    ];
    for (headers, status, want) in cases {
        let r = t.call("GET", &path, headers, "").await;
        assert_eq!(r.status.as_u16(), *status, "{headers:?}: {:?}", r.body);
        match status {
            416 => {
                assert_eq!(r.header("content-range"), "bytes */100000", "{headers:?}");
                assert!(
                    r.body.is_empty(),
                    "{headers:?}: no error code: {:?}",
                    r.body
                );
            }
            _ => {
                assert_eq!(r.body, &data[want.clone()], "{headers:?}");
                assert_eq!(r.header("content-length"), want.len().to_string());
                let range = format!("bytes {}-{}/100000", want.start, want.end - 1);
                let expected = if *status == 206 { range.as_str() } else { "" };
                assert_eq!(r.header("content-range"), expected, "{headers:?}");
            }
        }
    }
    // Range means nothing to a HEAD.
    let r = t.call("HEAD", &path, &[("range", "bytes=0-9")], "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-length"), "100000");
    assert_eq!(r.header("content-range"), "");
    // Another repository cannot read it without a mount.
    t.call("GET", &format!("/v2/other/blobs/{d}"), &[], "")
        .await
        .expect(404, "BLOB_UNKNOWN");
    let r = t
        .call("HEAD", &format!("/v2/other/blobs/{d}"), &[], "")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.is_empty());
    let r = t.call("DELETE", &path, &[], "").await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    t.call("GET", &path, &[], "")
        .await
        .expect(404, "BLOB_UNKNOWN");
    t.call("DELETE", &path, &[], "")
        .await
        .expect(404, "BLOB_UNKNOWN");
}

/// A HEAD of a blob only stats it: it never opens it (on S3, never starts a GetObject).
async fn blob_heads_open_nothing(t: T) {
    let d = t.blob("app", b"a small config").await;
    let recording = Arc::new(testing::Recording::new(t.ts.backend.clone()));
    let reg = Arc::new(Registry::new(
        berth_storage::Store::new(recording.clone()),
        ServerConfig::default(),
    ));
    let path = format!("/v2/app/blobs/{d}");
    let r = call(&reg, "HEAD", &path, &[], "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-length"), "14");
    let calls = recording.take();
    assert!(!calls.is_empty());
    assert!(calls.iter().all(|(op, _)| *op == "stat"), "{calls:?}");
    // The GET does open it (so the recording sees what it should).
    let r = call(&reg, "GET", &path, &[], "").await;
    assert_eq!(r.body, "a small config");
    let calls = recording.take();
    let blob = format!("blobs/sha256/{}", d.hex());
    assert!(calls.contains(&("get", blob)), "{calls:?}");
}

/// A panic inside a handler (injected: the store panics on one tag's key) is that request's
/// 500 with a spec body; the registry goes on answering, the same repository included.
async fn a_panic_is_a_500_and_the_registry_goes_on(t: T) {
    let (d, body) = t.image("app", "v1", &[b"layer"]).await;
    let backend = testing::Recording::new(t.ts.backend.clone()).panic_on("_tags/boom");
    let reg = Arc::new(Registry::new(
        berth_storage::Store::new(Arc::new(backend)),
        ServerConfig::default(),
    ));
    for _ in 0..3 {
        let r = call(&reg, "GET", "/v2/app/manifests/boom", &[], "").await;
        r.expect(500, "UNKNOWN");
        assert_eq!(r.header("content-type"), "application/json");
        let r = call(&reg, "GET", "/v2/app/manifests/v1", &[], "").await;
        assert_eq!((r.status, &r.body[..]), (StatusCode::OK, &body[..]));
        let r = call(&reg, "HEAD", &format!("/v2/app/manifests/{d}"), &[], "").await;
        assert_eq!(r.status, StatusCode::OK);
    }
}

async fn uploads_monolithic_and_post_put(t: T) {
    // Wrong digest on a monolithic POST.
    let wrong = Digest::sha256_of(b"other");
    t.call(
        "POST",
        &format!("/v2/app/blobs/uploads/?digest={wrong}"),
        &[],
        "data",
    )
    .await
    .expect(400, "DIGEST_INVALID");
    // Nothing of it was kept, under either digest.
    for d in [wrong, Digest::sha256_of(b"data")] {
        let r = t.call("HEAD", &format!("/v2/app/blobs/{d}"), &[], "").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{d}");
        assert!(t.ts.store.blobs.stat(&d).await.unwrap().is_none(), "{d}");
    }
    // POST then PUT with the whole body.
    let r = t.call("POST", "/v2/app/blobs/uploads/", &[], "").await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let loc = r.header("location").to_string();
    assert!(loc.starts_with("/v2/app/blobs/uploads/"), "{loc}");
    assert_eq!(r.header("range"), "0-0");
    assert!(!r.header("docker-upload-uuid").is_empty());
    let d = Digest::sha256_of(b"hello world");
    let r = t
        .call("PUT", &format!("{loc}?digest={d}"), &[], "hello world")
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.header("location"), format!("/v2/app/blobs/{d}"));
    assert_eq!(r.header("docker-content-digest"), d.as_str());
    assert_eq!(
        t.call("GET", &format!("/v2/app/blobs/{d}"), &[], "")
            .await
            .body,
        "hello world"
    );
    // The session is gone once completed.
    t.call("GET", &loc, &[], "")
        .await
        .expect(404, "BLOB_UPLOAD_UNKNOWN");
    // PUT without a digest.
    let loc = t
        .call("POST", "/v2/app/blobs/uploads/", &[], "")
        .await
        .header("location")
        .to_string();
    t.call("PUT", &loc, &[], "x")
        .await
        .expect(400, "DIGEST_INVALID");
    t.call("PUT", &format!("{loc}?digest=sha256:zz"), &[], "x")
        .await
        .expect(400, "DIGEST_INVALID");
}

async fn uploads_chunked(t: T) {
    let data: Vec<u8> = (0..30_000u32).map(|i| (i % 7) as u8).collect();
    let d = Digest::sha256_of(&data);
    let r = t.call("POST", "/v2/team/app/blobs/uploads/", &[], "").await;
    let loc = r.header("location").to_string();
    let r = t
        .call(
            "PATCH",
            &loc,
            &[
                ("content-range", "0-9999"),
                ("content-type", "application/octet-stream"),
            ],
            data[..10_000].to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.header("range"), "0-9999");
    assert_eq!(r.header("location"), loc);
    // Out of order: a gap, an overlap, a restart from zero: 416, session unchanged.
    for range in ["10001-10010", "5000-15000", "0-9999"] {
        let (a, b) = range.split_once('-').unwrap();
        let len = b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1;
        let r = t
            .call("PATCH", &loc, &[("content-range", range)], vec![0u8; len])
            .await;
        assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(r.code(), "BLOB_UPLOAD_INVALID");
        assert_eq!(r.header("range"), "0-9999");
    }
    // A Content-Range that disagrees with Content-Length, and a malformed one.
    t.call(
        "PATCH",
        &loc,
        &[("content-range", "10000-10009"), ("content-length", "5")],
        vec![1u8; 5],
    )
    .await
    .expect(400, "SIZE_INVALID");
    // Malformed ranges, and ones whose length overflows 64 bits: 416, session unchanged.
    for range in [
        "abc",
        "0-18446744073709551615",
        "18446744073709551615-0",
        "0-99999999999999999999",
        "-1-5",
    ] {
        let r = t
            .call("PATCH", &loc, &[("content-range", range)], "x")
            .await;
        assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(r.code(), "BLOB_UPLOAD_INVALID", "{range}");
    }
    // A body larger than its declared range.
    t.call(
        "PATCH",
        &loc,
        &[("content-range", "10000-10004"), ("content-length", "5")],
        vec![1u8; 9],
    )
    .await
    .expect(400, "SIZE_INVALID");
    let r = t.call("GET", &loc, &[], "").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.header("range"), "0-9999");
    assert_eq!(r.header("location"), loc);
    // A streamed chunk (no Content-Range), then the last chunk on the PUT.
    let r = t
        .call("PATCH", &loc, &[], data[10_000..25_000].to_vec())
        .await;
    assert_eq!(r.header("range"), "0-24999");
    let r = t
        .call(
            "PUT",
            &format!("{loc}?digest={d}"),
            &[("content-range", "25000-29999")],
            data[25_000..].to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(
        t.call("GET", &format!("/v2/team/app/blobs/{d}"), &[], "")
            .await
            .body,
        data
    );
    // Unknown, foreign and malformed session ids.
    let r = t.call("POST", "/v2/team/app/blobs/uploads/", &[], "").await;
    let loc = r.header("location").to_string();
    let id = loc.rsplit('/').next().unwrap();
    t.call("PATCH", &format!("/v2/other/blobs/uploads/{id}"), &[], "x")
        .await
        .expect(404, "BLOB_UPLOAD_UNKNOWN");
    t.call(
        "GET",
        "/v2/team/app/blobs/uploads/0f2c1d51-7b1b-4b59-9f0b-5c9b1a1e2f3a",
        &[],
        "",
    )
    .await
    .expect(404, "BLOB_UPLOAD_UNKNOWN");
    t.call("GET", "/v2/team/app/blobs/uploads/not-a-uuid", &[], "")
        .await
        .expect(404, "BLOB_UPLOAD_UNKNOWN");
    // Wrong digest at the end cancels the session.
    let r = t.call("PATCH", &loc, &[], "abc").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.header("range"), "0-2");
    t.call("PUT", &format!("{loc}?digest={d}"), &[], "")
        .await
        .expect(400, "DIGEST_INVALID");
    t.call("GET", &loc, &[], "")
        .await
        .expect(404, "BLOB_UPLOAD_UNKNOWN");
    // Cancel.
    let loc = t
        .call("POST", "/v2/team/app/blobs/uploads/", &[], "")
        .await
        .header("location")
        .to_string();
    let r = t.call("PATCH", &loc, &[], "abc").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(
        t.call("DELETE", &loc, &[], "").await.status,
        StatusCode::NO_CONTENT
    );
    t.call("GET", &loc, &[], "")
        .await
        .expect(404, "BLOB_UPLOAD_UNKNOWN");
    t.call("DELETE", &loc, &[], "")
        .await
        .expect(404, "BLOB_UPLOAD_UNKNOWN");
}

async fn upload_continues_after_restart(t: T) {
    let loc = t
        .call("POST", "/v2/app/blobs/uploads/", &[], "")
        .await
        .header("location")
        .to_string();
    let r = t
        .call("PATCH", &loc, &[("content-range", "0-4")], "hello")
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    // A new registry process over the same storage.
    let other = registry(&TestStore { ..reopen(&t.ts) }, true);
    let d = Digest::sha256_of(b"hello world");
    let r = call(&other, "GET", &loc, &[], "").await;
    assert_eq!(r.header("range"), "0-4");
    let r = call(
        &other,
        "PUT",
        &format!("{loc}?digest={d}"),
        &[("content-range", "5-10")],
        " world",
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(
        t.call("GET", &format!("/v2/app/blobs/{d}"), &[], "")
            .await
            .body,
        "hello world"
    );
}

fn reopen(ts: &TestStore) -> TestStore {
    TestStore {
        store: (ts.reopen)(),
        backend: ts.backend.clone(),
        reopen: Box::new(|| unreachable!()),
        s3: None,
        dir: None,
    }
}

async fn mounts(t: T) {
    let d = t.blob("source", b"shared layer").await;
    let r = t
        .call(
            "POST",
            &format!("/v2/dest/blobs/uploads/?mount={d}&from=source"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("location"), format!("/v2/dest/blobs/{d}"));
    assert_eq!(
        t.call("GET", &format!("/v2/dest/blobs/{d}"), &[], "")
            .await
            .body,
        "shared layer"
    );
    // From a repository that lacks it: a new session instead.
    let r = t
        .call(
            "POST",
            &format!("/v2/dest2/blobs/uploads/?mount={d}&from=nothing"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(r.header("location").starts_with("/v2/dest2/blobs/uploads/"));
    // Automatic mount without `from`.
    let r = t
        .call(
            "POST",
            &format!("/v2/dest3/blobs/uploads/?mount={d}"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let unknown = Digest::sha256_of(b"unknown");
    let r = t
        .call(
            "POST",
            &format!("/v2/dest3/blobs/uploads/?mount={unknown}"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
}

async fn manifests(t: T) {
    let (d, body) = t
        .image("team/app", "v1", &[b"layer one", b"layer two"])
        .await;
    for reference in ["v1", d.as_str()] {
        let r = t
            .call(
                "GET",
                &format!("/v2/team/app/manifests/{reference}"),
                &[("accept", OCI_MANIFEST)],
                "",
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body, body, "stored byte for byte");
        assert_eq!(r.header("content-type"), OCI_MANIFEST);
        assert_eq!(r.header("docker-content-digest"), d.as_str());
        assert_eq!(r.header("content-length"), body.len().to_string());
        let h = t
            .call(
                "HEAD",
                &format!("/v2/team/app/manifests/{reference}"),
                &[],
                "",
            )
            .await;
        assert_eq!(h.status, StatusCode::OK);
        assert_eq!(h.header("content-length"), body.len().to_string());
        assert_eq!(h.header("docker-content-digest"), d.as_str());
        assert!(h.body.is_empty());
    }
    t.call("GET", "/v2/team/app/manifests/v2", &[], "")
        .await
        .expect(404, "MANIFEST_UNKNOWN");
    let missing = Digest::sha256_of(b"missing");
    t.call("GET", &format!("/v2/team/app/manifests/{missing}"), &[], "")
        .await
        .expect(404, "MANIFEST_UNKNOWN");
    t.call("GET", &format!("/v2/team/other/manifests/{d}"), &[], "")
        .await
        .expect(404, "NAME_UNKNOWN");
    // PUT by digest: right and wrong.
    let r = t
        .call(
            "PUT",
            &format!("/v2/team/app/manifests/{d}"),
            &[("content-type", OCI_MANIFEST)],
            body.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("location"), format!("/v2/team/app/manifests/{d}"));
    t.call(
        "PUT",
        &format!("/v2/team/app/manifests/{missing}"),
        &[("content-type", OCI_MANIFEST)],
        body.clone(),
    )
    .await
    .expect(400, "DIGEST_INVALID");
    // Bad bodies.
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (OCI_MANIFEST, b"{not json".to_vec(), "MANIFEST_INVALID"),
        (OCI_MANIFEST, b"[]".to_vec(), "MANIFEST_INVALID"),
        (OCI_MANIFEST, br#"{"schemaVersion":1}"#.to_vec(), "MANIFEST_INVALID"),
        ("application/vnd.example.unknown+json", body.clone(), "MANIFEST_INVALID"),
        (OCI_INDEX, body.clone(), "MANIFEST_INVALID"),
        (OCI_MANIFEST, serde_json::to_vec(&json!({"schemaVersion":2,"mediaType":OCI_MANIFEST,"config":{"mediaType":"x","digest":"sha256:nope","size":1},"layers":[]})).unwrap(), "DIGEST_INVALID"),
        (OCI_MANIFEST, serde_json::to_vec(&json!({"schemaVersion":2,"mediaType":OCI_MANIFEST,"layers":[]})).unwrap(), "MANIFEST_INVALID"),
        (OCI_MANIFEST, serde_json::to_vec(&json!({"schemaVersion":2,"mediaType":OCI_MANIFEST,"config":{"mediaType":"x","digest":missing.to_string(),"size":1},"layers":[]})).unwrap(), "MANIFEST_BLOB_UNKNOWN"),
    ];
    for (ct, b, code) in cases {
        t.call(
            "PUT",
            "/v2/team/app/manifests/bad",
            &[("content-type", ct)],
            b,
        )
        .await
        .expect(400, code);
    }
    t.call("GET", "/v2/team/app/manifests/bad", &[], "")
        .await
        .expect(404, "MANIFEST_UNKNOWN");
    t.call(
        "PUT",
        "/v2/team/app/manifests/.bad",
        &[("content-type", OCI_MANIFEST)],
        body.clone(),
    )
    .await
    .expect(400, "MANIFEST_INVALID");
    // A layer that exists only in another repository is not enough.
    let (_, other_body) = t.image("elsewhere", "x", &[b"private layer"]).await;
    t.call(
        "PUT",
        "/v2/team/app/manifests/stolen",
        &[("content-type", OCI_MANIFEST)],
        other_body,
    )
    .await
    .expect(400, "MANIFEST_BLOB_UNKNOWN");
    // Docker schema 2 and a manifest list over it.
    let cd = t.blob("dock", b"{}").await;
    let ld = t.blob("dock", b"docker layer").await;
    let dm = serde_json::to_vec(&json!({"schemaVersion":2,"mediaType":DOCKER_MANIFEST,
        "config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":cd.to_string(),"size":2},
        "layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":ld.to_string(),"size":12}]})).unwrap();
    let r = t
        .call(
            "PUT",
            "/v2/dock/manifests/amd64",
            &[("content-type", DOCKER_MANIFEST)],
            dm.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let dmd = Digest::sha256_of(&dm);
    let list = serde_json::to_vec(&json!({"schemaVersion":2,"mediaType":DOCKER_LIST,
        "manifests":[{"mediaType":DOCKER_MANIFEST,"digest":dmd.to_string(),"size":dm.len(),"platform":{"architecture":"amd64","os":"linux"}}]})).unwrap();
    let r = t
        .call(
            "PUT",
            "/v2/dock/manifests/latest",
            &[("content-type", DOCKER_LIST)],
            list.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = t.call("GET", "/v2/dock/manifests/latest", &[], "").await;
    assert_eq!(r.header("content-type"), DOCKER_LIST);
    assert_eq!(r.body, list);
    // An index whose child is missing.
    let bad_index = serde_json::to_vec(&json!({"schemaVersion":2,"mediaType":OCI_INDEX,
        "manifests":[{"mediaType":OCI_MANIFEST,"digest":missing.to_string(),"size":10}]}))
    .unwrap();
    t.call(
        "PUT",
        "/v2/dock/manifests/broken",
        &[("content-type", OCI_INDEX)],
        bad_index,
    )
    .await
    .expect(400, "MANIFEST_BLOB_UNKNOWN");
}

/// A reference that is neither a tag nor a digest names nothing: reads and deletes answer 404
/// MANIFEST_UNKNOWN (as distribution and the OCI conformance suite expect), a PUT 400 with a
/// spec code.
async fn odd_references(t: T) {
    let (_, body) = t.image("odd", "v1", &[b"l"]).await;
    let long = "a".repeat(129);
    for reference in [
        ".INVALID_MANIFEST_NAME",
        "-x",
        long.as_str(),
        "sha256:zz",
        "sha256:",
        "md5:0123456789abcdef0123456789abcdef",
        "a:b:c",
    ] {
        let path = format!("/v2/odd/manifests/{reference}");
        t.call("GET", &path, &[], "")
            .await
            .expect(404, "MANIFEST_UNKNOWN");
        let r = t.call("HEAD", &path, &[], "").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{reference}");
        assert!(r.body.is_empty());
        t.call("DELETE", &path, &[], "")
            .await
            .expect(404, "MANIFEST_UNKNOWN");
        let want = if reference.contains(':') {
            "DIGEST_INVALID"
        } else {
            "MANIFEST_INVALID"
        };
        t.call(
            "PUT",
            &path,
            &[("content-type", OCI_MANIFEST)],
            body.clone(),
        )
        .await
        .expect(400, want);
    }
    // A 128-character tag is a tag.
    let longest = "a".repeat(128);
    let r = t
        .call(
            "PUT",
            &format!("/v2/odd/manifests/{longest}"),
            &[("content-type", OCI_MANIFEST)],
            body.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = t
        .call("GET", &format!("/v2/odd/manifests/{longest}"), &[], "")
        .await;
    assert_eq!(r.body, body);
}

async fn manifest_size_limits(t: T) {
    let (_, body) = t.image("big", "base", &[b"l"]).await;
    let mut m: Value = serde_json::from_slice(&body).unwrap();
    // Just under 4 MiB is accepted...
    let pad = (4 << 20) - body.len() - 200;
    m["annotations"] = json!({ "pad": "x".repeat(pad) });
    let ok = serde_json::to_vec(&m).unwrap();
    assert!(ok.len() < 4 << 20 && ok.len() > (4 << 20) - 1000);
    let r = t
        .call(
            "PUT",
            "/v2/big/manifests/large",
            &[("content-type", OCI_MANIFEST)],
            ok.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.code());
    assert_eq!(
        t.call("GET", "/v2/big/manifests/large", &[], "").await.body,
        ok
    );
    // ...and past it is 413, whether announced or not.
    m["annotations"] = json!({ "pad": "x".repeat(4 << 20) });
    let too_big = serde_json::to_vec(&m).unwrap();
    let r = t
        .call(
            "PUT",
            "/v2/big/manifests/huge",
            &[("content-type", OCI_MANIFEST)],
            too_big.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), "SIZE_INVALID");
    let r = t
        .call(
            "PUT",
            "/v2/big/manifests/huge",
            &[("content-type", OCI_MANIFEST), ("content-length", "0")],
            too_big,
        )
        .await;
    r.expect(413, "SIZE_INVALID");
    t.call("GET", "/v2/big/manifests/huge", &[], "")
        .await
        .expect(404, "MANIFEST_UNKNOWN");
    // server.max_manifest_size lowers the limit: what the default took is now too large.
    let strict = Arc::new(Registry::new(
        (t.ts.reopen)(),
        ServerConfig {
            max_manifest_size: 1 << 20,
            ..ServerConfig::default()
        },
    ));
    let r = call(
        &strict,
        "PUT",
        "/v2/big/manifests/strict",
        &[("content-type", OCI_MANIFEST)],
        ok,
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), "SIZE_INVALID");
}

async fn tags_and_catalog(t: T) {
    for tag in ["v3", "v1", "latest", "v2", "a"] {
        t.image("repo/x", tag, &[b"l"]).await;
    }
    let r = t.call("GET", "/v2/repo/x/tags/list", &[], "").await;
    assert_eq!(
        r.json(),
        json!({"name": "repo/x", "tags": ["a", "latest", "v1", "v2", "v3"]})
    );
    let r = t.call("GET", "/v2/repo/x/tags/list?n=2", &[], "").await;
    assert_eq!(r.json()["tags"], json!(["a", "latest"]));
    assert_eq!(
        r.header("link"),
        "</v2/repo/x/tags/list?n=2&last=latest>; rel=\"next\""
    );
    let r = t
        .call("GET", "/v2/repo/x/tags/list?n=2&last=latest", &[], "")
        .await;
    assert_eq!(r.json()["tags"], json!(["v1", "v2"]));
    let r = t
        .call("GET", "/v2/repo/x/tags/list?n=2&last=v2", &[], "")
        .await;
    assert_eq!(r.json()["tags"], json!(["v3"]));
    assert_eq!(r.header("link"), "");
    let r = t.call("GET", "/v2/repo/x/tags/list?n=0", &[], "").await;
    assert_eq!(r.json()["tags"], json!([]));
    t.call("GET", "/v2/repo/x/tags/list?n=abc", &[], "")
        .await
        .expect(400, "UNSUPPORTED");
    t.call("GET", "/v2/_catalog?n=-1", &[], "")
        .await
        .expect(400, "UNSUPPORTED");
    for repo in ["b", "a/b", "a"] {
        t.image(repo, "t", &[b"l"]).await;
    }
    let r = t.call("GET", "/v2/_catalog", &[], "").await;
    assert_eq!(
        r.json(),
        json!({"repositories": ["a", "a/b", "b", "repo/x"]})
    );
    let r = t.call("GET", "/v2/_catalog?n=3", &[], "").await;
    assert_eq!(r.json()["repositories"], json!(["a", "a/b", "b"]));
    assert_eq!(r.header("link"), "</v2/_catalog?n=3&last=b>; rel=\"next\"");
    let r = t.call("GET", "/v2/_catalog?n=3&last=b", &[], "").await;
    assert_eq!(r.json()["repositories"], json!(["repo/x"]));
}

async fn referrers(t: T) {
    let (subject, _) = t.image("art", "v1", &[b"l"]).await;
    let r = t
        .call("GET", &format!("/v2/art/referrers/{subject}"), &[], "")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), OCI_INDEX);
    assert_eq!(
        r.json(),
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
    );
    let empty = t.blob("art", b"{}").await;
    let mut digests = Vec::new();
    for (i, kind) in [
        "application/vnd.example.sbom",
        "application/vnd.example.sig",
    ]
    .iter()
    .enumerate()
    {
        let m = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": kind,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.to_string(), "size": 2},
            "layers": [],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject.to_string(), "size": 100},
            "annotations": {"n": i.to_string()},
        })).unwrap();
        let d = Digest::sha256_of(&m);
        let r = t
            .call(
                "PUT",
                &format!("/v2/art/manifests/{d}"),
                &[("content-type", OCI_MANIFEST)],
                m.clone(),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        assert_eq!(r.header("oci-subject"), subject.as_str());
        digests.push((d, m.len(), kind));
    }
    let r = t
        .call("GET", &format!("/v2/art/referrers/{subject}"), &[], "")
        .await;
    let list = r.json()["manifests"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    for (d, size, kind) in &digests {
        let entry = list.iter().find(|e| e["digest"] == d.as_str()).unwrap();
        assert_eq!(entry["artifactType"], **kind);
        assert_eq!(entry["size"], *size);
        assert_eq!(entry["mediaType"], OCI_MANIFEST);
    }
    let r = t
        .call(
            "GET",
            &format!("/v2/art/referrers/{subject}?artifactType=application/vnd.example.sig"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.header("oci-filters-applied"), "artifactType");
    assert_eq!(r.json()["manifests"].as_array().unwrap().len(), 1);
    // Deleting a referrer removes it from the index.
    let r = t
        .call(
            "DELETE",
            &format!("/v2/art/manifests/{}", digests[0].0),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = t
        .call("GET", &format!("/v2/art/referrers/{subject}"), &[], "")
        .await;
    assert_eq!(r.json()["manifests"].as_array().unwrap().len(), 1);
    t.call("GET", "/v2/art/referrers/sha256:zz", &[], "")
        .await
        .expect(400, "DIGEST_INVALID");
}

async fn deletes(t: T) {
    let (d, _) = t.image("del", "v1", &[b"l"]).await;
    let r = t
        .call(
            "PUT",
            "/v2/del/manifests/v2",
            &[("content-type", OCI_MANIFEST)],
            t.call("GET", "/v2/del/manifests/v1", &[], "").await.body,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    // A tag alone.
    assert_eq!(
        t.call("DELETE", "/v2/del/manifests/v2", &[], "")
            .await
            .status,
        StatusCode::ACCEPTED
    );
    t.call("GET", "/v2/del/manifests/v2", &[], "")
        .await
        .expect(404, "MANIFEST_UNKNOWN");
    assert_eq!(
        t.call("GET", "/v2/del/manifests/v1", &[], "").await.status,
        StatusCode::OK
    );
    // The manifest, and with it its tags.
    assert_eq!(
        t.call("DELETE", &format!("/v2/del/manifests/{d}"), &[], "")
            .await
            .status,
        StatusCode::ACCEPTED
    );
    t.call("GET", &format!("/v2/del/manifests/{d}"), &[], "")
        .await
        .expect(404, "MANIFEST_UNKNOWN");
    t.call("GET", "/v2/del/manifests/v1", &[], "")
        .await
        .expect(404, "MANIFEST_UNKNOWN");
    t.call("DELETE", &format!("/v2/del/manifests/{d}"), &[], "")
        .await
        .expect(404, "MANIFEST_UNKNOWN");
    // With deletion switched off nothing can be deleted.
    let (d2, _) = t.image("keep", "v1", &[b"k"]).await;
    let frozen = registry(&reopen(&t.ts), false);
    let layer = Digest::sha256_of(b"k");
    for path in [
        format!("/v2/keep/manifests/{d2}"),
        "/v2/keep/manifests/v1".into(),
        format!("/v2/keep/blobs/{layer}"),
    ] {
        call(&frozen, "DELETE", &path, &[], "")
            .await
            .expect(405, "UNSUPPORTED");
    }
    assert_eq!(
        t.call("GET", "/v2/keep/manifests/v1", &[], "").await.status,
        StatusCode::OK
    );
}

macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod fs {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::T::new("fs").await).await })*
        }
        mod s3s {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::T::new("s3s").await).await })*
        }
        mod moto {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::T::new("moto").await).await })*
        }
    };
}

on_every_backend!(
    base_and_errors_for_names,
    blobs_get_head_range_delete,
    blob_heads_open_nothing,
    a_panic_is_a_500_and_the_registry_goes_on,
    uploads_monolithic_and_post_put,
    uploads_chunked,
    upload_continues_after_restart,
    mounts,
    manifests,
    odd_references,
    manifest_size_limits,
    tags_and_catalog,
    referrers,
    deletes,
);
