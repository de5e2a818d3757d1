//! A platform message taken in: recognised if it was already, decided
//! (policy, routing), recorded, and its turn started.
//!
//! Why the record comes before the platform's acknowledgement: a message
//! acknowledged and then lost in a crash is never redelivered; a message
//! recorded and then redelivered is recognised here from the log. The
//! acknowledgement (a webhook's 200, a polling offset moving past the
//! update) is the adapter's, after [`receive`] returns.

use std::sync::Arc;

use clawback_events::Actor;
use clawback_events::event::{Admission, ChannelMessageReceived, Event};

use super::manager::Account;
use super::routing::{self, Chat, ChatKind};
use super::{media, pairing, policy, reply, settings};
use crate::gateway::Gateway;
use crate::gateway::protocol::methods::agents::default_agent;
use crate::gateway::protocol::methods::now_ms;

/// A message as an adapter hands it over.
#[derive(Clone, Debug)]
pub struct Inbound {
    /// Unique within the account (Telegram: `<chat>:<message id>`).
    pub platform_message_id: String,
    /// Where the account's stream resumes after this message.
    pub cursor: Option<String>,
    pub chat: Chat,
    pub sender_id: String,
    pub sender_name: Option<String>,
    pub text: String,
    /// The bot was mentioned or replied to (groups answer only then, unless
    /// configured otherwise).
    pub mentioned: bool,
    /// What the message carries that clawback cannot read yet (`a photo`):
    /// recorded and refused with that reason.
    pub unsupported: Option<String>,
    /// Files the message carries (photos, documents, voice notes): fetched
    /// for an admitted message and noted in its recorded text.
    pub media: Vec<super::media::MediaRef>,
    /// A group message already judged by the platform's own rules (Discord's
    /// `guilds`), instead of the generic `groups` policy.
    pub group_verdict: Option<Result<(), String>>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// Recorded now; `admitted` says whether a turn answers it.
    Taken { admitted: bool },
    /// Recorded before (a redelivery): nothing happens again.
    Duplicate,
}

/// The run id of the turn that answers a message: derived from the
/// message's identity, so it can only ever start one run.
pub fn run_id(channel: &str, account_id: &str, platform_message_id: &str) -> String {
    let mut hasher = blake3::Hasher::new();
    for part in [channel, account_id, platform_message_id] {
        hasher.update(part.as_bytes());
        hasher.update(&[0]);
    }
    format!("ch-{}", &hasher.finalize().to_hex()[..32])
}

/// Removes a message from the hub's recording set however `receive` ends.
struct Recording<'a> {
    gateway: &'a Gateway,
    key: (String, String, String),
}

impl Drop for Recording<'_> {
    fn drop(&mut self) {
        self.gateway
            .channels
            .recording
            .lock()
            .expect("recording lock")
            .remove(&self.key);
    }
}

pub async fn receive(
    gateway: &Arc<Gateway>,
    account: &Arc<Account>,
    mut message: Inbound,
) -> Result<Received, String> {
    let channel = account.channel;
    let key = (
        channel.to_owned(),
        account.account_id.clone(),
        message.platform_message_id.clone(),
    );
    if gateway
        .state
        .read()
        .expect("state lock")
        .channels
        .seen(&key.0, &key.1, &key.2)
    {
        return Ok(Received::Duplicate);
    }
    if !gateway
        .channels
        .recording
        .lock()
        .expect("recording lock")
        .insert(key.clone())
    {
        return Ok(Received::Duplicate);
    }
    let _recording = Recording {
        gateway,
        key: key.clone(),
    };
    let config = gateway.config();
    let decided = match (&message.unsupported, &message.group_verdict) {
        (Some(what), _) => Err(format!("{what} cannot be read by clawback yet")),
        (None, Some(verdict)) if message.chat.kind != ChatKind::Direct => verdict.clone(),
        (None, _) => policy::admit(
            &account.settings.access,
            channel,
            account.settings.allow_prefixes,
            &message.chat,
            &message.sender_id,
            message.mentioned,
        ),
    };
    // A DM the allowlist refused may be a pairing: a sender paired
    // earlier, or a new request whose code is sent back.
    let mut pairing_request = None;
    let decided = match decided {
        Err(reason)
            if message.chat.kind == ChatKind::Direct
                && message.unsupported.is_none()
                && pairing::applies(account) =>
        {
            match pairing::check(gateway, account, &message, now_ms()) {
                pairing::Verdict::Admit => Ok(()),
                pairing::Verdict::Refuse(why) => Err(why),
                pairing::Verdict::Request(request) => {
                    tracing::info!(channel, sender = %message.sender_id, request = %request.request_id, "pairing requested ({reason})");
                    let why = format!("pairing requested (request {})", request.request_id);
                    pairing_request = Some(request);
                    Err(why)
                }
            }
        }
        other => other,
    };
    let admission = match decided {
        Err(reason) => Admission::Refused { reason },
        Ok(()) => {
            let agent_id = routing::agent_for(
                &settings::bindings(&config),
                &default_agent(&config),
                channel,
                &account.account_id,
                &message.chat,
                &message.sender_id,
            );
            let session_key = routing::session_key(
                &settings::scopes(&config),
                &agent_id,
                channel,
                &account.account_id,
                &message.chat,
                &message.sender_id,
            );
            Admission::Admitted {
                agent_id,
                session_key,
                run_id: run_id(channel, &account.account_id, &message.platform_message_id),
            }
        }
    };
    if matches!(admission, Admission::Admitted { .. }) && !message.media.is_empty() {
        message.text = fetch_media(gateway, account, &message).await;
    }
    let event = ChannelMessageReceived {
        channel: channel.to_owned(),
        account_id: account.account_id.clone(),
        platform_message_id: message.platform_message_id.clone(),
        cursor: message.cursor.clone(),
        chat_kind: message.chat.kind.as_str().to_owned(),
        chat_id: message.chat.id.clone(),
        thread_id: message.chat.thread_id.clone(),
        sender_id: message.sender_id.clone(),
        sender_name: message.sender_name.clone(),
        text: message.text.clone(),
        admission: admission.clone(),
    };
    let (stream, correlation) = match &admission {
        Admission::Admitted {
            session_key,
            run_id,
            ..
        } => (session_key.clone(), run_id.clone()),
        Admission::Refused { reason } => {
            tracing::info!(channel, account = %account.account_id, sender = %message.sender_id, %reason, "channel message refused");
            (
                format!("channel:{channel}"),
                message.platform_message_id.clone(),
            )
        }
    };
    let actor = Actor::Channel {
        channel: channel.to_owned(),
        sender: message.sender_id.clone(),
    };
    let mut events = vec![Event::ChannelMessageReceived(event)];
    events.extend(pairing_request.clone().map(Event::ChannelPairingRequested));
    crate::agent::compact::append(gateway, &stream, &actor, &correlation, events).await?;
    if let Some(request) = pairing_request {
        let text = pairing::code_message(label(channel), &request.sender_id, &request.code);
        let target = super::Target {
            account: account.account_id.clone(),
            chat: request.chat_id.clone(),
            thread: None,
        };
        let key = format!("pair:{}", request.request_id);
        super::outbox::prepare(gateway, account, None, &target, text, key).await?;
    }
    let Admission::Admitted {
        agent_id,
        session_key,
        run_id,
    } = admission
    else {
        return Ok(Received::Taken { admitted: false });
    };
    let target = super::Target {
        account: account.account_id.clone(),
        chat: message.chat.id.clone(),
        thread: message.chat.thread_id.clone(),
    };
    let ack = ack(gateway, account, &message, &session_key, &target, &run_id).await;
    reply::spawn(
        gateway.clone(),
        account.clone(),
        reply::Turn {
            run_id,
            session_key,
            agent_id,
            prompt: prompt(&message),
            origin: origin(channel, &account.account_id, &message),
            target,
            actor,
            ack,
        },
    );
    Ok(Received::Taken { admitted: true })
}

