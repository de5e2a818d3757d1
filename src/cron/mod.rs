//! Cron: jobs recorded in the log, fired by a scheduler that claims each
//! slot in the log before it runs the job.
//!
//! - `schedule`: `at` / `every` / `cron` schedules as slots (pure);
//! - `job`: a job's definition checked and put in canonical form;
//! - this module: the scheduler task and the execution of one run.
//!
//! Why the claim comes first: a run is `cron.job.fired` (or
//! `cron.run.forced`) appended under the gateway's write lock, then the
//! work, then `cron.run.finished`. A crash in between leaves a claimed slot
//! whose run the next start marks interrupted; the slot never runs twice
//! (OpenClaw and others fire twice after a restart; shared/lessons.md).
//! At most one run of a job is in progress: a slot that comes due while the
//! previous run is still going waits for it, coalesced with later ones.

pub mod job;
pub mod schedule;

use std::sync::Arc;
use std::time::Duration;

use clawback_events::Actor;
use clawback_events::event::{CronJobFired, CronJobRemoved, CronRunFinished, Event, SessionReset};
use clawback_projections::cron::CronJob;
use serde_json::Value;

use crate::agent::{self, RunRequest, Started};
use crate::gateway::Gateway;
use schedule::Schedule;

/// The longest the scheduler sleeps: a job added meanwhile wakes it early,
/// so this only bounds clock drift and suspend/resume surprises.
const SLEEP_MAX: Duration = Duration::from_secs(30);
/// Jobs fired per pass at most; the rest come due again at once.
const FIRES_PER_PASS_MAX: usize = 64;
/// An isolated agent turn's limit when the job names none (OpenClaw's
/// scheduler watchdog).
const AGENT_TURN_TIMEOUT_DEFAULT: Duration = Duration::from_secs(60 * 60);
const AGENT_TURN_TIMEOUT_MAX: Duration = Duration::from_secs(48 * 3600);
/// How much of the reply a run's summary keeps.
const SUMMARY_CHARS_MAX: usize = 400;

/// The scheduler's switch and doorbell, kept in the gateway.
pub struct Scheduler {
    /// False when `cron.enabled: false` or `OPENCLAW_SKIP_CRON=1`: jobs
    /// are kept and listed, nothing fires on schedule (forced runs work).
    pub enabled: bool,
    wake: tokio::sync::Notify,
}

