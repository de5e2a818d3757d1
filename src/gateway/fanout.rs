//! Server-push events derived from the log: one task follows the log and
//! turns each recorded change into the protocol event clients expect
//! (`presence`, `config.changed`, `sessions.changed`, `device.pair.*`).
//!
//! Why from the log and not from the handlers: every path that records a
//! change (a request, a connect, a pairing, later an executor) produces its
//! event the same way, in log order, and only once the change is durable.
//! A handler cannot forget to announce what it did, nor announce something
//! that was never recorded.

use std::sync::Arc;

use clawback_events::Envelope;
use clawback_events::event::Event;
use clawback_events::subscription::SubscriptionError;
use serde_json::{Value, json};

use super::Gateway;
use super::protocol::{Push, methods, pairing};

/// Follows the log from `from_seq` until it closes.
pub async fn run(gateway: Arc<Gateway>, from_seq: u64) {
    let mut subscription = gateway.log.subscribe(from_seq);
    loop {
        match subscription.recv().await {
            Ok(envelope) => {
                if let Some(push) = push_for(&gateway, &envelope) {
                    let _ = gateway.pushes.send(push);
                }
            }
            // Behind the live ring: read the rest from the store.
            Err(SubscriptionError::Lagged { resume_from }) => {
                subscription = gateway.log.subscribe(resume_from);
            }
            Err(SubscriptionError::Closed) => return,
            Err(error @ SubscriptionError::Unreadable { .. }) => {
                tracing::error!(subsystem = "fanout", "event fanout stopped: {error}");
                return;
            }
        }
    }
}

fn push_for(gateway: &Gateway, envelope: &Envelope) -> Option<Push> {
    let ts = envelope.body.ts_ms;
    let event = |name: &'static str, payload: Value| Some(Push::event(name, payload));
    match &envelope.body.event {
        Event::PresenceChanged(_) => {
            let presence = methods::presence(gateway);
            let version = gateway
                .state
                .read()
                .expect("state lock")
                .presence
                .state_version;
            Some(Push::Event {
                name: "presence",
                payload: json!({"presence": presence}),
                state_version: Some(gateway.state_version(version)),
            })
        }
        Event::ConfigChanged(change) => event(
            "config.changed",
            json!({"path": gateway.config_file.path().display().to_string(),
                   "hash": change.config_hash, "ts": ts}),
        ),
        Event::SessionCreated(e) => session_changed(gateway, &e.session_key, "create", ts),
        Event::SessionPatched(e) => session_changed(gateway, &e.session_key, "patch", ts),
        Event::SessionReset(e) => session_changed(gateway, &e.session_key, "reset", ts),
        Event::SessionCompacted(e) => session_changed(gateway, &e.session_key, "compact", ts),
        Event::SessionDeleted(e) => event(
            "sessions.changed",
            json!({"key": e.session_key, "reason": "delete", "deleted": true, "ts": ts}),
        ),
        Event::DevicePairRequested(request) => event(
            "device.pair.requested",
            pairing::requested_payload(request, ts),
        ),
        Event::DevicePairResolved(resolved) => event(
            "device.pair.resolved",
            json!({"requestId": resolved.request_id, "deviceId": resolved.device_id,
                   "decision": if resolved.approved { "approved" } else { "rejected" },
                   "ts": ts}),
        ),
        Event::DeviceRevoked(_) | Event::DevicePaired(_) => event("device.pair.changed", json!({})),
        _ => None,
    }
}

/// `sessions.changed` with the session's row as it is now, as OpenClaw's
/// keyed row snapshots are.
fn session_changed(gateway: &Gateway, key: &str, reason: &str, ts: i64) -> Option<Push> {
    let state = gateway.state.read().expect("state lock");
    let mut payload = state
        .sessions
        .by_key
        .get(key)
        .map_or_else(|| json!({}), |session| methods::session_row(session, None));
    payload["key"] = json!(key);
    payload["reason"] = json!(reason);
    payload["ts"] = json!(ts);
    Some(Push::event("sessions.changed", payload))
}
