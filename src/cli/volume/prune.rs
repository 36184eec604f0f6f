//! `berth volume prune`: remove every local volume no container uses (docker 20.10's rule:
//! named ones too), with `--filter label=…`/`label!=…`.

use anyhow::{bail, Result};
use berth_client::engine::Engine;
use clap::Args;

use crate::cli::flags::{confirm, PruneFilters};
use crate::cli::format::{human_size4, print_deleted};
use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Provide filter values (e.g. 'label=<label>', 'label!=<label>')
    #[arg(long, value_name = "FILTER")]
    filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

/// Removes the unused volumes the filters admit (volumes know no `until`); prints docker's
/// `Deleted Volumes:` section and returns the bytes reclaimed.
pub fn prune(e: &Engine, filters: &PruneFilters) -> Result<u64> {
    if filters.until.is_some() {
        bail!("Invalid filter 'until'");
    }
    let (removed, bytes) = e.prune_volumes(|v| !filters.admit(None, &v.labels))?;
    print_deleted("Deleted Volumes:", &removed);
    Ok(bytes)
}

pub fn run(g: &Globals, a: PruneArgs) -> Result<i32> {
    let filters = PruneFilters::parse(&a.filter)?;
    if filters.until.is_some() {
        bail!("Invalid filter 'until'");
    }
    let e = g.engine()?;
    let warning = "WARNING! This will remove all local volumes not used by at least one container.";
    let bytes = if a.force || confirm(warning)? {
        prune(&e, &filters)?
    } else {
        0
    };
    println!("Total reclaimed space: {}", human_size4(bytes));
    Ok(0)
}
