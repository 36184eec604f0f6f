//! Networks: a container's interfaces, addresses and routes, NAT to the outside, published
//! ports, and a name resolver per user-defined network.
//!
//! A [`Network`] is the host side of one network: a bridge with the gateway's address (or,
//! with `parent`, macvlan links over a host interface, the gateway being a router outside),
//! its subnet and its rules. The container's network namespace is the one the runtime made
//! for it (no path in the Spec): [`connect`] runs once that namespace exists and before
//! `start` (the engine calls it from `create_with_netns`'s callback, while the init mounts
//! its root), and plugs one interface per network into it by the init's pid; a running
//! container can be plugged into more ([`connect`] again, with another interface name) and
//! unplugged ([`detach`]). The interfaces die with the namespace, so a container that exits
//! (or whose monitor is killed) leaves none behind. What outlives it is host-wide:
//!
//! - a *lease* per address: a file under [`Network::lease_dir`] whose first line names the
//!   tag (the container's id), the init's pid and the inode of its network namespace, and
//!   whose next lines name the host's end of its veth pair, its published ports and the
//!   names the network's resolver answers for it. A lease whose namespace is gone is stale
//!   and is taken over by the next container (its port rules removed first);
//! - DNAT rules for published ports in the nat table's `BERTH` chain, each with the comment
//!   `berth:<tag>` (see `firewall`);
//! - per network, a stamp `<state_dir>/<name>.net` saying its bridge (by interface index)
//!   has its address and rules, so a start checks one netlink answer instead of the rules;
//! - per user-defined network, a resolver process (see `dns`), started with its first
//!   container and gone after its last (on a macvlan network, with sockets in each of its
//!   containers' namespaces).
//!
//! All of it changes under one host-wide flock (`<state_dir>/lock`), so containers of
//! different berth roots, processes and networks never get the same address or port.
//! Links, addresses and routes are set through rtnetlink (no process spawned); rules with
//! one `iptables-restore` batch per change, and none for a container without ports.

mod dns;
mod firewall;
mod ports;
mod rtnl;

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::{Context, Error, Result};
use rtnl::Rtnl;

/// A new network namespace with its loopback up, held by the returned fd, for a container
/// to join by path (`/proc/<pid>/fd/<fd>` of the holder) instead of making its own: so that
/// something can be set up in it before the container exists (rootless berth starts pasta on
/// it while the runtime creates the container). Made in a thread of its own, which exits:
/// the calling thread stays where it is.
pub fn new_namespace() -> Result<std::os::fd::OwnedFd> {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: unshare of this thread's network namespace only.
            crate::sys::cvt(unsafe { libc::unshare(libc::CLONE_NEWNET) })
                .ctx(|| "unshare a network namespace".into())?;
            crate::init::loopback_up()?;
            let f = File::open("/proc/thread-self/ns/net")
                .ctx(|| "open /proc/thread-self/ns/net".into())?;
            Ok(std::os::fd::OwnedFd::from(f))
        })
        .join()
        .unwrap_or_else(|_| Err(Error::Setup("the network namespace thread panicked".into())))
    })
}

/// The iptables chain (nat table) holding the published ports.
const CHAIN: &str = "BERTH";

/// What the stamp records besides the bridge's index: bump it when [`firewall`] changes the
/// rules a network needs, so bridges set up by an older berth get the new ones.
const RULES_VERSION: u32 = 2;

/// The host side of a network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    /// The bridge's interface name (at most 15 bytes); for macvlan, the name the network's
    /// leases are kept under.
    pub name: String,
    /// The gateway: the bridge's own address, the containers' default route.
    pub gateway: Ipv4Addr,
    /// The subnet's prefix length (8 to 30).
    pub prefix: u8,
    /// Whether the network has IPv4 at all: an IPv6-only network (docker's `--ipv4=false`)
    /// has no IPv4 subnet (`gateway` and `prefix` mean nothing), its leases are keyed by
    /// their IPv6 addresses and its resolver answers on the IPv6 gateway.
    pub ipv4: bool,
    /// Where the host-wide state lives: the lock, each network's stamp and its leases in a
    /// directory of its name (on a tmpfs, as they die at reboot). All networks share it, as
    /// they share the published-port rules.
    pub state_dir: PathBuf,
    /// docker's `--ip-range`: addresses are handed out from this part of the subnet only
    /// (an address and a prefix length).
    pub range: Option<(Ipv4Addr, u8)>,
    /// No route out: no NAT, no forwarding to other interfaces, no default route in the
    /// container, no published ports.
    pub internal: bool,
    /// A resolver on the gateway's port 53 answers the containers' names (user-defined
    /// bridge networks; docker's default bridge has none).
    pub dns: bool,
    /// macvlan: the host interface the containers' links hang off. No bridge, no NAT.
    pub parent: Option<String>,
    /// An IPv6 subnet beside the IPv4 one (`--ipv6`): the gateway (the bridge's address)
    /// and the prefix length. A container's IPv6 address is the one asked for, else the
    /// subnet's prefix with its IPv4 address's host part (else the first free one); its
    /// IPv4 lease records it. NAT out, forwarding and published ports as for IPv4.
    /// Required when `ipv4` is false.
    pub ipv6: Option<(Ipv6Addr, u8)>,
}

/// The default network's host side has been called a bridge since before there were others.
pub type Bridge = Network;

impl Default for Network {
    /// berth's default bridge: `berth0`, 10.89.0.1/16, state in /run/berth/net.
    fn default() -> Self {
        Network {
            name: "berth0".into(),
            gateway: Ipv4Addr::new(10, 89, 0, 1),
            prefix: 16,
            ipv4: true,
            state_dir: PathBuf::from("/run/berth/net"),
            range: None,
            internal: false,
            dns: false,
            parent: None,
            ipv6: None,
        }
    }
}

