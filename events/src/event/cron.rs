//! Cron jobs, their firings and their runs. Part of [`super::Event`]'s vocabulary; the
//! compatibility rule in its module docs applies to every struct here.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronJobAdded {
    pub job_id: String,
    pub name: String,
    /// The schedule as the user wrote it (cron expression, `every 5m`, ISO time).
    pub schedule: String,
    /// What the job does, as OpenClaw's job payload JSON.
    pub payload: String,
    pub enabled: bool,
}

/// A cron job created or edited: clawback's form of a job (`cron.job.added`
/// is the first format's, kept readable).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronJobSaved {
    pub job_id: String,
    /// When the job fires, as OpenClaw's `schedule` object: canonical JSON.
    pub schedule: String,
    /// Everything else clients see of the job's definition (name, target,
    /// payload, delivery, ...), canonical JSON; scheduler state is derived.
    pub definition: String,
    pub enabled: bool,
}

/// A run of a job asked for by hand (`cron.run`): it claims no schedule
/// slot, so the job's next scheduled firing still happens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronRunForced {
    pub job_id: String,
    pub run_id: String,
}

/// How a cron run ended: `cron.job.finished` with what `cron.runs` shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronRunFinished {
    pub job_id: String,
    pub run_id: String,
    /// `ok`, `error` or `skipped`.
    pub status: String,
    pub error: Option<String>,
    /// The start of the agent's reply, for run lists.
    pub summary: Option<String>,
    pub session_key: Option<String>,
    /// `delivered`, `not-delivered`, `unknown` or `not-requested`.
    pub delivery_status: String,
    pub delivery_error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronJobRemoved {
    pub job_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronJobFired {
    pub job_id: String,
    /// The schedule slot (unix ms) this firing claims. Appended before the
    /// job runs, so a restart can never fire the same slot twice.
    pub slot_ms: i64,
    pub run_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronJobFinished {
    pub job_id: String,
    pub run_id: String,
    pub ok: bool,
    pub error: Option<String>,
}
