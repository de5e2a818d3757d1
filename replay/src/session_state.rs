//! A session's projected state at a point of the log, as a person reads it.
//!
//! Why next to the timeline: replaying a session answers "what happened"
//! event by event; debugging an agent also needs "what did the agent see at
//! that moment": the model context after compaction, the settings in force,
//! the runs still open. This renders the sessions projection, restored to the
//! replay's stop point, with message text read back from the log by seq (the
//! projection keeps only where each message is), so both come from the same
//! log.

use clawback_events::event::{Event, RunStatus, ToolOutcome};
use clawback_events::record;
use clawback_events::sealed::ContentKeys;
use clawback_events::store::LogStore;
use clawback_projections::State;
use clawback_projections::sessions::{RunState, Session, TranscriptEntry};

use crate::timeline::clip;

/// The longest message shown in full in a description.
const CONTENT_CHARS_MAX: usize = 160;

/// Lines describing `session_key` in `state`, or `None` if the session does
/// not exist at that point (never created, or deleted).
pub fn describe(
    store: &dyn LogStore,
    keys: &dyn ContentKeys,
    state: &State,
    session_key: &str,
) -> Option<Vec<String>> {
    let session = state.sessions.by_key.get(session_key)?;
    let mut lines = vec![format!(
        "session {} (id {}, agent {}{}), state as of seq {}",
        session.key,
        session.session_id,
        session.agent_id,
        session
            .label
            .as_ref()
            .map(|label| format!(", label {label:?}"))
            .unwrap_or_default(),
        state.next_seq.saturating_sub(1)
    )];
    if let Some(origin) = &session.forked_from {
        lines.push(format!(
            "  forked from {} at seq {}",
            origin.session_key, origin.at_seq
        ));
    }
    if !session.settings.is_empty() {
        let settings: Vec<String> = session
            .settings
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        lines.push(format!("  settings: {}", settings.join(", ")));
    }
    lines.extend(describe_context(store, keys, session));
    for run in session.active_runs.values() {
        lines.push(format!(
            "  run {} open since seq {} ({} LLM calls, {} tool calls)",
            run.run_id, run.started_seq, run.llm_calls, run.tool_calls
        ));
    }
    if let Some(run) = session.recent_runs.back() {
        lines.push(format!(
            "  last finished run {}: {}",
            run.run_id,
            run_state(&run.state)
        ));
    }
    for call in session.open_tool_calls.values() {
        let phase = if call.started_seq.is_some() {
            "running"
        } else {
            "waiting"
        };
        lines.push(format!(
            "  tool call {} ({}) {phase}: {}",
            call.tool_call_id,
            call.tool,
            clip(
                &call_arguments(store, keys, call.requested_seq),
                CONTENT_CHARS_MAX
            )
        ));
    }
    let usage = &session.usage;
    lines.push(format!(
        "  usage: {} LLM calls ({} failed), {} in / {} out tokens, ${}.{:06}",
        usage.calls,
        usage.failed_calls,
        usage.input_tokens,
        usage.output_tokens,
        usage.cost_micro_usd / 1_000_000,
        usage.cost_micro_usd % 1_000_000
    ));
    if session.resets > 0 {
        lines.push(format!("  resets: {}", session.resets));
    }
    Some(lines)
}

fn describe_context(
    store: &dyn LogStore,
    keys: &dyn ContentKeys,
    session: &Session,
) -> Vec<String> {
    let (summary, context) = session.model_context();
    let mut lines = vec![format!(
        "  transcript: {} messages; model context: {}{} messages",
        session.transcript.len(),
        if summary.is_some() { "summary + " } else { "" },
        context.len()
    )];
    if let Some(compaction) = &session.compaction
        && summary.is_some()
    {
        lines.push(format!(
            "    [summary] {}",
            clip(
                &compaction_summary(store, keys, compaction.seq),
                CONTENT_CHARS_MAX
            )
        ));
    }
    for message in context {
        lines.push(format!(
            "    {:>6} {}: {}",
            message.seq,
            message.role.as_str(),
            clip(&message_text(store, keys, message), CONTENT_CHARS_MAX)
        ));
    }
    lines
}

fn run_state(state: &RunState) -> String {
    match state {
        RunState::Running => "running".to_owned(),
        RunState::Interrupted { restart_seq } => {
            format!("interrupted by the gateway restart at seq {restart_seq}")
        }
        RunState::Finished { status, seq, .. } => match status {
            RunStatus::Completed => format!("completed at seq {seq}"),
            RunStatus::Aborted { reason } => format!("aborted at seq {seq}: {reason}"),
            RunStatus::Failed {
                error_kind,
                message,
            } => format!("failed at seq {seq}: {error_kind}: {message}"),
        },
    }
}

