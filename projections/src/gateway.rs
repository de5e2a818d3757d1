//! The gateway process's own lifecycle as the log saw it, and RPC totals.
//!
//! Why: "when did it start, which version, how did it stop" is the first thing
//! an operator asks after an incident, and a start without a stop before it
//! is how an unclean shutdown shows up in the history.

use std::collections::BTreeMap;

use clawback_events::Event;
use clawback_events::event::{GatewayStarted, GatewayStopped, RpcOutcome};
use serde::{Deserialize, Serialize};

use crate::At;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gateway {
    pub starts: u64,
    /// Starts not preceded by a stop: the previous process died (crash,
    /// SIGKILL, power loss).
    pub unclean_restarts: u64,
    pub current: Option<Run>,
    pub last_stop: Option<Stop>,
    pub rpc: RpcTotals,
    /// Voice wake words, once set (`voicewake.set`); none means defaults.
    pub voice_wake: Option<Vec<String>>,
}

/// The process that is (or was last) running.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub version: String,
    pub bind: String,
    pub started_seq: u64,
    pub started_ts_ms: i64,
    pub running: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stop {
    pub seq: u64,
    pub ts_ms: i64,
    pub reason: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpcTotals {
    pub received: u64,
    pub answered_ok: u64,
    pub answered_error: u64,
    /// Requests per method. Bounded in practice by the method table: the
    /// gateway records unknown methods under one name.
    pub by_method: BTreeMap<String, u64>,
}

impl Gateway {
    pub(crate) fn started(&mut self, at: At, event: GatewayStarted) {
        if self.current.as_ref().is_some_and(|run| run.running) {
            self.unclean_restarts += 1;
        }
        self.starts += 1;
        self.current = Some(Run {
            version: event.version,
            bind: event.bind,
            started_seq: at.seq,
            started_ts_ms: at.ts_ms,
            running: true,
        });
    }

    pub(crate) fn stopped(&mut self, at: At, event: GatewayStopped) {
        if let Some(run) = &mut self.current {
            run.running = false;
        }
        self.last_stop = Some(Stop {
            seq: at.seq,
            ts_ms: at.ts_ms,
            reason: event.reason,
        });
    }

    pub(crate) fn rpc(&mut self, event: &Event) {
        match event {
            Event::RpcReceived(e) => {
                self.rpc.received += 1;
                match self.rpc.by_method.get_mut(&e.method) {
                    Some(count) => *count += 1,
                    None => {
                        self.rpc.by_method.insert(e.method.clone(), 1);
                    }
                }
            }
            Event::RpcAnswered(e) => match e.outcome {
                RpcOutcome::Ok => self.rpc.answered_ok += 1,
                RpcOutcome::Error { .. } => self.rpc.answered_error += 1,
            },
            _ => {}
        }
    }
}