fn mask_of(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

/// Whether `a/pa` and `b/pb` share an address.
pub fn overlaps(a: Ipv4Addr, pa: u8, b: Ipv4Addr, pb: u8) -> bool {
    let m = mask_of(pa.min(pb));
    u32::from(a) & m == u32::from(b) & m
}

impl Network {
    /// The IPv6 address that goes with the IPv4 `address` on a network with an IPv6
    /// subnet: the subnet's prefix and the IPv4 address's host part.
    pub fn address6(&self, address: Ipv4Addr) -> Option<Ipv6Addr> {
        let (gw6, p6) = self.ipv6?;
        let host = u32::from(address) & !(u32::MAX.checked_shl(32 - u32::from(self.prefix))?);
        Some(Ipv6Addr::from(
            (u128::from(gw6) & mask6(p6)) | u128::from(host),
        ))
    }

    /// The IPv6 subnet in CIDR form (`fd00:1::/64`), on a network with one.
    pub fn subnet6(&self) -> Option<String> {
        let (gw6, p6) = self.ipv6?;
        Some(format!(
            "{}/{p6}",
            Ipv6Addr::from(u128::from(gw6) & mask6(p6))
        ))
    }

    /// Whether `a` is an address of the IPv6 subnet a container may have (not the
    /// subnet's first address, docker's subnet-router anycast, nor the gateway).
    pub fn holds6(&self, a: Ipv6Addr) -> bool {
        self.ipv6.is_some_and(|(gw6, p6)| {
            let m = mask6(p6);
            u128::from(a) & m == u128::from(gw6) & m && u128::from(a) & !m != 0 && a != gw6
        })
    }

    /// This network's address leases.
    pub fn lease_dir(&self) -> PathBuf {
        self.state_dir.join(&self.name)
    }

    fn stamp_path(&self) -> PathBuf {
        self.state_dir.join(format!("{}.net", self.name))
    }

    fn mask(&self) -> u32 {
        mask_of(self.prefix)
    }

    /// The subnet's first address.
    pub fn network_address(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.gateway) & self.mask())
    }

    /// The subnet in CIDR form (`10.89.0.0/16`).
    pub fn subnet(&self) -> String {
        format!("{}/{}", self.network_address(), self.prefix)
    }

    /// Whether `a` is an address of the subnet a container may have (not the network's,
    /// the broadcast or the gateway).
    pub fn holds(&self, a: Ipv4Addr) -> bool {
        if !self.ipv4 {
            return false;
        }
        let host = u32::from(a) & !self.mask();
        u32::from(a) & self.mask() == u32::from(self.gateway) & self.mask()
            && host != 0
            && host != !self.mask()
            && a != self.gateway
    }

    /// What is wrong with the name, if anything: an interface name of 1 to 15 bytes.
    pub fn name_problem(&self) -> Option<String> {
        let ok = !self.name.is_empty()
            && self.name.len() <= 15
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        (!ok).then(|| {
            format!(
                "{:?} must be 1 to 15 letters, digits, '-', '_' or '.'",
                self.name
            )
        })
    }

    /// What is wrong with the gateway, prefix and range, if anything: a prefix from /8 to
    /// /30, a gateway that is neither the subnet's network nor its broadcast address, a
    /// range inside the subnet.
    pub fn address_problem(&self) -> Option<String> {
        let cidr = format!("{}/{}", self.gateway, self.prefix);
        if !(8..=30).contains(&self.prefix) {
            return Some(format!(
                "{cidr}: the prefix length must be from 8 to 30, such as 10.89.0.1/16"
            ));
        }
        let host = u32::from(self.gateway) & !self.mask();
        if host == 0 || host == !self.mask() {
            return Some(format!(
                "{cidr} is the subnet's network or broadcast address; give the gateway's, \
                 such as the .1"
            ));
        }
        if let Some((r, p)) = self.range {
            if p < self.prefix || p > 32 || !overlaps(r, p, self.gateway, self.prefix) {
                return Some(format!(
                    "the range {r}/{p} is not inside the subnet {}",
                    self.subnet()
                ));
            }
        }
        None
    }

    fn check(&self) -> Result<()> {
        if !self.ipv4 && self.ipv6.is_none() {
            return Err(Error::Network(format!(
                "network {}: IPv4 or IPv6 must be enabled",
                self.name
            )));
        }
        let address_problem = if self.ipv4 {
            self.address_problem()
        } else {
            None
        };
        match (self.name_problem(), address_problem) {
            (Some(p), _) => Err(Error::Network(format!("network name {p}"))),
            (None, Some(p)) => Err(Error::Network(format!("network address {p}"))),
            (None, None) => Ok(()),
        }
    }

    /// Where containers send their names' questions: the IPv4 gateway, else (on an IPv6-only
    /// network) the IPv6 one; on a macvlan network, 127.0.0.11 (in each container's own
    /// network namespace, see `dns::embedded`).
    pub fn resolver_address(&self) -> IpAddr {
        if self.parent.is_some() {
            // A macvlan network's gateway is not the host's: the resolver is docker's
            // embedded one, in each container's own namespace.
            return IpAddr::V4(dns::embedded::ADDRESS);
        }
        match (self.ipv4, self.ipv6) {
            (false, Some((gw6, _))) => IpAddr::V6(gw6),
            _ => IpAddr::V4(self.gateway),
        }
    }

    /// The MAC address of the bridge: 02:42 and the IPv4 gateway, else the last four
    /// bytes of the IPv6 one.
    fn bridge_mac(&self) -> [u8; 6] {
        match (self.ipv4, self.ipv6) {
            (false, Some((gw6, _))) => mac_of6(gw6),
            _ => mac_of(self.gateway),
        }
    }

    /// The addresses handed out, first to last.
    fn pool(&self) -> std::ops::RangeInclusive<u32> {
        let (base, prefix) = self.range.unwrap_or((self.gateway, self.prefix));
        let m = mask_of(prefix);
        let first = u32::from(base) & m;
        first..=(first | !m)
    }
}

/// TCP or UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(&self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }

    fn parse(s: &str) -> Option<Protocol> {
        match s {
            "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            _ => None,
        }
    }
}

/// A port of the container published on the host (`-p`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortMapping {
    /// The host address it answers on: `None` for all of the host's addresses in each
    /// family the container has an address in; `0.0.0.0` for all of the IPv4 ones, `::`
    /// for all of the IPv6 ones.
    pub host_ip: Option<IpAddr>,
    /// The host port; 0 picks a free one (docker's `-p 80`).
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

/// One interface of a container on a network: what [`connect`] is asked for.
#[derive(Clone, Debug, Default)]
pub struct Endpoint {
    /// What this leaves on the host is known by: the container's id (letters and digits).
    pub tag: String,
    /// The container's init, whose network namespace gets the interface.
    pub pid: i32,
    /// The interface's name inside (`eth0`, `eth1`, …).
    pub interface: String,
    /// docker's `--ip`: this address, else the first free one.
    pub address: Option<Ipv4Addr>,
    /// docker's `--ip6`, on a network with an IPv6 subnet: this IPv6 address.
    pub address6: Option<Ipv6Addr>,
    /// Whether the container's default route goes through this network's gateway (the
    /// first network that is not internal).
    pub default_route: bool,
    pub ports: Vec<PortMapping>,
    /// What the network's resolver answers with this address: name, aliases, short id.
    pub names: Vec<String>,
    /// docker's `--dns`: where the network's resolver sends this container's other
    /// questions, from the container's network namespace (docker's `ExtServers`); none: to
    /// the host's resolvers, from the host's.
    pub dns: Vec<IpAddr>,
    /// docker's `--mac-address`: this MAC address, else 02:42 and the IPv4 address.
    pub mac: Option<[u8; 6]>,
}

/// What [`connect`] gave the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// The container's IPv4 address; none on an IPv6-only network.
    pub address: Option<Ipv4Addr>,
    /// On a network with an IPv6 subnet: the container's IPv6 address.
    pub address6: Option<Ipv6Addr>,
    /// The IPv4 gateway; none on an IPv6-only network.
    pub gateway: Option<Ipv4Addr>,
    pub prefix: u8,
    pub mac: String,
    /// The published ports, host ports chosen.
    pub ports: Vec<PortMapping>,
}

/// The host-wide lock, held while leases and rules change.
struct Lock {
    _file: File,
}

impl Lock {
    fn take(state_dir: &Path) -> Result<Lock> {
        Lock::flock(state_dir, libc::LOCK_EX)
    }

    /// The lock if no one holds it, without waiting: for those that must never wait for it
    /// (a macvlan network's resolver, which callers holding it wait for).
    fn try_take(state_dir: &Path) -> Option<Lock> {
        Lock::flock(state_dir, libc::LOCK_EX | libc::LOCK_NB).ok()
    }

