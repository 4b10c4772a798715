//! The `kiln` command's subcommands, one module per group.

pub mod params;
pub mod seal;
