//! Remote workers, their tokens, and the record of every task the driver ran.
//!
//! A task row is written before its task starts and closed when its outcome
//! is recorded, so after a crash the store says which tasks were in flight:
//! local ones died with the process ([`TaskState::Interrupted`]); remote ones
//! may still be running on their worker and get a fresh lease
//! ([`TaskStore::recover_tasks`]).

use super::{sql_at, SectorStore, SqliteStore, StoreError};
use rusqlite::{params, OptionalExtension, Row, TransactionBehavior};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use wire::answers::{bounded_text, ERROR_MESSAGE_CHARS};
use wire::worker::Capabilities;

pub(super) const SCHEMA: &str = "
CREATE TABLE worker_tokens (
    name         TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    dispatch_key TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    revoked_ms   INTEGER
);
CREATE TABLE workers (
    name          TEXT PRIMARY KEY REFERENCES worker_tokens(name),
    instance      TEXT NOT NULL,
    url           TEXT NOT NULL,
    capabilities  TEXT NOT NULL,
    registered_ms INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL,
    unhealthy     TEXT
);
CREATE TABLE tasks (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    sector         INTEGER NOT NULL REFERENCES sectors(number),
    kind           TEXT NOT NULL,
    worker         TEXT,
    state          TEXT NOT NULL,
    created_ms     INTEGER NOT NULL,
    updated_ms     INTEGER NOT NULL,
    lease_until_ms INTEGER,
    result         BLOB,
    error          TEXT
);
CREATE INDEX tasks_by_sector ON tasks(sector, id);
";

/// How long the sector waited before each task (schema 4).
pub(super) const QUEUED: &str = "ALTER TABLE tasks ADD COLUMN queued_ms INTEGER;";

/// What a worker is charged with (schema 5): its failed tasks in a row and
/// its bench, kept across restarts of the daemon.
pub(super) const CHARGES: &str = "
ALTER TABLE workers ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workers ADD COLUMN benched_until_ms INTEGER;
ALTER TABLE workers ADD COLUMN bench_reason TEXT;
";

/// The node that started or dispatched each task (schema 6): a restarted
/// node recovers only its own. Tasks from before are the one-box node's.
pub(super) const OWNERS: &str = "
ALTER TABLE tasks ADD COLUMN owner TEXT NOT NULL DEFAULT 'local';
CREATE INDEX IF NOT EXISTS tasks_by_owner ON tasks(owner, state);
";

/// PC1 and PC2 became separate task kinds (schema 7): a pre-commit task of
/// before, which ran both, is recorded as PC1.
pub(super) const PC_SPLIT: &str = "UPDATE tasks SET kind = 'pc1' WHERE kind = 'pre_commit';";

/// Results stream to files (schema 8): a task row records the file and its
/// length, not the bytes, and a task for no one sector (a Window PoSt
/// partition) has none. SQLite cannot drop `NOT NULL`, so the table is built
/// again, its id sequence carried over (ids are never reused). A result still
/// kept in the row, delivered but not yet judged, is given up: its task is
/// expired and runs again.
pub(super) const RESULT_FILES: &str = "
CREATE TABLE tasks_new (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    sector         INTEGER REFERENCES sectors(number),
    kind           TEXT NOT NULL,
    worker         TEXT,
    state          TEXT NOT NULL,
    created_ms     INTEGER NOT NULL,
    updated_ms     INTEGER NOT NULL,
    lease_until_ms INTEGER,
    error          TEXT,
    queued_ms      INTEGER,
    owner          TEXT NOT NULL DEFAULT 'local',
    result_path    TEXT,
    result_len     INTEGER
);
INSERT INTO tasks_new (id, sector, kind, worker, state, created_ms, updated_ms, lease_until_ms, error,
                       queued_ms, owner, result_len)
    SELECT id, sector, kind, worker,
           CASE WHEN state = 'reported' AND result IS NOT NULL THEN 'expired' ELSE state END,
           created_ms, updated_ms, lease_until_ms,
           CASE WHEN state = 'reported' AND result IS NOT NULL
                THEN 'its result was kept in the database before schema 8; the task runs again'
                ELSE error END,
           queued_ms, owner, length(result)
    FROM tasks;
INSERT INTO sqlite_sequence (name, seq) SELECT 'tasks_new', 0
    WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'tasks_new');
UPDATE sqlite_sequence
    SET seq = MAX(seq, COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'tasks'), 0))
    WHERE name = 'tasks_new';
DROP TABLE tasks;
ALTER TABLE tasks_new RENAME TO tasks;
CREATE INDEX tasks_by_sector ON tasks(sector, id);
CREATE INDEX tasks_by_owner ON tasks(owner, state);
CREATE INDEX tasks_by_state ON tasks(state, id);
CREATE INDEX tasks_by_update ON tasks(updated_ms);
";

/// Indexes for the open-task scans of every tick and for pruning (schema 3).
pub(super) const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks(state, id);
CREATE INDEX IF NOT EXISTS tasks_by_update ON tasks(updated_ms);
";

pub use wire::api::{TaskKind, TaskState};

/// A result a worker delivered, as the daemon keeps it: a file (written
/// whole and synced before it is recorded) and its length.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskOutput {
    /// The file.
    pub path: PathBuf,
    /// Its length in bytes.
    pub len: u64,
}

impl TaskOutput {
    /// Writes `bytes` to `path` durably (its directory made if need be): a
    /// result as the result route keeps it, for a caller holding it whole.
    pub fn save(path: PathBuf, bytes: &[u8]) -> Result<Self, proofs::Error> {
        proofs::durable::create_dir(proofs::durable::parent_dir(&path))?;
        proofs::durable::write_file(&path, bytes)?;
        Ok(Self { path, len: bytes.len() as u64 })
    }

    /// The result's bytes, if the file holds what was recorded and no more than `limit`.
    pub fn read(&self, limit: u64) -> Result<Vec<u8>, String> {
        let at = |e: std::io::Error| format!("task result {}: {e}", self.path.display());
        let len = std::fs::metadata(&self.path).map_err(at)?.len();
        if len != self.len || len > limit {
            return Err(format!(
                "task result {}: {len} bytes, {} recorded (at most {limit} taken)",
                self.path.display(),
                self.len
            ));
        }
        std::fs::read(&self.path).map_err(at)
    }
}

/// One task as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRow {
    /// Task id (never reused).
    pub id: u64,
    /// The sector; none for a task over many (a Window PoSt partition).
    pub sector: Option<u64>,
    /// What it does.
    pub kind: TaskKind,
    /// The remote worker running it; none when it runs in the daemon.
    pub worker: Option<String>,
    /// Where it is.
    pub state: TaskState,
    /// When it started (ms since the epoch).
    pub created_ms: i64,
    /// Last change (ms since the epoch).
    pub updated_ms: i64,
    /// A remote task is re-run elsewhere if its worker has not renewed it by then.
    pub lease_until_ms: Option<i64>,
    /// Why it failed, was rejected or expired.
    pub error: Option<String>,
    /// Bytes of the reported result, if any.
    pub result_bytes: Option<u64>,
    /// How long its sector waited in the state that called for it before it
    /// started (ms); none for tasks recorded before schema 4.
    pub queued_ms: Option<i64>,
    /// The node that started or dispatched it.
    pub owner: String,
}