    fn flock(state_dir: &Path, how: i32) -> Result<Lock> {
        fs::create_dir_all(state_dir).ctx(|| format!("create {}", state_dir.display()))?;
        let path = state_dir.join("lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .ctx(|| format!("open {}", path.display()))?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(f.as_raw_fd(), how) } != 0 {
            return Err(Error::io(
                format!("lock {}", path.display()),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(Lock { _file: f })
    }
}

/// Runs `f` in the network namespace `ns` (an open `/proc/PID/ns/net`), in a thread of its
/// own that enters it and ends with `f`: the caller's threads stay where they are, and the
/// sockets `f` makes stay in `ns`.
fn in_netns<T: Send>(ns: &File, f: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    let fd = ns.as_raw_fd();
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns of this thread only (CLONE_NEWNET moves the calling thread).
            if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(f())
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the namespace's thread panicked")))
    })
}

/// A lease file: `tag pid netns-inode` on its first line (all that berth wrote before
/// leases said more), then `if NAME`, `ip6 ADDRESS`, `port PROTO HOST-IP|- HOST-PORT
/// CONTAINER-PORT`, `name NAME` and `dns ADDRESS` lines.
#[derive(Clone, Debug, Default)]
struct Lease {
    tag: String,
    pid: i32,
    netns: u64,
    /// Whether the lease says what it holds (written by this berth): one without it may own
    /// port rules it does not name.
    complete: bool,
    host_interface: Option<String>,
    /// The container's IPv6 address on a network with an IPv6 subnet.
    address6: Option<Ipv6Addr>,
    ports: Vec<PortMapping>,
    names: Vec<String>,
    /// The container's `--dns` servers, its resolver's upstreams for it.
    dns: Vec<IpAddr>,
}

impl Lease {
    fn read(path: &Path) -> Option<Lease> {
        Lease::parse(&fs::read_to_string(path).ok()?)
    }

    fn parse(s: &str) -> Option<Lease> {
        let mut lines = s.lines();
        let mut it = lines.next()?.split_whitespace();
        let mut l = Lease {
            tag: it.next()?.to_string(),
            pid: it.next()?.parse().ok()?,
            netns: it.next()?.parse().ok()?,
            ..Lease::default()
        };
        for line in lines {
            let w: Vec<&str> = line.split_whitespace().collect();
            match w.as_slice() {
                ["complete"] => l.complete = true,
                ["if", name] => l.host_interface = Some(name.to_string()),
                ["ip6", a] => l.address6 = a.parse().ok(),
                ["name", name] => l.names.push(name.to_string()),
                ["dns", a] => l.dns.extend(a.parse::<IpAddr>()),
                ["port", proto, ip, host, container] => l.ports.push(PortMapping {
                    protocol: Protocol::parse(proto)?,
                    host_ip: if *ip == "-" { None } else { ip.parse().ok() },
                    host_port: host.parse().ok()?,
                    container_port: container.parse().ok()?,
                }),
                _ => {}
            }
        }
        Some(l)
    }

    fn render(&self) -> String {
        let mut s = format!("{} {} {}\ncomplete\n", self.tag, self.pid, self.netns);
        if let Some(i) = &self.host_interface {
            s.push_str(&format!("if {i}\n"));
        }
        if let Some(a) = self.address6 {
            s.push_str(&format!("ip6 {a}\n"));
        }
        for p in &self.ports {
            let ip = p.host_ip.map_or("-".to_string(), |a| a.to_string());
            s.push_str(&format!(
                "port {} {ip} {} {}\n",
                p.protocol.as_str(),
                p.host_port,
                p.container_port
            ));
        }
        for n in &self.names {
            s.push_str(&format!("name {n}\n"));
        }
        for a in &self.dns {
            s.push_str(&format!("dns {a}\n"));
        }
        s
    }

    /// Writes the lease by rename: readers (the resolver) see it whole.
    fn write(&self, path: &Path) -> Result<()> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("lease");
        let tmp = path.with_file_name(format!(".{name}.tmp"));
        fs::write(&tmp, self.render()).ctx(|| format!("write {}", tmp.display()))?;
        fs::rename(&tmp, path).ctx(|| format!("write {}", path.display()))
    }

    /// Whether the container holding it still has its network namespace.
    fn alive(&self) -> bool {
        netns_inode(self.pid).is_some_and(|i| i == self.netns)
    }
}

fn netns_inode(pid: i32) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|m| m.ino())
}

/// The IPv4 address a lease is keyed by (an IPv6-only network's are keyed by IPv6 ones).
fn v4(key: IpAddr) -> Option<Ipv4Addr> {
    match key {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    }
}

/// The leases of one lease directory: (address, lease). A lease is named by its IPv4
/// address, or on an IPv6-only network by its IPv6 one.
fn leases_in(dir: &Path) -> Vec<(IpAddr, Lease)> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let addr: IpAddr = e.file_name().to_str()?.parse().ok()?;
            Some((addr, Lease::read(&e.path())?))
        })
        .collect()
}

/// Every lease of every network: (lease directory, address, lease).
fn all_leases(state_dir: &Path) -> Vec<(PathBuf, IpAddr, Lease)> {
    fs::read_dir(state_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|d| d.file_type().is_ok_and(|t| t.is_dir()))
        .flat_map(|d| {
            let dir = d.path();
            leases_in(&dir)
                .into_iter()
                .map(move |(a, l)| (dir.clone(), a, l))
        })
        .collect()
}

/// Removes a lease and what it held on the host: its port rules (those of a lease that does
/// not name them are found by their comment) and, while its namespace lives (a running
/// container taken off the network), its veth pair. A pair whose namespace is gone is the
/// kernel's to remove, and it does so in the background: deleting it here would wait for
/// that namespace's teardown (RCU barriers, ~13 ms of every `run --rm` on a bridge). A name
/// still held by a dying pair is freed by [`plug`] when a restart needs it.
fn clear_stale(n: &Network, path: &Path, key: IpAddr, l: &Lease, rt: Option<&mut Rtnl>) {
    if n.dns && n.parent.is_some() {
        // Its sockets would keep its namespace, and so its macvlan link, alive.
        dns::embedded::forget(n, &l.tag);
    }
    if l.complete {
        firewall::unpublish(&l.tag, v4(key), l.address6, &l.ports);
    } else {
        firewall::remove_tagged(|t| t == l.tag);
    }
    if let (Some(i), Some(rt)) = (&l.host_interface, rt) {
        if l.alive() {
            let _ = rt.del_link(i);
        }
    }
    let _ = fs::remove_file(path);
}

