//! The rest of `docker run`, as root: `--mount` (bind, volume, tmpfs; propagation),
//! `--volumes-from`, `--init`, `--cidfile`, `-a`, `--expose`, `--domainname`,
//! `--mac-address`, `--annotation`, `--pid/--ipc/--uts/--userns`, each checked from inside
//! the container and in `inspect`, and bad values refused in docker's words (taken from
//! docker 20.10) with its exit code. Every test needs root and fails without it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::root_containers::{eventually, inspect, out, setup, sh, shared, stderr, stdout};
use crate::root_lifecycle::refused_as_docker_does;
use crate::util::run;

/// A tmpfs mounted by the test at `dir` (shared or private), unmounted (with what is under
/// it) on drop.
struct HostMount(std::path::PathBuf);

impl HostMount {
    fn new(dir: &Path, propagation: &str) -> HostMount {
        std::fs::create_dir_all(dir).unwrap();
        run(Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(dir));
        run(Command::new("mount")
            .arg(format!("--make-{propagation}"))
            .arg(dir));
        HostMount(dir.to_path_buf())
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-R").arg(&self.0).status();
    }
}

#[test]
fn root_mount_long_form_applies_each_type() {
    let _host = shared();
    let b = setup();
    let src = b.dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), "from the host\n").unwrap();
    let bind_ro = format!("type=bind,source={},target=/x,readonly", src.display());
    // A read-only bind: readable, not writable.
    let o = sh(
        &b,
        &["--network", "none", "--mount", &bind_ro],
        "cat /x/f; echo > /x/g",
    );
    assert_eq!(stdout(&o), "from the host\n");
    assert!(
        stderr(&o).contains("Read-only file system"),
        "{}",
        stderr(&o)
    );
    // A tmpfs with docker's options, size and mode.
    let o = sh(
        &b,
        &[
            "--network",
            "none",
            "--mount",
            "type=tmpfs,destination=/t,tmpfs-size=1m,tmpfs-mode=1770",
        ],
        "grep ' /t ' /proc/mounts; stat -c %a /t",
    );
    assert_eq!(
        stdout(&o),
        "tmpfs /t tmpfs rw,nosuid,nodev,noexec,relatime,size=1024k,mode=1770 0 0\n1770\n"
    );
    // A named volume outlives its container and is shared; read-only where asked.
    let o = sh(
        &b,
        &["--network", "none", "--mount", "type=volume,src=lv,dst=/v"],
        "echo kept > /v/d",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = sh(
        &b,
        &["--network", "none", "--mount", "source=lv,target=/v,ro"],
        "cat /v/d; echo > /v/e",
    );
    assert_eq!(stdout(&o), "kept\n");
    assert!(stderr(&o).contains("Read-only file system"));
    // An anonymous volume is filled from the image unless volume-nocopy.
    let o = sh(
        &b,
        &[
            "--network",
            "none",
            "--mount",
            "type=volume,target=/srv/app",
        ],
        "cat /srv/app/seed",
    );
    assert_eq!(stdout(&o), "from the image\n");
    let o = sh(
        &b,
        &[
            "--network",
            "none",
            "--mount",
            "type=volume,target=/srv/app,volume-nocopy",
        ],
        "ls /srv/app | wc -l",
    );
    assert_eq!(stdout(&o).trim(), "0");
    // inspect: docker's HostConfig.Mounts and Mounts.
    b.ok(&[
        "create",
        "--name",
        "mnt",
        "--network",
        "none",
        "--mount",
        &bind_ro,
        "--mount",
        "type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=700",
        "--mount",
        "type=volume,source=lv,target=/v,volume-nocopy",
        "bb",
    ]);
    let c = inspect(&b, "mnt");
    assert_eq!(
        c["HostConfig"]["Mounts"],
        json!([
            {"Type": "bind", "Source": src.display().to_string(), "Target": "/x", "ReadOnly": true},
            {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 448}},
            {"Type": "volume", "Source": "lv", "Target": "/v", "VolumeOptions": {"NoCopy": true}},
        ])
    );
    let mounts = c["Mounts"].as_array().unwrap();
    assert_eq!(mounts[0]["Propagation"], "rprivate");
    assert_eq!(mounts[0]["RW"], false);
    assert_eq!(mounts[1]["Type"], "tmpfs");
    assert_eq!(mounts[1]["Source"], "");
    assert_eq!(mounts[2]["Name"], "lv");
}

