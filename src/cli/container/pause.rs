//! `berth pause` and `berth unpause`: freeze and thaw all processes of containers.

use anyhow::Result;

use super::each::{each, ContainersArg};
use crate::cli::globals::Globals;

pub fn pause(g: &Globals, a: ContainersArg) -> Result<i32> {
    each(g, &a, |e, rec| e.pause(rec).map(|_| true))
}

pub fn unpause(g: &Globals, a: ContainersArg) -> Result<i32> {
    each(g, &a, |e, rec| e.unpause(rec).map(|_| true))
}
