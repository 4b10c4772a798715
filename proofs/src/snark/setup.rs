//! Groth16 parameter generation for test setups: bellperson's
//! `generate_random_parameters`, computed faster.
//!
//! Same toxic waste drawn from the RNG in the same order (g₁, g₂, α, β, γ, δ,
//! τ), same points, same files: a seed gives byte for byte the file bellperson
//! (and so the reference) writes for it (tested). What differs is the cost:
//! bellperson multiplies each of the ~10 million bases by its scalar with a
//! wNAF (255 doublings and some additions apiece); here every multiplication
//! is by the same generator, so a comb table of its multiples
//! (d·2^(w·i)·g for every w-bit digit d) turns each into ⌈255/w⌉ additions
//! and no doublings. The QAP is evaluated at τ while the circuit is
//! synthesised a second time, instead of storing every term of every
//! constraint.

use super::fft::{lagrange_at, powers, Domain};
use super::msm::Curve;
use crate::error::{Error, Result};
use bellperson::groth16::{Parameters, VerifyingKey};
use bellperson::{Circuit, ConstraintSystem, Index, LinearCombination, SynthesisError, Variable};
use blstrs::{Bls12, G1Affine, G1Projective, G2Affine, G2Projective, Scalar as Fr};
use ff::{Field, PrimeField};
use group::prime::PrimeCurveAffine;
use group::{Curve as _, Group};
use rand_core::RngCore;
use rayon::prelude::*;
use std::ops::AddAssign;
use std::sync::Arc;
use std::time::Instant;
use tracing::{debug, info_span};

/// Bits per comb digit: tables of ⌈255/w⌉ · (2^w − 1) points (2.6 MB in G1,
/// 5.1 MB in G2 at w = 10); one window's table (98 KB, 196 KB) stays in
/// cache while a batch of scalars walks it.
const WINDOW: usize = 10;
/// Scalars multiplied per batch (window by window).
const BATCH: usize = 1 << 11;

/// Toxic waste: the trapdoors of the setup.
struct Trapdoors {
    g1: G1Projective,
    g2: G2Projective,
    alpha: Fr,
    beta: Fr,
    gamma: Fr,
    delta: Fr,
    tau: Fr,
}

impl Trapdoors {
    /// Drawn as bellperson draws them.
    fn draw(rng: &mut impl RngCore) -> Self {
        Self {
            g1: G1Projective::random(&mut *rng),
            g2: G2Projective::random(&mut *rng),
            alpha: Fr::random(&mut *rng),
            beta: Fr::random(&mut *rng),
            gamma: Fr::random(&mut *rng),
            delta: Fr::random(&mut *rng),
            tau: Fr::random(&mut *rng),
        }
    }
}

