//! The command line's shape: every verb answers `--help`, under both of docker's spellings
//! where docker has two (`berth stop` and `berth container stop`, `berth images` and `berth
//! image ls`) with the same flags, docker's aliases work, and names docker does not have are
//! refused with its exit code.

use std::process::{Command, Output};

use crate::util::{berth_bin, require, Berth};

fn berth(args: &[&str]) -> Output {
    Command::new(berth_bin())
        .args(args)
        .env("BERTH_ROOT", "/nonexistent/berth-cli-test")
        .output()
        .expect("run berth")
}

/// The help of a command line, and its `Options:` section.
fn help(words: &[&str]) -> (String, String) {
    let mut args = words.to_vec();
    args.push("--help");
    let out = berth(&args);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "berth {} --help: {}{}",
        words.join(" "),
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    let options = text
        .split_once("Options:")
        .map(|(_, o)| o.to_string())
        .unwrap_or_default();
    (text, options)
}

/// (top-level words, object words): one verb, two spellings.
const BOTH: &[(&[&str], &[&str])] = &[
    (&["events"], &["system", "events"]),
    (&["run"], &["container", "run"]),
    (&["create"], &["container", "create"]),
    (&["start"], &["container", "start"]),
    (&["stop"], &["container", "stop"]),
    (&["restart"], &["container", "restart"]),
    (&["kill"], &["container", "kill"]),
    (&["rm"], &["container", "rm"]),
    (&["ps"], &["container", "ls"]),
    (&["logs"], &["container", "logs"]),
    (&["top"], &["container", "top"]),
    (&["exec"], &["container", "exec"]),
    (&["attach"], &["container", "attach"]),
    (&["wait"], &["container", "wait"]),
    (&["rename"], &["container", "rename"]),
    (&["pause"], &["container", "pause"]),
    (&["unpause"], &["container", "unpause"]),
    (&["port"], &["container", "port"]),
    (&["stats"], &["container", "stats"]),
    (&["update"], &["container", "update"]),
    (&["pull"], &["image", "pull"]),
    (&["push"], &["image", "push"]),
    (&["images"], &["image", "ls"]),
    (&["rmi"], &["image", "rm"]),
    (&["tag"], &["image", "tag"]),
    (&["history"], &["image", "history"]),
    (&["save"], &["image", "save"]),
    (&["load"], &["image", "load"]),
    (&["import"], &["image", "import"]),
];

/// Verbs with one spelling, and aliases (docker's), each answering `--help`.
const ONE: &[&[&str]] = &[
    &["inspect"],
    &["search"],
    &["login"],
    &["logout"],
    &["serve"],
    &["container", "inspect"],
    &["container", "prune"],
    &["container", "ps"],
    &["container", "list"],
    &["container", "remove"],
    &["image", "inspect"],
    &["image", "prune"],
    &["image", "list"],
    &["image", "rmi"],
    &["image", "remove"],
    &["network", "ls"],
    &["network", "list"],
    &["network", "inspect"],
    &["network", "create"],
    &["network", "rm"],
    &["network", "remove"],
    &["network", "connect"],
    &["network", "disconnect"],
    &["system", "df"],
    &["system", "prune"],
    &["volume", "create"],
    &["volume", "ls"],
    &["volume", "list"],
    &["volume", "inspect"],
    &["volume", "rm"],
    &["volume", "remove"],
    &["volume", "prune"],
];

#[test]
fn every_verb_answers_help_under_each_spelling_with_the_same_flags() {
    for (top, object) in BOTH {
        let (top_text, top_options) = help(top);
        let (object_text, object_options) = help(object);
        assert_eq!(
            top_options,
            object_options,
            "berth {} and berth {} differ",
            top.join(" "),
            object.join(" ")
        );
        assert!(
            top_text.contains(&format!("Usage:  berth {}", top.join(" "))),
            "{top_text}"
        );
        assert!(
            object_text.contains(&format!("Usage:  berth {}", object.join(" "))),
            "{object_text}"
        );
    }
    for words in ONE {
        help(words);
    }
    // The object's help lists docker's names, with the top-level one as an alias.
    let (text, _) = help(&["container"]);
    assert!(
        text.contains("ls ") && text.contains("aliases: ps, list"),
        "{text}"
    );
    let (text, _) = help(&["image"]);
    assert!(
        text.contains("rm ") && text.contains("aliases: rmi, remove"),
        "{text}"
    );
}

/// The verbs a help text lists under `Commands:`, each with the line that describes it.
fn listed_verbs(help: &str) -> Vec<(String, String)> {
    help.split_once("Commands:\n")
        .map(|(_, rest)| rest)
        .unwrap_or_default()
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| {
            let (name, about) = l.trim().split_once(' ')?;
            let about = about.trim().split(" [alias").next().unwrap_or_default();
            (name != "help").then(|| (name.trim_end_matches(',').to_string(), about.to_string()))
        })
        .collect()
}

