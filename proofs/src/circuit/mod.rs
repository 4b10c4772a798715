//! The Groth16 circuit of SDR PoRep (C2's statement), its gadgets, and a fast
//! constraint checker used to count and test it.

pub mod check_cs;
pub mod gadgets;
pub mod sdr;

pub use sdr::{public_inputs, SdrCircuit};
