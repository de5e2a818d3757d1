//! One request after authorization: the method decides (see `methods`),
//! then `rpc.received`, the events it caused and `rpc.answered` are
//! recorded as one batch, and only then is the answer returned (with the
//! second answer of methods that have one).

use std::sync::Arc;

use clawback_events::NewEvent;
use clawback_events::event::{Event, RpcAnswered, RpcOutcome, RpcReceived};

use super::frames::{self, ErrorShape, codes};
use super::methods;
use crate::gateway::Gateway;
use crate::redact::redact_rpc_params;

/// Methods whose params carry a message to a session.
const CONTENT_METHODS: &[&str] = &[
    "agent",
    "chat.send",
    "wake",
    "send",
    "clawback.sessions.fork",
];

/// Handles one request: runs it, records request and outcome, and only then
/// returns the response frame.
pub(super) async fn answer(
    gateway: &Arc<Gateway>,
    conn_id: String,
    device_id: Option<String>,
    scopes: Vec<String>,
    tool_events: bool,
    request: frames::RequestFrame,
) -> (String, Option<methods::FollowUp>) {
    let caller = methods::Caller {
        conn_id,
        device_id,
        scopes,
        tool_events,
    };
    let actor = caller.actor();
    let (result, follow_up) = recorded(
        gateway,
        &caller,
        actor,
        &request.id,
        &request.method,
        request.params.as_ref(),
    )
    .await;
    match result {
        Ok(payload) => (frames::response_ok(&request.id, payload), follow_up),
        Err(error) => (frames::response_error(&request.id, &error), None),
    }
}

/// Runs one method for `caller` and records `rpc.received`, the events it
/// caused and `rpc.answered` (by `actor`) as one durable batch before the
/// result is returned. Used by sockets (`answer`) and by tools that act
/// through the gateway's methods on a run's behalf.
pub(crate) async fn recorded(
    gateway: &Arc<Gateway>,
    caller: &methods::Caller,
    actor: clawback_events::Actor,
    request_id: &str,
    method: &str,
    params: Option<&serde_json::Value>,
) -> (
    Result<serde_json::Value, ErrorShape>,
    Option<methods::FollowUp>,
) {
    let conn_id = caller.conn_id.clone();
    let reply = methods::call(gateway, caller, method, params).await;
    let result = reply.result;
    // A message the method did not get to resolve (bad params) is sealed
    // under the session the params name, as given.
    let content_of = reply.content_of.or_else(|| {
        CONTENT_METHODS
            .contains(&method)
            .then(|| params?.get("sessionKey")?.as_str().map(str::to_owned))
            .flatten()
    });
    let after = reply.after;
    let follow_up = reply.follow_up;
    let outcome = match &result {
        Ok(_) => RpcOutcome::Ok,
        Err(error) => {
            tracing::warn!(
                subsystem = "rpc",
                method = method,
                code = error.code,
                conn = conn_id.as_str(),
                "{} failed: {}",
                method,
                error.message
            );
            RpcOutcome::Error {
                code: error.code.to_owned(),
                message: error.message.clone(),
            }
        }
    };
    let received = Event::RpcReceived(RpcReceived {
        conn_id: conn_id.clone(),
        request_id: request_id.to_owned(),
        method: method.to_owned(),
        params_redacted: redact_rpc_params(method, params),
    });
    let answered = Event::RpcAnswered(RpcAnswered {
        conn_id,
        request_id: request_id.to_owned(),
        method: method.to_owned(),
        outcome,
    });
    let mut batch = Vec::with_capacity(reply.events.len() + 2);
    let received =
        NewEvent::new("gateway", actor.clone(), received).correlated(request_id.to_owned());
    batch.push(match content_of {
        Some(session_key) => received.sealed_for(session_key),
        None => received,
    });
    for (stream, event) in reply.events {
        batch.push(NewEvent::new(stream, actor.clone(), event).correlated(request_id.to_owned()));
    }
    batch.push(NewEvent::new("gateway", actor, answered).correlated(request_id.to_owned()));
    let recorded = gateway.log.append(batch).await;
    // Durable (or failed): the next checked write may decide now.
    drop(reply.write_lock);

    if let Err(error) = recorded {
        let error = ErrorShape {
            code: codes::UNAVAILABLE,
            message: format!("the gateway cannot record this request: {error}"),
            details: None,
            retryable: Some(true),
            retry_after_ms: Some(1_000),
        };
        return (Err(error), None);
    }
    let result = match (result, after) {
        (Ok(_), Some(after)) => Ok(after(gateway)),
        (result, _) => result,
    };
    match result {
        Ok(payload) => (Ok(payload), follow_up),
        Err(error) => (Err(error), None),
    }
}
