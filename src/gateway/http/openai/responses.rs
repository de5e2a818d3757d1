//! `POST /v1/responses`: an agent turn in the OpenResponses shapes (a
//! `response` object with `message` output items), answered as one object
//! or streamed as named SSE events (`event: response.created` ...
//! `response.completed`, then `data: [DONE]`), as OpenClaw serves it.
//!
//! `previous_response_id` continues the session of that earlier response.
//! Refused with a 400 that says so: client function tools, image and file
//! inputs. `max_output_tokens`, `temperature` and `top_p` are checked and
//! sent to the model (`agent::sampling`; what its format cannot carry is
//! named in `x-clawback-ignored`); `reasoning`, `metadata`,
//! `store`, `truncation`, `max_tool_calls` are accepted and ignored, as
//! OpenClaw documents.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, watch};

use super::answer::{self, Checked, Recorder};
use super::chat::{NO_RESPONSE, UNAPPENDABLE, sampling};
use super::turn::{self, Begun, Follow, Ids, Turn};
use super::{Surface, header_text, invalid};
use crate::agent::RunOutcome;
use crate::gateway::Gateway;

pub async fn handle(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match answer::intake(
        &gateway,
        Surface::Responses,
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
    let (turn, stream, ignored) = match parse(&gateway, &headers, &body) {
        Ok(parsed) => parsed,
        Err(refused) => return refused,
    };
    let checked = Checked {
        turn,
        stream,
        ignored,
        pump,
    };
    answer::serve(&gateway, checked, render, failed).await
}

fn parse(
    gateway: &Gateway,
    headers: &HeaderMap,
    body: &Map<String, Value>,
) -> Result<(Turn, bool, Vec<&'static str>), Response> {
    let model = match body.get("model") {
        None | Some(Value::Null) => None,
        Some(Value::String(model)) => Some(model.as_str()),
        Some(_) => return Err(invalid("model: Expected string")),
    };
    let Some(input) = body.get("input") else {
        return Err(invalid("input: Required"));
    };
    match body.get("tools") {
        None | Some(Value::Null) => {}
        Some(Value::Array(tools)) if tools.is_empty() => {}
        Some(_) => {
            return Err(invalid(
                "client function tools are not supported by clawback yet; the agent's own tools \
                 run on the gateway",
            ));
        }
    }
    match body.get("tool_choice") {
        None | Some(Value::Null) => {}
        Some(Value::String(choice)) if choice == "auto" || choice == "none" => {}
        Some(_) => {
            return Err(invalid(
                "tool_choice: only \"auto\" and \"none\" are supported",
            ));
        }
    }
    let sampling = sampling(body)?;
    let instructions = body.get("instructions").and_then(Value::as_str);
    let prompt =
        super::prompt::from_input(input, instructions).map_err(|refused| invalid(&refused.0))?;
    if prompt.message.is_empty() {
        return Err(invalid("Missing user message in `input`."));
    }
    let user = body.get("user").and_then(Value::as_str);
    let (agent_id, mut session_key) = turn::target(gateway, headers, model, user, "openresponses")?;
    if let Some(previous) = body.get("previous_response_id").and_then(Value::as_str) {
        session_key = previous_session(gateway, previous, &agent_id)?;
    }
    let key = turn::idempotency_key(headers)?.map(|key| (key, turn::body_hash(body)));
    let model_override = header_text(headers, "x-openclaw-model").map(str::to_owned);
    let ignored = turn::unapplied(gateway, &agent_id, model_override.as_deref(), &sampling);
    let turn = Turn {
        endpoint: "responses",
        ids_model: model.unwrap_or("openclaw").to_owned(),
        agent_id,
        session_key,
        prompt,
        model_override,
        key,
        fresh_run_id: format!("resp_{}", uuid::Uuid::new_v4()),
        sampling,
    };
    Ok((
        turn,
        body.get("stream").and_then(Value::as_bool) == Some(true),
        ignored,
    ))
}

/// The session of an earlier response (its run id), if it belongs to the
/// same agent.
fn previous_session(
    gateway: &Gateway,
    response_id: &str,
    agent_id: &str,
) -> Result<String, Response> {
    let state = gateway.state.read().expect("state lock");
    let found = state.sessions.by_key.iter().find(|(_, session)| {
        session.active_runs.contains_key(response_id)
            || session
                .recent_runs
                .iter()
                .any(|run| run.run_id == response_id)
    });
    match found {
        Some((key, _)) if clawback_projections::sessions::agent_in_key(key) == Some(agent_id) => {
            Ok(key.clone())
        }
        Some(_) => Err(invalid(&format!(
            "previous_response_id {response_id} belongs to another agent"
        ))),
        None => Err(invalid(&format!(
            "previous_response_id {response_id} is not a response this gateway remembers"
        ))),
    }
}

/// The output item id of a run: derived from its id, so a retry renders
/// the same item.
fn item_id(ids: &Ids) -> String {
    format!("msg_{}", ids.run_id.trim_start_matches("resp_"))
}

fn usage(outcome: Option<&RunOutcome>) -> Value {
    let usage = outcome.map(|outcome| outcome.usage).unwrap_or_default();
    let input = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens;
    json!({"input_tokens": input,
           "input_tokens_details": {"cached_tokens": usage.cache_read_tokens,
                                    "cache_write_tokens": usage.cache_write_tokens},
           "output_tokens": usage.output_tokens,
           "output_tokens_details": {"reasoning_tokens": 0},
           "total_tokens": input + usage.output_tokens})
}

fn resource(ids: &Ids, status: &str, output: Value, usage: Value, error: Option<Value>) -> Value {
    let mut resource = json!({"id": ids.run_id, "object": "response", "created_at": ids.created,
                              "status": status, "model": ids.model, "output": output,
                              "usage": usage});
    if let Some(error) = error {
        resource["error"] = error;
    }
    if status == "incomplete" {
        resource["incomplete_details"] = json!({"reason": "max_output_tokens"});
    }
    resource
}

fn message_item(id: &str, text: &str, status: &str, phase: Option<&str>) -> Value {
    let mut item = json!({"type": "message", "id": id, "role": "assistant",
                          "content": [{"type": "output_text", "text": text}], "status": status});
    if let Some(phase) = phase {
        item["phase"] = json!(phase);
    }
    item
}

/// The answer when the run gave none.
fn failed(ids: &Ids, message: String) -> (StatusCode, Value) {
    let error = json!({"code": "api_error", "message": message});
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        resource(ids, "failed", json!([]), usage(None), Some(error)),
    )
}

