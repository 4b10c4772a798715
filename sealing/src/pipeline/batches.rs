//! Sealing messages in batches: every sector ready to pre-commit (or, with
//! its proof on disk, to prove) waits until a batch is due, then one message
//! carries the whole batch and every sector records its id.
//!
//! A batch is due when it is full, when its oldest sector has waited long
//! enough, or when waiting longer would leave a sector's ticket (or its
//! PreCommit) less than the slack before it expires. Before a sector joins a
//! batch, a message already carrying it (sent before a crash kept it from
//! being recorded) is adopted, and so is the chain's own record of it: no
//! sector is ever sent twice.

use super::{Pipeline, PipelineError};
use crate::chain::miner_actor::policy::sector_lifetime;
use crate::chain::{Message, PieceRef, PreCommitSector, ProveCommitSector, SealingMethod};
use crate::failpoints::crash_point;
use crate::lifecycle::{Disposition, SectorEvent, SectorState};
use crate::store::SectorRow;
use tracing::{info, info_span, warn};

/// A sector waiting for its batch, and how soon it must go.
struct Waiting<T> {
    number: u64,
    entry: T,
    /// When it became ready (ms).
    since_ms: i64,
    /// Epochs left before its ticket or PreCommit expires.
    epochs_left: u64,
}

impl Pipeline {
    /// Sends the PreCommit and ProveCommit batches that are due.
    pub(super) fn send_batches(&mut self, now: i64) -> Result<(), PipelineError> {
        let rows = self.ledger.store().active_sectors()?;
        let precommits = self.waiting_precommits(&rows, now)?;
        let (max, wait) = (self.config.messages.precommit_batch, self.config.messages.precommit_wait_ms);
        self.send_due(SealingMethod::PreCommit, precommits, max, wait, now, |sectors| {
            Message::PreCommitSectors { sectors }
        })?;
        let commits = self.waiting_commits(&rows, now)?;
        let (max, wait) = (self.config.messages.commit_batch, self.config.messages.commit_wait_ms);
        self.send_due(SealingMethod::ProveCommit, commits, max, wait, now, |sectors| {
            Message::ProveCommitSectors { sectors }
        })
    }

    /// The sectors to pre-commit that no message carries yet.
    fn waiting_precommits(
        &self,
        rows: &[SectorRow],
        now: i64,
    ) -> Result<Vec<Waiting<PreCommitSector>>, PipelineError> {
        let chain = self.ledger.chain();
        let mut out = Vec::new();
        for row in rows.iter().filter(|r| r.lifecycle.state == SectorState::PreCommitting) {
            if row.precommit_message.is_some() || self.running.contains_key(&row.number) {
                continue;
            }
            let _span = info_span!("sector", number = row.number).entered();
            if self.adopt_sent(row, SealingMethod::PreCommit, now)? || self.adopt_precommit(row, now)? {
                continue;
            }
            let entry = match self.precommit_sector(row) {
                Ok(entry) => entry,
                Err(e) => {
                    warn!(error = %e, "cannot pre-commit");
                    continue;
                }
            };
            let age = chain.head(now)?.saturating_sub(entry.ticket_epoch);
            if age >= chain.max_ticket_age() {
                // The actor would refuse it: seal again with a fresh ticket.
                info!(
                    ticket_epoch = entry.ticket_epoch,
                    "the ticket is too old to pre-commit; sealing again"
                );
                self.expire(row.number)?;
                continue;
            }
            let epochs_left = chain.max_ticket_age() - age;
            out.push(Waiting { number: row.number, entry, since_ms: row.updated_ms, epochs_left });
        }
        Ok(out)
    }

