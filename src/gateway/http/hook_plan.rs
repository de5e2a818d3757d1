//! What a hook request asks for, decided before anything starts: the
//! wake turns and agent runs of `POST <hooks.path>/wake`, `/agent` and a
//! mapped `/<name>`, with OpenClaw's session and agent policy
//! (`allowRequestSessionKey`, `allowedSessionKeyPrefixes`,
//! `allowedAgentIds`, `defaultSessionKey`) and every text a hook brings
//! wrapped as untrusted content (`untrusted`).
//!
//! Why apart from `hooks`: that file is the HTTP edge (auth, limits,
//! recording, starting); this one is the decision, and a refusal here
//! (400, with OpenClaw's message) leaves nothing started.
//!
//! A run's id derives from the idempotency key and what the run would do,
//! so a retry names the same run and a changed request another; an
//! isolated run's session derives from its id (fresh, and the same one on
//! a retry), which is what lets a retry after a restart find the run in
//! the log instead of running it again.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::hook_mappings::{self, TemplateContext};
use super::hooks::{Hook, RequestContext};
use crate::agent::RunRequest;
use crate::channels::announce::{self, Destination};
use crate::config::model::HookAction;
use crate::gateway::protocol::methods::DEFAULT_AGENT;

/// A hook run's limit when the request names none (OpenClaw's agent default).
const RUN_TIMEOUT_DEFAULT: Duration = Duration::from_secs(600);
const RUN_TIMEOUT_MAX: Duration = Duration::from_secs(48 * 3600);
/// The largest message a hook may hand the model (the `agent` RPC's bound).
const MESSAGE_BYTES_MAX: usize = 1024 * 1024;

/// A request refused before anything started: its status and message.
#[derive(Debug)]
pub(super) struct Refused {
    pub(super) status: StatusCode,
    pub(super) message: String,
}

impl Refused {
    fn new(status: StatusCode, message: impl Into<String>) -> Refused {
        Refused {
            status,
            message: message.into(),
        }
    }
}

/// The wake turns and agent runs of one request, and whether the answer
/// waits for the (single) agent run.
pub(super) struct Plan {
    pub(super) wakes: Vec<WakeRun>,
    pub(super) agents: Vec<AgentRun>,
    pub(super) wait: bool,
}

/// One agent run a hook asks for, checked and ready to start.
pub(super) struct AgentRun {
    pub(super) request: RunRequest,
    /// The run is already known (a repeated idempotency key): not started
    /// again.
    pub(super) known: bool,
    /// Where its reply is announced, if delivery is on.
    pub(super) delivery: Option<Delivery>,
}

/// A run's reply sent to a chat (OpenClaw's `deliver`, `channel`, `to`,
/// `accountId`; `channel: "last"` by default).
pub(super) struct Delivery {
    pub(super) destination: Destination,
    /// Where `last` is looked up: the run's session, then its agent's
    /// main session.
    pub(super) sessions: Vec<String>,
}

/// One "System:" turn a hook asks for.
pub(super) struct WakeRun {
    pub(super) request: RunRequest,
}

