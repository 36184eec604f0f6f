//! Typed instructions: each node of the file checked as docker checks it (arguments, flags,
//! forms), grouped into stages, with docker's messages and the line they are about.
//!
//! Variables are not substituted here: which words are substituted, and with what, depends
//! on the stage's state at that point (see `build::plan`). What is read here is only what
//! the file itself says.

use std::collections::BTreeMap;

use super::parser::{self, Args, Directives, Heredoc, Node};

/// An error about the file, at a line: `dockerfile parse error on line N: …`.
pub type ParseError = parser::ParseError;

fn at(node: &Node) -> impl Fn(String) -> ParseError + '_ {
    move |message| ParseError {
        line: node.start_line,
        message,
    }
}

/// `KEY=value` of ENV and LABEL, before substitution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
    /// Written in the legacy `KEY value` form.
    pub legacy: bool,
}

/// One name of ARG, with its default when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDef {
    pub key: String,
    pub default: Option<String>,
}

/// A command line of RUN, CMD, ENTRYPOINT or HEALTHCHECK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    /// The exec form's words, or the shell form's text as one element.
    pub args: Vec<String>,
    /// Shell form: the stage's shell runs it.
    pub shell_form: bool,
    /// Heredocs of a shell-form RUN.
    pub files: Vec<Heredoc>,
}

/// A source of COPY or ADD given as a heredoc: a file named `path` holding `data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineSource {
    pub path: String,
    pub data: String,
    /// Variables in `data` are substituted.
    pub expand: bool,
}

/// COPY and ADD.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Copy {
    pub sources: Vec<String>,
    pub inline: Vec<InlineSource>,
    pub dest: String,
    /// COPY `--from`: a stage name or index, or an image.
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub excludes: Vec<String>,
    /// ADD `--checksum` (URL sources).
    pub checksum: Option<String>,
    /// ADD `--unpack`: extract archives (default: local ones only).
    pub unpack: Option<bool>,
}

/// RUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub cmd: CommandLine,
    /// `--mount` values, read when the step runs (they may hold variables).
    pub mounts: Vec<String>,
    /// `--network`: default, none or host.
    pub network: String,
}

/// HEALTHCHECK, as the image config stores it (durations in nanoseconds).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Health {
    pub test: Vec<String>,
    pub interval: i64,
    pub timeout: i64,
    pub start_period: i64,
    pub start_interval: i64,
    pub retries: i64,
}

/// An instruction inside a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    Run(Run),
    Copy(Copy),
    Add(Copy),
    Env(Vec<KeyValue>),
    Label(Vec<KeyValue>),
    Arg(Vec<ArgDef>),
    Workdir(String),
    User(String),
    Expose(Vec<String>),
    Volume(Vec<String>),
    Cmd(CommandLine),
    Entrypoint(CommandLine),
    Shell(Vec<String>),
    StopSignal(String),
    Healthcheck(Health),
    /// The trigger's text, as the image config keeps it.
    Onbuild(String),
    Maintainer(String),
}

/// An instruction with where it stands in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub instruction: Instruction,
    /// The instruction's text (continuations joined), as progress shows it.
    pub text: String,
    pub line: usize,
    pub end_line: usize,
}

/// `FROM [--platform=P] image [AS name]` and what follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The base as written (substituted later with the global ARGs).
    pub base: String,
    /// The stage's name, lower case.
    pub name: Option<String>,
    pub platform: Option<String>,
    pub text: String,
    pub line: usize,
    pub commands: Vec<Command>,
}

/// A Dockerfile read into stages.
#[derive(Debug, Clone)]
pub struct File {
    pub directives: Directives,
    /// ARGs before the first FROM.
    pub global_args: Vec<Command>,
    pub stages: Vec<Stage>,
    pub warnings: Vec<String>,
}

/// The instructions docker knows, in the order suggestions are looked for.
const KNOWN: &[&str] = &[
    "from",
    "run",
    "cmd",
    "copy",
    "add",
    "env",
    "arg",
    "label",
    "workdir",
    "user",
    "expose",
    "volume",
    "entrypoint",
    "shell",
    "stopsignal",
    "healthcheck",
    "onbuild",
    "maintainer",
];

