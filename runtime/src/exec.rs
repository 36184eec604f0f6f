//! Running another process in a live container (`docker exec`).
//!
//! The caller forks a helper that joins the container's cgroups, then its namespaces with
//! setns (mount last). Joining a pid namespace only applies to children, so the helper clones
//! the real process with CLONE_PARENT: it becomes a direct child of the caller, inside the
//! container's pid namespace, and the helper exits. The process then takes the same last steps
//! as the container's init (`init::exec_process`): rlimits, cwd, user, capabilities,
//! no_new_privs, PATH search. A pty, when asked for, is opened in the container's devpts and
//! its master handed back to the caller.

use crate::container::Container;
use crate::error::{Context, Error, Result};
use crate::init::{self, MSG_PID, MSG_PTY};
use crate::spec::ProcessPlan;
use crate::state::{Exit, Record, Status};
use crate::sys;
use oci_spec::runtime::Process;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Where an exec'd process's stdin, stdout and stderr go when it has no terminal.
#[derive(Debug)]
pub enum ExecStdio {
    /// The caller's own fds 0, 1 and 2.
    Inherit,
    /// /dev/null for all three (detached exec).
    Null,
    /// These fds (pipes or sockets the engine made).
    Fds {
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
}

/// A process started by `Container::exec`: a child of the caller.
#[derive(Debug)]
pub struct ExecProcess {
    pid: i32,
    pty: Option<OwnedFd>,
}

impl ExecProcess {
    /// Host pid.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The pty master when `process.terminal` was set: copy the user's terminal to and from
    /// it, and set its size with TIOCSWINSZ.
    pub fn take_pty(&mut self) -> Option<OwnedFd> {
        self.pty.take()
    }

    /// Waits for the process (it is the caller's child) and reaps it.
    pub fn wait(&self) -> Result<Exit> {
        let (code, signal) = sys::wait_child(self.pid, 0)
            .ctx(|| format!("wait for {}", self.pid))?
            .unwrap_or((255, None));
        Ok(Exit {
            code,
            signal,
            oom_killed: false,
        })
    }
}

const NAMESPACES: &[(&str, libc::c_int)] = &[
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("pid", libc::CLONE_NEWPID),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("mnt", libc::CLONE_NEWNS),
];

fn same_ns(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.ino() == y.ino() && x.dev() == y.dev(),
        _ => false,
    }
}

