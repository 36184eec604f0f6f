//! The networks every host has: bridge, host and none.

pub use berth_client::engine::predefined_id as network_id;
use berth_client::engine::NetworkMode;

/// The three networks: (name, driver, mode).
pub const NETWORKS: [(&str, &str, NetworkMode); 3] = [
    ("bridge", "bridge", NetworkMode::Bridge),
    ("host", "host", NetworkMode::Host),
    ("none", "null", NetworkMode::None),
];
