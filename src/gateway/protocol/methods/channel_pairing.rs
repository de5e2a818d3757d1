//! `channels.pairing.list`, `.approve`, `.dismiss`: operators deciding
//! who may DM the agent on a channel with `dmPolicy: "pairing"`
//! (`channels::pairing`). The decision is recorded with its reviewer.

use std::sync::Arc;

use clawback_events::event::{ChannelPairingResolved, Event};
use clawback_projections::channels::{PAIRING_PENDING_MAX, PairingRequest};
use serde_json::{Value, json};

use super::super::frames::ErrorShape;
use super::{Caller, Params, Reply, now_ms};
use crate::channels::inbound::label;
use crate::channels::{Target, outbox, pairing};
use crate::gateway::Gateway;
use crate::timefmt::rfc3339_ms;

pub fn list(gateway: &Gateway, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let params = Params::closed("channels.pairing.list", params, &["channel", "accountId"])?;
    let channel = params.opt_str("channel")?;
    let account_id = params.opt_str("accountId")?;
    let wanted =
        |c: &str, a: &str| channel.is_none_or(|w| w == c) && account_id.is_none_or(|w| w == a);
    let accounts: Vec<Value> = gateway
        .channels
        .accounts()
        .iter()
        .filter(|account| pairing::applies(account) && wanted(account.channel, &account.account_id))
        .map(|account| {
            json!({"channel": account.channel, "channelLabel": label(account.channel),
                   "accountId": account.account_id, "notifySupported": true})
        })
        .collect();
    let now = now_ms();
    let state = gateway.state.read().expect("state lock");
    let mut requests = Vec::new();
    for ((channel, account), pairing) in &state.channels.pairing {
        if !wanted(channel, account) {
            continue;
        }
        for (id, request) in pairing.live(now) {
            requests.push(request_json(channel, account, id, request));
        }
    }
    Ok(json!({
        "accounts": accounts,
        "requests": requests,
        "commandOwnerConfigured": false,
        "limits": {"pendingPerAccount": PAIRING_PENDING_MAX, "ttlMs": pairing::CODE_TTL_MS},
    }))
}

fn request_json(channel: &str, account: &str, id: &str, request: &PairingRequest) -> Value {
    json!({
        "requestId": id,
        "channel": channel,
        "channelLabel": label(channel),
        "accountId": account,
        "senderId": request.sender_id,
        "senderLabel": request.sender_name.clone().unwrap_or_else(|| request.sender_id.clone()),
        "metadata": {"code": request.code},
        "createdAt": rfc3339_ms(request.requested_ms),
        "lastSeenAt": rfc3339_ms(request.requested_ms),
        "expiresAt": rfc3339_ms(request.expires_at_ms),
        "notifySupported": true,
    })
}

pub async fn approve(gateway: &Arc<Gateway>, caller: &Caller, params: Option<&Value>) -> Reply {
    decide(gateway, caller, params, true).await
}

pub async fn dismiss(gateway: &Arc<Gateway>, caller: &Caller, params: Option<&Value>) -> Reply {
    decide(gateway, caller, params, false).await
}

async fn decide(
    gateway: &Arc<Gateway>,
    caller: &Caller,
    params: Option<&Value>,
    approved: bool,
) -> Reply {
    let method = if approved {
        "channels.pairing.approve"
    } else {
        "channels.pairing.dismiss"
    };
    let allowed: &[&str] = if approved {
        &[
            "channel",
            "accountId",
            "requestId",
            "notify",
            "bootstrapCommandOwner",
        ]
    } else {
        &["channel", "accountId", "requestId"]
    };
    let parsed = Params::closed(method, params, allowed).and_then(|params| {
        Ok((
            params.str("channel")?.to_owned(),
            params.str("accountId")?.to_owned(),
            params.str("requestId")?.to_owned(),
            params.opt_bool("notify")?.unwrap_or(false),
            params.opt_bool("bootstrapCommandOwner")?.unwrap_or(false),
        ))
    });
    let (channel, account_id, request_id, notify, bootstrap) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return Reply::answer(Err(error)),
    };
    let lock = gateway.writes.clone().lock_owned().await;
    let request = gateway
        .state
        .read()
        .expect("state lock")
        .channels
        .pairing
        .get(&(channel.clone(), account_id.clone()))
        .and_then(|pairing| {
            pairing
                .live(now_ms())
                .find(|(id, _)| **id == request_id)
                .map(|(_, request)| request.clone())
        });
    let Some(request) = request else {
        return Reply::answer(Err(ErrorShape::invalid(format!(
            "unknown or expired pairing request {request_id} on {channel}/{account_id}"
        ))));
    };
    let mut reply = Reply::answer(Ok(Value::Null));
    reply.events.push((
        format!("channel:{channel}"),
        Event::ChannelPairingResolved(ChannelPairingResolved {
            channel: channel.clone(),
            account_id: account_id.clone(),
            request_id: request_id.clone(),
            sender_id: request.sender_id.clone(),
            decision: if approved { "approved" } else { "dismissed" }.to_owned(),
            reviewer: caller.reviewer(),
        }),
    ));
    reply.write_lock = Some(lock);
    if !approved {
        reply.result = Ok(json!({"requestId": request_id, "senderId": request.sender_id}));
        return reply;
    }
    let account = gateway.channels.account(&channel, &account_id);
    let notification = match (notify, &account) {
        (false, _) => "not-requested",
        (true, None) => "unsupported",
        (true, Some(_)) => "sent",
    };
    let answer = json!({
        "requestId": request_id,
        "senderId": request.sender_id,
        "notification": notification,
        // clawback has no command owner yet.
        "commandOwnerBootstrap": if bootstrap { "unavailable" } else { "not-requested" },
    });
    reply.result = Ok(answer.clone());
    if let (true, Some(account)) = (notify, account) {
        let gateway = gateway.clone();
        // Once the decision is durable: the notice goes through the outbox
        // (recorded before it is sent), keyed so it is sent once.
        // The answer is computed after the events are durable (`after`):
        // it is `answer`, and the notice is queued then.
        reply.after = Some(Box::new(move |_: &Gateway| {
            tokio::spawn(async move {
                let target = Target {
                    account: account.account_id.clone(),
                    chat: request.chat_id.clone(),
                    thread: None,
                };
                let key = format!("pair-approved:{request_id}");
                let text = pairing::APPROVED_MESSAGE.to_owned();
                if let Err(error) =
                    outbox::prepare(&gateway, &account, None, &target, text, key).await
                {
                    tracing::error!(%error, "pairing approval notice not queued");
                }
            });
            answer
        }));
    }
    reply
}
