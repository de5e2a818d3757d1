//! Sessions: settings, transcripts, the model context after compaction,
//! agent runs and their tool calls, and the inbound-message dedupe set.
//!
//! Why a transcript is a list of seqs, not of messages: the log already holds
//! every message, byte for byte. Copying the text into the state would hold
//! every conversation in memory twice over (state and page cache), make
//! snapshots grow with all text ever said, and (measured) make a rebuild
//! twice as slow. The state keeps the order, role and time of each message;
//! readers fetch the text by seq (`LogStore::get`, one point read), which is
//! what `clawback replay` and `chat.history` do.
//!
//! Why the dedupe set lives here: a channel redelivers an update after a
//! timeout or a restart, and the only memory that survives a restart is the
//! log. An inbound message whose `(channel, platform message id)` was already
//! appended is not added to the transcript a second time, so it can never
//! produce a second reply, live or on replay.

mod fork;

use std::collections::{BTreeMap, VecDeque};

use clawback_events::event::{
    AgentRunFinished, AgentRunStarted, LlmCallCompleted, LlmCallRequested, LlmOutcome,
    MessageAppended, Role, RunStatus, SessionCompacted, SessionCreated, SessionDeleted,
    SessionPatched, SessionReset, ToolCallFinished, ToolCallRequested, ToolCallStarted,
    ToolOutcome,
};
use serde::{Deserialize, Serialize};

use crate::usage::UsageTotals;
use crate::{Anomalies, At, push_bounded};

/// Finished runs kept per session for display; active runs are always kept.
pub const RECENT_RUNS_MAX: usize = 32;
/// The trigger of a run that is one tool call made directly over HTTP
/// (`POST /tools/invoke`), not by the model. Its calls are recorded like a
/// model's, but they are not transcript entries: the model never asked for
/// them, and a turn's context must not hold calls it did not make.
pub const DIRECT_TOOL_TRIGGER: &str = "tools.invoke";
/// Inbound platform message ids remembered for dedupe, across all channels.
/// Redeliveries arrive within minutes; this covers days of a busy gateway.
pub const INBOUND_SEEN_MAX: usize = 50_000;

/// The agent a session key names (`agent:<id>:...`), if it names one.
pub fn agent_in_key(session_key: &str) -> Option<&str> {
    session_key
        .strip_prefix("agent:")
        .and_then(|rest| rest.split(':').next())
        .filter(|agent| !agent.is_empty())
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sessions {
    pub by_key: BTreeMap<String, Session>,
    pub inbound: InboundSeen,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub key: String,
    /// Changes on reset: one key, a new transcript.
    pub session_id: String,
    pub agent_id: String,
    pub label: Option<String>,
    pub origin: Option<String>,
    pub created_seq: u64,
    pub created_ts_ms: i64,
    pub updated_ts_ms: i64,
    /// `sessions.patch` settings, values as JSON text.
    pub settings: BTreeMap<String, String>,
    pub transcript: Vec<TranscriptEntry>,
    pub compaction: Option<Compaction>,
    pub resets: u32,
    pub active_runs: BTreeMap<String, Run>,
    /// Most recently finished last.
    pub recent_runs: VecDeque<Run>,
    /// Requested tool calls not yet finished.
    pub open_tool_calls: BTreeMap<String, OpenToolCall>,
    pub usage: UsageTotals,
    /// Where this session's own history starts: its creation, or its
    /// latest reset (records before it belong to an earlier transcript).
    pub history_start_seq: u64,
    /// The session and seq this one was forked from, if it was.
    pub forked_from: Option<ForkOrigin>,
}

/// Where a forked session's history came from (`session.forked`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkOrigin {
    pub session_key: String,
    pub at_seq: u64,
}

