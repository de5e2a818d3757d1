//! `device.pair.approve`, `device.pair.reject`, `device.pair.remove`,
//! `device.token.rotate` and `device.token.revoke`.
//!
//! Every decision names its reviewer (the deciding connection and its
//! device, if any) in the log, so "who let this device in" has an answer.

use std::sync::Arc;

use clawback_events::event::{
    DevicePairResolved, DevicePaired, DeviceRevoked, DeviceTokenIssued, DeviceTokenRevoked, Event,
};
use serde_json::{Value, json};

use super::super::frames::ErrorShape;
use super::super::pairing;
use super::{Caller, Params, Reply, now_ms};
use crate::gateway::Gateway;

pub async fn approve(gateway: &Arc<Gateway>, caller: &Caller, params: Option<&Value>) -> Reply {
    decide(gateway, caller, params, true, "device.pair.approve").await
}

pub async fn reject(gateway: &Arc<Gateway>, caller: &Caller, params: Option<&Value>) -> Reply {
    decide(gateway, caller, params, false, "device.pair.reject").await
}

async fn decide(
    gateway: &Arc<Gateway>,
    caller: &Caller,
    params: Option<&Value>,
    approved: bool,
    method: &str,
) -> Reply {
    let request_id = match Params::closed(method, params, &["requestId"])
        .and_then(|params| params.str("requestId").map(str::trim))
    {
        Ok(id) => id.to_owned(),
        Err(error) => return Reply::answer(Err(error)),
    };
    let lock = gateway.writes.clone().lock_owned().await;
    let Some(pending) = gateway
        .state
        .read()
        .expect("state lock")
        .devices
        .pending
        .get(&request_id)
        .cloned()
    else {
        return Reply::answer(Err(ErrorShape::invalid("unknown requestId")));
    };
    let request = pending.request;
    let reviewer = caller.reviewer();
    let mut reply = Reply::answer(Ok(Value::Null));
    reply.events.push((
        "gateway".to_owned(),
        Event::DevicePairResolved(DevicePairResolved {
            request_id: request_id.clone(),
            device_id: request.device_id.clone(),
            approved,
            reviewer: reviewer.clone(),
        }),
    ));
    let now = now_ms();
    if approved {
        reply.events.push((
            "gateway".to_owned(),
            Event::DevicePaired(DevicePaired {
                device_id: request.device_id.clone(),
                public_key: request.public_key.clone(),
                role: request.role.clone(),
                scopes: request.scopes.clone(),
                approved_by: reviewer,
            }),
        ));
        reply.result = Ok(json!({
            "requestId": request_id,
            "device": {
                "deviceId": request.device_id,
                "publicKey": request.public_key,
                "role": request.role,
                "roles": [request.role],
                "scopes": request.scopes,
                "approvedAtMs": now,
            },
        }));
    } else {
        reply.result = Ok(json!({"requestId": request_id, "deviceId": request.device_id}));
    }
    reply.write_lock = Some(lock);
    reply
}

/// `device.pair.remove`: unpairs a device; its tokens die with it and it
/// must pair again to connect.
pub async fn remove(gateway: &Arc<Gateway>, caller: &Caller, params: Option<&Value>) -> Reply {
    let device_id = match Params::closed("device.pair.remove", params, &["deviceId"])
        .and_then(|params| params.str("deviceId").map(str::to_owned))
    {
        Ok(id) => id,
        Err(error) => return Reply::answer(Err(error)),
    };
    let lock = gateway.writes.clone().lock_owned().await;
    if !gateway
        .state
        .read()
        .expect("state lock")
        .devices
        .devices
        .contains_key(&device_id)
    {
        return Reply::answer(Err(ErrorShape::invalid("unknown deviceId")));
    }
    let mut reply = Reply::answer(Ok(json!({"deviceId": device_id, "removedAtMs": now_ms()})));
    reply.events.push((
        "gateway".to_owned(),
        Event::DeviceRevoked(DeviceRevoked {
            device_id: device_id.clone(),
            reason: format!("removed by {}", caller.reviewer()),
        }),
    ));
    reply.write_lock = Some(lock);
    reply
}

