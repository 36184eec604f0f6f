//! `berth serve` as a registry mirror (pull-through cache), proven with real peers: upstreams are
//! CNCF distribution and another `berth serve`; dockerd (`--registry-mirror`), containerd's
//! `ctr` (`hosts.toml`, routed by `ns`), podman (`registries.conf`) and skopeo pull through it.
//! The docker and containerd tests need root (they start private daemons), as the machines
//! here run the whole suite.
//!
//! Each peer runs as a private instance in a temporary directory and talks only to 127.0.0.1.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::util::{
    self, digest_of, oci_image, run_ok, send_head, Containerd, Distribution, Dockerd, OciImage,
    Podman, Registry, Response, Storage,
};

const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.oci.image.index.v1+json";

/// One upstream line of a `[mirror]` section: its host, URL and any further keys.
struct Up<'a> {
    host: &'a str,
    url: String,
    keys: &'a str,
}

/// A `[mirror]` section.
fn mirror_toml(default: Option<&str>, tag_ttl: u64, local: &[&str], ups: &[Up]) -> String {
    let mut t = format!("[mirror]\ntag_ttl = {tag_ttl}\nlocal = {local:?}\n");
    if let Some(d) = default {
        t.push_str(&format!("default = {d:?}\n"));
    }
    for u in ups {
        t.push_str(&format!(
            "[mirror.upstream.{:?}]\nurl = {:?}\n{}\n",
            u.host, u.url, u.keys
        ));
    }
    t
}

/// `berth serve` on the filesystem with a `[mirror]` section.
fn start_mirror(mirror: &str) -> (Registry, Storage) {
    let mut storage = Storage::fs();
    storage.toml.push_str(mirror);
    (Registry::start(&storage, ""), storage)
}

/// Pushes a small OCI image (a config and the given layers) to a registry; returns the
/// manifest's digest.
pub(crate) fn push_image(addr: &str, repo: &str, tag: &str, layers: &[&[u8]]) -> String {
    let config = format!(
        "{{\"architecture\":\"amd64\",\"os\":\"linux\",\"layers\":{}}}",
        layers.len()
    );
    let mut descs = Vec::new();
    for blob in std::iter::once(config.as_bytes()).chain(layers.iter().copied()) {
        // POST then PUT: the flow every registry takes (distribution resets a monolithic POST).
        let r = util::request(
            addr,
            "POST",
            &format!("/v2/{repo}/blobs/uploads/"),
            &[],
            b"",
        );
        assert_eq!(r.status, 202, "{r:?}");
        let location = r.header("location").expect("an upload's location");
        let location = &location[location.find("/v2/").expect("a /v2/ path")..];
        let sep = if location.contains('?') { '&' } else { '?' };
        let r = util::request(
            addr,
            "PUT",
            &format!("{location}{sep}digest={}", digest_of(blob)),
            &[],
            blob,
        );
        assert_eq!(r.status, 201, "{r:?}");
        descs.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest_of(blob), "size": blob.len()}));
    }
    let mut config_desc = descs.remove(0);
    config_desc["mediaType"] = "application/vnd.oci.image.config.v1+json".into();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": descs,
    }))
    .unwrap();
    let r = util::request(
        addr,
        "PUT",
        &format!("/v2/{repo}/manifests/{tag}"),
        &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
        &manifest,
    );
    assert_eq!(r.status, 201, "{r:?}");
    digest_of(&manifest)
}

fn get(reg: &Registry, path: &str) -> Response {
    reg.request("GET", path, &[("accept", ACCEPT)], b"")
}

fn code(r: &Response) -> String {
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    v["errors"][0]["code"].as_str().unwrap_or("").to_string()
}

/// A counter's value on the mirror's `/metrics` (labels included in `name`).
fn metric(reg: &Registry, name: &str) -> u64 {
    let r = get(reg, "/metrics");
    assert_eq!(r.status, 200);
    let text = String::from_utf8(r.body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// A GET whose connection may be cut: the status and whatever body arrived.
fn get_tolerant(addr: &str, path: &str) -> (u16, Vec<u8>) {
    let mut stream = send_head(addr, "GET", path, &[], 0);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |e| e + 4);
    let status = String::from_utf8_lossy(&raw)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, raw[end..].to_vec())
}

#[test]
fn routes_by_ns_then_host_prefix_then_default_and_refuses_pushes_into_caches() {
    let (hub_storage, second_storage) = (Storage::fs(), Storage::fs());
    let hub = Registry::start(&hub_storage, "");
    let second = Registry::start(&second_storage, "");
    let from_hub = push_image(&hub.addr, "library/app", "1", &[b"hub layer"]);
    let from_second = push_image(&second.addr, "org/app", "1", &[b"second layer"]);
    let (mirror, storage) = start_mirror(&mirror_toml(
        Some("docker.io"),
        300,
        &["team"],
        &[
            Up {
                host: "docker.io",
                url: hub.url(""),
                keys: "",
            },
            Up {
                host: "second.test",
                url: second.url(""),
                keys: "",
            },
        ],
    ));

    // The default upstream, by Docker Hub's path; by its host prefix; by ns.
    let cases = [
        ("/v2/library/app/manifests/1", &from_hub),
        ("/v2/docker.io/library/app/manifests/1", &from_hub),
        ("/v2/second.test/org/app/manifests/1", &from_second),
        ("/v2/org/app/manifests/1?ns=second.test", &from_second),
        ("/v2/library/app/manifests/1?ns=docker.io", &from_hub),
    ];
    for (path, want) in cases {
        let r = get(&mirror, path);
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert_eq!(
            r.header("docker-content-digest"),
            Some(want.as_str()),
            "{path}"
        );
        assert_eq!(&digest_of(&r.body), want, "{path}");
    }
    // A blob through each route, byte for byte.
    let r = get(
        &mirror,
        &format!(
            "/v2/org/app/blobs/{}?ns=second.test",
            digest_of(b"second layer")
        ),
    );
    assert_eq!((r.status, r.body.as_slice()), (200, &b"second layer"[..]));
    // ns of no upstream: unknown here (containerd then tries the next host).
    let r = get(&mirror, "/v2/org/app/manifests/1?ns=ghcr.io");
    assert_eq!(
        (r.status, code(&r).as_str()),
        (404, "NAME_UNKNOWN"),
        "{r:?}"
    );
    // The second upstream does not know Docker Hub's names, nor the first its own.
    let r = get(&mirror, "/v2/org/app/manifests/1");
    assert_eq!(
        (r.status, code(&r).as_str()),
        (404, "MANIFEST_UNKNOWN"),
        "{r:?}"
    );

    // Pushes into a cached namespace are refused; the local prefix takes them.
    let refused = [
        ("POST", "/v2/library/app/blobs/uploads/".to_string()),
        ("PUT", "/v2/second.test/org/app/manifests/2".to_string()),
        ("DELETE", "/v2/library/app/manifests/1".to_string()),
        (
            "DELETE",
            format!("/v2/library/app/blobs/{}", digest_of(b"hub layer")),
        ),
    ];
    for (method, path) in refused {
        let r = mirror.request(method, &path, &[], b"");
        assert_eq!(
            (r.status, code(&r).as_str()),
            (405, "UNSUPPORTED"),
            "{method} {path}: {r:?}"
        );
    }
    let local = push_image(&mirror.addr, "team/tool", "1", &[b"local layer"]);
    let r = get(&mirror, "/v2/team/tool/manifests/1");
    assert_eq!(r.header("docker-content-digest"), Some(local.as_str()));

    // The cache lives in the store under the upstream's host.
    let catalog = get(&mirror, "/v2/_catalog");
    let names: serde_json::Value = serde_json::from_slice(&catalog.body).unwrap();
    for name in ["docker.io/library/app", "second.test/org/app", "team/tool"] {
        assert!(
            names["repositories"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n == name),
            "{name} in {names}"
        );
    }
    let root = storage.dir.as_ref().unwrap().path();
    assert!(root
        .join("repositories/second.test/org/app/_tags/1")
        .exists());
    // Tags come from the upstream.
    let r = get(&mirror, "/v2/org/app/tags/list?ns=second.test");
    let tags: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["1"]), "{r:?}");
}

