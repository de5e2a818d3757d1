//! The inbound side of the Matrix account: the `/sync` loop, invites, and
//! what a room is (a DM or a group).
//!
//! Exactly-once: a batch's messages are handed to the inbox in order, and
//! only the last carries `next_batch` as its cursor ([`sync::cursors`]);
//! this process's own position moves only once the whole batch is
//! recorded. A crash part way through a batch syncs it again from the
//! recorded cursor, and the messages already recorded are recognised by
//! their event ids. A room that received more than one sync returns has
//! its gap read back with `/messages`, so a long downtime skips nothing.
//! The first sync's position is recorded as the account's cursor (as is a
//! batch of invites without messages), so a restart before the first
//! message resumes there, not from "now". Invites are recorded with their
//! decision (`autoJoin`, then the DM or group policy) before the join.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::api::ApiError;
use super::config::AutoJoin;
use super::sync::{self, BotIdentity, RoomFacts};
use super::{CALL_TIMEOUT, Matrix, SYNC_WAIT, text};

/// The most events fetched back into one room's gap.
const BACKFILL_EVENTS_MAX: usize = 1000;
use clawback_events::event::{ChannelCursorRecorded, ChannelInviteReceived, Event};

use crate::channels::Inbox;

impl Matrix {
    async fn sync(
        &self,
        since: Option<&str>,
        wait: Duration,
        timeline_limit: u64,
    ) -> Result<sync::Batch, ApiError> {
        let filter = sync::filter(timeline_limit).to_string();
        let wait_ms = wait.as_millis().to_string();
        let mut query = vec![("filter", filter.as_str()), ("timeout", wait_ms.as_str())];
        if let Some(since) = since {
            query.push(("since", since));
        }
        let answer = self
            .call(
                Method::GET,
                &["sync"],
                &query,
                None,
                wait + Duration::from_secs(15),
            )
            .await?;
        sync::parse(&answer).map_err(|message| ApiError {
            message: format!("Matrix sync: {message}"),
            errcode: None,
            status: None,
            retry_after: None,
        })
    }

    /// Answers the invites a batch carries: joined when `autoJoin` and the
    /// DM or group policy (with the inviter as the sender) allow it, each
    /// recorded (`channel.invite.received`) before the join.
    async fn learn(&self, batch: &sync::Batch, inbox: &Inbox) -> Result<(), String> {
        for invite in &batch.invites {
            let inviter = invite.inviter.clone().unwrap_or_default();
            let refusal = if !self.may_join(&invite.room_id).await {
                Some("not accepted by channels.matrix.autoJoin".to_owned())
            } else {
                inbox
                    .admits_invite(&invite.room_id, &inviter, invite.is_direct)
                    .err()
            };
            let event = Event::ChannelInviteReceived(ChannelInviteReceived {
                channel: "matrix".to_owned(),
                account_id: inbox.account.account_id.clone(),
                room_id: invite.room_id.clone(),
                inviter: invite.inviter.clone(),
                direct: invite.is_direct,
                joined: refusal.is_none(),
                reason: refusal.clone(),
            });
            inbox.record(&inviter, &invite.room_id, event).await?;
            if let Some(reason) = refusal {
                tracing::info!(room = %invite.room_id, inviter = ?invite.inviter, %reason, "matrix invite not accepted");
                continue;
            }
            match self
                .call(
                    Method::POST,
                    &["join", &invite.room_id],
                    &[],
                    Some(&json!({})),
                    CALL_TIMEOUT,
                )
                .await
            {
                Ok(_) => {
                    tracing::info!(room = %invite.room_id, inviter = ?invite.inviter, direct = invite.is_direct, "matrix invite accepted");
                }
                Err(error) => {
                    tracing::warn!(room = %invite.room_id, error = %error.message, "cannot join an invited matrix room")
                }
            }
        }
        Ok(())
    }

    async fn may_join(&self, room_id: &str) -> bool {
        let AutoJoin::Allowlist(list) = &self.auto_join else {
            return self.auto_join == AutoJoin::Always;
        };
        for entry in list {
            if entry == "*" || entry == room_id {
                return true;
            }
            // Aliases resolve on the homeserver, never from the state the
            // invited room claims for itself.
            if entry.starts_with('#')
                && let Ok(answer) = self
                    .call(
                        Method::GET,
                        &["directory", "room", entry],
                        &[],
                        None,
                        CALL_TIMEOUT,
                    )
                    .await
                && text(&answer, "room_id").as_deref() == Some(room_id)
            {
                return true;
            }
        }
        false
    }

    /// A room's joined members and their display names.
    async fn facts(&self, room_id: &str) -> RoomFacts {
        let members = self
            .call(
                Method::GET,
                &["rooms", room_id, "joined_members"],
                &[],
                None,
                CALL_TIMEOUT,
            )
            .await;
        let joined = match &members {
            Ok(answer) => answer
                .get("joined")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            Err(error) => {
                // Fail closed: a room of unknown members is a group.
                tracing::warn!(room = %room_id, error = %error.message, "cannot list a matrix room's members");
                serde_json::Map::new()
            }
        };
        let names = joined
            .iter()
            .filter_map(|(user, member)| Some((user.clone(), text(member, "display_name")?)))
            .collect::<BTreeMap<_, _>>();
        RoomFacts {
            members: joined.keys().cloned().collect(),
            names,
        }
    }

