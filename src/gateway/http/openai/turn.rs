//! One HTTP request's agent run: which agent and session it targets, and
//! starting it, or, for a request carrying an `Idempotency-Key` that was
//! seen before, finding the first request's run or its recorded answer.
//!
//! Why the key is bound in the log before the run starts: a retry must
//! never run the model twice, even when it arrives while the first request
//! still runs, or after a restart. The binding (`http.request.accepted`,
//! key, body hash, run id) is recorded under the gateway's write lock, so
//! two requests with one key cannot both start a run; the answer
//! (`http.request.answered`) is recorded by a task of its own when the run
//! ends, whether or not the client is still connected.
//!
//! A keyed request whose run was cut short by a restart is answered 409:
//! its model call may have happened, and running it again is exactly what
//! the key forbids. Requests without a key are not recorded beyond their
//! run (and are aborted when the client goes away, as in OpenClaw).

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use clawback_events::event::{Event, HttpRequestAccepted, HttpRequestAnswered};
use clawback_events::{Actor, NewEvent};
use serde_json::Value;
use tokio::sync::watch;

use super::prompt::Prompt;
use super::{error_response, header_text, invalid};
use crate::agent::sampling::Sampling;
use crate::agent::{RunOutcome, RunRequest, Started};
use crate::gateway::Gateway;

/// OpenClaw's default run limit.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest idempotency key accepted (OpenAI documents none; a bound keeps
/// the projection's memory predictable).
const KEY_BYTES_MAX: usize = 256;

/// The ids an answer is rendered with; the same for every retry.
#[derive(Clone, Debug)]
pub struct Ids {
    pub run_id: String,
    /// The `model` as the client sent it.
    pub model: String,
    /// Unix seconds.
    pub created: i64,
}

/// Renders a finished run as the endpoint's non-streaming answer.
pub type Render = fn(&Ids, &RunOutcome) -> (StatusCode, Value);

/// What `begin` found or started.
pub enum Begun {
    /// A run to follow: new, or the first request's, still running.
    Running {
        ids: Ids,
        outcome: watch::Receiver<Option<RunOutcome>>,
        /// The reply text as it streams (a new run only).
        text: Option<watch::Receiver<String>>,
        /// For a keyed request: the task recording the answer, which ends
        /// with it. `None` for unkeyed ones.
        recorded: Option<tokio::task::JoinHandle<Result<(StatusCode, Value), String>>>,
        /// The run belongs to this request alone: abort it if the client
        /// leaves (unkeyed requests).
        abort_on_leave: Option<AbortOnLeave>,
    },
    /// The answer is already known (recorded, or rendered from the
    /// finished run of the first request).
    Answered {
        ids: Ids,
        status: StatusCode,
        answer: Value,
    },
}

/// The run a request targets.
pub struct Turn {
    pub endpoint: &'static str,
    pub ids_model: String,
    pub agent_id: String,
    pub session_key: String,
    pub prompt: Prompt,
    pub model_override: Option<String>,
    /// The `Idempotency-Key` and the body's hash.
    pub key: Option<(String, String)>,
    /// The run id for a new run (`chatcmpl_<uuid>`, `resp_<uuid>`).
    pub fresh_run_id: String,
    pub sampling: Sampling,
}

