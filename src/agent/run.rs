//! One run: the user's message in, the model's reply out, every step on
//! record.
//!
//! The order of records is what replay relies on: `message.appended` (the
//! user's text) and `agent.run.started`, then `llm.call.requested` with the
//! exact body sent, then `llm.call.completed` with every stream chunk as it
//! came (or the classified failure), the reply as `message.appended`, and
//! `agent.run.finished`. Clients see the reply stream in as `agent` and
//! `chat` events meanwhile; those are not state and are not recorded: the
//! recorded chunks hold the same text.
//!
//! The tool loop: a reply that asks for tools is recorded as
//! `llm.call.completed`, its text (if any) as `message.appended`, and one
//! `tool.call.requested` per call, in one batch. Each call then runs in
//! order through the registry: `tool.call.started`, the work (bounded by
//! the tool timeout, stopped by an abort), `tool.call.finished` with the
//! outcome. The results go back to the model in the next
//! `llm.call.requested`, until a reply asks for no tool or
//! `TOOL_ROUNDS_MAX` rounds have run. The transcript holds the calls and
//! results (by seq), so the next turn and a replay see the same rounds.
//! Messages steered into the run (`chat.send` with `queueMode: "steer"`)
//! are recorded as user messages at the boundary after a tool round, in
//! the same batch as the next `llm.call.requested`, which carries them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clawback_events::Actor;
use clawback_events::event::{
    AgentRunStarted, Event, LlmCallCompleted, LlmCallRequested, LlmOutcome, MessageAppended,
    ModelCooldown, Role, SessionCreated, Usage,
};
use serde_json::{Value, json};

use super::Runtime;
use super::client_events::Events;
use super::context::{context, thinking_level};
use super::context_size::context_tokens;
use super::models::{Resolved, cost_micro_usd, resolve};
use super::provider::{Completion, Message, ToolSpec};
use super::run_end::{abort, aborted_between, complete, fail};
use super::tool_round::{Stop, tool_round};
use crate::gateway::Gateway;

/// Model replies that may ask for tools in one run. OpenClaw sets no hard
/// cap (its optional loop detector trips its circuit breaker at 30
/// repeated calls); clawback bounds every loop, and 30 rounds is far past
/// what a healthy run needs.
pub const TOOL_ROUNDS_MAX: u32 = 30;

