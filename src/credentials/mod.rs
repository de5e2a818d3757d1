//! Auth profiles: named provider credentials kept encrypted at rest, and
//! the order in which a run tries them.
//!
//! - `sealed`: the file's AES-256-GCM encryption and its key;
//! - `aws`: AWS keys from the environment and `~/.aws` (Bedrock's chain);
//! - `oauth`: which OAuth sign-ins clawback can use, and the refresh of
//!   Anthropic's (single flight per profile, written back here);
//! - this module: the profiles (OpenClaw's `auth-profiles.json` shapes:
//!   `api_key`, `token`, `oauth`), the store, and [`for_provider`], the
//!   credentials for one provider in the order a run tries them.
//!
//! Why profiles beside `models.providers.<id>.apiKey`: several keys for
//! one provider (a personal and a work key, a second key to fall over to
//! when the first is rate limited), kept out of the config file people
//! share and edit. A credential never enters the log: runs record which
//! profile they used (its id), never what it holds.

pub mod aws;
pub mod oauth;
pub mod sealed;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// One credential, as OpenClaw's auth profile store shapes it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Credential {
    ApiKey {
        provider: String,
        key: String,
    },
    Token {
        provider: String,
        token: String,
        /// Unix ms after which the token is not sent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires: Option<i64>,
    },
    /// A signed-in plan's access token (Claude Pro/Max; GitHub Copilot,
    /// whose `refresh` is the GitHub token). Anthropic's is refreshed
    /// before it expires (`oauth`); others say why they cannot be used.
    Oauth {
        provider: String,
        access: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refresh: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires: Option<i64>,
    },
}

impl Credential {
    pub fn provider(&self) -> &str {
        match self {
            Credential::ApiKey { provider, .. }
            | Credential::Token { provider, .. }
            | Credential::Oauth { provider, .. } => provider,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Credential::ApiKey { .. } => "api_key",
            Credential::Token { .. } => "token",
            Credential::Oauth { .. } => "oauth",
        }
    }

    /// What a run may use of profile `id` now, or why not.
    fn secret(&self, id: &str, now_ms: i64) -> Result<Secret, String> {
        match self {
            Credential::ApiKey { key, .. } => Ok(Secret::Key(key.clone())),
            Credential::Token { token, expires, .. } => match expires {
                Some(expires) if *expires <= now_ms => Err("the token has expired".to_owned()),
                _ => Ok(Secret::Key(token.clone())),
            },
            Credential::Oauth {
                provider, refresh, ..
            } => match oauth::usable(provider) {
                // Fresh or not: the refresher decides at call time, when
                // it can also refresh.
                oauth::Usable::Refreshable => Ok(Secret::OAuth {
                    profile_id: id.to_owned(),
                }),
                oauth::Usable::GithubToken => match refresh {
                    Some(github_token) if !github_token.trim().is_empty() => {
                        Ok(Secret::Key(github_token.trim().to_owned()))
                    }
                    _ => {
                        Err("the sign-in holds no GitHub token (refresh); sign in again".to_owned())
                    }
                },
                oauth::Usable::No(why) => Err(why),
            },
        }
    }
}

/// The profiles by id (`provider:name`, as OpenClaw names them).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Profiles {
    #[serde(default)]
    pub version: u8,
    pub profiles: BTreeMap<String, Credential>,
}

/// Where the profiles and their key live.
pub struct Store {
    file: PathBuf,
    key: PathBuf,
}

impl Store {
    pub fn new(file: PathBuf, key: PathBuf) -> Store {
        Store { file, key }
    }

    /// The profiles; none when the file does not exist yet.
    pub fn load(&self) -> anyhow::Result<Profiles> {
        let bytes = match std::fs::read(&self.file) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Profiles {
                    version: 1,
                    profiles: BTreeMap::new(),
                });
            }
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", self.file.display()));
            }
        };
        let key = sealed::key(&self.key, false)?;
        let plain = sealed::open(&key, &bytes).with_context(|| self.file.display().to_string())?;
        serde_json::from_slice(&plain)
            .with_context(|| format!("{} holds no profiles", self.file.display()))
    }

    pub fn save(&self, profiles: &Profiles) -> anyhow::Result<()> {
        let key = sealed::key(&self.key, true)?;
        let plain = serde_json::to_vec(profiles)?;
        crate::private_file::write(&self.file, &sealed::seal(&key, &plain)?)
    }

    pub fn path(&self) -> &Path {
        &self.file
    }
}

