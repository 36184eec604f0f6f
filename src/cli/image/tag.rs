//! `berth tag`: another name for an image.

use anyhow::Result;
use berth_client::images::ImageStore;
use clap::Args;

use crate::cli::globals::block_on;

#[derive(Args)]
pub struct TagArgs {
    source: String,
    target: String,
}

pub fn run(store: &ImageStore, a: TagArgs) -> Result<i32> {
    block_on(async {
        store.tag(&a.source, &a.target).await?;
        Ok(0)
    })
}
