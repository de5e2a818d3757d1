//! Snapshots: the projection state at a seq, in a checksummed file that also
//! records the chain hash at that seq.
//!
//! Why the chain hash: a snapshot is only worth trusting if it describes
//! *this* log. Before use, the hash of record `next_seq - 1` in the log must
//! equal the one in the snapshot, its checksum must hold, and the decoded
//! state must hash to the recorded state hash. Any failure skips the
//! snapshot; the log is never judged by a snapshot, only the reverse.
//!
//! File layout (`snapshot-<next_seq, 20 digits>.cbsnap`):
//!
//! ```text
//! magic      8 bytes  "CBSNAP\0\x01"
//! header_len u32 LE
//! header     postcard(SnapshotHeader)
//! state      State::encode() bytes (header.state_bytes of them)
//! checksum   32 bytes: blake3 of everything above
//! ```
//!
//! Files are written to a temporary name, synced, renamed and the directory
//! synced, so a crash leaves either the whole snapshot or none.

use std::io::Write;
use std::path::{Path, PathBuf};

use clawback_events::Digest;
use clawback_events::record;
use clawback_events::store::LogStore;
use clawback_projections::State;
use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 8] = b"CBSNAP\0\x01";
const FILE_PREFIX: &str = "snapshot-";
const FILE_SUFFIX: &str = ".cbsnap";

/// The most snapshot bytes read into memory; a larger file is refused rather
/// than allowed to exhaust memory.
const SNAPSHOT_BYTES_MAX: u64 = 8 * 1024 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotHeader {
    /// The state covers records `0..next_seq`.
    pub next_seq: u64,
    /// The hash of record `next_seq - 1` (GENESIS for an empty state).
    pub chain_hash: Digest,
    pub state_hash: Digest,
    pub created_ts_ms: i64,
    pub state_bytes: u64,
    pub clawback_version: String,
}

#[derive(Debug, Clone)]
pub struct SnapshotInfo {
    pub file_name: String,
    pub path: PathBuf,
    pub next_seq: u64,
    pub file_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot I/O failed: {0}")]
    Io(String),
    #[error("{file}: not a clawback snapshot (bad magic bytes)")]
    BadMagic { file: String },
    #[error("{file}: checksum mismatch, the file is damaged")]
    Checksum { file: String },
    #[error("{file}: header does not decode: {detail}")]
    Header { file: String, detail: String },
    #[error("{file}: state does not decode: {detail}")]
    State { file: String, detail: String },
    #[error("{file}: the decoded state hashes to {computed}, the snapshot recorded {recorded}")]
    StateHash {
        file: String,
        recorded: String,
        computed: String,
    },
    #[error(
        "{file}: covers seqs below {next_seq} but the log has only {log_next_seq} records: it belongs to another or a longer log"
    )]
    BeyondLog {
        file: String,
        next_seq: u64,
        log_next_seq: u64,
    },
    #[error(
        "{file}: chain hash at seq {seq} is {snapshot} in the snapshot but {log} in the log: it belongs to another log"
    )]
    ChainMismatch {
        file: String,
        seq: u64,
        snapshot: String,
        log: String,
    },
    #[error("{file}: is {bytes} bytes, more than the {SNAPSHOT_BYTES_MAX} limit")]
    TooLarge { file: String, bytes: u64 },
}

fn io(error: std::io::Error, what: &Path) -> SnapshotError {
    SnapshotError::Io(format!("{}: {error}", what.display()))
}

/// The snapshot directory of one state dir.
pub struct SnapshotStore {
    dir: PathBuf,
}

