//! The resolver of a user-defined network: containers' names with no daemon.
//!
//! One process per network, forked from the `connect` that plugged its first container in
//! (no exec, as the monitor), serving UDP and TCP on the gateway's port 53 (the IPv6
//! gateway's on an IPv6-only network), which is the `nameserver` of its containers'
//! resolv.conf. It holds an flock on `<state_dir>/<name>.dns`
//! (which also holds its pid) for its whole life, so whoever holds the host-wide lock can
//! tell whether it runs. It keeps no table: each question is answered from the leases, which
//! `connect`, `set_names` and `disconnect` change, so answers follow containers as they come,
//! are renamed and go. A name is answered when a living lease on a network the asking
//! container shares (this one or another user-defined network it is also on) lists it (the
//! container's name, its aliases, its short id), with its IPv4 address (A) and, on a network
//! with an IPv6 subnet, its IPv6 address (AAAA; only that on an IPv6-only network); other
//! names are forwarded, except on internal networks, which have no way out: to the
//! container's `--dns` servers (its lease lists them) from the container's own namespace, as
//! docker's embedded DNS asks its `ExtServers`, else to the host's resolvers from the host's
//! namespace (so loopback resolvers work). A forwarded question is given up within
//! [`WAIT_STEP`] once its container is gone, so no socket of the resolver's holds a dead
//! container's namespace (and its interfaces) longer. It exits once no container is left on its network:
//! at once when the last one is unplugged ([`stop_if_idle`]), or within a second when the
//! last one dies without being unplugged.
//!
//! A macvlan network's gateway is not the host's: its resolver answers the same questions
//! from sockets on 127.0.0.11 in each container's own namespace instead (see [`embedded`]).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use simple_dns::rdata::{RData, A, AAAA};
use simple_dns::{Packet, PacketFlag, ResourceRecord, CLASS, QTYPE, RCODE, TYPE};

use super::{leases_in, Lock, Network};
use crate::error::{Context, Error, Result};
use crate::sys;

pub(super) mod embedded;

/// How long a forwarded question waits for each upstream resolver.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// How often a forwarded question looks whether anyone still waits for its reply.
const WAIT_STEP: Duration = Duration::from_millis(100);

/// How long [`stop`] waits for a running resolver's pid to be readable.
const STOP_WAIT: Duration = Duration::from_secs(2);

fn lock_path(n: &Network) -> PathBuf {
    n.state_dir.join(format!("{}.dns", n.name))
}

fn open_lock(n: &Network) -> Result<File> {
    let path = lock_path(n);
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .ctx(|| format!("open {}", path.display()))
}

fn try_lock(f: &File) -> bool {
    // SAFETY: flock on an fd we own.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Starts the network's resolver unless it runs. Called under the host-wide lock.
pub(super) fn ensure(n: &Network) -> Result<()> {
    let lock = open_lock(n)?;
    if !try_lock(&lock) {
        return Ok(());
    }
    // Bound here, so a port that cannot be had is the caller's error, not a silent child's.
    let addr = SocketAddr::new(n.resolver_address(), 53);
    let udp = UdpSocket::bind(addr).map_err(|e| {
        Error::Network(format!(
            "start the name resolver of network {} on {addr}/udp: {e}",
            n.name
        ))
    })?;
    let tcp = TcpListener::bind(addr).map_err(|e| {
        Error::Network(format!(
            "start the name resolver of network {} on {addr}/tcp: {e}",
            n.name
        ))
    })?;
    let keep = [udp.as_raw_fd(), tcp.as_raw_fd()];
    spawn(n, lock, &keep, move |r, lock| r.serve(lock, udp, tcp))
}

/// Forks the network's resolver, which holds `lock` (taken) and the fds `keep` and runs
/// `serve`; returns once its pid is in the lock file.
fn spawn(n: &Network, lock: File, keep: &[i32], serve: impl FnOnce(Resolver, &File)) -> Result<()> {
    let upstreams = upstreams();
    let pid = sys::fork().map_err(|e| Error::io("fork the name resolver", e))?;
    if pid == 0 {
        // SAFETY: setsid is a plain system call.
        unsafe { libc::setsid() };
        match sys::fork() {
            Ok(0) => {
                let mut keep = keep.to_vec();
                keep.push(lock.as_raw_fd());
                detach_process(&keep);
                let r = Resolver {
                    net: n.clone(),
                    upstreams,
                };
                let code =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| serve(r, &lock)))
                        .map_or(70, |_| 0);
                sys::exit_now(code)
            }
            // The pid is in the lock file before `ensure` returns (it waits for this
            // process): a `stop` right after must find it, or it would wait on a resolver
            // it cannot name while holding the host-wide lock the resolver waits for.
            Ok(resolver) => {
                let _ = lock.set_len(0);
                let _ = lock.write_all_at(resolver.to_string().as_bytes(), 0);
                sys::exit_now(0)
            }
            Err(_) => sys::exit_now(1),
        }
    }
    let _ = sys::wait_child(pid, 0);
    Ok(())
}

