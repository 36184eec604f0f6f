//! `berth port`: a container's published ports, or the host side of one.

use anyhow::{anyhow, bail, Result};
use clap::Args;

use crate::cli::format::ports::natural;
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
    let mut lines: Vec<String> = ports
        .iter()
        .filter_map(|p| {
            let host = p.host_address();
            match &wanted {
                None => Some(format!("{} -> {host}", p.key())),
                Some(w) if *w == p.key() => Some(host),
                Some(_) => None,
            }
        })
        .collect();
    if let (Some(w), true) = (&wanted, lines.is_empty()) {
        bail!("No public port '{w}' published for {}", a.container);
    }
    // docker's order: natural, whatever order the ports were published in.
    lines.sort_by(|a, b| natural(a, b));
    for l in lines {
        println!("{l}");
    }
    Ok(0)
}
