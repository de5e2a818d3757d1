//! The Anthropic Messages wire format (`api: "anthropic-messages"`),
//! streaming.
//!
//! `POST {baseUrl}/v1/messages` with `x-api-key` and `anthropic-version`;
//! the reply arrives as named SSE events (`message_start`,
//! `content_block_delta` with `text_delta` pieces, `message_delta` with the
//! stop reason and output tokens, `message_stop`); an `error` event or a
//! non-2xx body `{"type":"error","error":{"type","message"}}` is a failure,
//! classified from its type. Thinking deltas are kept in the record but are
//! not part of the reply text.
//!
//! Tools are `tools: [{name, description, input_schema}]`; a call is a
//! `tool_use` content block (`content_block_start` with its `id` and
//! `name`), its input streams as `input_json_delta` pieces of JSON text,
//! and the message stops with `stop_reason: "tool_use"`. Calls go back as
//! `tool_use` blocks of the assistant message, results as `tool_result`
//! blocks (first) of the next user message.
//!
//! With extended thinking on, Anthropic refuses a tool result whose
//! assistant turn lost its thinking: a reply's `thinking` (with its
//! `signature`) and `redacted_thinking` blocks ride on its first call
//! ([`THINKING_PREFIX`], in memory for the run) and go back first in that
//! assistant turn.
//!
//! A Claude Pro/Max sign-in (OAuth access token, [`Endpoint::oauth`]) is
//! sent as `Authorization: Bearer` instead of `x-api-key`, with the
//! `oauth-2025-04-20` and `claude-code-20250219` betas and Claude Code's
//! client headers, and the system prompt must open with Claude Code's
//! identity block ([`claude_oauth_identity`]); that is how pi-ai (and so
//! OpenClaw) calls Messages with such a token, and Anthropic refuses
//! OAuth calls without it.

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::provider::{
    Completion, Endpoint, Failure, KeyHeader, Message, PendingCalls, ToolSpec, send,
};

pub const API_VERSION: &str = "2023-06-01";
/// The betas a Claude Pro/Max OAuth token needs (pi-ai's list).
pub const OAUTH_BETAS: &str = "claude-code-20250219,oauth-2025-04-20";
/// Claude Code's client identity, as pi-ai sends it with OAuth tokens.
const OAUTH_USER_AGENT: &str = "claude-cli/2.1.75";
/// The system block an OAuth call must start with.
pub const CLAUDE_CODE_IDENTITY: &str = "You are Claude Code, Anthropic's official CLI for Claude.";
/// Marks a tool call's `signature` as the reply's thinking blocks (JSON).
pub const THINKING_PREFIX: &str = "anthropic-thinking:";
/// Anthropic requires `max_tokens`; this is used when the model's
/// definition names none.
pub const MAX_TOKENS_DEFAULT: u64 = 4_096;

/// The request body: the system prompt apart, consecutive messages of one
/// role merged (the API wants user and assistant turns alternating; tool
/// results travel in user turns).
pub fn request_body(model: &str, messages: &[Message], max_tokens: u64) -> Value {
    let mut system = Vec::new();
    let mut turns: Vec<(&str, Vec<Value>)> = Vec::new();
    for message in messages {
        let (role, blocks) = match message {
            Message::System(text) => {
                system.push(text.clone());
                continue;
            }
            Message::User(text) => ("user", vec![json!({"type": "text", "text": text})]),
            Message::Assistant { text, tool_calls } => {
                // The reply's thinking first, as it was given.
                let mut blocks: Vec<Value> = tool_calls
                    .first()
                    .and_then(|call| call.signature.as_deref())
                    .and_then(|signature| signature.strip_prefix(THINKING_PREFIX))
                    .and_then(|blocks| serde_json::from_str::<Vec<Value>>(blocks).ok())
                    .unwrap_or_default();
                if !text.is_empty() || tool_calls.is_empty() {
                    blocks.push(json!({"type": "text", "text": text}));
                }
                for call in tool_calls {
                    blocks.push(json!({"type": "tool_use", "id": call.id, "name": call.name,
                                       "input": call.arguments_object()}));
                }
                ("assistant", blocks)
            }
            Message::Tool(result) => {
                let mut block = json!({"type": "tool_result", "tool_use_id": result.call_id,
                                       "content": result.output});
                if result.is_error {
                    block["is_error"] = json!(true);
                }
                ("user", vec![block])
            }
        };
        match turns.last_mut() {
            Some((last, content)) if *last == role => content.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, blocks)| {
            // Plain text turns stay plain strings, as they were before
            // tools: the same conversation gives the same body.
            if blocks.iter().all(|block| block["type"] == "text") {
                let texts: Vec<&str> = blocks
                    .iter()
                    .filter_map(|block| block["text"].as_str())
                    .collect();
                json!({"role": role, "content": texts.join("\n\n")})
            } else {
                let blocks: Vec<Value> = blocks
                    .into_iter()
                    .filter(|block| block["type"] != "text" || block["text"] != "")
                    .collect();
                json!({"role": role, "content": blocks})
            }
        })
        .collect();
    let mut body = json!({
        "model": model,
        "max_tokens": max_tokens,
        "messages": messages,
        "stream": true,
    });
    if !system.is_empty() {
        body["system"] = json!(system.join("\n\n"));
    }
    body
}

