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

mod approvals;
mod auth;
mod channels;
mod checkpoints;
mod cron;
mod deliveries;
mod devices;
mod gateway;
mod http;
mod runs;
mod sessions;

pub use approvals::*;
pub use auth::*;
pub use channels::*;
pub use checkpoints::*;
pub use cron::*;
pub use deliveries::*;
pub use devices::*;
pub use gateway::*;
pub use http::*;
pub use runs::*;
pub use sessions::*;

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
    HttpRequestAccepted(HttpRequestAccepted),
    HttpRequestAnswered(HttpRequestAnswered),
    // Exec approvals answered by an allow-always grant, without asking.
    ApprovalGrantApplied(ApprovalGrantApplied),
    // An OAuth profile's token refreshed (or refused) before a model call.
    AuthProfileRefreshed(AuthProfileRefreshed),
    // Chat channels: inbound messages and the settling of their replies.
    ChannelMessageReceived(ChannelMessageReceived),
    ChannelReplyCompleted(ChannelReplyCompleted),
    // A signed tree head of the log's Merkle tree.
    MerkleCheckpoint(MerkleCheckpoint),
    // DM pairing for chat channels (`dmPolicy: "pairing"`).
    ChannelPairingRequested(ChannelPairingRequested),
    ChannelPairingResolved(ChannelPairingResolved),
    // A session forked from another at a seq (`clawback.sessions.fork`).
    SessionForked(SessionForked),
    // Session content encrypted under the session's data key, and the
    // destruction of such keys (crypto-shredding; see `crate::sealed`).
    Sealed(crate::sealed::Sealed),
    SessionPurged(SessionPurged),
    // A channel account logged out by an operator.
    ChannelLoggedOut(ChannelLoggedOut),
    // A room invite (Matrix) and whether the bot joined.
    ChannelInviteReceived(ChannelInviteReceived),
    // A stream position recorded without a message (a first sync).
    ChannelCursorRecorded(ChannelCursorRecorded),
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
            Event::HttpRequestAccepted(_) => "http.request.accepted",
            Event::HttpRequestAnswered(_) => "http.request.answered",
            Event::ApprovalGrantApplied(_) => "approval.grant.applied",
            Event::AuthProfileRefreshed(_) => "auth.profile.refreshed",
            Event::ChannelMessageReceived(_) => "channel.message.received",
            Event::ChannelReplyCompleted(_) => "channel.reply.completed",
            Event::ChannelPairingRequested(_) => "channel.pairing.requested",
            Event::ChannelPairingResolved(_) => "channel.pairing.resolved",
            Event::ChannelLoggedOut(_) => "channel.logged.out",
            Event::ChannelInviteReceived(_) => "channel.invite.received",
            Event::ChannelCursorRecorded(_) => "channel.cursor.recorded",
            Event::MerkleCheckpoint(_) => "merkle.checkpoint",
            Event::SessionForked(_) => "session.forked",
            Event::Sealed(sealed) => sealed.skeleton.kind(),
            Event::SessionPurged(_) => "session.purged",
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
            Event::SessionForked(e) => Some(&e.session_key),
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
            Event::HttpRequestAccepted(e) => Some(&e.session_key),
            Event::ChannelMessageReceived(e) => match &e.admission {
                Admission::Admitted { session_key, .. } => Some(session_key),
                Admission::Refused { .. } => None,
            },
            Event::Sealed(sealed) => sealed.skeleton.session_key(),
            Event::SessionPurged(e) => Some(&e.session_key),
            _ => None,
        }
    }
}
