//! The local image store: a registry store on the local disk, plus what only a client needs.
//!
//! Layout under the client root (default `/var/lib/berth` for root, else
//! `$XDG_DATA_HOME/berth` or `~/.local/share/berth`):
//!
//! ```text
//! blobs/, repositories/, catalog/, uploads/   berth-storage's format: `berth serve --root` serves it
//! snapshots/<chain-id hex>/                   one layer unpacked (an overlay lower dir)
//! snapshots/<chain-id hex>.json               its diff id and unpacked size
//! partial/<alg>-<hex>                         a layer download in progress (resumed by the next pull)
//! images/index.json                           one record per image (see [`ImageRecord`])
//! images/lock                                 flock held while the index and tags change
//! images/synced.json                          mtimes of catalog/ and _tags/ when the index last
//!                                             agreed with the store's tags (see `served`)
//! ```
//!
//! Repository names in the store are the normalised reference's registry host and path:
//! `docker.io/library/busybox`, `ghcr.io/org/app`. A port cannot appear in a repository name,
//! so `localhost:5000/x` is stored as `localhost_5000/x` (a host never contains `_`, so the
//! mapping is one to one); the image record keeps the real reference for display.
//!
//! An image is identified by its config digest (the IMAGE ID, as in docker). The index holds,
//! per image, its names, layers, sizes and manifest, so that `images` reads one file; the
//! store's tags and links are written alongside, so that a registry over the same root sees
//! the same images. Everything is written content first and index last: a command that fails
//! half way (a full disk, a dropped connection) leaves unreferenced blobs or snapshots, never
//! an index entry that points at something missing.

mod archive;
mod cache;
mod pull;
mod push;
mod served;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_storage::{gc, Digest, FsBackend, RepoName, Store, StoreError};
use serde::{Deserialize, Serialize};

use crate::events::{Event, Journal, Kind};
use crate::reference::{ImageRef, ReferenceError};
use crate::remote::{RemoteError, MEDIA_DOCKER_MANIFEST};
use crate::unpack::UnpackError;

pub(crate) use archive::apply_changes;
pub use archive::{ImportOptions, LoadedImage};
pub use cache::{CachePruned, CacheRecord};
pub use pull::{LayerState, NoProgress, Progress, PullOptions, PullResult};
pub use push::PushResult;
pub use served::StoreChanges;

/// Why an image command failed. Messages are one line, in docker's words where it has them.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error("No such image: {0}")]
    NotFound(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("conflict: unable to delete {id} (must be forced) - image is referenced in multiple repositories")]
    Conflict { id: String },
    #[error(
        "conflict: unable to delete {id} (cannot be forced) - image has dependent child images"
    )]
    HasChildren { id: String },
    #[error("{0}")]
    Invalid(String),
    #[error("conflict: unable to remove repository reference \"{reference}\" (must force) - container {container} is using its referenced image {id}")]
    InUse {
        reference: String,
        container: String,
        id: String,
    },
    #[error("layer {layer}: its content has diff id {actual}, the image config says {expected}")]
    DiffIdMismatch {
        layer: Digest,
        expected: Digest,
        actual: Digest,
    },
    #[error("registry host {0:?} cannot be used in the local store (use a host name or an IPv4 address)")]
    UnsupportedHost(String),
}

pub type Result<T, E = ImageError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One layer of an image as the store holds it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LayerRecord {
    /// The blob's digest (compressed as the registry served it).
    pub digest: Digest,
    pub media_type: String,
    /// The blob's size.
    pub size: u64,
    /// The uncompressed tar's digest (`rootfs.diff_ids`).
    pub diff_id: Digest,
    /// The snapshot key: the chain id of this layer and those below it.
    pub chain_id: Digest,
    /// Bytes of the uncompressed tar.
    pub unpacked_size: u64,
}

/// Everything the image commands need to know about an image without opening its blobs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageRecord {
    /// The config digest: the image id.
    pub id: Digest,
    pub config_size: u64,
    #[serde(default)]
    pub created: Option<String>,
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The platform manifest (what a push sends and a tag points at when there is no index).
    pub manifest: Digest,
    pub manifest_media_type: String,
    pub manifest_size: u64,
    /// Further blobs that belong to the image (an index it was chosen from).
    #[serde(default)]
    pub extra_blobs: Vec<Digest>,
    pub layers: Vec<LayerRecord>,
    /// Full references: `docker.io/library/busybox:latest`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Full digested references: `docker.io/library/busybox@sha256:…`.
    #[serde(default)]
    pub repo_digests: Vec<String>,
    /// Store repositories the image's manifest and blobs are linked into.
    #[serde(default)]
    pub linked: BTreeSet<String>,
    #[serde(default)]
    pub last_tag_time: Option<String>,
    /// The image this one was made from by `commit` (docker's `Parent`). Only this record
    /// makes images parent and child: an image whose layers merely begin another image's is
    /// an image of its own, which removing the other never touches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Digest>,
}

impl ImageRecord {
    /// Sum of the uncompressed layers: docker's SIZE.
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.unpacked_size).sum()
    }

    /// Every blob the image needs.
    pub fn blobs(&self) -> impl Iterator<Item = &Digest> {
        [&self.id, &self.manifest]
            .into_iter()
            .chain(self.extra_blobs.iter())
            .chain(self.layers.iter().map(|l| &l.digest))
    }

    /// Whether the image has a tag or a digested name.
    pub fn has_name(&self) -> bool {
        !self.tags.is_empty() || !self.repo_digests.is_empty()
    }

    /// `sha256:…` shortened as docker prints IMAGE ID: 12 hex digits.
    pub fn short_id(&self) -> &str {
        &self.id.hex()[..12]
    }
}

