//! From an OCI `Spec` to what the runtime executes: docker's defaults (`default_spec`), and the
//! translation of the Spec into plain values (flags, C strings, capability masks) done once in
//! the parent, so the container's init and exec children only issue system calls.

use crate::error::{Error, Result};
use oci_spec::runtime::{
    Capabilities, Capability, LinuxCapabilities, LinuxDeviceCgroup, LinuxDeviceType,
    LinuxNamespace, LinuxNamespaceType, Mount, PosixRlimitType, Process, Root, Spec,
};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The capabilities docker gives a container by default.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Paths runc masks by default (docker's list).
pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths runc makes read-only by default (docker's list).
pub const DEFAULT_READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The PATH a container gets when its environment has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Capability names by number (the kernel's numbering); a kernel may know fewer
/// (/proc/sys/kernel/cap_last_cap): the runtime leaves out those it does not.
pub const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(dest));
    m.set_typ(Some(typ.to_string()));
    m.set_source(Some(PathBuf::from(source)));
    m.set_options(Some(options.iter().map(|s| s.to_string()).collect()));
    m
}

fn caps_from_names(names: &[&str]) -> Capabilities {
    names
        .iter()
        .filter_map(|n| serde_json::from_value(serde_json::Value::String(n.to_string())).ok())
        .collect()
}

/// An allowing device cgroup rule (`None` for a major or minor is docker's `*`).
pub fn device_rule(
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(true);
    r.set_typ(Some(typ));
    r.set_major(major);
    r.set_minor(minor);
    r.set_access(Some(access.to_string()));
    r
}

/// Whether this kernel offers cgroup namespaces.
pub fn host_has_cgroupns() -> bool {
    Path::new("/proc/self/ns/cgroup").exists()
}

/// A Spec with docker's defaults for container `id`: `sh` as the command, docker's default
/// capabilities, masked and read-only paths, mounts (/proc, /dev, /dev/pts, /dev/shm,
/// /dev/mqueue, /sys, /sys/fs/cgroup), device cgroup rules, new pid/net/ipc/uts/mount
/// namespaces (and cgroup where the kernel has it), hostname = the first 12 characters of the
/// id, cgroups path `/berth/<id>`, `no_new_privileges` off (docker's default). The engine then
/// sets the process (args, env, cwd, user, terminal), resources and extra mounts.
pub fn default_spec(id: &str) -> Spec {
    let mut spec = Spec::default();
    spec.set_version("1.0.2".to_string());
    spec.set_hostname(Some(id.chars().take(12).collect()));
    spec.set_annotations(None);
    let mut root = Root::default();
    root.set_path(PathBuf::from("rootfs"));
    root.set_readonly(None);
    spec.set_root(Some(root));

    let mut process = Process::default();
    process.set_args(Some(vec!["sh".into()]));
    process.set_env(Some(vec![format!("PATH={DEFAULT_PATH}")]));
    process.set_cwd(PathBuf::from("/"));
    process.set_no_new_privileges(None);
    process.set_rlimits(None);
    let caps = caps_from_names(DEFAULT_CAPABILITIES);
    let mut lc = LinuxCapabilities::default();
    lc.set_bounding(Some(caps.clone()));
    lc.set_effective(Some(caps.clone()));
    lc.set_permitted(Some(caps));
    lc.set_inheritable(None);
    lc.set_ambient(None);
    process.set_capabilities(Some(lc));
    spec.set_process(Some(process));

    spec.set_mounts(Some(vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["ro", "nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"],
        ),
    ]));

    let mut linux = oci_spec::runtime::Linux::default();
    let mut namespaces = vec![];
    let mut kinds = vec![
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ];
    if host_has_cgroupns() {
        kinds.push(LinuxNamespaceType::Cgroup);
    }
    for k in kinds {
        let mut ns = LinuxNamespace::default();
        ns.set_typ(k);
        namespaces.push(ns);
    }
    linux.set_namespaces(Some(namespaces));
    linux.set_masked_paths(Some(
        DEFAULT_MASKED_PATHS.iter().map(|s| s.to_string()).collect(),
    ));
    linux.set_readonly_paths(Some(
        DEFAULT_READONLY_PATHS
            .iter()
            .map(|s| s.to_string())
            .collect(),
    ));
    linux.set_cgroups_path(Some(PathBuf::from(format!("/berth/{id}"))));
    let mut deny_all = LinuxDeviceCgroup::default();
    deny_all.set_allow(false);
    deny_all.set_access(Some("rwm".into()));
    use LinuxDeviceType::{B, C};
    let rules = vec![
        deny_all,
        device_rule(C, None, None, "m"),
        device_rule(B, None, None, "m"),
        device_rule(C, Some(1), Some(3), "rwm"),
        device_rule(C, Some(1), Some(5), "rwm"),
        device_rule(C, Some(1), Some(7), "rwm"),
        device_rule(C, Some(1), Some(8), "rwm"),
        device_rule(C, Some(1), Some(9), "rwm"),
        device_rule(C, Some(5), Some(0), "rwm"),
        device_rule(C, Some(5), Some(1), "rwm"),
        device_rule(C, Some(5), Some(2), "rwm"),
        device_rule(C, Some(136), None, "rwm"),
        device_rule(C, Some(10), Some(200), "rwm"),
    ];
    let mut resources = oci_spec::runtime::LinuxResources::default();
    resources.set_devices(Some(rules));
    linux.set_resources(Some(resources));
    spec.set_linux(Some(linux));
    spec
}

