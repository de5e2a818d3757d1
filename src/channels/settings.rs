//! What the config says about channels, read leniently.
//!
//! Why lenient: `channels.*` is OpenClaw's, with dozens of keys per channel
//! that clawback does not act on (rich messages, native commands, media
//! limits...). An OpenClaw config must load unchanged, so unknown keys are
//! kept in the file and ignored here; the keys clawback acts on are typed,
//! and a value that makes no sense (an allowlist policy with nobody on the
//! list) is a config issue shown by `channels.status` and refused at start,
//! never guessed around.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::config::model::{ConfigFile, SecretInput};

/// Who may talk to the bot: OpenClaw's `dmPolicy`, `allowFrom`,
/// `groupPolicy`, `groupAllowFrom` and `groups`, shared by every channel.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Access {
    pub dm_policy: Option<String>,
    #[serde(default)]
    pub allow_from: Vec<Value>,
    pub group_policy: Option<String>,
    pub group_allow_from: Option<Vec<Value>>,
    pub groups: Option<BTreeMap<String, GroupRule>>,
}

/// `groups.<chat id>` (or `"*"`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupRule {
    pub enabled: Option<bool>,
    pub require_mention: Option<bool>,
    pub group_policy: Option<String>,
    pub allow_from: Option<Vec<Value>>,
}

/// Replies streamed in blocks (`blockStreaming` and
/// `blockStreamingChunk`), as OpenClaw's block streaming.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockChunk {
    #[serde(default = "BlockChunk::min_default")]
    pub min_chars: usize,
    #[serde(default = "BlockChunk::max_default")]
    pub max_chars: usize,
    #[serde(default = "BlockChunk::idle_default")]
    pub idle_ms: u64,
}

impl BlockChunk {
    fn min_default() -> usize {
        800
    }
    fn max_default() -> usize {
        1200
    }
    fn idle_default() -> u64 {
        1000
    }
}

impl Default for BlockChunk {
    fn default() -> BlockChunk {
        BlockChunk {
            min_chars: BlockChunk::min_default(),
            max_chars: BlockChunk::max_default(),
            idle_ms: BlockChunk::idle_default(),
        }
    }
}

/// What every channel's section says about running it, apart from who may
/// talk to it: flattened into each channel's section.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Common {
    pub enabled: Option<bool>,
    /// Another API root (a self-hosted server, a proxy, tests).
    pub api_root: Option<String>,
    pub text_chunk_limit: Option<usize>,
    pub block_streaming: Option<bool>,
    pub block_streaming_chunk: Option<BlockChunk>,
    /// OpenClaw's `mediaMaxMb`: inbound files larger are noted, not
    /// downloaded.
    pub media_max_mb: Option<f64>,
}

impl Common {
    /// Block streaming's sizes, when it is on.
    pub fn blocks(&self) -> Option<BlockChunk> {
        self.block_streaming
            .unwrap_or(false)
            .then(|| self.block_streaming_chunk.clone().unwrap_or_default())
    }

    pub fn api_root(&self, default: &str) -> String {
        self.api_root
            .as_deref()
            .unwrap_or(default)
            .trim_end_matches('/')
            .to_owned()
    }

    /// `mediaMaxMb` in bytes.
    pub fn media_max_bytes(&self) -> u64 {
        super::media::max_bytes(self.media_max_mb)
    }

    /// `textChunkLimit`, within what the platform takes.
    pub fn text_limit(&self, platform_max: usize) -> usize {
        self.text_chunk_limit
            .unwrap_or(platform_max)
            .clamp(16, platform_max.max(16))
    }

    /// Settings issues shared by all channels, with the access ones.
    pub fn issues(&self, access: &Access, channel: &str) -> Vec<String> {
        super::policy::issues(access, channel)
    }
}

/// `channels.telegram`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Telegram {
    pub bot_token: Option<SecretInput>,
    pub token_file: Option<String>,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<SecretInput>,
    pub webhook_path: Option<String>,
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub access: Access,
}

/// `channels.webhook`: clawback's custom channel (an HTTP webhook in, a
/// callback URL out, both HMAC-signed).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// The HMAC key for both directions.
    pub secret: Option<SecretInput>,
    pub path: Option<String>,
    pub callback_url: Option<String>,
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub access: Access,
}

/// What happens to a reply before it is sent: clawback's
/// `channels.<id>.deliveryPolicy` (else `channels.defaults.deliveryPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryPolicy {
    /// Sent (the default).
    Allow,
    /// Withheld: recorded as failed, never sent (a shadow agent).
    Deny,
    /// Each message waits for an operator's decision (`exec.approval.*`,
    /// kind `delivery`); a deny or an expiry withholds it.
    RequireApproval { timeout: std::time::Duration },
}

/// How long a reply waits for its approval unless configured.
pub const DELIVERY_APPROVAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1800);

