//! `berth history`: an image's layers and the steps that made them.

use anyhow::Result;
use berth_client::images::ImageStore;
use clap::Args;
use serde_json::{json, Value};

use crate::cli::format::{ellipsis, human_ago, human_size, print_list, rfc3339_seconds, Schema};
use crate::cli::globals::block_on;

#[derive(Args)]
pub struct HistoryArgs {
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set)]
    human: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// Format output using a Go template
    #[arg(long)]
    format: Option<String>,
    image: String,
}

pub fn run(store: &ImageStore, a: HistoryArgs) -> Result<i32> {
    block_on(history(store, a))
}

async fn history(store: &ImageStore, a: HistoryArgs) -> Result<i32> {
    let image = store.resolve(&a.image)?;
    let entries = store.history(&image).await?;
    let values: Vec<Value> = entries
        .iter()
        .map(|e| {
            let id = match &e.id {
                Some(d) if a.no_trunc => d.to_string(),
                Some(d) => d.hex()[..12].to_string(),
                None => "<missing>".into(),
            };
            let created_by = if a.no_trunc {
                e.created_by.clone()
            } else {
                ellipsis(&e.created_by, 45)
            };
            json!({
                "ID": id,
                "CreatedSince": if a.human { human_ago(e.created.as_deref()) } else { rfc3339_seconds(e.created.as_deref()) },
                "CreatedAt": rfc3339_seconds(e.created.as_deref()),
                "CreatedBy": created_by,
                "Size": if a.human { human_size(e.size) } else { e.size.to_string() },
                "Comment": e.comment,
            })
        })
        .collect();
    if a.quiet {
        for v in &values {
            println!("{}", v["ID"].as_str().unwrap_or_default());
        }
        return Ok(0);
    }
    let default = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";
    let headers = json!({"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
        "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"});
    print_list(a.format.as_deref(), default, &headers, &values, &ROW)
}

/// docker's row of `history`.
pub const ROW: Schema = Schema {
    root: "*image.historyContext",
    types: &[],
    raw_fallback: false,
};