#[test]
fn tags_are_revalidated_with_a_head_after_their_time_to_live() {
    // The upstream logs what it is asked.
    let up = Distribution::start_logged("");
    let first = push_image(&up.host(), "library/app", "1", &[b"one"]);
    // Three seconds: the second request must come within it, and a loaded machine can
    // hold a test up for a second.
    let (mirror, _s) = start_mirror(&mirror_toml(
        Some("docker.io"),
        3,
        &[],
        &[Up {
            host: "docker.io",
            url: format!("http://{}", up.host()),
            keys: "",
        }],
    ));
    let misses = "berth_mirror_cache_misses_total{kind=\"manifest\"}";
    let hits = "berth_mirror_cache_hits_total{kind=\"manifest\"}";
    let path = "/v2/library/app/manifests/1";
    assert_eq!(
        get(&mirror, path).header("docker-content-digest"),
        Some(first.as_str())
    );
    assert_eq!(metric(&mirror, misses), 1);
    // Within its time to live the tag is not asked about again.
    assert_eq!(
        get(&mirror, path).header("docker-content-digest"),
        Some(first.as_str())
    );
    assert_eq!((metric(&mirror, misses), metric(&mirror, hits)), (1, 1));
    // After it, a HEAD finds the same digest: nothing is downloaded.
    std::thread::sleep(Duration::from_millis(3200));
    assert_eq!(
        get(&mirror, path).header("docker-content-digest"),
        Some(first.as_str())
    );
    assert_eq!((metric(&mirror, misses), metric(&mirror, hits)), (1, 2));
    // The upstream moves the tag: the mirror follows once the time to live is over.
    let second = push_image(&up.host(), "library/app", "1", &[b"two"]);
    std::thread::sleep(Duration::from_millis(3200));
    let r = get(&mirror, path);
    assert_eq!(r.header("docker-content-digest"), Some(second.as_str()));
    assert_eq!(metric(&mirror, misses), 2);
    // The old manifest is still there by digest.
    let r = get(&mirror, &format!("/v2/library/app/manifests/{first}"));
    assert_eq!(r.status, 200);
    // What the upstream was asked: a HEAD of the tag at the first request and after each time
    // to live (none within it), each manifest fetched once by digest, the tag never fetched.
    let asked = |method: &str, path: &str| {
        up.log_text()
            .lines()
            .filter(|l| l.contains(&format!("\"{method} {path} ")))
            .count()
    };
    let want = [
        ("HEAD", path.to_string(), 3),
        ("GET", path.to_string(), 0),
        ("GET", format!("/v2/library/app/manifests/{first}"), 1),
        ("GET", format!("/v2/library/app/manifests/{second}"), 1),
    ];
    // (The upstream writes its log line once it has answered: allow it a moment.)
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while want.iter().any(|(m, p, n)| asked(m, p) != *n) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for (method, path, n) in want {
        assert_eq!(
            asked(method, &path),
            n,
            "{method} {path}:\n{}",
            up.log_text()
        );
    }
}

/// Where a filesystem store keeps a blob.
fn blob_file(storage: &Storage, digest: &str) -> std::path::PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    storage
        .dir
        .as_ref()
        .unwrap()
        .path()
        .join("blobs/sha256")
        .join(hex)
}

#[test]
fn a_blob_that_does_not_match_its_digest_is_never_stored_and_the_next_request_retries() {
    let upstream_storage = Storage::fs();
    let up = Registry::start(&upstream_storage, "");
    let layer: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 / 5) as u8).collect();
    push_image(&up.addr, "library/app", "1", &[&layer]);
    let d = digest_of(&layer);
    let (mirror, storage) = start_mirror(&mirror_toml(
        Some("docker.io"),
        300,
        &[],
        &[Up {
            host: "docker.io",
            url: up.url(""),
            keys: "",
        }],
    ));
    // The upstream's copy goes bad (same length, one byte changed).
    let file = blob_file(&upstream_storage, &d);
    let mut bad = layer.clone();
    bad[1_000_000] ^= 1;
    std::fs::write(&file, &bad).unwrap();

    let path = format!("/v2/library/app/blobs/{d}");
    let (status, body) = get_tolerant(&mirror.addr, &path);
    assert!(
        status >= 500 || body.len() < layer.len(),
        "a client never gets the whole of a wrong blob (status {status}, {} bytes)",
        body.len()
    );
    let cached = blob_file(&storage, &d);
    assert!(!cached.exists(), "the wrong blob was not stored");
    assert_eq!(metric(&mirror, "berth_mirror_upstream_errors_total"), 1);
    mirror
        .stderr
        .wait_for(&format!("expected {d}"), Duration::from_secs(10));

    // The upstream is repaired: the next request goes upstream again and succeeds.
    std::fs::write(&file, &layer).unwrap();
    let r = get(&mirror, &path);
    assert_eq!(r.status, 200);
    assert!(r.body == layer, "the blob, byte for byte");
    // The store commits once the last client has its bytes; it does not keep them waiting.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !cached.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(cached.exists(), "the good blob was stored");
    assert_eq!(
        metric(&mirror, "berth_mirror_cache_misses_total{kind=\"blob\"}"),
        2
    );
}

