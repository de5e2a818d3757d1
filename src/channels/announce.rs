//! Results that are not replies, sent to a chat: a cron job's `delivery`
//! (`mode: "announce"`) and a hook's `deliver`, OpenClaw's
//! `channel`/`to`/`accountId` with `channel: "last"` meaning the chat the
//! session's user last spoke from.
//!
//! Why through the outbox like a reply: the text is `delivery.prepared`
//! before the send, under a key derived from the run (so a retried hook or
//! a restart never sends it twice), the account's delivery policy applies,
//! and a send a restart cannot confirm is reported, not repeated.

use std::sync::Arc;
use std::time::Duration;

use clawback_projections::deliveries::DeliveryOutcome;
use serde_json::Value;

use super::manager::Account;
use super::outbox::{self, Prepared};
use super::platform::Target;
use crate::gateway::Gateway;
use crate::gateway::protocol::methods::channels::{default_account_id, strip_prefix};

/// How long the caller waits for the platform's answer; past it the
/// delivery stays in the outbox and its outcome is recorded when it comes.
const OUTCOME_WAIT: Duration = Duration::from_secs(60);

/// Where a result goes, as the job or hook wrote it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Destination {
    /// A channel id, or `None`/`"last"`: the session's last chat.
    pub channel: Option<String>,
    /// A chat on that channel (`telegram:123`, `123`, `room:!id:hs`).
    pub to: Option<String>,
    pub account_id: Option<String>,
}

impl Destination {
    /// `channel`, `to` and `accountId` from a job's `delivery` or a hook's
    /// body: strings when present.
    pub fn read(object: &Value) -> Result<Destination, String> {
        let text = |key: &str| match object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.trim().to_owned())),
            Some(_) => Err(format!("{key} must be a string")),
        };
        Ok(Destination {
            channel: text("channel")?,
            to: text("to")?,
            account_id: text("accountId")?.map(|id| id.to_lowercase()),
        })
    }

    /// Whether anything was named (else the last chat is implied).
    pub fn is_explicit(&self) -> bool {
        self.channel
            .as_deref()
            .is_some_and(|channel| channel != "last")
            || self.to.is_some()
            || self.account_id.is_some()
    }
}

/// What became of an announcement.
#[derive(Debug, PartialEq, Eq)]
pub enum Announced {
    /// The platform took it (its message id, if it gave one).
    Delivered(Option<String>),
    /// Still in the outbox when the wait ended (a rate limit, an approval).
    Pending { delivery_id: String },
}

/// The account and chat `destination` names, resolving `last` from the
/// first of `sessions` whose user spoke on a channel.
pub fn resolve(
    gateway: &Gateway,
    destination: &Destination,
    sessions: &[String],
) -> Result<(Arc<Account>, Target), String> {
    let mut channel = destination
        .channel
        .clone()
        .filter(|channel| channel != "last");
    let mut to = destination.to.clone();
    // `to: "telegram:123"` picks the channel when none (or `last`) is named.
    if channel.is_none()
        && let Some(text) = &to
        && let Some((prefix, _)) = text.split_once(':')
    {
        let named = match prefix.to_lowercase().as_str() {
            "tg" | "telegram" => Some("telegram"),
            "discord" => Some("discord"),
            "slack" => Some("slack"),
            "matrix" => Some("matrix"),
            "webhook" => Some("webhook"),
            _ => None,
        };
        channel = named.map(str::to_owned);
    }
    if let (Some(named), Some(text)) = (&channel, &to) {
        to = Some(strip_prefix(named, text));
    }
    let last = || {
        let state = gateway.state.read().expect("state lock");
        sessions
            .iter()
            .find_map(|key| state.channels.last_routes.get(key).cloned())
    };
    let (channel, account_id, chat, thread) = match (channel, to) {
        (Some(channel), Some(chat)) => {
            let account = destination
                .account_id
                .clone()
                .unwrap_or_else(|| default_account_id(gateway, &channel));
            (channel, account, chat, None)
        }
        (channel, to) => {
            let Some(route) = last() else {
                return Err(format!(
                    "no last channel: the session {} has no message from a chat channel yet; \
                     name channel and to",
                    sessions.first().map_or("(none)", String::as_str)
                ));
            };
            if channel
                .as_ref()
                .is_some_and(|channel| *channel != route.channel)
            {
                return Err(format!(
                    "to is needed: the session's last chat is on {}, not {}",
                    route.channel,
                    channel.unwrap_or_default()
                ));
            }
            let same_chat = to.is_none();
            let account = destination.account_id.clone().unwrap_or(route.account_id);
            let chat = to
                .map(|to| strip_prefix(&route.channel, &to))
                .unwrap_or(route.chat_id);
            let thread = if same_chat { route.thread_id } else { None };
            (route.channel, account, chat, thread)
        }
    };
    let Some(account) = gateway.channels.account(&channel, &account_id) else {
        return Err(format!(
            "channel {channel} has no running account {account_id:?}"
        ));
    };
    let target = Target {
        account: account_id,
        chat,
        thread,
    };
    Ok((account, target))
}

