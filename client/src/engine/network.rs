//! User-defined networks: their definitions in the root, and their host side through
//! `berth_runtime::net`.
//!
//! ```text
//! networks/<id>.json        a network's definition (see [`NetworkRecord`])
//! networks/names/<name>     holds the id: a name is taken by creating this file
//! ```
//!
//! A definition is only words until a container is plugged in: the bridge, its rules and
//! its resolver are made by the first `connect` (host-wide state under /run, see the
//! runtime), so `network create` and `rm` of an unused network touch nothing but these
//! files. The predefined networks `bridge` (berth's default bridge), `host` and `none` have
//! no file; their ids are derived from their names.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use berth_runtime::net::{self, Network};
use berth_storage::Digest;
use serde::{Deserialize, Serialize};

use crate::events::{Event, Kind};

use super::{io_err, names, new_id, write_file, Engine, EngineError, Result, Status};

/// The networks every root has, as docker names them: (name, driver).
pub const PREDEFINED: [(&str, &str); 3] =
    [("bridge", "bridge"), ("host", "host"), ("none", "null")];

/// An endpoint's id: berth keeps no endpoint objects, so it is derived from the container's
/// and the network's ids (stable for the pair, different for every other).
pub fn endpoint_id(container: &str, network: &str) -> String {
    Digest::sha256_of(format!("berth endpoint {container} {network}").as_bytes())
        .hex()
        .to_string()
}

/// The id of a predefined network: stable, from its name (no daemon hands out random ones).
pub fn predefined_id(name: &str) -> String {
    Digest::sha256_of(format!("berth network {name}").as_bytes())
        .hex()
        .to_string()
}

/// A user-defined network's `create` or `destroy` event.
fn network_record_event(r: &NetworkRecord, action: &str) -> Event {
    Event::new(Kind::Network, action, &r.id)
        .attr("name", &r.name)
        .attr("type", &r.driver)
}

/// Where subnets of networks created without `--subnet` come from: the /24s of 10.92.0.0
/// to 10.99.255.0, the first that overlaps no network (this root's, the host's other berth
/// bridges), no on-link route of the host and none of its name servers.
const AUTO_SUBNETS: std::ops::RangeInclusive<u32> = 0x0a5c_0000..=0x0a63_ff00;

/// docker's refusal of a subnet that overlaps another network's.
const POOL_OVERLAP: &str =
    "invalid pool request: Pool overlaps with other one on this address space";

/// A user-defined network, as `network create` made it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NetworkRecord {
    /// 64 hex digits.
    pub id: String,
    pub name: String,
    /// RFC 3339.
    pub created: String,
    /// `bridge` or `macvlan`.
    pub driver: String,
    /// `10.92.0.0/24`; empty on an IPv6-only network.
    pub subnet: String,
    pub gateway: String,
    /// docker's `EnableIPv4`: false for an IPv6-only network (`--ipv4=false --ipv6`).
    #[serde(default = "yes")]
    pub enable_ipv4: bool,
    /// `--ip-range`, empty when addresses come from the whole subnet.
    #[serde(default)]
    pub ip_range: String,
    pub internal: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `-o` options (`com.docker.network.bridge.name`, `parent`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// The bridge's interface name, or for macvlan the name its leases are kept under.
    pub interface: String,
    /// `--ipv6`: an IPv6 subnet (`fd00:1::/64`) and its gateway beside the IPv4 ones.
    #[serde(default)]
    pub enable_ipv6: bool,
    #[serde(default)]
    pub subnet6: String,
    #[serde(default)]
    pub gateway6: String,
}

fn yes() -> bool {
    true
}

impl NetworkRecord {
    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }
}

/// What `network create` takes.
#[derive(Debug, Clone, Default)]
pub struct NetworkOptions {
    pub name: String,
    /// `bridge` (the default) or `macvlan`.
    pub driver: Option<String>,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub ip_range: Option<String>,
    pub internal: bool,
    pub labels: Vec<(String, String)>,
    pub options: Vec<(String, String)>,
    /// `--ipv6`, with an IPv6 `--subnet` (and optionally `--gateway`).
    pub ipv6: bool,
    /// `--ipv4=false`: no IPv4 subnet at all (with `ipv6`, an IPv6-only network).
    pub no_ipv4: bool,
    pub subnet6: Option<String>,
    pub gateway6: Option<String>,
}

