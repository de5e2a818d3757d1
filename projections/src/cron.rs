//! Cron jobs and their firings.
//!
//! Why firings are claims: `cron.job.fired(job, slot)` is appended before the
//! job runs, and slots only move forward, so a slot at or before the last
//! claimed one is never run again, across restarts and replays (OpenClaw and
//! others fire twice after a restart; shared/lessons.md 1.2). A second claim
//! that reaches the log anyway is refused here and counted.

use std::collections::{BTreeMap, VecDeque};

use clawback_events::event::{CronJobAdded, CronJobFinished, CronJobFired, CronJobRemoved};
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
    pub name: String,
    pub schedule: String,
    pub payload: String,
    pub enabled: bool,
    pub added_seq: u64,
    pub updated_seq: u64,
    /// The latest slot claimed; every slot at or before it is spent.
    pub last_slot_ms: Option<i64>,
    /// Most recent last.
    pub runs: VecDeque<CronRun>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronRun {
    pub run_id: String,
    pub slot_ms: i64,
    pub fired_seq: u64,
    pub fired_ts_ms: i64,
    pub status: CronRunStatus,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CronRunStatus {
    Running,
    Finished {
        ok: bool,
        error: Option<String>,
        seq: u64,
    },
    /// The gateway restarted while the run was in progress.
    Interrupted {
        restart_seq: u64,
    },
}

impl Cron {
    pub(crate) fn job_added(&mut self, at: At, event: CronJobAdded) {
        // Adding an existing id updates the job and keeps its history and
        // claimed slots: an edit must not make old slots fire again.
        let job = self
            .jobs
            .entry(event.job_id)
            .or_insert_with_key(|job_id| CronJob {
                job_id: job_id.clone(),
                name: String::new(),
                schedule: String::new(),
                payload: String::new(),
                enabled: false,
                added_seq: at.seq,
                updated_seq: at.seq,
                last_slot_ms: None,
                runs: VecDeque::new(),
            });
        job.name = event.name;
        job.schedule = event.schedule;
        job.payload = event.payload;
        job.enabled = event.enabled;
        job.updated_seq = at.seq;
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
        };
        push_bounded(&mut job.runs, run, CRON_RUNS_KEPT_MAX);
    }

    pub(crate) fn job_finished(
        &mut self,
        at: At,
        event: CronJobFinished,
        anomalies: &mut Anomalies,
    ) {
        let run = self
            .jobs
            .get_mut(&event.job_id)
            .and_then(|job| job.runs.iter_mut().find(|run| run.run_id == event.run_id))
            .filter(|run| !matches!(run.status, CronRunStatus::Finished { .. }));
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
        run.status = CronRunStatus::Finished {
            ok: event.ok,
            error: event.error,
            seq: at.seq,
        };
    }

    pub(crate) fn gateway_restarted(&mut self, at: At) {
        for job in self.jobs.values_mut() {
            for run in job.runs.iter_mut() {
                if run.status == CronRunStatus::Running {
                    run.status = CronRunStatus::Interrupted {
                        restart_seq: at.seq,
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
