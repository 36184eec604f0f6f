//! `berth gc`: one garbage collection of a registry's store, by hand, beside a running
//! `berth serve` (or several): the store's lease lets one collection run at a time.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use berth_storage::gc::{self, Options, Progress, Report};
use berth_storage::Store;
use clap::Args;

use super::super::format::human_size;
use super::super::globals::Globals;

#[derive(Args)]
pub struct GcArgs {
    /// The registry's configuration file (TOML): its [storage] is collected by its [gc]
    /// policy; without it, the store `berth serve` would use by default
    #[arg(short, long, value_name = "FILE", env = "BERTH_CONFIG_FILE")]
    config: Option<PathBuf>,
    /// List what would be deleted (tags, manifests, blobs, bytes), delete nothing
    #[arg(short = 'n', long)]
    dry_run: bool,
}

/// A progress line on stderr: rewritten in place on a terminal, a line per step otherwise.
struct Line {
    tty: bool,
    last: Mutex<(String, Instant)>,
    /// The test hook's blob count (see [`PAUSE_ENV`]); taken once it fired.
    pause_at: Mutex<Option<u64>>,
}

/// A test hook: with `BERTH_TEST_GC_PAUSE_AT=N`, the sweep stops for at most
/// [`PAUSE_LIMIT`] once N or more of its doomed blobs are deleted (0: before its first batch;
/// 1: after its first), and says so on stderr (`sweeping: paused at D/T blobs`), so that a
/// test can SIGKILL a collection at a known point of its deletes. The lease keeps being
/// renewed meanwhile, as in a collection that is merely slow.
const PAUSE_ENV: &str = "BERTH_TEST_GC_PAUSE_AT";
const PAUSE_LIMIT: Duration = Duration::from_secs(60);

impl Progress for Line {
    fn update(&self, step: &str, done: u64, total: Option<u64>) {
        let mut last = self.last.lock().unwrap();
        let text = match total {
            Some(t) if t > 0 => format!("{step}: {done}/{t} blobs ({}%)", done * 100 / t),
            Some(_) => format!("{step}: nothing to delete"),
            None => format!("{step}: {done} manifests read"),
        };
        if self.tty {
            // At most ten redraws a second.
            if last.1.elapsed().as_millis() >= 100 || total.is_some_and(|t| done >= t) {
                eprint!("\r\x1b[2K{text}");
                let _ = std::io::stderr().flush();
                last.1 = Instant::now();
            }
        } else if last.0 != step {
            eprintln!("{text}");
        }
        last.0 = step.to_string();
        drop(last);
        if let (Some(t), "sweeping") = (total, step) {
            let mut pause_at = self.pause_at.lock().unwrap();
            if pause_at.is_some_and(|n| done >= n && done < t) {
                *pause_at = None;
                eprintln!("{step}: paused at {done}/{t} blobs");
                std::thread::sleep(PAUSE_LIMIT);
            }
        }
    }
}

pub fn run(globals: &Globals, args: GcArgs) -> Result<i32> {
    let config = super::registry_config(globals, args.config.as_deref())?;
    let store = Store::open(&config.storage).map_err(anyhow::Error::msg)?;
    let pause_at = match std::env::var(PAUSE_ENV) {
        Ok(n) => Some(
            n.parse()
                .with_context(|| format!("{PAUSE_ENV}={n:?}: not a count of blobs"))?,
        ),
        Err(_) => None,
    };
    let tty = std::io::stderr().is_terminal();
    let line = Arc::new(Line {
        tty,
        last: Mutex::new((String::new(), Instant::now())),
        pause_at: Mutex::new(pause_at),
    });
    let options = Options {
        dry_run: args.dry_run,
        progress: Some(line.clone()),
        ..Options::default()
    };
    // One malloc arena for every thread: the blocking pool's threads would each keep one,
    // with what the scan's pages freed in it (0.5 MiB of a 100,000-blob collection's peak).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable of the allocator, before any thread is started.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    // The collection runs on this thread; one worker renews the lease beside it, and the
    // blocking pool reads the file system. More workers only add stacks and arenas.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // What start-up touched of the binary (arguments, the config) is not needed again: its
    // pages leave the resident set, and what the collection runs faults back in.
    super::pages::release();
    let result = runtime.block_on(gc::collect(&store, &config.gc, &options));
    if tty {
        eprint!("\r\x1b[2K");
    }
    print_report(&result?);
    Ok(0)
}

fn print_report(r: &Report) {
    let (verb, total) = if r.dry_run {
        ("Would delete", "Total reclaimable space")
    } else {
        ("Deleted", "Total reclaimed space")
    };
    let list = |what: &str, items: &[String]| {
        if !items.is_empty() {
            println!("{verb} {what}:");
            for i in items {
                println!("{i}");
            }
            println!();
        }
    };
    list("tags", &r.tags);
    list("manifests", &r.manifests);
    println!(
        "{verb} {} blobs, {} blob links, {} upload sessions, {} abandoned writes",
        r.blobs, r.blob_links, r.uploads, r.abandoned_writes
    );
    println!("{total}: {}", human_size(r.bytes));
}
