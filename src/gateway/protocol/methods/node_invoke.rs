//! `node.invoke` (operator -> gateway -> node) and `node.invoke.result`
//! (node -> gateway): a command run on a connected node, answered with the
//! node's result, its error, or a timeout.
//!
//! Why a registry beside the log: the waiting operator request lives only
//! as long as its socket; the log records the request
//! (`node.invoke.requested`, from which the fanout pushes
//! `node.invoke.request` to that node's socket alone) and how it ended
//! (`node.invoke.finished`). Exactly one ending is recorded per invoke:
//! whoever takes the entry out of the registry (the node's result, the
//! timeout, or the node's disconnect) records it.
//!
//! The params the node gets are exact; the log holds them redacted, so the
//! push reads them from the registry entry (an invoke already ended is not
//! pushed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clawback_events::NewEvent;
use clawback_events::event::{Event, NodeInvokeFinished, NodeInvokeRequested};
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;

use super::super::frames::{ErrorShape, codes};
use super::super::scopes;
use super::{Caller, Params, Reply};
use crate::gateway::Gateway;

/// OpenClaw's default when `timeoutMs` is absent or 0.
pub const TIMEOUT_DEFAULT_MS: u64 = 30_000;
/// The longest an operator request waits for a node.
const TIMEOUT_MAX_MS: u64 = 60 * 60 * 1000;
/// Invokes waiting for nodes at once, across the gateway.
const IN_FLIGHT_MAX: usize = 1_024;
/// After a timeout lost the race to a result being recorded, how long the
/// request waits for that result to become durable.
const RESULT_GRACE: Duration = Duration::from_secs(10);

const INVOKE_KEYS: &[&str] = &[
    "nodeId",
    "command",
    "params",
    "timeoutMs",
    "idempotencyKey",
    "sessionKey",
    "turnSourceChannel",
    "turnSourceTo",
    "turnSourceAccountId",
    "turnSourceThreadId",
];

/// How an invoke ended, as the waiting request hears it.
struct Outcome {
    ok: bool,
    payload: Option<Value>,
    payload_json: Option<String>,
    error: Option<Value>,
}

struct Pending {
    node_id: String,
    node_conn_id: String,
    command: String,
    params_json: Option<String>,
    answer: oneshot::Sender<Outcome>,
}

/// Invokes waiting for their node, by invoke id.
#[derive(Default)]
pub struct Invokes {
    pending: Mutex<HashMap<String, Pending>>,
}

impl Invokes {
    fn register(&self, id: &str, pending: Pending) -> Result<(), ErrorShape> {
        let mut map = self.pending.lock().expect("invokes lock");
        if map.len() >= IN_FLIGHT_MAX {
            return Err(ErrorShape::new(
                codes::UNAVAILABLE,
                format!("too many node invokes in flight ({IN_FLIGHT_MAX}); retry later"),
            ));
        }
        map.insert(id.to_owned(), pending);
        Ok(())
    }

    fn claim(&self, id: &str) -> Option<Pending> {
        self.pending.lock().expect("invokes lock").remove(id)
    }

    /// The exact params of an invoke still waiting (`Some(None)`: it has
    /// none); `None` once it has ended.
    pub fn params_for(&self, id: &str) -> Option<Option<String>> {
        let map = self.pending.lock().expect("invokes lock");
        map.get(id).map(|pending| pending.params_json.clone())
    }

    /// Ends every invoke sent to a node connection that closed: the events
    /// to record, and a function that tells the waiters once they are.
    pub fn disconnected(&self, conn_id: &str) -> (Vec<Event>, impl FnOnce(bool) + use<>) {
        let mut map = self.pending.lock().expect("invokes lock");
        let ids: Vec<String> = map
            .iter()
            .filter(|(_, pending)| pending.node_conn_id == conn_id)
            .map(|(id, _)| id.clone())
            .collect();
        let claimed: Vec<(String, Pending)> = ids
            .into_iter()
            .filter_map(|id| map.remove(&id).map(|pending| (id, pending)))
            .collect();
        drop(map);
        let events = claimed
            .iter()
            .map(|(id, pending)| {
                Event::NodeInvokeFinished(NodeInvokeFinished {
                    invoke_id: id.clone(),
                    node_id: pending.node_id.clone(),
                    ok: false,
                    error_code: Some("DISCONNECTED".to_owned()),
                    error_message: Some(disconnected_message(&pending.command)),
                    payload_bytes: 0,
                    payload_blake3: None,
                })
            })
            .collect();
        let tell = move |recorded: bool| {
            for (_, pending) in claimed {
                // Not recorded: dropping the sender tells the waiter so.
                if recorded {
                    let _ = pending.answer.send(Outcome {
                        ok: false,
                        payload: None,
                        payload_json: None,
                        error: Some(json!({"code": "DISCONNECTED",
                                           "message": disconnected_message(&pending.command)})),
                    });
                }
            }
        };
        (events, tell)
    }
}

