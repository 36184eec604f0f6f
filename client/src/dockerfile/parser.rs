//! The Dockerfile's lines, read into instructions as docker's parser reads them.
//!
//! - Parser directives (`# escape=`, `# syntax=`, `# check=`) are read only at the top,
//!   before any instruction, comment or blank line; each at most once.
//! - A line ending in the escape character (after optional blanks) continues on the next;
//!   comment lines and blank lines inside a continuation are skipped (blank ones with a
//!   warning, as docker gives).
//! - The first word is the instruction (any case), then `--flag` words, then the arguments,
//!   read per instruction: JSON arrays (exec form) or text (shell form), whitespace-split
//!   words, `key=value` pairs, and ONBUILD's instruction inside it.
//! - RUN, COPY and ADD in shell form may carry heredocs (`<<EOF`, `<<-EOF`, `<<"EOF"`): the
//!   lines after the instruction, up to the terminator, belong to it.
//!
//! Nothing here substitutes variables or checks an instruction's meaning: that is
//! [`super::instructions`]'s job, which also gives docker's messages for what is wrong.

use super::shell::{Lexer, NoEnv};

/// What `# escape=`, `# syntax=` and `# check=` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    pub escape: char,
    pub syntax: Option<String>,
    pub check: Option<String>,
}

/// A heredoc attached to an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The terminator word, quotes removed: also the file name it stands for.
    pub name: String,
    /// Variables in the body are substituted (the terminator was not quoted).
    pub expand: bool,
    /// `<<-`: leading tabs are removed from the body's lines.
    pub chomp: bool,
    /// The body, every line with its newline.
    pub content: String,
}

impl Heredoc {
    /// The body as the instruction uses it (tabs chomped for `<<-`).
    pub fn body(&self) -> String {
        if !self.chomp {
            return self.content.clone();
        }
        self.content
            .split_inclusive('\n')
            .map(|l| l.trim_start_matches('\t'))
            .collect()
    }
}

/// An instruction's arguments, as its kind reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    /// Nothing after the instruction (and its flags).
    Empty,
    /// A JSON array of strings: the exec form.
    Json(Vec<String>),
    /// The rest of the line as written: the shell form, USER, WORKDIR…
    Text(String),
    /// Whitespace-separated words (quotes kept for later): FROM, EXPOSE, COPY's paths, ARG.
    Words(Vec<String>),
    /// ENV and LABEL: `(key, value, legacy)` where legacy is the `KEY value` form.
    Pairs(Vec<(String, String, bool)>),
    /// HEALTHCHECK: its kind word (`CMD`, `NONE`) and the command after it.
    Health(String, Box<Args>),
    /// ONBUILD: the instruction it holds.
    Sub(Box<Node>),
}

impl Args {
    /// The arguments as a list, docker's way: a shell form is one element.
    pub fn list(&self) -> Vec<String> {
        match self {
            Args::Empty => vec![],
            Args::Json(v) | Args::Words(v) => v.clone(),
            Args::Text(s) => vec![s.clone()],
            Args::Pairs(p) => p
                .iter()
                .flat_map(|(k, v, _)| [k.clone(), v.clone()])
                .collect(),
            Args::Health(kind, rest) => {
                let mut v = vec![kind.clone()];
                v.extend(rest.list());
                v
            }
            Args::Sub(n) => {
                let mut v = vec![n.command.clone()];
                v.extend(n.args.list());
                v
            }
        }
    }

    pub fn is_json(&self) -> bool {
        match self {
            Args::Json(_) => true,
            Args::Health(_, rest) => rest.is_json(),
            _ => false,
        }
    }
}

/// One instruction of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The instruction word as written (`run`, `RUN`).
    pub command: String,
    /// `--name[=value]` words before the arguments, quotes removed.
    pub flags: Vec<String>,
    pub args: Args,
    /// The logical line: continuation lines joined, comments left out.
    pub original: String,
    pub heredocs: Vec<Heredoc>,
    /// First and last line in the file (1-based), heredoc bodies included.
    pub start_line: usize,
    pub end_line: usize,
}

