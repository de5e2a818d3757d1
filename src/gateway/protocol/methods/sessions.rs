//! `sessions.list`, `sessions.preview`, `sessions.patch`, `sessions.reset`
//! and `sessions.delete`, over the sessions projection.
//!
//! Writes follow OpenClaw's guards: `expectedSessionId` and
//! `expectedLifecycleRevision` refuse a change to a session that was reset
//! or replaced since the client looked. They are checked under the write
//! lock, with the events that make the change, so two clients cannot both
//! pass the same guard. Deleting a session ends it in the projections; its
//! history stays in the log (crypto-shredding is what makes content
//! unreadable, and is not built yet).

use std::sync::Arc;

use clawback_events::event::{Event, SessionCreated, SessionDeleted, SessionPatched, SessionReset};
use clawback_projections::sessions::Session;
use serde_json::{Value, json};

use super::super::frames::ErrorShape;
use super::session_row::{
    default_model, flag, last_interaction, lifecycle_revision, row, split_model,
};
use super::{Params, Reply, now_ms};
use crate::gateway::Gateway;

/// The largest page `sessions.list` returns, and its default.
const LIST_LIMIT_MAX: u64 = 1_000;
const LIST_LIMIT_DEFAULT: u64 = 200;
/// `sessions.preview`: items per session and characters per item.
const PREVIEW_ITEMS_DEFAULT: u64 = 12;
const PREVIEW_ITEMS_MAX: u64 = 100;
const PREVIEW_CHARS_DEFAULT: u64 = 240;
const PREVIEW_KEYS_MAX: usize = 64;
/// Longest label, as OpenClaw's `SessionLabelString`.
const LABEL_CHARS_MAX: usize = 512;

const LIST_KEYS: &[&str] = &[
    "limit",
    "offset",
    "activeMinutes",
    "activeOnly",
    "requireLastInteraction",
    "sortBy",
    "includeGlobal",
    "includeUnknown",
    "excludeSubagents",
    "excludeCron",
    "excludeSystem",
    "configuredAgentsOnly",
    "includeDerivedTitles",
    "includeLastMessage",
    "includeActivitySummary",
    "label",
    "projectId",
    "workspaceDir",
    "group",
    "pinned",
    "boardFace",
    "hasBoard",
    "creatorId",
    "ownerId",
    "ownerFirst",
    "involvingMe",
    "profileRelation",
    "involvingProfileId",
    "includePeople",
    "spawnedBy",
    "agentId",
    "search",
    "archived",
];

/// The settings `sessions.patch` may change (OpenClaw 2026.9.6's
/// `SessionsPatchMutationProperties`).
const PATCH_SETTINGS: &[&str] = &[
    "label",
    "autoLabel",
    "icon",
    "color",
    "category",
    "boardFace",
    "boardPresentation",
    "statusNote",
    "attention",
    "ttlMinutes",
    "archived",
    "pinned",
    "unread",
    "contextWindow",
    "thinkingLevel",
    "fastMode",
    "toolOverrides",
    "verboseLevel",
    "traceLevel",
    "reasoningLevel",
    "responseUsage",
    "elevatedLevel",
    "execHost",
    "execSecurity",
    "execAsk",
    "execNode",
    "permissionMode",
    "sandboxMode",
    "nativeRuntimeConsent",
    "model",
    "agentRuntime",
    "completionOwnerSessionKey",
    "inheritedToolPolicyVersion",
    "inheritedToolAllow",
    "inheritedToolDeny",
    "sendPolicy",
    "groupActivation",
];
const PATCH_GUARDS: &[&str] = &[
    "key",
    "agentId",
    "expectedSessionId",
    "expectedLifecycleRevision",
    "expectedPermissionMode",
    "expectedSandboxMode",
    "expectedNativeRuntimeConsent",
    "expectedToolOverrides",
    "expectedMarkedUnreadAt",
];
const BOOLEAN_SETTINGS: &[&str] = &["archived", "pinned", "unread", "fastMode", "autoLabel"];

