//! Session content sealed with a per-session data key: crypto-shredding.
//!
//! Why: the log is append-only and hash-chained, so a session's messages can
//! never be deleted from it without breaking every hash after them. Instead
//! each session's content (message text, tool arguments and output, LLM
//! request and response bodies, channel text, delivered text, the RPC params
//! and HTTP answers that carry them) is encrypted with AES-256-GCM under a
//! key of its own, kept apart from the log. Destroying the key makes the
//! content unreadable forever while every record, and so the chain, the
//! Merkle tree and the projections, stay exactly as they were.
//!
//! Shape: an [`Event::Sealed`] wraps the original event's *skeleton* (the
//! event with its content fields emptied) and the ciphertext of those
//! fields. Reducers fold the skeleton ([`Event::bare`]) and never need a key,
//! so state hashes do not depend on whether a key still exists. Readers that
//! show content call [`Event::read`] with a [`ContentKeys`] and get the
//! event back whole, or with its content replaced by [`PURGED`].
//!
//! The ciphertext is bound to its skeleton, key id and session (the AEAD's
//! associated data), so sealed content cannot be moved to another record.

use std::borrow::Cow;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use serde::{Deserialize, Serialize};

use crate::event::{Admission, Event, LlmOutcome, ToolOutcome};

pub const KEY_BYTES: usize = 32;
pub const NONCE_BYTES: usize = 12;
/// What a reader sees in place of content whose key was destroyed.
pub const PURGED: &str = "[purged]";
/// Domain separation for the associated data (a format version).
const AAD_TAG: &[u8] = b"clawback-sealed-content v1\0";

/// An event whose content is encrypted. See the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The session whose key sealed it.
    pub session_key: String,
    /// Which key (hex), so a reader finds it and a purge names it.
    pub key_id: String,
    pub nonce: [u8; NONCE_BYTES],
    /// AES-256-GCM over the postcard encoding of the content fields, in
    /// [`content_fields`] order, with the tag appended.
    pub ciphertext: Vec<u8>,
    /// The event with its content fields emptied: what reducers see.
    pub skeleton: Box<Event>,
}

/// A session's data key: the id goes into records, the bytes never do.
#[derive(Clone)]
pub struct ContentKey {
    pub id: String,
    pub bytes: [u8; KEY_BYTES],
}

impl std::fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentKey").field("id", &self.id).finish()
    }
}

/// What a key store knows of a key id.
pub enum KeyLookup {
    Live([u8; KEY_BYTES]),
    /// Destroyed on purpose (a session purge): the content is gone.
    Purged,
    /// Not there and never purged: a lost or unreachable key file.
    Missing(String),
}

/// Where readers find content keys. The gateway's keyring implements it;
/// [`NoKeys`] is for readers that were given none.
pub trait ContentKeys: Send + Sync {
    fn lookup(&self, key_id: &str) -> KeyLookup;
}

/// A key source with no keys: sealed content reads as unreadable.
pub struct NoKeys;

impl ContentKeys for NoKeys {
    fn lookup(&self, _key_id: &str) -> KeyLookup {
        KeyLookup::Missing("no content keys were given to this reader".to_owned())
    }
}

/// Whether a read event's content is what was recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContentState {
    /// Recorded in clear (not session content, or written before sealing).
    Clear,
    /// Sealed and opened with its key.
    Opened,
    /// Sealed under a key a purge destroyed: content shows as [`PURGED`].
    Purged,
    /// Sealed and not openable (key missing, or the record does not
    /// authenticate): content shows as `[unreadable: why]`.
    Unreadable(String),
}

/// An event as a reader sees it. `event` is never `Event::Sealed`.
pub struct Readable<'a> {
    pub event: Cow<'a, Event>,
    pub content: ContentState,
}

