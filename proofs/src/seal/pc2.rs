//! PC2: tree_c over the label columns, the replica (data + key in Fr),
//! tree_r_last over the replica, comm_r, and the aux files (porep-sdr.md §8, §9).
//!
//! Every output is written to a temporary file and renamed into place, and the
//! replica is always encoded from the untouched staged data, so an interrupted
//! PC2 can simply be run again.

use super::{Pc2Output, SectorDir};
use crate::durable;
use crate::error::{Error, Result};
use crate::ids::Commitment;
use crate::merkle::poseidon_tree::{self, build_upper_rows_with, compound_root, tree_len, TreeHashing};
use crate::merkle::store::{ReadMap, WriteMap};
use crate::poseidon::{fr_from_bytes, fr_to_bytes, hash, hash_many};
use crate::sdr::layers::{Layers, Progress, ProgressPhase};
use crate::shape::SectorShape;
use blstrs::Scalar as Fr;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tracing::{info, info_span};

/// The reference's names of the persistent and temporary aux files.
pub const P_AUX_FILE: &str = "p_aux";
/// See [`P_AUX_FILE`].
pub const T_AUX_FILE: &str = "t_aux";

/// File name of base tree `index` of a tree with id `id` (`tree-c`, `tree-r-last`):
/// no suffix when there is one base tree, `-<index>` otherwise.
pub fn tree_file_name(id: &str, index: usize, count: usize) -> String {
    if count == 1 {
        format!("sc-02-data-{id}.dat")
    } else {
        format!("sc-02-data-{id}-{index}.dat")
    }
}

/// PC2's result and what it took.
#[derive(Clone, Debug)]
pub struct Pc2Report {
    /// The commitments.
    pub output: Pc2Output,
    /// Time building tree_c.
    pub tree_c: Duration,
    /// Time encoding the replica.
    pub encode: Duration,
    /// Time building tree_r_last.
    pub tree_r_last: Duration,
    /// The GPU the trees were hashed on; None: the CPU.
    pub gpu: Option<String>,
}

fn check_cancel(cancel: &AtomicBool) -> Result<()> {
    if cancel.load(Ordering::Relaxed) {
        Err(Error::Cancelled)
    } else {
        Ok(())
    }
}

/// Nodes per window of the passes over whole layers (32 MiB a layer): what is
/// behind the window is dropped from the resident set, so a 512MiB sector's
/// PC2 never holds its layers, data and replica in memory at once.
const WINDOW: usize = 1 << 20;

/// Builds tree_c: leaf `v` is Poseidon over node `v`'s labels in all layers.
pub fn build_tree_c(
    hashing: &mut TreeHashing,
    layers: &[ReadMap],
    shape: &SectorShape,
    cache_dir: &Path,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(Progress),
) -> Result<Commitment> {
    let count = shape.tree.base_tree_count();
    let leaves = shape.leaves_per_base_tree() as usize;
    let arity = shape.tree.base_arity;
    let mut roots = Vec::with_capacity(count);
    for i in 0..count {
        check_cancel(cancel)?;
        let path = cache_dir.join(tree_file_name("tree-c", i, count));
        let tmp = durable::temp_path(&path);
        let mut file = WriteMap::create(&tmp, tree_len(leaves, arity) as u64 * 32)?;
        let first = i * leaves;
        file.fill_windows(0..leaves, WINDOW, |start, window| {
            if hashing.gpu().is_some() {
                // Whole windows of columns to the GPU, read on all cores.
                let nl = layers.len();
                let mut columns = vec![Fr::from(0u64); window.len() * nl];
                columns.par_chunks_mut(4096 * nl).enumerate().try_for_each(|(c, chunk)| -> Result<()> {
                    for (j, column) in chunk.chunks_exact_mut(nl).enumerate() {
                        let v = first + start + c * 4096 + j;
                        for (label, layer) in column.iter_mut().zip(layers) {
                            *label = layer.fr(v, "label")?;
                        }
                    }
                    Ok(())
                })?;
                let mut hashes = vec![Fr::from(0u64); window.len()];
                hashing.hash_many(nl, &columns, &mut hashes);
                window.par_iter_mut().zip(&hashes).for_each(|(leaf, h)| *leaf = fr_to_bytes(h));
            } else {
                window.par_chunks_mut(4096).enumerate().try_for_each(|(c, chunk)| -> Result<()> {
                    let mut columns = vec![Fr::from(0u64); chunk.len() * layers.len()];
                    for (j, column) in columns.chunks_exact_mut(layers.len()).enumerate() {
                        let v = first + start + c * 4096 + j;
                        for (label, layer) in column.iter_mut().zip(layers) {
                            *label = layer.fr(v, "label")?;
                        }
                    }
                    let mut hashes = vec![Fr::from(0u64); chunk.len()];
                    hash_many(layers.len(), &columns, &mut hashes);
                    for (leaf, h) in chunk.iter_mut().zip(&hashes) {
                        *leaf = fr_to_bytes(h);
                    }
                    Ok(())
                })?;
            }
            // Columns are read once: keep only a window of the layers resident.
            let from = (first + start) * 32;
            for layer in layers {
                layer.release(from, from + window.len() * 32);
            }
            Ok(())
        })?;
        let (leaf_row, upper) = file.nodes_mut().split_at_mut(leaves);
        roots.push(build_upper_rows_with(hashing, leaf_row, arity, upper)?);
        file.sync()?;
        drop(file);
        durable::rename(&tmp, &path)?;
        progress(Progress {
            phase: ProgressPhase::TreeC,
            layer: None,
            done: i as u64 + 1,
            total: count as u64,
        });
    }
    compound_root(&roots, &shape.tree).map(Commitment)
}

