//! Confinement, as root: what a container may not do, probed from inside berth's default
//! container and docker's (a private dockerd) on the same image, and compared; then what
//! seccomp, capabilities and security options change. Every test needs root and fails
//! without it; the docker comparison needs dockerd (scripts/test.sh installs docker.io).

use std::path::Path;
use std::process::Command;

use crate::root_containers::{shared, Root};
use crate::util::{require, run, Berth, Dockerd};

/// A client root with `probe`: a busybox image with every applet.
fn setup(b: Berth) -> (Root, std::path::PathBuf) {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the confinement tests need root"
    );
    let rootfs = b.dir.path().join("rootfs");
    for d in ["bin", "etc", "tmp", "mnt", "proc", "sys", "dev"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy(require("busybox"), rootfs.join("bin/busybox")).unwrap();
    let list = run(Command::new(rootfs.join("bin/busybox")).arg("--list")).stdout;
    for applet in String::from_utf8_lossy(&list).lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
    }
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\n").unwrap();
    let tar = b.dir.path().join("probe.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    b.ok(&["import", tar.to_str().unwrap(), "probe:1"]);
    (Root(b), tar)
}

/// The host's root disk as `major minor` (what a container must not open through mknod).
fn host_disk() -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata("/").unwrap().dev();
    (libc::major(dev), libc::minor(dev))
}

/// Each probe prints `NAME blocked` or `NAME OPEN`; the first line is the seccomp mode.
fn probes() -> String {
    let (major, minor) = host_disk();
    let probe = |name: &str, cmd: &str| {
        format!("if ( {cmd} ) >/dev/null 2>&1; then echo '{name} OPEN'; else echo '{name} blocked'; fi\n")
    };
    let mut s = String::from("grep '^Seccomp:' /proc/self/status | tr -d '\\t '\n");
    s += &probe("unshare-user", "unshare -U true");
    s += &probe("unshare-mount", "unshare -m true");
    s += &probe("mount-tmpfs", "mount -t tmpfs none /mnt");
    s += &probe("mount-proc", "mkdir -p /tmp/p && mount -t proc proc /tmp/p");
    s += &probe("proc-sys", "echo 1 > /proc/sys/vm/drop_caches");
    s += &probe("proc-sys-kernel", "echo x > /proc/sys/kernel/hostname");
    s += &probe("sysrq-trigger", "echo h > /proc/sysrq-trigger");
    s += &probe(
        "sys-write",
        "echo 1 > /sys/kernel/profiling || touch /sys/x",
    );
    s += &probe("kcore", "test \"$(head -c 16 /proc/kcore | wc -c)\" -gt 0");
    s += &probe(
        "host-disk",
        &format!("mknod /tmp/disk b {major} {minor} && head -c 512 /tmp/disk >/dev/null"),
    );
    s += &probe("kmsg", "head -c 1 /dev/kmsg");
    s += &probe(
        "kmsg-mknod",
        "mknod /tmp/kmsg c 1 11 && head -c 1 /tmp/kmsg",
    );
    s += &probe("mem-mknod", "mknod /tmp/mem c 1 1 && head -c 1 /tmp/mem");
    s += &probe("module", ": > /tmp/m.ko && insmod /tmp/m.ko");
    // busybox's date reports a refused clock change but exits 0: look at the year.
    s += &probe("time", "date -s 2001-01-01; test \"$(date +%Y)\" = 2001");
    s += &probe("hwclock", "hwclock -w");
    s += &probe("net-admin", "ip link add berthprobe type dummy");
    s += &probe("lo-down", "ip link set lo down");
    s += &probe("cgroup-write", "for f in /sys/fs/cgroup/*/cgroup.procs /sys/fs/cgroup/cgroup.procs; do [ -e $f ] && echo $$ > $f && exit 0; done; exit 1");
    s += &probe(
        "cgroup-mkdir",
        "for d in /sys/fs/cgroup/*/; do mkdir $d/berthprobe && exit 0; done; exit 1",
    );
    s += &probe(
        "chroot-escape",
        "mkdir -p /tmp/c && chroot /tmp/c /bin/true",
    );
    s += &probe("reboot", "reboot -f");
    s += &probe("swapoff", "swapoff -a");
    s += &probe("hostname", "hostname probe");
    s
}

#[test]
fn root_default_container_blocks_what_dockers_blocks() {
    let _g = shared();
    let (b, tar) = setup(Berth::new());
    let script = probes();
    let ours = b.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "probe:1",
        "sh",
        "-c",
        &script,
    ]);

    let d = Dockerd::start();
    run(&mut d.cmd(&["import", tar.to_str().unwrap(), "probe:1"]));
    let theirs = d.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "probe:1",
        "sh",
        "-c",
        &script,
    ]);
    let _ = d.cmd(&["rmi", "-f", "probe:1"]).output();
    assert_eq!(ours, theirs, "berth:\n{ours}\ndocker:\n{theirs}");

    let mut lines = ours.lines();
    assert_eq!(lines.next(), Some("Seccomp:2"), "{ours}");
    for line in lines {
        assert!(line.ends_with(" blocked"), "{line}\n{ours}");
    }
}

#[test]
fn root_exec_gets_the_containers_filter() {
    let _g = shared();
    let (b, _) = setup(Berth::new());
    let id = b.ok(&["run", "-d", "--network", "none", "probe:1", "sleep", "100"]);
    let id = id.trim();
    let status = b.ok(&["exec", id, "grep", "^Seccomp:", "/proc/self/status"]);
    assert_eq!(
        status.split_whitespace().collect::<Vec<_>>(),
        ["Seccomp:", "2"]
    );
    let (_, err) = b.fails(&["exec", id, "unshare", "-U", "true"]);
    assert!(err.contains("Operation not permitted"), "{err}");
    b.ok(&["rm", "-f", id]);
}

#[test]
fn root_seccomp_program_is_compiled_once_per_host() {
    let _g = shared();
    let (b, _) = setup(Berth::new());
    b.ok(&["run", "--rm", "--network", "none", "probe:1", "true"]);
    let cache = Path::new("/run/berth/seccomp");
    // Other tests on the host may add programs meanwhile: what must not happen is that a
    // program already there is written again (a rename gives it a new inode).
    let programs = || -> Vec<(std::ffi::OsString, u64)> {
        use std::os::unix::fs::MetadataExt;
        std::fs::read_dir(cache)
            .map(|d| {
                d.flatten()
                    .map(|e| (e.file_name(), e.metadata().unwrap().ino()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let before = programs();
    assert!(
        !before.is_empty(),
        "no compiled program in {}",
        cache.display()
    );
    b.ok(&["run", "--rm", "--network", "none", "probe:1", "true"]);
    let after = programs();
    for p in &before {
        assert!(after.contains(p), "{:?} was compiled again", p.0);
    }
}
