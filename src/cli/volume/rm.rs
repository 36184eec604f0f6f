//! `berth volume rm`: each volume removed is printed as named; one in use or missing is one
//! line on stderr and the status is 1. `-f` only quiets a missing volume: one in use is
//! refused all the same (docker's rule).

use anyhow::Result;
use berth_client::engine::EngineError;
use clap::Args;

use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of one or more volumes (a missing one is no error)
    #[arg(short, long)]
    force: bool,
    #[arg(required = true, value_name = "VOLUME")]
    volumes: Vec<String>,
}

pub fn run(g: &Globals, a: RmArgs) -> Result<i32> {
    let e = g.engine()?;
    let mut code = 0;
    for name in &a.volumes {
        match e.remove_volume(name) {
            Ok(()) => println!("{name}"),
            Err(EngineError::NoSuchVolume(_)) if a.force => {}
            Err(err) => {
                eprintln!("Error: {err}");
                code = 1;
            }
        }
    }
    Ok(code)
}