impl Container {
    /// Starts `process` (args, env, cwd, user, capabilities, rlimits, terminal, as in a Spec)
    /// inside the running container, as a child of the caller. Fails with
    /// `CommandNotFound` / `NotExecutable` as `start` does (the child is reaped then).
    /// The caller must `wait` for the process (or exit itself, for a detached exec).
    pub fn exec(&self, process: &Process, stdio: ExecStdio) -> Result<ExecProcess> {
        let rec = Record::load(self.state_dir())?;
        let status = self.state()?.status;
        if status != Status::Running {
            return Err(Error::InvalidState {
                id: self.id().to_string(),
                status: status.to_string(),
                what: "exec needs a running container",
            });
        }
        let mut plan = ProcessPlan::from_process(process)?;
        plan.seccomp = crate::seccomp::load(&self.state_dir().join(crate::seccomp::STATE_FILE))?;
        let pid = rec.state.pid.unwrap_or(0);
        // Hold the init while we open its namespaces, so the files are its own.
        let _init = sys::pidfd_for(pid, rec.pid_start).ok_or_else(|| Error::InvalidState {
            id: self.id().to_string(),
            status: "stopped".into(),
            what: "the container's init has exited",
        })?;
        let mut namespaces = vec![];
        for (name, flag) in NAMESPACES {
            let theirs = std::path::PathBuf::from(format!("/proc/{pid}/ns/{name}"));
            if !theirs.exists()
                || same_ns(
                    &theirs,
                    std::path::Path::new(&format!("/proc/self/ns/{name}")),
                )
            {
                continue;
            }
            let f = std::fs::File::open(&theirs).ctx(|| format!("open {}", theirs.display()))?;
            namespaces.push((OwnedFd::from(f), *flag));
        }
        let null;
        let fds: [RawFd; 3] = match &stdio {
            ExecStdio::Inherit => [0, 1, 2],
            ExecStdio::Null => {
                null = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/null")
                    .ctx(|| "open /dev/null".into())?;
                [null.as_raw_fd(); 3]
            }
            ExecStdio::Fds {
                stdin,
                stdout,
                stderr,
            } => [stdin.as_raw_fd(), stdout.as_raw_fd(), stderr.as_raw_fd()],
        };
        let cgroups = rec.cgroups.clone();
        let (ours, theirs) = sys::seqpacket_pair().ctx(|| "socketpair".into())?;
        let helper = sys::fork().ctx(|| "fork".into())?;
        if helper == 0 {
            drop(ours);
            let sock = theirs.as_raw_fd();
            sys::reset_signals();
            if let Err(e) = cgroups.join_self() {
                init::report(sock, init::FAIL_SETUP, &format!("join cgroups: {e}"));
                sys::exit_now(1);
            }
            for (fd, flag) in &namespaces {
                // SAFETY: setns on an fd we hold.
                if unsafe { libc::setns(fd.as_raw_fd(), *flag) } != 0 {
                    let e = std::io::Error::last_os_error();
                    init::report(sock, init::FAIL_SETUP, &format!("setns: {e}"));
                    sys::exit_now(1);
                }
            }
            // SAFETY: clone without CLONE_VM behaves as fork; the child runs only system
            // calls and exec (glibc's cached thread id is stale there, and unused).
            let child = unsafe {
                libc::syscall(
                    libc::SYS_clone,
                    (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong,
                    0usize,
                    0usize,
                    0usize,
                    0usize,
                )
            };
            if child < 0 {
                let e = std::io::Error::last_os_error();
                init::report(sock, init::FAIL_SETUP, &format!("clone: {e}"));
                sys::exit_now(1);
            }
            if child > 0 {
                let mut m = vec![MSG_PID];
                m.extend_from_slice(child.to_string().as_bytes());
                let _ = sys::send_msg(sock, &m, None);
                sys::exit_now(0);
            }
            // SAFETY: plain system call.
            unsafe { libc::setsid() };
            if plan.terminal {
                match open_pty(sock, plan.console_size) {
                    Ok(slave) => {
                        for i in 0..3 {
                            let _ = sys::dup2(slave, i);
                        }
                    }
                    Err(e) => {
                        init::report(sock, init::FAIL_SETUP, &format!("pty: {e}"));
                        sys::exit_now(1);
                    }
                }
            } else {
                // Move the fds out of 0..2 first, so that dup2 cannot clobber one we need.
                // SAFETY: dup/dup2 on fds we hold.
                let high: Vec<RawFd> = fds
                    .iter()
                    .map(|fd| unsafe { libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 10) })
                    .collect();
                for (i, fd) in high.iter().enumerate() {
                    if *fd < 0 || sys::dup2(*fd, i as RawFd).is_err() {
                        init::report(sock, init::FAIL_SETUP, "dup stdio");
                        sys::exit_now(1);
                    }
                }
            }
            init::exec_process(&plan, sock);
        }
        drop(theirs);
        let _ = sys::wait_child(helper, 0);
        let mut pid = None;
        let mut pty = None;
        let mut failure = None;
        let mut buf = vec![0u8; 4096];
        loop {
            let (n, fd) =
                sys::recv_msg(ours.as_raw_fd(), &mut buf).ctx(|| "recv from exec".into())?;
            if n == 0 {
                break;
            }
            match buf[0] {
                MSG_PID => pid = String::from_utf8_lossy(&buf[1..n]).parse::<i32>().ok(),
                MSG_PTY => pty = fd,
                _ => failure = Some(init::decode_failure(&buf[..n])),
            }
        }
        match (pid, failure) {
            (Some(pid), None) => Ok(ExecProcess { pid, pty }),
            (Some(pid), Some(e)) => {
                let _ = sys::wait_child(pid, 0);
                Err(e)
            }
            (None, Some(e)) => Err(e),
            (None, None) => Err(Error::Setup("the exec helper died".into())),
        }
    }
}

/// Opens a pty in the container's devpts (we are in its mount namespace), sends the master to
/// the caller, makes the slave our controlling terminal; returns the slave.
fn open_pty(sock: RawFd, size: Option<(u16, u16)>) -> std::io::Result<RawFd> {
    let ptmx = CString::new("/dev/ptmx").unwrap();
    // SAFETY: plain system calls on fds we own and valid buffers.
    unsafe {
        let master = sys::cvt(libc::open(
            ptmx.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        ))?;
        sys::cvt(libc::unlockpt(master))?;
        let mut n: libc::c_uint = 0;
        sys::cvt(libc::ioctl(master, libc::TIOCGPTN, &mut n))?;
        let path = CString::new(format!("/dev/pts/{n}")).unwrap();
        let slave = sys::cvt(libc::open(path.as_ptr(), libc::O_RDWR | libc::O_NOCTTY))?;
        if let Some((rows, cols)) = size.filter(|(r, c)| *r > 0 && *c > 0) {
            let ws = libc::winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            libc::ioctl(master, libc::TIOCSWINSZ, &ws);
        }
        sys::send_msg(sock, &[MSG_PTY], Some(master))?;
        libc::close(master);
        sys::cvt(libc::ioctl(slave, libc::TIOCSCTTY, 0))?;
        Ok(slave)
    }
}