/// A verb's arguments are built only when the verb is named (clap's `defer`): its own help
/// still opens with the line its object's help lists for it, not one its arguments' struct
/// would set.
#[test]
fn every_verb_help_opens_with_the_line_its_object_lists() {
    let mut checked = 0;
    let (top, _) = help(&[]);
    let mut objects: Vec<Vec<String>> = vec![vec![]];
    while let Some(path) = objects.pop() {
        let words: Vec<&str> = path.iter().map(String::as_str).collect();
        let (text, _) = if words.is_empty() {
            (top.clone(), String::new())
        } else {
            help(&words)
        };
        for (name, about) in listed_verbs(&text) {
            let mut verb = path.clone();
            verb.push(name);
            let words: Vec<&str> = verb.iter().map(String::as_str).collect();
            let (verb_text, _) = help(&words);
            assert_eq!(
                verb_text.lines().next(),
                Some(about.as_str()),
                "berth {} --help:\n{verb_text}",
                words.join(" ")
            );
            checked += 1;
            if verb_text.contains("Commands:\n") {
                objects.push(verb);
            }
        }
    }
    // The top level's verbs and those of container, image, network, volume, system, builder.
    assert!(checked > 80, "{checked} verbs");
}

/// The long flags (`--name`) a help text lists, without their values.
fn long_flags(help: &str) -> std::collections::BTreeSet<String> {
    help.lines()
        .flat_map(|l| l.split([' ', ',', '=', '[']))
        .filter_map(|w| w.strip_prefix("--"))
        .map(|w| {
            w.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Every flag of docker's `run` and `create` (read from the docker CLI's own help) is one
/// berth's help lists, or one it refuses with a line naming the flag and saying why (exit
/// 125, nothing created): none is unknown to berth, none is taken and ignored.
#[test]
fn every_docker_run_flag_is_berths_or_refused_with_a_reason() {
    require("docker");
    let b = Berth::new();
    for verb in ["run", "create"] {
        let out = Command::new("docker")
            .args([verb, "--help"])
            .output()
            .expect("run docker");
        let theirs = long_flags(&String::from_utf8_lossy(&out.stdout));
        assert!(theirs.len() > 90, "{theirs:?}");
        let (_, options) = help(&[verb]);
        let ours = long_flags(&options);
        let mut refused = 0;
        for flag in theirs.difference(&ours) {
            let arg = format!("--{flag}=x");
            let out = b
                .cmd(&[verb, &arg, "nosuchimage:1", "true"])
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(125), "{arg}: {err}");
            assert!(
                err.starts_with("berth: ")
                    && err.lines().count() == 1
                    && err.contains(&format!("--{flag}"))
                    && !err.contains("unexpected argument")
                    && !err.contains("nosuchimage"),
                "{arg}: {err}"
            );
            refused += 1;
        }
        // The ones berth does not carry out (gpus, link, …): a short list.
        assert!(refused < 30, "{refused} refused");
    }
    assert_eq!(b.ok(&["ps", "-aq"]), "", "a refused container was created");
}

#[test]
fn names_docker_does_not_have_are_refused_with_125() {
    for words in [
        &["ls"][..],
        &["prune"],
        &["container", "images"],
        &["image", "ps"],
        &["container", "nosuch"],
    ] {
        let out = berth(words);
        assert_eq!(out.status.code(), Some(125), "berth {}", words.join(" "));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("berth: ") && err.lines().count() == 1,
            "berth {}: {err}",
            words.join(" ")
        );
    }
}

#[test]
fn run_and_exec_with_a_terminal_need_one_here() {
    // stdin is not a terminal here (a pipe): docker 28's message and status 1, before any
    // container is made.
    for args in [
        &["run", "-it", "busybox", "sh"][..],
        &["run", "-i", "-t", "--rm", "busybox"],
        &["container", "run", "-ti", "-a", "stdin", "busybox"],
        &["exec", "-it", "c", "sh"],
    ] {
        let out = Command::new(berth_bin())
            .args(args)
            .env("BERTH_ROOT", "/nonexistent/berth-cli-test")
            .stdin(std::process::Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "the input device is not a TTY\n",
            "{args:?}"
        );
        assert!(out.stdout.is_empty());
    }
    assert!(!std::path::Path::new("/nonexistent/berth-cli-test").exists());
}

