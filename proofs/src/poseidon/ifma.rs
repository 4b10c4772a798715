//! Poseidon on AVX-512 IFMA: eight hashes at once, one per 64-bit lane.
//!
//! Field elements are held in radix 2^52 (five limbs, one vector per limb)
//! in Montgomery form with R = 2^260, so that `vpmadd52{lo,hi}uq` computes
//! the limb products. The 5 spare bits make lazy reduction possible: a whole
//! MDS row (up to nine products of a constant below r by a state element
//! below 3r) is summed unreduced, 27r² < R·r, and reduced once, which ends
//! below 2r. Values stay below 3r between operations (S-box outputs plus a
//! round constant), below 2r after a reduction, and are brought below r only
//! on the way out. The permutation is neptune's "optimized static" one, on
//! neptune's constants (sparse matrices in the partial rounds); arities 2 and
//! 8 (widths 3 and 9, all that sectors up to 512MiB use) run here, neptune
//! serves the rest and CPUs without IFMA. Equal to neptune on random inputs
//! (tested when the CPU has IFMA).

// Vector loads and stores from arrays, and the call into code compiled for
// IFMA (only after the CPU was found to have it).
#![allow(unsafe_code)]

use crate::field::{mont, Mont};
use blstrs::Scalar as Fr;
use ff::{Field, PrimeField};
use neptune::poseidon::PoseidonConstants;
use std::arch::x86_64::*;

/// Lanes per vector: hashes computed together.
pub const LANES: usize = 8;
/// Limbs of 52 bits per element.
const LIMBS: usize = 5;
const MASK: u64 = (1 << 52) - 1;
/// Widths this kernel handles.
const MAX_WIDTH: usize = 9;

type V = __m512i;

/// Eight field elements, limb by limb.
#[derive(Clone, Copy)]
struct Elt([V; LIMBS]);

/// A constant in IFMA Montgomery form (c · 2^260 mod r, below r), limbs.
type Const = [u64; LIMBS];

/// Whether this CPU runs the kernel.
pub fn available() -> bool {
    is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512ifma")
}

/// The integer `bytes` (little-endian, 256 bits) in radix 2^52.
fn radix52(bytes: [u8; 32]) -> Const {
    let w: [u64; 4] =
        std::array::from_fn(|i| u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().expect("8")));
    radix52_words(w)
}

fn radix52_words(w: [u64; 4]) -> Const {
    [
        w[0] & MASK,
        ((w[0] >> 52) | (w[1] << 12)) & MASK,
        ((w[1] >> 40) | (w[2] << 24)) & MASK,
        ((w[2] >> 28) | (w[3] << 36)) & MASK,
        w[3] >> 16,
    ]
}

fn words(l: [u64; LIMBS]) -> [u64; 4] {
    [
        l[0] | (l[1] << 52),
        (l[1] >> 12) | (l[2] << 40),
        (l[2] >> 24) | (l[3] << 28),
        (l[3] >> 36) | (l[4] << 16),
    ]
}

/// The permutation's constants in this kernel's form.
pub struct Kernel {
    width: usize,
    modulus: Const,
    two_modulus: Const,
    /// −r⁻¹ mod 2^52.
    inv: u64,
    /// 2^264 mod r: multiplying blst's form (x·2^256) by it gives x·2^260.
    to_ifma: Const,
    /// 2^256 mod r: multiplying x·2^260 by it gives blst's form.
    from_ifma: Const,
    domain_tag: Const,
    round_constants: Vec<Const>,
    mds: Vec<Const>,
    pre_sparse: Vec<Const>,
    sparse: Vec<(Vec<Const>, Vec<Const>)>,
    half_full_rounds: usize,
    partial_rounds: usize,
}