#[test]
fn root_mount_bind_propagation_reaches_the_container() {
    let _host = shared();
    let b = setup();
    let shared_dir = b.dir.path().join("shared");
    let _m = HostMount::new(&shared_dir, "shared");
    let private_dir = b.dir.path().join("private");
    let _p = HostMount::new(&private_dir, "private");
    let arg = |dir: &Path, mode: &str| {
        format!(
            "type=bind,source={},target=/x,bind-propagation={mode}",
            dir.display()
        )
    };
    for (name, mode) in [("slave", "rslave"), ("private", "rprivate")] {
        b.ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            name,
            "--mount",
            &arg(&shared_dir, mode),
            "bb",
            "sleep",
            "1000",
        ]);
    }
    assert_eq!(inspect(&b, "slave")["Mounts"][0]["Propagation"], "rslave");
    // A mount made on the host afterwards reaches the rslave bind only.
    let sub = shared_dir.join("sub");
    std::fs::create_dir(&sub).unwrap();
    run(Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&sub));
    std::fs::write(sub.join("f"), "propagated\n").unwrap();
    assert_eq!(b.ok(&["exec", "slave", "cat", "/x/sub/f"]), "propagated\n");
    let o = out(&b, &["exec", "private", "cat", "/x/sub/f"]);
    assert!(!o.status.success(), "{}", stdout(&o));
    // docker's rule: nothing can propagate from a private mount.
    let o = out(
        &b,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "--mount",
            &arg(&private_dir, "rslave"),
            "bb",
            "true",
        ],
    );
    assert_eq!(o.status.code(), Some(125));
    assert_eq!(
        stderr(&o).trim(),
        format!(
            "berth: path {} is mounted on {} but it is not a shared or slave mount",
            private_dir.display(),
            private_dir.display()
        )
    );
    b.ok(&["rm", "-f", "slave", "private"]);
}

