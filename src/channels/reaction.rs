//! Reactions: OpenClaw's ack reaction (`messages.ackReaction`, e.g. "👀"
//! on a message the agent is about to answer), sent through the outbox.
//!
//! Why through the outbox: a reaction is a platform write like a message,
//! so it gets the same record (`delivery.prepared` with the reaction in the
//! target's JSON, `delivery.sent`/`failed` after) and the same key-based
//! exactly-once: the ack's key is the answering run's (`ack:<run id>`),
//! which exists once per message, so a redelivery or a restart never
//! reacts twice.
//!
//! Why off unless configured: OpenClaw's default ack emoji comes from the
//! agent's identity; clawback has none to take it from, and a reaction
//! nobody asked for is a visible change to every chat.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::routing::ChatKind;
use crate::config::model::ConfigFile;

/// A reaction a delivery carries instead of a message: `emoji` on the
/// platform's message `message_id` in the target's chat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    pub message_id: String,
    pub emoji: String,
    /// Takes the bot's reaction away instead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remove: bool,
    /// For a removal: the key of the delivery that set the reaction
    /// (`ack:<run id>`), whose platform id a platform that removes by id
    /// (Matrix redacts the reaction event) needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undoes: Option<String>,
    /// That platform id, looked up by the outbox just before the send
    /// (the setting delivery went first in the same queue); not recorded.
    #[serde(skip)]
    pub set_id: Option<String>,
}

/// The ack reaction settings that apply to one account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    pub emoji: String,
    /// `messages.ackReactionScope`: `group-mentions` (the default),
    /// `group-all`, `direct`, `all`.
    pub scope: String,
    /// `messages.removeAckAfterReply`.
    pub remove_after_reply: bool,
}

impl Ack {
    /// `channels.<channel>.ackReaction` (the account's section) over
    /// `messages.ackReaction`; `None` when neither names an emoji.
    pub fn from_config(config: &ConfigFile, account_section: &Value) -> Option<Ack> {
        let messages = config.messages.as_ref();
        let text = |value: Option<&Value>| {
            value
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|emoji| !emoji.is_empty())
                .map(str::to_owned)
        };
        let emoji = text(account_section.get("ackReaction"))
            .or_else(|| text(messages.and_then(|messages| messages.get("ackReaction"))))?;
        Some(Ack {
            emoji,
            scope: text(messages.and_then(|messages| messages.get("ackReactionScope")))
                .unwrap_or_else(|| "group-mentions".to_owned()),
            remove_after_reply: messages
                .and_then(|messages| messages.get("removeAckAfterReply"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }

    /// Whether an admitted message in a chat of `kind` gets the ack.
    pub fn applies(&self, kind: ChatKind, mentioned: bool) -> bool {
        let direct = kind == ChatKind::Direct;
        match self.scope.as_str() {
            "all" => true,
            "direct" => direct,
            "group-all" => !direct,
            // group-mentions, and anything unreadable.
            _ => !direct && mentioned,
        }
    }
}

/// Slack names reactions (`eyes`), it does not take the emoji itself:
/// the common ack emoji by name, `:name:` or a bare name as given.
pub fn slack_name(emoji: &str) -> String {
    let named = match emoji {
        "👀" => "eyes",
        "👍" => "+1",
        "✅" => "white_check_mark",
        "❤️" | "❤" => "heart",
        "🙏" => "pray",
        "🤔" => "thinking_face",
        "⏳" => "hourglass_flowing_sand",
        "🦞" => "lobster",
        "🎉" => "tada",
        "👌" => "ok_hand",
        _ => return emoji.trim_matches(':').to_owned(),
    };
    named.to_owned()
}

/// An emoji as one percent-encoded URL path segment (Discord's reaction
/// routes take it in the path).
pub fn path_segment(emoji: &str) -> String {
    emoji
        .bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

/// The part of a recorded platform message id after `<chat>:` (Telegram's
/// message number, Slack's `ts`).
pub fn after_chat(platform_message_id: &str) -> &str {
    platform_message_id
        .split_once(':')
        .map_or(platform_message_id, |(_, id)| id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn configured_per_channel_over_messages_and_scoped() {
        let config: ConfigFile = serde_json::from_value(json!({
            "messages": {"ackReaction": "👀", "ackReactionScope": "direct"}
        }))
        .expect("config");
        let ack = Ack::from_config(&config, &json!({})).expect("ack");
        assert_eq!(ack.emoji, "👀");
        assert!(ack.applies(ChatKind::Direct, false));
        assert!(!ack.applies(ChatKind::Group, true));
        let ack = Ack::from_config(&config, &json!({"ackReaction": "✅"})).expect("ack");
        assert_eq!(ack.emoji, "✅");
        let none: ConfigFile = serde_json::from_value(json!({})).expect("config");
        assert!(Ack::from_config(&none, &json!({})).is_none());
        let default_scope = Ack {
            emoji: "👀".to_owned(),
            scope: "group-mentions".to_owned(),
            remove_after_reply: false,
        };
        assert!(!default_scope.applies(ChatKind::Direct, true));
        assert!(default_scope.applies(ChatKind::Group, true));
        assert!(!default_scope.applies(ChatKind::Group, false));
        assert_eq!(slack_name("👀"), "eyes");
        assert_eq!(slack_name(":rocket:"), "rocket");
        assert_eq!(path_segment("👀"), "%F0%9F%91%80");
        assert_eq!(after_chat("-100:55"), "55");
        assert_eq!(after_chat("D1:1700000000.000100"), "1700000000.000100");
    }
}
