//! The driver: walks every sector through its lifecycle, acting on the
//! persisted state.
//!
//! Each tick the driver reads every sector's row and does the one thing its
//! state calls for ([`steps`]): draw a ticket, start a task within the
//! per-phase limits ([`tasks`]), send or poll a chain message, wait for the
//! seed, retry after the backoff, remove files. Every outcome becomes an event
//! persisted by [`Store::apply`] before anything acts on it, so the daemon can
//! be killed at any point and resumes from the database:
//!
//! - PC1 keeps finished layers, PC2 and finalize are idempotent;
//! - a finished proof is written to disk before `ProofReady` and reused on restart;
//! - a message sent but not yet recorded is found on the chain
//!   ([`Chain::find_sent`]) and adopted, never sent twice.
//!
//! PreCommits and ProveCommits go in batches ([`batches`]): a sector ready
//! for one waits until a batch is due.
//!
//! Every task is recorded ([`Store::start_task`]) before it starts. A C2 goes
//! to a free remote worker when there is one ([`remote`]), else runs here
//! within `limits.commit`; a remote proof is verified like a local one before
//! it is accepted. A failed task is handled by its [`Disposition`]: retried
//! with backoff, the sector failed at once, the task kind paused until the
//! node is fixed, or the driver stopped. Time comes from the ledger's clock.
//!
//! [`Chain::find_sent`]: crate::chain::ChainMessages::find_sent
//! [`Store::apply`]: crate::store::Store::apply
//! [`Store::start_task`]: crate::store::Store::start_task

mod batches;
pub mod engine;
mod layout;
pub mod packing;
mod remote;
mod steps;
mod tasks;

use crate::chain::{ChainError, SealVerifier};
use crate::config::{Config, HistoryConfig, Limits, MessagesConfig, PackingConfig, WorkersConfig};
use crate::ledger::SharedLedger;
use crate::lifecycle::{Disposition, RetryPolicy, SectorEvent};
use crate::store::{SectorRow, StoreError, TaskKind, TaskRow, WorkerRow};
use crate::workers::dispatch::{Dispatcher, HttpDispatcher};
use engine::ProofEngine;
use proofs::seal::SectorIdentity;
use proofs::{ProverId, Randomness, SectorSize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tasks::{Running, TaskResult};
use tracing::{error, info, info_span, warn};

pub(crate) use layout::remove_path;
pub use steps::statement_of;
pub(crate) use tasks::close_task;
pub use tasks::{PauseMap, ProgressMap};
pub use wire::api::TaskProgress;

/// Errors of one driver step (logged; the step is tried again next tick,
/// unless the error is [`Disposition::Critical`]: then the driver stops).
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
    /// A task thread could not be started (the system is out of threads or memory).
    #[error("cannot start a task thread for sector {number}: {source}")]
    Spawn {
        /// The sector.
        number: u64,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// A failure that leaves the driver unable to go on.
    #[error("{0}")]
    Fatal(String),
}

impl PipelineError {
    /// How the driver treats it: a thread that cannot be spawned or a fatal
    /// error stops the daemon (a supervisor restarts it; restart is crash-safe);
    /// everything else is retried next tick.
    pub fn disposition(&self) -> Disposition {
        match self {
            Self::Spawn { .. } | Self::Fatal(_) => Disposition::Critical,
            Self::Store(_) | Self::Chain(_) | Self::Sector { .. } => Disposition::Temporary,
        }
    }
}

/// Why the driver stopped on its own (the daemon exits non-zero).
#[derive(Debug, thiserror::Error)]
#[error("the driver stopped: {0}")]
pub struct DriverStopped(pub String);

/// Tells the sealing driver that a PoSt is running: it starts no new local
/// task until the PoSt is done (the prover enters it, the driver reads it).
#[derive(Clone, Debug, Default)]
pub struct ProvingGate(Arc<AtomicUsize>);

impl ProvingGate {
    /// Whether a PoSt is running.
    pub fn busy(&self) -> bool {
        self.0.load(Ordering::Acquire) > 0
    }
    /// Marks a PoSt running until the guard is dropped.
    pub fn enter(&self) -> GateGuard {
        self.0.fetch_add(1, Ordering::AcqRel);
        GateGuard(self.0.clone())
    }
}

/// A PoSt running (see [`ProvingGate::enter`]).
pub struct GateGuard(Arc<AtomicUsize>);

impl Drop for GateGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The driver's settings.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// The data directory (its layout: [`PipelineConfig::sector_dir`] and siblings).
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
    /// While a task kind is paused by a node fault, how often one task probes it.
    pub node_fault_probe: Duration,
    /// Longest pause between ticks when nothing finishes.
    pub tick: Duration,
    /// Remote workers' heartbeats and leases.
    pub workers: WorkersConfig,
    /// How long finished tasks are kept.
    pub history: HistoryConfig,
    /// Proving (PoSt) settings.
    pub proving: crate::config::ProvingConfig,
    /// Batching of sealing messages and the sectors' lifetime.
    pub messages: MessagesConfig,
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
            node_fault_probe: Duration::from_millis(c.retry.node_fault_probe_ms),
            tick: Duration::from_millis(100),
            workers: c.workers.clone(),
            history: c.history,
            proving: c.proving,
            messages: c.messages,
        }
    }
}

