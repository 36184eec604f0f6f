//! The formatter: every table, `--format` template, human size and time, and inspect
//! document a command prints goes through here, as docker's `cli/command/formatter`.
//!
//! - [`print_list`]: a listing (`ps`, `images`, `network ls`, …): docker's default table, a
//!   `table …` template with a header row, `json` (one object per line), or a Go template per
//!   row. Rows are JSON objects whose keys are docker's field names; the header row is the
//!   same object with column titles.
//! - [`print_inspect`]: `inspect` documents: a JSON array indented as docker indents it, or a
//!   template per document.
//! - [`template`]: Go's text/template with docker's functions; [`table`]: the tabwriter;
//!   [`units`]: sizes, durations, dates and quoting as docker writes them.

pub mod table;
pub mod template;
pub mod units;

use std::io::Write;

use anyhow::{anyhow, Result};
use serde_json::Value;

pub use table::tabulate;
pub use template::Template;
pub use units::{
    bytes_size, created_at, ellipsis, go_quote, human_ago, human_since, human_size, human_size4,
    rfc3339_seconds,
};

fn parse(format: &str) -> Result<Template> {
    Template::parse(format).map_err(|e| anyhow!("template parsing error: {e}"))
}

/// Prints a listing: `format` as given to `--format` (`None`, empty or `table`: `default`;
/// `json`: one JSON object per row; otherwise a template, `table …` with a header).
pub fn print_list(
    format: Option<&str>,
    default: &str,
    headers: &Value,
    rows: &[Value],
) -> Result<i32> {
    let text = render_list(format, default, headers, rows)?;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(0)
}

/// A listing as [`print_list`] prints it, as text (for a screen redrawn in place).
pub fn render_list(
    format: Option<&str>,
    default: &str,
    headers: &Value,
    rows: &[Value],
) -> Result<String> {
    let format = match format {
        None | Some("") | Some("table") => default,
        Some("json") => "{{json .}}",
        Some(f) => f,
    };
    render_rows(format, headers, rows)
}

/// Renders rows with a template; a `table` template gets a header and aligned columns.
fn render_rows(format: &str, headers: &Value, rows: &[Value]) -> Result<String> {
    let t = parse(format)?;
    let mut lines = Vec::new();
    if t.table {
        lines.push(
            t.render_header(headers)
                .map_err(|e| anyhow!("template: {e}"))?,
        );
    }
    for v in rows {
        lines.push(t.render(v).map_err(|e| anyhow!("template: {e}"))?);
    }
    if t.table {
        return Ok(tabulate(&lines));
    }
    let mut text = String::new();
    for l in lines {
        text.push_str(&l);
        text.push('\n');
    }
    Ok(text)
}

/// Prints `inspect` documents: a JSON array indented by four spaces (docker's), `json` on one
/// line, or each document through a template.
pub fn print_inspect(docs: &[Value], format: Option<&str>) -> Result<()> {
    match format {
        None | Some("") => print_json_indented(&Value::Array(docs.to_vec())),
        Some("json") => {
            println!("{}", serde_json::to_string(docs)?);
            Ok(())
        }
        Some(f) => {
            let t = parse(f)?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for v in docs {
                let line = t.render(v).map_err(|e| anyhow!("template: {e}"))?;
                writeln!(out, "{line}")?;
            }
            out.flush()?;
            Ok(())
        }
    }
}

/// Prints one document (`version`, `info`) through `--format`: `json` as one line, otherwise
/// a template.
pub fn print_document(doc: &Value, format: &str) -> Result<()> {
    if format == "json" {
        println!("{}", serde_json::to_string(doc)?);
        return Ok(());
    }
    print_inspect(std::slice::from_ref(doc), Some(format))
}

/// A prune's section, as docker prints it: `Deleted Containers:`, an item a line, a blank
/// line; nothing when nothing went.
pub fn print_deleted<T: std::fmt::Display>(title: &str, items: &[T]) {
    if !items.is_empty() {
        println!("{title}");
        for i in items {
            println!("{i}");
        }
        println!();
    }
}

/// A value as JSON indented by four spaces, and a newline.
pub fn print_json_indented(v: &Value) -> Result<()> {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    serde::Serialize::serialize(v, &mut ser)?;
    buf.push(b'\n');
    std::io::stdout().write_all(&buf)?;
    Ok(())
}
