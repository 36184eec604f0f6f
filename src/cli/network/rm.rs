//! `berth network rm`: each network removed is printed as it was named; each that cannot be
//! is one line, and the status is 1 if any could not.

use anyhow::Result;
use clap::Args;

use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Do not error if the network does not exist
    #[arg(short, long)]
    force: bool,
    #[arg(required = true, value_name = "NETWORK")]
    networks: Vec<String>,
}

pub fn run(g: &Globals, a: RmArgs) -> Result<i32> {
    let e = g.engine()?;
    let mut code = 0;
    for n in &a.networks {
        if a.force && !e.network_exists(n)? {
            continue;
        }
        match e.remove_network(n) {
            Ok(_) => println!("{n}"),
            Err(err) => {
                eprintln!("Error: {err}");
                code = 1;
            }
        }
    }
    Ok(code)
}