fn disconnected_message(command: &str) -> String {
    format!("node disconnected ({command})")
}

/// Commands OpenClaw reserves for its worker runtime: never invocable.
const PRIVATE_COMMANDS: &[&str] = &[
    "worker.bundle.install.v1",
    "worker.launch.v1",
    "worker.status.v1",
    "worker.cancel.v1",
    "worker.environment.stop.v1",
    "worker.workspace.exec.v1",
    "worker.workspace.prepare.v1",
    "worker.workspace.retain.v1",
    "worker.desktop.stream.v1",
    "worker.desktop.launch.v1",
    "worker.desktop.computer.v1",
    "worker.portal.stream.v1",
];

/// Commands OpenClaw's gateway policy withholds unless its config allows
/// them by name (`gateway.nodes.commands.allow`), which clawback does not
/// read: they are never invocable here.
const DANGEROUS_COMMANDS: &[&str] = &[
    "camera.snap",
    "camera.clip",
    "camera.ptz.control",
    "screen.record",
    "contacts.add",
    "calendar.add",
    "reminders.add",
    "sms.send",
    "sms.search",
    "health.summary",
];

pub fn is_private(command: &str) -> bool {
    PRIVATE_COMMANDS.contains(&command.trim())
}

fn non_empty<'a>(params: &Params<'a>, key: &str) -> Result<&'a str, ErrorShape> {
    let value = params.str(key)?;
    if value.is_empty() {
        return Err(params.invalid(format!("at /{key}: must NOT have fewer than 1 characters")));
    }
    Ok(value)
}

fn opt_non_empty<'a>(params: &Params<'a>, key: &str) -> Result<Option<&'a str>, ErrorShape> {
    match params.opt_str(key)? {
        Some("") => {
            Err(params.invalid(format!("at /{key}: must NOT have fewer than 1 characters")))
        }
        value => Ok(value),
    }
}

pub(super) struct InvokeRequest {
    pub node_id: String,
    pub command: String,
    pub params_json: Option<String>,
    pub timeout_ms: u64,
    pub idempotency_key: String,
    pub session_key: Option<String>,
}

fn parse_invoke(params: Option<&Value>) -> Result<InvokeRequest, ErrorShape> {
    let params = Params::closed("node.invoke", params, INVOKE_KEYS)?;
    let node_id = non_empty(&params, "nodeId")?.trim().to_owned();
    let command = non_empty(&params, "command")?.trim().to_owned();
    let timeout_ms = params.opt_u64("timeoutMs")?;
    let idempotency_key = non_empty(&params, "idempotencyKey")?.to_owned();
    let session_key = opt_non_empty(&params, "sessionKey")?
        .map(str::trim)
        .filter(|key| !key.is_empty())
        .map(str::to_owned);
    for key in ["turnSourceChannel", "turnSourceTo", "turnSourceAccountId"] {
        params.opt_str(key)?;
    }
    if let Some(thread) = params.get("turnSourceThreadId")
        && !(thread.is_string() || thread.is_number())
    {
        return Err(params.invalid("at /turnSourceThreadId: must be string or number"));
    }
    if node_id.is_empty() || command.is_empty() {
        return Err(ErrorShape::invalid("nodeId and command required"));
    }
    Ok(InvokeRequest {
        node_id,
        command,
        // `params` may be any JSON value, `null` included.
        params_json: params.has("params").then(|| {
            params
                .get("params")
                .cloned()
                .unwrap_or(Value::Null)
                .to_string()
        }),
        timeout_ms: match timeout_ms {
            Some(0) | None => TIMEOUT_DEFAULT_MS,
            Some(ms) => ms.min(TIMEOUT_MAX_MS),
        },
        idempotency_key,
        session_key,
    })
}

