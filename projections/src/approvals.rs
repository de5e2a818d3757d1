//! Human approvals of tool calls: what is waiting, what was decided by whom,
//! and which allow-always grants are in force.
//!
//! Why the reducer is strict: approval bypasses are the worst class of bug a
//! gateway can have (see shared/lessons.md). So a decision counts only for a
//! pending request, once, and only if it was recorded before the request
//! expired; anything else is an anomaly and changes nothing. Grants are bound
//! to the canonical argv hash, never to the command text.

use std::collections::{BTreeMap, VecDeque};

use clawback_events::event::{
    ApprovalExpired, ApprovalGrantApplied, ApprovalRequested, ApprovalResolved, Decision,
};
use serde::{Deserialize, Serialize};

use crate::{Anomalies, At, push_bounded};

/// How many settled approvals are kept for display; the log keeps all.
pub const SETTLED_APPROVALS_MAX: usize = 256;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approvals {
    pub pending: BTreeMap<String, PendingApproval>,
    /// Most recently settled last.
    pub settled: VecDeque<SettledApproval>,
    /// Allow-always grants by argv hash.
    pub grants: BTreeMap<String, Grant>,
    pub totals: ApprovalTotals,
    /// The exec approval policy in force, if one was ever set.
    pub policy: Option<PolicyVersion>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyVersion {
    pub hash: String,
    pub policy: String,
    pub seq: u64,
    pub ts_ms: i64,
}

/// A request waiting for a decision: the request as recorded, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingApproval {
    pub request: ApprovalRequested,
    pub requested_seq: u64,
    pub requested_ts_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettledApproval {
    pub approval_id: String,
    pub command: String,
    pub argv_hash: String,
    pub session_key: Option<String>,
    pub outcome: Settlement,
    pub requested_seq: u64,
    pub settled_seq: u64,
    pub settled_ts_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Settlement {
    Decided {
        decision: Decision,
        reviewer: String,
    },
    /// Nobody decided in time; expiry means deny.
    Expired,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub approval_id: String,
    pub command: String,
    pub reviewer: String,
    pub granted_seq: u64,
    pub granted_ts_ms: i64,
    pub expires_at_ms: Option<i64>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalTotals {
    pub requested: u64,
    pub allowed_once: u64,
    pub allowed_always: u64,
    pub denied: u64,
    pub expired: u64,
}

impl Approvals {
    pub(crate) fn requested(
        &mut self,
        at: At,
        event: ApprovalRequested,
        anomalies: &mut Anomalies,
    ) {
        if self.pending.contains_key(&event.approval_id)
            || self
                .settled
                .iter()
                .any(|settled| settled.approval_id == event.approval_id)
        {
            anomalies.record(
                at,
                "approval.id_reused",
                format!("approval {} requested twice", event.approval_id),
            );
            return;
        }
        self.totals.requested += 1;
        let key = event.approval_id.clone();
        let pending = PendingApproval {
            request: event,
            requested_seq: at.seq,
            requested_ts_ms: at.ts_ms,
        };
        self.pending.insert(key, pending);
    }

    pub(crate) fn resolved(&mut self, at: At, event: ApprovalResolved, anomalies: &mut Anomalies) {
        let Some(pending) = self.pending.remove(&event.approval_id) else {
            anomalies.record(
                at,
                "approval.not_pending",
                format!(
                    "decision {} by {} on approval {} that is not pending; ignored",
                    event.decision.as_str(),
                    event.reviewer,
                    event.approval_id
                ),
            );
            return;
        };
        if at.ts_ms > pending.request.expires_at_ms {
            // A late decision must not turn an expired (denied) request into
            // an allowed one.
            anomalies.record(
                at,
                "approval.decided_after_expiry",
                format!(
                    "decision {} on approval {} came {} ms after it expired; treated as expired",
                    event.decision.as_str(),
                    event.approval_id,
                    at.ts_ms - pending.request.expires_at_ms
                ),
            );
            self.settle(at, pending, Settlement::Expired);
            return;
        }
        match event.decision {
            Decision::AllowOnce => self.totals.allowed_once += 1,
            Decision::Deny => self.totals.denied += 1,
            Decision::AllowAlways => {
                self.totals.allowed_always += 1;
                let grant = Grant {
                    approval_id: pending.request.approval_id.clone(),
                    command: pending.request.command.clone(),
                    reviewer: event.reviewer.clone(),
                    granted_seq: at.seq,
                    granted_ts_ms: at.ts_ms,
                    expires_at_ms: event.grant_expires_at_ms,
                };
                self.grants.insert(pending.request.argv_hash.clone(), grant);
            }
        }
        let settlement = Settlement::Decided {
            decision: event.decision,
            reviewer: event.reviewer,
        };
        self.settle(at, pending, settlement);
    }

    pub(crate) fn expired(&mut self, at: At, event: &ApprovalExpired, anomalies: &mut Anomalies) {
        let Some(pending) = self.pending.remove(&event.approval_id) else {
            anomalies.record(
                at,
                "approval.not_pending",
                format!(
                    "expiry of approval {} that is not pending",
                    event.approval_id
                ),
            );
            return;
        };
        self.settle(at, pending, Settlement::Expired);
    }

    fn settle(&mut self, at: At, pending: PendingApproval, outcome: Settlement) {
        if outcome == Settlement::Expired {
            self.totals.expired += 1;
        }
        let settled = SettledApproval {
            approval_id: pending.request.approval_id,
            command: pending.request.command,
            argv_hash: pending.request.argv_hash,
            session_key: pending.request.session_key,
            outcome,
            requested_seq: pending.requested_seq,
            settled_seq: at.seq,
            settled_ts_ms: at.ts_ms,
        };
        push_bounded(&mut self.settled, settled, SETTLED_APPROVALS_MAX);
    }

    /// The allow-always grant covering `argv_hash` at `now_ms`, if any. The
    /// caller passes the time of the request being checked, so the answer is
    /// the same on replay.
    pub fn grant_for(&self, argv_hash: &str, now_ms: i64) -> Option<&Grant> {
        self.grants
            .get(argv_hash)
            .filter(|grant| grant.expires_at_ms.is_none_or(|expiry| now_ms <= expiry))
    }

    /// A command allowed by a grant: changes nothing, but a grant that was
    /// not live at that time is an anomaly (the executor and the log
    /// disagree about what allowed it).
    pub(crate) fn grant_applied(
        &mut self,
        at: At,
        event: &ApprovalGrantApplied,
        anomalies: &mut Anomalies,
    ) {
        let reviewer = self
            .grant_for(&event.argv_hash, at.ts_ms)
            .filter(|grant| grant.approval_id == event.grant_approval_id)
            .map(|grant| format!("grant {} ({})", grant.approval_id, grant.reviewer));
        if let Some(reviewer) = reviewer {
            // Answered without asking: settled at once, so the request's id
            // reads back (`exec.approval.get`, `.waitDecision`) as allowed,
            // and by which grant.
            let settled = SettledApproval {
                approval_id: event.request_id.clone(),
                command: event.command.clone(),
                argv_hash: event.argv_hash.clone(),
                session_key: event.session_key.clone(),
                outcome: Settlement::Decided {
                    decision: clawback_events::event::Decision::AllowAlways,
                    reviewer,
                },
                requested_seq: at.seq,
                settled_seq: at.seq,
                settled_ts_ms: at.ts_ms,
            };
            push_bounded(&mut self.settled, settled, SETTLED_APPROVALS_MAX);
        } else {
            anomalies.record(
                at,
                "approval.grant_not_live",
                format!(
                    "request {} was allowed by grant {} that is not live for its argv hash",
                    event.request_id, event.grant_approval_id
                ),
            );
        }
    }

    pub(crate) fn policy_changed(
        &mut self,
        at: At,
        event: clawback_events::event::ExecPolicyChanged,
    ) {
        self.policy = Some(PolicyVersion {
            hash: event.hash,
            policy: event.policy,
            seq: at.seq,
            ts_ms: at.ts_ms,
        });
    }

    /// Pending requests whose deadline is at or before `now_ms`: the executor
    /// appends `approval.expired` for each.
    pub fn due_for_expiry(&self, now_ms: i64) -> impl Iterator<Item = &PendingApproval> {
        self.pending
            .values()
            .filter(move |pending| pending.request.expires_at_ms <= now_ms)
    }
}
