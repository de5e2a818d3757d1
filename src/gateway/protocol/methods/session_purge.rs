//! Crypto-shredding through the session methods: `sessions.delete` and
//! `sessions.reset` with `purge: true` (a clawback addition) destroy the
//! session's content keys, so what it said reads as `[purged]` everywhere
//! while the log, its chain and checkpoints stay whole (see
//! `clawback_events::sealed` and `content_keys`).

use std::sync::Arc;

use clawback_events::event::Event;
use serde_json::{Value, json};

use super::Reply;
use super::sessions::finish;
use crate::gateway::Gateway;

/// `sessions.delete` or `sessions.reset` with `purge: true`:
/// crypto-shredding. The session's runs are stopped, its keys retired (new
/// content gets a fresh one), `ending` (the deletion or reset) and
/// `session.purged` (naming the keys) recorded, and once that is durable
/// the keys are destroyed; the answer gains `purge`. A crash after the
/// record and before the destruction is finished at the next start.
pub(super) fn purge(
    gateway: &Arc<Gateway>,
    key: &str,
    ending: Event,
    lock: tokio::sync::OwnedMutexGuard<()>,
    answer: impl Fn(&Gateway, &str) -> Value + Send + 'static,
) -> Reply {
    gateway
        .agent
        .abort(key, None, "the session is being purged");
    let key_ids = gateway.keyring.begin_purge(key);
    let purged = Event::SessionPurged(clawback_events::event::SessionPurged {
        session_key: key.to_owned(),
        key_ids: key_ids.clone(),
    });
    finish(
        gateway,
        key,
        vec![ending, purged],
        lock,
        move |gateway, key| {
            let mut purge = json!({"keysDestroyed": key_ids.len()});
            if let Err(error) = gateway.keyring.destroy(&key_ids) {
                tracing::error!(
                    session = key,
                    "destroying purged content keys failed: {error:#}"
                );
                purge = json!({"keysDestroyed": 0, "pending": key_ids.len(),
                           "error": format!("{error:#}; the next start finishes the purge")});
            }
            let mut answered = answer(gateway, key);
            answered["purge"] = purge;
            answered
        },
    )
}
