//! Sessions and their transcripts. Part of [`super::Event`]'s vocabulary; the
//! compatibility rule in its module docs applies to every struct here.

use serde::{Deserialize, Serialize};

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

/// A session's content keys destroyed (`sessions.delete` with `purge`):
/// every record sealed under them stays in the log, verifiable and
/// unreadable. Recorded before the keys are destroyed, so a crash in
/// between is finished at the next start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionPurged {
    pub session_key: String,
    /// Every key the session's content was sealed under (hex ids).
    pub key_ids: Vec<String>,
}