/// The capability sets as bit masks, ready for capset(2).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

fn cap_number(c: &Capability) -> Result<u32> {
    let name = serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    CAPABILITIES
        .iter()
        .position(|n| *n == name)
        .map(|p| p as u32)
        .ok_or_else(|| Error::InvalidSpec(format!("unknown capability {name}")))
}

fn cap_mask(set: &Option<Capabilities>) -> Result<u64> {
    let mut mask = 0u64;
    for c in set.iter().flatten() {
        mask |= 1 << cap_number(c)?;
    }
    Ok(mask)
}

/// Everything the last steps before `execve` need, for init and for exec alike.
#[derive(Debug, Clone)]
pub(crate) struct ProcessPlan {
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    pub path: String,
    pub cwd: CString,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub umask: Option<u32>,
    pub caps: Option<CapSets>,
    pub rlimits: Vec<(u32, u64, u64)>,
    pub no_new_privs: bool,
    pub oom_score_adj: Option<i32>,
    pub terminal: bool,
    pub console_size: Option<(u16, u16)>,
    /// The container's seccomp filter (see `seccomp`), installed last.
    pub seccomp: Option<crate::seccomp::Filter>,
}

fn cstring(s: impl AsRef<[u8]>, what: &str) -> Result<CString> {
    CString::new(s.as_ref().to_vec())
        .map_err(|_| Error::InvalidSpec(format!("{what} holds a NUL byte")))
}

#[allow(clippy::unnecessary_cast)] // the type of RLIMIT_* differs between libcs
fn rlimit_resource(t: PosixRlimitType) -> u32 {
    use PosixRlimitType::*;
    (match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }) as u32
}

impl ProcessPlan {
    pub fn from_process(p: &Process) -> Result<ProcessPlan> {
        let args = p.args().clone().unwrap_or_default();
        if args.is_empty() {
            return Err(Error::InvalidSpec("process.args is empty".into()));
        }
        let env = p.env().clone().unwrap_or_default();
        let path = env
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH)
            .to_string();
        let cwd = if p.cwd().as_os_str().is_empty() {
            PathBuf::from("/")
        } else {
            p.cwd().clone()
        };
        if !cwd.is_absolute() {
            return Err(Error::InvalidSpec(format!(
                "cwd {} is not absolute",
                cwd.display()
            )));
        }
        let caps = match p.capabilities() {
            None => None,
            Some(c) => Some(CapSets {
                bounding: cap_mask(c.bounding())?,
                effective: cap_mask(c.effective())?,
                permitted: cap_mask(c.permitted())?,
                inheritable: cap_mask(c.inheritable())?,
                ambient: cap_mask(c.ambient())?,
            }),
        };
        let rlimits = p
            .rlimits()
            .iter()
            .flatten()
            .map(|r| (rlimit_resource(r.typ()), r.soft(), r.hard()))
            .collect();
        Ok(ProcessPlan {
            args: args
                .iter()
                .map(|a| cstring(a, "an argument"))
                .collect::<Result<_>>()?,
            env: env
                .iter()
                .map(|e| cstring(e, "the environment"))
                .collect::<Result<_>>()?,
            path,
            cwd: cstring(cwd.as_os_str().as_bytes(), "cwd")?,
            uid: p.user().uid(),
            gid: p.user().gid(),
            groups: p.user().additional_gids().clone().unwrap_or_default(),
            umask: p.user().umask(),
            caps,
            rlimits,
            no_new_privs: p.no_new_privileges().unwrap_or(false),
            oom_score_adj: p.oom_score_adj(),
            terminal: p.terminal().unwrap_or(false),
            console_size: p.console_size().map(|b| {
                (
                    b.height().min(u16::MAX as u64) as u16,
                    b.width().min(u16::MAX as u64) as u16,
                )
            }),
            seccomp: None,
        })
    }
}

