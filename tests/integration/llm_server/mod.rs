//! A local server that speaks two providers' streaming formats as they
//! document them, for the agent tests: OpenAI's Chat Completions
//! (`data: {chunk}\n\n` ... `data: [DONE]\n\n`, error bodies
//! `{"error": {"message", "type", "code"}}`) and Anthropic's Messages
//! (named events `message_start` ... `message_stop`, error bodies
//! `{"type": "error", "error": {"type", "message"}}`), Ollama's native
//! `/api/chat` (newline-delimited JSON), Gemini's
//! `streamGenerateContent?alt=sse` and Bedrock's ConverseStream (binary
//! AWS event-stream frames with their CRCs, after checking the request's
//! SigV4 signature against the test key pair, recomputed here from the
//! bytes received, or its Bedrock API key).
//!
//! The model name picks the behaviour: `mock-model` streams a reply that
//! echoes the last user message in several chunks, `fail-401` and
//! `fail-429` answer those errors. `tool-model` (in every format) first
//! asks for the `read` tool on `notes.txt`, in the format's own tool-call
//! stream; once the request carries the tool's result (in the format's own
//! result shape) it answers `The file says: <result>`. Every request body
//! is kept for asserts. `tool-loop` (Chat Completions) asks for the tool
//! every time; `slow-tool` (Chat Completions) asks for it slowly (300 ms a
//! chunk) and its answer also quotes a user message sent after the result.
//!
//! GitHub Copilot: `GET /copilot_internal/v2/token` exchanges a GitHub
//! token (`Bearer`, [`GITHUB_TOKEN`] for an hour, [`GITHUB_TOKEN_SHORT`]
//! for a minute, anything else 401) for a fresh Copilot token, counted in
//! `exchanges`; `/copilot/chat/completions` answers as Chat Completions
//! only with a token it issued and Copilot's identity headers.

//!
//! One file per wire format: `openai` (Chat Completions), `responses`,
//! `anthropic`, `ollama`, `gemini`, `bedrock`, and `copilot` (its token
//! exchange in front of Chat Completions); this file routes and holds what
//! they share.

mod anthropic;
mod bedrock;
mod copilot;
mod gemini;
mod oauth;
mod ollama;
mod openai;
mod responses;

use axum::serve::ListenerExt;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::Value;

pub const API_KEY: &str = "sk-local-test-7f3a";
/// A GitHub token the mock Copilot exchange accepts (an hour's token).
pub const GITHUB_TOKEN: &str = "ghu_mockGithubToken0123456789";
/// One it accepts for a token that is already within the refresh margin.
pub const GITHUB_TOKEN_SHORT: &str = "ghu_mockShortLived0123456789";
/// What every Copilot token issued starts with.
pub const COPILOT_TOKEN_PREFIX: &str = "tid=mockcopilot";

pub use bedrock::{
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, BEDROCK_API_KEY, aws_env,
};
pub use oauth::REFRESH_TOKEN as OAUTH_REFRESH_TOKEN;

pub struct LlmServer {
    pub address: String,
    pub requests: Arc<Mutex<Vec<Value>>>,
    /// The GitHub tokens exchanged, in order.
    pub exchanges: Arc<Mutex<Vec<String>>>,
    /// Copilot tokens issued.
    issued: Arc<Mutex<Vec<String>>>,
    /// Anthropic's OAuth token endpoint and the bearers Messages accepted.
    oauth: Arc<Mutex<oauth::OAuthState>>,
    _runtime: tokio::runtime::Runtime,
}

