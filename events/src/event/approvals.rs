//! Exec approvals and the policy they are decided under. Part of [`super::Event`]'s vocabulary; the
//! compatibility rule in its module docs applies to every struct here.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRequested {
    pub approval_id: String,
    /// `exec` for shell commands; other kinds (plugins, questions) later.
    pub kind: String,
    /// The command as the agent asked for it.
    pub command: String,
    /// blake3 of the canonical argv, lowercase hex: what an allow-always
    /// grant is bound to.
    pub argv_hash: String,
    pub session_key: Option<String>,
    pub agent_id: Option<String>,
    pub node_id: Option<String>,
    /// When the request expires (unix ms); expiry means deny.
    pub expires_at_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Decision {
    AllowOnce,
    AllowAlways,
    Deny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::AllowOnce => "allow-once",
            Decision::AllowAlways => "allow-always",
            Decision::Deny => "deny",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalResolved {
    pub approval_id: String,
    pub decision: Decision,
    /// Who decided: a device id, connection id or operator name.
    pub reviewer: String,
    /// For allow-always: when the grant stops applying (unix ms).
    pub grant_expires_at_ms: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalExpired {
    pub approval_id: String,
}

/// A command was allowed without asking because a live allow-always grant
/// covers its canonical argv hash: replay shows which grant (the approval
/// that created it, and so who decided) let it run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalGrantApplied {
    /// The id this request would have had as an approval (the RPC answers
    /// it; the exec tool uses its tool call id).
    pub request_id: String,
    /// The approval whose allow-always decision created the grant.
    pub grant_approval_id: String,
    /// The command as asked for.
    pub command: String,
    /// The canonical argv hash, the grant's key.
    pub argv_hash: String,
    pub session_key: Option<String>,
    pub agent_id: Option<String>,
}

/// The exec approval policy (OpenClaw's `exec-approvals` file: security
/// and ask modes per agent, allowlists) was replaced. It holds no secrets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecPolicyChanged {
    /// blake3 of `policy`, lowercase hex: the `baseHash` of the next change.
    pub hash: String,
    /// The whole policy as canonical JSON.
    pub policy: String,
}
