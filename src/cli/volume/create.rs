//! `berth volume create`: a named (or, without a name, anonymous) local volume; its name is
//! printed. Creating a volume that exists answers its name again, as docker does.

use anyhow::Result;
use berth_client::engine::VolumeOptions;
use clap::Args;

use crate::cli::flags::key_values;
use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Specify volume driver name (berth has "local")
    #[arg(short, long, default_value = "local")]
    driver: String,
    /// Set metadata for a volume
    #[arg(long, value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// Set driver specific options: type, device and o (mount options), mounted over the
    /// volume when a container first uses it (e.g. -o type=tmpfs -o device=tmpfs -o o=size=64m)
    #[arg(short, long = "opt", value_name = "KEY=VALUE")]
    opt: Vec<String>,
    /// The volume's name (64 hex digits when not given)
    #[arg(value_name = "VOLUME")]
    name: Option<String>,
    /// The name again, as docker's hidden --name (for scripts written for it)
    #[arg(long = "name", hide = true, conflicts_with = "name")]
    name_flag: Option<String>,
}

pub fn run(g: &Globals, a: CreateArgs) -> Result<i32> {
    let e = g.engine()?;
    let v = e.create_volume(&VolumeOptions {
        name: a.name.or(a.name_flag),
        driver: Some(a.driver),
        labels: key_values(&a.label, "label")?,
        options: key_values(&a.opt, "option")?,
    })?;
    println!("{}", v.name);
    Ok(0)
}
