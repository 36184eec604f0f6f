//! The commands that talk to a registry without touching the local store: `login`, `logout`
//! and `search` (docker's `cli/command/registry`).

pub mod login;
pub mod search;
