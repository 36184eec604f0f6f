//! berth-storage: digests, names, backends and the content-addressable store.
//!
//! Everything berth keeps, the registry's repositories, the mirror's cache and the client's local
//! images, lives in one format described in ARCHITECTURE.md. This crate owns that format and
//! knows nothing of HTTP: the registry and the client call it.

pub mod digest;
pub mod name;

pub use digest::{Algorithm, Digest, DigestError, Hasher, Verifier};
pub use name::{NameError, Reference, RepoName, Tag};
