//! Paired nodes and devices, and revocations.
//!
//! Why revocations are kept: a revoked device must stay refused after a
//! restart, and the only way to know that without a side table is the log.
//! Re-pairing a revoked device (after a fresh approval) lifts the revocation.

use std::collections::BTreeMap;

use clawback_events::event::{DevicePaired, DeviceRevoked, NodePaired, NodeUnpaired};
use serde::{Deserialize, Serialize};

use crate::{Anomalies, At};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Devices {
    pub nodes: BTreeMap<String, Node>,
    pub devices: BTreeMap<String, Device>,
    pub revoked: BTreeMap<String, Revocation>,
}

/// A paired node: the pairing as recorded, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub paired: NodePaired,
    pub paired_seq: u64,
    pub paired_ts_ms: i64,
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
    pub(crate) fn node_paired(&mut self, at: At, event: NodePaired) {
        let node = Node {
            paired: event,
            paired_seq: at.seq,
            paired_ts_ms: at.ts_ms,
        };
        self.nodes.insert(node.paired.node_id.clone(), node);
    }

    pub(crate) fn node_unpaired(
        &mut self,
        at: At,
        event: &NodeUnpaired,
        anomalies: &mut Anomalies,
    ) {
        if self.nodes.remove(&event.node_id).is_none() {
            anomalies.record(
                at,
                "node.unknown",
                format!("unpair of node {} that is not paired", event.node_id),
            );
        }
    }

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
        // Recorded even for an unknown device: a revocation must never be
        // lost because it arrived before the pairing it targets.
        let revocation = Revocation {
            reason: event.reason,
            seq: at.seq,
            ts_ms: at.ts_ms,
        };
        self.revoked.insert(event.device_id, revocation);
    }

    /// A device may connect only while paired and not revoked.
    pub fn is_trusted(&self, device_id: &str) -> bool {
        self.devices.contains_key(device_id) && !self.revoked.contains_key(device_id)
    }
}