/// Encodes the replica: `replica[v] = data[v] + key[v]` in Fr, key = last layer.
pub fn encode(unsealed: &Path, key: &ReadMap, sealed: &Path, size_bytes: u64) -> Result<()> {
    let data = ReadMap::open(unsealed, Some(size_bytes))?;
    let tmp = durable::temp_path(sealed);
    let mut out = WriteMap::create(&tmp, size_bytes)?;
    let nodes = (size_bytes / 32) as usize;
    out.fill_windows(0..nodes, WINDOW, |start, window| {
        window.par_chunks_mut(4096).enumerate().try_for_each(|(c, chunk)| -> Result<()> {
            for (j, node) in chunk.iter_mut().enumerate() {
                let v = start + c * 4096 + j;
                let d = fr_from_bytes(&data.nodes()[v]).ok_or_else(|| Error::Malformed {
                    path: unsealed.to_path_buf(),
                    reason: format!("node {v} is not a field element (the staged data is not fr32-padded)"),
                })?;
                *node = fr_to_bytes(&(d + key.fr(v, "label")?));
            }
            Ok(())
        })?;
        let from = start * 32;
        data.release(from, from + window.len() * 32);
        key.release(from, from + window.len() * 32);
        Ok(())
    })?;
    out.sync()?;
    drop(out);
    durable::rename(&tmp, sealed)
}

/// Builds tree_r_last over the replica, keeping only the rows the reference keeps.
pub fn build_tree_r_last(
    hashing: &mut TreeHashing,
    sealed: &Path,
    shape: &SectorShape,
    cache_dir: &Path,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(Progress),
) -> Result<Commitment> {
    let replica = ReadMap::open(sealed, Some(shape.size_bytes))?;
    let count = shape.tree.base_tree_count();
    let leaves = shape.leaves_per_base_tree() as usize;
    let arity = shape.tree.base_arity;
    let discard = poseidon_tree::rows_to_discard(leaves, arity);
    let mut roots = Vec::with_capacity(count);
    for i in 0..count {
        check_cancel(cancel)?;
        let leaf_row = &replica.nodes()[i * leaves..(i + 1) * leaves];
        let mut upper = vec![[0u8; 32]; tree_len(leaves, arity) - leaves];
        roots.push(build_upper_rows_with(hashing, leaf_row, arity, &mut upper)?);
        // Drop the `discard` rows just above the leaves.
        let mut skip = 0;
        let mut width = leaves / arity;
        for _ in 0..discard {
            skip += width;
            width /= arity;
        }
        let kept = &upper[skip..];
        debug_assert_eq!(kept.len(), poseidon_tree::cached_len(leaves, arity));
        let path = cache_dir.join(tree_file_name("tree-r-last", i, count));
        durable::write_file(&path, kept.as_flattened())?;
        progress(Progress {
            phase: ProgressPhase::TreeRLast,
            layer: None,
            done: i as u64 + 1,
            total: count as u64,
        });
    }
    compound_root(&roots, &shape.tree).map(Commitment)
}

