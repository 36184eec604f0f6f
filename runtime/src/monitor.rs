//! The monitor: one process per container that outlives the caller.
//!
//! `spawn` forks twice from the caller (the intermediate calls setsid and exits at once, so
//! the monitor is re-parented and survives the CLI), and waits for one line on a pipe: the
//! container is created, or why not. The monitor then:
//!
//! 1. creates the cgroups and applies the limits (the init moves itself into the v1
//!    hierarchies; the monitor moves it into the v2 one);
//! 2. creates the stdio pipes (or lets the init open a pty in the container's devpts and
//!    receives the master), binds `attach.sock`;
//! 3. forks the init into a new pid namespace and waits for its `Ready` (see `init`);
//! 4. records `created` and reports to the caller, who returns;
//! 5. serves clients (see `attach`) in a single-threaded poll loop: copies output to the
//!    json-file log and to attached clients, stdin from clients to the container, `START`
//!    to the init;
//! 6. when the init exits (its pidfd turns readable), drains the output, notes an OOM kill,
//!    removes the cgroups, records `stopped` with the exit, tells the clients, removes its
//!    socket and exits.
//!
//! Fork safety: the caller may be multi-threaded (tokio). The forked children use only
//! system calls, their own data and the global allocator (glibc's malloc is fork-safe through
//! its atfork handlers; so are jemalloc and mimalloc). They never touch std's stdio or
//! environment locks, never return into the caller's code, and reset every signal handler
//! and close every inherited fd first.

use crate::attach::{self, frame};
use crate::cgroup::CgroupPaths;
use crate::error::{Error, Result};
use crate::init::{self, InitPlan};
use crate::logfile::{LogConfig, LogWriter};
use crate::state::{now_rfc3339, Exit, Record, State, Status, ROOTFS_DIR, SOCKET_FILE};
use crate::sys;
use oci_spec::runtime::LinuxResources;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What the monitor needs, prepared by `create` before the fork.
pub(crate) struct MonitorPlan {
    pub id: String,
    pub state_dir: PathBuf,
    pub init: InitPlan,
    pub new_pid_ns: bool,
    pub join_pid_ns: Option<PathBuf>,
    pub open_stdin: bool,
    pub log: Option<LogConfig>,
    pub resources: Option<LinuxResources>,
    pub on_exit: Option<crate::state::ExitHook>,
    pub on_start: Option<crate::state::StartHook>,
}

const STATUS_FD: RawFd = 3;
const CLIENT_HIGH: usize = 1 << 20;
const STDIN_HIGH: usize = 1 << 20;
const DRAIN: Duration = Duration::from_secs(2);

/// Starts the monitor; returns the init's host pid once the container is created.
/// `netns_ready` gets the pid earlier, once the init's network namespace exists (when the
/// plan asks the init to say so).
pub(crate) fn spawn(plan: MonitorPlan, netns_ready: &mut dyn FnMut(i32)) -> Result<i32> {
    let (rd, wr) = sys::pipe().map_err(|e| Error::io("pipe", e))?;
    let pid = sys::fork().map_err(|e| Error::io("fork the monitor", e))?;
    if pid == 0 {
        // Intermediate: new session, fork the monitor, vanish.
        // SAFETY: setsid is a plain system call.
        unsafe { libc::setsid() };
        match sys::fork() {
            Ok(0) => {
                let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    monitor_main(&plan, wr.as_raw_fd())
                }))
                .unwrap_or(70);
                sys::exit_now(code)
            }
            Ok(_) => sys::exit_now(0),
            Err(_) => sys::exit_now(1),
        }
    }
    drop(wr);
    let _ = sys::wait_child(pid, 0);
    // "net PID" lines, then one line: "ok PID" or "err " + failure. Not to end of stream:
    // the init holds a copy of the pipe until it executes the command.
    let mut file = std::fs::File::from(rd);
    let line = loop {
        let line = read_line(&mut file)?;
        match line.strip_prefix(b"net ") {
            Some(p) => match String::from_utf8_lossy(p).parse() {
                Ok(init) => netns_ready(init),
                Err(_) => return Err(Error::Protocol("bad pid from the monitor".into())),
            },
            None => break line,
        }
    };
    if let Some(pid) = line.strip_prefix(b"ok ") {
        return String::from_utf8_lossy(pid)
            .parse()
            .map_err(|_| Error::Protocol("bad pid from the monitor".into()));
    }
    if let Some(failure) = line.strip_prefix(b"err ") {
        return Err(init::decode_failure(failure));
    }
    Err(Error::Setup("the monitor exited without a report".into()))
}

