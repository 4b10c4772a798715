//! The quotient polynomial of Groth16, h(x) = (a(x)·b(x) − c(x)) / z(x),
//! from the evaluations of a, b and c over the domain.
//!
//! Seven FFTs of size m as in bellperson (three inverse, three on the coset
//! g·⟨ω⟩, one inverse on the coset), done with precomputed twiddles (one
//! multiplication per butterfly where bellperson's serial FFT spends two),
//! depth-first so that the lower levels run in cache, and without the
//! bit-reversal passes in between, with inlined field arithmetic
//! ([`crate::field`]): inverse transforms go natural → bit-reversed
//! (decimation in frequency), forward ones bit-reversed → natural (decimation in
//! time), so only the final coefficients are permuted. The values are field
//! elements, so the result is exactly bellperson's (tested against it).

use crate::error::{Error, Result};
use crate::field::{limbs, limbs_mut, mont, Mont};
use blstrs::Scalar as Fr;
use ff::{Field, PrimeField};
use rayon::prelude::*;

/// Sizes from which a level's butterflies and the two halves run in parallel.
const PARALLEL_FROM: usize = 1 << 14;
/// Butterflies per rayon task.
const CHUNK: usize = 1 << 12;
/// Sizes from which two levels are done per pass: 2 MiB of scalars, the L2
/// cache here; below, a subtree runs in cache.
const FUSE_FROM: usize = 1 << 16;
/// Low bits of an exponent served by the small table of powers.
const POW_LOW_BITS: u32 = 11;

/// A radix-2 evaluation domain of size m = 2^log.
pub struct Domain {
    log: u32,
    /// ω^k for k < m/2, ω a primitive m-th root of unity.
    twiddles: Vec<Fr>,
}

impl Domain {
    /// The smallest domain holding `len` evaluations.
    pub fn for_len(len: usize) -> Result<Self> {
        let log = len.max(1).next_power_of_two().trailing_zeros();
        if log > Fr::S {
            return Err(Error::Snark(format!("{len} constraints exceed the field's 2^{} domain", Fr::S)));
        }
        let mut omega = Fr::ROOT_OF_UNITY;
        for _ in log..Fr::S {
            omega = omega.square();
        }
        let half = (1usize << log) / 2;
        let mut twiddles = vec![Fr::ZERO; half];
        twiddles.par_chunks_mut(CHUNK).enumerate().for_each(|(k, chunk)| {
            let mut w = omega.pow_vartime([(k * CHUNK) as u64]);
            for t in chunk {
                *t = w;
                w *= omega;
            }
        });
        Ok(Domain { log, twiddles })
    }

    /// m.
    pub fn size(&self) -> usize {
        1 << self.log
    }

    /// Unscaled inverse DFT (ω⁻¹), natural order in, bit-reversed out.
    pub fn inverse_dif(&self, x: &mut [Fr]) {
        assert_eq!(x.len(), self.size());
        self.dif(limbs_mut(x), 0);
    }

    /// (a − b)·ω^(−(j·2^s)).
    #[inline(always)]
    fn diff_times_inverse_twiddle(&self, a: Mont, b: Mont, j: usize, s: u32) -> Mont {
        // ω^(−k) = −ω^(m/2 − k) for k ≥ 1, since ω^(m/2) = −1.
        if j == 0 {
            a - b
        } else {
            (b - a) * limbs(&self.twiddles)[self.twiddles.len() - (j << s)]
        }
    }

    /// b·ω^(j·2^s).
    #[inline(always)]
    fn times_twiddle(&self, b: Mont, j: usize, s: u32) -> Mont {
        if j == 0 {
            b
        } else {
            b * limbs(&self.twiddles)[j << s]
        }
    }

