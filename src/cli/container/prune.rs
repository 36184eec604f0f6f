//! `berth container prune`: remove every container that is not running.

use anyhow::Result;
use berth_client::engine::Status;
use clap::Args;

use crate::cli::flags::confirm;
use crate::cli::format::human_size;
use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

pub fn run(g: &Globals, a: PruneArgs) -> Result<i32> {
    let e = g.engine()?;
    if !a.force && !confirm("WARNING! This will remove all stopped containers.")? {
        return Ok(0);
    }
    let mut deleted = Vec::new();
    let mut reclaimed = 0;
    for rec in e.list()? {
        let st = e.state(&rec);
        // One that waits to restart is not stopped (docker's Running).
        if !st.running() && matches!(st.status, Status::Exited | Status::Created | Status::Dead) {
            let size = e.size_rw(&rec);
            e.remove(&rec, false, false)?;
            reclaimed += size;
            deleted.push(rec.id);
        }
    }
    if !deleted.is_empty() {
        println!("Deleted Containers:");
        for id in &deleted {
            println!("{id}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(reclaimed));
    Ok(0)
}
