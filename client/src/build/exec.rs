//! Running a planned build: base images resolved (pulled when missing or with `--pull`),
//! ONBUILD triggers of the bases put in front, the needed stages run in waves (the stages
//! whose dependencies are done run side by side, one thread each), the target's image
//! written into the store with its names.
//!
//! A stage is its image config, its layers and its environment (the config's Env plus the
//! ARGs it declared: variables of later instructions and of RUN, never of the image). Each
//! instruction changes them as BuildKit does; RUN, COPY, ADD and WORKDIR make a layer, the
//! others only the config. A layer step's cache key is the sha256 of the parent layer's
//! chain id (or the base) and a JSON description of the step with every value substituted:
//! for RUN its command, environment, user, directory, network and mounts; for COPY/ADD the
//! destination, flags and the digests of the sources' content; and SOURCE_DATE_EPOCH, which
//! changes the layer's bytes. `COPY --link` leaves the parent out, so its layer is reused
//! over any base.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_storage::Digest;
use serde_json::{json, Value};

use super::context::Context;
use super::copy::{base_of, LayerDir, Owner, Rootfs};
use super::ignore::{clean, Ignore};
use super::plan::{self, Base, FromSource, Plan, PlanOptions, PROXY_ARGS};
use super::{BuildError, BuildOptions, BuildResult, Progress};
use crate::dockerfile::config::{
    go_list, go_quoted_list, health_history, HealthConfig, History, ImageConfig, DEFAULT_PATH,
};
use crate::dockerfile::instructions::{self, Command, CommandLine, Copy, Instruction};
use crate::dockerfile::parser as dockerfile;
use crate::dockerfile::shell::Lexer;
use crate::engine::{Engine, NetworkMode, StepMount, StepProcess};
use crate::images::{CacheRecord, ImageRecord, ImageStore, LayerRecord, NoProgress, PullOptions};
use crate::layer::{write_layer, Compression, LayerOptions, LayerSource};
use crate::reference::ImageRef;
use crate::remote::{
    Remote, MEDIA_DOCKER_CONFIG, MEDIA_DOCKER_LAYER_TAR, MEDIA_DOCKER_MANIFEST, MEDIA_OCI_CONFIG,
    MEDIA_OCI_LAYER_TAR, MEDIA_OCI_MANIFEST,
};

type Result<T, E = BuildError> = std::result::Result<T, E>;

fn other(m: impl std::fmt::Display) -> BuildError {
    BuildError::Other(m.to_string())
}

