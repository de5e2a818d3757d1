//! The gateway's configuration as of the last `config.changed`.
//!
//! Why: `config.get` answers with the current config and its hash, and
//! `config.set`/`config.patch` compare the client's `baseHash` against it.
//! The log holds every version, so the projection keeps only the current one
//! and a short list of recent hashes for display.

use std::collections::VecDeque;

use clawback_events::event::ConfigChanged;
use serde::{Deserialize, Serialize};

use crate::{At, push_bounded};

pub const CONFIG_HISTORY_MAX: usize = 16;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub current: Option<ConfigVersion>,
    /// How many times the config has changed since the log began.
    pub versions: u64,
    /// The most recent versions (hash, source, seq), oldest first.
    pub history: VecDeque<ConfigHistoryEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigVersion {
    pub hash: String,
    /// The whole config as JSON text, secrets already redacted.
    pub config_redacted: String,
    pub source: String,
    pub seq: u64,
    pub ts_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigHistoryEntry {
    pub hash: String,
    pub source: String,
    pub seq: u64,
}

impl Config {
    pub(crate) fn changed(&mut self, at: At, event: ConfigChanged) {
        self.versions += 1;
        let entry = ConfigHistoryEntry {
            hash: event.config_hash.clone(),
            source: event.source.clone(),
            seq: at.seq,
        };
        self.current = Some(ConfigVersion {
            hash: event.config_hash,
            config_redacted: event.config_redacted,
            source: event.source,
            seq: at.seq,
            ts_ms: at.ts_ms,
        });
        push_bounded(&mut self.history, entry, CONFIG_HISTORY_MAX);
    }

    /// The hash clients must send as `baseHash`; `None` before any config.
    pub fn current_hash(&self) -> Option<&str> {
        self.current.as_ref().map(|version| version.hash.as_str())
    }
}
