//! `berth build`: an image from a Dockerfile, in this process (see `berth_client::build`).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use berth_client::build::{self, BuildOptions};
use berth_client::engine::{Engine, NetworkMode};
use berth_client::images::ImageStore;
use berth_client::reference::ImageRef;
use clap::Args;

use super::build_progress::{BuildProgress, Mode};
use crate::cli::globals::Globals;

#[derive(Args)]
pub struct BuildArgs {
    /// Name and optionally a tag in the "name:tag" format
    #[arg(short = 't', long = "tag", value_name = "NAME:TAG")]
    tags: Vec<String>,
    /// Name of the Dockerfile (default: "PATH/Dockerfile")
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<String>,
    /// Set build-time variables
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    build_args: Vec<String>,
    /// Set the target build stage to build
    #[arg(long)]
    target: Option<String>,
    /// Do not use cache when building the image
    #[arg(long = "no-cache")]
    no_cache: bool,
    /// Always attempt to pull all referenced images
    #[arg(long)]
    pull: bool,
    /// Suppress the build output and print image ID on success
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Set metadata for an image
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Write the image ID to a file
    #[arg(long, value_name = "FILE")]
    iidfile: Option<PathBuf>,
    /// Set the networking mode for the RUN instructions during build (default, none, host)
    #[arg(long, default_value = "default")]
    network: String,
    /// Push the image to its registry after the build
    #[arg(long)]
    push: bool,
    /// Set type of progress output ("auto", "plain", "tty", "quiet")
    #[arg(long, default_value = "auto")]
    progress: String,
    /// Set target platform for build (this host's only)
    #[arg(long)]
    platform: Option<String>,
    /// Output destination (type=image, type=docker for docker media types, type=local,dest=DIR, type=tar,dest=FILE)
    #[arg(short = 'o', long = "output", value_name = "SPEC")]
    output: Option<String>,
    /// Build context: a directory, or "-" to read a tar archive or a Dockerfile from STDIN
    #[arg(value_name = "PATH | -")]
    context: String,
}

/// Where the built image goes besides the store.
enum Output {
    Image { oci: bool },
    Local(PathBuf),
    Tar(PathBuf),
}

fn output(spec: &Option<String>) -> Result<Output> {
    let Some(spec) = spec else {
        return Ok(Output::Image { oci: true });
    };
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    for f in spec.split(',') {
        let (k, v) = f.split_once('=').unwrap_or(("type", f));
        fields.insert(k.trim().to_string(), v.trim().to_string());
    }
    let dest = || -> Result<PathBuf> {
        fields
            .get("dest")
            .map(PathBuf::from)
            .ok_or_else(|| anyhow::anyhow!("output {spec}: dest= is required"))
    };
    Ok(match fields.get("type").map(String::as_str) {
        Some("image") => Output::Image {
            oci: fields.get("oci-mediatypes").is_none_or(|v| v != "false"),
        },
        Some("docker") => Output::Image { oci: false },
        Some("local") => Output::Local(dest()?),
        Some("tar") => Output::Tar(dest()?),
        Some(t) => bail!("output type {t:?} is not supported (image, docker, local, tar)"),
        None => bail!("output {spec}: type= is required"),
    })
}

/// `KEY=VALUE`, or `KEY` taking its value from the environment (skipped when unset).
fn pairs(items: &[String], from_env: bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for i in items {
        match i.split_once('=') {
            Some((k, v)) => {
                out.insert(k.to_string(), v.to_string());
            }
            None if from_env => {
                if let Ok(v) = std::env::var(i) {
                    out.insert(i.clone(), v);
                }
            }
            None => {
                out.insert(i.clone(), String::new());
            }
        }
    }
    out
}