/// The driver.
pub struct Pipeline {
    ledger: SharedLedger,
    engine: Arc<dyn ProofEngine>,
    verifier: Arc<dyn SealVerifier>,
    dispatcher: Arc<dyn Dispatcher>,
    config: PipelineConfig,
    running: HashMap<u64, Running>,
    /// Cancelled remote tasks whose worker was told to drop them.
    told_cancelled: std::collections::HashSet<u64>,
    /// When remote tasks were last swept (ms).
    swept_ms: Option<i64>,
    done_tx: Sender<(u64, TaskResult)>,
    done_rx: Receiver<(u64, TaskResult)>,
    progress: ProgressMap,
    /// Task kinds paused by a fault of the node.
    paused: PauseMap,
    /// Busy while a PoSt runs: no new local task starts then.
    proving: ProvingGate,
    last_error: HashMap<u64, String>,
    /// The last error of sending batches, logged once.
    batch_error: Option<String>,
    /// Set by a critical failure: the driver stops at the end of the tick.
    fatal: Option<String>,
    /// Paused task kinds with a probe task running.
    probing: std::collections::HashSet<TaskKind>,
    /// Open tasks and workers as read by a scheduling pass that changed
    /// nothing, so the sectors still waiting for a slot in this tick share
    /// one read.
    commit_view: Option<(Vec<TaskRow>, Vec<WorkerRow>)>,
    /// Sectors of this tick with a ticket, waiting for PC1 (number, size, ticket).
    pc1_ready: Vec<(u64, SectorSize, Randomness)>,
    /// When finished tasks were last pruned (ms).
    pruned_ms: Option<i64>,
    /// The row the last event of this step left (see [`Pipeline::step_on`]).
    last_applied: std::cell::RefCell<Option<SectorRow>>,
}

impl Pipeline {
    /// A driver over `ledger`, running tasks on `engine` and checking proofs
    /// with `verifier` before they are sent.
    pub fn new(
        ledger: SharedLedger,
        engine: Arc<dyn ProofEngine>,
        verifier: Arc<dyn SealVerifier>,
        config: PipelineConfig,
    ) -> Self {
        let (done_tx, done_rx) = channel();
        let timeout = Duration::from_millis(config.workers.dispatch_timeout_ms);
        ledger.store().set_worker_charging(crate::store::WorkerCharging {
            failures_before_bench: config.workers.failures_before_bench,
            bench_ms: config.workers.bench_ms,
        });
        Self {
            ledger,
            engine,
            verifier,
            dispatcher: Arc::new(HttpDispatcher::with_timeout(timeout)),
            config,
            running: HashMap::new(),
            told_cancelled: Default::default(),
            swept_ms: None,
            done_tx,
            done_rx,
            progress: ProgressMap::default(),
            paused: PauseMap::default(),
            proving: Default::default(),
            last_error: HashMap::new(),
            batch_error: None,
            fatal: None,
            pruned_ms: None,
            last_applied: std::cell::RefCell::new(None),
            probing: Default::default(),
            commit_view: None,
            pc1_ready: Vec::new(),
        }
    }

