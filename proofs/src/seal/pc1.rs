//! PC1: stage the pieces, build tree_d (comm_d), derive the replica id, label
//! every layer (porep-sdr.md §3, §4.3, §7, §9.3), for one sector or a batch of
//! sectors of one size.

use super::{staging, Pc1Output, SectorDir, SectorIdentity};
use crate::durable;
use crate::error::{Error, Result};
use crate::ids::{Commitment, Randomness, ReplicaId};
use crate::merkle::sha_tree;
use crate::sdr::graph::Graph;
use crate::sdr::label_par::LabelingConfig;
use crate::sdr::layers::{generate_batch, LabelingOutcome, Layers, Progress};
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
    /// The comm_p recorded for each piece when it was taken in, in order; a
    /// piece whose data now commits to another fails staging, before any
    /// labeling. Empty: not checked.
    pub expected_comm_p: Vec<Commitment>,
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
    /// Seconds spent building and syncing tree_d (beside the labeling).
    pub tree_d: Duration,
    /// Seconds spent labeling (the whole batch's, when labeled in a batch).
    pub labeling_time: Duration,
}

/// Builds tree_d over the staged data into the cache directory and returns comm_d.
/// The data is read and the tree written a megabyte of leaves at a time, in
/// parallel, with `pread`/`pwrite` (no mapping: nothing to fault in, nothing to
/// write-protect for write-back). The file is not synced here: PC1 syncs it (with
/// [`sync_tree_d`], on a thread of its own while the layers are labeled) before
/// recording itself done. A crash before that record re-runs PC1, which rebuilds
/// tree_d.
pub fn build_tree_d(unsealed: &Path, cache_dir: &Path, size_bytes: u64) -> Result<Commitment> {
    use std::os::unix::fs::FileExt;
    let data = std::fs::File::open(unsealed).map_err(Error::io("open", unsealed))?;
    let found = data.metadata().map_err(Error::io("stat", unsealed))?.len();
    if found != size_bytes {
        return Err(Error::FileLength { path: unsealed.to_path_buf(), expected: size_bytes, found });
    }
    let path = cache_dir.join(TREE_D_FILE);
    let tmp = durable::temp_path(&path);
    let leaves = (size_bytes / 32) as usize;
    let len = sha_tree::tree_len(leaves) as u64 * 32;
    let tree = std::fs::File::create(&tmp).map_err(Error::io("create", &tmp))?;
    tree.set_len(len).map_err(Error::io("resize", &tmp))?;
    // A new file is all holes: zero leaves (fillers, committed capacity) stay holes.
    let root = sha_tree::build_tree_chunked(
        leaves,
        1 << 15,
        true,
        |first, out| {
            data.read_exact_at(out.as_flattened_mut(), first as u64 * 32).map_err(Error::io("read", unsealed))
        },
        |at, nodes| tree.write_all_at(nodes.as_flattened(), at as u64 * 32).map_err(Error::io("write", &tmp)),
    )?;
    drop(tree);
    std::fs::rename(&tmp, &path).map_err(Error::io("rename into place", &path))?;
    Ok(Commitment(root))
}

/// Makes tree_d (written by [`build_tree_d`]) and its name durable.
pub fn sync_tree_d(cache_dir: &Path) -> Result<()> {
    durable::sync_file(&cache_dir.join(TREE_D_FILE))?;
    durable::sync_dir(cache_dir)
}

/// Runs PC1 for the sector in `dir`. Safe to re-run after a crash: staged data is
/// kept, finished layers are kept, and the run continues where it stopped.
pub fn run(
    dir: &SectorDir,
    req: &Pc1Request,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(Progress),
) -> Result<Pc1Report> {
    run_batch(&[(dir.clone(), req.clone())], cancel, progress)?.pop().expect("one result per sector")
}

/// A sector between data commitment and labeling.
struct Prepared {
    meta: super::SectorMeta,
    output: Pc1Output,
    pieces: Vec<staging::StagedPiece>,
    staging: Duration,
}

/// Stages the pieces and derives the replica id from comm_d as the pieces give it;
/// tree_d, which must give the same comm_d from the staged data, is built while the
/// layers are labeled ([`build_and_sync_tree_d`]).
fn prepare(dir: &SectorDir, req: &Pc1Request) -> Result<Prepared> {
    let shape = req.identity.sector_size.shape();
    // Reject unreadable or oversized pieces before the directory is touched.
    let plan = staging::plan(&req.pieces, &shape)?;
    let mut meta = dir.claim(&req.identity)?;

    let t = Instant::now();
    let pieces = staging::stage(dir, &mut meta, plan, &shape)?;
    staging::check_comm_p(&pieces, &req.expected_comm_p)?;
    let comm_d = staging::comm_d(&pieces, &shape)?;
    durable::create_dir(&dir.cache_dir())?;
    let staging_time = t.elapsed();

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
    Ok(Prepared { meta, output, pieces, staging: staging_time })
}

