//! Helpers shared by the end-to-end tests:
//! - the `berth` binary with a private root, HOME and config (the client commands);
//! - `berth serve` on a free port over a chosen store, the filesystem or an S3 server, and plain
//!   HTTP/1.1 to speak to it (the registry);
//! - real peers (CNCF distribution, private dockerd and containerd) on free loopback ports;
//! - test images built from the static busybox, as image directories or OCI layouts;
//! - running peer programs with bounded waits.
//!
//! Everything a helper starts is stopped when its value drops, so a failing test leaves no
//! process behind. A missing peer is a failure, never a skip.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use berth_storage::testing::{self, S3Server};
use berth_storage::Digest;
use serde_json::json;
use sha2::{Digest as _, Sha256};

/// A free TCP port on 127.0.0.1 for a server that a test starts itself, one this process
/// never gave out before, from below the kernel's ephemeral range (`ip_local_port_range`).
/// The kernel hands ports of that range to every `bind` to port 0 and every outgoing
/// connection: a port bound and released there could be another test's server or
/// connection by the time this test's server binds it (or a refused port answer).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (low, span) = (10_000, ephemeral.saturating_sub(10_000));
    if span < 1_000 {
        return TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
    }
    // Each test process starts elsewhere in the range, and walks it.
    let start = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let port = (low + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span) as u16;
        // Each listener is closed before the next is tried.
        let free = |addr: &str| TcpListener::bind((addr, port)).is_ok();
        if free("127.0.0.1") && free("0.0.0.0") {
            return port;
        }
    }
    panic!("no free port in {low}..{}", low + span);
}

/// Runs a program within [`PEER_TIMEOUT`], panicking with its output if it fails.
pub fn run(cmd: &mut Command) -> Output {
    let desc = format!("{cmd:?}");
    let out = run_with_timeout(cmd, PEER_TIMEOUT);
    assert!(
        out.status.success(),
        "{desc} failed: {}\nstdout: {}\nstderr: {}",
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

/// A root filesystem in `rootfs`: the static busybox with every applet in `/bin`, `/etc/passwd`
/// and `/etc/group` with root and nobody, and the directories `dirs`. Tar it for an image.
pub fn busybox_rootfs(rootfs: &Path, dirs: &[&str]) {
    for d in ["bin", "etc"].iter().chain(dirs) {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    let busybox = require("busybox");
    std::fs::copy(&busybox, rootfs.join("bin/busybox")).unwrap();
    // The host's copy lists the applets: the new one may still be open for writing in a
    // child another test is forking (ETXTBSY).
    let list = run(Command::new(&busybox).arg("--list")).stdout;
    for applet in String::from_utf8_lossy(&list).lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
}

/// `rootfs` tarred beside it (`NAME.tar`, named after the image's repository) and imported
/// by `berth import` as `image`; returns the tar.
pub fn import_rootfs(b: &Berth, rootfs: &Path, image: &str) -> PathBuf {
    let repo = image.split(':').next().unwrap_or(image);
    let tar = rootfs.with_file_name(format!("{repo}.tar"));
    run(Command::new("tar")
        .arg("-C")
        .arg(rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    b.ok(&["import", tar.to_str().unwrap(), image]);
    tar
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
        self.cmd_in(None, args)
    }

    /// Like [`Berth::cmd`], run inside `netns` when given.
    ///
    /// The command is bounded even where a test runs it itself (`.output()`, `.status()`,
    /// `.spawn()`): it starts with an alarm a minute past [`PEER_TIMEOUT`], whose SIGALRM
    /// ends berth (an alarm outlives exec, so nsenter's berth keeps it; the monitors and
    /// containers berth forks do not inherit it). `ok`, `fails` and `bounded` end it sooner,
    /// with a message.
    pub fn cmd_in(&self, netns: Option<&NetNs>, args: &[&str]) -> Command {
        use std::os::unix::process::CommandExt;
        let mut c = match netns {
            Some(ns) => ns.exec(berth_bin()),
            None => Command::new(berth_bin()),
        };
        let alarm = PEER_TIMEOUT.as_secs() as libc::c_uint + 60;
        // SAFETY: alarm(2) is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            c.pre_exec(move || {
                libc::alarm(alarm);
                Ok(())
            });
        }
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
        let out = run_with_timeout(&mut self.cmd(args), PEER_TIMEOUT);
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
        let dir = tempfile::tempdir().unwrap();
        let mut extra = String::new();
        if let Some((user, pass)) = auth {
            let htpasswd = require("htpasswd");
            let out = run(Command::new(htpasswd).args(["-Bbn", user, pass]));
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, out.stdout).unwrap();
            extra = format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                file.display()
            );
        }
        Distribution::spawn(dir, &extra, false)
    }

    /// Logs every request (its access log) to `registry.log` in its directory; `extra` is
    /// YAML appended to its config (an `auth:` or `proxy:` section).
    pub fn start_logged(extra: &str) -> Distribution {
        Distribution::spawn(tempfile::tempdir().unwrap(), extra, true)
    }

    fn spawn(dir: tempfile::TempDir, extra: &str, log: bool) -> Distribution {
        let bin = require("docker-registry");
        let port = free_port();
        let config = format!(
            "version: 0.1\nlog:\n  level: {}\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{extra}",
            if log { "info" } else { "error" },
            dir.path().join("data").display()
        );
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, config).unwrap();
        let output = || match log {
            true => Stdio::from(std::fs::File::create(dir.path().join("registry.log")).unwrap()),
            false => Stdio::null(),
        };
        let mut child = Command::new(bin)
            .arg("serve")
            .arg(&cfg)
            .stdout(output())
            .stderr(output())
            .spawn()
            .unwrap();
        wait_for_port(port, &mut child, "docker-registry");
        Distribution { port, dir, child }
    }

    /// What it logged so far (with [`Distribution::start_logged`]).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Stops it (SIGKILL), as an upstream that goes away.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

