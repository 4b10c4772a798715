//! The driver: walks every sector through its lifecycle, acting on the
//! persisted state.
//!
//! Each tick the driver reads every sector's row and does the one thing its
//! state calls for: draw a ticket, start a task (PC1+PC2, C1+C2, finalize)
//! within the per-phase limits, send or poll a chain message, wait for the
//! seed, retry after the backoff, remove files. Every outcome becomes an event
//! persisted by [`Store::apply`] before anything acts on it, so the daemon can
//! be killed at any point and resumes from the database:
//!
//! - PC1 keeps finished layers, PC2 and finalize are idempotent;
//! - a finished proof is written to disk before `ProofReady` and reused on restart;
//! - a message sent but not yet recorded is found on the chain
//!   ([`Chain::find_message`]) and adopted, never sent twice.
//!
//! Every task is recorded ([`Store::start_task`]) before it starts. A C2 goes
//! to a free remote worker when there is one ([`crate::workers::scheduler`]),
//! else runs here within `limits.commit`; a remote proof is verified like a
//! local one before it is accepted.

pub mod engine;
pub mod packing;

use crate::chain::{Chain, ChainError, Message, RandomnessKind, SealVerifier};
use crate::config::{Config, Limits, PackingConfig, WorkersConfig};
use crate::faults::{self, crash_point};
use crate::lifecycle::{RetryPolicy, SectorEvent, SectorState};
use crate::store::{SectorRow, Store, StoreError, TaskKind, TaskRow, TaskState, WorkerRow};
use crate::workers::dispatch::{Dispatcher, HttpDispatcher};
use crate::workers::scheduler;
use engine::{BatchMember, EngineError, PreCommitOutput, PreCommitTask, ProofEngine};
use proofs::pieces::place_pieces;
use proofs::seal::{SectorDir, SectorIdentity};
use proofs::snark::SealStatement;
use proofs::{Commitment, ProverId, Randomness, SectorSize};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::{info, info_span, warn};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// What the driver and the API share: the sector store and the chain.
pub struct Ledger {
    /// Sectors and their event logs.
    pub store: Store,
    /// The chain.
    pub chain: Box<dyn Chain>,
}

/// The ledger behind a lock.
pub type SharedLedger = Arc<Mutex<Ledger>>;

/// Locks the ledger; a panic elsewhere while holding it leaves SQLite
/// consistent (every write is a transaction), so a poisoned lock is used as is.
pub fn lock(ledger: &SharedLedger) -> MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(|p| p.into_inner())
}

/// Errors of one driver step (logged; the step is tried again next tick).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The chain failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// A sector's files or recorded values are not usable.
    #[error("sector {number}: {reason}")]
    Sector {
        /// The sector.
        number: u64,
        /// What is wrong.
        reason: String,
    },
}

/// The driver's settings.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// The data directory.
    pub data_dir: PathBuf,
    /// Size of new sectors.
    pub sector_size: SectorSize,
    /// The miner's prover id.
    pub prover_id: ProverId,
    /// Concurrent tasks per phase.
    pub limits: Limits,
    /// Filling data sectors.
    pub packing: PackingConfig,
    /// Retries.
    pub retry: RetryPolicy,
    /// Pause between ticks when nothing finishes.
    pub tick: Duration,
    /// Remote workers' heartbeats and leases.
    pub workers: WorkersConfig,
}

impl PipelineConfig {
    /// The driver's part of a daemon configuration.
    pub fn from_config(c: &Config) -> Self {
        Self {
            data_dir: c.data_dir.clone(),
            sector_size: c.sector_size,
            prover_id: c.prover_id(),
            limits: c.limits,
            packing: c.packing,
            retry: c.retry.policy(),
            tick: Duration::from_millis(100),
            workers: c.workers.clone(),
        }
    }

    /// The SQLite database (sectors and the embedded chain).
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("kiln.db")
    }
    /// Sector `number`'s directory.
    pub fn sector_dir(&self, number: u64) -> SectorDir {
        SectorDir::new(self.data_dir.join("sectors").join(number.to_string()))
    }
    /// Where sector `number`'s proof is kept between C2 and the landed ProveCommit.
    pub fn proof_path(&self, number: u64) -> PathBuf {
        self.data_dir.join("proofs").join(format!("{number}.proof"))
    }
    /// The daemon's copies of data pieces.
    pub fn pieces_dir(&self) -> PathBuf {
        self.data_dir.join("pieces")
    }
}

/// A running task's latest progress, for status views.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskProgress {
    /// The task ("pre_commit", "commit", "finalize").
    pub task: String,
    /// The phase inside it ("labeling", "tree_c", ...), once reported.
    pub phase: Option<String>,
    /// The layer, while labeling.
    pub layer: Option<u32>,
    /// Units done.
    pub done: u64,
    /// Units in all.
    pub total: u64,
}

