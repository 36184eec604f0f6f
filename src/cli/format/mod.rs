//! The formatter: every table, `--format` template, human size and time, and inspect
//! document a command prints goes through here, as docker's `cli/command/formatter`.
//!
//! - [`print_list`]: a listing (`ps`, `images`, `network ls`, …): docker's default table, a
//!   `table …` template with a header row, `json` (one object per line), or a Go template per
//!   row. Rows are JSON objects whose keys are docker's field names; the header row is the
//!   same object with column titles.
//! - [`InspectFormat`]: `inspect` documents: a JSON array indented as docker indents it, or a
//!   template per document.
//! - [`Format`]: a parsed template and its [`Style`], how its command reads it and answers a
//!   template that does not parse or fails as it runs (docker's commands differ).
//! - [`template`]: Go's text/template with docker's functions; [`table`]: the tabwriter;
//!   [`units`]: sizes, durations, dates and quoting as docker writes them.

pub mod exec;
pub mod gotypes;
pub mod ports;
pub mod table;
pub mod template;
pub mod units;

use std::io::Write;

use anyhow::Result;
use serde_json::Value;

pub use exec::Schema;
pub use table::tabulate;
pub use template::{Failed, Template};

use crate::cli::exit::StatusError;
pub use units::{
    bytes_size, created_at, ellipsis, go_quote, human_ago, human_since, human_size, human_size4,
    rfc3339_seconds,
};

