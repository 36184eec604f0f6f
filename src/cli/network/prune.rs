//! `berth network prune`: remove the user-defined networks no container names.

use anyhow::Result;
use berth_client::engine::Engine;
use clap::Args;

use crate::cli::flags::{confirm, PruneFilters};
use crate::cli::format::print_deleted;
use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Provide filter values (e.g. "until=24h", "label=KEY[=VALUE]", "label!=KEY[=VALUE]")
    #[arg(long, value_name = "FILTER")]
    filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

/// Removes the unused networks the filters admit and prints docker's `Deleted Networks:`
/// section.
pub fn prune(e: &Engine, filters: &PruneFilters) -> Result<()> {
    let removed = e.prune_networks(|r| !filters.admit(Some(&r.created), &r.labels))?;
    print_deleted("Deleted Networks:", &removed);
    Ok(())
}

pub fn run(g: &Globals, a: PruneArgs) -> Result<i32> {
    let filters = PruneFilters::parse(&a.filter)?;
    let e = g.engine()?;
    if !a.force
        && !confirm(
            "WARNING! This will remove all custom networks not used by at least one container.",
        )?
    {
        return Ok(0);
    }
    prune(&e, &filters)?;
    Ok(0)
}
