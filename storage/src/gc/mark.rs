//! The mark: what in the store makes a blob live, gathered in one pass over `repositories/`
//! and `holds/`, and the set of live digests that follows from it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use futures::{StreamExt, TryStreamExt};

use crate::backend::Backend;
use crate::blobs::blob_key;
use crate::digest::{Algorithm, Digest};
use crate::error::{Result, StoreError};
use crate::name::{RepoName, Tag};
use crate::refs::{manifest_refs, ManifestRefs};
use crate::repos::tag_key;

/// How many small objects (tags, manifests) are read at once.
const READ_AHEAD: usize = 64;

/// A link in a repository: a manifest or a blob that belongs to it.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub repo: Arc<RepoName>,
    pub digest: CompactDigest,
    pub modified: Option<SystemTime>,
}

#[derive(Debug, Clone)]
pub(crate) struct TagLink {
    pub repo: Arc<RepoName>,
    pub tag: Tag,
    pub target: CompactDigest,
    pub modified: Option<SystemTime>,
}

/// `_referrers/<subject hex>/<referrer hex>`: a referrer's record under its subject.
#[derive(Debug, Clone)]
pub(crate) struct ReferrerLink {
    pub repo: Arc<RepoName>,
    pub subject: CompactDigest,
    pub referrer: CompactDigest,
}

/// Everything that can make a blob live, as one scan found it (blob links: only the fresh
/// ones, which [`crate::gc::rules::blob_links`] reads apart). Digests are kept compact
/// ([`CompactDigest`]): a store with 100,000 links would hold as many strings otherwise.
#[derive(Debug, Default)]
pub(crate) struct Meta {
    pub tags: Vec<TagLink>,
    pub manifests: Vec<Link>,
    pub blob_links: Vec<Link>,
    pub referrers: Vec<ReferrerLink>,
    /// Digests that something outside the repositories holds (the client's images).
    pub holds: Vec<CompactDigest>,
}

/// A digest from the hex of a key alone: its length names the algorithm.
fn digest_from_hex(hex: &str) -> Option<CompactDigest> {
    let alg = match hex.len() {
        64 => Algorithm::Sha256,
        128 => Algorithm::Sha512,
        _ => return None,
    };
    CompactDigest::parse(alg.name(), hex)
}

/// A digest from the `<alg>/<hex>` tail of a key.
pub(crate) fn compact_from_path(path: &str) -> Option<CompactDigest> {
    let (alg, hex) = path.split_once('/')?;
    CompactDigest::parse(alg, hex)
}

/// What a key under `repositories/` is.
pub(crate) enum Kind {
    Tag(Tag),
    Manifest(CompactDigest),
    Blob(CompactDigest),
    Referrer(CompactDigest, CompactDigest),
}

/// Splits `repositories/<repo>/_<kind>/<rest>`; the `_` prefix cannot begin a component of a
/// repository name, so the first `/_` ends the name.
pub(crate) fn parse_key(key: &str) -> Option<(&str, Kind)> {
    let rest = key.strip_prefix("repositories/")?;
    let at = rest.find("/_")?;
    let (repo, tail) = (&rest[..at], &rest[at + 2..]);
    let (kind, tail) = tail.split_once('/')?;
    let kind = match kind {
        "tags" => Kind::Tag(tail.parse().ok()?),
        "manifests" => Kind::Manifest(compact_from_path(tail)?),
        "blobs" => Kind::Blob(compact_from_path(tail)?),
        "referrers" => {
            let (subject, referrer) = tail.split_once('/')?;
            Kind::Referrer(digest_from_hex(subject)?, digest_from_hex(referrer)?)
        }
        _ => return None,
    };
    Some((repo, kind))
}