    fn dif(&self, x: &mut [Mont], s: u32) {
        let n = x.len();
        if n < 2 {
            return;
        }
        if n >= FUSE_FROM {
            // Two levels in one pass over memory, then the four quarters.
            let q = n / 4;
            let (x01, x23) = x.split_at_mut(2 * q);
            let (x0, x1) = x01.split_at_mut(q);
            let (x2, x3) = x23.split_at_mut(q);
            x0.par_chunks_mut(CHUNK)
                .zip(x1.par_chunks_mut(CHUNK))
                .zip(x2.par_chunks_mut(CHUNK))
                .zip(x3.par_chunks_mut(CHUNK))
                .enumerate()
                .for_each(|(k, (((c0, c1), c2), c3))| {
                    for (i, (((a0, a1), a2), a3)) in
                        c0.iter_mut().zip(c1.iter_mut()).zip(c2.iter_mut()).zip(c3.iter_mut()).enumerate()
                    {
                        let j = k * CHUNK + i;
                        let (y0, y2) = (*a0 + *a2, self.diff_times_inverse_twiddle(*a0, *a2, j, s));
                        let (y1, y3) = (*a1 + *a3, self.diff_times_inverse_twiddle(*a1, *a3, j + q, s));
                        *a0 = y0 + y1;
                        *a1 = self.diff_times_inverse_twiddle(y0, y1, j, s + 1);
                        *a2 = y2 + y3;
                        *a3 = self.diff_times_inverse_twiddle(y2, y3, j, s + 1);
                    }
                });
            rayon::join(
                || rayon::join(|| self.dif(x0, s + 2), || self.dif(x1, s + 2)),
                || rayon::join(|| self.dif(x2, s + 2), || self.dif(x3, s + 2)),
            );
            return;
        }
        let (lo, hi) = x.split_at_mut(n / 2);
        let butterflies = |offset: usize, lo: &mut [Mont], hi: &mut [Mont]| {
            for (j, (u, v)) in lo.iter_mut().zip(hi.iter_mut()).enumerate() {
                let (a, b) = (*u, *v);
                *u = a + b;
                *v = self.diff_times_inverse_twiddle(a, b, offset + j, s);
            }
        };
        if n >= PARALLEL_FROM {
            lo.par_chunks_mut(CHUNK)
                .zip(hi.par_chunks_mut(CHUNK))
                .enumerate()
                .for_each(|(k, (l, h))| butterflies(k * CHUNK, l, h));
            rayon::join(|| self.dif(lo, s + 1), || self.dif(hi, s + 1));
        } else {
            butterflies(0, lo, hi);
            self.dif(lo, s + 1);
            self.dif(hi, s + 1);
        }
    }

    /// DFT (ω), bit-reversed order in, natural out.
    pub fn forward_dit(&self, x: &mut [Fr]) {
        assert_eq!(x.len(), self.size());
        self.dit(limbs_mut(x), 0);
    }

    fn dit(&self, x: &mut [Mont], s: u32) {
        let n = x.len();
        if n < 2 {
            return;
        }
        if n >= FUSE_FROM {
            // The four quarters, then two levels in one pass over memory.
            let q = n / 4;
            let (x01, x23) = x.split_at_mut(2 * q);
            let (x0, x1) = x01.split_at_mut(q);
            let (x2, x3) = x23.split_at_mut(q);
            rayon::join(
                || rayon::join(|| self.dit(x0, s + 2), || self.dit(x1, s + 2)),
                || rayon::join(|| self.dit(x2, s + 2), || self.dit(x3, s + 2)),
            );
            x0.par_chunks_mut(CHUNK)
                .zip(x1.par_chunks_mut(CHUNK))
                .zip(x2.par_chunks_mut(CHUNK))
                .zip(x3.par_chunks_mut(CHUNK))
                .enumerate()
                .for_each(|(k, (((c0, c1), c2), c3))| {
                    for (i, (((a0, a1), a2), a3)) in
                        c0.iter_mut().zip(c1.iter_mut()).zip(c2.iter_mut()).zip(c3.iter_mut()).enumerate()
                    {
                        let j = k * CHUNK + i;
                        let t1 = self.times_twiddle(*a1, j, s + 1);
                        let (y0, y1) = (*a0 + t1, *a0 - t1);
                        let t3 = self.times_twiddle(*a3, j, s + 1);
                        let (y2, y3) = (*a2 + t3, *a2 - t3);
                        let t2 = self.times_twiddle(y2, j, s);
                        let t3 = self.times_twiddle(y3, j + q, s);
                        *a0 = y0 + t2;
                        *a2 = y0 - t2;
                        *a1 = y1 + t3;
                        *a3 = y1 - t3;
                    }
                });
            return;
        }
        let (lo, hi) = x.split_at_mut(n / 2);
        let butterflies = |offset: usize, lo: &mut [Mont], hi: &mut [Mont]| {
            for (j, (u, v)) in lo.iter_mut().zip(hi.iter_mut()).enumerate() {
                let a = *u;
                let b = self.times_twiddle(*v, offset + j, s);
                *u = a + b;
                *v = a - b;
            }
        };
        if n >= PARALLEL_FROM {
            rayon::join(|| self.dit(lo, s + 1), || self.dit(hi, s + 1));
            lo.par_chunks_mut(CHUNK)
                .zip(hi.par_chunks_mut(CHUNK))
                .enumerate()
                .for_each(|(k, (l, h))| butterflies(k * CHUNK, l, h));
        } else {
            self.dit(lo, s + 1);
            self.dit(hi, s + 1);
            butterflies(0, lo, hi);
        }
    }

