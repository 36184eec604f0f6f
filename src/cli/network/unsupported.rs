//! The network verbs for user-defined networks, which berth does not have yet: each says so.

use anyhow::{bail, Result};
use clap::Args;

#[derive(Args, Debug)]
pub struct NamedArgs {
    #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
    args: Vec<String>,
}

/// `create`, `connect`, `disconnect`.
pub fn user_defined() -> Result<i32> {
    bail!(
        "user-defined networks are not supported yet: berth has bridge (the default), \
         host, none and container:NAME"
    )
}

/// `rm`: the predefined networks always exist.
pub fn rm(a: NamedArgs) -> Result<i32> {
    bail!(
        "{} is a pre-defined network and cannot be removed",
        a.args.join(", ")
    )
}
