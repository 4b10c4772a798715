//! Poseidon over BLS12-381's scalar field, through neptune 11 (porep-sdr.md §10).
//!
//! Only the `MerkleTree` hash type with standard strength is used by SDR: its
//! domain tag is `2^arity − 1`, which is what `PoseidonConstants::new()` gives.
//! Constants are built once per arity and shared.

use crate::error::{Error, Result};
use blstrs::Scalar as Fr;
use ff::PrimeField;
use generic_array::typenum::{U11, U2, U8};
use neptune::poseidon::{Poseidon, PoseidonConstants};
use std::sync::OnceLock;

pub(crate) fn constants_2() -> &'static PoseidonConstants<Fr, U2> {
    static C: OnceLock<PoseidonConstants<Fr, U2>> = OnceLock::new();
    C.get_or_init(PoseidonConstants::new)
}

pub(crate) fn constants_8() -> &'static PoseidonConstants<Fr, U8> {
    static C: OnceLock<PoseidonConstants<Fr, U8>> = OnceLock::new();
    C.get_or_init(PoseidonConstants::new)
}

pub(crate) fn constants_11() -> &'static PoseidonConstants<Fr, U11> {
    static C: OnceLock<PoseidonConstants<Fr, U11>> = OnceLock::new();
    C.get_or_init(PoseidonConstants::new)
}

/// Poseidon of exactly `arity` field elements, for the arities SDR uses (2, 8, 11).
///
/// # Panics
/// If `inputs.len()` is not 2, 8 or 11: the arity is a property of the sector
/// shape, validated before any hashing starts.
pub fn hash(inputs: &[Fr]) -> Fr {
    match inputs.len() {
        2 => Poseidon::new_with_preimage(inputs, constants_2()).hash(),
        8 => Poseidon::new_with_preimage(inputs, constants_8()).hash(),
        11 => Poseidon::new_with_preimage(inputs, constants_11()).hash(),
        n => panic!("Poseidon arity {n} is not used by SDR (expected 2, 8 or 11)"),
    }
}

/// Whether [`hash`] supports this arity.
pub fn supports_arity(arity: usize) -> bool {
    matches!(arity, 2 | 8 | 11)
}

/// Reads 32 little-endian bytes as a field element, rejecting values `>= r`.
pub fn fr_from_bytes(bytes: &[u8; 32]) -> Option<Fr> {
    Fr::from_repr_vartime(*bytes)
}

/// Like [`fr_from_bytes`], with an error that names the value.
pub fn fr_from_bytes_named(bytes: &[u8; 32], what: impl FnOnce() -> String) -> Result<Fr> {
    fr_from_bytes(bytes).ok_or_else(|| Error::NotInField { what: what() })
}

/// The canonical 32-byte little-endian encoding.
pub fn fr_to_bytes(fr: &Fr) -> [u8; 32] {
    fr.to_repr()
}

/// Poseidon of 32-byte nodes. The inputs must already be valid field elements
/// (labels and tree nodes always are: they are trimmed or Poseidon outputs).
pub fn hash_nodes(nodes: &[[u8; 32]]) -> Result<[u8; 32]> {
    let mut frs = [Fr::from(0u64); 11];
    for (i, n) in nodes.iter().enumerate() {
        frs[i] = fr_from_bytes_named(n, || format!("Poseidon input {}", hex::encode(n)))?;
    }
    Ok(fr_to_bytes(&hash(&frs[..nodes.len()])))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be_hex(fr: &Fr) -> String {
        let mut b = fr_to_bytes(fr);
        b.reverse();
        hex::encode(b)
    }

    /// neptune's `hash_values_aux` vectors (porep-sdr.md §15.3): inputs 0..k.
    #[test]
    fn matches_neptune_reference_vectors() {
        let cases = [
            (2, "396508d75e76a56b739e0fd902efe161a6fba9339d05a69d2e203c369a02e7ff"),
            (8, "2394611da3a5de5512010042116770774b682e9d9cc4aed92a9934f56d38a5e6"),
            (11, "0c0fc1b2e5227f286ca537e232ebe87a09f3dcd8ccb08fc1cee3bbc32b693163"),
        ];
        for (k, expected) in cases {
            let inputs: Vec<Fr> = (0..k as u64).map(Fr::from).collect();
            assert_eq!(be_hex(&hash(&inputs)), expected, "arity {k}");
        }
    }

    #[test]
    fn rejects_non_canonical_bytes() {
        assert!(fr_from_bytes(&[0xff; 32]).is_none());
        assert!(fr_from_bytes(&[0x00; 32]).is_some());
        let mut max_trimmed = [0xff; 32];
        crate::ids::trim(&mut max_trimmed);
        assert!(fr_from_bytes(&max_trimmed).is_some());
    }
}
