//! Amazon Bedrock's Converse API, streaming (`api:
//! "bedrock-converse-stream"`).
//!
//! `POST {baseUrl}/model/{modelId}/converse-stream` (the id percent-encoded:
//! ids hold `:` and ARNs `/`), a JSON body with `messages` (content blocks
//! `text`, `toolUse`, `toolResult`), `system`, `inferenceConfig`,
//! `toolConfig` and, for reasoning Claude models, `additionalModelRequestFields`.
//! Signed with SigV4 (service `bedrock`) when the credential is AWS keys,
//! else `Authorization: Bearer` with a Bedrock API key.
//!
//! The reply is `application/vnd.amazon.eventstream` (see `eventstream`):
//! events `messageStart`, `contentBlockStart` (a `toolUse` start holds its
//! id and name), `contentBlockDelta` (`text`, `toolUse.input` JSON pieces,
//! `reasoningContent`), `contentBlockStop`, `messageStop` (`stopReason`),
//! then `metadata` (usage, latency), each payload padded with a `p` field;
//! an `exception` frame (`throttlingException`, `validationException`, ...)
//! fails the call. A non-2xx answer names its error in `x-amzn-ErrorType`
//! with `{"message"}` as the body.
//!
//! Reasoning (`reasoningContent` deltas: text, signature, or redacted
//! bytes) is not reply text; when the reply asks for tools, its blocks ride
//! on the first call ([`REASONING_PREFIX`]) and go back before the
//! `toolUse` blocks, as Claude requires when thinking is on.
//!
//! Why the model is not in the body: Bedrock takes it in the URL, like
//! Gemini; the recorded request is the body as sent, byte for byte.

use futures_util::StreamExt;
use serde_json::{Value, json};

use super::eventstream::{Decoder, Frame};
use super::provider::{Completion, Endpoint, Failure, Message, PendingCalls, ToolSpec};
use super::sigv4;

/// Marks a tool call's `signature` as Bedrock reasoning blocks (JSON).
pub const REASONING_PREFIX: &str = "bedrock-reasoning:";

/// Claude on Bedrock needs room beyond a thinking budget.
const MAX_TOKENS_WITH_THINKING: u64 = 4_096;

