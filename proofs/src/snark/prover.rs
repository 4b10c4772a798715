//! Kiln's Groth16 prover: bellperson's synthesis order and parameter files,
//! kiln's arithmetic for the multi-scalar multiplications.
//!
//! For the same circuit, parameter file and randomness (r, s) it gives the same
//! proof as `bellperson::groth16::create_proof_batch`: both compute the same
//! group elements (tested byte for byte). Circuits are proved one at a time,
//! so memory holds one witness, not one per partition.

use super::fft;
use super::key::ProvingKey;
use super::msm::{msm, Terms};
use super::witness::Witness;
use crate::error::{Error, Result};
use bellperson::groth16::Proof;
use bellperson::Circuit;
use blstrs::{Bls12, G1Projective, G2Projective, Scalar as Fr};
use ff::Field;
use group::{prime::PrimeCurveAffine, Curve};
use rand_core::RngCore;
use std::time::Instant;
use tracing::{debug, info, info_span};

/// Proves each circuit with fresh randomness, drawn as bellperson's
/// `create_random_proof_batch` draws it (every r, then every s).
pub fn prove<C: Circuit<Fr>>(
    circuits: Vec<C>,
    params: &ProvingKey,
    rng: &mut impl RngCore,
) -> Result<Vec<Proof<Bls12>>> {
    let r: Vec<Fr> = circuits.iter().map(|_| Fr::random(&mut *rng)).collect();
    let s: Vec<Fr> = circuits.iter().map(|_| Fr::random(&mut *rng)).collect();
    circuits.into_iter().zip(r.into_iter().zip(s)).map(|(c, (r, s))| prove_one(c, params, r, s)).collect()
}

/// Proves each circuit on the GPUs through bellperson's CUDA prover, with the
/// randomness drawn as [`prove`] draws it: the same proofs as [`prove`] for the
/// same `rng`. The caller holds the GPUs ([`crate::gpu::lease_all`]).
#[cfg(feature = "gpu")]
pub fn prove_gpu<C: Circuit<Fr> + Send>(
    circuits: Vec<C>,
    params: &ProvingKey,
    rng: &mut impl RngCore,
) -> Result<Vec<Proof<Bls12>>> {
    let _span = info_span!("groth16_gpu").entered();
    let vk = &params.vk;
    if bool::from(vk.delta_g1.is_identity() | vk.delta_g2.is_identity()) {
        return Err(Error::Snark("the parameters' delta is the identity (a subverted setup)".into()));
    }
    let r: Vec<Fr> = circuits.iter().map(|_| Fr::random(&mut *rng)).collect();
    let s: Vec<Fr> = circuits.iter().map(|_| Fr::random(&mut *rng)).collect();
    let path = params.path();
    let mapped = bellperson::groth16::Parameters::<Bls12>::build_mapped_parameters(path.to_path_buf(), false)
        .map_err(|e| Error::Params {
            path: path.to_path_buf(),
            reason: format!("mapping for the GPU prover: {e}"),
        })?;
    let t = Instant::now();
    let proofs = bellperson::groth16::create_proof_batch(circuits, &mapped, r, s)
        .map_err(|e| Error::Gpu(format!("bellperson's GPU prover: {e}")))?;
    info!(secs = t.elapsed().as_secs_f64(), "proved on the GPU");
    Ok(proofs)
}

/// Refuses a parameter file whose queries do not have the lengths this
/// witness needs (a file of another circuit would give proofs that never
/// verify).
fn check_fit(params: &ProvingKey, w: &Witness, h_len: usize) -> Result<()> {
    let count = |d: &[bool]| d.iter().filter(|&&x| x).count();
    let b = count(&w.b_input_density) + count(&w.b_aux_density);
    let want = [
        ("IC", params.vk.ic.len(), w.inputs.len()),
        ("H", params.h.len(), h_len),
        ("L", params.l.len(), w.aux.len()),
        ("A", params.a.len(), w.inputs.len() + count(&w.a_aux_density)),
        ("B in G1", params.b_g1.len(), b),
        ("B in G2", params.b_g2.len(), b),
    ];
    for (query, has, needs) in want {
        if has != needs {
            return Err(Error::Snark(format!(
                "the parameters do not fit this circuit: query {query} has {has} bases, the witness needs {needs}"
            )));
        }
    }
    Ok(())
}

