//! The image commands: `pull`, `push`, `images`, `rmi`, `tag`, `inspect`, `history`, `save`,
//! `load`, `import`, `search`, `image …` and `system df`, with docker's names, flags and
//! output. Parsing and printing live here; the work is `berth_client::images`.

mod template;

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use berth_client::config::ClientConfig;
use berth_client::engine::Engine;
use berth_client::images::{
    familiar_of, human_ago, human_size, intermediates, ImageRecord, ImageStore, ImportOptions,
    LayerState, Progress, PullOptions, Removal, RemoveOptions,
};
use berth_client::reference::ImageRef;
use berth_client::remote::{Platform, PushOptions, Remote};
use berth_storage::Digest;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::Globals;
use template::{tabulate, Template};

#[derive(Subcommand)]
pub enum ImageCommand {
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PushArgs),
    /// List images
    Images(ListArgs),
    /// Remove one or more images
    Rmi(RmiArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Display detailed information on containers or images
    Inspect(InspectArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Search a registry for images
    Search(SearchArgs),
    /// Manage images
    Image {
        #[command(subcommand)]
        command: ImageSub,
    },
    /// Manage berth
    System {
        #[command(subcommand)]
        command: SystemSub,
    },
}

#[derive(Subcommand)]
pub enum ImageSub {
    /// List images
    #[command(visible_alias = "list")]
    Ls(ListArgs),
    /// Remove one or more images
    #[command(visible_alias = "remove")]
    Rm(RmiArgs),
    /// Display detailed information on one or more images
    Inspect(InspectArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PushArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Save one or more images to a tar archive
    Save(SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Remove unused images
    Prune(PruneArgs),
}

#[derive(Subcommand)]
pub enum SystemSub {
    /// Show disk usage
    Df(DfArgs),
}

#[derive(Args)]
pub struct PullArgs {
    /// Download all tagged images in the repository
    #[arg(short = 'a', long = "all-tags")]
    all_tags: bool,
    /// Set platform if server is multi-platform capable (os/arch[/variant])
    #[arg(long)]
    platform: Option<String>,
    /// Suppress verbose output
    #[arg(short, long)]
    quiet: bool,
    /// NAME[:TAG|@DIGEST]
    name: String,
}

#[derive(Args)]
pub struct PushArgs {
    /// Push all tags of the repository
    #[arg(short = 'a', long = "all-tags")]
    all_tags: bool,
    /// Suppress verbose output
    #[arg(short, long)]
    quiet: bool,
    /// NAME[:TAG]
    name: String,
}

#[derive(Args)]
pub struct ListArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short, long)]
    all: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// Show digests
    #[arg(long)]
    digests: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Filter output based on conditions provided (dangling=true, reference=PATTERN)
    #[arg(short, long = "filter")]
    filter: Vec<String>,
    /// Format output using a Go template, 'table', 'table TEMPLATE' or 'json'
    #[arg(long)]
    format: Option<String>,
    /// [REPOSITORY[:TAG]]
    reference: Option<String>,
}

#[derive(Args)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short, long)]
    force: bool,
    /// Do not delete untagged parents
    #[arg(long)]
    no_prune: bool,
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

#[derive(Args)]
pub struct TagArgs {
    source: String,
    target: String,
}

#[derive(Args)]
pub struct InspectArgs {
    /// Format output using a Go template or 'json'
    #[arg(short, long)]
    format: Option<String>,
    /// Return JSON for the specified type only (container or image)
    #[arg(long = "type", value_name = "TYPE")]
    kind: Option<String>,
    /// Display total file sizes if the type is container
    #[arg(short, long)]
    size: bool,
    #[arg(required = true, value_name = "NAME|ID")]
    images: Vec<String>,
}

#[derive(Args)]
pub struct HistoryArgs {
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set)]
    human: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// Format output using a Go template
    #[arg(long)]
    format: Option<String>,
    image: String,
}

#[derive(Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    output: Option<PathBuf>,
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

#[derive(Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short, long)]
    input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long = "change")]
    change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short, long)]
    message: Option<String>,
    /// Set platform (os/arch[/variant])
    #[arg(long)]
    platform: Option<String>,
    /// file or - for STDIN
    file: String,
    /// REPOSITORY[:TAG]
    reference: Option<String>,
}

