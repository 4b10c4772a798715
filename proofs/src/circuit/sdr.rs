//! The SDR PoRep circuit of one partition (circuit.md §2, §3).
//!
//! Public inputs: replica_id, comm_d, comm_r, then per challenge the packed
//! paths of its tree_d proof and its 14 parent columns' tree_c proofs, the
//! challenge, and the packed paths of its tree_r_last and tree_c proofs.
//! comm_c and comm_r_last are private; the circuit binds them to comm_r.
//! The labels of the challenged node are not witnessed but recomputed from the
//! parents' columns, which is what ties the replica to the SDR graph.

use super::gadgets::{
    add, alloc, alloc_u64_bits, enforce_equal, fr_stream_bits, pack_into_inputs, poseidon, sha256_to_fr,
};
use super::por::{blank_path, enforce_inclusion, field, path_witness, LevelWitness, TreeGadget};
use crate::error::{Error, Result};
use crate::ids::Node;
use crate::merkle::proof::{binary_arities, path_arities};
use crate::seal::vanilla::{ChallengeProof, ColumnProof, LABEL_PARENTS};
use crate::shape::{SectorShape, BASE_DEGREE, DEGREE};
use bellpepper::gadgets::uint32::UInt32;
use bellpepper_core::boolean::Boolean;
use bellpepper_core::num::AllocatedNum;
use bellpepper_core::{Circuit, ConstraintSystem, SynthesisError};
use blstrs::Scalar as Fr;

/// A column of labels and its tree_c path.
#[derive(Clone, Debug)]
pub struct ColumnWitness {
    /// Labels, layer 1 first.
    pub rows: Vec<Option<Fr>>,
    /// Path of the column's hash in tree_c.
    pub path: Vec<LevelWitness>,
}

/// The witness of one challenge.
#[derive(Clone, Debug)]
pub struct ChallengeWitness {
    /// The challenged node.
    pub challenge: Option<u64>,
    /// `data[c]`.
    pub data_leaf: Option<Fr>,
    /// Path of `data[c]` in tree_d.
    pub tree_d_path: Vec<LevelWitness>,
    /// The 6 DRG then 8 expander parent columns.
    pub parents: Vec<ColumnWitness>,
    /// Path of `replica[c]` in tree_r_last.
    pub tree_r_last_path: Vec<LevelWitness>,
    /// Path of the challenged column's hash in tree_c.
    pub column_path: Vec<LevelWitness>,
}

/// The circuit of one partition.
#[derive(Clone, Debug)]
pub struct SdrCircuit {
    /// Layers (2 or 11).
    pub layers: usize,
    /// Public: the replica id.
    pub replica_id: Option<Fr>,
    /// Public: comm_d.
    pub comm_d: Option<Fr>,
    /// Public: comm_r.
    pub comm_r: Option<Fr>,
    /// Private: comm_r_last.
    pub comm_r_last: Option<Fr>,
    /// Private: comm_c.
    pub comm_c: Option<Fr>,
    /// One per challenge of the partition.
    pub challenges: Vec<ChallengeWitness>,
}

fn column_witness(proof: &ColumnProof) -> Result<ColumnWitness> {
    Ok(ColumnWitness {
        rows: proof
            .column
            .rows
            .iter()
            .map(|r| field(r, "a column label").map(Some))
            .collect::<Result<_>>()?,
        path: path_witness(&proof.inclusion, "a tree_c node")?,
    })
}

impl SdrCircuit {
    /// The circuit with no values, for parameter generation and counting.
    pub fn blank(shape: &SectorShape) -> Self {
        let tree = path_arities(&shape.tree, shape.leaves_per_base_tree());
        let layers = shape.layers as usize;
        let challenge = ChallengeWitness {
            challenge: None,
            data_leaf: None,
            tree_d_path: blank_path(&binary_arities(shape.num_nodes)),
            parents: vec![ColumnWitness { rows: vec![None; layers], path: blank_path(&tree) }; DEGREE],
            tree_r_last_path: blank_path(&tree),
            column_path: blank_path(&tree),
        };
        Self {
            layers,
            replica_id: None,
            comm_d: None,
            comm_r: None,
            comm_r_last: None,
            comm_c: None,
            challenges: vec![challenge; shape.challenges_per_partition],
        }
    }