/// A transcript entry read back from its record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TranscriptItem {
    /// A `message.appended`: text of any role.
    Text(String),
    /// A `tool.call.requested`: a tool the model asked for.
    ToolCall {
        id: String,
        name: String,
        arguments: String,
    },
    /// A `tool.call.finished`: the tool's answer, as the model read it.
    ToolResult { id: String, outcome: ToolOutcome },
    /// The record is missing, unreadable or of another kind: said so,
    /// rather than hiding the entry.
    Unreadable(String),
}

/// Reads a transcript entry's record.
pub fn transcript_item(
    store: &dyn LogStore,
    keys: &dyn ContentKeys,
    entry: &TranscriptEntry,
) -> TranscriptItem {
    match read_event(store, keys, entry.seq) {
        Ok(event) => match event {
            Event::MessageAppended(message) => TranscriptItem::Text(message.content),
            Event::ToolCallRequested(call) => TranscriptItem::ToolCall {
                id: call.tool_call_id,
                name: call.tool,
                arguments: call.arguments,
            },
            Event::ToolCallFinished(result) => TranscriptItem::ToolResult {
                id: result.tool_call_id,
                outcome: result.outcome,
            },
            other => {
                TranscriptItem::Unreadable(format!("<record is {}, not a message>", other.kind()))
            }
        },
        Err(error) => TranscriptItem::Unreadable(format!("<{error}>")),
    }
}

/// The event recorded at `seq`, its session content opened with `keys`
/// (or `[purged]` / `[unreadable: why]` in place of content that cannot be).
pub fn read_event(store: &dyn LogStore, keys: &dyn ContentKeys, seq: u64) -> Result<Event, String> {
    let bytes = match store.get(seq) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Err("record missing from the log".to_owned()),
        Err(error) => return Err(format!("record unreadable: {error}")),
    };
    let envelope =
        record::decode(seq, &bytes).map_err(|error| format!("record unreadable: {error}"))?;
    Ok(envelope.body.event.read(keys).event.into_owned())
}

/// The summary a compaction recorded at `seq` (the projection keeps where
/// it is, not its text, which may be sealed).
pub fn compaction_summary(store: &dyn LogStore, keys: &dyn ContentKeys, seq: u64) -> String {
    match read_event(store, keys, seq) {
        Ok(Event::SessionCompacted(compacted)) => compacted.summary,
        Ok(other) => format!("<record {seq} is {}, not a compaction>", other.kind()),
        Err(error) => format!("<{error}>"),
    }
}

/// The arguments of the tool call requested at `seq`.
fn call_arguments(store: &dyn LogStore, keys: &dyn ContentKeys, seq: u64) -> String {
    match read_event(store, keys, seq) {
        Ok(Event::ToolCallRequested(call)) => call.arguments,
        Ok(other) => format!("<record {seq} is {}, not a tool call>", other.kind()),
        Err(error) => format!("<{error}>"),
    }
}

/// What a model reply gave its tool calls to send back on later turns,
/// read from its `llm.call.completed` record (`toolCalls[].signature` of
/// the recorded response; Gemini's `thoughtSignature`): the model that
/// replied, and the signatures by call id. `None` when the record is
/// missing or is not a successful model call.
pub fn reply_signatures(
    store: &dyn LogStore,
    keys: &dyn ContentKeys,
    seq: u64,
) -> Option<(String, std::collections::BTreeMap<String, String>)> {
    let Event::LlmCallCompleted(completed) = read_event(store, keys, seq).ok()? else {
        return None;
    };
    let clawback_events::event::LlmOutcome::Ok { response, .. } = &completed.outcome else {
        return None;
    };
    let response: serde_json::Value = serde_json::from_str(response).ok()?;
    let signatures = response["toolCalls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|call| {
            Some((
                call["id"].as_str()?.to_owned(),
                call["signature"].as_str()?.to_owned(),
            ))
        })
        .collect();
    Some((completed.model, signatures))
}

/// The text of a transcript entry, read from its record (a tool call as
/// `[tool name(arguments)]`, a result as its output); a record that cannot
/// be read is shown as such rather than hiding the entry.
pub fn message_text(
    store: &dyn LogStore,
    keys: &dyn ContentKeys,
    entry: &TranscriptEntry,
) -> String {
    match transcript_item(store, keys, entry) {
        TranscriptItem::Text(text) | TranscriptItem::Unreadable(text) => text,
        TranscriptItem::ToolCall {
            name, arguments, ..
        } => format!("[tool {name}({arguments})]"),
        TranscriptItem::ToolResult { outcome, .. } => match outcome {
            ToolOutcome::Ok { output } => output,
            ToolOutcome::Error { message } => format!("[tool error] {message}"),
            ToolOutcome::Denied { reason } => format!("[tool denied] {reason}"),
            ToolOutcome::TimedOut => "[tool timed out]".to_owned(),
        },
    }
}
