//! Go's text/template executor (`text/template/exec.go`) over the parse trees of the
//! `gotmpl` crate, for what that crate's own executor cannot say: a struct (whose missing
//! field is an error) from a map (whose missing key is no value), and where in the template a
//! run failed (`template: :1:2: executing "" at <.Nope>: …`).
//!
//! Values are JSON documents read through a [`Schema`]: a root of docker's Go types
//! ([`super::gotypes`]) reads each field as its declared type, in declaration order; a root
//! named only by path gives the Go type of the objects that matter (the others are structs
//! whose fields are the document's); without a schema every object is a map, as docker's
//! inspect reads a document it decoded as JSON.
//!
//! A value prints as Go's `fmt` prints it: a struct as `{a b}`, a nil slice `[]`, a nil map
//! `map[]`, a nil pointer `<nil>`. A pointer that is not nil inside a struct, list or map
//! prints as Go prints an address; Go's addresses change from run to run, berth prints
//! `0xc000000000` for each.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::parse::{CommandNode, Expr, ListNode, Node, Number, PipeNode};
use serde_json::Value;

use super::gotypes::{self, Kind};

/// Go's types of a command's `--format` value: the document's type as Go's errors name it,
/// and the Go type of each object below it that matters, by path (`Config.Labels`; `*` is
/// any element of a list or value of a map). A type beginning with `map[` is a map, and so is
/// a named one written with its map type after it (`nat.PortMap map[nat.Port]…`, whose keys
/// are no strings: no field reads one); any other object is a struct. A root that
/// [`super::gotypes`] declares needs no paths: every field has its declared type.
#[derive(Debug)]
pub struct Schema {
    pub root: &'static str,
    pub types: &'static [(&'static str, &'static str)],
    /// When a run on these types fails, docker runs the template again on the document read
    /// as JSON, and that run's output or error is the answer (its inspect of containers,
    /// images and networks).
    pub raw_fallback: bool,
}

/// What Go prints for a pointer inside a struct, list or map (an address, which changes
/// from run to run in Go).
pub const ADDRESS: &str = "0xc000000000";