impl Hook {
    /// `POST .../wake`: one "System:" turn now.
    pub(super) fn plan_wake(&self, payload: &Value) -> Result<Plan, Refused> {
        let bad = |message: &str| Refused::new(StatusCode::BAD_REQUEST, message);
        let text = payload
            .get("text")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|text| !text.is_empty())
            .ok_or_else(|| bad("text required"))?;
        let mode = payload.get("mode").and_then(Value::as_str).unwrap_or("now");
        let agent_id = self.request_agent(payload.get("agentId"))?;
        let session_key = match payload.get("sessionKey") {
            None => None,
            Some(Value::String(key)) if !key.trim().is_empty() => Some(key.trim()),
            Some(_) => return Err(bad("sessionKey must be a non-empty string")),
        };
        if mode == "next-heartbeat" {
            return Err(if session_key.is_some() {
                bad("sessionKey requires mode=now")
            } else {
                bad(NO_HEARTBEATS)
            });
        }
        let session_key = match session_key {
            None => format!("agent:{agent_id}:main"),
            Some(key) => self.explicit_key(key, &agent_id, true)?,
        };
        let wake = self.wake_run(text, None, &agent_id, session_key, false)?;
        Ok(Plan {
            wakes: vec![wake],
            agents: Vec::new(),
            wait: false,
        })
    }

    fn wake_run(
        &self,
        text: &str,
        name: Option<&str>,
        agent_id: &str,
        session_key: String,
        unsafe_content: bool,
    ) -> Result<WakeRun, Refused> {
        let content = if unsafe_content {
            text.to_owned()
        } else {
            crate::untrusted::wrap(text, "Webhook", name)
        };
        let message = format!("System: a hook woke you with this event:\n\n{content}");
        check_message_size(&message)?;
        Ok(WakeRun {
            request: RunRequest {
                message_seq: None,
                run_id: format!("hook-wake:{}", uuid::Uuid::new_v4()),
                session_key,
                agent_id: agent_id.to_owned(),
                message,
                trigger: "hook",
                actor: self.actor.clone(),
                model_override: None,
                thinking: None,
                extra_system_prompt: None,
                timeout: RUN_TIMEOUT_DEFAULT,
                tool_events_to: None,
                sampling: Default::default(),
                origin: None,
            },
        })
    }

    /// `POST .../agent`: one run, waited for if `waitForCompletion`.
    pub(super) fn plan_direct_agent(
        &self,
        payload: &Value,
        context: &RequestContext,
    ) -> Result<Plan, Refused> {
        let bad = |message: &str| Refused::new(StatusCode::BAD_REQUEST, message);
        let wait = match payload.get("waitForCompletion") {
            None => false,
            Some(Value::Bool(wait)) => *wait,
            Some(_) => return Err(bad("waitForCompletion must be boolean")),
        };
        let text = |key: &str| {
            payload
                .get(key)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|text| !text.is_empty())
        };
        let message = text("message").ok_or_else(|| bad("message required"))?;
        let name = text("name").unwrap_or("Hook");
        let agent_id = self.request_agent(payload.get("agentId"))?;
        let session_mode = match payload.get("sessionMode") {
            None => "isolated",
            Some(Value::String(mode)) if mode == "isolated" || mode == "persistent" => mode,
            Some(_) => return Err(bad("sessionMode must be isolated or persistent")),
        };
        let destination = destination(payload.get("deliver"), payload)?;
        if payload.get("model").is_some() && text("model").is_none() {
            return Err(bad("model required"));
        }
        let options = RunOptions {
            model: text("model").map(str::to_owned),
            thinking: thinking(text("thinking"))?,
            timeout_seconds: payload
                .get("timeoutSeconds")
                .and_then(Value::as_f64)
                .filter(|seconds| seconds.is_finite() && *seconds >= 1.0)
                .map(|seconds| seconds.floor() as u64),
        };
        let requested_key = match payload.get("sessionKey") {
            None => None,
            Some(Value::String(key)) if !key.trim().is_empty() => Some(key.trim()),
            Some(_) => return Err(bad("sessionKey must be a non-empty string")),
        };
        let persistent = session_mode == "persistent";
        if persistent && requested_key.is_none() {
            return Err(bad("sessionKey is required when sessionMode is persistent"));
        }
        let logical_key = match requested_key {
            Some(key) => Some(self.explicit_key(key, &agent_id, true)?),
            None => None,
        };
        if persistent && self.prefixes().is_empty() {
            return Err(bad(
                "hooks.allowedSessionKeyPrefixes is required when direct hook sessionMode is persistent",
            ));
        }
        let run = self.agent_run(
            AgentTarget {
                agent_id,
                logical_key,
                persistent,
                destination,
            },
            message,
            name,
            options,
            context.idempotency_key(payload),
            crate::untrusted::wrap(message, "Webhook", Some(name)),
        )?;
        Ok(Plan {
            wakes: Vec::new(),
            agents: vec![run],
            wait,
        })
    }

    /// A mapped hook: `None` when no mapping owns the path.
    pub(super) fn plan_mapping(
        &self,
        payload: &Value,
        context: &RequestContext,
    ) -> Result<Option<Plan>, Refused> {
        let Some(mapping) = hook_mappings::find(&self.hooks.mappings, &self.sub_path, payload)
        else {
            return Ok(None);
        };
        let bad = |message: String| Refused::new(StatusCode::BAD_REQUEST, message);
        let (payloads, dropped) = hook_mappings::expand(mapping, payload);
        if dropped > 0 {
            tracing::warn!(
                subsystem = "hooks",
                "hook mapping {} fan-out dropped {dropped} items beyond the {} cap",
                self.sub_path,
                hook_mappings::FOR_EACH_ITEMS_MAX
            );
        }
        let now = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let idempotency_key = context.idempotency_key(payload);
        let unsafe_content = mapping.allow_unsafe_external_content == Some(true);
        let agent_id = self.mapping_agent(mapping.agent_id.as_deref())?;
        let (mut wakes, mut agents) = (Vec::new(), Vec::new());
        for (index, item) in payloads.iter().enumerate() {
            let templates = TemplateContext {
                payload: item,
                headers: &context.headers,
                query: &context.query,
                path: &self.sub_path,
                now: &now,
            };
            let render = |template: Option<&str>| {
                template.map(|template| hook_mappings::render(template, &templates))
            };
            let name = render(mapping.name.as_deref()).filter(|name| !name.trim().is_empty());
            let key_template = mapping
                .session_key
                .as_deref()
                .filter(|key| !key.trim().is_empty());
            let templated_key = key_template.is_some_and(hook_mappings::is_templated);
            let session_key = match render(key_template) {
                Some(key) if key.trim().is_empty() => {
                    return Err(bad("hook mapping sessionKey rendered empty".to_owned()));
                }
                Some(key) => Some(self.explicit_key(key.trim(), &agent_id, templated_key)?),
                None => None,
            };
            match mapping.action.unwrap_or(HookAction::Agent) {
                HookAction::Wake => {
                    if mapping.wake_mode.as_deref() == Some("next-heartbeat") {
                        return Err(bad(NO_HEARTBEATS.to_owned()));
                    }
                    let text = render(mapping.text_template.as_deref()).unwrap_or_default();
                    if text.trim().is_empty() {
                        return Err(bad("hook mapping requires text".to_owned()));
                    }
                    let session_key =
                        session_key.unwrap_or_else(|| format!("agent:{agent_id}:main"));
                    wakes.push(self.wake_run(
                        text.trim(),
                        name.as_deref(),
                        &agent_id,
                        session_key,
                        unsafe_content,
                    )?);
                }
                HookAction::Agent => {
                    let destination = destination(
                        mapping.deliver.map(Value::Bool).as_ref(),
                        &json!({"channel": mapping.channel, "to": mapping.to}),
                    )?;
                    let message = render(mapping.message_template.as_deref()).unwrap_or_default();
                    if message.trim().is_empty() {
                        return Err(bad("hook mapping requires message".to_owned()));
                    }
                    let name = name.as_deref().unwrap_or("Hook");
                    let persistent = mapping.session_mode.as_deref() == Some("persistent");
                    let default_key = self
                        .hooks
                        .default_session_key
                        .as_deref()
                        .map(str::trim)
                        .filter(|key| !key.is_empty());
                    let logical_key = match (session_key, default_key) {
                        (Some(key), _) => Some(key),
                        (None, Some(key)) => {
                            self.check_prefix(key)?;
                            Some(scoped_key(key, &agent_id))
                        }
                        (None, None) => None,
                    };
                    let options = RunOptions {
                        model: render(mapping.model.as_deref()).filter(|m| !m.trim().is_empty()),
                        thinking: thinking(render(mapping.thinking.as_deref()).as_deref())?,
                        timeout_seconds: mapping.timeout_seconds,
                    };
                    // A fan-out's items are told apart by their index, so
                    // one key covers the batch without merging its items.
                    let key = idempotency_key.as_ref().map(|key| format!("{key}#{index}"));
                    let content = if unsafe_content {
                        message.clone()
                    } else {
                        crate::untrusted::wrap(&message, "Webhook", Some(name))
                    };
                    agents.push(self.agent_run(
                        AgentTarget {
                            agent_id: agent_id.clone(),
                            logical_key,
                            persistent,
                            destination,
                        },
                        &message,
                        name,
                        options,
                        key,
                        content,
                    )?);
                }
            }
        }
        Ok(Some(Plan {
            wakes,
            agents,
            wait: false,
        }))
    }

    /// The run for an agent action. Its id derives from the idempotency
    /// key and what the run would do, so a retry names the same run and a
    /// changed request another; an isolated run's session derives from
    /// its id (a fresh session, the same one on a retry).
    fn agent_run(
        &self,
        target: AgentTarget,
        message: &str,
        name: &str,
        options: RunOptions,
        idempotency_key: Option<String>,
        content: String,
    ) -> Result<AgentRun, Refused> {
        check_message_size(&content)?;
        let run_id = match &idempotency_key {
            None => format!("hook:{}", uuid::Uuid::new_v4()),
            Some(key) => {
                let scope = json!([
                    self.sub_path,
                    key,
                    target.agent_id,
                    target.logical_key,
                    target.persistent,
                    message,
                    name,
                    options.model,
                    options.thinking,
                    options.timeout_seconds
                ]);
                let digest = blake3::hash(scope.to_string().as_bytes()).to_hex();
                format!("hook:{}", &digest[..32])
            }
        };
        if target.logical_key.is_none() {
            // The key OpenClaw would generate for this run.
            self.check_prefix(&run_id)?;
        }
        let session_key = match (&target.logical_key, target.persistent) {
            (Some(key), true) => key.clone(),
            _ => format!("agent:{}:{run_id}", target.agent_id),
        };
        let known = idempotency_key.is_some() && self.run_known(&session_key, &run_id);
        let delivery = match target.destination {
            None => None,
            Some(destination) => {
                let sessions = vec![
                    session_key.clone(),
                    format!("agent:{}:main", target.agent_id),
                ];
                // A destination named outright must exist now; an implied
                // `last` is looked up when the reply is there.
                if destination.is_explicit() {
                    announce::resolve(&self.gateway, &destination, &sessions)
                        .map_err(|error| Refused::new(StatusCode::BAD_REQUEST, error))?;
                }
                Some(Delivery {
                    destination,
                    sessions,
                })
            }
        };
        let timeout = options
            .timeout_seconds
            .map_or(RUN_TIMEOUT_DEFAULT, |seconds| {
                Duration::from_secs(seconds).min(RUN_TIMEOUT_MAX)
            });
        Ok(AgentRun {
            request: RunRequest {
                message_seq: None,
                run_id,
                session_key,
                agent_id: target.agent_id,
                message: content,
                trigger: "hook",
                actor: self.actor.clone(),
                model_override: options.model,
                thinking: options.thinking,
                extra_system_prompt: None,
                timeout,
                tool_events_to: None,
                sampling: Default::default(),
                origin: None,
            },
            known,
            delivery,
        })
    }

    /// Whether run `run_id` ran or runs, in this process or (recorded)
    /// before it.
    fn run_known(&self, session_key: &str, run_id: &str) -> bool {
        if self.gateway.agent.lookup(run_id).is_some() {
            return true;
        }
        let state = self.gateway.state.read().expect("state lock");
        state.sessions.knows_run(session_key, run_id)
    }

    /// A request's `agentId`: a configured agent (or the default), allowed
    /// by `hooks.allowedAgentIds`.
    fn request_agent(&self, raw: Option<&Value>) -> Result<String, Refused> {
        let bad = |message: String| Refused::new(StatusCode::BAD_REQUEST, message);
        let agent_id = match raw {
            None | Some(Value::Null) => DEFAULT_AGENT.to_owned(),
            Some(Value::String(id)) if id.trim().is_empty() => DEFAULT_AGENT.to_owned(),
            Some(Value::String(id)) => {
                let id = id.trim().to_ascii_lowercase();
                if !self.agent_configured(&id) {
                    return Err(bad(format!("unknown agentId \"{id}\"")));
                }
                id
            }
            Some(_) => return Err(bad("agentId must be a string".to_owned())),
        };
        self.agent_allowed(agent_id)
    }

    /// A mapping's `agentId`: unknown ids fall back to the default agent
    /// (OpenClaw's legacy rule for mappings).
    fn mapping_agent(&self, raw: Option<&str>) -> Result<String, Refused> {
        let agent_id = raw
            .map(|id| id.trim().to_ascii_lowercase())
            .filter(|id| self.agent_configured(id))
            .unwrap_or_else(|| DEFAULT_AGENT.to_owned());
        self.agent_allowed(agent_id)
    }

    fn agent_configured(&self, id: &str) -> bool {
        id == DEFAULT_AGENT
            || self
                .gateway
                .config()
                .agents
                .as_ref()
                .is_some_and(|agents| agents.entries.contains_key(id))
    }

    fn agent_allowed(&self, agent_id: String) -> Result<String, Refused> {
        let allowed = match &self.hooks.allowed_agent_ids {
            None => true,
            Some(ids) => ids
                .iter()
                .any(|id| id.trim() == "*" || id.trim().eq_ignore_ascii_case(&agent_id)),
        };
        if allowed {
            Ok(agent_id)
        } else {
            Err(Refused::new(
                StatusCode::BAD_REQUEST,
                "agentId is not allowed by hooks.allowedAgentIds",
            ))
        }
    }

    /// `hooks.allowedSessionKeyPrefixes`, lowercased, blanks dropped.
    fn prefixes(&self) -> Vec<String> {
        self.hooks
            .allowed_session_key_prefixes
            .iter()
            .flatten()
            .map(|prefix| prefix.trim().to_ascii_lowercase())
            .filter(|prefix| !prefix.is_empty())
            .collect()
    }

    /// A session key that came from outside (the request, or a templated
    /// mapping key when `from_outside`), checked against the caller-key
    /// switch and the prefix allowlist, scoped to `agent_id`.
    fn explicit_key(
        &self,
        key: &str,
        agent_id: &str,
        from_outside: bool,
    ) -> Result<String, Refused> {
        if from_outside && self.hooks.allow_request_session_key != Some(true) {
            return Err(Refused::new(
                StatusCode::BAD_REQUEST,
                "sessionKey is disabled for externally supplied hook payload values; set hooks.allowRequestSessionKey=true to enable",
            ));
        }
        self.check_prefix(key)?;
        Ok(scoped_key(key, agent_id))
    }

    /// `hooks.allowedSessionKeyPrefixes` applies to every logical key: a
    /// caller's, a mapping's, the default, and a generated `hook:<id>`.
    fn check_prefix(&self, key: &str) -> Result<(), Refused> {
        let prefixes = self.prefixes();
        let lower = key.to_ascii_lowercase();
        if !prefixes.is_empty() && !prefixes.iter().any(|prefix| lower.starts_with(prefix)) {
            return Err(Refused::new(
                StatusCode::BAD_REQUEST,
                format!("sessionKey must start with one of: {}", prefixes.join(", ")),
            ));
        }
        Ok(())
    }
}