/// The policy for `account` of `channel`: its own section (which holds the
/// root's keys too), else `channels.defaults`.
pub fn delivery_policy(
    config: &ConfigFile,
    channel: &str,
    account: &AccountSection,
) -> Result<DeliveryPolicy, String> {
    let channels = config.channels.as_ref();
    let read = |section: &str, key: &str| {
        if section == channel {
            return account.value.get(key).cloned();
        }
        channels
            .and_then(|all| all.get(section))
            .and_then(|section| section.get(key))
            .cloned()
    };
    let (policy, from) = match read(channel, "deliveryPolicy") {
        Some(value) => (
            value,
            format!("{}.deliveryPolicy", account.config_path(channel)),
        ),
        None => match read("defaults", "deliveryPolicy") {
            Some(value) => (value, "channels.defaults.deliveryPolicy".to_owned()),
            None => return Ok(DeliveryPolicy::Allow),
        },
    };
    let timeout = match read(channel, "deliveryApprovalTimeoutSeconds")
        .or_else(|| read("defaults", "deliveryApprovalTimeoutSeconds"))
    {
        None => DELIVERY_APPROVAL_TIMEOUT,
        Some(value) => match value.as_u64() {
            Some(seconds @ 1..=604_800) => std::time::Duration::from_secs(seconds),
            _ => return Err(
                "deliveryApprovalTimeoutSeconds must be a whole number of seconds from 1 to 604800"
                    .to_owned(),
            ),
        },
    };
    match policy.as_str() {
        Some("allow") => Ok(DeliveryPolicy::Allow),
        Some("deny") => Ok(DeliveryPolicy::Deny),
        Some("require-approval") => Ok(DeliveryPolicy::RequireApproval { timeout }),
        _ => Err(format!(
            "{from} must be \"allow\", \"deny\" or \"require-approval\""
        )),
    }
}

/// `session.dmScope` / `session.groupScope`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionScopes {
    pub dm_scope: Option<String>,
    pub group_scope: Option<String>,
}

/// One of the top-level `bindings`: which agent answers what.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Binding {
    pub agent_id: String,
    #[serde(rename = "match", default)]
    pub matches: BindingMatch,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BindingMatch {
    pub channel: Option<String>,
    pub account_id: Option<String>,
    pub peer: Option<PeerMatch>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct PeerMatch {
    pub kind: Option<String>,
    pub id: Option<String>,
}

/// The account OpenClaw uses when none is named, and the one a channel's
/// root keys describe when it has no `accounts`.
pub const DEFAULT_ACCOUNT: &str = "default";

/// How many accounts one channel may list: a bound, not a tuning.
const ACCOUNTS_MAX: usize = 64;

/// One account of a channel: its id and its section, the channel's root
/// keys with the account's own laid over them.
#[derive(Clone, Debug)]
pub struct AccountSection {
    pub id: String,
    pub value: Value,
}

impl AccountSection {
    pub fn is_default(&self) -> bool {
        self.id == DEFAULT_ACCOUNT
    }

    /// The section read as `T`, errors named by the key that failed.
    pub fn parse<T: for<'de> Deserialize<'de>>(&self, channel: &str) -> Result<T, String> {
        serde_path_to_error::deserialize(&self.value).map_err(|error| {
            format!(
                "{}.{}: {}",
                self.config_path(channel),
                error.path(),
                error.inner()
            )
        })
    }

    /// Where this account is configured: `channels.telegram` or
    /// `channels.telegram.accounts.work`.
    pub fn config_path(&self, channel: &str) -> String {
        if self.is_default() {
            format!("channels.{channel}")
        } else {
            format!("channels.{channel}.accounts.{}", self.id)
        }
    }
}

/// A channel's accounts, as OpenClaw reads `channels.<id>.accounts`: without
/// that map (or with it empty) the root keys are the one account,
/// `default`; with it, each entry is an account that inherits the root's
/// keys and overrides them (the root is then only what they share, and runs
/// as `default` only if `accounts.default` says so). Ids are trimmed and
/// lowercased, as OpenClaw normalises them. Empty when the channel is not
/// configured.
pub fn accounts(config: &ConfigFile, channel: &str) -> Result<Vec<AccountSection>, String> {
    let Some(root) = config.channels.as_ref().and_then(|all| all.get(channel)) else {
        return Ok(Vec::new());
    };
    let Value::Object(root) = root else {
        return Err(format!("channels.{channel} must be an object"));
    };
    let mut shared = root.clone();
    let listed = match shared.remove("accounts") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(listed)) => listed.into_iter().collect(),
        Some(_) => {
            return Err(format!(
                "channels.{channel}.accounts must be an object of accounts by id"
            ));
        }
    };
    if listed.is_empty() {
        return Ok(vec![AccountSection {
            id: DEFAULT_ACCOUNT.to_owned(),
            value: Value::Object(shared),
        }]);
    }
    if listed.len() > ACCOUNTS_MAX {
        return Err(format!(
            "channels.{channel}.accounts lists {} accounts; at most {ACCOUNTS_MAX} are supported",
            listed.len()
        ));
    }
    let mut sections: Vec<AccountSection> = Vec::with_capacity(listed.len());
    for (key, own) in listed {
        let id = key.trim().to_lowercase();
        let valid = !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(format!(
                "channels.{channel}.accounts: {key:?} is not an account id (letters, digits, '-', '_', '.')"
            ));
        }
        if sections.iter().any(|section| section.id == id) {
            return Err(format!(
                "channels.{channel}.accounts names {id:?} twice (ids are case-insensitive)"
            ));
        }
        let Value::Object(own) = own else {
            return Err(format!(
                "channels.{channel}.accounts.{key} must be an object"
            ));
        };
        let mut value = shared.clone();
        value.extend(own);
        sections.push(AccountSection {
            id,
            value: Value::Object(value),
        });
    }
    Ok(sections)
}