impl Node {
    /// The instruction word, lower case.
    pub fn keyword(&self) -> String {
        self.command.to_ascii_lowercase()
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone)]
pub struct Dockerfile {
    pub directives: Directives,
    pub nodes: Vec<Node>,
    /// Docker's warnings (empty continuation lines), to show before the build.
    pub warnings: Vec<String>,
}

/// A syntax error at a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "dockerfile parse error on line {}: {}",
            self.line, self.message
        )
    }
}

impl std::error::Error for ParseError {}

fn err(line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        line,
        message: message.into(),
    }
}

/// Reads directives at the top of the file, one line at a time, until the first line
/// that is not one.
struct DirectiveReader {
    done: bool,
    seen: Vec<String>,
}

impl DirectiveReader {
    /// `Some((name, value))` for a directive line; an error for a repeated one.
    fn read(&mut self, line: &str) -> Result<Option<(String, String)>, String> {
        if self.done {
            return Ok(None);
        }
        let Some(rest) = line.strip_prefix('#') else {
            self.done = true;
            return Ok(None);
        };
        let rest = rest.trim_start();
        let name_len = rest
            .char_indices()
            .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
            .map_or(rest.len(), |(i, _)| i);
        let (name, after) = rest.split_at(name_len);
        let value = after.trim_start().strip_prefix('=').map(str::trim);
        let (Some(value), false) = (value, name.is_empty()) else {
            self.done = true;
            return Ok(None);
        };
        if value.is_empty() {
            self.done = true;
            return Ok(None);
        }
        let name = name.to_ascii_lowercase();
        if !matches!(name.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(None);
        }
        if self.seen.contains(&name) {
            return Err(format!("only one {name} parser directive can be used"));
        }
        self.seen.push(name.clone());
        Ok(Some((name, value.to_string())))
    }
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

/// Removes a trailing escape character (and the blanks after it): `(line, true)` when the
/// instruction goes on after this line.
fn continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    let Some(before) = t.strip_suffix(escape) else {
        return (line, false);
    };
    if before.is_empty() || !before.ends_with(escape) {
        return (before, true);
    }
    (line, false)
}

/// Splits `rest` into its leading `--flag` words and the arguments after them.
fn split_flags(rest: &str, escape: char) -> (Vec<String>, &str) {
    let mut flags = Vec::new();
    let bytes: Vec<(usize, char)> = rest.char_indices().collect();
    let mut i = 0;
    loop {
        while i < bytes.len() && bytes[i].1.is_whitespace() {
            i += 1;
        }
        if i >= bytes.len() {
            return (flags, "");
        }
        let starts_flag = bytes[i].1 == '-' && bytes.get(i + 1).map(|b| b.1) == Some('-');
        if !starts_flag {
            return (flags, &rest[bytes[i].0..]);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        let mut quoted_any = false;
        while i < bytes.len() {
            let c = bytes[i].1;
            match quote {
                None if c.is_whitespace() => break,
                None if c == '\'' || c == '"' => {
                    quote = Some(c);
                    quoted_any = true;
                }
                Some(q) if c == q => quote = None,
                _ if c == escape => {
                    if i + 1 < bytes.len() {
                        i += 1;
                        word.push(bytes[i].1);
                    } else if quote.is_some() {
                        quote = None;
                    }
                }
                _ => word.push(c),
            }
            i += 1;
        }
        if word == "--" {
            let at = bytes.get(i).map_or(rest.len(), |b| b.0);
            return (flags, &rest[at..]);
        }
        if quoted_any || !word.is_empty() {
            flags.push(word);
        }
    }
}

/// Splits at runs of blanks (docker's `[\t\v\f\r ]+`).
fn split_blanks(s: &str, limit: usize) -> Vec<&str> {
    let is_blank = |c: char| matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ');
    let mut out = Vec::new();
    let mut rest = s;
    while out.len() + 1 < limit {
        match rest.find(is_blank) {
            Some(i) => {
                out.push(&rest[..i]);
                rest = rest[i..].trim_start_matches(is_blank);
            }
            None => break,
        }
    }
    out.push(rest);
    out
}

/// Words separated by white space, quotes and escapes kept for the later substitution.
fn words(rest: &str, escape: char) -> Vec<String> {
    let chars: Vec<char> = rest.chars().collect();
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut blank_ok = false;
    let mut quote: Option<char> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match quote {
            None => {
                if c.is_whitespace() {
                    if in_word && (blank_ok || !word.is_empty()) {
                        out.push(std::mem::take(&mut word));
                    }
                    in_word = false;
                    blank_ok = false;
                    i += 1;
                    continue;
                }
                in_word = true;
                if c == '\'' || c == '"' {
                    quote = Some(c);
                    blank_ok = true;
                }
                if c == escape {
                    if i + 1 == chars.len() {
                        i += 1;
                        continue;
                    }
                    word.push(c);
                    i += 1;
                }
                word.push(chars[i]);
            }
            Some(q) => {
                if c == q {
                    quote = None;
                }
                if c == escape && q != '\'' {
                    if i + 1 == chars.len() {
                        quote = None;
                        i += 1;
                        continue;
                    }
                    word.push(c);
                    i += 1;
                }
                word.push(chars[i]);
            }
        }
        i += 1;
    }
    if in_word && (blank_ok || !word.is_empty()) {
        out.push(word);
    }
    out
}

