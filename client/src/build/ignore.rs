//! `.dockerignore`: which paths of the context the build does not see.
//!
//! docker's rules: one pattern a line; lines starting with `#` are comments; blank lines
//! are skipped; a leading `!` makes an exception (a path it matches is seen again); the
//! last pattern that matches a path decides. Patterns are cleaned (`./a/` is `a`) and
//! anchored at the context's root (a leading `/` changes nothing). `*` is any run of
//! characters but `/`, `?` one of them, `[a-z]` a class, `\` escapes the next character and
//! `**` any number of directories. A pattern that matches a directory excludes what is
//! under it.

use std::fmt;

/// A `.dockerignore` pattern that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError(pub String);

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PatternError {}

/// The path cleaned as Go's `path.Clean` does (no trailing `/`, no `.`, `..` resolved
/// lexically, `.` for nothing).
pub fn clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            c => parts.push(c),
        }
    }
    let body = parts.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

/// Reads a `.dockerignore` into patterns (`!` kept in front of exceptions).
pub fn read_patterns(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut p = line.trim();
        if p.is_empty() {
            continue;
        }
        let invert = p.starts_with('!');
        if invert {
            p = p[1..].trim();
        }
        let mut p = if p.is_empty() {
            String::new()
        } else {
            clean(p)
        };
        if p.len() > 1 && p.starts_with('/') {
            p.remove(0);
        }
        out.push(if invert { format!("!{p}") } else { p });
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(char),
    /// `?`: one character, not `/`.
    One,
    /// `*`: a run without `/`.
    Star,
    /// `**/` inside a pattern: any number of whole directories.
    Dirs,
    /// `**` at the end: anything.
    All,
    Class {
        negated: bool,
        items: Vec<(char, char)>,
    },
}

#[derive(Debug, Clone)]
enum Kind {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Glob(Vec<Tok>),
}

#[derive(Debug, Clone)]
struct Pattern {
    text: String,
    kind: Kind,
    exception: bool,
}

fn compile(p: &str) -> Result<Kind, PatternError> {
    let bad = || PatternError(format!("syntax error in pattern: {p}"));
    let chars: Vec<char> = p.chars().collect();
    let mut toks = Vec::new();
    let mut literal_only = true;
    let mut leading_dirs = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if toks.is_empty() {
                    leading_dirs = true;
                }
                if i >= chars.len() {
                    toks.push(Tok::All);
                } else {
                    toks.push(Tok::Dirs);
                    literal_only = false;
                }
                continue;
            }
            '*' => {
                toks.push(Tok::Star);
                literal_only = false;
            }
            '?' => {
                toks.push(Tok::One);
                literal_only = false;
            }
            '\\' => {
                i += 1;
                match chars.get(i) {
                    Some(n) => toks.push(Tok::Lit(*n)),
                    None => toks.push(Tok::Lit('\\')),
                }
                literal_only = false;
            }
            '[' => {
                literal_only = false;
                i += 1;
                let negated = chars.get(i) == Some(&'^');
                if negated {
                    i += 1;
                }
                let mut items = Vec::new();
                loop {
                    let Some(&c) = chars.get(i) else {
                        return Err(bad());
                    };
                    if c == ']' && !items.is_empty() {
                        break;
                    }
                    let lo = if c == '\\' {
                        i += 1;
                        *chars.get(i).ok_or_else(bad)?
                    } else {
                        c
                    };
                    i += 1;
                    let hi = if chars.get(i) == Some(&'-') && chars.get(i + 1) != Some(&']') {
                        i += 1;
                        let h = *chars.get(i).ok_or_else(bad)?;
                        let h = if h == '\\' {
                            i += 1;
                            *chars.get(i).ok_or_else(bad)?
                        } else {
                            h
                        };
                        i += 1;
                        if h < lo {
                            return Err(bad());
                        }
                        h
                    } else {
                        lo
                    };
                    items.push((lo, hi));
                }
                toks.push(Tok::Class { negated, items });
            }
            c => toks.push(Tok::Lit(c)),
        }
        i += 1;
    }
    let lits = |t: &[Tok]| -> Option<String> {
        t.iter()
            .map(|t| match t {
                Tok::Lit(c) => Some(*c),
                _ => None,
            })
            .collect()
    };
    // docker's shortcuts, which also decide some edge cases: `**` then only literals is a
    // suffix, literals then `**` a prefix, only literals an exact match.
    if leading_dirs && toks.len() > 1 {
        if let Some(rest) = lits(&toks[1..]) {
            let slash = p[2..].starts_with('/');
            return Ok(Kind::Suffix(if slash { format!("/{rest}") } else { rest }));
        }
    }
    if literal_only {
        if let Some((Tok::All, before)) = toks.split_last() {
            if let Some(prefix) = lits(before) {
                return Ok(Kind::Prefix(prefix));
            }
        }
        if let Some(exact) = lits(&toks) {
            return Ok(Kind::Exact(exact));
        }
    }
    Ok(Kind::Glob(toks))
}

