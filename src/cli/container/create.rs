//! `berth create`: a container's record from an image (pulled when missing), nothing running.

use anyhow::{bail, Result};
use berth_client::engine::{resource_warnings, ContainerRecord, Engine};
use berth_client::images::ImageRecord;
use berth_client::remote::Platform;
use clap::Args;

use super::opts::{create_options, lifecycle, CreateFlags};
use crate::cli::exit::engine_failure;
use crate::cli::globals::Globals;
use crate::cli::image::pull::pull_missing;

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    #[command(flatten)]
    pub flags: CreateFlags,
}

pub fn run(g: &Globals, a: CreateArgs) -> Result<i32> {
    let e = g.engine()?;
    match create_record(&e, &a.flags) {
        Ok(rec) => {
            println!("{}", rec.id);
            Ok(0)
        }
        Err(err) => Ok(engine_failure(&err)),
    }
}

/// The image to run: from the store, pulled when missing (or always, with `--pull always`).
/// With `--platform`, a local image of another platform counts as missing, and the image must
/// be of that platform in the end (docker's rule).
fn find_image(e: &Engine, f: &CreateFlags) -> Result<ImageRecord> {
    let wanted: Option<Platform> = f.platform.as_deref().map(str::parse).transpose()?;
    let platform_of = |i: &ImageRecord| -> Result<Platform> {
        let config = e.images().config_sync(i)?;
        let field = |k: &str| config.get(k).and_then(|v| v.as_str()).map(str::to_string);
        Ok(Platform {
            os: field("os").unwrap_or_default(),
            architecture: field("architecture").unwrap_or_default(),
            variant: field("variant"),
        })
    };
    let fits = |i: &ImageRecord| -> Result<bool> {
        match &wanted {
            None => Ok(true),
            Some(w) => Ok(w.matches(&platform_of(i)?)),
        }
    };
    let pull = |announce| pull_missing(e.images(), f.image(), &f.platform, f.quiet, announce);
    let local = e.images().resolve(f.image());
    let image = match (f.pull.as_str(), local) {
        ("always", _) => pull(false)?,
        (_, Ok(i)) if fits(&i)? => return Ok(i),
        ("never", Ok(i)) => i,
        (_, Ok(_)) => pull(true)?,
        ("never", Err(err)) => return Err(err.into()),
        (_, Err(berth_client::images::ImageError::NotFound(_))) => pull(true)?,
        (_, Err(err)) => return Err(err.into()),
    };
    if let Some(w) = &wanted {
        let actual = platform_of(&image)?;
        if !w.matches(&actual) {
            bail!(
                "image with reference {} was found but does not match the specified platform: \
                 wanted {w}, actual: {actual}",
                f.image()
            );
        }
    }
    Ok(image)
}

/// `create` and the first half of `run`: the container's record, nothing running yet.
/// With `--cidfile`, the file is made (exclusively: docker refuses one that exists) before
/// the container and holds its id after; it goes again when the create fails.
pub fn create_record(e: &Engine, f: &CreateFlags) -> Result<ContainerRecord> {
    let opts = create_options(e, f)?;
    for warning in resource_warnings(&opts.host) {
        eprintln!("WARNING: {warning}");
    }
    let life = lifecycle(f)?;
    let cidfile = f.cidfile.as_deref().map(CidFile::create).transpose()?;
    let image = find_image(e, f)?;
    let config = e.images().config_sync(&image)?;
    let rec = e.create_with(&image, f.image(), &config, opts, life)?;
    if let Some(c) = cidfile {
        c.write(&rec.id)?;
    }
    Ok(rec)
}

/// An OS error as Go prints it: `no such file or directory`.
fn go_message(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or_default();
    let mut c = text.chars();
    c.next()
        .map(|f| f.to_lowercase().chain(c).collect())
        .unwrap_or_default()
}

/// A `--cidfile` being written: removed on drop unless the id made it in.
struct CidFile {
    path: std::path::PathBuf,
    file: Option<std::fs::File>,
}

impl CidFile {
    fn create(path: &std::path::Path) -> Result<CidFile> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => anyhow::anyhow!(
                    "container ID file found, make sure the other container isn't running or \
                     delete {}",
                    path.display()
                ),
                _ => anyhow::anyhow!(
                    "failed to create the container ID file: open {}: {}",
                    path.display(),
                    go_message(&e)
                ),
            })?;
        Ok(CidFile {
            path: path.to_path_buf(),
            file: Some(file),
        })
    }

    fn write(mut self, id: &str) -> Result<()> {
        use std::io::Write;
        let mut f = self.file.take().expect("written once");
        f.write_all(id.as_bytes()).map_err(|e| {
            anyhow::anyhow!(
                "failed to write the container ID to the file: {}: {e}",
                self.path.display()
            )
        })?;
        self.path = std::path::PathBuf::new();
        Ok(())
    }
}

impl Drop for CidFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
