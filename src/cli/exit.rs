//! How failures reach a person: one line on stderr and docker's exit status.
//!
//! A command returns `Ok(status)` for what it decided itself, or an error that
//! [`super::run`] prints as `Error: …` with status 1, or a [`StatusError`], printed as it is
//! with its own status. Container commands that fail in the
//! engine print `berth: …` and exit with the engine's code ([`engine_failure`]: docker's 125,
//! or 126/127 when the command cannot run); a command line clap cannot parse exits 125
//! ([`usage_error`]), except a verb given too few or too many arguments: docker's message
//! and usage ([`super::usage::arity_error`]) and status 1, as docker's.

use berth_client::engine::EngineError;

/// A failure docker's CLI prints as it is, without `Error: ` before it, and exits with its
/// own status (docker's `cli.StatusError`): a bad `--format` template, for one.
#[derive(Debug)]
pub struct StatusError {
    pub status: i32,
    pub message: String,
}

impl std::fmt::Display for StatusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StatusError {}

/// docker's exit status for its own failures (a bad flag, no such image, …).
pub const ENGINE_FAILURE: i32 = 125;

/// An engine failure as docker's CLI prints it, with docker's exit code.
pub fn engine_failure(err: &anyhow::Error) -> i32 {
    eprintln!("berth: {}", one_line(err));
    match err.downcast_ref::<EngineError>() {
        Some(e) => e.exit_code(),
        None => ENGINE_FAILURE,
    }
}

/// A command line clap could not parse: help and version go out as asked; anything else is
/// one line on stderr and docker's 125.
pub fn usage_error(e: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                2
            } else {
                0
            }
        }
        _ => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            // The verb's words: the usage line up to its first argument or option.
            let usage = text
                .lines()
                .find_map(|l| l.strip_prefix("Usage: "))
                .and_then(|u| {
                    let words: Vec<&str> = u
                        .split_whitespace()
                        // clap's usage for a near miss names the flag it suggests
                        // (`berth run --cpus <CPUS>`): the command is the words before.
                        .take_while(|w| {
                            !w.starts_with('-')
                                && w.chars().all(|c| {
                                    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
                                })
                        })
                        .collect();
                    (!words.is_empty()).then(|| words.join(" "))
                })
                .unwrap_or_else(|| "berth".into());
            let path = usage.strip_prefix("berth").unwrap_or(&usage).trim();
            if wrong_argument_count(&e) {
                if let Some(message) = super::usage::arity_error(path) {
                    eprintln!("{message}");
                    return 1;
                }
            }
            eprintln!("berth: {first} (see '{usage} --help')");
            ENGINE_FAILURE
        }
    }
}

/// Whether clap refused the command line for its number of arguments (not for a flag):
/// docker answers these with its own message and status 1.
fn wrong_argument_count(e: &clap::Error) -> bool {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let args: Vec<String> = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => vec![s.clone()],
        Some(ContextValue::Strings(v)) => v.clone(),
        _ => vec![],
    };
    let positional = !args.is_empty() && args.iter().all(|a| !a.starts_with('-'));
    match e.kind() {
        ErrorKind::MissingRequiredArgument
        | ErrorKind::TooFewValues
        | ErrorKind::TooManyValues
        | ErrorKind::WrongNumberOfValues
        | ErrorKind::UnknownArgument => positional,
        _ => false,
    }
}

/// An error and its causes on one line: `reading config: key storage.root: invalid type`.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', " ")
}

/// A reader that went away (`berth images | head`) is not an error.
pub fn quiet_pipe(r: anyhow::Result<i32>) -> anyhow::Result<i32> {
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
