//! Go's text/template executor (`text/template/exec.go`) over the parse trees of the
//! `gotmpl` crate, for what that crate's own executor cannot say: a struct (whose missing
//! field is an error) from a map (whose missing key is no value), and where in the template a
//! run failed (`template: :1:2: executing "" at <.Nope>: …`).
//!
//! Values are JSON documents read through a [`Schema`]: the objects it names as maps are Go
//! maps, the others structs (named by the schema where Go's errors name them); without a
//! schema every object is a map, as docker's inspect reads a document it decoded as JSON.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::parse::{CommandNode, Expr, ListNode, Node, Number, PipeNode};
use serde_json::Value;

/// Go's types of a command's `--format` value: the document's type as Go's errors name it,
/// and the Go type of each object below it that matters, by path (`Config.Labels`; `*` is
/// any element of a list or value of a map). A type beginning with `map[` is a map, and so is
/// a named one written with its map type after it (`nat.PortMap map[nat.Port]…`, whose keys
/// are no strings: no field reads one); any other object is a struct.
#[derive(Debug)]
pub struct Schema {
    pub root: &'static str,
    pub types: &'static [(&'static str, &'static str)],
    /// When a run on these types fails, docker runs the template again on the document read
    /// as JSON, and that run's output or error is the answer (its inspect of containers,
    /// images and networks).
    pub raw_fallback: bool,
}

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
    List(Arc<[Val]>),
    /// A map; its type (`map[string]string`), for its zero value and Go's errors.
    Map(Arc<BTreeMap<Arc<str>, Val>>, &'static str),
    /// A struct, its Go type's name and fields.
    Struct(Arc<BTreeMap<Arc<str>, Val>>, &'static str),
}

const RAW_MAP: &str = "map[string]interface {}";

impl Val {
    /// A JSON document read through `schema` (none: every object a map).
    pub fn from_json(v: &Value, schema: Option<&Schema>) -> Val {
        let mut path = Vec::new();
        Self::read(v, schema, &mut path)
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
                Val::List(out.into())
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
                    false => Val::Struct(Arc::new(out), ty),
                }
            }
        }
    }

    /// The value as JSON (for docker's `json`).
    pub fn to_json(&self) -> Value {
        match self {
            Val::Invalid | Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(*b),
            Val::Int(i) => Value::from(*i),
            Val::Uint(u) => Value::from(*u),
            Val::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Val::Str(s) => Value::String(s.to_string()),
            Val::List(items) => Value::Array(items.iter().map(Val::to_json).collect()),
            Val::Map(m, _) | Val::Struct(m, _) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.to_string(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// The value as the `gotmpl` crate's (whose formatting is Go's `fmt`).
    pub fn to_go(&self) -> gotmpl::Value {
        use gotmpl::Value as Go;
        match self {
            Val::Invalid | Val::Null => Go::Nil,
            Val::Bool(b) => Go::Bool(*b),
            Val::Int(i) => Go::Int(*i),
            Val::Uint(u) => Go::Uint(*u),
            Val::Float(f) => Go::Float(*f),
            Val::Str(s) => Go::String(s.clone()),
            Val::List(items) => Go::List(items.iter().map(Val::to_go).collect::<Vec<_>>().into()),
            Val::Map(m, _) | Val::Struct(m, _) => Go::Map(Arc::new(
                m.iter().map(|(k, v)| (k.clone(), v.to_go())).collect(),
            )),
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
            Val::List(_) => "[]interface {}",
            Val::Map(_, t) | Val::Struct(_, t) => t.split(" map[").next().unwrap_or(t),
        }
    }

    /// Go's truth of a value (`if`, `with`, `and`, `or`, `not`).
    pub fn truth(&self) -> bool {
        match self {
            Val::Invalid | Val::Null => false,
            Val::Bool(b) => *b,
            Val::Int(i) => *i != 0,
            Val::Uint(u) => *u != 0,
            Val::Float(f) => *f != 0.0,
            Val::Str(s) => !s.is_empty(),
            Val::List(l) => !l.is_empty(),
            Val::Map(m, _) => !m.is_empty(),
            Val::Struct(..) => true,
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

    /// The zero value of a map's elements (a missing key's value for `index`).
    pub fn zero_of(map_type: &str) -> Val {
        match map_type.rsplit_once(']').map(|(_, e)| e) {
            Some("string") => Val::str(""),
            _ => Val::Invalid,
        }
    }
}

/// Go's `fmt.Sprint` of one value (what an action prints).
impl std::fmt::Display for Val {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Val::Invalid => f.write_str("<no value>"),
            Val::Str(s) => f.write_str(s),
            other => write!(f, "{}", other.to_go()),
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
        let v = self.eval_pipeline(dot, &r.pipe)?;
        let mark = self.mark();
        let decl = r.pipe.decl.len();
        let items: Vec<(Val, Val)> = match &v {
            Val::List(l) => l
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
        for ident in &idents[..n - 1] {
            receiver = self.eval_field(ident, &[], &None, receiver)?;
        }
        self.eval_field(&idents[n - 1], args, &fin, receiver)
    }

    fn eval_field(&self, name: &str, args: &[Expr], fin: &Option<Val>, receiver: Val) -> R<Val> {
        let has_args = args.len() > 1 || fin.is_some();
        match &receiver {
            Val::Invalid => {
                if self.missing_key_error {
                    return Err(self.errorf(format!("nil data; no entry for key {name:?}")));
                }
                Ok(Val::Invalid)
            }
            Val::Null => Err(self.errorf(format!("nil pointer evaluating interface {{}}.{name}"))),
            Val::Struct(fields, ty) => match fields.get(name) {
                Some(_) if has_args => Err(self.errorf(format!(
                    "{name} has arguments but cannot be invoked as function"
                ))),
                Some(v) => Ok(v.clone()),
                None => Err(self.errorf(format!("can't evaluate field {name} in type {ty}"))),
            },
            Val::Map(m, ty) if ty.starts_with("map[string]") => {
                if has_args {
                    return Err(self.errorf(format!("{name} is not a method but has arguments")));
                }
                match m.get(name) {
                    Some(v) => Ok(v.clone()),
                    None if self.missing_key_error => {
                        Err(self.errorf(format!("map has no entry for key {name:?}")))
                    }
                    None => Ok(Val::Invalid),
                }
            }
            other => Err(self.errorf(format!(
                "can't evaluate field {name} in type {}",
                other.type_name()
            ))),
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