pub fn scopes(config: &ConfigFile) -> SessionScopes {
    config
        .session
        .as_ref()
        .and_then(|session| serde_json::from_value(session.clone()).ok())
        .unwrap_or_default()
}

/// The route bindings (ACP bindings and unreadable entries are not routes).
pub fn bindings(config: &ConfigFile) -> Vec<Binding> {
    let Some(Value::Array(entries)) = &config.bindings else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|entry| serde_json::from_value::<Binding>(entry.clone()).ok())
        .filter(|binding| binding.kind.as_deref().is_none_or(|kind| kind == "route"))
        .collect()
}

/// An allowlist entry as text: numbers and strings alike, a channel prefix
/// (`telegram:`, `tg:`) removed, lowercased.
pub fn allow_entry(entry: &Value, prefixes: &[&str]) -> Option<String> {
    let text = match entry {
        Value::String(text) => text.trim().to_owned(),
        Value::Number(number) => number.to_string(),
        _ => return None,
    };
    let lower = text.to_lowercase();
    let stripped = prefixes
        .iter()
        .find_map(|prefix| lower.strip_prefix(prefix))
        .unwrap_or(&lower);
    (!stripped.is_empty()).then(|| stripped.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(channels: serde_json::Value) -> ConfigFile {
        ConfigFile {
            channels: Some(channels),
            ..ConfigFile::default()
        }
    }

    #[test]
    fn delivery_policies_come_from_the_channel_then_the_defaults() {
        let policy = |value: serde_json::Value| {
            let config = config(value);
            let account = accounts(&config, "telegram")
                .expect("accounts")
                .into_iter()
                .next()
                .unwrap_or(AccountSection {
                    id: DEFAULT_ACCOUNT.to_owned(),
                    value: serde_json::json!({}),
                });
            delivery_policy(&config, "telegram", &account)
        };
        assert_eq!(policy(serde_json::json!({})), Ok(DeliveryPolicy::Allow));
        assert_eq!(
            policy(serde_json::json!({"telegram": {"deliveryPolicy": "deny"}})),
            Ok(DeliveryPolicy::Deny)
        );
        assert_eq!(
            policy(
                serde_json::json!({"defaults": {"deliveryPolicy": "require-approval",
                                                   "deliveryApprovalTimeoutSeconds": 60}})
            ),
            Ok(DeliveryPolicy::RequireApproval {
                timeout: std::time::Duration::from_secs(60)
            })
        );
        assert!(policy(serde_json::json!({"telegram": {"deliveryPolicy": "maybe"}})).is_err());
        assert!(
            policy(
                serde_json::json!({"telegram": {"deliveryPolicy": "require-approval",
                                                   "deliveryApprovalTimeoutSeconds": 0}})
            )
            .is_err()
        );
    }

    #[test]
    fn accounts_inherit_the_root_and_override_it() {
        let ids = |value| -> Vec<(String, serde_json::Value)> {
            accounts(&config(value), "telegram")
                .expect("accounts")
                .into_iter()
                .map(|section| (section.id, section.value))
                .collect()
        };
        assert!(ids(serde_json::json!({})).is_empty());
        let single = ids(serde_json::json!({"telegram": {"botToken": "1:a"}}));
        assert_eq!(
            single,
            vec![("default".to_owned(), serde_json::json!({"botToken": "1:a"}))]
        );
        let several = ids(serde_json::json!({"telegram": {
            "dmPolicy": "open", "botToken": "1:a",
            "accounts": {"Work": {"botToken": "2:b"}, "default": {}}}}));
        assert_eq!(
            several,
            vec![
                (
                    "work".to_owned(),
                    serde_json::json!({"dmPolicy": "open", "botToken": "2:b"})
                ),
                (
                    "default".to_owned(),
                    serde_json::json!({"dmPolicy": "open", "botToken": "1:a"})
                ),
            ]
        );
        let refused = |value| accounts(&config(value), "telegram").unwrap_err();
        assert!(refused(serde_json::json!({"telegram": {"accounts": []}})).contains("object"));
        assert!(
            refused(serde_json::json!({"telegram": {"accounts": {"a b": {}}}}))
                .contains("not an account id")
        );
        assert!(
            refused(serde_json::json!({"telegram": {"accounts": {"A": {}, "a": {}}}}))
                .contains("twice")
        );
        assert!(
            refused(serde_json::json!({"telegram": {"accounts": {"a": 1}}})).contains("object")
        );
    }
}
