//! `POST /tools/invoke`: one tool call over HTTP, without a model turn, as
//! OpenClaw serves it (always on, the gateway's bearer secret, a 2 MB body).
//!
//! Why it is recorded as a run: the log already says how a tool call looks
//! (`tool.call.requested`, `started`, `finished` around the work), and an
//! audit should find an operator's direct call where it finds the model's.
//! So each invocation is a run of its own in the target session (trigger
//! `tools.invoke`, actor `http:/tools/invoke`) holding that one call; the
//! sessions projection keeps such calls out of the transcript, because the
//! model never made them (`DIRECT_TOOL_TRIGGER`). A refused call (deny
//! list, unknown tool) is recorded too, as `denied`: the audit shows what
//! was attempted, not only what ran.
//!
//! Invariants: a tool on the deny list never runs, whatever the registry
//! holds (the list names tools by what they could do, ahead of their
//! arrival); an `idempotencyKey` runs at most once per session: a repeat
//! answers what the log recorded (the key is the run's id, so the proof is
//! the log, across restarts, for the session's 32 most recent runs); the
//! work runs in its own task, so a client that hangs up cannot leave a
//! call recorded as started and never finished.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use clawback_events::Actor;
use clawback_events::event::{
    AgentRunFinished, AgentRunStarted, Event, RunStatus, ToolCallFinished, ToolCallRequested,
    ToolCallStarted, ToolOutcome,
};
use clawback_events::store::LogStore;
use clawback_projections::sessions::{DIRECT_TOOL_TRIGGER, RunState};
use serde_json::{Map, Value, json};

use super::{BodyError, error_response, json_response, parse_json, read_body};
use crate::agent::run::{Opening, open_session};
use crate::agent::tools::{Context, outcome_text};
use crate::gateway::Gateway;
use crate::gateway::protocol::methods::DEFAULT_AGENT;

/// OpenClaw's body limit for this endpoint.
pub const BODY_BYTES_MAX: usize = 2 * 1024 * 1024;
/// Invocations with an idempotency key running at once (a bound on the
/// in-flight set; more answer 503).
const IN_FLIGHT_MAX: usize = 1_024;
const IDEMPOTENCY_KEY_CHARS_MAX: usize = 256;
/// Records read back to find a recorded result (a direct call's run holds
/// a handful; this only bounds a damaged log).
const REPLAY_SCAN_MAX: usize = 10_000;

/// Denied over HTTP unless `gateway.tools.allow` names them: the brief's
/// list, which is OpenClaw's documented one, plus the names OpenClaw
/// 2026.9.6 adds in code (`terminal`, `portal`, `conversations_*`,
/// `automations`, `plugins`, `computer`, `mobile_ui`, `openclaw`).
pub const DEFAULT_DENY: &[&str] = &[
    "exec",
    "spawn",
    "shell",
    "fs_write",
    "fs_delete",
    "fs_move",
    "apply_patch",
    "terminal",
    "portal",
    "sessions_spawn",
    "sessions_send",
    "conversations_list",
    "conversations_send",
    "conversations_turn",
    "cron",
    "automations",
    "gateway",
    "plugins",
    "nodes",
    "computer",
    "mobile_ui",
    "openclaw",
];

/// Idempotency keys whose invocation is running now, per session.
#[derive(Default)]
pub struct ToolsState {
    in_flight: Mutex<BTreeSet<(String, String)>>,
}

pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/tools/invoke", post(invoke))
        .with_state(gateway)
}

/// The effective deny decision for `tool` under the config.
pub fn denied(config: &crate::config::model::ConfigFile, tool: &str) -> bool {
    let tools = config
        .gateway
        .as_ref()
        .and_then(|gateway| gateway.tools.as_ref());
    let named = |list: &[String]| {
        list.iter()
            .any(|name| name.trim().eq_ignore_ascii_case(tool))
    };
    let allowed = tools.is_some_and(|tools| named(&tools.allow));
    let extra = tools.is_some_and(|tools| named(&tools.deny));
    extra || (DEFAULT_DENY.contains(&tool.to_ascii_lowercase().as_str()) && !allowed)
}

