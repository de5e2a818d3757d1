//! `exec.approval.request`, `.resolve`, `.waitDecision`, `.get`, `.list`:
//! a human decides whether a command may run, and the log shows who decided
//! what, when, or that nobody did.
//!
//! Expiry is deny: a gateway task appends `approval.expired` for requests
//! past their deadline (see `gateway::approvals_expiry`). Waiters are woken
//! by the log fanout when a decision or an expiry is recorded, never by the
//! handler that recorded it, so a decision made anywhere wakes everyone.
//!
//! What this does not do yet (issue 5): reduce a command to its canonical
//! argv before hashing (so `sh -c`, `env`, `sudo` and chains cannot slip an
//! allow-always grant onto another command), and consult grants before
//! asking. Here the hash is of the command exactly as given.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clawback_events::event::{ApprovalRequested, ApprovalResolved, Decision, Event};
use clawback_projections::approvals::Settlement;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::super::frames::ErrorShape;
use super::{Caller, Params, Reply, now_ms};
use crate::gateway::Gateway;

const TIMEOUT_DEFAULT_MS: u64 = 5 * 60 * 1000;
const TIMEOUT_MAX_MS: u64 = 60 * 60 * 1000;
const GRANT_DAYS_DEFAULT: u64 = 30;
const GRANT_DAYS_MAX: u64 = 365;
const COMMAND_BYTES_MAX: usize = 64 * 1024;

const REQUEST_KEYS: &[&str] = &[
    "id",
    "command",
    "commandArgv",
    "systemRunPlan",
    "env",
    "cwd",
    "nodeId",
    "host",
    "security",
    "ask",
    "warningText",
    "scope",
    "unavailableDecisions",
    "commandSpans",
    "agentId",
    "resolvedPath",
    "sessionKey",
    "sessionId",
    "runId",
    "toolCallId",
    "turnSourceChannel",
    "turnSourceTo",
    "turnSourceAccountId",
    "turnSourceThreadId",
    "approvalReviewerDeviceIds",
    "requireDeliveryRoute",
    "suppressDelivery",
    "deliverToApprovalClientsOnly",
    "timeoutMs",
    "twoPhase",
];

/// Connections waiting for decisions, by approval id. Bounded by the
/// requests in flight (each connection has at most 64).
#[derive(Default)]
pub struct Waiters {
    waiting: Mutex<HashMap<String, watch::Sender<Option<String>>>>,
}

impl Waiters {
    fn subscribe(&self, id: &str) -> watch::Receiver<Option<String>> {
        let mut waiting = self.waiting.lock().expect("waiters lock");
        waiting
            .entry(id.to_owned())
            .or_insert_with(|| watch::channel(None).0)
            .subscribe()
    }

    /// Drops the entry of an id nobody else waits for (an unknown id).
    fn forget(&self, id: &str) {
        let mut waiting = self.waiting.lock().expect("waiters lock");
        if waiting
            .get(id)
            .is_some_and(|sender| sender.receiver_count() <= 1)
        {
            waiting.remove(id);
        }
    }

    /// Wakes the waiters of `id` with its outcome (`allow-once`, ..., or
    /// `expired`).
    pub fn settle(&self, id: &str, outcome: &str) {
        if let Some(sender) = self.waiting.lock().expect("waiters lock").remove(id) {
            let _ = sender.send(Some(outcome.to_owned()));
        }
    }
}

