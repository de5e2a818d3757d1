//! Cron jobs, from the cron projection.

use serde_json::{Value, json};

use super::super::frames::ErrorShape;
use crate::gateway::Gateway;

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
pub fn list(gateway: &Gateway, params: Option<&Value>) -> Result<Value, ErrorShape> {
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
