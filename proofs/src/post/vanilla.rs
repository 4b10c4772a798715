//! PoSt vanilla proofs (post.md §4, §5): the challenged leaves' openings in
//! tree_r_last, read from a sealed sector's replica, cached tree_r_last rows
//! and p_aux.
//!
//! Sectors are read in parallel, at most [`ReadLimits::parallel`] at a time
//! (each holds its replica and tree files open), and each within its own
//! [`ReadLimits::timeout`]: a sector that is missing, unreadable, corrupt or
//! too slow is reported in [`Vanilla::faults`] and the others are proven, so
//! one bad disk does not cost the whole deadline.

use super::challenges::{check_randomness, sector_challenges};
use super::{PostKind, PostProof};
use crate::error::{Error, Result};
use crate::ids::{Commitment, Node, Randomness};
use crate::merkle::poseidon_tree::cached_len;
use crate::merkle::proof::{path_arities, poseidon_tree_proof, CachedTrees, InclusionProof, TreeHash};
use crate::merkle::store::ReadMap;
use crate::seal::pc2::{comm_r_from, tree_file_name, P_AUX_FILE};
use crate::seal::SectorDir;
use crate::shape::SectorSize;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tracing::{debug, info_span, warn};

/// A sealed sector to prove: its files and the comm_r the chain holds for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvingSector {
    /// The sector number.
    pub sector_id: u64,
    /// comm_r as committed on chain.
    pub comm_r: Commitment,
    /// The sealed replica.
    pub replica: PathBuf,
    /// The cache directory holding tree_r_last and p_aux.
    pub cache_dir: PathBuf,
}

impl ProvingSector {
    /// The sector kept in a kiln sector directory.
    pub fn in_dir(sector_id: u64, comm_r: Commitment, dir: &SectorDir) -> Self {
        Self { sector_id, comm_r, replica: dir.sealed_path(), cache_dir: dir.cache_dir() }
    }
}

/// One sector's openings (the reference's `FallbackPoStSectorProof`, its
/// single `SectorProof` flattened).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectorProof {
    /// The sector number.
    pub sector_id: u64,
    /// The sector's comm_r.
    pub comm_r: Commitment,
    /// One tree_r_last opening per challenge, in challenge order.
    pub inclusion_proofs: Vec<InclusionProof>,
    /// Root of tree_c (from p_aux).
    pub comm_c: Commitment,
    /// Root of tree_r_last (from p_aux).
    pub comm_r_last: Commitment,
}

/// A sector that could not be proven, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// The sector number.
    pub sector_id: u64,
    /// What was wrong (a missing file, a failed opening, a timeout, …).
    pub reason: String,
}

/// How hard a PoSt may lean on the disks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadLimits {
    /// Sectors read at once (each holds its replica and tree files open).
    pub parallel: usize,
    /// Time one sector may take before it is reported faulty.
    pub timeout: Duration,
}

impl Default for ReadLimits {
    fn default() -> Self {
        Self { parallel: 16, timeout: Duration::from_secs(60) }
    }
}

/// The vanilla proofs of a PoSt and the sectors that failed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vanilla {
    /// Proofs of the sectors that opened, in ascending sector id.
    pub proofs: Vec<SectorProof>,
    /// Sectors that did not, in ascending sector id.
    pub faults: Vec<Fault>,
}

/// Reads the openings of `challenges` in one sector, checking each against the
/// sector's comm_r: any error is the sector's fault.
pub fn prove_sector(size: SectorSize, sector: &ProvingSector, challenges: &[u64]) -> Result<SectorProof> {
    let shape = size.shape();
    let p_aux_path = sector.cache_dir.join(P_AUX_FILE);
    let p_aux = std::fs::read(&p_aux_path).map_err(Error::io("read", &p_aux_path))?;
    if p_aux.len() != 64 {
        return Err(Error::FileLength { path: p_aux_path, expected: 64, found: p_aux.len() as u64 });
    }
    let comm_c = Commitment(p_aux[..32].try_into().expect("32 bytes"));
    let comm_r_last = Commitment(p_aux[32..].try_into().expect("32 bytes"));
    let comm_r = comm_r_from(&comm_c, &comm_r_last)?;
    if comm_r != sector.comm_r {
        return Err(Error::InvalidProof(format!(
            "p_aux gives comm_r {comm_r}, the chain has {}",
            sector.comm_r
        )));
    }

    let count = shape.tree.base_tree_count();
    let per_tree = shape.leaves_per_base_tree() as usize;
    let arity = shape.tree.base_arity;
    let replica = ReadMap::open(&sector.replica, Some(shape.size_bytes))?;
    let trees: Vec<ReadMap> = (0..count)
        .map(|i| {
            let path = sector.cache_dir.join(tree_file_name("tree-r-last", i, count));
            ReadMap::open(&path, Some(cached_len(per_tree, arity) as u64 * 32))
        })
        .collect::<Result<_>>()?;
    let tree = CachedTrees::new(replica.nodes(), trees.iter().map(|m| m.nodes()).collect(), per_tree, arity);
    let arities = path_arities(&shape.tree, per_tree as u64);
    let inclusion_proofs = challenges
        .iter()
        .map(|&c| {
            let proof = poseidon_tree_proof(&tree, &shape.tree, per_tree, c)?;
            if !proof.verifies(TreeHash::Poseidon, &Node(comm_r_last.0), c, &arities) {
                return Err(Error::InvalidProof(format!(
                    "leaf {c} does not open to comm_r_last {comm_r_last}: the replica or tree_r_last is corrupt"
                )));
            }
            Ok(proof)
        })
        .collect::<Result<_>>()?;
    Ok(SectorProof { sector_id: sector.sector_id, comm_r, inclusion_proofs, comm_c, comm_r_last })
}

