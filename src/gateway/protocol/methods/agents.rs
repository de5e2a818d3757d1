//! `agents.list` and `agent.identity.get`, from the config's `agents`.
//!
//! With no agents configured there is one, `main`, as in OpenClaw.

use serde_json::{Value, json};

use super::super::frames::ErrorShape;
use super::Params;
use crate::config::model::{ConfigFile, ModelChoice};
use crate::gateway::Gateway;

pub const DEFAULT_AGENT: &str = "main";

pub fn list(gateway: &Gateway, params: Option<&Value>) -> Result<Value, ErrorShape> {
    Params::closed("agents.list", params, &[])?;
    let config = gateway.config();
    let agents: Vec<Value> = agent_ids(&config)
        .into_iter()
        .map(|id| summary(&config, &id))
        .collect();
    Ok(json!({
        "defaultId": default_agent(&config),
        "mainKey": "main",
        "scope": "per-sender",
        "agents": agents,
    }))
}

pub fn identity(gateway: &Gateway, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let params = Params::closed("agent.identity.get", params, &["agentId", "sessionKey"])?;
    let config = gateway.config();
    let from_key = params
        .opt_str("sessionKey")?
        .and_then(clawback_projections::sessions::agent_in_key)
        .map(str::to_owned);
    let agent_id = params
        .opt_str("agentId")?
        .map(str::to_owned)
        .or(from_key)
        .unwrap_or_else(|| default_agent(&config));
    if !agent_ids(&config).contains(&agent_id) {
        return Err(ErrorShape::invalid(format!("unknown agent: {agent_id}")));
    }
    let configured = entry_name(&config, &agent_id);
    Ok(json!({
        "agentId": agent_id,
        "name": configured.clone().unwrap_or_else(|| agent_id.clone()),
        "nameSource": if configured.is_some() { "config" } else { "default" },
    }))
}

/// Configured agents, or `main` alone.
pub fn agent_ids(config: &ConfigFile) -> Vec<String> {
    let configured: Vec<String> = config
        .agents
        .as_ref()
        .map(|agents| agents.entries.keys().cloned().collect())
        .unwrap_or_default();
    if configured.is_empty() {
        vec![DEFAULT_AGENT.to_owned()]
    } else {
        configured
    }
}

pub fn default_agent(config: &ConfigFile) -> String {
    let ids = agent_ids(config);
    if ids.iter().any(|id| id == DEFAULT_AGENT) {
        DEFAULT_AGENT.to_owned()
    } else {
        ids[0].clone()
    }
}

fn entry_name(config: &ConfigFile, id: &str) -> Option<String> {
    config
        .agents
        .as_ref()
        .and_then(|agents| agents.entries.get(id))
        .and_then(|entry| entry.name.clone())
}

fn summary(config: &ConfigFile, id: &str) -> Value {
    let agents = config.agents.as_ref();
    let entry = agents.and_then(|agents| agents.entries.get(id));
    let defaults = agents.and_then(|agents| agents.defaults.as_ref());
    let mut summary = json!({"id": id});
    if let Some(name) = entry_name(config, id) {
        summary["name"] = json!(name);
        summary["identity"] = json!({"name": name});
    }
    let workspace = entry
        .and_then(|entry| entry.workspace.as_ref())
        .or_else(|| defaults.and_then(|defaults| defaults.workspace.as_ref()));
    if let Some(workspace) = workspace {
        summary["workspace"] = json!(workspace);
    }
    let model = entry
        .and_then(|entry| entry.model.as_ref())
        .or_else(|| defaults.and_then(|defaults| defaults.model.as_ref()));
    if let Some(model) = model {
        summary["model"] = match model {
            ModelChoice::Name(name) => json!({"primary": name}),
            ModelChoice::Chain { primary, fallbacks } => {
                json!({"primary": primary, "fallbacks": fallbacks})
            }
        };
    }
    summary
}

