//! The config's shape: OpenClaw's `openclaw.json`, typed where clawback acts
//! on it, accepted as-is where it does not (yet).
//!
//! Why typed structs (serde + schemars) instead of a hand-kept schema: the
//! JSON Schema `config.schema` serves, the validation `config.set` runs and
//! the values the gateway reads come from one definition, so they cannot
//! drift apart. Unknown top-level keys are errors that name the key (a typo
//! must not be ignored); OpenClaw sections clawback does not act on are kept
//! and listed in `warnings`, so an OpenClaw config loads unchanged.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use super::gateway_section::*;

/// The whole config file.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "clawback gateway config (OpenClaw openclaw.json compatible)")]
pub struct ConfigFile {
    /// An editor hint; ignored.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// The gateway server: port, bind, authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewaySection>,
    /// Agents: defaults and per-agent entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<AgentsSection>,
    /// Model providers and their models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<ModelsSection>,
    // OpenClaw's other sections, by name: kept as they are and named in
    // `config.get`'s `warnings`. Listing them (rather than accepting any
    // key) is what lets a misspelled key be refused. (serde's
    // `deny_unknown_fields` does not combine with `flatten`, hence inline.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wizard: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_groups: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acp: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_host: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worktree_root: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worktree_acceleration: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bindings: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broadcast: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tts: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcripts: Option<Value>,
    /// Inbound HTTP hooks (`/hooks/*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<HooksSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub talk: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_workers: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desktop: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skills: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugins: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surfaces: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<Value>,
}

/// `agents`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentsSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<AgentDefaults>,
    /// Agents by id (`^[a-z0-9_][a-z0-9_-]{0,63}$`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub entries: BTreeMap<String, AgentEntry>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// `agents.defaults`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentDefaults {
    /// `"provider/model"` or `{primary, fallbacks}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// Runs at once across sessions (OpenClaw's default is 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_default: Option<String>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// `agents.entries.<id>`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelChoice>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// A model reference, alone or with a fallback chain.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ModelChoice {
    Name(String),
    Chain {
        primary: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        fallbacks: Vec<String>,
    },
}

impl ConfigFile {
    /// `auth.order.<provider>`: the auth profile ids to try first, in order.
    pub fn auth_order(&self, provider: &str) -> Vec<String> {
        self.auth
            .as_ref()
            .and_then(|auth| auth.get("order"))
            .and_then(|order| order.get(provider))
            .and_then(Value::as_array)
            .map(|ids| {
                ids.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `cron.enabled` (default true): whether jobs fire on schedule.
    pub fn cron_enabled(&self) -> bool {
        self.cron
            .as_ref()
            .and_then(|cron| cron.get("enabled"))
            .and_then(Value::as_bool)
            .unwrap_or(true)
    }

    /// The model an agent uses: its entry's, else `agents.defaults.model`.
    pub fn agent_model(&self, agent_id: &str) -> Option<&ModelChoice> {
        let agents = self.agents.as_ref()?;
        agents
            .entries
            .get(agent_id)
            .and_then(|entry| entry.model.as_ref())
            .or_else(|| agents.defaults.as_ref()?.model.as_ref())
    }
}

impl ModelChoice {
    pub fn primary(&self) -> &str {
        match self {
            ModelChoice::Name(name) => name,
            ModelChoice::Chain { primary, .. } => primary,
        }
    }
}

/// `models`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelsSection {
    /// `merge` (default) adds these providers to the built-in catalog;
    /// clawback has no built-in catalog, so both modes list exactly these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ModelsMode>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub providers: BTreeMap<String, ProviderConfig>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ModelsMode {
    Merge,
    Replace,
}

/// `models.providers.<id>`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretInput>,
    /// The wire format: `openai-completions`, `openai-responses`,
    /// `anthropic-messages`, `google-generative-ai`, `ollama`,
    /// `bedrock-converse-stream`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ModelDefinition>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// One model a provider serves.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelDefinition {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<bool>,
    /// Input kinds: `text`, `image`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Prices per million tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<ModelCost>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelCost {
    #[serde(default)]
    pub input: f64,
    #[serde(default)]
    pub output: f64,
    #[serde(default)]
    pub cache_read: f64,
    #[serde(default)]
    pub cache_write: f64,
}

/// One problem found in a config, at a path like `gateway.auth.mode`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Issue {
    pub path: String,
    pub message: String,
}