/// A worker token (the secret itself is never stored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRow {
    /// The worker's name.
    pub name: String,
    /// When it was made.
    pub created_ms: i64,
    /// When it was revoked.
    pub revoked_ms: Option<i64>,
}

/// A registered worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRow {
    /// Its name (its token's).
    pub name: String,
    /// Its process's random id; a new one means it restarted.
    pub instance: String,
    /// Where its task API listens.
    pub url: String,
    /// What it can run.
    pub capabilities: Capabilities,
    /// When it last registered.
    pub registered_ms: i64,
    /// Its last heartbeat.
    pub last_seen_ms: i64,
    /// Why it gets no tasks, after it returned a bad proof.
    pub unhealthy: Option<String>,
    /// Whether its token is revoked.
    pub revoked: bool,
    /// Its failed tasks in a row since its last delivered proof.
    pub failures: u32,
    /// Until when it gets no task (ms since the epoch).
    pub benched_until_ms: Option<i64>,
    /// Why it was benched.
    pub bench_reason: Option<String>,
}

/// How a worker is charged for the tasks it fails (`[workers]`
/// `failures_before_bench`, `bench_ms`): each failed, expired or refused
/// task counts; at `failures_before_bench` in a row it is benched for
/// `bench_ms`; a delivered proof clears the count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerCharging {
    /// Failures in a row that bench a worker.
    pub failures_before_bench: u32,
    /// How long a bench lasts (ms).
    pub bench_ms: u64,
}

impl Default for WorkerCharging {
    fn default() -> Self {
        Self { failures_before_bench: 3, bench_ms: 600_000 }
    }
}

const TASK_COLUMNS: &str =
    "id, sector, kind, worker, state, created_ms, updated_ms, lease_until_ms, error, result_len, queued_ms, owner";

