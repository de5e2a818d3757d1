//! The config's `gateway` and `hooks` sections: where the gateway listens,
//! how clients authenticate (secrets given inline or as env references),
//! the control UI's allowed origins, the OpenAI-compatible endpoints, the
//! tools HTTP surface, and the hook mappings with the rules serde cannot
//! express. Part of `model` (re-exported there); kept apart because these
//! are the sections a network-facing change touches.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::model::Issue;

/// `gateway`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySection {
    /// The port for HTTP and WebSocket (default 18789). `--bind` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `local` runs a gateway; `remote` is a client-only OpenClaw setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<GatewayMode>,
    /// Which interface to listen on (default loopback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<BindMode>,
    /// The address for `bind: "custom"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_bind_host: Option<String>,
    /// How clients authenticate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<GatewayAuth>,
    /// The HTTP endpoints beside the WebSocket (`/v1/*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<GatewayHttp>,
    /// What `POST /tools/invoke` may run, beyond the default deny list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<GatewayTools>,
    /// The control UI: whether it is served, and which browser origins
    /// may open the WebSocket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_ui: Option<ControlUi>,
    /// Other OpenClaw gateway keys, kept, not acted on.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// `gateway.controlUi` (OpenClaw's keys; read live, so an edit applies to
/// the next page load or WebSocket upgrade).
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ControlUi {
    /// Serve the page (default true). The WebSocket is unaffected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Browser origins (`scheme://host[:port]`) allowed to open the
    /// WebSocket besides a private same-origin page; `"*"` allows any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
    /// Accept any origin that names the Host the request was sent to, even
    /// a public name (DNS rebinding is then the token's problem alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dangerously_allow_host_header_origin_fallback: Option<bool>,
    /// OpenClaw's other control UI keys (basePath, root, ...): kept, not
    /// acted on.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// `gateway.http`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayHttp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<HttpEndpoints>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// `gateway.http.endpoints`: each OpenAI-compatible surface is off unless
/// enabled, as in OpenClaw (a bearer token there is full operator access).
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpEndpoints {
    /// `/v1/chat/completions` and `/v1/models`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_completions: Option<HttpEndpoint>,
    /// `/v1/responses`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responses: Option<HttpEndpoint>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpEndpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// OpenClaw's image limits and the like: kept, not acted on (image
    /// parts are refused).
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// `gateway.tools`: changes to the HTTP tool deny list.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayTools {
    /// Tools taken off the default deny list of `/tools/invoke`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Tools denied over `/tools/invoke` besides the default list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

/// `hooks`: OpenClaw's inbound webhook endpoints (off by default).
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HooksSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The hook secret (`${ENV_VAR}` allowed); must differ from the
    /// gateway's token and password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The base path (default `/hooks`); read at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The body limit in bytes (default 256 KiB). A clawback setting:
    /// OpenClaw 2026.9.6 has the limit fixed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_session_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_request_session_key: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_session_key_prefixes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_agent_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mappings: Vec<HookMapping>,
    /// Other OpenClaw hook keys (`gmail`, `internal`, `presets`,
    /// `transformsDir`), kept, not acted on.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

impl GatewaySection {
    /// Whether `/v1/chat/completions` (`chat`) or `/v1/responses` is on.
    pub fn http_enabled(&self, responses: bool) -> bool {
        let endpoints = self.http.as_ref().and_then(|http| http.endpoints.as_ref());
        let endpoint = endpoints.and_then(|endpoints| {
            if responses {
                endpoints.responses.as_ref()
            } else {
                endpoints.chat_completions.as_ref()
            }
        });
        endpoint.and_then(|endpoint| endpoint.enabled) == Some(true)
    }
}

/// One entry of `hooks.mappings`: first match wins.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HookMapping {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#match: Option<HookMatch>,
    /// `agent` (default) or `wake`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<HookAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    /// `isolated` (default) or `persistent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_template: Option<String>,
    /// A top-level payload array: one action per item (at most 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_unsafe_external_content: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// OpenClaw's JavaScript transforms: refused by `check` (clawback runs
    /// no JavaScript).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<Value>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HookMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum HookAction {
    Agent,
    Wake,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum GatewayMode {
    Local,
    Remote,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BindMode {
    Auto,
    Loopback,
    Lan,
    Tailnet,
    Custom,
}

/// `gateway.auth`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayAuth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<AuthMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<SecretInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretInput>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    None,
    Token,
    Password,
    TrustedProxy,
}

/// A secret: the value itself, `${ENV_VAR}`, or a reference
/// `{source: "env", id: "ENV_VAR"}`. References keep secrets out of the file.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SecretInput {
    Plain(String),
    Reference(SecretRef),
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// Only `env` is read by clawback; OpenClaw's `file` and `exec`
    /// providers are refused with a clear error rather than ignored.
    pub source: SecretSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The environment variable's name.
    pub id: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SecretSource {
    Env,
}

impl SecretInput {
    /// The secret's value, read from the environment where it says so.
    pub fn resolve(&self) -> Result<String, String> {
        let from_env = |name: &str| {
            std::env::var(name).map_err(|_| format!("the environment variable {name} is not set"))
        };
        match self {
            SecretInput::Plain(text) => match env_reference(text) {
                Some(name) => from_env(name),
                None => Ok(text.clone()),
            },
            SecretInput::Reference(reference) => from_env(&reference.id),
        }
    }
}

/// `${NAME}` as the whole string.
fn env_reference(text: &str) -> Option<&str> {
    let name = text.strip_prefix("${")?.strip_suffix('}')?;
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_');
    valid.then_some(name)
}

/// The hook rules serde cannot express. (That the hook token differs from
/// the gateway's secret is checked where that secret is known:
/// `gateway::http::hooks::check_token`.)
pub(super) fn check_hooks(hooks: &HooksSection, issues: &mut Vec<Issue>) {
    let mut issue = |path: String, message: &str| {
        issues.push(Issue {
            path,
            message: message.to_owned(),
        })
    };
    if hooks.enabled == Some(true) && hooks.token.as_deref().is_none_or(|t| t.trim().is_empty()) {
        issue(
            "hooks.token".to_owned(),
            "hooks.enabled needs a non-empty hooks.token (a long random secret, not the gateway token)",
        );
    }
    if let Some(path) = &hooks.path {
        let path = path.trim().trim_matches('/');
        let first = path.split('/').next().unwrap_or_default();
        let plain = path
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte));
        if path.is_empty() {
            issue("hooks.path".to_owned(), "must not be \"/\" or empty");
        } else if !plain || path.contains("//") {
            issue(
                "hooks.path".to_owned(),
                "may hold only letters, digits, '-', '.', '_', '~' and single '/'",
            );
        } else if ["healthz", "tools", "v1"].contains(&first) {
            issue(
                "hooks.path".to_owned(),
                "must not overlap the gateway's own endpoints (/healthz, /tools, /v1)",
            );
        }
    }
    if hooks.max_body_bytes == Some(0) {
        issue("hooks.maxBodyBytes".to_owned(), "must be at least 1");
    }
    for (index, mapping) in hooks.mappings.iter().enumerate() {
        let at = |key: &str| format!("hooks.mappings[{index}].{key}");
        if mapping.transform.is_some() {
            issue(
                at("transform"),
                "hook transforms (JavaScript modules) are not supported by clawback; use messageTemplate",
            );
        }
        if let Some(mode) = &mapping.session_mode
            && mode != "isolated"
            && mode != "persistent"
        {
            issue(at("sessionMode"), "must be \"isolated\" or \"persistent\"");
        }
        if let Some(mode) = &mapping.wake_mode
            && mode != "now"
            && mode != "next-heartbeat"
        {
            issue(at("wakeMode"), "must be \"now\" or \"next-heartbeat\"");
        }
        if let Some(key) = &mapping.for_each
            && (key.is_empty() || key.contains(['.', '[', ']']))
        {
            issue(at("forEach"), "forEach must be a top-level payload key");
        }
        if mapping.timeout_seconds == Some(0) {
            issue(at("timeoutSeconds"), "must be a positive integer");
        }
        let persistent = mapping.session_mode.as_deref() == Some("persistent");
        let agent = mapping.action.unwrap_or(HookAction::Agent) == HookAction::Agent;
        if agent
            && persistent
            && mapping
                .session_key
                .as_deref()
                .is_none_or(|k| k.trim().is_empty())
            && hooks
                .default_session_key
                .as_deref()
                .is_none_or(|k| k.trim().is_empty())
        {
            issue(
                at("sessionKey"),
                "persistent hook mappings require sessionKey, hooks.defaultSessionKey, or a transform",
            );
        }
    }
}