/// A config value checked against the types, with what clawback ignores.
pub struct Checked {
    pub typed: ConfigFile,
    pub warnings: Vec<Issue>,
}

/// Checks a parsed document: types first (the error names its path), then
/// the rules serde cannot express.
pub fn check(value: &Value) -> Result<Checked, Vec<Issue>> {
    let typed: ConfigFile = serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        vec![Issue {
            path: if path == "." { String::new() } else { path },
            message: error.inner().to_string(),
        }]
    })?;
    let mut issues = Vec::new();
    if let Some(agents) = &typed.agents {
        for id in agents.entries.keys() {
            if !valid_agent_id(id) {
                issues.push(Issue {
                    path: format!("agents.entries.{id}"),
                    message: "agent ids match ^[a-z0-9_][a-z0-9_-]{0,63}$".to_owned(),
                });
            }
        }
    }
    if let Some(models) = &typed.models {
        for (id, provider) in &models.providers {
            let mut seen = std::collections::BTreeSet::new();
            for (index, model) in provider.models.iter().enumerate() {
                if model.id.trim().is_empty() {
                    issues.push(Issue {
                        path: format!("models.providers.{id}.models[{index}].id"),
                        message: "must not be empty".to_owned(),
                    });
                } else if !seen.insert(model.id.as_str()) {
                    issues.push(Issue {
                        path: format!("models.providers.{id}.models[{index}].id"),
                        message: format!("model {} is listed twice", model.id),
                    });
                }
            }
        }
    }
    if let Some(hooks) = &typed.hooks {
        check_hooks(hooks, &mut issues);
    }
    if !issues.is_empty() {
        return Err(issues);
    }
    let warnings = ignored_keys(value);
    Ok(Checked { typed, warnings })
}

/// Sections and keys clawback keeps but does not act on: every top-level key
/// other than the typed ones, and the `other` keys of the typed sections.
fn ignored_keys(value: &Value) -> Vec<Issue> {
    const ACTED_ON: &[(&str, &[&str])] = &[
        ("$schema", &[]),
        (
            "gateway",
            &[
                "port",
                "mode",
                "bind",
                "customBindHost",
                "auth",
                "tools",
                "controlUi",
            ],
        ),
        (
            "hooks",
            &[
                "enabled",
                "token",
                "path",
                "maxBodyBytes",
                "defaultSessionKey",
                "allowRequestSessionKey",
                "allowedSessionKeyPrefixes",
                "allowedAgentIds",
                "mappings",
            ],
        ),
        ("agents", &["defaults", "entries"]),
        ("models", &["mode", "providers"]),
        ("auth", &["order"]),
        ("cron", &["enabled"]),
    ];
    let mut warnings = Vec::new();
    let Some(object) = value.as_object() else {
        return warnings;
    };
    for (key, section) in object {
        let note = |path: String| Issue {
            path,
            message: "kept, but clawback does not act on this setting yet".to_owned(),
        };
        match ACTED_ON.iter().find(|(name, _)| name == key) {
            None => warnings.push(note(key.clone())),
            Some((_, known)) => {
                if let Some(section) = section.as_object() {
                    for inner in section.keys() {
                        if !known.contains(&inner.as_str()) {
                            warnings.push(note(format!("{key}.{inner}")));
                        }
                    }
                }
            }
        }
    }
    warnings
}