    /// The proven sectors to commit that no message carries yet.
    fn waiting_commits(
        &self,
        rows: &[SectorRow],
        now: i64,
    ) -> Result<Vec<Waiting<ProveCommitSector>>, PipelineError> {
        let chain = self.ledger.chain();
        let mut out = Vec::new();
        for row in rows.iter().filter(|r| r.lifecycle.state == SectorState::CommitWait) {
            if row.commit_message.is_some() || self.running.contains_key(&row.number) {
                continue;
            }
            let n = row.number;
            let _span = info_span!("sector", number = n).entered();
            if self.adopt_sent(row, SealingMethod::ProveCommit, now)? || self.adopt_commit(row, now)? {
                continue;
            }
            let proof = match std::fs::read(self.config.proof_path(n)) {
                Ok(proof) => proof,
                // Out of descriptors: this node's trouble, tried again without a charge.
                Err(e) if proofs::out_of_descriptors(&e) => {
                    warn!(error = %e, "cannot read the proof; will retry");
                    continue;
                }
                Err(e) => {
                    let error = format!("proof file {}: {e}", self.config.proof_path(n).display());
                    self.apply(n, &SectorEvent::StepFailed { error, disposition: Disposition::Temporary })?;
                    continue;
                }
            };
            let pieces = self
                .ledger
                .store()
                .pieces(n)?
                .iter()
                .map(|p| PieceRef { comm_p: p.comm_p, padded_size: p.padded_size })
                .collect();
            let Some(pc) = chain.precommit(n, now)? else {
                // Expired: the step at CommitWait sees it and seals again.
                continue;
            };
            let epochs_left = pc.expiry.saturating_sub(chain.head(now)?);
            let entry = ProveCommitSector { sector: n, pieces, proof };
            out.push(Waiting { number: n, entry, since_ms: row.updated_ms, epochs_left });
        }
        Ok(out)
    }

    /// Sends `waiting` in batches of at most `max` if a batch is due.
    fn send_due<T>(
        &self,
        method: SealingMethod,
        mut waiting: Vec<Waiting<T>>,
        max: usize,
        wait_ms: u64,
        now: i64,
        message: impl Fn(Vec<T>) -> Message,
    ) -> Result<(), PipelineError> {
        let slack = self.config.messages.slack_epochs;
        // The most urgent first, then the oldest.
        waiting.sort_by_key(|w| (w.epochs_left, w.since_ms, w.number));
        loop {
            let due = waiting.len() >= max
                || waiting.iter().any(|w| now.saturating_sub(w.since_ms) >= wait_ms as i64)
                || waiting.iter().any(|w| w.epochs_left <= slack);
            if waiting.is_empty() || !due {
                return Ok(());
            }
            let batch: Vec<Waiting<T>> = waiting.drain(..max.min(waiting.len())).collect();
            let numbers: Vec<u64> = batch.iter().map(|w| w.number).collect();
            let sent = message(batch.into_iter().map(|w| w.entry).collect());
            let id = self.ledger.chain().send(&sent, now)?;
            info!(message = %id, sectors = ?numbers, method = method.name(), "sent");
            match method {
                SealingMethod::PreCommit => crash_point!("precommit:sent-unrecorded"),
                SealingMethod::ProveCommit => crash_point!("provecommit:sent-unrecorded"),
            }
            for n in numbers {
                let event = match method {
                    SealingMethod::PreCommit => SectorEvent::PreCommitSent { message: id.clone() },
                    SealingMethod::ProveCommit => SectorEvent::CommitSent { message: id.clone() },
                };
                self.apply(n, &event)?;
            }
        }
    }

    /// Adopts a message that already carries this sector (sent before a
    /// crash kept it from being recorded). True when it did.
    fn adopt_sent(&self, row: &SectorRow, method: SealingMethod, now: i64) -> Result<bool, PipelineError> {
        let Some(id) = self.ledger.chain().find_sent(method, row.number, now)? else { return Ok(false) };
        info!(message = %id, "adopting the message sent before the restart");
        let event = match method {
            SealingMethod::PreCommit => SectorEvent::PreCommitSent { message: id },
            SealingMethod::ProveCommit => SectorEvent::CommitSent { message: id },
        };
        self.apply(row.number, &event)?;
        Ok(true)
    }

    /// The PreCommit entry of a sealed sector: its commitments, ticket, and
    /// the expiration its configured lifetime gives.
    fn precommit_sector(&self, row: &SectorRow) -> Result<PreCommitSector, PipelineError> {
        let n = row.number;
        let missing = |what: &str| PipelineError::Sector { number: n, reason: format!("no {what} recorded") };
        let ticket_epoch = row.ticket_epoch.ok_or_else(|| missing("ticket"))?;
        let (lifetime, _) = sector_lifetime(self.config.messages.sector_lifetime_days);
        Ok(PreCommitSector {
            sector: n,
            sector_size: row.sector_size,
            comm_r: row.comm_r.ok_or_else(|| missing("comm_r"))?,
            comm_d: row.comm_d.ok_or_else(|| missing("comm_d"))?,
            ticket_epoch,
            expiration: ticket_epoch + lifetime,
        })
    }
}