/// Writes a sysctl unless it holds `value` already.
fn set_sysctl(path: &str, value: &str) -> Result<()> {
    if fs::read_to_string(path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    fs::write(path, value).ctx(|| format!("write {path}"))
}

fn net_err(what: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Network(format!("{what}: {e}"))
}

/// What the stamp of a ready bridge says.
fn stamp_text(n: &Network, index: u32) -> String {
    format!(
        "{index} {RULES_VERSION} {} internal={} dns={}{}\n",
        if n.ipv4 {
            format!("{}/{}", n.gateway, n.prefix)
        } else {
            "-".to_string()
        },
        n.internal,
        n.dns,
        n.ipv6
            .map(|(g, p)| format!(" ipv6={g}/{p}"))
            .unwrap_or_default()
    )
}

/// Makes the network's host side ready; returns the bridge's (or the macvlan parent's)
/// interface index. A bridge whose stamp matches costs one netlink request and one read;
/// otherwise it is created if missing, given its address, brought up, and its rules added.
fn ensure_network(n: &Network, rt: &mut Rtnl) -> Result<u32> {
    if let Some(parent) = &n.parent {
        return rt
            .link_index(parent)
            .map_err(net_err("look up the parent interface"))?
            .ok_or_else(|| {
                Error::Network(format!(
                    "the parent interface {parent} of network {} does not exist",
                    n.name
                ))
            });
    }
    let index = rt
        .link_index(&n.name)
        .map_err(net_err("look up the bridge"))?;
    if let Some(i) = index {
        if fs::read_to_string(n.stamp_path()).is_ok_and(|s| s == stamp_text(n, i)) {
            return Ok(i);
        }
    }
    let index = match index {
        Some(i) => i,
        None => {
            // A bridge whose address is not set takes the lowest of its ports' addresses,
            // so a container plugged in later could change it under the others' neighbour
            // caches (their gateway unreachable until the cache expires): set it, from the
            // gateway's address as containers' are from theirs.
            match rt.add_bridge(&n.name, n.bridge_mac()) {
                Err(e) if e.raw_os_error() != Some(libc::EEXIST) => {
                    return Err(Error::Network(format!("create bridge {}: {e}", n.name)))
                }
                _ => {}
            }
            rt.link_index(&n.name)
                .map_err(net_err("look up the bridge"))?
                .ok_or_else(|| Error::Network(format!("bridge {} vanished", n.name)))?
        }
    };
    if n.ipv4 {
        rt.add_address(index, n.gateway, n.prefix).map_err(|e| {
            Error::Network(format!(
                "give bridge {} the address {}/{}: {e}",
                n.name, n.gateway, n.prefix
            ))
        })?;
    }
    if let Some((gw6, p6)) = n.ipv6 {
        set_sysctl(
            &format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", n.name),
            "0",
        )?;
        rt.add_address6(index, gw6, p6).map_err(|e| {
            Error::Network(format!(
                "give bridge {} the address {gw6}/{p6}: {e}",
                n.name
            ))
        })?;
    }
    if !rt.link_up(index).unwrap_or(false) {
        rt.set_up(index).map_err(net_err("bring the bridge up"))?;
    }
    if n.ipv4 {
        set_sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
        // Published ports answer on 127.0.0.1 too: DNAT'd loopback packets must be
        // routable out of the bridge, and get the bridge's address as their source (see
        // firewall).
        set_sysctl(
            &format!("/proc/sys/net/ipv4/conf/{}/route_localnet", n.name),
            "1",
        )?;
    }
    if n.ipv6.is_some() {
        // As docker does for its IPv6 networks: the host routes between interfaces.
        set_sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1")?;
    }
    firewall::setup(n)?;
    let stamp = n.stamp_path();
    fs::write(&stamp, stamp_text(n, index)).ctx(|| format!("write {}", stamp.display()))?;
    Ok(index)
}

/// Takes an address: `wanted`, else the first with no lease or a stale one. A stale lease
/// in the way is cleared first.
fn allocate(
    n: &Network,
    lease: &Lease,
    wanted: Option<Ipv4Addr>,
    rt: &mut Rtnl,
) -> Result<Ipv4Addr> {
    let take = |addr: Ipv4Addr, rt: &mut Rtnl| -> Result<Option<Ipv4Addr>> {
        Ok(take_lease(n, lease, IpAddr::V4(addr), rt)?.then_some(addr))
    };
    if let Some(a) = wanted {
        if !n.holds(a) {
            return Err(Error::Network(format!(
                "no configured subnet or ip-range contain the IP address {a}"
            )));
        }
        return take(a, rt)?.ok_or_else(|| Error::Network("Address already in use".into()));
    }
    for a in n.pool() {
        let addr = Ipv4Addr::from(a);
        if !n.holds(addr) {
            continue;
        }
        if let Some(a) = take(addr, rt)? {
            return Ok(a);
        }
    }
    Err(Error::Network(format!(
        "no free address left in {} on network {}",
        n.subnet(),
        n.name
    )))
}

/// Writes `lease` as the lease of `key` unless a living container holds it (a stale lease
/// there is cleared first); whether it did.
fn take_lease(n: &Network, lease: &Lease, key: IpAddr, rt: &mut Rtnl) -> Result<bool> {
    let path = n.lease_dir().join(key.to_string());
    match Lease::read(&path) {
        Some(l) if l.alive() && l.tag != lease.tag => return Ok(false),
        Some(l) => clear_stale(n, &path, key, &l, Some(rt)),
        None => {}
    }
    lease.write(&path)?;
    Ok(true)
}

/// Takes an IPv6 address on an IPv6-only network, whose leases are keyed by them:
/// `wanted`, else the first with no lease or a stale one.
fn allocate_only6(
    n: &Network,
    lease: &Lease,
    wanted: Option<Ipv6Addr>,
    rt: &mut Rtnl,
) -> Result<Ipv6Addr> {
    let Some((gw6, p6)) = n.ipv6 else {
        return Err(Error::Network(format!(
            "network {}: IPv4 or IPv6 must be enabled",
            n.name
        )));
    };
    let mut take = |a: Ipv6Addr| {
        let l = Lease {
            address6: Some(a),
            ..lease.clone()
        };
        take_lease(n, &l, IpAddr::V6(a), rt)
    };
    if let Some(a) = wanted {
        if !n.holds6(a) {
            return Err(Error::Network(format!(
                "no configured subnet or ip-range contain the IP address {a}"
            )));
        }
        return if take(a)? {
            Ok(a)
        } else {
            Err(Error::Network("Address already in use".into()))
        };
    }
    // Each lease holds one address: one more candidate than there are leases is enough.
    let leases = leases_in(&n.lease_dir()).len();
    let base = u128::from(gw6) & mask6(p6);
    let last = base | !mask6(p6);
    for a in (base + 1..=last)
        .map(Ipv6Addr::from)
        .filter(|a| n.holds6(*a))
        .take(leases + 1)
    {
        if take(a)? {
            return Ok(a);
        }
    }
    Err(Error::Network(format!(
        "no free IPv6 address left in {} on network {}",
        n.subnet6().unwrap_or_default(),
        n.name
    )))
}

/// The IPv6 address of the container that got the IPv4 `address` on a network with an IPv6
/// subnet: `wanted` (docker's `--ip6`), else the one with the IPv4 address's host part,
/// else the first free one. Called under the host-wide lock, before the lease says it.
fn allocate6(
    n: &Network,
    tag: &str,
    address: Ipv4Addr,
    wanted: Option<Ipv6Addr>,
) -> Result<Option<Ipv6Addr>> {
    let Some((gw6, p6)) = n.ipv6 else {
        return match wanted {
            Some(a) => Err(Error::Network(format!(
                "network {} has no IPv6 subnet for the address {a}",
                n.name
            ))),
            None => Ok(None),
        };
    };
    let taken: HashSet<Ipv6Addr> = leases_in(&n.lease_dir())
        .into_iter()
        .filter(|(_, l)| l.tag != tag && l.alive())
        .filter_map(|(_, l)| l.address6)
        .collect();
    if let Some(a) = wanted {
        if !n.holds6(a) {
            return Err(Error::Network(format!(
                "no configured subnet or ip-range contain the IP address {a}"
            )));
        }
        if taken.contains(&a) {
            return Err(Error::Network("Address already in use".into()));
        }
        return Ok(Some(a));
    }
    if let Some(a) = n
        .address6(address)
        .filter(|a| !taken.contains(a) && n.holds6(*a))
    {
        return Ok(Some(a));
    }
    let base = u128::from(gw6) & mask6(p6);
    let last = base | !mask6(p6);
    // One more than the leases can hold is enough to find a free one.
    (base + 1..=last)
        .take(taken.len() + 2)
        .map(Ipv6Addr::from)
        .find(|a| n.holds6(*a) && !taken.contains(a))
        .map(Some)
        .ok_or_else(|| {
            Error::Network(format!(
                "no free IPv6 address left in {} on network {}",
                n.subnet6().unwrap_or_default(),
                n.name
            ))
        })
}

/// Chooses the host ports and adds the rules, in one batch. Ports held by living leases are
/// taken; stale leases' rules are cleared first, so no rule sends a port to an address that
/// is gone or handed to another container.
fn publish(
    n: &Network,
    tag: &str,
    address: Option<Ipv4Addr>,
    address6: Option<Ipv6Addr>,
    ports: &[PortMapping],
) -> Result<Vec<PortMapping>> {
    if ports.is_empty() {
        return Ok(vec![]);
    }
    for ip in ports.iter().filter_map(|p| p.host_ip) {
        let (family, missing) = match ip {
            IpAddr::V4(_) => ("IPv4", address.is_none()),
            IpAddr::V6(_) => ("IPv6", address6.is_none()),
        };
        if missing {
            return Err(Error::Network(format!(
                "a port cannot be published on the {family} address {ip}: the container has no \
                 {family} address on network {}",
                n.name
            )));
        }
        if ip == IpAddr::V6(Ipv6Addr::LOCALHOST) {
            return Err(Error::Network(format!(
                "a port cannot be published on {ip}: the kernel forwards no IPv6 loopback \
                 packet to a container"
            )));
        }
    }
    let mut held = ports::Held::default();
    let mut legacy = false;
    let mut live_tags = HashSet::new();
    for (dir, addr, l) in all_leases(&n.state_dir) {
        if l.alive() {
            live_tags.insert(l.tag.clone());
            legacy |= !l.complete;
            let has6 = addr.is_ipv6() || l.address6.is_some();
            for p in &l.ports {
                held.add(p, addr.is_ipv4(), has6);
            }
        } else if !l.ports.is_empty() || !l.complete {
            // Its rules go; the address stays leased until taken over.
            firewall::unpublish(&l.tag, v4(addr), l.address6, &l.ports);
            let _ = Lease {
                ports: vec![],
                ..l.clone()
            }
            .write(&dir.join(addr.to_string()));
            legacy |= !l.complete;
        }
    }
    if legacy {
        // Leases written by an older berth do not name their ports: ask the rules.
        for (_, t, proto, port) in firewall::tagged_rules() {
            if live_tags.contains(&t) {
                if let Some(p) = Protocol::parse(&proto) {
                    held.add_anywhere(p, port);
                }
            }
        }
        firewall::remove_tagged(|t| !live_tags.contains(t) && t != tag);
    }
    let done = ports::choose(&mut held, ports, address.is_some(), address6.is_some())?;
    firewall::publish(tag, address, address6, &done)?;
    Ok(done)
}

/// The host end's name of a container's veth pair: `bv` and the tag's first 11 characters
/// for `eth0`, `b<N>` and the same for `eth<N>`.
fn host_interface(tag: &str, interface: &str) -> Result<String> {
    let short: String = tag.chars().take(11).collect();
    match interface
        .strip_prefix("eth")
        .and_then(|n| n.parse::<u8>().ok())
    {
        Some(0) => Ok(format!("bv{short}")),
        Some(n @ 1..=9) => Ok(format!("b{n}{short}")),
        _ => Err(Error::Network(format!(
            "interface {interface}: a container has eth0 to eth9 (ten networks at most)"
        ))),
    }
}

/// docker's rule: the MAC address is 02:42 then the IPv4 address.
fn mac_of(address: Ipv4Addr) -> [u8; 6] {
    let o = address.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// Without an IPv4 address: 02:42 then the IPv6 address's last four bytes.
fn mac_of6(address: Ipv6Addr) -> [u8; 6] {
    let o = address.octets();
    [0x02, 0x42, o[12], o[13], o[14], o[15]]
}

/// A container's MAC address on a network: from its IPv4 address, else its IPv6 one.
fn endpoint_mac(address: Option<Ipv4Addr>, address6: Option<Ipv6Addr>) -> [u8; 6] {
    match (address, address6) {
        (Some(a), _) => mac_of(a),
        (None, Some(a6)) => mac_of6(a6),
        (None, None) => [0x02, 0x42, 0, 0, 0, 0],
    }
}

/// Plugs the network namespace of a created (or running) container into the network: an
/// interface named `e.interface` with an address of the subnet, the default route through
/// the gateway when asked, and the published ports. [`disconnect`] (once the container is
/// gone) or [`detach`] (while it runs) with the same tag removes it.
pub fn connect_endpoint(n: &Network, e: &Endpoint) -> Result<Attachment> {
    n.check()?;
    if e.tag.is_empty() || !e.tag.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Error::Network(format!("invalid network tag {:?}", e.tag)));
    }
    if n.internal && !e.ports.is_empty() {
        return Err(Error::Network(format!(
            "ports cannot be published on network {}: it is internal (no route out)",
            n.name
        )));
    }
    if n.parent.is_some() && !e.ports.is_empty() {
        return Err(Error::Network(format!(
            "ports cannot be published on the macvlan network {}: its containers have \
             addresses of their own on the parent's network",
            n.name
        )));
    }
    let host_if = match n.parent {
        None => Some(host_interface(&e.tag, &e.interface)?),
        Some(_) => None,
    };
    let netns = netns_inode(e.pid)
        .ok_or_else(|| Error::Network(format!("process {} has no network namespace", e.pid)))?;
    let _lock = Lock::take(&n.state_dir)?;
    fs::create_dir_all(n.lease_dir()).ctx(|| format!("create {}", n.lease_dir().display()))?;
    let mut rt = Rtnl::open().map_err(net_err("open a netlink socket"))?;
    let link = ensure_network(n, &mut rt)?;
    let mut lease = Lease {
        tag: e.tag.clone(),
        pid: e.pid,
        netns,
        complete: true,
        host_interface: host_if.clone(),
        address6: None,
        ports: vec![],
        names: e.names.clone(),
        dns: e.dns.clone(),
    };
    // The lease's key: the IPv4 address, or on an IPv6-only network the IPv6 one.
    let (address, key) = if n.ipv4 {
        let a = allocate(n, &lease, e.address, &mut rt)?;
        (Some(a), IpAddr::V4(a))
    } else {
        if let Some(a) = e.address {
            return Err(Error::Network(format!(
                "no configured subnet contains IP address {a}: network {} is IPv6-only",
                n.name
            )));
        }
        let a6 = allocate_only6(n, &lease, e.address6, &mut rt)?;
        lease.address6 = Some(a6);
        (None, IpAddr::V6(a6))
    };
    let lease_path = n.lease_dir().join(key.to_string());
    let v6 = match address {
        Some(a) => allocate6(n, &e.tag, a, e.address6),
        None => Ok(lease.address6),
    };
    let attached = v6.and_then(|address6| {
        if let (Some(_), Some(_)) = (address, address6) {
            lease.address6 = address6;
            lease.write(&lease_path)?;
        }
        plug(n, e, link, host_if.as_deref(), address, address6, &mut rt)?;
        let ports = publish(n, &e.tag, address, address6, &e.ports)?;
        lease.ports = ports.clone();
        if !ports.is_empty() {
            if let Err(err) = lease.write(&lease_path) {
                firewall::unpublish(&e.tag, address, address6, &ports);
                return Err(err);
            }
        }
        match (n.dns, &n.parent) {
            (true, None) => dns::ensure(n)?,
            (true, Some(_)) => dns::embedded::attach(n, &e.tag, e.pid, netns)?,
            (false, _) => {}
        }
        let m = e.mac.unwrap_or_else(|| endpoint_mac(address, address6));
        Ok(Attachment {
            address,
            address6,
            gateway: n.ipv4.then_some(n.gateway),
            prefix: n.prefix,
            mac: format!(
                "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                m[0], m[1], m[2], m[3], m[4], m[5]
            ),
            ports,
        })
    });
    if attached.is_err() {
        firewall::unpublish(&e.tag, address, lease.address6, &lease.ports);
        let _ = fs::remove_file(&lease_path);
        match &host_if {
            Some(h) => {
                let _ = rt.del_link(h);
            }
            None => {
                let _ = remove_inside(e.pid, &e.interface);
            }
        }
    }
    attached
}

