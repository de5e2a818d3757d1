//! `POST /v1/chat/completions`: an agent turn in OpenAI's Chat Completions
//! shapes, answered as one JSON object or streamed as SSE.
//!
//! The stream is OpenClaw's, byte for byte where clients look: `data:`
//! lines of `chat.completion.chunk` objects (role delta first, content
//! deltas, a finish chunk, a usage chunk when `stream_options.include_usage`
//! asks), then `data: [DONE]`; a failed run sends `{error}` then `[DONE]`.
//! Deltas come from the run's text as it streams (unthrottled, unlike the
//! WebSocket `chat` events), so a client sees tokens as the provider sends
//! them.
//!
//! Not supported, and refused with a 400 that says so: client function
//! tools (`tools`, `tool_choice` other than `auto`/`none`), image parts,
//! `n` > 1, `response_format` other than text. Sampling fields
//! (`temperature`, `top_p`, `max_tokens`, `stop`, `seed`, penalties) are
//! checked as OpenClaw checks them and sent to the model in its provider's
//! words (`agent::sampling`); those the agent's model format has no place
//! for are named in the `x-clawback-ignored` response header.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, watch};

use super::answer::{self, Checked, Recorder};
use super::turn::{self, Begun, Follow, Ids, Turn};
use super::{Surface, header_text, invalid};
use crate::agent::RunOutcome;
use crate::agent::sampling::Sampling;
use crate::gateway::Gateway;

/// What OpenClaw answers when a run ends with no text.
pub const NO_RESPONSE: &str = "No response from OpenClaw.";
/// OpenClaw's words when a reply was replaced after parts of it went out.
pub const UNAPPENDABLE: &str =
    "Assistant output cannot be represented as an append-only response stream.";

/// A checked request.
struct Request {
    turn: Turn,
    stream: bool,
    include_usage: bool,
    ignored: Vec<&'static str>,
}

