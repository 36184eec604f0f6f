//! `berth events` (`system events`): the journal's events, as docker prints them, then those
//! written from now on until `--until` (without it, until interrupted).

use std::io::Write;
use std::time::Duration;

use anyhow::{anyhow, Result};
use berth_client::events::{Event, Filter, Journal, Kind};
use berth_client::images::default_root;
use chrono::{DateTime, Local, SecondsFormat};
use clap::Args;
use serde_json::{json, Value};

use crate::cli::flags::parse_time;
use crate::cli::format::{Format, Schema, Style};
use crate::cli::globals::Globals;

#[derive(Args)]
pub struct EventsArgs {
    /// Filter output based on conditions provided (container, event, image, label, network,
    /// scope, type, volume)
    #[arg(short = 'f', long, value_name = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template: 'json' prints in JSON format, 'TEMPLATE' prints
    /// output using the given Go template
    #[arg(long, value_name = "string")]
    format: Option<String>,
    /// Show all events created since timestamp (RFC 3339, Unix time, or a duration before now)
    #[arg(long, value_name = "string")]
    since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long, value_name = "string")]
    until: Option<String>,
}

/// How each event is printed.
enum Output {
    Default,
    Json,
    Template(Format),
}

pub fn run(g: &Globals, a: EventsArgs) -> Result<i32> {
    let filter = Filter::parse(&a.filter).map_err(|e| anyhow!(e))?;
    let nanos = |s: &Option<String>| -> Result<Option<i64>> {
        s.as_deref()
            .map(|s| parse_time(s).map(|t| t.timestamp_nanos_opt().unwrap_or(i64::MAX)))
            .transpose()
    };
    let (since, until) = (nanos(&a.since)?, nanos(&a.until)?);
    let output = match a.format.as_deref() {
        None | Some("") => Output::Default,
        Some("json") | Some("{{json .}}") => Output::Json,
        Some(f) => {
            // docker runs the template once on an empty event before it reads any.
            let t = Format::parse(f, Style::EVENTS)?.typed(&EVENT);
            t.probe(&empty_event())?;
            Output::Template(t)
        }
    };
    let journal = Journal::open(&g.root.clone().unwrap_or_else(default_root));
    // Following starts before the past is read, so that nothing written between falls
    // through; what both see is printed once.
    let mut follower = journal.follow()?;
    let past = if since.is_some() || until.is_some() {
        journal.read(since, until)?
    } else {
        vec![]
    };
    let mut out = std::io::stdout().lock();
    let mut print = |e: &Event| -> Result<bool> {
        if !filter.matches(e) {
            return Ok(true);
        }
        let line = match &output {
            Output::Default => default_line(e),
            Output::Json => serde_json::to_string(e)?,
            Output::Template(t) => t.render(&go_fields(e))?,
        };
        match writeln!(out, "{line}").and_then(|_| out.flush()) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(e.into()),
        }
    };
    for e in &past {
        if !print(e)? {
            return Ok(0);
        }
    }
    let last = past.last().map(|e| e.time_nano);
    loop {
        let wait = match until {
            None => None,
            Some(u) => {
                let left = u - now_nanos();
                if left <= 0 {
                    return Ok(0);
                }
                Some(Duration::from_nanos(left as u64))
            }
        };
        let Some(e) = follower.next(wait)? else {
            continue;
        };
        if until.is_some_and(|u| e.time_nano > u) {
            return Ok(0);
        }
        // Already printed from the past.
        if last.is_some_and(|l| e.time_nano <= l) && past.contains(&e) {
            continue;
        }
        if !print(&e)? {
            return Ok(0);
        }
    }
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// docker's line: the local time to the nanosecond, type, action, actor, and the attributes
/// sorted by key.
fn default_line(e: &Event) -> String {
    let t = DateTime::from_timestamp_nanos(e.time_nano).with_timezone(&Local);
    let mut line = format!(
        "{} {} {} {}",
        t.to_rfc3339_opts(SecondsFormat::Nanos, true),
        e.kind.as_str(),
        e.action,
        e.actor.id
    );
    if !e.actor.attributes.is_empty() {
        let attrs: Vec<String> = e
            .actor
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        line.push_str(&format!(" ({})", attrs.join(", ")));
    }
    line
}

/// The event as docker's templates see it: the Go struct's field names (`.Status`, `.ID`,
/// `.From`, `.Type`, `.Action`, `.Actor.ID`, `.Actor.Attributes`, `.Scope`, `.Time`,
/// `.TimeNano`).
/// docker's empty event message, which a template is first run on: no type, no attributes
/// (a nil map there: any key reads as no value).
fn empty_event() -> Value {
    let mut v = go_fields(&Event::new(Kind::Container, "", ""));
    v["Type"] = json!("");
    v
}

fn go_fields(e: &Event) -> Value {
    json!({
        "Status": e.status.clone().unwrap_or_default(),
        "ID": e.id.clone().unwrap_or_default(),
        "From": e.from.clone().unwrap_or_default(),
        "Type": e.kind.as_str(),
        "Action": e.action,
        "Actor": {"ID": e.actor.id, "Attributes": e.actor.attributes},
        "Scope": e.scope,
        "Time": e.time,
        "TimeNano": e.time_nano,
    })
}

/// docker's event message.
pub const EVENT: Schema = Schema {
    root: "*events.Message",
    types: &[
        ("Actor", "events.Actor"),
        ("Actor.Attributes", "map[string]string"),
    ],
    raw_fallback: false,
};