#[test]
fn with_the_upstream_gone_the_cache_is_served_and_the_rest_is_a_5xx_in_time() {
    let up_storage = Storage::fs();
    let mut up = Registry::start(&up_storage, "");
    let d = push_image(&up.addr, "library/app", "1", &[b"cached layer"]);
    push_image(&up.addr, "library/other", "1", &[b"never fetched"]);
    // A second upstream that accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let (mirror, _s) = start_mirror(&mirror_toml(
        Some("docker.io"),
        1,
        &[],
        &[
            Up {
                host: "docker.io",
                url: up.url(""),
                keys: "timeout = 2",
            },
            Up {
                host: "silent.test",
                url: silent_url,
                keys: "timeout = 1",
            },
        ],
    ));
    assert_eq!(get(&mirror, "/v2/library/app/manifests/1").status, 200);
    let blob = format!("/v2/library/app/blobs/{}", digest_of(b"cached layer"));
    assert_eq!(get(&mirror, &blob).status, 200);

    up.kill();
    std::thread::sleep(Duration::from_millis(1200));
    // The tag is past its time to live and the upstream is gone: served stale, and logged.
    let r = get(&mirror, "/v2/library/app/manifests/1");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("docker-content-digest"), Some(d.as_str()));
    mirror
        .stderr
        .wait_for("past its time to live", Duration::from_secs(10));
    assert_eq!(metric(&mirror, "berth_mirror_stale_tags_served_total"), 1);
    let r = get(&mirror, &format!("/v2/library/app/manifests/{d}"));
    assert_eq!(r.status, 200);
    let r = get(&mirror, &blob);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"cached layer"[..]));

    // What was never cached: a spec error with a 5xx, within the upstream's timeout (1 and
    // 2 s here; the client would wait 60 s).
    for path in [
        "/v2/library/other/manifests/1".to_string(),
        format!("/v2/library/other/blobs/{}", digest_of(b"never fetched")),
        "/v2/silent.test/x/manifests/1".to_string(),
        format!("/v2/silent.test/x/blobs/{}", digest_of(b"x")),
    ] {
        let asked = std::time::Instant::now();
        let r = get(&mirror, &path);
        let took = asked.elapsed();
        assert!(r.status >= 500, "{path}: {r:?}");
        assert_eq!(code(&r), "UNAVAILABLE", "{path}: {r:?}");
        assert!(
            took < Duration::from_secs(10),
            "{path}: answered after {took:?}"
        );
    }
    assert!(metric(&mirror, "berth_mirror_upstream_errors_total") >= 4);
    drop(silent);
}

#[test]
fn a_bad_mirror_section_is_one_line_naming_the_key() {
    let up = "[mirror.upstream.\"docker.io\"]\nurl = \"https://registry-1.docker.io\"\n";
    let cases = [
        ("[mirror]\n".to_string(), "mirror.upstream"),
        (
            format!("[mirror]\ndefault = \"ghcr.io\"\n{up}"),
            "mirror.default",
        ),
        (format!("[mirror]\ntag_tl = 3\n{up}"), "tag_tl"),
        (
            format!("[mirror]\nlocal = [\"docker.io/x\"]\n{up}"),
            "mirror.local",
        ),
        (
            format!("[mirror]\nlocal = [\"Team\"]\n{up}"),
            "mirror.local",
        ),
        (
            "[mirror.upstream.\"docker.io\"]\nurl = \"ftp://x\"\n".to_string(),
            "url",
        ),
        ("[mirror.upstream.\"docker.io\"]\n".to_string(), "url"),
        (format!("{up}username = \"u\"\n"), "username"),
        (
            format!("{up}token = \"t\"\nusername = \"u\"\npassword = \"p\"\n"),
            "token",
        ),
        (format!("{up}timeout = 0\n"), "timeout"),
        (format!("{up}timeout = \"soon\"\n"), "timeout"),
        (format!("{up}passwd = \"x\"\n"), "passwd"),
        (
            format!("[mirror]\nspool = \"/proc/version\"\n{up}"),
            "spool",
        ),
        (
            format!("[mirror]\ncerts_d = \"/proc/version\"\n{up}"),
            "mirror.certs_d",
        ),
        (
            "[mirror.upstream.\"Docker.IO\"]\nurl = \"http://127.0.0.1:1\"\n".to_string(),
            "Docker.IO",
        ),
    ];
    for (text, key) in cases {
        let text = format!("[server]\nlisten = \"127.0.0.1:0\"\n{text}");
        crate::registry::assert_refused_naming(&text, key);
    }
}

#[test]
fn the_example_mirror_config_loads_and_serves() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/mirror.toml");
    let config = berth_registry::Config::load(&path).unwrap();
    let mirror = config
        .mirror
        .expect("config/mirror.toml has a [mirror] section");
    assert_eq!(mirror.default.as_deref(), Some("docker.io"));
    assert!(mirror.upstream.len() >= 2);
    assert!(mirror.upstream.values().any(|u| u.username.is_some()));
    // It serves as written, on a free port and a temporary root; no upstream is asked.
    let root = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(util::berth_bin());
    cmd.arg("serve")
        .arg("--config")
        .arg(&path)
        .args(["--listen", "127.0.0.1:0", "--root"])
        .arg(root.path());
    let (mut child, addr, _) = util::spawn_serving(cmd);
    let v2 = util::request(&addr, "GET", "/v2/", &[], b"");
    let push = util::request(&addr, "POST", "/v2/library/x/blobs/uploads/", &[], b"");
    let metrics = util::request(&addr, "GET", "/metrics", &[], b"");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(v2.status, 200);
    assert_eq!(push.status, 405, "library/x is Docker Hub's: {push:?}");
    // Nothing went to an upstream: the mirror counted no fetch, no error, no byte.
    let text = String::from_utf8(metrics.body).unwrap();
    for counter in [
        "berth_mirror_cache_hits_total{kind=\"blob\"} 0",
        "berth_mirror_cache_misses_total{kind=\"manifest\"} 0",
        "berth_mirror_cache_misses_total{kind=\"blob\"} 0",
        "berth_mirror_upstream_errors_total 0",
        "berth_mirror_upstream_bytes_total 0",
    ] {
        assert!(text.lines().any(|l| l == counter), "{counter} in\n{text}");
    }
}

// ---------------------------------------------------------------------------------------------
// Real clients through the mirror

/// Distribution holding `image` as `repo:latest`, pushed with skopeo.
fn distribution_with(image: &OciImage, repo: &str, logged: bool) -> Distribution {
    let dist = if logged {
        Distribution::start_logged("")
    } else {
        Distribution::start()
    };
    skopeo_copy_to(image, &format!("{}/{repo}:latest", dist.host()));
    dist
}

/// A mirror whose default upstream, `docker.io`, is `dist`.
fn mirror_of(dist: &Distribution, tag_ttl: u64, keys: &str) -> (Registry, Storage) {
    start_mirror(&mirror_toml(
        Some("docker.io"),
        tag_ttl,
        &[],
        &[Up {
            host: "docker.io",
            url: format!("http://{}", dist.host()),
            keys,
        }],
    ))
}

