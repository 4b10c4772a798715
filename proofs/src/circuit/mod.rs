//! The Groth16 circuits of SDR PoRep (C2's statement) and of fallback PoSt
//! (Winning and Window), their gadgets, and a fast constraint checker used to
//! count and test them.

pub mod check_cs;
pub mod gadgets;
pub mod por;
pub mod post;
pub mod sdr;

pub use post::PostCircuit;
pub use sdr::{public_inputs, SdrCircuit};
