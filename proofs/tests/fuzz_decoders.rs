//! Property tests over every decoder of the proof core that reads bytes from
//! outside: C1 outputs (binary and JSON, as a worker receives them), PoSt
//! vanilla proofs (the reference's bincode, as a worker receives them), Groth16
//! parameter files, parent caches, sector metadata and piece files. Each gets
//! valid input mutated (bytes flipped, cut, extended, spliced) and plain
//! garbage, and must answer with an error that names the problem, never panic.
//!
//! Bounded for CI by proptest's default case count; run longer with
//! `PROPTEST_CASES=100000 cargo test --release -p kiln-proofs --test fuzz_decoders`.

mod common;

use bellperson::groth16::VerifyingKey;
use blstrs::{Bls12, G1Affine, G2Affine};
use group::prime::PrimeCurveAffine;
use proofs::sdr::graph::Graph;
use proofs::sdr::parent_cache::ParentCache;
use proofs::seal::c1::{self, C1Output};
use proofs::seal::SectorDir;
use proofs::snark::key::ProvingKey;
use proofs::{Error, Randomness, SectorSize};
use proptest::prelude::*;
use std::sync::OnceLock;

/// A real 2KiB C1 output (the data vector's sector), made once.
fn c1_output() -> &'static C1Output {
    static C1: OnceLock<C1Output> = OnceLock::new();
    C1.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap().keep();
        let (dir, _) = common::seal_vector("seal_2KiB_data.json", &tmp);
        c1::run(&dir, &Randomness([9; 32])).unwrap()
    })
}

/// One way to damage bytes.
#[derive(Clone, Debug)]
enum Damage {
    Flip { at: usize, mask: u8 },
    Cut { at: usize },
    Extend { bytes: Vec<u8> },
    Splice { at: usize, bytes: Vec<u8> },
    Set { at: usize, value: u8 },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, mask)| Damage::Flip { at, mask }),
        any::<usize>().prop_map(|at| Damage::Cut { at }),
        prop::collection::vec(any::<u8>(), 1..64).prop_map(|bytes| Damage::Extend { bytes }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Damage::Splice { at, bytes }),
        (any::<usize>(), prop_oneof![Just(0u8), Just(0xff), Just(b'"'), Just(b'9'), any::<u8>()])
            .prop_map(|(at, value)| Damage::Set { at, value }),
    ]
}

fn apply(mut bytes: Vec<u8>, damages: &[Damage]) -> Vec<u8> {
    for d in damages {
        if bytes.is_empty() {
            break;
        }
        let n = bytes.len();
        match d {
            Damage::Flip { at, mask } => bytes[at % n] ^= mask,
            Damage::Cut { at } => bytes.truncate(at % n),
            Damage::Extend { bytes: more } => bytes.extend(more),
            Damage::Splice { at, bytes: more } => {
                let at = at % n;
                bytes.splice(at..at, more.iter().copied());
            }
            Damage::Set { at, value } => bytes[at % n] = *value,
        }
    }
    bytes
}

/// A C1 decode either fails with a C1 format error or gives an output whose
/// validation answers (any way) without panicking.
fn check_c1(bytes: &[u8]) {
    match C1Output::decode(bytes) {
        Err(e) => assert!(matches!(e, Error::C1Format(_)), "{e}"),
        Ok(c1) => {
            let _ = c1.validate();
        }
    }
}

/// A verifying key's bytes at the head of a parameter file, with `ic` points.
fn vk_bytes(ic: usize) -> Vec<u8> {
    let g1 = G1Affine::generator();
    let g2 = G2Affine::generator();
    let vk = VerifyingKey::<Bls12> {
        alpha_g1: g1,
        beta_g1: g1,
        beta_g2: g2,
        gamma_g2: g2,
        delta_g1: g1,
        delta_g2: g2,
        ic: vec![g1; ic],
    };
    let mut out = Vec::new();
    vk.write(&mut out).unwrap();
    out
}

/// A real 2KiB Window PoSt vanilla proof in the reference's bincode.
fn post_vanilla() -> &'static Vec<u8> {
    use proofs::post::{encoding, vanilla, PostProof};
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap().keep();
        let (dir, _) = common::seal_vector("seal_2KiB_cc.json", &tmp);
        let comm_r = dir.open().unwrap().pc2.unwrap().comm_r;
        let sector = vanilla::ProvingSector::in_dir(7, comm_r, &dir);
        let proof = PostProof::window(SectorSize::KiB2);
        let van = vanilla::generate(&proof, &Randomness([3; 32]), &[sector], Default::default()).unwrap();
        encoding::encode(SectorSize::KiB2, &van.proofs[0])
    })
}

/// A PoSt vanilla proof decodes to the right shape or is refused as invalid.
fn check_post_vanilla(bytes: &[u8]) {
    use proofs::merkle::proof::TreeHash;
    match proofs::post::encoding::decode(SectorSize::KiB2, bytes) {
        Err(e) => assert!(matches!(e, Error::InvalidProof(_)), "{e}"),
        Ok(p) => {
            for ip in &p.inclusion_proofs {
                let _ = ip.computed_root(TreeHash::Poseidon);
            }
        }
    }
}

