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
//! A missing field is an error, as a missing struct field is in Go; a present null prints as
//! `<no value>`. Maps print as Go prints them (`map[k:v]`, keys sorted), lists as `[a b]`.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::parse::{Expr, ListNode, Node, PipeNode, SmolStr};
use gotmpl::{MissingKey, TemplateError, Value as Go};
use serde_json::Value;

/// The name every parsed format is kept under.
const NAME: &str = "format";
/// docker's formatter methods that take arguments, and the function each becomes.
const METHODS: &[(&str, &str)] = &[("Label", "__method_label")];

/// A parsed `--format` value.
#[derive(Clone)]
pub struct Template {
    rows: Option<Box<gotmpl::Template>>,
    header: Option<Box<gotmpl::Template>>,
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

type Func = fn(&[Go]) -> Result<Go, TemplateError>;

fn fail(msg: impl Into<String>) -> TemplateError {
    TemplateError::Exec(msg.into())
}

fn want(name: &str, args: &[Go], n: usize) -> Result<(), TemplateError> {
    if args.len() != n {
        return Err(fail(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        )));
    }
    Ok(())
}

fn string_arg<'a>(name: &str, v: &'a Go) -> Result<&'a str, TemplateError> {
    v.as_str().ok_or_else(|| {
        fail(format!(
            "error calling {name}: wrong type for value; expected string; got {}",
            v.type_name()
        ))
    })
}

fn int_arg(name: &str, v: &Go) -> Result<i64, TemplateError> {
    v.as_int().ok_or_else(|| {
        fail(format!(
            "error calling {name}: wrong type for value; expected int; got {}",
            v.type_name()
        ))
    })
}

fn string(s: impl AsRef<str>) -> Go {
    Go::String(Arc::from(s.as_ref()))
}

/// docker's `json`: the value as JSON on one line, HTML characters left alone.
fn json(args: &[Go]) -> Result<Go, TemplateError> {
    want("json", args, 1)?;
    Ok(string(
        serde_json::to_string(&from_go(&args[0])).map_err(|e| fail(e.to_string()))?,
    ))
}

fn split(args: &[Go]) -> Result<Go, TemplateError> {
    want("split", args, 2)?;
    let (s, sep) = (
        string_arg("split", &args[0])?,
        string_arg("split", &args[1])?,
    );
    let parts: Vec<Go> = if sep.is_empty() {
        s.chars().map(|c| string(c.to_string())).collect()
    } else {
        s.split(sep).map(string).collect()
    };
    Ok(Go::List(parts.into()))
}

/// docker's `join`: a list's elements as Go prints them, between `sep`; a map's values,
/// sorted; nil is empty.
fn join(args: &[Go]) -> Result<Go, TemplateError> {
    want("join", args, 2)?;
    let sep = string_arg("join", &args[1])?;
    match &args[0] {
        Go::Nil => Ok(string("")),
        Go::List(items) => Ok(string(
            items
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(sep),
        )),
        Go::Map(m) => {
            let mut values: Vec<String> = m.values().map(|v| v.to_string()).collect();
            values.sort();
            Ok(string(values.join(sep)))
        }
        other => Err(fail(format!(
            "error calling join: expected slice, got {}",
            other.type_name()
        ))),
    }
}