/// A credential a run may use for a provider: where it came from (shown
/// and recorded; never the secret) and the secret.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// `config`, `profile:<id>`, `env:<NAME>`, `aws-env` or
    /// `aws-profile:<name>`.
    pub source: String,
    pub secret: Secret,
}

/// What a candidate holds.
#[derive(Clone, Debug)]
pub enum Secret {
    /// A key or token sent as the provider takes it.
    Key(String),
    /// AWS keys: requests are signed (SigV4), the keys are not sent.
    Aws(aws::Keys),
    /// An OAuth profile whose access token is fetched (and refreshed) from
    /// the store right before each call, never held longer.
    OAuth { profile_id: String },
}

/// The environment variables OpenClaw reads for a provider's key.
fn env_names(provider: &str) -> Vec<String> {
    // Copilot's only automatic variable (OpenClaw: GH_TOKEN and
    // GITHUB_TOKEN belong to other GitHub tools and do not enable it).
    if provider == "github-copilot" {
        return vec!["COPILOT_GITHUB_TOKEN".to_owned()];
    }
    let known: &[&str] = match provider {
        "openai" => &["OPENAI_API_KEY"],
        "anthropic" => &["ANTHROPIC_API_KEY"],
        "google" | "gemini" => &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
        "openrouter" => &["OPENROUTER_API_KEY"],
        "groq" => &["GROQ_API_KEY"],
        "mistral" => &["MISTRAL_API_KEY"],
        "xai" => &["XAI_API_KEY"],
        "amazon-bedrock" | "bedrock" => &["AWS_BEARER_TOKEN_BEDROCK"],
        _ => &[],
    };
    let generic = format!(
        "{}_API_KEY",
        provider
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            })
            .collect::<String>()
    );
    let mut names: Vec<String> = known.iter().map(|name| (*name).to_owned()).collect();
    if !names.contains(&generic) {
        names.push(generic);
    }
    names
}

/// What decides the order, besides the profiles themselves.
pub struct Order<'a> {
    /// The profile a session or request names: only it is used.
    pub explicit: Option<&'a str>,
    /// `models.providers.<id>.apiKey`, resolved.
    pub provider_key: Option<String>,
    /// `auth.order.<provider>`: profile ids to try first, in this order.
    pub configured: &'a [String],
    /// The AWS chain's keys (for Bedrock), tried after the provider's key.
    pub aws: Option<(String, aws::Keys)>,
    /// Environment variables read last besides the provider's own
    /// (`AWS_BEARER_TOKEN_BEDROCK` for Bedrock, whatever its provider id).
    pub env_extra: &'a [&'a str],
}

