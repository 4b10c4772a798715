//! Proving on the embedded chain: deadlines, Window PoSt, faults, and the
//! devnet's block elections with their Winning PoSts.
//!
//! The proving period is `deadlines × window` epochs; deadline `d`'s challenge
//! window is epochs `[d·window, (d+1)·window)` of each period, challenged by the
//! randomness of `lookback` epochs before it opens. A sector is assigned a
//! deadline and partition when its ProveCommit lands (filling partitions
//! before starting a new one, which goes to a deadline not about to open). Every
//! window, each partition's active and recovering sectors must be proven by
//! one SubmitWindowedPoSt landing inside the window; a partition with none
//! faults all of them when the window closes. Skipped sectors become faulty;
//! recovering sectors that are proven become active. A faulty sector is left
//! out until declared recovered.
//!
//! Elections: in each epoch the miner wins a block with a fixed chance (from
//! the beacon); a won election wants a Winning PoSt of the sector its
//! randomness picks among the active sectors, within `winning_window` epochs.

use super::{unjudged, EmbeddedChain, Exec, Write, Writes};
use crate::chain::{
    ChainError, ElectionOnChain, HealthEvent, Message, MessageId, PostOnChain, ProvingSectorOnChain,
    RandomnessKind, SectorHealth, EXIT_FORBIDDEN, EXIT_ILLEGAL_ARGUMENT, EXIT_NOT_FOUND,
};
use proofs::post::challenges::{mask_randomness, winning_sector_index};
use proofs::post::{window_sectors_per_partition, PostProof};
use proofs::{Commitment, SectorSize};
use rusqlite::{params, OptionalExtension, Params};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS chain_sectors (
    sector      INTEGER PRIMARY KEY,
    sector_size TEXT NOT NULL,
    comm_r      TEXT NOT NULL,
    deadline    INTEGER NOT NULL,
    partition   INTEGER NOT NULL,
    health      TEXT NOT NULL,
    activation  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS chain_sectors_deadline ON chain_sectors (deadline, partition);
CREATE TABLE IF NOT EXISTS chain_posts (
    open_epoch INTEGER NOT NULL,
    partition  INTEGER NOT NULL,
    deadline   INTEGER NOT NULL,
    message    INTEGER NOT NULL,
    epoch      INTEGER NOT NULL,
    proven     TEXT NOT NULL,
    skipped    TEXT NOT NULL,
    PRIMARY KEY (open_epoch, partition)
);
CREATE TABLE IF NOT EXISTS chain_health (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    epoch  INTEGER NOT NULL,
    sector INTEGER NOT NULL,
    health TEXT NOT NULL,
    why    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chain_health_epoch ON chain_health (epoch);
CREATE INDEX IF NOT EXISTS chain_health_sector ON chain_health (sector, id);
CREATE TABLE IF NOT EXISTS chain_elections (
    epoch   INTEGER PRIMARY KEY,
    sector  INTEGER NOT NULL,
    message INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS chain_cron (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    next_window INTEGER NOT NULL
);
";

type Outcome = Result<Exec, ChainError>;

fn refuse(code: i64, why: String) -> Outcome {
    Ok(Exec::Refused(code, why))
}

/// A sector's new health and the event that records it.
fn health_write(sector: u64, health: SectorHealth, epoch: u64, why: &str) -> Write {
    let why = why.to_string();
    Box::new(move |tx| {
        tx.execute(
            "UPDATE chain_sectors SET health = ?2 WHERE sector = ?1",
            params![sector as i64, health.name()],
        )?;
        tx.execute(
            "INSERT INTO chain_health (epoch, sector, health, why) VALUES (?1, ?2, ?3, ?4)",
            params![epoch as i64, sector as i64, health.name(), why],
        )
        .map(drop)
    })
}

fn health_of(s: &str) -> Option<SectorHealth> {
    match s {
        "active" => Some(SectorHealth::Active),
        "faulty" => Some(SectorHealth::Faulty),
        "recovering" => Some(SectorHealth::Recovering),
        _ => None,
    }
}

fn ids_json(ids: &[u64]) -> String {
    serde_json::to_string(ids).expect("a list of integers serialises")
}

impl EmbeddedChain {
    pub(super) fn corrupt(&self, reason: String) -> ChainError {
        ChainError::Corrupt { at: self.path.display().to_string(), reason }
    }

    /// Proven sectors matching an SQL condition, by sector id.
    pub(super) fn sectors_where(
        &self,
        condition: &str,
        args: impl Params,
    ) -> Result<Vec<ProvingSectorOnChain>, ChainError> {
        type Row = (i64, String, String, i64, i64, String, i64);
        let rows: Vec<Row> = {
            let conn = self.conn();
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT sector, sector_size, comm_r, deadline, partition, health, activation
                     FROM chain_sectors WHERE {condition} ORDER BY sector"
                ))
                .map_err(self.sql("prepare"))?;
            let rows = stmt
                .query_map(args, |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
                })
                .map_err(self.sql("read proving sectors"))?;
            rows.collect::<Result<_, _>>().map_err(self.sql("read proving sectors"))?
        };
        rows.into_iter()
            .map(|(sector, size, comm_r, deadline, partition, health, activation)| {
                let bad =
                    |what: &str, e: String| self.corrupt(format!("proving sector {sector}: {what}: {e}"));
                Ok(ProvingSectorOnChain {
                    sector: sector as u64,
                    sector_size: SectorSize::parse(&size).map_err(|e| bad("size", e.to_string()))?,
                    comm_r: Commitment::from_hex(&comm_r).map_err(|e| bad("comm_r", e.to_string()))?,
                    deadline: deadline as u64,
                    partition: partition as u64,
                    health: health_of(&health).ok_or_else(|| bad("health", health.clone()))?,
                    activation: activation as u64,
                })
            })
            .collect()
    }

    /// The write that schedules a newly proven sector: into the fullest
    /// partition with room, else into a new partition of the least loaded
    /// deadline whose window is not open now or next. (A sector is due in a
    /// window only if it was active at the window's challenge epoch, so
    /// joining a partition whose window is open is safe.) The slot is chosen
    /// inside the message's transaction, so the sectors one message proves
    /// see each other.
    pub(super) fn activate(
        &self,
        sector: u64,
        size: SectorSize,
        comm_r: &Commitment,
        epoch: u64,
    ) -> Result<Write, ChainError> {
        let schedule = self.config.proving;
        let current = schedule.current(epoch).deadline;
        let blocked = [current, (current + 1) % schedule.deadlines];
        let per_partition = window_sectors_per_partition(size) as i64;
        let (size, comm_r) = (size.name(), comm_r.to_hex());
        Ok(Box::new(move |tx| {
            let counts: Vec<(i64, i64, i64)> = {
                let mut stmt = tx.prepare_cached(
                    "SELECT deadline, partition, COUNT(*) FROM chain_sectors GROUP BY deadline, partition",
                )?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                rows.collect::<Result<_, _>>()?
            };
            let allowed = |d: i64| schedule.deadlines <= 2 || !blocked.contains(&(d as u64));
            let fill = counts
                .iter()
                .filter(|(_, _, n)| *n < per_partition)
                .max_by_key(|(d, p, n)| (*n, -d, -p))
                .map(|(d, p, _)| (*d, *p));
            let (deadline, partition) = match fill {
                Some(slot) => slot,
                None => {
                    let load = |d: i64| counts.iter().filter(|c| c.0 == d).map(|c| c.2).sum::<i64>();
                    let d = (0..schedule.deadlines as i64)
                        .filter(|&d| allowed(d))
                        .min_by_key(|&d| (load(d), d))
                        .unwrap_or(0);
                    let next = counts.iter().filter(|c| c.0 == d).map(|c| c.1 + 1).max().unwrap_or(0);
                    (d, next)
                }
            };
            tx.execute(
                "INSERT OR REPLACE INTO chain_sectors
                 (sector, sector_size, comm_r, deadline, partition, health, activation)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'active', ?6)",
                params![sector as i64, size, comm_r, deadline, partition, epoch as i64],
            )
            .map(drop)
        }))
    }

    /// Executes a proving message (one with no sealing sector).
    pub(super) fn execute_proving(&self, id: i64, message: &Message, epoch: u64) -> Outcome {
        match message {
            Message::SubmitWindowedPoSt { deadline, open_epoch, partition, skipped, proof } => {
                self.submit_window_post(id, *deadline, *open_epoch, *partition, skipped, proof, epoch)
            }
            Message::DeclareFaults { sectors } => self.declare(sectors, SectorHealth::Faulty, epoch),
            Message::DeclareFaultsRecovered { sectors } => {
                self.declare(sectors, SectorHealth::Recovering, epoch)
            }
            Message::SubmitWinningPoSt { epoch: won, sector, proof } => {
                self.submit_winning_post(id, *won, *sector, proof, epoch)
            }
            Message::PreCommitSectors { .. } | Message::ProveCommitSectors { .. } => {
                unreachable!("sealing messages are executed by `execute`")
            }
        }
    }

    fn declare(&self, sectors: &[u64], to: SectorHealth, epoch: u64) -> Outcome {
        if sectors.is_empty() {
            return refuse(EXIT_ILLEGAL_ARGUMENT, "a declaration of no sector".into());
        }
        let open = self.config.proving.current(epoch).deadline;
        let mut changes = Vec::new();
        for &sector in sectors.iter().collect::<BTreeSet<_>>() {
            let Some(s) = self.sectors_where("sector = ?1", params![sector as i64])?.pop() else {
                return refuse(EXIT_NOT_FOUND, format!("sector {sector} is not proven on chain"));
            };
            if s.deadline == open {
                return refuse(
                    EXIT_ILLEGAL_ARGUMENT,
                    format!(
                        "sector {sector}: the window of its deadline {open} is open; declare before it opens"
                    ),
                );
            }
            match (to, s.health) {
                (SectorHealth::Faulty, SectorHealth::Faulty) => {}
                (SectorHealth::Faulty, _) => changes.push(sector),
                (SectorHealth::Recovering, SectorHealth::Faulty) => changes.push(sector),
                (SectorHealth::Recovering, _) => {
                    return refuse(EXIT_ILLEGAL_ARGUMENT, format!("sector {sector} is not faulty"))
                }
                (SectorHealth::Active, _) => unreachable!("only faults and recoveries are declared"),
            }
        }
        let why = if to == SectorHealth::Faulty { "declared faulty" } else { "declared recovered" };
        Ok(Exec::Done(changes.into_iter().map(|sector| health_write(sector, to, epoch, why)).collect()))
    }

    #[allow(clippy::too_many_arguments)]
    fn submit_window_post(
        &self,
        id: i64,
        deadline: u64,
        open_epoch: u64,
        partition: u64,
        skipped: &[u64],
        proof: &[u8],
        epoch: u64,
    ) -> Outcome {
        let schedule = self.config.proving;
        let Some(window) = schedule.opened_at(open_epoch).filter(|w| w.deadline == deadline) else {
            return refuse(
                EXIT_ILLEGAL_ARGUMENT,
                format!("no window of deadline {deadline} opens at epoch {open_epoch}"),
            );
        };
        if epoch < window.open || epoch >= window.close {
            return refuse(
                EXIT_ILLEGAL_ARGUMENT,
                format!(
                    "the window of deadline {deadline} is epochs {}..{}; the proof landed in {epoch}",
                    window.open, window.close
                ),
            );
        }
        if self.post_row(open_epoch, partition)?.is_some() {
            return refuse(
                EXIT_FORBIDDEN,
                format!("partition {partition} of deadline {deadline} is already proven in this window"),
            );
        }
        let expected = self.sectors_where(
            "deadline = ?1 AND partition = ?2 AND activation <= ?3 AND health != 'faulty'",
            params![deadline as i64, partition as i64, window.challenge as i64],
        )?;
        if expected.is_empty() {
            return refuse(
                EXIT_NOT_FOUND,
                format!("partition {partition} of deadline {deadline} has no sector to prove in this window"),
            );
        }
        let skipped: BTreeSet<u64> = skipped.iter().copied().collect();
        if let Some(stray) = skipped.iter().find(|s| !expected.iter().any(|e| e.sector == **s)) {
            return refuse(
                EXIT_ILLEGAL_ARGUMENT,
                format!("skipped sector {stray} is not due in partition {partition} of deadline {deadline}"),
            );
        }
        let proven: Vec<&ProvingSectorOnChain> =
            expected.iter().filter(|s| !skipped.contains(&s.sector)).collect();
        if let Some(first) = proven.first() {
            // Masked into the field, as the FVM does before verifying.
            let randomness = mask_randomness(&self.derive(RandomnessKind::WindowPost, window.challenge));
            let sectors: Vec<(u64, Commitment)> = proven.iter().map(|s| (s.sector, s.comm_r)).collect();
            let post = PostProof::window(first.sector_size);
            // The slow part: no connection lock is held here.
            match self.verifier.verify_post(&post, &randomness, &sectors, proof) {
                Ok(true) => {}
                Ok(false) => {
                    return refuse(
                        EXIT_ILLEGAL_ARGUMENT,
                        format!("invalid Window PoSt for partition {partition} of deadline {deadline}"),
                    )
                }
                Err(why) => return Ok(unjudged(why, "the Window PoSt")),
            }
        }
        let proven_ids: Vec<u64> = proven.iter().map(|s| s.sector).collect();
        let skipped_ids: Vec<u64> = skipped.iter().copied().collect();
        let (proven_json, skipped_json) = (ids_json(&proven_ids), ids_json(&skipped_ids));
        let mut writes: Writes = vec![Box::new(move |tx| {
            tx.execute(
                "INSERT INTO chain_posts (open_epoch, partition, deadline, message, epoch, proven, skipped)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    open_epoch as i64,
                    partition as i64,
                    deadline as i64,
                    id,
                    epoch as i64,
                    proven_json,
                    skipped_json
                ],
            )
            .map(drop)
        })];
        for s in &proven {
            if s.health == SectorHealth::Recovering {
                writes.push(health_write(s.sector, SectorHealth::Active, epoch, "proven after recovery"));
            }
        }
        let skipped_why = format!("skipped in deadline {deadline}");
        for &sector in &skipped_ids {
            writes.push(health_write(sector, SectorHealth::Faulty, epoch, &skipped_why));
        }
        Ok(Exec::Done(writes))
    }

    fn post_row(&self, open_epoch: u64, partition: u64) -> Result<Option<i64>, ChainError> {
        self.conn()
            .query_row(
                "SELECT message FROM chain_posts WHERE open_epoch = ?1 AND partition = ?2",
                params![open_epoch as i64, partition as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql("read a Window PoSt"))
    }

    /// Faults the partitions of every window that closed by `head` without
    /// their proof.
    pub(super) fn close_windows(&self, head: u64) -> Result<(), ChainError> {
        let schedule = self.config.proving;
        let mut next: u64 = self
            .conn()
            .query_row("SELECT next_window FROM chain_cron WHERE id = 1", [], |r| r.get::<_, i64>(0))
            .optional()
            .map_err(self.sql("read the deadline cron"))?
            .unwrap_or(0) as u64;
        // Each window's faults and the cron's advance past it are one transaction.
        while schedule.nth(next).close <= head {
            let window = schedule.nth(next);
            let due = self.sectors_where(
                "deadline = ?1 AND activation <= ?2 AND health != 'faulty'",
                params![window.deadline as i64, window.challenge as i64],
            )?;
            let partitions: BTreeSet<u64> = due.iter().map(|s| s.partition).collect();
            let mut writes: Writes = Vec::new();
            for p in partitions {
                if self.post_row(window.open, p)?.is_none() {
                    let why =
                        format!("missed deadline {} (window at epoch {})", window.deadline, window.open);
                    for s in due.iter().filter(|s| s.partition == p) {
                        writes.push(health_write(s.sector, SectorHealth::Faulty, window.close, &why));
                    }
                }
            }
            next += 1;
            self.commit(writes, |tx| {
                tx.execute(
                    "INSERT OR REPLACE INTO chain_cron (id, next_window) VALUES (1, ?1)",
                    params![next as i64],
                )
                .map(drop)
            })?;
        }
        Ok(())
    }

    /// The sectors eligible for the election of `epoch`: activated by then
    /// and active as of then (their last health change at or before `epoch`,
    /// if any, left them active), by sector id.
    pub(super) fn eligible_at(&self, epoch: u64) -> Result<Vec<ProvingSectorOnChain>, ChainError> {
        let sectors = self.sectors_where(
            "activation <= ?1 AND COALESCE((SELECT h.health FROM chain_health h
               WHERE h.sector = chain_sectors.sector AND h.epoch <= ?1 ORDER BY h.id DESC LIMIT 1), 'active') = 'active'",
            params![epoch as i64],
        )?;
        Ok(sectors.into_iter().map(|s| ProvingSectorOnChain { health: SectorHealth::Active, ..s }).collect())
    }

    /// Whether the miner won the election of `epoch` (epoch 0 has none).
    pub(super) fn elected(&self, epoch: u64) -> bool {
        let digest = Sha256::new()
            .chain_update(b"kiln devnet election")
            .chain_update(self.beacon)
            .chain_update(epoch.to_le_bytes())
            .finalize();
        let draw = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
        epoch > 0 && draw % 1000 < self.config.proving.election_per_mille
    }

    fn submit_winning_post(&self, id: i64, won: u64, sector: u64, proof: &[u8], epoch: u64) -> Outcome {
        if !self.elected(won) {
            return refuse(
                EXIT_ILLEGAL_ARGUMENT,
                format!("the miner did not win the election of epoch {won}"),
            );
        }
        let limit = won + self.config.proving.winning_window;
        if epoch <= won || epoch > limit {
            return refuse(
                EXIT_ILLEGAL_ARGUMENT,
                format!("the Winning PoSt of epoch {won} had to land by epoch {limit}; it landed in {epoch}"),
            );
        }
        if self.read_elections(won, won)?.first().is_some_and(|e| e.sector.is_some()) {
            return refuse(EXIT_FORBIDDEN, format!("the election of epoch {won} is already answered"));
        }
        let eligible = self.eligible_at(won)?;
        if eligible.is_empty() {
            return refuse(EXIT_ILLEGAL_ARGUMENT, format!("no active sector was eligible at epoch {won}"));
        }
        let randomness = mask_randomness(&self.derive(RandomnessKind::WinningPost, won));
        let index = winning_sector_index(&self.config.prover_id(), &randomness, eligible.len() as u64)
            .map_err(|e| self.corrupt(e.to_string()))?;
        let chosen = &eligible[index as usize];
        if chosen.sector != sector {
            return refuse(
                EXIT_ILLEGAL_ARGUMENT,
                format!("the randomness of epoch {won} chose sector {}, not {sector}", chosen.sector),
            );
        }
        let post = PostProof::winning(chosen.sector_size);
        match self.verifier.verify_post(&post, &randomness, &[(sector, chosen.comm_r)], proof) {
            Ok(true) => {}
            Ok(false) => {
                return refuse(EXIT_ILLEGAL_ARGUMENT, format!("invalid Winning PoSt of sector {sector}"))
            }
            Err(why) => return Ok(unjudged(why, "the Winning PoSt")),
        }
        Ok(Exec::Done(vec![Box::new(move |tx| {
            tx.execute(
                "INSERT INTO chain_elections (epoch, sector, message) VALUES (?1, ?2, ?3)",
                params![won as i64, sector as i64, id],
            )
            .map(drop)
        })]))
    }

    pub(super) fn read_posts(&self, since_open: u64) -> Result<Vec<PostOnChain>, ChainError> {
        type Row = (i64, i64, i64, i64, i64, String, String);
        let rows: Vec<Row> = {
            let conn = self.conn();
            let mut stmt = conn
                .prepare_cached(
                    "SELECT open_epoch, partition, deadline, message, epoch, proven, skipped FROM chain_posts
                     WHERE open_epoch >= ?1 ORDER BY open_epoch, partition",
                )
                .map_err(self.sql("prepare"))?;
            let rows = stmt
                .query_map(params![since_open.min(i64::MAX as u64) as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
                })
                .map_err(self.sql("read Window PoSts"))?;
            rows.collect::<Result<_, _>>().map_err(self.sql("read Window PoSts"))?
        };
        rows.into_iter()
            .map(|(open, partition, deadline, message, epoch, proven, skipped)| {
                let ids = |s: &str| {
                    serde_json::from_str::<Vec<u64>>(s)
                        .map_err(|e| self.corrupt(format!("Window PoSt at epoch {open}: {e}")))
                };
                Ok(PostOnChain {
                    deadline: deadline as u64,
                    open_epoch: open as u64,
                    partition: partition as u64,
                    message: MessageId::from(message as u64),
                    epoch: epoch as u64,
                    proven: ids(&proven)?,
                    skipped: ids(&skipped)?,
                })
            })
            .collect()
    }

    pub(super) fn find_post(&self, open_epoch: u64, partition: u64) -> Result<Option<MessageId>, ChainError> {
        self.conn()
            .query_row(
                "SELECT id FROM chain_messages
                 WHERE json_extract(body, '$.method') = 'SubmitWindowedPoSt'
                   AND json_extract(body, '$.open_epoch') = ?1 AND json_extract(body, '$.partition') = ?2
                   AND (exit_code IS NULL OR exit_code = 0)
                 ORDER BY id DESC LIMIT 1",
                params![open_epoch as i64, partition as i64],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|id| id.map(|id| MessageId::from(id as u64)))
            .map_err(self.sql("look up a Window PoSt message"))
    }

    pub(super) fn read_health_events(&self, since_epoch: u64) -> Result<Vec<HealthEvent>, ChainError> {
        let rows: Vec<(i64, i64, String, String)> = {
            let conn = self.conn();
            let mut stmt = conn
                .prepare_cached(
                    "SELECT epoch, sector, health, why FROM chain_health WHERE epoch >= ?1 ORDER BY id",
                )
                .map_err(self.sql("prepare"))?;
            let rows = stmt
                .query_map(params![since_epoch.min(i64::MAX as u64) as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .map_err(self.sql("read health events"))?;
            rows.collect::<Result<_, _>>().map_err(self.sql("read health events"))?
        };
        rows.into_iter()
            .map(|(epoch, sector, health, why)| {
                Ok(HealthEvent {
                    epoch: epoch as u64,
                    sector: sector as u64,
                    health: health_of(&health)
                        .ok_or_else(|| self.corrupt(format!("health event of sector {sector}: {health}")))?,
                    why,
                })
            })
            .collect()
    }

    pub(super) fn read_elections(&self, from: u64, to: u64) -> Result<Vec<ElectionOnChain>, ChainError> {
        let mut out = Vec::new();
        for epoch in (from..=to).filter(|&e| self.elected(e)) {
            let row: Option<(i64, i64)> = self
                .conn()
                .query_row(
                    "SELECT sector, message FROM chain_elections WHERE epoch = ?1",
                    params![epoch as i64],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(self.sql("read an election"))?;
            out.push(ElectionOnChain {
                epoch,
                sector: row.map(|r| r.0 as u64),
                message: row.map(|r| MessageId::from(r.1 as u64)),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{fake_post, FakeVerifier};
    use super::*;
    use crate::chain::roles::*;
    use crate::chain::{EmbeddedChainConfig, ProvingSchedule, EXIT_OK};
    use crate::clock::ManualClock;

    const BLOCK: i64 = 1_000;

    /// 4 deadlines of 10 epochs, challenge 2 epochs before each opens.
    fn chain(dir: &std::path::Path, election_per_mille: u64) -> EmbeddedChain {
        let config = EmbeddedChainConfig {
            proving: ProvingSchedule {
                deadlines: 4,
                window: 10,
                lookback: 2,
                election_per_mille,
                winning_window: 5,
            },
            ..Default::default()
        };
        EmbeddedChain::open(&dir.join("kiln.db"), config, Box::new(FakeVerifier), &ManualClock::new(0))
            .unwrap()
    }

    /// Lands a message sent at `epoch`; returns its exit code and error.
    fn land(c: &EmbeddedChain, m: Message, epoch: u64) -> (i64, Option<String>) {
        let id = c.send(&m, epoch as i64 * BLOCK).unwrap();
        let r = c.receipt(&id, (epoch as i64 + 1) * BLOCK).unwrap().unwrap();
        (r.exit_code, r.error)
    }

    fn seal(c: &EmbeddedChain, sector: u64, epoch: u64) {
        let pc = Message::PreCommitSectors {
            sectors: vec![crate::chain::PreCommitSector {
                sector,
                sector_size: SectorSize::KiB2,
                comm_r: Commitment([sector as u8; 32]),
                comm_d: Commitment([2; 32]),
                ticket_epoch: epoch.saturating_sub(1),
                expiration: 1_000_000,
            }],
        };
        assert_eq!(land(c, pc, epoch).0, EXIT_OK);
        let prove = Message::ProveCommitSectors {
            sectors: vec![crate::chain::ProveCommitSector {
                sector,
                pieces: vec![],
                proof: b"good".to_vec(),
            }],
        };
        assert_eq!(land(c, prove, epoch + 3).0, EXIT_OK);
    }

    fn health(c: &EmbeddedChain, sector: u64, epoch: u64) -> SectorHealth {
        c.proving_sectors(epoch as i64 * BLOCK)
            .unwrap()
            .into_iter()
            .find(|s| s.sector == sector)
            .unwrap()
            .health
    }

    fn post(deadline: u64, open: u64, partition: u64, skipped: Vec<u64>, proven: &[u64]) -> Message {
        Message::SubmitWindowedPoSt {
            deadline,
            open_epoch: open,
            partition,
            skipped,
            proof: fake_post(proven.iter().copied()),
        }
    }

    #[test]
    fn sectors_fill_partitions_and_must_be_proven_in_their_windows() {
        let tmp = tempfile::tempdir().unwrap();
        let c = chain(tmp.path(), 0);
        // Activated in deadline 0's window: deadlines 0 and 1 are skipped;
        // sectors 1 and 2 fill partition 0 of deadline 2, sector 3 starts the
        // least loaded deadline, 3.
        for s in [1, 2, 3] {
            seal(&c, s, 1 + s);
        }
        let sectors = c.proving_sectors(10 * BLOCK).unwrap();
        let slots: Vec<(u64, u64, u64)> =
            sectors.iter().map(|s| (s.sector, s.deadline, s.partition)).collect();
        assert_eq!(slots, [(1, 2, 0), (2, 2, 0), (3, 3, 0)]);

        // Deadline 2 opens at 20: a proof before it, or of the wrong set, is refused.
        let (code, why) = land(&c, post(2, 20, 0, vec![], &[1, 2]), 15);
        assert_eq!(code, EXIT_ILLEGAL_ARGUMENT, "{why:?}");
        assert_eq!(land(&c, post(2, 20, 0, vec![], &[1]), 20).0, EXIT_ILLEGAL_ARGUMENT);
        assert_eq!(land(&c, post(2, 20, 0, vec![], &[1, 2]), 21).0, EXIT_OK);
        let (code, why) = land(&c, post(2, 20, 0, vec![], &[1, 2]), 22);
        assert_eq!(code, EXIT_FORBIDDEN, "never twice: {why:?}");
        assert!(c.find_post_message(20, 0, 23 * BLOCK).unwrap().is_some());
        // Deadline 3 (30..40) is never proven: sector 3 is faulted when it closes.
        assert_eq!(health(&c, 3, 39), SectorHealth::Active);
        assert_eq!(health(&c, 3, 40), SectorHealth::Faulty);
        assert_eq!(health(&c, 1, 40), SectorHealth::Active);
        let events = c.health_events(0, 40 * BLOCK).unwrap();
        assert!(events.iter().any(|e| e.sector == 3 && e.why.contains("missed deadline 3")), "{events:?}");
        let posts = c.posts_since(0, 40 * BLOCK).unwrap();
        assert_eq!((posts.len(), posts[0].proven.clone()), (1, vec![1, 2]));

        // Next period: sector 2 is skipped (faulty); 3 is declared recovered,
        // proven, active again; a declaration while the window is open is refused.
        assert_eq!(land(&c, Message::DeclareFaultsRecovered { sectors: vec![3] }, 45).0, EXIT_OK);
        assert_eq!(health(&c, 3, 46), SectorHealth::Recovering);
        assert_eq!(land(&c, post(2, 60, 0, vec![2], &[1]), 61).0, EXIT_OK);
        assert_eq!(health(&c, 2, 62), SectorHealth::Faulty);
        let (code, _) = land(&c, Message::DeclareFaults { sectors: vec![1] }, 62);
        assert_eq!(code, EXIT_ILLEGAL_ARGUMENT, "deadline 2's window is open");
        assert_eq!(land(&c, post(3, 70, 0, vec![], &[3]), 71).0, EXIT_OK);
        assert_eq!(health(&c, 3, 72), SectorHealth::Active);
        assert_eq!(land(&c, Message::DeclareFaults { sectors: vec![99] }, 80).0, EXIT_NOT_FOUND);
    }

    #[test]
    fn won_elections_want_the_chosen_sectors_winning_post_in_time() {
        let tmp = tempfile::tempdir().unwrap();
        let c = chain(tmp.path(), 300);
        for s in [1, 2, 3] {
            seal(&c, s, 1 + s);
        }
        let won: Vec<u64> = (10..200).filter(|&e| c.won_election(e)).collect();
        assert!(won.len() > 20 && won.len() < 120, "about 30% of epochs: {}", won.len());
        let e = won[0];
        let head = e + 1;
        let randomness =
            mask_randomness(&c.randomness(RandomnessKind::WinningPost, e, head as i64 * BLOCK).unwrap());
        let index = winning_sector_index(&c.config.prover_id(), &randomness, 3).unwrap();
        let chosen = index + 1;
        let other = if chosen == 1 { 2 } else { 1 };
        let answer = |sector: u64, epoch| Message::SubmitWinningPoSt {
            epoch,
            sector,
            proof: fake_post([sector].into_iter()),
        };
        assert_eq!(land(&c, answer(other, e), head).0, EXIT_ILLEGAL_ARGUMENT, "not the chosen sector");
        assert_eq!(land(&c, answer(chosen, e), head).0, EXIT_OK);
        assert_eq!(land(&c, answer(chosen, e), head + 1).0, EXIT_FORBIDDEN);
        let elections = c.elections(e, e, (head + 2) as i64 * BLOCK).unwrap();
        assert_eq!(elections[0].sector, Some(chosen));
        // Too late, and an epoch not won.
        let late = won[1];
        assert_eq!(land(&c, answer(chosen, late), late + 6).0, EXIT_ILLEGAL_ARGUMENT);
        let lost = (10..200).find(|&x| !c.won_election(x)).unwrap();
        assert_eq!(land(&c, answer(chosen, lost), lost.max(head + 3)).0, EXIT_ILLEGAL_ARGUMENT);
    }

    /// The sectors an election draws from are those active as of its epoch,
    /// for the daemon (`election_sectors`) and for the chain's check alike: a
    /// fault declared after the election does not change the chosen sector.
    /// (The chain checked against the set at execution, refusing the proof:
    /// "the randomness of epoch E chose sector 3, not 2".)
    #[test]
    fn the_elections_sectors_are_those_active_at_its_epoch() {
        let tmp = tempfile::tempdir().unwrap();
        let c = chain(tmp.path(), 500);
        for s in [1, 2, 3] {
            seal(&c, s, 1 + s);
        }
        // An election in deadline 1's window (the sectors sit in deadlines 2
        // and 3), so that the chosen sector's fault can be declared right after.
        let (e, chosen) = (10..19)
            .filter(|&e| c.won_election(e))
            .find_map(|e| {
                let eligible = c.election_sectors(e, (e as i64 + 1) * BLOCK).unwrap();
                let r = mask_randomness(
                    &c.randomness(RandomnessKind::WinningPost, e, (e as i64 + 1) * BLOCK).unwrap(),
                );
                let index = winning_sector_index(&c.config.prover_id(), &r, eligible.len() as u64).unwrap();
                (eligible.len() == 3).then(|| (e, eligible[index as usize].sector))
            })
            .expect("an election in deadline 1's window");
        // The chosen sector is declared faulty in the epoch after the election.
        assert_eq!(land(&c, Message::DeclareFaults { sectors: vec![chosen] }, e).0, EXIT_OK);
        assert_eq!(health(&c, chosen, e + 1), SectorHealth::Faulty);
        // Both sides still see the set as of the election.
        let set: Vec<u64> =
            c.election_sectors(e, (e as i64 + 2) * BLOCK).unwrap().iter().map(|s| s.sector).collect();
        assert_eq!(set, [1, 2, 3]);
        let answer =
            Message::SubmitWinningPoSt { epoch: e, sector: chosen, proof: fake_post([chosen].into_iter()) };
        let (code, why) = land(&c, answer, e + 1);
        assert_eq!(code, EXIT_OK, "{why:?}");
        // A later election leaves the faulty sector out.
        let later = (e + 2..200).find(|&x| c.won_election(x)).unwrap();
        let set: Vec<u64> =
            c.election_sectors(later, (later as i64 + 1) * BLOCK).unwrap().iter().map(|s| s.sector).collect();
        assert!(!set.contains(&chosen), "{set:?}");
        assert!(c.election_sectors(later + 5, (later as i64 + 1) * BLOCK).is_err(), "a future epoch");
    }
}
