//! The worker's calls to its daemon: register, heartbeat, report.

use serde::de::DeserializeOwned;
use wire::answers::DAEMON_TO_WORKER_BYTES;
use wire::api::API_PREFIX;
use wire::client::{call_json, Body, CallError};
use wire::error::ErrorKind;
use wire::worker::{
    HeartbeatRequest, HeartbeatResponse, RegisterRequest, RegisterResponse, TaskFailure, DAEMON_WORKER_PATH,
};

/// A failed call to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// No answer (the daemon is down or restarting): try again later.
    #[error("cannot reach the daemon: {0}")]
    Unreachable(String),
    /// The daemon answered with an error.
    #[error("the daemon refused: {message} ({kind}, HTTP {status})")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Error kind.
        kind: ErrorKind,
        /// The daemon's message.
        message: String,
    },
}

impl LinkError {
    /// Whether trying again later may succeed: no answer, the daemon's own
    /// failure (5xx), a timeout or busy answer. Any other 4xx is definite.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unreachable(_) => true,
            Self::Refused { status, .. } => *status >= 500 || matches!(status, 408 | 429),
        }
    }
}

/// A client of one daemon's worker endpoints.
pub struct Link {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Link {
    /// A link to the daemon at `miner` (`http://host:port` or `https://`) with
    /// worker token `token`, calling through `agent` (see [`wire::tls::agent`]).
    pub fn new(miner: &str, token: &str, agent: ureq::Agent) -> Self {
        Self {
            base: format!("{}{API_PREFIX}{DAEMON_WORKER_PATH}", miner.trim_end_matches('/')),
            token: token.trim().to_string(),
            agent,
        }
    }

    fn call<T: DeserializeOwned>(&self, path: &str, body: Body<'_>) -> Result<T, LinkError> {
        let request = self.agent.post(&format!("{}{path}", self.base));
        call_json(request, &self.token, body, DAEMON_TO_WORKER_BYTES).map_err(|e| match e {
            CallError::Refused { status, kind, message, .. } => LinkError::Refused { status, kind, message },
            CallError::Unreachable { reason, .. } | CallError::BadAnswer { reason, .. } => {
                LinkError::Unreachable(reason)
            }
        })
    }

    /// Registers (or registers again).
    pub fn register(&self, req: &RegisterRequest) -> Result<RegisterResponse, LinkError> {
        self.call("/register", Body::Json(serde_json::to_value(req).expect("serialises")))
    }

    /// Heartbeats with the tasks held.
    pub fn heartbeat(&self, req: &HeartbeatRequest) -> Result<HeartbeatResponse, LinkError> {
        self.call("/heartbeat", Body::Json(serde_json::to_value(req).expect("serialises")))
    }

    /// Delivers task `id`'s result.
    pub fn report_result(&self, id: u64, result: &[u8]) -> Result<(), LinkError> {
        self.call::<serde_json::Value>(&format!("/tasks/{id}/result"), Body::Bytes(result)).map(drop)
    }

    /// Reports that task `id` failed.
    pub fn report_failure(&self, id: u64, message: &str) -> Result<(), LinkError> {
        let body = TaskFailure { message: message.to_string() };
        self.call::<serde_json::Value>(
            &format!("/tasks/{id}/failure"),
            Body::Json(serde_json::to_value(body).expect("serialises")),
        )
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_definite_refusal_drops_a_result() {
        let refused =
            |status| LinkError::Refused { status, kind: ErrorKind::Internal, message: String::new() };
        assert!(LinkError::Unreachable("reset".into()).is_retryable());
        for status in [500, 502, 503, 408, 429] {
            assert!(refused(status).is_retryable(), "{status}");
        }
        for status in [400, 401, 403, 404, 409, 413] {
            assert!(!refused(status).is_retryable(), "{status}");
        }
    }
}