/// The agent and session of a request: headers first, then `model`, then
/// the default agent; a session per request unless `user` or
/// `x-openclaw-session-key` names one (OpenClaw's rules).
pub fn target(
    gateway: &Gateway,
    headers: &HeaderMap,
    model: Option<&str>,
    user: Option<&str>,
    prefix: &str,
) -> Result<(String, String), Response> {
    let config = gateway.config();
    let known = crate::gateway::protocol::methods::agents::agent_ids(&config);
    let model = model.map(str::trim).filter(|model| !model.is_empty());
    let from_model = match model {
        None => None,
        Some(model) => match agent_in_model(model) {
            Some(agent) => agent,
            None => {
                return Err(invalid(
                    "Invalid `model`. Use `openclaw` or `openclaw/<agentId>`.",
                ));
            }
        },
    };
    let from_header =
        header_text(headers, "x-openclaw-agent-id").or(header_text(headers, "x-openclaw-agent"));
    let agent_id = match from_header {
        Some(raw) => {
            if !valid_agent_id(raw) {
                return Err(invalid(&format!("Unknown agent '{raw}'.")));
            }
            Some(raw.to_ascii_lowercase())
        }
        None => from_model,
    };
    let named = agent_id.is_some();
    let agent_id = match agent_id {
        Some(agent) if !known.contains(&agent) => {
            return Err(invalid(&format!("Unknown agent '{agent}'.")));
        }
        Some(agent) => agent,
        None => crate::gateway::protocol::methods::agents::default_agent(&config),
    };
    if let Some(explicit) = header_text(headers, "x-openclaw-session-key") {
        let lowered = explicit.to_ascii_lowercase();
        let reserved = ["subagent:", "cron:", "acp:"]
            .iter()
            .any(|prefix| lowered.starts_with(prefix) || lowered.contains(&format!(":{prefix}")));
        if reserved {
            return Err(invalid(
                "`x-openclaw-session-key` cannot use reserved internal session namespaces.",
            ));
        }
        // A full key names its agent: it must be the one asked for (or,
        // when none was, it is the one); a bare name is the agent's.
        return match clawback_projections::sessions::agent_in_key(explicit) {
            Some(owner) if owner == agent_id => Ok((agent_id, explicit.to_owned())),
            Some(owner) if !named && known.iter().any(|known| known == owner) => {
                Ok((owner.to_owned(), explicit.to_owned()))
            }
            Some(owner) => Err(invalid(&format!(
                "`x-openclaw-session-key` {explicit} belongs to agent '{owner}', not '{agent_id}'."
            ))),
            None => Ok((agent_id.clone(), format!("agent:{agent_id}:{explicit}"))),
        };
    }
    let main_key = match user.map(str::trim).filter(|user| !user.is_empty()) {
        Some(user) => format!("{prefix}-user:{user}"),
        None => format!("{prefix}:{}", uuid::Uuid::new_v4()),
    };
    let session_key = format!("agent:{agent_id}:{main_key}");
    Ok((agent_id, session_key))
}

/// `openclaw`, `openclaw/default` (the default agent: `Some(None)`),
/// `openclaw/<id>`, `openclaw:<id>`, `agent:<id>`; anything else is not an
/// agent target (`None`).
fn agent_in_model(model: &str) -> Option<Option<String>> {
    let lowered = model.to_ascii_lowercase();
    if lowered == "openclaw" || lowered == "openclaw/default" {
        return Some(None);
    }
    let id = lowered
        .strip_prefix("openclaw/")
        .or_else(|| lowered.strip_prefix("openclaw:"))
        .or_else(|| lowered.strip_prefix("agent:"))?;
    valid_agent_id(id).then(|| Some(id.to_owned()))
}

fn valid_agent_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    (1..=64).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || *byte == b'_' || *byte == b'-')
}

/// The sampling settings the agent's model (its first in the chain) has
/// no place for, by their OpenAI names: what the client is told was not
/// applied. A fallback model of another format may drop more; none is
/// reported when no model is configured (the run fails and says so).
pub fn unapplied(
    gateway: &Gateway,
    agent_id: &str,
    model_override: Option<&str>,
    sampling: &Sampling,
) -> Vec<&'static str> {
    if sampling.is_empty() {
        return Vec::new();
    }
    let config = gateway.config();
    match crate::agent::models::resolve(&config, agent_id, model_override, gateway) {
        Ok(chain) => chain.first().map_or_else(Vec::new, |first| {
            sampling.apply(first.api, &mut Value::Object(Default::default()), false)
        }),
        Err(_) => Vec::new(),
    }
}

/// The `Idempotency-Key` header, checked.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Response> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(value) => {
            let key = value.to_str().map(str::trim).unwrap_or("");
            if key.is_empty() || key.len() > KEY_BYTES_MAX {
                return Err(invalid(
                    "Idempotency-Key must be 1 to 256 visible ASCII characters",
                ));
            }
            Ok(Some(key.to_owned()))
        }
    }
}