/// Whether the tokens match all of `s`. Each (token, position) pair is decided once, so a
/// pattern of many stars costs tokens × characters, not an exponential backtrack.
fn glob(toks: &[Tok], s: &[char]) -> bool {
    let mut memo = vec![None; (toks.len() + 1) * (s.len() + 1)];
    glob_at(toks, s, 0, 0, &mut memo)
}

fn glob_at(toks: &[Tok], s: &[char], t: usize, i: usize, memo: &mut [Option<bool>]) -> bool {
    let key = t * (s.len() + 1) + i;
    if let Some(known) = memo[key] {
        return known;
    }
    let rest = &s[i..];
    let hit = match toks.get(t) {
        None => rest.is_empty(),
        Some(Tok::Lit(c)) => rest.first() == Some(c) && glob_at(toks, s, t + 1, i + 1, memo),
        Some(Tok::One) => {
            rest.first().is_some_and(|c| *c != '/') && glob_at(toks, s, t + 1, i + 1, memo)
        }
        Some(Tok::Star) => {
            let run = rest.iter().take_while(|c| **c != '/').count();
            (0..=run).any(|n| glob_at(toks, s, t + 1, i + n, memo))
        }
        Some(Tok::All) => true,
        Some(Tok::Dirs) => {
            // `(.*/)?`: nothing, or anything that ends with a slash.
            glob_at(toks, s, t + 1, i, memo)
                || (i..s.len())
                    .filter(|&j| s[j] == '/')
                    .any(|j| glob_at(toks, s, t + 1, j + 1, memo))
        }
        Some(Tok::Class { negated, items }) => match rest.first() {
            Some(c) => {
                let hit = items.iter().any(|(lo, hi)| lo <= c && c <= hi);
                hit != *negated && glob_at(toks, s, t + 1, i + 1, memo)
            }
            None => false,
        },
    };
    memo[key] = Some(hit);
    hit
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact(e) => path == e,
            Kind::Prefix(p) => path.starts_with(p.as_str()),
            Kind::Suffix(s) => {
                path.ends_with(s.as_str()) || (s.starts_with('/') && path == &s[1..])
            }
            Kind::Glob(t) => {
                let chars: Vec<char> = path.chars().collect();
                glob(t, &chars)
            }
        }
    }
}

/// The patterns of a `.dockerignore`, ready to ask about paths.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

impl Ignore {
    /// Compiles `patterns` (as [`read_patterns`] gives them).
    pub fn new(patterns: &[String]) -> Result<Ignore, PatternError> {
        let mut out = Vec::new();
        for p in patterns {
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            let p = clean(p);
            let (exception, body) = match p.strip_prefix('!') {
                Some("") => return Err(PatternError("illegal exclusion pattern: \"!\"".into())),
                Some(b) => (true, b.to_string()),
                None => (false, p),
            };
            out.push(Pattern {
                kind: compile(&body)?,
                text: body,
                exception,
            });
        }
        Ok(Ignore { patterns: out })
    }

    /// Reads a `.dockerignore`'s text.
    pub fn parse(text: &str) -> Result<Ignore, PatternError> {
        Ignore::new(&read_patterns(text))
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether some pattern is an exception (then an excluded directory must still be
    /// walked: something under it may be seen again).
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exception)
    }

    /// Whether `path` (relative to the context, `/`-separated) is excluded: the last
    /// pattern that matches it, or one of its leading directories, decides.
    pub fn excludes(&self, path: &str) -> bool {
        let path = clean(path);
        if path == "." {
            return false;
        }
        let parent: Vec<&str> = match path.rsplit_once('/') {
            Some((dir, _)) => dir.split('/').collect(),
            None => vec![],
        };
        let mut matched = false;
        for p in &self.patterns {
            if p.exception != matched {
                continue;
            }
            // As docker's MatchesOrParentMatches: the path, or any directory above it (a
            // pattern that matches a directory excludes everything under it).
            let hit =
                p.matches(&path) || (1..=parent.len()).any(|n| p.matches(&parent[..n].join("/")));
            if hit {
                matched = !p.exception;
            }
        }
        matched
    }

