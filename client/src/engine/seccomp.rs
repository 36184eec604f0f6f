//! docker's seccomp profiles: the JSON format `--security-opt seccomp=FILE` takes, berth's
//! built-in default (docker's default profile: the same syscalls allowed, with the same
//! argument conditions, the same rules that depend on capabilities, the same errnos), and
//! their resolution for one container (its capabilities, the host's architecture and kernel)
//! into the runtime Spec's `linux.seccomp`, as docker's daemon resolves them.

use berth_runtime::oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompFilterFlag, LinuxSeccompOperator, LinuxSyscall,
};
use serde::{Deserialize, Serialize};

use super::{EngineError, Result};

/// A profile in docker's format.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub default_action: Option<LinuxSeccompAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<Arch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arch_map: Vec<ArchMap>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<LinuxSeccompFilterFlag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_path: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub syscalls: Vec<Rule>,
}

/// An architecture and the ones its kernel also runs (x86-64: x86 and x32).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    pub architecture: Arch,
    #[serde(default)]
    pub sub_architectures: Option<Vec<Arch>>,
}

/// One rule: syscalls, an action, conditions on the arguments, and when it applies.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    pub action: Option<LinuxSeccompAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<LinuxSeccompArg>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub includes: Option<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excludes: Option<Condition>,
}

/// `includes`: the rule applies only if all of these hold; `excludes`: not if any holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// docker's architecture words: amd64, x86, x32, arm64, arm, s390x, ...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arches: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caps: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_kernel: Option<String>,
}

/// Reads a profile in docker's format; errors in docker's words.
pub fn parse(json: &str) -> Result<Profile> {
    serde_json::from_str(json)
        .map_err(|e| EngineError::Invalid(format!("Decoding seccomp profile failed: {e}")))
}

/// Syscalls docker's default profile allows to every container.
const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "getxattrat",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listmount",
    "listxattr",
    "listxattrat",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "mseal",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "removexattrat",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "riscv_hwprobe",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "setxattrat",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statmount",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "uretprobe",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// Syscalls docker's default profile allows only with a capability (in the bounding set).
