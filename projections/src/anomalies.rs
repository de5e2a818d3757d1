//! Events that did not fit the state they were applied to.
//!
//! Why a projection of its own: reducers must be total (a bad event can never
//! stop a rebuild), but silently ignoring an event would hide exactly the bugs
//! an audit log exists to show: a reply for a deleted session, a second
//! decision on one approval, a cron slot fired twice. Each is counted by kind
//! and the most recent are kept with their seq, so `clawback replay` and the
//! status methods can point at them.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::{At, push_bounded};

/// How many anomalies are kept with their detail; the counts are complete.
pub const RECENT_ANOMALIES_MAX: usize = 64;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomalies {
    /// Every anomaly ever seen, by kind (`approval.resolved_twice`, ...).
    pub counts: BTreeMap<String, u64>,
    pub recent: VecDeque<Anomaly>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    pub seq: u64,
    pub kind: String,
    pub detail: String,
}

impl Anomalies {
    pub fn record(&mut self, at: At, kind: &str, detail: String) {
        *self.counts.entry(kind.to_owned()).or_default() += 1;
        let anomaly = Anomaly {
            seq: at.seq,
            kind: kind.to_owned(),
            detail,
        };
        push_bounded(&mut self.recent, anomaly, RECENT_ANOMALIES_MAX);
    }

    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    pub fn count(&self, kind: &str) -> u64 {
        self.counts.get(kind).copied().unwrap_or(0)
    }
}
