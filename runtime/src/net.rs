//! Bridge networking: a host bridge with a gateway address, one veth pair per container, an
//! address from the bridge's subnet, NAT to the outside and published ports.
//!
//! The container's network namespace is the one the runtime made for it (no path in the
//! Spec): [`connect`] runs between `create` and `start`, while the init waits, and plugs a
//! veth pair into it by the init's pid. The pair and everything inside the namespace die with
//! the namespace, so a container that exits (or whose monitor is killed) leaves no interface
//! behind. What outlives it is host-wide and cleaned by tag:
//!
//! - a *lease* per address: a file under [`Bridge::lease_dir`] naming the tag, the init's pid
//!   and the inode of its network namespace. A lease whose namespace is gone is stale and is
//!   taken over by the next container (which removes the stale owner's port rules first);
//! - iptables rules in the nat table's `BERTH` chain, each with the comment `berth:<tag>`.
//!
//! All of it is done under one host-wide flock (`Bridge::state_dir`/lock), so containers of
//! different berth roots, processes and bridges never get the same address or port, and no
//! bridge takes another's port rules for stale.
//! The host plumbing is done with iproute2's `ip` and `iptables` (nf_tables or legacy), as
//! run by root.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Context, Error, Result};

/// The iptables chain (nat table) holding the published ports.
const CHAIN: &str = "BERTH";

/// A host bridge and its subnet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bridge {
    /// The interface's name (at most 15 bytes).
    pub name: String,
    /// The gateway: the bridge's own address, the containers' default route.
    pub gateway: Ipv4Addr,
    /// The subnet's prefix length (8 to 30).
    pub prefix: u8,
    /// Where the host-wide state lives: the lock, and each bridge's leases in a directory
    /// of its name (on a tmpfs, as they die at reboot). All bridges share it, as they share
    /// the published-port rules.
    pub state_dir: PathBuf,
}

impl Default for Bridge {
    /// berth's default bridge: `berth0`, 10.89.0.1/16, state in /run/berth/net.
    fn default() -> Self {
        Bridge {
            name: "berth0".into(),
            gateway: Ipv4Addr::new(10, 89, 0, 1),
            prefix: 16,
            state_dir: PathBuf::from("/run/berth/net"),
        }
    }
}

impl Bridge {
    /// This bridge's address leases.
    pub fn lease_dir(&self) -> PathBuf {
        self.state_dir.join(&self.name)
    }

    fn mask(&self) -> u32 {
        u32::MAX << (32 - u32::from(self.prefix))
    }