/// One line of the monitor's report (without its newline; at most 8 KiB).
fn read_line(file: &mut std::fs::File) -> Result<Vec<u8>> {
    let mut line = vec![];
    let mut byte = [0u8; 1];
    while line.len() < 8192 {
        match file.read(&mut byte) {
            Ok(1) if byte[0] == b'\n' => break,
            Ok(1) => line.push(byte[0]),
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("read the monitor's report", e)),
        }
    }
    Ok(line)
}

fn report(line: &str) {
    let _ = sys::write_all(STATUS_FD, format!("{line}\n").as_bytes());
    // SAFETY: closing our own fd; the caller sees the end of the report.
    unsafe { libc::close(STATUS_FD) };
}

/// A line to the creator before the report: `net PID`, the init's network namespace exists.
fn tell(line: &str) {
    let _ = sys::write_all(STATUS_FD, format!("{line}\n").as_bytes());
}

fn monitor_main(plan: &MonitorPlan, status: RawFd) -> i32 {
    sys::reset_signals();
    sys::ignore_signal(libc::SIGPIPE);
    sys::set_process_name(c"berth-monitor");
    if status != STATUS_FD {
        // SAFETY: dup2 onto the fd number we reserve for the report.
        unsafe { libc::dup2(status, STATUS_FD) };
    }
    sys::close_from(STATUS_FD as u32 + 1);
    // SAFETY: stdio to /dev/null, cwd to / (pin no mount); plain system calls.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
        }
        libc::chdir(c"/".as_ptr());
    }
    match Monitor::create(plan) {
        Ok(mut m) => {
            m.run();
            0
        }
        Err(e) => {
            let msg = match &e {
                Error::CommandNotFound(s) => format!("N{s}"),
                Error::NotExecutable(s) => format!("X{s}"),
                // The other side makes it an `Error::Setup` again: its bare text, so that
                // the prefix is said once.
                Error::Setup(s) => format!("S{}", s.replace('\n', " ")),
                other => format!("S{}", other.to_string().replace('\n', " ")),
            };
            report(&format!("err {msg}"));
            1
        }
    }
}

struct Client {
    stream: UnixStream,
    hello: bool,
    flags: u8,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    starter: bool,
    dead: bool,
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Phase {
    Created,
    Starting,
    Running,
}

struct Monitor<'a> {
    plan: &'a MonitorPlan,
    record: Record,
    listener: UnixListener,
    clients: Vec<Client>,
    outputs: [Option<OwnedFd>; 2],
    stdin: Option<OwnedFd>,
    stdin_buf: Vec<u8>,
    close_stdin: bool,
    pty: Option<OwnedFd>,
    sync: Option<OwnedFd>,
    phase: Phase,
    pidfd: OwnedFd,
    exited: Option<(i32, Option<i32>)>,
    drain_until: Option<Instant>,
    log: Option<LogWriter>,
}

fn cleanup_failed(plan: &MonitorPlan, cgroups: &CgroupPaths) {
    let _ = cgroups.remove();
    let _ = std::fs::remove_file(plan.state_dir.join(SOCKET_FILE));
    let _ = std::fs::remove_dir(plan.state_dir.join(ROOTFS_DIR));
}