fn step_err(cmd: &Command, message: impl Into<String>) -> BuildError {
    BuildError::Step {
        line: cmd.line,
        end_line: cmd.end_line,
        message: message.into(),
        exit_code: None,
    }
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn epoch_time(secs: i64) -> String {
    let t = chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default();
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The cache key of a step: its parent and what it does.
fn key(parent: &str, def: &Value) -> Digest {
    Digest::sha256_of(format!("{parent}\n{def}").as_bytes())
}

/// A base image, resolved.
#[derive(Clone)]
struct BaseImage {
    record: ImageRecord,
    config: ImageConfig,
    /// The name progress shows.
    name: String,
}

/// What a finished stage hands to the stages after it.
#[derive(Clone)]
struct StageOutput {
    config: ImageConfig,
    layers: Vec<LayerRecord>,
    env: Vec<(String, String)>,
    args: Vec<(String, Option<String>)>,
    /// The created time of its last layer step.
    created: Option<String>,
}

impl StageOutput {
    fn lower(&self, images: &ImageStore) -> Vec<PathBuf> {
        self.layers
            .iter()
            .rev()
            .map(|l| images.snapshot_dir(&l.chain_id))
            .collect()
    }

    fn top(&self) -> String {
        self.layers
            .last()
            .map_or_else(|| "scratch".to_string(), |l| l.chain_id.to_string())
    }
}

/// Everything the stages share.
struct Build<'a> {
    engine: &'a Engine,
    images: &'a ImageStore,
    /// Makes the registry client, when a base image must be pulled.
    remote: &'a (dyn Fn() -> Remote + Sync),
    rt: &'a tokio::runtime::Handle,
    opts: &'a BuildOptions,
    plan: Plan,
    ctx: Option<Context>,
    progress: &'a dyn Progress,
    vertex: AtomicUsize,
    bases: HashMap<String, BaseImage>,
    done: Mutex<BTreeMap<usize, StageOutput>>,
    /// Triggers put in front of each stage's commands.
    triggers: BTreeMap<usize, Vec<Command>>,
    multi: bool,
    ran: AtomicUsize,
    cached: AtomicUsize,
}

impl Build<'_> {
    fn next_vertex(&self) -> usize {
        self.vertex.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn now(&self) -> String {
        match self.opts.source_date_epoch {
            Some(e) => epoch_time(e),
            None => rfc3339(chrono::Utc::now()),
        }
    }

    /// A base image, from the store or pulled.
    fn resolve_image(&self, name: &str) -> Result<BaseImage> {
        let reference = ImageRef::parse(name).map_err(|e| other(format!("{name}: {e}")))?;
        let v = self.next_vertex();
        self.progress
            .start(v, &format!("[internal] load metadata for {reference}"));
        let local = self.images.resolve(name);
        let record = match local {
            Ok(r) if !self.opts.pull => r,
            Ok(_) | Err(crate::images::ImageError::NotFound(_)) => {
                let remote = (self.remote)();
                let pulled = self.rt.block_on(self.images.pull(
                    &remote,
                    &reference,
                    &PullOptions::default(),
                    Arc::new(NoProgress),
                ));
                match pulled {
                    Ok(p) => self
                        .images
                        .resolve(p.id.as_str())
                        .map_err(BuildError::Image)?,
                    Err(e) => {
                        let m = format!(
                            "{name}: failed to resolve source metadata for {reference}: {e}"
                        );
                        self.progress.error(v, &m);
                        return Err(other(m));
                    }
                }
            }
            Err(e) => {
                self.progress.error(v, &e.to_string());
                return Err(e.into());
            }
        };
        // A committed image's layers are unpacked when first used.
        self.images.unpack_missing(&record.layers)?;
        let data = self.images.config_sync(&record)?;
        let config =
            ImageConfig::from_json(&serde_json::to_vec(&data).expect("json")).map_err(other)?;
        self.progress.done(v);
        Ok(BaseImage {
            record,
            config,
            name: reference.to_string(),
        })
    }
}

/// Runs a build; see the module's documentation.
pub fn build(
    engine: &Engine,
    remote: &(dyn Fn() -> Remote + Sync),
    rt: &tokio::runtime::Handle,
    opts: &BuildOptions,
    progress: &dyn Progress,
) -> Result<BuildResult> {
    let images = engine.images();
    let vertex = AtomicUsize::new(0);
    let v = vertex.fetch_add(1, Ordering::SeqCst) + 1;
    let file_name = opts
        .dockerfile_path
        .as_ref()
        .and_then(|p| p.file_name())
        .map_or("Dockerfile".to_string(), |n| {
            n.to_string_lossy().to_string()
        });
    progress.start(
        v,
        &format!("[internal] load build definition from {file_name}"),
    );
    progress.status(
        v,
        &format!("transferring dockerfile: {}B done", opts.dockerfile.len()),
    );
    let file = match instructions::parse(&opts.dockerfile) {
        Ok(f) => f,
        Err(e) => {
            progress.error(v, &e.to_string());
            return Err(e.into());
        }
    };
    progress.done(v);
    if let Some(s) = &file.directives.syntax {
        progress.warning(&format!(
            "the `# syntax={s}` directive is ignored: berth reads Dockerfiles itself"
        ));
    }
    for w in &file.warnings {
        progress.warning(w);
    }
    let plan = plan::plan(
        file,
        &PlanOptions {
            build_args: opts.build_args.clone(),
            target: opts.target.clone(),
        },
    )?;
    let unused = plan.unused_build_args();
    if !unused.is_empty() {
        progress.warning(&format!(
            "One or more build-args [{}] were not consumed",
            unused.join(" ")
        ));
    }

    let ctx = match &opts.context {
        Some(dir) => {
            let v = vertex.fetch_add(1, Ordering::SeqCst) + 1;
            progress.start(v, "[internal] load .dockerignore");
            let state = images.build_state()?;
            let c =
                Context::open(dir, opts.dockerfile_path.as_deref(), Some(&state)).map_err(|e| {
                    progress.error(v, &e.to_string());
                    other(e)
                })?;
            let n: usize = c.ignore().patterns().iter().map(|p| p.len() + 1).sum();
            progress.status(v, &format!("transferring context: {n}B done"));
            progress.done(v);
            Some(c)
        }
        None => None,
    };
    let multi = plan.stages.len() > 1;
    let mut b = Build {
        engine,
        images,
        remote,
        rt,
        opts,
        plan,
        ctx,
        progress,
        vertex,
        bases: HashMap::new(),
        done: Mutex::new(BTreeMap::new()),
        triggers: BTreeMap::new(),
        multi,
        ran: AtomicUsize::new(0),
        cached: AtomicUsize::new(0),
    };
    resolve_bases(&mut b)?;
    if let Some(ctx) = b.ctx.as_ref().filter(|_| uses_context(&b)) {
        let v = b.next_vertex();
        b.progress.start(v, "[internal] load build context");
        let (files, bytes) = super::context::size(ctx);
        b.progress.status(
            v,
            &format!("transferring context: {bytes}B in {files} files done"),
        );
        b.progress.done(v);
    }
    run_stages(&b)?;
    if let Some(c) = &b.ctx {
        c.save_hashes();
    }
    export(&b)
}

/// Whether a needed stage reads the context (COPY/ADD without --from, bind mounts).
fn uses_context(b: &Build) -> bool {
    b.plan.needed.iter().any(|&i| {
        b.plan.stages[i]
            .commands
            .iter()
            .chain(b.triggers.get(&i).into_iter().flatten())
            .any(|c| match &c.instruction {
                Instruction::Copy(c) => c.from.is_none() && !c.sources.is_empty(),
                Instruction::Add(c) => c
                    .sources
                    .iter()
                    .any(|s| !s.starts_with("http://") && !s.starts_with("https://")),
                Instruction::Run(r) => r
                    .mounts
                    .iter()
                    .any(|m| m.contains("type=bind") && plan::mount_from(m).is_none()),
                _ => false,
            })
    })
}

/// Resolves the images the needed stages use, and the ONBUILD triggers of their bases.
fn resolve_bases(b: &mut Build) -> Result<()> {
    loop {
        let mut wanted: BTreeSet<String> = BTreeSet::new();
        for &i in &b.plan.needed {
            let s = &b.plan.stages[i];
            if let Base::Image(n) = &s.base {
                wanted.insert(n.clone());
            }
            for f in s.sources.values().flatten() {
                if let FromSource::Image(n) = f {
                    wanted.insert(n.clone());
                }
            }
        }
        let missing: Vec<String> = wanted
            .into_iter()
            .filter(|n| !b.bases.contains_key(n))
            .collect();
        let found: Vec<(String, Result<BaseImage>)> = std::thread::scope(|s| {
            let handles: Vec<_> = missing
                .iter()
                .map(|n| {
                    let bb = &*b;
                    (n.clone(), s.spawn(move || bb.resolve_image(n)))
                })
                .collect();
            handles
                .into_iter()
                .map(|(n, h)| (n, h.join().expect("resolving does not panic")))
                .collect()
        });
        for (n, r) in found {
            let r = r.map_err(|e| {
                match b
                    .plan
                    .stages
                    .iter()
                    .find(|s| s.base == Base::Image(n.clone()))
                {
                    Some(s) => BuildError::Step {
                        line: s.line,
                        end_line: s.line,
                        message: e.to_string(),
                        exit_code: None,
                    },
                    None => e,
                }
            })?;
            b.bases.insert(n, r);
        }
        // ONBUILD triggers of image bases (stage bases get theirs when they are done).
        let mut added = false;
        for &i in &b.plan.needed.clone() {
            if b.triggers.contains_key(&i) {
                continue;
            }
            let s = &b.plan.stages[i];
            let line = s.line;
            let texts = match &s.base {
                Base::Image(n) => b.bases[n].config.config.on_build.clone(),
                Base::Stage(j) => stage_onbuild(&b.plan.stages[*j].commands),
                Base::Scratch => vec![],
            };
            let mut cmds = Vec::new();
            for t in texts {
                let cmd = parse_trigger(&t, line)?;
                let found = plan::command_sources(&b.plan.file.stages, &cmd, i, b.plan.escape)?;
                for f in found {
                    if let FromSource::Stage(j) = f {
                        b.plan.stages[i].deps.insert(j);
                    }
                    let pos = b.plan.stages[i].commands.len() + cmds.len();
                    b.plan.stages[i]
                        .sources
                        .entry(1_000_000 + pos)
                        .or_default()
                        .push(f);
                    added = true;
                }
                cmds.push(cmd);
            }
            b.triggers.insert(i, cmds);
        }
        if !added {
            return Ok(());
        }
        let mut needed: BTreeSet<usize> = BTreeSet::new();
        let mut todo = vec![b.plan.target];
        while let Some(i) = todo.pop() {
            if needed.insert(i) {
                todo.extend(b.plan.stages[i].deps.iter().copied());
            }
        }
        b.plan.needed = needed.into_iter().collect();
    }
}

/// The ONBUILD instructions of a stage, as triggers.
fn stage_onbuild(cmds: &[Command]) -> Vec<String> {
    cmds.iter()
        .filter_map(|c| match &c.instruction {
            Instruction::Onbuild(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

fn parse_trigger(text: &str, line: usize) -> Result<Command> {
    let at = |m: String| BuildError::Parse(instructions::ParseError { line, message: m });
    let df = dockerfile::parse(text).map_err(|e| at(e.message))?;
    if df.nodes.len() != 1 {
        return Err(at("onbuild trigger should be a single expression".into()));
    }
    let mut cmd = instructions::command(&df.nodes[0]).map_err(|e| at(e.message))?;
    cmd.line = line;
    cmd.end_line = line;
    Ok(cmd)
}

/// Runs the needed stages: every stage whose dependencies are done, side by side.
fn run_stages(b: &Build) -> Result<()> {
    let mut left: Vec<usize> = b.plan.needed.clone();
    while !left.is_empty() {
        let ready: Vec<usize> = {
            let done = b.done.lock().expect("not poisoned");
            left.iter()
                .copied()
                .filter(|i| b.plan.stages[*i].deps.iter().all(|d| done.contains_key(d)))
                .collect()
        };
        if ready.is_empty() {
            return Err(other("circular dependency between stages"));
        }
        left.retain(|i| !ready.contains(i));
        let results: Vec<(usize, Result<StageOutput>)> = std::thread::scope(|s| {
            let handles: Vec<_> = ready
                .iter()
                .map(|&i| (i, s.spawn(move || run_stage(b, i))))
                .collect();
            handles
                .into_iter()
                .map(|(i, h)| (i, h.join().expect("a stage does not panic")))
                .collect()
        });
        for (i, r) in results {
            let out = r?;
            b.done.lock().expect("not poisoned").insert(i, out);
        }
    }
    Ok(())
}

/// A stage as it runs.
struct Stage<'b, 'a> {
    b: &'b Build<'a>,
    index: usize,
    config: ImageConfig,
    layers: Vec<LayerRecord>,
    env: Vec<(String, String)>,
    args: Vec<(String, Option<String>)>,
    cmd_set: bool,
    step: usize,
    total: usize,
    created: Option<String>,
}

fn counts_as_step(c: &Command) -> bool {
    matches!(
        c.instruction,
        Instruction::Run(_) | Instruction::Copy(_) | Instruction::Add(_) | Instruction::Workdir(_)
    )
}

fn run_stage(b: &Build, index: usize) -> Result<StageOutput> {
    let planned = &b.plan.stages[index];
    let triggers = b.triggers.get(&index).cloned().unwrap_or_default();
    let commands: Vec<(bool, Command)> = triggers
        .into_iter()
        .map(|c| (true, c))
        .chain(planned.commands.iter().cloned().map(|c| (false, c)))
        .collect();
    let from_step = matches!(planned.base, Base::Image(_));
    let total = usize::from(from_step) + commands.iter().filter(|(_, c)| counts_as_step(c)).count();
    let (config, layers, env, args) = match &planned.base {
        Base::Scratch => {
            let p = crate::remote::Platform::host();
            (
                ImageConfig::scratch(&p.os, &p.architecture, p.variant.as_deref()),
                vec![],
                vec![],
                vec![],
            )
        }
        Base::Image(n) => {
            let base = &b.bases[n];
            let mut c = base.config.clone();
            c.created = None;
            (c, base.record.layers.clone(), vec![], vec![])
        }
        Base::Stage(j) => {
            let done = b.done.lock().expect("not poisoned");
            let o = &done[j];
            let mut c = o.config.clone();
            c.config.on_build.clear();
            (c, o.layers.clone(), o.env.clone(), o.args.clone())
        }
    };
    let mut st = Stage {
        b,
        index,
        config,
        layers,
        env,
        args,
        cmd_set: false,
        step: 0,
        total,
        created: None,
    };
    if !st.config.config.env.iter().any(|e| e.starts_with("PATH=")) {
        st.config.config.env.push(format!("PATH={DEFAULT_PATH}"));
    }
    for (k, v) in st.config.env_pairs() {
        plan::set_pair(&mut st.env, &k, &v);
    }
    if let Base::Image(n) = &planned.base {
        let v = b.next_vertex();
        let name = st.label(&format!("FROM {}", b.bases[n].name));
        b.progress.start(v, &name);
        b.progress.cached(v);
    }
    // A base image's triggers run here; the image built carries only its own.
    st.config.config.on_build.clear();
    for (onbuild, cmd) in &commands {
        st.dispatch(cmd, *onbuild)?;
    }
    Ok(StageOutput {
        config: st.config,
        layers: st.layers,
        env: st.env,
        args: st.args,
        created: st.created,
    })
}

/// Fills a layer directory.
type Fill<'x> = Box<dyn FnOnce(&Path) -> Result<()> + 'x>;

/// What a step that makes a layer does, once it is known not to be cached.
enum Maker<'x> {
    Run(StepProcess),
    Fill(Fill<'x>),
}

impl<'b, 'a> Stage<'b, 'a> {
    fn label(&mut self, text: &str) -> String {
        self.step += 1;
        let width = self.total.to_string().len();
        let stage = if self.b.multi {
            format!("{} ", self.b.plan.stages[self.index].label)
        } else {
            String::new()
        };
        format!("[{stage}{:>width$}/{}] {text}", self.step, self.total)
    }

    fn lexer(&self) -> Lexer {
        Lexer::new(self.b.plan.escape)
    }

    fn expand(&self, cmd: &Command, word: &str) -> Result<String> {
        self.lexer()
            .word(word, &self.env)
            .map_err(|e| step_err(cmd, e.to_string()))
    }

    fn lower(&self) -> Vec<PathBuf> {
        self.layers
            .iter()
            .rev()
            .map(|l| self.b.images.snapshot_dir(&l.chain_id))
            .collect()
    }

    fn parent(&self) -> String {
        self.layers
            .last()
            .map_or_else(|| "scratch".to_string(), |l| l.chain_id.to_string())
    }

    /// The text progress shows: variables substituted, instruction in upper case.
    fn display(&self, cmd: &Command, onbuild: bool) -> String {
        let mut lx = self.lexer();
        lx.raw_quotes = true;
        lx.skip_unset = true;
        let text = lx
            .word(&cmd.text, &self.env)
            .unwrap_or_else(|_| cmd.text.clone());
        let mut parts = text.splitn(2, ' ');
        let first = parts.next().unwrap_or_default().to_ascii_uppercase();
        let rest = parts.next().map(|r| format!(" {r}")).unwrap_or_default();
        let prefix = if onbuild { "ONBUILD " } else { "" };
        format!("{prefix}{first}{rest}")
    }

    fn history(&mut self, created_by: String, empty: bool) {
        let created = match self.b.opts.source_date_epoch {
            Some(e) => Some(epoch_time(e)),
            None => self.created.clone(),
        };
        self.config.record(created_by, empty, created);
    }

    fn dispatch(&mut self, cmd: &Command, onbuild: bool) -> Result<()> {
        match &cmd.instruction {
            Instruction::Env(kvs) => {
                let mut msg = String::from("ENV");
                for kv in kvs {
                    let k = self.expand(cmd, &kv.key)?;
                    let v = self.expand(cmd, &kv.value)?;
                    msg.push_str(&format!(" {k}={v}"));
                    self.config.set_env(&k, &v);
                    plan::set_pair(&mut self.env, &k, &v);
                }
                self.history(msg, true);
            }
            Instruction::Label(kvs) => {
                let mut msg = String::from("LABEL");
                for kv in kvs {
                    let k = self.expand(cmd, &kv.key)?;
                    let v = self.expand(cmd, &kv.value)?;
                    msg.push_str(&format!(" {k}={v}"));
                    self.config.config.labels.insert(k, v);
                }
                self.history(msg, true);
            }
            Instruction::Maintainer(m) => {
                self.config.author = m.clone();
                self.history(format!("MAINTAINER {m}"), true);
            }
            Instruction::Arg(defs) => {
                let mut parts = Vec::new();
                for d in defs {
                    let key = self.expand(cmd, &d.key)?;
                    let value = match (self.b.plan.build_args.get(&key), &d.default) {
                        (Some(v), _) => Some(v.clone()),
                        (None, Some(def)) => Some(self.expand(cmd, def)?),
                        (None, None) => self.b.plan.global_value(&key),
                    };
                    if let Some(v) = &value {
                        plan::set_pair(&mut self.env, &key, v);
                    }
                    match self.args.iter_mut().find(|(k, _)| *k == key) {
                        Some(a) => a.1 = value.clone(),
                        None => self.args.push((key.clone(), value.clone())),
                    }
                    parts.push(match &value {
                        Some(v) => format!("{key}={v}"),
                        None => key,
                    });
                }
                self.history(format!("ARG {}", parts.join(" ")), true);
            }
            Instruction::User(u) => {
                let u = self.expand(cmd, u)?;
                self.history(format!("USER {u}"), true);
                self.config.config.user = u;
            }
            Instruction::Expose(ports) => {
                let mut words = Vec::new();
                for p in ports {
                    words.extend(
                        self.lexer()
                            .words(p, &self.env)
                            .map_err(|e| step_err(cmd, e.to_string()))?,
                    );
                }
                let mut specs = Vec::new();
                for w in &words {
                    specs.extend(instructions::expose_ports(w).map_err(|e| step_err(cmd, e))?);
                }
                for s in &specs {
                    self.config
                        .config
                        .exposed_ports
                        .insert(s.clone(), json!({}));
                }
                self.history(format!("EXPOSE {}", go_list(&specs)), true);
            }
            Instruction::Volume(vols) => {
                let mut out = Vec::new();
                for v in vols {
                    let v = self.expand(cmd, v)?;
                    if v.is_empty() {
                        return Err(step_err(cmd, "VOLUME specified can not be an empty string"));
                    }
                    self.config.config.volumes.insert(v.clone(), json!({}));
                    out.push(v);
                }
                self.history(format!("VOLUME {}", go_list(&out)), true);
            }
            Instruction::StopSignal(s) => {
                let s = self.expand(cmd, s)?;
                if berth_runtime::parse_signal(&s).is_err() {
                    return Err(step_err(cmd, format!("Invalid signal: {s}")));
                }
                self.history(format!("STOPSIGNAL {s}"), true);
                self.config.config.stop_signal = s;
            }
            Instruction::Cmd(line) => {
                let args = self.command_args(line);
                self.history(format!("CMD {}", go_quoted_list(&args)), true);
                self.config.config.cmd = Some(args);
                self.cmd_set = true;
            }
            Instruction::Entrypoint(line) => {
                let args = self.command_args(line);
                self.history(format!("ENTRYPOINT {}", go_quoted_list(&args)), true);
                self.config.config.entrypoint = if args.is_empty() && !line.shell_form {
                    None
                } else {
                    Some(args)
                };
                if !self.cmd_set {
                    self.config.config.cmd = None;
                }
            }
            Instruction::Shell(sh) => {
                self.config.config.shell = sh.clone();
                self.history(format!("SHELL {}", go_list(sh)), true);
            }
            Instruction::Healthcheck(h) => {
                let hc = HealthConfig::from(h);
                self.history(health_history(&hc), true);
                self.config.config.healthcheck = Some(hc);
            }
            Instruction::Onbuild(t) => {
                self.config.config.on_build.push(t.clone());
            }
            Instruction::Workdir(p) => self.workdir(cmd, p, onbuild)?,
            Instruction::Run(r) => self.run(cmd, r, onbuild)?,
            Instruction::Copy(c) => self.copy(cmd, c, false, onbuild)?,
            Instruction::Add(c) => self.copy(cmd, c, true, onbuild)?,
        }
        Ok(())
    }

    /// CMD/ENTRYPOINT's words: the exec form as is, the shell form under the shell.
    fn command_args(&self, line: &CommandLine) -> Vec<String> {
        if line.shell_form {
            self.config.with_shell(&line.args)
        } else {
            line.args.clone()
        }
    }

    /// Runs a step that makes a layer, or takes it from the cache.
    fn layer_step(
        &mut self,
        cmd: &Command,
        name: String,
        def: Value,
        link: bool,
        created_by: String,
        maker: Maker<'_>,
    ) -> Result<()> {
        let b = self.b;
        let v = b.next_vertex();
        b.progress.start(v, &name);
        let mut def = def;
        if let Some(e) = b.opts.source_date_epoch {
            def["epoch"] = json!(e);
        }
        let parent = self.parent();
        let k = if link {
            key("link", &def)
        } else {
            key(&parent, &def)
        };
        if !b.opts.no_cache {
            if let Some(rec) = b.images.cache_get(&k) {
                let layer = self.adopt(&rec).inspect_err(|e| {
                    b.progress.error(v, &e.to_string());
                })?;
                // The last use, to the minute: a rebuild within a minute of the last use
                // writes nothing (an atomic rewrite per step cost ~1/4 of a cached rebuild).
                let now = chrono::Utc::now();
                let recent = chrono::DateTime::parse_from_rfc3339(&rec.last_used)
                    .is_ok_and(|t| (now - t.with_timezone(&chrono::Utc)).num_seconds() < 60);
                if !recent {
                    let mut rec = rec.clone();
                    rec.last_used = rfc3339(now);
                    let _ = b.images.cache_touch(&k, &rec);
                }
                self.created = Some(rec.created.clone());
                self.layers.push(layer);
                self.history(created_by, false);
                b.cached.fetch_add(1, Ordering::SeqCst);
                b.progress.cached(v);
                return Ok(());
            }
        }
        let made = self.make_layer(cmd, v, maker, &k, &name);
        match made {
            Ok(layer) => {
                self.layers.push(layer);
                self.history(created_by, false);
                b.ran.fetch_add(1, Ordering::SeqCst);
                b.progress.done(v);
                Ok(())
            }
            Err(e) => {
                b.progress.error(v, &e.to_string());
                Err(e)
            }
        }
    }

    /// A cached layer on top of this stage's layers: its snapshot, made for this parent
    /// when it was cached over another (`--link`).
    fn adopt(&self, rec: &CacheRecord) -> Result<LayerRecord> {
        let mut layer = rec.layer.clone();
        let chain = match self.layers.last() {
            None => layer.diff_id.clone(),
            Some(p) => Digest::sha256_of(format!("{} {}", p.chain_id, layer.diff_id).as_bytes()),
        };
        if chain != layer.chain_id {
            let dir = self.b.images.snapshot_dir(&chain);
            if !dir.is_dir() {
                let tmp = self
                    .b
                    .images
                    .build_tmp()?
                    .join(uuid::Uuid::new_v4().simple().to_string());
                std::fs::create_dir_all(&tmp).map_err(other)?;
                let blob = self
                    .b
                    .images
                    .store()
                    .blobs
                    .local_path(&layer.digest)
                    .expect("a local store");
                let unpacked = std::fs::File::open(&blob).map_err(other).and_then(|f| {
                    crate::unpack::unpack_layer(f, &tmp, &crate::unpack::UnpackOptions::default())
                        .map_err(other)
                });
                if let Err(e) = unpacked {
                    let _ = crate::engine::remove_tree(&tmp);
                    return Err(e);
                }
                self.publish_snapshot(&tmp, &chain, &layer)?;
            }
            layer.chain_id = chain;
        }
        Ok(layer)
    }

    /// Moves a filled layer directory into the snapshots under `chain`.
    fn publish_snapshot(&self, dir: &Path, chain: &Digest, layer: &LayerRecord) -> Result<()> {
        let snap = self.b.images.snapshot_dir(chain);
        if snap.exists() || std::fs::rename(dir, &snap).is_err() {
            let _ = crate::engine::remove_tree(dir);
        }
        let meta = json!({"diff_id": layer.diff_id, "size": layer.unpacked_size});
        crate::images::write_snapshot_meta(&snap, &meta)?;
        Ok(())
    }

    fn make_layer(
        &mut self,
        cmd: &Command,
        v: usize,
        maker: Maker<'_>,
        k: &Digest,
        name: &str,
    ) -> Result<LayerRecord> {
        let b = self.b;
        let dir = b
            .images
            .build_tmp()?
            .join(uuid::Uuid::new_v4().simple().to_string());
        std::fs::create_dir_all(&dir).map_err(other)?;
        let result = (|| -> Result<LayerRecord> {
            match maker {
                Maker::Fill(f) => f(&dir)?,
                Maker::Run(mut p) => {
                    p.upper = dir.clone();
                    let started = std::time::Instant::now();
                    let progress = b.progress;
                    let code = b
                        .engine
                        .run_step(&p, &mut |_, data| progress.log(v, data))
                        .map_err(|e| step_err(cmd, e.to_string()))?;
                    let _ = started;
                    if code != 0 {
                        return Err(BuildError::Step {
                            line: cmd.line,
                            end_line: cmd.end_line,
                            message: format!(
                                "process \"{}\" did not complete successfully: exit code: {code}",
                                p.args.join(" ")
                            ),
                            exit_code: Some(code),
                        });
                    }
                }
            }
            let written = write_layer(
                b.images,
                LayerSource::Upper(&dir),
                &LayerOptions {
                    compression: Compression::None,
                    source_date_epoch: b.opts.source_date_epoch,
                    ..LayerOptions::default()
                },
            )
            .map_err(|e| step_err(cmd, e.to_string()))?;
            let chain = match self.layers.last() {
                None => written.diff_id.clone(),
                Some(p) => {
                    Digest::sha256_of(format!("{} {}", p.chain_id, written.diff_id).as_bytes())
                }
            };
            let layer = LayerRecord {
                digest: written.digest.clone(),
                media_type: written.media_type.to_string(),
                size: written.size,
                diff_id: written.diff_id.clone(),
                chain_id: chain.clone(),
                unpacked_size: written.uncompressed_size,
            };
            self.publish_snapshot(&dir, &chain, &layer)?;
            let now = rfc3339(chrono::Utc::now());
            let created = b.now();
            self.created = Some(created.clone());
            let rec = CacheRecord {
                layer: layer.clone(),
                created,
                last_used: now,
                description: name.to_string(),
            };
            b.rt.block_on(b.images.cache_put(k, &rec))?;
            Ok(layer)
        })();
        if dir.exists() {
            let _ = crate::engine::remove_tree(&dir);
        }
        result
    }

    fn workdir(&mut self, cmd: &Command, p: &str, onbuild: bool) -> Result<()> {
        let p = self.expand(cmd, p)?;
        let wd = if p.starts_with('/') {
            clean(&p)
        } else {
            let base = if self.config.config.working_dir.is_empty() {
                "/".to_string()
            } else {
                self.config.config.working_dir.clone()
            };
            clean(&format!("{base}/{p}"))
        };
        self.config.config.working_dir = wd.clone();
        let name = {
            let d = self.display(cmd, onbuild);
            self.label(&d)
        };
        if wd == "/" {
            let v = self.b.next_vertex();
            self.b.progress.start(v, &name);
            self.b.progress.done(v);
            self.history(format!("WORKDIR {wd}"), true);
            return Ok(());
        }
        let user = self.config.config.user.clone();
        let owner = self.owner_of_user(cmd, &user)?;
        let lower = self.lower();
        let def = json!({"op": "mkdir", "path": wd, "owner": owner.ids});
        let fill = {
            let wd = wd.clone();
            move |dir: &Path| -> Result<()> {
                let ld = LayerDir::new(dir, Rootfs { layers: &lower }, owner);
                ld.ensure_dir(&wd).map(|_| ()).map_err(other)
            }
        };
        self.layer_step(
            cmd,
            name,
            def,
            false,
            format!("WORKDIR {wd}"),
            Maker::Fill(Box::new(fill)),
        )
    }

    /// The owner a user's name or number gives (for WORKDIR's directories).
    fn owner_of_user(&self, cmd: &Command, user: &str) -> Result<Owner> {
        if user.is_empty() {
            return Ok(Owner::default());
        }
        let u = berth_runtime::resolve_user(&self.lower(), user)
            .map_err(|e| step_err(cmd, e.to_string()))?;
        Ok(Owner {
            ids: Some((u.uid, u.gid)),
            ..Owner::default()
        })
    }

    /// `--chown` as docker reads it: a missing group is the user's number.
    fn chown(&self, cmd: &Command, spec: &str, layers: &[PathBuf]) -> Result<(u32, u32)> {
        let u = berth_runtime::resolve_user(layers, spec).map_err(|e| {
            step_err(
                cmd,
                format!("unable to convert uid/gid chown string to host mapping: {e}"),
            )
        })?;
        Ok(if spec.contains(':') {
            (u.uid, u.gid)
        } else {
            (u.uid, u.uid)
        })
    }

    fn run(&mut self, cmd: &Command, r: &instructions::Run, onbuild: bool) -> Result<()> {
        let b = self.b;
        let mut args = r.cmd.args.clone();
        let mut mounts: Vec<StepMount> = Vec::new();
        let mut scripts: Vec<(String, String)> = Vec::new();
        let mut summary = String::new();
        if !r.cmd.files.is_empty() {
            if args.len() != 1 || !r.cmd.shell_form {
                return Err(step_err(
                    cmd,
                    format!("parsing produced an invalid run command: {args:?}"),
                ));
            }
            let first = &r.cmd.files[0];
            let only_heredoc = dockerfile::heredoc_of(&args[0]).ok().flatten().is_some();
            if only_heredoc {
                let data = first.body();
                if data.starts_with("#!") {
                    scripts.push((first.name.clone(), data.clone()));
                    args = vec![format!("/dev/pipes/{}", first.name)];
                } else {
                    args = vec![data.clone()];
                }
                let t = first.content.trim();
                let mut lines = t.lines();
                summary = format!(
                    " ({}{})",
                    lines.next().unwrap_or_default(),
                    if lines.next().is_some() { "..." } else { "" }
                );
            } else {
                let mut s = args[0].clone();
                for f in &r.cmd.files {
                    s.push('\n');
                    s.push_str(&f.content);
                    s.push_str(&f.name);
                }
                args = vec![s];
            }
        }
        if r.cmd.shell_form {
            args = self.config.with_shell(&args);
        }
        let network = match r.network.as_str() {
            "none" => NetworkMode::None,
            "host" => NetworkMode::Host,
            _ => b.opts.network,
        };
        let mut mount_defs = Vec::new();
        for m in &r.mounts {
            let (mount, desc) = self.run_mount(cmd, m)?;
            mounts.extend(mount);
            mount_defs.push(desc);
        }
        let tmp = b.images.build_tmp()?;
        let mut script_files = Vec::new();
        for (name, data) in &scripts {
            let f = tmp.join(format!("script-{}", uuid::Uuid::new_v4().simple()));
            std::fs::write(&f, data).map_err(other)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).map_err(other)?;
            mounts.push(StepMount {
                source: f.clone(),
                destination: format!("/dev/pipes/{name}"),
                read_only: true,
            });
            script_files.push(f);
        }
        let env: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut run_env = env.clone();
        for p in PROXY_ARGS {
            if let Some(v) = b.plan.build_args.get(*p) {
                if !self.env.iter().any(|(k, _)| k == p) {
                    run_env.push(format!("{p}={v}"));
                }
            }
        }
        let workdir = if self.config.config.working_dir.is_empty() {
            "/".to_string()
        } else {
            self.config.config.working_dir.clone()
        };
        let user = self.config.config.user.clone();
        let def = json!({
            "op": "run",
            "args": args,
            "env": env,
            "user": user,
            "cwd": workdir,
            "network": format!("{network:?}"),
            "mounts": mount_defs,
            "scripts": scripts,
        });
        let created_by = format!("RUN {} # buildkit", self.run_string(&args));
        let name = {
            let d = self.display(cmd, onbuild);
            self.label(&format!("{d}{summary}"))
        };
        let process = StepProcess {
            lower: self.lower(),
            upper: PathBuf::new(),
            args,
            env: run_env,
            user,
            workdir,
            network,
            mounts,
        };
        let r = self.layer_step(cmd, name, def, false, created_by, Maker::Run(process));
        for f in script_files {
            let _ = std::fs::remove_file(f);
        }
        r
    }

    /// BuildKit's history text of a RUN: `|N K=V … args`.
    fn run_string(&self, args: &[String]) -> String {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in &self.args {
            let value = self
                .env
                .iter()
                .find(|(e, _)| e == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| v.clone().unwrap_or_default());
            match pairs.iter_mut().find(|(p, _)| p == k) {
                Some(p) => p.1 = value,
                None => pairs.push((k.clone(), value)),
            }
        }
        let mut parts: Vec<String> = Vec::new();
        if !pairs.is_empty() {
            parts.push(format!("|{}", pairs.len()));
            parts.extend(pairs.into_iter().map(|(k, v)| format!("{k}={v}")));
        }
        parts.extend(args.iter().cloned());
        parts.join(" ")
    }

    /// A `--mount` of RUN: what to mount, and what the cache key says of it.
    fn run_mount(&self, cmd: &Command, value: &str) -> Result<(Vec<StepMount>, Value)> {
        let b = self.b;
        let mut kind = "bind".to_string();
        let mut fields: BTreeMap<String, String> = BTreeMap::new();
        let mut ro: Option<bool> = None;
        for field in value.split(',') {
            let field = field.trim();
            if field.is_empty() {
                continue;
            }
            let (k, v) = match field.split_once('=') {
                Some((k, v)) => (k.to_ascii_lowercase(), Some(self.expand(cmd, v)?)),
                None => (field.to_ascii_lowercase(), None),
            };
            match (k.as_str(), v) {
                ("type", Some(v)) => kind = v.to_ascii_lowercase(),
                ("readonly" | "ro", None) => ro = Some(true),
                ("readwrite" | "rw", None) => ro = Some(false),
                ("readonly" | "ro", Some(v)) => {
                    ro = Some(
                        parse_bool(&v)
                            .ok_or_else(|| step_err(cmd, format!("invalid value for {k}: {v}")))?,
                    )
                }
                ("readwrite" | "rw", Some(v)) => {
                    ro = Some(
                        !parse_bool(&v)
                            .ok_or_else(|| step_err(cmd, format!("invalid value for {k}: {v}")))?,
                    )
                }
                (k, Some(v)) => {
                    let k = match k {
                        "src" => "source",
                        "dst" | "destination" => "target",
                        k => k,
                    };
                    if !matches!(
                        k,
                        "from"
                            | "source"
                            | "target"
                            | "id"
                            | "sharing"
                            | "mode"
                            | "uid"
                            | "gid"
                            | "size"
                            | "required"
                            | "env"
                    ) {
                        return Err(step_err(cmd, format!("unexpected key '{k}' in '{field}'")));
                    }
                    fields.insert(k.to_string(), v);
                }
                (_, None) => {
                    return Err(step_err(
                        cmd,
                        format!("invalid field '{field}' must be a key=value pair"),
                    ))
                }
            }
        }
        let Some(target) = fields.get("target").cloned() else {
            return Err(step_err(
                cmd,
                format!("mount type={kind}: the target is required"),
            ));
        };
        let target = if target.starts_with('/') {
            clean(&target)
        } else {
            let wd = self.config.config.working_dir.clone();
            clean(&format!(
                "{}/{target}",
                if wd.is_empty() { "/" } else { &wd }
            ))
        };
        match kind.as_str() {
            "cache" => {
                if fields.contains_key("from") {
                    return Err(step_err(
                        cmd,
                        "a cache mount with from= is not supported by berth",
                    ));
                }
                let id = fields.get("id").cloned().unwrap_or_else(|| target.clone());
                let sharing = fields
                    .get("sharing")
                    .cloned()
                    .unwrap_or_else(|| "shared".into());
                if !matches!(sharing.as_str(), "shared" | "private" | "locked") {
                    return Err(step_err(
                        cmd,
                        format!("unsupported sharing value {sharing:?}"),
                    ));
                }
                let dir = b
                    .images
                    .root()
                    .join("builder/mounts")
                    .join(Digest::sha256_of(id.as_bytes()).hex());
                if !dir.exists() {
                    std::fs::create_dir_all(&dir).map_err(other)?;
                    let num = |k: &str, radix: u32| -> Result<Option<u32>> {
                        fields
                            .get(k)
                            .map(|v| {
                                u32::from_str_radix(v, radix).map_err(|_| {
                                    step_err(cmd, format!("invalid value {v} for {k}"))
                                })
                            })
                            .transpose()
                    };
                    let mode = num("mode", 8)?.unwrap_or(0o755);
                    let uid = num("uid", 10)?.unwrap_or(0);
                    let gid = num("gid", 10)?.unwrap_or(0);
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))
                        .map_err(other)?;
                    std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(other)?;
                }
                Ok((
                    vec![StepMount {
                        source: dir,
                        destination: target.clone(),
                        read_only: ro.unwrap_or(false),
                    }],
                    json!({"type": "cache", "target": target, "id": id}),
                ))
            }
            "bind" => {
                let source = fields.get("source").cloned().unwrap_or_else(|| "/".into());
                let read_only = ro.unwrap_or(true);
                let copy = b
                    .images
                    .build_tmp()?
                    .join(format!("mount-{}", uuid::Uuid::new_v4().simple()));
                let desc = match fields.get("from") {
                    None => {
                        let ctx = b.ctx.as_ref().ok_or_else(|| {
                            step_err(cmd, "a bind mount of the context needs a context")
                        })?;
                        let rel = if source == "/" {
                            ".".to_string()
                        } else {
                            source.trim_start_matches('/').to_string()
                        };
                        let srcs = ctx
                            .sources(&rel)
                            .map_err(|e| step_err(cmd, e.to_string()))?;
                        let digest = ctx
                            .digest(&srcs)
                            .map_err(|e| step_err(cmd, e.to_string()))?;
                        std::fs::create_dir_all(&copy).map_err(other)?;
                        let no_below: Vec<PathBuf> = vec![];
                        let ld =
                            LayerDir::new(&copy, Rootfs { layers: &no_below }, Owner::default());
                        for s in &srcs {
                            let dest = if s.is_dir {
                                "/".to_string()
                            } else {
                                format!("/{}", base_of(&s.rel))
                            };
                            ld.copy_from_context(
                                ctx,
                                &s.rel,
                                &s.path,
                                s.is_dir,
                                &dest,
                                &Ignore::default(),
                            )
                            .map_err(|m| step_err(cmd, m))?;
                        }
                        json!({"type": "bind", "target": target, "context": digest, "source": source})
                    }
                    Some(from) => {
                        let (layers, id) = self.source_layers(from)?;
                        let r = Rootfs { layers: &layers };
                        let found = r.sources(&source).map_err(|m| step_err(cmd, m))?;
                        std::fs::create_dir_all(&copy).map_err(other)?;
                        let no_below: Vec<PathBuf> = vec![];
                        let ld =
                            LayerDir::new(&copy, Rootfs { layers: &no_below }, Owner::default());
                        for (path, host, meta) in &found {
                            let dest = if meta.is_dir() {
                                "/".to_string()
                            } else {
                                format!("/{}", base_of(path))
                            };
                            ld.copy_from_rootfs(&r, path, host, meta, &dest, &Ignore::default())
                                .map_err(|m| step_err(cmd, m))?;
                        }
                        json!({"type": "bind", "target": target, "from": id, "source": source})
                    }
                };
                // A file source is mounted as the file.
                let single = std::fs::read_dir(&copy)
                    .map(|r| r.flatten().map(|e| e.path()).collect::<Vec<_>>())
                    .unwrap_or_default();
                let src = match single.as_slice() {
                    [one] if !one.is_dir() && !source.ends_with('/') && source != "/" => {
                        one.clone()
                    }
                    _ => copy,
                };
                Ok((
                    vec![StepMount {
                        source: src,
                        destination: target,
                        read_only,
                    }],
                    desc,
                ))
            }
            "tmpfs" => {
                let dir = b
                    .images
                    .build_tmp()?
                    .join(format!("tmpfs-{}", uuid::Uuid::new_v4().simple()));
                std::fs::create_dir_all(&dir).map_err(other)?;
                Ok((
                    vec![StepMount {
                        source: dir,
                        destination: target.clone(),
                        read_only: false,
                    }],
                    json!({"type": "tmpfs", "target": target}),
                ))
            }
            "secret" | "ssh" => Err(step_err(
                cmd,
                format!("RUN --mount=type={kind} needs --{kind}, which berth build does not take"),
            )),
            other => Err(step_err(cmd, format!("unsupported mount type {other:?}"))),
        }
    }

    /// The snapshots of a `--from` source (stage or image) and what identifies its content.
    fn source_layers(&self, from: &str) -> Result<(Vec<PathBuf>, String)> {
        let stages = &self.b.plan.file.stages;
        let index = from.parse::<usize>().ok().or_else(|| {
            stages
                .iter()
                .position(|s| s.name.as_deref() == Some(from.to_ascii_lowercase().as_str()))
        });
        if let Some(i) = index {
            let done = self.b.done.lock().expect("not poisoned");
            let o = done
                .get(&i)
                .ok_or_else(|| other(format!("stage {from} has not been built")))?;
            return Ok((o.lower(self.b.images), format!("stage:{}", o.top())));
        }
        let base = self
            .b
            .bases
            .get(from)
            .ok_or_else(|| other(format!("image {from} was not resolved")))?;
        let lower: Vec<PathBuf> = base
            .record
            .layers
            .iter()
            .rev()
            .map(|l| self.b.images.snapshot_dir(&l.chain_id))
            .collect();
        Ok((lower, format!("image:{}", base.record.id)))
    }

    fn copy(&mut self, cmd: &Command, c: &Copy, add: bool, onbuild: bool) -> Result<()> {
        let b = self.b;
        let what = if add { "ADD" } else { "COPY" };
        let mut srcs = Vec::new();
        for s in &c.sources {
            srcs.push(self.expand(cmd, s)?);
        }
        let dest_raw = self.expand(cmd, &c.dest)?;
        let chown = c.chown.as_ref().map(|x| self.expand(cmd, x)).transpose()?;
        let chmod = c.chmod.as_ref().map(|x| self.expand(cmd, x)).transpose()?;
        let checksum = c
            .checksum
            .as_ref()
            .map(|x| self.expand(cmd, x))
            .transpose()?;
        let mode = match &chmod {
            None => None,
            Some(m) => Some(
                u32::from_str_radix(m, 8)
                    .ok()
                    .filter(|v| *v <= 0o7777)
                    .ok_or_else(|| {
                        step_err(
                            cmd,
                            format!("invalid chmod parameter: '{m}'. it should be octal string and between 0 and 07777"),
                        )
                    })?,
            ),
        };
        let lower = self.lower();
        let ids = match &chown {
            Some(spec) => Some(self.chown(cmd, spec, &lower)?),
            None => None,
        };
        let owner = Owner {
            ids,
            mode,
            keep: false,
        };
        // The destination, absolute, inside the image (symlinks of the image followed).
        let wd = if self.config.config.working_dir.is_empty() {
            "/".to_string()
        } else {
            self.config.config.working_dir.clone()
        };
        let dest_text = if dest_raw.is_empty() || dest_raw == "." {
            "./".to_string()
        } else {
            dest_raw.clone()
        };
        let dir_form = dest_text.ends_with('/') || dest_text.ends_with("/.");
        let dest_abs = if dest_text.starts_with('/') {
            clean(&dest_text)
        } else {
            clean(&format!("{wd}/{dest_text}"))
        };
        let below = Rootfs { layers: &lower };
        let dest = below.resolve(&dest_abs, dir_form);
        let dest_is_dir_below = {
            let r = below.resolve(&dest, true);
            below.entry(&r).is_some_and(|(_, m)| m.is_dir())
        };
        let excludes = Ignore::new(&c.excludes).map_err(|e| step_err(cmd, e.to_string()))?;
        if checksum.is_some() && !add {
            return Err(step_err(cmd, "checksum can't be specified for COPY"));
        }

        let mut def_sources = Vec::new();
        // What to copy, once the step runs.
        enum Item {
            Context(super::context::Source),
            Rootfs(String, PathBuf, std::fs::Metadata),
            Url(String),
            Inline(String, String),
        }
        let mut items: Vec<Item> = Vec::new();
        let mut from_layers: Vec<PathBuf> = Vec::new();
        match &c.from {
            Some(from) => {
                let (layers, id) = self
                    .source_layers(from)
                    .map_err(|e| step_err(cmd, e.to_string()))?;
                from_layers = layers;
                let r = Rootfs {
                    layers: &from_layers,
                };
                for s in &srcs {
                    let found = r.sources(s).map_err(|m| {
                        step_err(
                            cmd,
                            format!("{what} failed: failed to compute cache key: {m}"),
                        )
                    })?;
                    for (path, host, meta) in found {
                        def_sources.push(json!({"from": id, "path": path}));
                        items.push(Item::Rootfs(path, host, meta));
                    }
                }
            }
            None => {
                for s in &srcs {
                    if add && (s.starts_with("http://") || s.starts_with("https://")) {
                        items.push(Item::Url(s.clone()));
                        continue;
                    }
                    if add && is_git(s) {
                        return Err(step_err(cmd, "ADD from a Git repository is not supported by berth; clone it in the context first"));
                    }
                    let ctx = b.ctx.as_ref().ok_or_else(|| {
                        step_err(
                            cmd,
                            format!(
                                "{what} failed: no build context: the Dockerfile came from stdin"
                            ),
                        )
                    })?;
                    let found = ctx
                        .sources(s)
                        .map_err(|e| step_err(cmd, format!("{what} failed: {e}")))?;
                    let digest = ctx
                        .digest(&found)
                        .map_err(|e| step_err(cmd, e.to_string()))?;
                    def_sources.push(json!({"source": s, "digest": digest}));
                    items.extend(found.into_iter().map(Item::Context));
                }
            }
        }
        if let Some(ck) = &checksum {
            if c.sources.len() != 1 || !matches!(items.first(), Some(Item::Url(_))) {
                return Err(step_err(cmd, "checksum requires HTTP(S) or Git sources"));
            }
            if !ck.starts_with("sha256:") {
                return Err(step_err(
                    cmd,
                    format!("invalid checksum digest format: {ck}"),
                ));
            }
        }
        for inline in &c.inline {
            let data = if inline.expand {
                let mut lx = Lexer::new('\\');
                lx.no_quotes = true;
                lx.word(&inline.data, &self.env)
                    .map_err(|e| step_err(cmd, e.to_string()))?
            } else {
                inline.data.clone()
            };
            def_sources.push(json!({"inline": inline.path, "data": data}));
            items.push(Item::Inline(inline.path.clone(), data));
        }
        // URLs are fetched now: their content is part of the key.
        let mut downloads: BTreeMap<String, (PathBuf, Option<i64>, String)> = BTreeMap::new();
        for it in &items {
            if let Item::Url(u) = it {
                let (path, mtime, digest) = self.download(cmd, u, checksum.as_deref())?;
                def_sources.push(json!({"url": u, "digest": digest}));
                downloads.insert(u.clone(), (path, mtime, digest));
            }
        }
        let count = items.len();
        if count > 1 && !dir_form && !dest_is_dir_below {
            return Err(step_err(
                cmd,
                format!("When using {what} with more than one source file, the destination must be a directory and end with a /"),
            ));
        }
        let into_dir = dir_form || dest_is_dir_below || count > 1;
        let unpack = c.unpack.unwrap_or(add);
        let def = json!({
            "op": what, "dest": dest, "into_dir": into_dir, "chown": ids, "chmod": mode,
            "excludes": c.excludes, "sources": def_sources, "unpack": unpack,
        });
        let mut created_by = String::from(what);
        if let Some(o) = &chown {
            created_by.push_str(&format!(" --chown={o}"));
        }
        if let Some(m) = &chmod {
            created_by.push_str(&format!(" --chmod={m}"));
        }
        for s in &srcs {
            created_by.push_str(&format!(" {s}"));
        }
        for i in &c.inline {
            created_by.push_str(&format!(" <<{}", i.path));
        }
        created_by.push_str(&format!(" {} # buildkit", c.dest));
        let name = {
            let d = self.display(cmd, onbuild);
            self.label(&d)
        };
        let lower2 = lower.clone();
        let ctx = b.ctx.as_ref();
        let fetched: Vec<PathBuf> = downloads.values().map(|d| d.0.clone()).collect();
        let cmd2 = cmd.clone();
        let fill = move |dir: &Path| -> Result<()> {
            let ld = LayerDir::new(dir, Rootfs { layers: &lower2 }, owner);
            let from = Rootfs {
                layers: &from_layers,
            };
            let place = |name: &str| -> String {
                if into_dir {
                    format!("{}/{name}", dest.trim_end_matches('/'))
                } else {
                    dest.clone()
                }
            };
            let fail = |m: String| step_err(&cmd2, m);
            if into_dir {
                ld.ensure_dir(&dest).map_err(fail)?;
            }
            for it in items {
                match it {
                    Item::Context(s) => {
                        let ctx = ctx.expect("context sources need a context");
                        if !s.is_dir && unpack && try_extract(&ld, &s.path, &dest).map_err(fail)? {
                            continue;
                        }
                        let target = if s.is_dir {
                            dest.clone()
                        } else {
                            place(&base_of(&s.rel))
                        };
                        ld.copy_from_context(ctx, &s.rel, &s.path, s.is_dir, &target, &excludes)
                            .map_err(fail)?;
                    }
                    Item::Rootfs(path, host, meta) => {
                        let target = if meta.is_dir() {
                            dest.clone()
                        } else {
                            place(&base_of(&path))
                        };
                        ld.copy_from_rootfs(&from, &path, &host, &meta, &target, &excludes)
                            .map_err(fail)?;
                    }
                    Item::Url(u) => {
                        let (path, mtime, _) = &downloads[&u];
                        if c.unpack == Some(true) && try_extract(&ld, path, &dest).map_err(fail)? {
                            continue;
                        }
                        let name = url_file_name(&u);
                        let data = std::fs::read(path).map_err(other)?;
                        ld.write_file(&place(&name), &data, 0o600, *mtime)
                            .map_err(fail)?;
                    }
                    Item::Inline(name, data) => {
                        ld.write_file(&place(&name), data.as_bytes(), 0o644, None)
                            .map_err(fail)?;
                    }
                }
            }
            Ok(())
        };
        let r = self.layer_step(
            cmd,
            name,
            def,
            c.link,
            created_by,
            Maker::Fill(Box::new(fill)),
        );
        for path in fetched {
            let _ = std::fs::remove_file(path);
        }
        r
    }

    /// Fetches an ADD URL into a temporary file: its path, Last-Modified time and digest.
    fn download(
        &self,
        cmd: &Command,
        url: &str,
        checksum: Option<&str>,
    ) -> Result<(PathBuf, Option<i64>, String)> {
        use sha2::Digest as _;
        let path = self
            .b
            .images
            .build_tmp()?
            .join(format!("download-{}", uuid::Uuid::new_v4().simple()));
        let fetched = self.b.rt.block_on(async {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(600))
                .build()
                .map_err(|e| e.to_string())?;
            let resp = client.get(url).send().await.map_err(|e| e.to_string())?;
            if !resp.status().is_success() {
                return Err(format!(
                    "invalid response status {}",
                    resp.status().as_u16()
                ));
            }
            let mtime = resp
                .headers()
                .get(reqwest::header::LAST_MODIFIED)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
                .map(|t| t.timestamp());
            let body = resp.bytes().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((body, mtime))
        });
        let (body, mtime) =
            fetched.map_err(|e| step_err(cmd, format!("failed to load {url}: {e}")))?;
        let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&body)));
        if let Some(want) = checksum {
            if want != digest {
                return Err(step_err(cmd, format!("digest mismatch {want}: {digest}")));
            }
        }
        std::fs::write(&path, &body).map_err(other)?;
        Ok((path, mtime, digest))
    }
}

