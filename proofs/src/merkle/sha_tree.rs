//! Binary SHA-256 "trunc254" trees: comm_p over a piece, tree_d and comm_d over
//! a sector (porep-sdr.md §3.1, §9.3).
//!
//! Leaves are the padded 32-byte words as they are; an inner node is
//! `trim(SHA-256(left || right))`.

use crate::error::{Error, Result};
use crate::ids::sha254_pair;
use rayon::prelude::*;

/// Builds a root from leaves fed one at a time, holding only `log2(n)` nodes.
#[derive(Default)]
pub struct StreamingRoot {
    stack: Vec<([u8; 32], u32)>,
    leaves: u64,
}

impl StreamingRoot {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next leaf.
    pub fn push(&mut self, leaf: [u8; 32]) {
        self.push_subtree(leaf, 0);
        self.leaves += 1;
    }

    /// Adds the root of a complete subtree of `2^level` leaves at the next position.
    /// The position must be aligned to the subtree's size.
    pub fn push_subtree(&mut self, mut node: [u8; 32], mut level: u32) {
        while let Some(&(top, top_level)) = self.stack.last() {
            if top_level != level {
                break;
            }
            self.stack.pop();
            node = sha254_pair(&top, &node);
            level += 1;
        }
        self.stack.push((node, level));
    }

    /// Leaves pushed so far.
    pub fn leaves(&self) -> u64 {
        self.leaves
    }

    /// The root, if the leaves pushed form one complete tree (a power of two of them).
    pub fn finish(self) -> Option<[u8; 32]> {
        match self.stack.as_slice() {
            [(root, _)] => Some(*root),
            _ => None,
        }
    }
}

/// Root of the tree over `leaves` (a power of two of them, at least one).
pub fn root(leaves: &[[u8; 32]]) -> [u8; 32] {
    assert!(leaves.len().is_power_of_two(), "leaf count must be a power of two");
    if leaves.len() == 1 {
        return leaves[0];
    }
    if leaves.len() <= 1 << 12 {
        let mut row: Vec<[u8; 32]> = leaves.chunks_exact(2).map(|p| sha254_pair(&p[0], &p[1])).collect();
        while row.len() > 1 {
            row = row.chunks_exact(2).map(|p| sha254_pair(&p[0], &p[1])).collect();
        }
        return row[0];
    }
    let (l, r) = leaves.split_at(leaves.len() / 2);
    let (a, b) = rayon::join(|| root(l), || root(r));
    sha254_pair(&a, &b)
}

/// Number of nodes of the full tree over `leaves` leaves: `2·leaves − 1`.
pub fn tree_len(leaves: usize) -> usize {
    2 * leaves - 1
}

/// Fills `out` (`2N − 1` nodes) with the whole tree over `data` (`N` leaves), rows
/// bottom-up as tree_d's file stores them, and returns the root.
pub fn build_tree(data: &[[u8; 32]], out: &mut [[u8; 32]]) -> Result<[u8; 32]> {
    let n = data.len();
    if !n.is_power_of_two() || out.len() != tree_len(n) {
        return Err(Error::PieceSize(format!("a tree over {n} leaves cannot fill {} nodes", out.len())));
    }
    out[..n].copy_from_slice(data);
    let mut start = 0;
    let mut width = n;
    while width > 1 {
        let (done, rest) = out.split_at_mut(start + width);
        let prev = &done[start..];
        let next = &mut rest[..width / 2];
        next.par_chunks_mut(1024).enumerate().for_each(|(c, chunk)| {
            for (i, node) in chunk.iter_mut().enumerate() {
                let j = 2 * (c * 1024 + i);
                *node = sha254_pair(&prev[j], &prev[j + 1]);
            }
        });
        start += width;
        width /= 2;
    }
    Ok(out[out.len() - 1])
}

/// The offset (in nodes) of row `row` in a tree over `n` leaves, stored row by row
/// from the leaves up as [`build_tree`] lays it out.
fn row_start(n: usize, row: u32) -> usize {
    if row == 0 {
        0
    } else {
        2 * n - (n >> (row - 1))
    }
}

/// Hashes each pair of `row` into `out` (half as long).
fn hash_pairs(row: &[[u8; 32]], out: &mut [[u8; 32]]) {
    for (node, pair) in out.iter_mut().zip(row.as_chunks::<2>().0) {
        *node = sha254_pair(&pair[0], &pair[1]);
    }
}