/// Progress of every running task, by sector.
pub type ProgressMap = Arc<Mutex<HashMap<u64, TaskProgress>>>;

enum TaskResult {
    PreCommit(Result<PreCommitOutput, EngineError>),
    Commit(Result<Vec<u8>, EngineError>),
    /// C1 ran here and its output went to the task's worker (or failed to).
    Dispatched(Result<(), DispatchError>),
    Finalize(Result<(), EngineError>),
}

enum DispatchError {
    /// C1 failed: the sector's problem.
    C1(EngineError),
    /// The worker could not be reached or refused the task: the worker's.
    Send(String),
}

struct Running {
    kind: TaskKind,
    cancel: Arc<AtomicBool>,
    /// The task's record.
    task: u64,
    /// The remote worker it was handed to.
    worker: Option<String>,
    /// The pre-commit batch this sector is labeled in.
    batch: Option<Arc<PreCommitBatch>>,
}

/// Sectors pre-committed together: their labeling stops only when every one
/// of them is cancelled.
struct PreCommitBatch {
    members: Vec<u64>,
    cancel: AtomicBool,
}

/// The driver.
pub struct Pipeline {
    ledger: SharedLedger,
    engine: Arc<dyn ProofEngine>,
    verifier: Box<dyn SealVerifier>,
    dispatcher: Arc<dyn Dispatcher>,
    config: PipelineConfig,
    running: HashMap<u64, Running>,
    /// Workers a dispatch failed to, and until when they get no task.
    backoff: HashMap<String, i64>,
    done_tx: Sender<(u64, TaskResult)>,
    done_rx: Receiver<(u64, TaskResult)>,
    progress: ProgressMap,
    last_error: HashMap<u64, String>,
    /// Open tasks and workers as read by a scheduling pass that changed
    /// nothing, so the sectors still waiting for a slot in this tick share
    /// one read.
    commit_view: Option<(Vec<TaskRow>, Vec<WorkerRow>)>,
    /// Sectors of this tick with a ticket, waiting for PC1 (number, size, ticket).
    pc1_ready: Vec<(u64, SectorSize, Randomness)>,
}

impl Pipeline {
    /// A driver over `ledger`, running tasks on `engine` and checking proofs
    /// with `verifier` before they are sent.
    pub fn new(
        ledger: SharedLedger,
        engine: Arc<dyn ProofEngine>,
        verifier: Box<dyn SealVerifier>,
        config: PipelineConfig,
    ) -> Self {
        let (done_tx, done_rx) = channel();
        let timeout = Duration::from_millis(config.workers.dispatch_timeout_ms);
        Self {
            ledger,
            engine,
            verifier,
            dispatcher: Arc::new(HttpDispatcher::with_timeout(timeout)),
            config,
            running: HashMap::new(),
            backoff: HashMap::new(),
            done_tx,
            done_rx,
            progress: ProgressMap::default(),
            last_error: HashMap::new(),
            commit_view: None,
            pc1_ready: Vec::new(),
        }
    }

    /// Hands remote tasks to workers with `dispatcher` instead of over HTTP.
    pub fn with_dispatcher(mut self, dispatcher: Arc<dyn Dispatcher>) -> Self {
        self.dispatcher = dispatcher;
        self
    }

    /// Progress of running tasks (shared with status views).
    pub fn progress(&self) -> ProgressMap {
        self.progress.clone()
    }

