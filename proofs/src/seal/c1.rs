//! C1: the vanilla proofs of a pre-committed sector for an interactive seed
//! (porep-sdr.md §11, §12), packed into a self-contained [`C1Output`].
//!
//! The output carries everything C2 needs (public inputs and the whole
//! witness), so C2 can run on another machine with no sector files. It has two
//! forms: JSON for inspection, and a compact binary form for the network
//! (`KILNC1` magic, a format version, then bincode).

use super::challenges::partition_challenges;
use super::pc1::TREE_D_FILE;
use super::pc2::{comm_r_from, tree_file_name};
use super::vanilla::{
    expand_parents, verify_partition, ChallengeProof, Column, ColumnProof, LabelingProof, PartitionContext,
};
use super::{SectorDir, SectorIdentity};
use crate::error::{Error, Result};
use crate::ids::{Commitment, Node, Randomness, ReplicaId};
use crate::merkle::poseidon_tree::{cached_len, tree_len};
use crate::merkle::proof::{poseidon_tree_proof, sha_tree_proof, CachedTrees, FullTrees};
use crate::merkle::sha_tree;
use crate::merkle::store::ReadMap;
use crate::poseidon::hash_nodes;
use crate::sdr::graph::Graph;
use crate::sdr::layers::Layers;
use crate::shape::{SectorShape, BASE_DEGREE, DEGREE};
use bincode::Options;
use serde::{Deserialize, Serialize};
use tracing::info_span;

/// Version of the C1 format written by this build.
pub const C1_VERSION: u32 = 1;
const BINARY_MAGIC: &[u8; 8] = b"KILNC1\0\0";
/// Largest binary C1 accepted (a 64GiB sector's is about 30 MB).
pub const MAX_C1_BYTES: u64 = 256 << 20;

/// Everything C2 needs to prove a sector, and nothing secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct C1Output {
    /// Format version ([`C1_VERSION`]).
    pub version: u32,
    /// The sector.
    pub identity: SectorIdentity,
    /// The seal ticket.
    pub ticket: Randomness,
    /// The interactive seed.
    pub seed: Randomness,
    /// Public: the data commitment.
    pub comm_d: Commitment,
    /// Public: the replica commitment.
    pub comm_r: Commitment,
    /// Public: the replica id.
    pub replica_id: ReplicaId,
    /// Private: root of tree_c.
    pub comm_c: Commitment,
    /// Private: root of tree_r_last.
    pub comm_r_last: Commitment,
    /// `partitions[k][i]`: the proof of challenge `i` of partition `k`.
    pub partitions: Vec<Vec<ChallengeProof>>,
}

impl C1Output {
    /// The shape of the sector proven.
    pub fn shape(&self) -> SectorShape {
        self.identity.sector_size.shape()
    }

    /// Checks the output against itself: version, the replica id and comm_r it
    /// claims, the partition and challenge counts, and every vanilla proof. After
    /// this, building the circuit's witness from it cannot fail.
    pub fn validate(&self) -> Result<()> {
        if self.version != C1_VERSION {
            return Err(Error::C1Format(format!("version {} (this build reads {C1_VERSION})", self.version)));
        }
        let shape = self.shape();
        let replica_id = ReplicaId::derive(
            &self.identity.prover_id,
            self.identity.sector_id,
            &self.ticket,
            &self.comm_d,
            &shape.porep_id,
        );
        if replica_id != self.replica_id {
            return Err(Error::InvalidProof(format!(
                "replica id {} is not the one of sector {} with this ticket and comm_d ({replica_id})",
                self.replica_id, self.identity
            )));
        }
        if comm_r_from(&self.comm_c, &self.comm_r_last)? != self.comm_r {
            return Err(Error::InvalidProof("comm_r is not Poseidon(comm_c, comm_r_last)".into()));
        }
        if self.partitions.len() != shape.partitions {
            return Err(Error::InvalidProof(format!(
                "{} partitions, a {} sector has {}",
                self.partitions.len(),
                shape.size,
                shape.partitions
            )));
        }
        let ctx = PartitionContext {
            shape: &shape,
            replica_id: &self.replica_id,
            seed: &self.seed,
            comm_d: &self.comm_d,
            comm_c: &self.comm_c,
            comm_r_last: &self.comm_r_last,
        };
        for (k, proofs) in self.partitions.iter().enumerate() {
            verify_partition(&ctx, k, proofs)?;
        }
        Ok(())
    }

