//! `models.list`: the models of the configured providers.
//!
//! clawback ships no built-in catalog: a model is listed because the config
//! names it under `models.providers`, so the list is exactly what an agent
//! run could use. With no providers configured it is empty, as OpenClaw's is.

use serde_json::{Value, json};

use super::super::frames::ErrorShape;
use super::Params;
use crate::gateway::Gateway;

const KEYS: &[&str] = &[
    "agentId",
    "view",
    "refresh",
    "preparedOnly",
    "includeProviderCapabilities",
    "provider",
    "sessionKey",
];

pub fn list(gateway: &Gateway, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let params = Params::closed("models.list", params, KEYS)?;
    params.opt_choice("view", &["default", "configured", "provider-config", "all"])?;
    params.opt_bool("refresh")?;
    params.opt_bool("preparedOnly")?;
    params.opt_bool("includeProviderCapabilities")?;
    params.opt_str("sessionKey")?;
    let only_provider = params.opt_str("provider")?;
    let agent_id = params.opt_str("agentId")?.unwrap_or("main");
    let config = gateway.config();
    let default_model = config
        .agent_model(agent_id)
        .map(|choice| choice.primary().to_owned());
    let Some(models) = &config.models else {
        return Ok(json!({"models": []}));
    };
    let mut listed = Vec::new();
    for (provider_id, provider) in &models.providers {
        if only_provider.is_some_and(|only| only != provider_id) {
            continue;
        }
        // A provider is usable when its key (if any) resolves now.
        let key_problem = provider
            .api_key
            .as_ref()
            .and_then(|key| key.resolve().err());
        for model in &provider.models {
            let reference = format!("{provider_id}/{}", model.id);
            let mut tags = Vec::new();
            if default_model.as_deref() == Some(reference.as_str()) {
                tags.push("default");
            }
            let mut entry = json!({
                "id": model.id,
                "name": model.name.clone().unwrap_or_else(|| model.id.clone()),
                "provider": provider_id,
                "reasoning": model.reasoning.unwrap_or(false),
                "input": if model.input.is_empty() { vec!["text".to_owned()] } else { model.input.clone() },
                "tags": tags,
                "available": key_problem.is_none(),
            });
            if let Some(window) = model.context_window {
                entry["contextWindow"] = json!(window);
            }
            if let Some(max) = model.max_tokens {
                entry["maxTokens"] = json!(max);
            }
            if let Some(api) = model.api.as_ref().or(provider.api.as_ref()) {
                entry["api"] = json!(api);
            }
            if let Some(problem) = &key_problem {
                entry["unavailableReason"] = json!(problem);
            }
            listed.push(entry);
        }
    }
    Ok(json!({"models": listed}))
}
