//! The registry client as this host's configuration sets it up (pull, push, search, login).

use anyhow::Result;
use berth_client::config::ClientConfig;
use berth_client::remote::{Platform, Remote};

/// The registry client and the configuration it came from (its concurrency and chunk size).
pub fn remote() -> Result<(Remote, ClientConfig)> {
    let config = ClientConfig::load()?;
    let remote = Remote::new(config.remote_config()?);
    Ok((remote, config))
}

/// `--platform`, else this host's.
pub fn platform(p: &Option<String>) -> Result<Platform> {
    Ok(match p {
        Some(p) => p.parse()?,
        None => Platform::host(),
    })
}
