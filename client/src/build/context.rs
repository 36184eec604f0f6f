//! The build context: the directory whose files COPY and ADD may read.
//!
//! Where hostile input arrives: a Dockerfile names source paths, and the context may hold
//! symlinks. Every source is resolved one component at a time from the context's root; a
//! source that is absolute, climbs out with `..`, or passes through a symlink whose target
//! leaves the context is refused ([`ContextError::Outside`]). Symlinks met *inside* a copied
//! directory are copied as symlinks, never followed. Paths `.dockerignore` excludes do not
//! exist for the build: not as sources, not inside copied directories, not for wildcards.
//!
//! Sources are hashed for the cache: [`Context::digest`] covers each file's path relative to
//! the source, type, permission bits, size, content and link target (not times or owners,
//! which a copy does not keep), so an unchanged source gives the same digest wherever the
//! context lives. File digests are remembered by (device, inode, size, mtime, ctime) in
//! `hashes.json` under the build state, so a second build reads only what changed.
//!
//! The context's directories are read once per build: the first walk (the size progress
//! shows, or a COPY) lists every entry the build sees with its metadata, and later walks
//! (the cache's digests, the copies) go through that list. The digest file is written back
//! only when a digest was taken anew.

use std::collections::HashMap;
use std::fs::Metadata;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use berth_storage::Digest;
use sha2::{Digest as _, Sha256};

use super::ignore::{clean, Ignore};

/// How many symlinks one source path may pass through (Linux's own limit).
const MAX_HOPS: u32 = 40;

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("forbidden path outside the build context: {0}")]
    Outside(String),
    #[error("file not found in build context or excluded by .dockerignore: stat {0}: file does not exist")]
    NotFound(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("error reading .dockerignore: {0}")]
    Ignore(String),
    #[error("unable to prepare context: {0}")]
    Unusable(String),
}

type Result<T, E = ContextError> = std::result::Result<T, E>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ContextError + '_ {
    move |source| ContextError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One path a source named, resolved inside the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Relative to the context's root, cleaned (`.` for the root).
    pub rel: String,
    /// On the host.
    pub path: PathBuf,
    pub is_dir: bool,
}

/// A cached file digest and the metadata it was taken with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    ctime: i64,
}

impl Stamp {
    fn of(m: &Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.len(),
            mtime: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            ctime: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
        }
    }
}

/// The build context.
pub struct Context {
    root: PathBuf,
    ignore: Ignore,
    /// Digests of files by host path, with the stamp they were taken at.
    hashes: Mutex<HashMap<PathBuf, (Stamp, String)>>,
    /// A digest was taken that `hash_file` does not hold yet.
    hashes_changed: AtomicBool,
    /// Where the file digests are kept between builds.
    hash_file: Option<PathBuf>,
    /// Every entry the build sees, made by the first walk.
    listing: OnceLock<Listing>,
}

/// The context's entries in walk order (parents before children, names sorted), so a
/// directory's subtree is the run of entries after it whose paths lie under it.
struct Listing {
    /// Context-relative path and metadata (not following symlinks).
    entries: Vec<(String, Metadata)>,
    /// Where each directory's entry stands in `entries`.
    dirs: HashMap<String, usize>,
}

/// Whether a source text holds wildcard characters (`*`, `?`, `[`).
pub fn has_wildcards(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'*' | b'?' | b'[' => return true,
            b'\\' => i += 1,
            _ => {}
        }
        i += 1;
    }
    false
}

