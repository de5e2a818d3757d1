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

/// A new session whose history is another session's up to `at_seq`.
///
/// Why the history is named, not copied: a transcript is a list of seqs
/// into the log, and the fork's first entries are the source's own records
/// (the text stays only in the records that carried it, which per-session
/// encryption of content relies on). The sessions projection gives the
/// fork the source's transcript entries with seq <= `at_seq`, its
/// compaction if made by then, and its settings with `settings` on top.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionForked {
    /// The new session.
    pub session_key: String,
    pub session_id: String,
    pub agent_id: String,
    pub source_session_key: String,
    /// The source's id when forked: a later reset of the source starts
    /// another history, which this fork is not part of.
    pub source_session_id: String,
    /// The last seq of the source's history the fork keeps.
    pub at_seq: u64,
    /// Settings set on the fork on top of the source's (`sessions.patch`
    /// keys, values as JSON text), e.g. another `model`.
    pub settings: Vec<(String, String)>,
    /// The source's user message (a transcript entry after `at_seq`) that
    /// the fork's first turn answers again, by reference; `None` when the
    /// turn brings a new message (recorded by its run as usual).
    pub next_message_seq: Option<u64>,
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