impl Scheduler {
    pub fn new(config_enabled: bool) -> Scheduler {
        let skipped = std::env::var("OPENCLAW_SKIP_CRON").is_ok_and(|value| value == "1");
        Scheduler {
            enabled: config_enabled && !skipped,
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Jobs changed: look at them again now.
    pub fn jobs_changed(&self) {
        self.wake.notify_one();
    }
}

/// When `job` fires next, or `None` (disabled, done, or unreadable).
pub fn next_fire_ms(job: &CronJob, now_ms: i64) -> Option<i64> {
    if !job.enabled {
        return None;
    }
    let schedule = stored_schedule(job)?;
    schedule.next_fire_ms(job.active_since_ms, job.last_slot_ms, now_ms)
}

fn stored_schedule(job: &CronJob) -> Option<Schedule> {
    let value = serde_json::from_str::<Value>(&job.schedule).ok()?;
    Schedule::stored(&value).ok()
}

/// Fires due jobs until the gateway stops.
pub async fn run_scheduler(gateway: Arc<Gateway>) {
    if !gateway.cron.enabled {
        tracing::info!(
            subsystem = "cron",
            "the scheduler is disabled; jobs fire only when run by hand"
        );
        return;
    }
    loop {
        let now = crate::gateway::protocol::methods::now_ms();
        let (due, next) = due_jobs(&gateway, now);
        for (job_id, slot_ms) in due {
            let run_id = format!("cron:{job_id}:{slot_ms}");
            if let Err(error) = fire(&gateway, &job_id, slot_ms, run_id).await {
                tracing::warn!(subsystem = "cron", "job {job_id} did not fire: {error}");
            }
        }
        let sleep = next.map_or(SLEEP_MAX, |next| {
            Duration::from_millis(u64::try_from(next - now).unwrap_or(0)).min(SLEEP_MAX)
        });
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = gateway.cron.wake.notified() => {}
        }
    }
}

/// The jobs to fire now with their slots (jobs with a run in progress
/// wait), and when the next one comes due.
fn due_jobs(gateway: &Gateway, now_ms: i64) -> (Vec<(String, i64)>, Option<i64>) {
    let state = gateway.state.read().expect("state lock");
    let mut due = Vec::new();
    let mut next: Option<i64> = None;
    for job in state.cron.jobs.values().filter(|job| job.enabled) {
        let Some(schedule) = stored_schedule(job) else {
            continue;
        };
        if job.running().is_some() {
            continue;
        }
        if let Some(slot) = schedule.due(job.active_since_ms, job.last_slot_ms, now_ms) {
            if due.len() < FIRES_PER_PASS_MAX {
                due.push((job.job_id.clone(), slot));
            } else {
                next = Some(now_ms);
            }
        } else if let Some(at) =
            schedule.next_fire_ms(job.active_since_ms, job.last_slot_ms, now_ms)
        {
            next = Some(next.map_or(at, |next| next.min(at)));
        }
    }
    (due, next)
}

/// Why a job was not started.
#[derive(Debug)]
pub enum NotFired {
    UnknownJob,
    AlreadyRunning,
    Disabled,
    /// The slot was claimed meanwhile (another pass, a restart).
    SlotSpent,
    Log(String),
}

impl std::fmt::Display for NotFired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotFired::UnknownJob => f.write_str("no such job"),
            NotFired::AlreadyRunning => f.write_str("a run of this job is in progress"),
            NotFired::Disabled => f.write_str("the job is disabled"),
            NotFired::SlotSpent => f.write_str("the slot already fired"),
            NotFired::Log(error) => write!(f, "the gateway cannot record this: {error}"),
        }
    }
}

/// Claims `slot_ms` of the job in the log, then runs it in the background.
/// Returns once the claim is durable.
pub async fn fire(
    gateway: &Arc<Gateway>,
    job_id: &str,
    slot_ms: i64,
    run_id: String,
) -> Result<(), NotFired> {
    let job = {
        // Under the write lock: the checks and the claim are one step
        // against other claims, edits and removals.
        let _write = gateway.writes.lock().await;
        let job = {
            let state = gateway.state.read().expect("state lock");
            let job = state.cron.jobs.get(job_id).ok_or(NotFired::UnknownJob)?;
            may_fire(job, Some(slot_ms))?;
            job.clone()
        };
        let event = Event::CronJobFired(CronJobFired {
            job_id: job_id.to_owned(),
            slot_ms,
            run_id: run_id.clone(),
        });
        append(gateway, job_id, &run_id, vec![event])
            .await
            .map_err(NotFired::Log)?;
        job
    };
    start_run(gateway.clone(), job, run_id);
    Ok(())
}

/// Whether `job` may start a run now: none in progress and, for a
/// scheduled slot, enabled with the slot unspent. Checked under the write
/// lock by whoever records the claim.
pub fn may_fire(job: &CronJob, slot_ms: Option<i64>) -> Result<(), NotFired> {
    if job.running().is_some() {
        return Err(NotFired::AlreadyRunning);
    }
    if let Some(slot) = slot_ms {
        if !job.enabled {
            return Err(NotFired::Disabled);
        }
        if job.last_slot_ms.is_some_and(|last| slot <= last) {
            return Err(NotFired::SlotSpent);
        }
    }
    Ok(())
}

/// The slot of `job` due now, if any (`cron.run` with mode `due`).
pub fn due_slot(job: &CronJob, now_ms: i64) -> Option<i64> {
    stored_schedule(job)?.due(job.active_since_ms, job.last_slot_ms, now_ms)
}