pub async fn handle(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match answer::intake(
        &gateway,
        Surface::ChatCompletions,
        &method,
        &headers,
        remote,
        body,
    )
    .await
    {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let request = match parse(&gateway, &headers, &body) {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    let include_usage = request.include_usage;
    let checked = Checked {
        turn: request.turn,
        stream: request.stream,
        ignored: request.ignored,
        pump: move |begun, sender| pump(begun, include_usage, sender),
    };
    answer::serve(&gateway, checked, render, failed).await
}

fn parse(
    gateway: &Gateway,
    headers: &HeaderMap,
    body: &Map<String, Value>,
) -> Result<Request, Response> {
    let model = match body.get("model") {
        None | Some(Value::Null) => None,
        Some(Value::String(model)) => Some(model.as_str()),
        Some(_) => return Err(invalid("model: Expected string")),
    };
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return Err(invalid("messages: Required array of messages"));
    };
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    let include_usage = stream
        && body
            .get("stream_options")
            .and_then(|options| options.get("include_usage"))
            .and_then(Value::as_bool)
            == Some(true);
    refuse_unsupported(body)?;
    let sampling = sampling(body)?;
    let user = body.get("user").and_then(Value::as_str);
    let (agent_id, session_key) = turn::target(gateway, headers, model, user, "openai")?;
    let prompt = super::prompt::from_messages(messages).map_err(|refused| invalid(&refused.0))?;
    if prompt.message.is_empty() {
        return Err(invalid("Missing user message in `messages`."));
    }
    let key = turn::idempotency_key(headers)?.map(|key| (key, turn::body_hash(body)));
    let model_override = header_text(headers, "x-openclaw-model").map(str::to_owned);
    let ignored = turn::unapplied(gateway, &agent_id, model_override.as_deref(), &sampling);
    Ok(Request {
        turn: Turn {
            endpoint: "chat.completions",
            ids_model: model.unwrap_or("openclaw").to_owned(),
            agent_id,
            session_key,
            prompt,
            model_override,
            key,
            fresh_run_id: format!("chatcmpl_{}", uuid::Uuid::new_v4()),
            sampling,
        },
        stream,
        include_usage,
        ignored,
    })
}

fn refuse_unsupported(body: &Map<String, Value>) -> Result<(), Response> {
    match body.get("tools") {
        None | Some(Value::Null) => {}
        Some(Value::Array(tools)) if tools.is_empty() => {}
        Some(Value::Array(_)) => {
            return Err(invalid(
                "Invalid tools/tool_choice: client function tools are not supported by clawback \
                 yet; the agent's own tools run on the gateway",
            ));
        }
        Some(_) => return Err(invalid("Invalid tools/tool_choice: tools must be an array")),
    }
    match body.get("tool_choice") {
        None | Some(Value::Null) => {}
        Some(Value::String(choice)) if choice == "auto" || choice == "none" => {}
        Some(_) => {
            return Err(invalid(
                "Invalid tools/tool_choice: only \"auto\" and \"none\" are supported (no client tools)",
            ));
        }
    }
    if let Some(n) = body.get("n").filter(|n| !n.is_null())
        && n.as_u64() != Some(1)
    {
        return Err(invalid("n: only 1 choice is supported"));
    }
    match body.get("response_format") {
        None | Some(Value::Null) => {}
        Some(format) => match format.get("type").and_then(Value::as_str) {
            Some("text") => {}
            Some("json_object" | "json_schema") => {
                return Err(invalid(
                    "Invalid response_format: json_object and json_schema are not supported by \
                     clawback yet",
                ));
            }
            _ => {
                return Err(invalid(
                    "Invalid response_format: response_format.type must be text, json_object, or json_schema",
                ));
            }
        },
    }
    Ok(())
}

/// The sampling fields, checked as OpenClaw checks them (its messages).
/// `max_completion_tokens` wins over `max_tokens` (OpenClaw's order), and
/// `/v1/responses` names the cap `max_output_tokens`.
pub fn sampling(body: &Map<String, Value>) -> Result<Sampling, Response> {
    let number = |key: &'static str, low: f64, high: f64| match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => match value.as_f64().filter(|value| value.is_finite()) {
            Some(value) if (low..=high).contains(&value) => Ok(Some(value)),
            Some(_) => Err(invalid(&format!(
                "`{key}` must be between {low} and {high}."
            ))),
            None => Err(invalid(&format!("`{key}` must be a finite number."))),
        },
    };
    let mut sampling = Sampling {
        temperature: number("temperature", 0.0, 2.0)?,
        top_p: number("top_p", 0.0, 1.0)?,
        frequency_penalty: number("frequency_penalty", -2.0, 2.0)?,
        presence_penalty: number("presence_penalty", -2.0, 2.0)?,
        ..Sampling::default()
    };
    for key in ["max_output_tokens", "max_tokens", "max_completion_tokens"] {
        match body.get(key) {
            None | Some(Value::Null) => {}
            Some(value) if value.as_u64().is_some_and(|n| n > 0) => {
                sampling.max_tokens = value.as_u64();
            }
            Some(_) => return Err(invalid(&format!("{key} must be a positive safe integer"))),
        }
    }
    match body.get("seed") {
        None | Some(Value::Null) => {}
        Some(value) if value.is_i64() => sampling.seed = value.as_i64(),
        Some(_) => return Err(invalid("`seed` must be an integer.")),
    }
    match body.get("stop") {
        None | Some(Value::Null) => {}
        Some(Value::String(stop)) if !stop.is_empty() => sampling.stop = vec![stop.clone()],
        Some(Value::Array(stops)) if stops.len() > 4 => {
            return Err(invalid("Invalid stop: stop supports at most 4 sequences"));
        }
        Some(Value::Array(stops))
            if stops
                .iter()
                .all(|stop| stop.as_str().is_some_and(|stop| !stop.is_empty())) =>
        {
            sampling.stop = stops
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
        }
        Some(_) => {
            return Err(invalid(
                "Invalid stop: stop entries must be non-empty strings",
            ));
        }
    }
    Ok(sampling)
}

/// A finished run as the non-streaming answer.
pub fn render(ids: &Ids, outcome: &RunOutcome) -> (StatusCode, Value) {
    if let Some((kind, message)) = &outcome.error {
        let (status, kind) = super::run_failure(kind);
        return (status, json!({"error": {"message": message, "type": kind}}));
    }
    let content = if outcome.text.is_empty() {
        NO_RESPONSE
    } else {
        outcome.text.as_str()
    };
    let answer = json!({
        "id": ids.run_id,
        "object": "chat.completion",
        "created": ids.created,
        "model": ids.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": finish_reason(outcome)}],
        "usage": usage(outcome),
    });
    (StatusCode::OK, answer)
}

/// The answer when the run gave none.
fn failed(_: &Ids, message: String) -> (StatusCode, Value) {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"error": {"message": message, "type": "api_error"}}),
    )
}

fn finish_reason(outcome: &RunOutcome) -> &'static str {
    if answer::truncated(outcome) {
        "length"
    } else {
        "stop"
    }
}

