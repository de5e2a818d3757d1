//! GitHub Copilot: the token exchange and the Chat Completions endpoint
//! that takes only the tokens it issued.

use std::sync::Mutex;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::openai::{answer, error};
use super::{COPILOT_TOKEN_PREFIX, GITHUB_TOKEN, GITHUB_TOKEN_SHORT, bearer};

/// GitHub's token exchange: the GitHub token in, a Copilot token out.
pub(super) fn copilot_token(
    exchanges: &Mutex<Vec<String>>,
    issued: &Mutex<Vec<String>>,
    headers: &HeaderMap,
) -> Response {
    let github = bearer(headers).unwrap_or("").to_owned();
    exchanges.lock().expect("exchanges").push(github.clone());
    let lifetime = match github.as_str() {
        GITHUB_TOKEN => 3_600,
        GITHUB_TOKEN_SHORT => 60,
        _ => {
            return Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(
                    json!({"message": "Bad credentials",
                           "documentation_url": "https://docs.github.com/rest"})
                    .to_string(),
                ))
                .expect("response");
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let mut issued = issued.lock().expect("issued");
    let token = format!(
        "{COPILOT_TOKEN_PREFIX}{};exp={};sku=free;proxy-ep=proxy.individual.githubcopilot.com",
        issued.len() + 1,
        now + lifetime
    );
    issued.push(token.clone());
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"token": token, "expires_at": now + lifetime, "refresh_in": lifetime / 2,
                   "endpoints": {"api": "https://api.individual.githubcopilot.com"}})
            .to_string(),
        ))
        .expect("response")
}

/// Copilot's Chat Completions: only with an issued token and the headers
/// Copilot requires.
pub(super) fn copilot_complete(
    seen: &Mutex<Vec<Value>>,
    issued: &Mutex<Vec<String>>,
    headers: &HeaderMap,
    body: &str,
) -> Response {
    let token_ok = bearer(headers)
        .is_some_and(|token| issued.lock().expect("issued").iter().any(|t| t == token));
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if header("editor-version").is_none_or(|v| !v.starts_with("vscode/"))
        || header("copilot-integration-id").is_none()
        || header("editor-plugin-version").is_none()
        || header("x-initiator").is_none()
    {
        return error(
            StatusCode::BAD_REQUEST,
            "missing Copilot headers",
            "invalid_request_error",
            "bad_request",
        );
    }
    answer(seen, token_ok, body)
}
