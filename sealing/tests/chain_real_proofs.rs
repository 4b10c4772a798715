//! The embedded chain's on-chain verifier on a real 2KiB seal: ticket and seed
//! drawn from the chain, a real Groth16 proof, a corrupted copy rejected with a
//! non-zero exit code, the real one accepted. One C2 run.

mod common;

use proofs::seal::{c1, pc1, pc2, SectorDir, SectorIdentity};
use proofs::snark::params::GrothParams;
use proofs::{ProverId, SectorSize};
use sealing::chain::{
    roles::*, EmbeddedChain, EmbeddedChainConfig, Message, PreCommitSector, ProofsVerifier,
    ProveCommitSector, RandomnessKind, EXIT_ILLEGAL_ARGUMENT, EXIT_OK,
};
use std::sync::atomic::AtomicBool;

const SECOND: i64 = 1_000;

#[test]
fn chain_verifies_a_real_seal_and_rejects_a_corrupted_proof() {
    let tmp = tempfile::tempdir().unwrap();
    let prover_id = ProverId::from_actor_id(1000);
    let config = EmbeddedChainConfig { miner_id: 1000, ..Default::default() };
    let verifier = Box::new(ProofsVerifier { param_dir: common::param_dir() });
    let genesis = sealing::clock::ManualClock::new(0);
    let chain = EmbeddedChain::open(&tmp.path().join("kiln.db"), config, verifier, &genesis).unwrap();

    // Seal with a ticket from the chain.
    let ticket_epoch = chain.head(5 * SECOND).unwrap() - 1;
    let ticket = chain.randomness(RandomnessKind::Ticket, ticket_epoch, 5 * SECOND).unwrap();
    let dir = SectorDir::new(tmp.path().join("sector"));
    let req = pc1::Pc1Request {
        identity: SectorIdentity { sector_size: SectorSize::KiB2, prover_id, sector_id: 1 },
        ticket,
        pieces: vec![],
        parent_cache_dir: tmp.path().join("parents"),
        labeling: Default::default(),
        expected_comm_p: Vec::new(),
    };
    let cancel = AtomicBool::new(false);
    let r1 = pc1::run(&dir, &req, &cancel, &mut |_| {}).unwrap();
    let r2 = pc2::run(&dir, &cancel, &mut |_| {}).unwrap();
    let precommit = Message::PreCommitSectors {
        sectors: vec![PreCommitSector {
            sector: 1,
            sector_size: SectorSize::KiB2,
            comm_r: r2.output.comm_r,
            comm_d: r1.output.comm_d,
            ticket_epoch,
            expiration: 1_000_000,
        }],
    };
    let id = chain.send(&precommit, 5 * SECOND).unwrap();
    assert_eq!(chain.receipt(&id, 6 * SECOND).unwrap().unwrap().exit_code, EXIT_OK);

    // Prove with the chain's seed once it is available.
    let on_chain = chain.precommit(1, 6 * SECOND).unwrap().unwrap();
    let now = (on_chain.seed_epoch as i64 + 1) * SECOND;
    let seed = chain.randomness(RandomnessKind::Seed, on_chain.seed_epoch, now).unwrap();
    let out = c1::run(&dir, &seed).unwrap();
    let params = GrothParams::porep(common::param_dir(), SectorSize::KiB2).load_proving().unwrap();
    let proof = proofs::snark::prove(&out, &params).unwrap();

    let mut corrupted = proof.clone();
    corrupted[7] ^= 0x20;
    let prove = |proof: Vec<u8>| Message::ProveCommitSectors {
        sectors: vec![ProveCommitSector { sector: 1, pieces: vec![], proof }],
    };
    let bad = chain.send(&prove(corrupted), now).unwrap();
    let receipt = chain.receipt(&bad, now + SECOND).unwrap().unwrap();
    assert_eq!(receipt.exit_code, EXIT_ILLEGAL_ARGUMENT, "{receipt:?}");
    assert!(!chain.precommit(1, now + SECOND).unwrap().unwrap().proven);

    let good = chain.send(&prove(proof), now + SECOND).unwrap();
    let receipt = chain.receipt(&good, now + 2 * SECOND).unwrap().unwrap();
    assert_eq!(receipt.exit_code, EXIT_OK, "{receipt:?}");
    assert!(chain.precommit(1, now + 2 * SECOND).unwrap().unwrap().proven);
}
