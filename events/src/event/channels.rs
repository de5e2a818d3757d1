//! Chat channels' inbound side: each platform message as it arrived, with the
//! decision taken on it, and the end of the reply to it. Part of
//! [`super::Event`]'s vocabulary; the compatibility rule in its module docs
//! applies to every struct here. The outbound side is the outbox
//! (`deliveries.rs`).

use serde::{Deserialize, Serialize};

/// One message from a chat platform, recorded before the platform is told
/// it was taken (before a webhook is answered, before a polling offset moves
/// past it). Keyed by `(channel, account_id, platform_message_id)`: a
/// redelivery of the same message after a restart is recognised from the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelMessageReceived {
    /// `telegram`, `matrix`, `webhook`, ...
    pub channel: String,
    /// The configured account the message arrived on (`default`, ...).
    pub account_id: String,
    /// The platform's own id, unique within the account (Telegram:
    /// `<chat id>:<message id>`; Matrix: the event id).
    pub platform_message_id: String,
    /// Where the platform's stream resumes after this message (Telegram's
    /// next `getUpdates` offset, Matrix's `next_batch`), if it has one.
    pub cursor: Option<String>,
    /// `direct`, `group` or `channel`.
    pub chat_kind: String,
    pub chat_id: String,
    /// A thread or forum topic within the chat.
    pub thread_id: Option<String>,
    pub sender_id: String,
    pub sender_name: Option<String>,
    pub text: String,
    pub admission: Admission,
}

/// What the gateway decided about an inbound message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Admission {
    /// A turn of `session_key` runs with this id; its reply goes back to the
    /// chat the message came from.
    Admitted {
        agent_id: String,
        session_key: String,
        run_id: String,
    },
    /// Not answered (a DM or group policy, an allowlist, a missing mention);
    /// the reason says which.
    Refused { reason: String },
}

/// The reply to an admitted message is settled: every part of it is in the
/// outbox (or there was nothing to send). Until then, a restart finishes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelReplyCompleted {
    pub run_id: String,
    /// `replied`, `empty` (the run produced no text), `failed` (the run
    /// failed: its error notice was sent), `interrupted` (a restart cut the
    /// run short: a notice was sent).
    pub outcome: String,
}

/// An unknown sender asked for DM access (`dmPolicy: "pairing"`): the code
/// they were sent, until an operator approves or dismisses it, or it
/// expires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelPairingRequested {
    pub channel: String,
    pub account_id: String,
    pub request_id: String,
    /// 8 characters without ambiguous ones; shown to the sender.
    pub code: String,
    pub sender_id: String,
    pub sender_name: Option<String>,
    /// The chat the code was sent to (for the approval notice).
    pub chat_id: String,
    pub expires_at_ms: i64,
}

/// An operator's decision on a pairing request: `approved` (the sender may
/// DM the bot from now on) or `dismissed`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelPairingResolved {
    pub channel: String,
    pub account_id: String,
    pub request_id: String,
    pub sender_id: String,
    pub decision: String,
    pub reviewer: String,
}

/// An operator logged a channel account out (`channels.logout`): the
/// account was stopped and what clawback held with the platform for it
/// forgotten (`actions`, in words). Tokens are never recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelLoggedOut {
    pub channel: String,
    pub account_id: String,
    /// Whether a credential or platform-side session was cleared.
    pub cleared: bool,
    pub actions: Vec<String>,
    /// Why the platform-side part failed, if it did (the account is
    /// stopped either way).
    pub error: Option<String>,
    pub reviewer: String,
}

/// The bot was invited into a room (Matrix): who invited it, and whether it
/// joined, decided by `autoJoin` and the DM or group policy before joining.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelInviteReceived {
    pub channel: String,
    pub account_id: String,
    pub room_id: String,
    pub inviter: Option<String>,
    /// Sent as a direct chat.
    pub direct: bool,
    pub joined: bool,
    /// Why not, when not joined.
    pub reason: Option<String>,
}

/// Where an account's stream resumes, recorded without a message: the
/// position a first sync started from, so a restart before the first
/// message resumes there rather than from "now".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelCursorRecorded {
    pub channel: String,
    pub account_id: String,
    pub cursor: String,
}
