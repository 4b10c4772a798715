//! Kiln's sealing pipeline: everything between an operator and the proof core.
//!
//! Today this crate holds what the `kiln` command needs to drive the proof core
//! by hand: where shared files live by default ([`dirs`]), how long phases
//! report progress ([`progress`]) and their peak memory ([`memory`]); and the
//! sector lifecycle: its pure state machine ([`lifecycle`]) and its SQLite
//! persistence ([`store`]); the chain interface and kiln's embedded devnet
//! chain ([`chain`]); the driver that walks sectors to Proving
//! ([`pipeline`]), the daemon around it ([`daemon`], configured by [`config`])
//! and its authenticated local API ([`api`]) with its metrics ([`metrics`]); remote workers and the scheduler
//! that prefers them ([`workers`]). What crosses a process boundary (API
//! views, the worker protocol, TLS) is the `wire` crate's.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod chain;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod dirs;
pub mod failpoints;
pub mod ledger;
pub mod lifecycle;
pub mod memory;
pub mod metrics;
pub mod pipeline;
pub mod progress;
pub mod proving;
pub mod store;
pub mod workers;
