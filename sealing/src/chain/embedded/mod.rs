//! kiln's embedded devnet chain over SQLite (the sector database's file).
//!
//! Sealing (PreCommit, ProveCommit) is here; proving (deadlines, Window and
//! Winning PoSt, faults) is in [`proving`].

mod proving;

use super::randomness::{digest_of, draw, RandomnessSource};
use super::{
    ChainError, ChainHead, ChainMessages, ChainProving, ElectionOnChain, HealthEvent, Message, MessageId,
    MessageLog, PostOnChain, PreCommitOnChain, PreCommitSector, ProveCommitSector, ProvingSchedule,
    ProvingSectorOnChain, RandomnessKind, Receipt, SealVerifier, SealingMethod, SentMessage, EXIT_FORBIDDEN,
    EXIT_ILLEGAL_ARGUMENT, EXIT_NOT_FOUND, EXIT_OK,
};
use crate::clock::Clock;
use proofs::snark::SealStatement;
use proofs::{Commitment, ProverId, Randomness, SectorSize};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Settings of the embedded chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddedChainConfig {
    /// Milliseconds per epoch.
    pub block_time_ms: u64,
    /// Epochs from a PreCommit landing to its seed (Filecoin's InteractivePoRepDelay).
    pub seed_delay: u64,
    /// Epochs after the PreCommit within which the ProveCommit must land.
    pub prove_commit_window: u64,
    /// Oldest ticket a PreCommit may use, in epochs before it lands.
    pub max_ticket_age: u64,
    /// The miner (f0N) whose sectors this chain verifies.
    pub miner_id: u64,
    /// Deadlines, challenge windows and elections.
    pub proving: ProvingSchedule,
}

impl EmbeddedChainConfig {
    /// The embedded chain's settings in a daemon's configuration.
    pub fn from_config(c: &crate::config::Config) -> Self {
        Self {
            block_time_ms: c.chain.block_time_ms,
            seed_delay: c.chain.seed_delay,
            prove_commit_window: c.chain.prove_commit_window,
            max_ticket_age: c.chain.max_ticket_age,
            miner_id: c.miner_id,
            proving: ProvingSchedule {
                deadlines: c.chain.deadlines,
                window: c.chain.deadline_window,
                lookback: c.chain.challenge_lookback,
                election_per_mille: c.chain.election_per_mille,
                winning_window: c.chain.winning_window,
            },
        }
    }
}

impl EmbeddedChainConfig {
    /// The miner's prover id.
    pub fn prover_id(&self) -> ProverId {
        ProverId::from_actor_id(self.miner_id)
    }
}

impl Default for EmbeddedChainConfig {
    fn default() -> Self {
        Self {
            block_time_ms: 1_000,
            seed_delay: 2,
            prove_commit_window: 300,
            max_ticket_age: 100,
            miner_id: 1000,
            proving: ProvingSchedule::default(),
        }
    }
}

