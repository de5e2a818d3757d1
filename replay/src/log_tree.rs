//! The Merkle tree over a log store: extending it record by record (each
//! record's hash and link checked), the checkpoints the log holds, and
//! inclusion and consistency proofs read from the store.
//!
//! Why here and not in the gateway: the gateway, `audit checkpoint`,
//! `audit prove` and `audit consistency` must compute the same tree over the
//! same records with the same checks, and all of it is a read of the log.
//! Making the checkpoint event is pure (key, tree and time in, payload out);
//! appending it is the caller's business.
//!
//! Invariants: a tree is only ever extended by records whose hash and link
//! to the previous record were just checked, so a checkpoint never vouches
//! for a record that fails the chain; and a stored frontier is only resumed
//! when its root equals the signed root and its chain hash equals the log's.

use std::ops::ControlFlow;

use clawback_events::Digest;
use clawback_events::event::{Event, MerkleCheckpoint};
use clawback_events::record;
use clawback_events::recovery::{RecoveryError, check_link};
use clawback_events::store::{LogStore, StoreError};

use crate::merkle::note::{Checkpoint, NoteError, NoteSigner};
use crate::merkle::proof::{RangeHasher, consistency_ranges, inclusion_ranges};
use crate::merkle::tree::CompactTree;
use crate::merkle::{Hash, LEVELS_MAX, record_leaf};