/// Generates parameters for `circuit` with toxic waste from `rng`: a test
/// setup (whoever knows the RNG's seed can forge proofs).
pub fn generate_random_parameters<C: Circuit<Fr> + Clone>(
    circuit: C,
    rng: &mut impl RngCore,
) -> Result<Parameters<Bls12>> {
    let _span = info_span!("groth16_setup").entered();
    let t = Trapdoors::draw(rng);
    let synthesis = |e: SynthesisError| Error::Snark(format!("parameter generation: {e}"));

    let started = Instant::now();
    // First pass: counts only (no Lagrange values, no slots to sum into).
    let mut count = Qap::new(Vec::new(), 0, 0);
    count.alloc_input(|| "one", || Ok(Fr::ONE)).map_err(synthesis)?;
    circuit.clone().synthesize(&mut count).map_err(synthesis)?;
    // One `input · 0 = 0` constraint per input, as the prover adds them.
    let constraints = count.constraints + count.inputs;
    let domain = Domain::for_len(constraints)?;
    let m = domain.size();
    debug!(constraints, inputs = count.inputs, aux = count.aux, m, "counted");

    let g1_table = Comb::new(t.g1);
    let g2_table = Comb::new(t.g2);
    let gamma_inv =
        Option::<Fr>::from(t.gamma.invert()).ok_or_else(|| synthesis(SynthesisError::UnexpectedIdentity))?;
    let delta_inv =
        Option::<Fr>::from(t.delta.invert()).ok_or_else(|| synthesis(SynthesisError::UnexpectedIdentity))?;

    // H: g₁^(τ^i · t(τ)/δ) for i < m − 1, t(τ) = τ^m − 1.
    let coeff = (t.tau.pow_vartime([m as u64]) - Fr::ONE) * delta_inv;
    let h_scalars = powers(t.tau, coeff, m - 1);
    let h = g1_table.mul_many(&h_scalars);
    drop(h_scalars);
    debug!(secs = started.elapsed().as_secs_f64(), "H query");

    // The QAP's polynomials at τ, per variable.
    let lagrange = lagrange_at(&domain, t.tau);
    let mut qap = Qap::new(lagrange, count.inputs, count.aux);
    qap.alloc_input(|| "one", || Ok(Fr::ONE)).map_err(synthesis)?;
    circuit.synthesize(&mut qap).map_err(synthesis)?;
    for i in 0..qap.inputs {
        qap.enforce(|| "input", |lc| lc + Variable::new_unchecked(Index::Input(i)), |lc| lc, |lc| lc);
    }
    if qap.constraints != constraints || qap.aux != count.aux || qap.inputs != count.inputs {
        return Err(Error::Snark("the circuit synthesised differently twice".into()));
    }
    debug!(secs = started.elapsed().as_secs_f64(), "QAP evaluated");

    // A, B: g^u(τ), g^v(τ) (zero ones are dropped from the file); IC and L:
    // g₁^((β·u + α·v + w)/γ) for inputs, /δ for aux.
    let a = g1_table.mul_many(&qap.at);
    let b_g1 = g1_table.mul_many(&qap.bt);
    let b_g2 = g2_table.mul_many(&qap.bt);
    let ext: Vec<Fr> = qap
        .at
        .par_iter()
        .zip(&qap.bt)
        .zip(&qap.ct)
        .enumerate()
        .map(|(i, ((u, v), w))| {
            (t.beta * u + t.alpha * v + w) * if i < qap.inputs { gamma_inv } else { delta_inv }
        })
        .collect();
    let ext = g1_table.mul_many(&ext);
    debug!(secs = started.elapsed().as_secs_f64(), "A, B, IC and L queries");
    let (ic, l) = ext.split_at(qap.inputs);
    if l.iter().any(|p| bool::from(p.is_identity())) {
        return Err(synthesis(SynthesisError::UnconstrainedVariable));
    }
    let non_identity =
        |v: Vec<_>| v.into_iter().filter(|p: &G1Affine| !bool::from(p.is_identity())).collect::<Vec<_>>();

    let (g1, g2) = (t.g1.to_affine(), t.g2.to_affine());
    let vk = VerifyingKey::<Bls12> {
        alpha_g1: (g1 * t.alpha).to_affine(),
        beta_g1: (g1 * t.beta).to_affine(),
        beta_g2: (g2 * t.beta).to_affine(),
        gamma_g2: (g2 * t.gamma).to_affine(),
        delta_g1: (g1 * t.delta).to_affine(),
        delta_g2: (g2 * t.delta).to_affine(),
        ic: ic.to_vec(),
    };
    Ok(Parameters {
        vk,
        h: Arc::new(h),
        l: Arc::new(l.to_vec()),
        a: Arc::new(non_identity(a)),
        b_g1: Arc::new(non_identity(b_g1)),
        b_g2: Arc::new(b_g2.into_iter().filter(|p: &G2Affine| !bool::from(p.is_identity())).collect()),
    })
}

/// Multiples of one base for fixed-base multiplication: `digits[i][d − 1]` =
/// d · 2^(WINDOW·i) · base.
struct Comb<G: Curve> {
    digits: Vec<Vec<G::Affine>>,
}

impl<G> Comb<G>
where
    G: Curve + for<'a> AddAssign<&'a G::Affine>,
    G::Affine: Default,
{
    fn new(base: G) -> Self {
        let windows = (Fr::NUM_BITS as usize).div_ceil(WINDOW);
        let digits = (0..windows)
            .into_par_iter()
            .map(|i| {
                let mut window_base = base;
                for _ in 0..WINDOW * i {
                    window_base = window_base.double();
                }
                let multiples: Vec<G> = std::iter::successors(Some(window_base), |p| Some(*p + window_base))
                    .take((1 << WINDOW) - 1)
                    .collect();
                let mut affine = vec![G::Affine::default(); multiples.len()];
                G::batch_to_affine(&multiples, &mut affine);
                affine
            })
            .collect();
        Comb { digits }
    }

    /// scalar · base for each scalar, in affine form.
    fn mul_many(&self, scalars: &[Fr]) -> Vec<G::Affine> {
        let mut out = vec![G::Affine::default(); scalars.len()];
        out.par_chunks_mut(BATCH).zip(scalars.par_chunks(BATCH)).for_each(|(out, scalars)| {
            let bytes: Vec<[u8; 32]> = scalars.iter().map(Fr::to_bytes_le).collect();
            let mut acc = vec![G::identity(); scalars.len()];
            for (i, table) in self.digits.iter().enumerate() {
                for (acc, bytes) in acc.iter_mut().zip(&bytes) {
                    let d = digit(bytes, i * WINDOW);
                    if d != 0 {
                        *acc += &table[d - 1];
                    }
                }
            }
            G::batch_to_affine(&acc, out);
        });
        out
    }
}

