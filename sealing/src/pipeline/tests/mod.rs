//! The driver against a fast double of the proof engine, with injected faults,
//! and the real embedded chain (with a fake on-chain verifier). Time is a
//! manual clock: a test advances it when the driver waits, and never sleeps.

use super::engine::{BatchMember, EngineError, PreCommitOutput, PreCommitTask, ProofEngine};
use super::packing::{add_piece, pledge, remove_orphan_copies, PackingError};
use super::*;
use crate::chain::{
    EmbeddedChain, EmbeddedChainConfig, Message, RandomnessKind, SentMessage, EXIT_ILLEGAL_ARGUMENT, EXIT_OK,
};
use crate::clock::{Clock, ManualClock};
use crate::config::{Limits, PackingConfig};
use crate::ledger::Ledger;
use crate::lifecycle::SectorState;
use crate::store::{SqliteStore, TaskKind, TaskState};
use proofs::seal::SectorDir;
use proofs::snark::SealStatement;
use proofs::{Commitment, Randomness};
use std::sync::atomic::AtomicU32;

const GOOD: &[u8] = b"good proof";

/// Seals instantly; `fail_pre_commits` PC1 runs fail first. Records the sectors of
/// every PC1 task (a batch, or one sector). C2 reads `params` (when set)
/// as a parameter file: anything but [`GOOD_PARAMS`] is a corrupt file. C1 fails
/// once per `c1_failures` entry, with that error, first.
#[derive(Default)]
struct FakeEngine {
    fail_pre_commits: AtomicU32,
    commits: AtomicU32,
    batches: Mutex<Vec<Vec<u64>>>,
    params: Mutex<Option<PathBuf>>,
    c1_failures: Mutex<Vec<proofs::Error>>,
    /// C1s entered and not yet returned, and the most at once.
    c1_in: AtomicU32,
    c1_peak: AtomicU32,
    /// Held by a test to keep C1s from returning.
    c1_gate: Arc<Mutex<()>>,
}

const GOOD_PARAMS: &[u8] = b"good parameters";

impl ProofEngine for FakeEngine {
    fn pc1_batch(
        &self,
        members: &[BatchMember],
        _: &AtomicBool,
        progress: &mut dyn FnMut(proofs::sdr::layers::Progress),
        done: &mut dyn FnMut(usize, Result<(), EngineError>),
    ) {
        self.batches.lock().unwrap().push(members.iter().map(|m| m.task.identity.sector_id).collect());
        for (i, m) in members.iter().enumerate() {
            done(i, self.pc1(&m.dir, &m.task, &m.cancel, progress));
        }
    }

    fn pc1(
        &self,
        dir: &SectorDir,
        task: &PreCommitTask,
        _: &AtomicBool,
        _: &mut dyn FnMut(proofs::sdr::layers::Progress),
    ) -> Result<(), EngineError> {
        if self.fail_pre_commits.load(Ordering::SeqCst) > 0 {
            self.fail_pre_commits.fetch_sub(1, Ordering::SeqCst);
            return Err(EngineError::failed("injected PC failure", Disposition::Temporary));
        }
        for piece in &task.pieces {
            if !piece.is_file() {
                return Err(EngineError::failed(
                    format!("piece {} is missing", piece.display()),
                    Disposition::Permanent,
                ));
            }
        }
        std::fs::create_dir_all(dir.root()).unwrap();
        Ok(())
    }

    fn pc2(
        &self,
        dir: &SectorDir,
        task: &PreCommitTask,
        _: &AtomicBool,
        _: &mut dyn FnMut(proofs::sdr::layers::Progress),
    ) -> Result<PreCommitOutput, EngineError> {
        std::fs::write(dir.root().join("replica"), b"r").unwrap();
        let n = task.identity.sector_id as u8;
        Ok(PreCommitOutput { comm_d: Commitment([n; 32]), comm_r: Commitment([n + 100; 32]) })
    }
    fn c1(&self, _: &SectorDir, seed: &Randomness) -> Result<Vec<u8>, EngineError> {
        if let Some(e) = self.c1_failures.lock().unwrap().pop() {
            return Err(e.into());
        }
        let now_in = self.c1_in.fetch_add(1, Ordering::SeqCst) + 1;
        self.c1_peak.fetch_max(now_in, Ordering::SeqCst);
        drop(self.c1_gate.lock().unwrap_or_else(|e| e.into_inner()));
        self.c1_in.fetch_sub(1, Ordering::SeqCst);
        Ok(seed.0.to_vec())
    }
    fn c2(&self, _: &[u8]) -> Result<Vec<u8>, EngineError> {
        if let Some(path) = self.params.lock().unwrap().clone() {
            let bytes = std::fs::read(&path).map_err(proofs::Error::io("read", &path))?;
            if bytes != GOOD_PARAMS {
                return Err(proofs::Error::ParamsDigest {
                    path,
                    expected: hex::encode(GOOD_PARAMS),
                    found: hex::encode(&bytes),
                }
                .into());
            }
        }
        self.commits.fetch_add(1, Ordering::SeqCst);
        Ok(GOOD.to_vec())
    }
    fn finalize(&self, _: &SectorDir, _: bool) -> Result<(), EngineError> {
        Ok(())
    }
}