const BY_CAPABILITY: &[(&str, &[&str])] = &[
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "lsm_get_self_attr",
            "lsm_list_modules",
            "lsm_set_self_attr",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    (
        "CAP_SYS_MODULE",
        &["delete_module", "init_module", "finit_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    (
        "CAP_SYS_TIME",
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    (
        "CAP_SYS_NICE",
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// Syscalls of one architecture family, allowed there only.
const BY_ARCH: &[(&[&str], &[&str])] = &[
    (&["ppc64le"], &["sync_file_range2", "swapcontext"]),
    (
        &["arm", "arm64"],
        &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ],
    ),
    (&["amd64", "x32"], &["arch_prctl"]),
    (&["amd64", "x32", "x86"], &["modify_ldt"]),
    (
        &["s390", "s390x"],
        &[
            "s390_pci_mmio_read",
            "s390_pci_mmio_write",
            "s390_runtime_instr",
        ],
    ),
    (&["riscv64"], &["riscv_flush_icache"]),
];

/// The namespace flags of clone(2) a container without CAP_SYS_ADMIN may not pass:
/// CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET (0x7E020000).
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

fn arg(index: usize, op: LinuxSeccompOperator, value: u64, value_two: u64) -> LinuxSeccompArg {
    LinuxSeccompArgBuilder::default()
        .index(index)
        .op(op)
        .value(value)
        .value_two(value_two)
        .build()
        .expect("every field is set")
}

fn rule(names: &[&str], action: LinuxSeccompAction) -> Rule {
    Rule {
        names: names.iter().map(|s| s.to_string()).collect(),
        action: Some(action),
        ..Rule::default()
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// docker's default profile.
pub fn default_profile() -> Profile {
    use LinuxSeccompAction::{ScmpActAllow as Allow, ScmpActErrno as Errno};
    use LinuxSeccompOperator::*;
    let mut rules = vec![rule(ALLOWED, Allow)];
    rules.push(Rule {
        includes: Some(Condition {
            min_kernel: Some("4.8".into()),
            ..Condition::default()
        }),
        ..rule(&["process_vm_readv", "process_vm_writev", "ptrace"], Allow)
    });
    // socket(2): every address family but AF_ALG (38) and AF_VSOCK (40).
    for (op, family) in [(ScmpCmpLt, 38), (ScmpCmpEq, 39), (ScmpCmpGt, 40)] {
        rules.push(Rule {
            args: vec![arg(0, op, family, 0)],
            ..rule(&["socket"], Allow)
        });
    }
    // personality(2): Linux, Linux32, UNAME26 (and both), and the query.
    for persona in [0, 0x8, 0x20000, 0x20008, 0xffff_ffff] {
        rules.push(Rule {
            args: vec![arg(0, ScmpCmpEq, persona, 0)],
            ..rule(&["personality"], Allow)
        });
    }
    for (arches, names) in BY_ARCH {
        rules.push(Rule {
            includes: Some(Condition {
                arches: strings(arches),
                ..Condition::default()
            }),
            ..rule(names, Allow)
        });
    }
    for (cap, names) in BY_CAPABILITY {
        rules.push(Rule {
            includes: Some(Condition {
                caps: vec![cap.to_string()],
                ..Condition::default()
            }),
            ..rule(names, Allow)
        });
    }
    let without_sys_admin = |arches: &[&str]| Condition {
        caps: vec!["CAP_SYS_ADMIN".into()],
        arches: strings(arches),
        ..Condition::default()
    };
    // clone(2) without namespace flags (s390 has the flags in its second argument).
    rules.push(Rule {
        args: vec![arg(0, ScmpCmpMaskedEq, CLONE_NAMESPACE_FLAGS, 0)],
        excludes: Some(without_sys_admin(&["s390", "s390x"])),
        ..rule(&["clone"], Allow)
    });
    rules.push(Rule {
        args: vec![arg(1, ScmpCmpMaskedEq, CLONE_NAMESPACE_FLAGS, 0)],
        includes: Some(Condition {
            arches: strings(&["s390", "s390x"]),
            ..Condition::default()
        }),
        excludes: Some(without_sys_admin(&[])),
        ..rule(&["clone"], Allow)
    });
    // clone3(2) hides its flags in memory a filter cannot read: it looks absent (ENOSYS), so
    // libcs fall back to clone(2).
    rules.push(Rule {
        errno_ret: Some(libc::ENOSYS as u32),
        excludes: Some(without_sys_admin(&[])),
        ..rule(&["clone3"], Errno)
    });
    Profile {
        default_action: Some(Errno),
        default_errno_ret: Some(libc::EPERM as u32),
        arch_map: vec![
            arch_map(
                Arch::ScmpArchX86_64,
                &[Arch::ScmpArchX86, Arch::ScmpArchX32],
            ),
            arch_map(Arch::ScmpArchAarch64, &[Arch::ScmpArchArm]),
            arch_map(
                Arch::ScmpArchMips64,
                &[Arch::ScmpArchMips, Arch::ScmpArchMips64n32],
            ),
            arch_map(
                Arch::ScmpArchMipsel64,
                &[Arch::ScmpArchMipsel, Arch::ScmpArchMipsel64n32],
            ),
            arch_map(Arch::ScmpArchS390x, &[Arch::ScmpArchS390]),
            arch_map(Arch::ScmpArchRiscv64, &[]),
        ],
        syscalls: rules,
        ..Profile::default()
    }
}

fn arch_map(architecture: Arch, subs: &[Arch]) -> ArchMap {
    ArchMap {
        architecture,
        sub_architectures: (!subs.is_empty()).then(|| subs.to_vec()),
    }
}

/// docker's word for the host's architecture, and its Spec architecture.
fn host_arch() -> (&'static str, Option<Arch>) {
    match std::env::consts::ARCH {
        "x86_64" => ("amd64", Some(Arch::ScmpArchX86_64)),
        "x86" => ("x86", Some(Arch::ScmpArchX86)),
        "aarch64" => ("arm64", Some(Arch::ScmpArchAarch64)),
        "arm" => ("arm", Some(Arch::ScmpArchArm)),
        "s390x" => ("s390x", Some(Arch::ScmpArchS390x)),
        "riscv64" => ("riscv64", Some(Arch::ScmpArchRiscv64)),
        "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", Some(Arch::ScmpArchPpc64le)),
        "powerpc64" => ("ppc64", Some(Arch::ScmpArchPpc64)),
        other => (other, None),
    }
}

/// The running kernel's version as (major, minor).
fn kernel_version() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    parse_version(&release).unwrap_or((0, 0))
}

fn parse_version(s: &str) -> Option<(u32, u32)> {
    let mut parts = s.trim().split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

/// The Spec's seccomp section for a container whose bounding set is `caps`, as docker's
/// daemon resolves a profile: the host architecture's entry of the arch map, and each rule
/// whose `includes` all hold and none of whose `excludes` does.
pub fn resolve(p: &Profile, caps: &[String]) -> Result<LinuxSeccomp> {
    let bad = |m: &str| EngineError::Invalid(format!("Decoding seccomp profile failed: {m}"));
    let Some(default_action) = p.default_action else {
        return Err(bad("defaultAction is missing"));
    };
    if !p.architectures.is_empty() && !p.arch_map.is_empty() {
        return Err(bad(
            "both 'architectures' and 'archMap' are specified in the seccomp profile, use either 'architectures' or 'archMap'",
        ));
    }
    if p.listener_path.is_some() {
        return Err(bad(
            "a listenerPath (SCMP_ACT_NOTIFY) is not supported by berth",
        ));
    }
    let (arch, spec_arch) = host_arch();
    let mut architectures = p.architectures.clone();
    if let Some(a) = spec_arch {
        if let Some(m) = p.arch_map.iter().find(|m| m.architecture == a) {
            architectures.push(a);
            architectures.extend(m.sub_architectures.iter().flatten());
        }
    }
    let kernel = kernel_version();
    let at_least = |v: &str| -> Result<bool> {
        let want = parse_version(v).ok_or_else(|| bad(&format!("invalid minKernel {v:?}")))?;
        Ok(kernel >= want)
    };
    let has = |c: &String| caps.contains(c);
    let mut syscalls = vec![];
    for r in &p.syscalls {
        if !r.name.is_empty() && !r.names.is_empty() {
            return Err(bad(
                "both 'name' and 'names' are specified in the seccomp profile, use either 'name' or 'names'",
            ));
        }
        let Some(action) = r.action else {
            return Err(bad("a rule has no action"));
        };
        if action == LinuxSeccompAction::ScmpActNotify {
            return Err(bad("SCMP_ACT_NOTIFY is not supported by berth"));
        }
        if let Some(x) = &r.excludes {
            let min = match &x.min_kernel {
                Some(v) => at_least(v)?,
                None => false,
            };
            if x.arches.iter().any(|a| a == arch) || x.caps.iter().any(has) || min {
                continue;
            }
        }
        if let Some(i) = &r.includes {
            let min = match &i.min_kernel {
                Some(v) => at_least(v)?,
                None => true,
            };
            if !(i.arches.is_empty() || i.arches.iter().any(|a| a == arch))
                || !i.caps.iter().all(has)
                || !min
            {
                continue;
            }
        }
        let mut s = LinuxSyscall::default();
        s.set_names(if r.name.is_empty() {
            r.names.clone()
        } else {
            vec![r.name.clone()]
        });
        s.set_action(action);
        s.set_errno_ret(r.errno_ret);
        s.set_args((!r.args.is_empty()).then(|| r.args.clone()));
        syscalls.push(s);
    }
    let mut out = LinuxSeccomp::default();
    out.set_default_action(default_action);
    out.set_default_errno_ret(p.default_errno_ret);
    out.set_architectures((!architectures.is_empty()).then_some(architectures));
    out.set_flags((!p.flags.is_empty()).then(|| p.flags.clone()));
    out.set_syscalls(Some(syscalls));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_of(s: &LinuxSeccomp) -> Vec<String> {
        s.syscalls()
            .iter()
            .flatten()
            .filter(|r| r.action() == LinuxSeccompAction::ScmpActAllow && r.args().is_none())
            .flat_map(|r| r.names().clone())
            .collect()
    }

    #[test]
    fn default_profile_depends_on_capabilities() {
        let p = default_profile();
        let plain = resolve(&p, &strings(&["CAP_CHOWN", "CAP_SYS_CHROOT"])).unwrap();
        let names = names_of(&plain);
        assert!(names.contains(&"read".to_string()));
        assert!(names.contains(&"chroot".to_string()));
        for n in [
            "unshare",
            "mount",
            "setns",
            "reboot",
            "init_module",
            "settimeofday",
        ] {
            assert!(
                !names.contains(&n.to_string()),
                "{n} allowed without its capability"
            );
        }
        let clone3 = plain
            .syscalls()
            .iter()
            .flatten()
            .find(|r| r.names() == &["clone3"])
            .unwrap();
        assert_eq!(clone3.errno_ret(), Some(libc::ENOSYS as u32));
        let clone = plain
            .syscalls()
            .iter()
            .flatten()
            .find(|r| r.names() == &["clone"])
            .unwrap();
        let a = clone.args().as_ref().unwrap()[0];
        assert_eq!((a.index(), a.value()), (0, CLONE_NAMESPACE_FLAGS));
        assert_eq!(plain.default_errno_ret(), Some(1));
        if cfg!(target_arch = "x86_64") {
            assert_eq!(
                plain.architectures().as_deref(),
                Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
            );
            assert!(names.contains(&"arch_prctl".to_string()));
        }

        let admin = resolve(&p, &strings(&["CAP_SYS_ADMIN"])).unwrap();
        let names = names_of(&admin);
        for n in ["unshare", "mount", "setns", "clone", "clone3"] {
            assert!(
                names.contains(&n.to_string()),
                "{n} refused with CAP_SYS_ADMIN"
            );
        }
        assert!(!admin
            .syscalls()
            .iter()
            .flatten()
            .any(|r| r.action() == LinuxSeccompAction::ScmpActErrno));
    }

    #[test]
    fn docker_format_is_read_and_checked() {
        let p = parse(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"name":"mkdir","action":"SCMP_ACT_ERRNO","errnoRet":13},
                {"names":["chmod"],"action":"SCMP_ACT_ERRNO","includes":{"caps":["CAP_NONE"]}}]}"#,
        )
        .unwrap();
        let s = resolve(&p, &[]).unwrap();
        let rules = s.syscalls().clone().unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].names(), &["mkdir"]);
        assert_eq!(rules[0].errno_ret(), Some(13));

        let err = parse("{not json").unwrap_err().to_string();
        assert!(
            err.starts_with("Decoding seccomp profile failed: "),
            "{err}"
        );
        let err = parse(r#"{"defaultAction":"SCMP_ACT_NOPE"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("SCMP_ACT_NOPE"), "{err}");
        let both = parse(r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86"],"archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}"#).unwrap();
        assert!(resolve(&both, &[])
            .unwrap_err()
            .to_string()
            .contains("archMap"));
        let two = parse(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"a","names":["b"],"action":"SCMP_ACT_ALLOW"}]}"#).unwrap();
        assert!(resolve(&two, &[]).is_err());
        let no_default = parse(r#"{"syscalls":[]}"#).unwrap();
        assert!(resolve(&no_default, &[]).is_err());
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_version("6.18.44-fc-v1272\n"), Some((6, 18)));
        assert_eq!(parse_version("4.8"), Some((4, 8)));
        assert_eq!(parse_version("5"), Some((5, 0)));
        assert_eq!(parse_version("x"), None);
    }
}
