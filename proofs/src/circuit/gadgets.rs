//! Gadgets of the SDR circuit, built from bellpepper's (SHA-256, booleans,
//! UInt32, multipack) and neptune's (Poseidon).
//!
//! Published parameters fix the exact R1CS, so every gadget here allocates
//! the same variables and enforces the same constraints in the same order as
//! the reference's (circuit.md §0, §3). The comments give each one's cost.

use bellpepper::gadgets::{multipack, sha256::sha256};
use bellpepper_core::boolean::{AllocatedBit, Boolean};
use bellpepper_core::num::AllocatedNum;
use bellpepper_core::{ConstraintSystem, SynthesisError};
use blstrs::Scalar as Fr;
use ff::{Field, PrimeField};
use generic_array::typenum::{U11, U2, U8};
use neptune::circuit::poseidon_hash;

/// Reverses the bit order inside each byte, after padding with zero bits to a
/// whole number of bytes: turns little-endian field bits into SHA-256's
/// byte-stream order.
pub fn reverse_bits_in_bytes(mut bits: Vec<Boolean>) -> Vec<Boolean> {
    while !bits.len().is_multiple_of(8) {
        bits.push(Boolean::constant(false));
    }
    bits.chunks(8).flat_map(|byte| byte.iter().rev().cloned()).collect()
}

/// The 256 bits of `x`'s 32-byte encoding in stream order (256 constraints).
pub fn fr_stream_bits<CS: ConstraintSystem<Fr>>(
    cs: CS,
    x: &AllocatedNum<Fr>,
) -> Result<Vec<Boolean>, SynthesisError> {
    Ok(reverse_bits_in_bytes(x.to_bits_le(cs)?))
}

/// `trim(SHA-256(bits))` read as a field element: the digest's bits reordered to
/// little-endian, the first 254 of them packed into a new variable.
pub fn sha256_to_fr<CS: ConstraintSystem<Fr>>(
    mut cs: CS,
    bits: &[Boolean],
) -> Result<AllocatedNum<Fr>, SynthesisError> {
    let digest = sha256(cs.namespace(|| "hash"), bits)?;
    let le = reverse_bits_in_bytes(digest);
    multipack::pack_bits(cs.namespace(|| "pack"), &le[..Fr::CAPACITY as usize])
}

/// `trim(SHA-256(a || b))` of two field elements: tree_d's inner node.
pub fn sha254_pair<CS: ConstraintSystem<Fr>>(
    mut cs: CS,
    children: &[AllocatedNum<Fr>],
) -> Result<AllocatedNum<Fr>, SynthesisError> {
    let mut bits = Vec::with_capacity(512);
    for (i, child) in children.iter().enumerate() {
        bits.extend(fr_stream_bits(cs.namespace(|| format!("child {i} bits")), child)?);
    }
    sha256_to_fr(cs, &bits)
}

/// Poseidon (the legacy neptune gadget) of 2, 8 or 11 values.
pub fn poseidon<CS: ConstraintSystem<Fr>>(
    cs: CS,
    inputs: &[AllocatedNum<Fr>],
) -> Result<AllocatedNum<Fr>, SynthesisError> {
    use crate::poseidon::{constants_11, constants_2, constants_8};
    match inputs.len() {
        2 => poseidon_hash::<CS, Fr, U2>(cs, inputs.to_vec(), constants_2()),
        8 => poseidon_hash::<CS, Fr, U8>(cs, inputs.to_vec(), constants_8()),
        11 => poseidon_hash::<CS, Fr, U11>(cs, inputs.to_vec(), constants_11()),
        // Arities come from the sector shape, which only has these.
        _ => Err(SynthesisError::Unsatisfiable),
    }
}

/// A new variable holding `value` (no constraint).
pub fn alloc<CS: ConstraintSystem<Fr>>(
    cs: CS,
    value: Option<Fr>,
) -> Result<AllocatedNum<Fr>, SynthesisError> {
    AllocatedNum::alloc(cs, || value.ok_or(SynthesisError::AssignmentMissing))
}

/// `if condition { a } else { b }` as a new variable.
/// One constraint: `(b − a) · condition = b − result`.
pub fn pick<CS: ConstraintSystem<Fr>>(
    mut cs: CS,
    condition: &Boolean,
    a: &AllocatedNum<Fr>,
    b: &AllocatedNum<Fr>,
) -> Result<AllocatedNum<Fr>, SynthesisError> {
    let result = AllocatedNum::alloc(cs.namespace(|| "pick result"), || {
        let chosen = if condition.get_value().ok_or(SynthesisError::AssignmentMissing)? { a } else { b };
        chosen.get_value().ok_or(SynthesisError::AssignmentMissing)
    })?;
    cs.enforce(
        || "pick",
        |lc| lc + b.get_variable() - a.get_variable(),
        |_| condition.lc(CS::one(), Fr::ONE),
        |lc| lc + b.get_variable() - result.get_variable(),
    );
    Ok(result)
}

