//! The container's first process, from the monitor's fork to `execve`: namespaces, cgroups,
//! the filesystem (see `rootfs`), the terminal or pipes, hostname, sysctls, then a handshake
//! with the monitor (`Ready` → wait for `Go`), then the steps every container process takes
//! before its command (`exec_process`, shared with `exec`): rlimits, cwd, user and groups,
//! capabilities, no_new_privs, and the PATH search that tells 127 from 126.
//!
//! Messages to the monitor travel on a SOCK_SEQPACKET socket that is close-on-exec: end of
//! stream after `Go` means the command was executed. A message starting with `S` (setup
//! failed), `N` (not found) or `X` (not executable) carries the reason.

use crate::cgroup::{CgroupPaths, Layout};
use crate::error::{Context, Error, Result};
use crate::rootfs::{self, Device, Rootfs};
use crate::spec::{MountPlan, ProcessPlan};
use crate::sys::{self, cvt};
use std::ffi::CString;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub(crate) const MSG_READY: u8 = b'R';
pub(crate) const MSG_GO: u8 = b'G';
pub(crate) const MSG_PTY: u8 = b'P';
pub(crate) const MSG_PID: u8 = b'I';
/// Init to monitor: the container's new network namespace exists (see `InitPlan::announce_netns`).
pub(crate) const MSG_NETNS: u8 = b'T';
/// Monitor to init: the init is in the container's cgroups (`1`), or why not (`0`, text).
pub(crate) const MSG_CGROUPS: u8 = b'C';
pub(crate) const FAIL_SETUP: u8 = b'S';
pub(crate) const FAIL_NOT_FOUND: u8 = b'N';
pub(crate) const FAIL_NOT_EXECUTABLE: u8 = b'X';

/// Everything the init needs, computed by the monitor before it forks.
#[derive(Debug, Clone)]
pub(crate) struct InitPlan {
    pub unshare: libc::c_int,
    pub join: Vec<(libc::c_int, PathBuf)>,
    pub rootfs: Rootfs,
    pub mountpoint: PathBuf,
    pub root_propagation: libc::c_ulong,
    pub readonly_root: bool,
    pub mounts: Vec<MountPlan>,
    pub devices: Vec<Device>,
    pub masked: Vec<PathBuf>,
    pub readonly: Vec<PathBuf>,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub sysctl: Vec<(String, String)>,
    pub cgroups: CgroupPaths,
    pub layout: Layout,
    pub process: ProcessPlan,
    /// Stay as pid 1 under the command, reaping and forwarding signals (`--init`).
    pub reaper: bool,
    /// Tell the monitor as soon as the new network namespace exists, so that the creator
    /// can plug the container's network in while the rest is set up.
    pub announce_netns: bool,
}

pub(crate) fn report(sock: RawFd, kind: u8, msg: &str) {
    let mut m = vec![kind];
    m.extend_from_slice(msg.as_bytes());
    m.truncate(4000);
    let _ = sys::send_msg(sock, &m, None);
}

/// Runs in the forked init; never returns. `stdio` are the pipe ends (ignored with a terminal).
pub(crate) fn run(plan: &InitPlan, sock: RawFd, stdio: [RawFd; 3]) -> ! {
    if let Err(e) = setup(plan, sock, stdio) {
        // The other side wraps a FAIL_SETUP message in `Error::Setup` again: send the
        // bare text of one, so that its prefix is said once.
        let text = match e {
            Error::Setup(text) => text,
            e => e.to_string(),
        };
        report(sock, FAIL_SETUP, &text);
        sys::exit_now(1);
    }
    if sys::send_msg(sock, &[MSG_READY], None).is_err() {
        sys::exit_now(1);
    }
    let mut buf = [0u8; 16];
    match sys::recv_msg(sock, &mut buf) {
        Ok((n, _)) if n >= 1 && buf[0] == MSG_GO => {}
        // The monitor went away, or said something else: never run the command unwatched.
        _ => sys::exit_now(1),
    }
    if plan.reaper {
        prepare_process(&plan.process, sock);
        become_init(&plan.process, sock)
    }
    exec_process(&plan.process, sock)
}