fn is_git(s: &str) -> bool {
    s.starts_with("git@") || s.starts_with("git://") || (s.contains("://") && s.ends_with(".git"))
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "t" | "true" => Some(true),
        "0" | "f" | "false" => Some(false),
        _ => None,
    }
}

/// The file name an ADD of a URL gives: the path's last part.
fn url_file_name(url: &str) -> String {
    let path = url
        .split_once("://")
        .map_or(url, |(_, r)| r)
        .split_once('/')
        .map_or("", |(_, p)| p);
    let path = path.split(['?', '#']).next().unwrap_or_default();
    match path.trim_end_matches('/').rsplit('/').next() {
        Some(n) if !n.is_empty() && n != "." => n.to_string(),
        _ => "__unnamed__".into(),
    }
}

/// Extracts `file` into `dest` when it is a tar archive (plain, gzip or zstd), as ADD does;
/// `false` when it is not one.
fn try_extract(ld: &LayerDir<'_>, file: &Path, dest: &str) -> Result<bool, String> {
    if !is_archive(file) {
        return Ok(false);
    }
    let dir = ld.ensure_dir(dest)?;
    let f = std::fs::File::open(file).map_err(|e| e.to_string())?;
    crate::unpack::unpack_layer(f, &dir, &crate::unpack::UnpackOptions::default())
        .map_err(|e| format!("extracting {}: {e}", file.display()))?;
    Ok(true)
}

