//! Ollama's native chat API (`api: "ollama"`), streaming.
//!
//! `POST {baseUrl}/api/chat` with `stream: true`; the reply arrives as
//! newline-delimited JSON objects (`{"message": {"content"}, "done": false}`
//! ..., then one with `done: true`, `done_reason` and the token counts).
//! Errors are `{"error": "..."}` with an HTTP status.

use futures_util::StreamExt;
use serde_json::{Value, json};

use super::provider::{Completion, Endpoint, Failure, KeyHeader, send};

/// The longest NDJSON line accepted: a bound on a misbehaving server.
const LINE_BYTES_MAX: usize = 1024 * 1024;

pub fn request_body(model: &str, messages: &[(&str, String)]) -> Value {
    let messages: Vec<Value> = messages
        .iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    json!({"model": model, "messages": messages, "stream": true})
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
