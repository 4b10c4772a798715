//! Shared set-up of kiln's criterion benchmarks (`benches/*.rs`).
//!
//! Inputs are built from a seeded RNG outside the timed loops, and every bench
//! goes through the same public API and [`LabelingConfig`] production uses.

use proofs::sdr::label_par::LabelingConfig;
use proofs::seal::{pc1, SectorDir, SectorIdentity};
use proofs::{ProverId, Randomness, SectorSize};
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// Runs PC1 for a committed-capacity sector of `size` in `root/sector`, with
/// parent caches in `root/parents`, and returns the sector directory.
pub fn pc1_sector(root: &Path, size: SectorSize, labeling: LabelingConfig) -> SectorDir {
    let dir = SectorDir::new(root.join("sector"));
    let req = pc1::Pc1Request {
        identity: SectorIdentity {
            sector_size: size,
            prover_id: ProverId::from_actor_id(1000),
            sector_id: 1,
        },
        ticket: Randomness([7; 32]),
        pieces: vec![],
        parent_cache_dir: root.join("parents"),
        labeling,
        expected_comm_p: Vec::new(),
    };
    pc1::run(&dir, &req, &AtomicBool::new(false), &mut |_| {}).expect("PC1 of the bench sector");
    dir
}
