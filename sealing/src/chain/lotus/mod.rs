//! A Lotus full node as kiln's chain: its head, clock and randomness
//! (`head`, the first of the backend's roles), its JSON (`json`), its JSON-RPC API
//! (`rpc`), the CIDs of the messages kiln signs through it (`message`), and
//! the outbox that sends each of them exactly once across crashes (`outbox`).

pub mod head;
pub mod json;
pub mod message;
pub mod outbox;
pub mod rpc;
