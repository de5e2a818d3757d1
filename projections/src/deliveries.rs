//! The outbox: replies prepared for a channel and what became of them.
//!
//! Why: a reply is recorded as `delivery.prepared` (with an idempotency key)
//! before it is sent. After a crash, [`Deliveries::unconfirmed`] lists what
//! may or may not have reached the platform; the channel executor resolves
//! each by its key instead of sending it again (duplicate replies are the most
//! reported bug in shared/lessons.md).

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, VecDeque};

use clawback_events::event::{DeliveryFailed, DeliveryPrepared, DeliverySent};
use serde::{Deserialize, Serialize};

use crate::{Anomalies, At};

/// How many finished deliveries are remembered, for duplicate detection by
/// idempotency key and for display.
pub const FINISHED_DELIVERIES_MAX: usize = 1024;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deliveries {
    /// Prepared and not yet confirmed sent or given up on.
    pub outbox: BTreeMap<String, Delivery>,
    /// Most recently finished last.
    pub finished: VecDeque<FinishedDelivery>,
    /// Idempotency key -> delivery id, for every delivery in `outbox` and
    /// `finished`: a key is refused while either still remembers it.
    pub keys: BTreeMap<String, String>,
    pub totals: DeliveryTotals,
}

/// A reply in the outbox: the delivery as prepared, and what became of its
/// attempts so far.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub prepared: DeliveryPrepared,
    pub prepared_seq: u64,
    pub prepared_ts_ms: i64,
    /// Retryable failures so far.
    pub failed_attempts: u32,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishedDelivery {
    pub delivery_id: String,
    pub idempotency_key: String,
    pub channel: String,
    pub outcome: DeliveryOutcome,
    pub seq: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryOutcome {
    Sent { platform_message_id: Option<String> },
    GaveUp { error: String },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryTotals {
    pub prepared: u64,
    pub sent: u64,
    pub failed_retryable: u64,
    pub gave_up: u64,
}

impl Deliveries {
    pub(crate) fn prepared(&mut self, at: At, event: DeliveryPrepared, anomalies: &mut Anomalies) {
        if let Some(existing) = self.by_idempotency_key(&event.idempotency_key) {
            anomalies.record(
                at,
                "delivery.duplicate",
                format!(
                    "delivery {} prepared with idempotency key {} already used by delivery {}; ignored",
                    event.delivery_id, event.idempotency_key, existing
                ),
            );
            return;
        }
        if self.outbox.contains_key(&event.delivery_id) {
            anomalies.record(
                at,
                "delivery.duplicate",
                format!("delivery {} prepared twice; ignored", event.delivery_id),
            );
            return;
        }
        self.totals.prepared += 1;
        self.keys
            .insert(event.idempotency_key.clone(), event.delivery_id.clone());
        let key = event.delivery_id.clone();
        let delivery = Delivery {
            prepared: event,
            prepared_seq: at.seq,
            prepared_ts_ms: at.ts_ms,
            failed_attempts: 0,
            last_error: None,
        };
        self.outbox.insert(key, delivery);
    }

    pub(crate) fn sent(&mut self, at: At, event: DeliverySent, anomalies: &mut Anomalies) {
        let Some(delivery) = self.outbox.remove(&event.delivery_id) else {
            anomalies.record(
                at,
                "delivery.not_pending",
                format!(
                    "send of delivery {} that is not in the outbox",
                    event.delivery_id
                ),
            );
            return;
        };
        self.totals.sent += 1;
        let outcome = DeliveryOutcome::Sent {
            platform_message_id: event.platform_message_id,
        };
        self.finish(at, delivery, outcome);
    }

    pub(crate) fn failed(&mut self, at: At, event: DeliveryFailed, anomalies: &mut Anomalies) {
        let Entry::Occupied(mut entry) = self.outbox.entry(event.delivery_id.clone()) else {
            anomalies.record(
                at,
                "delivery.not_pending",
                format!(
                    "failure of delivery {} that is not in the outbox",
                    event.delivery_id
                ),
            );
            return;
        };
        if event.retryable {
            self.totals.failed_retryable += 1;
            let delivery = entry.get_mut();
            delivery.failed_attempts = delivery.failed_attempts.saturating_add(1);
            delivery.last_error = Some(event.error);
            return;
        }
        let delivery = entry.remove();
        self.totals.gave_up += 1;
        let outcome = DeliveryOutcome::GaveUp { error: event.error };
        self.finish(at, delivery, outcome);
    }

    fn finish(&mut self, at: At, delivery: Delivery, outcome: DeliveryOutcome) {
        let finished = FinishedDelivery {
            delivery_id: delivery.prepared.delivery_id,
            idempotency_key: delivery.prepared.idempotency_key,
            channel: delivery.prepared.channel,
            outcome,
            seq: at.seq,
        };
        if self.finished.len() == FINISHED_DELIVERIES_MAX
            && let Some(forgotten) = self.finished.pop_front()
        {
            self.keys.remove(&forgotten.idempotency_key);
        }
        self.finished.push_back(finished);
        debug_assert!(self.finished.len() <= FINISHED_DELIVERIES_MAX);
        debug_assert_eq!(self.keys.len(), self.outbox.len() + self.finished.len());
    }

    /// The delivery id already holding `key`, pending or recently finished.
    pub fn by_idempotency_key(&self, key: &str) -> Option<&str> {
        self.keys.get(key).map(String::as_str)
    }

    /// How delivery `delivery_id` ended, while the bounded history of
    /// finished deliveries remembers it; `None` while it is in the outbox.
    pub fn outcome(&self, delivery_id: &str) -> Option<&DeliveryOutcome> {
        self.finished
            .iter()
            .find(|finished| finished.delivery_id == delivery_id)
            .map(|finished| &finished.outcome)
    }

    /// Deliveries prepared but not confirmed: after a restart, each may or
    /// may not have reached the platform and must be resolved, not resent
    /// blindly.
    pub fn unconfirmed(&self) -> impl Iterator<Item = &Delivery> {
        self.outbox.values()
    }
}