impl TestImage {
    /// Writes the image's OCI layout as one tar at `tar` (what `berth load` reads); returns
    /// `tar`.
    pub fn layout_tar(&self, tar: &Path) -> PathBuf {
        run(Command::new("tar")
            .arg("-C")
            .arg(&self.layout)
            .arg("-cf")
            .arg(tar)
            .arg("."));
        tar.to_path_buf()
    }
}

/// Builds an OCI layout under `dir` with `extra` layers on top of busybox; each extra layer
/// holds `/data/N` of `extra_size` pseudo-random bytes. The tag in the layout is `latest`.
pub fn build_image(dir: &Path, extra: usize, extra_size: usize, seed: u8) -> TestImage {
    build_image_compressed(dir, extra, extra_size, seed, &[])
}

/// How a test image's layer blob is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
    Plain,
}

/// [`build_image`] with layer `i` compressed as `compression[i]` (gzip beyond the slice).
pub fn build_image_compressed(
    dir: &Path,
    extra: usize,
    extra_size: usize,
    seed: u8,
    compression: &[Compression],
) -> TestImage {
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
        let (blob, media_type) = match compression.get(i).copied().unwrap_or(Compression::Gzip) {
            Compression::Gzip => {
                run(Command::new("gzip").arg("-1").arg("-n").arg("-k").arg(&tar));
                (
                    work.join(format!("l{i}.tar.gz")),
                    "application/vnd.oci.image.layer.v1.tar+gzip",
                )
            }
            Compression::Zstd => {
                run(Command::new(require("zstd")).arg("-q").arg("-k").arg(&tar));
                (
                    work.join(format!("l{i}.tar.zst")),
                    "application/vnd.oci.image.layer.v1.tar+zstd",
                )
            }
            Compression::Plain => (tar.clone(), "application/vnd.oci.image.layer.v1.tar"),
        };
        let d = sha256_file(&blob);
        let size = std::fs::metadata(&blob).unwrap().len();
        std::fs::copy(&blob, layout.join("blobs/sha256").join(d.hex())).unwrap();
        descs.push(json!({"mediaType": media_type, "digest": d, "size": size}));
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

/// Copies `reference` out of a registry (plain HTTP) with skopeo into a `dir:` layout at
/// `dir`: `manifest.json` and a file per blob, named by its hex.
pub fn skopeo_copy_to_dir(reference: &str, dir: &Path) {
    run_ok(Command::new(require("skopeo")).args([
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{reference}"),
        &format!("dir:{}", dir.display()),
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
        Dockerd::start_in(None, &[])
    }

    /// With extra daemon flags (`--registry-mirror=…`). Its proxy for registries other than
    /// 127.0.0.1 is a closed loopback port, so a fallback past the mirror goes nowhere.
    pub fn start_with(flags: &[String]) -> Dockerd {
        Dockerd::start_in(None, flags)
    }

    /// With a network namespace, dockerd runs inside it (its registries are the namespace's
    /// addresses, reached without the proxy) and sees `certs_d()` as `/etc/docker/certs.d`, so
    /// a test can give it a CA for a registry without touching the host's docker configuration.
    pub fn start_in(netns: Option<&NetNs>, flags: &[String]) -> Dockerd {
        let bin = require("dockerd");
        require("docker");
        // dockerd's state lives in short paths: unix sockets have a length limit.
        let dir = tempfile::Builder::new()
            .prefix("bd")
            .tempdir_in("/tmp")
            .unwrap();
        let socket = dir.path().join("d.sock");
        let log = std::fs::File::create(dir.path().join("dockerd.log")).unwrap();
        std::fs::create_dir_all(dir.path().join("certs.d")).unwrap();
        let mut command = match netns {
            None => Command::new(bin),
            Some(ns) => {
                let mut c = ns.exec("unshare");
                c.args(["-m", "sh", "-c"])
                    .arg(
                        "mkdir -p /etc/docker/certs.d && mount --bind \"$0\" /etc/docker/certs.d \
                         && exec \"$@\"",
                    )
                    .arg(dir.path().join("certs.d"))
                    .arg(bin);
                c
            }
        };
        let mut child = command
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--pidfile")
            .arg(dir.path().join("d.pid"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            // No bridge unless the test brings one of its own (`--bridge=NAME`).
            .args((!flags.iter().any(|f| f.starts_with("--bridge="))).then_some("--bridge=none"))
            .args([
                "--iptables=false",
                "--ip-masq=false",
                "--storage-driver=vfs",
            ])
            .args(flags)
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("HTTP_PROXY", "http://127.0.0.1:9")
            .env(
                "NO_PROXY",
                match netns {
                    Some(ns) => format!("127.0.0.1,localhost,{}", ns.addr),
                    None => "127.0.0.1,localhost".to_string(),
                },
            )
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

    /// What dockerd reads as `/etc/docker/certs.d` when started in a namespace.
    pub fn certs_d(&self) -> PathBuf {
        self.dir.path().join("certs.d")
    }
}

/// A network namespace of the test's own, with `lo` up and `addr` on it, deleted on drop.
pub struct NetNs {
    pub name: String,
    pub addr: String,
}

impl NetNs {
    pub fn new(addr: &str) -> NetNs {
        let name = format!("berth-{}-{}", std::process::id(), free_port());
        run(Command::new(require("ip")).args(["netns", "add", &name]));
        let ns = NetNs {
            name,
            addr: addr.to_string(),
        };
        run(ns.exec("ip").args(["link", "set", "lo", "up"]));
        run(ns
            .exec("ip")
            .args(["addr", "add", &format!("{addr}/32"), "dev", "lo"]));
        ns
    }

    /// A command that runs `program` inside the namespace. `nsenter` enters the network
    /// namespace only; `ip netns exec` would also mount a fresh /sys, hiding the cgroups that
    /// dockerd needs.
    pub fn exec(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(require("nsenter"));
        c.arg(format!("--net=/run/netns/{}", self.name))
            .arg(program);
        c
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A certificate authority of the test's own and a server certificate it signed for
/// `localhost` and the given IP addresses, as PEM files in a temporary directory.
pub struct TestCa {
    pub dir: tempfile::TempDir,
    /// The CA certificate (what clients are told to trust).
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    pub fn new(ips: &[&str]) -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "berth test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        for ip in ips {
            params
                .subject_alt_names
                .push(SanType::IpAddress(ip.parse().unwrap()));
        }
        let cert = params.signed_by(&key, &issuer).unwrap();
        let ca = dir.path().join("ca.crt");
        std::fs::write(&ca, ca_cert.pem()).unwrap();
        let cert_path = dir.path().join("server.crt");
        std::fs::write(&cert_path, cert.pem()).unwrap();
        let key_path = dir.path().join("server.key");
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        TestCa {
            dir,
            ca,
            cert: cert_path,
            key: key_path,
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        unsafe {
            libc_kill(self.child.id() as i32, 15);
        }
        if wait_child(&mut self.child, Duration::from_secs(20)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // dockerd leaves its data root bind-mounted onto itself: undo that so the directory
        // can be removed.
        unmount_under(self.dir.path());
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

/// How long any one command a test runs, berth or a peer, may take before the test fails
/// naming it (`run`, `run_ok`, `Berth::ok`/`fails`, the peers' helpers, `bounded`): far above
/// what any command takes here, far below CI's limit, so a hang is a failed test, not a
/// stalled suite.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(300);

/// The `berth` binary under test: cargo's, unless `BERTH_TEST_BINARY` names a copy of it
/// (worktrees that share one target directory overwrite each other's `target/debug/berth`).
pub fn berth_bin() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("BERTH_TEST_BINARY")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_berth").to_string())
    })
}

/// A tokio runtime that outlives every test: it drives the in-process S3 server.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// Where a registry under test keeps its data: a directory or an S3 bucket, and whatever keeps
/// that alive.
pub struct Storage {
    pub name: &'static str,
    pub toml: String,
    pub dir: Option<tempfile::TempDir>,
    pub s3: Option<S3Server>,
    /// The S3 key prefix the config names.
    s3_prefix: String,
}

impl Storage {
    pub fn fs() -> Storage {
        let dir = tempfile::tempdir().unwrap();
        Storage {
            name: "filesystem",
            toml: format!(
                "[storage]\nbackend = \"filesystem\"\nroot = {:?}\n",
                dir.path().to_str().unwrap()
            ),
            dir: Some(dir),
            s3: None,
            s3_prefix: String::new(),
        }
    }

    /// moto's S3 server, a child process.
    pub fn moto() -> Storage {
        Storage::s3("moto", runtime().block_on(testing::moto()), "berth")
    }

    /// s3s-fs, in this process. It turns keys into long file names: keep repository names short.
    pub fn s3s() -> Storage {
        Storage::s3("s3s", runtime().block_on(testing::s3s()), "")
    }

    fn s3(name: &'static str, server: S3Server, prefix: &str) -> Storage {
        let c = server.config(prefix);
        let toml = format!(
            "[storage]\nbackend = \"s3\"\nbucket = {:?}\nendpoint = {:?}\nregion = \"us-east-1\"\n\
             prefix = {:?}\npath_style = true\naccess_key_id = {:?}\nsecret_access_key = {:?}\n",
            c.bucket,
            c.endpoint.unwrap(),
            c.prefix,
            c.access_key_id.unwrap(),
            c.secret_access_key.unwrap(),
        );
        Storage {
            name,
            toml,
            dir: None,
            s3: Some(server),
            s3_prefix: prefix.to_string(),
        }
    }

    /// Every key the store holds under `prefix`, read from the storage itself (the file
    /// system's temporary files are not keys).
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let backend = self.backend();
        runtime().block_on(async {
            berth_storage::backend::list_all(&*backend, prefix)
                .await
                .unwrap()
        })
    }

    /// Writes each `(key, bytes)` straight into the storage, a few at a time.
    pub fn put_all(&self, objects: Vec<(String, Vec<u8>)>) {
        let backend: Arc<dyn berth_storage::backend::Backend> = self.backend().into();
        runtime().block_on(async {
            let mut writes = tokio::task::JoinSet::new();
            for (key, data) in objects {
                if writes.len() >= 32 {
                    writes.join_next().await.unwrap().unwrap();
                }
                let backend = backend.clone();
                writes.spawn(async move { backend.put(&key, data.into()).await.unwrap() });
            }
            while let Some(done) = writes.join_next().await {
                done.unwrap();
            }
        });
    }

    /// The store's backend, as `berth serve` opens it (the file system's without fsync).
    fn backend(&self) -> Box<dyn berth_storage::backend::Backend> {
        match (&self.dir, &self.s3) {
            (Some(dir), _) => Box::new(berth_storage::FsBackend::new(dir.path(), false).unwrap()),
            (None, Some(s3)) => {
                Box::new(berth_storage::S3Backend::new(&s3.config(&self.s3_prefix)).unwrap())
            }
            (None, None) => unreachable!("a storage is a directory or a bucket"),
        }
    }

    /// The storage of each kind the peer tests run on.
    pub fn each() -> Vec<fn() -> Storage> {
        vec![Storage::fs, Storage::moto]
    }
}

/// Lines a child wrote to stderr so far, collected by a thread.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    pub fn collect(self, from: impl Read + Send + 'static) -> Lines {
        let lines = self.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(from).lines() {
                let Ok(line) = line else { break };
                lines.0.lock().unwrap().push(line);
            }
        });
        self
    }

    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Waits until a line contains `needle`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.all().iter().any(|l| l.contains(needle)) {
            assert!(
                Instant::now() < deadline,
                "no line with {needle:?} within {timeout:?}; got:\n{}",
                self.all().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A running `berth serve`, killed when dropped.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
    pub stderr: Lines,
    _config: Option<tempfile::NamedTempFile>,
}

impl Registry {
    /// `berth serve` on a free loopback port with the given storage and `[server]` lines.
    pub fn start(storage: &Storage, server: &str) -> Registry {
        Registry::start_in(storage, server, None, "127.0.0.1:0")
    }

    /// `berth serve` listening on `listen`, inside `netns` when given. `config` is the text of
    /// the `[server]` table, and may go on with further tables (`[auth]`, `[tls]`).
    pub fn start_in(
        storage: &Storage,
        config: &str,
        netns: Option<&NetNs>,
        listen: &str,
    ) -> Registry {
        let server = config;
        let mut config = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        write!(config, "[server]\n{server}\n{}", storage.toml).unwrap();
        let path = config.path().to_path_buf();
        Registry::serve(
            &[OsStr::new("--config"), path.as_os_str()],
            Some(config),
            netns,
            listen,
        )
    }

    /// `berth serve --root DIR` (a store directory, e.g. a client's root) on a free loopback
    /// port, with the default configuration.
    pub fn serve_root(root: &Path) -> Registry {
        Registry::serve(
            &[OsStr::new("--root"), root.as_os_str()],
            None,
            None,
            "127.0.0.1:0",
        )
    }

    fn serve(
        args: &[&OsStr],
        config: Option<tempfile::NamedTempFile>,
        netns: Option<&NetNs>,
        listen: &str,
    ) -> Registry {
        let mut cmd = match netns {
            Some(ns) => ns.exec(berth_bin()),
            None => Command::new(berth_bin()),
        };
        cmd.arg("serve").args(args).args(["--listen", listen]);
        let (child, addr, stderr) = spawn_serving(cmd);
        Registry {
            child,
            addr,
            stderr,
            _config: config,
        }
    }

    pub fn pid(&self) -> libc::pid_t {
        self.child.id() as libc::pid_t
    }

    pub fn signal(&self, sig: libc::c_int) {
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0, "kill berth");
    }

    /// Waits for the process to exit by itself.
    pub fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        wait_child(&mut self.child, timeout)
            .unwrap_or_else(|| panic!("berth serve did not exit within {timeout:?}"))
    }

    /// Kills the process (SIGKILL: no chance to tidy up) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        request(&self.addr, method, path, headers, body)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts a `berth serve` command and waits for its `listening on ADDR` line.
pub fn spawn_serving(mut cmd: Command) -> (Child, String, Lines) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting berth serve");
    let stderr = Lines::default().collect(child.stderr.take().unwrap());
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.strip_prefix("listening on ") {
                let _ = tx.send(addr.trim().to_string());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(addr) => (child, addr, stderr),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "berth serve did not start; stderr:\n{}",
                stderr.all().join("\n")
            );
        }
    }
}

