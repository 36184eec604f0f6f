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

use std::collections::{BTreeMap, HashMap};

use berth_storage::{Digest, RepoName, Tag};

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

impl ImageStore {
    /// Every tag of the store: (repository, tag) → digest. Read straight from the disk: this
    /// runs before every command and must stay cheap.
    fn store_tags(&self) -> Result<BTreeMap<(String, String), Digest>> {
        let mut out = BTreeMap::new();
        let catalog = self.root.join("catalog");
        let entries = match std::fs::read_dir(&catalog) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(super::io_err(&catalog)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(super::io_err(&catalog))?;
            let Some(name) = entry.file_name().to_str().map(|n| n.replace('~', "/")) else {
                continue;
            };
            let Ok(repo) = name.parse::<RepoName>() else {
                continue;
            };
            let dir = self
                .root
                .join("repositories")
                .join(repo.as_str())
                .join("_tags");
            let Ok(tags) = std::fs::read_dir(&dir) else {
                continue;
            };
            for t in tags.flatten() {
                let Some(tag) = t.file_name().to_str().and_then(|t| t.parse::<Tag>().ok()) else {
                    continue;
                };
                let Some(digest) = std::fs::read_to_string(t.path())
                    .ok()
                    .and_then(|d| d.trim().parse::<Digest>().ok())
                else {
                    continue;
                };
                out.insert((repo.to_string(), tag.to_string()), digest);
            }
        }
        Ok(out)
    }

    /// How the index differs from the store's tags (empty when the client made every tag).
    pub fn served_changes(&self) -> Result<StoreChanges> {
        let index = self.read_index()?;
        let tags = self.store_tags()?;
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
        for ((repo, tag), digest) in &tags {
            let known = claimed
                .get(&(repo.clone(), tag.clone()))
                .is_some_and(|(r, _)| r.manifest == *digest || r.extra_blobs.contains(digest));
            if !known {
                if let (Ok(repo), Ok(tag)) = (repo.parse(), tag.parse()) {
                    changes.added.push((repo, tag, digest.clone()));
                }
            }
        }
        for (key, (_, full)) in claimed {
            if !tags.contains_key(&key) {
                changes.removed.push(full.clone());
            }
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
            self.write_index(&lock, &index)?;
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
