//! Slack Events API payloads (as Socket Mode delivers them) as clawback's
//! inbound messages.
//!
//! Why the platform id is `<channel>:<ts>`: a message's `ts` is unique
//! within its channel and the same on every retry of its event, whereas
//! Slack's envelope ids change per delivery attempt.

use serde_json::Value;

use crate::channels::Inbound;
use crate::channels::media::MediaRef;
use crate::channels::routing::{Chat, ChatKind};

/// The inbound message an `events_api` payload carries, if it is a plain
/// message from a person (not the bot's own, not an edit or a join).
pub fn inbound(payload: &Value, bot_user_id: &str) -> Option<Inbound> {
    let event = payload.get("event")?;
    let kind = event.get("type").and_then(Value::as_str)?;
    if kind != "message" && kind != "app_mention" {
        return None;
    }
    // Edits, deletions, joins, bot posts: not something said to the bot
    // (a message with files is `file_share`, and is).
    let subtype = event.get("subtype").and_then(Value::as_str);
    if subtype.is_some_and(|subtype| subtype != "file_share") || event.get("bot_id").is_some() {
        return None;
    }
    let sender_id = event.get("user").and_then(Value::as_str)?.to_owned();
    if sender_id == bot_user_id {
        return None;
    }
    let channel = event.get("channel").and_then(Value::as_str)?.to_owned();
    let ts = event.get("ts").and_then(Value::as_str)?.to_owned();
    let text = event
        .get("text")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let kind = match event.get("channel_type").and_then(Value::as_str) {
        Some("im") => ChatKind::Direct,
        Some("mpim") => ChatKind::Group,
        _ => ChatKind::Channel,
    };
    let thread_id = event
        .get("thread_ts")
        .and_then(Value::as_str)
        .filter(|thread| *thread != ts)
        .map(str::to_owned);
    let mentioned = !bot_user_id.is_empty() && text.contains(&format!("<@{bot_user_id}>"));
    let media = files(event);
    Some(Inbound {
        platform_message_id: format!("{channel}:{ts}"),
        cursor: None,
        chat: Chat {
            kind,
            id: channel,
            thread_id,
            thread_is_topic: false,
        },
        sender_id,
        sender_name: None,
        unsupported: (text.is_empty() && media.is_empty())
            .then(|| "a message without text".to_owned()),
        text,
        mentioned,
        media,
        group_verdict: None,
    })
}

/// A message's files (`id`, `name`, `mimetype`, `size`,
/// `url_private_download`, fetched with the bot token).
fn files(event: &Value) -> Vec<MediaRef> {
    let list = event
        .get("files")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    list.iter()
        .filter_map(|file| {
            let text = |key: &str| file.get(key).and_then(Value::as_str).map(str::to_owned);
            Some(MediaRef {
                file_id: text("id")?,
                locator: text("url_private_download").or_else(|| text("url_private"))?,
                mime: text("mimetype"),
                name: text("name"),
                size: file.get("size").and_then(Value::as_u64),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_threads_and_what_is_ignored() {
        let dm = json!({"event": {"type": "message", "channel": "D1", "user": "U7", "text": "hi",
                                   "ts": "1700000000.000100", "channel_type": "im"}});
        let message = inbound(&dm, "UBOT").expect("dm");
        assert_eq!(message.platform_message_id, "D1:1700000000.000100");
        assert_eq!(message.chat.kind, ChatKind::Direct);
        let threaded = json!({"event": {"type": "message", "channel": "C1", "user": "U7",
            "text": "<@UBOT> look", "ts": "2.0", "thread_ts": "1.0", "channel_type": "channel"}});
        let message = inbound(&threaded, "UBOT").expect("thread");
        assert_eq!(message.chat.thread_id.as_deref(), Some("1.0"));
        assert!(message.mentioned);
        for ignored in [
            json!({"event": {"type": "message", "subtype": "message_changed", "channel": "D1", "ts": "1"}}),
            json!({"event": {"type": "message", "bot_id": "B1", "user": "U9", "channel": "D1", "ts": "1", "text": "x"}}),
            json!({"event": {"type": "message", "user": "UBOT", "channel": "D1", "ts": "1", "text": "x"}}),
            json!({"event": {"type": "reaction_added", "user": "U7"}}),
        ] {
            assert!(inbound(&ignored, "UBOT").is_none(), "{ignored}");
        }
    }
}
