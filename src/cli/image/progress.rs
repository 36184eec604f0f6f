//! Pull and push progress as docker shows it: a bar per layer on a terminal, a line per step
//! otherwise.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use berth_client::images::{LayerState, Progress};
use berth_storage::Digest;

/// Progress as docker shows it: a bar per layer on a terminal, a line per step otherwise.
pub struct CliProgress {
    quiet: bool,
    bars: Option<indicatif::MultiProgress>,
    state: Mutex<HashMap<Digest, (Option<indicatif::ProgressBar>, String)>>,
}

impl CliProgress {
    pub fn new(quiet: bool) -> Arc<CliProgress> {
        let tty = std::io::stdout().is_terminal();
        Arc::new(CliProgress {
            quiet,
            bars: (tty && !quiet).then(indicatif::MultiProgress::new),
            state: Mutex::new(HashMap::new()),
        })
    }

    pub fn finish(&self) {
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