    /// The subnet in CIDR form (`10.89.0.0/16`).
    pub fn subnet(&self) -> String {
        let net = Ipv4Addr::from(u32::from(self.gateway) & self.mask());
        format!("{net}/{}", self.prefix)
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

    /// What is wrong with the gateway and prefix, if anything: a prefix from /8 to /30 and
    /// a gateway that is neither the subnet's network nor its broadcast address.
    pub fn address_problem(&self) -> Option<String> {
        let cidr = format!("{}/{}", self.gateway, self.prefix);
        if !(8..=30).contains(&self.prefix) {
            return Some(format!(
                "{cidr}: the prefix length must be from 8 to 30, such as 10.89.0.1/16"
            ));
        }
        let host = u32::from(self.gateway) & !self.mask();
        (host == 0 || host == !self.mask()).then(|| {
            format!(
                "{cidr} is the subnet's network or broadcast address; give the gateway's, \
                 such as the .1"
            )
        })
    }

    fn check(&self) -> Result<()> {
        match (self.name_problem(), self.address_problem()) {
            (Some(p), _) => Err(Error::Network(format!("bridge name {p}"))),
            (None, Some(p)) => Err(Error::Network(format!("bridge address {p}"))),
            (None, None) => Ok(()),
        }
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
}

/// A port of the container published on the host (`-p`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortMapping {
    /// The host address it answers on; `None` for all of the host's addresses.
    pub host_ip: Option<Ipv4Addr>,
    /// The host port; 0 picks a free one (docker's `-p 80`).
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

/// What [`connect`] gave the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub address: Ipv4Addr,
    pub gateway: Ipv4Addr,
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
    fn take(bridge: &Bridge) -> Result<Lock> {
        let leases = bridge.lease_dir();
        fs::create_dir_all(&leases).ctx(|| format!("create {}", leases.display()))?;
        let path = bridge.state_dir.join("lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .ctx(|| format!("open {}", path.display()))?;
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(Error::io(
                format!("lock {}", path.display()),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(Lock { _file: f })
    }
}

/// One line of a lease file: `tag pid netns-inode`.
struct Lease {
    tag: String,
    pid: i32,
    netns: u64,
}

impl Lease {
    fn read(path: &Path) -> Option<Lease> {
        let s = fs::read_to_string(path).ok()?;
        let mut it = s.split_whitespace();
        Some(Lease {
            tag: it.next()?.to_string(),
            pid: it.next()?.parse().ok()?,
            netns: it.next()?.parse().ok()?,
        })
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

fn run(what: &str, cmd: &mut Command, input: Option<&str>) -> Result<String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Network(format!(
                "{what}: `{program}` is not installed (bridge networks need iproute2 and \
                 iptables; without them, use --network none or --network host)"
            ))
        } else {
            Error::io(format!("{what}: run {program}"), e)
        }
    })?;
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("piped");
        stdin
            .write_all(input.as_bytes())
            .ctx(|| format!("{what}: write to {program}"))?;
    }
    let out = child
        .wait_with_output()
        .ctx(|| format!("{what}: wait for {program}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Network(format!("{what}: {}", err.trim())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(what: &str, args: &[&str]) -> Result<String> {
    run(what, Command::new("ip").args(args), None)
}

fn iptables(what: &str, args: &[&str]) -> Result<String> {
    run(what, Command::new("iptables").arg("-w").args(args), None)
}

/// Adds an iptables rule unless `listing` (what `iptables -S` printed for the table) or a
/// `-C` check shows it there already.
fn ensure_rule(
    listing: &str,
    table: &str,
    position: &str,
    chain: &str,
    rule: &[&str],
) -> Result<()> {
    let line = format!("-A {chain} {}", rule.join(" "));
    if listing.lines().any(|l| l == line) {
        return Ok(());
    }
    let mut check = vec!["-t", table, "-C", chain];
    check.extend_from_slice(rule);
    if iptables("check a rule", &check).is_ok() {
        return Ok(());
    }
    let mut add = vec!["-t", table, position, chain];
    add.extend_from_slice(rule);
    iptables(&format!("add a rule to {table}/{chain}"), &add)?;
    Ok(())
}

/// Writes a sysctl unless it holds `value` already.
fn set_sysctl(path: &str, value: &str) -> Result<()> {
    if fs::read_to_string(path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    fs::write(path, value).ctx(|| format!("write {path}"))
}

/// Creates the bridge, its address, forwarding and the NAT rules, if missing.
fn ensure_bridge(b: &Bridge) -> Result<()> {
    let exists = Path::new("/sys/class/net").join(&b.name).exists();
    if !exists {
        ip(
            &format!("create bridge {}", b.name),
            &["link", "add", &b.name, "type", "bridge"],
        )?;
    }
    let cidr = format!("{}/{}", b.gateway, b.prefix);
    let addrs = ip(
        "read the bridge's addresses",
        &["-o", "-4", "addr", "show", "dev", &b.name],
    )?;
    if !addrs.split_whitespace().any(|w| w == cidr) {
        ip(
            &format!("give bridge {} the address {cidr}", b.name),
            &["addr", "add", &cidr, "dev", &b.name],
        )?;
    }
    let flags = fs::read_to_string(format!("/sys/class/net/{}/flags", b.name)).unwrap_or_default();
    let up = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16)
        .is_ok_and(|f| f & libc::IFF_UP as u32 != 0);
    if !up {
        ip("bring the bridge up", &["link", "set", &b.name, "up"])?;
    }
    set_sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
    // Published ports answer on 127.0.0.1 too: DNAT'd loopback packets must be routable
    // out of the bridge, and get the bridge's address as their source (below).
    set_sysctl(
        &format!("/proc/sys/net/ipv4/conf/{}/route_localnet", b.name),
        "1",
    )?;
    let subnet = b.subnet();
    let nat = iptables("read the nat table", &["-t", "nat", "-S"])?;
    if !nat.lines().any(|l| l == format!("-N {CHAIN}")) {
        // Another process may create it between the look and the creation.
        let _ = iptables("create the BERTH chain", &["-t", "nat", "-N", CHAIN]);
    }
    let local = ["-m", "addrtype", "--dst-type", "LOCAL", "-j", CHAIN];
    ensure_rule(&nat, "nat", "-A", "PREROUTING", &local)?;
    ensure_rule(&nat, "nat", "-A", "OUTPUT", &local)?;
    ensure_rule(
        &nat,
        "nat",
        "-A",
        "POSTROUTING",
        &["-s", &subnet, "!", "-o", &b.name, "-j", "MASQUERADE"],
    )?;
    ensure_rule(
        &nat,
        "nat",
        "-A",
        "POSTROUTING",
        &["-s", "127.0.0.0/8", "-o", &b.name, "-j", "MASQUERADE"],
    )?;
    let forward = iptables("read the FORWARD chain", &["-S", "FORWARD"])?;
    ensure_rule(
        &forward,
        "filter",
        "-I",
        "FORWARD",
        &["-i", &b.name, "-j", "ACCEPT"],
    )?;
    ensure_rule(
        &forward,
        "filter",
        "-I",
        "FORWARD",
        &["-o", &b.name, "-j", "ACCEPT"],
    )?;
    Ok(())
}

fn comment(tag: &str) -> String {
    format!("berth:{tag}")
}

/// The BERTH chain's DNAT rules: (rule as `-S` prints it, tag, protocol, host port).
fn port_rules() -> Vec<(String, String, String, u16)> {
    let Ok(out) = iptables("list the published ports", &["-t", "nat", "-S", CHAIN]) else {
        return vec![];
    };
    out.lines()
        .filter(|l| l.starts_with(&format!("-A {CHAIN} ")))
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let after = |k: &str| {
                words
                    .iter()
                    .position(|w| *w == k)
                    .and_then(|i| words.get(i + 1))
                    .map(|w| w.trim_matches('"').to_string())
            };
            let tag = after("--comment")?.strip_prefix("berth:")?.to_string();
            Some((
                l.to_string(),
                tag,
                after("-p")?,
                after("--dport")?.parse().ok()?,
            ))
        })
        .collect()
}

/// Deletes one rule of the BERTH chain, given as `-S` printed it.
fn delete_rule(rule: &str) {
    // `-S` prints the rule as `-A CHAIN …`; the same words after `-D` delete it. The comment
    // is quoted by -S only when it has spaces; ours has none.
    let words = rule.split_whitespace().skip(1).map(|w| w.trim_matches('"'));
    let mut cmd = Command::new("iptables");
    cmd.args(["-w", "-t", "nat", "-D"]).args(words);
    let _ = run("remove a published port", &mut cmd, None);
}

fn remove_rules_of(tag: &str) {
    for (rule, t, _, _) in port_rules() {
        if t == tag {
            delete_rule(&rule);
        }
    }
}

/// The tags whose lease, on any bridge, is held by a living namespace.
fn live_tags(b: &Bridge) -> std::collections::HashSet<String> {
    fs::read_dir(&b.state_dir)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|d| fs::read_dir(d.path()).into_iter().flatten().flatten())
        .filter_map(|e| Lease::read(&e.path()))
        .filter(Lease::alive)
        .map(|l| l.tag)
        .collect()
}