const CHAIN_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS chain_meta (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    genesis_ms INTEGER NOT NULL,
    beacon     BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS chain_messages (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    sent_epoch INTEGER NOT NULL,
    body       TEXT NOT NULL,
    exec_epoch INTEGER,
    exit_code  INTEGER,
    error      TEXT
);
-- The messages awaiting execution, which every call reads: without it each
-- read scanned every message ever sent.
CREATE INDEX IF NOT EXISTS chain_messages_pending ON chain_messages (sent_epoch, id) WHERE exec_epoch IS NULL;
CREATE TABLE IF NOT EXISTS chain_precommits (
    sector       INTEGER PRIMARY KEY,
    sector_size  TEXT NOT NULL,
    comm_r       TEXT NOT NULL,
    comm_d       TEXT NOT NULL,
    ticket_epoch INTEGER NOT NULL,
    epoch        INTEGER NOT NULL,
    seed_epoch   INTEGER NOT NULL,
    expiry       INTEGER NOT NULL,
    proven       INTEGER NOT NULL
);
";

/// kiln's devnet chain, persisted in SQLite.
///
/// Two locks: `conn` is held only for single statements, so readers (the API,
/// the driver) never wait behind a proof verification; `executing` makes one
/// caller at a time execute due messages, verifying proofs without `conn`.
pub struct EmbeddedChain {
    conn: Mutex<Connection>,
    executing: Mutex<()>,
    /// Why execution waits, while a message cannot be judged.
    stalled: Mutex<Option<String>>,
    /// False for an observer: it reads what its executor recorded and runs nothing.
    executes: bool,
    path: PathBuf,
    config: EmbeddedChainConfig,
    genesis_ms: i64,
    beacon: [u8; 32],
    verifier: Box<dyn SealVerifier>,
}

impl EmbeddedChain {
    /// Opens the chain in the database at `path`, starting it at the clock's
    /// now with a fresh random beacon if it has no genesis yet.
    pub fn open(
        path: &Path,
        config: EmbeddedChainConfig,
        verifier: Box<dyn SealVerifier>,
        clock: &dyn Clock,
    ) -> Result<Self, ChainError> {
        let sql = |op| {
            let path = path.to_path_buf();
            move |source: rusqlite::Error| ChainError::Backend {
                at: path.display().to_string(),
                op,
                source: source.into(),
            }
        };
        let conn = Connection::open(path).map_err(sql("open"))?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(sql("enable WAL"))?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(sql("set synchronous"))?;
        conn.execute_batch(CHAIN_SCHEMA).map_err(sql("create schema"))?;
        conn.execute_batch(proving::SCHEMA).map_err(sql("create the proving schema"))?;
        upgrade_single_sector_messages(&conn).map_err(sql("upgrade single-sector messages"))?;
        let fresh: [u8; 32] = rand::random();
        conn.execute(
            "INSERT OR IGNORE INTO chain_meta (id, genesis_ms, beacon) VALUES (1, ?1, ?2)",
            params![clock.now_ms(), fresh.as_slice()],
        )
        .map_err(sql("write genesis"))?;
        let (genesis_ms, beacon): (i64, Vec<u8>) = conn
            .query_row("SELECT genesis_ms, beacon FROM chain_meta WHERE id = 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(sql("read genesis"))?;
        let beacon: [u8; 32] = beacon.try_into().map_err(|b: Vec<u8>| ChainError::Corrupt {
            at: path.display().to_string(),
            reason: format!("beacon of {} bytes, expected 32", b.len()),
        })?;
        Ok(Self {
            conn: Mutex::new(conn),
            executing: Mutex::new(()),
            stalled: Mutex::new(None),
            executes: true,
            path: path.to_path_buf(),
            config,
            genesis_ms,
            beacon,
            verifier,
        })
    }

    /// A second handle on the chain at `path` (already opened by its executor)
    /// that only reads: its calls never execute due messages, so they never
    /// verify a proof. The API reads through one.
    pub fn open_observer(
        path: &Path,
        config: EmbeddedChainConfig,
        clock: &dyn Clock,
    ) -> Result<Self, ChainError> {
        struct NeverCalled;
        impl SealVerifier for NeverCalled {
            fn verify(&self, _: &SealStatement, _: &[u8]) -> Result<bool, proofs::Error> {
                Err(proofs::Error::InvalidProof("an observer of the chain does not verify".into()))
            }
        }
        let mut chain = Self::open(path, config, Box::new(NeverCalled), clock)?;
        chain.executes = false;
        Ok(chain)
    }

    /// The connection, for one statement or a short read; a panic elsewhere
    /// leaves SQLite consistent (every write is one statement), so a poisoned
    /// lock is used as is.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sql(&self, op: &'static str) -> impl FnOnce(rusqlite::Error) -> ChainError + '_ {
        move |source: rusqlite::Error| ChainError::Backend {
            at: self.path.display().to_string(),
            op,
            source: source.into(),
        }
    }

    fn epoch_at(&self, now_ms: i64) -> u64 {
        (now_ms.saturating_sub(self.genesis_ms).max(0) as u64) / self.config.block_time_ms.max(1)
    }

    /// Randomness of `kind` at `epoch`, drawn as the miner actor draws it
    /// from this chain's digest of the epoch (its own tickets and beacon:
    /// the devnet has no VRF or drand, so each digest hashes the genesis
    /// beacon with the source and the epoch).
    fn derive(&self, kind: RandomnessKind, epoch: u64) -> Randomness {
        let source: &[u8] = match kind.source() {
            RandomnessSource::Tickets => b"kiln devnet ticket",
            RandomnessSource::Beacon => b"kiln devnet beacon",
        };
        let digest = digest_of(&[source, &self.beacon[..], &epoch.to_be_bytes()].concat());
        draw(kind.tag(), &digest, epoch as i64, &kind.entropy(self.config.miner_id))
    }

    /// Executes every message sent before the head's epoch, in order, unless
    /// another caller is doing so (it will finish them; this one reads on).
    /// Each message's effects and its receipt are one transaction, so a crash
    /// never leaves an effect without its receipt (which would execute the
    /// message again, and refuse it). A message the verifier cannot judge
    /// (its key unreadable: the node's fault, not the message's) stops
    /// execution there until it can, instead of getting a receipt.
    fn execute_due(&self, head: u64) -> Result<(), ChainError> {
        if !self.executes {
            return Ok(());
        }
        // Another caller is executing: it records every due message. A lock
        // poisoned by a panic there is taken as is (each message is one transaction).
        let _executing = match self.executing.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Ok(()),
        };
        self.execute_locked(head)
    }

    /// [`EmbeddedChain::execute_due`], waiting for another caller's execution
    /// to end first: what it returns after is complete up to `head`.
    fn execute_due_waiting(&self, head: u64) -> Result<(), ChainError> {
        if !self.executes {
            return Ok(());
        }
        let _executing = self.executing.lock().unwrap_or_else(|p| p.into_inner());
        self.execute_locked(head)
    }

    fn execute_locked(&self, head: u64) -> Result<(), ChainError> {
        let due: Vec<(i64, i64, String)> = {
            let conn = self.conn();
            let mut stmt = conn
                .prepare_cached("SELECT id, sent_epoch, body FROM chain_messages WHERE exec_epoch IS NULL AND sent_epoch < ?1 ORDER BY sent_epoch, id")
                .map_err(self.sql("prepare"))?;
            let rows = stmt
                .query_map(params![head as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(self.sql("read pending messages"))?;
            rows.collect::<Result<_, _>>().map_err(self.sql("read pending messages"))?
        };
        let mut closing = head;
        for (id, sent, body) in due {
            let epoch = sent as u64 + 1;
            // Windows that close by this message's epoch are settled; later ones wait for it.
            self.close_windows(closing.min(epoch))?;
            let outcome = match serde_json::from_str::<Message>(&body) {
                Ok(m) => self.execute(id, &m, epoch)?,
                Err(e) => Exec::Refused(EXIT_ILLEGAL_ARGUMENT, format!("undecodable message: {e}")),
            };
            let (writes, code, error) = match outcome {
                Exec::Done(writes) => (writes, EXIT_OK, None),
                Exec::Refused(code, why) => (Vec::new(), code, Some(why)),
                Exec::Stalled(why) => {
                    let mut stalled = relock(&self.stalled);
                    if stalled.as_deref() != Some(why.as_str()) {
                        tracing::error!(message = id, %why, "the chain cannot verify a message; execution waits until it can");
                        *stalled = Some(why);
                    }
                    closing = epoch;
                    break;
                }
            };
            *relock(&self.stalled) = None;
            self.commit(writes, |tx| {
                crate::failpoints::crash_point!("chain:executed-unrecorded");
                tx.execute(
                    "UPDATE chain_messages SET exec_epoch = ?2, exit_code = ?3, error = ?4 WHERE id = ?1",
                    params![id, epoch as i64, code, error],
                )
                .map(drop)
            })?;
        }
        self.close_windows(closing)
    }

    /// Applies `writes`, then `last`, in one transaction.
    pub(super) fn commit(
        &self,
        writes: Writes,
        last: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<()>,
    ) -> Result<(), ChainError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.sql("begin"))?;
        for write in writes {
            write(&tx).map_err(self.sql("apply a message's effects"))?;
        }
        last(&tx).map_err(self.sql("record a receipt"))?;
        tx.commit().map_err(self.sql("commit"))
    }

    fn execute(&self, id: i64, message: &Message, epoch: u64) -> Result<Exec, ChainError> {
        match message {
            Message::PreCommitSectors { sectors } => self.execute_precommits(sectors, epoch),
            Message::ProveCommitSectors { sectors } => self.execute_provecommits(sectors, epoch),
            _ => self.execute_proving(id, message, epoch),
        }
    }

    /// A PreCommit batch: every sector is pre-committed, or none (the first
    /// sector refused names why).
    fn execute_precommits(&self, sectors: &[PreCommitSector], epoch: u64) -> Result<Exec, ChainError> {
        if let Some(refused) = batch_refusal(sectors.iter().map(|s| s.sector)) {
            return Ok(refused);
        }
        let mut writes: Writes = Vec::new();
        for pc in sectors {
            let PreCommitSector { sector, sector_size, comm_r, comm_d, ticket_epoch, .. } = pc;
            if self.precommit_at(*sector, epoch)?.is_some() {
                return Ok(Exec::Refused(
                    EXIT_FORBIDDEN,
                    format!("sector {sector} is already pre-committed"),
                ));
            }
            if *ticket_epoch >= epoch || epoch - ticket_epoch > self.config.max_ticket_age {
                return Ok(Exec::Refused(
                    EXIT_ILLEGAL_ARGUMENT,
                    format!(
                        "sector {sector}: ticket epoch {ticket_epoch} is not within {} epochs before {epoch}",
                        self.config.max_ticket_age
                    ),
                ));
            }
            let row = (
                *sector as i64,
                sector_size.name(),
                comm_r.to_hex(),
                comm_d.to_hex(),
                *ticket_epoch as i64,
                epoch as i64,
                (epoch + self.config.seed_delay) as i64,
                (epoch + self.config.prove_commit_window) as i64,
            );
            writes.push(Box::new(move |tx| {
                tx.execute(
                    "INSERT OR REPLACE INTO chain_precommits
                     (sector, sector_size, comm_r, comm_d, ticket_epoch, epoch, seed_epoch, expiry, proven)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0)",
                    params![row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7],
                )
                .map(drop)
            }));
        }
        Ok(Exec::Done(writes))
    }

    /// A ProveCommit batch: every proof must verify and every sector
    /// activate, or none does (as ProveCommitSectors3 requiring activation).
    fn execute_provecommits(&self, sectors: &[ProveCommitSector], epoch: u64) -> Result<Exec, ChainError> {
        if let Some(refused) = batch_refusal(sectors.iter().map(|s| s.sector)) {
            return Ok(refused);
        }
        let mut writes: Writes = Vec::new();
        for ProveCommitSector { sector, proof, .. } in sectors {
            let Some((pc, stored)) = self.precommit_at(*sector, epoch)? else {
                return Ok(Exec::Refused(EXIT_NOT_FOUND, format!("sector {sector} has no live PreCommit")));
            };
            if pc.proven {
                return Ok(Exec::Refused(EXIT_FORBIDDEN, format!("sector {sector} is already proven")));
            }
            if epoch <= pc.seed_epoch {
                return Ok(Exec::Refused(
                    EXIT_ILLEGAL_ARGUMENT,
                    format!(
                        "the seed of sector {sector} is not available before epoch {}",
                        pc.seed_epoch + 1
                    ),
                ));
            }
            let statement = SealStatement {
                sector_size: stored.sector_size,
                prover_id: self.config.prover_id(),
                sector_id: *sector,
                ticket: self.derive(RandomnessKind::Ticket, stored.ticket_epoch),
                seed: self.derive(RandomnessKind::Seed, pc.seed_epoch),
                comm_d: stored.comm_d,
                comm_r: stored.comm_r,
            };
            // The slow part: no connection lock is held here.
            match self.verifier.verify(&statement, proof) {
                Ok(true) => {
                    let s = *sector as i64;
                    writes.push(Box::new(move |tx| {
                        tx.execute("UPDATE chain_precommits SET proven = 1 WHERE sector = ?1", params![s])
                            .map(drop)
                    }));
                    writes.push(self.activate(*sector, stored.sector_size, &stored.comm_r, epoch)?);
                }
                Ok(false) => {
                    return Ok(Exec::Refused(
                        EXIT_ILLEGAL_ARGUMENT,
                        format!("invalid PoRep proof for sector {sector}"),
                    ))
                }
                Err(why) => return Ok(unjudged(why, &format!("proof of sector {sector}"))),
            }
        }
        Ok(Exec::Done(writes))
    }

    /// The PreCommit of `sector` as of `epoch` (expired ones are not live).
    fn precommit_at(
        &self,
        sector: u64,
        epoch: u64,
    ) -> Result<Option<(PreCommitOnChain, StoredPreCommit)>, ChainError> {
        let row = self
            .conn()
            .query_row(
                "SELECT sector_size, comm_r, comm_d, ticket_epoch, epoch, seed_epoch, expiry, proven
                 FROM chain_precommits WHERE sector = ?1",
                params![sector as i64],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, i64>(6)?,
                        r.get::<_, bool>(7)?,
                    ))
                },
            )
            .optional()
            .map_err(self.sql("read a PreCommit"))?;
        let Some((size, comm_r, comm_d, ticket_epoch, pc_epoch, seed_epoch, expiry, proven)) = row else {
            return Ok(None);
        };
        if !proven && epoch > expiry as u64 {
            return Ok(None);
        }
        let corrupt = |e: proofs::Error| ChainError::Corrupt {
            at: self.path.display().to_string(),
            reason: format!("PreCommit of sector {sector}: {e}"),
        };
        let stored = StoredPreCommit {
            sector_size: SectorSize::parse(&size).map_err(corrupt)?,
            comm_r: Commitment::from_hex(&comm_r).map_err(corrupt)?,
            comm_d: Commitment::from_hex(&comm_d).map_err(corrupt)?,
            ticket_epoch: ticket_epoch as u64,
        };
        let proven_epoch = if proven {
            self.conn()
                .query_row(
                    "SELECT activation FROM chain_sectors WHERE sector = ?1",
                    params![sector as i64],
                    |r| r.get::<_, i64>(0),
                )
                .optional()
                .map_err(self.sql("read a proven sector"))?
                .map(|e| e as u64)
        } else {
            None
        };
        let pc = PreCommitOnChain {
            epoch: pc_epoch as u64,
            seed_epoch: seed_epoch as u64,
            expiry: expiry as u64,
            proven,
            comm_r: stored.comm_r,
            comm_d: stored.comm_d,
            proven_epoch,
        };
        Ok(Some((pc, stored)))
    }
}