/// `--init`: this process stays pid 1 and runs the command as its child, as docker's
/// `docker-init` (tini) does: it reaps every process that ends up its child (orphans
/// re-parented to pid 1 included), forwards every signal it receives to the command, and
/// exits with the command's status (128 + the signal when a signal ended it). It keeps the
/// credentials, capabilities and seccomp filter the command gets. Never returns.
fn become_init(p: &ProcessPlan, sock: RawFd) -> ! {
    // SAFETY: signal masks, fork, waitpid and kill on valid arguments; the child only makes
    // system calls before it executes the command.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        let mut before: libc::sigset_t = std::mem::zeroed();
        // Blocked before the fork: nothing sent meanwhile is lost (a blocked signal is
        // queued even for a namespace's init, which ignores unhandled ones otherwise).
        libc::sigprocmask(libc::SIG_BLOCK, &all, &mut before);
        let child = libc::fork();
        if child < 0 {
            let e = std::io::Error::last_os_error();
            fail(
                sock,
                FAIL_SETUP,
                format!("fork the command under init: {e}"),
                1,
            );
        }
        if child == 0 {
            // A process group of its own, in the terminal's foreground, so a ctrl-c reaches
            // it once (from the terminal) and not again through us.
            libc::setpgid(0, 0);
            if p.terminal {
                libc::tcsetpgrp(0, libc::getpid());
            }
            libc::sigprocmask(libc::SIG_SETMASK, &before, std::ptr::null_mut());
            exec_command(p, sock)
        }
        // The monitor learns that the command ran (or why not) from the child alone.
        libc::close(sock);
        libc::prctl(
            libc::PR_SET_NAME,
            c"init".as_ptr() as libc::c_ulong,
            0,
            0,
            0,
        );
        loop {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let sig = libc::sigwaitinfo(&all, &mut info);
            if sig < 0 {
                continue;
            }
            if sig != libc::SIGCHLD {
                libc::kill(child, sig);
                continue;
            }
            loop {
                let mut status = 0;
                let pid = libc::waitpid(-1, &mut status, libc::WNOHANG);
                if pid <= 0 {
                    break;
                }
                if pid == child {
                    let code = if libc::WIFSIGNALED(status) {
                        128 + libc::WTERMSIG(status)
                    } else {
                        libc::WEXITSTATUS(status)
                    };
                    sys::exit_now(code);
                }
            }
        }
    }
}

fn setup(plan: &InitPlan, sock: RawFd, stdio: [RawFd; 3]) -> Result<()> {
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0) };
    // The monitor moves this process into the container's v2 cgroup meanwhile (a
    // `cgroup.procs` write waits for an RCU grace period): see `enter_cgroups`.
    for (flag, path) in &plan.join {
        let f = std::fs::File::open(path).ctx(|| format!("open namespace {}", path.display()))?;
        // SAFETY: setns on an fd we hold.
        cvt(unsafe { libc::setns(f.as_raw_fd(), *flag) })
            .ctx(|| format!("join namespace {}", path.display()))?;
    }
    // SAFETY: unshare/setsid are plain system calls.
    cvt(unsafe { libc::unshare(plan.unshare & !libc::CLONE_NEWCGROUP) })
        .ctx(|| "unshare namespaces".into())?;
    if plan.announce_netns && plan.unshare & libc::CLONE_NEWNET != 0 {
        sys::send_msg(sock, &[MSG_NETNS], None).ctx(|| "tell the monitor".into())?;
    }
    // SAFETY: as above.
    unsafe { libc::setsid() };

    let root = plan.mountpoint.as_path();
    rootfs::mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | plan.root_propagation,
        None,
    )
    .ctx(|| "make / private".into())?;
    rootfs::mount_rootfs(&plan.rootfs, root)?;
    let mut in_cgroups = false;
    for m in &plan.mounts {
        if !in_cgroups && (m.fstype == "cgroup" || m.fstype == "cgroup2") {
            enter_cgroups(plan, sock)?;
            in_cgroups = true;
        }
        rootfs::mount_one(root, m, &plan.layout)?;
    }
    if !in_cgroups {
        enter_cgroups(plan, sock)?;
    }
    let dev_is_tmpfs = plan
        .mounts
        .iter()
        .any(|m| m.dest == Path::new("/dev") && !m.bind);
    let mut devices = if dev_is_tmpfs {
        rootfs::default_devices()
    } else {
        vec![]
    };
    devices.extend(plan.devices.iter().cloned());
    rootfs::create_devices(root, &devices, dev_is_tmpfs)?;
    // sysctls go in before /proc/sys turns read-only.
    for (k, v) in &plan.sysctl {
        let path = root.join("proc/sys").join(k.replace('.', "/"));
        std::fs::write(&path, v).ctx(|| format!("sysctl {k}"))?;
    }
    rootfs::pivot_root(root)?;

    if plan.process.terminal {
        let slave = open_console(sock, plan.process.console_size)?;
        for fd in 0..3 {
            sys::dup2(slave, fd).ctx(|| "dup the console".into())?;
        }
        if slave > 2 {
            // SAFETY: closing our own fd.
            unsafe { libc::close(slave) };
        }
    } else {
        for (i, fd) in stdio.iter().enumerate() {
            sys::dup2(*fd, i as RawFd).ctx(|| "dup stdio".into())?;
        }
    }

    let cwd = Path::new(std::ffi::OsStr::from_bytes(plan.process.cwd.as_bytes()));
    let _ = std::fs::create_dir_all(cwd);
    rootfs::mask_paths(&plan.masked)?;
    rootfs::readonly_paths(&plan.readonly)?;
    if plan.readonly_root {
        let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
        rootfs::mount(None, Path::new("/"), None, flags, None)
            .ctx(|| "remount / read-only".into())?;
    }
    if let Some(h) = &plan.hostname {
        nix::unistd::sethostname(h).ctx(|| "sethostname".into())?;
    }
    if let Some(d) = &plan.domainname {
        // SAFETY: valid buffer and length.
        cvt(unsafe { libc::setdomainname(d.as_ptr() as *const libc::c_char, d.len()) })
            .ctx(|| "setdomainname".into())?;
    }
    if plan.unshare & libc::CLONE_NEWNET != 0 {
        loopback_up()?;
    }
    Ok(())
}

