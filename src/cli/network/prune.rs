//! `berth network prune`: remove the user-defined networks no container names.

use anyhow::{bail, Result};
use clap::Args;

use crate::cli::flags::{confirm, parse_time};
use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Provide filter values (e.g. "until=24h", "label=KEY[=VALUE]", "label!=KEY[=VALUE]")
    #[arg(long, value_name = "FILTER")]
    filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

/// A label filter: key, optional value, and whether it must not match.
type LabelFilter = (String, Option<String>, bool);

pub fn run(g: &Globals, a: PruneArgs) -> Result<i32> {
    let mut until = None;
    let mut labels: Vec<LabelFilter> = vec![];
    for f in &a.filter {
        let Some((k, v)) = f.split_once('=') else {
            bail!("bad format of filter (expected name=value)");
        };
        let (k, v) = match k.strip_suffix('!') {
            Some(k) => (k, (v, true)),
            None => (k, (v, false)),
        };
        match (k, v) {
            ("until", (t, false)) => until = Some(parse_time(t)?),
            ("label", (kv, negated)) => {
                let (key, val) = match kv.split_once('=') {
                    Some((key, val)) => (key, Some(val.to_string())),
                    None => (kv, None),
                };
                labels.push((key.to_string(), val, negated));
            }
            _ => bail!("invalid filter '{k}'"),
        }
    }
    let e = g.engine()?;
    if !a.force
        && !confirm(
            "WARNING! This will remove all custom networks not used by at least one container.",
        )?
    {
        return Ok(0);
    }
    let removed = e.prune_networks(|r| {
        let old_enough = until
            .is_none_or(|t| chrono::DateTime::parse_from_rfc3339(&r.created).is_ok_and(|c| c < t));
        let labelled = labels.iter().all(|(key, val, negated)| {
            let has = match val {
                Some(v) => r.labels.get(key) == Some(v),
                None => r.labels.contains_key(key),
            };
            has != *negated
        });
        !(old_enough && labelled)
    })?;
    if !removed.is_empty() {
        println!("Deleted Networks:");
        for n in &removed {
            println!("{n}");
        }
        println!();
    }
    Ok(0)
}