fn skopeo_copy_to(image: &OciImage, dest: &str) {
    skopeo_copy_as(image, dest, &[]);
}

/// `skopeo copy` of the image to `dest` with extra arguments (`--dest-creds`).
fn skopeo_copy_as(image: &OciImage, dest: &str, extra: &[&str]) {
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .args(extra)
            .arg(format!("oci:{}:latest", image.layout.display()))
            .arg(format!("docker://{dest}")),
    );
}

#[test]
fn dockerd_pulls_busybox_through_the_mirror_and_again_with_the_upstream_gone() {
    let layout = tempfile::tempdir().unwrap();
    let image = oci_image(layout.path(), "latest");
    let mut dist = distribution_with(&image, "library/busybox", false);
    let (mirror, _s) = mirror_of(&dist, 1, "timeout = 5");
    let d = Dockerd::start_with(&[format!("--registry-mirror=http://{}", mirror.addr)]);
    // `info` shows the mirror as docker does, in --format and in its "Registry Mirrors:"
    // section (berth's mirrors are per registry: Docker Hub's here, as dockerd's).
    let berth = util::Berth::new();
    std::fs::write(
        berth.dir.path().join("config.toml"),
        format!(
            "[registries.\"docker.io\"]\nmirrors = [\"http://{}\"]\n",
            mirror.addr
        ),
    )
    .unwrap();
    let json = ["info", "--format", "{{json .RegistryConfig.Mirrors}}"];
    let theirs = d.ok(&json);
    assert_eq!(theirs, format!("[\"http://{}/\"]\n", mirror.addr));
    assert_eq!(berth.ok(&json), theirs);
    let section = |info: &str| -> Vec<String> {
        info.lines()
            .skip_while(|l| *l != " Registry Mirrors:")
            .take_while(|l| *l == " Registry Mirrors:" || l.starts_with("  "))
            .map(str::to_string)
            .collect()
    };
    let theirs = section(&d.ok(&["info"]));
    assert_eq!(theirs.len(), 2, "{theirs:?}");
    assert_eq!(section(&berth.ok(&["info"])), theirs);
    let config_id = digest_of(&image.config);
    d.ok(&["pull", "busybox"]);
    let id = d.ok(&["image", "inspect", "--format", "{{.Id}}", "busybox"]);
    assert_eq!(id.trim(), config_id);
    assert!(metric(&mirror, "berth_mirror_cache_misses_total{kind=\"blob\"}") >= 3);

    dist.kill();
    std::thread::sleep(Duration::from_millis(1200));
    d.ok(&["rmi", "busybox"]);
    d.ok(&["pull", "busybox"]);
    let id = d.ok(&["image", "inspect", "--format", "{{.Id}}", "busybox"]);
    assert_eq!(id.trim(), config_id, "pulled again from the cache alone");
}

#[test]
fn ctr_pulls_through_the_mirror_with_hosts_toml_routed_by_ns() {
    let layout = tempfile::tempdir().unwrap();
    let image = oci_image(layout.path(), "latest");
    // The second upstream is another berth; the default one does not have the image.
    let second_storage = Storage::fs();
    let second = Registry::start(&second_storage, "");
    skopeo_copy_to(&image, &format!("{}/org/app:latest", second.addr));
    let hub = Distribution::start();
    let (mirror, _s) = start_mirror(&mirror_toml(
        Some("docker.io"),
        300,
        &[],
        &[
            Up {
                host: "docker.io",
                url: format!("http://{}", hub.host()),
                keys: "",
            },
            Up {
                host: "second.test",
                url: second.url(""),
                keys: "",
            },
        ],
    ));
    let containerd = Containerd::start();
    let hosts = containerd.dir.path().join("certs.d/second.test");
    std::fs::create_dir_all(&hosts).unwrap();
    // The registry itself is a closed port: only the mirror can answer.
    std::fs::write(
        hosts.join("hosts.toml"),
        format!(
            "server = \"http://127.0.0.1:9\"\n\n[host.\"http://{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            mirror.addr
        ),
    )
    .unwrap();
    let hosts_dir = containerd.dir.path().join("certs.d");
    containerd.ctr(&[
        "images",
        "pull",
        "--hosts-dir",
        hosts_dir.to_str().unwrap(),
        "second.test/org/app:latest",
    ]);
    assert_eq!(
        containerd.images().get("second.test/org/app:latest"),
        Some(&image.manifest_digest())
    );
    for (digest, bytes) in image.blobs() {
        let out = util::run_with_timeout(
            Command::new("ctr")
                .arg("-a")
                .arg(containerd.dir.path().join("c.sock"))
                .args(["-n", "berth-e2e", "content", "get", &digest]),
            util::PEER_TIMEOUT,
        );
        assert!(out.stdout == bytes, "{digest} pulled byte for byte");
    }
    // It came through the ns route into the second upstream's cache.
    let r = get(&mirror, "/v2/second.test/org/app/manifests/latest");
    assert_eq!(
        r.header("docker-content-digest"),
        Some(image.manifest_digest().as_str())
    );
    assert_eq!(
        metric(&mirror, "berth_mirror_cache_misses_total{kind=\"blob\"}"),
        image.blobs().len() as u64
    );
}

#[test]
fn podman_pulls_through_the_mirror_with_registries_conf() {
    let layout = tempfile::tempdir().unwrap();
    let image = oci_image(layout.path(), "latest");
    let dist = distribution_with(&image, "library/busybox", false);
    let (mirror, _s) = mirror_of(&dist, 300, "");
    let podman = Podman::new();
    // docker.io itself is a closed port: only the mirror can answer.
    std::fs::write(
        podman.dir.path().join("registries.conf"),
        format!(
            "unqualified-search-registries = [\"docker.io\"]\n\n[[registry]]\nprefix = \"docker.io\"\n\
             location = \"127.0.0.1:9\"\ninsecure = true\n\n[[registry.mirror]]\nlocation = \"{}\"\ninsecure = true\n",
            mirror.addr
        ),
    )
    .unwrap();
    podman.run(&["pull", "docker.io/library/busybox:latest"]);
    assert_eq!(
        podman.inspect("docker.io/library/busybox:latest", "{{.Digest}}"),
        image.manifest_digest()
    );
    assert_eq!(
        metric(&mirror, "berth_mirror_cache_misses_total{kind=\"blob\"}"),
        image.blobs().len() as u64
    );
}

/// How many GETs of `path` distribution's access log shows.
fn gets_in_log(log: &str, path: &str) -> usize {
    log.lines()
        .filter(|l| l.contains(&format!("\"GET {path} ")) || l.contains(&format!("\"GET {path}?")))
        .count()
}