    /// Multiplies the bit-reversed coefficient vector `x` (position i holds
    /// coefficient bitrev(i)) by factor · base^bitrev(i).
    fn scale_bit_reversed(&self, x: &mut [Fr], base: Fr, factor: Fr) {
        let powers = Powers::new(base, factor, self.log);
        let log = self.log;
        limbs_mut(x).par_chunks_mut(CHUNK).enumerate().for_each(|(k, chunk)| {
            for (i, v) in chunk.iter_mut().enumerate() {
                *v = *v * powers.get(bit_reverse(k * CHUNK + i, log));
            }
        });
    }
}

/// factor · base^e for e < 2^log, from two small tables.
struct Powers {
    low: Vec<Fr>,
    high: Vec<Fr>,
}

impl Powers {
    fn new(base: Fr, factor: Fr, log: u32) -> Self {
        let low_bits = POW_LOW_BITS.min(log);
        let table = |start: Fr, step: Fr, len: usize| {
            std::iter::successors(Some(start), |p| Some(*p * step)).take(len).collect::<Vec<_>>()
        };
        let low = table(Fr::ONE, base, 1 << low_bits);
        let high = table(factor, base.pow_vartime([1u64 << low_bits]), 1 << (log - low_bits));
        Powers { low, high }
    }

    #[inline]
    fn get(&self, e: usize) -> Mont {
        let low_bits = self.low.len().trailing_zeros();
        limbs(&self.high)[e >> low_bits] * limbs(&self.low)[e & (self.low.len() - 1)]
    }
}

#[inline]
fn bit_reverse(i: usize, log: u32) -> usize {
    if log == 0 {
        0
    } else {
        i.reverse_bits() >> (usize::BITS - log)
    }
}

/// Puts a bit-reversed vector in natural order.
fn permute_bit_reversed(x: &mut [Fr], log: u32) {
    for i in 0..x.len() {
        let j = bit_reverse(i, log);
        if i < j {
            x.swap(i, j);
        }
    }
}

/// factor · x^i for i < n.
pub fn powers(x: Fr, factor: Fr, n: usize) -> Vec<Fr> {
    let mut out = vec![Fr::ZERO; n];
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(k, chunk)| {
        let mut p = factor * x.pow_vartime([(k * CHUNK) as u64]);
        for v in chunk {
            *v = p;
            p *= x;
        }
    });
    out
}

/// L_i(τ) for every point ω^i of the domain: the inverse DFT of the powers
/// of τ, as bellperson's setup computes them.
pub fn lagrange_at(domain: &Domain, tau: Fr) -> Vec<Fr> {
    let m = domain.size();
    let mut v = powers(tau, Fr::ONE, m);
    domain.inverse_dif(&mut v);
    let m_inv = Fr::from(m as u64).invert().expect("m is a power of two below the field's order");
    v.par_iter_mut().for_each(|x| *x *= m_inv);
    permute_bit_reversed(&mut v, domain.log);
    v
}

