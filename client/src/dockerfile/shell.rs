//! Variable substitution in Dockerfile words, as docker's builder does it.
//!
//! A [`Lexer`] reads one word (or a line of words) the way a POSIX shell would for the few
//! things a Dockerfile allows: `$NAME`, `${NAME}`, the modifiers `${NAME:-word}`,
//! `${NAME-word}`, `${NAME:+word}`, `${NAME+word}`, `${NAME:?message}`, `${NAME?message}`,
//! the pattern trims `${NAME#p}`, `${NAME##p}`, `${NAME%p}`, `${NAME%%p}` and the
//! replacements `${NAME/p/r}` and `${NAME//p/r}`; single quotes (literal), double quotes
//! (substitution inside, the escape character escapes `"`, `$` and itself) and the escape
//! character (`\`, or the backtick chosen by `# escape=`) outside quotes.
//!
//! [`Lexer::word`] gives the word with its quotes taken away; [`Lexer::words`] also splits
//! it at unquoted white space (EXPOSE, and the parser's heredoc detection use that).
//! The flags keep the raw text where docker keeps it: `raw_quotes` keeps the quote
//! characters, `raw_escapes` keeps escape characters, `skip_unset` leaves `$NAME` as written
//! when NAME is not set, and `no_quotes` treats quotes as ordinary characters (heredoc
//! bodies).

use std::fmt;

/// Where a lexer finds variables.
pub trait Env {
    fn get(&self, name: &str) -> Option<&str>;
}

impl Env for [(String, String)] {
    fn get(&self, name: &str) -> Option<&str> {
        // The last definition wins, as in an environment built up in order.
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Env for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<&str> {
        Env::get(self.as_slice(), name)
    }
}

/// No variables at all.
pub struct NoEnv;

impl Env for NoEnv {
    fn get(&self, _: &str) -> Option<&str> {
        None
    }
}

/// A substitution docker refuses; the message is docker's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellError {
    pub source: String,
    pub message: String,
}

impl fmt::Display for ShellError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failed to process {:?}: {}", self.source, self.message)
    }
}

impl std::error::Error for ShellError {}

/// How a word is read; see the module's documentation.
#[derive(Debug, Clone, Copy)]
pub struct Lexer {
    pub escape: char,
    pub raw_quotes: bool,
    pub raw_escapes: bool,
    pub no_quotes: bool,
    pub skip_unset: bool,
}

impl Lexer {
    pub fn new(escape: char) -> Lexer {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            no_quotes: false,
            skip_unset: false,
        }
    }

    /// The word with substitutions made and quotes removed.
    pub fn word(&self, text: &str, env: &dyn Env) -> Result<String, ShellError> {
        self.run(text, env).map(|(w, _)| w)
    }

    /// The words of `text`, split at unquoted white space, substitutions made.
    pub fn words(&self, text: &str, env: &dyn Env) -> Result<Vec<String>, ShellError> {
        self.run(text, env).map(|(_, w)| w)
    }

    fn run(&self, text: &str, env: &dyn Env) -> Result<(String, Vec<String>), ShellError> {
        let mut s = Scan {
            lx: *self,
            chars: text.chars().collect(),
            pos: 0,
            env,
            raw_escapes: self.raw_escapes,
        };
        let raw = s.raw_escapes;
        s.until(None, raw).map_err(|message| ShellError {
            source: text.to_string(),
            message,
        })
    }
}

/// Collects the words of a line as a shell splits them.
#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.raw_char(c);
        }
    }

    fn raw_char(&mut self, c: char) {
        self.buf.push(c);
        self.in_word = true;
    }

    /// A substitution's value: split like the rest.
    fn split_str(&mut self, s: &str) {
        for c in s.chars() {
            self.char(c);
        }
    }

    /// Quoted text: one piece of the current word, whatever it holds.
    fn raw_str(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(self.buf);
        }
        self.words
    }
}

struct Scan<'a> {
    lx: Lexer,
    chars: Vec<char>,
    pos: usize,
    env: &'a dyn Env,
    raw_escapes: bool,
}

type R<T> = Result<T, String>;

