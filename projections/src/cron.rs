//! Cron jobs and their firings.
//!
//! Why firings are claims: `cron.job.fired(job, slot)` is appended before the
//! job runs, and slots only move forward, so a slot at or before the last
//! claimed one is never run again, across restarts and replays (OpenClaw and
//! others fire twice after a restart; shared/lessons.md 1.2). A second claim
//! that reaches the log anyway is refused here and counted.

use std::collections::{BTreeMap, VecDeque};

use clawback_events::event::{
    CronJobAdded, CronJobFinished, CronJobFired, CronJobRemoved, CronJobSaved, CronRunFinished,
    CronRunForced,
};
use serde::{Deserialize, Serialize};

use crate::{Anomalies, At, push_bounded};

/// How many runs are kept per job for `cron.runs`; the log keeps all.
pub const CRON_RUNS_KEPT_MAX: usize = 100;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cron {
    pub jobs: BTreeMap<String, CronJob>,
    /// Claims refused because their slot was already claimed.
    pub duplicate_fires: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronJob {
    pub job_id: String,
    /// OpenClaw's `schedule` object, canonical JSON.
    pub schedule: String,
    /// The rest of the job's definition as clients see it, canonical JSON
    /// (an object; `{}` never occurs for a job saved by this gateway).
    pub definition: String,
    pub enabled: bool,
    pub added_seq: u64,
    pub updated_seq: u64,
    pub created_ts_ms: i64,
    pub updated_ts_ms: i64,
    /// Since when the schedule counts: slots of a recurring schedule before
    /// this (the job's creation, its last schedule change, its last
    /// re-enabling) never fire, so an edit cannot fire a backlog.
    pub active_since_ms: i64,
    /// The latest slot claimed; every slot at or before it is spent.
    pub last_slot_ms: Option<i64>,
    /// Most recent last.
    pub runs: VecDeque<CronRun>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronRun {
    pub run_id: String,
    /// The schedule slot the run claimed; for a forced run, when it was
    /// asked for.
    pub slot_ms: i64,
    /// Forced by hand (`cron.run`), not by the schedule.
    pub forced: bool,
    pub fired_seq: u64,
    pub fired_ts_ms: i64,
    pub status: CronRunStatus,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CronRunStatus {
    Running,
    Finished(CronRunResult),
    /// The gateway restarted while the run was in progress.
    Interrupted {
        restart_seq: u64,
        restart_ts_ms: i64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronRunResult {
    /// `ok`, `error` or `skipped`.
    pub status: String,
    pub error: Option<String>,
    pub summary: Option<String>,
    pub session_key: Option<String>,
    pub delivery_status: String,
    pub delivery_error: Option<String>,
    pub seq: u64,
    pub ts_ms: i64,
}

impl CronRun {
    /// `ok`, `error` or `skipped` once ended; an interrupted run is an error.
    pub fn outcome(&self) -> Option<(&str, Option<&str>)> {
        match &self.status {
            CronRunStatus::Running => None,
            CronRunStatus::Finished(result) => Some((&result.status, result.error.as_deref())),
            CronRunStatus::Interrupted { .. } => Some((
                "error",
                Some("interrupted: the gateway restarted during the run"),
            )),
        }
    }

    pub fn ended_ts_ms(&self) -> Option<i64> {
        match &self.status {
            CronRunStatus::Running => None,
            CronRunStatus::Finished(result) => Some(result.ts_ms),
            CronRunStatus::Interrupted { restart_ts_ms, .. } => Some(*restart_ts_ms),
        }
    }
}

impl CronJob {
    /// The run in progress, if any.
    pub fn running(&self) -> Option<&CronRun> {
        self.runs
            .back()
            .filter(|run| run.status == CronRunStatus::Running)
    }
}

impl Cron {
    /// The first format's job: a bare cron expression and a payload.
    pub(crate) fn job_added(&mut self, at: At, event: CronJobAdded) {
        let schedule = serde_json::json!({"kind": "cron", "expr": event.schedule}).to_string();
        let payload = serde_json::from_str::<serde_json::Value>(&event.payload)
            .unwrap_or(serde_json::Value::String(event.payload));
        let definition = serde_json::json!({"name": event.name, "payload": payload}).to_string();
        self.job_saved(
            at,
            CronJobSaved {
                job_id: event.job_id,
                schedule,
                definition,
                enabled: event.enabled,
            },
        );
    }

    pub(crate) fn job_saved(&mut self, at: At, event: CronJobSaved) {
        // Saving an existing id updates the job and keeps its history and
        // claimed slots: an edit must not make old slots fire again.
        let job = self
            .jobs
            .entry(event.job_id)
            .or_insert_with_key(|job_id| CronJob {
                job_id: job_id.clone(),
                schedule: String::new(),
                definition: String::new(),
                enabled: false,
                added_seq: at.seq,
                updated_seq: at.seq,
                created_ts_ms: at.ts_ms,
                updated_ts_ms: at.ts_ms,
                active_since_ms: at.ts_ms,
                last_slot_ms: None,
                runs: VecDeque::new(),
            });
        if job.schedule != event.schedule || (event.enabled && !job.enabled) {
            job.active_since_ms = at.ts_ms;
        }
        job.schedule = event.schedule;
        job.definition = event.definition;
        job.enabled = event.enabled;
        job.updated_seq = at.seq;
        job.updated_ts_ms = at.ts_ms;
    }

    pub(crate) fn job_removed(
        &mut self,
        at: At,
        event: &CronJobRemoved,
        anomalies: &mut Anomalies,
    ) {
        if self.jobs.remove(&event.job_id).is_none() {
            anomalies.record(
                at,
                "cron.unknown_job",
                format!("removal of cron job {} that does not exist", event.job_id),
            );
        }
    }

    pub(crate) fn job_fired(&mut self, at: At, event: CronJobFired, anomalies: &mut Anomalies) {
        let Some(job) = self.jobs.get_mut(&event.job_id) else {
            anomalies.record(
                at,
                "cron.unknown_job",
                format!("firing of cron job {} that does not exist", event.job_id),
            );
            return;
        };
        if job.last_slot_ms.is_some_and(|last| event.slot_ms <= last) {
            self.duplicate_fires += 1;
            anomalies.record(
                at,
                "cron.slot_already_fired",
                format!(
                    "cron job {} slot {} claimed again (last claimed slot {}); refused",
                    event.job_id,
                    event.slot_ms,
                    job.last_slot_ms.unwrap_or_default()
                ),
            );
            return;
        }
        job.last_slot_ms = Some(event.slot_ms);
        let run = CronRun {
            run_id: event.run_id,
            slot_ms: event.slot_ms,
            fired_seq: at.seq,
            fired_ts_ms: at.ts_ms,
            status: CronRunStatus::Running,
            forced: false,
        };
        push_bounded(&mut job.runs, run, CRON_RUNS_KEPT_MAX);
    }

    pub(crate) fn run_forced(&mut self, at: At, event: CronRunForced, anomalies: &mut Anomalies) {
        let Some(job) = self.jobs.get_mut(&event.job_id) else {
            anomalies.record(
                at,
                "cron.unknown_job",
                format!(
                    "forced run of cron job {} that does not exist",
                    event.job_id
                ),
            );
            return;
        };
        let run = CronRun {
            run_id: event.run_id,
            slot_ms: at.ts_ms,
            fired_seq: at.seq,
            fired_ts_ms: at.ts_ms,
            status: CronRunStatus::Running,
            forced: true,
        };
        push_bounded(&mut job.runs, run, CRON_RUNS_KEPT_MAX);
    }

    /// The first format's finish: ok or error, nothing else known.
    pub(crate) fn job_finished(
        &mut self,
        at: At,
        event: CronJobFinished,
        anomalies: &mut Anomalies,
    ) {
        let status = if event.ok { "ok" } else { "error" };
        self.run_finished(
            at,
            CronRunFinished {
                job_id: event.job_id,
                run_id: event.run_id,
                status: status.to_owned(),
                error: event.error,
                summary: None,
                session_key: None,
                delivery_status: "not-requested".to_owned(),
                delivery_error: None,
            },
            anomalies,
        );
    }

    pub(crate) fn run_finished(
        &mut self,
        at: At,
        event: CronRunFinished,
        anomalies: &mut Anomalies,
    ) {
        let run = self
            .jobs
            .get_mut(&event.job_id)
            .and_then(|job| job.runs.iter_mut().find(|run| run.run_id == event.run_id))
            .filter(|run| run.status == CronRunStatus::Running);
        let Some(run) = run else {
            anomalies.record(
                at,
                "cron.unknown_run",
                format!(
                    "finish of cron run {} (job {}) that is not running",
                    event.run_id, event.job_id
                ),
            );
            return;
        };
        run.status = CronRunStatus::Finished(CronRunResult {
            status: event.status,
            error: event.error,
            summary: event.summary,
            session_key: event.session_key,
            delivery_status: event.delivery_status,
            delivery_error: event.delivery_error,
            seq: at.seq,
            ts_ms: at.ts_ms,
        });
    }

    pub(crate) fn gateway_restarted(&mut self, at: At) {
        for job in self.jobs.values_mut() {
            for run in job.runs.iter_mut() {
                if run.status == CronRunStatus::Running {
                    run.status = CronRunStatus::Interrupted {
                        restart_seq: at.seq,
                        restart_ts_ms: at.ts_ms,
                    };
                }
            }
        }
    }

    /// Whether `slot_ms` of `job_id` was already claimed (so must not run).
    pub fn has_fired(&self, job_id: &str, slot_ms: i64) -> bool {
        self.jobs
            .get(job_id)
            .and_then(|job| job.last_slot_ms)
            .is_some_and(|last| slot_ms <= last)
    }
}
