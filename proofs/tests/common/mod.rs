//! Shared helpers of the proof-core integration tests.
#![allow(dead_code)]

use proofs::sdr::label_par::LabelingConfig;
use proofs::seal::{pc1, pc2, SectorDir, SectorIdentity};
use proofs::{ProverId, Randomness, SectorSize};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

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

/// The sector directory and PC1 request of a seal vector, its pieces written under `tmp`.
pub fn vector_request(
    v: &serde_json::Value,
    tmp: &Path,
    labeling: LabelingConfig,
) -> (SectorDir, pc1::Pc1Request) {
    let mut pieces = vec![];
    if v["kind"] == "data" {
        let data = pattern(v["unpadded_sector_bytes"].as_u64().unwrap() as usize);
        let mut at = 0;
        for (i, p) in v["pieces"].as_array().unwrap().iter().enumerate() {
            let len = p["size_unpadded"].as_u64().unwrap() as usize;
            let path = tmp.join(format!("piece-{i}"));
            std::fs::write(&path, &data[at..at + len]).unwrap();
            at += len;
            pieces.push(path);
        }
    }
    let req = pc1::Pc1Request {
        identity: SectorIdentity {
            sector_size: SectorSize::KiB2,
            prover_id: ProverId::from_hex(v["prover_id_hex"].as_str().unwrap()).unwrap(),
            sector_id: v["sector_id"].as_u64().unwrap(),
        },
        ticket: Randomness::from_hex(v["ticket_hex"].as_str().unwrap()).unwrap(),
        pieces,
        parent_cache_dir: parent_cache_dir(),
        labeling,
        expected_comm_p: Vec::new(),
    };
    (SectorDir::new(tmp.join("sector")), req)
}

/// Pre-commits the sector of a seal vector under `tmp`.
pub fn seal_vector(name: &str, tmp: &Path) -> (SectorDir, serde_json::Value) {
    let v = vector(name);
    let (dir, req) = vector_request(&v, tmp, LabelingConfig::default());
    let cancel = AtomicBool::new(false);
    pc1::run(&dir, &req, &cancel, &mut |_| {}).unwrap();
    pc2::run(&dir, &cancel, &mut |_| {}).unwrap();
    (dir, v)
}
