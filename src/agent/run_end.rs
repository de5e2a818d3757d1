//! How a run ends, each way recorded before clients are told: completed
//! (the reply appended, usage and cost added), aborted (mid-call, keeping
//! the reply as far as it came; or between calls), or failed (with the
//! failure's class).
//!
//! Why apart from `run`: every path of the run loop ends in one of these,
//! and they share nothing with choosing and calling a model.

use clawback_events::event::{
    AgentRunFinished, Event, LlmCallCompleted, LlmOutcome, MessageAppended, Role, RunStatus, Usage,
};

use super::client_events::Events;
use super::models::{Resolved, cost_micro_usd};
use super::run::{RunOutcome, RunRequest, add_usage, completed_call, now_ms, record};
use crate::gateway::Gateway;

/// Records a successful call, the reply and the run's end, and tells
/// clients.
#[allow(clippy::too_many_arguments)]
pub(super) async fn complete(
    gateway: &Gateway,
    request: &RunRequest,
    mut outcome: RunOutcome,
    events: &mut Events<'_>,
    call_id: String,
    resolved: &Resolved,
    completion: super::provider::Completion,
    latency_ms: u64,
) -> RunOutcome {
    events.flush();
    let cost = cost_micro_usd(resolved.cost.as_ref(), &completion.usage);
    let finished = vec![
        completed_call(request, call_id, resolved, &completion, latency_ms),
        Event::MessageAppended(MessageAppended {
            session_key: request.session_key.clone(),
            message_id: uuid::Uuid::new_v4().to_string(),
            role: Role::Assistant,
            content: completion.text.clone(),
            run_id: Some(request.run_id.clone()),
            tool_call_id: None,
            origin: None,
        }),
        Event::AgentRunFinished(AgentRunFinished {
            run_id: request.run_id.clone(),
            session_key: request.session_key.clone(),
            status: RunStatus::Completed,
        }),
    ];
    if let Err(message) = record(gateway, request, finished).await {
        outcome.error = Some(("unknown".to_owned(), message));
        outcome.ended_at_ms = now_ms();
        events.failed(&outcome);
        return outcome;
    }
    outcome.ok = true;
    outcome.text = completion.text;
    add_usage(&mut outcome.usage, &completion.usage);
    outcome.cost_micro_usd += cost;
    outcome.stop_reason = completion.finish_reason;
    outcome.ended_at_ms = now_ms();
    events.completed(&outcome);
    outcome
}

/// Records a run aborted between model calls (during or between tool
/// calls: the calls already have their records), and tells clients.
pub(super) async fn aborted_between(
    gateway: &Gateway,
    request: &RunRequest,
    mut outcome: RunOutcome,
    events: &mut Events<'_>,
    reason: String,
) -> RunOutcome {
    let _ = record(
        gateway,
        request,
        vec![Event::AgentRunFinished(AgentRunFinished {
            run_id: request.run_id.clone(),
            session_key: request.session_key.clone(),
            status: RunStatus::Aborted {
                reason: reason.clone(),
            },
        })],
    )
    .await;
    outcome.error = Some(("aborted".to_owned(), reason));
    outcome.stop_reason = "aborted".to_owned();
    outcome.ended_at_ms = now_ms();
    events.aborted(&outcome);
    outcome
}

/// Records an aborted call and run, keeping the reply as far as it came
/// (what the user saw), and tells clients.
#[allow(clippy::too_many_arguments)]
pub(super) async fn abort(
    gateway: &Gateway,
    request: &RunRequest,
    mut outcome: RunOutcome,
    events: &mut Events<'_>,
    call_id: String,
    resolved: &Resolved,
    latency_ms: u64,
    reason: String,
) -> RunOutcome {
    let partial = events.text().to_owned();
    let mut batch = vec![Event::LlmCallCompleted(LlmCallCompleted {
        call_id,
        run_id: request.run_id.clone(),
        session_key: request.session_key.clone(),
        provider: resolved.provider.clone(),
        model: resolved.model.clone(),
        outcome: LlmOutcome::Failed {
            class: "aborted".to_owned(),
            message: reason.clone(),
            http_status: None,
        },
        usage: Usage::default(),
        cost_micro_usd: 0,
        latency_ms,
    })];
    if !partial.is_empty() {
        batch.push(Event::MessageAppended(MessageAppended {
            session_key: request.session_key.clone(),
            message_id: uuid::Uuid::new_v4().to_string(),
            role: Role::Assistant,
            content: partial.clone(),
            run_id: Some(request.run_id.clone()),
            tool_call_id: None,
            origin: None,
        }));
    }
    batch.push(Event::AgentRunFinished(AgentRunFinished {
        run_id: request.run_id.clone(),
        session_key: request.session_key.clone(),
        status: RunStatus::Aborted {
            reason: reason.clone(),
        },
    }));
    let _ = record(gateway, request, batch).await;
    outcome.text = partial;
    outcome.error = Some(("aborted".to_owned(), reason));
    outcome.stop_reason = "aborted".to_owned();
    outcome.ended_at_ms = now_ms();
    events.aborted(&outcome);
    outcome
}

/// Records the failure (after `before`) and tells clients.
pub(super) async fn fail(
    gateway: &Gateway,
    request: &RunRequest,
    mut outcome: RunOutcome,
    events: &mut Events<'_>,
    kind: &str,
    message: String,
    mut before: Vec<Event>,
) -> RunOutcome {
    before.push(Event::AgentRunFinished(AgentRunFinished {
        run_id: request.run_id.clone(),
        session_key: request.session_key.clone(),
        status: RunStatus::Failed {
            error_kind: kind.to_owned(),
            message: message.clone(),
        },
    }));
    let _ = record(gateway, request, before).await;
    tracing::warn!(
        subsystem = "agent",
        run = request.run_id.as_str(),
        session = request.session_key.as_str(),
        "run failed ({kind}): {message}"
    );
    outcome.error = Some((kind.to_owned(), message));
    outcome.ended_at_ms = now_ms();
    events.failed(&outcome);
    outcome
}