/// Builds tree_d, checks its root against comm_d from the pieces and syncs it; on a
/// thread of its own beside the labeling, at a low priority so that the labeling
/// threads keep their cores (it is I/O and a little hashing).
fn build_and_sync_tree_d(dir: &SectorDir, size_bytes: u64, comm_d: Commitment) -> Result<Duration> {
    crate::priority::lower_thread_priority();
    let t = Instant::now();
    let from_data = build_tree_d(&dir.unsealed_path(), &dir.cache_dir(), size_bytes)?;
    if from_data != comm_d {
        return Err(Error::CommDMismatch { from_data: from_data.to_hex(), from_pieces: comm_d.to_hex() });
    }
    sync_tree_d(&dir.cache_dir())?;
    Ok(t.elapsed())
}

/// Runs PC1 for several sectors of one size, labeling them together (one parent
/// gathering per node for all, interleaved hashing: see [`crate::sdr::label_batch`]).
/// The labeler tuning and parent-cache directory are the first request's. Each
/// sector resumes on its own after a crash, as [`run`] does. A sector that fails
/// (bad pieces, a damaged layer, a full disk) gets its error in its slot and the
/// others go on; cancellation and a batch of mixed sizes fail the whole call.
pub fn run_batch(
    sectors: &[(SectorDir, Pc1Request)],
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<Result<Pc1Report>>> {
    let Some((_, first)) = sectors.first() else { return Ok(vec![]) };
    let size = first.identity.sector_size;
    if let Some((_, odd)) = sectors.iter().find(|(_, r)| r.identity.sector_size != size) {
        return Err(Error::MixedBatch {
            sector_id: odd.identity.sector_id,
            expected: size.to_string(),
            found: odd.identity.sector_size.to_string(),
        });
    }
    let shape = size.shape();
    let mut prepared: Vec<Result<Prepared>> = sectors
        .iter()
        .map(|(dir, req)| {
            let _span = info_span!("pc1", sector_id = req.identity.sector_id).entered();
            prepare(dir, req)
        })
        .collect();

    // tree_d is built and reaches the disk while the layers are labeled (1 GiB at
    // 512MiB: most of a second of work and seconds of write-back that would otherwise
    // come before and after the labeling).
    let tree_d_built: Vec<Option<std::thread::JoinHandle<Result<Duration>>>> = sectors
        .iter()
        .zip(&prepared)
        .map(|((dir, _), p)| {
            let (dir, comm_d) = (dir.clone(), p.as_ref().ok()?.output.comm_d);
            Some(std::thread::spawn(move || build_and_sync_tree_d(&dir, shape.size_bytes, comm_d)))
        })
        .collect();

    let t = Instant::now();
    let graph = Graph::new(shape.num_nodes, shape.porep_id);
    let parents = ParentCache::open_or_build(&first.parent_cache_dir, &graph)?;
    let layers: Vec<Layers> =
        sectors.iter().map(|(dir, _)| Layers::new(&dir.cache_dir(), shape.num_nodes, shape.layers)).collect();
    let ready: Vec<usize> = (0..sectors.len()).filter(|&i| prepared[i].is_ok()).collect();
    let members: Vec<(&Layers, ReplicaId)> = ready
        .iter()
        .map(|&i| (&layers[i], prepared[i].as_ref().map(|p| p.output.replica_id).expect("prepared")))
        .collect();
    let ids: Vec<u64> = ready.iter().map(|&i| sectors[i].1.identity.sector_id).collect();
    let _span = info_span!("pc1_labeling", sectors = ?ids).entered();
    let labeled = generate_batch(&parents, &members, &first.labeling, cancel, progress);
    let tree_d_built: Vec<Option<Result<Duration>>> = tree_d_built
        .into_iter()
        .map(|h| h.map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))))
        .collect();
    let labeled = labeled?;
    let labeling_time = t.elapsed();

    let mut labeled = ready.into_iter().zip(labeled).collect::<std::collections::HashMap<_, _>>();
    Ok(prepared
        .drain(..)
        .zip(tree_d_built)
        .enumerate()
        .map(|(i, (prep, tree_d_built))| {
            let mut prep = prep?;
            let tree_d = tree_d_built.expect("every prepared sector builds tree_d")?;
            let labeling = labeled.remove(&i).expect("every prepared sector was labeled")?;
            prep.meta.pc1 = Some(prep.output);
            sectors[i].0.write_meta(&prep.meta)?;
            Ok(Pc1Report {
                output: prep.output,
                pieces: prep.pieces,
                labeling,
                staging: prep.staging,
                tree_d,
                labeling_time,
            })
        })
        .collect())
}