/// One effect of a message: statements run in its transaction.
pub(super) type Write = Box<dyn FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<()> + Send>;

/// A message's effects, applied with its receipt in one transaction.
pub(super) type Writes = Vec<Write>;

/// What executing a message came to.
pub(super) enum Exec {
    /// Accepted: its effects.
    Done(Writes),
    /// Refused: the exit code and why.
    Refused(i64, String),
    /// Not judged: the verifier cannot run (why); it waits.
    Stalled(String),
}

/// A verifier's error: a proof it cannot parse is the message's fault
/// (refused); a key it cannot read is the node's (the message waits).
pub(super) fn unjudged(why: proofs::Error, what: &str) -> Exec {
    if why.disposition() == proofs::Disposition::Permanent {
        Exec::Refused(EXIT_ILLEGAL_ARGUMENT, format!("{what} could not be verified: {why}"))
    } else {
        Exec::Stalled(format!("{what}: the verifier failed: {why}"))
    }
}

/// Why a sealing batch is refused before its sectors are looked at: it has
/// none, or names one twice.
fn batch_refusal(sectors: impl Iterator<Item = u64>) -> Option<Exec> {
    let mut seen = std::collections::BTreeSet::new();
    let mut any = false;
    for s in sectors {
        any = true;
        if !seen.insert(s) {
            return Some(Exec::Refused(
                EXIT_ILLEGAL_ARGUMENT,
                format!("sector {s} appears twice in one message"),
            ));
        }
    }
    (!any).then(|| Exec::Refused(EXIT_ILLEGAL_ARGUMENT, "a sealing message with no sectors".into()))
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct StoredPreCommit {
    sector_size: SectorSize,
    comm_r: Commitment,
    comm_d: Commitment,
    ticket_epoch: u64,
}

impl ChainHead for EmbeddedChain {
    fn head(&self, now_ms: i64) -> Result<u64, ChainError> {
        let head = self.epoch_at(now_ms);
        self.execute_due(head)?;
        Ok(head)
    }

    fn epoch_start_ms(&self, epoch: u64) -> i64 {
        let offset = epoch.saturating_mul(self.config.block_time_ms.max(1)).min(i64::MAX as u64) as i64;
        self.genesis_ms.saturating_add(offset)
    }

    fn randomness(&self, kind: RandomnessKind, epoch: u64, now_ms: i64) -> Result<Randomness, ChainError> {
        let head = self.head(now_ms)?;
        if epoch > head {
            return Err(ChainError::FutureEpoch { asked: epoch, head });
        }
        Ok(self.derive(kind, epoch))
    }

    /// The devnet never reorganises: tickets are drawn at the head.
    fn ticket_lookback(&self) -> u64 {
        0
    }

    fn max_ticket_age(&self) -> u64 {
        self.config.max_ticket_age
    }
}

impl ChainMessages for EmbeddedChain {
    fn send(&self, message: &Message, now_ms: i64) -> Result<MessageId, ChainError> {
        let head = self.head(now_ms)?;
        let body = message_body(message)?;
        let conn = self.conn();
        conn.execute(
            "INSERT INTO chain_messages (sent_epoch, body) VALUES (?1, ?2)",
            params![head as i64, body],
        )
        .map_err(self.sql("send a message"))?;
        Ok(MessageId::from(conn.last_insert_rowid() as u64))
    }

    fn receipt(&self, id: &MessageId, now_ms: i64) -> Result<Option<Receipt>, ChainError> {
        self.head(now_ms)?;
        let Some(seq) = sequence(id) else { return Err(ChainError::UnknownMessage(id.clone())) };
        let row: Option<(Option<i64>, Option<i64>, Option<String>)> = self
            .conn()
            .query_row(
                "SELECT exec_epoch, exit_code, error FROM chain_messages WHERE id = ?1",
                params![seq],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(self.sql("read a receipt"))?;
        match row {
            None => Err(ChainError::UnknownMessage(id.clone())),
            Some((Some(epoch), Some(exit_code), error)) => {
                Ok(Some(Receipt { epoch: epoch as u64, exit_code, error }))
            }
            Some(_) => Ok(None),
        }
    }

    fn precommit(&self, sector: u64, now_ms: i64) -> Result<Option<PreCommitOnChain>, ChainError> {
        let head = self.head(now_ms)?;
        Ok(self.precommit_at(sector, head)?.map(|(pc, _)| pc))
    }

    fn find_sent(
        &self,
        method: SealingMethod,
        sector: u64,
        now_ms: i64,
    ) -> Result<Option<MessageId>, ChainError> {
        self.head(now_ms)?;
        // Bodies are JSON tagged by method first: a prefix picks the method's messages.
        let prefix = format!("{{\"method\":\"{}\"%", method.name());
        let rows: Vec<(i64, String)> = {
            let conn = self.conn();
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, body FROM chain_messages WHERE body LIKE ?1 AND (exit_code IS NULL OR exit_code = 0)
                     ORDER BY id DESC",
                )
                .map_err(self.sql("prepare"))?;
            let rows = stmt
                .query_map(params![prefix], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(self.sql("look up a message"))?;
            rows.collect::<Result<_, _>>().map_err(self.sql("look up a message"))?
        };
        for (id, body) in rows {
            let message: Message =
                serde_json::from_str(&body).map_err(|e| self.corrupt(format!("message {id}: {e}")))?;
            if method.is(&message) && message.sectors().contains(&sector) {
                return Ok(Some(MessageId::from(id as u64)));
            }
        }
        Ok(None)
    }
}

impl MessageLog for EmbeddedChain {
    fn messages_after(&self, after: u64, limit: usize, now_ms: i64) -> Result<Vec<SentMessage>, ChainError> {
        self.head(now_ms)?;
        let rows: Vec<MessageRow> = {
            let conn = self.conn();
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, body, exec_epoch, exit_code, error FROM chain_messages
                     WHERE id > ?1 ORDER BY id LIMIT ?2",
                )
                .map_err(self.sql("prepare"))?;
            let rows = stmt
                .query_map(
                    params![after.min(i64::MAX as u64) as i64, limit.min(i64::MAX as usize) as i64],
                    message_row,
                )
                .map_err(self.sql("list messages"))?;
            rows.collect::<Result<_, _>>().map_err(self.sql("list messages"))?
        };
        rows.into_iter().map(|row| self.sent_message(row)).collect()
    }

    fn message(&self, id: &MessageId, now_ms: i64) -> Result<Option<SentMessage>, ChainError> {
        self.head(now_ms)?;
        let Some(seq) = sequence(id) else { return Ok(None) };
        let row = self
            .conn()
            .query_row(
                "SELECT id, body, exec_epoch, exit_code, error FROM chain_messages WHERE id = ?1",
                params![seq],
                message_row,
            )
            .optional()
            .map_err(self.sql("read a message"))?;
        row.map(|row| self.sent_message(row)).transpose()
    }

    fn message_counts(&self, now_ms: i64) -> Result<(u64, u64), ChainError> {
        self.head(now_ms)?;
        self.conn()
            .query_row("SELECT COUNT(*), COUNT(exec_epoch) FROM chain_messages", [], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
            })
            .map_err(self.sql("count messages"))
    }
}

