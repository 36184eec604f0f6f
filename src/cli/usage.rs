//! docker's usage lines and argument counts, one table for every verb: `--help` prints
//! `Usage:  berth run [OPTIONS] IMAGE [COMMAND] [ARG...]` as docker prints its own (clap's
//! would be `<IMAGE>...`), and a command line with too few or too many arguments gets
//! docker's three-part answer (`'berth run' requires at least 1 argument`, the usage line,
//! where to read more) instead of clap's.
//!
//! A verb is looked up by its path (`container ls`), then, for a verb of an object that is
//! also a top-level verb (`container run`, `image pull`, `system info`), by its last word.

use clap::Command;

/// How many arguments a verb takes (docker's `cli.RequiresMinArgs`, `cli.ExactArgs`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arity {
    No,
    Exact(usize),
    Min(usize),
    Max(usize),
    Range(usize, usize),
    /// Any number: nothing to say.
    Any,
}

use Arity::{Any, Exact, Max, Min, No, Range};

/// (path, usage after the path, arity): docker 28's.
const VERBS: &[(&str, &str, Arity)] = &[
    ("run", "[OPTIONS] IMAGE [COMMAND] [ARG...]", Min(1)),
    ("create", "[OPTIONS] IMAGE [COMMAND] [ARG...]", Min(1)),
    ("start", "[OPTIONS] CONTAINER [CONTAINER...]", Min(1)),
    ("stop", "[OPTIONS] CONTAINER [CONTAINER...]", Min(1)),
    ("restart", "[OPTIONS] CONTAINER [CONTAINER...]", Min(1)),
    ("kill", "[OPTIONS] CONTAINER [CONTAINER...]", Min(1)),
    ("rm", "[OPTIONS] CONTAINER [CONTAINER...]", Min(1)),
    ("ps", "[OPTIONS]", No),
    ("container ls", "[OPTIONS]", No),
    ("logs", "[OPTIONS] CONTAINER", Exact(1)),
    ("top", "CONTAINER [ps OPTIONS]", Min(1)),
    ("exec", "[OPTIONS] CONTAINER COMMAND [ARG...]", Min(2)),
    ("attach", "[OPTIONS] CONTAINER", Exact(1)),
    ("wait", "CONTAINER [CONTAINER...]", Min(1)),
    ("rename", "CONTAINER NEW_NAME", Exact(2)),
    ("pause", "CONTAINER [CONTAINER...]", Min(1)),
    ("unpause", "CONTAINER [CONTAINER...]", Min(1)),
    ("port", "CONTAINER [PRIVATE_PORT[/PROTO]]", Range(1, 2)),
    ("diff", "CONTAINER", Exact(1)),
    ("commit", "[OPTIONS] CONTAINER [REPOSITORY[:TAG]]", Range(1, 2)),
    (
        "cp",
        "[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tberth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
        Exact(2),
    ),
    ("export", "[OPTIONS] CONTAINER", Exact(1)),
    ("stats", "[OPTIONS] [CONTAINER...]", Any),
    ("update", "[OPTIONS] CONTAINER [CONTAINER...]", Min(1)),
    ("inspect", "[OPTIONS] NAME|ID [NAME|ID...]", Min(1)),
    ("container inspect", "[OPTIONS] CONTAINER [CONTAINER...]", Min(1)),
    ("container prune", "[OPTIONS]", No),
    ("build", "[OPTIONS] PATH | URL | -", Exact(1)),
    ("pull", "[OPTIONS] NAME[:TAG|@DIGEST]", Exact(1)),
    ("push", "[OPTIONS] NAME[:TAG]", Exact(1)),
    ("images", "[OPTIONS] [REPOSITORY[:TAG]]", Max(1)),
    ("image ls", "[OPTIONS] [REPOSITORY[:TAG]]", Max(1)),
    ("rmi", "[OPTIONS] IMAGE [IMAGE...]", Min(1)),
    ("image rm", "[OPTIONS] IMAGE [IMAGE...]", Min(1)),
    ("image inspect", "[OPTIONS] IMAGE [IMAGE...]", Min(1)),
    ("image prune", "[OPTIONS]", No),
    ("tag", "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]", Exact(2)),
    ("history", "[OPTIONS] IMAGE", Exact(1)),
    ("save", "[OPTIONS] IMAGE [IMAGE...]", Min(1)),
    ("load", "[OPTIONS]", No),
    ("import", "[OPTIONS] file|URL|- [REPOSITORY[:TAG]]", Min(1)),
    ("events", "[OPTIONS]", No),
    ("info", "[OPTIONS]", No),
    ("version", "[OPTIONS]", No),
    ("search", "[OPTIONS] TERM", Exact(1)),
    ("login", "[OPTIONS] [SERVER]", Max(1)),
    ("logout", "[SERVER]", Max(1)),
    ("network connect", "[OPTIONS] NETWORK CONTAINER", Exact(2)),
    ("network create", "[OPTIONS] NETWORK", Exact(1)),
    ("network disconnect", "[OPTIONS] NETWORK CONTAINER", Exact(2)),
    ("network inspect", "[OPTIONS] NETWORK [NETWORK...]", Min(1)),
    ("network ls", "[OPTIONS]", No),
    ("network prune", "[OPTIONS]", No),
    ("network rm", "NETWORK [NETWORK...]", Min(1)),
    ("volume create", "[OPTIONS] [VOLUME]", Max(1)),
    ("volume inspect", "[OPTIONS] VOLUME [VOLUME...]", Min(1)),
    ("volume ls", "[OPTIONS]", No),
    ("volume prune", "[OPTIONS]", No),
    ("volume rm", "[OPTIONS] VOLUME [VOLUME...]", Min(1)),
    ("system df", "[OPTIONS]", No),
    ("system prune", "[OPTIONS]", No),
    ("builder prune", "[OPTIONS]", No),
];

