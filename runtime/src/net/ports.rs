//! Which host address and port a published port may take, as docker's port allocator and
//! its proxy's bind decide it.
//!
//! A port is held per host address: `127.0.0.1:8080` and `127.0.0.2:8080` are two, and so
//! are `0.0.0.0:8080` and `[::]:8080` (the IPv6 socket is IPv6-only). The same address and
//! port twice is the allocator's refusal ("Bind for 127.0.0.1:8080 failed: port is already
//! allocated"); an unspecified address and a specific one of its family overlap, which
//! docker learns from its proxy's bind ("Error starting userland proxy: listen tcp4
//! 0.0.0.0:8080: bind: address already in use"), as it does for a port a host process
//! holds. berth's published ports are rules, not sockets, so the overlap with another
//! container's port is decided here from the leases, and a host process's by a bind.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};

use super::{PortMapping, Protocol};
use crate::error::{Context, Error, Result};

/// How many free ports the kernel offers for a `-p 80` before the choice gives up (each
/// one taken on another of the port's addresses, or by another container, costs one).
const ATTEMPTS: usize = 64;

/// The host ports the living containers' published ports hold.
#[derive(Debug, Default)]
pub(crate) struct Held(Vec<(Protocol, IpAddr, u16)>);

impl Held {
    /// Records a published port of a container that has an IPv4 address (`v4`) and/or an
    /// IPv6 one (`v6`): without a host address it holds the unspecified address of each.
    pub(crate) fn add(&mut self, m: &PortMapping, v4: bool, v6: bool) {
        for ip in host_ips(m, v4, v6) {
            self.0.push((m.protocol, ip, m.host_port));
        }
    }

    /// Records a port whose address is unknown (a rule of an older berth): it holds both
    /// unspecified addresses, so every address of the port clashes with it.
    pub(crate) fn add_anywhere(&mut self, protocol: Protocol, port: u16) {
        for ip in [Ipv4Addr::UNSPECIFIED.into(), Ipv6Addr::UNSPECIFIED.into()] {
            self.0.push((protocol, ip, port));
        }
    }

    /// Whether `ip:port` may be published: docker's refusal when another port holds it.
    fn check(&self, protocol: Protocol, ip: IpAddr, port: u16) -> Result<()> {
        let same = |&&(p, _, h): &&(Protocol, IpAddr, u16)| p == protocol && h == port;
        let held: Vec<IpAddr> = self.0.iter().filter(same).map(|e| e.1).collect();
        if held.contains(&ip) {
            return Err(Error::PortTaken(format!(
                "Bind for {ip}:{port} failed: port is already allocated"
            )));
        }
        let overlaps =
            |h: &IpAddr| h.is_ipv4() == ip.is_ipv4() && (h.is_unspecified() || ip.is_unspecified());
        if held.iter().any(overlaps) {
            return Err(listen_error(
                protocol,
                SocketAddr::new(ip, port),
                &std::io::Error::from_raw_os_error(libc::EADDRINUSE),
            ));
        }
        Ok(())
    }
}

