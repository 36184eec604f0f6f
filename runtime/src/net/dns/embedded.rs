//! The resolver of a macvlan network: docker's embedded DNS, at 127.0.0.11 in each of its
//! containers' network namespaces.
//!
//! A macvlan network's gateway is a router outside the host, so its containers cannot reach
//! a resolver on the host as bridge networks' containers do. Instead the network's resolver
//! (one process, forked as a bridge network's, holding the same flock on `<name>.dns`) holds
//! a UDP and a TCP socket on 127.0.0.11:53 in the network namespace of each container: a
//! thread of its own enters the namespace, brings its loopback up, binds and ends, and the
//! sockets stay there. The socket a question comes in on names the asker, and the answer is
//! a bridge network's resolver's (see the parent module): the names of the networks the
//! asker is on; other names are forwarded as there.
//!
//! Its control socket `<name>.dns.sock` takes `add TAG PID NETNS` from `connect` (bind in
//! that container's namespace) and `drop TAG` from whatever removes a lease (close its
//! sockets), each answered before the caller goes on. Both callers hold the host-wide lock,
//! which the resolver never waits for (the lock order is host-wide, then resolver): it only
//! tries it, to exit once it holds no container's sockets. Sockets go at once when asked
//! because they keep their namespace alive, and with it the container's macvlan link, whose
//! MAC address the next container given the same address needs; a container that dies
//! without being unplugged has its sockets closed within a second. A forwarded question's
//! thread holds no copy of the socket it came on (only a weak reference to send the reply
//! on, if it is still open then), and gives up within a tenth of a second once its
//! container is gone.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{lock_path, open_lock, spawn, try_lock, Resolver, UPSTREAM_TIMEOUT};
use crate::error::{Error, Result};
use crate::net::{netns_inode, Lock, Network};

/// Where the containers of a macvlan network send their questions (docker's address).
pub(crate) const ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

/// The control socket's file name after the network's name.
pub(crate) const SOCKET: &str = ".dns.sock";

/// How often containers that died without being unplugged are looked for.
const SWEEP: Duration = Duration::from_secs(1);

pub(crate) fn socket_path(n: &Network) -> PathBuf {
    n.state_dir.join(format!("{}{SOCKET}", n.name))
}

/// Has the network's resolver (started unless it runs) answer at 127.0.0.11 in the network
/// namespace of the container `tag` (its init is `pid`, its namespace's inode `netns`).
/// Called under the host-wide lock.
pub(crate) fn attach(n: &Network, tag: &str, pid: i32, netns: u64) -> Result<()> {
    let lock = open_lock(n)?;
    if try_lock(&lock) {
        // Bound here, so that the request below finds it at once.
        let path = socket_path(n);
        let _ = fs::remove_file(&path);
        let control = UnixListener::bind(&path).map_err(|e| {
            Error::Network(format!(
                "start the name resolver of network {} on {}: {e}",
                n.name,
                path.display()
            ))
        })?;
        let keep = [control.as_raw_fd()];
        spawn(n, lock, &keep, move |r, lock| serve(r, lock, control))?;
    }
    request(n, &format!("add {tag} {pid} {netns}")).map_err(|e| {
        Error::Network(format!(
            "start the name resolver of network {} in container {tag}: {e}",
            n.name
        ))
    })
}

/// Has the network's resolver, if it runs, close its sockets in container `tag`'s namespace.
/// Called under the host-wide lock.
pub(crate) fn forget(n: &Network, tag: &str) {
    if socket_path(n).exists() {
        let _ = request(n, &format!("drop {tag}"));
    }
}

