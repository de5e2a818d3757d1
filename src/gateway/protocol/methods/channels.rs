//! `channels.status`, `channels.start`, `channels.stop`, `channels.logout`
//! and `send`: the
//! channel accounts as operators see and drive them.

use std::sync::Arc;

use clawback_projections::deliveries::DeliveryOutcome;
use serde_json::{Map, Value, json};

use super::super::frames::{ErrorShape, codes};
use super::{Caller, Params, Reply, now_ms};
use crate::channels::outbox::{self, Prepared};
use crate::channels::settings::DEFAULT_ACCOUNT;
use crate::channels::{Target, manager, media, media_out};
use crate::gateway::Gateway;
use clawback_events::event::{ChannelLoggedOut, Event};

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
        defaults.insert(
            (*channel).to_owned(),
            json!(default_account_id(gateway, channel)),
        );
        accounts.insert((*channel).to_owned(), Value::Array(entries));
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

/// The account used when none is named: `default` when the channel has
/// one (OpenClaw's rule), else its first account.
pub fn default_account_id(gateway: &Gateway, channel: &str) -> String {
    let mut ids: Vec<String> = gateway
        .channels
        .accounts()
        .iter()
        .filter(|account| account.channel == channel)
        .map(|account| account.account_id.clone())
        .chain(
            gateway
                .channels
                .problems()
                .into_iter()
                .filter(|(problem_channel, _, _)| problem_channel == channel)
                .map(|(_, account_id, _)| account_id),
        )
        .collect();
    ids.sort();
    if ids.is_empty() || ids.iter().any(|id| id == DEFAULT_ACCOUNT) {
        DEFAULT_ACCOUNT.to_owned()
    } else {
        ids.swap_remove(0)
    }
}

/// `channel` and `accountId` (normalised as OpenClaw's: trimmed,
/// lowercased; absent means every account of the channel).
fn channel_param(
    method: &str,
    params: Option<&Value>,
) -> Result<(String, Option<String>), ErrorShape> {
    let params = Params::closed(method, params, &["channel", "accountId"])?;
    let channel = params.str("channel")?;
    let account = params
        .opt_str("accountId")?
        .map(|account| account.trim().to_lowercase())
        .filter(|account| !account.is_empty());
    if !CHANNELS.iter().any(|(id, _)| *id == channel) {
        return Err(ErrorShape::invalid(format!(
            "unsupported channel: {channel}"
        )));
    }
    Ok((channel.to_owned(), account))
}

/// Starts (or restarts) a channel's accounts, or the one named, from the
/// current config.
pub async fn start(gateway: &Arc<Gateway>, params: Option<&Value>) -> Reply {
    let result = match channel_param("channels.start", params) {
        Err(error) => Err(error),
        Ok((channel, only)) => match manager::restart(gateway, &channel, only.as_deref()).await {
            Ok(started) => Ok(json!({"ok": true, "channel": channel,
                "accountId": only.unwrap_or_else(|| default_account_id(gateway, &channel)),
                "accountIds": started, "started": true})),
            Err(message) => Err(ErrorShape::new(codes::UNAVAILABLE, message)),
        },
    };
    Reply::answer(result)
}

/// Stops a channel's accounts, or the one named.
pub fn stop(gateway: &Gateway, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let (channel, only) = channel_param("channels.stop", params)?;
    let accounts: Vec<_> = gateway
        .channels
        .accounts()
        .into_iter()
        .filter(|account| {
            account.channel == channel
                && only
                    .as_deref()
                    .is_none_or(|only| only == account.account_id)
        })
        .collect();
    if accounts.is_empty() {
        return Err(ErrorShape::invalid(match &only {
            Some(only) => format!("{channel} has no running account {only:?}"),
            None => format!("channel {channel} is not configured"),
        }));
    }
    let stopped: Vec<String> = accounts
        .iter()
        .map(|account| {
            account.stop();
            account.account_id.clone()
        })
        .collect();
    Ok(json!({"ok": true, "channel": channel,
        "accountId": only.unwrap_or_else(|| default_account_id(gateway, &channel)),
        "accountIds": stopped, "stopped": true}))
}

