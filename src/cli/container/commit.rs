//! `berth commit`: a new image from a container's changes.

use anyhow::Result;
use berth_client::engine::CommitOptions;
use berth_client::reference::ImageRef;
use clap::Args;

use crate::cli::globals::{block_on, Globals};

#[derive(Args, Debug)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short, long)]
    author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long = "change")]
    change: Vec<String>,
    /// Commit message
    #[arg(short, long)]
    message: Option<String>,
    /// Pause container during commit
    #[arg(short, long, default_value = "true", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pause: bool,
    container: String,
    /// REPOSITORY[:TAG]
    reference: Option<String>,
}

pub fn run(g: &Globals, a: CommitArgs) -> Result<i32> {
    let e = g.engine()?;
    let rec = e.resolve(&a.container)?;
    let options = CommitOptions {
        reference: a.reference.as_deref().map(ImageRef::parse).transpose()?,
        author: a.author,
        message: a.message,
        changes: a.change,
        pause: a.pause,
    };
    let id = block_on(async { Ok(e.commit(&rec, &options).await?) })?;
    println!("{id}");
    Ok(0)
}
