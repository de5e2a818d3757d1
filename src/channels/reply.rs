//! A channel turn's reply: run, cut into parts, put in the outbox, settled.
//!
//! Why parts are keyed `<run id>#<n>`: the run id is derived from the
//! platform message, so part n of the answer to one message has one key
//! forever. A restart that finds a reply unsettled
//! ([`settle_pending`]) continues at the first part the log does not have,
//! and the outbox refuses a key it already holds.

use std::sync::Arc;
use std::time::Duration;

use clawback_events::Actor;
use clawback_events::event::{ChannelReplyCompleted, Event, MessageOrigin, Role, RunStatus};
use clawback_projections::channels::{Channels, PendingReply};
use clawback_projections::sessions::RunState;
use tokio::sync::watch;

use super::Target;
use super::chunk::{Blocks, split};
use super::manager::Account;
use super::outbox;
use crate::agent::{self, RunOutcome, RunRequest, Started};
use crate::gateway::Gateway;

/// How long a channel turn may run (OpenClaw's agent default).
const TURN_TIMEOUT: Duration = Duration::from_secs(600);
/// Telegram shows "typing" for 5 s per call; renewed a little sooner.
const TYPING_EVERY: Duration = Duration::from_millis(4_500);

/// An admitted message's turn.
pub struct Turn {
    pub run_id: String,
    pub session_key: String,
    pub agent_id: String,
    pub prompt: String,
    pub origin: MessageOrigin,
    pub target: Target,
    pub actor: Actor,
    /// The ack reaction set on the message, taken away after the reply
    /// when `messages.removeAckAfterReply` says so.
    pub ack: Option<super::reaction::Reaction>,
}

pub fn spawn(gateway: Arc<Gateway>, account: Arc<Account>, turn: Turn) {
    tokio::spawn(async move {
        let run_id = turn.run_id.clone();
        let (session_key, target, ack) = (
            turn.session_key.clone(),
            turn.target.clone(),
            turn.ack.clone(),
        );
        if let Err(error) = run(&gateway, &account, turn).await {
            tracing::error!(%run_id, %error, "channel reply not settled; the next start settles it");
            return;
        }
        let remove = account
            .settings
            .ack
            .as_ref()
            .is_some_and(|ack| ack.remove_after_reply);
        if let Some(reaction) = ack.filter(|_| remove) {
            let reaction = super::reaction::Reaction {
                remove: true,
                undoes: Some(format!("ack:{run_id}")),
                ..reaction
            };
            let key = format!("ack-remove:{run_id}");
            if let Err(error) = super::outbox::prepare_reaction(
                &gateway,
                &account,
                Some(&session_key),
                &target,
                reaction,
                key,
            )
            .await
            {
                tracing::warn!(%run_id, %error, "the ack reaction was not removed");
            }
        }
    });
}

async fn run(gateway: &Arc<Gateway>, account: &Arc<Account>, turn: Turn) -> Result<(), String> {
    let mut blocks = account
        .settings
        .blocks
        .as_ref()
        .map(|chunk| Blocks::new(chunk, account.settings.text_limit));
    let mut follower = blocks
        .is_some()
        .then(|| gateway.agent.follow_text(&turn.run_id));
    let request = RunRequest {
        message_seq: None,
        run_id: turn.run_id.clone(),
        session_key: turn.session_key.clone(),
        agent_id: turn.agent_id.clone(),
        message: turn.prompt.clone(),
        trigger: "channel",
        actor: turn.actor.clone(),
        model_override: None,
        thinking: None,
        extra_system_prompt: None,
        timeout: TURN_TIMEOUT,
        tool_events_to: None,
        sampling: Default::default(),
        origin: Some(turn.origin.clone()),
    };
    let mut parts = Parts::new(gateway, account, &turn);
    let receiver = match gateway.agent.clone().start(gateway.clone(), request) {
        Started::Finished(outcome) => {
            gateway.agent.unfollow_text(&turn.run_id);
            return parts.settle(Some(*outcome), None).await;
        }
        Started::New(receiver) | Started::Running(receiver) => receiver,
    };
    let outcome = agent::wait(receiver);
    tokio::pin!(outcome);
    let mut typing = tokio::time::interval(TYPING_EVERY);
    let idle = blocks.as_ref().map_or(Duration::MAX, Blocks::idle);
    let idle_timer = tokio::time::sleep(Duration::MAX);
    tokio::pin!(idle_timer);
    let outcome = loop {
        tokio::select! {
            outcome = &mut outcome => break outcome,
            changed = changed(&mut follower) => {
                if !changed {
                    follower = None;
                    continue;
                }
                let text = follower.as_ref().map(|f| f.borrow().clone()).unwrap_or_default();
                if let Some(blocks) = &mut blocks {
                    for block in blocks.ready(&text) {
                        parts.deliver(block).await?;
                    }
                }
                idle_timer.as_mut().reset(tokio::time::Instant::now() + idle);
            }
            () = &mut idle_timer => {
                idle_timer.as_mut().reset(far_future());
                let text = follower.as_ref().map(|f| f.borrow().clone()).unwrap_or_default();
                if let Some(block) = blocks.as_mut().and_then(|blocks| blocks.flush_idle(&text)) {
                    parts.deliver(block).await?;
                }
            }
            _ = typing.tick() => {
                let platform = account.platform.clone();
                let target = turn.target.clone();
                tokio::spawn(async move { platform.typing(&target).await });
            }
        }
    };
    parts.settle(outcome, blocks.as_mut()).await
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400 * 365)
}

