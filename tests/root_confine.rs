//! Confinement, as root: what a container may not do, probed from inside berth's default
//! container and docker's (a private dockerd) on the same image, and compared; then what
//! seccomp, capabilities and security options change. Every test needs root and fails
//! without it; the docker comparison needs dockerd (scripts/test.sh installs docker.io).

use std::path::Path;

use crate::root_containers::{shared, Root};
use crate::util::{busybox_rootfs, import_rootfs, openable_block_device, run, Berth, Dockerd};

/// A client root with `probe`: a busybox image with every applet.
fn setup(b: Berth) -> (Root, std::path::PathBuf) {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the confinement tests need root"
    );
    let rootfs = b.dir.path().join("rootfs");
    busybox_rootfs(&rootfs, &["tmp", "mnt", "proc", "sys", "dev"]);
    let tar = import_rootfs(&b, &rootfs, "probe:1");
    (Root(b), tar)
}

/// A host disk as `major minor` (what a container must not open through mknod): one the
/// host itself can open, or the probe would prove nothing.
fn host_disk() -> (u32, u32) {
    let (_, major, minor) = openable_block_device();
    (major, minor)
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
        &format!("mknod /tmp/disk b {major} {minor} && head -c 1 /tmp/disk >/dev/null"),
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
    s += &probe("net-admin", "ip addr add 127.0.0.9/8 dev lo");
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
    // Resources: a hard rlimit raised, the OOM score lowered (both need CAP_SYS_RESOURCE).
    s += &probe("rlimit-raise", "ulimit -H -n $(( $(ulimit -H -n) + 1 ))");
    s += &probe("oom-score-lower", "echo -1000 > /proc/self/oom_score_adj");
    s
}

/// The syscalls whose rule in docker's default profile changed after docker 20.10 (Debian
/// 12's dockerd): added to the allow list (new syscalls, pkey_*, process_vm_* on kernels from
/// 4.8, name_to_handle_at and the lsm_* calls), io_uring_* taken out of it, socket refused
/// for AF_VSOCK. A dockerd of today differs in none of them.
const CHANGED_SINCE_DOCKERD_20_10: &[&str] = &[
    "cachestat",
    "fchmodat2",
    "futex_requeue",
    "futex_wait",
    "futex_wake",
    "getxattrat",
    "setxattrat",
    "listxattrat",
    "removexattrat",
    "listmount",
    "statmount",
    "lsm_get_self_attr",
    "lsm_list_modules",
    "lsm_set_self_attr",
    "map_shadow_stack",
    "mseal",
    "riscv_hwprobe",
    "uretprobe",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "process_vm_readv",
    "process_vm_writev",
    "name_to_handle_at",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "socket",
];

type Rules = std::collections::BTreeMap<String, std::collections::BTreeSet<String>>;

/// A Spec's seccomp filter: its default action, errno and architectures, and for each
/// syscall its rules (action, errno and argument conditions; a `valueTwo` of 0 is the same
/// as none).
fn filter_of(spec: &Path) -> (String, Rules) {
    let text = std::fs::read(spec).unwrap_or_else(|e| panic!("{}: {e}", spec.display()));
    let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
    let f = &v["linux"]["seccomp"];
    let head = format!(
        "{} {} {}",
        f["defaultAction"],
        f["defaultErrnoRet"].as_u64().unwrap_or(1),
        f["architectures"]
    );
    let mut rules = Rules::new();
    for r in f["syscalls"].as_array().expect("a seccomp filter") {
        let mut args: Vec<String> = r["args"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                let mut a = a.as_object().unwrap().clone();
                if a.get("valueTwo").is_some_and(|v| v == 0) {
                    a.remove("valueTwo");
                }
                serde_json::Value::Object(a).to_string()
            })
            .collect();
        args.sort();
        let rule = format!("{} {} {:?}", r["action"], r["errnoRet"], args);
        for n in r["names"].as_array().unwrap() {
            rules
                .entry(n.as_str().unwrap().to_string())
                .or_default()
                .insert(rule.clone());
        }
    }
    (head, rules)
}

