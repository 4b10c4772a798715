//! Default locations of files shared between sectors.
//!
//! Shared, regenerable data (parent caches, Groth16 parameters) lives in the
//! user's cache directory, outside any sector and outside the source tree:
//! `$XDG_CACHE_HOME/kiln`, else `$HOME/.cache/kiln`, else the system temp dir.

use std::path::PathBuf;

/// Kiln's cache root.
pub fn cache_root() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("kiln");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".cache").join("kiln");
    }
    std::env::temp_dir().join("kiln-cache")
}

/// Default directory of SDR parent caches.
pub fn parent_cache_dir() -> PathBuf {
    cache_root().join("parents")
}

/// Default directory of Groth16 parameters (the one place it is decided).
pub fn param_dir() -> PathBuf {
    cache_root().join("params")
}
