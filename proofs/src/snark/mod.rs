//! C2 and verification: Groth16 proofs of the SDR circuit, one per partition,
//! concatenated as the reference does (192 bytes each: A ‖ B ‖ C compressed);
//! and the same for PoSt ([`post`]) over `crate::circuit::post`.

pub mod fft;
pub mod key;
pub mod msm;
pub mod params;
pub mod post;
pub mod prover;
pub mod setup;
pub mod witness;

use crate::circuit::{public_inputs, SdrCircuit};
use crate::error::{Error, Result};
use crate::ids::{Commitment, ProverId, Randomness, ReplicaId};
use crate::sdr::graph::Graph;
use crate::seal::c1::{C1Output, ValidC1Output};
use crate::seal::challenges::partition_challenges;
use crate::shape::{SectorSize, DEGREE};
use bellperson::groth16::{self, PreparedVerifyingKey, Proof};
use blstrs::{Bls12, Scalar as Fr};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, info_span};

/// Bytes of one partition's Groth16 proof.
pub const PROOF_BYTES: usize = 192;

/// The public inputs of one partition, computed by the verifier.
pub fn partition_inputs(
    size: SectorSize,
    replica_id: &ReplicaId,
    seed: &Randomness,
    comm_d: &Commitment,
    comm_r: &Commitment,
    partition: usize,
) -> Result<Vec<Fr>> {
    let shape = size.shape();
    let graph = Graph::new(shape.num_nodes, shape.porep_id);
    let challenges: Vec<(u64, [u32; DEGREE])> = partition_challenges(&shape, replica_id, seed, partition)
        .into_iter()
        .map(|c| {
            let mut parents = [0u32; DEGREE];
            graph.parents(c as u32, &mut parents);
            (c, parents)
        })
        .collect();
    public_inputs(&replica_id.0, &comm_d.0, &comm_r.0, &challenges)
}

/// C2: proves every partition of a C1 output. The output is validated first
/// (a bad witness fails in a second, not after a minute of proving).
pub fn prove(c1: &C1Output, params: &key::ProvingKey) -> Result<Vec<u8>> {
    Ok(prove_with_rng(c1, params, &mut rand::thread_rng())?.bytes)
}

/// A C2 proof and where it was made.
#[derive(Clone, Debug)]
pub struct C2Proof {
    /// The partitions' proofs, concatenated.
    pub bytes: Vec<u8>,
    /// The GPUs it was proved on; empty: the CPU.
    pub gpus: Vec<String>,
}

/// [`prove`] with the proofs' randomness drawn from `rng`: the same `rng`
/// gives the same bytes on the CPU and on a GPU.
pub fn prove_with_rng(
    c1: &C1Output,
    params: &key::ProvingKey,
    rng: &mut impl rand_core::RngCore,
) -> Result<C2Proof> {
    c1.validate()?;
    prove_checked(c1, params, rng)
}

/// [`prove`] for an output already validated (on receipt, by a worker).
pub fn prove_valid(c1: &ValidC1Output, params: &key::ProvingKey) -> Result<Vec<u8>> {
    Ok(prove_checked(c1, params, &mut rand::thread_rng())?.bytes)
}

/// On every GPU when the build has CUDA and the GPUs are free and large
/// enough (bellperson's prover), else on the CPU (kiln's); the choice logged.
fn prove_checked(
    c1: &C1Output,
    params: &key::ProvingKey,
    rng: &mut impl rand_core::RngCore,
) -> Result<C2Proof> {
    let _span = info_span!("c2", sector_id = c1.identity.sector_id).entered();
    let circuits =
        || (0..c1.partitions.len()).map(|k| SdrCircuit::from_c1(c1, k)).collect::<Result<Vec<_>>>();
    let (proofs, gpus) = prove_circuits(circuits, c1.identity.sector_size, params, rng)?;
    Ok(C2Proof { bytes: proof_bytes(&proofs), gpus })
}

/// Groth16 proofs of the circuits `make` builds, on the GPUs when they are
/// free and hold a circuit of `size` (bellperson's prover; a GPU failure
/// falls back to the CPU), else on the CPU (kiln's). Returns the proofs and
/// the GPUs used.
pub fn prove_circuits<C: bellperson::Circuit<Fr> + Send>(
    make: impl Fn() -> Result<Vec<C>>,
    size: SectorSize,
    params: &key::ProvingKey,
    rng: &mut impl rand_core::RngCore,
) -> Result<(Vec<Proof<Bls12>>, Vec<String>)> {
    let circuits = make()?;
    let out = match crate::gpu::lease_all(crate::gpu::c2_memory_needed(size)) {
        #[cfg(feature = "gpu")]
        Ok(lease) => {
            info!(gpus = ?lease.names, "proving on the GPU");
            match prover::prove_gpu(circuits, params, rng) {
                Ok(proofs) => (proofs, lease.names.clone()),
                // The GPU or its driver failed: the CPU gives the same kind of proof.
                Err(e @ Error::Gpu(_)) => {
                    tracing::warn!(error = %e, "proving on the GPU failed; proving on the CPU");
                    drop(lease);
                    (prover::prove(make()?, params, rng)?, Vec::new())
                }
                Err(e) => return Err(e),
            }
        }
        #[cfg(not(feature = "gpu"))]
        Ok(_) => unreachable!("a build without `gpu` finds no GPU"),
        Err(why) => {
            info!(%why, "proving on the CPU");
            (prover::prove(circuits, params, rng)?, Vec::new())
        }
    };
    info!(proofs = out.0.len(), "proved");
    Ok(out)
}