/// The resolver's process: signals reset, stdio on /dev/null, every fd but `keep` closed.
fn detach_process(keep: &[i32]) {
    sys::reset_signals();
    sys::ignore_signal(libc::SIGPIPE);
    sys::set_process_name(c"berth-dns");
    // SAFETY: plain system calls on fds of this process.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        let max = libc::sysconf(libc::_SC_OPEN_MAX).clamp(64, 65536) as i32;
        for fd in 3..max {
            if fd != null && !keep.contains(&fd) {
                libc::close(fd);
            }
        }
        if null > 2 && !keep.contains(&null) {
            libc::close(null);
        }
        libc::chdir(c"/".as_ptr());
    }
}

/// Ends the network's resolver, if it runs, and waits until it is gone. Called under the
/// host-wide lock.
pub(super) fn stop(n: &Network) {
    let Ok(lock) = open_lock(n) else {
        return;
    };
    // The pid is written before the resolver's `ensure` returns; a lock held with no pid in
    // it (a resolver of an older berth, a file being rewritten) is waited for a bounded
    // while, never for good: the resolver, once idle, waits for the host-wide lock our
    // caller holds.
    let deadline = Instant::now() + STOP_WAIT;
    while !try_lock(&lock) {
        let mut pid = [0u8; 16];
        let len = lock.read_at(&mut pid, 0).unwrap_or(0);
        let pid = std::str::from_utf8(&pid[..len])
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok());
        if let Some(pid) = pid.filter(|p| *p > 1) {
            // SAFETY: the lock's holder is alive and wrote this pid: no reuse possible.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            // Its death releases the lock.
            // SAFETY: flock on an fd we own.
            unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
            break;
        }
        if Instant::now() > deadline {
            // It ends by itself once idle, after our caller lets the host-wide lock go.
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(lock);
    let _ = fs::remove_file(lock_path(n));
    let _ = fs::remove_file(embedded::socket_path(n));
}

/// Ends the resolver when no container is left on the network.
pub(super) fn stop_if_idle(n: &Network) {
    if !super::in_use(n) {
        stop(n);
    }
}

/// The host's name servers, from /etc/resolv.conf.
pub(super) fn upstreams() -> Vec<IpAddr> {
    fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver"))
                .then(|| w.next()?.parse().ok())
                .flatten()
        })
        .collect()
}

#[derive(Clone)]
struct Resolver {
    net: Network,
    upstreams: Vec<IpAddr>,
}

/// What a question gets.
enum Answer {
    /// A reply built here.
    Local(Vec<u8>),
    /// Not ours: ask the host's resolvers.
    Forward,
    /// Not even a question.
    Drop,
}

impl Resolver {
    fn serve(&self, lock: &File, udp: UdpSocket, tcp: TcpListener) {
        let udp = Arc::new(udp);
        let mut fds = [
            libc::pollfd {
                fd: udp.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: tcp.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let mut buf = vec![0u8; 4096];
        loop {
            // SAFETY: two valid pollfds.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, 1000) };
            if r == 0 {
                if self.idle() {
                    // Under the host-wide lock, so no container is being plugged in
                    // meanwhile; the resolver's own lock goes first, so the next `connect`
                    // sees it free and starts another (its file too: a network with no
                    // container keeps no resolver's state).
                    let host = Lock::take(&self.net.state_dir);
                    if self.idle() {
                        let _ = fs::remove_file(lock_path(&self.net));
                        // SAFETY: unlocking an fd we own.
                        unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_UN) };
                        drop(host);
                        return;
                    }
                }
                continue;
            }
            if fds[0].revents & libc::POLLIN != 0 {
                if let Ok((len, from)) = udp.recv_from(&mut buf) {
                    let asker = self.asker_at(from.ip());
                    self.on_udp(&udp, &buf[..len], from, asker.as_deref());
                }
            }
            if fds[1].revents & libc::POLLIN != 0 {
                if let Ok((stream, from)) = tcp.accept() {
                    let me = self.clone();
                    std::thread::spawn(move || {
                        let asker = me.asker_at(from.ip());
                        me.on_tcp(stream, asker.as_deref())
                    });
                }
            }
        }
    }