#[derive(Args)]
pub struct SearchArgs {
    /// Max number of search results
    #[arg(long, default_value_t = 25)]
    limit: u32,
    /// Filter output based on conditions provided (is-official=true, stars=N)
    #[arg(short, long = "filter")]
    filter: Vec<String>,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Pretty-print search using a Go template
    #[arg(long)]
    format: Option<String>,
    term: String,
}

#[derive(Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

#[derive(Args)]
pub struct DfArgs {
    /// Format output using a Go template
    #[arg(long)]
    format: Option<String>,
}

/// Runs an image command; returns the exit status.
pub fn run(g: &Globals, cmd: ImageCommand) -> Result<i32> {
    let rt = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")
    };
    // search alone has no use for the local store.
    if let ImageCommand::Search(a) = cmd {
        return rt()?.block_on(search(a));
    }
    let store = g.open_store()?;
    // The listing commands read one file: no async runtime to start.
    let cmd = match cmd {
        ImageCommand::Images(a)
        | ImageCommand::Image {
            command: ImageSub::Ls(a),
        } => return quiet_pipe(list(&store, a)),
        ImageCommand::System {
            command: SystemSub::Df(a),
        } => return quiet_pipe(df(&store, a)),
        other => other,
    };
    rt()?.block_on(async move {
        match cmd {
            ImageCommand::Pull(a)
            | ImageCommand::Image {
                command: ImageSub::Pull(a),
            } => pull(&store, a).await,
            ImageCommand::Push(a)
            | ImageCommand::Image {
                command: ImageSub::Push(a),
            } => push(&store, a).await,
            ImageCommand::Images(a)
            | ImageCommand::Image {
                command: ImageSub::Ls(a),
            } => list(&store, a),
            ImageCommand::Rmi(a)
            | ImageCommand::Image {
                command: ImageSub::Rm(a),
            } => rmi(&store, a).await,
            ImageCommand::Tag(a)
            | ImageCommand::Image {
                command: ImageSub::Tag(a),
            } => {
                store.tag(&a.source, &a.target).await?;
                Ok(0)
            }
            ImageCommand::Inspect(a) => inspect(&store, a).await,
            ImageCommand::Image {
                command: ImageSub::Inspect(mut a),
            } => {
                a.kind = Some("image".into());
                inspect(&store, a).await
            }
            ImageCommand::History(a)
            | ImageCommand::Image {
                command: ImageSub::History(a),
            } => history(&store, a).await,
            ImageCommand::Save(a)
            | ImageCommand::Image {
                command: ImageSub::Save(a),
            } => save(&store, a).await,
            ImageCommand::Load(a)
            | ImageCommand::Image {
                command: ImageSub::Load(a),
            } => load(&store, a).await,
            ImageCommand::Import(a)
            | ImageCommand::Image {
                command: ImageSub::Import(a),
            } => import(&store, a).await,
            ImageCommand::Search(a) => search(a).await,
            ImageCommand::Image {
                command: ImageSub::Prune(a),
            } => prune(&store, a).await,
            ImageCommand::System {
                command: SystemSub::Df(a),
            } => df(&store, a),
        }
    })
}

/// A reader that went away (`berth images | head`) is not an error.
fn quiet_pipe(r: Result<i32>) -> Result<i32> {
    match r {
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(0)
        }
        other => other,
    }
}

fn remote() -> Result<(Remote, ClientConfig)> {
    let config = ClientConfig::load()?;
    let remote = Remote::new(config.remote_config()?);
    Ok((remote, config))
}

/// Progress as docker shows it: a bar per layer on a terminal, a line per step otherwise.
struct CliProgress {
    quiet: bool,
    bars: Option<indicatif::MultiProgress>,
    state: Mutex<HashMap<Digest, (Option<indicatif::ProgressBar>, String)>>,
}

impl CliProgress {
    fn new(quiet: bool) -> Arc<CliProgress> {
        let tty = std::io::stdout().is_terminal();
        Arc::new(CliProgress {
            quiet,
            bars: (tty && !quiet).then(indicatif::MultiProgress::new),
            state: Mutex::new(HashMap::new()),
        })
    }

