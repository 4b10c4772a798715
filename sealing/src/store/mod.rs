//! The store: what the daemon records, behind traits shaped by what it does —
//! sectors and their event logs ([`SectorStore`]), tasks with leases
//! ([`TaskStore`]), workers and their tokens ([`WorkerStore`]) and PoSt runs
//! ([`ProvingStore`]); [`Store`] is all four. The pipeline, the prover, the API
//! and the metrics see only these; [`SqliteStore`] implements them in SQLite.
//!
//! [`SectorStore::apply`] runs the pure transition ([`Lifecycle::apply`]) and, in
//! one transaction, appends the accepted event and updates the sector's row,
//! so the pipeline can persist an event before acting on it and a crash loses
//! nothing. A refused event changes nothing. Sector numbers come from a
//! durable counter and are never reused, not even after removal.
//! Timestamps are passed in (milliseconds since the epoch), which keeps the
//! store free of clocks and its tests deterministic.

use crate::lifecycle::{Lifecycle, RetryPolicy, SectorEvent, SectorState, TransitionError};
use proofs::{Commitment, Randomness, SectorSize};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use wire::chain::MessageId;

mod post;
mod tasks;

pub use post::{PostRun, RunFault};

pub use post::ProvingStore;
pub use tasks::{
    TaskKind, TaskOutput, TaskRow, TaskState, TaskStore, TokenRow, WorkerCharging, WorkerRow, WorkerStore,
};

/// Schema version this build writes (SQLite `user_version`).
const SCHEMA_VERSION: i64 = 8;

const SCHEMA: &str = "
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE sectors (
    number            INTEGER PRIMARY KEY,
    sector_size       TEXT NOT NULL,
    pledged           INTEGER NOT NULL,
    state             TEXT NOT NULL,
    attempts          INTEGER NOT NULL,
    ticket            TEXT,
    ticket_epoch      INTEGER,
    comm_d            TEXT,
    comm_r            TEXT,
    seed              TEXT,
    seed_epoch        INTEGER,
    precommit_message TEXT,
    commit_message    TEXT,
    last_error        TEXT,
    created_ms        INTEGER NOT NULL,
    updated_ms        INTEGER NOT NULL
);
CREATE TABLE pieces (
    number      INTEGER NOT NULL REFERENCES sectors(number),
    idx         INTEGER NOT NULL,
    path        TEXT NOT NULL,
    raw_len     INTEGER NOT NULL,
    padded_size INTEGER NOT NULL,
    comm_p      TEXT NOT NULL,
    added_ms    INTEGER NOT NULL,
    PRIMARY KEY (number, idx)
);
CREATE TABLE events (
    number  INTEGER NOT NULL REFERENCES sectors(number),
    seq     INTEGER NOT NULL,
    at_ms   INTEGER NOT NULL,
    event   TEXT NOT NULL,
    state   TEXT NOT NULL,
    PRIMARY KEY (number, seq)
);
";

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("sector database {path}: {op}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
    },
    /// A sector number that does not exist.
    #[error("unknown sector {0}")]
    UnknownSector(u64),
    /// A worker name that has no token or registration.
    #[error("unknown worker {0:?}")]
    UnknownWorker(String),
    /// A change that the stored records do not allow (named in the message).
    #[error("{0}")]
    Conflict(String),
    /// An event the sector's state does not accept.
    #[error("sector {number}: {source}")]
    Transition {
        /// The sector.
        number: u64,
        /// Why it was refused.
        #[source]
        source: TransitionError,
    },
    /// Pieces go only into data sectors still Packing.
    #[error("sector {number} does not accept pieces (state {state})")]
    NotPacking {
        /// The sector.
        number: u64,
        /// Its state.
        state: SectorState,
    },
    /// Content that does not parse or a schema from another version.
    #[error("sector database {path}: {reason}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// A message id in a column: text (any chain's), or an integer (SQLite keeps
/// a decimal id written to an INTEGER column as a number).
pub(crate) struct StoredId(pub(crate) MessageId);

impl rusqlite::types::FromSql for StoredId {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        use rusqlite::types::{FromSqlError, ValueRef};
        match v {
            ValueRef::Integer(n) if n >= 0 => Ok(Self(MessageId::from(n as u64))),
            ValueRef::Text(t) => std::str::from_utf8(t)
                .map_err(|e| FromSqlError::Other(e.into()))?
                .parse()
                .map(Self)
                .map_err(|e: String| FromSqlError::Other(e.into())),
            _ => Err(FromSqlError::InvalidType),
        }
    }
}