/// Takes a free address: the first with no lease, or with a stale one (whose owner's port
/// rules are removed first).
fn allocate(b: &Bridge, tag: &str, pid: i32, netns: u64) -> Result<Ipv4Addr> {
    let mask = b.mask();
    let net = u32::from(b.gateway) & mask;
    let broadcast = net | !mask;
    for a in net + 1..broadcast {
        if a == u32::from(b.gateway) {
            continue;
        }
        let addr = Ipv4Addr::from(a);
        let path = b.lease_dir().join(addr.to_string());
        match Lease::read(&path) {
            Some(l) if l.alive() && l.tag != tag => continue,
            Some(l) => remove_rules_of(&l.tag),
            None => {}
        }
        let tmp = b.lease_dir().join(format!(".{addr}.tmp"));
        fs::write(&tmp, format!("{tag} {pid} {netns}\n"))
            .ctx(|| format!("write {}", tmp.display()))?;
        fs::rename(&tmp, &path).ctx(|| format!("write {}", path.display()))?;
        return Ok(addr);
    }
    Err(Error::Network(format!(
        "no free address left in {} on bridge {}",
        b.subnet(),
        b.name
    )))
}

fn free_port(protocol: Protocol, host_ip: Ipv4Addr) -> Result<u16> {
    let addr = SocketAddrV4::new(host_ip, 0);
    let port = match protocol {
        Protocol::Tcp => TcpListener::bind(addr).and_then(|l| l.local_addr()),
        Protocol::Udp => UdpSocket::bind(addr).and_then(|s| s.local_addr()),
    }
    .ctx(|| "pick a free host port".into())?
    .port();
    Ok(port)
}

