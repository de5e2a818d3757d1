//! Recovery: what [`crate::Log::open`] checks before it accepts a single
//! append.
//!
//! The rules, in order:
//! 1. **Torn tail.** Records at the very end whose bytes stop short (the
//!    signature of a write cut off by a crash) were never acknowledged: the
//!    writer answers only after a sync. They are dropped, and the report names
//!    each one. At most [`TORN_RECORDS_MAX`] (one group-commit batch) may be
//!    dropped; more than that is not a torn write and is refused.
//!    (With fjall a torn batch is discarded by fjall's own journal recovery,
//!    before clawback looks; this rule covers backends without atomic batches
//!    and records cut short by anything else.)
//! 2. **Damage in the middle**, or a complete record at the tail that fails its
//!    hash, is never dropped: the log refuses to open and names the exact seq,
//!    because that record may have been acknowledged.
//! 3. **The chain** is verified from `verify_from` (0, or the seq of a trusted
//!    snapshot) to the tail: every record's hash is recomputed and must link to
//!    its predecessor.

use std::ops::ControlFlow;

use crate::envelope::Digest;
use crate::record::{RecordError, RecordView};
use crate::store::{LogStore, StoreError};

/// The most records recovery will drop as a torn tail: one full batch.
pub const TORN_RECORDS_MAX: u64 = crate::log::BATCH_EVENTS_MAX as u64;

/// What recovery found and did. Printed by `gateway run` and `log tail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The seq the next append gets (the number of records).
    pub next_seq: u64,
    /// The hash of the last record (GENESIS for an empty log).
    pub tail_hash: Digest,
    /// The ts of the last record, so new records never go back in time.
    pub tail_ts_ms: i64,
    pub verified_from: u64,
    pub records_verified: u64,
    /// Torn records dropped from the tail, each with the reason.
    pub dropped: Vec<DroppedRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedRecord {
    pub seq: u64,
    pub bytes: usize,
    pub reason: String,
}

impl std::fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for dropped in &self.dropped {
            writeln!(
                f,
                "recovery: dropped torn record at seq {} ({} bytes: {}); it was never acknowledged",
                dropped.seq, dropped.bytes, dropped.reason
            )?;
        }
        if self.next_seq == 0 {
            write!(f, "recovery: the log is empty")
        } else {
            write!(
                f,
                "recovery: log ends at seq {} (hash {}); chain verified from seq {} ({} records)",
                self.next_seq - 1,
                self.tail_hash.short(),
                self.verified_from,
                self.records_verified
            )
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(
        "log corrupted at seq {seq}: {detail}. The log was not opened and nothing was changed. Run `clawback audit verify` for a full report; restore from a backup, or cut the log at this seq with `clawback log truncate --from {seq}` if losing every later event is acceptable"
    )]
    Corrupt { seq: u64, detail: String },
    #[error(
        "log has {count} unreadable records at its tail (from seq {first_seq}), more than one batch ({TORN_RECORDS_MAX}): this is damage, not a torn write, and was left untouched"
    )]
    TooManyTorn { first_seq: u64, count: u64 },
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Runs the recovery rules against `store`, dropping a torn tail if there is
/// one.
pub fn recover(store: &dyn LogStore, verify_from: u64) -> Result<RecoveryReport, RecoveryError> {
    let dropped = drop_torn_tail(store)?;
    let next_seq = store.next_seq()?;
    let verify_from = verify_from.min(next_seq);
    let (tail_hash, tail_ts_ms, records_verified) = verify_chain(store, verify_from)?;
    Ok(RecoveryReport {
        next_seq,
        tail_hash,
        tail_ts_ms,
        verified_from: verify_from,
        records_verified,
        dropped,
    })
}

