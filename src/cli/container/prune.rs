//! `berth container prune`: remove every container that is not running.

use anyhow::Result;
use berth_client::engine::Engine;
use clap::Args;

use crate::cli::flags::{confirm_and_prune, PruneFilters};
use crate::cli::format::print_deleted;
use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Provide filter values (e.g. 'until=<timestamp>', 'label=KEY[=VALUE]',
    /// 'label!=KEY[=VALUE]')
    #[arg(long, value_name = "FILTER")]
    filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

/// Removes the stopped containers the filters admit, prints docker's `Deleted Containers:`
/// section and returns the bytes reclaimed (their writable layers).
pub fn prune(e: &Engine, filters: &PruneFilters) -> Result<u64> {
    let (deleted, reclaimed) =
        e.prune_containers(|rec| filters.admit(Some(&rec.created), &rec.config.labels))?;
    print_deleted("Deleted Containers:", &deleted);
    Ok(reclaimed)
}

pub fn run(g: &Globals, a: PruneArgs) -> Result<i32> {
    let filters = PruneFilters::parse(&a.filter)?;
    let e = g.engine()?;
    confirm_and_prune(
        a.force,
        "WARNING! This will remove all stopped containers.",
        || prune(&e, &filters),
    )
}
