//! kiln's C1 output, written in the reference prover's JSON form, is byte for
//! byte the reference's `SealCommitPhase1Output` on the 2KiB vectors.

mod common;

use common::{seal_vector, sha256_hex};
use proofs::seal::c1;
use proofs::seal::reference_json::reference_c1_json;
use proofs::Randomness;

#[test]
fn c1_json_is_byte_identical_to_the_reference() {
    for name in ["seal_2KiB_cc.json", "seal_2KiB_data.json"] {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, v) = seal_vector(name, tmp.path());
        let out = c1::run(&dir, &Randomness([3u8; 32])).unwrap();
        let json = reference_c1_json(&out);
        assert_eq!(json.len() as u64, v["c1_output_json_bytes"].as_u64().unwrap(), "{name}: length");
        assert_eq!(sha256_hex(&json), v["c1_output_json_sha256"].as_str().unwrap(), "{name}: SHA-256");
    }
}
