//! `sessions.create`: a new session (OpenClaw's TUI sends it for /new),
//! its settings, and optionally its first turn.
//!
//! Apart from `sessions` because it is the one session method that starts a
//! run; the settings it takes are checked and recorded as `sessions.patch`
//! records them.

use std::sync::Arc;

use clawback_events::event::{Event, SessionCreated, SessionPatched};
use serde_json::{Value, json};

use super::super::frames::ErrorShape;
use super::session_row::row;
use super::sessions::{check_setting, finish};
use super::{Caller, Params, Reply};
use crate::gateway::Gateway;

/// `sessions.create` keys clawback acts on; settings among them are
/// recorded as a patch of the new session.
const CREATE_KEYS: &[&str] = &[
    "key",
    "idempotencyKey",
    "agentId",
    "label",
    "category",
    "model",
    "contextWindow",
    "thinkingLevel",
    "fastMode",
    "permissionMode",
    "toolOverrides",
    "message",
    "timeoutMs",
    "emitCommandHooks",
];
const CREATE_SETTINGS: &[&str] = &[
    "label",
    "category",
    "model",
    "contextWindow",
    "thinkingLevel",
    "fastMode",
    "permissionMode",
    "toolOverrides",
];

/// `sessions.create`: a new session (key given, or
/// `agent:<agent>:dashboard:<uuid>` as OpenClaw makes them), its settings,
/// and optionally its first turn (`message`). An existing key is adopted,
/// not reset. Forks, worktrees, projects and the like are refused by name
/// until clawback has them.
pub async fn create(gateway: &Arc<Gateway>, caller: &Caller, params: Option<&Value>) -> Reply {
    let checked = (|| {
        if let Some(Value::Object(object)) = params
            && let Some(key) = object
                .keys()
                .find(|key| !CREATE_KEYS.contains(&key.as_str()))
        {
            return Err(ErrorShape::invalid(format!(
                "invalid sessions.create params: '{key}' is not supported by clawback yet"
            )));
        }
        let params = Params::closed("sessions.create", params, CREATE_KEYS)?;
        if params.opt_bool("emitCommandHooks")? == Some(true) {
            return Err(params.invalid("emitCommandHooks is not supported by clawback yet"));
        }
        let agent = params
            .opt_str("agentId")?
            .map(str::to_ascii_lowercase)
            .or_else(|| {
                params
                    .opt_str("key")
                    .ok()
                    .flatten()
                    .and_then(clawback_projections::sessions::agent_in_key)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| super::agents::DEFAULT_AGENT.to_owned());
        let key = match params.opt_str("key")?.map(str::trim) {
            Some("") => {
                return Err(params.invalid("at /key: must NOT have fewer than 1 characters"));
            }
            Some(key) => key.to_owned(),
            None => format!("agent:{agent}:dashboard:{}", uuid::Uuid::new_v4()),
        };
        let mut set = Vec::new();
        for name in CREATE_SETTINGS {
            if let Some(value) = params.get(name) {
                check_setting(&params, name, value)?;
                set.push(((*name).to_owned(), value.to_string()));
            }
        }
        let message = params.opt_str("message")?.map(str::to_owned);
        let run_id = params
            .opt_str("idempotencyKey")?
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        let timeout = params.opt_u64("timeoutMs")?;
        Ok((agent, key, set, message, run_id, timeout))
    })();
    let (agent, key, set, message, run_id, timeout) = match checked {
        Ok(checked) => checked,
        Err(error) => return Reply::answer(Err(error)),
    };
    let lock = gateway.writes.clone().lock_owned().await;
    let mut events = Vec::new();
    if !gateway
        .state
        .read()
        .expect("state lock")
        .sessions
        .by_key
        .contains_key(&key)
    {
        events.push(Event::SessionCreated(SessionCreated {
            session_key: key.clone(),
            session_id: uuid::Uuid::new_v4().to_string(),
            agent_id: agent.clone(),
            label: None,
            origin: Some("sessions.create".to_owned()),
        }));
    }
    if !set.is_empty() {
        events.push(Event::SessionPatched(SessionPatched {
            session_key: key.clone(),
            set,
            cleared: Vec::new(),
        }));
    }
    let (gateway_for_run, caller) = (gateway.clone(), caller.clone());
    finish(gateway, &key, events, lock, move |gateway, key| {
        // The first turn starts once the session is durable.
        let run_started = message.as_ref().map(|message| {
            let request = crate::agent::RunRequest {
                message_seq: None,
                run_id: run_id.clone(),
                session_key: key.to_owned(),
                agent_id: agent.clone(),
                message: message.clone(),
                trigger: "sessions.create",
                actor: caller.actor(),
                model_override: None,
                thinking: None,
                extra_system_prompt: None,
                timeout: timeout.filter(|ms| *ms > 0).map_or(
                    std::time::Duration::from_secs(600),
                    std::time::Duration::from_millis,
                ),
                tool_events_to: caller.tool_events_to(),
                sampling: Default::default(),
                origin: None,
            };
            drop(
                gateway_for_run
                    .agent
                    .clone()
                    .start(gateway_for_run.clone(), request),
            );
            run_id.clone()
        });
        let state = gateway.state.read().expect("state lock");
        let session = state.sessions.by_key.get(key);
        let mut answer = json!({
            "ok": true, "key": key,
            "sessionId": session.map(|session| session.session_id.clone()),
            "entry": session.map(|session| row(session, &gateway.config())),
            "runStarted": run_started.is_some(),
            "resolved": {"key": key, "agentId": agent},
        });
        if let Some(run_id) = run_started {
            answer["runId"] = json!(run_id);
        }
        answer
    })
}