/// id, body, execution epoch, exit code, error
type MessageRow = (i64, String, Option<i64>, Option<i64>, Option<String>);

fn message_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MessageRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

/// The embedded chain's own ids are its log's sequence numbers.
fn sequence(id: &MessageId) -> Option<i64> {
    id.as_str().parse::<i64>().ok().filter(|&n| n > 0)
}

impl EmbeddedChain {
    fn sent_message(&self, (id, body, epoch, code, error): MessageRow) -> Result<SentMessage, ChainError> {
        let message = serde_json::from_str(&body).map_err(|e| ChainError::Corrupt {
            at: self.path.display().to_string(),
            reason: format!("message {id}: {e}"),
        })?;
        let receipt = match (epoch, code) {
            (Some(epoch), Some(exit_code)) => Some(Receipt { epoch: epoch as u64, exit_code, error }),
            _ => None,
        };
        Ok(SentMessage { seq: id as u64, id: MessageId::from(id as u64), message, receipt })
    }
}

impl ChainProving for EmbeddedChain {
    fn proving_schedule(&self) -> ProvingSchedule {
        self.config.proving
    }

    fn proving_sectors(&self, now_ms: i64) -> Result<Vec<ProvingSectorOnChain>, ChainError> {
        self.head(now_ms)?;
        self.sectors_where("1 = 1", params![])
    }