    /// Hands remote tasks to workers with `dispatcher` instead of over HTTP.
    pub fn with_dispatcher(mut self, dispatcher: Arc<dyn Dispatcher>) -> Self {
        self.dispatcher = dispatcher;
        self
    }

    /// Holds new local tasks back while the prover runs a PoSt.
    pub fn with_proving_gate(mut self, gate: ProvingGate) -> Self {
        self.proving = gate;
        self
    }

    /// Progress of running tasks (shared with status views).
    pub fn progress(&self) -> ProgressMap {
        self.progress.clone()
    }

    /// Task kinds paused by a node fault (shared with status views).
    pub fn paused(&self) -> PauseMap {
        self.paused.clone()
    }

    /// Ticks until `stop` is set, or until a critical failure stops the driver
    /// (the `Err`). Running tasks are not waited for: their sectors resume
    /// from the database on the next start.
    pub fn run(mut self, stop: &AtomicBool) -> Result<(), DriverStopped> {
        let mut outcome = Ok(());
        while !stop.load(Ordering::Relaxed) {
            crate::failpoints::panic_point!("driver:tick");
            self.tick();
            if let Some(reason) = self.fatal.take() {
                outcome = Err(DriverStopped(reason));
                break;
            }
            self.await_task(self.config.tick);
        }
        self.cancel_all();
        outcome
    }

    /// Waits up to `timeout` for a running task to finish and records its outcome.
    pub fn await_task(&mut self, timeout: Duration) {
        if let Ok((number, result)) = self.done_rx.recv_timeout(timeout) {
            self.finish(number, result);
        }
    }

