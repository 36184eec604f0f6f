//! `--format`: the part of Go's text/template that docker users script with, over JSON values.
//!
//! Supported: text, `{{.}}`, `{{.A.B}}`, `{{json X}}`, `{{index X "key"}}`, `{{join X ","}}`,
//! `{{upper X}}`, `{{lower X}}`, `{{len X}}`, `{{println X}}`, `{{range X}}…{{end}}`,
//! `{{if X}}…{{else}}…{{end}}`, `{{- … -}}` trimming, and a leading `table ` that turns the
//! format into aligned columns with a header row, as docker's formatter does. Values print as
//! Go prints them: strings bare, lists as `[a b]`, maps as `map[k:v]`, null as `<no value>`.

use serde_json::Value;

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Expr),
    Range(Expr, Vec<Node>),
    If(Expr, Vec<Node>, Vec<Node>),
}

#[derive(Debug, Clone)]
enum Arg {
    Path(Vec<String>),
    Str(String),
    Num(i64),
}

#[derive(Debug, Clone)]
struct Expr {
    func: Option<String>,
    args: Vec<Arg>,
}

/// A parsed `--format` value.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
    /// The format began with `table`.
    pub table: bool,
}

enum Tok {
    Text(String),
    Act(String),
}

fn tokenize(src: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(start) = rest.find("{{") {
        let mut text = rest[..start].to_string();
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or("unclosed action: missing }}")?;
        let mut inner = &after[..end];
        if let Some(s) = inner.strip_prefix('-') {
            inner = s;
            text = text.trim_end().to_string();
        }
        let mut trim_next = false;
        if let Some(s) = inner.strip_suffix('-') {
            inner = s;
            trim_next = true;
        }
        out.push(Tok::Text(text));
        out.push(Tok::Act(inner.trim().to_string()));
        rest = &after[end + 2..];
        if trim_next {
            rest = rest.trim_start();
        }
    }
    out.push(Tok::Text(rest.to_string()));
    Ok(out)
}

fn parse_args(s: &str) -> Result<Vec<Arg>, String> {
    let mut args = Vec::new();
    let mut chars = s.trim().chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '"' {
            chars.next();
            let mut v = String::new();
            loop {
                match chars.next() {
                    Some('\\') => v.push(chars.next().unwrap_or('\\')),
                    Some('"') => break,
                    Some(c) => v.push(c),
                    None => return Err("unterminated string".into()),
                }
            }
            args.push(Arg::Str(v));
            continue;
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            word.push(c);
            chars.next();
        }
        if word == "." {
            args.push(Arg::Path(vec![]));
        } else if let Some(p) = word.strip_prefix('.') {
            args.push(Arg::Path(p.split('.').map(str::to_string).collect()));
        } else if let Ok(n) = word.parse::<i64>() {
            args.push(Arg::Num(n));
        } else {
            return Err(format!("function {word:?} not defined"));
        }
    }
    Ok(args)
}

fn parse_expr(s: &str) -> Result<Expr, String> {
    let s = s.trim();
    let first = s.split_whitespace().next().unwrap_or("");
    const FUNCS: &[&str] = &[
        "json", "index", "join", "upper", "lower", "len", "println", "title",
    ];
    if FUNCS.contains(&first) {
        Ok(Expr {
            func: Some(first.to_string()),
            args: parse_args(&s[first.len()..])?,
        })
    } else {
        let args = parse_args(s)?;
        if args.len() != 1 {
            return Err(format!("cannot evaluate {s:?}"));
        }
        Ok(Expr { func: None, args })
    }
}

fn parse_nodes(
    toks: &mut std::iter::Peekable<std::vec::IntoIter<Tok>>,
    until: &[&str],
) -> Result<(Vec<Node>, Option<String>), String> {
    let mut nodes = Vec::new();
    while let Some(t) = toks.next() {
        match t {
            Tok::Text(s) => {
                if !s.is_empty() {
                    nodes.push(Node::Text(s))
                }
            }
            Tok::Act(a) => {
                if until.contains(&a.as_str()) {
                    return Ok((nodes, Some(a)));
                }
                if let Some(e) = a.strip_prefix("range ") {
                    let (body, end) = parse_nodes(toks, &["end"])?;
                    end.ok_or("range without end")?;
                    nodes.push(Node::Range(parse_expr(e)?, body));
                } else if let Some(e) = a.strip_prefix("if ") {
                    let (then, end) = parse_nodes(toks, &["end", "else"])?;
                    let els = match end.as_deref() {
                        Some("else") => {
                            let (els, end) = parse_nodes(toks, &["end"])?;
                            end.ok_or("if without end")?;
                            els
                        }
                        Some(_) => Vec::new(),
                        None => return Err("if without end".into()),
                    };
                    nodes.push(Node::If(parse_expr(e)?, then, els));
                } else if a == "end" || a == "else" {
                    return Err(format!("unexpected {{{{{a}}}}}"));
                } else if a.starts_with("/*") {
                    // a comment
                } else {
                    nodes.push(Node::Action(parse_expr(&a)?));
                }
            }
        }
    }
    Ok((nodes, None))
}

impl Template {
    /// Parses a `--format` value (with docker's `\t` and `\n` escapes and `table` prefix).
    pub fn parse(format: &str) -> Result<Template, String> {
        let (table, rest) = match format.strip_prefix("table") {
            Some(r) if r.is_empty() || r.starts_with([' ', '\t']) => (true, r.trim_start()),
            _ => (false, format),
        };
        let src = rest.replace("\\t", "\t").replace("\\n", "\n");
        let mut toks = tokenize(&src)?.into_iter().peekable();
        let (nodes, end) = parse_nodes(&mut toks, &[])?;
        if end.is_some() {
            return Err("unexpected end".into());
        }
        Ok(Template { nodes, table })
    }