pub struct RunRequest {
    pub run_id: String,
    pub session_key: String,
    pub agent_id: String,
    pub message: String,
    /// `agent`, `chat.send`, ...
    pub trigger: &'static str,
    pub actor: Actor,
    pub model_override: Option<String>,
    /// A thinking level for this run (else the session's, else the config's).
    pub thinking: Option<String>,
    pub extra_system_prompt: Option<String>,
    pub timeout: Duration,
    /// The connection that receives the run's tool events: the one that
    /// started it, if it declared `caps: ["tool-events"]`.
    pub tool_events_to: Option<String>,
    /// A client's sampling settings (the OpenAI-compatible endpoints'),
    /// applied to every model call of the run.
    pub sampling: super::sampling::Sampling,
    /// The chat message this turn answers (channel, sender, platform id),
    /// recorded on the user's message.
    pub origin: Option<clawback_events::event::MessageOrigin>,
    /// The user's message is already in the session's transcript, as the
    /// entry at this seq (a fork's first turn answering its source's next
    /// message, by reference): the run neither records it again nor adds
    /// it to the context a second time. `message` is its text.
    pub message_seq: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct RunOutcome {
    pub run_id: String,
    pub session_key: String,
    pub agent_id: String,
    pub session_id: String,
    pub ok: bool,
    pub text: String,
    /// `(kind, message)` of a failure.
    pub error: Option<(String, String)>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub usage: Usage,
    pub cost_micro_usd: u64,
    pub stop_reason: String,
    pub started_at_ms: i64,
    pub ended_at_ms: i64,
}

pub async fn execute(
    gateway: &Arc<Gateway>,
    runtime: &Runtime,
    request: RunRequest,
    mut aborted: tokio::sync::watch::Receiver<Option<String>>,
) -> RunOutcome {
    let started_at_ms = now_ms();
    let config = gateway.config();
    let mut request = request;
    if request.model_override.is_none() {
        // A model chosen for the session (sessions.patch) applies to its runs.
        request.model_override = gateway
            .state
            .read()
            .expect("state lock")
            .sessions
            .by_key
            .get(&request.session_key)
            .and_then(|session| session.settings.get("model"))
            .and_then(|value| serde_json::from_str::<String>(value).ok());
    }
    // The models to try, in order, without those cooling down after a
    // rate limit (unless all are: then the first, and its answer decides).
    let chain = resolve(
        &config,
        &request.agent_id,
        request.model_override.as_deref(),
        gateway,
    )
    .map(|chain| runtime.available(chain));
    let mut outcome = RunOutcome {
        run_id: request.run_id.clone(),
        session_key: request.session_key.clone(),
        agent_id: request.agent_id.clone(),
        session_id: String::new(),
        ok: false,
        text: String::new(),
        error: None,
        provider: None,
        model: None,
        usage: Usage::default(),
        cost_micro_usd: 0,
        stop_reason: String::new(),
        started_at_ms,
        ended_at_ms: started_at_ms,
    };
    let mut events = Events::new(gateway, &request);
    // Every failure ends the run one way (`fail`: recorded, logged, told);
    // this returns from `execute` with it.
    macro_rules! return_failed {
        ($kind:expr, $message:expr, $before:expr) => {
            return fail(
                gateway,
                &request,
                outcome,
                &mut events,
                $kind,
                $message,
                $before,
            )
            .await
        };
    }
    let mut messages = context(gateway, &request);
    if request.message_seq.is_none() {
        messages.push(Message::User(request.message.clone()));
    }
    let mut compacted_once = false;
    let tools = runtime.tools.specs();
    // The context guard: a context that would not fit the first model's
    // window (the last reply's reported usage plus an estimate of what
    // came after, as OpenClaw counts) is compacted before the call instead
    // of after the provider refuses it.
    let window = chain
        .as_ref()
        .ok()
        .and_then(|chain| chain.first())
        .and_then(|resolved| resolved.context_window);
    if let Some(window) = window
        && context_tokens(gateway, &request, &messages) > window.saturating_mul(9) / 10
    {
        compacted_once = true;
        if let Ok(result) =
            super::compact::compact(gateway, runtime, &request.session_key, &request.actor).await
            && result.compacted
        {
            messages = context(gateway, &request);
            if request.message_seq.is_none() {
                messages.push(Message::User(request.message.clone()));
            }
        }
    }

    // The user's message, the start and the exact first request sent are
    // one durable batch (one sync instead of two).
    let mut attempt = 1u32;
    let first = chain.as_ref().ok().and_then(|chain| chain.first());
    let thinking = thinking_level(gateway, &config, &request);
    let mut call = first.map(|resolved| {
        Call::new(
            resolved,
            &messages,
            attempt,
            (thinking.as_deref(), &request.sampling),
            &tools,
        )
    });
    let mut batch = Vec::with_capacity(3);
    if request.message_seq.is_none() {
        batch.push(Event::MessageAppended(MessageAppended {
            session_key: request.session_key.clone(),
            message_id: uuid::Uuid::new_v4().to_string(),
            role: Role::User,
            content: request.message.clone(),
            run_id: Some(request.run_id.clone()),
            tool_call_id: None,
            origin: request.origin.clone(),
        }));
    }
    batch.push(Event::AgentRunStarted(AgentRunStarted {
        run_id: request.run_id.clone(),
        session_key: request.session_key.clone(),
        agent_id: request.agent_id.clone(),
        model: first.map(Resolved::name),
        trigger: request.trigger.to_owned(),
    }));
    if let (Some(resolved), Some(call)) = (first, &call) {
        batch.push(call.requested(&request, resolved));
    }
    let opening = Opening {
        session_key: &request.session_key,
        agent_id: &request.agent_id,
        actor: &request.actor,
        run_id: &request.run_id,
        origin: request.trigger,
    };
    outcome.session_id = match open_session(gateway, opening, batch).await {
        Ok(session_id) => session_id,
        Err(message) => {
            outcome.error = Some(("unknown".to_owned(), message));
            outcome.ended_at_ms = now_ms();
            events.failed(&outcome);
            return outcome;
        }
    };
    events.started(started_at_ms);
    let chain = match chain {
        Ok(chain) => chain,
        Err(message) => {
            return_failed!("config", message, Vec::new());
        }
    };
    let client = match runtime.client() {
        Ok(client) => client,
        Err(message) => {
            return_failed!("unknown", message, Vec::new());
        }
    };

    let mut index = 0;
    let mut rounds = 0u32;
    loop {
        let resolved = &chain[index];
        let current = call.take().expect("a call is prepared before each attempt");
        outcome.provider = Some(resolved.provider.clone());
        outcome.model = Some(resolved.model.clone());
        events.model(&resolved.provider, &resolved.model);
        let call_started = Instant::now();
        // An abort drops the call (closing the connection to the provider).
        let result = {
            let events = &mut events;
            let stream = async {
                // Where the call goes (for Copilot: after the token exchange;
                // for an OAuth profile: with its access token, refreshed).
                let target = super::oauth::call_target(
                    gateway,
                    runtime,
                    client,
                    (&request.actor, &request.run_id),
                    resolved,
                    &current.body,
                )
                .await?;
                resolved
                    .api
                    .stream(
                        client,
                        &target.endpoint(request.timeout),
                        &resolved.model,
                        &current.body,
                        |piece| events.delta(piece),
                    )
                    .await
            };
            tokio::select! {
                result = stream => Some(result),
                _ = aborted.wait_for(Option::is_some) => None,
            }
        };
        let latency_ms = call_started.elapsed().as_millis() as u64;
        let Some(result) = result else {
            let reason = aborted.borrow().clone().unwrap_or_default();
            events.flush();
            return abort(
                gateway,
                &request,
                outcome,
                &mut events,
                current.call_id,
                resolved,
                latency_ms,
                reason,
            )
            .await;
        };
        let failure = match result {
            Ok(completion) if completion.tool_calls.is_empty() => {
                return complete(
                    gateway,
                    &request,
                    outcome,
                    &mut events,
                    current.call_id,
                    resolved,
                    completion,
                    latency_ms,
                )
                .await;
            }
            Ok(completion) => {
                rounds += 1;
                if rounds > TOOL_ROUNDS_MAX {
                    let recorded = completed_call(
                        &request,
                        current.call_id,
                        resolved,
                        &completion,
                        latency_ms,
                    );
                    return_failed!(
                        "tool_rounds",
                        format!(
                            "the model still asked for tools after {TOOL_ROUNDS_MAX} rounds; \
                             the run stops at that limit"
                        ),
                        vec![recorded]
                    );
                }
                let round = tool_round(
                    gateway,
                    runtime,
                    &request,
                    &mut outcome,
                    &mut events,
                    &mut aborted,
                    (current.call_id, resolved, latency_ms),
                    completion,
                    &mut messages,
                )
                .await;
                match round {
                    Ok(()) => {}
                    Err(Stop::Aborted(reason)) => {
                        return aborted_between(gateway, &request, outcome, &mut events, reason)
                            .await;
                    }
                    Err(Stop::Failed(message)) => {
                        return_failed!("unknown", message, Vec::new());
                    }
                }
                // A model-call boundary: messages steered into this run
                // join it here, after the tool results, as user messages
                // (recorded where the model sees them).
                let mut batch = Vec::new();
                for steered in runtime.take_steered(&request.session_key, &request.run_id) {
                    batch.push(Event::MessageAppended(MessageAppended {
                        session_key: request.session_key.clone(),
                        message_id: uuid::Uuid::new_v4().to_string(),
                        role: Role::User,
                        content: steered.message.clone(),
                        run_id: Some(request.run_id.clone()),
                        tool_call_id: None,
                        origin: None,
                    }));
                    messages.push(Message::User(steered.message));
                }
                // The results go back to the model that asked for them; a
                // failure from here falls back down the chain as usual.
                let prepared = Call::new(
                    resolved,
                    &messages,
                    1,
                    (thinking.as_deref(), &request.sampling),
                    &tools,
                );
                batch.push(prepared.requested(&request, resolved));
                if let Err(message) = record(gateway, &request, batch).await {
                    return_failed!("unknown", message, Vec::new());
                }
                events.next_reply();
                call = Some(prepared);
                continue;
            }
            Err(failure) => failure,
        };
        // A refused Copilot token is exchanged again next time.
        if failure.class == "auth" {
            runtime.copilot.forget(resolved);
        }
        let mut records = vec![Event::LlmCallCompleted(LlmCallCompleted {
            call_id: current.call_id,
            run_id: request.run_id.clone(),
            session_key: request.session_key.clone(),
            provider: resolved.provider.clone(),
            model: resolved.model.clone(),
            outcome: LlmOutcome::Failed {
                class: failure.class.to_owned(),
                message: failure.message.clone(),
                http_status: failure.http_status,
            },
            usage: Usage::default(),
            cost_micro_usd: 0,
            latency_ms,
        })];
        if failure.class == "rate_limit" {
            let until_ms = runtime.cool_down(&resolved.cooldown_key());
            records.push(Event::ModelCooldown(ModelCooldown {
                provider: resolved.provider.clone(),
                model: resolved.model.clone(),
                run_id: request.run_id.clone(),
                class: failure.class.to_owned(),
                until_ms,
            }));
        }
        // A context overflow compacts the session and retries once.
        if failure.class == "context_overflow" && !compacted_once {
            compacted_once = true;
            if let Err(message) = record(gateway, &request, std::mem::take(&mut records)).await {
                return_failed!("unknown", message, records);
            }
            let compacted =
                super::compact::compact(gateway, runtime, &request.session_key, &request.actor)
                    .await;
            if let Ok(result) = &compacted
                && result.compacted
            {
                // The transcript now holds this run's message: the context
                // is rebuilt from it, summary first.
                messages = context(gateway, &request);
                attempt += 1;
                let prepared = Call::new(
                    resolved,
                    &messages,
                    attempt,
                    (thinking.as_deref(), &request.sampling),
                    &tools,
                );
                if let Err(message) = record(
                    gateway,
                    &request,
                    vec![prepared.requested(&request, resolved)],
                )
                .await
                {
                    return_failed!("unknown", message, Vec::new());
                }
                events.restart_text();
                call = Some(prepared);
                continue;
            }
            let why = match compacted {
                Ok(result) => result.reason.unwrap_or_default(),
                Err(message) => message,
            };
            return_failed!(
                "context_overflow",
                format!("{}; compaction did not help: {why}", failure.message),
                Vec::new()
            );
        }
        // Billing and a context overflow that compaction did not cure do
        // not improve on another model; the others move on to the next
        // model of the chain.
        let next = match failure.class {
            "billing" | "context_overflow" => None,
            _ => chain[index + 1..]
                .iter()
                .position(|candidate| !runtime.cooling(&candidate.cooldown_key()))
                .map(|offset| index + 1 + offset),
        };
        let Some(next) = next else {
            return_failed!(failure.class, failure.message, records);
        };
        attempt += 1;
        let prepared = Call::new(
            &chain[next],
            &messages,
            attempt,
            (thinking.as_deref(), &request.sampling),
            &tools,
        );
        records.push(prepared.requested(&request, &chain[next]));
        if let Err(message) = record(gateway, &request, records).await {
            return_failed!("unknown", message, Vec::new());
        }
        tracing::info!(
            subsystem = "agent",
            run = request.run_id.as_str(),
            "{} failed ({}); falling back to {}",
            resolved.name(),
            failure.class,
            chain[next].name()
        );
        events.fallback(resolved, failure.class);
        events.restart_text();
        call = Some(prepared);
        index = next;
    }
}

/// One prepared model call: its id, attempt number and exact body.
struct Call {
    call_id: String,
    attempt: u32,
    body: Value,
}

impl Call {
    fn new(
        resolved: &Resolved,
        messages: &[Message],
        attempt: u32,
        (thinking, sampling): (Option<&str>, &super::sampling::Sampling),
        tools: &[ToolSpec],
    ) -> Call {
        let thinking = thinking.filter(|_| resolved.reasoning);
        let mut body = resolved.api.request_body(
            &resolved.model,
            messages,
            resolved.max_tokens,
            thinking,
            tools,
        );
        // What the format cannot carry was named to the client already.
        let _unapplied = sampling.apply(resolved.api, &mut body, thinking.is_some());
        // A Claude Pro/Max sign-in is refused without Claude Code's
        // identity; it is part of the body, so it is on record too.
        if resolved.claude_oauth() {
            super::anthropic::claude_oauth_identity(&mut body);
        }
        Call {
            call_id: uuid::Uuid::new_v4().to_string(),
            attempt,
            body,
        }
    }