    /// The circuit of one partition of a validated C1 output.
    pub fn from_c1(c1: &crate::seal::c1::C1Output, partition: usize) -> Result<Self> {
        let proofs = c1
            .partitions
            .get(partition)
            .ok_or_else(|| Error::InvalidProof(format!("no partition {partition} in the C1 output")))?;
        let challenges = proofs
            .iter()
            .map(|p: &ChallengeProof| {
                Ok(ChallengeWitness {
                    challenge: Some(p.challenge),
                    data_leaf: Some(field(&p.comm_d_proof.leaf, "a data node")?),
                    tree_d_path: path_witness(&p.comm_d_proof, "a tree_d node")?,
                    parents: p
                        .drg_parents
                        .iter()
                        .chain(&p.exp_parents)
                        .map(column_witness)
                        .collect::<Result<_>>()?,
                    tree_r_last_path: path_witness(&p.comm_r_last_proof, "a tree_r_last node")?,
                    column_path: path_witness(&p.column.inclusion, "a tree_c node")?,
                })
            })
            .collect::<Result<_>>()?;
        let public = |n: &[u8; 32], what: &str| field(&Node(*n), what).map(Some);
        Ok(Self {
            layers: c1.shape().layers as usize,
            replica_id: public(&c1.replica_id.0, "replica_id")?,
            comm_d: public(&c1.comm_d.0, "comm_d")?,
            comm_r: public(&c1.comm_r.0, "comm_r")?,
            comm_r_last: public(&c1.comm_r_last.0, "comm_r_last")?,
            comm_c: public(&c1.comm_c.0, "comm_c")?,
            challenges,
        })
    }
}

/// `label[layer][c]` from the parents' stream bits (the 14, or 6 in layer 1).
fn label<CS: ConstraintSystem<Fr>>(
    cs: CS,
    replica_id_bits: &[Boolean],
    layer: u32,
    challenge_bits_le: &[Boolean],
    parents: &[Vec<Boolean>],
) -> Result<AllocatedNum<Fr>, SynthesisError> {
    let mut bits = Vec::with_capacity((2 + LABEL_PARENTS) * 256);
    bits.extend_from_slice(replica_id_bits);
    bits.extend(UInt32::constant(layer).into_bits_be());
    bits.extend(challenge_bits_le.iter().rev().cloned());
    bits.resize(512, Boolean::constant(false));
    for i in 0..LABEL_PARENTS {
        bits.extend_from_slice(&parents[i % parents.len()]);
    }
    sha256_to_fr(cs, &bits)
}

impl ChallengeWitness {
    fn synthesize<CS: ConstraintSystem<Fr>>(
        &self,
        mut cs: CS,
        layers: usize,
        comm_d: &AllocatedNum<Fr>,
        comm_c: &AllocatedNum<Fr>,
        comm_r_last: &AllocatedNum<Fr>,
        replica_id_bits: &[Boolean],
    ) -> Result<(), SynthesisError> {
        let data_leaf = alloc(cs.namespace(|| "data_leaf"), self.data_leaf)?;
        enforce_inclusion(
            cs.namespace(|| "comm_d_inclusion"),
            TreeGadget::Sha254,
            &self.tree_d_path,
            &data_leaf,
            comm_d,
        )?;

        let mut columns = Vec::with_capacity(DEGREE);
        for (j, parent) in self.parents.iter().enumerate() {
            let rows = parent
                .rows
                .iter()
                .enumerate()
                .map(|(r, v)| alloc(cs.namespace(|| format!("parent {j} row {r}")), *v))
                .collect::<Result<Vec<_>, _>>()?;
            let hash = poseidon(cs.namespace(|| format!("parent {j} column hash")), &rows)?;
            enforce_inclusion(
                cs.namespace(|| format!("parent {j} inclusion")),
                TreeGadget::Poseidon,
                &parent.path,
                &hash,
                comm_c,
            )?;
            columns.push(rows);
        }

        let challenge_bits = alloc_u64_bits(cs.namespace(|| "challenge"), self.challenge)?;
        pack_into_inputs(cs.namespace(|| "challenge input"), &challenge_bits)?;

        let mut labels = Vec::with_capacity(layers);
        for layer in 1..=layers {
            let mut cs = cs.namespace(|| format!("labeling_{layer}"));
            let mut parents = Vec::with_capacity(DEGREE);
            for (j, column) in columns[..BASE_DEGREE].iter().enumerate() {
                parents.push(fr_stream_bits(
                    cs.namespace(|| format!("drg parent {j} bits")),
                    &column[layer - 1],
                )?);
            }
            if layer > 1 {
                for (j, column) in columns[BASE_DEGREE..].iter().enumerate() {
                    parents.push(fr_stream_bits(
                        cs.namespace(|| format!("exp parent {j} bits")),
                        &column[layer - 2],
                    )?);
                }
            }
            labels.push(label(
                cs.namespace(|| "label"),
                replica_id_bits,
                layer as u32,
                &challenge_bits,
                &parents,
            )?);
        }

        let encoded = add(cs.namespace(|| "encode"), &labels[layers - 1], &data_leaf)?;
        enforce_inclusion(
            cs.namespace(|| "comm_r_last_inclusion"),
            TreeGadget::Poseidon,
            &self.tree_r_last_path,
            &encoded,
            comm_r_last,
        )?;

        let column_hash = poseidon(cs.namespace(|| "column hash"), &labels)?;
        enforce_inclusion(
            cs.namespace(|| "column inclusion"),
            TreeGadget::Poseidon,
            &self.column_path,
            &column_hash,
            comm_c,
        )
    }
}

