//! The reference prover's JSON form of a C1 output (porep-sdr.md §12).
//!
//! lotus and filecoin-ffi exchange C1 output as the compact `serde_json` form of
//! filecoin-proofs-api's `SealCommitPhase1Output`. Writing kiln's output in that
//! exact form lets it be compared byte for byte with the reference's (and handed
//! to tools that read it). The layout, as the reference's serde derives give it:
//!
//! - every 32-byte value (commitments, ticket, seed, replica id, tree nodes,
//!   labels) is a JSON array of its 32 bytes as numbers;
//! - the top level is `{registered_proof, vanilla_proofs, comm_r, comm_d,
//!   replica_id, seed, ticket}`, with `registered_proof` the name
//!   `StackedDrg<size>V1_1` and `vanilla_proofs` an externally tagged enum keyed
//!   `StackedDrg<size>V1` around the partitions;
//! - a challenge proof is `{comm_d_proofs, comm_r_last_proof,
//!   replica_column_proofs: {c_x, drg_parents, exp_parents}, labeling_proofs,
//!   encoding_proof}`;
//! - a merkle proof is `{"data": {"Single"|"Sub"|"Top": ...}}` with
//!   `Single{root, leaf, path}`, `Sub{base_proof, sub_proof, root, leaf}`,
//!   `Top{base_proof, sub_proof, top_proof, root, leaf}`, each path being
//!   `{"path": [{hashes, index}, ...]}`;
//! - a column proof is `{column: {index, rows, _h: null}, inclusion_proof}`
//!   (the column's marker field is not skipped, so it serialises as `null`);
//! - labeling and encoding proofs are `{parents, layer_index, node}`.

use super::c1::C1Output;
use super::vanilla::{ChallengeProof, ColumnProof, LabelingProof};
use crate::ids::Node;
use crate::merkle::proof::{InclusionProof, PathElement};
use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};

/// `c1` in the reference's compact JSON form (`SealCommitPhase1Output` of
/// filecoin-proofs-api, as `serde_json::to_vec` writes it).
pub fn reference_c1_json(c1: &C1Output) -> Vec<u8> {
    serde_json::to_vec(&Phase1 { c1 }).expect("C1 output serialises")
}

struct Phase1<'a> {
    c1: &'a C1Output,
}

impl Serialize for Phase1<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c1 = self.c1;
        let size = c1.identity.sector_size.name();
        let shape = c1.shape();
        let registered = format!("StackedDrg{size}V1_1");
        let mut st = s.serialize_struct("SealCommitPhase1Output", 7)?;
        st.serialize_field("registered_proof", &registered)?;
        st.serialize_field(
            "vanilla_proofs",
            &Tagged {
                tag: format!("StackedDrg{size}V1"),
                value: Partitions {
                    partitions: &c1.partitions,
                    sub: shape.tree.sub_arity > 0,
                    top: shape.tree.top_arity > 0,
                },
            },
        )?;
        st.serialize_field("comm_r", &c1.comm_r.0)?;
        st.serialize_field("comm_d", &c1.comm_d.0)?;
        st.serialize_field("replica_id", &c1.replica_id.0)?;
        st.serialize_field("seed", &c1.seed.0)?;
        st.serialize_field("ticket", &c1.ticket.0)?;
        st.end()
    }
}

/// An externally tagged enum variant: `{"tag": value}`.
struct Tagged<T> {
    tag: String,
    value: T,
}

impl<T: Serialize> Serialize for Tagged<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(&self.tag, &self.value)?;
        m.end()
    }
}

/// Which compound levels the Poseidon trees (tree_c, tree_r_last) have.
#[derive(Clone, Copy)]
struct Levels {
    sub: bool,
    top: bool,
}

struct Partitions<'a> {
    partitions: &'a [Vec<ChallengeProof>],
    sub: bool,
    top: bool,
}

impl Serialize for Partitions<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let levels = Levels { sub: self.sub, top: self.top };
        s.collect_seq(
            self.partitions
                .iter()
                .map(|proofs| proofs.iter().map(|p| Challenge { p, levels }).collect::<Vec<_>>()),
        )
    }
}

struct Challenge<'a> {
    p: &'a ChallengeProof,
    levels: Levels,
}

impl Serialize for Challenge<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = self.p;
        let binary = Levels { sub: false, top: false };
        let mut st = s.serialize_struct("Proof", 5)?;
        st.serialize_field("comm_d_proofs", &Merkle { proof: &p.comm_d_proof, levels: binary })?;
        st.serialize_field(
            "comm_r_last_proof",
            &Merkle { proof: &p.comm_r_last_proof, levels: self.levels },
        )?;
        st.serialize_field("replica_column_proofs", &Columns { p, levels: self.levels })?;
        st.serialize_field("labeling_proofs", &p.labeling_proofs.iter().map(Labeling).collect::<Vec<_>>())?;
        st.serialize_field("encoding_proof", &Labeling(&p.encoding_proof))?;
        st.end()
    }
}