/// Moves this process into the container's v1 cgroups (itself: no RCU grace period to wait
/// for, see `CgroupPaths::join_self_v1`), waits for the monitor to have moved it into its v2
/// cgroup (it does so while the root filesystem is mounted), then makes the cgroup
/// namespace, whose root is the cgroup it is in at that moment. Comes before the cgroup
/// filesystem is mounted and before anything the cgroups limit (devices, processes) happens.
fn enter_cgroups(plan: &InitPlan, sock: RawFd) -> Result<()> {
    plan.cgroups
        .join_self_v1()
        .ctx(|| "join the container's cgroups".into())?;
    let mut buf = [0u8; 1024];
    match sys::recv_msg(sock, &mut buf) {
        Ok((n, _)) if n >= 2 && buf[0] == MSG_CGROUPS && buf[1] == b'1' => {}
        Ok((n, _)) if n >= 2 && buf[0] == MSG_CGROUPS => {
            return Err(Error::Setup(format!(
                "join the container's cgroups: {}",
                String::from_utf8_lossy(&buf[2..n])
            )))
        }
        _ => {
            return Err(Error::Setup(
                "join the container's cgroups: no word from the monitor".into(),
            ))
        }
    }
    if plan.unshare & libc::CLONE_NEWCGROUP != 0 {
        // SAFETY: plain system call.
        cvt(unsafe { libc::unshare(libc::CLONE_NEWCGROUP) })
            .ctx(|| "unshare the cgroup namespace".into())?;
    }
    Ok(())
}

/// Opens a pty in the container's own devpts, hands the master to the monitor, binds the
/// slave on /dev/console and makes it our controlling terminal. Returns the slave fd.
fn open_console(sock: RawFd, size: Option<(u16, u16)>) -> Result<RawFd> {
    let ptmx = CString::new("/dev/ptmx").unwrap();
    // SAFETY: plain system calls on fds we own; buffers are valid.
    unsafe {
        let master = cvt(libc::open(
            ptmx.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        ))
        .ctx(|| "open /dev/ptmx".into())?;
        cvt(libc::unlockpt(master)).ctx(|| "unlockpt".into())?;
        let mut n: libc::c_uint = 0;
        cvt(libc::ioctl(master, libc::TIOCGPTN, &mut n)).ctx(|| "TIOCGPTN".into())?;
        let slave_path = format!("/dev/pts/{n}");
        let cpath = CString::new(slave_path.clone()).unwrap();
        let slave = cvt(libc::open(cpath.as_ptr(), libc::O_RDWR | libc::O_NOCTTY))
            .ctx(|| format!("open {slave_path}"))?;
        if let Some((rows, cols)) = size.filter(|(r, c)| *r > 0 && *c > 0) {
            let ws = libc::winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            libc::ioctl(master, libc::TIOCSWINSZ, &ws);
        }
        sys::send_msg(sock, &[MSG_PTY], Some(master))
            .ctx(|| "send the pty to the monitor".into())?;
        libc::close(master);
        let console = Path::new("/dev/console");
        if std::fs::symlink_metadata(console).is_err() {
            std::fs::File::create(console).ctx(|| "create /dev/console".into())?;
        }
        rootfs::mount(
            Some(Path::new(&slave_path)),
            console,
            None,
            libc::MS_BIND,
            None,
        )
        .ctx(|| "bind /dev/console".into())?;
        cvt(libc::ioctl(slave, libc::TIOCSCTTY, 0)).ctx(|| "TIOCSCTTY".into())?;
        Ok(slave)
    }
}