/// The IPv6 subnets of this root's networks and of the networks set up on the host.
fn used6(all: &[NetworkRecord], on_host: &[net::HostNetwork]) -> Vec<(Ipv6Addr, u8)> {
    all.iter()
        .filter(|r| r.enable_ipv6)
        .filter_map(|r| parse_cidr6(&r.subnet6).ok())
        .chain(on_host.iter().filter_map(|h| h.subnet6))
        .collect()
}

/// docker's default IPv6 pool (moby 27): a unique local /48, `fd` and 40 bits of the
/// SHA-256 of the engine's id (RFC 4193's global id), cut into /64 subnets.
fn ula_pool(engine_id: &str) -> Ipv6Addr {
    use sha2::{Digest as _, Sha256};
    let h = Sha256::digest(engine_id.as_bytes());
    let gid = u64::from_be_bytes(h[..8].try_into().expect("8 bytes")) & ((1 << 40) - 1);
    Ipv6Addr::from((0xfd_u128 << 120) | (u128::from(gid) << 80))
}

/// An IPv6 `ADDR/PREFIX`, or docker's message for it.
fn parse_cidr6(s: &str) -> Result<(Ipv6Addr, u8)> {
    let bad = || EngineError::Invalid(format!("invalid CIDR address: {s}"));
    let (a, p) = s.split_once('/').ok_or_else(bad)?;
    let a: Ipv6Addr = a.parse().map_err(|_| bad())?;
    let p: u8 = p.parse().map_err(|_| bad())?;
    if p > 128 {
        return Err(bad());
    }
    Ok((a, p))
}

fn masked6(a: Ipv6Addr, p: u8) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(a) & u128::MAX.checked_shl(128 - u32::from(p)).unwrap_or(0))
}

/// `ADDR/PREFIX`, or docker's message for it.
fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8)> {
    let bad = || EngineError::Invalid(format!("invalid CIDR address: {s}"));
    let (a, p) = s.split_once('/').ok_or_else(bad)?;
    let a: Ipv4Addr = a.parse().map_err(|_| bad())?;
    let p: u8 = p.parse().map_err(|_| bad())?;
    if p > 32 {
        return Err(bad());
    }
    Ok((a, p))
}

fn masked(a: Ipv4Addr, p: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(a) & u32::MAX.checked_shl(32 - u32::from(p)).unwrap_or(0))
}

impl Engine {
    fn networks_dir(&self) -> PathBuf {
        self.root.join("networks")
    }

