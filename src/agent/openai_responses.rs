//! OpenAI's Responses API (`api: "openai-responses"`), streaming.
//!
//! `POST {baseUrl}/responses` with `stream: true`: the system prompt is
//! `instructions`, the turns are `input` messages; the reply arrives as
//! named SSE events (`response.output_text.delta` pieces, then
//! `response.completed` with the usage, or `response.failed` / `error`).

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::provider::{Completion, Endpoint, Failure, KeyHeader, send};

pub fn request_body(model: &str, messages: &[(&str, String)], max_tokens: Option<u64>) -> Value {
    let instructions: Vec<&str> = messages
        .iter()
        .filter(|(role, _)| *role == "system")
        .map(|(_, text)| text.as_str())
        .collect();
    let input: Vec<Value> = messages
        .iter()
        .filter(|(role, _)| *role != "system")
        .map(|(role, text)| json!({"role": role, "content": text}))
        .collect();
    let mut body = json!({"model": model, "input": input, "stream": true, "store": false});
    if !instructions.is_empty() {
        body["instructions"] = json!(instructions.join("\n\n"));
    }
    if let Some(max) = max_tokens {
        body["max_output_tokens"] = json!(max);
    }
    body
}

pub async fn stream(
    client: &reqwest::Client,
    endpoint: &Endpoint<'_>,
    body: &Value,
    mut on_delta: impl FnMut(&str),
) -> Result<Completion, Failure> {
    let url = format!("{}/responses", endpoint.base_url.trim_end_matches('/'));
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
        Err((status, text)) => return Err(super::openai::http_failure(status, &text)),
    };
    let mut events = response.bytes_stream().eventsource();
    let mut completion = Completion::default();
    while let Some(event) = events.next().await {
        let event = event.map_err(|error| Failure::broken(&url, &error.to_string()))?;
        completion.keep(format!("{}: {}", event.event, event.data));
        let data: Value = serde_json::from_str(&event.data)
            .map_err(|error| Failure::broken(&url, &format!("a chunk is not JSON ({error})")))?;
        match data["type"].as_str().unwrap_or(event.event.as_str()) {
            "response.output_text.delta" => {
                if let Some(piece) = data["delta"].as_str() {
                    completion.push_text(piece, &mut on_delta)?;
                }
            }
            "response.completed" | "response.incomplete" => {
                let response = &data["response"];
                let usage = &response["usage"];
                completion.usage.input_tokens = usage["input_tokens"].as_u64().unwrap_or(0);
                completion.usage.output_tokens = usage["output_tokens"].as_u64().unwrap_or(0);
                completion.usage.cache_read_tokens = usage["input_tokens_details"]["cached_tokens"]
                    .as_u64()
                    .unwrap_or(0);
                completion.finish_reason = match response["status"].as_str() {
                    Some("incomplete") => response["incomplete_details"]["reason"]
                        .as_str()
                        .unwrap_or("incomplete")
                        .to_owned(),
                    _ => "stop".to_owned(),
                };
                return Ok(completion);
            }
            "response.failed" => {
                let error = &data["response"]["error"];
                return Err(Failure {
                    class: classify_code(error["code"].as_str().unwrap_or("")),
                    message: format!(
                        "the response failed: {}",
                        error["message"].as_str().unwrap_or("no message")
                    ),
                    http_status: None,
                });
            }
            "error" => {
                return Err(Failure {
                    class: classify_code(data["code"].as_str().unwrap_or("")),
                    message: format!(
                        "stream error: {}",
                        data["message"].as_str().unwrap_or("no message")
                    ),
                    http_status: None,
                });
            }
            _ => {}
        }
    }
    Err(Failure::broken(
        &url,
        "the stream ended before response.completed",
    ))
}

fn classify_code(code: &str) -> &'static str {
    match code {
        "rate_limit_exceeded" => "rate_limit",
        "insufficient_quota" => "billing",
        "context_length_exceeded" => "context_overflow",
        "invalid_api_key" => "auth",
        _ => "unknown",
    }
}
