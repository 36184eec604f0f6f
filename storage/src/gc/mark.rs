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

/// Everything that can make a blob live, as one scan found it. Digests are kept compact
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
enum Kind {
    Tag(Tag),
    Manifest(CompactDigest),
    Blob(CompactDigest),
    Referrer(CompactDigest, CompactDigest),
}

/// Splits `repositories/<repo>/_<kind>/<rest>`; the `_` prefix cannot begin a component of a
/// repository name, so the first `/_` ends the name.
fn parse_key(key: &str) -> Option<(&str, Kind)> {
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

/// Reads `repositories/` and `holds/` once. Blob links modified before `links_since` are
/// left out (a mark that follows the rules needs only the links that keep a push in flight).
pub(crate) async fn gather(backend: &dyn Backend, links_since: Option<SystemTime>) -> Result<Meta> {
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
                Kind::Blob(_) if links_since.is_some_and(|t| e.modified.is_some_and(|m| m < t)) => {
                }
                Kind::Blob(d) => meta.blob_links.push(link(d)),
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
            let key = tag_key(&repo, &tag);
            let data = match backend.read(&key).await {
                Ok(d) => d,
                // Deleted since the scan.
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(StoreError::from(e)),
            };
            let target = std::str::from_utf8(&data)
                .ok()
                .and_then(|t| t.trim().parse::<Digest>().ok());
            let Some(target) = target else {
                tracing::warn!("tag {key} does not hold a digest; it keeps nothing");
                return Ok(None);
            };
            Ok(Some(TagLink {
                repo,
                tag,
                target: CompactDigest::new(&target),
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
    meta.blob_links.shrink_to_fit();
    meta.referrers.shrink_to_fit();
    Ok(meta)
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

    #[cfg(test)]
    fn insert(&mut self, d: CompactDigest, needs: Needs) {
        self.sorted.push((d, needs));
        self.sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    }

    /// Reads and parses the manifests among `digests` not read yet, then their children, and
    /// so on. A manifest whose bytes are gone needs nothing; any other failure to read one
    /// stops the collection, since what it needs would be unknown.
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
            let expected = self.sorted.len() + todo.len();
            let mut read = futures::stream::iter(std::mem::take(&mut todo))
                .map(|d| async move {
                    match backend.read(&blob_key(&d.digest())).await {
                        Ok(body) => Ok((d, manifest_refs(&body))),
                        Err(e) if e.is_not_found() => Ok((d, ManifestRefs::default())),
                        Err(e) => Err(StoreError::from(e)),
                    }
                })
                .buffer_unordered(READ_AHEAD);
            let mut next = HashSet::new();
            while let Some((d, refs)) = read.try_next().await? {
                let needs = Needs::from(refs);
                next.extend(needs.children().iter().cloned());
                self.sorted.push((d, needs));
                progress(self.sorted.len() as u64);
            }
            drop(read);
            self.sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            debug_assert_eq!(self.sorted.len(), expected);
            next.retain(|d| self.get(d).is_none());
            todo = next.into_iter().collect();
        }
        Ok(())
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

/// The live set: every manifest `meta` names and all they need, every held digest, and blobs
/// linked at or after `fresh_links` (pushes whose manifest has not arrived yet). `refs` must
/// hold every manifest reachable from `meta` ([`RefsCache::load`] of [`manifest_roots`]).
///
/// Two passes: the manifests reachable from the roots first (a set as large as the
/// manifests), then every live digest into a set sized for them all at once.
pub(crate) fn live(meta: &Meta, refs: &RefsCache, fresh_links: SystemTime) -> DigestSet {
    let manifests = reachable(meta, refs);
    let fresh = |l: &&Link| l.modified.is_none_or(|m| m >= fresh_links);
    let needs = |m: &&CompactDigest| refs.get(m).map_or(0, |r| r.blobs.len());
    let capacity = manifests.len()
        + manifests.iter().map(needs).sum::<usize>()
        + meta.holds.len()
        + meta.blob_links.iter().filter(fresh).count();
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
    for d in &meta.holds {
        live.add_compact(d);
    }
    for l in meta.blob_links.iter().filter(fresh) {
        live.add_compact(&l.digest);
    }
    live.finish()
}

/// The manifests reachable from [`manifest_roots`] through indexes' children.
fn reachable<'a>(meta: &'a Meta, refs: &'a RefsCache) -> HashSet<&'a CompactDigest> {
    let mut manifests: HashSet<&CompactDigest> = HashSet::new();
    let mut stack: Vec<&CompactDigest> = manifest_roots(meta).collect();
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

/// Keeps in `doomed` (sorted by digest) only what is still dead: what [`live`] would put in
/// its set is taken out, without building that set (a second mark needs to ask only about
/// the doomed).
pub(crate) fn still_dead(
    meta: &Meta,
    refs: &RefsCache,
    fresh_links: SystemTime,
    doomed: &mut Vec<(CompactDigest, u64)>,
) {
    debug_assert!(doomed.is_sorted_by(|a, b| a.0 <= b.0));
    let mut alive = vec![false; doomed.len()];
    let mut mark = |d: &CompactDigest| {
        if let Ok(i) = doomed.binary_search_by(|(x, _)| x.cmp(d)) {
            alive[i] = true;
        }
    };
    for m in reachable(meta, refs) {
        mark(m);
        for b in refs.get(m).map_or(&[][..], |r| &r.blobs) {
            mark(b);
        }
    }
    for d in &meta.holds {
        mark(d);
    }
    for l in &meta.blob_links {
        if l.modified.is_none_or(|m| m >= fresh_links) {
            mark(&l.digest);
        }
    }
    let mut alive = alive.into_iter();
    doomed.retain(|_| !alive.next().unwrap_or(true));
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

    /// The second mark keeps in the doomed list only what nothing needs: the same answer as
    /// the live set, asked of the doomed alone.
    #[test]
    fn the_second_mark_agrees_with_the_live_set() {
        let c = |s: &str| CompactDigest::new(&Digest::sha256_of(s.as_bytes()));
        let other: Digest = format!("sha512:{}", "cd".repeat(64)).parse().unwrap();
        let now = SystemTime::now();
        let old = now - std::time::Duration::from_secs(7200);
        let cut = now - std::time::Duration::from_secs(3600);
        let repo = Arc::new("r".parse::<RepoName>().unwrap());
        let link = |d: CompactDigest, modified| Link {
            repo: repo.clone(),
            digest: d,
            modified: Some(modified),
        };
        let mut refs = RefsCache::default();
        // A tagged index whose child needs a layer and a sha512 blob.
        refs.insert(
            c("index"),
            Needs {
                blobs: Box::new([]),
                more: Some(Box::new(More {
                    children: Box::new([c("child")]),
                    subject: None,
                })),
            },
        );
        refs.insert(
            c("child"),
            Needs {
                blobs: Box::new([c("layer"), CompactDigest::new(&other)]),
                more: None,
            },
        );
        let meta = Meta {
            tags: vec![TagLink {
                repo: repo.clone(),
                tag: "1".parse().unwrap(),
                target: c("index"),
                modified: Some(old),
            }],
            blob_links: vec![link(c("fresh"), now), link(c("stale"), old)],
            holds: vec![c("held")],
            ..Meta::default()
        };
        let names = [
            "index", "child", "layer", "fresh", "stale", "held", "dead1", "dead2",
        ];
        let mut doomed: Vec<(CompactDigest, u64)> = names.iter().map(|n| (c(n), 1)).collect();
        doomed.push((CompactDigest::new(&other), 1));
        doomed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let set = live(&meta, &refs, cut);
        let mut want: Vec<CompactDigest> = doomed
            .iter()
            .filter(|(d, _)| !set.contains_compact(d))
            .map(|(d, _)| d.clone())
            .collect();
        want.sort();
        still_dead(&meta, &refs, cut, &mut doomed);
        let got: Vec<CompactDigest> = doomed.into_iter().map(|(d, _)| d).collect();
        let mut dead = vec![c("stale"), c("dead1"), c("dead2")];
        dead.sort();
        assert_eq!(got, dead);
        assert_eq!(want, dead);
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
