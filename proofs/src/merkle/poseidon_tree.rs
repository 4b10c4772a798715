//! Poseidon trees: tree_c and tree_r_last, base arity 8, with the compound
//! shapes of 32GiB and 64GiB (porep-sdr.md §9.1, §9.2, §9.5).
//!
//! A base tree's rows are stored bottom-up, leaves first, as merkletree's disk
//! store lays them out; the sub and top levels of compound trees are never
//! stored, only recomputed from the base roots.

use crate::error::{Error, Result};
use crate::poseidon::{fr_from_bytes, fr_to_bytes, hash, hash_many};
use crate::shape::TreeShape;
use blstrs::Scalar as Fr;
use rayon::prelude::*;

/// Where tree rows and columns are hashed.
pub enum TreeHashing {
    /// On this machine's cores.
    Cpu,
    /// On a leased GPU, through neptune's batch hasher.
    #[cfg(feature = "gpu")]
    Gpu(Box<crate::poseidon::gpu::GpuHasher>),
}

/// Preimages below which a GPU is not worth the copies (the top rows).
#[cfg(feature = "gpu")]
const GPU_MIN_PREIMAGES: usize = 1 << 14;

/// Outputs hashed per GPU round trip when building rows, bounding the memory
/// the parsed inputs take (a 32GiB tree's leaf row is 4 GiB).
const ROW_CHUNK: usize = 1 << 20;

impl TreeHashing {
    /// A free GPU with room for the batches, else the CPU; the choice is logged.
    pub fn pick() -> Self {
        #[cfg(feature = "gpu")]
        {
            use crate::poseidon::gpu::{GpuHasher, COLUMN_BATCH, TREE_BATCH};
            let need = crate::gpu::tree_memory_needed(11, COLUMN_BATCH)
                .max(crate::gpu::tree_memory_needed(8, TREE_BATCH));
            let picked = crate::gpu::lease_one(need)
                .map_err(|e| e.to_string())
                .and_then(|lease| GpuHasher::new(lease).map_err(|e| e.to_string()));
            match picked {
                Ok(h) => return Self::Gpu(Box::new(h)),
                Err(why) => tracing::info!(%why, "tree hashing on the CPU"),
            }
        }
        Self::Cpu
    }

    /// The GPU's name, when hashing on one.
    pub fn gpu(&self) -> Option<String> {
        match self {
            Self::Cpu => None,
            #[cfg(feature = "gpu")]
            Self::Gpu(h) => Some(h.device_name()),
        }
    }

    /// Poseidon of each `arity`-element preimage of `inputs` into `out`. A GPU
    /// that fails is given up for the CPU, which gives the same hashes.
    pub fn hash_many(&mut self, arity: usize, inputs: &[Fr], out: &mut [Fr]) {
        #[cfg(feature = "gpu")]
        if let Self::Gpu(h) = self {
            if out.len() < GPU_MIN_PREIMAGES {
                return cpu_hash_many(arity, inputs, out);
            }
            match h.hash_many(arity, inputs, out) {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "GPU hashing failed: continuing on the CPU");
                    *self = Self::Cpu;
                }
            }
        }
        cpu_hash_many(arity, inputs, out)
    }
}

/// [`hash_many`] over all cores.
fn cpu_hash_many(arity: usize, inputs: &[Fr], out: &mut [Fr]) {
    out.par_chunks_mut(256).zip(inputs.par_chunks(256 * arity)).for_each(|(o, i)| hash_many(arity, i, o));
}

/// Number of rows of a full `arity`-ary tree over `leaves` leaves (leaves included).
pub fn row_count(leaves: usize, arity: usize) -> usize {
    let mut rows = 1;
    let mut width = leaves;
    while width > 1 {
        width /= arity;
        rows += 1;
    }
    rows
}

