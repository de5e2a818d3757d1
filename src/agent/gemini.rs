//! Google's Gemini API (`api: "google-generative-ai"`), streaming.
//!
//! `POST {baseUrl}/v1beta/models/{model}:streamGenerateContent?alt=sse`
//! with `x-goog-api-key`; turns are `contents` with roles `user` and
//! `model`, the system prompt is `systemInstruction`. Each SSE `data:` is a
//! `GenerateContentResponse` whose `candidates[0].content.parts[].text` add
//! up to the reply, with `finishReason` and `usageMetadata` at the end.
//! Errors are `{"error": {"code", "message", "status"}}`.

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::provider::{Completion, Endpoint, Failure, KeyHeader, send};

pub fn request_body(messages: &[(&str, String)], max_tokens: Option<u64>) -> Value {
    let mut system = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    for (role, text) in messages {
        let role = match *role {
            "system" => {
                system.push(json!({"text": text}));
                continue;
            }
            "assistant" => "model",
            _ => "user",
        };
        match contents.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(parts) = last["parts"].as_array_mut() {
                    parts.push(json!({"text": text}));
                }
            }
            _ => contents.push(json!({"role": role, "parts": [{"text": text}]})),
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