impl SnapshotStore {
    pub fn new(dir: impl Into<PathBuf>) -> SnapshotStore {
        SnapshotStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes a snapshot of `state` (durably and atomically).
    pub fn create(&self, state: &State, created_ts_ms: i64) -> Result<SnapshotInfo, SnapshotError> {
        std::fs::create_dir_all(&self.dir).map_err(|error| io(error, &self.dir))?;
        let state_bytes = state.encode();
        let header = SnapshotHeader {
            next_seq: state.next_seq,
            chain_hash: state.last_hash,
            state_hash: state.state_hash(),
            created_ts_ms,
            state_bytes: state_bytes.len() as u64,
            clawback_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let header_bytes = postcard::to_allocvec(&header).expect("header is postcard-encodable");
        let mut file_bytes =
            Vec::with_capacity(8 + 4 + header_bytes.len() + state_bytes.len() + 32);
        file_bytes.extend_from_slice(MAGIC);
        file_bytes.extend_from_slice(&(header_bytes.len() as u32).to_le_bytes());
        file_bytes.extend_from_slice(&header_bytes);
        file_bytes.extend_from_slice(&state_bytes);
        let checksum = blake3::hash(&file_bytes);
        file_bytes.extend_from_slice(checksum.as_bytes());

        let file_name = format!("{FILE_PREFIX}{:020}{FILE_SUFFIX}", state.next_seq);
        let path = self.dir.join(&file_name);
        let temporary = self.dir.join(format!(".{file_name}.tmp"));
        {
            let mut file =
                std::fs::File::create(&temporary).map_err(|error| io(error, &temporary))?;
            file.write_all(&file_bytes)
                .map_err(|error| io(error, &temporary))?;
            file.sync_all().map_err(|error| io(error, &temporary))?;
        }
        std::fs::rename(&temporary, &path).map_err(|error| io(error, &path))?;
        std::fs::File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|error| io(error, &self.dir))?;
        Ok(SnapshotInfo {
            file_name,
            path,
            next_seq: state.next_seq,
            file_bytes: file_bytes.len() as u64,
        })
    }

    /// Snapshot files, newest (highest seq) first. Files that do not follow
    /// the naming scheme are ignored.
    pub fn list(&self) -> Result<Vec<SnapshotInfo>, SnapshotError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(io(error, &self.dir)),
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|error| io(error, &self.dir))?;
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let Some(seq_text) = file_name
                .strip_prefix(FILE_PREFIX)
                .and_then(|rest| rest.strip_suffix(FILE_SUFFIX))
            else {
                continue;
            };
            let Ok(next_seq) = seq_text.parse::<u64>() else {
                continue;
            };
            let file_bytes = entry.metadata().map(|meta| meta.len()).unwrap_or(0);
            found.push(SnapshotInfo {
                path: entry.path(),
                file_name,
                next_seq,
                file_bytes,
            });
        }
        found.sort_by_key(|info| std::cmp::Reverse(info.next_seq));
        Ok(found)
    }

    /// Reads a snapshot and checks it on its own: magic, checksum, header,
    /// state decoding and state hash.
    pub fn load(&self, info: &SnapshotInfo) -> Result<(SnapshotHeader, State), SnapshotError> {
        let file = info.file_name.clone();
        let bytes_on_disk = std::fs::metadata(&info.path)
            .map_err(|error| io(error, &info.path))?
            .len();
        if bytes_on_disk > SNAPSHOT_BYTES_MAX {
            return Err(SnapshotError::TooLarge {
                file,
                bytes: bytes_on_disk,
            });
        }
        let bytes = std::fs::read(&info.path).map_err(|error| io(error, &info.path))?;
        if bytes.len() < MAGIC.len() + 4 + 32 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(SnapshotError::BadMagic { file });
        }
        let (content, checksum) = bytes.split_at(bytes.len() - 32);
        if blake3::hash(content).as_bytes() != checksum {
            return Err(SnapshotError::Checksum { file });
        }
        let header_len = u32::from_le_bytes(content[8..12].try_into().expect("4 bytes")) as usize;
        let header_end = 12usize.saturating_add(header_len);
        if header_end > content.len() {
            return Err(SnapshotError::Header {
                file,
                detail: "header length exceeds the file".to_owned(),
            });
        }
        let header: SnapshotHeader =
            postcard::from_bytes(&content[12..header_end]).map_err(|error| {
                SnapshotError::Header {
                    file: file.clone(),
                    detail: error.to_string(),
                }
            })?;
        let state_bytes = &content[header_end..];
        if state_bytes.len() as u64 != header.state_bytes {
            return Err(SnapshotError::Header {
                file,
                detail: format!(
                    "state is {} bytes, the header says {}",
                    state_bytes.len(),
                    header.state_bytes
                ),
            });
        }
        let state = State::decode(state_bytes).map_err(|error| SnapshotError::State {
            file: file.clone(),
            detail: error.to_string(),
        })?;
        let computed = state.state_hash();
        if computed != header.state_hash || state.next_seq != header.next_seq {
            return Err(SnapshotError::StateHash {
                file,
                recorded: header.state_hash.short(),
                computed: computed.short(),
            });
        }
        Ok((header, state))
    }

    /// [`SnapshotStore::load`], plus the check that the snapshot belongs to
    /// the log in `store`: its chain hash equals the log's at that seq.
    pub fn load_verified(
        &self,
        info: &SnapshotInfo,
        store: &dyn LogStore,
    ) -> Result<State, SnapshotError> {
        let (header, state) = self.load(info)?;
        check_against_log(&info.file_name, &header, store)?;
        Ok(state)
    }

    /// Deletes all but the newest `keep` snapshots; returns how many went.
    pub fn prune(&self, keep: usize) -> Result<usize, SnapshotError> {
        let all = self.list()?;
        let mut removed = 0;
        for info in all.iter().skip(keep) {
            std::fs::remove_file(&info.path).map_err(|error| io(error, &info.path))?;
            removed += 1;
        }
        Ok(removed)
    }
}

/// Checks a snapshot header against the log it claims to describe.
pub fn check_against_log(
    file: &str,
    header: &SnapshotHeader,
    store: &dyn LogStore,
) -> Result<(), SnapshotError> {
    let log_next_seq = store
        .next_seq()
        .map_err(|error| SnapshotError::Io(error.to_string()))?;
    if header.next_seq > log_next_seq {
        return Err(SnapshotError::BeyondLog {
            file: file.to_owned(),
            next_seq: header.next_seq,
            log_next_seq,
        });
    }
    if header.next_seq == 0 {
        return Ok(());
    }
    let seq = header.next_seq - 1;
    let log_hash = store
        .get(seq)
        .map_err(|error| SnapshotError::Io(error.to_string()))?
        .and_then(|bytes| record::RecordView::parse(&bytes).ok().map(|view| view.hash));
    if log_hash != Some(header.chain_hash) {
        return Err(SnapshotError::ChainMismatch {
            file: file.to_owned(),
            seq,
            snapshot: header.chain_hash.short(),
            log: log_hash.map_or_else(|| "missing".to_owned(), |hash| hash.short()),
        });
    }
    Ok(())
}