/// Number of nodes of the full tree over `leaves` leaves.
pub fn tree_len(leaves: usize, arity: usize) -> usize {
    let mut len = 0;
    let mut width = leaves;
    while width > 1 {
        len += width;
        width /= arity;
    }
    len + 1
}

/// Whether `leaves` is a power of `arity` (at least `arity`).
pub fn is_valid_size(leaves: usize, arity: usize) -> bool {
    let mut w = leaves;
    if w < arity {
        return false;
    }
    while w > 1 {
        if !w.is_multiple_of(arity) {
            return false;
        }
        w /= arity;
    }
    true
}

/// Rows of tree_r_last above the leaves that are not stored (the reference's
/// `default_rows_to_discard`): 0 for trees of up to 2 rows, 1 for 3 rows, else 2.
pub fn rows_to_discard(leaves: usize, arity: usize) -> usize {
    match row_count(leaves, arity) {
        0..=2 => 0,
        3 => 1,
        _ => 2,
    }
}

/// Nodes of tree_r_last kept on disk per base tree: the full tree less its bottom
/// `1 + rows_to_discard` rows.
pub fn cached_len(leaves: usize, arity: usize) -> usize {
    let mut dropped = 0;
    let mut width = leaves;
    for _ in 0..=rows_to_discard(leaves, arity) {
        dropped += width;
        width /= arity;
    }
    tree_len(leaves, arity) - dropped
}

fn parse(node: &[u8; 32], row: usize, index: usize) -> Result<Fr> {
    fr_from_bytes(node).ok_or_else(|| Error::NotInField { what: format!("tree node {index} of row {row}") })
}

/// Computes every row above the leaves into `upper` (rows bottom-up, root last).
/// `leaves` must be a power of `arity`; `upper` must hold `tree_len − leaves` nodes.
pub fn build_upper_rows(leaves: &[[u8; 32]], arity: usize, upper: &mut [[u8; 32]]) -> Result<[u8; 32]> {
    each_row(leaves, arity, upper, |row, prev, next| {
        next.par_chunks_mut(256).enumerate().try_for_each(|(c, chunk)| -> Result<()> {
            let first = c * 256 * arity;
            let children = &prev[first..first + chunk.len() * arity];
            let inputs = children
                .iter()
                .enumerate()
                .map(|(k, n)| parse(n, row, first + k))
                .collect::<Result<Vec<Fr>>>()?;
            let mut hashes = vec![Fr::from(0u64); chunk.len()];
            hash_many(arity, &inputs, &mut hashes);
            for (node, h) in chunk.iter_mut().zip(&hashes) {
                *node = fr_to_bytes(h);
            }
            Ok(())
        })
    })
}

/// [`build_upper_rows`] with the hashing chosen: on a GPU, each row goes to it
/// in chunks of [`ROW_CHUNK`] outputs; the same nodes either way.
pub fn build_upper_rows_with(
    hashing: &mut TreeHashing,
    leaves: &[[u8; 32]],
    arity: usize,
    upper: &mut [[u8; 32]],
) -> Result<[u8; 32]> {
    if hashing.gpu().is_none() {
        return build_upper_rows(leaves, arity, upper);
    }
    each_row(leaves, arity, upper, |row, prev, next| {
        for (c, next) in next.chunks_mut(ROW_CHUNK).enumerate() {
            let first = c * ROW_CHUNK * arity;
            let children = &prev[first..first + next.len() * arity];
            let inputs = children
                .par_iter()
                .enumerate()
                .map(|(k, n)| parse(n, row, first + k))
                .collect::<Result<Vec<Fr>>>()?;
            let mut hashes = vec![Fr::from(0u64); next.len()];
            hashing.hash_many(arity, &inputs, &mut hashes);
            next.par_iter_mut().zip(&hashes).for_each(|(node, h)| *node = fr_to_bytes(h));
        }
        Ok(())
    })
}