/// Reads `repositories/` and `holds/` once.
pub(crate) async fn gather(backend: &dyn Backend) -> Result<Meta> {
    let mut meta = Meta::default();
    let mut names: HashMap<String, Arc<RepoName>> = HashMap::new();
    let mut tags: Vec<(Arc<RepoName>, Tag, Option<SystemTime>)> = Vec::new();
    let mut pages = backend.scan("repositories/");
    while let Some(page) = pages.try_next().await? {
        for e in page {
            let Some((repo, kind)) = parse_key(&e.key) else {
                continue;
            };
            let repo = match names.get(repo) {
                Some(r) => r.clone(),
                None => {
                    let Ok(name) = repo.parse::<RepoName>() else {
                        continue;
                    };
                    let name = Arc::new(name);
                    names.insert(repo.to_string(), name.clone());
                    name
                }
            };
            let link = |digest| Link {
                repo: repo.clone(),
                digest,
                modified: e.modified,
            };
            match kind {
                Kind::Tag(tag) => tags.push((repo.clone(), tag, e.modified)),
                Kind::Manifest(d) => meta.manifests.push(link(d)),
                // Most keys, read apart: `rules::blob_links`.
                Kind::Blob(_) => {}
                Kind::Referrer(subject, referrer) => meta.referrers.push(ReferrerLink {
                    repo: repo.clone(),
                    subject,
                    referrer,
                }),
            }
        }
    }
    // A tag's target is its content: read them all, a few at a time, into a vector sized
    // once.
    meta.tags.reserve_exact(tags.len());
    let mut read = futures::stream::iter(tags)
        .map(|(repo, tag, modified)| async move {
            let target = tag_target(backend, &tag_key(&repo, &tag)).await?;
            Ok::<_, StoreError>(target.map(|target| TagLink {
                repo,
                tag,
                target,
                modified,
            }))
        })
        .buffered(READ_AHEAD);
    while let Some(t) = read.try_next().await? {
        meta.tags.extend(t);
    }
    drop(read);
    meta.holds = read_holds(backend).await?;
    // Kept for the whole collection: no room to spare.
    meta.manifests.shrink_to_fit();
    meta.referrers.shrink_to_fit();
    Ok(meta)
}

/// The manifest a tag (its key) points at; none when it was deleted since it was listed or
/// does not hold a digest.
async fn tag_target(backend: &dyn Backend, key: &str) -> Result<Option<CompactDigest>> {
    let data = match backend.read(key).await {
        Ok(d) => d,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(StoreError::from(e)),
    };
    let target = std::str::from_utf8(&data)
        .ok()
        .and_then(|t| t.trim().parse::<Digest>().ok());
    if target.is_none() {
        tracing::warn!("tag {key} does not hold a digest; it keeps nothing");
    }
    Ok(target.map(|t| CompactDigest::new(&t)))
}