/// Accepts [`GOOD`]; the chain's copy can refuse its first `reject_first` proofs.
struct FakeVerifier {
    reject_first: Arc<AtomicU32>,
}

impl SealVerifier for FakeVerifier {
    fn verify(&self, _: &SealStatement, proof: &[u8]) -> Result<bool, proofs::Error> {
        if self.reject_first.load(Ordering::SeqCst) > 0 {
            self.reject_first.fetch_sub(1, Ordering::SeqCst);
            return Ok(false);
        }
        Ok(proof == GOOD)
    }
}

struct Rig {
    // Serialises tests that arm fail points (they are process-wide) and clears them after.
    _failpoints: fail::FailScenario<'static>,
    _tmp: tempfile::TempDir,
    ledger: SharedLedger,
    clock: Arc<ManualClock>,
    pipeline: Pipeline,
    engine: Arc<FakeEngine>,
    config: PipelineConfig,
}

/// The manual clock's start: any fixed time.
const START_MS: i64 = 1_700_000_000_000;
/// How far the clock moves when the driver waits for time to pass.
const STEP_MS: i64 = 5;

fn rig(max_attempts: u32, chain_rejects: u32, packing_wait_ms: u64) -> Rig {
    rig_with(max_attempts, chain_rejects, packing_wait_ms, |_| {})
}

fn rig_with(
    max_attempts: u32,
    chain_rejects: u32,
    packing_wait_ms: u64,
    tweak: impl FnOnce(&mut PipelineConfig),
) -> Rig {
    let failpoints = fail::FailScenario::setup();
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(START_MS));
    let retry = RetryPolicy {
        max_attempts,
        base_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
    };
    let db = tmp.path().join("kiln.db");
    let store = SqliteStore::open(&db, retry).unwrap();
    let chain_config = EmbeddedChainConfig { block_time_ms: 20, seed_delay: 1, ..Default::default() };
    let verifier = Box::new(FakeVerifier { reject_first: Arc::new(AtomicU32::new(chain_rejects)) });
    let chain = EmbeddedChain::open(&db, chain_config, verifier, clock.as_ref()).unwrap();
    let ledger = Ledger::new(Box::new(store), Box::new(chain), clock.clone());
    let config = PipelineConfig {
        data_dir: tmp.path().to_path_buf(),
        sector_size: SectorSize::KiB2,
        prover_id: ProverId::from_actor_id(1000),
        limits: Limits::default(),
        packing: PackingConfig { wait_ms: packing_wait_ms, keep_unsealed: true, min_free_bytes: 0 },
        retry,
        node_fault_probe: Duration::from_millis(1_000),
        tick: Duration::from_millis(2),
        workers: crate::config::WorkersConfig::default(),
        history: crate::config::HistoryConfig::default(),
        proving: Default::default(),
        messages: Default::default(),
    };
    let mut config = config;
    tweak(&mut config);
    let engine = Arc::new(FakeEngine::default());
    let local = Arc::new(FakeVerifier { reject_first: Arc::new(AtomicU32::new(0)) });
    let pipeline = Pipeline::new(ledger.clone(), engine.clone(), local, config.clone());
    Rig { _failpoints: failpoints, _tmp: tmp, ledger, clock, pipeline, engine, config }
}

impl Rig {
    fn state(&self, n: u64) -> SectorState {
        self.ledger.store().sector(n).unwrap().unwrap().lifecycle.state
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// One driver pass; then, if a task runs, waits for it to finish (work, not
    /// time), else moves the clock on a step.
    fn turn(&mut self) {
        self.pipeline.tick();
        if self.pipeline.busy() {
            self.pipeline.await_task(Duration::from_secs(5));
        } else {
            self.clock.advance(STEP_MS);
        }
    }

    /// Turns until sector `n` is in `state` (panics after 20,000 turns).
    fn drive_to(&mut self, n: u64, state: SectorState) {
        for _ in 0..20_000 {
            if self.state(n) == state {
                return;
            }
            self.turn();
        }
        panic!("sector {n} stuck in {}", self.state(n));
    }

    /// Turns until the manual clock has moved `ms` on.
    fn pass(&mut self, ms: i64) {
        let until = self.now() + ms;
        while self.now() < until {
            self.turn();
        }
    }

    fn messages(&self) -> Vec<SentMessage> {
        self.ledger.chain().messages(self.now()).unwrap()
    }

    fn event_names(&self, n: u64) -> Vec<&'static str> {
        self.ledger.store().events(n).unwrap().iter().map(|e| e.event.name()).collect()
    }
}

/// The PreCommit the driver sends for `row` alone.
fn precommit_message(row: &SectorRow) -> Message {
    let ticket_epoch = row.ticket_epoch.unwrap();
    Message::PreCommitSectors {
        sectors: vec![crate::chain::PreCommitSector {
            sector: row.number,
            sector_size: row.sector_size,
            comm_r: row.comm_r.unwrap(),
            comm_d: row.comm_d.unwrap(),
            ticket_epoch,
            expiration: ticket_epoch + crate::chain::miner_actor::policy::sector_lifetime(540).0,
        }],
    }
}

fn count(messages: &[SentMessage], precommit: bool) -> usize {
    messages.iter().filter(|m| matches!(m.message, Message::PreCommitSectors { .. }) == precommit).count()
}

