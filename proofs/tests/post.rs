//! Winning and Window PoSt against the reference (`post_2KiB.json`): the
//! three CC sectors of the vectors sealed by kiln, then every challenge and
//! vanilla proof byte compared, the reference's SNARKs verified with a setup
//! drawn as the reference draws its test setups (its verifying key compared
//! byte for byte), and kiln's SNARKs verified and tampered with.

mod common;

use proofs::circuit::PostCircuit;
use proofs::ids::{Commitment, ProverId, Randomness};
use proofs::post::challenges::{sector_challenges, winning_sector_index};
use proofs::post::vanilla::{self, ProvingSector, ReadLimits, SectorProof};
use proofs::post::{encoding, PostProof};
use proofs::sdr::label_par::LabelingConfig;
use proofs::seal::{pc1, pc2, SectorDir, SectorIdentity};
use proofs::snark::key::ProvingKey;
use proofs::snark::params::REFERENCE_TEST_SEED;
use proofs::snark::post as snark;
use proofs::snark::setup;
use proofs::SectorSize;
use rand_core::SeedableRng;
use rand_xorshift::XorShiftRng;
use serde_json::Value;
use std::path::Path;
use std::sync::atomic::AtomicBool;

const SIZE: SectorSize = SectorSize::KiB2;

struct Fixture {
    _tmp: tempfile::TempDir,
    v: Value,
    randomness: Randomness,
    prover: ProverId,
    sectors: Vec<ProvingSector>,
}

/// Seals the vectors' three CC sectors.
fn fixture() -> Fixture {
    let v = common::vector("post_2KiB.json");
    let tmp = tempfile::tempdir().unwrap();
    let prover = ProverId::from_hex(v["prover_id_hex"].as_str().unwrap()).unwrap();
    let ticket = Randomness::from_hex(v["ticket_hex"].as_str().unwrap()).unwrap();
    let mut sectors = Vec::new();
    for s in v["sectors"].as_array().unwrap() {
        let sector_id = s["sector_id"].as_u64().unwrap();
        let dir = SectorDir::new(tmp.path().join(format!("s-{sector_id}")));
        let req = pc1::Pc1Request {
            identity: SectorIdentity { sector_size: SIZE, prover_id: prover, sector_id },
            ticket,
            pieces: vec![],
            parent_cache_dir: common::parent_cache_dir(),
            labeling: LabelingConfig::default(),
            expected_comm_p: vec![],
        };
        let cancel = AtomicBool::new(false);
        pc1::run(&dir, &req, &cancel, &mut |_| {}).unwrap();
        let out = pc2::run(&dir, &cancel, &mut |_| {}).unwrap().output;
        assert_eq!(out.comm_r.to_hex(), s["comm_r"].as_str().unwrap(), "comm_r of sector {sector_id}");
        sectors.push(ProvingSector::in_dir(sector_id, out.comm_r, &dir));
    }
    let randomness = Randomness::from_hex(v["randomness_hex_masked"].as_str().unwrap()).unwrap();
    Fixture { _tmp: tmp, v, randomness, prover, sectors }
}

fn u64s(v: &Value) -> Vec<u64> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect()
}

/// A setup drawn as the reference's `paramcache` draws test setups.
fn reference_setup(proof: &PostProof, dir: &Path) -> (ProvingKey, Vec<u8>) {
    let params = setup::generate_random_parameters(
        PostCircuit::blank(proof),
        &mut XorShiftRng::from_seed(REFERENCE_TEST_SEED),
    )
    .unwrap();
    let path = dir.join(format!("{}.params", proof.name()));
    let mut file = std::fs::File::create(&path).unwrap();
    params.write(&mut file).unwrap();
    drop(file);
    let mut vk = Vec::new();
    params.vk.write(&mut vk).unwrap();
    (ProvingKey::open(&path).unwrap(), vk)
}

fn prepared(vk: &[u8]) -> bellperson::groth16::PreparedVerifyingKey<blstrs::Bls12> {
    bellperson::groth16::prepare_verifying_key(&bellperson::groth16::VerifyingKey::read(vk).unwrap())
}

fn public(sectors: &[ProvingSector]) -> Vec<(u64, Commitment)> {
    sectors.iter().map(|s| (s.sector_id, s.comm_r)).collect()
}

