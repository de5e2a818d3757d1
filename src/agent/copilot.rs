//! GitHub Copilot (`github-copilot`): a GitHub token is exchanged for a
//! short-lived Copilot token, which then authenticates an OpenAI-compatible
//! endpoint (Chat Completions by default; the stream itself is `openai`'s).
//!
//! Why a module of its own: the provider's credential is not what its
//! endpoint takes. Before a call, [`target`] turns the run's GitHub token
//! into `Authorization: Bearer <copilot token>` and the Copilot headers
//! (`Editor-Version`, `Copilot-Integration-Id`, ...), and finds the API
//! base (the configured `baseUrl`, else the exchange's `endpoints.api`,
//! else the token's `proxy-ep` hint, else the public default).
//!
//! The exchange is OpenClaw's (`resolveCopilotApiToken`): `GET
//! https://api.<domain>/copilot_internal/v2/token` with `Authorization:
//! Bearer <github token>` and VS Code Copilot Chat's identity headers; the
//! answer `{token, expires_at, endpoints: {api}}` is cached per GitHub
//! token (by digest) until five minutes before it expires, in memory only:
//! neither token ever reaches the log. A completions answer of 401 drops
//! the cached token so the next attempt exchanges again.
//!
//! Settings (`models.providers.github-copilot`): `baseUrl` (the completions
//! base, optional), `params.githubDomain` (a `*.ghe.com` tenant; the env
//! `COPILOT_GITHUB_DOMAIN` overrides it, as in OpenClaw), and clawback's
//! `params.tokenUrl` (the exchange URL, for a proxy or a test server).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use super::models::Resolved;
use super::provider::{Endpoint, Failure};
use crate::config::model::ConfigFile;

pub const PROVIDER: &str = "github-copilot";
pub const DEFAULT_API_BASE: &str = "https://api.individual.githubcopilot.com";
/// A cached token is used only while it has more than this left (OpenClaw's
/// margin).
const REFRESH_MARGIN_MS: i64 = 300_000;
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Tokens kept: one per GitHub token (and exchange URL) in use.
const CACHED_MAX: usize = 16;

// OpenClaw's Copilot identity (`copilot-dynamic-headers`, `runtime-identity`).
const EDITOR_VERSION: &str = "vscode/1.107.0";
const EDITOR_PLUGIN_VERSION: &str = "copilot-chat/0.35.0";
const USER_AGENT: &str = "GitHubCopilotChat/0.35.0";
const GITHUB_API_VERSION: &str = "2025-04-01";
/// The integration id of the token exchange.
const EXCHANGE_INTEGRATION_ID: &str = "vscode-chat";
/// The integration id of inference requests (provider `headers` may
/// replace it, as OpenClaw allows).
const RUNTIME_INTEGRATION_ID: &str = "copilot-developer-cli";

/// Where a Copilot provider exchanges its GitHub token, and the completions
/// base it falls back to.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub token_url: String,
    pub fallback_base: String,
}

impl Settings {
    /// From `models.providers.github-copilot.params` and the environment.
    pub fn from_config(config: &ConfigFile) -> Settings {
        let params = config
            .models
            .as_ref()
            .and_then(|models| models.providers.get(PROVIDER))
            .and_then(|provider| provider.other.get("params"));
        let text = |name: &str| {
            params
                .and_then(|params| params.get(name))
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
        };
        let env_domain = std::env::var("COPILOT_GITHUB_DOMAIN")
            .ok()
            .filter(|value| !value.trim().is_empty());
        let domain = domain(env_domain.or_else(|| text("githubDomain")).as_deref());
        Settings {
            token_url: text("tokenUrl")
                .unwrap_or_else(|| format!("https://api.{domain}/copilot_internal/v2/token")),
            fallback_base: fallback_base(&domain),
        }
    }
}

/// `github.com` or a `*.ghe.com` tenant (anything else is ignored, as
/// OpenClaw does).
fn domain(configured: Option<&str>) -> String {
    let Some(value) = configured else {
        return "github.com".to_owned();
    };
    let value = value
        .trim()
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_ascii_lowercase();
    if value.ends_with(".ghe.com") && value.len() > ".ghe.com".len() {
        value
    } else {
        "github.com".to_owned()
    }
}

fn fallback_base(domain: &str) -> String {
    if domain == "github.com" {
        DEFAULT_API_BASE.to_owned()
    } else {
        format!("https://copilot-api.{domain}")
    }
}

/// Copilot API hosts a token's endpoint may point at.
fn trusted_host(host: &str, tenant: Option<&str>) -> bool {
    host == "copilot-proxy.githubusercontent.com"
        || host.ends_with(".githubcopilot.com")
        || tenant.is_some_and(|tenant| host == tenant || host.ends_with(&format!(".{tenant}")))
}

