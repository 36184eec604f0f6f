//! Verbs over several containers (`stop a b`, `pause a b`, …): the names argument, and docker's
//! way of answering for each one: its name echoed on success, one error line per failure, and
//! status 1 if any failed.

use anyhow::Result;
use berth_client::engine::{ContainerRecord, Engine, EngineError};
use clap::Args;

use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct ContainersArg {
    /// Containers (name, id or id prefix)
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Does `f` for each named container, printing the name as given when `f` says so.
pub fn each(
    g: &Globals,
    a: &ContainersArg,
    f: impl Fn(&Engine, &ContainerRecord) -> Result<bool, EngineError>,
) -> Result<i32> {
    let e = g.engine()?;
    let mut code = 0;
    for name in &a.containers {
        match e.resolve(name).and_then(|rec| f(&e, &rec)) {
            Ok(print) => {
                if print {
                    println!("{name}");
                }
            }
            Err(err) => {
                eprintln!("Error: {err}");
                code = 1;
            }
        }
    }
    Ok(code)
}