/// The Levenshtein distance of two strings.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// docker's "(did you mean X?)": the closest option within two edits, in `val`'s case.
pub fn suggest(val: &str, options: &[&str]) -> Option<String> {
    let lower = val.to_ascii_lowercase();
    let mut best: Option<(&str, usize)> = None;
    for opt in options {
        let o = opt.to_ascii_lowercase();
        if o == lower {
            return None;
        }
        let d = distance(&lower, &o);
        if d < best.map_or(3, |b| b.1) {
            best = Some((opt, d));
        }
    }
    let (m, _) = best?;
    Some(if val == val.to_ascii_lowercase() {
        m.to_ascii_lowercase()
    } else if val == val.to_ascii_uppercase() {
        m.to_ascii_uppercase()
    } else {
        m.to_string()
    })
}

fn with_suggestion(message: String, val: &str, options: &[&str]) -> String {
    match suggest(val, options) {
        Some(m) => format!("{message} (did you mean {m}?)"),
        None => message,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Str,
    Strs,
}

/// The `--flags` of an instruction, read against what it accepts (docker's BFlags).
struct Flags {
    values: BTreeMap<&'static str, Vec<String>>,
}

impl Flags {
    fn parse(given: &[String], accepted: &[(&'static str, Kind)]) -> Result<Flags, String> {
        let mut values: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        for a in given {
            if a == "--" {
                break;
            }
            let Some(body) = a.strip_prefix("--") else {
                return Err(format!("arg should start with -- : {a}"));
            };
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let flag_name = format!("--{name}");
            let Some((key, kind)) = accepted.iter().find(|(k, _)| *k == name) else {
                let names: Vec<&str> = accepted.iter().map(|(k, _)| *k).collect();
                return Err(with_suggestion(
                    format!("unknown flag: {flag_name}"),
                    name,
                    &names,
                ));
            };
            if values.contains_key(key) && *kind != Kind::Strs {
                return Err(format!("duplicate flag specified: {flag_name}"));
            }
            let v = match (kind, value) {
                (Kind::Bool, Some("")) => {
                    return Err(format!("missing a value on flag: {flag_name}"))
                }
                (Kind::Bool, None) => "true".to_string(),
                (Kind::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                    "true" => "true".into(),
                    "false" => "false".into(),
                    _ => {
                        return Err(format!(
                            "expecting boolean value for flag {flag_name}, not: {v}"
                        ))
                    }
                },
                (_, None) => return Err(format!("missing a value on flag: {flag_name}")),
                (_, Some(v)) => v.to_string(),
            };
            values.entry(key).or_default().push(v);
        }
        Ok(Flags { values })
    }

    fn string(&self, name: &str) -> Option<String> {
        self.values.get(name).and_then(|v| v.last().cloned())
    }

    fn strings(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }

    fn bool(&self, name: &str) -> Option<bool> {
        self.string(name).map(|v| v == "true")
    }
}

fn no_flags(node: &Node) -> Result<(), String> {
    Flags::parse(&node.flags, &[]).map(|_| ())
}

fn at_least_one(cmd: &str) -> String {
    format!("{cmd} requires at least one argument")
}

fn exactly_one(cmd: &str) -> String {
    format!("{cmd} requires exactly one argument")
}

fn command_line(node: &Node, args: &Args) -> CommandLine {
    let list = args.list();
    let shell_form = !args.is_json();
    CommandLine {
        args: if shell_form && !list.is_empty() {
            vec![list.join(" ")]
        } else {
            list
        },
        shell_form,
        files: node.heredocs.clone(),
    }
}

fn pairs(node: &Node, cmd: &str) -> Result<Vec<KeyValue>, String> {
    no_flags(node)?;
    let Args::Pairs(p) = &node.args else {
        return Err(at_least_one(cmd));
    };
    p.iter()
        .map(|(k, v, legacy)| {
            if k.is_empty() {
                return Err(format!("{cmd} names can not be blank"));
            }
            Ok(KeyValue {
                key: k.clone(),
                value: v.clone(),
                legacy: *legacy,
            })
        })
        .collect()
}

fn copy(node: &Node, add: bool) -> Result<Copy, String> {
    let name = if add { "ADD" } else { "COPY" };
    let args = node.args.list();
    if args.len() < 2 {
        return Err(format!(
            "{name} requires at least two arguments, but only one was provided. Destination could not be determined"
        ));
    }
    let accepted: &[(&str, Kind)] = if add {
        &[
            ("chown", Kind::Str),
            ("chmod", Kind::Str),
            ("link", Kind::Bool),
            ("keep-git-dir", Kind::Bool),
            ("checksum", Kind::Str),
            ("unpack", Kind::Bool),
            ("exclude", Kind::Strs),
        ]
    } else {
        &[
            ("chown", Kind::Str),
            ("from", Kind::Str),
            ("chmod", Kind::Str),
            ("link", Kind::Bool),
            ("exclude", Kind::Strs),
            ("parents", Kind::Bool),
        ]
    };
    let flags = Flags::parse(&node.flags, accepted)?;
    if flags.bool("parents") == Some(true) {
        return Err(
            "COPY --parents is not supported by berth; copy each directory with a COPY of its own"
                .into(),
        );
    }
    if flags.bool("keep-git-dir").is_some() {
        return Err("ADD --keep-git-dir is for Git sources, which berth does not fetch".into());
    }
    let (dest, sources) = args.split_last().expect("two or more");
    if parser::heredoc_of(dest)?.is_some() {
        return Err(format!("{name} cannot accept a heredoc as a destination"));
    }
    let mut out = Copy {
        dest: dest.clone(),
        from: flags.string("from"),
        chown: flags.string("chown"),
        chmod: flags.string("chmod"),
        link: flags.bool("link").unwrap_or(false),
        excludes: flags.strings("exclude"),
        checksum: flags.string("checksum"),
        unpack: flags.bool("unpack"),
        ..Copy::default()
    };
    for src in sources {
        match parser::heredoc_of(src)? {
            Some(h) => {
                let doc = node.heredocs.iter().find(|d| d.name == h.name);
                out.inline.push(InlineSource {
                    path: h.name.clone(),
                    data: doc.map(Heredoc::body).unwrap_or_default(),
                    expand: h.expand,
                });
            }
            None => out.sources.push(src.clone()),
        }
    }
    Ok(out)
}

/// A duration as Go's `time.ParseDuration` reads it (`30s`, `1m30s`, `1.5h`, `500ms`, `-2s`,
/// `0`), in nanoseconds; the error is Go's text, which docker prints. HEALTHCHECK's
/// durations and the CLI's (`--health-interval`, `--since 10m`, `--stop-timeout`…) alike.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration \"{s}\"");
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        if num.is_empty() || num == "." {
            return Err(invalid());
        }
        let n: f64 = num.parse().map_err(|_| invalid())?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let scale = match unit {
            "" => return Err(format!("time: missing unit in duration \"{s}\"")),
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            other => {
                return Err(format!(
                    "time: unknown unit \"{other}\" in duration \"{s}\""
                ))
            }
        };
        total += n * scale;
        if total > i64::MAX as f64 {
            return Err(invalid());
        }
        rest = next;
    }
    let n = total.round() as i64;
    Ok(if negative { -n } else { n })
}

fn interval(flags: &Flags, name: &str) -> Result<i64, String> {
    let Some(v) = flags.string(name).filter(|v| !v.is_empty()) else {
        return Ok(0);
    };
    let d = parse_duration(&v)?;
    if d != 0 && d < 1_000_000 {
        return Err(format!("Interval {name:?} cannot be less than 1ms"));
    }
    Ok(d)
}

fn healthcheck(node: &Node) -> Result<Health, String> {
    let Args::Health(kind, cmd) = &node.args else {
        return Err(at_least_one("HEALTHCHECK"));
    };
    let typ = kind.to_ascii_uppercase();
    if typ == "NONE" {
        if !matches!(**cmd, Args::Empty) {
            return Err("HEALTHCHECK NONE takes no arguments".into());
        }
        return Ok(Health {
            test: vec!["NONE".into()],
            ..Health::default()
        });
    }
    let flags = Flags::parse(
        &node.flags,
        &[
            ("interval", Kind::Str),
            ("timeout", Kind::Str),
            ("start-period", Kind::Str),
            ("start-interval", Kind::Str),
            ("retries", Kind::Str),
        ],
    )?;
    if typ != "CMD" {
        return Err(format!("Unknown type {typ:?} in HEALTHCHECK (try CMD)"));
    }
    let line = command_line(node, cmd);
    if line.args.is_empty() {
        return Err("Missing command after HEALTHCHECK CMD".into());
    }
    let mut test = vec![if line.shell_form { "CMD-SHELL" } else { "CMD" }.to_string()];
    test.extend(line.args);
    let retries = match flags.string("retries").filter(|r| !r.is_empty()) {
        None => 0,
        Some(r) => {
            let n: i64 = r
                .parse()
                .map_err(|_| format!("strconv.ParseInt: parsing {r:?}: invalid syntax"))?;
            if n < 0 {
                return Err(format!("--retries cannot be negative ({n})"));
            }
            n
        }
    };
    Ok(Health {
        test,
        interval: interval(&flags, "interval")?,
        timeout: interval(&flags, "timeout")?,
        start_period: interval(&flags, "start-period")?,
        start_interval: interval(&flags, "start-interval")?,
        retries,
    })
}

fn one_text(node: &Node, cmd: &str) -> Result<String, String> {
    match &node.args {
        Args::Text(t) => {
            no_flags(node)?;
            Ok(t.clone())
        }
        _ => Err(exactly_one(cmd)),
    }
}

/// Reads one node (not FROM) into an instruction.
fn instruction(node: &Node) -> Result<Instruction, String> {
    let kw = node.keyword();
    Ok(match kw.as_str() {
        "env" => Instruction::Env(pairs(node, "ENV")?),
        "label" => Instruction::Label(pairs(node, "LABEL")?),
        "maintainer" => Instruction::Maintainer(one_text(node, "MAINTAINER")?),
        "add" => Instruction::Add(copy(node, true)?),
        "copy" => Instruction::Copy(copy(node, false)?),
        "workdir" => Instruction::Workdir(one_text(node, "WORKDIR")?),
        "user" => Instruction::User(one_text(node, "USER")?),
        "stopsignal" => Instruction::StopSignal(one_text(node, "STOPSIGNAL")?),
        "onbuild" => {
            let Args::Sub(sub) = &node.args else {
                return Err(at_least_one("ONBUILD"));
            };
            no_flags(node)?;
            let trigger = sub.keyword().to_ascii_uppercase();
            match trigger.as_str() {
                "ONBUILD" => {
                    return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into())
                }
                "MAINTAINER" | "FROM" => {
                    return Err(format!("{trigger} isn't allowed as an ONBUILD trigger"))
                }
                _ => {}
            }
            let t = node.original.trim_start();
            let mut expr = t[node.command.len()..].trim_start().to_string();
            for h in &node.heredocs {
                expr.push('\n');
                expr.push_str(&h.content);
                expr.push_str(&h.name);
            }
            Instruction::Onbuild(expr)
        }
        "run" => {
            let flags = Flags::parse(
                &node.flags,
                &[
                    ("mount", Kind::Strs),
                    ("network", Kind::Str),
                    ("security", Kind::Str),
                ],
            )?;
            let network = flags.string("network").unwrap_or_else(|| "default".into());
            if !matches!(network.as_str(), "default" | "none" | "host") {
                return Err(format!("invalid network mode {network:?}"));
            }
            match flags.string("security").as_deref() {
                None | Some("sandbox") => {}
                Some("insecure") => {
                    return Err("RUN --security=insecure needs an entitlement berth does not grant: run the step without it".into())
                }
                Some(other) => return Err(format!("unsupported security mode {other:?}")),
            }
            Instruction::Run(Run {
                cmd: command_line(node, &node.args),
                mounts: flags.strings("mount"),
                network,
            })
        }
        "cmd" => {
            no_flags(node)?;
            Instruction::Cmd(command_line(node, &node.args))
        }
        "entrypoint" => {
            no_flags(node)?;
            Instruction::Entrypoint(command_line(node, &node.args))
        }
        "healthcheck" => Instruction::Healthcheck(healthcheck(node)?),
        "expose" => {
            let mut ports = node.args.list();
            if ports.is_empty() {
                return Err(at_least_one("EXPOSE"));
            }
            no_flags(node)?;
            ports.sort();
            Instruction::Expose(ports)
        }
        "volume" => {
            let vols = node.args.list();
            if vols.is_empty() {
                return Err(at_least_one("VOLUME"));
            }
            no_flags(node)?;
            let mut out = Vec::new();
            for v in vols {
                let v = v.trim();
                if v.is_empty() {
                    return Err("VOLUME specified can not be an empty string".into());
                }
                out.push(v.to_string());
            }
            Instruction::Volume(out)
        }
        "arg" => {
            let words = node.args.list();
            if words.is_empty() {
                return Err(at_least_one("ARG"));
            }
            no_flags(node)?;
            let mut defs = Vec::new();
            for w in words {
                defs.push(match w.split_once('=') {
                    Some(("", _)) => return Err("ARG names can not be blank".into()),
                    Some((k, v)) => ArgDef {
                        key: k.to_string(),
                        default: Some(v.to_string()),
                    },
                    None => ArgDef {
                        key: w,
                        default: None,
                    },
                });
            }
            Instruction::Arg(defs)
        }
        "shell" => {
            no_flags(node)?;
            let line = command_line(node, &node.args);
            if line.args.is_empty() {
                return Err(at_least_one("SHELL"));
            }
            if line.shell_form {
                return Err(format!(
                    "SHELL requires the arguments to be in JSON form: {}",
                    node.original.trim()
                ));
            }
            Instruction::Shell(line.args)
        }
        _ => {
            return Err(with_suggestion(
                format!("unknown instruction: {}", node.command),
                &node.command,
                KNOWN,
            ))
        }
    })
}