    /// Ticks until `stop` is set. Running tasks are not waited for: their
    /// sectors resume from the database on the next start.
    pub fn run(mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            self.tick();
            if let Ok((number, result)) = self.done_rx.recv_timeout(self.config.tick) {
                self.finish(number, result);
            }
        }
        for r in self.running.values() {
            r.cancel.store(true, Ordering::Relaxed);
            if let Some(b) = &r.batch {
                b.cancel.store(true, Ordering::Relaxed);
            }
        }
    }

    /// One pass: collects finished tasks, then steps every sector in work.
    pub fn tick(&mut self) {
        while let Ok((number, result)) = self.done_rx.try_recv() {
            self.finish(number, result);
        }
        self.commit_view = None;
        let rows = match lock(&self.ledger).store.active_sectors() {
            Ok(rows) => rows,
            Err(e) => {
                warn!(error = %e, "cannot list sectors");
                return;
            }
        };
        self.pc1_ready = rows
            .iter()
            .filter(|r| r.lifecycle.state == SectorState::Unsealed && !self.running.contains_key(&r.number))
            .filter_map(|r| ticket_of(r).ok().flatten().map(|(t, _)| (r.number, r.sector_size, t)))
            .collect();
        for row in &rows {
            let span = info_span!("sector", number = row.number);
            let _g = span.enter();
            match self.step(row, now_ms()) {
                Ok(()) => {
                    self.last_error.remove(&row.number);
                }
                Err(e) => {
                    let text = e.to_string();
                    // Log a persisting problem once, not every tick.
                    if self.last_error.get(&row.number) != Some(&text) {
                        warn!(state = %row.lifecycle.state, error = %text, "step failed; will retry");
                        self.last_error.insert(row.number, text);
                    }
                }
            }
        }
    }

    /// Whether any task is running.
    pub fn busy(&self) -> bool {
        !self.running.is_empty()
    }

    fn apply(&self, number: u64, event: &SectorEvent) -> Result<SectorRow, PipelineError> {
        let row = lock(&self.ledger).store.apply(number, event, now_ms())?;
        info!(event = event.name(), state = %row.lifecycle.state, "sector event");
        Ok(row)
    }

    fn identity(&self, number: u64, size: SectorSize) -> SectorIdentity {
        SectorIdentity { sector_size: size, prover_id: self.config.prover_id, sector_id: number }
    }

    /// Tasks of `kind` running in this process (a remote C2 counts only while
    /// its C1 runs here).
    fn count(&self, kind: TaskKind) -> usize {
        self.running.values().filter(|r| r.kind == kind && r.worker.is_none()).count()
    }

    /// Pre-commit tasks running: a batch of sectors is one task.
    fn pre_commit_tasks(&self) -> usize {
        let mut batches: Vec<*const PreCommitBatch> =
            self.running.values().filter_map(|r| r.batch.as_ref().map(Arc::as_ptr)).collect();
        batches.sort();
        batches.dedup();
        batches.len()
    }

    fn step(&mut self, row: &SectorRow, now: i64) -> Result<(), PipelineError> {
        use SectorState as S;
        let n = row.number;
        if let Some(r) = self.running.get(&n) {
            if row.lifecycle.state == S::Removing {
                r.cancel.store(true, Ordering::Relaxed);
                if let Some(b) = &r.batch {
                    let all = b
                        .members
                        .iter()
                        .all(|m| self.running.get(m).is_none_or(|r| r.cancel.load(Ordering::Relaxed)));
                    if all {
                        b.cancel.store(true, Ordering::Relaxed);
                    }
                }
            }
            return Ok(());
        }
        match row.lifecycle.state {
            S::Packing => {
                if self.ready_to_seal(row, now)? {
                    crash_point("packing:before-start");
                    self.apply(n, &SectorEvent::StartSealing)?;
                }
            }
            S::Unsealed => match ticket_of(row)? {
                None => {
                    let (ticket, epoch) = {
                        let mut l = lock(&self.ledger);
                        let head = l.chain.head(now)?;
                        (l.chain.randomness(RandomnessKind::Ticket, head, now)?, head)
                    };
                    self.apply(n, &SectorEvent::TicketDrawn { ticket: ticket.to_hex(), epoch })?;
                }
                Some((ticket, _)) => {
                    if self.pre_commit_tasks() < self.config.limits.pre_commit {
                        self.start_pre_commit(row, ticket)?;
                    }
                }
            },
            S::PreCommitting => match &row.precommit_message {
                Some(id) => match self.outcome(n, id, "PreCommit", now)? {
                    None => {}
                    Some(Ok(epoch)) => {
                        self.apply(n, &SectorEvent::PreCommitLanded { epoch })?;
                    }
                    Some(Err(error)) => {
                        self.apply(n, &SectorEvent::StepFailed { error })?;
                    }
                },
                None => {
                    let message = precommit_message(row)?;
                    let id = self.send_once(&message, now, "precommit:sent-unrecorded")?;
                    self.apply(n, &SectorEvent::PreCommitSent { message: id.to_string() })?;
                }
            },
            S::PreCommitted => {
                let (pc, head) = {
                    let mut l = lock(&self.ledger);
                    (l.chain.precommit(n, now)?, l.chain.head(now)?)
                };
                match pc {
                    None => self.expire(n)?,
                    Some(pc) if head > pc.seed_epoch => {
                        let seed =
                            lock(&self.ledger).chain.randomness(RandomnessKind::Seed, pc.seed_epoch, now)?;
                        self.apply(n, &SectorEvent::SeedReady { seed: seed.to_hex(), epoch: pc.seed_epoch })?;
                    }
                    Some(_) => crash_point("precommitted:waiting-seed"),
                }
            }
            S::Committing => {
                if self.config.proof_path(n).exists() {
                    // C2 finished before a crash: its verified proof is on disk.
                    info!("reusing the proof computed before the restart");
                    self.close_open_tasks(n, TaskState::Done, None)?;
                    self.apply(n, &SectorEvent::ProofReady)?;
                } else {
                    self.schedule_commit(row, now)?;
                }
            }
            S::CommitWait => match &row.commit_message {
                Some(id) => match self.outcome(n, id, "ProveCommit", now)? {
                    None => {}
                    Some(Ok(epoch)) => {
                        self.apply(n, &SectorEvent::CommitLanded { epoch })?;
                    }
                    Some(Err(reason)) => {
                        self.apply(n, &SectorEvent::CommitRejected { reason })?;
                    }
                },
                None => match std::fs::read(self.config.proof_path(n)) {
                    Ok(proof) => {
                        let message = Message::ProveCommit { sector: n, proof };
                        let id = self.send_once(&message, now, "provecommit:sent-unrecorded")?;
                        self.apply(n, &SectorEvent::CommitSent { message: id.to_string() })?;
                    }
                    Err(e) => {
                        let error = format!("proof file {}: {e}", self.config.proof_path(n).display());
                        self.apply(n, &SectorEvent::StepFailed { error })?;
                    }
                },
            },
            S::FinalizeSector => {
                if self.count(TaskKind::Finalize) < self.config.limits.finalize {
                    self.start_finalize(row)?;
                }
            }
            S::SealPreCommitFailed
            | S::PreCommitFailed
            | S::ComputeProofFailed
            | S::CommitFailed
            | S::FinalizeFailed => {
                let wait = self.config.retry.backoff(row.lifecycle.attempts);
                if now < row.updated_ms.saturating_add(wait.as_millis() as i64) {
                    return Ok(());
                }
                if matches!(row.lifecycle.state, S::ComputeProofFailed | S::CommitFailed) {
                    if lock(&self.ledger).chain.precommit(n, now)?.is_none() {
                        return self.expire(n);
                    }
                    // The retry computes a new proof.
                    self.remove_file(&self.config.proof_path(n), n)?;
                }
                self.apply(n, &SectorEvent::Retry)?;
            }
            S::Removing => {
                // Remote tasks are dropped by their workers at the next heartbeat.
                self.close_open_tasks(n, TaskState::Cancelled, Some("the sector is being removed"))?;
                let dir = self.config.sector_dir(n);
                remove_path(dir.root()).map_err(|reason| PipelineError::Sector { number: n, reason })?;
                self.remove_file(&self.config.proof_path(n), n)?;
                let pieces = lock(&self.ledger).store.pieces(n)?;
                for p in pieces {
                    self.remove_file(&p.path, n)?;
                }
                self.apply(n, &SectorEvent::RemoveDone)?;
            }
            S::Proving | S::Failed | S::Removed => {}
        }
        Ok(())
    }

    /// What became of recorded message `id`: nothing yet, landed in an epoch,
    /// or failed (why).
    fn outcome(
        &self,
        n: u64,
        id: &str,
        what: &str,
        now: i64,
    ) -> Result<Option<Result<u64, String>>, PipelineError> {
        let id = message_id(n, id)?;
        let receipt = lock(&self.ledger).chain.receipt(id, now)?;
        Ok(receipt.map(|r| {
            if r.exit_code == 0 {
                Ok(r.epoch)
            } else {
                Err(format!(
                    "{what} message {id} failed with exit code {}: {}",
                    r.exit_code,
                    r.error.unwrap_or_default()
                ))
            }
        }))
    }

    /// Sends `message` unless an identical one is already pending or landed
    /// (sent before a crash that kept the send from being recorded).
    fn send_once(&self, message: &Message, now: i64, point: &str) -> Result<u64, PipelineError> {
        let mut l = lock(&self.ledger);
        if let Some(id) = l.chain.find_message(message, now)? {
            info!(message = id, "adopting the message sent before the restart");
            return Ok(id);
        }
        let id = l.chain.send(message, now)?;
        crash_point(point);
        Ok(id)
    }

    /// The PreCommit expired: drop the proof and seal again with a new ticket.
    fn expire(&self, n: u64) -> Result<(), PipelineError> {
        self.remove_file(&self.config.proof_path(n), n)?;
        self.apply(n, &SectorEvent::PreCommitExpired)?;
        Ok(())
    }

    fn remove_file(&self, path: &Path, number: u64) -> Result<(), PipelineError> {
        remove_path(path).map_err(|reason| PipelineError::Sector { number, reason })
    }

    fn ready_to_seal(&self, row: &SectorRow, now: i64) -> Result<bool, PipelineError> {
        if row.pledged {
            return Ok(true);
        }
        let pieces = lock(&self.ledger).store.pieces(row.number)?;
        let Some(first) = pieces.first() else {
            return Ok(false);
        };
        let mut sizes: Vec<u64> = pieces.iter().map(|p| p.padded_size).collect();
        // Full: not even the smallest piece (128 padded bytes) fits any more.
        sizes.push(128);
        let full = place_pieces(&sizes, row.sector_size.bytes()).is_err();
        let waited = now.saturating_sub(first.added_ms) >= self.config.packing.wait_ms as i64;
        Ok(full || waited)
    }

    /// Records a task of `kind` for sector `number` starting here.
    fn record_task(&self, number: u64, kind: TaskKind) -> Result<u64, PipelineError> {
        Ok(lock(&self.ledger).store.start_task(number, kind, None, None, now_ms())?)
    }

    fn close_task(&self, id: u64, state: TaskState, error: Option<&str>) {
        if let Err(e) = lock(&self.ledger).store.finish_task(id, state, error, now_ms()) {
            warn!(task = id, error = %e, "cannot record the task's end");
        }
    }

    fn close_open_tasks(
        &self,
        number: u64,
        state: TaskState,
        error: Option<&str>,
    ) -> Result<(), PipelineError> {
        let mut l = lock(&self.ledger);
        for t in l.store.open_tasks()?.into_iter().filter(|t| t.sector == number) {
            l.store.finish_task(t.id, state, error, now_ms())?;
        }
        Ok(())
    }

    fn spawn(
        &mut self,
        number: u64,
        (kind, task, worker): (TaskKind, u64, Option<String>),
        work: impl FnOnce(&AtomicBool) -> TaskResult + Send + 'static,
    ) {
        let cancel = Arc::new(AtomicBool::new(false));
        let flag = cancel.clone();
        let tx = self.done_tx.clone();
        let progress = self.progress.clone();
        progress.lock().unwrap_or_else(|p| p.into_inner()).insert(
            number,
            TaskProgress { task: kind.name().into(), phase: None, layer: None, done: 0, total: 0 },
        );
        let span =
            info_span!("task", id = task, sector = number, kind = kind.name(), worker = worker.as_deref());
        info!(parent: &span, "task started");
        std::thread::Builder::new()
            .name(format!("sector-{number}-{}", kind.name()))
            .spawn(move || {
                let _g = span.enter();
                let result = work(&flag);
                let _ = tx.send((number, result));
            })
            .expect("spawn a task thread");
        self.running.insert(number, Running { kind, cancel, task, worker, batch: None });
    }

    /// Starts PC1+PC2 for `row` and, up to `limits.pc1_batch`, for other sectors of
    /// its size that are ready in this tick: one task labeling them together, each
    /// sector with its own task record and outcome.
    fn start_pre_commit(&mut self, row: &SectorRow, ticket: Randomness) -> Result<(), PipelineError> {
        let width = self.config.limits.pc1_batch.max(1);
        let mut chosen = vec![(row.number, ticket)];
        for &(n, size, t) in &self.pc1_ready {
            if chosen.len() >= width {
                break;
            }
            if n != row.number && size == row.sector_size && !self.running.contains_key(&n) {
                chosen.push((n, t));
            }
        }
        std::fs::create_dir_all(self.config.data_dir.join("sectors")).map_err(|e| PipelineError::Sector {
            number: row.number,
            reason: format!("create the sectors directory: {e}"),
        })?;
        let mut members = Vec::with_capacity(chosen.len());
        let mut tasks = Vec::with_capacity(chosen.len());
        for &(n, ticket) in &chosen {
            let pieces = lock(&self.ledger).store.pieces(n)?.into_iter().map(|p| p.path).collect();
            let task = PreCommitTask { identity: self.identity(n, row.sector_size), ticket, pieces };
            tasks.push(self.record_task(n, TaskKind::PreCommit)?);
            members.push(BatchMember {
                dir: self.config.sector_dir(n),
                task,
                cancel: Arc::new(AtomicBool::new(false)),
            });
        }
        let numbers: Vec<u64> = chosen.iter().map(|(n, _)| *n).collect();
        let batch = Arc::new(PreCommitBatch { members: numbers.clone(), cancel: AtomicBool::new(false) });
        for (m, &task) in members.iter().zip(&tasks) {
            let n = m.task.identity.sector_id;
            self.progress.lock().unwrap_or_else(|p| p.into_inner()).insert(
                n,
                TaskProgress {
                    task: TaskKind::PreCommit.name().into(),
                    phase: None,
                    layer: None,
                    done: 0,
                    total: 0,
                },
            );
            self.running.insert(
                n,
                Running {
                    kind: TaskKind::PreCommit,
                    cancel: m.cancel.clone(),
                    task,
                    worker: None,
                    batch: Some(batch.clone()),
                },
            );
        }
        let engine = self.engine.clone();
        let progress = self.progress.clone();
        let tx = self.done_tx.clone();
        let span = info_span!("task", id = tasks[0], sectors = ?numbers, kind = TaskKind::PreCommit.name());
        info!(parent: &span, tasks = ?tasks, "pre-commit task started");
        std::thread::Builder::new()
            .name(format!("pre-commit-{}", numbers[0]))
            .spawn(move || {
                let _g = span.enter();
                let mut report = |p: proofs::sdr::layers::Progress| {
                    if p.phase == "labeling"
                        && p.layer.is_some_and(|l| l >= 2)
                        && faults::armed("pc1:mid-labeling")
                    {
                        // Layers are synced and recorded in the background: crash once the
                        // earlier ones are recorded, while this one is still being labeled.
                        let layer = p.layer.unwrap_or(2);
                        for m in &members {
                            wait_for_recorded_layer(&m.dir, layer - 1);
                        }
                        crash_point("pc1:mid-labeling");
                    }
                    let mut map = progress.lock().unwrap_or_else(|p| p.into_inner());
                    for n in &batch.members {
                        if let Some(t) = map.get_mut(n) {
                            t.phase = Some(p.phase.into());
                            t.layer = p.layer;
                            t.done = p.done;
                            t.total = p.total;
                        }
                    }
                };
                engine.pre_commit_batch(&members, &batch.cancel, &mut report, &mut |i, result| {
                    let _ = tx.send((members[i].task.identity.sector_id, TaskResult::PreCommit(result)));
                });
            })
            .expect("spawn a task thread");
        Ok(())
    }

    /// A sector needing its proof: follows its remote task if one is open,
    /// else starts one on the least loaded free worker, else here if the
    /// local limit allows.
    fn schedule_commit(&mut self, row: &SectorRow, now: i64) -> Result<(), PipelineError> {
        let n = row.number;
        let (open, workers) = match self.commit_view.take() {
            Some(view) => view,
            None => {
                let l = lock(&self.ledger);
                (l.store.open_tasks()?, l.store.workers()?)
            }
        };
        if let Some(task) = open.iter().find(|t| t.sector == n && t.kind == TaskKind::Commit) {
            return self.follow_remote(n, task, now);
        }
        self.backoff.retain(|_, until| *until > now);
        let lease = self.config.workers.lease_ms;
        if let Some(w) = scheduler::pick_worker(&workers, &open, row.sector_size, now, lease, &self.backoff) {
            let (name, url) = (w.name.clone(), w.url.clone());
            return self.start_remote_commit(row, name, url, now);
        }
        if self.count(TaskKind::Commit) < self.config.limits.commit {
            self.start_commit(row)?;
        } else {
            self.commit_view = Some((open, workers));
        }
        Ok(())
    }

    /// An open commit task not running in this process: judge a reported
    /// result, expire a lapsed lease, or wait.
    fn follow_remote(&mut self, n: u64, task: &TaskRow, now: i64) -> Result<(), PipelineError> {
        let Some(worker) = task.worker.clone() else {
            // A local task whose thread is gone (recovery closes these at start).
            self.close_task(task.id, TaskState::Interrupted, Some("its thread is gone"));
            return Ok(());
        };
        match task.state {
            TaskState::Reported => {
                let result = lock(&self.ledger).store.task_result(task.id)?;
                let Some(proof) = result else {
                    let error = format!(
                        "C2 on worker {worker} failed: {}",
                        task.error.as_deref().unwrap_or("no reason given")
                    );
                    warn!(task = task.id, %error, "remote task failed");
                    self.close_task(task.id, TaskState::Failed, Some(&error));
                    self.apply(n, &SectorEvent::StepFailed { error })?;
                    return Ok(());
                };
                match self.accept_proof(n, &proof) {
                    Ok(()) => {
                        info!(task = task.id, %worker, "remote proof verified and accepted");
                        self.close_task(task.id, TaskState::Done, None);
                        crash_point("commit:proof-written-unrecorded");
                        self.apply(n, &SectorEvent::ProofReady)?;
                    }
                    Err(reason) => {
                        let why = format!("task {} (sector {n}): {reason}", task.id);
                        warn!(task = task.id, %worker, %reason, "remote proof rejected; worker marked unhealthy");
                        self.close_task(task.id, TaskState::Rejected, Some(&reason));
                        lock(&self.ledger).store.mark_worker_unhealthy(&worker, &why)?;
                    }
                }
            }
            TaskState::Running if task.lease_until_ms.is_some_and(|until| now > until) => {
                let why = format!("worker {worker} did not renew the lease; the task runs again");
                warn!(task = task.id, %worker, "lease expired");
                self.close_task(task.id, TaskState::Expired, Some(&why));
            }
            _ => {}
        }
        Ok(())
    }

    fn start_remote_commit(
        &mut self,
        row: &SectorRow,
        worker: String,
        url: String,
        now: i64,
    ) -> Result<(), PipelineError> {
        let n = row.number;
        let seed = parse_hex(n, "seed", row.seed.as_deref(), Randomness::from_hex)?;
        let (id, key) = {
            let mut l = lock(&self.ledger);
            let key = l.store.dispatch_key(&worker)?;
            let lease = now + self.config.workers.lease_ms as i64;
            (l.store.start_task(n, TaskKind::Commit, Some(&worker), Some(lease), now)?, key)
        };
        let dir = self.config.sector_dir(n);
        let engine = self.engine.clone();
        let dispatcher = self.dispatcher.clone();
        self.spawn(n, (TaskKind::Commit, id, Some(worker)), move |_| {
            let result = engine
                .c1(&dir, &seed)
                .map_err(DispatchError::C1)
                .and_then(|c1| dispatcher.send_c2(&url, &key, id, &c1).map_err(DispatchError::Send));
            TaskResult::Dispatched(result)
        });
        Ok(())
    }

    fn start_commit(&mut self, row: &SectorRow) -> Result<(), PipelineError> {
        let n = row.number;
        let seed = parse_hex(n, "seed", row.seed.as_deref(), Randomness::from_hex)?;
        let dir = self.config.sector_dir(n);
        let engine = self.engine.clone();
        let id = self.record_task(n, TaskKind::Commit)?;
        self.spawn(n, (TaskKind::Commit, id, None), move |_| {
            TaskResult::Commit(engine.c1(&dir, &seed).and_then(|c1| engine.c2(&c1)))
        });
        Ok(())
    }

    fn start_finalize(&mut self, row: &SectorRow) -> Result<(), PipelineError> {
        let dir = self.config.sector_dir(row.number);
        // Committed-capacity sectors hold no data worth keeping unsealed.
        let keep = self.config.packing.keep_unsealed && !row.pledged;
        let engine = self.engine.clone();
        let id = self.record_task(row.number, TaskKind::Finalize)?;
        self.spawn(row.number, (TaskKind::Finalize, id, None), move |_| {
            TaskResult::Finalize(engine.finalize(&dir, keep))
        });
        Ok(())
    }

    /// Turns a finished task into its event.
    fn finish(&mut self, number: u64, result: TaskResult) {
        let span = info_span!("sector", number);
        let _g = span.enter();
        let Some(running) = self.running.remove(&number) else { return };
        self.progress.lock().unwrap_or_else(|p| p.into_inner()).remove(&number);
        let removing = matches!(
            lock(&self.ledger).store.sector(number),
            Ok(Some(r)) if r.lifecycle.state == SectorState::Removing
        );
        if removing {
            info!(task = running.kind.name(), "task finished for a sector being removed; result dropped");
            self.close_task(running.task, TaskState::Cancelled, Some("the sector is being removed"));
            return;
        }
        let id = running.task;
        let event = match result {
            TaskResult::PreCommit(Ok(out)) => {
                self.close_task(id, TaskState::Done, None);
                SectorEvent::PreCommitted2 { comm_d: out.comm_d.to_hex(), comm_r: out.comm_r.to_hex() }
            }
            TaskResult::Commit(Ok(proof)) => match self.accept_proof(number, &proof) {
                Ok(()) => {
                    self.close_task(id, TaskState::Done, None);
                    crash_point("commit:proof-written-unrecorded");
                    SectorEvent::ProofReady
                }
                Err(error) => {
                    self.close_task(id, TaskState::Failed, Some(&error));
                    SectorEvent::StepFailed { error }
                }
            },
            TaskResult::Dispatched(Ok(())) => {
                // The worker has it: the lease runs from now, not from the start of C1.
                let lease = now_ms() + self.config.workers.lease_ms as i64;
                if let Err(e) = lock(&self.ledger).store.set_task_lease(id, lease) {
                    warn!(error = %e, "cannot renew the lease; the worker's heartbeat will");
                }
                info!(task = id, worker = running.worker.as_deref(), "C2 handed to the worker");
                return;
            }
            TaskResult::Dispatched(Err(DispatchError::Send(error))) => {
                let worker = running.worker.clone().unwrap_or_default();
                warn!(task = id, %worker, %error, "the worker did not take the task; trying elsewhere");
                self.close_task(id, TaskState::Failed, Some(&error));
                let pause = self.config.workers.lease_ms.min(30_000) as i64;
                self.backoff.insert(worker, now_ms() + pause);
                return;
            }
            TaskResult::Finalize(Ok(())) => {
                self.close_task(id, TaskState::Done, None);
                crash_point("finalize:done-unrecorded");
                SectorEvent::Finalized
            }
            TaskResult::Dispatched(Err(DispatchError::C1(e)))
            | TaskResult::PreCommit(Err(e))
            | TaskResult::Commit(Err(e))
            | TaskResult::Finalize(Err(e)) => {
                warn!(task = running.kind.name(), error = %e, "task failed");
                self.close_task(id, TaskState::Failed, Some(&e.to_string()));
                SectorEvent::StepFailed { error: e.to_string() }
            }
        };
        if let Err(e) = self.apply(number, &event) {
            warn!(error = %e, "cannot record the task's outcome; the step will run again");
        }
    }

    /// Checks a fresh proof against the sector's public values and stores it.
    fn accept_proof(&self, number: u64, proof: &[u8]) -> Result<(), String> {
        let row =
            lock(&self.ledger).store.sector(number).map_err(|e| e.to_string())?.ok_or("sector vanished")?;
        let statement = statement_of(&row, self.config.prover_id).map_err(|e| e.to_string())?;
        match self.verifier.verify(&statement, proof) {
            Ok(true) => {}
            Ok(false) => return Err("the computed proof does not verify".into()),
            Err(e) => return Err(format!("cannot verify the computed proof: {e}")),
        }
        let path = self.config.proof_path(number);
        std::fs::create_dir_all(path.parent().expect("proof path has a parent"))
            .map_err(|e| format!("create {}: {e}", path.display()))?;
        proofs::durable::write_file(&path, proof).map_err(|e| e.to_string())
    }
}

