//! `berth system prune`: stopped containers, unused networks, (`--volumes`) unused volumes,
//! dangling (`-a`: unused) images and the build cache, one after the other as docker does,
//! each printing its section, then the total reclaimed. Images and the build cache give
//! their blobs back through the store's one collector, as `rmi` and `gc` do.

use anyhow::Result;
use clap::Args;

use crate::cli::flags::{confirm, PruneFilters};
use crate::cli::format::human_size4;
use crate::cli::globals::Globals;
use crate::cli::{builder, container, image, network, volume};

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused images not just dangling ones (and all build cache)
    #[arg(short, long)]
    all: bool,
    /// Provide filter values (e.g. 'label=<key>=<value>', 'label!=<key>', 'until=24h')
    #[arg(long, value_name = "FILTER")]
    filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
    /// Prune volumes
    #[arg(long)]
    volumes: bool,
}

/// docker's prompt: what goes, and the filters that narrow it (sorted as docker sorts them).
fn warning(a: &PruneArgs) -> String {
    let mut items = vec![
        "all stopped containers",
        "all networks not used by at least one container",
    ];
    if a.volumes {
        items.push("all volumes not used by at least one container");
    }
    items.push(if a.all {
        "all images without at least one container associated to them"
    } else {
        "all dangling images"
    });
    items.push(if a.all {
        "all build cache"
    } else {
        "all dangling build cache"
    });
    let mut text = String::from("WARNING! This will remove:\n");
    for i in items {
        text.push_str(&format!("  - {i}\n"));
    }
    if !a.filter.is_empty() {
        let mut filters = a.filter.clone();
        filters.sort();
        text.push_str("\n  Items to be pruned will be filtered with:\n");
        for f in filters {
            text.push_str(&format!("  - {f}\n"));
        }
    }
    text
}

pub fn run(g: &Globals, a: PruneArgs) -> Result<i32> {
    let filters = PruneFilters::parse(&a.filter)?;
    if a.volumes && filters.until.is_some() {
        eprintln!("ERROR: The \"until\" filter is not supported with \"--volumes\"");
        return Ok(1);
    }
    let store = g.open_store()?;
    let e = g.engine_over(store.clone())?;
    if !a.force && !confirm(&warning(&a))? {
        return Ok(0);
    }
    let mut reclaimed = container::prune::prune(&e, &filters)?;
    network::prune::prune(&e, &filters)?;
    if a.volumes {
        reclaimed += volume::prune::prune(&e, &filters)?;
    }
    reclaimed += image::prune::prune(&store, a.all, &filters)?;
    reclaimed += builder::prune::prune(&store, a.all, &filters)?;
    println!("Total reclaimed space: {}", human_size4(reclaimed));
    Ok(0)
}
