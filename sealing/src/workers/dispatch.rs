//! The daemon's side of a worker's task API: handing it a task.

use super::protocol::{TaskAccepted, MAX_TASK_BYTES};
use crate::api::ApiErrorBody;
use std::time::Duration;

/// Hands tasks to workers (a trait so the driver's tests can stand in for the network).
pub trait Dispatcher: Send + Sync {
    /// Sends C2 task `task` with the binary C1 output `c1` to the worker at
    /// `url`, authenticated with its dispatch key. Ok once the worker accepted it.
    fn send_c2(&self, url: &str, key: &str, task: u64, c1: &[u8]) -> Result<(), String>;
}

/// [`Dispatcher`] over HTTP.
pub struct HttpDispatcher {
    agent: ureq::Agent,
}

impl HttpDispatcher {
    /// A dispatcher calling through `agent` (its timeout and TLS trust; see [`crate::tls::agent`]).
    pub fn new(agent: ureq::Agent) -> Self {
        Self { agent }
    }

    /// A dispatcher whose calls give up after `timeout`, trusting the public
    /// web roots for `https://` workers.
    pub fn with_timeout(timeout: Duration) -> Self {
        Self::new(ureq::AgentBuilder::new().timeout(timeout).build())
    }
}

impl Dispatcher for HttpDispatcher {
    fn send_c2(&self, url: &str, key: &str, task: u64, c1: &[u8]) -> Result<(), String> {
        if c1.len() > MAX_TASK_BYTES {
            return Err(format!(
                "C1 output of {} bytes exceeds the task limit of {MAX_TASK_BYTES}",
                c1.len()
            ));
        }
        let endpoint = format!("{}/v0/tasks/{task}/c2", url.trim_end_matches('/'));
        let answer = self
            .agent
            .post(&endpoint)
            .set("Authorization", &format!("Bearer {key}"))
            .set("Content-Type", "application/octet-stream")
            .send_bytes(c1);
        match answer {
            Ok(r) => {
                let accepted: TaskAccepted =
                    r.into_json().map_err(|e| format!("{endpoint}: unreadable answer: {e}"))?;
                if accepted.id == task {
                    Ok(())
                } else {
                    Err(format!("{endpoint}: the worker accepted task {} instead", accepted.id))
                }
            }
            Err(ureq::Error::Status(status, r)) => {
                let body = ApiErrorBody::from_answer(r);
                Err(format!("{endpoint}: HTTP {status} {}: {}", body.kind, body.message))
            }
            Err(e) => Err(format!("{endpoint}: {e}")),
        }
    }
}