/// `sessions.subscribe`: the client wants session events. clawback sends
/// `sessions.changed` to every reader already, so this only confirms, and
/// with list params also answers the list (as OpenClaw does).
pub fn subscribe(gateway: &Gateway, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let has_params = matches!(params, Some(Value::Object(object)) if !object.is_empty());
    if !has_params {
        Params::closed("sessions.subscribe", params, &[])?;
        return Ok(json!({"subscribed": true}));
    }
    Ok(json!({"subscribed": true, "list": list(gateway, params)?}))
}

/// `sessions.describe {key, agentId?}`: one session's row, or `null`.
pub fn describe(gateway: &Gateway, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let params = Params::closed(
        "sessions.describe",
        params,
        &[
            "key",
            "agentId",
            "includeDerivedTitles",
            "includeLastMessage",
        ],
    )?;
    let key = params.str("key")?.trim();
    if key.is_empty() {
        return Err(params.invalid("at /key: must NOT have fewer than 1 characters"));
    }
    params.opt_str("agentId")?;
    params.opt_bool("includeDerivedTitles")?;
    params.opt_bool("includeLastMessage")?;
    let config = gateway.config();
    let state = gateway.state.read().expect("state lock");
    let session = state
        .sessions
        .by_key
        .get(key)
        .map(|session| row(session, &config));
    Ok(json!({"session": session}))
}

pub fn list(gateway: &Gateway, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let params = Params::closed("sessions.list", params, LIST_KEYS)?;
    let limit = params.opt_u64("limit")?.unwrap_or(LIST_LIMIT_DEFAULT);
    if limit == 0 {
        return Err(params.invalid("at /limit: must be >= 1"));
    }
    let limit = limit.min(LIST_LIMIT_MAX);
    let offset = params.opt_u64("offset")?.unwrap_or(0);
    let agent = params.opt_str("agentId")?;
    let label = params.opt_str("label")?;
    let search = params.opt_str("search")?.map(str::to_lowercase);
    let pinned = params.opt_bool("pinned")?;
    let active_only = params.opt_bool("activeOnly")?.unwrap_or(false);
    let active_minutes = params.opt_u64("activeMinutes")?;
    let archived = match params.get("archived") {
        None => Some(false),
        Some(Value::Bool(flag)) => Some(*flag),
        Some(Value::String(all)) if all == "all" => None,
        Some(_) => return Err(params.invalid("at /archived: must be boolean or \"all\"")),
    };
    let sort_by = params.opt_choice("sortBy", &["updatedAt", "lastInteractionAt", "activity"])?;
    let now = now_ms();
    let state = gateway.state.read().expect("state lock");
    let mut rows: Vec<&Session> = state
        .sessions
        .by_key
        .values()
        .filter(|session| agent.is_none_or(|agent| session.agent_id == agent))
        .filter(|session| label.is_none_or(|label| session.label.as_deref() == Some(label)))
        .filter(|session| archived.is_none_or(|archived| flag(session, "archived") == archived))
        .filter(|session| pinned.is_none_or(|pinned| flag(session, "pinned") == pinned))
        .filter(|session| !active_only || !session.active_runs.is_empty())
        .filter(|session| {
            active_minutes
                .is_none_or(|minutes| now - session.updated_ts_ms <= minutes as i64 * 60_000)
        })
        .filter(|session| {
            search.as_deref().is_none_or(|needle| {
                session.key.to_lowercase().contains(needle)
                    || session
                        .label
                        .as_deref()
                        .is_some_and(|label| label.to_lowercase().contains(needle))
            })
        })
        .collect();
    let sort_key = |session: &Session| match sort_by {
        Some("lastInteractionAt") => last_interaction(session).unwrap_or(0),
        _ => session.updated_ts_ms,
    };
    rows.sort_by(|a, b| {
        sort_key(b)
            .cmp(&sort_key(a))
            .then_with(|| a.key.cmp(&b.key))
    });
    let total = rows.len() as u64;
    let config = gateway.config();
    let default_model = default_model(&config);
    let page: Vec<Value> = rows
        .into_iter()
        .skip(offset as usize)
        .take(limit as usize)
        .map(|session| row(session, &config))
        .collect();
    let next = offset + page.len() as u64;
    let (provider, model) = split_model(default_model.as_deref());
    Ok(json!({
        "ts": now,
        "path": gateway.log_path,
        "count": page.len(),
        "totalCount": total,
        "limitApplied": limit,
        "nextOffset": if next < total { json!(next) } else { Value::Null },
        "hasMore": next < total,
        "owners": [],
        "defaults": {"modelProvider": provider, "model": model, "contextTokens": Value::Null},
        "sessions": page,
    }))
}

