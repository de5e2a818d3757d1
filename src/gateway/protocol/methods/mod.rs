//! The methods clawback answers, and the honest refusal for the rest.
//!
//! Why every OpenClaw method is routed here even when clawback cannot do it
//! yet: a client must be able to tell "unknown method" (a typo, or a method
//! OpenClaw does not have) from "known, not available in this gateway yet".
//! The second gets `UNAVAILABLE` with the reason, never a fake success.
//!
//! A handler decides; it does not write. It returns a [`Reply`]: the answer
//! and the events the request causes (clients hear of those through
//! `gateway::fanout`, which follows the log). The connection appends `rpc.received`, those events and
//! `rpc.answered` as one batch, and only then answers. A handler that checks
//! state before deciding (a `baseHash`, a session's existence) holds the
//! gateway's write lock in its reply, so no other such decision interleaves
//! between its check and its events becoming durable.
//!
//! One module per family: `system` (health, status, presence), `config`,
//! `models`, `sessions`, `inventory` (devices), `nodes` (node catalog and
//! surface pairing), `node_invoke` (commands run on nodes), `cron`; `params`
//! checks request params the way OpenClaw's validator words its errors;
//! clawback's own methods: `timeline` (`clawback.timeline`),
//! `audit_status` (`clawback.audit.status`), `fork`
//! (`clawback.sessions.fork`) and `session_diff` (`clawback.sessions.diff`).

mod agent;
pub mod agents;
pub mod approvals;
mod audit_status;
mod channel_pairing;
pub mod channels;
mod config;
mod cron;
mod cron_view;
mod devices;
mod exec_policy;
mod fork;
mod inventory;
mod logs;
mod message_action;
mod models;
mod node_exec_policy;
pub mod node_invoke;
pub mod nodes;
mod params;
mod session_create;
mod session_diff;
mod session_purge;
mod session_row;
mod sessions;
mod system;
mod timeline;
mod usage;
mod voice;
mod wake;
pub mod wizard;

use clawback_events::event::Event;
use serde_json::{Value, json};

use super::frames::{ErrorShape, codes};
use super::scopes;
use crate::gateway::Gateway;

pub use agents::DEFAULT_AGENT;
pub use config::observe_file as observe_config_file;
pub use cron_view::job_json as cron_job;
pub use params::Params;
pub use session_row::row as session_row;
pub use system::{health, presence};

/// Methods answered for real, advertised in `hello-ok.features.methods`.
pub const IMPLEMENTED: &[&str] = &[
    "health",
    "status",
    "system-presence",
    "node.list",
    "node.describe",
    "node.rename",
    "node.pair.list",
    "node.pair.approve",
    "node.pair.reject",
    "node.pair.remove",
    "node.invoke",
    "node.invoke.result",
    "node.event",
    "device.pair.list",
    "device.pair.approve",
    "device.pair.reject",
    "device.pair.remove",
    "device.token.rotate",
    "device.token.revoke",
    "cron.list",
    "cron.get",
    "cron.status",
    "cron.add",
    "cron.update",
    "cron.remove",
    "cron.run",
    "cron.runs",
    "config.get",
    "config.set",
    "config.patch",
    "config.apply",
    "config.schema",
    "config.schema.lookup",
    "models.list",
    "sessions.list",
    "sessions.subscribe",
    "sessions.describe",
    "sessions.create",
    "commands.list",
    "sessions.preview",
    "sessions.patch",
    "sessions.reset",
    "sessions.delete",
    "sessions.compact",
    "logs.tail",
    "agents.list",
    "skills.status",
    "agents.files.list",
    "agents.files.get",
    "agents.files.set",
    "agent.identity.get",
    "system-event",
    "last-heartbeat",
    "agent",
    "agent.wait",
    "chat.send",
    "chat.history",
    "chat.abort",
    "usage.cost",
    "usage.status",
    "wake",
    "wizard.start",
    "wizard.next",
    "wizard.cancel",
    "wizard.status",
    "exec.approvals.node.get",
    "exec.approvals.node.set",
    "exec.approval.request",
    "exec.approval.resolve",
    "exec.approval.waitDecision",
    "exec.approval.get",
    "exec.approval.list",
    "exec.approvals.get",
    "exec.approvals.set",
    "voicewake.get",
    "voicewake.set",
    "channels.status",
    "channels.start",
    "channels.stop",
    "channels.logout",
    "channels.pairing.list",
    "channels.pairing.approve",
    "channels.pairing.dismiss",
    "send",
    "message.action",
    "clawback.timeline",
    "clawback.audit.status",
    "clawback.sessions.fork",
    "clawback.sessions.diff",
];