/// Every store trait, to call a concrete store's methods: `use roles::*`.
pub mod roles {
    pub use super::{ProvingStore, SectorStore, Store, TaskStore, WorkerStore};
}

/// Everything the daemon records, as one handle (held behind the ledger's lock).
pub trait Store: SectorStore + TaskStore + WorkerStore + ProvingStore {
    /// Reports tasks starting and ending, and PoSt runs, to `observer`.
    fn attach_observer(&mut self, observer: std::sync::Arc<dyn StoreObserver>);
}

/// Sectors by state (the metrics' gauge and the web view's history).
pub type SectorCounts = Vec<(SectorState, u64)>;

/// Told when tasks start and end and PoSt runs are recorded, in the
/// transaction's wake (the daemon's metrics).
pub trait StoreObserver: Send + Sync {
    /// A task started; its sector had waited `queued_ms`.
    fn task_started(&self, kind: TaskKind, worker: Option<&str>, queued_ms: i64);
    /// A task ended (as recorded at its end).
    fn task_finished(&self, task: &TaskRow);
    /// A PoSt run was recorded.
    fn post_run(&self, run: &PostRun);
    /// The chain refused a PoSt message of `kind`.
    fn post_rejected(&self, kind: &str);
}

/// One sector as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectorRow {
    /// The sector number.
    pub number: u64,
    /// Its size.
    pub sector_size: SectorSize,
    /// Committed capacity (no pieces) rather than data.
    pub pledged: bool,
    /// Its lifecycle position.
    pub lifecycle: Lifecycle,
    /// The seal ticket once drawn.
    pub ticket: Option<Randomness>,
    /// The ticket's epoch.
    pub ticket_epoch: Option<u64>,
    /// comm_d once pre-committed.
    pub comm_d: Option<Commitment>,
    /// comm_r once pre-committed.
    pub comm_r: Option<Commitment>,
    /// The interactive seed once known.
    pub seed: Option<Randomness>,
    /// The seed's epoch.
    pub seed_epoch: Option<u64>,
    /// The PreCommit message id once sent.
    pub precommit_message: Option<MessageId>,
    /// The ProveCommit message id once sent.
    pub commit_message: Option<MessageId>,
    /// The last failure.
    pub last_error: Option<String>,
    /// Creation time (ms since the epoch).
    pub created_ms: i64,
    /// Last change (ms since the epoch).
    pub updated_ms: i64,
}

/// One entry of a sector's event log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRow {
    /// Position in the sector's log, from 1.
    pub seq: u64,
    /// When it was accepted (ms since the epoch).
    pub at_ms: i64,
    /// The event.
    pub event: SectorEvent,
    /// The state it led to.
    pub state: SectorState,
}

/// A data piece assigned to a sector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PieceRow {
    /// Position among the sector's pieces, from 0.
    pub index: u64,
    /// The daemon's copy of the piece file.
    pub path: PathBuf,
    /// Bytes in the file.
    pub raw_len: u64,
    /// Padded piece size.
    pub padded_size: u64,
    /// The piece commitment.
    pub comm_p: Commitment,
    /// When it was added (ms since the epoch).
    pub added_ms: i64,
}

/// Where [`SectorStore::add_piece`] puts a piece.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PieceTarget {
    /// An open data sector.
    Sector(u64),
    /// A new data sector of this size.
    NewSector(SectorSize),
}

/// A piece to record.
#[derive(Clone, Copy, Debug)]
pub struct NewPiece<'a> {
    /// The daemon's copy of the file.
    pub path: &'a Path,
    /// Bytes in the file.
    pub raw_len: u64,
    /// Padded piece size.
    pub padded_size: u64,
    /// Piece commitment.
    pub comm_p: Commitment,
}

fn sql_at(path: &Path, op: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Sqlite { path, op, source }
}