fn valid_agent_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    let allowed = |byte: &u8| byte.is_ascii_lowercase() || byte.is_ascii_digit() || *byte == b'_';
    !bytes.is_empty()
        && bytes.len() <= 64
        && allowed(&bytes[0])
        && bytes[1..].iter().all(|byte| allowed(byte) || *byte == b'-')
}

/// The JSON Schema (draft-07, as OpenClaw serves its own) of the config.
pub fn schema() -> Value {
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    generator.into_root_schema_for::<ConfigFile>().to_value()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_openclaw_config_is_accepted_and_its_unused_sections_are_warned_about() {
        let value = json!({
            "gateway": {"mode": "local", "port": 18789, "bind": "loopback",
                        "auth": {"mode": "token", "token": "t"}, "tailscale": {"mode": "off"},
                        "controlUi": {"enabled": true, "allowedOrigins": ["https://ui.example"]}},
            "agents": {"defaults": {"model": {"primary": "mock/mock-model"}, "heartbeat": {}}},
            "models": {"mode": "merge", "providers": {"mock": {
                "baseUrl": "http://127.0.0.1:18900/v1", "apiKey": "sk-local", "api": "openai-completions",
                "models": [{"id": "mock-model", "name": "Mock", "contextWindow": 120000,
                            "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0}}]}}},
            "hooks": {"enabled": true, "token": "hook-secret", "presets": ["gmail"]},
        });
        let checked = check(&value).unwrap();
        let paths: Vec<&str> = checked.warnings.iter().map(|w| w.path.as_str()).collect();
        assert_eq!(paths, ["gateway.tailscale", "hooks.presets"]);
        let provider = &checked.typed.models.unwrap().providers["mock"];
        assert_eq!(provider.models[0].context_window, Some(120000));
    }

    #[test]
    fn errors_name_the_path() {
        let issues = check(&json!({"gateway": {"port": "x"}})).err().unwrap();
        assert_eq!(issues[0].path, "gateway.port", "{issues:?}");
        let issues = check(&json!({"gatway": {}})).err().unwrap();
        assert!(issues[0].message.contains("gatway"), "{issues:?}");
        let issues = check(&json!({"gateway": {"auth": {"mode": "kerberos"}}}))
            .err()
            .unwrap();
        assert_eq!(issues[0].path, "gateway.auth.mode", "{issues:?}");
        for path in ["/", "/tools", "v1/x", "/a{b}", "/a//b"] {
            let issues = check(&json!({"hooks": {"path": path}})).err().unwrap();
            assert_eq!(issues[0].path, "hooks.path", "{path}: {issues:?}");
        }
        assert!(check(&json!({"hooks": {"path": "/in/bound/"}})).is_ok());
        let issues = check(&json!({"hooks": {"mappings": [{"transform": {"module": "x.js"}}]}}))
            .err()
            .unwrap();
        assert_eq!(issues[0].path, "hooks.mappings[0].transform");
        let issues = check(&json!({"agents": {"entries": {"Bad Id": {}}}}))
            .err()
            .unwrap();
        assert_eq!(issues[0].path, "agents.entries.Bad Id");
    }

    #[test]
    fn secrets_resolve_from_the_environment_when_referenced() {
        let plain = SecretInput::Plain("abc".to_owned());
        assert_eq!(plain.resolve().unwrap(), "abc");
        let missing = SecretInput::Plain("${CLAWBACK_TEST_SURELY_UNSET}".to_owned());
        assert!(
            missing
                .resolve()
                .unwrap_err()
                .contains("CLAWBACK_TEST_SURELY_UNSET")
        );
        let path = SecretInput::Plain("${PATH}".to_owned());
        assert_eq!(path.resolve().unwrap(), std::env::var("PATH").unwrap());
    }

    #[test]
    fn the_schema_is_draft_07_and_lists_the_sections() {
        let schema = schema();
        assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
        for key in ["gateway", "agents", "models", "channels", "hooks"] {
            assert!(schema["properties"].get(key).is_some(), "{key} missing");
        }
    }
}
