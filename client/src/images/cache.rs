//! The build cache, as the store keeps it: `builder/cache/<key>.json`, one record per build
//! step that made a layer, naming that layer (blob, diff id, the snapshot it was unpacked
//! as). The build computes the keys (`build::cache`); this module stores the records and
//! answers what they hold, so that removing an image never deletes a layer the cache still
//! names, and `builder prune` removes cache records and then what nothing else needs.

use std::collections::BTreeSet;
use std::path::PathBuf;

use berth_storage::Digest;
use serde::{Deserialize, Serialize};

use super::{io_err, write_atomic, ImageStore, LayerRecord, Result};

/// The store's hold (`holds/build-cache`) on the blobs the cache records name.
const CACHE_HOLD: &str = "build-cache";

/// One cached step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The layer the step made, with the chain id of the snapshot it was unpacked as.
    pub layer: LayerRecord,
    /// When the step ran (its history entry's time).
    pub created: String,
    /// When a build last used it.
    pub last_used: String,
    /// The instruction, for `builder du`-like listings.
    pub description: String,
}

/// What a prune removed.
#[derive(Debug, Clone, Default)]
pub struct CachePruned {
    /// The keys of the removed records.
    pub removed: Vec<Digest>,
    /// Bytes of layers (unpacked) that went with them.
    pub reclaimed: u64,
}

impl ImageStore {
    fn cache_dir(&self) -> PathBuf {
        self.root.join("builder/cache")
    }

    fn cache_path(&self, key: &Digest) -> PathBuf {
        self.cache_dir().join(format!("{}.json", key.hex()))
    }

    /// The record of a step, when the cache has it and its layer is still whole (blob and
    /// snapshot present).
    pub fn cache_get(&self, key: &Digest) -> Option<CacheRecord> {
        let data = std::fs::read(self.cache_path(key)).ok()?;
        let rec: CacheRecord = serde_json::from_slice(&data).ok()?;
        let blob = self.store.blobs.local_path(&rec.layer.digest)?;
        (blob.exists() && self.snapshot_dir(&rec.layer.chain_id).is_dir()).then_some(rec)
    }

    /// Remembers a step that made a layer: the store's hold on the cache's blobs
    /// (`holds/build-cache`, read by every collection) names the layer before the record
    /// does, so no collection, this client's or a registry's over the same root, frees it.
    pub async fn cache_put(&self, key: &Digest, rec: &CacheRecord) -> Result<()> {
        let _lock = self.cache_lock()?;
        let mut blobs = self.cache_blobs_present();
        blobs.insert(rec.layer.digest.clone());
        self.store.hold(CACHE_HOLD, &blobs).await?;
        self.cache_touch(key, rec)
    }

    /// The blobs of the cache's records that the store has (a record whose blob is gone is
    /// stale: `cache_get` never answers it, and the store refuses to hold what it lacks).
    fn cache_blobs_present(&self) -> BTreeSet<Digest> {
        let (blobs, _) = self.cache_holds();
        blobs
            .into_iter()
            .filter(|d| self.store.blobs.local_path(d).is_some_and(|p| p.exists()))
            .collect()
    }

    /// Rewrites the record of a step the cache has (its last use).
    pub fn cache_touch(&self, key: &Digest, rec: &CacheRecord) -> Result<()> {
        let data = serde_json::to_vec(rec).expect("a cache record serialises");
        write_atomic(&self.cache_path(key), &data)
    }

    /// Orders writers of the cache's hold (parallel stages, other builds).
    fn cache_lock(&self) -> Result<super::IndexLock> {
        let dir = self.cache_dir();
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        self.lock_file(self.root.join("builder/cache.lock"))
    }

