//! Repository names, tags and references, validated by the distribution spec's grammar.
//!
//! A [`RepoName`] or [`Tag`] that exists has passed the grammar, so it can be joined into a
//! backend key without any way to reach outside the repository's own prefix: no `..`, no empty
//! component, no leading or trailing `/`, no upper case, no NUL, bounded length.

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// The longest repository name accepted (the spec's limit on what clients send).
pub const MAX_NAME_LEN: usize = 255;
/// The longest tag the spec's grammar admits.
pub const MAX_TAG_LEN: usize = 128;

/// Why a string is not a repository name or tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("repository name is empty")]
    EmptyName,
    #[error("repository name is {0} characters long; at most 255 are allowed")]
    NameTooLong(usize),
    #[error("repository name {0:?} has an empty path component (leading, trailing or double `/`)")]
    EmptyComponent(String),
    #[error("repository name {name:?} has an invalid component {component:?}: use lowercase letters and digits, separated by `.`, `_`, `__` or dashes")]
    InvalidComponent { name: String, component: String },
    #[error("tag is empty")]
    EmptyTag,
    #[error("tag is {0} characters long; at most 128 are allowed")]
    TagTooLong(usize),
    #[error("tag {0:?} is invalid: it must start with a letter, digit or `_` and contain only letters, digits, `_`, `.` and `-`")]
    InvalidTag(String),
    #[error("reference {0:?} is neither a tag nor a digest: {1}")]
    InvalidReference(String, DigestError),
}

/// A repository name such as `library/busybox`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// One path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let mut i = 0;
    let alnum_run = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && is_alnum(b[*i]) {
            *i += 1;
        }
        *i > start
    };
    if !alnum_run(&mut i) {
        return false;
    }
    while i < b.len() {
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if !alnum_run(&mut i) {
            return false;
        }
    }
    true
}

impl RepoName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path components, e.g. `["library", "busybox"]`.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl FromStr for RepoName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<RepoName, NameError> {
        if s.is_empty() {
            return Err(NameError::EmptyName);
        }
        if s.len() > MAX_NAME_LEN {
            return Err(NameError::NameTooLong(s.len()));
        }
        for component in s.split('/') {
            if component.is_empty() {
                return Err(NameError::EmptyComponent(s.to_string()));
            }
            if !valid_component(component) {
                return Err(NameError::InvalidComponent {
                    name: s.to_string(),
                    component: component.to_string(),
                });
            }
        }
        Ok(RepoName(s.to_string()))
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RepoName({})", self.0)
    }
}

/// A tag such as `latest` or `1.36.1-musl`: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tag {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Tag, NameError> {
        if s.is_empty() {
            return Err(NameError::EmptyTag);
        }
        if s.len() > MAX_TAG_LEN {
            return Err(NameError::TagTooLong(s.len()));
        }
        let b = s.as_bytes();
        let first_ok = b[0].is_ascii_alphanumeric() || b[0] == b'_';
        let rest_ok = b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
        if !first_ok || !rest_ok {
            return Err(NameError::InvalidTag(s.to_string()));
        }
        Ok(Tag(s.to_string()))
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({})", self.0)
    }
}

/// What a manifest URL names: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl FromStr for Reference {
    type Err = NameError;

    /// A reference with a `:` is a digest; anything else must be a tag.
    fn from_str(s: &str) -> Result<Reference, NameError> {
        if s.contains(':') {
            s.parse()
                .map(Reference::Digest)
                .map_err(|e| NameError::InvalidReference(s.to_string(), e))
        } else {
            s.parse().map(Reference::Tag)
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

/// Glob matching where `*` stands for any run of characters, `/` included.
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    // Where the last `*` was, and how much of the name it has eaten so far.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}
