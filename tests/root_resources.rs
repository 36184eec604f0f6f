//! Devices, limits and kernel settings, as root: `--device`, `--device-cgroup-rule`,
//! `--group-add`, `--sysctl`, `--ulimit`, `--shm-size`, `--tmpfs`, `--oom-kill-disable`,
//! `--oom-score-adj`, `--cpu-shares`, `--cpuset-cpus/-mems`, `--memory-reservation`,
//! `--memory-swappiness` and `--blkio-weight`, seen from inside a container (its /dev, /proc/self/limits and status,
//! its cgroup files, its mounts) and in `inspect`, each beside docker's (a private dockerd,
//! same image, same flags). Every test needs root and fails without it.

use serde_json::Value;

use crate::root_containers::{shared, Root};
use crate::util::{busybox_rootfs, import_rootfs, openable_block_device, run, Berth, Dockerd};

/// A client root with `res:1`: busybox with an /etc/group that has `audio` and makes root a
/// member of `wheel` (so supplementary groups show).
fn setup(b: Berth) -> (Root, std::path::PathBuf) {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the resource tests need root"
    );
    let rootfs = b.dir.path().join("rootfs");
    busybox_rootfs(&rootfs, &["tmp", "proc", "sys", "dev"]);
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(
        rootfs.join("etc/group"),
        "root:x:0:\nwheel:x:10:root\naudio:x:29:\n",
    )
    .unwrap();
    let tar = import_rootfs(&b, &rootfs, "res:1");
    (Root(b), tar)
}

/// The flags every comparison uses, and a script printing what they change.
const FLAGS: &[&str] = &[
    "--device",
    "/dev/null:/dev/mynull:r",
    "--device",
    "/dev/zero",
    "--device-cgroup-rule",
    "c 1:3 rwm",
    "--device-cgroup-rule",
    "b *:* m",
    "--group-add",
    "audio",
    "--group-add",
    "50",
    "--sysctl",
    "net.ipv4.ip_forward=1",
    "--sysctl",
    "kernel.msgmax=1000",
    "--ulimit",
    "nofile=100:200",
    "--ulimit",
    "nproc=50",
    "--shm-size",
    "10m",
    "--tmpfs",
    "/t1",
    "--tmpfs",
    "/t2:size=1m,mode=700",
    "--oom-kill-disable",
    "-m",
    "64m",
    "--oom-score-adj",
    "500",
    "--cpu-shares",
    "512",
    "--cpuset-cpus",
    "0",
    "--cpuset-mems",
    "0",
    "--memory-reservation",
    "10m",
    "--memory-swappiness",
    "10",
];

const SCRIPT: &str = "grep Groups /proc/self/status; \
    ls -ln /dev/mynull /dev/zero | while read mode _ _ _ major minor _; do echo \"$mode $major $minor\"; done; \
    grep -E 'open files|processes' /proc/self/limits; \
    cat /proc/self/oom_score_adj /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax; \
    sort /sys/fs/cgroup/devices/devices.list | uniq | tr '\\n' ' '; echo; \
    cat /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpuset/cpuset.cpus /sys/fs/cgroup/cpuset/cpuset.mems; \
    cat /sys/fs/cgroup/memory/memory.soft_limit_in_bytes /sys/fs/cgroup/memory/memory.swappiness; \
    grep oom_kill_disable /sys/fs/cgroup/memory/memory.oom_control; \
    grep -E ' /dev/shm | /t1 | /t2 ' /proc/mounts | cut -d' ' -f2-4 | sort";

/// docker's HostConfig fields these flags fill.
const FIELDS: &[&str] = &[
    "Devices",
    "DeviceCgroupRules",
    "GroupAdd",
    "Sysctls",
    "Ulimits",
    "ShmSize",
    "Tmpfs",
    "OomKillDisable",
    "OomScoreAdj",
    "CpuShares",
    "CpusetCpus",
    "CpusetMems",
    "MemoryReservation",
    "MemorySwappiness",
    "BlkioWeight",
];

