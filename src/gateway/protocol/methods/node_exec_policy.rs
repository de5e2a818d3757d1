//! `exec.approvals.node.get` / `exec.approvals.node.set`: a node's own exec
//! approval policy, read and written on the node.
//!
//! Why a proxy and not a copy: a node (a Mac, a phone, a headless host)
//! enforces its own policy file or host-native rules; the node is the
//! authority, as in OpenClaw. The gateway sends `system.execApprovals.get`
//! / `.set` through the same invoke path as `node.invoke` (recorded in the
//! log like any invoke), which `node.invoke` itself refuses to send.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::super::frames::ErrorShape;
use super::node_invoke::{self, InvokeRequest, TIMEOUT_DEFAULT_MS};
use super::{Caller, Params, Reply};
use crate::gateway::Gateway;

/// `exec.approvals.node.get {nodeId}`.
pub async fn get(gateway: &Arc<Gateway>, caller: &Caller, params: Option<&Value>) -> Reply {
    let node_id = match Params::closed("exec.approvals.node.get", params, &["nodeId"])
        .and_then(|params| node_id(&params))
    {
        Ok(node_id) => node_id,
        Err(error) => return Reply::answer(Err(error)),
    };
    let reply = invoke(
        gateway,
        caller,
        node_id,
        "system.execApprovals.get",
        json!({}),
    )
    .await;
    payload_of(reply, |payload| {
        // OpenClaw checks the node's snapshot before passing it on.
        payload
            .is_object()
            .then_some(())
            .ok_or_else(|| ErrorShape::invalid("node returned invalid exec approvals payload"))
    })
}

/// `exec.approvals.node.set {nodeId, file, baseHash?}` or
/// `{nodeId, native, baseHash}`.
pub async fn set(gateway: &Arc<Gateway>, caller: &Caller, params: Option<&Value>) -> Reply {
    let request = (|| {
        let params = Params::closed(
            "exec.approvals.node.set",
            params,
            &["nodeId", "file", "native", "baseHash"],
        )?;
        let node_id = node_id(&params)?;
        let base_hash = params.opt_str("baseHash")?;
        let object = |key: &str| -> Result<Option<&Map<String, Value>>, ErrorShape> {
            match params.get(key) {
                None => Ok(None),
                Some(Value::Object(object)) => Ok(Some(object)),
                Some(_) => Err(params.invalid(format!("at /{key}: must be object"))),
            }
        };
        let command_params = match (object("file")?, object("native")?, base_hash) {
            (Some(file), None, base_hash) => json!({"file": file, "baseHash": base_hash}),
            (None, Some(native), Some(base_hash)) => {
                let mut native = native.clone();
                native.insert("baseHash".into(), json!(base_hash));
                Value::Object(native)
            }
            _ => {
                return Err(params.invalid(
                    "must match exactly one schema in oneOf (either file, or native with baseHash)",
                ));
            }
        };
        Ok((node_id, command_params))
    })();
    let (node_id, command_params) = match request {
        Ok(request) => request,
        Err(error) => return Reply::answer(Err(error)),
    };
    let reply = invoke(
        gateway,
        caller,
        node_id,
        "system.execApprovals.set",
        command_params,
    )
    .await;
    payload_of(reply, |_| Ok(()))
}

fn node_id(params: &Params<'_>) -> Result<String, ErrorShape> {
    match params.str("nodeId")?.trim() {
        "" => Err(params.invalid("at /nodeId: must NOT have fewer than 1 characters")),
        id => Ok(id.to_owned()),
    }
}

async fn invoke(
    gateway: &Arc<Gateway>,
    caller: &Caller,
    node_id: String,
    command: &str,
    params: Value,
) -> Reply {
    let request = InvokeRequest {
        node_id,
        command: command.to_owned(),
        params_json: Some(params.to_string()),
        timeout_ms: TIMEOUT_DEFAULT_MS,
        idempotency_key: uuid::Uuid::new_v4().to_string(),
        session_key: None,
    };
    node_invoke::send_and_wait(gateway, caller, request).await
}

/// The node's payload as the answer (not `node.invoke`'s envelope), with
/// the invoke's events kept.
fn payload_of(mut reply: Reply, check: impl FnOnce(&Value) -> Result<(), ErrorShape>) -> Reply {
    reply.result = reply.result.and_then(|mut answer| {
        let payload = answer["payload"].take();
        check(&payload).map(|()| payload)
    });
    reply
}