/// Why a command may not be sent to this node, in OpenClaw's words.
fn refusal(state: &clawback_projections::State, node_id: &str, command: &str) -> Option<String> {
    let declared = state
        .nodes
        .connected
        .get(node_id)
        .map(|session| &session.declared.commands)?;
    if declared.is_empty() {
        return Some("node did not declare commands".to_owned());
    }
    if !declared.iter().any(|declared| declared == command) {
        return Some("command not declared by node".to_owned());
    }
    if DANGEROUS_COMMANDS.contains(&command)
        || !state
            .nodes
            .effective_commands(node_id)
            .iter()
            .any(|allowed| allowed == command)
    {
        return Some("command not allowlisted".to_owned());
    }
    None
}

fn not_connected() -> ErrorShape {
    ErrorShape::new(codes::UNAVAILABLE, "node not connected").with_details(json!({
        "code": "NOT_CONNECTED",
        "nodeError": {"code": "NOT_CONNECTED", "message": "node not connected"},
        "nodeCommandDispatched": false,
    }))
}

/// `node.invoke`: waits for the node's answer or the timeout.
pub async fn invoke(gateway: &Arc<Gateway>, caller: &Caller, params: Option<&Value>) -> Reply {
    let request = match parse_invoke(params) {
        Ok(request) => request,
        Err(error) => return Reply::answer(Err(error)),
    };
    let command = request.command.clone();
    if is_private(&command) {
        return Reply::answer(Err(ErrorShape::invalid(
            "node.invoke does not allow private node controls",
        )
        .with_details(json!({"command": command}))));
    }
    if command == "system.execApprovals.get" || command == "system.execApprovals.set" {
        return Reply::answer(Err(ErrorShape::invalid(
            "node.invoke does not allow system.execApprovals.*; use exec.approvals.node.*",
        )
        .with_details(json!({"command": command}))));
    }
    // The dynamic scope rule has already required admin for admin-only
    // commands (`scopes::required_scope`); checked again here because a
    // rule table is easy to bypass by mistake and this is the boundary.
    if scopes::is_admin_only_node_command(&command)
        && !scopes::satisfies(&caller.scopes, scopes::ADMIN)
    {
        return Reply::answer(Err(super::missing_scope(scopes::ADMIN, &[scopes::ADMIN])));
    }
    send_and_wait(gateway, caller, request).await
}

/// Sends a checked request to its node and waits for the answer (the
/// gateway's own invokes, such as `exec.approvals.node.*`, start here).
pub(super) async fn send_and_wait(
    gateway: &Arc<Gateway>,
    caller: &Caller,
    request: InvokeRequest,
) -> Reply {
    let command = request.command.clone();
    let node_conn_id = {
        let state = gateway.state.read().expect("state lock");
        let Some(session) = state.nodes.connected.get(&request.node_id) else {
            return Reply::answer(Err(not_connected()));
        };
        if let Some(reason) = refusal(&state, &request.node_id, &command) {
            let hint = match reason.as_str() {
                "command not allowlisted" => format!(
                    "node command not allowed: {command} is not in the node's approved command surface \
                     (approve it with `openclaw nodes approve`) or is withheld by gateway policy"
                ),
                _ => format!("node command not allowed: {reason} ({command})"),
            };
            return Reply::answer(Err(ErrorShape::invalid(hint)
                .with_details(json!({"reason": reason, "command": command}))));
        }
        session.conn_id.clone()
    };
    let invoke_id = uuid::Uuid::new_v4().to_string();
    let (answer, mut waiter) = oneshot::channel();
    let redacted = request.params_json.as_deref().map(|exact| {
        serde_json::from_str::<Value>(exact)
            .map(|value| crate::redact::redact_params(Some(&value)))
            .unwrap_or_default()
    });
    if let Err(error) = gateway.node_invokes.register(
        &invoke_id,
        Pending {
            node_id: request.node_id.clone(),
            node_conn_id: node_conn_id.clone(),
            command: command.clone(),
            params_json: request.params_json,
            answer,
        },
    ) {
        return Reply::answer(Err(error));
    }
    let requested = Event::NodeInvokeRequested(NodeInvokeRequested {
        invoke_id: invoke_id.clone(),
        node_id: request.node_id.clone(),
        node_conn_id,
        command: command.clone(),
        params_redacted: redacted,
        timeout_ms: request.timeout_ms,
        idempotency_key: request.idempotency_key,
        session_key: request.session_key,
    });
    let actor = caller.actor();
    if let Err(error) = gateway
        .log
        .append(vec![NewEvent::new("gateway", actor, requested)])
        .await
    {
        gateway.node_invokes.claim(&invoke_id);
        return Reply::answer(Err(ErrorShape::new(
            codes::UNAVAILABLE,
            format!("the gateway cannot record this node invoke: {error}"),
        )));
    }
    let node_id = request.node_id;
    let waited = tokio::time::timeout(Duration::from_millis(request.timeout_ms), &mut waiter).await;
    let received = match waited {
        Ok(received) => received.map_err(|_| ()),
        Err(_) => {
            if gateway.node_invokes.claim(&invoke_id).is_some() {
                let mut reply = Reply::answer(Err(node_error(
                    &json!({"code": "TIMEOUT", "message": "node invoke timed out"}),
                )));
                reply.events.push((
                    "gateway".to_owned(),
                    Event::NodeInvokeFinished(NodeInvokeFinished {
                        invoke_id,
                        node_id,
                        ok: false,
                        error_code: Some("TIMEOUT".to_owned()),
                        error_message: Some("node invoke timed out".to_owned()),
                        payload_bytes: 0,
                        payload_blake3: None,
                    }),
                ));
                return reply;
            }
            // A result was taken at the deadline and is being recorded.
            match tokio::time::timeout(RESULT_GRACE, &mut waiter).await {
                Ok(Ok(outcome)) => Ok(outcome),
                _ => Err(()),
            }
        }
    };
    Reply::answer(match received {
        Ok(outcome) => answer_for(&node_id, &command, outcome),
        Err(_) => Err(ErrorShape::new(
            codes::UNAVAILABLE,
            "the node's answer to this invoke could not be recorded",
        )),
    })
}

