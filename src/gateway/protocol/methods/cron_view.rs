//! A cron job and its runs as OpenClaw's clients read them: the job's
//! definition with scheduler state derived from the log (`cron.list`,
//! `cron.get`, the answers of edits, the `cron` event's snapshot), and a
//! finished run as `cron.runs` lists it.

use clawback_projections::cron::{CronJob, CronRun, CronRunStatus};
use serde_json::{Map, Value, json};
use sha2::Digest as _;

use super::now_ms;
use crate::cron;
use crate::gateway::Gateway;

/// A finished run as `cron.runs` lists it; `None` while it runs.
pub(super) fn run_entry(gateway: &Gateway, job: &CronJob, run: &CronRun) -> Option<Value> {
    let (status, error) = run.outcome()?;
    let ended = run.ended_ts_ms()?;
    let mut entry = json!({
        "ts": ended, "jobId": job.job_id, "action": "finished", "status": status,
        "runId": run.run_id, "runAtMs": run.fired_ts_ms,
        "durationMs": (ended - run.fired_ts_ms).max(0),
    });
    if let Some(error) = error {
        entry["error"] = json!(error);
    }
    if let Some(name) = cron::definition(job).get("name") {
        entry["jobName"] = name.clone();
    }
    if let CronRunStatus::Finished(result) = &run.status {
        entry["deliveryStatus"] = json!(result.delivery_status);
        entry["delivered"] = json!(result.delivery_status == "delivered");
        if let Some(error) = &result.delivery_error {
            entry["deliveryError"] = json!(error);
        }
        // The summary is the start of the reply: session content, sealed
        // in the record, so it is read from there (the projection's copy of
        // a sealed record is empty).
        if result.summary.is_some() {
            let store = gateway.log.store();
            if let Ok(clawback_events::Event::CronRunFinished(finished)) =
                clawback_replay::session_state::read_event(&**store, &*gateway.keyring, result.seq)
            {
                entry["summary"] = json!(finished.summary);
            }
        }
        if let Some(key) = &result.session_key {
            entry["sessionKey"] = json!(key);
        }
    }
    Some(entry)
}

/// A job as OpenClaw's clients read it: its definition, scheduler state
/// derived from the log, and the same state repeated at the top level.
pub fn job_json(job: &CronJob, now_ms: i64) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(job.job_id));
    out.extend(cron::definition(job));
    out.insert("enabled".into(), json!(job.enabled));
    out.insert("createdAtMs".into(), json!(job.created_ts_ms));
    out.insert("updatedAtMs".into(), json!(job.updated_ts_ms));
    out.insert("configRevision".into(), json!(config_revision(job)));
    out.insert(
        "schedule".into(),
        serde_json::from_str(&job.schedule).unwrap_or(Value::Null),
    );
    let mut state = Map::new();
    let next = cron::next_fire_ms(job, now_ms);
    if let Some(next) = next {
        state.insert("nextRunAtMs".into(), json!(next));
    }
    if let Some(running) = job.running() {
        state.insert("runningAtMs".into(), json!(running.fired_ts_ms));
    }
    let last_ended = job.runs.iter().rev().find(|run| run.outcome().is_some());
    if let Some(run) = last_ended {
        let (status, error) = run.outcome().expect("found by its outcome");
        state.insert("lastRunAtMs".into(), json!(run.fired_ts_ms));
        state.insert("lastRunStatus".into(), json!(status));
        state.insert("lastStatus".into(), json!(status));
        if let Some(error) = error {
            state.insert("lastError".into(), json!(error));
        }
        if let Some(ended) = run.ended_ts_ms() {
            state.insert(
                "lastDurationMs".into(),
                json!((ended - run.fired_ts_ms).max(0)),
            );
        }
        if let CronRunStatus::Finished(result) = &run.status {
            state.insert("lastDeliveryStatus".into(), json!(result.delivery_status));
            state.insert(
                "lastDelivered".into(),
                json!(result.delivery_status == "delivered"),
            );
            if let Some(error) = &result.delivery_error {
                state.insert("lastDeliveryError".into(), json!(error));
            }
        }
    }
    let consecutive_errors = job
        .runs
        .iter()
        .rev()
        .filter_map(CronRun::outcome)
        .take_while(|(status, _)| *status == "error")
        .count();
    state.insert("consecutiveErrors".into(), json!(consecutive_errors));
    for (from, to) in [
        ("nextRunAtMs", "nextRunAtMs"),
        ("lastRunAtMs", "lastRunAtMs"),
        ("lastRunStatus", "lastRunStatus"),
        ("lastError", "lastRunError"),
        ("lastDelivered", "lastDelivered"),
        ("lastDeliveryStatus", "lastDeliveryStatus"),
        ("lastDeliveryError", "lastDeliveryError"),
    ] {
        if let Some(value) = state.get(from) {
            out.insert(to.into(), value.clone());
        }
    }
    out.insert("state".into(), Value::Object(state));
    Value::Object(out)
}

/// The job as it is now (after a reply's events were applied).
pub(super) fn current_job(gateway: &Gateway, job_id: &str) -> Value {
    let state = gateway.state.read().expect("state lock");
    state
        .cron
        .jobs
        .get(job_id)
        .map_or(Value::Null, |job| job_json(job, now_ms()))
}

/// A token for the definition (not the scheduler state): a client passes
/// it back in `expectedConfigRevision` to update only what it read.
pub(super) fn config_revision(job: &CronJob) -> String {
    let mut hasher = sha2::Sha256::new();
    for part in [job.schedule.as_str(), job.definition.as_str()] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.update([u8::from(job.enabled)]);
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256:{hex}")
}
