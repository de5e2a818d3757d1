//! Compaction: the oldest part of a session's transcript is summarized
//! through the session's model, and the summary replaces it in the context
//! of later turns. The transcript itself is untouched (the log keeps every
//! message); `session.compacted` records where the context now starts.
//!
//! Why through the model, recorded like a run's calls: the summary is model
//! output that shapes every later turn, so its request and response are on
//! record (`llm.call.requested`/`completed`, correlated with the
//! compaction's id) and replay feeds back exactly that summary.

use std::time::{Duration, Instant};

use clawback_events::event::{
    Event, LlmCallCompleted, LlmCallRequested, LlmOutcome, Role, SessionCompacted, Usage,
};
use clawback_events::{Actor, NewEvent};
use serde_json::json;

use super::Runtime;
use super::models::resolve;
use super::provider::Message;
use crate::gateway::Gateway;

/// The newest messages kept verbatim after a compaction.
pub const KEEP_RECENT: usize = 4;
/// Fewer messages than this before the kept ones: nothing worth compacting.
const COMPACT_MIN: usize = 2;
const SUMMARY_TIMEOUT: Duration = Duration::from_secs(120);
const SUMMARY_PROMPT: &str = "Summarize the conversation below so that you can continue it \
later without the original messages: keep facts, decisions, names, numbers, open questions and \
what the user asked you to remember. Write only the summary.";

pub struct Compacted {
    pub compacted: bool,
    pub reason: Option<String>,
    pub messages_compacted: u32,
}