pub async fn request(gateway: &Arc<Gateway>, params: Option<&Value>) -> Reply {
    let parsed = (|| {
        let params = Params::closed("exec.approval.request", params, REQUEST_KEYS)?;
        let argv = params.opt_strings("commandArgv")?;
        let command = match (params.opt_str("command")?, &argv) {
            (Some(command), _) => command.to_owned(),
            (None, Some(argv)) if !argv.is_empty() => argv.join(" "),
            _ => {
                return Err(
                    params.invalid("must have required property 'command' or 'commandArgv'")
                );
            }
        };
        if command.trim().is_empty() || command.len() > COMMAND_BYTES_MAX {
            return Err(
                params.invalid("at /command: must be a non-empty command of at most 64 KiB")
            );
        }
        let timeout = params
            .opt_u64("timeoutMs")?
            .unwrap_or(TIMEOUT_DEFAULT_MS)
            .clamp(1_000, TIMEOUT_MAX_MS);
        let hashed = match &argv {
            Some(argv) => serde_json::to_string(argv).unwrap_or_default(),
            None => command.clone(),
        };
        let request = ApprovalRequested {
            approval_id: params
                .opt_str("id")?
                .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned),
            kind: "exec".to_owned(),
            command,
            argv_hash: blake3::hash(hashed.as_bytes()).to_hex().to_string(),
            session_key: params.opt_str("sessionKey")?.map(str::to_owned),
            agent_id: params.opt_str("agentId")?.map(str::to_owned),
            node_id: params.opt_str("nodeId")?.map(str::to_owned),
            expires_at_ms: now_ms() + timeout as i64,
        };
        Ok((
            request,
            params.opt_bool("twoPhase")?.unwrap_or(false),
            timeout,
        ))
    })();
    let (request, two_phase, timeout) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return Reply::answer(Err(error)),
    };
    let id = request.approval_id.clone();
    let known = {
        let state = gateway.state.read().expect("state lock");
        state.approvals.pending.contains_key(&id)
            || state
                .approvals
                .settled
                .iter()
                .any(|settled| settled.approval_id == id)
    };
    if known {
        return Reply::answer(Err(ErrorShape::invalid(format!(
            "approval id {id} is already in use"
        ))));
    }
    let answer = json!({"id": id, "decision": Value::Null, "createdAtMs": now_ms(),
                        "expiresAtMs": request.expires_at_ms});
    if two_phase {
        let mut reply = Reply::answer(Ok(answer));
        reply
            .events
            .push(("gateway".to_owned(), Event::ApprovalRequested(request)));
        return reply;
    }
    // Blocking form: recorded now, answered with the decision.
    let waiter = gateway.approvals.subscribe(&id);
    let recorded = gateway
        .log
        .append(vec![clawback_events::NewEvent::new(
            "gateway",
            clawback_events::Actor::System,
            Event::ApprovalRequested(request),
        )])
        .await;
    if let Err(error) = recorded {
        return Reply::answer(Err(ErrorShape::new(
            super::super::frames::codes::UNAVAILABLE,
            format!("the gateway cannot record this approval request: {error}"),
        )));
    }
    let decision = wait(waiter, Duration::from_millis(timeout + 2_000)).await;
    Reply::answer(Ok(decided(&id, decision.as_deref())))
}

pub async fn resolve(gateway: &Arc<Gateway>, caller: &Caller, params: Option<&Value>) -> Reply {
    let parsed = (|| {
        let params = Params::closed(
            "exec.approval.resolve",
            params,
            &["id", "decision", "reviewer", "grantExpiresInDays"],
        )?;
        let decision = match params.str("decision")? {
            "allow-once" => Decision::AllowOnce,
            "allow-always" => Decision::AllowAlways,
            "deny" => Decision::Deny,
            _ => {
                return Err(params.invalid(
                    "at /decision: must be equal to one of the allowed values (allow-once, allow-always, deny)",
                ));
            }
        };
        let days = params
            .opt_u64("grantExpiresInDays")?
            .unwrap_or(GRANT_DAYS_DEFAULT)
            .clamp(1, GRANT_DAYS_MAX);
        let reviewer = match params.opt_str("reviewer")? {
            Some(name) => format!("{} ({name})", caller.reviewer()),
            None => caller.reviewer(),
        };
        Ok((params.str("id")?.to_owned(), decision, days, reviewer))
    })();
    let (id, decision, days, reviewer) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return Reply::answer(Err(error)),
    };
    let lock = gateway.writes.clone().lock_owned().await;
    {
        let state = gateway.state.read().expect("state lock");
        if !state.approvals.pending.contains_key(&id) {
            let settled = state
                .approvals
                .settled
                .iter()
                .any(|settled| settled.approval_id == id);
            return Reply::answer(Err(if settled {
                ErrorShape::invalid("approval already resolved")
                    .with_details(json!({"reason": "APPROVAL_ALREADY_RESOLVED"}))
            } else {
                ErrorShape::invalid(format!("unknown approval id: {id}"))
            }));
        }
    }
    let grant_expires_at_ms =
        (decision == Decision::AllowAlways).then(|| now_ms() + days as i64 * 86_400_000);
    let mut reply = Reply::answer(Ok(
        json!({"ok": true, "id": id, "decision": decision.as_str()}),
    ));
    reply.events.push((
        "gateway".to_owned(),
        Event::ApprovalResolved(ApprovalResolved {
            approval_id: id,
            decision,
            reviewer,
            grant_expires_at_ms,
        }),
    ));
    reply.write_lock = Some(lock);
    reply
}

