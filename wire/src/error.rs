//! The error body every endpoint of both APIs answers with.

use serde::{Deserialize, Serialize};

/// A stable, machine-readable error kind. Clients match on it; the message is for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No token, or not a known one.
    Unauthenticated,
    /// A valid token that may not use this endpoint.
    Forbidden,
    /// The sector, worker, task or route does not exist.
    NotFound,
    /// A worker that must register (again) before this call.
    NotRegistered,
    /// A malformed or out-of-range request.
    InvalidArgument,
    /// A body over the endpoint's limit.
    TooLarge,
    /// The request conflicts with the current state.
    Conflict,
    /// The server cannot do this now (a precondition is not met).
    FailedPrecondition,
    /// The server is at capacity; try later.
    Busy,
    /// The server failed.
    Internal,
    /// A kind this client does not know, or a body that is not an error body
    /// (from a proxy, say).
    #[serde(other)]
    Unknown,
}

impl ErrorKind {
    /// The kind as it is written on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::NotRegistered => "not_registered",
            Self::InvalidArgument => "invalid_argument",
            Self::TooLarge => "too_large",
            Self::Conflict => "conflict",
            Self::FailedPrecondition => "failed_precondition",
            Self::Busy => "busy",
            Self::Internal => "internal",
            Self::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An error answer: a 4xx or 5xx status with this JSON body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    /// What kind of error.
    pub kind: ErrorKind,
    /// What went wrong.
    pub message: String,
}

impl ApiErrorBody {
    /// The error in an error answer's body; a body that is not one becomes the
    /// message of kind [`ErrorKind::Unknown`].
    /// At most [`crate::answers::ERROR_BODY_BYTES`] are read and the message
    /// is cut to [`crate::answers::ERROR_MESSAGE_CHARS`] printable characters.
    pub fn from_answer(answer: ureq::Response) -> Self {
        use crate::answers::{bounded_text, ERROR_BODY_BYTES, ERROR_MESSAGE_CHARS};
        let body = match crate::answers::bytes(answer, ERROR_BODY_BYTES) {
            Ok(body) => body,
            Err(e) => return Self { kind: ErrorKind::Unknown, message: e.to_string() },
        };
        let text = String::from_utf8_lossy(&body);
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|_| Self { kind: ErrorKind::Unknown, message: text.into_owned() });
        Self { kind: body.kind, message: bounded_text(&body.message, ERROR_MESSAGE_CHARS) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_keep_their_wire_names_and_unknown_ones_still_parse() {
        for kind in [ErrorKind::NotRegistered, ErrorKind::InvalidArgument, ErrorKind::FailedPrecondition] {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.name()));
            assert_eq!(serde_json::from_str::<ErrorKind>(&json).unwrap(), kind);
        }
        let body: ApiErrorBody = serde_json::from_str(r#"{"kind":"teapot","message":"m"}"#).unwrap();
        assert_eq!(body.kind, ErrorKind::Unknown);
    }
}