/// Runs a claimed job (its claim is durable) and records how it ended.
pub fn start_run(gateway: Arc<Gateway>, job: CronJob, run_id: String) {
    tokio::spawn(async move {
        let finished = execute(&gateway, &job, &run_id).await;
        let delete = finished.status == "ok" && definition_flag(&job, "deleteAfterRun");
        let mut events = vec![Event::CronRunFinished(finished)];
        if delete {
            events.push(Event::CronJobRemoved(CronJobRemoved {
                job_id: job.job_id.clone(),
            }));
        }
        if let Err(error) = append(&gateway, &job.job_id, &run_id, events).await {
            tracing::error!(
                subsystem = "cron",
                "cannot record the end of run {run_id}: {error}"
            );
        }
        gateway.cron.jobs_changed();
    });
}

/// The job's definition (everything but the schedule and scheduler state).
pub fn definition(job: &CronJob) -> serde_json::Map<String, Value> {
    match serde_json::from_str(&job.definition) {
        Ok(Value::Object(object)) => object,
        _ => serde_json::Map::new(),
    }
}

fn definition_flag(job: &CronJob, key: &str) -> bool {
    definition(job).get(key) == Some(&Value::Bool(true))
}

/// The session a job's runs happen in: its agent's main session, a fresh
/// session per job (`isolated`), or the one named.
pub fn session_key(definition: &serde_json::Map<String, Value>, job_id: &str) -> String {
    let agent = definition
        .get("agentId")
        .and_then(Value::as_str)
        .unwrap_or(crate::gateway::protocol::methods::DEFAULT_AGENT);
    match definition.get("sessionTarget").and_then(Value::as_str) {
        Some("main") => format!("agent:{agent}:main"),
        Some(target) if target.starts_with("session:") => target["session:".len()..].to_owned(),
        _ => format!("agent:{agent}:cron:{job_id}"),
    }
}

/// Runs the job's payload as an agent turn and says how it ended.
async fn execute(gateway: &Arc<Gateway>, job: &CronJob, run_id: &str) -> CronRunFinished {
    let definition = definition(job);
    let session_key = session_key(&definition, &job.job_id);
    let payload = definition.get("payload").cloned().unwrap_or(Value::Null);
    let field = |key: &str| payload.get(key).and_then(Value::as_str).map(str::to_owned);
    let ended = |status: &str, error: Option<String>| CronRunFinished {
        job_id: job.job_id.clone(),
        run_id: run_id.to_owned(),
        status: status.to_owned(),
        error,
        summary: None,
        session_key: Some(session_key.clone()),
        delivery_status: "not-requested".to_owned(),
        delivery_error: None,
    };
    // A system event wakes the main session now: the agent gets the text
    // as OpenClaw's heartbeat would show it, a "System:" line.
    let message = match payload.get("kind").and_then(Value::as_str) {
        Some("agentTurn") => field("message"),
        Some("systemEvent") => field("text").map(|text| format!("System: {text}")),
        _ => None,
    };
    let Some(message) = message else {
        return ended(
            "error",
            Some("the job's payload cannot run in clawback".to_owned()),
        );
    };
    let actor = Actor::Cron {
        job_id: job.job_id.clone(),
    };
    let isolated = definition.get("sessionTarget").and_then(Value::as_str) == Some("isolated");
    if isolated && let Err(error) = fresh_session(gateway, &session_key, &actor, run_id).await {
        return ended("error", Some(error));
    }
    let timeout = payload
        .get("timeoutSeconds")
        .and_then(Value::as_f64)
        .filter(|seconds| *seconds > 0.0)
        .map_or(AGENT_TURN_TIMEOUT_DEFAULT, |seconds| {
            Duration::from_secs_f64(seconds).min(AGENT_TURN_TIMEOUT_MAX)
        });
    let agent_id = clawback_projections::sessions::agent_in_key(&session_key)
        .unwrap_or(crate::gateway::protocol::methods::DEFAULT_AGENT)
        .to_owned();
    let request = RunRequest {
        message_seq: None,
        run_id: run_id.to_owned(),
        session_key: session_key.clone(),
        agent_id,
        message,
        trigger: "cron",
        actor,
        model_override: field("model"),
        thinking: field("thinking"),
        extra_system_prompt: None,
        timeout,
        tool_events_to: None,
        sampling: Default::default(),
        origin: None,
    };
    let outcome = match gateway.agent.clone().start(gateway.clone(), request) {
        Started::Finished(outcome) => Some(*outcome),
        Started::New(receiver) | Started::Running(receiver) => agent::wait(receiver).await,
    };
    let Some(outcome) = outcome else {
        return ended("error", Some("the run ended without an outcome".to_owned()));
    };
    let mut finished = if outcome.ok {
        ended("ok", None)
    } else {
        let message = outcome.error.as_ref().map(|(_, message)| message.clone());
        ended(
            "error",
            message.or_else(|| Some(outcome.stop_reason.clone())),
        )
    };
    let summary: String = outcome.text.chars().take(SUMMARY_CHARS_MAX).collect();
    finished.summary = (!summary.is_empty()).then_some(summary);
    if let Some(delivery) = definition
        .get("delivery")
        .filter(|delivery| delivery.get("mode").and_then(Value::as_str) == Some("announce"))
    {
        let (status, error) = announce(gateway, delivery, &session_key, run_id, &outcome).await;
        finished.delivery_status = status.to_owned();
        finished.delivery_error = error;
    }
    finished
}

