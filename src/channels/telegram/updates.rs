//! Telegram updates as clawback's inbound messages.
//!
//! Why the platform id is `<chat id>:<message id>`: Telegram numbers
//! messages per chat, so the pair is what is unique within a bot.

use serde_json::Value;

use crate::channels::Inbound;
use crate::channels::media::MediaRef;
use crate::channels::routing::{Chat, ChatKind};

/// Who the bot is (from `getMe`): mentions and replies to it address it.
#[derive(Clone, Debug, Default)]
pub struct BotIdentity {
    pub id: i64,
    pub username: String,
}

/// The inbound message an update carries, if it carries one; `cursor` is
/// the offset that acknowledges it.
pub fn inbound(update: &Value, bot: &BotIdentity) -> Option<Inbound> {
    let message = update.get("message")?;
    let chat = message.get("chat")?;
    let chat_id = id_text(chat.get("id")?)?;
    let message_id = id_text(message.get("message_id")?)?;
    let from = message.get("from");
    let sender_id = from
        .and_then(|from| from.get("id"))
        .and_then(id_text)
        .unwrap_or_else(|| chat_id.clone());
    let kind = match chat.get("type").and_then(Value::as_str) {
        Some("private") => ChatKind::Direct,
        Some("channel") => ChatKind::Channel,
        _ => ChatKind::Group,
    };
    let topic = message
        .get("is_topic_message")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let thread_id = if topic {
        message.get("message_thread_id").and_then(id_text)
    } else {
        None
    };
    let text = message
        .get("text")
        .or_else(|| message.get("caption"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let media = media(message);
    let unsupported = (text.is_empty() && media.is_empty()).then(|| media_kind(message));
    let mentioned = mentions(&text, bot)
        || message
            .get("reply_to_message")
            .and_then(|replied| replied.get("from"))
            .and_then(|from| from.get("id"))
            .and_then(Value::as_i64)
            == Some(bot.id);
    let update_id = update.get("update_id").and_then(Value::as_i64)?;
    Some(Inbound {
        platform_message_id: format!("{chat_id}:{message_id}"),
        cursor: Some((update_id + 1).to_string()),
        chat: Chat {
            kind,
            id: chat_id,
            thread_id,
            thread_is_topic: true,
        },
        sender_id,
        sender_name: from.and_then(display_name),
        text,
        mentioned,
        unsupported,
        media,
        group_verdict: None,
    })
}

/// The file a message carries, if it is one clawback downloads: a photo
/// (its largest size), a document, a voice note, an audio file or a video.
/// Telegram sends photos as JPEG and gives no mime type for them.
fn media(message: &Value) -> Vec<MediaRef> {
    let photo = message
        .get("photo")
        .and_then(Value::as_array)
        .and_then(|sizes| sizes.last());
    let (file, default_mime) = if let Some(photo) = photo {
        (photo, Some("image/jpeg"))
    } else if let Some(file) = ["document", "voice", "audio", "video"]
        .iter()
        .find_map(|field| message.get(*field))
    {
        (file, None)
    } else {
        return Vec::new();
    };
    let Some(file_id) = file.get("file_id").and_then(Value::as_str) else {
        return Vec::new();
    };
    let text = |key: &str| file.get(key).and_then(Value::as_str).map(str::to_owned);
    vec![MediaRef {
        file_id: file_id.to_owned(),
        locator: file_id.to_owned(),
        mime: text("mime_type").or(default_mime.map(str::to_owned)),
        name: text("file_name"),
        size: file.get("file_size").and_then(Value::as_u64),
    }]
}

fn mentions(text: &str, bot: &BotIdentity) -> bool {
    !bot.username.is_empty()
        && text
            .to_lowercase()
            .contains(&format!("@{}", bot.username.to_lowercase()))
}

fn media_kind(message: &Value) -> String {
    const KINDS: &[(&str, &str)] = &[
        ("photo", "a photo"),
        ("document", "a document"),
        ("voice", "a voice message"),
        ("audio", "an audio file"),
        ("video", "a video"),
        ("video_note", "a video note"),
        ("sticker", "a sticker"),
        ("location", "a location"),
        ("contact", "a contact"),
        ("poll", "a poll"),
    ];
    KINDS
        .iter()
        .find(|(field, _)| message.get(field).is_some())
        .map_or_else(
            || "a message without text".to_owned(),
            |(_, what)| (*what).to_owned(),
        )
}

fn display_name(from: &Value) -> Option<String> {
    let first = from.get("first_name").and_then(Value::as_str);
    let last = from.get("last_name").and_then(Value::as_str);
    match (first, last) {
        (Some(first), Some(last)) => Some(format!("{first} {last}")),
        (Some(first), None) => Some(first.to_owned()),
        _ => from
            .get("username")
            .and_then(Value::as_str)
            .map(str::to_owned),
    }
}

fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::Number(number) => Some(number.to_string()),
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bot() -> BotIdentity {
        BotIdentity {
            id: 99,
            username: "claw_bot".to_owned(),
        }
    }

    #[test]
    fn a_private_text_message() {
        let update = json!({"update_id": 10, "message": {"message_id": 5, "date": 1,
            "from": {"id": 7, "is_bot": false, "first_name": "Ada", "last_name": "L"},
            "chat": {"id": 7, "type": "private"}, "text": "hi"}});
        let message = inbound(&update, &bot()).expect("message");
        assert_eq!(message.platform_message_id, "7:5");
        assert_eq!(message.cursor.as_deref(), Some("11"));
        assert_eq!(message.chat.kind, ChatKind::Direct);
        assert_eq!(message.sender_name.as_deref(), Some("Ada L"));
        assert!(message.unsupported.is_none());
    }

    #[test]
    fn a_forum_topic_mention_and_a_photo() {
        let update = json!({"update_id": 11, "message": {"message_id": 6, "date": 1,
            "message_thread_id": 42, "is_topic_message": true,
            "from": {"id": 7, "is_bot": false, "first_name": "Ada"},
            "chat": {"id": -1001234567890_i64, "type": "supergroup", "is_forum": true},
            "text": "@Claw_Bot ping"}});
        let message = inbound(&update, &bot()).expect("message");
        assert_eq!(message.chat.kind, ChatKind::Group);
        assert_eq!(message.chat.thread_id.as_deref(), Some("42"));
        assert!(message.mentioned);
        let photo = json!({"update_id": 12, "message": {"message_id": 7, "date": 1,
            "from": {"id": 7}, "chat": {"id": 7, "type": "private"}, "photo": [
                {"file_id": "small", "file_unique_id": "s", "width": 90, "height": 90},
                {"file_id": "large", "file_unique_id": "l", "width": 800, "height": 800,
                 "file_size": 4000}]}});
        let photo = inbound(&photo, &bot()).expect("photo");
        assert!(photo.unsupported.is_none());
        assert_eq!(photo.media[0].file_id, "large");
        assert_eq!(photo.media[0].mime.as_deref(), Some("image/jpeg"));
        assert_eq!(photo.media[0].size, Some(4000));
        let sticker = json!({"update_id": 12, "message": {"message_id": 8, "date": 1,
            "from": {"id": 7}, "chat": {"id": 7, "type": "private"}, "sticker": {}}});
        assert_eq!(
            inbound(&sticker, &bot())
                .expect("sticker")
                .unsupported
                .as_deref(),
            Some("a sticker")
        );
        assert!(inbound(&json!({"update_id": 13, "edited_message": {}}), &bot()).is_none());
    }
}
