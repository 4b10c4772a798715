//! Inlined arithmetic on blstrs' scalars, for the hot loops (C2's FFT
//! butterflies).
//!
//! blstrs calls into blst for every operation: ~24 ns a multiplication and
//! ~10 ns an addition on this machine (a dependent chain), against ~16 ns and
//! ~2 ns inline. Here the same Montgomery representation (4 × 64-bit limbs, R = 2^256,
//! which is what a `blstrs::Scalar` holds) is computed inline: the values are
//! the same field elements bit for bit, so slices are viewed in place. Not
//! constant time: only public or per-proof values pass through here, never a
//! key. blstrs is the oracle (tested on random and edge values).

// Viewing `Scalar` slices as limbs (see `limbs_mut`).
#![allow(unsafe_code)]

use blstrs::Scalar as Fr;

/// The scalar field's modulus r, little-endian limbs.
const MODULUS: [u64; 4] =
    [0xffff_ffff_0000_0001, 0x53bd_a402_fffe_5bfe, 0x3339_d808_09a1_d805, 0x73ed_a753_299d_7d48];
/// −r⁻¹ mod 2^64.
const INV: u64 = 0xffff_fffe_ffff_ffff;

/// A scalar in Montgomery form, as blst stores it; always reduced (below r),
/// which the private limbs and the operations keep so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct Mont([u64; 4]);

// `Scalar` is `#[repr(transparent)]` over `blst_fr`, a `#[repr(C)]` struct of
// `[u64; 4]` (blstrs 0.7, blst 0.3), as `Mont` is.
const _: () = assert!(std::mem::size_of::<Fr>() == std::mem::size_of::<Mont>());
const _: () = assert!(std::mem::align_of::<Fr>() == std::mem::align_of::<Mont>());

/// The scalars of `x` as Montgomery limbs, in place.
pub fn limbs_mut(x: &mut [Fr]) -> &mut [Mont] {
    // SAFETY: same size, alignment and bit layout (see above); every bit
    // pattern blst leaves in a Scalar is a reduced Montgomery value, and the
    // operations below keep values reduced, so the slice stays valid Scalars.
    unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr().cast::<Mont>(), x.len()) }
}

/// The scalars of `x` as Montgomery limbs.
pub fn limbs(x: &[Fr]) -> &[Mont] {
    // SAFETY: as in `limbs_mut`, read only.
    unsafe { std::slice::from_raw_parts(x.as_ptr().cast::<Mont>(), x.len()) }
}

/// One scalar as limbs.
pub fn mont(x: Fr) -> Mont {
    limbs(std::slice::from_ref(&x))[0]
}

#[inline(always)]
fn adc(a: u64, b: u64, carry: u64) -> (u64, u64) {
    let t = a as u128 + b as u128 + carry as u128;
    (t as u64, (t >> 64) as u64)
}

/// a − b − borrow, borrow being 0 or 1; returns the borrow out (0 or 1).
#[inline(always)]
fn sbb(a: u64, b: u64, borrow: u64) -> (u64, u64) {
    let t = (a as u128).wrapping_sub(b as u128 + borrow as u128);
    (t as u64, (t >> 127) as u64)
}

/// a + b·c + carry.
#[inline(always)]
fn mac(a: u64, b: u64, c: u64, carry: u64) -> (u64, u64) {
    let t = a as u128 + (b as u128) * (c as u128) + carry as u128;
    (t as u64, (t >> 64) as u64)
}

impl Mont {
    /// The Montgomery limbs, least significant first.
    pub fn to_limbs(self) -> [u64; 4] {
        self.0
    }

    /// Montgomery limbs, if they hold a reduced value (below r).
    pub fn from_limbs(l: [u64; 4]) -> Option<Mont> {
        let (_, b) = sbb(l[0], MODULUS[0], 0);
        let (_, b) = sbb(l[1], MODULUS[1], b);
        let (_, b) = sbb(l[2], MODULUS[2], b);
        let (_, b) = sbb(l[3], MODULUS[3], b);
        (b == 1).then_some(Mont(l))
    }

    /// The scalar these limbs hold.
    pub fn to_fr(self) -> Fr {
        let mut out = [Fr::from(0u64)];
        limbs_mut(&mut out)[0] = self;
        out[0]
    }

    /// x − r if x ≥ r (x < 2r).
    #[inline(always)]
    fn reduce_once(x: [u64; 4]) -> Mont {
        let (d0, b) = sbb(x[0], MODULUS[0], 0);
        let (d1, b) = sbb(x[1], MODULUS[1], b);
        let (d2, b) = sbb(x[2], MODULUS[2], b);
        let (d3, b) = sbb(x[3], MODULUS[3], b);
        if b == 1 {
            Mont(x)
        } else {
            Mont([d0, d1, d2, d3])
        }
    }
}

impl std::ops::Add for Mont {
    type Output = Mont;
    #[inline(always)]
    fn add(self, b: Mont) -> Mont {
        // a + b < 2r < 2^256: no carry out.
        let (d0, c) = adc(self.0[0], b.0[0], 0);
        let (d1, c) = adc(self.0[1], b.0[1], c);
        let (d2, c) = adc(self.0[2], b.0[2], c);
        let (d3, _) = adc(self.0[3], b.0[3], c);
        Mont::reduce_once([d0, d1, d2, d3])
    }
}