/// Puts Claude Code's identity first in the system prompt, which becomes
/// a list of text blocks (the rest of the prompt follows unchanged).
pub fn claude_oauth_identity(body: &mut Value) {
    let mut system = vec![json!({"type": "text", "text": CLAUDE_CODE_IDENTITY})];
    if let Some(prompt) = body["system"].as_str().filter(|prompt| !prompt.is_empty()) {
        system.push(json!({"type": "text", "text": prompt}));
    }
    body["system"] = Value::Array(system);
}

pub fn tools(tools: &[ToolSpec]) -> Value {
    tools
        .iter()
        .map(|tool| {
            json!({"name": tool.name, "description": tool.description,
                   "input_schema": tool.parameters})
        })
        .collect()
}

pub async fn stream(
    client: &reqwest::Client,
    endpoint: &Endpoint<'_>,
    body: &Value,
    mut on_delta: impl FnMut(&str),
) -> Result<Completion, Failure> {
    let base = endpoint.base_url.trim_end_matches('/');
    let url = if base.ends_with("/v1") {
        format!("{base}/messages")
    } else {
        format!("{base}/v1/messages")
    };
    let mut headers = vec![
        ("anthropic-version", API_VERSION),
        ("accept", "text/event-stream"),
    ];
    let key = if endpoint.oauth {
        headers.extend([
            ("anthropic-beta", OAUTH_BETAS),
            ("user-agent", OAUTH_USER_AGENT),
            ("x-app", "cli"),
        ]);
        KeyHeader::Bearer
    } else {
        KeyHeader::Named("x-api-key")
    };
    let response = match send(client, endpoint, &url, key, &headers, body).await? {
        Ok(response) => response,
        Err((status, text)) => return Err(http_failure(status, &text)),
    };
    let mut events = response.bytes_stream().eventsource();
    let mut completion = Completion::default();
    let mut calls = PendingCalls::default();
    let mut thinking = Thinking::default();
    let mut stopped = false;
    while let Some(event) = events.next().await {
        let event = event.map_err(|error| Failure::broken(&url, &error.to_string()))?;
        completion.keep(format!("{}: {}", event.event, event.data));
        let data: Value = match serde_json::from_str(&event.data) {
            Ok(data) => data,
            Err(_) if event.event == "ping" => continue,
            Err(error) => {
                return Err(Failure::broken(
                    &url,
                    &format!("a chunk is not JSON ({error})"),
                ));
            }
        };
        match data["type"].as_str().unwrap_or(event.event.as_str()) {
            "message_start" => {
                let usage = &data["message"]["usage"];
                completion.usage.input_tokens = usage["input_tokens"].as_u64().unwrap_or(0);
                completion.usage.cache_read_tokens =
                    usage["cache_read_input_tokens"].as_u64().unwrap_or(0);
                completion.usage.cache_write_tokens =
                    usage["cache_creation_input_tokens"].as_u64().unwrap_or(0);
            }
            "content_block_start" if data["content_block"]["type"] == "tool_use" => {
                let block = &data["content_block"];
                let index = data["index"].as_u64().unwrap_or(0);
                calls.open(index, block["id"].as_str(), block["name"].as_str())?;
            }
            "content_block_start"
                if matches!(
                    data["content_block"]["type"].as_str(),
                    Some("thinking" | "redacted_thinking")
                ) =>
            {
                thinking.start(data["index"].as_u64().unwrap_or(0), &data["content_block"])?;
            }
            "content_block_delta" => {
                if matches!(
                    data["delta"]["type"].as_str(),
                    Some("thinking_delta" | "signature_delta")
                ) {
                    thinking.push(data["index"].as_u64().unwrap_or(0), &data["delta"])?;
                }
                if data["delta"]["type"] == "text_delta"
                    && let Some(piece) = data["delta"]["text"].as_str()
                {
                    completion.push_text(piece, &mut on_delta)?;
                }
                if data["delta"]["type"] == "input_json_delta"
                    && let Some(piece) = data["delta"]["partial_json"].as_str()
                {
                    calls.push_arguments(data["index"].as_u64().unwrap_or(0), piece)?;
                }
            }
            "message_delta" => {
                if let Some(reason) = data["delta"]["stop_reason"].as_str() {
                    completion.finish_reason = reason.to_owned();
                }
                if let Some(output) = data["usage"]["output_tokens"].as_u64() {
                    completion.usage.output_tokens = output;
                }
            }
            "message_stop" => {
                stopped = true;
                break;
            }
            "error" => return Err(error_failure(None, &data)),
            _ => {}
        }
    }
    if !stopped {
        return Err(Failure::broken(
            &url,
            "the stream ended before message_stop",
        ));
    }
    if completion.finish_reason.is_empty() {
        completion.finish_reason = "end_turn".to_owned();
    }
    completion.tool_calls = calls.finish();
    if let (Some(first), Some(blocks)) = (completion.tool_calls.first_mut(), thinking.blocks()) {
        first.signature = Some(format!("{THINKING_PREFIX}{blocks}"));
    }
    Ok(completion)
}

