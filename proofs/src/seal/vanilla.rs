//! Vanilla PoRep proofs: what C1 produces and C2 proves in zero knowledge
//! (porep-sdr.md §12).
//!
//! For each challenged node `c` the proof opens, against the public comm_d and
//! the private comm_c and comm_r_last:
//! - `data[c]` in tree_d;
//! - the label columns of `c` and of its 6 DRG and 8 expander parents in tree_c;
//! - every label of `c`, recomputed from its parents' labels (labeling proofs);
//! - `replica[c] = data[c] + label[L][c]` (encoding proof) in tree_r_last.
//!
//! [`verify_partition`] is the native verifier: C1 runs it on its own output,
//! and C2 runs it before spending a minute on a SNARK over a bad witness.

use super::challenges::partition_challenges;
use crate::error::{Error, Result};
use crate::ids::{Commitment, Node, ReplicaId};
use crate::merkle::proof::{binary_arities, path_arities, InclusionProof, TreeHash};
use crate::poseidon::{fr_from_bytes, hash_nodes};
use crate::sdr::graph::Graph;
use crate::sdr::label::{label_first_node, label_node};
use crate::shape::{SectorShape, BASE_DEGREE, DEGREE, EXP_DEGREE};
use serde::{Deserialize, Serialize};

/// Parent labels hashed into one label: the parents repeated to 37 entries.
pub const LABEL_PARENTS: usize = 37;

/// The labels of one node in every layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// The node.
    pub index: u64,
    /// `label[ℓ][index]` for `ℓ = 1..=L`.
    pub rows: Vec<Node>,
}

/// A column and the inclusion of its Poseidon hash in tree_c.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnProof {
    /// The column.
    pub column: Column,
    /// Opens `Poseidon(column.rows)` at `column.index` under comm_c.
    pub inclusion: InclusionProof,
}

/// The 37 parent labels one label was computed from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelingProof {
    /// The layer, 1-based.
    pub layer: u32,
    /// The node.
    pub node: u64,
    /// Parent labels in hashing order (DRG parents of this layer, then expander
    /// parents of the previous layer, repeated to 37).
    pub parents: Vec<Node>,
}

/// Everything proven about one challenged node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeProof {
    /// The challenged node.
    pub challenge: u64,
    /// `data[c]` in tree_d.
    pub comm_d_proof: InclusionProof,
    /// `replica[c]` in tree_r_last.
    pub comm_r_last_proof: InclusionProof,
    /// The column of `c`.
    pub column: ColumnProof,
    /// Columns of the 6 DRG parents, in parent order.
    pub drg_parents: Vec<ColumnProof>,
    /// Columns of the 8 expander parents, in parent order.
    pub exp_parents: Vec<ColumnProof>,
    /// One per layer, `ℓ = 1..=L`.
    pub labeling_proofs: Vec<LabelingProof>,
    /// The key's labeling proof (the last layer's), used for the encoding.
    pub encoding_proof: LabelingProof,
}

/// The public and private values a partition's proofs are checked against.
#[derive(Clone, Copy, Debug)]
pub struct PartitionContext<'a> {
    /// The sector's shape.
    pub shape: &'a SectorShape,
    /// The replica id.
    pub replica_id: &'a ReplicaId,
    /// The interactive seed.
    pub seed: &'a crate::ids::Randomness,
    /// Public comm_d.
    pub comm_d: &'a Commitment,
    /// Private comm_c.
    pub comm_c: &'a Commitment,
    /// Private comm_r_last.
    pub comm_r_last: &'a Commitment,
}

/// The 37 parents hashed for `layer`, from the 6 (layer 1) or 14 parent labels.
pub fn expand_parents(layer: u32, parents: &[Node]) -> Vec<Node> {
    let cycle = if layer == 1 { BASE_DEGREE } else { DEGREE };
    (0..LABEL_PARENTS).map(|i| parents[i % cycle]).collect()
}

/// The label a labeling proof claims, recomputed; `None` if its parents are not
/// the 37-entry expansion of its distinct parents.
pub fn recompute_label(proof: &LabelingProof, replica_id: &ReplicaId) -> Option<Node> {
    if proof.parents.len() != LABEL_PARENTS || proof.layer == 0 {
        return None;
    }
    if proof.node == 0 {
        return Some(Node(label_first_node(replica_id, proof.layer)));
    }
    let distinct = if proof.layer == 1 { BASE_DEGREE } else { DEGREE };
    if expand_parents(proof.layer, &proof.parents[..distinct]) != proof.parents {
        return None;
    }
    let mut labels = [[0u8; 32]; DEGREE];
    for (l, p) in labels.iter_mut().zip(&proof.parents[..distinct]) {
        *l = p.0;
    }
    Some(Node(label_node(replica_id, proof.layer, proof.node, &labels)))
}

