//! The event vocabulary: every fact clawback records, as one versioned enum.
//!
//! Why one enum: the log is a single, totally ordered history, and reducers
//! match on it exhaustively, so a new kind of fact is a compile error in every
//! projection that has to decide what it means.
//!
//! Compatibility rule (the record format depends on it): postcard encodes an
//! enum variant by its index and a struct by its field order. So variants and
//! fields are only ever **appended**; nothing is reordered, renamed in a way
//! that changes the type, or removed. A change that cannot follow this rule
//! bumps [`crate::record::FORMAT_VERSION`] and keeps a decoder for the old
//! format. `fixtures/log-v1.cblog` and the test that decodes it guard this.
//!
//! Free-form payloads (RPC params, LLM requests and responses, tool arguments)
//! are carried as JSON text: the shapes belong to OpenClaw and to providers,
//! change often, and must be recorded byte for byte, not re-modelled here.
//! Secrets are redacted by the code that builds the event, before it reaches
//! the log: nothing in this module may hold a credential.

use serde::{Deserialize, Serialize};

/// One recorded fact. See the module docs for the compatibility rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    // --- gateway lifecycle and connections ---
    GatewayStarted(GatewayStarted),
    GatewayStopped(GatewayStopped),
    ConnectionOpened(ConnectionOpened),
    ConnectionClosed(ConnectionClosed),
    RpcReceived(RpcReceived),
    RpcAnswered(RpcAnswered),
    PresenceChanged(PresenceChanged),
    ConfigChanged(ConfigChanged),
    // --- sessions and transcripts ---
    SessionCreated(SessionCreated),
    SessionPatched(SessionPatched),
    SessionReset(SessionReset),
    SessionDeleted(SessionDeleted),
    SessionCompacted(SessionCompacted),
    MessageAppended(MessageAppended),
    // --- agent runs and their side effects ---
    AgentRunStarted(AgentRunStarted),
    AgentRunFinished(AgentRunFinished),
    LlmCallRequested(LlmCallRequested),
    LlmCallCompleted(LlmCallCompleted),
    ToolCallRequested(ToolCallRequested),
    ToolCallStarted(ToolCallStarted),
    ToolCallFinished(ToolCallFinished),
    // --- approvals ---
    ApprovalRequested(ApprovalRequested),
    ApprovalResolved(ApprovalResolved),
    ApprovalExpired(ApprovalExpired),
    // --- outbound deliveries (the outbox) ---
    DeliveryPrepared(DeliveryPrepared),
    DeliverySent(DeliverySent),
    DeliveryFailed(DeliveryFailed),
    // --- cron ---
    CronJobAdded(CronJobAdded),
    CronJobRemoved(CronJobRemoved),
    CronJobFired(CronJobFired),
    CronJobFinished(CronJobFinished),
    // --- nodes and devices ---
    NodePaired(NodePaired),
    NodeUnpaired(NodeUnpaired),
    DevicePaired(DevicePaired),
    DeviceRevoked(DeviceRevoked),
    // Appended after the v1 set: postcard numbers variants by position, so
    // new kinds go at the end and old logs keep decoding.
    DevicePairRequested(DevicePairRequested),
    DevicePairResolved(DevicePairResolved),
    DeviceTokenIssued(DeviceTokenIssued),
    DeviceTokenRevoked(DeviceTokenRevoked),
    ModelCooldown(ModelCooldown),
    ExecPolicyChanged(ExecPolicyChanged),
    VoiceWakeChanged(VoiceWakeChanged),
    CronJobSaved(CronJobSaved),
    CronRunFinished(CronRunFinished),
    CronRunForced(CronRunForced),
    // Node connections, their approved command surface, and invokes.
    NodeConnected(NodeConnected),
    NodePairRequested(NodePairRequested),
    NodePairResolved(NodePairResolved),
    NodeRenamed(NodeRenamed),
    NodeInvokeRequested(NodeInvokeRequested),
    NodeInvokeFinished(NodeInvokeFinished),
}