    /// Every user-defined network of this root, by name.
    pub fn networks(&self) -> Result<Vec<NetworkRecord>> {
        let dir = self.networks_dir();
        let mut v = Vec::new();
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(v),
            Err(e) => return Err(io_err(&dir)(e)),
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json") {
                if let Ok(data) = std::fs::read(&p) {
                    if let Ok(r) = serde_json::from_slice::<NetworkRecord>(&data) {
                        v.push(r);
                    }
                }
            }
        }
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    /// A user-defined network by name, id or id prefix; `None` for a predefined one or none.
    pub fn find_network(&self, s: &str) -> Result<Option<NetworkRecord>> {
        let all = self.networks()?;
        if let Some(r) = all.iter().find(|r| r.name == s || r.id == s) {
            return Ok(Some(r.clone()));
        }
        let by_prefix: Vec<&NetworkRecord> = all
            .iter()
            .filter(|r| !s.is_empty() && r.id.starts_with(s))
            .collect();
        match by_prefix.as_slice() {
            [one] => Ok(Some((*one).clone())),
            [] => Ok(None),
            _ => Err(EngineError::Invalid(format!(
                "network {s} is ambiguous ({} matches found based on ID prefix)",
                by_prefix.len()
            ))),
        }
    }

    /// Whether `s` names a network: a predefined one, or a user-defined one by name, id or
    /// id prefix.
    pub fn network_exists(&self, s: &str) -> Result<bool> {
        Ok(PREDEFINED.iter().any(|(n, _)| *n == s) || self.find_network(s)?.is_some())
    }

    /// Holds the network's subnets host-wide (see `net::claim`). Best effort: without the
    /// host-wide state directory (no root), only this root's networks are kept apart.
    fn claim(&self, r: &NetworkRecord) {
        let record = self.networks_dir().join(format!("{}.json", r.id));
        let record = std::fs::canonicalize(&record).unwrap_or(record);
        let v4 = parse_cidr(&r.subnet).ok();
        let v6 = r
            .enable_ipv6
            .then(|| parse_cidr6(&r.subnet6).ok())
            .flatten();
        if v4.is_some() || v6.is_some() {
            let _ = net::claim(&self.bridge.state_dir, &r.id, v4, v6, &record);
        }
    }

    /// The host side of a user-defined network.
    pub(crate) fn host_side(&self, r: &NetworkRecord) -> Network {
        let (gateway, _) =
            parse_cidr(&format!("{}/32", r.gateway)).unwrap_or((Ipv4Addr::UNSPECIFIED, 32));
        let prefix = parse_cidr(&r.subnet).map_or(24, |(_, p)| p);
        Network {
            name: r.interface.clone(),
            gateway,
            prefix,
            ipv4: r.enable_ipv4,
            state_dir: self.bridge.state_dir.clone(),
            range: (!r.ip_range.is_empty())
                .then(|| parse_cidr(&r.ip_range).ok())
                .flatten(),
            internal: r.internal,
            // Every user-defined network resolves names: a bridge on its gateway, a macvlan
            // network at 127.0.0.11 in each container.
            dns: true,
            parent: r.options.get("parent").cloned(),
            ipv6: r
                .enable_ipv6
                .then(|| {
                    let g: Ipv6Addr = r.gateway6.parse().ok()?;
                    Some((g, parse_cidr6(&r.subnet6).ok()?.1))
                })
                .flatten(),
        }
    }

    /// The default bridge's host side.
    pub fn default_bridge(&self) -> &Network {
        &self.bridge
    }

    /// docker's `network create`.
    pub fn create_network(&self, o: &NetworkOptions) -> Result<NetworkRecord> {
        let name = o.name.as_str();
        if PREDEFINED.iter().any(|(n, _)| *n == name) {
            return Err(EngineError::Invalid(format!(
                "operation is not permitted on predefined {name} network"
            )));
        }
        let one_char = name.len() == 1 && name.as_bytes()[0].is_ascii_alphanumeric();
        if !(names::valid(name) || one_char) {
            return Err(EngineError::Invalid(format!(
                "invalid network name \"{name}\": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        let driver = o.driver.clone().unwrap_or_else(|| "bridge".into());
        if !matches!(driver.as_str(), "bridge" | "macvlan") {
            return Err(EngineError::Invalid(format!(
                "plugin \"{driver}\" not found (berth has the bridge and macvlan drivers)"
            )));
        }
        let mut options: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in &o.options {
            let known = match driver.as_str() {
                "bridge" => k == "com.docker.network.bridge.name",
                _ => k == "parent" || k == "macvlan_mode",
            };
            if !known {
                return Err(EngineError::Invalid(format!(
                    "unknown option {k} for the {driver} driver (berth knows {})",
                    if driver == "bridge" {
                        "com.docker.network.bridge.name"
                    } else {
                        "parent and macvlan_mode=bridge"
                    }
                )));
            }
            if k == "macvlan_mode" && v != "bridge" {
                return Err(EngineError::Invalid(format!(
                    "macvlan mode {v} is not supported (berth has bridge)"
                )));
            }
            options.insert(k.clone(), v.clone());
        }
        let all = self.networks()?;
        if all.iter().any(|r| r.name == name) {
            return Err(EngineError::Invalid(format!(
                "network with name {name} already exists"
            )));
        }
        let id = new_id();
        let interface = match driver.as_str() {
            "macvlan" => {
                let parent = options.get("parent").ok_or_else(|| {
                    EngineError::Invalid(
                        "a macvlan network needs -o parent=IFACE, an interface of the host".into(),
                    )
                })?;
                if !net::interface_exists(parent)? {
                    return Err(EngineError::Invalid(format!(
                        "-o parent interface was not found on the host: {parent}"
                    )));
                }
                format!("mv-{}", &id[..12])
            }
            _ => match options.get("com.docker.network.bridge.name") {
                Some(b) => {
                    let probe = Network {
                        name: b.clone(),
                        ..Network::default()
                    };
                    if let Some(p) = probe.name_problem() {
                        return Err(EngineError::Invalid(format!(
                            "com.docker.network.bridge.name: {p}"
                        )));
                    }
                    if b == &self.bridge.name || all.iter().any(|r| &r.interface == b) {
                        return Err(EngineError::Invalid(format!(
                            "bridge name {b} is used by another network"
                        )));
                    }
                    b.clone()
                }
                None => format!("br-{}", &id[..12]),
            },
        };
        // docker's rules: an asked-for subnet may not overlap another network's (this
        // root's, the default bridge, the bridges other berth roots have set up on this
        // host); a subnet picked for the network also keeps off the subnets the host is on
        // and its name servers. The host's other routes are the user's business.
        let state_dir = &self.bridge.state_dir;
        // This root's networks hold their subnets host-wide (again after a reboot emptied
        // /run), and those of other roots are in the way as much as the set-up ones.
        for r in &all {
            if !net::claimed(state_dir, &r.id) {
                self.claim(r);
            }
        }
        let mut on_host = net::host_networks(state_dir);
        on_host.extend(net::claims(state_dir));
        let mut used: Vec<(Ipv4Addr, u8)> = all
            .iter()
            .filter_map(|r| parse_cidr(&r.subnet).ok())
            .collect();
        used.push((self.bridge.gateway, self.bridge.prefix));
        used.extend(on_host.iter().filter_map(|h| h.subnet));
        let overlaps = |a: Ipv4Addr, p: u8, with: &[(Ipv4Addr, u8)]| {
            with.iter().any(|(b, q)| net::overlaps(a, p, *b, *q))
        };
        // docker's `--ipv4=false`: an IPv6-only network has no IPv4 subnet, gateway or range.
        if o.no_ipv4 {
            if !o.ipv6 {
                return Err(EngineError::Invalid("IPv4 or IPv6 must be enabled".into()));
            }
            if let Some(s) = o
                .subnet
                .as_ref()
                .or(o.gateway.as_ref())
                .or(o.ip_range.as_ref())
            {
                return Err(EngineError::Invalid(format!(
                    "{s} is an IPv4 address but the network has IPv4 disabled (--ipv4=false)"
                )));
            }
        }
        let v4 = if o.no_ipv4 {
            None
        } else {
            let (subnet, prefix) = match &o.subnet {
                Some(s) => {
                    let (a, p) = parse_cidr(s)?;
                    if !(8..=30).contains(&p) {
                        return Err(EngineError::Invalid(format!(
                            "invalid subnet {s}: the prefix length must be from 8 to 30"
                        )));
                    }
                    if overlaps(a, p, &used) {
                        return Err(EngineError::Invalid(POOL_OVERLAP.into()));
                    }
                    (masked(a, p), p)
                }
                None => {
                    if o.gateway.is_some() || o.ip_range.is_some() {
                        return Err(EngineError::Invalid(
                            "every ip-range or gateway must have a corresponding subnet".into(),
                        ));
                    }
                    used.extend(net::reserved_subnets()?);
                    let free = AUTO_SUBNETS
                        .step_by(256)
                        .map(Ipv4Addr::from)
                        .find(|a| !overlaps(*a, 24, &used))
                        .ok_or_else(|| {
                            EngineError::Invalid(
                                "could not find an available, non-overlapping IPv4 address pool \
                                 among the defaults to assign to the network; give --subnet"
                                    .into(),
                            )
                        })?;
                    (free, 24)
                }
            };
            let gateway = match &o.gateway {
                Some(g) => {
                    let g: Ipv4Addr = g.parse().map_err(|_| {
                        EngineError::Invalid(format!("invalid gateway address {g}"))
                    })?;
                    if masked(g, prefix) != subnet {
                        return Err(EngineError::Invalid(format!(
                            "no matching subnet for gateway {g}"
                        )));
                    }
                    g
                }
                None => Ipv4Addr::from(u32::from(subnet) + 1),
            };
            let range = match &o.ip_range {
                Some(r) => {
                    let (a, p) = parse_cidr(r)?;
                    if p < prefix || masked(a, prefix) != subnet {
                        return Err(EngineError::Invalid(format!(
                            "no matching subnet for range {r}"
                        )));
                    }
                    format!("{}/{p}", masked(a, p))
                }
                None => String::new(),
            };
            Some((subnet, prefix, gateway, range))
        };
        let (subnet6, gateway6) = match (&o.subnet6, o.ipv6) {
            (None, false) => (String::new(), String::new()),
            (Some(s), false) => {
                return Err(EngineError::Invalid(format!(
                    "the IPv6 subnet {s} needs --ipv6"
                )))
            }
            (None, true) => {
                if o.gateway6.is_some() {
                    return Err(EngineError::Invalid(
                        "every ip-range or gateway must have a corresponding subnet".into(),
                    ));
                }
                // docker's default IPv6 pool: a /64 of the ULA /48 its engine id names.
                let pool = ula_pool(&self.engine_id()?);
                let mut used6 = used6(&all, &on_host);
                used6.extend(net::reserved_subnets6()?);
                let net6 = (0..=u16::MAX)
                    .map(|i| Ipv6Addr::from(u128::from(pool) | (u128::from(i) << 64)))
                    .find(|a| !used6.iter().any(|(b, q)| net::overlaps6(*a, 64, *b, *q)))
                    .ok_or_else(|| {
                        EngineError::Invalid(
                            "could not find an available, non-overlapping IPv6 address pool \
                             among the defaults to assign to the network; give an IPv6 --subnet"
                                .into(),
                        )
                    })?;
                (
                    format!("{net6}/64"),
                    Ipv6Addr::from(u128::from(net6) + 1).to_string(),
                )
            }
            (Some(s), true) => {
                let (a, p) = parse_cidr6(s)?;
                // A container's IPv6 address carries its IPv4 address's host part; on an
                // IPv6-only network, the subnet holds at least the gateway and one more.
                match v4 {
                    Some((_, prefix, ..)) if !(8..=128 - (32 - prefix)).contains(&p) => {
                        return Err(EngineError::Invalid(format!(
                            "invalid subnet {s}: the prefix length must be from 8 to {} (room for the IPv4 subnet's /{prefix} host part)",
                            128 - (32 - prefix)
                        )))
                    }
                    None if !(8..=126).contains(&p) => {
                        return Err(EngineError::Invalid(format!(
                            "invalid subnet {s}: the prefix length must be from 8 to 126"
                        )))
                    }
                    _ => {}
                }
                let net6 = masked6(a, p);
                for (b, q) in used6(&all, &on_host) {
                    if net::overlaps6(net6, p, b, q) {
                        return Err(EngineError::Invalid(POOL_OVERLAP.into()));
                    }
                }
                let gw6 = match &o.gateway6 {
                    Some(g) => {
                        let g: Ipv6Addr = g.parse().map_err(|_| {
                            EngineError::Invalid(format!("invalid gateway address {g}"))
                        })?;
                        if masked6(g, p) != net6 {
                            return Err(EngineError::Invalid(format!(
                                "no matching subnet for gateway {g}"
                            )));
                        }
                        g
                    }
                    None => Ipv6Addr::from(u128::from(net6) + 1),
                };
                (format!("{net6}/{p}"), gw6.to_string())
            }
        };
        let rec = NetworkRecord {
            enable_ipv6: o.ipv6,
            subnet6,
            gateway6,
            id: id.clone(),
            name: name.to_string(),
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            driver,
            subnet: v4
                .as_ref()
                .map_or(String::new(), |(s, p, ..)| format!("{s}/{p}")),
            gateway: v4
                .as_ref()
                .map_or(String::new(), |(_, _, g, _)| g.to_string()),
            enable_ipv4: v4.is_some(),
            ip_range: v4.map_or(String::new(), |(.., r)| r),
            internal: o.internal,
            labels: o.labels.iter().cloned().collect(),
            options,
            interface,
        };
        let host = self.host_side(&rec);
        if let Some(p) = host.address_problem().filter(|_| host.ipv4) {
            return Err(EngineError::Invalid(p));
        }
        // The name is taken by an exclusive create, so two creates of one name cannot both win.
        let names_dir = self.networks_dir().join("names");
        std::fs::create_dir_all(&names_dir).map_err(io_err(&names_dir))?;
        let name_path = names_dir.join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&name_path)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    EngineError::Invalid(format!("network with name {name} already exists"))
                } else {
                    io_err(&name_path)(e)
                }
            })?;
        let written = f
            .write_all(id.as_bytes())
            .map_err(io_err(&name_path))
            .and_then(|_| {
                write_file(
                    &self.networks_dir().join(format!("{id}.json")),
                    &serde_json::to_vec_pretty(&rec).expect("a network serialises"),
                )
            });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&name_path);
            return Err(e);
        }
        self.claim(&rec);
        self.journal().record(network_record_event(&rec, "create"));
        Ok(rec)
    }

    /// The running containers of this root on a network (by name or id): (id, name).
    pub fn network_users(&self, network: &str, network_id: &str) -> Result<Vec<(String, String)>> {
        let mut v = vec![];
        for rec in self.list()? {
            if !rec.host.networks.iter().any(|e| {
                e.network == network || (!network_id.is_empty() && e.network_id == network_id)
            }) {
                continue;
            }
            if matches!(self.state(&rec).status, Status::Running | Status::Paused) {
                v.push((rec.id.clone(), rec.name.clone()));
            }
        }
        Ok(v)
    }

    /// docker 28's refusal of `network rm` while containers are on the network: each
    /// endpoint's (container's) name and short id.
    fn active_endpoints(rec: &NetworkRecord, users: &[(String, String)]) -> EngineError {
        let eps: Vec<String> = users
            .iter()
            .map(|(id, name)| format!("name:\"{name}\" id:\"{}\"", &endpoint_id(id, &rec.id)[..12]))
            .collect();
        EngineError::Invalid(format!(
            "error while removing network: network {} has active endpoints ({})",
            rec.name,
            eps.join(", ")
        ))
    }

    /// docker's `network rm`: refused for predefined networks and while a container is on it.
    pub fn remove_network(&self, s: &str) -> Result<NetworkRecord> {
        if PREDEFINED.iter().any(|(n, _)| *n == s) {
            return Err(EngineError::Invalid(format!(
                "{s} is a pre-defined network and cannot be removed"
            )));
        }
        let rec = self
            .find_network(s)?
            .ok_or_else(|| EngineError::Invalid(format!("network {s} not found")))?;
        let host = self.host_side(&rec);
        let users = self.network_users(&rec.name, &rec.id)?;
        if !users.is_empty() || net::in_use(&host) {
            return Err(Self::active_endpoints(&rec, &users));
        }
        net::remove(&host).map_err(|e| match e {
            berth_runtime::Error::Network(m) if m.contains("active endpoints") => {
                Self::active_endpoints(&rec, &users)
            }
            other => other.into(),
        })?;
        let _ = std::fs::remove_file(self.networks_dir().join(format!("{}.json", rec.id)));
        net::unclaim(&self.bridge.state_dir, &rec.id);
        let name_path = self.networks_dir().join("names").join(&rec.name);
        if std::fs::read_to_string(&name_path).is_ok_and(|i| i.trim() == rec.id) {
            let _ = std::fs::remove_file(name_path);
        }
        self.journal().record(network_record_event(&rec, "destroy"));
        Ok(rec)
    }

    /// docker's `network prune`: removes the user-defined networks no container of this root
    /// names; returns their names.
    pub fn prune_networks(&self, keep: impl Fn(&NetworkRecord) -> bool) -> Result<Vec<String>> {
        let containers = self.list()?;
        let mut removed = vec![];
        for r in self.networks()? {
            let named = containers.iter().any(|c| {
                c.host
                    .networks
                    .iter()
                    .any(|e| e.network == r.name || e.network_id == r.id)
            });
            if named || keep(&r) || net::in_use(&self.host_side(&r)) {
                continue;
            }
            self.remove_network(&r.id)?;
            removed.push(r.name);
        }
        self.journal().record(Event::prune(Kind::Network, 0));
        Ok(removed)
    }
}
