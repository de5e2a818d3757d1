//! Google's Gemini API (`api: "google-generative-ai"`), streaming.
//!
//! `POST {baseUrl}/v1beta/models/{model}:streamGenerateContent?alt=sse`
//! with `x-goog-api-key`; turns are `contents` with roles `user` and
//! `model`, the system prompt is `systemInstruction`. Each SSE `data:` is a
//! `GenerateContentResponse` whose `candidates[0].content.parts[].text` add
//! up to the reply, with `finishReason` and `usageMetadata` at the end.
//! Errors are `{"error": {"code", "message", "status"}}`.
//!
//! Tools are `tools: [{functionDeclarations: [{name, description,
//! parameters}]}]`, `parameters` in Gemini's OpenAPI-subset schema (no
//! `additionalProperties`, so it is left out). A call arrives whole as a
//! `functionCall` part (`{name, args}`, maybe with a `thoughtSignature`
//! that must go back with it); results go back as `functionResponse`
//! parts (`{name, response: {result}}` or `{error}`) in a user turn.
//!
//! Thought signatures: Gemini 2.5/3 sign a reply's reasoning on its first
//! `functionCall` part and want that part back with its signature, in the
//! run and on later turns (Gemini 3 refuses a current-turn call without
//! it). A call's signature is kept with the model that gave it
//! (`signed_by`), recorded with the call, restored into later turns by the
//! context, and sent only to that model, as pi-ai does: another model
//! cannot read it. Thought summaries (`thought: true` parts) come only
//! when `includeThoughts` is asked for, which clawback does not; the
//! signature a final text part may carry is optional to send back and is
//! left in the record.

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::provider::{
    Completion, Endpoint, Failure, KeyHeader, Message, PendingCalls, ToolSpec, send,
};

pub fn request_body(model: &str, messages: &[Message], max_tokens: Option<u64>) -> Value {
    let mut system = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    for message in messages {
        let (role, parts) = match message {
            Message::System(text) => {
                system.push(json!({"text": text}));
                continue;
            }
            Message::User(text) => ("user", vec![json!({"text": text})]),
            Message::Assistant { text, tool_calls } => {
                let mut parts = Vec::new();
                if !text.is_empty() || tool_calls.is_empty() {
                    parts.push(json!({"text": text}));
                }
                for call in tool_calls {
                    let mut part = json!({"functionCall": {"name": call.name,
                                                           "args": call.arguments_object()}});
                    // Only the model that signed can read it (another
                    // provider's reasoning has no `signed_by`).
                    if let Some(signature) = call
                        .signature
                        .as_ref()
                        .filter(|_| call.signed_by.as_deref() == Some(model))
                    {
                        part["thoughtSignature"] = json!(signature);
                    }
                    parts.push(part);
                }
                ("model", parts)
            }
            Message::Tool(result) => {
                let response = if result.is_error {
                    json!({"error": result.output})
                } else {
                    json!({"result": result.output})
                };
                (
                    "user",
                    vec![json!({"functionResponse": {"name": result.name, "response": response}})],
                )
            }
        };
        match contents.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(existing) = last["parts"].as_array_mut() {
                    existing.extend(parts);
                }
            }
            _ => contents.push(json!({"role": role, "parts": parts})),
        }
    }
    let mut body = json!({"contents": contents});
    if !system.is_empty() {
        body["systemInstruction"] = json!({"parts": system});
    }
    if let Some(max) = max_tokens {
        body["generationConfig"] = json!({"maxOutputTokens": max});
    }
    body
}

pub fn tools(tools: &[ToolSpec]) -> Value {
    let declarations: Vec<Value> = tools
        .iter()
        .map(|tool| {
            json!({"name": tool.name, "description": tool.description,
                   "parameters": openapi_schema(&tool.parameters)})
        })
        .collect();
    json!([{"functionDeclarations": declarations}])
}