/// Events this gateway sends, advertised in `hello-ok.features.events`.
pub const EVENTS: &[&str] = &[
    "connect.challenge",
    "tick",
    "health",
    "presence",
    "shutdown",
    "config.changed",
    "sessions.changed",
    "device.pair.requested",
    "device.pair.resolved",
    "device.pair.changed",
    "node.pair.requested",
    "node.pair.resolved",
    "node.invoke.request",
    "agent",
    "chat",
    "exec.approval.requested",
    "exec.approval.resolved",
    "voicewake.changed",
    "cron",
];

/// Who is calling: recorded as the reviewer of decisions.
#[derive(Clone)]
pub struct Caller {
    pub conn_id: String,
    pub device_id: Option<String>,
    /// The scopes the connection holds (some decisions depend on them
    /// beyond the method's own scope, e.g. `node.pair.approve`).
    pub scopes: Vec<String>,
    /// Whether the connection declared `caps: ["tool-events"]`.
    pub tool_events: bool,
}

impl Caller {
    /// Who the log records as having asked.
    pub fn actor(&self) -> clawback_events::Actor {
        clawback_events::Actor::Connection {
            conn_id: self.conn_id.clone(),
            device_id: self.device_id.clone(),
        }
    }

    /// The connection a run started for this caller streams its tool
    /// events to, if it declared `caps: ["tool-events"]`.
    pub fn tool_events_to(&self) -> Option<String> {
        self.tool_events.then(|| self.conn_id.clone())
    }

    /// `conn:<id>` or `device:<id>` (a device outlives its connections).
    pub fn reviewer(&self) -> String {
        match &self.device_id {
            Some(device) => format!("device:{device}"),
            None => format!("conn:{}", self.conn_id),
        }
    }
}

/// What a handler decided.
pub struct Reply {
    pub result: Result<Value, ErrorShape>,
    /// Events the request causes, recorded between its `rpc.received` and
    /// `rpc.answered`, on the given stream.
    pub events: Vec<(String, Event)>,
    /// Held until the events are durable (see the module docs).
    pub write_lock: Option<tokio::sync::OwnedMutexGuard<()>>,
    /// When set, the answer is computed by this once the events are durable
    /// and applied, so it shows the state they produced.
    pub after: Option<AnswerAfter>,
    /// A second answer with the same request id, sent when this resolves
    /// (`agent`'s final result after its `accepted`).
    pub follow_up: Option<FollowUp>,
    /// The session whose content the request's params carry (a message to
    /// it): its `rpc.received` is sealed under that session's key, so a
    /// purge leaves no copy of the message in clear.
    pub content_of: Option<String>,
}

pub type FollowUp = std::pin::Pin<Box<dyn std::future::Future<Output = Value> + Send>>;

/// Computes an answer from the state once a reply's events are applied.
pub type AnswerAfter = Box<dyn FnOnce(&Gateway) -> Value + Send>;

impl Reply {
    pub fn answer(result: Result<Value, ErrorShape>) -> Reply {
        Reply {
            result,
            events: Vec::new(),
            write_lock: None,
            after: None,
            follow_up: None,
            content_of: None,
        }
    }
}

impl From<Result<Value, ErrorShape>> for Reply {
    fn from(result: Result<Value, ErrorShape>) -> Reply {
        Reply::answer(result)
    }
}

