//! `berth images` (`image ls`): the local images as docker lists them.

use std::io::Write;

use anyhow::{bail, Result};
use berth_client::images::{intermediates, ImageRecord, ImageStore};
use berth_client::reference::ImageRef;
use clap::Args;
use serde_json::{json, Value};

use crate::cli::format::{created_at, human_ago, human_size, print_list, Schema};

#[derive(Args)]
pub struct ListArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short, long)]
    all: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// Show digests
    #[arg(long)]
    digests: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Filter output based on conditions provided (dangling=true, reference=PATTERN)
    #[arg(short, long = "filter")]
    filter: Vec<String>,
    /// Format output using a Go template, 'table', 'table TEMPLATE' or 'json'
    #[arg(long)]
    format: Option<String>,
    /// [REPOSITORY[:TAG]]
    reference: Option<String>,
}

/// `reference=PATTERN` as docker matches it: on the familiar name, and on `name:tag`.
fn glob(pattern: &str, s: &str) -> bool {
    fn m(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => m(&p[1..], s) || (!s.is_empty() && s[0] != b'/' && m(p, &s[1..])),
            (Some(b'?'), Some(c)) if *c != b'/' => m(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &s[1..]),
            _ => false,
        }
    }
    m(pattern.as_bytes(), s.as_bytes())
}

/// One row of `images`: a (repository, tag) of an image, with docker's field names.
fn image_rows(i: &ImageRecord, digests: bool) -> Vec<(String, String, String)> {
    let mut rows = Vec::new();
    let digest_of = |name: &str| -> String {
        i.repo_digests
            .iter()
            .filter_map(|d| d.split_once('@'))
            .find(|(n, _)| *n == name)
            .map(|(_, d)| d.to_string())
            .unwrap_or_else(|| "<none>".into())
    };
    let mut named = std::collections::BTreeSet::new();
    for t in &i.tags {
        if let Ok(r) = ImageRef::parse(t) {
            named.insert(r.name());
            rows.push((
                r.familiar_name(),
                r.tag().map(|t| t.to_string()).unwrap_or_default(),
                digest_of(&r.name()),
            ));
        }
    }
    // A repository known only by digest shows as `name <none>`, once.
    for d in &i.repo_digests {
        if let Ok(r) = ImageRef::parse(d) {
            if named.insert(r.name()) && (digests || rows.is_empty()) {
                rows.push((r.familiar_name(), "<none>".into(), digest_of(&r.name())));
            }
        }
    }
    if rows.is_empty() {
        rows.push(("<none>".into(), "<none>".into(), "<none>".into()));
    }
    rows
}

pub fn run(store: &ImageStore, a: ListArgs) -> Result<i32> {
    let mut dangling: Option<bool> = None;
    let mut patterns: Vec<String> = Vec::new();
    for f in &a.filter {
        match f.split_once('=') {
            Some(("dangling", v)) => {
                dangling = Some(match v {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => bail!("invalid filter 'dangling={v}'"),
                })
            }
            Some(("reference", p)) => patterns.push(p.to_string()),
            _ => bail!("invalid filter '{f}'"),
        }
    }
    if let Some(r) = &a.reference {
        patterns.push(r.clone());
    }
    let images = store.list()?;
    let hidden = if a.all {
        Default::default()
    } else {
        intermediates(&images)
    };
    let mut values: Vec<Value> = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    for i in images.iter().filter(|i| !hidden.contains(&i.id)) {
        if let Some(d) = dangling {
            if d != i.tags.is_empty() {
                continue;
            }
        }
        for (repo, tag, digest) in image_rows(i, a.digests) {
            if !patterns.is_empty() {
                let with_tag = format!("{repo}:{tag}");
                if repo == "<none>"
                    || !patterns
                        .iter()
                        .any(|p| glob(p, &repo) || glob(p, &with_tag))
                {
                    continue;
                }
            }
            let id = if a.no_trunc {
                i.id.to_string()
            } else {
                i.short_id().to_string()
            };
            if !ids.contains(&id) {
                ids.push(id.clone());
            }
            let size = human_size(i.size());
            values.push(json!({
                "Containers": "N/A",
                "CreatedAt": created_at(i.created.as_deref()),
                "CreatedSince": human_ago(i.created.as_deref()),
                "Digest": digest,
                "ID": id,
                "Repository": repo,
                "SharedSize": "N/A",
                "Size": size,
                "Tag": tag,
                "UniqueSize": "N/A",
                "VirtualSize": size,
            }));
        }
    }
    if a.quiet {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for id in ids {
            writeln!(out, "{id}")?;
        }
        out.flush()?;
        return Ok(0);
    }
    let default = if a.digests {
        "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    } else {
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    };
    let headers = json!({
        "Containers": "CONTAINERS", "CreatedAt": "CREATED AT", "CreatedSince": "CREATED",
        "Digest": "DIGEST", "ID": "IMAGE ID", "Repository": "REPOSITORY", "SharedSize": "SHARED SIZE",
        "Size": "SIZE", "Tag": "TAG", "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE",
    });
    print_list(a.format.as_deref(), default, &headers, &values, &ROW)
}

/// docker's row of `images`.
pub const ROW: Schema = Schema {
    root: "*formatter.imageContext",
    types: &[],
    raw_fallback: false,
};