impl<'a> Monitor<'a> {
    fn create(plan: &'a MonitorPlan) -> Result<Monitor<'a>> {
        let cgroups = &plan.init.cgroups;
        if let Err(e) = cgroups.create(plan.resources.as_ref()) {
            let _ = cgroups.remove();
            return Err(e);
        }
        match Self::create_container(plan) {
            Ok(m) => Ok(m),
            Err(e) => {
                cleanup_failed(plan, cgroups);
                Err(e)
            }
        }
    }

    fn create_container(plan: &'a MonitorPlan) -> Result<Monitor<'a>> {
        let io = |what: &str| {
            let what = what.to_string();
            move |e: std::io::Error| Error::io(what, e)
        };
        let terminal = plan.init.process.terminal;
        let null = || -> Result<OwnedFd> {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
                .map_err(io("open /dev/null"))?;
            Ok(OwnedFd::from(f))
        };
        // (ours, the init's) for stdin, stdout, stderr.
        let (stdin_ours, stdin_theirs) = if plan.open_stdin && !terminal {
            let (r, w) = sys::pipe().map_err(io("pipe"))?;
            (Some(w), r)
        } else {
            (None, null()?)
        };
        let (out_ours, out_theirs) = if terminal {
            (None, null()?)
        } else {
            let (r, w) = sys::pipe().map_err(io("pipe"))?;
            (Some(r), w)
        };
        let (err_ours, err_theirs) = if terminal {
            (None, null()?)
        } else {
            let (r, w) = sys::pipe().map_err(io("pipe"))?;
            (Some(r), w)
        };
        std::fs::create_dir_all(plan.state_dir.join(ROOTFS_DIR)).map_err(io("mkdir rootfs"))?;
        let (_keep, sock_path) = attach::socket_path(&plan.state_dir).map_err(io("state dir"))?;
        let _ = std::fs::remove_file(&sock_path);
        let listener = UnixListener::bind(&sock_path).map_err(io("bind attach.sock"))?;
        listener.set_nonblocking(true).map_err(io("nonblocking"))?;
        let (sync, sync_child) = sys::seqpacket_pair().map_err(io("socketpair"))?;

        if let Some(path) = &plan.join_pid_ns {
            let f = std::fs::File::open(path).map_err(io("open pid namespace"))?;
            // SAFETY: setns on an fd we hold.
            sys::cvt(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWPID) })
                .map_err(io("join pid namespace"))?;
        } else if plan.new_pid_ns {
            // Only our children enter it: the init becomes its pid 1.
            // SAFETY: plain system call.
            sys::cvt(unsafe { libc::unshare(libc::CLONE_NEWPID) })
                .map_err(io("unshare pid namespace"))?;
        }
        let pid = sys::fork().map_err(io("fork the init"))?;
        if pid == 0 {
            drop(listener);
            let stdio = [
                stdin_theirs.as_raw_fd(),
                out_theirs.as_raw_fd(),
                err_theirs.as_raw_fd(),
            ];
            init::run(&plan.init, sync_child.as_raw_fd(), stdio);
        }
        drop((stdin_theirs, out_theirs, err_theirs, sync_child));
        // The init mounts its root meanwhile, moves itself into the v1 hierarchies (see
        // `CgroupPaths::join_self_v1`) and waits for this before it needs its cgroups.
        let joined = plan.init.cgroups.join_v2(&pid.to_string());
        let mut word = vec![init::MSG_CGROUPS];
        match &joined {
            Ok(()) => word.push(b'1'),
            Err(e) => {
                word.push(b'0');
                word.extend_from_slice(e.to_string().as_bytes());
            }
        }
        let _ = sys::send_msg(sync.as_raw_fd(), &word, None);
        let pidfd = sys::pidfd_open(pid).map_err(io("pidfd_open"))?;

        // Wait for the init to be ready (or to fail).
        let mut pty = None;
        let mut buf = vec![0u8; 4096];
        loop {
            let (n, fd) =
                sys::recv_msg(sync.as_raw_fd(), &mut buf).map_err(io("recv from init"))?;
            match buf.first() {
                _ if n == 0 => {
                    let _ = sys::wait_child(pid, 0);
                    return Err(Error::Setup(
                        "the container's init died during setup".into(),
                    ));
                }
                Some(&init::MSG_PTY) => pty = fd,
                Some(&init::MSG_NETNS) => tell(&format!("net {pid}")),
                Some(&init::MSG_READY) => break,
                _ => {
                    let _ = sys::wait_child(pid, 0);
                    return Err(init::decode_failure(&buf[..n]));
                }
            }
        }
        let (outputs, stdin) = if terminal {
            let master = pty
                .as_ref()
                .ok_or_else(|| Error::Setup("no pty from the init".into()))?;
            let reader = master.try_clone().map_err(io("dup pty"))?;
            ([Some(reader), None], None)
        } else {
            ([out_ours, err_ours], stdin_ours)
        };
        for fd in outputs
            .iter()
            .flatten()
            .chain(stdin.iter())
            .chain(pty.iter())
        {
            sys::set_nonblocking(fd.as_raw_fd()).map_err(io("nonblocking"))?;
        }
        let log = match &plan.log {
            Some(p) => Some(LogWriter::open(p).map_err(io("open the log"))?),
            None => None,
        };
        // SAFETY: getpid cannot fail.
        let monitor_pid = unsafe { libc::getpid() };
        let record = Record {
            state: State {
                id: plan.id.clone(),
                status: Status::Created,
                pid: Some(pid),
                monitor_pid,
                created_at: now_rfc3339(),
                started_at: None,
                finished_at: None,
                exit: None,
                error: None,
                log_path: plan.log.as_ref().map(|l| l.path.clone()),
            },
            pid_start: sys::proc_stat(pid).map_or(0, |(_, s)| s),
            monitor_start: sys::self_start_time(),
            cgroups: plan.init.cgroups.clone(),
            terminal,
        };
        record.save(&plan.state_dir)?;
        report(&format!("ok {pid}"));
        Ok(Monitor {
            plan,
            record,
            listener,
            clients: vec![],
            outputs,
            stdin,
            stdin_buf: vec![],
            close_stdin: false,
            pty,
            sync: Some(sync),
            phase: Phase::Created,
            pidfd,
            exited: None,
            drain_until: None,
            log,
        })
    }