    fn idle(&self) -> bool {
        !super::in_use(&self.net)
    }

    /// Answers one UDP question from `from`, a container whose tag is `asker` if known. A
    /// forwarded question's reply goes out on `udp` if it is still open then: the thread
    /// that waits for it holds no copy (a macvlan container's socket holds its namespace).
    fn on_udp(&self, udp: &Arc<UdpSocket>, query: &[u8], from: SocketAddr, asker: Option<&str>) {
        match self.answer(query, asker) {
            Answer::Local(reply) => {
                let _ = udp.send_to(&reply, from);
            }
            Answer::Forward => {
                let (sock, query) = (Arc::downgrade(udp), query.to_vec());
                let route = self.route(asker);
                std::thread::spawn(move || {
                    let waiting = || sock.strong_count() > 0 && route.asker_alive();
                    let reply = route.forward(&query, waiting);
                    if let (Some(sock), false) = (sock.upgrade(), reply.is_empty()) {
                        let _ = sock.send_to(&reply, from);
                    }
                });
            }
            Answer::Drop => {}
        }
    }

    /// Answers the questions of one TCP connection of the container whose tag is `asker`.
    fn on_tcp(&self, mut s: TcpStream, asker: Option<&str>) {
        let _ = s.set_read_timeout(Some(UPSTREAM_TIMEOUT));
        // Several questions may come on one connection, each with its length first.
        loop {
            let mut len = [0u8; 2];
            if s.read_exact(&mut len).is_err() {
                return;
            }
            let mut query = vec![0u8; u16::from_be_bytes(len) as usize];
            if s.read_exact(&mut query).is_err() {
                return;
            }
            let reply = match self.answer(&query, asker) {
                Answer::Local(r) => r,
                Answer::Forward => {
                    let route = self.route(asker);
                    route.forward_tcp(&query, || route.asker_alive())
                }
                Answer::Drop => return,
            };
            let mut out = (reply.len() as u16).to_be_bytes().to_vec();
            out.extend_from_slice(&reply);
            if s.write_all(&out).is_err() {
                return;
            }
        }
    }

    /// The tag of the container of this network at `from` (a bridge network's resolver is
    /// asked from the containers' own addresses).
    fn asker_at(&self, from: IpAddr) -> Option<String> {
        leases_in(&self.net.lease_dir())
            .into_iter()
            .find(|(addr, l)| {
                l.alive()
                    && match from {
                        IpAddr::V4(a) => *addr == IpAddr::V4(a),
                        IpAddr::V6(a) => l.address6 == Some(a),
                    }
            })
            .map(|(_, l)| l.tag)
    }

    /// Where the other questions of the container tagged `asker` go: its `--dns` servers,
    /// asked from its namespace, else the host's resolvers, asked from the host's.
    fn route(&self, asker: Option<&str>) -> Route {
        let lease = asker.and_then(|tag| {
            leases_in(&self.net.lease_dir())
                .into_iter()
                .map(|(_, l)| l)
                .find(|l| l.tag == tag && l.alive())
        });
        match lease {
            Some(l) if !l.dns.is_empty() => Route {
                servers: l.dns,
                asker: Some((l.pid, l.netns)),
                inside: true,
            },
            l => Route {
                servers: self.upstreams.clone(),
                asker: l.map(|l| (l.pid, l.netns)),
                inside: false,
            },
        }
    }

