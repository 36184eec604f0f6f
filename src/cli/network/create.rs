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
            "--{flag} is given {} times: a berth network has one IPv4 subnet",
            values.len()
        ),
    }
}

pub fn run(g: &Globals, a: CreateArgs) -> Result<i32> {
    let e = g.engine()?;
    let r = e.create_network(&NetworkOptions {
        name: a.name.clone(),
        driver: Some(a.driver.clone()),
        subnet: one(&a.subnet, "subnet")?,
        gateway: one(&a.gateway, "gateway")?,
        ip_range: one(&a.ip_range, "ip-range")?,
        internal: a.internal,
        labels: key_values(&a.label, "label")?,
        options: key_values(&a.opt, "option")?,
    })?;
    println!("{}", r.id);
    Ok(0)
}
