//! berth-client: remote registry client, local image store and container engine (placeholder).
