//! `berth search`: a registry's `/v1/search` (Docker Hub's, or a registry host named first).

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};

use crate::cli::format::{ellipsis, print_list, Schema};
use crate::cli::globals::block_on;
use crate::cli::remote::remote;

#[derive(Args)]
pub struct SearchArgs {
    /// Max number of search results
    #[arg(long, default_value_t = 25)]
    limit: u32,
    /// Filter output based on conditions provided (is-official=true, stars=N)
    #[arg(short, long = "filter")]
    filter: Vec<String>,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Pretty-print search using a Go template
    #[arg(long)]
    format: Option<String>,
    term: String,
}

pub fn run(a: SearchArgs) -> Result<i32> {
    block_on(search(a))
}

async fn search(a: SearchArgs) -> Result<i32> {
    let (registry, term) = match a.term.split_once('/') {
        Some((host, rest)) if host.contains(['.', ':']) || host == "localhost" => {
            (host.to_string(), rest.to_string())
        }
        _ => (
            berth_client::reference::DEFAULT_REGISTRY.to_string(),
            a.term.clone(),
        ),
    };
    let mut official: Option<bool> = None;
    let mut automated: Option<bool> = None;
    let mut stars: u64 = 0;
    for f in &a.filter {
        match f.split_once('=') {
            Some(("is-official", v)) => {
                official = Some(v.parse().with_context(|| format!("invalid filter '{f}'"))?)
            }
            Some(("is-automated", v)) => {
                automated = Some(v.parse().with_context(|| format!("invalid filter '{f}'"))?)
            }
            Some(("stars", v)) => {
                stars = v.parse().with_context(|| format!("invalid filter '{f}'"))?
            }
            _ => bail!("invalid filter '{f}'"),
        }
    }
    if !(1..=100).contains(&a.limit) {
        bail!("limit {} is outside the range of [1, 100]", a.limit);
    }
    let (remote, _) = remote()?;
    let res = remote.search(&registry, &term, Some(a.limit)).await?;
    let values: Vec<Value> = res
        .results
        .iter()
        .filter(|r| official.is_none_or(|o| r.is_official == o))
        .filter(|r| automated.is_none_or(|o| r.is_automated == o))
        .filter(|r| r.star_count >= stars)
        .take(a.limit as usize)
        .map(|r| {
            let desc = if a.no_trunc {
                r.description.clone()
            } else {
                ellipsis(&r.description.replace('\n', " "), 45)
            };
            json!({
                "Name": r.name,
                "Description": desc,
                "StarCount": r.star_count.to_string(),
                "IsOfficial": if r.is_official { "[OK]" } else { "" },
                "IsAutomated": if r.is_automated { "[OK]" } else { "" },
            })
        })
        .collect();
    let default = "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}";
    let headers = json!({"Name": "NAME", "Description": "DESCRIPTION", "StarCount": "STARS",
        "IsOfficial": "OFFICIAL", "IsAutomated": "AUTOMATED"});
    print_list(a.format.as_deref(), default, &headers, &values, &ROW)
}

/// docker's row of `search`.
pub const ROW: Schema = Schema {
    root: "*registry.searchContext",
    types: &[],
    raw_fallback: false,
};
