//! The daemon's seams: a daemon built from `Parts` with a double of the store
//! and of the chain (no change to the daemon) seals a pledged sector to
//! Proving through them. The store double records every event the driver
//! applies; the chain double is the embedded chain with its sending role
//! replaced by one that records each message. Both keep their files outside
//! the data directory, which therefore never gets a `kiln.db`.

mod worker_common;

use proofs::seal::SectorDir;
use proofs::{Commitment, Randomness, SectorSize};
use sealing::chain::{
    ChainError, ChainMessages, ComposedChain, EmbeddedChain, EmbeddedChainConfig, Message, MessageId,
    PreCommitOnChain, Receipt, SealVerifier, SealingMethod,
};
use sealing::daemon::{Daemon, Parts};
use sealing::lifecycle::{Lifecycle, SectorEvent, SectorState};
use sealing::pipeline::engine::{EngineError, PreCommitOutput, PreCommitTask, ProofEngine};
use sealing::store::roles::*;
use sealing::store::{
    EventRow, NewPiece, PieceRow, PieceTarget, PostRun, SectorCounts, SectorRow, SqliteStore, StoreError,
    StoreObserver, TaskKind, TaskOutput, TaskRow, TaskState, TokenRow, WorkerCharging, WorkerRow,
};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wire::worker::Capabilities;
use worker_common::*;

const PROOF: &[u8] = b"a fake proof";

/// Seals at once.
struct InstantEngine;

impl ProofEngine for InstantEngine {
    fn pc1(
        &self,
        dir: &SectorDir,
        _: &PreCommitTask,
        _: &AtomicBool,
        _: &mut dyn FnMut(proofs::sdr::layers::Progress),
    ) -> Result<(), EngineError> {
        std::fs::create_dir_all(dir.root()).unwrap();
        Ok(())
    }
    fn pc2(
        &self,
        _: &SectorDir,
        task: &PreCommitTask,
        _: &AtomicBool,
        _: &mut dyn FnMut(proofs::sdr::layers::Progress),
    ) -> Result<PreCommitOutput, EngineError> {
        let n = task.identity.sector_id as u8;
        Ok(PreCommitOutput { comm_d: Commitment([n; 32]), comm_r: Commitment([n + 100; 32]) })
    }
    fn c1(&self, _: &SectorDir, seed: &Randomness) -> Result<Vec<u8>, EngineError> {
        Ok(seed.0.to_vec())
    }
    fn c2(&self, _: &[u8]) -> Result<Vec<u8>, EngineError> {
        Ok(PROOF.to_vec())
    }
    fn finalize(&self, _: &SectorDir, _: bool) -> Result<(), EngineError> {
        Ok(())
    }
}

struct Verifier;

impl SealVerifier for Verifier {
    fn verify(&self, _: &proofs::snark::SealStatement, proof: &[u8]) -> Result<bool, proofs::Error> {
        Ok(proof == PROOF)
    }
}