/// Fails when a host process listens on the port (a published port would hide it).
fn port_unused(m: &PortMapping, host_ip: Ipv4Addr) -> Result<()> {
    let addr = SocketAddrV4::new(host_ip, m.host_port);
    let bound = match m.protocol {
        Protocol::Tcp => TcpListener::bind(addr).map(drop),
        Protocol::Udp => UdpSocket::bind(addr).map(drop),
    };
    bound.map_err(|e| {
        Error::Network(format!(
            "publish {addr}/{}: {}",
            m.protocol.as_str(),
            if e.kind() == std::io::ErrorKind::AddrInUse {
                "address already in use".to_string()
            } else {
                e.to_string()
            }
        ))
    })
}

fn publish(
    b: &Bridge,
    tag: &str,
    address: Ipv4Addr,
    ports: &[PortMapping],
) -> Result<Vec<PortMapping>> {
    // Every bridge's leases count: the rules of all of them share the chain.
    let live = live_tags(b);
    let mut taken: Vec<(String, u16)> = vec![];
    for (rule, t, proto, port) in port_rules() {
        if live.contains(&t) {
            taken.push((proto, port));
        } else {
            delete_rule(&rule);
        }
    }
    let mut done = vec![];
    for m in ports {
        let host_ip = m.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let mut m = m.clone();
        if m.host_port == 0 {
            m.host_port = loop {
                let p = free_port(m.protocol, host_ip)?;
                if !taken.contains(&(m.protocol.as_str().to_string(), p)) {
                    break p;
                }
            };
        } else if taken.contains(&(m.protocol.as_str().to_string(), m.host_port)) {
            return Err(Error::Network(format!(
                "Bind for {host_ip}:{} failed: port is already allocated",
                m.host_port
            )));
        } else {
            port_unused(&m, host_ip)?;
        }
        let dport = m.host_port.to_string();
        let to = format!("{address}:{}", m.container_port);
        let tag_comment = comment(tag);
        let mut rule = vec!["-t", "nat", "-A", CHAIN];
        let dest = m.host_ip.map(|a| a.to_string());
        if let Some(d) = &dest {
            rule.extend(["-d", d.as_str()]);
        }
        rule.extend([
            "-p",
            m.protocol.as_str(),
            "-m",
            m.protocol.as_str(),
            "--dport",
            &dport,
            "-m",
            "comment",
            "--comment",
            &tag_comment,
            "-j",
            "DNAT",
            "--to-destination",
            &to,
        ]);
        iptables(&format!("publish port {}", m.host_port), &rule)?;
        taken.push((m.protocol.as_str().to_string(), m.host_port));
        done.push(m);
    }
    Ok(done)
}

/// The host side's name for a tag: `bv` and the tag's first 11 characters.
fn host_interface(tag: &str) -> String {
    let short: String = tag.chars().take(11).collect();
    format!("bv{short}")
}

