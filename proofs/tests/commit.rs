//! C1, the circuit on real witnesses, the C1 formats, unsealing and finalize,
//! on the 2KiB reference vectors (and one 8MiB unseal). No Groth16 parameters
//! are needed here: the circuit is checked constraint by constraint with the
//! fast checking system; SNARKs are tested end to end by the `kiln` tests.

mod common;

use bellpepper_core::Circuit;
use common::{pattern, seal_vector};
use proofs::circuit::check_cs::CheckingCs;
use proofs::circuit::SdrCircuit;
use proofs::ids::Node;
use proofs::seal::c1::{self, C1Output};
use proofs::seal::{finalize, pc1, pc2, unseal, SectorDir, SectorIdentity};
use proofs::snark::partition_inputs;
use proofs::{Error, ProverId, Randomness, SectorSize};
use std::sync::atomic::AtomicBool;

fn seed() -> Randomness {
    Randomness([3u8; 32])
}

fn check_circuit(c1: &C1Output) -> CheckingCs {
    let mut cs = CheckingCs::new(false);
    SdrCircuit::from_c1(c1, 0).unwrap().synthesize(&mut cs).unwrap();
    cs
}

fn c1_of(name: &str) -> (tempfile::TempDir, SectorDir, C1Output, serde_json::Value) {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, v) = seal_vector(name, tmp.path());
    let out = c1::run(&dir, &seed()).unwrap();
    (tmp, dir, out, v)
}

#[test]
fn c1_challenges_match_reference_and_the_circuit_is_satisfied() {
    for name in ["seal_2KiB_cc.json", "seal_2KiB_data.json"] {
        let (_tmp, _dir, c1, v) = c1_of(name);
        let challenges: Vec<Vec<u64>> =
            c1.partitions.iter().map(|p| p.iter().map(|c| c.challenge).collect()).collect();
        let want: Vec<Vec<u64>> = serde_json::from_value(v["c1_challenges_formula"].clone()).unwrap();
        assert_eq!(challenges, want, "{name}");
        c1.validate().unwrap();

        let cs = check_circuit(&c1);
        assert_eq!(cs.first_unsatisfied(), None, "{name}");
        assert_eq!(cs.num_constraints(), 2_687_921);
        // The prover's public inputs are exactly those the verifier computes.
        let verifier =
            partition_inputs(c1.identity.sector_size, &c1.replica_id, &c1.seed, &c1.comm_d, &c1.comm_r, 0)
                .unwrap();
        assert_eq!(cs.public_inputs(), verifier.as_slice(), "{name}");
    }
}

/// A witness the native verifier would reject leaves the circuit unsatisfied.
#[test]
fn tampered_witnesses_break_the_circuit() {
    let (_tmp, _dir, c1, _) = c1_of("seal_2KiB_data.json");
    type Tamper = fn(&mut C1Output);
    let cases: [(&str, Tamper); 6] = [
        ("data leaf", |c| c.partitions[0][0].comm_d_proof.leaf.0[0] ^= 1),
        ("tree_d sibling", |c| c.partitions[0][1].comm_d_proof.path[3].siblings[0].0[5] ^= 1),
        ("parent label", |c| c.partitions[0][0].drg_parents[2].column.rows[1].0[0] ^= 1),
        ("expander label", |c| c.partitions[0][1].exp_parents[7].column.rows[0].0[9] ^= 1),
        ("tree_r_last sibling", |c| c.partitions[0][0].comm_r_last_proof.path[1].siblings[6].0[1] ^= 1),
        ("comm_c", |c| c.comm_c.0[0] ^= 1),
    ];
    for (what, tamper) in cases {
        let mut bad = c1.clone();
        tamper(&mut bad);
        assert!(bad.validate().is_err(), "native verifier accepts a bad {what}");
        let cs = check_circuit(&bad);
        assert!(!cs.is_satisfied(), "circuit accepts a bad {what}");
    }
    // A path position that does not match the challenge changes the public input.
    let mut moved = c1.clone();
    moved.partitions[0][0].comm_d_proof.path[0].index ^= 1;
    let cs = check_circuit(&moved);
    let verifier =
        partition_inputs(c1.identity.sector_size, &c1.replica_id, &c1.seed, &c1.comm_d, &c1.comm_r, 0)
            .unwrap();
    assert!(!cs.is_satisfied() || cs.public_inputs() != verifier.as_slice());
}

