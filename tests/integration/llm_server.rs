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

use axum::serve::ListenerExt;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

pub const API_KEY: &str = "sk-local-test-7f3a";
/// A GitHub token the mock Copilot exchange accepts (an hour's token).
pub const GITHUB_TOKEN: &str = "ghu_mockGithubToken0123456789";
/// One it accepts for a token that is already within the refresh margin.
pub const GITHUB_TOKEN_SHORT: &str = "ghu_mockShortLived0123456789";
/// What every Copilot token issued starts with.
pub const COPILOT_TOKEN_PREFIX: &str = "tid=mockcopilot";

/// The AWS test key pair the Bedrock endpoint signs with (AWS's own
/// documentation example, never a real key), and the session token it
/// expects when one is sent.
pub const AWS_ACCESS_KEY_ID: &str = "AKIDEXAMPLE";
pub const AWS_SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
pub const AWS_SESSION_TOKEN: &str = "session-token-for-tests";
pub const AWS_REGION: &str = "us-east-1";
/// The AWS environment of a gateway that signs with the test keys.
pub fn aws_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AWS_ACCESS_KEY_ID", AWS_ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", AWS_SECRET_ACCESS_KEY),
        ("AWS_SESSION_TOKEN", AWS_SESSION_TOKEN),
    ]
}

/// A Bedrock API key (`Authorization: Bearer`).
pub const BEDROCK_API_KEY: &str = "bedrock-api-key-test-91c2";

pub struct LlmServer {
    pub address: String,
    pub requests: Arc<Mutex<Vec<Value>>>,
    /// The GitHub tokens exchanged, in order.
    pub exchanges: Arc<Mutex<Vec<String>>>,
    /// Copilot tokens issued.
    issued: Arc<Mutex<Vec<String>>>,
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
        let app = axum::Router::new()
            .route(
                "/copilot_internal/v2/token",
                axum::routing::get({
                    let exchanges = exchanges.clone();
                    let issued = issued.clone();
                    move |headers: HeaderMap| {
                        let exchanges = exchanges.clone();
                        let issued = issued.clone();
                        async move { copilot_token(&exchanges, &issued, &headers) }
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
                        async move { copilot_complete(&seen, &issued, &headers, &body) }
                    }
                }),
            )
            .route(
                "/v1/chat/completions",
                axum::routing::post(move |headers: HeaderMap, body: String| {
                    let seen = seen.clone();
                    async move { complete(&seen, &headers, &body) }
                }),
            )
            .route(
                "/v1/responses",
                axum::routing::post({
                    let seen = requests.clone();
                    move |body: String| {
                        let seen = seen.clone();
                        async move { responses(&seen, &body) }
                    }
                }),
            )
            .route(
                "/api/chat",
                axum::routing::post({
                    let seen = requests.clone();
                    move |body: String| {
                        let seen = seen.clone();
                        async move { ollama_chat(&seen, &body) }
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
                        async move { gemini_stream(&seen, &action, &headers, &body) }
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
                        async move { bedrock(&seen, &model, uri.path(), &headers, &body) }
                    }
                }),
            )
            .route(
                "/v1/messages",
                axum::routing::post(move |headers: HeaderMap, body: String| {
                    let seen = seen_anthropic.clone();
                    async move { messages(&seen, &headers, &body) }
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

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.address)
    }

    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().expect("requests").clone()
    }
}

fn error(status: StatusCode, message: &str, kind: &str, code: &str) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
                .to_string(),
        ))
        .expect("response")
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
}