/// The file `name` in a directory whose name is `dir_name`, somewhere under `root`.
fn find_file(root: &Path, dir_name: &str, name: &str) -> Option<std::path::PathBuf> {
    for e in std::fs::read_dir(root).ok()?.flatten() {
        let p = e.path();
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if e.file_name() == dir_name && p.join(name).is_file() {
            return Some(p.join(name));
        }
        if let Some(found) = find_file(&p, dir_name, name) {
            return Some(found);
        }
    }
    None
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
    // The filters themselves, as each engine resolved its default profile into the runtime's
    // Spec (for the default capabilities, and with CAP_SYS_ADMIN, which opens rules of its
    // own): the same rule for every syscall, but where docker's profile changed after the
    // dockerd on this machine (berth follows docker's current profile).
    for caps in [&[][..], &["--cap-add", "SYS_ADMIN"]] {
        let mut args = vec!["run", "-d", "--network", "none"];
        args.extend(caps);
        args.extend(["probe:1", "sleep", "60"]);
        let id = b.ok(&args).trim().to_string();
        let ours = filter_of(&b.root.join("containers").join(&id).join("run/config.json"));
        b.ok(&["rm", "-f", &id]);
        let id = d.ok(&args).trim().to_string();
        let spec = find_file(&d.dir.path().join("exec"), &id, "config.json")
            .unwrap_or_else(|| panic!("no config.json of docker's container {id}"));
        let theirs = filter_of(&spec);
        let _ = d.cmd(&["rm", "-f", &id]).output();
        assert_eq!(ours.0, theirs.0, "default action and architectures");
        let names: std::collections::BTreeSet<&String> =
            ours.1.keys().chain(theirs.1.keys()).collect();
        let differ: Vec<&String> = names
            .into_iter()
            .filter(|n| ours.1.get(*n) != theirs.1.get(*n))
            .collect();
        for n in &differ {
            assert!(
                CHANGED_SINCE_DOCKERD_20_10.contains(&n.as_str()),
                "{caps:?}: {n}: berth {:?}, docker {:?}",
                ours.1.get(*n),
                theirs.1.get(*n)
            );
        }
        assert!(ours.1.len() > 300, "{} syscalls", ours.1.len());
    }
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
    // program already there is written again (a rename gives it a new inode). A program
    // another test is writing is a `.tmp-…` file until its rename: not one of them.
    let programs = || -> Vec<(std::ffi::OsString, u64)> {
        use std::os::unix::fs::MetadataExt;
        std::fs::read_dir(cache)
            .map(|d| {
                d.flatten()
                    .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                    .filter_map(|e| Some((e.file_name(), e.metadata().ok()?.ino())))
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

/// `run --rm --network none probe:1 sh -c SCRIPT` with `flags` before the image.
fn run_with(b: &Berth, flags: &[&str], script: &str) -> String {
    let mut args = vec!["run", "--rm", "--network", "none"];
    args.extend(flags);
    args.extend(["probe:1", "sh", "-c", script]);
    b.ok(&args)
}

fn status_field(out: &str, field: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {field} in {out}"))
}

#[test]
fn root_capabilities_privileged_and_security_opts() {
    let _g = shared();
    let (b, _) = setup(Berth::new());
    let status = "cat /proc/self/status";

    // --cap-drop ALL --cap-add: only what was added (CAP_NET_ADMIN is bit 12).
    let out = run_with(&b, &["--cap-drop", "ALL", "--cap-add", "net_admin"], status);
    assert_eq!(status_field(&out, "CapBnd:"), "0000000000001000");
    let out = run_with(
        &b,
        &["--cap-add", "NET_ADMIN"],
        "ip addr add 127.0.0.9/8 dev lo && ip link set lo down && echo done",
    );
    assert_eq!(out.trim(), "done");
    // CAP_SYS_ADMIN also opens the filter's namespace rules (docker's profile).
    let out = run_with(
        &b,
        &["--cap-add", "CAP_SYS_ADMIN"],
        "unshare -m true && echo ok",
    );
    assert_eq!(out.trim(), "ok");

    // --privileged: no filter, mounts allowed, host devices, nothing masked.
    let out = run_with(
        &b,
        &["--privileged"],
        "grep Seccomp: /proc/self/status; mount -t tmpfs none /mnt && echo mounted; \
         test -c /dev/kmsg && echo kmsg; test -n \"$(head -c 10 /proc/timer_list)\" && echo unmasked",
    );
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].ends_with('0'), "{out}");
    assert_eq!(&lines[1..], ["mounted", "kmsg", "unmasked"], "{out}");
    // ... and every capability there is (those the host's root has: some machines' root
    // lacks one), none inheritable (docker's since 23.0).
    let all = status_field(
        &std::fs::read_to_string("/proc/self/status").unwrap(),
        "CapBnd:",
    );
    let out = run_with(&b, &["--privileged"], status);
    for set in ["CapPrm:", "CapEff:", "CapBnd:"] {
        assert_eq!(status_field(&out, set), all, "{set}\n{out}");
    }
    assert_eq!(status_field(&out, "CapInh:"), "0000000000000000", "{out}");
    // --cap-add ALL: the same set, and the filter stays (only --privileged drops it);
    // a --cap-drop beside it still takes one away (CAP_CHOWN is bit 0).
    let out = run_with(&b, &["--cap-add", "ALL"], status);
    assert_eq!(status_field(&out, "CapEff:"), all, "{out}");
    assert_eq!(status_field(&out, "Seccomp:"), "2", "{out}");
    let out = run_with(&b, &["--cap-add", "ALL", "--cap-drop", "chown"], status);
    let without_chown = u64::from_str_radix(&all, 16).unwrap() & !1;
    assert_eq!(
        status_field(&out, "CapEff:"),
        format!("{without_chown:016x}"),
        "{out}"
    );

    // --security-opt: unconfined, a profile file, no-new-privileges, system paths.
    let out = run_with(&b, &["--security-opt", "seccomp=unconfined"], status);
    assert_eq!(status_field(&out, "Seccomp:"), "0");
    let profile = b.dir.path().join("profile.json");
    std::fs::write(
        &profile,
        r#"{ "defaultAction": "SCMP_ACT_ALLOW",
             "syscalls": [ { "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                             "errnoRet": 13 } ] }"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let out = run_with(
        &b,
        &["--security-opt", &opt],
        "grep Seccomp: /proc/self/status; mkdir /tmp/x 2>&1; true",
    );
    assert!(out.contains("Permission denied"), "{out}");
    let out = run_with(&b, &["--security-opt", "no-new-privileges"], status);
    assert_eq!(status_field(&out, "NoNewPrivs:"), "1");
    let out = run_with(
        &b,
        &["--security-opt", "systempaths=unconfined"],
        "test -n \"$(head -c 10 /proc/timer_list)\" && echo unmasked",
    );
    assert_eq!(out.trim(), "unmasked");

    // inspect shows them in docker's words; the profile is kept as its JSON.
    let id = b.ok(&[
        "create",
        "--cap-add",
        "sys_time",
        "--cap-drop",
        "chown",
        "--security-opt",
        &opt,
        "--privileged",
        "probe:1",
        "true",
    ]);
    let v: serde_json::Value = serde_json::from_str(&b.ok(&["inspect", id.trim()])).unwrap();
    let h = &v[0]["HostConfig"];
    assert_eq!(h["CapAdd"], serde_json::json!(["CAP_SYS_TIME"]));
    assert_eq!(h["CapDrop"], serde_json::json!(["CAP_CHOWN"]));
    assert_eq!(h["Privileged"], true);
    assert_eq!(h["MaskedPaths"], serde_json::json!([]));
    let sec = h["SecurityOpt"][0].as_str().unwrap();
    assert!(
        sec.starts_with("seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\""),
        "{sec}"
    );
    b.ok(&["rm", id.trim()]);
}

#[test]
fn root_bad_confinement_flags_are_refused() {
    let _g = shared();
    let (b, _) = setup(Berth::new());
    let bad_profile = b.dir.path().join("bad.json");
    std::fs::write(&bad_profile, r#"{"defaultAction": "SCMP_ACT_SOMETIMES"}"#).unwrap();
    let bad = format!("seccomp={}", bad_profile.display());
    for (flags, message) in [
        (vec!["--cap-add", "nope"], "invalid CapAdd: unknown capability: \"CAP_NOPE\""),
        (vec!["--cap-drop", "CAP_X"], "invalid CapDrop: unknown capability: \"CAP_X\""),
        (
            vec!["--security-opt", "seccomp=/nonexistent/p.json"],
            "opening seccomp profile (/nonexistent/p.json) failed: open /nonexistent/p.json: no such file or directory",
        ),
        (vec!["--security-opt", &bad], "Decoding seccomp profile failed"),
        (vec!["--security-opt", "foo"], "Invalid --security-opt: \"foo\""),
        (vec!["--security-opt", "foo=bar"], "invalid --security-opt 1: \"foo=bar\""),
        (vec!["--security-opt", "no-new-privileges=maybe"], "invalid --security-opt 2"),
        (vec!["--security-opt", "apparmor=docker-default"], "no AppArmor"),
    ] {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend(&flags);
        args.extend(["probe:1", "true"]);
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
}
