//! berth-storage: digests, names, backends and the content-addressable store.