impl LlmServer {
    pub fn start() -> LlmServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let seen = requests.clone();
        let seen_anthropic = requests.clone();
        let exchanges = Arc::new(Mutex::new(Vec::new()));
        let issued = Arc::new(Mutex::new(Vec::new()));
        let oauth = Arc::new(Mutex::new(oauth::OAuthState::new()));
        let app = axum::Router::new()
            .route(
                "/copilot_internal/v2/token",
                axum::routing::get({
                    let exchanges = exchanges.clone();
                    let issued = issued.clone();
                    move |headers: HeaderMap| {
                        let exchanges = exchanges.clone();
                        let issued = issued.clone();
                        async move { copilot::copilot_token(&exchanges, &issued, &headers) }
                    }
                }),
            )
            .route(
                "/copilot/chat/completions",
                axum::routing::post({
                    let seen = requests.clone();
                    let issued = issued.clone();
                    move |headers: HeaderMap, body: String| {
                        let seen = seen.clone();
                        let issued = issued.clone();
                        async move { copilot::copilot_complete(&seen, &issued, &headers, &body) }
                    }
                }),
            )
            .route(
                "/v1/chat/completions",
                axum::routing::post(move |headers: HeaderMap, body: String| {
                    let seen = seen.clone();
                    async move { openai::complete(&seen, &headers, &body) }
                }),
            )
            .route(
                "/v1/responses",
                axum::routing::post({
                    let seen = requests.clone();
                    move |body: String| {
                        let seen = seen.clone();
                        async move { responses::responses(&seen, &body) }
                    }
                }),
            )
            .route(
                "/api/chat",
                axum::routing::post({
                    let seen = requests.clone();
                    move |body: String| {
                        let seen = seen.clone();
                        async move { ollama::ollama_chat(&seen, &body) }
                    }
                }),
            )
            .route(
                "/v1beta/models/{action}",
                axum::routing::post({
                    let seen = requests.clone();
                    move |axum::extract::Path(action): axum::extract::Path<String>,
                          headers: HeaderMap,
                          body: String| {
                        let seen = seen.clone();
                        async move { gemini::gemini_stream(&seen, &action, &headers, &body) }
                    }
                }),
            )
            .route(
                "/model/{model}/converse-stream",
                axum::routing::post({
                    let seen = requests.clone();
                    move |axum::extract::Path(model): axum::extract::Path<String>,
                          uri: axum::http::Uri,
                          headers: HeaderMap,
                          body: axum::body::Bytes| {
                        let seen = seen.clone();
                        async move { bedrock::bedrock(&seen, &model, uri.path(), &headers, &body) }
                    }
                }),
            )
            .route(
                "/v1/messages",
                axum::routing::post({
                    let oauth = oauth.clone();
                    move |headers: HeaderMap, body: String| {
                        let seen = seen_anthropic.clone();
                        let oauth = oauth.clone();
                        async move { anthropic::messages(&seen, &oauth, &headers, &body) }
                    }
                }),
            )
            .route(
                "/v1/oauth/token",
                axum::routing::post({
                    let oauth = oauth.clone();
                    move |body: String| {
                        let oauth = oauth.clone();
                        async move { oauth::token(&oauth, &body).await }
                    }
                }),
            );
        runtime.spawn(async move {
            axum::serve(
                listener.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                }),
                app,
            )
            .await
            .expect("serve");
        });
        LlmServer {
            address,
            requests,
            exchanges,
            issued,
            oauth,
            _runtime: runtime,
        }
    }

    /// Copilot tokens issued so far.
    pub fn issued(&self) -> Vec<String> {
        self.issued.lock().expect("issued").clone()
    }

    pub fn exchanges(&self) -> Vec<String> {
        self.exchanges.lock().expect("exchanges").clone()
    }

    /// Anthropic's OAuth token endpoint on this server.
    pub fn oauth_token_url(&self) -> String {
        format!("http://{}/v1/oauth/token", self.address)
    }

    /// The refresh tokens presented to the token endpoint, in order.
    pub fn oauth_refreshes(&self) -> Vec<String> {
        self.oauth.lock().expect("oauth").refreshes.clone()
    }

    /// The OAuth access tokens issued, in order.
    pub fn oauth_issued(&self) -> Vec<String> {
        self.oauth.lock().expect("oauth").issued.clone()
    }

    /// The bearer tokens Messages accepted, in order.
    pub fn oauth_bearers(&self) -> Vec<String> {
        self.oauth.lock().expect("oauth").bearers.clone()
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.address)
    }

    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().expect("requests").clone()
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
}

fn last_text(
    messages: &[Value],
    role_key: &str,
    user: &str,
    text_of: impl Fn(&Value) -> Option<String>,
) -> String {
    messages
        .iter()
        .rev()
        .find(|m| m[role_key] == user)
        .and_then(text_of)
        .unwrap_or_default()
}

/// What `tool-model` answers once it has read the tool's result.
pub fn tool_reply(result: &str) -> String {
    format!("The file says: {result}")
}

fn sse(events: Vec<(&str, Value)>) -> Response {
    let text: String = events
        .into_iter()
        .map(|(name, data)| {
            if name.is_empty() {
                format!("data: {data}\n\n")
            } else {
                format!("event: {name}\ndata: {data}\n\n")
            }
        })
        .collect();
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from(text))
        .expect("response")
}
