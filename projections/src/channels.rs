//! Chat channels: which platform messages were taken, where each account's
//! stream resumes, and which replies are not settled yet.
//!
//! Why: exactly-once across restarts is a property of the log, not of a
//! process. A redelivered platform message is recognised here
//! ([`Channels::seen`]); a polling channel resumes from the cursor recorded
//! with the last message it took ([`Channels::cursor`]); and a reply whose
//! run outlived its process is finished by the next one
//! ([`Channels::pending_replies`]) instead of being lost.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use clawback_events::event::{
    Admission, ChannelCursorRecorded, ChannelMessageReceived, ChannelPairingRequested,
    ChannelPairingResolved, ChannelReplyCompleted, DeliveryPrepared,
};
use serde::{Deserialize, Serialize};

use crate::{Anomalies, At};

/// Platform message ids remembered for redelivery detection, across all
/// accounts (FIFO). Platforms redeliver within minutes to a day (Telegram
/// keeps unconfirmed updates 24 h); this covers far more traffic than that.
pub const SEEN_MAX: usize = 20_000;

/// Replies waiting to be settled. Each is one run in flight (or cut short by
/// a restart and about to be settled), so this bounds a runaway, not normal
/// traffic.
pub const PENDING_REPLIES_MAX: usize = 4_096;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channels {
    /// `(channel, account, platform message id)` -> seq that recorded it.
    pub seen: BTreeMap<(String, String, String), u64>,
    /// `seen`'s keys in insertion order, for eviction.
    pub seen_order: VecDeque<(String, String, String)>,
    /// `(channel, account)` -> the cursor recorded with its latest message.
    pub cursors: BTreeMap<(String, String), String>,
    /// Run id -> where its reply goes and how much of it is in the outbox.
    pub pending_replies: BTreeMap<String, PendingReply>,
    /// `(channel, account)` -> counts and the latest inbound time.
    pub accounts: BTreeMap<(String, String), AccountActivity>,
    /// `(channel, account)` -> DM pairing requests and approved senders.
    pub pairing: BTreeMap<(String, String), Pairing>,
    /// Session key -> the chat its user last spoke from (an admitted
    /// message): where OpenClaw's `channel: "last"` delivers.
    pub last_routes: BTreeMap<String, LastRoute>,
}

/// Sessions whose last chat is remembered; past it the least recently
/// spoken-in is forgotten (a bound, far above one user's sessions).
pub const LAST_ROUTES_MAX: usize = 20_000;

/// Where a session's user last spoke.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRoute {
    pub channel: String,
    pub account_id: String,
    pub chat_id: String,
    pub thread_id: Option<String>,
    /// The seq of the message that set it.
    pub seq: u64,
}

