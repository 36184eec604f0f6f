//! `--format`: Go's text/template, as docker's CLI runs it, over JSON values.
//!
//! The language is Go's own, from the `gotmpl` crate (a port of text/template checked against
//! Go's output): variables (`$x := …`, `range $i, $e := …`), pipelines and parenthesised
//! pipelines, `if/else if/else/with/range/break/continue/end`, `define`/`template`, `{{- -}}`
//! trimming, and Go's functions (`and or not eq ne lt le gt ge index slice len print printf
//! println call html js urlquery`). On top, what docker adds (its `templates` package):
//! `json`, `split`, `join`, `title`, `lower`, `upper`, `pad`, `truncate`; the header row of a
//! `table` format is rendered with docker's header functions (which leave the column titles
//! as they are). docker's formatters give some rows methods: `.Label "key"` (ps, volume ls,
//! network ls) reads one label, here from the row's `Labels`.
//!
//! The crate parses; [`super::exec`] runs the trees as Go's executor does. A value is read as
//! JSON (every object a map, whose missing key is an error: docker's inspect of a document
//! it decoded) or through a command's [`Schema`] of Go's types (a field missing from a struct
//! is an error, a key missing from a map no value). A present null prints as `<no value>`.
//! Maps print as Go prints them (`map[k:v]`, keys sorted), lists as `[a b]`.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::parse::{Expr, ListNode, Node, PipeNode, SmolStr};
use gotmpl::{TemplateError, Value as Go};
use serde_json::Value;

use super::exec::{Func, Funcs, Param, Schema, Sig, Trees, Val};

/// The name every parsed format is kept under.
const NAME: &str = "format";
/// docker's formatter methods that take arguments, and the function each becomes.
const METHODS: &[(&str, &str)] = &[("Label", "__method_label")];

/// A parsed `--format` value.
#[derive(Clone)]
pub struct Template {
    trees: Option<Arc<Trees>>,
    /// The format began with `table`.
    pub table: bool,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Template")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

fn want_str<'a>(name: &str, v: &'a Val) -> Result<&'a str, String> {
    v.as_str().ok_or_else(|| {
        format!(
            "wrong type for value; expected string; got {} ({name})",
            v.type_name()
        )
    })
}

/// docker's `json`: the value as JSON on one line, HTML characters left alone.
fn json(args: &[Val]) -> Result<Val, String> {
    Ok(Val::str(args[0].json_text()))
}

fn split(args: &[Val]) -> Result<Val, String> {
    let (s, sep) = (want_str("split", &args[0])?, want_str("split", &args[1])?);
    let parts: Vec<Val> = if sep.is_empty() {
        s.chars().map(|c| Val::str(c.to_string())).collect()
    } else {
        s.split(sep).map(Val::str).collect()
    };
    Ok(Val::strings(parts))
}

/// docker's `join`: a list's elements as Go prints them, between `sep`; a map's values,
/// sorted; nil is empty.
fn join(args: &[Val]) -> Result<Val, String> {
    let sep = want_str("join", &args[1])?;
    match &args[0].nil_as_empty() {
        Val::Invalid | Val::Null | Val::Nil(_) => Ok(Val::str("")),
        Val::List(items, _) => Ok(Val::str(
            items
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(sep),
        )),
        Val::Map(m, _) => {
            let mut values: Vec<String> = m.values().map(|v| v.to_string()).collect();
            values.sort();
            Ok(Val::str(values.join(sep)))
        }
        other => Err(format!("expected slice, got {}", other.type_name())),
    }
}