impl Kernel {
    /// The kernel for the constants' width, if it handles it.
    pub fn new<A: neptune::Arity<Fr>>(p: &PoseidonConstants<Fr, A>) -> Option<Self> {
        let width = p.mds_matrices.m.len();
        if width > MAX_WIDTH {
            return None;
        }
        let r260 = Fr::from(2u64).pow_vartime([260u64]);
        let ifma = |c: &Fr| radix52((*c * r260).to_repr());
        let ifma_all = |v: &[Fr]| v.iter().map(ifma).collect::<Vec<_>>();
        let ifma_matrix =
            |m: &Vec<Vec<Fr>>| m.iter().flat_map(|row| row.iter().map(ifma)).collect::<Vec<_>>();
        let modulus_words = {
            // r = (r − 1) + 1, with r − 1 representable.
            let mut w = words(radix52((-Fr::ONE).to_repr()));
            w[0] += 1;
            w
        };
        let modulus = radix52_words(modulus_words);
        let two = {
            let mut w = modulus_words;
            let mut carry = 0;
            for x in &mut w {
                let t = ((*x as u128) << 1) | carry;
                *x = t as u64;
                carry = t >> 64;
            }
            radix52_words(w)
        };
        // −r⁻¹ mod 2^52 by Newton's iteration (r is odd).
        let r0 = modulus_words[0];
        let mut inv: u64 = 1;
        for _ in 0..6 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(r0.wrapping_mul(inv)));
        }
        let inv = inv.wrapping_neg() & MASK;
        Some(Kernel {
            width,
            modulus,
            two_modulus: two,
            inv,
            to_ifma: radix52(Fr::from(2u64).pow_vartime([264u64]).to_repr()),
            from_ifma: radix52(Fr::from(2u64).pow_vartime([256u64]).to_repr()),
            domain_tag: ifma(&p.domain_tag),
            round_constants: ifma_all(&p.compressed_round_constants),
            mds: ifma_matrix(&p.mds_matrices.m),
            pre_sparse: ifma_matrix(&p.pre_sparse_matrix),
            sparse: p.sparse_matrixes.iter().map(|m| (ifma_all(&m.w_hat), ifma_all(&m.v_rest))).collect(),
            half_full_rounds: p.half_full_rounds,
            partial_rounds: p.partial_rounds,
        })
    }

    /// Hashes `LANES` preimages (`inputs` holds them one after the other,
    /// `width − 1` elements each) into `out`.
    pub fn hash8(&self, inputs: &[Fr], out: &mut [Fr; LANES]) {
        assert!(available(), "the caller checks for IFMA");
        assert_eq!(inputs.len(), LANES * (self.width - 1));
        // SAFETY: the CPU has AVX-512F and IFMA (checked above).
        unsafe { self.hash8_ifma(inputs, out) }
    }

    #[target_feature(enable = "avx512f,avx512ifma")]
    fn hash8_ifma(&self, inputs: &[Fr], out: &mut [Fr; LANES]) {
        let w = self.width;
        let arity = w - 1;
        let zero = Elt([_mm512_setzero_si512(); LIMBS]);
        let mut state = [zero; MAX_WIDTH];
        state[0] = splat(&self.domain_tag);
        for (k, s) in state[1..w].iter_mut().enumerate() {
            // Lane l holds input k of preimage l, from blst's Montgomery limbs.
            let lanes: [Const; LANES] =
                std::array::from_fn(|l| radix52_words(mont(inputs[l * arity + k]).to_limbs()));
            let x = Elt(std::array::from_fn(|i| load(std::array::from_fn(|l| lanes[l][i]))));
            *s = self.mul(&x, &splat(&self.to_ifma));
        }
        let mut rc = self.round_constants.iter();
        let mut next = || splat(rc.next().expect("neptune provides a constant per use"));
        for s in &mut state[..w] {
            *s = add(s, &next());
        }
        let mut round = 0;
        for _ in 0..self.half_full_rounds {
            for s in &mut state[..w] {
                *s = add(&self.pow5(s), &next());
            }
            self.mix(&mut state, round);
            round += 1;
        }
        for _ in 0..self.partial_rounds {
            state[0] = add(&self.pow5(&state[0]), &next());
            self.mix(&mut state, round);
            round += 1;
        }
        for _ in 1..self.half_full_rounds {
            for s in &mut state[..w] {
                *s = add(&self.pow5(s), &next());
            }
            self.mix(&mut state, round);
            round += 1;
        }
        for s in &mut state[..w] {
            *s = self.pow5(s);
        }
        self.mix(&mut state, round);
        // Back to blst's form, below r.
        let y = self.mul(&state[1], &splat(&self.from_ifma));
        let y = self.below(&y, &self.modulus);
        let limbs: [[u64; LANES]; LIMBS] = std::array::from_fn(|i| store(y.0[i]));
        for (l, o) in out.iter_mut().enumerate() {
            let m = Mont::from_limbs(words(std::array::from_fn(|i| limbs[i][l])));
            *o = m.expect("a value below r after the final subtraction").to_fr();
        }
    }

    /// The MDS step after round `round`.
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn mix(&self, state: &mut [Elt; MAX_WIDTH], round: usize) {
        let sparse_from = self.half_full_rounds - 1;
        if round == sparse_from {
            self.dense(state, &self.pre_sparse);
        } else if round > sparse_from && round < self.half_full_rounds + self.partial_rounds {
            let (w_hat, v_rest) = &self.sparse[round - self.half_full_rounds];
            let w = self.width;
            let s0 = state[0];
            let mut t = [_mm512_setzero_si512(); 2 * LIMBS];
            for (c, s) in w_hat.iter().zip(&state[..w]) {
                mul_acc(&mut t, &splat(c), s);
            }
            for (s, v) in state[1..w].iter_mut().zip(v_rest) {
                let p = self.mul(&splat(v), &s0);
                *s = self.below(&add(s, &p), &self.two_modulus);
            }
            state[0] = self.reduce(t);
        } else {
            self.dense(state, &self.mds);
        }
    }

    /// state ← state · M, each output one lazy dot product.
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn dense(&self, state: &mut [Elt; MAX_WIDTH], m: &[Const]) {
        let w = self.width;
        let mut out = *state;
        for (j, o) in out[..w].iter_mut().enumerate() {
            let mut t = [_mm512_setzero_si512(); 2 * LIMBS];
            for (i, s) in state[..w].iter().enumerate() {
                mul_acc(&mut t, &splat(&m[i * w + j]), s);
            }
            *o = self.reduce(t);
        }
        *state = out;
    }

    #[target_feature(enable = "avx512f,avx512ifma")]
    fn pow5(&self, x: &Elt) -> Elt {
        let x2 = self.mul(x, x);
        let x4 = self.mul(&x2, &x2);
        self.mul(&x4, x)
    }

    /// a · b · 2^−260, below 2r for a · b < 2^260 · r.
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn mul(&self, a: &Elt, b: &Elt) -> Elt {
        let mut t = [_mm512_setzero_si512(); 2 * LIMBS];
        mul_acc(&mut t, a, b);
        self.reduce(t)
    }

    /// Montgomery reduction of a 10-limb accumulator below 2^260 · r.
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn reduce(&self, mut t: [V; 2 * LIMBS]) -> Elt {
        let inv = _mm512_set1_epi64(self.inv as i64);
        let p: [V; LIMBS] = std::array::from_fn(|j| _mm512_set1_epi64(self.modulus[j] as i64));
        let zero = _mm512_setzero_si512();
        for i in 0..LIMBS {
            let m = _mm512_madd52lo_epu64(zero, t[i], inv);
            for j in 0..LIMBS {
                t[i + j] = _mm512_madd52lo_epu64(t[i + j], m, p[j]);
                if i + j + 1 < 2 * LIMBS {
                    t[i + j + 1] = _mm512_madd52hi_epu64(t[i + j + 1], m, p[j]);
                }
            }
            // The low 52 bits of t[i] are now zero; carry the rest up.
            t[i + 1] = _mm512_add_epi64(t[i + 1], _mm512_srli_epi64::<52>(t[i]));
        }
        normalize([t[5], t[6], t[7], t[8], t[9]])
    }

    /// x − c if x ≥ c, for x < 2c.
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn below(&self, x: &Elt, c: &Const) -> Elt {
        let mask = _mm512_set1_epi64(MASK as i64);
        let mut d = [_mm512_setzero_si512(); LIMBS];
        let mut borrow = _mm512_setzero_si512();
        for i in 0..LIMBS {
            // Signed limb difference, the borrow as an arithmetic shift.
            let t = _mm512_add_epi64(_mm512_sub_epi64(x.0[i], _mm512_set1_epi64(c[i] as i64)), borrow);
            borrow = _mm512_srai_epi64::<52>(t);
            d[i] = if i + 1 < LIMBS { _mm512_and_si512(t, mask) } else { t };
        }
        // x < c where the difference is negative: keep x there.
        let negative = _mm512_cmplt_epi64_mask(d[LIMBS - 1], _mm512_setzero_si512());
        Elt(std::array::from_fn(|i| _mm512_mask_blend_epi64(negative, d[i], x.0[i])))
    }
}