/// The hash a key is bound to: the body as canonical JSON (keys sorted), so
/// whitespace and key order do not make a retry "another body".
pub fn body_hash(body: &serde_json::Map<String, Value>) -> String {
    let canonical = Value::Object(body.clone()).to_string();
    blake3::hash(canonical.as_bytes()).to_hex().to_string()
}

/// Starts the turn's run, or finds what an earlier request with its key
/// started. `follow` asks for the reply text as it streams.
pub async fn begin(
    gateway: &Arc<Gateway>,
    turn: Turn,
    follow: bool,
    render: Render,
) -> Result<Begun, Response> {
    if let Some(model) = &turn.model_override {
        let config = gateway.config();
        if let Err(why) =
            crate::agent::models::resolve(&config, &turn.agent_id, Some(model), gateway)
        {
            return Err(invalid(&format!("Invalid `x-openclaw-model`: {why}")));
        }
    }
    let Some((key, hash)) = turn.key.clone() else {
        let ids = Ids {
            run_id: turn.fresh_run_id.clone(),
            model: turn.ids_model.clone(),
            created: crate::gateway::protocol::methods::now_ms() / 1000,
        };
        let (outcome, text) = start(gateway, &turn, &ids.run_id, follow);
        let abort_on_leave = Some(AbortOnLeave {
            gateway: gateway.clone(),
            session_key: turn.session_key.clone(),
            run_id: ids.run_id.clone(),
            armed: true,
        });
        return Ok(Begun::Running {
            ids,
            outcome,
            text,
            recorded: None,
            abort_on_leave,
        });
    };
    // Keyed: check and bind under the write lock.
    let _lock = gateway.writes.clone().lock_owned().await;
    let bound = gateway
        .state
        .read()
        .expect("state lock")
        .idempotency
        .get(turn.endpoint, &key)
        .cloned();
    if let Some(bound) = bound {
        let ids = Ids {
            run_id: bound.run_id.clone(),
            model: turn.ids_model.clone(),
            created: bound.accepted_ts_ms / 1000,
        };
        if bound.body_hash != hash {
            return Err(error_response(
                StatusCode::CONFLICT,
                "idempotency_error",
                "Idempotency-Key was already used with a different request body; \
                 use a new key for a new request",
            ));
        }
        if let Some(seq) = bound.answer_seq {
            let (status, answer) = recorded_answer(gateway, seq)?;
            return Ok(Begun::Answered {
                ids,
                status,
                answer,
            });
        }
        return match gateway.agent.lookup(&bound.run_id) {
            Some(Started::Finished(outcome)) => {
                let (status, answer) = render(&ids, &outcome);
                Ok(Begun::Answered {
                    ids,
                    status,
                    answer,
                })
            }
            Some(Started::Running(outcome) | Started::New(outcome)) => Ok(Begun::Running {
                ids,
                outcome,
                text: None,
                recorded: None,
                abort_on_leave: None,
            }),
            None if gateway
                .state
                .read()
                .expect("state lock")
                .sessions
                .knows_run(&bound.session_key, &bound.run_id) =>
            {
                Err(error_response(
                    StatusCode::CONFLICT,
                    "idempotency_error",
                    "the request with this Idempotency-Key was cut short by a gateway restart \
                 before it was answered; its run is in the log (it is not run again); \
                 send a new key to ask again",
                ))
            }
            // Bound, but the run never started (the gateway stopped in
            // between): nothing ran, so it may start now.
            None => Ok(started_keyed(gateway, &turn, ids, key, follow, render)),
        };
    }
    let accepted = HttpRequestAccepted {
        endpoint: turn.endpoint.to_owned(),
        idempotency_key: key.clone(),
        body_hash: hash,
        run_id: turn.fresh_run_id.clone(),
        session_key: turn.session_key.clone(),
    };
    let actor = Actor::Http {
        endpoint: turn.endpoint.to_owned(),
    };
    gateway
        .log
        .append(vec![NewEvent::new(
            turn.session_key.clone(),
            actor,
            Event::HttpRequestAccepted(accepted),
        )])
        .await
        .map_err(|why| {
            error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                &format!("the gateway cannot record this request: {why}"),
            )
        })?;
    let accepted_ts_ms = gateway
        .state
        .read()
        .expect("state lock")
        .idempotency
        .get(turn.endpoint, &key)
        .map_or_else(crate::gateway::protocol::methods::now_ms, |bound| {
            bound.accepted_ts_ms
        });
    let ids = Ids {
        run_id: turn.fresh_run_id.clone(),
        model: turn.ids_model.clone(),
        created: accepted_ts_ms / 1000,
    };
    Ok(started_keyed(gateway, &turn, ids, key, follow, render))
}

