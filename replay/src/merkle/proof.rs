//! Inclusion and consistency proofs (RFC 9162 §2.1.3 and §2.1.4): which
//! subtrees a proof is made of, how to hash them from the leaves in one
//! pass, and how a verifier checks a proof with nothing but the hashes.
//!
//! Why "which subtrees" is separate from hashing them: the nodes of a proof
//! are the roots of disjoint leaf ranges. A prover over the log reads each
//! record once, in seq order, and feeds its leaf to the one range it belongs
//! to ([`RangeHasher`]): O(n) hashing and O(log n) memory, with no stored
//! tree. The verifiers are the RFC's iterative algorithms, bounded by the 64
//! levels a u64-indexed tree can have.

use std::ops::Range;

use super::tree::CompactTree;
use super::{Hash, LEVELS_MAX, node_hash, split_point};

/// Why a proof was refused. A refusal never says more than the math does:
/// the proof, the sizes or the roots do not fit together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf index {index} is not below the tree size {size}")]
    IndexBeyondSize { index: u64, size: u64 },
    #[error("the new tree size {new_size} is smaller than the old size {old_size}")]
    SizeDecreased { old_size: u64, new_size: u64 },
    #[error("the proof has {got} hashes, more than any proof for these sizes can have")]
    TooLong { got: usize },
    #[error("the proof has too few hashes for these sizes")]
    TooShort,
    #[error("the proof for equal or empty old trees must be empty, it has {got} hashes")]
    NotEmpty { got: usize },
    #[error("the proof is empty, but these sizes need one")]
    Empty,
    #[error("the proof leads to the root {computed}, not to {expected}")]
    RootMismatch { computed: String, expected: String },
    #[error("the proof leads to the old root {computed}, not to {expected}")]
    OldRootMismatch { computed: String, expected: String },
}

fn mismatch(computed: &Hash, expected: &Hash) -> ProofError {
    ProofError::RootMismatch {
        computed: super::to_base64(computed),
        expected: super::to_base64(expected),
    }
}

/// The leaf ranges whose roots make up the inclusion proof of leaf `index`
/// in the tree of `size` leaves, in proof order (leaf to root). RFC 9162
/// `PATH(m, D[n])`.
pub fn inclusion_ranges(index: u64, size: u64) -> Result<Vec<Range<u64>>, ProofError> {
    if index >= size {
        return Err(ProofError::IndexBeyondSize { index, size });
    }
    let mut ranges = Vec::with_capacity(LEVELS_MAX);
    let (mut lo, mut hi) = (0u64, size);
    // Walk down from the root; each step records the sibling subtree. The
    // walk halves the range, so it ends within 64 steps.
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if index - lo < k {
            ranges.push(lo + k..hi);
            hi = lo + k;
        } else {
            ranges.push(lo..lo + k);
            lo += k;
        }
    }
    ranges.reverse();
    Ok(ranges)
}

/// The leaf ranges whose roots make up the consistency proof from the tree
/// of `old_size` leaves to the tree of `new_size`, in proof order. RFC 9162
/// `PROOF(m, D[n]) = SUBPROOF(m, D[n], true)`; empty when `old_size` is 0
/// or equals `new_size`.
pub fn consistency_ranges(old_size: u64, new_size: u64) -> Result<Vec<Range<u64>>, ProofError> {
    if new_size < old_size {
        return Err(ProofError::SizeDecreased { old_size, new_size });
    }
    let mut ranges = Vec::with_capacity(LEVELS_MAX);
    if old_size == 0 || old_size == new_size {
        return Ok(ranges);
    }
    // SUBPROOF, unrolled: `m` is the old size relative to `lo`; `complete`
    // is the RFC's `b` (the old tree is still a whole subtree of the new).
    let (mut lo, mut hi, mut m, mut complete) = (0u64, new_size, old_size, true);
    let mut upper = Vec::with_capacity(LEVELS_MAX);
    loop {
        let n = hi - lo;
        if m == n {
            if !complete {
                ranges.push(lo..hi);
            }
            break;
        }
        let k = split_point(n);
        if m <= k {
            upper.push(lo + k..hi);
            hi = lo + k;
        } else {
            upper.push(lo..lo + k);
            m -= k;
            lo += k;
            complete = false;
        }
    }
    // The recursion emits the deepest node first, then each level's
    // sibling on the way back up.
    ranges.extend(upper.into_iter().rev());
    Ok(ranges)
}

/// Hashes disjoint leaf ranges from the leaves fed in order from 0: the
/// nodes of a proof, made in one pass with O(log n) memory per range.
pub struct RangeHasher {
    /// `(range, position in the proof)`, sorted by start.
    ranges: Vec<(Range<u64>, usize)>,
    trees: Vec<CompactTree>,
    /// Index into `ranges` of the range the next leaf may belong to.
    current: usize,
    next_leaf: u64,
}

impl RangeHasher {
    pub fn new(ranges: &[Range<u64>]) -> RangeHasher {
        let mut sorted: Vec<(Range<u64>, usize)> = ranges
            .iter()
            .cloned()
            .enumerate()
            .map(|(position, range)| (range, position))
            .collect();
        sorted.sort_by_key(|(range, _)| range.start);
        assert!(
            sorted
                .windows(2)
                .all(|pair| pair[0].0.end <= pair[1].0.start),
            "proof ranges are disjoint"
        );
        RangeHasher {
            trees: vec![CompactTree::new(); sorted.len()],
            ranges: sorted,
            current: 0,
            next_leaf: 0,
        }
    }