/// The m − 1 coefficients of h = (a·b − c)/z, m the domain size, from the
/// evaluations of a, b, c at the constraints (zero beyond them).
pub fn quotient(mut a: Vec<Fr>, mut b: Vec<Fr>, mut c: Vec<Fr>) -> Result<Vec<Fr>> {
    let domain = Domain::for_len(a.len().max(b.len()).max(c.len()))?;
    let m = domain.size();
    let g = Fr::MULTIPLICATIVE_GENERATOR;
    let m_inv = Fr::from(m as u64).invert().expect("m is a power of two below the field's order");
    // Evaluations over g·⟨ω⟩: coefficients, times g^j, transformed again.
    for v in [&mut a, &mut b, &mut c] {
        v.resize(m, Fr::ZERO);
        domain.inverse_dif(v);
        domain.scale_bit_reversed(v, g, m_inv);
        domain.forward_dit(v);
    }
    // z(x) = x^m − 1 is the constant g^m − 1 on the coset.
    let z_inv = (g.pow_vartime([m as u64]) - Fr::ONE).invert().expect("g is not an m-th root of unity");
    let z_inv = mont(z_inv);
    limbs_mut(&mut a).par_iter_mut().zip(limbs(&b).par_iter()).zip(limbs(&c).par_iter()).for_each(
        |((a, b), c)| {
            *a = (*a * *b - *c) * z_inv;
        },
    );
    drop((b, c));
    domain.inverse_dif(&mut a);
    domain.scale_bit_reversed(&mut a, g.invert().expect("g is nonzero"), m_inv);
    permute_bit_reversed(&mut a, domain.log);
    // deg h ≤ m − 2: the top coefficient is zero and has no base.
    a.truncate(m - 1);
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn naive_dft(x: &[Fr], omega: Fr) -> Vec<Fr> {
        (0..x.len())
            .map(|k| {
                let w = omega.pow_vartime([k as u64]);
                x.iter().rev().fold(Fr::ZERO, |acc, v| acc * w + v)
            })
            .collect()
    }

    #[test]
    fn transforms_match_the_definition() {
        let mut rng = StdRng::seed_from_u64(9);
        for log in 0..8 {
            let d = Domain::for_len(1 << log).unwrap();
            let x: Vec<Fr> = (0..1 << log).map(|_| Fr::random(&mut rng)).collect();
            let omega = if log == 0 { Fr::ONE } else { d.twiddles.get(1).copied().unwrap_or(-Fr::ONE) };
            let mut inv = x.clone();
            d.inverse_dif(&mut inv);
            permute_bit_reversed(&mut inv, log);
            assert_eq!(inv, naive_dft(&x, omega.invert().unwrap()), "inverse, log {log}");
            let mut fwd = x.clone();
            permute_bit_reversed(&mut fwd, log);
            d.forward_dit(&mut fwd);
            assert_eq!(fwd, naive_dft(&x, omega), "forward, log {log}");
        }
    }

    /// bellperson's quotient, the oracle.
    fn bellperson_quotient(a: Vec<Fr>, b: Vec<Fr>, c: Vec<Fr>) -> Vec<Fr> {
        use bellperson::domain::EvaluationDomain;
        let worker = ec_gpu_gen::threadpool::Worker::new();
        let mut a = EvaluationDomain::from_coeffs(a).unwrap();
        let mut b = EvaluationDomain::from_coeffs(b).unwrap();
        let mut c = EvaluationDomain::from_coeffs(c).unwrap();
        EvaluationDomain::ifft_many(&mut [&mut a, &mut b, &mut c], &worker, &mut None).unwrap();
        EvaluationDomain::coset_fft_many(&mut [&mut a, &mut b, &mut c], &worker, &mut None).unwrap();
        a.mul_assign(&worker, &b);
        a.sub_assign(&worker, &c);
        a.divide_by_z_on_coset(&worker);
        a.icoset_fft(&worker, &mut None).unwrap();
        let mut h = a.into_coeffs();
        h.truncate(h.len() - 1);
        h
    }

    #[test]
    fn quotient_equals_bellpersons() {
        let mut rng = StdRng::seed_from_u64(10);
        // Sizes below, at and across the parallel threshold; a power of two and not.
        // Up to two fused passes (FUSE_FROM · 8 → quarters → quarters).
        for len in [1usize, 2, 3, 100, 1024, 5000, PARALLEL_FROM * 2 + 7, FUSE_FROM * 4 + 1] {
            let v = |rng: &mut StdRng| (0..len).map(|_| Fr::random(&mut *rng)).collect::<Vec<_>>();
            let (a, b) = (v(&mut rng), v(&mut rng));
            // c = a·b at the constraints makes h a polynomial, as in a proof;
            // random c checks the arithmetic off that case too.
            let c_sat: Vec<Fr> = a.iter().zip(&b).map(|(a, b)| *a * b).collect();
            let c_rand = v(&mut rng);
            for c in [c_sat, c_rand] {
                let ours = quotient(a.clone(), b.clone(), c.clone()).unwrap();
                assert_eq!(ours, bellperson_quotient(a.clone(), b.clone(), c), "len {len}");
            }
        }
    }

    #[test]
    fn powers_and_bit_reversal() {
        let base = Fr::from(3u64);
        let p = Powers::new(base, Fr::from(5u64), 14);
        for e in [0usize, 1, 2047, 2048, 2049, 16383] {
            assert_eq!(p.get(e), mont(Fr::from(5u64) * base.pow_vartime([e as u64])));
        }
        assert_eq!(bit_reverse(1, 3), 4);
        assert_eq!(bit_reverse(6, 3), 3);
        assert_eq!(bit_reverse(0, 0), 0);
    }
}