impl Event {
    /// The event as reducers see it: a sealed event's skeleton (content
    /// emptied), any other event as it is. Reducers and anything that only
    /// routes by kind and ids match on this.
    pub fn bare(&self) -> &Event {
        match self {
            Event::Sealed(sealed) => &sealed.skeleton,
            event => event,
        }
    }

    /// The event with its content, opened with `keys` if sealed.
    pub fn read<'a>(&'a self, keys: &dyn ContentKeys) -> Readable<'a> {
        let Event::Sealed(sealed) = self else {
            return Readable {
                event: Cow::Borrowed(self),
                content: ContentState::Clear,
            };
        };
        let withheld = |marker: String, state: ContentState| Readable {
            event: Cow::Owned(fill(&sealed.skeleton, &marker)),
            content: state,
        };
        match keys.lookup(&sealed.key_id) {
            KeyLookup::Live(key) => match open(sealed, &key) {
                Ok(event) => Readable {
                    event: Cow::Owned(event),
                    content: ContentState::Opened,
                },
                Err(why) => withheld(
                    format!("[unreadable: {why}]"),
                    ContentState::Unreadable(why),
                ),
            },
            KeyLookup::Purged => withheld(PURGED.to_owned(), ContentState::Purged),
            KeyLookup::Missing(why) => {
                let why = format!("content key {} not available: {why}", sealed.key_id);
                withheld(
                    format!("[unreadable: {why}]"),
                    ContentState::Unreadable(why),
                )
            }
        }
    }
}

/// The content fields of `event`, in a fixed order, and the session that
/// owns them; `None` when the event carries no session content. `scope`
/// names the session for events that do not carry one (an RPC's params, an
/// HTTP answer).
pub fn content_fields<'a>(
    event: &'a mut Event,
    scope: Option<&str>,
) -> Option<(String, Vec<&'a mut String>)> {
    let owner = scope
        .map(str::to_owned)
        .or_else(|| event.session_key().map(str::to_owned))
        .or_else(|| match &*event {
            Event::CronRunFinished(e) => e.session_key.clone(),
            _ => None,
        })?;
    let fields: Vec<&mut String> = match event {
        Event::MessageAppended(e) => vec![&mut e.content],
        Event::SessionCompacted(e) => vec![&mut e.summary],
        Event::LlmCallRequested(e) => vec![&mut e.request],
        Event::LlmCallCompleted(e) => match &mut e.outcome {
            LlmOutcome::Ok { response, .. } => vec![response],
            LlmOutcome::Failed { .. } => return None,
        },
        Event::ToolCallRequested(e) => vec![&mut e.arguments],
        Event::ToolCallFinished(e) => match &mut e.outcome {
            ToolOutcome::Ok { output } => vec![output],
            ToolOutcome::Error { message } => vec![message],
            ToolOutcome::Denied { .. } | ToolOutcome::TimedOut => return None,
        },
        Event::ChannelMessageReceived(e) => match &e.admission {
            Admission::Admitted { .. } => vec![&mut e.text],
            Admission::Refused { .. } => return None,
        },
        Event::DeliveryPrepared(e) => vec![&mut e.text],
        Event::CronRunFinished(e) => match &mut e.summary {
            Some(summary) => vec![summary],
            None => return None,
        },
        Event::RpcReceived(e) if scope.is_some() => vec![&mut e.params_redacted],
        Event::HttpRequestAnswered(e) if scope.is_some() => vec![&mut e.answer],
        _ => return None,
    };
    Some((owner, fields))
}

