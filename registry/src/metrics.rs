//! `/metrics`: the registry's counters in Prometheus' text format (version 0.0.4).
//!
//! Counters live beside what they count (the mirror keeps its own and adds them through
//! `api::Front::render_metrics`; garbage collection's are in `gc`); this module holds the
//! request counter and writes the text. It imports nothing of the registry's: the spec
//! handlers turn the text into the answer.

use std::sync::atomic::{AtomicU64, Ordering};

/// Requests answered since the process started.
pub static REQUESTS: AtomicU64 = AtomicU64::new(0);

/// The content type of [`text`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// The counters as Prometheus reads them: the request counter, then what `more` adds.
pub fn text(more: impl FnOnce(&mut String)) -> String {
    let mut out = String::new();
    out.push_str("# HELP berth_http_requests_total HTTP requests answered.\n");
    out.push_str("# TYPE berth_http_requests_total counter\n");
    out.push_str(&format!(
        "berth_http_requests_total {}\n",
        REQUESTS.load(Ordering::Relaxed)
    ));
    more(&mut out);
    out
}