/// One mount, with its options split into flags, propagation and filesystem data.
#[derive(Debug, Clone)]
pub(crate) struct MountPlan {
    pub dest: PathBuf,
    pub source: PathBuf,
    pub fstype: String,
    pub flags: libc::c_ulong,
    pub propagation: libc::c_ulong,
    pub data: String,
    pub bind: bool,
    /// [`COPY_UP`] was among the options.
    pub copy_up: bool,
}

/// A bind mount option of berth's own (docker's volume behaviour, as crun's `tmpcopyup` is
/// for a tmpfs): when the source is an empty directory, what the root filesystem holds at the
/// destination is copied into it first.
pub const COPY_UP: &str = "copyup";

impl MountPlan {
    pub fn from_mount(m: &Mount) -> Result<MountPlan> {
        let dest = m.destination().clone();
        if !dest.is_absolute() {
            return Err(Error::InvalidSpec(format!(
                "mount destination {} is not absolute",
                dest.display()
            )));
        }
        let options = m.options().as_deref().unwrap_or(&[]);
        let copy_up = options.iter().any(|o| o == COPY_UP);
        let options: Vec<String> = options.iter().filter(|o| *o != COPY_UP).cloned().collect();
        let (flags, propagation, data, bind) = parse_options(&options);
        let fstype =
            m.typ()
                .clone()
                .unwrap_or_else(|| if bind { "bind".into() } else { "none".into() });
        let bind = bind || fstype == "bind";
        Ok(MountPlan {
            dest,
            source: m.source().clone().unwrap_or_else(|| PathBuf::from(&fstype)),
            fstype,
            flags: if bind { flags | libc::MS_BIND } else { flags },
            propagation,
            data,
            bind,
            copy_up: copy_up && bind,
        })
    }
}