/// GitHub's token exchange: the GitHub token in, a Copilot token out.
fn copilot_token(
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
fn copilot_complete(
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

fn complete(seen: &Mutex<Vec<Value>>, headers: &HeaderMap, body: &str) -> Response {
    answer(seen, bearer(headers) == Some(API_KEY), body)
}

fn answer(seen: &Mutex<Vec<Value>>, authorized: bool, body: &str) -> Response {
    let request: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    seen.lock().expect("requests").push(request.clone());
    let model = request["model"].as_str().unwrap_or("");
    if !authorized || model == "fail-401" {
        return error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided.",
            "invalid_request_error",
            "invalid_api_key",
        );
    }
    if model == "fail-429" {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "Rate limit reached for requests",
            "requests",
            "rate_limit_exceeded",
        );
    }
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|message| message["content"].as_str())
        .unwrap_or("")
        .to_owned();
    let summarizing = messages
        .first()
        .and_then(|m| m["content"].as_str())
        .is_some_and(|text| text.starts_with("Summarize the conversation"));
    // `overflow-model` holds at most 7 messages, as a small context window.
    if model == "overflow-model" && !summarizing && messages.len() > 7 {
        return error(
            StatusCode::BAD_REQUEST,
            "This model's maximum context length is 4096 tokens. However, your messages resulted in 5000 tokens.",
            "invalid_request_error",
            "context_length_exceeded",
        );
    }
    if model == "tool-model" || model == "tool-loop" || model == "slow-tool" {
        return openai_tool_model(model, &messages);
    }
    if model == "exec-model" {
        return openai_exec_model(model, &messages);
    }
    let reply = if summarizing {
        format!("SUMMARY of {} characters", last_user.len())
    } else {
        format!("Hello from the mock. You said: {last_user}")
    };
    let id = "chatcmpl-mock1";
    let chunk = |delta: Value, finish: Value| {
        json!({"id": id, "object": "chat.completion.chunk", "created": 1_764_000_000,
               "model": model, "system_fingerprint": "fp_mock",
               "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    for piece in reply.split_inclusive(' ') {
        events.push(chunk(json!({"content": piece}), Value::Null));
    }
    events.push(chunk(json!({}), json!("stop")));
    events.push(
        json!({"id": id, "object": "chat.completion.chunk", "created": 1_764_000_000,
                       "model": model, "choices": [],
                       "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}}),
    );
    let mut frames: Vec<String> = events
        .into_iter()
        .map(|event| format!("data: {event}\n\n"))
        .collect();
    frames.push("data: [DONE]\n\n".to_owned());
    let body = if model == "slow-model" {
        // One chunk every 200 ms: long enough to abort mid-reply.
        let stream = futures_util::stream::unfold(frames.into_iter(), |mut frames| async move {
            let frame = frames.next()?;
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            Some((Ok::<_, std::io::Error>(frame), frames))
        });
        Body::from_stream(stream)
    } else {
        Body::from(frames.concat())
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
        .expect("response")
}

/// Anthropic's Messages API, streaming, as documented.
fn messages(seen: &Mutex<Vec<Value>>, headers: &HeaderMap, body: &str) -> Response {
    let request: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    seen.lock().expect("requests").push(request.clone());
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if header("x-api-key") != Some(API_KEY) {
        return anthropic_error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid x-api-key",
        );
    }
    if header("anthropic-version") != Some("2023-06-01") {
        return anthropic_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "anthropic-version header is required",
        );
    }
    let model = request["model"].as_str().unwrap_or("").to_owned();
    if model == "claude-429" {
        return anthropic_error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
        );
    }
    if model == "tool-model" || model == "tool-think" {
        return anthropic_tool_model(&model, &request);
    }
    let last_user = request["messages"]
        .as_array()
        .and_then(|messages| messages.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|message| message["content"].as_str())
        .unwrap_or("")
        .to_owned();
    let reply = format!("Claude mock here. You said: {last_user}");
    let mut events = vec![
        (
            "message_start",
            json!({"type": "message_start", "message": {
            "id": "msg_mock1", "type": "message", "role": "assistant", "content": [],
            "model": model, "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 25, "output_tokens": 1}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}}),
        ),
        ("ping", json!({"type": "ping"})),
    ];
    for piece in reply.split_inclusive(' ') {
        events.push((
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": piece}}),
        ));
    }
    events.push((
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push((
        "message_delta",
        json!({"type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": null},
        "usage": {"output_tokens": 11}}),
    ));
    events.push(("message_stop", json!({"type": "message_stop"})));
    let text: String = events
        .into_iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect();
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from(text))
        .expect("response")
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

/// Ollama's `/api/chat`, streaming NDJSON, as documented.
fn ollama_chat(seen: &Mutex<Vec<Value>>, body: &str) -> Response {
    let request: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    seen.lock().expect("requests").push(request.clone());
    let model = request["model"].as_str().unwrap_or("").to_owned();
    if model == "tool-model" {
        return ollama_tool_model(&model, &request);
    }
    if model != "llama-mock" {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({"error": format!("model '{model}' not found")}).to_string(),
            ))
            .expect("response");
    }
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let said = last_text(&messages, "role", "user", |m| {
        m["content"].as_str().map(str::to_owned)
    });
    let reply = format!("Llama mock here. You said: {said}");
    let mut lines = String::new();
    for piece in reply.split_inclusive(' ') {
        lines.push_str(
            &json!({"model": model, "created_at": "2026-11-25T10:00:00Z",
            "message": {"role": "assistant", "content": piece}, "done": false})
            .to_string(),
        );
        lines.push('\n');
    }
    lines.push_str(
        &json!({"model": model, "created_at": "2026-11-25T10:00:01Z",
        "message": {"role": "assistant", "content": ""}, "done": true, "done_reason": "stop",
        "total_duration": 1000, "prompt_eval_count": 31, "eval_count": 7})
        .to_string(),
    );
    lines.push('\n');
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from(lines))
        .expect("response")
}

/// Gemini's `streamGenerateContent?alt=sse`, as documented.
fn gemini_stream(
    seen: &Mutex<Vec<Value>>,
    action: &str,
    headers: &HeaderMap,
    body: &str,
) -> Response {
    let request: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    seen.lock()
        .expect("requests")
        .push(json!({"action": action, "body": request}));
    let gemini_error = |status: StatusCode, code: u16, state: &str, message: &str| {
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({"error": {"code": code, "message": message, "status": state}}).to_string(),
            ))
            .expect("response")
    };
    if headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()) != Some(API_KEY) {
        return gemini_error(
            StatusCode::FORBIDDEN,
            403,
            "PERMISSION_DENIED",
            "API key not valid.",
        );
    }
    let Some(model) = action.strip_suffix(":streamGenerateContent") else {
        return gemini_error(StatusCode::NOT_FOUND, 404, "NOT_FOUND", "unknown method");
    };
    if model == "gemini-429" {
        return gemini_error(
            StatusCode::TOO_MANY_REQUESTS,
            429,
            "RESOURCE_EXHAUSTED",
            "Resource has been exhausted (e.g. check quota).",
        );
    }
    if model == "tool-model" {
        return gemini_tool_model(model, &request);
    }
    let contents = request["contents"].as_array().cloned().unwrap_or_default();
    let said = last_text(&contents, "role", "user", |m| {
        m["parts"][0]["text"].as_str().map(str::to_owned)
    });
    let reply = format!("Gemini mock here. You said: {said}");
    let pieces: Vec<&str> = reply.split_inclusive(' ').collect();
    let mut text = String::new();
    for (index, piece) in pieces.iter().enumerate() {
        let mut chunk = json!({"candidates": [{"content": {"parts": [{"text": piece}], "role": "model"}, "index": 0}],
                               "modelVersion": model});
        if index + 1 == pieces.len() {
            chunk["candidates"][0]["finishReason"] = json!("STOP");
            chunk["usageMetadata"] =
                json!({"promptTokenCount": 17, "candidatesTokenCount": 6, "totalTokenCount": 23});
        }
        text.push_str(&format!("data: {chunk}\r\n\r\n"));
    }
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from(text))
        .expect("response")
}

