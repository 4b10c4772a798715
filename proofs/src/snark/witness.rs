//! Synthesis for the prover: the circuit's constraints evaluated at the
//! witness, in bellperson's order, with the densities of the A and B queries.
//!
//! The result is the same `ProvingAssignment` bellperson builds (same
//! constraint order, the `input · 0 = 0` constraints appended, the same density
//! rules), so the same parameter files serve it.

use bellperson::{Circuit, ConstraintSystem, Index, LinearCombination, SynthesisError, Variable};
use blstrs::Scalar as Fr;
use ff::Field;

/// One circuit's witness and its QAP evaluations.
#[derive(Debug, Default)]
pub struct Witness {
    /// A of every constraint, evaluated at the witness.
    pub a: Vec<Fr>,
    /// B of every constraint, evaluated at the witness.
    pub b: Vec<Fr>,
    /// C of every constraint, evaluated at the witness.
    pub c: Vec<Fr>,
    /// Public inputs, the constant one first.
    pub inputs: Vec<Fr>,
    /// Private (auxiliary) variables.
    pub aux: Vec<Fr>,
    /// Whether an aux variable occurs in some A (inputs always do).
    pub a_aux_density: Vec<bool>,
    /// Whether an input occurs in some B.
    pub b_input_density: Vec<bool>,
    /// Whether an aux variable occurs in some B.
    pub b_aux_density: Vec<bool>,
}

impl Witness {
    /// Synthesises `circuit` as bellperson's prover does.
    pub fn synthesize<C: Circuit<Fr>>(circuit: C) -> Result<Self, SynthesisError> {
        let mut w = Witness::default();
        w.alloc_input(|| "one", || Ok(Fr::ONE))?;
        circuit.synthesize(&mut w)?;
        // Inputs get full density in A this way (bellperson's rule).
        for i in 0..w.inputs.len() {
            w.enforce(|| "input", |lc| lc + Variable::new_unchecked(Index::Input(i)), |lc| lc, |lc| lc);
        }
        Ok(w)
    }
}

/// Σ coeff · value over the terms with a nonzero coefficient, marking the
/// variables seen in the density maps given.
fn eval(
    lc: &LinearCombination<Fr>,
    inputs: &[Fr],
    aux: &[Fr],
    mut input_density: Option<&mut [bool]>,
    mut aux_density: Option<&mut [bool]>,
) -> Fr {
    let mut acc = Fr::ZERO;
    let mut term = |value: Fr, coeff: &Fr| {
        acc += if *coeff == Fr::ONE { value } else { value * coeff };
    };
    for (&i, coeff) in lc.iter_inputs() {
        if !bool::from(coeff.is_zero()) {
            term(inputs[i], coeff);
            if let Some(d) = input_density.as_deref_mut() {
                d[i] = true;
            }
        }
    }
    for (&i, coeff) in lc.iter_aux() {
        if !bool::from(coeff.is_zero()) {
            term(aux[i], coeff);
            if let Some(d) = aux_density.as_deref_mut() {
                d[i] = true;
            }
        }
    }
    acc
}

impl ConstraintSystem<Fr> for Witness {
    type Root = Self;

    fn alloc<F, A, AR>(&mut self, _: A, f: F) -> Result<Variable, SynthesisError>
    where
        F: FnOnce() -> Result<Fr, SynthesisError>,
        A: FnOnce() -> AR,
        AR: Into<String>,
    {
        self.aux.push(f()?);
        self.a_aux_density.push(false);
        self.b_aux_density.push(false);
        Ok(Variable::new_unchecked(Index::Aux(self.aux.len() - 1)))
    }

    fn alloc_input<F, A, AR>(&mut self, _: A, f: F) -> Result<Variable, SynthesisError>
    where
        F: FnOnce() -> Result<Fr, SynthesisError>,
        A: FnOnce() -> AR,
        AR: Into<String>,
    {
        self.inputs.push(f()?);
        self.b_input_density.push(false);
        Ok(Variable::new_unchecked(Index::Input(self.inputs.len() - 1)))
    }

    fn enforce<A, AR, LA, LB, LC>(&mut self, _: A, a: LA, b: LB, c: LC)
    where
        A: FnOnce() -> AR,
        AR: Into<String>,
        LA: FnOnce(LinearCombination<Fr>) -> LinearCombination<Fr>,
        LB: FnOnce(LinearCombination<Fr>) -> LinearCombination<Fr>,
        LC: FnOnce(LinearCombination<Fr>) -> LinearCombination<Fr>,
    {
        let a = a(LinearCombination::zero());
        let b = b(LinearCombination::zero());
        let c = c(LinearCombination::zero());
        let a = eval(&a, &self.inputs, &self.aux, None, Some(&mut self.a_aux_density));
        let b =
            eval(&b, &self.inputs, &self.aux, Some(&mut self.b_input_density), Some(&mut self.b_aux_density));
        let c = eval(&c, &self.inputs, &self.aux, None, None);
        self.a.push(a);
        self.b.push(b);
        self.c.push(c);
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