#[test]
fn twenty_concurrent_cold_pulls_fetch_each_blob_from_the_upstream_once() {
    let layout = tempfile::tempdir().unwrap();
    let image = oci_image(layout.path(), "latest");
    let mut dist = distribution_with(&image, "library/app", true);
    let (mirror, _s) = mirror_of(&dist, 300, "");
    let out = tempfile::tempdir().unwrap();
    let pull = |i: usize| {
        let dest = out.path().join(format!("c{i}"));
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{}/library/app:latest", mirror.addr))
            .arg(format!("dir:{}", dest.display()));
        cmd
    };
    let children: Vec<_> = (0..20)
        .map(|i| {
            pull(i)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let o = c.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "client {i}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    for i in 0..20 {
        for (digest, bytes) in image.blobs() {
            let got = std::fs::read(
                out.path()
                    .join(format!("c{i}"))
                    .join(digest.strip_prefix("sha256:").unwrap()),
            )
            .unwrap();
            assert!(got == bytes, "client {i} has {digest} whole");
        }
    }
    let log = dist.log_text();
    for (digest, _) in image.blobs() {
        assert_eq!(
            gets_in_log(&log, &format!("/v2/library/app/blobs/{digest}")),
            1,
            "{digest} was fetched from the upstream once; its log:\n{log}"
        );
    }
    assert_eq!(
        gets_in_log(
            &log,
            &format!("/v2/library/app/manifests/{}", image.manifest_digest())
        ),
        1,
        "the manifest too"
    );
    let size: usize = image.blobs().iter().map(|(_, b)| b.len()).sum();
    assert_eq!(
        metric(&mirror, "berth_mirror_upstream_bytes_total"),
        size as u64
    );

    // The upstream goes away; the same pull still succeeds from the cache.
    dist.kill();
    let again = out.path().join("again");
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{}/library/app:latest", mirror.addr))
            .arg(format!("dir:{}", again.display())),
    );
    assert!(again.join("manifest.json").exists());
}

// ---------------------------------------------------------------------------------------------
// An upstream that demands bearer tokens

/// A token service for distribution's `auth: token`: to callers with the right basic
/// credentials it hands out one JWT, signed with a key made for the test, that grants pull and
/// push on `org/app`; it records each request's line.
struct TokenServer {
    port: u16,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

fn b64url(data: &[u8]) -> String {
    util::base64_encode(data)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// A signing key and its self-signed certificate (the root distribution trusts) in `dir`;
/// returns a token for `service` from `issuer`.
fn make_token(dir: &Path, issuer: &str, service: &str) -> String {
    run_ok(Command::new("openssl").current_dir(dir).args([
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-subj",
        "/CN=berth-test-token",
    ]));
    let der = util::run_with_timeout(
        Command::new("openssl")
            .current_dir(dir)
            .args(["x509", "-in", "cert.pem", "-outform", "DER"]),
        util::PEER_TIMEOUT,
    )
    .stdout;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header =
        serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [util::base64_encode(&der)]});
    let claims = serde_json::json!({
        "iss": issuer, "sub": "mirror", "aud": service, "jti": "berth-test",
        "iat": now - 60, "nbf": now - 60, "exp": now + 3600,
        "access": [{"type": "repository", "name": "org/app", "actions": ["pull", "push"]}],
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    std::fs::write(dir.join("input"), &signing_input).unwrap();
    let signature = util::run_with_timeout(
        Command::new("openssl")
            .current_dir(dir)
            .args(["dgst", "-sha256", "-sign", "key.pem", "input"]),
        util::PEER_TIMEOUT,
    )
    .stdout;
    format!("{signing_input}.{}", b64url(&signature))
}

impl TokenServer {
    fn start(token: String, user: &str, password: &str) -> TokenServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let expected = format!(
            "authorization: basic {}",
            util::base64_encode(format!("{user}:{password}").as_bytes()).to_lowercase()
        );
        let (seen, stopped) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let authorized = head.to_lowercase().contains(&expected);
                seen.lock().unwrap().push(format!(
                    "{} {authorized}",
                    head.lines().next().unwrap_or("")
                ));
                let (status, body) = if authorized {
                    let b = serde_json::json!({"token": token, "expires_in": 3600});
                    ("200 OK", b.to_string())
                } else {
                    (
                        "401 Unauthorized",
                        r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#
                            .to_string(),
                    )
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        TokenServer {
            port,
            requests,
            stop,
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn an_upstream_that_demands_bearer_tokens_is_mirrored_with_one_token_per_scope() {
    let keys = tempfile::tempdir().unwrap();
    let token = make_token(keys.path(), "berth-test", "upstream.test");
    let tokens = TokenServer::start(token, "mirror-bot", "s3cret");
    let dist = Distribution::start_logged(&format!(
        "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: upstream.test\n    issuer: berth-test\n    rootcertbundle: {}\n",
        tokens.port,
        keys.path().join("cert.pem").display()
    ));
    let layout = tempfile::tempdir().unwrap();
    let image = oci_image(layout.path(), "latest");
    // Anonymous reads are refused by the upstream itself.
    let r = util::request(&dist.host(), "GET", "/v2/org/app/tags/list", &[], b"");
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r
        .header("www-authenticate")
        .unwrap_or("")
        .starts_with("Bearer realm="));
    let creds = ["--dest-creds", "mirror-bot:s3cret"];
    skopeo_copy_as(&image, &format!("{}/org/app:latest", dist.host()), &creds);
    let before = tokens.requests().len();
    let upstream = |keys: &'static str| Up {
        host: "private.test",
        url: format!("http://{}", dist.host()),
        keys,
    };
    let (mirror, _s) = start_mirror(&mirror_toml(
        None,
        300,
        &[],
        &[upstream("username = \"mirror-bot\"\npassword = \"s3cret\"")],
    ));
    let out = tempfile::tempdir().unwrap();
    let copy = util::run_with_timeout(
        Command::new("skopeo")
            .args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!(
                "docker://{}/private.test/org/app:latest",
                mirror.addr
            ))
            .arg(format!("dir:{}", out.path().join("img").display())),
        util::PEER_TIMEOUT,
    );
    assert!(
        copy.status.success(),
        "{}\nthe mirror's log:\n{}",
        String::from_utf8_lossy(&copy.stderr),
        mirror.stderr.all().join("\n"),
    );
    for (digest, bytes) in image.blobs() {
        let got = std::fs::read(
            out.path()
                .join("img")
                .join(digest.strip_prefix("sha256:").unwrap()),
        );
        assert!(got.unwrap() == bytes, "{digest} whole through the mirror");
    }
    let asked: Vec<String> = tokens.requests()[before..].to_vec();
    assert_eq!(
        asked.len(),
        1,
        "one token for the pull scope, cached for every later request: {asked:?}"
    );
    assert!(
        asked[0].contains("scope=repository%3Aorg%2Fapp%3Apull")
            && asked[0].contains("service=upstream.test")
            && asked[0].ends_with(" true"),
        "the mirror asked for the pull scope with its credentials: {asked:?}"
    );

    // Wrong credentials: a 5xx with a spec error body, nothing cached.
    let (bad, _b) = start_mirror(&mirror_toml(
        None,
        300,
        &[],
        &[upstream("username = \"mirror-bot\"\npassword = \"wrong\"")],
    ));
    let r = get(&bad, "/v2/private.test/org/app/manifests/latest");
    assert_eq!((r.status, code(&r).as_str()), (502, "UNAVAILABLE"), "{r:?}");
    assert!(
        String::from_utf8_lossy(&r.body).contains("unauthorized"),
        "{r:?}"
    );
}

#[test]
fn an_upstream_with_basic_auth_is_mirrored_with_the_configured_credentials() {
    let dist = Distribution::start_with(Some(("mirror-bot", "s3cret")));
    let layout = tempfile::tempdir().unwrap();
    let image = oci_image(layout.path(), "latest");
    let creds = ["--dest-creds", "mirror-bot:s3cret"];
    skopeo_copy_as(&image, &format!("{}/org/app:latest", dist.host()), &creds);
    let mirror_with = |password: &str| {
        start_mirror(&mirror_toml(
            Some("basic.test"),
            300,
            &[],
            &[Up {
                host: "basic.test",
                url: format!("http://{}", dist.host()),
                keys: &format!("username = \"mirror-bot\"\npassword = {password:?}"),
            }],
        ))
    };
    let (mirror, _s) = mirror_with("s3cret");
    let r = get(&mirror, "/v2/org/app/manifests/latest");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(digest_of(&r.body), image.manifest_digest());
    for (digest, bytes) in image.blobs() {
        let r = get(&mirror, &format!("/v2/org/app/blobs/{digest}"));
        assert!(r.status == 200 && r.body == bytes, "{digest}");
    }
    let (bad, _b) = mirror_with("wrong");
    let r = get(&bad, "/v2/org/app/manifests/latest");
    assert_eq!((r.status, code(&r).as_str()), (502, "UNAVAILABLE"), "{r:?}");
}

// ---------------------------------------------------------------------------------------------
// Streaming: a client's first bytes do not wait for the whole blob

/// An upstream that serves one blob in two parts: the first `head` bytes at once, the rest only
/// when the test says so. It records each request's line.
struct TrickleUpstream {
    port: u16,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    release: std::sync::mpsc::Sender<()>,
}

impl TrickleUpstream {
    fn start(blob: Vec<u8>, head: usize) -> TrickleUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = std::sync::Arc::new(std::sync::Mutex::new(released));
        let digest = digest_of(&blob);
        let blob = std::sync::Arc::new(blob);
        let seen = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let (seen, released, blob, digest) =
                    (seen.clone(), released.clone(), blob.clone(), digest.clone());
                std::thread::spawn(move || {
                    let mut raw = Vec::new();
                    let mut byte = [0u8; 1];
                    while !raw.ends_with(b"\r\n\r\n") {
                        match conn.read(&mut byte) {
                            Ok(1) => raw.push(byte[0]),
                            _ => return,
                        }
                    }
                    let line = String::from_utf8_lossy(&raw)
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_string();
                    seen.lock().unwrap().push(line.clone());
                    let mut words = line.split(' ');
                    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                    if path != format!("/v2/slow/app/blobs/{digest}") {
                        let _ = conn.write_all(
                            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                        return;
                    }
                    let head_lines = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                         Content-Length: {}\r\nDocker-Content-Digest: {digest}\r\n\
                         Connection: close\r\n\r\n",
                        blob.len()
                    );
                    if conn.write_all(head_lines.as_bytes()).is_err() || method == "HEAD" {
                        return;
                    }
                    if conn.write_all(&blob[..head]).is_err() {
                        return;
                    }
                    let _ = released.lock().unwrap().recv();
                    let _ = conn.write_all(&blob[head..]);
                });
            }
        });
        TrickleUpstream {
            port,
            requests,
            release,
        }
    }
}