/// [`connect_endpoint`] for the common case: `eth0` with the default route.
pub fn connect(n: &Network, tag: &str, pid: i32, ports: &[PortMapping]) -> Result<Attachment> {
    connect_endpoint(
        n,
        &Endpoint {
            tag: tag.into(),
            pid,
            interface: "eth0".into(),
            default_route: true,
            ports: ports.to_vec(),
            ..Endpoint::default()
        },
    )
}

/// The interface, its address and route, in the container's namespace.
fn plug(
    n: &Network,
    e: &Endpoint,
    link: u32,
    host_if: Option<&str>,
    address: Option<Ipv4Addr>,
    address6: Option<Ipv6Addr>,
    rt: &mut Rtnl,
) -> Result<()> {
    let ns = File::open(format!("/proc/{}/ns/net", e.pid))
        .ctx(|| format!("open the network namespace of {}", e.pid))?;
    let mac = e.mac.unwrap_or_else(|| endpoint_mac(address, address6));
    match host_if {
        Some(h) => {
            // A stale pair of the same name (its container gone, the host end kept by a
            // crash between these steps) is in the way; a living one is another container's.
            if rt.link_index(h).ok().flatten().is_some() {
                let owner = all_leases(&n.state_dir).into_iter().find(|(_, _, l)| {
                    l.alive() && l.tag != e.tag && l.host_interface.as_deref() == Some(h)
                });
                if let Some((_, _, l)) = owner {
                    return Err(Error::Network(format!(
                        "the interface {h} belongs to {}: tags must differ in their first 11 \
                         characters",
                        l.tag
                    )));
                }
                let _ = rt.del_link(h);
            }
            // A pair of this name whose namespace the kernel is tearing down keeps its name
            // for a moment: wait for it (bounded).
            let mut tries = 0;
            loop {
                match rt.add_veth(h, link, &e.interface, &ns, mac) {
                    Err(err) if err.raw_os_error() == Some(libc::EEXIST) && tries < 100 => {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(10));
                        let _ = rt.del_link(h);
                    }
                    other => break other,
                }
            }
            .map_err(net_err("create a veth pair on the bridge"))?;
            let index = rt
                .link_index(h)
                .map_err(net_err("look up the veth pair"))?
                .ok_or_else(|| Error::Network(format!("the veth {h} vanished")))?;
            rt.set_hairpin(index)
                .map_err(net_err("set hairpin mode on the bridge port"))?;
        }
        None => rt
            .add_macvlan(link, &e.interface, &ns, mac)
            .map_err(net_err("create a macvlan link"))?,
    }
    let mut inside = Rtnl::open_in(&ns).map_err(net_err("enter the container's network"))?;
    let index = inside
        .link_index(&e.interface)
        .map_err(net_err("look up the container's interface"))?
        .ok_or_else(|| Error::Network(format!("{} vanished in the container", e.interface)))?;
    if let Some(address) = address {
        inside
            .add_address(index, address, n.prefix)
            .map_err(net_err("give the container its address"))?;
    }
    inside
        .set_up(index)
        .map_err(net_err("bring the container's interface up"))?;
    if e.default_route && !n.internal && address.is_some() {
        inside
            .add_default_route(n.gateway)
            .map_err(net_err("add the container's default route"))?;
    }
    if let (Some(a6), Some((gw6, p6))) = (address6, n.ipv6) {
        inside
            .add_address6(index, a6, p6)
            .map_err(net_err("give the container its IPv6 address"))?;
        if e.default_route && !n.internal {
            inside
                .add_default_route6(gw6)
                .map_err(net_err("add the container's IPv6 default route"))?;
        }
    }
    Ok(())
}

