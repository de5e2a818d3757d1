//! The default store: fjall, an LSM-tree engine with an atomic, checksummed
//! journal.
//!
//! Layout: keyspace `records` maps seq (u64 big-endian, so keys sort in log
//! order) to the record bytes; keyspace `streams` maps `stream NUL seq` to
//! nothing. One append is one fjall write batch across both keyspaces, so a
//! record and its index entry land together or not at all.
//!
//! Durability: the database is opened with manual journal persistence, and an
//! append with [`Durability::Sync`] commits its batch with `SyncData`. fjall
//! preallocates journal files, so fdatasync need not flush size metadata.
//! fjall's journal recovery discards a batch whose write was cut off by a
//! crash (its checksum or terminator is missing); such a batch was never
//! synced, so it was never acknowledged. After a failed sync fjall refuses
//! further writes (it is "poisoned"): the writer above turns that into a stop,
//! never into a retry that could acknowledge a half-written batch.
//!
//! Pinned to fjall >= 3.1.13: 3.0.0-3.1.5 were yanked, and the mid-2026
//! durability fixes (#296, #304, #308) are in.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::{AppendRecord, Durability, LogStore, StoreError, check_continues, stream_index_key};

pub struct FjallStore {
    path: PathBuf,
    database: Database,
    records: Keyspace,
    streams: Keyspace,
    /// The next seq to append. Held across an append, so appends are
    /// serialized and the out-of-order check cannot race.
    next_seq: Mutex<u64>,
}