fn column_hash(column: &Column) -> Result<Node> {
    let rows: Vec<[u8; 32]> = column.rows.iter().map(|n| n.0).collect();
    hash_nodes(&rows).map(Node)
}

/// Checks one partition's proofs natively; the error says which check failed.
pub fn verify_partition(
    ctx: &PartitionContext<'_>,
    partition: usize,
    proofs: &[ChallengeProof],
) -> Result<()> {
    let shape = ctx.shape;
    let fail = |i: usize, what: String| {
        Err(Error::InvalidProof(format!("partition {partition}, challenge {i}: {what}")))
    };
    let challenges = partition_challenges(shape, ctx.replica_id, ctx.seed, partition);
    if proofs.len() != challenges.len() {
        return Err(Error::InvalidProof(format!(
            "partition {partition} has {} challenge proofs, expected {}",
            proofs.len(),
            challenges.len()
        )));
    }
    let graph = Graph::new(shape.num_nodes, shape.porep_id);
    let tree_arities = path_arities(&shape.tree, shape.leaves_per_base_tree());
    let d_arities = binary_arities(shape.num_nodes);
    let layers = shape.layers as usize;
    let comm_c = Node(ctx.comm_c.0);
    for (i, (p, &c)) in proofs.iter().zip(&challenges).enumerate() {
        if p.challenge != c {
            return fail(i, format!("proves node {} but the challenge is {c}", p.challenge));
        }
        if !p.comm_d_proof.verifies(TreeHash::Sha254, &Node(ctx.comm_d.0), c, &d_arities) {
            return fail(i, "data inclusion in tree_d (comm_d) does not verify".into());
        }
        if !p.comm_r_last_proof.verifies(TreeHash::Poseidon, &Node(ctx.comm_r_last.0), c, &tree_arities) {
            return fail(i, "replica inclusion in tree_r_last (comm_r_last) does not verify".into());
        }
        let mut parents = [0u32; DEGREE];
        graph.parents(c as u32, &mut parents);
        if p.drg_parents.len() != BASE_DEGREE || p.exp_parents.len() != EXP_DEGREE {
            return fail(i, "wrong number of parent columns".into());
        }
        let columns = std::iter::once((c, &p.column))
            .chain(parents.iter().map(|&x| x as u64).zip(p.drg_parents.iter().chain(&p.exp_parents)));
        for (index, cp) in columns {
            if cp.column.index != index || cp.column.rows.len() != layers {
                return fail(
                    i,
                    format!("column of node {} is not the column of node {index}", cp.column.index),
                );
            }
            let leaf = column_hash(&cp.column)?;
            if cp.inclusion.leaf != leaf
                || !cp.inclusion.verifies(TreeHash::Poseidon, &comm_c, index, &tree_arities)
            {
                return fail(i, format!("column of node {index} does not verify in tree_c (comm_c)"));
            }
        }
        if p.labeling_proofs.len() != layers {
            return fail(i, format!("{} labeling proofs for {layers} layers", p.labeling_proofs.len()));
        }
        for (l, lp) in p.labeling_proofs.iter().enumerate() {
            let layer = l as u32 + 1;
            let mut distinct: Vec<Node> = p.drg_parents.iter().map(|cp| cp.column.rows[l]).collect();
            if layer > 1 {
                distinct.extend(p.exp_parents.iter().map(|cp| cp.column.rows[l - 1]));
            }
            if lp.layer != layer || lp.node != c || lp.parents != expand_parents(layer, &distinct) {
                return fail(
                    i,
                    format!("labeling proof of layer {layer} does not use the opened parent columns"),
                );
            }
            if recompute_label(lp, ctx.replica_id) != Some(p.column.column.rows[l]) {
                return fail(i, format!("label of layer {layer} does not match its parents"));
            }
        }
        if p.encoding_proof != p.labeling_proofs[layers - 1] {
            return fail(i, "encoding proof is not the last layer's labeling proof".into());
        }
        let key = fr_from_bytes(&p.column.column.rows[layers - 1].0);
        let data = fr_from_bytes(&p.comm_d_proof.leaf.0);
        let replica = fr_from_bytes(&p.comm_r_last_proof.leaf.0);
        match (key, data, replica) {
            (Some(k), Some(d), Some(r)) if k + d == r => {}
            _ => return fail(i, "replica node is not data + key".into()),
        }
    }
    Ok(())
}