pub fn preview(gateway: &Gateway, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let params = Params::closed("sessions.preview", params, &["keys", "limit", "maxChars"])?;
    let keys: Vec<&str> = match params.get("keys") {
        Some(Value::Array(keys)) if !keys.is_empty() && keys.iter().all(non_empty_string) => {
            keys.iter().filter_map(Value::as_str).collect()
        }
        Some(_) => return Err(params.invalid("at /keys: must be a non-empty array of strings")),
        None => return Err(params.invalid("must have required property 'keys'")),
    };
    if keys.len() > PREVIEW_KEYS_MAX {
        return Err(params.invalid(format!("at /keys: at most {PREVIEW_KEYS_MAX} keys")));
    }
    let limit = params
        .opt_u64("limit")?
        .unwrap_or(PREVIEW_ITEMS_DEFAULT)
        .clamp(1, PREVIEW_ITEMS_MAX) as usize;
    let max_chars = params.opt_u64("maxChars")?.unwrap_or(PREVIEW_CHARS_DEFAULT);
    if max_chars < 20 {
        return Err(params.invalid("at /maxChars: must be >= 20"));
    }
    let entries: Vec<(
        String,
        Option<Vec<clawback_projections::sessions::TranscriptEntry>>,
    )> = {
        let state = gateway.state.read().expect("state lock");
        keys.iter()
            .map(|key| {
                let entries = state.sessions.by_key.get(*key).map(|session| {
                    let skip = session.transcript.len().saturating_sub(limit);
                    session.transcript[skip..].to_vec()
                });
                ((*key).to_owned(), entries)
            })
            .collect()
    };
    let store = gateway.log.store();
    let previews: Vec<Value> = entries
        .into_iter()
        .map(|(key, entries)| match entries {
            None => json!({"key": key, "status": "missing", "items": []}),
            Some(entries) => {
                let items: Vec<Value> = entries
                    .iter()
                    .map(|entry| {
                        let text = clawback_replay::session_state::message_text(&**store, &*gateway.keyring, entry);
                        json!({"role": entry.role.as_str(), "text": truncate(&text, max_chars as usize)})
                    })
                    .collect();
                json!({"key": key, "status": "ok", "items": items})
            }
        })
        .collect();
    Ok(json!({"ts": now_ms(), "previews": previews}))
}

