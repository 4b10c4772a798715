//! PC1: stage the pieces, build tree_d (comm_d), derive the replica id, label
//! every layer (porep-sdr.md §3, §4.3, §7, §9.3).

use super::{staging, Pc1Output, SectorDir, SectorIdentity};
use crate::durable;
use crate::error::{Error, Result};
use crate::ids::{Commitment, Randomness, ReplicaId};
use crate::merkle::sha_tree;
use crate::merkle::store::{ReadMap, WriteMap};
use crate::sdr::graph::Graph;
use crate::sdr::label_par::LabelingConfig;
use crate::sdr::layers::{LabelingOutcome, Layers, Progress};
use crate::sdr::parent_cache::ParentCache;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use tracing::{info, info_span};

/// The reference's name of tree_d's file.
pub const TREE_D_FILE: &str = "sc-02-data-tree-d.dat";

/// What PC1 needs besides the sector directory.
#[derive(Clone, Debug)]
pub struct Pc1Request {
    /// The sector.
    pub identity: SectorIdentity,
    /// The seal ticket (chain randomness).
    pub ticket: Randomness,
    /// Piece files, in order; none for a committed-capacity sector.
    pub pieces: Vec<PathBuf>,
    /// Where parent caches live.
    pub parent_cache_dir: PathBuf,
    /// Labeler tuning.
    pub labeling: LabelingConfig,
}

/// PC1's result and what it took.
#[derive(Clone, Debug)]
pub struct Pc1Report {
    /// The commitments.
    pub output: Pc1Output,
    /// Pieces and fillers as staged.
    pub pieces: Vec<staging::StagedPiece>,
    /// Layers kept from an earlier run and layers labeled now.
    pub labeling: LabelingOutcome,
    /// Seconds spent staging pieces.
    pub staging: Duration,
    /// Seconds spent building tree_d.
    pub tree_d: Duration,
    /// Seconds spent labeling.
    pub labeling_time: Duration,
}

/// Builds tree_d over the staged data into the cache directory and returns comm_d.
pub fn build_tree_d(unsealed: &Path, cache_dir: &Path, size_bytes: u64) -> Result<Commitment> {
    let data = ReadMap::open(unsealed, Some(size_bytes))?;
    let nodes = data.nodes();
    let path = cache_dir.join(TREE_D_FILE);
    let tmp = durable::temp_path(&path);
    let mut tree = WriteMap::create(&tmp, sha_tree::tree_len(nodes.len()) as u64 * 32)?;
    let root = sha_tree::build_tree(nodes, tree.nodes_mut())?;
    tree.sync()?;
    drop(tree);
    durable::rename(&tmp, &path)?;
    Ok(Commitment(root))
}

/// Runs PC1 for the sector in `dir`. Safe to re-run after a crash: staged data is
/// kept, finished layers are kept, and the run continues where it stopped.
pub fn run(
    dir: &SectorDir,
    req: &Pc1Request,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(Progress),
) -> Result<Pc1Report> {
    let shape = req.identity.sector_size.shape();
    let _span = info_span!("pc1", sector_id = req.identity.sector_id).entered();
    // Reject unreadable or oversized pieces before the directory is touched.
    let plan = staging::plan(&req.pieces, &shape)?;
    let mut meta = dir.claim(&req.identity)?;

    let t = Instant::now();
    let pieces = staging::stage(dir, &mut meta, plan, &shape)?;
    let comm_d_pieces = staging::comm_d(&pieces, &shape)?;
    let staging_time = t.elapsed();

    let t = Instant::now();
    durable::create_dir(&dir.cache_dir())?;
    let comm_d = build_tree_d(&dir.unsealed_path(), &dir.cache_dir(), shape.size_bytes)?;
    if comm_d != comm_d_pieces {
        return Err(Error::CommDMismatch { from_data: comm_d.to_hex(), from_pieces: comm_d_pieces.to_hex() });
    }
    let tree_d_time = t.elapsed();

    let replica_id = ReplicaId::derive(
        &req.identity.prover_id,
        req.identity.sector_id,
        &req.ticket,
        &comm_d,
        &shape.porep_id,
    );
    info!(%comm_d, %replica_id, "data committed");
    let output = Pc1Output { ticket: req.ticket, comm_d, replica_id };
    if meta.pc1 != Some(output) {
        // New ticket or data: whatever PC2 produced before no longer applies.
        meta.pc1 = None;
        meta.pc2 = None;
        dir.write_meta(&meta)?;
    }

    let t = Instant::now();
    let graph = Graph::new(shape.num_nodes, shape.porep_id);
    let parents = ParentCache::open_or_build(&req.parent_cache_dir, &graph)?;
    let layers = Layers::new(&dir.cache_dir(), shape.num_nodes, shape.layers);
    let labeling = layers.generate(&parents, &replica_id, &req.labeling, cancel, progress)?;
    let labeling_time = t.elapsed();

    meta.pc1 = Some(output);
    dir.write_meta(&meta)?;
    Ok(Pc1Report { output, pieces, labeling, staging: staging_time, tree_d: tree_d_time, labeling_time })
}
