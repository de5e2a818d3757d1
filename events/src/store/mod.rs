//! The store boundary: the few operations the log needs from a storage engine.
//!
//! Why a trait: the log's rules (gap-free seq, the hash chain, group commit,
//! recovery) live above this line and are the same for every engine; an
//! engine only has to keep ordered records durably. fjall is the default;
//! a distributed engine for multi-node deployments can be added later behind
//! the same trait, and [`conformance`] is the test suite it must pass.
//!
//! A store knows nothing about events or hashes: it keeps opaque records
//! under their seq, plus an index from stream name to seqs.

pub mod conformance;
pub mod fjall;
pub mod memory;

use std::ops::ControlFlow;

pub use self::fjall::FjallStore;
pub use self::memory::MemoryStore;

/// One record handed to [`LogStore::append`].
#[derive(Debug, Clone, Copy)]
pub struct AppendRecord<'a> {
    pub seq: u64,
    pub stream: &'a str,
    pub bytes: &'a [u8],
}

/// How hard an append must try before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Returns after the data reached stable storage (fdatasync). The only
    /// mode under which the log acknowledges appends.
    Sync,
    /// Returns after the engine accepted the write; a crash may lose it.
    /// For bulk loads that are verified afterwards, and for benchmarks.
    Buffered,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The engine failed an I/O; for a failed sync the engine must be
    /// considered poisoned and reopened (fjall refuses writes after it).
    #[error("storage I/O failed: {0}")]
    Io(String),
    /// The caller broke the append contract (a bug above the store).
    #[error("append out of order: expected seq {expected}, got {got}")]
    OutOfOrder { expected: u64, got: u64 },
    /// The engine's own integrity checks failed (checksums, manifest).
    #[error("storage engine reports corruption: {0}")]
    Corrupt(String),
    #[error("the store at {path} is locked by another process: {detail}")]
    Locked { path: String, detail: String },
}

/// An ordered, durable record store. Implementations must be safe to share:
/// one writer thread appends while any number of readers scan.
pub trait LogStore: Send + Sync + 'static {
    /// Appends `records` atomically: after a crash either all of them are
    /// present or none. Their seqs must continue the stored sequence without
    /// a gap (`records[0].seq == next_seq()`), else `OutOfOrder`.
    fn append(
        &self,
        records: &[AppendRecord<'_>],
        durability: Durability,
    ) -> Result<(), StoreError>;

    /// Makes every record appended so far durable, whatever durability the
    /// appends asked for.
    fn sync(&self) -> Result<(), StoreError>;

    /// The seq the next append must start at: last stored seq + 1, or 0.
    fn next_seq(&self) -> Result<u64, StoreError>;

    /// Calls `visit` for each record with seq >= `from`, in seq order, until
    /// the records end or `visit` breaks.
    fn scan(
        &self,
        from: u64,
        visit: &mut dyn FnMut(u64, &[u8]) -> ControlFlow<()>,
    ) -> Result<(), StoreError>;

    /// Calls `visit` for the seqs of `stream` that are >= `from`, in order.
    fn scan_stream(
        &self,
        stream: &str,
        from: u64,
        visit: &mut dyn FnMut(u64) -> ControlFlow<()>,
    ) -> Result<(), StoreError>;

    /// Removes every record with seq >= `from` (and its index entries),
    /// durably. Used only by recovery to drop a torn tail, and by an operator
    /// who chose to cut a damaged log. Returns how many records were removed.
    fn truncate_from(&self, from: u64) -> Result<u64, StoreError>;

    /// Reads one record.
    fn get(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let mut found = None;
        self.scan(seq, &mut |at, bytes| {
            if at == seq {
                found = Some(bytes.to_vec());
            }
            ControlFlow::Break(())
        })?;
        Ok(found)
    }

    /// Bytes used on disk, for status and benchmarks; 0 when unknown.
    fn disk_bytes(&self) -> u64 {
        0
    }
}

/// Checks that `records` continue the stored sequence at `next_seq` without a
/// gap; returns the seq after the last one. Shared by every backend so the
/// contract is enforced the same way everywhere.
pub fn check_continues(next_seq: u64, records: &[AppendRecord<'_>]) -> Result<u64, StoreError> {
    let mut expected = next_seq;
    for record in records {
        if record.seq != expected {
            return Err(StoreError::OutOfOrder {
                expected,
                got: record.seq,
            });
        }
        expected += 1;
    }
    Ok(expected)
}

/// The index key of `seq` in `stream`: the name, a NUL, the seq big-endian,
/// so one stream's seqs sort together and in order.
pub(crate) fn stream_index_key(stream: &str, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(stream.len() + 9);
    key.extend_from_slice(stream.as_bytes());
    key.push(0);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}