/// Go's `strings.Title`: each letter that follows a separator upper-cased.
fn title(args: &[Val]) -> Result<Val, String> {
    let mut out = String::new();
    let mut after_separator = true;
    for c in want_str("title", &args[0])?.chars() {
        if after_separator {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        after_separator = !(c.is_alphanumeric() || c == '_');
    }
    Ok(Val::str(out))
}

fn lower(args: &[Val]) -> Result<Val, String> {
    Ok(Val::str(want_str("lower", &args[0])?.to_lowercase()))
}

fn upper(args: &[Val]) -> Result<Val, String> {
    Ok(Val::str(want_str("upper", &args[0])?.to_uppercase()))
}

/// docker's `pad`: spaces before and after a non-empty string.
fn pad(args: &[Val]) -> Result<Val, String> {
    let s = want_str("pad", &args[0])?;
    if s.is_empty() {
        return Ok(Val::str(""));
    }
    let n = |v: &Val| v.as_int().unwrap_or(0).max(0) as usize;
    Ok(Val::str(format!(
        "{}{s}{}",
        " ".repeat(n(&args[1])),
        " ".repeat(n(&args[2]))
    )))
}

/// docker's `truncate`: the first `n` bytes (here: no further than a character's start).
fn truncate(args: &[Val]) -> Result<Val, String> {
    let s = want_str("truncate", &args[0])?;
    let n = args[1].as_int().unwrap_or(0).max(0) as usize;
    if s.len() < n {
        return Ok(Val::str(s));
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Ok(Val::str(&s[..end]))
}

/// A table's header row keeps each column's title as it is (docker's `HeaderFunctions`).
fn title_as_is(args: &[Val]) -> Result<Val, String> {
    Ok(args.first().cloned().unwrap_or(Val::Invalid))
}

/// docker's `Label` method of its list rows: one label's value, empty when it has none. The
/// row's `Labels` is a map, or docker's `k=v,k2=v2` text.
fn method_label(args: &[Val]) -> Result<Val, String> {
    let key = want_str("Label", &args[1])?;
    let labels = args[0].get("Labels");
    let value = match labels {
        Some(Val::Map(m, _)) => m.get(key).map(|v| v.to_string()),
        Some(Val::Str(s)) => s
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string()),
        _ => None,
    };
    Ok(Val::str(value.unwrap_or_default()))
}

/// Go's `not`.
fn not(args: &[Val]) -> Result<Val, String> {
    Ok(Val::Bool(!args[0].truth()))
}

/// Go's `len`.
fn len(args: &[Val]) -> Result<Val, String> {
    match &args[0].nil_as_empty() {
        Val::Str(s) => Ok(Val::Int(s.len() as i64)),
        Val::List(l, _) => Ok(Val::Int(l.len() as i64)),
        Val::Map(m, _) => Ok(Val::Int(m.len() as i64)),
        Val::Invalid | Val::Null => Err("len of untyped nil".into()),
        other => Err(format!("len of type {}", other.type_name())),
    }
}

/// Go's `index`: into lists and strings by number, maps by key (a missing key is the
/// elements' zero value).
fn index(args: &[Val]) -> Result<Val, String> {
    let mut item = args[0].clone();
    for i in &args[1..] {
        item = item.nil_as_empty();
        item = match (&item, i) {
            (Val::Invalid | Val::Null, _) => return Err("index of untyped nil".into()),
            (Val::List(..) | Val::Str(_), i) => {
                let len = match &item {
                    Val::List(l, _) => l.len(),
                    Val::Str(s) => s.len(),
                    _ => 0,
                };
                let n = match i {
                    Val::Int(n) => *n,
                    Val::Uint(u) => i64::try_from(*u).unwrap_or(i64::MAX),
                    Val::Invalid | Val::Null => {
                        return Err("cannot index slice/array with nil".into())
                    }
                    other => {
                        return Err(format!(
                            "cannot index slice/array with type {}",
                            other.type_name()
                        ))
                    }
                };
                if n < 0 || n as usize >= len {
                    return Err(format!("index out of range: {n}"));
                }
                match &item {
                    Val::List(l, _) => l[n as usize].clone(),
                    Val::Str(s) => Val::Uint(u64::from(s.as_bytes()[n as usize])),
                    _ => Val::Invalid,
                }
            }
            (Val::Map(m, ty), Val::Str(k)) => m.get(k).cloned().unwrap_or_else(|| Val::zero_of(ty)),
            (Val::Map(_, ty), other) => {
                return Err(format!(
                    "value has type {}; should be string ({ty})",
                    other.type_name()
                ))
            }
            (other, _) => return Err(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(item)
}

/// Go's `slice`.
fn slice(args: &[Val]) -> Result<Val, String> {
    let item = &args[0].nil_as_empty();
    let len = match item {
        Val::List(l, _) => l.len(),
        Val::Str(s) => s.len(),
        Val::Invalid | Val::Null => return Err("slice of untyped nil".into()),
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    if args.len() > 4 {
        return Err(format!("too many slice indexes: {}", args.len() - 1));
    }
    let mut idx = [0, len];
    for (n, i) in args[1..].iter().take(2).enumerate() {
        let v = i
            .as_int()
            .ok_or_else(|| format!("cannot index slice/array with type {}", i.type_name()))?;
        if v < 0 || v as usize > len {
            return Err(format!("index out of range: {v}"));
        }
        idx[n] = v as usize;
    }
    if idx[0] > idx[1] {
        return Err(format!("invalid slice index: {} > {}", idx[0], idx[1]));
    }
    Ok(match item {
        Val::List(l, ty) => Val::List(l[idx[0]..idx[1]].to_vec().into(), ty),
        Val::Str(s) => Val::str(s.get(idx[0]..idx[1]).unwrap_or("")),
        _ => Val::Invalid,
    })
}

#[derive(PartialEq)]
enum Kind {
    Bool,
    Int,
    Uint,
    Float,
    Str,
    Other,
}

fn kind(v: &Val) -> Kind {
    match v {
        Val::Bool(_) => Kind::Bool,
        Val::Int(_) => Kind::Int,
        Val::Uint(_) => Kind::Uint,
        Val::Float(_) => Kind::Float,
        Val::Str(_) => Kind::Str,
        Val::Named(inner, _) => kind(inner),
        _ => Kind::Other,
    }
}

/// Go's ordering of two basic values of kinds that compare.
fn compare(a: &Val, b: &Val) -> Result<std::cmp::Ordering, String> {
    use std::cmp::Ordering;
    let bad = || "incompatible types for comparison".to_string();
    let under = |v: &'_ Val| match v {
        Val::Named(inner, _) => (**inner).clone(),
        other => other.clone(),
    };
    Ok(match (&under(a), &under(b)) {
        (Val::Int(x), Val::Int(y)) => x.cmp(y),
        (Val::Uint(x), Val::Uint(y)) => x.cmp(y),
        (Val::Int(x), Val::Uint(y)) => match u64::try_from(*x) {
            Ok(x) => x.cmp(y),
            Err(_) => Ordering::Less,
        },
        (Val::Uint(x), Val::Int(y)) => match u64::try_from(*y) {
            Ok(y) => x.cmp(&y),
            Err(_) => Ordering::Greater,
        },
        (Val::Float(x), Val::Float(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (Val::Str(x), Val::Str(y)) => x.cmp(y),
        _ => return Err(bad()),
    })
}

/// Go's `eq`: the first argument equal to any of the others.
fn eq(args: &[Val]) -> Result<Val, String> {
    let a = &args[0];
    if args.len() < 2 {
        return Err("missing argument for comparison".into());
    }
    for b in &args[1..] {
        let equal = match (kind(a), kind(b)) {
            (Kind::Bool, Kind::Bool) => a.truth() == b.truth(),
            (Kind::Other, _) | (_, Kind::Other) => match (a, b) {
                (Val::Invalid | Val::Null, Val::Invalid | Val::Null) => true,
                (Val::Invalid | Val::Null, _) | (_, Val::Invalid | Val::Null) => false,
                _ => return Err("incompatible types for comparison".into()),
            },
            _ => compare(a, b)? == std::cmp::Ordering::Equal,
        };
        if equal {
            return Ok(Val::Bool(true));
        }
    }
    Ok(Val::Bool(false))
}

fn ne(args: &[Val]) -> Result<Val, String> {
    Ok(Val::Bool(!eq(args)?.truth()))
}

fn ordered(args: &[Val]) -> Result<std::cmp::Ordering, String> {
    for v in args {
        if matches!(kind(v), Kind::Bool | Kind::Other) {
            return Err("invalid type for comparison".into());
        }
    }
    compare(&args[0], &args[1])
}

fn lt(args: &[Val]) -> Result<Val, String> {
    Ok(Val::Bool(ordered(args)?.is_lt()))
}

fn le(args: &[Val]) -> Result<Val, String> {
    Ok(Val::Bool(ordered(args)?.is_le()))
}

fn gt(args: &[Val]) -> Result<Val, String> {
    Ok(Val::Bool(ordered(args)?.is_gt()))
}

fn ge(args: &[Val]) -> Result<Val, String> {
    Ok(Val::Bool(ordered(args)?.is_ge()))
}

/// A function of Go's `fmt` (`print`, `printf`, …), run by the template crate, whose
/// formatting is Go's: a template that calls it on its data's arguments, parsed once for each
/// function and number of arguments.
fn through_gotmpl(name: &'static str, args: &[Val]) -> Result<Val, String> {
    type Calls = std::collections::HashMap<(&'static str, usize), Arc<gotmpl::Template>>;
    static CALLS: std::sync::OnceLock<std::sync::Mutex<Calls>> = std::sync::OnceLock::new();
    let t = {
        let mut calls = CALLS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match calls.entry((name, args.len())) {
            std::collections::hash_map::Entry::Occupied(e) => e.get().clone(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let call: String = (0..args.len())
                    .map(|i| format!(" (index .a {i})"))
                    .collect();
                let t = gotmpl::Template::new("f")
                    .parse(&format!("{{{{{name}{call}}}}}"))
                    .map_err(|e| e.to_string())?;
                e.insert(Arc::new(t)).clone()
            }
        }
    };
    let data = Go::Map(Arc::new(BTreeMap::from([(
        Arc::from("a"),
        Go::List(args.iter().map(Val::to_go).collect::<Vec<_>>().into()),
    )])));
    t.execute_to_string(&data)
        .map(Val::str)
        .map_err(|e| e.to_string())
}

fn print(args: &[Val]) -> Result<Val, String> {
    through_gotmpl("print", args)
}

fn printf(args: &[Val]) -> Result<Val, String> {
    through_gotmpl("printf", args)
}

fn println(args: &[Val]) -> Result<Val, String> {
    through_gotmpl("println", args)
}

fn html(args: &[Val]) -> Result<Val, String> {
    let text = print(args)?.to_string();
    Ok(Val::str(gotmpl::html_escape(&text)))
}

fn js(args: &[Val]) -> Result<Val, String> {
    let text = print(args)?.to_string();
    Ok(Val::str(gotmpl::js_escape(&text)))
}

fn urlquery(args: &[Val]) -> Result<Val, String> {
    let text = print(args)?.to_string();
    Ok(Val::str(gotmpl::url_encode(&text)))
}

fn call(args: &[Val]) -> Result<Val, String> {
    match &args[0] {
        Val::Invalid | Val::Null => Err("call of nil".into()),
        other => Err(format!("non-function of type {}", other.type_name())),
    }
}

const fn sig(params: &'static [Param], variadic: bool) -> Sig {
    Sig { params, variadic }
}

const ANY: &[Param] = &[Param::Any];
const ANY2: &[Param] = &[Param::Any, Param::Any];
const STR: &[Param] = &[Param::Str];
const STR2: &[Param] = &[Param::Str, Param::Str];

/// The functions of rows, or of a table's header row (docker's header functions, which leave
/// the titles as they are, except `pad`).
fn functions(header: bool) -> &'static Funcs {
    static ROWS: std::sync::OnceLock<Funcs> = std::sync::OnceLock::new();
    static HEADER: std::sync::OnceLock<Funcs> = std::sync::OnceLock::new();
    let build = move || {
        let mut f = Funcs::new();
        let go: [(&'static str, Sig, Func); 18] = [
            ("not", sig(ANY, false), not),
            ("len", sig(ANY, false), len),
            ("index", sig(ANY2, true), index),
            ("slice", sig(ANY2, true), slice),
            ("eq", sig(ANY2, true), eq),
            ("ne", sig(ANY2, false), ne),
            ("lt", sig(ANY2, false), lt),
            ("le", sig(ANY2, false), le),
            ("gt", sig(ANY2, false), gt),
            ("ge", sig(ANY2, false), ge),
            ("print", sig(ANY, true), print),
            ("printf", sig(&[Param::Str, Param::Any], true), printf),
            ("println", sig(ANY, true), println),
            ("html", sig(ANY, true), html),
            ("js", sig(ANY, true), js),
            ("urlquery", sig(ANY, true), urlquery),
            ("call", sig(ANY2, true), call),
            (
                "__method_label",
                sig(&[Param::Any, Param::Str], false),
                method_label,
            ),
        ];
        for (name, s, func) in go {
            f.insert(name, (s, func));
        }
        let docker: [(&'static str, Sig, Func); 8] = [
            ("json", sig(ANY, false), json),
            ("split", sig(STR2, false), split),
            ("join", sig(&[Param::Any, Param::Str], false), join),
            ("title", sig(STR, false), title),
            ("lower", sig(STR, false), lower),
            ("upper", sig(STR, false), upper),
            (
                "pad",
                sig(&[Param::Str, Param::Int, Param::Int], false),
                pad,
            ),
            ("truncate", sig(&[Param::Str, Param::Int], false), truncate),
        ];
        for (name, s, func) in docker {
            let as_is = header && name != "pad";
            f.insert(name, (s, if as_is { title_as_is as Func } else { func }));
        }
        f
    };
    match header {
        true => HEADER.get_or_init(build),
        false => ROWS.get_or_init(build),
    }
}

/// Go's own functions (text/template's builtins).
const BUILTINS: &[&str] = &[
    "and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "printf",
    "println", "urlquery", "eq", "ge", "gt", "le", "lt", "ne",
];

/// Go refuses a function it does not know when it parses, not when it runs.
fn known(e: &Expr) -> Result<(), (usize, String)> {
    match e {
        Expr::Identifier(pos, name) => {
            let name = name.as_str();
            let ours = functions(false).contains_key(name);
            if ours || BUILTINS.contains(&name) {
                Ok(())
            } else {
                Err((pos.line, format!("function {name:?} not defined")))
            }
        }
        Expr::Chain(_, inner, _) => known(inner),
        _ => Ok(()),
    }
}

/// `.Label "key"` (a method call in Go, on docker's rows) becomes `__method_label . "key"`;
/// each function named must exist.
fn methods_in_pipe(pipe: &mut PipeNode) -> Result<(), (usize, String)> {
    for cmd in &mut pipe.commands {
        for arg in &mut cmd.args {
            known(arg)?;
            if let Expr::Pipe(_, p) = arg {
                methods_in_pipe(p)?;
            }
        }
        let Some(first) = cmd.args.first() else {
            continue;
        };
        let last = |path: &[SmolStr]| -> Option<&'static str> {
            let name = path.last()?;
            METHODS
                .iter()
                .find(|(m, _)| name.as_str() == *m)
                .map(|(_, f)| *f)
        };
        let pos = first.pos();
        let (func, receiver) = match first {
            Expr::Field(_, path) => match last(path) {
                Some(f) if path.len() == 1 => (f, Expr::Dot(pos)),
                Some(f) => (f, Expr::Field(pos, path[..path.len() - 1].to_vec())),
                None => continue,
            },
            Expr::Variable(_, name, path) => match last(path) {
                Some(f) => (
                    f,
                    Expr::Variable(pos, name.clone(), path[..path.len() - 1].to_vec()),
                ),
                None => continue,
            },
            Expr::Chain(_, inner, fields) => match last(fields) {
                Some(f) if fields.len() == 1 => (f, (**inner).clone()),
                Some(f) => (
                    f,
                    Expr::Chain(pos, inner.clone(), fields[..fields.len() - 1].to_vec()),
                ),
                None => continue,
            },
            _ => continue,
        };
        cmd.args[0] = receiver;
        cmd.args
            .insert(0, Expr::Identifier(pos, SmolStr::from(func)));
    }
    Ok(())
}

fn methods_in_list(list: &mut ListNode) -> Result<(), (usize, String)> {
    for node in &mut list.nodes {
        match node {
            Node::List(l) => methods_in_list(l)?,
            Node::Action(a) => methods_in_pipe(&mut a.pipe)?,
            Node::If(b) | Node::Range(b) | Node::With(b) => {
                methods_in_pipe(&mut b.pipe)?;
                methods_in_list(&mut b.body)?;
                if let Some(e) = &mut b.else_body {
                    methods_in_list(e)?;
                }
            }
            Node::Template(t) => {
                if let Some(p) = &mut t.pipe {
                    methods_in_pipe(p)?;
                }
            }
            Node::Define(d) => methods_in_list(&mut d.body)?,
            _ => {}
        }
    }
    Ok(())
}

/// A variable's name at the start of `s` (`$`, `$x`, `$x1`), as Go's lexer reads one.
fn leading_variable(s: &str) -> Option<&str> {
    let tail = s.strip_prefix('$')?;
    let len = tail
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(tail.len());
    Some(&s[..1 + len])
}

/// Go's parser's checks of the variables a pipeline declares (text/template/parse's
/// `pipeline`), which the template crate does not make: two variables (`$i, $v :=`) only in
/// a range, a declaration followed by a value, and a pipeline that has one. Returns the
/// variables declared (or assigned: Go's parser adds those to the scope too).
fn check_declarations(inner: &str) -> Result<Vec<&str>, String> {
    // A right trim marker (`-}}`) is part of the delimiter.
    let inner = match inner.strip_suffix('-') {
        Some(r) if r.ends_with(char::is_whitespace) => r.trim_end(),
        _ => inner,
    };
    let word_of = |s: &str| -> usize {
        s.find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(s.len())
    };
    let mut rest = inner;
    // `else if` and `else with` carry a pipeline; `else` alone none.
    if rest[..word_of(rest)] == *"else" {
        rest = rest["else".len()..].trim_start();
        if rest.is_empty() {
            return Ok(vec![]);
        }
    }
    let word = &rest[..word_of(rest)];
    let context = match word {
        "if" | "range" | "with" => {
            rest = &rest[word.len()..];
            word
        }
        "end" | "define" | "block" | "template" | "break" | "continue" => return Ok(vec![]),
        _ => "command",
    };
    let mut declared = vec![];
    let mut pending = vec![];
    while let Some(var) = leading_variable(rest.trim_start()) {
        let after = &rest.trim_start()[var.len()..];
        let next = after.trim_start();
        if next.starts_with(":=") || (next.starts_with('=') && !next.starts_with("==")) {
            rest = &next[if next.starts_with(":=") { 2 } else { 1 }..];
            pending.push(var);
            declared.append(&mut pending);
            break;
        }
        if !next.starts_with(',') {
            break;
        }
        let peek = next[1..].trim_start();
        if context == "range" && pending.is_empty() {
            if peek.is_empty() || peek.starts_with('$') || peek.starts_with(')') {
                pending.push(var);
                rest = &next[1..];
                continue;
            }
            return Err("range can only initialize variables".into());
        }
        return Err(format!("too many declarations in {context}"));
    }
    if rest.trim().is_empty() {
        return Err(format!("missing value for {context}"));
    }
    Ok(declared)
}

/// The variables an action's source reads (`$`, `$x`, `$x.Field` reads `$x`), outside its
/// quoted strings.
fn variables_used(inner: &str) -> Vec<&str> {
    let (mut used, mut quote, mut i) = (vec![], None::<u8>, 0);
    let bytes = inner.as_bytes();
    while i < bytes.len() {
        match (quote, bytes[i]) {
            (Some(b'"' | b'\''), b'\\') => i += 1,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, c @ (b'"' | b'`' | b'\'')) => quote = Some(c),
            (None, b'$') => {
                let var = leading_variable(&inner[i..]).unwrap_or("$");
                used.push(var);
                i += var.len();
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    used
}

/// Go's parser refuses a field right after a literal (`1.5.Foo`, `"a".Foo`, `nil.Foo`).
fn term_then_field(term: &str, after: &str) -> Result<(), String> {
    let mut rest = after.chars();
    match (rest.next(), rest.next()) {
        (Some('.'), Some(c)) if c.is_alphanumeric() || c == '_' => {
            Err(format!("unexpected . after term {term:?}"))
        }
        _ => Ok(()),
    }
}

/// Go's lexer's and parser's checks of an action's operands, outside its quoted strings, which
/// the template crate does not make or words otherwise: parentheses that match, a `.` that
/// begins a field name (`.A.` and `..` are not), escapes Go's strings know.
fn check_operands(inner: &str) -> Result<(), String> {
    let (mut quote, mut depth, mut i, mut opened) = (None::<u8>, 0usize, 0, 0);
    let bytes = inner.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(b'"') if c == b'\\' => {
                let escape = bytes.get(i + 1).copied().unwrap_or(b' ');
                if !b"abfnrtv\\\"01234567xuU".contains(&escape) {
                    return Err("invalid syntax".into());
                }
                i += 1;
            }
            Some(b'\'') if c == b'\\' => i += 1,
            Some(q) if c == q => {
                quote = None;
                term_then_field(&inner[opened..=i], &inner[i + 1..])?;
            }
            Some(_) => {}
            None => match c {
                b'"' | b'`' | b'\'' => (quote, opened) = (Some(c), i),
                b'(' => depth += 1,
                b')' if depth == 0 => return Err("unexpected right paren".into()),
                b')' => depth -= 1,
                // A command begins with an operand: not with `|` (a `|` may end a pipeline).
                b'|' => {
                    let before = inner[..i].trim_end();
                    if before.is_empty() || before.ends_with(['|', '(', '=']) {
                        return Err("unexpected \"|\" in command".into());
                    }
                }
                // Go's lexer reads a number as digits and one fraction: a `.` and digits
                // right after it begin another number (`1.2.3`).
                b'0'..=b'9' if i == 0 || !(word(bytes[i - 1]) || bytes[i - 1] == b'.') => {
                    let digits = |from: usize| {
                        from + inner[from..]
                            .find(|c: char| !(c.is_ascii_digit() || c == '_'))
                            .unwrap_or(inner.len() - from)
                    };
                    let mut end = digits(i);
                    if bytes.get(end) == Some(&b'.') {
                        end = digits(end + 1);
                    }
                    if bytes.get(end) == Some(&b'.')
                        && bytes.get(end + 1).is_some_and(u8::is_ascii_digit)
                    {
                        let next = &inner[end..digits(end + 1)];
                        return Err(format!("unexpected {next:?} in operand"));
                    }
                    term_then_field(&inner[i..end], &inner[end..])?;
                    i = end;
                    continue;
                }
                b'.' => {
                    let before = &inner[..i];
                    let word_start = before
                        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .map_or(0, |w| w + 1);
                    let starts_term =
                        word_start == 0 || !matches!(bytes[word_start - 1], b'.' | b'$');
                    if starts_term && matches!(&before[word_start..], "true" | "false" | "nil") {
                        term_then_field(&before[word_start..], &inner[i..])?;
                    }
                    let after_operand = i > 0
                        && (word(bytes[i - 1]) && !bytes[i - 1].is_ascii_digit()
                            || matches!(bytes[i - 1], b'.' | b')' | b'$'));
                    let field = bytes.get(i + 1).is_some_and(|n| word(*n));
                    if after_operand && !field {
                        return Err("unexpected <.> in operand".into());
                    }
                }
                _ => {}
            },
        }
        i += 1;
    }
    if depth > 0 {
        return Err("unclosed left paren".into());
    }
    Ok(())
}

/// A block open while the source is read: its keyword, the scope it closes, and, for a
/// `define` or `block` (a template of its own), the scope outside it.
struct Open<'s> {
    word: &'s str,
    scope: usize,
    outer: Option<Vec<&'s str>>,
    /// Past its final `else`: a range's `else` is not inside the range, and nothing but
    /// `end` may follow it.
    in_else: bool,
}

/// Whether an action stands in a range's body: Go counts ranges within the template being
/// parsed (a `define`'s body starts at none).
fn in_range(open: &[Open]) -> bool {
    open.iter()
        .rev()
        .take_while(|o| o.outer.is_none())
        .any(|o| o.word == "range" && !o.in_else)
}

/// What Go's parser refuses and the template crate lets through, checked here first over the
/// actions of the source, in order: an `if`, `range`, `with`, `define` or `block` without its
/// `end`, and an `end` or `else` without one; declarations a pipeline cannot make; a variable
/// read outside the scope that declares it; `break` and `continue` outside a `range`; a
/// quoted string, raw string or character constant without its end. `name` is the
/// template's name in the errors (docker names `version`'s "version", the others "").
fn check_blocks(src: &str, name: &str) -> Result<(), String> {
    let error =
        |line: usize, msg: &dyn std::fmt::Display| format!("template: {name}:{line}: {msg}");
    let mut open: Vec<Open> = Vec::new();
    // The variables in scope (`$` always).
    let mut vars: Vec<&str> = vec!["$"];
    let mut rest = src;
    while let Some(start) = rest.find("{{") {
        let line = 1 + src[..src.len() - rest.len() + start].matches('\n').count();
        let action = &rest[start + 2..];
        // The action ends at the first `}}` outside a quoted string or a comment.
        let lead = action.len() - action.trim_start_matches('-').trim_start().len();
        let (mut end, mut quote, mut i) = (None, None::<(u8, usize)>, 0);
        if action[lead..].starts_with("/*") {
            // A comment runs to `*/`, whatever it holds.
            i = action.find("*/").map_or(action.len(), |c| c + 2);
        }
        let bytes = action.as_bytes();
        let unterminated = |q: u8, at: usize| {
            let line = line + action[..at].matches('\n').count();
            let what = match q {
                b'"' => "unterminated quoted string",
                b'`' => "unterminated raw quoted string",
                _ => "unterminated character constant",
            };
            error(line, &what)
        };
        while i < bytes.len() {
            match (quote, bytes[i]) {
                // A quoted string or character constant ends at its line's end, a raw string
                // may run over lines.
                (Some((q @ (b'"' | b'\''), at)), b'\n') => return Err(unterminated(q, at)),
                (Some((q @ (b'"' | b'\''), at)), b'\\') => {
                    if matches!(bytes.get(i + 1), None | Some(b'\n')) {
                        return Err(unterminated(q, at));
                    }
                    i += 1;
                }
                (Some((q, _)), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, c @ (b'"' | b'`' | b'\'')) => quote = Some((c, i)),
                (None, b'}') if bytes.get(i + 1) == Some(&b'}') => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        if let Some((q, at)) = quote {
            return Err(unterminated(q, at));
        }
        let Some(end) = end else {
            return Err(error(line, &"unclosed action"));
        };
        let inner = action[..end].trim_start_matches('-').trim();
        rest = &action[end + 2..];
        if inner.starts_with("/*") {
            continue;
        }
        let word = inner
            .split(|c: char| !c.is_ascii_alphanumeric())
            .next()
            .unwrap_or("");
        let declared = check_declarations(inner).map_err(|e| error(line, &e))?;
        match word {
            "if" | "range" | "with" => open.push(Open {
                word,
                scope: vars.len(),
                outer: None,
                in_else: false,
            }),
            // Go defines templates at the top level only.
            "define" if !open.is_empty() => {
                return Err(error(line, &"unexpected <define> in command"))
            }
            // A template of its own: `$` is its only variable, and no range is around it.
            "define" | "block" => open.push(Open {
                word,
                scope: 1,
                outer: Some(std::mem::replace(&mut vars, vec!["$"])),
                in_else: false,
            }),
            "else" => match open.last_mut() {
                None => return Err(error(line, &"unexpected {{else}}")),
                Some(o) if o.in_else => return Err(error(line, &"expected end; found {{else}}")),
                Some(o) => {
                    // `else if` continues an if, `else with` a with; nothing else continues.
                    let then = inner["else".len()..].trim_start();
                    let then = then
                        .split(|c: char| !c.is_ascii_alphanumeric())
                        .next()
                        .unwrap_or("");
                    match then {
                        "if" | "with" if then != o.word => {
                            return Err(error(line, &format!("unexpected <{then}> in input")))
                        }
                        "if" | "with" => {}
                        _ => o.in_else = true,
                    }
                }
            },
            "end" => match open.pop() {
                None => return Err(error(line, &"unexpected {{end}}")),
                Some(Open {
                    outer: Some(outer), ..
                }) => vars = outer,
                Some(o) => vars.truncate(o.scope),
            },
            "break" | "continue" if !in_range(&open) => {
                return Err(error(
                    line,
                    &format!("{{{{{word}}}}} outside {{{{range}}}}"),
                ))
            }
            _ => {}
        }
        // Go's parser adds a pipeline's variables to the scope before it reads its commands.
        vars.extend(declared);
        if let Some(v) = variables_used(inner)
            .into_iter()
            .find(|v| !vars.contains(v))
        {
            return Err(error(line, &format!("undefined variable {v:?}")));
        }
        check_operands(inner).map_err(|e| error(line, &e))?;
    }
    match open.last() {
        Some(_) => Err(error(1 + src.matches('\n').count(), &"unexpected EOF")),
        None => Ok(()),
    }
}

/// The template crate's parse error in Go's form: Go names the line, not the column.
fn go_parse_error(e: &TemplateError, name: &str) -> String {
    let text = e.to_string();
    let Some(rest) = text.strip_prefix(&format!("template: {NAME}:")) else {
        return text;
    };
    let mut parts = rest.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(line), Some(col), Some(msg))
            if line.parse::<usize>().is_ok() && col.parse::<usize>().is_ok() =>
        {
            format!("template: {name}:{line}:{msg}")
        }
        _ => format!("template: {name}:{rest}"),
    }
}

/// Parses `src` and turns method calls into function calls. `None` for a format with
/// nothing to render.
fn build(src: &str, name: &str) -> Result<Option<Arc<Trees>>, String> {
    check_blocks(src, name)?;
    // The template crate refuses a pipeline's last `|` with nothing after it; Go reads it as
    // no command (`{{.A |}}`). A space in its place keeps every position.
    let src = trailing_pipes(src);
    let mut parsed = gotmpl::Template::new(NAME);
    for (f, _) in functions(false).iter() {
        parsed = parsed.func(f, |_| Ok(Go::Nil));
    }
    let parsed = parsed.parse(&src).map_err(|e| go_parse_error(&e, name))?;
    let mut trees = BTreeMap::new();
    for tree_name in parsed.templates() {
        if let Some(tree) = parsed.lookup(tree_name) {
            let mut tree = tree.clone();
            methods_in_list(&mut tree)
                .map_err(|(line, e)| format!("template: {name}:{line}: {e}"))?;
            trees.insert(tree_name.to_string(), tree);
        }
    }
    if !trees.contains_key(NAME) {
        return Ok(None);
    }
    Ok(Some(Arc::new(Trees {
        src: src.into_owned(),
        name: name.to_string(),
        trees,
        main: NAME.to_string(),
    })))
}

/// `src` with each `|` that ends a pipeline (before `}}`, `-}}` or `)`, outside quoted
/// strings and comments) made a space.
fn trailing_pipes(src: &str) -> std::borrow::Cow<'_, str> {
    let bytes = src.as_bytes();
    let (mut inside, mut quote, mut out, mut i) = (false, None::<u8>, None::<Vec<u8>>, 0);
    while i < bytes.len() {
        let c = bytes[i];
        match (inside, quote) {
            (false, _) => {
                if src[i..].starts_with("{{") {
                    inside = true;
                    let after = src[i + 2..].trim_start_matches('-').trim_start();
                    if after.starts_with("/*") {
                        let end = src[i..].find("*/").map_or(bytes.len(), |e| i + e + 2);
                        inside = false;
                        i = end;
                        continue;
                    }
                    i += 1;
                }
            }
            (true, Some(q)) => {
                if c == b'\\' && q != b'`' {
                    i += 1;
                } else if c == q {
                    quote = None;
                }
            }
            (true, None) => match c {
                b'"' | b'`' | b'\'' => quote = Some(c),
                b'}' if bytes.get(i + 1) == Some(&b'}') => inside = false,
                b'|' => {
                    let rest = src[i + 1..].trim_start();
                    let ends = rest.starts_with("}}")
                        || rest.starts_with(')')
                        || (rest.starts_with("-}}") && src[i + 1..].len() > rest.len());
                    if ends {
                        out.get_or_insert_with(|| bytes.to_vec())[i] = b' ';
                    }
                }
                _ => {}
            },
        }
        i += 1;
    }
    match out {
        Some(o) => std::borrow::Cow::Owned(String::from_utf8(o).expect("ASCII replaced")),
        None => std::borrow::Cow::Borrowed(src),
    }
}

impl Template {
    /// Parses a listing's `--format` value (with docker's `\t` and `\n` escapes and `table`
    /// prefix);
    /// an error is Go's parse error (`template: :1: unclosed action`).
    #[cfg(test)]
    pub fn parse(format: &str) -> Result<Template, String> {
        Self::parse_as(format, "", true)
    }

    /// Parses a template Go knows by `name` in its errors (docker's `version` names its
    /// template "version"); a `list` format (docker's formatter's) may begin with `table`
    /// and has `\t` and `\n` read as a tab and a newline, others are read as they are.
    pub fn parse_as(format: &str, name: &str, list: bool) -> Result<Template, String> {
        let (table, rest) = match format.strip_prefix("table") {
            Some(r) if list && (r.is_empty() || r.starts_with([' ', '\t'])) => {
                (true, r.trim_start())
            }
            _ => (false, format),
        };
        let src = match list {
            true => rest.replace("\\t", "\t").replace("\\n", "\n"),
            false => rest.to_string(),
        };
        Ok(Template {
            trees: build(&src, name)?,
            table,
        })
    }

    fn run(&self, v: Val, header: bool, missing_key_error: bool) -> Result<String, Failed> {
        match &self.trees {
            Some(t) => t
                .execute(functions(header), v, missing_key_error)
                .map_err(|(partial, error)| Failed { partial, error }),
            None => Ok(String::new()),
        }
    }

    /// Renders the template for one value, each object in it a map whose missing key is an
    /// error (docker's inspect of a document read as JSON).
    pub fn render(&self, v: &Value) -> Result<String, Failed> {
        self.run(Val::from_json(v, None), false, true)
    }

    /// Renders the template for one value of Go's types as `schema` gives them: a field
    /// missing from a struct is an error, a key missing from a map no value.
    pub fn render_typed(&self, v: &Value, schema: &Schema) -> Result<String, Failed> {
        self.run(Val::from_json(v, Some(schema)), false, false)
    }

    /// Renders a `table` format's header row from the column titles (docker's map of them:
    /// a key missing is no value).
    pub fn render_header(&self, titles: &Value) -> Result<String, Failed> {
        let titles = Val::from_json(titles, Some(&HEADER));
        self.run(titles, self.table, false)
    }
}

/// A header row: a map of column titles.
const HEADER: Schema = Schema {
    root: "map[string]string",
    types: &[],
    raw_fallback: false,
};

/// A run that failed: Go's error, and what the template wrote before it.
#[derive(Debug)]
pub struct Failed {
    pub partial: String,
    pub error: String,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Formats and what docker prints for them: docker's documentation and its templates
    /// package's tests (`cli/templates`), and Go's text/template rules.
    #[test]
    fn renders_as_docker_does() {
        let inspect = json!({
            "Name": "/web",
            "Image": "sha256:4f2c",
            "Args": ["-g", "daemon off;"],
            "State": {"Status": "running", "Running": true, "Pid": 42, "ExitCode": 0},
            "Config": {"Cmd": ["sh", "-c"], "Env": null, "Labels": {"a": "b", "c": "d"}},
            "Mounts": [],
            "NetworkSettings": {
                "Ports": {
                    "443/tcp": null,
                    "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
                },
                "Networks": {"bridge": {"IPAddress": "10.89.0.2"}, "net1": {"IPAddress": "10.90.0.3"}},
            },
        });
        let cases: &[(&str, &str)] = &[
            ("{{.Name}}", "/web"),
            ("{{join .Args \" , \"}}", "-g , daemon off;"),
            ("{{json .Config.Cmd}}", r#"["sh","-c"]"#),
            ("{{json .Mounts}}", "[]"),
            ("{{lower .State.Status}} {{upper .State.Status}}", "running RUNNING"),
            ("{{title \"hello wide-world\"}}", "Hello Wide-World"),
            ("{{split .Image \":\"}}", "[sha256 4f2c]"),
            ("{{join (split .Image \":\") \"/\"}}", "sha256/4f2c"),
            ("{{truncate .Image 6}}|{{pad .State.Status 1 2}}|", "sha256| running  |"),
            ("{{.Config.Cmd}} {{.Config.Env}} {{.Config.Labels}}", "[sh -c] <no value> map[a:b c:d]"),
            // The issue's template: variables, range over a map (keys sorted), index into
            // a parenthesised pipeline.
            (
                "{{range $p, $conf := .NetworkSettings.Ports}}{{if $conf}}{{$p}} -> {{(index $conf 0).HostPort}}{{end}}{{end}}",
                "80/tcp -> 8080",
            ),
            (
                "{{range $i, $e := .Args}}{{if $i}},{{end}}{{$i}}={{$e}}{{end}}",
                "0=-g,1=daemon off;",
            ),
            (
                "{{range .NetworkSettings.Networks}}{{println .IPAddress}}{{end}}",
                "10.89.0.2\n10.90.0.3\n",
            ),
            ("{{$n := len .Args}}{{$n}} {{len .Config.Labels}}", "2 2"),
            ("{{index .Config.Labels \"c\"}} {{index .Args 1}}", "d daemon off;"),
            ("{{printf \"%s has pid %d\" .Name .State.Pid}}", "/web has pid 42"),
            ("{{printf \"%05.1f|%-4s|%x|%q\" 3.14159 \"ab\" 255 \"x\"}}", "003.1|ab  |ff|\"x\""),
            ("{{if eq .State.Status \"running\" \"paused\"}}up{{else}}down{{end}}", "up"),
            ("{{if and .State.Running (gt .State.Pid 1)}}y{{end}}", "y"),
            ("{{if or (ne .State.ExitCode 0) (not .State.Running)}}bad{{else}}ok{{end}}", "ok"),
            ("{{if lt 1 2}}{{if le 2 2}}{{if ge 3 2}}t{{end}}{{end}}{{end}}", "t"),
            ("{{with .State}}{{.Status}}{{end}}|{{with .Config.Env}}x{{else}}none{{end}}", "running|none"),
            ("{{.State.Status | upper | printf \"<%s>\"}}", "<RUNNING>"),
            ("{{- \" a \" -}} b", " a b"),
            ("{{/* a comment */}}ok", "ok"),
            ("{{define \"x\"}}[{{.}}]{{end}}{{template \"x\" .State.Status}}", "[running]"),
            ("{{range .Args}}{{if eq . \"-g\"}}{{continue}}{{end}}{{.}}{{end}}", "daemon off;"),
        ];
        for (format, want) in cases {
            let t = Template::parse(format).unwrap_or_else(|e| panic!("{format}: {e}"));
            assert_eq!(
                t.render(&inspect)
                    .unwrap_or_else(|e| panic!("{format}: {e}")),
                *want,
                "{format}"
            );
        }
        // join of a map: its values, sorted (docker's joinElements).
        assert_eq!(
            Template::parse("{{join .Config.Labels \", \"}}")
                .unwrap()
                .render(&inspect)
                .unwrap(),
            "b, d"
        );
    }

    #[test]
    fn rows_tables_and_methods() {
        let row =
            json!({"ID": "abc", "Names": "web", "Labels": "com.example.tier=front,maintainer=me"});
        let t =
            Template::parse("table {{.ID}}\\t{{.Label \"com.example.tier\"}}\\t{{upper .Names}}")
                .unwrap();
        assert!(t.table);
        assert_eq!(t.render(&row).unwrap(), "abc\tfront\tWEB");
        // The header keeps the titles as they are (docker's header functions).
        let titles = json!({"ID": "CONTAINER ID", "Names": "NAMES", "Labels": "LABELS"});
        assert_eq!(t.render_header(&titles).unwrap(), "CONTAINER ID\t\tNAMES");
        let r = |f: &str, v: &Value| Template::parse(f).unwrap().render(v).unwrap();
        assert_eq!(r("{{.Label \"nope\"}}|", &row), "|");
        assert_eq!(r("{{$c := .}}{{$c.Label \"maintainer\"}}", &row), "me");
        let with_map = json!({"Labels": {"k": "v"}});
        assert_eq!(r("{{.Label \"k\"}}", &with_map), "v");
        assert_eq!(
            r("{{json .}}", &row),
            r#"{"ID":"abc","Labels":"com.example.tier=front,maintainer=me","Names":"web"}"#
        );
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let v = json!({"A": "x", "L": [1]});
        for bad in [
            "{{.A",
            "{{nosuch .A}}",
            "{{if .A}}",
            "{{end}}",
            "{{else}}",
            "{{range .L}}{{with .}}{{end}}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
        for bad in [
            "{{.Nope}}",
            "{{index .L 5}}",
            "{{join .A \",\"}}",
            "{{truncate .L 1}}",
            "{{.A.B}}",
        ] {
            let t = Template::parse(bad).unwrap_or_else(|e| panic!("{bad}: {e}"));
            assert!(t.render(&v).is_err(), "{bad}");
        }
        assert_eq!(Template::parse("").unwrap().render(&v).unwrap(), "");
        // Braces inside strings and comments are no actions.
        let t = Template::parse("{{if eq .A \"}}{{end}}\"}}y{{else}}n{{end}}{{/* }} */}}").unwrap();
        assert_eq!(t.render(&v).unwrap(), "n");
    }
}