/// Whether the followed text changed; `false` once the run dropped it.
async fn changed(follower: &mut Option<watch::Receiver<String>>) -> bool {
    match follower {
        Some(follower) => follower.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

/// The parts of one reply, numbered from what the log already holds.
struct Parts<'a> {
    gateway: &'a Arc<Gateway>,
    account: &'a Arc<Account>,
    run_id: String,
    session_key: String,
    target: Target,
    next: u32,
}

impl<'a> Parts<'a> {
    fn new(gateway: &'a Arc<Gateway>, account: &'a Arc<Account>, turn: &Turn) -> Parts<'a> {
        let next = gateway
            .state
            .read()
            .expect("state lock")
            .channels
            .pending_replies
            .get(&turn.run_id)
            .map_or(0, |pending| pending.parts_prepared);
        Parts {
            gateway,
            account,
            run_id: turn.run_id.clone(),
            session_key: turn.session_key.clone(),
            target: turn.target.clone(),
            next,
        }
    }

    /// A file the reply asked for (a `MEDIA:` line): resolved from the
    /// agent's workspace, the media store or a URL, and put in the outbox
    /// as the next part; one that cannot be sent becomes a notice instead.
    async fn deliver_media(&mut self, source: &str) -> Result<(), String> {
        let agent_id = self
            .session_key
            .split(':')
            .nth(1)
            .unwrap_or("main")
            .to_owned();
        let described = super::media_out::Described {
            source: super::media_out::Source::Url(source.to_owned()),
            filename: None,
            content_type: None,
            voice: false,
        };
        let cap = self.account.settings.media_max_bytes;
        let resolved = if self.account.platform.sends_media() {
            super::media_out::resolve(self.gateway, &agent_id, cap, described).await
        } else {
            Err(format!(
                "clawback cannot send files to {} yet",
                self.account.channel
            ))
        };
        let key = Channels::part_key(&self.run_id, self.next);
        let (text, attachment) = match resolved {
            Ok(attachment) => (String::new(), Some(attachment)),
            Err(error) => (format!("⚠️ Could not attach {source}: {error}"), None),
        };
        outbox::prepare_with(
            self.gateway,
            self.account,
            Some(&self.session_key),
            &self.target,
            text,
            key,
            attachment,
        )
        .await?;
        self.next += 1;
        Ok(())
    }

    async fn deliver(&mut self, text: String) -> Result<(), String> {
        let key = Channels::part_key(&self.run_id, self.next);
        outbox::prepare(
            self.gateway,
            self.account,
            Some(&self.session_key),
            &self.target,
            text,
            key,
        )
        .await?;
        self.next += 1;
        Ok(())
    }

    /// Sends what the ended run leaves to send, then records the reply
    /// settled.
    async fn settle(
        &mut self,
        outcome: Option<RunOutcome>,
        blocks: Option<&mut Blocks>,
    ) -> Result<(), String> {
        let limit = self.account.settings.text_limit;
        let (texts, how) = match outcome {
            None => (
                vec![failure_notice("the run ended without an outcome")],
                "failed",
            ),
            Some(outcome) if outcome.ok => {
                let texts = match blocks {
                    Some(blocks) => blocks.finish(&outcome.text),
                    None => {
                        let (texts, media) = reply_parts(&outcome.text, limit);
                        let how = if texts.is_empty() && media.is_empty() {
                            "empty"
                        } else {
                            "replied"
                        };
                        for text in texts {
                            self.deliver(text).await?;
                        }
                        for source in media {
                            self.deliver_media(&source).await?;
                        }
                        return completed(self.gateway, &self.session_key, &self.run_id, how).await;
                    }
                };
                let how = if texts.is_empty() { "empty" } else { "replied" };
                (texts, how)
            }
            Some(outcome) if outcome.stop_reason == "aborted" => (Vec::new(), "aborted"),
            Some(outcome) => {
                let message = outcome
                    .error
                    .map_or_else(|| outcome.stop_reason.clone(), |(_, message)| message);
                (vec![failure_notice(&message)], "failed")
            }
        };
        for text in texts {
            self.deliver(text).await?;
        }
        completed(self.gateway, &self.session_key, &self.run_id, how).await
    }
}

