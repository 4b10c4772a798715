//! What this machine offers: cores, memory, GPUs and Groth16 parameter files.

use proofs::snark::params::GrothParams;
use proofs::SectorSize;
use std::path::Path;
use wire::worker::{Capabilities, ParamFile, RemoteTask};

/// The capabilities a worker with `tasks` and `slots` reports, read from this machine.
pub fn capabilities(tasks: &[RemoteTask], slots: u32, param_dir: &Path) -> Capabilities {
    Capabilities {
        tasks: tasks.to_vec(),
        slots,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        memory_bytes: memory_bytes().unwrap_or(0),
        gpus: proofs::gpu::devices(),
        gpu_build: proofs::gpu::built(),
        params: params(param_dir),
    }
}

/// The parameter sets (`.params` and `.vk`: PoRep, Winning, Window PoSt) in `dir`.
pub fn params(dir: &Path) -> Vec<ParamFile> {
    SectorSize::ALL
        .into_iter()
        .flat_map(|size| GrothParams::all(dir, size))
        .filter(GrothParams::exist)
        .map(|p| ParamFile::of(&p))
        .collect()
}

fn memory_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}
