//! Device pairing and device tokens, as decided at `connect`.
//!
//! A device proves its key (see `device`); this module decides what that key
//! may do. A paired, unrevoked device connects. An unknown device on
//! loopback is paired on the spot (OpenClaw's `autoApproveLocal`). An
//! unknown remote device gets a pairing request, recorded once per device
//! (and announced as `device.pair.requested` by the fanout); the connect is refused with the
//! request id until an operator approves it (`device.pair.approve`).
//!
//! A paired device is issued a device token (in `hello-ok.auth.deviceToken`)
//! that lets it connect later without the shared secret. Only the token's
//! digest is recorded; a token is checked against the digest for the
//! device and role it was issued to.

use base64::Engine;
use clawback_events::event::{DevicePairRequested, Event};
use clawback_events::{Actor, NewEvent};
use serde_json::json;

use super::connect::ConnectRequest;
use super::device::VerifiedDevice;
use super::frames::{ErrorShape, codes};
use super::scopes;
use crate::gateway::Gateway;

/// Random bytes in a device token.
const TOKEN_BYTES: usize = 32;

/// Where a verified device stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pairing {
    NoDevice,
    Paired,
    /// Unknown device on loopback: paired by this connect.
    AutoApproveLoopback,
}

/// Decides whether a verified device may connect; for an unknown remote
/// device, records its pairing request (once) and refuses with its id.
pub async fn decide(
    gateway: &Gateway,
    device: &VerifiedDevice,
    connect: &ConnectRequest,
    remote: std::net::SocketAddr,
) -> Result<Pairing, ErrorShape> {
    let pending = {
        let state = gateway.state.read().expect("state lock");
        if state.devices.revoked.contains_key(&device.device_id) {
            return Err(pairing_required(&device.device_id, None)
                .with_message("pairing required: this device was revoked"));
        }
        if state.devices.is_trusted(&device.device_id) {
            return Ok(Pairing::Paired);
        }
        if remote.ip().is_loopback() {
            return Ok(Pairing::AutoApproveLoopback);
        }
        state
            .devices
            .pending_for(&device.device_id)
            .map(|pending| pending.request.request_id.clone())
    };
    if let Some(request_id) = pending {
        return Err(pairing_required(&device.device_id, Some(&request_id)));
    }
    let request = DevicePairRequested {
        request_id: uuid::Uuid::new_v4().to_string(),
        device_id: device.device_id.clone(),
        public_key: device.public_key.clone(),
        role: connect.role.clone(),
        scopes: connect.scopes.clone().unwrap_or_default(),
        remote_ip: remote.ip().to_string(),
        client_id: connect.client_id.clone(),
        client_mode: connect.client_mode.clone(),
        display_name: connect.display_name.clone(),
    };
    let request_id = request.request_id.clone();
    let recorded = gateway
        .log
        .append(vec![NewEvent::new(
            "gateway",
            Actor::System,
            Event::DevicePairRequested(request),
        )])
        .await;
    if let Err(error) = recorded {
        return Err(ErrorShape::new(
            codes::UNAVAILABLE,
            format!("the gateway cannot record this pairing request: {error}"),
        ));
    }
    tracing::info!(
        subsystem = "pairing",
        device = device.device_id.as_str(),
        request = request_id.as_str(),
        remote = remote.to_string(),
        "pairing requested by {} from {}",
        connect.client_id,
        remote.ip()
    );
    Err(pairing_required(&device.device_id, Some(&request_id)))
}

/// A device token presented instead of the shared secret: the scopes it
/// grants, or OpenClaw's mismatch error.
pub fn check_device_token(
    gateway: &Gateway,
    device: &VerifiedDevice,
    role: &str,
    token: &str,
    requested: Option<&[String]>,
) -> Result<Vec<String>, ErrorShape> {
    let state = gateway.state.read().expect("state lock");
    let key = (device.device_id.clone(), role.to_owned());
    let issued = state
        .devices
        .tokens
        .get(&key)
        .filter(|_| state.devices.is_trusted(&device.device_id));
    let Some(issued) = issued.filter(|issued| constant_time_eq(&issued.digest, &digest(token)))
    else {
        return Err(ErrorShape::invalid(
            "unauthorized: device token mismatch (rotate or re-pair the device)",
        )
        .with_details(json!({
            "code": "AUTH_DEVICE_TOKEN_MISMATCH",
            "authReason": "device_token_mismatch",
            "recommendedNextStep": "update_auth_credentials",
        })));
    };
    match requested {
        None => Ok(issued.scopes.clone()),
        Some(requested) => {
            if let Some(missing) = requested
                .iter()
                .find(|scope| !scopes::satisfies(&issued.scopes, scope))
            {
                return Err(ErrorShape::invalid(format!(
                    "unauthorized: the device token does not grant {missing}"
                ))
                .with_details(json!({
                    "code": "AUTH_SCOPE_MISMATCH",
                    "recommendedNextStep": "review_auth_configuration",
                })));
            }
            Ok(requested.to_vec())
        }
    }
}

/// A fresh token and its digest.
pub fn new_token() -> Result<(String, String), ErrorShape> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|error| {
        ErrorShape::new(
            codes::UNAVAILABLE,
            format!("no randomness for a device token: {error}"),
        )
    })?;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let digest = digest(&token);
    Ok((token, digest))
}

pub fn digest(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn pairing_required(device_id: &str, request_id: Option<&str>) -> ErrorShape {
    let mut details = json!({"code": "PAIRING_REQUIRED", "deviceId": device_id});
    if let Some(request_id) = request_id {
        details["requestId"] = json!(request_id);
    }
    ErrorShape::new(codes::NOT_PAIRED, "pairing required").with_details(details)
}

/// The `device.pair.requested` payload and `device.pair.list` pending row.
pub fn requested_payload(request: &DevicePairRequested, ts_ms: i64) -> serde_json::Value {
    json!({
        "requestId": request.request_id,
        "deviceId": request.device_id,
        "publicKey": request.public_key,
        "role": request.role,
        "roles": [request.role],
        "scopes": request.scopes,
        "remoteIp": request.remote_ip,
        "clientId": request.client_id,
        "clientMode": request.client_mode,
        "displayName": request.display_name,
        "ts": ts_ms,
    })
}
