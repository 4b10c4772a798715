//! The daemon's local API: versioned JSON over HTTP, every request
//! authenticated with the bearer token the daemon keeps in `DATA_DIR/token`.
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | GET | `/v0/sectors` | | `[SectorListEntry]` |
//! | GET | `/v0/sectors/{n}` | | `SectorStatus` |
//! | POST | `/v0/sectors/pledge` | `PledgeRequest` | `PledgeResponse` |
//! | POST | `/v0/sectors/add-piece` | `AddPieceRequest` | `AddedPiece` |
//! | POST | `/v0/sectors/{n}/remove` | | `SectorRow` |
//! | GET | `/v0/chain/head` | | `ChainHead` |
//! | GET | `/v0/chain/messages` | | `[ChainMessage]` |
//! | GET | `/v0/workers` | | `[WorkerView]` |
//! | GET | `/v0/tasks[?sector=N]` | | `[TaskRow]` |
//! | GET | `/v0/auth/worker-tokens` | | `[TokenRow]` |
//! | POST | `/v0/auth/worker-tokens` | `CreateWorkerToken` | `WorkerToken` |
//! | POST | `/v0/auth/worker-tokens/{name}/revoke` | | `Revoked` |
//!
//! Those take the daemon's own token. Workers use theirs on `/v0/worker/*`
//! (see `docs/protocol.md`); either token elsewhere is refused with 403.
//! Errors are `ApiErrorBody { kind, message }` with a 4xx or 5xx status.

pub mod client;
pub mod server;

use crate::chain::{Message, PreCommitOnChain, Receipt};
use crate::pipeline::TaskProgress;
use crate::store::{EventRow, PieceRow, SectorRow, WorkerRow};
use crate::workers::scheduler::WorkerState;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The path prefix of this API version.
pub const API_PREFIX: &str = "/v0";

/// Largest request body the API reads.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// An error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    /// A stable machine-readable kind: `unauthenticated`, `forbidden`,
    /// `not_found`, `not_registered`, `invalid_argument`, `too_large`,
    /// `conflict`, `failed_precondition`, `busy`, `internal`.
    pub kind: String,
    /// What went wrong.
    pub message: String,
}

impl ApiErrorBody {
    /// The error in an error answer's body; a body that is not one (from a
    /// proxy, say) becomes the message of kind `unknown`.
    pub fn from_answer(answer: ureq::Response) -> Self {
        let text = answer.into_string().unwrap_or_default();
        serde_json::from_str(&text).unwrap_or(Self { kind: "unknown".into(), message: text })
    }
}

/// One line of the sector list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectorListEntry {
    /// The sector.
    pub sector: SectorRow,
    /// Its running task's progress.
    pub progress: Option<TaskProgress>,
}

/// Everything about one sector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectorStatus {
    /// The sector.
    pub sector: SectorRow,
    /// Its data pieces.
    pub pieces: Vec<PieceRow>,
    /// Its event log, oldest first.
    pub events: Vec<EventRow>,
    /// Its running task's progress.
    pub progress: Option<TaskProgress>,
    /// Its PreCommit as the chain holds it.
    pub on_chain: Option<PreCommitOnChain>,
    /// The receipt of its ProveCommit message, once executed.
    pub commit_receipt: Option<Receipt>,
    /// Its tasks, oldest first.
    pub tasks: Vec<crate::store::TaskRow>,
}

/// Pledge committed-capacity sectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PledgeRequest {
    /// How many (1 to 1000).
    pub count: u32,
}

/// The pledged sectors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PledgeResponse {
    /// Their numbers.
    pub sectors: Vec<u64>,
}

/// Add a data piece from a file the daemon can read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddPieceRequest {
    /// The file (absolute, or relative to the daemon's working directory).
    pub path: PathBuf,
}

/// The chain's head.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// The current epoch.
    pub epoch: u64,
    /// Messages sent so far.
    pub messages: u64,
    /// Of which executed.
    pub executed: u64,
}

/// A message on the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainMessage {
    /// Its id.
    pub id: u64,
    /// The message.
    pub message: Message,
    /// Its receipt, once executed.
    pub receipt: Option<Receipt>,
}

/// A worker with its state and tasks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerView {
    /// The worker as registered.
    pub worker: WorkerRow,
    /// Its state now.
    pub state: WorkerState,
    /// Its open tasks.
    pub tasks: Vec<u64>,
}

/// Make a token for a new worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkerToken {
    /// The worker's name.
    pub name: String,
}

/// A new worker token (shown once; the daemon keeps only its hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerToken {
    /// The worker's name.
    pub name: String,
    /// The token to give `kiln-worker run --token`.
    pub token: String,
}

/// A revoked token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    /// The worker's name.
    pub name: String,
    /// Its tasks, which will run elsewhere.
    pub expired_tasks: Vec<u64>,
}
