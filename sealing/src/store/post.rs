//! The record of every PoSt the daemon ran: what it proved, what it found
//! faulty, how long each half took and what became of its message.

use super::{Store, StoreError};
use rusqlite::params;
use serde::Serialize;
pub use wire::api::{PostRun, RunFault};

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
    error       TEXT
);
CREATE INDEX IF NOT EXISTS post_runs_started ON post_runs (started_ms);
";

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
    Option<i64>,
    Option<String>,
);

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}

impl Store {
    /// Records a PoSt run; returns its id.
    pub fn record_post_run(&mut self, run: &PostRun) -> Result<u64, StoreError> {
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
                    run.message.map(|v| v as i64),
                    run.error,
                ],
            )
            .map_err(self.sql("record a PoSt run"))?;
        if let Some(m) = &self.metrics {
            m.post_run(run);
        }
        Ok(self.conn.last_insert_rowid() as u64)
    }

    /// The newest `limit` PoSt runs, newest first.
    pub fn post_runs(&self, limit: usize) -> Result<Vec<PostRun>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, kind, deadline, open_epoch, partition, election, started_ms, vanilla_ms, snark_ms,
                 proven, faults, prover, message, error FROM post_runs ORDER BY id DESC LIMIT ?1",
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
                    message: r.12.map(|v| v as u64),
                    error: r.13,
                })
            })
            .collect()
    }
}
