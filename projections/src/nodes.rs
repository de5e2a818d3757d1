//! Nodes: devices connected with `role: "node"` (phones, Macs, headless
//! node hosts) that the gateway may ask to run commands.
//!
//! Why a projection of its own: OpenClaw 2026.9.6 separates two approvals.
//! Device pairing (in `devices`) admits the connection; the node's declared
//! command surface (caps, commands, permissions) needs a second approval,
//! `node.pair.approve`. A connected node may be asked to run only what it
//! declares *and* what was approved, so both the approved surface and the
//! live one are state, and both must come back the same on replay.
//!
//! Connected sessions live only as long as a process: a `gateway.started`
//! ends them, as it ends connections.

use std::collections::BTreeMap;

use clawback_events::event::{
    NodeConnected, NodePairRequested, NodePairResolved, NodePaired, NodeRenamed, NodeSurface,
    NodeUnpaired,
};
use serde::{Deserialize, Serialize};

use crate::{Anomalies, At};

/// Surface requests waiting for a decision; beyond this the oldest is
/// dropped (its node asks again on its next connect).
pub const PENDING_NODE_PAIRINGS_MAX: usize = 256;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nodes {
    /// Approved surfaces by node id.
    pub paired: BTreeMap<String, PairedNode>,
    /// Surface requests by request id; at most one per node.
    pub pending: BTreeMap<String, PendingNode>,
    /// Connected node sessions by node id (the newest connection wins).
    pub connected: BTreeMap<String, ConnectedNode>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairedNode {
    pub surface: NodeSurface,
    pub created_ts_ms: i64,
    pub approved_ts_ms: i64,
    pub approved_seq: u64,
    pub last_connected_ts_ms: Option<i64>,
    pub last_disconnected_ts_ms: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingNode {
    pub request: NodePairRequested,
    pub seq: u64,
    pub ts_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectedNode {
    pub conn_id: String,
    /// What the node declared at connect.
    pub declared: NodeSurface,
    pub connected_seq: u64,
    pub connected_ts_ms: i64,
}

impl Nodes {
    /// The v1 `node.paired` event: a surface of capabilities without
    /// commands.
    pub(crate) fn legacy_paired(&mut self, at: At, event: NodePaired) {
        let surface = NodeSurface {
            client_id: String::new(),
            client_mode: String::new(),
            display_name: Some(event.display_name),
            platform: event.platform,
            version: String::new(),
            device_family: None,
            model_identifier: None,
            remote_ip: None,
            caps: event.capabilities,
            commands: Vec::new(),
            permissions: None,
        };
        self.approve(at, event.node_id, surface);
    }

    pub(crate) fn unpaired(&mut self, at: At, event: &NodeUnpaired, anomalies: &mut Anomalies) {
        if !self.forget(&event.node_id) {
            anomalies.record(
                at,
                "node.unknown",
                format!("unpair of node {} that is not paired", event.node_id),
            );
        }
    }

    /// A removed device takes its node surface (and any request) with it.
    pub(crate) fn device_revoked(&mut self, device_id: &str) {
        self.forget(device_id);
    }

    /// Drops a node's approved surface and pending request; whether there
    /// was anything to drop.
    fn forget(&mut self, node_id: &str) -> bool {
        let before = self.pending.len();
        self.pending
            .retain(|_, pending| pending.request.node_id != node_id);
        let had_pending = self.pending.len() != before;
        self.paired.remove(node_id).is_some() || had_pending
    }

    pub(crate) fn connected(&mut self, at: At, event: NodeConnected) {
        if let Some(paired) = self.paired.get_mut(&event.node_id) {
            paired.last_connected_ts_ms = Some(at.ts_ms);
        }
        let session = ConnectedNode {
            conn_id: event.conn_id,
            declared: event.surface,
            connected_seq: at.seq,
            connected_ts_ms: at.ts_ms,
        };
        self.connected.insert(event.node_id, session);
    }

    pub(crate) fn connection_closed(&mut self, at: At, conn_id: &str) {
        let gone: Vec<String> = self
            .connected
            .iter()
            .filter(|(_, session)| session.conn_id == conn_id)
            .map(|(node_id, _)| node_id.clone())
            .collect();
        for node_id in gone {
            self.connected.remove(&node_id);
            if let Some(paired) = self.paired.get_mut(&node_id) {
                paired.last_disconnected_ts_ms = Some(at.ts_ms);
            }
        }
    }

    pub(crate) fn gateway_restarted(&mut self, at: At) {
        for node_id in std::mem::take(&mut self.connected).into_keys() {
            if let Some(paired) = self.paired.get_mut(&node_id) {
                paired.last_disconnected_ts_ms = Some(at.ts_ms);
            }
        }
    }

    pub(crate) fn pair_requested(&mut self, at: At, event: NodePairRequested) {
        // One request per node: a new surface replaces the old request.
        self.pending
            .retain(|_, pending| pending.request.node_id != event.node_id);
        if self.pending.len() >= PENDING_NODE_PAIRINGS_MAX {
            let oldest = self
                .pending
                .iter()
                .min_by_key(|(_, pending)| pending.seq)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                self.pending.remove(&oldest);
            }
        }
        let pending = PendingNode {
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
        event: &NodePairResolved,
        anomalies: &mut Anomalies,
    ) {
        let Some(pending) = self
            .pending
            .remove(&event.request_id)
            .filter(|pending| pending.request.node_id == event.node_id)
        else {
            anomalies.record(
                at,
                "node.pairing.unknown",
                format!(
                    "decision on node surface request {} (node {}) that is not pending",
                    event.request_id, event.node_id
                ),
            );
            return;
        };
        if event.decision == "approved" {
            self.approve(at, pending.request.node_id, pending.request.surface);
        }
    }

    fn approve(&mut self, at: At, node_id: String, mut surface: NodeSurface) {
        let previous = self.paired.remove(&node_id);
        // A rename survives re-approval (OpenClaw keeps the paired name).
        if let Some(name) = previous
            .as_ref()
            .and_then(|previous| previous.surface.display_name.clone())
        {
            surface.display_name = Some(name);
        }
        let node = PairedNode {
            surface,
            created_ts_ms: previous
                .as_ref()
                .map_or(at.ts_ms, |previous| previous.created_ts_ms),
            approved_ts_ms: at.ts_ms,
            approved_seq: at.seq,
            last_connected_ts_ms: previous
                .as_ref()
                .and_then(|previous| previous.last_connected_ts_ms),
            last_disconnected_ts_ms: previous.and_then(|previous| previous.last_disconnected_ts_ms),
        };
        self.paired.insert(node_id, node);
    }

    pub(crate) fn renamed(&mut self, at: At, event: NodeRenamed, anomalies: &mut Anomalies) {
        match self.paired.get_mut(&event.node_id) {
            Some(paired) => paired.surface.display_name = Some(event.display_name),
            None => anomalies.record(
                at,
                "node.unknown",
                format!("rename of node {} that is not paired", event.node_id),
            ),
        }
    }

    /// The pending surface request of a node, if it has one.
    pub fn pending_for(&self, node_id: &str) -> Option<&PendingNode> {
        self.pending
            .values()
            .find(|pending| pending.request.node_id == node_id)
    }

    /// What a connected node may be asked to run: what it declared on this
    /// connection and what was approved. Empty when not connected.
    pub fn effective_commands(&self, node_id: &str) -> Vec<String> {
        self.effective(node_id, |surface| &surface.commands)
    }

    /// The capabilities of a connected node, under the same rule.
    pub fn effective_caps(&self, node_id: &str) -> Vec<String> {
        self.effective(node_id, |surface| &surface.caps)
    }

    fn effective(&self, node_id: &str, list: impl Fn(&NodeSurface) -> &Vec<String>) -> Vec<String> {
        let (Some(session), Some(paired)) = (self.connected.get(node_id), self.paired.get(node_id))
        else {
            return Vec::new();
        };
        let approved = list(&paired.surface);
        list(&session.declared)
            .iter()
            .filter(|item| approved.contains(item))
            .cloned()
            .collect()
    }
}
