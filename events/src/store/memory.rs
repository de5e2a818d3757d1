//! An in-memory store: the reference implementation of [`LogStore`].
//!
//! It exists so the conformance suite has an obviously-correct twin to run
//! beside fjall, and so unit tests of the layers above need no disk. It keeps
//! nothing across processes and therefore never acknowledges durability to a
//! real user: the gateway always opens a [`super::FjallStore`].

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::RwLock;

use super::{AppendRecord, Durability, LogStore, StoreError, check_continues};

#[derive(Default)]
pub struct MemoryStore {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    records: BTreeMap<u64, Vec<u8>>,
    streams: BTreeMap<String, Vec<u64>>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Overwrites one stored record, bypassing every rule: for tests that
    /// simulate damage on disk.
    pub fn overwrite_for_test(&self, seq: u64, bytes: Vec<u8>) {
        let mut inner = self.inner.write().expect("memory store lock");
        inner.records.insert(seq, bytes);
    }

    fn next_seq_of(inner: &Inner) -> u64 {
        inner.records.keys().next_back().map_or(0, |last| last + 1)
    }
}

impl LogStore for MemoryStore {
    fn append(
        &self,
        records: &[AppendRecord<'_>],
        _durability: Durability,
    ) -> Result<(), StoreError> {
        let mut inner = self.inner.write().expect("memory store lock");
        check_continues(Self::next_seq_of(&inner), records)?;
        for record in records {
            inner.records.insert(record.seq, record.bytes.to_vec());
            inner
                .streams
                .entry(record.stream.to_owned())
                .or_default()
                .push(record.seq);
        }
        Ok(())
    }

    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn next_seq(&self) -> Result<u64, StoreError> {
        Ok(Self::next_seq_of(
            &self.inner.read().expect("memory store lock"),
        ))
    }

    fn scan(
        &self,
        from: u64,
        visit: &mut dyn FnMut(u64, &[u8]) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let inner = self.inner.read().expect("memory store lock");
        for (seq, bytes) in inner.records.range(from..) {
            if visit(*seq, bytes).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn scan_stream(
        &self,
        stream: &str,
        from: u64,
        visit: &mut dyn FnMut(u64) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let inner = self.inner.read().expect("memory store lock");
        if let Some(seqs) = inner.streams.get(stream) {
            let start = seqs.partition_point(|seq| *seq < from);
            for seq in &seqs[start..] {
                if visit(*seq).is_break() {
                    break;
                }
            }
        }
        Ok(())
    }

    fn truncate_from(&self, from: u64) -> Result<u64, StoreError> {
        let mut inner = self.inner.write().expect("memory store lock");
        let removed = inner.records.split_off(&from).len() as u64;
        for seqs in inner.streams.values_mut() {
            seqs.retain(|seq| *seq < from);
        }
        inner.streams.retain(|_, seqs| !seqs.is_empty());
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_passes_the_conformance_suite() {
        super::super::conformance::run_all(&|| Box::new(MemoryStore::new()));
    }
}
