//! The SDR graph: 6 bucket-sampling DRG parents and 8 Feistel expander parents
//! per node, in the V1_1 order (porep-sdr.md §6).
//!
//! Parents are a pure function of the porep id and the node count. Labeling
//! reads them from the parent cache ([`super::parent_cache`]); this module is
//! what the cache is built from.

use crate::ids::PorepId;
use crate::shape::{BASE_DEGREE, DEGREE, EXP_DEGREE};
use blake2::{Blake2b512, Digest as _};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use sha2::Sha256;

/// Domain tag of the DRG seed.
const DRG_SEED_TAG: &[u8] = b"Filecoin_DRSample";
/// Domain tag of the Feistel keys.
const FEISTEL_TAG: &[u8] = b"Filecoin_Feistel";
/// Feistel rounds.
const FEISTEL_ROUNDS: usize = 3;

/// The V1_1 SDR graph of one sector size and proof type.
#[derive(Clone, Debug)]
pub struct Graph {
    num_nodes: u32,
    porep_id: PorepId,
    drg_seed: [u8; 28],
    feistel_keys: [u64; 4],
    half_bits: u32,
    right_mask: u64,
    left_mask: u64,
}

impl Graph {
    /// The graph over `num_nodes` nodes (at most 2^31) for `porep_id`.
    pub fn new(num_nodes: u64, porep_id: PorepId) -> Self {
        assert!((2..=1 << 31).contains(&num_nodes), "node count {num_nodes} out of range");
        let seed_hash = Sha256::new_with_prefix(DRG_SEED_TAG).chain_update(porep_id.0).finalize();
        let mut drg_seed = [0u8; 28];
        drg_seed.copy_from_slice(&seed_hash[..28]);

        let key_hash = Sha256::new_with_prefix(FEISTEL_TAG).chain_update(porep_id.0).finalize();
        let mut feistel_keys = [0u64; 4];
        for (i, k) in feistel_keys.iter_mut().enumerate() {
            *k = u64::from_le_bytes(key_hash[8 * i..8 * i + 8].try_into().expect("8 bytes"));
        }

        // Smallest h >= 1 with 4^h >= 8·N: each Feistel half is h bits wide.
        let domain = num_nodes * EXP_DEGREE as u64;
        let mut half_bits = 1;
        while 1u64 << (2 * half_bits) < domain {
            half_bits += 1;
        }
        let right_mask = (1u64 << half_bits) - 1;
        Self {
            num_nodes: num_nodes as u32,
            porep_id,
            drg_seed,
            feistel_keys,
            half_bits,
            right_mask,
            left_mask: right_mask << half_bits,
        }
    }

    /// Nodes in the graph.
    pub fn num_nodes(&self) -> u32 {
        self.num_nodes
    }

    /// The porep id the graph was derived from.
    pub fn porep_id(&self) -> &PorepId {
        &self.porep_id
    }

    /// The Feistel keys (all four; three are used). Part of the parent cache's name.
    pub fn feistel_keys(&self) -> &[u64; 4] {
        &self.feistel_keys
    }

    /// The 6 DRG parents of `node`, predecessor first (V1_1 order), unsorted.
    pub fn base_parents(&self, node: u32, out: &mut [u32; BASE_DEGREE]) {
        if node < 2 {
            *out = [0; BASE_DEGREE];
            return;
        }
        let mut seed = [0u8; 32];
        seed[..28].copy_from_slice(&self.drg_seed);
        seed[28..].copy_from_slice(&node.to_le_bytes());
        let mut rng = ChaCha8Rng::from_seed(seed);

        const M_PRIME: u64 = BASE_DEGREE as u64 - 1;
        let meta = node as u64 * M_PRIME;
        let bits = 64 - (meta - 1).leading_zeros() as u64; // ceil(log2(meta)), meta >= 10
        out[0] = node - 1;
        for slot in out.iter_mut().skip(1) {
            let b = rng.next_u64() % bits + 1;
            let hi = meta.min(1 << b);
            let lo = 2u64.max(hi >> 1);
            let dist = lo + rng.next_u64() % (hi - lo + 1);
            let parent = ((meta - dist) / M_PRIME) as u32;
            *slot = if parent == node { node - 1 } else { parent };
        }
    }

    /// The 8 expander parents of `node` (they index the previous layer).
    pub fn exp_parents(&self, node: u32, out: &mut [u32; EXP_DEGREE]) {
        let base = node as u64 * EXP_DEGREE as u64;
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = (self.permute(base + i as u64) / EXP_DEGREE as u64) as u32;
        }
    }

    /// All 14 parents: DRG then expander.
    pub fn parents(&self, node: u32, out: &mut [u32; DEGREE]) {
        let (base, exp) = out.split_at_mut(BASE_DEGREE);
        self.base_parents(node, base.try_into().expect("6 slots"));
        self.exp_parents(node, exp.try_into().expect("8 slots"));
    }

    fn feistel_round(&self, right: u64, key: u64) -> u64 {
        let mut h = Blake2b512::new();
        h.update(right.to_be_bytes());
        h.update(key.to_be_bytes());
        let out = h.finalize();
        u64::from_be_bytes(out[..8].try_into().expect("8 bytes")) & self.right_mask
    }

    fn encode(&self, x: u64) -> u64 {
        let mut left = (x & self.left_mask) >> self.half_bits;
        let mut right = x & self.right_mask;
        for key in &self.feistel_keys[..FEISTEL_ROUNDS] {
            (left, right) = (right, left ^ self.feistel_round(right, *key));
        }
        (left << self.half_bits) | right
    }

    /// The Feistel permutation of `[0, 8·N)`, by cycle walking.
    fn permute(&self, x: u64) -> u64 {
        let domain = self.num_nodes as u64 * EXP_DEGREE as u64;
        let mut y = self.encode(x);
        while y >= domain {
            y = self.encode(y);
        }
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::SectorSize;

    #[test]
    fn parents_are_in_range_and_ordered() {
        let shape = SectorSize::KiB2.shape();
        let g = Graph::new(shape.num_nodes, shape.porep_id);
        let mut p = [0u32; DEGREE];
        for v in 0..64 {
            g.parents(v, &mut p);
            if v >= 2 {
                assert_eq!(p[0], v - 1);
                assert!(p[..6].iter().all(|&x| x < v));
            } else {
                assert!(p[..6].iter().all(|&x| x == 0));
            }
            assert!(p[6..].iter().all(|&x| x < 64));
        }
    }

    #[test]
    fn feistel_is_a_permutation() {
        let g = Graph::new(64, SectorSize::KiB2.shape().porep_id);
        let mut seen = vec![false; 512];
        for x in 0..512 {
            let y = g.permute(x) as usize;
            assert!(!seen[y]);
            seen[y] = true;
        }
    }
}
