//! `berth pull`: an image (or every tag, `-a`) from a registry into the local store.

use anyhow::{bail, Context, Result};
use berth_client::images::{ImageRecord, ImageStore, PullOptions};
use berth_client::reference::ImageRef;
use clap::Args;

use super::progress::CliProgress;
use crate::cli::globals::block_on;
use crate::cli::remote::{platform, remote};

#[derive(Args)]
pub struct PullArgs {
    /// Download all tagged images in the repository
    #[arg(short = 'a', long = "all-tags")]
    all_tags: bool,
    /// Set platform if server is multi-platform capable (os/arch[/variant])
    #[arg(long)]
    platform: Option<String>,
    /// Suppress verbose output
    #[arg(short, long)]
    quiet: bool,
    /// NAME[:TAG|@DIGEST]
    name: String,
}

pub fn run(store: &ImageStore, a: PullArgs) -> Result<i32> {
    block_on(pull(store, a))
}

async fn pull(store: &ImageStore, a: PullArgs) -> Result<i32> {
    let reference = ImageRef::parse(&a.name)?;
    if a.all_tags
        && (reference.digest().is_some()
            || a.name.rsplit('/').next().is_some_and(|l| l.contains(':')))
    {
        bail!("tag can't be used with --all-tags/-a");
    }
    let (remote, config) = remote()?;
    let options = PullOptions {
        platform: platform(&a.platform)?,
        concurrency: config.max_concurrent_downloads,
    };
    let refs: Vec<ImageRef> = if a.all_tags {
        let mut tags = remote
            .tags(reference.registry(), reference.repository())
            .await?;
        tags.sort();
        if !a.quiet {
            println!("Pulling from {}", reference.repository());
        }
        tags.iter()
            .filter_map(|t| t.parse().ok())
            .map(|t| reference.with_tag(t))
            .collect()
    } else {
        if !a.quiet && reference.digest().is_none() && !has_explicit_tag(&a.name) {
            println!("Using default tag: latest");
        }
        vec![reference.clone()]
    };
    let progress = CliProgress::new(a.quiet);
    let mut any_new = false;
    for r in &refs {
        if !a.quiet && !a.all_tags {
            let what = r
                .tag()
                .map(|t| t.to_string())
                .unwrap_or_else(|| r.digest().map(|d| d.to_string()).unwrap_or_default());
            println!("{what}: Pulling from {}", r.repository());
        }
        let res = store.pull(&remote, r, &options, progress.clone()).await;
        progress.finish();
        let res = res?;
        any_new |= res.updated;
        if !a.quiet && !a.all_tags {
            println!("Digest: {}", res.digest);
            if res.updated {
                println!("Status: Downloaded newer image for {}", r.familiar());
            } else {
                println!("Status: Image is up to date for {}", r.familiar());
            }
        }
    }
    if a.all_tags {
        if !a.quiet {
            if any_new {
                println!(
                    "Status: Downloaded newer images for {}",
                    reference.familiar_name()
                );
            } else {
                println!(
                    "Status: Image is up to date for {}",
                    reference.familiar_name()
                );
            }
        }
        println!("{}", reference.name());
    } else {
        println!("{reference}");
    }
    Ok(0)
}

/// Whether the person wrote a tag (so docker's "Using default tag" is not printed).
fn has_explicit_tag(s: &str) -> bool {
    s.rsplit('/').next().is_some_and(|last| last.contains(':'))
}

/// `run`/`create` of an image not in the store: docker's "Unable to find image" then a
/// pull, all on stderr (stdout is the container's).
pub(crate) fn pull_missing(
    store: &ImageStore,
    name: &str,
    wanted: &Option<String>,
    quiet: bool,
    announce: bool,
) -> Result<ImageRecord> {
    let reference = ImageRef::parse(name)?;
    if announce && !quiet {
        eprintln!("Unable to find image '{}' locally", reference.familiar());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let res = rt.block_on(async {
        let (remote, config) = remote()?;
        let options = PullOptions {
            platform: platform(wanted)?,
            concurrency: config.max_concurrent_downloads,
        };
        if !quiet {
            let what = reference.tag().map(|t| t.to_string()).unwrap_or_else(|| {
                reference
                    .digest()
                    .map(|d| d.to_string())
                    .unwrap_or_default()
            });
            eprintln!("{what}: Pulling from {}", reference.repository());
        }
        let res = store
            .pull(&remote, &reference, &options, CliProgress::new(true))
            .await?;
        if !quiet {
            eprintln!("Digest: {}", res.digest);
            eprintln!(
                "Status: Downloaded newer image for {}",
                reference.familiar()
            );
        }
        anyhow::Ok(())
    });
    drop(rt);
    res?;
    Ok(store.resolve(name)?)
}