#[test]
fn root_bad_mounts_and_modes_are_refused_as_docker_does() {
    let _host = shared();
    let b = setup();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--mount", "type=bogus,target=/x"],
            "invalid mount config for type \"bogus\": mount type unknown",
        ),
        (
            &["--mount", "type=bind,source=/does/not/exist,target=/x"],
            "invalid mount config for type \"bind\": bind source path does not exist: /does/not/exist",
        ),
        (
            &["--mount", "type=bind,target=/x"],
            "invalid mount config for type \"bind\": field Source must not be empty",
        ),
        (
            &["--mount", "type=bind,source=/tmp"],
            "invalid argument \"type=bind,source=/tmp\" for \"--mount\" flag: target is required",
        ),
        (
            &["--mount", "type=tmpfs,source=/x,target=/y"],
            "invalid mount config for type \"tmpfs\": field Source must not be specified",
        ),
        (
            &["--mount", "type=tmpfs,target=/x,tmpfs-size=abc"],
            "for \"--mount\" flag: invalid value for tmpfs-size: abc",
        ),
        (
            &["--mount", "type=tmpfs,target=/x,tmpfs-mode=999"],
            "for \"--mount\" flag: invalid value for tmpfs-mode: 999",
        ),
        (
            &["--mount", "type=bind,source=/tmp,target=/x,bind-propagation=bogus"],
            "invalid mount config for type \"bind\": invalid propagation mode: bogus",
        ),
        (
            &["--mount", "type=bind,source=/tmp,target=/x,volume-nocopy"],
            "cannot mix 'volume-*' options with mount type 'bind'",
        ),
        (
            &["--mount", "type=volume,target=/x,bind-propagation=rshared"],
            "cannot mix 'bind-*' options with mount type 'volume'",
        ),
        (
            &["--mount", "type=bind,source=/tmp,target=/x,tmpfs-size=1m"],
            "cannot mix 'tmpfs-*' options with mount type 'bind'",
        ),
        (
            &["--mount", "type=bind,source=/tmp,target=x"],
            "invalid mount path: 'x' mount path must be absolute",
        ),
        (
            &["--mount", "type=bind,source=tmp,target=/x"],
            "invalid mount path: 'tmp' mount path must be absolute",
        ),
        (
            &["--mount", "type=bind,source=/tmp,target=/"],
            "invalid specification: destination can't be '/'",
        ),
        (
            &["--mount", "type=bind,source=/tmp,target=/x,readonly=maybe"],
            "invalid value for readonly: maybe",
        ),
        (
            &["--mount", "bogus=1,target=/x"],
            "unexpected key 'bogus' in 'bogus=1'",
        ),
        (
            &["--mount", "type=bind,source=/tmp,target=/x,foo"],
            "invalid field 'foo' must be a key=value pair",
        ),
        (
            &["--mount", "type=volume,source=a/b,target=/x"],
            "\"a/b\" includes invalid characters for a local volume name",
        ),
        (
            &["--mount", "type=volume,target=/x,ro"],
            "must not set ReadOnly mode when using anonymous volumes",
        ),
        (
            &["--mount", "type=bind,source=/tmp,target=/x", "-v", "/tmp:/x"],
            "Duplicate mount point: /x",
        ),
        (&["--mount", ""], "for \"--mount\" flag: EOF"),
        (&["--volumes-from", "nope"], "No such container: nope"),
        (&["--volumes-from", "bb-src:bogus"], "invalid mode: bogus"),
        (
            &["--volumes-from", ""],
            "volumes-from specification cannot be an empty string",
        ),
        (&["--pid", "bogus"], "--pid: invalid PID mode"),
        (&["--pid", "container:"], "--pid: invalid PID mode"),
        (&["--pid", "container:nope"], "No such container: nope"),
        (&["--ipc", "bogus"], "Invalid IPC mode: bogus"),
        (&["--uts", "bogus"], "--uts: invalid UTS mode"),
        (&["--uts", "container:bb-src"], "--uts: invalid UTS mode"),
        (
            &["--uts", "host", "-h", "foo"],
            "conflicting options: hostname and the UTS mode",
        ),
        (&["--userns", "bogus"], "--userns: invalid USER mode"),
        (&["--mac-address", "bogus"], "bogus is not a valid mac address"),
        (
            &["--mac-address", "02:42:ac:11:00:99", "--network", "none"],
            "conflicting options: mac-address and the network mode",
        ),
        (
            &["--expose", "bogus"],
            "invalid range format for --expose: bogus, error: strconv.ParseUint: parsing \"bogus\": invalid syntax",
        ),
        (
            &["--expose", "70000"],
            "invalid range format for --expose: 70000, error: strconv.ParseUint: parsing \"70000\": value out of range",
        ),
        (
            &["-a", "bogus"],
            "invalid argument \"bogus\" for \"-a, --attach\" flag: valid streams are STDIN, STDOUT and STDERR",
        ),
        (&["--annotation", "novalue"], "for \"--annotation\" flag"),
        (&["--stop-signal", "65"], "Invalid signal: 65"),
        (&["--stop-signal", "SIGRTMIN+31"], "Invalid signal: SIGRTMIN+31"),
    ];
    b.ok(&["create", "--name", "bb-src", "bb", "true"]);
    refused_as_docker_does(&b, cases);
    // Nothing was created by any of them.
    assert_eq!(b.ok(&["ps", "-aq"]).lines().count(), 1);
    let o = out(&b, &["run", "-d", "-a", "stdout", "bb", "true"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), "Conflicting options: -a and -d\n");
}

#[test]
fn root_volumes_from_takes_the_other_containers_mounts() {
    let _host = shared();
    let b = setup();
    let src = b.dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    b.ok(&[
        "run",
        "--network",
        "none",
        "--name",
        "donor",
        "-v",
        "/data",
        "--mount",
        "type=tmpfs,target=/t",
        "bb",
        "sh",
        "-c",
        "echo shared > /data/f",
    ]);
    let o = sh(
        &b,
        &["--network", "none", "--volumes-from", "donor"],
        "cat /data/f; echo more >> /data/f; grep ' /t ' /proc/mounts | wc -l",
    );
    assert_eq!(stdout(&o), "shared\n1\n", "{}", stderr(&o));
    let o = sh(
        &b,
        &["--network", "none", "--volumes-from", "donor:ro"],
        "cat /data/f; echo > /data/g",
    );
    assert_eq!(stdout(&o), "shared\nmore\n");
    assert!(stderr(&o).contains("Read-only file system"));
    // The container's own mounts win over the ones it takes.
    let own = format!("{}:/data", src.display());
    let o = sh(
        &b,
        &["--network", "none", "--volumes-from", "donor", "-v", &own],
        "ls /data | wc -l",
    );
    assert_eq!(stdout(&o).trim(), "0");
    let id = b.ok(&["inspect", "-f", "{{.Id}}", "donor"]);
    b.ok(&[
        "create",
        "--name",
        "taker",
        "--volumes-from",
        "donor:ro",
        "bb",
    ]);
    let c = inspect(&b, "taker");
    assert_eq!(
        c["HostConfig"]["VolumesFrom"],
        json!([format!("{}:ro", id.trim())])
    );
    assert_eq!(c["Mounts"][0]["Destination"], "/data");
    // The taker's removal with -v leaves the donor's volume alone.
    b.ok(&["rm", "-v", "taker"]);
    let o = sh(
        &b,
        &["--network", "none", "--volumes-from", "donor"],
        "cat /data/f",
    );
    assert_eq!(stdout(&o), "shared\nmore\n");
}