/// Plugs the network namespace of process `pid` (a created container's init) into the
/// bridge: a veth pair whose inside end is `eth0` with an address of the subnet and a default
/// route through the gateway, and the published `ports`. `tag` names what this leaves on the
/// host (the container's id); [`disconnect`] with the same tag removes it.
pub fn connect(b: &Bridge, tag: &str, pid: i32, ports: &[PortMapping]) -> Result<Attachment> {
    b.check()?;
    if tag.is_empty() || !tag.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Error::Network(format!("invalid network tag {tag:?}")));
    }
    let netns = netns_inode(pid)
        .ok_or_else(|| Error::Network(format!("process {pid} has no network namespace")))?;
    let _lock = Lock::take(b)?;
    ensure_bridge(b)?;
    let address = allocate(b, tag, pid, netns)?;
    let host_if = host_interface(tag);
    let attached = plug(b, pid, &host_if, address).and_then(|mac| {
        let ports = publish(b, tag, address, ports)?;
        Ok(Attachment {
            address,
            gateway: b.gateway,
            prefix: b.prefix,
            mac,
            ports,
        })
    });
    if attached.is_err() {
        remove_rules_of(tag);
        let _ = fs::remove_file(b.lease_dir().join(address.to_string()));
        let _ = ip("remove the veth pair", &["link", "del", &host_if]);
    }
    attached
}

/// The veth pair and the inside end's address and route; returns eth0's MAC address.
fn plug(b: &Bridge, pid: i32, host_if: &str, address: Ipv4Addr) -> Result<String> {
    // A stale pair of the same name (its container gone, the host end kept by a crash
    // between these steps) is in the way.
    if Path::new("/sys/class/net").join(host_if).exists() {
        let _ = ip("remove a stale veth", &["link", "del", host_if]);
    }
    let pid_s = pid.to_string();
    let host_side = format!(
        "link add {host_if} type veth peer name eth0 netns {pid_s}\n\
         link set {host_if} master {} up\n",
        b.name
    );
    run(
        "create a veth pair on the bridge",
        Command::new("ip").args(["-batch", "-"]),
        Some(&host_side),
    )?;
    let ns = File::open(format!("/proc/{pid}/ns/net"))
        .ctx(|| format!("open the network namespace of {pid}"))?;
    let fd = ns.as_raw_fd();
    // docker's rule: the MAC address is 02:42 then the IPv4 address, so it is known here.
    let o = address.octets();
    let mac = format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3]);
    let script = format!(
        "link set eth0 address {mac}\naddr add {address}/{} dev eth0\nlink set eth0 up\n\
         route add default via {}\n",
        b.prefix, b.gateway
    );
    let mut cmd = Command::new("ip");
    cmd.args(["-batch", "-"]);
    // SAFETY: setns is async-signal-safe; the child only enters the namespace, then execs.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    run("configure eth0 in the container", &mut cmd, Some(&script))?;
    drop(ns);
    Ok(mac)
}

/// Removes what [`connect`] left on the host for `tag`: its published ports, its address's
/// lease and its veth pair (gone already when the container's namespace is). Nothing is
/// removed while the namespace holding the lease lives: a container that was started again
/// meanwhile keeps its network.
pub fn disconnect(b: &Bridge, tag: &str) -> Result<()> {
    if !b.lease_dir().exists() {
        return Ok(());
    }
    let _lock = Lock::take(b)?;
    let leases: Vec<(PathBuf, Lease)> = fs::read_dir(b.lease_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Lease::read(&e.path()).map(|l| (e.path(), l)))
        .filter(|(_, l)| l.tag == tag)
        .collect();
    if leases.iter().any(|(_, l)| l.alive()) {
        return Ok(());
    }
    remove_rules_of(tag);
    for (path, _) in leases {
        let _ = fs::remove_file(path);
    }
    let host_if = host_interface(tag);
    if Path::new("/sys/class/net").join(&host_if).exists() {
        let _ = ip("remove the veth pair", &["link", "del", &host_if]);
    }
    Ok(())
}
