//! `berth load`: images from a tar archive (docker's or OCI), from a file or stdin.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use berth_client::images::{familiar_of, ImageStore};
use clap::Args;

use crate::cli::globals::block_on;

#[derive(Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short, long)]
    input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short, long)]
    quiet: bool,
}

pub fn run(store: &ImageStore, a: LoadArgs) -> Result<i32> {
    block_on(load(store, a))
}

async fn load(store: &ImageStore, a: LoadArgs) -> Result<i32> {
    let loaded = match &a.input {
        Some(p) => {
            let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
            store.load(f).await?
        }
        None => {
            if std::io::stdin().is_terminal() {
                bail!("requested load from stdin, but stdin is empty");
            }
            store.load(std::io::stdin()).await?
        }
    };
    if !a.quiet {
        for l in loaded {
            if l.names.is_empty() {
                println!("Loaded image ID: {}", l.id);
            }
            for n in l.names {
                println!("Loaded image: {}", familiar_of(&n));
            }
        }
    }
    Ok(0)
}