    fn posts_since(&self, since_open: u64, now_ms: i64) -> Result<Vec<PostOnChain>, ChainError> {
        self.head(now_ms)?;
        self.read_posts(since_open)
    }

    fn find_post_message(
        &self,
        open_epoch: u64,
        partition: u64,
        now_ms: i64,
    ) -> Result<Option<MessageId>, ChainError> {
        self.head(now_ms)?;
        self.find_post(open_epoch, partition)
    }

    fn health_events(&self, since_epoch: u64, now_ms: i64) -> Result<Vec<HealthEvent>, ChainError> {
        self.head(now_ms)?;
        self.read_health_events(since_epoch)
    }

    fn won_election(&self, epoch: u64) -> bool {
        self.elected(epoch)
    }

    fn election_sectors(&self, epoch: u64, now_ms: i64) -> Result<Vec<ProvingSectorOnChain>, ChainError> {
        let head = self.epoch_at(now_ms);
        if epoch > head {
            return Err(ChainError::FutureEpoch { asked: epoch, head });
        }
        // Everything up to the election's epoch is executed before it is read.
        self.execute_due_waiting(head)?;
        self.eligible_at(epoch)
    }

    fn elections(&self, from: u64, to: u64, now_ms: i64) -> Result<Vec<ElectionOnChain>, ChainError> {
        self.head(now_ms)?;
        self.read_elections(from, to)
    }
}

