//! Every value of the reference vectors (`tests/vectors`, copied from
//! `shared/vectors`) reproduced through the library API.

mod common;

use common::{pattern, sha256_hex, vector};
use proofs::fr32::Fr32Reader;
use proofs::pieces::commit_piece;
use proofs::sdr::label_par::LabelingConfig;
use proofs::seal::{pc1, pc2};
use std::io::Read;
use std::sync::atomic::AtomicBool;

#[test]
fn comm_p_vectors() {
    let v = vector("commp_fr32.json");
    for case in v["comm_p"].as_array().unwrap() {
        let n = case["unpadded_size"].as_u64().unwrap() as usize;
        let data = match case["data"].as_str().unwrap() {
            "zero" => vec![0u8; n],
            _ => pattern(n),
        };
        let (info, _) = commit_piece(&data[..], None, None).unwrap();
        assert_eq!(info.comm_p.to_hex(), case["comm_p"].as_str().unwrap(), "{case}");
        assert_eq!(info.padded_size, case["padded_size"].as_u64().unwrap());
    }
}

#[test]
fn fr32_vectors() {
    let v = vector("commp_fr32.json");
    for case in v["fr32"].as_array().unwrap() {
        let input = hex::decode(case["input_hex"].as_str().unwrap()).unwrap();
        let mut out = Vec::new();
        Fr32Reader::new(&input[..]).read_to_end(&mut out).unwrap();
        assert_eq!(hex::encode(&out), case["padded_hex"].as_str().unwrap(), "{}", case["name"]);
    }
}

/// Seals the vector's sector with the library and checks every PC1/PC2 value.
fn check_seal_vector(name: &str, config: LabelingConfig) {
    let v = vector(name);
    let tmp = tempfile::tempdir().unwrap();
    let (dir, req) = common::vector_request(&v, tmp.path(), config);
    let cancel = AtomicBool::new(false);
    let r1 = pc1::run(&dir, &req, &cancel, &mut |_| {}).unwrap();
    assert_eq!(r1.output.comm_d.to_hex(), v["comm_d"].as_str().unwrap());
    assert_eq!(r1.output.replica_id.to_hex(), v["replica_id"].as_str().unwrap());
    let user_pieces: Vec<_> = r1.pieces.iter().filter(|p| p.source.is_some()).collect();
    if v["kind"] == "data" {
        for (got, want) in user_pieces.iter().zip(v["pieces"].as_array().unwrap()) {
            assert_eq!(got.info.comm_p.to_hex(), want["comm_p"].as_str().unwrap());
        }
    }
    let r2 = pc2::run(&dir, &cancel, &mut |_| {}).unwrap();
    assert_eq!(r2.output.comm_c.to_hex(), v["comm_c"].as_str().unwrap());
    assert_eq!(r2.output.comm_r_last.to_hex(), v["comm_r_last"].as_str().unwrap());
    assert_eq!(r2.output.comm_r.to_hex(), v["comm_r"].as_str().unwrap());

    let read = |p: std::path::PathBuf| std::fs::read(p).unwrap();
    assert_eq!(sha256_hex(&read(dir.unsealed_path())), v["staged_unsealed_file_sha256"].as_str().unwrap());
    assert_eq!(sha256_hex(&read(dir.sealed_path())), v["sealed_replica_sha256"].as_str().unwrap());
    let cache = dir.cache_dir();
    let abs_cache = std::fs::canonicalize(&cache).unwrap();
    for (file, want) in v["cache_files_after_pc2"].as_object().unwrap() {
        let bytes = read(cache.join(file));
        if file == "t_aux" {
            // t_aux embeds the cache directory's path, so only its layout can match:
            // 210 fixed bytes plus the path once per store config (5 for 2 layers).
            assert_eq!(bytes.len(), 210 + 5 * abs_cache.to_str().unwrap().len(), "t_aux");
            continue;
        }
        assert_eq!(bytes.len() as u64, want["bytes"].as_u64().unwrap(), "{file}");
        assert_eq!(sha256_hex(&bytes), want["sha256"].as_str().unwrap(), "{file}");
    }
}

#[test]
fn seal_2kib_cc_vector_reference_labeler() {
    check_seal_vector("seal_2KiB_cc.json", LabelingConfig::reference());
}

#[test]
fn seal_2kib_cc_vector_parallel_labeler() {
    check_seal_vector(
        "seal_2KiB_cc.json",
        LabelingConfig { producers: 2, lookahead: 8, in_memory: Some(false), ..LabelingConfig::default() },
    );
}

#[test]
fn seal_2kib_data_vector() {
    check_seal_vector("seal_2KiB_data.json", LabelingConfig::default());
}

/// A piece whose bytes changed after intake fails staging with both
/// commitments named, before any layer is labeled; its recorded comm_p passes.
#[test]
fn a_piece_changed_since_intake_is_refused_before_labeling() {
    let v = vector("seal_2KiB_data.json");
    let tmp = tempfile::tempdir().unwrap();
    let (dir, mut req) = common::vector_request(&v, tmp.path(), LabelingConfig::default());
    let recorded: Vec<proofs::Commitment> = req
        .pieces
        .iter()
        .map(|p| commit_piece(std::fs::File::open(p).unwrap(), None, None).unwrap().0.comm_p)
        .collect();
    assert!(!recorded.is_empty());
    // One byte of the first piece flips after its comm_p was recorded.
    let mut bytes = std::fs::read(&req.pieces[0]).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&req.pieces[0], &bytes).unwrap();
    req.expected_comm_p = recorded.clone();
    let cancel = AtomicBool::new(false);
    let err = pc1::run(&dir, &req, &cancel, &mut |_| {}).unwrap_err();
    assert!(matches!(err, proofs::Error::CommPMismatch { .. }), "{err}");
    assert_eq!(err.disposition(), proofs::Disposition::Permanent);
    let text = err.to_string();
    assert!(text.contains("changed since it was added") && text.contains(&recorded[0].to_hex()), "{text}");
    assert!(!dir.cache_dir().join("sc-02-data-layer-1.dat").exists(), "nothing labeled");
    // Restored, it stages and seals.
    bytes[0] ^= 1;
    std::fs::write(&req.pieces[0], &bytes).unwrap();
    let tmp2 = tempfile::tempdir().unwrap();
    let (dir2, mut req2) = common::vector_request(&v, tmp2.path(), LabelingConfig::default());
    req2.expected_comm_p = recorded;
    pc1::run(&dir2, &req2, &cancel, &mut |_| {}).unwrap();
}
