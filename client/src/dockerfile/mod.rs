//! Dockerfiles read as docker reads them, for `berth build` and for `commit --change`
//! (which takes the same instructions): a leaf of the client, importing nothing of it.
//!
//! - [`parser`] reads the file's lines into instructions (directives, continuations,
//!   heredocs, exec and shell forms);
//! - [`instructions`] checks each one and groups them into stages, with docker's messages
//!   and line numbers;
//! - [`shell`] substitutes variables where docker does;
//! - [`config`] is the image config each instruction changes, with its history.

pub mod config;
pub mod instructions;
pub mod parser;
pub mod shell;
