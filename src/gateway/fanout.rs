//! Server-push events derived from the log: one task follows the log and
//! turns each recorded change into the protocol event clients expect
//! (`presence`, `config.changed`, `sessions.changed`, `device.pair.*`,
//! `node.pair.*`, `exec.approval.*` (with what the command really runs),
//! and `node.invoke.request` to the one node asked).
//!
//! Why from the log and not from the handlers: every path that records a
//! change (a request, a connect, a pairing, later an executor) produces its
//! event the same way, in log order, and only once the change is durable.
//! A handler cannot forget to announce what it did, nor announce something
//! that was never recorded.

use std::sync::Arc;
use std::time::Duration;

use clawback_events::Envelope;
use clawback_events::event::Event;
use clawback_events::subscription::SubscriptionError;
use serde_json::{Value, json};

use super::Gateway;
use super::protocol::{Push, methods, pairing};

/// Presence changes arriving within this window are announced once, with
/// the list as it is at the end of it: the `presence` payload is the whole
/// list, so a burst of N connects would otherwise cost N lists to every
/// socket. `stateVersion` tells clients which list is newest.
const PRESENCE_COALESCE: Duration = Duration::from_millis(50);

/// Follows the log from `from_seq` until it closes.
pub async fn run(gateway: Arc<Gateway>, from_seq: u64) {
    let mut subscription = gateway.log.subscribe(from_seq);
    let mut presence_due: Option<tokio::time::Instant> = None;
    loop {
        let received = tokio::select! {
            received = subscription.recv() => received,
            () = sleep_until(presence_due), if presence_due.is_some() => {
                presence_due = None;
                let _ = gateway.pushes.send(presence(&gateway));
                continue;
            }
        };
        match received {
            Ok(envelope) => {
                if matches!(envelope.body.event.bare(), Event::PresenceChanged(_)) {
                    presence_due
                        .get_or_insert_with(|| tokio::time::Instant::now() + PRESENCE_COALESCE);
                } else if let Some(push) = push_for(&gateway, &envelope) {
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

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// `cron` with the job as it is now (OpenClaw sends its snapshot), plus
/// the fields of the action.
fn cron_event(gateway: &Gateway, job_id: &str, action: &str, fields: Value) -> Option<Push> {
    let job = {
        let state = gateway.state.read().expect("state lock");
        state
            .cron
            .jobs
            .get(job_id)
            .map(|job| methods::cron_job(job, methods::now_ms()))
    };
    let mut payload = json!({"jobId": job_id, "action": action});
    if let Some(job) = job {
        payload["nextRunAtMs"] = job["nextRunAtMs"].clone();
        payload["job"] = job;
    }
    if let Value::Object(fields) = fields {
        for (key, value) in fields.into_iter().filter(|(_, value)| !value.is_null()) {
            payload[key] = value;
        }
    }
    Some(Push::event("cron", payload))
}

/// `presence` with the current list and its version.
fn presence(gateway: &Gateway) -> Push {
    let list = methods::presence(gateway);
    let version = gateway
        .state
        .read()
        .expect("state lock")
        .presence
        .state_version;
    Push::versioned(
        "presence",
        json!({"presence": list}),
        gateway.state_version(version),
    )
}

fn push_for(gateway: &Gateway, envelope: &Envelope) -> Option<Push> {
    let ts = envelope.body.ts_ms;
    let event = |name: &'static str, payload: Value| Some(Push::event(name, payload));
    // Only a cron run's summary is session content among what pushes
    // carry: that one event is opened, never every sealed record that
    // passes (LLM bodies, tool output).
    match envelope.body.event.bare() {
        Event::ConfigChanged(change) => event(
            "config.changed",
            json!({"path": gateway.config_file.path().display().to_string(),
                   "hash": change.config_hash, "ts": ts}),
        ),
        Event::SessionCreated(e) => session_changed(gateway, &e.session_key, "create", ts),
        // To a client a fork is a new session (OpenClaw has no fork reason).
        Event::SessionForked(e) => session_changed(gateway, &e.session_key, "create", ts),
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
        Event::DeviceRevoked(revoked) => {
            // A removed device's node connections end with it.
            let _ = gateway.pushes.send(Push::CloseNode {
                device_id: revoked.device_id.clone(),
            });
            event("device.pair.changed", json!({}))
        }
        Event::DevicePaired(_) => event("device.pair.changed", json!({})),
        Event::NodePairRequested(request) => event(
            "node.pair.requested",
            methods::nodes::pending_row(request, ts),
        ),
        // A superseded request is reported rejected, as OpenClaw does.
        Event::NodePairResolved(resolved) => event(
            "node.pair.resolved",
            json!({"requestId": resolved.request_id, "nodeId": resolved.node_id,
                   "decision": if resolved.decision == "approved" { "approved" } else { "rejected" },
                   "ts": ts}),
        ),
        Event::NodeUnpaired(unpaired) => {
            let _ = gateway.pushes.send(Push::CloseNode {
                device_id: unpaired.node_id.clone(),
            });
            event(
                "node.pair.resolved",
                json!({"requestId": "", "nodeId": unpaired.node_id, "decision": "removed",
                       "ts": ts}),
            )
        }
        Event::NodeInvokeRequested(request) => {
            // Exact params from the waiting request; an invoke that has
            // already ended (or that a previous process made) is not sent.
            let params = gateway.node_invokes.params_for(&request.invoke_id)?;
            let mut payload = json!({
                "id": request.invoke_id, "nodeId": request.node_id, "command": request.command,
                "paramsJSON": params, "timeoutMs": request.timeout_ms,
                "idempotencyKey": request.idempotency_key,
            });
            if let Some(key) = &request.session_key {
                payload["sessionKey"] = json!(key);
            }
            Some(Push::To {
                conn_id: request.node_conn_id.clone(),
                name: "node.invoke.request",
                payload: payload.to_string().into(),
            })
        }
        Event::CronJobSaved(saved) => {
            let added = gateway
                .state
                .read()
                .expect("state lock")
                .cron
                .jobs
                .get(&saved.job_id)
                .is_some_and(|job| job.added_seq == envelope.seq);
            cron_event(
                gateway,
                &saved.job_id,
                if added { "added" } else { "updated" },
                json!({}),
            )
        }
        Event::CronJobRemoved(removed) => event(
            "cron",
            json!({"jobId": removed.job_id, "action": "removed"}),
        ),
        Event::CronJobFired(fired) => cron_event(
            gateway,
            &fired.job_id,
            "started",
            json!({"runId": fired.run_id, "runAtMs": ts}),
        ),
        Event::CronRunForced(forced) => cron_event(
            gateway,
            &forced.job_id,
            "started",
            json!({"runId": forced.run_id, "runAtMs": ts}),
        ),
        Event::CronRunFinished(finished) => {
            let summary = match &*envelope.body.event.read(&*gateway.keyring).event {
                Event::CronRunFinished(opened) => opened.summary.clone(),
                _ => None,
            };
            cron_event(
                gateway,
                &finished.job_id,
                "finished",
                json!({"runId": finished.run_id, "status": finished.status,
                       "error": finished.error, "summary": summary,
                       "sessionKey": finished.session_key,
                       "deliveryStatus": finished.delivery_status}),
            )
        }
        Event::VoiceWakeChanged(changed) => {
            event("voicewake.changed", json!({"triggers": changed.triggers}))
        }
        Event::ApprovalRequested(request) => {
            let mut payload = json!({"approvalKind": request.kind, "id": request.approval_id,
                   "request": {"command": request.command, "sessionKey": request.session_key,
                               "agentId": request.agent_id, "nodeId": request.node_id},
                   "createdAtMs": ts, "expiresAtMs": request.expires_at_ms});
            if let Some(warning) = methods::approvals::warning(request) {
                payload["request"]["warningText"] = json!(warning);
            }
            event("exec.approval.requested", payload)
        }
        Event::ApprovalResolved(resolved) => {
            gateway
                .approvals
                .settle(&resolved.approval_id, resolved.decision.as_str());
            event(
                "exec.approval.resolved",
                json!({"id": resolved.approval_id, "decision": resolved.decision.as_str(),
                       "resolvedBy": resolved.reviewer, "ts": ts}),
            )
        }
        Event::ApprovalExpired(expired) => {
            gateway.approvals.settle(&expired.approval_id, "expired");
            event(
                "exec.approval.resolved",
                json!({"id": expired.approval_id, "decision": "deny", "expired": true, "ts": ts}),
            )
        }
        _ => None,
    }
}

/// `sessions.changed` with the session's row as it is now, as OpenClaw's
/// keyed row snapshots are.
fn session_changed(gateway: &Gateway, key: &str, reason: &str, ts: i64) -> Option<Push> {
    let config = gateway.config();
    let state = gateway.state.read().expect("state lock");
    let mut payload = state.sessions.by_key.get(key).map_or_else(
        || json!({}),
        |session| methods::session_row(session, &config),
    );
    payload["key"] = json!(key);
    payload["reason"] = json!(reason);
    payload["ts"] = json!(ts);
    Some(Push::event("sessions.changed", payload))
}
