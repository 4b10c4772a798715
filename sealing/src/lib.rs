//! Kiln's sealing pipeline: everything between an operator and the proof core.
//!
//! Today this crate holds what the `kiln` command needs to drive the proof core
//! by hand: where shared files live by default ([`dirs`]), how long phases
//! report progress ([`progress`]) and their peak memory ([`memory`]); and the
//! sector lifecycle: its pure state machine ([`lifecycle`]) and its SQLite
//! persistence ([`store`]); the chain interface and kiln's embedded devnet
//! chain ([`chain`]). The driver, the scheduler and the daemon will live here
//! too.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod chain;
pub mod dirs;
pub mod lifecycle;
pub mod memory;
pub mod progress;
pub mod store;
