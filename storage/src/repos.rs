//! Repository metadata: which tags, manifests, blobs and referrers belong to a repository.
//!
//! ```text
//! repositories/<name>/_tags/<tag>                          the manifest digest, as text
//! repositories/<name>/_manifests/<alg>/<hex>               the manifest's media type
//! repositories/<name>/_blobs/<alg>/<hex>                   empty: the blob belongs here
//! repositories/<name>/_referrers/<hex>/<hex>               a referrer's descriptor (JSON)
//! catalog/<name with / as ~>                               empty: the repository exists
//! ```
//! The `_` prefixes cannot start a component of a repository name, so a repository `a/_tags`
//! cannot exist and no two meanings share a key. Content lives in the blob store; everything
//! here is a small object written in one atomic put.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::backend::{list_all, Backend, BackendError};
use crate::digest::Digest;
use crate::error::{Result, StoreError};
use crate::gc::guard::Guard;
use crate::name::{RepoName, Tag};
use crate::refs::manifest_refs;

/// An OCI content descriptor, as a referrers index lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A page of names and whether more follow it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub items: Vec<String>,
    pub more: bool,
}

#[derive(Clone)]
pub struct Repositories {
    backend: Arc<dyn Backend>,
    guard: Guard,
    /// The catalog's names in order, with the backend's [`Backend::listing_stamp`] of
    /// `catalog/` they were read under: a page is a binary search while the stamp holds.
    catalog_cache: Arc<Mutex<Option<StampedNames>>>,
}

/// Sorted names and the listing stamp they were read under.
type StampedNames = (String, Arc<Vec<String>>);

/// How long a catalog marker counts as just written (see `Repositories::mark`).
const MARK_FRESH: Duration = Duration::from_secs(1);

pub(crate) fn repo_prefix(repo: &RepoName) -> String {
    format!("repositories/{repo}/")
}

pub(crate) fn tag_key(repo: &RepoName, tag: &Tag) -> String {
    format!("repositories/{repo}/_tags/{tag}")
}

fn digest_path(d: &Digest) -> String {
    format!("{}/{}", d.algorithm().name(), d.hex())
}

pub(crate) fn manifest_key(repo: &RepoName, d: &Digest) -> String {
    format!("repositories/{repo}/_manifests/{}", digest_path(d))
}

pub(crate) fn blob_link_key(repo: &RepoName, d: &Digest) -> String {
    format!("repositories/{repo}/_blobs/{}", digest_path(d))
}

pub(crate) fn referrers_prefix(repo: &RepoName, subject: &Digest) -> String {
    // Digests appear by their hex alone: its length (64 or 128) implies the algorithm.
    format!("repositories/{repo}/_referrers/{}/", subject.hex())
}

fn catalog_key(repo: &RepoName) -> String {
    format!("catalog/{}", repo.as_str().replace('/', "~"))
}

/// Parses the `<alg>/<hex>` tail of a key back into a digest.
pub(crate) fn digest_from_path(path: &str) -> Option<Digest> {
    let (alg, hex) = path.split_once('/')?;
    format!("{alg}:{hex}").parse().ok()
}