/// OpenAI's Responses API, streaming, as documented (named events).
fn responses(seen: &Mutex<Vec<Value>>, body: &str) -> Response {
    let request: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    seen.lock().expect("requests").push(request.clone());
    if request["model"] == "tool-model" || request["model"] == "tool-reason" {
        return responses_tool_model(&request);
    }
    let input = request["input"].as_array().cloned().unwrap_or_default();
    let said = last_text(&input, "role", "user", |m| {
        m["content"].as_str().map(str::to_owned)
    });
    let reply = format!("Responses mock here. You said: {said}");
    let response = |status: &str| {
        json!({"id": "resp_mock1", "object": "response", "status": status,
        "model": request["model"], "output": []})
    };
    let mut events = vec![
        (
            "response.created",
            json!({"type": "response.created", "sequence_number": 0, "response": response("in_progress")}),
        ),
        (
            "response.in_progress",
            json!({"type": "response.in_progress", "sequence_number": 1, "response": response("in_progress")}),
        ),
        (
            "response.output_item.added",
            json!({"type": "response.output_item.added", "sequence_number": 2, "output_index": 0,
            "item": {"id": "msg_1", "type": "message", "status": "in_progress", "role": "assistant", "content": []}}),
        ),
        (
            "response.content_part.added",
            json!({"type": "response.content_part.added", "sequence_number": 3, "item_id": "msg_1",
            "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
        ),
    ];
    for piece in reply.split_inclusive(' ') {
        events.push((
            "response.output_text.delta",
            json!({"type": "response.output_text.delta", "sequence_number": 4,
            "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": piece}),
        ));
    }
    events.push((
        "response.output_text.done",
        json!({"type": "response.output_text.done", "item_id": "msg_1",
        "output_index": 0, "content_index": 0, "text": reply}),
    ));
    let mut done = response("completed");
    done["usage"] = json!({"input_tokens": 14, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 8, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 22});
    events.push((
        "response.completed",
        json!({"type": "response.completed", "response": done}),
    ));
    let text: String = events
        .into_iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect();
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from(text))
        .expect("response")
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

/// Chat Completions: `delta.tool_calls` pieces by index, then
/// `finish_reason: "tool_calls"`; the result comes back as `role: "tool"`.
fn openai_tool_model(model: &str, messages: &[Value]) -> Response {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-tool1", "object": "chat.completion.chunk", "created": 1_764_000_000,
               "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let usage = json!({"id": "chatcmpl-tool1", "object": "chat.completion.chunk",
        "created": 1_764_000_000, "model": model, "choices": [],
        "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}});
    // `tool-loop` never stops asking.
    let result = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "tool")
        .and_then(|m| m["content"].as_str())
        .filter(|_| model != "tool-loop");
    // `slow-tool` also says what the last message was when it was the
    // user's (one steered in after the tool result).
    let mut reply = result.map(tool_reply).unwrap_or_default();
    if model == "slow-tool"
        && let Some(last) = messages.last().filter(|m| m["role"] == "user")
    {
        reply = format!(
            "{reply} / then you said: {}",
            last["content"].as_str().unwrap_or("")
        );
    }
    let mut events = match result {
        Some(_) => vec![
            chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            chunk(json!({"content": reply}), Value::Null),
            chunk(json!({}), json!("stop")),
        ],
        None => vec![
            chunk(
                json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0,
                    "id": "call_mock1", "type": "function",
                    "function": {"name": "read", "arguments": ""}}]}),
                Value::Null,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"path\":"}}]}),
                Value::Null,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": " \"notes.txt\"}"}}]}),
                Value::Null,
            ),
            chunk(json!({}), json!("tool_calls")),
        ],
    };
    events.push(usage);
    let mut text: String = events
        .into_iter()
        .map(|event| format!("data: {event}\n\n"))
        .collect();
    text.push_str("data: [DONE]\n\n");
    // `slow-tool` asks for its tool slowly: 300 ms per chunk.
    let body = if model == "slow-tool" && result.is_none() {
        let frames: Vec<String> = text.split_inclusive("\n\n").map(str::to_owned).collect();
        let stream = futures_util::stream::unfold(frames.into_iter(), |mut frames| async move {
            let frame = frames.next()?;
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            Some((Ok::<_, std::io::Error>(frame), frames))
        });
        Body::from_stream(stream)
    } else {
        Body::from(text)
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(body)
        .expect("response")
}

