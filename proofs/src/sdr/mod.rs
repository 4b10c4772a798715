//! Stacked DRG: the graph, its parent cache, and layer labeling (PC1).
//!
//! - [`graph`]: DRG and expander parents of a node.
//! - [`parent_cache`]: those parents for every node, in a checked, mapped file.
//! - [`label`]: the per-node kernel and the single-threaded reference labeler.
//! - [`label_par`]: the multi-threaded labeler (identical bytes, faster).
//! - [`layers`]: labeling all layers into files, resumable after a crash.

pub mod graph;
pub mod label;
pub mod label_par;
pub mod layers;
pub mod parent_cache;
