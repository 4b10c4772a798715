//! Helpers shared by the `kiln` binary tests.
#![allow(dead_code)]

use serde_json::Value;
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn vector(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../proofs/tests/vectors").join(name);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + 7) % 251) as u8).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// `kiln` with its shared caches inside `home`, so tests do not touch the user's.
pub fn kiln(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.env("XDG_CACHE_HOME", home.join("xdg-cache")).env("RUST_LOG", "warn");
    cmd
}

pub fn json_of(out: &Output) -> Value {
    assert!(out.status.success(), "kiln failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn hex32(byte: &str) -> String {
    byte.repeat(32)
}

pub fn pre_commit_args(dir: &Path, sector_id: u64) -> Vec<String> {
    [
        "seal",
        "pre-commit",
        "--sector-size",
        "2KiB",
        "--prover-id",
        &hex32("01"),
        "--sector-id",
        &sector_id.to_string(),
        "--ticket",
        &hex32("02"),
        "--dir",
        dir.to_str().unwrap(),
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The shared Groth16 parameter directory (the user's cache, so that runs reuse
/// one 2KiB test setup), with the 2KiB setup generated if absent.
pub fn param_dir() -> PathBuf {
    static READY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    READY
        .get_or_init(|| {
            let dir = sealing::dirs::param_dir();
            let params = proofs::snark::params::PorepParams::new(&dir, proofs::SectorSize::KiB2);
            params.generate_test_setup(proofs::snark::params::TEST_SETUP_SEED).expect("2KiB test setup");
            dir
        })
        .clone()
}
