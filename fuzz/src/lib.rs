//! Fuzz targets: every parser that takes input from outside (a client, an upstream, a stored
//! object, a config file), each as a function of arbitrary bytes that must never panic and
//! whose answers must keep their promises (a parsed name prints as it was written, a range
//! lies inside the blob, a next page stays on the registry's origin, a layer writes nothing
//! outside its snapshot).
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
