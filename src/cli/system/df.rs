//! `berth system df`: disk used by images, containers, volumes and the build cache, and what
//! is reclaimable.

use anyhow::Result;
use berth_client::engine::Engine;
use berth_client::images::ImageStore;
use clap::Args;
use serde_json::json;

use crate::cli::format::{human_size4, print_list, Schema};

#[derive(Args)]
pub struct DfArgs {
    /// Format output using a Go template
    #[arg(long)]
    format: Option<String>,
}

pub fn run(store: &ImageStore, a: DfArgs) -> Result<i32> {
    let engine = Engine::with_images(store.clone())?;
    let u = store.disk_usage(&engine.images_in_use()?)?;
    let c = engine.disk_usage()?;
    // The build cache's layers; what no image shares is what `builder prune -a` frees.
    let (records, cache_size, cache_own) = store.cache_usage()?;
    let pct = |r: u64, t: u64| (r * 100).checked_div(t).unwrap_or(0);
    let values = vec![
        json!({"Type": "Images", "TotalCount": u.images.to_string(), "Active": u.active.to_string(),
            "Size": human_size4(u.size), "Reclaimable": format!("{} ({}%)", human_size4(u.reclaimable), pct(u.reclaimable, u.size))}),
        json!({"Type": "Containers", "TotalCount": c.containers.to_string(), "Active": c.active.to_string(),
            "Size": human_size4(c.size), "Reclaimable": format!("{} ({}%)", human_size4(c.reclaimable), pct(c.reclaimable, c.size))}),
        json!({"Type": "Local Volumes", "TotalCount": c.volumes.to_string(), "Active": c.active_volumes.to_string(),
            "Size": human_size4(c.volume_size), "Reclaimable": format!("{} ({}%)", human_size4(c.volume_reclaimable), pct(c.volume_reclaimable, c.volume_size))}),
        json!({"Type": "Build Cache", "TotalCount": records.to_string(), "Active": "0",
            "Size": human_size4(cache_size), "Reclaimable": human_size4(cache_own)}),
    ];
    let default = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}";
    let headers = json!({"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"});
    print_list(a.format.as_deref(), default, &headers, &values, &ROW)
}

/// docker's row of `system df` (the first section's type: its errors come first).
pub const ROW: Schema = Schema {
    root: "*formatter.diskUsageImagesContext",
    types: &[],
    raw_fallback: false,
};
