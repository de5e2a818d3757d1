//! OpenClaw's WebSocket protocol (v4): the only place that knows its JSON.
//!
//! - `frames`: request, response and event frames, and error shapes;
//! - `connect`: the `connect` params and shared-secret authentication;
//! - `device`: Ed25519 device identity bound to the socket's challenge;
//! - `scopes`: the method -> scope table and its rules;
//! - `methods`: the methods clawback answers, and the honest refusal for the
//!   rest of OpenClaw's;
//! - `pairing`: device pairing requests and device tokens at connect;
//! - `connection`: one socket's life, from challenge to close;
//! - `request`: one authorized request: run, record, answer.
//!
//! Facts come from shared/openclaw/protocol.md (observed from 2026.9.6).

pub mod connect;
pub mod connection;
pub mod device;
pub mod frames;
mod lifecycle;
pub mod methods;
pub mod pairing;
pub(crate) mod request;
pub mod scopes;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use frames::ErrorShape;

/// Limits OpenClaw announces in `hello-ok.policy` and enforces.
pub mod policy {
    use std::time::Duration;

    /// `maxPayload`: the largest frame after the handshake.
    pub const MAX_PAYLOAD_BYTES: usize = 25 * 1024 * 1024;
    /// `maxBufferedBytes`: announced; clawback bounds outbound by frames.
    pub const MAX_BUFFERED_BYTES: usize = 50 * 1024 * 1024;
    /// The largest frame before `connect` succeeds (close 1009 beyond).
    pub const MAX_PREAUTH_PAYLOAD_BYTES: usize = 64 * 1024;
    /// Time allowed between the socket opening and `connect`.
    pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
    /// The global `tick` event's period.
    pub const TICK_INTERVAL: Duration = Duration::from_secs(30);
}

/// An event for every authenticated socket (each numbers it with its own
/// per-connection `seq`).
#[derive(Debug, Clone)]
pub enum Push {
    /// An event; each socket checks its scope guard before sending it.
    ///
    /// The payload is serialized once, here, not once per socket: a
    /// presence list pushed to a hundred sockets is encoded one time.
    Event {
        name: &'static str,
        payload: std::sync::Arc<str>,
        /// `stateVersion` on the frame (presence and health), as JSON.
        state_version: Option<std::sync::Arc<str>>,
    },
    /// `shutdown`, then close 1012 "service restart".
    Shutdown,
    /// An event for one socket only (`node.invoke.request` to the node
    /// that is asked), sent without a scope check: the gateway chose the
    /// recipient.
    To {
        conn_id: String,
        name: &'static str,
        payload: std::sync::Arc<str>,
    },
    /// Closes the node connections of a device whose node pairing was
    /// removed (close 1008).
    CloseNode { device_id: String },
    /// Not sent to anyone: the socket `conn_id` signals when it reaches this
    /// point of the push stream, so an answer sent after it is ordered after
    /// every event pushed before it (a run's final `chat` event before the
    /// final `agent` answer).
    Barrier {
        conn_id: String,
        reached: std::sync::Arc<std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>>,
    },
}

impl Push {
    pub fn event(name: &'static str, payload: Value) -> Push {
        Push::Event {
            name,
            payload: payload.to_string().into(),
            state_version: None,
        }
    }

    pub fn versioned(name: &'static str, payload: Value, state_version: Value) -> Push {
        Push::Event {
            name,
            payload: payload.to_string().into(),
            state_version: Some(state_version.to_string().into()),
        }
    }
}

/// Pushes buffered per socket before it counts as hopelessly behind.
pub const PUSH_BUFFER: usize = 256;

/// Failed connects allowed per client address per window.
const AUTH_FAILURES_MAX: u32 = 10;
const AUTH_FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at once; the oldest window is forgotten beyond it.
pub(crate) const AUTH_TRACKED_ADDRESSES_MAX: usize = 4_096;

/// Rate limit on failed authentication, per client address: at most
/// `max` failures per minute, then refused until the minute is over.
pub struct AuthLimiter {
    failures: Mutex<BTreeMap<IpAddr, (Instant, u32)>>,
    max: u32,
}

impl Default for AuthLimiter {
    /// The WebSocket connect's limit (and the HTTP endpoints', which
    /// share it): 10 failures a minute.
    fn default() -> AuthLimiter {
        AuthLimiter::with_max(AUTH_FAILURES_MAX)
    }
}

impl AuthLimiter {
    pub fn with_max(max: u32) -> AuthLimiter {
        assert!(
            max > 0,
            "a limiter that allows no failure locks everyone out"
        );
        AuthLimiter {
            failures: Mutex::new(BTreeMap::new()),
            max,
        }
    }

    /// How long `address` must wait (ms) if it is over the limit.
    pub fn retry_after_ms(&self, address: IpAddr) -> Option<u64> {
        let failures = self.failures.lock().expect("auth limiter lock");
        let (since, count) = failures.get(&address)?;
        let elapsed = since.elapsed();
        (*count >= self.max && elapsed < AUTH_FAILURE_WINDOW)
            .then(|| AUTH_FAILURE_WINDOW.saturating_sub(elapsed).as_millis() as u64)
    }

    pub fn check(&self, address: IpAddr) -> Result<(), ErrorShape> {
        match self.retry_after_ms(address) {
            Some(retry_after_ms) => Err(ErrorShape {
                code: frames::codes::INVALID_REQUEST,
                message: "unauthorized: too many failed authentication attempts; retry later"
                    .to_owned(),
                details: Some(serde_json::json!({
                    "code": "AUTH_RATE_LIMITED",
                    "recommendedNextStep": "wait_then_retry",
                })),
                retryable: Some(true),
                retry_after_ms: Some(retry_after_ms),
            }),
            None => Ok(()),
        }
    }

    pub fn failed(&self, address: IpAddr) {
        let mut failures = self.failures.lock().expect("auth limiter lock");
        let entry = failures.entry(address).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= AUTH_FAILURE_WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
        if failures.len() > AUTH_TRACKED_ADDRESSES_MAX {
            let oldest = failures
                .iter()
                .min_by_key(|(_, (since, _))| *since)
                .map(|(address, _)| *address);
            if let Some(oldest) = oldest {
                failures.remove(&oldest);
            }
        }
    }

    /// Addresses with failures on record (at most
    /// `AUTH_TRACKED_ADDRESSES_MAX`).
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.failures.lock().expect("auth limiter lock").len()
    }

    /// A success forgets the address's failures.
    pub fn succeeded(&self, address: IpAddr) {
        self.failures
            .lock()
            .expect("auth limiter lock")
            .remove(&address);
    }
}
