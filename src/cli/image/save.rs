//! `berth save`: images as a tar archive (docker's format, with an OCI layout), to a file or
//! stdout.

use std::path::PathBuf;

use anyhow::Result;
use berth_client::images::ImageStore;
use clap::Args;

use crate::cli::flags::TarOutput;
use crate::cli::globals::block_on;

#[derive(Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    output: Option<PathBuf>,
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

pub fn run(store: &ImageStore, a: SaveArgs) -> Result<i32> {
    block_on(save(store, a))
}

async fn save(store: &ImageStore, a: SaveArgs) -> Result<i32> {
    let out = TarOutput::open(a.output.as_deref())?;
    store.save(&a.images, out.writer()?).await?;
    out.finish()?;
    Ok(0)
}
