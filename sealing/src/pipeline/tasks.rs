//! The task runner: starting tasks on their own threads within the limits,
//! supervising them (a panic is a failed task, not a dead driver), and turning
//! each outcome into an event by its disposition. A task kind failing with a
//! fault of the node is paused here, charging no sector, until a probe task
//! shows the fault fixed.

use super::engine::{BatchMember, EngineError, PreCommitOutput, PreCommitTask};
use super::{relock, Pipeline, PipelineError};
use crate::failpoints::{crash_point, failing, panic_point};
use crate::ledger::Ledger;
use crate::lifecycle::{Disposition, SectorEvent, SectorState};
use crate::metrics::Phase;
use crate::store::{SectorRow, TaskKind, TaskState};
use proofs::sdr::layers::ProgressPhase;
use proofs::seal::SectorDir;
use proofs::Randomness;
use std::cell::Cell;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{error, info, info_span, warn};
use wire::api::{PausedTasks, TaskProgress};

/// Progress of every running task, by sector.
pub type ProgressMap = Arc<Mutex<HashMap<u64, TaskProgress>>>;

/// Task kinds paused by a fault of the node.
pub type PauseMap = Arc<Mutex<HashMap<TaskKind, PausedTasks>>>;

pub(super) enum TaskResult {
    Pc1(Result<(), EngineError>),
    Pc2(Result<PreCommitOutput, EngineError>),
    Commit(Result<Vec<u8>, EngineError>),
    /// C1 ran here and its output went to the task's worker (or failed to).
    Dispatched(Result<(), DispatchError>),
    Finalize(Result<(), EngineError>),
    /// The task's thread panicked (the message).
    Panicked(String),
}

pub(super) enum DispatchError {
    /// C1 failed: the sector's problem.
    C1(EngineError),
    /// The worker could not be reached or refused the task (the worker's
    /// fault, unless [`crate::workers::dispatch::DispatchError::is_local`]).
    Send(crate::workers::dispatch::DispatchError),
}

pub(super) struct Running {
    pub(super) kind: TaskKind,
    pub(super) cancel: Arc<AtomicBool>,
    /// The task's record.
    pub(super) task: u64,
    /// The remote worker it was handed to.
    pub(super) worker: Option<String>,
    /// The PC1 batch this sector is labeled in.
    pub(super) batch: Option<Arc<Pc1Batch>>,
}

/// Sectors labeled together: their labeling stops only when every one of
/// them is cancelled.
pub(super) struct Pc1Batch {
    members: Vec<u64>,
    pub(super) cancel: AtomicBool,
}

/// An error with its causes (`read FILE: No space left on device`), as events record it.
/// Closes task `id` in `state` and removes the result file its worker
/// delivered, if any: once a result is judged, the record says what happened.
pub(crate) fn close_task(ledger: &Ledger, id: u64, state: TaskState, error: Option<&str>) {
    let output = {
        let mut store = ledger.store();
        let output = store.task_result(id).ok().flatten();
        if let Err(e) = store.finish_task(id, state, error, ledger.now_ms()) {
            return warn!(task = id, error = %e, "cannot record the task's end");
        }
        output
    };
    if let Some(out) = output {
        if let Err(e) = super::layout::remove_path(&out.path) {
            warn!(task = id, error = %e, "cannot remove the task's result file");
        }
    }
}

pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

impl Pipeline {
    /// Tasks of `kind` running in this process (a remote C2 counts only while
    /// its C1 runs here).
    pub(super) fn count(&self, kind: TaskKind) -> usize {
        self.running.values().filter(|r| r.kind == kind && r.worker.is_none()).count()
    }

    /// C1s running here for C2s handed to workers.
    pub(super) fn remote_c1s(&self) -> usize {
        self.running.values().filter(|r| r.kind == TaskKind::Commit && r.worker.is_some()).count()
    }