/// OpenClaw's answer for a finished invoke.
fn answer_for(node_id: &str, command: &str, outcome: Outcome) -> Result<Value, ErrorShape> {
    if !outcome.ok {
        return Err(node_error(&outcome.error.unwrap_or(Value::Null)));
    }
    let payload = match &outcome.payload_json {
        Some(text) => parse_payload(text),
        None => outcome.payload.unwrap_or(Value::Null),
    };
    Ok(json!({
        "ok": true,
        "nodeId": node_id,
        "command": command,
        "payload": payload,
        "payloadJSON": outcome.payload_json,
    }))
}

/// A node's `payloadJSON` as JSON; text that does not parse is passed on
/// as `{payloadJSON: text}` (OpenClaw's `parseGatewayPayload`).
fn parse_payload(text: &str) -> Value {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(trimmed).unwrap_or_else(|_| json!({"payloadJSON": text}))
}

/// `UNAVAILABLE` "CODE: message" with the node's error in the details.
fn node_error(error: &Value) -> ErrorShape {
    let code = error["code"].as_str().map(str::trim).unwrap_or("");
    let message = error["message"]
        .as_str()
        .map(str::trim)
        .filter(|message| !message.is_empty())
        .unwrap_or("node invoke failed");
    let text = if code.is_empty() {
        message.to_owned()
    } else {
        format!("{code}: {message}")
    };
    ErrorShape::new(codes::UNAVAILABLE, text)
        .with_details(json!({"nodeError": error, "nodeCommandDispatched": true}))
}

