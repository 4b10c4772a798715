//! Remote scheduling: a sector's C2 goes to a free worker when there is one
//! (the choice is [`crate::workers::scheduler`]'s), its lease is watched, and
//! a reported proof is verified before it is accepted, like a local one.

use super::engine::EngineError;
use super::tasks::{error_chain, timed, DispatchError, Running, TaskResult};
use super::{Pipeline, PipelineError};
use crate::failpoints::crash_point;
use crate::lifecycle::{Disposition, SectorEvent};
use crate::metrics::Phase;
use crate::store::{SectorRow, TaskKind, TaskRow, TaskState};
use crate::workers::dispatch::DispatchError as DispatchFailure;
use crate::workers::scheduler;
use tracing::{info, warn};
use wire::worker::{RemoteTask, TaskEnvelope};

impl Pipeline {
    /// A sector needing its proof: follows its remote task if one is open,
    /// else starts one on the least loaded free worker, else here if the
    /// local limit allows.
    pub(super) fn schedule_commit(&mut self, row: &SectorRow, now: i64) -> Result<(), PipelineError> {
        let n = row.number;
        let (open, workers) = match self.commit_view.take() {
            Some(view) => view,
            None => {
                let store = self.ledger.store();
                (store.open_tasks()?, store.workers()?)
            }
        };
        if let Some(task) =
            open.iter().find(|t| t.sector == Some(n) && t.kind == TaskKind::Commit && t.state.is_open())
        {
            return self.follow_remote(n, task);
        }
        let lease = self.config.workers.lease_ms;
        let free = scheduler::pick_worker(&workers, &open, row.sector_size, now, lease);
        if let Some(w) = free {
            if self.remote_c1s() >= self.config.limits.remote_c1 {
                // Wait for a C1 slot rather than prove here: the worker is free.
                self.commit_view = Some((open, workers));
                return Ok(());
            }
            if self.may_start(TaskKind::Commit, now) {
                let (name, url) = (w.name.clone(), w.url.clone());
                return self.start_remote_commit(row, name, url, now);
            }
            return Ok(());
        }
        if self.count(TaskKind::Commit) < self.config.limits.commit {
            if self.may_start(TaskKind::Commit, now) {
                self.start_commit(row)?;
            }
        } else {
            self.commit_view = Some((open, workers));
        }
        Ok(())
    }

    /// An open commit task not running in this process: judge a reported
    /// result, expire a lapsed lease, or wait.
    fn follow_remote(&mut self, n: u64, task: &TaskRow) -> Result<(), PipelineError> {
        let Some(worker) = task.worker.clone() else {
            // A local task whose thread is gone (recovery closes these at start).
            self.close_task(task.id, TaskState::Interrupted, Some("its thread is gone"));
            return Ok(());
        };
        let now = self.ledger.now_ms();
        match task.state {
            TaskState::Reported => {
                let result = self.ledger.store().task_result(task.id)?;
                let Some(output) = result else {
                    // The worker's failure (its parameters, its memory): it is charged,
                    // not the sector, whose C2 runs again elsewhere.
                    let error = format!(
                        "C2 on worker {worker} failed: {}",
                        task.error.as_deref().unwrap_or("no reason given")
                    );
                    warn!(task = task.id, %error, "remote task failed; the worker is charged, not the sector");
                    self.close_task(task.id, TaskState::Failed, Some(&error));
                    self.charge_worker(&worker, &error, now);
                    return Ok(());
                };
                let limit = RemoteTask::C2.max_result_bytes();
                let judged = match output.read(limit) {
                    Ok(proof) => self.accept_proof(n, &proof),
                    // Recorded, then lost on this node's disk: not the worker's fault.
                    Err(e) => Err(Refusal::Failed(EngineError::failed(e, Disposition::Temporary))),
                };
                match judged {
                    Ok(()) => {
                        info!(task = task.id, %worker, "remote proof verified and accepted");
                        self.close_task(task.id, TaskState::Done, None);
                        if let Err(e) = self.ledger.store().worker_delivered(&worker) {
                            warn!(%worker, error = %e, "cannot clear the worker's failures");
                        }
                        // A probe may have gone to a worker: its proof shows the kind works again.
                        self.resume(TaskKind::Commit);
                        crash_point!("commit:proof-written-unrecorded");
                        self.apply(n, &SectorEvent::ProofReady)?;
                    }
                    Err(Refusal::Invalid) => {
                        let why = format!("task {} (sector {n}): {INVALID}", task.id);
                        warn!(task = task.id, %worker, "remote proof rejected; worker marked unhealthy");
                        self.close_task(task.id, TaskState::Rejected, Some(INVALID));
                        self.ledger.store().mark_worker_unhealthy(&worker, &why)?;
                    }
                    Err(Refusal::Failed(e)) => {
                        // This node could not judge or keep the proof: not the worker's fault.
                        let error = error_chain(&e);
                        warn!(task = task.id, %worker, %error, "cannot accept the remote proof");
                        self.close_task(task.id, TaskState::Failed, Some(&error));
                        match e.disposition() {
                            Disposition::Node => self.pause(TaskKind::Commit, &error, now),
                            disposition => {
                                self.apply(n, &SectorEvent::StepFailed { error, disposition })?;
                            }
                        }
                    }
                }
            }
            TaskState::Running if task.lease_until_ms.is_some_and(|until| now > until) => {
                let why = format!("worker {worker} did not renew the lease; the task runs again");
                warn!(task = task.id, %worker, "lease expired");
                self.close_task(task.id, TaskState::Expired, Some(&why));
                self.charge_worker(&worker, &why, now);
            }
            // Heartbeats renew a lease forever: the deadline does not move.
            TaskState::Running if now.saturating_sub(task.created_ms) > self.task_deadline_ms() as i64 => {
                let why = format!(
                    "worker {worker} did not finish within the task deadline of {} ms; the task runs again",
                    self.task_deadline_ms()
                );
                warn!(task = task.id, %worker, "task deadline passed");
                self.close_task(task.id, TaskState::Expired, Some(&why));
                self.charge_worker(&worker, &why, now);
            }
            _ => {}
        }
        Ok(())
    }

