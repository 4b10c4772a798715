//! The driver on real proofs: a 2KiB data sector packed from a piece walks to
//! Proving on the embedded chain, whose real verifier first rejects a
//! ProveCommit whose proof was corrupted on its way (an injected fault): the
//! sector goes through CommitFailed, its proof is recomputed and lands. The
//! sealed replica then unseals to the piece. Two C2 runs.

mod common;

use proofs::pieces::{comm_d_from_pieces, PieceInfo};
use proofs::seal::unseal::unseal_range;
use proofs::{ProverId, SectorSize};
use sealing::chain::{
    ChainError, ChainMessages, ComposedChain, EmbeddedChain, EmbeddedChainConfig, Message, MessageId,
    PreCommitOnChain, ProofsVerifier, Receipt, SealingMethod, EXIT_ILLEGAL_ARGUMENT, EXIT_OK,
};
use sealing::clock::{Clock, SystemClock};
use sealing::config::{Limits, PackingConfig};
use sealing::ledger::Ledger;
use sealing::lifecycle::{RetryPolicy, SectorState};
use sealing::pipeline::engine::LocalEngine;
use sealing::pipeline::{packing, Pipeline, PipelineConfig};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The embedded chain's messages, with the first ProveCommit's proof corrupted in transit.
struct CorruptFirstProof {
    inner: Arc<EmbeddedChain>,
    corrupted: AtomicBool,
}

impl ChainMessages for CorruptFirstProof {
    fn send(&self, message: &Message, now: i64) -> Result<MessageId, ChainError> {
        match message {
            Message::ProveCommitSectors { sectors } if !self.corrupted.swap(true, Ordering::SeqCst) => {
                let mut sectors = sectors.clone();
                sectors[0].proof[10] ^= 0x01;
                self.inner.send(&Message::ProveCommitSectors { sectors }, now)
            }
            m => self.inner.send(m, now),
        }
    }
    fn receipt(&self, id: &MessageId, now: i64) -> Result<Option<Receipt>, ChainError> {
        self.inner.receipt(id, now)
    }
    fn precommit(&self, sector: u64, now: i64) -> Result<Option<PreCommitOnChain>, ChainError> {
        self.inner.precommit(sector, now)
    }
    fn find_sent(
        &self,
        method: SealingMethod,
        sector: u64,
        now: i64,
    ) -> Result<Option<MessageId>, ChainError> {
        self.inner.find_sent(method, sector, now)
    }
}

fn now_ms() -> i64 {
    SystemClock.now_ms()
}

#[test]
fn data_sector_reaches_proving_after_the_chain_rejects_a_corrupted_proof() {
    let tmp = tempfile::tempdir().unwrap();
    let params = common::param_dir();
    let prover_id = ProverId::from_actor_id(1000);
    let retry =
        RetryPolicy { max_attempts: 3, base_backoff: Duration::from_millis(100), ..Default::default() };
    let db = tmp.path().join("kiln.db");
    let store = sealing::store::SqliteStore::open(&db, retry).unwrap();
    // A window long enough for two C2 runs on a slow machine (an expiry would
    // reseal the sector instead of exercising the rejected-proof path).
    let chain_config = EmbeddedChainConfig {
        block_time_ms: 300,
        seed_delay: 2,
        prove_commit_window: 3_000,
        miner_id: 1000,
        ..Default::default()
    };
    let verifier = Box::new(ProofsVerifier { param_dir: params.clone() });
    let inner = Arc::new(EmbeddedChain::open(&db, chain_config, verifier, &SystemClock).unwrap());
    let corrupting = CorruptFirstProof { inner: inner.clone(), corrupted: AtomicBool::new(false) };
    let chain = ComposedChain { messages: Arc::new(corrupting), ..ComposedChain::of(inner) };
    let ledger = Ledger::new(Box::new(store), Box::new(chain), sealing::clock::system());
    let config = PipelineConfig {
        data_dir: tmp.path().join("data"),
        sector_size: SectorSize::KiB2,
        prover_id,
        limits: Limits::default(),
        packing: PackingConfig { wait_ms: 0, keep_unsealed: true, min_free_bytes: 0 },
        workers: Default::default(),
        history: Default::default(),
        proving: Default::default(),
        messages: Default::default(),
        retry,
        node_fault_probe: Duration::from_secs(60),
        tick: Duration::from_millis(20),
    };
    let parents = tmp.path().join("parents");
    let engine = LocalEngine {
        param_dir: params.clone(),
        parent_cache_dir: parents.clone(),
        labeling: Default::default(),
    };
    let local_check = Arc::new(ProofsVerifier { param_dir: params });
    let pipeline = Pipeline::new(ledger.clone(), Arc::new(engine), local_check, config.clone());

    let data = common::pattern(1500);
    let piece = tmp.path().join("piece.bin");
    std::fs::write(&piece, &data).unwrap();
    let added = packing::add_piece(&ledger, &config, &piece, now_ms()).unwrap();
    assert_eq!((added.sector, added.padded_size), (1, 2048));

    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let driver = std::thread::spawn(move || pipeline.run(&flag));
    let start = Instant::now();
    let state = || ledger.store().sector(1).unwrap().unwrap().lifecycle.state;
    while state() != SectorState::Proving {
        assert!(!state().is_terminal(), "sector 1 ended {}", state());
        assert!(start.elapsed() < Duration::from_secs(900), "stuck in {}", state());
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    driver.join().unwrap().unwrap();

    let names: Vec<&str> = ledger.store().events(1).unwrap().iter().map(|e| e.event.name()).collect();
    let rejected = names.iter().position(|n| *n == "CommitRejected").expect("the chain rejected a proof");
    assert_eq!(names[rejected + 1..].iter().filter(|n| **n == "ProofReady").count(), 1, "{names:?}");
    assert!(!names.contains(&"PreCommitExpired"), "{names:?}");
    let messages = ledger.chain().messages(now_ms()).unwrap();
    let codes = |precommit: bool| -> Vec<i64> {
        messages
            .iter()
            .filter(|m| matches!(m.message, Message::PreCommitSectors { .. }) == precommit)
            .map(|m| m.receipt.as_ref().unwrap().exit_code)
            .collect()
    };
    assert_eq!(codes(true), [EXIT_OK]);
    assert_eq!(codes(false), [EXIT_ILLEGAL_ARGUMENT, EXIT_OK]);
    assert!(ledger.chain().precommit(1, now_ms()).unwrap().unwrap().proven);

    // comm_d is the piece's, and the replica unseals to the piece.
    let row = ledger.store().sector(1).unwrap().unwrap();
    let expected =
        comm_d_from_pieces(&[PieceInfo { comm_p: added.comm_p, padded_size: 2048 }], 2048).unwrap();
    assert_eq!(row.comm_d, Some(expected));
    let out = tmp.path().join("unsealed.bin");
    let dir = config.sector_dir(1);
    unseal_range(&dir, 0, 1500, &out, &parents, &AtomicBool::new(false), &mut |_| {}).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data);
}
