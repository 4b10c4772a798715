//! Remote scheduling: a sector's C2 goes to a free worker when there is one
//! (the choice is [`crate::workers::scheduler`]'s), its lease is watched, and
//! a reported proof is verified before it is accepted, like a local one.

use super::engine::EngineError;
use super::tasks::{error_chain, timed, DispatchError, TaskResult};
use super::{Pipeline, PipelineError};
use crate::failpoints::crash_point;
use crate::lifecycle::{Disposition, SectorEvent};
use crate::metrics::Phase;
use crate::store::{SectorRow, TaskKind, TaskRow, TaskState};
use crate::workers::scheduler;
use tracing::{info, warn};

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
        if let Some(task) = open.iter().find(|t| t.sector == n && t.kind == TaskKind::Commit) {
            return self.follow_remote(n, task);
        }
        self.backoff.retain(|_, until| *until > now);
        let lease = self.config.workers.lease_ms;
        let free = scheduler::pick_worker(&workers, &open, row.sector_size, now, lease, &self.backoff);
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
                let Some(proof) = result else {
                    // The worker's failure (its parameters, its memory): it is charged,
                    // not the sector, whose C2 runs again elsewhere.
                    let error = format!(
                        "C2 on worker {worker} failed: {}",
                        task.error.as_deref().unwrap_or("no reason given")
                    );
                    warn!(task = task.id, %error, "remote task failed; the worker is charged, not the sector");
                    self.close_task(task.id, TaskState::Failed, Some(&error));
                    self.charge_worker(&worker, now);
                    return Ok(());
                };
                match self.accept_proof(n, &proof) {
                    Ok(()) => {
                        info!(task = task.id, %worker, "remote proof verified and accepted");
                        self.close_task(task.id, TaskState::Done, None);
                        self.worker_failures.remove(&worker);
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
                self.charge_worker(&worker, now);
            }
            // Heartbeats renew a lease forever: the deadline does not move.
            TaskState::Running if now.saturating_sub(task.created_ms) > self.task_deadline_ms() as i64 => {
                let why = format!(
                    "worker {worker} did not finish within the task deadline of {} ms; the task runs again",
                    self.task_deadline_ms()
                );
                warn!(task = task.id, %worker, "task deadline passed");
                self.close_task(task.id, TaskState::Expired, Some(&why));
                self.charge_worker(&worker, now);
            }
            _ => {}
        }
        Ok(())
    }

    /// A remote C2's deadline, sized from this daemon's sector size.
    fn task_deadline_ms(&self) -> u64 {
        self.config.workers.task_deadline_ms_for(self.config.sector_size)
    }

    /// One more consecutive failure of `worker`; at `failures_before_bench`
    /// it gets no task for `bench_ms` (a proof it delivers clears the count).
    fn charge_worker(&mut self, worker: &str, now: i64) {
        let failures = self.worker_failures.entry(worker.to_string()).or_default();
        *failures += 1;
        if *failures >= self.config.workers.failures_before_bench {
            let until = now.saturating_add(self.config.workers.bench_ms as i64);
            warn!(%worker, failures = *failures, until, "worker benched after consecutive failures");
            self.worker_failures.remove(worker);
            self.backoff.insert(worker.to_string(), until);
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
            (store.start_task(n, TaskKind::Commit, Some(&worker), Some(lease), now)?, key)
        };
        let dir = self.config.sector_dir(n);
        let engine = self.engine.clone();
        let dispatcher = self.dispatcher.clone();
        let ledger = self.ledger.clone();
        self.spawn(n, (TaskKind::Commit, id, Some(worker)), move |_| {
            let c1 = timed(&ledger, Phase::C1, || engine.c1(&dir, &seed));
            let result = c1.map_err(DispatchError::C1).and_then(|c1| {
                dispatcher.send_c2(&url, &key, id, &c1).map_err(|e| DispatchError::Send(e.to_string()))
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
