//! OpenAI's Chat Completions, streaming, as documented: the echo model,
//! errors, context overflow, and the tool-calling models.

use std::sync::Mutex;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::{API_KEY, bearer, tool_reply};

pub(super) fn error(status: StatusCode, message: &str, kind: &str, code: &str) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
                .to_string(),
        ))
        .expect("response")
}

pub(super) fn complete(seen: &Mutex<Vec<Value>>, headers: &HeaderMap, body: &str) -> Response {
    answer(seen, bearer(headers) == Some(API_KEY), body)
}

pub(super) fn answer(seen: &Mutex<Vec<Value>>, authorized: bool, body: &str) -> Response {
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
    // The window models count what they were sent, as a tokenizer would:
    // `small-window` a token per four characters, `dense-window` a token
    // per character (as for Chinese text); the others report fixed usage.
    let chars_per_token = match model {
        "small-window" => 4,
        "dense-window" => 1,
        _ => 0,
    };
    let (prompt, completion) = if chars_per_token > 0 {
        let sent: usize = messages
            .iter()
            .filter_map(|m| m["content"].as_str())
            .map(|text| text.chars().count())
            .sum();
        (
            sent.div_ceil(chars_per_token),
            reply.chars().count().div_ceil(chars_per_token),
        )
    } else {
        (12, 9)
    };
    events.push(
        json!({"id": id, "object": "chat.completion.chunk", "created": 1_764_000_000,
               "model": model, "choices": [],
               "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                         "total_tokens": prompt + completion}}),
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

/// Chat Completions: `delta.tool_calls` pieces by index, then
/// `finish_reason: "tool_calls"`; the result comes back as `role: "tool"`.
pub(super) fn openai_tool_model(model: &str, messages: &[Value]) -> Response {
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
pub(super) fn openai_exec_model(model: &str, messages: &[Value]) -> Response {
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