enum JsonArray {
    Strings(Vec<String>),
    Mixed,
    Not,
}

fn json_array(rest: &str) -> JsonArray {
    let t = rest.trim_start();
    if !t.starts_with('[') {
        return JsonArray::Not;
    }
    match serde_json::from_str::<Vec<serde_json::Value>>(t) {
        Err(_) => JsonArray::Not,
        Ok(v) => v
            .into_iter()
            .map(|x| match x {
                serde_json::Value::String(s) => Some(s),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map_or(JsonArray::Mixed, JsonArray::Strings),
    }
}

const NOT_STRINGS: &str = "when using JSON array syntax, arrays must be comprised of strings only";

fn maybe_json(rest: &str) -> Result<Args, String> {
    if rest.is_empty() {
        return Ok(Args::Empty);
    }
    match json_array(rest) {
        JsonArray::Strings(v) => Ok(Args::Json(v)),
        JsonArray::Mixed => Err(NOT_STRINGS.into()),
        JsonArray::Not => Ok(Args::Text(rest.to_string())),
    }
}

fn maybe_json_list(rest: &str) -> Result<Args, String> {
    match json_array(rest) {
        JsonArray::Strings(v) => Ok(Args::Json(v)),
        JsonArray::Mixed => Err(NOT_STRINGS.into()),
        JsonArray::Not if rest.is_empty() => Ok(Args::Empty),
        JsonArray::Not => Ok(Args::Words(
            split_blanks(rest, usize::MAX)
                .into_iter()
                .map(str::to_string)
                .collect(),
        )),
    }
}

fn name_values(rest: &str, key: &str, escape: char) -> Result<Args, String> {
    let w = words(rest, escape);
    let Some(first) = w.first() else {
        return Ok(Args::Empty);
    };
    if !first.contains('=') {
        let parts = split_blanks(rest, 2);
        if parts.len() < 2 {
            return Err(format!("{key} must have two arguments"));
        }
        return Ok(Args::Pairs(vec![(
            parts[0].to_string(),
            parts[1].to_string(),
            true,
        )]));
    }
    let mut pairs = Vec::new();
    for word in w {
        let Some((k, v)) = word.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {word:?}. Must be of the form: name=value"
            ));
        };
        pairs.push((k.to_string(), v.to_string(), false));
    }
    Ok(Args::Pairs(pairs))
}