/// The credentials for `provider`, in the order to try them: the explicit
/// profile alone; else the provider's configured key, the AWS chain's keys
/// (Bedrock), the profiles in the configured order then the provider's
/// other profiles by id, then the environment (for `github-copilot`,
/// `COPILOT_GITHUB_TOKEN` comes before the profiles, as in OpenClaw).
/// Skipped profiles (expired, or a sign-in clawback cannot use) are
/// reported in `skipped`, with why.
pub fn for_provider(
    provider: &str,
    profiles: &Profiles,
    order: &Order<'_>,
    now_ms: i64,
    skipped: &mut Vec<String>,
) -> Result<Vec<Candidate>, String> {
    let mut out = Vec::new();
    let mut take = |id: &str, credential: &Credential, out: &mut Vec<Candidate>| match credential
        .secret(id, now_ms)
    {
        Ok(secret) => out.push(Candidate {
            source: format!("profile:{id}"),
            secret,
        }),
        Err(why) => skipped.push(format!("auth profile {id}: {why}")),
    };
    if let Some(id) = order.explicit {
        let credential = profiles.profiles.get(id).ok_or_else(|| {
            format!("the auth profile \"{id}\" does not exist (clawback auth list)")
        })?;
        if credential.provider() != provider {
            return Err(format!(
                "the auth profile \"{id}\" is for {}, not {provider}",
                credential.provider()
            ));
        }
        take(id, credential, &mut out);
        return Ok(out);
    }
    if let Some(key) = &order.provider_key {
        out.push(Candidate {
            source: "config".to_owned(),
            secret: Secret::Key(key.clone()),
        });
    }
    if let Some((source, keys)) = &order.aws {
        out.push(Candidate {
            source: source.clone(),
            secret: Secret::Aws(keys.clone()),
        });
    }
    let env = || {
        let mut names = env_names(provider);
        for extra in order.env_extra {
            if !names.iter().any(|name| name == extra) {
                names.push((*extra).to_owned());
            }
        }
        names.into_iter().filter_map(|name| {
            std::env::var(&name)
                .ok()
                .filter(|secret| !secret.trim().is_empty())
                .map(|secret| Candidate {
                    source: format!("env:{name}"),
                    secret: Secret::Key(secret.trim().to_owned()),
                })
        })
    };
    // OpenClaw lets an unscoped Copilot lookup use COPILOT_GITHUB_TOKEN
    // before the first saved profile; other providers read the
    // environment last.
    let env_first = provider == "github-copilot";
    if env_first {
        out.extend(env());
    }
    let mut seen = std::collections::BTreeSet::new();
    for id in order.configured {
        if let Some(credential) = profiles.profiles.get(id)
            && credential.provider() == provider
            && seen.insert(id.clone())
        {
            take(id, credential, &mut out);
        }
    }
    for (id, credential) in &profiles.profiles {
        if credential.provider() == provider && seen.insert(id.clone()) {
            take(id, credential, &mut out);
        }
    }
    if !env_first {
        out.extend(env());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profiles() -> Profiles {
        let key = |provider: &str, key: &str| Credential::ApiKey {
            provider: provider.to_owned(),
            key: key.to_owned(),
        };
        let mut profiles = BTreeMap::new();
        profiles.insert("openai:a".to_owned(), key("openai", "sk-a"));
        profiles.insert("openai:b".to_owned(), key("openai", "sk-b"));
        profiles.insert("anthropic:x".to_owned(), key("anthropic", "sk-x"));
        profiles.insert(
            "openai:old".to_owned(),
            Credential::Token {
                provider: "openai".to_owned(),
                token: "t".to_owned(),
                expires: Some(10),
            },
        );
        Profiles {
            version: 1,
            profiles,
        }
    }

    fn sources(candidates: &[Candidate]) -> Vec<&str> {
        candidates.iter().map(|c| c.source.as_str()).collect()
    }

    #[test]
    fn the_order_is_explicit_then_config_then_configured_then_the_rest() {
        let profiles = profiles();
        let configured = vec!["openai:b".to_owned(), "anthropic:x".to_owned()];
        let order = Order {
            explicit: None,
            provider_key: Some("sk-config".to_owned()),
            configured: &configured,
            aws: None,
            env_extra: &[],
        };
        let mut skipped = Vec::new();
        let found = for_provider("openai", &profiles, &order, 100, &mut skipped).unwrap();
        assert_eq!(
            sources(&found)[..3],
            ["config", "profile:openai:b", "profile:openai:a"]
        );
        assert_eq!(skipped, ["auth profile openai:old: the token has expired"]);
        let explicit = Order {
            explicit: Some("openai:a"),
            provider_key: Some("sk-config".to_owned()),
            configured: &configured,
            aws: None,
            env_extra: &[],
        };
        let found = for_provider("openai", &profiles, &explicit, 100, &mut skipped).unwrap();
        assert_eq!(sources(&found), ["profile:openai:a"]);
        let wrong = Order {
            explicit: Some("anthropic:x"),
            provider_key: None,
            configured: &[],
            aws: None,
            env_extra: &[],
        };
        assert!(for_provider("openai", &profiles, &wrong, 100, &mut skipped).is_err());
    }

    #[test]
    fn oauth_profiles_are_fetched_at_call_time_or_say_why_they_cannot_be_used() {
        let oauth = |provider: &str, refresh: Option<&str>| Credential::Oauth {
            provider: provider.to_owned(),
            access: "at".to_owned(),
            refresh: refresh.map(str::to_owned),
            expires: Some(1),
        };
        let mut profiles = profiles();
        profiles
            .profiles
            .insert("anthropic:max".to_owned(), oauth("anthropic", Some("rt")));
        profiles.profiles.insert(
            "openai-codex:me".to_owned(),
            oauth("openai-codex", Some("rt")),
        );
        profiles.profiles.insert(
            "github-copilot:gh".to_owned(),
            oauth("github-copilot", Some("ghu_1")),
        );
        let order = |explicit| Order {
            explicit,
            provider_key: None,
            configured: &[],
            aws: None,
            env_extra: &[],
        };
        let mut skipped = Vec::new();
        // Expired, yet a candidate: the refresher renews it before the call.
        let found = for_provider("anthropic", &profiles, &order(None), 100, &mut skipped).unwrap();
        assert!(
            matches!(&found[0].secret, Secret::OAuth { profile_id } if profile_id == "anthropic:max")
        );
        // Copilot's sign-in is its GitHub token.
        let found =
            for_provider("github-copilot", &profiles, &order(None), 100, &mut skipped).unwrap();
        assert!(
            found
                .iter()
                .any(|c| matches!(&c.secret, Secret::Key(k) if k == "ghu_1"))
        );
        // ChatGPT's: not a silent skip, a reason naming why.
        let found = for_provider(
            "openai-codex",
            &profiles,
            &order(Some("openai-codex:me")),
            100,
            &mut skipped,
        )
        .unwrap();
        assert!(found.is_empty());
        assert!(
            skipped.iter().any(|why| why.starts_with(
                "auth profile openai-codex:me: an OAuth sign-in for openai-codex cannot be used"
            )),
            "{skipped:?}"
        );
    }

    #[test]
    fn the_aws_chain_comes_after_the_provider_key_and_before_profiles() {
        let mut profiles = profiles();
        profiles.profiles.insert(
            "bedrock:key".to_owned(),
            Credential::ApiKey {
                provider: "bedrock".to_owned(),
                key: "bedrock-api-key".to_owned(),
            },
        );
        let keys = aws::Keys {
            access_key_id: "AKID".to_owned(),
            secret_access_key: "s".to_owned(),
            session_token: None,
        };
        let order = Order {
            explicit: None,
            provider_key: Some("from-config".to_owned()),
            configured: &[],
            aws: Some(("aws-env".to_owned(), keys.clone())),
            env_extra: &["AWS_BEARER_TOKEN_BEDROCK"],
        };
        let found = for_provider("bedrock", &profiles, &order, 100, &mut Vec::new()).unwrap();
        assert_eq!(
            sources(&found)[..3],
            ["config", "aws-env", "profile:bedrock:key"]
        );
        assert!(matches!(&found[1].secret, Secret::Aws(k) if *k == keys));
    }

    #[test]
    fn the_store_round_trips_encrypted_and_imports_openclaw_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("p.enc"), dir.path().join("p.key"));
        assert!(store.load().unwrap().profiles.is_empty());
        store.save(&profiles()).unwrap();
        assert_eq!(store.load().unwrap(), profiles());
        let raw = std::fs::read(store.path()).unwrap();
        assert!(!raw.windows(4).any(|w| w == b"sk-a"));
        // OpenClaw's own file parses as the same shapes.
        let openclaw: Profiles = serde_json::from_str(
            r#"{"version":1,"profiles":{"anthropic:default":{"type":"api_key","provider":"anthropic","key":"sk-ant"},
               "anthropic:max":{"type":"oauth","provider":"anthropic","access":"at","refresh":"rt","expires":1}}}"#,
        )
        .unwrap();
        assert_eq!(openclaw.profiles["anthropic:max"].kind(), "oauth");
    }
}
