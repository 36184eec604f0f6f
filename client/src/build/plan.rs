//! What a build will do before it does any of it: the global ARGs, each stage's base (an
//! image, `scratch`, or an earlier stage), the stages each stage needs (its base, COPY
//! `--from`, RUN `--mount=from=`), the target and the stages it needs — only those are
//! built, and stages that do not need each other are built side by side.

use std::collections::{BTreeMap, BTreeSet};

use crate::dockerfile::instructions::{self, ArgDef, Command, File, Instruction, ParseError};
use crate::dockerfile::shell::{Env, Lexer, NoEnv};
use crate::remote::Platform;

/// The predefined proxy ARGs: usable without an ARG line, kept out of history and cache.
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Where a stage starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    Scratch,
    /// An image reference, variables substituted.
    Image(String),
    /// An earlier stage, by index.
    Stage(usize),
}

/// Where COPY `--from` or a `--mount=from=` takes files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromSource {
    Stage(usize),
    Image(String),
}

/// A stage, resolved.
#[derive(Debug, Clone)]
pub struct PlannedStage {
    pub index: usize,
    /// The stage's name (`AS name`), lower case.
    pub name: Option<String>,
    /// How progress names it: its name, or `stage-N`.
    pub label: String,
    pub base: Base,
    /// The `FROM` line as written and its line.
    pub from_text: String,
    pub line: usize,
    pub commands: Vec<Command>,
    /// COPY `--from` and `--mount=from=` sources, by the command's position.
    pub sources: BTreeMap<usize, Vec<FromSource>>,
    /// Stages this one needs.
    pub deps: BTreeSet<usize>,
}

/// What a build asks for.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// `--build-arg KEY=VALUE`.
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
}

/// The whole build, planned.
#[derive(Debug, Clone)]
pub struct Plan {
    pub file: File,
    pub escape: char,
    /// The ARGs a FROM line sees, in order.
    pub global_args: Vec<(String, String)>,
    /// Every ARG declared before the first FROM (with or without a value), for stages that
    /// declare them again without a default.
    pub global_declared: BTreeSet<String>,
    pub stages: Vec<PlannedStage>,
    pub target: usize,
    /// The stages to build, dependencies first.
    pub needed: Vec<usize>,
    pub build_args: BTreeMap<String, String>,
}

fn perr(line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        line,
        message: message.into(),
    }
}

