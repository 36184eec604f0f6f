//! `berth rmi` (`image rm`): untag images and delete what no tag or container needs.

use std::collections::BTreeMap;

use anyhow::Result;
use berth_client::engine::Engine;
use berth_client::images::{ImageStore, Removal, RemoveOptions};
use berth_storage::Digest;
use clap::Args;

use crate::cli::exit::one_line;
use crate::cli::globals::block_on;

#[derive(Args)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short, long)]
    force: bool,
    /// Do not delete untagged parents
    #[arg(long)]
    no_prune: bool,
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

pub fn run(store: &ImageStore, a: RmiArgs) -> Result<i32> {
    block_on(rmi(store, a))
}

async fn rmi(store: &ImageStore, a: RmiArgs) -> Result<i32> {
    let mut code = 0;
    let in_use = images_in_use(store)?;
    for name in &a.images {
        let options = RemoveOptions {
            force: a.force,
            prune_parents: !a.no_prune,
            in_use: in_use.clone(),
        };
        match store.remove(name, options).await {
            Ok(actions) => {
                for act in actions {
                    match act {
                        Removal::Untagged(n) => println!("Untagged: {n}"),
                        Removal::Deleted(d) => println!("Deleted: {d}"),
                    }
                }
            }
            Err(e) => {
                eprintln!("Error: {}", one_line(&e.into()));
                code = 1;
            }
        }
    }
    Ok(code)
}

/// Image ids that containers use, each with one such container's short id.
pub fn images_in_use(store: &ImageStore) -> Result<BTreeMap<Digest, String>> {
    Ok(Engine::with_images(store.clone())?.images_in_use()?)
}