/// Remote workers, their tokens and what they are charged with.
pub trait WorkerStore: Send {
    /// Records a new worker token. A name whose token was revoked may get a new
    /// one; a name with a live token may not.
    fn create_worker_token(
        &mut self,
        name: &str,
        token_hash: &str,
        dispatch_key: &str,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// Revokes `name`'s token; its open tasks expire (they will run elsewhere).
    fn revoke_worker_token(&mut self, name: &str, now_ms: i64) -> Result<Vec<u64>, StoreError>;

    /// Every worker token, by name.
    fn worker_tokens(&self) -> Result<Vec<TokenRow>, StoreError>;

    /// The token whose hash is `token_hash`.
    fn token_owner(&self, token_hash: &str) -> Result<Option<TokenRow>, StoreError>;

    /// The key the daemon presents to worker `name`'s task API.
    fn dispatch_key(&self, name: &str) -> Result<String, StoreError>;

    /// Records worker `name`'s registration. A new instance (the worker
    /// restarted) expires the tasks the old instance held, which are returned,
    /// and is charged for them once ([`WorkerCharging`]), in the same
    /// transaction: a worker that restarts with tasks open is benched like one
    /// that fails them. Cancelled tasks it still held are let go. An unhealthy
    /// mark and a bench stay: a worker cannot clear them by re-registering,
    /// only the operator can ([`WorkerStore::reset_worker`]).
    fn register_worker(
        &mut self,
        name: &str,
        instance: &str,
        url: &str,
        capabilities: &Capabilities,
        now_ms: i64,
    ) -> Result<Vec<u64>, StoreError>;

    /// Records a heartbeat of worker `name`'s `instance`, renewing the leases
    /// of the `running` tasks it holds. Returns the ids among `running` the
    /// worker should drop (cancelled, expired or not its own). A cancelled
    /// task it still lists keeps its lease (its slot stays taken until the
    /// worker lets go); one it no longer lists is let go now.
    /// [`StoreError::UnknownWorker`] if that instance is not registered.
    fn worker_heartbeat(
        &mut self,
        name: &str,
        instance: &str,
        running: &[u64],
        lease_until_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<u64>, StoreError>;

    /// Every registered worker, by name.
    fn workers(&self) -> Result<Vec<WorkerRow>, StoreError>;

    /// Clears worker `name`'s unhealthy mark, bench and failure count (the
    /// operator checked it).
    fn reset_worker(&mut self, name: &str) -> Result<(), StoreError>;

    /// Marks worker `name` unhealthy: it gets no tasks until the operator resets it.
    fn mark_worker_unhealthy(&mut self, name: &str, reason: &str) -> Result<(), StoreError>;

    /// How failing workers are charged from now on.
    fn set_worker_charging(&mut self, charging: WorkerCharging);

    /// Charges worker `name` with a failed, expired or refused task (`why`):
    /// one more failure in a row; at `failures_before_bench` it is benched.
    /// Returns until when, if this benched it. A worker with no row (its
    /// token re-created) is not charged.
    fn charge_worker(&mut self, name: &str, why: &str, now_ms: i64) -> Result<Option<i64>, StoreError>;

    /// Gives worker `name` no task until `until_ms` (a dispatch it refused or
    /// could not take), unless it is benched longer already.
    fn hold_off_worker(&mut self, name: &str, until_ms: i64, why: &str) -> Result<(), StoreError>;

    /// Worker `name` delivered a proof that verified: its failure count starts again.
    fn worker_delivered(&mut self, name: &str) -> Result<(), StoreError>;
}

/// Tasks: started, leased, reported and ended; recovered per node at a restart.
pub trait TaskStore: Send {
    /// Stops sector `sector`'s open tasks (`why`): local ones and remote ones
    /// whose worker already reported are cancelled; remote ones still running
    /// become cancelling, keeping their worker's slot until it lets go.
    /// Returns the ids now cancelling (their workers are to be told).
    fn cancel_sector_tasks(&mut self, sector: u64, why: &str, now_ms: i64) -> Result<Vec<u64>, StoreError>;

    /// A remote task's worker accepted it: its lease runs from now. A task
    /// cancelled while it was being handed over becomes cancelling (the
    /// worker holds it now). Returns whether the task is still wanted.
    fn task_handed_over(&mut self, id: u64, lease_until_ms: i64, now_ms: i64) -> Result<bool, StoreError>;

    /// Cancelling tasks whose lease lapsed (their worker is gone or stopped
    /// listing them without a heartbeat) are let go; returns them.
    fn lapse_cancelling(&mut self, now_ms: i64) -> Result<Vec<u64>, StoreError>;

    /// Records a task starting on `worker` (none: here) for `sector` (none:
    /// a task over many, such as a Window PoSt partition); returns its id.
    fn start_task(
        &mut self,
        sector: Option<u64>,
        kind: TaskKind,
        worker: Option<&str>,
        lease_until_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<u64, StoreError>;

    /// Sets a running task's lease.
    fn set_task_lease(&mut self, id: u64, lease_until_ms: i64) -> Result<(), StoreError>;

    /// Closes an open task in `state`; a task already closed is left as it is.
    fn finish_task(
        &mut self,
        id: u64,
        state: TaskState,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// Records worker `worker`'s outcome of task `id`: its result (a file
    /// written whole) or why it failed. Only a running task held by that
    /// worker takes a report; the caller removes a result file refused.
    fn report_task(
        &mut self,
        id: u64,
        worker: &str,
        outcome: Result<&TaskOutput, &str>,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// Task `id`.
    fn task(&self, id: u64) -> Result<Option<TaskRow>, StoreError>;

    /// The result task `id`'s worker reported.
    fn task_result(&self, id: u64) -> Result<Option<TaskOutput>, StoreError>;

    /// Tasks in flight, oldest first: running and reported ones, and
    /// cancelling ones still holding their worker's slot
    /// ([`TaskState::holds_slot`]).
    fn open_tasks(&self) -> Result<Vec<TaskRow>, StoreError>;

    /// Every task, or sector `sector`'s, oldest first.
    fn tasks(&self, sector: Option<u64>) -> Result<Vec<TaskRow>, StoreError>;

    /// Up to `limit` tasks (of `sector`, or all) with ids above `after`, oldest first.
    fn tasks_after(&self, sector: Option<u64>, after: u64, limit: usize) -> Result<Vec<TaskRow>, StoreError>;

    /// Deletes finished tasks last updated before `before_ms` (the record of
    /// open ones is what the driver and the workers act on, and stays).
    /// Returns how many went.
    fn prune_tasks(&mut self, before_ms: i64) -> Result<usize, StoreError>;

    /// At this node's start: its local tasks that were running died with its
    /// last process; its remote ones may live on and get until
    /// `lease_until_ms` for their worker to heartbeat again. Other nodes'
    /// tasks are theirs: untouched.
    fn recover_tasks(&mut self, lease_until_ms: i64, now_ms: i64) -> Result<(), StoreError>;
}

impl WorkerStore for SqliteStore {
    fn create_worker_token(
        &mut self,
        name: &str,
        token_hash: &str,
        dispatch_key: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        if let Some(t) = self.worker_tokens()?.into_iter().find(|t| t.name == name) {
            if t.revoked_ms.is_none() {
                return Err(StoreError::Conflict(format!(
                    "worker {name:?} already has a token; revoke it first to make a new one"
                )));
            }
        }
        let path = self.path.clone();
        let tx = self.immediate()?;
        tx.execute(
            "INSERT INTO worker_tokens (name, token_hash, dispatch_key, created_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(name) DO UPDATE SET token_hash = excluded.token_hash,
               dispatch_key = excluded.dispatch_key, created_ms = excluded.created_ms, revoked_ms = NULL",
            params![name, token_hash, dispatch_key, now_ms],
        )
        .map_err(sql_at(&path, "record a worker token"))?;
        // A name given a new token is a new worker: the old process's row
        // (its URL, last heartbeat, health) must not show as the new one
        // online before it has registered.
        tx.execute("DELETE FROM workers WHERE name = ?1", params![name])
            .map_err(sql_at(&path, "forget the old worker"))?;
        tx.commit().map_err(sql_at(&path, "commit"))?;
        Ok(())
    }

    fn revoke_worker_token(&mut self, name: &str, now_ms: i64) -> Result<Vec<u64>, StoreError> {
        let path = self.path.clone();
        let tx = self.immediate()?;
        let n = tx
            .execute(
                "UPDATE worker_tokens SET revoked_ms = ?2 WHERE name = ?1 AND revoked_ms IS NULL",
                params![name, now_ms],
            )
            .map_err(sql_at(&path, "revoke a worker token"))?;
        if n == 0 {
            let known: Option<i64> = tx
                .query_row("SELECT 1 FROM worker_tokens WHERE name = ?1", params![name], |r| r.get(0))
                .optional()
                .map_err(sql_at(&path, "read worker tokens"))?;
            return Err(match known {
                Some(_) => StoreError::Conflict(format!("worker {name:?}'s token is already revoked")),
                None => StoreError::UnknownWorker(name.into()),
            });
        }
        let why = "the worker's token was revoked";
        let expired = expire_open_tasks(&tx, &path, name, why, now_ms)?;
        let released = release_cancelling(&tx, &path, name, why, now_ms)?;
        tx.commit().map_err(sql_at(&path, "commit"))?;
        self.report_closed(&expired);
        self.report_closed(&released);
        Ok(expired)
    }

    fn worker_tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name, created_ms, revoked_ms FROM worker_tokens ORDER BY name")
            .map_err(self.sql("prepare"))?;
        let rows = stmt
            .query_map([], |r| Ok(TokenRow { name: r.get(0)?, created_ms: r.get(1)?, revoked_ms: r.get(2)? }))
            .map_err(self.sql("read worker tokens"))?;
        rows.collect::<Result<_, _>>().map_err(self.sql("read worker tokens"))
    }

    fn token_owner(&self, token_hash: &str) -> Result<Option<TokenRow>, StoreError> {
        self.conn
            .query_row(
                "SELECT name, created_ms, revoked_ms FROM worker_tokens WHERE token_hash = ?1",
                params![token_hash],
                |r| Ok(TokenRow { name: r.get(0)?, created_ms: r.get(1)?, revoked_ms: r.get(2)? }),
            )
            .optional()
            .map_err(self.sql("look up a worker token"))
    }

    fn dispatch_key(&self, name: &str) -> Result<String, StoreError> {
        self.conn
            .query_row("SELECT dispatch_key FROM worker_tokens WHERE name = ?1", params![name], |r| r.get(0))
            .optional()
            .map_err(self.sql("read a dispatch key"))?
            .ok_or_else(|| StoreError::UnknownWorker(name.into()))
    }

    fn register_worker(
        &mut self,
        name: &str,
        instance: &str,
        url: &str,
        capabilities: &Capabilities,
        now_ms: i64,
    ) -> Result<Vec<u64>, StoreError> {
        let (path, charging) = (self.path.clone(), self.charging);
        let caps = serde_json::to_string(capabilities).expect("capabilities serialise");
        let tx = self.immediate()?;
        let previous: Option<String> = tx
            .query_row("SELECT instance FROM workers WHERE name = ?1", params![name], |r| r.get(0))
            .optional()
            .map_err(sql_at(&path, "read a worker"))?;
        let restarted = previous.as_deref().is_some_and(|p| p != instance);
        let (expired, released) = if restarted {
            let why = "the worker restarted";
            let expired = expire_open_tasks(&tx, &path, name, why, now_ms)?;
            if !expired.is_empty() {
                let why = format!("it restarted with {} task(s) open: {expired:?}", expired.len());
                charge(&tx, &path, charging, name, &why, now_ms)?;
            }
            (expired, release_cancelling(&tx, &path, name, why, now_ms)?)
        } else {
            (Vec::new(), Vec::new())
        };
        tx.execute(
            "INSERT INTO workers (name, instance, url, capabilities, registered_ms, last_seen_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)
             ON CONFLICT(name) DO UPDATE SET instance = excluded.instance, url = excluded.url,
               capabilities = excluded.capabilities, registered_ms = excluded.registered_ms,
               last_seen_ms = excluded.last_seen_ms",
            params![name, instance, url, caps, now_ms],
        )
        .map_err(sql_at(&path, "record a worker"))?;
        tx.commit().map_err(sql_at(&path, "commit"))?;
        self.report_closed(&expired);
        self.report_closed(&released);
        Ok(expired)
    }

    fn worker_heartbeat(
        &mut self,
        name: &str,
        instance: &str,
        running: &[u64],
        lease_until_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<u64>, StoreError> {
        let path = self.path.clone();
        let tx = self.immediate()?;
        let n = tx
            .execute(
                "UPDATE workers SET last_seen_ms = ?3 WHERE name = ?1 AND instance = ?2",
                params![name, instance, now_ms],
            )
            .map_err(sql_at(&path, "record a heartbeat"))?;
        if n == 0 {
            return Err(StoreError::UnknownWorker(name.into()));
        }
        let mut drop = Vec::new();
        for &id in running {
            let renewed = tx
                .execute(
                    "UPDATE tasks SET lease_until_ms = ?3
                     WHERE id = ?1 AND worker = ?2 AND state IN ('running', 'cancelling')",
                    params![id as i64, name, lease_until_ms],
                )
                .map_err(sql_at(&path, "renew a lease"))?;
            let wanted = renewed == 1 && task_state(&tx, &path, id)? == Some(TaskState::Running);
            if !wanted {
                drop.push(id);
            }
        }
        let listed: std::collections::HashSet<u64> = running.iter().copied().collect();
        let let_go: Vec<u64> =
            tasks_of(&tx, &path, name, "cancelling")?.into_iter().filter(|id| !listed.contains(id)).collect();
        for &id in &let_go {
            set_state(&tx, &path, id, TaskState::Cancelled, now_ms)?;
        }
        tx.commit().map_err(sql_at(&path, "commit"))?;
        self.report_closed(&let_go);
        Ok(drop)
    }

    fn workers(&self) -> Result<Vec<WorkerRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT w.name, w.instance, w.url, w.capabilities, w.registered_ms, w.last_seen_ms,
                        w.unhealthy, t.revoked_ms IS NOT NULL, w.failures, w.benched_until_ms, w.bench_reason
                 FROM workers w JOIN worker_tokens t ON t.name = w.name ORDER BY w.name",
            )
            .map_err(self.sql("prepare"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    WorkerRow {
                        name: r.get(0)?,
                        instance: r.get(1)?,
                        url: r.get(2)?,
                        capabilities: Capabilities::default(),
                        registered_ms: r.get(4)?,
                        last_seen_ms: r.get(5)?,
                        unhealthy: r.get(6)?,
                        revoked: r.get(7)?,
                        failures: r.get::<_, i64>(8)?.clamp(0, u32::MAX as i64) as u32,
                        benched_until_ms: r.get(9)?,
                        bench_reason: r.get(10)?,
                    },
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(self.sql("read workers"))?;
        let mut out = Vec::new();
        for row in rows {
            let (mut w, caps) = row.map_err(self.sql("read workers"))?;
            w.capabilities = serde_json::from_str(&caps)
                .map_err(|e| self.corrupt(format!("worker {:?}: capabilities {caps}: {e}", w.name)))?;
            out.push(w);
        }
        Ok(out)
    }

    fn reset_worker(&mut self, name: &str) -> Result<(), StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE workers SET unhealthy = NULL, failures = 0, benched_until_ms = NULL, bench_reason = NULL
                 WHERE name = ?1",
                params![name],
            )
            .map_err(self.sql("reset a worker"))?;
        if n == 0 {
            return Err(StoreError::UnknownWorker(name.into()));
        }
        Ok(())
    }

    fn mark_worker_unhealthy(&mut self, name: &str, reason: &str) -> Result<(), StoreError> {
        self.conn
            .execute("UPDATE workers SET unhealthy = ?2 WHERE name = ?1", params![name, reason])
            .map_err(self.sql("mark a worker unhealthy"))?;
        Ok(())
    }

    fn set_worker_charging(&mut self, charging: WorkerCharging) {
        self.charging = charging;
    }

    fn charge_worker(&mut self, name: &str, why: &str, now_ms: i64) -> Result<Option<i64>, StoreError> {
        let (path, charging) = (self.path.clone(), self.charging);
        let tx = self.immediate()?;
        let benched = charge(&tx, &path, charging, name, why, now_ms)?;
        tx.commit().map_err(sql_at(&path, "commit"))?;
        Ok(benched)
    }

    fn hold_off_worker(&mut self, name: &str, until_ms: i64, why: &str) -> Result<(), StoreError> {
        let why = bounded_text(why, ERROR_MESSAGE_CHARS);
        self.conn
            .execute(
                "UPDATE workers SET bench_reason = ?3, benched_until_ms = ?2
                 WHERE name = ?1 AND (benched_until_ms IS NULL OR benched_until_ms < ?2)",
                params![name, until_ms, why],
            )
            .map_err(self.sql("hold a worker off"))?;
        Ok(())
    }

    fn worker_delivered(&mut self, name: &str) -> Result<(), StoreError> {
        self.conn
            .execute("UPDATE workers SET failures = 0 WHERE name = ?1 AND failures != 0", params![name])
            .map_err(self.sql("clear a worker's failures"))?;
        Ok(())
    }
}

impl TaskStore for SqliteStore {
    fn cancel_sector_tasks(&mut self, sector: u64, why: &str, now_ms: i64) -> Result<Vec<u64>, StoreError> {
        let path = self.path.clone();
        let tx = self.immediate()?;
        let (cancelled, cancelling) = cancel_sector_tasks(&tx, &path, sector, why, now_ms)?;
        tx.commit().map_err(sql_at(&path, "commit"))?;
        self.report_closed(&cancelled);
        Ok(cancelling)
    }

    fn task_handed_over(&mut self, id: u64, lease_until_ms: i64, now_ms: i64) -> Result<bool, StoreError> {
        let path = self.path.clone();
        let tx = self.immediate()?;
        let state = task_state(&tx, &path, id)?;
        match state {
            Some(TaskState::Running) => {
                tx.execute(
                    "UPDATE tasks SET lease_until_ms = ?2 WHERE id = ?1",
                    params![id as i64, lease_until_ms],
                )
                .map_err(sql_at(&path, "set a lease"))?;
            }
            Some(TaskState::Cancelled) => {
                tx.execute(
                    "UPDATE tasks SET state = 'cancelling', lease_until_ms = ?2, updated_ms = ?3
                     WHERE id = ?1 AND worker IS NOT NULL",
                    params![id as i64, lease_until_ms, now_ms],
                )
                .map_err(sql_at(&path, "hold a cancelled task's slot"))?;
            }
            _ => {}
        }
        tx.commit().map_err(sql_at(&path, "commit"))?;
        Ok(state == Some(TaskState::Running))
    }

    fn lapse_cancelling(&mut self, now_ms: i64) -> Result<Vec<u64>, StoreError> {
        let ids: Vec<u64> = self
            .query_tasks(
                &format!(
                    "SELECT {TASK_COLUMNS} FROM tasks WHERE state = 'cancelling' AND lease_until_ms < ?1 ORDER BY id"
                ),
                params![now_ms],
            )?
            .into_iter()
            .map(|t| t.id)
            .collect();
        if ids.is_empty() {
            return Ok(ids);
        }
        let path = self.path.clone();
        let tx = self.immediate()?;
        for &id in &ids {
            set_state(&tx, &path, id, TaskState::Cancelled, now_ms)?;
        }
        tx.commit().map_err(sql_at(&path, "commit"))?;
        self.report_closed(&ids);
        Ok(ids)
    }

    fn start_task(
        &mut self,
        sector: Option<u64>,
        kind: TaskKind,
        worker: Option<&str>,
        lease_until_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        // The sector has waited since it entered the state that calls for this task.
        // A sector row that does not read is reported where it is used; here it only loses the queued time.
        let since = sector.and_then(|n| self.sector(n).ok().flatten()).map_or(now_ms, |r| r.updated_ms);
        let queued_ms = now_ms.saturating_sub(since).max(0);
        self.conn
            .execute(
                "INSERT INTO tasks (sector, kind, worker, state, created_ms, updated_ms, lease_until_ms, queued_ms, owner)
                 VALUES (?1, ?2, ?3, 'running', ?4, ?4, ?5, ?6, ?7)",
                params![sector.map(|n| n as i64), kind.name(), worker, now_ms, lease_until_ms, queued_ms, self.node],
            )
            .map_err(self.sql("record a task"))?;
        let id = self.conn.last_insert_rowid() as u64;
        if let Some(m) = &self.observer {
            m.task_started(kind, worker, queued_ms);
        }
        Ok(id)
    }

    fn set_task_lease(&mut self, id: u64, lease_until_ms: i64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE tasks SET lease_until_ms = ?2 WHERE id = ?1 AND state = 'running'",
                params![id as i64, lease_until_ms],
            )
            .map_err(self.sql("set a lease"))?;
        Ok(())
    }

    fn finish_task(
        &mut self,
        id: u64,
        state: TaskState,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let error = error.map(|e| bounded_text(e, ERROR_MESSAGE_CHARS));
        let closed = self
            .conn
            .execute(
                "UPDATE tasks SET state = ?2, error = ?3, updated_ms = ?4
                 WHERE id = ?1 AND state IN ('running', 'reported', 'cancelling')",
                params![id as i64, state.name(), error, now_ms],
            )
            .map_err(self.sql("close a task"))?;
        if closed == 1 {
            self.report_closed(&[id]);
        }
        Ok(())
    }

    fn report_task(
        &mut self,
        id: u64,
        worker: &str,
        outcome: Result<&TaskOutput, &str>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let (path, len, error) = match outcome {
            Ok(out) => (Some(out.path.to_string_lossy().into_owned()), Some(out.len as i64), None),
            Err(e) => (None, None, Some(bounded_text(e, ERROR_MESSAGE_CHARS))),
        };
        let n = self
            .conn
            .execute(
                "UPDATE tasks SET state = 'reported', result_path = ?3, result_len = ?4, error = ?5, updated_ms = ?6
                 WHERE id = ?1 AND worker = ?2 AND state = 'running'",
                params![id as i64, worker, path, len, error, now_ms],
            )
            .map_err(self.sql("record a task result"))?;
        if n == 1 {
            return Ok(());
        }
        match self.task(id)? {
            Some(t) if t.worker.as_deref() == Some(worker) && t.state == TaskState::Cancelling => {
                // The worker is done with it: its slot is free.
                self.finish_task(id, TaskState::Cancelled, t.error.as_deref(), now_ms)?;
                Err(StoreError::Conflict(format!("task {id} was cancelled; its result is not wanted")))
            }
            Some(t) if t.worker.as_deref() == Some(worker) => {
                Err(StoreError::Conflict(format!("task {id} is {}, not running", t.state.name())))
            }
            _ => Err(StoreError::Conflict(format!("task {id} is not assigned to worker {worker:?}"))),
        }
    }

    fn task(&self, id: u64) -> Result<Option<TaskRow>, StoreError> {
        let rows =
            self.query_tasks(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"), params![id as i64])?;
        Ok(rows.into_iter().next())
    }

    fn task_result(&self, id: u64) -> Result<Option<TaskOutput>, StoreError> {
        let row: Option<(Option<String>, Option<i64>)> = self
            .conn
            .query_row("SELECT result_path, result_len FROM tasks WHERE id = ?1", params![id as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(self.sql("read a task result"))?;
        Ok(match row {
            Some((Some(path), Some(len))) => Some(TaskOutput { path: path.into(), len: len.max(0) as u64 }),
            _ => None,
        })
    }

    fn open_tasks(&self) -> Result<Vec<TaskRow>, StoreError> {
        self.query_tasks(
            &format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE state IN ('running', 'reported', 'cancelling') ORDER BY id"
            ),
            params![],
        )
    }

    fn tasks(&self, sector: Option<u64>) -> Result<Vec<TaskRow>, StoreError> {
        self.tasks_after(sector, 0, usize::MAX)
    }

    fn tasks_after(&self, sector: Option<u64>, after: u64, limit: usize) -> Result<Vec<TaskRow>, StoreError> {
        let (after, limit) = (after.min(i64::MAX as u64) as i64, limit.min(i64::MAX as usize) as i64);
        match sector {
            Some(s) => self.query_tasks(
                &format!(
                    "SELECT {TASK_COLUMNS} FROM tasks WHERE sector = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
                ),
                params![s as i64, after, limit],
            ),
            None => self.query_tasks(
                &format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id > ?1 ORDER BY id LIMIT ?2"),
                params![after, limit],
            ),
        }
    }

    fn prune_tasks(&mut self, before_ms: i64) -> Result<usize, StoreError> {
        self.conn
            .execute(
                "DELETE FROM tasks WHERE updated_ms < ?1 AND state NOT IN ('running', 'reported', 'cancelling')",
                params![before_ms],
            )
            .map_err(self.sql("prune tasks"))
    }

    fn recover_tasks(&mut self, lease_until_ms: i64, now_ms: i64) -> Result<(), StoreError> {
        let (path, node) = (self.path.clone(), self.node.clone());
        let tx = self.immediate()?;
        let interrupted: Vec<u64> = {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT id FROM tasks WHERE owner = ?1 AND state = 'running' AND worker IS NULL ORDER BY id",
                )
                .map_err(sql_at(&path, "prepare"))?;
            let ids = stmt
                .query_map(params![node], |r| r.get::<_, i64>(0))
                .map_err(sql_at(&path, "list interrupted tasks"))?;
            ids.map(|id| id.map(|id| id as u64))
                .collect::<Result<_, _>>()
                .map_err(sql_at(&path, "list interrupted tasks"))?
        };
        tx.execute(
            "UPDATE tasks SET state = 'interrupted', updated_ms = ?1, error = 'the daemon stopped'
             WHERE owner = ?2 AND state = 'running' AND worker IS NULL",
            params![now_ms, node],
        )
        .map_err(sql_at(&path, "close interrupted tasks"))?;
        // Tasks whose result a thread of the last process waited for (a Window
        // PoSt's prover): that wait is gone with it.
        let in_memory: Vec<String> = TaskKind::ALL
            .into_iter()
            .filter(|k| k.awaited_in_memory())
            .map(|k| format!("'{}'", k.name()))
            .collect();
        let in_memory = in_memory.join(", ");
        let mut closed = interrupted;
        {
            let mut stmt = tx
                .prepare_cached(&format!(
                    "SELECT id FROM tasks WHERE owner = ?1 AND kind IN ({in_memory})
                     AND state IN ('running', 'reported') ORDER BY id"
                ))
                .map_err(sql_at(&path, "prepare"))?;
            let ids = stmt
                .query_map(params![node], |r| r.get::<_, i64>(0))
                .map_err(sql_at(&path, "list Window PoSt tasks"))?;
            for id in ids {
                closed.push(id.map_err(sql_at(&path, "list Window PoSt tasks"))? as u64);
            }
        }
        tx.execute(
            &format!(
                "UPDATE tasks SET state = 'interrupted', updated_ms = ?1, error = 'the daemon stopped while it waited'
                 WHERE owner = ?2 AND kind IN ({in_memory}) AND state IN ('running', 'reported')"
            ),
            params![now_ms, node],
        )
        .map_err(sql_at(&path, "close Window PoSt tasks"))?;
        tx.execute(
            "UPDATE tasks SET lease_until_ms = ?1 WHERE owner = ?2 AND state = 'running' AND worker IS NOT NULL",
            params![lease_until_ms, node],
        )
        .map_err(sql_at(&path, "renew remote leases"))?;
        tx.commit().map_err(sql_at(&path, "commit"))?;
        self.report_closed(&closed);
        Ok(())
    }
}

impl SqliteStore {
    fn immediate(&mut self) -> Result<rusqlite::Transaction<'_>, StoreError> {
        let path = self.path.clone();
        self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_at(&path, "begin"))
    }

    /// Tells the metrics that tasks `ids` ended (as recorded now).
    pub(super) fn report_closed(&self, ids: &[u64]) {
        let Some(m) = &self.observer else { return };
        for &id in ids {
            if let Ok(Some(task)) = self.task(id) {
                m.task_finished(&task);
            }
        }
    }

    fn query_tasks(&self, sql: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<TaskRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(self.sql("prepare"))?;
        let mut rows = stmt.query(args).map_err(self.sql("read tasks"))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(self.sql("read tasks"))? {
            out.push(self.read_task(r)?);
        }
        Ok(out)
    }

    fn read_task(&self, r: &Row<'_>) -> Result<TaskRow, StoreError> {
        let get = |e| self.corrupt(format!("unreadable task row: {e}"));
        let id: i64 = r.get(0).map_err(get)?;
        let kind: String = r.get(2).map_err(get)?;
        let state: String = r.get(4).map_err(get)?;
        Ok(TaskRow {
            id: id as u64,
            sector: r.get::<_, Option<i64>>(1).map_err(get)?.map(|n| n as u64),
            kind: TaskKind::parse(&kind).ok_or_else(|| self.corrupt(format!("task {id}: kind {kind:?}")))?,
            worker: r.get(3).map_err(get)?,
            state: TaskState::parse(&state)
                .ok_or_else(|| self.corrupt(format!("task {id}: state {state:?}")))?,
            created_ms: r.get(5).map_err(get)?,
            updated_ms: r.get(6).map_err(get)?,
            lease_until_ms: r.get(7).map_err(get)?,
            error: r.get(8).map_err(get)?,
            result_bytes: r.get::<_, Option<i64>>(9).map_err(get)?.map(|n| n as u64),
            queued_ms: r.get(10).map_err(get)?,
            owner: r.get(11).map_err(get)?,
        })
    }
}

fn task_state(
    tx: &rusqlite::Transaction<'_>,
    path: &std::path::Path,
    id: u64,
) -> Result<Option<TaskState>, StoreError> {
    let state: Option<String> = tx
        .query_row("SELECT state FROM tasks WHERE id = ?1", params![id as i64], |r| r.get(0))
        .optional()
        .map_err(sql_at(path, "read a task"))?;
    Ok(state.and_then(|s| TaskState::parse(&s)))
}

fn set_state(
    tx: &rusqlite::Transaction<'_>,
    path: &std::path::Path,
    id: u64,
    state: TaskState,
    now_ms: i64,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE tasks SET state = ?2, updated_ms = ?3 WHERE id = ?1",
        params![id as i64, state.name(), now_ms],
    )
    .map_err(sql_at(path, "update a task"))?;
    Ok(())
}