pub async fn wait_decision(gateway: &Arc<Gateway>, params: Option<&Value>) -> Reply {
    let parsed = (|| {
        let params = Params::closed("exec.approval.waitDecision", params, &["id", "timeoutMs"])?;
        Ok::<_, ErrorShape>((params.str("id")?.to_owned(), params.opt_u64("timeoutMs")?))
    })();
    let (id, timeout) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return Reply::answer(Err(error)),
    };
    let waiter = gateway.approvals.subscribe(&id);
    let pending = match settled_outcome(gateway, &id) {
        Lookup::Settled(outcome) => return Reply::answer(Ok(decided(&id, Some(&outcome)))),
        Lookup::Unknown => {
            drop(waiter);
            gateway.approvals.forget(&id);
            return Reply::answer(Err(ErrorShape::invalid(format!(
                "unknown approval id: {id}"
            ))));
        }
        Lookup::Pending(expires_at_ms) => expires_at_ms,
    };
    let until_expiry = Duration::from_millis((pending - now_ms()).max(0) as u64 + 2_000);
    let limit = timeout.map_or(until_expiry, |ms| {
        Duration::from_millis(ms).min(until_expiry)
    });
    let decision = wait(waiter, limit).await;
    Reply::answer(Ok(decided(&id, decision.as_deref())))
}

pub fn get(gateway: &Gateway, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let params = Params::closed("exec.approval.get", params, &["id"])?;
    let id = params.str("id")?;
    let state = gateway.state.read().expect("state lock");
    if let Some(pending) = state.approvals.pending.get(id) {
        return Ok(pending_row(pending));
    }
    let settled = state
        .approvals
        .settled
        .iter()
        .find(|settled| settled.approval_id == id)
        .ok_or_else(|| ErrorShape::invalid(format!("unknown approval id: {id}")))?;
    let (status, decision, reviewer) = match &settled.outcome {
        Settlement::Decided { decision, reviewer } => {
            ("resolved", json!(decision.as_str()), json!(reviewer))
        }
        Settlement::Expired => ("expired", json!("deny"), Value::Null),
    };
    Ok(
        json!({"id": id, "status": status, "decision": decision, "resolvedBy": reviewer,
              "request": {"command": settled.command}}),
    )
}

pub fn list(gateway: &Gateway, params: Option<&Value>) -> Result<Value, ErrorShape> {
    Params::closed("exec.approval.list", params, &[])?;
    let state = gateway.state.read().expect("state lock");
    let mut pending: Vec<&clawback_projections::approvals::PendingApproval> =
        state.approvals.pending.values().collect();
    pending.sort_by_key(|pending| pending.requested_seq);
    Ok(Value::Array(pending.into_iter().map(pending_row).collect()))
}

fn pending_row(pending: &clawback_projections::approvals::PendingApproval) -> Value {
    let request = &pending.request;
    json!({"id": request.approval_id, "status": "pending", "approvalKind": request.kind,
           "request": {"command": request.command, "sessionKey": request.session_key,
                       "agentId": request.agent_id, "nodeId": request.node_id},
           "createdAtMs": pending.requested_ts_ms, "expiresAtMs": request.expires_at_ms})
}

enum Lookup {
    Pending(i64),
    Settled(String),
    Unknown,
}

fn settled_outcome(gateway: &Gateway, id: &str) -> Lookup {
    let state = gateway.state.read().expect("state lock");
    if let Some(pending) = state.approvals.pending.get(id) {
        return Lookup::Pending(pending.request.expires_at_ms);
    }
    match state
        .approvals
        .settled
        .iter()
        .find(|settled| settled.approval_id == id)
    {
        Some(settled) => Lookup::Settled(match &settled.outcome {
            Settlement::Decided { decision, .. } => decision.as_str().to_owned(),
            Settlement::Expired => "expired".to_owned(),
        }),
        None => Lookup::Unknown,
    }
}

async fn wait(mut waiter: watch::Receiver<Option<String>>, limit: Duration) -> Option<String> {
    let waited = tokio::time::timeout(limit, waiter.wait_for(Option::is_some)).await;
    match waited {
        Ok(Ok(outcome)) => outcome.clone(),
        _ => None,
    }
}

/// The answer once decided: expiry is reported as a deny.
fn decided(id: &str, outcome: Option<&str>) -> Value {
    match outcome {
        Some("expired") => json!({"id": id, "decision": "deny", "expired": true}),
        Some(decision) => json!({"id": id, "decision": decision}),
        None => json!({"id": id, "decision": Value::Null, "timedOut": true}),
    }
}
