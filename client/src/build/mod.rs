//! `berth build`: Dockerfiles into images, without a daemon.
//!
//! - [`dockerfile`] reads the file's lines into instructions (directives, continuations,
//!   heredocs, exec and shell forms), [`instructions`] checks each one and groups them into
//!   stages, with docker's messages and line numbers;
//! - [`shell`] substitutes variables where docker does.

pub mod config;
pub mod dockerfile;
pub mod ignore;
pub mod instructions;
pub mod shell;
pub mod context;
pub mod plan;