fn stage(node: &Node) -> Result<Stage, String> {
    let args = node.args.list();
    let name = match args.as_slice() {
        [_, as_, name] if as_.eq_ignore_ascii_case("as") => {
            let lower = name.to_ascii_lowercase();
            let mut chars = lower.chars();
            let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')
                });
            if !valid {
                return Err(format!(
                    "invalid name for build stage: {name:?}, name can't start with a number or contain symbols"
                ));
            }
            Some(lower)
        }
        [_] => None,
        _ => return Err("FROM requires either one or three arguments".into()),
    };
    let flags = Flags::parse(&node.flags, &[("platform", Kind::Str)])?;
    Ok(Stage {
        base: args[0].clone(),
        name,
        platform: flags.string("platform"),
        text: node.original.trim().to_string(),
        line: node.start_line,
        commands: vec![],
    })
}

/// Reads a node that may be an ONBUILD trigger too: the instruction with its place.
pub fn command(node: &Node) -> Result<Command, ParseError> {
    let instruction = instruction(node).map_err(at(node))?;
    Ok(Command {
        instruction,
        text: node.original.trim().to_string(),
        line: node.start_line,
        end_line: node.end_line,
    })
}

/// Reads one instruction given alone (`commit --change`, `import --change`) with the
/// Dockerfile's own parser: the instruction's word (lower case) and what it says.
pub fn single(text: &str) -> Result<(String, Instruction), String> {
    let df = parser::parse(text).map_err(|e| e.message)?;
    match df.nodes.as_slice() {
        [node] if node.keyword() == "from" => Err("from is not a valid change command".into()),
        [node] => Ok((node.keyword(), instruction(node)?)),
        [] => Err("a change needs an instruction".into()),
        _ => Err(format!("one instruction per change: {text:?}")),
    }
}