#[test]
fn winning_and_window_post_equal_the_reference() {
    let f = fixture();
    let w = &f.v["winning"];

    // Winning: the sector, its 66 leaves, the vanilla proof's bytes.
    let winning = PostProof::winning(SIZE);
    assert_eq!(winning.name(), w["proof_type"].as_str().unwrap());
    let index =
        winning_sector_index(&f.prover, &f.randomness, w["sector_set_len"].as_u64().unwrap()).unwrap();
    assert_eq!(index, w["sector_challenge_index"].as_u64().unwrap());
    let chosen = &f.sectors[index as usize];
    assert_eq!(chosen.sector_id, w["challenged_sector_id"].as_u64().unwrap());
    assert_eq!(sector_challenges(&winning, &f.randomness, chosen.sector_id, 0), u64s(&w["leaf_challenges"]));
    let van = vanilla::generate(&winning, &f.randomness, std::slice::from_ref(chosen), ReadLimits::default())
        .unwrap();
    assert!(van.faults.is_empty(), "{:?}", van.faults);
    let bytes = encoding::encode(SIZE, &van.proofs[0]);
    assert_eq!(bytes.len() as u64, w["vanilla_proof_bincode_len"].as_u64().unwrap());
    assert_eq!(hex::encode(&bytes), w["vanilla_proof_bincode_hex"].as_str().unwrap());
    assert_eq!(encoding::decode(SIZE, &bytes).unwrap(), van.proofs[0]);

    // Window: 10 leaves per sector, every sector's vanilla bytes, 2 partitions.
    let wd = &f.v["window"];
    let window = PostProof::window(SIZE);
    assert_eq!(window.name(), wd["proof_type"].as_str().unwrap());
    assert_eq!(window.partitions(f.sectors.len()) as u64, wd["partitions"].as_u64().unwrap());
    let van = vanilla::generate(&window, &f.randomness, &f.sectors, ReadLimits::default()).unwrap();
    assert!(van.faults.is_empty(), "{:?}", van.faults);
    for (i, (want, got)) in wd["sectors"].as_array().unwrap().iter().zip(&van.proofs).enumerate() {
        assert_eq!(got.sector_id, want["sector_id"].as_u64().unwrap());
        assert_eq!(
            sector_challenges(&window, &f.randomness, got.sector_id, i),
            u64s(&want["leaf_challenges"])
        );
        let bytes = encoding::encode(SIZE, got);
        assert_eq!(hex::encode(&bytes), want["vanilla_proof_bincode_hex"].as_str().unwrap());
        assert!(vanilla::verify_sector_proof(&window, &f.randomness, got.sector_id, &got.comm_r, i, got));
    }
}

#[test]
fn reference_setups_and_proofs_verify_and_kiln_proofs_resist_tampering() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let winning = PostProof::winning(SIZE);
    let window = PostProof::window(SIZE);
    let mut keys = Vec::new();
    for (proof, want) in [(winning, &f.v["params"][0]), (window, &f.v["params"][1])] {
        assert_eq!(want["proof"].as_str().unwrap(), proof.name());
        let (pk, vk) = reference_setup(&proof, tmp.path());
        assert_eq!(common::sha256_hex(&vk), want["vk_sha256"].as_str().unwrap(), "{proof} verifying key");
        keys.push((pk, prepared(&vk)));
    }
    let (win_pk, win_vk) = &keys[0];
    let (wd_pk, wd_vk) = &keys[1];
    let chosen = &f.sectors[1];
    let one = public(std::slice::from_ref(chosen));
    let all = public(&f.sectors);

    // The reference's own proofs.
    let sample = |k: &str| hex::decode(f.v[k]["snark_proof_hex_one_sample"].as_str().unwrap()).unwrap();
    assert!(snark::verify(&winning, &f.randomness, &one, &sample("winning"), win_vk).unwrap());
    assert!(snark::verify(&window, &f.randomness, &all, &sample("window"), wd_vk).unwrap());
    let mut other = f.randomness;
    other.0[0] ^= 1;
    assert!(!snark::verify(&winning, &other, &one, &sample("winning"), win_vk).unwrap());

    // Kiln's proofs verify; tampered statements and proofs do not.
    let van = vanilla::generate(&winning, &f.randomness, std::slice::from_ref(chosen), ReadLimits::default())
        .unwrap();
    let proof = snark::prove(&winning, &van.proofs, win_pk).unwrap().bytes;
    assert_eq!(proof.len(), 192);
    assert!(snark::verify(&winning, &f.randomness, &one, &proof, win_vk).unwrap());
    let van = vanilla::generate(&window, &f.randomness, &f.sectors, ReadLimits::default()).unwrap();
    let proof = snark::prove(&window, &van.proofs, wd_pk).unwrap().bytes;
    assert_eq!(proof.len(), 384);
    assert!(snark::verify(&window, &f.randomness, &all, &proof, wd_vk).unwrap());

    let mut flipped = proof.clone();
    flipped[200] ^= 0x04;
    assert!(!snark::verify(&window, &f.randomness, &all, &flipped, wd_vk).unwrap(), "flipped bit");
    assert!(!snark::verify(&window, &other, &all, &proof, wd_vk).unwrap(), "wrong randomness");
    let mut wrong_comm_r = all.clone();
    wrong_comm_r[2].1 = all[0].1;
    assert!(!snark::verify(&window, &f.randomness, &wrong_comm_r, &proof, wd_vk).unwrap(), "wrong comm_r");
    let mut wrong_set = all.clone();
    wrong_set[2].0 = 14;
    assert!(!snark::verify(&window, &f.randomness, &wrong_set, &proof, wd_vk).unwrap(), "wrong sector");
    assert!(!snark::verify(&window, &f.randomness, &all[..2], &proof, wd_vk).unwrap(), "fewer sectors");
    assert!(!snark::verify(&window, &f.randomness, &all, &proof, win_vk).unwrap(), "Winning key");
    let mut unmasked = f.randomness;
    unmasked.0[31] |= 0xc0;
    assert!(!snark::verify(&window, &unmasked, &all, &proof, wd_vk).unwrap(), "unmasked randomness");

    // A vanilla proof of the wrong sector cannot be proven as another.
    let mut forged: SectorProof = van.proofs[0].clone();
    forged.sector_id = 99;
    assert!(snark::prove(&window, &[forged.clone()], wd_pk)
        .map(|p| snark::verify(&window, &f.randomness, &[(99, forged.comm_r)], &p.bytes, wd_vk).unwrap())
        .map_or(true, |valid| !valid));
}