    /// A remote C2's deadline, sized from this daemon's sector size.
    fn task_deadline_ms(&self) -> u64 {
        self.config.workers.task_deadline_ms_for(self.config.sector_size)
    }

    /// One more failure of `worker` in a row (the store benches it at
    /// `failures_before_bench`; a proof it delivers clears the count).
    fn charge_worker(&self, worker: &str, why: &str, now: i64) {
        if let Err(e) = self.ledger.store().charge_worker(worker, why, now) {
            warn!(%worker, error = %e, "cannot charge the worker");
        }
    }

    /// A C2 the worker accepted: its lease runs from now, not from the start
    /// of C1. If its sector gave it up meanwhile, the worker holds it anyway:
    /// it keeps the slot until the worker, told now, lets it go.
    pub(super) fn handed_over(&mut self, running: &Running) {
        let now = self.ledger.now_ms();
        let lease = now + self.config.workers.lease_ms as i64;
        let worker = running.worker.as_deref().unwrap_or_default();
        let handed = self.ledger.store().task_handed_over(running.task, lease, now);
        match handed {
            Ok(true) => info!(task = running.task, %worker, "C2 handed to the worker"),
            Ok(false) => {
                info!(task = running.task, %worker, "C2 handed over after it was cancelled; telling the worker");
                self.tell_worker_cancelled(running.task);
            }
            Err(e) => warn!(error = %e, "cannot renew the lease; the worker's heartbeat will"),
        }
    }

    /// A worker that did not take a task: charged (and held off a little)
    /// when it refused or could not be reached; held off only when it said
    /// it was busy; neither when this node could not open the connection.
    pub(super) fn dispatch_failed(&mut self, running: &Running, error: &DispatchFailure) {
        let now = self.ledger.now_ms();
        let worker = running.worker.clone().unwrap_or_default();
        let text = error.to_string();
        warn!(task = running.task, %worker, error = %text, "the worker did not take the task; trying elsewhere");
        self.close_task(running.task, TaskState::Failed, Some(&text));
        if error.is_local() {
            // Out of descriptors here: the node's fault, like a local task's.
            return self.pause(TaskKind::Commit, &text, now);
        }
        if !error.is_busy() {
            self.charge_worker(&worker, &format!("task {}: {text}", running.task), now);
        }
        let pause = self.config.workers.lease_ms.min(30_000) as i64;
        let why = format!("did not take task {}: {text}", running.task);
        if let Err(e) = self.ledger.store().hold_off_worker(&worker, now + pause, &why) {
            warn!(%worker, error = %e, "cannot hold the worker off");
        }
    }

    /// Tells the worker holding cancelled task `id` to drop it, on a thread
    /// of its own (best effort: its next heartbeat is told too).
    pub(super) fn tell_worker_cancelled(&mut self, id: u64) {
        if !self.told_cancelled.insert(id) {
            return;
        }
        let target = {
            let store = self.ledger.store();
            let worker = store.task(id).ok().flatten().and_then(|t| t.worker);
            worker.and_then(|w| {
                let url = store.workers().ok()?.into_iter().find(|r| r.name == w)?.url;
                Some((w.clone(), url, store.dispatch_key(&w).ok()?))
            })
        };
        let Some((worker, url, key)) = target else { return };
        let dispatcher = self.dispatcher.clone();
        let spawned = std::thread::Builder::new().name(format!("cancel-task-{id}")).spawn(move || {
            match dispatcher.cancel(&url, &key, id) {
                Ok(()) => info!(task = id, %worker, "the worker dropped the cancelled task"),
                Err(e) => {
                    info!(task = id, %worker, error = %e, "cannot tell the worker now; its heartbeat will")
                }
            }
        });
        if let Err(e) = spawned {
            warn!(task = id, error = %e, "cannot start a thread to tell the worker");
        }
    }

