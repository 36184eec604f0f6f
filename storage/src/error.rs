//! The store's error: one enum that says which rule an operation broke.

use crate::backend::BackendError;
use crate::digest::{Digest, DigestError, Mismatch};
use crate::name::NameError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    InvalidDigest(#[from] DigestError),
    #[error(transparent)]
    InvalidName(#[from] NameError),
    #[error(transparent)]
    DigestMismatch(#[from] Mismatch),
    #[error("blob {0} is not in the store")]
    BlobUnknown(Digest),
    #[error("upload {0} does not exist")]
    UploadUnknown(String),
    #[error("upload {id} is at offset {expected}; a chunk starting at {got} does not follow it")]
    UploadOffset { id: String, expected: u64, got: u64 },
    #[error("{declared} bytes were declared but {actual} arrived")]
    SizeMismatch { declared: u64, actual: u64 },
    #[error("reading the content failed: {0}")]
    Stream(std::io::Error),
    #[error("another garbage collection is running ({0}); try again when it has finished")]
    CollectionBusy(String),
    #[error("the garbage collection lost its lease to another process and stopped")]
    LeaseLost,
    #[error("a garbage collection has held the store's blobs for too long; try again")]
    SweepStuck,
    #[error("stored metadata at {key} is corrupt: {message}")]
    Corrupt { key: String, message: String },
}

impl StoreError {
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            StoreError::BlobUnknown(_) | StoreError::UploadUnknown(_)
        ) || matches!(self, StoreError::Backend(b) if b.is_not_found())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
