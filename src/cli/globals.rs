//! What every command takes (`--root`) and the stores it opens from it.

use std::future::Future;
use std::path::PathBuf;

use anyhow::{Context, Result};
use berth_client::config::ClientConfig;
use berth_client::engine::Engine;
use berth_client::images::{default_root, ImageStore};

use super::exit::one_line;

/// Options that every command takes, before or after its name (`berth --root D images`,
/// `berth images --root D`), as podman's global options.
pub struct Globals {
    /// `--root`: the store's directory. The client commands default to [`default_root`]
    /// (`$BERTH_ROOT`, else per user); `serve` defaults to its configuration's storage.
    pub root: Option<PathBuf>,
}

impl Globals {
    /// Opens the local store the client commands work on, first registering what reached it
    /// through `berth serve` (images pushed to a registry over this root). Call it before
    /// starting an async runtime: it starts its own when there is something to register.
    pub fn open_store(&self) -> Result<ImageStore> {
        let root = self.root.clone().unwrap_or_else(default_root);
        let store = ImageStore::open(&root)?;
        let changes = store.served_changes()?;
        if !changes.is_empty() {
            let failed = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?
                .block_on(store.adopt_served(changes))?;
            for (name, e) in failed {
                eprintln!(
                    "Warning: {name}, pushed to a registry over this store, is not an image here yet: {}",
                    one_line(&e.into())
                );
            }
        }
        Ok(store)
    }

    /// The container engine over the local store, with the client configuration's bridge
    /// (`[bridge]`, else berth0 on 10.89.0.1/16) for `--network bridge`.
    pub fn engine(&self) -> Result<Engine> {
        self.engine_over(self.open_store()?)
    }

    /// The container engine over a store already open.
    pub fn engine_over(&self, store: ImageStore) -> Result<Engine> {
        let mut e = Engine::with_images(store)?;
        e.set_bridge(&ClientConfig::load()?.bridge)?;
        Ok(e)
    }
}

/// Runs an async command to its end on a runtime of its own (the image commands, which move
/// layers in parallel).
pub fn block_on<T>(f: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(f)
}
