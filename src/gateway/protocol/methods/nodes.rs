//! `node.list`, `node.describe`, `node.pair.*`, `node.rename` and
//! `node.event`: nodes as operators see and approve them.
//!
//! Why here and not in `devices`: in OpenClaw 2026.9.6 a node is admitted
//! twice. Device pairing (`device.pair.*`) lets its connection in; its
//! command surface needs `node.pair.approve`, whose required scopes follow
//! the commands it declares. Shapes follow OpenClaw's node catalog
//! (`node-catalog.ts`) and pairing records (`device-pairing-node.records.ts`).

use std::sync::Arc;

use clawback_events::event::{
    DeviceRevoked, Event, NodePairRequested, NodePairResolved, NodeRenamed, NodeSurface,
    NodeUnpaired,
};
use clawback_projections::State;
use clawback_projections::nodes::{PairedNode, PendingNode};
use serde_json::{Map, Value, json};

use super::super::frames::ErrorShape;
use super::super::scopes;
use super::{Caller, Params, Reply, missing_scope, now_ms};
use crate::gateway::Gateway;

fn permissions(surface: &NodeSurface) -> Option<Value> {
    surface
        .permissions
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok())
}

fn sorted(list: &[String]) -> Vec<String> {
    let mut list: Vec<String> = list
        .iter()
        .filter(|item| !super::node_invoke::is_private(item))
        .cloned()
        .collect();
    list.sort();
    list.dedup();
    list
}

/// Drops `null` members, as JSON.stringify drops `undefined` ones.
fn compact(value: Value) -> Value {
    match value {
        Value::Object(object) => Value::Object(
            object
                .into_iter()
                .filter(|(_, value)| !value.is_null())
                .collect::<Map<String, Value>>(),
        ),
        other => other,
    }
}

/// A `node.pair.list` pending row and the `node.pair.requested` payload.
pub fn pending_row(request: &NodePairRequested, ts_ms: i64) -> Value {
    let surface = &request.surface;
    compact(json!({
        "requestId": request.request_id,
        "nodeId": request.node_id,
        "clientId": surface.client_id,
        "clientMode": surface.client_mode,
        "displayName": surface.display_name,
        "platform": surface.platform,
        "version": surface.version,
        "deviceFamily": surface.device_family,
        "modelIdentifier": surface.model_identifier,
        "caps": surface.caps,
        "commands": surface.commands,
        "requiredApproveScopes": scopes::node_pair_approval_scopes(&surface.commands),
        "permissions": permissions(surface),
        "remoteIp": surface.remote_ip,
        "silent": request.silent.then_some(true),
        "ts": ts_ms,
    }))
}

/// A `node.pair.list` paired row (OpenClaw's `toPairedNode`).
fn paired_row(node_id: &str, node: &PairedNode) -> Value {
    let surface = &node.surface;
    compact(json!({
        "nodeId": node_id,
        "clientId": (!surface.client_id.is_empty()).then_some(&surface.client_id),
        "clientMode": (!surface.client_mode.is_empty()).then_some(&surface.client_mode),
        "displayName": surface.display_name,
        "platform": surface.platform,
        "version": (!surface.version.is_empty()).then_some(&surface.version),
        "deviceFamily": surface.device_family,
        "modelIdentifier": surface.model_identifier,
        "caps": surface.caps,
        "commands": surface.commands,
        "permissions": permissions(surface),
        "remoteIp": surface.remote_ip,
        "createdAtMs": node.created_ts_ms,
        "approvedAtMs": node.approved_ts_ms,
        "lastConnectedAtMs": node.last_connected_ts_ms,
        "lastDisconnectedAtMs": node.last_disconnected_ts_ms,
    }))
}

/// Whether a caller is limited to its own node: a device-backed caller
/// without admin (OpenClaw's device-management authz).
fn own_only(caller: &Caller) -> Option<&str> {
    caller
        .device_id
        .as_deref()
        .filter(|_| !scopes::satisfies(&caller.scopes, scopes::ADMIN))
}

pub fn pair_list(gateway: &Gateway, caller: &Caller, params: Option<&Value>) -> Reply {
    if let Err(error) = Params::closed("node.pair.list", params, &[]) {
        return Reply::answer(Err(error));
    }
    let own = own_only(caller);
    let visible = |node_id: &str| own.is_none_or(|own| own == node_id);
    let state = gateway.state.read().expect("state lock");
    let mut pending: Vec<&PendingNode> = state
        .nodes
        .pending
        .values()
        .filter(|pending| visible(&pending.request.node_id))
        .collect();
    pending.sort_by_key(|pending| std::cmp::Reverse(pending.seq));
    let mut paired: Vec<(&String, &PairedNode)> = state
        .nodes
        .paired
        .iter()
        .filter(|(node_id, _)| visible(node_id))
        .collect();
    paired.sort_by_key(|(_, node)| std::cmp::Reverse(node.approved_seq));
    Reply::answer(Ok(json!({
        "pending": pending.iter().map(|pending| pending_row(&pending.request, pending.ts_ms)).collect::<Vec<_>>(),
        "paired": paired.iter().map(|(node_id, node)| paired_row(node_id, node)).collect::<Vec<_>>(),
    })))
}

