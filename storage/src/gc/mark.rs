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
use crate::repos::digest_from_path;

/// How many small objects (tags, manifests) are read at once.
const READ_AHEAD: usize = 64;

/// A link in a repository: a manifest or a blob that belongs to it.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub repo: Arc<RepoName>,
    pub digest: Digest,
    pub modified: Option<SystemTime>,
}

#[derive(Debug, Clone)]
pub(crate) struct TagLink {
    pub repo: Arc<RepoName>,
    pub tag: Tag,
    pub target: Digest,
    pub modified: Option<SystemTime>,
}

/// `_referrers/<subject hex>/<referrer hex>`: a referrer's record under its subject.
#[derive(Debug, Clone)]
pub(crate) struct ReferrerLink {
    pub repo: Arc<RepoName>,
    pub subject_hex: String,
    pub referrer: Digest,
}

/// Everything that can make a blob live, as one scan found it.
#[derive(Debug, Default)]
pub(crate) struct Meta {
    pub tags: Vec<TagLink>,
    pub manifests: Vec<Link>,
    pub blob_links: Vec<Link>,
    pub referrers: Vec<ReferrerLink>,
    /// Digests that something outside the repositories holds (the client's images).
    pub holds: Vec<Digest>,
}

/// A digest from the hex of a key alone: its length names the algorithm.
fn digest_from_hex(hex: &str) -> Option<Digest> {
    let alg = match hex.len() {
        64 => Algorithm::Sha256,
        128 => Algorithm::Sha512,
        _ => return None,
    };
    format!("{}:{hex}", alg.name()).parse().ok()
}

/// What a key under `repositories/` is.
enum Kind {
    Tag(Tag),
    Manifest(Digest),
    Blob(Digest),
    Referrer(String, Digest),
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
        "manifests" => Kind::Manifest(digest_from_path(tail)?),
        "blobs" => Kind::Blob(digest_from_path(tail)?),
        "referrers" => {
            let (subject, referrer) = tail.split_once('/')?;
            digest_from_hex(subject)?;
            Kind::Referrer(subject.to_string(), digest_from_hex(referrer)?)
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
    let mut tags: Vec<(Arc<RepoName>, Tag, String, Option<SystemTime>)> = Vec::new();
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
                Kind::Tag(tag) => tags.push((repo.clone(), tag, e.key.clone(), e.modified)),
                Kind::Manifest(d) => meta.manifests.push(link(d)),
                Kind::Blob(_) if links_since.is_some_and(|t| e.modified.is_some_and(|m| m < t)) => {
                }
                Kind::Blob(d) => meta.blob_links.push(link(d)),
                Kind::Referrer(subject_hex, referrer) => meta.referrers.push(ReferrerLink {
                    repo: repo.clone(),
                    subject_hex,
                    referrer,
                }),
            }
        }
    }
    // A tag's target is its content: read them all, a few at a time.
    let read: Vec<Option<TagLink>> = futures::stream::iter(tags)
        .map(|(repo, tag, key, modified)| async move {
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
                target,
                modified,
            }))
        })
        .buffered(READ_AHEAD)
        .try_collect()
        .await?;
    meta.tags = read.into_iter().flatten().collect();
    meta.holds = read_holds(backend).await?;
    // Kept for the whole collection: no room to spare.
    meta.manifests.shrink_to_fit();
    meta.blob_links.shrink_to_fit();
    meta.referrers.shrink_to_fit();
    Ok(meta)
}

/// Every digest in every hold (`holds/<name>`: one digest a line).
async fn read_holds(backend: &dyn Backend) -> Result<Vec<Digest>> {
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
                .filter_map(|l| l.trim().parse::<Digest>().ok()),
        );
    }
    Ok(out)
}

/// What a collection keeps of a manifest's references: its blobs compact, its children and
/// subject (rare: indexes, referrers) as they are.
#[derive(Default)]
pub(crate) struct Needs {
    pub blobs: Box<[CompactDigest]>,
    pub children: Box<[Digest]>,
    pub subject: Option<Digest>,
}

impl From<ManifestRefs> for Needs {
    fn from(r: ManifestRefs) -> Needs {
        Needs {
            blobs: r.blobs.iter().map(CompactDigest::new).collect(),
            children: r.children.into_boxed_slice(),
            subject: r.subject,
        }
    }
}

/// Manifests' references by digest, read once however many repositories link a manifest.
#[derive(Default)]
pub(crate) struct RefsCache {
    map: HashMap<CompactDigest, Needs>,
}

impl RefsCache {
    pub fn get(&self, d: &Digest) -> Option<&Needs> {
        self.map.get(&CompactDigest::new(d))
    }