pub async fn patch(gateway: &Arc<Gateway>, params: Option<&Value>) -> Reply {
    let allowed: Vec<&str> = PATCH_GUARDS.iter().chain(PATCH_SETTINGS).copied().collect();
    let params = match Params::closed("sessions.patch", params, &allowed) {
        Ok(params) => params,
        Err(error) => return Reply::answer(Err(error)),
    };
    let key = match session_key(&params) {
        Ok(key) => key,
        Err(error) => return Reply::answer(Err(error)),
    };
    let mut set = Vec::new();
    let mut cleared = Vec::new();
    for name in PATCH_SETTINGS {
        if !params.has(name) {
            continue;
        }
        match params.get(name) {
            None => cleared.push((*name).to_owned()),
            Some(value) => {
                if let Err(error) = check_setting(&params, name, value) {
                    return Reply::answer(Err(error));
                }
                set.push(((*name).to_owned(), value.to_string()));
            }
        }
    }
    if set.is_empty() && cleared.is_empty() {
        return Reply::answer(Err(
            params.invalid("nothing to change: name at least one setting")
        ));
    }
    let lock = gateway.writes.clone().lock_owned().await;
    let mut events = Vec::new();
    {
        let state = gateway.state.read().expect("state lock");
        match state.sessions.by_key.get(key) {
            Some(session) => {
                if let Err(error) = check_guards(&params, session) {
                    return Reply::answer(Err(error));
                }
            }
            None => {
                if params.get("expectedSessionId").is_some() {
                    return Reply::answer(Err(ErrorShape::invalid(format!(
                        "session {key} no longer exists"
                    ))));
                }
                // Patching a key that has no session yet creates it, as
                // OpenClaw does (clients set a model before the first turn).
                events.push(Event::SessionCreated(SessionCreated {
                    session_key: key.to_owned(),
                    session_id: uuid::Uuid::new_v4().to_string(),
                    agent_id: agent_of(key, &params),
                    label: None,
                    origin: Some("sessions.patch".to_owned()),
                }));
            }
        }
    }
    events.push(Event::SessionPatched(SessionPatched {
        session_key: key.to_owned(),
        set,
        cleared,
    }));
    finish(gateway, key, events, lock, |gateway, key| {
        let state = gateway.state.read().expect("state lock");
        let session = state.sessions.by_key.get(key);
        json!({"ok": true, "path": gateway.log_path, "key": key,
               "entry": session.map(|session| row(session, &gateway.config()))})
    })
}

pub async fn reset(gateway: &Arc<Gateway>, params: Option<&Value>) -> Reply {
    let params = match Params::closed(
        "sessions.reset",
        params,
        // `purge` (clawback): also destroy the content keys of the
        // session so far; the main session cannot be deleted, so this is
        // how its content is forgotten.
        &["key", "agentId", "reason", "expectedSessionId", "purge"],
    ) {
        Ok(params) => params,
        Err(error) => return Reply::answer(Err(error)),
    };
    let (key, reason) = match (
        session_key(&params),
        params.opt_choice("reason", &["new", "reset"]),
    ) {
        (Ok(key), Ok(reason)) => (key, reason.unwrap_or("reset")),
        (Err(error), _) | (_, Err(error)) => return Reply::answer(Err(error)),
    };
    let purging = match params.opt_bool("purge") {
        Ok(purge) => purge == Some(true),
        Err(error) => return Reply::answer(Err(error)),
    };
    let lock = gateway.writes.clone().lock_owned().await;
    {
        let state = gateway.state.read().expect("state lock");
        let Some(session) = state.sessions.by_key.get(key) else {
            return Reply::answer(Err(not_found(key)));
        };
        if let Err(error) = check_guards(&params, session) {
            return Reply::answer(Err(error));
        }
    }
    let event = Event::SessionReset(SessionReset {
        session_key: key.to_owned(),
        new_session_id: uuid::Uuid::new_v4().to_string(),
        reason: reason.to_owned(),
    });
    let answer = |gateway: &Gateway, key: &str| {
        let state = gateway.state.read().expect("state lock");
        let session = state.sessions.by_key.get(key);
        json!({"ok": true, "key": key, "entry": session.map(|session| row(session, &gateway.config()))})
    };
    if purging {
        return super::session_purge::purge(gateway, key, event, lock, answer);
    }
    finish(gateway, key, vec![event], lock, answer)
}

