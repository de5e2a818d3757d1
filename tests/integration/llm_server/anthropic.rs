//! Anthropic's Messages API, streaming, as documented: the echo model,
//! errors, and the tool-calling models (with and without thinking).

use std::sync::Mutex;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::{API_KEY, sse, tool_reply};

/// Anthropic's Messages API, streaming, as documented.
/// An API key in `x-api-key`, or an OAuth access token the token
/// endpoint issued as a bearer, with the OAuth beta and Claude Code's
/// identity opening the system prompt (else refused as Anthropic does).
pub(super) fn messages(
    seen: &Mutex<Vec<Value>>,
    oauth: &Mutex<super::oauth::OAuthState>,
    headers: &HeaderMap,
    body: &str,
) -> Response {
    let request: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    seen.lock().expect("requests").push(request.clone());
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    match (header("x-api-key"), super::bearer(headers)) {
        (Some(key), None) if key == API_KEY => {}
        (None, Some(token)) if oauth.lock().expect("oauth").accepts(token) => {
            let beta = header("anthropic-beta").unwrap_or("");
            if !beta.split(',').any(|b| b.trim() == "oauth-2025-04-20") {
                return anthropic_error(
                    StatusCode::UNAUTHORIZED,
                    "authentication_error",
                    "OAuth authentication is currently not supported.",
                );
            }
            if request["system"][0]["text"]
                != "You are Claude Code, Anthropic's official CLI for Claude."
            {
                return anthropic_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "This credential is only authorized for use with Claude Code and cannot be used for other API requests.",
                );
            }
        }
        _ => {
            return anthropic_error(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "invalid x-api-key",
            );
        }
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

/// Anthropic's error body.
pub(super) fn anthropic_error(status: StatusCode, kind: &str, message: &str) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"type": "error", "error": {"type": kind, "message": message}}).to_string(),
        ))
        .expect("response")
}

/// Anthropic Messages: a text block, then a `tool_use` block whose input
/// streams as `input_json_delta`; the result comes back as a `tool_result`
/// block in a user message.
pub(super) fn anthropic_tool_model(model: &str, request: &Value) -> Response {
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
