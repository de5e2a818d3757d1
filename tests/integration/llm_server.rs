//! A local server that speaks OpenAI's Chat Completions streaming format as
//! OpenAI documents it (`data: {chunk}\n\n` ... `data: [DONE]\n\n`, error
//! bodies `{"error": {"message", "type", "code"}}`), for the agent tests.
//!
//! The model name picks the behaviour: `mock-model` streams a reply that
//! echoes the last user message in several chunks, `fail-401` and
//! `fail-429` answer those errors. Every request body is kept for asserts.

use axum::serve::ListenerExt;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

pub const API_KEY: &str = "sk-local-test-7f3a";

pub struct LlmServer {
    pub address: String,
    pub requests: Arc<Mutex<Vec<Value>>>,
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
        let app = axum::Router::new().route(
            "/v1/chat/completions",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let seen = seen.clone();
                async move { complete(&seen, &headers, &body) }
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
            _runtime: runtime,
        }
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

fn complete(seen: &Mutex<Vec<Value>>, headers: &HeaderMap, body: &str) -> Response {
    let request: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    seen.lock().expect("requests").push(request.clone());
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        == Some(&format!("Bearer {API_KEY}"));
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
    let last_user = request["messages"]
        .as_array()
        .and_then(|messages| messages.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|message| message["content"].as_str())
        .unwrap_or("")
        .to_owned();
    let reply = format!("Hello from the mock. You said: {last_user}");
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