const MIB: usize = 1 << 20;

/// `len` bytes that do not compress.
fn noise(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A mirror whose default upstream (`up.test`) is `up`.
fn mirror_of_trickle(up: &TrickleUpstream) -> (Registry, Storage) {
    start_mirror(&mirror_toml(
        Some("up.test"),
        300,
        &[],
        &[Up {
            host: "up.test",
            url: format!("http://127.0.0.1:{}", up.port),
            keys: "",
        }],
    ))
}

/// Reads a response's head and then body bytes until `want` of them have come; what came.
fn read_until(stream: &mut std::net::TcpStream, want: usize) -> (String, Vec<u8>) {
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            if raw.len() - (end + 4) >= want {
                let head = String::from_utf8_lossy(&raw[..end]).to_string();
                return (head, raw[end + 4..].to_vec());
            }
        }
        match stream.read(&mut buf) {
            Ok(0) => panic!("the connection ended after {} bytes", raw.len()),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "no more bytes came while the upstream held the rest of the blob back \
                 ({} bytes so far): {e}",
                raw.len()
            ),
        }
    }
}

#[test]
fn clients_get_a_blobs_first_bytes_while_the_upstream_is_still_sending_it() {
    let blob = noise(6 * MIB);
    let digest = digest_of(&blob);
    // 3 MiB at once, the other 3 only after both clients have seen their first MiB.
    let up = TrickleUpstream::start(blob.clone(), 3 * MIB);
    let (mirror, storage) = mirror_of_trickle(&up);
    let path = format!("/v2/slow/app/blobs/{digest}");
    let open = || {
        let s = send_head(&mirror.addr, "GET", &path, &[], 0);
        // A guard against a hang, not a timing: the bytes are on their way or never come.
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s
    };
    let mut first = open();
    let (head, mut first_body) = read_until(&mut first, MIB);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("content-length: {}", blob.len())),
        "{head}"
    );
    // A second client joins the flight under way and starts from the first byte too.
    let mut second = open();
    let (_, mut second_body) = read_until(&mut second, MIB);
    assert_eq!(second_body[..MIB], blob[..MIB]);
    assert!(
        !blob_file(&storage, &digest).exists(),
        "not stored before it is whole"
    );
    up.release.send(()).unwrap();
    second.read_to_end(&mut second_body).unwrap();
    first.read_to_end(&mut first_body).unwrap();
    assert!(first_body == blob, "the first client got the whole blob");
    assert!(second_body == blob, "the second client got the whole blob");
    let gets = up
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with(&format!("GET {path}")))
        .count();
    assert_eq!(gets, 1, "one fetch from the upstream: {:?}", up.requests);
    // Stored once verified: a third client reads it from the cache.
    let r = get(&mirror, &path);
    assert_eq!(r.status, 200);
    assert!(r.body == blob);
    assert_eq!(
        metric(&mirror, "berth_mirror_upstream_bytes_total"),
        blob.len() as u64
    );
}

