//! `berth network inspect`: docker's network document, with the running containers on it.

use anyhow::{bail, Result};
use berth_client::engine::{NetworkMode, Status};
use clap::Args;
use serde_json::json;

use super::predefined::{network_id, NETWORKS};
use crate::cli::format::print_inspect;
use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    format: Option<String>,
    #[arg(required = true, value_name = "NETWORK")]
    networks: Vec<String>,
}

pub fn run(g: &Globals, a: InspectArgs) -> Result<i32> {
    let e = g.engine()?;
    let mut out = Vec::new();
    for wanted in &a.networks {
        let Some((name, driver, mode)) = NETWORKS
            .iter()
            .find(|(n, _, _)| n == wanted || network_id(n).starts_with(wanted.as_str()))
        else {
            bail!("network {wanted} not found");
        };
        let mut containers = serde_json::Map::new();
        for rec in e.list()? {
            if rec.host.network != *mode {
                continue;
            }
            let status = e.state(&rec).status;
            if !matches!(status, Status::Running | Status::Paused) {
                continue;
            }
            let net = e.network_state(&rec, status);
            containers.insert(
                rec.id.clone(),
                json!({
                    "Name": rec.name,
                    "MacAddress": net.as_ref().map(|n| n.mac_address.clone()).unwrap_or_default(),
                    "IPv4Address": net.as_ref().map(|n| format!("{}/{}", n.ip_address, n.prefix)).unwrap_or_default(),
                    "IPv6Address": "",
                }),
            );
        }
        let config = if *mode == NetworkMode::Bridge {
            json!([{ "Subnet": e.bridge_subnet(), "Gateway": e.bridge_gateway().to_string() }])
        } else {
            json!([])
        };
        let options = if *mode == NetworkMode::Bridge {
            json!({ "com.docker.network.bridge.name": e.bridge_name() })
        } else {
            json!({})
        };
        out.push(json!({
            "Name": name,
            "Id": network_id(name),
            "Scope": "local",
            "Driver": driver,
            "EnableIPv6": false,
            "IPAM": { "Driver": "default", "Options": null, "Config": config },
            "Internal": false,
            "Attachable": false,
            "Containers": containers,
            "Options": options,
            "Labels": {},
        }));
    }
    print_inspect(&out, a.format.as_deref())?;
    Ok(0)
}
