//! Images that reach the store without a client command: `berth serve --root <this root>`
//! keeps what docker, podman or skopeo push to it as tags in the store's repositories.
//!
//! The store's tags are the truth about names; `images/index.json` is the client's summary of
//! them. [`ImageStore::served_changes`] compares the two (a walk of `catalog/` and of each
//! repository's `_tags/`, reading no blob), and [`ImageStore::adopt_served`] brings the index
//! up to date: a tag the index does not know becomes an image (its layers unpacked from the
//! store's blobs, as a pull would, so that it runs like any other image), named as
//! [`super::ref_of_store_repo`] says (`team/app:1` pushed through the registry is
//! `localhost/team/app:1` here); a tag gone from the store is taken off its image.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use berth_storage::{Digest, RepoName, Tag};
use serde::{Deserialize, Serialize};

use super::pull::{check_layer_type, parse_config, parse_manifest, NoProgress};
use super::{
    chain_ids, ref_of_store_repo, store_repo, ImageError, ImageRecord, ImageStore, LayerRecord,
    Result,
};
use crate::reference::ImageRef;
use crate::remote::{is_index, select_platform, Platform};

/// Where the store's tags and the index disagree.
#[derive(Debug, Default)]
pub struct StoreChanges {
    /// Store tags the index does not know, or knows on another image.
    added: Vec<(RepoName, Tag, Digest)>,
    /// Full references the index has and the store no longer tags.
    removed: Vec<String>,
}

impl StoreChanges {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// When a directory last changed: (seconds, nanoseconds) of its mtime.
type Stamp = (i64, i64);

/// `images/synced.json`: the mtimes of `catalog/` and of each repository's `_tags/` when the
/// index last agreed with them. A tag written, replaced or removed changes its `_tags/`
/// directory's mtime, a repository created or deleted changes `catalog/`'s, so a command
/// whose stamps all match knows the index is current after one `stat` per repository.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Synced {
    catalog: Option<Stamp>,
    repos: BTreeMap<String, Stamp>,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.mtime(), m.mtime_nsec()))
}

impl ImageStore {
    fn synced_path(&self) -> PathBuf {
        self.root.join("images/synced.json")
    }

    fn tags_dir(&self, repo: &str) -> PathBuf {
        self.root.join("repositories").join(repo).join("_tags")
    }

