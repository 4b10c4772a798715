//! PoSt challenges (post.md §3): the Winning sector and the leaves opened in
//! each proven sector, all drawn from the chain's randomness with SHA-256.

use super::{ChallengeRules, PostProof};
use crate::error::{Error, Result};
use crate::ids::{ProverId, Randomness};
use crate::poseidon::fr_from_bytes;
use sha2::{Digest, Sha256};

/// The chain's randomness as PoSt uses it: the top two bits cleared so that it
/// is a field element (`randomness[31] &= 0x3f`, as lotus does before proving
/// and verifying).
pub fn mask_randomness(randomness: &Randomness) -> Randomness {
    let mut r = *randomness;
    r.0[31] &= 0x3f;
    r
}

/// Rejects randomness that is not a canonical field element (unmasked).
pub fn check_randomness(randomness: &Randomness) -> Result<()> {
    match fr_from_bytes(&randomness.0) {
        Some(_) => Ok(()),
        None => {
            Err(Error::NotInField { what: format!("PoSt randomness {randomness} (mask byte 31 with 0x3f)") })
        }
    }
}

fn le_u64(digest: &[u8]) -> u64 {
    u64::from_le_bytes(digest[..8].try_into().expect("a SHA-256 digest has 8 bytes"))
}

/// Index into the caller's list of eligible sectors of the sector a Winning
/// PoSt proves (`generate_sector_challenge`, n = 0).
pub fn winning_sector_index(
    prover_id: &ProverId,
    randomness: &Randomness,
    sector_set_len: u64,
) -> Result<u64> {
    if sector_set_len == 0 {
        return Err(Error::InvalidProof("a Winning PoSt needs at least one eligible sector".into()));
    }
    let digest =
        Sha256::new().chain_update(prover_id.0).chain_update(randomness.0).chain_update(0u64.to_le_bytes());
    Ok(le_u64(&digest.finalize()) % sector_set_len)
}

/// The leaf opened by challenge `challenge_index` of `sector_id` in a sector
/// of `num_nodes` nodes (node 0 included).
pub fn leaf_challenge(randomness: &Randomness, sector_id: u64, challenge_index: u64, num_nodes: u64) -> u64 {
    let digest = Sha256::new()
        .chain_update(randomness.0)
        .chain_update(sector_id.to_le_bytes())
        .chain_update(challenge_index.to_le_bytes())
        .finalize();
    le_u64(&digest) % num_nodes
}

/// The leaves opened in `sector_id`, at `position` in the ascending list of
/// proven sectors (only V1.0 rules depend on it; Winning's one sector is at 0).
pub fn sector_challenges(
    proof: &PostProof,
    randomness: &Randomness,
    sector_id: u64,
    position: usize,
) -> Vec<u64> {
    let count = proof.challenges_per_sector() as u64;
    let nodes = proof.sector_size().shape().num_nodes;
    (0..count)
        .map(|n| {
            let index = match proof.rules() {
                ChallengeRules::V1_0 => position as u64 * count + n,
                ChallengeRules::V1_2 => n,
            };
            leaf_challenge(randomness, sector_id, index, nodes)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::SectorSize;

    #[test]
    fn rules_differ_only_past_the_first_sector() {
        let r = mask_randomness(&Randomness([0x5a; 32]));
        let (v1, v12) = (PostProof::window_v1(SectorSize::KiB2), PostProof::window(SectorSize::KiB2));
        assert_eq!(sector_challenges(&v1, &r, 7, 0), sector_challenges(&v12, &r, 7, 0));
        assert_ne!(sector_challenges(&v1, &r, 7, 1), sector_challenges(&v12, &r, 7, 1));
        assert_eq!(sector_challenges(&v12, &r, 7, 1), sector_challenges(&v12, &r, 7, 5));
        assert!(sector_challenges(&v12, &r, 7, 0).iter().all(|&c| c < 64));
    }

    #[test]
    fn unmasked_randomness_is_rejected() {
        assert!(check_randomness(&Randomness([0xff; 32])).is_err());
        check_randomness(&mask_randomness(&Randomness([0xff; 32]))).unwrap();
        assert!(winning_sector_index(&ProverId([1; 32]), &Randomness([0; 32]), 0).is_err());
    }
}
