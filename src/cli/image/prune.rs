//! `berth image prune`: remove dangling images (`-a`: every image no container uses).

use std::collections::BTreeMap;

use anyhow::Result;
use berth_client::images::{ImageRecord, ImageStore, Removal};
use clap::Args;

use super::rm::images_in_use;
use crate::cli::flags::{confirm_and_prune, PruneFilters};
use crate::cli::format::print_deleted;
use crate::cli::globals::block_on;

#[derive(Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    all: bool,
    /// Provide filter values (e.g. 'until=<timestamp>', 'label=KEY[=VALUE]',
    /// 'label!=KEY[=VALUE]')
    #[arg(long, value_name = "FILTER")]
    filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

pub fn run(store: &ImageStore, a: PruneArgs) -> Result<i32> {
    let filters = PruneFilters::parse(&a.filter)?;
    let warning = if a.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    confirm_and_prune(a.force, warning, || prune(store, a.all, &filters))
}

/// Removes the dangling (with `all`: unused) images the filters admit, prints docker's
/// `Deleted Images:` section and returns the bytes reclaimed. Blobs go through the store's
/// collector, as `rmi`'s do.
pub fn prune(store: &ImageStore, all: bool, filters: &PruneFilters) -> Result<u64> {
    let labels = |image: &ImageRecord| -> BTreeMap<String, String> {
        if !filters.has_labels() {
            return BTreeMap::new();
        }
        let config = store.config_sync(image).unwrap_or_default();
        config["config"]["Labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    };
    let in_use = images_in_use(store)?;
    let (removed, reclaimed) = block_on(async {
        Ok(store
            .prune(all, &in_use, |i| {
                filters.admit(i.created.as_deref(), &labels(i))
            })
            .await?)
    })?;
    let lines: Vec<String> = removed
        .iter()
        .map(|r| match r {
            Removal::Untagged(n) => format!("untagged: {n}"),
            Removal::Deleted(d) => format!("deleted: {d}"),
        })
        .collect();
    print_deleted("Deleted Images:", &lines);
    Ok(reclaimed)
}