const NO_HEARTBEATS: &str =
    "mode \"next-heartbeat\" needs heartbeats, which clawback does not run yet; use mode \"now\"";

/// Where an agent action runs.
struct AgentTarget {
    agent_id: String,
    /// The key from the request, mapping or `hooks.defaultSessionKey`.
    logical_key: Option<String>,
    persistent: bool,
    /// Where the reply is announced (`None`: not delivered).
    destination: Option<Destination>,
}

struct RunOptions {
    model: Option<String>,
    thinking: Option<String>,
    timeout_seconds: Option<u64>,
}

/// `key` in `agent_id`'s namespace: `agent:<other>:rest` is re-scoped, a
/// bare key gets the prefix.
fn scoped_key(key: &str, agent_id: &str) -> String {
    match key
        .strip_prefix("agent:")
        .and_then(|rest| rest.split_once(':'))
    {
        Some((_, rest)) => format!("agent:{agent_id}:{rest}"),
        None => format!("agent:{agent_id}:{key}"),
    }
}

/// Where a run's reply goes: `None` with `deliver: false`, else the
/// destination `channel`/`to`/`accountId` name (`last` when none).
fn destination(deliver: Option<&Value>, fields: &Value) -> Result<Option<Destination>, Refused> {
    let bad = |message: String| Refused::new(StatusCode::BAD_REQUEST, message);
    match deliver {
        None | Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => return Ok(None),
        Some(_) => return Err(bad("deliver must be boolean".to_owned())),
    }
    Destination::read(fields).map(Some).map_err(bad)
}

