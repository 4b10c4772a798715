//! One way to call a kiln endpoint, for every client of both APIs (the CLI,
//! the daemon's dispatcher, a worker's link and `kiln-worker info`): a bearer
//! token, a JSON or binary body, the answer read within its kind's bound
//! ([`crate::answers`]), and the failure sorted into [`CallError`].

use crate::error::{ApiErrorBody, ErrorKind};
use serde::de::DeserializeOwned;

/// What a request carries.
pub enum Body<'a> {
    /// Nothing (a GET, a DELETE).
    Empty,
    /// JSON.
    Json(serde_json::Value),
    /// Bytes (`application/octet-stream`).
    Bytes(&'a [u8]),
}

/// A call that did not get the answer it wanted.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No answer: the peer is down, the connection failed or timed out.
    #[error("{endpoint}: {reason}")]
    Unreachable {
        /// The endpoint called.
        endpoint: String,
        /// Why.
        reason: String,
        /// Whether this process, not the peer, failed: it is out of file
        /// descriptors for the connection.
        local: bool,
    },
    /// The peer answered with an error.
    #[error("{endpoint}: HTTP {status} {kind}: {message}")]
    Refused {
        /// The endpoint called.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// The peer's error kind.
        kind: ErrorKind,
        /// The peer's message (bounded, printable).
        message: String,
    },
    /// A success answer that is not what was expected (too long, not its JSON).
    #[error("{endpoint}: {reason}")]
    BadAnswer {
        /// The endpoint called.
        endpoint: String,
        /// What is wrong.
        reason: String,
    },
}

/// Sends `request` (to `endpoint`) with `bearer` and `body`; the success
/// answer's body is read whole, at most `limit` bytes.
pub fn call_bytes(
    request: ureq::Request,
    bearer: &str,
    body: Body<'_>,
    limit: u64,
) -> Result<Vec<u8>, CallError> {
    let endpoint = request.url().to_string();
    let request = request.set("Authorization", &format!("Bearer {bearer}"));
    let answer = match body {
        Body::Empty => request.call(),
        Body::Json(json) => request.send_json(json),
        Body::Bytes(bytes) => request.set("Content-Type", "application/octet-stream").send_bytes(bytes),
    };
    match answer {
        Ok(r) => crate::answers::bytes(r, limit)
            .map_err(|e| CallError::BadAnswer { endpoint, reason: e.to_string() }),
        Err(ureq::Error::Status(status, r)) => {
            let body = ApiErrorBody::from_answer(r);
            Err(CallError::Refused { endpoint, status, kind: body.kind, message: body.message })
        }
        Err(e) => {
            let local = std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<std::io::Error>())
                .is_some_and(proofs::out_of_descriptors);
            Err(CallError::Unreachable { endpoint, reason: e.to_string(), local })
        }
    }
}

/// [`call_bytes`], the answer read as JSON.
pub fn call_json<T: DeserializeOwned>(
    request: ureq::Request,
    bearer: &str,
    body: Body<'_>,
    limit: u64,
) -> Result<T, CallError> {
    let endpoint = request.url().to_string();
    let bytes = call_bytes(request, bearer, body, limit)?;
    serde_json::from_slice(&bytes).map_err(|e| CallError::BadAnswer {
        endpoint,
        reason: crate::answers::AnswerError::Unreadable(e.to_string()).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// Answers one request with `head` and `body`.
    fn peer(head: &'static str, body: Vec<u8>) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut request = [0u8; 8192];
            let _ = s.read(&mut request);
            let _ = write!(s, "{head}\r\nContent-Length: {}\r\n\r\n", body.len());
            let _ = s.write_all(&body);
        });
        url
    }

    #[test]
    fn failures_are_sorted_and_answers_bounded() {
        let agent = ureq::AgentBuilder::new().build();
        let url = peer("HTTP/1.1 200 OK", br#"{"id": 7}"#.to_vec());
        let v: serde_json::Value = call_json(agent.get(&url), "t", Body::Empty, 100).unwrap();
        assert_eq!(v["id"], 7);
        let url = peer("HTTP/1.1 200 OK", vec![b' '; 1000]);
        let e = call_bytes(agent.get(&url), "t", Body::Empty, 100).unwrap_err();
        assert!(
            matches!(&e, CallError::BadAnswer { reason, .. } if reason.contains("longer than 100")),
            "{e}"
        );
        let url = peer("HTTP/1.1 200 OK", b"not json".to_vec());
        let e = call_json::<serde_json::Value>(agent.get(&url), "t", Body::Empty, 100).unwrap_err();
        assert!(matches!(e, CallError::BadAnswer { .. }), "{e}");
        let url = peer("HTTP/1.1 409 Conflict", br#"{"kind": "conflict", "message": "no"}"#.to_vec());
        let e = call_bytes(agent.post(&url), "t", Body::Bytes(b"x"), 100).unwrap_err();
        assert!(
            matches!(&e, CallError::Refused { status: 409, kind: ErrorKind::Conflict, message, .. } if message == "no"),
            "{e}"
        );
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let e = call_bytes(agent.get(&closed), "t", Body::Empty, 100).unwrap_err();
        assert!(matches!(e, CallError::Unreachable { local: false, .. }), "{e}");
    }
}