/// Ids of worker `worker`'s tasks in `state`.
fn tasks_of(
    tx: &rusqlite::Transaction<'_>,
    path: &std::path::Path,
    worker: &str,
    state: &str,
) -> Result<Vec<u64>, StoreError> {
    let mut stmt = tx
        .prepare_cached("SELECT id FROM tasks WHERE worker = ?1 AND state = ?2 ORDER BY id")
        .map_err(sql_at(path, "prepare"))?;
    let ids = stmt
        .query_map(params![worker, state], |r| r.get::<_, i64>(0))
        .map_err(sql_at(path, "read tasks"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_at(path, "read tasks"))?;
    Ok(ids.into_iter().map(|i| i as u64).collect())
}

/// The worker's cancelling tasks are let go (it restarted or lost its token).
fn release_cancelling(
    tx: &rusqlite::Transaction<'_>,
    path: &std::path::Path,
    worker: &str,
    why: &str,
    now_ms: i64,
) -> Result<Vec<u64>, StoreError> {
    let ids = tasks_of(tx, path, worker, "cancelling")?;
    tx.execute(
        "UPDATE tasks SET state = 'cancelled', updated_ms = ?3, error = COALESCE(error, ?2)
         WHERE worker = ?1 AND state = 'cancelling'",
        params![worker, why, now_ms],
    )
    .map_err(sql_at(path, "let cancelled tasks go"))?;
    Ok(ids)
}

/// See [`TaskStore::cancel_sector_tasks`]; returns (cancelled, cancelling).
pub(super) fn cancel_sector_tasks(
    tx: &rusqlite::Transaction<'_>,
    path: &std::path::Path,
    sector: u64,
    why: &str,
    now_ms: i64,
) -> Result<(Vec<u64>, Vec<u64>), StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT id, worker IS NOT NULL AND state = 'running' FROM tasks
             WHERE sector = ?1 AND state IN ('running', 'reported') ORDER BY id",
        )
        .map_err(sql_at(path, "prepare"))?;
    let open: Vec<(i64, bool)> = stmt
        .query_map(params![sector as i64], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(sql_at(path, "read tasks"))?
        .collect::<Result<_, _>>()
        .map_err(sql_at(path, "read tasks"))?;
    let (mut cancelled, mut cancelling) = (Vec::new(), Vec::new());
    for (id, on_worker) in open {
        let state = if on_worker { "cancelling" } else { "cancelled" };
        tx.execute(
            "UPDATE tasks SET state = ?2, error = ?3, updated_ms = ?4 WHERE id = ?1",
            params![id, state, why, now_ms],
        )
        .map_err(sql_at(path, "cancel a task"))?;
        if on_worker {
            cancelling.push(id as u64);
        } else {
            cancelled.push(id as u64);
        }
    }
    Ok((cancelled, cancelling))
}

