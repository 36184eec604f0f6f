//! `berth import`: a filesystem tarball as a one-layer image.

use anyhow::{Context, Result};
use berth_client::images::{ImageStore, ImportOptions};
use berth_client::reference::ImageRef;
use clap::Args;

use crate::cli::globals::block_on;
use crate::cli::remote::platform;

#[derive(Args)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long = "change")]
    change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short, long)]
    message: Option<String>,
    /// Set platform (os/arch[/variant])
    #[arg(long)]
    platform: Option<String>,
    /// file or - for STDIN
    file: String,
    /// REPOSITORY[:TAG]
    reference: Option<String>,
}

pub fn run(store: &ImageStore, a: ImportArgs) -> Result<i32> {
    block_on(import(store, a))
}

async fn import(store: &ImageStore, a: ImportArgs) -> Result<i32> {
    let reference = a.reference.as_deref().map(ImageRef::parse).transpose()?;
    let options = ImportOptions {
        changes: a.change.clone(),
        message: a.message.clone(),
        platform: platform(&a.platform)?,
        source: a.file.clone(),
    };
    let id = if a.file == "-" {
        store
            .import(std::io::stdin(), reference.as_ref(), &options)
            .await?
    } else {
        let f = std::fs::File::open(&a.file).with_context(|| format!("opening {}", a.file))?;
        store.import(f, reference.as_ref(), &options).await?
    };
    println!("{id}");
    Ok(0)
}
