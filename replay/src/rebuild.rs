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

/// Records per hand-off from the reader thread to the applier.
const BATCH_RECORDS: usize = 4_096;
/// Batches that may wait for the applier: bounds memory to a few batches of
/// raw records whatever the log's size.
const BATCHES_IN_FLIGHT: usize = 4;

/// Raw records read (and, below `hashes_verified_from`, hash-checked) by the
/// reader, in one buffer so that a batch is one allocation, recycled.
#[derive(Default)]
struct RawBatch {
    bytes: Vec<u8>,
    /// (seq, end offset in `bytes`); each record starts where the previous ends.
    records: Vec<(u64, usize)>,
}

impl RawBatch {
    fn clear(&mut self) {
        self.bytes.clear();
        self.records.clear();
    }
}

/// Applies the records from `state.next_seq` up to (excluding) `until` onto
/// `state`. Every record's hash is checked, and every record must link to
/// the hash of the record before it.
///
/// Why two threads: reading and hashing a record costs about as much as
/// decoding and applying it, and they are independent, so a reader thread
/// reads and hashes while this thread decodes and applies. Decoding stays
/// with applying so that every string of an envelope is allocated and freed
/// on one thread (freeing across threads made the pipeline barely faster
/// than one thread). Applying stays on one thread, in seq order: the
/// reducers' determinism does not depend on the pipeline.
pub fn rebuild_from(
    store: &dyn LogStore,
    state: &mut State,
    until: Option<u64>,
    progress: Progress<'_>,
) -> Result<u64, RebuildError> {
    rebuild_after_recovery(store, state, until, u64::MAX, progress)
}

/// [`rebuild_from`] for a caller whose `Log::open` just verified every hash
/// from `hashes_verified_from` to the tail (recovery's `verify_from`): those
/// records are link-checked, not hashed again. Records below it are hashed
/// as usual (restore may fall back to an older snapshot than the one
/// recovery started from).
pub fn rebuild_after_recovery(
    store: &dyn LogStore,
    state: &mut State,
    until: Option<u64>,
    hashes_verified_from: u64,
    progress: Progress<'_>,
) -> Result<u64, RebuildError> {
    let end = until.unwrap_or(u64::MAX).min(store.next_seq()?);
    let start = state.next_seq;
    if start >= end {
        progress(0, 0);
        return Ok(0);
    }
    let total = end - start;
    let (sender, receiver) = std::sync::mpsc::sync_channel::<RawBatch>(BATCHES_IN_FLIGHT);
    // Emptied batches go back to the reader, so a rebuild allocates a few
    // batches, not one per hand-off.
    let (recycle, recycled) = std::sync::mpsc::sync_channel::<RawBatch>(BATCHES_IN_FLIGHT + 1);
    std::thread::scope(|scope| {
        let reader = std::thread::Builder::new()
            .name("clawback-rebuild-reader".to_owned())
            .spawn_scoped(scope, move || {
                read_records(store, start, end, hashes_verified_from, &sender, &recycled)
            })
            .map_err(|error| {
                RebuildError::Store(clawback_events::store::StoreError::Io(format!(
                    "cannot start the rebuild reader thread: {error}"
                )))
            })?;
        let applied = apply_records(state, &receiver, &recycle, total, progress);
        // Dropping the receiver stops a reader that is still going (after a
        // failure here), so the join below cannot hang.
        drop(receiver);
        let read = reader.join().expect("the rebuild reader does not panic");
        // A read failure explains a short apply; report it first.
        read?;
        let applied = applied?;
        if applied != total {
            return Err(RebuildError::Unreadable {
                seq: start + applied,
                detail: format!(
                    "record is missing (the store reports records up to seq {})",
                    end - 1
                ),
            });
        }
        progress(applied, total);
        Ok(applied)
    })
}

/// The reader half: scan and hash-check, in batches. Stops early, without
/// error, when the applier hangs up.
fn read_records(
    store: &dyn LogStore,
    start: u64,
    end: u64,
    hashes_verified_from: u64,
    sender: &std::sync::mpsc::SyncSender<RawBatch>,
    recycled: &std::sync::mpsc::Receiver<RawBatch>,
) -> Result<(), RebuildError> {
    let mut batch = RawBatch::default();
    let mut failure = None;
    let mut hung_up = false;
    store.scan(start, &mut |seq, bytes| {
        if seq >= end {
            return ControlFlow::Break(());
        }
        if seq < hashes_verified_from
            && let Err(error) = record::check(seq, bytes)
        {
            failure = Some(RebuildError::Unreadable {
                seq,
                detail: error.to_string(),
            });
            return ControlFlow::Break(());
        }
        batch.bytes.extend_from_slice(bytes);
        batch.records.push((seq, batch.bytes.len()));
        if batch.records.len() == BATCH_RECORDS {
            let empty = recycled.try_recv().unwrap_or_default();
            let full = std::mem::replace(&mut batch, empty);
            if sender.send(full).is_err() {
                hung_up = true;
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    })?;
    if !hung_up && !batch.records.is_empty() {
        // The applier may have stopped on a chain failure; that is its report.
        let _ = sender.send(batch);
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// The applier half: decode each record, check it continues the chain,
/// apply it.
fn apply_records(
    state: &mut State,
    receiver: &std::sync::mpsc::Receiver<RawBatch>,
    recycle: &std::sync::mpsc::SyncSender<RawBatch>,
    total: u64,
    progress: Progress<'_>,
) -> Result<u64, RebuildError> {
    let mut applied = 0u64;
    for mut batch in receiver.iter() {
        let mut record_start = 0;
        for &(seq, record_end) in &batch.records {
            let bytes = &batch.bytes[record_start..record_end];
            record_start = record_end;
            // Hashes were checked by the reader (or by recovery).
            let envelope = record::decode_hash_verified(seq, bytes).map_err(|error| {
                RebuildError::Unreadable {
                    seq,
                    detail: error.to_string(),
                }
            })?;
            if envelope.seq != state.next_seq || envelope.prev_hash != state.last_hash {
                return Err(RebuildError::Unreadable {
                    seq: envelope.seq,
                    detail: format!(
                        "does not continue the chain (expected seq {} after hash {})",
                        state.next_seq,
                        state.last_hash.short()
                    ),
                });
            }
            state.apply_owned(envelope);
            applied += 1;
            if applied.is_multiple_of(PROGRESS_EVERY_RECORDS) {
                progress(applied, total);
            }
        }
        batch.clear();
        // A full return queue only means the reader allocates one more.
        let _ = recycle.try_send(batch);
    }
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
    restore_after_recovery(store, snapshots, until, u64::MAX, progress)
}

/// [`restore`] right after `Log::open` verified every hash from
/// `hashes_verified_from` on; see [`rebuild_after_recovery`].
pub fn restore_after_recovery(
    store: &dyn LogStore,
    snapshots: &SnapshotStore,
    until: Option<u64>,
    hashes_verified_from: u64,
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
    let tail_records =
        rebuild_after_recovery(store, &mut state, until, hashes_verified_from, progress)?;
    Ok(Restored {
        state,
        snapshot_seq,
        skipped,
        tail_records,
    })
}