/// Whether a file is a tar archive, maybe gzip- or zstd-compressed.
fn is_archive(file: &Path) -> bool {
    use std::io::Read;
    let Ok(f) = std::fs::File::open(file) else {
        return false;
    };
    let mut head = Vec::new();
    if f.take(1 << 16).read_to_end(&mut head).is_err() {
        return false;
    }
    let block: Vec<u8> = if head.starts_with(&[0x1f, 0x8b]) {
        let mut d = flate2::read::GzDecoder::new(&head[..]);
        let mut out = vec![0u8; 512];
        let mut n = 0;
        while n < 512 {
            match d.read(&mut out[n..]) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k,
            }
        }
        out.truncate(n);
        out
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let Ok(mut d) = zstd::stream::read::Decoder::new(&head[..]) else {
            return false;
        };
        let mut out = vec![0u8; 512];
        let mut n = 0;
        while n < 512 {
            match d.read(&mut out[n..]) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k,
            }
        }
        out.truncate(n);
        out
    } else {
        head.into_iter().take(512).collect()
    };
    if block.len() < 512 {
        return false;
    }
    // A tar header's checksum: the sum of its bytes with the checksum field as spaces.
    let stored = std::str::from_utf8(&block[148..156])
        .ok()
        .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' '))
        .and_then(|s| u32::from_str_radix(s, 8).ok());
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    stored == Some(sum)
}