    /// Once a second: cancelled tasks whose worker stopped renewing them are
    /// let go; workers still holding cancelled tasks are told; a remote task
    /// left open for a sector no longer in Committing is cancelled.
    pub(super) fn sweep_remote(&mut self, committing: &[u64], now: i64) {
        if self.swept_ms.is_some_and(|t| now - t < 1_000) {
            return;
        }
        self.swept_ms = Some(now);
        let open = {
            let mut store = self.ledger.store();
            if let Err(e) = store.lapse_cancelling(now) {
                warn!(error = %e, "cannot let lapsed cancelled tasks go");
            }
            match store.open_tasks() {
                Ok(open) => open,
                Err(e) => return warn!(error = %e, "cannot list open tasks"),
            }
        };
        self.told_cancelled.retain(|id| open.iter().any(|t| t.id == *id));
        for t in &open {
            match (t.state, t.sector) {
                (TaskState::Cancelling, _) => self.tell_worker_cancelled(t.id),
                (_, Some(sector))
                    if t.kind == TaskKind::Commit
                        && t.worker.is_some()
                        && !committing.contains(&sector)
                        && !self.running.contains_key(&sector) =>
                {
                    if let Err(e) = self.cancel_tasks(sector, "its sector no longer needs a proof") {
                        warn!(sector, error = %e, "cannot cancel the sector's tasks");
                    }
                }
                _ => {}
            }
        }
    }

    fn start_remote_commit(
        &mut self,
        row: &SectorRow,
        worker: String,
        url: String,
        now: i64,
    ) -> Result<(), PipelineError> {
        let n = row.number;
        let seed =
            row.seed.ok_or_else(|| PipelineError::Sector { number: n, reason: "no seed recorded".into() })?;
        let (id, key) = {
            let mut store = self.ledger.store();
            let key = store.dispatch_key(&worker)?;
            let lease = now + self.config.workers.lease_ms as i64;
            (store.start_task(Some(n), TaskKind::Commit, Some(&worker), Some(lease), now)?, key)
        };
        let dir = self.config.sector_dir(n);
        let engine = self.engine.clone();
        let dispatcher = self.dispatcher.clone();
        let ledger = self.ledger.clone();
        let envelope = TaskEnvelope { kind: RemoteTask::C2, sector_size: row.sector_size, sector: Some(n) };
        self.spawn(n, (TaskKind::Commit, id, Some(worker)), move |_| {
            let c1 = timed(&ledger, Phase::C1, || engine.c1(&dir, &seed));
            let result = c1.map_err(DispatchError::C1).and_then(|c1| {
                dispatcher.send_task(&url, &key, id, &envelope, &c1).map_err(DispatchError::Send)
            });
            TaskResult::Dispatched(result)
        })
    }

    /// Checks a fresh proof against the sector's public values and stores it.
    pub(super) fn accept_proof(&self, number: u64, proof: &[u8]) -> Result<(), Refusal> {
        let temporary =
            |message: String| Refusal::Failed(EngineError::failed(message, Disposition::Temporary));
        let row = self
            .ledger
            .store()
            .sector(number)
            .map_err(|e| temporary(error_chain(&e)))?
            .ok_or_else(|| temporary("the sector vanished".into()))?;
        let statement =
            super::statement_of(&row, self.config.prover_id).map_err(|e| temporary(e.to_string()))?;
        match self.verifier.verify(&statement, proof) {
            Ok(true) => {}
            Ok(false) => return Err(Refusal::Invalid),
            Err(e) => {
                let why = format!("cannot verify the computed proof: {}", error_chain(&e));
                return Err(Refusal::Failed(EngineError::failed(why, e.disposition())));
            }
        }
        let path = self.config.proof_path(number);
        let dir = path.parent().unwrap_or(&self.config.data_dir);
        proofs::durable::create_dir(dir).map_err(|e| Refusal::Failed(e.into()))?;
        proofs::durable::write_file(&path, proof).map_err(|e| Refusal::Failed(e.into()))
    }
}

/// Why a fresh proof was not accepted.
pub(super) enum Refusal {
    /// It does not verify: whoever computed it is at fault.
    Invalid,
    /// This node could not check or keep it.
    Failed(EngineError),
}

impl Refusal {
    /// As a failure of the task that computed the proof here.
    pub(super) fn into_failure(self) -> EngineError {
        match self {
            Self::Invalid => EngineError::failed(INVALID, Disposition::Temporary),
            Self::Failed(e) => e,
        }
    }
}

const INVALID: &str = "the computed proof does not verify";