/// The mirror process's resident memory, in bytes.
fn rss(reg: &Registry) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{}/status", reg.pid())).unwrap();
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

#[test]
fn a_large_blob_in_flight_is_spooled_not_held_in_memory_and_ranges_wait_for_the_whole() {
    let blob = noise(256 * MIB);
    let digest = digest_of(&blob);
    // 224 MiB at once; the rest when the test has looked at the mirror's memory.
    let up = TrickleUpstream::start(blob.clone(), 224 * MIB);
    let (mirror, storage) = mirror_of_trickle(&up);
    let before = rss(&mirror);
    let path = format!("/v2/slow/app/blobs/{digest}");
    let mut client = send_head(&mirror.addr, "GET", &path, &[], 0);
    client
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let (_, mut body) = read_until(&mut client, 200 * MIB);
    // A ranged read of the blob in flight is answered once the whole is there and checked,
    // even for bytes that arrived long ago: nothing comes back while the upstream holds the
    // rest (a second is far more than an early answer from this machine would take).
    let mut ranged = send_head(
        &mirror.addr,
        "GET",
        &path,
        &[("range", "bytes=1048576-1048585")],
        0,
    );
    ranged
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut first = [0u8; 1];
    let early = ranged.read(&mut first);
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "the range was answered before the blob was whole: {early:?}"
    );
    ranged
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let during = rss(&mirror);
    assert!(
        during < before + 64 * MIB,
        "the mirror holds {} MiB more with 224 MiB of a blob in flight ({} MiB before)",
        (during - before) / MIB,
        before / MIB
    );
    up.release.send(()).unwrap();
    client.read_to_end(&mut body).unwrap();
    assert!(body == blob, "the client got the whole blob");
    let r = util::read_response(ranged, "GET");
    assert_eq!(r.status, 206, "{r:?}");
    assert_eq!(r.body, &blob[1048576..1048586]);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 1048576-1048585/{}", blob.len()).as_str())
    );
    // Stored, and the same bytes.
    let r = get(&mirror, &path);
    assert!(r.status == 200 && r.body == blob);
    assert!(blob_file(&storage, &digest).exists());
}

// ---------------------------------------------------------------------------------------------
// An upstream whose certificate a private CA signed

/// The mirror trusts a private CA for an upstream when `[mirror] certs_d` holds it in the
/// upstream's directory, as docker's certs.d does; without it the upstream's certificate is
/// refused and the client gets a 5xx. The upstream is a `berth serve` over TLS on an address
/// that is not loopback (loopback hosts are never verified), in a network namespace of the
/// test's own: needs root.
#[test]
fn an_upstream_signed_by_a_private_ca_is_trusted_through_certs_d_as_root() {
    let ns = util::NetNs::new("10.88.9.1");
    let ca = util::TestCa::new(&["10.88.9.1"]);
    // The upstream's content, pushed over loopback before it moves into the namespace.
    let upstream_storage = Storage::fs();
    let layout = tempfile::tempdir().unwrap();
    let image = oci_image(layout.path(), "latest");
    {
        let seed = Registry::start(&upstream_storage, "");
        skopeo_copy_to(&image, &format!("{}/org/app:1.0", seed.addr));
    }
    let tls = format!(
        "[tls]\ncert = {:?}\nkey = {:?}\n",
        ca.cert.to_str().unwrap(),
        ca.key.to_str().unwrap()
    );
    let upstream = Registry::start_in(&upstream_storage, &tls, Some(&ns), "10.88.9.1:0");
    let mirror_with = |keys: &str| {
        let mut storage = Storage::fs();
        storage.toml.push_str(&format!(
            "[mirror]\ndefault = \"private.test\"\n{keys}\n\
             [mirror.upstream.\"private.test\"]\nurl = \"https://{}\"\ntimeout = 10\n",
            upstream.addr
        ));
        let reg = Registry::start_in(&storage, "", Some(&ns), "127.0.0.1:0");
        (reg, storage)
    };
    let pull = |mirror: &Registry| {
        let berth = util::Berth::new();
        let out = berth
            .cmd_in(
                Some(&ns),
                &["pull", &format!("{}/org/app:1.0", mirror.addr)],
            )
            .output()
            .unwrap();
        (berth, out)
    };

    let (untrusting, _s) = mirror_with("");
    let (_b, out) = pull(&untrusting);
    assert!(
        !out.status.success(),
        "pulled through an untrusted upstream"
    );
    let log = untrusting.stderr.all().join("\n");
    assert!(log.to_lowercase().contains("certificate"), "{log}");

    let certs_d = tempfile::tempdir().unwrap();
    let host_dir = certs_d.path().join(&upstream.addr);
    std::fs::create_dir(&host_dir).unwrap();
    std::fs::copy(&ca.ca, host_dir.join("ca.crt")).unwrap();
    let (trusting, _t) = mirror_with(&format!("certs_d = {:?}", certs_d.path()));
    let (berth, out) = pull(&trusting);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = berth.ok(&["images", "--digests", "--format", "{{.Digest}}"]);
    assert_eq!(id.trim(), image.manifest_digest());

    // A certs.d the mirror cannot use stops it at start-up, naming the key.
    std::fs::write(host_dir.join("broken.crt"), "not a certificate").unwrap();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[mirror]\ncerts_d = {:?}\n\
         [mirror.upstream.\"private.test\"]\nurl = \"https://{}\"\n",
        certs_d.path(),
        upstream.addr
    );
    crate::registry::assert_refused_naming(&text, "mirror.certs_d");
}

// ---------------------------------------------------------------------------------------------
// An upstream that misbehaves