/// The request body (the model goes in the URL).
pub fn request_body(
    model: &str,
    messages: &[Message],
    max_tokens: Option<u64>,
    thinking: Option<&str>,
    tools: &[ToolSpec],
) -> Value {
    let mut system = Vec::new();
    let mut turns: Vec<(&str, Vec<Value>)> = Vec::new();
    for message in messages {
        let (role, blocks) = match message {
            Message::System(text) => {
                if !text.trim().is_empty() {
                    system.push(json!({"text": text}));
                }
                continue;
            }
            Message::User(text) => ("user", vec![json!({"text": text})]),
            Message::Assistant { text, tool_calls } => {
                // The reply's reasoning first, then its text and calls.
                let mut blocks: Vec<Value> = tool_calls
                    .first()
                    .and_then(|call| call.signature.as_deref())
                    .and_then(|signature| signature.strip_prefix(REASONING_PREFIX))
                    .and_then(|blocks| serde_json::from_str::<Vec<Value>>(blocks).ok())
                    .unwrap_or_default();
                blocks.push(json!({"text": text}));
                for call in tool_calls {
                    blocks.push(json!({"toolUse": {"toolUseId": call.id, "name": call.name,
                                                   "input": call.arguments_object()}}));
                }
                ("assistant", blocks)
            }
            Message::Tool(result) => (
                "user",
                vec![json!({"toolResult": {
                    "toolUseId": result.call_id,
                    "content": [{"text": result.output}],
                    "status": if result.is_error { "error" } else { "success" },
                }})],
            ),
        };
        // Bedrock refuses blank text blocks.
        let blocks: Vec<Value> = blocks
            .into_iter()
            .filter(|block| block["text"].as_str().is_none_or(|t| !t.trim().is_empty()))
            .collect();
        if blocks.is_empty() {
            continue;
        }
        // Roles must alternate: tool results travel in user turns.
        match turns.last_mut() {
            Some((last, content)) if *last == role => content.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    let mut body = json!({"messages": messages});
    if !system.is_empty() {
        body["system"] = json!(system);
    }
    let budget = thinking.and_then(|level| thinking_budget(model, level));
    let max_tokens = match (max_tokens, budget) {
        (max, Some(budget)) => Some(max.unwrap_or(0).max(budget + MAX_TOKENS_WITH_THINKING)),
        (max, None) => max,
    };
    if let Some(max) = max_tokens {
        body["inferenceConfig"] = json!({"maxTokens": max});
    }
    if !tools.is_empty() {
        body["toolConfig"] = json!({"tools": tools
            .iter()
            .map(|tool| json!({"toolSpec": {"name": tool.name, "description": tool.description,
                                            "inputSchema": {"json": tool.parameters}}}))
            .collect::<Vec<_>>()});
    }
    if let Some(budget) = budget {
        // OpenClaw's mapping: Anthropic's own `thinking` through
        // `additionalModelRequestFields`, with interleaved thinking.
        body["additionalModelRequestFields"] = json!({
            "thinking": {"type": "enabled", "budget_tokens": budget},
            "anthropic_beta": ["interleaved-thinking-2025-05-14"],
        });
    }
    body
}

/// OpenClaw sends a thinking budget to Claude models only (others take no
/// reasoning setting through Converse): minimal 1024, low 2048, medium
/// 8192, high and xhigh 16384.
fn thinking_budget(model: &str, level: &str) -> Option<u64> {
    if !(model.contains("anthropic.claude") || model.contains("anthropic/claude")) {
        return None;
    }
    match level {
        "minimal" => Some(1_024),
        "low" => Some(2_048),
        "medium" => Some(8_192),
        "high" | "xhigh" => Some(16_384),
        _ => None,
    }
}

/// `{base}/model/{id}/converse-stream`, the id encoded as one path segment.
pub fn url(base_url: &str, model: &str) -> String {
    format!(
        "{}/model/{}/converse-stream",
        base_url.trim_end_matches('/'),
        sigv4::uri_encode(model, false)
    )
}

/// A failure's message as recorded: without the credentials (AWS echoes
/// the canonical request, session token included, when a signature does
/// not match), then cut to 500 characters.
const MESSAGE_CHARS_MAX: usize = 500;

pub async fn stream(
    client: &reqwest::Client,
    endpoint: &Endpoint<'_>,
    model: &str,
    body: &Value,
    on_delta: impl FnMut(&str),
) -> Result<Completion, Failure> {
    let mut secrets: Vec<&str> = endpoint.api_key.into_iter().collect();
    if let Some(aws) = endpoint.aws {
        secrets.push(&aws.keys.secret_access_key);
        secrets.push(&aws.keys.access_key_id);
        secrets.extend(aws.keys.session_token.as_deref());
    }
    exchange(client, endpoint, model, body, on_delta)
        .await
        .map_err(|mut failure| {
            failure.message = scrub(&failure.message, &secrets)
                .chars()
                .take(MESSAGE_CHARS_MAX)
                .collect();
            failure
        })
}

/// `text` with each secret replaced by `<redacted>`.
fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|secret| secret.len() >= 4) {
        text = text.replace(secret, "<redacted>");
    }
    text
}