fn workspace_for(gateway: &Gateway, agent_id: &str) -> Result<std::path::PathBuf, ErrorShape> {
    let config = gateway.config();
    if !agent_ids(&config).iter().any(|id| id == agent_id) {
        return Err(ErrorShape::invalid(format!("unknown agent: {agent_id}")));
    }
    Ok(crate::agent::workspace::dir(
        &config,
        &gateway.state_root,
        agent_id,
    ))
}

fn file_name<'a>(params: &Params<'a>) -> Result<&'a str, ErrorShape> {
    let name = params.str("name")?;
    if !crate::agent::workspace::is_file_name(name) {
        return Err(ErrorShape::invalid(format!(
            "unknown workspace file: {name} (one of {})",
            crate::agent::workspace::FILES.join(", ")
        )));
    }
    Ok(name)
}

pub fn files_list(gateway: &Gateway, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let params = Params::closed("agents.files.list", params, &["agentId"])?;
    let agent_id = params.str("agentId")?;
    let dir = workspace_for(gateway, agent_id)?;
    let files: Vec<Value> = crate::agent::workspace::FILES
        .iter()
        .map(|name| crate::agent::workspace::entry(&dir, name, false))
        .collect();
    Ok(json!({"agentId": agent_id, "workspace": dir.display().to_string(), "files": files}))
}

pub fn files_get(gateway: &Gateway, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let params = Params::closed("agents.files.get", params, &["agentId", "name"])?;
    let agent_id = params.str("agentId")?;
    let name = file_name(&params)?;
    let dir = workspace_for(gateway, agent_id)?;
    Ok(
        json!({"agentId": agent_id, "workspace": dir.display().to_string(),
              "file": crate::agent::workspace::entry(&dir, name, true)}),
    )
}

/// Writes a workspace file. The request (with the content) is what the log
/// records of it; the next turn's prompt reads the file.
pub fn files_set(gateway: &Gateway, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let params = Params::closed(
        "agents.files.set",
        params,
        &["agentId", "name", "content", "expectedHash"],
    )?;
    let agent_id = params.str("agentId")?;
    let name = file_name(&params)?;
    let content = match params.get("content") {
        Some(Value::String(content)) => content.as_str(),
        Some(_) => return Err(params.invalid("at /content: must be string")),
        None if params.has("content") => {
            return Err(params.invalid("at /content: must be string"));
        }
        None => return Err(params.invalid("must have required property 'content'")),
    };
    if content.len() > crate::agent::workspace::FILE_BYTES_MAX {
        return Err(params.invalid(format!(
            "at /content: longer than {} bytes",
            crate::agent::workspace::FILE_BYTES_MAX
        )));
    }
    let expected = params.opt_str("expectedHash")?;
    let dir = workspace_for(gateway, agent_id)?;
    crate::agent::workspace::write(&dir, name, content, expected).map_err(ErrorShape::invalid)?;
    Ok(
        json!({"ok": true, "agentId": agent_id, "workspace": dir.display().to_string(),
              "file": crate::agent::workspace::entry(&dir, name, false)}),
    )
}

/// `skills.status {agentId?, sessionKey?}`: the agent's workspace skills,
/// each with what it requires and what is missing here.
pub fn skills_status(gateway: &Gateway, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let params = Params::closed("skills.status", params, &["agentId", "sessionKey"])?;
    let agent_id = params
        .opt_str("agentId")?
        .or(params
            .opt_str("sessionKey")?
            .and_then(clawback_projections::sessions::agent_in_key))
        .unwrap_or(DEFAULT_AGENT)
        .to_owned();
    let dir = workspace_for(gateway, &agent_id)?;
    let skills: Vec<Value> = crate::agent::skills::discover(&dir)
        .iter()
        .map(crate::agent::skills::status_entry)
        .collect();
    Ok(json!({
        "workspaceDir": dir.display().to_string(),
        "managedSkillsDir": dir.join("skills").display().to_string(),
        "agentId": agent_id,
        "skills": skills,
    }))
}
