//! docker's Go types (`docker_types.txt`: the struct declarations of moby's api/types that
//! docker's client decodes inspect documents into), read once: what Go's template engine
//! knows of a value and a JSON document lacks — a struct's fields in declaration order and
//! each field's type, so that a missing field is its zero value (`[]`, `map[]`, `<nil>`), a
//! struct prints as Go prints it, and an error names the type as Go does.
//!
//! A type is named by its Go string (`*container.State`, `[]string`, `nat.PortMap`), which
//! is also how Go's errors print it; [`kind`] says what such a name is underneath.

use std::collections::HashMap;
use std::sync::OnceLock;

const DECLS: &str = include_str!("docker_types.txt");

/// A field of a struct type.
#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    /// Its name in JSON (`json:"Id"`); none for a field JSON never sets (unexported).
    pub json: Option<&'static str>,
    pub ty: &'static str,
    /// An embedded field (its fields are the outer struct's, and its JSON the outer's).
    pub embedded: bool,
    pub omitempty: bool,
}

/// What a named or composite type is underneath.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Bool,
    Int,
    Uint,
    Float,
    Str,
    Ptr(&'static str),
    Slice(&'static str),
    Array(usize, &'static str),
    Map(&'static str, &'static str),
    Struct(&'static [Field]),
    /// `interface {}`, and a type not declared (read as JSON is).
    Iface,
}

enum Def {
    Struct(&'static [Field]),
    Under(&'static str),
}

struct Types {
    defs: HashMap<&'static str, Def>,
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn types() -> &'static Types {
    static TYPES: OnceLock<Types> = OnceLock::new();
    TYPES.get_or_init(|| parse(DECLS))
}

/// Whether `ty` is a declared type.
pub fn declared(ty: &str) -> bool {
    types().defs.contains_key(ty)
}

/// What `ty` is underneath.
pub fn kind(ty: &'static str) -> Kind {
    if let Some(elem) = ty.strip_prefix('*') {
        return Kind::Ptr(elem);
    }
    if let Some(elem) = ty.strip_prefix("[]") {
        return Kind::Slice(elem);
    }
    if let Some(rest) = ty.strip_prefix('[') {
        if let Some((n, elem)) = rest.split_once(']') {
            return Kind::Array(n.parse().unwrap_or(0), elem);
        }
    }
    if let Some(rest) = ty.strip_prefix("map[") {
        let end = closing_bracket(rest);
        return Kind::Map(&rest[..end], &rest[end + 1..]);
    }
    match ty {
        "bool" => return Kind::Bool,
        "int" | "int8" | "int16" | "int32" | "int64" | "rune" => return Kind::Int,
        "uint" | "uint8" | "uint16" | "uint32" | "uint64" | "byte" | "uintptr" => {
            return Kind::Uint
        }
        "float32" | "float64" => return Kind::Float,
        "string" => return Kind::Str,
        // Read as their JSON; exec.rs prints them with [`go_duration`] and [`go_time`].
        "time.Time" => return Kind::Str,
        "time.Duration" => return Kind::Int,
        _ => {}
    }
    match types().defs.get(ty) {
        Some(Def::Struct(fields)) => Kind::Struct(fields),
        Some(Def::Under(u)) => kind(u),
        None => Kind::Iface,
    }
}

/// The offset of the `]` that closes a `[` already read.
fn closing_bracket(s: &str) -> usize {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' if depth == 0 => return i,
            ']' => depth -= 1,
            _ => {}
        }
    }
    s.len()
}

const BUILTIN: &[&str] = &[
    "bool", "int", "int8", "int16", "int32", "int64", "rune", "uint", "uint8", "uint16", "uint32",
    "uint64", "byte", "uintptr", "float32", "float64", "string",
];

struct Parser<'a> {
    pkg: &'static str,
    aliases: &'a HashMap<String, &'static str>,
    defs: HashMap<&'static str, Def>,
}

impl Parser<'_> {
    /// A type expression's Go string, its names qualified with their package.
    fn canon(&mut self, t: &'static str) -> &'static str {
        let t = t.trim();
        if let Some(e) = t.strip_prefix('*') {
            return leak(format!("*{}", self.canon(e)));
        }
        if let Some(e) = t.strip_prefix("[]") {
            return leak(format!("[]{}", self.canon(e)));
        }
        if let Some(rest) = t.strip_prefix("map[") {
            let end = closing_bracket(rest);
            let (k, v) = (self.canon(&rest[..end]), self.canon(&rest[end + 1..]));
            return leak(format!("map[{k}]{v}"));
        }
        if let Some(rest) = t.strip_prefix('[') {
            let (n, e) = rest.split_once(']').unwrap_or((rest, ""));
            return leak(format!("[{n}]{}", self.canon(e)));
        }
        if let Some(body) = t.strip_prefix("struct") {
            let body = body.trim().trim_start_matches('{').trim_end_matches('}');
            let fields: Vec<Field> = body
                .split(';')
                .filter(|l| !l.trim().is_empty())
                .filter_map(|l| self.field(l))
                .collect();
            let name = match fields.is_empty() {
                true => "struct {}".to_string(),
                false => format!(
                    "struct {{ {} }}",
                    fields
                        .iter()
                        .map(|f| format!("{} {}", f.name, f.ty))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            };
            let name = leak(name);
            self.defs
                .insert(name, Def::Struct(Box::leak(fields.into_boxed_slice())));
            return name;
        }
        if t.starts_with("interface") || t == "any" {
            return "interface {}";
        }
        if t == "byte" {
            return "uint8";
        }
        if BUILTIN.contains(&t) || t.contains('.') {
            return self.aliases.get(t).copied().unwrap_or(t);
        }
        let q = format!("{}.{t}", self.pkg);
        self.aliases.get(&q).copied().unwrap_or_else(|| leak(q))
    }

    /// A field's line: `Name Type`, `Name Type \`json:"…"\``, or an embedded `*Type`.
    fn field(&mut self, line: &'static str) -> Option<Field> {
        let line = line.trim();
        let (decl, tag) = match line.split_once('`') {
            Some((d, t)) => (d.trim(), t.trim_end_matches('`')),
            None => (line, ""),
        };
        let (name, ty, embedded) = match decl.split_once(char::is_whitespace) {
            Some((n, t)) => (n, self.canon(t), false),
            None => {
                let ty = self.canon(decl);
                let base = ty.trim_start_matches('*');
                (base.rsplit('.').next().unwrap_or(base), ty, true)
            }
        };
        let json_tag = tag
            .split_once("json:\"")
            .map(|(_, r)| r.split('"').next().unwrap_or(""));
        let (json_name, opts) = json_tag.map_or(("", ""), |t| t.split_once(',').unwrap_or((t, "")));
        let exported = name.starts_with(|c: char| c.is_ascii_uppercase());
        Some(Field {
            name,
            json: (exported && json_name != "-").then_some(match json_name {
                "" => name,
                n => n,
            }),
            ty,
            embedded,
            omitempty: opts.split(',').any(|o| o == "omitempty"),
        })
    }
}

fn parse(text: &'static str) -> Types {
    let lines = || {
        text.lines()
            .map(|l| l.split("//").next().unwrap_or("").trim())
            .filter(|l| !l.is_empty())
    };
    // Aliases first (`type Ulimit = units.Ulimit`): an alias is its target's name.
    let mut aliases = HashMap::new();
    let mut pkg = "";
    for l in lines() {
        if let Some(p) = l.strip_prefix("package ") {
            pkg = p.trim();
        } else if let Some((name, target)) =
            l.strip_prefix("type ").and_then(|d| d.split_once(" = "))
        {
            let target = target.trim();
            let target = match BUILTIN.contains(&target) || target.contains('.') {
                true => target,
                false => leak(format!("{pkg}.{target}")),
            };
            aliases.insert(format!("{pkg}.{}", name.trim()), target);
        }
    }
    let mut p = Parser {
        pkg: "",
        aliases: &aliases,
        defs: HashMap::new(),
    };
    let mut open: Option<(&'static str, Vec<Field>)> = None;
    for l in lines() {
        if let Some((name, mut fields)) = open.take() {
            if l == "}" {
                p.defs
                    .insert(name, Def::Struct(Box::leak(fields.into_boxed_slice())));
            } else {
                fields.extend(p.field(l));
                open = Some((name, fields));
            }
            continue;
        }
        if let Some(pkg) = l.strip_prefix("package ") {
            p.pkg = pkg.trim();
            continue;
        }
        let Some(decl) = l.strip_prefix("type ") else {
            continue;
        };
        let Some((name, under)) = decl.split_once(char::is_whitespace) else {
            continue;
        };
        let under = under.trim();
        if under.starts_with('=') {
            continue;
        }
        let name = leak(format!("{}.{name}", p.pkg));
        if under == "struct {" {
            open = Some((name, Vec::new()));
        } else if under == "struct {}" {
            p.defs.insert(name, Def::Struct(&[]));
        } else {
            let u = p.canon(under);
            p.defs.insert(name, Def::Under(u));
        }
    }
    Types { defs: p.defs }
}

/// Whether `ty` is a named type whose `String` method berth applies when it prints one
/// ([`go_duration`], [`go_time`]).
pub fn has_string_method(ty: &str) -> bool {
    matches!(ty, "time.Duration" | "time.Time")
}

/// Go's `time.Duration.String`: `1h0m0s`, `1.5s`, `200ms`, `1.5µs`, `0s`.
pub fn go_duration(d: i64) -> String {
    if d == 0 {
        return "0s".into();
    }
    let u = d.unsigned_abs();
    // `v`'s last `prec` digits as a fraction without trailing zeros, and what is left.
    let frac = |v: u64, prec: u32| {
        let p = 10u64.pow(prec);
        let digits = format!("{:0width$}", v % p, width = prec as usize);
        let digits = digits.trim_end_matches('0');
        let text = if digits.is_empty() {
            String::new()
        } else {
            format!(".{digits}")
        };
        (text, v / p)
    };
    let body = if u < 1_000_000_000 {
        let (unit, prec) = match u {
            0..1_000 => ("ns", 0),
            1_000..1_000_000 => ("µs", 3),
            _ => ("ms", 6),
        };
        let (f, whole) = frac(u, prec);
        format!("{whole}{f}{unit}")
    } else {
        let (f, secs) = frac(u, 9);
        let (s, mins) = (secs % 60, secs / 60);
        let (m, h) = (mins % 60, mins / 60);
        match (h, mins) {
            (_, 0) => format!("{s}{f}s"),
            (0, _) => format!("{m}m{s}{f}s"),
            _ => format!("{h}h{m}m{s}{f}s"),
        }
    };
    match d < 0 {
        true => format!("-{body}"),
        false => body,
    }
}

/// Go's `time.Time.String` of an RFC 3339 time as JSON has it:
/// `2026-12-06 06:27:17.24 +0000 UTC` (a zone without a name is its offset again). A text
/// that is no time prints as it is.
pub fn go_time(t: &str) -> String {
    let Ok(time) = chrono::DateTime::parse_from_rfc3339(t) else {
        return t.to_string();
    };
    let nanos = time.timestamp_subsec_nanos();
    let frac = format!("{nanos:09}");
    let frac = match frac.trim_end_matches('0') {
        "" => String::new(),
        digits => format!(".{digits}"),
    };
    let offset = time.format("%z").to_string();
    let zone = match time.offset().local_minus_utc() {
        0 => "UTC".to_string(),
        _ => offset.clone(),
    };
    format!("{}{frac} {offset} {zone}", time.format("%Y-%m-%d %H:%M:%S"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations_read_as_go_names_them() {
        let Kind::Struct(fields) = kind("container.InspectResponse") else {
            panic!("not a struct");
        };
        assert!(fields[0].embedded && fields[0].ty == "*container.ContainerJSONBase");
        assert_eq!(fields[0].name, "ContainerJSONBase");
        let Kind::Struct(base) = kind("container.ContainerJSONBase") else {
            panic!("not a struct");
        };
        assert_eq!((base[0].name, base[0].json), ("ID", Some("Id")));
        assert_eq!(base[4].ty, "*container.State");
        let Kind::Struct(res) = kind("container.Resources") else {
            panic!("not a struct");
        };
        let ulimits = res.iter().find(|f| f.name == "Ulimits").unwrap();
        assert_eq!(ulimits.ty, "[]*units.Ulimit");
        let Kind::Struct(state) = kind("container.State") else {
            panic!("not a struct");
        };
        assert_eq!(state[0].ty, "string");
        assert!(matches!(
            kind("nat.PortMap"),
            Kind::Map("nat.Port", "[]nat.PortBinding")
        ));
        assert!(matches!(kind("[2]uint"), Kind::Array(2, "uint")));
        assert!(matches!(kind("container.NetworkMode"), Kind::Str));
        let Kind::Struct(config) = kind("container.Config") else {
            panic!("not a struct");
        };
        let volumes = config.iter().find(|f| f.name == "Volumes").unwrap();
        assert_eq!(volumes.ty, "map[string]struct {}");
        assert!(matches!(kind("struct {}"), Kind::Struct([])));
    }

    #[test]
    fn durations_and_times_print_as_go_prints_them() {
        for (d, want) in [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (200_000_000, "200ms"),
            (1_500_000_000, "1.5s"),
            (90_000_000_000, "1m30s"),
            (5_400_000_000_000, "1h30m0s"),
            (3_600_000_000_001, "1h0m0.000000001s"),
            (-61_000_000_000, "-1m1s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ] {
            assert_eq!(go_duration(d), want, "{d}");
        }
        for (t, want) in [
            (
                "2026-12-06T06:27:17.24Z",
                "2026-12-06 06:27:17.24 +0000 UTC",
            ),
            ("0001-01-01T00:00:00Z", "0001-01-01 00:00:00 +0000 UTC"),
            (
                "2026-12-06T07:27:17.000000001+01:00",
                "2026-12-06 07:27:17.000000001 +0100 +0100",
            ),
            ("not a time", "not a time"),
        ] {
            assert_eq!(go_time(t), want, "{t}");
        }
    }
}
