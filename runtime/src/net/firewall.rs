//! The packet filter's part of a network, in iptables' words (nf_tables or legacy, whichever
//! `iptables` the host has), written in batches through `iptables-restore --noflush`: one
//! process per change, never one per rule. A network with an IPv6 subnet gets the same
//! rules for IPv6 through `ip6tables`, as docker's `ip6tables` setting does.
//!
//! - A network's own rules ([`setup`]): NAT out of the subnet (not for internal networks),
//!   forwarding in and out of its bridge (only within it when internal: drops in the mangle
//!   table, ahead of every network's accepts in the filter table), the masquerade that
//!   lets a container reach a published port through the host's address (hairpin), the
//!   masquerade of published ports reached on 127.0.0.1, and a drop of packets from the
//!   bridge to 127.0.0.0/8 (`route_localnet` is on for those published ports, and without
//!   it a container could reach the host's loopback services). Read once with
//!   `iptables-save`, the missing ones added in one batch. For IPv6: NAT out, forwarding
//!   and the hairpin masquerade (IPv6 never routes ::1, so it needs neither of the others),
//!   and a return from `BERTH` for ::1 before any DNAT, so that [::1]:PORT is refused at
//!   once rather than sent where the kernel drops it.
//! - A container's published ports: DNAT rules in the nat table's `BERTH` chain, each
//!   commented `berth:<tag>`, added in one batch ([`publish`]) and removed in one
//!   ([`unpublish`]): in IPv4 for a port published on an IPv4 address, in IPv6 for one on an
//!   IPv6 address, in both (the container's families) for one on all addresses.

use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::{Command, Stdio};

use super::{Network, PortMapping, CHAIN};
use crate::error::{Error, Result};

/// The packet filter's two families: each has its own tables and tools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn save(self) -> &'static str {
        match self {
            Family::V4 => "iptables-save",
            Family::V6 => "ip6tables-save",
        }
    }

    fn restore(self) -> &'static str {
        match self {
            Family::V4 => "iptables-restore",
            Family::V6 => "ip6tables-restore",
        }
    }
}

fn spawn_error(program: &str, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::Network(format!(
            "`{program}` is not installed (bridge networks need iptables; without it, use \
             --network none or --network host)"
        ))
    } else {
        Error::io(format!("run {program}"), e)
    }
}