/// OpenClaw's limits: at most this many live requests per account...
pub const PAIRING_PENDING_MAX: usize = 3;
/// ...and senders approved by pairing, per account.
pub const PAIRED_SENDERS_MAX: usize = 10_000;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pairing {
    /// Request id -> the request, until decided or expired (expired ones
    /// are dropped as later events of the account arrive).
    pub pending: BTreeMap<String, PairingRequest>,
    /// Lowercased sender ids an operator approved.
    pub approved: BTreeSet<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairingRequest {
    pub code: String,
    pub sender_id: String,
    pub sender_name: Option<String>,
    pub chat_id: String,
    pub requested_ms: i64,
    pub expires_at_ms: i64,
}

impl Pairing {
    /// Requests still open at `now_ms`.
    pub fn live(&self, now_ms: i64) -> impl Iterator<Item = (&String, &PairingRequest)> {
        self.pending
            .iter()
            .filter(move |(_, request)| request.expires_at_ms > now_ms)
    }

    fn prune(&mut self, now_ms: i64) {
        self.pending
            .retain(|_, request| request.expires_at_ms > now_ms);
    }
}

/// An admitted message's reply, not settled yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingReply {
    pub channel: String,
    pub account_id: String,
    pub chat_kind: String,
    pub chat_id: String,
    pub thread_id: Option<String>,
    pub platform_message_id: String,
    pub session_key: String,
    pub received_seq: u64,
    /// Parts of the reply prepared in the outbox so far (their idempotency
    /// keys are `<run id>#<n>`, counted from 0).
    pub parts_prepared: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountActivity {
    pub admitted: u64,
    pub refused: u64,
    pub redelivered: u64,
    pub last_inbound_ms: Option<i64>,
}

impl Channels {
    /// Whether this platform message was already recorded.
    pub fn seen(&self, channel: &str, account_id: &str, platform_message_id: &str) -> bool {
        self.seen.contains_key(&(
            channel.to_owned(),
            account_id.to_owned(),
            platform_message_id.to_owned(),
        ))
    }

    /// Where `(channel, account)`'s stream resumes, if a message was taken.
    pub fn cursor(&self, channel: &str, account_id: &str) -> Option<&str> {
        self.cursors
            .get(&(channel.to_owned(), account_id.to_owned()))
            .map(String::as_str)
    }

    /// Whether an operator approved `sender_id` on this account by pairing.
    pub fn paired(&self, channel: &str, account_id: &str, sender_id: &str) -> bool {
        self.pairing
            .get(&(channel.to_owned(), account_id.to_owned()))
            .is_some_and(|pairing| pairing.approved.contains(&sender_id.to_lowercase()))
    }

    pub(crate) fn pairing_requested(
        &mut self,
        at: At,
        event: ChannelPairingRequested,
        anomalies: &mut Anomalies,
    ) {
        let pairing = self
            .pairing
            .entry((event.channel.clone(), event.account_id.clone()))
            .or_default();
        pairing.prune(at.ts_ms);
        let sender_pending = pairing
            .pending
            .values()
            .any(|request| request.sender_id.eq_ignore_ascii_case(&event.sender_id));
        if sender_pending
            || pairing.pending.len() >= PAIRING_PENDING_MAX
            || pairing.pending.contains_key(&event.request_id)
        {
            anomalies.record(
                at,
                "channel.pairing.refused",
                format!(
                    "pairing request {} for {} on {}/{}: the sender already has one, or {PAIRING_PENDING_MAX} are open; ignored",
                    event.request_id, event.sender_id, event.channel, event.account_id
                ),
            );
            return;
        }
        pairing.pending.insert(
            event.request_id,
            PairingRequest {
                code: event.code,
                sender_id: event.sender_id,
                sender_name: event.sender_name,
                chat_id: event.chat_id,
                requested_ms: at.ts_ms,
                expires_at_ms: event.expires_at_ms,
            },
        );
        debug_assert!(pairing.pending.len() <= PAIRING_PENDING_MAX);
    }

    pub(crate) fn pairing_resolved(
        &mut self,
        at: At,
        event: &ChannelPairingResolved,
        anomalies: &mut Anomalies,
    ) {
        let pairing = self
            .pairing
            .entry((event.channel.clone(), event.account_id.clone()))
            .or_default();
        pairing.prune(at.ts_ms);
        let Some(request) = pairing.pending.remove(&event.request_id) else {
            anomalies.record(
                at,
                "channel.pairing.unknown",
                format!(
                    "decision on pairing request {} that is not open (expired or decided); ignored",
                    event.request_id
                ),
            );
            return;
        };
        if event.decision == "approved" {
            if pairing.approved.len() >= PAIRED_SENDERS_MAX {
                anomalies.record(
                    at,
                    "channel.pairing.full",
                    format!(
                        "{PAIRED_SENDERS_MAX} senders paired on {}/{}; {} not added",
                        event.channel, event.account_id, request.sender_id
                    ),
                );
                return;
            }
            pairing.approved.insert(request.sender_id.to_lowercase());
        }
    }

    /// The idempotency key of part `index` of `run_id`'s reply.
    pub fn part_key(run_id: &str, index: u32) -> String {
        format!("{run_id}#{index}")
    }

    pub(crate) fn message_received(
        &mut self,
        at: At,
        event: ChannelMessageReceived,
        anomalies: &mut Anomalies,
    ) {
        let account = (event.channel.clone(), event.account_id.clone());
        let key = (
            event.channel.clone(),
            event.account_id.clone(),
            event.platform_message_id.clone(),
        );
        let activity = self.accounts.entry(account.clone()).or_default();
        if let Some(first) = self.seen.get(&key) {
            activity.redelivered += 1;
            anomalies.record(
                at,
                "channel.message.redelivered",
                format!(
                    "{} message {} on account {} already recorded at seq {first}; ignored",
                    key.0, key.2, key.1
                ),
            );
            return;
        }
        activity.last_inbound_ms = Some(at.ts_ms);
        if let Some(cursor) = &event.cursor {
            self.cursors.insert(account.clone(), cursor.clone());
        }
        self.seen.insert(key.clone(), at.seq);
        self.seen_order.push_back(key);
        while self.seen_order.len() > SEEN_MAX {
            if let Some(oldest) = self.seen_order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        debug_assert_eq!(self.seen.len(), self.seen_order.len());
        if let Admission::Admitted { session_key, .. } = &event.admission {
            self.remember_route(session_key, &event, at.seq);
        }
        let activity = self.accounts.entry(account).or_default();
        match event.admission {
            Admission::Refused { .. } => activity.refused += 1,
            Admission::Admitted {
                session_key,
                run_id,
                ..
            } => {
                activity.admitted += 1;
                if self.pending_replies.contains_key(&run_id) {
                    anomalies.record(
                        at,
                        "channel.run.duplicate",
                        format!("run {run_id} admitted for a second message; ignored"),
                    );
                    return;
                }
                if self.pending_replies.len() == PENDING_REPLIES_MAX {
                    anomalies.record(
                        at,
                        "channel.replies.full",
                        format!("{PENDING_REPLIES_MAX} replies unsettled; run {run_id}'s reply is not tracked"),
                    );
                    return;
                }
                self.pending_replies.insert(
                    run_id,
                    PendingReply {
                        channel: event.channel,
                        account_id: event.account_id,
                        chat_kind: event.chat_kind,
                        chat_id: event.chat_id,
                        thread_id: event.thread_id,
                        platform_message_id: event.platform_message_id,
                        session_key,
                        received_seq: at.seq,
                        parts_prepared: 0,
                    },
                );
            }
        }
    }

    /// A position recorded without a message (a first sync): where the
    /// account resumes until its first message moves it on.
    pub(crate) fn cursor_recorded(&mut self, event: &ChannelCursorRecorded) {
        self.cursors.insert(
            (event.channel.clone(), event.account_id.clone()),
            event.cursor.clone(),
        );
    }

    fn remember_route(&mut self, session_key: &str, event: &ChannelMessageReceived, seq: u64) {
        if !self.last_routes.contains_key(session_key) && self.last_routes.len() >= LAST_ROUTES_MAX
        {
            // Rare (only at the bound), so a scan rather than an index.
            let oldest = self
                .last_routes
                .iter()
                .min_by_key(|(_, route)| route.seq)
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                self.last_routes.remove(&oldest);
            }
        }
        self.last_routes.insert(
            session_key.to_owned(),
            LastRoute {
                channel: event.channel.clone(),
                account_id: event.account_id.clone(),
                chat_id: event.chat_id.clone(),
                thread_id: event.thread_id.clone(),
                seq,
            },
        );
    }

    /// Counts a part of a pending reply entering the outbox.
    pub(crate) fn delivery_prepared(&mut self, event: &DeliveryPrepared) {
        let Some((run_id, index)) = event.idempotency_key.rsplit_once('#') else {
            return;
        };
        let Some(reply) = self.pending_replies.get_mut(run_id) else {
            return;
        };
        if index.parse::<u32>().ok() == Some(reply.parts_prepared) {
            reply.parts_prepared += 1;
        }
    }

    pub(crate) fn reply_completed(
        &mut self,
        at: At,
        event: &ChannelReplyCompleted,
        anomalies: &mut Anomalies,
    ) {
        if self.pending_replies.remove(&event.run_id).is_none() {
            anomalies.record(
                at,
                "channel.reply.unknown",
                format!(
                    "reply of run {} completed but was not pending",
                    event.run_id
                ),
            );
        }
    }
}