#[test]
fn root_init_reaps_zombies_and_forwards_signals() {
    let _host = shared();
    let b = setup();
    // An orphan's parent becomes pid 1; a sleep as pid 1 never reaps it, the init does.
    let script = "(sleep 0.1 &); exec sleep 1000";
    for (name, init) in [("bare", false), ("reaped", true)] {
        let mut args = vec!["run", "-d", "--network", "none", "--name", name];
        if init {
            args.push("--init");
        }
        args.extend_from_slice(&["bb", "sh", "-c", script]);
        b.ok(&args);
    }
    let zombies = |name: &str| {
        b.ok(&["exec", name, "ps", "-o", "stat"])
            .lines()
            .filter(|l| l.trim_start().starts_with('Z'))
            .count()
    };
    eventually("a zombie under a bare pid 1", || zombies("bare") == 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(zombies("reaped"), 0);
    // pid 1 is the init, the command its child.
    let ps = b.ok(&["exec", "reaped", "cat", "/proc/1/comm", "/proc/2/comm"]);
    assert_eq!(ps, "init\nsleep\n");
    assert_eq!(inspect(&b, "reaped")["HostConfig"]["Init"], true);
    // stop's SIGTERM reaches the command through the init (a bare pid 1 ignores it and
    // waits for the SIGKILL): its status is SIGTERM's 143, not the SIGKILL's 137 after -t.
    b.ok(&["stop", "-t", "20", "reaped"]);
    assert_eq!(
        b.ok(&["inspect", "-f", "{{.State.ExitCode}}", "reaped"])
            .trim(),
        "143"
    );
    // The command's status is the container's.
    let o = out(
        &b,
        &[
            "run",
            "--rm",
            "--init",
            "--network",
            "none",
            "bb",
            "sh",
            "-c",
            "exit 7",
        ],
    );
    assert_eq!(o.status.code(), Some(7));
    let o = out(
        &b,
        &["run", "--rm", "--init", "--network", "none", "bb", "nope"],
    );
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    b.ok(&["rm", "-f", "bare", "reaped"]);
}

#[test]
fn root_cidfile_attach_expose_domainname_mac_annotation_label_file() {
    let _host = shared();
    let b = setup();
    // --cidfile: the id, and an existing file refused before anything is created.
    let cid = b.dir.path().join("cid");
    let cid_arg = cid.to_str().unwrap();
    b.ok(&["create", "--cidfile", cid_arg, "--name", "c1", "bb", "true"]);
    let id = b.ok(&["inspect", "-f", "{{.Id}}", "c1"]);
    assert_eq!(std::fs::read_to_string(&cid).unwrap(), id.trim());
    let o = out(&b, &["run", "--cidfile", cid_arg, "bb", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert_eq!(
        stderr(&o).trim(),
        format!(
            "berth: container ID file found, make sure the other container isn't running or \
             delete {cid_arg}"
        )
    );
    assert_eq!(b.ok(&["ps", "-aq"]).lines().count(), 1);
    // A failed create leaves no file behind.
    let cid2 = b.dir.path().join("cid2");
    let o = out(
        &b,
        &[
            "create",
            "--pull",
            "never",
            "--cidfile",
            cid2.to_str().unwrap(),
            "nosuchimage",
            "true",
        ],
    );
    assert_eq!(o.status.code(), Some(125));
    assert!(!cid2.exists());
    // -a: only the streams named reach the person.
    for (stream, to_out, to_err) in [("stdout", "out\n", ""), ("STDERR", "", "err\n")] {
        let o = out(
            &b,
            &[
                "run",
                "--rm",
                "--network",
                "none",
                "-a",
                stream,
                "bb",
                "sh",
                "-c",
                "echo out; echo err >&2",
            ],
        );
        assert_eq!((stdout(&o).as_str(), stderr(&o).as_str()), (to_out, to_err));
    }
    // --domainname in the uts namespace.
    let o = sh(
        &b,
        &["--network", "none", "--domainname", "example.org"],
        "cat /proc/sys/kernel/domainname",
    );
    assert_eq!(stdout(&o), "example.org\n");
    // --expose: in inspect, and -P publishes it; --mac-address on eth0; --label-file's
    // lines (comments and blank lines skipped) under the -l labels.
    let labels = b.dir.path().join("labels");
    std::fs::write(&labels, "# a comment\n\n  from=file\nboth=file\nbare\n").unwrap();
    b.ok(&[
        "run",
        "-d",
        "--label-file",
        labels.to_str().unwrap(),
        "-l",
        "both=flag",
        "--name",
        "web",
        "--expose",
        "8080",
        "--expose",
        "9000-9001/udp",
        "-P",
        "--mac-address",
        "02:42:AC:11:00:99",
        "--domainname",
        "example.org",
        "--annotation",
        "org.example.note=kept",
        "bb",
        "sleep",
        "1000",
    ]);
    let c = inspect(&b, "web");
    assert_eq!(
        c["Config"]["ExposedPorts"],
        json!({"8080/tcp": {}, "9000/udp": {}, "9001/udp": {}})
    );
    assert_eq!(c["Config"]["Domainname"], "example.org");
    assert_eq!(c["Config"]["MacAddress"], "02:42:ac:11:00:99");
    assert_eq!(
        c["Config"]["Labels"],
        json!({"from": "file", "both": "flag", "bare": ""})
    );
    assert_eq!(
        c["HostConfig"]["Annotations"],
        json!({"org.example.note": "kept"})
    );
    // The annotation reaches the runtime's Spec.
    let spec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            b.root
                .join("containers")
                .join(c["Id"].as_str().unwrap())
                .join("run/config.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(spec["annotations"]["org.example.note"], "kept");
    assert_eq!(spec["domainname"], "example.org");
    let ports = &c["NetworkSettings"]["Ports"];
    for p in ["8080/tcp", "9000/udp", "9001/udp"] {
        let host_port = ports[p][0]["HostPort"].as_str().unwrap_or_default();
        assert!(host_port.parse::<u16>().unwrap_or(0) > 0, "{p}: {ports}");
    }
    assert_eq!(
        b.ok(&["exec", "web", "cat", "/sys/class/net/eth0/address"]),
        "02:42:ac:11:00:99\n"
    );
    assert_eq!(c["NetworkSettings"]["MacAddress"], "02:42:ac:11:00:99");
    b.ok(&["rm", "-f", "web", "c1"]);
}

#[test]
fn root_pid_ipc_uts_cgroupns_userns_modes() {
    let _host = shared();
    let b = setup();
    let host_pids = std::fs::read_dir("/proc")
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        })
        .count();
    // --pid host: the host's processes.
    let o = sh(
        &b,
        &["--network", "none", "--pid", "host"],
        "ls /proc | grep -c '^[0-9]'",
    );
    let seen: usize = stdout(&o).trim().parse().unwrap();
    assert!(seen > 10 && seen + 50 > host_pids, "{seen} of {host_pids}");
    b.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "donor",
        "--ipc",
        "shareable",
        "--shm-size",
        "8m",
        "bb",
        "sleep",
        "1000",
    ]);
    b.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "private",
        "bb",
        "sleep",
        "1000",
    ]);
    // --pid container:X: X's processes, X's sleep as pid 1.
    let o = sh(
        &b,
        &["--network", "none", "--pid", "container:donor"],
        "cat /proc/1/comm",
    );
    assert_eq!(stdout(&o), "sleep\n");
    // --ipc: the donor's namespace (shareable only), the host's, or no /dev/shm.
    let ns = |name: &str| b.ok(&["exec", name, "readlink", "/proc/self/ns/ipc"]);
    let o = sh(
        &b,
        &["--network", "none", "--ipc", "container:donor"],
        "readlink /proc/self/ns/ipc",
    );
    assert_eq!(stdout(&o), ns("donor"));
    assert_ne!(ns("donor"), ns("private"));
    let o = sh(
        &b,
        &["--network", "none", "--ipc", "container:private"],
        "true",
    );
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("non-shareable IPC"), "{}", stderr(&o));
    let o = sh(
        &b,
        &["--network", "none", "--ipc", "host"],
        "readlink /proc/self/ns/ipc",
    );
    let host_ipc = std::fs::read_link("/proc/self/ns/ipc")
        .unwrap()
        .display()
        .to_string();
    assert_eq!(stdout(&o).trim(), host_ipc);
    // Joining a container that uses the host's IPC is the host's, /dev/shm included.
    let donor: Vec<&str> = "run -d --network none --name hostipc --ipc host bb sleep 1000"
        .split(' ')
        .collect();
    b.ok(&donor);
    let on_host = format!("berth-test-{}", std::process::id());
    std::fs::write(Path::new("/dev/shm").join(&on_host), "from-host\n").unwrap();
    let o = sh(
        &b,
        &["--network", "none", "--ipc", "container:hostipc"],
        &format!("readlink /proc/self/ns/ipc; cat /dev/shm/{on_host}"),
    );
    let _ = std::fs::remove_file(Path::new("/dev/shm").join(&on_host));
    assert_eq!(
        stdout(&o),
        format!("{host_ipc}\nfrom-host\n"),
        "{}",
        stderr(&o)
    );
    b.ok(&["rm", "-f", "hostipc"]);
    // A joiner has the donor's /dev/shm too (the same files, both ways; the donor's
    // --shm-size), a private container its own.
    b.ok(&["exec", "donor", "sh", "-c", "echo from-donor > /dev/shm/f"]);
    let o = sh(
        &b,
        &["--network", "none", "--ipc", "container:donor"],
        "cat /dev/shm/f; echo from-joiner > /dev/shm/g; grep ' /dev/shm ' /proc/mounts",
    );
    let seen = stdout(&o);
    assert!(seen.starts_with("from-donor\n"), "{seen}{}", stderr(&o));
    assert!(seen.contains(",size=8192k"), "{seen}");
    assert_eq!(
        b.ok(&["exec", "donor", "cat", "/dev/shm/g"]),
        "from-joiner\n"
    );
    assert_eq!(
        out(&b, &["exec", "private", "ls", "/dev/shm/f"])
            .status
            .code(),
        Some(1)
    );
    let donor_id = inspect(&b, "donor")["Id"].as_str().unwrap().to_string();
    let shm_mounted = || {
        std::fs::read_to_string("/proc/self/mounts")
            .unwrap()
            .lines()
            .any(|l| l.contains(&format!("{donor_id}/shm ")))
    };
    assert!(shm_mounted(), "the donor's /dev/shm lives on the host");
    let o = sh(&b, &["--network", "none", "--ipc", "none"], "ls /dev/shm");
    assert!(!o.status.success());
    assert_eq!(inspect(&b, "private")["HostConfig"]["IpcMode"], "private");
    assert_eq!(inspect(&b, "donor")["HostConfig"]["IpcMode"], "shareable");
    // --uts host: the host's name.
    let o = sh(&b, &["--network", "none", "--uts", "host"], "hostname");
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(stdout(&o), host_name);
    // --userns host is every berth container's (no remapping): accepted and shown.
    b.ok(&[
        "create", "--name", "uu", "--userns", "host", "--uts", "host", "bb",
    ]);
    let c = inspect(&b, "uu");
    assert_eq!(c["HostConfig"]["UsernsMode"], "host");
    assert_eq!(c["HostConfig"]["UTSMode"], "host");
    // --cgroupns: the container's own cgroup namespace (berth's default, shown as private),
    // or the host's, where /proc/self/cgroup names the container's cgroup by its full path.
    let host_cgroupns = std::fs::read_link("/proc/self/ns/cgroup").unwrap();
    let host_cgroupns = format!("{}\n", host_cgroupns.display());
    let script = "readlink /proc/self/ns/cgroup; cat /proc/self/cgroup";
    let own = stdout(&sh(&b, &["--network", "none"], script));
    assert!(!own.starts_with(&host_cgroupns), "{own}");
    assert!(!own.contains("/berth"), "{own}");
    let o = sh(&b, &["--network", "none", "--cgroupns", "host"], script);
    let host = stdout(&o);
    assert!(host.starts_with(&host_cgroupns), "{host}{}", stderr(&o));
    assert!(host.contains("/berth/"), "{host}");
    assert_eq!(
        inspect(&b, "private")["HostConfig"]["CgroupnsMode"],
        "private"
    );
    b.ok(&[
        "create",
        "--name",
        "cg",
        "--cgroupns",
        "host",
        "--network",
        "none",
        "bb",
    ]);
    assert_eq!(inspect(&b, "cg")["HostConfig"]["CgroupnsMode"], "host");
    let o = sh(&b, &["--cgroupns", "shared"], "true");
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("--cgroupns: invalid CGROUP mode"),
        "{}",
        stderr(&o)
    );
    b.ok(&["rm", "-f", "donor", "private", "uu", "cg"]);
    assert!(!shm_mounted(), "a removed donor's /dev/shm is unmounted");
}

