//! `berth builder prune`: remove the build cache's records (those whose layer no image
//! uses; `-a`: all of them) and the layers nothing else needs.

use std::collections::BTreeMap;

use anyhow::Result;
use berth_client::images::ImageStore;
use clap::Args;

use crate::cli::flags::{confirm_and_prune, PruneFilters};
use crate::cli::format::print_deleted;
use crate::cli::globals::block_on;

#[derive(Args)]
pub struct PruneArgs {
    /// Remove all unused build cache, not just dangling ones
    #[arg(short, long)]
    all: bool,
    /// Provide filter values (e.g. 'until=24h': cache not used since; 'label=…' matches
    /// nothing, cache records have no labels)
    #[arg(long, value_name = "FILTER")]
    filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

pub fn run(store: &ImageStore, a: PruneArgs) -> Result<i32> {
    let filters = PruneFilters::parse(&a.filter)?;
    let warning = if a.all {
        "WARNING! This will remove all build cache."
    } else {
        "WARNING! This will remove all dangling build cache."
    };
    confirm_and_prune(a.force, warning, || prune(store, a.all, &filters))
}

/// Removes the dangling (with `all`: every) cache record the filters admit (`until`: by
/// when it was last used), prints docker's `Deleted build cache objects:` section and
/// returns the bytes reclaimed. Blobs go through the store's collector.
pub fn prune(store: &ImageStore, all: bool, filters: &PruneFilters) -> Result<u64> {
    let no_labels = BTreeMap::new();
    let pruned = block_on(async {
        Ok(store
            .cache_prune(all, |r| filters.admit(Some(&r.last_used), &no_labels))
            .await?)
    })?;
    let ids: Vec<&str> = pruned.removed.iter().map(|k| &k.hex()[..25]).collect();
    print_deleted("Deleted build cache objects:", &ids);
    Ok(pruned.reclaimed)
}
