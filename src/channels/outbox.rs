//! The outbox: a message is `delivery.prepared` (durable) before it is
//! sent, and `delivery.sent` or `delivery.failed` after.
//!
//! Why one sender task per account: messages to a chat must arrive in the
//! order they were prepared, and a platform's rate limit (Telegram's 429
//! with `retry_after`) applies to the bot as a whole, so waiting it out
//! holds the account's queue rather than reordering it.
//!
//! After a restart, a prepared delivery with no outcome may or may not have
//! reached the platform. [`settle_unconfirmed`] resends it only where the
//! platform deduplicates by its key ([`AfterRestart::Resend`]); elsewhere it
//! is recorded as failed with the reason, never silently sent twice.

use std::sync::Arc;
use std::time::Duration;

use clawback_events::Actor;
use clawback_events::event::{
    ApprovalRequested, Decision, DeliveryFailed, DeliveryPrepared, DeliverySent, Event,
};
use clawback_projections::approvals::Settlement;
use tokio::sync::{mpsc, oneshot};

use super::manager::Account;
use super::media::Attachment;
use super::platform::{AfterRestart, Envelope, Outgoing, Target};
use super::reaction::Reaction;
use super::settings::DeliveryPolicy;
use crate::gateway::Gateway;
use crate::gateway::protocol::methods::approvals;

/// Attempts per message before it is given up on.
pub const SEND_ATTEMPTS_MAX: u32 = 6;
/// The longest wait between attempts, whatever the platform asks.
const RETRY_WAIT_MAX: Duration = Duration::from_secs(120);
const RETRY_WAIT_FIRST: Duration = Duration::from_millis(500);

/// What became of a send: the platform's message id, or why not.
pub type Outcome = Result<Option<String>, String>;

pub(super) struct Job {
    delivery_id: String,
    target: Target,
    text: String,
    key: String,
    media: Option<Attachment>,
    reaction: Option<Reaction>,
    done: Option<oneshot::Sender<Outcome>>,
}

pub enum Prepared {
    /// In the outbox now; the outcome arrives on the receiver.
    Queued(oneshot::Receiver<Outcome>),
    /// The key was already in the outbox (or recently finished): this
    /// delivery id holds it.
    Already(String),
}

/// Records `text` for `target` in the outbox and queues it for the
/// account's sender.
pub async fn prepare(
    gateway: &Gateway,
    account: &Account,
    session_key: Option<&str>,
    target: &Target,
    text: String,
    key: String,
) -> Result<Prepared, String> {
    prepare_with(gateway, account, session_key, target, text, key, None).await
}

/// Records a reaction for `target` in the outbox and queues it: the same
/// record and key-based exactly-once as a message.
pub async fn prepare_reaction(
    gateway: &Gateway,
    account: &Account,
    session_key: Option<&str>,
    target: &Target,
    reaction: Reaction,
    key: String,
) -> Result<Prepared, String> {
    let text = reaction.emoji.clone();
    enqueue(
        gateway,
        account,
        session_key,
        Envelope {
            target: target.clone(),
            media: None,
            reaction: Some(reaction),
        },
        text,
        key,
    )
    .await
}

/// [`prepare`] with a stored file `text` is the caption of.
pub async fn prepare_with(
    gateway: &Gateway,
    account: &Account,
    session_key: Option<&str>,
    target: &Target,
    text: String,
    key: String,
    media: Option<Attachment>,
) -> Result<Prepared, String> {
    let envelope = Envelope {
        target: target.clone(),
        media,
        reaction: None,
    };
    enqueue(gateway, account, session_key, envelope, text, key).await
}

async fn enqueue(
    gateway: &Gateway,
    account: &Account,
    session_key: Option<&str>,
    envelope: Envelope,
    text: String,
    key: String,
) -> Result<Prepared, String> {
    if let Some(existing) = gateway
        .state
        .read()
        .expect("state lock")
        .deliveries
        .by_idempotency_key(&key)
    {
        return Ok(Prepared::Already(existing.to_owned()));
    }
    let delivery_id = uuid::Uuid::new_v4().to_string();
    let event = Event::DeliveryPrepared(DeliveryPrepared {
        delivery_id: delivery_id.clone(),
        idempotency_key: key.clone(),
        channel: account.channel.to_owned(),
        target: envelope.encode(),
        session_key: session_key.map(str::to_owned),
        text: text.clone(),
    });
    record(gateway, account.channel, session_key, &key, event).await?;
    let (done, outcome) = oneshot::channel();
    let job = Job {
        delivery_id,
        target: envelope.target,
        text,
        key,
        media: envelope.media,
        reaction: envelope.reaction,
        done: Some(done),
    };
    account
        .outbox
        .send(job)
        .await
        .map_err(|_| "the channel's sender has stopped".to_owned())?;
    Ok(Prepared::Queued(outcome))
}

