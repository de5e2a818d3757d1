//! One tool round of a run: the reply that asked for tools recorded with
//! its calls, each call run through the registry (bounded by the tool
//! timeout, stopped by an abort) between its `tool.call.started` and
//! `tool.call.finished`, and the round added to the messages for the next
//! model call.
//!
//! Why apart from `run`: the run loop decides which model to call and how
//! the run ends; this is what happens between two model calls.

use std::sync::Arc;
use std::time::Instant;

use clawback_events::event::{
    ApprovalRequested, Event, MessageAppended, Role, ToolCallFinished, ToolCallRequested,
    ToolCallStarted, ToolOutcome,
};
use serde_json::{Value, json};

use super::Runtime;
use super::client_events::Events;
use super::models::{Resolved, cost_micro_usd};
use super::provider::{Completion, Message, ToolResult};
use super::run::{RunOutcome, RunRequest, add_usage, completed_call, record};
use super::tools::{Approver, ApproverFuture, outcome_text};
use crate::gateway::Gateway;
use crate::gateway::protocol::methods::approvals;

/// A run's way to ask a person: approval requests and grant uses are
/// recorded on the session's stream, by the run's actor, correlated to the
/// run, so the session's timeline shows them between the call's
/// `tool.call.started` and `tool.call.finished`.
pub(crate) struct RunApprover {
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) session_key: String,
    pub(crate) actor: clawback_events::Actor,
    pub(crate) run_id: String,
}

impl Approver for RunApprover {
    fn ask(
        &self,
        request: ApprovalRequested,
        timeout: std::time::Duration,
    ) -> ApproverFuture<Result<Option<String>, String>> {
        let gateway = self.gateway.clone();
        let (stream, actor, run_id) = (
            self.session_key.clone(),
            self.actor.clone(),
            self.run_id.clone(),
        );
        Box::pin(async move {
            approvals::ask(&gateway, (&stream, &actor, &run_id), request, timeout).await
        })
    }

    fn record(&self, event: Event) -> ApproverFuture<Result<(), String>> {
        let gateway = self.gateway.clone();
        let (stream, actor, run_id) = (
            self.session_key.clone(),
            self.actor.clone(),
            self.run_id.clone(),
        );
        Box::pin(async move {
            super::compact::append(&gateway, &stream, &actor, &run_id, vec![event]).await
        })
    }
}

impl super::tools::Host for RunApprover {
    fn call(
        &self,
        method: &'static str,
        params: serde_json::Value,
        wait: Option<std::time::Duration>,
    ) -> ApproverFuture<Result<serde_json::Value, String>> {
        let gateway = self.gateway.clone();
        let actor = self.actor.clone();
        // A caller of its own, named after the run, so the log shows which
        // run's tool made the request.
        let caller = crate::gateway::protocol::methods::Caller {
            conn_id: format!("tool:{}", self.run_id),
            device_id: None,
            scopes: Vec::new(),
            tool_events: false,
        };
        Box::pin(async move {
            let request_id = uuid::Uuid::new_v4().to_string();
            let (result, follow_up) = crate::gateway::protocol::request::recorded(
                &gateway,
                &caller,
                actor,
                &request_id,
                method,
                Some(&params),
            )
            .await;
            let first = result.map_err(|error| error.message)?;
            match (wait, follow_up) {
                (Some(limit), Some(follow_up)) => {
                    match tokio::time::timeout(limit, follow_up).await {
                        Ok(last) => Ok(last),
                        Err(_) => Ok(first),
                    }
                }
                _ => Ok(first),
            }
        })
    }
}

/// Why a tool round ended the run.
pub(super) enum Stop {
    Aborted(String),
    Failed(String),
}