impl FjallStore {
    /// Opens (or creates) the store in `path`, running fjall's journal
    /// recovery.
    pub fn open(path: impl AsRef<Path>) -> Result<FjallStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        std::fs::create_dir_all(&path).map_err(|error| {
            StoreError::Io(format!("cannot create {}: {error}", path.display()))
        })?;
        let database = Database::builder(&path)
            .manual_journal_persist(true)
            .open()
            .map_err(|error| map_open_error(&path, error))?;
        let records = database
            .keyspace("records", KeyspaceCreateOptions::default)
            .map_err(map_error)?;
        let streams = database
            .keyspace("streams", KeyspaceCreateOptions::default)
            .map_err(map_error)?;
        let next_seq = match records.last_key_value() {
            None => 0,
            Some(guard) => decode_seq(&guard.key().map_err(map_error)?)? + 1,
        };
        Ok(FjallStore {
            path,
            database,
            records,
            streams,
            next_seq: Mutex::new(next_seq),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes raw bytes under `seq`, bypassing every rule: for tests that
    /// simulate a record damaged or altered on disk by someone who also
    /// rewrote the engine's own checksums.
    pub fn overwrite_for_test(&self, seq: u64, bytes: &[u8]) -> Result<(), StoreError> {
        self.records
            .insert(seq.to_be_bytes(), bytes)
            .map_err(map_error)?;
        self.database
            .persist(PersistMode::SyncData)
            .map_err(map_error)
    }
}

impl LogStore for FjallStore {
    fn append(
        &self,
        records: &[AppendRecord<'_>],
        durability: Durability,
    ) -> Result<(), StoreError> {
        let mut next_seq = self.next_seq.lock().expect("fjall store lock");
        let expected = check_continues(*next_seq, records)?;
        let mode = match durability {
            Durability::Sync => PersistMode::SyncData,
            Durability::Buffered => PersistMode::Buffer,
        };
        let mut batch = self.database.batch().durability(Some(mode));
        for record in records {
            batch.insert(&self.records, record.seq.to_be_bytes(), record.bytes);
            batch.insert(
                &self.streams,
                stream_index_key(record.stream, record.seq),
                [],
            );
        }
        batch.commit().map_err(map_error)?;
        *next_seq = expected;
        Ok(())
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.database
            .persist(PersistMode::SyncData)
            .map_err(map_error)
    }

    fn next_seq(&self) -> Result<u64, StoreError> {
        Ok(*self.next_seq.lock().expect("fjall store lock"))
    }

    fn scan(
        &self,
        from: u64,
        visit: &mut dyn FnMut(u64, &[u8]) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        for guard in self.records.range(from.to_be_bytes()..) {
            let (key, value) = guard.into_inner().map_err(map_error)?;
            if visit(decode_seq(&key)?, &value).is_break() {
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
        let start = stream_index_key(stream, from);
        let end = stream_index_key(stream, u64::MAX);
        for guard in self.streams.range(start..=end) {
            let key = guard.key().map_err(map_error)?;
            let seq_bytes = &key[key.len() - 8..];
            if visit(decode_seq(seq_bytes)?).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn truncate_from(&self, from: u64) -> Result<u64, StoreError> {
        let mut next_seq = self.next_seq.lock().expect("fjall store lock");
        let mut batch = self
            .database
            .batch()
            .durability(Some(PersistMode::SyncData));
        let mut removed = 0u64;
        for guard in self.records.range(from.to_be_bytes()..) {
            batch.remove(&self.records, guard.key().map_err(map_error)?);
            removed += 1;
        }
        // The index holds no back-pointer from seq to stream, so the cut is
        // found by a pass over the index. Truncation is rare (recovery of a
        // torn tail, an operator's deliberate cut), so a pass is acceptable.
        for guard in self.streams.iter() {
            let key = guard.key().map_err(map_error)?;
            if key.len() >= 9 && decode_seq(&key[key.len() - 8..])? >= from {
                batch.remove(&self.streams, key);
            }
        }
        batch.commit().map_err(map_error)?;
        *next_seq = (*next_seq).min(from);
        Ok(removed)
    }

    fn get(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .records
            .get(seq.to_be_bytes())
            .map_err(map_error)?
            .map(|value| value.to_vec()))
    }

    fn disk_bytes(&self) -> u64 {
        self.database.disk_space().unwrap_or(0)
    }
}

fn decode_seq(bytes: &[u8]) -> Result<u64, StoreError> {
    let array: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("a key of {} bytes is not a seq", bytes.len())))?;
    Ok(u64::from_be_bytes(array))
}

fn map_open_error(path: &Path, error: fjall::Error) -> StoreError {
    let locked = match &error {
        fjall::Error::Locked => true,
        fjall::Error::Io(io) => io.kind() == std::io::ErrorKind::WouldBlock,
        _ => false,
    };
    if locked {
        return StoreError::Locked {
            path: path.display().to_string(),
            detail: "stop the other clawback process first".to_owned(),
        };
    }
    match map_error(error) {
        StoreError::Io(detail) => StoreError::Io(format!(
            "cannot open the log at {}: {detail}",
            path.display()
        )),
        other => other,
    }
}

fn map_error(error: fjall::Error) -> StoreError {
    use fjall::Error;
    match error {
        Error::Io(io) => StoreError::Io(io.to_string()),
        Error::Poisoned => StoreError::Io(
            "an earlier sync failed and the engine refuses further writes; restart to recover"
                .to_owned(),
        ),
        Error::Storage(fjall::LsmError::Io(io)) => StoreError::Io(io.to_string()),
        other => StoreError::Corrupt(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fjall_store_passes_the_conformance_suite() {
        super::super::conformance::run_all(&|| {
            let dir = tempfile::tempdir().expect("tempdir").keep();
            Box::new(FjallStore::open(dir).expect("open"))
        });
    }

    #[test]
    fn fjall_store_keeps_records_across_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = FjallStore::open(dir.path()).expect("open");
            let records: Vec<_> = (0..10u64).map(|seq| seq.to_le_bytes()).collect();
            let batch: Vec<_> = records
                .iter()
                .enumerate()
                .map(|(seq, bytes)| AppendRecord {
                    seq: seq as u64,
                    stream: "s",
                    bytes,
                })
                .collect();
            store.append(&batch, Durability::Sync).expect("append");
        }
        let store = FjallStore::open(dir.path()).expect("reopen");
        assert_eq!(store.next_seq().expect("next"), 10);
        assert_eq!(
            store.get(9).expect("get"),
            Some(9u64.to_le_bytes().to_vec())
        );
    }

    #[test]
    fn a_second_open_of_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _first = FjallStore::open(dir.path()).expect("open");
        match FjallStore::open(dir.path()) {
            Err(StoreError::Locked { .. }) => {}
            Err(other) => panic!("expected Locked, got {other}"),
            Ok(_) => panic!("second open succeeded"),
        }
    }
}