/// A value as Go's template engine sees it.
#[derive(Clone, Debug)]
pub enum Val {
    /// Go's invalid `reflect.Value` (a missing map key): prints `<no value>`.
    Invalid,
    /// A nil in the data (JSON's null).
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(Arc<str>),
    /// A slice or array and its Go type.
    List(Arc<[Val]>, &'static str),
    /// A map; its type (`map[string]string`), for its zero value and Go's errors.
    Map(Arc<BTreeMap<Arc<str>, Val>>, &'static str),
    /// A struct, its fields (in Go's order when its type is declared) and its type's name.
    Struct(Arc<[FieldVal]>, &'static str),
    /// A pointer that is not nil, and its type (`*container.State`).
    Ptr(Arc<Val>, &'static str),
    /// A nil of a type that has one: a pointer (`<nil>`), slice (`[]`) or map (`map[]`).
    Nil(&'static str),
    /// A value of a type with a `String` method (`time.Duration`, `time.Time`): printed by
    /// it, written as JSON and compared as the value underneath (an `Int`, a `Str`).
    Named(Arc<Val>, &'static str),
}

/// A field of a struct value.
#[derive(Clone, Debug)]
pub struct FieldVal {
    pub name: Arc<str>,
    pub val: Val,
    /// Its declaration, when the struct's type is declared.
    pub decl: Option<&'static gotypes::Field>,
}

const RAW_MAP: &str = "map[string]interface {}";
const RAW_LIST: &str = "[]interface {}";

impl Val {
    /// A JSON document read through `schema` (none: every object a map).
    pub fn from_json(v: &Value, schema: Option<&Schema>) -> Val {
        if let Some(s) = schema.filter(|s| gotypes::declared(s.root)) {
            return Self::typed(Some(v), s.root);
        }
        let mut path = Vec::new();
        Self::read(v, schema, &mut path)
    }

    /// A value of the declared type `ty` from JSON, as Go's decoder fills one (a missing
    /// field or null is the zero value).
    pub fn typed(v: Option<&Value>, ty: &'static str) -> Val {
        let v = v.filter(|v| !v.is_null());
        if gotypes::has_string_method(ty) {
            let under = match (v, ty) {
                (Some(Value::String(s)), _) => Val::str(s),
                (Some(Value::Number(n)), _) => Val::Int(n.as_i64().unwrap_or(0)),
                (_, "time.Time") => Val::str("0001-01-01T00:00:00Z"),
                _ => Val::Int(0),
            };
            return Val::Named(Arc::new(under), ty);
        }
        match (gotypes::kind(ty), v) {
            (Kind::Ptr(_), None) => Val::Nil(ty),
            (Kind::Ptr(elem), v) => Val::Ptr(Arc::new(Self::typed(v, elem)), ty),
            (Kind::Slice(elem), Some(Value::Array(a))) => {
                Val::List(a.iter().map(|e| Self::typed(Some(e), elem)).collect(), ty)
            }
            (Kind::Slice(_), _) => Val::Nil(ty),
            (Kind::Array(n, elem), v) => {
                let a = v.and_then(Value::as_array);
                let item = |i: usize| Self::typed(a.and_then(|a| a.get(i)), elem);
                Val::List((0..n).map(item).collect(), ty)
            }
            (Kind::Map(_, elem), Some(Value::Object(m))) => Val::Map(
                Arc::new(
                    m.iter()
                        .map(|(k, e)| (Arc::from(k.as_str()), Self::typed(Some(e), elem)))
                        .collect(),
                ),
                ty,
            ),
            (Kind::Map(..), _) => Val::Nil(ty),
            (Kind::Struct(fields), v) => {
                let obj = v.and_then(Value::as_object);
                let fields = fields.iter().map(|f| FieldVal {
                    name: Arc::from(f.name),
                    val: match (f.embedded, f.json) {
                        // An embedded struct's fields are in the outer object.
                        (true, _) => Self::typed(obj.map(|_| v.unwrap_or(&Value::Null)), f.ty),
                        (false, Some(key)) => Self::typed(obj.and_then(|o| o.get(key)), f.ty),
                        (false, None) => Self::typed(None, f.ty),
                    },
                    decl: Some(f),
                });
                Val::Struct(fields.collect(), ty)
            }
            (Kind::Bool, v) => Val::Bool(v.and_then(Value::as_bool).unwrap_or(false)),
            (Kind::Int, v) => Val::Int(v.and_then(Value::as_i64).unwrap_or(0)),
            (Kind::Uint, v) => Val::Uint(v.and_then(Value::as_u64).unwrap_or(0)),
            (Kind::Float, v) => Val::Float(v.and_then(Value::as_f64).unwrap_or(0.0)),
            (Kind::Str, Some(Value::String(s))) => Val::str(s),
            (Kind::Str, None) => Val::str(""),
            // A value the type does not expect is read as JSON is.
            (_, Some(v)) => Self::from_json(v, None),
            (Kind::Iface, None) => Val::Null,
        }
    }

    fn read<'v>(v: &'v Value, schema: Option<&Schema>, path: &mut Vec<&'v str>) -> Val {
        let ty = |schema: Option<&Schema>, path: &[&str]| match schema {
            None => RAW_MAP,
            Some(s) if path.is_empty() => s.root,
            Some(s) => s
                .types
                .iter()
                .find(|(p, _)| matches_path(p, path))
                .map_or("struct", |(_, t)| *t),
        };
        match v {
            // A nil map reads as an empty one.
            Value::Null if schema.is_some() && is_map(ty(schema, path)) => {
                Val::Map(Arc::default(), ty(schema, path))
            }
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Val::Int(i),
                (None, Some(u)) => Val::Uint(u),
                _ => Val::Float(n.as_f64().unwrap_or(0.0)),
            },
            Value::String(s) => Val::Str(Arc::from(s.as_str())),
            Value::Array(a) => {
                let mut out = Vec::with_capacity(a.len());
                for item in a {
                    path.push("*");
                    out.push(Self::read(item, schema, path));
                    path.pop();
                }
                Val::List(out.into(), RAW_LIST)
            }
            Value::Object(m) => {
                let ty = ty(schema, path);
                let a_map = is_map(ty);
                let mut out = BTreeMap::new();
                for (k, item) in m {
                    path.push(if a_map { "*" } else { k.as_str() });
                    out.insert(Arc::from(k.as_str()), Self::read(item, schema, path));
                    path.pop();
                }
                // A struct has its map fields whether the document has them or not.
                if let (Some(s), false) = (schema, a_map) {
                    for (p, t) in s.types.iter().filter(|(_, t)| is_map(t)) {
                        let Some((parent, field)) = p.rsplit_once('.').or(Some(("", p))) else {
                            continue;
                        };
                        let here = match parent {
                            "" => path.is_empty(),
                            parent => !path.is_empty() && matches_path(parent, path),
                        };
                        if here && !field.contains('*') {
                            out.entry(Arc::from(field))
                                .or_insert_with(|| Val::Map(Arc::default(), t));
                        }
                    }
                }
                match a_map {
                    true => Val::Map(Arc::new(out), ty),
                    false => Val::Struct(
                        out.into_iter()
                            .map(|(name, val)| FieldVal {
                                name,
                                val,
                                decl: None,
                            })
                            .collect(),
                        ty,
                    ),
                }
            }
        }
    }

    /// A struct's field (or an embedded struct's), and its declared type when known.
    pub fn field(&self, name: &str) -> Option<(Val, Option<&'static str>)> {
        let Val::Struct(fields, _) = self else {
            return None;
        };
        if let Some(f) = fields.iter().find(|f| &*f.name == name) {
            return Some((f.val.clone(), f.decl.map(|d| d.ty)));
        }
        fields
            .iter()
            .filter(|f| f.decl.is_some_and(|d| d.embedded))
            .find_map(|f| f.val.deref().field(name))
    }

    /// A field of a struct or a key of a map (`Labels` of a row).
    pub fn get(&self, name: &str) -> Option<Val> {
        match self.deref() {
            Val::Map(m, _) => m.get(name).cloned(),
            s => s.field(name).map(|(v, _)| v),
        }
    }

    /// What a pointer points at; any other value itself.
    pub fn deref(&self) -> &Val {
        match self {
            Val::Ptr(inner, _) => inner,
            other => other,
        }
    }

    /// A nil slice or map as an empty one (what Go's `len`, `index` and `range` see).
    pub fn nil_as_empty(&self) -> Val {
        match self {
            Val::Nil(ty) => match gotypes::kind(ty) {
                Kind::Slice(_) => Val::List(Arc::new([]), ty),
                Kind::Map(..) => Val::Map(Arc::default(), ty),
                _ => self.clone(),
            },
            other => other.clone(),
        }
    }

    /// The value as JSON (for docker's `json`): Go's encoding, a struct's fields in their
    /// order under their JSON names (`omitempty` ones left out when empty).
    pub fn json_text(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    fn write_json(&self, out: &mut String) {
        match self {
            Val::Invalid | Val::Null | Val::Nil(_) => out.push_str("null"),
            Val::Bool(b) => out.push_str(&b.to_string()),
            Val::Int(i) => out.push_str(&i.to_string()),
            Val::Uint(u) => out.push_str(&u.to_string()),
            Val::Float(_) => out.push_str(&self.to_json().to_string()),
            Val::Str(s) => out.push_str(&Value::String(s.to_string()).to_string()),
            Val::Ptr(inner, _) | Val::Named(inner, _) => inner.write_json(out),
            Val::List(items, _) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_json(out);
                }
                out.push(']');
            }
            Val::Map(m, _) => {
                out.push('{');
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.to_string()).to_string());
                    out.push(':');
                    v.write_json(out);
                }
                out.push('}');
            }
            Val::Struct(..) => {
                out.push('{');
                let mut first = true;
                self.write_json_fields(out, &mut first);
                out.push('}');
            }
        }
    }

