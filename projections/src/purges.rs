//! Content keys destroyed by session purges (crypto-shredding).
//!
//! Why a projection: a purge is recorded (`session.purged`) before its keys
//! are destroyed, so a crash in between leaves keys the log says are gone.
//! The gateway finishes such purges at its next start from this list, and
//! readers can tell "purged on purpose, at seq N" from "key lost".

use std::collections::{BTreeMap, VecDeque};

use clawback_events::event::SessionPurged;
use serde::{Deserialize, Serialize};

use crate::At;

/// Purged keys remembered. Purges are rare (one per purged session); past
/// this the oldest are forgotten, long after their start-up check ran.
pub const PURGED_KEYS_MAX: usize = 100_000;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purges {
    /// Key id -> the purge that destroyed it.
    pub keys: BTreeMap<String, PurgedKey>,
    /// Key ids in purge order, for the bound.
    order: VecDeque<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgedKey {
    pub session_key: String,
    pub seq: u64,
    pub ts_ms: i64,
}

impl Purges {
    pub(crate) fn purged(&mut self, at: At, event: SessionPurged) {
        for key_id in event.key_ids {
            let purge = PurgedKey {
                session_key: event.session_key.clone(),
                seq: at.seq,
                ts_ms: at.ts_ms,
            };
            // A key named twice keeps its first purge.
            if !self.keys.contains_key(&key_id) {
                self.keys.insert(key_id.clone(), purge);
                self.order.push_back(key_id);
            }
            while self.order.len() > PURGED_KEYS_MAX {
                if let Some(oldest) = self.order.pop_front() {
                    self.keys.remove(&oldest);
                }
            }
        }
        debug_assert_eq!(self.keys.len(), self.order.len());
    }
}