    /// The addresses `name` has for the container tagged `asker`: IPv4 (none on an
    /// IPv6-only network), and IPv6 for those on a network with an IPv6 subnet.
    fn lookup(&self, name: &str, asker: Option<&str>) -> Vec<(Option<Ipv4Addr>, Option<Ipv6Addr>)> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() {
            return vec![];
        }
        // This network first, then the other resolving networks the asker is on.
        let mut dirs = vec![self.net.lease_dir()];
        if let Some(tag) = asker {
            for e in fs::read_dir(&self.net.state_dir)
                .into_iter()
                .flatten()
                .flatten()
            {
                let p = e.path();
                let Some(f) = p.file_name().and_then(|f| f.to_str()) else {
                    continue;
                };
                // A bridge network resolves names if its stamp says so; a macvlan network
                // has no stamp, but its resolver's control socket while it runs.
                let stem = match (f.strip_suffix(".net"), f.strip_suffix(embedded::SOCKET)) {
                    (Some(stem), _)
                        if fs::read_to_string(&p).is_ok_and(|s| s.contains("dns=true")) =>
                    {
                        stem
                    }
                    (_, Some(stem)) => stem,
                    _ => continue,
                };
                if stem == self.net.name {
                    continue;
                }
                let dir = self.net.state_dir.join(stem);
                if leases_in(&dir)
                    .iter()
                    .any(|(_, l)| l.tag == tag && l.alive())
                {
                    dirs.push(dir);
                }
            }
        }
        for dir in dirs {
            let found: Vec<(Option<Ipv4Addr>, Option<Ipv6Addr>)> = leases_in(&dir)
                .into_iter()
                .filter(|(_, l)| l.names.iter().any(|n| n.eq_ignore_ascii_case(&name)))
                .filter(|(_, l)| l.alive())
                .map(|(a, l)| (super::v4(a), l.address6))
                .collect();
            if !found.is_empty() {
                return found;
            }
        }
        vec![]
    }

    fn answer(&self, query: &[u8], asker: Option<&str>) -> Answer {
        let Ok(q) = Packet::parse(query) else {
            return Answer::Drop;
        };
        if q.has_flags(PacketFlag::RESPONSE) {
            return Answer::Drop;
        }
        let Some(question) = q.questions.first() else {
            return Answer::Local(failure(query, RCODE::FormatError));
        };
        let name = question.qname.to_string();
        let found = self.lookup(&name, asker);
        let known = !found.is_empty();
        if !known {
            return if self.net.internal {
                Answer::Local(failure(query, RCODE::NameError))
            } else {
                Answer::Forward
            };
        }
        let mut reply = Packet::new_reply(q.id());
        reply.set_flags(PacketFlag::AUTHORITATIVE_ANSWER | PacketFlag::RECURSION_AVAILABLE);
        if q.has_flags(PacketFlag::RECURSION_DESIRED) {
            reply.set_flags(PacketFlag::RECURSION_DESIRED);
        }
        reply.questions.push(question.clone());
        // A name of ours has IPv4 addresses, and IPv6 ones on networks with an IPv6
        // subnet: other types (and AAAA without) get an empty answer, as docker's.
        let (v4, v6) = match question.qtype {
            QTYPE::TYPE(TYPE::A) => (true, false),
            QTYPE::TYPE(TYPE::AAAA) => (false, true),
            QTYPE::ANY => (true, true),
            _ => (false, false),
        };
        for (a, a6) in found {
            if let Some(a) = a.filter(|_| v4) {
                reply.answers.push(ResourceRecord::new(
                    question.qname.clone(),
                    CLASS::IN,
                    0,
                    RData::A(A {
                        address: u32::from(a),
                    }),
                ));
            }
            if let Some(a6) = a6.filter(|_| v6) {
                reply.answers.push(ResourceRecord::new(
                    question.qname.clone(),
                    CLASS::IN,
                    0,
                    RData::AAAA(AAAA {
                        address: u128::from(a6),
                    }),
                ));
            }
        }
        match reply.build_bytes_vec() {
            Ok(b) => Answer::Local(b),
            Err(_) => Answer::Local(failure(query, RCODE::ServerFailure)),
        }
    }
}