    fn write_json_fields(&self, out: &mut String, first: &mut bool) {
        let Val::Struct(fields, _) = self else {
            return;
        };
        for f in fields.iter() {
            let key = match f.decl {
                Some(d) if d.embedded => {
                    f.val.deref().write_json_fields(out, first);
                    continue;
                }
                Some(d) => match d.json {
                    Some(key) if !(d.omitempty && f.val.is_empty()) => key,
                    _ => continue,
                },
                None => &*f.name,
            };
            if !std::mem::take(first) {
                out.push(',');
            }
            out.push_str(&Value::String(key.to_string()).to_string());
            out.push(':');
            f.val.write_json(out);
        }
    }

    /// Go's "empty value" of `omitempty`.
    fn is_empty(&self) -> bool {
        match self {
            Val::Struct(..) | Val::Ptr(..) => false,
            other => !other.truth(),
        }
    }

    /// The value as JSON.
    pub fn to_json(&self) -> Value {
        match self {
            Val::Invalid | Val::Null | Val::Nil(_) => Value::Null,
            Val::Bool(b) => Value::Bool(*b),
            Val::Int(i) => Value::from(*i),
            Val::Uint(u) => Value::from(*u),
            Val::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Val::Str(s) => Value::String(s.to_string()),
            Val::Ptr(inner, _) | Val::Named(inner, _) => inner.to_json(),
            Val::List(items, _) => Value::Array(items.iter().map(Val::to_json).collect()),
            Val::Map(m, _) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.to_string(), v.to_json()))
                    .collect(),
            ),
            Val::Struct(..) => serde_json::from_str(&self.json_text()).unwrap_or(Value::Null),
        }
    }

    /// The value as the `gotmpl` crate's (whose formatting is Go's `fmt`): a struct or a
    /// pointer to one as the text Go's `%v` makes of it.
    pub fn to_go(&self) -> gotmpl::Value {
        use gotmpl::Value as Go;
        match self {
            Val::Invalid | Val::Null => Go::Nil,
            Val::Nil(_) => match self.nil_as_empty() {
                Val::Nil(_) => Go::Nil,
                empty => empty.to_go(),
            },
            Val::Bool(b) => Go::Bool(*b),
            Val::Int(i) => Go::Int(*i),
            Val::Uint(u) => Go::Uint(*u),
            Val::Float(f) => Go::Float(*f),
            Val::Str(s) => Go::String(s.clone()),
            // printf's %v and %s call the String method (%d of a duration differs from Go).
            Val::Named(..) => Go::String(Arc::from(self.go_fmt(0))),
            Val::List(items, _) => {
                Go::List(items.iter().map(Val::to_go).collect::<Vec<_>>().into())
            }
            Val::Map(m, _) => Go::Map(Arc::new(
                m.iter().map(|(k, v)| (k.clone(), v.to_go())).collect(),
            )),
            Val::Struct(..) => Go::String(Arc::from(self.go_fmt(0))),
            Val::Ptr(inner, _) => match &**inner {
                Val::Struct(..) | Val::List(..) | Val::Map(..) => {
                    Go::String(Arc::from(format!("&{}", inner.go_fmt(0))))
                }
                _ => Go::String(Arc::from(ADDRESS)),
            },
        }
    }

    /// Go's `fmt` `%v` of the value, `depth` levels inside a struct, list or map.
    fn go_fmt(&self, depth: usize) -> String {
        match self {
            Val::Invalid => "<no value>".into(),
            Val::Named(inner, ty) => match (*ty, &**inner) {
                ("time.Duration", Val::Int(d)) => gotypes::go_duration(*d),
                ("time.Time", Val::Str(t)) => gotypes::go_time(t),
                _ => inner.go_fmt(depth),
            },
            Val::Null => "<nil>".into(),
            Val::Str(s) => s.to_string(),
            Val::Nil(_) => match self.nil_as_empty() {
                Val::Nil(_) => "<nil>".into(),
                empty => empty.go_fmt(depth),
            },
            Val::List(items, _) => {
                let items: Vec<String> = items.iter().map(|i| i.go_fmt(depth + 1)).collect();
                format!("[{}]", items.join(" "))
            }
            Val::Map(m, _) => {
                let items: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("{k}:{}", v.go_fmt(depth + 1)))
                    .collect();
                format!("map[{}]", items.join(" "))
            }
            Val::Struct(fields, _) => {
                let items: Vec<String> = fields.iter().map(|f| f.val.go_fmt(depth + 1)).collect();
                format!("{{{}}}", items.join(" "))
            }
            // go-units' Ulimit has a String method.
            Val::Ptr(inner, "*units.Ulimit") => {
                let get = |n: &str| inner.get(n).map_or(String::new(), |v| v.go_fmt(1));
                format!("{}={}:{}", get("Name"), get("Soft"), get("Hard"))
            }
            Val::Ptr(..) if depth > 0 => ADDRESS.into(),
            Val::Ptr(inner, _) => match &**inner {
                Val::Struct(..) | Val::List(..) | Val::Map(..) => {
                    format!("&{}", inner.go_fmt(0))
                }
                _ => ADDRESS.into(),
            },
            other => other.to_go().to_string(),
        }
    }

    /// Go's name of the value's type, as its errors print it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Val::Invalid => "<nil>",
            Val::Null => "interface {}",
            Val::Bool(_) => "bool",
            Val::Int(_) => "int",
            Val::Uint(_) => "uint64",
            Val::Float(_) => "float64",
            Val::Str(_) => "string",
            Val::List(_, t) | Val::Ptr(_, t) | Val::Nil(t) | Val::Named(_, t) => t,
            Val::Map(_, t) | Val::Struct(_, t) => t.split(" map[").next().unwrap_or(t),
        }
    }

    /// Go's truth of a value (`if`, `with`, `and`, `or`, `not`).
    pub fn truth(&self) -> bool {
        match self {
            Val::Invalid | Val::Null | Val::Nil(_) => false,
            Val::Bool(b) => *b,
            Val::Int(i) => *i != 0,
            Val::Uint(u) => *u != 0,
            Val::Float(f) => *f != 0.0,
            Val::Str(s) => !s.is_empty(),
            Val::List(l, _) => !l.is_empty(),
            Val::Map(m, _) => !m.is_empty(),
            Val::Struct(..) | Val::Ptr(..) => true,
            // A time is a struct; a duration an integer.
            Val::Named(inner, _) => matches!(**inner, Val::Str(_)) || inner.truth(),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Val::Int(i) => Some(*i),
            Val::Uint(u) => i64::try_from(*u).ok(),
            _ => None,
        }
    }

    pub fn str(s: impl AsRef<str>) -> Val {
        Val::Str(Arc::from(s.as_ref()))
    }

    /// A list of strings (`[]string`).
    pub fn strings(items: impl IntoIterator<Item = Val>) -> Val {
        Val::List(items.into_iter().collect(), "[]string")
    }

    /// The zero value of a map's elements (a missing key's value for `index`).
    pub fn zero_of(map_type: &'static str) -> Val {
        if map_type.contains(" map[") {
            return match map_type.rsplit_once(']').map(|(_, e)| e) {
                Some("string") => Val::str(""),
                _ => Val::Invalid,
            };
        }
        match gotypes::kind(map_type) {
            Kind::Map(_, elem) => Self::typed(None, elem),
            _ => Val::Invalid,
        }
    }

    /// Whether a field name reads a key of this map (Go: the key type takes a string).
    pub fn string_keys(map_type: &'static str) -> bool {
        match is_map(map_type) {
            true => map_type.starts_with("map[string]"),
            false => matches!(gotypes::kind(map_type), Kind::Map("string", _)),
        }
    }
}