/// Allocates a sector number from the durable counter and inserts the sector.
fn insert_sector(
    tx: &rusqlite::Transaction<'_>,
    path: &Path,
    sector_size: SectorSize,
    pledged: bool,
    now_ms: i64,
) -> Result<u64, StoreError> {
    let last: Option<i64> = tx
        .query_row("SELECT value FROM counters WHERE name = 'sector'", [], |r| r.get(0))
        .optional()
        .map_err(sql_at(path, "read the sector counter"))?;
    let number = last.map_or(1, |n| n + 1);
    tx.execute(
        "INSERT INTO counters (name, value) VALUES ('sector', ?1)
         ON CONFLICT(name) DO UPDATE SET value = excluded.value",
        params![number],
    )
    .map_err(sql_at(path, "advance the sector counter"))?;
    tx.execute(
        "INSERT INTO sectors (number, sector_size, pledged, state, attempts, created_ms, updated_ms)
         VALUES (?1, ?2, ?3, ?4, 0, ?5, ?5)",
        params![number, sector_size.name(), pledged, SectorState::Packing.name(), now_ms],
    )
    .map_err(sql_at(path, "insert the sector"))?;
    Ok(number as u64)
}

/// The store in one SQLite database (the one-box default: the data directory's `kiln.db`).
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    policy: RetryPolicy,
    /// Told of tasks starting and ending and of PoSt runs.
    observer: Option<std::sync::Arc<dyn StoreObserver>>,
    /// How failing workers are charged.
    charging: WorkerCharging,
    /// The node this handle records tasks for (see [`TaskStore::recover_tasks`]).
    node: String,
}

/// The node name of a store opened without one: the one-box default.
pub const DEFAULT_NODE: &str = "local";

fn parse_state(s: &str) -> Option<SectorState> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
}

/// Sectors, their event logs and their pieces.
pub trait SectorStore: Send {
    /// Allocates the next sector number and creates the sector in Packing, durably;
    /// `pledged` marks a committed-capacity sector.
    fn create_sector(
        &mut self,
        sector_size: SectorSize,
        pledged: bool,
        now_ms: i64,
    ) -> Result<u64, StoreError>;

    /// Applies `event` to sector `number`: on acceptance the event is appended
    /// and the row updated in one transaction; a refused event changes nothing.
    fn apply(&mut self, number: u64, event: &SectorEvent, now_ms: i64) -> Result<SectorRow, StoreError>;

    /// The state sector `number` was in when its removal was asked for, from
    /// the event log; `None` if it was never asked to be removed.
    fn removed_from(&self, number: u64) -> Result<Option<SectorState>, StoreError>;

    /// The working state whose step last failed or was aborted (what an
    /// operator retry resumes), from the event log; `None` if nothing failed.
    fn failed_step(&self, number: u64) -> Result<Option<SectorState>, StoreError>;

    /// Sector `number`, if it exists.
    fn sector(&self, number: u64) -> Result<Option<SectorRow>, StoreError>;

    /// Every sector, by number.
    fn sectors(&self) -> Result<Vec<SectorRow>, StoreError>;

    /// How many sectors are in each state (states with none left out).
    fn sector_counts(&self) -> Result<SectorCounts, StoreError>;

    /// Sectors the pipeline still works on (not Proving, Failed or Removed), by number.
    fn active_sectors(&self) -> Result<Vec<SectorRow>, StoreError>;

    /// Sector `number`'s event log, oldest first.
    fn events(&self, number: u64) -> Result<Vec<EventRow>, StoreError>;

    /// Records a piece at the next index of data sector `target` (which must be
    /// Packing), or of a new data sector created in the same transaction.
    fn add_piece(
        &mut self,
        target: PieceTarget,
        piece: &NewPiece<'_>,
        now_ms: i64,
    ) -> Result<(u64, PieceRow), StoreError>;

    /// Sector `number`'s pieces, in order.
    fn pieces(&self, number: u64) -> Result<Vec<PieceRow>, StoreError>;

    /// Replays sector `number`'s log and checks it gives the stored state.
    fn check_replay(&self, number: u64) -> Result<Lifecycle, StoreError>;
}