/// The host addresses a published port answers on: its own, or the unspecified address of
/// each family the container has an address in (docker's `0.0.0.0` and `[::]`, one port for
/// both).
pub(crate) fn host_ips(m: &PortMapping, v4: bool, v6: bool) -> Vec<IpAddr> {
    match m.host_ip {
        Some(ip) => vec![ip],
        None => [
            v4.then_some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            v6.then_some(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
        ]
        .into_iter()
        .flatten()
        .collect(),
    }
}

/// Chooses the host ports of `ports` for a container with the given families, each free on
/// all of its addresses (a `-p 80`'s is one the kernel offers that is), and records them in
/// `held` as it goes, so two of one container clash as two containers' would.
pub(crate) fn choose(
    held: &mut Held,
    ports: &[PortMapping],
    v4: bool,
    v6: bool,
) -> Result<Vec<PortMapping>> {
    let mut done = vec![];
    for m in ports {
        let ips = host_ips(m, v4, v6);
        let mut m = m.clone();
        if m.host_port == 0 {
            let first = ips.first().copied().unwrap_or(Ipv4Addr::UNSPECIFIED.into());
            let mut last = None;
            for _ in 0..ATTEMPTS {
                m.host_port = free_port(m.protocol, first)?;
                match usable(held, &m, &ips) {
                    Ok(()) => break,
                    Err(e) => last = Some(e),
                }
                m.host_port = 0;
            }
            if m.host_port == 0 {
                return Err(last.unwrap_or_else(|| Error::Network("no free host port".into())));
            }
        } else {
            usable(held, &m, &ips)?;
        }
        held.add(&m, v4, v6);
        done.push(m);
    }
    Ok(done)
}

/// Whether `m`'s host port may be published on each of `ips`: no other port holds it (or
/// overlaps it) and no host process is bound to it.
fn usable(held: &Held, m: &PortMapping, ips: &[IpAddr]) -> Result<()> {
    for ip in ips {
        held.check(m.protocol, *ip, m.host_port)?;
        unbound(m.protocol, SocketAddr::new(*ip, m.host_port))?;
    }
    Ok(())
}

/// Fails when a host process is bound to `addr` (a published port would hide it), as
/// docker's proxy fails to bind it.
fn unbound(protocol: Protocol, addr: SocketAddr) -> Result<()> {
    let bound = match protocol {
        Protocol::Tcp => TcpListener::bind(addr).map(drop),
        Protocol::Udp => UdpSocket::bind(addr).map(drop),
    };
    bound.map_err(|e| listen_error(protocol, addr, &e))
}

/// docker's words for a port its proxy could not bind: `Error starting userland proxy:
/// listen tcp4 0.0.0.0:8080: bind: address already in use` (Go's text for the errno).
fn listen_error(protocol: Protocol, addr: SocketAddr, e: &std::io::Error) -> Error {
    let family = if addr.is_ipv4() { 4 } else { 6 };
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or_default();
    let mut chars = text.chars();
    let go = match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    };
    Error::PortTaken(format!(
        "Error starting userland proxy: listen {}{family} {addr}: bind: {go}",
        protocol.as_str()
    ))
}

/// A port the kernel would give a socket bound to `host_ip` now.
fn free_port(protocol: Protocol, host_ip: IpAddr) -> Result<u16> {
    let addr = SocketAddr::new(host_ip, 0);
    let port = match protocol {
        Protocol::Tcp => TcpListener::bind(addr).and_then(|l| l.local_addr()),
        Protocol::Udp => UdpSocket::bind(addr).and_then(|s| s.local_addr()),
    }
    .ctx(|| "pick a free host port".into())?
    .port();
    Ok(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(ip: Option<&str>, host_port: u16) -> PortMapping {
        PortMapping {
            host_ip: ip.map(|a| a.parse().unwrap()),
            host_port,
            container_port: 80,
            protocol: Protocol::Tcp,
        }
    }

    /// docker's answers, from a private dockerd: each host address holds its own port; an
    /// unspecified address overlaps its family's specific ones, not the other family's.
    #[test]
    fn ports_are_held_per_host_address() {
        let mut held = Held::default();
        held.add(&port(Some("127.0.0.1"), 8080), true, false);
        held.add(&port(Some("fd00:aa::1"), 9090), true, true);
        held.add(&port(None, 9091), true, false);
        let refusal = |ip: &str, p: u16| {
            held.check(Protocol::Tcp, ip.parse().unwrap(), p)
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(refusal("127.0.0.2", 8080), None);
        assert_eq!(refusal("::", 8080), None);
        assert_eq!(refusal("fd00:aa::2", 9090), None);
        assert_eq!(refusal("0.0.0.0", 9090), None);
        assert_eq!(refusal("::", 9091), None, "an IPv4-only container's port");
        assert_eq!(
            refusal("127.0.0.1", 8080).unwrap(),
            "Bind for 127.0.0.1:8080 failed: port is already allocated"
        );
        assert_eq!(
            refusal("fd00:aa::1", 9090).unwrap(),
            "Bind for fd00:aa::1:9090 failed: port is already allocated"
        );
        assert_eq!(
            refusal("0.0.0.0", 8080).unwrap(),
            "Error starting userland proxy: listen tcp4 0.0.0.0:8080: bind: address \
             already in use"
        );
        assert_eq!(
            refusal("::", 9090).unwrap(),
            "Error starting userland proxy: listen tcp6 [::]:9090: bind: address \
             already in use"
        );
        assert_eq!(
            refusal("127.0.0.1", 9091).unwrap(),
            "Error starting userland proxy: listen tcp4 127.0.0.1:9091: bind: \
             address already in use"
        );
        assert!(held
            .check(Protocol::Udp, "127.0.0.1".parse().unwrap(), 8080)
            .is_ok());
    }
}
