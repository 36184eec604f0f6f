//! `berth builder prune`: remove the build cache's records (those whose layer no image
//! uses; `-a`: all of them) and the layers nothing else needs.

use anyhow::Result;
use berth_client::images::ImageStore;
use clap::Args;

use crate::cli::flags::confirm;
use crate::cli::format::human_size;
use crate::cli::globals::block_on;

#[derive(Args)]
pub struct PruneArgs {
    /// Remove all unused build cache, not just dangling ones
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

pub fn run(store: &ImageStore, a: PruneArgs) -> Result<i32> {
    if !a.force {
        let warning = if a.all {
            "WARNING! This will remove all build cache."
        } else {
            "WARNING! This will remove all dangling build cache."
        };
        if !confirm(warning)? {
            return Ok(0);
        }
    }
    let pruned = block_on(async { Ok(store.cache_prune(a.all).await?) })?;
    if !pruned.removed.is_empty() {
        println!("Deleted build cache objects:");
        for k in &pruned.removed {
            println!("{}", &k.hex()[..25]);
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(pruned.reclaimed));
    Ok(0)
}