#[test]
fn root_flags_after_the_image_belong_to_the_command() {
    let _host = shared();
    let b = setup();
    // As docker's: parsing stops at the image; `-c` after it is sh's, before it --cpu-shares.
    let o = out(
        &b,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "sh",
            "bb",
            "-c",
            "echo hi",
        ],
    );
    assert_eq!((stdout(&o).as_str(), o.status.code()), ("hi\n", Some(0)));
    let o = out(
        &b,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "bb",
            "echo",
            "-d",
            "--name",
            "x",
            "-e",
            "A=1",
        ],
    );
    assert_eq!(stdout(&o), "-d --name x -e A=1\n");
    b.ok(&[
        "create", "--name", "cs", "-c", "512", "bb", "sh", "-c", "true", "-c", "3", "--rm",
    ]);
    let c = inspect(&b, "cs");
    assert_eq!(c["HostConfig"]["CpuShares"], 512);
    assert_eq!(c["HostConfig"]["AutoRemove"], false);
    assert_eq!(
        c["Config"]["Cmd"],
        json!(["sh", "-c", "true", "-c", "3", "--rm"])
    );
    // An unknown flag before the image is still refused.
    let o = out(&b, &["create", "--bogus", "bb"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--bogus"), "{}", stderr(&o));
    // exec: after the container, everything is the command's.
    b.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "ex",
        "bb",
        "sleep",
        "1000",
    ]);
    assert_eq!(
        b.ok(&["exec", "ex", "echo", "-d", "-it", "--user", "x"]),
        "-d -it --user x\n"
    );
    let o = out(&b, &["exec", "ex", "-d"]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    assert!(stderr(&o).contains("-d"), "{}", stderr(&o));
    b.ok(&["rm", "-f", "cs", "ex"]);
}

