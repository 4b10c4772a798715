//! Shared helpers of the proof-core integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The reference vectors copied from `shared/vectors`.
pub fn vector(name: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors").join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// The vectors' data pattern: byte i = (i*31 + 7) mod 251.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + 7) % 251) as u8).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A parent-cache directory shared by the tests of one process.
pub fn parent_cache_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-test-parents-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
