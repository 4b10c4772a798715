//! Kiln's wire contract: what crosses a process boundary, and nothing else.
//!
//! - [`api`]: the daemon API's requests and answers. Answers are views built
//!   by the daemon from its records, so a database column is not an API field.
//! - [`chain`]: chain messages, receipts and message ids as the API shows them.
//! - [`worker`]: the daemon–worker protocol (version [`worker::PROTOCOL_VERSION`]).
//! - [`answers`]: reading answers from the network within bounds.
//! - [`client`]: calling an endpoint of either API, with its failures sorted.
//! - [`error`]: the error body every endpoint answers with, and its [`error::ErrorKind`].
//! - [`metrics`]: what the daemon's and the worker's `/metrics` share.
//! - [`server`]: serving either API with a connection cap and deadlines.
//! - [`descriptors`]: the file descriptor budget the listeners and the work share.
//! - [`tls`]: TLS configuration, and the HTTP(S) clients of both APIs.
//!
//! This crate depends on the proof core's value types only (sector sizes,
//! commitments, randomness), so `kiln-worker` links it without the daemon.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod answers;
pub mod api;
pub mod chain;
pub mod client;
pub mod descriptors;
pub mod error;
pub mod metrics;
pub mod server;
pub mod tls;
pub mod worker;
