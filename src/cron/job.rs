//! A cron job's definition: checked, defaulted and put in canonical form
//! before it is recorded, so the scheduler only ever reads jobs it can run.
//!
//! What clawback cannot execute is refused here with the reason, never
//! stored to fail later: command and script payloads (they need the exec
//! tool and its approvals), condition triggers, webhook delivery, failure
//! alerts (they need channels), and heartbeat wakes (clawback runs no
//! heartbeats; `wakeMode: "now"` works).

use serde_json::{Map, Value, json};

use super::schedule::Schedule;

/// Fields of `cron.add` besides the schedule, as OpenClaw 2026.9.6 declares
/// them (closed object).
pub const ADD_KEYS: &[&str] = &[
    "name",
    "declarationKey",
    "displayName",
    "owner",
    "agentId",
    "sessionKey",
    "description",
    "enabled",
    "deleteAfterRun",
    "schedule",
    "pacing",
    "trigger",
    "sessionTarget",
    "wakeMode",
    "payload",
    "delivery",
    "failureAlert",
];

/// A job ready to record: its schedule and the rest of its definition, both
/// canonical JSON objects.
pub struct Definition {
    pub schedule: Value,
    pub definition: Map<String, Value>,
    pub enabled: bool,
}

/// Checks a full job (the params of `cron.add`, or a stored job with a
/// patch applied). Errors are worded `at /path: ...` for the caller's
/// `invalid <method> params:` prefix.
pub fn check(job: &Map<String, Value>, now_ms: i64) -> Result<Definition, String> {
    if let Some(key) = job.keys().find(|key| !ADD_KEYS.contains(&key.as_str())) {
        return Err(format!(
            "must NOT have additional properties (unexpected property '{key}')"
        ));
    }
    let text = |key: &str, required: bool| -> Result<Option<String>, String> {
        match job.get(key) {
            None | Some(Value::Null) if !required => Ok(None),
            None => Err(format!("must have required property '{key}'")),
            Some(Value::String(text)) if !text.trim().is_empty() => Ok(Some(text.clone())),
            Some(_) => Err(format!("at /{key}: must be a non-empty string")),
        }
    };
    let flag = |key: &str| -> Result<Option<bool>, String> {
        match job.get(key) {
            None => Ok(None),
            Some(Value::Bool(value)) => Ok(Some(*value)),
            Some(_) => Err(format!("at /{key}: must be boolean")),
        }
    };
    let name = text("name", true)?.unwrap_or_default();
    let (schedule, schedule_json) = Schedule::normalize(
        job.get("schedule")
            .ok_or("must have required property 'schedule'")?,
        now_ms,
    )?;
    if job.get("trigger").is_some_and(|trigger| !trigger.is_null()) {
        return Err("at /trigger: condition scripts need a script runtime, which clawback does not have yet".to_owned());
    }
    if job
        .get("failureAlert")
        .is_some_and(|alert| !alert.is_null() && *alert != Value::Bool(false))
    {
        return Err("at /failureAlert: failure alerts are sent to chat channels, which clawback does not have yet; use false".to_owned());
    }
    let payload = payload(
        job.get("payload")
            .ok_or("must have required property 'payload'")?,
    )?;
    let kind = payload["kind"].as_str().unwrap_or_default().to_owned();
    let session_key = text("sessionKey", false)?;
    let target = session_target(
        job.get("sessionTarget")
            .ok_or("must have required property 'sessionTarget'")?,
        session_key.as_deref(),
    )?;
    if kind == "systemEvent" && target != "main" {
        return Err(
            "at /payload: systemEvent jobs run in the main session: use sessionTarget \"main\""
                .to_owned(),
        );
    }
    if kind == "agentTurn" && target == "main" {
        return Err("at /sessionTarget: main-session jobs carry a systemEvent payload; use \"isolated\" or \"session:<key>\" for an agentTurn".to_owned());
    }
    let wake_mode = match job.get("wakeMode").and_then(Value::as_str) {
        Some("now") => "now",
        Some("next-heartbeat") => {
            return Err("at /wakeMode: clawback runs no heartbeats yet, so nothing would pick the job up; use \"now\"".to_owned());
        }
        _ => return Err("at /wakeMode: must be \"now\" or \"next-heartbeat\"".to_owned()),
    };
    let delivery = delivery(job.get("delivery"), &kind)?;
    let mut definition = Map::new();
    definition.insert("name".into(), json!(name));
    for key in ["displayName", "declarationKey", "description"] {
        if let Some(value) = text(key, false)? {
            definition.insert(key.into(), json!(value));
        }
    }
    if let Some(agent) = text("agentId", false)? {
        definition.insert("agentId".into(), json!(agent.to_ascii_lowercase()));
    }
    if let Some(key) = session_key {
        definition.insert("sessionKey".into(), json!(key));
    }
    for key in ["owner", "pacing"] {
        match job.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Object(object)) => {
                definition.insert(key.into(), Value::Object(object.clone()));
            }
            Some(_) => return Err(format!("at /{key}: must be object")),
        }
    }
    // One-shot jobs delete themselves after a successful run unless told
    // otherwise (OpenClaw's default).
    let delete_after_run = flag("deleteAfterRun")?.unwrap_or(schedule.is_one_shot());
    if delete_after_run {
        definition.insert("deleteAfterRun".into(), json!(true));
    }
    definition.insert("sessionTarget".into(), json!(target));
    definition.insert("wakeMode".into(), json!(wake_mode));
    definition.insert("payload".into(), payload);
    if let Some(delivery) = delivery {
        definition.insert("delivery".into(), delivery);
    }
    if job.get("failureAlert") == Some(&Value::Bool(false)) {
        definition.insert("failureAlert".into(), json!(false));
    }
    Ok(Definition {
        schedule: schedule_json,
        definition,
        enabled: flag("enabled")?.unwrap_or(true),
    })
}