/// Go's `fmt.Sprint` of one value, as an action prints it: a pointer is followed first.
impl std::fmt::Display for Val {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Val::Ptr(inner, _) => f.write_str(&inner.go_fmt(0)),
            other => f.write_str(&other.go_fmt(0)),
        }
    }
}

fn is_map(ty: &str) -> bool {
    ty.starts_with("map[") || ty.contains(" map[")
}

fn matches_path(pattern: &str, path: &[&str]) -> bool {
    let mut parts = pattern.split('.');
    for step in path {
        match parts.next() {
            Some(p) if p == *step || p == "*" => {}
            _ => return false,
        }
    }
    parts.next().is_none()
}

/// A function as the executor calls it: its arguments evaluated, or an error Go words as
/// `error calling NAME: …`.
pub type Func = fn(&[Val]) -> Result<Val, String>;

/// What a function takes: its fixed parameters' types, and whether more of the last follow.
#[derive(Clone, Copy)]
pub enum Param {
    Any,
    Str,
    Int,
}

#[derive(Clone, Copy)]
pub struct Sig {
    pub params: &'static [Param],
    pub variadic: bool,
}

/// The executor's functions: name, signature, body.
pub type Funcs = BTreeMap<&'static str, (Sig, Func)>;

/// Why a walk stopped early.
enum Stop {
    Error(String),
    Break,
    Continue,
}

type R<T> = Result<T, Stop>;

