//! Rootless berth, run for real as an ordinary user: each test creates a user of its own
//! (`useradd`, with ranges in /etc/subuid and /etc/subgid), runs `berth` as that user through
//! `runuser`, and removes the user, their processes and their files at the end. Root is needed
//! to make the user, hence the `root_` names; the commands themselves run without it.

use std::io::Read;
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::root_containers::eventually;
use crate::util::{
    berth_bin, bounded, free_port, require, run_with_timeout, Berth, Registry, Storage,
};

const TIMEOUT: Duration = Duration::from_secs(60);

/// A user made for one test, with a home of their own and (unless asked otherwise) 65536
/// subordinate uids and gids.
struct User {
    name: String,
    uid: u32,
    home: tempfile::TempDir,
    sub_start: Option<u32>,
    /// Extra environment of every berth command (`VAR=value`).
    env: Vec<String>,
    /// A shell script root runs in a private mount namespace before each berth command
    /// (which it then execs as the user): a view of the host the test made.
    prelude: Option<String>,
    /// Shell scripts root runs once the user's containers and processes are gone.
    cleanup: Vec<String>,
}

/// pasta opens /dev/net/tun as the user: udev makes it 0666 on every Debian, which some
/// machine images (this project's among them) do not.
fn tun_for_users() {
    let tun = Path::new("/dev/net/tun");
    if !tun.exists() {
        std::fs::create_dir_all("/dev/net").unwrap();
        let st = Command::new("mknod")
            .args(["/dev/net/tun", "c", "10", "200"])
            .status()
            .unwrap();
        assert!(st.success(), "mknod /dev/net/tun");
    }
    std::fs::set_permissions(tun, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
}

/// fuse-overlayfs opens /dev/fuse as the user: 0666, as udev makes it on Debian.
fn fuse_for_users() {
    std::fs::set_permissions(
        "/dev/fuse",
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
}

fn ok(cmd: &mut Command) -> String {
    let desc = format!("{cmd:?}");
    let out = run_with_timeout(cmd, TIMEOUT);
    assert!(
        out.status.success(),
        "{desc}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl User {
    fn new(with_sub_ids: bool) -> User {
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "the rootless tests need root to create their user"
        );
        require("newuidmap");
        require("pasta");
        tun_for_users();
        let name = format!("brl{:08x}", rand_u32());
        let home = tempfile::Builder::new()
            .prefix("berth-rootless-")
            .tempdir()
            .unwrap();
        // The user's home is below a directory only root may list: let them reach it.
        std::fs::set_permissions(
            home.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        ok(Command::new("useradd")
            .args(["--no-create-home", "--home-dir"])
            .arg(home.path())
            .args(["--shell", "/bin/sh", &name]));
        let uid: u32 = ok(Command::new("id").args(["-u", &name]))
            .trim()
            .parse()
            .unwrap();
        ok(Command::new("chown").arg(&name).arg(home.path()));
        // useradd may have given ranges already (SUB_UID_COUNT): start from none.
        for (file, flag) in [
            ("/etc/subuid", "--del-subuids"),
            ("/etc/subgid", "--del-subgids"),
        ] {
            for (start, count) in sub_ranges(file, &name) {
                ok(Command::new("usermod").args([
                    flag,
                    &format!("{start}-{}", start + count - 1),
                    &name,
                ]));
            }
        }
        let sub_start = with_sub_ids.then(|| {
            // A range of our own far above what useradd hands out.
            let start = 3_000_000 + (rand_u32() % 10_000) * 65_536;
            let range = format!("{start}-{}", start + 65_535);
            ok(Command::new("usermod").args([
                "--add-subuids",
                &range,
                "--add-subgids",
                &range,
                &name,
            ]));
            start
        });
        User {
            name,
            uid,
            home,
            sub_start,
            env: vec![],
            prelude: None,
            cleanup: vec![],
        }
    }

    /// `berth ARGS` as the user, with their HOME and nothing of root's environment.
    fn berth(&self, args: &[&str]) -> Command {
        let mut c = match &self.prelude {
            None => Command::new("runuser"),
            Some(script) => {
                let mut c = Command::new("unshare");
                c.args(["--mount", "--propagation", "private", "sh", "-c"])
                    .arg(format!("set -e; {script}; exec runuser \"$@\""))
                    .arg("sh");
                c
            }
        };
        c.args(["-u", &self.name, "--", "env", "-i"])
            .arg(format!("HOME={}", self.home.path().display()))
            .arg("PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .args(&self.env)
            .arg(berth_bin())
            .args(args)
            .current_dir("/")
            .stdin(Stdio::null());
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        ok(&mut self.berth(args))
    }

    fn output(&self, args: &[&str]) -> Output {
        run_with_timeout(&mut self.berth(args), TIMEOUT)
    }

    /// Runs `berth ARGS`, which must fail with exit code `code`; returns stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.output(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "berth {args:?}: {err}");
        err
    }

    fn store(&self) -> PathBuf {
        self.home.path().join(".local/share/berth")
    }

    /// A busybox image `bb` imported as the user, with /home/u/f owned by 1000:1000.
    fn import_busybox(&self) {
        let dir = self.home.path().join("img");
        let rootfs = dir.join("rootfs");
        for d in ["bin", "etc", "tmp", "home/u"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy(require("busybox"), rootfs.join("bin/busybox")).unwrap();
        for a in [
            "sh", "id", "cat", "echo", "true", "sleep", "stat", "httpd", "wget", "ip", "touch",
            "mknod", "mount", "ls", "chown", "chmod", "awk", "ln", "readlink",
        ] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
        }
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000::/home/u:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\nu:x:1000:\n").unwrap();
        std::fs::write(rootfs.join("home/u/f"), "from the image\n").unwrap();
        ok(Command::new("chown")
            .args(["-R", "1000:1000"])
            .arg(rootfs.join("home/u")));
        let tar = dir.join("bb.tar");
        ok(Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .args(["--numeric-owner", "-cf"])
            .arg(&tar)
            .arg("."));
        ok(Command::new("chown").arg(&self.name).arg(&tar));
        self.ok(&["import", tar.to_str().unwrap(), "bb"]);
    }

    fn run_dir(&self) -> PathBuf {
        std::env::temp_dir().join(format!("berth-{}", self.uid))
    }
}

impl Drop for User {
    fn drop(&mut self) {
        // Bounded and never panicking: a hung berth must not hang nor abort the test binary.
        if let Ok(o) = bounded(&mut self.berth(&["ps", "-aq", "--no-trunc"]), None, TIMEOUT) {
            let ids = String::from_utf8_lossy(&o.stdout).into_owned();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids);
                if let Err(e) = bounded(&mut self.berth(&args), None, TIMEOUT) {
                    eprintln!("removing the test user's containers: {e}");
                }
            }
        }
        // The pause process that holds the user's namespace: by the pid berth recorded.
        if let Ok(t) = std::fs::read_to_string(self.run_dir().join("pause.pid")) {
            if let Some(pid) = t
                .split_whitespace()
                .next()
                .and_then(|p| p.parse::<i32>().ok())
            {
                let owner = std::fs::metadata(format!("/proc/{pid}")).map(|m| m.uid());
                if owner.ok() == Some(self.uid) {
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        let _ = std::fs::remove_dir_all(self.run_dir());
        for script in &self.cleanup {
            let _ = Command::new("sh").args(["-c", script]).output();
        }
        if let Some(start) = self.sub_start {
            let range = format!("{start}-{}", start + 65_535);
            let _ = Command::new("usermod")
                .args(["--del-subuids", &range, "--del-subgids", &range, &self.name])
                .output();
        }
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    u32::from_ne_bytes(b)
}

fn sub_ranges(file: &str, name: &str) -> Vec<(u32, u32)> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() == 3 && f[0] == name).then(|| (f[1].parse().ok(), f[2].parse().ok()))
        })
        .filter_map(|(a, b)| Some((a?, b?)))
        .collect()
}

/// The whole life of containers as an ordinary user, on the user's own store: images,
/// `run --rm` with the image's owners kept, `run -d` with a port published on the host,
/// `exec`, `logs`, `cp`, `commit`, `stop`, `rm`, and `info` saying how it runs.
#[test]
fn root_rootless_pull_run_and_the_container_verbs_as_a_user() {
    let u = User::new(true);
    u.import_busybox();
    assert!(
        u.store().join("blobs").is_dir(),
        "the store is under ~/.local/share/berth"
    );
    let images = u.ok(&["images", "--format", "{{.Repository}}"]);
    assert_eq!(images.trim(), "bb");

    // Owners kept inside; on the host they are the user's subordinate ids.
    let ids = u.ok(&["run", "--rm", "bb", "stat", "-c", "%u:%g", "/home/u/f"]);
    assert_eq!(ids.trim(), "1000:1000");
    let start = u.sub_start.unwrap();
    let snap = std::fs::read_dir(u.store().join("snapshots"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("home/u/f"))
        .find(|p| p.exists())
        .expect("the snapshot holds /home/u/f");
    let meta = std::fs::metadata(&snap).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (start + 999, start + 999));
    // Root inside is the user outside.
    let id = u.ok(&[
        "run",
        "--rm",
        "bb",
        "sh",
        "-c",
        "id -u; touch /tmp/x; stat -c %u /tmp/x",
    ]);
    assert_eq!(id.split_whitespace().collect::<Vec<_>>(), ["0", "0"]);

    // A published port, reached from the host; logs, exec, cp, stop, rm.
    let port = free_port();
    let cid = u.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        &format!("127.0.0.1:{port}:8080"),
        "bb",
        "sh",
        "-c",
        "echo started; exec httpd -f -p 8080 -h /home/u",
    ]);
    let cid = cid.trim();
    let body = http_get(port, "/f");
    assert!(body.ends_with("from the image\n"), "{body}");
    let ps = u.ok(&["ps", "--format", "{{.Names}} {{.Ports}}"]);
    assert_eq!(ps.trim(), format!("web 127.0.0.1:{port}->8080/tcp"));
    assert_eq!(
        u.ok(&["exec", "web", "cat", "/home/u/f"]),
        "from the image\n"
    );
    // The monitor copies the output to the log as it reads it: httpd may answer first.
    eventually("the first run's log", || {
        u.ok(&["logs", "web"]) == "started\n"
    });
    let copied = u.home.path().join("copied");
    u.ok(&["cp", "web:/home/u/f", copied.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(&copied).unwrap(),
        "from the image\n"
    );
    u.ok(&["exec", "web", "sh", "-c", "echo changed > /home/u/g"]);
    u.ok(&["commit", "web", "bb:changed"]);
    // A restart makes a new network namespace and a new pasta on it: the port answers again,
    // from the new process (its log says "started" twice).
    u.ok(&["restart", "-t", "1", "web"]);
    let body = http_get(port, "/f");
    assert!(body.ends_with("from the image\n"), "{body}");
    eventually("the second run's log", || {
        u.ok(&["logs", "web"]) == "started\nstarted\n"
    });
    u.ok(&["stop", "-t", "1", "web"]);
    // The port is given back with the container's network.
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    u.ok(&["rm", cid]);
    assert_eq!(
        u.ok(&["run", "--rm", "bb:changed", "cat", "/home/u/g"]),
        "changed\n"
    );

    // Outbound: the container reaches a server on the host through pasta's gateway.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host_port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::Write;
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf);
        s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 8\r\n\r\noutbound")
            .unwrap();
    });
    let got = u.ok(&[
        "run",
        "--rm",
        "bb",
        "sh",
        "-c",
        &format!(
            "ip -o link show lo | grep -q '<LOOPBACK,UP' || echo lo is down; \
             wget -qO- http://$(ip route | awk '/default/ {{print $3}}'):{host_port}/"
        ),
    ]);
    server.join().unwrap();
    // The namespace pasta was started on (made before the container) has its loopback up.
    assert_eq!(got, "outbound");

    // --network none and host work too.
    assert_eq!(
        u.ok(&["run", "--rm", "--network", "none", "bb", "ip", "-o", "link"])
            .lines()
            .count(),
        1
    );
    u.ok(&["run", "--rm", "--network", "host", "bb", "true"]);

    // --ipc host: the host's IPC namespace (the host's /dev/mqueue bound where it has one: a
    // user may not mount an mqueue in the host's namespace). Joining a container that uses
    // the host's gives the same; joining one with its own is refused with why (a shareable
    // one needs root).
    let host_ipc = std::fs::read_link("/proc/self/ns/ipc").unwrap();
    let host_ipc = format!("{}\n", host_ipc.display());
    let ipc = |args: &[&str]| {
        let mut a = vec!["run", "--rm", "--network", "none"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["bb", "readlink", "/proc/self/ns/ipc"]);
        u.ok(&a)
    };
    assert_eq!(ipc(&["--ipc", "host"]), host_ipc);
    assert_ne!(ipc(&[]), host_ipc);
    for (name, mode) in [("ih", "host"), ("ip", "private")] {
        u.ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--ipc",
            mode,
            "--name",
            name,
            "bb",
            "sleep",
            "60",
        ]);
    }
    assert_eq!(ipc(&["--ipc", "container:ih"]), host_ipc);
    let err = u.fails(
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "--ipc",
            "container:ip",
            "bb",
            "true",
        ],
        125,
    );
    assert!(
        err.contains(
            "rootless containers can join the IPC of a container only when it uses the host's"
        ),
        "{err}"
    );
    u.ok(&["rm", "-f", "ih", "ip"]);

    let info = u.ok(&[
        "info",
        "--format",
        "{{.Driver}} {{.CgroupDriver}} {{.DockerRootDir}} {{json .SecurityOptions}} \
         {{json .Plugins.Network}}",
    ]);
    assert_eq!(
        info.trim(),
        format!(
            "overlay none {} [\"name=seccomp,profile=builtin\",\"name=rootless\"] \
             [\"host\",\"null\",\"pasta\"]",
            u.store().display()
        )
    );
    let text = u.ok(&["info"]);
    assert!(text.contains("  Network: host null pasta\n"), "{text}");
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::Write;
    // Until the container's server answers through pasta: bounded by time, not by a count
    // of tries (five seconds' worth was short for a start on a loaded machine).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            write!(s, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
            let mut out = String::new();
            if s.read_to_string(&mut out).is_ok() && !out.is_empty() {
                return out;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing answered on port {port}");
}