    fn finish(&self) {
        if let Some(_m) = &self.bars {
            for (bar, _) in self.state.lock().unwrap().values() {
                if let Some(b) = bar {
                    if !b.is_finished() {
                        b.abandon();
                    }
                }
            }
        }
    }
}

fn status_text(s: &LayerState) -> Option<String> {
    Some(match s {
        LayerState::Waiting => "Pulling fs layer".into(),
        LayerState::AlreadyExists => "Already exists".into(),
        LayerState::Downloading { .. } => "Downloading".into(),
        LayerState::Extracting => "Extracting".into(),
        LayerState::PullComplete => "Pull complete".into(),
        LayerState::Preparing => "Preparing".into(),
        LayerState::Pushing { .. } => "Pushing".into(),
        LayerState::Pushed => "Pushed".into(),
        LayerState::LayerAlreadyExists => "Layer already exists".into(),
        LayerState::MountedFrom(r) => format!("Mounted from {r}"),
    })
}

impl Progress for CliProgress {
    fn layer(&self, digest: &Digest, state: LayerState) {
        if self.quiet {
            return;
        }
        let short = &digest.hex()[..12];
        let mut map = self.state.lock().unwrap();
        let known = map.contains_key(digest);
        // Only layers announced by Waiting/Preparing are shown (not the config blob).
        if !known && !matches!(state, LayerState::Waiting | LayerState::Preparing) {
            return;
        }
        let text = status_text(&state).unwrap_or_default();
        let entry = map.entry(digest.clone()).or_insert_with(|| {
            let bar = self.bars.as_ref().map(|m| {
                let b = m.add(indicatif::ProgressBar::new(0));
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{prefix}: {msg:<16} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                    )
                    .expect("a valid template")
                    .progress_chars("=> "),
                );
                b.set_prefix(short.to_string());
                b
            });
            (bar, String::new())
        });
        match &entry.0 {
            Some(bar) => {
                if let LayerState::Downloading { current, total }
                | LayerState::Pushing { current, total } = state
                {
                    bar.set_length(total);
                    bar.set_position(current);
                }
                if entry.1 != text {
                    bar.set_message(text.clone());
                }
                if matches!(
                    state,
                    LayerState::AlreadyExists
                        | LayerState::PullComplete
                        | LayerState::Pushed
                        | LayerState::LayerAlreadyExists
                        | LayerState::MountedFrom(_)
                ) {
                    // A layer that moved keeps its byte count and speed on its last line.
                    let moved = matches!(state, LayerState::PullComplete | LayerState::Pushed)
                        && bar.length().unwrap_or(0) > 0;
                    let template = if moved {
                        "{prefix}: {msg:<16} {total_bytes} in {elapsed} ({bytes_per_sec})"
                    } else {
                        "{prefix}: {msg}"
                    };
                    bar.set_style(
                        indicatif::ProgressStyle::with_template(template).expect("valid"),
                    );
                    bar.finish_with_message(text.clone());
                }
            }
            None => {
                if entry.1 != text
                    && !matches!(
                        state,
                        LayerState::Downloading { .. }
                            | LayerState::Pushing { .. }
                            | LayerState::Extracting
                    )
                {
                    println!("{short}: {text}");
                }
            }
        }
        entry.1 = text;
    }
}

fn parse_platform(p: &Option<String>) -> Result<Platform> {
    Ok(match p {
        Some(p) => p.parse()?,
        None => Platform::host(),
    })
}

