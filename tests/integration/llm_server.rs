//! A local server that speaks two providers' streaming formats as they
//! document them, for the agent tests: OpenAI's Chat Completions
//! (`data: {chunk}\n\n` ... `data: [DONE]\n\n`, error bodies
//! `{"error": {"message", "type", "code"}}`) and Anthropic's Messages
//! (named events `message_start` ... `message_stop`, error bodies
//! `{"type": "error", "error": {"type", "message"}}`), Ollama's native
//! `/api/chat` (newline-delimited JSON) and Gemini's
//! `streamGenerateContent?alt=sse`.
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
    let anthropic_error = |status: StatusCode, kind: &str, message: &str| {
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({"type": "error", "error": {"type": kind, "message": message}}).to_string(),
            ))
            .expect("response")
    };
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
    if model == "tool-model" {
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
    if request["model"] == "tool-model" {
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

/// Anthropic Messages: a text block, then a `tool_use` block whose input
/// streams as `input_json_delta`; the result comes back as a `tool_result`
/// block in a user message.
fn anthropic_tool_model(model: &str, request: &Value) -> Response {
    let result = request["messages"]
        .as_array()
        .and_then(|messages| messages.last())
        .and_then(|last| last["content"].as_array())
        .and_then(|blocks| blocks.iter().find(|b| b["type"] == "tool_result"))
        .and_then(|block| block["content"].as_str());
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
            events.extend(text_block(0, "Let me look."));
            events.push(("content_block_start", json!({"type": "content_block_start", "index": 1,
                "content_block": {"type": "tool_use", "id": "toolu_mock1", "name": "read", "input": {}}})));
            for piece in ["{\"path\": ", "\"notes.txt\"}"] {
                events.push((
                    "content_block_delta",
                    json!({"type": "content_block_delta",
                    "index": 1, "delta": {"type": "input_json_delta", "partial_json": piece}}),
                ));
            }
            events.push((
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 1}),
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