/// `device.token.rotate`: a new token for (device, role); the old one stops
/// working once this is recorded. The new token is in the answer only.
pub async fn rotate(gateway: &Arc<Gateway>, params: Option<&Value>) -> Reply {
    let params = match Params::closed(
        "device.token.rotate",
        params,
        &["deviceId", "role", "scopes"],
    ) {
        Ok(params) => params,
        Err(error) => return Reply::answer(Err(error)),
    };
    let (device_id, role) = match (params.str("deviceId"), params.str("role")) {
        (Ok(device), Ok(role)) => (device.to_owned(), role.to_owned()),
        (Err(error), _) | (_, Err(error)) => return Reply::answer(Err(error)),
    };
    let requested: Option<Vec<String>> = match params.opt_strings("scopes") {
        Ok(scopes) => scopes.map(|scopes| scopes.into_iter().map(str::to_owned).collect()),
        Err(error) => return Reply::answer(Err(error)),
    };
    let lock = gateway.writes.clone().lock_owned().await;
    let scopes = {
        let state = gateway.state.read().expect("state lock");
        let Some(device) = state
            .devices
            .devices
            .get(&device_id)
            .filter(|_| state.devices.is_trusted(&device_id))
        else {
            return Reply::answer(Err(ErrorShape::invalid("unknown deviceId")));
        };
        // A rotation may narrow what the device was approved for, never widen it.
        let approved = &device.paired.scopes;
        match requested {
            None => state
                .devices
                .tokens
                .get(&(device_id.clone(), role.clone()))
                .map_or_else(|| approved.clone(), |token| token.scopes.clone()),
            Some(requested) => {
                if let Some(scope) = requested
                    .iter()
                    .find(|scope| !super::super::scopes::satisfies(approved, scope))
                {
                    return Reply::answer(Err(ErrorShape::invalid(format!(
                        "device {device_id} was not approved for {scope}"
                    ))));
                }
                requested
            }
        }
    };
    let (token, digest) = match pairing::new_token() {
        Ok(pair) => pair,
        Err(error) => return Reply::answer(Err(error)),
    };
    let mut reply = Reply::answer(Ok(json!({
        "deviceId": device_id,
        "role": role,
        "token": token,
        "scopes": scopes,
        "rotatedAtMs": now_ms(),
        "tokenDelivery": "in-band",
    })));
    reply.events.push((
        "gateway".to_owned(),
        Event::DeviceTokenIssued(DeviceTokenIssued {
            device_id,
            role,
            scopes,
            token_digest: digest,
        }),
    ));
    reply.write_lock = Some(lock);
    reply
}

/// `device.token.revoke`: the device's token for a role stops working; the
/// pairing stays, so the device may connect again with the shared secret.
pub async fn revoke(gateway: &Arc<Gateway>, caller: &Caller, params: Option<&Value>) -> Reply {
    let params = match Params::closed("device.token.revoke", params, &["deviceId", "role"]) {
        Ok(params) => params,
        Err(error) => return Reply::answer(Err(error)),
    };
    let (device_id, role) = match (params.str("deviceId"), params.str("role")) {
        (Ok(device), Ok(role)) => (device.to_owned(), role.to_owned()),
        (Err(error), _) | (_, Err(error)) => return Reply::answer(Err(error)),
    };
    let lock = gateway.writes.clone().lock_owned().await;
    let has_token = gateway
        .state
        .read()
        .expect("state lock")
        .devices
        .tokens
        .contains_key(&(device_id.clone(), role.clone()));
    if !has_token {
        return Reply::answer(Err(ErrorShape::invalid(format!(
            "device {device_id} has no {role} token"
        ))));
    }
    let mut reply = Reply::answer(Ok(json!({
        "deviceId": device_id, "role": role, "revokedAtMs": now_ms(),
    })));
    reply.events.push((
        "gateway".to_owned(),
        Event::DeviceTokenRevoked(DeviceTokenRevoked {
            device_id,
            role,
            reason: format!("revoked by {}", caller.reviewer()),
        }),
    ));
    reply.write_lock = Some(lock);
    reply
}