/// What a user's containers cannot have here is refused with one line and docker's 125:
/// limits (no cgroup is delegated on a cgroup v1 or hybrid host), the bridge; and a user with
/// no /etc/subuid range is told which entry is missing.
#[test]
fn root_rootless_refusals_are_one_clear_line() {
    let u = User::new(true);
    u.import_busybox();
    for (args, controller) in [
        (&["run", "--rm", "-m", "64m", "bb", "true"][..], "memory"),
        (&["run", "--rm", "--cpus", "0.5", "bb", "true"], "cpu"),
        (&["run", "--rm", "--pids-limit", "10", "bb", "true"], "pids"),
        // The cgroup's other settings too: none is dropped unseen.
        (&["run", "--rm", "--cpu-shares", "512", "bb", "true"], "cpu"),
        (
            &["run", "--rm", "--cpuset-cpus", "0", "bb", "true"],
            "cpuset",
        ),
        (
            &["run", "--rm", "--memory-reservation", "10m", "bb", "true"],
            "memory",
        ),
    ] {
        let err = u.fails(args, 125);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("rootless containers cannot have"), "{err}");
        assert!(
            err.contains(&format!(
                "cgroup v1 holds {controller} here (a v1 or hybrid host)"
            )),
            "{err}"
        );
    }
    let err = u.fails(&["run", "--rm", "--network", "bridge", "bb", "true"], 125);
    assert!(err.contains("cannot use --network bridge"), "{err}");
    let err = u.fails(&["run", "--rm", "--cgroup-parent", "x", "bb", "true"], 125);
    assert!(err.contains("cannot use --cgroup-parent"), "{err}");
    // A shareable /dev/shm is a tmpfs on the host, which a user cannot mount.
    let err = u.fails(&["run", "--rm", "--ipc", "shareable", "bb", "true"], 125);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot use --ipc shareable"), "{err}");
    assert_eq!(u.ok(&["ps", "-aq"]), "", "nothing was created");
    // `update` cannot give a limit `run` could not.
    u.ok(&["create", "--name", "cc", "--network", "none", "bb", "true"]);
    let out = u.output(&["update", "--cpus", "0.5", "cc"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("rootless containers cannot have --cpus on this host: cgroup v1 holds cpu"),
        "{err}"
    );
    let mem = u.ok(&["inspect", "-f", "{{.HostConfig.NanoCpus}}", "cc"]);
    assert_eq!(mem.trim(), "0", "nothing recorded");

    // A start that fails after pasta was started for it (a bind source gone since `create`)
    // says why and leaves no pasta behind.
    let gone = u.home.path().join("gone");
    std::fs::create_dir(&gone).unwrap();
    let bind = format!("type=bind,source={},target=/g", gone.display());
    u.ok(&["create", "--name", "pp", "--mount", &bind, "bb", "true"]);
    std::fs::remove_dir(&gone).unwrap();
    let out = u.output(&["start", "pp"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("bind source path does not exist"), "{err}");
    // (An exited one the host's init has not reaped yet is a zombie: state Z.)
    let ps = ok(Command::new("ps").args(["-u", &u.name, "-o", "stat=,comm="]));
    let live = |l: &&str| !l.trim_start().starts_with('Z');
    assert!(!ps.lines().filter(live).any(|l| l.contains("pas")), "{ps}");

    let bare = User::new(false);
    let err = bare.fails(&["images"], 125);
    assert_eq!(
        err.trim(),
        format!(
            "berth: rootless: no subordinate uids for {n} in /etc/subuid: \
             rootless containers need a range (as root: usermod --add-subuids 100000-165535 \
             --add-subgids 100000-165535 {n})",
            n = bare.name
        )
    );
}

/// Nothing a rootless container does reaches past the user's own files: a hostile layer
/// stays inside its snapshot, and inside a container root cannot write the host's files,
/// make devices, mount over the host or climb out through `cp`.
#[test]
fn root_rootless_hostile_layers_and_escapes_stay_inside() {
    let u = User::new(true);
    u.import_busybox();
    let outside = u.home.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    ok(Command::new("chown").arg(&u.name).arg(&outside));
    // A layer with `..`, an absolute symlink out and a file written through it, and a hard
    // link to a host file.
    let tar = u.home.path().join("hostile.tar");
    let script = format!(
        r#"
import tarfile, io
t = tarfile.open({tar:?}, "w", format=tarfile.PAX_FORMAT)
def f(name, data=b"x"):
    i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))
def l(name, target, kind):
    i = tarfile.TarInfo(name); i.type = kind; i.linkname = target; t.addfile(i)
l("up", "/{out}", tarfile.SYMTYPE)
f("up/through")
l("hard", "/etc/passwd", tarfile.LNKTYPE)
f("../../../{out}/dotdot")
t.close()
"#,
        tar = tar.display(),
        out = outside.display().to_string().trim_start_matches('/'),
    );
    ok(Command::new("python3").args(["-c", &script]));
    ok(Command::new("chown").arg(&u.name).arg(&tar));
    let _ = u.output(&["import", tar.to_str().unwrap(), "hostile"]);
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "the layer wrote outside its snapshot"
    );

    // Root in the container is nobody to the host's files: root's own, bind-mounted in.
    let host = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        host.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(host.path().join("secret"), "root's\n").unwrap();
    let out = u.output(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/host", host.path().display()),
        "bb",
        "sh",
        "-c",
        "echo evil >> /host/secret || echo denied; touch /host/new || echo no-create; \
         chown 0 /host/secret && chmod 777 /host/secret || echo no-chown; \
         mknod /tmp/sda b 8 0 || echo no-mknod; echo b > /proc/sysrq-trigger || echo no-sysrq",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["denied", "no-create", "no-chown", "no-mknod", "no-sysrq"] {
        assert!(text.contains(word), "{word}: {text}");
    }
    assert_eq!(
        std::fs::read_to_string(host.path().join("secret")).unwrap(),
        "root's\n"
    );
    let meta = std::fs::metadata(host.path().join("secret")).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o644));
    assert_eq!(std::fs::read_dir(host.path()).unwrap().count(), 1);

    // `cp` resolves a container's symlink inside the container.
    u.ok(&[
        "run",
        "--name",
        "links",
        "bb",
        "sh",
        "-c",
        "ln -s /etc/shadow /tmp/s; ln -s ../../../../.. /tmp/up",
    ]);
    let got = u.home.path().join("got");
    let out = u.output(&["cp", "links:/tmp/up/etc/passwd", got.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&got).unwrap(),
        "root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000::/home/u:/bin/sh\n",
        "the container's passwd, not the host's"
    );
    u.ok(&["rm", "links"]);
}