impl Scan<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Reads up to `stop` (consumed) or the end; `stop` missing at the end is an error.
    fn until(&mut self, stop: Option<char>, raw_escapes: bool) -> R<(String, Vec<String>)> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let r = self.until_inner(stop);
        self.raw_escapes = saved;
        r
    }

    fn until_inner(&mut self, stop: Option<char>) -> R<(String, Vec<String>)> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            let special = match c {
                '$' => Some(self.dollar()?),
                '<' => Some(self.maybe_heredoc()),
                '\'' if !self.lx.no_quotes => Some(self.single_quote()?),
                '"' if !self.lx.no_quotes => Some(self.double_quote()?),
                _ => None,
            };
            if let Some(text) = special {
                result.push_str(&text);
                if c == '$' {
                    words.split_str(&text);
                } else {
                    words.raw_str(&text);
                }
                continue;
            }
            let mut c = self.next().expect("peeked");
            if c == self.lx.escape {
                if self.raw_escapes {
                    words.raw_char(c);
                    result.push(c);
                }
                match self.next() {
                    None => break,
                    Some(n) => c = n,
                }
                words.raw_char(c);
            } else {
                words.char(c);
            }
            result.push(c);
        }
        if let Some(stop) = stop {
            return Err(format!(
                "unexpected end of statement while looking for matching {stop}"
            ));
        }
        Ok((result, words.finish()))
    }

    fn single_quote(&mut self) -> R<String> {
        let mut out = String::new();
        let q = self.next().expect("a quote");
        if self.lx.raw_quotes {
            out.push(q);
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
                }
                Some('\'') => {
                    if self.lx.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> R<String> {
        let mut out = String::new();
        let q = self.next().expect("a quote");
        if self.lx.raw_quotes {
            out.push(q);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    )
                }
                Some('"') => {
                    self.next();
                    if self.lx.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let v = self.dollar()?;
                    out.push_str(&v);
                }
                Some(_) => {
                    let mut c = self.next().expect("peeked");
                    if c == self.lx.escape {
                        if self.raw_escapes {
                            out.push(c);
                        }
                        match self.peek() {
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.lx.escape => {
                                c = n;
                                self.next();
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(c);
                }
            }
        }
    }

    /// `<<` followed by blanks stays together, so a heredoc marker is one word.
    fn maybe_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".into();
        }
        self.next();
        let mut out = String::from("<<");
        while let Some(c @ (' ' | '\t' | '\r')) = self.peek() {
            out.push(c);
            self.next();
        }
        out
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && c.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return c.to_string();
            }
            if !c.is_alphanumeric() && c != '_' {
                break;
            }
            name.push(c);
            self.next();
        }
        name
    }

    fn lookup(&self, name: &str) -> Option<String> {
        self.env.get(name).map(str::to_string)
    }

    fn dollar(&mut self) -> R<String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.lookup(&name) {
                Some(v) => v,
                None if self.lx.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.next();
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            Some(_) => {}
        }
        let name = self.name();
        let Some(mut c) = self.next() else {
            return Err("syntax error: missing '}'".into());
        };
        let mut modifier = c.to_string();
        match c {
            '}' => Ok(match self.lookup(&name) {
                Some(v) => v,
                None if self.lx.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let null_is_unset = c == ':';
                if null_is_unset {
                    match self.next() {
                        Some(n) => {
                            c = n;
                            modifier.push(n);
                        }
                        None => return Err("syntax error: missing '}'".into()),
                    }
                }
                let raw = c == '#' || c == '%';
                if null_is_unset && raw {
                    return Err(format!("unsupported modifier ({modifier}) in substitution"));
                }
                let word = match self.until(Some('}'), raw) {
                    Ok((w, _)) => w,
                    Err(_) if self.peek().is_none() => {
                        return Err("syntax error: missing '}'".into())
                    }
                    Err(e) => return Err(e),
                };
                let value = self.lookup(&name);
                if self.lx.skip_unset && value.is_none() {
                    return Ok(format!("${{{name}{modifier}{word}}}"));
                }
                let empty = value
                    .as_deref()
                    .is_none_or(|v| null_is_unset && v.is_empty());
                match c {
                    '-' => Ok(if empty {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    '+' => Ok(if empty { String::new() } else { word }),
                    '?' => match value {
                        None => Err(format!(
                            "{name}: {}",
                            if word.is_empty() {
                                "is not allowed to be unset"
                            } else {
                                &word
                            }
                        )),
                        Some(v) if null_is_unset && v.is_empty() => Err(format!(
                            "{name}: {}",
                            if word.is_empty() {
                                "is not allowed to be empty"
                            } else {
                                &word
                            }
                        )),
                        Some(v) => Ok(v),
                    },
                    '#' | '%' => {
                        let (greedy, pattern) = match word.strip_prefix(c) {
                            Some(rest) => (true, rest.to_string()),
                            None => (false, word),
                        };
                        let pattern = Pattern::parse(&pattern)?;
                        let value = value.unwrap_or_default();
                        Ok(if c == '#' {
                            pattern.trim_prefix(&value, greedy)
                        } else {
                            pattern.trim_suffix(&value, greedy)
                        })
                    }
                    _ => Err(format!("unsupported modifier ({modifier}) in substitution")),
                }
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.next();
                }
                let pattern = match self.until(Some('/'), true) {
                    Ok((w, _)) => w,
                    Err(_) if self.peek().is_none() => {
                        return Err("syntax error: missing '/' in ${}".into())
                    }
                    Err(e) => return Err(e),
                };
                let replacement = match self.until(Some('}'), true) {
                    Ok((w, _)) => w,
                    Err(_) if self.peek().is_none() => {
                        return Err("syntax error: missing '}'".into())
                    }
                    Err(e) => return Err(e),
                };
                let Some(value) = self.lookup(&name) else {
                    if self.lx.skip_unset {
                        return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                    }
                    return Ok(String::new());
                };
                let p = Pattern::parse(&pattern)?;
                Ok(p.replace(&value, &replacement, all))
            }
            _ => Err(format!("unsupported modifier ({modifier}) in substitution")),
        }
    }
}