/// Brings `lo` up in a new network namespace.
pub(crate) fn loopback_up() -> Result<()> {
    #[repr(C)]
    struct IfReq {
        name: [u8; libc::IFNAMSIZ],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: 0,
        _pad: [0; 22],
    };
    req.name[..2].copy_from_slice(b"lo");
    // SAFETY: ioctl with a properly sized ifreq.
    unsafe {
        let s = cvt(libc::socket(
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            0,
        ))
        .ctx(|| "socket".into())?;
        let r = cvt(libc::ioctl(s, libc::SIOCGIFFLAGS, &mut req)).and_then(|_| {
            req.flags |= libc::IFF_UP as libc::c_short;
            cvt(libc::ioctl(s, libc::SIOCSIFFLAGS, &req))
        });
        libc::close(s);
        r.ctx(|| "bring lo up".into())?;
    }
    Ok(())
}

const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

fn capset(effective: u64, permitted: u64, inheritable: u64) -> std::io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let header = Header {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        Data {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        Data {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: capset with a v3 header and two data structs.
    sys::cvt_long(unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) })?;
    Ok(())
}

/// The calling process's permitted capabilities (capget), all bits when it cannot tell.
fn own_permitted() -> u64 {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    let header = Header {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [[0u32; 3]; 2];
    // SAFETY: capget with a v3 header and room for two data structs.
    let r = unsafe { libc::syscall(libc::SYS_capget, &header, data.as_mut_ptr()) };
    if r != 0 {
        return u64::MAX;
    }
    (data[0][1] as u64) | ((data[1][1] as u64) << 32)
}

fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

fn fail(sock: RawFd, kind: u8, msg: String, code: i32) -> ! {
    report(sock, kind, &msg);
    sys::exit_now(code)
}

/// The last steps before the command, shared by init and exec; never returns. Failures are
/// reported on `sock` and end the process with 127 (not found), 126 (not executable) or 1.
pub(crate) fn exec_process(p: &ProcessPlan, sock: RawFd) -> ! {
    prepare_process(p, sock);
    exec_command(p, sock)
}

/// What a process of the container takes on before its command: rlimits, cwd, umask,
/// seccomp, capabilities, user and groups, no_new_privs, default signals, no stray fds.
fn prepare_process(p: &ProcessPlan, sock: RawFd) {
    let setup_err =
        |what: &str, e: std::io::Error| -> ! { fail(sock, FAIL_SETUP, format!("{what}: {e}"), 1) };
    // SAFETY: every call below is a plain system call on valid arguments.
    unsafe {
        for &(res, soft, hard) in &p.rlimits {
            // Exactly what the Spec asks, as runc: a hard limit above the one this process
            // was given needs CAP_SYS_RESOURCE, and without it the start fails, naming the
            // limit, rather than running with less than was asked.
            let mut cur = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::getrlimit(res as _, &mut cur);
            let new = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            if libc::setrlimit(res as _, &new) != 0 {
                let e = std::io::Error::last_os_error();
                let above = if hard > cur.rlim_max && cur.rlim_max != libc::RLIM_INFINITY {
                    format!(
                        " (the hard limit {hard} is above this host's {}: raising it needs \
                         CAP_SYS_RESOURCE)",
                        cur.rlim_max
                    )
                } else {
                    String::new()
                };
                fail(
                    sock,
                    FAIL_SETUP,
                    format!("error setting rlimit type {res}: {e}{above}"),
                    1,
                );
            }
        }
        if let Some(adj) = p.oom_score_adj {
            if let Err(e) = std::fs::write("/proc/self/oom_score_adj", adj.to_string()) {
                setup_err("oom_score_adj", e);
            }
        }
        if libc::chdir(p.cwd.as_ptr()) != 0 {
            let e = std::io::Error::last_os_error();
            fail(
                sock,
                FAIL_SETUP,
                format!("chdir to cwd {:?} set in the spec: {e}", p.cwd),
                1,
            );
        }
        libc::umask(p.umask.unwrap_or(0o022) as libc::mode_t);
        // Without no_new_privs, installing a filter takes CAP_SYS_ADMIN: before the
        // capabilities go (runc's order); the steps after it are calls every profile allows.
        if let Some(f) = p.seccomp.as_ref().filter(|_| !p.no_new_privs) {
            if let Err(e) = crate::seccomp::install(f) {
                setup_err("seccomp", e);
            }
        }
        let permitted_now = own_permitted();
        if let Some(caps) = &p.caps {
            for cap in 0..=last_cap() {
                if caps.bounding & (1 << cap) == 0 {
                    libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0);
                }
            }
            libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0);
        }
        // Raw system calls: they change this thread's credentials only, which is the whole
        // process here, and skip glibc's cross-thread setxid machinery.
        if libc::syscall(libc::SYS_setgroups, p.groups.len(), p.groups.as_ptr()) != 0 {
            setup_err("setgroups", std::io::Error::last_os_error());
        }
        if libc::syscall(libc::SYS_setresgid, p.gid, p.gid, p.gid) != 0 {
            setup_err("setgid", std::io::Error::last_os_error());
        }
        if libc::syscall(libc::SYS_setresuid, p.uid, p.uid, p.uid) != 0 {
            setup_err("setuid", std::io::Error::last_os_error());
        }
        if let Some(caps) = &p.caps {
            libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0);
            // Capabilities this kernel does not know are left out (runc's way), and so are
            // those the runtime itself lacks (a root without CAP_SYS_RESOURCE, as on some
            // CI machines), so a Spec with every name (`--privileged`) still runs.
            let known = (u64::MAX >> (63 - last_cap().min(63))) & permitted_now;
            let (e, p, i) = (caps.effective, caps.permitted, caps.inheritable);
            if let Err(e) = capset(e & known, p & known, i & known) {
                setup_err("capset", e);
            }
            for cap in 0..=last_cap() {
                if caps.ambient & (1 << cap) != 0 {
                    libc::prctl(
                        libc::PR_CAP_AMBIENT,
                        libc::PR_CAP_AMBIENT_RAISE,
                        cap as libc::c_ulong,
                        0,
                        0,
                    );
                }
            }
        }
        if p.no_new_privs && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            setup_err("no_new_privs", std::io::Error::last_os_error());
        }
        // With no_new_privs, as late as can be: the fewest calls run under the filter.
        if let Some(f) = p.seccomp.as_ref().filter(|_| p.no_new_privs) {
            if let Err(e) = crate::seccomp::install(f) {
                setup_err("seccomp", e);
            }
        }
    }
    sys::reset_signals();
    sys::cloexec_from(3);
}

