//! A session as clients see it: the row `sessions.list`, `sessions.patch`
//! and `sessions.changed` carry, derived from the sessions projection.

use clawback_projections::sessions::Session;
use serde_json::{Value, json};

/// Changes whenever the session starts over: one value per lifecycle.
pub(super) fn lifecycle_revision(session: &Session) -> String {
    format!("{}.{}", session.created_seq, session.resets)
}

pub(super) fn flag(session: &Session, name: &str) -> bool {
    session
        .settings
        .get(name)
        .is_some_and(|value| value == "true")
}

fn setting(session: &Session, name: &str) -> Value {
    session
        .settings
        .get(name)
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or(Value::Null)
}

pub(super) fn last_interaction(session: &Session) -> Option<i64> {
    session.transcript.last().map(|entry| entry.ts_ms)
}

pub(super) fn default_model(config: &crate::config::model::ConfigFile) -> Option<String> {
    config
        .agents
        .as_ref()
        .and_then(|agents| agents.defaults.as_ref())
        .and_then(|defaults| defaults.model.as_ref())
        .map(|model| model.primary().to_owned())
}

pub(super) fn split_model(model: Option<&str>) -> (Value, Value) {
    match model.and_then(|model| model.split_once('/')) {
        Some((provider, model)) => (json!(provider), json!(model)),
        None => (Value::Null, model.map_or(Value::Null, |model| json!(model))),
    }
}

/// One session as `sessions.list` shows it; without a model of its own it
/// shows its agent's (the agent's entry, else the defaults).
pub fn row(session: &Session, config: &crate::config::model::ConfigFile) -> Value {
    let default_model = config
        .agent_model(&session.agent_id)
        .map(|model| model.primary().to_owned());
    let main = session.key == format!("agent:{}:main", session.agent_id);
    let kind = if session.key.contains(":group:") || session.key.contains(":channel:") {
        "group"
    } else {
        "direct"
    };
    let classification = if main {
        "main"
    } else if session.key.contains(":cron:") {
        "cron"
    } else if session.key.starts_with("hook:") {
        "hook"
    } else {
        kind
    };
    let model_setting = setting(session, "model");
    let model = model_setting.as_str().or(default_model.as_deref());
    let (provider, model) = split_model(model);
    let usage = &session.usage;
    let mut row = json!({
        "key": session.key,
        "sessionId": session.session_id,
        "agentId": session.agent_id,
        "kind": kind,
        "classification": classification,
        "isMain": main,
        "updatedAt": session.updated_ts_ms,
        "sessionStartedAt": session.created_ts_ms,
        "lastInteractionAt": last_interaction(session),
        "lifecycleRevision": lifecycle_revision(session),
        "archived": flag(session, "archived"),
        "pinned": flag(session, "pinned"),
        "unread": flag(session, "unread"),
        "status": if session.active_runs.is_empty() { "idle" } else { "running" },
        "modelProvider": provider,
        "model": model,
        "inputTokens": usage.input_tokens,
        "outputTokens": usage.output_tokens,
        "totalTokens": usage.input_tokens + usage.output_tokens,
        "contextTokens": Value::Null,
        "messageCount": session.transcript.len(),
        "hasActiveRun": !session.active_runs.is_empty(),
        "activeRunIds": session.active_runs.keys().collect::<Vec<_>>(),
    });
    if let Some(label) = &session.label {
        row["label"] = json!(label);
        row["displayName"] = json!(label);
    }
    if let Some(origin) = &session.origin {
        row["origin"] = json!(origin);
    }
    for name in session.settings.keys() {
        if !matches!(
            name.as_str(),
            "label" | "archived" | "pinned" | "unread" | "model"
        ) {
            row[name.as_str()] = setting(session, name);
        }
    }
    row
}