/// fuse-overlayfs, the fallback for kernels whose overlayfs a user namespace may not mount,
/// forced on this kernel with `BERTH_ROOTLESS_OVERLAY=fuse-overlayfs`: `info` names it, the
/// root is a fuse mount, the image's owners are kept, whiteouts and opaque directories written
/// by the kernel's overlay are obeyed, and what the container changes under fuse-overlayfs
/// (deleted files, a directory made again) commits to a layer the kernel's overlay reads back.
#[test]
fn root_rootless_fuse_overlayfs_when_forced() {
    let mut u = User::new(true);
    fuse_for_users();
    u.import_busybox();
    // A layer with a whiteout and an opaque directory, from the kernel's overlay.
    u.ok(&[
        "run",
        "--name",
        "kk",
        "--network",
        "none",
        "bb",
        "sh",
        "-c",
        "rm -r /home/u && mkdir /home/u && echo k > /home/u/k && rm /bin/ln",
    ]);
    u.ok(&["commit", "kk", "bb:k"]);
    u.ok(&["rm", "kk"]);

    u.env = vec!["BERTH_ROOTLESS_OVERLAY=fuse-overlayfs".into()];
    assert_eq!(
        u.ok(&["info", "--format", "{{.Driver}}"]).trim(),
        "fuse-overlayfs"
    );
    let seen = u.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "bb:k",
        "sh",
        "-c",
        "awk '$2 == \"/\" {print $3}' /proc/mounts; ls /home/u; ls /bin/ln 2>&1 | wc -l; \
         stat -c %u:%g /home/u/k",
    ]);
    assert_eq!(
        seen.split_whitespace().collect::<Vec<_>>(),
        ["fuse.fuse-overlayfs", "k", "1", "0:0"],
        "{seen}"
    );
    let owners = u.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "bb",
        "stat",
        "-c",
        "%u:%g",
        "/home/u/f",
    ]);
    assert_eq!(owners.trim(), "1000:1000");
    // Changes under fuse-overlayfs, committed, then read by the kernel's overlay; exec and
    // cp on a running fuse container.
    u.ok(&[
        "run",
        "-d",
        "--name",
        "ff",
        "--network",
        "none",
        "bb:k",
        "sh",
        "-c",
        "rm -r /home/u && mkdir /home/u && echo f > /home/u/f2 && rm /bin/awk && \
         echo new > /n && chown 1000:1000 /n && exec sleep 100",
    ]);
    eventually("the changes", || {
        u.output(&["exec", "ff", "cat", "/n"]).stdout == b"new\n"
    });
    let got = u.home.path().join("n");
    u.ok(&["cp", "ff:/n", got.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&got).unwrap(), "new\n");
    u.ok(&["commit", "ff", "bb:f"]);
    u.ok(&["rm", "-f", "ff"]);
    u.env.clear();
    let seen = u.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "bb:f",
        "sh",
        "-c",
        "ls /home/u; ls /bin/awk /bin/ln 2>&1 | grep -c 'No such'; stat -c %u:%g /n; cat /n",
    ]);
    assert_eq!(
        seen.split_whitespace().collect::<Vec<_>>(),
        ["f2", "2", "1000:1000", "new"],
        "{seen}"
    );
}