#[test]
fn c1_forms_round_trip_and_bad_files_get_clear_errors() {
    let (tmp, _dir, c1, _) = c1_of("seal_2KiB_cc.json");
    let json = c1.to_json();
    let bin = c1.to_binary();
    assert!(bin.len() < json.len() / 2, "binary {} vs JSON {}", bin.len(), json.len());
    assert_eq!(C1Output::decode(&json).unwrap(), c1);
    assert_eq!(C1Output::decode(&bin).unwrap(), c1);

    // Truncated at every tenth of its length, in both forms: an error, never a panic.
    for bytes in [&json, &bin] {
        for cut in (0..10).map(|i| bytes.len() * i / 10) {
            let err = C1Output::decode(&bytes[..cut]).unwrap_err();
            assert!(matches!(err, Error::C1Format(_)), "{err}");
        }
    }
    let mut wrong_version = bin.clone();
    wrong_version[8] = 9;
    assert!(C1Output::decode(&wrong_version).unwrap_err().to_string().contains("version 9"));
    // Well-formed JSON of the wrong shape is refused before any proving.
    let mut v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    v["partitions"][0].as_array_mut().unwrap().pop();
    let short = C1Output::decode(&serde_json::to_vec(&v).unwrap()).unwrap();
    assert!(matches!(short.validate(), Err(Error::InvalidProof(_))));
    v["partitions"][0] = serde_json::json!([{"challenge": 1}]);
    assert!(matches!(C1Output::decode(&serde_json::to_vec(&v).unwrap()), Err(Error::C1Format(_))));
    // A file too large to be a C1 output is refused by size.
    let big = tmp.path().join("big.c1");
    std::fs::File::create(&big).unwrap().set_len(c1::MAX_C1_BYTES + 1).unwrap();
    assert!(C1Output::read(&big).unwrap_err().to_string().contains("larger than any C1 output"));
    // A flipped node inside the binary form decodes but fails validation.
    let mut flipped = bin.clone();
    let at = flipped.len() / 2;
    flipped[at] ^= 0x40;
    if let Ok(c) = C1Output::decode(&flipped) {
        assert!(c.validate().is_err());
    }
}

#[test]
fn c1_refuses_a_corrupt_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = seal_vector("seal_2KiB_cc.json", tmp.path());
    let layer = dir.cache_dir().join("sc-02-data-layer-1.dat");
    let mut bytes = std::fs::read(&layer).unwrap();
    bytes[16 * 32] ^= 1; // the label of node 16, the first challenge
    std::fs::write(&layer, bytes).unwrap();
    let err = c1::run(&dir, &seed()).unwrap_err();
    assert!(err.to_string().contains("tree_c"), "{err}");
}

fn unsealed(dir: &SectorDir, offset: u64, len: u64) -> Vec<u8> {
    unsealed_with(dir, offset, len, None)
}

/// Unseals a range; with layers removed, regenerates them in the given scratch.
fn unsealed_with(dir: &SectorDir, offset: u64, len: u64, scratch: Option<unseal::Scratch>) -> Vec<u8> {
    // Beside the sector directory: unseal refuses to write into it.
    let out = dir.root().with_file_name(format!("unsealed-{offset}-{len}"));
    let cancel = AtomicBool::new(false);
    let parents = common::parent_cache_dir();
    let report =
        unseal::unseal_range_with(dir, offset, len, &out, &parents, scratch, &cancel, &mut |_| {}).unwrap();
    if scratch.is_some() {
        assert_eq!(report.scratch, scratch, "regenerated in the scratch asked for");
    }
    std::fs::read(out).unwrap()
}

/// No scratch file of an unsealing is left in the cache directory.
fn no_scratch_left(dir: &SectorDir) {
    for entry in std::fs::read_dir(dir.cache_dir()).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(!name.to_string_lossy().starts_with("unseal-scratch"), "{name:?} left behind");
    }
}

