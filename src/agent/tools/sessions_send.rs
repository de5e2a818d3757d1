//! `sessions_send`: a turn in another session of this agent, optionally
//! waiting for its reply, as OpenClaw's tool.
//!
//! Why through the `agent` method: the turn is then started, recorded and
//! answered exactly as a client's `agent` request would be (one run per
//! idempotency key, the session's lane, its events), and the log shows
//! which run's tool asked. Only this agent's sessions are reachable, and
//! never the session the call comes from: its lane is held by the run that
//! is calling, so the turn could only start after the call gave up.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Context, Tool, ToolFuture};

/// How long a call waits for the reply when it names no `timeoutSeconds`.
pub const WAIT_DEFAULT_SECONDS: u64 = 30;
pub const WAIT_MAX_SECONDS: u64 = 600;

pub struct SessionsSend;

impl Tool for SessionsSend {
    fn name(&self) -> &'static str {
        "sessions_send"
    }

    fn description(&self) -> &'static str {
        "Run a turn in another of this agent's sessions with `message`, and wait up to \
         `timeoutSeconds` (default 30; 0 returns at once) for its reply. `sessionKey` is a full \
         key (agent:<id>:<name>) or a name such as `main`."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["sessionKey", "message"],
            "properties": {
                "sessionKey": {"type": "string", "minLength": 1, "maxLength": 512,
                               "description": "The session to run the turn in."},
                "message": {"type": "string", "minLength": 1, "maxLength": 100000,
                            "description": "The message for that session's agent."},
                "timeoutSeconds": {"type": "integer", "minimum": 0, "maximum": WAIT_MAX_SECONDS,
                                   "description": "How long to wait for the reply (0: do not wait)."},
            },
        })
    }

    fn timeout(&self, arguments: &Value) -> Duration {
        let wait = arguments["timeoutSeconds"]
            .as_u64()
            .unwrap_or(WAIT_DEFAULT_SECONDS)
            .min(WAIT_MAX_SECONDS);
        // The wait, and a little for recording the request.
        Duration::from_secs(wait + 5)
    }

    fn run(&self, context: Arc<Context>, arguments: Value) -> ToolFuture {
        Box::pin(async move {
            let requested = arguments["sessionKey"].as_str().unwrap_or_default().trim();
            let target = if requested.starts_with("agent:") {
                requested.to_owned()
            } else {
                format!("agent:{}:{requested}", context.agent_id)
            };
            let agent = clawback_projections::sessions::agent_in_key(&target);
            if agent != Some(context.agent_id.as_str()) {
                return Err(format!(
                    "{target} is not a session of agent {}; sessions_send reaches this agent's \
                     sessions only",
                    context.agent_id
                ));
            }
            if target == context.session_key {
                return Err(
                    "this is the session the call comes from; answer here instead".to_owned(),
                );
            }
            let wait = arguments["timeoutSeconds"]
                .as_u64()
                .unwrap_or(WAIT_DEFAULT_SECONDS)
                .min(WAIT_MAX_SECONDS);
            let run_id = uuid::Uuid::new_v4().to_string();
            let params = json!({
                "message": arguments["message"].as_str().unwrap_or_default(),
                "sessionKey": target,
                "idempotencyKey": run_id,
            });
            let answer = context
                .host
                .call(
                    "agent",
                    params,
                    (wait > 0).then(|| Duration::from_secs(wait)),
                )
                .await?;
            match answer["status"].as_str() {
                Some("ok") => Ok(json!({
                    "status": "ok", "runId": run_id, "sessionKey": target,
                    "reply": answer["result"]["payloads"][0]["text"],
                })
                .to_string()),
                Some("error") => Err(format!(
                    "the turn in {target} failed: {}",
                    answer["summary"].as_str().unwrap_or("unknown error")
                )),
                _ => Ok(json!({
                    "status": "accepted", "runId": run_id, "sessionKey": target,
                    "note": if wait == 0 { "not waited for" } else { "still running; the reply will be in that session" },
                })
                .to_string()),
            }
        })
    }
}
