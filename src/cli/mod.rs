//! The command areas and how their errors become exit codes.

use clap::Subcommand;

pub mod containers;
pub mod images;
pub mod serve;

#[derive(Subcommand)]
pub enum Command {
    /// Run the registry server
    Serve(serve::ServeArgs),
    #[command(flatten)]
    Image(images::ImageCommand),
    #[command(flatten)]
    Container(Box<containers::ContainerCommand>),
}

/// Runs a command and returns the process exit status, having printed any error as one line.
pub fn run(command: Command) -> i32 {
    let result = match command {
        Command::Serve(args) => serve::run(args),
        Command::Image(cmd) => images::run(cmd),
        Command::Container(cmd) => containers::run(*cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {}", one_line(&e));
            1
        }
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
            let usage = text
                .lines()
                .find_map(|l| l.strip_prefix("Usage: "))
                .and_then(|u| {
                    let words: Vec<&str> = u
                        .split_whitespace()
                        .take_while(|w| !w.starts_with('[') && !w.starts_with('<'))
                        .collect();
                    (!words.is_empty()).then(|| words.join(" "))
                })
                .unwrap_or_else(|| "berth".into());
            eprintln!("berth: {first} (see '{usage} --help')");
            125
        }
    }
}

/// Sends logs to stderr; `RUST_LOG` (or `BERTH_LOG`) picks the level, `info` by default.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("BERTH_LOG")
        .ok()
        .map(EnvFilter::new)
        .unwrap_or_else(|| {
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
        });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
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