    /// Feeds the leaf at the next index.
    pub fn push(&mut self, leaf: Hash) {
        let index = self.next_leaf;
        self.next_leaf += 1;
        while self
            .ranges
            .get(self.current)
            .is_some_and(|(range, _)| range.end <= index)
        {
            self.current += 1;
        }
        if let Some((range, _)) = self.ranges.get(self.current)
            && range.contains(&index)
        {
            self.trees[self.current].push(leaf);
        }
    }

    /// The roots of the ranges, in the order they were given. Every range
    /// must have been fed completely.
    pub fn finish(self) -> Vec<Hash> {
        let mut out = vec![[0u8; 32]; self.ranges.len()];
        for ((range, position), tree) in self.ranges.iter().zip(&self.trees) {
            assert_eq!(
                tree.size(),
                range.end - range.start,
                "every leaf of a proof range was fed"
            );
            out[*position] = tree.root();
        }
        out
    }
}

/// The root an inclusion proof leads to (RFC 9162 §2.1.3.2, steps 1-4).
pub fn root_from_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    path: &[Hash],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::IndexBeyondSize { index, size });
    }
    if path.len() > LEVELS_MAX {
        return Err(ProofError::TooLong { got: path.len() });
    }
    let (mut f, mut s) = (index, size - 1);
    let mut root = *leaf;
    for p in path {
        if s == 0 {
            return Err(ProofError::TooLong { got: path.len() });
        }
        if f & 1 == 1 || f == s {
            root = node_hash(p, &root);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            root = node_hash(&root, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::TooShort);
    }
    Ok(root)
}

/// Checks that `path` proves leaf `leaf` at `index` in the tree of `size`
/// leaves whose root is `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    path: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    let computed = root_from_inclusion(index, size, leaf, path)?;
    if computed != *root {
        return Err(mismatch(&computed, root));
    }
    Ok(())
}

/// Checks that `path` proves the tree of `old_size` leaves with root
/// `old_root` is a prefix of the tree of `new_size` leaves with root
/// `new_root` (RFC 9162 §2.1.4.2, with the equal and empty cases first).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    path: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), ProofError> {
    if new_size < old_size {
        return Err(ProofError::SizeDecreased { old_size, new_size });
    }
    if old_size == new_size {
        if !path.is_empty() {
            return Err(ProofError::NotEmpty { got: path.len() });
        }
        if old_root != new_root {
            return Err(mismatch(new_root, old_root));
        }
        return Ok(());
    }
    if old_size == 0 {
        // The empty tree is a prefix of every tree.
        if !path.is_empty() {
            return Err(ProofError::NotEmpty { got: path.len() });
        }
        return Ok(());
    }
    if path.is_empty() {
        return Err(ProofError::Empty);
    }
    if path.len() > 2 * LEVELS_MAX {
        return Err(ProofError::TooLong { got: path.len() });
    }
    // Step 2: a perfect old tree is its own first node.
    let prefix = old_size.is_power_of_two().then_some(old_root);
    let mut nodes = prefix.into_iter().chain(path.iter());
    let (mut f, mut s) = (old_size - 1, new_size - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let first = *nodes.next().expect("the path is not empty");
    let (mut old, mut new) = (first, first);
    for c in nodes {
        if s == 0 {
            return Err(ProofError::TooLong { got: path.len() });
        }
        if f & 1 == 1 || f == s {
            old = node_hash(c, &old);
            new = node_hash(c, &new);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            new = node_hash(&new, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::TooShort);
    }
    if old != *old_root {
        return Err(ProofError::OldRootMismatch {
            computed: super::to_base64(&old),
            expected: super::to_base64(old_root),
        });
    }
    if new != *new_root {
        return Err(mismatch(&new, new_root));
    }
    Ok(())
}

/// The proof nodes for `ranges` over leaves held in memory.
pub fn hash_ranges(leaves: &[Hash], ranges: &[Range<u64>]) -> Vec<Hash> {
    let end = ranges.iter().map(|range| range.end).max().unwrap_or(0);
    assert!(end <= leaves.len() as u64, "ranges lie within the leaves");
    let mut hasher = RangeHasher::new(ranges);
    for leaf in &leaves[..end as usize] {
        hasher.push(*leaf);
    }
    hasher.finish()
}

/// The inclusion proof of leaf `index` in the tree of all of `leaves`.
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Result<Vec<Hash>, ProofError> {
    let ranges = inclusion_ranges(index, leaves.len() as u64)?;
    Ok(hash_ranges(leaves, &ranges))
}

/// The consistency proof from the first `old_size` of `leaves` to all of
/// them.
pub fn consistency_proof(leaves: &[Hash], old_size: u64) -> Result<Vec<Hash>, ProofError> {
    let ranges = consistency_ranges(old_size, leaves.len() as u64)?;
    Ok(hash_ranges(leaves, &ranges))
}