fn usage(outcome: &RunOutcome) -> Value {
    let input = outcome.usage.input_tokens + outcome.usage.cache_read_tokens;
    let output = outcome.usage.output_tokens;
    json!({"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output})
}

/// Writes SSE chunks; `Err` means the client left.
struct Sse {
    sender: mpsc::Sender<Bytes>,
    ids: Ids,
}

impl Sse {
    async fn data(&self, value: &Value) -> Result<(), ()> {
        let line = format!("data: {value}\n\n");
        self.sender.send(Bytes::from(line)).await.map_err(|_| ())
    }

    async fn chunk(&self, choices: Value, usage: Option<Value>) -> Result<(), ()> {
        let mut chunk = json!({"id": self.ids.run_id, "object": "chat.completion.chunk",
                               "created": self.ids.created, "model": self.ids.model,
                               "choices": choices});
        if let Some(usage) = usage {
            chunk["usage"] = usage;
        }
        self.data(&chunk).await
    }

    async fn delta(&self, delta: Value, finish_reason: Option<&str>) -> Result<(), ()> {
        self.chunk(
            json!([{"index": 0, "delta": delta, "finish_reason": finish_reason}]),
            None,
        )
        .await
    }

    async fn done(&self) -> Result<(), ()> {
        self.sender
            .send(Bytes::from_static(b"data: [DONE]\n\n"))
            .await
            .map_err(|_| ())
    }

    async fn error(&self, error: &Value) -> Result<(), ()> {
        self.data(&json!({"error": error})).await?;
        self.done().await
    }
}

async fn pump(begun: Begun, include_usage: bool, sender: mpsc::Sender<Bytes>) {
    match begun {
        Begun::Answered { ids, answer, .. } => {
            let sse = Sse { sender, ids };
            let _ = replay(&sse, &answer, include_usage).await;
        }
        Begun::Running {
            ids,
            outcome,
            text,
            recorded,
            mut abort_on_leave,
        } => {
            let sse = Sse {
                sender,
                ids: ids.clone(),
            };
            if live(&sse, outcome, text, recorded, include_usage)
                .await
                .is_ok()
                && let Some(guard) = &mut abort_on_leave
            {
                guard.disarm();
            }
        }
    }
}

/// Streams a recorded (or already rendered) answer.
async fn replay(sse: &Sse, answer: &Value, include_usage: bool) -> Result<(), ()> {
    if let Some(error) = answer.get("error") {
        sse.delta(json!({"role": "assistant"}), None).await?;
        return sse.error(error).await;
    }
    let choice = &answer["choices"][0];
    let content = choice["message"]["content"].as_str().unwrap_or_default();
    sse.delta(json!({"role": "assistant"}), None).await?;
    if !content.is_empty() {
        sse.delta(json!({"content": content}), None).await?;
    }
    let reason = choice["finish_reason"].as_str().unwrap_or("stop");
    sse.delta(json!({}), Some(reason)).await?;
    if include_usage {
        sse.chunk(json!([]), Some(answer["usage"].clone())).await?;
    }
    sse.done().await
}

impl answer::StreamWriter for Sse {
    async fn text(&self, piece: &str) -> Result<(), ()> {
        self.delta(json!({"content": piece}), None).await
    }

    async fn lost(&self) -> Result<(), ()> {
        self.error(&json!({"message": "the run ended without an outcome", "type": "api_error"}))
            .await
    }

    async fn gone(&self) {
        self.sender.closed().await;
    }
}

/// Streams a run as it goes.
async fn live(
    sse: &Sse,
    outcome: watch::Receiver<Option<RunOutcome>>,
    text: Option<watch::Receiver<String>>,
    recorded: Option<Recorder>,
    include_usage: bool,
) -> Result<(), ()> {
    sse.delta(json!({"role": "assistant"}), None).await?;
    let mut follow = Follow::new(outcome, text);
    let Some(finished) = answer::follow_to_end(sse, &mut follow).await? else {
        return Ok(());
    };
    // The answer: the recorded one for a keyed request (durable before
    // [DONE]), else rendered from the outcome.
    let (status, answer) = answer::finish(
        &sse.ids,
        watch::channel(Some((*finished).clone())).1,
        recorded,
        render,
        failed,
    )
    .await;
    if status != StatusCode::OK {
        let error = answer
            .get("error")
            .cloned()
            .unwrap_or_else(|| json!({"message": "internal error", "type": "api_error"}));
        return sse.error(&error).await;
    }
    let Some(rest) = answer::remainder(&follow, &finished) else {
        return sse
            .error(&json!({"message": UNAPPENDABLE, "type": "api_error"}))
            .await;
    };
    if !rest.is_empty() {
        sse.delta(json!({"content": rest}), None).await?;
    }
    sse.delta(json!({}), Some(finish_reason(&finished))).await?;
    if include_usage {
        sse.chunk(json!([]), Some(usage(&finished))).await?;
    }
    sse.done().await
}