impl SectorStore for SqliteStore {
    fn create_sector(
        &mut self,
        sector_size: SectorSize,
        pledged: bool,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_at(&path, "begin"))?;
        let number = insert_sector(&tx, &path, sector_size, pledged, now_ms)?;
        tx.commit().map_err(sql_at(&path, "commit"))?;
        Ok(number)
    }

    fn apply(&mut self, number: u64, event: &SectorEvent, now_ms: i64) -> Result<SectorRow, StoreError> {
        let path = self.path.clone();
        let sql = |op| sql_at(&path, op);
        // The row is read inside the write transaction: a writer elsewhere
        // (another process on this database) cannot change it in between.
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql("begin"))?;
        let row = sector_in(&tx, &path, number)?.ok_or(StoreError::UnknownSector(number))?;
        let key = number as i64;
        let next = row
            .lifecycle
            .apply(event, &self.policy)
            .map_err(|source| StoreError::Transition { number, source })?;
        let seq: i64 = tx
            .query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE number = ?1", params![key], |r| {
                r.get(0)
            })
            .map_err(sql("read the event log"))?;
        let json = serde_json::to_string(event).expect("event serialises");
        tx.execute(
            "INSERT INTO events (number, seq, at_ms, event, state) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![key, seq, now_ms, json, next.state.name()],
        )
        .map_err(sql("append the event"))?;
        tx.execute(
            "UPDATE sectors SET state = ?2, attempts = ?3, updated_ms = ?4 WHERE number = ?1",
            params![key, next.state.name(), next.attempts, now_ms],
        )
        .map_err(sql("update the sector"))?;
        let field = |column: &str, value: &dyn rusqlite::ToSql| -> Result<(), StoreError> {
            tx.execute(&format!("UPDATE sectors SET {column} = ?2 WHERE number = ?1"), params![key, value])
                .map(|_| ())
                .map_err(sql("record event data"))
        };
        let null = &rusqlite::types::Null;
        match event {
            SectorEvent::TicketDrawn { ticket, epoch } => {
                field("ticket", &ticket.to_hex())?;
                field("ticket_epoch", &(*epoch as i64))?;
            }
            SectorEvent::PreCommitted2 { comm_d, comm_r } => {
                field("comm_d", &comm_d.to_hex())?;
                field("comm_r", &comm_r.to_hex())?;
            }
            SectorEvent::PreCommitSent { message } => field("precommit_message", &message.to_string())?,
            SectorEvent::SeedReady { seed, epoch } => {
                field("seed", &seed.to_hex())?;
                field("seed_epoch", &(*epoch as i64))?;
            }
            SectorEvent::CommitSent { message } => field("commit_message", &message.to_string())?,
            SectorEvent::StepFailed { error, .. } => {
                field("last_error", error)?;
                // A failed send is retried with a new message, never by
                // waiting on the failed one again.
                match row.lifecycle.state {
                    SectorState::PreCommitting => field("precommit_message", null)?,
                    SectorState::CommitWait => field("commit_message", null)?,
                    _ => {}
                }
            }
            SectorEvent::Abort { reason } => {
                field("last_error", &format!("aborted by the operator: {reason}"))?
            }
            SectorEvent::OperatorRetry { .. } => field("last_error", null)?,
            SectorEvent::CommitRejected { reason } => {
                field("last_error", reason)?;
                field("commit_message", null)?;
            }
            // A new seal after expiry starts with a new ticket, without the old messages and seed.
            SectorEvent::PreCommitExpired => {
                for column in
                    ["ticket", "ticket_epoch", "precommit_message", "commit_message", "seed", "seed_epoch"]
                {
                    field(column, null)?;
                }
            }
            _ => {}
        }
        // A sector taken out of the work stops its tasks in the same transaction:
        // no task is left open for a sector the driver no longer steps.
        let cancelled = match event {
            SectorEvent::Abort { .. } | SectorEvent::Remove => {
                let why = if matches!(event, SectorEvent::Remove) {
                    "the sector is being removed"
                } else {
                    "the sector was aborted"
                };
                tasks::cancel_sector_tasks(&tx, &path, number, why, now_ms)?.0
            }
            _ => Vec::new(),
        };
        let row = sector_in(&tx, &path, number)?.ok_or(StoreError::UnknownSector(number))?;
        tx.commit().map_err(sql("commit"))?;
        self.report_closed(&cancelled);
        Ok(row)
    }

    fn removed_from(&self, number: u64) -> Result<Option<SectorState>, StoreError> {
        let events = self.events(number)?;
        Ok(events.iter().rposition(|e| e.event == SectorEvent::Remove).map(|i| match i {
            0 => SectorState::Packing,
            i => events[i - 1].state,
        }))
    }

    fn failed_step(&self, number: u64) -> Result<Option<SectorState>, StoreError> {
        let events = self.events(number)?;
        let failed = |e: &SectorEvent| {
            matches!(
                e,
                SectorEvent::StepFailed { .. }
                    | SectorEvent::CommitRejected { .. }
                    | SectorEvent::Abort { .. }
            )
        };
        Ok(events.iter().rposition(|e| failed(&e.event)).map(|i| match i {
            0 => SectorState::Packing,
            i => events[i - 1].state,
        }))
    }

    fn sector(&self, number: u64) -> Result<Option<SectorRow>, StoreError> {
        sector_in(&self.conn, &self.path, number)
    }

    fn sectors(&self) -> Result<Vec<SectorRow>, StoreError> {
        self.query_sectors("SELECT * FROM sectors ORDER BY number", params![])
    }

    fn sector_counts(&self) -> Result<SectorCounts, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT state, count(*) FROM sectors GROUP BY state")
            .map_err(self.sql("prepare"))?;
        let rows = stmt
            .query_map(params![], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(self.sql("count sectors"))?;
        let mut out = Vec::new();
        for row in rows {
            let (state, n) = row.map_err(self.sql("count sectors"))?;
            let state =
                parse_state(&state).ok_or_else(|| self.corrupt(format!("unknown sector state {state:?}")))?;
            out.push((state, n as u64));
        }
        Ok(out)
    }

    fn active_sectors(&self) -> Result<Vec<SectorRow>, StoreError> {
        let idle = [SectorState::Proving, SectorState::Failed, SectorState::Removed].map(|s| s.name());
        self.query_sectors(
            "SELECT * FROM sectors WHERE state NOT IN (?1, ?2, ?3) ORDER BY number",
            params![idle[0], idle[1], idle[2]],
        )
    }

    fn events(&self, number: u64) -> Result<Vec<EventRow>, StoreError> {
        if self.sector(number)?.is_none() {
            return Err(StoreError::UnknownSector(number));
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, at_ms, event, state FROM events WHERE number = ?1 ORDER BY seq")
            .map_err(self.sql("prepare"))?;
        let mut rows = stmt.query(params![number as i64]).map_err(self.sql("read the event log"))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(self.sql("read the event log"))? {
            let get = |e| self.corrupt(format!("sector {number}: unreadable event: {e}"));
            let json: String = r.get(2).map_err(get)?;
            let state: String = r.get(3).map_err(get)?;
            out.push(EventRow {
                seq: r.get::<_, i64>(0).map_err(get)? as u64,
                at_ms: r.get(1).map_err(get)?,
                event: serde_json::from_str(&json)
                    .map_err(|e| self.corrupt(format!("sector {number}: event {json}: {e}")))?,
                state: parse_state(&state)
                    .ok_or_else(|| self.corrupt(format!("sector {number}: unknown state {state:?}")))?,
            });
        }
        Ok(out)
    }

    fn add_piece(
        &mut self,
        target: PieceTarget,
        piece: &NewPiece<'_>,
        now_ms: i64,
    ) -> Result<(u64, PieceRow), StoreError> {
        let path = self.path.clone();
        if let PieceTarget::Sector(number) = target {
            let row = self.sector(number)?.ok_or(StoreError::UnknownSector(number))?;
            if row.lifecycle.state != SectorState::Packing || row.pledged {
                return Err(StoreError::NotPacking { number, state: row.lifecycle.state });
            }
        }
        let file = piece
            .path
            .to_str()
            .ok_or_else(|| self.corrupt(format!("piece path {:?} is not UTF-8", piece.path)))?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_at(&path, "begin"))?;
        let number = match target {
            PieceTarget::Sector(n) => n,
            PieceTarget::NewSector(size) => insert_sector(&tx, &path, size, false, now_ms)?,
        };
        let index: i64 = tx
            .query_row("SELECT COUNT(*) FROM pieces WHERE number = ?1", params![number as i64], |r| r.get(0))
            .map_err(sql_at(&path, "count pieces"))?;
        tx.execute(
            "INSERT INTO pieces (number, idx, path, raw_len, padded_size, comm_p, added_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                number as i64,
                index,
                file,
                piece.raw_len as i64,
                piece.padded_size as i64,
                piece.comm_p.to_hex(),
                now_ms
            ],
        )
        .map_err(sql_at(&path, "record a piece"))?;
        tx.commit().map_err(sql_at(&path, "commit"))?;
        let row = PieceRow {
            index: index as u64,
            path: piece.path.to_path_buf(),
            raw_len: piece.raw_len,
            padded_size: piece.padded_size,
            comm_p: piece.comm_p,
            added_ms: now_ms,
        };
        Ok((number, row))
    }

    fn pieces(&self, number: u64) -> Result<Vec<PieceRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT idx, path, raw_len, padded_size, comm_p, added_ms FROM pieces WHERE number = ?1 ORDER BY idx",
            )
            .map_err(self.sql("prepare"))?;
        let rows = stmt
            .query_map(params![number as i64], |r| {
                let comm_p: String = r.get(4)?;
                let row = PieceRow {
                    index: r.get::<_, i64>(0)? as u64,
                    path: PathBuf::from(r.get::<_, String>(1)?),
                    raw_len: r.get::<_, i64>(2)? as u64,
                    padded_size: r.get::<_, i64>(3)? as u64,
                    comm_p: Commitment::default(),
                    added_ms: r.get(5)?,
                };
                Ok((row, comm_p))
            })
            .map_err(self.sql("read pieces"))?;
        let rows: Vec<(PieceRow, String)> =
            rows.collect::<Result<_, _>>().map_err(self.sql("read pieces"))?;
        rows.into_iter()
            .map(|(mut row, comm_p)| {
                row.comm_p = Commitment::from_hex(&comm_p).map_err(|e| {
                    self.corrupt(format!("sector {number}: piece {}: comm_p: {e}", row.index))
                })?;
                Ok(row)
            })
            .collect()
    }

    fn check_replay(&self, number: u64) -> Result<Lifecycle, StoreError> {
        let row = self.sector(number)?.ok_or(StoreError::UnknownSector(number))?;
        let events = self.events(number)?;
        let replayed = Lifecycle::replay(events.iter().map(|e| &e.event), &self.policy)
            .map_err(|source| StoreError::Transition { number, source })?;
        if replayed != row.lifecycle {
            return Err(self.corrupt(format!(
                "sector {number}: the event log replays to {replayed:?} but the row says {:?}",
                row.lifecycle
            )));
        }
        Ok(replayed)
    }
}