    /// Renders the template for one value.
    pub fn render(&self, v: &Value) -> Result<String, String> {
        let mut out = String::new();
        render_nodes(&self.nodes, v, &mut out)?;
        Ok(out)
    }
}

fn lookup(v: &Value, path: &[String]) -> Result<Value, String> {
    let mut cur = v;
    for p in path {
        cur = match cur {
            Value::Object(m) => match m.get(p) {
                Some(x) => x,
                None => return Err(format!("can't evaluate field {p}")),
            },
            Value::Null => return Ok(Value::Null),
            _ => return Err(format!("can't evaluate field {p} in a {}", kind(cur))),
        };
    }
    Ok(cur.clone())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "slice",
        Value::Object(_) => "map",
    }
}

fn arg(a: &Arg, dot: &Value) -> Result<Value, String> {
    match a {
        Arg::Path(p) => lookup(dot, p),
        Arg::Str(s) => Ok(Value::String(s.clone())),
        Arg::Num(n) => Ok(Value::from(*n)),
    }
}

/// How Go's fmt prints a value with `%v`.
pub fn go_string(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_inner).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => format!(
            "map[{}]",
            m.iter()
                .map(|(k, v)| format!("{k}:{}", go_inner(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

fn go_inner(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        other => go_string(other),
    }
}

fn eval(e: &Expr, dot: &Value) -> Result<Value, String> {
    let args: Vec<Value> = e
        .args
        .iter()
        .map(|a| arg(a, dot))
        .collect::<Result<_, _>>()?;
    let one = || {
        args.first()
            .cloned()
            .ok_or_else(|| "missing argument".to_string())
    };
    Ok(match e.func.as_deref() {
        None => one()?,
        Some("json") => Value::String(serde_json::to_string(&one()?).expect("JSON serialises")),
        Some("upper") => Value::String(go_string(&one()?).to_uppercase()),
        Some("lower") => Value::String(go_string(&one()?).to_lowercase()),
        Some("title") => {
            let s = go_string(&one()?);
            let mut c = s.chars();
            Value::String(
                c.next()
                    .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                    .unwrap_or_default(),
            )
        }
        Some("len") => Value::from(match one()? {
            Value::Array(a) => a.len(),
            Value::Object(m) => m.len(),
            Value::String(s) => s.len(),
            Value::Null => 0,
            v => return Err(format!("len of {}", kind(&v))),
        }),
        Some("println") => Value::String(format!(
            "{}\n",
            args.iter().map(go_string).collect::<Vec<_>>().join(" ")
        )),
        Some("join") => {
            let sep = args.get(1).map(go_string).unwrap_or_default();
            match one()? {
                Value::Array(a) => {
                    Value::String(a.iter().map(go_string).collect::<Vec<_>>().join(&sep))
                }
                Value::Null => Value::String(String::new()),
                v => return Err(format!("join of {}", kind(&v))),
            }
        }
        Some("index") => {
            let mut cur = one()?;
            for k in &args[1..] {
                cur = match (&cur, k) {
                    (Value::Object(m), Value::String(s)) => {
                        m.get(s).cloned().unwrap_or(Value::Null)
                    }
                    (Value::Array(a), Value::Number(n)) => a
                        .get(n.as_u64().unwrap_or(u64::MAX) as usize)
                        .cloned()
                        .ok_or("index out of range")?,
                    _ => return Err("cannot index".into()),
                };
            }
            cur
        }
        Some(f) => return Err(format!("function {f:?} not defined")),
    })
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

fn render_nodes(nodes: &[Node], dot: &Value, out: &mut String) -> Result<(), String> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Action(e) => out.push_str(&go_string(&eval(e, dot)?)),
            Node::Range(e, body) => match eval(e, dot)? {
                Value::Array(items) => {
                    for item in &items {
                        render_nodes(body, item, out)?;
                    }
                }
                Value::Object(m) => {
                    for item in m.values() {
                        render_nodes(body, item, out)?;
                    }
                }
                Value::Null => {}
                v => return Err(format!("range can't iterate over {}", go_string(&v))),
            },
            Node::If(e, then, els) => {
                if truthy(&eval(e, dot)?) {
                    render_nodes(then, dot, out)?;
                } else {
                    render_nodes(els, dot, out)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_docker_formats() {
        let v = json!({"Repository":"busybox","Tag":"latest","Config":{"Cmd":["sh","-c"],"Env":null},"Labels":{"a":"b"}});
        let r = |f: &str| Template::parse(f).unwrap().render(&v).unwrap();
        assert_eq!(r("{{.Repository}}:{{.Tag}}"), "busybox:latest");
        assert_eq!(r("{{json .Config.Cmd}}"), r#"["sh","-c"]"#);
        assert_eq!(r("{{.Config.Cmd}}"), "[sh -c]");
        assert_eq!(r("{{.Config.Env}}"), "<no value>");
        assert_eq!(r("{{index .Labels \"a\"}}"), "b");
        assert_eq!(r("{{range .Config.Cmd}}<{{.}}>{{end}}"), "<sh><-c>");
        assert_eq!(r("{{if .Config.Env}}y{{else}}n{{end}}"), "n");
        assert_eq!(r("{{join .Config.Cmd \",\"}}"), "sh,-c");
        assert!(
            Template::parse("table {{.Repository}}\\t{{.Tag}}")
                .unwrap()
                .table
        );
        assert!(Template::parse("{{.A").is_err());
        assert!(Template::parse("{{nosuch .A}}").is_err());
        assert!(Template::parse("{{.Nope}}").unwrap().render(&v).is_err());
    }
}