fn wait_child(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a command to completion within `timeout`, capturing its output.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    run_with_input(cmd, None, timeout)
}

/// Runs a command to completion within `timeout`, with `input` on its stdin (else none);
/// panics if it does not end in time (see [`bounded`]).
pub fn run_with_input(cmd: &mut Command, input: Option<&[u8]>, timeout: Duration) -> Output {
    bounded(cmd, input, timeout).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs a command to completion within `timeout`, with `input` on its stdin (else none), and
/// captures its output. It runs in a process group of its own: past `timeout` the group is
/// killed (SIGKILL) and the error names the command, its arguments and what it printed so far.
/// Its output must also reach its end by then: a process it left behind that holds the pipes
/// open is an error too (its group is killed). For `Drop`s, which must not panic, use this
/// directly; elsewhere [`run_with_input`].
pub fn bounded(
    cmd: &mut Command,
    input: Option<&[u8]>,
    timeout: Duration,
) -> Result<Output, String> {
    use std::os::unix::process::CommandExt;
    let deadline = Instant::now() + timeout;
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("{desc}: {e} (the README's test command installs every peer)"));
    // Written from its own thread, after the readers start: a child that fills its output pipe
    // before reading all of its input would otherwise wait on us while we wait on it.
    // The writer is not joined: a child that exits without reading everything ends it with
    // EPIPE, and a grandchild that keeps stdin open must not hang the test past its timeout.
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let collect = |mut from: Box<dyn Read + Send>| {
        let got = Arc::new(Mutex::new(Vec::new()));
        let to = got.clone();
        let done = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match from.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => to.lock().unwrap().extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        });
        (got, done)
    };
    let (out, out_done) = collect(Box::new(child.stdout.take().unwrap()));
    let (err, err_done) = collect(Box::new(child.stderr.take().unwrap()));
    let status = wait_child(
        &mut child,
        deadline.saturating_duration_since(Instant::now()),
    );
    while !(out_done.is_finished() && err_done.is_finished()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let taken = |b: &Arc<Mutex<Vec<u8>>>| std::mem::take(&mut *b.lock().unwrap());
    match status {
        Some(status) if out_done.is_finished() && err_done.is_finished() => Ok(Output {
            status,
            stdout: taken(&out),
            stderr: taken(&err),
        }),
        _ => {
            let pid = child.id() as i32;
            // SAFETY: kill(2) on the group this child leads, then on the child itself.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
                libc::kill(pid, libc::SIGKILL);
            }
            let _ = child.wait();
            let what = match status {
                None => "did not finish".to_string(),
                Some(s) => format!("ended ({s}) but what it started still held its output open"),
            };
            Err(format!(
                "{desc} {what} within {timeout:?}: killed with its process group\n\
                 stdout so far:\n{}\nstderr so far:\n{}",
                String::from_utf8_lossy(&taken(&out)),
                String::from_utf8_lossy(&taken(&err)),
            ))
        }
    }
}