/// The stream checkpoints are recorded on.
pub const CHECKPOINT_STREAM: &str = "merkle";

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("log record at seq {seq} fails the chain: {detail}; run `clawback audit verify`")]
    Corrupt { seq: u64, detail: String },
    #[error("the log has {records} records, fewer than the {wanted} asked for")]
    TooShort { wanted: u64, records: u64 },
    #[error("the checkpoint at seq {seq} cannot be used: {detail}")]
    BadCheckpoint { seq: u64, detail: String },
    #[error("{0}")]
    Proof(#[from] crate::merkle::proof::ProofError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

fn corrupt(error: RecoveryError, seq: u64) -> TreeError {
    match error {
        RecoveryError::Corrupt { seq, detail } => TreeError::Corrupt { seq, detail },
        other => TreeError::Corrupt {
            seq,
            detail: other.to_string(),
        },
    }
}

/// Reads records `[from, until)`, checking each one's hash and its link to
/// `prev` (the chain hash of record `from - 1`), and calls `visit` with each
/// seq, its leaf and its hash. Returns the hash of the last record.
pub fn scan_leaves(
    store: &dyn LogStore,
    from: u64,
    until: u64,
    prev: Digest,
    visit: &mut dyn FnMut(u64, Hash, Digest),
) -> Result<Digest, TreeError> {
    let records = store.next_seq()?;
    if until > records {
        return Err(TreeError::TooShort {
            wanted: until,
            records,
        });
    }
    let mut expected_prev = prev;
    let mut expected_seq = from;
    let mut failure = None;
    if from < until {
        store.scan(from, &mut |seq, bytes| match check_link(
            seq,
            expected_seq,
            bytes,
            Some(&expected_prev),
        ) {
            Ok(hash) => {
                visit(seq, record_leaf(&hash), hash);
                expected_prev = hash;
                expected_seq = seq + 1;
                if expected_seq == until {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            }
            Err(error) => {
                failure = Some(corrupt(error, seq));
                ControlFlow::Break(())
            }
        })?;
    }
    if let Some(error) = failure {
        return Err(error);
    }
    if expected_seq != until {
        return Err(TreeError::Corrupt {
            seq: expected_seq,
            detail: "record is missing".to_owned(),
        });
    }
    Ok(expected_prev)
}

/// The tree over a log's first `size()` records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogTree {
    tree: CompactTree,
    /// The chain hash of record `size() - 1`; GENESIS when empty.
    last_hash: Digest,
}

impl LogTree {
    pub fn new() -> LogTree {
        LogTree::default()
    }

    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    pub fn root(&self) -> Hash {
        self.tree.root()
    }

    pub fn last_hash(&self) -> Digest {
        self.last_hash
    }

    pub fn frontier(&self) -> &[Hash] {
        self.tree.frontier()
    }

    /// Adds the record whose chain hash is `hash` (the caller checked it).
    pub fn push(&mut self, hash: Digest) {
        self.tree.push(record_leaf(&hash));
        self.last_hash = hash;
    }

    /// Extends the tree with records `[size(), until)`, checking each.
    /// Bounded by `until`; on failure the tree keeps every record before the
    /// bad one.
    pub fn extend(&mut self, store: &dyn LogStore, until: u64) -> Result<(), TreeError> {
        if until <= self.size() {
            return Ok(());
        }
        let from = self.size();
        let tree = &mut self.tree;
        let last = &mut self.last_hash;
        scan_leaves(store, from, until, *last, &mut |_, leaf, hash| {
            tree.push(leaf);
            *last = hash;
        })?;
        Ok(())
    }

    /// Resumes the tree a stored checkpoint describes, if it still
    /// describes this log: its frontier must lead to the checkpoint's root,
    /// and its chain hash must be the log's at that seq. The signature is
    /// the caller's to check first.
    pub fn resume(
        store: &dyn LogStore,
        stored: &MerkleCheckpoint,
        checkpoint: &Checkpoint,
    ) -> Result<LogTree, String> {
        if stored.frontier.len() > LEVELS_MAX {
            return Err("its frontier is longer than any tree's".to_owned());
        }
        let tree = CompactTree::from_frontier(checkpoint.size, stored.frontier.clone())
            .map_err(|error| error.to_string())?;
        if tree.root() != checkpoint.root {
            return Err("its frontier does not lead to its signed root".to_owned());
        }
        let log_hash = match checkpoint.size {
            0 => Some(Digest::GENESIS),
            size => store
                .get(size - 1)
                .map_err(|error| error.to_string())?
                .and_then(|bytes| record::RecordView::parse(&bytes).ok().map(|view| view.hash)),
        };
        if log_hash != Some(stored.chain_hash) {
            return Err(format!(
                "its chain hash {} is not the log's at seq {}",
                stored.chain_hash.short(),
                checkpoint.size.wrapping_sub(1)
            ));
        }
        Ok(LogTree {
            tree,
            last_hash: stored.chain_hash,
        })
    }

    /// The checkpoint event for the tree as it is, signed at `time_ms`.
    pub fn checkpoint(&self, signer: &NoteSigner, time_ms: i64) -> MerkleCheckpoint {
        let checkpoint = Checkpoint {
            origin: signer.name().to_owned(),
            size: self.size(),
            root: self.root(),
            time_ms,
        };
        MerkleCheckpoint {
            note: checkpoint.sign(signer),
            chain_hash: self.last_hash,
            frontier: self.frontier().to_vec(),
        }
    }
}

/// One checkpoint as recorded in the log; `parsed` is read without
/// checking the signature.
#[derive(Debug, Clone)]
pub struct StoredCheckpoint {
    pub seq: u64,
    pub event: MerkleCheckpoint,
    pub parsed: Result<Checkpoint, NoteError>,
}

/// Every checkpoint recorded in the log, in seq order.
pub fn stored_checkpoints(store: &dyn LogStore) -> Result<Vec<StoredCheckpoint>, TreeError> {
    let mut seqs = Vec::new();
    store.scan_stream(CHECKPOINT_STREAM, 0, &mut |seq| {
        seqs.push(seq);
        ControlFlow::Continue(())
    })?;
    seqs.into_iter()
        .map(|seq| read_checkpoint(store, seq))
        .collect()
}

/// The newest checkpoint recorded in the log.
pub fn latest_checkpoint(store: &dyn LogStore) -> Result<Option<StoredCheckpoint>, TreeError> {
    let mut last = None;
    store.scan_stream(CHECKPOINT_STREAM, 0, &mut |seq| {
        last = Some(seq);
        ControlFlow::Continue(())
    })?;
    last.map(|seq| read_checkpoint(store, seq)).transpose()
}

/// Reads the checkpoint recorded at `seq` (hash checked, signature not).
pub fn read_checkpoint(store: &dyn LogStore, seq: u64) -> Result<StoredCheckpoint, TreeError> {
    let bad = |detail: String| TreeError::BadCheckpoint { seq, detail };
    let bytes = store
        .get(seq)?
        .ok_or_else(|| bad("the record is missing".to_owned()))?;
    let envelope = record::decode(seq, &bytes).map_err(|error| bad(error.to_string()))?;
    let Event::MerkleCheckpoint(event) = envelope.body.event else {
        return Err(bad(format!(
            "the record is a {}, not a checkpoint",
            envelope.body.event.kind()
        )));
    };
    Ok(StoredCheckpoint {
        seq,
        parsed: Checkpoint::parse_unverified(&event.note),
        event,
    })
}

/// An inclusion proof read from the store.
#[derive(Debug, Clone)]
pub struct Inclusion {
    pub seq: u64,
    pub tree_size: u64,
    /// The record's stored bytes.
    pub record: Vec<u8>,
    pub leaf: Hash,
    pub path: Vec<Hash>,
    /// The root of the first `tree_size` records, as recomputed.
    pub root: Hash,
}

/// Proves record `seq` is in the tree of the first `tree_size` records:
/// one pass over them, every record checked.
pub fn prove_inclusion(
    store: &dyn LogStore,
    seq: u64,
    tree_size: u64,
) -> Result<Inclusion, TreeError> {
    let ranges = inclusion_ranges(seq, tree_size)?;
    let mut hasher = RangeHasher::new(&ranges);
    let mut whole = CompactTree::new();
    let mut leaf = None;
    scan_leaves(store, 0, tree_size, Digest::GENESIS, &mut |at, hash, _| {
        if at == seq {
            leaf = Some(hash);
        }
        hasher.push(hash);
        whole.push(hash);
    })?;
    let record = store.get(seq)?.ok_or(TreeError::Corrupt {
        seq,
        detail: "record is missing".to_owned(),
    })?;
    Ok(Inclusion {
        seq,
        tree_size,
        record,
        leaf: leaf.expect("seq is below tree_size, so it was scanned"),
        path: hasher.finish(),
        root: whole.root(),
    })
}

/// A consistency proof read from the store, with both recomputed roots.
#[derive(Debug, Clone)]
pub struct Consistency {
    pub old_size: u64,
    pub new_size: u64,
    pub path: Vec<Hash>,
    pub old_root: Hash,
    pub new_root: Hash,
}

/// Proves the tree of the first `old_size` records is a prefix of the tree
/// of the first `new_size`: one pass over them, every record checked.
pub fn prove_consistency(
    store: &dyn LogStore,
    old_size: u64,
    new_size: u64,
) -> Result<Consistency, TreeError> {
    let ranges = consistency_ranges(old_size, new_size)?;
    let mut hasher = RangeHasher::new(&ranges);
    let mut whole = CompactTree::new();
    let mut old_root = whole.root();
    scan_leaves(store, 0, new_size, Digest::GENESIS, &mut |_, hash, _| {
        hasher.push(hash);
        whole.push(hash);
        if whole.size() == old_size {
            old_root = whole.root();
        }
    })?;
    Ok(Consistency {
        old_size,
        new_size,
        path: hasher.finish(),
        old_root,
        new_root: whole.root(),
    })
}
