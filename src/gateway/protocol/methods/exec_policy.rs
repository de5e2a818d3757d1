//! `exec.approvals.get` and `exec.approvals.set`: the exec approval policy
//! (OpenClaw's `exec-approvals` file): per agent, which commands run
//! (`security`: deny, allowlist, ask, full), when to ask (`ask`: off,
//! on-miss, always), and the allowlist.
//!
//! Why in the log and not in a file: the policy decides what an agent may
//! run; who changed it and when belongs in the audit trail, and replay
//! must see the policy a decision was made under. Changes need the hash
//! the client read (`baseHash`), as config changes do.

use std::collections::BTreeMap;

use clawback_events::event::{Event, ExecPolicyChanged};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::super::frames::ErrorShape;
use super::{Params, Reply};
use crate::exec::policy::{Ask, Security};
use crate::gateway::Gateway;

/// Where clawback keeps the policy, as the `path` clients display.
const POLICY_PATH: &str = "clawback-log:exec-approvals";

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PolicyFile {
    version: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    defaults: Option<PolicyFields>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    agents: Option<BTreeMap<String, AgentPolicy>>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PolicyFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    security: Option<Security>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ask: Option<Ask>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ask_fallback: Option<Security>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auto_allow_skills: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AgentPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    security: Option<Security>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ask: Option<Ask>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ask_fallback: Option<Security>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auto_allow_skills: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    allowlist: Option<Vec<AllowEntry>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mcp_tools: Option<Vec<Value>>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AllowEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    pattern: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    command_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    arg_pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_used_at: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_used_command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_resolved_path: Option<String>,
}

pub fn get(gateway: &Gateway, params: Option<&Value>) -> Result<Value, ErrorShape> {
    Params::closed("exec.approvals.get", params, &[])?;
    Ok(snapshot(gateway))
}

pub async fn set(gateway: &std::sync::Arc<Gateway>, params: Option<&Value>) -> Reply {
    let parsed = (|| {
        let params = Params::closed("exec.approvals.set", params, &["file", "baseHash"])?;
        let file = params
            .get("file")
            .ok_or_else(|| ErrorShape::invalid("exec approvals file is required"))?;
        if file.get("socket").is_some() {
            return Err(ErrorShape::invalid(
                "exec approvals socket is not supported by clawback; remove \"socket\"",
            ));
        }
        let policy: PolicyFile = serde_path_to_error::deserialize(file).map_err(|error| {
            ErrorShape::invalid(format!(
                "invalid exec approvals file: at {}: {}",
                error.path(),
                error.inner()
            ))
        })?;
        if policy.version != 1 {
            return Err(ErrorShape::invalid(
                "invalid exec approvals file: at version: must be 1",
            ));
        }
        let canonical = serde_json::to_string(&policy).unwrap_or_default();
        Ok((canonical, params.opt_str("baseHash")?.map(str::to_owned)))
    })();
    let (canonical, base_hash) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return Reply::answer(Err(error)),
    };
    let lock = gateway.writes.clone().lock_owned().await;
    let current = gateway
        .state
        .read()
        .expect("state lock")
        .approvals
        .policy
        .as_ref()
        .map(|policy| policy.hash.clone());
    if let Some(current) = current {
        match base_hash {
            None => {
                return Reply::answer(Err(ErrorShape::invalid(
                    "exec approvals base hash required; re-run exec.approvals.get and retry",
                )));
            }
            Some(base) if base != current => {
                return Reply::answer(Err(ErrorShape::invalid(
                    "exec approvals changed since last load; re-run exec.approvals.get and retry",
                )));
            }
            Some(_) => {}
        }
    }
    let hash = blake3::hash(canonical.as_bytes()).to_hex().to_string();
    let mut reply = Reply::answer(Ok(Value::Null));
    reply.events.push((
        "gateway".to_owned(),
        Event::ExecPolicyChanged(ExecPolicyChanged {
            hash,
            policy: canonical,
        }),
    ));
    reply.write_lock = Some(lock);
    reply.after = Some(Box::new(snapshot));
    reply
}

/// `{path, exists, hash, file}` for the policy in force (an empty version 1
/// file when none was ever set).
fn snapshot(gateway: &Gateway) -> Value {
    let state = gateway.state.read().expect("state lock");
    match &state.approvals.policy {
        Some(policy) => json!({
            "path": POLICY_PATH,
            "exists": true,
            "hash": policy.hash,
            "file": serde_json::from_str::<Value>(&policy.policy).unwrap_or(Value::Null),
            "updatedAtMs": policy.ts_ms,
        }),
        None => json!({"path": POLICY_PATH, "exists": false, "hash": Value::Null,
                       "file": {"version": 1}}),
    }
}