/// Every node the gateway knows (device paired as a node, approved
/// surface, pending surface, or connected), as `node.list` rows.
fn known_nodes(state: &State, can_read_pending: bool, only: Option<&str>) -> Vec<Value> {
    let node_devices = state
        .devices
        .devices
        .values()
        .filter(|device| {
            device.paired.role == "node" && state.devices.is_trusted(&device.paired.device_id)
        })
        .map(|device| device.paired.device_id.clone());
    let mut ids: Vec<String> = node_devices
        .chain(state.nodes.paired.keys().cloned())
        .chain(
            state
                .nodes
                .pending
                .values()
                .map(|pending| pending.request.node_id.clone()),
        )
        .chain(state.nodes.connected.keys().cloned())
        .filter(|id| only.is_none_or(|only| only == id))
        .collect();
    ids.sort();
    ids.dedup();
    let mut rows: Vec<(bool, String, String, Value)> = Vec::new();
    for node_id in ids {
        let device =
            state.devices.devices.get(&node_id).filter(|device| {
                device.paired.role == "node" && state.devices.is_trusted(&node_id)
            });
        let paired = state.nodes.paired.get(&node_id);
        let pending = state.nodes.pending_for(&node_id);
        let live = state.nodes.connected.get(&node_id);
        let is_paired = device.is_some() || paired.is_some();
        if !can_read_pending && !is_paired && live.is_none() {
            continue;
        }
        let surfaces = [
            live.map(|live| &live.declared),
            paired.map(|paired| &paired.surface),
            pending.map(|pending| &pending.request.surface),
        ];
        let first = |pick: &dyn Fn(&NodeSurface) -> Option<String>| {
            surfaces.iter().flatten().find_map(|surface| pick(surface))
        };
        let text = |value: &String| (!value.trim().is_empty()).then(|| value.trim().to_owned());
        // A rename (on the paired record) wins over what the node says.
        let display_name = paired
            .and_then(|paired| paired.surface.display_name.clone())
            .or_else(|| first(&|surface| surface.display_name.clone()));
        let (caps, commands) = match (live, paired) {
            (Some(_), _) => (
                sorted(&state.nodes.effective_caps(&node_id)),
                sorted(&state.nodes.effective_commands(&node_id)),
            ),
            (None, Some(paired)) => (
                sorted(&paired.surface.caps),
                sorted(&paired.surface.commands),
            ),
            (None, None) => (Vec::new(), Vec::new()),
        };
        let approval_state = match (pending.is_some(), paired.is_some()) {
            (true, true) => "pending-reapproval",
            (true, false) => "pending-approval",
            (false, true) => "approved",
            (false, false) => "unapproved",
        };
        let last_connected = match (paired.and_then(|paired| paired.last_connected_ts_ms), live) {
            (Some(at), Some(live)) => Some(at.max(live.connected_ts_ms)),
            (at, live) => at.or(live.map(|live| live.connected_ts_ms)),
        };
        let row = compact(json!({
            "nodeId": node_id,
            "displayName": display_name,
            "platform": first(&|surface| text(&surface.platform)),
            "version": first(&|surface| text(&surface.version)),
            "clientId": first(&|surface| text(&surface.client_id)),
            "clientMode": first(&|surface| text(&surface.client_mode)),
            "deviceFamily": first(&|surface| surface.device_family.clone()),
            "modelIdentifier": first(&|surface| surface.model_identifier.clone()),
            "remoteIp": first(&|surface| surface.remote_ip.clone()),
            "caps": caps,
            "commands": commands,
            "permissions": paired.and_then(|paired| permissions(&paired.surface)),
            "approvalState": approval_state,
            "pendingRequestId": pending
                .filter(|_| can_read_pending)
                .map(|pending| pending.request.request_id.clone()),
            "connectedAtMs": live.map(|live| live.connected_ts_ms),
            "lastConnectedAtMs": last_connected,
            "lastDisconnectedAtMs": if live.is_some() { None } else {
                paired.and_then(|paired| paired.last_disconnected_ts_ms)
            },
            "lastSeenAtMs": last_connected,
            "lastSeenReason": last_connected.map(|_| "connect"),
            "approvedAtMs": paired
                .map(|paired| paired.approved_ts_ms)
                .or(device.map(|device| device.paired_ts_ms)),
            "paired": is_paired,
            "connected": live.is_some(),
        }));
        let sort_name = display_name
            .unwrap_or_else(|| node_id.clone())
            .to_lowercase();
        rows.push((live.is_none(), sort_name, node_id, row));
    }
    rows.sort_by(|a, b| (a.0, &a.1, &a.2).cmp(&(b.0, &b.1, &b.2)));
    rows.into_iter().map(|(_, _, _, row)| row).collect()
}

