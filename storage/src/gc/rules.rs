//! The rules a collection applies before it marks: retention (which tags go), untagged
//! manifests (which links go, referrers following their subject), stale blob links and
//! expired upload sessions. They only plan; the collector carries the plan out (or, for a dry
//! run, reports it).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::TryStreamExt;

use super::mark::{parse_key, CompactDigest, Kind, Link, Meta, ReferrerLink, RefsCache, TagLink};
use super::{Policy, Retention};
use crate::backend::Backend;
use crate::error::Result;
use crate::name::{glob_matches, RepoName};

/// What the rules delete (blob links: [`blob_links`]).
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub tags: Vec<TagLink>,
    pub manifests: Vec<Link>,
    pub referrers: Vec<ReferrerLink>,
}

impl Plan {
    /// Takes what the plan deletes out of `meta`, as the store will look once it is done.
    pub fn apply_to(&self, meta: &mut Meta) {
        let tags: HashSet<(&RepoName, &str)> = self
            .tags
            .iter()
            .map(|t| (&*t.repo, t.tag.as_str()))
            .collect();
        meta.tags
            .retain(|t| !tags.contains(&(&*t.repo, t.tag.as_str())));
        let gone = |links: &[Link]| -> HashSet<(RepoName, CompactDigest)> {
            links
                .iter()
                .map(|l| ((*l.repo).clone(), l.digest.clone()))
                .collect()
        };
        let manifests = gone(&self.manifests);
        meta.manifests
            .retain(|l| !manifests.contains(&((*l.repo).clone(), l.digest.clone())));
        meta.referrers
            .retain(|r| !manifests.contains(&((*r.repo).clone(), r.referrer.clone())));
    }
}

/// Whether a tag is a semantic version: `1.2.3`, `v1.2.3`, `1.2.3-rc.1`, `1.2.3+build.5`.
pub fn is_semver(tag: &str) -> bool {
    let t = tag.strip_prefix('v').unwrap_or(tag);
    let (core, rest) = match t.find(['-', '+']) {
        Some(i) => (&t[..i], &t[i + 1..]),
        None => (t, ""),
    };
    let parts: Vec<&str> = core.split('.').collect();
    let numbers = parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let suffix_ok = (rest.is_empty() && core.len() == t.len())
        || (!rest.is_empty()
            && rest
                .split(['.', '+', '-'])
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric())));
    numbers && suffix_ok
}

/// Whether `tag` matches one of a rule's `keep` patterns (`semver` stands for semantic
/// versions, anything else is a pattern where `*` matches any run of characters).
fn kept_by_pattern(rule: &Retention, tag: &str) -> bool {
    rule.keep.iter().any(|p| {
        if p == "semver" {
            is_semver(tag)
        } else {
            glob_matches(p, tag)
        }
    })
}

/// The tags of one repository that its retention rule deletes.
fn retention<'a>(rule: &Retention, tags: &[&'a TagLink], now: SystemTime) -> Vec<&'a TagLink> {
    let mut newest_first: Vec<&TagLink> = tags.to_vec();
    // Unknown ages count as new: nothing is deleted for want of a date.
    newest_first.sort_by(|a, b| {
        b.modified
            .unwrap_or(now)
            .cmp(&a.modified.unwrap_or(now))
            .then(a.tag.as_str().cmp(b.tag.as_str()))
    });
    newest_first
        .into_iter()
        .enumerate()
        .filter(|(rank, t)| {
            !kept_by_pattern(rule, t.tag.as_str())
                && rule.keep_newest.is_none_or(|n| *rank >= n)
                && rule
                    .delete_older_than
                    .is_none_or(|age| older_than(t.modified, now, age))
        })
        .map(|(_, t)| t)
        .collect()
}

fn older_than(modified: Option<SystemTime>, now: SystemTime, age: Duration) -> bool {
    match (modified, now.checked_sub(age)) {
        (Some(m), Some(limit)) => m < limit,
        _ => false,
    }
}

