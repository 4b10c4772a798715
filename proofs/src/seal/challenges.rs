//! Interactive PoRep challenges (porep-sdr.md §11).
//!
//! Challenge `i` of partition `k` is
//! `(LE(SHA-256(replica_id || seed || (C·k + i) as u32 LE)) mod (N − 1)) + 1`:
//! never node 0, repeats allowed.

use crate::ids::{Randomness, ReplicaId};
use crate::shape::SectorShape;
use sha2::{Digest, Sha256};

/// `value mod m` for a 256-bit little-endian integer.
fn le_mod(bytes: &[u8; 32], m: u64) -> u64 {
    // Horner over the 64-bit limbs, most significant first.
    bytes.chunks_exact(8).rev().fold(0u128, |acc, limb| {
        let limb = u64::from_le_bytes(limb.try_into().expect("8-byte chunk")) as u128;
        ((acc << 64) | limb) % m as u128
    }) as u64
}

/// The challenged nodes of partition `partition`, in order.
pub fn partition_challenges(
    shape: &SectorShape,
    replica_id: &ReplicaId,
    seed: &Randomness,
    partition: usize,
) -> Vec<u64> {
    let per = shape.challenges_per_partition;
    (0..per)
        .map(|i| {
            let j = (per * partition + i) as u32;
            let digest: [u8; 32] = Sha256::new()
                .chain_update(replica_id.0)
                .chain_update(seed.0)
                .chain_update(j.to_le_bytes())
                .finalize()
                .into();
            le_mod(&digest, shape.num_nodes - 1) + 1
        })
        .collect()
}

/// Challenges of every partition.
pub fn all_challenges(shape: &SectorShape, replica_id: &ReplicaId, seed: &Randomness) -> Vec<Vec<u64>> {
    (0..shape.partitions).map(|k| partition_challenges(shape, replica_id, seed, k)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn le_mod_matches_small_values_and_powers() {
        let mut b = [0u8; 32];
        b[0] = 200;
        assert_eq!(le_mod(&b, 63), 200 % 63);
        let mut b = [0u8; 32];
        b[8] = 1;
        assert_eq!(le_mod(&b, 63), ((1u128 << 64) % 63) as u64);
        let b = [0xffu8; 32];
        // 2^256 − 1 mod 1000003, computed with u128 steps of 2^32.
        let mut acc = 0u128;
        for _ in 0..8 {
            acc = ((acc << 32) | 0xffff_ffff) % 1_000_003;
        }
        assert_eq!(le_mod(&b, 1_000_003), acc as u64);
    }
}
