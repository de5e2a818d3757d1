//! The OpenAI-compatible HTTP surface: `POST /v1/chat/completions`,
//! `POST /v1/responses`, `GET /v1/models`, on the gateway's port.
//!
//! Why here: tools that speak OpenAI's API (SDKs, Open WebUI, curl
//! scripts) use a clawback agent as if it were a model, as they do with
//! OpenClaw. The `model` field names an agent (`openclaw`,
//! `openclaw/<agentId>`), not a provider model; each request is an agent
//! run, recorded in the log like any other.
//!
//! - `prompt`: a request's messages folded into the run's message;
//! - `turn`: starting (or finding again, by `Idempotency-Key`) the run;
//! - `answer`: waiting for a run's answer, sending it whole or streamed;
//! - `chat`: `/v1/chat/completions`, plain JSON or SSE;
//! - `responses`: `/v1/responses`, plain JSON or named SSE events;
//! - `models`: `/v1/models`, the agent targets.
//!
//! Invariants: every endpoint is off until `gateway.http.endpoints.*`
//! enables it (404 before that, as OpenClaw); every request is
//! authenticated with the gateway's shared secret as a bearer token before
//! its body is read (a holder of it is a full operator, as in OpenClaw);
//! failed attempts count against the same per-address limiter as
//! WebSocket connects; bodies are bounded (`BODY_BYTES_MAX`).

pub mod answer;
// Refusals are whole responses (status, headers, body) returned straight
// to axum from the request path; boxing them would buy nothing.
#[allow(clippy::result_large_err)]
pub mod chat;
pub mod models;
pub mod prompt;
#[allow(clippy::result_large_err)]
pub mod responses;
#[allow(clippy::result_large_err)]
pub mod turn;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde_json::Value;

use super::{BodyError, bearer, read_body, text_response};
pub use super::{error_response, json_response};
use crate::gateway::Gateway;

/// OpenClaw's limit for these bodies (20 MB).
pub const BODY_BYTES_MAX: usize = 20 * 1024 * 1024;

pub fn router(gateway: Arc<Gateway>) -> Router {
    use axum::routing::any;
    Router::new()
        .route("/v1/chat/completions", any(chat::handle))
        .route("/v1/responses", any(responses::handle))
        .route("/v1/models", any(models::list))
        .route("/v1/models/{*id}", any(models::one))
        .route("/v1/embeddings", any(models::embeddings))
        .with_state(gateway)
}

/// Which switch turns an endpoint on.
#[derive(Clone, Copy)]
pub enum Surface {
    ChatCompletions,
    Responses,
    /// `/v1/models`: on with either of the others.
    Models,
}

#[allow(clippy::result_large_err)]
/// What every request goes through before its body is read: the endpoint
/// is on, the method is right, the caller holds the gateway's secret.
pub fn admit(
    gateway: &Gateway,
    surface: Surface,
    method: &Method,
    allowed: Method,
    headers: &HeaderMap,
    remote: SocketAddr,
) -> Result<(), Response> {
    let config = gateway.config();
    let enabled = config
        .gateway
        .as_ref()
        .is_some_and(|section| match surface {
            Surface::ChatCompletions => section.http_enabled(false),
            Surface::Responses => section.http_enabled(true),
            Surface::Models => section.http_enabled(false) || section.http_enabled(true),
        });
    if !enabled {
        return Err(text_response(StatusCode::NOT_FOUND, "Not Found"));
    }
    if *method != allowed {
        let mut response = text_response(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        if let Ok(value) = HeaderValue::from_str(allowed.as_str()) {
            response.headers_mut().insert(header::ALLOW, value);
        }
        return Err(response);
    }
    bearer(gateway, headers, remote.ip(), &gateway.auth)
}

pub fn invalid(message: &str) -> Response {
    error_response(StatusCode::BAD_REQUEST, "invalid_request_error", message)
}

#[allow(clippy::result_large_err)]
/// Reads a JSON object body of at most `BODY_BYTES_MAX` bytes.
pub async fn read_object(
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<serde_json::Map<String, Value>, Response> {
    let bytes = read_body(headers, body, BODY_BYTES_MAX)
        .await
        .map_err(|why| match why {
            BodyError::TooLarge => error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "Payload too large",
            ),
            BodyError::Timeout => error_response(
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request_error",
                "Request body timeout",
            ),
            BodyError::Broken(why) => invalid(&format!("the request body broke off: {why}")),
        })?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(invalid("Invalid request body: expected a JSON object")),
        Err(parse) => Err(invalid(&format!("Invalid JSON body: {parse}"))),
    }
}

/// The status and error type of a failed run, by its failure class, as
/// OpenClaw maps failover reasons.
pub fn run_failure(kind: &str) -> (StatusCode, &'static str) {
    match kind {
        "auth" => (StatusCode::UNAUTHORIZED, "authentication_error"),
        "billing" => (StatusCode::PAYMENT_REQUIRED, "insufficient_quota"),
        "rate_limit" => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error"),
        "overloaded" => (StatusCode::SERVICE_UNAVAILABLE, "api_error"),
        "context_overflow" => (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error"),
        "format" => (StatusCode::BAD_REQUEST, "invalid_request_error"),
        "model_not_found" | "no_model" => (StatusCode::NOT_FOUND, "invalid_request_error"),
        "server_error" => (StatusCode::BAD_GATEWAY, "api_error"),
        "timeout" => (StatusCode::GATEWAY_TIMEOUT, "api_error"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "api_error"),
    }
}

/// A header's value as text, trimmed; absent or empty is `None`.
pub fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// SSE response headers, as OpenClaw sends them.
pub fn sse_response(body: axum::body::Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
