//! Exactly-once sends through a Lotus node.
//!
//! A message is signed by the node's wallet under a nonce kiln chooses
//! (`WalletSignMessage`), and the signed message with its CID is recorded
//! durably *before* it is pushed (`MpoolPush`). The CID is then known whatever
//! happens: a crash before the push leaves a recorded message that the next
//! [`Outbox::flush`] pushes (the same bytes, so the same CID); a crash after
//! the push leaves one the node already has, which a second push cannot
//! duplicate (Lotus refuses a second message under a nonce, and the chain
//! executes a nonce once). Nonces come from `max(MpoolGetNonce, last recorded
//! + 1)` under one lock per outbox, so two sends never share one.
//!
//! The record also answers "which message carries this sector" (for a sender
//! that crashed before it recorded the id) and is the miner's message log.

use super::json::{CidJson, MessageJson, SignedMessageJson};
use super::message::{signed_message_cid, MessageError};
use super::rpc::{LotusClient, RpcError};
use crate::chain::{Message, SealingMethod};
use crate::failpoints::crash_point;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Why a send failed.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The outbox's database failed.
    #[error("outbox {path}: {op}: {source}")]
    Db {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The error.
        #[source]
        source: rusqlite::Error,
    },
    /// The node failed.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// A message that cannot be encoded.
    #[error(transparent)]
    Message(#[from] MessageError),
    /// The node signed or pushed something other than what kiln recorded.
    #[error("the node answered for another message: {0}")]
    Mismatch(String),
    /// A record that does not parse.
    #[error("outbox {path}: message {seq}: {reason}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// Its place in the log.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS lotus_outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    sender     TEXT NOT NULL,
    nonce      INTEGER NOT NULL,
    cid        TEXT NOT NULL UNIQUE,
    message    TEXT NOT NULL,
    signed     TEXT NOT NULL,
    pushed     INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    UNIQUE (sender, nonce)
);
CREATE TABLE IF NOT EXISTS lotus_outbox_sectors (
    sector INTEGER NOT NULL,
    method TEXT NOT NULL,
    seq    INTEGER NOT NULL REFERENCES lotus_outbox (seq),
    PRIMARY KEY (sector, method, seq)
);
";

/// A recorded message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// Its place in the log, from 1.
    pub seq: u64,
    /// Its CID.
    pub cid: CidJson,
    /// What kiln sent.
    pub message: Message,
    /// Whether the node is known to have it.
    pub pushed: bool,
    /// Its nonce.
    pub nonce: u64,
}

/// The outbox, in a SQLite file.
pub struct Outbox {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// Held from choosing a nonce until its message is recorded.
    sending: Mutex<()>,
}