    /// The JSON form.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("C1 output serialises")
    }

    /// Parses the JSON form (not yet validated: see [`C1Output::validate`]).
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| Error::C1Format(format!("JSON: {e}")))
    }

    /// The compact binary form.
    pub fn to_binary(&self) -> Vec<u8> {
        let mut out = BINARY_MAGIC.to_vec();
        out.extend(C1_VERSION.to_le_bytes());
        out.extend(bincode_options().serialize(self).expect("C1 output serialises"));
        out
    }

    /// Parses the binary form (not yet validated).
    pub fn from_binary(bytes: &[u8]) -> Result<Self> {
        let rest = bytes
            .strip_prefix(BINARY_MAGIC.as_slice())
            .ok_or_else(|| Error::C1Format("not a binary C1 output (bad magic)".into()))?;
        let (version, body) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| Error::C1Format("truncated before the version".into()))?;
        let version = u32::from_le_bytes(*version);
        if version != C1_VERSION {
            return Err(Error::C1Format(format!("version {version} (this build reads {C1_VERSION})")));
        }
        bincode_options().deserialize(body).map_err(|e| Error::C1Format(format!("binary body: {e}")))
    }

    /// This output, checked once by [`C1Output::validate`], for callers that
    /// validate on receipt and prove later ([`crate::snark::prove_valid`]).
    pub fn validated(self) -> Result<ValidC1Output> {
        self.validate()?;
        Ok(ValidC1Output(self))
    }

    /// Parses either form, told apart by the binary magic.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.starts_with(BINARY_MAGIC) {
            Self::from_binary(bytes)
        } else {
            Self::from_json(bytes)
        }
    }

    /// Reads a C1 file in either form, refusing files over [`MAX_C1_BYTES`].
    pub fn read(path: &std::path::Path) -> Result<Self> {
        let len = std::fs::metadata(path).map_err(Error::io("read", path))?.len();
        if len > MAX_C1_BYTES {
            return Err(Error::C1Format(format!(
                "{}: {len} bytes is larger than any C1 output",
                path.display()
            )));
        }
        let bytes = std::fs::read(path).map_err(Error::io("read", path))?;
        Self::decode(&bytes).map_err(|e| match e {
            Error::C1Format(reason) => Error::C1Format(format!("{}: {reason}", path.display())),
            e => e,
        })
    }
}

fn bincode_options() -> impl bincode::Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .with_limit(MAX_C1_BYTES)
        .reject_trailing_bytes()
}

