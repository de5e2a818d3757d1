//! OpenClaw's HTTP endpoints beside the WebSocket, on the same port:
//! `POST /tools/invoke` (`tools_invoke`), the inbound hooks under
//! `hooks.path` (`hooks`), and the OpenAI-compatible `/v1/*` surface
//! (`openai`).
//!
//! This file holds only what every endpoint family shares: the router that
//! merges theirs, the bearer check (constant-time), JSON answers, and body
//! reading with a byte limit and a time limit. Each family decides its own
//! limits and shapes; none of them appends to the log except through the
//! agent runtime or `gateway.log`, and none records a secret (tokens and
//! `Authorization` headers are checked here and dropped).

pub mod hook_mappings;
mod hook_plan;
mod hook_token;
pub mod hooks;
pub mod openai;
pub mod tools_invoke;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Gateway;
use super::protocol::connect::Auth;

/// How long a client may take to send a body (OpenClaw's 30 s).
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// What the HTTP endpoints keep between requests (all bounded).
#[derive(Default)]
pub struct HttpState {
    pub hooks: hooks::HooksState,
    pub tools: tools_invoke::ToolsState,
}

/// Every HTTP endpoint of this module, to merge into the gateway's app.
pub fn router(gateway: Arc<Gateway>) -> Router {
    tools_invoke::router(gateway.clone())
        .merge(hooks::router(gateway.clone()))
        .merge(openai::router(gateway.clone()))
        .merge(crate::channels::telegram::router(gateway.clone()))
        .merge(crate::channels::webhook::router(gateway))
}

/// `Authorization: Bearer <secret>`, trimmed; `None` when absent or empty.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case("bearer ") {
        return None;
    }
    Some(rest.trim()).filter(|token| !token.is_empty())
}

/// Whether `offered` is the secret whose blake3 digest is `expected`.
/// Digests compare in constant time (`blake3::Hash`'s `PartialEq`), and
/// hashing first means the secret's length does not leak either.
pub fn secret_matches(offered: &str, expected: &blake3::Hash) -> bool {
    blake3::hash(offered.as_bytes()) == *expected
}

/// Checks the gateway's shared secret as a bearer token, as OpenClaw's HTTP
/// endpoints do. With no gateway auth (allowed on loopback binds only)
/// anyone who reaches the port passes, as OpenClaw's `auth.mode: "none"`.
/// A wrong or missing secret answers 401, and 429 with `Retry-After` once
/// the address has failed too often (the limiter WebSocket connects use).
#[allow(clippy::result_large_err)]
pub fn bearer(
    gateway: &Gateway,
    headers: &HeaderMap,
    remote: IpAddr,
    expected: &Auth,
) -> Result<(), Response> {
    let digest = match expected {
        Auth::None => return Ok(()),
        Auth::Token(digest) | Auth::Password(digest) => digest,
    };
    if bearer_token(headers).is_some_and(|token| secret_matches(token, digest)) {
        return Ok(());
    }
    // Only failures are throttled: the right secret always passes.
    if let Err(limited) = gateway.auth_limiter.check(remote) {
        return Err(rate_limited(limited.retry_after_ms.unwrap_or(1_000)));
    }
    gateway.auth_limiter.failed(remote);
    Err(json_response(
        StatusCode::UNAUTHORIZED,
        json!({"error": {"message": "Unauthorized", "type": "unauthorized"}}),
    ))
}

/// 429 with `Retry-After` in whole seconds (at least 1), OpenClaw's body.
pub fn rate_limited(retry_after_ms: u64) -> Response {
    let mut response = json_response(
        StatusCode::TOO_MANY_REQUESTS,
        json!({"error": {
            "message": "Too many failed authentication attempts. Please try again later.",
            "type": "rate_limited",
        }}),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, retry_after_header(retry_after_ms));
    response
}

pub fn retry_after_header(retry_after_ms: u64) -> HeaderValue {
    HeaderValue::from(retry_after_ms.div_ceil(1_000).max(1))
}