/// How a command reads its `--format`, as docker's commands differ: listings (docker's
/// formatter) take a `table` prefix and the escapes `\t` and `\n`, the others read the template
/// as it is; and each puts its own words before Go's error and exits with its own status, for
/// a template that does not parse and for one that fails as it runs. Either failure is a
/// [`StatusError`], printed as it is.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    /// The template's name in Go's errors.
    name: &'static str,
    list: bool,
    parse: (&'static str, i32),
    exec: (&'static str, i32),
}

impl Style {
    /// Listings (`images`, `volume ls`, `stats`, …; `ps` too, once its rows are rendered).
    pub const LIST: Style = Style {
        name: "",
        list: true,
        parse: ("template parsing error: ", 1),
        exec: ("template parsing error: ", 1),
    };
    /// `ps`'s check before it lists anything: the template as given, run once on an empty row.
    pub const PS: Style = Style {
        name: "",
        list: false,
        parse: ("failed to parse template: ", 1),
        exec: ("failed to execute template: ", 1),
    };
    /// Every `inspect`: the template is read before any object is looked up.
    pub const INSPECT: Style = Style {
        name: "",
        list: false,
        parse: ("template parsing error: ", 64),
        exec: ("template parsing error: ", 1),
    };
    /// `info`.
    pub const INFO: Style = Style {
        name: "",
        list: false,
        parse: ("template parsing error: ", 64),
        exec: ("", 1),
    };
    /// `version`, whose template Go knows as "version".
    pub const VERSION: Style = Style {
        name: "version",
        list: false,
        parse: ("template parsing error: ", 64),
        exec: ("", 1),
    };
    /// `events`, which also runs the template once on an empty event first.
    pub const EVENTS: Style = Style {
        name: "",
        list: false,
        parse: ("Error parsing format: ", 64),
        exec: ("Error parsing format: ", 64),
    };

    fn fail((words, status): (&str, i32), e: String) -> anyhow::Error {
        StatusError {
            status,
            message: format!("{words}{e}"),
        }
        .into()
    }
}

/// A `--format` template as its command reads it.
#[derive(Debug)]
pub struct Format {
    template: Template,
    style: Style,
    schema: Option<&'static Schema>,
}

impl Format {
    /// Parses a template (docker's `table` prefix and `\t`, `\n` escapes included).
    pub fn parse(src: &str, style: Style) -> Result<Format> {
        let template = Template::parse_as(src, style.name, style.list)
            .map_err(|e| Style::fail(style.parse, e))?;
        Ok(Format {
            template,
            style,
            schema: None,
        })
    }

    /// The template run on values of Go's types as `schema` gives them (a key missing from
    /// a map is no value, a field missing from a struct an error).
    pub fn typed(mut self, schema: &'static Schema) -> Format {
        self.schema = Some(schema);
        self
    }

    /// Whether the format began with `table`.
    pub fn table(&self) -> bool {
        self.template.table
    }

    /// The template run for one value.
    pub fn render(&self, v: &Value) -> Result<String> {
        self.render_as(v, self.schema)
    }

    fn render_as(&self, v: &Value, schema: Option<&Schema>) -> Result<String> {
        self.run_as(v, schema)
            .map_err(|e| Style::fail(self.style.exec, e.error))
    }

    /// A run on `v` of Go's types as `schema` gives them (none: `v` read as JSON); when a
    /// typed run fails and the schema says so, docker's second run on the JSON answers.
    fn run_as(&self, v: &Value, schema: Option<&Schema>) -> Result<String, Failed> {
        match schema {
            None => self.template.render(v),
            Some(s) => match self.template.render_typed(v, s) {
                Err(_) if s.raw_fallback => self.template.render(v),
                run => run,
            },
        }
    }

    /// A `table` format's header row from the column titles.
    pub fn render_header(&self, titles: &Value) -> Result<String> {
        self.template
            .render_header(titles)
            .map_err(|e| Style::fail(self.style.exec, e.error))
    }

    /// docker's check of a template before anything is listed (`ps`, `events`): one run on
    /// an empty row, so that a field no row has fails even when there is no row.
    pub fn probe(&self, empty: &Value) -> Result<()> {
        self.render(empty).map(drop)
    }
}

/// Prints a listing: `format` as given to `--format` (`None`, empty or `table`: `default`;
/// `json`: one JSON object per row; otherwise a template, `table …` with a header).
pub fn print_list(
    format: Option<&str>,
    default: &str,
    headers: &Value,
    rows: &[Value],
    schema: &'static Schema,
) -> Result<i32> {
    let text = render_list(format, default, headers, rows, schema)?;
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
    schema: &'static Schema,
) -> Result<String> {
    render_rows(&list_format(format, default, schema)?, headers, rows)
}

/// A listing's `--format` read as [`render_list`] reads it (`None`, empty or `table`:
/// `default`; `json`: `{{json .}}`); for a command that must refuse a bad template even when
/// it has no row to print. Rows are of Go's types as `schema` gives them (docker's
/// formatter's row contexts).
pub fn list_format(format: Option<&str>, default: &str, schema: &'static Schema) -> Result<Format> {
    let format = match format {
        None | Some("") | Some("table") => default,
        Some("json") => "{{json .}}",
        Some(f) => f,
    };
    Ok(Format::parse(format, Style::LIST)?.typed(schema))
}

/// Renders rows with a template; a `table` template gets a header and aligned columns.
fn render_rows(t: &Format, headers: &Value, rows: &[Value]) -> Result<String> {
    // docker runs the rows first, then the header.
    let mut lines = vec![String::new()];
    for v in rows {
        lines.push(t.render(v)?);
    }
    match t.table() {
        true => lines[0] = t.render_header(headers)?,
        false => drop(lines.remove(0)),
    }
    if t.table() {
        return Ok(tabulate(&lines));
    }
    let mut text = String::new();
    for l in lines {
        text.push_str(&l);
        text.push('\n');
    }
    Ok(text)
}

/// An `inspect` command's `--format`: none (a JSON array indented as docker indents it),
/// `json` (the array on one line) or a template run for each document. Read before any
/// object is looked up, as docker reads it.
pub enum InspectFormat {
    Indented,
    Json,
    Template(Format),
}

impl InspectFormat {
    pub fn parse(format: Option<&str>) -> Result<InspectFormat> {
        Self::parse_as(format, Style::INSPECT)
    }

    fn parse_as(format: Option<&str>, style: Style) -> Result<InspectFormat> {
        Ok(match format {
            None | Some("") => InspectFormat::Indented,
            Some("json") => InspectFormat::Json,
            Some(f) => InspectFormat::Template(Format::parse(f, style)?),
        })
    }

    /// Prints the documents found, each of Go's types as `schema` gives them.
    pub fn print(&self, docs: &[Value], schema: &'static Schema) -> Result<()> {
        self.print_each(docs, |_| schema)
    }

    /// Prints the documents found, the `i`th of Go's types as `schema(i)` gives them.
    pub fn print_each(
        &self,
        docs: &[Value],
        schema: impl Fn(usize) -> &'static Schema,
    ) -> Result<()> {
        match self {
            InspectFormat::Indented => print_json_indented(&Value::Array(docs.to_vec())),
            InspectFormat::Json => {
                println!("{}", serde_json::to_string(docs)?);
                Ok(())
            }
            // As docker: a document the template fails on prints nothing and the others
            // print; then the errors, a line each (and an empty line when nothing printed).
            InspectFormat::Template(t) => {
                let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                let (mut errors, mut printed) = (Vec::new(), false);
                for (i, v) in docs.iter().enumerate() {
                    match t.run_as(v, Some(schema(i))) {
                        Ok(text) => {
                            writeln!(out, "{text}")?;
                            printed = true;
                        }
                        Err(e) => errors.push(format!("{}{}", t.style.exec.0, e.error)),
                    }
                }
                if errors.is_empty() {
                    return Ok(out.flush()?);
                }
                if !printed {
                    writeln!(out)?;
                }
                out.flush()?;
                Err(StatusError {
                    status: t.style.exec.1,
                    message: errors.join("\n"),
                }
                .into())
            }
        }
    }
}

/// Prints one document (`version`, `info`) of Go's types as `schema` gives them through
/// `--format`: `json` as one line, otherwise a template read in the command's `style`.
pub fn print_document(
    doc: &Value,
    format: &str,
    style: Style,
    schema: &'static Schema,
) -> Result<()> {
    if format == "json" {
        println!("{}", serde_json::to_string(doc)?);
        return Ok(());
    }
    // As docker: what the template wrote before it failed, and a newline, then the error.
    let t = Format::parse(format, style)?;
    match t.run_as(doc, Some(schema)) {
        Ok(text) => println!("{text}"),
        Err(e) => {
            println!("{}", e.partial);
            return Err(Style::fail(style.exec, e.error));
        }
    }
    Ok(())
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