/// `main`, `isolated`, `session:<key>`; `current` means the job's
/// `sessionKey` (a job created over the protocol has no session of its own).
fn session_target(value: &Value, session_key: Option<&str>) -> Result<String, String> {
    match value.as_str() {
        Some(target @ ("main" | "isolated")) => Ok(target.to_owned()),
        Some("current") => session_key
            .map(|key| format!("session:{key}"))
            .ok_or_else(|| "at /sessionTarget: \"current\" needs the job's sessionKey; or use \"session:<key>\"".to_owned()),
        Some(target) if target.len() > "session:".len() && target.starts_with("session:") => {
            Ok(target.to_owned())
        }
        _ => Err("at /sessionTarget: must be \"main\", \"isolated\", \"current\" or \"session:<key>\"".to_owned()),
    }
}

fn payload(value: &Value) -> Result<Value, String> {
    let object = value.as_object().ok_or("at /payload: must be object")?;
    let (allowed, required): (&[&str], &str) = match object.get("kind").and_then(Value::as_str) {
        Some("agentTurn") => (
            &[
                "kind",
                "message",
                "model",
                "fallbacks",
                "thinking",
                "timeoutSeconds",
                "allowUnsafeExternalContent",
                "lightContext",
                "toolsAllow",
                "toolsAllowIsDefault",
            ],
            "message",
        ),
        Some("systemEvent") => (
            &["kind", "text", "toolsAllow", "toolsAllowIsDefault"],
            "text",
        ),
        Some(kind @ ("command" | "script")) => {
            return Err(format!(
                "at /payload/kind: \"{kind}\" payloads run on the gateway host through the exec tool and its approvals, which clawback does not have yet; use \"agentTurn\""
            ));
        }
        _ => return Err("at /payload/kind: must be \"agentTurn\" or \"systemEvent\"".to_owned()),
    };
    if let Some(key) = object.keys().find(|key| !allowed.contains(&key.as_str())) {
        return Err(format!(
            "at /payload: must NOT have additional properties (unexpected property '{key}')"
        ));
    }
    match object.get(required) {
        Some(Value::String(text)) if !text.trim().is_empty() => {}
        _ => {
            return Err(format!(
                "at /payload/{required}: must be a non-empty string"
            ));
        }
    }
    for key in ["model", "thinking"] {
        if object.get(key).is_some_and(|value| !value.is_string()) {
            return Err(format!("at /payload/{key}: must be string"));
        }
    }
    if let Some(seconds) = object.get("timeoutSeconds")
        && !seconds.as_f64().is_some_and(|seconds| seconds >= 0.0)
    {
        return Err("at /payload/timeoutSeconds: must be a number >= 0".to_owned());
    }
    for key in ["fallbacks", "toolsAllow"] {
        if let Some(list) = object.get(key)
            && !list
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_string))
        {
            return Err(format!("at /payload/{key}: must be an array of strings"));
        }
    }
    Ok(value.clone())
}

/// `none` and `announce` (with OpenClaw's `channel`, `to`, `accountId`,
/// checked as strings) are kept; `webhook` is refused.
fn delivery(value: Option<&Value>, kind: &str) -> Result<Option<Value>, String> {
    let Some(value) = value.filter(|value| !value.is_null()) else {
        // OpenClaw announces agent turns' results by default.
        return Ok((kind == "agentTurn").then(|| json!({"mode": "announce"})));
    };
    let object = value.as_object().ok_or("at /delivery: must be object")?;
    match object.get("mode").and_then(Value::as_str) {
        Some("none") => Ok(Some(value.clone())),
        Some("announce") => {
            crate::channels::announce::Destination::read(value)
                .map_err(|error| format!("at /delivery: {error}"))?;
            Ok(Some(value.clone()))
        }
        Some("webhook") => Err("at /delivery/mode: webhook delivery is not available in clawback yet; use \"none\" or \"announce\"".to_owned()),
        _ => Err("at /delivery/mode: must be \"none\", \"announce\" or \"webhook\"".to_owned()),
    }
}

