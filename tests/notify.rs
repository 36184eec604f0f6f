//! Webhooks: a receiver written for CNCF distribution's notifications gets every event of a
//! push, a pull and a delete exactly once, also when it was down while berth restarted.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_storage::Digest;
use serde_json::Value;

use crate::util::{base64_encode, build_image, require, run, Registry, Storage, TestImage};

/// What a receiver got: each POST's headers and events.
#[derive(Default)]
struct Received {
    posts: Vec<(BTreeMap<String, String>, Vec<Value>)>,
}

/// An HTTP receiver on a loopback port, answering 200 to each POST; stopped when dropped.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Received>>,
    /// Connections accepted and never answered.
    held: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn start(port: u16, got: Arc<Mutex<Received>>) -> Receiver {
        Receiver::hanging(0, port, got)
    }

    /// A receiver that holds its first `hang` connections open without reading or answering
    /// them (an endpoint that hangs), then serves the rest.
    fn hanging(hang: usize, port: u16, got: Arc<Mutex<Received>>) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let held = Arc::new(Mutex::new(Vec::new()));
        let thread = std::thread::spawn({
            let (got, held, stop) = (got.clone(), held.clone(), stop.clone());
            move || {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((s, _)) if held.lock().unwrap().len() < hang => {
                            held.lock().unwrap().push(s)
                        }
                        Ok((s, _)) => serve(s, &got),
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            }
        });
        Receiver {
            port,
            got,
            held,
            stop,
            thread: Some(thread),
        }
    }

    fn events(&self) -> Vec<Value> {
        let got = self.got.lock().unwrap();
        got.posts.iter().flat_map(|(_, e)| e.clone()).collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(stream: TcpStream, got: &Mutex<Received>) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap();
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        let len: usize = headers
            .get("content-length")
            .map_or(0, |l| l.parse().unwrap());
        let mut body = vec![0; len];
        reader.read_exact(&mut body).unwrap();
        let envelope: Value = serde_json::from_slice(&body).unwrap();
        let events = envelope["events"].as_array().unwrap().clone();
        got.lock().unwrap().posts.push((headers, events));
        let mut w = &stream;
        w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .unwrap();
    }
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// (action, repository, digest, tag) of each event, counted.
fn tally(events: &[Value]) -> BTreeMap<(String, String, String, String), usize> {
    let mut out = BTreeMap::new();
    for e in events {
        let t = &e["target"];
        let key = (
            e["action"].as_str().unwrap().to_string(),
            t["repository"].as_str().unwrap_or("").to_string(),
            t["digest"].as_str().unwrap_or("").to_string(),
            t["tag"].as_str().unwrap_or("").to_string(),
        );
        *out.entry(key).or_default() += 1;
    }
    out
}

fn key(action: &str, repo: &str, digest: &Digest, tag: &str) -> (String, String, String, String) {
    (action.into(), repo.into(), digest.to_string(), tag.into())
}

/// The events pushing, pulling (manifest by tag, then each blob) and deleting `image` in
/// `repo` make, once each.
fn expected(repo: &str, image: &TestImage) -> BTreeMap<(String, String, String, String), usize> {
    let mut want = BTreeMap::new();
    for d in image.layers.iter().chain([&image.config]) {
        want.insert(key("push", repo, d, ""), 1);
        want.insert(key("pull", repo, d, ""), 1);
    }
    want.insert(key("push", repo, &image.manifest, "1"), 1);
    want.insert(key("pull", repo, &image.manifest, "1"), 1);
    want.insert(key("delete", repo, &image.manifest, ""), 1);
    want
}