/// As an ordinary user: `pull` from a `berth serve` on 127.0.0.1 into an empty store (the
/// image's owners kept), `build` from it (a RUN step is a rootless container), `push` of the
/// result, and `run -it` in a real terminal (tmux): the container's own pty, its size, the
/// exit code.
#[test]
fn root_rootless_pull_build_push_and_a_terminal_as_a_user() {
    let u = User::new(true);
    let storage = Storage::fs();
    let reg = Registry::start(&storage, "");
    // root imports the user's busybox image into a store of its own and pushes it.
    let dir = u.home.path().join("img");
    u.import_busybox();
    let root = Berth::new();
    root.ok(&["import", dir.join("bb.tar").to_str().unwrap(), "bb"]);
    let image = format!("{}/rl/bb:1", reg.addr);
    root.ok(&["tag", "bb", &image]);
    root.ok(&["push", &image]);

    let pulled = u.ok(&["pull", &image]);
    assert!(pulled.contains("Downloaded newer image"), "{pulled}");
    let images = u.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(
        images.lines().any(|l| l == format!("{}/rl/bb:1", reg.addr)),
        "{images}"
    );
    assert_eq!(
        u.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            &image,
            "stat",
            "-c",
            "%u:%g",
            "/home/u/f"
        ])
        .trim(),
        "1000:1000"
    );

    let ctx = u.home.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("note"), "from the context\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {image}\nRUN echo built > /built && chown 1000:1000 /built\n\
             COPY note /home/u/note\nUSER 1000\n"
        ),
    )
    .unwrap();
    ok(Command::new("chown").args(["-R", &u.name]).arg(&ctx));
    let built = format!("{}/rl/built:1", reg.addr);
    u.ok(&["build", "-q", "-t", &built, ctx.to_str().unwrap()]);
    let seen = u.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        &built,
        "sh",
        "-c",
        "id -u; stat -c %u:%g /built; cat /built /home/u/note",
    ]);
    assert_eq!(seen, "1000\n1000:1000\nbuilt\nfrom the context\n");
    u.ok(&["push", &built]);
    let tags = reg.request("GET", "/v2/rl/built/tags/list", &[], b"");
    let body = String::from_utf8_lossy(&tags.body);
    assert!(body.contains("\"1\""), "{}: {body}", tags.status);

    // run -it under tmux, as the user.
    let tmux = require("tmux");
    let sock = u.home.path().join("tmux.sock");
    let rc = u.home.path().join("rc");
    let script = format!(
        "runuser -u {n} -- env -i HOME={h} TERM=xterm PATH=/usr/bin:/bin:/usr/sbin:/sbin \
         {berth} run -it --rm --network none bb sh; echo $? > {rc}; sleep 30",
        n = u.name,
        h = u.home.path().display(),
        berth = berth_bin(),
        rc = rc.display()
    );
    let tm = |args: &[&str]| {
        Command::new(&tmux)
            .arg("-S")
            .arg(&sock)
            .args(args)
            .output()
            .unwrap()
    };
    struct KillServer<'a>(&'a dyn Fn(&[&str]) -> Output);
    impl Drop for KillServer<'_> {
        fn drop(&mut self) {
            (self.0)(&["kill-server"]);
        }
    }
    let o = tm(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "100",
        "-y",
        "30",
        &script,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let _server = KillServer(&tm);
    let pane =
        || String::from_utf8_lossy(&tm(&["capture-pane", "-p", "-t", "t"]).stdout).into_owned();
    eventually("the prompt", || pane().contains("/ #"));
    tm(&[
        "send-keys",
        "-t",
        "t",
        "tty; stty size; echo I=$(id -u)",
        "Enter",
    ]);
    eventually("the answer", || pane().contains("I=0"));
    let p = pane();
    assert!(p.contains("/dev/pts/0"), "{p}");
    assert!(p.contains("30 100"), "{p}");
    tm(&["send-keys", "-t", "t", "exit 3", "Enter"]);
    eventually("the exit code", || {
        std::fs::read_to_string(&rc).is_ok_and(|c| c.ends_with('\n'))
    });
    assert_eq!(std::fs::read_to_string(&rc).unwrap().trim(), "3");
}