/// `exec-model` (Chat Completions): asks the `exec` tool to run the last
/// user message as a shell command (`ask-always: ` in front adds
/// `ask: "always"`); once the last message is the tool's result, answers
/// `tool_reply(result)`.
fn openai_exec_model(model: &str, messages: &[Value]) -> Response {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-exec1", "object": "chat.completion.chunk", "created": 1_764_000_000,
               "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let last = messages.last().cloned().unwrap_or(Value::Null);
    let events = if last["role"] == "tool" {
        let result = last["content"].as_str().unwrap_or("");
        vec![
            chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            chunk(json!({"content": tool_reply(result)}), Value::Null),
            chunk(json!({}), json!("stop")),
        ]
    } else {
        // "ask-always: <command>" also passes the call's own `ask`.
        let content = last["content"].as_str().unwrap_or("");
        let arguments = match content.strip_prefix("ask-always: ") {
            Some(command) => json!({"command": command, "ask": "always"}),
            None => json!({"command": content}),
        }
        .to_string();
        vec![
            chunk(
                json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0,
                    "id": format!("call_exec_{}", messages.len()), "type": "function",
                    "function": {"name": "exec", "arguments": arguments}}]}),
                Value::Null,
            ),
            chunk(json!({}), json!("tool_calls")),
        ]
    };
    let mut text: String = events
        .into_iter()
        .map(|event| format!("data: {event}\n\n"))
        .collect();
    text.push_str("data: [DONE]\n\n");
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from(text))
        .expect("response")
}

/// Anthropic Messages: a text block, then a `tool_use` block whose input
/// streams as `input_json_delta`; the result comes back as a `tool_result`
/// block in a user message.
/// Anthropic's error body.
fn anthropic_error(status: StatusCode, kind: &str, message: &str) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"type": "error", "error": {"type": kind, "message": message}}).to_string(),
        ))
        .expect("response")
}

