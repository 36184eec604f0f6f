//! berth-runtime: one container's life (placeholder until the runtime lands).