/// A reply to `query` with only its header, question and `rcode`; empty when the query is
/// not even a header.
fn failure(query: &[u8], rcode: RCODE) -> Vec<u8> {
    if query.len() < 12 {
        return vec![];
    }
    let mut r = match Packet::parse(query) {
        Ok(q) => {
            let mut r = Packet::new_reply(q.id());
            r.questions = q.questions.clone();
            if q.has_flags(PacketFlag::RECURSION_DESIRED) {
                r.set_flags(PacketFlag::RECURSION_DESIRED);
            }
            r
        }
        Err(_) => Packet::new_reply(u16::from_be_bytes([query[0], query[1]])),
    };
    r.set_flags(PacketFlag::RECURSION_AVAILABLE);
    *r.rcode_mut() = rcode;
    r.build_bytes_vec().unwrap_or_default()
}

/// Where one container's forwarded questions go.
struct Route {
    servers: Vec<IpAddr>,
    /// The asker's init and network namespace, when known.
    asker: Option<(i32, u64)>,
    /// Whether the servers are asked from the asker's namespace (its `--dns` servers, as
    /// docker's `ExtServers`) rather than the host's.
    inside: bool,
}

impl Route {
    /// Whether the asker still lives: a question of a container that is gone is dropped, so
    /// that no socket in its namespace outlives it by more than [`WAIT_STEP`].
    fn asker_alive(&self) -> bool {
        self.asker
            .is_none_or(|(pid, netns)| super::netns_inode(pid) == Some(netns))
    }

    /// Runs `f` in the namespace the servers are asked from.
    fn within<T: Send>(&self, f: impl FnOnce() -> std::io::Result<T> + Send) -> std::io::Result<T> {
        match (self.inside, self.asker) {
            (true, Some((pid, netns))) => {
                let ns = File::open(format!("/proc/{pid}/ns/net"))?;
                if std::os::unix::fs::MetadataExt::ino(&ns.metadata()?) != netns {
                    return Err(std::io::Error::other("the container is gone"));
                }
                super::in_netns(&ns, f)?
            }
            (true, None) => Err(std::io::Error::other("no container to ask from")),
            (false, _) => f(),
        }
    }

    /// The servers' reply to `query`, each asked in turn by `ask` while `waiting` holds;
    /// SERVFAIL when none answers, NXDOMAIN when there is none to ask, nothing when no one
    /// waits any more.
    fn ask_each(
        &self,
        query: &[u8],
        waiting: &dyn Fn() -> bool,
        ask: impl Fn(IpAddr) -> Option<Vec<u8>>,
    ) -> Vec<u8> {
        if self.servers.is_empty() {
            return failure(query, RCODE::NameError);
        }
        for up in &self.servers {
            if !waiting() {
                return vec![];
            }
            if let Some(reply) = ask(*up) {
                return reply;
            }
        }
        failure(query, RCODE::ServerFailure)
    }

    /// The reply to `query`, asked over UDP (see [`Route::ask_each`]).
    fn forward(&self, query: &[u8], waiting: impl Fn() -> bool) -> Vec<u8> {
        self.ask_each(query, &waiting, |up| {
            let local: SocketAddr = match up {
                IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
                IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
            };
            let s = self.within(|| UdpSocket::bind(local)).ok()?;
            s.connect(SocketAddr::new(up, 53)).ok()?;
            s.set_read_timeout(Some(WAIT_STEP)).ok()?;
            s.send(query).ok()?;
            let deadline = Instant::now() + UPSTREAM_TIMEOUT;
            let mut buf = vec![0u8; 65535];
            while Instant::now() < deadline && waiting() {
                if let Ok(n) = s.recv(&mut buf) {
                    buf.truncate(n);
                    return Some(buf);
                }
            }
            None
        })
    }

    /// The reply to `query`, asked over TCP (a question that came over TCP).
    fn forward_tcp(&self, query: &[u8], waiting: impl Fn() -> bool) -> Vec<u8> {
        self.ask_each(query, &waiting, |up| {
            let to = SocketAddr::new(up, 53);
            let mut s = self
                .within(|| TcpStream::connect_timeout(&to, UPSTREAM_TIMEOUT))
                .ok()?;
            s.set_read_timeout(Some(UPSTREAM_TIMEOUT)).ok()?;
            let mut out = (query.len() as u16).to_be_bytes().to_vec();
            out.extend_from_slice(query);
            s.write_all(&out).ok()?;
            let mut len = [0u8; 2];
            s.read_exact(&mut len).ok()?;
            let mut reply = vec![0u8; u16::from_be_bytes(len) as usize];
            s.read_exact(&mut reply).ok()?;
            Some(reply)
        })
    }
}