/// OpenClaw's ack reaction on an admitted message, when configured and
/// in scope: put in the outbox (ahead of the reply) under the run's key,
/// so it is set once however often the message arrives.
async fn ack(
    gateway: &Gateway,
    account: &Account,
    message: &Inbound,
    session_key: &str,
    target: &super::Target,
    run_id: &str,
) -> Option<super::reaction::Reaction> {
    let ack = account.settings.ack.as_ref()?;
    if !account.platform.reacts() || !ack.applies(message.chat.kind, message.mentioned) {
        return None;
    }
    let reaction = super::reaction::Reaction {
        message_id: message.platform_message_id.clone(),
        emoji: ack.emoji.clone(),
        remove: false,
        undoes: None,
        set_id: None,
    };
    let key = format!("ack:{run_id}");
    match super::outbox::prepare_reaction(
        gateway,
        account,
        Some(session_key),
        target,
        reaction.clone(),
        key,
    )
    .await
    {
        Ok(_) => Some(reaction),
        Err(error) => {
            tracing::warn!(channel = account.channel, %error, "the ack reaction was not prepared");
            None
        }
    }
}

/// The message's text with a note per file: where it was stored, or why
/// it was not. A failed download is noted, not retried: the message is
/// still answered (the sender can send the file again).
async fn fetch_media(gateway: &Gateway, account: &Account, message: &Inbound) -> String {
    let cap = account.settings.media_max_bytes;
    let channel = account.channel;
    let mut notes = Vec::with_capacity(message.media.len());
    for media in &message.media {
        let fetched = match media.size {
            Some(size) if size > cap => Err(media::DownloadError::TooLarge(Some(size))),
            _ => account.platform.download(media, cap).await,
        };
        let stored = match fetched {
            Ok(bytes) => media::store(&gateway.state_root, &bytes)
                .await
                .map_err(media::DownloadError::Failed),
            Err(error) => Err(error),
        };
        notes.push(match stored {
            Ok(stored) => media::attached_note(channel, media, &stored),
            Err(error) => {
                tracing::warn!(channel, account = %account.account_id, file = %media.file_id, ?error, "inbound file not downloaded");
                media::missing_note(channel, media, cap, &error)
            }
        });
    }
    media::with_notes(&message.text, &notes)
}

/// A channel's name as people write it.
pub fn label(channel: &str) -> &'static str {
    match channel {
        "telegram" => "Telegram",
        "discord" => "Discord",
        "slack" => "Slack",
        "matrix" => "Matrix",
        "webhook" => "Webhook",
        _ => "chat",
    }
}

/// What the model reads: the text, with its sender named in groups (where
/// several people talk).
pub fn prompt(message: &Inbound) -> String {
    match message.chat.kind {
        ChatKind::Direct => message.text.clone(),
        ChatKind::Group | ChatKind::Channel => {
            let who = message.sender_name.as_deref().unwrap_or(&message.sender_id);
            format!("{who}: {}", message.text)
        }
    }
}

/// The origin a turn's user message records: the channel, the sender,
/// and the platform id qualified by its account.
pub(super) fn origin(
    channel: &str,
    account_id: &str,
    message: &Inbound,
) -> clawback_events::event::MessageOrigin {
    clawback_events::event::MessageOrigin {
        channel: channel.to_owned(),
        sender: message.sender_id.clone(),
        platform_message_id: Some(format!("{account_id}:{}", message.platform_message_id)),
    }
}