async fn pull(store: &ImageStore, a: PullArgs) -> Result<i32> {
    let reference = ImageRef::parse(&a.name)?;
    if a.all_tags
        && (reference.digest().is_some()
            || a.name.rsplit('/').next().is_some_and(|l| l.contains(':')))
    {
        bail!("tag can't be used with --all-tags/-a");
    }
    let (remote, config) = remote()?;
    let options = PullOptions {
        platform: parse_platform(&a.platform)?,
        concurrency: config.max_concurrent_downloads,
    };
    let refs: Vec<ImageRef> = if a.all_tags {
        let mut tags = remote
            .tags(reference.registry(), reference.repository())
            .await?;
        tags.sort();
        if !a.quiet {
            println!("Pulling from {}", reference.repository());
        }
        tags.iter()
            .filter_map(|t| t.parse().ok())
            .map(|t| reference.with_tag(t))
            .collect()
    } else {
        if !a.quiet && reference.digest().is_none() && !has_explicit_tag(&a.name) {
            println!("Using default tag: latest");
        }
        vec![reference.clone()]
    };
    let progress = CliProgress::new(a.quiet);
    let mut any_new = false;
    for r in &refs {
        if !a.quiet && !a.all_tags {
            let what = r
                .tag()
                .map(|t| t.to_string())
                .unwrap_or_else(|| r.digest().map(|d| d.to_string()).unwrap_or_default());
            println!("{what}: Pulling from {}", r.repository());
        }
        let res = store.pull(&remote, r, &options, progress.clone()).await;
        progress.finish();
        let res = res?;
        any_new |= res.updated;
        if !a.quiet && !a.all_tags {
            println!("Digest: {}", res.digest);
            if res.updated {
                println!("Status: Downloaded newer image for {}", r.familiar());
            } else {
                println!("Status: Image is up to date for {}", r.familiar());
            }
        }
    }
    if a.all_tags {
        if !a.quiet {
            if any_new {
                println!(
                    "Status: Downloaded newer images for {}",
                    reference.familiar_name()
                );
            } else {
                println!(
                    "Status: Image is up to date for {}",
                    reference.familiar_name()
                );
            }
        }
        println!("{}", reference.name());
    } else {
        println!("{reference}");
    }
    Ok(0)
}

/// Whether the person wrote a tag (so docker's "Using default tag" is not printed).
fn has_explicit_tag(s: &str) -> bool {
    s.rsplit('/').next().is_some_and(|last| last.contains(':'))
}

async fn push(store: &ImageStore, a: PushArgs) -> Result<i32> {
    let reference = ImageRef::parse(&a.name)?;
    if reference.digest().is_some() {
        bail!("cannot push a digest reference");
    }
    let (remote, config) = remote()?;
    let refs: Vec<ImageRef> = if a.all_tags {
        let name = reference.name();
        store
            .list()?
            .iter()
            .flat_map(|i| i.tags.clone())
            .filter_map(|t| ImageRef::parse(&t).ok())
            .filter(|r| r.name() == name)
            .collect()
    } else {
        vec![reference.clone()]
    };
    if refs.is_empty() {
        bail!(
            "An image does not exist locally with the tag: {}",
            reference.familiar_name()
        );
    }
    if !a.quiet {
        println!("The push refers to repository [{}]", reference.name());
    }
    let options = PushOptions {
        chunk_size: config.push_chunk_size,
    };
    for r in refs {
        if store.resolve(&r.to_string()).is_err() {
            bail!(
                "An image does not exist locally with the tag: {}",
                r.familiar()
            );
        }
        let progress = CliProgress::new(a.quiet);
        let res = store
            .push(
                &remote,
                &r,
                options,
                config.max_concurrent_uploads,
                progress.clone(),
            )
            .await;
        progress.finish();
        let res = res?;
        if a.quiet {
            println!("{r}");
        } else {
            println!("{}: digest: {} size: {}", res.tag, res.digest, res.size);
        }
    }
    Ok(0)
}

/// `reference=PATTERN` as docker matches it: on the familiar name, and on `name:tag`.
fn glob(pattern: &str, s: &str) -> bool {
    fn m(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => m(&p[1..], s) || (!s.is_empty() && s[0] != b'/' && m(p, &s[1..])),
            (Some(b'?'), Some(c)) if *c != b'/' => m(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &s[1..]),
            _ => false,
        }
    }
    m(pattern.as_bytes(), s.as_bytes())
}

