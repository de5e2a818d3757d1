//! Anthropic's OAuth token endpoint (`POST /v1/oauth/token`, JSON
//! `{grant_type: "refresh_token", client_id, refresh_token}`), as pi-ai
//! calls it: refresh tokens are single-use, each refresh issues a new
//! access token (`sk-ant-oat01-mock-N`) and refresh token, and a refresh
//! token it does not hold answers 400 `invalid_grant`. It answers after
//! 300 ms, so concurrent runs overlap their refreshes if they both ask.
//! The Messages endpoint takes the access tokens it issued as bearers.

use std::collections::BTreeSet;
use std::sync::Mutex;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

/// A refresh token the endpoint holds when it starts.
pub const REFRESH_TOKEN: &str = "sk-ant-ort01-mock-initial";
/// The client id OpenClaw's Anthropic sign-ins were issued to.
const CLIENT_ID: &str = "9d1c250a-e61b-44d9-88ed-5944d1962f5e";

#[derive(Default)]
pub struct OAuthState {
    /// Refresh tokens that may still be used once.
    valid: BTreeSet<String>,
    /// Access tokens issued, in order.
    pub issued: Vec<String>,
    /// The refresh tokens presented, in order.
    pub refreshes: Vec<String>,
    /// The bearer tokens the Messages endpoint accepted, in order.
    pub bearers: Vec<String>,
}

impl OAuthState {
    pub fn new() -> OAuthState {
        OAuthState {
            valid: [REFRESH_TOKEN.to_owned()].into(),
            ..OAuthState::default()
        }
    }

    /// Whether `token` is an access token this endpoint issued (kept in
    /// `bearers` when it is).
    pub(super) fn accepts(&mut self, token: &str) -> bool {
        let known = self.issued.iter().any(|issued| issued == token);
        if known {
            self.bearers.push(token.to_owned());
        }
        known
    }
}

fn json_response(status: StatusCode, body: Value) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("response")
}

pub(super) async fn token(state: &Mutex<OAuthState>, body: &str) -> Response {
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let request: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    if request["grant_type"] != "refresh_token" || request["client_id"] != CLIENT_ID {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_request", "error_description": "unsupported grant or client"}),
        );
    }
    let presented = request["refresh_token"].as_str().unwrap_or("").to_owned();
    let mut state = state.lock().expect("oauth state");
    state.refreshes.push(presented.clone());
    if !state.valid.remove(&presented) {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_grant", "error_description": format!("Refresh token {presented} not found or invalid")}),
        );
    }
    let n = state.issued.len() + 1;
    let access = format!("sk-ant-oat01-mock-{n}");
    let refresh = format!("sk-ant-ort01-mock-{n}");
    state.issued.push(access.clone());
    state.valid.insert(refresh.clone());
    json_response(
        StatusCode::OK,
        json!({"token_type": "Bearer", "access_token": access, "refresh_token": refresh,
               "expires_in": 28_800, "scope": "user:inference user:profile"}),
    )
}