fn can_read_pending(caller: &Caller) -> bool {
    scopes::satisfies(&caller.scopes, scopes::PAIRING)
}

pub fn list(gateway: &Gateway, caller: &Caller, params: Option<&Value>) -> Reply {
    if let Err(error) = Params::closed("node.list", params, &[]) {
        return Reply::answer(Err(error));
    }
    let state = gateway.state.read().expect("state lock");
    let nodes = known_nodes(&state, can_read_pending(caller), None);
    Reply::answer(Ok(json!({"ts": now_ms(), "nodes": nodes})))
}

fn node_id_param(
    method: &str,
    params: Option<&Value>,
    keys: &[&str],
) -> Result<String, ErrorShape> {
    let params = Params::closed(method, params, keys)?;
    let node_id = params.str("nodeId")?;
    if node_id.is_empty() {
        return Err(params.invalid("at /nodeId: must NOT have fewer than 1 characters"));
    }
    Ok(node_id.trim().to_owned())
}

pub fn describe(gateway: &Gateway, caller: &Caller, params: Option<&Value>) -> Reply {
    let node_id = match node_id_param("node.describe", params, &["nodeId"]) {
        Ok(id) if id.is_empty() => {
            return Reply::answer(Err(ErrorShape::invalid("nodeId required")));
        }
        Ok(id) => id,
        Err(error) => return Reply::answer(Err(error)),
    };
    let state = gateway.state.read().expect("state lock");
    let Some(Value::Object(node)) = known_nodes(&state, can_read_pending(caller), Some(&node_id))
        .into_iter()
        .next()
    else {
        return Reply::answer(Err(ErrorShape::invalid("unknown nodeId")));
    };
    let mut answer = Map::new();
    answer.insert("ts".to_owned(), json!(now_ms()));
    answer.extend(node);
    Reply::answer(Ok(Value::Object(answer)))
}

fn request_id_param(method: &str, params: Option<&Value>) -> Result<String, ErrorShape> {
    let params = Params::closed(method, params, &["requestId"])?;
    let id = params.str("requestId")?;
    if id.is_empty() {
        return Err(params.invalid("at /requestId: must NOT have fewer than 1 characters"));
    }
    Ok(id.to_owned())
}

/// `node.pair.approve` and `node.pair.reject`.
pub async fn decide(
    gateway: &Arc<Gateway>,
    caller: &Caller,
    params: Option<&Value>,
    approve: bool,
) -> Reply {
    let method = if approve {
        "node.pair.approve"
    } else {
        "node.pair.reject"
    };
    let request_id = match request_id_param(method, params) {
        Ok(id) => id,
        Err(error) => return Reply::answer(Err(error)),
    };
    let lock = gateway.writes.clone().lock_owned().await;
    let pending = gateway
        .state
        .read()
        .expect("state lock")
        .nodes
        .pending
        .get(&request_id)
        .map(|pending| pending.request.clone());
    let Some(request) = pending else {
        return Reply::answer(Err(ErrorShape::invalid("unknown requestId")));
    };
    if own_only(caller).is_some_and(|own| own != request.node_id) {
        let action = if approve { "approval" } else { "rejection" };
        return Reply::answer(Err(ErrorShape::invalid(format!(
            "node pairing {action} denied"
        ))));
    }
    if approve {
        let required = scopes::node_pair_approval_scopes(&request.surface.commands);
        if let Some(missing) = required
            .iter()
            .find(|scope| !scopes::satisfies(&caller.scopes, scope))
        {
            let listed: Vec<&str> = if *missing == scopes::PAIRING {
                vec![scopes::PAIRING]
            } else {
                vec![scopes::PAIRING, missing]
            };
            return Reply::answer(Err(missing_scope(missing, &listed)));
        }
    }
    let node_id = request.node_id.clone();
    let mut reply = Reply::answer(Ok(json!({"requestId": request_id, "nodeId": node_id})));
    reply.events.push((
        "gateway".to_owned(),
        Event::NodePairResolved(NodePairResolved {
            request_id: request_id.clone(),
            node_id: node_id.clone(),
            decision: if approve { "approved" } else { "rejected" }.to_owned(),
            reviewer: caller.reviewer(),
        }),
    ));
    if approve {
        reply.after = Some(Box::new(move |gateway: &Gateway| {
            let state = gateway.state.read().expect("state lock");
            let node = state
                .nodes
                .paired
                .get(&node_id)
                .map_or(Value::Null, |node| paired_row(&node_id, node));
            json!({"requestId": request_id, "node": node})
        }));
    }
    reply.write_lock = Some(lock);
    reply
}