/// t += a · b, unreduced (limb products into a 10-limb accumulator).
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn mul_acc(t: &mut [V; 2 * LIMBS], a: &Elt, b: &Elt) {
    for i in 0..LIMBS {
        for j in 0..LIMBS {
            t[i + j] = _mm512_madd52lo_epu64(t[i + j], a.0[i], b.0[j]);
            t[i + j + 1] = _mm512_madd52hi_epu64(t[i + j + 1], a.0[i], b.0[j]);
        }
    }
}

/// a + b, limbs carried back below 2^52.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn add(a: &Elt, b: &Elt) -> Elt {
    normalize(std::array::from_fn(|i| _mm512_add_epi64(a.0[i], b.0[i])))
}

#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn normalize(mut t: [V; LIMBS]) -> Elt {
    let mask = _mm512_set1_epi64(MASK as i64);
    for i in 0..LIMBS - 1 {
        t[i + 1] = _mm512_add_epi64(t[i + 1], _mm512_srli_epi64::<52>(t[i]));
        t[i] = _mm512_and_si512(t[i], mask);
    }
    Elt(t)
}

#[inline]
#[target_feature(enable = "avx512f")]
fn splat(c: &Const) -> Elt {
    Elt(std::array::from_fn(|i| _mm512_set1_epi64(c[i] as i64)))
}

#[inline]
#[target_feature(enable = "avx512f")]
fn load(lanes: [u64; LANES]) -> V {
    // SAFETY: reads the 64 bytes of a local array (unaligned load allowed).
    unsafe { _mm512_loadu_si512(lanes.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx512f")]
fn store(v: V) -> [u64; LANES] {
    let mut out = [0u64; LANES];
    // SAFETY: writes the 64 bytes of a local array (unaligned store allowed).
    unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), v) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radix_conversions_round_trip() {
        let x = [0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210, 0x1111_2222_3333_4444, 0x0fff_eeee_dddd_cccc];
        assert_eq!(words(radix52_words(x)), x);
    }
}
