//! `message.action`: OpenClaw's channel actions beyond sending text, of
//! which clawback does `react` (an emoji on a chat message, or taking the
//! bot's away), through the outbox like a message.
//!
//! Why only `react`: the other actions (topics, pins, polls, edits...) are
//! platform features clawback's channels do not model yet; each is refused
//! by name rather than ignored.

use std::sync::Arc;

use clawback_projections::deliveries::DeliveryOutcome;
use serde_json::{Value, json};

use super::super::frames::{ErrorShape, codes};
use super::channels::{default_account_id, strip_prefix};
use super::{Params, Reply};
use crate::channels::Target;
use crate::channels::outbox::{self, Prepared};
use crate::channels::reaction::Reaction;
use crate::gateway::Gateway;

pub async fn action(gateway: &Arc<Gateway>, params: Option<&Value>) -> Reply {
    Reply::answer(inner(gateway, params).await)
}

async fn inner(gateway: &Arc<Gateway>, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let params = Params::closed(
        "message.action",
        params,
        &[
            "channel",
            "action",
            "params",
            "accountId",
            "sessionKey",
            "idempotencyKey",
        ],
    )?;
    let channel = params.str("channel")?.trim().to_owned();
    let action = params.str("action")?;
    let key = params.str("idempotencyKey")?;
    if key.trim().is_empty() {
        return Err(params.invalid("idempotencyKey must not be empty"));
    }
    if action != "react" {
        return Err(ErrorShape::new(
            codes::UNAVAILABLE,
            format!(
                "message.action {action:?} is not available in clawback's channels yet (react is)"
            ),
        ));
    }
    let inner = params.get("params").cloned().unwrap_or_else(|| json!({}));
    let text = |name: &str| {
        inner
            .get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|value| !value.is_empty())
    };
    let to = text("chatId")
        .or_else(|| text("to"))
        .or_else(|| text("target"))
        .ok_or_else(|| params.invalid("params.chatId (or to) is required"))?;
    let message_id =
        text("messageId").ok_or_else(|| params.invalid("params.messageId is required"))?;
    let remove = inner
        .get("remove")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let emoji = text("emoji").unwrap_or_default();
    if emoji.is_empty() {
        return Err(params.invalid("params.emoji is required (with remove: true to take it away)"));
    }
    let account_id = match text("accountId").or(params.opt_str("accountId")?) {
        Some(named) => named.to_lowercase(),
        None => default_account_id(gateway, &channel),
    };
    let Some(account) = gateway.channels.account(&channel, &account_id) else {
        return Err(params.invalid(format!("{channel} has no running account {account_id:?}")));
    };
    if !account.platform.reacts() {
        return Err(ErrorShape::new(
            codes::UNAVAILABLE,
            format!("clawback cannot set reactions on {channel}"),
        ));
    }
    let chat = strip_prefix(&channel, to);
    // Telegram and Slack ids are recorded as `<chat>:<id>`; a bare id from
    // the caller is qualified the same way.
    let qualified = match channel.as_str() {
        "telegram" | "slack" if !message_id.contains(':') => format!("{chat}:{message_id}"),
        _ => message_id.to_owned(),
    };
    let target = Target {
        account: account_id,
        chat: chat.clone(),
        thread: None,
    };
    let reaction = Reaction {
        message_id: qualified,
        emoji: emoji.to_owned(),
        remove,
        undoes: None,
        set_id: None,
    };
    let prepared = outbox::prepare_reaction(
        gateway,
        &account,
        params.opt_str("sessionKey")?,
        &target,
        reaction,
        format!("react:{key}"),
    )
    .await
    .map_err(|error| ErrorShape::new(codes::UNAVAILABLE, error))?;
    let answer = json!({"ok": true, "channel": channel, "action": "react", "chatId": chat,
                        "messageId": message_id, "emoji": emoji, "removed": remove});
    match prepared {
        Prepared::Queued(outcome) => match outcome.await {
            Ok(Ok(_)) => Ok(answer),
            Ok(Err(error)) => Err(ErrorShape::new(codes::UNAVAILABLE, error)),
            Err(_) => Err(ErrorShape::new(
                codes::UNAVAILABLE,
                "the channel's sender stopped",
            )),
        },
        Prepared::Already(delivery_id) => {
            let state = gateway.state.read().expect("state lock");
            match state.deliveries.outcome(&delivery_id) {
                Some(DeliveryOutcome::Sent { .. }) => Ok(answer),
                Some(DeliveryOutcome::GaveUp { error }) => {
                    Err(ErrorShape::new(codes::UNAVAILABLE, error.clone()))
                }
                None => Err(ErrorShape {
                    retryable: Some(true),
                    retry_after_ms: Some(1_000),
                    ..ErrorShape::new(
                        codes::UNAVAILABLE,
                        format!("a reaction with idempotencyKey {key} is still in progress"),
                    )
                }),
            }
        }
    }
}
