//! A network as `ls` and `inspect` show it: the predefined ones (bridge, host, none) and the
//! user-defined ones of the root in one shape, with the running containers on each.

use anyhow::{bail, Result};
use berth_client::engine::{
    endpoint_id, predefined_id, ContainerRecord, EndpointState, Engine, NetworkMode, NetworkRecord,
    Status, PREDEFINED,
};
use serde_json::{json, Map, Value};

/// One network, predefined or user-defined.
pub struct View {
    pub name: String,
    pub id: String,
    /// RFC 3339; docker's zero time for the predefined networks, which no command created.
    pub created: String,
    pub driver: String,
    /// The record of a user-defined network; `None` for a predefined one.
    pub record: Option<NetworkRecord>,
}

const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

impl View {
    fn predefined(name: &str, driver: &str) -> View {
        View {
            name: name.to_string(),
            id: predefined_id(name),
            created: ZERO_TIME.to_string(),
            driver: driver.to_string(),
            record: None,
        }
    }

    fn user(r: NetworkRecord) -> View {
        View {
            name: r.name.clone(),
            id: r.id.clone(),
            created: r.created.clone(),
            driver: r.driver.clone(),
            record: Some(r),
        }
    }

    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }

    pub fn internal(&self) -> bool {
        self.record.as_ref().is_some_and(|r| r.internal)
    }

    /// docker's `EnableIPv4`: false for an IPv6-only network (the predefined ones have it).
    pub fn ipv4(&self) -> bool {
        self.record.as_ref().is_none_or(|r| r.enable_ipv4)
    }

    pub fn ipv6(&self) -> bool {
        self.record.as_ref().is_some_and(|r| r.enable_ipv6)
    }

    pub fn labels(&self) -> Value {
        self.record.as_ref().map_or(json!({}), |r| json!(r.labels))
    }

    /// docker's `IPAM.Config`: one entry per subnet.
    fn ipam_config(&self, e: &Engine) -> Value {
        match (&self.record, self.name.as_str()) {
            (Some(r), _) if !r.enable_ipv4 => {
                json!([{ "Subnet": r.subnet6, "Gateway": r.gateway6 }])
            }
            (Some(r), _) => {
                let mut v4 = json!({ "Subnet": r.subnet });
                if !r.ip_range.is_empty() {
                    v4["IPRange"] = json!(r.ip_range);
                }
                v4["Gateway"] = json!(r.gateway);
                if r.enable_ipv6 {
                    json!([v4, { "Subnet": r.subnet6, "Gateway": r.gateway6 }])
                } else {
                    json!([v4])
                }
            }
            (None, "bridge") => json!([{
                "Subnet": e.bridge_subnet(),
                "Gateway": e.bridge_gateway().to_string(),
            }]),
            (None, _) => json!([]),
        }
    }

    fn options(&self, e: &Engine) -> Value {
        match (&self.record, self.name.as_str()) {
            (Some(r), _) => json!(r.options),
            (None, "bridge") => json!({ "com.docker.network.bridge.name": e.bridge_name() }),
            (None, _) => json!({}),
        }
    }

    /// Whether the container is on this network (by its record, running or not).
    pub fn names(&self, rec: &ContainerRecord) -> bool {
        match self.name.as_str() {
            _ if self.record.is_some() => rec
                .host
                .networks
                .iter()
                .any(|n| n.network_id == self.id || n.network == self.name),
            "bridge" => {
                rec.host.network == NetworkMode::Bridge
                    && (rec.host.networks.is_empty()
                        || rec.host.networks.iter().any(|n| n.network == "bridge"))
            }
            "host" => rec.host.network == NetworkMode::Host,
            _ => rec.host.network == NetworkMode::None,
        }
    }

    /// The running containers on the network, each with where it sits on it (none on host
    /// and none).
    pub fn containers(&self, e: &Engine) -> Result<Vec<(ContainerRecord, Option<EndpointState>)>> {
        let mut v = vec![];
        for rec in e.list()? {
            if !self.names(&rec) {
                continue;
            }
            let status = e.state(&rec).status;
            if !matches!(status, Status::Running | Status::Paused) {
                continue;
            }
            let endpoint = e.network_state(&rec, status).and_then(|s| {
                s.endpoints.into_iter().find(|x| {
                    (self.record.is_some() && x.network_id == self.id) || x.network == self.name
                })
            });
            v.push((rec, endpoint));
        }
        Ok(v)
    }

    /// docker's network document.
    pub fn inspect(&self, e: &Engine) -> Result<Value> {
        let mut containers = Map::new();
        for (rec, ep) in self.containers(e)? {
            let ep = ep.unwrap_or_default();
            let cidr = |a: &str, p: u8| {
                if a.is_empty() {
                    String::new()
                } else {
                    format!("{a}/{p}")
                }
            };
            containers.insert(
                rec.id.clone(),
                json!({
                    "Name": rec.name,
                    "EndpointID": endpoint_id(&rec.id, &self.id),
                    "MacAddress": ep.mac_address,
                    "IPv4Address": cidr(&ep.ip_address, ep.prefix),
                    "IPv6Address": cidr(&ep.global_ipv6_address, ep.global_ipv6_prefix),
                }),
            );
        }
        Ok(json!({
            "Name": self.name,
            "Id": self.id,
            "Created": self.created,
            "Scope": "local",
            "Driver": self.driver,
            "EnableIPv4": self.ipv4(),
            "EnableIPv6": self.ipv6(),
            "IPAM": { "Driver": "default", "Options": {}, "Config": self.ipam_config(e) },
            "Internal": self.internal(),
            "Attachable": false,
            "Ingress": false,
            "ConfigFrom": { "Network": "" },
            "ConfigOnly": false,
            "Containers": containers,
            "Options": self.options(e),
            "Labels": self.labels(),
        }))
    }
}

/// Every network of the root, sorted by name as docker lists them.
pub fn all(e: &Engine) -> Result<Vec<View>> {
    let mut v: Vec<View> = PREDEFINED
        .iter()
        .map(|(n, d)| View::predefined(n, d))
        .collect();
    v.extend(e.networks()?.into_iter().map(View::user));
    v.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(v)
}

/// A network by name, full id or id prefix, as docker finds it; an error when a prefix names
/// several.
pub fn find(e: &Engine, s: &str) -> Result<Option<View>> {
    let all = all(e)?;
    if let Some(i) = all.iter().position(|v| v.name == s || v.id == s) {
        return Ok(all.into_iter().nth(i));
    }
    let mut by_prefix: Vec<View> = all
        .into_iter()
        .filter(|v| !s.is_empty() && v.id.starts_with(s))
        .collect();
    match by_prefix.len() {
        0 => Ok(None),
        1 => Ok(by_prefix.pop()),
        n => bail!("network {s} is ambiguous ({n} matches found based on ID prefix)"),
    }
}
