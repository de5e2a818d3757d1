//! Devices and nodes: pairing, tokens, node connections and invokes. Part of [`super::Event`]'s vocabulary; the
//! compatibility rule in its module docs applies to every struct here.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePaired {
    pub node_id: String,
    pub display_name: String,
    pub platform: String,
    pub capabilities: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeUnpaired {
    pub node_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevicePaired {
    /// sha256 of the raw Ed25519 public key, lowercase hex (OpenClaw's rule).
    pub device_id: String,
    /// The raw public key, base64url.
    pub public_key: String,
    pub role: String,
    pub scopes: Vec<String>,
    /// Who approved the pairing: `auto-loopback` or a reviewer.
    pub approved_by: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRevoked {
    pub device_id: String,
    pub reason: String,
}

/// A device that is not paired asked to connect from a non-loopback
/// address; an operator approves or rejects the request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevicePairRequested {
    pub request_id: String,
    pub device_id: String,
    pub public_key: String,
    pub role: String,
    pub scopes: Vec<String>,
    pub remote_ip: String,
    pub client_id: String,
    pub client_mode: String,
    pub display_name: Option<String>,
}

/// The decision on a pairing request. An approval is followed, in the same
/// batch, by the `DevicePaired` it grants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevicePairResolved {
    pub request_id: String,
    pub device_id: String,
    pub approved: bool,
    /// Who decided: a connection or device id.
    pub reviewer: String,
}

/// A device token was issued (or rotated) for a device and role. Only the
/// token's digest is recorded: the token itself goes to the device alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceTokenIssued {
    pub device_id: String,
    pub role: String,
    pub scopes: Vec<String>,
    /// blake3 of the token, lowercase hex. Tokens are 256 random bits, so
    /// the digest cannot be inverted by guessing.
    pub token_digest: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceTokenRevoked {
    pub device_id: String,
    pub role: String,
    pub reason: String,
}

/// What a node declared when it connected (`role: "node"`), as OpenClaw's
/// node session holds it. The node id is its device id. What it may
/// actually be asked to run is this surface intersected with its approved
/// one (see `NodePairResolved`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeConnected {
    pub conn_id: String,
    pub node_id: String,
    pub surface: NodeSurface,
}

/// A node's self-description and command surface (OpenClaw's
/// `caps`/`commands`/`permissions` in `connect`, with the client fields
/// shown in `node.list`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSurface {
    pub client_id: String,
    pub client_mode: String,
    pub display_name: Option<String>,
    pub platform: String,
    pub version: String,
    pub device_family: Option<String>,
    pub model_identifier: Option<String>,
    /// The peer address; `None` on loopback (OpenClaw omits it there).
    pub remote_ip: Option<String>,
    pub caps: Vec<String>,
    pub commands: Vec<String>,
    /// The `permissions` object as canonical JSON, if the node sent one.
    pub permissions: Option<String>,
}

/// A paired device connected as a node with a command surface that is not
/// (entirely) approved: an operator approves it with `node.pair.approve`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePairRequested {
    pub request_id: String,
    pub node_id: String,
    pub surface: NodeSurface,
    /// The device was approved without a person (loopback); OpenClaw marks
    /// the surface request silent, but it still needs approval.
    pub silent: bool,
}

/// The decision on a node's surface request: `approved` (the pending
/// surface becomes the approved one), `rejected`, or `superseded` (the node
/// declared another surface, which replaces this request).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePairResolved {
    pub request_id: String,
    pub node_id: String,
    pub decision: String,
    /// Who decided: a connection or device id, or `gateway`.
    pub reviewer: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRenamed {
    pub node_id: String,
    pub display_name: String,
}

/// An operator asked a connected node to run a command (`node.invoke`); the
/// gateway pushes `node.invoke.request` to that node's socket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInvokeRequested {
    pub invoke_id: String,
    pub node_id: String,
    /// The node connection the request goes to.
    pub node_conn_id: String,
    pub command: String,
    /// The command's params as JSON, redacted (the node gets them exactly).
    pub params_redacted: Option<String>,
    pub timeout_ms: u64,
    pub idempotency_key: String,
    pub session_key: Option<String>,
}

/// How an invoke ended: the node's answer (`ok`, or its error), or the
/// gateway's (`TIMEOUT`, `DISCONNECTED`). The payload itself is in the
/// node's recorded `node.invoke.result` request; here are its size and
/// blake3, to tie the two together.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInvokeFinished {
    pub invoke_id: String,
    pub node_id: String,
    pub ok: bool,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub payload_bytes: u64,
    pub payload_blake3: Option<String>,
}