    /// The patterns as given, exceptions with their `!`.
    pub fn patterns(&self) -> Vec<String> {
        self.patterns
            .iter()
            .map(|p| {
                if p.exception {
                    format!("!{}", p.text)
                } else {
                    p.text.clone()
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning() {
        for (a, b) in [
            ("a/b/", "a/b"),
            ("./a", "a"),
            ("a//b", "a/b"),
            ("a/../b", "b"),
            ("../a", "../a"),
            ("/../a", "/a"),
            ("", "."),
            ("/", "/"),
        ] {
            assert_eq!(clean(a), b, "{a}");
        }
    }

    #[test]
    fn reading_the_file() {
        let text =
            "\u{feff}# comment\n\n  node_modules/ \n!  keep.md\n/abs\n*.log\n #not a comment\n";
        assert_eq!(
            read_patterns(text),
            ["node_modules", "!keep.md", "abs", "*.log", "#not a comment"]
        );
    }

    /// (patterns, path, excluded)
    const CASES: &[(&[&str], &str, bool)] = &[
        (&["foo"], "foo", true),
        (&["foo"], "foo/bar", true),
        (&["foo"], "a/foo", false),
        (&["*.md"], "README.md", true),
        (&["*.md"], "docs/README.md", false),
        (&["*/*.md"], "docs/README.md", true),
        (&["**/*.md"], "docs/a/README.md", true),
        (&["**/*.md"], "README.md", true),
        (&["**/foo"], "a/b/foo", true),
        (&["**/foo"], "foo", true),
        (&["**/foo"], "a/xfoo", false),
        (&["foo/**"], "foo/a/b", true),
        (&["foo/**/bar"], "foo/bar", true),
        (&["foo/**/bar"], "foo/a/b/bar", true),
        (&["foo/**/bar"], "foo/a/b/baz", false),
        (&["?.txt"], "a.txt", true),
        (&["?.txt"], "ab.txt", false),
        (&["[a-c].txt"], "b.txt", true),
        (&["[a-c].txt"], "d.txt", false),
        (&["[^a-c].txt"], "d.txt", true),
        (&["\\*.txt"], "*.txt", true),
        (&["\\*.txt"], "a.txt", false),
        (&["*"], "anything/at/all", true),
        (&["*", "!keep"], "keep", false),
        (&["*", "!keep"], "other", true),
        (&["*.md", "!README.md"], "README.md", false),
        (&["*.md", "!README.md", "README.md"], "README.md", true),
        (&["dir", "!dir/keep"], "dir/keep", false),
        (&["dir", "!dir/keep"], "dir/other", true),
        (&["dir/*", "!dir/keep"], "dir/keep/x", false),
        (&["a.b"], "axb", false),
        (&["a(b)"], "a(b)", true),
        (&["./foo/"], "foo", true),
        (&["/foo"], "foo", true),
        // A directory a pattern matches takes what is under it along, however deep the
        // pattern (found by the fuzz target: only the pattern's own depth was looked at).
        (&["**/x/**/y"], "n/x/y", true),
        (&["**/x/**/y"], "n/x/y/child", true),
        (&["*/b"], "a/b/c/d", true),
        (
            &["*a*a*a*a*a*a*a*a*a*a*a*a*b"],
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            false,
        ),
        (
            &["**/**/**/**/**/**/**/**/**/**/z"],
            "a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/y",
            false,
        ),
    ];

    #[test]
    fn matching() {
        for (patterns, path, want) in CASES {
            let patterns: Vec<String> = read_patterns(&patterns.join("\n"));
            let ig = Ignore::new(&patterns).unwrap();
            assert_eq!(ig.excludes(path), *want, "{patterns:?} {path}");
        }
    }

    #[test]
    fn bad_patterns() {
        for p in ["!", "[", "a[b", "[z-a]"] {
            assert!(Ignore::new(&[p.to_string()]).is_err(), "{p}");
        }
        assert_eq!(
            Ignore::new(&["!".to_string()]).unwrap_err().to_string(),
            "illegal exclusion pattern: \"!\""
        );
    }
}
