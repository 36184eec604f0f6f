//! The container commands, run for real as root (namespaces, overlay, cgroups): every test
//! here needs root and fails without it. Each test has its own client root holding `bb`, a
//! busybox image imported with `berth import`, so tests never reach a registry.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{
    berth_bin, bounded, free_port, require, run, run_with_timeout, Berth, PEER_TIMEOUT,
};

const APPLETS: &[&str] = &[
    "sh", "cat", "echo", "sleep", "ps", "id", "hostname", "true", "false", "touch", "ls", "wc",
    "seq", "pwd", "env", "stty", "tty", "kill", "head", "grep", "mkdir", "test", "date",
    "readlink", "stat", "rm", "ip", "httpd", "wget",
];

/// The leak test counts every berth cgroup on the host: it runs alone, the others (and the
/// build tests, whose steps are containers too) together.
static HOST: std::sync::RwLock<()> = std::sync::RwLock::new(());

pub(crate) fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    HOST.read().unwrap_or_else(|e| e.into_inner())
}

/// A test's client root: whatever containers it still holds when the test ends (a failed
/// assertion on the way) are removed, so no test leaves a container running on the host.
pub(crate) struct Root(pub(crate) Berth);

impl std::ops::Deref for Root {
    type Target = Berth;
    fn deref(&self) -> &Berth {
        &self.0
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        // Bounded and never panicking: a hung berth must not hang nor abort the test binary.
        if let Ok(o) = bounded(
            &mut self.0.cmd(&["ps", "-aq", "--no-trunc"]),
            None,
            PEER_TIMEOUT,
        ) {
            let ids = String::from_utf8_lossy(&o.stdout).into_owned();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f", "-v"];
                args.extend(ids);
                if let Err(e) = bounded(&mut self.0.cmd(&args), None, PEER_TIMEOUT) {
                    eprintln!("removing the test's containers: {e}");
                }
            }
        }
    }
}

/// A fresh client root with the image `bb` (busybox, CMD sh, a `nobody` user, a VOLUME).
pub(crate) fn setup() -> Root {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the container tests need root (namespaces, mounts, cgroups)"
    );
    let b = Berth::new();
    let rootfs = b.dir.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::create_dir_all(rootfs.join("srv/app")).unwrap();
    std::fs::create_dir_all(rootfs.join("tmp")).unwrap();
    std::fs::set_permissions(
        rootfs.join("tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    std::fs::copy(require("busybox"), rootfs.join("bin/busybox")).unwrap();
    for a in APPLETS {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    std::fs::write(rootfs.join("srv/app/seed"), "from the image\n").unwrap();
    // What a new volume on /srv/app is filled with: a symlink, a hard link, a file and a
    // directory of nobody's with their own modes.
    std::os::unix::fs::symlink("seed", rootfs.join("srv/app/link")).unwrap();
    std::fs::hard_link(rootfs.join("srv/app/seed"), rootfs.join("srv/app/hard")).unwrap();
    std::fs::create_dir(rootfs.join("srv/app/private")).unwrap();
    std::fs::write(rootfs.join("srv/app/private/key"), "secret\n").unwrap();
    for (path, mode) in [("srv/app/private/key", 0o640), ("srv/app/private", 0o750)] {
        let path = rootfs.join(path);
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .unwrap();
    }
    let tar = b.dir.path().join("rootfs.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    b.ok(&[
        "import",
        "-c",
        "CMD [\"sh\"]",
        "-c",
        "ENV FROM_IMAGE=yes",
        "-c",
        "VOLUME /cache",
        tar.to_str().unwrap(),
        "bb:latest",
    ]);
    Root(b)
}

pub(crate) fn out(b: &Berth, args: &[&str]) -> Output {
    run_with_timeout(&mut b.cmd(args), PEER_TIMEOUT)
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `berth run --rm bb sh -c SCRIPT` (plus `flags`) and returns its output.
pub(crate) fn sh(b: &Berth, flags: &[&str], script: &str) -> Output {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["bb", "sh", "-c", script]);
    out(b, &args)
}

pub(crate) fn inspect(b: &Berth, name: &str) -> Value {
    let v: Value = serde_json::from_str(&b.ok(&["inspect", name])).unwrap();
    v[0].clone()
}

/// Waits (bounded) until `f` holds.
pub(crate) fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn container_dirs(b: &Berth) -> Vec<String> {
    match std::fs::read_dir(b.root.join("containers")) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "names")
            .collect(),
        Err(_) => vec![],
    }
}

/// What containers of this root could leave behind on the host: mounts that mention the
/// root, cgroups under `parent` (the test's own --cgroup-parent), processes whose environment
/// names the root. (Only what is this test's own: other work on the machine mounts and starts
/// containers too.)
pub(crate) fn host_traces(b: &Berth, parent: &str) -> (usize, Vec<PathBuf>, usize) {
    let root = b.root.to_string_lossy().into_owned();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&root))
        .count();
    let mut cgroups = vec![];
    for hier in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let dir = hier.path().join(parent.trim_start_matches('/'));
        if let Ok(rd) = std::fs::read_dir(&dir) {
            cgroups.extend(rd.flatten().filter(|e| e.path().is_dir()).map(|e| e.path()));
        }
    }
    let procs = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("environ"))
                .map(|env| String::from_utf8_lossy(&env).contains(&root))
                .unwrap_or(false)
        })
        .count();
    (mounts, cgroups, procs)
}

/// What bridge networking leaves on the host: host ends of veth pairs, address leases and
/// published-port rules, each as a set of names. (Other tests' stopped containers may have
/// left leases and rules that a new container takes over and removes: compare with
/// `no_new_net_traces`, not equality.)
fn net_traces() -> [BTreeSet<String>; 3] {
    let names = |dir: &str| -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    let veths = names("/sys/class/net")
        .into_iter()
        .filter(|n| n.starts_with("bv"))
        .collect();
    let leases = names("/run/berth/net/berth0")
        .into_iter()
        .filter(|n| n.parse::<std::net::Ipv4Addr>().is_ok())
        .collect();
    let o = Command::new("iptables")
        .args(["-w", "-t", "nat", "-S"])
        .output()
        .unwrap();
    let rules = stdout(&o)
        .lines()
        .filter(|l| l.contains("berth:"))
        .map(str::to_string)
        .collect();
    [veths, leases, rules]
}

fn no_new_net_traces(before: &[BTreeSet<String>; 3]) -> bool {
    net_traces()
        .iter()
        .zip(before)
        .all(|(now, then)| now.is_subset(then))
}