/// One more failure of `worker` (see [`WorkerStore::charge_worker`]).
fn charge(
    tx: &rusqlite::Transaction<'_>,
    path: &std::path::Path,
    charging: WorkerCharging,
    worker: &str,
    why: &str,
    now_ms: i64,
) -> Result<Option<i64>, StoreError> {
    let failures: Option<i64> = tx
        .query_row("SELECT failures FROM workers WHERE name = ?1", params![worker], |r| r.get(0))
        .optional()
        .map_err(sql_at(path, "read a worker's failures"))?;
    let Some(failures) = failures else { return Ok(None) };
    let failures = failures.saturating_add(1);
    if failures < i64::from(charging.failures_before_bench) {
        tx.execute("UPDATE workers SET failures = ?2 WHERE name = ?1", params![worker, failures])
            .map_err(sql_at(path, "charge a worker"))?;
        return Ok(None);
    }
    let until = now_ms.saturating_add(charging.bench_ms.min(i64::MAX as u64) as i64);
    let reason =
        bounded_text(&format!("{failures} failed tasks in a row; the last: {why}"), ERROR_MESSAGE_CHARS);
    tx.execute(
        "UPDATE workers SET failures = 0, bench_reason = ?3,
           benched_until_ms = MAX(COALESCE(benched_until_ms, 0), ?2) WHERE name = ?1",
        params![worker, until, reason],
    )
    .map_err(sql_at(path, "bench a worker"))?;
    tracing::warn!(%worker, failures, until, %why, "worker benched after failed tasks in a row");
    Ok(Some(until))
}

