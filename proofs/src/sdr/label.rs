//! The labeling kernel and the single-threaded reference labeler (porep-sdr.md §7).
//!
//! `label[ℓ][v] = trim(SHA-256(header(ℓ, v) || 37 parent labels))`, where the
//! header is `replica_id || ℓ (u32 BE) || v (u64 BE) || 20 zero bytes`. The
//! kernel feeds SHA-256's compression function directly with the 20 blocks
//! of that message (19.5 blocks of data and the padding), so it allocates
//! nothing and checks nothing per node. [`label_layer`] here is the plain
//! reference every faster labeler must agree with byte for byte.

use super::parent_cache::ParentCache;
use crate::ids::{trim, ReplicaId};
use crate::shape::{BASE_DEGREE, DEGREE};
// sha2 0.10's block type is generic-array 0.14's, deprecated upstream in favour of 1.x.
#[allow(deprecated)]
type Block = sha2::digest::generic_array::GenericArray<u8, sha2::digest::consts::U64>;

/// SHA-256 initial state.
const IV: [u32; 8] =
    [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/// Parent labels hashed per node.
const PARENT_REPEATS: usize = 37;
/// Bit length of a full label message: 64-byte header + 37 parents.
const MESSAGE_BITS: u64 = (64 + PARENT_REPEATS as u64 * 32) * 8;

fn header(replica_id: &ReplicaId, layer: u32, node: u64) -> Block {
    let mut b = Block::default();
    b[..32].copy_from_slice(&replica_id.0);
    b[32..36].copy_from_slice(&layer.to_be_bytes());
    b[36..44].copy_from_slice(&node.to_be_bytes());
    b
}

fn finish(state: [u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (o, w) in out.chunks_exact_mut(4).zip(state) {
        o.copy_from_slice(&w.to_be_bytes());
    }
    trim(&mut out);
    out
}

/// The label of node 0 of `layer`: the header alone.
pub fn label_first_node(replica_id: &ReplicaId, layer: u32) -> [u8; 32] {
    let mut blocks = [header(replica_id, layer, 0), Block::default()];
    blocks[1][0] = 0x80;
    blocks[1][56..].copy_from_slice(&512u64.to_be_bytes());
    let mut state = IV;
    sha2::compress256(&mut state, &blocks);
    finish(state)
}

/// The label of `node >= 1` of `layer` from its parents' labels: the 6 base parents'
/// labels of this layer then, for layers after the first, the 8 expander parents'
/// labels of the previous layer (ignored in layer 1).
#[inline]
pub fn label_node(replica_id: &ReplicaId, layer: u32, node: u64, parents: &[[u8; 32]; DEGREE]) -> [u8; 32] {
    let cycle = if layer == 1 { BASE_DEGREE } else { DEGREE };
    let mut blocks: [Block; 20] = Default::default();
    blocks[0] = header(replica_id, layer, node);
    for i in 0..PARENT_REPEATS {
        let half = (i % 2) * 32;
        blocks[1 + i / 2][half..half + 32].copy_from_slice(&parents[i % cycle]);
    }
    blocks[19][32] = 0x80;
    blocks[19][56..].copy_from_slice(&MESSAGE_BITS.to_be_bytes());
    let mut state = IV;
    sha2::compress256(&mut state, &blocks);
    finish(state)
}

/// Gathers the 14 parent labels of `node` (expander slots left zero in layer 1).
#[inline]
pub fn gather_parents(
    parents: &[u32; DEGREE],
    current: &[[u8; 32]],
    previous: Option<&[[u8; 32]]>,
) -> [[u8; 32]; DEGREE] {
    let mut out = [[0u8; 32]; DEGREE];
    for i in 0..BASE_DEGREE {
        out[i] = current[parents[i] as usize];
    }
    if let Some(prev) = previous {
        for i in BASE_DEGREE..DEGREE {
            out[i] = prev[parents[i] as usize];
        }
    }
    out
}

/// Labels one whole layer, one node after another: the reference labeler.
/// `previous` is layer `layer − 1` (None for layer 1); `out` receives the layer.
pub fn label_layer(
    cache: &ParentCache,
    replica_id: &ReplicaId,
    layer: u32,
    previous: Option<&[[u8; 32]]>,
    out: &mut [[u8; 32]],
) {
    assert_eq!(out.len(), cache.num_nodes() as usize, "layer buffer size");
    assert_eq!(previous.is_some(), layer > 1, "previous layer given iff layer > 1");
    out[0] = label_first_node(replica_id, layer);
    for v in 1..out.len() {
        let labels = gather_parents(&cache.parents(v as u32), out, previous);
        out[v] = label_node(replica_id, layer, v as u64, &labels);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    /// The kernel agrees with a plain SHA-256 over the message it describes.
    #[test]
    fn kernel_matches_plain_sha256() {
        let rid = ReplicaId([9u8; 32]);
        let parents: [[u8; 32]; DEGREE] = std::array::from_fn(|i| [i as u8 + 1; 32]);
        for layer in [1u32, 2, 11] {
            let node = 12345u64;
            let cycle = if layer == 1 { 6 } else { 14 };
            let mut h = Sha256::new();
            h.update(rid.0);
            h.update(layer.to_be_bytes());
            h.update(node.to_be_bytes());
            h.update([0u8; 20]);
            for i in 0..37 {
                h.update(parents[i % cycle]);
            }
            let mut expected: [u8; 32] = h.finalize().into();
            trim(&mut expected);
            assert_eq!(label_node(&rid, layer, node, &parents), expected, "layer {layer}");
        }
        let mut h = Sha256::new();
        h.update(rid.0);
        h.update(3u32.to_be_bytes());
        h.update([0u8; 28]);
        let mut expected: [u8; 32] = h.finalize().into();
        trim(&mut expected);
        assert_eq!(label_first_node(&rid, 3), expected);
    }
}