/// Answers one authorized request.
pub async fn call(
    gateway: &std::sync::Arc<Gateway>,
    caller: &Caller,
    method: &str,
    params: Option<&Value>,
) -> Reply {
    let simple = |result: Result<Value, ErrorShape>| Reply::answer(result);
    match method {
        "health" => simple(no_params(method, params).map(|()| system::health(gateway))),
        "status" => simple(no_params(method, params).map(|()| system::status(gateway))),
        "system-presence" => {
            simple(no_params(method, params).map(|()| Value::Array(system::presence(gateway))))
        }
        "node.list" => nodes::list(gateway, caller, params),
        "node.describe" => nodes::describe(gateway, caller, params),
        "node.pair.list" => nodes::pair_list(gateway, caller, params),
        "node.pair.approve" => nodes::decide(gateway, caller, params, true).await,
        "node.pair.reject" => nodes::decide(gateway, caller, params, false).await,
        "node.pair.remove" => nodes::remove(gateway, caller, params).await,
        "node.rename" => nodes::rename(gateway, caller, params).await,
        "node.invoke" => node_invoke::invoke(gateway, caller, params).await,
        "node.invoke.result" => node_invoke::result(gateway, caller, params),
        "node.event" => nodes::event(params),
        "device.pair.list" => simple(no_params(method, params).map(|()| {
            json!({"pending": inventory::pending_devices(gateway),
                   "paired": inventory::paired_devices(gateway)})
        })),
        "device.pair.approve" => devices::approve(gateway, caller, params).await,
        "device.pair.reject" => devices::reject(gateway, caller, params).await,
        "device.pair.remove" => devices::remove(gateway, caller, params).await,
        "device.token.rotate" => devices::rotate(gateway, params).await,
        "device.token.revoke" => devices::revoke(gateway, caller, params).await,
        "cron.list" => simple(cron::list(gateway, params)),
        "cron.get" => simple(cron::get(gateway, params)),
        "cron.status" => simple(cron::status(gateway, params)),
        "cron.add" => cron::add(gateway, params).await,
        "cron.update" => cron::update(gateway, params).await,
        "cron.remove" => cron::remove(gateway, params).await,
        "cron.run" => cron::run(gateway, params).await,
        "cron.runs" => simple(cron::runs(gateway, params)),
        "config.get" => config::get(gateway, params).await,
        "config.set" | "config.apply" => config::set(gateway, method, params).await,
        "config.patch" => config::patch(gateway, params).await,
        "config.schema" => simple(config::schema(params)),
        "config.schema.lookup" => simple(config::schema_lookup(params)),
        "models.list" => simple(models::list(gateway, params)),
        "logs.tail" => simple(logs::tail(gateway, params)),
        "agent" => agent::agent(gateway, caller, params),
        "agent.wait" => agent::wait(gateway, params).await,
        "chat.send" => agent::chat_send(gateway, caller, params),
        "chat.history" => simple(agent::history(gateway, params)),
        "chat.abort" => simple(agent::abort(gateway, caller, params)),
        "usage.cost" => simple(usage::cost(gateway, params)),
        "exec.approval.request" => approvals::request(gateway, params).await,
        "exec.approval.resolve" => approvals::resolve(gateway, caller, params).await,
        "exec.approval.waitDecision" => approvals::wait_decision(gateway, params).await,
        "exec.approval.get" => simple(approvals::get(gateway, params)),
        "exec.approval.list" => simple(approvals::list(gateway, params)),
        "voicewake.get" => simple(voice::get(gateway, params)),
        "voicewake.set" => voice::set(params),
        "talk.mode" => simple(voice::talk_mode(params)),
        "exec.approvals.get" => simple(exec_policy::get(gateway, params)),
        "exec.approvals.set" => exec_policy::set(gateway, params).await,
        "agents.list" => simple(agents::list(gateway, params)),
        "skills.status" => simple(agents::skills_status(gateway, params)),
        "agents.files.list" => simple(agents::files_list(gateway, params)),
        "agents.files.get" => simple(agents::files_get(gateway, params)),
        "agents.files.set" => simple(agents::files_set(gateway, params)),
        "agent.identity.get" => simple(agents::identity(gateway, params)),
        "system-event" => system::event(gateway, caller, params),
        "wake" => simple(wake::wake(gateway, caller, params)),
        "wizard.start" => simple(wizard::start(gateway, params)),
        "wizard.next" => wizard::next(gateway, params).await,
        "wizard.cancel" => simple(wizard::cancel(gateway, params)),
        "wizard.status" => simple(wizard::status(gateway, params)),
        "usage.status" => simple(usage::status(params)),
        "exec.approvals.node.get" => node_exec_policy::get(gateway, caller, params).await,
        "exec.approvals.node.set" => node_exec_policy::set(gateway, caller, params).await,
        // clawback runs no heartbeat turns yet, so there is no last one.
        "last-heartbeat" => simple(no_params(method, params).map(|()| Value::Null)),
        "sessions.list" => simple(sessions::list(gateway, params)),
        "sessions.subscribe" => simple(sessions::subscribe(gateway, params)),
        "sessions.describe" => simple(sessions::describe(gateway, params)),
        "sessions.create" => session_create::create(gateway, caller, params).await,
        // No slash commands are interpreted by clawback's chat yet, so the
        // catalog a client offers for completion is empty.
        "commands.list" => simple(
            Params::closed(
                method,
                params,
                &["sessionKey", "agentId", "provider", "scope", "includeArgs"],
            )
            .map(|_| json!({"commands": []})),
        ),
        "channels.status" => simple(channels::status(gateway, params)),
        "channels.start" => channels::start(gateway, params).await,
        "channels.stop" => simple(channels::stop(gateway, params)),
        "channels.logout" => channels::logout(gateway, caller, params).await,
        "channels.pairing.list" => simple(channel_pairing::list(gateway, params)),
        "channels.pairing.approve" => channel_pairing::approve(gateway, caller, params).await,
        "channels.pairing.dismiss" => channel_pairing::dismiss(gateway, caller, params).await,
        "send" => channels::send(gateway, params).await,
        "message.action" => message_action::action(gateway, params).await,
        "sessions.preview" => simple(sessions::preview(gateway, params)),
        "sessions.patch" => sessions::patch(gateway, params).await,
        "sessions.reset" => sessions::reset(gateway, params).await,
        "sessions.delete" => sessions::delete(gateway, params).await,
        "sessions.compact" => sessions::compact(gateway, caller, params).await,
        "clawback.timeline" => simple(timeline::timeline(gateway, params).await),
        "clawback.audit.status" => simple(audit_status::status(gateway, params).await),
        "clawback.sessions.fork" => fork::fork(gateway, caller, params).await,
        "clawback.sessions.diff" => simple(session_diff::session_diff(gateway, params).await),
        "connect" => simple(Err(ErrorShape::invalid(
            "connect is only valid as the first request",
        ))),
        known if scopes::is_known(known) => simple(Err(ErrorShape {
            code: codes::UNAVAILABLE,
            message: format!(
                "{known} is not available in clawback yet: {}",
                missing(known)
            ),
            details: Some(json!({"code": "NOT_IMPLEMENTED", "method": known})),
            retryable: Some(false),
            retry_after_ms: None,
        })),
        unknown => simple(Err(ErrorShape::invalid(format!(
            "unknown method: {unknown}"
        )))),
    }
}