/// A reply's thinking blocks by content index, as the API wants them back.
#[derive(Default)]
struct Thinking {
    blocks: std::collections::BTreeMap<u64, Value>,
    bytes: usize,
}

impl Thinking {
    fn start(&mut self, index: u64, block: &Value) -> Result<(), Failure> {
        let block = if block["type"] == "redacted_thinking" {
            json!({"type": "redacted_thinking", "data": block["data"].as_str().unwrap_or("")})
        } else {
            json!({"type": "thinking", "thinking": block["thinking"].as_str().unwrap_or(""),
                   "signature": block["signature"].as_str().unwrap_or("")})
        };
        self.count(&block.to_string())?;
        self.blocks.insert(index, block);
        Ok(())
    }

    fn push(&mut self, index: u64, delta: &Value) -> Result<(), Failure> {
        let (field, piece) = match delta["type"].as_str() {
            Some("thinking_delta") => ("thinking", delta["thinking"].as_str()),
            _ => ("signature", delta["signature"].as_str()),
        };
        let Some(piece) = piece else { return Ok(()) };
        self.count(piece)?;
        let block = self
            .blocks
            .entry(index)
            .or_insert_with(|| json!({"type": "thinking", "thinking": "", "signature": ""}));
        let joined = format!("{}{piece}", block[field].as_str().unwrap_or(""));
        block[field] = json!(joined);
        Ok(())
    }

    fn count(&mut self, piece: &str) -> Result<(), Failure> {
        self.bytes += piece.len();
        if self.bytes > super::provider::REPLY_BYTES_MAX {
            return Err(Failure::too_long());
        }
        Ok(())
    }

    /// The blocks in order as JSON text, if any.
    fn blocks(&self) -> Option<String> {
        (!self.blocks.is_empty())
            .then(|| Value::Array(self.blocks.values().cloned().collect()).to_string())
    }
}

fn http_failure(status: u16, body: &str) -> Failure {
    let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    if parsed["error"].is_object() {
        return error_failure(Some(status), &parsed);
    }
    Failure {
        class: match status {
            401 | 403 => "auth",
            429 => "rate_limit",
            _ => "unknown",
        },
        message: format!(
            "HTTP {status}: {}",
            body.chars().take(500).collect::<String>()
        ),
        http_status: Some(status),
    }
}