#[test]
fn root_isolation_pid_hostname_masked_paths() {
    let _host = shared();
    let b = setup();
    let o = sh(
        &b,
        &["--hostname", "boxy"],
        "echo pid=$$; hostname; ps -o pid | wc -l; cat /proc/timer_list | wc -c; ls /sys/firmware | wc -l",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<String> = stdout(&o).lines().map(|l| l.trim().to_string()).collect();
    assert_eq!(lines[0], "pid=1");
    assert_eq!(lines[1], "boxy");
    // The header, sh and ps: no host process is visible.
    assert!(lines[2].parse::<u32>().unwrap() <= 4, "{lines:?}");
    assert_eq!(lines[3], "0", "/proc/timer_list is masked");
    assert_eq!(lines[4], "0", "/sys/firmware is masked");
    // /proc/kcore is masked (empty) when the kernel has it, absent when it has not.
    let kcore = sh(
        &b,
        &[],
        "if [ -e /proc/kcore ]; then wc -c < /proc/kcore; else echo absent; fi",
    );
    let want = if Path::new("/proc/kcore").exists() {
        "0"
    } else {
        "absent"
    };
    assert_eq!(stdout(&kcore).trim(), want, "{}", stderr(&kcore));
    // The default hostname is the short id.
    let o = out(&b, &["run", "--name", "hn", "bb", "hostname"]);
    let id = inspect(&b, "hn")["Id"].as_str().unwrap().to_string();
    assert_eq!(stdout(&o).trim(), &id[..12]);
    // Network none: only loopback.
    let o = sh(&b, &["--network", "none"], "ls /sys/class/net");
    assert_eq!(stdout(&o).trim(), "lo");
    // Network host: the host's namespace itself (counting its interfaces would race with
    // the other tests' containers).
    let o = sh(&b, &["--network", "host"], "readlink /proc/self/ns/net");
    let host_ns = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_eq!(stdout(&o).trim(), host_ns.to_string_lossy());
}

#[test]
fn root_run_flags_env_user_workdir_entrypoint() {
    let _host = shared();
    let b = setup();
    let envfile = b.dir.path().join("env");
    std::fs::write(&envfile, "# comment\nFROM_FILE=1\nSHARED=file\n").unwrap();
    let o = out(
        &b,
        &[
            "run",
            "--rm",
            "-e",
            "A=1",
            "--env",
            "SHARED=flag",
            "--env-file",
            envfile.to_str().unwrap(),
            "-w",
            "/srv/app",
            "-u",
            "nobody",
            "bb",
            "sh",
            "-c",
            "echo $A $FROM_FILE $SHARED $FROM_IMAGE; pwd; id -u; id -g; cat seed; echo $HOME",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "1 1 flag yes\n/srv/app\n65534\n65534\nfrom the image\n/nonexistent\n"
    );
    let o = out(&b, &["run", "--rm", "-u", "0:65534", "bb", "id", "-g"]);
    assert_eq!(stdout(&o).trim(), "65534");
    // A uid:gid with no passwd entry: the gid is the one supplementary group (docker's).
    let o = out(&b, &["run", "--rm", "-u", "1000:1000", "bb", "id"]);
    assert_eq!(stdout(&o), "uid=1000 gid=1000 groups=1000\n");
    // --entrypoint replaces the image's and takes the arguments after the image.
    let o = out(&b, &["run", "--rm", "--entrypoint", "echo", "bb", "a", "b"]);
    assert_eq!(stdout(&o), "a b\n");
    // A working directory that does not exist is created, as docker does.
    let o = out(&b, &["run", "--rm", "-w", "/new/dir", "bb", "pwd"]);
    assert_eq!(stdout(&o), "/new/dir\n");
    // A --rm container's overlay is volatile (no host-wide sync when it goes); a kept one's not.
    let root_line = "grep ' / overlay' /proc/mounts";
    assert!(stdout(&sh(&b, &[], root_line)).contains("volatile"));
    let o = out(&b, &["run", "--name", "kept", "bb", "sh", "-c", root_line]);
    assert!(
        stdout(&o).contains("overlay") && !stdout(&o).contains("volatile"),
        "{}",
        stdout(&o)
    );
    // The image's CMD runs when no command is given; stdin is /dev/null without -i.
    let o = out(&b, &["run", "--rm", "bb"]);
    assert!(o.status.success());
    // -i passes stdin through.
    let mut child = b
        .cmd(&["run", "--rm", "-i", "bb", "sh", "-c", "cat; echo done"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"piped\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(stdout(&o), "piped\ndone\n");
    // An unknown user is one line and 125... as is a relative working directory.
    let o = out(&b, &["run", "--rm", "-u", "nosuchuser", "bb", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    let o = out(&b, &["run", "--rm", "-w", "rel", "bb", "true"]);
    assert_eq!(o.status.code(), Some(125));
}

#[test]
fn root_volumes_bind_ro_named_anonymous() {
    let _host = shared();
    let b = setup();
    let host = b.dir.path().join("share");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("in"), "hello\n").unwrap();
    let ro = format!("{}:/data:ro", host.display());
    let o = sh(&b, &["-v", &ro], "cat /data/in; echo x > /data/out");
    assert_eq!(stdout(&o), "hello\n");
    assert!(!o.status.success(), "writing to a :ro volume must fail");
    assert!(
        stderr(&o).contains("Read-only file system"),
        "{}",
        stderr(&o)
    );
    assert!(!host.join("out").exists());
    let rw = format!("{}:/data", host.display());
    let o = sh(&b, &["-v", &rw], "echo written > /data/out");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(host.join("out")).unwrap(),
        "written\n"
    );
    // A named volume outlives its containers.
    assert!(sh(&b, &["-v", "keep:/v"], "echo kept > /v/f")
        .status
        .success());
    assert_eq!(stdout(&sh(&b, &["-v", "keep:/v"], "cat /v/f")), "kept\n");
    assert!(b.root.join("volumes/keep/_data/f").exists());
    // Anonymous volumes (-v /path, and the image's VOLUME /cache) go with --rm.
    let before = std::fs::read_dir(b.root.join("volumes")).unwrap().count();
    assert!(sh(&b, &["-v", "/scratch"], "touch /scratch/x /cache/y")
        .status
        .success());
    assert_eq!(
        std::fs::read_dir(b.root.join("volumes")).unwrap().count(),
        before
    );
    // ... and with rm -v, not with plain rm.
    b.ok(&["run", "--name", "v1", "bb", "true"]);
    let mounts = inspect(&b, "v1")["Mounts"].clone();
    assert_eq!(mounts[0]["Destination"], "/cache");
    assert_eq!(mounts[0]["Type"], "volume");
    b.ok(&["rm", "-v", "v1"]);
    assert_eq!(
        std::fs::read_dir(b.root.join("volumes")).unwrap().count(),
        before
    );
    // --read-only: the root cannot be written, volumes can.
    let o = sh(&b, &["--read-only", "-v", "/w"], "touch /w/ok && touch /x");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("/x") && stderr(&o).contains("Read-only file system"),
        "{}",
        stderr(&o)
    );
}

/// As docker: a volume that is empty when a container mounts it is first filled with what the
/// image holds at its destination (owners, modes, links kept); one with content is left as it
/// is; `nocopy` and bind mounts are never filled.
#[test]
fn root_empty_volumes_are_filled_from_the_image() {
    let _host = shared();
    let b = setup();
    let listing = "cd /srv/app && cat seed hard link private/key && readlink link && \
                   stat -c '%n %u:%g %a %h' seed private private/key";
    let o = sh(&b, &["-v", "app:/srv/app"], listing);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "from the image\nfrom the image\nfrom the image\nsecret\nseed\n\
         seed 0:0 644 2\nprivate 65534:65534 750 2\nprivate/key 65534:65534 640 1\n"
    );
    assert_eq!(
        std::fs::read_to_string(b.root.join("volumes/app/_data/seed")).unwrap(),
        "from the image\n"
    );
    // The volume now has content of its own: the next container sees that, not the image's.
    assert!(sh(
        &b,
        &["-v", "app:/srv/app"],
        "cd /srv/app && echo changed > seed && rm hard"
    )
    .status
    .success());
    let o = sh(&b, &["-v", "app:/srv/app"], "cd /srv/app && cat seed && ls");
    assert_eq!(stdout(&o), "changed\nlink\nprivate\nseed\n");
    // Anonymous volumes are filled too.
    let o = sh(&b, &["-v", "/srv/app"], "cat /srv/app/seed");
    assert_eq!(stdout(&o), "from the image\n", "{}", stderr(&o));
    // nocopy leaves a new volume empty, and a bind mount shows the host directory as it is.
    let o = sh(
        &b,
        &["-v", "bare:/srv/app:nocopy"],
        "ls -A /srv/app | wc -l",
    );
    assert_eq!(stdout(&o).trim(), "0", "{}", stderr(&o));
    b.ok(&[
        "create",
        "--name",
        "nc",
        "-v",
        "bare2:/srv/app:ro,nocopy",
        "bb",
        "true",
    ]);
    assert_eq!(inspect(&b, "nc")["Mounts"][0]["Mode"], "ro,nocopy");
    let host = b.dir.path().join("empty");
    std::fs::create_dir(&host).unwrap();
    let bind = format!("{}:/srv/app", host.display());
    let o = sh(&b, &["-v", &bind], "ls -A /srv/app | wc -l");
    assert_eq!(stdout(&o).trim(), "0", "{}", stderr(&o));
    assert_eq!(std::fs::read_dir(&host).unwrap().count(), 0);
    let bad = format!("{}:/srv/app:nocopy", host.display());
    let o = out(&b, &["run", "--rm", "-v", &bad, "bb", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("nocopy"), "{}", stderr(&o));
}

#[test]
fn root_memory_limit_kills_with_137() {
    let _host = shared();
    let b = setup();
    let o = out(
        &b,
        &[
            "run",
            "--name",
            "hog",
            "-m",
            "32m",
            "bb",
            "sh",
            "-c",
            "x=a; while true; do x=\"$x$x\"; done",
        ],
    );
    assert_eq!(o.status.code(), Some(137), "{}", stderr(&o));
    let state = &inspect(&b, "hog")["State"];
    assert_eq!(state["ExitCode"], 137);
    assert_eq!(state["OOMKilled"], true);
    assert_eq!(inspect(&b, "hog")["HostConfig"]["Memory"], 32 << 20);
}

#[test]
fn root_pids_limit_stops_a_fork_bomb() {
    let _host = shared();
    let b = setup();
    // The bomb runs in a child shell, which dies at its first failed fork; the container's
    // init then replaces itself (exec: no fork needed) and stays for us to count.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "bomb",
        "--pids-limit",
        "16",
        "bb",
        "sh",
        "-c",
        "sh -c 'while true; do sleep 60 & done' 2>/dev/null; echo stopped; exec sleep 60",
    ]);
    eventually("the bomb to stop", || {
        stdout(&out(&b, &["logs", "bomb"])).contains("stopped")
    });
    let top = b.ok(&["top", "bomb"]);
    let n = top.lines().count() - 1;
    assert!(n <= 16, "{n} processes under a limit of 16:\n{top}");
    assert!(
        n >= 10,
        "only {n} processes: the limit was not what stopped the bomb"
    );
    b.ok(&["rm", "-f", "bomb"]);
}

#[test]
fn root_cpus_limit_reaches_the_cgroup() {
    let _host = shared();
    let b = setup();
    let id = b.ok(&["run", "-d", "--cpus", "0.5", "bb", "sleep", "30"]);
    let id = id.trim();
    let mut found = None;
    for hier in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let dir = hier.path().join("berth").join(id);
        for (file, want) in [("cpu.cfs_quota_us", "50000"), ("cpu.max", "50000 100000")] {
            if let Ok(v) = std::fs::read_to_string(dir.join(file)) {
                found = Some((v.trim().to_string(), want));
            }
        }
    }
    let (got, want) = found.expect("the container's cpu cgroup");
    assert_eq!(got, want);
    b.ok(&["rm", "-f", id]);
}