/// The children of a node: `current` placed at the position given by `bits`
/// (little-endian) among `siblings`. Arity 2 costs 2 picks; arity 8 costs a NOR,
/// an AND and 20 picks, in the reference's order.
pub fn insert<CS: ConstraintSystem<Fr>>(
    cs: &mut CS,
    current: &AllocatedNum<Fr>,
    bits: &[AllocatedBit],
    siblings: &[AllocatedNum<Fr>],
) -> Result<Vec<AllocatedNum<Fr>>, SynthesisError> {
    let boolean = |b: &AllocatedBit| Boolean::from(b.clone());
    match (bits, siblings) {
        ([b0], [s]) => {
            let b0 = boolean(b0);
            Ok(vec![
                pick(cs.namespace(|| "binary insert 0"), &b0, s, current)?,
                pick(cs.namespace(|| "binary insert 1"), &b0, current, s)?,
            ])
        }
        ([bit0, bit1, bit2], [s0, s1, s2, s3, s4, s5, s6]) => {
            let nor = Boolean::from(AllocatedBit::nor(cs.namespace(|| "b0 nor b1"), bit0, bit1)?);
            let and = Boolean::from(AllocatedBit::and(cs.namespace(|| "b0 and b1"), bit0, bit1)?);
            let (b0, b1, b2) = (boolean(bit0), boolean(bit1), boolean(bit2));
            let x = current;
            let mut n = 0;
            let mut p = |cond: &Boolean, a: &AllocatedNum<Fr>, b: &AllocatedNum<Fr>| {
                n += 1;
                pick(cs.namespace(|| format!("insert pick {n}")), cond, a, b)
            };
            // Output k is `x` if the index is k, else the sibling that lands there
            // (s[k] below the index, s[k−1] above it): a chain of picks on b0 and b1
            // (or their NOR / AND), then one on b2.
            let t = p(&nor, x, s0)?;
            let out0 = p(&b2, s0, &t)?;
            let t = p(&b0, x, s0)?;
            let t = p(&b1, s1, &t)?;
            let out1 = p(&b2, s1, &t)?;
            let t = p(&b0, s2, x)?;
            let t = p(&b1, &t, s1)?;
            let out2 = p(&b2, s2, &t)?;
            let t = p(&and, x, s2)?;
            let out3 = p(&b2, s3, &t)?;
            let t = p(&nor, x, s4)?;
            let out4 = p(&b2, &t, s3)?;
            let t = p(&b0, x, s4)?;
            let t = p(&b1, s5, &t)?;
            let out5 = p(&b2, &t, s4)?;
            let t = p(&b0, s6, x)?;
            let t = p(&b1, &t, s5)?;
            let out6 = p(&b2, &t, s5)?;
            let t = p(&and, x, s6)?;
            let out7 = p(&b2, &t, s6)?;
            Ok(vec![out0, out1, out2, out3, out4, out5, out6, out7])
        }
        _ => Err(SynthesisError::Unsatisfiable),
    }
}

/// A 64-bit value as 64 allocated bits, least significant first (64 constraints).
pub fn alloc_u64_bits<CS: ConstraintSystem<Fr>>(
    mut cs: CS,
    value: Option<u64>,
) -> Result<Vec<Boolean>, SynthesisError> {
    (0..64)
        .map(|i| {
            let bit = AllocatedBit::alloc(
                cs.namespace(|| format!("allocated bit {i}")),
                value.map(|v| v >> i & 1 == 1),
            )?;
            Ok(Boolean::from(bit))
        })
        .collect()
}

/// Bits packed into public inputs (one per 254 bits; one constraint each).
pub fn pack_into_inputs<CS: ConstraintSystem<Fr>>(cs: CS, bits: &[Boolean]) -> Result<(), SynthesisError> {
    multipack::pack_into_inputs(cs, bits)
}

/// `a = b` (one constraint: `a · 1 = b`).
pub fn enforce_equal<CS: ConstraintSystem<Fr>>(
    cs: &mut CS,
    what: &str,
    a: &AllocatedNum<Fr>,
    b: &AllocatedNum<Fr>,
) {
    cs.enforce(
        || what.to_string(),
        |lc| lc + a.get_variable(),
        |lc| lc + CS::one(),
        |lc| lc + b.get_variable(),
    );
}

