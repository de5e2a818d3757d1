//! A `/sync` answer read into what the adapter acts on: invites, the room
//! messages in order, gaps, and `next_batch`; a
//! `/messages` page; and one room message turned into an [`Inbound`].
//!
//! Why pure functions over `serde_json::Value`: the sync answer is large
//! and mostly irrelevant (the filter trims it, but a homeserver may send
//! more), so only the fields used are read, every one optional, and a
//! malformed event is skipped rather than failing the whole batch. Keeping
//! the HTTP out makes the exactly-once rules (which message carries the
//! cursor) testable without a homeserver.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::channels::Inbound;
use crate::channels::media::MediaRef;
use crate::channels::routing::{Chat, ChatKind};

/// Room timeline events asked for per sync (the rest of a busier room is a
/// gap, read back with `/messages`).
pub const TIMELINE_LIMIT: u64 = 100;

/// The sync filter: room messages (and encrypted ones, to refuse them with
/// a reason); no presence, account data, receipts, typing or room state.
pub fn filter(timeline_limit: u64) -> Value {
    json!({
        "presence": {"types": []},
        "account_data": {"types": []},
        "room": {
            "timeline": {"types": ["m.room.message", "m.room.encrypted"], "limit": timeline_limit},
            "state": {"types": []},
            "ephemeral": {"types": []},
            "account_data": {"types": []},
        },
    })
}

/// What one sync answer holds for the adapter.
#[derive(Debug, Default)]
pub struct Batch {
    pub next_batch: String,
    pub invites: Vec<Invite>,
    pub events: Vec<RoomEvent>,
    /// Rooms whose timeline has a gap before its first event.
    pub gaps: Vec<Gap>,
}

/// A room timeline that starts later than the sync position: the events
/// between are fetched with `/messages` back from `prev_batch`.
#[derive(Debug, PartialEq, Eq)]
pub struct Gap {
    pub room_id: String,
    pub prev_batch: String,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Invite {
    pub room_id: String,
    pub inviter: Option<String>,
    /// The invite was sent as a direct chat (`is_direct`).
    pub is_direct: bool,
}

/// A timeline event of a joined room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomEvent {
    pub room_id: String,
    pub event_id: String,
    pub sender: String,
    pub body: Body,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    Text {
        text: String,
        /// `m.mentions.user_ids`.
        mentioned_users: Vec<String>,
        /// The root of the thread it is in (`m.thread` relation).
        thread_root: Option<String>,
    },
    /// An `m.image`, `m.file`, `m.audio` or `m.video` whose file is on the
    /// homeserver (`url`: `mxc://`), with its caption if it has one.
    Media {
        caption: String,
        media: MediaRef,
        thread_root: Option<String>,
    },
    /// Readable by no one without the room's keys.
    Encrypted,
    /// An image, a file, a location...: what it is, in words.
    Unsupported(String),
    /// An edit or a redacted message: not a new message to answer.
    Ignored,
}

pub fn parse(answer: &Value) -> Result<Batch, String> {
    let next_batch = answer
        .get("next_batch")
        .and_then(Value::as_str)
        .filter(|token| !token.is_empty())
        .ok_or("the sync answer has no next_batch")?
        .to_owned();
    let mut batch = Batch {
        next_batch,
        ..Batch::default()
    };
    let rooms = answer.get("rooms");
    let map = |name: &str| {
        rooms
            .and_then(|rooms| rooms.get(name))
            .and_then(Value::as_object)
    };
    for (room_id, room) in map("invite").into_iter().flatten() {
        batch.invites.push(invite(room_id, room));
    }
    for (room_id, room) in map("join").into_iter().flatten() {
        let timeline = room.get("timeline");
        if timeline
            .and_then(|timeline| timeline.get("limited"))
            .and_then(Value::as_bool)
            == Some(true)
        {
            let prev_batch = timeline
                .and_then(|timeline| timeline.get("prev_batch"))
                .and_then(Value::as_str);
            if let Some(prev_batch) = prev_batch {
                batch.gaps.push(Gap {
                    room_id: room_id.clone(),
                    prev_batch: prev_batch.to_owned(),
                });
            }
        }
        let events = timeline
            .and_then(|timeline| timeline.get("events"))
            .and_then(Value::as_array);
        for event in events.into_iter().flatten() {
            if let Some(event) = room_event(room_id, event) {
                batch.events.push(event);
            }
        }
    }
    Ok(batch)
}

