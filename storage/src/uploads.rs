//! Upload sessions: a blob that arrives in chunks, possibly across process restarts.
//!
//! A session is `uploads/<id>/state` (JSON: repository, offset, the chunks so far) plus one
//! object per chunk, `uploads/<id>/chunks/<offset>`. All of it lives in the backend, so a
//! session survives a restart and can be continued by another process over the same bucket.
//! Each chunk is hashed as it arrives; the running hash is kept in memory only as a shortcut:
//! a process that lacks it (after a restart, or on another node) re-reads the chunks.
//! Completing a one-chunk session (what docker does) moves the chunk into place without
//! copying it; several chunks are streamed into the blob store, verified on the way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, BackendError};
use crate::blobs::{blob_key, BlobStore};
use crate::digest::{Algorithm, Digest, Hasher, Mismatch};
use crate::error::{Result, StoreError};
use crate::name::RepoName;

/// What a client may know about a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadStatus {
    pub id: String,
    pub repository: String,
    /// Bytes received so far; the next chunk must start here.
    pub offset: u64,
    pub started: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionState {
    repository: String,
    offset: u64,
    /// Seconds since the epoch.
    started: u64,
    chunks: Vec<Chunk>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Chunk {
    offset: u64,
    size: u64,
}

/// A session whose blob is in the store, still open: [`Uploads::close`] ends it.
pub(crate) struct Finished {
    id: String,
    state: SessionState,
    size: u64,
}

/// The running hash of a session, valid at `offset`.
struct Partial {
    offset: u64,
    hasher: Hasher,
}

#[derive(Clone)]
pub struct Uploads {
    backend: Arc<dyn Backend>,
    blobs: BlobStore,
    partial: Arc<Mutex<HashMap<String, Partial>>>,
}

fn state_key(id: &str) -> String {
    format!("uploads/{id}/state")
}

fn chunk_key(id: &str, offset: u64) -> String {
    format!("uploads/{id}/chunks/{offset:020}")
}

/// Upload ids arrive in URLs: only a canonical UUID may become part of a key.
fn check_id(id: &str) -> Result<()> {
    match uuid::Uuid::try_parse(id) {
        Ok(u) if u.hyphenated().to_string() == id => Ok(()),
        _ => Err(StoreError::UploadUnknown(id.to_string())),
    }
}

impl Uploads {
    pub fn new(backend: Arc<dyn Backend>, blobs: BlobStore) -> Uploads {
        Uploads {
            backend,
            blobs,
            partial: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Opens a new, empty session for a repository.
    pub async fn start(&self, repository: &RepoName) -> Result<UploadStatus> {
        let id = uuid::Uuid::new_v4().hyphenated().to_string();
        let state = SessionState {
            repository: repository.to_string(),
            offset: 0,
            started: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            chunks: Vec::new(),
        };
        self.save(&id, &state).await?;
        self.partial.lock().unwrap().insert(
            id.clone(),
            Partial {
                offset: 0,
                hasher: Hasher::new(Algorithm::Sha256),
            },
        );
        Ok(status(&id, &state))
    }

    pub async fn status(&self, id: &str) -> Result<UploadStatus> {
        let state = self.load(id).await?;
        Ok(status(id, &state))
    }

    /// Loads session `id` for `repository`: another repository's session is unknown to it,
    /// as a registry must answer (the `_in` methods check this with the one read they need).
    async fn load_in(&self, repository: Option<&RepoName>, id: &str) -> Result<SessionState> {
        let state = self.load(id).await?;
        if repository.is_some_and(|r| state.repository != r.as_str()) {
            return Err(StoreError::UploadUnknown(id.to_string()));
        }
        Ok(state)
    }

    /// [`Uploads::status`] of a session of `repository`.
    pub async fn status_in(&self, repository: &RepoName, id: &str) -> Result<UploadStatus> {
        let state = self.load_in(Some(repository), id).await?;
        Ok(status(id, &state))
    }

    /// [`Uploads::append`] to a session of `repository`.
    pub async fn append_in<S>(
        &self,
        repository: &RepoName,
        id: &str,
        offset: Option<u64>,
        declared: Option<u64>,
        stream: S,
    ) -> Result<UploadStatus>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send,
    {
        self.append_to(Some(repository), id, offset, declared, stream)
            .await
    }

    /// A last chunk (possibly empty), then the blob assembled and verified, for a session of
    /// `repository`, with one read of the session's state: a registry's closing PUT. The
    /// session stays until [`Uploads::close`]: whatever must happen once the blob is there
    /// (linking it to the repository) happens before, so a closing PUT killed at any point
    /// can be sent again and finishes the job (see [`crate::Store::finish_upload`]).
    pub(crate) async fn finish_in<S>(
        &self,
        repository: &RepoName,
        id: &str,
        offset: Option<u64>,
        declared: Option<u64>,
        stream: S,
        expected: &Digest,
    ) -> Result<Finished>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send,
    {
        let state = self.load_in(Some(repository), id).await?;
        let state = self
            .append_loaded(id, state, offset, declared, stream)
            .await?;
        let size = self.assemble_loaded(id, &state, expected).await?;
        Ok(Finished {
            id: id.to_string(),
            state,
            size,
        })
    }

    /// Removes a finished session; returns the blob's size.
    pub(crate) async fn close(&self, finished: Finished) -> Result<u64> {
        self.remove(&finished.id, &finished.state).await?;
        Ok(finished.size)
    }

    /// [`Uploads::cancel`] of a session of `repository`.
    pub async fn cancel_in(&self, repository: &RepoName, id: &str) -> Result<()> {
        let state = self.load_in(Some(repository), id).await?;
        self.remove(id, &state).await
    }

    /// Appends a chunk. `offset`, when given, must be where the session stands; `declared`, when
    /// given, is the chunk's length, and a stream of another length is refused. A refused or
    /// failed chunk leaves the session as it was.
    pub async fn append<S>(
        &self,
        id: &str,
        offset: Option<u64>,
        declared: Option<u64>,
        stream: S,
    ) -> Result<UploadStatus>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send,
    {
        self.append_to(None, id, offset, declared, stream).await
    }

    async fn append_to<S>(
        &self,
        repository: Option<&RepoName>,
        id: &str,
        offset: Option<u64>,
        declared: Option<u64>,
        stream: S,
    ) -> Result<UploadStatus>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send,
    {
        let state = self.load_in(repository, id).await?;
        let state = self
            .append_loaded(id, state, offset, declared, stream)
            .await?;
        Ok(status(id, &state))
    }

    /// `append` on a state already read; returns the state after it.
    async fn append_loaded<S>(
        &self,
        id: &str,
        mut state: SessionState,
        offset: Option<u64>,
        declared: Option<u64>,
        stream: S,
    ) -> Result<SessionState>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send,
    {
        if let Some(got) = offset {
            if got != state.offset {
                return Err(StoreError::UploadOffset {
                    id: id.to_string(),
                    expected: state.offset,
                    got,
                });
            }
        }
        let start = state.offset;
        // Take the running hash if it is current; it is put back only when the chunk lands.
        let mut hasher = self.take_partial(id, start);
        let mut writer = self.backend.writer(&chunk_key(id, start)).await?;
        let mut stream = std::pin::pin!(stream);
        let mut n: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    writer.abort().await?;
                    return Err(StoreError::Stream(e));
                }
            };
            n += chunk.len() as u64;
            if declared.is_some_and(|d| n > d) {
                writer.abort().await?;
                return Err(StoreError::SizeMismatch {
                    declared: declared.unwrap_or(0),
                    actual: n,
                });
            }
            if let Some(h) = hasher.as_mut() {
                h.update(&chunk);
            }
            writer.write(chunk).await?;
        }
        if let Some(d) = declared {
            if d != n {
                writer.abort().await?;
                return Err(StoreError::SizeMismatch {
                    declared: d,
                    actual: n,
                });
            }
        }
        if n == 0 {
            writer.abort().await?;
            if let Some(h) = hasher {
                self.put_partial(id, start, h);
            }
            return Ok(state);
        }
        writer.commit().await?;
        state.chunks.push(Chunk {
            offset: start,
            size: n,
        });
        state.offset = start + n;
        self.save(id, &state).await?;
        if let Some(h) = hasher {
            self.put_partial(id, state.offset, h);
        }
        Ok(state)
    }

    /// Finishes a session: the bytes received must have digest `expected`. On success the
    /// blob is in the store and the session is gone. On a mismatch the session is cancelled.
    pub async fn complete(&self, id: &str, expected: &Digest) -> Result<u64> {
        let state = self.load(id).await?;
        self.complete_loaded(id, state, expected).await
    }

    async fn complete_loaded(
        &self,
        id: &str,
        state: SessionState,
        expected: &Digest,
    ) -> Result<u64> {
        let size = self.assemble_loaded(id, &state, expected).await?;
        self.remove(id, &state).await?;
        Ok(size)
    }

    /// The session's blob, in the store and verified; the session stays. A digest mismatch
    /// cancels the session.
    async fn assemble_loaded(
        &self,
        id: &str,
        state: &SessionState,
        expected: &Digest,
    ) -> Result<u64> {
        let result = match self.assemble(id, state, expected).await {
            // A completion killed after its blob landed and before the session was removed
            // (the one chunk renamed into place, or some chunks already deleted) is asked
            // again: the session's bytes are gone, the blob they made is there. The chunks
            // were verified against `expected` before the blob was made.
            Err(e) if !matches!(e, StoreError::DigestMismatch(_)) => {
                match self.blobs.stat(expected).await? {
                    Some(size) if size == state.offset => Ok(size),
                    _ => Err(e),
                }
            }
            r => r,
        };
        if matches!(result, Err(StoreError::DigestMismatch(_))) {
            self.remove(id, state).await?;
        }
        result
    }

    async fn assemble(&self, id: &str, state: &SessionState, expected: &Digest) -> Result<u64> {
        match state.chunks.as_slice() {
            [] => self.blobs.put_bytes(expected, Bytes::new()).await,
            [only] => {
                let key = chunk_key(id, only.offset);
                let actual = match self.take_partial(id, state.offset) {
                    Some(h) if h.algorithm() == expected.algorithm() => h.finish(),
                    _ => {
                        let mut h = Hasher::new(expected.algorithm());
                        BlobStore::hash_object(self.backend.as_ref(), &key, &mut h).await?;
                        h.finish()
                    }
                };
                if &actual != expected {
                    return Err(Mismatch {
                        expected: expected.clone(),
                        actual,
                    }
                    .into());
                }
                if !self.blobs.exists(expected).await? {
                    self.backend.rename(&key, &blob_key(expected)).await?;
                }
                Ok(only.size)
            }
            chunks => {
                let keys: Vec<String> = chunks.iter().map(|c| chunk_key(id, c.offset)).collect();
                let stream = concat_objects(self.backend.clone(), keys);
                self.blobs.put(expected, stream).await
            }
        }
    }

    /// Abandons a session and everything it received.
    pub async fn cancel(&self, id: &str) -> Result<()> {
        let state = self.load(id).await?;
        self.remove(id, &state).await
    }

    /// Every open session's id (for cleaning up abandoned ones).
    pub async fn list(&self) -> Result<Vec<UploadStatus>> {
        let keys = crate::backend::list_all(self.backend.as_ref(), "uploads/").await?;
        let mut out = Vec::new();
        for k in keys {
            if let Some(id) = k
                .strip_prefix("uploads/")
                .and_then(|r| r.strip_suffix("/state"))
            {
                if let Ok(s) = self.status(id).await {
                    out.push(s);
                }
            }
        }
        Ok(out)
    }

    async fn remove(&self, id: &str, state: &SessionState) -> Result<()> {
        self.partial.lock().unwrap().remove(id);
        for c in &state.chunks {
            self.backend.delete(&chunk_key(id, c.offset)).await?;
        }
        // Chunks written by a writer that died before it updated the state.
        let prefix = format!("uploads/{id}/");
        for k in crate::backend::list_all(self.backend.as_ref(), &prefix).await? {
            if !k.ends_with("/state") {
                self.backend.delete(&k).await?;
            }
        }
        self.backend.delete(&state_key(id)).await?;
        Ok(())
    }

    async fn load(&self, id: &str) -> Result<SessionState> {
        check_id(id)?;
        let key = state_key(id);
        let data = match self.backend.read(&key).await {
            Ok(d) => d,
            Err(BackendError::NotFound(_)) => return Err(StoreError::UploadUnknown(id.into())),
            Err(e) => return Err(e.into()),
        };
        serde_json::from_slice(&data).map_err(|e| StoreError::Corrupt {
            key,
            message: e.to_string(),
        })
    }

    async fn save(&self, id: &str, state: &SessionState) -> Result<()> {
        let data = serde_json::to_vec(state).expect("session state serialises");
        self.backend.put(&state_key(id), Bytes::from(data)).await?;
        Ok(())
    }

    fn take_partial(&self, id: &str, offset: u64) -> Option<Hasher> {
        let mut map = self.partial.lock().unwrap();
        match map.remove(id) {
            Some(p) if p.offset == offset => Some(p.hasher),
            _ => None,
        }
    }

    fn put_partial(&self, id: &str, offset: u64, hasher: Hasher) {
        self.partial
            .lock()
            .unwrap()
            .insert(id.to_string(), Partial { offset, hasher });
    }
}

/// The objects at `keys`, one after another, as one stream.
fn concat_objects(
    backend: Arc<dyn Backend>,
    keys: Vec<String>,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send {
    struct State {
        backend: Arc<dyn Backend>,
        keys: std::vec::IntoIter<String>,
        current: Option<crate::backend::ByteStream>,
    }
    let state = State {
        backend,
        keys: keys.into_iter(),
        current: None,
    };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(cur) = st.current.as_mut() {
                match cur.next().await {
                    Some(item) => return Some((item, st)),
                    None => st.current = None,
                }
            }
            let key = st.keys.next()?;
            match st.backend.get(&key, None).await {
                Ok(s) => st.current = Some(s),
                Err(e) => return Some((Err(std::io::Error::other(e)), st)),
            }
        }
    })
}

fn status(id: &str, state: &SessionState) -> UploadStatus {
    UploadStatus {
        id: id.to_string(),
        repository: state.repository.clone(),
        offset: state.offset,
        started: state.started,
    }
}