/// The API base from the exchange's answer: `endpoints.api`, else the
/// token's `proxy-ep` hint (`proxy.X` serves `api.X`), when it names a
/// Copilot host over https.
fn api_base(answer: &Value, token: &str, settings: &Settings) -> String {
    let tenant = settings.fallback_base.strip_prefix("https://copilot-api.");
    let from_url = |text: &str| {
        let url = reqwest::Url::parse(text).ok()?;
        let host = url.host_str()?.to_ascii_lowercase();
        (url.scheme() == "https" && url.username().is_empty() && trusted_host(&host, tenant))
            .then(|| text.trim_end_matches('/').to_owned())
    };
    if let Some(base) = answer["endpoints"]["api"].as_str().and_then(from_url) {
        return base;
    }
    let proxy = token.split(';').find_map(|part| {
        let (key, value) = part.trim().split_once('=')?;
        key.eq_ignore_ascii_case("proxy-ep")
            .then(|| value.trim().to_owned())
    });
    if let Some(proxy) = proxy {
        let host = proxy
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/');
        let api = match host.strip_prefix("proxy.") {
            Some(rest) => format!("api.{rest}"),
            None => host.to_owned(),
        };
        if let Some(base) = from_url(&format!("https://{api}")) {
            return base;
        }
    }
    settings.fallback_base.clone()
}

#[derive(Clone)]
struct Cached {
    token: String,
    expires_at_ms: i64,
    api_base: String,
}

/// Exchanged Copilot tokens, by exchange URL and GitHub token digest.
#[derive(Default)]
pub struct Tokens {
    cached: Mutex<BTreeMap<String, Cached>>,
}

fn cache_key(settings: &Settings, github_token: &str) -> String {
    format!(
        "{}|{}",
        settings.token_url,
        blake3::hash(github_token.as_bytes()).to_hex()
    )
}

impl Tokens {
    fn get(&self, key: &str, now_ms: i64) -> Option<Cached> {
        self.cached
            .lock()
            .expect("copilot tokens lock")
            .get(key)
            .filter(|cached| cached.expires_at_ms - now_ms > REFRESH_MARGIN_MS)
            .cloned()
    }

    fn put(&self, key: String, cached: Cached) {
        let mut all = self.cached.lock().expect("copilot tokens lock");
        if all.len() >= CACHED_MAX && !all.contains_key(&key) {
            // The one expiring first goes.
            if let Some(oldest) = all
                .iter()
                .min_by_key(|(_, cached)| cached.expires_at_ms)
                .map(|(key, _)| key.clone())
            {
                all.remove(&oldest);
            }
        }
        all.insert(key, cached);
    }

    /// Drops the token exchanged for `resolved`'s GitHub token (the
    /// endpoint refused it).
    pub fn forget(&self, resolved: &Resolved) {
        if let (Some(settings), Some(github_token)) = (resolved.copilot(), resolved.api_key()) {
            self.cached
                .lock()
                .expect("copilot tokens lock")
                .remove(&cache_key(settings, github_token));
        }
    }
}

/// Where one model call goes and with which credential and headers.
pub struct Target {
    pub base_url: String,
    pub api_key: Option<String>,
    /// AWS keys to sign with (Bedrock); never set for Copilot.
    pub aws: Option<crate::credentials::aws::Signing>,
    pub headers: BTreeMap<String, String>,
    /// `api_key` is an Anthropic sign-in's token ([`Endpoint::oauth`]).
    pub oauth: bool,
}

impl Target {
    pub fn endpoint(&self, timeout: Duration) -> Endpoint<'_> {
        Endpoint {
            base_url: &self.base_url,
            api_key: self.api_key.as_deref(),
            aws: self.aws.as_ref(),
            headers: &self.headers,
            timeout,
            oauth: self.oauth,
        }
    }
}

/// The target of a call to `resolved` with `body`: as configured, or for
/// Copilot after the token exchange (cached).
pub async fn target(
    tokens: &Tokens,
    client: &reqwest::Client,
    resolved: &Resolved,
    body: &Value,
) -> Result<Target, Failure> {
    let Some(settings) = resolved.copilot() else {
        return Ok(Target {
            base_url: resolved.base_url().to_owned(),
            api_key: resolved.api_key().map(str::to_owned),
            aws: resolved.aws().cloned(),
            headers: resolved.headers().clone(),
            oauth: resolved.claude_oauth(),
        });
    };
    let Some(github_token) = resolved.api_key() else {
        return Err(Failure {
            class: "auth",
            message: missing_token_message(),
            http_status: None,
        });
    };
    let key = cache_key(settings, github_token);
    let now = crate::gateway::protocol::methods::now_ms();
    let cached = match tokens.get(&key, now) {
        Some(cached) => cached,
        None => {
            let fresh = exchange(client, settings, github_token).await?;
            tokens.put(key, fresh.clone());
            fresh
        }
    };
    let base_url = if resolved.base_url().is_empty() {
        cached.api_base.clone()
    } else {
        resolved.base_url().to_owned()
    };
    Ok(Target {
        base_url,
        api_key: Some(cached.token),
        aws: None,
        headers: runtime_headers(resolved.headers(), body),
        oauth: false,
    })
}

