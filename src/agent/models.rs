//! The models a run may use: the chain (the request's or session's model, or
//! the agent's, then its fallbacks) resolved from the config to endpoints,
//! and what a call costs.

use clawback_events::event::Usage;

use super::provider::Api;
use crate::config::model::ConfigFile;
use crate::gateway::Gateway;

/// A model a run may use with one credential, resolved from the config and
/// the auth profiles.
#[derive(Clone)]
pub struct Resolved {
    pub api: Api,
    pub(super) max_tokens: Option<u64>,
    /// The model reasons (its definition says `reasoning: true`): only then
    /// is a thinking level sent.
    pub(super) reasoning: bool,
    pub(super) provider: String,
    pub(super) model: String,
    pub(super) base_url: String,
    pub(super) api_key: Option<String>,
    /// Where the key came from (`config`, `profile:<id>`, `env:<NAME>`,
    /// `none`): cooldowns are per credential, and it is what may be shown.
    pub(super) credential: String,
    /// AWS keys and region to sign with (Bedrock with the AWS chain).
    pub(super) aws: Option<crate::credentials::aws::Signing>,
    pub(super) headers: std::collections::BTreeMap<String, String>,
    pub(super) cost: Option<crate::config::model::ModelCost>,
    /// The model's context window in tokens, when its definition says.
    pub(super) context_window: Option<u64>,
    /// GitHub Copilot: the credential is a GitHub token to exchange first
    /// (`copilot`); `base_url` is then empty unless configured.
    pub(super) copilot: Option<super::copilot::Settings>,
    /// An Anthropic OAuth profile: its access token is read (and refreshed)
    /// right before each call (`oauth`), so `api_key` is `None`.
    pub(super) oauth: Option<OAuthProfile>,
}

/// An OAuth profile a call authenticates with, and where it refreshes.
#[derive(Clone)]
pub struct OAuthProfile {
    pub profile_id: String,
    /// The token endpoint: Anthropic's, or
    /// `models.providers.<id>.params.oauthTokenUrl` (a proxy, a test).
    pub token_url: String,
}

impl Resolved {
    /// `provider/model`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.provider, self.model)
    }

    pub fn provider(&self) -> &str {
        &self.provider
    }

    pub fn model_id(&self) -> &str {
        &self.model
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn api_key(&self) -> Option<&str> {
        self.api_key.as_deref()
    }

    pub fn aws(&self) -> Option<&crate::credentials::aws::Signing> {
        self.aws.as_ref()
    }

    pub fn headers(&self) -> &std::collections::BTreeMap<String, String> {
        &self.headers
    }

    pub fn copilot(&self) -> Option<&super::copilot::Settings> {
        self.copilot.as_ref()
    }

    pub fn oauth(&self) -> Option<&OAuthProfile> {
        self.oauth.as_ref()
    }

    /// The call authenticates as a Claude Pro/Max sign-in: an OAuth
    /// profile, or a `sk-ant-oat` setup token (OpenClaw's `token` profile
    /// from `claude setup-token`, which pi-ai recognises by that prefix).
    /// Such calls carry Claude Code's identity (`anthropic::claude_oauth`).
    pub fn claude_oauth(&self) -> bool {
        self.api == Api::AnthropicMessages
            && (self.oauth.is_some()
                || self
                    .api_key
                    .as_deref()
                    .is_some_and(|key| key.starts_with("sk-ant-oat")))
    }

    /// What a rate limit cools down: this provider with this credential
    /// (another key of the same provider may still have quota).
    pub fn cooldown_key(&self) -> String {
        format!("{}|{}", self.provider, self.credential)
    }
}

