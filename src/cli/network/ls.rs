//! `berth network ls`: docker's columns, filters and `--format` fields.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use berth_client::engine::ContainerRecord;
use clap::Args;
use serde_json::{json, Value};

use super::view::{self, View};
use crate::cli::flags::has_label;
use crate::cli::format::{created_at, print_list, Schema};
use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Provide filter values (e.g. "driver=bridge"): driver, id, label, name, scope, type
    /// (custom or builtin), dangling (true or false)
    #[arg(short, long, value_name = "FILTER")]
    filter: Vec<String>,
    /// Only display network IDs
    #[arg(short, long)]
    quiet: bool,
    /// Do not truncate the output
    #[arg(long)]
    no_trunc: bool,
    /// Format output using a custom template ('table', 'json' or a Go template)
    #[arg(long)]
    format: Option<String>,
}

/// `-f` filters by key: the same key ORs, different keys AND (docker's rule).
fn filters(given: &[String]) -> Result<BTreeMap<String, Vec<String>>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in given {
        let Some((k, v)) = f.split_once('=') else {
            bail!("bad format of filter (expected name=value)");
        };
        match k {
            "driver" | "id" | "label" | "name" | "scope" => {}
            "type" if !matches!(v, "custom" | "builtin") => {
                bail!("invalid filter: 'type'='{v}'")
            }
            "dangling" if !matches!(v, "true" | "1" | "false" | "0") => bail!(
                "invalid value for filter 'dangling', must be \"true\" (or \"1\"), or \"false\" (or \"0\")"
            ),
            "type" | "dangling" => {}
            other => bail!("Invalid filter '{other}'"),
        }
        m.entry(k.to_string()).or_default().push(v.to_string());
    }
    Ok(m)
}

/// Whether a user-defined network is named by no container of the root (what `prune`
/// removes).
pub fn dangling(v: &View, containers: &[ContainerRecord]) -> bool {
    v.record.is_some() && !containers.iter().any(|c| v.names(c))
}

fn matches(
    v: &View,
    filters: &BTreeMap<String, Vec<String>>,
    containers: &[ContainerRecord],
) -> bool {
    filters.iter().all(|(k, vs)| {
        vs.iter().any(|want| match k.as_str() {
            "driver" => v.driver == *want,
            "id" => v.id.starts_with(want.as_str()),
            "name" => v.name.contains(want.as_str()),
            "scope" => want == "local",
            "type" => (want == "custom") == v.record.is_some(),
            "dangling" => matches!(want.as_str(), "true" | "1") == dangling(v, containers),
            "label" => v
                .record
                .as_ref()
                .is_some_and(|r| has_label(&r.labels, want)),
            _ => false,
        })
    })
}

pub fn run(g: &Globals, a: LsArgs) -> Result<i32> {
    let filters = filters(&a.filter)?;
    let e = g.engine()?;
    let containers = if filters.contains_key("dangling") {
        e.list()?
    } else {
        vec![]
    };
    let shown: Vec<View> = view::all(&e)?
        .into_iter()
        .filter(|v| matches(v, &filters, &containers))
        .collect();
    if a.quiet && a.format.is_none() {
        for v in &shown {
            println!("{}", if a.no_trunc { &v.id } else { v.short_id() });
        }
        return Ok(0);
    }
    let rows: Vec<Value> = shown
        .iter()
        .map(|v| {
            let labels: Vec<String> = v
                .record
                .as_ref()
                .map(|r| r.labels.iter().map(|(k, v)| format!("{k}={v}")).collect())
                .unwrap_or_default();
            json!({
                "ID": if a.no_trunc { v.id.as_str() } else { v.short_id() },
                "Name": v.name,
                "Driver": v.driver,
                "Scope": "local",
                "IPv4": v.ipv4().to_string(),
                "IPv6": v.ipv6().to_string(),
                "Internal": v.internal().to_string(),
                "Labels": labels.join(","),
                "CreatedAt": created_at(Some(&v.created)),
            })
        })
        .collect();
    let headers = json!({
        "ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
        "IPv4": "IPV4", "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT",
    });
    let default = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}";
    let format = if a.quiet {
        Some("{{.ID}}")
    } else {
        a.format.as_deref()
    };
    print_list(format, default, &headers, &rows, &ROW)
}

/// docker's row of `network ls` (its methods are fields here).
pub const ROW: Schema = Schema {
    root: "*network.networkContext",
    types: &[],
    raw_fallback: false,
};