/// Pushes with skopeo (as alice), pulls the manifest by tag and each blob with plain
/// requests, then deletes the manifest.
fn push_pull_delete(server: &Registry, repo: &str, image: &TestImage, auth: &str) {
    run(Command::new(require("skopeo")).args([
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:secret",
        &format!("oci:{}:latest", image.layout.display()),
        &format!("docker://{}/{repo}:1", server.addr),
    ]));
    let accept = "application/vnd.oci.image.manifest.v1+json";
    let r = server.request(
        "GET",
        &format!("/v2/{repo}/manifests/1"),
        &[("Accept", accept), ("Authorization", auth)],
        b"",
    );
    assert_eq!(r.status, 200);
    for d in image.layers.iter().chain([&image.config]) {
        let r = server.request(
            "GET",
            &format!("/v2/{repo}/blobs/{d}"),
            &[("Authorization", auth)],
            b"",
        );
        assert_eq!(r.status, 200);
    }
    // A HEAD is no pull.
    let r = server.request(
        "HEAD",
        &format!("/v2/{repo}/manifests/1"),
        &[("Accept", accept), ("Authorization", auth)],
        b"",
    );
    assert_eq!(r.status, 200);
    let r = server.request(
        "DELETE",
        &format!("/v2/{repo}/manifests/{}", image.manifest),
        &[("Authorization", auth)],
        b"",
    );
    assert_eq!(r.status, 202);
}

