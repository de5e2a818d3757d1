//! One session's history as a person reads it: each recorded event of the
//! session, in order, with a one-line summary.
//!
//! Nothing is re-executed: LLM responses, tool outputs and approvals are shown
//! as they were recorded. The session's events are found through the store's
//! stream index (every session event is appended to the stream named by its
//! session key), so a replay reads only that session's records.

use std::ops::ControlFlow;

use clawback_events::event::{
    Admission, Event, LlmOutcome, PresenceChange, RpcOutcome, RunStatus, ToolOutcome,
};
use clawback_events::sealed::{ContentKeys, ContentState};
use clawback_events::store::LogStore;
use clawback_events::{Envelope, record};

/// What kind of step an entry is, for colouring and filtering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Inbound,
    Assistant,
    Llm,
    Tool,
    Approval,
    Delivery,
    Session,
    Run,
    Other,
}

impl Category {
    pub const ALL: [Category; 9] = [
        Category::Inbound,
        Category::Assistant,
        Category::Llm,
        Category::Tool,
        Category::Approval,
        Category::Delivery,
        Category::Session,
        Category::Run,
        Category::Other,
    ];

    /// The name clients see (`clawback.timeline`'s `category`).
    pub fn name(self) -> &'static str {
        match self {
            Category::Inbound => "inbound",
            Category::Assistant => "assistant",
            Category::Llm => "llm",
            Category::Tool => "tool",
            Category::Approval => "approval",
            Category::Delivery => "delivery",
            Category::Session => "session",
            Category::Run => "run",
            Category::Other => "other",
        }
    }

    /// The category named `name`; unknown names are `Other`.
    pub fn from_name(name: &str) -> Category {
        Category::ALL
            .into_iter()
            .find(|category| category.name() == name)
            .unwrap_or(Category::Other)
    }
}