/// The sectors sorted by id, duplicates refused.
fn sorted(sectors: &[ProvingSector]) -> Result<Vec<ProvingSector>> {
    let mut out = sectors.to_vec();
    out.sort_by_key(|s| s.sector_id);
    if let Some(w) = out.windows(2).find(|w| w[0].sector_id == w[1].sector_id) {
        return Err(Error::InvalidProof(format!("sector {} is listed twice", w[0].sector_id)));
    }
    Ok(out)
}

/// Vanilla proofs of `sectors` for a PoSt of type `proof` (Window: all of a
/// deadline's or partition's sectors; Winning: the one chosen sector).
/// Positions, which V1.0 challenges depend on, are ranks in ascending
/// sector id, as the reference orders them.
pub fn generate(
    proof: &PostProof,
    randomness: &Randomness,
    sectors: &[ProvingSector],
    limits: ReadLimits,
) -> Result<Vanilla> {
    check_randomness(randomness)?;
    if proof.kind() == PostKind::Winning && sectors.len() != 1 {
        return Err(Error::InvalidProof(format!("a Winning PoSt proves one sector, not {}", sectors.len())));
    }
    let sectors = sorted(sectors)?;
    let _span = info_span!("post_vanilla", proof = %proof, sectors = sectors.len()).entered();
    let size = proof.sector_size();
    let parallel = limits.parallel.max(1);
    let (tx, rx) = mpsc::channel::<(usize, Result<SectorProof>)>();
    let mut results: Vec<Option<Result<SectorProof>>> = (0..sectors.len()).map(|_| None).collect();
    let mut in_flight: HashMap<usize, Instant> = HashMap::new();
    let mut next = 0;
    loop {
        while in_flight.len() < parallel && next < sectors.len() {
            let (i, sector, tx) = (next, sectors[next].clone(), tx.clone());
            let challenges = sector_challenges(proof, randomness, sector.sector_id, i);
            // A detached thread: a read stuck on a dead disk cannot hold up the
            // deadline; its result is ignored if it comes after the timeout.
            std::thread::Builder::new()
                .name(format!("post-read-{}", sector.sector_id))
                .spawn(move || {
                    let _ = tx.send((i, prove_sector(size, &sector, &challenges)));
                })
                .map_err(|e| Error::io("spawn a reader for", &sectors[i].replica)(e))?;
            in_flight.insert(i, Instant::now());
            next += 1;
        }
        let Some(oldest) = in_flight.values().min().copied() else { break };
        let wait = (oldest + limits.timeout).saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok((i, result)) => {
                if in_flight.remove(&i).is_some() {
                    results[i] = Some(result);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let now = Instant::now();
                let late: Vec<usize> =
                    in_flight.iter().filter(|(_, &t)| now >= t + limits.timeout).map(|(&i, _)| i).collect();
                for i in late {
                    in_flight.remove(&i);
                    results[i] = Some(Err(Error::Timeout { after: limits.timeout }));
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => unreachable!("the sender `tx` is alive"),
        }
    }
    let results: Vec<Result<SectorProof>> =
        results.into_iter().map(|r| r.expect("every sector finished or timed out")).collect();
    // A read that failed because this process ran out of file descriptors says
    // nothing about the sector: the whole PoSt is tried again, no sector skipped.
    if let Some(i) = results.iter().position(|r| r.as_ref().is_err_and(Error::is_out_of_descriptors)) {
        let e = results.into_iter().nth(i).and_then(Result::err).expect("an error at i");
        return Err(e);
    }
    let mut out = Vanilla::default();
    for (sector, result) in sectors.iter().zip(results) {
        match result {
            Ok(p) => out.proofs.push(p),
            Err(e) => {
                let reason = e.to_string();
                warn!(sector_id = sector.sector_id, %reason, "faulty sector");
                out.faults.push(Fault { sector_id: sector.sector_id, reason });
            }
        }
    }
    debug!(proven = out.proofs.len(), faulty = out.faults.len(), "vanilla proofs");
    Ok(out)
}

/// Checks a sector's vanilla proof against public values: its sector id and
/// comm_r, comm_r's binding to comm_c and comm_r_last, and each opening's leaf
/// index and root. `position` as in [`generate`].
pub fn verify_sector_proof(
    proof_type: &PostProof,
    randomness: &Randomness,
    sector_id: u64,
    comm_r: &Commitment,
    position: usize,
    proof: &SectorProof,
) -> bool {
    let shape = proof_type.sector_size().shape();
    let arities = path_arities(&shape.tree, shape.leaves_per_base_tree());
    let challenges = sector_challenges(proof_type, randomness, sector_id, position);
    proof.sector_id == sector_id
        && proof.comm_r == *comm_r
        && comm_r_from(&proof.comm_c, &proof.comm_r_last).is_ok_and(|c| c == *comm_r)
        && proof.inclusion_proofs.len() == challenges.len()
        && proof
            .inclusion_proofs
            .iter()
            .zip(&challenges)
            .all(|(p, &c)| p.verifies(TreeHash::Poseidon, &Node(proof.comm_r_last.0), c, &arities))
}

/// Sector ids of `faults`, ascending.
pub fn fault_ids(faults: &[Fault]) -> BTreeSet<u64> {
    faults.iter().map(|f| f.sector_id).collect()
}