fn expire_open_tasks(
    tx: &rusqlite::Transaction<'_>,
    path: &std::path::Path,
    worker: &str,
    why: &str,
    now_ms: i64,
) -> Result<Vec<u64>, StoreError> {
    let mut stmt = tx
        .prepare("SELECT id FROM tasks WHERE worker = ?1 AND state = 'running'")
        .map_err(sql_at(path, "prepare"))?;
    let ids = stmt
        .query_map(params![worker], |r| r.get::<_, i64>(0))
        .map_err(sql_at(path, "read tasks"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_at(path, "read tasks"))?;
    tx.execute(
        "UPDATE tasks SET state = 'expired', error = ?2, updated_ms = ?3 WHERE worker = ?1 AND state = 'running'",
        params![worker, why, now_ms],
    )
    .map_err(sql_at(path, "expire tasks"))?;
    Ok(ids.into_iter().map(|i| i as u64).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::RetryPolicy;
    use proofs::SectorSize;
    use wire::worker::RemoteTask;

    fn store(dir: &std::path::Path) -> SqliteStore {
        SqliteStore::open(&dir.join("kiln.db"), RetryPolicy::default()).unwrap()
    }

    fn caps() -> Capabilities {
        Capabilities { tasks: vec![RemoteTask::C2], slots: 1, ..Default::default() }
    }

    #[test]
    fn tasks_page_by_id_and_pruning_keeps_open_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = store(tmp.path());
        let a = s.create_sector(SectorSize::KiB2, true, 0).unwrap();
        let b = s.create_sector(SectorSize::KiB2, true, 0).unwrap();
        let ids: Vec<u64> = (0..7)
            .map(|i| {
                s.start_task(Some(if i % 2 == 0 { a } else { b }), TaskKind::Pc1, None, None, i).unwrap()
            })
            .collect();
        let page = |sector, after, limit| -> Vec<u64> {
            s.tasks_after(sector, after, limit).unwrap().iter().map(|t| t.id).collect()
        };
        assert_eq!(page(None, 0, 3), ids[..3]);
        assert_eq!(page(None, ids[2], 3), ids[3..6]);
        assert_eq!(page(None, ids[5], 3), ids[6..], "a short page is the last");
        assert_eq!(page(Some(b), 0, 10), vec![ids[1], ids[3], ids[5]]);
        assert_eq!(page(None, u64::MAX, 10), Vec::<u64>::new());

        // Finished long ago, finished lately, still running.
        s.finish_task(ids[0], TaskState::Done, None, 10).unwrap();
        s.finish_task(ids[1], TaskState::Failed, Some("x"), 10).unwrap();
        s.finish_task(ids[2], TaskState::Done, None, 1_000).unwrap();
        assert_eq!(s.prune_tasks(500).unwrap(), 2);
        let left: Vec<u64> = s.tasks(None).unwrap().iter().map(|t| t.id).collect();
        assert_eq!(left, ids[2..], "running tasks stay however old");
        assert_eq!(s.open_tasks().unwrap().len(), 4);
    }

    #[test]
    fn tokens_are_unique_per_name_and_revocation_expires_the_workers_tasks() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = store(tmp.path());
        s.create_worker_token("gpu1", "h1", "k1", 1).unwrap();
        assert!(matches!(s.create_worker_token("gpu1", "h2", "k2", 2), Err(StoreError::Conflict(_))));
        assert_eq!(s.token_owner("h1").unwrap().unwrap().name, "gpu1");
        assert_eq!(s.dispatch_key("gpu1").unwrap(), "k1");
        assert!(matches!(s.dispatch_key("nope"), Err(StoreError::UnknownWorker(_))));

        let n = s.create_sector(SectorSize::KiB2, true, 1).unwrap();
        s.register_worker("gpu1", "i1", "http://w", &caps(), 10).unwrap();
        let t = s.start_task(Some(n), TaskKind::Commit, Some("gpu1"), Some(100), 10).unwrap();
        assert_eq!(s.revoke_worker_token("gpu1", 20).unwrap(), vec![t]);
        assert_eq!(s.task(t).unwrap().unwrap().state, TaskState::Expired);
        assert!(s.workers().unwrap()[0].revoked);
        assert!(s.token_owner("h1").unwrap().unwrap().revoked_ms.is_some());
        assert!(matches!(s.revoke_worker_token("gpu1", 21), Err(StoreError::Conflict(_))));
        assert!(matches!(s.revoke_worker_token("other", 21), Err(StoreError::UnknownWorker(_))));
        // A revoked name can get a new token.
        assert!(s.workers().unwrap()[0].revoked);
        s.create_worker_token("gpu1", "h3", "k3", 30).unwrap();
        assert!(s.token_owner("h1").unwrap().is_none());
        // The old process's row is gone: nothing shows online under the new
        // dispatch key until the new worker registers.
        assert!(s.workers().unwrap().is_empty());
        s.register_worker("gpu1", "i2", "http://w2", &caps(), 31).unwrap();
        assert_eq!(s.workers().unwrap()[0].url, "http://w2");
    }

    #[test]
    fn heartbeats_renew_only_the_workers_own_running_tasks() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = store(tmp.path());
        for w in ["a", "b"] {
            s.create_worker_token(w, &format!("h{w}"), "k", 1).unwrap();
            s.register_worker(w, "i", "http://w", &caps(), 1).unwrap();
        }
        let n = s.create_sector(SectorSize::KiB2, true, 1).unwrap();
        let ta = s.start_task(Some(n), TaskKind::Commit, Some("a"), Some(100), 1).unwrap();
        let tb = s.start_task(Some(n), TaskKind::Commit, Some("b"), Some(100), 1).unwrap();
        s.finish_task(tb, TaskState::Cancelled, None, 2).unwrap();
        let drop = s.worker_heartbeat("a", "i", &[ta, tb, 999], 500, 5).unwrap();
        assert_eq!(drop, vec![tb, 999]);
        assert_eq!(s.task(ta).unwrap().unwrap().lease_until_ms, Some(500));
        assert_eq!(s.workers().unwrap()[0].last_seen_ms, 5);
        // Another instance of the same name is not registered.
        assert!(matches!(s.worker_heartbeat("a", "other", &[], 500, 6), Err(StoreError::UnknownWorker(_))));
    }

    #[test]
    fn stored_errors_are_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = store(tmp.path());
        let n = s.create_sector(SectorSize::KiB2, true, 1).unwrap();
        let t = s.start_task(Some(n), TaskKind::Commit, None, None, 1).unwrap();
        // A worker's refusal of ten megabytes, as a dispatch error carried it.
        s.finish_task(t, TaskState::Failed, Some(&"\u{1b}".repeat(10_000_000)), 2).unwrap();
        let error = s.task(t).unwrap().unwrap().error.unwrap();
        assert!(error.len() < 7 * ERROR_MESSAGE_CHARS && error.ends_with("(cut)"), "{}", error.len());
        assert!(!error.chars().any(char::is_control));
    }

    #[test]
    fn reports_reach_only_running_tasks_of_their_worker() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = store(tmp.path());
        s.create_worker_token("a", "ha", "k", 1).unwrap();
        s.register_worker("a", "i", "http://w", &caps(), 1).unwrap();
        let n = s.create_sector(SectorSize::KiB2, true, 1).unwrap();
        let t = s.start_task(Some(n), TaskKind::Commit, Some("a"), Some(100), 1).unwrap();
        let output = |name: &str, bytes: &[u8]| TaskOutput::save(tmp.path().join(name), bytes).unwrap();
        assert!(matches!(s.report_task(t, "b", Ok(&output("p", b"p")), 2), Err(StoreError::Conflict(_))));
        let proof = output("proof", b"proof");
        s.report_task(t, "a", Ok(&proof), 2).unwrap();
        let row = s.task(t).unwrap().unwrap();
        assert_eq!((row.state, row.result_bytes), (TaskState::Reported, Some(5)));
        assert_eq!(s.task_result(t).unwrap().unwrap(), proof);
        assert_eq!(proof.read(5).unwrap(), b"proof");
        assert!(proof.read(4).is_err(), "over the limit");
        std::fs::write(&proof.path, b"proof!").unwrap();
        assert!(proof.read(100).unwrap_err().contains("5 recorded"), "a file changed since is refused");
        // A second report of the same task is refused.
        assert!(matches!(
            s.report_task(t, "a", Ok(&output("again", b"again")), 3),
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(s.open_tasks().unwrap().len(), 1);
        s.finish_task(t, TaskState::Done, None, 4).unwrap();
        assert!(s.open_tasks().unwrap().is_empty());
    }

    #[test]
    fn restart_recovery_interrupts_local_tasks_and_renews_remote_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let (local, remote) = {
            let mut s = store(tmp.path());
            s.create_worker_token("a", "ha", "k", 1).unwrap();
            s.register_worker("a", "i1", "http://w", &caps(), 1).unwrap();
            let n = s.create_sector(SectorSize::KiB2, true, 1).unwrap();
            (
                s.start_task(Some(n), TaskKind::Pc1, None, None, 1).unwrap(),
                s.start_task(Some(n), TaskKind::Commit, Some("a"), Some(10), 1).unwrap(),
            )
        };
        let mut s = store(tmp.path());
        s.recover_tasks(9_000, 50).unwrap();
        assert_eq!(s.task(local).unwrap().unwrap().state, TaskState::Interrupted);
        let r = s.task(remote).unwrap().unwrap();
        assert_eq!((r.state, r.lease_until_ms), (TaskState::Running, Some(9_000)));
        // The same worker registering again keeps its task; a restarted one loses it.
        assert!(s.register_worker("a", "i1", "http://w", &caps(), 60).unwrap().is_empty());
        s.mark_worker_unhealthy("a", "bad proof").unwrap();
        assert_eq!(s.register_worker("a", "i2", "http://w", &caps(), 70).unwrap(), vec![remote]);
        assert_eq!(s.task(remote).unwrap().unwrap().state, TaskState::Expired);
        assert_eq!(
            s.workers().unwrap()[0].unhealthy.as_deref(),
            Some("bad proof"),
            "re-registering keeps the mark"
        );
        s.reset_worker("a").unwrap();
        assert_eq!(s.workers().unwrap()[0].unhealthy, None, "the operator clears it");
        assert!(matches!(s.reset_worker("nobody"), Err(StoreError::UnknownWorker(_))));
    }

    #[test]
    fn a_restarting_node_recovers_only_its_own_tasks() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("kiln.db");
        let open = |node| SqliteStore::open_as(&db, RetryPolicy::default(), node).unwrap();
        let (mut a, mut b) = (open("node-a"), open("node-b"));
        a.create_worker_token("w", "hw", "k", 1).unwrap();
        a.register_worker("w", "i1", "http://w", &caps(), 1).unwrap();
        let n = a.create_sector(SectorSize::KiB2, true, 1).unwrap();
        let a_local = a.start_task(Some(n), TaskKind::Pc1, None, None, 1).unwrap();
        let a_remote = a.start_task(Some(n), TaskKind::Commit, Some("w"), Some(10), 1).unwrap();
        let b_local = b.start_task(Some(n), TaskKind::Finalize, None, None, 2).unwrap();
        let b_remote = b.start_task(Some(n), TaskKind::Commit, Some("w"), Some(20), 2).unwrap();
        assert_eq!(a.task(b_local).unwrap().unwrap().owner, "node-b");
        // Node A restarts: its own local task died with it, its remote one gets
        // a fresh lease; B's running tasks are B's and stay exactly as they were.
        let b_before = [b.task(b_local).unwrap(), b.task(b_remote).unwrap()];
        drop(a);
        let mut a = open("node-a");
        a.recover_tasks(9_000, 50).unwrap();
        assert_eq!(a.task(a_local).unwrap().unwrap().state, TaskState::Interrupted);
        let r = a.task(a_remote).unwrap().unwrap();
        assert_eq!((r.state, r.lease_until_ms), (TaskState::Running, Some(9_000)));
        assert_eq!([b.task(b_local).unwrap(), b.task(b_remote).unwrap()], b_before);
        assert_eq!(b_before[0].as_ref().unwrap().state, TaskState::Running);
        // B restarting later recovers its own in turn.
        b.recover_tasks(9_500, 60).unwrap();
        assert_eq!(b.task(b_local).unwrap().unwrap().state, TaskState::Interrupted);
        assert_eq!(b.task(b_remote).unwrap().unwrap().lease_until_ms, Some(9_500));
        assert_eq!(a.task(a_remote).unwrap().unwrap().lease_until_ms, Some(9_000), "A's untouched by B");
    }
}
