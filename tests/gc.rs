//! The store's lifecycle end to end: what `rmi`, `image prune` and the registry's garbage
//! collection may delete on one store shared by `berth serve` and the client.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth_storage::Digest;

use crate::util::{
    backdate, berth_bin, build_image, require, run_ok, run_with_timeout, skopeo_copy_to_dir,
    skopeo_push, Berth, Lines, Registry, Storage, TestImage, PEER_TIMEOUT,
};

fn blob_path(root: &Path, d: &Digest) -> std::path::PathBuf {
    root.join("blobs/sha256").join(d.hex())
}

/// Every blob of `image` under `repo` answers 200 with its bytes, and so does the manifest.
fn assert_served(server: &Registry, repo: &str, image: &TestImage) {
    let manifest = server.request(
        "GET",
        &format!("/v2/{repo}/manifests/{}", image.manifest),
        &[("Accept", "application/vnd.oci.image.manifest.v1+json")],
        b"",
    );
    assert_eq!(manifest.status, 200, "{repo}@{} is gone", image.manifest);
    assert_eq!(Digest::sha256_of(&manifest.body), image.manifest);
    for d in image.layers.iter().chain([&image.config]) {
        let blob = server.request("GET", &format!("/v2/{repo}/blobs/{d}"), &[], b"");
        assert_eq!(blob.status, 200, "{repo} lost blob {d}");
        assert_eq!(
            &Digest::sha256_of(&blob.body),
            d,
            "{repo}: blob {d} changed"
        );
    }
}

/// Puts `image`'s manifest into `to` by digest only (no tag), its blobs mounted from `from`:
/// a repository that needs the content without any client image naming it.
fn push_by_digest(server: &Registry, from: &str, to: &str, image: &TestImage) {
    for d in image.layers.iter().chain([&image.config]) {
        let r = server.request(
            "POST",
            &format!("/v2/{to}/blobs/uploads/?mount={d}&from={from}"),
            &[],
            b"",
        );
        assert_eq!(r.status, 201, "mount {d} into {to}");
    }
    let body = std::fs::read(image.layout.join("blobs/sha256").join(image.manifest.hex())).unwrap();
    let r = server.request(
        "PUT",
        &format!("/v2/{to}/manifests/{}", image.manifest),
        &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
        &body,
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
}

/// The data-loss scenario of a shared store: an image pushed to `team/a` and, by digest, to
/// `team/b`; `berth rmi localhost/team/a:1` removes the client's image, and `team/b` keeps
/// every byte, because rmi asks the store's one notion of what is live. The registry's
/// collection asks the same: it keeps a client's image that no repository needs.
#[test]
fn rmi_on_a_served_root_keeps_what_a_registry_repository_references() {
    let work = tempfile::tempdir().unwrap();
    let image = build_image(work.path(), 1, 50_000, 31);
    let served = Berth::new();
    let server = Registry::serve_root(&served.root);
    skopeo_push(&image, &format!("{}/team/a:1", server.addr));
    push_by_digest(&server, "team/a", "team/b", &image);
    assert_served(&server, "team/b", &image);

    let out = served.ok(&["rmi", "localhost/team/a:1"]);
    assert!(out.contains("Untagged: localhost/team/a:1"), "{out}");
    assert!(out.contains(&format!("Deleted: {}", image.config)), "{out}");
    assert_served(&server, "team/b", &image);
    for d in image.layers.iter().chain([&image.config, &image.manifest]) {
        assert!(blob_path(&served.root, d).is_file(), "blob {d} was deleted");
    }
    let tags = server.request("GET", "/v2/team/a/tags/list", &[], b"");
    assert!(
        !String::from_utf8_lossy(&tags.body).contains("\"1\""),
        "the tag went with the client's name"
    );

    // The other way round: an image the client pulled into the same root (from the registry
    // that serves it), whose registry repository then loses it. The client still needs it,
    // so the registry's collection keeps it.
    let pulled = build_image(&work.path().join("c"), 1, 20_000, 32);
    skopeo_push(&pulled, &format!("{}/team/c:1", server.addr));
    served.ok(&["pull", "-q", &format!("{}/team/c:1", server.addr)]);
    for repo in ["team/b", "team/c"] {
        let digest = if repo == "team/b" {
            &image.manifest
        } else {
            &pulled.manifest
        };
        let r = server.request(
            "DELETE",
            &format!("/v2/{repo}/manifests/{digest}"),
            &[],
            b"",
        );
        assert_eq!(r.status, 202, "{repo}");
    }
    // With team/b's manifest deleted, nothing needs the first image: the registry's
    // collection frees it.
    let mut config = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    write!(
        config,
        "[gc]\ndelay = \"0\"\n[storage]\nbackend = \"filesystem\"\nroot = {:?}\n",
        served.root.to_str().unwrap()
    )
    .unwrap();
    let done = berth_gc(config.path(), &[]);
    assert!(done.contains("Deleted "), "{done}");
    for d in image.layers.iter().chain([&image.config, &image.manifest]) {
        assert!(!blob_path(&served.root, d).exists(), "{d} is garbage");
    }
    for d in pulled
        .layers
        .iter()
        .chain([&pulled.config, &pulled.manifest])
    {
        assert!(
            blob_path(&served.root, d).is_file(),
            "the client's {d} was deleted"
        );
    }
    let pulled_ref = format!("{}/team/c:1", server.addr);
    served.ok(&["image", "inspect", &pulled_ref]);
    // Once the client removes it, nothing needs it: rmi frees it.
    served.ok(&["rmi", &pulled_ref]);
    for d in pulled
        .layers
        .iter()
        .chain([&pulled.config, &pulled.manifest])
    {
        assert!(!blob_path(&served.root, d).exists(), "{d} is garbage");
    }
}

/// A `berth serve` config for `storage` with a `[gc]` section, as a file `berth gc` can read.
fn gc_config(storage: &Storage, gc: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    write!(file, "[gc]\n{gc}\n{}", storage.toml).unwrap();
    file
}

fn berth_gc(config: &Path, extra: &[&str]) -> String {
    run_ok(
        Command::new(berth_bin())
            .arg("gc")
            .arg("--config")
            .arg(config)
            .args(extra),
    )
}

/// skopeo copies `reference` out; every blob it got is byte for byte the image's.
pub(crate) fn assert_pullable(reference: &str, image: &TestImage) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("copy");
    skopeo_copy_to_dir(reference, &out);
    let mut seen = 0;
    for d in image.layers.iter().chain([&image.config, &image.manifest]) {
        let ours = std::fs::read(image.layout.join("blobs/sha256").join(d.hex())).unwrap();
        let name = if d == &image.manifest {
            "manifest.json".to_string()
        } else {
            d.hex().to_string()
        };
        let theirs = std::fs::read(out.join(&name))
            .unwrap_or_else(|e| panic!("{reference}: {name} missing: {e}"));
        assert!(ours == theirs, "{reference}: {name} differs");
        seen += 1;
    }
    assert!(seen >= 3);
}

