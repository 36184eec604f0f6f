//! berth-client: remote registry client, local image store, and container engine.
//!
//! For now it holds the two pieces every pull needs first: [`reference`] turns what a person
//! types into a normalised image reference, and [`unpack`] turns a layer blob into a snapshot
//! directory without letting any entry reach outside it.

pub mod reference;
pub mod unpack;
