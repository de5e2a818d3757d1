//! The audit status a running gateway can vouch for: how far this process
//! has itself re-checked the hash chain from seq 0, and whether the latest
//! signed Merkle checkpoint is the log's.
//!
//! Why the gateway checks again: recovery verified the chain only from the
//! newest snapshot on, and `clawback audit verify` cannot run beside a
//! gateway (it takes the state dir's lock). So `clawback.audit.status`
//! advances this watch: each call re-reads up to `STEP_RECORDS_MAX` more
//! records from the gateway's store, checks each one's hash and its link
//! to the one before (`LogTree::extend`), and grows the Merkle tree over
//! them, so "verified up to seq N" is a claim this process checked, not a
//! copy of an earlier report. Bounded per call, so a long log is verified
//! across several calls (the control UI polls) without one call holding a
//! blocking thread for minutes. When the tree reaches the latest
//! checkpoint's size, its root is compared with the signed one.
//!
//! A std mutex: held only on a blocking thread, never across an await.

use std::sync::Mutex;

use clawback_events::store::LogStore;
use clawback_replay::log_tree::{LogTree, TreeError, latest_checkpoint};
use clawback_replay::merkle::Hash;
use clawback_replay::merkle::note::{Checkpoint, NoteVerifier};
use serde_json::{Value, json};

/// Records re-checked per call, at most (about a quarter second here; see
/// docs/BENCHMARKS.md for the verify rate).
pub const STEP_RECORDS_MAX: u64 = 250_000;

/// This process's verification of the log, from seq 0.
#[derive(Default)]
pub struct ChainWatch {
    state: Mutex<WatchState>,
}

#[derive(Default)]
struct WatchState {
    /// The tree over every record checked so far.
    tree: LogTree,
    /// The first record that failed, and why: nothing past it is checked.
    failure: Option<(u64, String)>,
    /// The newest checkpoint compared with the tree: its record's seq and
    /// whether its signed root is the root of the checked log at its size.
    compared: Option<(u64, bool)>,
}

impl ChainWatch {
    /// Checks up to `STEP_RECORDS_MAX` more records below `until` (the
    /// durable tail) and reports. Blocking: reads the store.
    pub fn advance(&self, store: &dyn LogStore, until: u64, verifier: &NoteVerifier) -> Value {
        let mut state = self.state.lock().expect("chain watch lock");
        let latest = latest_checkpoint(store);
        let checkpoint = match &latest {
            Ok(Some(stored)) => stored
                .parsed
                .as_ref()
                .ok()
                .map(|parsed| (stored.seq, parsed)),
            _ => None,
        };
        if state.failure.is_none() {
            let target = until.min(state.tree.size().saturating_add(STEP_RECORDS_MAX));
            // Stop at the checkpoint's size on the way, to compare roots.
            if let Some((seq, parsed)) = checkpoint
                && parsed.size > state.tree.size()
                && parsed.size <= target
            {
                if let Err(error) = state.tree.extend(store, parsed.size) {
                    state.failure = Some(failure(error, state.tree.size()));
                } else {
                    let matches = state.tree.root() == parsed.root;
                    state.compared = Some((seq, matches));
                }
            }
            if state.failure.is_none()
                && let Err(error) = state.tree.extend(store, target)
            {
                state.failure = Some(failure(error, state.tree.size()));
            }
        }
        let verified = state.tree.size();
        let chain = json!({
            "verifiedRecords": verified,
            "verifiedThroughSeq": verified.checked_sub(1),
            "complete": state.failure.is_none() && verified >= until,
            "failure": state.failure.as_ref().map(|(seq, detail)| json!({"seq": seq, "detail": detail})),
            "stepRecordsMax": STEP_RECORDS_MAX,
        });
        let checkpoint = match &latest {
            Err(error) => json!({"error": error.to_string()}),
            Ok(None) => Value::Null,
            Ok(Some(stored)) => {
                let signature = match Checkpoint::open(&stored.event.note, verifier) {
                    Ok(_) => json!({"valid": true, "key": verifier.name()}),
                    Err(error) => json!({"valid": false, "error": error.to_string()}),
                };
                let compared = state.compared.filter(|(seq, _)| *seq == stored.seq);
                match &stored.parsed {
                    Err(error) => json!({"seq": stored.seq, "error": error.to_string(),
                                         "signature": signature}),
                    Ok(parsed) => json!({
                        "seq": stored.seq,
                        "origin": parsed.origin,
                        "treeSize": parsed.size,
                        "rootHash": hex(&parsed.root),
                        "timeMs": parsed.time_ms,
                        "signature": signature,
                        // null: the checked tree has not reached its size
                        // yet, or passed it before the checkpoint was read.
                        "matchesLog": compared.map(|(_, matches)| matches),
                    }),
                }
            }
        };
        json!({"chain": chain, "checkpoint": checkpoint})
    }
}

fn failure(error: TreeError, checked: u64) -> (u64, String) {
    match error {
        TreeError::Corrupt { seq, detail } => (seq, detail),
        other => (checked, other.to_string()),
    }
}

fn hex(hash: &Hash) -> String {
    hash.iter().map(|byte| format!("{byte:02x}")).collect()
}