/// One row of `images`: a (repository, tag) of an image, with docker's field names.
fn image_rows(i: &ImageRecord, digests: bool) -> Vec<(String, String, String)> {
    let mut rows = Vec::new();
    let digest_of = |name: &str| -> String {
        i.repo_digests
            .iter()
            .filter_map(|d| d.split_once('@'))
            .find(|(n, _)| *n == name)
            .map(|(_, d)| d.to_string())
            .unwrap_or_else(|| "<none>".into())
    };
    let mut named = std::collections::BTreeSet::new();
    for t in &i.tags {
        if let Ok(r) = ImageRef::parse(t) {
            named.insert(r.name());
            rows.push((
                r.familiar_name(),
                r.tag().map(|t| t.to_string()).unwrap_or_default(),
                digest_of(&r.name()),
            ));
        }
    }
    // A repository known only by digest shows as `name <none>`, once.
    for d in &i.repo_digests {
        if let Ok(r) = ImageRef::parse(d) {
            if named.insert(r.name()) && (digests || rows.is_empty()) {
                rows.push((r.familiar_name(), "<none>".into(), digest_of(&r.name())));
            }
        }
    }
    if rows.is_empty() {
        rows.push(("<none>".into(), "<none>".into(), "<none>".into()));
    }
    rows
}

fn created_at(c: Option<&str>) -> String {
    c.and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%S +0000 UTC")
                .to_string()
        })
        .unwrap_or_default()
}

fn list(store: &ImageStore, a: ListArgs) -> Result<i32> {
    let mut dangling: Option<bool> = None;
    let mut patterns: Vec<String> = Vec::new();
    for f in &a.filter {
        match f.split_once('=') {
            Some(("dangling", v)) => {
                dangling = Some(match v {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => bail!("invalid filter 'dangling={v}'"),
                })
            }
            Some(("reference", p)) => patterns.push(p.to_string()),
            _ => bail!("invalid filter '{f}'"),
        }
    }
    if let Some(r) = &a.reference {
        patterns.push(r.clone());
    }
    let images = store.list()?;
    let hidden = if a.all {
        Default::default()
    } else {
        intermediates(&images)
    };
    let mut values: Vec<Value> = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    for i in images.iter().filter(|i| !hidden.contains(&i.id)) {
        if let Some(d) = dangling {
            if d != i.tags.is_empty() {
                continue;
            }
        }
        for (repo, tag, digest) in image_rows(i, a.digests) {
            if !patterns.is_empty() {
                let with_tag = format!("{repo}:{tag}");
                if repo == "<none>"
                    || !patterns
                        .iter()
                        .any(|p| glob(p, &repo) || glob(p, &with_tag))
                {
                    continue;
                }
            }
            let id = if a.no_trunc {
                i.id.to_string()
            } else {
                i.short_id().to_string()
            };
            if !ids.contains(&id) {
                ids.push(id.clone());
            }
            let size = human_size(i.size());
            values.push(json!({
                "Containers": "N/A",
                "CreatedAt": created_at(i.created.as_deref()),
                "CreatedSince": human_ago(i.created.as_deref()),
                "Digest": digest,
                "ID": id,
                "Repository": repo,
                "SharedSize": "N/A",
                "Size": size,
                "Tag": tag,
                "UniqueSize": "N/A",
                "VirtualSize": size,
            }));
        }
    }
    if a.quiet {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for id in ids {
            writeln!(out, "{id}")?;
        }
        out.flush()?;
        return Ok(0);
    }
    let format = match a.format.as_deref() {
        None | Some("table") | Some("") => {
            if a.digests {
                "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
            } else {
                "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
            }
        }
        Some("json") => "{{json .}}",
        Some(f) => f,
    };
    let headers = json!({
        "Containers": "CONTAINERS", "CreatedAt": "CREATED AT", "CreatedSince": "CREATED",
        "Digest": "DIGEST", "ID": "IMAGE ID", "Repository": "REPOSITORY", "SharedSize": "SHARED SIZE",
        "Size": "SIZE", "Tag": "TAG", "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE",
    });
    print_formatted(format, &headers, &values)
}