fn anthropic_tool_model(model: &str, request: &Value) -> Response {
    let result = request["messages"]
        .as_array()
        .and_then(|messages| messages.last())
        .and_then(|last| last["content"].as_array())
        .and_then(|blocks| blocks.iter().find(|b| b["type"] == "tool_result"))
        .and_then(|block| block["content"].as_str());
    // With thinking on, Anthropic wants the assistant turn that called the
    // tool to start with its thinking block, signature intact.
    let thinking = request["thinking"]["type"] == "enabled";
    if thinking && result.is_some() {
        let turn = request["messages"]
            .as_array()
            .and_then(|messages| messages.iter().rev().find(|m| m["role"] == "assistant"))
            .map(|message| message["content"][0].clone())
            .unwrap_or(Value::Null);
        if turn
            != json!({"type": "thinking", "thinking": "I should read the note.", "signature": "mock-sig"})
        {
            return anthropic_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found `text`. When `thinking` is enabled, a final `assistant` message must start with a thinking block",
            );
        }
    }
    let start = json!({"type": "message_start", "message": {
        "id": "msg_tool1", "type": "message", "role": "assistant", "content": [],
        "model": model, "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": 30, "output_tokens": 1}}});
    let mut events = vec![("message_start", start)];
    let text_block = |index: u64, text: &str| {
        vec![
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": index,
                "content_block": {"type": "text", "text": ""}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index,
                "delta": {"type": "text_delta", "text": text}}),
            ),
            (
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            ),
        ]
    };
    let stop_reason = match result {
        Some(result) => {
            events.extend(text_block(0, &tool_reply(result)));
            "end_turn"
        }
        None => {
            let mut index = 0;
            if thinking {
                events.push((
                    "content_block_start",
                    json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "thinking", "thinking": ""}}),
                ));
                for delta in [
                    json!({"type": "thinking_delta", "thinking": "I should "}),
                    json!({"type": "thinking_delta", "thinking": "read the note."}),
                    json!({"type": "signature_delta", "signature": "mock-sig"}),
                ] {
                    events.push((
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": 0, "delta": delta}),
                    ));
                }
                events.push((
                    "content_block_stop",
                    json!({"type": "content_block_stop", "index": 0}),
                ));
                index = 1;
            }
            events.extend(text_block(index, "Let me look."));
            events.push(("content_block_start", json!({"type": "content_block_start", "index": index + 1,
                "content_block": {"type": "tool_use", "id": "toolu_mock1", "name": "read", "input": {}}})));
            for piece in ["{\"path\": ", "\"notes.txt\"}"] {
                events.push((
                    "content_block_delta",
                    json!({"type": "content_block_delta",
                    "index": index + 1, "delta": {"type": "input_json_delta", "partial_json": piece}}),
                ));
            }
            events.push((
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index + 1}),
            ));
            "tool_use"
        }
    };
    events.push((
        "message_delta",
        json!({"type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": null},
        "usage": {"output_tokens": 15}}),
    ));
    events.push(("message_stop", json!({"type": "message_stop"})));
    sse(events)
}

/// Ollama: the call arrives whole in `message.tool_calls` (arguments an
/// object, no id); the result comes back as `role: "tool"`.
fn ollama_tool_model(model: &str, request: &Value) -> Response {
    let result = request["messages"]
        .as_array()
        .and_then(|messages| messages.iter().rev().find(|m| m["role"] == "tool"))
        .and_then(|m| m["content"].as_str());
    let message = match result {
        Some(result) => json!({"role": "assistant", "content": tool_reply(result)}),
        None => json!({"role": "assistant", "content": "",
            "tool_calls": [{"function": {"name": "read", "arguments": {"path": "notes.txt"}}}]}),
    };
    let lines = format!(
        "{}\n{}\n",
        json!({"model": model, "created_at": "2026-11-25T10:00:00Z", "message": message, "done": false}),
        json!({"model": model, "created_at": "2026-11-25T10:00:01Z",
               "message": {"role": "assistant", "content": ""}, "done": true, "done_reason": "stop",
               "prompt_eval_count": 40, "eval_count": 9})
    );
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from(lines))
        .expect("response")
}

