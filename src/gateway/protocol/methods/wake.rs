//! `wake`: an outside scheduler or device tells the agent something now.
//!
//! In OpenClaw the text becomes a system event of the session and a
//! heartbeat turn picks it up, at once (`mode: "now"`) or at the next
//! heartbeat. clawback runs no heartbeats yet, so `now` starts the turn
//! directly with the text as the "System:" line a heartbeat would show, and
//! `next-heartbeat` is refused with that reason instead of queued for a
//! heartbeat that never comes.

use std::sync::Arc;

use serde_json::{Value, json};

use super::super::frames::{ErrorShape, codes};
use super::{Caller, DEFAULT_AGENT, Params};
use crate::agent::RunRequest;
use crate::gateway::Gateway;

/// A woken turn's limit (OpenClaw's heartbeat turns have the agent's).
const WAKE_TURN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// `wake {mode, text, sessionKey?, agentId?}` (open object, as OpenClaw's).
pub fn wake(
    gateway: &Arc<Gateway>,
    caller: &Caller,
    params: Option<&Value>,
) -> Result<Value, ErrorShape> {
    let params = Params::open("wake", params)?;
    let mode = params
        .opt_choice("mode", &["now", "next-heartbeat"])?
        .ok_or_else(|| params.invalid("must have required property 'mode'"))?;
    let text = params.str("text")?;
    if text.trim().is_empty() {
        return Err(params.invalid("at /text: must NOT have fewer than 1 characters"));
    }
    let session_key = params
        .opt_str("sessionKey")?
        .map(str::trim)
        .filter(|key| !key.is_empty());
    let agent_id = params
        .opt_str("agentId")?
        .map(str::trim)
        .filter(|id| !id.is_empty());
    let key_agent = session_key.and_then(clawback_projections::sessions::agent_in_key);
    if let (Some(agent), Some(owner)) = (agent_id, key_agent)
        && !agent.eq_ignore_ascii_case(owner)
    {
        return Err(ErrorShape::invalid(
            "wake agentId contradicts the agent that owns sessionKey; pass a single canonical wake target",
        ));
    }
    if mode == "next-heartbeat" {
        return Err(ErrorShape::new(
            codes::UNAVAILABLE,
            "wake mode \"next-heartbeat\" needs heartbeats, which clawback does not run yet; use mode \"now\"",
        ));
    }
    let agent_id = key_agent
        .or(agent_id)
        .unwrap_or(DEFAULT_AGENT)
        .to_ascii_lowercase();
    let session_key = session_key.map_or_else(|| format!("agent:{agent_id}:main"), str::to_owned);
    start_system_turn(gateway, caller, &session_key, &agent_id, text.trim());
    Ok(json!({"ok": true}))
}

/// Starts a turn whose message is `text` as a system line.
pub fn start_system_turn(
    gateway: &Arc<Gateway>,
    caller: &Caller,
    session_key: &str,
    agent_id: &str,
    text: &str,
) {
    let request = RunRequest {
        message_seq: None,
        run_id: format!("wake:{}", uuid::Uuid::new_v4()),
        session_key: session_key.to_owned(),
        agent_id: agent_id.to_owned(),
        message: format!("System: {text}"),
        trigger: "wake",
        actor: caller.actor(),
        model_override: None,
        thinking: None,
        extra_system_prompt: None,
        timeout: WAKE_TURN_TIMEOUT,
        tool_events_to: caller.tool_events_to(),
        sampling: Default::default(),
        origin: None,
    };
    // The run records itself; its outcome reaches clients as `agent` and
    // `chat` events like any run's.
    drop(gateway.agent.clone().start(gateway.clone(), request));
}
