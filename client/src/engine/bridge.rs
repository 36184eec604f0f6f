//! The default network's bridge: the `[bridge]` section of the client's configuration file
//! and what the engine tells of it (`network inspect`, `--add-host host-gateway`).

use std::net::Ipv4Addr;

use berth_runtime::net::Bridge;
use serde::Deserialize;

use super::{Engine, EngineError, Result};

/// The `[bridge]` section: the host bridge of `--network bridge`; a key left out keeps
/// berth's default (berth0, 10.89.0.1/16).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeSection {
    /// The interface's name.
    #[serde(default)]
    pub name: Option<String>,
    /// The gateway's address with the subnet's prefix length (`10.89.0.1/16`).
    #[serde(default)]
    pub address: Option<String>,
}

impl BridgeSection {
    /// The bridge this section describes, or why it cannot be one (a message naming the key).
    pub(crate) fn bridge(&self) -> Result<Bridge, String> {
        let mut b = Bridge::default();
        if let Some(name) = &self.name {
            b.name = name.clone();
        }
        if let Some(p) = b.name_problem() {
            return Err(format!("bridge.name: {p}"));
        }
        if let Some(address) = &self.address {
            let bad = || {
                format!(
                    "bridge.address: {address:?} must be an IPv4 address with a prefix length, \
                     such as 10.89.0.1/16"
                )
            };
            let (ip, prefix) = address.split_once('/').ok_or_else(bad)?;
            b.gateway = ip.parse().map_err(|_| bad())?;
            b.prefix = prefix.parse().map_err(|_| bad())?;
        }
        if let Some(p) = b.address_problem() {
            return Err(format!("bridge.address: {p}"));
        }
        Ok(b)
    }
}

impl Engine {
    /// The bridge containers of `--network bridge` are plugged into: berth0 on 10.89.0.1/16
    /// unless the section says otherwise.
    pub fn set_bridge(&mut self, section: &BridgeSection) -> Result<()> {
        self.bridge = section.bridge().map_err(EngineError::Invalid)?;
        Ok(())
    }

    /// The bridge's interface name.
    pub fn bridge_name(&self) -> &str {
        &self.bridge.name
    }

    /// The bridge's own address: the containers' gateway.
    pub fn bridge_gateway(&self) -> Ipv4Addr {
        self.bridge.gateway
    }

    /// The bridge's subnet (`10.89.0.0/16`).
    pub fn bridge_subnet(&self) -> String {
        self.bridge.subnet()
    }
}