/// One repository's view of `meta`.
#[derive(Default)]
struct Repo<'a> {
    tags: Vec<&'a TagLink>,
    manifests: Vec<&'a Link>,
    referrers: Vec<&'a ReferrerLink>,
}

/// The manifests reachable from `roots`: their children, and the referrers of each (a
/// referrer follows its subject), within one repository.
fn reach<'a>(
    roots: impl IntoIterator<Item = &'a CompactDigest>,
    refs: &'a RefsCache,
    referrers_of: &HashMap<&'a CompactDigest, Vec<&'a CompactDigest>>,
) -> HashSet<&'a CompactDigest> {
    let mut seen = HashSet::new();
    let mut stack: Vec<&CompactDigest> = roots.into_iter().collect();
    while let Some(m) = stack.pop() {
        if !seen.insert(m) {
            continue;
        }
        if let Some(r) = refs.get(m) {
            stack.extend(r.children().iter());
        }
        if let Some(rs) = referrers_of.get(m) {
            stack.extend(rs.iter().copied());
        }
    }
    seen
}

/// What the policy deletes from the repositories `meta` describes. `refs` holds every
/// manifest `meta` names.
pub(crate) fn plan(meta: &Meta, refs: &RefsCache, policy: &Policy, now: SystemTime) -> Plan {
    let mut repos: HashMap<&RepoName, Repo> = HashMap::new();
    for t in &meta.tags {
        repos.entry(&t.repo).or_default().tags.push(t);
    }
    for l in &meta.manifests {
        repos.entry(&l.repo).or_default().manifests.push(l);
    }
    for r in &meta.referrers {
        repos.entry(&r.repo).or_default().referrers.push(r);
    }
    let mut plan = Plan::default();
    for (name, repo) in &repos {
        // Retention: the first rule whose pattern names the repository.
        let doomed_tags = match policy.retention.iter().find(|r| {
            r.repositories
                .iter()
                .any(|p| glob_matches(p, name.as_str()))
        }) {
            Some(rule) => retention(rule, &repo.tags, now),
            None => Vec::new(),
        };
        let gone_tags: HashSet<&str> = doomed_tags.iter().map(|t| t.tag.as_str()).collect();
        plan.tags.extend(doomed_tags.iter().map(|t| (*t).clone()));

        // Referrers follow their subject: a subject's referrers are reached through it.
        let mut referrers_of: HashMap<&CompactDigest, Vec<&CompactDigest>> = HashMap::new();
        for l in &repo.manifests {
            if let Some(s) = refs.get(&l.digest).and_then(|r| r.subject()) {
                referrers_of.entry(s).or_default().push(&l.digest);
            }
        }
        for r in &repo.referrers {
            referrers_of
                .entry(&r.subject)
                .or_default()
                .push(&r.referrer);
        }
        let before = reach(repo.tags.iter().map(|t| &t.target), refs, &referrers_of);
        let after = reach(
            repo.tags
                .iter()
                .filter(|t| !gone_tags.contains(t.tag.as_str()))
                .map(|t| &t.target),
            refs,
            &referrers_of,
        );
        let mut deleted: HashSet<&CompactDigest> = repo
            .manifests
            .iter()
            .filter(|l| !after.contains(&l.digest))
            .filter(|l| {
                // A manifest younger than the delay may be a push whose tag is on its way.
                before.contains(&l.digest)
                    || policy
                        .untagged
                        .is_some_and(|age| older_than(l.modified, now, age.max(policy.delay)))
            })
            .map(|l| &l.digest)
            .collect();
        // A deleted subject takes its untagged referrers with it, whatever their age.
        let mut todo: Vec<&CompactDigest> = deleted.iter().copied().collect();
        while let Some(d) = todo.pop() {
            for r in referrers_of.get(d).into_iter().flatten() {
                let linked = repo.manifests.iter().any(|l| &l.digest == *r);
                if linked && !after.contains(r) && deleted.insert(r) {
                    todo.push(r);
                }
            }
        }
        plan.manifests.extend(
            repo.manifests
                .iter()
                .filter(|l| deleted.contains(&l.digest))
                .map(|l| (*l).clone()),
        );
        plan.referrers.extend(
            repo.referrers
                .iter()
                .filter(|r| deleted.contains(&r.referrer))
                .map(|r| (*r).clone()),
        );
    }
    plan
}

