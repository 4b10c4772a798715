//! Stacked DRG: the graph, its parent cache, and layer labeling (PC1).
//!
//! - [`graph`]: DRG and expander parents of a node.
//! - [`parent_cache`]: those parents for every node, in a checked, mapped file.
//! - [`kernel`]: SHA-256 of label messages: SHA-NI (1 to 8 streams) or portable.
//! - [`label`]: the single-threaded reference labeler.
//! - [`label_par`]: the single-sector labeler: producers gather, one thread hashes.
//! - [`label_batch`]: several sectors at once, interleaved SHA-256 streams on every core.
//! - [`layers`]: labeling all layers of one sector or a batch into files, resumable.

pub mod graph;
pub mod kernel;
pub mod label;
pub mod label_batch;
pub mod label_par;
pub mod layers;
pub mod parent_cache;