/// Deletes a container's interface from inside its namespace (macvlan links have no host
/// end to delete).
fn remove_inside(pid: i32, interface: &str) -> Result<()> {
    let ns = File::open(format!("/proc/{pid}/ns/net"))
        .ctx(|| format!("open the network namespace of {pid}"))?;
    let mut inside = Rtnl::open_in(&ns).map_err(net_err("enter the container's network"))?;
    inside
        .del_link(interface)
        .map_err(net_err("remove the container's interface"))
}

/// The leases of `tag` on network `n`: (path, address, lease).
fn leases_of(n: &Network, tag: &str) -> Vec<(PathBuf, IpAddr, Lease)> {
    leases_in(&n.lease_dir())
        .into_iter()
        .filter(|(_, l)| l.tag == tag)
        .map(|(a, l)| (n.lease_dir().join(a.to_string()), a, l))
        .collect()
}

/// Removes what [`connect`] left on the host for `tag`: its published ports, its address's
/// lease and its veth pair (gone already when the container's namespace is). Nothing is
/// removed while the namespace holding the lease lives: a container that was started again
/// meanwhile keeps its network.
pub fn disconnect(n: &Network, tag: &str) -> Result<()> {
    if !n.lease_dir().exists() {
        return Ok(());
    }
    let _lock = Lock::take(&n.state_dir)?;
    let leases = leases_of(n, tag);
    if leases.is_empty() || leases.iter().any(|(_, _, l)| l.alive()) {
        return Ok(());
    }
    let mut rt = Rtnl::open().ok();
    for (path, addr, l) in &leases {
        clear_stale(n, path, *addr, l, rt.as_mut());
    }
    if n.dns {
        dns::stop_if_idle(n);
    }
    Ok(())
}

/// Takes a running container off the network now (docker's `network disconnect`): its
/// interface, published ports and lease.
pub fn detach(n: &Network, tag: &str, interface: &str) -> Result<()> {
    let _lock = Lock::take(&n.state_dir)?;
    let mut rt = Rtnl::open().map_err(net_err("open a netlink socket"))?;
    for (path, addr, l) in leases_of(n, tag) {
        if l.alive() && n.parent.is_some() {
            remove_inside(l.pid, interface)?;
        }
        clear_stale(n, &path, addr, &l, Some(&mut rt));
    }
    if n.dns {
        dns::stop_if_idle(n);
    }
    Ok(())
}

/// Changes the names the resolver answers for `tag` on network `n` (a rename).
pub fn set_names(n: &Network, tag: &str, names: &[String]) -> Result<()> {
    let _lock = Lock::take(&n.state_dir)?;
    for (path, _, l) in leases_of(n, tag) {
        Lease {
            names: names.to_vec(),
            ..l
        }
        .write(&path)?;
    }
    Ok(())
}

