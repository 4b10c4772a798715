//! Reading answers from the network within a bound fixed by their kind: a
//! peer that answers gigabytes (a lying worker, a wrong URL) costs at most
//! the bound, never the process's memory.

use serde::de::DeserializeOwned;
use std::io::Read;

/// An error answer's body: `{kind, message}` and a short message.
pub const ERROR_BODY_BYTES: u64 = 64 * 1024;
/// Longest message kept from an error answer (characters); the rest is cut.
pub const ERROR_MESSAGE_CHARS: usize = 4096;
/// A worker's answers: an accepted task, a Window PoSt (a few hundred bytes of
/// hex per partition and the GPUs' names), its `/v0/info`.
pub const WORKER_ANSWER_BYTES: u64 = 1024 * 1024;
/// The daemon's answers to a worker (registration, heartbeat: a list of at
/// most [`crate::worker::MAX_HEARTBEAT_TASKS`] ids).
pub const DAEMON_TO_WORKER_BYTES: u64 = 256 * 1024;
/// The daemon's answers to the operator's CLI (the largest: a page of 10,000
/// chain messages with their proofs).
pub const OPERATOR_ANSWER_BYTES: u64 = 1 << 30;

/// Why an answer could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// Longer than its kind allows.
    #[error("the answer is longer than {0} bytes")]
    TooLong(u64),
    /// Cut off, or not what was expected.
    #[error("unreadable answer: {0}")]
    Unreadable(String),
}

/// The body of `answer`, at most `limit` bytes.
pub fn bytes(answer: ureq::Response, limit: u64) -> Result<Vec<u8>, AnswerError> {
    let mut body = Vec::new();
    answer
        .into_reader()
        .take(limit.saturating_add(1))
        .read_to_end(&mut body)
        .map_err(|e| AnswerError::Unreadable(e.to_string()))?;
    if body.len() as u64 > limit {
        return Err(AnswerError::TooLong(limit));
    }
    Ok(body)
}

/// The JSON body of `answer`, at most `limit` bytes.
pub fn json<T: DeserializeOwned>(answer: ureq::Response, limit: u64) -> Result<T, AnswerError> {
    let body = bytes(answer, limit)?;
    serde_json::from_slice(&body).map_err(|e| AnswerError::Unreadable(e.to_string()))
}

/// `text` cut to at most `chars` characters (marked when cut), control
/// characters escaped: safe to store and to show.
pub fn bounded_text(text: &str, chars: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == chars {
            out.push_str(" …(cut)");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_and_escaped() {
        assert_eq!(bounded_text("ok", 10), "ok");
        assert_eq!(bounded_text("a\u{1b}[31mb", 100), "a\\u{1b}[31mb");
        let long = bounded_text(&"x".repeat(10_000), 100);
        assert!(long.starts_with(&"x".repeat(100)) && long.ends_with("(cut)") && long.len() < 120);
    }
}