impl Circuit<Fr> for SdrCircuit {
    fn synthesize<CS: ConstraintSystem<Fr>>(self, cs: &mut CS) -> Result<(), SynthesisError> {
        let replica_id = alloc(cs.namespace(|| "replica_id"), self.replica_id)?;
        replica_id.inputize(cs.namespace(|| "replica_id input"))?;
        let replica_id_bits = fr_stream_bits(cs.namespace(|| "replica_id bits"), &replica_id)?;
        let comm_d = alloc(cs.namespace(|| "comm_d"), self.comm_d)?;
        comm_d.inputize(cs.namespace(|| "comm_d input"))?;
        let comm_r = alloc(cs.namespace(|| "comm_r"), self.comm_r)?;
        comm_r.inputize(cs.namespace(|| "comm_r input"))?;
        let comm_r_last = alloc(cs.namespace(|| "comm_r_last"), self.comm_r_last)?;
        let comm_c = alloc(cs.namespace(|| "comm_c"), self.comm_c)?;
        let h = poseidon(cs.namespace(|| "comm_r hash"), &[comm_c.clone(), comm_r_last.clone()])?;
        enforce_equal(cs, "comm_r = H(comm_c, comm_r_last)", &comm_r, &h);

        for (i, challenge) in self.challenges.iter().enumerate() {
            challenge.synthesize(
                cs.namespace(|| format!("challenge_{i}")),
                self.layers,
                &comm_d,
                &comm_c,
                &comm_r_last,
                &replica_id_bits,
            )?;
        }
        Ok(())
    }
}

/// The public inputs of partition `k`, as the verifier computes them from public
/// values and the partition's challenges and their parents.
pub fn public_inputs(
    replica_id: &[u8; 32],
    comm_d: &[u8; 32],
    comm_r: &[u8; 32],
    challenges: &[(u64, [u32; DEGREE])],
) -> Result<Vec<Fr>> {
    let mut out = vec![
        field(&Node(*replica_id), "replica_id")?,
        field(&Node(*comm_d), "comm_d")?,
        field(&Node(*comm_r), "comm_r")?,
    ];
    for (c, parents) in challenges {
        out.push(Fr::from(*c));
        out.extend(parents.iter().map(|&p| Fr::from(p as u64)));
        out.extend([Fr::from(*c), Fr::from(*c), Fr::from(*c)]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circuit::check_cs::CheckingCs;
    use crate::ids::ReplicaId;
    use crate::poseidon::{fr_from_bytes, fr_to_bytes};
    use crate::sdr::label::label_node;

    /// The in-circuit label equals the native kernel's, in layer 1 and later layers.
    #[test]
    fn label_gadget_matches_native() {
        let replica_id = ReplicaId(fr_to_bytes(&Fr::from(0xdead_beefu64)));
        let parents: Vec<Fr> =
            (0..DEGREE as u64).map(|i| Fr::from(i * 77 + 3) * Fr::from(u64::MAX)).collect();
        let node = 0x0102_0304_0506u64;
        for layer in [1u32, 2] {
            let mut cs = CheckingCs::new(false);
            let rid = alloc(cs.namespace(|| "rid"), fr_from_bytes(&replica_id.0)).unwrap();
            let rid_bits = fr_stream_bits(cs.namespace(|| "rid bits"), &rid).unwrap();
            let challenge = alloc_u64_bits(cs.namespace(|| "c"), Some(node)).unwrap();
            let count = if layer == 1 { BASE_DEGREE } else { DEGREE };
            let parent_bits: Vec<Vec<Boolean>> = parents[..count]
                .iter()
                .enumerate()
                .map(|(i, &p)| {
                    let n = alloc(cs.namespace(|| format!("p{i}")), Some(p)).unwrap();
                    fr_stream_bits(cs.namespace(|| format!("p{i} bits")), &n).unwrap()
                })
                .collect();
            let got = label(cs.namespace(|| "label"), &rid_bits, layer, &challenge, &parent_bits).unwrap();
            let native_parents: [[u8; 32]; DEGREE] = std::array::from_fn(|i| fr_to_bytes(&parents[i]));
            let want = label_node(&replica_id, layer, node, &native_parents);
            assert_eq!(fr_to_bytes(&got.get_value().unwrap()), want, "layer {layer}");
            assert!(cs.is_satisfied());
        }
    }
}
