//! The incremental tree: the right frontier ("compact range" of `[0, n)`),
//! one root per set bit of the size, largest subtree first.
//!
//! Why a frontier and not the whole tree: the gateway only needs the root at
//! the current size to sign a checkpoint, and the frontier gives it with at
//! most 64 hashes of memory and O(log n) work per appended leaf (amortized
//! one node hash). Building the tree of an existing log is one pass of
//! `push`. Proofs need older subtrees and are made by `proof`, from leaves.

use super::{Hash, LEVELS_MAX, empty_root, node_hash};

/// The Merkle tree of the leaves pushed so far, kept as its frontier.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactTree {
    size: u64,
    /// Roots of the perfect subtrees that make up `[0, size)`, left to
    /// right: one per set bit of `size`, from the highest bit down.
    frontier: Vec<Hash>,
}

/// A frontier that cannot belong to a tree of the size it claims.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a tree of size {size} has {expected} frontier hashes, got {got}")]
pub struct FrontierError {
    pub size: u64,
    pub expected: u32,
    pub got: usize,
}

impl CompactTree {
    pub fn new() -> CompactTree {
        CompactTree::default()
    }

    /// Resumes a tree from a frontier saved at `size` (by [`frontier`]).
    /// The frontier is only a hint: callers compare the resulting root with
    /// a root they trust.
    ///
    /// [`frontier`]: CompactTree::frontier
    pub fn from_frontier(size: u64, frontier: Vec<Hash>) -> Result<CompactTree, FrontierError> {
        if frontier.len() != size.count_ones() as usize {
            return Err(FrontierError {
                size,
                expected: size.count_ones(),
                got: frontier.len(),
            });
        }
        Ok(CompactTree { size, frontier })
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn frontier(&self) -> &[Hash] {
        &self.frontier
    }

    /// Appends one leaf hash: merges every complete pair it closes, so the
    /// cost is one hash per trailing one bit of the old size.
    pub fn push(&mut self, leaf: Hash) {
        assert!(self.size < u64::MAX, "a tree holds fewer than 2^64 leaves");
        let mut hash = leaf;
        let mut size = self.size;
        while size & 1 == 1 {
            let left = self.frontier.pop().expect("one frontier hash per set bit");
            hash = node_hash(&left, &hash);
            size >>= 1;
        }
        self.frontier.push(hash);
        self.size += 1;
        debug_assert_eq!(self.frontier.len(), self.size.count_ones() as usize);
        debug_assert!(self.frontier.len() <= LEVELS_MAX);
    }

    /// The RFC 9162 root (`MTH`) of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        let mut nodes = self.frontier.iter().rev();
        let Some(last) = nodes.next() else {
            return empty_root();
        };
        // MTH splits at the largest power of two below the size: the
        // largest subtree on the left, the rest (folded right to left) on
        // the right.
        nodes.fold(*last, |right, left| node_hash(left, &right))
    }
}