/// `channels.logout`: stops the account (the channel's default unless one
/// is named), forgets what clawback holds with the platform for it (the
/// adapter's `logout`), records `channel.logged.out` and answers as
/// OpenClaw (`channel`, `accountId`, `cleared`, `loggedOut`), with what was
/// done in `actions`. Credentials in the config stay there: the account
/// starts again on `channels.start` or a restart.
pub async fn logout(gateway: &Arc<Gateway>, caller: &Caller, params: Option<&Value>) -> Reply {
    let (channel, only) = match channel_param("channels.logout", params) {
        Ok(parsed) => parsed,
        Err(error) => return Reply::answer(Err(error)),
    };
    let account_id = only.unwrap_or_else(|| default_account_id(gateway, &channel));
    let Some(account) = gateway.channels.account(&channel, &account_id) else {
        return Reply::answer(Err(ErrorShape::invalid(format!(
            "{channel} has no account {account_id:?}"
        ))));
    };
    account.stop();
    let mut actions = vec![format!("stopped {channel} account {account_id}")];
    let (cleared, error) = match account.platform.logout().await {
        Ok(done) => {
            actions.extend(done.actions);
            (done.cleared, None)
        }
        Err(error) => (false, Some(error)),
    };
    let mut reply = Reply::answer(match &error {
        None => Ok(
            json!({"channel": channel, "accountId": account_id, "cleared": cleared,
                          "loggedOut": cleared, "actions": actions}),
        ),
        Some(error) => Err(ErrorShape::new(
            codes::UNAVAILABLE,
            format!("{channel} account {account_id} stopped, but {error}"),
        )),
    });
    reply.events.push((
        format!("channel:{channel}"),
        Event::ChannelLoggedOut(ChannelLoggedOut {
            channel: channel.clone(),
            account_id: account_id.clone(),
            cleared,
            actions,
            error,
            reviewer: caller.reviewer(),
        }),
    ));
    reply
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
                let mut names: Vec<&str> = several.iter().map(|account| account.channel).collect();
                names.dedup();
                if let [only] = names.as_slice() {
                    (*only).to_owned()
                } else {
                    return Err(ErrorShape::invalid(format!(
                        "Error: Channel is required when several channels are configured: {}",
                        names.join(", ")
                    )));
                }
            }
        },
    };
    let account_id = match params.opt_str("accountId")? {
        Some(named) => named.trim().to_lowercase(),
        None => default_account_id(gateway, &channel),
    };
    let Some(account) = gateway.channels.account(&channel, &account_id) else {
        return Err(ErrorShape::invalid(
            if running.iter().any(|account| account.channel == channel) {
                format!("{channel} has no account {account_id:?}")
            } else {
                format!("unsupported channel: {channel}")
            },
        ));
    };
    let to = strip_prefix(&channel, to);
    let delivery_key = format!("send:{key}");
    let repeated = gateway
        .state
        .read()
        .expect("state lock")
        .deliveries
        .by_idempotency_key(&delivery_key)
        .is_some();
    // A repeated key answers from its first send: the file is not fetched
    // again.
    let attachment = if media && !repeated {
        if !account.platform.sends_media() {
            return Err(ErrorShape::new(
                codes::UNAVAILABLE,
                format!("clawback cannot send files to {channel} yet: send text"),
            ));
        }
        let agent_id = match params.opt_str("agentId")? {
            Some(agent) => agent.to_owned(),
            None => crate::gateway::protocol::methods::agents::default_agent(&gateway.config()),
        };
        let described = media_out::Described {
            source: media_source(&params)?,
            filename: params.opt_str("filename")?,
            content_type: params.opt_str("contentType")?,
            voice: params.opt_bool("asVoice")?.unwrap_or(false),
        };
        let cap = account.settings.media_max_bytes;
        Some(
            media_out::resolve(gateway, &agent_id, cap, described)
                .await
                .map_err(|error| params.invalid(error))?,
        )
    } else {
        None
    };
    // A caption longer than platforms show goes as its own message after
    // the file (as OpenClaw's albums).
    let (caption, follow_up) = match &attachment {
        Some(_) if message.chars().count() > media::CAPTION_LIMIT => {
            (String::new(), Some(message.to_owned()))
        }
        _ => (message.to_owned(), None),
    };
    let target = Target {
        account: account_id.clone(),
        chat: to.clone(),
        thread: params.opt_str("threadId")?.map(str::to_owned),
    };
    let answer = |message_id: Option<String>| json!({"runId": key, "messageId": message_id, "channel": channel, "chatId": to});
    let session_key = params.opt_str("sessionKey")?;
    let prepared = outbox::prepare_with(
        gateway,
        &account,
        session_key,
        &target,
        caption,
        delivery_key.clone(),
        attachment,
    )
    .await
    .map_err(|error| ErrorShape::new(codes::UNAVAILABLE, error))?;
    let follow_up = match follow_up {
        Some(text) => Some(
            outbox::prepare(
                gateway,
                &account,
                session_key,
                &target,
                text,
                format!("{delivery_key}#text"),
            )
            .await
            .map_err(|error| ErrorShape::new(codes::UNAVAILABLE, error))?,
        ),
        None => None,
    };
    if let Some(Prepared::Queued(outcome)) = follow_up {
        // The caption's text: its failure is the send's failure too.
        if let Ok(Err(error)) = outcome.await {
            return Err(ErrorShape::new(codes::UNAVAILABLE, error));
        }
    }
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
            match state.deliveries.outcome(&delivery_id) {
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

/// The one file a `send` carries: `mediaUrl`, a one-entry `mediaUrls`,
/// or `buffer` (base64).
fn media_source(params: &Params<'_>) -> Result<media_out::Source, ErrorShape> {
    let mut sources = Vec::new();
    if let Some(url) = params.opt_str("mediaUrl")? {
        sources.push(media_out::Source::Url(url.trim().to_owned()));
    }
    if let Some(urls) = params.get("mediaUrls") {
        let urls = urls
            .as_array()
            .ok_or_else(|| params.invalid("mediaUrls must be an array of strings"))?;
        for url in urls {
            let url = url
                .as_str()
                .ok_or_else(|| params.invalid("mediaUrls must be an array of strings"))?;
            sources.push(media_out::Source::Url(url.trim().to_owned()));
        }
    }
    if let Some(buffer) = params.opt_str("buffer")? {
        sources.push(media_out::Source::Buffer(buffer.to_owned()));
    }
    if sources.len() != 1 {
        return Err(params.invalid(
            "one file per send: give mediaUrl, one mediaUrls entry, or buffer (several files are not supported yet)",
        ));
    }
    Ok(sources.remove(0))
}

/// `telegram:123` and `tg:123` name the chat `123` on Telegram;
/// `matrix:room:!id:server` and `room:!id:server` the room `!id:server`.
pub fn strip_prefix(channel: &str, to: &str) -> String {
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
