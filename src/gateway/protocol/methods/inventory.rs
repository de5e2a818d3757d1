//! Paired and pending devices, from the devices projection.

use serde_json::{Value, json};

use crate::gateway::Gateway;

/// Paired, unrevoked devices, oldest pairing first.
pub fn paired_devices(gateway: &Gateway) -> Vec<Value> {
    let state = gateway.state.read().expect("state lock");
    let mut devices: Vec<&clawback_projections::devices::Device> = state
        .devices
        .devices
        .values()
        .filter(|device| state.devices.is_trusted(&device.paired.device_id))
        .collect();
    devices.sort_by_key(|device| device.paired_seq);
    devices
        .into_iter()
        .map(|device| {
            json!({
                "deviceId": device.paired.device_id,
                "publicKey": device.paired.public_key,
                "role": device.paired.role,
                "roles": [device.paired.role],
                "scopes": device.paired.scopes,
                "approvedBy": device.paired.approved_by,
                "createdAtMs": device.paired_ts_ms,
                "approvedAtMs": device.paired_ts_ms,
            })
        })
        .collect()
}

/// Pairing requests waiting for a decision, oldest first.
pub fn pending_devices(gateway: &Gateway) -> Vec<Value> {
    let state = gateway.state.read().expect("state lock");
    let mut pending: Vec<&clawback_projections::devices::PendingPairing> =
        state.devices.pending.values().collect();
    pending.sort_by_key(|pending| pending.seq);
    pending
        .into_iter()
        .map(|pending| super::super::pairing::requested_payload(&pending.request, pending.ts_ms))
        .collect()
}