#[derive(Debug, Clone)]
pub struct TimelineEntry {
    /// The record, its session content opened (never `Event::Sealed`).
    pub envelope: Envelope,
    /// Whether the content is as recorded, or purged, or unreadable.
    pub content: ContentState,
    pub category: Category,
    pub summary: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TimelineError {
    #[error("record at seq {seq} cannot be read: {detail}")]
    Unreadable { seq: u64, detail: String },
    #[error("{0}")]
    Store(#[from] clawback_events::store::StoreError),
}

/// Which part of a session to show.
#[derive(Debug, Clone, Default)]
pub struct TimelineFilter {
    /// Last seq to include.
    pub until_seq: Option<u64>,
    /// Only events correlated with this run id.
    pub run_id: Option<String>,
}

/// The session's recorded events, in log order, summarised.
pub fn session_timeline(
    store: &dyn LogStore,
    keys: &dyn ContentKeys,
    session_key: &str,
    filter: &TimelineFilter,
) -> Result<Vec<TimelineEntry>, TimelineError> {
    let until = filter.until_seq.unwrap_or(u64::MAX);
    let mut seqs = Vec::new();
    store.scan_stream(session_key, 0, &mut |seq| {
        if seq > until {
            return ControlFlow::Break(());
        }
        seqs.push(seq);
        ControlFlow::Continue(())
    })?;
    let mut entries = Vec::with_capacity(seqs.len());
    for seq in seqs {
        if let Some(entry) = read_entry(store, keys, seq, filter)? {
            entries.push(entry);
        }
    }
    Ok(entries)
}

/// One page of a session's timeline: at most `limit` entries after seq
/// `after` (exclusive), and whether the session has records beyond them.
#[derive(Debug, Clone)]
pub struct TimelinePage {
    pub entries: Vec<TimelineEntry>,
    /// Records of the session (within `until_seq`) not yet examined. With a
    /// run filter, the next page may still come back empty.
    pub more: bool,
}

/// A bounded read of [`session_timeline`]: why a separate function: a
/// client (the control UI) pages through a long session without the reader
/// ever holding more than `limit` decoded records, and asks for the next
/// page from the last seq it got.
pub fn session_timeline_page(
    store: &dyn LogStore,
    keys: &dyn ContentKeys,
    session_key: &str,
    filter: &TimelineFilter,
    after: Option<u64>,
    limit: usize,
) -> Result<TimelinePage, TimelineError> {
    assert!(limit > 0, "a timeline page holds at least one entry");
    let until = filter.until_seq.unwrap_or(u64::MAX);
    let mut from = after.map_or(0, |seq| seq.saturating_add(1));
    let mut entries = Vec::with_capacity(limit.min(1024));
    // Seqs are gathered first and read after the index scan, a chunk at a
    // time (a run filter may skip records, so a page can take several).
    loop {
        let wanted = limit - entries.len();
        let mut seqs = Vec::with_capacity(wanted.min(1024) + 1);
        store.scan_stream(session_key, from, &mut |seq| {
            if seq > until || seqs.len() > wanted {
                return ControlFlow::Break(());
            }
            seqs.push(seq);
            ControlFlow::Continue(())
        })?;
        // One seq beyond what is wanted says whether more follow.
        let more = seqs.len() > wanted;
        seqs.truncate(wanted);
        let Some(&last) = seqs.last() else {
            return Ok(TimelinePage {
                entries,
                more: false,
            });
        };
        for seq in seqs {
            if let Some(entry) = read_entry(store, keys, seq, filter)? {
                entries.push(entry);
            }
        }
        if !more || entries.len() == limit {
            return Ok(TimelinePage { entries, more });
        }
        from = last + 1;
    }
}

/// The entry for record `seq`, or `None` when the run filter leaves it out.
fn read_entry(
    store: &dyn LogStore,
    keys: &dyn ContentKeys,
    seq: u64,
    filter: &TimelineFilter,
) -> Result<Option<TimelineEntry>, TimelineError> {
    let bytes = store.get(seq)?.ok_or_else(|| TimelineError::Unreadable {
        seq,
        detail: "indexed record is missing".to_owned(),
    })?;
    let mut envelope = record::decode(seq, &bytes).map_err(|error| TimelineError::Unreadable {
        seq,
        detail: error.to_string(),
    })?;
    // The run filter needs only ids (the skeleton has them): a record it
    // leaves out is never decrypted.
    if let Some(run_id) = &filter.run_id
        && envelope.body.correlation.as_deref() != Some(run_id.as_str())
        && run_of(envelope.body.event.bare()) != Some(run_id.as_str())
    {
        return Ok(None);
    }
    let readable = envelope.body.event.read(keys);
    let content = readable.content;
    let event = readable.event.into_owned();
    envelope.body.event = event;
    let (category, mut summary) = summarize(&envelope.body.event);
    match &content {
        ContentState::Purged => summary.push_str(" (content purged)"),
        ContentState::Unreadable(why) => summary.push_str(&format!(" (content unreadable: {why})")),
        ContentState::Clear | ContentState::Opened => {}
    }
    Ok(Some(TimelineEntry {
        envelope,
        content,
        category,
        summary,
    }))
}

fn run_of(event: &Event) -> Option<&str> {
    match event {
        Event::AgentRunStarted(e) => Some(&e.run_id),
        Event::AgentRunFinished(e) => Some(&e.run_id),
        Event::LlmCallRequested(e) => Some(&e.run_id),
        Event::LlmCallCompleted(e) => Some(&e.run_id),
        Event::ToolCallRequested(e) => Some(&e.run_id),
        Event::MessageAppended(e) => e.run_id.as_deref(),
        _ => None,
    }
}

/// Shortens `text` to `chars_max` characters on one line.
pub fn clip(text: &str, chars_max: usize) -> String {
    let single_line: String = text
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    if single_line.chars().count() <= chars_max {
        return single_line;
    }
    let mut clipped: String = single_line
        .chars()
        .take(chars_max.saturating_sub(1))
        .collect();
    clipped.push('…');
    clipped
}

const CLIP_CHARS: usize = 100;

/// A category and a one-line summary of an event.
pub fn summarize(event: &Event) -> (Category, String) {
    match event {
        Event::SessionCreated(e) => (
            Category::Session,
            format!(
                "session created (id {}, agent {}{})",
                e.session_id,
                e.agent_id,
                e.origin
                    .as_deref()
                    .map(|origin| format!(", from {origin}"))
                    .unwrap_or_default()
            ),
        ),
        Event::SessionPatched(e) => {
            let mut parts: Vec<String> = e
                .set
                .iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect();
            parts.extend(e.cleared.iter().map(|key| format!("{key} cleared")));
            (
                Category::Session,
                format!("session patched: {}", parts.join(", ")),
            )
        }
        Event::SessionReset(e) => (
            Category::Session,
            format!("session reset ({}), new id {}", e.reason, e.new_session_id),
        ),
        Event::SessionDeleted(_) => (Category::Session, "session deleted".to_owned()),
        Event::SessionPurged(e) => (
            Category::Session,
            format!(
                "session content purged: {} key(s) destroyed, its records stay in the chain",
                e.key_ids.len()
            ),
        ),
        // Readers open a sealed event first; one shown unopened says so.
        Event::Sealed(sealed) => {
            let (category, summary) = summarize(&sealed.skeleton);
            (category, format!("{summary} (content sealed)"))
        }
        Event::SessionForked(e) => (
            Category::Session,
            format!(
                "forked from {} at seq {} (id {}, agent {}{}{})",
                e.source_session_key,
                e.at_seq,
                e.session_id,
                e.agent_id,
                e.settings
                    .iter()
                    .map(|(key, value)| format!(", {key}={value}"))
                    .collect::<String>(),
                e.next_message_seq
                    .map(|seq| format!(", next turn answers the user message at seq {seq}"))
                    .unwrap_or_default()
            ),
        ),
        Event::SessionCompacted(e) => (
            Category::Session,
            format!(
                "compacted {} messages, {} -> {} tokens: {}",
                e.messages_compacted,
                e.tokens_before,
                e.tokens_after,
                clip(&e.summary, CLIP_CHARS)
            ),
        ),
        Event::MessageAppended(e) => {
            let from = e
                .origin
                .as_ref()
                .map(|origin| format!(" [{} from {}]", origin.channel, origin.sender))
                .unwrap_or_default();
            let category = match e.role {
                clawback_events::event::Role::Assistant => Category::Assistant,
                clawback_events::event::Role::Tool => Category::Tool,
                _ => Category::Inbound,
            };
            (
                category,
                format!(
                    "{}{from}: {}",
                    e.role.as_str(),
                    clip(&e.content, CLIP_CHARS)
                ),
            )
        }
        Event::AgentRunStarted(e) => (
            Category::Run,
            format!(
                "run {} started by {} (model {})",
                e.run_id,
                e.trigger,
                e.model.as_deref().unwrap_or("default")
            ),
        ),
        Event::AgentRunFinished(e) => (
            Category::Run,
            match &e.status {
                RunStatus::Completed => format!("run {} completed", e.run_id),
                RunStatus::Aborted { reason } => format!("run {} aborted: {reason}", e.run_id),
                RunStatus::Failed {
                    error_kind,
                    message,
                } => {
                    format!(
                        "run {} failed ({error_kind}): {}",
                        e.run_id,
                        clip(message, CLIP_CHARS)
                    )
                }
            },
        ),
        Event::LlmCallRequested(e) => (
            Category::Llm,
            format!(
                "LLM request {}/{} attempt {} ({} bytes)",
                e.provider,
                e.model,
                e.attempt,
                e.request.len()
            ),
        ),
        Event::LlmCallCompleted(e) => (
            Category::Llm,
            match &e.outcome {
                LlmOutcome::Ok {
                    response,
                    stop_reason,
                } => format!(
                    "LLM response {}/{}: {} in / {} out tokens, ${:.6}, {} ms, stop {stop_reason}: {}",
                    e.provider,
                    e.model,
                    e.usage.input_tokens,
                    e.usage.output_tokens,
                    e.cost_micro_usd as f64 / 1e6,
                    e.latency_ms,
                    clip(response, CLIP_CHARS / 2)
                ),
                LlmOutcome::Failed {
                    class,
                    message,
                    http_status,
                } => format!(
                    "LLM call {}/{} failed: {class}{} after {} ms: {}",
                    e.provider,
                    e.model,
                    http_status
                        .map(|status| format!(" (HTTP {status})"))
                        .unwrap_or_default(),
                    e.latency_ms,
                    clip(message, CLIP_CHARS)
                ),
            },
        ),
        Event::ToolCallRequested(e) => (
            Category::Tool,
            format!(
                "tool {} requested ({}): {}",
                e.tool,
                e.tool_call_id,
                clip(&e.arguments, CLIP_CHARS)
            ),
        ),
        Event::ToolCallStarted(e) => (
            Category::Tool,
            format!("tool call {} started", e.tool_call_id),
        ),
        Event::ToolCallFinished(e) => (
            Category::Tool,
            match &e.outcome {
                ToolOutcome::Ok { output } => format!(
                    "tool call {} ok in {} ms: {}",
                    e.tool_call_id,
                    e.duration_ms,
                    clip(output, CLIP_CHARS)
                ),
                ToolOutcome::Error { message } => format!(
                    "tool call {} error: {}",
                    e.tool_call_id,
                    clip(message, CLIP_CHARS)
                ),
                ToolOutcome::Denied { reason } => {
                    format!("tool call {} denied: {reason}", e.tool_call_id)
                }
                ToolOutcome::TimedOut => format!(
                    "tool call {} timed out after {} ms",
                    e.tool_call_id, e.duration_ms
                ),
            },
        ),
        Event::ApprovalRequested(e) => (
            Category::Approval,
            format!(
                "approval {} requested for `{}`",
                e.approval_id,
                clip(&e.command, CLIP_CHARS)
            ),
        ),
        Event::ApprovalResolved(e) => (
            Category::Approval,
            format!(
                "approval {}: {} by {}",
                e.approval_id,
                e.decision.as_str(),
                e.reviewer
            ),
        ),
        Event::ApprovalExpired(e) => (
            Category::Approval,
            format!("approval {} expired (deny)", e.approval_id),
        ),
        Event::ApprovalGrantApplied(e) => (
            Category::Approval,
            format!(
                "`{}` allowed by the allow-always grant of approval {}",
                clip(&e.command, CLIP_CHARS),
                e.grant_approval_id
            ),
        ),
        Event::ChannelMessageReceived(e) => (
            Category::Inbound,
            format!(
                "{} message from {}{} in {} {}{}: {}",
                e.channel,
                e.sender_name
                    .as_deref()
                    .map(|name| format!("{name} "))
                    .unwrap_or_default(),
                e.sender_id,
                e.chat_kind,
                e.chat_id,
                match &e.admission {
                    Admission::Admitted { run_id, .. } => format!(" (run {run_id})"),
                    Admission::Refused { reason } => format!(" (refused: {reason})"),
                },
                clip(&e.text, CLIP_CHARS)
            ),
        ),
        Event::ChannelPairingRequested(e) => (
            Category::Inbound,
            format!(
                "{} pairing requested by {} (request {}, code {})",
                e.channel, e.sender_id, e.request_id, e.code
            ),
        ),
        Event::ChannelPairingResolved(e) => (
            Category::Approval,
            format!(
                "{} pairing request {} for {} {} by {}",
                e.channel, e.request_id, e.sender_id, e.decision, e.reviewer
            ),
        ),
        Event::ChannelInviteReceived(e) => (
            Category::Inbound,
            format!(
                "{} invite to {} from {}: {}",
                e.channel,
                e.room_id,
                e.inviter.as_deref().unwrap_or("(unknown)"),
                match &e.reason {
                    None => "joined".to_owned(),
                    Some(reason) => format!("not joined ({reason})"),
                }
            ),
        ),
        Event::ChannelCursorRecorded(e) => (
            Category::Other,
            format!(
                "{} account {} resumes from a recorded position",
                e.channel, e.account_id
            ),
        ),
        Event::ChannelLoggedOut(e) => (
            Category::Other,
            format!(
                "{} account {} logged out by {}: {}{}",
                e.channel,
                e.account_id,
                e.reviewer,
                e.actions.join("; "),
                e.error
                    .as_ref()
                    .map(|error| format!(" (failed: {error})"))
                    .unwrap_or_default()
            ),
        ),
        Event::ChannelReplyCompleted(e) => (
            Category::Delivery,
            format!("reply of run {} settled: {}", e.run_id, e.outcome),
        ),
        Event::DeliveryPrepared(e) => (
            Category::Delivery,
            format!(
                "delivery {} to {}:{} prepared: {}",
                e.delivery_id,
                e.channel,
                e.target,
                clip(&e.text, CLIP_CHARS)
            ),
        ),
        Event::DeliverySent(e) => (
            Category::Delivery,
            format!(
                "delivery {} sent{}",
                e.delivery_id,
                e.platform_message_id
                    .as_deref()
                    .map(|id| format!(" (platform id {id})"))
                    .unwrap_or_default()
            ),
        ),
        Event::DeliveryFailed(e) => (
            Category::Delivery,
            format!(
                "delivery {} failed{}: {}",
                e.delivery_id,
                if e.retryable { " (retryable)" } else { "" },
                e.error
            ),
        ),
        Event::RpcReceived(e) => (
            Category::Other,
            format!("rpc {} {} received", e.method, e.request_id),
        ),
        Event::RpcAnswered(e) => (
            Category::Other,
            match &e.outcome {
                RpcOutcome::Ok => format!("rpc {} {} ok", e.method, e.request_id),
                RpcOutcome::Error { code, message } => {
                    format!("rpc {} {} error {code}: {message}", e.method, e.request_id)
                }
            },
        ),
        Event::PresenceChanged(e) => (
            Category::Other,
            match &e.change {
                PresenceChange::Upsert(_) => format!("presence {} updated", e.key),
                PresenceChange::Removed { reason } => {
                    format!("presence {} removed ({reason})", e.key)
                }
            },
        ),
        Event::ConfigChanged(e) => (
            Category::Other,
            format!(
                "config changed by {} (hash {})",
                e.source,
                clip(&e.config_hash, 12)
            ),
        ),
        other => (Category::Other, other.kind().to_owned()),
    }
}