fn remove_path(path: &Path) -> Result<(), String> {
    let r = if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("remove {}: {e}", path.display())),
    }
}

fn parse_hex<T>(
    number: u64,
    what: &str,
    value: Option<&str>,
    parse: impl FnOnce(&str) -> proofs::Result<T>,
) -> Result<T, PipelineError> {
    let value =
        value.ok_or_else(|| PipelineError::Sector { number, reason: format!("no {what} recorded") })?;
    parse(value).map_err(|e| PipelineError::Sector { number, reason: format!("recorded {what}: {e}") })
}

/// Waits (up to a minute) until the sector's PC1 record lists `layer`: for the
/// `pc1:mid-labeling` crash point only.
fn wait_for_recorded_layer(dir: &SectorDir, layer: u32) {
    let layers = proofs::sdr::layers::Layers::new(&dir.cache_dir(), 0, 0);
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if layers.record().ok().flatten().is_some_and(|r| r.layers.iter().any(|l| l.layer == layer)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn ticket_of(row: &SectorRow) -> Result<Option<(Randomness, u64)>, PipelineError> {
    match (&row.ticket, row.ticket_epoch) {
        (Some(t), Some(epoch)) => {
            Ok(Some((parse_hex(row.number, "ticket", Some(t), Randomness::from_hex)?, epoch)))
        }
        _ => Ok(None),
    }
}

fn message_id(number: u64, id: &str) -> Result<u64, PipelineError> {
    id.parse().map_err(|_| PipelineError::Sector { number, reason: format!("recorded message id {id:?}") })
}

fn precommit_message(row: &SectorRow) -> Result<Message, PipelineError> {
    let n = row.number;
    let (_, ticket_epoch) = ticket_of(row)?
        .ok_or_else(|| PipelineError::Sector { number: n, reason: "no ticket recorded".into() })?;
    Ok(Message::PreCommit {
        sector: n,
        sector_size: row.sector_size,
        comm_r: parse_hex(n, "comm_r", row.comm_r.as_deref(), Commitment::from_hex)?,
        comm_d: parse_hex(n, "comm_d", row.comm_d.as_deref(), Commitment::from_hex)?,
        ticket_epoch,
    })
}

/// The public values a sector's proof is checked against.
pub fn statement_of(row: &SectorRow, prover_id: ProverId) -> Result<SealStatement, PipelineError> {
    let n = row.number;
    let (ticket, _) = ticket_of(row)?
        .ok_or_else(|| PipelineError::Sector { number: n, reason: "no ticket recorded".into() })?;
    Ok(SealStatement {
        sector_size: row.sector_size,
        prover_id,
        sector_id: n,
        ticket,
        seed: parse_hex(n, "seed", row.seed.as_deref(), Randomness::from_hex)?,
        comm_d: parse_hex(n, "comm_d", row.comm_d.as_deref(), Commitment::from_hex)?,
        comm_r: parse_hex(n, "comm_r", row.comm_r.as_deref(), Commitment::from_hex)?,
    })
}

#[cfg(test)]
mod tests;