/// The blob links, in a scan of their own: they are most of the keys under `repositories/`
/// and only two questions are asked of them, so they are never all held. Those modified at
/// or after `fresh_links` (or at an unknown time) are returned first: they keep their blobs
/// live (a push whose manifest has not come yet). With `stale`, the older ones that no
/// manifest of their repository needs (`meta` as the rules left it: its manifest links, tag
/// targets and referrers, through indexes' children) are returned second, to be deleted:
/// uploads whose manifest never came. `refs` holds every manifest `meta` names.
pub(crate) async fn blob_links(
    backend: &dyn Backend,
    meta: &Meta,
    refs: &RefsCache,
    fresh_links: SystemTime,
    stale: bool,
) -> Result<(Vec<Link>, Vec<Link>)> {
    let mut roots: HashMap<&str, Vec<&CompactDigest>> = HashMap::new();
    if stale {
        let manifests = meta.manifests.iter().map(|l| (&l.repo, &l.digest));
        let tags = meta.tags.iter().map(|t| (&t.repo, &t.target));
        let referrers = meta.referrers.iter().map(|r| (&r.repo, &r.referrer));
        for (repo, d) in manifests.chain(tags).chain(referrers) {
            roots.entry(repo.as_str()).or_default().push(d);
        }
    }
    let (mut fresh, mut old) = (Vec::new(), Vec::new());
    // The repository the last link was in (a scan lists one repository's keys together),
    // and the blobs its manifests need.
    let mut current: Option<(Arc<RepoName>, HashSet<&CompactDigest>)> = None;
    let mut pages = backend.scan("repositories/");
    while let Some(page) = pages.try_next().await? {
        for e in page {
            let Some((repo, Kind::Blob(digest))) = parse_key(&e.key) else {
                continue;
            };
            let is_fresh = e.modified.is_none_or(|m| m >= fresh_links);
            if !is_fresh && !stale {
                continue;
            }
            if current.as_ref().is_none_or(|(r, _)| r.as_str() != repo) {
                // Links of a repository whose name does not parse keep nothing (as in the mark).
                let Ok(name) = repo.parse::<RepoName>() else {
                    continue;
                };
                let mut needed = HashSet::new();
                let mut stack: Vec<&CompactDigest> =
                    roots.get(repo).map_or_else(Vec::new, |r| r.clone());
                let mut seen = HashSet::new();
                while let Some(m) = stack.pop() {
                    if !seen.insert(m) {
                        continue;
                    }
                    if let Some(r) = refs.get(m) {
                        needed.extend(r.blobs.iter());
                        stack.extend(r.children().iter());
                    }
                }
                current = Some((Arc::new(name), needed));
            }
            let Some((name, needed)) = &current else {
                continue;
            };
            let link = Link {
                repo: name.clone(),
                digest,
                modified: e.modified,
            };
            if is_fresh {
                fresh.push(link);
            } else if !needed.contains(&link.digest) {
                old.push(link);
            }
        }
    }
    Ok((fresh, old))
}

