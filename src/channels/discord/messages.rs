//! Discord `MESSAGE_CREATE` dispatches as clawback's inbound messages, and
//! who may talk in a guild.
//!
//! Why guild access is its own function: OpenClaw configures Discord by
//! `guilds.<id>.channels.<id>` (with `users` and `requireMention` at both
//! levels), not by the flat `groups` map the other channels use.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::channels::Inbound;
use crate::channels::media::MediaRef;
use crate::channels::routing::{Chat, ChatKind};
use crate::channels::settings::allow_entry;

/// `channels.discord.guilds.<id>` (or `"*"`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GuildRule {
    pub require_mention: Option<bool>,
    pub users: Option<Vec<Value>>,
    pub channels: Option<BTreeMap<String, ChannelRule>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelRule {
    pub enabled: Option<bool>,
    pub require_mention: Option<bool>,
    pub users: Option<Vec<Value>>,
}

/// The inbound message a dispatch carries; `None` for the bot's own
/// messages and other bots'. `cursor` is where a resume would continue.
pub fn inbound(message: &Value, bot_id: &str, cursor: String) -> Option<Inbound> {
    let author = message.get("author")?;
    let sender_id = author.get("id")?.as_str()?.to_owned();
    if sender_id == bot_id || author.get("bot").and_then(Value::as_bool) == Some(true) {
        return None;
    }
    let id = message.get("id")?.as_str()?.to_owned();
    let channel_id = message.get("channel_id")?.as_str()?.to_owned();
    let guild = message.get("guild_id").and_then(Value::as_str);
    let text = message
        .get("content")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mentioned = message
        .get("mentions")
        .and_then(Value::as_array)
        .is_some_and(|mentions| {
            mentions
                .iter()
                .any(|user| user.get("id").and_then(Value::as_str) == Some(bot_id))
        })
        || text.contains(&format!("<@{bot_id}>"));
    let media = attachments(message);
    let unsupported = (text.is_empty() && media.is_empty())
        .then(|| "a message without text (is the Message Content intent enabled?)".to_owned());
    let sender_name = author
        .get("global_name")
        .and_then(Value::as_str)
        .or_else(|| author.get("username").and_then(Value::as_str))
        .map(str::to_owned);
    Some(Inbound {
        platform_message_id: id,
        cursor: Some(cursor),
        chat: Chat {
            kind: if guild.is_some() {
                ChatKind::Channel
            } else {
                ChatKind::Direct
            },
            id: channel_id,
            thread_id: None,
            thread_is_topic: false,
        },
        sender_id,
        sender_name,
        text,
        mentioned,
        unsupported,
        media,
        group_verdict: None,
    })
}

/// A message's attachments (`id`, `filename`, `content_type`, `size`,
/// `url` on Discord's CDN).
fn attachments(message: &Value) -> Vec<MediaRef> {
    let list = message
        .get("attachments")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    list.iter()
        .filter_map(|attachment| {
            let text = |key: &str| {
                attachment
                    .get(key)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            Some(MediaRef {
                file_id: text("id")?,
                locator: text("url")?,
                mime: text("content_type"),
                name: text("filename"),
                size: attachment.get("size").and_then(Value::as_u64),
            })
        })
        .collect()
}

/// Whether a guild message may be answered, by `groupPolicy` and `guilds`.
pub fn admit_guild(
    group_policy: Option<&str>,
    guilds: Option<&BTreeMap<String, GuildRule>>,
    guild_id: &str,
    channel_id: &str,
    sender_id: &str,
    mentioned: bool,
) -> Result<(), String> {
    let policy = group_policy.unwrap_or("allowlist");
    if policy == "disabled" {
        return Err("guild messages are disabled (groupPolicy disabled)".to_owned());
    }
    let rule = guilds.and_then(|guilds| guilds.get(guild_id).or_else(|| guilds.get("*")));
    let Some(rule) = rule else {
        if policy == "open" && guilds.is_none() {
            return if mentioned {
                Ok(())
            } else {
                Err("the bot was not mentioned (requireMention)".to_owned())
            };
        }
        return Err(format!(
            "guild {guild_id} is not in channels.discord.guilds"
        ));
    };
    let channel = match &rule.channels {
        None => None,
        Some(channels) => match channels.get(channel_id).or_else(|| channels.get("*")) {
            Some(channel) => Some(channel),
            None => {
                return Err(format!(
                    "channel {channel_id} is not in channels.discord.guilds.{guild_id}.channels"
                ));
            }
        },
    };
    if channel.is_some_and(|channel| channel.enabled == Some(false)) {
        return Err(format!("channel {channel_id} is disabled"));
    }
    let users = channel
        .and_then(|channel| channel.users.as_ref())
        .or(rule.users.as_ref());
    if let Some(users) = users {
        let sender = sender_id.to_lowercase();
        let listed = users
            .iter()
            .filter_map(|entry| allow_entry(entry, &["discord:", "user:"]))
            .any(|entry| entry == "*" || entry == sender);
        if !listed {
            return Err(format!("sender {sender_id} is not in the guild's users"));
        }
    }
    let require_mention = channel
        .and_then(|channel| channel.require_mention)
        .or(rule.require_mention)
        .unwrap_or(true);
    if require_mention && !mentioned {
        return Err("the bot was not mentioned (requireMention)".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dms_guild_messages_and_the_bots_own() {
        let dm = json!({"id": "m1", "channel_id": "c1", "content": "hi",
                        "author": {"id": "u1", "username": "ada", "global_name": "Ada"}, "mentions": []});
        let message = inbound(&dm, "99", "s 1 url".to_owned()).expect("dm");
        assert_eq!(message.chat.kind, ChatKind::Direct);
        assert_eq!(message.sender_name.as_deref(), Some("Ada"));
        let guild = json!({"id": "m2", "channel_id": "c2", "guild_id": "g1", "content": "<@99> ping",
                           "author": {"id": "u1", "username": "ada"}, "mentions": [{"id": "99"}]});
        let message = inbound(&guild, "99", String::new()).expect("guild");
        assert_eq!(message.chat.kind, ChatKind::Channel);
        assert!(message.mentioned);
        let own =
            json!({"id": "m3", "channel_id": "c1", "content": "reply", "author": {"id": "99"}});
        assert!(inbound(&own, "99", String::new()).is_none());
        let bot = json!({"id": "m4", "channel_id": "c1", "content": "x", "author": {"id": "5", "bot": true}});
        assert!(inbound(&bot, "99", String::new()).is_none());
    }

    #[test]
    fn guild_rules_follow_openclaws_shape() {
        let guilds: BTreeMap<String, GuildRule> = serde_json::from_value(json!({
            "g1": {"requireMention": true, "channels": {"c1": {"requireMention": false, "users": ["discord:u1"]}}},
            "g2": {"requireMention": false}
        }))
        .expect("guilds");
        let admit = |guild, channel, sender, mentioned| {
            admit_guild(None, Some(&guilds), guild, channel, sender, mentioned)
        };
        assert!(admit("g1", "c1", "u1", false).is_ok());
        assert!(admit("g1", "c1", "u2", true).is_err(), "not in users");
        assert!(
            admit("g1", "c9", "u1", true).is_err(),
            "a channels map is an allowlist"
        );
        assert!(admit("g2", "c9", "anyone", false).is_ok());
        assert!(admit("g3", "c1", "u1", true).is_err(), "guild not listed");
        assert!(admit_guild(Some("open"), None, "g3", "c1", "u1", true).is_ok());
        assert!(admit_guild(Some("open"), None, "g3", "c1", "u1", false).is_err());
    }
}