/// `node.pair.remove`: the node's approved surface goes; a device paired
/// only as a node goes with it (OpenClaw removes the device's node role),
/// and its node connections are closed.
pub async fn remove(gateway: &Arc<Gateway>, caller: &Caller, params: Option<&Value>) -> Reply {
    let node_id = match node_id_param("node.pair.remove", params, &["nodeId"]) {
        Ok(id) => id,
        Err(error) => return Reply::answer(Err(error)),
    };
    let lock = gateway.writes.clone().lock_owned().await;
    let (has_surface, node_device) = {
        let state = gateway.state.read().expect("state lock");
        (
            state.nodes.paired.contains_key(&node_id)
                || state.nodes.pending_for(&node_id).is_some(),
            state
                .devices
                .devices
                .get(&node_id)
                .is_some_and(|device| device.paired.role == "node"),
        )
    };
    if node_id.is_empty() || (!has_surface && !node_device) {
        return Reply::answer(Err(ErrorShape::invalid("unknown nodeId")));
    }
    if own_only(caller).is_some_and(|own| own != node_id) {
        return Reply::answer(Err(ErrorShape::invalid("node pairing removal denied")));
    }
    let mut reply = Reply::answer(Ok(json!({"nodeId": node_id})));
    if has_surface {
        reply.events.push((
            "gateway".to_owned(),
            Event::NodeUnpaired(NodeUnpaired {
                node_id: node_id.clone(),
            }),
        ));
    }
    if node_device {
        reply.events.push((
            "gateway".to_owned(),
            Event::DeviceRevoked(DeviceRevoked {
                device_id: node_id,
                reason: format!("node removed by {}", caller.reviewer()),
            }),
        ));
    }
    reply.write_lock = Some(lock);
    reply
}

pub async fn rename(gateway: &Arc<Gateway>, caller: &Caller, params: Option<&Value>) -> Reply {
    let parsed = (|| {
        let params = Params::closed("node.rename", params, &["nodeId", "displayName"])?;
        let mut values = Vec::new();
        for key in ["nodeId", "displayName"] {
            let value = params.str(key)?;
            if value.is_empty() {
                return Err(
                    params.invalid(format!("at /{key}: must NOT have fewer than 1 characters"))
                );
            }
            values.push(value.trim().to_owned());
        }
        Ok::<_, ErrorShape>((values[0].clone(), values[1].clone()))
    })();
    let (node_id, display_name) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return Reply::answer(Err(error)),
    };
    if own_only(caller).is_some_and(|own| own != node_id) {
        return Reply::answer(Err(ErrorShape::invalid("node rename denied")));
    }
    if display_name.is_empty() {
        return Reply::answer(Err(ErrorShape::invalid("displayName required")));
    }
    let lock = gateway.writes.clone().lock_owned().await;
    if !gateway
        .state
        .read()
        .expect("state lock")
        .nodes
        .paired
        .contains_key(&node_id)
    {
        return Reply::answer(Err(ErrorShape::invalid("unknown nodeId")));
    }
    let mut reply = Reply::answer(Ok(json!({"nodeId": node_id, "displayName": display_name})));
    reply.events.push((
        "gateway".to_owned(),
        Event::NodeRenamed(NodeRenamed {
            node_id,
            display_name,
        }),
    ));
    reply.write_lock = Some(lock);
    reply
}

/// `node.event` (node -> gateway). OpenClaw acts on some events (voice
/// transcripts, agent requests, exec notifications, push registration);
/// clawback acts on none yet and says so with OpenClaw's own answer for an
/// event it does not handle. The event is on record (its `rpc.received`).
pub fn event(params: Option<&Value>) -> Reply {
    let parsed = (|| {
        let params = Params::closed("node.event", params, &["event", "payload", "payloadJSON"])?;
        let event = params.str("event")?;
        if event.is_empty() {
            return Err(params.invalid("at /event: must NOT have fewer than 1 characters"));
        }
        params.opt_str("payloadJSON")?;
        Ok::<_, ErrorShape>(event.to_owned())
    })();
    Reply::answer(parsed.map(|event| {
        json!({"ok": true, "event": event, "handled": false, "reason": "unsupported_event"})
    }))
}
