//! The writer's half of collecting beside pushes: what every operation that makes a blob
//! needed (a manifest, blob or hold link) does once its link is visible.
//!
//! A collection marks twice: once, then again after it has published its doomed list and set
//! its sweep in the lease. A link written before that second mark is seen by it. A writer
//! that reads the lease after writing its link and finds no sweep wrote before the second
//! mark of any collection still to come; one that finds a sweep checks its digests against
//! the doomed list and, for any that are on it, writes a rescue (`gc/rescue/<alg>/<hex>`) that
//! the collector reads before each batch of deletions, then waits for the sweep to end. Last,
//! every digest must exist: a blob deleted before the rescue could be read is reported as
//! unknown, the caller takes its link back and the client uploads the blob again. So a link
//! never points at a blob that is gone, and a blob that was needed is never deleted.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::lease;
use crate::backend::Backend;
use crate::blobs::blob_key;
use crate::digest::Digest;
use crate::error::{Result, StoreError};

/// How long a writer waits for a sweep that holds one of its blobs to end.
const MAX_WAIT: Duration = Duration::from_secs(600);
const POLL: Duration = Duration::from_millis(100);

pub(crate) fn doomed_key(sweep: &str) -> String {
    format!("gc/doomed/{sweep}")
}

pub(crate) fn rescue_key(d: &Digest) -> String {
    format!("gc/rescue/{}/{}", d.algorithm().name(), d.hex())
}

/// A sweep's id and its doomed list.
type Doomed = (String, Arc<HashSet<Digest>>);

/// The writer's side: the doomed list of the sweep in progress, read once per sweep.
#[derive(Clone)]
pub(crate) struct Guard {
    backend: Arc<dyn Backend>,
    doomed: Arc<Mutex<Option<Doomed>>>,
}

impl Guard {
    pub fn new(backend: Arc<dyn Backend>) -> Guard {
        Guard {
            backend,
            doomed: Arc::new(Mutex::new(None)),
        }
    }

    /// Called once a link to `digests` is visible: makes sure no collection deletes them, and
    /// fails with [`StoreError::BlobUnknown`] for one that is not (or no longer) in the store.
    pub async fn kept(&self, digests: &[&Digest]) -> Result<()> {
        match self.missing(digests).await?.into_iter().next() {
            Some(d) => Err(StoreError::BlobUnknown(d)),
            None => Ok(()),
        }
    }

    /// [`Guard::kept`] for digests that need not all be in the store: returns those that are
    /// not (a mirror's manifest whose layers come later).
    pub async fn missing(&self, digests: &[&Digest]) -> Result<Vec<Digest>> {
        self.protect(digests).await?;
        // Owned values: a stream of futures that borrow trips the compiler's Send checks.
        let owned: Vec<Digest> = digests.iter().map(|d| (*d).clone()).collect();
        let backend = self.backend.clone();
        let absent: Vec<Option<Digest>> = futures::stream::iter(owned)
            .map(move |d| {
                let backend = backend.clone();
                async move {
                    let gone = backend.stat(&blob_key(&d)).await?.is_none();
                    Ok::<_, StoreError>(gone.then_some(d))
                }
            })
            .buffered(16)
            .try_collect()
            .await?;
        Ok(absent.into_iter().flatten().collect())
    }

    /// Rescues those of `digests` that the sweep in progress has doomed, and waits for it to
    /// end; returns at once when no sweep runs or none of them is doomed.
    async fn protect(&self, digests: &[&Digest]) -> Result<()> {
        let mut rescued: Option<String> = None;
        let deadline = Instant::now() + MAX_WAIT;
        loop {
            let sweep = lease::current(&*self.backend).await?.and_then(|r| r.sweep);
            let Some(sweep) = sweep else { return Ok(()) };
            match &rescued {
                // Still the sweep we rescued from: wait for it to end.
                Some(s) if *s == sweep => {
                    if Instant::now() > deadline {
                        return Err(StoreError::SweepStuck);
                    }
                    tokio::time::sleep(POLL).await;
                }
                // A sweep that began after our link was visible has seen it.
                Some(_) => return Ok(()),
                None => {
                    let doomed = self.doomed_of(&sweep).await?;
                    let hit: Vec<&&Digest> =
                        digests.iter().filter(|d| doomed.contains(**d)).collect();
                    if hit.is_empty() {
                        return Ok(());
                    }
                    for d in hit {
                        self.backend.put(&rescue_key(d), Bytes::new()).await?;
                    }
                    rescued = Some(sweep);
                }
            }
        }
    }

    async fn doomed_of(&self, sweep: &str) -> Result<Arc<HashSet<Digest>>> {
        if let Some((id, set)) = &*self.doomed.lock().unwrap() {
            if id == sweep {
                return Ok(set.clone());
            }
        }
        let set: HashSet<Digest> = match self.backend.read(&doomed_key(sweep)).await {
            Ok(data) => String::from_utf8_lossy(&data)
                .lines()
                .filter_map(|l| l.parse().ok())
                .collect(),
            // Gone: the sweep has ended since the lease was read.
            Err(e) if e.is_not_found() => HashSet::new(),
            Err(e) => return Err(e.into()),
        };
        let set = Arc::new(set);
        *self.doomed.lock().unwrap() = Some((sweep.to_string(), set.clone()));
        Ok(set)
    }
}
