//! Paired devices, revocations, pending pairing requests and device tokens.
//! (A node is a device connected with `role: "node"`; its command surface
//! is in `nodes`.)
//!
//! Why revocations are kept: a revoked device must stay refused after a
//! restart, and the only way to know that without a side table is the log.
//! Re-pairing a revoked device (after a fresh approval) lifts the revocation.
//!
//! Device tokens are kept as digests per (device, role): a connection that
//! presents a token is checked against the digest, so the token itself is
//! never stored anywhere but on the device.

use std::collections::BTreeMap;

use clawback_events::event::{
    DevicePairRequested, DevicePairResolved, DevicePaired, DeviceRevoked, DeviceTokenIssued,
    DeviceTokenRevoked,
};
use serde::{Deserialize, Serialize};

use crate::{Anomalies, At};

/// Pairing requests waiting for a decision; beyond this the oldest is
/// dropped (its device simply asks again), so unauthenticated-but-signed
/// callers cannot grow the state without bound.
pub const PENDING_PAIRINGS_MAX: usize = 256;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Devices {
    pub devices: BTreeMap<String, Device>,
    pub revoked: BTreeMap<String, Revocation>,
    /// Pairing requests by request id.
    pub pending: BTreeMap<String, PendingPairing>,
    /// Device tokens by (device id, role).
    pub tokens: BTreeMap<(String, String), DeviceToken>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingPairing {
    pub request: DevicePairRequested,
    pub seq: u64,
    pub ts_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceToken {
    pub digest: String,
    pub scopes: Vec<String>,
    pub issued_seq: u64,
    pub issued_ts_ms: i64,
}

/// A paired device: the pairing as recorded (key, role, scopes, approver),
/// and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub paired: DevicePaired,
    pub paired_seq: u64,
    pub paired_ts_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub reason: String,
    pub seq: u64,
    pub ts_ms: i64,
}

impl Devices {
    pub(crate) fn device_paired(&mut self, at: At, event: DevicePaired) {
        self.revoked.remove(&event.device_id);
        let device = Device {
            paired: event,
            paired_seq: at.seq,
            paired_ts_ms: at.ts_ms,
        };
        self.devices.insert(device.paired.device_id.clone(), device);
    }

    pub(crate) fn device_revoked(
        &mut self,
        at: At,
        event: DeviceRevoked,
        anomalies: &mut Anomalies,
    ) {
        if self.devices.remove(&event.device_id).is_none() {
            anomalies.record(
                at,
                "device.unknown",
                format!(
                    "revocation of device {} that is not paired",
                    event.device_id
                ),
            );
        }
        // A revoked device's tokens die with it.
        self.tokens
            .retain(|(device_id, _), _| device_id != &event.device_id);
        // Recorded even for an unknown device: a revocation must never be
        // lost because it arrived before the pairing it targets.
        let revocation = Revocation {
            reason: event.reason,
            seq: at.seq,
            ts_ms: at.ts_ms,
        };
        self.revoked.insert(event.device_id, revocation);
    }

    pub(crate) fn pair_requested(&mut self, at: At, event: DevicePairRequested) {
        if self.pending.len() >= PENDING_PAIRINGS_MAX {
            let oldest = self
                .pending
                .iter()
                .min_by_key(|(_, pending)| pending.seq)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                self.pending.remove(&oldest);
            }
        }
        let pending = PendingPairing {
            request: event,
            seq: at.seq,
            ts_ms: at.ts_ms,
        };
        self.pending
            .insert(pending.request.request_id.clone(), pending);
    }

    pub(crate) fn pair_resolved(
        &mut self,
        at: At,
        event: &DevicePairResolved,
        anomalies: &mut Anomalies,
    ) {
        if self.pending.remove(&event.request_id).is_none() {
            anomalies.record(
                at,
                "device.pairing.unknown",
                format!(
                    "decision on pairing request {} that is not pending",
                    event.request_id
                ),
            );
        }
    }

    pub(crate) fn token_issued(&mut self, at: At, event: DeviceTokenIssued) {
        let token = DeviceToken {
            digest: event.token_digest,
            scopes: event.scopes,
            issued_seq: at.seq,
            issued_ts_ms: at.ts_ms,
        };
        self.tokens.insert((event.device_id, event.role), token);
    }

    pub(crate) fn token_revoked(
        &mut self,
        at: At,
        event: &DeviceTokenRevoked,
        anomalies: &mut Anomalies,
    ) {
        let key = (event.device_id.clone(), event.role.clone());
        if self.tokens.remove(&key).is_none() {
            anomalies.record(
                at,
                "device.token.unknown",
                format!(
                    "revocation of a {} token for device {} that has none",
                    event.role, event.device_id
                ),
            );
        }
    }

    /// The pending request of a device, if it has one.
    pub fn pending_for(&self, device_id: &str) -> Option<&PendingPairing> {
        self.pending
            .values()
            .find(|pending| pending.request.device_id == device_id)
    }

    /// A device may connect only while paired and not revoked.
    pub fn is_trusted(&self, device_id: &str) -> bool {
        self.devices.contains_key(device_id) && !self.revoked.contains_key(device_id)
    }
}