/// Starts a keyed request's run and the task that records its answer.
fn started_keyed(
    gateway: &Arc<Gateway>,
    turn: &Turn,
    ids: Ids,
    key: String,
    follow: bool,
    render: Render,
) -> Begun {
    let (outcome, text) = start(gateway, turn, &ids.run_id, follow);
    let recorder = {
        let gateway = gateway.clone();
        let endpoint = turn.endpoint;
        let ids = ids.clone();
        let session_key = turn.session_key.clone();
        let outcome = outcome.clone();
        tokio::spawn(async move {
            let finished = crate::agent::wait(outcome)
                .await
                .ok_or_else(|| "the run ended without an outcome".to_owned())?;
            let (status, answer) = render(&ids, &finished);
            let answered = HttpRequestAnswered {
                endpoint: endpoint.to_owned(),
                idempotency_key: key,
                run_id: ids.run_id.clone(),
                status: status.as_u16(),
                answer: answer.to_string(),
            };
            gateway
                .log
                .append(vec![
                    NewEvent::new(
                        session_key.clone(),
                        Actor::Http {
                            endpoint: endpoint.to_owned(),
                        },
                        Event::HttpRequestAnswered(answered),
                    )
                    // The answer holds the reply: the session's content.
                    .sealed_for(session_key),
                ])
                .await
                .map_err(|why| format!("the gateway cannot record the answer: {why}"))?;
            Ok((status, answer))
        })
    };
    Begun::Running {
        ids,
        outcome,
        text,
        recorded: Some(recorder),
        abort_on_leave: None,
    }
}

fn start(
    gateway: &Arc<Gateway>,
    turn: &Turn,
    run_id: &str,
    follow: bool,
) -> (
    watch::Receiver<Option<RunOutcome>>,
    Option<watch::Receiver<String>>,
) {
    let text = follow.then(|| gateway.agent.follow_text(run_id));
    let request = RunRequest {
        message_seq: None,
        run_id: run_id.to_owned(),
        session_key: turn.session_key.clone(),
        agent_id: turn.agent_id.clone(),
        message: turn.prompt.message.clone(),
        trigger: if turn.endpoint == "responses" {
            "openai-responses"
        } else {
            "openai-chat"
        },
        actor: Actor::Http {
            endpoint: turn.endpoint.to_owned(),
        },
        model_override: turn.model_override.clone(),
        thinking: None,
        extra_system_prompt: turn.prompt.extra_system_prompt.clone(),
        timeout: RUN_TIMEOUT,
        tool_events_to: None,
        sampling: turn.sampling.clone(),
        origin: None,
    };
    match gateway.agent.clone().start(gateway.clone(), request) {
        Started::New(outcome) => (outcome, text),
        // A fresh uuid run id cannot be known; should it be, follow what
        // is there without a text stream.
        Started::Running(outcome) => {
            gateway.agent.unfollow_text(run_id);
            (outcome, None)
        }
        Started::Finished(finished) => {
            gateway.agent.unfollow_text(run_id);
            (watch::channel(Some(*finished)).1, None)
        }
    }
}