/// Generates the vanilla proofs of the sector in `dir` for `seed`, checks them,
/// and returns the C1 output.
pub fn run(dir: &SectorDir, seed: &Randomness) -> Result<C1Output> {
    let meta = dir.open()?;
    let _span = info_span!("c1", sector_id = meta.identity.sector_id).entered();
    let pc1 = meta.pc1.ok_or(Error::MissingInput { step: "C1", missing: "a finished PC1".into() })?;
    let pc2 = meta.pc2.ok_or(Error::MissingInput { step: "C1", missing: "a finished PC2".into() })?;
    let shape = meta.identity.sector_size.shape();
    let cache = dir.cache_dir();
    let n = shape.num_nodes as usize;
    let count = shape.tree.base_tree_count();
    let per_tree = shape.leaves_per_base_tree() as usize;
    let arity = shape.tree.base_arity;

    let layers = Layers::new(&cache, shape.num_nodes, shape.layers);
    let layer_maps: Vec<ReadMap> = (1..=shape.layers).map(|l| layers.open(l)).collect::<Result<_>>()?;
    let tree_d = ReadMap::open(&cache.join(TREE_D_FILE), Some(sha_tree::tree_len(n) as u64 * 32))?;
    let tree_c_maps: Vec<ReadMap> = (0..count)
        .map(|i| {
            ReadMap::open(
                &cache.join(tree_file_name("tree-c", i, count)),
                Some(tree_len(per_tree, arity) as u64 * 32),
            )
        })
        .collect::<Result<_>>()?;
    let r_last_maps: Vec<ReadMap> = (0..count)
        .map(|i| {
            let path = cache.join(tree_file_name("tree-r-last", i, count));
            ReadMap::open(&path, Some(cached_len(per_tree, arity) as u64 * 32))
        })
        .collect::<Result<_>>()?;
    let replica = ReadMap::open(&dir.sealed_path(), Some(shape.size_bytes))?;

    let tree_c =
        FullTrees { trees: tree_c_maps.iter().map(|m| m.nodes()).collect(), leaves: per_tree, arity };
    let tree_r_last =
        CachedTrees::new(replica.nodes(), r_last_maps.iter().map(|m| m.nodes()).collect(), per_tree, arity);
    let graph = Graph::new(shape.num_nodes, shape.porep_id);

    let column = |index: u64| -> Result<ColumnProof> {
        let rows: Vec<Node> = layer_maps.iter().map(|m| Node(m.nodes()[index as usize])).collect();
        let inclusion = poseidon_tree_proof(&tree_c, &shape.tree, per_tree, index)?;
        let leaf = hash_nodes(&rows.iter().map(|r| r.0).collect::<Vec<_>>())?;
        if inclusion.leaf.0 != leaf {
            return Err(Error::Malformed {
                path: cache.join(tree_file_name("tree-c", 0, count)),
                reason: format!("leaf {index} of tree_c is not the hash of the layers' column {index}"),
            });
        }
        Ok(ColumnProof { column: Column { index, rows }, inclusion })
    };

    let mut partitions = Vec::with_capacity(shape.partitions);
    for k in 0..shape.partitions {
        let mut proofs = Vec::new();
        for c in partition_challenges(&shape, &pc1.replica_id, seed, k) {
            let mut parents = [0u32; DEGREE];
            graph.parents(c as u32, &mut parents);
            let column_c = column(c)?;
            let drg_parents =
                parents[..BASE_DEGREE].iter().map(|&p| column(p as u64)).collect::<Result<Vec<_>>>()?;
            let exp_parents =
                parents[BASE_DEGREE..].iter().map(|&p| column(p as u64)).collect::<Result<Vec<_>>>()?;
            let labeling_proofs: Vec<LabelingProof> = (1..=shape.layers)
                .map(|layer| {
                    let l = layer as usize - 1;
                    let mut distinct: Vec<Node> = drg_parents.iter().map(|p| p.column.rows[l]).collect();
                    if layer > 1 {
                        distinct.extend(exp_parents.iter().map(|p| p.column.rows[l - 1]));
                    }
                    LabelingProof { layer, node: c, parents: expand_parents(layer, &distinct) }
                })
                .collect();
            proofs.push(ChallengeProof {
                challenge: c,
                comm_d_proof: sha_tree_proof(tree_d.nodes(), n, c as usize),
                comm_r_last_proof: poseidon_tree_proof(&tree_r_last, &shape.tree, per_tree, c)?,
                column: column_c,
                drg_parents,
                exp_parents,
                encoding_proof: labeling_proofs[labeling_proofs.len() - 1].clone(),
                labeling_proofs,
            });
        }
        partitions.push(proofs);
    }

    let out = C1Output {
        version: C1_VERSION,
        identity: meta.identity,
        ticket: pc1.ticket,
        seed: *seed,
        comm_d: pc1.comm_d,
        comm_r: pc2.comm_r,
        replica_id: pc1.replica_id,
        comm_c: pc2.comm_c,
        comm_r_last: pc2.comm_r_last,
        partitions,
    };
    // A sector whose files changed since PC2 fails here, not minutes into C2.
    out.validate().map_err(|e| match e {
        Error::InvalidProof(reason) => Error::InvalidProof(format!(
            "the sector's files do not prove its commitments ({reason}); the cache or replica is corrupt"
        )),
        e => e,
    })?;
    Ok(out)
}

/// A C1 output that passed [`C1Output::validate`].
#[derive(Clone, Debug)]
pub struct ValidC1Output(C1Output);

impl std::ops::Deref for ValidC1Output {
    type Target = C1Output;
    fn deref(&self) -> &C1Output {
        &self.0
    }
}