pub(super) fn spawn_sender(
    gateway: Arc<Gateway>,
    account: Arc<Account>,
    mut jobs: mpsc::Receiver<Job>,
) {
    tokio::spawn(async move {
        while let Some(job) = jobs.recv().await {
            send(&gateway, &account, job).await;
        }
    });
}

async fn send(gateway: &Gateway, account: &Account, mut job: Job) {
    let mut wait = RETRY_WAIT_FIRST;
    let session_key = session_of(gateway, &job.delivery_id);
    if let Err(reason) = release(gateway, account, &job, session_key.as_deref()).await {
        tracing::info!(delivery = %job.delivery_id, %reason, "delivery withheld");
        give_up(gateway, account, session_key.as_deref(), &mut job, reason).await;
        return;
    }
    let bytes = match &job.media {
        None => None,
        Some(attachment) => match attachment.read(&gateway.state_root).await {
            Ok(bytes) => Some(bytes),
            Err(error) => {
                give_up(gateway, account, session_key.as_deref(), &mut job, error).await;
                return;
            }
        },
    };
    if let Some(reaction) = job.reaction.as_mut()
        && let Some(key) = reaction.undoes.clone()
    {
        reaction.set_id = sent_id(gateway, &key);
    }
    for attempt in 1..=SEND_ATTEMPTS_MAX {
        let message = Outgoing {
            target: &job.target,
            text: &job.text,
            idempotency_key: &job.key,
            media: job.media.as_ref().zip(bytes.as_deref()),
            reaction: job.reaction.as_ref(),
        };
        let outcome = account.platform.send(message).await;
        let (event, result) = match outcome {
            Ok(platform_message_id) => {
                account.sent();
                let event = Event::DeliverySent(DeliverySent {
                    delivery_id: job.delivery_id.clone(),
                    platform_message_id: platform_message_id.clone(),
                });
                (event, Some(Ok(platform_message_id)))
            }
            Err(error) => {
                let retry = error.retryable && attempt < SEND_ATTEMPTS_MAX;
                let event = Event::DeliveryFailed(DeliveryFailed {
                    delivery_id: job.delivery_id.clone(),
                    error: error.message.clone(),
                    retryable: retry,
                });
                if !retry {
                    account.send_failed(&error.message);
                }
                let result = (!retry).then(|| Err(error.message.clone()));
                if retry {
                    wait = error.retry_after.unwrap_or(wait).min(RETRY_WAIT_MAX);
                }
                (event, result)
            }
        };
        record_outcome(gateway, account, session_key.as_deref(), &job, event).await;
        if let Some(result) = result {
            if let Some(done) = job.done.take() {
                let _ = done.send(result);
            }
            return;
        }
        tracing::info!(delivery = %job.delivery_id, attempt, ?wait, "delivery will be retried");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RETRY_WAIT_MAX);
    }
}

