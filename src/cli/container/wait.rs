//! `berth wait`: block until containers stop, then print their exit codes.

use anyhow::Result;

use super::each::ContainersArg;
use crate::cli::globals::Globals;

pub fn run(g: &Globals, a: ContainersArg) -> Result<i32> {
    let e = g.engine()?;
    let mut code = 0;
    for name in &a.containers {
        match e.resolve(name).and_then(|rec| e.wait(&rec)) {
            Ok(c) => println!("{c}"),
            Err(err) => {
                eprintln!("Error: {err}");
                code = 1;
            }
        }
    }
    Ok(code)
}