#[test]
fn pledged_sectors_reach_proving_with_one_message_each() {
    let mut r = rig(3, 0, 60_000);
    let sectors = pledge(&r.ledger, &r.config, 2, r.now()).unwrap();
    assert_eq!(sectors, [1, 2]);
    for n in sectors {
        r.drive_to(n, SectorState::Proving);
    }
    assert_eq!(
        r.event_names(1),
        [
            "StartSealing",
            "TicketDrawn",
            "PreCommitted1",
            "PreCommitted2",
            "PreCommitSent",
            "PreCommitLanded",
            "SeedReady",
            "ProofReady",
            "CommitSent",
            "CommitLanded",
            "Finalized"
        ]
    );
    let messages = r.messages();
    assert_eq!((count(&messages, true), count(&messages, false)), (2, 2));
    assert!(messages.iter().all(|m| m.receipt.as_ref().unwrap().exit_code == EXIT_OK));
    for n in [1, 2] {
        r.ledger.store().check_replay(n).unwrap();
        // Landed: the proof file is gone (it was kept forever).
        assert!(!r.config.proof_path(n).exists(), "sector {n}'s proof file is left");
    }
}

/// A sector whose PreCommit the chain holds although this store recorded a
/// message the chain refused (a crash between a message's effect and its
/// receipt left the effect, and the resend was refused as "already
/// pre-committed"): the driver adopts what the chain holds and goes on. It
/// failed the sector while its PreCommit was live.
#[test]
fn a_precommit_the_chain_holds_is_adopted_after_a_refused_resend() {
    let mut r = rig(3, 0, 60_000);
    let n = pledge(&r.ledger, &r.config, 1, r.now()).unwrap()[0];
    let (comm_d, comm_r) = (Commitment([n as u8; 32]), Commitment([n as u8 + 100; 32]));
    let now = r.now();
    let epoch = r.ledger.chain().head(now).unwrap();
    let ticket = r.ledger.chain().randomness(RandomnessKind::Ticket, epoch, now).unwrap();
    {
        let mut store = r.ledger.store();
        store.apply(n, &SectorEvent::StartSealing, now).unwrap();
        store.apply(n, &SectorEvent::TicketDrawn { ticket, epoch }, now).unwrap();
        store.apply(n, &SectorEvent::PreCommitted2 { comm_d, comm_r }, now).unwrap();
    }
    std::fs::create_dir_all(r.config.sector_dir(n).root()).unwrap();
    let row = r.ledger.store().sector(n).unwrap().unwrap();
    let message = precommit_message(&row);
    let chain = r.ledger.chain();
    let landed = chain.send(&message, now).unwrap();
    let refused = chain.send(&message, now + 25).unwrap();
    r.clock.advance(100);
    let now = r.now();
    assert_eq!(chain.receipt(&landed, now).unwrap().unwrap().exit_code, EXIT_OK);
    let refusal = chain.receipt(&refused, now).unwrap().unwrap();
    assert_eq!(refusal.exit_code, crate::chain::EXIT_FORBIDDEN, "{refusal:?}");
    r.ledger.store().apply(n, &SectorEvent::PreCommitSent { message: refused }, now).unwrap();

    r.drive_to(n, SectorState::Proving);
    let events = r.event_names(n);
    assert!(!events.contains(&"StepFailed"), "{events:?}");
    assert_eq!(count(&r.messages(), true), 2, "no third PreCommit");
}

/// A proven sector the store still has in CommitWait with a refused
/// ProveCommit recorded is adopted as landed, not rejected.
#[test]
fn a_proven_sector_is_adopted_after_a_refused_resend() {
    let mut r = rig(3, 0, 60_000);
    let n = pledge(&r.ledger, &r.config, 1, r.now()).unwrap()[0];
    r.drive_to(n, SectorState::Proving);
    // Put the sector back as if its CommitLanded was never recorded, with a
    // duplicate ProveCommit (refused: already proven) as its message.
    let now = r.now();
    let dup = Message::ProveCommitSectors {
        sectors: vec![crate::chain::ProveCommitSector { sector: n, pieces: vec![], proof: GOOD.to_vec() }],
    };
    let dup = r.ledger.chain().send(&dup, now).unwrap();
    r.clock.advance(100);
    let code = r.ledger.chain().receipt(&dup, r.now()).unwrap().unwrap().exit_code;
    assert_eq!(code, crate::chain::EXIT_FORBIDDEN);
    {
        rusqlite::Connection::open(r.config.database_path())
            .unwrap()
            .execute_batch(&format!(
                "UPDATE sectors SET state = 'CommitWait', commit_message = '{dup}' WHERE number = {n};
                 DELETE FROM events WHERE number = {n} AND event LIKE '%CommitLanded%';"
            ))
            .unwrap();
    }
    assert_eq!(r.state(n), SectorState::CommitWait);
    r.drive_to(n, SectorState::Proving);
    let events = r.event_names(n);
    assert!(!events.contains(&"CommitRejected"), "{events:?}");
    assert_eq!(events.iter().filter(|e| **e == "CommitLanded").count(), 1, "{events:?}");
}