/// The store's hold (see `berth_storage::Store::hold`) on every blob the index's images need.
const IMAGES_HOLD: &str = "images";

/// The file `images/index.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    version: u32,
    images: BTreeMap<String, ImageRecord>,
}

/// The root directory the client uses when none is given.
pub fn default_root() -> PathBuf {
    if let Some(r) = std::env::var_os("BERTH_ROOT").filter(|r| !r.is_empty()) {
        return PathBuf::from(r);
    }
    // Root inside an ordinary user's namespace (rootless berth) keeps the user's store.
    if rustix::process::geteuid().is_root() && berth_runtime::userns::rootless().is_none() {
        return PathBuf::from("/var/lib/berth");
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("berth");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/tmp".into());
    home.join(".local/share/berth")
}

/// The store repository that holds a reference's images: host (with `:` as `_`) / path.
/// `localhost/PATH` is the store's own namespace: the repository `PATH` itself (when PATH
/// does not begin with a host), which is where `berth serve` over this root keeps what is
/// pushed to it. [`ref_of_store_repo`] is the inverse.
pub fn store_repo(r: &ImageRef) -> Result<RepoName> {
    let host = r.registry().to_ascii_lowercase().replace(':', "_");
    let path = r.repository().as_str();
    let first = path.split('/').next().unwrap_or_default();
    let name = if host == "localhost" && !is_store_host(first) {
        path.to_string()
    } else {
        format!("{host}/{path}")
    };
    name.parse()
        .map_err(|_| ImageError::UnsupportedHost(r.registry().to_string()))
}

/// The name under which the client shows a store repository's tag: the inverse of
/// [`store_repo`]. `docker.io/library/busybox` → `busybox`, `127.0.0.1_5000/a` →
/// `127.0.0.1:5000/a`, and a repository pushed through `berth serve`, `team/app` →
/// `localhost/team/app`.
pub fn ref_of_store_repo(repo: &str, tag: &str) -> Option<ImageRef> {
    let (first, rest) = repo.split_once('/').unwrap_or((repo, ""));
    let name = if is_store_host(first) && !rest.is_empty() {
        let host = match first.rsplit_once('_') {
            Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
                format!("{h}:{port}")
            }
            _ => first.to_string(),
        };
        format!("{host}/{rest}")
    } else {
        format!("localhost/{repo}")
    };
    ImageRef::parse(&format!("{name}:{tag}")).ok()
}

/// Whether a store repository's first component names a registry host (as [`store_repo`]
/// writes hosts): it has a `.`, is `localhost`, or is `host_port`.
fn is_store_host(first: &str) -> bool {
    first.contains('.')
        || first == "localhost"
        || first.rsplit_once('_').is_some_and(|(h, port)| {
            !h.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
        })
}

/// The local image store. Cheap to clone.
#[derive(Clone)]
pub struct ImageStore {
    root: PathBuf,
    store: Store,
}

/// An exclusive hold on the index, released on drop.
pub(crate) struct IndexLock {
    _file: std::fs::File,
}

/// How `rmi` removes.
#[derive(Debug, Clone)]
pub struct RemoveOptions {
    /// Remove an image by id even when it has names in several repositories.
    pub force: bool,
    /// Also remove the untagged parents that only the removed image used (docker's default;
    /// `--no-prune` turns it off).
    pub prune_parents: bool,
    /// Images that containers use, each with one such container's short id: removing one
    /// is refused, or with `force` it is only untagged (its content stays for the container).
    pub in_use: BTreeMap<Digest, String>,
}

impl Default for RemoveOptions {
    fn default() -> RemoveOptions {
        RemoveOptions {
            force: false,
            prune_parents: true,
            in_use: BTreeMap::new(),
        }
    }
}

/// An image event (`Actor.ID` a reference or an image id; add its `name`).
pub(crate) fn image_event(id: &str, action: &str) -> Event {
    Event::new(Kind::Image, action, id)
}

/// The intermediate images among `images`: docker's images that `images` hides without `-a`.
/// An image is one when it has no name (no tag, no digest) and is the recorded parent of
/// another image.
pub fn intermediates(images: &[ImageRecord]) -> BTreeSet<Digest> {
    let parents: BTreeSet<&Digest> = images.iter().filter_map(|i| i.parent.as_ref()).collect();
    images
        .iter()
        .filter(|i| !i.has_name() && parents.contains(&i.id))
        .map(|i| i.id.clone())
        .collect()
}

/// How `remove_one` treats the image it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    Plain,
    /// `rmi -f`: an id names several repositories, or a container's image loses its names.
    Forced,
    /// A parent pruned after its child: removed only if it is nameless, unused and childless.
    DanglingParent,
}

impl How {
    fn forced(force: bool) -> How {
        if force {
            How::Forced
        } else {
            How::Plain
        }
    }
}

/// What `rmi` did, line by line as docker prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    Untagged(String),
    Deleted(Digest),
}

/// A line of `history`.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    /// The image id for the top entry; `None` (docker's `<missing>`) for the others.
    pub id: Option<Digest>,
    pub created: Option<String>,
    pub created_by: String,
    pub size: u64,
    pub comment: String,
}