/// A finished run as the non-streaming answer.
pub fn render(ids: &Ids, outcome: &RunOutcome) -> (StatusCode, Value) {
    if let Some((kind, message)) = &outcome.error {
        let (status, kind) = super::run_failure(kind);
        let error = json!({"code": kind, "message": message});
        return (
            status,
            resource(ids, "failed", json!([]), usage(Some(outcome)), Some(error)),
        );
    }
    let status = if answer::truncated(outcome) {
        "incomplete"
    } else {
        "completed"
    };
    let text = if outcome.text.is_empty() {
        NO_RESPONSE
    } else {
        &outcome.text
    };
    let item = message_item(&item_id(ids), text, status, Some("final_answer"));
    (
        StatusCode::OK,
        resource(ids, status, json!([item]), usage(Some(outcome)), None),
    )
}

/// Writes named SSE events; `Err` means the client left.
struct Events {
    sender: mpsc::Sender<Bytes>,
    ids: Ids,
    item: String,
}

impl Events {
    async fn send(&self, event: Value) -> Result<(), ()> {
        let kind = event["type"].as_str().unwrap_or("message").to_owned();
        let frame = format!("event: {kind}\ndata: {event}\n\n");
        self.sender.send(Bytes::from(frame)).await.map_err(|_| ())
    }

    async fn done(&self) -> Result<(), ()> {
        self.sender
            .send(Bytes::from_static(b"data: [DONE]\n\n"))
            .await
            .map_err(|_| ())
    }

    /// `response.created` .. `response.content_part.added`.
    async fn opening(&self) -> Result<(), ()> {
        let initial = resource(&self.ids, "in_progress", json!([]), usage(None), None);
        self.send(json!({"type": "response.created", "response": initial}))
            .await?;
        self.send(json!({"type": "response.in_progress", "response": initial}))
            .await?;
        let mut item = message_item(&self.item, "", "in_progress", None);
        item["content"] = json!([]);
        self.send(json!({"type": "response.output_item.added", "output_index": 0, "item": item}))
            .await?;
        self.send(
            json!({"type": "response.content_part.added", "item_id": self.item,
                         "output_index": 0, "content_index": 0,
                         "part": {"type": "output_text", "text": ""}}),
        )
        .await
    }