proptest! {
    #[test]
    fn damaged_post_vanilla_proofs_are_refused_cleanly(damages in prop::collection::vec(damage(), 1..6)) {
        check_post_vanilla(&apply(post_vanilla().clone(), &damages));
    }

    #[test]
    fn garbage_is_not_a_post_vanilla_proof(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        check_post_vanilla(&bytes);
    }

    #[test]
    fn damaged_binary_c1_outputs_are_refused_cleanly(damages in prop::collection::vec(damage(), 1..6)) {
        check_c1(&apply(c1_output().to_binary(), &damages));
    }

    #[test]
    fn damaged_json_c1_outputs_are_refused_cleanly(damages in prop::collection::vec(damage(), 1..6)) {
        check_c1(&apply(c1_output().to_json(), &damages));
    }

    #[test]
    fn garbage_is_not_a_c1_output(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_c1(&bytes);
        let mut binary = b"KILNC1\0\0".to_vec();
        binary.extend(&bytes);
        check_c1(&binary);
    }

    /// A parameter file with a valid verifying key and a damaged or invented
    /// rest: opened with every query in bounds, or refused as `Params`.
    #[test]
    fn parameter_files_with_damaged_queries_are_refused_cleanly(
        ic in 0usize..4,
        counts in prop::collection::vec(prop_oneof![0u32..4, any::<u32>()], 0..6),
        tail in prop::collection::vec(any::<u8>(), 0..2048),
        damages in prop::collection::vec(damage(), 0..3),
    ) {
        let mut bytes = vk_bytes(ic);
        for (i, c) in counts.iter().enumerate() {
            bytes.extend(c.to_be_bytes());
            bytes.extend(tail.iter().take(i * 96));
        }
        bytes.extend(&tail);
        let bytes = apply(bytes, &damages);
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("x.params");
        std::fs::write(&path, &bytes).unwrap();
        match ProvingKey::open(&path) {
            Err(e) => prop_assert!(matches!(e, Error::Params { .. }), "{e}"),
            Ok(key) => {
                for q in [&key.h, &key.l, &key.a, &key.b_g1, &key.b_g2] {
                    if !q.is_empty() {
                        let _ = q.base(key.bytes(), q.len() - 1);
                    }
                }
            }
        }
    }

    /// Sector metadata (`sector.json`) damaged on disk: a `Malformed` error
    /// naming the file, or metadata that parses.
    #[test]
    fn damaged_sector_metadata_is_refused_cleanly(damages in prop::collection::vec(damage(), 1..6)) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = SectorDir::new(tmp.path().join("s"));
        let identity = proofs::seal::SectorIdentity {
            sector_size: SectorSize::KiB2,
            prover_id: proofs::ProverId::from_actor_id(1000),
            sector_id: 1,
        };
        dir.claim(&identity).unwrap();
        let path = dir.meta_path();
        let good = std::fs::read(&path).unwrap();
        std::fs::write(&path, apply(good, &damages)).unwrap();
        if let Err(e) = dir.read_meta() {
            prop_assert!(e.to_string().contains("sector.json"), "{e}");
        }
    }

    /// A piece file of any bytes and length commits or is refused as too large.
    #[test]
    fn any_piece_file_commits_or_is_refused(bytes in prop::collection::vec(any::<u8>(), 0..3000)) {
        let max = SectorSize::KiB2.shape().unpadded_bytes();
        match proofs::pieces::commit_piece(bytes.as_slice(), Some(max), None) {
            Ok((info, read)) => {
                prop_assert_eq!(read, bytes.len() as u64);
                prop_assert!(info.padded_size >= 128 && info.padded_size.is_power_of_two());
            }
            Err(e) => prop_assert!(bytes.len() as u64 > max || bytes.is_empty(), "{e}"),
        }
    }
}

/// A parent cache damaged on disk is refused with the file named, and the
/// good one is still accepted (one case per damage kind: a cache is 2,048 nodes
/// for 2KiB, its digest recomputed each time).
#[test]
fn damaged_parent_caches_are_refused_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let shape = SectorSize::KiB2.shape();
    let graph = Graph::new(shape.num_nodes, shape.porep_id);
    let built = ParentCache::open_or_build(tmp.path(), &graph).unwrap();
    drop(built);
    let path = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "cache"))
        .unwrap();
    let good = std::fs::read(&path).unwrap();
    let cases = [
        Damage::Flip { at: 7, mask: 1 },
        Damage::Flip { at: good.len() - 1, mask: 0x80 },
        Damage::Cut { at: good.len() / 2 },
        Damage::Extend { bytes: vec![0; 4] },
        Damage::Set { at: 1000, value: 0xff },
    ];
    for d in cases {
        std::fs::write(&path, apply(good.clone(), std::slice::from_ref(&d))).unwrap();
        let e = ParentCache::open_verified(&path, &graph).err().unwrap_or_else(|| panic!("{d:?} accepted"));
        assert!(e.to_string().contains(path.file_name().unwrap().to_str().unwrap()), "{d:?}: {e}");
    }
    std::fs::write(&path, &good).unwrap();
    ParentCache::open_verified(&path, &graph).unwrap();
}