/// The SQLite store at a path of the test's choosing, recording each event
/// the driver applies.
struct RecordingStore {
    inner: SqliteStore,
    applied: Arc<Mutex<Vec<(u64, &'static str)>>>,
}

impl Store for RecordingStore {
    fn attach_observer(&mut self, observer: Arc<dyn StoreObserver>) {
        self.inner.attach_observer(observer)
    }
}

impl SectorStore for RecordingStore {
    fn create_sector(
        &mut self,
        sector_size: SectorSize,
        pledged: bool,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        self.inner.create_sector(sector_size, pledged, now_ms)
    }
    fn apply(&mut self, number: u64, event: &SectorEvent, now_ms: i64) -> Result<SectorRow, StoreError> {
        let row = self.inner.apply(number, event, now_ms)?;
        self.applied.lock().unwrap().push((number, event.name()));
        Ok(row)
    }
    fn removed_from(&self, number: u64) -> Result<Option<SectorState>, StoreError> {
        self.inner.removed_from(number)
    }
    fn failed_step(&self, number: u64) -> Result<Option<SectorState>, StoreError> {
        self.inner.failed_step(number)
    }
    fn sector(&self, number: u64) -> Result<Option<SectorRow>, StoreError> {
        self.inner.sector(number)
    }
    fn sectors(&self) -> Result<Vec<SectorRow>, StoreError> {
        self.inner.sectors()
    }
    fn sector_counts(&self) -> Result<SectorCounts, StoreError> {
        self.inner.sector_counts()
    }
    fn active_sectors(&self) -> Result<Vec<SectorRow>, StoreError> {
        self.inner.active_sectors()
    }
    fn events(&self, number: u64) -> Result<Vec<EventRow>, StoreError> {
        self.inner.events(number)
    }
    fn add_piece(
        &mut self,
        target: PieceTarget,
        piece: &NewPiece<'_>,
        now_ms: i64,
    ) -> Result<(u64, PieceRow), StoreError> {
        self.inner.add_piece(target, piece, now_ms)
    }
    fn pieces(&self, number: u64) -> Result<Vec<PieceRow>, StoreError> {
        self.inner.pieces(number)
    }
    fn check_replay(&self, number: u64) -> Result<Lifecycle, StoreError> {
        self.inner.check_replay(number)
    }
}

impl TaskStore for RecordingStore {
    fn cancel_sector_tasks(&mut self, sector: u64, why: &str, now_ms: i64) -> Result<Vec<u64>, StoreError> {
        self.inner.cancel_sector_tasks(sector, why, now_ms)
    }
    fn task_handed_over(&mut self, id: u64, lease_until_ms: i64, now_ms: i64) -> Result<bool, StoreError> {
        self.inner.task_handed_over(id, lease_until_ms, now_ms)
    }
    fn lapse_cancelling(&mut self, now_ms: i64) -> Result<Vec<u64>, StoreError> {
        self.inner.lapse_cancelling(now_ms)
    }
    fn start_task(
        &mut self,
        sector: Option<u64>,
        kind: TaskKind,
        worker: Option<&str>,
        lease_until_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        self.inner.start_task(sector, kind, worker, lease_until_ms, now_ms)
    }
    fn set_task_lease(&mut self, id: u64, lease_until_ms: i64) -> Result<(), StoreError> {
        self.inner.set_task_lease(id, lease_until_ms)
    }
    fn finish_task(
        &mut self,
        id: u64,
        state: TaskState,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.inner.finish_task(id, state, error, now_ms)
    }
    fn report_task(
        &mut self,
        id: u64,
        worker: &str,
        outcome: Result<&TaskOutput, &str>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.inner.report_task(id, worker, outcome, now_ms)
    }
    fn task(&self, id: u64) -> Result<Option<TaskRow>, StoreError> {
        self.inner.task(id)
    }
    fn task_result(&self, id: u64) -> Result<Option<TaskOutput>, StoreError> {
        self.inner.task_result(id)
    }
    fn open_tasks(&self) -> Result<Vec<TaskRow>, StoreError> {
        self.inner.open_tasks()
    }
    fn tasks(&self, sector: Option<u64>) -> Result<Vec<TaskRow>, StoreError> {
        self.inner.tasks(sector)
    }
    fn tasks_after(&self, sector: Option<u64>, after: u64, limit: usize) -> Result<Vec<TaskRow>, StoreError> {
        self.inner.tasks_after(sector, after, limit)
    }
    fn prune_tasks(&mut self, before_ms: i64) -> Result<usize, StoreError> {
        self.inner.prune_tasks(before_ms)
    }
    fn recover_tasks(&mut self, lease_until_ms: i64, now_ms: i64) -> Result<(), StoreError> {
        self.inner.recover_tasks(lease_until_ms, now_ms)
    }
}

impl WorkerStore for RecordingStore {
    fn create_worker_token(
        &mut self,
        name: &str,
        token_hash: &str,
        dispatch_key: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.inner.create_worker_token(name, token_hash, dispatch_key, now_ms)
    }
    fn revoke_worker_token(&mut self, name: &str, now_ms: i64) -> Result<Vec<u64>, StoreError> {
        self.inner.revoke_worker_token(name, now_ms)
    }
    fn worker_tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        self.inner.worker_tokens()
    }
    fn token_owner(&self, token_hash: &str) -> Result<Option<TokenRow>, StoreError> {
        self.inner.token_owner(token_hash)
    }
    fn dispatch_key(&self, name: &str) -> Result<String, StoreError> {
        self.inner.dispatch_key(name)
    }
    fn register_worker(
        &mut self,
        name: &str,
        instance: &str,
        url: &str,
        capabilities: &Capabilities,
        now_ms: i64,
    ) -> Result<Vec<u64>, StoreError> {
        self.inner.register_worker(name, instance, url, capabilities, now_ms)
    }
    fn worker_heartbeat(
        &mut self,
        name: &str,
        instance: &str,
        running: &[u64],
        lease_until_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<u64>, StoreError> {
        self.inner.worker_heartbeat(name, instance, running, lease_until_ms, now_ms)
    }
    fn workers(&self) -> Result<Vec<WorkerRow>, StoreError> {
        self.inner.workers()
    }
    fn reset_worker(&mut self, name: &str) -> Result<(), StoreError> {
        self.inner.reset_worker(name)
    }
    fn mark_worker_unhealthy(&mut self, name: &str, reason: &str) -> Result<(), StoreError> {
        self.inner.mark_worker_unhealthy(name, reason)
    }
    fn set_worker_charging(&mut self, charging: WorkerCharging) {
        self.inner.set_worker_charging(charging)
    }
    fn charge_worker(&mut self, name: &str, why: &str, now_ms: i64) -> Result<Option<i64>, StoreError> {
        self.inner.charge_worker(name, why, now_ms)
    }
    fn hold_off_worker(&mut self, name: &str, until_ms: i64, why: &str) -> Result<(), StoreError> {
        self.inner.hold_off_worker(name, until_ms, why)
    }
    fn worker_delivered(&mut self, name: &str) -> Result<(), StoreError> {
        self.inner.worker_delivered(name)
    }
}

impl ProvingStore for RecordingStore {
    fn record_post_run(&mut self, run: &PostRun) -> Result<u64, StoreError> {
        self.inner.record_post_run(run)
    }
    fn runs_awaiting_receipt(&self) -> Result<Vec<(u64, MessageId)>, StoreError> {
        self.inner.runs_awaiting_receipt()
    }
    fn set_run_receipt(&mut self, id: u64, exit_code: i64, error: Option<&str>) -> Result<(), StoreError> {
        self.inner.set_run_receipt(id, exit_code, error)
    }
    fn post_runs(&self, limit: usize) -> Result<Vec<PostRun>, StoreError> {
        self.inner.post_runs(limit)
    }
}

/// The embedded chain's sending role, recording each message's method.
struct RecordingMessages {
    inner: Arc<EmbeddedChain>,
    sent: Arc<Mutex<Vec<&'static str>>>,
}

impl ChainMessages for RecordingMessages {
    fn send(&self, message: &Message, now_ms: i64) -> Result<MessageId, ChainError> {
        let id = self.inner.send(message, now_ms)?;
        self.sent.lock().unwrap().push(message.method());
        Ok(id)
    }
    fn receipt(&self, id: &MessageId, now_ms: i64) -> Result<Option<Receipt>, ChainError> {
        self.inner.receipt(id, now_ms)
    }
    fn precommit(&self, sector: u64, now_ms: i64) -> Result<Option<PreCommitOnChain>, ChainError> {
        self.inner.precommit(sector, now_ms)
    }
    fn find_sent(
        &self,
        method: SealingMethod,
        sector: u64,
        now_ms: i64,
    ) -> Result<Option<MessageId>, ChainError> {
        self.inner.find_sent(method, sector, now_ms)
    }
}

#[test]
fn a_daemon_seals_through_a_store_and_a_chain_given_in_its_parts() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = config(tmp.path(), false, 1);
    config.proving.enabled = false;
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let applied = Arc::new(Mutex::new(Vec::new()));
    let store = RecordingStore {
        inner: SqliteStore::open_as(&elsewhere.join("store.db"), config.retry.policy(), "seams").unwrap(),
        applied: applied.clone(),
    };
    let clock = sealing::clock::system();
    let embedded = Arc::new(
        EmbeddedChain::open(
            &elsewhere.join("chain.db"),
            EmbeddedChainConfig::from_config(&config),
            Box::new(Verifier),
            clock.as_ref(),
        )
        .unwrap(),
    );
    let sent = Arc::new(Mutex::new(Vec::new()));
    let messages = RecordingMessages { inner: embedded.clone(), sent: sent.clone() };
    let chain = ComposedChain { messages: Arc::new(messages), ..ComposedChain::of(embedded) };
    let parts = Parts {
        engine: Arc::new(InstantEngine),
        verifier: Arc::new(Verifier),
        clock,
        store: Some(Box::new(store)),
        chain: Some(Box::new(chain)),
    };
    let daemon = Daemon::start_with(&config, parts).unwrap();
    let pledged = client(&config).pledge(1).unwrap();
    let n = pledged.sectors[0];
    wait_proving(&config, &[n], Duration::from_secs(120));

    // Every event of the sector's log went through the store double, in order.
    let status = client(&config).sector(n).unwrap();
    let logged: Vec<(u64, String)> = status.events.iter().map(|e| (n, e.name().to_string())).collect();
    let recorded: Vec<(u64, String)> = applied
        .lock()
        .unwrap()
        .iter()
        .filter(|(s, _)| *s == n)
        .map(|(s, name)| (*s, name.to_string()))
        .collect();
    assert_eq!(recorded, logged);
    assert!(recorded.iter().any(|(_, e)| e == "CommitLanded"), "{recorded:?}");
    // Both messages went through the chain double, and the API lists them from its log.
    assert_eq!(*sent.lock().unwrap(), ["PreCommitSectors", "ProveCommitSectors"]);
    let listed: Vec<&str> =
        client(&config).chain_messages().unwrap().iter().map(|m| m.message.method()).collect::<Vec<_>>();
    assert_eq!(listed, ["PreCommitSectors", "ProveCommitSectors"]);
    // Nothing was kept in the data directory's database: it was never made.
    assert!(!config.data_dir.join("kiln.db").exists());
    daemon.stop();
}
