//! `berth network connect` and `disconnect`: a container on one more network, or one less;
//! at once when it runs (an interface more or less), at its next start otherwise.

use anyhow::Result;
use berth_client::engine::EndpointConfig;
use clap::Args;

use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// Add network-scoped alias for the container
    #[arg(long)]
    alias: Vec<String>,
    /// IPv4 address (e.g., "172.30.100.104")
    #[arg(long)]
    ip: Option<String>,
    /// IPv6 address (e.g., "2001:db8::33")
    #[arg(long)]
    ip6: Option<String>,
    network: String,
    container: String,
}

#[derive(Args, Debug)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short, long)]
    force: bool,
    network: String,
    container: String,
}

pub fn connect(g: &Globals, a: ConnectArgs) -> Result<i32> {
    let e = g.engine()?;
    let rec = e.resolve(&a.container)?;
    e.connect_network(
        &rec,
        EndpointConfig {
            network: a.network,
            aliases: a.alias,
            ipv4_address: a.ip.unwrap_or_default(),
            ipv6_address: a.ip6.unwrap_or_default(),
            ..EndpointConfig::default()
        },
    )?;
    Ok(0)
}

pub fn disconnect(g: &Globals, a: DisconnectArgs) -> Result<i32> {
    let e = g.engine()?;
    let rec = e.resolve(&a.container)?;
    e.disconnect_network(&rec, &a.network, a.force)?;
    Ok(0)
}