/// Proves one circuit with the randomness `r`, `s`.
pub fn prove_one<C: Circuit<Fr>>(circuit: C, params: &ProvingKey, r: Fr, s: Fr) -> Result<Proof<Bls12>> {
    let _span = info_span!("groth16").entered();
    let vk = &params.vk;
    if bool::from(vk.delta_g1.is_identity() | vk.delta_g2.is_identity()) {
        return Err(Error::Snark("the parameters' delta is the identity (a subverted setup)".into()));
    }
    let t = Instant::now();
    let mut w = Witness::synthesize(circuit).map_err(|e| Error::Snark(format!("synthesis: {e}")))?;
    info!(
        constraints = w.a.len(),
        inputs = w.inputs.len(),
        aux = w.aux.len(),
        secs = t.elapsed().as_secs_f64(),
        "circuit synthesised"
    );

    // h has m − 1 coefficients, m the domain size (a power of two).
    check_fit(params, &w, w.a.len().max(1).next_power_of_two() - 1)?;
    let t = Instant::now();
    let h = fft::quotient(std::mem::take(&mut w.a), std::mem::take(&mut w.b), std::mem::take(&mut w.c))?;
    debug!(terms = h.len(), secs = t.elapsed().as_secs_f64(), "quotient");

    let map = params.bytes();
    let t = Instant::now();
    let mut h_terms = Terms::default();
    for (i, v) in h.iter().enumerate() {
        h_terms.push(i, v);
    }
    drop(h);
    let g_h: G1Projective = msm(map, &params.h, &h_terms, "H")?;
    drop(h_terms);
    debug!(secs = t.elapsed().as_secs_f64(), "msm H");

    let t = Instant::now();
    let mut l_terms = Terms::default();
    for (i, v) in w.aux.iter().enumerate() {
        l_terms.push(i, v);
    }
    let g_l: G1Projective = msm(map, &params.l, &l_terms, "L")?;
    debug!(ones = l_terms.counts().0, others = l_terms.counts().1, secs = t.elapsed().as_secs_f64(), "msm L");
    drop(l_terms);

    // A's bases: every input, then the aux variables that occur in some A.
    let t = Instant::now();
    let mut a_terms = Terms::default();
    for (i, v) in w.inputs.iter().enumerate() {
        a_terms.push(i, v);
    }
    let dense = w.aux.iter().zip(&w.a_aux_density).filter(|(_, &d)| d).map(|(v, _)| v);
    for (rank, v) in dense.enumerate() {
        a_terms.push(w.inputs.len() + rank, v);
    }
    let g_a_sum: G1Projective = msm(map, &params.a, &a_terms, "A")?;
    drop(a_terms);
    debug!(secs = t.elapsed().as_secs_f64(), "msm A");

    // B's bases: the inputs, then the aux variables, that occur in some B.
    let t = Instant::now();
    let mut b_terms = Terms::default();
    let dense_inputs = w.inputs.iter().zip(&w.b_input_density).filter(|(_, &d)| d).map(|(v, _)| v);
    let mut rank = 0;
    for v in dense_inputs {
        b_terms.push(rank, v);
        rank += 1;
    }
    let dense_aux = w.aux.iter().zip(&w.b_aux_density).filter(|(_, &d)| d).map(|(v, _)| v);
    for v in dense_aux {
        b_terms.push(rank, v);
        rank += 1;
    }
    drop(w);
    let g_b1_sum: G1Projective = msm(map, &params.b_g1, &b_terms, "B in G1")?;
    debug!(secs = t.elapsed().as_secs_f64(), "msm B in G1");
    let t = Instant::now();
    let g_b2_sum: G2Projective = msm(map, &params.b_g2, &b_terms, "B in G2")?;
    debug!(secs = t.elapsed().as_secs_f64(), "msm B in G2");

    // A = α + ΣA + rδ, B = β + ΣB + sδ,
    // C = ΣH + ΣL + s·ΣA + r·ΣB₁ + sα + rβ + rsδ.
    let g_a = vk.alpha_g1.to_curve() + g_a_sum + vk.delta_g1 * r;
    let g_b = vk.beta_g2.to_curve() + g_b2_sum + vk.delta_g2 * s;
    let g_c =
        g_h + g_l + g_a_sum * s + g_b1_sum * r + vk.alpha_g1 * s + vk.beta_g1 * r + vk.delta_g1 * (r * s);
    Ok(Proof { a: g_a.to_affine(), b: g_b.to_affine(), c: g_c.to_affine() })
}