/// Gemini: a `functionCall` part (with a `thoughtSignature`); the result
/// comes back as a `functionResponse` part.
fn gemini_tool_model(model: &str, request: &Value) -> Response {
    let result = request["contents"]
        .as_array()
        .and_then(|contents| contents.last())
        .and_then(|last| last["parts"].as_array())
        .and_then(|parts| parts.iter().find(|p| p["functionResponse"].is_object()))
        .and_then(|part| part["functionResponse"]["response"]["result"].as_str());
    let parts = match result {
        Some(result) => json!([{"text": tool_reply(result)}]),
        None => json!([{"functionCall": {"name": "read", "args": {"path": "notes.txt"}},
                        "thoughtSignature": "c2lnLW1vY2s="}]),
    };
    let chunk = json!({"candidates": [{"content": {"parts": parts, "role": "model"},
        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 22, "candidatesTokenCount": 4, "totalTokenCount": 26},
        "modelVersion": model});
    sse(vec![("", chunk)])
}

/// Responses: a `function_call` output item whose arguments stream as
/// `response.function_call_arguments.delta`; the result comes back as a
/// `function_call_output` input item.
fn responses_tool_model(request: &Value) -> Response {
    let result = request["input"]
        .as_array()
        .and_then(|input| {
            input
                .iter()
                .rev()
                .find(|i| i["type"] == "function_call_output")
        })
        .and_then(|item| item["output"].as_str());
    let response = |status: &str| {
        json!({"id": "resp_tool1", "object": "response", "status": status,
               "model": request["model"], "output": []})
    };
    let mut events = vec![(
        "response.created",
        json!({"type": "response.created", "sequence_number": 0, "response": response("in_progress")}),
    )];
    match result {
        Some(result) => {
            events.push(("response.output_item.added", json!({"type": "response.output_item.added",
                "output_index": 0, "item": {"id": "msg_2", "type": "message", "status": "in_progress",
                "role": "assistant", "content": []}})));
            events.push(("response.output_text.delta", json!({"type": "response.output_text.delta",
                "item_id": "msg_2", "output_index": 0, "content_index": 0, "delta": tool_reply(result)})));
        }
        None => {
            // Asked for (a reasoning model, stateless): the encrypted
            // reasoning that led to the call, which must come back with it.
            let include = request["include"].as_array().cloned().unwrap_or_default();
            if include.contains(&json!("reasoning.encrypted_content")) {
                events.push((
                    "response.output_item.done",
                    json!({"type": "response.output_item.done",
                    "output_index": 0, "item": {"id": "rs_1", "type": "reasoning", "summary": [],
                    "encrypted_content": "gAAAA-mock-reasoning"}}),
                ));
            }
            let item = json!({"id": "fc_1", "type": "function_call", "status": "in_progress",
                              "call_id": "call_resp1", "name": "read", "arguments": ""});
            events.push((
                "response.output_item.added",
                json!({"type": "response.output_item.added",
                "output_index": 0, "item": item}),
            ));
            for piece in ["{\"path\":", "\"notes.txt\"}"] {
                events.push((
                    "response.function_call_arguments.delta",
                    json!({
                    "type": "response.function_call_arguments.delta", "item_id": "fc_1",
                    "output_index": 0, "delta": piece}),
                ));
            }
            events.push((
                "response.function_call_arguments.done",
                json!({
                "type": "response.function_call_arguments.done", "item_id": "fc_1",
                "output_index": 0, "arguments": "{\"path\":\"notes.txt\"}"}),
            ));
            events.push((
                "response.output_item.done",
                json!({"type": "response.output_item.done",
                "output_index": 0, "item": {"id": "fc_1", "type": "function_call",
                "status": "completed", "call_id": "call_resp1", "name": "read",
                "arguments": "{\"path\":\"notes.txt\"}"}}),
            ));
        }
    }
    let mut done = response("completed");
    done["usage"] = json!({"input_tokens": 18, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 25});
    events.push((
        "response.completed",
        json!({"type": "response.completed", "response": done}),
    ));
    sse(events)
}

/// Bedrock's ConverseStream: the request authenticated (SigV4 recomputed,
/// or the API key), then binary event-stream frames, delivered in 13-byte
/// pieces so frames straddle reads. `throttled` answers a
/// `throttlingException` frame after `messageStart`; `tool-model` asks for
/// `read` with a `toolUse` block whose input streams in pieces.
fn bedrock(
    seen: &Mutex<Vec<Value>>,
    model: &str,
    raw_path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let auth = match bearer {
        Some(key) if key == BEDROCK_API_KEY => Ok("bearer".to_owned()),
        Some(_) => Err((
            "UnrecognizedClientException",
            "The security token included in the request is invalid.".to_owned(),
        )),
        None => verify_sigv4(headers, raw_path, body),
    };
    seen.lock().expect("requests").push(json!({
        "bedrock": model, "path": raw_path, "body": request,
        "auth": auth.as_ref().map(String::as_str).unwrap_or("refused"),
    }));
    if let Err((kind, message)) = auth {
        return Response::builder()
            .status(StatusCode::FORBIDDEN)
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                "x-amzn-ErrorType",
                format!("{kind}:http://internal.amazon.com/coral/com.amazon.coral.service/"),
            )
            .body(Body::from(json!({"message": message}).to_string()))
            .expect("response");
    }
    let event = |kind: &str, payload: Value| {
        frame(
            &[
                (":event-type", kind),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            payload.to_string().as_bytes(),
        )
    };
    let mut frames = vec![event(
        "messageStart",
        json!({"p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS", "role": "assistant"}),
    )];
    let stop = |frames: &mut Vec<Vec<u8>>, reason: &str, input: u64, output: u64| {
        frames.push(event(
            "messageStop",
            json!({"p": "abcdefghijklmnopqrstuvw", "stopReason": reason}),
        ));
        frames.push(event("metadata", json!({"metrics": {"latencyMs": 412}, "p": "abcdef",
            "usage": {"inputTokens": input, "outputTokens": output, "totalTokens": input + output}})));
    };
    let text_block = |frames: &mut Vec<Vec<u8>>, index: u64, text: &str| {
        for piece in text.split_inclusive(' ') {
            frames.push(event(
                "contentBlockDelta",
                json!({"contentBlockIndex": index,
                "delta": {"text": piece}, "p": "abcdefghijk"}),
            ));
        }
        frames.push(event(
            "contentBlockStop",
            json!({"contentBlockIndex": index, "p": "abcdefghijklm"}),
        ));
    };
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    match model {
        "throttled" => frames.push(frame(
            &[
                (":exception-type", "throttlingException"),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            json!({"message": "Too many requests, please wait before trying again."})
                .to_string()
                .as_bytes(),
        )),
        "tool-model" | "anthropic.claude-tool-v1:0" => {
            // With thinking on, Claude wants its reasoning back before the
            // tool call it made, as Bedrock answers otherwise.
            let thinking = request["additionalModelRequestFields"]["thinking"].is_object();
            let assistant = messages.iter().rev().find(|m| m["role"] == "assistant");
            if thinking
                && let Some(assistant) = assistant
                && assistant["content"][0]["reasoningContent"]["reasoningText"]["signature"]
                    != "sig-mock-1"
            {
                return Response::builder()
                    .status(StatusCode::BAD_REQUEST)
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(
                        "x-amzn-ErrorType",
                        "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/",
                    )
                    .body(Body::from(
                        json!({"message": "messages.1.content.0.type: Expected `thinking` or \
                            `redacted_thinking`, but found `tool_use`. When `thinking` is enabled, \
                            a final `assistant` message must start with a thinking block."})
                        .to_string(),
                    ))
                    .expect("response");
            }
            let result = messages
                .last()
                .and_then(|last| last["content"].as_array())
                .and_then(|blocks| blocks.iter().find(|b| b["toolResult"].is_object()))
                .and_then(|block| block["toolResult"]["content"][0]["text"].as_str());
            match result {
                Some(result) => {
                    text_block(&mut frames, 0, &tool_reply(result));
                    stop(&mut frames, "end_turn", 52, 9);
                }
                None => {
                    let mut index = 0;
                    if thinking {
                        for delta in [
                            json!({"text": "I should read "}),
                            json!({"text": "the file."}),
                            json!({"signature": "sig-mock-1"}),
                        ] {
                            frames.push(event(
                                "contentBlockDelta",
                                json!({"contentBlockIndex": 0,
                                       "delta": {"reasoningContent": delta}, "p": "abc"}),
                            ));
                        }
                        frames.push(event(
                            "contentBlockStop",
                            json!({"contentBlockIndex": 0, "p": "a"}),
                        ));
                        index = 1;
                    }
                    text_block(&mut frames, index, "Let me look.");
                    index += 1;
                    frames.push(event("contentBlockStart", json!({"contentBlockIndex": index,
                        "start": {"toolUse": {"toolUseId": "tooluse_mock1", "name": "read"}}, "p": "abcd"})));
                    for piece in ["{\"path\": ", "\"notes.txt\"}"] {
                        frames.push(event(
                            "contentBlockDelta",
                            json!({"contentBlockIndex": index,
                            "delta": {"toolUse": {"input": piece}}, "p": "abcdefg"}),
                        ));
                    }
                    frames.push(event(
                        "contentBlockStop",
                        json!({"contentBlockIndex": index, "p": "ab"}),
                    ));
                    stop(&mut frames, "tool_use", 40, 21);
                }
            }
        }
        _ => {
            let said = messages
                .iter()
                .rev()
                .find(|m| m["role"] == "user")
                .and_then(|m| m["content"][0]["text"].as_str())
                .unwrap_or("")
                .to_owned();
            text_block(
                &mut frames,
                0,
                &format!("Bedrock mock here. You said: {said}"),
            );
            stop(&mut frames, "end_turn", 19, 8);
        }
    }
    let bytes = frames.concat();
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(13).map(|piece| Ok(piece.to_vec())).collect();
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/vnd.amazon.eventstream")
        .body(Body::from_stream(futures_util::stream::iter(pieces)))
        .expect("response")
}

/// One event-stream frame with string headers: prelude (total and headers
/// lengths, CRC32 of both), headers, payload, CRC32 of all before it.
pub fn frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut head = Vec::new();
    for (name, value) in headers {
        head.push(name.len() as u8);
        head.extend_from_slice(name.as_bytes());
        head.push(7); // string
        head.extend_from_slice(&(value.len() as u16).to_be_bytes());
        head.extend_from_slice(value.as_bytes());
    }
    let total = 12 + head.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(head.len() as u32).to_be_bytes());
    let prelude = crc32fast::hash(&out);
    out.extend_from_slice(&prelude.to_be_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&key, data.as_bytes()).as_ref().to_vec()
}