    /// The store's repositories, from `catalog/`.
    fn store_repos(&self) -> Result<BTreeSet<String>> {
        let catalog = self.root.join("catalog");
        let entries = match std::fs::read_dir(&catalog) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
            Err(e) => return Err(super::io_err(&catalog)(e)),
        };
        let mut out = BTreeSet::new();
        for entry in entries {
            let entry = entry.map_err(super::io_err(&catalog))?;
            if let Some(name) = entry.file_name().to_str().map(|n| n.replace('~', "/")) {
                if name.parse::<RepoName>().is_ok() {
                    out.insert(name);
                }
            }
        }
        Ok(out)
    }

    /// A repository's tags: tag → digest, read straight from the disk.
    fn repo_tags(&self, repo: &str) -> BTreeMap<String, Digest> {
        let mut out = BTreeMap::new();
        let Ok(tags) = std::fs::read_dir(self.tags_dir(repo)) else {
            return out;
        };
        for t in tags.flatten() {
            let Some(tag) = t.file_name().to_str().and_then(|t| t.parse::<Tag>().ok()) else {
                continue;
            };
            if let Some(digest) = std::fs::read_to_string(t.path())
                .ok()
                .and_then(|d| d.trim().parse::<Digest>().ok())
            {
                out.insert(tag.to_string(), digest);
            }
        }
        out
    }

    /// How the index differs from the store's tags (empty when the client made every tag).
    /// Runs before every command: when `images/synced.json` says nothing moved, it costs a
    /// `stat` per repository and reads neither the index nor a tag.
    pub fn served_changes(&self) -> Result<StoreChanges> {
        let synced: Synced = std::fs::read(self.synced_path())
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok())
            .unwrap_or_default();
        // Stamps first, contents after: a change in between is seen by the next command.
        let catalog = stamp(&self.root.join("catalog"));
        let repos = if catalog.is_some() && catalog == synced.catalog {
            synced.repos.keys().cloned().collect()
        } else {
            self.store_repos()?
        };
        let now = Synced {
            catalog,
            repos: repos
                .iter()
                .map(|r| (r.clone(), stamp(&self.tags_dir(r)).unwrap_or_default()))
                .collect(),
        };
        if now == synced {
            return Ok(StoreChanges::default());
        }
        let moved: BTreeSet<&String> = now
            .repos
            .iter()
            .filter(|(r, st)| synced.repos.get(*r) != Some(st))
            .map(|(r, _)| r)
            .collect();

        let index = self.read_index()?;
        let mut claimed: HashMap<(String, String), (&ImageRecord, &String)> = HashMap::new();
        for record in index.images.values() {
            for full in &record.tags {
                let Ok(r) = ImageRef::parse(full) else {
                    continue;
                };
                if let (Ok(repo), Some(tag)) = (store_repo(&r), r.tag()) {
                    claimed.insert((repo.to_string(), tag.to_string()), (record, full));
                }
            }
        }
        let mut changes = StoreChanges::default();
        let mut tags: HashMap<(String, String), Digest> = HashMap::new();
        for repo in &moved {
            for (tag, digest) in self.repo_tags(repo) {
                let key = ((*repo).clone(), tag);
                let known = claimed
                    .get(&key)
                    .is_some_and(|(r, _)| r.manifest == digest || r.extra_blobs.contains(&digest));
                if !known {
                    if let (Ok(repo), Ok(tag)) = (key.0.parse(), key.1.parse()) {
                        changes.added.push((repo, tag, digest.clone()));
                    }
                }
                tags.insert(key, digest);
            }
        }
        for ((repo, tag), (_, full)) in &claimed {
            let gone = if moved.contains(repo) {
                !tags.contains_key(&(repo.clone(), tag.clone()))
            } else {
                !now.repos.contains_key(repo)
            };
            if gone {
                changes.removed.push((*full).clone());
            }
        }
        if changes.is_empty() {
            // The index agrees with the store as it was stamped: remember that. A root this
            // user cannot write just compares again next time. File times tick coarsely
            // (a few ms), so a directory changed within the last seconds may change again
            // under the same stamp: those are remembered as unknown, and compared again.
            let recent = chrono::Utc::now().timestamp() - 2;
            let settled = |st: Stamp| if st.0 >= recent { (-1, -1) } else { st };
            let remembered = Synced {
                catalog: now.catalog.map(settled),
                repos: now
                    .repos
                    .into_iter()
                    .map(|(r, st)| (r, settled(st)))
                    .collect(),
            };
            let data = serde_json::to_vec(&remembered).expect("the stamps serialise");
            let _ = super::write_atomic(&self.synced_path(), &data);
        }
        Ok(changes)
    }

    /// Brings the index up to date with the store's tags (see the module's text). A tag whose
    /// manifest cannot become an image here (another platform only, missing blobs, a
    /// manifest that is not an image) is left to the registry and not listed. Returns the
    /// names that could not be registered (a full disk while unpacking) with the reason:
    /// they are tried again by the next command, and the others are not held up.
    pub async fn adopt_served(&self, changes: StoreChanges) -> Result<Vec<(String, ImageError)>> {
        let mut dropped = changes.removed;
        let mut failed = Vec::new();
        for (repo, tag, digest) in changes.added {
            let Some(name) = ref_of_store_repo(repo.as_str(), tag.as_str()) else {
                continue;
            };
            let adopted = match self.served_image(&digest).await {
                Ok(Some((record, top))) => {
                    let named = ImageRef::parse(&name.name())?;
                    self.commit_image(record, std::slice::from_ref(&name), Some((&named, &top)))
                        .await
                        .map(|_| ())
                }
                // The name no longer means what the index says: take it off.
                Ok(None) => {
                    dropped.push(name.to_string());
                    Ok(())
                }
                Err(e) => Err(e),
            };
            if let Err(e) = adopted {
                failed.push((name.familiar(), e));
            }
        }
        if !dropped.is_empty() {
            let lock = self.lock()?;
            let mut index = self.read_index()?;
            for r in index.images.values_mut() {
                r.tags.retain(|t| !dropped.contains(t));
            }
            self.write_index(&lock, &index).await?;
        }
        Ok(failed)
    }

    /// The image a stored manifest (or index, for this host's platform) describes, with its
    /// snapshots unpacked; `None` when the store cannot make it an image.
    async fn served_image(&self, top: &Digest) -> Result<Option<(ImageRecord, Digest)>> {
        let blobs = &self.store.blobs;
        let Ok(top_bytes) = blobs.read(top).await else {
            return Ok(None);
        };
        let top_type = self.manifest_media_type(top).await;
        let (manifest, manifest_bytes, extra) = if is_index(&top_type) {
            let Ok(entry) = select_platform(&top_bytes, &Platform::host()) else {
                return Ok(None);
            };
            let Ok(bytes) = blobs.read(&entry.digest).await else {
                return Ok(None);
            };
            (entry.digest, bytes, vec![top.clone()])
        } else {
            (top.clone(), top_bytes, Vec::new())
        };
        let Ok(doc) = parse_manifest(&manifest_bytes) else {
            return Ok(None);
        };
        let Ok(config_bytes) = blobs.read(&doc.config.digest).await else {
            return Ok(None);
        };
        let Ok(config) = parse_config(&config_bytes) else {
            return Ok(None);
        };
        if config.rootfs.diff_ids.len() != doc.layers.len() {
            return Ok(None);
        }
        for l in &doc.layers {
            if check_layer_type(&l.media_type).is_err() || !blobs.exists(&l.digest).await? {
                return Ok(None);
            }
        }
        let chains = chain_ids(&config.rootfs.diff_ids);
        let mut layers: Vec<LayerRecord> = Vec::new();
        for (i, l) in doc.layers.iter().enumerate() {
            match self
                .fetch_layer(None, l, &config.rootfs.diff_ids[i], &chains[i], &NoProgress)
                .await
            {
                Ok(layer) => layers.push(layer),
                // A layer that does not unpack to its diff id is not an image we can run.
                Err(ImageError::DiffIdMismatch { .. }) | Err(ImageError::Unpack(_)) => {
                    return Ok(None)
                }
                Err(e) => return Err(e),
            }
        }
        let media_type = match &doc.media_type {
            Some(t) => t.clone(),
            None => self.manifest_media_type(&manifest).await,
        };
        let record = config.record(
            &doc.config.digest,
            config_bytes.len() as u64,
            (&manifest, media_type, manifest_bytes.len() as u64),
            extra,
            layers,
        );
        Ok(Some((record, top.clone())))
    }
}
