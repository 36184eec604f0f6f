//! `berth build`: Dockerfiles into images, without a daemon: the command's own process
//! reads the file, runs each step and writes the image into the store.
//!
//! - The file is read by [`crate::dockerfile`] (parser, typed instructions, variable
//!   substitution, the image config each instruction changes), which `commit --change`
//!   shares.
//! - [`plan`] resolves ARGs before FROM, stage bases, `--from` sources, and the stages the
//!   target needs.
//! - [`context`] is the build context (`.dockerignore` through [`ignore`]): hostile sources
//!   refused, files hashed for the cache.
//! - [`exec`] runs the stages (independent ones side by side): RUN as a container through
//!   the engine ([`crate::engine::Engine::run_step`]), COPY/ADD into a layer directory
//!   ([`copy`]), every layer written by [`crate::layer::write_layer`]; the image config and
//!   its history are [`crate::dockerfile::config`]'s.
//!
//! The cache: a step that makes a layer is looked up by a key over its parent's key, the
//! instruction with everything substituted (and the environment, user, working directory
//! and mounts it runs with) and, for COPY/ADD, the digests of its sources. A hit reuses the
//! layer; the records live in the image store (`ImageStore::cache_get`), so they survive
//! the command and keep their layers until `builder prune`.

pub mod context;
pub mod copy;
mod exec;
pub mod ignore;
pub mod plan;

use std::collections::BTreeMap;
use std::path::PathBuf;

use berth_storage::Digest;

use crate::dockerfile::instructions;
use crate::engine::{EngineError, NetworkMode};
use crate::images::ImageError;
use crate::reference::ImageRef;

pub use exec::build;

/// What `berth build` was asked.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The Dockerfile's text.
    pub dockerfile: String,
    /// Its path (for `<Dockerfile>.dockerignore`), when it was a file.
    pub dockerfile_path: Option<PathBuf>,
    /// The context directory; `None` when there is none (a Dockerfile from stdin).
    pub context: Option<PathBuf>,
    /// `-t`, normalised.
    pub tags: Vec<ImageRef>,
    /// `--build-arg`.
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub no_cache: bool,
    /// `--pull`: always fetch base images again.
    pub pull: bool,
    /// `--label`.
    pub labels: BTreeMap<String, String>,
    /// `--network`: what RUN's `default` means.
    pub network: NetworkMode,
    /// Times in the image (config, history, layer entries) are this, when given.
    pub source_date_epoch: Option<i64>,
    /// OCI media types (default), or docker's.
    pub oci: bool,
}

/// Why a build failed; the line of the Dockerfile it is about, when there is one.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Parse(#[from] instructions::ParseError),
    /// A step failed (the message names what); `line` is the instruction's.
    #[error("{message}")]
    Step {
        line: usize,
        end_line: usize,
        message: String,
        /// A RUN's exit code.
        exit_code: Option<i32>,
    },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{0}")]
    Other(String),
}

impl BuildError {
    /// The Dockerfile lines the error is about.
    pub fn lines(&self) -> Option<(usize, usize)> {
        match self {
            BuildError::Parse(p) if p.line > 0 => Some((p.line, p.line)),
            BuildError::Step { line, end_line, .. } => Some((*line, *end_line)),
            _ => None,
        }
    }
}

/// What a build made.
#[derive(Debug, Clone)]
pub struct BuildResult {
    /// The image id (config digest).
    pub id: Digest,
    pub manifest: Digest,
    /// Steps that ran and steps taken from the cache.
    pub ran: usize,
    pub cached: usize,
}

/// Receives a build's progress: numbered vertices, as BuildKit shows them.
pub trait Progress: Send + Sync {
    /// A vertex begins (`[internal] load build definition from Dockerfile`, `[2/5] RUN …`).
    fn start(&self, vertex: usize, name: &str);
    /// A line of status under it (`transferring context: 2.1kB done`).
    fn status(&self, vertex: usize, text: &str);
    /// Output of a running step.
    fn log(&self, vertex: usize, data: &[u8]);
    /// The vertex was taken from the cache.
    fn cached(&self, vertex: usize);
    fn done(&self, vertex: usize);
    fn error(&self, vertex: usize, message: &str);
    /// A warning for the person (unused build args, empty continuation lines).
    fn warning(&self, text: &str);
}

/// Ignores progress.
pub struct Quiet;

impl Progress for Quiet {
    fn start(&self, _: usize, _: &str) {}
    fn status(&self, _: usize, _: &str) {}
    fn log(&self, _: usize, _: &[u8]) {}
    fn cached(&self, _: usize) {}
    fn done(&self, _: usize) {}
    fn error(&self, _: usize, _: &str) {}
    fn warning(&self, _: &str) {}
}

#[cfg(test)]
mod tests;