/// What `iptables-save` (or `ip6tables-save`) prints for the tables named.
fn save(f: Family, tables: &[&str]) -> Result<String> {
    let mut out = String::new();
    for t in tables {
        let o = Command::new(f.save())
            .args(["-t", t])
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| spawn_error(f.save(), e))?;
        if !o.status.success() {
            return Err(Error::Network(format!(
                "read the {t} table: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )));
        }
        out.push_str(&String::from_utf8_lossy(&o.stdout));
    }
    Ok(out)
}

/// Feeds `batch` (iptables-save's format) to `iptables-restore --noflush` (or
/// `ip6tables-restore`): all of it or nothing.
fn restore(f: Family, what: &str, batch: &str) -> Result<()> {
    let mut child = Command::new(f.restore())
        .args(["-w", "--noflush"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| spawn_error(f.restore(), e))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(batch.as_bytes())
        .map_err(|e| Error::io(format!("{what}: write to {}", f.restore()), e))?;
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io(format!("{what}: wait for {}", f.restore()), e))?;
    if !out.status.success() {
        return Err(Error::Network(format!(
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Rules of one table: (table, lines as iptables-save prints them, `-A CHAIN …`).
struct Table {
    name: &'static str,
    chains: Vec<&'static str>,
    rules: Vec<(bool, String)>,
}

/// The rules a network needs in family `f`, table by table; `true` marks a rule that goes
/// first in its chain (inserted), others are appended.
fn network_rules(n: &Network, f: Family) -> Vec<Table> {
    let b = &n.name;
    let subnet = match f {
        Family::V4 => n.subnet(),
        Family::V6 => n.subnet6().unwrap_or_default(),
    };
    let mut nat = vec![
        (
            false,
            format!("-A PREROUTING -m addrtype --dst-type LOCAL -j {CHAIN}"),
        ),
        (
            false,
            format!("-A OUTPUT -m addrtype --dst-type LOCAL -j {CHAIN}"),
        ),
    ];
    match f {
        Family::V4 => nat.push((
            false,
            format!("-A POSTROUTING -s 127.0.0.0/8 -o {b} -j MASQUERADE"),
        )),
        // A packet to ::1 sent on to a container is dropped by the kernel (IPv6 has no
        // `route_localnet`): without this a connection to [::1]:PORT would hang until its
        // timeout; with it, nothing listens there and it is refused at once.
        Family::V6 => nat.push((true, format!("-A {CHAIN} -d ::1/128 -j RETURN"))),
    }
    nat.push((
        false,
        format!("-A POSTROUTING -s {subnet} -o {b} -m conntrack --ctstate DNAT -j MASQUERADE"),
    ));
    let mut filter = vec![
        (true, format!("-A FORWARD -i {b} -j ACCEPT")),
        (true, format!("-A FORWARD -o {b} -j ACCEPT")),
    ];
    // An internal network's drops go in the mangle table, whose FORWARD chain the kernel
    // walks before the filter table's: in the filter table, the accepts of a network set up
    // later (inserted first in the chain) would come before them and forward its packets.
    let mut mangle = vec![];
    if n.internal {
        mangle.push((false, format!("-A FORWARD -i {b} ! -o {b} -j DROP")));
        mangle.push((false, format!("-A FORWARD -o {b} ! -i {b} -j DROP")));
    } else {
        nat.push((
            false,
            format!("-A POSTROUTING -s {subnet} ! -o {b} -j MASQUERADE"),
        ));
    }
    // The resolver listens on the IPv4 gateway, or on an IPv6-only network the IPv6 one.
    if n.dns && (f == Family::V4) == n.ipv4 {
        for p in ["udp", "tcp"] {
            filter.push((
                true,
                format!("-A INPUT -i {b} -p {p} -m {p} --dport 53 -j ACCEPT"),
            ));
        }
    }
    let mut tables = vec![
        Table {
            name: "nat",
            chains: vec![CHAIN],
            rules: nat,
        },
        Table {
            name: "filter",
            chains: vec![],
            rules: filter,
        },
    ];
    if !mangle.is_empty() {
        tables.push(Table {
            name: "mangle",
            chains: vec![],
            rules: mangle,
        });
    }
    if f == Family::V4 {
        tables.push(Table {
            name: "raw",
            chains: vec![],
            rules: vec![(
                false,
                format!("-A PREROUTING -d 127.0.0.0/8 -i {b} -j DROP"),
            )],
        });
    }
    tables
}

/// iptables-save's output as (table, its lines).
fn sections(saved: &str) -> Vec<(&str, Vec<&str>)> {
    saved
        .split("\n*")
        .filter_map(|s| {
            let s = s.trim_start_matches('*');
            let (name, rest) = s.split_once('\n')?;
            Some((name, rest.lines().collect()))
        })
        .collect()
}

/// Adds what [`network_rules`] says is missing, for IPv4 and, on a network with an IPv6
/// subnet, for IPv6: per family one `iptables-save`, one batch.
pub(crate) fn setup(n: &Network) -> Result<()> {
    if n.ipv4 {
        add_missing(n, Family::V4)?;
    }
    if n.ipv6.is_some() {
        add_missing(n, Family::V6)?;
    }
    Ok(())
}

fn add_missing(n: &Network, f: Family) -> Result<()> {
    let tables = network_rules(n, f);
    let names: Vec<&str> = tables.iter().map(|t| t.name).collect();
    let current = save(f, &names)?;
    let sections = sections(&current);
    let mut batch = String::new();
    for t in &tables {
        let lines = sections
            .iter()
            .find(|(name, _)| *name == t.name)
            .map(|(_, l)| l.as_slice())
            .unwrap_or(&[]);
        let mut part = String::new();
        for c in &t.chains {
            if !lines.iter().any(|l| l.starts_with(&format!(":{c} "))) {
                part.push_str(&format!(":{c} - [0:0]\n"));
            }
        }
        for (first, rule) in &t.rules {
            if lines.contains(&rule.as_str()) {
                continue;
            }
            if *first {
                let rest = rule.strip_prefix("-A ").unwrap_or(rule);
                let (chain, spec) = rest.split_once(' ').unwrap_or((rest, ""));
                part.push_str(&format!("-I {chain} 1 {spec}\n"));
            } else {
                part.push_str(rule);
                part.push('\n');
            }
        }
        if !part.is_empty() {
            batch.push_str(&format!("*{}\n{part}COMMIT\n", t.name));
        }
    }
    if batch.is_empty() {
        return Ok(());
    }
    restore(
        f,
        &format!("set up the rules of network {}", n.name),
        &batch,
    )
}

/// Removes a network's own rules (those naming its bridge or subnet; the shared jumps to
/// `BERTH` stay): per family one `iptables-save`, one batch.
pub(crate) fn teardown(n: &Network) -> Result<()> {
    let internal: &[&str] = if n.internal { &["mangle"] } else { &[] };
    if n.ipv4 {
        remove_own(
            n,
            Family::V4,
            &n.subnet(),
            &[&["nat", "filter", "raw"], internal].concat(),
        )?;
    }
    if let Some(subnet6) = n.subnet6() {
        remove_own(
            n,
            Family::V6,
            &subnet6,
            &[&["nat", "filter"], internal].concat(),
        )?;
    }
    Ok(())
}

fn remove_own(n: &Network, f: Family, subnet: &str, tables: &[&str]) -> Result<()> {
    let current = save(f, tables)?;
    let b = format!(" {} ", n.name);
    let subnet = format!(" {subnet} ");
    let mut batch = String::new();
    for (name, lines) in sections(&current) {
        let dels: String = lines
            .iter()
            .filter(|l| l.starts_with("-A "))
            .filter(|l| {
                let l = format!("{l} ");
                l.contains(&b) || l.contains(&subnet)
            })
            .map(|l| format!("-D {}\n", &l[3..]))
            .collect();
        if !dels.is_empty() {
            batch.push_str(&format!("*{name}\n{dels}COMMIT\n"));
        }
    }
    if batch.is_empty() {
        return Ok(());
    }
    restore(
        f,
        &format!("remove the rules of network {}", n.name),
        &batch,
    )
}

/// The DNAT rule of one published port, as `-A`/`-D` arguments (without the verb).
fn port_rule(tag: &str, to: &str, m: &PortMapping) -> String {
    let dest = match m.host_ip {
        Some(a) if !a.is_unspecified() => format!("-d {a}/{} ", if a.is_ipv4() { 32 } else { 128 }),
        _ => String::new(),
    };
    let p = m.protocol.as_str();
    format!(
        "{CHAIN} {dest}-p {p} -m {p} --dport {} -m comment --comment berth:{tag} -j DNAT \
         --to-destination {to}:{}",
        m.host_port, m.container_port
    )
}

/// The batches that add (`verb` `-A`) or remove (`-D`) a container's published ports: a
/// port goes to `address` when published on an IPv4 address or all addresses, to
/// `address6` when published on an IPv6 address or all addresses.
fn port_batches(
    verb: &str,
    tag: &str,
    address: Option<Ipv4Addr>,
    address6: Option<Ipv6Addr>,
    ports: &[PortMapping],
) -> (Option<String>, Option<String>) {
    let batch = |to: Option<String>, v6: bool| -> Option<String> {
        let to = to?;
        let rules: String = ports
            .iter()
            .filter(|m| m.host_ip.is_none_or(|a| a.is_ipv6() == v6))
            .map(|m| format!("{verb} {}\n", port_rule(tag, &to, m)))
            .collect();
        (!rules.is_empty()).then(|| format!("*nat\n{rules}COMMIT\n"))
    };
    (
        batch(address.map(|a| a.to_string()), false),
        batch(address6.map(|a| format!("[{a}]")), true),
    )
}

/// Adds the DNAT rules of a container's published ports: one batch per family.
pub(crate) fn publish(
    tag: &str,
    address: Option<Ipv4Addr>,
    address6: Option<Ipv6Addr>,
    ports: &[PortMapping],
) -> Result<()> {
    if ports.is_empty() {
        return Ok(());
    }
    let (v4, v6) = port_batches("-A", tag, address, address6, ports);
    if let Some(v4) = v4 {
        restore(Family::V4, "publish ports", &v4)?;
    }
    if let Some(v6) = v6 {
        if let Err(e) = restore(Family::V6, "publish ports on IPv6", &v6) {
            if let (Some(undo), _) = port_batches("-D", tag, address, None, ports) {
                let _ = restore(Family::V4, "remove published ports", &undo);
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Removes the DNAT rules [`publish`] added, one batch per family; when some are gone
/// already (a batch fails whole), the ones left, found by their comment.
pub(crate) fn unpublish(
    tag: &str,
    address: Option<Ipv4Addr>,
    address6: Option<Ipv6Addr>,
    ports: &[PortMapping],
) {
    if ports.is_empty() {
        return;
    }
    let (v4, v6) = port_batches("-D", tag, address, address6, ports);
    if let Some(v4) = v4 {
        if restore(Family::V4, "remove published ports", &v4).is_err() {
            remove_tagged_in(Family::V4, |t| t == tag);
        }
    }
    if let Some(v6) = v6 {
        if restore(Family::V6, "remove published ports", &v6).is_err() {
            remove_tagged_in(Family::V6, |t| t == tag);
        }
    }
}

/// The BERTH chain's IPv4 rules as (line, tag, protocol, host port); empty when it cannot
/// be read. Only for leases written before leases named their ports.
pub(crate) fn tagged_rules() -> Vec<(String, String, String, u16)> {
    tagged_rules_in(Family::V4)
}

fn tagged_rules_in(f: Family) -> Vec<(String, String, String, u16)> {
    let Ok(out) = save(f, &["nat"]) else {
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

/// Removes, in one batch per family, the BERTH rules whose tag `gone` says is gone.
pub(crate) fn remove_tagged(gone: impl Fn(&str) -> bool) {
    remove_tagged_in(Family::V4, &gone);
    remove_tagged_in(Family::V6, &gone);
}

fn remove_tagged_in(f: Family, gone: impl Fn(&str) -> bool) {
    let dels: String = tagged_rules_in(f)
        .into_iter()
        .filter(|(_, t, _, _)| gone(t))
        .map(|(l, ..)| format!("-D {}\n", &l[3..]))
        .collect();
    if !dels.is_empty() {
        let _ = restore(
            f,
            "remove stale published ports",
            &format!("*nat\n{dels}COMMIT\n"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Protocol;

    #[test]
    fn a_port_goes_to_the_family_of_its_host_address() {
        let port = |ip: Option<&str>, host_port| PortMapping {
            host_ip: ip.map(|a| a.parse().unwrap()),
            host_port,
            container_port: 80,
            protocol: Protocol::Tcp,
        };
        let ports = [
            port(None, 1),
            port(Some("0.0.0.0"), 2),
            port(Some("127.0.0.1"), 3),
            port(Some("::"), 4),
            port(Some("fd00::1"), 5),
        ];
        let a4 = Some(Ipv4Addr::new(10, 0, 0, 2));
        let a6 = Some("fd01::2".parse().unwrap());
        let rule = |dest: &str, port: u16, to: &str| {
            format!(
                "-A BERTH {dest}-p tcp -m tcp --dport {port} -m comment --comment berth:t -j \
                 DNAT --to-destination {to}:80\n"
            )
        };
        let (v4, v6) = port_batches("-A", "t", a4, a6, &ports);
        assert_eq!(
            v4.unwrap(),
            format!(
                "*nat\n{}{}{}COMMIT\n",
                rule("", 1, "10.0.0.2"),
                rule("", 2, "10.0.0.2"),
                rule("-d 127.0.0.1/32 ", 3, "10.0.0.2")
            )
        );
        assert_eq!(
            v6.unwrap(),
            format!(
                "*nat\n{}{}{}COMMIT\n",
                rule("", 1, "[fd01::2]"),
                rule("", 4, "[fd01::2]"),
                rule("-d fd00::1/128 ", 5, "[fd01::2]")
            )
        );
        // Without an IPv6 address, no IPv6 batch; with only IPv6 ports, no IPv4 one.
        assert_eq!(port_batches("-A", "t", a4, None, &ports).1, None);
        assert_eq!(port_batches("-A", "t", a4, a6, &ports[3..]).0, None);
    }
}
