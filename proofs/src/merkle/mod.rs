//! Merkle trees of the proof core and the memory-mapped stores they live in.
//!
//! - [`sha_tree`]: binary SHA-256 trunc254 trees (comm_p, tree_d, comm_d).
//! - [`poseidon_tree`]: arity-8 Poseidon trees, compound for 32/64GiB (tree_c, tree_r_last).
//! - [`proof`]: inclusion proofs in both kinds of tree.
//! - [`store`]: the only place files are memory-mapped.

pub mod poseidon_tree;
pub mod proof;
pub mod sha_tree;
pub mod store;