async fn exchange(
    client: &reqwest::Client,
    endpoint: &Endpoint<'_>,
    model: &str,
    body: &Value,
    mut on_delta: impl FnMut(&str),
) -> Result<Completion, Failure> {
    let url = url(endpoint.base_url, model);
    let bytes = body.to_string().into_bytes();
    let parsed = reqwest::Url::parse(&url).map_err(|error| Failure {
        class: "unknown",
        message: format!("the Bedrock URL {url} is not valid: {error}"),
        http_status: None,
    })?;
    let mut request = client
        .post(parsed.clone())
        .timeout(endpoint.timeout)
        .header("content-type", "application/json");
    if let Some(aws) = endpoint.aws {
        let host = match (parsed.host_str(), parsed.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            _ => String::new(),
        };
        for (name, value) in sigv4::sign_post(
            &aws.keys,
            &aws.region,
            "bedrock",
            &sigv4::amz_date_now(),
            &sigv4::Post {
                host: &host,
                path: parsed.path(),
                content_type: "application/json",
                body: &bytes,
            },
        ) {
            request = request.header(name, value);
        }
    } else if let Some(key) = endpoint.api_key {
        request = request.bearer_auth(key);
    }
    for (name, value) in endpoint.headers {
        request = request.header(name, value);
    }
    let response = request
        .body(bytes)
        .send()
        .await
        .map_err(|error| Failure::transport(&url, &error))?;
    let status = response.status();
    if !status.is_success() {
        let kind = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.unwrap_or_default();
        return Err(http_failure(status.as_u16(), kind.as_deref(), &text));
    }
    let mut chunks = response.bytes_stream();
    let mut decoder = Decoder::default();
    let mut completion = Completion::default();
    let mut calls = PendingCalls::default();
    let mut reasoning = Reasoning::default();
    let mut stopped = false;
    while let Some(piece) = chunks.next().await {
        let piece = piece.map_err(|error| Failure::broken(&url, &error.to_string()))?;
        decoder.push(&piece);
        loop {
            let frame = match decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(error) => return Err(Failure::broken(&url, &error.to_string())),
            };
            let event = handle(
                &frame,
                &mut completion,
                &mut calls,
                &mut reasoning,
                &mut on_delta,
            )
            .map_err(|failure| match failure {
                Handled::Failure(failure) => failure,
                Handled::Broken(detail) => Failure::broken(&url, &detail),
            })?;
            if event == "messageStop" {
                stopped = true;
            }
        }
    }
    decoder
        .finish()
        .map_err(|error| Failure::broken(&url, &error.to_string()))?;
    if !stopped {
        return Err(Failure::broken(&url, "the stream ended before messageStop"));
    }
    if completion.finish_reason.is_empty() {
        completion.finish_reason = "end_turn".to_owned();
    }
    completion.tool_calls = calls.finish();
    if let (Some(first), Some(blocks)) = (completion.tool_calls.first_mut(), reasoning.blocks()) {
        first.signature = Some(format!("{REASONING_PREFIX}{blocks}"));
    }
    Ok(completion)
}

/// The reply's reasoning blocks by content index: text and signature, or
/// redacted bytes (base64), bounded like the reply.
#[derive(Default)]
struct Reasoning {
    blocks: std::collections::BTreeMap<u64, (String, String, String)>,
    bytes: usize,
}

impl Reasoning {
    fn push(&mut self, index: u64, delta: &Value) -> Result<(), Failure> {
        let block = self.blocks.entry(index).or_default();
        for (field, into) in [
            ("text", &mut block.0),
            ("signature", &mut block.1),
            ("redactedContent", &mut block.2),
        ] {
            if let Some(piece) = delta[field].as_str() {
                self.bytes += piece.len();
                if self.bytes > super::provider::REPLY_BYTES_MAX {
                    return Err(Failure::too_long());
                }
                into.push_str(piece);
            }
        }
        Ok(())
    }

    /// The blocks as Converse content, JSON text; `None` without any.
    fn blocks(&self) -> Option<String> {
        if self.blocks.is_empty() {
            return None;
        }
        let blocks: Vec<Value> = self
            .blocks
            .values()
            .map(|(text, signature, redacted)| {
                if redacted.is_empty() {
                    let mut reasoning = json!({"text": text});
                    if !signature.is_empty() {
                        reasoning["signature"] = json!(signature);
                    }
                    json!({"reasoningContent": {"reasoningText": reasoning}})
                } else {
                    json!({"reasoningContent": {"redactedContent": redacted}})
                }
            })
            .collect();
        Some(Value::Array(blocks).to_string())
    }
}

enum Handled {
    Failure(Failure),
    Broken(String),
}

impl From<Failure> for Handled {
    fn from(failure: Failure) -> Handled {
        Handled::Failure(failure)
    }
}

