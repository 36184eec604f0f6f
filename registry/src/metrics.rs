//! `/metrics`: the registry's counters in Prometheus' text format (version 0.0.4).
//!
//! Counters live beside what they count (the mirror and garbage collection keep their own);
//! this module only gathers them into one answer.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;

use crate::api::{self, Registry};

/// Requests answered since the process started.
pub static REQUESTS: AtomicU64 = AtomicU64::new(0);

pub fn render(reg: &Registry) -> Response {
    let mut out = String::new();
    out.push_str("# HELP berth_http_requests_total HTTP requests answered.\n");
    out.push_str("# TYPE berth_http_requests_total counter\n");
    out.push_str(&format!(
        "berth_http_requests_total {}\n",
        REQUESTS.load(Ordering::Relaxed)
    ));
    if let Some(m) = &reg.mirror {
        m.counters().render(&mut out);
    }
    reg.collections.render(&mut out);
    api::response(
        StatusCode::OK,
        &[
            ("content-type", "text/plain; version=0.0.4".to_string()),
            ("content-length", out.len().to_string()),
        ],
        Body::from(out),
    )
}