pub async fn delete(gateway: &Arc<Gateway>, params: Option<&Value>) -> Reply {
    let params = match Params::closed(
        "sessions.delete",
        params,
        &[
            "key",
            "agentId",
            "deleteTranscript",
            "expectedSessionId",
            "expectedLifecycleRevision",
            "expectedSessionUpdatedAt",
            "emitLifecycleHooks",
            "archivedOnly",
            // clawback: also destroy the session's content keys.
            "purge",
        ],
    ) {
        Ok(params) => params,
        Err(error) => return Reply::answer(Err(error)),
    };
    let key = match session_key(&params) {
        Ok(key) => key,
        Err(error) => return Reply::answer(Err(error)),
    };
    for flag in [
        "deleteTranscript",
        "emitLifecycleHooks",
        "archivedOnly",
        "purge",
    ] {
        if let Err(error) = params.opt_bool(flag) {
            return Reply::answer(Err(error));
        }
    }
    let lock = gateway.writes.clone().lock_owned().await;
    {
        let state = gateway.state.read().expect("state lock");
        let Some(session) = state.sessions.by_key.get(key) else {
            return Reply::answer(Err(not_found(key)));
        };
        if let Err(error) = check_guards(&params, session) {
            return Reply::answer(Err(error));
        }
        if params.opt_bool("archivedOnly").ok().flatten() == Some(true)
            && !flag(session, "archived")
        {
            return Reply::answer(Err(ErrorShape::invalid(format!(
                "session {key} is not archived (archivedOnly)"
            ))));
        }
        if let Some(expected) = params.get("expectedSessionUpdatedAt")
            && expected.as_i64() != Some(session.updated_ts_ms)
        {
            return Reply::answer(Err(changed(key)));
        }
    }
    if key.ends_with(":main") && key.starts_with("agent:") {
        return Reply::answer(Err(ErrorShape::invalid(format!(
            "cannot delete the main session {key}; use sessions.reset to start it over"
        ))));
    }
    let event = Event::SessionDeleted(SessionDeleted {
        session_key: key.to_owned(),
    });
    let answer =
        |_: &Gateway, key: &str| json!({"ok": true, "key": key, "deleted": true, "archived": []});
    if params.opt_bool("purge").ok().flatten() == Some(true) {
        return super::session_purge::purge(gateway, key, event, lock, answer);
    }
    finish(gateway, key, vec![event], lock, answer)
}

/// Packs the events and the answer, which is computed once the events are
/// applied, so it shows the session as they left it.
pub(super) fn finish(
    gateway: &Arc<Gateway>,
    key: &str,
    events: Vec<Event>,
    lock: tokio::sync::OwnedMutexGuard<()>,
    answer: impl Fn(&Gateway, &str) -> Value + Send + 'static,
) -> Reply {
    let mut reply = Reply::answer(Ok(Value::Null));
    reply.events = events
        .into_iter()
        .map(|event| (key.to_owned(), event))
        .collect();
    reply.write_lock = Some(lock);
    let key = key.to_owned();
    reply.after = Some(Box::new(move |gateway: &Gateway| answer(gateway, &key)));
    let _ = gateway;
    reply
}

pub(super) fn check_setting(
    params: &Params<'_>,
    name: &str,
    value: &Value,
) -> Result<(), ErrorShape> {
    let fail = |what: &str| Err(params.invalid(format!("at /{name}: must be {what}")));
    match name {
        _ if BOOLEAN_SETTINGS.contains(&name) => {
            if value.is_boolean() {
                Ok(())
            } else {
                fail("boolean")
            }
        }
        "label" => match value.as_str() {
            Some(label) if !label.trim().is_empty() && label.chars().count() <= LABEL_CHARS_MAX => {
                Ok(())
            }
            _ => fail("a non-empty string of at most 512 characters"),
        },
        "sendPolicy" => match value.as_str() {
            Some("allow" | "deny") => Ok(()),
            _ => fail("equal to one of the allowed values (allow, deny)"),
        },
        "groupActivation" => match value.as_str() {
            Some("mention" | "always") => Ok(()),
            _ => fail("equal to one of the allowed values (mention, always)"),
        },
        "responseUsage" => match value.as_str() {
            Some("off" | "tokens" | "full" | "on") => Ok(()),
            _ => fail("equal to one of the allowed values (off, tokens, full, on)"),
        },
        "contextWindow" | "ttlMinutes" => {
            if value.as_u64().is_some() {
                Ok(())
            } else {
                fail("integer >= 0")
            }
        }
        "toolOverrides"
        | "boardPresentation"
        | "attention"
        | "inheritedToolAllow"
        | "inheritedToolDeny"
        | "inheritedToolPolicyVersion" => Ok(()),
        _ => match value.as_str() {
            Some(text) if !text.is_empty() => Ok(()),
            _ => fail("a non-empty string"),
        },
    }
}