fn drop_torn_tail(store: &dyn LogStore) -> Result<Vec<DroppedRecord>, RecoveryError> {
    // Walk back from the end, one record at a time, while records are cut
    // short; the walk is bounded by one batch plus the record that ends it.
    let mut torn = Vec::new();
    let mut seq = store.next_seq()?;
    while seq > 0 && torn.len() as u64 <= TORN_RECORDS_MAX {
        seq -= 1;
        let Some(bytes) = store.get(seq)? else {
            break;
        };
        match crate::record::decode(seq, &bytes) {
            Err(error) if error.is_truncation() => torn.push(DroppedRecord {
                seq,
                bytes: bytes.len(),
                reason: error.to_string(),
            }),
            _ => break,
        }
    }
    let Some(first_torn) = torn.last().map(|record| record.seq) else {
        return Ok(Vec::new());
    };
    if torn.len() as u64 > TORN_RECORDS_MAX {
        return Err(RecoveryError::TooManyTorn {
            first_seq: first_torn,
            count: torn.len() as u64,
        });
    }
    store.truncate_from(first_torn)?;
    torn.reverse();
    Ok(torn)
}

/// Verifies hashes and links from `from` to the tail. Returns the tail hash,
/// the tail ts and the number of records checked.
pub fn verify_chain(store: &dyn LogStore, from: u64) -> Result<(Digest, i64, u64), RecoveryError> {
    let mut expected_prev: Option<Digest> = if from == 0 {
        Some(Digest::GENESIS)
    } else {
        None
    };
    let mut tail_hash = Digest::GENESIS;
    let mut tail_seq = None;
    let mut checked = 0u64;
    let mut failure: Option<RecoveryError> = None;
    let mut expected_seq = from;
    store.scan(from, &mut |seq, bytes| {
        let outcome = check_link(seq, expected_seq, bytes, expected_prev.as_ref());
        match outcome {
            Ok(hash) => {
                expected_prev = Some(hash);
                tail_hash = hash;
                tail_seq = Some(seq);
                expected_seq = seq + 1;
                checked += 1;
                ControlFlow::Continue(())
            }
            Err(error) => {
                failure = Some(error);
                ControlFlow::Break(())
            }
        }
    })?;
    if let Some(error) = failure {
        return Err(error);
    }
    let tail_ts_ms = match tail_seq {
        None if from > 0 => {
            // Nothing after `from`: the tail is the record just before it.
            let seq = from - 1;
            let bytes = store.get(seq)?.ok_or(RecoveryError::Corrupt {
                seq,
                detail: "record is missing".to_owned(),
            })?;
            let envelope =
                crate::record::decode(seq, &bytes).map_err(|error| corrupt(seq, error))?;
            tail_hash = envelope.hash;
            envelope.body.ts_ms
        }
        None => 0,
        Some(seq) => {
            let bytes = store.get(seq)?.ok_or(RecoveryError::Corrupt {
                seq,
                detail: "record vanished during recovery".to_owned(),
            })?;
            crate::record::decode(seq, &bytes)
                .map_err(|error| corrupt(seq, error))?
                .body
                .ts_ms
        }
    };
    Ok((tail_hash, tail_ts_ms, checked))
}

/// Checks one record: its seq continues the sequence, it parses, its hash
/// holds, and it links to the previous record. Returns its hash.
pub fn check_link(
    seq: u64,
    expected_seq: u64,
    bytes: &[u8],
    expected_prev: Option<&Digest>,
) -> Result<Digest, RecoveryError> {
    if seq != expected_seq {
        return Err(RecoveryError::Corrupt {
            seq: expected_seq,
            detail: format!("record is missing (the next stored record is seq {seq})"),
        });
    }
    let view = RecordView::parse(bytes).map_err(|error| corrupt(seq, error))?;
    if let Err(error) = view.verify(seq) {
        // Prefer "truncated" when the body ends early: same rule as decode.
        return Err(match view.decode_body() {
            Err(truncated @ RecordError::Truncated { .. }) => corrupt(seq, truncated),
            _ => corrupt(seq, error),
        });
    }
    if let Some(expected_prev) = expected_prev
        && view.prev_hash != *expected_prev
    {
        return Err(RecoveryError::Corrupt {
            seq,
            detail: format!(
                "chain broken: prev_hash {} does not match the hash {} of seq {}",
                view.prev_hash.short(),
                expected_prev.short(),
                seq.wrapping_sub(1)
            ),
        });
    }
    Ok(view.hash)
}

fn corrupt(seq: u64, error: RecordError) -> RecoveryError {
    RecoveryError::Corrupt {
        seq,
        detail: error.to_string(),
    }
}