/// Runs a peer command that must succeed; returns its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let desc = format!("{cmd:?}");
    let out = run_with_timeout(cmd, PEER_TIMEOUT);
    assert!(
        out.status.success(),
        "{desc} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A response read off the wire.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends the head of an HTTP/1.1 request (`Connection: close`); the caller sends the body.
pub fn send_head(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    len: usize,
) -> TcpStream {
    try_send_head(addr, method, path, headers, len).expect("connect to berth")
}

fn try_send_head(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    len: usize,
) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.set_write_timeout(Some(Duration::from_secs(60)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {len}\r\n\r\n"));
    stream.write_all(head.as_bytes())?;
    Ok(stream)
}

/// Reads a whole response from a `Connection: close` stream.
pub fn read_response(stream: TcpStream, method: &str) -> Response {
    try_read_response(stream, method).unwrap_or_else(|e| panic!("reading the response: {e}"))
}

fn try_read_response(mut stream: TcpStream, method: &str) -> std::io::Result<Response> {
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            bad(format!(
                "no response head in {:?}",
                String::from_utf8_lossy(&raw)
            ))
        })?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("no status in {head:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked && method != "HEAD" {
        body = dechunk(&body).ok_or_else(|| bad("a chunked body cut short".to_string()))?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// The body of a chunked response, or None where it is cut short or malformed.
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(data.get(..line_end)?).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = data.get(line_end + 2..)?;
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// One plain HTTP/1.1 request to `addr` (`127.0.0.1:PORT`).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    try_request(addr, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path} at {addr}: {e}"))
}

/// [`request`], with an error where the server cannot be reached, goes away or answers no
/// HTTP (for tests that kill it).
pub fn try_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut stream = try_send_head(addr, method, path, headers, body.len())?;
    stream.write_all(body)?;
    try_read_response(stream, method)
}

