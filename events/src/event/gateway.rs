//! The gateway process, connections, requests, presence, config, settings. Part of [`super::Event`]'s vocabulary; the
//! compatibility rule in its module docs applies to every struct here.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayStarted {
    pub version: String,
    /// Where the gateway listens, e.g. `127.0.0.1:18789`.
    pub bind: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayStopped {
    pub reason: String,
}

/// The client as it described itself in `connect` (OpenClaw's `client` object).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    pub id: String,
    pub version: String,
    pub platform: String,
    pub mode: String,
    pub display_name: Option<String>,
    pub instance_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionOpened {
    pub conn_id: String,
    pub remote_addr: String,
    pub client: ClientInfo,
    pub role: String,
    pub scopes: Vec<String>,
    pub device_id: Option<String>,
    /// How the connection authenticated: `none`, `token`, `password`, `device`.
    pub auth_method: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionClosed {
    pub conn_id: String,
    pub code: u16,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpcReceived {
    pub conn_id: String,
    pub request_id: String,
    pub method: String,
    /// The request params as JSON text, secrets already replaced by the
    /// redaction sentinel.
    pub params_redacted: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpcAnswered {
    pub conn_id: String,
    pub request_id: String,
    pub method: String,
    pub outcome: RpcOutcome,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RpcOutcome {
    Ok,
    Error { code: String, message: String },
}

/// One entry of OpenClaw's presence list, keyed by `key` (the client's
/// instance id, or the connection id when the client gave none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceChanged {
    pub key: String,
    pub change: PresenceChange,
}

// Presence changes are rare; boxing the entry would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PresenceChange {
    Upsert(PresenceEntry),
    Removed { reason: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceEntry {
    pub host: Option<String>,
    pub ip: Option<String>,
    pub version: Option<String>,
    pub platform: Option<String>,
    pub mode: Option<String>,
    pub reason: Option<String>,
    pub text: Option<String>,
    pub device_id: Option<String>,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigChanged {
    /// blake3 of the canonical config text, lowercase hex: the `baseHash`
    /// clients send back for optimistic concurrency.
    pub config_hash: String,
    /// The whole new config as JSON, secrets redacted.
    pub config_redacted: String,
    /// What changed it: `config.set`, `config.patch`, `file`, `startup`, ...
    pub source: String,
}

/// The voice wake words were replaced (already normalized).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoiceWakeChanged {
    pub triggers: Vec<String>,
}