/// Seals `event`'s content under the key `key_for` gives for the owning
/// session, with the nonce it gives (unique per key: drawn at random).
/// Events without session content, or whose content is empty, come back
/// unchanged and `key_for` is not called (no key is made for them).
pub fn seal(
    mut event: Event,
    scope: Option<&str>,
    key_for: impl FnOnce(&str) -> Result<(ContentKey, [u8; NONCE_BYTES]), String>,
) -> Result<Event, String> {
    if matches!(event, Event::Sealed(_)) {
        return Ok(event);
    }
    let Some((session_key, fields)) = content_fields(&mut event, scope) else {
        return Ok(event);
    };
    if fields.iter().all(|field| field.is_empty()) {
        return Ok(event);
    }
    let (key, nonce) = key_for(&session_key)?;
    let content: Vec<String> = fields.into_iter().map(std::mem::take).collect();
    let plain = postcard::to_allocvec(&content).map_err(|error| error.to_string())?;
    let aad = associated_data(&event, &key.id, &session_key)?;
    let ciphertext = Aes256Gcm::new(&key.bytes.into())
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &plain,
                aad: &aad,
            },
        )
        .map_err(|_| "encryption failed".to_owned())?;
    Ok(Event::Sealed(Sealed {
        session_key,
        key_id: key.id.clone(),
        nonce,
        ciphertext,
        skeleton: Box::new(event),
    }))
}

/// The recorded event, content restored.
pub fn open(sealed: &Sealed, key: &[u8; KEY_BYTES]) -> Result<Event, String> {
    let aad = associated_data(&sealed.skeleton, &sealed.key_id, &sealed.session_key)?;
    let plain = Aes256Gcm::new(key.into())
        .decrypt(
            Nonce::from_slice(&sealed.nonce),
            Payload {
                msg: &sealed.ciphertext,
                aad: &aad,
            },
        )
        .map_err(|_| "the sealed content does not authenticate under its key".to_owned())?;
    let content: Vec<String> = postcard::from_bytes(&plain)
        .map_err(|error| format!("the sealed content does not decode: {error}"))?;
    let mut event = (*sealed.skeleton).clone();
    let scope = Some(sealed.session_key.as_str());
    let Some((_, fields)) = content_fields(&mut event, scope) else {
        return Err(format!(
            "a sealed {} carries no content fields",
            sealed.skeleton.kind()
        ));
    };
    if fields.len() != content.len() {
        return Err(format!(
            "a sealed {} holds {} content fields, its kind has {}",
            sealed.skeleton.kind(),
            content.len(),
            fields.len()
        ));
    }
    for (field, text) in fields.into_iter().zip(content) {
        *field = text;
    }
    Ok(event)
}

/// `skeleton` with every content field set to `marker`.
fn fill(skeleton: &Event, marker: &str) -> Event {
    let mut event = skeleton.clone();
    // The scope only decides whether RPC params and HTTP answers count as
    // content; a sealed one always did.
    if let Some((_, fields)) = content_fields(&mut event, Some("")) {
        for field in fields {
            *field = marker.to_owned();
        }
    }
    event
}

fn associated_data(skeleton: &Event, key_id: &str, session_key: &str) -> Result<Vec<u8>, String> {
    let skeleton = postcard::to_allocvec(skeleton).map_err(|error| error.to_string())?;
    let mut aad = Vec::with_capacity(AAD_TAG.len() + key_id.len() + session_key.len() + 34);
    aad.extend_from_slice(AAD_TAG);
    aad.extend_from_slice(key_id.as_bytes());
    aad.push(0);
    aad.extend_from_slice(session_key.as_bytes());
    aad.push(0);
    aad.extend_from_slice(blake3::hash(&skeleton).as_bytes());
    Ok(aad)
}

/// Seals events on their way into the log (see [`crate::Log::seal_with`]).
/// The gateway's keyring implements it: it finds or creates the session's
/// key (durably, before the record that needs it) and draws the nonce.
pub trait Sealer: Send + Sync {
    /// `scope` is the session an event without its own session key belongs
    /// to ([`crate::NewEvent::sealed_for`]).
    fn seal(&self, event: Event, scope: Option<&str>) -> Result<Event, String>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{
        DeliveryPrepared, HttpRequestAnswered, LlmCallCompleted, RpcReceived, ToolCallFinished,
        Usage,
    };

    struct OneKey([u8; KEY_BYTES]);