/// How to give clawback a GitHub token.
pub fn missing_token_message() -> String {
    "GitHub Copilot needs a GitHub token with Copilot access: add one with `clawback auth add \
     github-copilot:github --type token` (the token on stdin), or set COPILOT_GITHUB_TOKEN."
        .to_owned()
}

/// The identity headers OpenClaw sends with inference, then the provider's
/// own headers (names compared case-insensitively; the provider's win),
/// and `x-initiator`: `agent` when the request carries tool results back,
/// else `user`.
fn runtime_headers(
    configured: &BTreeMap<String, String>,
    body: &Value,
) -> BTreeMap<String, String> {
    let mut headers: BTreeMap<String, String> = [
        ("Accept-Encoding", "identity"),
        ("Editor-Version", EDITOR_VERSION),
        ("Editor-Plugin-Version", EDITOR_PLUGIN_VERSION),
        ("User-Agent", USER_AGENT),
        ("Openai-Organization", "github-copilot"),
        ("Copilot-Integration-Id", RUNTIME_INTEGRATION_ID),
        ("X-Initiator", initiator(body)),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect();
    for (name, value) in configured {
        headers.retain(|existing, _| !existing.eq_ignore_ascii_case(name));
        headers.insert(name.clone(), value.clone());
    }
    headers
}

fn initiator(body: &Value) -> &'static str {
    let last = body["messages"]
        .as_array()
        .or_else(|| body["input"].as_array())
        .and_then(|messages| messages.last());
    let carries_results = last.is_some_and(|message| {
        message["role"] == "tool"
            || message["type"] == "function_call_output"
            || message["content"]
                .as_array()
                .is_some_and(|parts| parts.iter().any(|part| part["type"] == "tool_result"))
    });
    if carries_results { "agent" } else { "user" }
}

/// `GET` the exchange URL with the GitHub token.
async fn exchange(
    client: &reqwest::Client,
    settings: &Settings,
    github_token: &str,
) -> Result<Cached, Failure> {
    let url = &settings.token_url;
    let response = client
        .get(url)
        .timeout(EXCHANGE_TIMEOUT)
        .header("Accept", "application/json")
        .bearer_auth(github_token)
        .header("Copilot-Integration-Id", EXCHANGE_INTEGRATION_ID)
        .header("Accept-Encoding", "identity")
        .header("Editor-Version", EDITOR_VERSION)
        .header("Editor-Plugin-Version", EDITOR_PLUGIN_VERSION)
        .header("User-Agent", USER_AGENT)
        .header("X-Github-Api-Version", GITHUB_API_VERSION)
        .send()
        .await
        .map_err(|error| Failure {
            class: if error.is_timeout() {
                "timeout"
            } else {
                "unknown"
            },
            message: format!("the Copilot token exchange at {url} failed: {error}"),
            http_status: None,
        })?;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    if !(200..300).contains(&status) {
        return Err(exchange_failure(url, status, &text));
    }
    parse_answer(&text, settings).map_err(|why| Failure {
        class: "unknown",
        message: format!("the Copilot token exchange at {url} answered {why}"),
        http_status: Some(status),
    })
}