    fn cancel_all(&self) {
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
        if self.fatal.is_some() {
            return;
        }
        self.commit_view = None;
        self.prune_history();
        let rows = match self.ledger.store().active_sectors() {
            Ok(rows) => rows,
            Err(e) => {
                warn!(error = %e, "cannot list sectors");
                return;
            }
        };
        // A running task whose sector left the work (aborted by the operator) is cancelled.
        let gone: Vec<u64> =
            self.running.keys().copied().filter(|n| !rows.iter().any(|r| r.number == *n)).collect();
        for n in gone {
            self.cancel(n);
        }
        let committing: Vec<u64> = rows
            .iter()
            .filter(|r| r.lifecycle.state == crate::lifecycle::SectorState::Committing)
            .map(|r| r.number)
            .collect();
        self.sweep_remote(&committing, self.ledger.now_ms());
        self.pc1_ready = rows
            .iter()
            .filter(|r| {
                r.lifecycle.state == crate::lifecycle::SectorState::Unsealed
                    && !self.running.contains_key(&r.number)
            })
            .filter_map(|r| r.ticket.map(|t| (r.number, r.sector_size, t)))
            .collect();
        for row in &rows {
            let span = info_span!("sector", number = row.number);
            let _g = span.enter();
            match self.step_on(row) {
                Ok(()) => {
                    self.last_error.remove(&row.number);
                }
                Err(e) if e.disposition() == Disposition::Critical => {
                    error!(state = %row.lifecycle.state, error = %e, "critical failure; stopping the driver");
                    self.fatal = Some(e.to_string());
                    return;
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
            if self.fatal.is_some() {
                return;
            }
        }
        let span = info_span!("batches");
        let _g = span.enter();
        match self.send_batches(self.ledger.now_ms()) {
            Ok(()) => self.batch_error = None,
            Err(e) => {
                let text = e.to_string();
                if self.batch_error.as_ref() != Some(&text) {
                    warn!(error = %text, "cannot send a batch; will retry");
                    self.batch_error = Some(text);
                }
            }
        }
    }

    /// Steps `row`, and steps the sector again while a step moves it to
    /// another state (at most a few times): a sector whose seed arrives has
    /// its C2 scheduled in the same tick, not one tick of every other
    /// sector's work later.
    fn step_on(&mut self, row: &SectorRow) -> Result<(), PipelineError> {
        const MAX_STEPS: usize = 4;
        self.last_applied.replace(None);
        self.step(row, self.ledger.now_ms())?;
        let mut state = row.lifecycle.state;
        for _ in 1..MAX_STEPS {
            let Some(next) = self.last_applied.take() else { break };
            if self.fatal.is_some() || self.running.contains_key(&row.number) || next.lifecycle.state == state
            {
                break;
            }
            state = next.lifecycle.state;
            self.step(&next, self.ledger.now_ms())?;
        }
        Ok(())
    }

    /// Deletes finished tasks older than `history.tasks_keep_ms`, at most hourly.
    fn prune_history(&mut self) {
        const EVERY_MS: i64 = 3_600_000;
        let now = self.ledger.now_ms();
        if self.pruned_ms.is_some_and(|t| now - t < EVERY_MS) {
            return;
        }
        self.pruned_ms = Some(now);
        let keep = i64::try_from(self.config.history.tasks_keep_ms).unwrap_or(i64::MAX);
        match self.ledger.store().prune_tasks(now.saturating_sub(keep)) {
            Ok(0) => {}
            Ok(n) => info!(tasks = n, "pruned finished tasks"),
            Err(e) => warn!(error = %e, "cannot prune finished tasks"),
        }
        self.sweep_result_files();
    }

    /// Removes result files no open task refers to and older than an hour (a
    /// delivery in progress is younger): results of tasks cancelled after
    /// their worker delivered, or delivered just before a crash.
    fn sweep_result_files(&self) {
        const AGE: Duration = Duration::from_secs(3_600);
        let Ok(entries) = std::fs::read_dir(self.config.task_results_dir()) else { return };
        let kept: Result<Vec<PathBuf>, _> = {
            let store = self.ledger.store();
            store.open_tasks().and_then(|open| {
                let results = open.iter().map(|t| store.task_result(t.id));
                results.filter_map(Result::transpose).map(|o| o.map(|o| o.path)).collect()
            })
        };
        let Ok(kept) = kept else { return warn!("cannot list open tasks; result files left as they are") };
        for entry in entries.flatten() {
            let path = entry.path();
            let old =
                entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|a| a > AGE));
            if old && !kept.contains(&path) {
                match layout::remove_path(&path) {
                    Ok(()) => info!(file = %path.display(), "removed a result no task is waiting for"),
                    Err(e) => warn!(error = %e, "cannot remove a stale result file"),
                }
            }
        }
    }

    /// Whether any task is running.
    pub fn busy(&self) -> bool {
        !self.running.is_empty()
    }

    fn apply(&self, number: u64, event: &SectorEvent) -> Result<SectorRow, PipelineError> {
        let row = self.ledger.store().apply(number, event, self.ledger.now_ms())?;
        info!(event = event.name(), state = %row.lifecycle.state, "sector event");
        self.last_applied.replace(Some(row.clone()));
        Ok(row)
    }

    fn identity(&self, number: u64, size: SectorSize) -> SectorIdentity {
        SectorIdentity { sector_size: size, prover_id: self.config.prover_id, sector_id: number }
    }
}

/// Locks a mutex whose data stays consistent if a holder panicked (maps of
/// progress and pauses, rewritten whole per entry).
pub(crate) fn relock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests;