/// Whether a container still holds an address on network `n`.
pub fn in_use(n: &Network) -> bool {
    leases_in(&n.lease_dir()).iter().any(|(_, l)| l.alive())
}

/// Removes a network's host side: its bridge, rules, resolver, stamp and leases. Refused
/// while a container holds an address on it.
pub fn remove(n: &Network) -> Result<()> {
    let _lock = Lock::take(&n.state_dir)?;
    let mut rt = Rtnl::open().map_err(net_err("open a netlink socket"))?;
    let leases = leases_in(&n.lease_dir());
    if let Some((_, l)) = leases.iter().find(|(_, l)| l.alive()) {
        return Err(Error::Network(format!(
            "network {} has active endpoints (container {})",
            n.name, l.tag
        )));
    }
    for (addr, l) in &leases {
        clear_stale(
            n,
            &n.lease_dir().join(addr.to_string()),
            *addr,
            l,
            Some(&mut rt),
        );
    }
    dns::stop(n);
    let stamp = n.stamp_path();
    if n.parent.is_none() {
        // Only a bridge that berth set up (it has a stamp) is berth's to take down.
        if stamp.exists() || rt.link_index(&n.name).ok().flatten().is_some() {
            firewall::teardown(n)?;
            rt.del_link(&n.name)
                .map_err(net_err(&format!("remove bridge {}", n.name)))?;
        }
    }
    let _ = fs::remove_file(&stamp);
    let _ = fs::remove_dir_all(n.lease_dir());
    Ok(())
}

/// Whether the host has an interface named `name` (a macvlan network's parent).
pub fn interface_exists(name: &str) -> Result<bool> {
    let mut rt = Rtnl::open().map_err(net_err("open a netlink socket"))?;
    Ok(rt
        .link_index(name)
        .map_err(net_err("look up an interface"))?
        .is_some())
}

/// The IPv4 subnets the host seems to use, which a network whose subnet is picked for it
/// keeps off (docker's `InferReservedNetworks`): the on-link routes (the subnets of its
/// interfaces, not those reached through a gateway) and the name servers of
/// /etc/resolv.conf: (address, prefix length).
pub fn reserved_subnets() -> Result<Vec<(Ipv4Addr, u8)>> {
    let mut rt = Rtnl::open().map_err(net_err("open a netlink socket"))?;
    let mut v: Vec<(Ipv4Addr, u8)> = rt
        .link_routes()
        .map_err(net_err("list the host's routes"))?
        .into_iter()
        .map(|(d, p, _)| (d, p))
        .collect();
    v.extend(dns::upstreams().into_iter().filter_map(|a| match a {
        std::net::IpAddr::V4(a) => Some((a, 32)),
        std::net::IpAddr::V6(_) => None,
    }));
    Ok(v)
}

/// The IPv6 subnets the host routes to (its interfaces' and the routes it was given), which
/// a network whose IPv6 subnet is picked for it keeps off, as docker's `InferReservedNetworks`
/// does for IPv6.
pub fn reserved_subnets6() -> Result<Vec<(Ipv6Addr, u8)>> {
    let mut rt = Rtnl::open().map_err(net_err("open a netlink socket"))?;
    let mut v = rt
        .routes6()
        .map_err(net_err("list the host's IPv6 routes"))?;
    v.extend(dns::upstreams().into_iter().filter_map(|a| match a {
        std::net::IpAddr::V6(a) => Some((a, 128)),
        std::net::IpAddr::V4(_) => None,
    }));
    Ok(v)
}

/// A bridge network of any berth root that is set up on this host (its stamp names its
/// bridge, which exists): its name, IPv4 subnet (none on an IPv6-only network) and IPv6
/// subnet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostNetwork {
    pub name: String,
    pub subnet: Option<(Ipv4Addr, u8)>,
    pub subnet6: Option<(Ipv6Addr, u8)>,
}

/// Holds a network's subnets host-wide from its `network create` to its `rm`, set up or not,
/// so that another berth root on this host (another store, the same kernel) keeps off them:
/// a file per network under `<state_dir>/claims/` naming the record it stands for (a claim
/// whose record is gone is stale and ignored).
pub fn claim(
    state_dir: &Path,
    id: &str,
    subnet: Option<(Ipv4Addr, u8)>,
    subnet6: Option<(Ipv6Addr, u8)>,
    record: &Path,
) -> Result<()> {
    let dir = state_dir.join("claims");
    fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
    let v4 = subnet.map_or("-".to_string(), |(a, p)| format!("{a}/{p}"));
    let v6 = subnet6.map_or("-".to_string(), |(a, p)| format!("{a}/{p}"));
    let text = format!("{v4} {v6} {}\n", record.display());
    let (tmp, path) = (dir.join(format!(".{id}.tmp")), dir.join(id));
    fs::write(&tmp, text).ctx(|| format!("write {}", tmp.display()))?;
    fs::rename(&tmp, &path).ctx(|| format!("write {}", path.display()))
}

/// Whether the network `id` holds its subnets host-wide (see [`claim`]).
pub fn claimed(state_dir: &Path, id: &str) -> bool {
    state_dir.join("claims").join(id).exists()
}

/// Lets go of a network's subnets (see [`claim`]).
pub fn unclaim(state_dir: &Path, id: &str) {
    let _ = fs::remove_file(state_dir.join("claims").join(id));
}

