//! `cron.*`: jobs kept in the log (see `crate::cron`), in OpenClaw's shapes.
//!
//! Edits hold the gateway's write lock until their event is durable, so an
//! edit, a removal and the scheduler's claim of a slot never interleave.
//! Answers that show a job are computed after its event is applied.

use std::sync::Arc;

use clawback_events::event::{CronJobRemoved, CronJobSaved, CronRunForced, Event};
use serde_json::{Value, json};

use super::super::frames::ErrorShape;
use super::cron_view::{config_revision, current_job, job_json, run_entry};
use super::{Params, Reply, now_ms};
use crate::cron::{self, job};
use crate::gateway::Gateway;

const LIST_KEYS: &[&str] = &[
    "sessionKey",
    "sessionAgentId",
    "includeDisabled",
    "limit",
    "offset",
    "query",
    "enabled",
    "scheduleKind",
    "lastRunStatus",
    "trigger",
    "sortBy",
    "sortDir",
    "agentId",
    "compact",
    "includeDeliveryPreviews",
];
const RUNS_KEYS: &[&str] = &[
    "agentId",
    "scope",
    "id",
    "jobId",
    "runId",
    "limit",
    "offset",
    "statuses",
    "status",
    "deliveryStatuses",
    "deliveryStatus",
    "query",
    "sortDir",
];
/// The largest page `cron.list` and `cron.runs` return.
const PAGE_MAX: u64 = 200;
const RUNS_PAGE_DEFAULT: u64 = 50;