/// A parsed request.
struct Input {
    tool: String,
    args: Value,
    session_key: String,
    agent_id: String,
    idempotency_key: Option<String>,
}

fn invalid(message: impl Into<String>) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        json!({"ok": false, "error": {"type": "invalid_request", "message": message.into()}}),
    )
}

async fn invoke(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    if let Err(refused) = super::bearer(&gateway, &parts.headers, remote.ip(), &gateway.auth) {
        return refused;
    }
    let bytes = match read_body(&parts.headers, body, BODY_BYTES_MAX).await {
        Ok(bytes) => bytes,
        Err(BodyError::TooLarge) => {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "Payload too large",
            );
        }
        Err(BodyError::Timeout) => {
            return error_response(
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request_error",
                "Request body timeout",
            );
        }
        Err(BodyError::Broken(message)) => {
            return error_response(StatusCode::BAD_REQUEST, "invalid_request_error", &message);
        }
    };
    let body = match parse_json(&bytes) {
        Ok(body) => body,
        Err(message) => {
            return error_response(StatusCode::BAD_REQUEST, "invalid_request_error", &message);
        }
    };
    let config = gateway.config();
    let input = match parse(&config, &body) {
        Ok(input) => input,
        Err(message) => return invalid(message),
    };
    // The work runs in its own task: a client that hangs up must not cut
    // the recording between `started` and `finished`.
    let task = tokio::spawn(run(gateway.clone(), input));
    match task.await {
        Ok(response) => response,
        Err(error) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"ok": false, "error": {"type": "tool_error",
                   "message": format!("tool execution failed: {error}")}}),
        ),
    }
}

/// The request as OpenClaw reads it: `name` before `tool`; `args` an
/// object (else `{}`); `action` merged into `args` when the tool takes one;
/// no `sessionKey`, or `main`, is the agent's main session.
fn parse(config: &crate::config::model::ConfigFile, body: &Value) -> Result<Input, String> {
    let empty = Map::new();
    let object = body.as_object().unwrap_or(&empty);
    let text = |key: &str| {
        object
            .get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|text| !text.is_empty())
    };
    let Some(tool) = text("name").or_else(|| text("tool")) else {
        return Err("tools.invoke requires name".to_owned());
    };
    let mut args = match object.get("args") {
        Some(Value::Object(args)) => args.clone(),
        _ => Map::new(),
    };
    if let Some(action) = text("action")
        && !args.contains_key("action")
    {
        args.insert("action".to_owned(), json!(action));
    }
    let idempotency_key = text("idempotencyKey").map(str::to_owned);
    if idempotency_key
        .as_ref()
        .is_some_and(|key| key.chars().count() > IDEMPOTENCY_KEY_CHARS_MAX)
    {
        return Err(format!(
            "idempotencyKey must be at most {IDEMPOTENCY_KEY_CHARS_MAX} characters"
        ));
    }
    let requested_agent = text("agentId").map(str::to_ascii_lowercase);
    if let Some(agent) = &requested_agent
        && agent != DEFAULT_AGENT
        && !config
            .agents
            .as_ref()
            .is_some_and(|agents| agents.entries.contains_key(agent))
    {
        return Err(format!("unknown agent id \"{agent}\""));
    }
    let (agent_id, session_key) = match text("sessionKey").filter(|key| *key != "main") {
        None => {
            let agent = requested_agent.unwrap_or_else(|| DEFAULT_AGENT.to_owned());
            let key = format!("agent:{agent}:main");
            (agent, key)
        }
        Some(key) => {
            let owner = clawback_projections::sessions::agent_in_key(key).map(str::to_owned);
            if let (Some(requested), Some(owner)) = (&requested_agent, &owner)
                && !requested.eq_ignore_ascii_case(owner)
            {
                return Err(format!(
                    "agent id \"{requested}\" does not match session agent \"{owner}\""
                ));
            }
            let agent = owner
                .or(requested_agent)
                .unwrap_or_else(|| DEFAULT_AGENT.to_owned());
            (agent.to_ascii_lowercase(), key.to_owned())
        }
    };
    Ok(Input {
        tool: tool.to_owned(),
        args: Value::Object(args),
        session_key,
        agent_id,
        idempotency_key,
    })
}