/// Where the run is, for Go's error context.
#[derive(Clone, Copy)]
enum At<'t> {
    None,
    Expr(&'t Expr),
    Cmd(&'t CommandNode),
    Pipe(&'t PipeNode),
    Node(&'t Node),
}

/// A parsed template set: its source (positions are offsets into it) and its trees by name.
pub struct Trees {
    pub src: String,
    /// The name Go's errors give the template (`""`, `"version"`).
    pub name: String,
    pub trees: BTreeMap<String, ListNode>,
    /// The name of the tree the template runs (the others are `define`d).
    pub main: String,
}

struct State<'t> {
    trees: &'t Trees,
    funcs: &'t Funcs,
    /// The template being run, by Go's name (`""` for the main one).
    running: &'t str,
    out: String,
    vars: Vec<(&'t str, Val)>,
    at: At<'t>,
    depth: usize,
    /// How a missing map key reads: an error (`missingkey=error`) or no value.
    missing_key_error: bool,
}

const MAX_DEPTH: usize = 1000;

impl Trees {
    /// Runs the main template on `dot`; Go's error as Go words it, with what was written
    /// before it.
    pub fn execute(
        &self,
        funcs: &Funcs,
        dot: Val,
        missing_key_error: bool,
    ) -> Result<String, (String, String)> {
        let Some(root) = self.trees.get(&self.main) else {
            return Ok(String::new());
        };
        let mut s = State {
            trees: self,
            funcs,
            running: &self.name,
            out: String::new(),
            vars: vec![("$", dot.clone())],
            at: At::None,
            depth: 0,
            missing_key_error,
        };
        match s.walk_list(&dot, root) {
            Ok(()) => Ok(s.out),
            Err(Stop::Error(e)) => Err((s.out, e)),
            // The parser refuses break and continue outside a range.
            Err(Stop::Break | Stop::Continue) => Ok(s.out),
        }
    }
}

impl<'t> State<'t> {
    fn errorf(&self, msg: impl std::fmt::Display) -> Stop {
        let name = &self.trees.name;
        let Some((offset, context)) = self.context() else {
            return Stop::Error(format!("template: {name}: {msg}"));
        };
        let src = &self.trees.src[..offset.min(self.trees.src.len())];
        let line = 1 + src.matches('\n').count();
        let col = match src.rfind('\n') {
            Some(nl) => offset - nl - 1,
            None => offset,
        };
        Stop::Error(format!(
            "template: {name}:{line}:{col}: executing {:?} at <{context}>: {msg}",
            self.running
        ))
    }

    fn context(&self) -> Option<(usize, String)> {
        let src = &self.trees.src;
        Some(match self.at {
            At::None => return None,
            At::Expr(e) => (expr_offset(src, e), expr_string(src, e)),
            At::Cmd(c) => (
                c.args.first().map_or(c.pos.offset, |a| a.pos().offset),
                cmd_string(src, c),
            ),
            At::Pipe(p) => (pipe_offset(p), pipe_string(src, p)),
            At::Node(n) => (node_offset(n), node_string(src, n)),
        })
    }

    fn mark(&self) -> usize {
        self.vars.len()
    }

    fn pop(&mut self, mark: usize) {
        self.vars.truncate(mark);
    }

    fn var_value(&self, name: &str) -> R<Val> {
        match self.vars.iter().rev().find(|(n, _)| *n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => Err(self.errorf(format!("undefined variable: {name}"))),
        }
    }

    fn set_var(&mut self, name: &str, value: Val) -> R<()> {
        match self.vars.iter_mut().rev().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                *v = value;
                Ok(())
            }
            None => Err(self.errorf(format!("undefined variable: {name}"))),
        }
    }

    fn walk_list(&mut self, dot: &Val, list: &'t ListNode) -> R<()> {
        for node in &list.nodes {
            self.walk(dot, node)?;
        }
        Ok(())
    }

    fn walk(&mut self, dot: &Val, node: &'t Node) -> R<()> {
        self.at = At::Node(node);
        match node {
            Node::Text(t) => self.out.push_str(&t.text),
            Node::Action(a) => {
                let v = self.eval_pipeline(dot, &a.pipe)?;
                if a.pipe.decl.is_empty() {
                    self.at = At::Node(node);
                    self.out.push_str(&v.to_string());
                }
            }
            Node::List(l) => self.walk_list(dot, l)?,
            Node::If(b) | Node::With(b) => {
                let mark = self.mark();
                let v = self.eval_pipeline(dot, &b.pipe)?;
                let result = if v.truth() {
                    let inner = if matches!(node, Node::With(_)) {
                        &v
                    } else {
                        dot
                    };
                    self.walk_list(inner, &b.body)
                } else if let Some(e) = &b.else_body {
                    self.walk_list(dot, e)
                } else {
                    Ok(())
                };
                self.pop(mark);
                result?;
            }
            Node::Range(r) => self.walk_range(dot, node, r)?,
            Node::Template(t) => {
                let Some(tree) = self.trees.trees.get(t.name.as_str()) else {
                    return Err(self.errorf(format!("template {:?} not defined", t.name.as_str())));
                };
                if self.depth == MAX_DEPTH {
                    return Err(
                        self.errorf(format!("exceeded maximum template depth ({MAX_DEPTH})"))
                    );
                }
                let inner = match &t.pipe {
                    Some(p) => self.eval_pipeline(dot, p)?,
                    None => Val::Invalid,
                };
                let saved = (
                    std::mem::replace(&mut self.vars, vec![("$", inner.clone())]),
                    self.running,
                );
                self.running = t.name.as_str();
                self.depth += 1;
                let result = self.walk_list(&inner, tree);
                self.depth -= 1;
                (self.vars, self.running) = saved;
                match result {
                    Err(Stop::Break | Stop::Continue) | Ok(()) => {}
                    Err(e) => return Err(e),
                }
            }
            Node::Define(_) => {}
            Node::Break(_) => return Err(Stop::Break),
            Node::Continue(_) => return Err(Stop::Continue),
        }
        Ok(())
    }

    fn walk_range(&mut self, dot: &Val, node: &'t Node, r: &'t gotmpl::parse::RangeNode) -> R<()> {
        self.at = At::Node(node);
        let outer = self.mark();
        // Go's range follows a pointer; a nil slice or map is an empty one.
        let v = self.eval_pipeline(dot, &r.pipe)?.deref().nil_as_empty();
        let mark = self.mark();
        let decl = r.pipe.decl.len();
        let items: Vec<(Val, Val)> = match &v {
            Val::List(l, _) => l
                .iter()
                .enumerate()
                .map(|(i, e)| (Val::Int(i as i64), e.clone()))
                .collect(),
            Val::Map(m, _) => m
                .iter()
                .map(|(k, e)| (Val::Str(k.clone()), e.clone()))
                .collect(),
            Val::Int(n) => (0..*n).map(|i| (Val::Int(i), Val::Int(i))).collect(),
            Val::Invalid | Val::Null => vec![],
            other => {
                self.at = At::Node(node);
                return Err(self.errorf(format!("range can't iterate over {other}")));
            }
        };
        let empty = items.is_empty();
        for (index, elem) in items {
            // Go sets the last variable declared to the element, the one before to the index.
            if decl > 0 {
                let n = self.vars.len();
                self.vars[n - 1].1 = elem.clone();
                if decl > 1 {
                    self.vars[n - 2].1 = index;
                }
            }
            let result = self.walk_list(&elem, &r.body);
            self.pop(mark);
            match result {
                Ok(()) | Err(Stop::Continue) => {}
                Err(Stop::Break) => break,
                Err(e) => return Err(e),
            }
        }
        if empty {
            if let Some(e) = &r.else_body {
                self.walk_list(dot, e)?;
            }
        }
        self.pop(outer);
        Ok(())
    }

    fn eval_pipeline(&mut self, dot: &Val, pipe: &'t PipeNode) -> R<Val> {
        self.at = At::Pipe(pipe);
        let mut value: Option<Val> = None;
        for cmd in &pipe.commands {
            value = Some(self.eval_command(dot, cmd, value)?);
        }
        // The interface{} a nil sits in is dug away: no value.
        let value = match value.unwrap_or(Val::Invalid) {
            Val::Null => Val::Invalid,
            v => v,
        };
        for var in &pipe.decl {
            if pipe.is_assign {
                self.set_var(var, value.clone())?;
            } else {
                self.vars.push((var.as_str(), value.clone()));
            }
        }
        Ok(value)
    }

    fn not_a_function(&self, args: &[Expr], fin: &Option<Val>) -> R<()> {
        if args.len() > 1 || fin.is_some() {
            return Err(self.errorf(format!(
                "can't give argument to non-function {}",
                expr_string(&self.trees.src, &args[0])
            )));
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &Val, cmd: &'t CommandNode, fin: Option<Val>) -> R<Val> {
        let first = &cmd.args[0];
        match first {
            Expr::Field(_, idents) => {
                self.at = At::Expr(first);
                self.eval_field_chain(dot.clone(), idents, &cmd.args, fin)
            }
            Expr::Chain(_, inner, idents) => {
                // Go reports a field missing here where the inner value was evaluated.
                self.at = At::Expr(first);
                let receiver = self.eval_arg(dot, Param::Any, inner)?;
                self.eval_field_chain(receiver, idents, &cmd.args, fin)
            }
            Expr::Variable(_, name, idents) => {
                self.at = At::Expr(first);
                let v = self.var_value(name)?;
                if idents.is_empty() {
                    self.not_a_function(&cmd.args, &fin)?;
                    return Ok(v);
                }
                self.eval_field_chain(v, idents, &cmd.args, fin)
            }
            Expr::Identifier(_, name) => {
                self.eval_function(dot, first, name, At::Cmd(cmd), &cmd.args, fin)
            }
            Expr::Pipe(_, p) => {
                self.not_a_function(&cmd.args, &fin)?;
                self.eval_pipeline(dot, p)
            }
            _ => {
                self.at = At::Expr(first);
                self.not_a_function(&cmd.args, &fin)?;
                match first {
                    Expr::Bool(_, b) => Ok(Val::Bool(*b)),
                    Expr::Dot(_) => Ok(dot.clone()),
                    Expr::Nil(_) => Err(self.errorf("nil is not a command")),
                    Expr::Number(_, n) => self.ideal_constant(first, n),
                    Expr::String(_, s) => Ok(Val::Str(s.clone())),
                    _ => unreachable!("handled above"),
                }
            }
        }
    }

    fn ideal_constant(&self, e: &Expr, n: &Number) -> R<Val> {
        match n {
            Number::Int(i) => Ok(Val::Int(*i)),
            Number::Float(f) => Ok(Val::Float(*f)),
            Number::Uint(_) => {
                Err(self.errorf(format!("{} overflows int", expr_string(&self.trees.src, e))))
            }
        }
    }

    fn eval_field_chain(
        &mut self,
        mut receiver: Val,
        idents: &'t [gotmpl::parse::SmolStr],
        args: &'t [Expr],
        fin: Option<Val>,
    ) -> R<Val> {
        let n = idents.len();
        // The declared type of a value read from a struct's field (Go's errors name it).
        let mut declared = None;
        for ident in &idents[..n - 1] {
            (receiver, declared) = self.eval_field(ident, &[], &None, receiver, declared)?;
        }
        self.eval_field(&idents[n - 1], args, &fin, receiver, declared)
            .map(|(v, _)| v)
    }

    fn eval_field(
        &self,
        name: &str,
        args: &[Expr],
        fin: &Option<Val>,
        receiver: Val,
        declared: Option<&'static str>,
    ) -> R<(Val, Option<&'static str>)> {
        let has_args = args.len() > 1 || fin.is_some();
        let cant = |ty: &str| self.errorf(format!("can't evaluate field {name} in type {ty}"));
        let receiver = receiver.nil_as_empty();
        match &receiver {
            Val::Invalid => {
                if self.missing_key_error {
                    return Err(self.errorf(format!("nil data; no entry for key {name:?}")));
                }
                Ok((Val::Invalid, None))
            }
            Val::Null => Err(self.errorf(format!("nil pointer evaluating interface {{}}.{name}"))),
            // A nil pointer to a struct that has the field.
            Val::Nil(ty) => match gotypes::kind(ty) {
                Kind::Ptr(elem) if Val::typed(None, elem).field(name).is_some() => {
                    Err(self.errorf(format!("nil pointer evaluating {ty}.{name}")))
                }
                _ => Err(cant(ty)),
            },
            Val::Struct(_, ty) | Val::Ptr(_, ty) => match receiver.deref().field(name) {
                Some(_) if has_args => Err(self.errorf(format!(
                    "{name} has arguments but cannot be invoked as function"
                ))),
                Some(found) => Ok(found),
                None => Err(cant(ty)),
            },
            Val::Map(m, ty) if Val::string_keys(ty) => {
                if has_args {
                    return Err(self.errorf(format!("{name} is not a method but has arguments")));
                }
                let elem = match gotypes::kind(ty) {
                    Kind::Map(_, elem) => Some(elem),
                    _ => None,
                };
                match m.get(name) {
                    Some(v) => Ok((v.clone(), elem)),
                    None if self.missing_key_error => {
                        Err(self.errorf(format!("map has no entry for key {name:?}")))
                    }
                    None => Ok((Val::Invalid, None)),
                }
            }
            other => Err(cant(declared.unwrap_or(other.type_name()))),
        }
    }

    fn eval_function(
        &mut self,
        dot: &Val,
        ident: &'t Expr,
        name: &str,
        cmd: At<'t>,
        args: &'t [Expr],
        fin: Option<Val>,
    ) -> R<Val> {
        self.at = At::Expr(ident);
        let args = &args[1..];
        // Go's `and` and `or` evaluate their arguments only as far as they need.
        if name == "and" || name == "or" {
            let n = args.len() + usize::from(fin.is_some());
            if n < 1 {
                return Err(self.errorf(format!(
                    "wrong number of args for {name}: want at least 1 got 0"
                )));
            }
            let mut last = Val::Invalid;
            for a in args {
                last = self.eval_arg(dot, Param::Any, a)?;
                if last.truth() == (name == "or") {
                    return Ok(last);
                }
            }
            if let Some(f) = fin {
                last = f;
            }
            return Ok(last);
        }
        let Some((sig, func)) = self.funcs.get(name) else {
            return Err(self.errorf(format!("{name:?} is not a defined function")));
        };
        let given = args.len() + usize::from(fin.is_some());
        let fixed = sig.params.len() - usize::from(sig.variadic);
        if sig.variadic && given < fixed {
            return Err(self.errorf(format!(
                "wrong number of args for {name}: want at least {fixed} got {}",
                args.len()
            )));
        }
        if !sig.variadic && given != fixed {
            return Err(self.errorf(format!(
                "wrong number of args for {name}: want {fixed} got {given}"
            )));
        }
        let param = |i: usize| {
            *sig.params
                .get(i)
                .or(sig.params.last())
                .unwrap_or(&Param::Any)
        };
        let mut argv = Vec::with_capacity(given);
        for (i, a) in args.iter().enumerate() {
            argv.push(self.eval_arg(dot, param(i), a)?);
        }
        if let Some(f) = fin {
            argv.push(self.validate(f, param(argv.len()))?);
        }
        match func(&argv) {
            Ok(v) => Ok(v),
            Err(e) => {
                self.at = cmd;
                Err(self.errorf(format!("error calling {name}: {e}")))
            }
        }
    }

    /// Go's `validateType`: an argument of the type a function takes.
    fn validate(&self, v: Val, p: Param) -> R<Val> {
        let ok = match (&v, p) {
            (_, Param::Any) => true,
            (Val::Str(_), Param::Str) => true,
            (Val::Int(_), Param::Int) => true,
            (Val::Invalid | Val::Null, _) => {
                let want = match p {
                    Param::Str => "string",
                    _ => "int",
                };
                return Err(self.errorf(format!("invalid value; expected {want}")));
            }
            _ => false,
        };
        if ok {
            return Ok(v);
        }
        let want = match p {
            Param::Str => "string",
            _ => "int",
        };
        Err(self.errorf(format!(
            "wrong type for value; expected {want}; got {}",
            v.type_name()
        )))
    }

    fn eval_arg(&mut self, dot: &Val, p: Param, e: &'t Expr) -> R<Val> {
        self.at = At::Expr(e);
        let v = match e {
            Expr::Dot(_) => dot.clone(),
            Expr::Nil(_) => match p {
                Param::Any => Val::Null,
                Param::Str => return Err(self.errorf("cannot assign nil to string")),
                Param::Int => return Err(self.errorf("cannot assign nil to int")),
            },
            Expr::Field(_, idents) => {
                self.eval_field_chain(dot.clone(), idents, std::slice::from_ref(e), None)?
            }
            Expr::Variable(_, name, idents) => {
                let v = self.var_value(name)?;
                match idents.is_empty() {
                    true => v,
                    false => self.eval_field_chain(v, idents, &[], None)?,
                }
            }
            Expr::Pipe(_, pipe) => self.eval_pipeline(dot, pipe)?,
            // A function as an argument: its errors are reported at its name.
            Expr::Identifier(_, name) => {
                self.eval_function(dot, e, name, At::Expr(e), std::slice::from_ref(e), None)?
            }
            Expr::Chain(_, inner, idents) => {
                let receiver = self.eval_arg(dot, Param::Any, inner)?;
                self.eval_field_chain(receiver, idents, &[], None)?
            }
            Expr::Bool(_, b) => match p {
                Param::Any => Val::Bool(*b),
                _ => return Err(self.expected(p, e)),
            },
            Expr::String(_, s) => match p {
                Param::Any | Param::Str => Val::Str(s.clone()),
                Param::Int => return Err(self.expected(p, e)),
            },
            Expr::Number(_, n) => match (p, n) {
                (Param::Any, n) => self.ideal_constant(e, n)?,
                (Param::Int, Number::Int(i)) => Val::Int(*i),
                _ => return Err(self.expected(p, e)),
            },
        };
        match e {
            Expr::Dot(_)
            | Expr::Field(..)
            | Expr::Variable(..)
            | Expr::Pipe(..)
            | Expr::Identifier(..)
            | Expr::Chain(..) => self.validate(v, p),
            _ => Ok(v),
        }
    }

    fn expected(&self, p: Param, e: &Expr) -> Stop {
        let want = match p {
            Param::Str => "string",
            Param::Int => "integer",
            Param::Any => "value",
        };
        self.errorf(format!(
            "expected {want}; found {}",
            expr_string(&self.trees.src, e)
        ))
    }
}

fn field_path(idents: &[gotmpl::parse::SmolStr]) -> String {
    idents.iter().map(|i| format!(".{i}")).collect()
}

/// Go's position of an expression: a chain of fields is where its second field begins.
fn expr_offset(src: &str, e: &Expr) -> usize {
    let start = e.pos().offset;
    match e {
        Expr::Field(_, idents) if idents.len() > 1 => start + 1 + idents[0].len(),
        Expr::Variable(_, name, idents) if !idents.is_empty() => start + name.len(),
        Expr::Chain(_, inner, _) => match &**inner {
            Expr::Identifier(_, name) => start + name.len(),
            _ => paren_end(src, start),
        },
        _ => start,
    }
}

/// The offset after the `)` that closes the `(` at `start`.
fn paren_end(src: &str, start: usize) -> usize {
    let bytes = src.as_bytes();
    let (mut depth, mut quote, mut i) = (0usize, None::<u8>, start);
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(q) if c == b'\\' && q != b'`' => i += 1,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                b'"' | b'`' | b'\'' => quote = Some(c),
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            },
        }
        i += 1;
    }
    start
}