/// BuildKit's automatic platform ARGs, for the host (berth builds for the host only).
pub fn platform_args(target_stage: &str) -> Vec<(String, String)> {
    let p = Platform::host();
    let full = match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    };
    let variant = p.variant.clone().unwrap_or_default();
    [
        ("BUILDPLATFORM", full.clone()),
        ("BUILDOS", p.os.clone()),
        ("BUILDOSVERSION", String::new()),
        ("BUILDARCH", p.architecture.clone()),
        ("BUILDVARIANT", variant.clone()),
        ("TARGETPLATFORM", full),
        ("TARGETOS", p.os.clone()),
        ("TARGETOSVERSION", String::new()),
        ("TARGETARCH", p.architecture.clone()),
        ("TARGETVARIANT", variant),
        ("TARGETSTAGE", target_stage.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Sets `key` in an ordered environment (replacing in place, as BuildKit's env list does).
pub fn set_pair(env: &mut Vec<(String, String)>, key: &str, value: &str) {
    match env.iter_mut().find(|(k, _)| k == key) {
        Some(e) => e.1 = value.to_string(),
        None => env.push((key.to_string(), value.to_string())),
    }
}

/// `stage` as a `--from` or base name names: a stage's index (by name, or by number for
/// `--from`), if any.
fn stage_named(stages: &[instructions::Stage], name: &str) -> Option<usize> {
    stages
        .iter()
        .position(|s| s.name.as_deref() == Some(name.to_ascii_lowercase().as_str()))
}

/// The stage a `--from` value names, or the image it names; `current` is the stage using it.
fn from_source(
    stages: &[instructions::Stage],
    value: &str,
    current: usize,
    line: usize,
    escape: char,
) -> Result<FromSource, ParseError> {
    let unchanged = Lexer::new(escape)
        .word(value, &NoEnv)
        .is_ok_and(|w| w == value);
    if !unchanged {
        return Err(perr(
            line,
            "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround",
        ));
    }
    let label = |i: usize| {
        stages[i]
            .name
            .clone()
            .unwrap_or_else(|| format!("stage-{i}"))
    };
    let index = match value.parse::<usize>() {
        Ok(n) if n >= stages.len() => {
            return Err(perr(line, format!("invalid stage index {n}")));
        }
        Ok(n) => Some(n),
        Err(_) => stage_named(stages, value),
    };
    match index {
        Some(i) if i >= current => Err(perr(
            line,
            format!(
                "cannot copy from stage {value:?}, it needs to be defined before current stage {:?}",
                label(current)
            ),
        )),
        Some(i) => Ok(FromSource::Stage(i)),
        None => Ok(FromSource::Image(value.to_string())),
    }
}

/// The `from=` of a `--mount` value, if it has one (read without substitution).
pub fn mount_from(value: &str) -> Option<String> {
    value.split(',').find_map(|field| {
        let (k, v) = field.split_once('=')?;
        (k.trim().eq_ignore_ascii_case("from")).then(|| v.trim().to_string())
    })
}

/// The `--from` sources of one command.
pub fn command_sources(
    stages: &[instructions::Stage],
    cmd: &Command,
    current: usize,
    escape: char,
) -> Result<Vec<FromSource>, ParseError> {
    let mut out = Vec::new();
    match &cmd.instruction {
        Instruction::Copy(c) => {
            if let Some(f) = &c.from {
                out.push(from_source(stages, f, current, cmd.line, escape)?);
            }
        }
        Instruction::Run(r) => {
            for m in &r.mounts {
                if let Some(f) = mount_from(m) {
                    if f.contains('$') {
                        return Err(perr(
                            cmd.line,
                            "'from' doesn't support variable expansion, define alias stage instead",
                        ));
                    }
                    out.push(from_source(stages, &f, current, cmd.line, escape)?);
                }
            }
        }
        _ => {}
    }
    Ok(out)
}

/// Resolves the file into a plan.
pub fn plan(file: File, options: &PlanOptions) -> Result<Plan, ParseError> {
    let escape = file.directives.escape;
    let lexer = Lexer::new(escape);
    let target_name = options
        .target
        .clone()
        .or_else(|| file.stages.last().and_then(|s| s.name.clone()))
        .unwrap_or_else(|| "default".into());
    let mut global = platform_args(&target_name);
    for (k, v) in &options.build_args {
        if global.iter().any(|(g, _)| g == k) {
            set_pair(&mut global, k, v);
        }
    }
    let mut declared = BTreeSet::new();
    for cmd in &file.global_args {
        let Instruction::Arg(defs) = &cmd.instruction else {
            continue;
        };
        for ArgDef { key, default } in defs {
            declared.insert(key.clone());
            let value = match (options.build_args.get(key), default) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(d)) => Some(
                    lexer
                        .word(d, &global)
                        .map_err(|e| perr(cmd.line, e.to_string()))?,
                ),
                (None, None) => None,
            };
            if let Some(v) = value {
                set_pair(&mut global, key, &v);
            }
        }
    }

    let n = file.stages.len();
    let mut stages = Vec::with_capacity(n);
    for (i, s) in file.stages.iter().enumerate() {
        let base_name = lexer
            .word(&s.base, &global)
            .map_err(|e| perr(s.line, e.to_string()))?;
        if base_name.is_empty() {
            return Err(perr(
                s.line,
                format!("base name ({}) should not be blank", s.base),
            ));
        }
        if let Some(p) = &s.platform {
            let value = lexer.word(p, &global).map_err(|e| {
                perr(
                    s.line,
                    format!("failed to process arguments for platform {p}: {e}"),
                )
            })?;
            if value.is_empty() {
                return Err(perr(
                    s.line,
                    format!("empty platform value from expression {p}"),
                ));
            }
            let wanted: Platform = value.parse().map_err(|e: crate::remote::PlatformError| {
                perr(s.line, format!("failed to parse platform {p}: {e}"))
            })?;
            let host = Platform::host();
            if !wanted.matches(&host) && !host.matches(&wanted) {
                return Err(perr(
                    s.line,
                    format!(
                        "berth builds for this host's platform ({host}) only, and --platform={value} asks for another"
                    ),
                ));
            }
        }
        let earlier = file.stages[..i]
            .iter()
            .rposition(|e| e.name.as_deref() == Some(base_name.to_ascii_lowercase().as_str()));
        let base = match earlier {
            Some(j) => Base::Stage(j),
            None if base_name == "scratch" => Base::Scratch,
            None => Base::Image(base_name),
        };
        let mut deps = BTreeSet::new();
        if let Base::Stage(j) = base {
            deps.insert(j);
        }
        let mut sources = BTreeMap::new();
        for (k, cmd) in s.commands.iter().enumerate() {
            let found = command_sources(&file.stages, cmd, i, escape)?;
            for f in &found {
                if let FromSource::Stage(j) = f {
                    deps.insert(*j);
                }
            }
            if !found.is_empty() {
                sources.insert(k, found);
            }
        }
        stages.push(PlannedStage {
            index: i,
            name: s.name.clone(),
            label: s.name.clone().unwrap_or_else(|| format!("stage-{i}")),
            base,
            from_text: s.text.clone(),
            line: s.line,
            commands: s.commands.clone(),
            sources,
            deps,
        });
    }

    let target = match &options.target {
        None => n - 1,
        Some(t) => match stage_named(&file.stages, t) {
            Some(i) => i,
            None => {
                let names: Vec<&str> = file
                    .stages
                    .iter()
                    .filter_map(|s| s.name.as_deref())
                    .collect();
                let mut message = format!("target stage {t:?} could not be found");
                if let Some(m) = instructions::suggest(t, &names) {
                    message = format!("{message} (did you mean {m}?)");
                }
                return Err(perr(0, message));
            }
        },
    };
    let mut needed = BTreeSet::new();
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if needed.insert(i) {
            todo.extend(stages[i].deps.iter().copied());
        }
    }
    Ok(Plan {
        escape,
        global_args: global,
        global_declared: declared,
        stages,
        target,
        needed: needed.into_iter().collect(),
        build_args: options.build_args.clone(),
        file,
    })
}