/// Takes a key into the in-flight set until dropped.
struct InFlight<'a> {
    state: &'a ToolsState,
    entry: (String, String),
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.state
            .in_flight
            .lock()
            .expect("in-flight lock")
            .remove(&self.entry);
    }
}

async fn run(gateway: Arc<Gateway>, input: Input) -> Response {
    let actor = Actor::Http {
        endpoint: "/tools/invoke".to_owned(),
    };
    let suffix = input
        .idempotency_key
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let run_id = format!("{DIRECT_TOOL_TRIGGER}:{suffix}");
    let call_id = format!("http-{suffix}");
    let _in_flight = match &input.idempotency_key {
        None => None,
        Some(key) => {
            let entry = (input.session_key.clone(), key.clone());
            let mut in_flight = gateway.http.tools.in_flight.lock().expect("in-flight lock");
            if in_flight.contains(&entry) {
                return conflict(format!(
                    "an invocation with idempotencyKey {key:?} is still running"
                ));
            }
            if in_flight.len() >= IN_FLIGHT_MAX {
                return json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"ok": false, "error": {"type": "unavailable",
                           "message": "too many tool invocations in flight; retry shortly"}}),
                );
            }
            in_flight.insert(entry.clone());
            drop(in_flight);
            let guard = InFlight {
                state: &gateway.http.tools,
                entry,
            };
            if let Some(answer) = recorded(&gateway, &input, &run_id, &call_id) {
                return answer;
            }
            Some(guard)
        }
    };
    let config = gateway.config();
    let spec = gateway
        .agent
        .tools
        .specs()
        .into_iter()
        .find(|spec| spec.name == input.tool);
    let available = spec.is_some() && !denied(&config, &input.tool);
    let mut arguments = input.args.clone();
    crate::redact::redact_value(&mut arguments);
    let mut opening = vec![
        Event::AgentRunStarted(AgentRunStarted {
            run_id: run_id.clone(),
            session_key: input.session_key.clone(),
            agent_id: input.agent_id.clone(),
            model: None,
            trigger: DIRECT_TOOL_TRIGGER.to_owned(),
        }),
        Event::ToolCallRequested(ToolCallRequested {
            tool_call_id: call_id.clone(),
            run_id: run_id.clone(),
            session_key: input.session_key.clone(),
            tool: input.tool.clone(),
            arguments: arguments.to_string(),
        }),
    ];
    if available {
        opening.push(Event::ToolCallStarted(ToolCallStarted {
            tool_call_id: call_id.clone(),
            session_key: input.session_key.clone(),
        }));
    }
    let session = Opening {
        session_key: &input.session_key,
        agent_id: &input.agent_id,
        actor: &actor,
        run_id: &run_id,
        origin: DIRECT_TOOL_TRIGGER,
    };
    if let Err(error) = open_session(&gateway, session, opening).await {
        return unavailable(&error);
    }
    let started = Instant::now();
    let outcome = if available {
        // A tool allowed over HTTP that asks (exec, once taken off the
        // deny list) asks an operator, recorded on this call's run; one
        // that acts through the gateway's methods does so as this run.
        let host = Arc::new(crate::agent::tool_round::RunApprover {
            gateway: gateway.clone(),
            session_key: input.session_key.clone(),
            actor: actor.clone(),
            run_id: run_id.clone(),
        });
        let context = Arc::new(Context {
            workspace: crate::agent::workspace::dir(&config, &gateway.state_root, &input.agent_id),
            agent_id: input.agent_id.clone(),
            session_key: input.session_key.clone(),
            state: gateway.state.clone(),
            tools_config: config.tools.clone(),
            approver: host.clone(),
            host,
        });
        gateway
            .agent
            .tools
            .call(context, &input.tool, &input.args.to_string())
            .await
    } else {
        ToolOutcome::Denied {
            reason: format!("Tool not available: {}", input.tool),
        }
    };
    let status = match &outcome {
        ToolOutcome::Ok { .. } => RunStatus::Completed,
        other => RunStatus::Failed {
            error_kind: "tool".to_owned(),
            message: outcome_text(other).0,
        },
    };
    let closing = vec![
        Event::ToolCallFinished(ToolCallFinished {
            tool_call_id: call_id,
            session_key: input.session_key.clone(),
            outcome: outcome.clone(),
            duration_ms: started.elapsed().as_millis() as u64,
        }),
        Event::AgentRunFinished(AgentRunFinished {
            run_id: run_id.clone(),
            session_key: input.session_key.clone(),
            status,
        }),
    ];
    if let Err(error) =
        crate::agent::compact::append(&gateway, &input.session_key, &actor, &run_id, closing).await
    {
        return unavailable(&error);
    }
    answer(&input.tool, &outcome)
}

