//! Signed tree heads of the log's Merkle tree. Part of [`super::Event`]'s
//! vocabulary; the compatibility rule in its module docs applies to every
//! struct here.
//!
//! Why a checkpoint is an event and not a side file: the log is the one
//! durable, ordered, backed-up place, so a checkpoint gets the same
//! durability as what it vouches for, and it becomes a leaf itself, so
//! every later checkpoint commits to every earlier one (deleting or
//! altering an old checkpoint breaks the tree like any other record). A
//! checkpoint of tree size `n` is recorded at a seq `>= n`: it never covers
//! itself. This crate does not interpret the note; `clawback-replay`'s
//! `merkle` module does.

use serde::{Deserialize, Serialize};

use crate::envelope::Digest;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerkleCheckpoint {
    /// The signed note exactly as signed: the C2SP tlog-checkpoint text
    /// (origin, tree size, base64 root, `time_ms` line) and its Ed25519
    /// signature line. The one authoritative part of this event.
    pub note: String,
    /// The chain hash of record `tree size - 1` (GENESIS for size 0), so
    /// the checkpoint is tied to the chain as snapshots are.
    pub chain_hash: Digest,
    /// The tree's right frontier at that size (one SHA-256 per set bit of
    /// the size, largest subtree first): lets the next checkpoint continue
    /// from here instead of re-reading the log. A hint, trusted only after
    /// its root equals the signed root.
    pub frontier: Vec<[u8; 32]>,
}
