//! berth-registry: the HTTP registry server (placeholder).