/// One tool round: records the reply that asked for tools and its calls,
/// runs each call through the registry (bounded, abortable), records and
/// streams each result, and adds the round to `messages` for the next call.
#[allow(clippy::too_many_arguments)]
pub(super) async fn tool_round(
    gateway: &Arc<Gateway>,
    runtime: &Runtime,
    request: &RunRequest,
    outcome: &mut RunOutcome,
    events: &mut Events<'_>,
    aborted: &mut tokio::sync::watch::Receiver<Option<String>>,
    (call_id, resolved, latency_ms): (String, &Resolved, u64),
    mut completion: Completion,
    messages: &mut Vec<Message>,
) -> Result<(), Stop> {
    events.flush();
    add_usage(&mut outcome.usage, &completion.usage);
    outcome.cost_micro_usd += cost_micro_usd(resolved.cost.as_ref(), &completion.usage);
    let mut calls = completion.tool_calls.clone();
    // Ids must be unique within a reply for results to find their call.
    let mut seen = std::collections::BTreeSet::new();
    for call in &mut calls {
        if !seen.insert(call.id.clone()) {
            call.id = super::provider::call_id(None);
            seen.insert(call.id.clone());
        }
    }
    // The record names the calls by the ids they run under, so a later
    // turn finds each call's signature by its id.
    completion.tool_calls.clone_from(&calls);
    let mut batch = vec![completed_call(
        request,
        call_id,
        resolved,
        &completion,
        latency_ms,
    )];
    if !completion.text.is_empty() {
        batch.push(Event::MessageAppended(MessageAppended {
            session_key: request.session_key.clone(),
            message_id: uuid::Uuid::new_v4().to_string(),
            role: Role::Assistant,
            content: completion.text.clone(),
            run_id: Some(request.run_id.clone()),
            tool_call_id: None,
            origin: None,
        }));
    }
    batch.extend(calls.iter().map(|call| {
        Event::ToolCallRequested(ToolCallRequested {
            tool_call_id: call.id.clone(),
            run_id: request.run_id.clone(),
            session_key: request.session_key.clone(),
            tool: call.name.clone(),
            arguments: call.arguments.clone(),
        })
    }));
    record(gateway, request, batch)
        .await
        .map_err(Stop::Failed)?;

    let config = gateway.config();
    let host = Arc::new(RunApprover {
        gateway: gateway.clone(),
        session_key: request.session_key.clone(),
        actor: request.actor.clone(),
        run_id: request.run_id.clone(),
    });
    let context = Arc::new(super::tools::Context {
        workspace: super::workspace::dir(&config, &gateway.state_root, &request.agent_id),
        agent_id: request.agent_id.clone(),
        session_key: request.session_key.clone(),
        state: gateway.state.clone(),
        tools_config: config.tools.clone(),
        approver: host.clone(),
        host,
    });
    let mut results = Vec::with_capacity(calls.len());
    for call in &calls {
        // An abort between calls leaves the rest unstarted: the run's end
        // closes them, and the next turn's context leaves them out.
        if let Some(reason) = aborted.borrow().clone() {
            return Err(Stop::Aborted(reason));
        }
        record(
            gateway,
            request,
            vec![Event::ToolCallStarted(ToolCallStarted {
                tool_call_id: call.id.clone(),
                session_key: request.session_key.clone(),
            })],
        )
        .await
        .map_err(Stop::Failed)?;
        let args = serde_json::from_str::<Value>(&call.arguments)
            .unwrap_or_else(|_| json!(call.arguments));
        events.tool_start(&call.name, &call.id, args);
        let started = Instant::now();
        let work = runtime
            .tools
            .call(context.clone(), &call.name, &call.arguments);
        let (tool_outcome, stopped) = tokio::select! {
            tool_outcome = work => (tool_outcome, None),
            changed = aborted.wait_for(Option::is_some) => {
                let reason = changed
                    .map(|value| value.clone().unwrap_or_default())
                    .unwrap_or_default();
                (ToolOutcome::Error { message: format!("aborted: {reason}") }, Some(reason))
            }
        };
        let (text, is_error) = outcome_text(&tool_outcome);
        record(
            gateway,
            request,
            vec![Event::ToolCallFinished(ToolCallFinished {
                tool_call_id: call.id.clone(),
                session_key: request.session_key.clone(),
                outcome: tool_outcome,
                duration_ms: started.elapsed().as_millis() as u64,
            })],
        )
        .await
        .map_err(Stop::Failed)?;
        events.tool_result(&call.name, &call.id, &text, is_error);
        if let Some(reason) = stopped {
            return Err(Stop::Aborted(reason));
        }
        results.push(Message::Tool(ToolResult {
            call_id: call.id.clone(),
            name: call.name.clone(),
            output: text,
            is_error,
        }));
    }
    messages.push(Message::Assistant {
        text: completion.text,
        tool_calls: calls,
    });
    messages.extend(results);
    Ok(())
}