/// OpenClaw's `missing scope` refusal (as `connection` words it for the
/// method table's scopes), for scopes a handler decides.
pub fn missing_scope(scope: &str, required: &[&str]) -> ErrorShape {
    ErrorShape::new(codes::FORBIDDEN, format!("missing scope: {scope}")).with_details(
        json!({"code": "MISSING_SCOPE", "missingScope": scope, "requiredScopes": required}),
    )
}

/// What a known method clawback does not answer yet is waiting for, so
/// the refusal says why (and whether a later version will have it).
fn missing(method: &str) -> &'static str {
    let family = method.split('.').next().unwrap_or(method);
    match family {
        "channels" => "clawback has no channel logout flow yet",
        "send" | "poll" => "polls are not available on clawback's channels yet",
        "tts" | "talk" => "it needs a text-to-speech provider, which is not built yet",
        "skills" => {
            "installing and managing skills (ClawHub, the library) is not built yet; workspace skills are read"
        }
        "node" => {
            "this part of the node protocol (pending queues, plugin surfaces, progress) is not built yet"
        }
        "exec" => "exec approval grants come with the exec tool, which is not built yet",
        "cron" => "job scratch state is not kept yet",
        "sessions" | "chat" | "agent" | "agents" => {
            "this part of the session and agent surface is not built yet"
        }
        _ => "this OpenClaw feature has no counterpart in clawback yet",
    }
}

/// Parameterless methods accept a missing `params` or `{}` (the CLI sends
/// neither or the empty object), and nothing else: params are closed.
fn no_params(method: &str, params: Option<&Value>) -> Result<(), ErrorShape> {
    match params {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(object)) => match object.keys().next() {
            None => Ok(()),
            Some(key) => Err(ErrorShape::invalid(format!(
                "invalid {method} params: must NOT have additional properties (unexpected property '{key}')"
            ))),
        },
        Some(_) => Err(ErrorShape::invalid(format!(
            "invalid {method} params: must be object"
        ))),
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameterless_methods_accept_nothing_or_empty_and_refuse_keys() {
        assert!(no_params("health", None).is_ok());
        assert!(no_params("health", Some(&json!({}))).is_ok());
        let error = no_params("health", Some(&json!({"x": 1}))).unwrap_err();
        assert!(
            error.message.starts_with("invalid health params:"),
            "{error:?}"
        );
        assert!(no_params("health", Some(&json!([]))).is_err());
    }
}
