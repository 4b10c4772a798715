//! The `kiln` command's subcommands, one module per group.

pub mod bench;
pub mod daemon;
pub mod params;
pub mod proving;
pub mod seal;
pub mod sectors;
pub mod workers;
