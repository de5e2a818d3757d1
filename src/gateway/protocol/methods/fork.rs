//! `clawback.sessions.fork`: a new session whose history is another's up to
//! a seq, and its next turn, run live (`clawback fork` calls it).
//!
//! Why the fork is one recorded fact (`session.forked`) and not a copy of
//! the source's messages: a transcript is a list of seqs into the log, so
//! the fork's history is the source's records, named by seq (see the
//! sessions projection). The next turn's user message is either a new one
//! (`message`, recorded by its run as any turn's is) or the message the
//! source received right after the fork point, also by reference.
//!
//! What is checked before anything is recorded: the source exists; `atSeq`
//! is a record of the source's current history (its own stream since its
//! creation or latest reset, or an entry of its transcript, which for a
//! fork includes its source's); the fork point is not inside a tool round
//! (a call without its result would leave the model a dangling call); the
//! source was not compacted after it (the state keeps only the latest
//! summary, so the context at that point cannot be rebuilt; refused until
//! compactions are kept by seq); a `model` override resolves; and there
//! is a next message.

use std::sync::Arc;
use std::time::Duration;

use clawback_events::event::{Event, Role, SessionForked};
use clawback_events::record;
use clawback_projections::sessions::Session;
use clawback_replay::session_state::{TranscriptItem, transcript_item};
use serde_json::{Value, json};

use super::super::frames::ErrorShape;
use super::sessions::{check_setting, finish};
use super::{Caller, Params, Reply};
use crate::agent::RunRequest;
use crate::gateway::Gateway;

const FORK_KEYS: &[&str] = &[
    "sessionKey",
    "atSeq",
    "model",
    "message",
    "newKey",
    "timeoutMs",
];

/// A turn's time limit when the caller gives none (as `sessions.create`).
const RUN_TIMEOUT_DEFAULT: Duration = Duration::from_secs(600);

/// What the checks decided: the fork's record and its first turn.
struct Plan {
    event: SessionForked,
    message: String,
    timeout: Duration,
}

/// Records the fork (once durable, answered with the new key, session id
/// and run id) and starts its next turn, which streams `agent` and `chat`
/// events as a `chat.send` run does; `agent.wait` on the run id waits for it.
pub async fn fork(gateway: &Arc<Gateway>, caller: &Caller, params: Option<&Value>) -> Reply {
    let checked = (|| {
        let params = Params::closed("clawback.sessions.fork", params, FORK_KEYS)?;
        let source = params.str("sessionKey")?.to_owned();
        let at_seq = params
            .opt_u64("atSeq")?
            .ok_or_else(|| params.invalid("must have required property 'atSeq'"))?;
        let mut settings = Vec::new();
        if let Some(model) = params.get("model") {
            check_setting(&params, "model", model)?;
            settings.push(("model".to_owned(), model.to_string()));
        }
        let message = params.opt_str("message")?.map(str::to_owned);
        if message
            .as_deref()
            .is_some_and(|text| text.trim().is_empty())
        {
            return Err(params.invalid("at /message: must not be empty"));
        }
        let new_key = match params.opt_str("newKey")?.map(str::trim) {
            Some("") => return Err(params.invalid("at /newKey: must not be empty")),
            other => other.map(str::to_owned),
        };
        let timeout = params
            .opt_u64("timeoutMs")?
            .filter(|ms| *ms > 0)
            .map_or(RUN_TIMEOUT_DEFAULT, Duration::from_millis);
        Ok((source, at_seq, settings, message, new_key, timeout))
    })();
    let (source, at_seq, settings, message, new_key, timeout) = match checked {
        Ok(checked) => checked,
        Err(error) => return Reply::answer(Err(error)),
    };
    // Held from the checks until the fork is durable, so no other decision
    // (a reset of the source, a session under the same key) interleaves.
    let lock = gateway.writes.clone().lock_owned().await;
    let plan = {
        let state = gateway.state.read().expect("state lock");
        match state.sessions.by_key.get(&source) {
            None => Err(ErrorShape::invalid(format!(
                "session {source} does not exist (never created, or deleted); \
                 `sessions.list` shows the sessions there are"
            ))),
            Some(session) => {
                let key = new_key.unwrap_or_else(|| {
                    format!("agent:{}:fork:{}", session.agent_id, uuid::Uuid::new_v4())
                });
                if state.sessions.by_key.contains_key(&key) {
                    Err(ErrorShape::invalid(format!(
                        "session {key} exists already; choose another newKey"
                    )))
                } else {
                    plan(gateway, session, at_seq, key, settings, message, timeout)
                }
            }
        }
    };
    let plan = match plan {
        Ok(plan) => plan,
        Err(error) => return Reply::answer(Err(error)),
    };
    let key = plan.event.session_key.clone();
    let request = RunRequest {
        run_id: uuid::Uuid::new_v4().to_string(),
        session_key: key.clone(),
        agent_id: plan.event.agent_id.clone(),
        message: plan.message,
        trigger: "clawback.sessions.fork",
        actor: caller.actor(),
        // The fork's `model` setting (recorded with it) chooses the model,
        // as a `sessions.patch` of the model would.
        model_override: None,
        thinking: None,
        extra_system_prompt: None,
        timeout: plan.timeout,
        tool_events_to: caller.tool_events_to(),
        sampling: Default::default(),
        origin: None,
        message_seq: plan.event.next_message_seq,
    };
    let (source, at_seq) = (plan.event.source_session_key.clone(), plan.event.at_seq);
    let events = vec![Event::SessionForked(plan.event)];
    let gateway_for_run = gateway.clone();
    let request = std::sync::Mutex::new(Some(request));
    let mut reply = finish(gateway, &key, events, lock, move |gateway, key| {
        // The turn starts once the fork is durable and applied.
        let request = request.lock().expect("request lock").take();
        let run_id = request.map(|request| {
            let run_id = request.run_id.clone();
            drop(
                gateway_for_run
                    .agent
                    .clone()
                    .start(gateway_for_run.clone(), request),
            );
            run_id
        });
        let state = gateway.state.read().expect("state lock");
        let session = state.sessions.by_key.get(key);
        json!({
            "ok": true,
            "key": key,
            "sessionId": session.map(|session| session.session_id.clone()),
            "forkedFrom": {"key": source, "atSeq": at_seq},
            "runId": run_id,
        })
    });
    // A `message` param is the fork's first user message: sealed under the
    // fork's key, like the turn that records it.
    reply.content_of = Some(key);
    reply
}

