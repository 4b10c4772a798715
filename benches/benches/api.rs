//! API latency while the embedded chain verifies a proof: a running daemon
//! (ephemeral port, no sectors in work) whose chain verifier is a double
//! that holds every verification until released, standing in for a slow
//! Groth16 check. `chain_head/idle` calls the API with no verification in
//! progress; `chain_head/while_verifying` and `sectors/while_verifying` call
//! it while one is held. Each call must answer in about the idle time: no
//! API route waits for a verification (see `sealing::ledger`).
//!
//! Run: `cargo bench -p kiln-benches --bench api`.

use criterion::{criterion_group, criterion_main, Criterion};
use proofs::snark::SealStatement;
use proofs::{Commitment, SectorSize};
use sealing::api::client::Client;
use sealing::chain::{Message, PreCommitSector, ProveCommitSector, SealVerifier};
use sealing::clock::ManualClock;
use sealing::config::Config;
use sealing::daemon::{Daemon, Parts};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Signals when a verification starts, then holds it until released.
struct HeldVerifier {
    entered: Mutex<Sender<()>>,
    release: Mutex<Receiver<()>>,
}

impl SealVerifier for HeldVerifier {
    fn verify(&self, _: &SealStatement, _: &[u8]) -> Result<bool, proofs::Error> {
        let _ = self.entered.lock().map(|tx| tx.send(()));
        if let Ok(rx) = self.release.lock() {
            let _ = rx.recv();
        }
        Ok(true)
    }
}

fn api_latency(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut config = Config::new(tmp.path().join("data"), SectorSize::KiB2, 1000);
    config.api.listen = "127.0.0.1:0".into();
    let clock = Arc::new(ManualClock::new(0));
    let (entered_tx, entered) = channel();
    let (release, release_rx) = channel();
    let mut parts = Parts::local(&config);
    parts.verifier =
        Arc::new(HeldVerifier { entered: Mutex::new(entered_tx), release: Mutex::new(release_rx) });
    parts.clock = clock.clone();
    let daemon = Daemon::start_with(&config, parts).expect("daemon");
    let api = Client::from_repo(&config.data_dir).expect("client");

    let mut g = c.benchmark_group("api");
    g.bench_function("chain_head/idle", |b| b.iter(|| api.chain_head().expect("head")));

    // A PreCommit lands, then a ProveCommit's execution is held in verification.
    let chain = daemon.ledger().chain();
    let block = config.chain.block_time_ms as i64;
    clock.set(10 * block);
    let precommit = Message::PreCommitSectors {
        sectors: vec![PreCommitSector {
            sector: 1,
            sector_size: SectorSize::KiB2,
            comm_r: Commitment([1; 32]),
            comm_d: Commitment([2; 32]),
            ticket_epoch: 9,
            expiration: 1_000_000,
        }],
    };
    chain.send(&precommit, 10 * block).expect("send");
    let after_seed = (11 + config.chain.seed_delay as i64 + 1) * block;
    clock.set(after_seed);
    let prove = Message::ProveCommitSectors {
        sectors: vec![ProveCommitSector { sector: 1, pieces: vec![], proof: vec![7; 192] }],
    };
    let prove = chain.send(&prove, after_seed).expect("send");
    clock.set(after_seed + block);
    let ledger = daemon.ledger().clone();
    let executor =
        std::thread::spawn(move || ledger.chain().receipt(&prove, ledger.now_ms()).expect("receipt"));
    entered.recv_timeout(Duration::from_secs(30)).expect("the verification started");

    g.bench_function("chain_head/while_verifying", |b| b.iter(|| api.chain_head().expect("head")));
    g.bench_function("sectors/while_verifying", |b| b.iter(|| api.sectors().expect("sectors")));
    g.finish();
    assert!(!executor.is_finished(), "the verification was held throughout");
    release.send(()).expect("release");
    executor.join().expect("executor").expect("executed");
    daemon.stop();
}

criterion_group!(benches, api_latency);
criterion_main!(benches);
