//! Helpers shared by the end-to-end tests: the `berth` binary with a private root, real peers
//! (CNCF distribution, a private dockerd) on free loopback ports, and test images built from
//! the static busybox.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_storage::Digest;
use serde_json::json;

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a program, panicking with its output if it fails.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A peer program that the tests need; missing is a failure, never a skip.
pub fn require(program: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/bin", "/sbin"] {
        let p = Path::new(dir).join(program);
        if p.exists() {
            return p;
        }
    }
    panic!("{program} is not installed: run scripts/test.sh, which installs the test peers");
}

/// The `berth` binary with its own root, HOME and config.
pub struct Berth {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl Default for Berth {
    fn default() -> Berth {
        Berth::new()
    }
}

impl Berth {
    pub fn new() -> Berth {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        Berth { dir, root }
    }

    pub fn with_root(root: PathBuf) -> Berth {
        Berth {
            dir: tempfile::tempdir().unwrap(),
            root,
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
        c.args(args)
            .env("BERTH_ROOT", &self.root)
            .env("HOME", self.dir.path())
            .env("DOCKER_CONFIG", self.dir.path().join("docker"))
            .env("BERTH_CONFIG", self.dir.path().join("config.toml"))
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_DATA_HOME")
            .stdin(Stdio::null());
        if !self.dir.path().join("config.toml").exists() {
            std::fs::write(self.dir.path().join("config.toml"), "").unwrap();
        }
        c
    }

    /// Runs berth; panics unless it succeeds; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = run(&mut self.cmd(args));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs berth expecting failure; returns (stdout, stderr).
    pub fn fails(&self, args: &[&str]) -> (String, String) {
        let out = self.cmd(args).output().unwrap();
        assert!(
            !out.status.success(),
            "berth {args:?} should have failed; stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    pub fn docker_config(&self, registry: &str, user: &str, pass: &str) {
        use std::io::Write;
        let dir = self.dir.path().join("docker");
        std::fs::create_dir_all(&dir).unwrap();
        let auth = base64_encode(format!("{user}:{pass}").as_bytes());
        let mut f = std::fs::File::create(dir.join("config.json")).unwrap();
        write!(f, "{}", json!({"auths": {registry: {"auth": auth}}})).unwrap();
    }
}

pub fn base64_encode(data: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on {port} within 30 s");
}

/// CNCF distribution (`docker-registry serve`) on a free loopback port, stopped on drop.
pub struct Distribution {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Distribution {
    pub fn start() -> Distribution {
        Distribution::start_with(None)
    }

    /// With `Some((user, password))`, requires htpasswd basic auth.
    pub fn start_with(auth: Option<(&str, &str)>) -> Distribution {
        let bin = require("docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((user, pass)) = auth {
            let htpasswd = require("htpasswd");
            let out = run(Command::new(htpasswd).args(["-Bbn", user, pass]));
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, out.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                file.display()
            ));
        }
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, config).unwrap();
        let mut child = Command::new(bin)
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(port, &mut child, "docker-registry");
        Distribution { port, dir, child }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test image as an OCI layout: busybox-static plus a file per extra layer.
pub struct TestImage {
    pub layout: PathBuf,
    pub config: Digest,
    pub manifest: Digest,
    pub layers: Vec<Digest>,
    pub diff_ids: Vec<Digest>,
}

fn sha256_file(p: &Path) -> Digest {
    Digest::sha256_of(&std::fs::read(p).unwrap())
}

/// Builds an OCI layout under `dir` with `extra` layers on top of busybox; each extra layer
/// holds `/data/N` of `extra_size` pseudo-random bytes. The tag in the layout is `latest`.
pub fn build_image(dir: &Path, extra: usize, extra_size: usize, seed: u8) -> TestImage {
    let busybox = require("busybox");
    let work = dir.join("work");
    let layout = dir.join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let mut tars = Vec::new();
    // Layer 0: busybox and sh.
    let rootfs = work.join("l0");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy(&busybox, rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    std::fs::write(rootfs.join("seed"), [seed]).unwrap();
    tars.push(rootfs);
    for i in 0..extra {
        let r = work.join(format!("l{}", i + 1));
        std::fs::create_dir_all(r.join("data")).unwrap();
        let mut x: u64 = 0x9e3779b97f4a7c15 ^ (seed as u64) << 8 ^ i as u64;
        let data: Vec<u8> = (0..extra_size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(r.join(format!("data/{i}")), data).unwrap();
        tars.push(r);
    }
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    let mut descs = Vec::new();
    for (i, r) in tars.iter().enumerate() {
        let tar = work.join(format!("l{i}.tar"));
        run(Command::new("tar")
            .arg("--sort=name")
            .arg("--mtime=@0")
            .arg("--owner=0")
            .arg("--group=0")
            .arg("-C")
            .arg(r)
            .arg("-cf")
            .arg(&tar)
            .arg("."));
        diff_ids.push(sha256_file(&tar));
        run(Command::new("gzip").arg("-1").arg("-n").arg("-k").arg(&tar));
        let gz = work.join(format!("l{i}.tar.gz"));
        let d = sha256_file(&gz);
        let size = std::fs::metadata(&gz).unwrap().len();
        std::fs::copy(&gz, layout.join("blobs/sha256").join(d.hex())).unwrap();
        descs.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": size}));
        layers.push(d);
    }
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": diff_ids.iter().enumerate().map(|(i, _)| json!({"created": "2024-01-02T03:04:05Z", "created_by": format!("layer {i}")})).collect::<Vec<_>>(),
    }))
    .unwrap();
    let config_digest = Digest::sha256_of(&config);
    std::fs::write(
        layout.join("blobs/sha256").join(config_digest.hex()),
        &config,
    )
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": descs,
    }))
    .unwrap();
    let manifest_digest = Digest::sha256_of(&manifest);
    std::fs::write(
        layout.join("blobs/sha256").join(manifest_digest.hex()),
        &manifest,
    )
    .unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
            "size": manifest.len(), "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}))
        .unwrap(),
    )
    .unwrap();
    TestImage {
        layout,
        config: config_digest,
        manifest: manifest_digest,
        layers,
        diff_ids,
    }
}

