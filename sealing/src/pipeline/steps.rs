//! The per-state step: what the driver does for one sector in one tick.

use super::layout::remove_path;
use super::{Pipeline, PipelineError};
use crate::chain::{Message, MessageId, RandomnessKind};
use crate::failpoints::crash_point;
use crate::lifecycle::{Disposition, SectorEvent, SectorState};
use crate::store::{SectorRow, TaskKind};
use proofs::pieces::place_pieces;
use proofs::snark::SealStatement;
use proofs::ProverId;
use std::path::Path;
use tracing::info;

impl Pipeline {
    pub(super) fn step(&mut self, row: &SectorRow, now: i64) -> Result<(), PipelineError> {
        use SectorState as S;
        let n = row.number;
        if self.running.contains_key(&n) {
            if row.lifecycle.state == S::Removing {
                self.cancel(n);
            }
            return Ok(());
        }
        match row.lifecycle.state {
            S::Packing => {
                if self.ready_to_seal(row, now)? {
                    crash_point!("packing:before-start");
                    self.apply(n, &SectorEvent::StartSealing)?;
                }
            }
            S::Unsealed => match (row.ticket, row.ticket_epoch) {
                (Some(ticket), Some(_)) => {
                    if self.pc1_tasks() < self.config.limits.pre_commit && self.may_start(TaskKind::Pc1, now)
                    {
                        self.start_pc1(row, ticket)?;
                    }
                }
                // While PC1 is paused a ticket would only go stale.
                _ if self.is_paused(TaskKind::Pc1) => {}
                _ => {
                    // Drawn where the chain is final, so a reorganisation cannot change it.
                    let chain = self.ledger.chain();
                    let epoch = chain.head(now)?.saturating_sub(chain.ticket_lookback());
                    let ticket = chain.randomness(RandomnessKind::Ticket, epoch, now)?;
                    self.apply(n, &SectorEvent::TicketDrawn { ticket, epoch })?;
                }
            },
            S::Labeled => {
                if self.count(TaskKind::Pc2) < self.config.limits.pc2 && self.may_start(TaskKind::Pc2, now) {
                    self.start_pc2(row)?;
                }
            }
            // Without a message the sector waits for its PreCommit batch (batches.rs).
            S::PreCommitting => {
                if let Some(id) = &row.precommit_message {
                    match self.outcome(id.clone(), "PreCommit", now)? {
                        None => {}
                        Some(Ok(epoch)) => {
                            self.apply(n, &SectorEvent::PreCommitLanded { epoch })?;
                        }
                        // Refused, yet the chain may hold this sector's PreCommit
                        // (one this store lost track of): that is adopted.
                        Some(Err(_)) if self.adopt_precommit(row, now)? => {}
                        // Refused with a ticket now too old to use: a fresh ticket, not a retry.
                        Some(Err(error)) if self.ticket_too_old(row, now)? => {
                            info!(%error, "the PreCommit failed and its ticket is too old to send again; sealing again");
                            self.expire(n)?;
                        }
                        Some(Err(error)) => {
                            self.apply(
                                n,
                                &SectorEvent::StepFailed { error, disposition: Disposition::Temporary },
                            )?;
                        }
                    }
                }
            }
            S::PreCommitted => {
                let chain = self.ledger.chain();
                let (pc, head) = (chain.precommit(n, now)?, chain.head(now)?);
                match pc {
                    None => self.expire(n)?,
                    Some(pc) if head > pc.seed_epoch => {
                        let seed = chain.randomness(RandomnessKind::Seed, pc.seed_epoch, now)?;
                        self.apply(n, &SectorEvent::SeedReady { seed, epoch: pc.seed_epoch })?;
                    }
                    Some(_) => crash_point!("precommitted:waiting-seed"),
                }
            }
            S::Committing => {
                let on_chain = self.ledger.chain().precommit(n, now)?;
                if on_chain.as_ref().is_some_and(|pc| pc.proven && holds(row, pc)) {
                    // Proven on chain already (a ProveCommit this store lost track of).
                    info!("the chain holds this sector proven; adopting it");
                    self.cancel_tasks(n, "the sector is proven on chain")?;
                    self.apply(n, &SectorEvent::ProofReady)?;
                    return Ok(());
                }
                if on_chain.is_none() {
                    // The prove-commit window passed (a worker pinning the task with
                    // heartbeats cannot hold the sector past it): seal again.
                    self.cancel_tasks(n, "the PreCommit expired")?;
                    return self.expire(n);
                }
                let proof = self.config.proof_path(n);
                if proof.exists() && self.retried_by_operator(n)? {
                    // The operator's retry proves anew: the proof kept from the
                    // failed attempt goes first (the API only records the retry).
                    self.remove_file(&proof, n)?;
                    self.schedule_commit(row, now)?;
                } else if proof.exists() {
                    // C2 finished before a crash: its verified proof is on disk.
                    info!("reusing the proof computed before the restart");
                    self.close_open_tasks_done(n)?;
                    self.apply(n, &SectorEvent::ProofReady)?;
                } else {
                    self.schedule_commit(row, now)?;
                }
            }
            // Without a message the sector waits for its ProveCommit batch (batches.rs).
            S::CommitWait => {
                if let Some(id) = &row.commit_message {
                    match self.outcome(id.clone(), "ProveCommit", now)? {
                        None => {}
                        Some(Ok(epoch)) => {
                            self.apply(n, &SectorEvent::CommitLanded { epoch })?;
                            self.drop_landed_proof(n);
                        }
                        Some(Err(_)) if self.adopt_commit(row, now)? => {}
                        Some(Err(reason)) => {
                            self.apply(n, &SectorEvent::CommitRejected { reason })?;
                        }
                    }
                }
            }
            S::FinalizeSector => {
                // Landed: the proof file is not needed (a data directory from before kept it).
                self.drop_landed_proof(n);
                if self.count(TaskKind::Finalize) < self.config.limits.finalize
                    && self.may_start(TaskKind::Finalize, now)
                {
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
                if row.lifecycle.state == S::PreCommitFailed && self.ticket_too_old(row, now)? {
                    return self.expire(n);
                }
                if matches!(row.lifecycle.state, S::ComputeProofFailed | S::CommitFailed) {
                    if self.ledger.chain().precommit(n, now)?.is_none() {
                        return self.expire(n);
                    }
                    // The retry computes a new proof.
                    self.remove_file(&self.config.proof_path(n), n)?;
                }
                self.apply(n, &SectorEvent::Retry)?;
            }
            S::Removing => {
                // Cancelled when the removal was asked for; this catches a task
                // recorded since. Remote ones keep their slot until their worker lets go.
                self.cancel_tasks(n, "the sector is being removed")?;
                let dir = self.config.sector_dir(n);
                remove_path(dir.root()).map_err(|reason| PipelineError::Sector { number: n, reason })?;
                self.remove_file(&self.config.proof_path(n), n)?;
                let pieces = self.ledger.store().pieces(n)?;
                for p in pieces {
                    self.remove_file(&self.config.piece_copy(&p.path), n)?;
                }
                self.declare_removed_faulty(n, now);
                self.apply(n, &SectorEvent::RemoveDone)?;
            }
            S::Proving | S::Failed | S::Removed => {}
        }
        Ok(())
    }

    /// A sector removed while the chain holds it proven (a forced removal)
    /// is declared faulty at once, unless its window is open (its PoSt then
    /// skips it); best effort, as the prover's check before its window
    /// declares it too.
    fn declare_removed_faulty(&self, n: u64, now: i64) {
        let chain = self.ledger.chain();
        let on_chain = chain.proving_sectors(now).map(|all| all.into_iter().find(|s| s.sector == n));
        let Ok(Some(s)) = on_chain else { return };
        if s.health == crate::chain::SectorHealth::Faulty {
            return;
        }
        let open = chain.head(now).map(|head| chain.proving_schedule().current(head).deadline);
        if open.as_ref().is_ok_and(|&d| d == s.deadline) {
            return info!(deadline = s.deadline, "removed while its window is open: its PoSt skips it");
        }
        match chain.send(&Message::DeclareFaults { sectors: vec![n] }, now) {
            Ok(id) => info!(message = %id, "removed while proven on chain: declared faulty"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot declare the removed sector faulty; the prover's check will")
            }
        }
    }

    /// A sector whose PreCommit the chain already holds live (the same
    /// comm_r and comm_d) is pre-committed, whatever became of the message
    /// this store recorded: it is adopted, never sent again (which the chain
    /// would refuse). True when it was.
    pub(super) fn adopt_precommit(&self, row: &SectorRow, now: i64) -> Result<bool, PipelineError> {
        let Some(pc) = self.ledger.chain().precommit(row.number, now)? else { return Ok(false) };
        if !holds(row, &pc) {
            return Ok(false);
        }
        info!(epoch = pc.epoch, "the chain holds this sector's PreCommit; adopting it");
        self.apply(row.number, &SectorEvent::PreCommitLanded { epoch: pc.epoch })?;
        Ok(true)
    }

    /// A sector the chain holds proven is committed: adopted, whatever became
    /// of its ProveCommit message. True when it was.
    pub(super) fn adopt_commit(&self, row: &SectorRow, now: i64) -> Result<bool, PipelineError> {
        let Some(pc) = self.ledger.chain().precommit(row.number, now)? else { return Ok(false) };
        let Some(epoch) = pc.proven_epoch.filter(|_| pc.proven && holds(row, &pc)) else { return Ok(false) };
        info!(epoch, "the chain holds this sector proven; adopting it");
        self.apply(row.number, &SectorEvent::CommitLanded { epoch })?;
        self.drop_landed_proof(row.number);
        Ok(true)
    }

    /// What became of recorded message `id`: nothing yet, landed in an epoch,
    /// or failed (why).
    fn outcome(
        &self,
        id: MessageId,
        what: &str,
        now: i64,
    ) -> Result<Option<Result<u64, String>>, PipelineError> {
        let receipt = self.ledger.chain().receipt(&id, now)?;
        Ok(receipt.map(|r| {
            if r.exit_code == 0 {
                Ok(r.epoch)
            } else {
                let name = crate::chain::exit_code_name(r.exit_code).unwrap_or("unknown");
                Err(format!(
                    "{what} message {id} failed with exit code {} ({name}): {}",
                    r.exit_code,
                    r.error.unwrap_or_default()
                ))
            }
        }))
    }

    /// Whether the sector's ticket is too old for a PreCommit to land now.
    fn ticket_too_old(&self, row: &SectorRow, now: i64) -> Result<bool, PipelineError> {
        let Some(ticket_epoch) = row.ticket_epoch else { return Ok(false) };
        let chain = self.ledger.chain();
        Ok(chain.head(now)?.saturating_sub(ticket_epoch) >= chain.max_ticket_age())
    }

    /// Whether the sector's last event is an operator's retry (read only when a
    /// proof file is found at Committing, which is rare).
    fn retried_by_operator(&self, n: u64) -> Result<bool, PipelineError> {
        let events = self.ledger.store().events(n)?;
        Ok(events.last().is_some_and(|e| matches!(e.event, SectorEvent::OperatorRetry { .. })))
    }

    /// A landed proof is no longer needed: its file goes (best effort; a
    /// later finalize or removal tries again).
    pub(super) fn drop_landed_proof(&self, n: u64) {
        if let Err(reason) = remove_path(&self.config.proof_path(n)) {
            tracing::warn!(%reason, "cannot remove the landed proof");
        }
    }

    /// The PreCommit expired: drop the proof and seal again with a new ticket.
    pub(super) fn expire(&self, n: u64) -> Result<(), PipelineError> {
        self.remove_file(&self.config.proof_path(n), n)?;
        self.apply(n, &SectorEvent::PreCommitExpired)?;
        Ok(())
    }

    pub(super) fn remove_file(&self, path: &Path, number: u64) -> Result<(), PipelineError> {
        remove_path(path).map_err(|reason| PipelineError::Sector { number, reason })
    }

    fn ready_to_seal(&self, row: &SectorRow, now: i64) -> Result<bool, PipelineError> {
        if row.pledged {
            return Ok(true);
        }
        let pieces = self.ledger.store().pieces(row.number)?;
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
}

/// Whether the chain's PreCommit `pc` is this sector's own (its comm_r and comm_d).
fn holds(row: &SectorRow, pc: &crate::chain::PreCommitOnChain) -> bool {
    row.comm_r == Some(pc.comm_r) && row.comm_d == Some(pc.comm_d)
}

fn missing(number: u64, what: &str) -> PipelineError {
    PipelineError::Sector { number, reason: format!("no {what} recorded") }
}

/// The public values a sector's proof is checked against.
pub fn statement_of(row: &SectorRow, prover_id: ProverId) -> Result<SealStatement, PipelineError> {
    let n = row.number;
    Ok(SealStatement {
        sector_size: row.sector_size,
        prover_id,
        sector_id: n,
        ticket: row.ticket.ok_or_else(|| missing(n, "ticket"))?,
        seed: row.seed.ok_or_else(|| missing(n, "seed"))?,
        comm_d: row.comm_d.ok_or_else(|| missing(n, "comm_d"))?,
        comm_r: row.comm_r.ok_or_else(|| missing(n, "comm_r"))?,
    })
}