/// The WINDOW bits of a little-endian 256-bit integer from bit `start`.
fn digit(bytes: &[u8; 32], start: usize) -> usize {
    let byte = start / 8;
    let mut word = [0u8; 8];
    let end = (byte + 8).min(32);
    word[..end - byte].copy_from_slice(&bytes[byte..end]);
    ((u64::from_le_bytes(word) >> (start % 8)) as usize) & ((1 << WINDOW) - 1)
}

/// u(τ), v(τ), w(τ) of every variable (inputs first, then aux), summed as
/// the constraints arrive: u_j(τ) = Σ_i A_ij · L_i(τ). Built empty, it only
/// counts inputs, aux variables and constraints.
struct Qap {
    lagrange: Vec<Fr>,
    at: Vec<Fr>,
    bt: Vec<Fr>,
    ct: Vec<Fr>,
    /// Inputs allocated so far; `at` etc. hold `total_inputs` input slots.
    inputs: usize,
    total_inputs: usize,
    aux: usize,
    constraints: usize,
}

impl Qap {
    fn new(lagrange: Vec<Fr>, inputs: usize, aux: usize) -> Self {
        let n = inputs + aux;
        Qap {
            lagrange,
            at: vec![Fr::ZERO; n],
            bt: vec![Fr::ZERO; n],
            ct: vec![Fr::ZERO; n],
            inputs: 0,
            total_inputs: inputs,
            aux: 0,
            constraints: 0,
        }
    }
}

/// Adds the constraint's terms, weighted by its Lagrange value, to `into`.
fn accumulate(lc: &LinearCombination<Fr>, weight: Fr, total_inputs: usize, into: &mut [Fr]) {
    for (var, coeff) in lc.iter() {
        let slot = match var.get_unchecked() {
            Index::Input(i) => i,
            Index::Aux(i) => total_inputs + i,
        };
        // A count off between the two syntheses is caught after the second.
        if let Some(v) = into.get_mut(slot) {
            *v += if *coeff == Fr::ONE { weight } else { weight * coeff };
        }
    }
}

impl ConstraintSystem<Fr> for Qap {
    type Root = Self;
    fn alloc<F, A, AR>(&mut self, _: A, _: F) -> Result<Variable, SynthesisError>
    where
        F: FnOnce() -> Result<Fr, SynthesisError>,
        A: FnOnce() -> AR,
        AR: Into<String>,
    {
        self.aux += 1;
        Ok(Variable::new_unchecked(Index::Aux(self.aux - 1)))
    }
    fn alloc_input<F, A, AR>(&mut self, _: A, _: F) -> Result<Variable, SynthesisError>
    where
        F: FnOnce() -> Result<Fr, SynthesisError>,
        A: FnOnce() -> AR,
        AR: Into<String>,
    {
        self.inputs += 1;
        Ok(Variable::new_unchecked(Index::Input(self.inputs - 1)))
    }
    fn enforce<A, AR, LA, LB, LC>(&mut self, _: A, a: LA, b: LB, c: LC)
    where
        A: FnOnce() -> AR,
        AR: Into<String>,
        LA: FnOnce(LinearCombination<Fr>) -> LinearCombination<Fr>,
        LB: FnOnce(LinearCombination<Fr>) -> LinearCombination<Fr>,
        LC: FnOnce(LinearCombination<Fr>) -> LinearCombination<Fr>,
    {
        if self.lagrange.is_empty() {
            // Counting pass: the linear combinations are not even built.
            self.constraints += 1;
            return;
        }
        let weight = self.lagrange.get(self.constraints).copied().unwrap_or(Fr::ZERO);
        accumulate(&a(LinearCombination::zero()), weight, self.total_inputs, &mut self.at);
        accumulate(&b(LinearCombination::zero()), weight, self.total_inputs, &mut self.bt);
        accumulate(&c(LinearCombination::zero()), weight, self.total_inputs, &mut self.ct);
        self.constraints += 1;
    }
    fn push_namespace<NR, N>(&mut self, _: N)
    where
        NR: Into<String>,
        N: FnOnce() -> NR,
    {
    }
    fn pop_namespace(&mut self) {}
    fn get_root(&mut self) -> &mut Self::Root {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_cover_the_scalar() {
        let s = Fr::random(&mut rand::thread_rng());
        let bytes = s.to_bytes_le();
        let windows = (Fr::NUM_BITS as usize).div_ceil(WINDOW);
        let mut back = Fr::ZERO;
        let radix = Fr::from(1u64 << WINDOW);
        for i in (0..windows).rev() {
            back = back * radix + Fr::from(digit(&bytes, i * WINDOW) as u64);
        }
        assert_eq!(back, s);
    }
}