/// A JSON Schema without the keywords Gemini's schema subset refuses.
fn openapi_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(object) => Value::Object(
            object
                .iter()
                .filter(|(key, _)| !matches!(key.as_str(), "additionalProperties" | "$schema"))
                .map(|(key, value)| (key.clone(), openapi_schema(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(openapi_schema).collect()),
        other => other.clone(),
    }
}

pub async fn stream(
    client: &reqwest::Client,
    endpoint: &Endpoint<'_>,
    model: &str,
    body: &Value,
    mut on_delta: impl FnMut(&str),
) -> Result<Completion, Failure> {
    let base = endpoint.base_url.trim_end_matches('/');
    let base = if base.ends_with("/v1beta") {
        base.to_owned()
    } else {
        format!("{base}/v1beta")
    };
    let url = format!("{base}/models/{model}:streamGenerateContent?alt=sse");
    let response = match send(
        client,
        endpoint,
        &url,
        KeyHeader::Named("x-goog-api-key"),
        &[],
        body,
    )
    .await?
    {
        Ok(response) => response,
        Err((status, text)) => return Err(classify(status, &text)),
    };
    let mut events = response.bytes_stream().eventsource();
    let mut completion = Completion::default();
    let mut calls = PendingCalls::default();
    while let Some(event) = events.next().await {
        let event = event.map_err(|error| Failure::broken(&url, &error.to_string()))?;
        completion.keep(event.data.clone());
        let data: Value = serde_json::from_str(&event.data)
            .map_err(|error| Failure::broken(&url, &format!("a chunk is not JSON ({error})")))?;
        if data["error"].is_object() {
            return Err(classify(
                data["error"]["code"].as_u64().unwrap_or(0) as u16,
                &event.data,
            ));
        }
        let candidate = &data["candidates"][0];
        for part in candidate["content"]["parts"]
            .as_array()
            .into_iter()
            .flatten()
        {
            // Thought summaries are kept in the record, not in the reply.
            if part["thought"] == true {
                continue;
            }
            if let Some(piece) = part["text"].as_str() {
                completion.push_text(piece, &mut on_delta)?;
            }
            let call = &part["functionCall"];
            if call.is_object() {
                let index = calls.len();
                calls.open(index, call["id"].as_str(), call["name"].as_str())?;
                let arguments = if call["args"].is_object() {
                    call["args"].to_string()
                } else {
                    "{}".to_owned()
                };
                calls.set_arguments(index, arguments)?;
                if let Some(signature) = part["thoughtSignature"].as_str() {
                    calls.set_signature(index, signature);
                }
            }
        }
        if let Some(reason) = candidate["finishReason"].as_str() {
            completion.finish_reason = reason.to_ascii_lowercase();
        }
        let usage = &data["usageMetadata"];
        if usage.is_object() {
            completion.usage.input_tokens = usage["promptTokenCount"].as_u64().unwrap_or(0);
            completion.usage.output_tokens = usage["candidatesTokenCount"].as_u64().unwrap_or(0);
            completion.usage.cache_read_tokens =
                usage["cachedContentTokenCount"].as_u64().unwrap_or(0);
        }
    }
    if completion.finish_reason.is_empty() {
        return Err(Failure::broken(
            &url,
            "the stream ended without a finishReason",
        ));
    }
    completion.tool_calls = calls.finish();
    for call in &mut completion.tool_calls {
        if call.signature.is_some() {
            call.signed_by = Some(model.to_owned());
        }
    }
    Ok(completion)
}

fn classify(status: u16, body: &str) -> Failure {
    let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let error_status = parsed["error"]["status"].as_str().unwrap_or("");
    let message = parsed["error"]["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| body.chars().take(500).collect());
    let class = match (status, error_status) {
        (401 | 403, _) | (_, "UNAUTHENTICATED" | "PERMISSION_DENIED") => "auth",
        (429, _) | (_, "RESOURCE_EXHAUSTED") => "rate_limit",
        (504, _) | (_, "DEADLINE_EXCEEDED") => "timeout",
        _ if message
            .to_ascii_lowercase()
            .contains("exceeds the maximum number of tokens") =>
        {
            "context_overflow"
        }
        _ => "unknown",
    };
    Failure {
        class,
        message: format!("HTTP {status}: {error_status} {message}").replace("  ", " "),
        http_status: Some(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::provider::ToolCall;

    #[test]
    fn a_thought_signature_goes_back_only_to_the_model_that_signed_it() {
        let call = |signed_by: Option<&str>| ToolCall {
            id: "call_1".to_owned(),
            name: "read".to_owned(),
            arguments: r#"{"path":"a"}"#.to_owned(),
            signature: Some("c2lnLW1vY2s=".to_owned()),
            signed_by: signed_by.map(str::to_owned),
        };
        let body = |signed_by, model| {
            request_body(
                model,
                &[Message::Assistant {
                    text: String::new(),
                    tool_calls: vec![call(signed_by)],
                }],
                None,
            )
        };
        let part = |body: Value| body["contents"][0]["parts"][0].clone();
        assert_eq!(
            part(body(Some("gemini-3-pro"), "gemini-3-pro"))["thoughtSignature"],
            "c2lnLW1vY2s="
        );
        // Another model, or another provider's reasoning: not sent.
        assert!(
            part(body(Some("gemini-3-pro"), "gemini-2.5-flash"))
                .get("thoughtSignature")
                .is_none()
        );
        assert!(
            part(body(None, "gemini-3-pro"))
                .get("thoughtSignature")
                .is_none()
        );
    }
}