/// Go's `filepath.Match` for one path component: `*`, `?`, `[…]`, `\\` escapes. Each
/// (pattern, name) position pair is decided once: many stars cost no exponential backtrack.
pub fn match_component(pattern: &str, name: &str) -> bool {
    fn m(p: &[char], s: &[char], pi: usize, si: usize, memo: &mut [Option<bool>]) -> bool {
        let key = pi * (s.len() + 1) + si;
        if let Some(known) = memo[key] {
            return known;
        }
        let (pr, sr) = (&p[pi..], &s[si..]);
        let hit = match pr.first() {
            None => sr.is_empty(),
            Some('*') => (si..=s.len()).any(|j| m(p, s, pi + 1, j, memo)),
            Some('?') => !sr.is_empty() && m(p, s, pi + 1, si + 1, memo),
            Some('\\') if pr.len() > 1 => {
                sr.first() == Some(&pr[1]) && m(p, s, pi + 2, si + 1, memo)
            }
            Some('[') => match sr.first() {
                None => false,
                Some(c) => match class(pr, *c) {
                    Some((hit, len)) => hit && m(p, s, pi + len, si + 1, memo),
                    None => false,
                },
            },
            Some(c) => sr.first() == Some(c) && m(p, s, pi + 1, si + 1, memo),
        };
        memo[key] = Some(hit);
        hit
    }
    /// A `[…]` class at the start of `p` against `c`: whether it matches and its length;
    /// `None` when it is not closed.
    fn class(p: &[char], c: char) -> Option<(bool, usize)> {
        let mut i = 1;
        let negated = p.get(1) == Some(&'^');
        if negated {
            i += 1;
        }
        let mut hit = false;
        let mut first = true;
        while i < p.len() && (p[i] != ']' || first) {
            first = false;
            let mut lo = p[i];
            if lo == '\\' && i + 1 < p.len() {
                i += 1;
                lo = p[i];
            }
            let mut hi = lo;
            if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|c| *c != ']') {
                hi = p[i + 2];
                i += 2;
            }
            if lo <= c && c <= hi {
                hit = true;
            }
            i += 1;
        }
        (i < p.len()).then_some((hit != negated, i + 1))
    }
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = name.chars().collect();
    let mut memo = vec![None; (p.len() + 1) * (s.len() + 1)];
    m(&p, &s, 0, 0, &mut memo)
}