/// With `pc1_batch = 3` and one PC1 task at a time, five pledged sectors are
/// pre-committed as a batch of three then a batch of two; each sector has its own
/// task record, and one member's failure is that sector's alone.
#[test]
fn sectors_ready_together_are_pre_committed_as_batches() {
    let mut r = rig_with(3, 0, 60_000, |c| c.limits.pc1_batch = 3);
    r.engine.fail_pre_commits.store(1, Ordering::SeqCst);
    let sectors = pledge(&r.ledger, &r.config, 5, r.now()).unwrap();
    for &n in &sectors {
        r.drive_to(n, SectorState::Proving);
    }
    let batches = r.engine.batches.lock().unwrap().clone();
    assert_eq!(batches[..2], [vec![1, 2, 3], vec![4, 5]], "{batches:?}");
    // Sector 1 failed in the first batch and was retried on its own.
    assert_eq!(batches[2..], [vec![1]], "{batches:?}");
    let events = r.event_names(1);
    assert_eq!(events.iter().filter(|e| **e == "StepFailed").count(), 1, "{events:?}");
    for &n in &sectors {
        let tasks = r.ledger.store().tasks(Some(n)).unwrap();
        let pre: Vec<TaskState> = tasks.iter().filter(|t| t.kind == TaskKind::Pc1).map(|t| t.state).collect();
        let want = if n == 1 { vec![TaskState::Failed, TaskState::Done] } else { vec![TaskState::Done] };
        assert_eq!(pre, want, "sector {n}");
        assert!(r.event_names(n).iter().all(|e| *e != "StepFailed") || n == 1);
    }
    let messages = r.messages();
    assert_eq!((count(&messages, true), count(&messages, false)), (5, 5));
}

/// The default (`pc1_batch = 1`) pre-commits each sector on its own.
#[test]
fn without_batching_each_sector_is_its_own_task() {
    let mut r = rig(3, 0, 60_000);
    let sectors = pledge(&r.ledger, &r.config, 3, r.now()).unwrap();
    for &n in &sectors {
        r.drive_to(n, SectorState::Proving);
    }
    assert_eq!(*r.engine.batches.lock().unwrap(), [vec![1], vec![2], vec![3]]);
}

#[test]
fn data_sectors_fill_with_lotus_placement_and_seal_when_full() {
    let mut r = rig(3, 0, 60_000);
    let piece = r.config.data_dir.join("piece.bin");
    std::fs::write(&piece, vec![7u8; 1000]).unwrap();
    let a = add_piece(&r.ledger, &r.config, &piece, r.now()).unwrap();
    assert_eq!((a.sector, a.index, a.padded_size), (1, 0, 1024));
    // Room left and the wait not over: still packing.
    for _ in 0..5 {
        r.pipeline.tick();
    }
    assert_eq!(r.state(1), SectorState::Packing);
    let b = add_piece(&r.ledger, &r.config, &piece, r.now()).unwrap();
    assert_eq!((b.sector, b.index), (1, 1));
    // Full now: sealing starts without waiting; the next piece opens sector 2.
    r.drive_to(1, SectorState::Proving);
    // Finalized: the daemon's copies of its pieces are gone.
    for p in r.ledger.store().pieces(1).unwrap() {
        assert!(!p.path.exists(), "{} kept after finalize", p.path.display());
    }
    let c = add_piece(&r.ledger, &r.config, &piece, r.now()).unwrap();
    assert_eq!((c.sector, c.index), (2, 0));
    assert_eq!(a.comm_p, c.comm_p);
    assert_eq!(r.ledger.store().pieces(1).unwrap().len(), 2);
}

#[test]
fn a_partly_filled_sector_seals_after_the_wait() {
    let mut r = rig(3, 0, 50);
    let piece = r.config.data_dir.join("small.bin");
    std::fs::write(&piece, b"hello").unwrap();
    let a = add_piece(&r.ledger, &r.config, &piece, r.now()).unwrap();
    assert_eq!(a.padded_size, 128);
    r.drive_to(a.sector, SectorState::Proving);
}

#[test]
fn bad_pieces_are_refused_and_record_nothing() {
    let r = rig(3, 0, 60_000);
    let big = r.config.data_dir.join("big.bin");
    std::fs::write(&big, vec![1u8; 2033]).unwrap();
    let e = add_piece(&r.ledger, &r.config, &big, r.now()).unwrap_err();
    assert!(matches!(e, PackingError::TooLarge { len: 2033, capacity: 2032, .. }), "{e}");
    assert!(e.to_string().contains("big.bin") && e.to_string().contains("2KiB"), "{e}");
    let empty = r.config.data_dir.join("empty.bin");
    std::fs::write(&empty, b"").unwrap();
    assert!(add_piece(&r.ledger, &r.config, &empty, r.now()).unwrap_err().to_string().contains("empty"));
    let missing = r.config.data_dir.join("missing.bin");
    assert!(add_piece(&r.ledger, &r.config, &missing, r.now())
        .unwrap_err()
        .to_string()
        .contains("missing.bin"));
    // A symlink and a FIFO are refused without being followed or waited on.
    let target = r.config.data_dir.join("target.bin");
    std::fs::write(&target, vec![1u8; 100]).unwrap();
    let link = r.config.data_dir.join("link.bin");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let fifo = r.config.data_dir.join("fifo.bin");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    for special in [&link, &fifo] {
        let e = add_piece(&r.ledger, &r.config, special, r.now()).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }
    // Too little room left on the disk: refused before a byte is copied.
    let mut config = r.config.clone();
    config.packing.min_free_bytes = u64::MAX / 2;
    let e = add_piece(&r.ledger, &config, &target, r.now()).unwrap_err();
    assert!(matches!(e, PackingError::NoSpace { piece: 100, .. }), "{e}");
    assert!(
        e.to_string().contains("not enough free space") && e.to_string().contains("min_free_bytes"),
        "{e}"
    );
    assert!(r.ledger.store().sectors().unwrap().is_empty());
    let copies = std::fs::read_dir(r.config.pieces_dir()).map(|d| d.count()).unwrap_or(0);
    assert_eq!(copies, 0);
}

