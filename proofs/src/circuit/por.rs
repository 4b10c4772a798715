//! Proof of retrievability: a leaf's inclusion in a tree, as a gadget
//! (circuit.md §5). The SDR circuit uses it for its three trees, the PoSt
//! circuit for tree_r_last.

use super::gadgets::{enforce_equal, insert, pack_into_inputs, poseidon, sha254_pair};
use crate::error::{Error, Result};
use crate::ids::Node;
use crate::merkle::proof::InclusionProof;
use crate::poseidon::fr_from_bytes;
use bellpepper_core::boolean::{AllocatedBit, Boolean};
use bellpepper_core::num::AllocatedNum;
use bellpepper_core::{ConstraintSystem, SynthesisError};
use blstrs::Scalar as Fr;

/// One level of a path witness.
#[derive(Clone, Debug)]
pub struct LevelWitness {
    /// Position of the current node among the children.
    pub index: Option<u8>,
    /// The other children.
    pub siblings: Vec<Option<Fr>>,
}

/// A path without values, of the given arities (for setup and counting).
pub fn blank_path(arities: &[usize]) -> Vec<LevelWitness> {
    arities.iter().map(|&a| LevelWitness { index: None, siblings: vec![None; a - 1] }).collect()
}

/// A node as a field element; a node that is not one makes the proof invalid.
pub fn field(node: &Node, what: &str) -> Result<Fr> {
    fr_from_bytes(&node.0).ok_or_else(|| Error::InvalidProof(format!("{what} is not a field element")))
}

/// The witness of a native inclusion proof's path.
pub fn path_witness(proof: &InclusionProof, what: &str) -> Result<Vec<LevelWitness>> {
    proof
        .path
        .iter()
        .map(|e| {
            let siblings = e.siblings.iter().map(|s| field(s, what).map(Some)).collect::<Result<_>>()?;
            Ok(LevelWitness { index: Some(e.index), siblings })
        })
        .collect()
}

/// Which hash a tree uses.
#[derive(Clone, Copy, Debug)]
pub enum TreeGadget {
    /// tree_d.
    Sha254,
    /// tree_c and tree_r_last.
    Poseidon,
}

/// Proves `leaf` is in the tree with root `root` along `path`; exposes the path's
/// position bits as one public input (the leaf index). Per level: the index
/// bits, the siblings, the insertion and the hash, in the reference's order.
pub fn enforce_inclusion<CS: ConstraintSystem<Fr>>(
    mut cs: CS,
    hash: TreeGadget,
    path: &[LevelWitness],
    leaf: &AllocatedNum<Fr>,
    root: &AllocatedNum<Fr>,
) -> Result<(), SynthesisError> {
    let mut current = leaf.clone();
    let mut position_bits = Vec::new();
    for (level, element) in path.iter().enumerate() {
        let cs = &mut cs.namespace(|| format!("level {level}"));
        let arity = element.siblings.len() + 1;
        let bit_count = arity.trailing_zeros() as usize;
        let bits = (0..bit_count)
            .map(|i| {
                AllocatedBit::alloc(
                    cs.namespace(|| format!("index bit {i}")),
                    element.index.map(|x| x >> i & 1 == 1),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        position_bits.extend(bits.iter().cloned().map(Boolean::from));
        let siblings = element
            .siblings
            .iter()
            .enumerate()
            .map(|(i, s)| super::gadgets::alloc(cs.namespace(|| format!("sibling {i}")), *s))
            .collect::<Result<Vec<_>, _>>()?;
        let children = insert(cs, &current, &bits, &siblings)?;
        current = match hash {
            TreeGadget::Sha254 => sha254_pair(cs.namespace(|| "hash"), &children)?,
            TreeGadget::Poseidon => poseidon(cs.namespace(|| "hash"), &children)?,
        };
    }
    pack_into_inputs(cs.namespace(|| "path"), &position_bits)?;
    enforce_equal(&mut cs, "root", &current, root);
    Ok(())
}
