//! The fallback PoSt circuit (post.md §6), Winning and Window alike: sector
//! slots, each binding comm_r to comm_c and comm_r_last and opening its
//! challenged leaves in tree_r_last.
//!
//! Public inputs per slot: comm_r, then each challenge's leaf index. comm_c,
//! comm_r_last and the leaves are private. The prover id is not part of the
//! statement (the reference carries it unconstrained).

use super::gadgets::{alloc, enforce_equal, poseidon};
use super::por::{blank_path, enforce_inclusion, field, path_witness, LevelWitness, TreeGadget};
use crate::error::{Error, Result};
use crate::ids::{Commitment, Node};
use crate::merkle::proof::path_arities;
use crate::post::vanilla::SectorProof;
use crate::post::PostProof;
use bellpepper_core::{Circuit, ConstraintSystem, SynthesisError};
use blstrs::Scalar as Fr;

/// One challenged leaf: its value and path.
#[derive(Clone, Debug)]
pub struct LeafWitness {
    /// `replica[challenge]`.
    pub leaf: Option<Fr>,
    /// Its path in tree_r_last.
    pub path: Vec<LevelWitness>,
}

/// One sector slot.
#[derive(Clone, Debug)]
pub struct SlotWitness {
    /// Public: comm_r.
    pub comm_r: Option<Fr>,
    /// Private: comm_c.
    pub comm_c: Option<Fr>,
    /// Private: comm_r_last.
    pub comm_r_last: Option<Fr>,
    /// One per challenge.
    pub leaves: Vec<LeafWitness>,
}

/// The circuit of one Winning PoSt, or of one Window PoSt partition.
#[derive(Clone, Debug)]
pub struct PostCircuit {
    /// The sector slots, in order.
    pub slots: Vec<SlotWitness>,
}

fn commitment(c: &Commitment, what: &str) -> Result<Option<Fr>> {
    field(&Node(c.0), what).map(Some)
}

impl PostCircuit {
    /// The circuit of `proof`'s type with no values (setup and counting).
    pub fn blank(proof: &PostProof) -> Self {
        let shape = proof.sector_size().shape();
        let path = blank_path(&path_arities(&shape.tree, shape.leaves_per_base_tree()));
        let (challenges, slots) = proof.circuit_counts();
        let slot = SlotWitness {
            comm_r: None,
            comm_c: None,
            comm_r_last: None,
            leaves: vec![LeafWitness { leaf: None, path }; challenges],
        };
        Self { slots: vec![slot; slots] }
    }

    /// The circuit proving `sectors`' vanilla proofs for `proof`'s type: a
    /// Winning proof's 66 openings become 66 one-challenge slots; a Window
    /// partition short of sectors repeats its last sector (as the reference pads).
    pub fn from_vanilla(proof: &PostProof, sectors: &[SectorProof]) -> Result<Self> {
        let shape = proof.sector_size().shape();
        let arities = path_arities(&shape.tree, shape.leaves_per_base_tree());
        let (challenges, slot_count) = proof.circuit_counts();
        if sectors.is_empty() || sectors.len() > proof.sectors_per_partition() {
            return Err(Error::InvalidProof(format!(
                "{proof} proves 1 to {} sectors per SNARK, got {}",
                proof.sectors_per_partition(),
                sectors.len()
            )));
        }
        let mut slots = Vec::with_capacity(slot_count);
        for s in sectors {
            if s.inclusion_proofs.len() != proof.challenges_per_sector() {
                return Err(Error::InvalidProof(format!(
                    "sector {} has {} openings, {proof} needs {}",
                    s.sector_id,
                    s.inclusion_proofs.len(),
                    proof.challenges_per_sector()
                )));
            }
            let leaves = s
                .inclusion_proofs
                .iter()
                .map(|p| {
                    p.check_shape(&arities).map_err(|e| {
                        Error::InvalidProof(format!("sector {}: tree_r_last opening: {e}", s.sector_id))
                    })?;
                    Ok(LeafWitness {
                        leaf: Some(field(&p.leaf, "a replica node")?),
                        path: path_witness(p, "a tree_r_last node")?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let (comm_r, comm_c, comm_r_last) = (
                commitment(&s.comm_r, "comm_r")?,
                commitment(&s.comm_c, "comm_c")?,
                commitment(&s.comm_r_last, "comm_r_last")?,
            );
            for chunk in leaves.chunks(challenges) {
                slots.push(SlotWitness { comm_r, comm_c, comm_r_last, leaves: chunk.to_vec() });
            }
        }
        while slots.len() < slot_count {
            slots.push(slots.last().expect("at least one sector").clone());
        }
        Ok(Self { slots })
    }
}

impl SlotWitness {
    fn synthesize<CS: ConstraintSystem<Fr>>(&self, cs: &mut CS) -> Result<(), SynthesisError> {
        let comm_r_last = alloc(cs.namespace(|| "comm_r_last"), self.comm_r_last)?;
        let comm_c = alloc(cs.namespace(|| "comm_c"), self.comm_c)?;
        let comm_r = alloc(cs.namespace(|| "comm_r"), self.comm_r)?;
        comm_r.inputize(cs.namespace(|| "comm_r_input"))?;
        let h = poseidon(cs.namespace(|| "H_comm_c_comm_r_last"), &[comm_c, comm_r_last.clone()])?;
        enforce_equal(cs, "comm_r = H(comm_c, comm_r_last)", &comm_r, &h);
        for (i, leaf) in self.leaves.iter().enumerate() {
            let mut cs = cs.namespace(|| format!("challenge_inclusion_{i}"));
            let value = alloc(cs.namespace(|| "value"), leaf.leaf)?;
            enforce_inclusion(cs, TreeGadget::Poseidon, &leaf.path, &value, &comm_r_last)?;
        }
        Ok(())
    }
}

impl Circuit<Fr> for PostCircuit {
    fn synthesize<CS: ConstraintSystem<Fr>>(self, cs: &mut CS) -> Result<(), SynthesisError> {
        for (i, slot) in self.slots.iter().enumerate() {
            slot.synthesize(&mut cs.namespace(|| format!("sector_{i}")))?;
        }
        Ok(())
    }
}

/// Public inputs of one SNARK from its slots' `(comm_r, leaf challenges)`, the
/// last repeated up to `slot_count` slots.
pub fn public_inputs(slots: &[(Commitment, Vec<u64>)], slot_count: usize) -> Result<Vec<Fr>> {
    let mut per_slot = Vec::with_capacity(slots.len());
    for (comm_r, leaves) in slots {
        let mut v = vec![field(&Node(comm_r.0), "comm_r")?];
        v.extend(leaves.iter().map(|&l| Fr::from(l)));
        per_slot.push(v);
    }
    let last = per_slot.last().cloned().ok_or_else(|| Error::InvalidProof("a PoSt with no sector".into()))?;
    while per_slot.len() < slot_count {
        per_slot.push(last.clone());
    }
    Ok(per_slot.concat())
}
