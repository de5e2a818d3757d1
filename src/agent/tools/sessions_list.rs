//! `sessions_list`: the agent's sessions, from the sessions projection.
//!
//! Why from the projection and not the log: the projection is the state
//! the gateway serves (`sessions.list` reads it too), so the model sees
//! what a client would. Only this agent's sessions are listed: a tool call
//! never reaches into another agent's conversations.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Context, Tool, ToolFuture};

pub const LIMIT_DEFAULT: u64 = 20;
pub const LIMIT_MAX: u64 = 100;

pub struct SessionsList;

impl Tool for SessionsList {
    fn name(&self) -> &'static str {
        "sessions_list"
    }

    fn description(&self) -> &'static str {
        "List this agent's sessions, most recently active first: key, label, session id, \
         message count and last update time (unix ms)."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "limit": {"type": "integer", "minimum": 1, "maximum": LIMIT_MAX,
                          "description": "How many sessions to list (default 20)."},
            },
        })
    }

    fn run(&self, context: Arc<Context>, arguments: Value) -> ToolFuture {
        Box::pin(async move {
            let limit = arguments["limit"].as_u64().unwrap_or(LIMIT_DEFAULT) as usize;
            Ok(list(&context, limit).to_string())
        })
    }
}

fn list(context: &Context, limit: usize) -> Value {
    let state = context.state.read().expect("state lock");
    let mut sessions: Vec<_> = state
        .sessions
        .by_key
        .values()
        .filter(|session| session.agent_id == context.agent_id)
        .collect();
    // Newest first; the key breaks ties so the order never depends on
    // anything but the state.
    sessions.sort_by(|a, b| {
        b.updated_ts_ms
            .cmp(&a.updated_ts_ms)
            .then_with(|| a.key.cmp(&b.key))
    });
    let total = sessions.len();
    let rows: Vec<Value> = sessions
        .into_iter()
        .take(limit)
        .map(|session| {
            json!({"key": session.key, "label": session.label, "sessionId": session.session_id,
                   "messageCount": session.transcript.len(), "updatedAt": session.updated_ts_ms,
                   "current": session.key == context.session_key})
        })
        .collect();
    json!({"count": rows.len(), "total": total, "sessions": rows})
}