#[test]
fn unreadable_and_corrupt_sectors_are_listed_as_faults() {
    let f = fixture();
    let window = PostProof::window(SIZE);
    let mut sectors = f.sectors.clone();
    // 11: replica overwritten; 12: p_aux gone; 13 fine; 14: comm_r the chain
    // does not agree with.
    let replica = &sectors[0].replica;
    let len = std::fs::metadata(replica).unwrap().len() as usize;
    std::fs::write(replica, (0..len).map(|i| (i % 63) as u8).collect::<Vec<_>>()).unwrap();
    std::fs::remove_file(sectors[1].cache_dir.join("p_aux")).unwrap();
    let mut extra = sectors[2].clone();
    extra.sector_id = 14;
    sectors.push(extra);
    let van = vanilla::generate(&window, &f.randomness, &sectors, ReadLimits::default()).unwrap();
    let faulty: Vec<u64> = van.faults.iter().map(|x| x.sector_id).collect();
    assert_eq!(faulty, [11, 12]);
    assert!(van.faults[0].reason.contains("does not open"), "{}", van.faults[0].reason);
    assert!(van.faults[1].reason.contains("p_aux"), "{}", van.faults[1].reason);
    assert_eq!(van.proofs.iter().map(|p| p.sector_id).collect::<Vec<_>>(), [13, 14]);

    let mut liar = f.sectors[2].clone();
    liar.comm_r = f.sectors[0].comm_r;
    let van = vanilla::generate(&window, &f.randomness, &[liar], ReadLimits::default()).unwrap();
    assert!(van.faults[0].reason.contains("comm_r"), "{}", van.faults[0].reason);
}

/// A sector whose replica never answers (a FIFO with no writer: an open that
/// blocks, like a dead disk) is reported faulty after its own timeout; the
/// other sectors are proven, and the call returns.
#[test]
fn a_sector_that_never_answers_is_faulty_after_its_timeout() {
    let f = fixture();
    let window = PostProof::window(SIZE);
    let mut sectors = f.sectors.clone();
    let stuck = f._tmp.path().join("stuck-replica");
    let made = std::process::Command::new("mkfifo").arg(&stuck).status().unwrap();
    assert!(made.success());
    sectors[1].replica = stuck;
    let limits = ReadLimits { parallel: 2, timeout: std::time::Duration::from_millis(500) };
    let started = std::time::Instant::now();
    let van = vanilla::generate(&window, &f.randomness, &sectors, limits).unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(van.faults.len(), 1);
    assert_eq!(van.faults[0].sector_id, 12);
    assert!(van.faults[0].reason.contains("not read within"), "{}", van.faults[0].reason);
    assert_eq!(van.proofs.iter().map(|p| p.sector_id).collect::<Vec<_>>(), [11, 13]);
}

/// A process out of file descriptors cannot read any sector, but that says
/// nothing about the sectors: the PoSt fails as a whole (the node's fault, to
/// be tried again) instead of listing healthy sectors as faulty. Run in a
/// child process, whose descriptor limit is lowered and used up.
#[test]
fn reads_that_run_out_of_descriptors_fail_the_post_instead_of_faulting_sectors() {
    const CHILD: &str = "KILN_POST_EMFILE_CHILD";
    if std::env::var_os(CHILD).is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "reads_that_run_out_of_descriptors_fail_the_post_instead_of_faulting_sectors"])
            .args(["--nocapture", "--test-threads", "1"])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{text}");
        assert!(text.contains("child: descriptors exhausted"), "the child ran: {text}");
        return;
    }
    let f = fixture();
    let window = PostProof::window(SIZE);
    // Lower the soft limit, then hold every descriptor left.
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed by reference.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_cur.min(256);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    let mut held = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(file) => held.push(file),
            Err(e) if proofs::out_of_descriptors(&e) => break,
            Err(e) => panic!("{e}"),
        }
    }
    let e = vanilla::generate(&window, &f.randomness, &f.sectors, ReadLimits::default()).unwrap_err();
    assert!(e.is_out_of_descriptors(), "{e}");
    assert_eq!(e.disposition(), proofs::Disposition::Node);
    drop(held);
    let van = vanilla::generate(&window, &f.randomness, &f.sectors, ReadLimits::default()).unwrap();
    assert!(van.faults.is_empty(), "{:?}", van.faults);
    println!("child: descriptors exhausted, then every sector proven");
}