fn health(rest: &str) -> Result<Args, String> {
    let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
    if sep == 0 {
        return Ok(Args::Empty);
    }
    let kind = rest[..sep].to_string();
    let cmd = maybe_json(rest[sep..].trim_start())?;
    Ok(Args::Health(kind, Box::new(cmd)))
}

/// One logical line into a node (lines are filled in by the caller).
fn node_from_line(line: &str, escape: char) -> Result<Node, String> {
    let trimmed = line.trim();
    let parts = split_blanks(trimmed, 2);
    let command = parts[0].to_string();
    let (flags, rest) = match parts.get(1) {
        Some(rest) => split_flags(rest, escape),
        None => (vec![], ""),
    };
    let rest = rest.trim();
    let args = match command.to_ascii_lowercase().as_str() {
        "add" | "copy" | "volume" => maybe_json_list(rest)?,
        "cmd" | "entrypoint" | "run" | "shell" => maybe_json(rest)?,
        "env" => name_values(rest, "ENV", escape)?,
        "label" => name_values(rest, "LABEL", escape)?,
        "arg" => match words(rest, escape) {
            w if w.is_empty() => Args::Empty,
            w => Args::Words(w),
        },
        "expose" | "from" if !rest.is_empty() => Args::Words(
            split_blanks(rest, usize::MAX)
                .into_iter()
                .map(str::to_string)
                .collect(),
        ),
        "healthcheck" => health(rest)?,
        "maintainer" | "stopsignal" | "user" | "workdir" if !rest.is_empty() => {
            Args::Text(rest.to_string())
        }
        "onbuild" if !rest.is_empty() => Args::Sub(Box::new(node_from_line(rest, escape)?)),
        // Unknown instructions are reported by the instruction reader, with their line.
        _ => Args::Empty,
    };
    Ok(Node {
        command,
        flags,
        args,
        original: line.to_string(),
        heredocs: vec![],
        start_line: 0,
        end_line: 0,
    })
}

/// Whether the node (or ONBUILD's inner node) may have heredocs: RUN, COPY, ADD in shell
/// form.
fn takes_heredocs(node: &Node) -> bool {
    let inner = match &node.args {
        Args::Sub(n) if node.keyword() == "onbuild" => n,
        _ => node,
    };
    matches!(inner.keyword().as_str(), "run" | "copy" | "add") && !inner.args.is_json()
}

/// The heredoc a word starts, if any: `[fd]<<[-]NAME`, NAME maybe quoted.
pub fn heredoc_of(word: &str) -> Result<Option<Heredoc>, String> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let Some(rest) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let rest = rest.trim_start();
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let mut lx = Lexer::new('\\');
    lx.skip_unset = true;
    let plain = lx.words(rest, &NoEnv).map_err(|e| e.to_string())?;
    if plain.len() != 1 {
        return Ok(None);
    }
    lx.raw_quotes = true;
    let raw = lx.words(rest, &NoEnv).map_err(|e| e.to_string())?;
    let quotes = |s: &str| s.matches(['\'', '"']).count();
    Ok(Some(Heredoc {
        expand: quotes(&plain[0]) == quotes(&raw[0]),
        name: plain[0].clone(),
        chomp,
        content: String::new(),
    }))
}

fn heredocs_of_line(line: &str) -> Result<Vec<Heredoc>, String> {
    let mut lx = Lexer::new('\\');
    lx.raw_quotes = true;
    lx.raw_escapes = true;
    lx.skip_unset = true;
    let words = lx.words(line, &NoEnv).unwrap_or_default();
    let mut out = Vec::new();
    for w in words {
        if let Some(h) = heredoc_of(&w)? {
            out.push(h);
        }
    }
    Ok(out)
}

