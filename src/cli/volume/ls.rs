//! `berth volume ls`: docker's columns, filters and `--format` fields.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use berth_client::engine::VolumeRecord;
use clap::Args;
use serde_json::{json, Value};

use super::view;
use crate::cli::flags::has_label;
use crate::cli::format::{print_list, Schema};
use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Provide filter values (e.g. 'dangling=true'): dangling, driver, label (KEY or
    /// KEY=VALUE), name
    #[arg(short, long, value_name = "FILTER")]
    filter: Vec<String>,
    /// Pretty-print volumes using a Go template ('table', 'json' or a template)
    #[arg(long)]
    format: Option<String>,
    /// Only display volume names
    #[arg(short, long)]
    quiet: bool,
}

/// `-f` filters by key: the same key ORs, different keys AND (docker's rule).
fn filters(given: &[String]) -> Result<BTreeMap<String, Vec<String>>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in given {
        let Some((k, v)) = f.split_once('=') else {
            bail!("bad format of filter (expected name=value)");
        };
        match k {
            "driver" | "label" | "name" => {}
            "dangling" if !matches!(v, "true" | "1" | "false" | "0") => {
                bail!("Invalid filter 'dangling=[{v}]'")
            }
            "dangling" => {}
            other => bail!("Invalid filter '{other}'"),
        }
        m.entry(k.to_string()).or_default().push(v.to_string());
    }
    Ok(m)
}

fn matches(v: &VolumeRecord, used: bool, filters: &BTreeMap<String, Vec<String>>) -> bool {
    filters.iter().all(|(k, wants)| {
        wants.iter().any(|want| match k.as_str() {
            "driver" => v.driver == *want,
            "name" => v.name.contains(want.as_str()),
            "dangling" => matches!(want.as_str(), "true" | "1") != used,
            "label" => has_label(&v.labels, want),
            _ => false,
        })
    })
}

pub fn run(g: &Globals, a: LsArgs) -> Result<i32> {
    let filters = filters(&a.filter)?;
    let e = g.engine()?;
    let used = if filters.contains_key("dangling") {
        e.volume_users()?
    } else {
        BTreeMap::new()
    };
    let shown: Vec<VolumeRecord> = e
        .list_volumes()?
        .into_iter()
        .filter(|v| matches(v, used.contains_key(&v.name), &filters))
        .collect();
    let rows: Vec<Value> = shown.iter().map(|v| view::row(&e, v)).collect();
    let headers = json!({
        "Driver": "DRIVER", "Labels": "LABELS", "Links": "LINKS", "Mountpoint": "MOUNTPOINT",
        "Name": "VOLUME NAME", "Scope": "SCOPE", "Size": "SIZE",
    });
    let format = if a.quiet {
        Some("{{.Name}}")
    } else {
        a.format.as_deref()
    };
    print_list(
        format,
        "table {{.Driver}}\t{{.Name}}",
        &headers,
        &rows,
        &ROW,
    )
}

/// docker's row of `volume ls`.
pub const ROW: Schema = Schema {
    root: "*formatter.volumeContext",
    types: &[],
    raw_fallback: false,
};