/// The overlay is chosen by trying it, not by the kernel's version: with the user's home (and
/// store) on an overlay, as when berth runs in a container, the kernel refuses an overlay whose
/// upper directory is there, and berth mounts fuse-overlayfs without being told; `info` says
/// which (the kernel's overlay, chosen the same way, is the other tests').
#[test]
fn root_rootless_fuse_overlayfs_where_the_kernel_refuses_its_overlay() {
    let layers = tempfile::tempdir().unwrap();
    let mut u = User::new(true);
    fuse_for_users();
    let home = u.home.path().to_path_buf();
    let dir = |d: &str| {
        let p = layers.path().join(d);
        std::fs::create_dir(&p).unwrap();
        p.display().to_string()
    };
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        dir("l"),
        dir("u"),
        dir("w")
    );
    ok(Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(&home));
    u.cleanup.push(format!("umount -l '{}'", home.display()));
    ok(Command::new("chown").arg(&u.name).arg(&home));
    ok(Command::new("chmod").arg("755").arg(&home));
    u.import_busybox();
    assert_eq!(
        u.ok(&["info", "--format", "{{.Driver}}"]).trim(),
        "fuse-overlayfs"
    );
    let seen = u.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "bb",
        "sh",
        "-c",
        "awk '$2 == \"/\" {print $3}' /proc/mounts; stat -c %u:%g /home/u/f; echo w > /w; cat /w",
    ]);
    assert_eq!(
        seen.split_whitespace().collect::<Vec<_>>(),
        ["fuse.fuse-overlayfs", "1000:1000", "w"],
        "{seen}"
    );
}