/// `a + b` as a new variable (one constraint: `(a + b) · 1 = sum`).
pub fn add<CS: ConstraintSystem<Fr>>(
    mut cs: CS,
    a: &AllocatedNum<Fr>,
    b: &AllocatedNum<Fr>,
) -> Result<AllocatedNum<Fr>, SynthesisError> {
    let sum = AllocatedNum::alloc(cs.namespace(|| "sum"), || {
        Ok(a.get_value().ok_or(SynthesisError::AssignmentMissing)?
            + b.get_value().ok_or(SynthesisError::AssignmentMissing)?)
    })?;
    cs.enforce(
        || "sum constraint",
        |lc| lc + a.get_variable() + b.get_variable(),
        |lc| lc + CS::one(),
        |lc| lc + sum.get_variable(),
    );
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circuit::check_cs::CheckingCs;
    use crate::poseidon::{fr_to_bytes, hash};

    fn num(cs: &mut CheckingCs, v: Fr) -> AllocatedNum<Fr> {
        AllocatedNum::alloc(cs.namespace(|| "n"), || Ok(v)).unwrap()
    }

    fn frs(n: u64, salt: u64) -> Vec<Fr> {
        (0..n).map(|i| Fr::from(i * 1_000_003 + salt)).collect()
    }

    #[test]
    fn insert_places_the_node_at_every_position() {
        for arity in [2usize, 8] {
            let bits_n = arity.trailing_zeros() as usize;
            for index in 0..arity {
                let mut cs = CheckingCs::new(false);
                let x = num(&mut cs, Fr::from(999u64));
                let siblings: Vec<_> =
                    frs(arity as u64 - 1, 1).into_iter().map(|v| num(&mut cs, v)).collect();
                let bits: Vec<_> = (0..bits_n)
                    .map(|i| AllocatedBit::alloc(cs.namespace(|| "b"), Some(index >> i & 1 == 1)).unwrap())
                    .collect();
                let before = cs.num_constraints();
                let out = insert(&mut cs, &x, &bits, &siblings).unwrap();
                let mut want: Vec<Fr> = siblings.iter().map(|s| s.get_value().unwrap()).collect();
                want.insert(index, Fr::from(999u64));
                let got: Vec<Fr> = out.iter().map(|o| o.get_value().unwrap()).collect();
                assert_eq!(got, want, "arity {arity}, index {index}");
                assert!(cs.is_satisfied());
                assert_eq!(cs.num_constraints() - before, if arity == 2 { 2 } else { 22 });
            }
        }
    }

    #[test]
    fn poseidon_gadget_matches_native() {
        for arity in [2u64, 8, 11] {
            let mut cs = CheckingCs::new(false);
            let values = frs(arity, 7);
            let inputs: Vec<_> = values.iter().map(|&v| num(&mut cs, v)).collect();
            let out = poseidon(cs.namespace(|| "p"), &inputs).unwrap();
            assert_eq!(out.get_value().unwrap(), hash(&values), "arity {arity}");
            assert!(cs.is_satisfied());
        }
    }

    #[test]
    fn sha254_pair_gadget_matches_native() {
        let mut cs = CheckingCs::new(false);
        let (a, b) = (Fr::from(123_456_789u64), -Fr::from(5u64));
        let (na, nb) = (num(&mut cs, a), num(&mut cs, b));
        let before = cs.num_constraints();
        let out = sha254_pair(cs.namespace(|| "h"), &[na, nb]).unwrap();
        let want = crate::ids::sha254_pair(&fr_to_bytes(&a), &fr_to_bytes(&b));
        assert_eq!(fr_to_bytes(&out.get_value().unwrap()), want);
        assert!(cs.is_satisfied());
        // One tree_d level is 45,382 constraints: 1 index bit, 2 picks, and this.
        assert_eq!(cs.num_constraints() - before, 45_382 - 3);
    }

    #[test]
    fn add_and_pick_are_sound() {
        let mut cs = CheckingCs::new(false);
        let (a, b) = (num(&mut cs, Fr::from(40u64)), num(&mut cs, Fr::from(2u64)));
        assert_eq!(add(cs.namespace(|| "s"), &a, &b).unwrap().get_value(), Some(Fr::from(42u64)));
        let yes = Boolean::from(AllocatedBit::alloc(cs.namespace(|| "c"), Some(true)).unwrap());
        assert_eq!(pick(cs.namespace(|| "p"), &yes, &a, &b).unwrap().get_value(), Some(Fr::from(40u64)));
        assert!(cs.is_satisfied());
        // A wrong sum is caught.
        let bogus = num(&mut cs, Fr::from(41u64));
        let sum = add(cs.namespace(|| "t"), &a, &b).unwrap();
        enforce_equal(&mut cs, "bogus", &bogus, &sum);
        assert!(!cs.is_satisfied());
    }
}