/// Proofs concatenated, 192 bytes each.
pub fn proof_bytes(proofs: &[Proof<Bls12>]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(proofs.len() * PROOF_BYTES);
    for p in proofs {
        p.write(&mut bytes).expect("writing to a Vec cannot fail");
    }
    bytes
}

/// What a verifier knows about a sealed sector: public values only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealStatement {
    /// The sector size.
    pub sector_size: SectorSize,
    /// The miner's prover id.
    pub prover_id: ProverId,
    /// The sector number.
    pub sector_id: u64,
    /// The seal ticket.
    pub ticket: Randomness,
    /// The interactive seed.
    pub seed: Randomness,
    /// The data commitment.
    pub comm_d: Commitment,
    /// The replica commitment.
    pub comm_r: Commitment,
}

impl SealStatement {
    /// The statement a C1 output proves.
    pub fn of(c1: &C1Output) -> Self {
        Self {
            sector_size: c1.identity.sector_size,
            prover_id: c1.identity.prover_id,
            sector_id: c1.identity.sector_id,
            ticket: c1.ticket,
            seed: c1.seed,
            comm_d: c1.comm_d,
            comm_r: c1.comm_r,
        }
    }
}

/// A prepared verifying key and the sector size whose circuit it is for.
pub struct SealVerifyingKey {
    /// The sector size the key was loaded for.
    pub sector_size: SectorSize,
    /// The prepared key.
    pub key: PreparedVerifyingKey<Bls12>,
}

impl params::GrothParams {
    /// The verifying key of this sector size, checked against its manifest.
    pub fn seal_verifying_key(&self) -> Result<SealVerifyingKey> {
        if self.kind() != params::CircuitKind::Porep {
            return Err(Error::Params {
                path: self.vk_path(),
                reason: format!("a {} key, not a PoRep one", self.kind().name()),
            });
        }
        Ok(SealVerifyingKey { sector_size: self.sector_size(), key: self.load_verifying_key()? })
    }
}

/// Verifies a seal proof against the statement and a verifying key. `Ok(false)`
/// means rejected (including proofs of the wrong length, points that do not
/// decode, commitments that are not field elements, or a key of another
/// circuit); errors are reserved for failures of the verifier itself.
pub fn verify_seal(statement: &SealStatement, proof: &[u8], vk: &SealVerifyingKey) -> Result<bool> {
    let shape = statement.sector_size.shape();
    let _span = info_span!("verify_seal", sector_id = statement.sector_id).entered();
    if vk.sector_size != statement.sector_size {
        debug!(key = %vk.sector_size, "verifying key is for another sector size");
        return Ok(false);
    }
    let replica_id = ReplicaId::derive(
        &statement.prover_id,
        statement.sector_id,
        &statement.ticket,
        &statement.comm_d,
        &shape.porep_id,
    );
    verify_partitions(&vk.key, proof, shape.partitions, |k| {
        partition_inputs(
            statement.sector_size,
            &replica_id,
            &statement.seed,
            &statement.comm_d,
            &statement.comm_r,
            k,
        )
    })
}

/// The end of every Groth16 verification (PoRep and PoSt): `bytes` must be
/// `partitions` proofs, checked together against `inputs(k)`, partition
/// `k`'s public inputs. `Ok(false)` for what a prover got wrong (the length,
/// points that do not decode, inputs that are not field elements, a key of
/// another circuit); errors only for failures of the verifier itself.
pub(crate) fn verify_partitions(
    vk: &PreparedVerifyingKey<Bls12>,
    bytes: &[u8],
    partitions: usize,
    inputs: impl Fn(usize) -> Result<Vec<Fr>>,
) -> Result<bool> {
    if bytes.len() != partitions * PROOF_BYTES {
        debug!(len = bytes.len(), partitions, "proof has the wrong length");
        return Ok(false);
    }
    let proofs = match Proof::<Bls12>::read_many(bytes, partitions) {
        Ok(p) => p,
        Err(e) => {
            debug!(error = %e, "proof does not decode");
            return Ok(false);
        }
    };
    let mut all = Vec::with_capacity(partitions);
    for k in 0..partitions {
        match inputs(k) {
            Ok(i) => all.push(i),
            Err(Error::InvalidProof(reason)) => {
                debug!(%reason, "public inputs are not field elements");
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
    }
    let refs: Vec<&Proof<Bls12>> = proofs.iter().collect();
    match groth16::verify_proofs_batch(vk, &mut rand::thread_rng(), &refs, &all) {
        Ok(valid) => Ok(valid),
        Err(e) => {
            debug!(error = %e, "verifying key does not fit this statement");
            Ok(false)
        }
    }
}
