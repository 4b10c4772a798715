//! A Lotus full node as kiln's chain: its JSON (`json`), its JSON-RPC API
//! (`rpc`) and the CIDs of the messages kiln signs through it (`message`).

pub mod json;
pub mod message;
pub mod rpc;