/// Splits mount options into (flags, propagation flags, data, is-bind), as mount(8) does.
pub(crate) fn parse_options(options: &[String]) -> (libc::c_ulong, libc::c_ulong, String, bool) {
    let mut flags: libc::c_ulong = 0;
    let mut propagation: libc::c_ulong = 0;
    let mut data = vec![];
    let mut bind = false;
    for o in options {
        let (set, clear): (libc::c_ulong, libc::c_ulong) = match o.as_str() {
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "nosuid" => (libc::MS_NOSUID, 0),
            "suid" => (0, libc::MS_NOSUID),
            "nodev" => (libc::MS_NODEV, 0),
            "dev" => (0, libc::MS_NODEV),
            "noexec" => (libc::MS_NOEXEC, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "async" => (0, libc::MS_SYNCHRONOUS),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "mand" => (libc::MS_MANDLOCK, 0),
            "nomand" => (0, libc::MS_MANDLOCK),
            "atime" => (0, libc::MS_NOATIME),
            "noatime" => (libc::MS_NOATIME, 0),
            "diratime" => (0, libc::MS_NODIRATIME),
            "nodiratime" => (libc::MS_NODIRATIME, 0),
            "relatime" => (libc::MS_RELATIME, 0),
            "norelatime" => (0, libc::MS_RELATIME),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "nostrictatime" => (0, libc::MS_STRICTATIME),
            "remount" => (libc::MS_REMOUNT, 0),
            "bind" => {
                bind = true;
                (libc::MS_BIND, 0)
            }
            "rbind" => {
                bind = true;
                (libc::MS_BIND | libc::MS_REC, 0)
            }
            "private" => {
                propagation |= libc::MS_PRIVATE;
                (0, 0)
            }
            "rprivate" => {
                propagation |= libc::MS_PRIVATE | libc::MS_REC;
                (0, 0)
            }
            "slave" => {
                propagation |= libc::MS_SLAVE;
                (0, 0)
            }
            "rslave" => {
                propagation |= libc::MS_SLAVE | libc::MS_REC;
                (0, 0)
            }
            "shared" => {
                propagation |= libc::MS_SHARED;
                (0, 0)
            }
            "rshared" => {
                propagation |= libc::MS_SHARED | libc::MS_REC;
                (0, 0)
            }
            "unbindable" => {
                propagation |= libc::MS_UNBINDABLE;
                (0, 0)
            }
            "runbindable" => {
                propagation |= libc::MS_UNBINDABLE | libc::MS_REC;
                (0, 0)
            }
            "defaults" => (0, 0),
            other => {
                data.push(other.to_string());
                (0, 0)
            }
        };
        flags = (flags | set) & !clear;
    }
    (flags, propagation, data.join(","), bind)
}

/// Namespace flag for clone/unshare/setns.
pub(crate) fn ns_flag(t: LinuxNamespaceType) -> libc::c_int {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => 0x80,
    }
}

/// Signal by name (`TERM`, `SIGTERM`, case-insensitive) or number.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(Error::UnknownSignal(s.into()));
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" | "CLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        // docker's names for the real-time signals (Go's SIGRTMIN 34 and SIGRTMAX 64):
        // RTMIN, RTMIN+1 … RTMIN+15, RTMAX-14 … RTMAX-1, RTMAX; nothing past 64.
        "RTMIN" => 34,
        "RTMAX" => 64,
        _ => {
            let offset = |rest: &str, most: i32| match rest.parse::<i32>() {
                Ok(n) if (1..=most).contains(&n) && !rest.starts_with('+') => Ok(n),
                _ => Err(Error::UnknownSignal(s.into())),
            };
            if let Some(rest) = name.strip_prefix("RTMIN+") {
                return Ok(34 + offset(rest, 15)?);
            }
            if let Some(rest) = name.strip_prefix("RTMAX-") {
                return Ok(64 - offset(rest, 14)?);
            }
            return Err(Error::UnknownSignal(s.into()));
        }
    };
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        for (s, n) in [
            ("TERM", 15),
            ("SIGKILL", 9),
            ("sighup", 1),
            ("usr1", 10),
            ("9", 9),
            ("37", 37),
            ("SIGRTMIN+3", 37),
            ("rtmin", 34),
            ("SIGRTMAX-2", 62),
            ("RTMAX", 64),
        ] {
            assert_eq!(parse_signal(s).unwrap(), n, "{s}");
        }
        for bad in [
            "NOPE",
            "0",
            "65",
            "",
            "SIGRTMIN+31",
            "RTMIN+16",
            "RTMAX-15",
            "RTMIN+-1",
        ] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mount_options_split() {
        let o: Vec<String> = ["ro", "nosuid", "rbind", "rslave", "mode=755", "size=1k"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (flags, prop, data, bind) = parse_options(&o);
        assert_eq!(
            flags,
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_BIND | libc::MS_REC
        );
        assert_eq!(prop, libc::MS_SLAVE | libc::MS_REC);
        assert_eq!(data, "mode=755,size=1k");
        assert!(bind);
    }

    #[test]
    fn default_spec_has_docker_capabilities() {
        let spec = default_spec("0123456789abcdef");
        let p = ProcessPlan::from_process(spec.process().as_ref().unwrap()).unwrap();
        let caps = p.caps.unwrap();
        assert_eq!(
            caps.bounding.count_ones() as usize,
            DEFAULT_CAPABILITIES.len()
        );
        assert_eq!(caps.bounding & (1 << 21), 0, "no CAP_SYS_ADMIN");
        assert_eq!(spec.hostname().as_deref(), Some("0123456789ab"));
    }
}