fn missing_as_none<T>(r: std::result::Result<T, BackendError>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(BackendError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl Repositories {
    pub(crate) fn new(backend: Arc<dyn Backend>, guard: Guard) -> Repositories {
        Repositories {
            backend,
            guard,
            catalog_cache: Arc::default(),
        }
    }

    // ---- tags ----

    pub async fn tag(&self, repo: &RepoName, tag: &Tag) -> Result<Option<Digest>> {
        let key = tag_key(repo, tag);
        let Some(data) = missing_as_none(self.backend.read(&key).await)? else {
            return Ok(None);
        };
        let text = std::str::from_utf8(&data).map_err(|e| StoreError::Corrupt {
            key: key.clone(),
            message: e.to_string(),
        })?;
        text.trim()
            .parse()
            .map(Some)
            .map_err(|e: crate::DigestError| StoreError::Corrupt {
                key,
                message: e.to_string(),
            })
    }

    /// Points a tag at a manifest, replacing what it pointed at in one atomic write.
    pub async fn set_tag(&self, repo: &RepoName, tag: &Tag, digest: &Digest) -> Result<()> {
        self.backend
            .put(&tag_key(repo, tag), Bytes::from(digest.to_string()))
            .await?;
        self.mark(repo).await
    }

    /// Removes a tag; `false` when there was none.
    pub async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool> {
        let key = tag_key(repo, tag);
        let existed = self.backend.stat(&key).await?.is_some();
        self.backend.delete(&key).await?;
        Ok(existed)
    }

    /// Tags in lexical order, after `last`, at most `n` (all when `n` is `None`).
    pub async fn tags(
        &self,
        repo: &RepoName,
        last: Option<&str>,
        n: Option<usize>,
    ) -> Result<Page> {
        self.names_under(&format!("repositories/{repo}/_tags/"), last, n)
            .await
    }

    /// Every tag of a repository that points at `digest`.
    pub async fn tags_of(&self, repo: &RepoName, digest: &Digest) -> Result<Vec<Tag>> {
        let mut out = Vec::new();
        for t in self.tags(repo, None, None).await?.items {
            let Ok(tag) = t.parse::<Tag>() else { continue };
            if self.tag(repo, &tag).await?.as_ref() == Some(digest) {
                out.push(tag);
            }
        }
        Ok(out)
    }

    // ---- manifests ----

    /// Records that a manifest belongs to the repository; `body` is its content, already in
    /// the blob store. Fails with [`StoreError::BlobUnknown`] (and links nothing) when the
    /// manifest's bytes are not in the store, and returns the digests it needs (blobs,
    /// children) that are not: a registry refuses such a manifest, a mirror fetches them
    /// later. Once linked, no collection deletes what the manifest needs (see `gc::guard`).
    pub async fn link_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        media_type: &str,
        body: &[u8],
    ) -> Result<Vec<Digest>> {
        let key = manifest_key(repo, digest);
        let existed = self.backend.stat(&key).await?.is_some();
        self.backend
            .put(&key, Bytes::from(media_type.to_string()))
            .await?;
        let refs = manifest_refs(body);
        let needs: Vec<&Digest> = refs.needs().collect();
        let kept = async {
            self.guard.kept(&[digest]).await?;
            self.guard.missing(&needs).await
        };
        match kept.await {
            Ok(missing) => {
                self.mark(repo).await?;
                Ok(missing)
            }
            Err(e) => {
                if !existed {
                    self.backend.delete(&key).await?;
                }
                Err(e)
            }
        }
    }

    /// The media type of a manifest of the repository, or `None` if it is not one.
    pub async fn manifest(&self, repo: &RepoName, digest: &Digest) -> Result<Option<String>> {
        let data = missing_as_none(self.backend.read(&manifest_key(repo, digest)).await)?;
        Ok(data.map(|d| String::from_utf8_lossy(&d).into_owned()))
    }

    pub async fn unlink_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        let key = manifest_key(repo, digest);
        let existed = self.backend.stat(&key).await?.is_some();
        self.backend.delete(&key).await?;
        Ok(existed)
    }

    pub async fn manifests(&self, repo: &RepoName) -> Result<Vec<Digest>> {
        let prefix = format!("repositories/{repo}/_manifests/");
        let keys = list_all(self.backend.as_ref(), &prefix).await?;
        Ok(keys
            .iter()
            .filter_map(|k| digest_from_path(k.strip_prefix(&prefix)?))
            .collect())
    }

    // ---- blob links ----

    /// Records that a blob belongs to the repository. Fails with [`StoreError::BlobUnknown`]
    /// (and links nothing) when the blob is not, or no longer, in the store; once linked, no
    /// collection deletes it before its link is older than the collection's delay.
    pub async fn link_blob(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let key = blob_link_key(repo, digest);
        self.backend.put(&key, Bytes::new()).await?;
        if let Err(e) = self.guard.kept(&[digest]).await {
            self.backend.delete(&key).await?;
            return Err(e);
        }
        Ok(())
    }

    pub async fn has_blob(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        Ok(self
            .backend
            .stat(&blob_link_key(repo, digest))
            .await?
            .is_some())
    }

    pub async fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        let key = blob_link_key(repo, digest);
        let existed = self.backend.stat(&key).await?.is_some();
        self.backend.delete(&key).await?;
        Ok(existed)
    }

    pub async fn blobs(&self, repo: &RepoName) -> Result<Vec<Digest>> {
        let prefix = format!("repositories/{repo}/_blobs/");
        let keys = list_all(self.backend.as_ref(), &prefix).await?;
        Ok(keys
            .iter()
            .filter_map(|k| digest_from_path(k.strip_prefix(&prefix)?))
            .collect())
    }

    // ---- referrers ----

    /// Records that `referrer` (a manifest of the repository) refers to `subject`.
    pub async fn add_referrer(
        &self,
        repo: &RepoName,
        subject: &Digest,
        referrer: &Descriptor,
    ) -> Result<()> {
        // Short keys matter to S3 servers that map each key to a file name.
        let key = format!(
            "{}{}",
            referrers_prefix(repo, subject),
            referrer.digest.hex()
        );
        let data = serde_json::to_vec(referrer).expect("descriptor serialises");
        self.backend.put(&key, Bytes::from(data)).await?;
        Ok(())
    }

    pub async fn remove_referrer(
        &self,
        repo: &RepoName,
        subject: &Digest,
        referrer: &Digest,
    ) -> Result<()> {
        let key = format!("{}{}", referrers_prefix(repo, subject), referrer.hex());
        Ok(self.backend.delete(&key).await?)
    }

    /// The descriptors of every manifest that refers to `subject`, in digest order.
    pub async fn referrers(&self, repo: &RepoName, subject: &Digest) -> Result<Vec<Descriptor>> {
        let keys = list_all(self.backend.as_ref(), &referrers_prefix(repo, subject)).await?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let Some(data) = missing_as_none(self.backend.read(&key).await)? else {
                continue;
            };
            let d = serde_json::from_slice(&data).map_err(|e| StoreError::Corrupt {
                key: key.clone(),
                message: e.to_string(),
            })?;
            out.push(d);
        }
        Ok(out)
    }

    // ---- the catalog ----

    /// Records that the repository exists and was pushed to now: the catalog marker's
    /// modification time is the repository's last push ([`Repositories::catalog_pushed`]). A
    /// marker written in the last second is left alone, so a push's manifest and tag cost
    /// one write, not two.
    async fn mark(&self, repo: &RepoName) -> Result<()> {
        let key = catalog_key(repo);
        let fresh = self.backend.stat(&key).await?.is_some_and(|m| {
            m.modified
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age < MARK_FRESH)
        });
        if !fresh {
            self.backend.put(&key, Bytes::new()).await?;
        }
        Ok(())
    }

    /// Every repository with the time of its last push (a manifest or a tag written), in
    /// name order: one listing, whatever the number of repositories.
    pub async fn catalog_pushed(&self) -> Result<Vec<(String, Option<SystemTime>)>> {
        let mut out: Vec<(String, Option<SystemTime>)> = self
            .backend
            .list_meta("catalog/")
            .await?
            .into_iter()
            .filter_map(|(k, m)| Some((k.strip_prefix("catalog/")?.replace('~', "/"), m.modified)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// When a tag was last pointed at its manifest.
    pub async fn tag_pushed(&self, repo: &RepoName, tag: &Tag) -> Result<Option<SystemTime>> {
        Ok(self
            .backend
            .stat(&tag_key(repo, tag))
            .await?
            .and_then(|m| m.modified))
    }

    /// Whether the repository has ever held a manifest (and was not deleted since).
    pub async fn exists(&self, repo: &RepoName) -> Result<bool> {
        Ok(self.backend.stat(&catalog_key(repo)).await?.is_some())
    }

    /// Repository names in lexical order, after `last`, at most `n`.
    pub async fn catalog(&self, last: Option<&str>, n: Option<usize>) -> Result<Page> {
        let names = self.catalog_names().await?;
        let from = last.map_or(0, |last| names.partition_point(|n| n.as_str() <= last));
        let rest = names.get(from..).unwrap_or_default();
        let take = n.unwrap_or(usize::MAX).min(rest.len());
        Ok(Page {
            items: rest[..take].to_vec(),
            more: take < rest.len(),
        })
    }

    /// Every repository name, sorted: from the cache while the backend's stamp of `catalog/`
    /// is unchanged, else from one listing (kept when the backend gave a stamp).
    async fn catalog_names(&self) -> Result<Arc<Vec<String>>> {
        let stamp = self.backend.listing_stamp("catalog/").await?;
        if let Some(stamp) = &stamp {
            let cache = self.catalog_cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((_, names)) = cache.as_ref().filter(|(s, _)| s == stamp) {
                return Ok(names.clone());
            }
        }
        let keys = list_all(self.backend.as_ref(), "catalog/").await?;
        let mut names: Vec<String> = keys
            .iter()
            .filter_map(|k| k.strip_prefix("catalog/"))
            .map(|k| k.replace('~', "/"))
            .collect();
        // `~` sorts differently from `/`, so order by the names themselves.
        names.sort();
        let names = Arc::new(names);
        if let Some(stamp) = stamp {
            *self.catalog_cache.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((stamp, names.clone()));
        }
        Ok(names)
    }

    /// Forgets a repository entirely: tags, manifest and blob links, referrers.
    pub async fn delete_repository(&self, repo: &RepoName) -> Result<()> {
        for key in list_all(self.backend.as_ref(), &repo_prefix(repo)).await? {
            // Nested repositories (`a/b` under `a`) keep their own keys.
            let rest = &key[repo_prefix(repo).len()..];
            if rest.starts_with('_') {
                self.backend.delete(&key).await?;
            }
        }
        self.backend.delete(&catalog_key(repo)).await?;
        Ok(())
    }

    async fn names_under(
        &self,
        prefix: &str,
        last: Option<&str>,
        n: Option<usize>,
    ) -> Result<Page> {
        let after = last.map(|l| format!("{prefix}{l}"));
        let limit = n.unwrap_or(usize::MAX);
        if limit == usize::MAX {
            let keys = list_all(self.backend.as_ref(), prefix).await?;
            let items = keys
                .into_iter()
                .filter(|k| after.as_ref().is_none_or(|a| k > a))
                .filter_map(|k| k.strip_prefix(prefix).map(str::to_string))
                .collect();
            return Ok(Page { items, more: false });
        }
        let page = self.backend.list(prefix, after.as_deref(), limit).await?;
        Ok(Page {
            items: page
                .keys
                .into_iter()
                .filter_map(|k| k.strip_prefix(prefix).map(str::to_string))
                .collect(),
            more: page.truncated,
        })
    }
}