/// The answer recorded at `seq`.
fn recorded_answer(gateway: &Gateway, seq: u64) -> Result<(StatusCode, Value), Response> {
    let unreadable = |why: String| {
        error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            &format!("the recorded answer for this Idempotency-Key cannot be read: {why}"),
        )
    };
    let bytes = gateway
        .log
        .store()
        .get(seq)
        .map_err(|why| unreadable(why.to_string()))?
        .ok_or_else(|| unreadable(format!("record {seq} is missing")))?;
    let envelope =
        clawback_events::record::decode(seq, &bytes).map_err(|why| unreadable(why.to_string()))?;
    let readable = envelope.body.event.read(&*gateway.keyring);
    if let clawback_events::sealed::ContentState::Purged
    | clawback_events::sealed::ContentState::Unreadable(_) = readable.content
    {
        return Err(unreadable(format!(
            "its content is {}",
            match readable.content {
                clawback_events::sealed::ContentState::Purged => "purged".to_owned(),
                other => format!("{other:?}"),
            }
        )));
    }
    let Event::HttpRequestAnswered(answered) = readable.event.into_owned() else {
        return Err(unreadable(format!("record {seq} is not an answer")));
    };
    let answer =
        serde_json::from_str(&answered.answer).map_err(|why| unreadable(why.to_string()))?;
    let status =
        StatusCode::from_u16(answered.status).map_err(|why| unreadable(why.to_string()))?;
    Ok((status, answer))
}

/// Aborts an unkeyed request's run when the request is dropped before it
/// was answered (the client went away), as OpenClaw does.
pub struct AbortOnLeave {
    gateway: Arc<Gateway>,
    session_key: String,
    run_id: String,
    armed: bool,
}

impl AbortOnLeave {
    /// The answer went out: nothing to abort.
    pub fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for AbortOnLeave {
    fn drop(&mut self) {
        if self.armed {
            self.gateway.agent.abort(
                &self.session_key,
                Some(&self.run_id),
                "the HTTP client disconnected",
            );
        }
    }
}

/// A run followed for a stream: its new text as it comes, then its end.
pub struct Follow {
    outcome: watch::Receiver<Option<RunOutcome>>,
    /// The run's text (it keeps its last value after the run lets go).
    text: Option<watch::Receiver<String>>,
    text_open: bool,
    /// What was handed out so far.
    sent: String,
}

/// What a followed run did next.
pub enum Step {
    /// Text to send (what the reply adds to what was sent).
    Text(String),
    /// The run ended.
    Finished(Box<RunOutcome>),
    /// The run ended without an outcome (its task was lost).
    Lost,
}

impl Follow {
    pub fn new(
        outcome: watch::Receiver<Option<RunOutcome>>,
        text: Option<watch::Receiver<String>>,
    ) -> Follow {
        let text_open = text.is_some();
        Follow {
            outcome,
            text,
            text_open,
            sent: String::new(),
        }
    }

    pub fn sent(&self) -> &str {
        &self.sent
    }

    /// Waits for new text or the end. Text that restarted (a fallback to
    /// another model) is waited out until it grows past what was sent.
    pub async fn next(&mut self) -> Step {
        loop {
            if let Some(rest) = self.unsent() {
                return Step::Text(rest);
            }
            if let Some(done) = self.outcome.borrow().clone() {
                return Step::Finished(Box::new(done));
            }
            let text_open = self.text_open;
            let text = &mut self.text;
            let text_changed = async {
                match text {
                    Some(text) if text_open => text.changed().await.is_ok(),
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                open = text_changed => self.text_open = open,
                changed = self.outcome.changed() => {
                    if changed.is_err() && self.outcome.borrow().is_none() {
                        return Step::Lost;
                    }
                }
            }
        }
    }

    /// What the followed text adds to what was sent, taken as sent.
    fn unsent(&mut self) -> Option<String> {
        let rest = {
            let current = self.text.as_ref()?.borrow();
            current.strip_prefix(self.sent.as_str())?.to_owned()
        };
        if rest.is_empty() {
            return None;
        }
        self.sent.push_str(&rest);
        Some(rest)
    }

    /// The rest of the whole reply at the end: the followed text (every
    /// reply of a tool loop), or the final reply when no text was followed.
    /// `None` when it does not extend what was sent (it cannot be
    /// appended to a stream).
    pub fn rest_of(&self, finished: &RunOutcome) -> Option<String> {
        let whole = match &self.text {
            Some(text) => text.borrow().clone(),
            None => finished.text.clone(),
        };
        whole.strip_prefix(self.sent.as_str()).map(str::to_owned)
    }
}