impl Outbox {
    /// Opens (or creates) the outbox in the database at `path`.
    pub fn open(path: &Path) -> Result<Self, OutboxError> {
        let db = |op| {
            let path = path.to_path_buf();
            move |source| OutboxError::Db { path, op, source }
        };
        let conn = Connection::open(path).map_err(db("open"))?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(db("enable WAL"))?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(db("set synchronous"))?;
        conn.execute_batch(SCHEMA).map_err(db("create schema"))?;
        Ok(Self { conn: Mutex::new(conn), path: path.to_path_buf(), sending: Mutex::new(()) })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn db(&self, op: &'static str) -> impl FnOnce(rusqlite::Error) -> OutboxError + '_ {
        move |source| OutboxError::Db { path: self.path.clone(), op, source }
    }

    /// Signs `unsigned` (gas already set) under the sender's next nonce,
    /// records it as `message`, then pushes it; its CID.
    pub fn send(
        &self,
        lotus: &LotusClient,
        message: &Message,
        mut unsigned: MessageJson,
        now_ms: i64,
    ) -> Result<CidJson, OutboxError> {
        // Whatever an earlier crash left unpushed goes first (its nonce is lower).
        self.flush(lotus)?;
        let recorded = {
            let _sending = self.sending.lock().unwrap_or_else(|p| p.into_inner());
            let sender = unsigned.from.to_string();
            let last: Option<i64> = self
                .conn()
                .query_row("SELECT MAX(nonce) FROM lotus_outbox WHERE sender = ?1", params![sender], |r| {
                    r.get(0)
                })
                .map_err(self.db("read the last nonce"))?;
            let next = lotus.mpool_get_nonce(&unsigned.from)?;
            unsigned.nonce = next.max(last.map_or(0, |n| n as u64 + 1));
            unsigned.cid = None;
            let signed = lotus.wallet_sign_message(&unsigned.from, &unsigned)?;
            if signed.message.nonce != unsigned.nonce || signed.message.params != unsigned.params {
                return Err(OutboxError::Mismatch(format!(
                    "asked to sign nonce {} and got nonce {} signed",
                    unsigned.nonce, signed.message.nonce
                )));
            }
            let cid = CidJson(signed_message_cid(&signed)?);
            if signed.cid.is_some_and(|c| c != cid) {
                return Err(OutboxError::Mismatch(format!(
                    "the node says the signed message is {}, its bytes make {}",
                    signed.cid.map(|c| c.0.to_string()).unwrap_or_default(),
                    cid.0
                )));
            }
            self.record(&sender, &signed, cid, message, now_ms)?
        };
        crash_point!("lotus:recorded-unpushed");
        self.push(lotus, &recorded)?;
        Ok(recorded.0)
    }

    fn record(
        &self,
        sender: &str,
        signed: &SignedMessageJson,
        cid: CidJson,
        message: &Message,
        now_ms: i64,
    ) -> Result<(CidJson, SignedMessageJson, u64), OutboxError> {
        let body = serde_json::to_string(message).map_err(|e| OutboxError::Mismatch(e.to_string()))?;
        let signed_text = serde_json::to_string(signed).map_err(|e| OutboxError::Mismatch(e.to_string()))?;
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.db("begin"))?;
        tx.execute(
            "INSERT INTO lotus_outbox (sender, nonce, cid, message, signed, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![sender, signed.message.nonce as i64, cid.0.to_string(), body, signed_text, now_ms],
        )
        .map_err(self.db("record a signed message"))?;
        let seq = tx.last_insert_rowid();
        for sector in message.sectors() {
            tx.execute(
                "INSERT INTO lotus_outbox_sectors (sector, method, seq) VALUES (?1, ?2, ?3)",
                params![sector as i64, message.method(), seq],
            )
            .map_err(self.db("record a message's sectors"))?;
        }
        tx.commit().map_err(self.db("commit"))?;
        Ok((cid, signed.clone(), seq as u64))
    }

    /// Pushes a recorded message and marks it pushed. A node that already
    /// has it (a push before a crash) refuses the nonce: that is success.
    fn push(
        &self,
        lotus: &LotusClient,
        (cid, signed, seq): &(CidJson, SignedMessageJson, u64),
    ) -> Result<(), OutboxError> {
        match lotus.mpool_push(signed) {
            Ok(pushed) if pushed == *cid => {}
            Ok(other) => {
                return Err(OutboxError::Mismatch(format!(
                    "pushed {} and the node named it {}",
                    cid.0, other.0
                )))
            }
            Err(RpcError::Node { message, .. }) if already_known(&message) => {
                tracing::info!(cid = %cid.0, reason = %message, "the node already has the message");
            }
            Err(e) => return Err(e.into()),
        }
        crash_point!("lotus:pushed-unmarked");
        self.conn()
            .execute("UPDATE lotus_outbox SET pushed = 1 WHERE seq = ?1", params![*seq as i64])
            .map_err(self.db("mark a message pushed"))?;
        Ok(())
    }

    /// Pushes every recorded message not yet known pushed, oldest first.
    pub fn flush(&self, lotus: &LotusClient) -> Result<(), OutboxError> {
        let pending: Vec<(i64, String, String)> = {
            let conn = self.conn();
            let mut stmt = conn
                .prepare_cached("SELECT seq, cid, signed FROM lotus_outbox WHERE pushed = 0 ORDER BY seq")
                .map_err(self.db("prepare"))?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(self.db("read unpushed messages"))?;
            rows.collect::<Result<_, _>>().map_err(self.db("read unpushed messages"))?
        };
        for (seq, cid, signed) in pending {
            let corrupt =
                |reason: String| OutboxError::Corrupt { path: self.path.clone(), seq: seq as u64, reason };
            let cid = CidJson(cid.parse().map_err(|e| corrupt(format!("CID: {e}")))?);
            let signed: SignedMessageJson =
                serde_json::from_str(&signed).map_err(|e| corrupt(e.to_string()))?;
            tracing::info!(cid = %cid.0, "pushing a message recorded before a restart");
            self.push(lotus, &(cid, signed, seq as u64))?;
        }
        Ok(())
    }

    /// The newest recorded message of `method` carrying `sector`.
    pub fn find_sent(&self, method: SealingMethod, sector: u64) -> Result<Option<Recorded>, OutboxError> {
        let seq: Option<i64> = self
            .conn()
            .query_row(
                "SELECT MAX(seq) FROM lotus_outbox_sectors WHERE sector = ?1 AND method = ?2",
                params![sector as i64, method.name()],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.db("look up a sector's message"))?
            .flatten();
        match seq {
            Some(seq) => self.at(seq as u64),
            None => Ok(None),
        }
    }

    /// The message recorded at `seq`.
    pub fn at(&self, seq: u64) -> Result<Option<Recorded>, OutboxError> {
        Ok(self.after(seq.saturating_sub(1), 1)?.into_iter().find(|r| r.seq == seq))
    }

    /// The message with CID `cid`.
    pub fn by_cid(&self, cid: &CidJson) -> Result<Option<Recorded>, OutboxError> {
        let seq: Option<i64> = self
            .conn()
            .query_row("SELECT seq FROM lotus_outbox WHERE cid = ?1", params![cid.0.to_string()], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.db("look up a message"))?;
        match seq {
            Some(seq) => self.at(seq as u64),
            None => Ok(None),
        }
    }

    /// Up to `limit` recorded messages after `after`, oldest first.
    pub fn after(&self, after: u64, limit: usize) -> Result<Vec<Recorded>, OutboxError> {
        let rows: Vec<(i64, String, String, bool, i64)> = {
            let conn = self.conn();
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, cid, message, pushed, nonce FROM lotus_outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )
                .map_err(self.db("prepare"))?;
            let rows = stmt
                .query_map(params![after as i64, limit as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .map_err(self.db("read messages"))?;
            rows.collect::<Result<_, _>>().map_err(self.db("read messages"))?
        };
        rows.into_iter()
            .map(|(seq, cid, message, pushed, nonce)| {
                let corrupt = |reason: String| OutboxError::Corrupt {
                    path: self.path.clone(),
                    seq: seq as u64,
                    reason,
                };
                Ok(Recorded {
                    seq: seq as u64,
                    cid: CidJson(cid.parse().map_err(|e| corrupt(format!("CID: {e}")))?),
                    message: serde_json::from_str(&message).map_err(|e| corrupt(e.to_string()))?,
                    pushed,
                    nonce: nonce as u64,
                })
            })
            .collect()
    }
}

/// Whether a node's refusal of a push says it already holds the message (or
/// one under its nonce, which only kiln's own record could have been).
fn already_known(error: &str) -> bool {
    let e = error.to_ascii_lowercase();
    ["already in mpool", "already in mempool", "already exists", "existing nonce", "nonce too low"]
        .iter()
        .any(|known| e.contains(known))
}