    /// Every record, by key.
    pub fn cache_list(&self) -> Result<Vec<(Digest, CacheRecord)>> {
        let dir = self.cache_dir();
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(io_err(&dir)(e)),
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(hex) = name.strip_suffix(".json") else {
                continue;
            };
            let Ok(key) = format!("sha256:{hex}").parse::<Digest>() else {
                continue;
            };
            if let Some(rec) = std::fs::read(e.path())
                .ok()
                .and_then(|d| serde_json::from_slice::<CacheRecord>(&d).ok())
            {
                out.push((key, rec));
            }
        }
        out.sort_by(|a, b| a.1.last_used.cmp(&b.1.last_used));
        Ok(out)
    }

    /// Blobs and snapshots the cache needs: kept by every deleting path.
    pub(crate) fn cache_holds(&self) -> (BTreeSet<Digest>, BTreeSet<Digest>) {
        let mut blobs = BTreeSet::new();
        let mut chains = BTreeSet::new();
        for (_, r) in self.cache_list().unwrap_or_default() {
            blobs.insert(r.layer.digest);
            chains.insert(r.layer.chain_id);
        }
        (blobs, chains)
    }

    /// Removes cache records — all of them with `all`, else those whose layer no image
    /// uses; of those, only what `admit` admits (a prune's filters) — then the layers
    /// nothing needs any more.
    pub async fn cache_prune(
        &self,
        all: bool,
        admit: impl Fn(&CacheRecord) -> bool,
    ) -> Result<CachePruned> {
        let _lock = self.lock()?;
        let index = self.read_index()?;
        let image_chains: BTreeSet<Digest> = index
            .images
            .values()
            .flat_map(|i| i.layers.iter().map(|l| l.chain_id.clone()))
            .collect();
        let image_blobs: BTreeSet<Digest> = index
            .images
            .values()
            .flat_map(|i| i.blobs().cloned())
            .collect();
        let mut out = CachePruned::default();
        let mut gone = Vec::new();
        let cache_lock = self.cache_lock()?;
        for (key, rec) in self.cache_list()? {
            if (all || !image_chains.contains(&rec.layer.chain_id)) && admit(&rec) {
                let path = self.cache_path(&key);
                std::fs::remove_file(&path).map_err(io_err(&path))?;
                out.removed.push(key);
                gone.push(rec);
            }
        }
        let (kept_blobs, kept_chains) = self.cache_holds();
        self.store
            .hold(CACHE_HOLD, &self.cache_blobs_present())
            .await?;
        drop(cache_lock);
        let mut candidates = BTreeSet::new();
        for rec in gone {
            let l = &rec.layer;
            if !image_chains.contains(&l.chain_id) && !kept_chains.contains(&l.chain_id) {
                let dir = self.snapshot_dir(&l.chain_id);
                if dir.exists() {
                    out.reclaimed += l.unpacked_size;
                    super::remove_tree(&dir)?;
                    let _ = std::fs::remove_file(dir.with_extension("json"));
                }
            }
            if !image_blobs.contains(&l.digest) && !kept_blobs.contains(&l.digest) {
                candidates.insert(l.digest.clone());
            }
        }
        self.free_blobs(candidates).await?;
        self.journal().record(crate::events::Event::prune(
            crate::events::Kind::Builder,
            out.reclaimed,
        ));
        Ok(out)
    }

    /// Bytes the cache's layers take (unpacked), counting each snapshot once, and the part
    /// no image shares.
    pub fn cache_usage(&self) -> Result<(usize, u64, u64)> {
        let index = self.read_index()?;
        let image_chains: BTreeSet<Digest> = index
            .images
            .values()
            .flat_map(|i| i.layers.iter().map(|l| l.chain_id.clone()))
            .collect();
        let records = self.cache_list()?;
        let mut seen = BTreeSet::new();
        let (mut size, mut own) = (0, 0);
        for (_, r) in &records {
            if seen.insert(r.layer.chain_id.clone()) {
                size += r.layer.unpacked_size;
                if !image_chains.contains(&r.layer.chain_id) {
                    own += r.layer.unpacked_size;
                }
            }
        }
        Ok((records.len(), size, own))
    }

    /// The scratch space of builds: contexts from stdin, steps' directories.
    pub fn build_tmp(&self) -> Result<PathBuf> {
        let d = self.root.join("builder/tmp");
        std::fs::create_dir_all(&d).map_err(io_err(&d))?;
        // Each step's upper directory apart from the last one's (see `spread_subdirs`).
        super::spread_subdirs(&d);
        Ok(d)
    }

    /// Whether the image `id` is recorded with `manifest` and already has every name of
    /// `names`: then recording it again would change nothing (a rebuild whose result is
    /// the image it made before).
    pub fn has_image_named(
        &self,
        id: &Digest,
        manifest: &Digest,
        names: &[crate::reference::ImageRef],
    ) -> bool {
        let Ok(index) = self.read_index() else {
            return false;
        };
        index.images.get(id.as_str()).is_some_and(|r| {
            r.manifest == *manifest && names.iter().all(|n| r.tags.contains(&n.to_string()))
        })
    }

    /// Where a build keeps its own state between runs (file digests of contexts).
    pub fn build_state(&self) -> Result<PathBuf> {
        let d = self.root.join("builder/state");
        std::fs::create_dir_all(&d).map_err(io_err(&d))?;
        Ok(d)
    }
}
