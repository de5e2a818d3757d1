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

use std::sync::Arc;
use std::time::{Duration, Instant};

use clawback_events::Actor;
use clawback_events::event::{
    AgentRunFinished, AgentRunStarted, Event, LlmCallCompleted, LlmCallRequested, LlmOutcome,
    MessageAppended, ModelCooldown, Role, RunStatus, SessionCreated, Usage,
};
use serde_json::{Value, json};

use super::Runtime;
use super::provider::{Api, Endpoint};
use crate::config::model::ConfigFile;
use crate::gateway::Gateway;
use crate::gateway::protocol::Push;

/// Chat deltas are coalesced: at most one push per window per run.
const DELTA_COALESCE: Duration = Duration::from_millis(150);
/// Transcript messages sent as context, newest last. A token-based context
/// guard and compaction come with the rest of issue 4.
const CONTEXT_MESSAGES_MAX: usize = 200;
const SYSTEM_PROMPT: &str = "You are a helpful personal assistant.";

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

/// A model a run may use, resolved from the config.
pub struct Resolved {
    pub api: Api,
    max_tokens: Option<u64>,
    /// The model reasons (its definition says `reasoning: true`): only then
    /// is a thinking level sent.
    reasoning: bool,
    provider: String,
    model: String,
    base_url: String,
    api_key: Option<String>,
    headers: std::collections::BTreeMap<String, String>,
    cost: Option<crate::config::model::ModelCost>,
    /// The model's context window in tokens, when its definition says.
    context_window: Option<u64>,
}