#[test]
fn root_exec_joins_the_container() {
    let _host = shared();
    let b = setup();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "ex",
        "bb",
        "sh",
        "-c",
        "echo in-ctr > /tmp/f; sleep 60",
    ]);
    eventually("the file", || {
        stdout(&out(&b, &["exec", "ex", "cat", "/tmp/f"])) == "in-ctr\n"
    });
    // Same pid namespace: the container's init is pid 1 for exec too.
    let o = out(
        &b,
        &[
            "exec",
            "ex",
            "sh",
            "-c",
            "cat /proc/1/cmdline; echo; echo $$",
        ],
    );
    let lines: Vec<&str> = std::str::from_utf8(&o.stdout).unwrap().lines().collect();
    // (sh -c execs its last command: the init is `sleep 60`.)
    assert!(lines[0].starts_with("sleep"), "{lines:?}");
    assert_ne!(lines[1], "1");
    let o = out(
        &b,
        &[
            "exec",
            "-e",
            "X=7",
            "-w",
            "/tmp",
            "-u",
            "nobody",
            "ex",
            "sh",
            "-c",
            "echo $X $(pwd) $(id -u) $FROM_IMAGE",
        ],
    );
    assert_eq!(stdout(&o), "7 /tmp 65534 yes\n");
    // The exit code comes back; -d returns at once.
    assert_eq!(
        out(&b, &["exec", "ex", "sh", "-c", "exit 3"]).status.code(),
        Some(3)
    );
    assert_eq!(out(&b, &["exec", "ex", "nosuch"]).status.code(), Some(127));
    b.ok(&[
        "exec",
        "-d",
        "ex",
        "sh",
        "-c",
        "sleep 0.2; touch /tmp/detached",
    ]);
    eventually("the detached exec", || {
        out(&b, &["exec", "ex", "test", "-e", "/tmp/detached"])
            .status
            .success()
    });
    // -i feeds stdin.
    let mut child = b
        .cmd(&["exec", "-i", "ex", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"to exec\n").unwrap();
    assert_eq!(stdout(&child.wait_with_output().unwrap()), "to exec\n");
    // -t: the exec ends with its process even when one it left in the background (deaf to
    // the hangup) holds the pty open; what it printed comes first.
    let o = run_with_timeout(
        &mut b.cmd(&[
            "exec",
            "-t",
            "ex",
            "sh",
            "-c",
            "trap '' HUP; echo on-pty; sleep 50 &",
        ]),
        Duration::from_secs(30),
    );
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stdout(&o), "on-pty\r\n");
    b.ok(&["stop", "-t", "0", "ex"]);
    let o = out(&b, &["exec", "ex", "true"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not running"), "{}", stderr(&o));
    b.ok(&["rm", "ex"]);
}

#[test]
fn root_stop_kill_restart() {
    let _host = shared();
    let b = setup();
    // A process that handles TERM exits with its own code.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "term",
        "bb",
        "sh",
        "-c",
        "trap 'echo got-term; exit 3' TERM; echo ready; while true; do sleep 0.1; done",
    ]);
    eventually("ready", || {
        stdout(&out(&b, &["logs", "term"])).contains("ready")
    });
    assert_eq!(b.ok(&["stop", "term"]), "term\n");
    assert_eq!(inspect(&b, "term")["State"]["ExitCode"], 3);
    assert!(stdout(&out(&b, &["logs", "term"])).contains("got-term"));
    assert_eq!(b.ok(&["wait", "term"]), "3\n");
    // One that ignores TERM (sh as pid 1) is killed after -t.
    b.ok(&["run", "-d", "--name", "deaf", "bb", "sleep", "60"]);
    b.ok(&["stop", "-t", "1", "deaf"]);
    assert_eq!(inspect(&b, "deaf")["State"]["ExitCode"], 137);
    // kill -s sends the named signal.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "killme",
        "bb",
        "sh",
        "-c",
        "trap 'echo got-usr1' USR1; echo ready; while true; do sleep 0.1; done",
    ]);
    eventually("ready", || {
        stdout(&out(&b, &["logs", "killme"])).contains("ready")
    });
    b.ok(&["kill", "-s", "USR1", "killme"]);
    eventually("USR1", || {
        stdout(&out(&b, &["logs", "killme"])).contains("got-usr1")
    });
    assert_eq!(inspect(&b, "killme")["State"]["Status"], "running");
    b.ok(&["kill", "killme"]);
    eventually("the kill", || {
        inspect(&b, "killme")["State"]["Status"] == "exited"
    });
    assert_eq!(inspect(&b, "killme")["State"]["ExitCode"], 137);
    // restart keeps the container's files.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "again",
        "bb",
        "sh",
        "-c",
        "date >> /runs; sleep 60",
    ]);
    eventually("first run", || {
        out(&b, &["exec", "again", "test", "-e", "/runs"])
            .status
            .success()
    });
    b.ok(&["restart", "-t", "0", "again"]);
    eventually("second run", || {
        stdout(&out(&b, &["exec", "again", "wc", "-l", "/runs"])).starts_with('2')
    });
    // docker's: a restart by a person is no policy restart, and sets the count back to 0.
    assert_eq!(inspect(&b, "again")["RestartCount"], 0);
    // start of a stopped container runs it again, with its files.
    b.ok(&["stop", "-t", "0", "again"]);
    b.ok(&["start", "again"]);
    eventually("third run", || {
        stdout(&out(&b, &["exec", "again", "wc", "-l", "/runs"])).starts_with('3')
    });
    // kill of a stopped container is an error.
    b.ok(&["stop", "-t", "0", "again"]);
    let o = out(&b, &["kill", "again"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not running"));
    b.ok(&["rm", "term", "deaf", "killme", "again"]);
    assert!(container_dirs(&b).is_empty());
}

#[test]
fn root_logs_follow_tail_timestamps() {
    let _host = shared();
    let b = setup();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "logs1",
        "bb",
        "sh",
        "-c",
        "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; sleep 0.2; done",
    ]);
    // -f streams until the container exits, then ends by itself.
    let o = b.cmd(&["logs", "-f", "logs1"]).output().unwrap();
    assert!(o.status.success());
    assert_eq!(stdout(&o), "out1\nout2\nout3\nout4\nout5\n");
    assert_eq!(stderr(&o), "err1\nerr2\nerr3\nerr4\nerr5\n");
    let o = out(&b, &["logs", "--tail", "2", "logs1"]);
    assert_eq!(stdout(&o), "out5\n");
    assert_eq!(stderr(&o), "err5\n");
    // (The last two lines are out5 and err5, in either order.)
    let o = out(&b, &["logs", "-t", "--tail", "2", "logs1"]);
    let line = stdout(&o);
    let (ts, text) = line.split_once(' ').unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{line}");
    assert_eq!(text, "out5\n");
    assert_eq!(
        stdout(&out(
            &b,
            &["logs", "--since", "2099-01-01T00:00:00Z", "logs1"]
        )),
        ""
    );
    assert_eq!(
        stdout(&out(&b, &["logs", "--since", "10m", "logs1"]))
            .lines()
            .count(),
        5
    );
    let o = out(&b, &["logs", "--tail", "x", "logs1"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("invalid --tail \"x\""),
        "{}",
        stderr(&o)
    );
}

