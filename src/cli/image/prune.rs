//! `berth image prune`: remove dangling images (`-a`: every image no container uses).

use anyhow::Result;
use berth_client::images::{ImageStore, Removal};
use clap::Args;

use super::rm::images_in_use;
use crate::cli::flags::confirm;
use crate::cli::format::human_size;
use crate::cli::globals::block_on;

#[derive(Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

pub fn run(store: &ImageStore, a: PruneArgs) -> Result<i32> {
    block_on(prune(store, a))
}

async fn prune(store: &ImageStore, a: PruneArgs) -> Result<i32> {
    if !a.force {
        let warning = if a.all {
            "WARNING! This will remove all images without at least one container associated to them."
        } else {
            "WARNING! This will remove all dangling images."
        };
        if !confirm(warning)? {
            return Ok(0);
        }
    }
    let (removed, reclaimed) = store.prune(a.all, &images_in_use(store)?).await?;
    if !removed.is_empty() {
        println!("Deleted Images:");
        for r in removed {
            match r {
                Removal::Untagged(n) => println!("untagged: {n}"),
                Removal::Deleted(d) => println!("deleted: {d}"),
            }
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(reclaimed));
    Ok(0)
}
