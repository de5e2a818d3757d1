//! `channels.matrix`, read leniently, and turned into what the adapter and
//! the shared policy act on.
//!
//! Why a module of its own: OpenClaw's Matrix keys differ from the other
//! channels' (`dm.policy` and `dm.allowFrom` rather than `dmPolicy` and
//! `allowFrom`, `groups.<room>.users` and `autoReply`, `autoJoin` for
//! invites), so they are mapped onto the shared [`Access`] here, in one
//! place, and the policy code stays the same for every channel.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::channels::settings::{Access, BlockChunk, GroupRule};
use crate::config::model::SecretInput;

/// `channels.matrix`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Section {
    pub enabled: Option<bool>,
    pub homeserver: Option<String>,
    pub user_id: Option<String>,
    pub access_token: Option<SecretInput>,
    pub password: Option<SecretInput>,
    pub device_id: Option<String>,
    pub device_name: Option<String>,
    pub network: Option<Network>,
    pub dm: Option<Dm>,
    /// Older spellings kept by some configs; `dm.*` wins.
    pub dm_policy: Option<String>,
    pub allow_from: Option<Vec<Value>>,
    pub group_policy: Option<String>,
    pub group_allow_from: Option<Vec<Value>>,
    pub groups: Option<BTreeMap<String, Room>>,
    /// The legacy name of `groups`.
    pub rooms: Option<BTreeMap<String, Room>>,
    pub auto_join: Option<String>,
    pub auto_join_allowlist: Option<Vec<String>>,
    pub encryption: Option<bool>,
    pub text_chunk_limit: Option<usize>,
    pub block_streaming: Option<bool>,
    pub block_streaming_chunk: Option<BlockChunk>,
    /// OpenClaw's `mediaMaxMb` (inbound files larger are noted, not
    /// downloaded).
    pub media_max_mb: Option<f64>,
    pub streaming: Option<Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    pub dangerously_allow_private_network: Option<bool>,
}

/// `channels.matrix.dm`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dm {
    pub enabled: Option<bool>,
    pub policy: Option<String>,
    pub allow_from: Option<Vec<Value>>,
    pub session_scope: Option<String>,
}

/// `channels.matrix.groups.<room id>` (or `"*"`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Room {
    pub enabled: Option<bool>,
    pub require_mention: Option<bool>,
    /// `true` answers without a mention; `false` forces mentions back on.
    pub auto_reply: Option<bool>,
    pub group_policy: Option<String>,
    /// The room's sender allowlist.
    pub users: Option<Vec<Value>>,
    pub allow_from: Option<Vec<Value>>,
}

/// Which invites the bot accepts (`autoJoin`, default `off`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AutoJoin {
    Off,
    Always,
    /// Room ids, `#alias:server` (resolved on the homeserver), or `*`.
    Allowlist(Vec<String>),
}

impl Section {
    /// The shared policy's view of the Matrix keys.
    pub fn access(&self) -> Access {
        let dm = self.dm.clone().unwrap_or_default();
        let dm_policy = if dm.enabled == Some(false) {
            Some("disabled".to_owned())
        } else {
            dm.policy.clone().or_else(|| self.dm_policy.clone())
        };
        let groups = self.groups.as_ref().or(self.rooms.as_ref()).map(|rooms| {
            rooms
                .iter()
                .map(|(room, rule)| {
                    let require_mention = match rule.auto_reply {
                        Some(auto_reply) => Some(!auto_reply),
                        None => rule.require_mention,
                    };
                    let rule = GroupRule {
                        enabled: rule.enabled,
                        require_mention,
                        group_policy: rule.group_policy.clone(),
                        allow_from: rule.users.clone().or_else(|| rule.allow_from.clone()),
                    };
                    (room.clone(), rule)
                })
                .collect()
        });
        Access {
            dm_policy,
            allow_from: dm
                .allow_from
                .or_else(|| self.allow_from.clone())
                .unwrap_or_default(),
            group_policy: self.group_policy.clone(),
            group_allow_from: self.group_allow_from.clone(),
            groups,
        }
    }