/// The answer for a call's outcome, in OpenClaw's shapes.
fn answer(tool: &str, outcome: &ToolOutcome) -> Response {
    match outcome {
        ToolOutcome::Ok { output } => {
            let mut result = json!({"content": [{"type": "text", "text": output}]});
            // Structured output (sessions_list's JSON) also as `details`,
            // as OpenClaw's tools return it.
            if let Ok(details @ (Value::Object(_) | Value::Array(_))) =
                serde_json::from_str::<Value>(output)
            {
                result["details"] = details;
            }
            json_response(StatusCode::OK, json!({"ok": true, "result": result}))
        }
        ToolOutcome::Denied { reason } if reason.starts_with("Tool not available") => {
            json_response(
                StatusCode::NOT_FOUND,
                json!({"ok": false, "error": {"type": "not_found",
                       "message": format!("Tool not available: {tool}")}}),
            )
        }
        ToolOutcome::Denied { reason } => json_response(
            StatusCode::FORBIDDEN,
            json!({"ok": false, "error": {"type": "tool_call_blocked", "message": reason,
                   "requiresApproval": true}}),
        ),
        ToolOutcome::Error { message } => json_response(
            StatusCode::BAD_REQUEST,
            json!({"ok": false, "error": {"type": "tool_error", "message": message}}),
        ),
        ToolOutcome::TimedOut => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"ok": false, "error": {"type": "tool_error",
                   "message": outcome_text(outcome).0}}),
        ),
    }
}

fn conflict(message: String) -> Response {
    json_response(
        StatusCode::CONFLICT,
        json!({"ok": false, "error": {"type": "conflict", "message": message}}),
    )
}

fn unavailable(error: &str) -> Response {
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"ok": false, "error": {"type": "unavailable", "message": error}}),
    )
}

/// The answer already recorded for this idempotency key, if its run is
/// one the session remembers: replayed from the log, never re-run.
fn recorded(gateway: &Gateway, input: &Input, run_id: &str, call_id: &str) -> Option<Response> {
    let (started_seq, state) = {
        let state = gateway.state.read().expect("state lock");
        let session = state.sessions.by_key.get(&input.session_key)?;
        let run = session.run(run_id)?;
        (run.started_seq, run.state.clone())
    };
    let key = input.idempotency_key.as_deref().unwrap_or_default();
    match state {
        RunState::Running => {
            return Some(conflict(format!(
                "an invocation with idempotencyKey {key:?} is still running"
            )));
        }
        RunState::Interrupted { .. } => {
            return Some(json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"ok": false, "error": {"type": "tool_error", "message": format!(
                    "the invocation with idempotencyKey {key:?} was interrupted by a gateway restart; retry with a new key"
                )}}),
            ));
        }
        RunState::Finished { .. } => {}
    }
    let (tool, outcome) = read_call(
        &**gateway.log.store(),
        &*gateway.keyring,
        &input.session_key,
        started_seq,
        call_id,
    );
    // The run is known, so the call ran: if its record cannot be read back
    // (a damaged log), say so rather than run it a second time.
    let (Some(tool), Some(outcome)) = (tool, outcome) else {
        return Some(json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"ok": false, "error": {"type": "tool_error", "message": format!(
                "the invocation with idempotencyKey {key:?} ran, but its recorded result cannot be read back; retry with a new key"
            )}}),
        ));
    };
    if tool != input.tool {
        return Some(conflict(format!(
            "idempotencyKey {key:?} was already used for tool {tool}"
        )));
    }
    Some(answer(&tool, &outcome))
}

