//! `berth image inspect`: `berth inspect --type image`.

use crate::cli::format::Schema;
use anyhow::Result;
use berth_client::images::ImageStore;
use clap::Args;

use crate::cli::system::inspect::{self, Kind};

#[derive(Args)]
pub struct InspectArgs {
    /// Format output using a Go template or 'json'
    #[arg(short, long)]
    format: Option<String>,
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

pub fn run(store: &ImageStore, a: InspectArgs) -> Result<i32> {
    inspect::inspect(store, &a.images, Kind::Image, a.format.as_deref(), false)
}

/// docker's image document; a run that fails on its types runs again on its JSON.
pub const DOC: Schema = Schema {
    root: "image.InspectResponse",
    types: &[],
    raw_fallback: true,
};
