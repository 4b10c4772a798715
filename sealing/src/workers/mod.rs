//! Remote workers: the scheduler's choice of worker ([`scheduler`]) and the
//! daemon's calls to a worker's task API ([`dispatch`]). The protocol itself
//! is the wire crate's (`wire::worker`, documented in `docs/protocol.md`).
//!
//! The daemon runs C1 (it holds the sector's files), sends the binary C1
//! output to a free worker that has the sector size's parameters, and leases
//! the task; the worker renews the lease with each heartbeat and reports the
//! proof, which the daemon verifies before accepting it. A worker that stops
//! heartbeating loses its tasks when the lease runs out; one that returns a
//! bad proof is marked unhealthy. Either way the task runs again elsewhere,
//! on another worker or locally within `limits.commit`.

pub mod dispatch;
pub mod scheduler;