/// A JSON answer (`application/json; charset=utf-8`, as OpenClaw sends).
pub fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// A plain-text answer (OpenClaw's early hook failures are plain text).
pub fn text_response(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

/// `{error: {message, type}}`, the OpenAI-style error OpenClaw's shared
/// HTTP helpers answer (bad JSON, oversized body, ...).
pub fn error_response(status: StatusCode, kind: &str, message: &str) -> Response {
    json_response(status, json!({"error": {"message": message, "type": kind}}))
}

/// Why a body could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// More than the limit (413).
    TooLarge,
    /// Not all of it arrived within `BODY_READ_TIMEOUT` (408).
    Timeout,
    /// The connection failed while reading (400).
    Broken(String),
}

/// Bytes of an oversized body read and dropped before answering 413: a
/// client still sending when the server answers and closes may lose the
/// answer to a connection reset, so a body up to this much over the limit
/// is drained first. Anything larger is cut off at once.
pub const DRAIN_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Reads a body of at most `limit_bytes`. Nothing over the limit is kept:
/// a body over it is drained (up to `DRAIN_BYTES_MAX` more, within the
/// same time limit) and refused; a `Content-Length` beyond even that is
/// refused before reading.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit_bytes: usize,
) -> Result<Vec<u8>, BodyError> {
    use futures_util::StreamExt;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let drain_limit = limit_bytes.saturating_add(DRAIN_BYTES_MAX);
    if declared.is_some_and(|length| length > drain_limit as u64) {
        return Err(BodyError::TooLarge);
    }
    let read = async {
        let mut stream = body.into_data_stream();
        let capacity = declared.map_or(0, |length| (length as usize).min(limit_bytes));
        let mut bytes = Vec::with_capacity(capacity);
        let mut seen = 0usize;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|error| BodyError::Broken(error.to_string()))?;
            seen = seen.saturating_add(chunk.len());
            if seen > drain_limit {
                return Err(BodyError::TooLarge);
            }
            if seen <= limit_bytes {
                bytes.extend_from_slice(&chunk);
            }
        }
        if seen > limit_bytes {
            return Err(BodyError::TooLarge);
        }
        Ok(bytes)
    };
    tokio::time::timeout(BODY_READ_TIMEOUT, read)
        .await
        .unwrap_or(Err(BodyError::Timeout))
}

/// A body as JSON: empty is `{}` (OpenClaw reads an empty body so).
pub fn parse_json(bytes: &[u8]) -> Result<Value, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(bytes).map_err(|error| format!("invalid JSON body: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_token_is_read_case_insensitively_and_trimmed() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), None);
        headers.insert(header::AUTHORIZATION, "bearer  abc ".parse().unwrap());
        assert_eq!(bearer_token(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer_token(&headers), None);
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer_token(&headers), None);
        headers.insert(header::AUTHORIZATION, "Bear".parse().unwrap());
        assert_eq!(bearer_token(&headers), None);
    }

    #[test]
    fn secrets_match_only_exactly() {
        let digest = blake3::hash(b"s3cret");
        assert!(secret_matches("s3cret", &digest));
        assert!(!secret_matches("s3cre", &digest));
        assert!(!secret_matches("s3cret ", &digest));
    }

    #[test]
    fn bodies_over_the_limit_are_refused_and_empty_bodies_are_objects() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let read = |text: &'static str, limit| {
            runtime.block_on(read_body(&HeaderMap::new(), Body::from(text), limit))
        };
        assert_eq!(read("12345", 5), Ok(b"12345".to_vec()));
        assert_eq!(read("123456", 5), Err(BodyError::TooLarge));
        let mut declared = HeaderMap::new();
        let beyond_draining = (5 + DRAIN_BYTES_MAX + 1).to_string();
        declared.insert(header::CONTENT_LENGTH, beyond_draining.parse().unwrap());
        let refused = runtime.block_on(read_body(&declared, Body::from("1"), 5));
        assert_eq!(refused, Err(BodyError::TooLarge), "refused before reading");
        assert_eq!(parse_json(b" \n"), Ok(json!({})));
        assert!(
            parse_json(b"{")
                .unwrap_err()
                .starts_with("invalid JSON body")
        );
        assert_eq!(retry_after_header(1), HeaderValue::from(1u64));
        assert_eq!(retry_after_header(59_001), HeaderValue::from(60u64));
    }
}