/// Upload sessions untouched for longer than `age`: their ids and every key they hold.
pub(crate) async fn expired_uploads(
    backend: &dyn Backend,
    age: Duration,
    now: SystemTime,
) -> Result<(usize, Vec<String>)> {
    let mut sessions: HashMap<String, (Option<SystemTime>, Vec<String>)> = HashMap::new();
    let mut pages = backend.scan("uploads/");
    while let Some(page) = pages.try_next().await? {
        for e in page {
            let Some(id) = e
                .key
                .strip_prefix("uploads/")
                .and_then(|r| r.split('/').next())
            else {
                continue;
            };
            let s = sessions.entry(id.to_string()).or_default();
            // Touched when any of its objects was last written.
            s.0 = match (s.0, e.modified) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            s.1.push(e.key);
        }
    }
    let mut count = 0;
    let mut keys = Vec::new();
    for (_, (touched, mut ks)) in sessions {
        if older_than(touched, now, age) {
            count += 1;
            // The state last: a session without state is unknown to clients at once.
            ks.sort_by_key(|k| k.ends_with("/state"));
            keys.extend(ks);
        }
    }
    Ok((count, keys))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Tags pushed `ages` seconds before `now` (none: an unknown time).
    fn tags(ages: &[(&str, Option<u64>)], now: SystemTime) -> Vec<TagLink> {
        let repo = Arc::new("team/app".parse::<RepoName>().unwrap());
        ages.iter()
            .map(|(name, age)| TagLink {
                repo: repo.clone(),
                tag: name.parse().unwrap(),
                target: CompactDigest::new(&crate::Digest::sha256_of(name.as_bytes())),
                modified: age.map(|a| now - Duration::from_secs(a)),
            })
            .collect()
    }

    fn names(doomed: Vec<&TagLink>) -> Vec<&str> {
        let mut v: Vec<&str> = doomed.iter().map(|t| t.tag.as_str()).collect();
        v.sort();
        v
    }

    /// `delete_older_than` deletes exactly the tags past the age (an unknown age is young);
    /// with `keep_newest` a tag must be past both; `keep` patterns win over either.
    #[test]
    fn retention_by_age_count_and_pattern() {
        let now = SystemTime::now();
        let day = 86400;
        let all = tags(
            &[
                ("latest", Some(40 * day)),
                ("v1.2.3", Some(30 * day)),
                ("old-a", Some(20 * day)),
                ("old-b", Some(10 * day)),
                ("mid", Some(5 * day)),
                ("new", Some(60)),
                ("unknown", None),
            ],
            now,
        );
        let refs: Vec<&TagLink> = all.iter().collect();
        let rule = |keep: &[&str], newest: Option<usize>, days: Option<u64>| Retention {
            repositories: vec!["team/*".into()],
            keep: keep.iter().map(|k| k.to_string()).collect(),
            keep_newest: newest,
            delete_older_than: days.map(|d| Duration::from_secs(d * day)),
        };
        assert_eq!(
            names(retention(&rule(&[], None, Some(7)), &refs, now)),
            ["latest", "old-a", "old-b", "v1.2.3"]
        );
        assert_eq!(
            names(retention(
                &rule(&["latest", "semver"], None, Some(7)),
                &refs,
                now
            )),
            ["old-a", "old-b"]
        );
        // The three newest (unknown, new, mid) by count; of the rest, only those past 15 days.
        assert_eq!(
            names(retention(&rule(&["latest"], Some(3), Some(15)), &refs, now)),
            ["old-a", "v1.2.3"]
        );
        assert_eq!(
            names(retention(&rule(&[], Some(3), None), &refs, now)),
            ["latest", "old-a", "old-b", "v1.2.3"]
        );
        assert!(retention(&rule(&[], Some(10), None), &refs, now).is_empty());
        assert!(retention(&rule(&["*"], None, Some(1)), &refs, now).is_empty());
    }

    #[test]
    fn semantic_versions() {
        for yes in [
            "1.2.3",
            "v1.2.3",
            "10.0.1-rc.1",
            "1.2.3+build.5",
            "1.0.0-alpha-1",
        ] {
            assert!(is_semver(yes), "{yes}");
        }
        for no in [
            "latest", "1.2", "v1", "1.2.3.4", "1.2.x", "1.2.3-", "", "v", "1..3",
        ] {
            assert!(!is_semver(no), "{no}");
        }
    }
}