/// Parses a Dockerfile's text.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut reader = DirectiveReader {
        done: false,
        seen: vec![],
    };
    let mut directives = Directives {
        escape: '\\',
        syntax: None,
        check: None,
    };
    let mut nodes = Vec::new();
    let mut warnings = Vec::new();
    let mut i = 0;
    // Reads a line: newline removed, leading blanks too for an instruction's first line;
    // a directive is taken in; a comment becomes empty.
    let mut take = |raw: &str,
                    strip_left: bool,
                    line_no: usize,
                    directives: &mut Directives|
     -> Result<String, ParseError> {
        let mut l = trim_newline(raw);
        if strip_left {
            l = l.trim_start();
        }
        if let Some((name, value)) = reader.read(l).map_err(|m| err(line_no, m))? {
            match name.as_str() {
                "escape" => {
                    directives.escape = match value.as_str() {
                        "\\" => '\\',
                        "`" => '`',
                        _ => {
                            return Err(err(
                                line_no,
                                format!("invalid escape token '{value}' does not match ` or \\"),
                            ))
                        }
                    }
                }
                "syntax" => directives.syntax = Some(value),
                _ => directives.check = Some(value),
            }
        }
        Ok(if is_comment(l) {
            String::new()
        } else {
            l.to_string()
        })
    };
    while i < lines.len() {
        let line_no = i + 1;
        let first = take(lines[i], true, line_no, &mut directives)?;
        i += 1;
        let start = line_no;
        let escape = directives.escape;
        let (part, goes_on) = continuation(&first, escape);
        let mut done = !goes_on;
        if done_and_empty(part, done) {
            continue;
        }
        let mut logical = part.to_string();
        let mut empty_continuation = false;
        while !done && i < lines.len() {
            let raw = lines[i];
            let l = take(raw, false, i + 1, &mut directives)?;
            i += 1;
            if is_comment(raw) {
                continue;
            }
            if l.trim_start().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (part, goes_on) = continuation(&l, escape);
            logical.push_str(part);
            done = !goes_on;
        }
        if empty_continuation {
            warnings.push(format!("Empty continuation line found in: {logical}"));
        }
        let mut node = node_from_line(&logical, escape).map_err(|m| err(start, m))?;
        if takes_heredocs(&node) && logical.contains("<<") {
            let docs = heredocs_of_line(&logical).map_err(|m| err(start, m))?;
            for mut doc in docs {
                let mut terminated = false;
                while i < lines.len() {
                    let raw = lines[i];
                    i += 1;
                    let mut candidate = trim_newline(raw);
                    if doc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == doc.name {
                        terminated = true;
                        break;
                    }
                    doc.content.push_str(raw);
                }
                if !terminated {
                    return Err(err(start, "unterminated heredoc"));
                }
                node.heredocs.push(doc);
            }
        }
        node.start_line = start;
        node.end_line = i;
        if let Args::Sub(sub) = &mut node.args {
            sub.start_line = start;
            sub.end_line = i;
            sub.heredocs = node.heredocs.clone();
        }
        nodes.push(node);
    }
    if nodes.is_empty() {
        return Err(err(lines.len(), "file with no instructions"));
    }
    Ok(Dockerfile {
        directives,
        nodes,
        warnings,
    })
}

