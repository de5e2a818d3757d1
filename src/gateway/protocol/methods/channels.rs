//! `channels.status`, `channels.start`, `channels.stop` and `send`: the
//! channel accounts as operators see and drive them.

use std::sync::Arc;

use clawback_projections::deliveries::DeliveryOutcome;
use serde_json::{Map, Value, json};

use super::super::frames::{ErrorShape, codes};
use super::{Params, Reply, now_ms};
use crate::channels::outbox::{self, Prepared};
use crate::channels::{Target, manager};
use crate::gateway::Gateway;

/// The channels clawback can run, in `channelOrder`.
const CHANNELS: &[(&str, &str)] = &[
    ("telegram", "Telegram"),
    ("discord", "Discord"),
    ("slack", "Slack"),
    ("matrix", "Matrix"),
    ("webhook", "Webhook"),
];

pub fn status(gateway: &Gateway, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let params = Params::closed(
        "channels.status",
        params,
        &["probe", "timeoutMs", "channel"],
    )?;
    params.opt_bool("probe")?;
    params.opt_u64("timeoutMs")?;
    let only = params.opt_str("channel")?;
    let wanted = |channel: &str| only.is_none_or(|only| only == channel);
    let mut channels = Map::new();
    let mut accounts = Map::new();
    let mut defaults = Map::new();
    let mut issues = Vec::new();
    let running = gateway.channels.accounts();
    let problems = gateway.channels.problems();
    for (channel, _) in CHANNELS.iter().filter(|(channel, _)| wanted(channel)) {
        let mut entries: Vec<Value> = Vec::new();
        for account in running.iter().filter(|account| account.channel == *channel) {
            entries.push(account.snapshot(gateway));
            for message in &account.settings.issues {
                issues.push(json!({"channel": channel, "accountId": account.account_id,
                                   "kind": "config", "message": message}));
            }
        }
        for (_, account_id, problem) in problems.iter().filter(|(c, _, _)| c == channel) {
            entries.push(
                json!({"accountId": account_id, "enabled": true, "configured": true,
                                "running": false, "connected": false, "lastError": problem}),
            );
            issues.push(json!({"channel": channel, "accountId": account_id, "kind": "config",
                               "message": problem, "fix": format!("correct channels.{channel} and call channels.start")}));
        }
        let configured = !entries.is_empty();
        let any_running = entries.iter().any(|entry| entry["running"] == json!(true));
        channels.insert(
            (*channel).to_owned(),
            json!({"configured": configured, "running": any_running}),
        );
        accounts.insert((*channel).to_owned(), Value::Array(entries));
        defaults.insert((*channel).to_owned(), json!("default"));
    }
    issues.truncate(50);
    Ok(json!({
        "ts": now_ms(),
        "channelOrder": CHANNELS.iter().map(|(id, _)| *id).filter(|id| wanted(id)).collect::<Vec<_>>(),
        "channelLabels": CHANNELS.iter().filter(|(id, _)| wanted(id))
            .map(|(id, label)| ((*id).to_owned(), json!(label))).collect::<Map<_, _>>(),
        "channels": channels,
        "channelAccounts": accounts,
        "channelDefaultAccountId": defaults,
        "statusIssues": issues,
    }))
}

fn channel_param<'a>(
    method: &'a str,
    params: Option<&'a Value>,
) -> Result<(&'a str, Option<&'a str>), ErrorShape> {
    let params = Params::closed(method, params, &["channel", "accountId"])?;
    let channel = params.str("channel")?;
    let account = params.opt_str("accountId")?;
    if !CHANNELS.iter().any(|(id, _)| *id == channel) {
        return Err(ErrorShape::invalid(format!(
            "unsupported channel: {channel}"
        )));
    }
    if account.is_some_and(|account| account != "default") {
        return Err(ErrorShape::invalid(format!(
            "clawback runs one account per channel: only accountId \"default\" exists for {channel}"
        )));
    }
    Ok((channel, account))
}

/// Starts (or restarts) a channel from the current config.
pub async fn start(gateway: &Arc<Gateway>, params: Option<&Value>) -> Reply {
    let result = match channel_param("channels.start", params) {
        Err(error) => Err(error),
        Ok((channel, _)) => match manager::restart(gateway, channel).await {
            Ok(()) => {
                Ok(json!({"ok": true, "channel": channel, "accountId": "default", "started": true}))
            }
            Err(message) => Err(ErrorShape::new(codes::UNAVAILABLE, message)),
        },
    };
    Reply::answer(result)
}

pub fn stop(gateway: &Gateway, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let (channel, _) = channel_param("channels.stop", params)?;
    let Some(account) = gateway.channels.account(channel, "default") else {
        return Err(ErrorShape::invalid(format!(
            "channel {channel} is not configured"
        )));
    };
    account.stop();
    Ok(json!({"ok": true, "channel": channel, "accountId": "default", "stopped": true}))
}

const SEND_PARAMS: &[&str] = &[
    "to",
    "message",
    "mediaUrl",
    "mediaUrls",
    "buffer",
    "filename",
    "contentType",
    "asVoice",
    "gifPlayback",
    "channel",
    "accountId",
    "agentId",
    "replyToId",
    "threadId",
    "forceDocument",
    "silent",
    "parseMode",
    "sessionKey",
    "idempotencyKey",
];