/// Rewrites the single-sector sealing messages kiln sent before batches
/// (`PreCommit`, `ProveCommit`) as batches of one, so that the message log
/// reads them and a pending one still executes. Idempotent.
fn upgrade_single_sector_messages(conn: &Connection) -> rusqlite::Result<()> {
    let old: Vec<(i64, String)> = {
        let mut stmt = conn.prepare(
            "SELECT id, body FROM chain_messages
             WHERE body LIKE '{\"method\":\"PreCommit\",%' OR body LIKE '{\"method\":\"ProveCommit\",%'",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (id, body) in old {
        let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_str::<serde_json::Value>(&body)
        else {
            continue;
        };
        let method = fields.remove("method");
        let upgraded = match method.as_ref().and_then(|m| m.as_str()) {
            Some("PreCommit") => {
                fields.insert("expiration".into(), 0.into());
                serde_json::json!({ "method": "PreCommitSectors", "sectors": [fields] })
            }
            Some("ProveCommit") => {
                fields.insert("pieces".into(), serde_json::json!([]));
                serde_json::json!({ "method": "ProveCommitSectors", "sectors": [fields] })
            }
            _ => continue,
        };
        conn.execute("UPDATE chain_messages SET body = ?2 WHERE id = ?1", params![id, upgraded.to_string()])?;
    }
    Ok(())
}

fn message_body(message: &Message) -> Result<String, ChainError> {
    serde_json::to_string(message).map_err(|e| ChainError::Message(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts exactly the proof `b"good"` (PoSt: `b"good"` followed by the
    /// proven sector ids, so a proof of another set is refused).
    pub(super) struct FakeVerifier;
    impl SealVerifier for FakeVerifier {
        fn verify(&self, _: &SealStatement, proof: &[u8]) -> Result<bool, proofs::Error> {
            Ok(proof == b"good")
        }
        fn verify_post(
            &self,
            _: &proofs::post::PostProof,
            _: &Randomness,
            sectors: &[(u64, Commitment)],
            proof: &[u8],
        ) -> Result<bool, proofs::Error> {
            Ok(proof == fake_post(sectors.iter().map(|s| s.0)))
        }
    }

    pub(super) fn fake_post(sectors: impl Iterator<Item = u64>) -> Vec<u8> {
        let mut p = b"good".to_vec();
        p.extend(sectors.flat_map(|s| s.to_le_bytes()));
        p
    }

    const BLOCK: i64 = 1_000;

    fn chain(dir: &Path) -> EmbeddedChain {
        let genesis = crate::clock::ManualClock::new(0);
        EmbeddedChain::open(
            &dir.join("kiln.db"),
            EmbeddedChainConfig::default(),
            Box::new(FakeVerifier),
            &genesis,
        )
        .unwrap()
    }

    fn precommit_of(sector: u64, ticket_epoch: u64) -> PreCommitSector {
        PreCommitSector {
            sector,
            sector_size: SectorSize::KiB2,
            comm_r: Commitment([1; 32]),
            comm_d: Commitment([2; 32]),
            ticket_epoch,
            expiration: 1_000_000,
        }
    }

    fn precommit(sector: u64, ticket_epoch: u64) -> Message {
        Message::PreCommitSectors { sectors: vec![precommit_of(sector, ticket_epoch)] }
    }

    fn prove_of(sector: u64, proof: &[u8]) -> ProveCommitSector {
        ProveCommitSector { sector, pieces: vec![], proof: proof.to_vec() }
    }

    fn prove(sector: u64, proof: &[u8]) -> Message {
        Message::ProveCommitSectors { sectors: vec![prove_of(sector, proof)] }
    }

    /// A batch lands whole or not at all; its sectors are found by sector;
    /// the sectors one ProveCommit activates are scheduled as one after another.
    #[test]
    fn batches_land_whole_or_not_at_all() {
        let tmp = tempfile::tempdir().unwrap();
        let c = chain(tmp.path());
        let three = Message::PreCommitSectors { sectors: (1..=3).map(|n| precommit_of(n, 9)).collect() };
        let pc = c.send(&three, 10 * BLOCK).unwrap();
        assert_eq!(c.receipt(&pc, 11 * BLOCK).unwrap().unwrap().exit_code, EXIT_OK);
        assert!((1..=3).all(|n| c.precommit(n, 11 * BLOCK).unwrap().is_some()));
        for n in 1..=3 {
            assert_eq!(c.find_sent(SealingMethod::PreCommit, n, 11 * BLOCK).unwrap(), Some(pc.clone()));
        }
        assert_eq!(c.find_sent(SealingMethod::PreCommit, 4, 11 * BLOCK).unwrap(), None);
        assert_eq!(c.find_sent(SealingMethod::ProveCommit, 1, 11 * BLOCK).unwrap(), None);
        // Sector 3 is already pre-committed: sector 4 does not land either.
        let mixed = Message::PreCommitSectors { sectors: vec![precommit_of(4, 10), precommit_of(3, 10)] };
        let refused = c.send(&mixed, 11 * BLOCK).unwrap();
        let r = c.receipt(&refused, 12 * BLOCK).unwrap().unwrap();
        assert_eq!(r.exit_code, EXIT_FORBIDDEN);
        assert!(r.error.unwrap().contains("sector 3"));
        assert!(c.precommit(4, 12 * BLOCK).unwrap().is_none());
        assert_eq!(
            c.find_sent(SealingMethod::PreCommit, 4, 12 * BLOCK).unwrap(),
            None,
            "a refused one is not adopted"
        );
        for bad in [
            Message::PreCommitSectors { sectors: vec![] },
            Message::PreCommitSectors { sectors: vec![precommit_of(5, 10), precommit_of(5, 10)] },
        ] {
            let id = c.send(&bad, 12 * BLOCK).unwrap();
            assert_eq!(c.receipt(&id, 13 * BLOCK).unwrap().unwrap().exit_code, EXIT_ILLEGAL_ARGUMENT);
        }
        // One bad proof: no sector of the batch is proven.
        let batch = |proof_of_2: &[u8]| Message::ProveCommitSectors {
            sectors: vec![prove_of(1, b"good"), prove_of(2, proof_of_2), prove_of(3, b"good")],
        };
        let bad = c.send(&batch(b"bad"), 14 * BLOCK).unwrap();
        let r = c.receipt(&bad, 15 * BLOCK).unwrap().unwrap();
        assert_eq!(r.exit_code, EXIT_ILLEGAL_ARGUMENT);
        assert!(r.error.unwrap().contains("sector 2"));
        assert!((1..=3).all(|n| !c.precommit(n, 15 * BLOCK).unwrap().unwrap().proven));
        let good = c.send(&batch(b"good"), 15 * BLOCK).unwrap();
        assert_eq!(c.receipt(&good, 16 * BLOCK).unwrap().unwrap().exit_code, EXIT_OK);
        assert!((1..=3).all(|n| c.precommit(n, 16 * BLOCK).unwrap().unwrap().proven));
        assert_eq!(c.find_sent(SealingMethod::ProveCommit, 2, 16 * BLOCK).unwrap(), Some(good));
        // 2KiB partitions hold 2 sectors: the three fill one and start another.
        let mut slots: Vec<(u64, u64)> =
            c.proving_sectors(16 * BLOCK).unwrap().iter().map(|s| (s.deadline, s.partition)).collect();
        slots.sort();
        slots.dedup();
        assert_eq!(slots.len(), 2, "{slots:?}");
    }

    /// Single-sector messages recorded before batches read as batches of one
    /// after an upgrade, and a pending one still executes.
    #[test]
    fn single_sector_messages_from_before_batches_are_read_as_batches_of_one() {
        let tmp = tempfile::tempdir().unwrap();
        drop(chain(tmp.path()));
        let conn = Connection::open(tmp.path().join("kiln.db")).unwrap();
        let old_pc = r#"{"method":"PreCommit","sector":7,"sector_size":"2KiB","comm_r":"0101010101010101010101010101010101010101010101010101010101010101","comm_d":"0202020202020202020202020202020202020202020202020202020202020202","ticket_epoch":9}"#;
        let old_prove = r#"{"method":"ProveCommit","sector":7,"proof":"676f6f64"}"#;
        conn.execute(
            "INSERT INTO chain_messages (sent_epoch, body) VALUES (10, ?1), (14, ?2)",
            params![old_pc, old_prove],
        )
        .unwrap();
        drop(conn);
        let c = chain(tmp.path());
        let log = c.messages(20 * BLOCK).unwrap();
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].message.sectors(), [7]);
        assert!(
            matches!(&log[1].message, Message::ProveCommitSectors { sectors } if sectors[0].proof == b"good")
        );
        assert!(log.iter().all(|m| m.receipt.as_ref().is_some_and(|r| r.exit_code == EXIT_OK)), "{log:?}");
        assert!(c.precommit(7, 20 * BLOCK).unwrap().unwrap().proven);
    }

    #[test]
    fn epochs_follow_the_clock_and_randomness_is_per_epoch_and_kind() {
        let tmp = tempfile::tempdir().unwrap();
        let c = chain(tmp.path());
        assert_eq!(c.head(0).unwrap(), 0);
        assert_eq!(c.head(5 * BLOCK + 999).unwrap(), 5);
        let t3 = c.randomness(RandomnessKind::Ticket, 3, 5 * BLOCK).unwrap();
        assert_eq!(t3, c.randomness(RandomnessKind::Ticket, 3, 9 * BLOCK).unwrap());
        assert_ne!(t3, c.randomness(RandomnessKind::Ticket, 4, 9 * BLOCK).unwrap());
        assert_ne!(t3, c.randomness(RandomnessKind::Seed, 3, 9 * BLOCK).unwrap());
        assert!(matches!(
            c.randomness(RandomnessKind::Seed, 10, 9 * BLOCK),
            Err(ChainError::FutureEpoch { .. })
        ));
        // The beacon survives a restart: the same randomness afterwards.
        drop(c);
        let c = chain(tmp.path());
        assert_eq!(c.randomness(RandomnessKind::Ticket, 3, 9 * BLOCK).unwrap(), t3);
    }

    #[test]
    fn precommit_then_provecommit_with_seed_delay_and_verifier() {
        let tmp = tempfile::tempdir().unwrap();
        let c = chain(tmp.path());
        let now = 10 * BLOCK;
        let pc = c.send(&precommit(1, 9), now).unwrap();
        assert_eq!(c.receipt(&pc, now).unwrap(), None, "executed in the next epoch");
        let r = c.receipt(&pc, 11 * BLOCK).unwrap().unwrap();
        assert_eq!((r.epoch, r.exit_code), (11, EXIT_OK));
        let on_chain = c.precommit(1, 11 * BLOCK).unwrap().unwrap();
        assert_eq!((on_chain.epoch, on_chain.seed_epoch, on_chain.proven), (11, 13, false));

        // A second PreCommit of the same sector is refused.
        let dup = c.send(&precommit(1, 10), 11 * BLOCK).unwrap();
        assert_eq!(c.receipt(&dup, 12 * BLOCK).unwrap().unwrap().exit_code, EXIT_FORBIDDEN);
        // Too early: the seed's epoch has not passed.
        let early = c.send(&prove(1, b"good"), 12 * BLOCK).unwrap();
        assert_eq!(c.receipt(&early, 13 * BLOCK).unwrap().unwrap().exit_code, EXIT_ILLEGAL_ARGUMENT);
        // An invalid proof: rejected with a non-zero exit code, the sector stays unproven.
        let bad = c.send(&prove(1, b"bad"), 14 * BLOCK).unwrap();
        let r = c.receipt(&bad, 15 * BLOCK).unwrap().unwrap();
        assert_eq!(r.exit_code, EXIT_ILLEGAL_ARGUMENT);
        assert!(r.error.unwrap().contains("invalid PoRep proof"));
        assert!(!c.precommit(1, 15 * BLOCK).unwrap().unwrap().proven);
        // A valid proof lands; proving again is refused.
        let good = c.send(&prove(1, b"good"), 15 * BLOCK).unwrap();
        assert_eq!(c.receipt(&good, 16 * BLOCK).unwrap().unwrap().exit_code, EXIT_OK);
        assert!(c.precommit(1, 16 * BLOCK).unwrap().unwrap().proven);
        let again = c.send(&prove(1, b"good"), 16 * BLOCK).unwrap();
        assert_eq!(c.receipt(&again, 17 * BLOCK).unwrap().unwrap().exit_code, EXIT_FORBIDDEN);
        // Receipts survive a restart.
        drop(c);
        let c = chain(tmp.path());
        assert_eq!(c.receipt(&good, 17 * BLOCK).unwrap().unwrap().exit_code, EXIT_OK);
        assert!(
            matches!(c.receipt(&MessageId::from(999), 17 * BLOCK), Err(ChainError::UnknownMessage(id)) if id == MessageId::from(999))
        );
        // Another chain's id is unknown here too.
        let cid = MessageId::new("bafy2bzaceexample").unwrap();
        assert!(matches!(c.receipt(&cid, 17 * BLOCK), Err(ChainError::UnknownMessage(id)) if id == cid));
    }

    #[test]
    fn stale_tickets_and_expired_precommits_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let c = chain(tmp.path());
        let config = EmbeddedChainConfig::default();
        let now = (config.max_ticket_age as i64 + 50) * BLOCK;
        let stale = c.send(&precommit(2, 1), now).unwrap();
        let r = c.receipt(&stale, now + BLOCK).unwrap().unwrap();
        assert_eq!(r.exit_code, EXIT_ILLEGAL_ARGUMENT);
        assert!(c.precommit(2, now + BLOCK).unwrap().is_none());

        let pc = c.send(&precommit(3, 149), now).unwrap();
        assert_eq!(c.receipt(&pc, now + BLOCK).unwrap().unwrap().exit_code, EXIT_OK);
        let after_window = now + (config.prove_commit_window as i64 + 2) * BLOCK;
        assert!(c.precommit(3, after_window).unwrap().is_none(), "expired");
        let late = c.send(&prove(3, b"good"), after_window).unwrap();
        assert_eq!(c.receipt(&late, after_window + BLOCK).unwrap().unwrap().exit_code, EXIT_NOT_FOUND);
        // Once expired, the sector may be pre-committed again with a fresh ticket.
        let head = c.head(after_window).unwrap();
        let again = c.send(&precommit(3, head - 1), after_window).unwrap();
        assert_eq!(c.receipt(&again, after_window + BLOCK).unwrap().unwrap().exit_code, EXIT_OK);
    }

    /// A verifier that cannot read its key (the node's fault) for its first
    /// `failures` calls, then accepts `b"good"`.
    struct BrokenKey(std::sync::atomic::AtomicU32);
    impl SealVerifier for BrokenKey {
        fn verify(&self, _: &SealStatement, proof: &[u8]) -> Result<bool, proofs::Error> {
            use std::sync::atomic::Ordering;
            if self.0.load(Ordering::SeqCst) > 0 {
                self.0.fetch_sub(1, Ordering::SeqCst);
                return Err(proofs::Error::Params {
                    path: "/params/v28-stacked-proof-of-replication.vk".into(),
                    reason: "unreadable".into(),
                });
            }
            Ok(proof == b"good")
        }
    }

    /// A ProveCommit the verifier cannot judge (its key unreadable) gets no
    /// receipt and waits; once the key reads again it is executed in the
    /// epoch after it was sent, as if nothing happened (it got exit 16 for good).
    #[test]
    fn a_message_the_verifier_cannot_judge_waits_instead_of_failing() {
        let tmp = tempfile::tempdir().unwrap();
        // Two reads (two receipts asked) per epoch, for three epochs.
        let verifier = BrokenKey(std::sync::atomic::AtomicU32::new(6));
        let c = EmbeddedChain::open(
            &tmp.path().join("kiln.db"),
            EmbeddedChainConfig::default(),
            Box::new(verifier),
            &crate::clock::ManualClock::new(0),
        )
        .unwrap();
        c.send(&precommit(1, 9), 10 * BLOCK).unwrap();
        let prove = c.send(&prove(1, b"good"), 14 * BLOCK).unwrap();
        let after = c.send(&precommit(2, 13), 14 * BLOCK).unwrap();
        for epoch in [15, 16, 17] {
            assert_eq!(c.receipt(&prove, epoch * BLOCK).unwrap(), None, "waits at epoch {epoch}");
            assert_eq!(c.receipt(&after, epoch * BLOCK).unwrap(), None, "later messages wait behind it");
        }
        let r = c.receipt(&prove, 18 * BLOCK).unwrap().unwrap();
        assert_eq!((r.epoch, r.exit_code), (15, EXIT_OK), "{r:?}");
        assert_eq!(c.receipt(&after, 18 * BLOCK).unwrap().unwrap().exit_code, EXIT_OK);
    }

    #[test]
    fn an_observer_reads_but_never_executes() {
        let tmp = tempfile::tempdir().unwrap();
        let c = chain(tmp.path());
        let genesis = crate::clock::ManualClock::new(0);
        let observer = EmbeddedChain::open_observer(
            &tmp.path().join("kiln.db"),
            EmbeddedChainConfig::default(),
            &genesis,
        )
        .unwrap();
        let pc = c.send(&precommit(1, 9), 10 * BLOCK).unwrap();
        assert_eq!(observer.head(11 * BLOCK).unwrap(), 11);
        assert_eq!(observer.receipt(&pc, 11 * BLOCK).unwrap(), None, "due, but the observer leaves it");
        assert_eq!(observer.message_counts(11 * BLOCK).unwrap(), (1, 0));
        assert_eq!(c.receipt(&pc, 11 * BLOCK).unwrap().unwrap().exit_code, EXIT_OK);
        assert_eq!(
            observer.receipt(&pc, 11 * BLOCK).unwrap().unwrap().exit_code,
            EXIT_OK,
            "it sees the executor's"
        );
        assert_eq!(observer.message_counts(11 * BLOCK).unwrap(), (1, 1));
    }
}