    /// PC1 tasks running: a batch of sectors is one task.
    pub(super) fn pc1_tasks(&self) -> usize {
        let mut batches: Vec<*const Pc1Batch> =
            self.running.values().filter_map(|r| r.batch.as_ref().map(Arc::as_ptr)).collect();
        batches.sort();
        batches.dedup();
        batches.len()
    }

    /// Cancels sector `n`'s task; a batch stops once all its members are cancelled.
    pub(super) fn cancel(&self, n: u64) {
        let Some(r) = self.running.get(&n) else { return };
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

    /// Whether a task of `kind` may start now: not while a PoSt runs (proving
    /// is time-critical; queued sealing waits); else always, unless the kind
    /// is paused by a node fault; then one probe task per probe interval.
    pub(super) fn may_start(&mut self, kind: TaskKind, now: i64) -> bool {
        if self.proving.busy() {
            return false;
        }
        let mut paused = relock(&self.paused);
        let Some(p) = paused.get_mut(&kind) else { return true };
        // One probe at a time: a slow one (a long C1) is not joined by more.
        if now < p.next_probe_ms || self.probing.contains(&kind) {
            return false;
        }
        self.probing.insert(kind);
        p.next_probe_ms = now.saturating_add(self.config.node_fault_probe.as_millis() as i64);
        info!(kind = kind.name(), reason = %p.reason, "paused task kind: one task probes whether the fault is fixed");
        true
    }

    /// Pauses `kind` after a fault of the node: no sector is charged, and the
    /// kind waits for a probe to succeed.
    pub(super) fn pause(&self, kind: TaskKind, reason: &str, now: i64) {
        let next_probe_ms = now.saturating_add(self.config.node_fault_probe.as_millis() as i64);
        let mut paused = relock(&self.paused);
        let since_ms = paused.get(&kind).map_or(now, |p| p.since_ms);
        if paused.get(&kind).is_none_or(|p| p.reason != reason) {
            error!(kind = kind.name(), %reason, "a fault of this node: tasks of this kind are paused until it is fixed");
        }
        paused.insert(kind, PausedTasks { kind, reason: reason.into(), since_ms, next_probe_ms });
    }

    /// Whether `kind` is paused by a node fault.
    pub(super) fn is_paused(&self, kind: TaskKind) -> bool {
        relock(&self.paused).contains_key(&kind)
    }

    /// A task of `kind` ran without a node fault: the kind is no longer paused.
    pub(super) fn resume(&self, kind: TaskKind) {
        if relock(&self.paused).remove(&kind).is_some() {
            info!(kind = kind.name(), "the node fault is fixed: tasks of this kind run again");
        }
    }

    /// Records a task of `kind` for sector `number` starting here.
    fn record_task(&self, number: u64, kind: TaskKind) -> Result<u64, PipelineError> {
        Ok(self.ledger.store().start_task(Some(number), kind, None, None, self.ledger.now_ms())?)
    }

    pub(super) fn close_task(&self, id: u64, state: TaskState, error: Option<&str>) {
        close_task(&self.ledger, id, state, error);
    }

    /// Closes sector `number`'s open tasks as done (its proof is on disk).
    pub(super) fn close_open_tasks_done(&self, number: u64) -> Result<(), PipelineError> {
        let now = self.ledger.now_ms();
        let mut store = self.ledger.store();
        for t in store.open_tasks()?.into_iter().filter(|t| t.sector == Some(number) && t.state.is_open()) {
            store.finish_task(t.id, TaskState::Done, None, now)?;
        }
        Ok(())
    }

    /// Stops sector `number`'s open tasks (`why`); a remote one keeps its
    /// worker's slot until the worker, told now, lets it go.
    pub(super) fn cancel_tasks(&mut self, number: u64, why: &str) -> Result<(), PipelineError> {
        let now = self.ledger.now_ms();
        let cancelling = self.ledger.store().cancel_sector_tasks(number, why, now)?;
        for id in cancelling {
            self.tell_worker_cancelled(id);
        }
        Ok(())
    }

    fn track(&self, number: u64, kind: TaskKind) {
        relock(&self.progress).insert(
            number,
            TaskProgress {
                task: kind,
                phase: None,
                layer: None,
                done: 0,
                total: 0,
                started_ms: self.ledger.now_ms(),
            },
        );
    }

    /// Starts a thread named after the task; a failure to start is the driver's
    /// (critical: the daemon stops and a supervisor restarts it).
    fn start_thread(
        &self,
        number: u64,
        name: String,
        body: impl FnOnce() + Send + 'static,
    ) -> Result<(), PipelineError> {
        let refused = failing!("driver:spawn");
        let spawned = if refused {
            Err(std::io::Error::other("failpoint driver:spawn"))
        } else {
            // Sealing yields the cores to a PoSt in its deadline.
            std::thread::Builder::new()
                .name(name)
                .spawn(move || {
                    proofs::priority::lower_thread_priority();
                    body()
                })
                .map(drop)
        };
        spawned.map_err(|source| PipelineError::Spawn { number, source })
    }

    pub(super) fn spawn(
        &mut self,
        number: u64,
        (kind, task, worker): (TaskKind, u64, Option<String>),
        work: impl FnOnce(&AtomicBool) -> TaskResult + Send + 'static,
    ) -> Result<(), PipelineError> {
        let cancel = Arc::new(AtomicBool::new(false));
        let flag = cancel.clone();
        let tx = self.done_tx.clone();
        let span =
            info_span!("task", id = task, sector = number, kind = kind.name(), worker = worker.as_deref());
        info!(parent: &span, "task started");
        let body = move || {
            let _g = span.enter();
            let result = catch_unwind(AssertUnwindSafe(|| {
                panic_point!("task:run");
                work(&flag)
            }))
            .unwrap_or_else(|p| TaskResult::Panicked(panic_message(p.as_ref())));
            let _ = tx.send((number, result));
        };
        if let Err(e) = self.start_thread(number, format!("sector-{number}-{}", kind.name()), body) {
            self.close_task(task, TaskState::Failed, Some(&e.to_string()));
            return Err(e);
        }
        self.track(number, kind);
        self.running.insert(number, Running { kind, cancel, task, worker, batch: None });
        Ok(())
    }

    /// What PC1 and PC2 of sector `n` need: its identity, ticket and pieces.
    fn pre_commit_task(
        &self,
        n: u64,
        size: proofs::SectorSize,
        ticket: Randomness,
    ) -> Result<PreCommitTask, PipelineError> {
        let rows = self.ledger.store().pieces(n)?;
        let pieces = rows.iter().map(|p| self.config.piece_copy(&p.path)).collect();
        let comm_p = rows.iter().map(|p| p.comm_p).collect();
        Ok(PreCommitTask { identity: self.identity(n, size), ticket, pieces, comm_p })
    }

    /// Starts PC1 for `row` and, up to `limits.pc1_batch`, for other sectors of
    /// its size that are ready in this tick: one task labeling them together, each
    /// sector with its own task record and outcome.
    pub(super) fn start_pc1(&mut self, row: &SectorRow, ticket: Randomness) -> Result<(), PipelineError> {
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
        proofs::durable::create_dir(&self.config.sectors_dir()).map_err(|e| PipelineError::Sector {
            number: row.number,
            reason: format!("create the sectors directory: {e:#}"),
        })?;
        let mut members = Vec::with_capacity(chosen.len());
        let mut tasks = Vec::with_capacity(chosen.len());
        for &(n, ticket) in &chosen {
            let task = self.pre_commit_task(n, row.sector_size, ticket)?;
            tasks.push(self.record_task(n, TaskKind::Pc1)?);
            members.push(BatchMember {
                dir: self.config.sector_dir(n),
                task,
                cancel: Arc::new(AtomicBool::new(false)),
            });
        }
        let numbers: Vec<u64> = chosen.iter().map(|(n, _)| *n).collect();
        let batch = Arc::new(Pc1Batch { members: numbers.clone(), cancel: AtomicBool::new(false) });
        let engine = self.engine.clone();
        let progress = self.progress.clone();
        let ledger = self.ledger.clone();
        let tx = self.done_tx.clone();
        let span = info_span!("task", id = tasks[0], sectors = ?numbers, kind = TaskKind::Pc1.name());
        info!(parent: &span, tasks = ?tasks, "PC1 task started");
        let thread_members = members.clone();
        let thread_batch = batch.clone();
        let body = move || {
            let _g = span.enter();
            let (members, batch) = (thread_members, thread_batch);
            let mut reported = vec![false; members.len()];
            let timer = LabelingMeter::new(&ledger, members.len());
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                panic_point!("task:run");
                let mut report = |p: proofs::sdr::layers::Progress| {
                    if p.phase == ProgressPhase::Labeling && p.layer.is_some_and(|l| l >= 2) {
                        crash_mid_labeling(&members, p.layer.unwrap_or(2));
                    }
                    timer.progress(&p);
                    let mut map = relock(&progress);
                    for n in &batch.members {
                        if let Some(t) = map.get_mut(n) {
                            t.phase = Some(p.phase);
                            t.layer = p.layer;
                            t.done = p.done;
                            t.total = p.total;
                        }
                    }
                };
                engine.pc1_batch(&members, &batch.cancel, &mut report, &mut |i, result| {
                    reported[i] = true;
                    if result.is_ok() {
                        timer.done();
                    }
                    let _ = tx.send((members[i].task.identity.sector_id, TaskResult::Pc1(result)));
                });
            }));
            // Every member gets an outcome, or its slot would stay taken.
            let text = match outcome {
                Ok(()) => "the batch ended without this sector's outcome".to_string(),
                Err(p) => panic_message(p.as_ref()),
            };
            for (m, _) in members.iter().zip(&reported).filter(|(_, done)| !**done) {
                let _ = tx.send((m.task.identity.sector_id, TaskResult::Panicked(text.clone())));
            }
        };
        if let Err(e) = self.start_thread(numbers[0], format!("pc1-{}", numbers[0]), body) {
            for &task in &tasks {
                self.close_task(task, TaskState::Failed, Some(&e.to_string()));
            }
            return Err(e);
        }
        for (m, &task) in members.iter().zip(&tasks) {
            let n = m.task.identity.sector_id;
            self.track(n, TaskKind::Pc1);
            self.running.insert(
                n,
                Running {
                    kind: TaskKind::Pc1,
                    cancel: m.cancel.clone(),
                    task,
                    worker: None,
                    batch: Some(batch.clone()),
                },
            );
        }
        Ok(())
    }

    /// Starts PC2 for `row`, whose layers PC1 labeled.
    pub(super) fn start_pc2(&mut self, row: &SectorRow) -> Result<(), PipelineError> {
        let n = row.number;
        let ticket = row
            .ticket
            .ok_or_else(|| PipelineError::Sector { number: n, reason: "no ticket recorded".into() })?;
        let task = self.pre_commit_task(n, row.sector_size, ticket)?;
        let dir = self.config.sector_dir(n);
        let (engine, ledger, progress) = (self.engine.clone(), self.ledger.clone(), self.progress.clone());
        let id = self.record_task(n, TaskKind::Pc2)?;
        self.spawn(n, (TaskKind::Pc2, id, None), move |cancel| {
            let mut report = |p: proofs::sdr::layers::Progress| {
                if let Some(t) = relock(&progress).get_mut(&n) {
                    (t.phase, t.layer, t.done, t.total) = (Some(p.phase), p.layer, p.done, p.total);
                }
            };
            TaskResult::Pc2(timed(&ledger, Phase::Pc2, || engine.pc2(&dir, &task, cancel, &mut report)))
        })
    }

    pub(super) fn start_commit(&mut self, row: &SectorRow) -> Result<(), PipelineError> {
        let n = row.number;
        let seed =
            row.seed.ok_or_else(|| PipelineError::Sector { number: n, reason: "no seed recorded".into() })?;
        let dir = self.config.sector_dir(n);
        let engine = self.engine.clone();
        let ledger = self.ledger.clone();
        let id = self.record_task(n, TaskKind::Commit)?;
        self.spawn(n, (TaskKind::Commit, id, None), move |_| {
            let c1 = timed(&ledger, Phase::C1, || engine.c1(&dir, &seed));
            TaskResult::Commit(c1.and_then(|c1| timed(&ledger, Phase::C2, || engine.c2(&c1))))
        })
    }

    pub(super) fn start_finalize(&mut self, row: &SectorRow) -> Result<(), PipelineError> {
        let dir = self.config.sector_dir(row.number);
        // Committed-capacity sectors hold no data worth keeping unsealed.
        let keep = self.config.packing.keep_unsealed && !row.pledged;
        let engine = self.engine.clone();
        let id = self.record_task(row.number, TaskKind::Finalize)?;
        self.spawn(row.number, (TaskKind::Finalize, id, None), move |_| {
            TaskResult::Finalize(engine.finalize(&dir, keep))
        })
    }

    /// Turns a finished task into its event.
    pub(super) fn finish(&mut self, number: u64, result: TaskResult) {
        let span = info_span!("sector", number);
        let _g = span.enter();
        let Some(running) = self.running.remove(&number) else { return };
        relock(&self.progress).remove(&number);
        self.probing.remove(&running.kind);
        if let TaskResult::Dispatched(Ok(())) = result {
            return self.handed_over(&running);
        }
        let state = self.ledger.store().sector(number).ok().flatten().map(|r| r.lifecycle.state);
        if let Some(why) = match state {
            Some(SectorState::Removing) => Some("the sector is being removed"),
            Some(SectorState::Failed) => Some("the sector was aborted"),
            _ => None,
        } {
            info!(
                task = running.kind.name(),
                why, "task finished for a sector out of the work; result dropped"
            );
            self.close_task(running.task, TaskState::Cancelled, Some(why));
            return;
        }
        let id = running.task;
        let failure = match result {
            TaskResult::Pc1(Ok(())) => {
                self.close_task(id, TaskState::Done, None);
                self.resume(running.kind);
                return self.record(number, SectorEvent::PreCommitted1);
            }
            TaskResult::Pc2(Ok(out)) => {
                self.close_task(id, TaskState::Done, None);
                self.resume(running.kind);
                return self
                    .record(number, SectorEvent::PreCommitted2 { comm_d: out.comm_d, comm_r: out.comm_r });
            }
            TaskResult::Commit(Ok(proof)) => match self.accept_proof(number, &proof) {
                Ok(()) => {
                    self.close_task(id, TaskState::Done, None);
                    self.resume(running.kind);
                    crash_point!("commit:proof-written-unrecorded");
                    return self.record(number, SectorEvent::ProofReady);
                }
                Err(refusal) => refusal.into_failure(),
            },
            TaskResult::Dispatched(Ok(())) => unreachable!("handled above"),
            TaskResult::Dispatched(Err(DispatchError::Send(error))) => {
                return self.dispatch_failed(&running, &error);
            }
            TaskResult::Finalize(Ok(())) => {
                self.close_task(id, TaskState::Done, None);
                self.remove_piece_copies(number);
                self.resume(running.kind);
                crash_point!("finalize:done-unrecorded");
                return self.record(number, SectorEvent::Finalized);
            }
            TaskResult::Panicked(message) => {
                EngineError::failed(format!("the task panicked: {message}"), Disposition::Temporary)
            }
            TaskResult::Dispatched(Err(DispatchError::C1(e)))
            | TaskResult::Pc1(Err(e))
            | TaskResult::Pc2(Err(e))
            | TaskResult::Commit(Err(e))
            | TaskResult::Finalize(Err(e)) => e,
        };
        self.fail(number, &running, &failure);
    }

    /// A failed task, by the failure's disposition.
    fn fail(&mut self, number: u64, running: &Running, failure: &EngineError) {
        let (kind, error, disposition) = (running.kind, error_chain(failure), failure.disposition());
        warn!(task = kind.name(), %error, %disposition, "task failed");
        self.close_task(running.task, TaskState::Failed, Some(&error));
        match disposition {
            Disposition::Node => self.pause(kind, &error, self.ledger.now_ms()),
            Disposition::Critical => {
                error!(task = kind.name(), %error, "a broken invariant; stopping the driver");
                self.fatal = Some(format!("task {} of sector {number}: {error}", running.task));
            }
            Disposition::Temporary | Disposition::Permanent => {
                self.resume(kind);
                self.record(number, SectorEvent::StepFailed { error, disposition });
            }
        }
    }

    /// Drops the daemon's copies of a finalized sector's pieces: its own
    /// unsealed copy (or the replica) holds the data now.
    fn remove_piece_copies(&self, number: u64) {
        let pieces = match self.ledger.store().pieces(number) {
            Ok(p) => p,
            Err(e) => return warn!(error = %e, "cannot list the piece copies to remove"),
        };
        for p in pieces {
            let copy = self.config.piece_copy(&p.path);
            if let Err(e) = std::fs::remove_file(&copy) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    warn!(path = %copy.display(), error = %e, "cannot remove a piece copy");
                }
            }
        }
    }

    /// Applies a task's event; one that cannot be recorded is logged, and the step runs again.
    fn record(&self, number: u64, event: SectorEvent) {
        if let Err(e) = self.apply(number, &event) {
            warn!(error = %e, "cannot record the task's outcome; the step will run again");
        }
    }
}