/// One message of a transcript: where its record is. That is a
/// `message.appended` (text of any role), a `tool.call.requested` (role
/// assistant: a tool the model asked for) or a `tool.call.finished` (role
/// tool: its result), so the transcript replays a tool round in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptEntry {
    pub seq: u64,
    pub ts_ms: i64,
    pub role: Role,
    /// For a model's text or tool call: the seq of the `llm.call.completed`
    /// whose reply it is. Some providers want what that reply carried with
    /// a call (Gemini's `thoughtSignature`) back on every later turn, and
    /// its reported usage sizes the context for the window guard; readers
    /// find both there, so later runs compute what a replay computes from
    /// the log alone.
    pub reply_seq: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compaction {
    pub summary: String,
    /// Transcript entries before this index are replaced by the summary in
    /// the model context (they stay in the transcript for display).
    pub context_start: usize,
    pub tokens_before: u64,
    pub tokens_after: u64,
    pub seq: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub run_id: String,
    pub agent_id: String,
    pub model: Option<String>,
    pub trigger: String,
    pub started_seq: u64,
    pub started_ts_ms: i64,
    pub llm_calls: u32,
    pub tool_calls: u32,
    pub state: RunState,
    /// The seq of the run's latest successful `llm.call.completed`, until
    /// the next `llm.call.requested`: the reply its tool calls came from.
    pub reply_seq: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunState {
    Running,
    Finished {
        status: RunStatus,
        seq: u64,
        ts_ms: i64,
    },
    /// The gateway restarted while the run was active; nothing will finish it.
    Interrupted {
        restart_seq: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenToolCall {
    pub tool_call_id: String,
    pub run_id: String,
    pub tool: String,
    pub arguments: String,
    pub requested_seq: u64,
    pub started_seq: Option<u64>,
}

/// A bounded set of `(channel, platform message id)` with FIFO eviction.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundSeen {
    /// Key -> seq of the message that first carried it.
    pub ids: BTreeMap<(String, String), u64>,
    /// Insertion order, for eviction. Always the same keys as `ids`.
    pub order: VecDeque<(String, String)>,
    /// Redeliveries recognised and kept out of transcripts.
    pub duplicates_ignored: u64,
}

impl InboundSeen {
    pub fn contains(&self, channel: &str, platform_message_id: &str) -> bool {
        // BTreeMap<(String, String), _> cannot be probed with borrowed
        // halves; inbound checks are rare enough for the allocation.
        self.ids
            .contains_key(&(channel.to_owned(), platform_message_id.to_owned()))
    }

    fn insert(&mut self, key: (String, String), seq: u64) {
        if self.ids.insert(key.clone(), seq).is_none() {
            self.order.push_back(key);
            while self.order.len() > INBOUND_SEEN_MAX {
                if let Some(oldest) = self.order.pop_front() {
                    self.ids.remove(&oldest);
                }
            }
        }
        debug_assert_eq!(self.ids.len(), self.order.len());
    }
}

impl Session {
    /// The run `run_id` if the session knows it (running, ended, or cut
    /// short), from the runs the projection keeps.
    pub fn run(&self, run_id: &str) -> Option<&Run> {
        self.active_runs
            .get(run_id)
            .or_else(|| self.recent_runs.iter().find(|run| run.run_id == run_id))
    }

    /// What the model sees: the compaction summary (if any), then the
    /// transcript from where the summary ends.
    pub fn model_context(&self) -> (Option<&str>, &[TranscriptEntry]) {
        match &self.compaction {
            Some(compaction) => (
                Some(compaction.summary.as_str()),
                &self.transcript[compaction.context_start..],
            ),
            None => (None, &self.transcript),
        }
    }

    fn finish_run(&mut self, run_id: &str, state: RunState) -> bool {
        let Some(mut run) = self.active_runs.remove(run_id) else {
            return false;
        };
        run.state = state;
        self.open_tool_calls.retain(|_, call| call.run_id != run_id);
        push_bounded(&mut self.recent_runs, run, RECENT_RUNS_MAX);
        true
    }
}

impl Sessions {
    /// Whether `session_key` has run `run_id` (running, ended, or cut
    /// short by a restart) among the runs the projection keeps.
    pub fn knows_run(&self, session_key: &str, run_id: &str) -> bool {
        self.by_key
            .get(session_key)
            .is_some_and(|session| session.run(run_id).is_some())
    }

    fn session_mut(
        &mut self,
        at: At,
        key: &str,
        what: &str,
        anomalies: &mut Anomalies,
    ) -> Option<&mut Session> {
        let session = self.by_key.get_mut(key);
        match session {
            Some(session) => {
                session.updated_ts_ms = at.ts_ms;
                Some(session)
            }
            None => {
                anomalies.record(
                    at,
                    "session.unknown",
                    format!("{what} for session {key} that does not exist; ignored"),
                );
                None
            }
        }
    }

    pub(crate) fn created(&mut self, at: At, event: SessionCreated, anomalies: &mut Anomalies) {
        if self.by_key.contains_key(&event.session_key) {
            anomalies.record(
                at,
                "session.exists",
                format!("session {} created twice; ignored", event.session_key),
            );
            return;
        }
        let key = event.session_key.clone();
        let session = Session {
            key: event.session_key,
            session_id: event.session_id,
            agent_id: event.agent_id,
            label: event.label,
            origin: event.origin,
            created_seq: at.seq,
            created_ts_ms: at.ts_ms,
            updated_ts_ms: at.ts_ms,
            settings: BTreeMap::new(),
            transcript: Vec::new(),
            compaction: None,
            resets: 0,
            active_runs: BTreeMap::new(),
            recent_runs: VecDeque::new(),
            open_tool_calls: BTreeMap::new(),
            usage: UsageTotals::default(),
            history_start_seq: at.seq,
            forked_from: None,
        };
        self.by_key.insert(key, session);
    }

    pub(crate) fn patched(&mut self, at: At, event: SessionPatched, anomalies: &mut Anomalies) {
        let Some(session) = self.session_mut(at, &event.session_key, "patch", anomalies) else {
            return;
        };
        // `label` is a setting clients also read from the session row.
        if event.cleared.iter().any(|name| name == "label") {
            session.label = None;
        }
        if let Some((_, value)) = event.set.iter().rev().find(|(name, _)| name == "label") {
            session.label = Some(json_string_or_raw(value));
        }
        for (name, value) in event.set {
            session.settings.insert(name, value);
        }
        for name in &event.cleared {
            session.settings.remove(name);
        }
    }

    pub(crate) fn reset(&mut self, at: At, event: SessionReset, anomalies: &mut Anomalies) {
        let Some(session) = self.session_mut(at, &event.session_key, "reset", anomalies) else {
            return;
        };
        session.session_id = event.new_session_id;
        session.transcript.clear();
        session.compaction = None;
        session.history_start_seq = at.seq;
        session.forked_from = None;
        session.resets = session.resets.saturating_add(1);
        let active: Vec<String> = session.active_runs.keys().cloned().collect();
        for run_id in active {
            let state = RunState::Finished {
                status: RunStatus::Aborted {
                    reason: format!("session reset: {}", event.reason),
                },
                seq: at.seq,
                ts_ms: at.ts_ms,
            };
            session.finish_run(&run_id, state);
        }
        session.open_tool_calls.clear();
    }

    pub(crate) fn deleted(&mut self, at: At, event: &SessionDeleted, anomalies: &mut Anomalies) {
        if self.by_key.remove(&event.session_key).is_none() {
            anomalies.record(
                at,
                "session.unknown",
                format!(
                    "delete of session {} that does not exist",
                    event.session_key
                ),
            );
        }
    }

    pub(crate) fn compacted(&mut self, at: At, event: SessionCompacted, anomalies: &mut Anomalies) {
        let Some(session) = self.session_mut(at, &event.session_key, "compaction", anomalies)
        else {
            return;
        };
        let requested = usize::try_from(event.messages_compacted).unwrap_or(usize::MAX);
        let context_start = requested.min(session.transcript.len());
        if requested > session.transcript.len() {
            anomalies.record(
                at,
                "session.compaction_beyond_transcript",
                format!(
                    "compaction of {} messages in session {} that has {}; clamped",
                    event.messages_compacted,
                    event.session_key,
                    session.transcript.len()
                ),
            );
        }
        session.compaction = Some(Compaction {
            summary: event.summary,
            context_start,
            tokens_before: event.tokens_before,
            tokens_after: event.tokens_after,
            seq: at.seq,
        });
    }

    pub(crate) fn message_appended(
        &mut self,
        at: At,
        event: MessageAppended,
        anomalies: &mut Anomalies,
    ) {
        let inbound_key = event.origin.as_ref().and_then(|origin| {
            origin
                .platform_message_id
                .as_ref()
                .map(|id| (origin.channel.clone(), id.clone()))
        });
        if let Some(key) = &inbound_key
            && let Some(first_seq) = self.inbound.ids.get(key)
        {
            self.inbound.duplicates_ignored += 1;
            anomalies.record(
                at,
                "message.redelivered",
                format!(
                    "{} message {} already appended at seq {first_seq}; not added again",
                    key.0, key.1
                ),
            );
            return;
        }
        let Some(session) = self.session_mut(at, &event.session_key, "message", anomalies) else {
            return;
        };
        let reply_seq = match (&event.role, &event.run_id) {
            (Role::Assistant, Some(run_id)) => session
                .active_runs
                .get(run_id)
                .and_then(|run| run.reply_seq),
            _ => None,
        };
        session.transcript.push(TranscriptEntry {
            seq: at.seq,
            ts_ms: at.ts_ms,
            role: event.role,
            reply_seq,
        });
        if let Some(key) = inbound_key {
            self.inbound.insert(key, at.seq);
        }
    }

    pub(crate) fn run_started(
        &mut self,
        at: At,
        event: AgentRunStarted,
        anomalies: &mut Anomalies,
    ) {
        let Some(session) = self.session_mut(at, &event.session_key, "run start", anomalies) else {
            return;
        };
        if session.active_runs.contains_key(&event.run_id) {
            anomalies.record(
                at,
                "run.exists",
                format!("run {} started twice; ignored", event.run_id),
            );
            return;
        }
        let key = event.run_id.clone();
        let run = Run {
            run_id: event.run_id,
            agent_id: event.agent_id,
            model: event.model,
            trigger: event.trigger,
            started_seq: at.seq,
            started_ts_ms: at.ts_ms,
            llm_calls: 0,
            tool_calls: 0,
            state: RunState::Running,
            reply_seq: None,
        };
        session.active_runs.insert(key, run);
    }

    pub(crate) fn run_finished(
        &mut self,
        at: At,
        event: AgentRunFinished,
        anomalies: &mut Anomalies,
    ) {
        let Some(session) = self.session_mut(at, &event.session_key, "run finish", anomalies)
        else {
            return;
        };
        let state = RunState::Finished {
            status: event.status,
            seq: at.seq,
            ts_ms: at.ts_ms,
        };
        if !session.finish_run(&event.run_id, state) {
            anomalies.record(
                at,
                "run.not_active",
                format!("finish of run {} that is not active", event.run_id),
            );
        }
    }

    pub(crate) fn llm_call_requested(
        &mut self,
        at: At,
        event: &LlmCallRequested,
        anomalies: &mut Anomalies,
    ) {
        let Some(session) = self.session_mut(at, &event.session_key, "LLM call", anomalies) else {
            return;
        };
        match session.active_runs.get_mut(&event.run_id) {
            Some(run) => {
                run.llm_calls = run.llm_calls.saturating_add(1);
                run.reply_seq = None;
            }
            None => anomalies.record(
                at,
                "run.not_active",
                format!(
                    "LLM call {} for run {} that is not active",
                    event.call_id, event.run_id
                ),
            ),
        }
    }

    pub(crate) fn llm_call_completed(
        &mut self,
        at: At,
        event: &LlmCallCompleted,
        anomalies: &mut Anomalies,
    ) {
        // Usage is charged even when the session is gone: the provider billed it.
        if let Some(session) = self.session_mut(at, &event.session_key, "LLM result", anomalies) {
            let failed = matches!(event.outcome, LlmOutcome::Failed { .. });
            session
                .usage
                .add(&event.usage, event.cost_micro_usd, event.latency_ms, failed);
            if let Some(run) = session.active_runs.get_mut(&event.run_id) {
                run.reply_seq = (!failed).then_some(at.seq);
            }
        }
    }

    pub(crate) fn tool_call_requested(
        &mut self,
        at: At,
        event: ToolCallRequested,
        anomalies: &mut Anomalies,
    ) {
        let Some(session) = self.session_mut(at, &event.session_key, "tool call", anomalies) else {
            return;
        };
        let Some(run) = session.active_runs.get_mut(&event.run_id) else {
            anomalies.record(
                at,
                "run.not_active",
                format!(
                    "tool call {} for run {} that is not active; ignored",
                    event.tool_call_id, event.run_id
                ),
            );
            return;
        };
        if session.open_tool_calls.contains_key(&event.tool_call_id) {
            anomalies.record(
                at,
                "tool.call_reused",
                format!("tool call {} requested twice; ignored", event.tool_call_id),
            );
            return;
        }
        run.tool_calls = run.tool_calls.saturating_add(1);
        if run.trigger != DIRECT_TOOL_TRIGGER {
            session.transcript.push(TranscriptEntry {
                seq: at.seq,
                ts_ms: at.ts_ms,
                role: Role::Assistant,
                reply_seq: run.reply_seq,
            });
        }
        let key = event.tool_call_id.clone();
        let call = OpenToolCall {
            tool_call_id: event.tool_call_id,
            run_id: event.run_id,
            tool: event.tool,
            arguments: event.arguments,
            requested_seq: at.seq,
            started_seq: None,
        };
        session.open_tool_calls.insert(key, call);
    }

    pub(crate) fn tool_call_started(
        &mut self,
        at: At,
        event: &ToolCallStarted,
        anomalies: &mut Anomalies,
    ) {
        let Some(session) = self.session_mut(at, &event.session_key, "tool start", anomalies)
        else {
            return;
        };
        match session.open_tool_calls.get_mut(&event.tool_call_id) {
            Some(call) if call.started_seq.is_none() => call.started_seq = Some(at.seq),
            _ => anomalies.record(
                at,
                "tool.not_open",
                format!(
                    "start of tool call {} that is not waiting to start",
                    event.tool_call_id
                ),
            ),
        }
    }

    pub(crate) fn tool_call_finished(
        &mut self,
        at: At,
        event: &ToolCallFinished,
        anomalies: &mut Anomalies,
    ) {
        let Some(session) = self.session_mut(at, &event.session_key, "tool result", anomalies)
        else {
            return;
        };
        let Some(call) = session.open_tool_calls.remove(&event.tool_call_id) else {
            anomalies.record(
                at,
                "tool.not_open",
                format!(
                    "result of tool call {} that is not open",
                    event.tool_call_id
                ),
            );
            return;
        };
        let direct = session
            .active_runs
            .get(&call.run_id)
            .is_some_and(|run| run.trigger == DIRECT_TOOL_TRIGGER);
        if !direct {
            session.transcript.push(TranscriptEntry {
                seq: at.seq,
                ts_ms: at.ts_ms,
                role: Role::Tool,
                reply_seq: None,
            });
        }
        // Denied and timed-out calls never started; anything else must have.
        let may_skip_start = matches!(
            event.outcome,
            ToolOutcome::Denied { .. } | ToolOutcome::TimedOut
        );
        if call.started_seq.is_none() && !may_skip_start {
            anomalies.record(
                at,
                "tool.finished_unstarted",
                format!("tool call {} finished without a start", event.tool_call_id),
            );
        }
    }

    pub(crate) fn gateway_restarted(&mut self, at: At) {
        for session in self.by_key.values_mut() {
            let active: Vec<String> = session.active_runs.keys().cloned().collect();
            for run_id in active {
                let state = RunState::Interrupted {
                    restart_seq: at.seq,
                };
                session.finish_run(&run_id, state);
            }
            debug_assert!(session.active_runs.is_empty());
        }
    }
}

/// A `label` setting is JSON text; show a JSON string as its contents.
fn json_string_or_raw(value: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(value) {
        Ok(serde_json::Value::String(text)) => text,
        _ => value.to_owned(),
    }
}