    async fn delta(&self, delta: &str) -> Result<(), ()> {
        self.send(
            json!({"type": "response.output_text.delta", "item_id": self.item,
                         "output_index": 0, "content_index": 0, "delta": delta}),
        )
        .await
    }

    /// `response.output_text.done` .. `response.completed`, then `[DONE]`.
    async fn closing(&self, text: &str, answer: &Value) -> Result<(), ()> {
        let status = answer["status"].as_str().unwrap_or("completed");
        self.send(
            json!({"type": "response.output_text.done", "item_id": self.item,
                         "output_index": 0, "content_index": 0, "text": text}),
        )
        .await?;
        self.send(
            json!({"type": "response.content_part.done", "item_id": self.item,
                         "output_index": 0, "content_index": 0,
                         "part": {"type": "output_text", "text": text}}),
        )
        .await?;
        let item_status = if status == "incomplete" {
            "incomplete"
        } else {
            "completed"
        };
        let item = message_item(&self.item, text, item_status, Some("final_answer"));
        self.send(json!({"type": "response.output_item.done", "output_index": 0, "item": item}))
            .await?;
        let mut response = answer.clone();
        response["output"] = json!([item]);
        self.send(json!({"type": format!("response.{status}"), "response": response}))
            .await?;
        self.done().await
    }

    async fn failed(&self, response: &Value) -> Result<(), ()> {
        self.send(json!({"type": "response.failed", "response": response}))
            .await?;
        self.done().await
    }
}

impl answer::StreamWriter for Events {
    async fn text(&self, piece: &str) -> Result<(), ()> {
        self.delta(piece).await
    }

    async fn lost(&self) -> Result<(), ()> {
        let error = json!({"code": "api_error", "message": "the run ended without an outcome"});
        let failed = resource(&self.ids, "failed", json!([]), usage(None), Some(error));
        self.failed(&failed).await
    }

    async fn gone(&self) {
        self.sender.closed().await;
    }
}

async fn pump(begun: Begun, sender: mpsc::Sender<Bytes>) {
    match begun {
        Begun::Answered { ids, answer, .. } => {
            let events = Events {
                sender,
                item: item_id(&ids),
                ids,
            };
            let _ = replay(&events, &answer).await;
        }
        Begun::Running {
            ids,
            outcome,
            text,
            recorded,
            mut abort_on_leave,
        } => {
            let events = Events {
                sender,
                item: item_id(&ids),
                ids,
            };
            if live(&events, outcome, text, recorded).await.is_ok()
                && let Some(guard) = &mut abort_on_leave
            {
                guard.disarm();
            }
        }
    }
}

async fn replay(events: &Events, answer: &Value) -> Result<(), ()> {
    events.opening().await?;
    if answer["status"] == "failed" {
        return events.failed(answer).await;
    }
    let text = answer["output"][0]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if !text.is_empty() {
        events.delta(&text).await?;
    }
    events.closing(&text, answer).await
}

async fn live(
    events: &Events,
    outcome: watch::Receiver<Option<RunOutcome>>,
    text: Option<watch::Receiver<String>>,
    recorded: Option<Recorder>,
) -> Result<(), ()> {
    events.opening().await?;
    let mut follow = Follow::new(outcome, text);
    let Some(finished) = answer::follow_to_end(events, &mut follow).await? else {
        return Ok(());
    };
    let (_, answer) = answer::finish(
        &events.ids,
        watch::channel(Some((*finished).clone())).1,
        recorded,
        render,
        failed,
    )
    .await;
    if answer["status"] == "failed" {
        return events.failed(&answer).await;
    }
    let rest = match answer::remainder(&follow, &finished) {
        Some(rest) => rest,
        None => {
            let error = json!({"code": "server_error", "message": UNAPPENDABLE});
            let failed = resource(
                &events.ids,
                "failed",
                json!([]),
                usage(Some(&finished)),
                Some(error),
            );
            return events.failed(&failed).await;
        }
    };
    if !rest.is_empty() {
        events.delta(&rest).await?;
    }
    let whole = format!("{}{rest}", follow.sent());
    events.closing(&whole, &answer).await
}
