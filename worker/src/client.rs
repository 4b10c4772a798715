//! A client of a running worker's task API: what `kiln-worker info --url` shows.

use crate::{Error, LINK_TIMEOUT};
use std::path::Path;
use wire::answers::WORKER_ANSWER_BYTES;
use wire::api::API_PREFIX;
use wire::client::{call_json, Body, CallError};
use wire::worker::{dispatch_key, WorkerInfo};

/// What the worker at `url` holds (`GET /v0/info`), asked with the dispatch
/// key of its `token`, trusting the public web roots and `ca` for `https://`.
pub fn fetch_info(url: &str, token: &str, ca: Option<&Path>) -> Result<WorkerInfo, Error> {
    let endpoint = format!("{}{API_PREFIX}/info", url.trim_end_matches('/'));
    let agent = wire::tls::agent(LINK_TIMEOUT, ca)?;
    call_json(agent.get(&endpoint), &dispatch_key(token), Body::Empty, WORKER_ANSWER_BYTES).map_err(|e| {
        match e {
            CallError::BadAnswer { endpoint, reason } => Error::BadAnswer { endpoint, reason },
            CallError::Refused { endpoint, status, kind, message } => {
                Error::Refused { endpoint, status, kind, message }
            }
            CallError::Unreachable { endpoint, reason, .. } => Error::Unreachable { endpoint, reason },
        }
    })
}
