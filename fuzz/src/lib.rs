//! Fuzz targets: every parser that takes input from outside (a client, an upstream, a stored
//! object, a config file), each as a function of arbitrary bytes that must never panic and
//! whose answers must keep their promises (a parsed name prints as it was written, a range
//! lies inside the blob, a next page stays on the registry's origin, a layer writes nothing
//! outside its snapshot, a Dockerfile's errors point at one of its lines, a `.dockerignore`
//! that excludes a directory excludes what is under it).
//!
//! The functions are run two ways: by AFL++ through the `fuzz` binary (feature `afl`; the
//! commands are in bench/README.md), and by `tests/saved_inputs.rs` on every input saved under
//! `fuzz/inputs/<target>/` (the corpus AFL++ grew, and every crash it found), in the normal
//! test run.

use std::str::FromStr;

/// A target: its name (a directory under `fuzz/inputs/`) and its function.
pub type Target = (&'static str, fn(&[u8]));

pub const TARGETS: &[Target] = &[
    ("names", names),
    ("manifest", manifest),
    ("ranges", ranges),
    ("link", link),
    ("htpasswd", htpasswd),
    ("token", token),
    ("config", config),
    ("layer", layer),
    ("dockerfile", dockerfile),
    ("dockerignore", dockerignore),
];

fn text(data: &[u8]) -> &str {
    std::str::from_utf8(data).unwrap_or("")
}

/// Repository names, tags, references and digests, as a request path carries them.
pub fn names(data: &[u8]) {
    use berth_storage::{Digest, Reference, RepoName, Tag};
    let s = text(data);
    if let Ok(n) = RepoName::from_str(s) {
        assert_eq!(n.as_str(), s);
        assert!(n
            .components()
            .all(|c| !c.is_empty() && c != ".." && c != "."));
    }
    if let Ok(t) = Tag::from_str(s) {
        assert_eq!(t.as_str(), s);
        assert!(!t.as_str().contains('/'));
    }
    if let Ok(d) = Digest::from_str(s) {
        assert_eq!(d.as_str(), s);
        assert!(d.hex().bytes().all(|b| b.is_ascii_hexdigit()));
    }
    if let Ok(r) = Reference::from_str(s) {
        assert_eq!(r.to_string(), s);
    }
    let _ = berth_client::reference::ImageRef::parse(s);
    // A path is read from its end; whatever it finds, the names are validated before use.
    let _ = berth_registry::routes::parse(s);
}

/// Manifest and index validation: the first line is the Content-Type, the rest the body.
pub fn manifest(data: &[u8]) {
    let (content_type, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (text(&data[..i]), &data[i + 1..]),
        None => ("", data),
    };
    if let Ok(m) = berth_registry::manifest::Manifest::parse(body, content_type) {
        for r in &m.references {
            assert!(r.digest.as_str().contains(':'));
        }
    }
}

/// A blob read's `Range` against blobs of several sizes, and an upload chunk's
/// `Content-Range`.
pub fn ranges(data: &[u8]) {
    use berth_registry::range::{parse_chunk_range, parse_range};
    if let Some(r) = parse_range(data) {
        for size in [0, 1, 2, 100, 1 << 40, u64::MAX] {
            if let Some(range) = r.resolve(size) {
                assert!(
                    range.start < range.end && range.end <= size,
                    "{r:?} of {size}"
                );
            }
        }
    }
    if let Some((start, len)) = parse_chunk_range(data) {
        assert!(len >= 1 && start.checked_add(len - 1).is_some());
    }
}

/// A tag list's `Link` header, from a registry or an upstream.
pub fn link(data: &[u8]) {
    let page = "http://127.0.0.1:5000/v2/x/tags/list?n=2";
    if let Ok(Some(next)) = berth_client::remote::next_page(text(data), page) {
        assert!(next.starts_with("http://127.0.0.1:5000/"), "{next}");
    }
}

/// Lines of an htpasswd file.
pub fn htpasswd(data: &[u8]) {
    let _ = berth_registry::auth::Users::parse(text(data), "fuzz");
}

/// A bearer token as a client presents it, and the scopes of a token request.
pub fn token(data: &[u8]) {
    use berth_registry::auth::token::{ResourceAccess, TokenConfig, Tokens};
    static TOKENS: std::sync::OnceLock<(tempfile::TempDir, Tokens)> = std::sync::OnceLock::new();
    let (_, tokens) = TOKENS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = TokenConfig {
            service: "berth".into(),
            issuer: "berth".into(),
            key: Some(dir.path().join("token.pem")),
            lifetime: 300,
            realm: None,
            trust: Vec::new(),
        };
        let tokens = Tokens::new(&config).expect("a token key");
        (dir, tokens)
    });
    let s = text(data);
    let _ = tokens.verify(s);
    for scope in s.split(' ') {
        if let Some(a) = ResourceAccess::parse_scope(scope) {
            assert!(!a.kind.is_empty() && !a.name.is_empty());
        }
    }
}

