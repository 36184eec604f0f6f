//! `berth push`: an image (or every tag of a repository, `-a`) to a registry.

use anyhow::{bail, Result};
use berth_client::images::ImageStore;
use berth_client::reference::ImageRef;
use berth_client::remote::PushOptions;
use clap::Args;

use super::progress::CliProgress;
use crate::cli::globals::block_on;
use crate::cli::remote::remote;

#[derive(Args)]
pub struct PushArgs {
    /// Push all tags of the repository
    #[arg(short = 'a', long = "all-tags")]
    all_tags: bool,
    /// Suppress verbose output
    #[arg(short, long)]
    quiet: bool,
    /// NAME[:TAG]
    name: String,
}

pub fn run(store: &ImageStore, a: PushArgs) -> Result<i32> {
    block_on(push(store, a))
}

async fn push(store: &ImageStore, a: PushArgs) -> Result<i32> {
    let reference = ImageRef::parse(&a.name)?;
    if reference.digest().is_some() {
        bail!("cannot push a digest reference");
    }
    let (remote, config) = remote()?;
    let refs: Vec<ImageRef> = if a.all_tags {
        let name = reference.name();
        store
            .list()?
            .iter()
            .flat_map(|i| i.tags.clone())
            .filter_map(|t| ImageRef::parse(&t).ok())
            .filter(|r| r.name() == name)
            .collect()
    } else {
        vec![reference.clone()]
    };
    if refs.is_empty() {
        bail!(
            "An image does not exist locally with the tag: {}",
            reference.familiar_name()
        );
    }
    if !a.quiet {
        println!("The push refers to repository [{}]", reference.name());
    }
    let options = PushOptions {
        chunk_size: config.push_chunk_size,
    };
    for r in refs {
        if store.resolve(&r.to_string()).is_err() {
            bail!(
                "An image does not exist locally with the tag: {}",
                r.familiar()
            );
        }
        let progress = CliProgress::new(a.quiet);
        let res = store
            .push(
                &remote,
                &r,
                options,
                config.max_concurrent_uploads,
                progress.clone(),
            )
            .await;
        progress.finish();
        let res = res?;
        if a.quiet {
            println!("{r}");
        } else {
            println!("{}: digest: {} size: {}", res.tag, res.digest, res.size);
        }
    }
    Ok(0)
}
