//! Agent runs, model calls, tool calls, and cooldowns after rate limits. Part of [`super::Event`]'s vocabulary; the
//! compatibility rule in its module docs applies to every struct here.

use serde::{Deserialize, Serialize};

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
