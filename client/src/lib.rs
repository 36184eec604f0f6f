//! berth-client: remote registry client, local image store, and container engine.
//!
//! - [`reference`] turns what a person types into a normalised image reference, and
//!   [`remote`] talks to registries (auth, retries, resumable verified blob streams, pushes):
//!   both are the `berth-remote` crate, re-exported, which the registry's mirror uses too.
//! - [`config`] is berth's client configuration file (registries, mirrors, the bridge).
//! - [`images`] is the local image store: the storage crate's format plus the client's
//!   image records and unpacked snapshots, and every image command (pull, push, tag, rmi,
//!   save, load, import, …).
//! - [`engine`] runs containers over berth-runtime: records, names, volumes, logs.
//! - [`events`] is the events journal every command writes what it did to, and `berth
//!   events` reads.
//! - [`layer`] writes layers (a container's upper directory or a plain tree → a tar in the
//!   store, compressed and hashed in one pass), lists a container's changes and exports a
//!   merged tree; its reader twin is [`unpack`].
//! - `compress` writes gzip (on every core) and zstd streams into hashed blob files, for
//!   the layer writer and for `push`, which gzips layers stored uncompressed.
//! - [`unpack`] turns a layer blob into a snapshot directory without letting any entry reach
//!   outside it.

pub mod build;
mod compress;
pub mod config;
pub mod dockerfile;
pub mod engine;
pub mod events;
pub mod images;
pub mod layer;
pub mod unpack;

pub use berth_remote as remote;
pub use berth_remote::reference;
