//! The single-threaded reference labeler (porep-sdr.md §7).
//!
//! `label[ℓ][v] = trim(SHA-256(header(ℓ, v) || 37 parent labels))`, where the
//! header is `replica_id || ℓ (u32 BE) || v (u64 BE) || 20 zero bytes`.
//! [`label_layer`] here is the plain reference every faster labeler must agree
//! with byte for byte: one node after another on the portable kernel backend
//! (`sha2`), itself checked against plain SHA-256 of the whole message below.

use super::kernel::{header_block, state_bytes_trimmed, Kernel, IV};
use super::parent_cache::ParentCache;
use crate::ids::ReplicaId;
use crate::shape::{BASE_DEGREE, DEGREE};

/// The label of node 0 of `layer`: the header alone (one block, then the padding block).
pub fn label_first_node(replica_id: &ReplicaId, layer: u32) -> [u8; 32] {
    let mut padding = [0u8; 64];
    padding[0] = 0x80;
    padding[56..].copy_from_slice(&512u64.to_be_bytes());
    let kernel = Kernel::portable();
    let mut state = [IV];
    kernel.compress(&mut state, [&header_block(replica_id, layer, 0)]);
    kernel.compress(&mut state, [&padding]);
    state_bytes_trimmed(&state[0])
}

/// The label of `node >= 1` of `layer` from its parents' labels: the 6 base parents'
/// labels of this layer then, for layers after the first, the 8 expander parents'
/// labels of the previous layer (ignored in layer 1). Portable backend, one node at
/// a time: the reference the fast labelers are checked against.
#[inline]
pub fn label_node(replica_id: &ReplicaId, layer: u32, node: u64, parents: &[[u8; 32]; DEGREE]) -> [u8; 32] {
    let kernel = Kernel::portable();
    let [header] = kernel.header_states([replica_id], layer, node);
    kernel.label(&header, parents, layer)
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
    use crate::ids::trim;
    use sha2::{Digest, Sha256};

    /// The reference labeler's nodes are plain SHA-256 over the message they describe.
    #[test]
    fn reference_label_matches_plain_sha256() {
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
