//! `exec.approval.request`, `.resolve`, `.waitDecision`, `.get`, `.list`:
//! a human decides whether a command may run, and the log shows who decided
//! what, when, or that nobody did.
//!
//! Expiry is deny: a gateway task appends `approval.expired` for requests
//! past their deadline (see `gateway::approvals_expiry`). Waiters are woken
//! by the log fanout when a decision or an expiry is recorded, never by the
//! handler that recorded it, so a decision made anywhere wakes everyone.
//!
//! A request is bound to its canonical argv (`exec::canonical`: wrappers
//! unwrapped, chains split, quotes resolved) and working directory; an
//! allow-always grant is recorded against that hash, and a later request
//! with the same hash while the grant lives is answered `allow-always`
//! without asking, recording `approval.grant.applied` (which grant, so
//! replay shows who allowed it). A command the parser cannot decide
//! (`$(...)`, `eval`, variables, ...) is opaque: its hash is unique to the
//! request, so no grant ever covers it and it always asks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clawback_events::event::{
    ApprovalGrantApplied, ApprovalRequested, ApprovalResolved, Decision, Event,
};
use clawback_projections::approvals::Settlement;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::super::frames::ErrorShape;
use super::{Caller, Params, Reply, now_ms};
use crate::exec::canonical::{self, Canonical};
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
        let canonical = match &argv {
            Some(argv) if !argv.is_empty() => canonical::from_argv(argv),
            _ => canonical::parse(&command),
        };
        let cwd = params.opt_str("cwd")?.unwrap_or_default();
        let request = ApprovalRequested {
            approval_id: params
                .opt_str("id")?
                .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned),
            kind: "exec".to_owned(),
            command,
            argv_hash: argv_hash(&canonical, cwd),
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
    if let Some(applied) = covering_grant(gateway, &request, &id) {
        let answer = json!({"id": id, "decision": "allow-always",
                            "grantId": applied.grant_approval_id});
        let mut reply = Reply::answer(Ok(answer));
        reply
            .events
            .push(("gateway".to_owned(), Event::ApprovalGrantApplied(applied)));
        return reply;
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

/// The hash a request is bound to: its canonical argv and working
/// directory, or, for an opaque command, a value unique to this request so
/// that no grant can ever be recorded against, or found for, it.
pub fn argv_hash(canonical: &Canonical, cwd: &str) -> String {
    canonical
        .hash(cwd)
        .unwrap_or_else(|| format!("{OPAQUE_HASH_PREFIX}{}", uuid::Uuid::new_v4()))
}

/// What marks the hash of an opaque command.
pub const OPAQUE_HASH_PREFIX: &str = "opaque:";

/// The grant that answers `request` without asking, as the event that
/// records its use; `None` for an opaque command or when no grant is live.
pub fn covering_grant(
    gateway: &Gateway,
    request: &ApprovalRequested,
    request_id: &str,
) -> Option<ApprovalGrantApplied> {
    if request.argv_hash.starts_with(OPAQUE_HASH_PREFIX) {
        return None;
    }
    let state = gateway.state.read().expect("state lock");
    let grant = state.approvals.grant_for(&request.argv_hash, now_ms())?;
    Some(ApprovalGrantApplied {
        request_id: request_id.to_owned(),
        grant_approval_id: grant.approval_id.clone(),
        command: request.command.clone(),
        argv_hash: request.argv_hash.clone(),
        session_key: request.session_key.clone(),
        agent_id: request.agent_id.clone(),
    })
}

/// Records `request` (on `stream`, by `actor`, correlated to
/// `correlation`) and waits for its outcome, as `Waiters::settle` gives it
/// (`allow-once`, `allow-always`, `deny`, `expired`), at most `timeout`
/// and 2 s more; `None` if nothing was recorded by then. The exec tool's
/// way of asking.
pub async fn ask(
    gateway: &Gateway,
    (stream, actor, correlation): (&str, &clawback_events::Actor, &str),
    request: ApprovalRequested,
    timeout: Duration,
) -> Result<Option<String>, String> {
    // Subscribed before the request is recorded, so no decision is missed.
    let waiter = gateway.approvals.subscribe(&request.approval_id);
    gateway
        .log
        .append(vec![
            clawback_events::NewEvent::new(
                stream.to_owned(),
                actor.clone(),
                Event::ApprovalRequested(request),
            )
            .correlated(correlation.to_owned()),
        ])
        .await
        .map_err(|error| format!("the gateway cannot record this approval request: {error}"))?;
    Ok(wait(waiter, timeout + Duration::from_secs(2)).await)
}

/// What a reviewer should know beyond the command text (OpenClaw's
/// `warningText`): why an opaque command can never be covered by a grant,
/// or the simple commands a wrapped or chained command runs.
pub fn warning(request: &ApprovalRequested) -> Option<String> {
    if request.kind != "exec" {
        return None;
    }
    let parsed = canonical::parse(&request.command);
    if request.argv_hash.starts_with(OPAQUE_HASH_PREFIX) {
        let reason = match &parsed {
            Canonical::Opaque { reason } => reason.as_str(),
            Canonical::Commands(_) => "its argv cannot be analysed",
        };
        return Some(format!(
            "This command cannot be analysed ({reason}); an allow-always decision will not cover it again."
        ));
    }
    match &parsed {
        Canonical::Commands(commands)
            if commands.len() > 1 || commands.iter().any(|c| !c.context.is_empty()) =>
        {
            Some(format!(
                "This runs {} command(s), each approved as written here:\n{}",
                commands.len(),
                parsed.describe()
            ))
        }
        _ => None,
    }
}

/// The stream the request recorded at `requested_seq` is on (a session's,
/// for the exec tool's): its decision and expiry are recorded there too,
/// so the session's timeline (`clawback replay <session>`) shows who
/// decided what about its commands. `gateway` if it cannot be read.
pub fn request_stream(gateway: &Gateway, requested_seq: u64) -> String {
    gateway
        .log
        .store()
        .get(requested_seq)
        .ok()
        .flatten()
        .and_then(|bytes| clawback_events::record::decode(requested_seq, &bytes).ok())
        .map_or_else(|| "gateway".to_owned(), |envelope| envelope.body.stream)
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
    let requested_seq = {
        let state = gateway.state.read().expect("state lock");
        let Some(pending) = state.approvals.pending.get(&id) else {
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
        };
        pending.requested_seq
    };
    let grant_expires_at_ms =
        (decision == Decision::AllowAlways).then(|| now_ms() + days as i64 * 86_400_000);
    let mut reply = Reply::answer(Ok(
        json!({"ok": true, "id": id, "decision": decision.as_str()}),
    ));
    reply.events.push((
        request_stream(gateway, requested_seq),
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
