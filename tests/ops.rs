//! How operators run `berth serve`: JSON logs, the systemd unit in config/, and the registry's
//! container image (config/Dockerfile, built by scripts/image.sh) run by docker.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::*;

/// `[log] format = "json"` with `requests = true`: every line on stderr is one JSON object,
/// and each request has one with its id, method, path, status, bytes, duration and user.
#[test]
fn json_logs_a_line_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(Command::new(require("htpasswd")).args(["-Bbn", "alice", "alice-pw"]));
    let file = dir.path().join("htpasswd");
    std::fs::write(&file, out.stdout).unwrap();
    let storage = Storage::fs();
    let server = Registry::start(
        &storage,
        &format!(
            "[log]\nformat = \"json\"\nrequests = true\n[auth]\nhtpasswd = {file:?}\n\
             [[auth.rules]]\nusers = [\"alice\"]\nrepositories = [\"*\"]\nactions = [\"pull\"]\n"
        ),
    );
    let basic = format!("Basic {}", base64_encode(b"alice:alice-pw"));
    let auth = [("Authorization", basic.as_str())];
    assert_eq!(server.request("GET", "/v2/", &auth, b"").status, 200);
    let missing = server.request("GET", "/v2/team/app/manifests/1", &auth, b"");
    assert_eq!(missing.status, 404);
    assert_eq!(server.request("GET", "/v2/", &[], b"").status, 401);
    assert_eq!(server.request("HEAD", "/livez", &[], b"").status, 200);

    let deadline = Instant::now() + Duration::from_secs(10);
    let requests = loop {
        let lines = server.stderr.all();
        let objects: Vec<Value> = lines
            .iter()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object: {l}: {e}"))
            })
            .collect();
        for o in &objects {
            for key in ["time", "level", "message", "target"] {
                assert!(o[key].is_string(), "{key} in {o}");
            }
        }
        let requests: Vec<Value> = objects
            .into_iter()
            .filter(|o| o["message"] == "request")
            .collect();
        if requests.len() >= 4 || Instant::now() > deadline {
            break requests;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let seen: Vec<(&str, &str, u64, &str)> = requests
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap(),
                r["path"].as_str().unwrap(),
                r["status"].as_u64().unwrap(),
                r["user"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("GET", "/v2/", 200, "alice"),
            ("GET", "/v2/team/app/manifests/1", 404, "alice"),
            ("GET", "/v2/", 401, ""),
            ("HEAD", "/livez", 200, ""),
        ]
    );
    for (r, body) in
        requests
            .iter()
            .zip([Some(b"{}".len()), Some(missing.body.len()), None, Some(0)])
    {
        let id = r["request_id"].as_str().unwrap();
        assert_eq!(id.len(), 32, "{r}");
        assert!(r["duration_ms"].as_f64().unwrap() >= 0.0, "{r}");
        assert!(r["time"].as_str().unwrap().ends_with('Z'), "{r}");
        if let Some(n) = body {
            assert_eq!(r["bytes"].as_u64(), Some(n as u64), "{r}");
        }
    }
    let ids: std::collections::HashSet<&str> = requests
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), requests.len(), "request ids are unique");
    assert!(
        !server.stderr.all().join("\n").contains("alice-pw"),
        "no password in the log"
    );
}

/// config/berth.service passes `systemd-analyze verify` (with ExecStart at this build's
/// binary, since the unit names where the README installs it) and its sandbox rates "OK"
/// (exposure at most 2.0 of 10) in `systemd-analyze security`.
#[test]
fn the_systemd_unit_verifies_and_is_sandboxed() {
    let analyze = require("systemd-analyze");
    let unit =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/berth.service"))
            .unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/berth serve --config /etc/berth/registry.toml"));
    for line in [
        "User=berth",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/berth",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.service");
    let binary = std::fs::canonicalize(berth_bin()).unwrap();
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/berth", binary.to_str().unwrap()),
    )
    .unwrap();
    let verify = run(Command::new(&analyze).arg("verify").arg(&path));
    assert!(
        verify.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let security = run(Command::new(&analyze)
        .args(["security", "--offline=yes", "--no-pager", "--threshold=20"])
        .arg(&path));
    let text = String::from_utf8_lossy(&security.stdout);
    assert!(
        text.contains("Overall exposure level for berth.service"),
        "{text}"
    );
    // A unit that is not sandboxed is refused by the same check.
    let bare = dir.path().join("bare.service");
    std::fs::write(
        &bare,
        format!("[Service]\nExecStart={} serve\n", binary.display()),
    )
    .unwrap();
    let refused = Command::new(&analyze)
        .args(["security", "--offline=yes", "--no-pager", "--threshold=20"])
        .arg(&bare)
        .output()
        .unwrap();
    assert!(!refused.status.success());
}

/// A bridge of the test's own for a private dockerd (so `-p` publishes through docker's
/// proxy), deleted on drop.
struct Bridge {
    name: String,
}

