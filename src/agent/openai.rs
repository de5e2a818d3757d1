//! The OpenAI Chat Completions wire format (`api: "openai-completions"`),
//! streaming: what OpenAI, OpenRouter, Ollama's `/v1`, vLLM, llama.cpp and
//! most local servers speak.
//!
//! One request, `stream: true` with usage; the SSE stream (parsed by the
//! `eventsource-stream` crate) yields `chat.completion.chunk` objects whose
//! `delta.content` pieces make the reply, then `data: [DONE]`. Every raw
//! chunk is kept so the call can be recorded exactly as it came.
//!
//! Tools are offered as `tools: [{type: "function", function: {name,
//! description, parameters}}]`; a call streams as `delta.tool_calls`
//! pieces keyed by `index` (the first with `id` and `function.name`, the
//! rest with `function.arguments` fragments) and ends with
//! `finish_reason: "tool_calls"`. The calls go back as the assistant
//! message's `tool_calls`, each result as a `role: "tool"` message with its
//! `tool_call_id`.

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{Value, json};

use clawback_events::event::Usage;

use super::provider::{
    Completion, Endpoint, Failure, KeyHeader, Message, PendingCalls, ToolSpec, send,
};

/// The request body for `messages`.
pub fn request_body(model: &str, messages: &[Message]) -> Value {
    let messages: Vec<Value> = messages.iter().map(message).collect();
    json!({
        "model": model,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
    })
}

/// One message in Chat Completions' format.
pub fn message(message: &Message) -> Value {
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
                    json!({"id": call.id, "type": "function",
                           "function": {"name": call.name, "arguments": call.arguments}})
                })
                .collect();
            // An assistant message that only calls tools has no content.
            let content = if text.is_empty() {
                Value::Null
            } else {
                json!(text)
            };
            json!({"role": "assistant", "content": content, "tool_calls": calls})
        }
        Message::Tool(result) => {
            json!({"role": "tool", "tool_call_id": result.call_id, "content": result.output})
        }
    }
}

/// The `tools` array (shared with Ollama's native API, which copied it).
pub fn tools(tools: &[ToolSpec]) -> Value {
    tools
        .iter()
        .map(|tool| {
            json!({"type": "function", "function": {
                "name": tool.name, "description": tool.description,
                "parameters": tool.parameters}})
        })
        .collect()
}

/// Sends `body` and streams the reply, calling `on_delta` with each new
/// piece of text.
pub async fn stream(
    client: &reqwest::Client,
    endpoint: &Endpoint<'_>,
    body: &Value,
    mut on_delta: impl FnMut(&str),
) -> Result<Completion, Failure> {
    let url = format!(
        "{}/chat/completions",
        endpoint.base_url.trim_end_matches('/')
    );
    let response = match send(
        client,
        endpoint,
        &url,
        KeyHeader::Bearer,
        &[("accept", "text/event-stream")],
        body,
    )
    .await?
    {
        Ok(response) => response,
        Err((status, text)) => return Err(http_failure(status, &text)),
    };
    let mut events = response.bytes_stream().eventsource();
    let mut completion = Completion::default();
    let mut calls = PendingCalls::default();
    let mut done = false;
    while let Some(event) = events.next().await {
        let event = event.map_err(|error| Failure {
            class: "unknown",
            message: format!("the stream from {url} broke: {error}"),
            http_status: None,
        })?;
        if event.data.trim() == "[DONE]" {
            done = true;
            break;
        }
        completion.keep(event.data.clone());
        let chunk: Value = serde_json::from_str(&event.data).map_err(|error| Failure {
            class: "unknown",
            message: format!(
                "the provider sent a chunk that is not JSON ({error}): {}",
                event.data
            ),
            http_status: None,
        })?;
        if let Some(error) = chunk.get("error") {
            return Err(Failure {
                class: classify_message(error.to_string().as_str()),
                message: format!("the provider reported an error mid-stream: {error}"),
                http_status: None,
            });
        }
        if let Some(choice) = chunk["choices"].get(0) {
            if let Some(piece) = choice["delta"]["content"].as_str() {
                completion.push_text(piece, &mut on_delta)?;
            }
            for (position, call) in choice["delta"]["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                // `index` is required by the format; servers that omit it
                // send one call per chunk, in order.
                let index = call["index"]
                    .as_u64()
                    .unwrap_or(calls.len() + position as u64);
                calls.open(
                    index,
                    call["id"].as_str(),
                    call["function"]["name"].as_str(),
                )?;
                if let Some(piece) = call["function"]["arguments"].as_str() {
                    calls.push_arguments(index, piece)?;
                }
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                completion.finish_reason = reason.to_owned();
            }
        }
        if let Some(usage) = chunk.get("usage").filter(|usage| usage.is_object()) {
            completion.usage = Usage {
                input_tokens: usage["prompt_tokens"].as_u64().unwrap_or(0),
                output_tokens: usage["completion_tokens"].as_u64().unwrap_or(0),
                cache_read_tokens: usage["prompt_tokens_details"]["cached_tokens"]
                    .as_u64()
                    .unwrap_or(0),
                cache_write_tokens: 0,
            };
        }
    }
    if !done && completion.finish_reason.is_empty() {
        return Err(Failure {
            class: "unknown",
            message: format!("the stream from {url} ended before the reply was complete"),
            http_status: None,
        });
    }
    if completion.finish_reason.is_empty() {
        completion.finish_reason = "stop".to_owned();
    }
    completion.tool_calls = calls.finish();
    Ok(completion)
}

/// OpenAI's error body is `{"error": {"message", "type", "code"}}`.
pub fn http_failure(status: u16, body: &str) -> Failure {
    let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let message = parsed["error"]["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| body.chars().take(500).collect());
    let class = match status {
        401 | 403 => "auth",
        402 => "billing",
        429 => {
            let code = parsed["error"]["code"].as_str().unwrap_or("");
            if code == "insufficient_quota" {
                "billing"
            } else {
                "rate_limit"
            }
        }
        408 | 504 => "timeout",
        400 | 413 => classify_message(body),
        _ => "unknown",
    };
    Failure {
        class,
        message: format!("HTTP {status}: {message}"),
        http_status: Some(status),
    }
}

fn classify_message(text: &str) -> &'static str {
    let lower = text.to_ascii_lowercase();
    if lower.contains("context_length_exceeded")
        || lower.contains("maximum context length")
        || lower.contains("context window")
    {
        "context_overflow"
    } else {
        "unknown"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_errors_are_classified() {
        assert_eq!(
            http_failure(401, r#"{"error":{"message":"bad key"}}"#).class,
            "auth"
        );
        assert_eq!(
            http_failure(429, r#"{"error":{"message":"slow down"}}"#).class,
            "rate_limit"
        );
        assert_eq!(
            http_failure(
                429,
                r#"{"error":{"message":"x","code":"insufficient_quota"}}"#
            )
            .class,
            "billing"
        );
        let overflow = http_failure(
            400,
            r#"{"error":{"message":"This model's maximum context length is 8192 tokens","code":"context_length_exceeded"}}"#,
        );
        assert_eq!(overflow.class, "context_overflow");
        assert_eq!(overflow.http_status, Some(400));
        assert!(
            overflow
                .message
                .starts_with("HTTP 400: This model's maximum context length")
        );
        assert_eq!(http_failure(503, "upstream down").class, "unknown");
    }
}
