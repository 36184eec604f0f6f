//! `berth ps` (`container ls`): containers as docker lists them, filtered (`-f`), as a
//! table or through `--format`.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{anyhow, bail, Result};
use berth_client::engine::{
    ContainerRecord, ContainerState, Engine, Health, NetworkMode, NetworkState, Status,
};
use clap::Args;
use serde_json::{json, Value};

use crate::cli::format::ports::{displayable, Port};
use crate::cli::format::{
    created_at, ellipsis, go_quote, human_ago, human_since, human_size, print_list, Format, Schema,
    Style,
};
use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    all: bool,
    /// Only display container IDs
    #[arg(short, long)]
    quiet: bool,
    /// Show the latest created container (includes all states)
    #[arg(short, long)]
    latest: bool,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long = "last", default_value_t = -1, allow_hyphen_values = true)]
    last: i64,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Display total file sizes
    #[arg(short, long)]
    size: bool,
    /// Filter output based on conditions provided (status=, name=, id=, ancestor=, label=,
    /// exited=, health=, network=)
    #[arg(short, long)]
    filter: Vec<String>,
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json', or a Go template)
    #[arg(long)]
    format: Option<String>,
}

/// docker's STATUS column: `Up 5 seconds (healthy)`, `Up 2 minutes (health: starting)`,
/// `Restarting (1) 3 seconds ago`, `Exited (0) 1 hour ago`.
fn status_text(st: &ContainerState, health: Option<&Health>) -> String {
    let since = |t: &Option<String>| human_since(t.as_deref());
    if st.restarting {
        return format!(
            "Restarting ({}) {} ago",
            st.exit_code,
            since(&st.finished_at)
        );
    }
    match (st.status, health) {
        (Status::Created, _) => "Created".into(),
        (Status::Running, Some(h)) if h.status == "starting" => {
            format!("Up {} (health: starting)", since(&st.started_at))
        }
        (Status::Running, Some(h)) => format!("Up {} ({})", since(&st.started_at), h.status),
        (Status::Running, None) => format!("Up {}", since(&st.started_at)),
        (Status::Paused, _) => format!("Up {} (Paused)", since(&st.started_at)),
        (Status::Exited, _) => {
            format!("Exited ({}) {} ago", st.exit_code, since(&st.finished_at))
        }
        (Status::Dead, _) => "Dead".into(),
    }
}

/// docker's PORTS column: `53/udp, 0.0.0.0:8000-8002->8000-8002/tcp, [::]:8080->80/tcp`. A
/// container on a network lists its published ports and, beside them, the exposed ports it
/// does not publish (docker lists none for a container that does not run).
fn ports_column(rec: &ContainerRecord, net: &Option<NetworkState>) -> String {
    let Some(net) = net else {
        return String::new();
    };
    let mut ports: Vec<Port> = net
        .ports
        .iter()
        .map(|p| Port {
            private: p.container_port,
            ip: if p.host_ip.is_empty() {
                "0.0.0.0"
            } else {
                &p.host_ip
            }
            .to_string(),
            public: p.host_port,
            protocol: p.protocol.clone(),
        })
        .collect();
    for key in &rec.config.exposed_ports {
        let (port, protocol) = key.split_once('/').unwrap_or((key, "tcp"));
        let (Ok(private), false) = (port.parse(), net.ports.iter().any(|p| p.key() == *key)) else {
            continue;
        };
        ports.push(Port {
            private,
            ip: String::new(),
            public: 0,
            protocol: protocol.to_string(),
        });
    }
    displayable(ports)
}

fn ps_row(
    e: &Engine,
    rec: &ContainerRecord,
    st: &ContainerState,
    no_trunc: bool,
    size: bool,
) -> Value {
    let command = rec.config.argv().join(" ");
    let command = if no_trunc {
        command
    } else {
        ellipsis(&command, 20)
    };
    let labels: Vec<String> = rec
        .config
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mounts: Vec<String> = rec
        .mounts
        .iter()
        .map(|m| {
            m.name
                .clone()
                .unwrap_or_else(|| m.source.display().to_string())
        })
        .collect();
    let size = if size {
        human_size(e.size_rw(rec))
    } else {
        String::new()
    };
    json!({
        "ID": if no_trunc { rec.id.clone() } else { rec.short_id().to_string() },
        "Image": rec.image,
        "Command": go_quote(&command),
        "CreatedAt": created_at(Some(&rec.created)),
        "RunningFor": human_ago(Some(&rec.created)),
        "Ports": ports_column(rec, &e.network_state(rec, st.status)),
        "State": st.status_word(),
        "Status": status_text(st, e.health_in(rec, st).as_ref()),
        "Size": size,
        "Names": rec.name,
        "Labels": labels.join(","),
        "Mounts": mounts.join(","),
        "Networks": networks_column(rec),
        "LocalVolumes": rec.mounts.iter().filter(|m| m.kind == "volume").count().to_string(),
    })
}

/// docker's NETWORKS: the names of the container's networks.
fn networks_column(rec: &ContainerRecord) -> String {
    match rec.host.network {
        NetworkMode::Bridge if !rec.host.networks.is_empty() => rec
            .host
            .networks
            .iter()
            .map(|n| n.network.as_str())
            .collect::<Vec<_>>()
            .join(","),
        NetworkMode::Container => String::new(),
        other => other.as_str().to_string(),
    }
}

