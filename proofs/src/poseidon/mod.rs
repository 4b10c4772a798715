//! Poseidon over BLS12-381's scalar field, with neptune 11's constants
//! (porep-sdr.md §10).
//!
//! Only the `MerkleTree` hash type with standard strength is used by SDR: its
//! domain tag is `2^arity − 1`, which is what `PoseidonConstants::new()` gives.
//! Constants are built once per arity and shared.
//!
//! [`hash`] hashes one preimage with neptune. [`hash_many`] hashes rows of
//! them (tree rows and columns supply as many as wanted): eight at a time on
//! AVX-512 IFMA where the CPU has it ([`ifma`], chosen at run time), with
//! neptune elsewhere and for the arities the kernel does not take.

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

#[cfg(feature = "gpu")]
pub mod gpu;
#[cfg(target_arch = "x86_64")]
mod ifma;

#[cfg(target_arch = "x86_64")]
fn kernel(arity: usize) -> Option<&'static ifma::Kernel> {
    static K2: OnceLock<Option<ifma::Kernel>> = OnceLock::new();
    static K8: OnceLock<Option<ifma::Kernel>> = OnceLock::new();
    match arity {
        2 => {
            K2.get_or_init(|| ifma::available().then(|| ifma::Kernel::new(constants_2())).flatten()).as_ref()
        }
        8 => {
            K8.get_or_init(|| ifma::available().then(|| ifma::Kernel::new(constants_8())).flatten()).as_ref()
        }
        _ => None,
    }
}

/// Whether [`hash_many`] runs on the IFMA kernel for this arity here.
pub fn vectorized(arity: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    return kernel(arity).is_some();
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// Poseidon of each `arity`-element preimage of `inputs` (concatenated) into
/// the matching element of `out`.
///
/// # Panics
/// If `inputs` does not hold `out.len()` preimages, or the arity is not one
/// [`hash`] supports.
pub fn hash_many(arity: usize, inputs: &[Fr], out: &mut [Fr]) {
    assert_eq!(inputs.len(), arity * out.len(), "one preimage per output");
    #[cfg(target_arch = "x86_64")]
    if let Some(k) = kernel(arity) {
        let lanes = ifma::LANES;
        let mut outs = out.chunks_exact_mut(lanes);
        let mut ins = inputs.chunks_exact(lanes * arity);
        for (o, i) in (&mut outs).zip(&mut ins) {
            k.hash8(i, o.try_into().expect("a full chunk"));
        }
        let (o, i) = (outs.into_remainder(), ins.remainder());
        if !o.is_empty() {
            let mut padded = vec![Fr::from(0u64); lanes * arity];
            padded[..i.len()].copy_from_slice(i);
            let mut all = [Fr::from(0u64); ifma::LANES];
            k.hash8(&padded, &mut all);
            o.copy_from_slice(&all[..o.len()]);
        }
        return;
    }
    hash_many_portable(arity, inputs, out);
}

/// [`hash_many`] with neptune, one preimage at a time.
pub fn hash_many_portable(arity: usize, inputs: &[Fr], out: &mut [Fr]) {
    assert_eq!(inputs.len(), arity * out.len(), "one preimage per output");
    for (o, i) in out.iter_mut().zip(inputs.chunks_exact(arity)) {
        *o = hash(i);
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

    /// The vectorized hashes equal neptune's for every arity, on random and
    /// edge inputs, and for every count (full lanes and a padded remainder).
    #[test]
    fn hash_many_equals_neptune() {
        use ff::Field;
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        for arity in [2usize, 8, 11] {
            if !vectorized(arity) {
                eprintln!("arity {arity}: IFMA kernel not used on this CPU; portable path only");
            }
            for count in [0usize, 1, 7, 8, 9, 16, 23, 64] {
                let inputs: Vec<Fr> = (0..count * arity)
                    .map(|i| match i % 5 {
                        0 => -Fr::ONE,
                        1 => Fr::ZERO,
                        _ => Fr::random(&mut rng),
                    })
                    .collect();
                let mut fast = vec![Fr::ZERO; count];
                hash_many(arity, &inputs, &mut fast);
                let mut slow = vec![Fr::ZERO; count];
                hash_many_portable(arity, &inputs, &mut slow);
                assert_eq!(fast, slow, "arity {arity}, {count} preimages");
            }
        }
        // neptune's published vectors through the batch path.
        let inputs: Vec<Fr> = (0..8u64).map(Fr::from).collect();
        let mut out = [Fr::ZERO];
        hash_many(8, &inputs, &mut out);
        assert_eq!(be_hex(&out[0]), "2394611da3a5de5512010042116770774b682e9d9cc4aed92a9934f56d38a5e6");
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