/// Builds the whole tree over `n` leaves (a power of two) as [`build_tree`] does, a
/// chunk of `chunk` leaves (a power of two) at a time, chunks in parallel, holding
/// only two chunks per thread: `read(first, leaves)` fills the leaves from `first`,
/// `write(offset, nodes)` stores nodes at `offset` (in nodes) of the tree's layout.
/// With `zeroed_output` the output starts as zeros (a new sparse file), so chunks of
/// zero leaves are not written again.
pub fn build_tree_chunked(
    n: usize,
    chunk: usize,
    zeroed_output: bool,
    read: impl Fn(usize, &mut [[u8; 32]]) -> Result<()> + Sync,
    write: impl Fn(usize, &[[u8; 32]]) -> Result<()> + Sync,
) -> Result<[u8; 32]> {
    if !n.is_power_of_two() || !chunk.is_power_of_two() {
        return Err(Error::PieceSize(format!("a tree over {n} leaves in chunks of {chunk}")));
    }
    let chunk = chunk.min(n);
    let chunk_rows = chunk.trailing_zeros();
    // The node of each row over zero leaves: zero stretches (fillers, committed
    // capacity) are written from these instead of hashed again.
    let mut zero = vec![[0u8; 32]];
    for r in 0..chunk_rows as usize {
        zero.push(sha254_pair(&zero[r], &zero[r]));
    }
    let roots: Vec<[u8; 32]> = (0..n / chunk)
        .into_par_iter()
        .map(|k| {
            let mut row = vec![[0u8; 32]; chunk];
            let mut next = vec![[0u8; 32]; chunk / 2];
            read(k * chunk, &mut row)?;
            let zeros = row.iter().all(|node| *node == [0u8; 32]);
            if !(zeros && zeroed_output) {
                write(k * chunk, &row)?;
            }
            let mut width = chunk;
            for r in 1..=chunk_rows {
                width /= 2;
                if zeros {
                    next[..width].fill(zero[r as usize]);
                } else {
                    hash_pairs(&row[..2 * width], &mut next[..width]);
                }
                write(row_start(n, r) + k * width, &next[..width])?;
                std::mem::swap(&mut row, &mut next);
            }
            Ok(row[0])
        })
        .collect::<Result<_>>()?;
    let mut row = roots;
    let mut r = chunk_rows;
    while row.len() > 1 {
        let mut next = vec![[0u8; 32]; row.len() / 2];
        hash_pairs(&row, &mut next);
        r += 1;
        write(row_start(n, r), &next)?;
        row = next;
    }
    Ok(row[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_and_full_tree_agree() {
        let leaves: Vec<[u8; 32]> = (0..64u8).map(|i| [i; 32]).collect();
        let mut s = StreamingRoot::new();
        leaves.iter().for_each(|l| s.push(*l));
        let mut tree = vec![[0u8; 32]; tree_len(64)];
        let full = build_tree(&leaves, &mut tree).unwrap();
        assert_eq!(s.finish().unwrap(), full);
        assert_eq!(root(&leaves), full);
        let mut mixed = leaves.clone();
        mixed[16..48].fill([0u8; 32]);
        let mut mixed_tree = vec![[0u8; 32]; tree_len(64)];
        build_tree(&mixed, &mut mixed_tree).unwrap();
        for (input, want) in [(&leaves, &tree), (&mixed, &mixed_tree)] {
            for chunk in [1, 4, 16, 64, 128] {
                let chunked = std::sync::Mutex::new(vec![[0xffu8; 32]; tree_len(64)]);
                build_tree_chunked(
                    64,
                    chunk,
                    false,
                    |first, out| {
                        out.copy_from_slice(&input[first..first + out.len()]);
                        Ok(())
                    },
                    |at, nodes| {
                        chunked.lock().unwrap()[at..at + nodes.len()].copy_from_slice(nodes);
                        Ok(())
                    },
                )
                .unwrap();
                assert_eq!(&chunked.into_inner().unwrap(), want, "chunk {chunk}: every node in place");
            }
        }
        for chunk in [1, 4, 64, 128] {
            // Starting from zeros, zero leaves may be skipped and the tree is still whole.
            let chunked = std::sync::Mutex::new(vec![[0u8; 32]; tree_len(64)]);
            let root = build_tree_chunked(
                64,
                chunk,
                true,
                |first, out| {
                    out.copy_from_slice(&leaves[first..first + out.len()]);
                    Ok(())
                },
                |at, nodes| {
                    chunked.lock().unwrap()[at..at + nodes.len()].copy_from_slice(nodes);
                    Ok(())
                },
            )
            .unwrap();
            assert_eq!(root, full, "chunk {chunk}");
            assert_eq!(chunked.into_inner().unwrap(), tree, "chunk {chunk}: every node written in place");
        }
        let mut odd = StreamingRoot::new();
        leaves[..3].iter().for_each(|l| odd.push(*l));
        assert!(odd.finish().is_none());
    }
}
