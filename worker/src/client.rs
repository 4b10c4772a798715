//! A client of a running worker's task API: what `kiln-worker info --url` shows.

use crate::{Error, LINK_TIMEOUT};
use std::path::Path;
use wire::api::API_PREFIX;
use wire::error::ApiErrorBody;
use wire::worker::{dispatch_key, WorkerInfo};

/// What the worker at `url` holds (`GET /v0/info`), asked with the dispatch
/// key of its `token`, trusting the public web roots and `ca` for `https://`.
pub fn fetch_info(url: &str, token: &str, ca: Option<&Path>) -> Result<WorkerInfo, Error> {
    let endpoint = format!("{}{API_PREFIX}/info", url.trim_end_matches('/'));
    let agent = wire::tls::agent(LINK_TIMEOUT, ca)?;
    let answer = agent.get(&endpoint).set("Authorization", &format!("Bearer {}", dispatch_key(token))).call();
    match answer {
        Ok(r) => wire::answers::json(r, wire::answers::WORKER_ANSWER_BYTES)
            .map_err(|e| Error::BadAnswer { endpoint, reason: e.to_string() }),
        Err(ureq::Error::Status(status, r)) => {
            let body = ApiErrorBody::from_answer(r);
            Err(Error::Refused { endpoint, status, kind: body.kind, message: body.message })
        }
        Err(e) => Err(Error::Unreachable { endpoint, reason: e.to_string() }),
    }
}
