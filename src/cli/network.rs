//! `berth network`: the networks a container can be on (bridge, host, none), listed and
//! inspected as docker shows them. User-defined networks are not there yet, and the commands
//! that would make them say so.

use anyhow::{bail, Result};
use berth_client::engine::{NetworkMode, Status};
use berth_storage::Digest;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::containers::engine;
use super::images::print_formatted;
use super::Globals;

#[derive(Subcommand)]
pub enum NetworkCommand {
    /// List networks
    #[command(visible_aliases = ["list"])]
    Ls(LsArgs),
    /// Display detailed information on one or more networks
    Inspect(InspectArgs),
    /// Create a network (not supported yet: berth has bridge, host and none)
    Create(NamedArgs),
    /// Remove one or more networks (not supported: bridge, host and none always exist)
    #[command(visible_alias = "remove")]
    Rm(NamedArgs),
    /// Connect a container to a network (not supported yet)
    Connect(NamedArgs),
    /// Disconnect a container from a network (not supported yet)
    Disconnect(NamedArgs),
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Only display network IDs
    #[arg(short, long)]
    quiet: bool,
    /// Do not truncate the output
    #[arg(long)]
    no_trunc: bool,
    /// Format output using a custom template ('table', 'json' or a Go template)
    #[arg(long)]
    format: Option<String>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    format: Option<String>,
    #[arg(required = true, value_name = "NETWORK")]
    networks: Vec<String>,
}

#[derive(Args, Debug)]
pub struct NamedArgs {
    #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
    args: Vec<String>,
}

/// The three networks: (name, driver, mode).
const NETWORKS: [(&str, &str, NetworkMode); 3] = [
    ("bridge", "bridge", NetworkMode::Bridge),
    ("host", "host", NetworkMode::Host),
    ("none", "null", NetworkMode::None),
];

/// A network's id: stable, from its name (there is no daemon to hand out random ones).
fn network_id(name: &str) -> String {
    Digest::sha256_of(format!("berth network {name}").as_bytes())
        .hex()
        .to_string()
}

pub fn run(g: &Globals, cmd: NetworkCommand) -> Result<i32> {
    match cmd {
        NetworkCommand::Ls(a) => ls(a),
        NetworkCommand::Inspect(a) => inspect(g, a),
        NetworkCommand::Create(_) | NetworkCommand::Connect(_) | NetworkCommand::Disconnect(_) => {
            bail!(
                "user-defined networks are not supported yet: berth has bridge (the default), \
                 host, none and container:NAME"
            )
        }
        NetworkCommand::Rm(a) => bail!(
            "{} is a pre-defined network and cannot be removed",
            a.args.join(", ")
        ),
    }
}

fn ls(a: LsArgs) -> Result<i32> {
    let rows: Vec<Value> = NETWORKS
        .iter()
        .map(|(name, driver, _)| {
            let id = network_id(name);
            json!({
                "ID": if a.no_trunc { id.clone() } else { id[..12].to_string() },
                "Name": name,
                "Driver": driver,
                "Scope": "local",
            })
        })
        .collect();
    if a.quiet {
        for r in &rows {
            println!("{}", r["ID"].as_str().unwrap_or_default());
        }
        return Ok(0);
    }
    let headers =
        json!({ "ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE" });
    let format = match a.format.as_deref() {
        None | Some("table") => "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
        Some(f) => f,
    };
    print_formatted(format, &headers, &rows)
}

fn inspect(g: &Globals, a: InspectArgs) -> Result<i32> {
    let e = engine(g)?;
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
    match a.format {
        Some(f) => print_formatted(&f, &Value::Null, &out),
        None => {
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(0)
        }
    }
}