/// Runs `script` as root with `$C` a cgroup2 mount of its own (in a private mount
/// namespace, whatever the host mounts); returns its output.
fn in_cgroup2(script: &str) -> String {
    ok(Command::new("unshare").args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        &format!("set -e; C=$(mktemp -d); mount -t cgroup2 cgroup2 $C; {script}"),
    ]))
}

/// A cgroup v2 subtree delegated to the user as systemd delegates `user@UID.service`: a
/// cgroup `T/user` (T root's) whose directory, cgroup.procs, cgroup.subtree_control and
/// cgroup.threads the user owns, berth started in `T/user/shell` (made by the user), in a
/// mount namespace whose /sys/fs/cgroup is the cgroup2 hierarchy alone (a pure v2 host; this
/// project's hosts are hybrid and run no systemd, so nothing delegates one otherwise). Every
/// container then gets `T/user/berth/<id>`: it is there, `top` lists it, `pause` freezes it,
/// `rm` removes it; limits need their controllers delegated too, and are refused naming the
/// one missing. Run from a cgroup the user does not own, limits are refused saying that no
/// subtree is delegated and why (no systemd here).
#[test]
fn root_rootless_delegated_cgroup_v2_subtree() {
    let mut u = User::new(true);
    let t = format!("berth-rl-{:08x}", rand_u32());
    in_cgroup2(&format!(
        "mkdir $C/{t} $C/{t}/user $C/{t}/plain; \
         for f in '' cgroup.procs cgroup.subtree_control cgroup.threads; do \
           chown {n} $C/{t}/user/$f; done; \
         runuser -u {n} -- mkdir $C/{t}/user/shell",
        n = u.name
    ));
    u.cleanup.push(format!(
        "unshare --mount --propagation private sh -c 'C=$(mktemp -d); \
         mount -t cgroup2 cgroup2 $C; echo 1 > $C/{t}/cgroup.kill; \
         for i in $(seq 100); do find $C/{t} -depth -type d -exec rmdir {{}} + 2>/dev/null; \
           [ -d $C/{t} ] || break; sleep 0.1; done'"
    ));
    let view = |leaf: &str| {
        format!(
            "umount -l /sys/fs/cgroup; mount -t cgroup2 cgroup2 /sys/fs/cgroup; \
             echo $$ > /sys/fs/cgroup/{t}/{leaf}/cgroup.procs"
        )
    };
    u.prelude = Some(view("user/shell"));
    u.import_busybox();
    assert_eq!(
        u.ok(&["info", "--format", "{{.CgroupDriver}}"]).trim(),
        "cgroupfs"
    );
    let id = u.ok(&["run", "-d", "--network", "none", "bb", "sleep", "100"]);
    let id = id.trim();
    let pid = u.ok(&["inspect", "-f", "{{.State.Pid}}", id]);
    let cgroup = std::fs::read_to_string(format!("/proc/{}/cgroup", pid.trim())).unwrap();
    assert!(
        cgroup
            .lines()
            .any(|l| l == format!("0::/{t}/user/berth/{id}")),
        "{cgroup}"
    );
    let top = u.ok(&["top", id]);
    assert!(top.contains("sleep 100"), "{top}");
    u.ok(&["pause", id]);
    assert_eq!(
        u.ok(&["inspect", "-f", "{{.State.Status}}", id]).trim(),
        "paused"
    );
    let events = in_cgroup2(&format!("cat $C/{t}/user/berth/{id}/cgroup.events"));
    assert!(events.lines().any(|l| l == "frozen 1"), "{events}");
    u.ok(&["unpause", id]);
    let events = in_cgroup2(&format!("cat $C/{t}/user/berth/{id}/cgroup.events"));
    assert!(events.lines().any(|l| l == "frozen 0"), "{events}");

    // This kernel has memory, cpu and pids on cgroup v1 (hybrid): none reaches the subtree.
    let err = u.fails(&["run", "--rm", "-m", "64m", "bb", "true"], 125);
    assert_eq!(
        err.trim(),
        format!(
            "berth: rootless containers cannot have -m/--memory on this host: the memory \
             controller is not delegated to /sys/fs/cgroup/{t}/user (systemd: Delegate=yes, \
             or Delegate=memory cpu pids)"
        )
    );
    u.ok(&["rm", "-f", id]);
    let left = in_cgroup2(&format!(
        "test -d $C/{t}/user/berth/{id} && echo left || echo removed"
    ));
    assert_eq!(left.trim(), "removed", "rm removes the container's cgroup");

    // Started outside what the user owns: no subtree, no cgroup, limits refused saying so.
    u.prelude = Some(view("plain"));
    assert_eq!(
        u.ok(&["info", "--format", "{{.CgroupDriver}}"]).trim(),
        "none"
    );
    let err = u.fails(&["run", "--rm", "--pids-limit", "10", "bb", "true"], 125);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "no cgroup v2 subtree is delegated to the user (/sys/fs/cgroup/{t}/plain is not theirs)"
        )),
        "{err}"
    );
    let systemd = Path::new("/run/systemd/system").is_dir();
    let how = if systemd {
        "systemd-run --user --scope"
    } else {
        "this host has no systemd"
    };
    assert!(err.contains(how), "{err}");
    // A container without a cgroup: `top` lists its pid namespace, `pause` says why not.
    u.ok(&[
        "run",
        "-d",
        "--name",
        "pp",
        "--network",
        "none",
        "bb",
        "sleep",
        "100",
    ]);
    let top = u.ok(&["top", "pp"]);
    assert!(top.contains("sleep 100"), "{top}");
    let err = u.fails(&["pause", "pp"], 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("can be paused only in a cgroup v2 subtree delegated to the user"),
        "{err}"
    );
}