fn host_config(inspect: &str) -> Value {
    let v: Value = serde_json::from_str(inspect).unwrap();
    let h = &v[0]["HostConfig"];
    FIELDS
        .iter()
        .map(|f| (f.to_string(), h[f].clone()))
        .collect()
}

#[test]
fn root_resources_apply_as_dockers() {
    let _g = shared();
    let (b, tar) = setup(Berth::new());
    let d = Dockerd::start();
    run(&mut d.cmd(&["import", tar.to_str().unwrap(), "res:1"]));
    let args = |run: &[&'static str]| {
        let mut a: Vec<&str> = run.to_vec();
        a.extend(FLAGS);
        a
    };
    let mut ours = args(&["run", "--rm", "--network", "none"]);
    ours.extend(["res:1", "sh", "-c", SCRIPT]);
    let ours = b.ok(&ours);
    let mut theirs = args(&["run", "--rm", "--network", "none"]);
    theirs.extend(["res:1", "sh", "-c", SCRIPT]);
    let theirs = d.ok(&theirs);
    assert_eq!(ours, theirs, "berth:\n{ours}\ndocker:\n{theirs}");
    // And what that is, so an equal failure of both cannot pass.
    for want in [
        "Groups:\t0 10 29 50",
        "crw-rw-rw- 1, 3",
        "Max open files            100                  200",
        "Max processes             50                   50",
        "500\n1\n1000\n",
        "c 1:3 rwm",
        "b *:* m",
        "512\n0\n0\n10485760\n10\n",
        "oom_kill_disable 1",
        "/dev/shm tmpfs rw,nosuid,nodev,noexec,relatime,size=10240k",
        "/t2 tmpfs rw,nosuid,nodev,noexec,relatime,size=1024k,mode=700",
    ] {
        assert!(ours.contains(want), "{want:?} not in\n{ours}");
    }

    // inspect: the same HostConfig fields as docker's, created with the same flags.
    let mut create = args(&["create", "--network", "none"]);
    create.extend(["res:1", "true"]);
    let id = b.ok(&create);
    let ours = host_config(&b.ok(&["inspect", id.trim()]));
    let id_d = d.ok(&create);
    let theirs = host_config(&d.ok(&["inspect", id_d.trim()]));
    assert_eq!(ours, theirs);
    assert_eq!(ours["Ulimits"][0]["Soft"], 100, "{ours}");
    b.ok(&["rm", id.trim()]);
    // A container without these flags shows docker's defaults.
    let id = b.ok(&["create", "res:1", "true"]);
    let id_d = d.ok(&["create", "res:1", "true"]);
    assert_eq!(
        host_config(&b.ok(&["inspect", id.trim()])),
        host_config(&d.ok(&["inspect", id_d.trim()]))
    );
    b.ok(&["rm", id.trim()]);
    let _ = d.cmd(&["rm", "-f", id_d.trim()]).output();
}

