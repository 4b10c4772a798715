//! The daemon's side of a worker's task API: handing it a task.

use std::time::Duration;
use wire::answers::WORKER_ANSWER_BYTES;
use wire::client::{call_bytes, call_json, Body, CallError};
use wire::error::ErrorKind;
use wire::worker::{TaskAccepted, TaskEnvelope, TASK_HEADER};

/// A task a worker did not take.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The task's input is larger than its type allows.
    #[error("a {kind} task's input of {len} bytes exceeds its limit of {limit}")]
    TooLarge {
        /// The task's type.
        kind: &'static str,
        /// Its input's length.
        len: u64,
        /// The type's limit.
        limit: u64,
    },
    /// The call failed: no answer, a refusal, an answer not the protocol's.
    #[error(transparent)]
    Call(#[from] CallError),
}

impl DispatchError {
    /// Whether this node, not the worker, is at fault: it ran out of file
    /// descriptors for the connection. The worker is not charged for it.
    pub fn is_local(&self) -> bool {
        matches!(self, Self::Call(CallError::Unreachable { local: true, .. }))
    }

    /// Whether the worker said it was busy (every slot taken): it is held off
    /// briefly, not charged, since its view of its slots is the true one.
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Call(CallError::Refused { kind: ErrorKind::Busy, .. }))
    }
}

/// Hands tasks to workers (a trait so the driver's tests can stand in for the network).
pub trait Dispatcher: Send + Sync {
    /// Sends task `task` (`envelope` says what it is; `input` is its type's
    /// input) to the worker at `url`, authenticated with its dispatch key
    /// (`POST /v0/tasks/{id}`). Ok once the worker accepted it; its result
    /// comes later, to the daemon's result route.
    fn send_task(
        &self,
        url: &str,
        key: &str,
        task: u64,
        envelope: &TaskEnvelope,
        input: &[u8],
    ) -> Result<(), DispatchError>;

    /// Tells the worker at `url` that task `task` is no longer wanted
    /// (`DELETE /v0/tasks/{id}`): it throws the result away and frees the slot.
    fn cancel(&self, url: &str, key: &str, task: u64) -> Result<(), DispatchError>;
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

    fn send_task(
        &self,
        url: &str,
        key: &str,
        task: u64,
        envelope: &TaskEnvelope,
        input: &[u8],
    ) -> Result<(), DispatchError> {
        let (len, limit) = (input.len() as u64, envelope.kind.max_input_bytes());
        if len > limit {
            return Err(DispatchError::TooLarge { kind: envelope.kind.name(), len, limit });
        }
        let endpoint = format!("{}/v0/tasks/{task}", url.trim_end_matches('/'));
        let request = self.agent.post(&endpoint).set(TASK_HEADER, &envelope.to_header());
        let accepted: TaskAccepted = call_json(request, key, Body::Bytes(input), WORKER_ANSWER_BYTES)?;
        if accepted.id == task {
            Ok(())
        } else {
            Err(CallError::BadAnswer {
                endpoint,
                reason: format!("the worker accepted task {} instead", accepted.id),
            }
            .into())
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
        let envelope = TaskEnvelope {
            kind: wire::worker::RemoteTask::WindowPost,
            sector_size: proofs::SectorSize::KiB2,
            sector: None,
        };
        // A 1.5 GB acceptance: refused after the bound, not read whole.
        let url = flooding_worker(200, 1_500_000_000, b' ');
        let started = std::time::Instant::now();
        let e = d.send_task(&url, "k", 1, &envelope, b"input").unwrap_err();
        assert!(e.to_string().contains("longer than"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(10));
        // A 100 MB refusal: its message is cut to a few KB of printable text.
        let url = flooding_worker(422, 100_000_000, 0x1b);
        let e = d.send_task(&url, "k", 1, &envelope, b"c1").unwrap_err();
        let DispatchError::Call(CallError::Refused { message, .. }) = &e else { panic!("{e}") };
        assert!(message.len() < 100, "{} bytes: {message}", message.len());
        let url = flooding_worker(422, 50_000, b'x');
        let Err(DispatchError::Call(CallError::Refused { message, .. })) =
            d.send_task(&url, "k", 1, &envelope, b"c1")
        else {
            panic!()
        };
        assert!(message.len() <= wire::answers::ERROR_MESSAGE_CHARS + 10 && message.ends_with("(cut)"));
    }
}
