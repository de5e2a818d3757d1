//! Requests that arrived over the OpenAI-compatible HTTP surface with an
//! `Idempotency-Key`. Part of [`super::Event`]'s vocabulary; the
//! compatibility rule in its module docs applies to every struct here.
//!
//! Why recorded: a client that retries (a dropped connection, a proxy
//! timeout) must get the answer the first request got, not a second model
//! run, and that must survive a restart. The accepted record binds the key
//! to the request body and the run; the answered record holds the answer.
//! Requests without a key are recorded only as the agent run they start.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequestAccepted {
    /// `chat.completions` or `responses`.
    pub endpoint: String,
    pub idempotency_key: String,
    /// blake3 of the request body's canonical JSON: the same key with
    /// another body is a client bug, answered 409.
    pub body_hash: String,
    pub run_id: String,
    pub session_key: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequestAnswered {
    pub endpoint: String,
    pub idempotency_key: String,
    pub run_id: String,
    /// The HTTP status of the answer.
    pub status: u16,
    /// The non-streaming answer body (JSON). A streamed request records the
    /// same object, and a retry of it is streamed from this.
    pub answer: String,
}