/// Sends `text` to `destination` through the outbox under `key`, waiting
/// a bounded time for the platform's answer.
pub async fn announce(
    gateway: &Gateway,
    destination: &Destination,
    sessions: &[String],
    text: &str,
    key: String,
) -> Result<Announced, String> {
    let (account, target) = resolve(gateway, destination, sessions)?;
    let session_key = sessions.first().map(String::as_str);
    let prepared = outbox::prepare(
        gateway,
        &account,
        session_key,
        &target,
        text.to_owned(),
        key.clone(),
    )
    .await?;
    match prepared {
        Prepared::Queued(outcome) => match tokio::time::timeout(OUTCOME_WAIT, outcome).await {
            Ok(Ok(Ok(message_id))) => Ok(Announced::Delivered(message_id)),
            Ok(Ok(Err(error))) => Err(error),
            Ok(Err(_)) => Err("the channel's sender stopped".to_owned()),
            Err(_) => Ok(Announced::Pending {
                delivery_id: gateway
                    .state
                    .read()
                    .expect("state lock")
                    .deliveries
                    .by_idempotency_key(&key)
                    .unwrap_or_default()
                    .to_owned(),
            }),
        },
        // Announced before (a retried hook, a repeated run): its outcome.
        Prepared::Already(delivery_id) => {
            let state = gateway.state.read().expect("state lock");
            match state.deliveries.outcome(&delivery_id) {
                Some(DeliveryOutcome::Sent {
                    platform_message_id,
                }) => Ok(Announced::Delivered(platform_message_id.clone())),
                Some(DeliveryOutcome::GaveUp { error }) => Err(error.clone()),
                None => Ok(Announced::Pending { delivery_id }),
            }
        }
    }
}

/// What became of a hook's announcement: OpenClaw's `completion`
/// `deliveryAttempted` and `delivered`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Attempt {
    pub attempted: bool,
    pub delivered: bool,
}

/// Announces a finished run's reply (a hook's), under `announce:<run id>`.
/// An implied `last` with no last chat sends nothing (the reply stays in
/// the session); a failure is logged with the reason.
pub async fn reply(
    gateway: &Gateway,
    destination: &Destination,
    sessions: &[String],
    outcome: &crate::agent::RunOutcome,
) -> Attempt {
    if !outcome.ok || outcome.text.trim().is_empty() {
        return Attempt::default();
    }
    if !destination.is_explicit() && resolve(gateway, destination, sessions).is_err() {
        return Attempt::default();
    }
    let key = format!("announce:{}", outcome.run_id);
    match announce(gateway, destination, sessions, &outcome.text, key).await {
        Ok(Announced::Delivered(_)) => Attempt {
            attempted: true,
            delivered: true,
        },
        Ok(Announced::Pending { .. }) => Attempt {
            attempted: true,
            delivered: false,
        },
        Err(error) => {
            tracing::warn!(run = %outcome.run_id, %error, "a run's reply was not announced");
            Attempt {
                attempted: true,
                delivered: false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn destinations_are_read_leniently_and_strictly_typed() {
        let read = |value| Destination::read(&value);
        assert_eq!(read(json!({})), Ok(Destination::default()));
        assert!(!read(json!({"channel": "last"})).unwrap().is_explicit());
        let named =
            read(json!({"channel": "telegram", "to": " 42 ", "accountId": "Work"})).expect("read");
        assert_eq!(named.to.as_deref(), Some("42"));
        assert_eq!(named.account_id.as_deref(), Some("work"));
        assert!(named.is_explicit());
        assert!(
            read(json!({"to": 42}))
                .unwrap_err()
                .contains("to must be a string")
        );
    }
}