/// Collections run back to back while 20 skopeo clients push eight images (distinct, and the
/// same image to several repositories), half of them made of blobs that were garbage when the
/// collections began: afterwards every image pulls byte for byte, and the garbage no push
/// wanted is gone. On the file system, s3s and moto.
#[test]
fn collections_while_twenty_clients_push() {
    collections_while_clients_push(Storage::fs());
}

#[test]
fn collections_while_twenty_clients_push_on_s3s() {
    collections_while_clients_push(Storage::s3s());
}

#[test]
fn collections_while_twenty_clients_push_on_moto() {
    collections_while_clients_push(Storage::moto());
}

/// Makes everything `storage` holds two hours old where its files can be touched (the file
/// system; s3s-fs, whose objects' `LastModified` is their file's). false for moto, whose
/// objects keep the time they were written.
fn age(storage: &Storage) -> bool {
    let dir = match (&storage.dir, &storage.s3) {
        (Some(dir), _) => dir.path(),
        (None, Some(s3)) => match s3.dir() {
            Some(dir) => dir,
            None => return false,
        },
        (None, None) => return false,
    };
    backdate(dir);
    true
}

fn collections_while_clients_push(storage: Storage) {
    let work = tempfile::tempdir().unwrap();
    let image = |i: usize| build_image(&work.path().join(format!("i{i}")), 1, 20_000, 40 + i as u8);
    // The garbage's images first: the others are made while it ages.
    let mut images: Vec<Option<TestImage>> = (0..10)
        .map(|i| [0, 1, 2, 3, 8, 9].contains(&i).then(|| image(i)))
        .collect();
    let server = Registry::start(&storage, "[gc]\ninterval = 0");
    // Garbage: images 0-3 and 8-9, pushed then deleted, older than the delay. The clients
    // push 0-3 again; 8 and 9 nobody wants.
    let mut garbage = Vec::new();
    for i in [0, 1, 2, 3, 8, 9] {
        let repo = format!("old/x{i}");
        let old = images[i].as_ref().unwrap();
        skopeo_push(old, &format!("{}/{repo}:1", server.addr));
        let r = server.request(
            "DELETE",
            &format!("/v2/{repo}/manifests/{}", old.manifest),
            &[],
            b"",
        );
        assert_eq!(r.status, 202);
        garbage.push(i);
    }
    let made = std::time::Instant::now();
    let images: Vec<TestImage> = (0..10)
        .map(|i| images[i].take().unwrap_or_else(|| image(i)))
        .collect();
    // Where it cannot be made old, the garbage waits out a delay of seconds, longer than a
    // push takes here between its first blob and its manifest (20 at once on moto: up to a
    // few seconds).
    let delay = if age(&storage) {
        "10m"
    } else {
        std::thread::sleep(Duration::from_secs(11).saturating_sub(made.elapsed()));
        "10s"
    };
    let config = gc_config(&storage, &format!("delay = {delay:?}\nuntagged = \"0s\""));

    let pushing = Arc::new(AtomicBool::new(true));
    let collector = std::thread::spawn({
        let (pushing, config) = (pushing.clone(), config.path().to_path_buf());
        move || {
            let mut runs = 0;
            while pushing.load(Ordering::SeqCst) || runs < 2 {
                berth_gc(&config, &[]);
                runs += 1;
            }
            runs
        }
    });
    let clients: Vec<_> = (0..20)
        .map(|c| {
            let image = &images[c % 8];
            let dest = format!("{}/c{c}/app:1", server.addr);
            let layout = format!("oci:{}:latest", image.layout.display());
            std::thread::spawn(move || {
                // A push that raced a deletion of the very blob it reuses is refused, and
                // pushed again, as a person would: nothing that was pushed is lost.
                let started = std::time::Instant::now();
                for attempt in 1.. {
                    let out = run_with_timeout(
                        Command::new(require("skopeo"))
                            .args(["copy", "--quiet", "--dest-tls-verify=false", &layout])
                            .arg(format!("docker://{dest}")),
                        PEER_TIMEOUT,
                    );
                    if out.status.success() {
                        return (attempt, started.elapsed().as_millis());
                    }
                    assert!(
                        attempt < 3,
                        "{dest}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                unreachable!()
            })
        })
        .collect();
    let attempts: Vec<(usize, u128)> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    pushing.store(false, Ordering::SeqCst);
    let runs = collector.join().unwrap();
    eprintln!(
        "{}: {runs} collections beside the pushes; push (attempts, ms) {attempts:?}",
        storage.name
    );

    for c in 0..20 {
        assert_pullable(&format!("{}/c{c}/app:1", server.addr), &images[c % 8]);
    }
    // One more collection with nothing running: the garbage nobody pushed again is gone,
    // what was pushed again stays.
    berth_gc(config.path(), &[]);
    let blobs: std::collections::BTreeSet<String> = storage.keys("blobs/").into_iter().collect();
    for i in garbage {
        let kept = i < 8;
        for d in images[i]
            .layers
            .iter()
            .chain([&images[i].config, &images[i].manifest])
        {
            let key = format!("blobs/sha256/{}", d.hex());
            assert_eq!(blobs.contains(&key), kept, "image {i}: {d}");
        }
    }
    for (c, image) in images.iter().enumerate().take(8) {
        assert_pullable(&format!("{}/c{c}/app:1", server.addr), image);
    }
}

/// `n` loose blobs of a few bytes each, written straight into a store directory, an hour old.
fn loose_blobs(root: &Path, n: usize) -> Vec<Digest> {
    let dir = root.join("blobs/sha256");
    std::fs::create_dir_all(&dir).unwrap();
    (0..n)
        .map(|i| {
            let data = format!("loose blob {i}");
            let d = Digest::sha256_of(data.as_bytes());
            std::fs::write(dir.join(d.hex()), data).unwrap();
            d
        })
        .collect()
}

fn count_blobs(root: &Path) -> usize {
    // An emptied directory goes with its last blob.
    std::fs::read_dir(root.join("blobs/sha256")).map_or(0, |d| d.count())
}

/// A dry run lists and changes nothing; a collection killed (SIGKILL) in the middle of its
/// sweep, before its first delete and again with part of the garbage deleted, leaves a store
/// where nothing live is gone, and the next one takes its lease over at once and finishes the
/// job: on the file system, on s3s and on moto.
#[test]
fn dry_run_changes_nothing_and_a_killed_collection_is_finished_by_the_next() {
    killed_collection_is_finished_by_the_next(Storage::fs());
}

#[test]
fn a_killed_collection_is_finished_by_the_next_on_s3s() {
    killed_collection_is_finished_by_the_next(Storage::s3s());
}

#[test]
fn a_killed_collection_is_finished_by_the_next_on_moto() {
    killed_collection_is_finished_by_the_next(Storage::moto());
}

/// `berth gc` by `config`, stopped by its test hook (`BERTH_TEST_GC_PAUSE_AT`) once `at` of
/// its doomed blobs are deleted: the child, killed when dropped, and how many it had deleted.
struct PausedCollection(std::process::Child);

impl PausedCollection {
    fn start(config: &Path, at: u64) -> (PausedCollection, u64) {
        let mut child = Command::new(berth_bin())
            .arg("gc")
            .arg("--config")
            .arg(config)
            .env("BERTH_TEST_GC_PAUSE_AT", at.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Lines::default().collect(child.stderr.take().unwrap());
        let paused = PausedCollection(child);
        lines.wait_for("sweeping: paused at ", Duration::from_secs(60));
        // The progress line, a line per step when stderr is not a terminal.
        let all = lines.all();
        assert!(all[0].starts_with("marking: "), "{all:?}");
        assert!(all[1].starts_with("sweeping: 0/"), "{all:?}");
        let deleted = all
            .iter()
            .find_map(|l| l.strip_prefix("sweeping: paused at "))
            .and_then(|l| l.split('/').next()?.parse().ok())
            .unwrap();
        (paused, deleted)
    }

    fn kill(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for PausedCollection {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn killed_collection_is_finished_by_the_next(storage: Storage) {
    // Three batches of deletes (a thousand each).
    let garbage = 2_500;
    let work = tempfile::tempdir().unwrap();
    let image = build_image(work.path(), 1, 10_000, 70);
    let server = Registry::start(&storage, "[gc]\ninterval = 0");
    skopeo_push(&image, &format!("{}/live/app:1", server.addr));
    // Loose blobs written straight into the store; a delay of zero makes them garbage at once
    // (and leaves the pushed image nothing but its tag to keep it).
    let loose: Vec<(String, Vec<u8>)> = (0..garbage)
        .map(|i| {
            let data = format!("loose blob {i}").into_bytes();
            let key = format!("blobs/sha256/{}", Digest::sha256_of(&data).hex());
            (key, data)
        })
        .collect();
    let loose_keys: std::collections::BTreeSet<String> =
        loose.iter().map(|(k, _)| k.clone()).collect();
    storage.put_all(loose);
    let config = gc_config(&storage, "delay = \"0\"");
    let blobs = || storage.keys("blobs/");
    let before = blobs().len();

    let plan = berth_gc(config.path(), &["--dry-run"]);
    assert!(
        plan.contains(&format!(
            "Would delete {garbage} blobs, 0 blob links, 0 upload sessions, 0 abandoned writes"
        )),
        "{plan}"
    );
    assert!(plan.contains("Total reclaimable space: "), "{plan}");
    assert_eq!(blobs().len(), before, "a dry run deletes nothing");

    // Killed with its doomed list published and nothing deleted yet, then (the next
    // collection) with its first batch deleted and the rest to go.
    for (at, deleted) in [(0, 0), (1, 1000)] {
        let (gc, done) = PausedCollection::start(config.path(), at);
        assert_eq!(done, deleted);
        assert_eq!(
            blobs().len(),
            before - deleted as usize,
            "{deleted} deleted when paused"
        );
        gc.kill();
        assert!(
            storage.keys("gc/").contains(&"gc/lease".to_string()),
            "the dead collector's lease is left"
        );
        assert_pullable(&format!("{}/live/app:1", server.addr), &image);
    }

    let done = berth_gc(config.path(), &[]);
    assert!(
        done.contains(&format!("Deleted {} blobs", garbage - 1000)),
        "{done}"
    );
    let after = blobs();
    assert_eq!(after.len(), before - garbage, "{done}");
    assert!(after.iter().all(|k| !loose_keys.contains(k)));
    assert_eq!(
        storage.keys("gc/"),
        Vec::<String>::new(),
        "no lease, doomed list or rescue is left"
    );
    assert_pullable(&format!("{}/live/app:1", server.addr), &image);
}

/// The example config/gc.toml loads as documented, and `berth gc --dry-run` runs by it.
#[test]
fn the_gc_example_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/gc.toml");
    let config = berth_registry::Config::load(&path).unwrap();
    let gc = &config.gc;
    let hours = |h: u64| std::time::Duration::from_secs(h * 3600);
    assert_eq!(gc.interval, hours(24));
    assert_eq!(gc.delay, hours(1));
    assert_eq!(gc.untagged, Some(hours(7 * 24)));
    assert_eq!(gc.uploads, Some(hours(24)));
    let rules = &gc.retention;
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].repositories, ["ci/*"]);
    assert_eq!(rules[0].keep, ["latest", "semver", "release-*"]);
    assert_eq!(rules[0].keep_newest, Some(10));
    assert_eq!(rules[0].delete_older_than, Some(hours(30 * 24)));
    assert_eq!(rules[1].keep_newest, Some(50));
    let root = tempfile::tempdir().unwrap();
    let text = run_ok(
        Command::new(berth_bin())
            .arg("--root")
            .arg(root.path())
            .args(["gc", "--dry-run", "--config"])
            .arg(&path),
    );
    assert_eq!(
        text,
        "Would delete 0 blobs, 0 blob links, 0 upload sessions, 0 abandoned writes\nTotal reclaimable space: 0B\n"
    );
    // Bad [gc] values name the key.
    for (text, key) in [
        ("[gc]\ndelay = \"soon\"\n", "soon"),
        ("[gc]\nuntagged = -1\n", "untagged"),
        ("[gc]\nbogus = 1\n", "bogus"),
        ("[[gc.retention]]\nrepositories = [\"*\"]\n", "keep_newest"),
    ] {
        let err = berth_registry::Config::parse(text, "x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{text:?}: {err}");
    }
}

/// `berth serve` collects on its schedule and counts it in /metrics; /livez answers while
/// the process serves, /readyz only while its store answers.
#[test]
fn scheduled_collection_metrics_and_health() {
    let storage = Storage::fs();
    let root = storage.dir.as_ref().unwrap().path().to_path_buf();
    loose_blobs(&root, 10);
    backdate(&root);
    let server = Registry::start(&storage, "[gc]\ninterval = \"1s\"");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let metrics = loop {
        let m = String::from_utf8(server.request("GET", "/metrics", &[], b"").body).unwrap();
        if m.contains("berth_gc_blobs_deleted_total 10") {
            break m;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no collection within 30 s:\n{m}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    for line in [
        "berth_gc_bytes_freed_total 120\n",
        "berth_gc_failures_total 0",
        "# TYPE berth_gc_runs_total counter",
        "# TYPE berth_gc_last_success_timestamp_seconds gauge",
        "berth_gc_last_duration_seconds ",
    ] {
        assert!(metrics.contains(line), "{line}:\n{metrics}");
    }
    let last = metrics
        .lines()
        .find_map(|l| l.strip_prefix("berth_gc_last_success_timestamp_seconds "))
        .unwrap();
    assert!(last.parse::<u64>().unwrap() > 1_600_000_000, "{last}");
    let runs = metrics
        .lines()
        .find_map(|l| l.strip_prefix("berth_gc_runs_total "))
        .unwrap();
    assert!(runs.parse::<u64>().unwrap() >= 1, "{runs}");
    assert_eq!(count_blobs(&root), 0);

    for path in ["/livez", "/readyz"] {
        let r = server.request("GET", path, &[], b"");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ok\n"[..]), "{path}");
    }
    // The store's directory goes away: not ready (the process still lives); back: ready.
    let moved = root.with_extension("away");
    std::fs::rename(&root, &moved).unwrap();
    let r = server.request("GET", "/readyz", &[], b"");
    assert_eq!(r.status, 503);
    assert!(String::from_utf8_lossy(&r.body).contains("store unreachable"));
    assert_eq!(server.request("GET", "/livez", &[], b"").status, 200);
    std::fs::rename(&moved, &root).unwrap();
    assert_eq!(server.request("GET", "/readyz", &[], b"").status, 200);
}

/// Two replicas over one bucket (moto), both collecting every second, while pushes go
/// through each: one collects at a time, garbage goes, and every push is whole afterwards.
#[test]
fn two_replicas_on_one_bucket_collect_one_at_a_time() {
    let work = tempfile::tempdir().unwrap();
    let images: Vec<TestImage> = (0..5)
        .map(|i| build_image(&work.path().join(format!("i{i}")), 1, 5_000, 80 + i as u8))
        .collect();
    let storage = Storage::moto();
    // A push's blobs come moments before its manifest, seconds on a loaded machine (moto's
    // times are whole seconds, a second more): the delay covers it, as in the test above.
    let gc = "[gc]\ninterval = \"1s\"\ndelay = \"10s\"";
    let a = Registry::start(&storage, gc);
    let b = Registry::start(&storage, gc);
    // Garbage: an image pushed and deleted through one replica.
    let old = &images[4];
    skopeo_push(old, &format!("{}/old/x:1", a.addr));
    let r = b.request(
        "DELETE",
        &format!("/v2/old/x/manifests/{}", old.manifest),
        &[],
        b"",
    );
    assert_eq!(r.status, 202);
    for round in 0..3 {
        for (i, image) in images[..4].iter().enumerate() {
            let via = if (i + round) % 2 == 0 { &a } else { &b };
            skopeo_push(image, &format!("{}/r{round}/i{i}:1", via.addr));
        }
    }
    let count = |r: &Registry, name: &str| -> u64 {
        let m = String::from_utf8(r.request("GET", "/metrics", &[], b"").body).unwrap();
        m.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap()
            .parse()
            .unwrap()
    };
    let total = |name: &str| count(&a, name) + count(&b, name);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while total("berth_gc_blobs_deleted_total") < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "the garbage was not collected"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    for round in 0..3 {
        for (i, image) in images[..4].iter().enumerate() {
            let via = if (i + round) % 2 == 0 { &b } else { &a };
            assert_pullable(&format!("{}/r{round}/i{i}:1", via.addr), image);
        }
    }
    assert_eq!(
        total("berth_gc_blobs_deleted_total"),
        4,
        "the old image's four blobs, once"
    );
    assert!(total("berth_gc_runs_total") >= 2);
    assert_eq!(total("berth_gc_failures_total"), 0);
}

/// Retention rules apply on `berth serve`'s schedule, not only in `berth gc`: of a
/// repository's three tags, the one a pattern keeps and the newest stay, the other goes with
/// its manifest; a repository no rule names keeps all of its tags.
#[test]
fn retention_rules_apply_on_the_schedule() {
    let work = tempfile::tempdir().unwrap();
    let images: Vec<TestImage> = (0..3)
        .map(|i| build_image(&work.path().join(format!("i{i}")), 1, 1_000, 120 + i as u8))
        .collect();
    let storage = Storage::fs();
    let server = Registry::start(
        &storage,
        "[gc]\ninterval = \"1s\"\n\n[[gc.retention]]\nrepositories = [\"ci/*\"]\n\
         keep = [\"latest\"]\nkeep_newest = 1\n",
    );
    skopeo_push(&images[0], &format!("{}/ci/app:latest", server.addr));
    skopeo_push(&images[1], &format!("{}/ci/app:old", server.addr));
    skopeo_push(&images[1], &format!("{}/other/app:old", server.addr));
    // Stores keep times to the second: the newest tag is a second younger.
    std::thread::sleep(Duration::from_millis(1100));
    skopeo_push(&images[2], &format!("{}/ci/app:new", server.addr));
    let tags = |repo: &str| {
        let r = server.request("GET", &format!("/v2/{repo}/tags/list"), &[], b"");
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let mut t: Vec<String> = v["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        t.sort();
        t
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while tags("ci/app") != ["latest", "new"] {
        assert!(
            std::time::Instant::now() < deadline,
            "the rule did not apply within 30 s: {:?}",
            tags("ci/app")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let old = format!("/v2/ci/app/manifests/{}", images[1].manifest);
    assert_eq!(server.request("GET", &old, &[], b"").status, 404);
    assert_eq!(tags("other/app"), ["old"]);
    assert_pullable(&format!("{}/ci/app:new", server.addr), &images[2]);
    assert_pullable(&format!("{}/other/app:old", server.addr), &images[1]);
}