impl std::ops::Sub for Mont {
    type Output = Mont;
    #[inline(always)]
    fn sub(self, b: Mont) -> Mont {
        let (d0, w) = sbb(self.0[0], b.0[0], 0);
        let (d1, w) = sbb(self.0[1], b.0[1], w);
        let (d2, w) = sbb(self.0[2], b.0[2], w);
        let (d3, w) = sbb(self.0[3], b.0[3], w);
        // On a borrow, add r back.
        let mask = 0u64.wrapping_sub(w);
        let (d0, c) = adc(d0, MODULUS[0] & mask, 0);
        let (d1, c) = adc(d1, MODULUS[1] & mask, c);
        let (d2, c) = adc(d2, MODULUS[2] & mask, c);
        let (d3, _) = adc(d3, MODULUS[3] & mask, c);
        Mont([d0, d1, d2, d3])
    }
}

impl std::ops::Mul for Mont {
    type Output = Mont;
    /// a · b · R⁻¹: the Montgomery product (schoolbook, then reduction).
    #[inline(always)]
    fn mul(self, b: Mont) -> Mont {
        let (a, b) = (self.0, b.0);
        let (r0, c) = mac(0, a[0], b[0], 0);
        let (r1, c) = mac(0, a[0], b[1], c);
        let (r2, c) = mac(0, a[0], b[2], c);
        let (r3, r4) = mac(0, a[0], b[3], c);

        let (r1, c) = mac(r1, a[1], b[0], 0);
        let (r2, c) = mac(r2, a[1], b[1], c);
        let (r3, c) = mac(r3, a[1], b[2], c);
        let (r4, r5) = mac(r4, a[1], b[3], c);

        let (r2, c) = mac(r2, a[2], b[0], 0);
        let (r3, c) = mac(r3, a[2], b[1], c);
        let (r4, c) = mac(r4, a[2], b[2], c);
        let (r5, r6) = mac(r5, a[2], b[3], c);

        let (r3, c) = mac(r3, a[3], b[0], 0);
        let (r4, c) = mac(r4, a[3], b[1], c);
        let (r5, c) = mac(r5, a[3], b[2], c);
        let (r6, r7) = mac(r6, a[3], b[3], c);

        let k = r0.wrapping_mul(INV);
        let (_, c) = mac(r0, k, MODULUS[0], 0);
        let (r1, c) = mac(r1, k, MODULUS[1], c);
        let (r2, c) = mac(r2, k, MODULUS[2], c);
        let (r3, c) = mac(r3, k, MODULUS[3], c);
        let (r4, c2) = adc(r4, 0, c);

        let k = r1.wrapping_mul(INV);
        let (_, c) = mac(r1, k, MODULUS[0], 0);
        let (r2, c) = mac(r2, k, MODULUS[1], c);
        let (r3, c) = mac(r3, k, MODULUS[2], c);
        let (r4, c) = mac(r4, k, MODULUS[3], c);
        let (r5, c2) = adc(r5, c2, c);

        let k = r2.wrapping_mul(INV);
        let (_, c) = mac(r2, k, MODULUS[0], 0);
        let (r3, c) = mac(r3, k, MODULUS[1], c);
        let (r4, c) = mac(r4, k, MODULUS[2], c);
        let (r5, c) = mac(r5, k, MODULUS[3], c);
        let (r6, c2) = adc(r6, c2, c);

        let k = r3.wrapping_mul(INV);
        let (_, c) = mac(r3, k, MODULUS[0], 0);
        let (r4, c) = mac(r4, k, MODULUS[1], c);
        let (r5, c) = mac(r5, k, MODULUS[2], c);
        let (r6, c) = mac(r6, k, MODULUS[3], c);
        let (r7, _) = adc(r7, c2, c);

        Mont::reduce_once([r4, r5, r6, r7])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ff::{Field, PrimeField};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn edge_values() -> Vec<Fr> {
        let minus_one = -Fr::ONE;
        vec![
            Fr::ZERO,
            Fr::ONE,
            minus_one,
            minus_one - Fr::ONE,
            Fr::from(2u64),
            Fr::ROOT_OF_UNITY,
            Fr::from(u64::MAX),
        ]
    }

    #[test]
    fn arithmetic_equals_blstrs() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut values = edge_values();
        values.extend((0..200).map(|_| Fr::random(&mut rng)));
        for a in &values {
            for b in values.iter().take(60) {
                assert_eq!(mont(*a) * mont(*b), mont(*a * b), "{a:?} · {b:?}");
                assert_eq!(mont(*a) + mont(*b), mont(*a + b), "{a:?} + {b:?}");
                assert_eq!(mont(*a) - mont(*b), mont(*a - b), "{a:?} − {b:?}");
            }
        }
    }

    #[test]
    fn limbs_round_trip_and_unreduced_ones_are_refused() {
        let x = mont(-Fr::ONE);
        assert_eq!(Mont::from_limbs(x.to_limbs()), Some(x));
        assert_eq!(x.to_fr(), -Fr::ONE);
        assert_eq!(Mont::from_limbs(MODULUS), None);
        assert_eq!(Mont::from_limbs([u64::MAX; 4]), None);
    }

    #[test]
    fn slices_are_viewed_in_place() {
        let mut v = vec![Fr::from(3u64), Fr::from(5u64)];
        let m = limbs_mut(&mut v);
        m[0] = m[0] * m[1];
        assert_eq!(v[0], Fr::from(15u64));
        assert_eq!(limbs(&v)[1], mont(Fr::from(5u64)));
    }
}
