//! PoSt SNARKs: Groth16 proofs of [`PostCircuit`], one for a Winning PoSt and
//! one per partition for a Window PoSt (192 bytes each, concatenated), and
//! their verification from public values (post.md §4–§6).

use crate::circuit::post::{public_inputs, PostCircuit};
use crate::error::{Error, Result};
use crate::ids::{Commitment, Randomness};
use crate::post::challenges::{check_randomness, sector_challenges};
use crate::post::vanilla::SectorProof;
use crate::post::{PostKind, PostProof};
use crate::snark::key::ProvingKey;
use crate::snark::{proof_bytes, prove_circuits};
use bellperson::groth16::PreparedVerifyingKey;
use blstrs::{Bls12, Scalar as Fr};
use rand_core::SeedableRng;
use tracing::{debug, info_span};

/// A PoSt SNARK and where it was made.
#[derive(Clone, Debug)]
pub struct PostSnark {
    /// The proofs, one per partition, concatenated.
    pub bytes: Vec<u8>,
    /// The GPUs it was proved on; empty: the CPU.
    pub gpus: Vec<String>,
}

/// Proves the vanilla proofs of `sectors` (ascending sector id): the one sector
/// of a Winning PoSt, or every sector of a Window PoSt, split into partitions
/// of [`PostProof::sectors_per_partition`].
pub fn prove(proof: &PostProof, sectors: &[SectorProof], params: &ProvingKey) -> Result<PostSnark> {
    prove_with_rng(proof, sectors, params, &mut rand::thread_rng())
}

/// [`prove`] with the proofs' randomness drawn from `rng`.
pub fn prove_with_rng(
    proof: &PostProof,
    sectors: &[SectorProof],
    params: &ProvingKey,
    rng: &mut impl rand_core::RngCore,
) -> Result<PostSnark> {
    let _span = info_span!("post_snark", proof = %proof, sectors = sectors.len()).entered();
    if sectors.is_empty() {
        return Err(Error::InvalidProof(format!("a {proof} proof needs at least one sector")));
    }
    if sectors.windows(2).any(|w| w[0].sector_id >= w[1].sector_id) {
        return Err(Error::InvalidProof("PoSt sectors must be in ascending sector id, each once".into()));
    }
    let make = || {
        sectors
            .chunks(proof.sectors_per_partition())
            .map(|chunk| PostCircuit::from_vanilla(proof, chunk))
            .collect()
    };
    // The pool's threads need a sendable RNG: one seeded from the caller's.
    let mut seeded =
        rand_chacha::ChaCha20Rng::from_rng(rng).map_err(|e| Error::Snark(format!("randomness: {e}")))?;
    let mut prove = move || prove_circuits(make, proof.sector_size(), params, &mut seeded);
    let (proofs, gpus) = match pool() {
        Some(pool) => pool.install(prove)?,
        None => prove()?,
    };
    Ok(PostSnark { bytes: proof_bytes(&proofs), gpus })
}

/// PoSt SNARKs run on a rayon pool of their own, their MSMs included: a
/// deadline's proof shares the cores with a running C2 instead of queueing
/// behind the C2's work in the global pool or in blst's. `None` if its threads cannot be started (then the global
/// pool serves).
fn pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: std::sync::OnceLock<Option<rayon::ThreadPool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("post-snark-{i}"))
            // Its MSMs stay on it too, not in blst's pool behind a C2's.
            .start_handler(|_| crate::snark::msm::keep_msms_on_this_pool())
            .build()
            .ok()
    })
    .as_ref()
}

/// The public inputs of partition `k` of a proof over `sectors` (sector id
/// and comm_r, ascending sector id).
pub fn partition_inputs(
    proof: &PostProof,
    randomness: &Randomness,
    sectors: &[(u64, Commitment)],
    k: usize,
) -> Result<Vec<Fr>> {
    let (challenges, slot_count) = proof.circuit_counts();
    let per = proof.sectors_per_partition();
    let first = k * per;
    let chunk = sectors.get(first..(first + per).min(sectors.len())).unwrap_or_default();
    let mut slots = Vec::with_capacity(slot_count);
    for (i, (sector_id, comm_r)) in chunk.iter().enumerate() {
        let leaves = sector_challenges(proof, randomness, *sector_id, first + i);
        for group in leaves.chunks(challenges) {
            slots.push((*comm_r, group.to_vec()));
        }
    }
    public_inputs(&slots, slot_count)
}

/// Verifies a PoSt proof of `sectors` (sector id and comm_r; Winning: the one
/// challenged sector) for `randomness` (masked). `Ok(false)`: rejected,
/// including proofs of the wrong length, points that do not decode, values
/// that are not field elements, or a key of another circuit.
pub fn verify(
    proof: &PostProof,
    randomness: &Randomness,
    sectors: &[(u64, Commitment)],
    bytes: &[u8],
    vk: &PreparedVerifyingKey<Bls12>,
) -> Result<bool> {
    let _span = info_span!("verify_post", proof = %proof, sectors = sectors.len()).entered();
    if check_randomness(randomness).is_err() {
        debug!("randomness is not a field element");
        return Ok(false);
    }
    if sectors.is_empty() || (proof.kind() == PostKind::Winning && sectors.len() != 1) {
        debug!(sectors = sectors.len(), "wrong number of sectors");
        return Ok(false);
    }
    let mut sorted = sectors.to_vec();
    sorted.sort_by_key(|s| s.0);
    if sorted.windows(2).any(|w| w[0].0 == w[1].0) {
        debug!("a sector is listed twice");
        return Ok(false);
    }
    let partitions = proof.partitions(sorted.len());
    super::verify_partitions(vk, bytes, partitions, |k| partition_inputs(proof, randomness, &sorted, k))
}
