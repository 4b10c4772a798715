//! The daemon's side of a worker's task API: handing it a task.

use std::time::Duration;
use wire::answers::WORKER_ANSWER_BYTES;
use wire::client::{call_bytes, call_json, Body, CallError};
use wire::error::ErrorKind;
use wire::worker::{TaskAccepted, WindowPostAnswer, WindowPostRequest, MAX_TASK_BYTES};

/// A task a worker did not take.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The task is larger than the protocol allows.
    #[error("C1 output of {len} bytes exceeds the task limit of {MAX_TASK_BYTES}")]
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// The worker could not be reached.
    #[error("{endpoint}: {reason}")]
    Unreachable {
        /// The task endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// This node could not open a connection (it is out of file descriptors).
    #[error("{endpoint}: this node cannot open a connection: {reason}")]
    Local {
        /// The task endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// The worker refused the task.
    #[error("{endpoint}: HTTP {status} {kind}: {message}")]
    Refused {
        /// The task endpoint.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// The worker's error kind.
        kind: ErrorKind,
        /// The worker's message.
        message: String,
    },
    /// The worker's answer is not the protocol's.
    #[error("{endpoint}: {reason}")]
    BadAnswer {
        /// The task endpoint.
        endpoint: String,
        /// What is wrong.
        reason: String,
    },
}

impl DispatchError {
    /// Whether this node, not the worker, is at fault: it ran out of file
    /// descriptors for the connection. The worker is not charged for it.
    pub fn is_local(&self) -> bool {
        matches!(self, Self::Local { .. })
    }

    /// Whether the worker said it was busy (every slot taken): it is held off
    /// briefly, not charged, since its view of its slots is the true one.
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Refused { kind: ErrorKind::Busy, .. })
    }
}

impl From<CallError> for DispatchError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Unreachable { endpoint, reason, local: true } => Self::Local { endpoint, reason },
            CallError::Unreachable { endpoint, reason, local: false } => {
                Self::Unreachable { endpoint, reason }
            }
            CallError::Refused { endpoint, status, kind, message } => {
                Self::Refused { endpoint, status, kind, message }
            }
            CallError::BadAnswer { endpoint, reason } => Self::BadAnswer { endpoint, reason },
        }
    }
}

/// Hands tasks to workers (a trait so the driver's tests can stand in for the network).
pub trait Dispatcher: Send + Sync {
    /// Sends C2 task `task` with the binary C1 output `c1` to the worker at
    /// `url`, authenticated with its dispatch key. Ok once the worker accepted it.
    fn send_c2(&self, url: &str, key: &str, task: u64, c1: &[u8]) -> Result<(), DispatchError>;

    /// Tells the worker at `url` that task `task` is no longer wanted
    /// (`DELETE /v0/tasks/{id}`): it throws the result away and frees the slot.
    fn cancel(&self, url: &str, key: &str, task: u64) -> Result<(), DispatchError>;

    /// Asks the worker at `url` for a Window PoSt SNARK and waits for it, at
    /// most `timeout`.
    fn window_post(
        &self,
        url: &str,
        key: &str,
        request: &WindowPostRequest,
        timeout: Duration,
    ) -> Result<WindowPostAnswer, DispatchError> {
        let _ = (key, request, timeout);
        Err(DispatchError::Unreachable {
            endpoint: url.into(),
            reason: "this dispatcher sends no PoSt".into(),
        })
    }
}

/// [`Dispatcher`] over HTTP.
pub struct HttpDispatcher {
    agent: ureq::Agent,
}

impl HttpDispatcher {
    /// A dispatcher calling through `agent` (its timeout and TLS trust; see [`wire::tls::agent`]).
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
    fn cancel(&self, url: &str, key: &str, task: u64) -> Result<(), DispatchError> {
        let endpoint = format!("{}/v0/tasks/{task}", url.trim_end_matches('/'));
        call_bytes(self.agent.delete(&endpoint), key, Body::Empty, WORKER_ANSWER_BYTES)?;
        Ok(())
    }

    fn window_post(
        &self,
        url: &str,
        key: &str,
        request: &WindowPostRequest,
        timeout: Duration,
    ) -> Result<WindowPostAnswer, DispatchError> {
        let endpoint = format!("{}/v0/post/window", url.trim_end_matches('/'));
        let body = Body::Json(serde_json::to_value(request).expect("serialises"));
        Ok(call_json(self.agent.post(&endpoint).timeout(timeout), key, body, WORKER_ANSWER_BYTES)?)
    }

    fn send_c2(&self, url: &str, key: &str, task: u64, c1: &[u8]) -> Result<(), DispatchError> {
        if c1.len() > MAX_TASK_BYTES {
            return Err(DispatchError::TooLarge { len: c1.len() });
        }
        let endpoint = format!("{}/v0/tasks/{task}/c2", url.trim_end_matches('/'));
        let accepted: TaskAccepted =
            call_json(self.agent.post(&endpoint), key, Body::Bytes(c1), WORKER_ANSWER_BYTES)?;
        if accepted.id == task {
            Ok(())
        } else {
            Err(DispatchError::BadAnswer {
                endpoint,
                reason: format!("the worker accepted task {} instead", accepted.id),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A worker that answers every request with `status` and a body of `len`
    /// bytes of `fill`, streamed until the caller stops reading.
    fn flooding_worker(status: u16, len: u64, fill: u8) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                std::thread::spawn(move || {
                    let mut head = [0u8; 8192];
                    let _ = s.read(&mut head);
                    let _ = write!(s, "HTTP/1.1 {status} X\r\nContent-Length: {len}\r\n\r\n");
                    let chunk = vec![fill; 64 * 1024];
                    let mut sent = 0;
                    while sent < len && s.write_all(&chunk).is_ok() {
                        sent += chunk.len() as u64;
                    }
                });
            }
        });
        url
    }

    #[test]
    fn answers_are_read_within_their_bounds() {
        let d = HttpDispatcher::with_timeout(Duration::from_secs(30));
        let request = WindowPostRequest {
            sector_size: proofs::SectorSize::KiB2,
            randomness: proofs::Randomness([0; 32]),
            vanilla: vec![],
        };
        // A 1.5 GB Window PoSt answer: refused after the bound, not read whole.
        let url = flooding_worker(200, 1_500_000_000, b' ');
        let started = std::time::Instant::now();
        let e = d.window_post(&url, "k", &request, Duration::from_secs(30)).unwrap_err();
        assert!(e.to_string().contains("longer than"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(10));
        // A 100 MB refusal: its message is cut to a few KB of printable text.
        let url = flooding_worker(422, 100_000_000, 0x1b);
        let e = d.send_c2(&url, "k", 1, b"c1").unwrap_err();
        let DispatchError::Refused { message, .. } = &e else { panic!("{e}") };
        assert!(message.len() < 100, "{} bytes: {message}", message.len());
        let url = flooding_worker(422, 50_000, b'x');
        let DispatchError::Refused { message, .. } = d.send_c2(&url, "k", 1, b"c1").unwrap_err() else {
            panic!()
        };
        assert!(message.len() <= wire::answers::ERROR_MESSAGE_CHARS + 10 && message.ends_with("(cut)"));
    }
}
