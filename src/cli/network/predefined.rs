//! The networks every host has: bridge, host and none.

use berth_client::engine::NetworkMode;
use berth_storage::Digest;

/// The three networks: (name, driver, mode).
pub const NETWORKS: [(&str, &str, NetworkMode); 3] = [
    ("bridge", "bridge", NetworkMode::Bridge),
    ("host", "host", NetworkMode::Host),
    ("none", "null", NetworkMode::None),
];

/// A network's id: stable, from its name (there is no daemon to hand out random ones).
pub fn network_id(name: &str) -> String {
    Digest::sha256_of(format!("berth network {name}").as_bytes())
        .hex()
        .to_string()
}