/// A finished reply's parts: its text cut at the platform's limit, and the
/// files its `MEDIA:` lines ask for (sent after the text).
fn reply_parts(text: &str, limit: usize) -> (Vec<String>, Vec<String>) {
    let (text, media) = super::media_out::split_media_lines(text);
    (split(&text, limit), media)
}

fn failure_notice(message: &str) -> String {
    format!("⚠️ Agent failed before reply: {message}")
}

const INTERRUPTED_NOTICE: &str =
    "⚠️ The gateway restarted before this reply was finished. Please send your message again.";

async fn completed(
    gateway: &Gateway,
    session_key: &str,
    run_id: &str,
    outcome: &str,
) -> Result<(), String> {
    let event = Event::ChannelReplyCompleted(ChannelReplyCompleted {
        run_id: run_id.to_owned(),
        outcome: outcome.to_owned(),
    });
    let actor = Actor::Executor {
        name: "channels".to_owned(),
    };
    agent::compact::append(gateway, session_key, &actor, run_id, vec![event]).await
}

/// Settles the replies the previous process left unsettled: a turn that
/// never started runs now; a finished one sends the parts the log lacks; an
/// interrupted or failed one says so in the chat.
pub async fn settle_pending(gateway: &Arc<Gateway>) {
    let pending: Vec<(String, PendingReply)> = gateway
        .state
        .read()
        .expect("state lock")
        .channels
        .pending_replies
        .iter()
        .map(|(run_id, reply)| (run_id.clone(), reply.clone()))
        .collect();
    for (run_id, reply) in pending {
        let Some(account) = gateway.channels.account(&reply.channel, &reply.account_id) else {
            tracing::warn!(%run_id, channel = %reply.channel, account = %reply.account_id,
                "reply left unsettled: its channel account is not configured");
            continue;
        };
        if let Err(error) = settle_one(gateway, &account, &run_id, &reply).await {
            tracing::error!(%run_id, %error, "cannot settle a channel reply");
        }
    }
}

