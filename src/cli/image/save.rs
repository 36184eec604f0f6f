//! `berth save`: images as a tar archive (docker's format, with an OCI layout), to a file or
//! stdout.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use berth_client::images::ImageStore;
use clap::Args;

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
    match &a.output {
        Some(path) => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let tmp = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("creating {}", path.display()))?;
            let file = tmp.reopen()?;
            store.save(&a.images, std::io::BufWriter::new(file)).await?;
            tmp.persist(path)
                .map_err(|e| e.error)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => {
            if std::io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            store
                .save(&a.images, std::io::BufWriter::new(std::io::stdout()))
                .await?;
        }
    }
    Ok(0)
}