/// Applies a `cron.update` patch to a stored job (given as the `cron.add`
/// fields it was made from): objects merge one level (`payload`,
/// `delivery`), `null` clears, anything else replaces.
pub fn apply_patch(job: &mut Map<String, Value>, patch: &Map<String, Value>) -> Result<(), String> {
    for (key, value) in patch {
        if key == "state" {
            return Err("at /patch/state: scheduler state is derived from the log in clawback and cannot be set".to_owned());
        }
        match (key.as_str(), value) {
            (_, Value::Null) => {
                job.remove(key);
            }
            ("payload" | "delivery", Value::Object(fields)) => {
                let merged = job
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                let kind_changes = key == "payload"
                    && fields
                        .get("kind")
                        .is_some_and(|kind| Some(kind) != merged.get("kind"));
                if kind_changes || !merged.is_object() {
                    *merged = Value::Object(Map::new());
                }
                let merged = merged.as_object_mut().expect("made an object above");
                for (field, value) in fields {
                    if value.is_null() {
                        merged.remove(field);
                    } else {
                        merged.insert(field.clone(), value.clone());
                    }
                }
            }
            _ => {
                job.insert(key.clone(), value.clone());
            }
        }
    }
    Ok(())
}

/// The `cron.add` fields a stored job was made from (what `apply_patch`
/// edits).
pub fn fields(schedule: &str, definition: &str, enabled: bool) -> Map<String, Value> {
    let mut fields = match serde_json::from_str(definition) {
        Ok(Value::Object(object)) => object,
        _ => Map::new(),
    };
    if let Ok(schedule) = serde_json::from_str::<Value>(schedule) {
        fields.insert("schedule".into(), schedule);
    }
    fields.insert("enabled".into(), json!(enabled));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn isolated() -> Value {
        json!({
            "name": "brief", "schedule": {"kind": "every", "everyMs": 60000},
            "sessionTarget": "isolated", "wakeMode": "now",
            "payload": {"kind": "agentTurn", "message": "summarize"},
        })
    }

    #[test]
    fn defaults_are_openclaws() {
        let checked = check(&job(isolated()), 0).unwrap();
        assert!(checked.enabled);
        assert_eq!(checked.definition["delivery"], json!({"mode": "announce"}));
        assert!(!checked.definition.contains_key("deleteAfterRun"));
        let mut once = isolated();
        once["schedule"] = json!({"kind": "at", "at": "2030-01-01T00:00:00Z"});
        let checked = check(&job(once), 0).unwrap();
        assert_eq!(checked.definition["deleteAfterRun"], json!(true));
    }

    #[test]
    fn what_cannot_run_is_refused_with_the_reason() {
        let refused = |edit: fn(&mut Value)| {
            let mut value = isolated();
            edit(&mut value);
            check(&job(value), 0).err().unwrap()
        };
        assert!(
            refused(|v| v["payload"] = json!({"kind": "command", "argv": ["ls"]}))
                .contains("exec tool")
        );
        assert!(refused(|v| v["wakeMode"] = json!("next-heartbeat")).contains("heartbeats"));
        assert!(
            refused(|v| v["delivery"] = json!({"mode": "webhook", "to": "http://x"}))
                .contains("webhook")
        );
        assert!(
            refused(|v| v["delivery"] = json!({"mode": "announce", "to": 42}))
                .contains("to must be a string")
        );
        assert!(refused(|v| v["trigger"] = json!({"script": "x"})).contains("script runtime"));
        assert!(refused(|v| v["sessionTarget"] = json!("main")).contains("systemEvent"));
        assert!(refused(|v| v["sessionTarget"] = json!("current")).contains("sessionKey"));
        assert!(refused(|v| v["extra"] = json!(1)).contains("'extra'"));
        assert!(
            refused(|v| v["payload"]["message"] = json!(" ")).starts_with("at /payload/message")
        );
    }

    #[test]
    fn a_patch_merges_payload_fields_and_clears_with_null() {
        let checked = check(&job(isolated()), 0).unwrap();
        let mut fields = fields(
            &checked.schedule.to_string(),
            &Value::Object(checked.definition).to_string(),
            true,
        );
        apply_patch(
            &mut fields,
            &job(json!({"payload": {"kind": "agentTurn", "model": "m"}, "delivery": null, "enabled": false})),
        )
        .unwrap();
        let checked = check(&fields, 0).unwrap();
        assert_eq!(
            checked.definition["payload"],
            json!({"kind": "agentTurn", "message": "summarize", "model": "m"})
        );
        assert!(!checked.enabled);
        // Cleared delivery falls back to the default.
        assert_eq!(checked.definition["delivery"], json!({"mode": "announce"}));
    }
}