#[test]
fn root_lifecycle_leftovers_start_interval_restart_event_signals_image_healthcheck() {
    let _host = shared();
    let b = setup();
    let field = |name: &str, template: &str| {
        b.ok(&["inspect", "--format", template, name])
            .trim()
            .to_string()
    };
    // --health-start-interval: probes every 200 ms while starting within the start period,
    // though the interval is an hour.
    b.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "quick",
        "--health-cmd",
        "true",
        "--health-interval",
        "1h",
        "--health-start-period",
        "1m",
        "--health-start-interval",
        "200ms",
        "bb",
        "sleep",
        "1000",
    ]);
    eventually("healthy within the start period", || {
        field("quick", "{{.State.Health.Status}}") == "healthy"
    });
    // In the order of the fields of docker's HealthConfig, as docker's `json` writes it.
    assert_eq!(
        field("quick", "{{json .Config.Healthcheck}}"),
        r#"{"Test":["CMD-SHELL","true"],"Interval":3600000000000,"StartPeriod":60000000000,"StartInterval":200000000}"#
    );
    let o = out(
        &b,
        &[
            "create",
            "--health-cmd",
            "true",
            "--health-start-interval",
            "0.5ms",
            "bb",
        ],
    );
    assert_eq!(o.status.code(), Some(125));
    assert_eq!(
        stderr(&o).trim(),
        "berth: StartInterval in Healthcheck cannot be less than 1ms"
    );
    // The image's HEALTHCHECK (built with `berth build`) runs without any flag.
    let dockerfile = "FROM bb\nHEALTHCHECK --interval=200ms --retries=2 CMD test -e /tmp/ok\n";
    let o = crate::util::run_with_input(
        &mut b.cmd(&["build", "-q", "-t", "hcimg", "-"]),
        Some(dockerfile.as_bytes()),
        Duration::from_secs(120),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    b.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "imagehc",
        "hcimg",
        "sh",
        "-c",
        "touch /tmp/ok; exec sleep 1000",
    ]);
    eventually("the image's check healthy", || {
        field("imagehc", "{{.State.Health.Status}}") == "healthy"
    });
    b.ok(&["exec", "imagehc", "rm", "/tmp/ok"]);
    eventually("the image's check unhealthy", || {
        field("imagehc", "{{.State.Health.Status}}") == "unhealthy"
    });
    assert_eq!(
        field("imagehc", "{{json .Config.Healthcheck}}"),
        r#"{"Test":["CMD-SHELL","test -e /tmp/ok"],"Interval":200000000,"Retries":2}"#
    );
    // A restart by the policy is a `restart` event in the journal, after the run's start.
    b.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "again",
        "--restart",
        "on-failure:1",
        "bb",
        "sh",
        "-c",
        "exit 1",
    ]);
    let id = field("again", "{{.Id}}");
    let actions = || -> Vec<String> {
        crate::root_events::journal(&b.root)
            .into_iter()
            .filter(|e| e["id"] == id.as_str())
            .map(|e| e["Action"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    eventually("the second run's exit", || {
        actions().iter().filter(|a| *a == "die").count() == 2
    });
    assert_eq!(
        actions(),
        ["create", "start", "die", "start", "restart", "die"]
    );
    // Numeric and real-time stop signals reach the command.
    for (name, signal) in [("num", "37"), ("rt", "SIGRTMIN+3")] {
        b.ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            name,
            "--stop-signal",
            signal,
            "bb",
            "sh",
            "-c",
            "trap 'exit 5' 37; while true; do sleep 0.1; done",
        ]);
        assert_eq!(field(name, "{{.Config.StopSignal}}"), signal);
        // The trap's 5, not the SIGKILL's 137 after -t.
        b.ok(&["stop", "-t", "20", name]);
        assert_eq!(field(name, "{{.State.ExitCode}}"), "5");
    }
    b.ok(&["rm", "-f", "quick", "imagehc", "again", "num", "rt"]);
}