/// Recomputes the request's SigV4 signature from what arrived (method,
/// path, the headers it says it signed, the body) with the test secret,
/// as Bedrock does; returns `sigv4` or the error Bedrock would answer.
fn verify_sigv4(
    headers: &HeaderMap,
    raw_path: &str,
    body: &[u8],
) -> Result<String, (&'static str, String)> {
    use sha2::Digest;
    let missing = |what: &str| {
        (
            "MissingAuthenticationTokenException",
            format!("missing {what}"),
        )
    };
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let authorization = get("authorization").ok_or_else(|| missing("authorization"))?;
    let fields = authorization
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| {
            (
                "IncompleteSignatureException",
                "not AWS4-HMAC-SHA256".to_owned(),
            )
        })?;
    let field = |name: &str| {
        fields.split(", ").find_map(|part| {
            part.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
        })
    };
    let credential = field("Credential").ok_or_else(|| missing("Credential"))?;
    let signed = field("SignedHeaders").ok_or_else(|| missing("SignedHeaders"))?;
    let signature = field("Signature").ok_or_else(|| missing("Signature"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5 || scope[0] != AWS_ACCESS_KEY_ID {
        return Err((
            "UnrecognizedClientException",
            "The security token included in the request is invalid.".to_owned(),
        ));
    }
    let amz_date = get("x-amz-date").ok_or_else(|| missing("x-amz-date"))?;
    if scope[1] != &amz_date[..8.min(amz_date.len())]
        || scope[2] != AWS_REGION
        || scope[3] != "bedrock"
        || scope[4] != "aws4_request"
    {
        return Err((
            "InvalidSignatureException",
            format!("Credential should be scoped correctly: {credential}"),
        ));
    }
    let names: Vec<&str> = signed.split(';').collect();
    for required in ["host", "x-amz-date", "content-type"] {
        if !names.contains(&required) {
            return Err((
                "InvalidSignatureException",
                format!("{required} is not signed"),
            ));
        }
    }
    if let Some(token) = get("x-amz-security-token") {
        if !names.contains(&"x-amz-security-token") {
            return Err((
                "InvalidSignatureException",
                "the session token is not signed".to_owned(),
            ));
        }
        if token != AWS_SESSION_TOKEN {
            return Err((
                "UnrecognizedClientException",
                "The security token included in the request is invalid.".to_owned(),
            ));
        }
    }
    let mut canonical_headers = String::new();
    for name in &names {
        let value = get(name).ok_or_else(|| missing(name))?;
        canonical_headers.push_str(&format!("{name}:{}\n", value.trim()));
    }
    // The path as received, encoded once more (every service but S3).
    let mut path = String::new();
    for byte in raw_path.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                path.push(byte as char)
            }
            _ => path.push_str(&format!("%{byte:02X}")),
        }
    }
    let canonical = format!(
        "POST\n{path}\n\n{canonical_headers}\n{signed}\n{}",
        hex(&sha2::Sha256::digest(body))
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{}\n{}",
        scope[1..].join("/"),
        hex(&sha2::Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{AWS_SECRET_ACCESS_KEY}").as_bytes(), scope[1]);
    for part in [scope[2], scope[3], scope[4]] {
        key = hmac(&key, part);
    }
    if hex(&hmac(&key, &string_to_sign)) != signature {
        // As AWS words it, canonical request (session token included) and all.
        return Err((
            "InvalidSignatureException",
            format!(
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.\n\nThe Canonical String for this request should have been\n'{canonical}'\n\nThe String-to-Sign should have been\n'{string_to_sign}'\n"
            ),
        ));
    }
    Ok("sigv4".to_owned())
}