fn thinking(raw: Option<&str>) -> Result<Option<String>, Refused> {
    match raw.map(str::trim).filter(|level| !level.is_empty()) {
        None => Ok(None),
        Some(level) if crate::agent::provider::THINKING_LEVELS.contains(&level) => {
            Ok(Some(level.to_owned()))
        }
        Some(level) => Err(Refused::new(
            StatusCode::BAD_REQUEST,
            format!(
                "thinking {level:?} is not one of {}",
                crate::agent::provider::THINKING_LEVELS.join(", ")
            ),
        )),
    }
}

fn check_message_size(message: &str) -> Result<(), Refused> {
    if message.len() > MESSAGE_BYTES_MAX {
        return Err(Refused::new(
            StatusCode::BAD_REQUEST,
            format!("message longer than {MESSAGE_BYTES_MAX} bytes"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_scoped_to_the_agent_and_deliveries_are_read() {
        assert_eq!(scoped_key("hook:x", "main"), "agent:main:hook:x");
        assert_eq!(scoped_key("agent:ops:hook:x", "main"), "agent:main:hook:x");
        let to = json!({"to": "42"});
        assert!(destination(None, &to).unwrap().unwrap().is_explicit());
        assert!(destination(Some(&json!(false)), &to).unwrap().is_none());
        assert!(
            !destination(Some(&json!(true)), &json!({}))
                .unwrap()
                .unwrap()
                .is_explicit()
        );
        assert!(destination(Some(&json!("yes")), &to).is_err());
        assert!(destination(None, &json!({"to": 42})).is_err());
        assert!(thinking(Some("nonsense")).is_err());
        assert_eq!(thinking(Some(" ")).ok(), Some(None));
    }
}
