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

/// `channels.telegram`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Telegram {
    pub enabled: Option<bool>,
    pub bot_token: Option<SecretInput>,
    pub token_file: Option<String>,
    /// The Bot API root (a self-hosted Bot API server; tests).
    pub api_root: Option<String>,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<SecretInput>,
    pub webhook_path: Option<String>,
    pub text_chunk_limit: Option<usize>,
    pub block_streaming: Option<bool>,
    pub block_streaming_chunk: Option<BlockChunk>,
    #[serde(flatten)]
    pub access: Access,
    pub accounts: Option<BTreeMap<String, Value>>,
}

/// `channels.webhook`: clawback's custom channel (an HTTP webhook in, a
/// callback URL out, both HMAC-signed).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub enabled: Option<bool>,
    /// The HMAC key for both directions.
    pub secret: Option<SecretInput>,
    pub path: Option<String>,
    pub callback_url: Option<String>,
    pub text_chunk_limit: Option<usize>,
    pub block_streaming: Option<bool>,
    pub block_streaming_chunk: Option<BlockChunk>,
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

pub fn delivery_policy(config: &ConfigFile, channel: &str) -> Result<DeliveryPolicy, String> {
    let channels = config.channels.as_ref();
    let read = |section: &str, key: &str| {
        channels
            .and_then(|all| all.get(section))
            .and_then(|section| section.get(key))
            .cloned()
    };
    let (policy, from) = match read(channel, "deliveryPolicy") {
        Some(value) => (value, format!("channels.{channel}.deliveryPolicy")),
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

/// `channels.<id>` read as `T`; `Ok(None)` when absent.
pub fn section<T: for<'de> Deserialize<'de>>(
    config: &ConfigFile,
    channel: &str,
) -> Result<Option<T>, String> {
    let Some(value) = config.channels.as_ref().and_then(|all| all.get(channel)) else {
        return Ok(None);
    };
    serde_path_to_error::deserialize(value)
        .map(Some)
        .map_err(|error| format!("channels.{channel}.{}: {}", error.path(), error.inner()))
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
        let policy = |value| delivery_policy(&config(value), "telegram");
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
}