impl Context {
    /// Opens a context directory; `dockerfile` (relative to it or not) may have an ignore
    /// file of its own (`Dockerfile.dockerignore`), which then replaces `.dockerignore`.
    pub fn open(dir: &Path, dockerfile: Option<&Path>, state: Option<&Path>) -> Result<Context> {
        let root = std::fs::canonicalize(dir).map_err(|e| {
            ContextError::Unusable(format!("unable to evaluate symlinks in context path: {e}"))
        })?;
        if !root.is_dir() {
            return Err(ContextError::Unusable(format!(
                "context must be a directory: {}",
                root.display()
            )));
        }
        let own = dockerfile.map(|d| {
            let mut name = d.as_os_str().to_os_string();
            name.push(".dockerignore");
            PathBuf::from(name)
        });
        let mut text = None;
        for candidate in own.into_iter().chain([root.join(".dockerignore")]) {
            match std::fs::read_to_string(&candidate) {
                Ok(t) => {
                    text = Some(t);
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(ContextError::Ignore(e.to_string())),
            }
        }
        let ignore = match text {
            Some(t) => Ignore::parse(&t).map_err(|e| ContextError::Ignore(e.to_string()))?,
            None => Ignore::default(),
        };
        let hash_file = state.map(|s| {
            let key = Digest::sha256_of(root.as_os_str().as_encoded_bytes());
            s.join(format!("hashes-{}.json", &key.hex()[..16]))
        });
        let hashes = hash_file
            .as_ref()
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|d| serde_json::from_slice::<Vec<(PathBuf, Stamp, String)>>(&d).ok())
            .map(|v| v.into_iter().map(|(p, s, d)| (p, (s, d))).collect())
            .unwrap_or_default();
        Ok(Context {
            root,
            ignore,
            hashes: Mutex::new(hashes),
            hashes_changed: AtomicBool::new(false),
            hash_file,
            listing: OnceLock::new(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn ignore(&self) -> &Ignore {
        &self.ignore
    }

    /// Keeps the file digests for the next build (best effort: a lost cache costs time).
    pub fn save_hashes(&self) {
        let Some(file) = &self.hash_file else {
            return;
        };
        if !self.hashes_changed.load(Ordering::SeqCst) {
            return;
        }
        let map = self.hashes.lock().expect("not poisoned");
        let v: Vec<(&PathBuf, &Stamp, &String)> = map.iter().map(|(p, (s, d))| (p, s, d)).collect();
        if let Ok(data) = serde_json::to_vec(&v) {
            let tmp = file.with_extension(format!("tmp-{}", std::process::id()));
            if std::fs::write(&tmp, data).is_ok() {
                let _ = std::fs::rename(&tmp, file);
            }
        }
    }

    /// Whether `.dockerignore` hides the context path `rel`.
    pub fn excluded(&self, rel: &str) -> bool {
        rel != "." && self.ignore.excludes(rel)
    }

    /// The context-relative cleaned form of a source, or why it is refused.
    fn checked(&self, src: &str) -> Result<String> {
        if src.starts_with('/') {
            return Err(ContextError::Outside(format!(
                "{src} (sources are relative to the context; write {})",
                clean(src.trim_start_matches('/'))
            )));
        }
        let c = clean(src);
        if c == ".." || c.starts_with("../") {
            return Err(ContextError::Outside(src.to_string()));
        }
        Ok(c)
    }

    /// Follows `rel` inside the context, resolving symlinks scoped to it; a symlink that
    /// leaves the context is refused. Returns the final context-relative path.
    pub fn resolve_path(&self, src: &str, rel: &str) -> Result<String> {
        let mut done: Vec<String> = Vec::new();
        let mut todo: Vec<String> = if rel == "." {
            vec![]
        } else {
            rel.split('/').rev().map(str::to_string).collect()
        };
        let mut hops = 0;
        while let Some(part) = todo.pop() {
            match part.as_str() {
                "" | "." => continue,
                ".." => {
                    if done.pop().is_none() {
                        return Err(ContextError::Outside(src.to_string()));
                    }
                    continue;
                }
                _ => {}
            }
            let here = self.root.join(done.join("/")).join(&part);
            let meta = match std::fs::symlink_metadata(&here) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(ContextError::NotFound(src.to_string()))
                }
                Err(e) => return Err(io(&here)(e)),
            };
            if !meta.file_type().is_symlink() {
                done.push(part);
                continue;
            }
            hops += 1;
            if hops > MAX_HOPS {
                return Err(ContextError::Outside(format!(
                    "{src} (too many levels of symbolic links)"
                )));
            }
            let target = std::fs::read_link(&here).map_err(io(&here))?;
            let target = target.to_string_lossy().to_string();
            if target.starts_with('/') {
                return Err(ContextError::Outside(format!(
                    "{src} (the symlink {} points at {target})",
                    [done.join("/"), part].join("/").trim_start_matches('/')
                )));
            }
            // The link's own components come next, relative to where it stands.
            for t in target.split('/').rev() {
                todo.push(t.to_string());
            }
            // A `..` in the target that climbs above the root is caught as it is popped.
        }
        Ok(if done.is_empty() {
            ".".into()
        } else {
            done.join("/")
        })
    }

    /// The paths a COPY/ADD source names: one, or what a wildcard matches (maybe none).
    pub fn sources(&self, src: &str) -> Result<Vec<Source>> {
        let rel = self.checked(src)?;
        if !has_wildcards(&rel) {
            let resolved = self.resolve_path(src, &rel)?;
            if self.excluded(&rel) || self.excluded(&resolved) {
                return Err(ContextError::NotFound(src.to_string()));
            }
            let path = self.root.join(&resolved);
            let meta = std::fs::metadata(&path).map_err(io(&path))?;
            return Ok(vec![Source {
                rel: resolved,
                path,
                is_dir: meta.is_dir(),
            }]);
        }
        let mut out = Vec::new();
        let parts: Vec<&str> = rel.split('/').collect();
        self.glob(src, ".", &parts, &mut out)?;
        out.sort_by(|a, b| a.rel.cmp(&b.rel));
        Ok(out)
    }

    fn glob(&self, src: &str, dir: &str, parts: &[&str], out: &mut Vec<Source>) -> Result<()> {
        let Some((first, rest)) = parts.split_first() else {
            return Ok(());
        };
        let join = |name: &str| {
            if dir == "." {
                name.to_string()
            } else {
                format!("{dir}/{name}")
            }
        };
        let candidates: Vec<String> = if has_wildcards(first) {
            let host = self.root.join(dir);
            let mut names = Vec::new();
            let rd = match std::fs::read_dir(&host) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return Ok(()),
                Err(e) => return Err(io(&host)(e)),
            };
            for e in rd {
                let e = e.map_err(io(&host))?;
                let name = e.file_name().to_string_lossy().to_string();
                if match_component(first, &name) {
                    names.push(name);
                }
            }
            names.sort();
            names
        } else {
            vec![first.to_string()]
        };
        for name in candidates {
            let rel = join(&name);
            if self.excluded(&rel) {
                continue;
            }
            let resolved = match self.resolve_path(src, &rel) {
                Ok(r) => r,
                Err(ContextError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            let path = self.root.join(&resolved);
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if rest.is_empty() {
                out.push(Source {
                    rel: resolved,
                    path,
                    is_dir: meta.is_dir(),
                });
            } else if meta.is_dir() {
                self.glob(src, &resolved, rest, out)?;
            }
        }
        Ok(())
    }

    /// Calls `f` for every entry under the directory `rel` that the build sees, parents
    /// before children, in name order: `(path relative to rel, host path, metadata)`. An
    /// excluded directory that holds an exception is seen, as the parent of what is.
    pub fn walk(
        &self,
        rel: &str,
        f: &mut dyn FnMut(&str, &Path, &Metadata) -> Result<()>,
    ) -> Result<()> {
        let listing = self.listing()?;
        let (start, prefix) = if rel == "." {
            (0, String::new())
        } else {
            match listing.dirs.get(rel) {
                Some(&i) => (i + 1, format!("{rel}/")),
                // Not a directory the build sees: read it as it is.
                None => return self.walk_dir(rel, f),
            }
        };
        for (path, meta) in &listing.entries[start..] {
            let Some(sub) = path.strip_prefix(prefix.as_str()) else {
                break;
            };
            f(sub, &self.root.join(path), meta)?;
        }
        Ok(())
    }

    /// The entries of the whole context, read on first use.
    fn listing(&self) -> Result<&Listing> {
        if let Some(l) = self.listing.get() {
            return Ok(l);
        }
        let mut entries = Vec::new();
        let mut dirs = HashMap::new();
        self.walk_dir(".", &mut |sub, _, meta| {
            if meta.is_dir() {
                dirs.insert(sub.to_string(), entries.len());
            }
            entries.push((sub.to_string(), meta.clone()));
            Ok(())
        })?;
        Ok(self.listing.get_or_init(|| Listing { entries, dirs }))
    }

    /// Reads the directory `rel` and what is under it from the disk (see [`Context::walk`]).
    fn walk_dir(
        &self,
        rel: &str,
        f: &mut dyn FnMut(&str, &Path, &Metadata) -> Result<()>,
    ) -> Result<()> {
        let base = self.root.join(rel);
        let mut pending = Vec::new();
        self.walk_in(rel, &base, "", &mut pending, f)
    }

    fn walk_in(
        &self,
        rel: &str,
        dir: &Path,
        prefix: &str,
        pending: &mut Vec<(String, PathBuf, Metadata)>,
        f: &mut dyn FnMut(&str, &Path, &Metadata) -> Result<()>,
    ) -> Result<()> {
        let mut entries: Vec<(String, PathBuf)> = Vec::new();
        for e in std::fs::read_dir(dir).map_err(io(dir))? {
            let e = e.map_err(io(dir))?;
            entries.push((e.file_name().to_string_lossy().to_string(), e.path()));
        }
        entries.sort();
        for (name, path) in entries {
            let sub = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let ctx_rel = if rel == "." {
                sub.clone()
            } else {
                format!("{rel}/{sub}")
            };
            let excluded = self.excluded(&ctx_rel);
            let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
            if excluded && !(meta.is_dir() && self.ignore.has_exceptions()) {
                continue;
            }
            if excluded {
                // Seen only if something under it is.
                pending.push((sub.clone(), path.clone(), meta.clone()));
                let depth = pending.len();
                self.walk_in(rel, &path, &sub, pending, f)?;
                pending.truncate(depth - 1);
                continue;
            }
            for (psub, ppath, pmeta) in pending.drain(..) {
                f(&psub, &ppath, &pmeta)?;
            }
            f(&sub, &path, &meta)?;
            if meta.is_dir() {
                self.walk_in(rel, &path, &sub, pending, f)?;
            }
        }
        Ok(())
    }

    /// The sha256 of a file's content, remembered by its metadata.
    pub fn file_digest(&self, path: &Path, meta: &Metadata) -> Result<String> {
        let stamp = Stamp::of(meta);
        if let Some((s, d)) = self.hashes.lock().expect("not poisoned").get(path) {
            if *s == stamp {
                return Ok(d.clone());
            }
        }
        let mut f = std::fs::File::open(path).map_err(io(path))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = f.read(&mut buf).map_err(io(path))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let d = hex::encode(h.finalize());
        self.hashes
            .lock()
            .expect("not poisoned")
            .insert(path.to_path_buf(), (stamp, d.clone()));
        self.hashes_changed.store(true, Ordering::SeqCst);
        Ok(d)
    }

    /// One line per entry of a source, in order: what its copy depends on.
    fn describe(&self, src: &Source, out: &mut Vec<u8>) -> Result<()> {
        let mut line = |name: &str, path: &Path, meta: &Metadata| -> Result<()> {
            let mode = meta.permissions().mode() & 0o7777;
            let ft = meta.file_type();
            let desc = if ft.is_dir() {
                format!("d {mode:o} {name}\n")
            } else if ft.is_symlink() {
                let t = std::fs::read_link(path).map_err(io(path))?;
                format!("l {mode:o} {name} -> {}\n", t.to_string_lossy())
            } else if ft.is_file() {
                let d = self.file_digest(path, meta)?;
                format!("f {mode:o} {} {name} {d}\n", meta.len())
            } else {
                format!("o {mode:o} {name} {}\n", meta.rdev())
            };
            out.extend_from_slice(desc.as_bytes());
            Ok(())
        };
        let meta = std::fs::metadata(&src.path).map_err(io(&src.path))?;
        line(".", &src.path, &meta)?;
        if src.is_dir {
            self.walk(&src.rel, &mut |name, path, meta| line(name, path, meta))?;
        }
        Ok(())
    }

    /// The digest of what copying `sources` would copy.
    pub fn digest(&self, sources: &[Source]) -> Result<Digest> {
        let mut text = Vec::new();
        for s in sources {
            text.extend_from_slice(format!("source {}\n", s.rel).as_bytes());
            self.describe(s, &mut text)?;
        }
        Ok(Digest::sha256_of(&text))
    }
}

/// Counts the entries a context has, for progress (`transferring context`): files and
/// bytes the build sees.
pub fn size(ctx: &Context) -> (u64, u64) {
    let mut files = 0;
    let mut bytes = 0;
    let _ = ctx.walk(".", &mut |_, _, m| {
        files += 1;
        if m.is_file() {
            bytes += m.len();
        }
        Ok(())
    });
    (files, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx_with(files: &[(&str, &str)], ignore: &str) -> (tempfile::TempDir, Context) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ctx");
        std::fs::create_dir(&root).unwrap();
        for (p, content) in files {
            let path = root.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            if let Some(target) = content.strip_prefix("->") {
                std::os::unix::fs::symlink(target, &path).unwrap();
            } else if p.ends_with('/') {
                std::fs::create_dir_all(&path).unwrap();
            } else {
                std::fs::write(&path, content).unwrap();
            }
        }
        if !ignore.is_empty() {
            std::fs::write(root.join(".dockerignore"), ignore).unwrap();
        }
        let c = Context::open(&root, None, None).unwrap();
        (dir, c)
    }

    fn rels(v: Vec<Source>) -> Vec<String> {
        v.into_iter().map(|s| s.rel).collect()
    }

    #[test]
    fn hostile_sources_are_refused() {
        let (_d, c) = ctx_with(
            &[
                ("a.txt", "a"),
                ("up", "->.."),
                ("abs", "->/etc/passwd"),
                ("deep/escape", "->../../x"),
                ("inside", "->a.txt"),
                ("dirlink", "->deep"),
                ("loop", "->loop"),
            ],
            "",
        );
        for src in [
            "../x",
            "/etc/passwd",
            "a/../../x",
            "up/x",
            "abs",
            "deep/escape",
            "loop",
        ] {
            match c.sources(src) {
                Err(ContextError::Outside(_)) => {}
                other => panic!("{src}: {other:?}"),
            }
        }
        assert_eq!(rels(c.sources("inside").unwrap()), ["a.txt"]);
        assert_eq!(rels(c.sources("./a.txt").unwrap()), ["a.txt"]);
        assert_eq!(rels(c.sources("dirlink").unwrap()), ["deep"]);
        assert!(matches!(c.sources("nope"), Err(ContextError::NotFound(_))));
        assert_eq!(
            c.sources("/etc/passwd").unwrap_err().to_string(),
            "forbidden path outside the build context: /etc/passwd (sources are relative to the context; write etc/passwd)"
        );
    }

    #[test]
    fn wildcards_and_ignore() {
        let (_d, c) = ctx_with(
            &[
                ("a.txt", "a"),
                ("b.txt", "b"),
                ("c.md", "c"),
                ("dir/x.txt", "x"),
                ("dir/y.txt", "y"),
                ("secret.txt", "s"),
                ("logs/1.log", "l"),
            ],
            "secret.txt\nlogs\n",
        );
        assert_eq!(rels(c.sources("*.txt").unwrap()), ["a.txt", "b.txt"]);
        assert_eq!(
            rels(c.sources("dir/*.txt").unwrap()),
            ["dir/x.txt", "dir/y.txt"]
        );
        assert_eq!(rels(c.sources("[ab].txt").unwrap()), ["a.txt", "b.txt"]);
        assert_eq!(rels(c.sources("*.none").unwrap()), Vec::<String>::new());
        assert!(matches!(
            c.sources("secret.txt"),
            Err(ContextError::NotFound(_))
        ));
        assert!(matches!(
            c.sources("logs/1.log"),
            Err(ContextError::NotFound(_))
        ));
        let mut seen = Vec::new();
        c.walk(".", &mut |p, _, _| {
            seen.push(p.to_string());
            Ok(())
        })
        .unwrap();
        assert_eq!(
            seen,
            [
                ".dockerignore",
                "a.txt",
                "b.txt",
                "c.md",
                "dir",
                "dir/x.txt",
                "dir/y.txt"
            ]
        );
    }

    #[test]
    fn exceptions_inside_excluded_directories() {
        let (_d, c) = ctx_with(
            &[
                ("docs/a.md", "a"),
                ("docs/keep.md", "k"),
                ("docs/sub/b.md", "b"),
            ],
            "docs\n!docs/keep.md\n",
        );
        let mut seen = Vec::new();
        c.walk(".", &mut |p, _, _| {
            seen.push(p.to_string());
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [".dockerignore", "docs", "docs/keep.md"]);
    }

    #[test]
    fn digests_follow_content_not_times() {
        // Each build opens the context anew (one listing per build).
        let (d, c) = ctx_with(&[("src/a", "1"), ("src/b", "2")], "");
        let open = || Context::open(&d.path().join("ctx"), None, None).unwrap();
        let digest = |c: &Context| c.digest(&c.sources("src").unwrap()).unwrap();
        let one = digest(&c);
        assert_eq!(digest(&c), one);
        let a = d.path().join("ctx/src/a");
        let f = std::fs::File::options().write(true).open(&a).unwrap();
        f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(digest(&open()), one);
        std::fs::write(&a, "changed").unwrap();
        let two = digest(&open());
        assert_ne!(two, one);
        let b = d.path().join("ctx/src/b");
        std::fs::set_permissions(&b, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_ne!(digest(&open()), two);
    }

    #[test]
    fn walks_read_the_disk_once_and_agree_with_it() {
        let (d, c) = ctx_with(
            &[
                ("a/b/c.txt", "c"),
                ("a/b.txt", "b"),
                ("a.txt", "a"),
                ("docs/keep.md", "k"),
                ("docs/x.md", "x"),
                ("docs/sub/y.md", "y"),
                ("link", "->a"),
            ],
            "docs\n!docs/keep.md\n!docs/sub\n",
        );
        let seen = |rel: &str, from_disk: bool| {
            let mut v = Vec::new();
            let mut f = |p: &str, host: &Path, m: &Metadata| {
                v.push((p.to_string(), host.to_path_buf(), m.len()));
                Ok(())
            };
            if from_disk {
                c.walk_dir(rel, &mut f).unwrap();
            } else {
                c.walk(rel, &mut f).unwrap();
            }
            v
        };
        for rel in [".", "a", "a/b", "docs", "docs/sub"] {
            assert_eq!(seen(rel, false), seen(rel, true), "{rel}");
        }
        assert_eq!(seen("a", false).len(), 3);
        // Later walks read the list, not the disk: a file added since is not seen.
        std::fs::write(d.path().join("ctx/a/new"), "n").unwrap();
        assert_eq!(seen("a", false).len(), 3);
        assert_eq!(seen("a", true).len(), 4);
    }

    #[test]
    fn digests_are_saved_only_when_one_was_taken() {
        let (d, _) = ctx_with(&[("src/a", "1")], "");
        let state = d.path().join("state");
        std::fs::create_dir(&state).unwrap();
        let root = d.path().join("ctx");
        let digest = |c: &Context| c.digest(&c.sources("src").unwrap()).unwrap();
        let c = Context::open(&root, None, Some(&state)).unwrap();
        let first = digest(&c);
        c.save_hashes();
        let file = std::fs::read_dir(&state)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let written = std::fs::metadata(&file).unwrap();
        // A second build with nothing changed: the same digest, the file left as it was.
        let c = Context::open(&root, None, Some(&state)).unwrap();
        assert_eq!(digest(&c), first);
        c.save_hashes();
        let after = std::fs::metadata(&file).unwrap();
        assert_eq!(
            (after.ino(), after.mtime_nsec()),
            (written.ino(), written.mtime_nsec())
        );
        // A changed file: digested again and saved.
        std::fs::write(root.join("src/a"), "2").unwrap();
        let c = Context::open(&root, None, Some(&state)).unwrap();
        assert_ne!(digest(&c), first);
        c.save_hashes();
        assert_ne!(std::fs::metadata(&file).unwrap().ino(), written.ino());
    }

    #[test]
    fn component_matching() {
        for (p, s, want) in [
            ("*", "abc", true),
            ("a*c", "abbbc", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("[a-c]x", "bx", true),
            ("[^a-c]x", "bx", false),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("*.txt", ".txt", true),
            ("[a", "a", false),
            // Many stars against a long name: answered at once, not by backtracking.
            ("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", &"a".repeat(200), false),
            ("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a", &"a".repeat(200), true),
        ] {
            assert_eq!(match_component(p, s), want, "{p} {s}");
        }
    }
}