/// Every digest in every hold (`holds/<name>`: one digest a line).
async fn read_holds(backend: &dyn Backend) -> Result<Vec<CompactDigest>> {
    let mut out = Vec::new();
    for key in crate::backend::list_all(backend, "holds/").await? {
        let data = match backend.read(&key).await {
            Ok(d) => d,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        out.extend(
            String::from_utf8_lossy(&data)
                .lines()
                .filter_map(|l| l.trim().parse::<Digest>().ok())
                .map(|d| CompactDigest::new(&d)),
        );
    }
    Ok(out)
}

/// What a collection keeps of a manifest's references, compact: its blobs, and its children
/// and subject (rare: indexes, referrers) boxed apart, so that an image manifest's entry is
/// its blobs and one empty pointer.
#[derive(Default)]
pub(crate) struct Needs {
    pub blobs: Box<[CompactDigest]>,
    more: Option<Box<More>>,
}

#[derive(Default)]
struct More {
    children: Box<[CompactDigest]>,
    subject: Option<CompactDigest>,
}

impl Needs {
    pub fn children(&self) -> &[CompactDigest] {
        self.more.as_ref().map_or(&[], |m| &m.children)
    }

    pub fn subject(&self) -> Option<&CompactDigest> {
        self.more.as_ref().and_then(|m| m.subject.as_ref())
    }
}

impl From<ManifestRefs> for Needs {
    fn from(r: ManifestRefs) -> Needs {
        let compact = |ds: &[Digest]| ds.iter().map(CompactDigest::new).collect();
        let more = (!r.children.is_empty() || r.subject.is_some()).then(|| {
            Box::new(More {
                children: compact(&r.children),
                subject: r.subject.as_ref().map(CompactDigest::new),
            })
        });
        Needs {
            blobs: compact(&r.blobs),
            more,
        }
    }
}

/// Manifests' references by digest, read once however many repositories link a manifest:
/// a vector sorted by digest and sized to fit (a hash map took 60% more, and both its tables
/// while it grew), looked up by binary search.
#[derive(Default)]
pub(crate) struct RefsCache {
    sorted: Vec<(CompactDigest, Needs)>,
}

impl RefsCache {
    pub fn get(&self, d: &CompactDigest) -> Option<&Needs> {
        self.sorted
            .binary_search_by(|(k, _)| k.cmp(d))
            .ok()
            .map(|i| &self.sorted[i].1)
    }

    /// Reads and parses the manifests among `digests` not read yet, then their children, and
    /// so on. A manifest whose bytes are gone needs nothing and is not kept (`get` answers
    /// none); any other failure to read one stops the collection, since what it needs would
    /// be unknown.
    pub async fn load<'a>(
        &mut self,
        backend: &dyn Backend,
        digests: impl IntoIterator<Item = &'a CompactDigest>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<()> {
        let mut todo: Vec<CompactDigest> = digests
            .into_iter()
            .filter(|d| self.get(d).is_none())
            .collect::<HashSet<_>>()
            .into_iter()
            .cloned()
            .collect();
        while !todo.is_empty() {
            // Room for them all at once, then sorted in with the rest.
            self.sorted.reserve_exact(todo.len());
            let mut read = futures::stream::iter(std::mem::take(&mut todo))
                .map(|d| read_manifest(backend, d))
                .buffer_unordered(READ_AHEAD);
            let mut next = HashSet::new();
            while let Some((d, refs)) = read.try_next().await? {
                let Some(refs) = refs else { continue };
                let needs = Needs::from(refs);
                next.extend(needs.children().iter().cloned());
                self.sorted.push((d, needs));
                progress(self.sorted.len() as u64);
            }
            drop(read);
            self.sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            self.sorted.shrink_to_fit();
            next.retain(|d| self.get(d).is_none());
            todo = next.into_iter().collect();
        }
        Ok(())
    }
}

/// A manifest's references; none when its bytes are gone.
async fn read_manifest(
    backend: &dyn Backend,
    d: CompactDigest,
) -> Result<(CompactDigest, Option<ManifestRefs>)> {
    match backend.read(&blob_key(&d.digest())).await {
        Ok(body) => Ok((d, Some(manifest_refs(&body)))),
        Err(e) if e.is_not_found() => Ok((d, None)),
        Err(e) => Err(StoreError::from(e)),
    }
}

/// A digest kept compact: sha256 (nearly every digest) as its 32 bytes, 40 bytes in all
/// where a [`Digest`] takes over a hundred.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum CompactDigest {
    Sha256([u8; 32]),
    Other(Box<Digest>),
}

impl CompactDigest {
    pub fn new(d: &Digest) -> CompactDigest {
        match raw256(d) {
            Some(raw) => CompactDigest::Sha256(raw),
            None => CompactDigest::Other(Box::new(d.clone())),
        }
    }

    /// A digest from its algorithm and hex, as a key spells them; none when they are not a
    /// digest ([`Digest`]'s rules: a known algorithm, its length, lowercase hex).
    pub fn parse(alg: &str, hex: &str) -> Option<CompactDigest> {
        let lower = |h: &str| h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if alg == "sha256" && hex.len() == 64 && lower(hex) {
            let mut raw = [0u8; 32];
            hex::decode_to_slice(hex, &mut raw).ok()?;
            return Some(CompactDigest::Sha256(raw));
        }
        let d: Digest = format!("{alg}:{hex}").parse().ok()?;
        Some(CompactDigest::new(&d))
    }