/// `cron.list`: jobs, filtered, sorted and paged.
pub fn list(gateway: &Gateway, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let params = Params::closed("cron.list", params, LIST_KEYS)?;
    let (limit, offset) = page(&params, PAGE_MAX)?;
    let enabled = params
        .opt_choice("enabled", &["all", "enabled", "disabled"])?
        .unwrap_or(if params.opt_bool("includeDisabled")? == Some(true) {
            "all"
        } else {
            "enabled"
        });
    let kind = params
        .opt_choice(
            "scheduleKind",
            &["all", "at", "every", "cron", "on-exit", "stream"],
        )?
        .unwrap_or("all");
    let last_status = params
        .opt_choice(
            "lastRunStatus",
            &["all", "ok", "error", "skipped", "unknown"],
        )?
        .unwrap_or("all");
    let sort_by = params
        .opt_choice("sortBy", &["nextRunAtMs", "updatedAtMs", "name"])?
        .unwrap_or("nextRunAtMs");
    let descending = params.opt_choice("sortDir", &["asc", "desc"])? == Some("desc");
    let query = params.opt_str("query")?.map(str::to_lowercase);
    let agent = params.opt_str("agentId")?.map(str::to_ascii_lowercase);
    let session_key = params.opt_str("sessionKey")?;
    let now = now_ms();
    let state = gateway.state.read().expect("state lock");
    let mut jobs: Vec<Value> = state
        .cron
        .jobs
        .values()
        .filter(|job| match enabled {
            "enabled" => job.enabled,
            "disabled" => !job.enabled,
            _ => true,
        })
        .map(|job| job_json(job, now))
        .filter(|job| kind == "all" || job["schedule"]["kind"] == kind)
        .filter(|job| match last_status {
            "all" => true,
            "unknown" => job["lastRunStatus"].is_null(),
            status => job["lastRunStatus"] == status,
        })
        .filter(|job| {
            query.as_ref().is_none_or(|query| {
                ["name", "description", "displayName"].iter().any(|key| {
                    job[key]
                        .as_str()
                        .is_some_and(|text| text.to_lowercase().contains(query))
                })
            })
        })
        .filter(|job| {
            agent
                .as_ref()
                .is_none_or(|agent| effective_agent(job) == agent)
        })
        .filter(|job| {
            session_key.is_none_or(|key| {
                job["sessionKey"] == key
                    || job["sessionTarget"].as_str() == Some(&format!("session:{key}"))
            })
        })
        .collect();
    let sort_key = |job: &Value| -> (Option<i64>, String) {
        match sort_by {
            "name" => (None, job["name"].as_str().unwrap_or("").to_lowercase()),
            "updatedAtMs" => (job["updatedAtMs"].as_i64(), String::new()),
            // Jobs that never fire again sort last.
            _ => (
                Some(job["nextRunAtMs"].as_i64().unwrap_or(i64::MAX)),
                String::new(),
            ),
        }
    };
    jobs.sort_by_key(sort_key);
    if descending {
        jobs.reverse();
    }
    let total = jobs.len() as u64;
    let compact = params.opt_bool("compact")? == Some(true);
    let page: Vec<Value> = jobs
        .into_iter()
        .skip(offset as usize)
        .take(limit as usize)
        .map(|mut job| {
            job["effectiveAgentId"] = json!(effective_agent(&job));
            if compact {
                job.as_object_mut()
                    .expect("a job is an object")
                    .retain(|key, _| COMPACT_KEYS.contains(&key.as_str()));
            }
            job
        })
        .collect();
    let next = offset + page.len() as u64;
    // Moves only when jobs or their runs change (not with every request
    // the log records): what a client paging through the list compares.
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

/// What `compact: true` keeps of a job.
const COMPACT_KEYS: &[&str] = &[
    "id",
    "name",
    "enabled",
    "schedule",
    "sessionTarget",
    "nextRunAtMs",
    "lastRunAtMs",
    "lastRunStatus",
    "effectiveAgentId",
];

fn effective_agent(job: &Value) -> &str {
    job["agentId"].as_str().unwrap_or(super::DEFAULT_AGENT)
}

/// `cron.get`.
pub fn get(gateway: &Gateway, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let params = Params::closed("cron.get", params, &["id", "jobId"])?;
    let id = job_id(&params)?;
    let state = gateway.state.read().expect("state lock");
    let job = state
        .cron
        .jobs
        .get(id)
        .ok_or_else(|| not_found(id, "cron job not found"))?;
    Ok(job_json(job, now_ms()))
}

/// `cron.status`.
pub fn status(gateway: &Gateway, params: Option<&Value>) -> Result<Value, ErrorShape> {
    Params::closed("cron.status", params, &[])?;
    let now = now_ms();
    let state = gateway.state.read().expect("state lock");
    let next_wake = state
        .cron
        .jobs
        .values()
        .filter_map(|job| cron::next_fire_ms(job, now))
        .min();
    Ok(json!({
        "enabled": gateway.cron.enabled,
        "triggersEnabled": false,
        "storePath": gateway.log_path,
        "jobs": state.cron.jobs.len(),
        "nextWakeAtMs": if gateway.cron.enabled { json!(next_wake) } else { Value::Null },
    }))
}

/// `cron.add`: a new job, or (with a `declarationKey` already in use) an
/// update of that job, as OpenClaw converges declared jobs.
pub async fn add(gateway: &Arc<Gateway>, params: Option<&Value>) -> Reply {
    let fields = match params {
        Some(Value::Object(object)) => object.clone(),
        _ => {
            return Reply::answer(Err(ErrorShape::invalid(
                "invalid cron.add params: must be object",
            )));
        }
    };
    let checked = match job::check(&fields, now_ms()) {
        Ok(checked) => checked,
        Err(detail) => {
            return Reply::answer(Err(ErrorShape::invalid(format!(
                "invalid cron.add params: {detail}"
            ))));
        }
    };
    let lock = gateway.writes.clone().lock_owned().await;
    let declared = checked
        .definition
        .get("declarationKey")
        .and_then(Value::as_str)
        .and_then(|key| {
            let state = gateway.state.read().expect("state lock");
            state
                .cron
                .jobs
                .values()
                .find(|job| {
                    cron::definition(job)
                        .get("declarationKey")
                        .and_then(Value::as_str)
                        == Some(key)
                })
                .map(|job| job.job_id.clone())
        });
    let job_id = declared
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut reply = save(&job_id, checked, lock);
    let declarative = fields.contains_key("declarationKey");
    reply.after = Some(Box::new(move |gateway: &Gateway| {
        gateway.cron.jobs_changed();
        let job = current_job(gateway, &job_id);
        if declarative {
            json!({"created": declared.is_none(), "updated": declared.is_some(), "job": job})
        } else {
            job
        }
    }));
    reply
}

/// `cron.update`: a patch applied to the stored job, checked as a whole.
pub async fn update(gateway: &Arc<Gateway>, params: Option<&Value>) -> Reply {
    let result = (|| {
        let params = Params::closed(
            "cron.update",
            params,
            &["id", "jobId", "patch", "expectedConfigRevision"],
        )?;
        let id = job_id(&params)?.to_owned();
        let patch = match params.get("patch") {
            Some(Value::Object(patch)) => patch.clone(),
            Some(_) => return Err(params.invalid("at /patch: must be object")),
            None => return Err(params.invalid("must have required property 'patch'")),
        };
        let expected = params.opt_str("expectedConfigRevision")?.map(str::to_owned);
        Ok((id, patch, expected))
    })();
    let (id, patch, expected) = match result {
        Ok(request) => request,
        Err(error) => return Reply::answer(Err(error)),
    };
    let lock = gateway.writes.clone().lock_owned().await;
    let Some(stored) = gateway
        .state
        .read()
        .expect("state lock")
        .cron
        .jobs
        .get(&id)
        .cloned()
    else {
        return Reply::answer(Err(not_found(&id, "Automation not found")));
    };
    if let Some(expected) = expected
        && expected != config_revision(&stored)
    {
        return Reply::answer(Err(ErrorShape::invalid(
            "invalid cron.update params: the job changed since it was read (expectedConfigRevision does not match); read it again and retry",
        )));
    }
    let mut fields = job::fields(&stored.schedule, &stored.definition, stored.enabled);
    let checked =
        job::apply_patch(&mut fields, &patch).and_then(|()| job::check(&fields, now_ms()));
    let checked = match checked {
        Ok(checked) => checked,
        Err(detail) => {
            return Reply::answer(Err(ErrorShape::invalid(format!(
                "invalid cron.update params: {detail}"
            ))));
        }
    };
    let mut reply = save(&id, checked, lock);
    reply.after = Some(Box::new(move |gateway: &Gateway| {
        gateway.cron.jobs_changed();
        current_job(gateway, &id)
    }));
    reply
}

fn save(job_id: &str, checked: job::Definition, lock: tokio::sync::OwnedMutexGuard<()>) -> Reply {
    let mut reply = Reply::answer(Ok(Value::Null));
    reply.events.push((
        format!("cron:{job_id}"),
        Event::CronJobSaved(CronJobSaved {
            job_id: job_id.to_owned(),
            schedule: checked.schedule.to_string(),
            definition: Value::Object(checked.definition).to_string(),
            enabled: checked.enabled,
        }),
    ));
    reply.write_lock = Some(lock);
    reply
}

/// `cron.remove`.
pub async fn remove(gateway: &Gateway, params: Option<&Value>) -> Reply {
    let id = match Params::closed("cron.remove", params, &["id", "jobId"])
        .and_then(|params| job_id(&params).map(str::to_owned))
    {
        Ok(id) => id,
        Err(error) => return Reply::answer(Err(error)),
    };
    let lock = gateway.writes.clone().lock_owned().await;
    if !gateway
        .state
        .read()
        .expect("state lock")
        .cron
        .jobs
        .contains_key(&id)
    {
        return Reply::answer(Err(not_found(&id, "Automation not found")));
    }
    let mut reply = Reply::answer(Ok(json!({"ok": true, "removed": true})));
    reply.events.push((
        format!("cron:{id}"),
        Event::CronJobRemoved(CronJobRemoved { job_id: id }),
    ));
    reply.write_lock = Some(lock);
    reply.after = Some(Box::new(|gateway: &Gateway| {
        gateway.cron.jobs_changed();
        json!({"ok": true, "removed": true})
    }));
    reply
}

/// `cron.run`: runs a job now (`force`, the default), only if enabled
/// (`if-enabled`), or only if a slot is due (`due`, which claims it).
pub async fn run(gateway: &Arc<Gateway>, params: Option<&Value>) -> Reply {
    let request = (|| {
        let params = Params::closed(
            "cron.run",
            params,
            &["id", "jobId", "mode", "expectedProcessInstanceId"],
        )?;
        let id = job_id(&params)?.to_owned();
        let mode = params
            .opt_choice("mode", &["due", "force", "if-enabled"])?
            .unwrap_or("force");
        if let Some(expected) = params.opt_str("expectedProcessInstanceId")?
            && expected != gateway.boot_id
        {
            return Err(params.invalid("Gateway process changed after preflight"));
        }
        Ok((id, mode))
    })();
    let (id, mode) = match request {
        Ok(request) => request,
        Err(error) => return Reply::answer(Err(error)),
    };
    let instance = gateway.boot_id.clone();
    let not_run = |reason: &str| {
        Reply::answer(Ok(
            json!({"ok": true, "ran": false, "reason": reason, "processInstanceId": instance}),
        ))
    };
    let lock = gateway.writes.clone().lock_owned().await;
    let Some(job) = gateway
        .state
        .read()
        .expect("state lock")
        .cron
        .jobs
        .get(&id)
        .cloned()
    else {
        return Reply::answer(Err(not_found(&id, "Automation not found")));
    };
    if mode != "force" && !job.enabled {
        return not_run("disabled");
    }
    let now = now_ms();
    let (slot, run_id) = if mode == "due" {
        match cron::due_slot(&job, now) {
            Some(slot) => (Some(slot), format!("cron:{id}:{slot}")),
            None => return not_run("not-due"),
        }
    } else {
        (None, format!("manual:{id}:{now}:1"))
    };
    if let Err(not_fired) = cron::may_fire(&job, slot) {
        return match not_fired {
            cron::NotFired::AlreadyRunning => not_run("already-running"),
            cron::NotFired::Disabled => not_run("disabled"),
            _ => not_run("not-due"),
        };
    }
    let event = match slot {
        Some(slot_ms) => Event::CronJobFired(clawback_events::event::CronJobFired {
            job_id: id.clone(),
            slot_ms,
            run_id: run_id.clone(),
        }),
        None => Event::CronRunForced(CronRunForced {
            job_id: id.clone(),
            run_id: run_id.clone(),
        }),
    };
    let mut reply = Reply::answer(Ok(Value::Null));
    reply.events.push((format!("cron:{id}"), event));
    reply.write_lock = Some(lock);
    let gateway = gateway.clone();
    reply.after = Some(Box::new(move |_: &Gateway| {
        cron::start_run(gateway.clone(), job, run_id.clone());
        json!({"ok": true, "enqueued": true, "runId": run_id, "processInstanceId": gateway.boot_id})
    }));
    reply
}

/// `cron.runs`: finished runs, newest first by default.
pub fn runs(gateway: &Gateway, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let params = Params::closed("cron.runs", params, RUNS_KEYS)?;
    let (limit, offset) = page_with_default(&params, PAGE_MAX, RUNS_PAGE_DEFAULT)?;
    let scope = params.opt_choice("scope", &["job", "all"])?;
    let id = params.opt_str("id")?.or(params.opt_str("jobId")?);
    if scope != Some("all") && id.is_none() {
        return Err(params.invalid("missing id"));
    }
    let mut statuses: Vec<&str> = params.opt_strings("statuses")?.unwrap_or_default();
    if let Some(status) = params.opt_choice("status", &["all", "ok", "error", "skipped"])?
        && status != "all"
    {
        statuses.push(status);
    }
    let mut deliveries: Vec<&str> = params.opt_strings("deliveryStatuses")?.unwrap_or_default();
    if let Some(status) = params.opt_str("deliveryStatus")? {
        deliveries.push(status);
    }
    let run_id = params.opt_str("runId")?;
    let agent = params.opt_str("agentId")?.map(str::to_ascii_lowercase);
    let query = params.opt_str("query")?.map(str::to_lowercase);
    let ascending = params.opt_choice("sortDir", &["asc", "desc"])? == Some("asc");
    let state = gateway.state.read().expect("state lock");
    if let Some(id) = id
        && scope != Some("all")
        && !state.cron.jobs.contains_key(id)
    {
        return Err(not_found(id, "Automation not found"));
    }
    let mut entries: Vec<Value> = state
        .cron
        .jobs
        .values()
        .filter(|job| scope == Some("all") || Some(job.job_id.as_str()) == id)
        .filter(|job| {
            agent.as_ref().is_none_or(|agent| {
                cron::definition(job)
                    .get("agentId")
                    .and_then(Value::as_str)
                    .unwrap_or(super::DEFAULT_AGENT)
                    == agent
            })
        })
        .flat_map(|job| {
            job.runs
                .iter()
                .filter_map(move |run| run_entry(gateway, job, run))
        })
        .filter(|entry| statuses.is_empty() || statuses.iter().any(|s| entry["status"] == *s))
        .filter(|entry| {
            deliveries.is_empty() || deliveries.iter().any(|s| entry["deliveryStatus"] == *s)
        })
        .filter(|entry| run_id.is_none_or(|run| entry["runId"] == run))
        .filter(|entry| {
            query.as_ref().is_none_or(|query| {
                ["summary", "error", "jobName"].iter().any(|key| {
                    entry[key]
                        .as_str()
                        .is_some_and(|text| text.to_lowercase().contains(query))
                })
            })
        })
        .collect();
    entries.sort_by_key(|entry| entry["ts"].as_i64());
    if !ascending {
        entries.reverse();
    }
    let total = entries.len() as u64;
    let page: Vec<Value> = entries
        .into_iter()
        .skip(offset as usize)
        .take(limit as usize)
        .collect();
    let next = offset + page.len() as u64;
    Ok(json!({
        "entries": page,
        "total": total,
        "offset": offset,
        "limit": limit,
        "hasMore": next < total,
        "nextOffset": if next < total { json!(next) } else { Value::Null },
    }))
}

fn job_id<'a>(params: &Params<'a>) -> Result<&'a str, ErrorShape> {
    match params.opt_str("id")?.or(params.opt_str("jobId")?) {
        Some(id) if !id.trim().is_empty() => Ok(id.trim()),
        _ => Err(params.invalid("missing id")),
    }
}

fn page(params: &Params<'_>, max: u64) -> Result<(u64, u64), ErrorShape> {
    page_with_default(params, max, max)
}

fn page_with_default(
    params: &Params<'_>,
    max: u64,
    default: u64,
) -> Result<(u64, u64), ErrorShape> {
    let limit = params.opt_u64("limit")?.unwrap_or(default);
    if limit == 0 || limit > max {
        return Err(params.invalid(format!("at /limit: must be between 1 and {max}")));
    }
    Ok((limit, params.opt_u64("offset")?.unwrap_or(0)))
}

/// OpenClaw's wording and detail code for an unknown job.
fn not_found(id: &str, prefix: &str) -> ErrorShape {
    let mut error = ErrorShape::invalid(format!(
        "{prefix}: {id}. List automations and retry with a current job id."
    ));
    error.details = Some(json!({"code": "CRON_JOB_NOT_FOUND", "jobId": id}));
    error
}
