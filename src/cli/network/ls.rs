//! `berth network ls`.

use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};

use super::predefined::{network_id, NETWORKS};
use crate::cli::format::print_list;

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

pub fn run(a: LsArgs) -> Result<i32> {
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
    let default = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}";
    print_list(a.format.as_deref(), default, &headers, &rows)
}
