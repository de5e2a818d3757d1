//! Gemini's `streamGenerateContent?alt=sse`, as documented.

use std::sync::Mutex;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::{API_KEY, last_text, sse, tool_reply};

/// Gemini's `streamGenerateContent?alt=sse`, as documented.
pub(super) fn gemini_stream(
    seen: &Mutex<Vec<Value>>,
    action: &str,
    headers: &HeaderMap,
    body: &str,
) -> Response {
    let request: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    seen.lock()
        .expect("requests")
        .push(json!({"action": action, "body": request}));
    let gemini_error = |status: StatusCode, code: u16, state: &str, message: &str| {
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({"error": {"code": code, "message": message, "status": state}}).to_string(),
            ))
            .expect("response")
    };
    if headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()) != Some(API_KEY) {
        return gemini_error(
            StatusCode::FORBIDDEN,
            403,
            "PERMISSION_DENIED",
            "API key not valid.",
        );
    }
    let Some(model) = action.strip_suffix(":streamGenerateContent") else {
        return gemini_error(StatusCode::NOT_FOUND, 404, "NOT_FOUND", "unknown method");
    };
    if model == "gemini-429" {
        return gemini_error(
            StatusCode::TOO_MANY_REQUESTS,
            429,
            "RESOURCE_EXHAUSTED",
            "Resource has been exhausted (e.g. check quota).",
        );
    }
    if model == "tool-model" {
        return gemini_tool_model(model, &request);
    }
    let contents = request["contents"].as_array().cloned().unwrap_or_default();
    let said = last_text(&contents, "role", "user", |m| {
        m["parts"][0]["text"].as_str().map(str::to_owned)
    });
    let reply = format!("Gemini mock here. You said: {said}");
    let pieces: Vec<&str> = reply.split_inclusive(' ').collect();
    let mut text = String::new();
    for (index, piece) in pieces.iter().enumerate() {
        let mut chunk = json!({"candidates": [{"content": {"parts": [{"text": piece}], "role": "model"}, "index": 0}],
                               "modelVersion": model});
        if index + 1 == pieces.len() {
            chunk["candidates"][0]["finishReason"] = json!("STOP");
            chunk["usageMetadata"] =
                json!({"promptTokenCount": 17, "candidatesTokenCount": 6, "totalTokenCount": 23});
        }
        text.push_str(&format!("data: {chunk}\r\n\r\n"));
    }
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from(text))
        .expect("response")
}

/// The signature `tool-model` puts on its `functionCall` parts.
const SIGNATURE: &str = "c2lnLW1vY2s=";

/// Gemini: a `functionCall` part (with a `thoughtSignature`); the result
/// comes back as a `functionResponse` part. Every `functionCall` part sent
/// back, of this turn or an earlier one, must carry the signature it was
/// given (Gemini 3 insists for the current turn; the mock for all, so a
/// history that lost one is caught).
pub(super) fn gemini_tool_model(model: &str, request: &Value) -> Response {
    let contents = request["contents"].as_array().cloned().unwrap_or_default();
    let unsigned = contents
        .iter()
        .filter(|content| content["role"] == "model")
        .flat_map(|content| content["parts"].as_array().cloned().unwrap_or_default())
        .position(|part| part["functionCall"].is_object() && part["thoughtSignature"] != SIGNATURE);
    if let Some(position) = unsigned {
        return Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
                       "message": format!("Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly, and missing thought_signature may lead to degraded model performance. Additional data, function call `default_api:read` , position {position}. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.")}})
                .to_string(),
            ))
            .expect("response");
    }
    let result = request["contents"]
        .as_array()
        .and_then(|contents| contents.last())
        .and_then(|last| last["parts"].as_array())
        .and_then(|parts| parts.iter().find(|p| p["functionResponse"].is_object()))
        .and_then(|part| part["functionResponse"]["response"]["result"].as_str());
    let parts = match result {
        Some(result) => json!([{"text": tool_reply(result)}]),
        None => json!([{"functionCall": {"name": "read", "args": {"path": "notes.txt"}},
                        "thoughtSignature": SIGNATURE}]),
    };
    let chunk = json!({"candidates": [{"content": {"parts": parts, "role": "model"},
        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 22, "candidatesTokenCount": 4, "totalTokenCount": 26},
        "modelVersion": model});
    sse(vec![("", chunk)])
}