async fn settle_one(
    gateway: &Arc<Gateway>,
    account: &Arc<Account>,
    run_id: &str,
    reply: &PendingReply,
) -> Result<(), String> {
    let target = Target {
        account: reply.account_id.clone(),
        chat: reply.chat_id.clone(),
        thread: reply.thread_id.clone(),
    };
    let run = {
        let state = gateway.state.read().expect("state lock");
        state
            .sessions
            .by_key
            .get(&reply.session_key)
            .and_then(|session| session.run(run_id))
            .map(|run| (run.state.clone(), run.started_seq))
    };
    let turn = || -> Result<Turn, String> {
        let received = super::outbox::read_event(gateway, reply.received_seq)?;
        let Event::ChannelMessageReceived(received) = received else {
            return Err(format!(
                "seq {} is not the received message",
                reply.received_seq
            ));
        };
        let chat = super::routing::Chat {
            kind: super::routing::ChatKind::parse(&received.chat_kind)
                .ok_or_else(|| format!("unknown chat kind {}", received.chat_kind))?,
            id: received.chat_id.clone(),
            thread_id: received.thread_id.clone(),
            thread_is_topic: false,
        };
        let message = super::Inbound {
            platform_message_id: received.platform_message_id.clone(),
            cursor: None,
            chat,
            sender_id: received.sender_id.clone(),
            sender_name: received.sender_name.clone(),
            text: received.text.clone(),
            mentioned: true,
            unsupported: None,
            media: Vec::new(),
            group_verdict: None,
        };
        let clawback_events::event::Admission::Admitted { agent_id, .. } = received.admission
        else {
            return Err("the received message was not admitted".to_owned());
        };
        Ok(Turn {
            run_id: run_id.to_owned(),
            session_key: reply.session_key.clone(),
            agent_id,
            prompt: super::inbound::prompt(&message),
            origin: super::inbound::origin(&received.channel, &received.account_id, &message),
            target: target.clone(),
            ack: None,
            actor: Actor::Channel {
                channel: received.channel,
                sender: received.sender_id,
            },
        })
    };
    let mut parts = Parts {
        gateway,
        account,
        run_id: run_id.to_owned(),
        session_key: reply.session_key.clone(),
        target: target.clone(),
        next: reply.parts_prepared,
    };
    match run {
        // Recorded, acknowledged, never run: run it now.
        None => {
            spawn(gateway.clone(), account.clone(), turn()?);
            Ok(())
        }
        Some((RunState::Running | RunState::Interrupted { .. }, _)) => {
            parts.deliver(INTERRUPTED_NOTICE.to_owned()).await?;
            completed(gateway, &reply.session_key, run_id, "interrupted").await
        }
        Some((RunState::Finished { status, seq, .. }, started_seq)) => match status {
            RunStatus::Completed => {
                let text = final_reply(gateway, &reply.session_key, started_seq, seq);
                let streamed = account.settings.blocks.is_some() && reply.parts_prepared > 0;
                if streamed {
                    // Block boundaries depended on timing: the rest cannot
                    // be recomputed, so the chat is told where to find it.
                    parts.deliver("⚠️ The gateway restarted while sending this reply; the rest of it is in the session's history.".to_owned()).await?;
                } else {
                    // The same parts, in the same order, as the first
                    // process cut: the texts, then the files.
                    let (texts, media) = reply_parts(&text, account.settings.text_limit);
                    let skip = reply.parts_prepared as usize;
                    for text in texts.iter().skip(skip) {
                        parts.deliver(text.clone()).await?;
                    }
                    for source in media.iter().skip(skip.saturating_sub(texts.len())) {
                        parts.deliver_media(source).await?;
                    }
                }
                completed(gateway, &reply.session_key, run_id, "replied").await
            }
            RunStatus::Aborted { .. } => {
                completed(gateway, &reply.session_key, run_id, "aborted").await
            }
            RunStatus::Failed { message, .. } => {
                parts.deliver(failure_notice(&message)).await?;
                completed(gateway, &reply.session_key, run_id, "failed").await
            }
        },
    }
}

/// The last assistant text of the run recorded between `from` and `to`
/// (a session's runs take turns, so only this run wrote there).
fn final_reply(gateway: &Gateway, session_key: &str, from: u64, to: u64) -> String {
    let entries: Vec<_> = {
        let state = gateway.state.read().expect("state lock");
        let Some(session) = state.sessions.by_key.get(session_key) else {
            return String::new();
        };
        session
            .transcript
            .iter()
            .filter(|entry| entry.role == Role::Assistant && entry.seq > from && entry.seq < to)
            .cloned()
            .collect()
    };
    let store = gateway.log.store();
    entries
        .iter()
        .rev()
        .find_map(|entry| {
            match clawback_replay::session_state::transcript_item(
                &**store,
                &*gateway.keyring,
                entry,
            ) {
                clawback_replay::session_state::TranscriptItem::Text(text) => Some(text),
                _ => None,
            }
        })
        .unwrap_or_default()
}