/// Walks the rows above the leaves bottom-up, handing `fill(row, children,
/// row_nodes)` each row to compute from the one below; returns the root.
fn each_row(
    leaves: &[[u8; 32]],
    arity: usize,
    upper: &mut [[u8; 32]],
    mut fill: impl FnMut(usize, &[[u8; 32]], &mut [[u8; 32]]) -> Result<()>,
) -> Result<[u8; 32]> {
    assert!(is_valid_size(leaves.len(), arity), "{} leaves do not make an arity-{arity} tree", leaves.len());
    assert_eq!(upper.len(), tree_len(leaves.len(), arity) - leaves.len(), "upper row buffer size");
    let mut prev_start = None::<usize>;
    let mut width = leaves.len() / arity;
    let (mut start, mut row) = (0, 0);
    while width >= 1 {
        let (done, rest) = upper.split_at_mut(start);
        let prev: &[[u8; 32]] = match prev_start {
            None => leaves,
            Some(p) => &done[p..],
        };
        fill(row, prev, &mut rest[..width])?;
        prev_start = Some(start);
        start += width;
        width /= arity;
        row += 1;
    }
    Ok(upper[upper.len() - 1])
}

/// Root of a compound tree from the roots of its base trees (in order).
pub fn compound_root(base_roots: &[[u8; 32]], shape: &TreeShape) -> Result<[u8; 32]> {
    assert_eq!(base_roots.len(), shape.base_tree_count(), "one root per base tree");
    if shape.sub_arity == 0 {
        return Ok(base_roots[0]);
    }
    let frs: Vec<Fr> =
        base_roots.iter().enumerate().map(|(i, r)| parse(r, usize::MAX, i)).collect::<Result<_>>()?;
    let subs: Vec<Fr> = frs.chunks_exact(shape.sub_arity).map(hash).collect();
    let root = if shape.top_arity == 0 { subs[0] } else { hash(&subs) };
    Ok(fr_to_bytes(&root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_params_table() {
        // 2KiB: 64 leaves -> 73 nodes (2,336 B), 32 B kept of tree_r_last
        assert_eq!(tree_len(64, 8) * 32, 2336);
        assert_eq!(rows_to_discard(64, 8), 1);
        assert_eq!(cached_len(64, 8) * 32, 32);
        // 8MiB: 9,586,976 B of tree_c, 18,720 B of tree_r_last
        assert_eq!(tree_len(1 << 18, 8) * 32, 9_586_976);
        assert_eq!(cached_len(1 << 18, 8) * 32, 18_720);
        // 512MiB
        assert_eq!(tree_len(1 << 24, 8) * 32, 613_566_752);
        assert_eq!(cached_len(1 << 24, 8) * 32, 1_198_368);
        // 32GiB base tree (2^27 leaves)
        assert_eq!(tree_len(1 << 27, 8) * 32, 4_908_534_048);
        assert_eq!(cached_len(1 << 27, 8) * 32, 9_586_976);
    }

    #[test]
    fn upper_rows_agree_with_direct_hashing() {
        let leaves: Vec<[u8; 32]> = (0..64u64).map(|i| fr_to_bytes(&Fr::from(i * 7 + 1))).collect();
        let mut upper = vec![[0u8; 32]; 9];
        let root = build_upper_rows(&leaves, 8, &mut upper).unwrap();
        let row1: Vec<Fr> = leaves
            .chunks(8)
            .map(|c| hash(&c.iter().map(|b| fr_from_bytes(b).unwrap()).collect::<Vec<_>>()))
            .collect();
        assert_eq!(root, fr_to_bytes(&hash(&row1)));
        assert_eq!(upper[8], root);
    }

    #[test]
    fn invalid_leaf_is_reported() {
        let mut leaves = vec![[0u8; 32]; 8];
        leaves[3] = [0xff; 32];
        let mut upper = vec![[0u8; 32]; 1];
        assert!(matches!(build_upper_rows(&leaves, 8, &mut upper), Err(Error::NotInField { .. })));
    }
}