/// The models for this run, in the order to try them: the override (or the
/// agent's model, or the default) and then the configured fallbacks, each
/// with its provider's endpoint. A clear message when the first is not
/// usable; a misconfigured fallback is skipped with a warning.
pub fn resolve(
    config: &ConfigFile,
    agent_id: &str,
    model_override: Option<&str>,
    gateway: &Gateway,
) -> Result<Vec<Resolved>, String> {
    let path = gateway.config_file.path().display().to_string();
    let configured = config.agent_model(agent_id);
    let primary = model_override
        .map(str::to_owned)
        .or_else(|| configured.map(|model| model.primary().to_owned()));
    let Some(primary) = primary else {
        return Err(format!(
            "No model is configured. Set agents.defaults.model (\"provider/model\") and the \
             provider under models.providers in {path}, then retry."
        ));
    };
    let fallbacks: Vec<String> = match configured {
        Some(crate::config::model::ModelChoice::Chain { fallbacks, .. }) => fallbacks.clone(),
        _ => Vec::new(),
    };
    let profiles = gateway
        .credentials()
        .load()
        .map_err(|error| format!("the auth profiles cannot be read: {error:#}"))?;
    let mut chain = resolve_one(config, &primary, &path, &profiles)?;
    for fallback in fallbacks {
        if chain.iter().any(|resolved| resolved.name() == fallback) {
            continue;
        }
        match resolve_one(config, &fallback, &path, &profiles) {
            Ok(resolved) => chain.extend(resolved),
            Err(message) => tracing::warn!(
                subsystem = "agent",
                "the fallback model {fallback} is skipped: {message}"
            ),
        }
    }
    Ok(chain)
}

/// One model of the chain, once per credential to try (`model@profile`
/// names the one profile to use).
fn resolve_one(
    config: &ConfigFile,
    choice: &str,
    path: &str,
    profiles: &crate::credentials::Profiles,
) -> Result<Vec<Resolved>, String> {
    let (choice, explicit) = match choice.rsplit_once('@') {
        Some((model, profile)) if !profile.is_empty() => (model, Some(profile)),
        _ => (choice, None),
    };
    let Some((provider_id, model_id)) = choice.split_once('/') else {
        return Err(format!(
            "The model \"{choice}\" is not of the form \"provider/model\" ({path})."
        ));
    };
    let provider = config
        .models
        .as_ref()
        .and_then(|models| models.providers.get(provider_id))
        .ok_or_else(|| {
            format!(
                "No provider \"{provider_id}\" is configured: add models.providers.{provider_id} \
                 with its baseUrl (and apiKey) in {path}."
            )
        })?;
    let definition = provider.models.iter().find(|model| model.id == model_id);
    let api_name = definition
        .and_then(|model| model.api.as_deref())
        .or(provider.api.as_deref())
        .unwrap_or("openai-completions");
    let Some(api) = Api::parse(api_name) else {
        return Err(format!(
            "models.providers.{provider_id} speaks \"{api_name}\", which clawback does not speak \
             yet; \"openai-completions\" (any OpenAI-compatible server), \"openai-responses\", \
             \"anthropic-messages\", \"google-generative-ai\", \"ollama\" and \
             \"bedrock-converse-stream\" work today."
        ));
    };
    // Copilot finds its endpoint through the token exchange; a configured
    // baseUrl overrides it.
    let copilot = (provider_id == super::copilot::PROVIDER)
        .then(|| super::copilot::Settings::from_config(config));
    let env = |name: &str| std::env::var(name).ok();
    // Bedrock only: the AWS chain's environment and files.
    let aws_sources = (api == Api::Bedrock).then(|| crate::credentials::aws::local_sources(&env));
    // The region signs the request and names the default endpoint.
    let region = aws_sources
        .as_ref()
        .map(|sources| bedrock_region(provider, sources));
    let base_url = match (&provider.base_url, &copilot, &region) {
        (Some(base_url), _, _) => base_url.clone(),
        (None, Some(_), _) => String::new(),
        (None, None, Some(region)) => format!("https://bedrock-runtime.{region}.amazonaws.com"),
        (None, None, None) => {
            return Err(format!(
                "models.providers.{provider_id}.baseUrl is not set in {path}."
            ));
        }
    };
    let mut skipped = Vec::new();
    let aws_chain = match aws_sources.as_ref().map(crate::credentials::aws::chain) {
        Some(Ok(found)) => found,
        Some(Err(why)) => {
            skipped.push(why);
            None
        }
        None => None,
    };
    let provider_key = match &provider.api_key {
        None => None,
        Some(key) => Some(
            key.resolve()
                .map_err(|error| format!("models.providers.{provider_id}.apiKey: {error}"))?,
        ),
    };
    let token_url = provider
        .other
        .get("params")
        .and_then(|params| params.get("oauthTokenUrl"))
        .and_then(|url| url.as_str())
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .unwrap_or(crate::credentials::oauth::ANTHROPIC_TOKEN_URL)
        .to_owned();
    let configured = config.auth_order(provider_id);
    let order = crate::credentials::Order {
        explicit,
        provider_key,
        configured: &configured,
        aws: aws_chain,
        env_extra: if api == Api::Bedrock {
            &["AWS_BEARER_TOKEN_BEDROCK"]
        } else {
            &[]
        },
    };
    let mut candidates = crate::credentials::for_provider(
        provider_id,
        profiles,
        &order,
        crate::gateway::protocol::methods::now_ms(),
        &mut skipped,
    )?;
    // An Anthropic sign-in authenticates the Messages API only.
    candidates.retain(|candidate| {
        let oauth = matches!(candidate.secret, crate::credentials::Secret::OAuth { .. });
        if oauth && api != Api::AnthropicMessages {
            skipped.push(format!(
                "{}: an Anthropic sign-in works only with api \"anthropic-messages\", not \"{api_name}\"",
                candidate.source
            ));
        }
        !oauth || api == Api::AnthropicMessages
    });
    for why in &skipped {
        tracing::warn!(subsystem = "agent", "{why}");
    }
    if candidates.is_empty() && !skipped.is_empty() {
        return Err(skipped.join("; "));
    }
    if candidates.is_empty() && api == Api::Bedrock {
        return Err(format!(
            "models.providers.{provider_id}: {}.",
            crate::credentials::aws::NOT_FOUND
        ));
    }
    let base = Resolved {
        api,
        max_tokens: definition.and_then(|model| model.max_tokens),
        reasoning: definition
            .and_then(|model| model.reasoning)
            .unwrap_or(false),
        provider: provider_id.to_owned(),
        model: model_id.to_owned(),
        base_url,
        api_key: None,
        aws: None,
        credential: "none".to_owned(),
        headers: provider.headers.clone(),
        cost: definition.and_then(|model| model.cost.clone()),
        context_window: definition.and_then(|model| model.context_window),
        copilot,
        oauth: None,
    };
    if candidates.is_empty() && base.copilot.is_some() {
        return Err(super::copilot::missing_token_message());
    }
    // A provider without a key (a local server) is tried once, keyless.
    if candidates.is_empty() {
        return Ok(vec![base]);
    }
    Ok(candidates
        .into_iter()
        .map(|candidate| match candidate.secret {
            crate::credentials::Secret::Key(key) => Resolved {
                api_key: Some(key),
                credential: candidate.source,
                ..base.clone()
            },
            crate::credentials::Secret::Aws(keys) => Resolved {
                aws: Some(crate::credentials::aws::Signing {
                    keys,
                    region: region.clone().unwrap_or_default(),
                }),
                credential: candidate.source,
                ..base.clone()
            },
            crate::credentials::Secret::OAuth { profile_id } => Resolved {
                oauth: Some(OAuthProfile {
                    profile_id,
                    token_url: token_url.clone(),
                }),
                credential: candidate.source,
                ..base.clone()
            },
        })
        .collect())
}