    impl ContentKeys for OneKey {
        fn lookup(&self, _key_id: &str) -> KeyLookup {
            KeyLookup::Live(self.0)
        }
    }

    fn key() -> ContentKey {
        ContentKey {
            id: "00112233445566778899aabbccddeeff".to_owned(),
            bytes: [9u8; KEY_BYTES],
        }
    }

    fn contents() -> Vec<(Event, Option<&'static str>)> {
        vec![
            (
                Event::LlmCallCompleted(LlmCallCompleted {
                    call_id: "c".into(),
                    run_id: "r".into(),
                    session_key: "s".into(),
                    provider: "p".into(),
                    model: "m".into(),
                    outcome: LlmOutcome::Ok {
                        response: "secret reply".into(),
                        stop_reason: "stop".into(),
                    },
                    usage: Usage::default(),
                    cost_micro_usd: 1,
                    latency_ms: 2,
                }),
                None,
            ),
            (
                Event::ToolCallFinished(ToolCallFinished {
                    tool_call_id: "t".into(),
                    session_key: "s".into(),
                    outcome: ToolOutcome::Error {
                        message: "secret error".into(),
                    },
                    duration_ms: 3,
                }),
                None,
            ),
            (
                Event::DeliveryPrepared(DeliveryPrepared {
                    delivery_id: "d".into(),
                    idempotency_key: "k".into(),
                    channel: "telegram".into(),
                    target: "42".into(),
                    session_key: Some("s".into()),
                    text: "secret text".into(),
                }),
                None,
            ),
            (
                Event::RpcReceived(RpcReceived {
                    conn_id: "c".into(),
                    request_id: "1".into(),
                    method: "chat.send".into(),
                    params_redacted: r#"{"message":"secret params"}"#.into(),
                }),
                Some("s"),
            ),
            (
                Event::HttpRequestAnswered(HttpRequestAnswered {
                    endpoint: "responses".into(),
                    idempotency_key: "k".into(),
                    run_id: "r".into(),
                    status: 200,
                    answer: "secret answer".into(),
                }),
                Some("s"),
            ),
        ]
    }

    #[test]
    fn every_kind_of_content_seals_opens_and_withholds_alike() {
        for (event, scope) in contents() {
            let sealed = seal(event.clone(), scope, |_| Ok((key(), [1u8; NONCE_BYTES]))).unwrap();
            let Event::Sealed(inner) = &sealed else {
                panic!("{} is sealed", event.kind())
            };
            assert_eq!(inner.session_key, "s");
            let bytes = postcard::to_allocvec(&sealed).unwrap();
            assert!(!bytes.windows(6).any(|window| window == b"secret"));
            assert_eq!(sealed.kind(), event.kind());
            assert_eq!(*sealed.read(&OneKey(key().bytes)).event, event);
            let wrong = sealed.read(&OneKey([8u8; KEY_BYTES]));
            assert!(matches!(wrong.content, ContentState::Unreadable(_)));
            assert!(format!("{:?}", wrong.event).contains("[unreadable:"));
            assert!(!format!("{:?}", sealed.read(&NoKeys).event).contains("secret"));
        }
    }

    #[test]
    fn events_without_a_scope_or_content_stay_as_they_are() {
        for (event, scope) in contents() {
            if scope.is_some() {
                // An RPC or HTTP answer nobody scoped is not session content.
                assert_eq!(
                    seal(event.clone(), None, |_| Ok((key(), [1u8; 12]))).unwrap(),
                    event
                );
            }
        }
        let refused = Event::ToolCallFinished(ToolCallFinished {
            tool_call_id: "t".into(),
            session_key: "s".into(),
            outcome: ToolOutcome::TimedOut,
            duration_ms: 3,
        });
        assert_eq!(
            seal(refused.clone(), None, |_| Ok((key(), [1u8; 12]))).unwrap(),
            refused
        );
    }
}