/// `node.invoke.result` from the node that was asked.
pub fn result(gateway: &Arc<Gateway>, caller: &Caller, params: Option<&Value>) -> Reply {
    // OpenClaw's normalization before validation: null payloadJSON and
    // error mean absent; a non-string payloadJSON is the payload.
    let normalized = params.and_then(Value::as_object).map(|object| {
        let mut object: Map<String, Value> = object.clone();
        match object.get("payloadJSON").cloned() {
            Some(Value::Null) => {
                object.remove("payloadJSON");
            }
            Some(value) if !value.is_string() => {
                object.remove("payloadJSON");
                object.entry("payload").or_insert(value);
            }
            _ => {}
        }
        if object.get("error") == Some(&Value::Null) {
            object.remove("error");
        }
        Value::Object(object)
    });
    let parsed = (|| {
        let params = Params::closed(
            "node.invoke.result",
            normalized.as_ref().or(params),
            &["id", "nodeId", "ok", "payload", "payloadJSON", "error"],
        )?;
        let id = non_empty(&params, "id")?.to_owned();
        let node_id = non_empty(&params, "nodeId")?.to_owned();
        let ok = params
            .opt_bool("ok")?
            .ok_or_else(|| params.invalid("must have required property 'ok'"))?;
        let payload_json = params.opt_str("payloadJSON")?.map(str::to_owned);
        let error = match params.get("error") {
            None => None,
            Some(Value::Object(error)) => {
                if let Some(key) = error.keys().find(|key| *key != "code" && *key != "message") {
                    return Err(params.invalid(format!(
                        "at /error: must NOT have additional properties (unexpected property '{key}')"
                    )));
                }
                for key in ["code", "message"] {
                    match error.get(key) {
                        None => {}
                        Some(Value::String(text)) if !text.is_empty() => {}
                        Some(_) => {
                            return Err(params
                                .invalid(format!("at /error/{key}: must be a non-empty string")));
                        }
                    }
                }
                Some(Value::Object(error.clone()))
            }
            Some(_) => return Err(params.invalid("at /error: must be object")),
        };
        let payload = params.get("payload").cloned();
        Ok::<_, ErrorShape>((id, node_id, ok, payload, payload_json, error))
    })();
    let (id, node_id, ok, payload, payload_json, error) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return Reply::answer(Err(error)),
    };
    if caller
        .device_id
        .as_deref()
        .is_some_and(|own| own != node_id)
    {
        return Reply::answer(Err(ErrorShape::invalid("nodeId mismatch")));
    }
    // Only the connection that was asked may answer, once.
    let claimed = {
        let mut map = gateway.node_invokes.pending.lock().expect("invokes lock");
        let matches = map.get(&id).is_some_and(|pending| {
            pending.node_id == node_id && pending.node_conn_id == caller.conn_id
        });
        if matches { map.remove(&id) } else { None }
    };
    let Some(pending) = claimed else {
        tracing::debug!(
            subsystem = "nodes",
            "late invoke result ignored: id={id} node={node_id}"
        );
        return Reply::answer(Ok(json!({"ok": true, "ignored": true})));
    };
    let bytes = match (&payload_json, &payload) {
        (Some(text), _) => Some(text.clone()),
        (None, Some(value)) => Some(value.to_string()),
        (None, None) => None,
    };
    let mut reply = Reply::answer(Ok(json!({"ok": true})));
    reply.events.push((
        "gateway".to_owned(),
        Event::NodeInvokeFinished(NodeInvokeFinished {
            invoke_id: id,
            node_id,
            ok,
            error_code: error
                .as_ref()
                .and_then(|error| error["code"].as_str())
                .map(str::to_owned),
            error_message: error
                .as_ref()
                .and_then(|error| error["message"].as_str())
                .map(str::to_owned),
            payload_bytes: bytes.as_ref().map_or(0, |bytes| bytes.len() as u64),
            payload_blake3: bytes
                .as_ref()
                .map(|bytes| blake3::hash(bytes.as_bytes()).to_hex().to_string()),
        }),
    ));
    // Told only once the ending is durable; if it never is, the dropped
    // sender tells the waiter that.
    let answer = pending.answer;
    reply.after = Some(Box::new(move |_| {
        let _ = answer.send(Outcome {
            ok,
            payload,
            payload_json,
            error,
        });
        json!({"ok": true})
    }));
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_json_that_does_not_parse_is_wrapped() {
        assert_eq!(parse_payload("{\"a\":1}"), json!({"a": 1}));
        assert_eq!(parse_payload("  "), Value::Null);
        assert_eq!(parse_payload("nope"), json!({"payloadJSON": "nope"}));
    }

    #[test]
    fn node_errors_read_code_colon_message() {
        let error = node_error(&json!({"code": "TIMEOUT", "message": "node invoke timed out"}));
        assert_eq!(error.message, "TIMEOUT: node invoke timed out");
        assert_eq!(error.code, "UNAVAILABLE");
        assert_eq!(node_error(&Value::Null).message, "node invoke failed");
    }

    #[test]
    fn invoke_params_are_checked_like_openclaw() {
        let error = parse_invoke(Some(&json!({"nodeId": "n", "command": "c"})))
            .err()
            .unwrap();
        assert_eq!(
            error.message,
            "invalid node.invoke params: must have required property 'idempotencyKey'"
        );
        let error = parse_invoke(Some(
            &json!({"nodeId": "", "command": "c", "idempotencyKey": "k"}),
        ))
        .err()
        .unwrap();
        assert_eq!(
            error.message,
            "invalid node.invoke params: at /nodeId: must NOT have fewer than 1 characters"
        );
        let ok = parse_invoke(Some(
            &json!({"nodeId": "n", "command": "c", "idempotencyKey": "k", "params": {"x": 1}}),
        ))
        .unwrap();
        assert_eq!(ok.params_json.as_deref(), Some("{\"x\":1}"));
        assert_eq!(ok.timeout_ms, TIMEOUT_DEFAULT_MS);
    }
}