/// `ps -f` filters: the same key ORs, different keys AND.
fn ps_filter(filters: &[String]) -> Result<BTreeMap<String, Vec<String>>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow!("bad format of filter (expected name=value): {f}"))?;
        match k {
            "status" => {
                if ![
                    "created",
                    "restarting",
                    "running",
                    "removing",
                    "paused",
                    "exited",
                    "dead",
                ]
                .contains(&v)
                {
                    bail!("invalid filter 'status={v}'");
                }
            }
            "health" => {
                if !["starting", "healthy", "unhealthy", "none"].contains(&v) {
                    bail!("Unrecognised filter value for health: {v}");
                }
            }
            "name" | "id" | "ancestor" | "label" | "exited" | "network" => {}
            other => bail!("invalid filter '{other}'"),
        }
        m.entry(k.to_string()).or_default().push(v.to_string());
    }
    Ok(m)
}

fn matches(
    e: &Engine,
    rec: &ContainerRecord,
    st: &ContainerState,
    filters: &BTreeMap<String, Vec<String>>,
) -> bool {
    filters.iter().all(|(k, vs)| {
        vs.iter().any(|v| match k.as_str() {
            "status" => st.status_word() == v,
            "health" => {
                e.health_in(rec, st)
                    .map_or("none".to_string(), |h| h.status)
                    == *v
            }
            "name" => name_matches(&rec.name, v),
            "id" => rec.id.starts_with(v.as_str()),
            "exited" => st.status == Status::Exited && v.parse() == Ok(st.exit_code),
            "network" => match rec.host.network {
                NetworkMode::Bridge if rec.host.networks.is_empty() => v == "bridge",
                NetworkMode::Bridge => rec.host.networks.iter().any(|n| {
                    n.network == *v
                        || (!n.network_id.is_empty() && n.network_id.starts_with(v.as_str()))
                }),
                NetworkMode::Container => false,
                other => other.as_str() == v,
            },
            "label" => match v.split_once('=') {
                Some((k, val)) => rec.config.labels.get(k).is_some_and(|x| x == val),
                None => rec.config.labels.contains_key(v.as_str()),
            },
            "ancestor" => {
                rec.image == *v
                    || rec.image_id.as_str() == v
                    || rec.image_id.hex().starts_with(v.as_str())
                    || e.images().resolve(v).is_ok_and(|i| i.id == rec.image_id)
            }
            _ => false,
        })
    })
}

/// The column titles of `ps`, keyed by docker's field names.
fn headers() -> Value {
    json!({
        "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
        "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS",
        "Size": "SIZE", "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS",
        "Networks": "NETWORKS", "LocalVolumes": "LOCAL VOLUMES",
    })
}

/// docker reads a `--format` template and runs it once on an empty row before it lists
/// anything: a field no row has, or a template that cannot run, fails with no container too.
fn check_format(format: &str) -> Result<()> {
    let mut empty = headers();
    if let Some(fields) = empty.as_object_mut() {
        fields.values_mut().for_each(|v| *v = json!(""));
    }
    Format::parse(format, Style::PS)?.typed(&ROW).probe(&empty)
}

pub fn run(g: &Globals, a: PsArgs) -> Result<i32> {
    let e = g.engine()?;
    let filters = ps_filter(&a.filter)?;
    if let Some(f) = a.format.as_deref().filter(|f| !f.is_empty()) {
        check_format(f)?;
    }
    let mut shown = Vec::new();
    let limit = if a.latest { 1 } else { a.last };
    let all =
        a.all || limit > 0 || filters.contains_key("status") || filters.contains_key("exited");
    for rec in e.list()? {
        let st = e.state(&rec);
        if !all && !st.running() {
            continue;
        }
        if !matches(&e, &rec, &st, &filters) {
            continue;
        }
        // The state is read once per container: `ps` over many containers is a hot path.
        shown.push((rec, st));
    }
    if limit > 0 {
        shown.truncate(limit as usize);
    }
    if a.quiet && a.format.is_none() {
        let mut out = std::io::stdout().lock();
        for (rec, _) in &shown {
            writeln!(out, "{}", if a.no_trunc { &rec.id } else { rec.short_id() })?;
        }
        return Ok(0);
    }
    let rows: Vec<Value> = shown
        .iter()
        .map(|(r, st)| ps_row(&e, r, st, a.no_trunc, a.size))
        .collect();
    let default = if a.size {
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}\t{{.Size}}"
    } else {
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
    };
    print_list(a.format.as_deref(), default, &headers(), &rows, &ROW)
}

/// docker's row of `ps`.
pub const ROW: Schema = Schema {
    root: "*formatter.ContainerContext",
    types: &[],
    raw_fallback: false,
};

/// docker's `name` filter: the value equals the name or, as a regular expression (Go's RE2
/// syntax, which the regex crate shares), matches it with or without docker's leading `/`
/// (`usr` finds `usr1`, `^usr1$` only it). A value that is no regular expression matches
/// only itself, as docker skips it.
fn name_matches(name: &str, filter: &str) -> bool {
    let slashed = format!("/{name}");
    filter == name
        || filter == slashed
        || regex::Regex::new(filter).is_ok_and(|re| re.is_match(name) || re.is_match(&slashed))
}