impl Event {
    /// A stable, human-readable name for the event kind (`session.created`),
    /// used in timelines, exports and metrics. Never parsed back.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::GatewayStarted(_) => "gateway.started",
            Event::GatewayStopped(_) => "gateway.stopped",
            Event::ConnectionOpened(_) => "connection.opened",
            Event::ConnectionClosed(_) => "connection.closed",
            Event::RpcReceived(_) => "rpc.received",
            Event::RpcAnswered(_) => "rpc.answered",
            Event::PresenceChanged(_) => "presence.changed",
            Event::ConfigChanged(_) => "config.changed",
            Event::SessionCreated(_) => "session.created",
            Event::SessionPatched(_) => "session.patched",
            Event::SessionReset(_) => "session.reset",
            Event::SessionDeleted(_) => "session.deleted",
            Event::SessionCompacted(_) => "session.compacted",
            Event::MessageAppended(_) => "message.appended",
            Event::AgentRunStarted(_) => "agent.run.started",
            Event::AgentRunFinished(_) => "agent.run.finished",
            Event::LlmCallRequested(_) => "llm.call.requested",
            Event::LlmCallCompleted(_) => "llm.call.completed",
            Event::ToolCallRequested(_) => "tool.call.requested",
            Event::ToolCallStarted(_) => "tool.call.started",
            Event::ToolCallFinished(_) => "tool.call.finished",
            Event::ApprovalRequested(_) => "approval.requested",
            Event::ApprovalResolved(_) => "approval.resolved",
            Event::ApprovalExpired(_) => "approval.expired",
            Event::DeliveryPrepared(_) => "delivery.prepared",
            Event::DeliverySent(_) => "delivery.sent",
            Event::DeliveryFailed(_) => "delivery.failed",
            Event::CronJobAdded(_) => "cron.job.added",
            Event::CronJobRemoved(_) => "cron.job.removed",
            Event::CronJobFired(_) => "cron.job.fired",
            Event::CronJobFinished(_) => "cron.job.finished",
            Event::NodePaired(_) => "node.paired",
            Event::NodeUnpaired(_) => "node.unpaired",
            Event::DevicePaired(_) => "device.paired",
            Event::DeviceRevoked(_) => "device.revoked",
            Event::DevicePairRequested(_) => "device.pair.requested",
            Event::DevicePairResolved(_) => "device.pair.resolved",
            Event::DeviceTokenIssued(_) => "device.token.issued",
            Event::DeviceTokenRevoked(_) => "device.token.revoked",
            Event::ModelCooldown(_) => "model.cooldown",
            Event::ExecPolicyChanged(_) => "exec.policy.changed",
            Event::VoiceWakeChanged(_) => "voicewake.changed",
            Event::CronJobSaved(_) => "cron.job.saved",
            Event::CronRunFinished(_) => "cron.run.finished",
            Event::CronRunForced(_) => "cron.run.forced",
            Event::NodeConnected(_) => "node.connected",
            Event::NodePairRequested(_) => "node.pair.requested",
            Event::NodePairResolved(_) => "node.pair.resolved",
            Event::NodeRenamed(_) => "node.renamed",
            Event::NodeInvokeRequested(_) => "node.invoke.requested",
            Event::NodeInvokeFinished(_) => "node.invoke.finished",
        }
    }

    /// The session this event belongs to, if any. Replay of one session
    /// selects events by this key.
    pub fn session_key(&self) -> Option<&str> {
        match self {
            Event::SessionCreated(e) => Some(&e.session_key),
            Event::SessionPatched(e) => Some(&e.session_key),
            Event::SessionReset(e) => Some(&e.session_key),
            Event::SessionDeleted(e) => Some(&e.session_key),
            Event::SessionCompacted(e) => Some(&e.session_key),
            Event::MessageAppended(e) => Some(&e.session_key),
            Event::AgentRunStarted(e) => Some(&e.session_key),
            Event::AgentRunFinished(e) => Some(&e.session_key),
            Event::LlmCallRequested(e) => Some(&e.session_key),
            Event::LlmCallCompleted(e) => Some(&e.session_key),
            Event::ToolCallRequested(e) => Some(&e.session_key),
            Event::ToolCallStarted(e) => Some(&e.session_key),
            Event::ToolCallFinished(e) => Some(&e.session_key),
            Event::ApprovalRequested(e) => e.session_key.as_deref(),
            Event::DeliveryPrepared(e) => e.session_key.as_deref(),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------
// gateway lifecycle and connections

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

// ---------------------------------------------------------------------------
// sessions and transcripts

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCreated {
    pub session_key: String,
    pub session_id: String,
    pub agent_id: String,
    pub label: Option<String>,
    /// Where the session came from: `webchat`, `telegram`, `cron`, `fork`, ...
    pub origin: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionPatched {
    pub session_key: String,
    /// Settings set by this patch, keyed by OpenClaw's sessions.patch keys
    /// (`model`, `thinkingLevel`, `label`, ...), values as JSON text.
    pub set: Vec<(String, String)>,
    /// Settings cleared by this patch (sent as `null`).
    pub cleared: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionReset {
    pub session_key: String,
    /// The fresh session id: a reset keeps the key and starts a new transcript.
    pub new_session_id: String,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionDeleted {
    pub session_key: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCompacted {
    pub session_key: String,
    /// The summary that replaces the compacted messages in the model context.
    pub summary: String,
    /// How many of the oldest transcript messages the summary replaces.
    pub messages_compacted: u32,
    pub tokens_before: u64,
    pub tokens_after: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// Where an inbound message came from, with the platform's own id, so a
/// redelivered update is recognised from the log after a restart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageOrigin {
    pub channel: String,
    pub sender: String,
    pub platform_message_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageAppended {
    pub session_key: String,
    pub message_id: String,
    pub role: Role,
    pub content: String,
    pub run_id: Option<String>,
    pub tool_call_id: Option<String>,
    pub origin: Option<MessageOrigin>,
}

// ---------------------------------------------------------------------------
// agent runs, LLM calls, tools

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRunStarted {
    pub run_id: String,
    pub session_key: String,
    pub agent_id: String,
    pub model: Option<String>,
    /// What started the run: `chat.send`, `agent`, `channel`, `cron`, `hook`, ...
    pub trigger: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRunFinished {
    pub run_id: String,
    pub session_key: String,
    pub status: RunStatus,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunStatus {
    Completed,
    Aborted { reason: String },
    Failed { error_kind: String, message: String },
}

/// Token counts as providers report them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmCallRequested {
    pub call_id: String,
    pub run_id: String,
    pub session_key: String,
    pub provider: String,
    pub model: String,
    /// 1 for the first try; fallbacks and retries count up.
    pub attempt: u32,
    /// The exact request body sent, as JSON text, credentials removed.
    pub request: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmCallCompleted {
    pub call_id: String,
    pub run_id: String,
    pub session_key: String,
    pub provider: String,
    pub model: String,
    pub outcome: LlmOutcome,
    pub usage: Usage,
    /// Cost in millionths of a US dollar: integers keep the reducers exact.
    pub cost_micro_usd: u64,
    pub latency_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LlmOutcome {
    /// The full response: the assembled message, or every stream chunk, as
    /// recorded by the provider adapter.
    Ok {
        response: String,
        stop_reason: String,
    },
    /// A classified failure (`rate_limit`, `auth`, `context_overflow`, ...).
    Failed {
        class: String,
        message: String,
        http_status: Option<u16>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCallRequested {
    pub tool_call_id: String,
    pub run_id: String,
    pub session_key: String,
    pub tool: String,
    pub arguments: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCallStarted {
    pub tool_call_id: String,
    pub session_key: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCallFinished {
    pub tool_call_id: String,
    pub session_key: String,
    pub outcome: ToolOutcome,
    pub duration_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToolOutcome {
    Ok { output: String },
    Error { message: String },
    Denied { reason: String },
    TimedOut,
}

// ---------------------------------------------------------------------------
// approvals

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRequested {
    pub approval_id: String,
    /// `exec` for shell commands; other kinds (plugins, questions) later.
    pub kind: String,
    /// The command as the agent asked for it.
    pub command: String,
    /// blake3 of the canonical argv, lowercase hex: what an allow-always
    /// grant is bound to.
    pub argv_hash: String,
    pub session_key: Option<String>,
    pub agent_id: Option<String>,
    pub node_id: Option<String>,
    /// When the request expires (unix ms); expiry means deny.
    pub expires_at_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Decision {
    AllowOnce,
    AllowAlways,
    Deny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::AllowOnce => "allow-once",
            Decision::AllowAlways => "allow-always",
            Decision::Deny => "deny",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalResolved {
    pub approval_id: String,
    pub decision: Decision,
    /// Who decided: a device id, connection id or operator name.
    pub reviewer: String,
    /// For allow-always: when the grant stops applying (unix ms).
    pub grant_expires_at_ms: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalExpired {
    pub approval_id: String,
}

// ---------------------------------------------------------------------------
// deliveries

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryPrepared {
    pub delivery_id: String,
    /// Sent to the platform where it supports one, and used on restart to
    /// resolve a prepared-but-unconfirmed delivery instead of resending.
    pub idempotency_key: String,
    pub channel: String,
    pub target: String,
    pub session_key: Option<String>,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverySent {
    pub delivery_id: String,
    pub platform_message_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryFailed {
    pub delivery_id: String,
    pub error: String,
    pub retryable: bool,
}

// ---------------------------------------------------------------------------
// cron

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronJobAdded {
    pub job_id: String,
    pub name: String,
    /// The schedule as the user wrote it (cron expression, `every 5m`, ISO time).
    pub schedule: String,
    /// What the job does, as OpenClaw's job payload JSON.
    pub payload: String,
    pub enabled: bool,
}

/// A cron job created or edited: clawback's form of a job (`cron.job.added`
/// is the first format's, kept readable).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronJobSaved {
    pub job_id: String,
    /// When the job fires, as OpenClaw's `schedule` object: canonical JSON.
    pub schedule: String,
    /// Everything else clients see of the job's definition (name, target,
    /// payload, delivery, ...), canonical JSON; scheduler state is derived.
    pub definition: String,
    pub enabled: bool,
}

/// A run of a job asked for by hand (`cron.run`): it claims no schedule
/// slot, so the job's next scheduled firing still happens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronRunForced {
    pub job_id: String,
    pub run_id: String,
}

/// How a cron run ended: `cron.job.finished` with what `cron.runs` shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronRunFinished {
    pub job_id: String,
    pub run_id: String,
    /// `ok`, `error` or `skipped`.
    pub status: String,
    pub error: Option<String>,
    /// The start of the agent's reply, for run lists.
    pub summary: Option<String>,
    pub session_key: Option<String>,
    /// `delivered`, `not-delivered`, `unknown` or `not-requested`.
    pub delivery_status: String,
    pub delivery_error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronJobRemoved {
    pub job_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronJobFired {
    pub job_id: String,
    /// The schedule slot (unix ms) this firing claims. Appended before the
    /// job runs, so a restart can never fire the same slot twice.
    pub slot_ms: i64,
    pub run_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronJobFinished {
    pub job_id: String,
    pub run_id: String,
    pub ok: bool,
    pub error: Option<String>,
}

// ---------------------------------------------------------------------------
// nodes and devices

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

/// The voice wake words were replaced (already normalized).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoiceWakeChanged {
    pub triggers: Vec<String>,
}

/// The exec approval policy (OpenClaw's `exec-approvals` file: security
/// and ask modes per agent, allowlists) was replaced. It holds no secrets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecPolicyChanged {
    /// blake3 of `policy`, lowercase hex: the `baseHash` of the next change.
    pub hash: String,
    /// The whole policy as canonical JSON.
    pub policy: String,
}

/// A provider is skipped until `until_ms` after answering `class` (a rate
/// limit) during a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelCooldown {
    pub provider: String,
    pub model: String,
    pub run_id: String,
    pub class: String,
    pub until_ms: i64,
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