/// Executes the command, searching `PATH` as execvp does; never returns.
fn exec_command(p: &ProcessPlan, sock: RawFd) -> ! {
    let mut argv: Vec<*const libc::c_char> = p.args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = p.env.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    let name = p.args[0].to_string_lossy().into_owned();
    let try_exec = |path: &CString| -> i32 {
        // SAFETY: NUL-terminated argv/envp arrays of live C strings.
        unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    };
    let explain = |errno: i32| std::io::Error::from_raw_os_error(errno).to_string();
    if name.contains('/') {
        let errno = try_exec(&p.args[0]);
        match errno {
            libc::ENOENT | libc::ENOTDIR => fail(sock, FAIL_NOT_FOUND, name, 127),
            _ => fail(
                sock,
                FAIL_NOT_EXECUTABLE,
                format!("{name}: {}", explain(errno)),
                126,
            ),
        }
    }
    // execvp's search: remember a permission error, keep looking past missing files.
    let mut denied = None;
    for dir in p.path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let Ok(candidate) = CString::new(format!("{dir}/{name}")) else {
            continue;
        };
        match try_exec(&candidate) {
            libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
            libc::EACCES => denied = Some(libc::EACCES),
            other => fail(
                sock,
                FAIL_NOT_EXECUTABLE,
                format!("{name}: {}", explain(other)),
                126,
            ),
        }
    }
    match denied {
        Some(e) => fail(
            sock,
            FAIL_NOT_EXECUTABLE,
            format!("{name}: {}", explain(e)),
            126,
        ),
        None => fail(sock, FAIL_NOT_FOUND, format!("{name} in $PATH"), 127),
    }
}

/// Turns a failure message from init or exec into the crate's error.
pub(crate) fn decode_failure(msg: &[u8]) -> Error {
    let text = String::from_utf8_lossy(msg.get(1..).unwrap_or_default()).into_owned();
    match msg.first() {
        Some(&FAIL_NOT_FOUND) => Error::CommandNotFound(text),
        Some(&FAIL_NOT_EXECUTABLE) => Error::NotExecutable(text),
        _ => Error::Setup(text),
    }
}