#[test]
fn failed_pre_commits_retry_with_backoff_then_fail_at_the_cap() {
    let mut r = rig(3, 0, 60_000);
    r.engine.fail_pre_commits.store(2, Ordering::SeqCst);
    pledge(&r.ledger, &r.config, 1, r.now()).unwrap();
    r.drive_to(1, SectorState::Proving);
    let events = r.event_names(1);
    assert_eq!(events.iter().filter(|e| **e == "StepFailed").count(), 2);
    assert_eq!(events.iter().filter(|e| **e == "Retry").count(), 2);
    assert_eq!(r.ledger.store().check_replay(1).unwrap().attempts, 0);
    drop(r); // one rig at a time: a rig holds the fail-point scenario lock

    let mut r = rig(3, 0, 60_000);
    r.engine.fail_pre_commits.store(10, Ordering::SeqCst);
    pledge(&r.ledger, &r.config, 1, r.now()).unwrap();
    r.drive_to(1, SectorState::Failed);
    let row = r.ledger.store().sector(1).unwrap().unwrap();
    assert_eq!(row.lifecycle.attempts, 3);
    assert_eq!(row.last_error.as_deref(), Some("injected PC failure"));
    assert!(r.messages().is_empty());
}

#[test]
fn a_proof_the_chain_rejects_is_recomputed_and_lands() {
    let mut r = rig(3, 1, 60_000);
    pledge(&r.ledger, &r.config, 1, r.now()).unwrap();
    r.drive_to(1, SectorState::Proving);
    assert_eq!(r.engine.commits.load(Ordering::SeqCst), 2);
    let events = r.event_names(1);
    assert!(events.contains(&"CommitRejected") && events.contains(&"Retry"), "{events:?}");
    let proves: Vec<_> = r
        .messages()
        .into_iter()
        .filter(|m| matches!(m.message, Message::ProveCommitSectors { .. }))
        .collect();
    let codes: Vec<i64> = proves.iter().map(|m| m.receipt.as_ref().unwrap().exit_code).collect();
    assert_eq!(codes, [EXIT_ILLEGAL_ARGUMENT, EXIT_OK]);
}

#[test]
fn a_message_sent_before_a_crash_is_adopted_not_resent() {
    let mut r = rig(3, 0, 60_000);
    pledge(&r.ledger, &r.config, 1, r.now()).unwrap();
    // What a daemon does up to sending the PreCommit, then "crashes" before
    // recording the send: the message is on chain, the store does not know.
    {
        let (chain, mut store) = (r.ledger.chain(), r.ledger.store());
        let now = r.now();
        let epoch = chain.head(now).unwrap();
        let ticket = chain.randomness(RandomnessKind::Ticket, epoch, now).unwrap();
        store.apply(1, &SectorEvent::StartSealing, now).unwrap();
        store.apply(1, &SectorEvent::TicketDrawn { ticket, epoch }, now).unwrap();
        let (comm_d, comm_r) = (Commitment([1; 32]), Commitment([101; 32]));
        store.apply(1, &SectorEvent::PreCommitted2 { comm_d, comm_r }, now).unwrap();
        let row = store.sector(1).unwrap().unwrap();
        chain.send(&precommit_message(&row), now).unwrap();
    }
    r.drive_to(1, SectorState::Proving);
    let messages = r.messages();
    assert_eq!((count(&messages, true), count(&messages, false)), (1, 1));
    let row = r.ledger.store().sector(1).unwrap().unwrap();
    assert_eq!(row.precommit_message, Some(messages[0].id.clone()));
}

#[test]
fn removal_deletes_files_and_keeps_the_number_retired() {
    let mut r = rig(3, 0, 60_000);
    let piece = r.config.data_dir.join("piece.bin");
    std::fs::write(&piece, vec![7u8; 300]).unwrap();
    let a = add_piece(&r.ledger, &r.config, &piece, r.now()).unwrap();
    let copy = r.ledger.store().pieces(a.sector).unwrap()[0].path.clone();
    assert!(copy.exists());
    r.ledger.store().apply(a.sector, &SectorEvent::Remove, r.now()).unwrap();
    r.drive_to(a.sector, SectorState::Removed);
    assert!(!copy.exists());
    assert!(piece.exists(), "the operator's own file is never touched");
    assert_eq!(pledge(&r.ledger, &r.config, 1, r.now()).unwrap(), [2]);
}