/// Writes the target's image into the store and gives it its names.
/// Times for the history entries that have none (ARG, ENV, LABEL, …), by BuildKit's rule
/// (its image exporter's `normalizeLayersAndHistory`): the entries of the first run without a
/// time take the first time after it, every later one the time of the entry before it. So
/// the instructions before a build's first layer carry that layer's time, those after a
/// layer its time, and times never go back. With no time at all, `fallback`.
fn fill_history_times(history: &mut [History], fallback: Option<&str>) {
    let mut gap = false;
    let mut time = None;
    for h in history.iter() {
        match &h.created {
            Some(t) => {
                time = Some(t.clone());
                if gap {
                    break;
                }
            }
            None => gap = true,
        }
    }
    let mut time = time.or_else(|| fallback.map(str::to_string));
    let mut gap = false;
    for h in history.iter_mut() {
        match &h.created {
            Some(t) if gap => time = Some(t.clone()),
            Some(_) => {}
            None => {
                gap = true;
                h.created = time.clone();
            }
        }
    }
}

fn export(b: &Build) -> Result<BuildResult> {
    let out = b
        .done
        .lock()
        .expect("not poisoned")
        .get(&b.plan.target)
        .cloned()
        .ok_or_else(|| other("the target stage was not built"))?;
    let v = b.next_vertex();
    b.progress.start(v, "exporting to image");
    let mut config = out.config;
    for (k, val) in &b.opts.labels {
        config.config.labels.insert(k.clone(), val.clone());
    }
    config.created = Some(match b.opts.source_date_epoch {
        Some(e) => epoch_time(e),
        None => out
            .created
            .clone()
            .or_else(|| config.history.iter().rev().find_map(|h| h.created.clone()))
            .unwrap_or_else(|| rfc3339(chrono::Utc::now())),
    });
    fill_history_times(&mut config.history, config.created.as_deref());
    config.rootfs.diff_ids = out.layers.iter().map(|l| l.diff_id.to_string()).collect();
    let p = crate::remote::Platform::host();
    config.os = p.os.clone();
    config.architecture = p.architecture.clone();
    if config.variant.is_none() {
        config.variant = p.variant.clone();
    }
    let data = bytes::Bytes::from(config.to_json());
    let (manifest_type, config_type, layer_type) = if b.opts.oci {
        (MEDIA_OCI_MANIFEST, MEDIA_OCI_CONFIG, MEDIA_OCI_LAYER_TAR)
    } else {
        (
            MEDIA_DOCKER_MANIFEST,
            MEDIA_DOCKER_CONFIG,
            MEDIA_DOCKER_LAYER_TAR,
        )
    };
    b.progress.status(v, "exporting layers done");
    let images = b.images;
    let names = b.opts.tags.clone();
    let layers: Vec<LayerRecord> = out
        .layers
        .iter()
        .map(|l| LayerRecord {
            media_type: layer_type.to_string(),
            ..l.clone()
        })
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {"mediaType": config_type, "digest": Digest::sha256_of(&data), "size": data.len()},
        "layers": layers.iter().map(|l| json!({"mediaType": l.media_type, "digest": l.digest, "size": l.size})).collect::<Vec<_>>(),
    });
    let manifest = bytes::Bytes::from(serde_json::to_vec(&manifest).expect("json"));
    // The image this build made before, with every name already: nothing to write.
    let (same_id, same_manifest) = (Digest::sha256_of(&data), Digest::sha256_of(&manifest));
    let unchanged = images.has_image_named(&same_id, &same_manifest, &names);
    let (id, manifest_digest) = b.rt.block_on(async {
        if unchanged {
            return Ok((same_id, same_manifest));
        }
        let id = images.store().blobs.put_new(data.clone()).await?;
        let m = images.store().blobs.put_new(manifest.clone()).await?;
        let record = ImageRecord {
            id: id.clone(),
            config_size: data.len() as u64,
            created: config.created.clone(),
            os: config.os.clone(),
            architecture: config.architecture.clone(),
            variant: config.variant.clone(),
            manifest: m.clone(),
            manifest_media_type: manifest_type.to_string(),
            manifest_size: manifest.len() as u64,
            extra_blobs: vec![],
            layers,
            tags: vec![],
            repo_digests: vec![],
            linked: Default::default(),
            last_tag_time: None,
            parent: None,
        };
        images.commit_image(record, &names, None).await?;
        Ok::<_, crate::images::ImageError>((id, m))
    })?;
    // BuildKit's events: the image tagged with each name (on every build, as docker's).
    let journal = images.journal();
    for n in &names {
        journal.record(crate::images::image_event(id.as_str(), "tag").attr("name", n.familiar()));
    }
    b.progress.status(v, &format!("writing image {id} done"));
    for n in &names {
        b.progress.status(v, &format!("naming to {n} done"));
    }
    b.progress.done(v);
    Ok(BuildResult {
        id,
        manifest: manifest_digest,
        ran: b.ran.load(Ordering::SeqCst),
        cached: b.cached.load(Ordering::SeqCst),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_names() {
        assert_eq!(url_file_name("http://h/a/b.tar.gz"), "b.tar.gz");
        assert_eq!(url_file_name("http://h/a/b?x=1"), "b");
        assert_eq!(url_file_name("http://h/"), "__unnamed__");
        assert_eq!(url_file_name("http://h"), "__unnamed__");
    }

    #[test]
    fn keys_depend_on_parent_and_step() {
        let d = json!({"op": "run", "args": ["a"]});
        assert_eq!(key("p", &d), key("p", &d));
        assert_ne!(key("p", &d), key("q", &d));
        assert_ne!(key("p", &d), key("p", &json!({"op": "run", "args": ["b"]})));
    }

    #[test]
    fn history_times_as_buildkit_fills_them() {
        // Each case: the entries' times (None: an entry without one), the fallback, and the
        // times BuildKit's exporter gives them.
        type Case<'a> = (&'a [Option<&'a str>], Option<&'a str>, &'a [&'a str]);
        let cases: &[Case] = &[
            // Base, ARG, ENV, WORKDIR (a layer), RUN, USER, CMD: the first gap takes the
            // first layer's time, the last the last layer's.
            (
                &[Some("b"), None, None, Some("w"), Some("r"), None, None],
                Some("x"),
                &["b", "w", "w", "w", "r", "r", "r"],
            ),
            // A gap between layers takes the time before it.
            (
                &[Some("b"), None, Some("c"), None, Some("d")],
                None,
                &["b", "c", "c", "c", "d"],
            ),
            // No layer in this build: the base's last time.
            (&[Some("b"), None, None], Some("x"), &["b", "b", "b"]),
            // No time anywhere: the fallback.
            (&[None, None], Some("x"), &["x", "x"]),
        ];
        for (times, fallback, want) in cases {
            let mut h: Vec<History> = times
                .iter()
                .map(|t| History {
                    created: t.map(str::to_string),
                    ..Default::default()
                })
                .collect();
            fill_history_times(&mut h, *fallback);
            let got: Vec<&str> = h.iter().map(|e| e.created.as_deref().unwrap()).collect();
            assert_eq!(got, *want, "{times:?}");
        }
    }
}
