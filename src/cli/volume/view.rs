//! A volume as `volume ls` and `volume inspect` show it.

use berth_client::engine::{Engine, VolumeRecord};
use serde_json::{json, Value};

/// docker's inspect document of a volume.
pub fn inspect(e: &Engine, v: &VolumeRecord) -> Value {
    json!({
        "CreatedAt": v.created_at,
        "Driver": v.driver,
        "Labels": v.labels,
        "Mountpoint": e.volume_mountpoint(&v.name),
        "Name": v.name,
        "Options": v.options,
        "Scope": "local",
    })
}

/// A row of `volume ls`: docker's `--format` fields.
pub fn row(e: &Engine, v: &VolumeRecord) -> Value {
    let labels: Vec<String> = v.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    json!({
        "Driver": v.driver,
        "Labels": labels.join(","),
        "Links": "N/A",
        "Mountpoint": e.volume_mountpoint(&v.name),
        "Name": v.name,
        "Scope": "local",
        "Size": "N/A",
    })
}
