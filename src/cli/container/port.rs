//! `berth port`: a container's published ports, or the host side of one.

use anyhow::{anyhow, bail, Result};
use clap::Args;

use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct PortArgs {
    /// The container's name or id
    container: String,
    /// The container port to show: PORT[/PROTO]
    #[arg(value_name = "PRIVATE_PORT[/PROTO]")]
    port: Option<String>,
}

/// `port`: `80/tcp -> 0.0.0.0:8080` per published port, or the host side of one.
pub fn run(g: &Globals, a: PortArgs) -> Result<i32> {
    let e = g.engine()?;
    let rec = e.resolve(&a.container)?;
    let ports = e
        .network_state(&rec, e.state(&rec).status)
        .map(|n| n.ports)
        .unwrap_or_default();
    let wanted = match &a.port {
        None => None,
        Some(p) => {
            let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            let port: u16 = port
                .parse()
                .map_err(|_| anyhow!("invalid port {p:?}: PORT[/tcp|udp]"))?;
            Some(format!("{port}/{proto}"))
        }
    };
    let mut found = false;
    for p in &ports {
        let host = p.host_address();
        match &wanted {
            None => println!("{} -> {host}", p.key()),
            Some(w) if *w == p.key() => println!("{host}"),
            Some(_) => continue,
        }
        found = true;
    }
    if let (Some(w), false) = (&wanted, found) {
        bail!("No public port '{w}' published for {}", a.container);
    }
    Ok(0)
}
