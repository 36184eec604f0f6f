//! SIGKILL under load: 100 pushes in flight (docker, skopeo, and pushers of our own that send
//! each blob in one request or in chunks) while `berth serve` is killed at random moments and
//! started again on the same address and storage. Afterwards every push that got its 201 for
//! the manifest is there byte for byte; meanwhile no blob was ever served short or wrong; an
//! upload session that was begun survives each kill and goes on where the store says it
//! stands. Uploads abandoned on purpose (a client that dies half way through a PATCH, a PATCH
//! whose server is killed under it) survive as sessions until the collection's upload expiry
//! (`berth gc`) removes them with every byte they held, and nothing acknowledged goes with
//! them. Runs on the filesystem and on S3 (s3s-fs, moto). Needs root for dockerd.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{self, digest_of, require, try_request, Dockerd, Registry, Storage};

/// How many pushes, how many of them docker's and skopeo's, how many kills. The suite runs a
/// small chaos (24 pushes, 3 kills); `bench/chaos.sh` runs the long one (100 pushes, 4 kills)
/// through `BERTH_CHAOS_PUSHES` and `BERTH_CHAOS_KILLS`.
#[derive(Clone, Copy)]
struct Scale {
    pushes: usize,
    docker: usize,
    skopeo: usize,
    kills: usize,
}

fn scale() -> Scale {
    let var = |name: &str, default: usize| match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number")),
        Err(_) => default,
    };
    let pushes = var("BERTH_CHAOS_PUSHES", 24).max(6);
    Scale {
        pushes,
        docker: (pushes / 10).max(2),
        skopeo: (pushes / 10).max(2),
        kills: var("BERTH_CHAOS_KILLS", 3).max(2),
    }
}
/// How long a push may keep trying across the kills.
const PATIENCE: Duration = Duration::from_secs(240);
const CHUNK: usize = 64 << 10;

/// Small deterministic randomness (xorshift), seeded from the clock and printed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// The registry's address (the same after each restart), and the blobs being pushed.
struct Target {
    addr: String,
    /// What each push is doing now, for the report of a push that never ends.
    stage: Mutex<HashMap<String, String>>,
    /// Blobs being pushed or pushed: repository, digest, size. The reader asks for them at
    /// any moment.
    blobs: RwLock<Vec<(String, String, usize)>>,
}

/// What was acknowledged: the manifest PUT (or the peer's push) succeeded.
#[derive(Debug)]
struct Acked {
    repo: String,
    tag: String,
    manifest_digest: String,
    /// The manifest's bytes, where the pusher knows them (not for docker's).
    manifest: Option<Vec<u8>>,
    /// Digest → bytes of each blob, where known; for docker, the digests from the manifest.
    blobs: Vec<(String, Option<Vec<u8>>)>,
}

impl Target {
    fn at(&self, who: &str, what: String) {
        self.stage.lock().unwrap().insert(who.to_string(), what);
    }
}

/// One attempt of a peer's push: at most this long.
const ATTEMPT: Duration = Duration::from_secs(120);