#[test]
fn root_devices_reach_the_container_only_when_given() {
    let _g = shared();
    let (b, _) = setup(Berth::new());
    let (disk, major, minor) = openable_block_device();
    let run_sh = |flags: &[&str], script: &str| {
        let mut a = vec!["run", "--rm", "--network", "none"];
        a.extend(flags);
        a.extend(["res:1", "sh", "-c", script]);
        b.ok(&a)
    };
    let open = "head -c 1 /dev/hostdisk >/dev/null 2>/tmp/err && echo opened; cat /tmp/err";
    // Without --device: no node, and one made with mknod cannot be opened.
    let out = run_sh(
        &[],
        &format!(
            "test -e /dev/hostdisk || echo absent; mknod /dev/hostdisk b {major} {minor}; {open}"
        ),
    );
    assert!(out.starts_with("absent\n"), "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    // --device HOST:CONTAINER:PERMISSIONS: the node is there and opens as far as they say.
    let device = format!("{disk}:/dev/hostdisk:r");
    let out = run_sh(
        &["--device", &device],
        &format!("{open}; ( echo x >>/dev/hostdisk ) 2>&1; true"),
    );
    assert!(out.starts_with("opened\n"), "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    let device = format!("{disk}:/dev/hostdisk:m");
    let out = run_sh(&["--device", &device], &format!("ls /dev/hostdisk; {open}"));
    assert!(out.starts_with("/dev/hostdisk\n"), "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    // --device-cgroup-rule lets a node made inside be opened, as far as the rule says.
    let rule = format!("b {major}:{minor} r");
    let out = run_sh(
        &["--device-cgroup-rule", &rule],
        &format!("mknod /dev/hostdisk b {major} {minor} && {open}"),
    );
    assert_eq!(out.trim(), "opened");
    // --privileged: every host device, under its own name.
    let out = run_sh(
        &["--privileged"],
        &format!("head -c 1 {disk} >/dev/null && echo opened"),
    );
    assert_eq!(out.trim(), "opened");
}

#[test]
fn root_bad_resource_flags_are_refused_in_dockers_words() {
    let _g = shared();
    let (b, _) = setup(Berth::new());
    // Messages as docker 28 gives them on this kind of host (checked beside a dockerd).
    for (flags, message) in [
        (vec!["--device", "/dev/nonexist"], "error gathering device information while adding custom device \"/dev/nonexist\": no such file or directory"),
        (vec!["--device", "/dev/null:/dev/x:rwx"], "bad mode specified: rwx"),
        (vec!["--device", "/dev/null:rel"], "rel is not an absolute path"),
        (vec!["--device-cgroup-rule", "x 1:3 rwm"], "invalid argument \"x 1:3 rwm\" for \"--device-cgroup-rule\" flag: invalid device cgroup format 'x 1:3 rwm'"),
        (vec!["--group-add", "nosuchgroup"], "Unable to find group nosuchgroup: no matching entries in group file"),
        (vec!["--sysctl", "kernel.hostname=x"], "invalid argument \"kernel.hostname=x\" for \"--sysctl\" flag: sysctl 'kernel.hostname=x' is not allowed"),
        (vec!["--sysctl", "vm.swappiness=1"], "sysctl 'vm.swappiness=1' is not allowed"),
        (vec!["--ulimit", "nofile"], "invalid argument \"nofile\" for \"--ulimit\" flag: invalid ulimit argument: nofile"),
        (vec!["--ulimit", "foo=1"], "invalid ulimit type: foo"),
        (vec!["--ulimit", "nofile=x"], "strconv.ParseInt: parsing \"x\": invalid syntax"),
        (vec!["--ulimit", "nofile=10:5"], "ulimit soft limit must be less than or equal to hard limit: 10 > 5"),
        (vec!["--shm-size", "x"], "invalid argument \"x\" for \"--shm-size\" flag: invalid size: 'x'"),
        (vec!["--tmpfs", "rel"], "invalid mount path: 'rel' mount path must be absolute"),
        (vec!["--tmpfs", "/t:foo=bar"], "invalid tmpfs option [\"foo\" \"bar\"]"),
        (vec!["--oom-score-adj", "1001"], "Invalid value 1001, range for oom score adj is [-1000, 1000]"),
        (vec!["--oom-score-adj", "x"], "invalid argument \"x\" for \"--oom-score-adj\" flag"),
        (vec!["--cpu-shares", "x"], "invalid argument \"x\" for \"-c, --cpu-shares\" flag"),
        (vec!["--cpu-shares", "1"], "the minimum allowed cpu-shares is 2"),
        (vec!["--cpu-shares", "300000"], "the maximum allowed cpu-shares is 262144"),
        (vec!["--cpuset-cpus", "4096"], "Requested CPUs are not available - requested 4096, available: "),
        (vec!["--cpuset-cpus", "1-0"], "Invalid value 1-0 for cpuset cpus: invalid format: 1-0"),
        (vec!["--cpuset-mems", "4096"], "Requested memory nodes are not available - requested 4096, available: "),
        (vec!["--memory-reservation", "1k"], "Minimum memory reservation allowed is 6MB"),
        (vec!["--memory-reservation", "100m", "-m", "50m"], "Minimum memory limit can not be less than memory reservation limit, see usage"),
        (vec!["--memory-swappiness", "101"], "invalid value: 101. Valid memory swappiness range is 0-100"),
        (vec!["--memory-swappiness", "x"], "invalid argument \"x\" for \"--memory-swappiness\" flag"),
        (vec!["--network", "host", "--sysctl", "net.ipv4.ip_forward=1"], "sysctl \"net.ipv4.ip_forward\" not allowed in host network namespace"),
    ] {
        let mut args = vec!["run", "--rm"];
        if !flags.contains(&"--network") {
            args.extend(["--network", "none"]);
        }
        args.extend(&flags);
        args.extend(["res:1", "true"]);
        let out = b.cmd(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{flags:?}: {err}");
        assert!(err.contains(message), "{flags:?}: {err}");
    }
    assert_eq!(
        b.ok(&["ps", "-aq"]),
        "",
        "a refused container was left behind"
    );
    // What this host cannot do is discarded with docker's warning, not refused.
    let out = b
        .cmd(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--oom-kill-disable",
            "res:1",
            "true",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "WARNING: OOM killer is disabled for the container, but no memory limit is set"
        ),
        "{err}"
    );
    assert!(out.status.success(), "{err}");
}

/// Whether this kernel can weigh a cgroup's block I/O, read from the host's cgroup files:
/// BFQ's or CFQ's weight in the v1 blkio hierarchy, or the io controller of a cgroup2 root.
fn kernel_weighs_block_io() -> bool {
    let v1 = ["blkio.bfq.weight", "blkio.weight"].iter().any(|f| {
        std::path::Path::new("/sys/fs/cgroup/blkio")
            .join(f)
            .exists()
    });
    let v2 = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
        .is_ok_and(|c| c.split_whitespace().any(|c| c == "io"));
    v1 || v2
}

#[test]
fn root_blkio_weight_is_set_where_the_kernel_weighs_io_else_discarded_with_a_warning() {
    let _g = shared();
    let (b, _) = setup(Berth::new());
    let o = b
        .cmd(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--blkio-weight",
            "300",
            "res:1",
            "sh",
            "-c",
            "cat /sys/fs/cgroup/blkio/blkio.bfq.weight /sys/fs/cgroup/blkio/blkio.weight \
             /sys/fs/cgroup/io.bfq.weight /sys/fs/cgroup/io.weight 2>/dev/null; true",
        ])
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{err}");
    let id = b.ok(&["create", "--blkio-weight", "300", "res:1", "true"]);
    let weight = &host_config(&b.ok(&["inspect", id.trim()]))["BlkioWeight"];
    b.ok(&["rm", id.trim()]);
    if kernel_weighs_block_io() {
        // The container's own cgroup file has it: BFQ's and CFQ's scale is docker's; v2's
        // io.weight is 1 to 10000 (300 of 10..1000 is 2930).
        assert!(
            out.lines()
                .next()
                .is_some_and(|l| ["300", "default 300", "default 2930"].contains(&l)),
            "{out}"
        );
        assert_eq!(weight, 300);
    } else {
        // This host: CFQ is gone from the kernel, BFQ not built in, and the io controller
        // bound to the v1 hierarchy, so docker's daemon discards it with this warning.
        assert!(
            err.contains("WARNING: Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded."),
            "{err}"
        );
        assert_eq!(out, "");
        assert_eq!(weight, 0);
    }
}
