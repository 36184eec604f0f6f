//! `berth inspect`: docker's document for containers or images (a container first, as docker
//! looks), `--type` to look for one kind only. `image inspect` is this with the kind set.

use anyhow::{anyhow, bail, Result};
use berth_client::engine::Engine;
use berth_client::images::ImageStore;
use clap::Args;

use crate::cli::container::inspect::inspect_value;
use crate::cli::exit::one_line;
use crate::cli::format::InspectFormat;
use crate::cli::globals::block_on;
use crate::cli::{container, image};

#[derive(Args)]
pub struct InspectArgs {
    /// Format output using a Go template or 'json'
    #[arg(short, long)]
    format: Option<String>,
    /// Return JSON for the specified type only (container or image)
    #[arg(long = "type", value_name = "TYPE")]
    kind: Option<String>,
    /// Display total file sizes if the type is container
    #[arg(short, long)]
    size: bool,
    #[arg(required = true, value_name = "NAME|ID")]
    names: Vec<String>,
}

/// What to look for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Any,
    Container,
    Image,
}

pub fn run(store: &ImageStore, a: InspectArgs) -> Result<i32> {
    let kind = match a.kind.as_deref().unwrap_or("") {
        "" => Kind::Any,
        "container" => Kind::Container,
        "image" => Kind::Image,
        other => bail!("\"{other}\" is not a valid value for --type (container or image)"),
    };
    inspect(store, &a.names, kind, a.format.as_deref(), a.size)
}

/// Prints the documents of `names`; 1 when one was not found (after the others).
pub fn inspect(
    store: &ImageStore,
    names: &[String],
    kind: Kind,
    format: Option<&str>,
    size: bool,
) -> Result<i32> {
    let format = InspectFormat::parse(format)?;
    block_on(async {
        let engine = Engine::with_images(store.clone())?;
        let (mut out, mut schemas) = (Vec::new(), Vec::new());
        let mut code = 0;
        for name in names {
            // docker looks for a container first, then an image.
            if kind != Kind::Image {
                if let Ok(rec) = engine.resolve(name) {
                    out.push(inspect_value(&engine, &rec, size));
                    schemas.push(&container::inspect::DOC);
                    continue;
                }
            }
            let found = match kind {
                Kind::Container => Err(anyhow!("No such container: {name}")),
                Kind::Image => store.resolve(name).map_err(anyhow::Error::from),
                // docker's word when it looked for every kind of object.
                Kind::Any => store
                    .resolve(name)
                    .map_err(|_| anyhow!("No such object: {name}")),
            };
            match found {
                Ok(i) => {
                    out.push(store.inspect(&i).await?);
                    schemas.push(&image::inspect::DOC);
                }
                Err(e) => {
                    eprintln!("Error: {}", one_line(&e));
                    code = 1;
                }
            }
        }
        format.print_each(&out, |i| schemas[i])?;
        Ok(code)
    })
}