    pub fn digest(&self) -> Digest {
        match self {
            CompactDigest::Sha256(raw) => format!("sha256:{}", hex::encode(raw))
                .parse()
                .expect("32 bytes are a sha256 digest"),
            CompactDigest::Other(d) => (**d).clone(),
        }
    }

    /// The digest's hex, as keys spell it.
    pub fn hex(&self) -> String {
        match self {
            CompactDigest::Sha256(raw) => hex::encode(raw),
            CompactDigest::Other(d) => d.hex().to_string(),
        }
    }
}

impl std::fmt::Display for CompactDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CompactDigest::Sha256(raw) => write!(f, "sha256:{}", hex::encode(raw)),
            CompactDigest::Other(d) => d.fmt(f),
        }
    }
}

/// A set of digests kept compact, built once and then only asked: sha256 digests (nearly all)
/// as a sorted array of their 32 bytes, looked up by binary search. Sized exactly when it is
/// built, it takes 32 bytes a digest; a hash set took twice that, and held its old and new
/// tables together while it grew.
#[derive(Default)]
pub(crate) struct DigestSet {
    sha256: Vec<[u8; 32]>,
    other: HashSet<Digest>,
}

fn raw256(d: &Digest) -> Option<[u8; 32]> {
    if d.algorithm() != Algorithm::Sha256 {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(d.hex(), &mut out).ok()?;
    Some(out)
}

impl DigestSet {
    pub fn contains_compact(&self, d: &CompactDigest) -> bool {
        match d {
            CompactDigest::Sha256(raw) => self.sha256.binary_search(raw).is_ok(),
            CompactDigest::Other(d) => self.other.contains(d),
        }
    }
}

/// Collects a [`DigestSet`]: room for `capacity` digests, given once.
struct SetBuilder {
    set: DigestSet,
}

impl SetBuilder {
    fn with_capacity(capacity: usize) -> SetBuilder {
        SetBuilder {
            set: DigestSet {
                sha256: Vec::with_capacity(capacity),
                other: HashSet::new(),
            },
        }
    }

    #[cfg(test)]
    fn add(&mut self, d: &Digest) {
        self.add_compact(&CompactDigest::new(d))
    }

    fn add_compact(&mut self, d: &CompactDigest) {
        match d {
            CompactDigest::Sha256(raw) => self.set.sha256.push(*raw),
            CompactDigest::Other(d) => {
                self.set.other.insert((**d).clone());
            }
        }
    }

    fn finish(mut self) -> DigestSet {
        self.set.sha256.sort_unstable();
        self.set.sha256.dedup();
        self.set.sha256.shrink_to_fit();
        self.set
    }
}

/// The manifests `meta` names: linked, tagged, or recorded as referrers.
pub(crate) fn manifest_roots(meta: &Meta) -> impl Iterator<Item = &CompactDigest> {
    meta.manifests
        .iter()
        .map(|l| &l.digest)
        .chain(meta.tags.iter().map(|t| &t.target))
        .chain(meta.referrers.iter().map(|r| &r.referrer))
}

/// What the first mark leaves to the rest of a collection.
pub(crate) struct FirstMark {
    /// Every manifest `meta` names and all they need, every held digest, and blobs linked at
    /// or after the cut-off (pushes whose manifest has not arrived yet).
    pub live: DigestSet,
    /// The live manifests whose bytes were read: they and all they need are in `live`.
    pub walked: DigestSet,
}

/// The first mark. `refs` must hold every manifest reachable from `meta` ([`RefsCache::load`]
/// of [`manifest_roots`]). Both are dropped as soon as they are no longer needed: `meta`
/// once its roots are taken, `refs` once the live set is built.
pub(crate) fn live(meta: Meta, refs: RefsCache, fresh_links: SystemTime) -> FirstMark {
    let mut held = meta.holds;
    held.extend(
        meta.blob_links
            .into_iter()
            .filter(|l| l.modified.is_none_or(|m| m >= fresh_links))
            .map(|l| l.digest),
    );
    let rest = Meta {
        tags: meta.tags,
        manifests: meta.manifests,
        referrers: meta.referrers,
        ..Meta::default()
    };
    let mut roots: Vec<CompactDigest> = manifest_roots(&rest).cloned().collect();
    drop(rest);
    roots.sort_unstable();
    roots.dedup();
    roots.shrink_to_fit();

    let manifests = reachable(&roots, &refs);
    let mut walked = SetBuilder::with_capacity(manifests.len());
    for m in manifests.iter().filter(|m| refs.get(m).is_some()) {
        walked.add_compact(m);
    }
    let walked = walked.finish();
    let needs = |m: &&CompactDigest| refs.get(m).map_or(0, |r| r.blobs.len());
    let capacity = manifests.len() + manifests.iter().map(needs).sum::<usize>() + held.len();
    let mut live = SetBuilder::with_capacity(capacity);
    for m in &manifests {
        live.add_compact(m);
        if let Some(r) = refs.get(m) {
            for b in &r.blobs {
                live.add_compact(b);
            }
        }
    }
    drop(manifests);
    drop(refs);
    for d in &held {
        live.add_compact(d);
    }
    FirstMark {
        live: live.finish(),
        walked,
    }
}

/// The manifests reachable from `roots` through indexes' children.
fn reachable<'a>(roots: &'a [CompactDigest], refs: &'a RefsCache) -> HashSet<&'a CompactDigest> {
    let mut manifests: HashSet<&CompactDigest> = HashSet::new();
    let mut stack: Vec<&CompactDigest> = roots.iter().collect();
    while let Some(m) = stack.pop() {
        if !manifests.insert(m) {
            continue;
        }
        if let Some(r) = refs.get(m) {
            stack.extend(r.children().iter());
        }
    }
    manifests
}

/// The doomed list (sorted by digest) and which of its entries a mark found live.
struct Marks<'a> {
    doomed: &'a [(CompactDigest, u64)],
    alive: Vec<bool>,
}