/// The checks of the module docs, and the fork they allow.
fn plan(
    gateway: &Gateway,
    source: &Session,
    at_seq: u64,
    key: String,
    settings: Vec<(String, String)>,
    message: Option<String>,
    timeout: Duration,
) -> Result<Plan, ErrorShape> {
    let store = gateway.log.store();
    let in_transcript = source.transcript.iter().any(|entry| entry.seq == at_seq);
    let in_own_history = at_seq >= source.history_start_seq
        && match store.get(at_seq) {
            Ok(Some(bytes)) => record::decode(at_seq, &bytes)
                .is_ok_and(|envelope| envelope.body.stream == source.key),
            _ => false,
        };
    if !in_transcript && !in_own_history {
        return Err(ErrorShape::invalid(format!(
            "seq {at_seq} is not part of session {}'s history (its records since seq {}, \
             and its transcript); `clawback replay {}` lists its seqs",
            source.key, source.history_start_seq, source.key
        )));
    }
    if let Some(compaction) = &source.compaction
        && compaction.seq > at_seq
    {
        return Err(ErrorShape::invalid(format!(
            "session {} was compacted at seq {}, after seq {at_seq}: forking before its \
             latest compaction is not supported yet; fork at seq {} or later",
            source.key, compaction.seq, compaction.seq
        )));
    }
    let prefix: Vec<_> = source
        .transcript
        .iter()
        .take_while(|entry| entry.seq <= at_seq)
        .collect();
    if let Some(open) = unanswered_call(&**store, &*gateway.keyring, &prefix) {
        return Err(ErrorShape::invalid(format!(
            "seq {at_seq} is inside a tool round of session {} (tool call {open} has no \
             result by then); fork at the end of a turn",
            source.key
        )));
    }
    // A model that cannot be resolved would fail the fork's first turn
    // after the fork is recorded; refuse it before.
    if let Some((_, model)) = settings.iter().find(|(name, _)| name == "model")
        && let Ok(model) = serde_json::from_str::<String>(model)
        && let Err(problem) = crate::agent::models::resolve(
            &gateway.config(),
            &source.agent_id,
            Some(&model),
            gateway,
        )
    {
        return Err(ErrorShape::invalid(format!(
            "model {model} cannot be used: {problem}"
        )));
    }
    let (message, next_message_seq) = match message {
        Some(message) => (message, None),
        None => {
            let next = source
                .transcript
                .iter()
                .find(|entry| entry.seq > at_seq && entry.role == Role::User)
                .ok_or_else(|| {
                    ErrorShape::invalid(format!(
                        "session {} has no user message after seq {at_seq} to answer again; \
                         give the fork's message (`message`, or `clawback fork --prompt FILE`)",
                        source.key
                    ))
                })?;
            match transcript_item(&**store, &*gateway.keyring, next) {
                TranscriptItem::Text(text) => (text, Some(next.seq)),
                _ => {
                    return Err(ErrorShape::invalid(format!(
                        "the user message at seq {} cannot be read back; give the fork's message",
                        next.seq
                    )));
                }
            }
        }
    };
    Ok(Plan {
        event: SessionForked {
            session_key: key,
            session_id: uuid::Uuid::new_v4().to_string(),
            agent_id: source.agent_id.clone(),
            source_session_key: source.key.clone(),
            source_session_id: source.session_id.clone(),
            at_seq,
            settings,
            next_message_seq,
        },
        message,
        timeout,
    })
}

/// A tool call among the prefix's last turn (after its last user message)
/// with no result in the prefix, if there is one.
fn unanswered_call(
    store: &dyn clawback_events::store::LogStore,
    keys: &dyn clawback_events::sealed::ContentKeys,
    prefix: &[&clawback_projections::sessions::TranscriptEntry],
) -> Option<String> {
    let turn_start = prefix
        .iter()
        .rposition(|entry| entry.role == Role::User)
        .map_or(0, |index| index + 1);
    let mut open = Vec::new();
    for entry in &prefix[turn_start..] {
        match transcript_item(store, keys, entry) {
            TranscriptItem::ToolCall { id, .. } => open.push(id),
            TranscriptItem::ToolResult { id, .. } => open.retain(|call| *call != id),
            _ => {}
        }
    }
    open.into_iter().next()
}