impl Store for SqliteStore {
    fn attach_observer(&mut self, observer: std::sync::Arc<dyn StoreObserver>) {
        self.observer = Some(observer);
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, as node [`DEFAULT_NODE`].
    pub fn open(path: &Path, policy: RetryPolicy) -> Result<Self, StoreError> {
        Self::open_as(path, policy, DEFAULT_NODE)
    }

    /// Opens (creating if needed) the database at `path` for node `node`: the
    /// tasks it starts are its own, and it recovers only those at a restart.
    pub fn open_as(path: &Path, policy: RetryPolicy, node: &str) -> Result<Self, StoreError> {
        let sql = |op| {
            let path = path.to_path_buf();
            move |source| StoreError::Sqlite { path, op, source }
        };
        let conn = Connection::open(path).map_err(sql("open"))?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(sql("enable WAL"))?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(sql("set synchronous"))?;
        conn.pragma_update(None, "foreign_keys", true).map_err(sql("enable foreign keys"))?;
        let version: i64 =
            conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(sql("read version"))?;
        // Each version's additions over the one before: version `v` is
        // brought up to date by every step from index `v` on, in one transaction.
        let steps: [(&str, &str); SCHEMA_VERSION as usize] = [
            (SCHEMA, "create schema"),
            // Version 1 (before remote workers) lacks the worker and task tables.
            (tasks::SCHEMA, "add the worker and task tables"),
            (tasks::INDEXES, "add the task indexes"),
            (tasks::QUEUED, "add the tasks' queued time"),
            // Failures and benches, kept across restarts.
            (tasks::CHARGES, "add the workers' charges"),
            (tasks::OWNERS, "add the tasks' owners"),
            (tasks::PC_SPLIT, "record pre-commit tasks as PC1"),
            (tasks::RESULT_FILES, "keep task results in files"),
        ];
        match usize::try_from(version) {
            Ok(v) if v < steps.len() => {
                let pending = &steps[v..];
                let batch: String = pending.iter().map(|(sql, _)| *sql).collect::<Vec<_>>().join("\n");
                conn.execute_batch(&format!(
                    "BEGIN; {batch} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                ))
                .map_err(sql(pending[0].1))?;
            }
            Ok(v) if v == steps.len() => {}
            _ => {
                return Err(StoreError::Corrupt {
                    path: path.to_path_buf(),
                    reason: format!("schema version {version}, this build reads {SCHEMA_VERSION}"),
                })
            }
        }
        conn.execute_batch(post::SCHEMA).map_err(sql("create the PoSt record"))?;
        post::add_receipt_columns(&conn).map_err(sql("add the PoSt runs' receipts"))?;
        Ok(Self {
            conn,
            path: path.to_path_buf(),
            policy,
            observer: None,
            charging: WorkerCharging::default(),
            node: node.to_string(),
        })
    }

    fn sql(&self, op: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sqlite { path: self.path.clone(), op, source }
    }

    fn corrupt(&self, reason: String) -> StoreError {
        StoreError::Corrupt { path: self.path.clone(), reason }
    }

    fn query_sectors(&self, sql: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<SectorRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(self.sql("prepare"))?;
        let mut rows = stmt.query(args).map_err(self.sql("list sectors"))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(self.sql("list sectors"))? {
            // One corrupt row must not hide every other sector: it is reported
            // (and `Store::sector` answers its error) while the rest go on.
            match read_row(&self.path, r) {
                Ok(row) => out.push(row),
                Err(e) => tracing::error!(error = %e, "a sector row that does not parse is left out"),
            }
        }
        Ok(out)
    }
}

/// Sector `number` as `conn` sees it (inside a transaction or not).
fn sector_in(conn: &Connection, path: &Path, number: u64) -> Result<Option<SectorRow>, StoreError> {
    let sql = |op| sql_at(path, op);
    let mut stmt = conn.prepare_cached("SELECT * FROM sectors WHERE number = ?1").map_err(sql("prepare"))?;
    let mut rows = stmt.query(params![number as i64]).map_err(sql("read a sector"))?;
    match rows.next().map_err(sql("read a sector"))? {
        Some(r) => read_row(path, r).map(Some),
        None => Ok(None),
    }
}

fn corrupt(path: &Path, reason: String) -> StoreError {
    StoreError::Corrupt { path: path.to_path_buf(), reason }
}

fn read_row(path: &Path, r: &rusqlite::Row<'_>) -> Result<SectorRow, StoreError> {
    let get = |e| corrupt(path, format!("unreadable sector row: {e}"));
    let size: String = r.get("sector_size").map_err(get)?;
    let state: String = r.get("state").map_err(get)?;
    let number: i64 = r.get("number").map_err(get)?;
    Ok(SectorRow {
        number: number as u64,
        sector_size: SectorSize::parse(&size).map_err(|e| corrupt(path, format!("sector {number}: {e}")))?,
        pledged: r.get("pledged").map_err(get)?,
        lifecycle: Lifecycle {
            state: parse_state(&state)
                .ok_or_else(|| corrupt(path, format!("sector {number}: unknown state {state:?}")))?,
            attempts: r.get("attempts").map_err(get)?,
        },
        ticket: typed(path, number, r, "ticket", Randomness::from_hex)?,
        ticket_epoch: r.get::<_, Option<i64>>("ticket_epoch").map_err(get)?.map(|e| e as u64),
        comm_d: typed(path, number, r, "comm_d", Commitment::from_hex)?,
        comm_r: typed(path, number, r, "comm_r", Commitment::from_hex)?,
        seed: typed(path, number, r, "seed", Randomness::from_hex)?,
        seed_epoch: r.get::<_, Option<i64>>("seed_epoch").map_err(get)?.map(|e| e as u64),
        precommit_message: typed(path, number, r, "precommit_message", |s| s.parse::<MessageId>())?,
        commit_message: typed(path, number, r, "commit_message", |s| s.parse::<MessageId>())?,
        last_error: r.get("last_error").map_err(get)?,
        created_ms: r.get("created_ms").map_err(get)?,
        updated_ms: r.get("updated_ms").map_err(get)?,
    })
}

/// A text column of sector `number` parsed into its type; a value that does not parse is corruption.
fn typed<T, E: std::fmt::Display>(
    path: &Path,
    number: i64,
    r: &rusqlite::Row<'_>,
    column: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<Option<T>, StoreError> {
    let text: Option<String> =
        r.get(column).map_err(|e| corrupt(path, format!("unreadable sector row: {e}")))?;
    text.map(|t| parse(&t).map_err(|e| corrupt(path, format!("sector {number}: {column}: {e}")))).transpose()
}

#[cfg(test)]
mod tests;