/// The tool and outcome of call `call_id`, read from the session's stream
/// from `from` on.
fn read_call(
    store: &dyn LogStore,
    keys: &dyn clawback_events::sealed::ContentKeys,
    stream: &str,
    from: u64,
    call_id: &str,
) -> (Option<String>, Option<ToolOutcome>) {
    let mut seqs = Vec::new();
    let _ = store.scan_stream(stream, from, &mut |seq| {
        seqs.push(seq);
        if seqs.len() >= REPLAY_SCAN_MAX {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    });
    let (mut tool, mut outcome) = (None, None);
    for seq in seqs {
        let Ok(Some(bytes)) = store.get(seq) else {
            continue;
        };
        let Ok(envelope) = clawback_events::record::decode(seq, &bytes) else {
            continue;
        };
        match envelope.body.event.read(keys).event.into_owned() {
            Event::ToolCallRequested(call) if call.tool_call_id == call_id => {
                tool = Some(call.tool);
            }
            Event::ToolCallFinished(finished) if finished.tool_call_id == call_id => {
                outcome = Some(finished.outcome);
                break;
            }
            _ => {}
        }
    }
    (tool, outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(value: Value) -> crate::config::model::ConfigFile {
        crate::config::model::check(&value).unwrap().typed
    }

    #[test]
    fn the_default_deny_list_holds_unless_allowed_and_deny_adds() {
        let plain = config(json!({}));
        for tool in [
            "exec",
            "spawn",
            "shell",
            "fs_write",
            "fs_delete",
            "fs_move",
            "apply_patch",
            "sessions_spawn",
            "sessions_send",
            "cron",
            "gateway",
            "nodes",
        ] {
            assert!(denied(&plain, tool), "{tool}");
        }
        assert!(!denied(&plain, "read"));
        let changed =
            config(json!({"gateway": {"tools": {"allow": ["gateway"], "deny": ["Read"]}}}));
        assert!(!denied(&changed, "gateway"));
        assert!(denied(&changed, "exec"));
        assert!(denied(&changed, "read"));
    }

    #[test]
    fn requests_are_read_as_openclaw_reads_them() {
        let plain = config(json!({"agents": {"entries": {"ops": {}}}}));
        let parsed = |body: Value| parse(&plain, &body);
        let input = parsed(
            json!({"tool": "read", "name": "sessions_list", "action": "json",
                                  "args": {"limit": 1}}),
        )
        .ok()
        .unwrap();
        assert_eq!(input.tool, "sessions_list");
        assert_eq!(input.args, json!({"limit": 1, "action": "json"}));
        assert_eq!(input.session_key, "agent:main:main");
        let input = parsed(json!({"tool": "read", "agentId": "ops", "sessionKey": "main"}))
            .ok()
            .unwrap();
        assert_eq!(
            (input.agent_id.as_str(), input.session_key.as_str()),
            ("ops", "agent:ops:main")
        );
        for bad in [
            json!({}),
            json!([1]),
            json!({"tool": " "}),
            json!({"tool": "read", "agentId": "nobody"}),
            json!({"tool": "read", "agentId": "ops", "sessionKey": "agent:main:x"}),
            json!({"tool": "read", "idempotencyKey": "k".repeat(257)}),
        ] {
            assert!(parsed(bad.clone()).is_err(), "{bad}");
        }
    }
}
