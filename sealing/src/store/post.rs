//! The record of every PoSt the daemon ran: what it proved, what it found
//! faulty, how long each half took and what became of its message.

use super::{SqliteStore, StoreError, StoredId};
use rusqlite::params;
use serde::Serialize;
pub use wire::api::{PostRun, RunFault};
use wire::chain::MessageId;

/// Created at every open (a table added after schema version 3; nothing else
/// depends on it).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS post_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL,
    deadline    INTEGER,
    open_epoch  INTEGER,
    partition   INTEGER,
    election    INTEGER,
    started_ms  INTEGER NOT NULL,
    vanilla_ms  INTEGER NOT NULL,
    snark_ms    INTEGER NOT NULL,
    proven      TEXT NOT NULL,
    faults      TEXT NOT NULL,
    prover      TEXT NOT NULL,
    message     INTEGER,
    error       TEXT,
    exit_code   INTEGER,
    receipt_error TEXT
);
CREATE INDEX IF NOT EXISTS post_runs_started ON post_runs (started_ms);
";

/// Runs still waiting for their message's receipt (the prover looks each tick).
const AWAITING_INDEX: &str = "CREATE INDEX IF NOT EXISTS post_runs_awaiting ON post_runs (id)
    WHERE message IS NOT NULL AND exit_code IS NULL;";

/// Adds the receipt columns to a record made before schema 5.
pub(super) fn add_receipt_columns(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('post_runs')")?;
    let columns: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    for (name, decl) in [("exit_code", "INTEGER"), ("receipt_error", "TEXT")] {
        if !columns.iter().any(|c| c == name) {
            conn.execute_batch(&format!("ALTER TABLE post_runs ADD COLUMN {name} {decl};"))?;
        }
    }
    conn.execute_batch(AWAITING_INDEX)
}

type Row = (
    i64,
    String,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    i64,
    i64,
    i64,
    String,
    String,
    String,
    Option<StoredId>,
    Option<String>,
    Option<i64>,
    Option<String>,
);

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}

/// PoSt runs and what the chain made of their messages.
pub trait ProvingStore: Send {
    /// Records a PoSt run; returns its id.
    fn record_post_run(&mut self, run: &PostRun) -> Result<u64, StoreError>;

    /// Runs whose message has no receipt recorded yet: (run id, message id).
    fn runs_awaiting_receipt(&self) -> Result<Vec<(u64, MessageId)>, StoreError>;

    /// Records what the chain made of run `id`'s message.
    fn set_run_receipt(&mut self, id: u64, exit_code: i64, error: Option<&str>) -> Result<(), StoreError>;

    /// The newest `limit` PoSt runs, newest first.
    fn post_runs(&self, limit: usize) -> Result<Vec<PostRun>, StoreError>;
}

impl ProvingStore for SqliteStore {
    fn record_post_run(&mut self, run: &PostRun) -> Result<u64, StoreError> {
        self.conn
            .execute(
                "INSERT INTO post_runs (kind, deadline, open_epoch, partition, election, started_ms, vanilla_ms,
                 snark_ms, proven, faults, prover, message, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                params![
                    run.kind,
                    run.deadline.map(|v| v as i64),
                    run.open_epoch.map(|v| v as i64),
                    run.partition.map(|v| v as i64),
                    run.election.map(|v| v as i64),
                    run.started_ms,
                    run.vanilla_ms as i64,
                    run.snark_ms as i64,
                    json(&run.proven),
                    json(&run.faults),
                    run.prover,
                    run.message.as_ref().map(|m| m.as_str()),
                    run.error,
                ],
            )
            .map_err(self.sql("record a PoSt run"))?;
        if let Some(m) = &self.observer {
            m.post_run(run);
        }
        Ok(self.conn.last_insert_rowid() as u64)
    }

    fn runs_awaiting_receipt(&self) -> Result<Vec<(u64, MessageId)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, message FROM post_runs WHERE message IS NOT NULL AND exit_code IS NULL ORDER BY id",
            )
            .map_err(self.sql("prepare"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, StoredId>(1)?.0)))
            .map_err(self.sql("read PoSt runs"))?;
        rows.collect::<Result<_, _>>().map_err(self.sql("read PoSt runs"))
    }

    fn set_run_receipt(&mut self, id: u64, exit_code: i64, error: Option<&str>) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE post_runs SET exit_code = ?2, receipt_error = ?3 WHERE id = ?1",
                params![id as i64, exit_code, error],
            )
            .map_err(self.sql("record a PoSt run's receipt"))?;
        if exit_code != 0 {
            let kind: Option<String> = self
                .conn
                .query_row("SELECT kind FROM post_runs WHERE id = ?1", params![id as i64], |r| r.get(0))
                .ok();
            if let (Some(m), Some(kind)) = (&self.observer, kind) {
                m.post_rejected(&kind);
            }
        }
        Ok(())
    }

    fn post_runs(&self, limit: usize) -> Result<Vec<PostRun>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, kind, deadline, open_epoch, partition, election, started_ms, vanilla_ms, snark_ms,
                 proven, faults, prover, message, error, exit_code, receipt_error
                 FROM post_runs ORDER BY id DESC LIMIT ?1",
            )
            .map_err(self.sql("prepare"))?;
        let rows: Vec<Row> = stmt
            .query_map(params![limit.min(i64::MAX as usize) as i64], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                    r.get(10)?,
                    r.get(11)?,
                    r.get(12)?,
                    r.get(13)?,
                    r.get(14)?,
                    r.get(15)?,
                ))
            })
            .map_err(self.sql("read PoSt runs"))?
            .collect::<Result<_, _>>()
            .map_err(self.sql("read PoSt runs"))?;
        rows.into_iter()
            .map(|r| {
                let corrupt = |e: serde_json::Error| StoreError::Corrupt {
                    path: self.path.clone(),
                    reason: format!("PoSt run {}: {e}", r.0),
                };
                Ok(PostRun {
                    id: r.0 as u64,
                    kind: r.1,
                    deadline: r.2.map(|v| v as u64),
                    open_epoch: r.3.map(|v| v as u64),
                    partition: r.4.map(|v| v as u64),
                    election: r.5.map(|v| v as u64),
                    started_ms: r.6,
                    vanilla_ms: r.7 as u64,
                    snark_ms: r.8 as u64,
                    proven: serde_json::from_str(&r.9).map_err(corrupt)?,
                    faults: serde_json::from_str(&r.10).map_err(corrupt)?,
                    prover: r.11,
                    message: r.12.map(|m| m.0),
                    error: r.13,
                    exit_code: r.14,
                    receipt_error: r.15,
                })
            })
            .collect()
    }
}