struct Columns<'a> {
    p: &'a ChallengeProof,
    levels: Levels,
}

impl Serialize for Columns<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let col = |c| ColumnJson { c, levels: self.levels };
        let mut st = s.serialize_struct("ReplicaColumnProof", 3)?;
        st.serialize_field("c_x", &col(&self.p.column))?;
        st.serialize_field("drg_parents", &self.p.drg_parents.iter().map(col).collect::<Vec<_>>())?;
        st.serialize_field("exp_parents", &self.p.exp_parents.iter().map(col).collect::<Vec<_>>())?;
        st.end()
    }
}

struct ColumnJson<'a> {
    c: &'a ColumnProof,
    levels: Levels,
}

impl Serialize for ColumnJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("ColumnProof", 2)?;
        st.serialize_field("column", &ColumnBody(&self.c.column))?;
        st.serialize_field("inclusion_proof", &Merkle { proof: &self.c.inclusion, levels: self.levels })?;
        st.end()
    }
}

struct ColumnBody<'a>(&'a super::vanilla::Column);

impl Serialize for ColumnBody<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Column", 3)?;
        st.serialize_field("index", &self.0.index)?;
        st.serialize_field("rows", &Nodes(&self.0.rows))?;
        st.serialize_field("_h", &())?;
        st.end()
    }
}

struct Labeling<'a>(&'a LabelingProof);

impl Serialize for Labeling<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("LabelingProof", 3)?;
        st.serialize_field("parents", &Nodes(&self.0.parents))?;
        st.serialize_field("layer_index", &self.0.layer)?;
        st.serialize_field("node", &self.0.node)?;
        st.end()
    }
}

/// Nodes as arrays of their bytes.
struct Nodes<'a>(&'a [Node]);

impl Serialize for Nodes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|n| n.0))
    }
}

struct Merkle<'a> {
    proof: &'a InclusionProof,
    levels: Levels,
}

impl Serialize for Merkle<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("MerkleProof", 1)?;
        st.serialize_field("data", &ProofData { proof: self.proof, levels: self.levels })?;
        st.end()
    }
}

struct ProofData<'a> {
    proof: &'a InclusionProof,
    levels: Levels,
}

impl Serialize for ProofData<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = self.proof;
        let compound = self.levels.sub as usize + self.levels.top as usize;
        let split = p.path.len().saturating_sub(compound);
        let (base, upper) = p.path.split_at(split);
        let mut m = s.serialize_map(Some(1))?;
        match (self.levels.sub, self.levels.top) {
            (false, false) => {
                m.serialize_entry("Single", &SingleBody { root: &p.root, leaf: &p.leaf, path: Path(base) })?
            }
            (true, false) => m.serialize_entry(
                "Sub",
                &CompoundBody {
                    root: &p.root,
                    leaf: &p.leaf,
                    paths: [("base_proof", base), ("sub_proof", upper)].to_vec(),
                },
            )?,
            _ => {
                let (sub, top) = upper.split_at(upper.len().min(1));
                m.serialize_entry(
                    "Top",
                    &CompoundBody {
                        root: &p.root,
                        leaf: &p.leaf,
                        paths: [("base_proof", base), ("sub_proof", sub), ("top_proof", top)].to_vec(),
                    },
                )?
            }
        }
        m.end()
    }
}

struct SingleBody<'a> {
    root: &'a Node,
    leaf: &'a Node,
    path: Path<'a>,
}

impl Serialize for SingleBody<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("SingleProof", 3)?;
        st.serialize_field("root", &self.root.0)?;
        st.serialize_field("leaf", &self.leaf.0)?;
        st.serialize_field("path", &self.path)?;
        st.end()
    }
}

/// `Sub` or `Top`: the paths of each level group first, then root and leaf.
struct CompoundBody<'a> {
    root: &'a Node,
    leaf: &'a Node,
    paths: Vec<(&'static str, &'a [PathElement])>,
}

impl Serialize for CompoundBody<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.paths.len() + 2))?;
        for (name, elements) in &self.paths {
            m.serialize_entry(name, &Path(elements))?;
        }
        m.serialize_entry("root", &self.root.0)?;
        m.serialize_entry("leaf", &self.leaf.0)?;
        m.end()
    }
}

/// An inclusion path: `{"path": [{hashes, index}, ...]}`.
struct Path<'a>(&'a [PathElement]);

impl Serialize for Path<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("InclusionPath", 1)?;
        st.serialize_field("path", &self.0.iter().map(Element).collect::<Vec<_>>())?;
        st.end()
    }
}

struct Element<'a>(&'a PathElement);

impl Serialize for Element<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("PathElement", 2)?;
        st.serialize_field("hashes", &Nodes(&self.0.siblings))?;
        st.serialize_field("index", &self.0.index)?;
        st.end()
    }
}