#[test]
fn unseal_2kib_full_and_partial_with_and_without_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = seal_vector("seal_2KiB_data.json", tmp.path());
    let data = pattern(2032);
    assert_eq!(unsealed(&dir, 0, 2032), data);
    assert_eq!(unsealed(&dir, 100, 300), data[100..400]);
    assert_eq!(unsealed(&dir, 127, 127), data[127..254]);
    assert_eq!(unsealed(&dir, 2031, 1), data[2031..]);

    let removed = finalize::finalize(&dir, false).unwrap();
    assert_eq!(removed.len(), 6, "{removed:?}"); // 2 layers, their record, tree_d, tree_c, unsealed
    for kept in ["sc-02-data-tree-r-last.dat", "p_aux", "t_aux"] {
        assert!(dir.cache_dir().join(kept).exists(), "{kept}");
    }
    assert!(dir.sealed_path().exists());
    assert!(finalize::finalize(&dir, false).unwrap().is_empty(), "finalize is idempotent");
    // Layers gone: they are regenerated for unsealing, in memory or in scratch files,
    // and nothing of them is left.
    assert_eq!(unsealed(&dir, 0, 2032), data);
    assert_eq!(unsealed_with(&dir, 1000, 500, Some(unseal::Scratch::Memory)), data[1000..1500]);
    assert_eq!(unsealed_with(&dir, 1, 2000, Some(unseal::Scratch::Files)), data[1..2001]);
    no_scratch_left(&dir);

    let cancel = AtomicBool::new(false);
    let out = tmp.path().join("x");
    let err = unseal::unseal_range(&dir, 2000, 33, &out, &common::parent_cache_dir(), &cancel, &mut |_| {});
    assert!(matches!(err, Err(Error::PieceSize(_))));
    // A replica that no longer decodes to comm_d is refused, and nothing is written.
    let mut replica = std::fs::read(dir.sealed_path()).unwrap();
    replica[40] ^= 1;
    std::fs::write(dir.sealed_path(), replica).unwrap();
    let err = unseal::unseal_range(&dir, 0, 10, &out, &common::parent_cache_dir(), &cancel, &mut |_| {});
    assert!(matches!(err, Err(Error::CommDMismatch { .. })), "{err:?}");
    assert!(!out.exists());
}

/// Staged data that no longer matches its pieces (damaged between two runs) is
/// caught by tree_d, which is built beside the labeling: PC1 fails naming both
/// commitments and does not record itself done.
#[test]
fn pc1_refuses_staged_data_that_disagrees_with_its_pieces() {
    let tmp = tempfile::tempdir().unwrap();
    let v = common::vector("seal_2KiB_data.json");
    let (dir, req) = common::vector_request(&v, tmp.path(), Default::default());
    let cancel = AtomicBool::new(false);
    pc1::run(&dir, &req, &cancel, &mut |_| {}).unwrap();
    let mut staged = std::fs::read(dir.unsealed_path()).unwrap();
    staged[300] ^= 0x01;
    std::fs::write(dir.unsealed_path(), &staged).unwrap();
    let mut meta = dir.read_meta().unwrap().unwrap();
    meta.pc1 = None;
    dir.write_meta(&meta).unwrap();
    let err = pc1::run(&dir, &req, &cancel, &mut |_| {}).unwrap_err();
    assert!(matches!(err, Error::CommDMismatch { .. }), "{err}");
    assert!(err.to_string().contains(v["comm_d"].as_str().unwrap()), "{err}");
    assert_eq!(dir.read_meta().unwrap().unwrap().pc1, None, "PC1 not recorded done");
}

#[test]
fn unseal_8mib_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let size = SectorSize::MiB8;
    let data = pattern(size.shape().unpadded_bytes() as usize);
    let piece = tmp.path().join("piece");
    std::fs::write(&piece, &data).unwrap();
    let dir = SectorDir::new(tmp.path().join("sector"));
    let req = pc1::Pc1Request {
        identity: SectorIdentity {
            sector_size: size,
            prover_id: ProverId::from_actor_id(1000),
            sector_id: 7,
        },
        ticket: Randomness([5u8; 32]),
        pieces: vec![piece],
        parent_cache_dir: common::parent_cache_dir(),
        labeling: Default::default(),
        expected_comm_p: Vec::new(),
    };
    let cancel = AtomicBool::new(false);
    pc1::run(&dir, &req, &cancel, &mut |_| {}).unwrap();
    pc2::run(&dir, &cancel, &mut |_| {}).unwrap();
    assert_eq!(unsealed(&dir, 0, data.len() as u64), data);
    assert_eq!(unsealed(&dir, 4_000_001, 123_457), data[4_000_001..4_123_458]);
    // After finalize the layers are regenerated, and the last one decoded while it is labeled.
    finalize::finalize(&dir, true).unwrap();
    assert_eq!(unsealed_with(&dir, 0, data.len() as u64, Some(unseal::Scratch::Memory)), data);
    assert_eq!(
        unsealed_with(&dir, 3_000_000, 1_000_000, Some(unseal::Scratch::Files)),
        data[3_000_000..4_000_000]
    );
    no_scratch_left(&dir);
}

#[test]
fn node_serialises_as_hex_in_json() {
    let n = Node([0xab; 32]);
    assert_eq!(serde_json::to_string(&n).unwrap(), format!("\"{}\"", "ab".repeat(32)));
}