/// A literal's text as written (Go prints numbers and strings as they were written).
fn literal_text(src: &str, start: usize) -> &str {
    let rest = &src[start.min(src.len())..];
    let bytes = rest.as_bytes();
    let end = match bytes.first() {
        Some(q @ (b'"' | b'\'')) => {
            let mut i = 1;
            while i < bytes.len() && bytes[i] != *q {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            (i + 1).min(bytes.len())
        }
        Some(b'`') => rest[1..].find('`').map_or(rest.len(), |i| i + 2),
        _ => rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || "._+-".contains(c)))
            .unwrap_or(rest.len()),
    };
    &rest[..end]
}

/// Go's `String()` of an expression node.
fn expr_string(src: &str, e: &Expr) -> String {
    match e {
        Expr::Dot(_) => ".".into(),
        Expr::Nil(_) => "nil".into(),
        Expr::Field(_, idents) => field_path(idents),
        Expr::Variable(_, name, idents) => format!("{name}{}", field_path(idents)),
        Expr::Identifier(_, name) => name.to_string(),
        Expr::Bool(_, b) => b.to_string(),
        Expr::String(p, _) | Expr::Number(p, _) => literal_text(src, p.offset).to_string(),
        Expr::Pipe(_, p) => format!("({})", pipe_string(src, p)),
        Expr::Chain(_, inner, idents) => {
            format!("{}{}", expr_string(src, inner), field_path(idents))
        }
    }
}

