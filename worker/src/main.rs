//! `kiln-worker`: the remote proving worker for GPU machines.
//!
//! Not implemented yet: remote task execution arrives with the worker issue.
//! The binary exists so the workspace layout is final; it says so and exits
//! non-zero rather than pretending to serve anything.

use clap::Parser;

#[derive(Parser)]
#[command(name = "kiln-worker", version, about = "Kiln remote proving worker (not yet implemented)")]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    eprintln!("kiln-worker: remote workers are not implemented yet; seal locally with `kiln`");
    std::process::exit(2);
}