/// Runs `f`, observing its time as `phase` when it succeeds.
pub(super) fn timed<T, E>(ledger: &Ledger, phase: Phase, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    let start = Instant::now();
    let out = f();
    if out.is_ok() {
        ledger.metrics().phase(phase, start.elapsed().as_secs_f64());
    }
    out
}

/// Times a PC1 batch (until its first sector's outcome) and counts the bytes
/// it labels.
struct LabelingMeter<'a> {
    ledger: &'a Ledger,
    sectors: u64,
    start: Instant,
    timed: Cell<bool>,
    /// The layer being labeled and its nodes done.
    labeling: Cell<(Option<u32>, u64)>,
}

impl<'a> LabelingMeter<'a> {
    fn new(ledger: &'a Ledger, sectors: usize) -> Self {
        Self {
            ledger,
            sectors: sectors as u64,
            start: Instant::now(),
            timed: Cell::new(false),
            labeling: Cell::new((None, 0)),
        }
    }

    fn progress(&self, p: &proofs::sdr::layers::Progress) {
        if p.phase == ProgressPhase::Labeling {
            let (layer, done) = self.labeling.get();
            let before = if layer == p.layer { done } else { 0 };
            // A node is 32 bytes; every sector of the batch labels it.
            let bytes = p.done.saturating_sub(before) * proofs::shape::NODE_SIZE as u64 * self.sectors;
            self.ledger.metrics().labeled(bytes);
            self.labeling.set((p.layer, p.done));
        }
    }

    fn done(&self) {
        if !self.timed.replace(true) {
            self.ledger.metrics().phase(Phase::Pc1, self.start.elapsed().as_secs_f64());
        }
    }
}

/// The `pc1:mid-labeling` crash point: layers are synced and recorded in the
/// background, so it crashes once the earlier layers are recorded, while this
/// one is still being labeled.
fn crash_mid_labeling(members: &[BatchMember], layer: u32) {
    if failing!("pc1:mid-labeling") {
        for m in members {
            wait_for_recorded_layer(&m.dir, layer - 1);
        }
        #[cfg(feature = "failpoints")]
        crate::failpoints::kill_self("pc1:mid-labeling");
    }
}

/// Waits (up to a minute) until the sector's PC1 record lists `layer`.
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
