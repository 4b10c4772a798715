//! Kiln's sealing pipeline: everything between an operator and the proof core.
//!
//! Today this crate holds what the `kiln` command needs to drive the proof core
//! by hand: where shared files live by default ([`dirs`]) and how long phases
//! report progress ([`progress`]). The sector state machine, the scheduler and
//! the embedded chain will live here too.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod dirs;
pub mod memory;
pub mod progress;