/// Bedrock's region: the provider's `region`, the standard endpoint's
/// host, `AWS_REGION` / `AWS_DEFAULT_REGION` / the profile's, else
/// `us-east-1` (as OpenClaw).
fn bedrock_region(
    provider: &crate::config::model::ProviderConfig,
    sources: &crate::credentials::aws::Sources<'_>,
) -> String {
    provider
        .other
        .get("region")
        .and_then(|region| region.as_str())
        .map(str::to_owned)
        .filter(|region| !region.trim().is_empty())
        .or_else(|| {
            provider
                .base_url
                .as_deref()
                .and_then(crate::credentials::aws::region_of_endpoint)
        })
        .or_else(|| crate::credentials::aws::region(sources))
        .unwrap_or_else(|| "us-east-1".to_owned())
}

/// Prices are per million tokens, so a token costs `price` micro-dollars.
pub fn cost_micro_usd(cost: Option<&crate::config::model::ModelCost>, usage: &Usage) -> u64 {
    let Some(cost) = cost else { return 0 };
    let total = usage.input_tokens as f64 * cost.input
        + usage.output_tokens as f64 * cost.output
        + usage.cache_read_tokens as f64 * cost.cache_read
        + usage.cache_write_tokens as f64 * cost.cache_write;
    total.max(0.0).round() as u64
}