/// A shell pattern of the trims and replacements: `*` (any run), `?` (one character),
/// anything else literal; `\*`, `\?` and `\\` are literal, `\}` and `\/` the character.
#[derive(Debug)]
struct Pattern(Vec<Tok>);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok {
    Star,
    Any,
    Lit(char),
}

impl Pattern {
    fn parse(p: &str) -> R<Pattern> {
        let mut out = Vec::new();
        let mut it = p.chars().peekable();
        while let Some(c) = it.next() {
            match c {
                '*' => out.push(Tok::Star),
                '?' => out.push(Tok::Any),
                '\\' => match it.next() {
                    Some(n @ ('*' | '?' | '\\' | '}' | '/')) => out.push(Tok::Lit(n)),
                    Some(n) => {
                        return Err(format!(
                            "invalid pattern ({p}) in substitution: invalid escape '\\{n}'"
                        ))
                    }
                    None => out.push(Tok::Lit('\\')),
                },
                c => out.push(Tok::Lit(c)),
            }
        }
        Ok(Pattern(out))
    }

    /// Whether the whole of `s` matches.
    fn matches(&self, s: &[char]) -> bool {
        fn m(p: &[Tok], s: &[char]) -> bool {
            match p.first() {
                None => s.is_empty(),
                Some(Tok::Star) => (0..=s.len()).any(|i| m(&p[1..], &s[i..])),
                Some(Tok::Any) => !s.is_empty() && m(&p[1..], &s[1..]),
                Some(Tok::Lit(c)) => s.first() == Some(c) && m(&p[1..], &s[1..]),
            }
        }
        m(&self.0, s)
    }

    fn trim_prefix(&self, value: &str, greedy: bool) -> String {
        let v: Vec<char> = value.chars().collect();
        let mut ends: Vec<usize> = (0..=v.len()).collect();
        if greedy {
            ends.reverse();
        }
        match ends.into_iter().find(|&e| self.matches(&v[..e])) {
            Some(e) => v[e..].iter().collect(),
            None => value.to_string(),
        }
    }

    fn trim_suffix(&self, value: &str, greedy: bool) -> String {
        let v: Vec<char> = value.chars().collect();
        let mut starts: Vec<usize> = (0..=v.len()).collect();
        if !greedy {
            starts.reverse();
        }
        match starts.into_iter().find(|&s| self.matches(&v[s..])) {
            Some(s) => v[..s].iter().collect(),
            None => value.to_string(),
        }
    }