/// Copies a test image into a registry with skopeo (plain HTTP).
pub fn skopeo_push(image: &TestImage, dest: &str) {
    run(Command::new(require("skopeo")).args([
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        &format!("oci:{}:latest", image.layout.display()),
        &format!("docker://{dest}"),
    ]));
}

/// A private dockerd on its own socket and directories, stopped on drop.
pub struct Dockerd {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    child: Child,
}

impl Dockerd {
    pub fn start() -> Dockerd {
        let bin = require("dockerd");
        require("docker");
        // dockerd's state lives in short paths: unix sockets have a length limit.
        let dir = tempfile::Builder::new()
            .prefix("bd")
            .tempdir_in("/tmp")
            .unwrap();
        let socket = dir.path().join("d.sock");
        let log = std::fs::File::create(dir.path().join("dockerd.log")).unwrap();
        let mut child = Command::new(bin)
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--pidfile")
            .arg(dir.path().join("d.pid"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
                "--storage-driver=vfs",
            ])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let up = Command::new("docker")
                .arg("-H")
                .arg(format!("unix://{}", socket.display()))
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if up {
                break;
            }
            if let Ok(Some(s)) = child.try_wait() {
                panic!("dockerd exited: {s}");
            }
            assert!(
                Instant::now() < deadline,
                "dockerd did not start within 60 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Dockerd { dir, socket, child }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("docker");
        c.arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args)
            .env("DOCKER_CONFIG", self.dir.path().join("cfg"));
        c
    }

    pub fn ok(&self, args: &[&str]) -> String {
        String::from_utf8(run(&mut self.cmd(args)).stdout).unwrap()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        unsafe {
            libc_kill(self.child.id() as i32, 15);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// Chain ids of a stack of diff ids, as the snapshot directories are named.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::new();
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(p) => Digest::sha256_of(format!("{p} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}
