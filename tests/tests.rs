//! berth's end-to-end tests: one test binary, one module per area, shared helpers in `util`.
//! Each drives the `berth` binary and real peers (`scripts/test.sh` installs them); a missing
//! peer fails.

mod auth;
mod auth_tls;
mod chaos;
mod cli;
mod gc;
mod house;
mod images;
mod mirror;
mod notify;
mod ops;
mod registry;
mod root_build;
mod root_confine;
mod root_containers;
mod root_events;
mod root_files;
mod root_lifecycle;
mod root_network;
mod root_network_ports;
mod root_prune;
mod root_resources;
mod root_rootless;
mod root_run_more;
mod root_stats;
mod root_volumes;
mod system;
mod util;
mod volumes;
