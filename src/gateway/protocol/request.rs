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
        conn_id: conn_id.clone(),
        device_id,
        scopes,
        tool_events,
    };
    let actor = caller.actor();
    let reply = methods::call(gateway, &caller, &request.method, request.params.as_ref()).await;
    let result = reply.result;
    let after = reply.after;
    let follow_up = reply.follow_up;
    let outcome = match &result {
        Ok(_) => RpcOutcome::Ok,
        Err(error) => {
            tracing::warn!(
                subsystem = "rpc",
                method = request.method.as_str(),
                code = error.code,
                conn = conn_id.as_str(),
                "{} failed: {}",
                request.method,
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
        request_id: request.id.clone(),
        method: request.method.clone(),
        params_redacted: redact_rpc_params(&request.method, request.params.as_ref()),
    });
    let answered = Event::RpcAnswered(RpcAnswered {
        conn_id,
        request_id: request.id.clone(),
        method: request.method.clone(),
        outcome,
    });
    let mut batch = Vec::with_capacity(reply.events.len() + 2);
    batch.push(NewEvent::new("gateway", actor.clone(), received).correlated(request.id.clone()));
    for (stream, event) in reply.events {
        batch.push(NewEvent::new(stream, actor.clone(), event).correlated(request.id.clone()));
    }
    batch.push(NewEvent::new("gateway", actor, answered).correlated(request.id.clone()));
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
        return (frames::response_error(&request.id, &error), None);
    }
    let result = match (result, after) {
        (Ok(_), Some(after)) => Ok(after(gateway)),
        (result, _) => result,
    };
    match result {
        Ok(payload) => (frames::response_ok(&request.id, payload), follow_up),
        Err(error) => (frames::response_error(&request.id, &error), None),
    }
}