/// Compacts `session_key` now. The caller holds the session's lane.
pub async fn compact(
    gateway: &Gateway,
    runtime: &Runtime,
    session_key: &str,
    actor: &Actor,
) -> Result<Compacted, String> {
    let (agent_id, model, start, entries, previous) = {
        let state = gateway.state.read().expect("state lock");
        let Some(session) = state.sessions.by_key.get(session_key) else {
            return Err(format!("session not found: {session_key}"));
        };
        let start = session.compaction.as_ref().map_or(0, |c| c.context_start);
        let end = session.transcript.len().saturating_sub(KEEP_RECENT);
        let model = session
            .settings
            .get("model")
            .and_then(|value| serde_json::from_str::<String>(value).ok());
        let previous = session.compaction.as_ref().map(|c| c.seq);
        let entries = if end > start {
            session.transcript[start..end].to_vec()
        } else {
            Vec::new()
        };
        (session.agent_id.clone(), model, start, entries, previous)
    };
    if entries.len() < COMPACT_MIN {
        return Ok(Compacted {
            compacted: false,
            reason: Some("nothing to compact: the session is short".to_owned()),
            messages_compacted: start as u32,
        });
    }
    let config = gateway.config();
    let chain = resolve(&config, &agent_id, model.as_deref(), gateway)?;
    let resolved = runtime
        .available(chain)
        .into_iter()
        .next()
        .ok_or("no model is usable")?;
    let store = gateway.log.store();
    let previous = previous.map(|seq| {
        clawback_replay::session_state::compaction_summary(&**store, &*gateway.keyring, seq)
    });
    let mut transcript = String::new();
    if let Some(previous) = &previous {
        transcript.push_str(&format!("Earlier summary: {previous}\n\n"));
    }
    for entry in &entries {
        let speaker = match entry.role {
            Role::User => "User",
            Role::Assistant => "Assistant",
            Role::Tool => "Tool result",
            Role::System => continue,
        };
        let text = clawback_replay::session_state::message_text(&**store, &*gateway.keyring, entry);
        transcript.push_str(&format!("{speaker}: {text}\n\n"));
    }
    let tokens_before = estimate_tokens(&transcript);
    let messages = [
        Message::System(SUMMARY_PROMPT.to_owned()),
        Message::User(transcript),
    ];
    // No tools: a summary is text only.
    let mut body = resolved
        .api
        .request_body(resolved.model_id(), &messages, None, None, &[]);
    if resolved.claude_oauth() {
        super::anthropic::claude_oauth_identity(&mut body);
    }
    let compaction_id = format!("compaction:{}", uuid::Uuid::new_v4());
    let call_id = uuid::Uuid::new_v4().to_string();
    append(
        gateway,
        session_key,
        actor,
        &compaction_id,
        vec![Event::LlmCallRequested(LlmCallRequested {
            call_id: call_id.clone(),
            run_id: compaction_id.clone(),
            session_key: session_key.to_owned(),
            provider: resolved.provider().to_owned(),
            model: resolved.model_id().to_owned(),
            attempt: 1,
            request: body.to_string(),
        })],
    )
    .await?;
    let client = runtime.client()?;
    let started = Instant::now();
    let target = super::oauth::call_target(
        gateway,
        runtime,
        client,
        (actor, &compaction_id),
        &resolved,
        &body,
    )
    .await;
    let result = match target {
        Ok(target) => {
            resolved
                .api
                .stream(
                    client,
                    &target.endpoint(SUMMARY_TIMEOUT),
                    resolved.model_id(),
                    &body,
                    |_| {},
                )
                .await
        }
        Err(failure) => Err(failure),
    };
    let latency_ms = started.elapsed().as_millis() as u64;
    let (outcome, usage, summary) = match result {
        Ok(completion) => {
            let response = json!({"text": completion.text, "finishReason": completion.finish_reason,
                                  "chunks": completion.chunks});
            let summary = completion.text.trim().to_owned();
            (
                LlmOutcome::Ok {
                    response: response.to_string(),
                    stop_reason: completion.finish_reason,
                },
                completion.usage,
                Some(summary).filter(|summary| !summary.is_empty()),
            )
        }
        Err(failure) => (
            LlmOutcome::Failed {
                class: failure.class.to_owned(),
                message: failure.message.clone(),
                http_status: failure.http_status,
            },
            Usage::default(),
            None,
        ),
    };
    let failed = match &outcome {
        LlmOutcome::Failed { message, .. } => Some(message.clone()),
        LlmOutcome::Ok { .. } => None,
    };
    let mut records = vec![Event::LlmCallCompleted(LlmCallCompleted {
        call_id,
        run_id: compaction_id.clone(),
        session_key: session_key.to_owned(),
        provider: resolved.provider().to_owned(),
        model: resolved.model_id().to_owned(),
        outcome,
        usage,
        cost_micro_usd: 0,
        latency_ms,
    })];
    let Some(summary) = summary else {
        append(gateway, session_key, actor, &compaction_id, records).await?;
        return Ok(Compacted {
            compacted: false,
            reason: Some(
                failed.unwrap_or_else(|| "the model returned an empty summary".to_owned()),
            ),
            messages_compacted: start as u32,
        });
    };
    let messages_compacted = start + entries.len();
    records.push(Event::SessionCompacted(SessionCompacted {
        session_key: session_key.to_owned(),
        tokens_after: estimate_tokens(&summary),
        summary,
        messages_compacted: messages_compacted as u32,
        tokens_before,
    }));
    append(gateway, session_key, actor, &compaction_id, records).await?;
    Ok(Compacted {
        compacted: true,
        reason: None,
        messages_compacted: messages_compacted as u32,
    })
}

/// A rough token count (four characters each): enough to show what a
/// compaction saved; providers report exact counts in `usage`.
fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// Records `events` on `stream` (a session key, `cron:<job>`), correlated
/// with `correlation` (a run id or a compaction id), in one durable batch.
pub async fn append(
    gateway: &Gateway,
    stream: &str,
    actor: &Actor,
    correlation: &str,
    events: Vec<Event>,
) -> Result<(), String> {
    let batch = events
        .into_iter()
        .map(|event| {
            NewEvent::new(stream.to_owned(), actor.clone(), event)
                .correlated(correlation.to_owned())
        })
        .collect();
    gateway
        .log
        .append(batch)
        .await
        .map(|_| ())
        .map_err(|error| format!("the gateway cannot record this: {error}"))
}