/// `send`: a message to a chat through the outbox, answered once the
/// platform took it (or refused it for good).
pub async fn send(gateway: &Arc<Gateway>, params: Option<&Value>) -> Reply {
    Reply::answer(send_inner(gateway, params).await)
}

async fn send_inner(gateway: &Arc<Gateway>, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let params = Params::closed("send", params, SEND_PARAMS)?;
    let to = params.str("to")?.trim();
    let key = params.str("idempotencyKey")?;
    let message = params.opt_str("message")?.unwrap_or_default();
    let media = ["mediaUrl", "mediaUrls", "buffer"]
        .iter()
        .any(|key| params.get(key).is_some());
    if message.trim().is_empty() && !media {
        return Err(ErrorShape::invalid(
            "invalid send params: text or media is required",
        ));
    }
    if to.is_empty() || key.trim().is_empty() {
        return Err(params.invalid("to and idempotencyKey must not be empty"));
    }
    if media {
        return Err(ErrorShape::new(
            codes::UNAVAILABLE,
            "media is not available in clawback's channels yet: send text",
        ));
    }
    let running = gateway.channels.accounts();
    let channel = match params.opt_str("channel")? {
        Some(channel) => channel.to_owned(),
        None => match running.as_slice() {
            [] => {
                return Err(ErrorShape::invalid(
                    "Error: Channel is required (no configured channels detected).",
                ));
            }
            [only] => only.channel.to_owned(),
            several => {
                let names: Vec<&str> = several.iter().map(|account| account.channel).collect();
                return Err(ErrorShape::invalid(format!(
                    "Error: Channel is required when several channels are configured: {}",
                    names.join(", ")
                )));
            }
        },
    };
    let account_id = params.opt_str("accountId")?.unwrap_or("default");
    let Some(account) = gateway.channels.account(&channel, account_id) else {
        return Err(ErrorShape::invalid(format!(
            "unsupported channel: {channel}"
        )));
    };
    let to = strip_prefix(&channel, to);
    let target = Target {
        account: account_id.to_owned(),
        chat: to.clone(),
        thread: params.opt_str("threadId")?.map(str::to_owned),
    };
    let delivery_key = format!("send:{key}");
    let answer = |message_id: Option<String>| json!({"runId": key, "messageId": message_id, "channel": channel, "chatId": to});
    let prepared = outbox::prepare(
        gateway,
        &account,
        params.opt_str("sessionKey")?,
        &target,
        message.to_owned(),
        delivery_key,
    )
    .await
    .map_err(|error| ErrorShape::new(codes::UNAVAILABLE, error))?;
    match prepared {
        Prepared::Queued(outcome) => match outcome.await {
            Ok(Ok(message_id)) => Ok(answer(message_id)),
            Ok(Err(error)) => Err(ErrorShape::new(codes::UNAVAILABLE, error)),
            Err(_) => Err(ErrorShape::new(
                codes::UNAVAILABLE,
                "the channel's sender stopped",
            )),
        },
        // A repeated key: the first send's outcome, never a second message.
        Prepared::Already(delivery_id) => {
            let state = gateway.state.read().expect("state lock");
            let finished = state
                .deliveries
                .finished
                .iter()
                .find(|finished| finished.delivery_id == delivery_id);
            match finished.map(|finished| &finished.outcome) {
                Some(DeliveryOutcome::Sent {
                    platform_message_id,
                }) => Ok(answer(platform_message_id.clone())),
                Some(DeliveryOutcome::GaveUp { error }) => {
                    Err(ErrorShape::new(codes::UNAVAILABLE, error.clone()))
                }
                None => Err(ErrorShape {
                    retryable: Some(true),
                    retry_after_ms: Some(1_000),
                    ..ErrorShape::new(
                        codes::UNAVAILABLE,
                        format!("a send with idempotencyKey {key} is still in progress"),
                    )
                }),
            }
        }
    }
}

/// `telegram:123` and `tg:123` name the chat `123` on Telegram;
/// `matrix:room:!id:server` and `room:!id:server` the room `!id:server`.
fn strip_prefix(channel: &str, to: &str) -> String {
    let prefixes: &[&str] = match channel {
        "telegram" => &["telegram:", "tg:"],
        "discord" => &["discord:", "channel:"],
        "slack" => &["slack:", "channel:"],
        // OpenClaw's Matrix target forms: `matrix:room:!id`, `room:!id`, ...
        "matrix" => &[
            "matrix:room:",
            "matrix:channel:",
            "matrix:user:",
            "matrix:",
            "room:",
            "channel:",
            "user:",
        ],
        other => &[other],
    };
    for prefix in prefixes {
        let prefix = if prefix.ends_with(':') {
            (*prefix).to_owned()
        } else {
            format!("{prefix}:")
        };
        if let Some(rest) = to.strip_prefix(&prefix) {
            return rest.to_owned();
        }
    }
    to.to_owned()
}
