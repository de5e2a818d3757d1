//! The gateway describing itself: `health`, `status`, `system-presence`.

use serde_json::{Value, json};

use clawback_events::event::{Event, PresenceChange, PresenceChanged, PresenceEntry};

use super::{Caller, Params, Reply, now_ms};
use crate::gateway::Gateway;

/// Longest `system-event` text kept in presence.
const EVENT_TEXT_CHARS_MAX: usize = 2_000;

/// `system-event`: a line of text from a client (a node, a script) shown in
/// presence. With `wake: true` the agent is told at once, as `wake` with
/// mode `now` does (see `wake`); OpenClaw's queueing for the next heartbeat
/// waits for heartbeats.
pub fn event(gateway: &std::sync::Arc<Gateway>, caller: &Caller, params: Option<&Value>) -> Reply {
    const KEYS: &[&str] = &[
        "text",
        "idempotencyKey",
        "sessionKey",
        "wake",
        "deviceId",
        "instanceId",
        "host",
        "ip",
        "mode",
        "version",
        "platform",
        "deviceFamily",
        "modelIdentifier",
        "lastInputSeconds",
        "reason",
        "roles",
        "scopes",
        "tags",
    ];
    let result = (|| {
        let params = Params::closed("system-event", params, KEYS)?;
        let text = params.str("text")?.trim();
        if text.is_empty() {
            return Err(params.invalid("at /text: must not be empty"));
        }
        let wake = params.opt_bool("wake")? == Some(true);
        let session_key = params.opt_str("sessionKey")?.map(str::to_owned);
        let text: String = text.chars().take(EVENT_TEXT_CHARS_MAX).collect();
        let woken = wake.then(|| (session_key, text.clone()));
        let string = |key: &str| params.opt_str(key).ok().flatten().map(str::to_owned);
        let key = string("instanceId").unwrap_or_else(|| format!("event:{}", caller.conn_id));
        let entry = PresenceEntry {
            host: string("host"),
            ip: string("ip"),
            version: string("version"),
            platform: string("platform"),
            mode: string("mode"),
            reason: string("reason").or_else(|| Some("system-event".to_owned())),
            text: Some(text),
            device_id: string("deviceId").or_else(|| caller.device_id.clone()),
            roles: Vec::new(),
            scopes: Vec::new(),
        };
        let event = Event::PresenceChanged(PresenceChanged {
            key,
            change: PresenceChange::Upsert(entry),
        });
        Ok((event, woken))
    })();
    match result {
        Ok((event, woken)) => {
            let mut reply = Reply::answer(Ok(json!({"ok": true})));
            reply.events.push(("gateway".to_owned(), event));
            if let Some((session_key, text)) = woken {
                let (gateway, caller) = (gateway.clone(), caller.clone());
                reply.after = Some(Box::new(move |_: &Gateway| {
                    let agent = session_key
                        .as_deref()
                        .and_then(clawback_projections::sessions::agent_in_key)
                        .unwrap_or(super::DEFAULT_AGENT)
                        .to_owned();
                    let key = session_key.unwrap_or_else(|| format!("agent:{agent}:main"));
                    super::wake::start_system_turn(&gateway, &caller, &key, &agent, &text);
                    json!({"ok": true})
                }));
            }
            reply
        }
        Err(error) => Reply::answer(Err(error)),
    }
}

/// OpenClaw's health snapshot, with the parts clawback has. Fields for
/// subsystems clawback does not run yet (plugins, channels, heartbeats) are
/// present and empty rather than invented.
pub fn health(gateway: &Gateway) -> Value {
    let started = std::time::Instant::now();
    let writer_stopped = gateway.log.stopped_reason();
    let state = gateway.state.read().expect("state lock");
    let sessions = &state.sessions.by_key;
    let mut recent: Vec<(&String, i64)> = sessions
        .iter()
        .map(|(key, session)| (key, session.updated_ts_ms))
        .collect();
    recent.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let recent: Vec<Value> = recent
        .into_iter()
        .take(10)
        .map(|(key, updated)| json!({"key": key, "updatedAt": updated}))
        .collect();
    let sessions_summary = json!({
        "path": gateway.log_path,
        "count": sessions.len(),
        "recent": recent,
    });
    json!({
        "ok": writer_stopped.is_none(),
        "ts": now_ms(),
        "durationMs": started.elapsed().as_millis() as u64,
        "plugins": {"loaded": [], "errors": [], "unavailable": []},
        "channels": {},
        "channelOrder": [],
        "channelLabels": {},
        "defaultAgentId": "main",
        "agents": [{"agentId": "main", "isDefault": true, "sessions": sessions_summary.clone()}],
        "sessions": sessions_summary,
        "log": {
            "nextSeq": gateway.log.next_seq(),
            "headHash": gateway.log.head_hash().to_hex(),
            "writerStopped": writer_stopped,
        },
    })
}

pub fn status(gateway: &Gateway) -> Value {
    let state = gateway.state.read().expect("state lock");
    let active_runs: usize = state
        .sessions
        .by_key
        .values()
        .map(|session| session.active_runs.len())
        .sum();
    json!({
        "runtimeVersion": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "uptimeMs": gateway.started.elapsed().as_millis() as u64,
        "heartbeat": {"defaultAgentId": "main", "agents": []},
        "channelSummary": [],
        "queuedSystemEvents": [],
        "sessions": {"count": state.sessions.by_key.len(), "activeRuns": active_runs},
        "connections": state.presence.connections.len(),
        "log": {"nextSeq": state.next_seq, "headHash": state.last_hash.to_hex()},
    })
}

/// Presence entries in OpenClaw's shape: the gateway itself, then clients.
pub fn presence(gateway: &Gateway) -> Vec<Value> {
    let state = gateway.state.read().expect("state lock");
    state
        .presence
        .entries
        .iter()
        .map(|(key, record)| {
            let entry = &record.entry;
            let mut value = json!({
                "instanceId": key,
                "ts": record.updated_ts_ms,
            });
            let fields = [
                ("host", &entry.host),
                ("ip", &entry.ip),
                ("version", &entry.version),
                ("platform", &entry.platform),
                ("mode", &entry.mode),
                ("reason", &entry.reason),
                ("text", &entry.text),
                ("deviceId", &entry.device_id),
            ];
            for (name, field) in fields {
                if let Some(field) = field {
                    value[name] = json!(field);
                }
            }
            if !entry.roles.is_empty() {
                value["roles"] = json!(entry.roles);
            }
            if !entry.scopes.is_empty() {
                value["scopes"] = json!(entry.scopes);
            }
            value
        })
        .collect()
}