fn check_guards(params: &Params<'_>, session: &Session) -> Result<(), ErrorShape> {
    if let Ok(Some(expected)) = params.opt_str("expectedSessionId")
        && expected != session.session_id
    {
        return Err(changed(&session.key));
    }
    if let Ok(Some(expected)) = params.opt_str("expectedLifecycleRevision")
        && expected != lifecycle_revision(session)
    {
        return Err(changed(&session.key));
    }
    Ok(())
}

fn changed(key: &str) -> ErrorShape {
    ErrorShape::invalid(format!(
        "session {key} changed since it was read (reset or replaced); re-read it and retry"
    ))
    .with_details(json!({"code": "SESSION_CHANGED", "key": key}))
}

fn not_found(key: &str) -> ErrorShape {
    ErrorShape::invalid(format!("session not found: {key}"))
        .with_details(json!({"code": "SESSION_NOT_FOUND", "key": key}))
}

fn session_key<'a>(params: &Params<'a>) -> Result<&'a str, ErrorShape> {
    let key = params.str("key")?;
    if key.trim().is_empty() || key.len() > 512 || key.chars().any(char::is_control) {
        return Err(params.invalid("at /key: must be a non-empty session key"));
    }
    Ok(key)
}

/// `agent:<id>:...` names its agent; other keys belong to `agentId` or main.
fn agent_of(key: &str, params: &Params<'_>) -> String {
    clawback_projections::sessions::agent_in_key(key)
        .or_else(|| params.opt_str("agentId").ok().flatten())
        .unwrap_or(super::agents::DEFAULT_AGENT)
        .to_owned()
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

fn non_empty_string(value: &Value) -> bool {
    value.as_str().is_some_and(|text| !text.is_empty())
}

/// `sessions.compact`: summarizes the session's older messages through its
/// model now (between turns: it waits for the session's lane).
pub async fn compact(
    gateway: &Arc<Gateway>,
    caller: &super::Caller,
    params: Option<&Value>,
) -> Reply {
    let parsed = (|| {
        let params = Params::closed("sessions.compact", params, &["key", "agentId", "maxLines"])?;
        params.opt_u64("maxLines")?;
        Ok::<_, ErrorShape>(session_key(&params)?.to_owned())
    })();
    let key = match parsed {
        Ok(key) => key,
        Err(error) => return Reply::answer(Err(error)),
    };
    if !gateway
        .state
        .read()
        .expect("state lock")
        .sessions
        .by_key
        .contains_key(&key)
    {
        return Reply::answer(Err(not_found(&key)));
    }
    let lane = gateway.agent.lane(&key);
    let _turn = lane.lock().await;
    let actor = caller.actor();
    let result = crate::agent::compact::compact(gateway, &gateway.agent, &key, &actor).await;
    Reply::answer(Ok(match result {
        Ok(done) => {
            let mut answer = json!({"ok": done.compacted || done.reason.as_deref().is_some_and(|r| r.starts_with("nothing")),
                                    "key": key, "compacted": done.compacted,
                                    "messagesCompacted": done.messages_compacted});
            if let Some(reason) = done.reason {
                answer["reason"] = json!(reason);
            }
            answer
        }
        Err(reason) => json!({"ok": false, "key": key, "compacted": false, "reason": reason}),
    }))
}