/// Whether the account's delivery policy lets `job` go out: at once
/// (`allow`), never (`deny`), or once an operator allows it
/// (`require-approval`: an `exec.approval.*` request of kind `delivery`
/// whose text is the message; the account's queue waits for the decision,
/// so messages keep their order).
async fn release(
    gateway: &Gateway,
    account: &Account,
    job: &Job,
    session_key: Option<&str>,
) -> Result<(), String> {
    let channel = account.channel;
    let timeout = match account.settings.delivery {
        DeliveryPolicy::Allow => return Ok(()),
        DeliveryPolicy::Deny => {
            return Err(format!(
                "withheld by channels.{channel}.deliveryPolicy \"deny\"; not sent"
            ));
        }
        DeliveryPolicy::RequireApproval { timeout } => timeout,
    };
    let approval_id = format!(
        "{}{}",
        approval_prefix(&job.delivery_id),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let thread = job
        .target
        .thread
        .as_ref()
        .map(|thread| format!(" (thread {thread})"))
        .unwrap_or_default();
    let request = ApprovalRequested {
        approval_id: approval_id.clone(),
        kind: "delivery".to_owned(),
        command: format!(
            "send to {channel} {}{thread}: {}",
            job.target.chat, job.text
        ),
        // Unique per request: an allow-always decision covers this message
        // only, never others with the same text.
        argv_hash: blake3::hash(approval_id.as_bytes()).to_hex().to_string(),
        session_key: session_key.map(str::to_owned),
        agent_id: None,
        node_id: None,
        expires_at_ms: crate::gateway::protocol::methods::now_ms()
            + i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX / 2),
    };
    let stream = session_key.map_or_else(|| format!("channel:{channel}"), str::to_owned);
    let actor = Actor::Executor {
        name: format!("channel:{channel}"),
    };
    let outcome = approvals::ask(gateway, (&stream, &actor, &job.key), request, timeout).await?;
    match outcome.as_deref() {
        Some("allow-once" | "allow-always") => Ok(()),
        Some("deny") => Err(format!(
            "denied by an operator (approval {approval_id}); not sent"
        )),
        _ => Err(format!(
            "no decision on approval {approval_id} within {} s; not sent",
            timeout.as_secs()
        )),
    }
}

/// Approval ids of a delivery start with this, so a restart can tell
/// whether any of them allowed it.
fn approval_prefix(delivery_id: &str) -> String {
    format!("delivery-{delivery_id}-")
}

/// Whether an operator ever allowed `delivery_id` (if not, it was never
/// sent: the send only follows an allow).
fn was_allowed(gateway: &Gateway, delivery_id: &str) -> bool {
    let prefix = approval_prefix(delivery_id);
    gateway
        .state
        .read()
        .expect("state lock")
        .approvals
        .settled
        .iter()
        .any(|settled| {
            settled.approval_id.starts_with(&prefix)
                && matches!(
                    settled.outcome,
                    Settlement::Decided {
                        decision: Decision::AllowOnce | Decision::AllowAlways,
                        ..
                    }
                )
        })
}

/// Records what became of a send. A failure to record is logged: the
/// delivery then stays unconfirmed, and the next start settles it.
/// Records that `job` will not be sent (`error` says why) and tells
/// whoever waits for it.
async fn give_up(
    gateway: &Gateway,
    account: &Account,
    session_key: Option<&str>,
    job: &mut Job,
    error: String,
) {
    let event = Event::DeliveryFailed(DeliveryFailed {
        delivery_id: job.delivery_id.clone(),
        error: error.clone(),
        retryable: false,
    });
    record_outcome(gateway, account, session_key, job, event).await;
    if let Some(done) = job.done.take() {
        let _ = done.send(Err(error));
    }
}

async fn record_outcome(
    gateway: &Gateway,
    account: &Account,
    session_key: Option<&str>,
    job: &Job,
    event: Event,
) {
    if let Err(error) = record(gateway, account.channel, session_key, &job.key, event).await {
        tracing::error!(delivery = %job.delivery_id, %error, "delivery outcome not recorded");
    }
}

fn session_of(gateway: &Gateway, delivery_id: &str) -> Option<String> {
    gateway
        .state
        .read()
        .expect("state lock")
        .deliveries
        .outbox
        .get(delivery_id)
        .and_then(|delivery| delivery.prepared.session_key.clone())
}

async fn record(
    gateway: &Gateway,
    channel: &str,
    session_key: Option<&str>,
    key: &str,
    event: Event,
) -> Result<(), String> {
    let stream = session_key.map_or_else(|| format!("channel:{channel}"), str::to_owned);
    let actor = Actor::Executor {
        name: format!("channel:{channel}"),
    };
    crate::agent::compact::append(gateway, &stream, &actor, key, vec![event]).await
}

