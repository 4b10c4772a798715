//! A constraint system that counts and checks constraints as they are enforced.
//!
//! bellpepper's test system keeps a named map of every constraint, which is
//! too slow for millions of them; this one evaluates each constraint against
//! the assignment on the spot and remembers only the first that fails.

use bellpepper_core::{ConstraintSystem, Index, LinearCombination, SynthesisError, Variable};
use blstrs::Scalar as Fr;
use ff::Field;

/// Counts inputs, auxiliaries and constraints, and checks satisfaction when
/// values are present.
pub struct CheckingCs {
    inputs: Vec<Fr>,
    aux: Vec<Fr>,
    constraints: usize,
    namespace: Vec<String>,
    first_unsatisfied: Option<String>,
    blank: bool,
}

impl CheckingCs {
    /// A system for a circuit with values (`blank = false`) or without.
    pub fn new(blank: bool) -> Self {
        Self {
            inputs: vec![Fr::ONE],
            aux: Vec::new(),
            constraints: 0,
            namespace: Vec::new(),
            first_unsatisfied: None,
            blank,
        }
    }
    /// Constraints enforced.
    pub fn num_constraints(&self) -> usize {
        self.constraints
    }
    /// Public inputs, the implicit constant one included.
    pub fn num_inputs(&self) -> usize {
        self.inputs.len()
    }
    /// Auxiliary (private) variables.
    pub fn num_aux(&self) -> usize {
        self.aux.len()
    }
    /// The public inputs allocated, the constant one excluded.
    pub fn public_inputs(&self) -> &[Fr] {
        &self.inputs[1..]
    }
    /// The path of the first unsatisfied constraint, if any.
    pub fn first_unsatisfied(&self) -> Option<&str> {
        self.first_unsatisfied.as_deref()
    }
    /// Whether every constraint held.
    pub fn is_satisfied(&self) -> bool {
        self.first_unsatisfied.is_none()
    }

    fn value<F: FnOnce() -> Result<Fr, SynthesisError>>(&self, f: F) -> Result<Fr, SynthesisError> {
        if self.blank {
            Ok(Fr::ZERO)
        } else {
            f()
        }
    }

    fn eval(&self, lc: &LinearCombination<Fr>) -> Fr {
        lc.iter().fold(Fr::ZERO, |acc, (var, coeff)| {
            let v = match var.get_unchecked() {
                Index::Input(i) => self.inputs[i],
                Index::Aux(i) => self.aux[i],
            };
            acc + v * coeff
        })
    }
}

impl ConstraintSystem<Fr> for CheckingCs {
    type Root = Self;

    fn alloc<F, A, AR>(&mut self, _: A, f: F) -> Result<Variable, SynthesisError>
    where
        F: FnOnce() -> Result<Fr, SynthesisError>,
        A: FnOnce() -> AR,
        AR: Into<String>,
    {
        let v = self.value(f)?;
        self.aux.push(v);
        Ok(Variable::new_unchecked(Index::Aux(self.aux.len() - 1)))
    }

    fn alloc_input<F, A, AR>(&mut self, _: A, f: F) -> Result<Variable, SynthesisError>
    where
        F: FnOnce() -> Result<Fr, SynthesisError>,
        A: FnOnce() -> AR,
        AR: Into<String>,
    {
        let v = self.value(f)?;
        self.inputs.push(v);
        Ok(Variable::new_unchecked(Index::Input(self.inputs.len() - 1)))
    }

    fn enforce<A, AR, LA, LB, LC>(&mut self, annotation: A, a: LA, b: LB, c: LC)
    where
        A: FnOnce() -> AR,
        AR: Into<String>,
        LA: FnOnce(LinearCombination<Fr>) -> LinearCombination<Fr>,
        LB: FnOnce(LinearCombination<Fr>) -> LinearCombination<Fr>,
        LC: FnOnce(LinearCombination<Fr>) -> LinearCombination<Fr>,
    {
        self.constraints += 1;
        if self.blank || self.first_unsatisfied.is_some() {
            return;
        }
        let (a, b, c) =
            (a(LinearCombination::zero()), b(LinearCombination::zero()), c(LinearCombination::zero()));
        if self.eval(&a) * self.eval(&b) != self.eval(&c) {
            let mut path = self.namespace.join("/");
            path.push('/');
            path.push_str(&annotation().into());
            self.first_unsatisfied = Some(path);
        }
    }

    fn push_namespace<NR, N>(&mut self, name_fn: N)
    where
        NR: Into<String>,
        N: FnOnce() -> NR,
    {
        self.namespace.push(name_fn().into());
    }

    fn pop_namespace(&mut self) {
        self.namespace.pop();
    }

    fn get_root(&mut self) -> &mut Self::Root {
        self
    }
}
