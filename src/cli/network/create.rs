//! `berth network create`: a user-defined network, its id printed as docker prints it.

use anyhow::{bail, Result};
use berth_client::engine::NetworkOptions;
use clap::Args;

use crate::cli::flags::key_values;
use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Driver to manage the Network: bridge or macvlan
    #[arg(short, long, default_value = "bridge")]
    driver: String,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long)]
    subnet: Vec<String>,
    /// IPv4 Gateway for the master subnet
    #[arg(long)]
    gateway: Vec<String>,
    /// Allocate container ip from a sub-range
    #[arg(long)]
    ip_range: Vec<String>,
    /// Restrict external access to the network
    #[arg(long)]
    internal: bool,
    /// Enable or disable IPv4 address assignment (--ipv4=false with --ipv6: an IPv6-only
    /// network)
    #[arg(long, default_value = "true", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    ipv4: bool,
    /// Enable or disable IPv6 address assignment (an IPv6 --subnet, or a /64 of a unique
    /// local /48 when none is given)
    #[arg(long, default_value = "false", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    ipv6: bool,
    /// Set metadata on a network
    #[arg(long, value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// Set driver specific options (com.docker.network.bridge.name=NAME for bridge,
    /// parent=IFACE for macvlan)
    #[arg(short, long = "opt", value_name = "KEY=VALUE")]
    opt: Vec<String>,
    name: String,
}

/// At most one of a flag berth has one of per network.
fn one(values: &[String], flag: &str) -> Result<Option<String>> {
    match values {
        [] => Ok(None),
        [v] => Ok(Some(v.clone())),
        _ => bail!(
            "--{flag} is given {} times: a berth network has one IPv4 and one IPv6 subnet",
            values.len()
        ),
    }
}

pub fn run(g: &Globals, a: CreateArgs) -> Result<i32> {
    let e = g.engine()?;
    // One IPv4 and one IPv6 subnet (and gateway), told apart as docker does: by a colon.
    let (subnet6, subnet): (Vec<String>, Vec<String>) =
        a.subnet.iter().cloned().partition(|s| s.contains(':'));
    let (gateway6, gateway): (Vec<String>, Vec<String>) =
        a.gateway.iter().cloned().partition(|s| s.contains(':'));
    let r = e.create_network(&NetworkOptions {
        name: a.name.clone(),
        driver: Some(a.driver.clone()),
        subnet: one(&subnet, "subnet")?,
        gateway: one(&gateway, "gateway")?,
        ip_range: one(&a.ip_range, "ip-range")?,
        internal: a.internal,
        labels: key_values(&a.label, "label")?,
        options: key_values(&a.opt, "option")?,
        ipv6: a.ipv6,
        no_ipv4: !a.ipv4,
        subnet6: one(&subnet6, "subnet")?,
        gateway6: one(&gateway6, "gateway")?,
    })?;
    println!("{}", r.id);
    Ok(0)
}