#[test]
fn piece_copies_left_by_a_crash_are_cleaned_up() {
    let r = rig(3, 0, 60_000);
    let piece = r.config.data_dir.join("piece.bin");
    std::fs::write(&piece, vec![7u8; 300]).unwrap();
    let a = add_piece(&r.ledger, &r.config, &piece, r.now()).unwrap();
    let kept = r.ledger.store().pieces(a.sector).unwrap()[0].path.clone();
    let orphan = r.config.pieces_dir().join("0123.piece");
    std::fs::write(&orphan, b"copied, never recorded").unwrap();
    assert_eq!(remove_orphan_copies(&r.ledger, &r.config).unwrap(), 1);
    assert!(kept.exists() && !orphan.exists());
}

/// The sector's row.
fn row(r: &Rig, n: u64) -> crate::store::SectorRow {
    r.ledger.store().sector(n).unwrap().unwrap()
}

/// A corrupt local parameter file is the node's fault, not the sectors': C2
/// pauses with the file's error, no sector is charged an attempt, a probe
/// every interval finds it still broken, and once the file is replaced the
/// next probe resumes C2 and every sector reaches Proving.
#[test]
fn a_corrupt_parameter_file_pauses_c2_without_charging_sectors_until_it_is_replaced() {
    let mut r = rig(2, 0, 60_000);
    let params = r.config.data_dir.join("v28-stacked-proof-of-replication-test.params");
    std::fs::write(&params, b"truncated garbage").unwrap();
    *r.engine.params.lock().unwrap() = Some(params.clone());
    pledge(&r.ledger, &r.config, 2, r.now()).unwrap();
    let paused = r.pipeline.paused();
    for _ in 0..20_000 {
        if !paused.lock().unwrap().is_empty() {
            break;
        }
        r.turn();
    }
    let p = paused.lock().unwrap().get(&TaskKind::Commit).cloned().expect("C2 is paused");
    assert!(p.reason.contains("v28-stacked-proof-of-replication-test.params"), "{}", p.reason);
    assert!(p.reason.contains("does not match the manifest"), "{}", p.reason);

    // Five probe intervals later: still paused, nothing charged, nothing failed.
    r.pass(5 * r.config.node_fault_probe.as_millis() as i64);
    for n in [1, 2] {
        let row = row(&r, n);
        assert_eq!((row.lifecycle.state, row.lifecycle.attempts), (SectorState::Committing, 0), "sector {n}");
        assert!(!r.event_names(n).contains(&"StepFailed"), "sector {n}");
    }
    let failed: Vec<TaskState> = r
        .ledger
        .store()
        .tasks(None)
        .unwrap()
        .into_iter()
        .filter(|t| t.kind == TaskKind::Commit)
        .map(|t| t.state)
        .collect();
    assert!(
        failed.len() >= 4 && failed.iter().all(|s| *s == TaskState::Failed),
        "first try and probes: {failed:?}"
    );
    assert_eq!(r.engine.commits.load(Ordering::SeqCst), 0);

    // The operator replaces the file: the next probe succeeds and C2 resumes.
    std::fs::write(&params, GOOD_PARAMS).unwrap();
    r.drive_to(1, SectorState::Proving);
    r.drive_to(2, SectorState::Proving);
    assert!(paused.lock().unwrap().is_empty());
    assert_eq!(r.engine.commits.load(Ordering::SeqCst), 2);
}

/// A transient I/O error is retried after the backoff (one attempt charged).
#[test]
fn a_transient_io_error_is_retried() {
    let mut r = rig(3, 0, 60_000);
    let blip = std::io::Error::new(std::io::ErrorKind::Interrupted, "interrupted system call");
    r.engine.c1_failures.lock().unwrap().push(proofs::Error::io("read", "/data/sectors/1/sealed")(blip));
    pledge(&r.ledger, &r.config, 1, r.now()).unwrap();
    r.drive_to(1, SectorState::Proving);
    let events = r.ledger.store().events(1).unwrap();
    let failures: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.event {
            SectorEvent::StepFailed { error, disposition } => Some((error.clone(), *disposition, e.state)),
            _ => None,
        })
        .collect();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].0.contains("interrupted system call"), "{failures:?}");
    assert_eq!((failures[0].1, failures[0].2), (Disposition::Temporary, SectorState::ComputeProofFailed));
    assert!(r.event_names(1).contains(&"Retry"));
}

/// A failure of the sector itself (its replica fails a vanilla proof check)
/// ends it at once: retrying cannot mend it.
#[test]
fn a_permanent_sector_failure_goes_to_failed_at_once() {
    let mut r = rig(5, 0, 60_000);
    let bad = proofs::Error::InvalidProof(
        "partition 0, challenge 3: the replica node does not open to comm_r_last".into(),
    );
    r.engine.c1_failures.lock().unwrap().push(bad);
    pledge(&r.ledger, &r.config, 1, r.now()).unwrap();
    r.drive_to(1, SectorState::Failed);
    let row = row(&r, 1);
    assert_eq!(row.lifecycle.attempts, 1, "failed at the first failure, not after 5");
    assert!(row.last_error.unwrap().contains("does not open to comm_r_last"));
    let last = r.ledger.store().events(1).unwrap().pop().unwrap();
    assert!(matches!(last.event, SectorEvent::StepFailed { disposition: Disposition::Permanent, .. }));
    assert_eq!(count(&r.messages(), false), 0);
}