/// The reference's `t_aux`: bincode of the store configs (path, id, size, rows to
/// discard) of every layer, tree_d, tree_r_last and tree_c, so that the cache
/// directory is usable by the reference prover too.
pub fn t_aux_bytes(cache_dir: &Path, shape: &SectorShape) -> Result<Vec<u8>> {
    let path = cache_dir.to_str().ok_or_else(|| Error::Malformed {
        path: cache_dir.to_path_buf(),
        reason: "cache directory path is not UTF-8".into(),
    })?;
    let n = shape.num_nodes;
    let leaves = shape.leaves_per_base_tree() as usize;
    let arity = shape.tree.base_arity;
    let tree_size = tree_len(leaves, arity) as u64;
    let mut out = Vec::new();
    let config = |out: &mut Vec<u8>, id: &str, size: u64, rows_to_discard: u64| {
        out.extend((path.len() as u64).to_le_bytes());
        out.extend(path.as_bytes());
        out.extend((id.len() as u64).to_le_bytes());
        out.extend(id.as_bytes());
        out.push(1);
        out.extend(size.to_le_bytes());
        out.extend(rows_to_discard.to_le_bytes());
    };
    out.extend((shape.layers as u64).to_le_bytes());
    for layer in 1..=shape.layers {
        config(&mut out, &format!("layer-{layer}"), n, 0);
    }
    config(&mut out, "tree-d", 2 * n - 1, 0);
    config(&mut out, "tree-r-last", tree_size, poseidon_tree::rows_to_discard(leaves, arity) as u64);
    config(&mut out, "tree-c", tree_size, 0);
    Ok(out)
}

/// Runs PC2 for the sector in `dir` (PC1 must have finished).
pub fn run(dir: &SectorDir, cancel: &AtomicBool, progress: &mut dyn FnMut(Progress)) -> Result<Pc2Report> {
    let mut meta = dir.open()?;
    let shape = meta.identity.sector_size.shape();
    let _span = info_span!("pc2", sector_id = meta.identity.sector_id).entered();
    let pc1 = meta.pc1.ok_or(Error::MissingInput { step: "PC2", missing: "a finished PC1".into() })?;
    let cache_dir = dir.cache_dir();
    let layers = Layers::new(&cache_dir, shape.num_nodes, shape.layers);
    let record = layers.record()?;
    let finished = record.filter(|r| r.replica_id == pc1.replica_id).map_or(0, |r| r.layers.len() as u32);
    if finished < shape.layers {
        return Err(Error::MissingInput {
            step: "PC2",
            missing: format!("all {} layers labeled ({finished} are)", shape.layers),
        });
    }
    let maps: Vec<ReadMap> = (1..=shape.layers).map(|l| layers.open(l)).collect::<Result<_>>()?;

    let mut hashing = TreeHashing::pick();
    let t = Instant::now();
    let comm_c = build_tree_c(&mut hashing, &maps, &shape, &cache_dir, cancel, progress)?;
    let tree_c = t.elapsed();

    let t = Instant::now();
    check_cancel(cancel)?;
    let sealed: PathBuf = dir.sealed_path();
    encode(&dir.unsealed_path(), &maps[maps.len() - 1], &sealed, shape.size_bytes)?;
    drop(maps);
    let encode_time = t.elapsed();

    let t = Instant::now();
    let comm_r_last = build_tree_r_last(&mut hashing, &sealed, &shape, &cache_dir, cancel, progress)?;
    let tree_r_last = t.elapsed();
    let gpu = hashing.gpu();

    let comm_r = comm_r_from(&comm_c, &comm_r_last)?;
    let mut p_aux = Vec::with_capacity(64);
    p_aux.extend(comm_c.0);
    p_aux.extend(comm_r_last.0);
    durable::write_file(&cache_dir.join(P_AUX_FILE), &p_aux)?;
    let abs_cache = std::fs::canonicalize(&cache_dir).map_err(Error::io("resolve", &cache_dir))?;
    durable::write_file(&cache_dir.join(T_AUX_FILE), &t_aux_bytes(&abs_cache, &shape)?)?;

    let output = Pc2Output { comm_c, comm_r_last, comm_r };
    info!(%comm_c, %comm_r_last, %comm_r, "replica committed");
    meta.pc2 = Some(output);
    dir.write_meta(&meta)?;
    Ok(Pc2Report { output, tree_c, encode: encode_time, tree_r_last, gpu })
}

/// `comm_r = Poseidon_2(comm_c, comm_r_last)`.
pub fn comm_r_from(comm_c: &Commitment, comm_r_last: &Commitment) -> Result<Commitment> {
    let c = crate::poseidon::fr_from_bytes_named(&comm_c.0, || "comm_c".into())?;
    let r = crate::poseidon::fr_from_bytes_named(&comm_r_last.0, || "comm_r_last".into())?;
    Ok(Commitment(fr_to_bytes(&hash(&[c, r]))))
}