/// What `system df` reports about images.
#[derive(Debug, Clone, Default)]
pub struct DiskUsage {
    pub images: usize,
    pub active: usize,
    /// Unique layers, counted once however many images share them.
    pub size: u64,
    pub reclaimable: u64,
}

/// Writes `data` to `path` atomically (temp file + rename in the same directory).
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().expect("a file in a directory");
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_data()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(ImageError::Io {
            path: path.to_path_buf(),
            source: e,
        });
    }
    Ok(())
}

impl ImageStore {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: &Path) -> Result<ImageStore> {
        let backend = FsBackend::new(root, false).map_err(io_err(root))?;
        for d in ["images", "snapshots", "partial"] {
            std::fs::create_dir_all(root.join(d)).map_err(io_err(root))?;
        }
        spread_subdirs(&root.join("snapshots"));
        Ok(ImageStore {
            root: root.to_path_buf(),
            store: Store::new(Arc::new(backend)),
        })
    }

    /// The events journal under the root, which every image operation writes to.
    pub fn journal(&self) -> Journal {
        Journal::open(&self.root)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A new temporary file under `partial/` for a blob written on this host (a layer, a
    /// layer compressed for a push); [`ImageStore::publish_blob`] moves it into the store.
    pub(crate) fn partial_file(&self, what: &str) -> std::io::Result<(PathBuf, std::fs::File)> {
        let partial = self.root.join("partial");
        std::fs::create_dir_all(&partial)?;
        let tmp = partial.join(format!("{what}-{}.tmp", uuid::Uuid::new_v4().simple()));
        let file = std::fs::File::create(&tmp)?;
        Ok((tmp, file))
    }

    /// Moves a finished temporary file into `blobs/` as `digest`, which the caller computed
    /// while writing it (so nothing unverified becomes visible); a blob already there wins
    /// and the file goes.
    pub(crate) fn publish_blob(&self, tmp: &Path, digest: &Digest) -> std::io::Result<()> {
        let dest = self
            .store
            .blobs
            .local_path(digest)
            .expect("the client's store is on the local disk");
        if dest.exists() {
            return std::fs::remove_file(tmp);
        }
        std::fs::create_dir_all(dest.parent().expect("a blob path has a parent"))?;
        std::fs::rename(tmp, &dest)
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("images/index.json")
    }

    /// A layer's snapshot directory.
    pub fn snapshot_dir(&self, chain_id: &Digest) -> PathBuf {
        self.root.join("snapshots").join(chain_id.hex())
    }

    pub(crate) fn lock(&self) -> Result<IndexLock> {
        self.lock_file(self.root.join("images/lock"))
    }

    /// An exclusive flock on `path` (created when missing), released on drop.
    pub(crate) fn lock_file(&self, path: PathBuf) -> Result<IndexLock> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive).map_err(|e| {
            ImageError::Io {
                path: path.clone(),
                source: e.into(),
            }
        })?;
        Ok(IndexLock { _file: file })
    }

    fn read_index(&self) -> Result<Index> {
        let path = self.index_path();
        match std::fs::read(&path) {
            Ok(data) => serde_json::from_slice(&data)
                .map_err(|e| ImageError::Invalid(format!("{} is corrupt: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index {
                version: 1,
                images: BTreeMap::new(),
            }),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Writes the index, and the store's hold on what its images need (`holds/images`, which
    /// every collection reads, the registry's too): before the index, the hold covers the
    /// old images and the new; after it, the new only. So at no moment does an image in the
    /// index lack a hold, and a removed image's blobs are free once the index has gone.
    async fn write_index(&self, _lock: &IndexLock, index: &Index) -> Result<()> {
        let new: BTreeSet<Digest> = index
            .images
            .values()
            .flat_map(|r| r.blobs().cloned())
            .collect();
        let mut both = new.clone();
        if let Ok(old) = self.read_index() {
            both.extend(old.images.values().flat_map(|r| r.blobs().cloned()));
        }
        self.store.hold(IMAGES_HOLD, &both).await?;
        let data = serde_json::to_vec(index).expect("the index serialises");
        write_atomic(&self.index_path(), &data)?;
        if both.len() != new.len() {
            self.store.hold(IMAGES_HOLD, &new).await?;
        }
        Ok(())
    }

    /// Every image, newest first (docker's order).
    pub fn list(&self) -> Result<Vec<ImageRecord>> {
        let mut v: Vec<ImageRecord> = self.read_index()?.images.into_values().collect();
        v.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        Ok(v)
    }

    /// Finds an image by name (`busybox`, `busybox:1`, `x@sha256:…`), full id or short id.
    pub fn resolve(&self, s: &str) -> Result<ImageRecord> {
        let index = self.read_index()?;
        find(&index, s).cloned()
    }

    /// Reads a blob of the store whole (a config, a manifest).
    pub async fn read_blob(&self, digest: &Digest) -> Result<bytes::Bytes> {
        Ok(self.store.blobs.read(digest).await?)
    }

    /// The image's config, parsed, read without an async runtime (the `run` path).
    pub fn config_sync(&self, image: &ImageRecord) -> Result<serde_json::Value> {
        let path = self
            .store
            .blobs
            .local_path(&image.id)
            .expect("the client's store is on the local disk");
        let data = std::fs::read(&path).map_err(io_err(&path))?;
        serde_json::from_slice(&data)
            .map_err(|e| ImageError::Invalid(format!("image config {} is not JSON: {e}", image.id)))
    }

    /// The image's config, parsed.
    pub async fn config(&self, image: &ImageRecord) -> Result<serde_json::Value> {
        let data = self.read_blob(&image.id).await?;
        serde_json::from_slice(&data)
            .map_err(|e| ImageError::Invalid(format!("image config {} is not JSON: {e}", image.id)))
    }

    /// Adds a name to an image (`tag SOURCE TARGET`).
    pub async fn tag(&self, source: &str, target: &str) -> Result<()> {
        let target = ImageRef::parse(target)?;
        if target.digest().is_some() {
            return Err(ImageError::Invalid(format!(
                "refusing to create a tag with a digest reference: {}",
                target.familiar()
            )));
        }
        let lock = self.lock()?;
        let mut index = self.read_index()?;
        let id = find(&index, source)?.id.clone();
        self.add_tag(&lock, &mut index, &id, &target).await?;
        self.write_index(&lock, &index).await?;
        self.journal()
            .record(image_event(id.as_str(), "tag").attr("name", target.familiar()));
        Ok(())
    }

    /// Points `target` (a tagged reference) at image `id`: in the store and in the index,
    /// taking the name away from any other image.
    async fn add_tag(
        &self,
        _lock: &IndexLock,
        index: &mut Index,
        id: &Digest,
        target: &ImageRef,
    ) -> Result<()> {
        let repo = store_repo(target)?;
        let tag = target.tag().expect("a tagged reference").clone();
        let record = index
            .images
            .get(id.as_str())
            .expect("the image is in the index")
            .clone();
        self.link_image(&record, &repo).await?;
        self.store
            .repos
            .set_tag(&repo, &tag, &record.manifest)
            .await?;
        let full = target.to_string();
        for r in index.images.values_mut() {
            r.tags.retain(|t| t != &full);
        }
        let r = index.images.get_mut(id.as_str()).expect("present");
        r.tags.push(full);
        r.tags.sort();
        r.linked.insert(repo.to_string());
        r.last_tag_time = Some(now_rfc3339());
        Ok(())
    }

    /// Links an image's manifest and blobs into a store repository.
    async fn link_image(&self, record: &ImageRecord, repo: &RepoName) -> Result<()> {
        for b in record.layers.iter().map(|l| &l.digest).chain([&record.id]) {
            self.store.repos.link_blob(repo, b).await?;
        }
        let body = self.read_blob(&record.manifest).await?;
        self.store
            .repos
            .link_manifest(repo, &record.manifest, &record.manifest_media_type, &body)
            .await?;
        Ok(())
    }

    /// Removes an image name, or the image itself (`rmi`); then, unless told not to, its
    /// recorded parents (docker's `Parent`, set by `commit`) one after another while each is
    /// nameless, unused by containers and the parent of nothing else, as docker does. Images
    /// that merely share layers with it are independent and stay.
    pub async fn remove(&self, s: &str, options: RemoveOptions) -> Result<Vec<Removal>> {
        let mut parent = self.resolve(s)?.parent;
        let mut out = self
            .remove_one(s, How::forced(options.force), &options.in_use)
            .await?;
        if !options.prune_parents || !matches!(out.last(), Some(Removal::Deleted(_))) {
            return Ok(out);
        }
        while let Some(p) = parent.take() {
            let Ok(record) = self.resolve(p.as_str()) else {
                break;
            };
            let removed = self
                .remove_one(p.as_str(), How::DanglingParent, &options.in_use)
                .await?;
            if !matches!(removed.last(), Some(Removal::Deleted(_))) {
                break;
            }
            out.extend(removed);
            parent = record.parent;
        }
        Ok(out)
    }

    async fn remove_one(
        &self,
        s: &str,
        how: How,
        in_use: &BTreeMap<Digest, String>,
    ) -> Result<Vec<Removal>> {
        let id = find(&self.read_index()?, s)?.id.clone();
        let removed = self.remove_one_unrecorded(s, how, in_use).await?;
        // docker's events: the image id for each name taken away, then the deletion.
        let journal = self.journal();
        for r in &removed {
            let action = match r {
                Removal::Untagged(_) => "untag",
                Removal::Deleted(_) => "delete",
            };
            journal.record(image_event(id.as_str(), action).attr("name", id.as_str()));
        }
        Ok(removed)
    }

    async fn remove_one_unrecorded(
        &self,
        s: &str,
        how: How,
        in_use: &BTreeMap<Digest, String>,
    ) -> Result<Vec<Removal>> {
        let lock = self.lock()?;
        let mut index = self.read_index()?;
        let record = find(&index, s)?.clone();
        let user = in_use.get(&record.id);
        let has_children = index
            .images
            .values()
            .any(|i| i.parent.as_ref() == Some(&record.id));
        // Checked under the lock: a parent named or used meanwhile stays.
        if how == How::DanglingParent && (record.has_name() || has_children || user.is_some()) {
            return Ok(Vec::new());
        }
        let force = how == How::Forced;
        let mut out = Vec::new();
        let by_name = ImageRef::parse(s)
            .ok()
            .filter(|r| !looks_like_id(s, &record) && index_has_name(&record, r));
        // Removing the last name of an image a container uses deletes nothing.
        let last_name = match &by_name {
            None => true,
            // A tag goes: the image goes with its last tag. A digest goes: only when no tag.
            Some(n) => record.tags.len() <= usize::from(n.digest().is_none()),
        };
        if let (Some(container), true) = (user, last_name) {
            if !force {
                return Err(ImageError::InUse {
                    reference: s.to_string(),
                    container: container.clone(),
                    id: record.short_id().to_string(),
                });
            }
        }
        let r = index.images.get_mut(record.id.as_str()).expect("present");
        match by_name {
            Some(name) => {
                let full = name.to_string();
                if let Some(d) = name.digest() {
                    let digested = format!("{}@{}", name.name(), d);
                    r.repo_digests.retain(|x| x != &digested);
                } else {
                    r.tags.retain(|t| t != &full);
                    if let (Ok(repo), Some(tag)) = (store_repo(&name), name.tag()) {
                        self.store.repos.delete_tag(&repo, tag).await?;
                    }
                }
                out.push(Removal::Untagged(name.familiar()));
                // The last tag of a repository takes that repository's digests with it.
                if !r.tags.is_empty() {
                    self.write_index(&lock, &index).await?;
                    return Ok(out);
                }
                for d in std::mem::take(&mut r.repo_digests) {
                    out.push(Removal::Untagged(familiar_of(&d)));
                }
            }
            None => {
                if has_children {
                    return Err(ImageError::HasChildren {
                        id: record.short_id().to_string(),
                    });
                }
                let repos: BTreeSet<String> = r
                    .tags
                    .iter()
                    .filter_map(|t| ImageRef::parse(t).ok().map(|r| r.name()))
                    .collect();
                if repos.len() > 1 && !force {
                    return Err(ImageError::Conflict {
                        id: record.short_id().to_string(),
                    });
                }
                for t in std::mem::take(&mut r.tags) {
                    if let Ok(name) = ImageRef::parse(&t) {
                        if let (Ok(repo), Some(tag)) = (store_repo(&name), name.tag()) {
                            self.store.repos.delete_tag(&repo, tag).await?;
                        }
                        out.push(Removal::Untagged(name.familiar()));
                    }
                }
                for d in std::mem::take(&mut r.repo_digests) {
                    out.push(Removal::Untagged(familiar_of(&d)));
                }
            }
        }
        if user.is_some() || has_children {
            // Forced: the names go, the image stays (dangling) for its container; a parent
            // loses its last name and stays for its children, hidden as docker hides it.
            self.write_index(&lock, &index).await?;
            return Ok(out);
        }
        let record = index.images.remove(record.id.as_str()).expect("present");
        // Index first: if deleting content fails half way, nothing points at what is gone.
        self.write_index(&lock, &index).await?;
        self.delete_unused(&index, &record).await?;
        out.push(Removal::Deleted(record.id.clone()));
        Ok(out)
    }

    /// Deletes what `gone` used and no image in `index` uses: links, blobs, snapshots.
    async fn delete_unused(&self, index: &Index, gone: &ImageRecord) -> Result<()> {
        // The build cache holds layers too (see `cache`).
        let (cache_blobs, cache_chains) = self.cache_holds();
        let used_blobs: BTreeSet<&Digest> = index
            .images
            .values()
            .flat_map(|r| r.blobs())
            .chain(&cache_blobs)
            .collect();
        let used_chains: BTreeSet<&Digest> = index
            .images
            .values()
            .flat_map(|r| r.layers.iter().map(|l| &l.chain_id))
            .chain(&cache_chains)
            .collect();
        for repo in &gone.linked {
            let Ok(repo) = repo.parse::<RepoName>() else {
                continue;
            };
            let users: Vec<&ImageRecord> = index
                .images
                .values()
                .filter(|r| r.linked.contains(repo.as_str()))
                .collect();
            for b in gone.blobs() {
                if !users.iter().any(|u| u.blobs().any(|x| x == b)) {
                    self.store.repos.unlink_blob(&repo, b).await?;
                    self.store.repos.unlink_manifest(&repo, b).await?;
                    // A push linked the layer's gzip form here too.
                    if let Some(gz) = self.gzip_note(b) {
                        if !users.iter().any(|u| u.blobs().any(|x| x == &gz)) {
                            self.store.repos.unlink_blob(&repo, &gz).await?;
                        }
                    }
                }
            }
        }
        let candidates: BTreeSet<Digest> = gone
            .blobs()
            .filter(|b| !used_blobs.contains(b))
            .cloned()
            .collect();
        self.free_blobs(candidates).await?;
        for l in &gone.layers {
            if !used_chains.contains(&l.chain_id) {
                let dir = self.snapshot_dir(&l.chain_id);
                remove_tree(&dir)?;
                let _ = std::fs::remove_file(dir.with_extension("json"));
            }
        }
        Ok(())
    }

    /// Deletes those of `candidates` that nothing at all needs any more: an image (the hold
    /// written with the index), the build cache (its hold), a registry repository over this
    /// root, a collection's rules. The store's collector decides; when another collection
    /// runs (a registry over this root), what is left is freed by that one or the next.
    /// The gzip blobs pushes made of plain tar candidates go with them when nothing else
    /// needs them, and so do their notes (`images/gzip/`).
    pub(crate) async fn free_blobs(&self, mut candidates: BTreeSet<Digest>) -> Result<()> {
        if candidates.is_empty() {
            return Ok(());
        }
        let gzipped: Vec<Digest> = candidates
            .iter()
            .filter_map(|b| self.gzip_note(b))
            .collect();
        candidates.extend(gzipped);
        let options = gc::Options {
            scope: gc::Scope::Only(candidates),
            wait: Some(std::time::Duration::from_secs(60)),
            ..gc::Options::default()
        };
        let done = match gc::collect(&self.store, &gc::Policy::default(), &options).await {
            Ok(_) => Ok(()),
            Err(StoreError::CollectionBusy(holder)) => {
                tracing::info!("a collection by {holder} is running: it frees the rest");
                Ok(())
            }
            Err(e) => Err(e.into()),
        };
        self.prune_gzip_notes();
        done
    }

    /// Removes dangling images (no tags), or with `all` every image, except those in
    /// `in_use` and those `admit` refuses (a prune's filters); returns what went and the
    /// bytes reclaimed.
    pub async fn prune(
        &self,
        all: bool,
        in_use: &BTreeMap<Digest, String>,
        admit: impl Fn(&ImageRecord) -> bool,
    ) -> Result<(Vec<Removal>, u64)> {
        let before = self.disk_usage(in_use)?.size;
        let mut out = Vec::new();
        for image in self.list()? {
            if (all || image.tags.is_empty()) && !in_use.contains_key(&image.id) && admit(&image) {
                let options = RemoveOptions {
                    force: true,
                    prune_parents: true,
                    in_use: in_use.clone(),
                };
                match self.remove(image.id.as_str(), options).await {
                    Ok(removed) => out.extend(removed),
                    // Gone with a child pruned before it, or the parent of an image that
                    // stays: docker's prune passes over these too.
                    Err(ImageError::NotFound(_) | ImageError::HasChildren { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let after = self.disk_usage(in_use)?.size;
        let reclaimed = before.saturating_sub(after);
        self.journal().record(crate::events::Event::prune(
            crate::events::Kind::Image,
            reclaimed,
        ));
        Ok((out, reclaimed))
    }

    /// What `system df` says about images.
    /// `in_use` are the images containers use: active, and not reclaimable.
    pub fn disk_usage(&self, in_use: &BTreeMap<Digest, String>) -> Result<DiskUsage> {
        let images = self.list()?;
        let mut seen = BTreeSet::new();
        let mut size = 0;
        for i in &images {
            for l in &i.layers {
                if seen.insert(&l.chain_id) {
                    size += l.unpacked_size;
                }
            }
        }
        let active: Vec<&ImageRecord> = images
            .iter()
            .filter(|i| in_use.contains_key(&i.id))
            .collect();
        let kept: BTreeSet<&Digest> = active
            .iter()
            .flat_map(|i| i.layers.iter().map(|l| &l.chain_id))
            .collect();
        let mut seen = BTreeSet::new();
        let mut kept_size = 0;
        for i in &active {
            for l in &i.layers {
                if kept.contains(&l.chain_id) && seen.insert(&l.chain_id) {
                    kept_size += l.unpacked_size;
                }
            }
        }
        Ok(DiskUsage {
            images: images.len(),
            active: active.len(),
            size,
            reclaimable: size - kept_size,
        })
    }

    /// The image's history, newest first, as `history` prints it.
    pub async fn history(&self, image: &ImageRecord) -> Result<Vec<HistoryEntry>> {
        #[derive(Deserialize, Default)]
        struct H {
            #[serde(default)]
            created: Option<String>,
            #[serde(default)]
            created_by: Option<String>,
            #[serde(default)]
            comment: Option<String>,
            #[serde(default)]
            empty_layer: bool,
        }
        let config = self.config(image).await?;
        let hist: Vec<H> = config
            .get("history")
            .and_then(|h| serde_json::from_value(h.clone()).ok())
            .unwrap_or_default();
        let mut layers = image.layers.iter();
        let mut out: Vec<HistoryEntry> = Vec::new();
        if hist.is_empty() {
            for l in &image.layers {
                out.push(HistoryEntry {
                    id: None,
                    created: None,
                    created_by: String::new(),
                    size: l.unpacked_size,
                    comment: String::new(),
                });
            }
        }
        for h in hist {
            let size = if h.empty_layer {
                0
            } else {
                layers.next().map(|l| l.unpacked_size).unwrap_or(0)
            };
            out.push(HistoryEntry {
                id: None,
                created: h.created,
                created_by: h.created_by.unwrap_or_default(),
                size,
                comment: h.comment.unwrap_or_default(),
            });
        }
        out.reverse();
        // docker's IDs down the recorded parents that are still here; `<missing>` below.
        let index = self.read_index()?;
        let mut id = Some(image.id.clone());
        for row in &mut out {
            let Some(this) = id.take() else { break };
            id = index
                .images
                .get(this.as_str())
                .and_then(|r| r.parent.clone())
                .filter(|p| index.images.contains_key(p.as_str()));
            row.id = Some(this);
        }
        Ok(out)
    }

    /// `image inspect` in docker's JSON shape.
    pub async fn inspect(&self, image: &ImageRecord) -> Result<serde_json::Value> {
        let config = self.config(image).await?;
        let get = |k: &str| config.get(k).cloned().unwrap_or(serde_json::Value::Null);
        let str_or_empty = |k: &str| {
            config
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        let comment = config
            .get("history")
            .and_then(|h| h.as_array())
            .and_then(|h| h.last())
            .and_then(|h| h.get("comment"))
            .and_then(|c| c.as_str())
            .unwrap_or("")
            .to_string();
        let lower: Vec<String> = image
            .layers
            .iter()
            .rev()
            .map(|l| self.snapshot_dir(&l.chain_id).display().to_string())
            .collect();
        let mut v = serde_json::json!({
            "Id": image.id.as_str(),
            "RepoTags": image.tags.iter().map(|t| familiar_of(t)).collect::<Vec<_>>(),
            "RepoDigests": image.repo_digests.iter().map(|t| familiar_of(t)).collect::<Vec<_>>(),
            "Parent": image.parent.as_ref().map(|p| p.as_str()).unwrap_or(""),
            "Comment": comment,
            "Created": str_or_empty("created"),
            "DockerVersion": str_or_empty("docker_version"),
            "Author": str_or_empty("author"),
            "Config": get("config"),
            "Architecture": image.architecture,
            "Os": image.os,
            "Size": image.size(),
            "GraphDriver": {
                "Data": { "LowerDir": lower.join(":") },
                "Name": "overlay",
            },
            "RootFS": {
                "Type": "layers",
                "Layers": image.layers.iter().map(|l| l.diff_id.as_str()).collect::<Vec<_>>(),
            },
            "Metadata": { "LastTagTime": image.last_tag_time.clone().unwrap_or_else(|| "0001-01-01T00:00:00Z".into()) },
        });
        if let Some(variant) = &image.variant {
            v["Variant"] = serde_json::Value::String(variant.clone());
        }
        Ok(v)
    }

    /// Records a complete image (content already in the store) and gives it `names`.
    pub(crate) async fn commit_image(
        &self,
        mut record: ImageRecord,
        names: &[ImageRef],
        repo_digest: Option<(&ImageRef, &Digest)>,
    ) -> Result<bool> {
        let lock = self.lock()?;
        let mut index = self.read_index()?;
        let existed = index.images.get(record.id.as_str()).cloned();
        let mut changed = existed.is_none();
        if let Some(old) = &existed {
            record.parent = record.parent.take().or_else(|| old.parent.clone());
            record.tags = old.tags.clone();
            record.repo_digests = old.repo_digests.clone();
            record.linked = old.linked.clone();
            record.last_tag_time = old.last_tag_time.clone();
            for b in &old.extra_blobs {
                if !record.extra_blobs.contains(b) {
                    record.extra_blobs.push(b.clone());
                }
            }
        }
        if let Some((name, digest)) = repo_digest {
            let full = format!("{}@{}", name.name(), digest);
            if !record.repo_digests.contains(&full) {
                record.repo_digests.push(full);
            }
            let repo = store_repo(name)?;
            // An index the image was chosen from is a manifest of the repository too.
            if digest != &record.manifest {
                let media = self.manifest_media_type(digest).await;
                let body = self.read_blob(digest).await?;
                // Its other platforms' manifests are not pulled: missing is expected.
                self.store
                    .repos
                    .link_manifest(&repo, digest, &media, &body)
                    .await?;
            }
        }
        let id = record.id.clone();
        index.images.insert(id.to_string(), record);
        for name in names {
            let full = name.to_string();
            changed |= !index.images[id.as_str()].tags.contains(&full);
            self.add_tag(&lock, &mut index, &id, name).await?;
            // A tag pointing at an index keeps pointing at the index, as the registry had it.
            if let (Some((rn, top)), Some(tag)) = (repo_digest, name.tag()) {
                if rn.name() == name.name() && top != &index.images[id.as_str()].manifest {
                    self.store
                        .repos
                        .set_tag(&store_repo(name)?, tag, top)
                        .await?;
                }
            }
        }
        if let Some((name, _)) = repo_digest {
            let repo = store_repo(name)?;
            let r = index.images.get(id.as_str()).expect("present").clone();
            self.link_image(&r, &repo).await?;
            index
                .images
                .get_mut(id.as_str())
                .expect("present")
                .linked
                .insert(repo.to_string());
        }
        self.write_index(&lock, &index).await?;
        Ok(changed)
    }

    async fn manifest_media_type(&self, digest: &Digest) -> String {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct M {
            #[serde(default)]
            media_type: Option<String>,
        }
        self.read_blob(digest)
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<M>(&b).ok())
            .and_then(|m| m.media_type)
            .unwrap_or_else(|| MEDIA_DOCKER_MANIFEST.to_string())
    }
}

fn looks_like_id(s: &str, record: &ImageRecord) -> bool {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    !hex.is_empty()
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
        && record.id.hex().starts_with(hex)
}

fn index_has_name(record: &ImageRecord, r: &ImageRef) -> bool {
    let full = r.to_string();
    record.tags.contains(&full) || record.repo_digests.contains(&full) || {
        // `name@digest` written with a tag too: match on name and digest.
        r.digest()
            .is_some_and(|d| record.repo_digests.contains(&format!("{}@{}", r.name(), d)))
    }
}

/// Finds an image in the index: by name first, then by (short or full) id, as docker does.
fn find<'a>(index: &'a Index, s: &str) -> Result<&'a ImageRecord> {
    if let Ok(r) = ImageRef::parse(s) {
        let full = r.to_string();
        if let Some(d) = r.digest() {
            let digested = format!("{}@{}", r.name(), d);
            if let Some(rec) = index.images.values().find(|i| {
                i.repo_digests.contains(&digested)
                    || (i.manifest == *d
                        && i.linked.contains(
                            store_repo(&r)
                                .map(|x| x.to_string())
                                .unwrap_or_default()
                                .as_str(),
                        ))
            }) {
                return Ok(rec);
            }
        } else if let Some(rec) = index.images.values().find(|i| i.tags.contains(&full)) {
            return Ok(rec);
        }
    }
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    if !hex.is_empty()
        && hex.len() <= 64
        && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        let mut hits = index
            .images
            .values()
            .filter(|i| i.id.hex().starts_with(hex));
        if let Some(first) = hits.next() {
            if hits.next().is_none() {
                return Ok(first);
            }
            return Err(ImageError::Invalid(format!(
                "image id {s:?} is ambiguous: more than one image starts with it"
            )));
        }
    }
    Err(ImageError::NotFound(s.to_string()))
}

/// A stored full reference shortened as docker prints it.
pub fn familiar_of(full: &str) -> String {
    ImageRef::parse(full)
        .map(|r| r.familiar())
        .unwrap_or_else(|_| full.to_string())
}

pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Marks `dir` as the top of unrelated directory trees for ext4's Orlov allocator (`chattr
/// +T`): each directory made in it (a snapshot, a container) gets its inodes from a block
/// group of its own instead of its parent's. Without it, a layer unpacked just after another
/// was deleted lands in the group those inodes were freed in, and ext4 without a journal
/// skips recently freed inodes one at a time on every create (`recently_deleted`): 2,000
/// files took 2–3 s instead of 0.3 s. A file system without the flag (tmpfs, xfs, overlay)
/// refuses it, which changes nothing.
pub(crate) fn spread_subdirs(dir: &Path) {
    use rustix::fs::{ioctl_getflags, ioctl_setflags, IFlags, Mode, OFlags};
    let Ok(fd) = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    if let Ok(flags) = ioctl_getflags(&fd) {
        if !flags.contains(IFlags::TOPDIR) {
            let _ = ioctl_setflags(&fd, flags | IFlags::TOPDIR);
        }
    }
}

/// Writes a snapshot's `<chain id>.json` (its diff id and unpacked size) beside it.
pub(crate) fn write_snapshot_meta(snapshot: &Path, meta: &serde_json::Value) -> Result<()> {
    write_atomic(
        &snapshot.with_extension("json"),
        &serde_json::to_vec(meta).expect("serialises"),
    )
}

/// Removes a directory tree, first moving it aside so that a half-removed tree is never
/// seen under its real name.
pub(crate) fn remove_tree(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let trash = dir.with_file_name(format!(".trash-{}", uuid::Uuid::new_v4().simple()));
    std::fs::rename(dir, &trash).map_err(io_err(dir))?;
    std::fs::remove_dir_all(&trash).map_err(io_err(&trash))
}

/// The chain ids of a stack of diff ids: `chain(0) = diff(0)`,
/// `chain(n) = sha256(chain(n-1) + " " + diff(n))`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = chain_id(out.last(), d);
        out.push(next);
    }
    out
}

/// One layer's chain id: `diff_id` on top of its parent's chain id.
pub fn chain_id(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
    match parent {
        None => diff_id.clone(),
        Some(p) => Digest::sha256_of(format!("{p} {diff_id}").as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `snapshots/` is marked as the top of unrelated trees where the file system keeps such
    /// flags (ext4: what CI and this project's hosts use for the store); elsewhere (tmpfs)
    /// opening the store works the same.
    #[test]
    fn snapshots_spread_where_the_file_system_can() {
        use rustix::fs::{ioctl_getflags, IFlags, Mode, OFlags};
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let flags = |p: &Path| {
            let fd =
                rustix::fs::open(p, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
            ioctl_getflags(&fd).ok()
        };
        let is_ext4 = rustix::fs::statfs(dir.path()).unwrap().f_type == 0xEF53;
        match flags(&store.root().join("snapshots")) {
            Some(f) => assert_eq!(f.contains(IFlags::TOPDIR), is_ext4, "{f:?}"),
            None => assert!(!is_ext4, "ext4 keeps inode flags"),
        }
        // Opening it again changes nothing.
        ImageStore::open(dir.path()).unwrap();
    }

    #[test]
    fn repo_names_for_hosts() {
        let r = ImageRef::parse("localhost:5000/a/b:1").unwrap();
        assert_eq!(store_repo(&r).unwrap().as_str(), "localhost_5000/a/b");
        let r = ImageRef::parse("busybox").unwrap();
        assert_eq!(
            store_repo(&r).unwrap().as_str(),
            "docker.io/library/busybox"
        );
        // localhost/ is the store's own namespace; a host after it stays a component.
        let r = ImageRef::parse("localhost/team/app").unwrap();
        assert_eq!(store_repo(&r).unwrap().as_str(), "team/app");
        let r = ImageRef::parse("localhost/a.b/c").unwrap();
        assert_eq!(store_repo(&r).unwrap().as_str(), "localhost/a.b/c");
        // And back.
        for (repo, name) in [
            ("docker.io/library/busybox", "docker.io/library/busybox:1"),
            ("127.0.0.1_5000/a/b", "127.0.0.1:5000/a/b:1"),
            ("localhost_5000/a", "localhost:5000/a:1"),
            ("team/app", "localhost/team/app:1"),
            ("app", "localhost/app:1"),
            ("my_team/app", "localhost/my_team/app:1"),
            ("localhost/a.b/c", "localhost/a.b/c:1"),
        ] {
            let r = ref_of_store_repo(repo, "1").unwrap();
            assert_eq!(r.to_string(), name);
            assert_eq!(store_repo(&r).unwrap().as_str(), repo);
        }
    }

    #[test]
    fn chain() {
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        let c = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(c[0], a);
        assert_eq!(c[1], Digest::sha256_of(format!("{a} {b}").as_bytes()));
    }
}
