//! Rebuild and restore: turning the log (and a snapshot) back into state.
//!
//! Restore = the newest snapshot that verifies against the chain, then the
//! log's tail applied on top. A snapshot that fails any check is skipped (and
//! reported), never trusted: the log is the source of truth, snapshots are a
//! cache of it. Rebuilding from seq 0 must give the same state hash; the
//! property tests and `snapshot restore --check` hold us to it.

use std::ops::ControlFlow;

use clawback_events::record;
use clawback_events::store::LogStore;
use clawback_projections::State;

use crate::snapshot::{SnapshotError, SnapshotStore};

/// Called every so often with (records done, records total) for progress bars.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// How often, in records, progress is reported.
const PROGRESS_EVERY_RECORDS: u64 = 65_536;

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("log record at seq {seq} cannot be replayed: {detail}")]
    Unreadable { seq: u64, detail: String },
    #[error("{0}")]
    Store(#[from] clawback_events::store::StoreError),
}

/// Applies the records from `state.next_seq` up to (excluding) `until` onto
/// `state`. Every record's hash is checked as it is decoded, and must link to
/// the hash of the record before it.
pub fn rebuild_from(
    store: &dyn LogStore,
    state: &mut State,
    until: Option<u64>,
    progress: Progress<'_>,
) -> Result<u64, RebuildError> {
    let end = until.unwrap_or(u64::MAX).min(store.next_seq()?);
    let start = state.next_seq;
    let total = end.saturating_sub(start);
    let mut applied = 0u64;
    let mut failure = None;
    store.scan(start, &mut |seq, bytes| {
        if seq >= end {
            return ControlFlow::Break(());
        }
        let envelope = match record::decode(seq, bytes) {
            Ok(envelope) => envelope,
            Err(error) => {
                failure = Some(RebuildError::Unreadable {
                    seq,
                    detail: error.to_string(),
                });
                return ControlFlow::Break(());
            }
        };
        if seq != state.next_seq || envelope.prev_hash != state.last_hash {
            failure = Some(RebuildError::Unreadable {
                seq,
                detail: format!(
                    "does not continue the chain (expected seq {} after hash {})",
                    state.next_seq,
                    state.last_hash.short()
                ),
            });
            return ControlFlow::Break(());
        }
        state.apply(&envelope);
        applied += 1;
        if applied.is_multiple_of(PROGRESS_EVERY_RECORDS) {
            progress(applied, total);
        }
        ControlFlow::Continue(())
    })?;
    if let Some(error) = failure {
        return Err(error);
    }
    progress(applied, total);
    Ok(applied)
}

/// The outcome of [`restore`].
#[derive(Debug)]
pub struct Restored {
    pub state: State,
    /// The snapshot used (its `next_seq`), or `None` for a rebuild from 0.
    pub snapshot_seq: Option<u64>,
    /// Snapshots that were newer but failed a check, with the reason.
    pub skipped: Vec<(String, SnapshotError)>,
    /// Records applied on top of the snapshot.
    pub tail_records: u64,
}

/// Newest valid snapshot (at or below `until`) + tail.
pub fn restore(
    store: &dyn LogStore,
    snapshots: &SnapshotStore,
    until: Option<u64>,
    progress: Progress<'_>,
) -> Result<Restored, RebuildError> {
    let mut skipped = Vec::new();
    let mut base = None;
    for info in snapshots.list().unwrap_or_default() {
        if until.is_some_and(|until| info.next_seq > until) {
            continue;
        }
        match snapshots.load_verified(&info, store) {
            Ok(state) => {
                base = Some((info.next_seq, state));
                break;
            }
            Err(error) => skipped.push((info.file_name.clone(), error)),
        }
    }
    let (snapshot_seq, mut state) = match base {
        Some((seq, state)) => (Some(seq), state),
        None => (None, State::default()),
    };
    let tail_records = rebuild_from(store, &mut state, until, progress)?;
    Ok(Restored {
        state,
        snapshot_seq,
        skipped,
        tail_records,
    })
}