    fn requested(&self, request: &RunRequest, resolved: &Resolved) -> Event {
        Event::LlmCallRequested(LlmCallRequested {
            call_id: self.call_id.clone(),
            run_id: request.run_id.clone(),
            session_key: request.session_key.clone(),
            provider: resolved.provider.clone(),
            model: resolved.model.clone(),
            attempt: self.attempt,
            request: self.body.to_string(),
        })
    }
}

/// The record of a successful call: the reply text, the tool calls it
/// asked for, and every chunk as received.
pub(super) fn completed_call(
    request: &RunRequest,
    call_id: String,
    resolved: &Resolved,
    completion: &Completion,
    latency_ms: u64,
) -> Event {
    let tool_calls: Vec<Value> = completion
        .tool_calls
        .iter()
        .map(|call| {
            let mut recorded =
                json!({"id": call.id, "name": call.name, "arguments": call.arguments});
            // A signature later turns send back is part of the history.
            if let (Some(signature), Some(_)) = (&call.signature, &call.signed_by) {
                recorded["signature"] = json!(signature);
            }
            recorded
        })
        .collect();
    let mut response = json!({
        "text": completion.text,
        "finishReason": completion.finish_reason,
        "chunks": completion.chunks,
        "chunksDropped": completion.chunks_dropped,
    });
    if !tool_calls.is_empty() {
        response["toolCalls"] = json!(tool_calls);
    }
    Event::LlmCallCompleted(LlmCallCompleted {
        call_id,
        run_id: request.run_id.clone(),
        session_key: request.session_key.clone(),
        provider: resolved.provider.clone(),
        model: resolved.model.clone(),
        outcome: LlmOutcome::Ok {
            response: response.to_string(),
            stop_reason: completion.finish_reason.clone(),
        },
        usage: completion.usage,
        cost_micro_usd: cost_micro_usd(resolved.cost.as_ref(), &completion.usage),
        latency_ms,
    })
}

pub(super) fn add_usage(total: &mut Usage, more: &Usage) {
    total.input_tokens += more.input_tokens;
    total.output_tokens += more.output_tokens;
    total.cache_read_tokens += more.cache_read_tokens;
    total.cache_write_tokens += more.cache_write_tokens;
}

/// Whose first batch `open_session` appends: the run, its session and
/// agent, who started it, and the origin a new session records.
pub(crate) struct Opening<'a> {
    pub session_key: &'a str,
    pub agent_id: &'a str,
    pub actor: &'a Actor,
    pub run_id: &'a str,
    pub origin: &'a str,
}

