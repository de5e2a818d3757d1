//! OpenAI's Responses API (`api: "openai-responses"`), streaming.
//!
//! `POST {baseUrl}/responses` with `stream: true`: the system prompt is
//! `instructions`, the turns are `input` messages; the reply arrives as
//! named SSE events (`response.output_text.delta` pieces, then
//! `response.completed` with the usage, or `response.failed` / `error`).
//!
//! Tools are `tools: [{type: "function", name, description, parameters,
//! strict: false}]` (flat, unlike Chat Completions; `strict` is sent
//! because the Responses API defaults it to true, which would demand every
//! property be required). A call is a `function_call` output item
//! (`response.output_item.added` with its `call_id` and `name`), its
//! arguments stream as `response.function_call_arguments.delta` and end in
//! `.done`. Calls go back as `function_call` input items, results as
//! `function_call_output` items with the same `call_id`.
//!
//! A reasoning model's `reasoning` output items (asked for with
//! `include: ["reasoning.encrypted_content"]` when thinking is on) must go
//! back before the calls they led to, since requests are stateless
//! (`store: false`): OpenAI refuses a `function_call` item without its
//! reasoning item. They ride on the reply's first call, in memory only, as
//! Anthropic's thinking blocks do ([`REASONING_PREFIX`]).

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::provider::{
    Completion, Endpoint, Failure, KeyHeader, Message, PendingCalls, ToolSpec, send,
};

/// Marks a first call's `signature` as the reply's reasoning items (a
/// JSON array), to be sent back before the calls.
pub const REASONING_PREFIX: &str = "openai-reasoning:";

pub fn request_body(model: &str, messages: &[Message], max_tokens: Option<u64>) -> Value {
    let mut instructions: Vec<&str> = Vec::new();
    let mut input: Vec<Value> = Vec::new();
    for message in messages {
        match message {
            Message::System(text) => instructions.push(text),
            Message::User(text) => input.push(json!({"role": "user", "content": text})),
            Message::Assistant { text, tool_calls } => {
                let reasoning = tool_calls
                    .first()
                    .and_then(|call| call.signature.as_deref())
                    .and_then(|signature| signature.strip_prefix(REASONING_PREFIX))
                    .and_then(|items| serde_json::from_str::<Vec<Value>>(items).ok());
                input.extend(reasoning.into_iter().flatten());
                if !text.is_empty() || tool_calls.is_empty() {
                    input.push(json!({"role": "assistant", "content": text}));
                }
                for call in tool_calls {
                    input.push(json!({"type": "function_call", "call_id": call.id,
                                      "name": call.name, "arguments": call.arguments}));
                }
            }
            Message::Tool(result) => input.push(json!({
                "type": "function_call_output", "call_id": result.call_id,
                "output": result.output})),
        }
    }
    let mut body = json!({"model": model, "input": input, "stream": true, "store": false});
    if !instructions.is_empty() {
        body["instructions"] = json!(instructions.join("\n\n"));
    }
    if let Some(max) = max_tokens {
        body["max_output_tokens"] = json!(max);
    }
    body
}

pub fn tools(tools: &[ToolSpec]) -> Value {
    tools
        .iter()
        .map(|tool| {
            json!({"type": "function", "name": tool.name, "description": tool.description,
                   "parameters": tool.parameters, "strict": false})
        })
        .collect()
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
    let mut calls = PendingCalls::default();
    // The reply's reasoning items, whole, in order (bounded by the reply).
    let mut reasoning: Vec<Value> = Vec::new();
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
            "response.output_item.done" if data["item"]["type"] == "reasoning" => {
                reasoning.push(data["item"].clone());
            }
            "response.output_item.added" | "response.output_item.done"
                if data["item"]["type"] == "function_call" =>
            {
                let item = &data["item"];
                let index = data["output_index"].as_u64().unwrap_or(calls.len());
                calls.open(index, item["call_id"].as_str(), None)?;
                if data["type"] == "response.output_item.added" {
                    calls.open(index, None, item["name"].as_str())?;
                }
                if let Some(arguments) = item["arguments"].as_str().filter(|a| !a.is_empty()) {
                    calls.set_arguments(index, arguments.to_owned())?;
                }
            }
            "response.function_call_arguments.delta" => {
                let index = data["output_index"].as_u64().unwrap_or(0);
                if let Some(piece) = data["delta"].as_str() {
                    calls.push_arguments(index, piece)?;
                }
            }
            "response.function_call_arguments.done" => {
                let index = data["output_index"].as_u64().unwrap_or(0);
                if let Some(arguments) = data["arguments"].as_str() {
                    calls.set_arguments(index, arguments.to_owned())?;
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
                    _ if !calls.is_empty() => "tool_calls".to_owned(),
                    _ => "stop".to_owned(),
                };
                completion.tool_calls = calls.finish();
                if let Some(first) = completion.tool_calls.first_mut()
                    && !reasoning.is_empty()
                {
                    first.signature = Some(format!(
                        "{REASONING_PREFIX}{}",
                        Value::Array(std::mem::take(&mut reasoning))
                    ));
                }
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