/// `{"type":"error","error":{"type","message"}}`, classified by its type.
fn error_failure(status: Option<u16>, body: &Value) -> Failure {
    let kind = body["error"]["type"].as_str().unwrap_or("");
    let message = body["error"]["message"].as_str().unwrap_or("").to_owned();
    let class = match kind {
        "authentication_error" | "permission_error" => "auth",
        "rate_limit_error" => "rate_limit",
        "billing_error" => "billing",
        "request_too_large" => "context_overflow",
        "invalid_request_error" if message.to_ascii_lowercase().contains("prompt is too long") => {
            "context_overflow"
        }
        "timeout_error" => "timeout",
        // overloaded_error, api_error and anything new: transient, unknown.
        _ => "unknown",
    };
    let prefix = status.map_or_else(
        || "stream error".to_owned(),
        |status| format!("HTTP {status}"),
    );
    Failure {
        class,
        message: format!("{prefix}: {kind}: {message}"),
        http_status: status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_prompt_is_apart_and_turns_alternate() {
        let body = request_body(
            "claude",
            &[
                Message::System("be brief".to_owned()),
                Message::User("a".to_owned()),
                Message::User("b".to_owned()),
                Message::Assistant {
                    text: "c".to_owned(),
                    tool_calls: Vec::new(),
                },
            ],
            100,
        );
        assert_eq!(body["system"], "be brief");
        assert_eq!(
            body["messages"],
            json!([{"role": "user", "content": "a\n\nb"}, {"role": "assistant", "content": "c"}])
        );
        assert_eq!(body["max_tokens"], 100);
    }

    #[test]
    fn thinking_blocks_go_back_first_in_the_turn_that_called_tools() {
        let mut thinking = Thinking::default();
        thinking
            .start(0, &json!({"type": "thinking", "thinking": ""}))
            .unwrap();
        for delta in [
            json!({"type": "thinking_delta", "thinking": "Let me "}),
            json!({"type": "thinking_delta", "thinking": "look."}),
            json!({"type": "signature_delta", "signature": "sig-1"}),
        ] {
            thinking.push(0, &delta).unwrap();
        }
        thinking
            .start(1, &json!({"type": "redacted_thinking", "data": "opaque"}))
            .unwrap();
        let blocks = thinking.blocks().unwrap();
        let call = super::super::provider::ToolCall {
            id: "toolu_1".to_owned(),
            name: "read".to_owned(),
            arguments: r#"{"path":"a"}"#.to_owned(),
            signature: Some(format!("{THINKING_PREFIX}{blocks}")),
            signed_by: None,
        };
        let body = request_body(
            "claude",
            &[
                Message::User("a".to_owned()),
                Message::Assistant {
                    text: String::new(),
                    tool_calls: vec![call],
                },
            ],
            100,
        );
        assert_eq!(
            body["messages"][1]["content"],
            json!([
                {"type": "thinking", "thinking": "Let me look.", "signature": "sig-1"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "tool_use", "id": "toolu_1", "name": "read", "input": {"path": "a"}},
            ])
        );
        // Another provider's reasoning is not sent to Anthropic.
        let foreign = super::super::provider::ToolCall {
            id: "t".to_owned(),
            name: "read".to_owned(),
            arguments: "{}".to_owned(),
            signature: Some(format!("{}[]", super::super::bedrock::REASONING_PREFIX)),
            signed_by: None,
        };
        let body = request_body(
            "claude",
            &[Message::Assistant {
                text: String::new(),
                tool_calls: vec![foreign],
            }],
            100,
        );
        assert_eq!(body["messages"][0]["content"][0]["type"], "tool_use");
    }

    #[test]
    fn an_oauth_call_opens_its_system_prompt_with_claude_codes_identity() {
        let mut body = request_body(
            "claude",
            &[
                Message::System("be brief".to_owned()),
                Message::User("a".to_owned()),
            ],
            100,
        );
        claude_oauth_identity(&mut body);
        assert_eq!(
            body["system"],
            json!([{"type": "text", "text": CLAUDE_CODE_IDENTITY},
                   {"type": "text", "text": "be brief"}])
        );
        let mut bare = request_body("claude", &[Message::User("a".to_owned())], 100);
        claude_oauth_identity(&mut bare);
        assert_eq!(
            bare["system"],
            json!([{"type": "text", "text": CLAUDE_CODE_IDENTITY}])
        );
    }

    #[test]
    fn errors_are_classified_by_type() {
        let failure = |status, kind: &str, message: &str| {
            http_failure(
                status,
                &json!({"type": "error", "error": {"type": kind, "message": message}}).to_string(),
            )
        };
        assert_eq!(
            failure(401, "authentication_error", "invalid x-api-key").class,
            "auth"
        );
        assert_eq!(failure(429, "rate_limit_error", "slow").class, "rate_limit");
        assert_eq!(
            failure(
                400,
                "invalid_request_error",
                "prompt is too long: 210000 tokens > 200000 maximum"
            )
            .class,
            "context_overflow"
        );
        assert_eq!(
            failure(529, "overloaded_error", "Overloaded").class,
            "unknown"
        );
        assert_eq!(failure(400, "billing_error", "credit").class, "billing");
    }
}