    pub fn auto_join(&self) -> Result<AutoJoin, String> {
        match self.auto_join.as_deref().unwrap_or("off") {
            "off" => Ok(AutoJoin::Off),
            "always" => Ok(AutoJoin::Always),
            "allowlist" => {
                let list = self.auto_join_allowlist.clone().unwrap_or_default();
                if let Some(name) = list
                    .iter()
                    .find(|entry| !matches!(entry.chars().next(), Some('!' | '#' | '*')))
                {
                    return Err(format!(
                        "channels.matrix.autoJoinAllowlist entry {name:?} is not a room id (!room:server), an alias (#alias:server) or \"*\""
                    ));
                }
                Ok(AutoJoin::Allowlist(list))
            }
            other => Err(format!(
                "channels.matrix.autoJoin must be \"always\", \"allowlist\" or \"off\", not {other:?}"
            )),
        }
    }

    /// Block streaming: clawback's `blockStreaming`, or OpenClaw's
    /// `streaming.block.enabled`.
    pub fn blocks(&self) -> Option<BlockChunk> {
        let nested = self
            .streaming
            .as_ref()
            .and_then(|streaming| streaming.pointer("/block/enabled"))
            .and_then(Value::as_bool);
        self.block_streaming
            .or(nested)
            .unwrap_or(false)
            .then(|| self.block_streaming_chunk.clone().unwrap_or_default())
    }

    /// Settings clawback reads but cannot honour, for `channels.status`.
    pub fn issues(&self) -> Vec<String> {
        let mut issues = Vec::new();
        if self.encryption == Some(true) {
            issues.push("channels.matrix.encryption: clawback does not support end-to-end encryption yet; encrypted rooms are refused (each message recorded with the reason)".to_owned());
        }
        if self
            .dm
            .as_ref()
            .and_then(|dm| dm.session_scope.as_deref())
            .is_some_and(|scope| scope != "per-user")
        {
            issues.push(
                "channels.matrix.dm.sessionScope: only \"per-user\" is supported by clawback yet"
                    .to_owned(),
            );
        }
        issues
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn section(value: Value) -> Section {
        serde_json::from_value(value).expect("section")
    }

    #[test]
    fn dm_keys_and_room_users_map_onto_the_shared_access() {
        let access = section(json!({
            "dm": {"policy": "allowlist", "allowFrom": ["@ada:example.org"]},
            "allowFrom": ["@ignored:example.org"],
            "groups": {"!ops:example.org": {"users": ["@bob:example.org"], "autoReply": true}},
        }))
        .access();
        assert_eq!(access.dm_policy.as_deref(), Some("allowlist"));
        assert_eq!(access.allow_from, vec![json!("@ada:example.org")]);
        let room = &access.groups.expect("groups")["!ops:example.org"];
        assert_eq!(room.require_mention, Some(false));
        assert_eq!(room.allow_from, Some(vec![json!("@bob:example.org")]));
        let disabled = section(json!({"dm": {"enabled": false, "policy": "open"}})).access();
        assert_eq!(disabled.dm_policy.as_deref(), Some("disabled"));
    }

    #[test]
    fn auto_join_is_off_unless_asked_and_refuses_room_names() {
        assert_eq!(section(json!({})).auto_join(), Ok(AutoJoin::Off));
        assert_eq!(
            section(json!({"autoJoin": "always"})).auto_join(),
            Ok(AutoJoin::Always)
        );
        let list = section(json!({"autoJoin": "allowlist", "autoJoinAllowlist": ["!a:x", "#b:x"]}));
        assert_eq!(
            list.auto_join(),
            Ok(AutoJoin::Allowlist(vec!["!a:x".into(), "#b:x".into()]))
        );
        assert!(
            section(json!({"autoJoin": "allowlist", "autoJoinAllowlist": ["Ops Room"]}))
                .auto_join()
                .is_err()
        );
        assert!(
            section(json!({"autoJoin": "sometimes"}))
                .auto_join()
                .is_err()
        );
    }
}
