//! The methods clawback answers, and the honest refusal for the rest.
//!
//! Why every OpenClaw method is routed here even when clawback cannot do it
//! yet: a client must be able to tell "unknown method" (a typo, or a method
//! OpenClaw does not have) from "known, not available in this gateway yet".
//! The second gets `UNAVAILABLE` with the reason, never a fake success.

use serde_json::{Value, json};

use super::frames::{ErrorShape, codes};
use super::scopes;
use crate::gateway::Gateway;

/// Methods answered for real, advertised in `hello-ok.features.methods`.
pub const IMPLEMENTED: &[&str] = &[
    "health",
    "status",
    "system-presence",
    "node.list",
    "node.pair.list",
    "device.pair.list",
    "cron.list",
];

/// Events this gateway sends, advertised in `hello-ok.features.events`.
pub const EVENTS: &[&str] = &["connect.challenge", "tick", "shutdown"];

/// Answers one authorized request.
pub fn call(gateway: &Gateway, method: &str, params: Option<&Value>) -> Result<Value, ErrorShape> {
    match method {
        "health" => {
            no_params(method, params)?;
            Ok(health(gateway))
        }
        "status" => {
            no_params(method, params)?;
            Ok(status(gateway))
        }
        "system-presence" => {
            no_params(method, params)?;
            Ok(Value::Array(presence(gateway)))
        }
        "node.list" => {
            no_params(method, params)?;
            Ok(json!({"ts": now_ms(), "nodes": paired_nodes(gateway)}))
        }
        "node.pair.list" => {
            no_params(method, params)?;
            // Pairing requests are not queued yet (remote devices and nodes
            // are refused with PAIRING_REQUIRED), so none is ever pending.
            Ok(json!({"pending": [], "paired": paired_nodes(gateway)}))
        }
        "device.pair.list" => {
            no_params(method, params)?;
            Ok(json!({"pending": [], "paired": paired_devices(gateway)}))
        }
        "cron.list" => cron_list(gateway, params),
        "connect" => Err(ErrorShape::invalid(
            "connect is only valid as the first request",
        )),
        known if scopes::is_known(known) => Err(ErrorShape {
            code: codes::UNAVAILABLE,
            message: format!("{known} is not available in clawback yet"),
            details: Some(json!({"code": "NOT_IMPLEMENTED", "method": known})),
            retryable: Some(false),
            retry_after_ms: None,
        }),
        unknown => Err(ErrorShape::invalid(format!("unknown method: {unknown}"))),
    }
}