    /// Replaces the first (or every) leftmost, longest match.
    fn replace(&self, value: &str, with: &str, all: bool) -> String {
        let v: Vec<char> = value.chars().collect();
        let mut out = String::new();
        let mut i = 0;
        let mut replaced = false;
        while i <= v.len() {
            if replaced && !all {
                break;
            }
            let end = (i..=v.len()).rev().find(|&e| self.matches(&v[i..e]));
            match end {
                Some(e) => {
                    out.push_str(with);
                    replaced = true;
                    if e == i {
                        // An empty match: keep the character and move on.
                        if let Some(c) = v.get(i) {
                            out.push(*c);
                        }
                        i += 1;
                    } else {
                        i = e;
                    }
                }
                None => {
                    if let Some(c) = v.get(i) {
                        out.push(*c);
                    }
                    i += 1;
                }
            }
        }
        if i < v.len() {
            out.extend(&v[i..]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        [
            ("PWD", "/home"),
            ("SHELL", "bash"),
            ("KOREAN", "한국어"),
            ("EMPTY", ""),
            ("FILE", "archive.tar.gz"),
            ("PATHS", "/a/b/c"),
            ("SPACED", "one two  three"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// (input, expected word or `ERR:` and the start of the error).
    const WORDS: &[(&str, &str)] = &[
        ("hello", "hello"),
        ("he'll'o", "hello"),
        ("he\"ll\"o", "hello"),
        ("he\\'llo", "he'llo"),
        ("'$PWD'", "$PWD"),
        ("\"$PWD\"", "/home"),
        ("$PWD", "/home"),
        ("${PWD}", "/home"),
        ("${PWD}x", "/homex"),
        ("$PWDx", ""),
        ("\\$PWD", "$PWD"),
        ("\"\\$PWD\"", "$PWD"),
        ("\"a\\b\"", "a\\b"),
        ("\"a\\\"b\"", "a\"b"),
        ("$", "$"),
        ("a$", "a$"),
        ("${KOREAN}", "한국어"),
        ("${NOPE:-default}", "default"),
        ("${NOPE-default}", "default"),
        ("${EMPTY:-default}", "default"),
        ("${EMPTY-default}", ""),
        ("${PWD:-default}", "/home"),
        ("${NOPE:+alt}", ""),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${PWD:+alt}", "alt"),
        ("${NOPE:-$PWD/x}", "/home/x"),
        ("${NOPE:-'q'}", "q"),
        ("${PWD:?}", "/home"),
        ("${NOPE:?}", "ERR:NOPE: is not allowed to be unset"),
        ("${EMPTY:?}", "ERR:EMPTY: is not allowed to be empty"),
        ("${EMPTY?}", ""),
        ("${NOPE?say so}", "ERR:NOPE: say so"),
        ("${FILE#*.}", "tar.gz"),
        ("${FILE##*.}", "gz"),
        ("${FILE%.*}", "archive.tar"),
        ("${FILE%%.*}", "archive"),
        ("${FILE#nomatch}", "archive.tar.gz"),
        ("${PATHS/\\//:}", ":a/b/c"),
        ("${PATHS//\\//:}", ":a:b:c"),
        ("${PATHS/b/X}", "/a/X/c"),
        ("${FILE/a*r/Z}", "Z.gz"),
        ("${PWD", "ERR:syntax error: missing '}'"),
        ("${}", "ERR:syntax error: bad substitution"),
        ("${:-x}", "ERR:syntax error: bad substitution"),
        ("${PWD:#x}", "ERR:unsupported modifier (:#) in substitution"),
        ("${PWD!x}", "ERR:unsupported modifier (!) in substitution"),
        (
            "'unterminated",
            "ERR:unexpected end of statement while looking for matching single-quote",
        ),
        (
            "\"unterminated",
            "ERR:unexpected end of statement while looking for matching double-quote",
        ),
        ("${PWD:-x", "ERR:syntax error: missing '}'"),
        ("$1", ""),
        (
            "${FILE#\\q}",
            "ERR:invalid pattern (\\q) in substitution: invalid escape '\\q'",
        ),
    ];

    #[test]
    fn words_with_substitution() {
        let lx = Lexer::new('\\');
        let env = env();
        for (input, want) in WORDS {
            let got = lx.word(input, &env);
            match want.strip_prefix("ERR:") {
                Some(msg) => {
                    let e = got.expect_err(input);
                    assert!(
                        e.message.starts_with(msg),
                        "{input}: {} vs {msg}",
                        e.message
                    );
                }
                None => assert_eq!(got.as_deref(), Ok(*want), "{input}"),
            }
        }
        let e = lx.word("${PWD", &env).unwrap_err();
        assert_eq!(
            e.to_string(),
            "failed to process \"${PWD\": syntax error: missing '}'"
        );
    }

    #[test]
    fn backtick_escape() {
        let lx = Lexer::new('`');
        let env = env();
        assert_eq!(lx.word("c:\\dir`$PWD", &env).unwrap(), "c:\\dir$PWD");
        assert_eq!(lx.word("`\"x", &env).unwrap(), "\"x");
    }

    #[test]
    fn splitting_into_words() {
        let lx = Lexer::new('\\');
        let env = env();
        for (input, want) in [
            ("a b  c", vec!["a", "b", "c"]),
            ("'a b' c", vec!["a b", "c"]),
            ("\"a $SPACED\" x", vec!["a one two  three", "x"]),
            ("$SPACED", vec!["one", "two", "three"]),
            ("a\\ b", vec!["a b"]),
            ("80/tcp ${NOPE:-443}", vec!["80/tcp", "443"]),
            ("''", vec![]),
            ("<< EOF x", vec!["<< EOF", "x"]),
        ] {
            assert_eq!(lx.words(input, &env).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn raw_forms_keep_what_they_say() {
        let mut lx = Lexer::new('\\');
        lx.raw_quotes = true;
        lx.raw_escapes = true;
        lx.skip_unset = true;
        let env = env();
        assert_eq!(
            lx.words("cat <<'EOF' $NOPE \"${NOPE:-x}\" a\\ b", &env)
                .unwrap(),
            vec!["cat", "<<'EOF'", "$NOPE", "\"${NOPE:-x}\"", "a\\ b"]
        );
        let mut lx = Lexer::new('\\');
        lx.no_quotes = true;
        assert_eq!(lx.word("'$PWD' \"x\"", &env).unwrap(), "'/home' \"x\"");
    }
}