/// A directory removed when dropped.
struct Scratch(Option<PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// What stdin held: a context archive or a Dockerfile.
fn is_archive(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || (head.len() > 262 && &head[257..262] == b"ustar")
}

pub fn run(g: &Globals, store: ImageStore, a: BuildArgs) -> Result<i32> {
    let engine = g.engine_over(store)?;
    let out = output(&a.output)?;
    let network = match a.network.as_str() {
        // Rootless, RUN steps share the host's network, as buildah's do: no bridge there.
        "default" if berth_client::engine::rootless::active() => NetworkMode::Host,
        "default" | "bridge" => NetworkMode::Bridge,
        "none" => NetworkMode::None,
        "host" => NetworkMode::Host,
        other => bail!("network mode {other:?} not supported by berth build (default, none, host)"),
    };
    if let Some(p) = &a.platform {
        let wanted: berth_client::remote::Platform = p.parse()?;
        let host = berth_client::remote::Platform::host();
        if !wanted.matches(&host) && !host.matches(&wanted) {
            bail!("berth builds for this host's platform ({host}) only, and --platform={p} asks for another");
        }
    }
    let mut tags = Vec::new();
    for t in &a.tags {
        let r = ImageRef::parse(t).with_context(|| format!("invalid tag {t:?}"))?;
        if r.digest().is_some() {
            bail!("invalid tag {t:?}: a tag cannot carry a digest");
        }
        tags.push(r);
    }
    if a.push && tags.is_empty() {
        bail!("--push needs a name: give one with -t");
    }
    let build_args = pairs(&a.build_args, true);
    let epoch = match build_args
        .get("SOURCE_DATE_EPOCH")
        .cloned()
        .or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok())
        .filter(|v| !v.is_empty())
    {
        Some(v) => Some(
            v.trim()
                .parse::<i64>()
                .map_err(|_| anyhow::anyhow!("invalid SOURCE_DATE_EPOCH: {v}"))?,
        ),
        None => None,
    };

    // The context and the Dockerfile.
    // A context from STDIN is unpacked under the store; removed however this ends (a hostile
    // or truncated archive included).
    let mut scratch = Scratch(None);
    let (context, dockerfile, dockerfile_path, file_name) = if a.context == "-" {
        let mut input = Vec::new();
        std::io::stdin()
            .read_to_end(&mut input)
            .context("reading the context from STDIN")?;
        if is_archive(&input) {
            let dir = engine
                .images()
                .build_tmp()?
                .join(format!("context-{}", std::process::id()));
            scratch.0 = Some(dir.clone());
            std::fs::create_dir_all(&dir)?;
            berth_client::unpack::unpack_layer(
                &input[..],
                &dir,
                &berth_client::unpack::UnpackOptions::default(),
            )
            .context("unpacking the context from STDIN")?;
            let name = a.file.clone().unwrap_or_else(|| "Dockerfile".into());
            let path = dir.join(&name);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("the context from STDIN has no {name}"))?;
            (Some(dir), text, Some(path), name)
        } else {
            if a.file.is_some() {
                bail!("a Dockerfile from STDIN (-) cannot be combined with -f");
            }
            let text = String::from_utf8(input).context("the Dockerfile is not UTF-8")?;
            (None, text, None, "Dockerfile".to_string())
        }
    } else {
        if a.context.contains("://") || a.context.starts_with("git@") {
            bail!(
                "berth build takes a directory or - as its context, not {}",
                a.context
            );
        }
        let dir = PathBuf::from(&a.context);
        if !dir.is_dir() {
            bail!("unable to prepare context: path {:?} not found", a.context);
        }
        let (text, path) = match a.file.as_deref() {
            Some("-") => {
                let mut t = String::new();
                std::io::stdin()
                    .read_to_string(&mut t)
                    .context("reading the Dockerfile from STDIN")?;
                (t, None)
            }
            Some(f) => {
                let p = PathBuf::from(f);
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| anyhow::anyhow!("failed to read dockerfile: open {f}: {e}"))?;
                (text, Some(p))
            }
            None => {
                let p = dir.join("Dockerfile");
                let text = std::fs::read_to_string(&p).map_err(|_| {
                    anyhow::anyhow!(
                        "failed to read dockerfile: open {}: no such file or directory",
                        p.display()
                    )
                })?;
                (text, Some(p))
            }
        };
        let name = path
            .as_ref()
            .and_then(|p| p.file_name())
            .map_or("Dockerfile".into(), |n| n.to_string_lossy().to_string());
        (Some(dir), text, path, name)
    };

    let oci = !matches!(out, Output::Image { oci: false });
    let opts = BuildOptions {
        dockerfile: dockerfile.clone(),
        dockerfile_path,
        context,
        tags: tags.clone(),
        build_args,
        target: a.target.clone(),
        no_cache: a.no_cache,
        pull: a.pull,
        labels: pairs(&a.labels, false),
        network,
        source_date_epoch: epoch,
        oci,
    };
    let mode = match (a.quiet, a.progress.as_str()) {
        (true, _) | (_, "quiet") => Mode::Quiet,
        (_, "plain") => Mode::Plain,
        (_, "tty") => Mode::Tty,
        (_, "auto") if std::io::stderr().is_terminal() => Mode::Tty,
        (_, "auto") => Mode::Plain,
        (_, other) => bail!("invalid progress mode {other:?} (auto, plain, tty, quiet)"),
    };
    let progress = BuildProgress::new(mode);
    // The registry client loads the host's CA certificates, which costs more than a cached
    // build: it is made only when a base image must be pulled, and for --push.
    let config = berth_client::config::ClientConfig::load()?;
    let remote_config = config.remote_config()?;
    let make_remote = || berth_client::remote::Remote::new(remote_config.clone());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = build::build(&engine, &make_remote, rt.handle(), &opts, &*progress);
    drop(scratch);
    progress.finish();
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            progress.failure(&dockerfile, &file_name, e.lines(), &e.to_string());
            return Ok(1);
        }
    };
    if let Some(path) = &a.iidfile {
        std::fs::write(path, result.id.to_string())
            .with_context(|| format!("writing the image ID to {}", path.display()))?;
    }
    match &out {
        Output::Image { .. } => {}
        Output::Local(dir) => export_fs(&engine, &result.id, Some(dir), None)?,
        Output::Tar(file) => export_fs(&engine, &result.id, None, Some(file))?,
    }
    if a.push {
        let remote = make_remote();
        for t in &tags {
            let p = crate::cli::image::progress::CliProgress::new(mode != Mode::Plain);
            rt.block_on(engine.images().push(
                &remote,
                t,
                berth_client::remote::PushOptions {
                    chunk_size: config.push_chunk_size,
                },
                config.max_concurrent_uploads,
                p.clone(),
            ))
            .with_context(|| format!("pushing {}", t.familiar()))?;
            p.finish();
            if mode == Mode::Plain {
                eprintln!("pushed {t}");
            }
        }
    }
    if a.quiet {
        println!("{}", result.id);
    }
    Ok(0)
}

/// The built image's files into a directory or a tar file (`-o type=local|tar`).
fn export_fs(
    engine: &Engine,
    id: &berth_storage::Digest,
    dir: Option<&Path>,
    file: Option<&Path>,
) -> Result<()> {
    let image = engine.images().resolve(id.as_str())?;
    let layers: Vec<PathBuf> = image
        .layers
        .iter()
        .rev()
        .map(|l| engine.images().snapshot_dir(&l.chain_id))
        .collect();
    match (dir, file) {
        (_, Some(f)) => {
            let out =
                std::fs::File::create(f).with_context(|| format!("creating {}", f.display()))?;
            berth_client::layer::export(&layers, std::io::BufWriter::new(out))?;
        }
        (Some(d), None) => {
            std::fs::create_dir_all(d)?;
            let mut tar = Vec::new();
            berth_client::layer::export(&layers, &mut tar)?;
            berth_client::unpack::unpack_layer(
                &tar[..],
                d,
                &berth_client::unpack::UnpackOptions::default(),
            )?;
        }
        _ => {}
    }
    Ok(())
}
