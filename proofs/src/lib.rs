//! Kiln's proof core: Filecoin's Stacked-DRG proof of replication (SDR, V1_1),
//! byte-compatible with the reference prover (rust-fil-proofs 19.1).
//!
//! Sealing a sector, the pre-commit half:
//!
//! 1. **Pieces** ([`pieces`], [`fr32`]): client data is fr32-padded and committed
//!    to (comm_p); pieces and zero fillers are laid out in the sector.
//! 2. **PC1** ([`seal::pc1`]): tree_d over the padded data gives comm_d; with the
//!    prover, sector id, ticket and proof type it gives the replica id; then
//!    every SDR layer is labeled ([`sdr`]), each node hashing 37 parent labels
//!    drawn from the graph ([`sdr::graph`], cached in [`sdr::parent_cache`]).
//! 3. **PC2** ([`seal::pc2`]): the columns of labels are hashed into tree_c
//!    (comm_c); the data is encoded with the last layer into the replica, whose
//!    tree_r_last gives comm_r_last; `comm_r = Poseidon(comm_c, comm_r_last)`.
//!
//! Glossary: a *node* is 32 bytes, read as a BLS12-381 scalar; a *layer* is one
//! label per node; *comm_d* commits to the data, *comm_r* to the replica;
//! the *replica id* makes each replica unique to its sector and ticket.
//!
//! The crate is pure computation over files: no async runtime, no config files,
//! no globals beyond lazily built constants. `unsafe` is confined to
//! [`merkle::store`] (mappings and memory advice), [`sdr::label_par`] (the
//! labeler's shared slots), `sdr::kernel`'s SHA-NI intrinsics, one system
//! call in [`priority`] (a thread's priority), one in [`durable`] (free
//! space), [`snark::msm`] (blstrs'
//! points handed to blst as the blst points they wrap) and [`field`] (blstrs'
//! scalars viewed as their Montgomery limbs).

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod circuit;
pub mod durable;
pub mod error;
pub mod field;
pub mod fr32;
pub mod gpu;
pub mod ids;
pub mod merkle;
pub mod pieces;
pub mod poseidon;
pub mod post;
pub mod priority;
pub mod sdr;
pub mod seal;
pub mod shape;
pub mod snark;
pub mod stamp;

pub use error::{io_disposition, out_of_descriptors, Disposition, Error, Result};
pub use ids::{Commitment, PorepId, ProverId, Randomness, ReplicaId};
pub use shape::{SectorShape, SectorSize};