/// Resolves what the previous process prepared and never confirmed.
pub async fn settle_unconfirmed(gateway: &Arc<Gateway>) {
    let unconfirmed: Vec<(u64, DeliveryPrepared, i64)> = gateway
        .state
        .read()
        .expect("state lock")
        .deliveries
        .unconfirmed()
        .map(|delivery| {
            (
                delivery.prepared_seq,
                delivery.prepared.clone(),
                delivery.prepared_ts_ms,
            )
        })
        .collect();
    let now_ms = crate::gateway::protocol::methods::now_ms();
    for (prepared_seq, mut prepared, prepared_ms) in unconfirmed {
        // The text is session content, sealed in the record: the
        // projection keeps the delivery without it.
        match read_event(gateway, prepared_seq) {
            Ok(Event::DeliveryPrepared(recorded)) => prepared.text = recorded.text,
            Ok(other) => {
                tracing::error!(delivery = %prepared.delivery_id, kind = other.kind(), "the prepared record is not a delivery");
                continue;
            }
            Err(error) => {
                tracing::error!(delivery = %prepared.delivery_id, %error, "the prepared record cannot be read");
                continue;
            }
        }
        let age = Duration::from_millis(now_ms.saturating_sub(prepared_ms).max(0) as u64);
        match resend_to(gateway, &prepared, age) {
            Ok((envelope, account)) => {
                tracing::info!(delivery = %prepared.delivery_id, "resending an unconfirmed delivery under its key");
                let job = Job {
                    delivery_id: prepared.delivery_id,
                    target: envelope.target,
                    text: prepared.text,
                    key: prepared.idempotency_key,
                    media: envelope.media,
                    reaction: envelope.reaction,
                    done: None,
                };
                if account.outbox.send(job).await.is_err() {
                    tracing::error!("the channel's sender has stopped");
                }
            }
            Err(error) => {
                tracing::warn!(delivery = %prepared.delivery_id, %error, "unconfirmed delivery reported");
                let event = Event::DeliveryFailed(DeliveryFailed {
                    delivery_id: prepared.delivery_id.clone(),
                    error,
                    retryable: false,
                });
                if let Err(error) = record(
                    gateway,
                    &prepared.channel,
                    prepared.session_key.as_deref(),
                    &prepared.idempotency_key,
                    event,
                )
                .await
                {
                    tracing::error!(%error, "cannot record an unconfirmed delivery");
                }
            }
        }
    }
}

/// The platform's id for what the delivery under `key` sent, once sent.
fn sent_id(gateway: &Gateway, key: &str) -> Option<String> {
    let state = gateway.state.read().expect("state lock");
    let delivery_id = state.deliveries.by_idempotency_key(key)?;
    state
        .deliveries
        .finished
        .iter()
        .find(|finished| finished.delivery_id == delivery_id)
        .and_then(|finished| match &finished.outcome {
            clawback_projections::deliveries::DeliveryOutcome::Sent {
                platform_message_id,
            } => platform_message_id.clone(),
            _ => None,
        })
}

/// Where an unconfirmed delivery may be sent again, or why it may not.
fn resend_to(
    gateway: &Gateway,
    prepared: &DeliveryPrepared,
    age: Duration,
) -> Result<(Envelope, Arc<Account>), String> {
    let envelope = Envelope::decode(&prepared.target)?;
    let target = &envelope.target;
    let account = gateway
        .channels
        .account(&prepared.channel, &target.account)
        .ok_or_else(|| {
            format!(
                "channel {} account {} is not configured any more; not sent",
                prepared.channel, target.account
            )
        })?;
    // Held back by the policy when the process ended: never sent, so it
    // goes through the policy again.
    let held_back = match account.settings.delivery {
        DeliveryPolicy::Allow => false,
        DeliveryPolicy::Deny => true,
        DeliveryPolicy::RequireApproval { .. } => !was_allowed(gateway, &prepared.delivery_id),
    };
    if held_back {
        return Ok((envelope, account));
    }
    match account.platform.after_restart(age) {
        AfterRestart::Resend => Ok((envelope, account)),
        AfterRestart::Report(why) => Err(format!(
            "unconfirmed when the gateway restarted: {why}; not resent, to avoid a duplicate"
        )),
    }
}

/// The event recorded at `seq`, its session content opened.
pub fn read_event(gateway: &Gateway, seq: u64) -> Result<Event, String> {
    clawback_replay::session_state::read_event(&**gateway.log.store(), &*gateway.keyring, seq)
        .map_err(|error| format!("seq {seq}: {error}"))
}