/// The pids of the `berth __supervise` processes of container `id`.
fn supervisors_of(id: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
                args.contains(&&b"__supervise"[..]) && args.contains(&id.as_bytes())
            })
        })
        .collect()
}

#[test]
fn root_restarting_from_the_exit_on() {
    let _host = shared();
    let b = setup();
    let id = b
        .ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--restart",
            "always",
            "--name",
            "rs",
            "bb",
            "sh",
            "-c",
            "sleep 1; exit 2",
        ])
        .trim()
        .to_string();
    let sups = supervisors_of(&id);
    assert_eq!(sups.len(), 1, "one supervisor: {sups:?}");
    // Once it holds its lock (a shared lock of ours is refused), it is the one watching.
    let lock = b.root.join(format!("containers/{id}/supervisor.lock"));
    eventually("the supervisor's lock", || {
        use std::os::fd::AsRawFd;
        let Ok(f) = std::fs::File::open(&lock) else {
            return false;
        };
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
        r != 0
    });
    // Its supervisor held still: the exit alone makes it `restarting` (docker's daemon marks
    // it in the step that sees the exit), never `exited` in between.
    unsafe { libc::kill(sups[0], libc::SIGSTOP) };
    let status = || {
        b.ok(&[
            "inspect",
            "--format",
            "{{.State.Status}} {{.State.Restarting}} {{.State.Running}} {{.State.ExitCode}}",
            "rs",
        ])
        .trim()
        .to_string()
    };
    eventually("the exit", || !status().starts_with("running"));
    assert_eq!(status(), "restarting true true 2");
    let ps = b.ok(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(
        ps.lines()
            .any(|l| l.starts_with("rs Restarting (2) ") && l.ends_with(" ago")),
        "{ps}"
    );
    unsafe { libc::kill(sups[0], libc::SIGCONT) };
    eventually("the restart", || {
        b.ok(&["inspect", "--format", "{{.RestartCount}}", "rs"])
            .trim()
            .parse::<u32>()
            .unwrap()
            >= 1
    });
    b.ok(&["rm", "-f", "rs"]);
}
