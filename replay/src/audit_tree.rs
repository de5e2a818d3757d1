//! The Merkle part of `audit verify`: the tree recomputed from the records
//! the chain pass has just verified, and every stored checkpoint checked
//! against it (signature, root, chain hash, frontier, and that it covers
//! only records before it).
//!
//! Why in the chain pass: the tree needs each record's chain hash in seq
//! order, which is exactly what the chain check produces; a second pass
//! would read the log twice. The checkpoints to check are read first from
//! the stream index, so the pass knows at which sizes to keep the root.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use clawback_events::Digest;
use clawback_events::store::{LogStore, StoreError};

use crate::log_tree::{CHECKPOINT_STREAM, LogTree, StoredCheckpoint, read_checkpoint};
use crate::merkle::note::{Checkpoint, NoteVerifier};
use crate::merkle::{Hash, to_base64};

/// The outcome for one stored checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointCheck {
    pub seq: u64,
    /// The tree size it claims, when it could be read.
    pub tree_size: Option<u64>,
    pub result: Result<(), String>,
}

/// The tree over the verified records and what became of each checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeReport {
    pub tree_size: u64,
    pub root: Hash,
    pub checkpoints: Vec<CheckpointCheck>,
    /// The key signatures were checked with (`name+id`), if any.
    pub key: Option<String>,
}

impl TreeReport {
    pub fn is_ok(&self) -> bool {
        self.checkpoints.iter().all(|check| check.result.is_ok())
    }
}

impl std::fmt::Display for TreeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "merkle: root {} over {} records",
            to_base64(&self.root),
            self.tree_size
        )?;
        let failed: Vec<&CheckpointCheck> = self
            .checkpoints
            .iter()
            .filter(|check| check.result.is_err())
            .collect();
        let signatures = match &self.key {
            Some(key) => format!("signatures checked with {key}"),
            None => "signatures NOT checked: no key (pass --key, or keep the state dir's checkpoint.key)".to_owned(),
        };
        match (self.checkpoints.last(), failed.first()) {
            (None, _) => write!(f, "checkpoints: none yet"),
            (Some(latest), None) => write!(
                f,
                "checkpoints: OK, {} verified against the tree (latest at seq {}, tree size {}); {signatures}",
                self.checkpoints.len(),
                latest.seq,
                latest.tree_size.unwrap_or(0)
            ),
            (Some(_), Some(first)) => write!(
                f,
                "checkpoints: FAILED, {} of {}; the first bad one is at seq {}{}: {}; {signatures}",
                failed.len(),
                self.checkpoints.len(),
                first.seq,
                first
                    .tree_size
                    .map_or(String::new(), |size| format!(" (tree size {size})")),
                first.result.as_ref().expect_err("a failed check")
            ),
        }
    }
}

/// What the chain pass keeps at a size some checkpoint claims.
struct AtSize {
    root: Hash,
    frontier: Vec<Hash>,
    last_hash: Digest,
}

/// Fed every verified record by the chain pass, in order.
pub(crate) struct TreeAudit {
    stored: Vec<Result<StoredCheckpoint, String>>,
    stored_seqs: Vec<u64>,
    /// Sizes some checkpoint claims, not yet reached by the pass.
    wanted: std::collections::BTreeSet<u64>,
    tree: LogTree,
    at: BTreeMap<u64, AtSize>,
}

impl TreeAudit {
    pub(crate) fn new(store: &dyn LogStore) -> Result<TreeAudit, StoreError> {
        let mut seqs = Vec::new();
        store.scan_stream(CHECKPOINT_STREAM, 0, &mut |seq| {
            seqs.push(seq);
            ControlFlow::Continue(())
        })?;
        let stored: Vec<Result<StoredCheckpoint, String>> = seqs
            .iter()
            .map(|&seq| read_checkpoint(store, seq).map_err(|error| error.to_string()))
            .collect();
        let wanted = stored
            .iter()
            .filter_map(|stored| stored.as_ref().ok())
            .filter_map(|stored| stored.parsed.as_ref().ok().map(|parsed| parsed.size))
            .collect();
        let mut audit = TreeAudit {
            stored,
            stored_seqs: seqs,
            wanted,
            tree: LogTree::new(),
            at: BTreeMap::new(),
        };
        audit.keep_if_wanted();
        Ok(audit)
    }

    /// Adds the record whose chain hash the pass just verified.
    pub(crate) fn push(&mut self, hash: Digest) {
        self.tree.push(hash);
        self.keep_if_wanted();
    }

    fn keep_if_wanted(&mut self) {
        if self.wanted.remove(&self.tree.size()) {
            self.at.insert(
                self.tree.size(),
                AtSize {
                    root: self.tree.root(),
                    frontier: self.tree.frontier().to_vec(),
                    last_hash: self.tree.last_hash(),
                },
            );
        }
    }

    /// Checks every stored checkpoint. `verified_end` is where the chain
    /// pass stopped (the first bad seq, or the log's end).
    pub(crate) fn finish(self, verified_end: u64, key: Option<&NoteVerifier>) -> TreeReport {
        let checkpoints = self
            .stored
            .iter()
            .zip(&self.stored_seqs)
            .map(|(stored, &seq)| {
                let Ok(stored) = stored else {
                    return CheckpointCheck {
                        seq,
                        tree_size: None,
                        result: Err(format!(
                            "cannot be read: {}",
                            stored.as_ref().expect_err("failed")
                        )),
                    };
                };
                let tree_size = stored.parsed.as_ref().ok().map(|parsed| parsed.size);
                CheckpointCheck {
                    seq,
                    tree_size,
                    result: self.check(stored, verified_end, key),
                }
            })
            .collect();
        TreeReport {
            tree_size: self.tree.size(),
            root: self.tree.root(),
            checkpoints,
            key: key.map(NoteVerifier::label),
        }
    }

    fn check(
        &self,
        stored: &StoredCheckpoint,
        verified_end: u64,
        key: Option<&NoteVerifier>,
    ) -> Result<(), String> {
        let parsed = match key {
            Some(key) => Checkpoint::open(&stored.event.note, key).map_err(|error| {
                format!("{error}: it was not signed by this log's key, or was altered")
            })?,
            None => stored.parsed.clone().map_err(|error| error.to_string())?,
        };
        if parsed.size > stored.seq {
            return Err(format!(
                "it claims {} records but is itself record {}: a checkpoint can only cover records before it",
                parsed.size, stored.seq
            ));
        }
        if parsed.size > verified_end {
            return Err(format!(
                "it covers records up to seq {}, past the chain failure at seq {verified_end}",
                parsed.size - 1
            ));
        }
        let at = self
            .at
            .get(&parsed.size)
            .expect("the pass kept the root at every size within the verified prefix");
        if at.root != parsed.root {
            return Err(format!(
                "its signed root {} differs from {}, the root of the log's first {} records: records below seq {} were changed after it was signed",
                to_base64(&parsed.root),
                to_base64(&at.root),
                parsed.size,
                parsed.size
            ));
        }
        if at.last_hash != stored.event.chain_hash {
            return Err(format!(
                "its chain hash {} is not {}, the log's at seq {}",
                stored.event.chain_hash.short(),
                at.last_hash.short(),
                parsed.size.wrapping_sub(1)
            ));
        }
        if at.frontier != stored.event.frontier {
            return Err(
                "its frontier differs from the tree's at its size (the signed root matches; the stored hint is wrong)"
                    .to_owned(),
            );
        }
        Ok(())
    }
}