/// Command lines with too few or too many arguments, and docker 28's answer (recorded from
/// docker 28.2.2's client): `docker: 'docker PATH' WHAT`, its usage line, and `See`/`Run
/// 'docker PATH --help' for more information`.
const WRONG_COUNTS: &[(&[&str], &str, &str, &str)] = &[
    (&["run"], "requires at least 1 argument", "[OPTIONS] IMAGE [COMMAND] [ARG...]", "See"),
    (&["container", "run"], "requires at least 1 argument", "[OPTIONS] IMAGE [COMMAND] [ARG...]", "See"),
    (&["create"], "requires at least 1 argument", "[OPTIONS] IMAGE [COMMAND] [ARG...]", "See"),
    (&["exec", "box"], "requires at least 2 arguments", "[OPTIONS] CONTAINER COMMAND [ARG...]", "See"),
    (&["start"], "requires at least 1 argument", "[OPTIONS] CONTAINER [CONTAINER...]", "See"),
    (&["logs"], "requires 1 argument", "[OPTIONS] CONTAINER", "Run"),
    (&["tag", "a"], "requires 2 arguments", "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]", "Run"),
    (&["commit"], "requires at least 1 and at most 2 arguments", "[OPTIONS] CONTAINER [REPOSITORY[:TAG]]", "Run"),
    (
        &["cp"],
        "requires 2 arguments",
        "[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tberth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
        "Run",
    ),
    (&["top"], "requires at least 1 argument", "CONTAINER [ps OPTIONS]", "See"),
    (&["ps", "x"], "accepts no arguments", "[OPTIONS]", "Run"),
    (&["container", "ls", "x"], "accepts no arguments", "[OPTIONS]", "Run"),
    (&["load", "x"], "accepts no arguments", "[OPTIONS]", "Run"),
    (&["image", "inspect"], "requires at least 1 argument", "[OPTIONS] IMAGE [IMAGE...]", "See"),
    (&["container", "inspect"], "requires at least 1 argument", "[OPTIONS] CONTAINER [CONTAINER...]", "See"),
    (&["network", "connect", "n"], "requires 2 arguments", "[OPTIONS] NETWORK CONTAINER", "Run"),
    (&["network", "rm"], "requires at least 1 argument", "NETWORK [NETWORK...]", "See"),
    (&["volume", "rm"], "requires at least 1 argument", "[OPTIONS] VOLUME [VOLUME...]", "See"),
];

/// A docker client of version 28 or later on PATH, when there is one (older ones word these
/// messages otherwise).
pub fn docker_28() -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("docker"))
        .filter(|p| p.exists())
        .find(|p| {
            let v = Command::new(p).arg("--version").output().ok();
            let v = v.map(|o| String::from_utf8_lossy(&o.stdout).to_string());
            v.and_then(|v| {
                let major = v
                    .strip_prefix("Docker version ")?
                    .split('.')
                    .next()?
                    .to_string();
                major.parse::<u32>().ok()
            })
            .is_some_and(|major| major >= 28)
        })
}

#[test]
fn wrong_argument_counts_answer_as_docker_does() {
    // docker's client answers these itself (no daemon): its message, its usage line, where to
    // read more, status 1. berth's is the same with its own name; where docker 28 is at hand,
    // the recording is checked against it too.
    let docker = docker_28();
    for (args, what, usage, see) in WRONG_COUNTS {
        let path = args
            .iter()
            .take_while(|a| !["x", "a", "n", "box"].contains(a))
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        let expected = format!(
            "berth: 'berth {path}' {what}\n\nUsage:  berth {path} {usage}\n\n{see} 'berth {path} \
             --help' for more information\n"
        );
        let ours = berth(args);
        assert_eq!(ours.status.code(), Some(1), "berth {args:?}");
        assert_eq!(String::from_utf8_lossy(&ours.stderr), expected, "{args:?}");
        assert!(ours.stdout.is_empty(), "{args:?}");
        if let Some(docker) = &docker {
            let theirs = Command::new(docker).args(*args).output().unwrap();
            assert_eq!(theirs.status.code(), Some(1), "docker {args:?}");
            let theirs = String::from_utf8_lossy(&theirs.stderr).replace("docker", "berth");
            assert_eq!(theirs, expected, "docker {args:?}");
        }
    }
    // A flag docker does not know stays berth's one line and 125.
    let o = berth(&["run", "--no-such-flag", "img"]);
    assert_eq!(o.status.code(), Some(125));
}

#[test]
fn help_usage_lines_are_dockers() {
    let docker = crate::util::require("docker");
    // The usage line (and cp's second one) of `--help`, docker's name made berth's.
    let usage = |text: &str| -> String {
        let mut lines = text.lines().skip_while(|l| !l.starts_with("Usage:"));
        let first = lines.next().unwrap_or_default().to_string();
        let rest: Vec<&str> = lines.take_while(|l| l.starts_with('\t')).collect();
        [first]
            .into_iter()
            .chain(rest.iter().map(|l| l.to_string()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    for (top, object) in BOTH {
        for words in [*top, *object] {
            // `system events` and the like: docker has them too; berth-only verbs have none.
            let mut args = words.to_vec();
            args.push("--help");
            let theirs = Command::new(&docker).args(&args).output().unwrap();
            let expected =
                usage(&String::from_utf8_lossy(&theirs.stdout)).replace("docker", "berth");
            assert!(
                expected.starts_with("Usage:  berth "),
                "docker {args:?}: {expected}"
            );
            let (text, _) = help(words);
            assert_eq!(usage(&text), expected, "{args:?}");
        }
    }
}