    fn init_pid(&self) -> i32 {
        self.record.state.pid.unwrap_or(0)
    }

    fn run(&mut self) {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            if self.exited.is_some() {
                let drained = self.outputs.iter().all(Option::is_none);
                if drained || self.drain_until.is_some_and(|d| Instant::now() >= d) {
                    return self.finish();
                }
            }
            // Poll set: 0 listener, 1 pidfd, 2 sync, 3..5 outputs, 5 stdin, then clients.
            let mut fds = vec![];
            let push = |fds: &mut Vec<libc::pollfd>, fd: Option<RawFd>, events: i16| {
                fds.push(libc::pollfd {
                    fd: fd.unwrap_or(-1),
                    events,
                    revents: 0,
                })
            };
            push(&mut fds, Some(self.listener.as_raw_fd()), libc::POLLIN);
            let pidfd = self.exited.is_none().then(|| self.pidfd.as_raw_fd());
            push(&mut fds, pidfd, libc::POLLIN);
            let sync = (self.phase == Phase::Starting)
                .then(|| self.sync.as_ref().map(|s| s.as_raw_fd()))
                .flatten();
            push(&mut fds, sync, libc::POLLIN);
            let backlog = self.clients.iter().any(|c| c.outbuf.len() > CLIENT_HIGH);
            for o in &self.outputs {
                let fd = o.as_ref().filter(|_| !backlog).map(|f| f.as_raw_fd());
                push(&mut fds, fd, libc::POLLIN);
            }
            let stdin = self
                .stdin
                .as_ref()
                .filter(|_| !self.stdin_buf.is_empty())
                .map(|f| f.as_raw_fd());
            push(&mut fds, stdin, libc::POLLOUT);
            let read_clients = self.stdin_buf.len() < STDIN_HIGH;
            for c in &self.clients {
                let mut ev = 0;
                if read_clients {
                    ev |= libc::POLLIN;
                }
                if !c.outbuf.is_empty() {
                    ev |= libc::POLLOUT;
                }
                push(&mut fds, Some(c.stream.as_raw_fd()), ev);
            }
            let timeout = self.drain_until.map_or(-1, |d| {
                d.saturating_duration_since(Instant::now()).as_millis() as i32 + 1
            });
            // SAFETY: fds is a valid array of pollfd.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if r < 0 {
                continue;
            }
            let ready = |i: usize| fds[i].revents != 0;
            if ready(2) {
                self.on_sync();
            }
            for i in 0..2 {
                if ready(3 + i) {
                    self.on_output(i, &mut chunk);
                }
            }
            if ready(5) {
                self.flush_stdin();
            }
            for (i, c) in self.clients.iter_mut().enumerate() {
                let re = fds.get(6 + i).map_or(0, |p| p.revents);
                if re & libc::POLLOUT != 0 {
                    flush_client(c);
                }
                if re & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                    read_client(c, &mut chunk);
                }
            }
            self.handle_client_frames();
            self.clients.retain(|c| !c.dead);
            if ready(0) {
                self.accept();
            }
            if ready(1) {
                self.on_exit();
            }
        }
    }

    fn accept(&mut self) {
        while let Ok((stream, _)) = self.listener.accept() {
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            self.clients.push(Client {
                stream,
                hello: false,
                flags: 0,
                inbuf: vec![],
                outbuf: vec![],
                starter: false,
                dead: false,
            });
        }
    }

    fn on_exit(&mut self) {
        if let Ok(Some(status)) = sys::wait_child(self.init_pid(), libc::WNOHANG) {
            self.exited = Some(status);
            self.drain_until = Some(Instant::now() + DRAIN);
            // Nobody can write to a dead container's stdin.
            self.stdin = None;
            self.stdin_buf.clear();
        }
    }

    fn on_sync(&mut self) {
        let Some(sync) = &self.sync else { return };
        let mut buf = vec![0u8; 4096];
        let (n, _) = sys::recv_msg(sync.as_raw_fd(), &mut buf).unwrap_or((0, None));
        self.sync = None;
        self.phase = Phase::Running;
        let answer = if n == 0 {
            self.record.state.status = Status::Running;
            self.record.state.started_at = Some(now_rfc3339());
            frame(attach::STARTED, self.init_pid().to_string().as_bytes())
        } else {
            self.record.state.status = Status::Running;
            self.record.state.started_at = Some(now_rfc3339());
            self.record.state.error = Some(init::decode_failure(&buf[..n]).to_string());
            frame(attach::START_FAILED, &buf[..n])
        };
        // The hook first, as docker logs its event before the state can be read: whoever sees
        // the run's state finds its event in the journal.
        if let (0, Some(hook)) = (n, &self.plan.on_start) {
            (hook.0)();
        }
        let _ = self.record.save(&self.plan.state_dir);
        for c in self.clients.iter_mut().filter(|c| c.starter) {
            c.starter = false;
            c.outbuf.extend_from_slice(&answer);
        }
    }

    fn on_output(&mut self, i: usize, chunk: &mut [u8]) {
        let Some(fd) = &self.outputs[i] else { return };
        // SAFETY: reading into a live buffer.
        let n = unsafe { libc::read(fd.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
            ) {
                return;
            }
            // EIO: a pty whose every slave is closed.
            self.outputs[i] = None;
            return;
        }
        if n == 0 {
            self.outputs[i] = None;
            return;
        }
        let data = &chunk[..n as usize];
        let stream = if i == 0 {
            attach::STDOUT
        } else {
            attach::STDERR
        };
        if let Some(log) = &mut self.log {
            log.write(stream, data);
        }
        let want = if i == 0 {
            attach::WANT_STDOUT
        } else {
            attach::WANT_STDERR
        };
        let f = frame(stream, data);
        for c in self
            .clients
            .iter_mut()
            .filter(|c| c.hello && c.flags & want != 0)
        {
            c.outbuf.extend_from_slice(&f);
            flush_client(c);
        }
    }

    fn flush_stdin(&mut self) {
        if let Some(fd) = &self.stdin {
            // SAFETY: writing from a live buffer.
            let n = unsafe {
                libc::write(
                    fd.as_raw_fd(),
                    self.stdin_buf.as_ptr().cast(),
                    self.stdin_buf.len(),
                )
            };
            if n > 0 {
                self.stdin_buf.drain(..n as usize);
            } else if n < 0 {
                let e = std::io::Error::last_os_error();
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) {
                    self.stdin = None;
                    self.stdin_buf.clear();
                }
            }
        }
        if self.close_stdin && self.stdin_buf.is_empty() && self.pty.is_none() {
            self.stdin = None;
        }
    }

    fn handle_client_frames(&mut self) {
        let mut start = false;
        for c in self.clients.iter_mut() {
            if !c.hello {
                if c.inbuf.len() < 8 {
                    continue;
                }
                if &c.inbuf[..4] != attach::MAGIC || c.inbuf[4] != attach::VERSION {
                    c.dead = true;
                    continue;
                }
                c.flags = c.inbuf[5];
                c.hello = true;
                c.inbuf.drain(..8);
            }
            while c.inbuf.len() >= 8 {
                let len =
                    u32::from_be_bytes([c.inbuf[4], c.inbuf[5], c.inbuf[6], c.inbuf[7]]) as usize;
                if len > attach::MAX_FRAME {
                    c.dead = true;
                    break;
                }
                if c.inbuf.len() < 8 + len {
                    break;
                }
                let kind = c.inbuf[0];
                let payload: Vec<u8> = c.inbuf[8..8 + len].to_vec();
                c.inbuf.drain(..8 + len);
                match kind {
                    attach::STDIN
                        if self.stdin.is_some() || self.pty.is_some() && self.exited.is_none() =>
                    {
                        self.stdin_buf.extend_from_slice(&payload);
                    }
                    attach::CLOSE_STDIN => self.close_stdin = true,
                    attach::RESIZE if payload.len() == 4 => {
                        if let Some(pty) = &self.pty {
                            let ws = libc::winsize {
                                ws_row: u16::from_be_bytes([payload[0], payload[1]]),
                                ws_col: u16::from_be_bytes([payload[2], payload[3]]),
                                ws_xpixel: 0,
                                ws_ypixel: 0,
                            };
                            // SAFETY: TIOCSWINSZ with a valid winsize.
                            unsafe { libc::ioctl(pty.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
                        }
                    }
                    attach::START => match (self.phase, self.exited) {
                        (_, Some(_)) => c
                            .outbuf
                            .extend_from_slice(&frame(attach::ERROR, b"the container has exited")),
                        (Phase::Running, None) => c.outbuf.extend_from_slice(&frame(
                            attach::STARTED,
                            self.record.state.pid.unwrap_or(0).to_string().as_bytes(),
                        )),
                        _ => {
                            c.starter = true;
                            start = true;
                        }
                    },
                    _ => {}
                }
            }
        }
        if self.pty.is_some() && self.stdin.is_none() && self.exited.is_none() {
            // A terminal's input goes to the master; keep one fd for it.
            self.stdin = self.pty.as_ref().and_then(|p| p.try_clone().ok());
        }
        if !self.stdin_buf.is_empty() || self.close_stdin {
            self.flush_stdin();
        }
        if start && self.phase == Phase::Created {
            if let Some(sync) = &self.sync {
                if sys::send_msg(sync.as_raw_fd(), &[init::MSG_GO], None).is_ok() {
                    self.phase = Phase::Starting;
                }
            }
        }
    }

    fn finish(&mut self) {
        if let Some(log) = &mut self.log {
            log.finish();
        }
        let (code, signal) = self.exited.unwrap_or((255, None));
        let cgroups = &self.record.cgroups;
        let oom_killed = cgroups.oom_killed();
        let _ = cgroups.remove();
        let exit = Exit {
            code,
            signal,
            oom_killed,
        };
        self.record.state.status = Status::Stopped;
        self.record.state.exit = Some(exit);
        self.record.state.finished_at = Some(now_rfc3339());
        if let Some(hook) = &self.plan.on_exit {
            (hook.0)(&exit);
        }
        let _ = self.record.save(&self.plan.state_dir);
        let payload = serde_json::to_vec(&exit).unwrap_or_default();
        let answer_starter = frame(attach::ERROR, b"the container has exited");
        self.accept();
        for c in self.clients.iter_mut() {
            if c.starter {
                c.outbuf.extend_from_slice(&answer_starter);
            }
            c.outbuf.extend_from_slice(&frame(attach::EXIT, &payload));
        }
        let deadline = Instant::now() + DRAIN;
        while Instant::now() < deadline {
            for c in self.clients.iter_mut() {
                flush_client(c);
            }
            self.clients.retain(|c| !c.dead && !c.outbuf.is_empty());
            if self.clients.is_empty() {
                break;
            }
            let mut fds: Vec<libc::pollfd> = self
                .clients
                .iter()
                .map(|c| libc::pollfd {
                    fd: c.stream.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                })
                .collect();
            // SAFETY: valid pollfd array.
            unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100) };
        }
        if let Ok((_keep, path)) = attach::socket_path(&self.plan.state_dir) {
            let _ = std::fs::remove_file(path);
        }
        let _ = std::fs::remove_dir(self.plan.state_dir.join(ROOTFS_DIR));
    }
}

fn flush_client(c: &mut Client) {
    while !c.outbuf.is_empty() && !c.dead {
        match c.stream.write(&c.outbuf) {
            Ok(0) => c.dead = true,
            Ok(n) => {
                c.outbuf.drain(..n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => c.dead = true,
        }
    }
}

fn read_client(c: &mut Client, chunk: &mut [u8]) {
    loop {
        match c.stream.read(chunk) {
            Ok(0) => {
                c.dead = true;
                return;
            }
            Ok(n) => {
                c.inbuf.extend_from_slice(&chunk[..n]);
                if n < chunk.len() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => {
                c.dead = true;
                return;
            }
        }
    }
}