/// Sends a finished run's reply where the job's `delivery` says, through
/// the outbox under a key derived from the run (one slot, one message,
/// across restarts): `(deliveryStatus, deliveryError)`. `channel: "last"`
/// (the default) is the chat the job's session's user last spoke from,
/// else its agent's main session's.
async fn announce(
    gateway: &Gateway,
    delivery: &Value,
    session_key: &str,
    run_id: &str,
    outcome: &agent::RunOutcome,
) -> (&'static str, Option<String>) {
    use crate::channels::announce::{self, Announced, Destination};
    if !outcome.ok {
        return (
            "not-delivered",
            Some("the run failed; nothing to announce".to_owned()),
        );
    }
    if outcome.text.trim().is_empty() {
        return (
            "not-delivered",
            Some("the run had no reply to announce".to_owned()),
        );
    }
    let destination = match Destination::read(delivery) {
        Ok(destination) => destination,
        Err(error) => return ("not-delivered", Some(format!("delivery: {error}"))),
    };
    let agent = clawback_projections::sessions::agent_in_key(session_key)
        .unwrap_or(crate::gateway::protocol::methods::DEFAULT_AGENT);
    let sessions = [session_key.to_owned(), format!("agent:{agent}:main")];
    let key = format!("announce:{run_id}");
    match announce::announce(gateway, &destination, &sessions, &outcome.text, key).await {
        Ok(Announced::Delivered(_)) => ("delivered", None),
        Ok(Announced::Pending { delivery_id }) => (
            "unknown",
            Some(format!(
                "delivery {delivery_id} is still in the outbox; its outcome is recorded when the platform answers"
            )),
        ),
        Err(error) => ("not-delivered", Some(error)),
    }
}

/// Starts the job's session afresh, as OpenClaw's isolated runs do: same
/// key, new session id, no earlier turns in the context.
async fn fresh_session(
    gateway: &Gateway,
    session_key: &str,
    actor: &Actor,
    run_id: &str,
) -> Result<(), String> {
    let exists = gateway
        .state
        .read()
        .expect("state lock")
        .sessions
        .by_key
        .contains_key(session_key);
    if !exists {
        return Ok(());
    }
    let event = Event::SessionReset(SessionReset {
        session_key: session_key.to_owned(),
        new_session_id: uuid::Uuid::new_v4().to_string(),
        reason: format!("cron run {run_id}"),
    });
    agent::compact::append(gateway, session_key, actor, run_id, vec![event]).await
}

/// Records `events` on the job's stream, correlated with the run.
async fn append(
    gateway: &Gateway,
    job_id: &str,
    run_id: &str,
    events: Vec<Event>,
) -> Result<(), String> {
    let actor = Actor::Cron {
        job_id: job_id.to_owned(),
    };
    agent::compact::append(gateway, &format!("cron:{job_id}"), &actor, run_id, events).await
}