    /// Reads and parses the manifests among `digests` not read yet, then their children, and
    /// so on. A manifest whose bytes are gone needs nothing; any other failure to read one
    /// stops the collection, since what it needs would be unknown.
    pub async fn load(
        &mut self,
        backend: &dyn Backend,
        digests: impl IntoIterator<Item = Digest>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<()> {
        let mut todo: Vec<Digest> = digests
            .into_iter()
            .filter(|d| self.get(d).is_none())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        while !todo.is_empty() {
            let mut read = futures::stream::iter(std::mem::take(&mut todo))
                .map(|d| async move {
                    match backend.read(&blob_key(&d)).await {
                        Ok(body) => Ok((d, manifest_refs(&body))),
                        Err(e) if e.is_not_found() => Ok((d, ManifestRefs::default())),
                        Err(e) => Err(StoreError::from(e)),
                    }
                })
                .buffer_unordered(READ_AHEAD);
            let mut next = HashSet::new();
            while let Some((d, refs)) = read.try_next().await? {
                for c in &refs.children {
                    if self.get(c).is_none() {
                        next.insert(c.clone());
                    }
                }
                self.map.insert(CompactDigest::new(&d), refs.into());
                progress(self.map.len() as u64);
            }
            next.retain(|d| self.get(d).is_none());
            todo = next.into_iter().collect();
        }
        Ok(())
    }
}

/// A digest kept compact: sha256 (nearly every digest) as its 32 bytes, 40 bytes in all
/// where a [`Digest`] takes over a hundred.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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

    pub fn digest(&self) -> Digest {
        match self {
            CompactDigest::Sha256(raw) => format!("sha256:{}", hex::encode(raw))
                .parse()
                .expect("32 bytes are a sha256 digest"),
            CompactDigest::Other(d) => (**d).clone(),
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
    pub fn contains(&self, d: &Digest) -> bool {
        match raw256(d) {
            Some(raw) => self.sha256.binary_search(&raw).is_ok(),
            None => self.other.contains(d),
        }
    }

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

    fn add(&mut self, d: &Digest) {
        match raw256(d) {
            Some(raw) => self.set.sha256.push(raw),
            None => {
                self.set.other.insert(d.clone());
            }
        }
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
pub(crate) fn manifest_roots(meta: &Meta) -> impl Iterator<Item = &Digest> {
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
    let mut manifests: HashSet<CompactDigest> = HashSet::new();
    let mut stack: Vec<&Digest> = manifest_roots(meta).collect();
    while let Some(m) = stack.pop() {
        if !manifests.insert(CompactDigest::new(m)) {
            continue;
        }
        if let Some(r) = refs.get(m) {
            stack.extend(r.children.iter());
        }
    }
    drop(stack);
    let fresh = |l: &&Link| l.modified.is_none_or(|m| m >= fresh_links);
    let needs = |m: &CompactDigest| refs.map.get(m).map_or(0, |r| r.blobs.len());
    let capacity = manifests.len()
        + manifests.iter().map(needs).sum::<usize>()
        + meta.holds.len()
        + meta.blob_links.iter().filter(fresh).count();
    let mut live = SetBuilder::with_capacity(capacity);
    for m in &manifests {
        live.add_compact(m);
        if let Some(r) = refs.map.get(m) {
            for b in &r.blobs {
                live.add_compact(b);
            }
        }
    }
    drop(manifests);
    for d in &meta.holds {
        live.add(d);
    }
    for l in meta.blob_links.iter().filter(fresh) {
        live.add(&l.digest);
    }
    live.finish()
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
            assert!(set.contains(d) && set.contains_compact(&CompactDigest::new(d)));
        }
        let c = Digest::sha256_of(b"c");
        assert!(!set.contains(&c) && !set.contains_compact(&CompactDigest::new(&c)));
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
            Some(("a", Kind::Manifest(x))) if x == d
        ));
        assert!(matches!(
            parse_key(&format!("repositories/a/_blobs/sha256/{hex}")),
            Some(("a", Kind::Blob(x))) if x == d
        ));
        assert!(matches!(
            parse_key(&format!("repositories/a/_referrers/{hex}/{hex}")),
            Some(("a", Kind::Referrer(s, x))) if x == d && s == hex
        ));
        for bad in [
            "repositories/a/_tags/",
            "repositories/a/_blobs/sha256/zz",
            "repositories/a/_other/x",
            "repositories/a/b",
            "catalog/a",
        ] {
            assert!(parse_key(bad).is_none(), "{bad}");
        }
    }
}
