//! Who is connected, and OpenClaw's presence list.
//!
//! Why both: connections are what the gateway authenticated (role, scopes,
//! device); presence entries are what clients announce about themselves and
//! what `system-presence` returns. Both live only as long as the gateway
//! process, so a `gateway.started` clears them: after a crash the log would
//! otherwise keep showing clients that are long gone.

use std::collections::BTreeMap;

use clawback_events::event::{
    ConnectionClosed, ConnectionOpened, PresenceChange, PresenceChanged, PresenceEntry,
};
use serde::{Deserialize, Serialize};

use crate::{Anomalies, At};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    pub connections: BTreeMap<String, Connection>,
    pub entries: BTreeMap<String, PresenceRecord>,
    /// OpenClaw's `stateVersion.presence`: bumped on every change clients can
    /// see, so they can tell a stale snapshot from a fresh one.
    pub state_version: u64,
}

/// An open connection: what it authenticated as, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub opened: ConnectionOpened,
    pub opened_seq: u64,
    pub opened_ts_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceRecord {
    pub entry: PresenceEntry,
    pub updated_seq: u64,
    pub updated_ts_ms: i64,
}

impl Presence {
    pub(crate) fn gateway_restarted(&mut self, _at: At) {
        if !self.connections.is_empty() || !self.entries.is_empty() {
            self.connections.clear();
            self.entries.clear();
            self.state_version += 1;
        }
    }

    pub(crate) fn connection_opened(
        &mut self,
        at: At,
        event: ConnectionOpened,
        anomalies: &mut Anomalies,
    ) {
        let key = event.conn_id.clone();
        let connection = Connection {
            opened: event,
            opened_seq: at.seq,
            opened_ts_ms: at.ts_ms,
        };
        if let Some(previous) = self.connections.insert(key, connection) {
            anomalies.record(
                at,
                "connection.reopened",
                format!(
                    "connection {} opened while already open",
                    previous.opened.conn_id
                ),
            );
        }
    }

    pub(crate) fn connection_closed(
        &mut self,
        at: At,
        event: &ConnectionClosed,
        anomalies: &mut Anomalies,
    ) {
        if self.connections.remove(&event.conn_id).is_none() {
            anomalies.record(
                at,
                "connection.unknown",
                format!("close of connection {} that is not open", event.conn_id),
            );
        }
    }

    pub(crate) fn changed(&mut self, at: At, event: PresenceChanged, anomalies: &mut Anomalies) {
        match event.change {
            PresenceChange::Upsert(entry) => {
                let record = PresenceRecord {
                    entry,
                    updated_seq: at.seq,
                    updated_ts_ms: at.ts_ms,
                };
                self.entries.insert(event.key, record);
            }
            PresenceChange::Removed { .. } => {
                if self.entries.remove(&event.key).is_none() {
                    anomalies.record(
                        at,
                        "presence.unknown",
                        format!(
                            "removal of presence entry {} that does not exist",
                            event.key
                        ),
                    );
                    return;
                }
            }
        }
        self.state_version += 1;
    }
}