/// Renders values with a template; `table` formats get a header and aligned columns.
pub(crate) fn print_formatted(format: &str, headers: &Value, values: &[Value]) -> Result<i32> {
    let t = Template::parse(format).map_err(|e| anyhow::anyhow!("template parsing error: {e}"))?;
    let mut lines = Vec::new();
    if t.table {
        lines.push(
            t.render(headers)
                .map_err(|e| anyhow::anyhow!("template: {e}"))?,
        );
    }
    for v in values {
        lines.push(t.render(v).map_err(|e| anyhow::anyhow!("template: {e}"))?);
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if t.table {
        out.write_all(tabulate(&lines).as_bytes())?;
    } else {
        for l in lines {
            writeln!(out, "{l}")?;
        }
    }
    out.flush()?;
    Ok(0)
}

async fn rmi(store: &ImageStore, a: RmiArgs) -> Result<i32> {
    let mut code = 0;
    let in_use = images_in_use(store)?;
    for name in &a.images {
        let options = RemoveOptions {
            force: a.force,
            prune_parents: !a.no_prune,
            in_use: in_use.clone(),
        };
        match store.remove(name, options).await {
            Ok(actions) => {
                for act in actions {
                    match act {
                        Removal::Untagged(n) => println!("Untagged: {n}"),
                        Removal::Deleted(d) => println!("Deleted: {d}"),
                    }
                }
            }
            Err(e) => {
                eprintln!("Error: {}", super::one_line(&e.into()));
                code = 1;
            }
        }
    }
    Ok(code)
}

pub(crate) fn print_json_indented(v: &Value) -> Result<()> {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    serde::Serialize::serialize(v, &mut ser)?;
    buf.push(b'\n');
    std::io::stdout().write_all(&buf)?;
    Ok(())
}

async fn inspect(store: &ImageStore, a: InspectArgs) -> Result<i32> {
    let engine = Engine::with_images(store.clone())?;
    let mut out = Vec::new();
    let mut code = 0;
    let kind = a.kind.as_deref().unwrap_or("");
    if !matches!(kind, "" | "container" | "image") {
        bail!("\"{kind}\" is not a valid value for --type (container or image)");
    }
    for name in &a.images {
        // docker looks for a container first, then an image.
        if kind != "image" {
            if let Ok(rec) = engine.resolve(name) {
                out.push(super::containers::inspect_value(&engine, &rec, a.size));
                continue;
            }
        }
        let found = match kind {
            "container" => Err(anyhow::anyhow!("No such container: {name}")),
            "image" => store.resolve(name).map_err(anyhow::Error::from),
            // docker's word when it looked for every kind of object.
            _ => store
                .resolve(name)
                .map_err(|_| anyhow::anyhow!("No such object: {name}")),
        };
        match found {
            Ok(i) => out.push(store.inspect(&i).await?),
            Err(e) => {
                eprintln!("Error: {}", super::one_line(&e));
                code = 1;
            }
        }
    }
    print_inspect(&out, a.format.as_deref())?;
    Ok(code)
}

/// Prints `inspect` results: indented JSON, or each through a template.
pub(crate) fn print_inspect(out: &[Value], format: Option<&str>) -> Result<()> {
    match format {
        None | Some("") => print_json_indented(&Value::Array(out.to_vec()))?,
        Some("json") => println!("{}", serde_json::to_string(out)?),
        Some(f) => {
            let t =
                Template::parse(f).map_err(|e| anyhow::anyhow!("template parsing error: {e}"))?;
            for v in out {
                println!(
                    "{}",
                    t.render(v).map_err(|e| anyhow::anyhow!("template: {e}"))?
                );
            }
        }
    }
    Ok(())
}

/// Aligns tab-separated rows as docker's tables are.
pub(crate) fn tabulate_rows(rows: &[String]) -> String {
    tabulate(rows)
}

/// `run`/`create` of an image not in the store: docker's "Unable to find image" then a
/// pull, all on stderr (stdout is the container's).
pub(crate) fn pull_missing(
    store: &ImageStore,
    name: &str,
    platform: &Option<String>,
    quiet: bool,
    announce: bool,
) -> Result<ImageRecord> {
    let reference = ImageRef::parse(name)?;
    if announce && !quiet {
        eprintln!("Unable to find image '{}' locally", reference.familiar());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let res = rt.block_on(async {
        let (remote, config) = remote()?;
        let options = PullOptions {
            platform: parse_platform(platform)?,
            concurrency: config.max_concurrent_downloads,
        };
        if !quiet {
            let what = reference.tag().map(|t| t.to_string()).unwrap_or_else(|| {
                reference
                    .digest()
                    .map(|d| d.to_string())
                    .unwrap_or_default()
            });
            eprintln!("{what}: Pulling from {}", reference.repository());
        }
        let res = store
            .pull(&remote, &reference, &options, CliProgress::new(true))
            .await?;
        if !quiet {
            eprintln!("Digest: {}", res.digest);
            eprintln!(
                "Status: Downloaded newer image for {}",
                reference.familiar()
            );
        }
        anyhow::Ok(())
    });
    drop(rt);
    res?;
    Ok(store.resolve(name)?)
}

/// Image ids that containers use, each with one such container's short id.
fn images_in_use(store: &ImageStore) -> Result<BTreeMap<Digest, String>> {
    Ok(Engine::with_images(store.clone())?.images_in_use()?)
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() > n {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    } else {
        s.to_string()
    }
}

async fn history(store: &ImageStore, a: HistoryArgs) -> Result<i32> {
    let image = store.resolve(&a.image)?;
    let entries = store.history(&image).await?;
    let values: Vec<Value> = entries
        .iter()
        .map(|e| {
            let id = match &e.id {
                Some(d) if a.no_trunc => d.to_string(),
                Some(d) => d.hex()[..12].to_string(),
                None => "<missing>".into(),
            };
            let created_by = if a.no_trunc {
                e.created_by.clone()
            } else {
                truncate(&e.created_by, 45)
            };
            json!({
                "ID": id,
                "CreatedSince": if a.human { human_ago(e.created.as_deref()) } else { e.created.clone().unwrap_or_default() },
                "CreatedAt": e.created.clone().unwrap_or_default(),
                "CreatedBy": created_by,
                "Size": if a.human { human_size(e.size) } else { e.size.to_string() },
                "Comment": e.comment,
            })
        })
        .collect();
    if a.quiet {
        for v in &values {
            println!("{}", v["ID"].as_str().unwrap_or_default());
        }
        return Ok(0);
    }
    let format = match a.format.as_deref() {
        None | Some("") | Some("table") => {
            "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
        }
        Some("json") => "{{json .}}",
        Some(f) => f,
    };
    let headers = json!({"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
        "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"});
    print_formatted(format, &headers, &values)
}

async fn save(store: &ImageStore, a: SaveArgs) -> Result<i32> {
    match &a.output {
        Some(path) => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let tmp = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("creating {}", path.display()))?;
            let file = tmp.reopen()?;
            store.save(&a.images, std::io::BufWriter::new(file)).await?;
            tmp.persist(path)
                .map_err(|e| e.error)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => {
            if std::io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            store
                .save(&a.images, std::io::BufWriter::new(std::io::stdout()))
                .await?;
        }
    }
    Ok(0)
}

async fn load(store: &ImageStore, a: LoadArgs) -> Result<i32> {
    let loaded = match &a.input {
        Some(p) => {
            let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
            store.load(f).await?
        }
        None => {
            if std::io::stdin().is_terminal() {
                bail!("requested load from stdin, but stdin is empty");
            }
            store.load(std::io::stdin()).await?
        }
    };
    if !a.quiet {
        for l in loaded {
            if l.names.is_empty() {
                println!("Loaded image ID: {}", l.id);
            }
            for n in l.names {
                println!("Loaded image: {}", familiar_of(&n));
            }
        }
    }
    Ok(0)
}

async fn import(store: &ImageStore, a: ImportArgs) -> Result<i32> {
    let reference = a.reference.as_deref().map(ImageRef::parse).transpose()?;
    let options = ImportOptions {
        changes: a.change.clone(),
        message: a.message.clone(),
        platform: parse_platform(&a.platform)?,
        source: a.file.clone(),
    };
    let id = if a.file == "-" {
        store
            .import(std::io::stdin(), reference.as_ref(), &options)
            .await?
    } else {
        let f = std::fs::File::open(&a.file).with_context(|| format!("opening {}", a.file))?;
        store.import(f, reference.as_ref(), &options).await?
    };
    println!("{id}");
    Ok(0)
}

async fn search(a: SearchArgs) -> Result<i32> {
    let (registry, term) = match a.term.split_once('/') {
        Some((host, rest)) if host.contains(['.', ':']) || host == "localhost" => {
            (host.to_string(), rest.to_string())
        }
        _ => (
            berth_client::reference::DEFAULT_REGISTRY.to_string(),
            a.term.clone(),
        ),
    };
    let mut official: Option<bool> = None;
    let mut automated: Option<bool> = None;
    let mut stars: u64 = 0;
    for f in &a.filter {
        match f.split_once('=') {
            Some(("is-official", v)) => {
                official = Some(v.parse().with_context(|| format!("invalid filter '{f}'"))?)
            }
            Some(("is-automated", v)) => {
                automated = Some(v.parse().with_context(|| format!("invalid filter '{f}'"))?)
            }
            Some(("stars", v)) => {
                stars = v.parse().with_context(|| format!("invalid filter '{f}'"))?
            }
            _ => bail!("invalid filter '{f}'"),
        }
    }
    if !(1..=100).contains(&a.limit) {
        bail!("limit {} is outside the range of [1, 100]", a.limit);
    }
    let (remote, _) = remote()?;
    let res = remote.search(&registry, &term, Some(a.limit)).await?;
    let values: Vec<Value> = res
        .results
        .iter()
        .filter(|r| official.is_none_or(|o| r.is_official == o))
        .filter(|r| automated.is_none_or(|o| r.is_automated == o))
        .filter(|r| r.star_count >= stars)
        .take(a.limit as usize)
        .map(|r| {
            let desc = if a.no_trunc {
                r.description.clone()
            } else {
                truncate(&r.description.replace('\n', " "), 45)
            };
            json!({
                "Name": r.name,
                "Description": desc,
                "StarCount": r.star_count.to_string(),
                "IsOfficial": if r.is_official { "[OK]" } else { "" },
                "IsAutomated": if r.is_automated { "[OK]" } else { "" },
            })
        })
        .collect();
    let format = match a.format.as_deref() {
        None | Some("") | Some("table") => {
            "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}"
        }
        Some("json") => "{{json .}}",
        Some(f) => f,
    };
    let headers = json!({"Name": "NAME", "Description": "DESCRIPTION", "StarCount": "STARS",
        "IsOfficial": "OFFICIAL", "IsAutomated": "AUTOMATED"});
    print_formatted(format, &headers, &values)
}

async fn prune(store: &ImageStore, a: PruneArgs) -> Result<i32> {
    if !a.force {
        let warning = if a.all {
            "WARNING! This will remove all images without at least one container associated to them."
        } else {
            "WARNING! This will remove all dangling images."
        };
        print!("{warning}\nAre you sure you want to continue? [y/N] ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    let (removed, reclaimed) = store.prune(a.all, &images_in_use(store)?).await?;
    if !removed.is_empty() {
        println!("Deleted Images:");
        for r in removed {
            match r {
                Removal::Untagged(n) => println!("untagged: {n}"),
                Removal::Deleted(d) => println!("deleted: {d}"),
            }
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(reclaimed));
    Ok(0)
}

fn df(store: &ImageStore, a: DfArgs) -> Result<i32> {
    let engine = Engine::with_images(store.clone())?;
    let u = store.disk_usage(&engine.images_in_use()?)?;
    let c = engine.disk_usage()?;
    let pct = |r: u64, t: u64| (r * 100).checked_div(t).unwrap_or(0);
    let values = vec![
        json!({"Type": "Images", "TotalCount": u.images.to_string(), "Active": u.active.to_string(),
            "Size": human_size(u.size), "Reclaimable": format!("{} ({}%)", human_size(u.reclaimable), pct(u.reclaimable, u.size))}),
        json!({"Type": "Containers", "TotalCount": c.containers.to_string(), "Active": c.active.to_string(),
            "Size": human_size(c.size), "Reclaimable": format!("{} ({}%)", human_size(c.reclaimable), pct(c.reclaimable, c.size))}),
        json!({"Type": "Local Volumes", "TotalCount": c.volumes.to_string(), "Active": c.active_volumes.to_string(),
            "Size": human_size(c.volume_size), "Reclaimable": format!("{} ({}%)", human_size(c.volume_reclaimable), pct(c.volume_reclaimable, c.volume_size))}),
        json!({"Type": "Build Cache", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"}),
    ];
    let format = match a.format.as_deref() {
        None | Some("") | Some("table") => {
            "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
        }
        Some("json") => "{{json .}}",
        Some(f) => f,
    };
    let headers = json!({"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"});
    print_formatted(format, &headers, &values)
}
