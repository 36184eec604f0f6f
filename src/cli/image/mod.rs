//! `berth image …` and the image verbs at the top level (`berth pull`, `berth images`, …):
//! one file per verb with its flags and its handler. The work is `berth_client::images`.
//!
//! A new verb: a file here with its `Args` and `run`, a variant in [`ImageVerb`] (both
//! spellings) or [`ImageCommand`] (only `berth image …`), and its arm in `run` below.

pub mod build;
pub mod build_progress;
pub mod history;
pub mod import;
pub mod inspect;
pub mod load;
pub mod ls;
pub mod progress;
pub mod prune;
pub mod pull;
pub mod push;
pub mod rm;
pub mod save;
pub mod tag;

use anyhow::Result;
use clap::{FromArgMatches, Subcommand};

use super::exit::quiet_pipe;
use super::globals::Globals;
use super::verb::{Object, Respell, Respelling};

/// The image verbs docker has under both spellings.
#[derive(Subcommand)]
#[command(defer = true)]
pub enum ImageVerb {
    /// Build an image from a Dockerfile
    Build(Box<build::BuildArgs>),
    /// Download an image from a registry
    Pull(pull::PullArgs),
    /// Upload an image to a registry
    Push(push::PushArgs),
    /// List images
    Images(ls::ListArgs),
    /// Remove one or more images
    Rmi(rm::RmiArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(tag::TagArgs),
    /// Show the history of an image
    History(history::HistoryArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(save::SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(load::LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(import::ImportArgs),
}

impl Respell for ImageVerb {
    fn respellings() -> Vec<Respelling<Self>> {
        vec![
            Respelling {
                top: "images",
                object: "ls",
                aliases: &["list"],
                parse: |m| Ok(ImageVerb::Images(ls::ListArgs::from_arg_matches_mut(m)?)),
            },
            Respelling {
                top: "rmi",
                object: "rm",
                aliases: &["rmi", "remove"],
                parse: |m| Ok(ImageVerb::Rmi(rm::RmiArgs::from_arg_matches_mut(m)?)),
            },
        ]
    }
}

impl ImageVerb {
    /// Runs the verb over the local store; returns the exit status.
    pub fn run(self, g: &Globals) -> Result<i32> {
        let store = g.open_store()?;
        match self {
            ImageVerb::Build(a) => build::run(g, store, *a),
            ImageVerb::Pull(a) => pull::run(&store, a),
            ImageVerb::Push(a) => push::run(&store, a),
            ImageVerb::Images(a) => quiet_pipe(ls::run(&store, a)),
            ImageVerb::Rmi(a) => rm::run(&store, a),
            ImageVerb::Tag(a) => tag::run(&store, a),
            ImageVerb::History(a) => history::run(&store, a),
            ImageVerb::Save(a) => save::run(&store, a),
            ImageVerb::Load(a) => load::run(&store, a),
            ImageVerb::Import(a) => import::run(&store, a),
        }
    }
}

/// `berth image …`: the shared verbs, and those docker has only under the object.
#[derive(Subcommand)]
#[command(defer = true)]
pub enum ImageCommand {
    #[command(flatten)]
    Verb(Object<ImageVerb>),
    /// Display detailed information on one or more images
    Inspect(inspect::InspectArgs),
    /// Remove unused images
    Prune(prune::PruneArgs),
}

impl ImageCommand {
    pub fn run(self, g: &Globals) -> Result<i32> {
        match self {
            ImageCommand::Verb(Object(v)) => v.run(g),
            ImageCommand::Inspect(a) => inspect::run(&g.open_store()?, a),
            ImageCommand::Prune(a) => prune::run(&g.open_store()?, a),
        }
    }
}