/// A refused exchange, classified: 401 (a bad or revoked GitHub token),
/// 403 (no Copilot access, or policy) and 404 (a token GitHub does not
/// know for Copilot) are `auth`, as OpenClaw reports them; 429 is a rate
/// limit.
fn exchange_failure(url: &str, status: u16, body: &str) -> Failure {
    let detail = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|value| value["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(200).collect());
    let (class, advice) = match status {
        401 | 404 => ("auth", format!(" {}", missing_token_message())),
        403 => (
            "auth",
            " Verify that the GitHub account has Copilot access and that its organization or \
             enterprise policy permits it, or give another token."
                .to_owned(),
        ),
        429 => ("rate_limit", String::new()),
        408 | 504 => ("timeout", String::new()),
        _ => ("unknown", String::new()),
    };
    Failure {
        class,
        message: format!(
            "Copilot authentication failed: HTTP {status} from the token exchange at {url} \
             ({detail}).{advice}"
        ),
        http_status: Some(status),
    }
}

/// `{token, expires_at, endpoints: {api}}`; `expires_at` is unix seconds
/// (or ms, when large), a number or a numeric string.
fn parse_answer(text: &str, settings: &Settings) -> Result<Cached, String> {
    let answer: Value = serde_json::from_str(text).map_err(|_| "a body that is not JSON")?;
    let token = answer["token"]
        .as_str()
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or("no token")?;
    let expires = match &answer["expires_at"] {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.trim().parse::<i64>().ok(),
        _ => None,
    }
    .filter(|value| *value >= 0)
    .ok_or("no valid expires_at")?;
    let expires_at_ms = if expires < 100_000_000_000 {
        expires.saturating_mul(1000)
    } else {
        expires
    };
    Ok(Cached {
        token: token.to_owned(),
        expires_at_ms,
        api_base: api_base(&answer, token, settings),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> Settings {
        Settings {
            token_url: "https://api.github.com/copilot_internal/v2/token".to_owned(),
            fallback_base: DEFAULT_API_BASE.to_owned(),
        }
    }

    #[test]
    fn the_answer_gives_the_token_expiry_and_a_trusted_base() {
        let parsed = parse_answer(
            r#"{"token":"tid=1;exp=2;proxy-ep=proxy.business.githubcopilot.com","expires_at":1764000000,
                "endpoints":{"api":"https://api.enterprise.githubcopilot.com/"}}"#,
            &settings(),
        )
        .unwrap();
        assert_eq!(parsed.expires_at_ms, 1_764_000_000_000);
        assert_eq!(parsed.api_base, "https://api.enterprise.githubcopilot.com");
        // Without endpoints, the token's proxy hint; an untrusted one is ignored.
        let hinted = parse_answer(
            r#"{"token":"tid=1;proxy-ep=proxy.business.githubcopilot.com","expires_at":"1764000000000"}"#,
            &settings(),
        )
        .unwrap();
        assert_eq!(hinted.api_base, "https://api.business.githubcopilot.com");
        assert_eq!(hinted.expires_at_ms, 1_764_000_000_000);
        let untrusted = parse_answer(
            r#"{"token":"t","expires_at":1,"endpoints":{"api":"https://evil.example.com"}}"#,
            &settings(),
        )
        .unwrap();
        assert_eq!(untrusted.api_base, DEFAULT_API_BASE);
        assert!(parse_answer(r#"{"token":"t"}"#, &settings()).is_err());
        assert!(parse_answer(r#"{"expires_at":1}"#, &settings()).is_err());
        assert!(parse_answer("<html>", &settings()).is_err());
    }

    #[test]
    fn refusals_are_auth_failures_that_say_what_to_do() {
        let refused = exchange_failure("u", 401, r#"{"message":"Bad credentials"}"#);
        assert_eq!(refused.class, "auth");
        assert!(refused.message.contains("Bad credentials"));
        assert!(refused.message.contains("COPILOT_GITHUB_TOKEN"));
        let denied = exchange_failure("u", 403, "not entitled");
        assert_eq!(denied.class, "auth");
        assert!(denied.message.contains("Copilot access"));
        assert_eq!(exchange_failure("u", 429, "").class, "rate_limit");
        assert_eq!(exchange_failure("u", 500, "").class, "unknown");
    }

    #[test]
    fn headers_carry_the_identity_and_the_initiator() {
        let mut configured = BTreeMap::new();
        configured.insert(
            "copilot-integration-id".to_owned(),
            "vscode-chat".to_owned(),
        );
        let headers = runtime_headers(
            &configured,
            &json!({"messages": [{"role": "user"}, {"role": "tool"}]}),
        );
        assert_eq!(headers["X-Initiator"], "agent");
        assert_eq!(headers["copilot-integration-id"], "vscode-chat");
        assert!(!headers.contains_key("Copilot-Integration-Id"));
        assert_eq!(headers["Editor-Version"], EDITOR_VERSION);
        let first = runtime_headers(&BTreeMap::new(), &json!({"messages": [{"role": "user"}]}));
        assert_eq!(first["X-Initiator"], "user");
        assert_eq!(first["Copilot-Integration-Id"], RUNTIME_INTEGRATION_ID);
    }

    #[test]
    fn tenants_get_their_own_hosts() {
        assert_eq!(domain(Some("Your-Org.ghe.com")), "your-org.ghe.com");
        assert_eq!(domain(Some("example.com")), "github.com");
        assert_eq!(
            fallback_base("your-org.ghe.com"),
            "https://copilot-api.your-org.ghe.com"
        );
        assert!(trusted_host(
            "copilot-api.your-org.ghe.com",
            Some("your-org.ghe.com")
        ));
        assert!(!trusted_host("copilot-api.your-org.ghe.com", None));
    }
}