impl Resolved {
    /// `provider/model`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.provider, self.model)
    }

    pub fn provider(&self) -> &str {
        &self.provider
    }

    pub fn model_id(&self) -> &str {
        &self.model
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn api_key(&self) -> Option<&str> {
        self.api_key.as_deref()
    }

    pub fn headers(&self) -> &std::collections::BTreeMap<String, String> {
        &self.headers
    }
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
    let mut messages = context(gateway, &request);
    messages.push(("user", request.message.clone()));
    let mut compacted_once = false;
    // The context guard: a context that would not fit the first model's
    // window (by a conservative estimate) is compacted before the call
    // instead of after the provider refuses it.
    let window = chain
        .as_ref()
        .ok()
        .and_then(|chain| chain.first())
        .and_then(|resolved| resolved.context_window);
    if let Some(window) = window
        && estimate_tokens(&messages) > window.saturating_mul(9) / 10
    {
        compacted_once = true;
        if let Ok(result) =
            super::compact::compact(gateway, runtime, &request.session_key, &request.actor).await
            && result.compacted
        {
            messages = context(gateway, &request);
            messages.push(("user", request.message.clone()));
        }
    }

    // The user's message, the start and the exact first request sent are
    // one durable batch (one sync instead of two).
    let mut attempt = 1u32;
    let first = chain.as_ref().ok().and_then(|chain| chain.first());
    let thinking = thinking_level(gateway, &config, &request);
    let mut call =
        first.map(|resolved| Call::new(resolved, &messages, attempt, thinking.as_deref()));
    let mut batch = vec![
        Event::MessageAppended(MessageAppended {
            session_key: request.session_key.clone(),
            message_id: uuid::Uuid::new_v4().to_string(),
            role: Role::User,
            content: request.message.clone(),
            run_id: Some(request.run_id.clone()),
            tool_call_id: None,
            origin: None,
        }),
        Event::AgentRunStarted(AgentRunStarted {
            run_id: request.run_id.clone(),
            session_key: request.session_key.clone(),
            agent_id: request.agent_id.clone(),
            model: first.map(Resolved::name),
            trigger: request.trigger.to_owned(),
        }),
    ];
    if let (Some(resolved), Some(call)) = (first, &call) {
        batch.push(call.requested(&request, resolved));
    }
    outcome.session_id = match open_session(gateway, &request, batch).await {
        Ok(session_id) => session_id,
        Err(message) => {
            outcome.error = Some(("unknown".to_owned(), message));
            outcome.ended_at_ms = now_ms();
            events.failed(&outcome);
            return outcome;
        }
    };
    events.started(started_at_ms, &outcome);
    let chain = match chain {
        Ok(chain) => chain,
        Err(message) => {
            return fail(
                gateway,
                &request,
                outcome,
                &mut events,
                "config",
                message,
                Vec::new(),
            )
            .await;
        }
    };
    let client = match runtime.client() {
        Ok(client) => client,
        Err(message) => {
            return fail(
                gateway,
                &request,
                outcome,
                &mut events,
                "unknown",
                message,
                Vec::new(),
            )
            .await;
        }
    };

    let mut index = 0;
    loop {
        let resolved = &chain[index];
        let current = call.take().expect("a call is prepared before each attempt");
        outcome.provider = Some(resolved.provider.clone());
        outcome.model = Some(resolved.model.clone());
        events.model(&resolved.provider, &resolved.model);
        let endpoint = Endpoint {
            base_url: &resolved.base_url,
            api_key: resolved.api_key.as_deref(),
            headers: &resolved.headers,
            timeout: request.timeout,
        };
        let call_started = Instant::now();
        // An abort drops the call (closing the connection to the provider).
        let result = {
            let stream =
                resolved
                    .api
                    .stream(client, &endpoint, &resolved.model, &current.body, |piece| {
                        events.delta(piece)
                    });
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
            Ok(completion) => {
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
            Err(failure) => failure,
        };
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
            let until_ms = runtime.cool_down(&resolved.provider);
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
                return fail(
                    gateway,
                    &request,
                    outcome,
                    &mut events,
                    "unknown",
                    message,
                    records,
                )
                .await;
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
                let prepared = Call::new(resolved, &messages, attempt, thinking.as_deref());
                if let Err(message) = record(
                    gateway,
                    &request,
                    vec![prepared.requested(&request, resolved)],
                )
                .await
                {
                    return fail(
                        gateway,
                        &request,
                        outcome,
                        &mut events,
                        "unknown",
                        message,
                        Vec::new(),
                    )
                    .await;
                }
                events.restart_text();
                call = Some(prepared);
                continue;
            }
            let why = match compacted {
                Ok(result) => result.reason.unwrap_or_default(),
                Err(message) => message,
            };
            return fail(
                gateway,
                &request,
                outcome,
                &mut events,
                "context_overflow",
                format!("{}; compaction did not help: {why}", failure.message),
                Vec::new(),
            )
            .await;
        }
        // Billing and a context overflow that compaction did not cure do
        // not improve on another model; the others move on to the next
        // model of the chain.
        let next = match failure.class {
            "billing" | "context_overflow" => None,
            _ => chain[index + 1..]
                .iter()
                .position(|candidate| !runtime.cooling(&candidate.provider))
                .map(|offset| index + 1 + offset),
        };
        let Some(next) = next else {
            return fail(
                gateway,
                &request,
                outcome,
                &mut events,
                failure.class,
                failure.message,
                records,
            )
            .await;
        };
        attempt += 1;
        let prepared = Call::new(&chain[next], &messages, attempt, thinking.as_deref());
        records.push(prepared.requested(&request, &chain[next]));
        if let Err(message) = record(gateway, &request, records).await {
            return fail(
                gateway,
                &request,
                outcome,
                &mut events,
                "unknown",
                message,
                Vec::new(),
            )
            .await;
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

/// The run's thinking level: the request's, the session's `thinkingLevel`,
/// or the config's `agents.defaults.thinkingDefault`.
fn thinking_level(gateway: &Gateway, config: &ConfigFile, request: &RunRequest) -> Option<String> {
    request
        .thinking
        .clone()
        .or_else(|| {
            gateway
                .state
                .read()
                .expect("state lock")
                .sessions
                .by_key
                .get(&request.session_key)
                .and_then(|session| session.settings.get("thinkingLevel"))
                .and_then(|value| serde_json::from_str::<String>(value).ok())
        })
        .or_else(|| {
            config
                .agents
                .as_ref()
                .and_then(|agents| agents.defaults.as_ref())
                .and_then(|defaults| defaults.thinking_default.clone())
        })
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
        messages: &[(&'static str, String)],
        attempt: u32,
        thinking: Option<&str>,
    ) -> Call {
        let thinking = thinking.filter(|_| resolved.reasoning);
        Call {
            call_id: uuid::Uuid::new_v4().to_string(),
            attempt,
            body: resolved.api.request_body(
                &resolved.model,
                messages,
                resolved.max_tokens,
                thinking,
            ),
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

/// Records a successful call, the reply and the run's end, and tells
/// clients.
#[allow(clippy::too_many_arguments)]
async fn complete(
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
    let response = json!({
        "text": completion.text,
        "finishReason": completion.finish_reason,
        "chunks": completion.chunks,
        "chunksDropped": completion.chunks_dropped,
    });
    let finished = vec![
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
            cost_micro_usd: cost,
            latency_ms,
        }),
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
    outcome.usage = completion.usage;
    outcome.cost_micro_usd = cost;
    outcome.stop_reason = completion.finish_reason;
    outcome.ended_at_ms = now_ms();
    events.completed(&outcome);
    outcome
}

/// Appends a run's first batch, creating the session first if this is its
/// first turn. Only creation takes the gateway's write lock (so a
/// concurrent `sessions.patch` cannot create the same session too); turns
/// of existing sessions, already ordered by their lane, do not wait for it.
async fn open_session(
    gateway: &Gateway,
    request: &RunRequest,
    batch: Vec<Event>,
) -> Result<String, String> {
    let existing = || {
        gateway
            .state
            .read()
            .expect("state lock")
            .sessions
            .by_key
            .get(&request.session_key)
            .map(|session| session.session_id.clone())
    };
    if let Some(session_id) = existing() {
        return record(gateway, request, batch).await.map(|()| session_id);
    }
    let _write = gateway.writes.lock().await;
    if let Some(session_id) = existing() {
        return record(gateway, request, batch).await.map(|()| session_id);
    }
    let session_id = uuid::Uuid::new_v4().to_string();
    let mut events = vec![Event::SessionCreated(SessionCreated {
        session_key: request.session_key.clone(),
        session_id: session_id.clone(),
        agent_id: request.agent_id.clone(),
        label: None,
        origin: Some(request.trigger.to_owned()),
    })];
    events.extend(batch);
    record(gateway, request, events).await.map(|()| session_id)
}

/// Records an aborted call and run, keeping the reply as far as it came
/// (what the user saw), and tells clients.
#[allow(clippy::too_many_arguments)]
async fn abort(
    gateway: &Gateway,
    request: &RunRequest,
    mut outcome: RunOutcome,
    events: &mut Events<'_>,
    call_id: String,
    resolved: &Resolved,
    latency_ms: u64,
    reason: String,
) -> RunOutcome {
    let partial = events.text.clone();
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
async fn fail(
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

async fn record(gateway: &Gateway, request: &RunRequest, events: Vec<Event>) -> Result<(), String> {
    super::compact::append(
        gateway,
        &request.session_key,
        &request.actor,
        &request.run_id,
        events,
    )
    .await
}

/// The models for this run, in the order to try them: the override (or the
/// agent's model, or the default) and then the configured fallbacks, each
/// with its provider's endpoint. A clear message when the first is not
/// usable; a misconfigured fallback is skipped with a warning.
pub fn resolve(
    config: &ConfigFile,
    agent_id: &str,
    model_override: Option<&str>,
    gateway: &Gateway,
) -> Result<Vec<Resolved>, String> {
    let path = gateway.config_file.path().display().to_string();
    let agents = config.agents.as_ref();
    let configured = agents
        .and_then(|agents| agents.entries.get(agent_id))
        .and_then(|entry| entry.model.as_ref())
        .or_else(|| {
            agents
                .and_then(|agents| agents.defaults.as_ref())
                .and_then(|defaults| defaults.model.as_ref())
        });
    let primary = model_override
        .map(str::to_owned)
        .or_else(|| configured.map(|model| model.primary().to_owned()));
    let Some(primary) = primary else {
        return Err(format!(
            "No model is configured. Set agents.defaults.model (\"provider/model\") and the \
             provider under models.providers in {path}, then retry."
        ));
    };
    let fallbacks: Vec<String> = match configured {
        Some(crate::config::model::ModelChoice::Chain { fallbacks, .. }) => fallbacks.clone(),
        _ => Vec::new(),
    };
    let mut chain = vec![resolve_one(config, &primary, &path)?];
    for fallback in fallbacks {
        if chain.iter().any(|resolved| resolved.name() == fallback) {
            continue;
        }
        match resolve_one(config, &fallback, &path) {
            Ok(resolved) => chain.push(resolved),
            Err(message) => tracing::warn!(
                subsystem = "agent",
                "the fallback model {fallback} is skipped: {message}"
            ),
        }
    }
    Ok(chain)
}

fn resolve_one(config: &ConfigFile, choice: &str, path: &str) -> Result<Resolved, String> {
    let Some((provider_id, model_id)) = choice.split_once('/') else {
        return Err(format!(
            "The model \"{choice}\" is not of the form \"provider/model\" ({path})."
        ));
    };
    let provider = config
        .models
        .as_ref()
        .and_then(|models| models.providers.get(provider_id))
        .ok_or_else(|| {
            format!(
                "No provider \"{provider_id}\" is configured: add models.providers.{provider_id} \
                 with its baseUrl (and apiKey) in {path}."
            )
        })?;
    let definition = provider.models.iter().find(|model| model.id == model_id);
    let api_name = definition
        .and_then(|model| model.api.as_deref())
        .or(provider.api.as_deref())
        .unwrap_or("openai-completions");
    let Some(api) = Api::parse(api_name) else {
        return Err(format!(
            "models.providers.{provider_id} speaks \"{api_name}\", which clawback does not speak \
             yet; \"openai-completions\" (any OpenAI-compatible server), \"openai-responses\", \
             \"anthropic-messages\", \"google-generative-ai\" and \"ollama\" work today."
        ));
    };
    let base_url = provider
        .base_url
        .clone()
        .ok_or_else(|| format!("models.providers.{provider_id}.baseUrl is not set in {path}."))?;
    let api_key = match &provider.api_key {
        None => None,
        Some(key) => Some(
            key.resolve()
                .map_err(|error| format!("models.providers.{provider_id}.apiKey: {error}"))?,
        ),
    };
    Ok(Resolved {
        api,
        max_tokens: definition.and_then(|model| model.max_tokens),
        reasoning: definition
            .and_then(|model| model.reasoning)
            .unwrap_or(false),
        provider: provider_id.to_owned(),
        model: model_id.to_owned(),
        base_url,
        api_key,
        headers: provider.headers.clone(),
        cost: definition.and_then(|model| model.cost.clone()),
        context_window: definition.and_then(|model| model.context_window),
    })
}

/// The messages sent: the system prompt, then the session's transcript
/// (which already ends with this run's user message).
fn context(gateway: &Gateway, request: &RunRequest) -> Vec<(&'static str, String)> {
    let mut system = SYSTEM_PROMPT.to_owned();
    let workspace =
        super::workspace::dir(&gateway.config(), &gateway.state_root, &request.agent_id);
    system.push_str(&super::workspace::prompt_sections(&workspace));
    if let Some(extra) = &request.extra_system_prompt {
        system.push_str("\n\n");
        system.push_str(extra);
    }
    let (summary, entries) = {
        let state = gateway.state.read().expect("state lock");
        state
            .sessions
            .by_key
            .get(&request.session_key)
            .map(|session| {
                let start = session
                    .compaction
                    .as_ref()
                    .map_or(0, |compaction| compaction.context_start)
                    .max(
                        session
                            .transcript
                            .len()
                            .saturating_sub(CONTEXT_MESSAGES_MAX),
                    );
                let summary = session.compaction.as_ref().map(|c| c.summary.clone());
                (summary, session.transcript[start..].to_vec())
            })
            .unwrap_or_default()
    };
    let store = gateway.log.store();
    let mut messages = vec![("system", system)];
    // Messages replaced by a compaction come back as their summary.
    if let Some(summary) = summary {
        messages.push((
            "system",
            format!("Summary of the conversation before the messages below:\n{summary}"),
        ));
    }
    for entry in entries {
        let role = match entry.role {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::System | Role::Tool => continue,
        };
        messages.push((
            role,
            clawback_replay::session_state::message_text(&**store, &entry),
        ));
    }
    messages
}

/// A conservative token estimate (a token per four characters, plus a few
/// per message): enough to see a context coming near the window.
fn estimate_tokens(messages: &[(&str, String)]) -> u64 {
    messages
        .iter()
        .map(|(_, text)| (text.chars().count() as u64).div_ceil(4) + 4)
        .sum()
}

/// Prices are per million tokens, so a token costs `price` micro-dollars.
fn cost_micro_usd(cost: Option<&crate::config::model::ModelCost>, usage: &Usage) -> u64 {
    let Some(cost) = cost else { return 0 };
    let total = usage.input_tokens as f64 * cost.input
        + usage.output_tokens as f64 * cost.output
        + usage.cache_read_tokens as f64 * cost.cache_read
        + usage.cache_write_tokens as f64 * cost.cache_write;
    total.max(0.0).round() as u64
}

fn now_ms() -> i64 {
    crate::gateway::protocol::methods::now_ms()
}

/// The `agent` and `chat` events of one run, as OpenClaw shapes them.
struct Events<'a> {
    gateway: &'a Gateway,
    run_id: String,
    session_key: String,
    agent_id: String,
    /// The per-run `seq` of `agent` events (chat events reuse it).
    seq: u64,
    text: String,
    /// Text not pushed yet (coalescing).
    pending: String,
    last_push: Option<Instant>,
}

impl<'a> Events<'a> {
    fn new(gateway: &'a Gateway, request: &RunRequest) -> Events<'a> {
        Events {
            gateway,
            run_id: request.run_id.clone(),
            session_key: request.session_key.clone(),
            agent_id: request.agent_id.clone(),
            seq: 0,
            text: String::new(),
            pending: String::new(),
            last_push: None,
        }
    }

    fn agent(&mut self, stream: &str, data: Value) {
        self.seq += 1;
        let payload = json!({
            "runId": self.run_id, "seq": self.seq, "stream": stream, "ts": now_ms(),
            "data": data, "sessionKey": self.session_key, "agentId": self.agent_id,
        });
        let _ = self.gateway.pushes.send(Push::event("agent", payload));
    }

    fn chat(&self, state: &str, mut extra: Value) {
        extra["runId"] = json!(self.run_id);
        extra["sessionKey"] = json!(self.session_key);
        extra["agentId"] = json!(self.agent_id);
        extra["seq"] = json!(self.seq);
        extra["state"] = json!(state);
        let _ = self.gateway.pushes.send(Push::event("chat", extra));
    }

    fn message(&self) -> Value {
        json!({"role": "assistant", "content": [{"type": "text", "text": self.text}],
               "timestamp": now_ms()})
    }

    fn started(&mut self, started_at: i64, _outcome: &RunOutcome) {
        self.agent(
            "lifecycle",
            json!({"phase": "start", "startedAt": started_at}),
        );
        self.chat("status", json!({"phase": "starting_model"}));
    }

    /// OpenClaw's `fallback_step` lifecycle phase.
    fn fallback(&mut self, from: &Resolved, reason: &str) {
        self.agent(
            "lifecycle",
            json!({"phase": "fallback_step", "fallbackStepFromModel": from.name(),
                   "fallbackStepFromFailureReason": reason}),
        );
    }

    /// A new attempt starts its reply from nothing.
    fn restart_text(&mut self) {
        self.text.clear();
        self.pending.clear();
        self.last_push = None;
    }

    fn model(&mut self, provider: &str, model: &str) {
        self.agent(
            "lifecycle",
            json!({"phase": "model", "provider": provider, "model": model}),
        );
    }

    fn delta(&mut self, piece: &str) {
        self.text.push_str(piece);
        self.pending.push_str(piece);
        let due = self
            .last_push
            .is_none_or(|last| last.elapsed() >= DELTA_COALESCE);
        if due {
            self.flush();
        }
    }

    /// Pushes the text gathered since the last push.
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let delta = std::mem::take(&mut self.pending);
        self.agent("assistant", json!({"text": self.text, "delta": delta}));
        self.chat(
            "delta",
            json!({"deltaText": delta, "message": self.message()}),
        );
        self.last_push = Some(Instant::now());
    }

    fn completed(&mut self, outcome: &RunOutcome) {
        self.agent(
            "usage",
            json!({"inputTokens": outcome.usage.input_tokens,
                   "outputTokens": outcome.usage.output_tokens}),
        );
        self.agent(
            "lifecycle",
            json!({"phase": "end", "startedAt": outcome.started_at_ms,
                   "endedAt": outcome.ended_at_ms, "stopReason": outcome.stop_reason,
                   "aborted": false, "executionSettled": true,
                   "terminalReply": {"disposition": "visible", "text": outcome.text}}),
        );
        self.chat(
            "final",
            json!({"message": self.message(), "stopReason": outcome.stop_reason,
                   "usage": {"input": outcome.usage.input_tokens,
                             "output": outcome.usage.output_tokens}}),
        );
    }

    fn aborted(&mut self, outcome: &RunOutcome) {
        let reason = outcome
            .error
            .as_ref()
            .map_or("", |(_, reason)| reason.as_str())
            .to_owned();
        self.agent(
            "lifecycle",
            json!({"phase": "end", "startedAt": outcome.started_at_ms,
                   "endedAt": outcome.ended_at_ms, "stopReason": "aborted", "aborted": true,
                   "executionSettled": true}),
        );
        self.chat(
            "aborted",
            json!({"message": self.message(), "errorMessage": reason, "stopReason": "aborted"}),
        );
    }

    fn failed(&mut self, outcome: &RunOutcome) {
        let (kind, message) = outcome
            .error
            .clone()
            .unwrap_or_else(|| ("unknown".to_owned(), "the run failed".to_owned()));
        self.agent(
            "lifecycle",
            json!({"phase": "error", "error": message, "startedAt": outcome.started_at_ms,
                   "endedAt": outcome.ended_at_ms, "executionSettled": true}),
        );
        let error_kind = match kind.as_str() {
            "rate_limit" => "rate_limit",
            "timeout" => "timeout",
            "context_overflow" => "context_length",
            _ => "unknown",
        };
        self.chat(
            "error",
            json!({"errorMessage": message, "errorKind": error_kind}),
        );
    }
}