/// Go's `strings.Title`: each letter that follows a separator upper-cased.
fn title(args: &[Go]) -> Result<Go, TemplateError> {
    want("title", args, 1)?;
    let mut out = String::new();
    let mut after_separator = true;
    for c in string_arg("title", &args[0])?.chars() {
        if after_separator {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        after_separator = !(c.is_alphanumeric() || c == '_');
    }
    Ok(string(out))
}

fn lower(args: &[Go]) -> Result<Go, TemplateError> {
    want("lower", args, 1)?;
    Ok(string(string_arg("lower", &args[0])?.to_lowercase()))
}

fn upper(args: &[Go]) -> Result<Go, TemplateError> {
    want("upper", args, 1)?;
    Ok(string(string_arg("upper", &args[0])?.to_uppercase()))
}

/// docker's `pad`: spaces before and after a non-empty string.
fn pad(args: &[Go]) -> Result<Go, TemplateError> {
    want("pad", args, 3)?;
    let s = string_arg("pad", &args[0])?;
    if s.is_empty() {
        return Ok(string(""));
    }
    let (before, after) = (int_arg("pad", &args[1])?, int_arg("pad", &args[2])?);
    let spaces = |n: i64| " ".repeat(n.max(0) as usize);
    Ok(string(format!("{}{s}{}", spaces(before), spaces(after))))
}

/// docker's `truncate`: the first `n` bytes (here: no further than a character's start).
fn truncate(args: &[Go]) -> Result<Go, TemplateError> {
    want("truncate", args, 2)?;
    let s = string_arg("truncate", &args[0])?;
    let n = int_arg("truncate", &args[1])?.max(0) as usize;
    if s.len() < n {
        return Ok(string(s));
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Ok(string(&s[..end]))
}

/// A table's header row keeps each column's title as it is (docker's `HeaderFunctions`).
fn title_as_is(args: &[Go]) -> Result<Go, TemplateError> {
    Ok(args.first().cloned().unwrap_or(Go::Nil))
}

/// docker's `Label` method of its list rows: one label's value, empty when it has none. The
/// row's `Labels` is a map, or docker's `k=v,k2=v2` text.
fn method_label(args: &[Go]) -> Result<Go, TemplateError> {
    want("Label", args, 2)?;
    let key = string_arg("Label", &args[1])?;
    let value = match args[0].field("Labels") {
        Some(Go::Map(m)) => m.get(key).map(|v| v.to_string()),
        Some(Go::String(s)) => s
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string()),
        _ => None,
    };
    Ok(string(value.unwrap_or_default()))
}

fn functions(header: bool) -> Vec<(&'static str, Func)> {
    let docker: [(&'static str, Func); 8] = [
        ("json", json),
        ("split", split),
        ("join", join),
        ("title", title),
        ("lower", lower),
        ("upper", upper),
        ("pad", pad),
        ("truncate", truncate),
    ];
    let mut out: Vec<(&'static str, Func)> = docker
        .into_iter()
        .map(|(name, f)| {
            let as_is = header && name != "pad";
            (name, if as_is { title_as_is as Func } else { f })
        })
        .collect();
    out.push(("__method_label", method_label));
    out
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
            let ours = functions(false).iter().any(|(n, _)| *n == name);
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

/// Go's lexer's and parser's checks of an action's operands, outside its quoted strings, which
/// the template crate does not make or words otherwise: parentheses that match, a `.` that
/// begins a field name (`.A.` and `..` are not), escapes Go's strings know.
fn check_operands(inner: &str) -> Result<(), String> {
    let (mut quote, mut depth, mut i) = (None::<u8>, 0usize, 0);
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
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                b'"' | b'`' | b'\'' => quote = Some(c),
                b'(' => depth += 1,
                b')' if depth == 0 => return Err("unexpected right paren".into()),
                b')' => depth -= 1,
                b'.' => {
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

/// Parses `src` with the functions of rows or of a header, and turns method calls into
/// function calls. `None` for a format with nothing to render.
fn build(src: &str, name: &str, header: bool) -> Result<Option<Box<gotmpl::Template>>, String> {
    let with_funcs = |mut t: gotmpl::Template| {
        for (name, f) in functions(header) {
            t = t.func(name, f);
        }
        t.missing_key(MissingKey::Error)
    };
    check_blocks(src, name)?;
    let parsed = with_funcs(gotmpl::Template::new(NAME))
        .parse(src)
        .map_err(|e| go_parse_error(&e, name))?;
    let mut out = with_funcs(gotmpl::Template::new(NAME));
    let mut any = false;
    for tree_name in parsed.templates() {
        if let Some(tree) = parsed.lookup(tree_name) {
            let mut tree = tree.clone();
            methods_in_list(&mut tree)
                .map_err(|(line, e)| format!("template: {name}:{line}: {e}"))?;
            any |= tree_name == NAME;
            out = out.add_parse_tree(tree_name, tree);
        }
    }
    Ok(any.then(|| Box::new(out)))
}

/// A JSON value as the template engine's.
fn to_go(v: &Value) -> Go {
    match v {
        Value::Null => Go::Nil,
        Value::Bool(b) => Go::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Go::Int(i),
            (None, Some(u)) => Go::Uint(u),
            _ => Go::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => string(s),
        Value::Array(a) => Go::List(a.iter().map(to_go).collect::<Vec<_>>().into()),
        Value::Object(m) => Go::Map(Arc::new(
            m.iter()
                .map(|(k, v)| (Arc::from(k.as_str()), to_go(v)))
                .collect::<BTreeMap<_, _>>(),
        )),
    }
}

/// The engine's value as JSON (for `json`).
fn from_go(v: &Go) -> Value {
    match v {
        Go::Nil => Value::Null,
        Go::Bool(b) => Value::Bool(*b),
        Go::Int(i) => Value::from(*i),
        Go::Uint(u) => Value::from(*u),
        Go::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Go::String(s) => Value::String(s.to_string()),
        Go::List(items) => Value::Array(items.iter().map(from_go).collect()),
        Go::Map(m) => Value::Object(m.iter().map(|(k, v)| (k.to_string(), from_go(v))).collect()),
        other => Value::String(other.to_string()),
    }
}

/// An error of a template run, in Go's words where the template crate's differ (Go's adds
/// where in the template it happened, which the crate does not say).
fn exec_error(e: &TemplateError) -> String {
    let msg = match e {
        TemplateError::MissingKey { key } => format!("map has no entry for key {key:?}"),
        TemplateError::UndefinedTemplate(name) => format!("template {name:?} not defined"),
        TemplateError::Exec(msg) => msg.clone(),
        other => other.to_string(),
    };
    format!("template: {msg}")
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
            rows: build(&src, name, false)?,
            header: if table {
                build(&src, name, true)?
            } else {
                None
            },
            table,
        })
    }

    fn run(t: &Option<Box<gotmpl::Template>>, v: &Value) -> Result<String, String> {
        match t {
            Some(t) => t
                .execute_template_to_string(NAME, &to_go(v))
                .map_err(|e| exec_error(&e)),
            None => Ok(String::new()),
        }
    }

    /// Renders the template for one value.
    pub fn render(&self, v: &Value) -> Result<String, String> {
        Self::run(&self.rows, v)
    }

    /// Renders with a key missing from a map read as no value (Go's default for maps), not
    /// as an error: for a value whose maps stand for Go's nil maps.
    pub fn render_lenient(&self, v: &Value) -> Result<String, String> {
        let lenient = self
            .rows
            .as_ref()
            .map(|t| Box::new((**t).clone().missing_key(MissingKey::Invalid)));
        Self::run(&lenient, v)
    }

    /// Renders a `table` format's header row from the column titles.
    pub fn render_header(&self, titles: &Value) -> Result<String, String> {
        let t = if self.header.is_some() {
            &self.header
        } else {
            &self.rows
        };
        Self::run(t, titles)
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