impl Plan {
    /// Build args given that no ARG of the needed stages (or the global ones) declares:
    /// docker warns about them.
    pub fn unused_build_args(&self) -> Vec<String> {
        let mut declared: BTreeSet<&str> =
            self.global_declared.iter().map(String::as_str).collect();
        for &i in &self.needed {
            for c in &self.stages[i].commands {
                if let Instruction::Arg(defs) = &c.instruction {
                    declared.extend(defs.iter().map(|d| d.key.as_str()));
                }
            }
        }
        self.build_args
            .keys()
            .filter(|k| !declared.contains(k.as_str()) && !PROXY_ARGS.contains(&k.as_str()))
            .filter(|k| !platform_args("").iter().any(|(p, _)| p == *k))
            .cloned()
            .collect()
    }

    /// The value a stage's `ARG key` (without a default) inherits from the global scope.
    pub fn global_value(&self, key: &str) -> Option<String> {
        Env::get(self.global_args.as_slice(), key).map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(text: &str, args: &[(&str, &str)], target: Option<&str>) -> Result<Plan, String> {
        let file = instructions::parse(text).map_err(|e| e.to_string())?;
        let options = PlanOptions {
            build_args: args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            target: target.map(str::to_string),
        };
        plan(file, &options).map_err(|e| e.to_string())
    }

    #[test]
    fn bases_and_global_args() {
        let p = planned(
            "ARG TAG=1\nARG IMG=busybox:${TAG}\nFROM ${IMG} AS a\nFROM a\nFROM scratch\nFROM ${NOPE:-x}:$TAG\n",
            &[],
            None,
        )
        .unwrap();
        let bases: Vec<Base> = p.stages.iter().map(|s| s.base.clone()).collect();
        assert_eq!(
            bases,
            [
                Base::Image("busybox:1".into()),
                Base::Stage(0),
                Base::Scratch,
                Base::Image("x:1".into())
            ]
        );
        let p = planned("ARG TAG=1\nFROM busybox:$TAG\n", &[("TAG", "2")], None).unwrap();
        assert_eq!(p.stages[0].base, Base::Image("busybox:2".into()));
        let p = planned("FROM busybox:$TARGETARCH\n", &[], None).unwrap();
        assert_eq!(
            p.stages[0].base,
            Base::Image(format!("busybox:{}", Platform::host().architecture))
        );
    }

    #[test]
    fn only_what_the_target_needs() {
        let text = "FROM scratch AS a\nFROM scratch AS b\nFROM a AS c\nCOPY --from=b / /\nFROM scratch AS d\nCOPY --from=0 / /\n";
        assert_eq!(planned(text, &[], None).unwrap().needed, [0, 3]);
        assert_eq!(planned(text, &[], Some("c")).unwrap().needed, [0, 1, 2]);
        assert_eq!(planned(text, &[], Some("B")).unwrap().needed, [1]);
        let p = planned("FROM scratch\nCOPY --from=busybox:1 /bin /bin\nRUN --mount=from=alpine,target=/x true\n", &[], None).unwrap();
        assert_eq!(
            p.stages[0]
                .sources
                .values()
                .flatten()
                .cloned()
                .collect::<Vec<_>>(),
            [
                FromSource::Image("busybox:1".into()),
                FromSource::Image("alpine".into())
            ]
        );
    }

    #[test]
    fn errors() {
        for (text, target, want) in [
            ("FROM scratch AS a\n", Some("b"), "dockerfile parse error on line 0: target stage \"b\" could not be found"),
            ("FROM scratch AS build\n", Some("buidl"), "dockerfile parse error on line 0: target stage \"buidl\" could not be found (did you mean build?)"),
            ("ARG X\nFROM $X\n", None, "dockerfile parse error on line 2: base name ($X) should not be blank"),
            ("FROM scratch\nCOPY --from=5 / /\n", None, "dockerfile parse error on line 2: invalid stage index 5"),
            ("FROM scratch\nCOPY --from=$X / /\n", None, "dockerfile parse error on line 2: variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround"),
            ("FROM scratch AS a\nCOPY --from=b / /\nFROM scratch AS b\n", None, "dockerfile parse error on line 2: cannot copy from stage \"b\", it needs to be defined before current stage \"a\""),
            ("FROM ${X\n", None, "dockerfile parse error on line 1: failed to process \"${X\": syntax error: missing '}'"),
            ("FROM --platform=linux/s390x scratch\n", None, "dockerfile parse error on line 1: berth builds for this host's platform"),
        ] {
            let got = planned(text, &[], target).map(|_| ()).unwrap_err();
            assert!(got.starts_with(want), "{text:?}: {got}");
        }
    }

    #[test]
    fn unused_build_args_are_named() {
        let p = planned(
            "ARG A\nFROM scratch\nARG B\n",
            &[("A", "1"), ("B", "2"), ("C", "3"), ("HTTP_PROXY", "x")],
            None,
        )
        .unwrap();
        assert_eq!(p.unused_build_args(), ["C"]);
    }
}