/// Reads a whole Dockerfile.
pub fn parse(text: &str) -> Result<File, ParseError> {
    let df = parser::parse(text)?;
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for node in &df.nodes {
        if node.keyword() == "from" {
            stages.push(stage(node).map_err(at(node))?);
            continue;
        }
        let cmd = command(node)?;
        match stages.last_mut() {
            Some(s) => s.commands.push(cmd),
            None if matches!(cmd.instruction, Instruction::Arg(_)) => global_args.push(cmd),
            None => {
                return Err(ParseError {
                    line: node.start_line,
                    message: "no build stage in current context".into(),
                })
            }
        }
    }
    if stages.is_empty() {
        return Err(ParseError {
            line: df.nodes.last().map_or(0, |n| n.end_line),
            message: "dockerfile contains no stages to build".into(),
        });
    }
    Ok(File {
        directives: df.directives,
        global_args,
        stages,
        warnings: df.warnings,
    })
}

/// EXPOSE's port specs: `80`, `80/udp`, `8000-8002/tcp` (each port of a range), docker's
/// `ip:host:container` accepted for the container part.
pub fn expose_ports(raw: &str) -> std::result::Result<Vec<String>, String> {
    let parts: Vec<&str> = raw.split(':').collect();
    let container = parts.last().copied().unwrap_or_default();
    let (port, proto) = match container.split_once('/') {
        Some((p, proto)) => (p, proto),
        None => (container, "tcp"),
    };
    if port.is_empty() {
        return Err(format!("invalid port: {raw:?}: no port specified"));
    }
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid port: {raw:?}: invalid proto: {proto}"));
    }
    let num = |s: &str| -> std::result::Result<u32, String> {
        s.parse::<u32>()
            .ok()
            .filter(|n| *n <= 65535)
            .ok_or_else(|| format!("invalid containerPort: {port}"))
    };
    let (start, end) = match port.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(port)?, num(port)?),
    };
    if end < start {
        return Err(format!("invalid containerPort: {port}"));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(expose_ports("80").unwrap(), ["80/tcp"]);
        assert_eq!(expose_ports("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(
            expose_ports("8000-8002").unwrap(),
            ["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert_eq!(expose_ports("127.0.0.1:80:8080").unwrap(), ["8080/tcp"]);
        assert!(expose_ports("x").is_err());
        assert!(expose_ports("80/xyz").is_err());
        assert!(expose_ports("70000").is_err());
    }

    fn only(text: &str) -> Instruction {
        let f = parse(&format!("FROM scratch\n{text}\n")).unwrap();
        f.stages[0].commands[0].instruction.clone()
    }

    #[test]
    fn instructions_read() {
        let shell = |s: &str| CommandLine {
            args: vec![s.into()],
            shell_form: true,
            files: vec![],
        };
        let exec = |v: &[&str]| CommandLine {
            args: v.iter().map(|s| s.to_string()).collect(),
            shell_form: false,
            files: vec![],
        };
        let cases: Vec<(&str, Instruction)> = vec![
            (
                "RUN echo hi",
                Instruction::Run(Run {
                    cmd: shell("echo hi"),
                    mounts: vec![],
                    network: "default".into(),
                }),
            ),
            (
                "RUN --network=none --mount=type=cache,target=/c [\"a\", \"b\"]",
                Instruction::Run(Run {
                    cmd: exec(&["a", "b"]),
                    mounts: vec!["type=cache,target=/c".into()],
                    network: "none".into(),
                }),
            ),
            ("CMD [\"a\"]", Instruction::Cmd(exec(&["a"]))),
            (
                "ENTRYPOINT top -b",
                Instruction::Entrypoint(shell("top -b")),
            ),
            (
                "SHELL [\"/bin/bash\", \"-c\"]",
                Instruction::Shell(vec!["/bin/bash".into(), "-c".into()]),
            ),
            (
                "ENV A=1 B=2",
                Instruction::Env(vec![
                    KeyValue {
                        key: "A".into(),
                        value: "1".into(),
                        legacy: false,
                    },
                    KeyValue {
                        key: "B".into(),
                        value: "2".into(),
                        legacy: false,
                    },
                ]),
            ),
            (
                "ARG A B=x",
                Instruction::Arg(vec![
                    ArgDef {
                        key: "A".into(),
                        default: None,
                    },
                    ArgDef {
                        key: "B".into(),
                        default: Some("x".into()),
                    },
                ]),
            ),
            (
                "EXPOSE 8080 80/udp 443",
                Instruction::Expose(vec!["443".into(), "80/udp".into(), "8080".into()]),
            ),
            (
                "VOLUME [\"/a\", \"/b\"]",
                Instruction::Volume(vec!["/a".into(), "/b".into()]),
            ),
            ("WORKDIR /app", Instruction::Workdir("/app".into())),
            ("USER 1000:1000", Instruction::User("1000:1000".into())),
            (
                "STOPSIGNAL SIGKILL",
                Instruction::StopSignal("SIGKILL".into()),
            ),
            (
                "MAINTAINER me <me@x>",
                Instruction::Maintainer("me <me@x>".into()),
            ),
            (
                "ONBUILD RUN echo $X",
                Instruction::Onbuild("RUN echo $X".into()),
            ),
            (
                "HEALTHCHECK --interval=1m30s --retries=3 CMD curl -f x",
                Instruction::Healthcheck(Health {
                    test: vec!["CMD-SHELL".into(), "curl -f x".into()],
                    interval: 90_000_000_000,
                    retries: 3,
                    ..Health::default()
                }),
            ),
            (
                "HEALTHCHECK NONE",
                Instruction::Healthcheck(Health {
                    test: vec!["NONE".into()],
                    ..Health::default()
                }),
            ),
            (
                "COPY --from=build --chown=1:1 --chmod=644 --link a b* /dst/",
                Instruction::Copy(Copy {
                    sources: vec!["a".into(), "b*".into()],
                    dest: "/dst/".into(),
                    from: Some("build".into()),
                    chown: Some("1:1".into()),
                    chmod: Some("644".into()),
                    link: true,
                    ..Copy::default()
                }),
            ),
            (
                "ADD --checksum=sha256:ab http://x/y /y",
                Instruction::Add(Copy {
                    sources: vec!["http://x/y".into()],
                    dest: "/y".into(),
                    checksum: Some("sha256:ab".into()),
                    ..Copy::default()
                }),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(only(text), want, "{text}");
        }
        match only("COPY <<EOF /x\nhello $X\nEOF") {
            Instruction::Copy(c) => {
                assert!(c.sources.is_empty());
                assert_eq!(
                    c.inline,
                    vec![InlineSource {
                        path: "EOF".into(),
                        data: "hello $X\n".into(),
                        expand: true
                    }]
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stages_and_global_args() {
        let f = parse(
            "ARG BASE=busybox\nFROM ${BASE} AS Build\nRUN x\nFROM --platform=linux/amd64 build\nCOPY --from=build / /\n",
        )
        .unwrap();
        assert_eq!(f.global_args.len(), 1);
        assert_eq!(f.stages.len(), 2);
        assert_eq!(f.stages[0].name.as_deref(), Some("build"));
        assert_eq!(f.stages[0].base, "${BASE}");
        assert_eq!(f.stages[1].platform.as_deref(), Some("linux/amd64"));
        assert_eq!(f.stages[1].commands[0].line, 5);
    }

    #[test]
    fn errors_are_dockers() {
        let cases = [
            ("FROM x\nBOGUS bar", "dockerfile parse error on line 2: unknown instruction: BOGUS"),
            ("FROM x\nFOO bar", "dockerfile parse error on line 2: unknown instruction: FOO (did you mean FROM?)"),
            ("FROM x\nRUNN x", "dockerfile parse error on line 2: unknown instruction: RUNN (did you mean RUN?)"),
            ("FROM x\ncopyy a b", "dockerfile parse error on line 2: unknown instruction: copyy (did you mean copy?)"),
            ("RUN x", "dockerfile parse error on line 1: no build stage in current context"),
            ("ARG x", "dockerfile parse error on line 1: dockerfile contains no stages to build"),
            ("FROM", "dockerfile parse error on line 1: FROM requires either one or three arguments"),
            ("FROM a b", "dockerfile parse error on line 1: FROM requires either one or three arguments"),
            ("FROM a AS 1x", "dockerfile parse error on line 1: invalid name for build stage: \"1x\", name can't start with a number or contain symbols"),
            ("FROM --platfrom=x a", "dockerfile parse error on line 1: unknown flag: --platfrom (did you mean platform?)"),
            ("FROM x\nCOPY a", "dockerfile parse error on line 2: COPY requires at least two arguments, but only one was provided. Destination could not be determined"),
            ("FROM x\nCOPY --bogus=1 a b", "dockerfile parse error on line 2: unknown flag: --bogus"),
            ("FROM x\nCOPY --from a b", "dockerfile parse error on line 2: missing a value on flag: --from"),
            ("FROM x\nCOPY --link=maybe a b", "dockerfile parse error on line 2: expecting boolean value for flag --link, not: maybe"),
            ("FROM x\nCOPY --from=a --from=b a b", "dockerfile parse error on line 2: duplicate flag specified: --from"),
            ("FROM x\nCOPY --checksum=x a b", "dockerfile parse error on line 2: unknown flag: --checksum"),
            ("FROM x\nCOPY a <<EOF\nx\nEOF", "dockerfile parse error on line 2: COPY cannot accept a heredoc as a destination"),
            ("FROM x\nENV", "dockerfile parse error on line 2: ENV requires at least one argument"),
            ("FROM x\nLABEL", "dockerfile parse error on line 2: LABEL requires at least one argument"),
            ("FROM x\nENV =x", "dockerfile parse error on line 2: ENV names can not be blank"),
            ("FROM x\nARG =x", "dockerfile parse error on line 2: ARG names can not be blank"),
            ("FROM x\nWORKDIR", "dockerfile parse error on line 2: WORKDIR requires exactly one argument"),
            ("FROM x\nUSER", "dockerfile parse error on line 2: USER requires exactly one argument"),
            ("FROM x\nEXPOSE", "dockerfile parse error on line 2: EXPOSE requires at least one argument"),
            ("FROM x\nVOLUME", "dockerfile parse error on line 2: VOLUME requires at least one argument"),
            ("FROM x\nSHELL /bin/bash -c", "dockerfile parse error on line 2: SHELL requires the arguments to be in JSON form: SHELL /bin/bash -c"),
            ("FROM x\nSHELL []", "dockerfile parse error on line 2: SHELL requires at least one argument"),
            ("FROM x\nONBUILD ONBUILD RUN x", "dockerfile parse error on line 2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
            ("FROM x\nONBUILD FROM y", "dockerfile parse error on line 2: FROM isn't allowed as an ONBUILD trigger"),
            ("FROM x\nHEALTHCHECK CMD", "dockerfile parse error on line 2: Missing command after HEALTHCHECK CMD"),
            ("FROM x\nHEALTHCHECK NONE x", "dockerfile parse error on line 2: HEALTHCHECK NONE takes no arguments"),
            ("FROM x\nHEALTHCHECK RUN x", "dockerfile parse error on line 2: Unknown type \"RUN\" in HEALTHCHECK (try CMD)"),
            ("FROM x\nHEALTHCHECK --interval=1us CMD x", "dockerfile parse error on line 2: Interval \"interval\" cannot be less than 1ms"),
            ("FROM x\nHEALTHCHECK --timeout=abc CMD x", "dockerfile parse error on line 2: time: invalid duration \"abc\""),
            ("FROM x\nHEALTHCHECK --retries=-1 CMD x", "dockerfile parse error on line 2: --retries cannot be negative (-1)"),
            ("FROM x\nRUN --network=bridge x", "dockerfile parse error on line 2: invalid network mode \"bridge\""),
            ("FROM x\nRUN --mount x", "dockerfile parse error on line 2: missing a value on flag: --mount"),
            ("FROM x\nENV --x=1 A=b", "dockerfile parse error on line 2: unknown flag: --x"),
            ("FROM x\n\nRUNN a \\\n b", "dockerfile parse error on line 3: unknown instruction: RUNN (did you mean RUN?)"),
        ];
        for (text, want) in cases {
            let got = parse(text).map(|_| ()).unwrap_err().to_string();
            assert_eq!(got, want, "{text:?}");
        }
    }

    #[test]
    fn durations() {
        for (s, n) in [
            ("0", 0),
            ("30s", 30_000_000_000),
            ("1m30s", 90_000_000_000),
            ("1.5h", 5_400_000_000_000),
            ("500ms", 500_000_000),
            ("250us", 250_000),
            ("-2s", -2_000_000_000),
            ("1h2m3s4ms", 3_723_004_000_000),
        ] {
            assert_eq!(parse_duration(s), Ok(n), "{s}");
        }
        for (s, msg) in [
            ("", r#"time: invalid duration """#),
            ("1", r#"time: missing unit in duration "1""#),
            ("1x", r#"time: unknown unit "x" in duration "1x""#),
            ("s", r#"time: invalid duration "s""#),
            ("1s-", r#"time: unknown unit "s-" in duration "1s-""#),
            ("1..2s", r#"time: invalid duration "1..2s""#),
        ] {
            assert_eq!(parse_duration(s), Err(msg.to_string()), "{s}");
        }
    }
}