/// An OCI image written as a layout directory: three gzip layers of real files, a config and
/// a manifest, the way a build tool would leave it.
pub struct OciImage {
    pub layout: PathBuf,
    pub manifest: Vec<u8>,
    pub config: Vec<u8>,
    /// Compressed layer blobs, bottom first.
    pub layers: Vec<Vec<u8>>,
}

impl OciImage {
    pub fn manifest_digest(&self) -> String {
        digest_of(&self.manifest)
    }

    /// Every blob the manifest references, by digest: config and layers.
    pub fn blobs(&self) -> Vec<(String, Vec<u8>)> {
        let mut v = vec![(digest_of(&self.config), self.config.clone())];
        v.extend(self.layers.iter().map(|l| (digest_of(l), l.clone())));
        v
    }
}

/// Writes a 3-layer image (busybox, then two layers of files) as an OCI layout at `dir`, its
/// manifest tagged `tag` in `index.json`.
pub fn oci_image(dir: &Path, tag: &str) -> OciImage {
    let work = tempfile::tempdir().unwrap();
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for i in 0..3 {
        let root = work.path().join(format!("layer{i}"));
        match i {
            0 => {
                std::fs::create_dir_all(root.join("bin")).unwrap();
                std::fs::copy("/bin/busybox", root.join("bin/busybox"))
                    .expect("/bin/busybox (Debian's busybox-static) must be installed");
            }
            1 => {
                std::fs::create_dir_all(root.join("etc")).unwrap();
                std::fs::write(root.join("etc/berth-e2e"), "layer one\n").unwrap();
            }
            _ => {
                std::fs::create_dir_all(root.join("data")).unwrap();
                let noise: Vec<u8> = (0..300_000u32)
                    .map(|n| (n.wrapping_mul(2654435761) >> 13) as u8)
                    .collect();
                std::fs::write(root.join("data/noise"), noise).unwrap();
            }
        }
        let tar = work.path().join(format!("layer{i}.tar"));
        run_ok(
            Command::new("tar")
                .args([
                    "--sort=name",
                    "--mtime=@0",
                    "--owner=0",
                    "--group=0",
                    "--numeric-owner",
                ])
                .arg("-C")
                .arg(&root)
                .arg("-cf")
                .arg(&tar)
                .arg("."),
        );
        let plain = std::fs::read(&tar).unwrap();
        diff_ids.push(digest_of(&plain));
        run_ok(Command::new("gzip").args(["-n", "-f"]).arg(&tar));
        layers.push(std::fs::read(work.path().join(format!("layer{i}.tar.gz"))).unwrap());
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/busybox", "sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "berth e2e"}],
    }))
    .unwrap();
    let descriptor = |media: &str, blob: &[u8]| serde_json::json!({"mediaType": media, "digest": digest_of(blob), "size": blob.len()});
    let manifest = serde_json::to_vec_pretty(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
        "layers": layers
            .iter()
            .map(|l| descriptor("application/vnd.oci.image.layer.v1.tar+gzip", l))
            .collect::<Vec<_>>(),
    }))
    .unwrap();
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    for blob in layers.iter().chain([&config, &manifest]) {
        std::fs::write(blobs.join(sha256_hex(blob)), blob).unwrap();
    }
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut index_entry = descriptor("application/vnd.oci.image.manifest.v1+json", &manifest);
    index_entry["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": tag});
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [index_entry]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    OciImage {
        layout: dir.to_path_buf(),
        manifest,
        config,
        layers,
    }
}

