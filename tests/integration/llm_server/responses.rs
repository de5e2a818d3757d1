//! OpenAI's Responses API, streaming, as documented (named events).

use std::sync::Mutex;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::{last_text, sse, tool_reply};

/// OpenAI's Responses API, streaming, as documented (named events).
pub(super) fn responses(seen: &Mutex<Vec<Value>>, body: &str) -> Response {
    let request: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    seen.lock().expect("requests").push(request.clone());
    if request["model"] == "tool-model" || request["model"] == "tool-reason" {
        return responses_tool_model(&request);
    }
    let input = request["input"].as_array().cloned().unwrap_or_default();
    let said = last_text(&input, "role", "user", |m| {
        m["content"].as_str().map(str::to_owned)
    });
    let reply = format!("Responses mock here. You said: {said}");
    let response = |status: &str| {
        json!({"id": "resp_mock1", "object": "response", "status": status,
        "model": request["model"], "output": []})
    };
    let mut events = vec![
        (
            "response.created",
            json!({"type": "response.created", "sequence_number": 0, "response": response("in_progress")}),
        ),
        (
            "response.in_progress",
            json!({"type": "response.in_progress", "sequence_number": 1, "response": response("in_progress")}),
        ),
        (
            "response.output_item.added",
            json!({"type": "response.output_item.added", "sequence_number": 2, "output_index": 0,
            "item": {"id": "msg_1", "type": "message", "status": "in_progress", "role": "assistant", "content": []}}),
        ),
        (
            "response.content_part.added",
            json!({"type": "response.content_part.added", "sequence_number": 3, "item_id": "msg_1",
            "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
        ),
    ];
    for piece in reply.split_inclusive(' ') {
        events.push((
            "response.output_text.delta",
            json!({"type": "response.output_text.delta", "sequence_number": 4,
            "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": piece}),
        ));
    }
    events.push((
        "response.output_text.done",
        json!({"type": "response.output_text.done", "item_id": "msg_1",
        "output_index": 0, "content_index": 0, "text": reply}),
    ));
    let mut done = response("completed");
    done["usage"] = json!({"input_tokens": 14, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 8, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 22});
    events.push((
        "response.completed",
        json!({"type": "response.completed", "response": done}),
    ));
    let text: String = events
        .into_iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect();
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from(text))
        .expect("response")
}

/// Responses: a `function_call` output item whose arguments stream as
/// `response.function_call_arguments.delta`; the result comes back as a
/// `function_call_output` input item.
pub(super) fn responses_tool_model(request: &Value) -> Response {
    let result = request["input"]
        .as_array()
        .and_then(|input| {
            input
                .iter()
                .rev()
                .find(|i| i["type"] == "function_call_output")
        })
        .and_then(|item| item["output"].as_str());
    let response = |status: &str| {
        json!({"id": "resp_tool1", "object": "response", "status": status,
               "model": request["model"], "output": []})
    };
    let mut events = vec![(
        "response.created",
        json!({"type": "response.created", "sequence_number": 0, "response": response("in_progress")}),
    )];
    match result {
        Some(result) => {
            events.push(("response.output_item.added", json!({"type": "response.output_item.added",
                "output_index": 0, "item": {"id": "msg_2", "type": "message", "status": "in_progress",
                "role": "assistant", "content": []}})));
            events.push(("response.output_text.delta", json!({"type": "response.output_text.delta",
                "item_id": "msg_2", "output_index": 0, "content_index": 0, "delta": tool_reply(result)})));
        }
        None => {
            // Asked for (a reasoning model, stateless): the encrypted
            // reasoning that led to the call, which must come back with it.
            let include = request["include"].as_array().cloned().unwrap_or_default();
            if include.contains(&json!("reasoning.encrypted_content")) {
                events.push((
                    "response.output_item.done",
                    json!({"type": "response.output_item.done",
                    "output_index": 0, "item": {"id": "rs_1", "type": "reasoning", "summary": [],
                    "encrypted_content": "gAAAA-mock-reasoning"}}),
                ));
            }
            let item = json!({"id": "fc_1", "type": "function_call", "status": "in_progress",
                              "call_id": "call_resp1", "name": "read", "arguments": ""});
            events.push((
                "response.output_item.added",
                json!({"type": "response.output_item.added",
                "output_index": 0, "item": item}),
            ));
            for piece in ["{\"path\":", "\"notes.txt\"}"] {
                events.push((
                    "response.function_call_arguments.delta",
                    json!({
                    "type": "response.function_call_arguments.delta", "item_id": "fc_1",
                    "output_index": 0, "delta": piece}),
                ));
            }
            events.push((
                "response.function_call_arguments.done",
                json!({
                "type": "response.function_call_arguments.done", "item_id": "fc_1",
                "output_index": 0, "arguments": "{\"path\":\"notes.txt\"}"}),
            ));
            events.push((
                "response.output_item.done",
                json!({"type": "response.output_item.done",
                "output_index": 0, "item": {"id": "fc_1", "type": "function_call",
                "status": "completed", "call_id": "call_resp1", "name": "read",
                "arguments": "{\"path\":\"notes.txt\"}"}}),
            ));
        }
    }
    let mut done = response("completed");
    done["usage"] = json!({"input_tokens": 18, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 25});
    events.push((
        "response.completed",
        json!({"type": "response.completed", "response": done}),
    ));
    sse(events)
}
