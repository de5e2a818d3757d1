//! `cron`: the agent manages scheduled jobs (and wakes a session) through
//! the gateway's `cron.*` and `wake` methods, as OpenClaw's `cron` tool.
//!
//! Why through the methods: a job a model adds is checked by the same code
//! as a client's (refusing what cannot run here, with the reason), and is
//! recorded the same way, so the audit trail says which run created which
//! job. A job added without an `agentId` belongs to the calling agent; the
//! model manages this agent's jobs and reads the list filtered to them.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{Context, Tool, ToolFuture};

const ACTIONS: &[&str] = &[
    "status", "list", "get", "add", "update", "remove", "run", "runs", "wake",
];

pub struct Cron;

impl Tool for Cron {
    fn name(&self) -> &'static str {
        "cron"
    }

    fn description(&self) -> &'static str {
        "Manage scheduled jobs: action status|list|get|add|update|remove|run|runs, or wake (a \
         system event turn now). add takes `job` (name, schedule {kind: at|every|cron, ...}, \
         payload {kind: agentTurn, message} or {kind: systemEvent, text}, sessionTarget); \
         update takes `id` and `job` as a partial patch."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["action"],
            "properties": {
                "action": {"type": "string", "enum": ACTIONS},
                "job": {"type": "object",
                        "description": "add: the whole job; update: the fields to change."},
                "id": {"type": "string", "minLength": 1, "maxLength": 256},
                "jobId": {"type": "string", "minLength": 1, "maxLength": 256},
                "includeDisabled": {"type": "boolean"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 200},
                "offset": {"type": "integer", "minimum": 0},
                "runMode": {"type": "string", "enum": ["due", "force"],
                            "description": "run: due (default) or force."},
                "text": {"type": "string", "minLength": 1, "maxLength": 100000,
                         "description": "wake: the system event text."},
                "mode": {"type": "string", "enum": ["now", "next-heartbeat"],
                         "description": "wake: when (default next-heartbeat)."},
            },
        })
    }

    fn run(&self, context: Arc<Context>, arguments: Value) -> ToolFuture {
        Box::pin(async move {
            let (method, params) = request(&context, &arguments)?;
            let answer = context.host.call(method, params, None).await?;
            Ok(answer.to_string())
        })
    }
}

/// The method and parameters an action stands for.
fn request(context: &Context, arguments: &Value) -> Result<(&'static str, Value), String> {
    let action = arguments["action"].as_str().unwrap_or_default();
    let id = || {
        arguments["id"]
            .as_str()
            .or(arguments["jobId"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| format!("action {action} needs `id`"))
    };
    let job = || match &arguments["job"] {
        Value::Object(job) => Ok(job.clone()),
        _ => Err(format!("action {action} needs `job`")),
    };
    let mut picked = Map::new();
    for key in ["includeDisabled", "limit", "offset"] {
        if let Some(value) = arguments.get(key) {
            picked.insert(key.to_owned(), value.clone());
        }
    }
    Ok(match action {
        "status" => ("cron.status", json!({})),
        "list" => {
            picked.insert("agentId".to_owned(), json!(context.agent_id));
            ("cron.list", Value::Object(picked))
        }
        "get" => ("cron.get", json!({"id": id()?})),
        "add" => {
            let mut job = job()?;
            job.entry("agentId")
                .or_insert_with(|| json!(context.agent_id));
            ("cron.add", Value::Object(job))
        }
        "update" => ("cron.update", json!({"id": id()?, "patch": job()?})),
        "remove" => ("cron.remove", json!({"id": id()?})),
        "run" => (
            "cron.run",
            json!({"id": id()?, "mode": arguments["runMode"].as_str().unwrap_or("due")}),
        ),
        "runs" => {
            picked.remove("includeDisabled");
            picked.insert("id".to_owned(), json!(id()?));
            ("cron.runs", Value::Object(picked))
        }
        "wake" => (
            "wake",
            json!({
                "mode": arguments["mode"].as_str().unwrap_or("next-heartbeat"),
                "text": arguments["text"].as_str().ok_or("action wake needs `text`")?,
                "sessionKey": context.session_key,
            }),
        ),
        other => return Err(format!("unknown action {other}")),
    })
}