    /// The batch's events, with what its gaps hide fetched first: a room
    /// that received more messages than one sync returns (the gateway was
    /// down a while) is read back with `/messages` from the timeline's
    /// start to the sync position, so none is skipped. Bounded by
    /// [`BACKFILL_EVENTS_MAX`] a room; past it the older ones are skipped
    /// with a warning.
    async fn with_gaps_filled(
        &self,
        batch: &sync::Batch,
        since: &str,
    ) -> Result<Vec<sync::RoomEvent>, String> {
        let mut events = Vec::new();
        let filter = sync::messages_filter().to_string();
        for gap in &batch.gaps {
            let mut room_events: Vec<sync::RoomEvent> = Vec::new();
            let mut from = gap.prev_batch.clone();
            loop {
                let query = [
                    ("dir", "b"),
                    ("from", from.as_str()),
                    ("to", since),
                    ("limit", "100"),
                    ("filter", filter.as_str()),
                ];
                let page = self
                    .call(
                        Method::GET,
                        &["rooms", &gap.room_id, "messages"],
                        &query,
                        None,
                        CALL_TIMEOUT,
                    )
                    .await
                    .map_err(|error| error.message)?;
                let (mut older, next) = sync::messages_page(&gap.room_id, &page);
                older.append(&mut room_events);
                room_events = older;
                match next {
                    Some(next) if room_events.len() < BACKFILL_EVENTS_MAX => from = next,
                    Some(_) => {
                        tracing::warn!(room = %gap.room_id, max = BACKFILL_EVENTS_MAX, "matrix: more messages were missed in a room than are fetched back; the older ones are not answered");
                        break;
                    }
                    None => break,
                }
            }
            tracing::info!(room = %gap.room_id, fetched = room_events.len(), "matrix: a gap in a room's timeline filled from /messages");
            events.append(&mut room_events);
        }
        events.extend(batch.events.iter().cloned());
        Ok(events)
    }

    pub(super) async fn run_sync(
        &self,
        inbox: Inbox,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), String> {
        let session = self.session().await.map_err(|error| error.message)?;
        let remembered = self.since.lock().expect("since lock").clone();
        let mut since = match remembered.or_else(|| inbox.cursor()) {
            Some(since) => since,
            None => {
                // Nothing recorded yet: start from now, not from history.
                let batch = self
                    .sync(None, Duration::ZERO, 1)
                    .await
                    .map_err(|error| error.message)?;
                // Recorded, so a restart before the first message resumes
                // here and answers what was said meanwhile.
                let event = Event::ChannelCursorRecorded(ChannelCursorRecorded {
                    channel: "matrix".to_owned(),
                    account_id: inbox.account.account_id.clone(),
                    cursor: batch.next_batch.clone(),
                });
                inbox.record(&session.user_id, "first-sync", event).await?;
                self.learn(&batch, &inbox).await?;
                tracing::info!(
                    skipped = batch.events.len(),
                    "matrix: first sync; earlier room history is not answered"
                );
                batch.next_batch
            }
        };
        *self.since.lock().expect("since lock") = Some(since.clone());
        inbox.account.connected(true);
        loop {
            let answer = tokio::select! {
                answer = self.sync(Some(&since), SYNC_WAIT, sync::TIMELINE_LIMIT) => answer,
                _ = stop.changed() => return Ok(()),
            };
            let batch = match answer {
                Ok(batch) => batch,
                Err(error) if error.status == Some(429) => {
                    let wait = error.retry_after.unwrap_or(Duration::from_secs(1));
                    tracing::info!(?wait, "matrix sync rate limited");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => continue,
                        _ = stop.changed() => return Ok(()),
                    }
                }
                Err(error) => return Err(error.message),
            };
            self.learn(&batch, &inbox).await?;
            let events = self.with_gaps_filled(&batch, &since).await?;
            let bot = BotIdentity {
                user_id: session.user_id.clone(),
                display_name: None,
            };
            let mut facts: BTreeMap<String, RoomFacts> = BTreeMap::new();
            let mut messages = Vec::new();
            for event in &events {
                if event.sender == bot.user_id || event.body == sync::Body::Ignored {
                    continue;
                }
                if !facts.contains_key(&event.room_id) {
                    let found = self.facts(&event.room_id).await;
                    facts.insert(event.room_id.clone(), found);
                }
                let room = &facts[&event.room_id];
                let bot = BotIdentity {
                    display_name: room.names.get(&bot.user_id).cloned(),
                    ..bot.clone()
                };
                messages.extend(sync::inbound(event, room, &bot, None));
            }
            // A batch of invites and no message moves the recorded
            // position itself, so a restart does not see its invites again.
            if messages.is_empty() && !batch.invites.is_empty() {
                let event = Event::ChannelCursorRecorded(ChannelCursorRecorded {
                    channel: "matrix".to_owned(),
                    account_id: inbox.account.account_id.clone(),
                    cursor: batch.next_batch.clone(),
                });
                inbox.record(&session.user_id, "invites", event).await?;
            }
            let cursors = sync::cursors(messages.len(), &batch.next_batch);
            for (mut message, cursor) in messages.into_iter().zip(cursors) {
                message.cursor = cursor;
                inbox.take(message).await?;
            }
            since = batch.next_batch;
            *self.since.lock().expect("since lock") = Some(since.clone());
            if *stop.borrow() {
                return Ok(());
            }
        }
    }
}