/// Appends a run's first batch, creating the session first if this is its
/// first turn; the session's id. Only creation takes the gateway's write
/// lock (so a concurrent `sessions.patch` cannot create the same session
/// too); turns of existing sessions, already ordered by their lane, do not
/// wait for it. Agent runs and `/tools/invoke`'s one-call runs open here.
pub(crate) async fn open_session(
    gateway: &Gateway,
    opening: Opening<'_>,
    batch: Vec<Event>,
) -> Result<String, String> {
    let append = |events| {
        super::compact::append(
            gateway,
            opening.session_key,
            opening.actor,
            opening.run_id,
            events,
        )
    };
    let existing = || {
        gateway
            .state
            .read()
            .expect("state lock")
            .sessions
            .by_key
            .get(opening.session_key)
            .map(|session| session.session_id.clone())
    };
    if let Some(session_id) = existing() {
        return append(batch).await.map(|()| session_id);
    }
    let _write = gateway.writes.lock().await;
    if let Some(session_id) = existing() {
        return append(batch).await.map(|()| session_id);
    }
    let session_id = uuid::Uuid::new_v4().to_string();
    let mut events = vec![Event::SessionCreated(SessionCreated {
        session_key: opening.session_key.to_owned(),
        session_id: session_id.clone(),
        agent_id: opening.agent_id.to_owned(),
        label: None,
        origin: Some(opening.origin.to_owned()),
    })];
    events.extend(batch);
    append(events).await.map(|()| session_id)
}

pub(super) async fn record(
    gateway: &Gateway,
    request: &RunRequest,
    events: Vec<Event>,
) -> Result<(), String> {
    super::compact::append(
        gateway,
        &request.session_key,
        &request.actor,
        &request.run_id,
        events,
    )
    .await
}

pub(super) fn now_ms() -> i64 {
    crate::gateway::protocol::methods::now_ms()
}