/// One frame: kept for the record, then applied. Returns the event type.
fn handle(
    frame: &Frame,
    completion: &mut Completion,
    calls: &mut PendingCalls,
    reasoning: &mut Reasoning,
    on_delta: &mut impl FnMut(&str),
) -> Result<String, Handled> {
    let payload = String::from_utf8_lossy(&frame.payload);
    match frame.header(":message-type") {
        Some("event") => {}
        Some("exception") => {
            let kind = frame.header(":exception-type").unwrap_or("exception");
            completion.keep(format!("{kind}: {payload}"));
            let message = serde_json::from_str::<Value>(&payload)
                .ok()
                .and_then(|value| value["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| payload.to_string());
            return Err(classify(None, kind, &message).into());
        }
        Some("error") => {
            let code = frame.header(":error-code").unwrap_or("error");
            let message = frame.header(":error-message").unwrap_or("");
            completion.keep(format!("{code}: {message}"));
            return Err(classify(None, code, message).into());
        }
        other => {
            return Err(Handled::Broken(format!(
                "a frame has the message type {other:?}"
            )));
        }
    }
    let event = frame.header(":event-type").unwrap_or("").to_owned();
    completion.keep(format!("{event}: {payload}"));
    let data: Value = serde_json::from_str(&payload)
        .map_err(|error| Handled::Broken(format!("a {event} payload is not JSON ({error})")))?;
    let index = data["contentBlockIndex"].as_u64().unwrap_or(0);
    match event.as_str() {
        "contentBlockStart" => {
            let start = &data["start"]["toolUse"];
            if start.is_object() {
                calls.open(index, start["toolUseId"].as_str(), start["name"].as_str())?;
            }
        }
        "contentBlockDelta" => {
            let delta = &data["delta"];
            if let Some(text) = delta["text"].as_str() {
                completion.push_text(text, on_delta)?;
            }
            if let Some(input) = delta["toolUse"]["input"].as_str() {
                calls.push_arguments(index, input)?;
            }
            if delta["reasoningContent"].is_object() {
                reasoning.push(index, &delta["reasoningContent"])?;
            }
        }
        "messageStop" => {
            if let Some(reason) = data["stopReason"].as_str() {
                completion.finish_reason = reason.to_owned();
            }
        }
        "metadata" => {
            let usage = &data["usage"];
            completion.usage.input_tokens = usage["inputTokens"].as_u64().unwrap_or(0);
            completion.usage.output_tokens = usage["outputTokens"].as_u64().unwrap_or(0);
            completion.usage.cache_read_tokens =
                usage["cacheReadInputTokens"].as_u64().unwrap_or(0);
            completion.usage.cache_write_tokens =
                usage["cacheWriteInputTokens"].as_u64().unwrap_or(0);
        }
        _ => {}
    }
    Ok(event)
}

/// A non-2xx answer: the type from `x-amzn-ErrorType` (`Name:namespace`),
/// or the body's `__type`, classified with the body's message.
fn http_failure(status: u16, kind: Option<&str>, body: &str) -> Failure {
    let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let kind = kind
        .or_else(|| parsed["__type"].as_str())
        .map(|kind| kind.split(':').next().unwrap_or(kind))
        .map(|kind| kind.rsplit('#').next().unwrap_or(kind))
        .unwrap_or("");
    let message = parsed["message"]
        .as_str()
        .or_else(|| parsed["Message"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| body.to_owned());
    classify(Some(status), kind, &message)
}

/// Bedrock's error names (`ThrottlingException` over HTTP,
/// `throttlingException` in the stream) to failure classes.
fn classify(status: Option<u16>, kind: &str, message: &str) -> Failure {
    let lower_kind = kind.to_ascii_lowercase();
    let lower = message.to_ascii_lowercase();
    let class = if lower_kind.starts_with("throttling")
        || lower_kind.starts_with("toomanyrequests")
        || status == Some(429)
    {
        "rate_limit"
    } else if [
        "accessdenied",
        "unrecognizedclient",
        "invalidsignature",
        "expiredtoken",
        "incompletesignature",
        "missingauthenticationtoken",
        "invalidclienttokenid",
        "signaturedoesnotmatch",
    ]
    .iter()
    .any(|name| lower_kind.starts_with(name))
        || status == Some(401)
        || status == Some(403)
    {
        "auth"
    } else if lower_kind.starts_with("validation")
        && (lower.contains("too long")
            || lower.contains("too many tokens")
            || lower.contains("context window")
            || lower.contains("context length")
            || lower.contains("prompt is too long"))
    {
        "context_overflow"
    } else if lower_kind.starts_with("modeltimeout") || status == Some(408) {
        "timeout"
    } else {
        // serviceUnavailable, internalServer, modelStreamError, 5xx:
        // transient; other validation errors: the request's fault.
        "unknown"
    };
    let prefix = status.map_or_else(
        || "stream exception".to_owned(),
        |status| format!("HTTP {status}"),
    );
    Failure {
        class,
        // Cut (after scrubbing) by `stream`.
        message: format!("{prefix}: {kind}: {message}"),
        http_status: status,
    }
}

#[cfg(test)]
mod tests;