#[test]
fn webhooks_deliver_each_event_once_across_a_restart() {
    let work = tempfile::tempdir().unwrap();
    let first = build_image(&work.path().join("a"), 1, 3_000, 90);
    let second = build_image(&work.path().join("b"), 1, 3_000, 91);
    let htpasswd = work.path().join("htpasswd");
    let out = run(Command::new(require("htpasswd")).args(["-Bbn", "alice", "secret"]));
    std::fs::write(&htpasswd, out.stdout).unwrap();
    let auth = format!("Basic {}", base64_encode(b"alice:secret"));

    let all = Arc::new(Mutex::new(Received::default()));
    let pushes = Arc::new(Mutex::new(Received::default()));
    // A port of its own (not the kernel's pick): while the receiver is down, no other
    // server or connection may take it, or it could not come back on it.
    let receiver = Receiver::start(crate::util::free_port(), all.clone());
    let port = receiver.port;
    let push_receiver = Receiver::start(0, pushes.clone());
    let queue = work.path().join("queue");
    let storage = Storage::fs();
    // The receivers answer at once: a POST that times out is sent again, and a loaded
    // machine that held an answer up past a short timeout made an event come twice.
    let config = format!(
        r#"[auth]
htpasswd = {htpasswd:?}
[[auth.rules]]
users = ["alice"]
repositories = ["*"]
actions = ["pull", "push", "delete"]
[notifications]
queue = {queue:?}
[[notifications.endpoints]]
name = "all"
url = "http://127.0.0.1:{port}/events"
headers = {{ Authorization = ["Bearer hook-secret"] }}
timeout = "20s"
backoff = "100ms"
max_backoff = "500ms"
[[notifications.endpoints]]
name = "pushes"
url = "http://127.0.0.1:{}/events"
ignore = {{ actions = ["pull", "delete"] }}
repositories = ["team/*"]
[[notifications.endpoints]]
name = "off"
url = "http://127.0.0.1:1/never"
disabled = true
"#,
        push_receiver.port
    );
    let mut server = Registry::start(&storage, &config);
    push_pull_delete(&server, "team/app", &first, &auth);
    let want = expected("team/app", &first);
    let n: usize = want.values().sum();
    wait_for("every event", Duration::from_secs(30), || {
        receiver.events().len() >= n
    });
    // Settle: nothing more may come.
    std::thread::sleep(Duration::from_millis(500));
    let events = receiver.events();
    assert_eq!(tally(&events), want);
    let e = &events[0];
    assert_eq!(e["actor"]["name"], "alice");
    assert!(e["request"]["addr"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert_eq!(e["request"]["host"], server.addr.as_str());
    assert!(e["source"]["instanceID"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    assert!(e["timestamp"].as_str().unwrap().ends_with('Z'));
    let manifest_push = events
        .iter()
        .find(|e| e["action"] == "push" && e["target"]["tag"] == "1")
        .unwrap();
    let body = std::fs::read(first.layout.join("blobs/sha256").join(first.manifest.hex())).unwrap();
    assert_eq!(
        manifest_push["target"]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(manifest_push["target"]["size"], body.len());
    assert_eq!(manifest_push["target"]["length"], body.len());
    assert_eq!(
        manifest_push["target"]["url"],
        format!(
            "http://{}/v2/team/app/manifests/{}",
            server.addr, first.manifest
        )
    );
    let layer_push = events
        .iter()
        .find(|e| e["action"] == "push" && e["target"]["digest"] == first.layers[1].as_str())
        .unwrap();
    let layer = std::fs::metadata(
        first
            .layout
            .join("blobs/sha256")
            .join(first.layers[1].hex()),
    )
    .unwrap()
    .len();
    assert_eq!(layer_push["target"]["size"], layer);
    assert_eq!(
        layer_push["target"]["mediaType"],
        "application/octet-stream"
    );
    {
        let got = all.lock().unwrap();
        for (headers, _) in &got.posts {
            assert_eq!(headers["authorization"], "Bearer hook-secret");
            assert_eq!(
                headers["content-type"],
                "application/vnd.docker.distribution.events.v1+json"
            );
        }
    }
    // The filtered endpoint got the pushes only.
    wait_for("the pushes", Duration::from_secs(30), || {
        push_receiver.events().len() >= 4
    });
    std::thread::sleep(Duration::from_millis(300));
    let only_pushes: BTreeMap<_, _> = want
        .clone()
        .into_iter()
        .filter(|(k, _)| k.0 == "push")
        .collect();
    assert_eq!(tally(&push_receiver.events()), only_pushes);
    // Outside team/, it gets nothing.
    let got_before = push_receiver.events().len();

    // The receiver goes down; events wait on disk, and across a restart of berth.
    drop(receiver);
    push_pull_delete(&server, "other/app", &second, &auth);
    let queued = || {
        std::fs::read_dir(queue.join("all"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_str()
                    .unwrap()
                    .ends_with(".json")
            })
            .count()
    };
    let want_second = expected("other/app", &second);
    let n2: usize = want_second.values().sum();
    wait_for("the events on disk", Duration::from_secs(10), || {
        queued() == n2
    });
    server.signal(libc::SIGTERM);
    server.wait(Duration::from_secs(30));
    assert_eq!(queued(), n2, "events survive the restart");
    let server = Registry::start(&storage, &config);
    let receiver = Receiver::start(port, all.clone());
    wait_for("the queued events", Duration::from_secs(30), || {
        receiver.events().len() >= n + n2
    });
    std::thread::sleep(Duration::from_millis(500));
    let mut both = want;
    both.extend(want_second);
    assert_eq!(tally(&receiver.events()), both);
    // An event leaves the queue once its POST was answered: after the receiver has it.
    wait_for("the queue to empty", Duration::from_secs(30), || {
        queued() == 0
    });
    let ids: std::collections::BTreeSet<String> = receiver
        .events()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), n + n2, "every id once");
    assert_eq!(
        push_receiver.events().len(),
        got_before,
        "other/ is not team/*"
    );
    drop(server);
}

/// An endpoint that accepts a POST and never answers is given up on after its `timeout`, and
/// the event is sent again (after `backoff`) until the endpoint acknowledges it: once.
#[test]
fn a_hung_endpoint_times_out_and_gets_the_event_again() {
    let work = tempfile::tempdir().unwrap();
    let receiver = Receiver::hanging(1, 0, Arc::new(Mutex::new(Received::default())));
    let config = format!(
        r#"[notifications]
queue = {:?}
[[notifications.endpoints]]
name = "hangs"
url = "http://127.0.0.1:{}/events"
timeout = "1s"
backoff = "100ms"
max_backoff = "100ms"
"#,
        work.path().join("queue"),
        receiver.port
    );
    let storage = Storage::fs();
    let server = Registry::start(&storage, &config);
    let body = b"a blob for an endpoint that hangs";
    let d = Digest::sha256_of(body);
    let r = server.request(
        "POST",
        &format!("/v2/team/t/blobs/uploads/?digest={d}"),
        &[("Content-Type", "application/octet-stream")],
        body,
    );
    assert_eq!(r.status, 201);
    wait_for(
        "the event after the hung POST",
        Duration::from_secs(30),
        || !receiver.events().is_empty(),
    );
    assert_eq!(
        receiver.held.lock().unwrap().len(),
        1,
        "the first POST hung"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        tally(&receiver.events()),
        BTreeMap::from([(key("push", "team/t", &d, ""), 1)])
    );
}