/// The subnets the networks of every berth root on this host hold (see [`claim`]); the
/// name is the network's id.
pub fn claims(state_dir: &Path) -> Vec<HostNetwork> {
    let mut v = vec![];
    for e in fs::read_dir(state_dir.join("claims"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let Some(id) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if id.starts_with('.') {
            continue;
        }
        let Ok(text) = fs::read_to_string(e.path()) else {
            continue;
        };
        if let Some(n) = parse_claim(&id, &text) {
            if Path::new(&text.trim_end().splitn(3, ' ').nth(2).unwrap_or_default()).exists() {
                v.push(n);
            }
        }
    }
    v
}

fn parse_claim(id: &str, text: &str) -> Option<HostNetwork> {
    let mut w = text.trim_end().splitn(3, ' ');
    let subnet = match w.next()? {
        "-" => None,
        s => {
            let (a, p) = s.split_once('/')?;
            Some((a.parse().ok()?, p.parse().ok()?))
        }
    };
    let subnet6 = match w.next()? {
        "-" => None,
        s => {
            let (a, p) = s.split_once('/')?;
            Some((a.parse().ok()?, p.parse().ok()?))
        }
    };
    Some(HostNetwork {
        name: id.to_string(),
        subnet,
        subnet6,
    })
}

/// The bridge networks set up on this host under `state_dir` (every berth root's: the
/// state is host-wide), so a new network does not take a subnet one of them has.
pub fn host_networks(state_dir: &Path) -> Vec<HostNetwork> {
    let mut v = vec![];
    for e in fs::read_dir(state_dir).into_iter().flatten().flatten() {
        let file = e.file_name();
        let Some(name) = file.to_str().and_then(|f| f.strip_suffix(".net")) else {
            continue;
        };
        let Ok(text) = fs::read_to_string(e.path()) else {
            continue;
        };
        if let Some(n) = parse_stamp(name, &text) {
            v.push(n);
        }
    }
    v
}

/// A stamp's network, if its bridge exists with the index the stamp recorded.
fn parse_stamp(name: &str, text: &str) -> Option<HostNetwork> {
    let mut w = text.split_whitespace();
    let index = w.next()?;
    let up = fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
        .is_ok_and(|i| i.trim() == index);
    if !up {
        return None;
    }
    let _version = w.next()?;
    let subnet = match w.next()? {
        "-" => None,
        s => {
            let (gw, prefix) = s.split_once('/')?;
            let (gw, prefix): (Ipv4Addr, u8) = (gw.parse().ok()?, prefix.parse().ok()?);
            Some((Ipv4Addr::from(u32::from(gw) & mask_of(prefix)), prefix))
        }
    };
    let subnet6 = w.filter_map(|x| x.strip_prefix("ipv6=")).find_map(|x| {
        let (g, p) = x.split_once('/')?;
        let (g, p): (Ipv6Addr, u8) = (g.parse().ok()?, p.parse().ok()?);
        Some((Ipv6Addr::from(u128::from(g) & mask6(p)), p))
    });
    Some(HostNetwork {
        name: name.to_string(),
        subnet,
        subnet6,
    })
}

/// Whether `a/pa` and `b/pb` share an address.
pub fn overlaps6(a: Ipv6Addr, pa: u8, b: Ipv6Addr, pb: u8) -> bool {
    let m = mask6(pa.min(pb));
    u128::from(a) & m == u128::from(b) & m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_read_old_and_new() {
        let old = Lease::parse("abc 12 345\n").unwrap();
        assert!(!old.complete && old.ports.is_empty());
        let l = Lease {
            tag: "abc".into(),
            pid: 12,
            netns: 345,
            complete: true,
            host_interface: Some("bvabc".into()),
            address6: Some("fd00:1::5".parse().unwrap()),
            ports: vec![PortMapping {
                host_ip: Some(Ipv4Addr::LOCALHOST.into()),
                host_port: 8080,
                container_port: 80,
                protocol: Protocol::Tcp,
            }],
            names: vec!["web".into(), "abc".into()],
            dns: vec![
                Ipv4Addr::new(10, 0, 0, 2).into(),
                "fd00::53".parse().unwrap(),
            ],
        };
        let back = Lease::parse(&l.render()).unwrap();
        assert_eq!(back.render(), l.render());
        assert_eq!(back.address6, l.address6);
        assert_eq!(back.dns, l.dns);
        assert!(back.complete);
        // The first line is what older berths read.
        assert_eq!(l.render().lines().next(), Some("abc 12 345"));
    }

    #[test]
    fn pools_and_subnets() {
        let n = Network {
            gateway: Ipv4Addr::new(10, 90, 3, 1),
            prefix: 24,
            range: Some((Ipv4Addr::new(10, 90, 3, 128), 25)),
            ..Network::default()
        };
        assert_eq!(n.subnet(), "10.90.3.0/24");
        assert_eq!(n.address_problem(), None);
        let pool: Vec<u32> = n.pool().collect();
        assert_eq!(Ipv4Addr::from(pool[0]), Ipv4Addr::new(10, 90, 3, 128));
        assert_eq!(
            Ipv4Addr::from(*pool.last().unwrap()),
            Ipv4Addr::new(10, 90, 3, 255)
        );
        assert!(!n.holds(Ipv4Addr::new(10, 90, 3, 255)));
        assert!(!n.holds(Ipv4Addr::new(10, 90, 3, 1)));
        assert!(n.holds(Ipv4Addr::new(10, 90, 3, 2)));
        let out = Network {
            range: Some((Ipv4Addr::new(10, 91, 0, 0), 25)),
            ..n.clone()
        };
        assert!(out.address_problem().is_some());
        assert!(overlaps(
            Ipv4Addr::new(10, 0, 0, 0),
            8,
            Ipv4Addr::new(10, 90, 3, 0),
            24
        ));
        assert!(!overlaps(
            Ipv4Addr::new(10, 91, 0, 0),
            16,
            Ipv4Addr::new(10, 90, 3, 0),
            24
        ));
    }

    #[test]
    fn claims_are_read_back() {
        let n = parse_claim("abc", "10.92.3.0/24 fd00:1::/64 /x/y z.json\n").unwrap();
        assert_eq!(n.subnet, Some((Ipv4Addr::new(10, 92, 3, 0), 24)));
        assert_eq!(n.subnet6, Some(("fd00:1::".parse().unwrap(), 64)));
        let n = parse_claim("abc", "10.92.3.0/24 - /x/y.json\n").unwrap();
        assert_eq!(n.subnet6, None);
        let n = parse_claim("abc", "- fd00:1::/64 /x/y.json\n").unwrap();
        assert_eq!(n.subnet, None, "IPv6-only");
        assert!(parse_claim("abc", "garbage").is_none());
    }

    #[test]
    fn ipv6_subnets_and_addresses() {
        let n = Network {
            gateway: Ipv4Addr::new(10, 90, 3, 1),
            prefix: 24,
            ipv6: Some(("fd00:1::1".parse().unwrap(), 64)),
            ..Network::default()
        };
        assert_eq!(n.subnet6().as_deref(), Some("fd00:1::/64"));
        assert_eq!(
            n.address6(Ipv4Addr::new(10, 90, 3, 7)),
            Some("fd00:1::7".parse().unwrap())
        );
        assert!(n.holds6("fd00:1::7".parse().unwrap()));
        assert!(!n.holds6("fd00:1::1".parse().unwrap()), "the gateway");
        assert!(!n.holds6("fd00:1::".parse().unwrap()), "the subnet's own");
        assert!(!n.holds6("fd00:2::7".parse().unwrap()));
        assert!(!Network::default().holds6("fd00:1::7".parse().unwrap()));
    }

    #[test]
    fn stamps_name_set_up_networks() {
        // `lo` is interface 1 in every namespace.
        let n = parse_stamp(
            "lo",
            "1 2 10.90.3.1/24 internal=false dns=true ipv6=fd00:1::1/64\n",
        )
        .unwrap();
        assert_eq!(n.subnet, Some((Ipv4Addr::new(10, 90, 3, 0), 24)));
        assert_eq!(n.subnet6, Some(("fd00:1::".parse().unwrap(), 64)));
        let only6 = parse_stamp("lo", "1 2 - internal=false dns=true ipv6=fd00:1::1/64\n").unwrap();
        assert_eq!(only6.subnet, None);
        let v4 = parse_stamp("lo", "1 2 10.90.3.1/24 internal=false dns=true\n").unwrap();
        assert_eq!(v4.subnet6, None);
        assert!(
            parse_stamp("lo", "7 2 10.90.3.1/24\n").is_none(),
            "another index"
        );
        assert!(parse_stamp("no-such-bridge", "1 2 10.90.3.1/24\n").is_none());
        assert!(overlaps6(
            "fd00:1::".parse().unwrap(),
            64,
            "fd00:1::80:0".parse().unwrap(),
            112
        ));
        assert!(!overlaps6(
            "fd00:1::".parse().unwrap(),
            64,
            "fd00:2::".parse().unwrap(),
            64
        ));
    }

    #[test]
    fn host_interface_names() {
        let tag = "0123456789abcdef";
        assert_eq!(host_interface(tag, "eth0").unwrap(), "bv0123456789a");
        assert_eq!(host_interface(tag, "eth3").unwrap(), "b30123456789a");
        assert!(host_interface(tag, "eth10").is_err());
        assert!(host_interface(tag, "wlan0").is_err());
    }
}