/// An upstream that answers each request as `answer(method, path)` says (status line, extra
/// headers, body) on a connection of its own, and records each request line.
struct ScriptedUpstream {
    port: u16,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

type Answer = (&'static str, String, Vec<u8>);

impl ScriptedUpstream {
    fn start(answer: impl Fn(&str, &str) -> Answer + Send + Sync + 'static) -> ScriptedUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (seen, answer) = (requests.clone(), std::sync::Arc::new(answer));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let (seen, answer) = (seen.clone(), answer.clone());
                std::thread::spawn(move || {
                    let mut raw = Vec::new();
                    let mut byte = [0u8; 1];
                    while !raw.ends_with(b"\r\n\r\n") {
                        match conn.read(&mut byte) {
                            Ok(1) => raw.push(byte[0]),
                            _ => return,
                        }
                    }
                    let text = String::from_utf8_lossy(&raw);
                    let line = text.lines().next().unwrap_or("").to_string();
                    seen.lock().unwrap().push(line.clone());
                    let mut words = line.split(' ');
                    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                    let (status, headers, body) = answer(method, path);
                    let head = format!(
                        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(head.as_bytes());
                    if method != "HEAD" {
                        let _ = conn.write_all(&body);
                    }
                });
            }
        });
        ScriptedUpstream { port, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// A token service that says its token lasts 2^64-1 seconds (an `Instant` overflow, a panic
/// before), answers with 8 MiB, or a challenge that is half a header: the mirror gets its
/// image with the first, answers a spec 5xx naming the problem for the others, and goes on.
#[test]
fn a_hostile_token_service_is_a_clear_error_never_a_crash() {
    use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
    let port = std::sync::Arc::new(AtomicU16::new(0));
    let token_given = std::sync::Arc::new(AtomicBool::new(false));
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
    let up = {
        let (port, token_given) = (port.clone(), token_given.clone());
        ScriptedUpstream::start(move |_, path| {
            let p = port.load(Ordering::Relaxed);
            let challenge = |realm: &str| {
                format!("WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{p}{realm}\",service=\"up\"\r\n")
            };
            let unauthorized =
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"token"}]}"#.to_vec();
            // A manifest by tag or by digest.
            let path = path.split('?').next().unwrap_or("");
            let path = path
                .rsplit_once("/manifests/")
                .map_or(path, |(repo, _)| repo);
            match path {
                "/forever" => {
                    token_given.store(true, Ordering::Relaxed);
                    let t = br#"{"token":"t","expires_in":18446744073709551615}"#.to_vec();
                    ("200 OK", String::new(), t)
                }
                "/huge" => ("200 OK", String::new(), vec![b' '; 8 << 20]),
                "/v2/forever/app" if token_given.load(Ordering::Relaxed) => (
                    "200 OK",
                    format!(
                        "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n\
                         Docker-Content-Digest: {}\r\n",
                        crate::util::digest_of(manifest)
                    ),
                    manifest.to_vec(),
                ),
                "/v2/forever/app" => ("401 Unauthorized", challenge("/forever"), unauthorized),
                "/v2/huge/app" => ("401 Unauthorized", challenge("/huge"), unauthorized),
                "/v2/half/app" => (
                    "401 Unauthorized",
                    "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:1/x,,=\r\n".to_string(),
                    unauthorized,
                ),
                _ => ("200 OK", String::new(), b"{}".to_vec()),
            }
        })
    };
    port.store(up.port, Ordering::Relaxed);
    let (mirror, _s) = start_mirror(&mirror_toml(
        Some("hostile.test"),
        300,
        &[],
        &[Up {
            host: "hostile.test",
            url: format!("http://127.0.0.1:{}", up.port),
            keys: "",
        }],
    ));
    let r = get(&mirror, "/v2/forever/app/manifests/1");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, manifest.to_vec());
    let r = get(&mirror, "/v2/huge/app/manifests/1");
    assert!(r.status >= 500 && !code(&r).is_empty(), "{r:?}");
    assert!(
        String::from_utf8_lossy(&r.body).contains("larger than"),
        "{r:?}"
    );
    let r = get(&mirror, "/v2/half/app/manifests/1");
    assert!(
        (r.status == 401 || r.status >= 500) && !code(&r).is_empty(),
        "{r:?}"
    );
    // And it goes on serving.
    let r = get(&mirror, "/v2/forever/app/manifests/1");
    assert_eq!(r.status, 200, "{r:?}");
}

/// An upstream whose tag list pages carry malformed Link headers, point at another host or
/// loop: the mirror answers a spec 502 naming the problem, follows a bounded number of pages,
/// never asks another host, and goes on serving.
#[test]
fn a_hostile_upstreams_tag_pages_are_a_502_never_a_crash_nor_a_loop() {
    // Another host that must never be asked.
    let foreign = ScriptedUpstream::start(|_, _| ("200 OK", String::new(), b"{}".to_vec()));
    let foreign_port = foreign.port;
    let up = ScriptedUpstream::start(move |_, path| {
        let json = |tags: &str| format!("{{\"name\":\"x\",\"tags\":[{tags}]}}").into_bytes();
        let link = |l: &str| format!("Link: {l}\r\nContent-Type: application/json\r\n");
        let Some((repo, query)) = path
            .strip_prefix("/v2/")
            .and_then(|p| p.split_once("/tags/list"))
        else {
            return ("200 OK", String::new(), b"{}".to_vec());
        };
        let last = query.split("last=").nth(1).unwrap_or("");
        match (repo, last) {
            ("bad/brackets", _) => ("200 OK", link(r#">x<; rel="next""#), json("\"a\"")),
            ("bad/bare", _) => (
                "200 OK",
                link(r#"/v2/bad/bare/tags/list?last=a; rel="next""#),
                json("\"a\""),
            ),
            ("bad/foreign", _) => (
                "200 OK",
                link(&format!(
                    "<http://127.0.0.1:{foreign_port}/v2/bad/foreign/tags/list?last=a>; rel=\"next\""
                )),
                json("\"a\""),
            ),
            // Every page points back at the first.
            ("bad/loop", _) => (
                "200 OK",
                link(r#"</v2/bad/loop/tags/list?n=1000>; rel="next""#),
                json("\"a\""),
            ),
            // A relative link, then the last page: followed.
            ("good/pages", "") => ("200 OK", link(r#"<list?last=a>; rel="next""#), json("\"a\"")),
            ("good/pages", _) => ("200 OK", String::new(), json("\"b\"")),
            _ => (
                "404 Not Found",
                String::new(),
                br#"{"errors":[{"code":"NAME_UNKNOWN","message":"no"}]}"#.to_vec(),
            ),
        }
    });
    let (mirror, _s) = start_mirror(&mirror_toml(
        Some("hostile.test"),
        300,
        &[],
        &[Up {
            host: "hostile.test",
            url: format!("http://127.0.0.1:{}", up.port),
            keys: "",
        }],
    ));
    for (repo, why) in [
        ("bad/brackets", "Link header"),
        ("bad/bare", "Link header"),
        ("bad/foreign", "is not on http://127.0.0.1:"),
        ("bad/loop", "loop"),
    ] {
        let r = get(&mirror, &format!("/v2/{repo}/tags/list"));
        assert_eq!(
            (r.status, code(&r).as_str()),
            (502, "UNAVAILABLE"),
            "{repo}: {r:?}"
        );
        let text = String::from_utf8_lossy(&r.body);
        assert!(text.contains(why), "{repo}: {text}");
    }
    let asked = up.requests();
    let loops = asked.iter().filter(|l| l.contains("/bad/loop/")).count();
    assert!(loops <= 2, "the loop was followed: {asked:?}");
    assert!(foreign.requests().is_empty(), "another host was asked");
    let r = get(&mirror, "/v2/good/pages/tags/list");
    assert_eq!(r.status, 200, "{r:?}");
    let tags: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(get(&mirror, "/v2/").status, 200, "still serving");
}
