//! Idempotency keys of HTTP requests (`Idempotency-Key` on `/v1/*`): which
//! run a key started, with which body, and where its answer is recorded.
//!
//! Why a projection: the answer to a retried request must be the recorded
//! one even after a restart, and "same key, other body" must be refused
//! (409), so the key's binding has to be rebuilt from the log like any
//! other state. The answer itself stays in the log (`answer_seq`): answers
//! can be large, and the state only needs to know where to read it.
//!
//! Bounds: a key is kept for `WINDOW_MS` (24 h, counted in envelope time)
//! and at most `KEYS_MAX` keys are kept; past either, the oldest are
//! forgotten and a reuse of them starts a new run. Expiry runs when a new
//! key is recorded, from the envelope's clock, so rebuilds agree.

use std::collections::{BTreeMap, VecDeque};

use clawback_events::event::{HttpRequestAccepted, HttpRequestAnswered};
use serde::{Deserialize, Serialize};

use crate::{Anomalies, At};

/// How long a key binds its answer (OpenAI's documented window is 24 h).
pub const WINDOW_MS: i64 = 24 * 60 * 60 * 1000;
/// Keys kept at most (about 250 bytes each).
pub const KEYS_MAX: usize = 100_000;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Idempotency {
    /// By `<endpoint> <key>`.
    pub keys: BTreeMap<String, KeyedRequest>,
    /// Keys in the order they were accepted, with their time: the eviction
    /// order.
    order: VecDeque<(i64, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyedRequest {
    pub body_hash: String,
    pub run_id: String,
    pub session_key: String,
    pub accepted_seq: u64,
    pub accepted_ts_ms: i64,
    /// The `http.request.answered` record, once the answer is recorded.
    pub answer_seq: Option<u64>,
    pub status: Option<u16>,
}

/// The map key of an endpoint's idempotency key.
pub fn slot(endpoint: &str, key: &str) -> String {
    format!("{endpoint} {key}")
}

impl Idempotency {
    pub fn get(&self, endpoint: &str, key: &str) -> Option<&KeyedRequest> {
        self.keys.get(&slot(endpoint, key))
    }

    pub(crate) fn accepted(
        &mut self,
        at: At,
        event: HttpRequestAccepted,
        anomalies: &mut Anomalies,
    ) {
        self.expire(at.ts_ms);
        let slot = slot(&event.endpoint, &event.idempotency_key);
        if self.keys.contains_key(&slot) {
            // The gateway checks under the write lock before recording, so
            // a second acceptance of a live key is a bug or a forged log.
            anomalies.record(
                at,
                "http.key_rebound",
                format!("idempotency key {slot} accepted again"),
            );
            return;
        }
        self.keys.insert(
            slot.clone(),
            KeyedRequest {
                body_hash: event.body_hash,
                run_id: event.run_id,
                session_key: event.session_key,
                accepted_seq: at.seq,
                accepted_ts_ms: at.ts_ms,
                answer_seq: None,
                status: None,
            },
        );
        self.order.push_back((at.ts_ms, slot));
        while self.order.len() > KEYS_MAX {
            if let Some((_, oldest)) = self.order.pop_front() {
                self.keys.remove(&oldest);
            }
        }
        debug_assert_eq!(self.keys.len(), self.order.len());
    }

    pub(crate) fn answered(
        &mut self,
        at: At,
        event: &HttpRequestAnswered,
        anomalies: &mut Anomalies,
    ) {
        let slot = slot(&event.endpoint, &event.idempotency_key);
        match self.keys.get_mut(&slot) {
            Some(keyed) if keyed.run_id == event.run_id && keyed.answer_seq.is_none() => {
                keyed.answer_seq = Some(at.seq);
                keyed.status = Some(event.status);
            }
            // Expired before its answer, answered twice, or for another
            // run: the answer is in the log, the binding is not changed.
            _ => anomalies.record(
                at,
                "http.answer_unbound",
                format!(
                    "answer for {slot} (run {}) matches no open key",
                    event.run_id
                ),
            ),
        }
    }

    fn expire(&mut self, now_ms: i64) {
        while let Some((ts_ms, _)) = self.order.front() {
            if now_ms - *ts_ms <= WINDOW_MS {
                break;
            }
            if let Some((_, slot)) = self.order.pop_front() {
                self.keys.remove(&slot);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(key: &str, run: &str) -> HttpRequestAccepted {
        HttpRequestAccepted {
            endpoint: "chat.completions".to_owned(),
            idempotency_key: key.to_owned(),
            body_hash: "h".to_owned(),
            run_id: run.to_owned(),
            session_key: "agent:main:openai:x".to_owned(),
        }
    }

    fn answered(key: &str, run: &str) -> HttpRequestAnswered {
        HttpRequestAnswered {
            endpoint: "chat.completions".to_owned(),
            idempotency_key: key.to_owned(),
            run_id: run.to_owned(),
            status: 200,
            answer: "{}".to_owned(),
        }
    }

    #[test]
    fn a_key_binds_its_run_and_answer_for_a_day() {
        let (mut keys, mut anomalies) = (Idempotency::default(), Anomalies::default());
        keys.accepted(At { seq: 1, ts_ms: 0 }, accepted("k", "r1"), &mut anomalies);
        keys.answered(
            At { seq: 2, ts_ms: 5 },
            &answered("k", "r1"),
            &mut anomalies,
        );
        let bound = keys.get("chat.completions", "k").unwrap();
        assert_eq!(
            (bound.run_id.as_str(), bound.answer_seq, bound.status),
            ("r1", Some(2), Some(200))
        );
        assert!(
            keys.get("responses", "k").is_none(),
            "keys are per endpoint"
        );
        // A second binding of a live key, or an answer for another run,
        // changes nothing and is counted.
        keys.accepted(
            At { seq: 3, ts_ms: 10 },
            accepted("k", "r2"),
            &mut anomalies,
        );
        keys.answered(
            At { seq: 4, ts_ms: 11 },
            &answered("k", "r2"),
            &mut anomalies,
        );
        assert_eq!(keys.get("chat.completions", "k").unwrap().run_id, "r1");
        assert_eq!(anomalies.count("http.key_rebound"), 1);
        assert_eq!(anomalies.count("http.answer_unbound"), 1);
        // A day later (by the envelope's clock) the key is forgotten.
        keys.accepted(
            At {
                seq: 5,
                ts_ms: WINDOW_MS,
            },
            accepted("other", "r3"),
            &mut anomalies,
        );
        assert!(
            keys.get("chat.completions", "k").is_some(),
            "still inside the window"
        );
        keys.accepted(
            At {
                seq: 6,
                ts_ms: WINDOW_MS + 1,
            },
            accepted("later", "r4"),
            &mut anomalies,
        );
        assert!(keys.get("chat.completions", "k").is_none());
        assert!(keys.get("chat.completions", "other").is_some());
    }

    #[test]
    fn at_most_keys_max_are_kept_oldest_first_out() {
        let (mut keys, mut anomalies) = (Idempotency::default(), Anomalies::default());
        for n in 0..=KEYS_MAX as u64 {
            keys.accepted(
                At { seq: n, ts_ms: 0 },
                accepted(&format!("k{n}"), "r"),
                &mut anomalies,
            );
        }
        assert_eq!(keys.keys.len(), KEYS_MAX);
        assert!(keys.get("chat.completions", "k0").is_none());
        assert!(
            keys.get("chat.completions", &format!("k{KEYS_MAX}"))
                .is_some()
        );
        assert_eq!(anomalies.total(), 0);
    }
}