impl Marks<'_> {
    fn mark(&mut self, d: &CompactDigest) {
        if let Ok(i) = self.doomed.binary_search_by(|(x, _)| x.cmp(d)) {
            self.alive[i] = true;
        }
    }
}

/// The second mark: keeps in `doomed` (sorted by digest) only what is still dead, reading
/// `repositories/` and `holds/` again a page at a time, with nothing gathered. The manifests
/// the first mark walked are not read again: they and all they need were live then, so
/// none of them is doomed (a manifest's bytes never change). A manifest it had not walked
/// (pushed since, or its bytes missing then) is read, with its children.
pub(crate) async fn still_dead(
    backend: &dyn Backend,
    walked: &DigestSet,
    fresh_links: SystemTime,
    doomed: &mut Vec<(CompactDigest, u64)>,
) -> Result<()> {
    debug_assert!(doomed.is_sorted_by(|a, b| a.0 <= b.0));
    let mut marks = Marks {
        doomed,
        alive: vec![false; doomed.len()],
    };
    // Manifests this mark read, each once.
    let mut read: HashSet<CompactDigest> = HashSet::new();
    let mut pages = backend.scan("repositories/");
    while let Some(page) = pages.try_next().await? {
        let mut roots = Vec::new();
        let mut tags = Vec::new();
        for e in page {
            // A repository whose name does not parse is marked all the same: a second mark
            // may only keep more.
            let Some((_, kind)) = parse_key(&e.key) else {
                continue;
            };
            match kind {
                Kind::Tag(_) => tags.push(e.key),
                Kind::Manifest(d) => roots.push(d),
                Kind::Referrer(_, referrer) => roots.push(referrer),
                Kind::Blob(d) if e.modified.is_none_or(|m| m >= fresh_links) => marks.mark(&d),
                Kind::Blob(_) => {}
            }
        }
        let targets: Vec<Option<CompactDigest>> = futures::stream::iter(tags)
            .map(|key| async move { tag_target(backend, &key).await })
            .buffered(READ_AHEAD)
            .try_collect()
            .await?;
        roots.extend(targets.into_iter().flatten());
        // The manifests not walked yet, then their children, a level at a time.
        let mut todo: Vec<CompactDigest> = roots
            .into_iter()
            .filter(|m| !walked.contains_compact(m) && read.insert(m.clone()))
            .collect();
        while !todo.is_empty() {
            let mut level = futures::stream::iter(std::mem::take(&mut todo))
                .map(|d| read_manifest(backend, d))
                .buffer_unordered(READ_AHEAD);
            while let Some((m, refs)) = level.try_next().await? {
                marks.mark(&m);
                let Some(refs) = refs else { continue };
                for b in &refs.blobs {
                    marks.mark(&CompactDigest::new(b));
                }
                todo.extend(
                    refs.children
                        .iter()
                        .map(CompactDigest::new)
                        .filter(|c| !walked.contains_compact(c) && read.insert(c.clone())),
                );
            }
        }
    }
    for d in read_holds(backend).await? {
        marks.mark(&d);
    }
    let mut alive = marks.alive.into_iter();
    doomed.retain(|_| !alive.next().unwrap_or(true));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_sets_answer_what_they_were_given() {
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        let other: Digest = format!("sha512:{}", "ab".repeat(64)).parse().unwrap();
        let mut builder = SetBuilder::with_capacity(3);
        for d in [&b, &a, &b, &other] {
            builder.add(d);
        }
        builder.add_compact(&CompactDigest::new(&a));
        let set = builder.finish();
        assert_eq!(set.sha256.len(), 2, "sorted and deduplicated");
        for d in [&a, &b, &other] {
            assert!(set.contains_compact(&CompactDigest::new(d)));
        }
        let c = Digest::sha256_of(b"c");
        assert!(!set.contains_compact(&CompactDigest::new(&c)));
    }

    /// The first mark's live set, and the second mark asked of the doomed after a push:
    /// what the push needs is taken out of the doomed, though the second mark reads only the
    /// manifests the first had not walked.
    #[test]
    fn the_second_mark_finds_what_was_pushed_since_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let backend = crate::FsBackend::new(dir.path(), false).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let put = |key: &str, data: &str| {
            rt.block_on(backend.put(key, data.to_string().into()))
                .unwrap()
        };
        let d = |s: &str| Digest::sha256_of(s.as_bytes());
        let c = |d: &Digest| CompactDigest::new(d);
        let blob = |body: &str| {
            put(&blob_key(&d(body)), body);
            d(body)
        };
        let other: Digest = format!("sha512:{}", "cd".repeat(64)).parse().unwrap();
        let [layer, fresh, stale, held, dead1, dead2, dead3] =
            ["layer", "fresh", "stale", "held", "dead1", "dead2", "dead3"].map(blob);
        // A tagged index whose child needs a layer and a sha512 blob; a fresh and a stale
        // blob link; a hold; a manifest linked before its bytes arrive.
        let child = blob(&format!(
            r#"{{"config":{{"digest":"{layer}"}},"layers":[{{"digest":"{other}"}}]}}"#
        ));
        let index = blob(&format!(r#"{{"manifests":[{{"digest":"{child}"}}]}}"#));
        put("repositories/r/_tags/1", &index.to_string());
        let late_body = format!(r#"{{"layers":[{{"digest":"{dead2}"}}]}}"#);
        let late = d(&late_body);
        put(
            &format!("repositories/r/_manifests/sha256/{}", late.hex()),
            "",
        );
        let link = |d: &Digest| format!("repositories/r/_blobs/sha256/{}", d.hex());
        put(&link(&fresh), "");
        put(&link(&stale), "");
        let now = SystemTime::now();
        let cut = now - std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(dir.path().join(link(&stale)))
            .unwrap()
            .set_modified(now - std::time::Duration::from_secs(7200))
            .unwrap();
        put("holds/client", &format!("{held}\n"));

        let mut meta = rt.block_on(gather(&backend)).unwrap();
        let mut refs = RefsCache::default();
        rt.block_on(refs.load(&backend, manifest_roots(&meta), &|_| {}))
            .unwrap();
        assert!(refs.get(&c(&late)).is_none(), "its bytes are missing");
        let (fresh_links, stale_links) = rt
            .block_on(crate::gc::rules::blob_links(
                &backend, &meta, &refs, cut, true,
            ))
            .unwrap();
        let digests = |links: &[Link]| links.iter().map(|l| l.digest.clone()).collect::<Vec<_>>();
        assert_eq!(digests(&fresh_links), [c(&fresh)]);
        assert_eq!(digests(&stale_links), [c(&stale)], "no manifest needs it");
        meta.blob_links = fresh_links;
        let first = live(meta, refs, cut);
        let all = [
            &index, &child, &layer, &other, &late, &fresh, &stale, &held, &dead1, &dead2, &dead3,
        ];
        let mut doomed: Vec<(CompactDigest, u64)> = all
            .iter()
            .map(|d| c(d))
            .filter(|d| !first.live.contains_compact(d))
            .map(|d| (d, 1))
            .collect();
        doomed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let sorted = |ds: &[&Digest]| {
            let mut v: Vec<CompactDigest> = ds.iter().map(|d| c(d)).collect();
            v.sort();
            v
        };
        let names = |v: &[(CompactDigest, u64)]| v.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
        assert_eq!(names(&doomed), sorted(&[&stale, &dead1, &dead2, &dead3]));
        for m in [&index, &child] {
            assert!(first.walked.contains_compact(&c(m)));
        }
        assert!(!first.walked.contains_compact(&c(&late)));

        // A push since: a tag on a new index whose child needs dead1; the late manifest's
        // bytes, which need dead2.
        let child2 = blob(&format!(r#"{{"layers":[{{"digest":"{dead1}"}}]}}"#));
        let index2 = blob(&format!(r#"{{"manifests":[{{"digest":"{child2}"}}]}}"#));
        put("repositories/s/_tags/1", &index2.to_string());
        assert_eq!(blob(&late_body), late);
        rt.block_on(still_dead(&backend, &first.walked, cut, &mut doomed))
            .unwrap();
        assert_eq!(names(&doomed), sorted(&[&stale, &dead3]));
    }

    #[test]
    fn keys_of_each_kind() {
        let d = Digest::sha256_of(b"x");
        let hex = d.hex();
        assert!(matches!(
            parse_key("repositories/a/b/_tags/v1"),
            Some(("a/b", Kind::Tag(t))) if t.as_str() == "v1"
        ));
        assert!(matches!(
            parse_key(&format!("repositories/a/_manifests/sha256/{hex}")),
            Some(("a", Kind::Manifest(x))) if x == CompactDigest::new(&d)
        ));
        assert!(matches!(
            parse_key(&format!("repositories/a/_blobs/sha256/{hex}")),
            Some(("a", Kind::Blob(x))) if x == CompactDigest::new(&d)
        ));
        assert!(matches!(
            parse_key(&format!("repositories/a/_referrers/{hex}/{hex}")),
            Some(("a", Kind::Referrer(s, x))) if x == CompactDigest::new(&d) && s == x
        ));
        for bad in [
            "repositories/a/_tags/",
            "repositories/a/_blobs/sha256/zz",
            &format!("repositories/a/_blobs/sha256/{}", hex.to_uppercase()),
            &format!("repositories/a/_blobs/md5/{hex}"),
            &format!("repositories/a/_referrers/{hex}/{}", &hex[1..]),
            "repositories/a/_other/x",
            "repositories/a/b",
            "catalog/a",
        ] {
            assert!(parse_key(bad).is_none(), "{bad}");
        }
    }
}