#[test]
fn root_attach_and_detach_keep_it_running() {
    let _host = shared();
    let b = setup();
    b.ok(&[
        "run",
        "-d",
        "-i",
        "--name",
        "att",
        "bb",
        "sh",
        "-c",
        "while read l; do echo got:$l; done",
    ]);
    let mut child = b
        .cmd(&["attach", "att"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"one\n").unwrap();
    let mut stdout_pipe = child.stdout.take().unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while !String::from_utf8_lossy(&got).contains("got:one") {
        let n = stdout_pipe.read(&mut buf).unwrap();
        assert!(n > 0, "attach ended early");
        got.extend_from_slice(&buf[..n]);
    }
    // ctrl-p ctrl-q: attach returns 0, the container keeps running.
    stdin.write_all(&[0x10, 0x11]).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
    assert_eq!(inspect(&b, "att")["State"]["Status"], "running");
    b.ok(&["rm", "-f", "att"]);

    // Detached from a foreground `run --rm`: it is still removed when it exits.
    let mut child = b
        .cmd(&[
            "run",
            "-i",
            "--rm",
            "--name",
            "att2",
            "-p",
            "80",
            "bb",
            "sh",
            "-c",
            "while read l; do echo got:$l; done",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"two\n").unwrap();
    let mut stdout_pipe = child.stdout.take().unwrap();
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("got:two") {
        let n = stdout_pipe.read(&mut buf).unwrap();
        assert!(n > 0, "run ended early");
        got.extend_from_slice(&buf[..n]);
    }
    stdin.write_all(&[0x10, 0x11]).unwrap();
    assert!(child.wait().unwrap().success());
    let id = inspect(&b, "att2")["Id"].as_str().unwrap().to_string();
    b.ok(&["stop", "-t", "1", "att2"]);
    eventually("the reaper's removal", || b.ok(&["ps", "-aq"]).is_empty());
    assert!(!net_traces()[2].iter().any(|r| r.contains(&id)));
}

/// `run -it` under tmux: a real terminal, its size, ctrl-c, the exit code, detach.
#[test]
fn root_run_it_through_a_terminal() {
    let _host = shared();
    let b = setup();
    let tmux = require("tmux");
    let sock = b.dir.path().join("tmux.sock");
    let berth = berth_bin();
    let rc = b.dir.path().join("rc");
    let script = format!(
        "BERTH_ROOT={} {berth} run -it --name tty bb sh; echo $? > {}; sleep 30",
        b.root.display(),
        rc.display()
    );
    let tm = |args: &[&str]| {
        Command::new(&tmux)
            .arg("-S")
            .arg(&sock)
            .args(args)
            .output()
            .unwrap()
    };
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
    assert!(o.status.success(), "{}", stderr(&o));
    // The server and what runs in it go when the test ends, even by a panic.
    struct KillServer(PathBuf, PathBuf);
    impl Drop for KillServer {
        fn drop(&mut self) {
            let _ = Command::new(&self.0)
                .arg("-S")
                .arg(&self.1)
                .arg("kill-server")
                .output();
        }
    }
    let _server = KillServer(tmux.clone(), sock.clone());
    let pane = || stdout(&tm(&["capture-pane", "-p", "-t", "t"]));
    let wait_for = |s: &str| eventually(s, || pane().contains(s));
    wait_for("/ #");
    tm(&[
        "send-keys",
        "-t",
        "t",
        "tty; stty size; echo T=$TERM",
        "Enter",
    ]);
    wait_for("T=xterm");
    let p = pane();
    assert!(p.contains("/dev/pts/0"), "{p}");
    assert!(p.contains("30 100"), "{p}");
    tm(&["resize-window", "-t", "t", "-x", "120", "-y", "40"]);
    eventually("the new size", || {
        tm(&["send-keys", "-t", "t", "stty size", "Enter"]);
        std::thread::sleep(Duration::from_millis(100));
        pane().contains("40 120")
    });
    // ctrl-c reaches the container's foreground process, not berth: the shell reports the
    // sleep killed by SIGINT (130). (The typed line is echoed too: look for the output line.)
    tm(&["send-keys", "-t", "t", "sleep 100", "Enter"]);
    eventually("the sleep to run", || {
        stdout(&out(&b, &["top", "tty"])).contains("sleep 100")
    });
    tm(&["send-keys", "-t", "t", "C-c"]);
    tm(&["send-keys", "-t", "t", "echo after-int-$?", "Enter"]);
    eventually("the interrupted sleep's status", || {
        pane().lines().any(|l| l.trim() == "after-int-130")
    });
    // Detach and attach again.
    tm(&["send-keys", "-t", "t", "C-p", "C-q"]);
    // (The shell creates the file before it writes the code: wait for the code.)
    eventually("detach", || {
        std::fs::read_to_string(&rc).is_ok_and(|c| c.ends_with('\n'))
    });
    assert_eq!(std::fs::read_to_string(&rc).unwrap().trim(), "0");
    assert_eq!(inspect(&b, "tty")["State"]["Status"], "running");
    std::fs::remove_file(&rc).unwrap();
    let script = format!(
        "BERTH_ROOT={} {berth} attach tty; echo $? > {}; sleep 30",
        b.root.display(),
        rc.display()
    );
    let o = tm(&[
        "new-session",
        "-d",
        "-s",
        "t2",
        "-x",
        "100",
        "-y",
        "30",
        &script,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let pane = || stdout(&tm(&["capture-pane", "-p", "-t", "t2"]));
    // (Only now: the server exits with its last session.)
    tm(&["kill-session", "-t", "t"]);
    // Attached once the container answers (typed text is echoed before that too, so look
    // for the output line alone).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        tm(&["send-keys", "-t", "t2", "echo attached-$((6*7))", "Enter"]);
        std::thread::sleep(Duration::from_millis(200));
        let p = pane();
        if p.lines().any(|l| l.trim() == "attached-42") {
            break;
        }
        assert!(Instant::now() < deadline, "no answer through attach:\n{p}");
    }
    tm(&["send-keys", "-t", "t2", "exit 7", "Enter"]);
    eventually("the exit", || {
        std::fs::read_to_string(&rc).is_ok_and(|c| c.ends_with('\n'))
    });
    assert_eq!(std::fs::read_to_string(&rc).unwrap().trim(), "7");
    tm(&["kill-server"]);
    b.ok(&["rm", "tty"]);
}

#[test]
fn root_fifty_runs_leave_nothing_behind() {
    let _host = HOST.write().unwrap_or_else(|e| e.into_inner());
    let b = setup();
    let parent = format!("/berth-test-{}", std::process::id());
    let cg = ["--cgroup-parent", parent.as_str()];
    let run = |extra: &[&str]| {
        let mut args = vec!["run"];
        args.extend_from_slice(&cg);
        args.extend_from_slice(extra);
        out(&b, &args)
    };
    let before = host_traces(&b, &parent);
    assert_eq!(before, (0, vec![], 0));
    let net_before = net_traces();
    for i in 0..50 {
        // On the bridge (the default), every fifth with a published port.
        let o = if i % 5 == 0 {
            run(&["--rm", "-p", "80", "bb", "true"])
        } else {
            run(&["--rm", "bb", "true"])
        };
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(host_traces(&b, &parent), before);
    // The kernel takes a veth pair away with its namespace, in the background.
    eventually("no veth pair, lease or port rule left", || {
        no_new_net_traces(&net_before)
    });
    assert!(container_dirs(&b).is_empty());
    // A `--rm` container's files are deleted in the background, from <root>/trash.
    eventually("the trash emptied", || {
        std::fs::read_dir(b.root.join("trash")).map_or(true, |mut d| d.next().is_none())
    });
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    // rm -f of a running container, and run -d --rm reaped when it exits.
    let id = stdout(&run(&["-d", "-v", "/anon", "bb", "sleep", "60"]));
    assert!(
        !host_traces(&b, &parent).1.is_empty(),
        "a running container has cgroups"
    );
    b.ok(&["rm", "-f", "-v", id.trim()]);
    assert!(run(&["-d", "--rm", "-p", "80", "bb", "sleep", "0.3"])
        .status
        .success());
    eventually("the --rm reaper", || container_dirs(&b).is_empty());
    eventually("the reaper's exit", || host_traces(&b, &parent) == before);
    eventually("the reaper's unplugging", || no_new_net_traces(&net_before));
    // Only the volumes' lock file stays.
    let volumes: Vec<_> = std::fs::read_dir(b.root.join("volumes"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != ".lock")
        .collect();
    assert!(volumes.is_empty(), "{volumes:?}");
    for hier in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = std::fs::remove_dir(hier.path().join(parent.trim_start_matches('/')));
    }
}

#[test]
fn root_bad_input_is_one_line_and_the_right_code() {
    let _host = shared();
    let b = setup();
    let port = free_port();
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (
            vec!["run".into(), "--bogus".into(), "bb".into()],
            125,
            "--bogus",
        ),
        (
            vec![
                "run".into(),
                "--rm".into(),
                "--pull".into(),
                "never".into(),
                "nosuch".into(),
            ],
            125,
            "No such image",
        ),
        (
            vec![
                "run".into(),
                "--rm".into(),
                format!("127.0.0.1:{port}/nosuch"),
            ],
            125,
            "127.0.0.1",
        ),
        (
            vec!["run".into(), "--rm".into(), "bb".into(), "nosuchcmd".into()],
            127,
            "nosuchcmd",
        ),
        (
            vec![
                "run".into(),
                "--rm".into(),
                "bb".into(),
                "/etc/passwd".into(),
            ],
            126,
            "/etc/passwd",
        ),
        (
            vec![
                "run".into(),
                "--rm".into(),
                "-v".into(),
                "/does/not/exist:/x".into(),
                "bb".into(),
                "true".into(),
            ],
            125,
            "/does/not/exist",
        ),
        (
            vec![
                "run".into(),
                "--rm".into(),
                "-m".into(),
                "lots".into(),
                "bb".into(),
            ],
            125,
            "lots",
        ),
        (
            vec![
                "run".into(),
                "--rm".into(),
                "--network".into(),
                "nosuch".into(),
                "bb".into(),
            ],
            125,
            "network nosuch not found",
        ),
        (
            vec!["start".into(), "nosuch".into()],
            1,
            "No such container",
        ),
        (vec!["logs".into(), "nosuch".into()], 1, "No such container"),
    ];
    for (args, code, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = out(&b, &args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| !l.is_empty()).collect();
        let extra = lines
            .iter()
            .filter(|l| !l.starts_with("Unable to find") && !l.contains("Pulling from"))
            .count();
        assert_eq!(extra, 1, "{args:?}: one line expected: {err}");
    }
    // Nothing is left of the failed runs.
    assert!(container_dirs(&b).is_empty(), "{:?}", container_dirs(&b));
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    // Without --rm a command that cannot run leaves a container that says why.
    let o = out(&b, &["run", "--name", "nf", "bb", "nosuchcmd"]);
    assert_eq!(o.status.code(), Some(127));
    let st = &inspect(&b, "nf")["State"];
    assert_eq!(st["ExitCode"], 127);
    assert!(st["Error"].as_str().unwrap().contains("nosuchcmd"), "{st}");
    // Names are unique.
    let o = out(&b, &["create", "--name", "nf", "bb"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("already in use"));
    let o = out(&b, &["create", "--name", "bad/name", "bb"]);
    assert_eq!(o.status.code(), Some(125));
}

#[test]
fn root_ps_create_start_rename_pause_prune_and_images_in_use() {
    let _host = shared();
    let b = setup();
    let created = b.ok(&["create", "--name", "made", "bb", "echo", "from-create"]);
    assert_eq!(created.trim().len(), 64);
    b.ok(&[
        "run", "-d", "--name", "up", "-l", "team=a", "bb", "sleep", "60",
    ]);
    let ps = b.ok(&["ps"]);
    let header = ps.lines().next().unwrap();
    for col in [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ] {
        assert!(header.contains(col), "{header}");
    }
    assert_eq!(ps.lines().count(), 2, "{ps}");
    assert!(ps.contains("\"sleep 60\"") && ps.contains("Up "), "{ps}");
    assert_eq!(b.ok(&["ps", "-a", "--format", "{{.Names}}"]), "up\nmade\n");
    assert_eq!(
        b.ok(&["ps", "-a", "-f", "status=created", "--format", "{{.Names}}"]),
        "made\n"
    );
    assert_eq!(b.ok(&["ps", "-f", "label=team=a", "-q"]).trim().len(), 12);
    assert_eq!(b.ok(&["ps", "-l", "--format", "{{.Names}}"]), "up\n");
    assert_eq!(
        b.ok(&["ps", "-n", "2", "--format", "{{.Names}}"]),
        "up\nmade\n"
    );
    assert_eq!(b.ok(&["ps", "-q", "--no-trunc"]).trim().len(), 64);
    let row: Value = serde_json::from_str(b.ok(&["ps", "--format", "json"]).trim()).unwrap();
    assert_eq!(row["Names"], "up");
    assert_eq!(row["State"], "running");
    // start -a of a created container prints its output and returns its code.
    let o = out(&b, &["start", "-a", "made"]);
    assert_eq!(stdout(&o), "from-create\n");
    assert_eq!(
        b.ok(&["ps", "-a", "-f", "exited=0", "--format", "{{.Names}}"]),
        "made\n"
    );
    // rename, and id prefixes work wherever a name does (names here are not hex, so no
    // id prefix can answer for them).
    b.ok(&["rename", "made", "renamed"]);
    assert!(out(&b, &["inspect", "made"]).status.code() == Some(1));
    let id = inspect(&b, "renamed")["Id"].as_str().unwrap().to_string();
    assert_eq!(inspect(&b, &id[..5])["Name"], "/renamed");
    // pause / unpause.
    b.ok(&["pause", "up"]);
    assert_eq!(inspect(&b, "up")["State"]["Status"], "paused");
    assert!(b.ok(&["ps"]).contains("(Paused)"));
    b.ok(&["unpause", "up"]);
    assert_eq!(inspect(&b, "up")["State"]["Status"], "running");
    // top lists the container's processes.
    let top = b.ok(&["top", "up"]);
    assert!(top.lines().next().unwrap().contains("PID"));
    assert!(top.contains("sleep 60"), "{top}");
    // inspect has docker's shape.
    let v = inspect(&b, "up");
    for key in [
        "Id",
        "Created",
        "Path",
        "Args",
        "State",
        "Image",
        "Name",
        "HostConfig",
        "Mounts",
        "Config",
        "GraphDriver",
    ] {
        assert!(v.get(key).is_some(), "inspect lacks {key}");
    }
    assert_eq!(v["Config"]["Labels"]["team"], "a");
    assert_eq!(v["State"]["Running"], true);
    assert!(v["State"]["Pid"].as_i64().unwrap() > 0);
    assert_eq!(
        b.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}}",
            "--type",
            "container",
            "up"
        ]),
        "running\n"
    );
    // The image is in use: rmi refuses it, -f only untags it, the container still starts.
    let o = out(&b, &["rmi", "bb"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("is using its referenced image"),
        "{}",
        stderr(&o)
    );
    let df = b.ok(&["system", "df"]);
    assert!(
        df.lines()
            .any(|l| l.starts_with("Containers") && l.contains(" 2 ")),
        "{df}"
    );
    b.ok(&["rmi", "-f", "bb"]);
    assert_eq!(
        stdout(&out(&b, &["start", "-a", "renamed"])),
        "from-create\n"
    );
    // container prune removes the stopped one only; then the image goes with image prune.
    let o = b.ok(&["container", "prune", "-f"]);
    assert!(o.contains(&id), "{o}");
    assert_eq!(b.ok(&["ps", "-a", "--format", "{{.Names}}"]), "up\n");
    b.ok(&["rm", "-f", "up"]);
    b.ok(&["image", "prune", "-f"]);
    assert_eq!(b.ok(&["images", "-q"]), "");
    assert!(!Path::new(&b.root.join("containers/names/up")).exists());
}

#[test]
fn root_more_flags_sig_proxy_detach_keys_stop_signal_until_top_start_i_prune_prompt() {
    let _host = shared();
    let b = setup();
    let trap = "trap 'exit 5' TERM; echo ready; while true; do sleep 0.1; done";
    let started = |child: &mut std::process::Child| {
        let mut buf = [0u8; 16];
        let n = child.stdout.as_mut().unwrap().read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ready\n");
    };
    // --sig-proxy (on by default): SIGTERM to berth reaches the container, which exits 5.
    let mut child = b
        .cmd(&["run", "--name", "proxied", "bb", "sh", "-c", trap])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    started(&mut child);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(5));
    // --sig-proxy=false: berth itself dies of it; the container runs on.
    let mut child = b
        .cmd(&[
            "run",
            "--sig-proxy=false",
            "--name",
            "unproxied",
            "bb",
            "sh",
            "-c",
            trap,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    started(&mut child);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGTERM));
    assert_eq!(inspect(&b, "unproxied")["State"]["Status"], "running");
    // stop -s: the given signal first.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "usr1",
        "bb",
        "sh",
        "-c",
        "trap 'exit 4' USR1; echo ready; while true; do sleep 0.1; done",
    ]);
    eventually("ready", || {
        stdout(&out(&b, &["logs", "usr1"])).contains("ready")
    });
    b.ok(&["stop", "-s", "USR1", "usr1"]);
    assert_eq!(inspect(&b, "usr1")["State"]["ExitCode"], 4);
    // logs --until.
    assert_eq!(
        stdout(&out(
            &b,
            &["logs", "--until", "2000-01-01T00:00:00Z", "usr1"]
        )),
        ""
    );
    assert_eq!(
        stdout(&out(&b, &["logs", "--until", "0s", "usr1"])),
        "ready\n"
    );
    // top passes ps options on.
    let top = b.ok(&["top", "unproxied", "-o", "pid,comm"]);
    let header: Vec<&str> = top.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["PID", "COMMAND"], "{top}");
    assert!(
        top.lines()
            .skip(1)
            .all(|l| l.split_whitespace().count() == 2),
        "{top}"
    );
    // attach --detach-keys with a key of one's own; attach --no-stdin sends nothing.
    b.ok(&[
        "run",
        "-d",
        "-i",
        "--name",
        "reader",
        "bb",
        "sh",
        "-c",
        "while read l; do echo got:$l; done",
    ]);
    let mut child = b
        .cmd(&["attach", "--detach-keys", "ctrl-x", "reader"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.as_mut().unwrap().write_all(&[0x18]).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(inspect(&b, "reader")["State"]["Status"], "running");
    // What is typed into the --no-stdin attach is dropped: a line sent after it through an
    // ordinary attach comes back alone.
    let mut quiet = b
        .cmd(&["attach", "--no-stdin", "reader"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = {
        let (tx, rx) = std::sync::mpsc::channel();
        let quiet_out = BufReader::new(quiet.stdout.take().unwrap());
        std::thread::spawn(move || {
            for l in quiet_out.lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        rx
    };
    let mut feeder = b
        .cmd(&["attach", "reader"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut feed = feeder.stdin.take().unwrap();
    // Pings until the --no-stdin attach shows one: it is connected.
    eventually("the --no-stdin attach to show output", || {
        feed.write_all(b"ping\n").unwrap();
        lines
            .recv_timeout(Duration::from_millis(200))
            .is_ok_and(|l| l == "got:ping")
    });
    quiet.stdin.take().unwrap().write_all(b"dropped\n").unwrap();
    feed.write_all(b"marker\n").unwrap();
    loop {
        let l = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the marker comes back");
        assert_ne!(
            l, "got:dropped",
            "the --no-stdin attach forwarded its input"
        );
        if l == "got:marker" {
            break;
        }
    }
    b.ok(&["kill", "reader"]);
    drop(feed);
    let _ = feeder.wait();
    let rest: Vec<String> = lines.iter().collect();
    assert!(!rest.iter().any(|l| l == "got:dropped"), "{rest:?}");
    quiet.wait().unwrap();
    // start -a -i feeds the container's stdin.
    b.ok(&[
        "create",
        "-i",
        "--name",
        "si",
        "bb",
        "sh",
        "-c",
        "read l; echo got:$l",
    ]);
    let mut child = b
        .cmd(&["start", "-a", "-i", "si"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hi\n").unwrap();
    assert_eq!(stdout(&child.wait_with_output().unwrap()), "got:hi\n");
    // --memory-swap reaches inspect and the memory cgroup.
    let id = b.ok(&[
        "run",
        "-d",
        "-m",
        "32m",
        "--memory-swap",
        "64m",
        "bb",
        "sleep",
        "30",
    ]);
    assert_eq!(inspect(&b, id.trim())["HostConfig"]["MemorySwap"], 64 << 20);
    // v1 limits memory and swap together; v2 limits swap alone (64m - 32m).
    let v1 = format!(
        "/sys/fs/cgroup/memory/berth/{}/memory.memsw.limit_in_bytes",
        id.trim()
    );
    let v2 = format!("/sys/fs/cgroup/berth/{}/memory.swap.max", id.trim());
    let (file, want) = if Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists() {
        (v1, 64u64 << 20)
    } else if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        (v2, 32u64 << 20)
    } else {
        panic!("this host has no swap accounting (memory.memsw on v1, memory.swap.max on v2)")
    };
    assert_eq!(
        std::fs::read_to_string(&file).unwrap().trim(),
        want.to_string(),
        "{file}"
    );
    b.ok(&["rm", "-f", id.trim(), "unproxied"]);
    // ps -f name= / id= / ancestor= and -s.
    assert_eq!(
        b.ok(&["ps", "-a", "-f", "name=usr", "--format", "{{.Names}}"]),
        "usr1\n"
    );
    // The name filter is a regular expression, as docker's (`^usr1$`, `^/usr`); a value that
    // is none matches only a name equal to it.
    for f in ["name=^usr1$", "name=^/usr", "name=us+r1", "name=/usr1"] {
        assert_eq!(
            b.ok(&["ps", "-a", "-f", f, "--format", "{{.Names}}"]),
            "usr1\n",
            "{f}"
        );
    }
    for f in ["name=^sr1", "name=usr1$x", "name=usr(", "name=^usr$"] {
        assert_eq!(b.ok(&["ps", "-a", "-f", f, "-q"]), "", "{f}");
    }
    let sid = inspect(&b, "si")["Id"].as_str().unwrap().to_string();
    assert_eq!(
        b.ok(&[
            "ps",
            "-a",
            "-f",
            &format!("id={}", &sid[..8]),
            "--format",
            "{{.Names}}"
        ]),
        "si\n"
    );
    assert_eq!(
        b.ok(&["ps", "-a", "-f", "ancestor=bb", "-q"])
            .lines()
            .count(),
        4
    );
    assert_eq!(b.ok(&["ps", "-a", "-f", "ancestor=nosuch", "-q"]), "");
    let sized = b.ok(&["ps", "-a", "-s", "-f", "name=si"]);
    assert!(sized.lines().next().unwrap().contains("SIZE"), "{sized}");
    // container prune asks first: "n" keeps everything, "y" removes the stopped ones.
    let prune = |answer: &str| {
        let mut child = b
            .cmd(&["container", "prune"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(answer.as_bytes())
            .unwrap();
        stdout(&child.wait_with_output().unwrap())
    };
    assert!(prune("n\n").contains("Are you sure"));
    assert_eq!(b.ok(&["ps", "-aq"]).lines().count(), 4);
    assert!(prune("y\n").contains("Deleted Containers:"));
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}

/// `run` with images from a registry: `-q` pulls without a word, `--pull missing` (the
/// default) keeps the local copy of a tag, `--pull always` takes the registry's newer one;
/// `exec --env-file` and `inspect -s` on the container.
#[test]
fn root_run_pulls_quietly_or_always_and_exec_reads_env_files() {
    let _host = shared();
    let b = setup();
    let storage = crate::util::Storage::fs();
    let reg = crate::util::Registry::start(&storage, "");
    let name = format!("{}/team/bb:1", reg.addr);
    b.ok(&["tag", "bb", &name]);
    b.ok(&["push", &name]);
    b.ok(&["rmi", &name]);

    let o = out(
        &b,
        &["run", "--rm", "-q", &name, "sh", "-c", "echo $FROM_IMAGE"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "yes\n");
    assert_eq!(stderr(&o), "", "-q pulls without a word");
    b.ok(&["rmi", &name]);
    let o = out(&b, &["run", "--rm", &name, "true"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Unable to find image") && stderr(&o).contains("Pulling from"),
        "{}",
        stderr(&o)
    );

    // The registry's tag moves to an image with another ENV.
    let tar = b.dir.path().join("rootfs.tar");
    b.ok(&[
        "import",
        "-c",
        "ENV FROM_IMAGE=newer",
        tar.to_str().unwrap(),
        "newer:1",
    ]);
    let saved = b.dir.path().join("newer.tar");
    b.ok(&["save", "-o", saved.to_str().unwrap(), "newer:1"]);
    let elsewhere = Berth::new();
    elsewhere.ok(&["load", "-i", saved.to_str().unwrap()]);
    elsewhere.ok(&["tag", "newer:1", &name]);
    elsewhere.ok(&["push", &name]);
    let env_of = |pull: &str| {
        let o = out(
            &b,
            &[
                "run",
                "--rm",
                "-q",
                "--pull",
                pull,
                &name,
                "sh",
                "-c",
                "echo $FROM_IMAGE",
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    assert_eq!(
        env_of("missing"),
        "yes\n",
        "the local copy of the tag is kept"
    );
    assert_eq!(env_of("never"), "yes\n");
    assert_eq!(
        env_of("always"),
        "newer\n",
        "--pull always takes the registry's"
    );
    assert_eq!(env_of("missing"), "newer\n");

    // --platform: an image of another platform is not run, whether pulled again or kept.
    let host = if cfg!(target_arch = "aarch64") {
        ("linux/arm64", "linux/amd64")
    } else {
        ("linux/amd64", "linux/arm64")
    };
    for pull in ["missing", "never"] {
        let o = out(
            &b,
            &[
                "run",
                "--rm",
                "--pull",
                pull,
                "--platform",
                host.1,
                &name,
                "true",
            ],
        );
        assert_eq!(o.status.code(), Some(125), "--pull {pull}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("does not match the specified platform")
                && stderr(&o).contains(host.1),
            "{}",
            stderr(&o)
        );
    }
    let o = out(&b, &["run", "--rm", "--platform", host.0, &name, "true"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o), "", "the local image fits: nothing pulled");

    // exec --env-file, and inspect -s.
    b.ok(&["run", "-d", "--name", "envs", "bb", "sleep", "60"]);
    let file = b.dir.path().join("exec.env");
    std::fs::write(&file, "# a comment\nA=1\n\nB=two words\n").unwrap();
    let o = out(
        &b,
        &[
            "exec",
            "--env-file",
            file.to_str().unwrap(),
            "envs",
            "sh",
            "-c",
            "echo $A/$B",
        ],
    );
    assert_eq!(stdout(&o), "1/two words\n", "{}", stderr(&o));
    b.ok(&[
        "exec",
        "envs",
        "sh",
        "-c",
        "head -c 100000 /bin/busybox > /big",
    ]);
    let sized: Value = serde_json::from_str(&b.ok(&["inspect", "-s", "envs"])).unwrap();
    let rw = sized[0]["SizeRw"].as_u64().unwrap();
    assert!((100_000..200_000).contains(&rw), "SizeRw {rw}");
    assert!(inspect(&b, "envs").get("SizeRw").is_none(), "only with -s");
    b.ok(&["rm", "-f", "envs"]);
}

/// One HTTP/1.0 GET; the response's body, or None when nothing answers.
pub(crate) fn http_get(addr: &str, path: &str) -> Option<String> {
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\n\r\n").ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    resp.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
}

#[test]
fn root_bridge_network_addresses_publishes_ports_and_leaves_nothing() {
    let _host = shared();
    let b = setup();
    // busybox httpd serves a page from a read-only bind on a published port.
    let www = b.dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello from the bridge\n").unwrap();
    let page = format!("{}:/www:ro", www.display());
    let port = free_port();
    let publish = format!("{port}:80");
    let httpd = ["httpd", "-f", "-p", "80", "-h", "/www"];
    let mut args = vec![
        "run", "-d", "-v", &page, "--name", "web", "-p", &publish, "bb",
    ];
    args.extend(httpd);
    b.ok(&args);
    let web = inspect(&b, "web");
    let settings = &web["NetworkSettings"];
    let ip = settings["IPAddress"].as_str().unwrap().to_string();
    assert!(ip.starts_with("10.89."), "{settings}");
    assert_eq!(settings["Gateway"], "10.89.0.1");
    assert_eq!(settings["Ports"]["80/tcp"][0]["HostPort"], port.to_string());
    // docker: the binding as asked in HostConfig, the address it listens on once bound.
    assert_eq!(settings["Ports"]["80/tcp"][0]["HostIp"], "0.0.0.0");
    assert_eq!(web["HostConfig"]["PortBindings"]["80/tcp"][0]["HostIp"], "");
    assert_eq!(web["HostConfig"]["NetworkMode"], "bridge");
    let body = || http_get(&format!("127.0.0.1:{port}"), "/index.html");
    eventually("httpd on the published port", || body().is_some());
    assert_eq!(body().unwrap(), "hello from the bridge\n");
    // The container's own address, from the host and from another container.
    assert_eq!(
        http_get(&format!("{ip}:80"), "/index.html").unwrap(),
        "hello from the bridge\n"
    );
    let o = sh(
        &b,
        &[],
        &format!("wget -qO- http://{ip}/index.html && ip -o -4 addr show eth0 && ip route"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.starts_with("hello from the bridge\n"), "{text}");
    assert!(
        text.contains("inet 10.89.") && !text.contains(&format!("inet {ip}/")),
        "{text}"
    );
    assert!(text.contains("default via 10.89.0.1"), "{text}");
    // /etc/hosts names the container on its address.
    let hosts = b.ok(&["exec", "web", "cat", "/etc/hosts"]);
    assert!(
        hosts.contains(&format!("{ip}\t{}", &web["Id"].as_str().unwrap()[..12])),
        "{hosts}"
    );
    // --network container:web: web's namespace (its httpd on localhost), hostname and hosts.
    let o = sh(
        &b,
        &["--network", "container:web"],
        "wget -qO- http://127.0.0.1/index.html && hostname && ip -o -4 addr show eth0",
    );
    let text = stdout(&o);
    assert!(
        text.starts_with("hello from the bridge\n"),
        "{text}{}",
        stderr(&o)
    );
    assert!(text.contains(&web["Id"].as_str().unwrap()[..12]), "{text}");
    assert!(text.contains(&format!("inet {ip}/")), "{text}");
    let joined = out(&b, &["create", "--network", "container:web", "bb"]);
    let joined_id = stdout(&joined).trim().to_string();
    assert_eq!(
        inspect(&b, &joined_id)["HostConfig"]["NetworkMode"],
        format!("container:{}", web["Id"].as_str().unwrap())
    );
    b.ok(&["rm", &joined_id]);

    // network ls and inspect: the three networks, web on the bridge with its address.
    let ls = b.ok(&["network", "ls"]);
    let words: Vec<Vec<&str>> = ls.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        words[0],
        ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"],
        "{ls}"
    );
    let names: Vec<(&str, &str)> = words[1..].iter().map(|w| (w[1], w[2])).collect();
    assert_eq!(
        names,
        [("bridge", "bridge"), ("host", "host"), ("none", "null")]
    );
    let ids = b.ok(&["network", "ls", "-q"]);
    assert_eq!(ids.lines().count(), 3, "{ids}");
    assert!(ids.lines().all(|l| l.len() == 12), "{ids}");
    let full = b.ok(&[
        "network",
        "ls",
        "--no-trunc",
        "--format",
        "{{.ID}} {{.Name}}",
    ]);
    let first = full.lines().next().unwrap();
    assert!(first.starts_with(ids.lines().next().unwrap()) && first.ends_with(" bridge"));
    assert_eq!(first.split(' ').next().unwrap().len(), 64, "{full}");
    assert_eq!(
        b.ok(&["network", "inspect", "-f", "{{.Driver}}", "none", "bridge"]),
        "null\nbridge\n"
    );
    let net: Value = serde_json::from_str(&b.ok(&["network", "inspect", "bridge"])).unwrap();
    assert_eq!(net[0]["IPAM"]["Config"][0]["Subnet"], "10.89.0.0/16");
    let web_id = web["Id"].as_str().unwrap();
    assert_eq!(
        net[0]["Containers"][web_id]["IPv4Address"],
        format!("{ip}/16")
    );
    assert_eq!(net[0]["Containers"][web_id]["Name"], "web");
    let o = out(&b, &["network", "inspect", "nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("No such network: nosuch"),
        "{}",
        stderr(&o)
    );

    // ps and port show the binding as docker does.
    let ps = b.ok(&["ps", "--format", "{{.Ports}}", "-f", "name=web"]);
    assert_eq!(ps.trim(), format!("0.0.0.0:{port}->80/tcp"));
    assert_eq!(
        b.ok(&["port", "web"]).trim(),
        format!("80/tcp -> 0.0.0.0:{port}")
    );
    assert_eq!(
        b.ok(&["port", "web", "80"]).trim(),
        format!("0.0.0.0:{port}")
    );

    // -P: the port the image exposes, on a free host port chosen at start.
    let tar = b.dir.path().join("rootfs.tar");
    b.ok(&[
        "import",
        "-c",
        "EXPOSE 80/tcp",
        tar.to_str().unwrap(),
        "bbx:1",
    ]);
    let mut args = vec!["run", "-d", "--name", "web2", "-P", "-v", &page, "bbx:1"];
    args.extend(httpd);
    b.ok(&args);
    let host = b.ok(&["port", "web2", "80/tcp"]);
    let chosen = host.trim().strip_prefix("0.0.0.0:").unwrap().to_string();
    eventually("httpd on the chosen port", || {
        http_get(&format!("127.0.0.1:{chosen}"), "/index.html").is_some()
    });

    // Conflicts and bad input: one line, 125, nothing left.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = listener.local_addr().unwrap().port();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["-p".into(), format!("{port}:80")],
            "port is already allocated",
        ),
        (
            vec!["-p".into(), format!("127.0.0.1:{busy}:80")],
            "address already in use",
        ),
        (vec!["-p".into(), "80/sctp".into()], "unknown protocol"),
        (vec!["-p".into(), "http".into()], "is not a port number"),
        (
            vec!["-p".into(), "8000-8001:80".into()],
            "ranges differ in length",
        ),
        (
            vec!["-p".into(), "1.2.3:80:80".into()],
            "invalid IP address: 1.2.3",
        ),
        (
            vec!["--network".into(), "none".into(), "-p".into(), "80".into()],
            "--network bridge",
        ),
        (vec!["--dns".into(), "nope".into()], "is not an ip address"),
        (vec!["--add-host".into(), "db".into()], "--add-host"),
        (
            vec!["--add-host".into(), "db:1.2.3".into()],
            "is not an IP address",
        ),
    ];
    // The rules on the two ports the failing runs ask for (other tests publish ports of
    // their own beside this one: counting every berth rule on the host would count theirs).
    let rules_on_these_ports = || {
        let ports = [format!("--dport {port} "), format!("--dport {busy} ")];
        net_traces()[2]
            .iter()
            .filter(|r| ports.iter().any(|p| r.contains(p.as_str())))
            .count()
    };
    let rules_before = rules_on_these_ports();
    assert_eq!(rules_before, 1, "web's own rule");
    for (flags, needle) in cases {
        let mut args = vec!["run", "--rm"];
        args.extend(flags.iter().map(String::as_str));
        args.extend(["bb", "true"]);
        let o = out(&b, &args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(125), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    drop(listener);
    assert_eq!(b.ok(&["ps", "-aq"]).lines().count(), 2, "only web and web2");
    assert_eq!(
        rules_on_these_ports(),
        rules_before,
        "no rule of the failed runs"
    );

    // Stopped: unplugged (no address, no rule); started again: plugged in again.
    let ids = [
        web["Id"].as_str().unwrap().to_string(),
        inspect(&b, "web2")["Id"].as_str().unwrap().to_string(),
    ];
    b.ok(&["stop", "-t", "1", "web"]);
    assert_eq!(inspect(&b, "web")["NetworkSettings"]["IPAddress"], "");
    let o = out(
        &b,
        &["run", "--rm", "--network", "container:web", "bb", "true"],
    );
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("cannot join network of a non running container"),
        "{}",
        stderr(&o)
    );
    assert!(!net_traces()[2].iter().any(|r| r.contains(&ids[0])));
    assert!(http_get(&format!("127.0.0.1:{port}"), "/").is_none());
    b.ok(&["start", "web"]);
    eventually("httpd after start", || body().is_some());
    // Removed: no veth, lease or rule of theirs is left.
    b.ok(&["rm", "-f", "web", "web2"]);
    // The kernel takes a veth pair away with its namespace, in the background.
    eventually("their veth pairs' end", || {
        let veths = &net_traces()[0];
        !ids.iter()
            .any(|id| veths.iter().any(|v| id.starts_with(&v[2..])))
    });
    let [_, leases, rules] = net_traces();
    for id in &ids {
        assert!(!rules.iter().any(|r| r.contains(id.as_str())), "{rules:?}");
        for l in &leases {
            let owner =
                std::fs::read_to_string(format!("/run/berth/net/berth0/{l}")).unwrap_or_default();
            assert!(!owner.starts_with(id.as_str()), "lease {l}: {owner}");
        }
    }
    assert!(http_get(&format!("127.0.0.1:{port}"), "/").is_none());

    // A container that exits by itself gives its port and address back, detached or not.
    let rules_of = |id: &str| {
        let [_, leases, rules] = net_traces();
        let leased = leases.iter().any(|l| {
            std::fs::read_to_string(format!("/run/berth/net/berth0/{l}"))
                .is_ok_and(|owner| owner.starts_with(id))
        });
        rules.iter().filter(|r| r.contains(id)).count() + usize::from(leased)
    };
    let publish = format!("{}:80", free_port());
    let id = b.ok(&["run", "-d", "-p", &publish, "bb", "sleep", "0.3"]);
    eventually("the exited container's ports given back", || {
        rules_of(id.trim()) == 0
    });
    b.ok(&["run", "--name", "fg", "-p", &publish, "bb", "true"]);
    assert_eq!(rules_of(inspect(&b, "fg")["Id"].as_str().unwrap()), 0);
    b.ok(&["rm", "fg", id.trim()]);

    // --dns, --dns-search, --dns-option and --add-host, host-gateway being the bridge's.
    let o = sh(
        &b,
        &[
            "--dns",
            "10.89.0.53",
            "--dns-search",
            "example.test",
            "--dns-option",
            "ndots:2",
            "--add-host",
            "db:10.1.2.3",
            "--add-host",
            "gw:host-gateway",
        ],
        "cat /etc/resolv.conf /etc/hosts",
    );
    let text = stdout(&o);
    for line in [
        "nameserver 10.89.0.53\n",
        "search example.test\n",
        "options ndots:2\n",
        "10.1.2.3\tdb\n",
        "10.89.0.1\tgw\n",
    ] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }
    assert_eq!(text.matches("nameserver").count(), 1, "{text}");

    // Out through NAT: a server in a network namespace of this test's own, reached over a
    // veth from the host, sees the host's address, not the container's.
    let ns = format!("berth-nat-{}", std::process::id());
    let ip_cmd = |args: &[&str]| run(Command::new("ip").args(args));
    ip_cmd(&["netns", "add", &ns]);
    let outside = Outside(ns.clone());
    ip_cmd(&[
        "link", "add", "bxnat0", "type", "veth", "peer", "name", "eth0", "netns", &ns,
    ]);
    ip_cmd(&["addr", "add", "10.90.7.1/24", "dev", "bxnat0"]);
    ip_cmd(&["link", "set", "bxnat0", "up"]);
    ip_cmd(&["-n", &ns, "addr", "add", "10.90.7.2/24", "dev", "eth0"]);
    ip_cmd(&["-n", &ns, "link", "set", "eth0", "up"]);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let nsfile = format!("/run/netns/{ns}");
    let server = std::thread::spawn(move || {
        let f = std::fs::File::open(nsfile).unwrap();
        use std::os::fd::AsRawFd;
        assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        let l = std::net::TcpListener::bind("10.90.7.2:8000").unwrap();
        ready_tx.send(()).unwrap();
        let (mut c, peer) = l.accept().unwrap();
        let mut buf = [0u8; 1024];
        let _ = c.read(&mut buf);
        c.write_all(b"HTTP/1.0 200 OK\r\n\r\noutside\n").unwrap();
        peer.ip().to_string()
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let o = sh(&b, &[], "wget -qO- http://10.90.7.2:8000/");
    assert_eq!(stdout(&o), "outside\n", "{}", stderr(&o));
    assert_eq!(
        server.join().unwrap(),
        "10.90.7.1",
        "the source is masqueraded"
    );
    drop(outside);
}

/// A network namespace of a test's own, deleted (with its veth) when dropped.
struct Outside(String);

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn root_bridge_from_the_config_file() {
    let _host = shared();
    let b = setup();
    let n = std::process::id() % 200 + 20;
    let name = format!("btest{n}");
    let subnet = format!("10.91.{n}.0/24");
    let config = b.dir.path().join("config.toml");
    let base = std::fs::read_to_string(&config).unwrap_or_default();
    let write =
        |bridge: &str| std::fs::write(&config, format!("{base}\n[bridge]\n{bridge}\n")).unwrap();
    let cleanup = HostBridge {
        name: name.clone(),
        subnet: subnet.clone(),
    };
    write(&format!("name = \"{name}\"\naddress = \"10.91.{n}.1/24\""));
    let o = sh(
        &b,
        &[],
        "ip -o -4 addr show eth0 && ip route && cat /sys/class/net/eth0/address",
    );
    let text = stdout(&o);
    assert!(
        text.contains(&format!("inet 10.91.{n}.2/24")),
        "{text}{}",
        stderr(&o)
    );
    assert!(text.contains(&format!("default via 10.91.{n}.1")), "{text}");
    assert!(text.contains(&format!("02:42:0a:5b:{n:02x}:02")), "{text}");
    assert!(std::path::Path::new("/sys/class/net").join(&name).exists());
    let net: Value = serde_json::from_str(&b.ok(&["network", "inspect", "bridge"])).unwrap();
    assert_eq!(net[0]["IPAM"]["Config"][0]["Subnet"], subnet.as_str());
    // A bad section: one line naming the key, before anything is made.
    for (section, key) in [
        (
            format!("name = \"{name}\"\naddress = \"10.91.{n}.0/24\""),
            "bridge.address",
        ),
        (
            format!("name = \"{name}\"\naddress = \"10.91.{n}.1/31\""),
            "bridge.address",
        ),
        ("name = \"a-name-far-too-long\"".to_string(), "bridge.name"),
        ("colour = \"blue\"".to_string(), "colour"),
    ] {
        write(&section);
        let o = out(&b, &["run", "--rm", "bb", "true"]);
        assert_eq!(o.status.code(), Some(125), "{section}");
        assert!(stderr(&o).contains(key), "{section}: {}", stderr(&o));
        assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));
    }
    std::fs::write(&config, &base).unwrap();
    // Links and addresses go through netlink: on a bridge that is ready, a container starts
    // with no program at all on the PATH. Rules need iptables: without it, publishing a port
    // fails with one line that says what to do, and nothing is left.
    write(&format!("name = \"{name}\"\naddress = \"10.91.{n}.1/24\""));
    let no_path = |args: &[&str]| b.cmd(args).env("PATH", "/nonexistent").output().unwrap();
    let o = no_path(&["run", "--rm", "bb", "true"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = no_path(&["run", "--rm", "-p", "80", "bb", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("is not installed") && stderr(&o).contains("--network none"),
        "{}",
        stderr(&o)
    );
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    std::fs::write(&config, &base).unwrap();
    drop(cleanup);
}

/// A bridge a test had berth make, removed with its NAT and FORWARD rules and its leases.
struct HostBridge {
    name: String,
    subnet: String,
}

impl Drop for HostBridge {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.name])
            .status();
        for table in ["nat", "filter", "raw"] {
            let o = Command::new("iptables")
                .args(["-w", "-t", table, "-S"])
                .output()
                .unwrap();
            for rule in stdout(&o).lines() {
                let words: Vec<&str> = rule.split_whitespace().collect();
                if words.first() == Some(&"-A")
                    && words.iter().any(|w| *w == self.name || *w == self.subnet)
                {
                    let mut args = vec!["-w", "-t", table, "-D"];
                    args.extend(&words[1..]);
                    let _ = Command::new("iptables").args(&args).status();
                }
            }
        }
        let _ = std::fs::remove_dir_all(format!("/run/berth/net/{}", self.name));
        let _ = std::fs::remove_file(format!("/run/berth/net/{}.net", self.name));
    }
}