/// The layout of `image` as an OCI archive (a tar of the layout) at `path`, the form
/// `ctr images import` reads.
pub fn oci_archive(image: &OciImage, path: &Path) -> PathBuf {
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&image.layout)
            .arg("-cf")
            .arg(path)
            .args(["oci-layout", "index.json", "blobs"]),
    );
    path.to_path_buf()
}

/// A private peer daemon (dockerd, containerd), stopped with SIGTERM (then SIGKILL) on drop.
pub struct Daemon {
    pub name: &'static str,
    child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn spawn(name: &'static str, cmd: &mut Command, log: PathBuf) -> Daemon {
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting {name}: {e} (the README's test command installs it)")
            });
        Daemon { name, child, log }
    }

    /// Waits until `ready` succeeds, failing with the daemon's log when it never does.
    pub fn wait_ready(&mut self, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while !ready() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("{} exited ({status}):\n{}", self.name, self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready in time:\n{}",
                self.name,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        if wait_child(&mut self.child, Duration::from_secs(30)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Detaches every mount at or below `dir`, deepest first: what a daemon left behind.
pub fn unmount_under(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let c = std::ffi::CString::new(p).unwrap();
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// A private podman: its own root and run directories, vfs storage.
pub struct Podman {
    pub dir: tempfile::TempDir,
}

impl Podman {
    pub fn new() -> Podman {
        Podman {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// podman with this instance's storage, and its registries.conf when one was written.
    pub fn command(&self, args: &[&str]) -> Command {
        let d = self.dir.path();
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("run"))
            .args(["--storage-driver", "vfs", "--events-backend", "file"])
            .args(["--cgroup-manager", "cgroupfs"])
            .args(args);
        let conf = d.join("registries.conf");
        if conf.exists() {
            c.env("CONTAINERS_REGISTRIES_CONF", conf);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> String {
        run_ok(&mut self.command(args))
    }

    pub fn inspect(&self, image: &str, format: &str) -> String {
        self.run(&["image", "inspect", "--format", format, image])
            .trim()
            .to_string()
    }
}

/// A private containerd with its own root, state and sockets.
pub struct Containerd {
    daemon: Option<Daemon>,
    pub dir: tempfile::TempDir,
}

impl Drop for Containerd {
    fn drop(&mut self) {
        drop(self.daemon.take());
        unmount_under(self.dir.path());
    }
}

impl Containerd {
    pub fn start() -> Containerd {
        let dir = tempfile::Builder::new()
            .prefix("bc")
            .tempdir_in("/tmp")
            .unwrap();
        let d = dir.path().display();
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{d}/c.sock\"\n[ttrpc]\n  address = \"{d}/c.sock.ttrpc\"\n\
                 [debug]\n  address = \"{d}/debug.sock\"\n"
            ),
        )
        .unwrap();
        let mut daemon = Daemon::spawn(
            "containerd",
            Command::new("containerd").arg("--config").arg(&config),
            dir.path().join("containerd.log"),
        );
        let sock = dir.path().join("c.sock");
        daemon.wait_ready(|| {
            run_with_timeout(
                Command::new("ctr").arg("-a").arg(&sock).arg("version"),
                Duration::from_secs(30),
            )
            .status
            .success()
        });
        Containerd {
            daemon: Some(daemon),
            dir,
        }
    }

    pub fn ctr(&self, args: &[&str]) -> String {
        run_ok(
            Command::new("ctr")
                .arg("-a")
                .arg(self.dir.path().join("c.sock"))
                .args(["-n", "berth-e2e"])
                .args(args),
        )
    }

    /// Every image's name and target digest.
    pub fn images(&self) -> BTreeMap<String, String> {
        self.ctr(&["images", "ls"])
            .lines()
            .skip(1)
            .filter_map(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                (cols.len() > 3).then(|| (cols[0].to_string(), cols[2].to_string()))
            })
            .collect()
    }
}

/// What [`FlakyProxy`] does to the first request whose request line contains a needle.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status (and `Retry-After: 0`) instead of asking the registry.
    Status(u16),
    /// Pass the registry's answer on, but close the connection after this many bytes of it.
    Cut(usize),
}

/// A loopback HTTP proxy in front of a registry that fails chosen requests, as a flaky
/// network or an overloaded registry would. Each request travels on a connection of its own
/// (the proxy asks the registry to close after answering), so every request is seen and
/// recorded. Stops on drop.
pub struct FlakyProxy {
    /// `127.0.0.1:PORT`
    pub addr: String,
    /// The head of every request received, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl FlakyProxy {
    /// Proxies to `upstream` (`127.0.0.1:PORT`); each fault applies once, to the first
    /// request whose request line contains its needle.
    pub fn start(upstream: &str, faults: Vec<(&str, Fault)>) -> FlakyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let faults: Arc<Mutex<Vec<(String, Fault)>>> = Arc::new(Mutex::new(
            faults
                .into_iter()
                .map(|(n, f)| (n.to_string(), f))
                .collect(),
        ));
        let (upstream, seen, stopped) = (upstream.to_string(), requests.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (upstream, seen, faults) = (upstream.clone(), seen.clone(), faults.clone());
                std::thread::spawn(move || {
                    let _ = FlakyProxy::serve(conn, &upstream, &seen, &faults);
                });
            }
        });
        FlakyProxy {
            addr,
            requests,
            stop,
        }
    }

    fn serve(
        mut client: TcpStream,
        upstream: &str,
        seen: &Mutex<Vec<String>>,
        faults: &Mutex<Vec<(String, Fault)>>,
    ) -> std::io::Result<()> {
        client.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if client.read(&mut byte)? == 0 {
                return Ok(());
            }
            head.push(byte[0]);
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        seen.lock().unwrap().push(text.clone());
        let line = text.lines().next().unwrap_or_default().to_string();
        let fault = {
            let mut faults = faults.lock().unwrap();
            let i = faults.iter().position(|(n, _)| line.contains(n.as_str()));
            i.map(|i| faults.remove(i).1)
        };
        if let Some(Fault::Status(code)) = fault {
            let answer = format!(
                "HTTP/1.1 {code} Injected\r\nContent-Length: 0\r\nRetry-After: 0\r\nConnection: close\r\n\r\n"
            );
            client.write_all(answer.as_bytes())?;
            return Ok(());
        }
        let mut rewritten: String = text
            .trim_end_matches("\r\n")
            .split("\r\n")
            .filter(|h| !h.to_ascii_lowercase().starts_with("connection:"))
            .map(|h| format!("{h}\r\n"))
            .collect();
        rewritten.push_str("Connection: close\r\n\r\n");
        let mut registry = TcpStream::connect(upstream)?;
        registry.write_all(rewritten.as_bytes())?;
        // The request body (if any) flows on while the answer comes back.
        let (mut from_client, mut to_registry) = (client.try_clone()?, registry.try_clone()?);
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from_client, &mut to_registry);
        });
        let limit = match fault {
            Some(Fault::Cut(n)) => n,
            _ => usize::MAX,
        };
        let mut sent = 0;
        let mut buf = vec![0u8; 64 << 10];
        while sent < limit {
            let n = registry.read(&mut buf)?;
            if n == 0 {
                break;
            }
            let n = n.min(limit - sent);
            client.write_all(&buf[..n])?;
            sent += n;
        }
        let _ = client.shutdown(std::net::Shutdown::Both);
        let _ = registry.shutdown(std::net::Shutdown::Both);
        Ok(())
    }

    /// The recorded request heads whose request line contains `needle`.
    pub fn seen(&self, needle: &str) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.lines().next().is_some_and(|l| l.contains(needle)))
            .cloned()
            .collect()
    }
}