impl Bridge {
    fn new() -> Bridge {
        let n = std::process::id() % 250 + 1;
        let name = format!("bimg{}", free_port());
        let ip = require("ip");
        run(Command::new(&ip).args(["link", "add", &name, "type", "bridge"]));
        let bridge = Bridge { name };
        run(Command::new(&ip).args([
            "addr",
            "add",
            &format!("10.213.{n}.1/24"),
            "dev",
            &bridge.name,
        ]));
        run(Command::new(&ip).args(["link", "set", &bridge.name, "up"]));
        bridge
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.name])
            .status();
    }
}

/// scripts/image.sh packages this build's berth with config/Dockerfile; `docker run -p
/// PORT:5000 -v VOLUME:/var/lib/berth IMAGE` serves a registry that skopeo pushes to and
/// pulls from, byte for byte, as the unprivileged user of the image, and the volume keeps
/// the store across a new container.
#[test]
fn the_registry_image_serves_pushes_under_docker() {
    let bridge = Bridge::new();
    let dockerd = Dockerd::start_with(&[format!("--bridge={}", bridge.name)]);
    let tag = format!("berth-test:{}", free_port());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/image.sh");
    let built = run(Command::new(&script)
        .arg(std::fs::canonicalize(berth_bin()).unwrap())
        .arg(&tag)
        .env(
            "DOCKER_HOST",
            format!("unix://{}", dockerd.socket.display()),
        ));
    assert!(String::from_utf8_lossy(&built.stdout).contains("sha256:"));
    let user = dockerd.ok(&["image", "inspect", "--format", "{{.Config.User}}", &tag]);
    assert_eq!(user.trim(), "10001:10001");

    let work = tempfile::tempdir().unwrap();
    let image = build_image(work.path(), 1, 50_000, 91);
    let volume = format!("berth-data-{}", free_port());
    let port = free_port();
    let start = || {
        let id = dockerd.ok(&[
            "run",
            "-d",
            "-p",
            &format!("127.0.0.1:{port}:5000"),
            "-v",
            &format!("{volume}:/var/lib/berth"),
            &tag,
        ]);
        let url = format!("http://127.0.0.1:{port}/v2/");
        let deadline = Instant::now() + Duration::from_secs(30);
        let curl = require("curl");
        let serving = || {
            Command::new(&curl)
                .args(["-sf", "-o", "/dev/null", &url])
                .status()
                .is_ok_and(|s| s.success())
        };
        while !serving() {
            assert!(
                Instant::now() < deadline,
                "the container did not serve within 30 s: {}",
                dockerd.ok(&["logs", id.trim()])
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        id.trim().to_string()
    };
    let first = start();
    skopeo_push(&image, &format!("127.0.0.1:{port}/team/app:1"));
    crate::gc::assert_pullable(&format!("127.0.0.1:{port}/team/app:1"), &image);
    dockerd.ok(&["rm", "-f", &first]);
    let second = start();
    crate::gc::assert_pullable(&format!("127.0.0.1:{port}/team/app:1"), &image);
    let logs = dockerd.cmd(&["logs", &second]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&logs.stderr).contains("listening on http://0.0.0.0:5000"),
        "{}",
        String::from_utf8_lossy(&logs.stderr)
    );
    dockerd.ok(&["rm", "-f", &second]);
    dockerd.ok(&["volume", "rm", &volume]);
    dockerd.ok(&["rmi", &tag]);
}

/// The example config/notifications.toml loads as documented.
#[test]
fn the_notifications_example_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/notifications.toml");
    let config = berth_registry::Config::load(&path).unwrap();
    assert_eq!(config.log.format, berth_registry::config::LogFormat::Json);
    assert!(config.log.requests);
    let n = config.notifications.unwrap();
    assert_eq!(
        n.queue.as_deref(),
        Some(Path::new("/var/lib/berth/notifications"))
    );
    let names: Vec<&str> = n.endpoints.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["audit", "deploy"]);
    let audit = &n.endpoints[0];
    assert_eq!(audit.headers["Authorization"], ["Bearer CHANGE-ME"]);
    assert_eq!(audit.max_backoff, Duration::from_secs(300));
    let deploy = &n.endpoints[1];
    assert_eq!(deploy.repositories, ["team/*"]);
    assert_eq!(deploy.ignore.actions, ["pull", "delete", "mount"]);
    // Bad values name the key.
    for (text, key) in [
        ("[log]\nformat = \"xml\"\n", "xml"),
        (
            "[[notifications.endpoints]]\nname = \"a\"\nurl = \"ftp://x\"\n",
            "must be http or https",
        ),
        (
            "[[notifications.endpoints]]\nname = \"a/b\"\nurl = \"http://x\"\n",
            "name",
        ),
        (
            "[[notifications.endpoints]]\nname = \"a\"\nurl = \"http://x\"\nignore = { actions = [\"get\"] }\n",
            "\"get\"",
        ),
    ] {
        let err = berth_registry::Config::parse(text, "x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{text:?}: {err}");
    }
}
