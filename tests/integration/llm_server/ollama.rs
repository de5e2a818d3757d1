//! Ollama's native `/api/chat`, streaming NDJSON, as documented.

use std::sync::Mutex;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::{last_text, tool_reply};

/// Ollama's `/api/chat`, streaming NDJSON, as documented.
pub(super) fn ollama_chat(seen: &Mutex<Vec<Value>>, body: &str) -> Response {
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

/// Ollama: the call arrives whole in `message.tool_calls` (arguments an
/// object, no id); the result comes back as `role: "tool"`.
pub(super) fn ollama_tool_model(model: &str, request: &Value) -> Response {
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