/// A task thread that panics fails its step like a temporary error (its slot
/// freed); the retry runs and the sector reaches Proving.
#[test]
fn a_panicking_task_is_retried_and_the_sector_reaches_proving() {
    let mut r = rig(3, 0, 60_000);
    fail::cfg("task:run", "1*panic").unwrap();
    pledge(&r.ledger, &r.config, 1, r.now()).unwrap();
    r.drive_to(1, SectorState::Proving);
    let events = r.ledger.store().events(1).unwrap();
    let failed = events.iter().find(|e| e.event.name() == "StepFailed").expect("the panic failed the step");
    assert!(
        matches!(&failed.event, SectorEvent::StepFailed { error, disposition: Disposition::Temporary } if error.contains("panicked")),
        "{:?}",
        failed.event
    );
    assert_eq!(failed.state, SectorState::SealPreCommitFailed);
    let pre: Vec<TaskState> = r
        .ledger
        .store()
        .tasks(Some(1))
        .unwrap()
        .iter()
        .filter(|t| t.kind == TaskKind::Pc1)
        .map(|t| t.state)
        .collect();
    assert_eq!(pre, [TaskState::Failed, TaskState::Done]);
}

/// A task thread that cannot be started stops the driver with an error (the
/// daemon exits non-zero); a new driver over the same ledger finishes the sector.
#[test]
fn a_failed_spawn_stops_the_driver_and_a_restart_finishes_the_sector() {
    let r = rig(3, 0, 60_000);
    pledge(&r.ledger, &r.config, 1, r.now()).unwrap();
    fail::cfg("driver:spawn", "return").unwrap();
    let Rig { ledger, clock, pipeline, engine, config, _tmp, _failpoints } = r;
    let stop = AtomicBool::new(false);
    let stopped = pipeline.run(&stop).unwrap_err();
    assert!(stopped.to_string().contains("cannot start a task thread"), "{stopped}");
    assert!(stopped.to_string().contains("failpoint driver:spawn"), "{stopped}");
    let tasks = ledger.store().tasks(Some(1)).unwrap();
    assert!(tasks.iter().all(|t| !t.state.is_open()), "no task left open: {tasks:?}");

    fail::remove("driver:spawn");
    let local = Arc::new(FakeVerifier { reject_first: Arc::default() });
    let pipeline = Pipeline::new(ledger.clone(), engine.clone(), local, config.clone());
    let mut r = Rig { _failpoints, _tmp, ledger, clock, pipeline, engine, config };
    r.drive_to(1, SectorState::Proving);
}

/// What `POST /v0/sectors/{n}/retry` records: the failed step, resumed.
fn operator_retry(r: &Rig, n: u64) -> crate::store::SectorRow {
    let step = r.ledger.store().failed_step(n).unwrap().expect("a failed step");
    r.ledger.store().apply(n, &SectorEvent::OperatorRetry { step }, r.now()).unwrap()
}

/// A sector that ended Failed after its attempts is sent back by the operator,
/// with its attempts reset, and reaches Proving once the fault is gone.
#[test]
fn the_operator_brings_a_failed_sector_back_to_proving() {
    let mut r = rig(2, 0, 60_000);
    r.engine.fail_pre_commits.store(2, Ordering::SeqCst);
    pledge(&r.ledger, &r.config, 1, r.now()).unwrap();
    r.drive_to(1, SectorState::Failed);
    assert_eq!(row(&r, 1).lifecycle.attempts, 2);
    let resumed = operator_retry(&r, 1);
    assert_eq!((resumed.lifecycle.state, resumed.lifecycle.attempts), (SectorState::Unsealed, 0));
    assert_eq!(resumed.last_error, None);
    r.drive_to(1, SectorState::Proving);
    assert!(r.event_names(1).contains(&"OperatorRetry"));
    r.ledger.store().check_replay(1).unwrap();
}

/// A rejected ProveCommit failed the sector, its proof kept: the operator's
/// retry is only an event, and the driver acting on it drops the kept proof
/// and proves anew (the API deletes no file).
#[test]
fn an_operator_retry_after_a_rejected_proof_proves_anew() {
    let mut r = rig(1, 1, 60_000);
    pledge(&r.ledger, &r.config, 1, r.now()).unwrap();
    r.drive_to(1, SectorState::Failed);
    assert!(r.config.proof_path(1).exists(), "the failed attempt's proof is kept");
    assert_eq!(r.engine.commits.load(Ordering::SeqCst), 1);
    assert_eq!(operator_retry(&r, 1).lifecycle.state, SectorState::Committing);
    r.drive_to(1, SectorState::Proving);
    assert_eq!(r.engine.commits.load(Ordering::SeqCst), 2, "proved anew, not the kept proof resent");
}

/// An aborted sector is Failed and left alone; a retry resumes the step it was in.
#[test]
fn an_aborted_sector_stops_and_a_retry_resumes_it() {
    let mut r = rig(3, 0, 60_000);
    pledge(&r.ledger, &r.config, 1, r.now()).unwrap();
    // PreCommitted (waiting for the seed) is a state the driver rests in; a
    // sector passes through Committing within the tick its seed arrives.
    r.drive_to(1, SectorState::PreCommitted);
    let aborted =
        r.ledger.store().apply(1, &SectorEvent::Abort { reason: "checking the disk".into() }, r.now());
    assert_eq!(aborted.unwrap().lifecycle.state, SectorState::Failed);
    r.pass(1_000);
    assert_eq!(r.state(1), SectorState::Failed);
    assert!(row(&r, 1).last_error.unwrap().contains("checking the disk"));
    assert_eq!(operator_retry(&r, 1).lifecycle.state, SectorState::PreCommitted);
    r.drive_to(1, SectorState::Proving);
}