/// The usage (after the path) and arity of the verb at `path` (`"container ls"`).
fn lookup(path: &str) -> Option<(&'static str, Arity)> {
    let find = |p: &str| VERBS.iter().find(|(v, _, _)| *v == p);
    find(path)
        .or_else(|| {
            let (object, verb) = path.split_once(' ')?;
            ["container", "image", "system"]
                .contains(&object)
                .then(|| find(verb))
                .flatten()
        })
        .map(|(_, usage, arity)| (*usage, *arity))
}

/// `cmd` (the top-level command) with docker's usage lines on every verb in the table and
/// docker's `Usage:  ` (two spaces) in every help.
pub fn docker_usage(cmd: Command) -> Command {
    fn walk(cmd: Command, path: &str) -> Command {
        let cmd = cmd.help_template(
            "{before-help}{about-with-newline}\n{usage-heading}  {usage}\n\n{all-args}{after-help}",
        );
        let cmd = match lookup(path) {
            Some((usage, _)) if !path.is_empty() => {
                // The second line of `cp`'s usage names the top-level spelling as docker's.
                cmd.override_usage(format!("berth {path} {usage}"))
            }
            _ => cmd,
        };
        cmd.mut_subcommands(|sub| {
            let name = sub.get_name().to_string();
            let sub_path = if path.is_empty() {
                name
            } else {
                format!("{path} {name}")
            };
            walk(sub, &sub_path)
        })
    }
    walk(cmd, "")
}

/// docker's answer to a verb given the wrong number of arguments, or `None` when the table
/// does not know the verb. `path` is the verb's (`"container run"`).
pub fn arity_error(path: &str) -> Option<String> {
    let (usage, arity) = lookup(path)?;
    let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
    let (what, see) = match arity {
        No => ("accepts no arguments".to_string(), "Run"),
        Exact(n) => (format!("requires {n} {}", plural(n)), "Run"),
        Min(n) => (format!("requires at least {n} {}", plural(n)), "See"),
        Max(n) => (format!("requires at most {n} {}", plural(n)), "Run"),
        Range(a, b) => (
            format!("requires at least {a} and at most {b} {}", plural(b)),
            "Run",
        ),
        Any => return None,
    };
    Some(format!(
        "berth: 'berth {path}' {what}\n\nUsage:  berth {path} {usage}\n\n{see} 'berth {path} \
         --help' for more information"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_verbs_fall_back_to_the_top_level_ones() {
        assert_eq!(lookup("container run"), lookup("run"));
        assert_eq!(lookup("image pull"), lookup("pull"));
        assert_ne!(lookup("image rm"), lookup("rm"));
        assert_eq!(lookup("network run"), None);
        assert_eq!(
            arity_error("tag").unwrap(),
            "berth: 'berth tag' requires 2 arguments\n\nUsage:  berth tag SOURCE_IMAGE[:TAG] \
             TARGET_IMAGE[:TAG]\n\nRun 'berth tag --help' for more information"
        );
    }
}
