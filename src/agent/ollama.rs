//! Ollama's native chat API (`api: "ollama"`), streaming.
//!
//! `POST {baseUrl}/api/chat` with `stream: true`; the reply arrives as
//! newline-delimited JSON objects (`{"message": {"content"}, "done": false}`
//! ..., then one with `done: true`, `done_reason` and the token counts).
//! Errors are `{"error": "..."}` with an HTTP status.
//!
//! Tools are declared as in Chat Completions; a call arrives whole in a
//! chunk's `message.tool_calls` (`{function: {name, arguments}}`, the
//! arguments an object, no id: we give each one). The calls go back in
//! the assistant message, each result as `{role: "tool", content,
//! tool_name}`.

use futures_util::StreamExt;
use serde_json::{Value, json};

use super::provider::{
    Completion, Endpoint, Failure, KeyHeader, Message, PendingCalls, ToolSpec, send,
};

/// The longest NDJSON line accepted: a bound on a misbehaving server.
const LINE_BYTES_MAX: usize = 1024 * 1024;

pub fn request_body(model: &str, messages: &[Message]) -> Value {
    let messages: Vec<Value> = messages.iter().map(message).collect();
    json!({"model": model, "messages": messages, "stream": true})
}

fn message(message: &Message) -> Value {
    match message {
        Message::System(text) => json!({"role": "system", "content": text}),
        Message::User(text) => json!({"role": "user", "content": text}),
        Message::Assistant { text, tool_calls } if tool_calls.is_empty() => {
            json!({"role": "assistant", "content": text})
        }
        Message::Assistant { text, tool_calls } => {
            let calls: Vec<Value> = tool_calls
                .iter()
                .map(|call| {
                    json!({"function": {"name": call.name, "arguments": call.arguments_object()}})
                })
                .collect();
            json!({"role": "assistant", "content": text, "tool_calls": calls})
        }
        Message::Tool(result) => {
            json!({"role": "tool", "content": result.output, "tool_name": result.name})
        }
    }
}

pub fn tools(tools: &[ToolSpec]) -> Value {
    super::openai::tools(tools)
}

pub async fn stream(
    client: &reqwest::Client,
    endpoint: &Endpoint<'_>,
    body: &Value,
    mut on_delta: impl FnMut(&str),
) -> Result<Completion, Failure> {
    let base = endpoint.base_url.trim_end_matches('/');
    let url = format!("{}/api/chat", base.trim_end_matches("/v1"));
    let response = match send(client, endpoint, &url, KeyHeader::Bearer, &[], body).await? {
        Ok(response) => response,
        Err((status, text)) => {
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|value| value["error"].as_str().map(str::to_owned))
                .unwrap_or(text);
            return Err(classify(status, &message));
        }
    };
    let mut completion = Completion::default();
    let mut calls = PendingCalls::default();
    let mut bytes = response.bytes_stream();
    let mut pending: Vec<u8> = Vec::new();
    let mut done = false;
    while let Some(chunk) = bytes.next().await {
        let chunk = chunk.map_err(|error| Failure::broken(&url, &error.to_string()))?;
        pending.extend_from_slice(&chunk);
        while let Some(newline) = pending.iter().position(|byte| *byte == b'\n') {
            let line: Vec<u8> = pending.drain(..=newline).collect();
            let line = String::from_utf8_lossy(&line).trim().to_owned();
            if line.is_empty() {
                continue;
            }
            completion.keep(line.clone());
            let object: Value = serde_json::from_str(&line)
                .map_err(|error| Failure::broken(&url, &format!("a line is not JSON ({error})")))?;
            if let Some(error) = object["error"].as_str() {
                return Err(classify(200, error));
            }
            if let Some(piece) = object["message"]["content"].as_str() {
                completion.push_text(piece, &mut on_delta)?;
            }
            for call in object["message"]["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let index = calls.len();
                calls.open(
                    index,
                    call["id"].as_str(),
                    call["function"]["name"].as_str(),
                )?;
                let arguments = match &call["function"]["arguments"] {
                    Value::String(text) => text.clone(),
                    Value::Null => "{}".to_owned(),
                    other => other.to_string(),
                };
                calls.set_arguments(index, arguments)?;
            }
            if object["done"] == true {
                completion.finish_reason =
                    object["done_reason"].as_str().unwrap_or("stop").to_owned();
                completion.usage.input_tokens = object["prompt_eval_count"].as_u64().unwrap_or(0);
                completion.usage.output_tokens = object["eval_count"].as_u64().unwrap_or(0);
                done = true;
            }
        }
        if pending.len() > LINE_BYTES_MAX {
            return Err(Failure::broken(&url, "a line is longer than 1 MiB"));
        }
        if done {
            break;
        }
    }
    if !done {
        return Err(Failure::broken(&url, "the stream ended before done"));
    }
    completion.tool_calls = calls.finish();
    Ok(completion)
}

fn classify(status: u16, message: &str) -> Failure {
    let lower = message.to_ascii_lowercase();
    let class = match status {
        401 | 403 => "auth",
        429 => "rate_limit",
        _ if lower.contains("context")
            && (lower.contains("exceed") || lower.contains("too long")) =>
        {
            "context_overflow"
        }
        _ => "unknown",
    };
    Failure {
        class,
        message: format!("HTTP {status}: {message}"),
        http_status: Some(status),
    }
}