fn done_and_empty(part: &str, done: bool) -> bool {
    done && part.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compact view of a node for the tables below.
    fn show(n: &Node) -> String {
        let mut s = n.keyword();
        if !n.flags.is_empty() {
            s += &format!(" {:?}", n.flags);
        }
        s += &match &n.args {
            Args::Empty => String::new(),
            Args::Json(v) => format!(" json{v:?}"),
            Args::Text(t) => format!(" text{t:?}"),
            Args::Words(w) => format!(" {w:?}"),
            Args::Pairs(p) => format!(" {p:?}"),
            Args::Health(k, r) => format!(" {k} {r:?}"),
            Args::Sub(n) => format!(" ({})", show(n)),
        };
        s += &format!(" @{}-{}", n.start_line, n.end_line);
        for h in &n.heredocs {
            s += &format!(
                " <<{}{}{}:{:?}",
                if h.chomp { "-" } else { "" },
                h.name,
                if h.expand { "" } else { "(raw)" },
                h.content
            );
        }
        s
    }

    fn parsed(text: &str) -> Vec<String> {
        parse(text).unwrap().nodes.iter().map(show).collect()
    }

    #[test]
    fn lines_into_nodes() {
        let cases: &[(&str, &[&str])] = &[
            ("FROM busybox\n", &[r#"from ["busybox"] @1-1"#]),
            (
                "from busybox AS b\nrun echo hi\n",
                &[
                    r#"from ["busybox", "AS", "b"] @1-1"#,
                    r#"run text"echo hi" @2-2"#,
                ],
            ),
            (
                "# comment\n\nFROM x\n  # indented comment\nRUN a \\\n  b \\\n # inside\n\n  c\n",
                &[r#"from ["x"] @3-3"#, r#"run text"a   b   c" @5-9"#],
            ),
            (
                "RUN [\"echo\", \"a b\"]\n",
                &[r#"run json["echo", "a b"] @1-1"#],
            ),
            (
                "RUN [\"echo\", 'x']\n",
                &[r#"run text"[\"echo\", 'x']" @1-1"#],
            ),
            ("CMD [ \"a\" ] \n", &[r#"cmd json["a"] @1-1"#]),
            (
                "COPY --from=b --chown=\"1:2\" a b /d/\n",
                &[r#"copy ["--from=b", "--chown=1:2"] ["a", "b", "/d/"] @1-1"#],
            ),
            ("COPY -- --x /d\n", &[r#"copy ["--x", "/d"] @1-1"#]),
            (
                "ENV A=1 B=\"two words\" C=x\\ y\n",
                &[
                    r#"env [("A", "1", false), ("B", "\"two words\"", false), ("C", "x\\ y", false)] @1-1"#,
                ],
            ),
            ("ENV A  b c\n", &[r#"env [("A", "b c", true)] @1-1"#]),
            (
                "LABEL \"a b\"=c\n",
                &[r#"label [("\"a b\"", "c", false)] @1-1"#],
            ),
            (
                "ARG A B=2 C=\"x y\"\n",
                &[r#"arg ["A", "B=2", "C=\"x y\""] @1-1"#],
            ),
            (
                "HEALTHCHECK --interval=5s CMD [\"true\"]\n",
                &[r#"healthcheck ["--interval=5s"] CMD Json(["true"]) @1-1"#],
            ),
            ("HEALTHCHECK NONE\n", &[r#"healthcheck NONE Empty @1-1"#]),
            (
                "ONBUILD RUN --network=none x\n",
                &[r#"onbuild (run ["--network=none"] text"x" @1-1) @1-1"#],
            ),
            ("WORKDIR  /a b \n", &[r#"workdir text"/a b" @1-1"#]),
            (
                "EXPOSE 80  443/udp\n",
                &[r#"expose ["80", "443/udp"] @1-1"#],
            ),
            (
                "VOLUME [\"/a\", \"/b\"]\n",
                &[r#"volume json["/a", "/b"] @1-1"#],
            ),
            ("VOLUME /a /b\n", &[r#"volume ["/a", "/b"] @1-1"#]),
            ("RUN a \\\n", &[r#"run text"a" @1-1"#]),
            (
                "RUN a \\\\\nRUN b\n",
                &[r#"run text"a \\\\" @1-1"#, r#"run text"b" @2-2"#],
            ),
            (
                "\u{feff}FROM x\r\nRUN y\r\n",
                &[r#"from ["x"] @1-1"#, r#"run text"y" @2-2"#],
            ),
            ("BOGUS whatever\n", &["bogus @1-1"]),
            (
                "RUN <<EOF\necho hi\necho there\nEOF\nRUN x\n",
                &[
                    r#"run text"<<EOF" @1-4 <<EOF:"echo hi\necho there\n""#,
                    r#"run text"x" @5-5"#,
                ],
            ),
            (
                "RUN <<-'EOF' cat\n\tindented $X\n\tEOF\n",
                &[r#"run text"<<-'EOF' cat" @1-3 <<-EOF(raw):"\tindented $X\n""#],
            ),
            (
                "COPY <<a.txt <<b.txt /dst/\nA\na.txt\nB\nb.txt\n",
                &[r#"copy ["<<a.txt", "<<b.txt", "/dst/"] @1-5 <<a.txt:"A\n" <<b.txt:"B\n""#],
            ),
            (
                "RUN [\"cat\", \"<<EOF\"]\n",
                &[r#"run json["cat", "<<EOF"] @1-1"#],
            ),
            (
                "RUN echo $((1<<2))\n",
                &[r#"run text"echo $((1<<2))" @1-1"#],
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parsed(text), *want, "{text:?}");
        }
    }

    #[test]
    fn directives() {
        let d = parse("# escape=`\n# syntax=docker/dockerfile:1\nFROM x\nRUN a `\n  b\n").unwrap();
        assert_eq!(d.directives.escape, '`');
        assert_eq!(d.directives.syntax.as_deref(), Some("docker/dockerfile:1"));
        assert_eq!(d.nodes[1].original, "RUN a   b");
        // After a comment, a blank line or an instruction, directives are comments.
        for text in [
            "# hello\n# escape=`\nFROM x\nRUN a `\n",
            "\n# escape=`\nFROM x\nRUN a `\n",
            "FROM x\n# escape=`\nRUN a `\n",
        ] {
            let d = parse(text).unwrap();
            assert_eq!(d.directives.escape, '\\', "{text:?}");
        }
        assert_eq!(
            parse("#ESCAPE = `\nFROM x\n").unwrap().directives.escape,
            '`'
        );
        let e = parse("# escape=`\n# escape=\\\nFROM x\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "dockerfile parse error on line 2: only one escape parser directive can be used"
        );
        let e = parse("# escape=x\nFROM x\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "dockerfile parse error on line 1: invalid escape token 'x' does not match ` or \\"
        );
    }

    #[test]
    fn errors_name_their_line() {
        for (text, want) in [
            ("", "dockerfile parse error on line 0: file with no instructions"),
            ("# only\n\n", "dockerfile parse error on line 2: file with no instructions"),
            (
                "FROM x\n\nRUN [\"a\", 1]\n",
                "dockerfile parse error on line 3: when using JSON array syntax, arrays must be comprised of strings only",
            ),
            ("FROM x\nENV A\n", "dockerfile parse error on line 2: ENV must have two arguments"),
            (
                "FROM x\nLABEL a=b c\n",
                "dockerfile parse error on line 2: Syntax error - can't find = in \"c\". Must be of the form: name=value",
            ),
            ("FROM x\nRUN <<EOF\nno end\n", "dockerfile parse error on line 2: unterminated heredoc"),
        ] {
            assert_eq!(parse(text).unwrap_err().to_string(), want, "{text:?}");
        }
        let d = parse("FROM x\nRUN a \\\n\n  b\n").unwrap();
        assert_eq!(d.warnings, ["Empty continuation line found in: RUN a   b"]);
    }

    #[test]
    fn heredoc_words() {
        let h = |w: &str| heredoc_of(w).unwrap().map(|h| (h.name, h.expand, h.chomp));
        assert_eq!(h("<<EOF"), Some(("EOF".into(), true, false)));
        assert_eq!(h("<<-EOF"), Some(("EOF".into(), true, true)));
        assert_eq!(h("<<\"EOF\""), Some(("EOF".into(), false, false)));
        assert_eq!(h("<<E'O'F"), Some(("EOF".into(), false, false)));
        assert_eq!(h("2<<EOF"), Some(("EOF".into(), true, false)));
        assert_eq!(h("<<"), None);
        assert_eq!(h("x<<EOF"), None);
        assert_eq!(h("<<a b"), None);
        let doc = Heredoc {
            name: "E".into(),
            expand: true,
            chomp: true,
            content: "\t\ta\n\tb\n".into(),
        };
        assert_eq!(doc.body(), "a\nb\n");
    }
}