impl Drop for FlakyProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

/// Every file of a store directory, modified two hours ago: content that no push in flight
/// can be waiting for.
pub fn backdate(root: &Path) {
    run(Command::new("find").arg(root).args([
        "-type",
        "f",
        "-exec",
        "touch",
        "-d",
        "2 hours ago",
        "{}",
        "+",
    ]));
}

/// A block device this host's root can open for reading, as `(/dev path, major, minor)`:
/// the root file system's disk when it can (some virtual machines refuse even root), else
/// the first loop device. What a container must not reach without `--device`.
pub fn openable_block_device() -> (String, u32, u32) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let root = std::fs::metadata("/").unwrap().dev();
    let root_disk = std::fs::read_to_string(format!(
        "/sys/dev/block/{}:{}/uevent",
        libc::major(root),
        libc::minor(root)
    ))
    .ok()
    .and_then(|u| {
        u.lines()
            .find_map(|l| l.strip_prefix("DEVNAME="))
            .map(|n| format!("/dev/{n}"))
    });
    let loops = (0..8).map(|n| format!("/dev/loop{n}"));
    for path in root_disk.into_iter().chain(loops) {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.file_type().is_block_device() && std::fs::File::open(&path).is_ok() {
            let rdev = meta.rdev();
            return (path, libc::major(rdev), libc::minor(rdev));
        }
    }
    panic!("no block device this host can open (neither the root disk nor /dev/loop0-7)");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(pid_file: &Path) -> bool {
        let pid: i32 = std::fs::read_to_string(pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // SAFETY: signal 0 only asks whether the process exists.
        unsafe { libc::kill(pid, 0) == 0 }
    }

    /// A command past its bound is an error that names it and shows what it printed; it and
    /// what it started in its process group are killed. One that ends but leaves a process
    /// holding its output open is bounded the same way.
    #[test]
    fn a_hung_command_is_an_error_with_its_output_and_its_group_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        for (script, what) in [
            (
                "echo before; echo err >&2; sleep 600 & echo $! > \"$0\"; wait",
                "did not finish",
            ),
            (
                "echo before; echo err >&2; sleep 600 & echo $! > \"$0\"",
                "still held its output",
            ),
        ] {
            let pid = dir.path().join("pid");
            let started = Instant::now();
            let e = bounded(
                Command::new("sh").args(["-c", script]).arg(&pid),
                None,
                Duration::from_secs(1),
            )
            .unwrap_err();
            assert!(started.elapsed() < Duration::from_secs(30), "{e}");
            assert!(e.contains("\"sh\" \"-c\"") && e.contains(what), "{e}");
            assert!(e.contains("stdout so far:\nbefore\n"), "{e}");
            assert!(e.contains("stderr so far:\nerr\n"), "{e}");
            let deadline = Instant::now() + Duration::from_secs(10);
            while alive(&pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(!alive(&pid), "the command's sleep outlived it");
        }
        let done = bounded(
            Command::new("sh").args(["-c", "cat; echo end >&2"]),
            Some(b"in"),
            Duration::from_secs(60),
        )
        .unwrap();
        assert!(done.status.success());
        assert_eq!(
            (&done.stdout[..], &done.stderr[..]),
            (&b"in"[..], &b"end\n"[..])
        );
    }
}
