//! Remote scheduling: a sector's C2 goes to a free worker when there is one
//! (the choice is [`crate::workers::scheduler`]'s), its lease is watched, and
//! a reported proof is verified before it is accepted, like a local one.

use super::engine::EngineError;
use super::tasks::{error_chain, DispatchError, TaskResult};
use super::{Pipeline, PipelineError};
use crate::failpoints::crash_point;
use crate::lifecycle::{Disposition, SectorEvent};
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
                    let error = format!(
                        "C2 on worker {worker} failed: {}",
                        task.error.as_deref().unwrap_or("no reason given")
                    );
                    warn!(task = task.id, %error, "remote task failed");
                    self.close_task(task.id, TaskState::Failed, Some(&error));
                    self.apply(n, &SectorEvent::StepFailed { error, disposition: Disposition::Temporary })?;
                    return Ok(());
                };
                match self.accept_proof(n, &proof) {
                    Ok(()) => {
                        info!(task = task.id, %worker, "remote proof verified and accepted");
                        self.close_task(task.id, TaskState::Done, None);
                        crash_point!("commit:proof-written-unrecorded");
                        self.apply(n, &SectorEvent::ProofReady)?;
                    }
                    Err(e) if e.disposition() == Disposition::Node => {
                        // This node cannot judge the proof (its verifying key, its disk):
                        // not the worker's fault. The C2 runs again once the node is fixed.
                        let error = error_chain(&e);
                        self.close_task(task.id, TaskState::Failed, Some(&error));
                        self.pause(TaskKind::Commit, &error, now);
                    }
                    Err(e) => {
                        let reason = error_chain(&e);
                        let why = format!("task {} (sector {n}): {reason}", task.id);
                        warn!(task = task.id, %worker, %reason, "remote proof rejected; worker marked unhealthy");
                        self.close_task(task.id, TaskState::Rejected, Some(&reason));
                        self.ledger.store().mark_worker_unhealthy(&worker, &why)?;
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
        self.spawn(n, (TaskKind::Commit, id, Some(worker)), move |_| {
            let result = engine.c1(&dir, &seed).map_err(DispatchError::C1).and_then(|c1| {
                dispatcher.send_c2(&url, &key, id, &c1).map_err(|e| DispatchError::Send(e.to_string()))
            });
            TaskResult::Dispatched(result)
        })
    }

    /// Checks a fresh proof against the sector's public values and stores it.
    pub(super) fn accept_proof(&self, number: u64, proof: &[u8]) -> Result<(), EngineError> {
        let temporary = |message: String| EngineError::failed(message, Disposition::Temporary);
        let row = self
            .ledger
            .store()
            .sector(number)
            .map_err(|e| temporary(e.to_string()))?
            .ok_or_else(|| temporary("the sector vanished".into()))?;
        let statement =
            super::statement_of(&row, self.config.prover_id).map_err(|e| temporary(e.to_string()))?;
        match self.verifier.verify(&statement, proof) {
            Ok(true) => {}
            Ok(false) => return Err(temporary("the computed proof does not verify".into())),
            Err(e) => {
                return Err(EngineError::failed(
                    format!("cannot verify the computed proof: {e}"),
                    e.disposition(),
                ))
            }
        }
        let path = self.config.proof_path(number);
        let dir = path.parent().unwrap_or(&self.config.data_dir);
        std::fs::create_dir_all(dir).map_err(|e| {
            EngineError::failed(format!("create {}: {e}", dir.display()), proofs::io_disposition(&e))
        })?;
        proofs::durable::write_file(&path, proof)?;
        Ok(())
    }
}