fn invite(room_id: &str, room: &Value) -> Invite {
    let events = room
        .pointer("/invite_state/events")
        .and_then(Value::as_array);
    // The invite itself is the member event whose state key is the bot;
    // the stripped state carries other members' events too.
    let member = events
        .into_iter()
        .flatten()
        .filter(|event| event.get("type").and_then(Value::as_str) == Some("m.room.member"))
        .find(|event| {
            event.pointer("/content/membership").and_then(Value::as_str) == Some("invite")
        });
    Invite {
        room_id: room_id.to_owned(),
        inviter: member
            .and_then(|event| event.get("sender"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        is_direct: member
            .and_then(|event| event.pointer("/content/is_direct"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
    }
}

/// The room filter of a `/messages` page: the same events as the sync's.
pub fn messages_filter() -> Value {
    json!({"types": ["m.room.message", "m.room.encrypted"]})
}

/// One `/messages` page read backwards (`dir=b`): its events, oldest
/// first, and the token of the next (older) page, if there is one.
pub fn messages_page(room_id: &str, answer: &Value) -> (Vec<RoomEvent>, Option<String>) {
    let chunk = answer.get("chunk").and_then(Value::as_array);
    let mut events: Vec<RoomEvent> = chunk
        .into_iter()
        .flatten()
        .filter_map(|event| room_event(room_id, event))
        .collect();
    events.reverse();
    let more = chunk.is_some_and(|chunk| !chunk.is_empty());
    let end = answer
        .get("end")
        .and_then(Value::as_str)
        .filter(|_| more)
        .map(str::to_owned);
    (events, end)
}

fn room_event(room_id: &str, event: &Value) -> Option<RoomEvent> {
    let text = |name: &str| event.get(name).and_then(Value::as_str).map(str::to_owned);
    let kind = text("type")?;
    let content = event.get("content").and_then(Value::as_object);
    let body = match kind.as_str() {
        "m.room.encrypted" => Body::Encrypted,
        "m.room.message" => match content {
            None => Body::Ignored,
            Some(content) => message_body(content),
        },
        _ => return None,
    };
    Some(RoomEvent {
        room_id: room_id.to_owned(),
        event_id: text("event_id")?,
        sender: text("sender")?,
        body,
    })
}

fn message_body(content: &serde_json::Map<String, Value>) -> Body {
    let relation = content.get("m.relates_to");
    let rel_type = relation
        .and_then(|relation| relation.get("rel_type"))
        .and_then(Value::as_str);
    if rel_type == Some("m.replace") || content.is_empty() {
        return Body::Ignored;
    }
    let msgtype = content
        .get("msgtype")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let text = content
        .get("body")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match msgtype {
        "m.text" | "m.notice" | "m.emote" if !text.is_empty() => Body::Text {
            text: text.to_owned(),
            mentioned_users: content
                .get("m.mentions")
                .and_then(|mentions| mentions.get("user_ids"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            thread_root: (rel_type == Some("m.thread"))
                .then(|| relation.and_then(|relation| relation.get("event_id")))
                .flatten()
                .and_then(Value::as_str)
                .map(str::to_owned),
        },
        "m.image" | "m.file" | "m.audio" | "m.video" => media_body(msgtype, content, relation),
        "m.location" => Body::Unsupported("a location".to_owned()),
        _ => Body::Unsupported("a message without text".to_owned()),
    }
}

/// A file message: `url` is the `mxc://` URI (an encrypted room's file
/// is under `file` instead, which needs the room's keys); `body` is the
/// file name, or the caption when `filename` names the file (Matrix 1.10).
fn media_body(
    msgtype: &str,
    content: &serde_json::Map<String, Value>,
    relation: Option<&Value>,
) -> Body {
    let what = match msgtype {
        "m.image" => "an image",
        "m.audio" => "an audio message",
        "m.video" => "a video",
        _ => "a file",
    };
    let text = |key: &str| content.get(key).and_then(Value::as_str).map(str::to_owned);
    let Some(url) = text("url").filter(|url| url.starts_with("mxc://")) else {
        return Body::Unsupported(if content.contains_key("file") {
            format!(
                "{what}, end-to-end encrypted (clawback does not support Matrix encryption yet)"
            )
        } else {
            what.to_owned()
        });
    };
    let body = text("body").unwrap_or_default();
    let (caption, name) = match text("filename") {
        Some(filename) if filename != body => (body, Some(filename)),
        Some(filename) => (String::new(), Some(filename)),
        None => (String::new(), Some(body).filter(|body| !body.is_empty())),
    };
    let info = content.get("info");
    let thread_root = relation
        .filter(|relation| relation.get("rel_type").and_then(Value::as_str) == Some("m.thread"))
        .and_then(|relation| relation.get("event_id"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Body::Media {
        caption,
        media: MediaRef {
            file_id: url.clone(),
            locator: url,
            mime: info
                .and_then(|info| info.get("mimetype"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            name,
            size: info
                .and_then(|info| info.get("size"))
                .and_then(Value::as_u64),
        },
        thread_root,
    }
}

/// Who the bot is, for mentions and for ignoring its own messages.
#[derive(Clone, Debug, Default)]
pub struct BotIdentity {
    pub user_id: String,
    pub display_name: Option<String>,
}

/// What the adapter learned about a message's room.
#[derive(Clone, Debug, Default)]
pub struct RoomFacts {
    /// The joined members' user ids (empty when they could not be listed).
    pub members: BTreeSet<String>,
    /// Display names of the room's members, by user id.
    pub names: BTreeMap<String, String>,
}

/// The inbound message a room event is, or `None` for events that are not
/// messages to answer (the bot's own, edits, redactions).
pub fn inbound(
    event: &RoomEvent,
    facts: &RoomFacts,
    bot: &BotIdentity,
    cursor: Option<String>,
) -> Option<Inbound> {
    if event.sender == bot.user_id {
        return None;
    }
    let mut media = Vec::new();
    let (text, mentioned, thread_root, unsupported) = match &event.body {
        Body::Ignored => return None,
        Body::Encrypted => (
            String::new(),
            false,
            None,
            Some(
                "an end-to-end encrypted message (clawback does not support Matrix encryption yet)"
                    .to_owned(),
            ),
        ),
        Body::Unsupported(what) => (String::new(), false, None, Some(what.clone())),
        Body::Media {
            caption,
            media: file,
            thread_root,
        } => {
            media.push(file.clone());
            (
                caption.clone(),
                mentions(caption, &[], bot),
                thread_root.clone(),
                None,
            )
        }
        Body::Text {
            text,
            mentioned_users,
            thread_root,
        } => (
            text.clone(),
            mentions(text, mentioned_users, bot),
            thread_root.clone(),
            None,
        ),
    };
    // Strictly one to one: a room `m.direct` or the invite called direct
    // but where others have joined is a room, because a DM's reply comes
    // from the DM session (by default the agent's main one) and everyone
    // in the room would read it.
    let direct = facts.members.len() == 2
        && facts.members.contains(&event.sender)
        && facts.members.contains(&bot.user_id);
    let kind = if direct {
        ChatKind::Direct
    } else {
        ChatKind::Channel
    };
    Some(Inbound {
        platform_message_id: event.event_id.clone(),
        cursor,
        chat: Chat {
            kind,
            id: event.room_id.clone(),
            // A DM's thread stays in the DM's session.
            thread_id: thread_root.filter(|_| kind != ChatKind::Direct),
            thread_is_topic: false,
        },
        sender_id: event.sender.clone(),
        sender_name: facts.names.get(&event.sender).cloned(),
        text,
        mentioned,
        unsupported,
        media,
        group_verdict: None,
    })
}

/// Addressed to the bot: `m.mentions`, its user id, or its display name in
/// the body (what clients without `m.mentions` put there).
fn mentions(text: &str, mentioned_users: &[String], bot: &BotIdentity) -> bool {
    if mentioned_users.contains(&bot.user_id) {
        return true;
    }
    let lower = text.to_lowercase();
    lower.contains(&bot.user_id.to_lowercase())
        || bot
            .display_name
            .as_deref()
            .filter(|name| !name.trim().is_empty())
            .is_some_and(|name| lower.contains(&name.to_lowercase()))
}

/// The cursor each message of a batch carries: only the last one moves the
/// account's cursor to `next_batch`. A crash part way through the batch
/// leaves the recorded cursor where the batch started, so the next start
/// syncs the whole batch again, and the messages already recorded are
/// recognised by their event ids.
pub fn cursors(count: usize, next_batch: &str) -> Vec<Option<String>> {
    (0..count)
        .map(|index| (index + 1 == count).then(|| next_batch.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bot() -> BotIdentity {
        BotIdentity {
            user_id: "@claw:hs.example".to_owned(),
            display_name: Some("Claw".to_owned()),
        }
    }

    fn text_event(id: &str, sender: &str, body: Value) -> Value {
        json!({"type": "m.room.message", "event_id": id, "sender": sender,
               "origin_server_ts": 1, "content": body})
    }

    fn answer() -> Value {
        json!({
            "next_batch": "s72_4",
            "rooms": {
                "invite": {"!new:hs.example": {"invite_state": {"events": [
                    {"type": "m.room.name", "state_key": "", "sender": "@ada:hs.example", "content": {"name": "x"}},
                    {"type": "m.room.member", "state_key": "@claw:hs.example", "sender": "@ada:hs.example",
                     "content": {"membership": "invite", "is_direct": true}}]}}},
                "join": {
                    "!dm:hs.example": {"timeline": {"limited": false, "events": [
                        text_event("$1", "@ada:hs.example", json!({"msgtype": "m.text", "body": "hi"})),
                        text_event("$2", "@claw:hs.example", json!({"msgtype": "m.text", "body": "hello"})),
                        text_event("$3", "@ada:hs.example", json!({"msgtype": "m.text", "body": "* hi!",
                            "m.relates_to": {"rel_type": "m.replace", "event_id": "$1"}})),
                        text_event("$4", "@ada:hs.example", json!({"msgtype": "m.image", "body": "a cat", "filename": "cat.png",
                            "url": "mxc://hs.example/abc", "info": {"mimetype": "image/png", "size": 12}})),
                    ]}},
                    "!room:hs.example": {"timeline": {"limited": true, "prev_batch": "t9", "events": [
                        text_event("$5", "@bob:hs.example", json!({"msgtype": "m.text", "body": "claw: status?",
                            "m.relates_to": {"rel_type": "m.thread", "event_id": "$root"}})),
                        {"type": "m.room.encrypted", "event_id": "$6", "sender": "@bob:hs.example",
                         "content": {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgA"}},
                        {"type": "m.room.message", "sender": "@bob:hs.example", "content": {}},
                    ]}},
                },
            },
        })
    }

    #[test]
    fn a_sync_answer_yields_invites_events_and_gaps() {
        let batch = parse(&answer()).expect("batch");
        assert_eq!(batch.next_batch, "s72_4");
        assert_eq!(
            batch.invites,
            vec![Invite {
                room_id: "!new:hs.example".into(),
                inviter: Some("@ada:hs.example".into()),
                is_direct: true
            }]
        );
        let ids: Vec<&str> = batch.events.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(
            ids,
            ["$1", "$2", "$3", "$4", "$5", "$6"],
            "an event without an id is skipped"
        );
        assert_eq!(batch.events[2].body, Body::Ignored, "an edit");
        assert_eq!(batch.events[5].body, Body::Encrypted);
        assert_eq!(
            batch.gaps,
            vec![Gap {
                room_id: "!room:hs.example".into(),
                prev_batch: "t9".into()
            }]
        );
        assert!(parse(&json!({"rooms": {}})).is_err(), "no next_batch");
        let empty = parse(&json!({"next_batch": "s1"})).expect("an idle sync");
        assert!(empty.events.is_empty() && empty.invites.is_empty());
    }

    #[test]
    fn room_events_become_inbound_messages() {
        let batch = parse(&answer()).expect("batch");
        let dm = RoomFacts {
            members: BTreeSet::from(["@ada:hs.example".to_owned(), "@claw:hs.example".to_owned()]),
            names: BTreeMap::from([("@ada:hs.example".to_owned(), "Ada".to_owned())]),
        };
        let room = RoomFacts::default();
        let first = inbound(&batch.events[0], &dm, &bot(), None).expect("a DM");
        assert_eq!(first.platform_message_id, "$1");
        assert_eq!(first.chat.kind, ChatKind::Direct);
        assert_eq!(first.sender_name.as_deref(), Some("Ada"));
        assert!(!first.mentioned);
        assert!(
            inbound(&batch.events[1], &dm, &bot(), None).is_none(),
            "the bot's own"
        );
        assert!(
            inbound(&batch.events[2], &dm, &bot(), None).is_none(),
            "an edit"
        );
        let image = inbound(&batch.events[3], &dm, &bot(), None).expect("an image");
        assert!(image.unsupported.is_none());
        assert_eq!(
            image.text, "a cat",
            "the body is the caption when filename names the file"
        );
        assert_eq!(image.media[0].file_id, "mxc://hs.example/abc");
        assert_eq!(image.media[0].name.as_deref(), Some("cat.png"));
        assert_eq!(image.media[0].mime.as_deref(), Some("image/png"));
        assert_eq!(image.media[0].size, Some(12));
        let no_url = message_body(
            json!({"msgtype": "m.file", "body": "x", "file": {"url": "mxc://hs/e"}})
                .as_object()
                .expect("object"),
        );
        assert!(matches!(no_url, Body::Unsupported(what) if what.contains("encrypted")));
        let threaded =
            inbound(&batch.events[4], &room, &bot(), Some("s72_4".into())).expect("room");
        assert_eq!(threaded.chat.kind, ChatKind::Channel);
        assert_eq!(threaded.chat.thread_id.as_deref(), Some("$root"));
        assert!(threaded.mentioned, "the display name in the body");
        assert_eq!(threaded.cursor.as_deref(), Some("s72_4"));
        let encrypted = inbound(&batch.events[5], &room, &bot(), None).expect("encrypted");
        assert!(encrypted.unsupported.expect("refused").contains("encrypt"));
    }

    #[test]
    fn a_dm_is_a_room_of_exactly_the_sender_and_the_bot() {
        let batch = parse(&answer()).expect("batch");
        let members = |ids: &[&str]| RoomFacts {
            members: ids.iter().map(|id| (*id).to_owned()).collect(),
            names: BTreeMap::new(),
        };
        let kind = |facts: &RoomFacts| {
            inbound(&batch.events[0], facts, &bot(), None)
                .expect("message")
                .chat
                .kind
        };
        let (ada, claw, bob) = ("@ada:hs.example", "@claw:hs.example", "@bob:hs.example");
        assert_eq!(kind(&members(&[ada, claw])), ChatKind::Direct);
        assert_eq!(
            kind(&members(&[ada, claw, bob])),
            ChatKind::Channel,
            "others joined"
        );
        assert_eq!(
            kind(&members(&[bob, claw])),
            ChatKind::Channel,
            "the sender left"
        );
        assert_eq!(
            kind(&members(&[])),
            ChatKind::Channel,
            "members unknown: fail closed"
        );
    }

    #[test]
    fn mentions_by_id_display_name_or_m_mentions() {
        let event = |body: Value| {
            let batch = parse(
                &json!({"next_batch": "s", "rooms": {"join": {"!r": {"timeline": {"events": [
                text_event("$m", "@ada:hs.example", body)]}}}}}),
            )
            .expect("batch");
            inbound(&batch.events[0], &RoomFacts::default(), &bot(), None).expect("message")
        };
        assert!(event(json!({"msgtype": "m.text", "body": "hey @CLAW:hs.example"})).mentioned);
        assert!(event(json!({"msgtype": "m.text", "body": "x", "m.mentions": {"user_ids": ["@claw:hs.example"]}})).mentioned);
        assert!(!event(json!({"msgtype": "m.text", "body": "hello all"})).mentioned);
    }

    #[test]
    fn a_messages_page_reads_oldest_first_until_it_is_empty() {
        let page = json!({"start": "t9", "end": "t5", "chunk": [
            text_event("$b", "@ada:hs.example", json!({"msgtype": "m.text", "body": "second"})),
            text_event("$a", "@ada:hs.example", json!({"msgtype": "m.text", "body": "first"})),
        ]});
        let (events, next) = messages_page("!r", &page);
        let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, ["$a", "$b"]);
        assert_eq!(events[0].room_id, "!r");
        assert_eq!(next.as_deref(), Some("t5"));
        let (events, next) = messages_page("!r", &json!({"start": "t5", "end": "t5", "chunk": []}));
        assert!(
            events.is_empty() && next.is_none(),
            "an empty page ends the walk"
        );
    }

    #[test]
    fn only_the_last_message_of_a_batch_moves_the_cursor() {
        assert_eq!(cursors(3, "s9"), vec![None, None, Some("s9".to_owned())]);
        assert_eq!(cursors(1, "s9"), vec![Some("s9".to_owned())]);
        assert!(cursors(0, "s9").is_empty());
    }
}
