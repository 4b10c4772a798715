//! The daemon's local API: versioned JSON over HTTP, every request
//! authenticated with the bearer token the daemon keeps in `DATA_DIR/token`.
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | GET | `/v0/status` | | `DaemonStatus` |
//! | GET | `/v0/sectors` | | `[SectorListEntry]` |
//! | GET | `/v0/sectors/{n}` | | `SectorStatus` |
//! | POST | `/v0/sectors/pledge` | `PledgeRequest` | `PledgeResponse` |
//! | POST | `/v0/sectors/add-piece` | `AddPieceRequest` | `AddedPiece` |
//! | POST | `/v0/sectors/{n}/remove` | | `SectorView` |
//! | GET | `/v0/chain/head` | | `ChainHead` |
//! | GET | `/v0/chain/messages[?after=SEQ&limit=N]` | | `[ChainMessage]` |
//! | GET | `/v0/chain/messages/{id}` | | `ChainMessage` |
//! | GET | `/v0/proving` | | `ProvingInfo` |
//! | GET | `/v0/proving/deadlines` | | `[DeadlineView]` |
//! | GET | `/v0/proving/deadlines/{n}` | | `DeadlineDetail` |
//! | POST | `/v0/proving/deadlines/{n}/check` | | `[SectorCheck]` |
//! | GET | `/v0/proving/faults` | | `FaultsView` |
//! | GET | `/v0/workers` | | `[WorkerView]` |
//! | GET | `/v0/tasks[?sector=N&after=ID&limit=N]` | | `[TaskView]` |
//! | GET | `/v0/history` | | `HistoryView` |
//! | GET | `/v0/auth/worker-tokens` | | `[TokenView]` |
//! | POST | `/v0/auth/worker-tokens` | `CreateWorkerToken` | `WorkerToken` |
//! | POST | `/v0/auth/worker-tokens/{name}/revoke` | | `Revoked` |
//!
//! Those take the daemon's own token, and so do `GET /metrics` (Prometheus;
//! [`metrics`]) and the web view at `/ui` (which keeps it in a session cookie;
//! see `docs/observability.md`). Workers use theirs on `/v0/worker/*`
//! (see `docs/protocol.md`); either token elsewhere is refused with 403.
//! Lists that grow without bound are paginated ([`Page`]): oldest first, ids
//! above `after`, at most `limit` (default 1,000, at most 10,000).
//! Errors are `ApiErrorBody { kind, message }` with a 4xx or 5xx status.
//! The request and answer types are the `wire` crate's (`wire::api`); the
//! daemon builds answers from its records in [`views`].

pub mod client;
pub mod metrics;
mod proving;
mod results;
pub mod server;
pub mod ui;
pub mod views;

pub use wire::api::*;
pub use wire::error::{ApiErrorBody, ErrorKind};