/// The TOML configs: `berth serve`'s (with its mirror, auth and TLS sections) and the
/// client's.
pub fn config(data: &[u8]) {
    let s = text(data);
    let _ = berth_registry::Config::parse(s, "fuzz.toml");
    let file = tempfile::NamedTempFile::new().expect("a temporary file");
    if std::fs::write(file.path(), s).is_ok() {
        let _ = berth_client::config::ClientConfig::load_from(file.path(), true);
    }
}

/// The layer tar reader: whatever the archive says, nothing is written outside the snapshot.
pub fn layer(data: &[u8]) {
    let base = std::path::Path::new("/dev/shm");
    let dir = if base.is_dir() {
        tempfile::tempdir_in(base)
    } else {
        tempfile::tempdir()
    }
    .expect("a temporary directory");
    let snapshot = dir.path().join("snapshot");
    std::fs::create_dir(&snapshot).expect("the snapshot directory");
    let options = berth_client::unpack::UnpackOptions::default();
    let _ = berth_client::unpack::unpack_layer(data, &snapshot, &options);
    let beside: Vec<_> = std::fs::read_dir(dir.path())
        .expect("the temporary directory")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(beside, ["snapshot"], "the layer wrote outside its snapshot");
}

/// A Dockerfile (the build context's author is not always the person who builds it): read
/// into stages, planned for its last stage and for each named one, and every line run
/// through variable substitution. Errors name a line of the file; a plan builds its target
/// and only stages before the ones that need them.
pub fn dockerfile(data: &[u8]) {
    use berth_client::build::plan::{plan, PlanOptions};
    use berth_client::dockerfile::{instructions, shell::Lexer};
    let s = text(data);
    let lines = s.split('\n').count();
    let file = match instructions::parse(s) {
        Ok(file) => file,
        Err(e) => {
            assert!(e.line <= lines, "error on line {} of {lines}", e.line);
            return;
        }
    };
    for stage in &file.stages {
        assert!(stage.line >= 1 && stage.line <= lines);
        for c in stage.commands.iter().chain(&file.global_args) {
            assert!(1 <= c.line && c.line <= c.end_line && c.end_line <= lines);
        }
    }
    let mut targets: Vec<Option<String>> = vec![None];
    targets.extend(file.stages.iter().filter_map(|s| s.name.clone()).map(Some));
    targets.truncate(4);
    for target in targets {
        let options = PlanOptions {
            build_args: [("HTTP_PROXY", "http://127.0.0.1:3128"), ("A", "a b")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            target,
        };
        let Ok(p) = plan(file.clone(), &options) else {
            continue;
        };
        assert!(p.target < p.stages.len() && p.needed.contains(&p.target));
        for (k, &i) in p.needed.iter().enumerate() {
            for d in &p.stages[i].deps {
                assert!(*d < i && p.needed[..k].contains(d), "stage {i} needs {d}");
            }
        }
        let _ = p.unused_build_args();
    }
    let env: Vec<(String, String)> = [("A", "a b"), ("EMPTY", ""), ("P", "/usr/bin")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for line in s.lines().take(64) {
        for escape in ['\\', '`'] {
            let mut lexer = Lexer::new(escape);
            let _ = lexer.words(line, &env);
            lexer.raw_quotes = true;
            lexer.skip_unset = true;
            let _ = lexer.word(line, &env);
        }
    }
}

/// A `.dockerignore`: compiled, then asked about its own lines as paths and a few fixed
/// ones. Without exceptions, a directory it excludes takes everything under it along.
pub fn dockerignore(data: &[u8]) {
    use berth_client::build::ignore::{clean, Ignore};
    let s = text(data);
    let Ok(ignore) = Ignore::parse(s) else {
        return;
    };
    assert!(!ignore.excludes("."));
    // Its patterns, compiled again, decide alike (unless one ends in white space, which
    // the second reading trims, as docker's NewPatternMatcher trims what ReadAll gave it).
    let patterns = ignore.patterns();
    let faithful = patterns
        .iter()
        .all(|p| p.trim() == p && p.trim_start_matches('!').trim() == p.trim_start_matches('!'));
    let again = if faithful {
        Ignore::new(&patterns).expect("its own patterns compile")
    } else {
        ignore.clone()
    };
    let fixed = [
        "a",
        "a/b",
        "a/b/c",
        ".git",
        "node_modules/x/y",
        "Dockerfile",
        "x/.y/z",
    ];
    // Paths as the context walk gives them: relative, clean, inside the context.
    let paths = s
        .lines()
        .take(32)
        .map(|l| clean(l.trim_start_matches('!').trim()))
        .filter(|l| l.len() < 256 && l != "." && l != ".." && !l.starts_with(['/']))
        .filter(|l| !l.starts_with("../"))
        .chain(fixed.map(String::from));
    for path in paths {
        let excluded = ignore.excludes(&path);
        assert_eq!(excluded, again.excludes(&path), "{path:?}");
        if excluded && !ignore.has_exceptions() {
            let child = format!("{}/child", path.trim_end_matches('/'));
            assert!(
                ignore.excludes(&child),
                "{path} is excluded, {child} is not"
            );
        }
    }
}