/// Parameterless methods accept a missing `params` or `{}` (the CLI sends
/// neither or the empty object), and nothing else: params are closed.
fn no_params(method: &str, params: Option<&Value>) -> Result<(), ErrorShape> {
    match params {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(object)) => match object.keys().next() {
            None => Ok(()),
            Some(key) => Err(ErrorShape::invalid(format!(
                "invalid {method} params: must NOT have additional properties (unexpected property '{key}')"
            ))),
        },
        Some(_) => Err(ErrorShape::invalid(format!(
            "invalid {method} params: must be object"
        ))),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
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

fn status(gateway: &Gateway) -> Value {
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

/// `cron.list` params (closed), as OpenClaw 2026.9.6 declares them.
const CRON_LIST_KEYS: &[&str] = &[
    "includeDisabled",
    "limit",
    "offset",
    "query",
    "enabled",
    "agentId",
    "sortBy",
    "sortDir",
    "compact",
];
/// The largest page `cron.list` returns.
const CRON_LIST_LIMIT_MAX: u64 = 200;

/// Cron jobs from the cron projection, paged. Jobs are added by `cron.add`,
/// which is not built yet, so on a clawback log this is empty; OpenClaw's
/// built-in heartbeat job does not exist here because heartbeats do not.
fn cron_list(gateway: &Gateway, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let empty = serde_json::Map::new();
    let params = match params {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(object)) => object,
        Some(_) => {
            return Err(ErrorShape::invalid(
                "invalid cron.list params: must be object",
            ));
        }
    };
    if let Some(key) = params
        .keys()
        .find(|key| !CRON_LIST_KEYS.contains(&key.as_str()))
    {
        return Err(ErrorShape::invalid(format!(
            "invalid cron.list params: must NOT have additional properties (unexpected property '{key}')"
        )));
    }
    let number = |key: &str, default: u64| -> Result<u64, ErrorShape> {
        match params.get(key) {
            None => Ok(default),
            Some(value) => value.as_u64().ok_or_else(|| {
                ErrorShape::invalid(format!(
                    "invalid cron.list params: at /{key}: must be integer >= 0"
                ))
            }),
        }
    };
    let limit = number("limit", CRON_LIST_LIMIT_MAX)?;
    if limit == 0 || limit > CRON_LIST_LIMIT_MAX {
        return Err(ErrorShape::invalid(format!(
            "invalid cron.list params: at /limit: must be between 1 and {CRON_LIST_LIMIT_MAX}"
        )));
    }
    let offset = number("offset", 0)?;
    let include_disabled = params.get("includeDisabled") == Some(&Value::Bool(true));
    let state = gateway.state.read().expect("state lock");
    let jobs: Vec<Value> = state
        .cron
        .jobs
        .values()
        .filter(|job| include_disabled || job.enabled)
        .map(|job| {
            let payload = serde_json::from_str::<Value>(&job.payload)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| json!({"kind": "unknown"}));
            json!({
                "id": job.job_id,
                "name": job.name,
                "enabled": job.enabled,
                "schedule": {"kind": "cron", "expr": job.schedule},
                "payload": payload,
                "state": {"lastRunAtMs": job.runs.back().map(|run| run.fired_ts_ms)},
            })
        })
        .collect();
    let total = jobs.len() as u64;
    let page: Vec<Value> = jobs
        .into_iter()
        .skip(offset as usize)
        .take(limit as usize)
        .collect();
    let next = offset + page.len() as u64;
    // The inventory's revision: a digest of the cron projection, so it moves
    // only when jobs change (not with every request the log records), which
    // is what a client paging through the list needs to detect a change.
    let encoded = postcard::to_allocvec(&state.cron).unwrap_or_default();
    let revision = format!("cron:{}", &blake3::hash(&encoded).to_hex()[..16]);
    Ok(json!({
        "snapshotRevision": revision,
        "jobs": page,
        "total": total,
        "offset": offset,
        "limit": limit,
        "hasMore": next < total,
        "nextOffset": if next < total { json!(next) } else { Value::Null },
    }))
}

/// Paired nodes, oldest pairing first, from the devices projection.
fn paired_nodes(gateway: &Gateway) -> Vec<Value> {
    let state = gateway.state.read().expect("state lock");
    let mut nodes: Vec<&clawback_projections::devices::Node> =
        state.devices.nodes.values().collect();
    nodes.sort_by_key(|node| node.paired_seq);
    nodes
        .into_iter()
        .map(|node| {
            json!({
                "nodeId": node.paired.node_id,
                "displayName": node.paired.display_name,
                "platform": node.paired.platform,
                "caps": node.paired.capabilities,
                "paired": true,
                "connected": false,
                "approvedAtMs": node.paired_ts_ms,
            })
        })
        .collect()
}

/// Paired, unrevoked devices, oldest pairing first.
fn paired_devices(gateway: &Gateway) -> Vec<Value> {
    let state = gateway.state.read().expect("state lock");
    let mut devices: Vec<&clawback_projections::devices::Device> = state
        .devices
        .devices
        .values()
        .filter(|device| state.devices.is_trusted(&device.paired.device_id))
        .collect();
    devices.sort_by_key(|device| device.paired_seq);
    devices
        .into_iter()
        .map(|device| {
            json!({
                "deviceId": device.paired.device_id,
                "publicKey": device.paired.public_key,
                "role": device.paired.role,
                "roles": [device.paired.role],
                "scopes": device.paired.scopes,
                "approvedBy": device.paired.approved_by,
                "createdAtMs": device.paired_ts_ms,
                "approvedAtMs": device.paired_ts_ms,
            })
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameterless_methods_accept_nothing_or_empty_and_refuse_keys() {
        assert!(no_params("health", None).is_ok());
        assert!(no_params("health", Some(&json!({}))).is_ok());
        let error = no_params("health", Some(&json!({"x": 1}))).unwrap_err();
        assert!(
            error.message.starts_with("invalid health params:"),
            "{error:?}"
        );
        assert!(no_params("health", Some(&json!([]))).is_err());
    }
}