fn cmd_string(src: &str, c: &CommandNode) -> String {
    c.args
        .iter()
        .map(|a| expr_string(src, a))
        .collect::<Vec<_>>()
        .join(" ")
}

fn pipe_offset(p: &PipeNode) -> usize {
    p.commands
        .first()
        .and_then(|c| c.args.first())
        .map_or(p.pos.offset, |a| a.pos().offset)
}

fn pipe_string(src: &str, p: &PipeNode) -> String {
    let mut out = String::new();
    if !p.decl.is_empty() {
        out.push_str(
            &p.decl
                .iter()
                .map(|d| d.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        );
        out.push_str(if p.is_assign { " = " } else { " := " });
    }
    let cmds: Vec<String> = p.commands.iter().map(|c| cmd_string(src, c)).collect();
    out.push_str(&cmds.join(" | "));
    out
}

fn node_offset(n: &Node) -> usize {
    match n {
        Node::List(l) => l.pos.offset,
        Node::Text(t) => t.pos.offset,
        Node::Action(a) => a.pos.offset,
        Node::If(b) | Node::Range(b) | Node::With(b) => b.pos.offset,
        Node::Template(t) => t.pos.offset,
        Node::Define(d) => d.pos.offset,
        Node::Break(p) | Node::Continue(p) => p.offset,
    }
}

fn list_string(src: &str, l: &ListNode) -> String {
    l.nodes.iter().map(|n| node_string(src, n)).collect()
}

/// Go's `String()` of a node (an action as `{{…}}`).
fn node_string(src: &str, n: &Node) -> String {
    let branch = |word: &str, b: &gotmpl::parse::BranchNode| {
        let mut s = format!(
            "{{{{{word} {}}}}}{}",
            pipe_string(src, &b.pipe),
            list_string(src, &b.body)
        );
        if let Some(e) = &b.else_body {
            s.push_str(&format!("{{{{else}}}}{}", list_string(src, e)));
        }
        s + "{{end}}"
    };
    match n {
        Node::List(l) => list_string(src, l),
        Node::Text(t) => t.text.to_string(),
        Node::Action(a) => format!("{{{{{}}}}}", pipe_string(src, &a.pipe)),
        Node::If(b) => branch("if", b),
        Node::Range(b) => branch("range", b),
        Node::With(b) => branch("with", b),
        Node::Template(t) => match &t.pipe {
            Some(p) => format!(
                "{{{{template {:?} {}}}}}",
                t.name.as_str(),
                pipe_string(src, p)
            ),
            None => format!("{{{{template {:?}}}}}", t.name.as_str()),
        },
        Node::Define(_) => String::new(),
        Node::Break(_) => "{{break}}".into(),
        Node::Continue(_) => "{{continue}}".into(),
    }
}