/// Sends one line to the resolver and waits for its answer: `ok`, or what went wrong.
fn request(n: &Network, line: &str) -> std::result::Result<(), String> {
    let mut s = UnixStream::connect(socket_path(n)).map_err(|e| e.to_string())?;
    let wait = Some(UPSTREAM_TIMEOUT * 5);
    let _ = s.set_read_timeout(wait);
    let _ = s.set_write_timeout(wait);
    s.write_all(format!("{line}\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    BufReader::new(s)
        .read_line(&mut answer)
        .map_err(|e| e.to_string())?;
    match answer.trim_end() {
        "ok" => Ok(()),
        "" => Err("the resolver did not answer".into()),
        other => Err(other.to_string()),
    }
}

/// One container's sockets.
struct Member {
    tag: String,
    pid: i32,
    netns: u64,
    /// Shared with the threads that wait for forwarded replies, which hold it only weakly:
    /// dropped here, it closes at once.
    udp: Arc<UdpSocket>,
    tcp: TcpListener,
}

impl Member {
    /// Binds 127.0.0.11:53 in the namespace of `pid`, if it is still `netns`.
    fn bind(tag: &str, pid: i32, netns: u64) -> std::io::Result<Member> {
        let ns = File::open(format!("/proc/{pid}/ns/net"))?;
        if ns.metadata()?.ino() != netns {
            return Err(std::io::Error::other("the container is gone"));
        }
        let (udp, tcp) = crate::net::in_netns(&ns, || {
            // The container's init brings it up too, maybe later than this.
            crate::init::loopback_up().map_err(|e| std::io::Error::other(e.to_string()))?;
            let addr = SocketAddr::from((ADDRESS, 53));
            Ok::<_, std::io::Error>((UdpSocket::bind(addr)?, TcpListener::bind(addr)?))
        })??;
        Ok(Member {
            tag: tag.to_string(),
            pid,
            netns,
            udp: Arc::new(udp),
            tcp,
        })
    }

    fn alive(&self) -> bool {
        netns_inode(self.pid) == Some(self.netns)
    }
}

fn pollfd(fd: i32) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

fn serve(r: Resolver, lock: &File, control: UnixListener) {
    let mut members: Vec<Member> = vec![];
    let mut buf = vec![0u8; 4096];
    let mut swept = Instant::now();
    loop {
        let mut fds = vec![pollfd(control.as_raw_fd())];
        for m in &members {
            fds.push(pollfd(m.udp.as_raw_fd()));
            fds.push(pollfd(m.tcp.as_raw_fd()));
        }
        // SAFETY: valid pollfds.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 1000) };
        for (m, f) in members.iter().zip(fds[1..].chunks(2)) {
            if f[0].revents & libc::POLLIN != 0 {
                if let Ok((len, from)) = m.udp.recv_from(&mut buf) {
                    r.on_udp(&m.udp, &buf[..len], from, Some(&m.tag));
                }
            }
            if f[1].revents & libc::POLLIN != 0 {
                if let Ok((stream, _)) = m.tcp.accept() {
                    let (me, tag) = (r.clone(), m.tag.clone());
                    std::thread::spawn(move || me.on_tcp(stream, Some(&tag)));
                }
            }
        }
        if ready > 0 && fds[0].revents & libc::POLLIN != 0 {
            if let Ok((s, _)) = control.accept() {
                on_control(&r, s, &mut members);
            }
        }
        if ready == 0 || swept.elapsed() > SWEEP {
            swept = Instant::now();
            members.retain(Member::alive);
            if members.is_empty() && quit(&r.net, lock) {
                return;
            }
        }
    }
}

/// Exits when no one can be asking: under the host-wide lock, which every `add` and `drop`
/// is sent under, taken only if free (its holders may be waiting for this resolver).
fn quit(n: &Network, lock: &File) -> bool {
    let Some(_host) = Lock::try_take(&n.state_dir) else {
        return false;
    };
    let _ = fs::remove_file(socket_path(n));
    let _ = fs::remove_file(lock_path(n));
    // SAFETY: unlocking an fd we own.
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_UN) };
    true
}

/// Carries out one request of the control socket and answers it.
fn on_control(r: &Resolver, s: UnixStream, members: &mut Vec<Member>) {
    let _ = s.set_read_timeout(Some(UPSTREAM_TIMEOUT));
    let mut line = String::new();
    let Ok(mut reader) = s.try_clone().map(BufReader::new) else {
        return;
    };
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let answer = match words.as_slice() {
        ["add", tag, pid, netns] => match (pid.parse(), netns.parse()) {
            (Ok(pid), Ok(netns)) => {
                // Connected again: the new sockets replace the old.
                members.retain(|old| old.tag != *tag);
                add(members, Member::bind(tag, pid, netns))
            }
            _ => format!("bad request {line:?} to the resolver of {}", r.net.name),
        },
        ["drop", tag] => {
            members.retain(|m| m.tag != *tag);
            "ok".to_string()
        }
        _ => format!("bad request {line:?} to the resolver of {}", r.net.name),
    };
    let _ = (&s).write_all(format!("{answer}\n").as_bytes());
}

/// Keeps a new container's sockets; the answer to its `add`.
fn add(members: &mut Vec<Member>, bound: std::io::Result<Member>) -> String {
    match bound {
        Ok(m) => {
            members.push(m);
            "ok".to_string()
        }
        Err(e) => format!("bind {ADDRESS}:53 in its network namespace: {e}"),
    }
}