/// A request that survives the server being away: retried until it gets an answer.
fn ask(
    t: &Target,
    deadline: Instant,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> util::Response {
    loop {
        match try_request(&t.addr, method, path, headers, body) {
            Ok(r) if r.status != 503 => return r,
            Ok(_) | Err(_) => {
                assert!(
                    Instant::now() < deadline,
                    "{method} {path}: no answer in time"
                );
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// A location header's path.
fn path_of(r: &util::Response) -> String {
    let loc = r
        .header("location")
        .unwrap_or_else(|| panic!("no Location: {:?}", r.headers));
    match loc.find("/v2/") {
        Some(i) => loc[i..].to_string(),
        None => panic!("odd Location {loc}"),
    }
}

fn with_query(path: &str, query: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}{query}")
}

/// One blob in one request (POST with `?digest=`); a lost answer is asked again.
fn push_monolithic(t: &Target, deadline: Instant, repo: &str, data: &[u8]) {
    let d = digest_of(data);
    loop {
        let path = format!("/v2/{repo}/blobs/uploads/?digest={d}");
        match try_request(&t.addr, "POST", &path, &[], data) {
            Ok(r) if r.status == 201 => return,
            Ok(r) if r.status != 503 => panic!("POST {path}: {} {:?}", r.status, r.body),
            _ => {
                assert!(Instant::now() < deadline, "{path}: no 201 in time");
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// One blob in chunks (POST, PATCHes, PUT). After each failure the session's status says
/// where to go on: a session once begun must survive the kills.
fn push_chunked(t: &Target, deadline: Instant, repo: &str, data: &[u8]) {
    let d = digest_of(data);
    let r = ask(
        t,
        deadline,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        b"",
    );
    assert_eq!(r.status, 202, "{:?}", String::from_utf8_lossy(&r.body));
    let mut loc = path_of(&r);
    let mut offset = 0usize;
    while offset < data.len() {
        assert!(Instant::now() < deadline, "{loc}: not done in time");
        let end = (offset + CHUNK).min(data.len());
        let range = format!("{offset}-{}", end - 1);
        let headers = [
            ("Content-Range", range.as_str()),
            ("Content-Type", "application/octet-stream"),
        ];
        match try_request(&t.addr, "PATCH", &loc, &headers, &data[offset..end]) {
            Ok(r) if r.status == 202 => {
                loc = path_of(&r);
                offset = end;
                continue;
            }
            Ok(r) if r.status != 503 && r.status != 416 => {
                panic!(
                    "PATCH {loc}: {} {:?}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                )
            }
            _ => {}
        }
        // Where does the session stand? It must still be there.
        let r = ask(t, deadline, "GET", &loc, &[], b"");
        assert_eq!(
            r.status,
            204,
            "an upload session was lost to a kill: {loc}: {:?}",
            String::from_utf8_lossy(&r.body)
        );
        let range = r.header("range").expect("Range on an upload's status");
        // `0-N` is N+1 bytes, but as with distribution `0-0` is also what a session with
        // none says; this pusher's chunks are never one byte.
        let upto: usize = match range
            .strip_prefix("0-")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(0) if offset == 0 => 0,
            Some(n) => n + 1,
            None => panic!("{loc}: Range {range}"),
        };
        // Never behind what was acknowledged (a 202), never past what was sent.
        assert!(
            upto >= offset && upto <= end,
            "{loc}: Range {range} after {offset}-{end}"
        );
        loc = path_of(&r);
        offset = upto;
    }
    loop {
        let path = with_query(&loc, &format!("digest={d}"));
        match try_request(&t.addr, "PUT", &path, &[], b"") {
            Ok(r) if r.status == 201 => return,
            Ok(r) if r.status != 503 => {
                // A PUT whose 201 was lost: the blob is there and the session gone.
                let head = ask(
                    t,
                    deadline,
                    "HEAD",
                    &format!("/v2/{repo}/blobs/{d}"),
                    &[],
                    b"",
                );
                assert_eq!(
                    head.status,
                    200,
                    "PUT {path}: {} {:?}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                );
                return;
            }
            _ => {
                assert!(Instant::now() < deadline, "{path}: no 201 in time");
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn image_manifest(config: &[u8], layers: &[Vec<u8>]) -> Vec<u8> {
    let layers: Vec<_> = layers
        .iter()
        .map(|l| {
            serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": digest_of(l), "size": l.len()})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": digest_of(config), "size": config.len()},
        "layers": layers,
    }))
    .unwrap()
}

/// An image of its own for push `i`: a config and one or two layers of 16–400 KiB.
fn make_image(rng: &mut Rng, i: usize) -> (Vec<u8>, Vec<Vec<u8>>, Vec<u8>) {
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": format!("chaos {i}"),
        "rootfs": {"type": "layers", "diff_ids": []},
    }))
    .unwrap();
    let layers: Vec<Vec<u8>> = (0..1 + rng.below(2))
        .map(|_| {
            let n = (16 << 10) + rng.below(384 << 10) as usize;
            rng.bytes(n)
        })
        .collect();
    let manifest = image_manifest(&config, &layers);
    (config, layers, manifest)
}

/// Our own pusher: its blobs monolithic or chunked, then the manifest.
fn push_ours(t: &Target, rng: &mut Rng, i: usize, chunked: bool) -> Acked {
    let deadline = Instant::now() + PATIENCE;
    let repo = format!("chaos/o{i}");
    let (config, layers, manifest) = make_image(rng, i);
    let mut blobs = vec![config];
    blobs.extend(layers);
    for b in &blobs {
        t.blobs
            .write()
            .unwrap()
            .push((repo.clone(), digest_of(b), b.len()));
    }
    for b in &blobs {
        t.at(
            &repo,
            format!(
                "blob {} ({} bytes, chunked: {chunked})",
                digest_of(b),
                b.len()
            ),
        );
        if chunked {
            push_chunked(t, deadline, &repo, b);
        } else {
            push_monolithic(t, deadline, &repo, b);
        }
    }
    t.at(&repo, "manifest".into());
    let path = format!("/v2/{repo}/manifests/1");
    let ct = [("Content-Type", "application/vnd.oci.image.manifest.v1+json")];
    loop {
        match try_request(&t.addr, "PUT", &path, &ct, &manifest) {
            Ok(r) if r.status == 201 => break,
            Ok(r) if r.status != 503 => {
                panic!(
                    "PUT {path}: {} {:?}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                )
            }
            _ => {
                assert!(Instant::now() < deadline, "{path}: no 201 in time");
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
    Acked {
        repo,
        tag: "1".into(),
        manifest_digest: digest_of(&manifest),
        manifest: Some(manifest),
        blobs: blobs
            .into_iter()
            .map(|b| (digest_of(&b), Some(b)))
            .collect(),
    }
}

/// skopeo copies an OCI layout of push `i` until one copy succeeds.
fn push_skopeo(t: &Target, rng: &mut Rng, i: usize, dir: &std::path::Path) -> Acked {
    let deadline = Instant::now() + PATIENCE;
    let repo = format!("chaos/s{i}");
    let (config, layers, manifest) = make_image(rng, i);
    let layout = dir.join(format!("s{i}"));
    let blob_dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blob_dir).unwrap();
    let mut blobs = vec![config];
    blobs.extend(layers);
    for b in blobs.iter().chain([&manifest]) {
        let d = digest_of(b);
        std::fs::write(blob_dir.join(&d["sha256:".len()..]), b).unwrap();
        t.blobs
            .write()
            .unwrap()
            .push((repo.clone(), d.clone(), b.len()));
    }
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest_of(&manifest), "size": manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": "1"}}]});
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    let src = format!("oci:{}:1", layout.display());
    let dest = format!("docker://{}/{repo}:1", t.addr);
    // skopeo compresses the layers for a registry, so the manifest it pushes is its own: its
    // digest is what skopeo reports; of the blobs, the config keeps its bytes.
    let digest_file = dir.join(format!("s{i}.digest"));
    for attempt in 1.. {
        t.at(&repo, format!("skopeo copy, attempt {attempt}"));
        let out = util::run_with_timeout(
            Command::new(require("skopeo")).args([
                "copy",
                "-q",
                "--retry-times",
                "3",
                "--dest-tls-verify=false",
                "--digestfile",
                digest_file.to_str().unwrap(),
                &src,
                &dest,
            ]),
            ATTEMPT,
        );
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "skopeo {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        thread::sleep(Duration::from_millis(200));
    }
    let config = blobs.swap_remove(0);
    Acked {
        repo,
        tag: "1".into(),
        manifest_digest: std::fs::read_to_string(&digest_file)
            .unwrap()
            .trim()
            .to_string(),
        manifest: None,
        blobs: vec![(digest_of(&config), Some(config))],
    }
}

/// docker pushes image `name` until one push succeeds; what it pushed is read back from the
/// digest it printed.
fn push_docker(t: &Target, d: &Dockerd, i: usize, name: &str) -> Acked {
    let deadline = Instant::now() + PATIENCE;
    let repo = format!("chaos/d{i}");
    let remote = format!("{}/{repo}:1", t.addr);
    util::run_ok(&mut d.cmd(&["tag", name, &remote]));
    let mut attempt = 0;
    let digest = loop {
        attempt += 1;
        t.at(&repo, format!("docker push, attempt {attempt}"));
        let out = util::run_with_timeout(&mut d.cmd(&["push", &remote]), ATTEMPT);
        let text = String::from_utf8_lossy(&out.stdout);
        if out.status.success() {
            break text
                .split_once("digest: ")
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .unwrap_or_else(|| panic!("no digest in {text}"))
                .to_string();
        }
        assert!(
            Instant::now() < deadline,
            "docker push {i}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        thread::sleep(Duration::from_millis(200));
    };
    Acked {
        repo,
        tag: "1".into(),
        manifest_digest: digest,
        manifest: None,
        blobs: Vec::new(),
    }
}

/// An upload begun and then left: a session with one chunk acknowledged, then a PATCH of the
/// next chunk whose body stops half way on a connection that is returned open. Dropping it at
/// once is a client killed mid-upload; holding it while the server is killed is a server
/// killed mid-upload. Returns the session's path (and the connection).
fn abandon_upload(addr: &str, repo: &str, rng: &mut Rng) -> (String, TcpStream) {
    let r = util::request(
        addr,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        b"",
    );
    assert_eq!(r.status, 202, "{:?}", String::from_utf8_lossy(&r.body));
    let range = format!("0-{}", CHUNK - 1);
    let ct = ("Content-Type", "application/octet-stream");
    let r = util::request(
        addr,
        "PATCH",
        &path_of(&r),
        &[("Content-Range", range.as_str()), ct],
        &rng.bytes(CHUNK),
    );
    assert_eq!(r.status, 202, "{:?}", String::from_utf8_lossy(&r.body));
    let loc = path_of(&r);
    let mut conn = TcpStream::connect(addr).unwrap();
    let head = format!(
        "PATCH {loc} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\n\
         Content-Range: {CHUNK}-{}\r\nContent-Length: {CHUNK}\r\n\r\n",
        2 * CHUNK - 1
    );
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(&rng.bytes(CHUNK / 2)).unwrap();
    // Long enough for the server to have begun writing the chunk (the caller's kill comes later
    // still).
    thread::sleep(Duration::from_millis(20));
    (loc, conn)
}

/// The file system's temporary files (what a writer killed half way leaves).
fn temporaries(storage: &Storage) -> usize {
    storage.dir.as_ref().map_or(0, |d| {
        std::fs::read_dir(d.path().join(".tmp"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name() != "conditional.lock")
            .count()
    })
}

/// After the pushes: the abandoned sessions are still there (resumable), then a collection
/// that expires uploads at once (`uploads = "0"`) and keeps no unneeded blob (`delay = "0"`)
/// removes them and every byte they held, and leaves exactly the blobs the acknowledged
/// manifests need.
fn expire_abandoned(storage: &Storage, reg: &Registry, abandoned: &[String], acked: &[Acked]) {
    for loc in abandoned {
        let r = reg.request("GET", loc, &[], b"");
        assert_eq!(
            r.status, 204,
            "{loc}: an abandoned session was lost before its expiry"
        );
    }
    let sessions = storage.keys("uploads/");
    assert!(!sessions.is_empty(), "no upload session was left to expire");
    let temps = temporaries(storage);
    if storage.dir.is_some() {
        assert!(temps >= 1, "no killed PATCH left its temporary file");
    }
    let mut config = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    write!(
        config,
        "[gc]\ndelay = \"0\"\nuploads = \"0\"\n{}",
        storage.toml
    )
    .unwrap();
    let out = util::run_ok(
        Command::new(util::berth_bin())
            .arg("gc")
            .arg("--config")
            .arg(config.path()),
    );
    let report = out;
    eprintln!(
        "{} upload keys and {temps} temporary files before: {report}",
        sessions.len()
    );
    assert!(
        report.contains(&format!("{} upload sessions", {
            let ids: HashSet<&str> = sessions
                .iter()
                .filter_map(|k| k.strip_prefix("uploads/")?.split('/').next())
                .collect();
            ids.len()
        })),
        "{report}"
    );
    assert_eq!(storage.keys("uploads/"), Vec::<String>::new(), "{report}");
    assert_eq!(temporaries(storage), 0, "temporary files leak: {report}");
    for loc in abandoned {
        let r = reg.request("GET", loc, &[], b"");
        assert_eq!(r.status, 404, "{loc}: an expired session answers");
        assert!(String::from_utf8_lossy(&r.body).contains("BLOB_UPLOAD_UNKNOWN"));
    }
    // What remains is what the acknowledged pushes need, and all of it.
    let mut needed = HashSet::new();
    for a in acked {
        let path = format!("/v2/{}/manifests/{}", a.repo, a.tag);
        let accept = [(
            "Accept",
            "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
        )];
        let r = reg.request("GET", &path, &accept, b"");
        assert_eq!(r.status, 200, "{path} was lost to the collection");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        needed.insert(a.manifest_digest.clone());
        needed.insert(v["config"]["digest"].as_str().unwrap().to_string());
        for l in v["layers"].as_array().unwrap() {
            needed.insert(l["digest"].as_str().unwrap().to_string());
        }
    }
    let stored: HashSet<String> = storage
        .keys("blobs/")
        .iter()
        .filter_map(|k| {
            let hex = k.split('/').find(|p| p.len() == 64)?;
            Some(format!("sha256:{hex}"))
        })
        .collect();
    let unneeded: Vec<_> = stored.difference(&needed).collect();
    assert!(
        unneeded.is_empty(),
        "blobs nothing needs survive the collection: {unneeded:?}"
    );
    check_acked(&reg.addr, acked);
}

/// Reads blobs that are being pushed, all the time: an answer 200 must be the whole blob.
fn read_all_the_time(t: &Target, stop: &AtomicBool, served: &AtomicUsize) {
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let pick = {
            let blobs = t.blobs.read().unwrap();
            if blobs.is_empty() {
                None
            } else {
                Some(blobs[n % blobs.len()].clone())
            }
        };
        n = n.wrapping_add(7919);
        let Some((repo, d, size)) = pick else {
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        let path = format!("/v2/{repo}/blobs/{d}");
        if let Ok(r) = try_request(&t.addr, "GET", &path, &[], b"") {
            match r.status {
                // A body shorter than its Content-Length is a transfer cut by a kill, which
                // the client sees; what a 200 declares must be the whole blob.
                200 if r
                    .header("content-length")
                    .and_then(|n| n.parse::<usize>().ok())
                    .is_some_and(|n| r.body.len() < n) =>
                {
                    assert_eq!(
                        r.header("content-length"),
                        Some(size.to_string().as_str()),
                        "{path}: a partial blob was declared"
                    );
                }
                200 => {
                    assert_eq!(r.body.len(), size, "{path}: a partial blob was served");
                    assert_eq!(digest_of(&r.body), d, "{path}: other bytes were served");
                    served.fetch_add(1, Ordering::Relaxed);
                }
                404 | 503 => {}
                s => panic!("{path}: {s} {:?}", String::from_utf8_lossy(&r.body)),
            }
        }
    }
}

/// Everything acknowledged is there, byte for byte.
fn check_acked(addr: &str, acked: &[Acked]) {
    let accept = [(
        "Accept",
        "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
    )];
    for a in acked {
        let path = format!("/v2/{}/manifests/{}", a.repo, a.tag);
        let r = util::request(addr, "GET", &path, &accept, b"");
        assert_eq!(r.status, 200, "{path} was acknowledged and is lost");
        assert_eq!(digest_of(&r.body), a.manifest_digest, "{path}");
        if let Some(m) = &a.manifest {
            assert_eq!(&r.body, m, "{path}");
        }
        // The blobs the manifest names, checked against their digests (and our bytes).
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let mut named: Vec<String> = vec![v["config"]["digest"].as_str().unwrap().to_string()];
        for l in v["layers"].as_array().unwrap() {
            named.push(l["digest"].as_str().unwrap().to_string());
        }
        let known: HashMap<&str, &Option<Vec<u8>>> =
            a.blobs.iter().map(|(d, b)| (d.as_str(), b)).collect();
        for d in named {
            let path = format!("/v2/{}/blobs/{d}", a.repo);
            let r = util::request(addr, "GET", &path, &[], b"");
            assert_eq!(r.status, 200, "{path} of an acknowledged push is lost");
            assert_eq!(digest_of(&r.body), d, "{path}");
            if let Some(Some(bytes)) = known.get(d.as_str()) {
                assert_eq!(&r.body, bytes, "{path}");
            }
        }
    }
}

fn chaos(storage: Storage) {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let scale = scale();
    eprintln!(
        "chaos on {}: seed {seed}, {} pushes ({} docker, {} skopeo), {} kills",
        storage.name, scale.pushes, scale.docker, scale.skopeo, scale.kills
    );
    let mut rng = Rng(seed);
    let dockerd = Dockerd::start();
    let work = tempfile::tempdir().unwrap();
    // docker's images, each of its own: a file with its number, imported.
    let mut docker_images = Vec::new();
    for i in 0..scale.docker {
        let dir = work.path().join(format!("d{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("data"), rng.bytes(64 << 10)).unwrap();
        let tar = work.path().join(format!("d{i}.tar"));
        util::run_ok(
            Command::new("tar")
                .arg("-C")
                .arg(&dir)
                .arg("-cf")
                .arg(&tar)
                .arg("data"),
        );
        let name = format!("chaos/local{i}:1");
        util::run_ok(&mut dockerd.cmd(&["import", tar.to_str().unwrap(), &name]));
        docker_images.push(name);
    }

    // A port of its own (not the kernel's pick): between a kill and the restart on the same
    // address, no other server or connection may take it.
    let listen = format!("127.0.0.1:{}", util::free_port());
    let mut reg = Registry::start_in(&storage, "", None, &listen);
    let target = Arc::new(Target {
        addr: reg.addr.clone(),
        stage: Mutex::new(HashMap::new()),
        blobs: RwLock::new(Vec::new()),
    });
    // A client that dies half way through a PATCH.
    let (loc, conn) = abandon_upload(&target.addr, "chaos/gone", &mut rng);
    drop(conn);
    let mut abandoned = vec![loc];
    let acked = Arc::new(Mutex::new(Vec::new()));
    let dockerd = Arc::new(dockerd);
    let mut pushers = Vec::new();
    for i in 0..scale.pushes {
        let t = target.clone();
        let acked = acked.clone();
        let dockerd = dockerd.clone();
        let name = docker_images.get(i).cloned();
        let dir = work.path().to_path_buf();
        let mut rng = Rng(rng.next() | 1);
        pushers.push(thread::spawn(move || {
            let a = if let Some(name) = name {
                push_docker(&t, &dockerd, i, &name)
            } else if i < scale.docker + scale.skopeo {
                push_skopeo(&t, &mut rng, i, &dir)
            } else {
                push_ours(&t, &mut rng, i, i % 2 == 0)
            };
            t.stage.lock().unwrap().remove(&a.repo);
            acked.lock().unwrap().push(a);
        }));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (t, stop, served) = (target.clone(), stop.clone(), served.clone());
        thread::spawn(move || read_all_the_time(&t, &stop, &served))
    };

    // The kills, at random moments while the pushes go on: kill k comes a random moment
    // after k/(kills+1) of the pushes were acknowledged (or half a second passed), so each
    // falls among pushes in flight however fast the server is.
    let mut kills = 0;
    while kills < scale.kills && pushers.iter().any(|p| !p.is_finished()) {
        // A PATCH whose server dies under it (begun before the wait, so the server is
        // writing its chunk by the time of the kill).
        let (loc, conn) = abandon_upload(&target.addr, &format!("chaos/cut{kills}"), &mut rng);
        abandoned.push(loc);
        let due = (kills + 1) * scale.pushes / (scale.kills + 1);
        let since = Instant::now();
        while acked.lock().unwrap().len() < due && since.elapsed() < Duration::from_millis(500) {
            thread::sleep(Duration::from_millis(5));
        }
        thread::sleep(Duration::from_millis(rng.below(100)));
        reg.kill();
        drop(conn);
        kills += 1;
        let before = acked.lock().unwrap().len();
        eprintln!("kill {kills}: {before} pushes acknowledged");
        thread::sleep(Duration::from_millis(rng.below(300)));
        reg = Registry::start_in(&storage, "", None, &target.addr);
    }
    let mut waited = Instant::now();
    while pushers.iter().any(|p| !p.is_finished()) {
        thread::sleep(Duration::from_millis(100));
        if waited.elapsed() > Duration::from_secs(20) {
            waited = Instant::now();
            let stage = target.stage.lock().unwrap();
            eprintln!("still pushing: {stage:#?}");
        }
    }
    for p in pushers {
        p.join().expect("a pusher failed");
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().expect("the reader saw a wrong blob");
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert_eq!(acked.len(), scale.pushes);
    assert!(kills >= 2, "the pushes ended before the second kill");
    eprintln!(
        "{kills} kills; {} blobs served whole while pushing",
        served.load(Ordering::Relaxed)
    );

    // Once more, now that all is acknowledged: nothing of it may be lost to a kill.
    reg.kill();
    let reg = Registry::start_in(&storage, "", None, &target.addr);
    check_acked(&reg.addr, &acked);
    expire_abandoned(&storage, &reg, &abandoned, &acked);
}

#[test]
fn root_sigkill_during_pushes_on_filesystem() {
    chaos(Storage::fs());
}

#[test]
fn root_sigkill_during_pushes_on_s3s() {
    chaos(Storage::s3s());
}

#[test]
fn root_sigkill_during_pushes_on_moto() {
    chaos(Storage::moto());
}