/// A data directory moved between restarts (its records name the old path):
/// no piece copy is taken for an orphan, and the sector seals from the copies
/// where they are now.
#[test]
fn a_moved_data_directory_keeps_its_piece_copies_and_seals() {
    let mut r = rig(3, 0, 60_000);
    let piece = r.config.data_dir.join("piece.bin");
    std::fs::write(&piece, vec![7u8; 1500]).unwrap();
    let added = add_piece(&r.ledger, &r.config, &piece, r.now()).unwrap();
    let recorded = r.ledger.store().pieces(added.sector).unwrap()[0].path.clone();
    // The operator moves the data directory (here: its pieces) and restarts.
    let moved = tempfile::tempdir().unwrap();
    std::fs::rename(r.config.pieces_dir(), moved.path().join("pieces")).unwrap();
    let mut config = r.config.clone();
    config.data_dir = moved.path().to_path_buf();
    assert_eq!(remove_orphan_copies(&r.ledger, &config).unwrap(), 0, "no recorded copy is an orphan");
    assert!(config.piece_copy(&recorded).is_file());
    let local = Arc::new(FakeVerifier { reject_first: Arc::default() });
    r.pipeline = Pipeline::new(r.ledger.clone(), r.engine.clone(), local, config.clone());
    r.config = config;
    r.drive_to(added.sector, SectorState::Proving);
}

mod remote;

/// Sectors ready to pre-commit (and to prove) wait for a batch: a full
/// batch goes at once; the rest goes when waiting longer would leave its
/// tickets (or PreCommits) less than the slack before they expire, well
/// before the configured wait. Every sector records the message carrying it.
#[test]
fn sealing_messages_carry_batches_of_sectors() {
    let mut r = rig_with(3, 0, 60_000, |c| {
        c.messages.precommit_batch = 3;
        c.messages.commit_batch = 3;
        c.messages.precommit_wait_ms = 3_600_000;
        c.messages.commit_wait_ms = 3_600_000;
    });
    let sectors = pledge(&r.ledger, &r.config, 5, r.now()).unwrap();
    for &n in &sectors {
        r.drive_to(n, SectorState::Proving);
    }
    let messages = r.messages();
    let sizes = |precommit: bool| -> Vec<usize> {
        messages
            .iter()
            .filter(|m| matches!(m.message, Message::PreCommitSectors { .. }) == precommit)
            .filter(|m| !m.message.sectors().is_empty())
            .map(|m| m.message.sectors().len())
            .collect()
    };
    assert_eq!(sizes(true), [3, 2], "{messages:#?}");
    assert_eq!(sizes(false), [3, 2], "{messages:#?}");
    assert!(messages.iter().all(|m| m.receipt.as_ref().is_some_and(|r| r.exit_code == EXIT_OK)));
    for &n in &sectors {
        let row = r.ledger.store().sector(n).unwrap().unwrap();
        let carrying = |precommit: bool| {
            messages
                .iter()
                .find(|m| {
                    matches!(m.message, Message::PreCommitSectors { .. }) == precommit
                        && m.message.sectors().contains(&n)
                })
                .map(|m| m.id.clone())
        };
        assert_eq!(row.precommit_message, carrying(true), "sector {n}");
        assert_eq!(row.commit_message, carrying(false), "sector {n}");
        assert!(!r.event_names(n).contains(&"PreCommitExpired"), "sector {n}");
    }
    // The wait was an hour: the last batches went for their tickets and PreCommits.
    assert!(r.now() - START_MS < 3_600_000);
}

/// A sector whose ticket grew too old to pre-commit (the driver was down)
/// seals again with a fresh ticket instead of sending a PreCommit the chain
/// would refuse.
#[test]
fn a_ticket_too_old_to_precommit_is_drawn_again() {
    let mut r = rig(3, 0, 60_000);
    let n = pledge(&r.ledger, &r.config, 1, r.now()).unwrap()[0];
    let now = r.now();
    let ticket = r.ledger.chain().randomness(RandomnessKind::Ticket, 0, now).unwrap();
    {
        let mut store = r.ledger.store();
        store.apply(n, &SectorEvent::StartSealing, now).unwrap();
        store.apply(n, &SectorEvent::TicketDrawn { ticket, epoch: 0 }, now).unwrap();
        let (comm_d, comm_r) = (Commitment([1; 32]), Commitment([101; 32]));
        store.apply(n, &SectorEvent::PreCommitted2 { comm_d, comm_r }, now).unwrap();
    }
    // 100 epochs of 20 ms: the ticket of epoch 0 is too old by epoch 100.
    r.clock.advance(101 * 20);
    r.drive_to(n, SectorState::Proving);
    let events = r.event_names(n);
    assert!(events.contains(&"PreCommitExpired"), "{events:?}");
    let messages = r.messages();
    assert_eq!(count(&messages, true), 1, "only the fresh ticket's PreCommit was sent");
    assert!(messages.iter().all(|m| m.receipt.as_ref().is_some_and(|r| r.exit_code == EXIT_OK)));
}
