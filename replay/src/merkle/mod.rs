//! A Merkle tree over the log in the Certificate Transparency shape
//! (RFC 9162 §2.1), so that one record can be proven to be in the log with a
//! few hundred bytes, and an old tree head can be proven to be a prefix of a
//! newer one, without anyone re-hashing the whole chain.
//!
//! Why a tree beside the chain: the blake3 chain proves the log is intact to
//! someone who reads all of it. The tree proves the same to someone who reads
//! a logarithmic slice: an auditor holding one signed tree head can check any
//! single event (inclusion) and that the log only ever grew (consistency).
//!
//! **Leaves.** Leaf `i` is the record at seq `i`, and its input is the
//! record's 32-byte chain hash (`blake3(prev_hash || seq || body)`), not its
//! full bytes: the chain hash already commits to the body, to the seq and to
//! everything before it, so the tree adds no second pass over the bytes (a
//! record may be 32 MB), the tree can be extended from envelopes or from the
//! stored header alone, and building it shares the chain check's pass. The
//! price is that an outside verifier needs blake3 besides SHA-256 to go from
//! a record's bytes to its leaf (`docs/OPERATIONS.md` says how).
//!
//! Hashing is exactly RFC 9162's: `leaf = SHA-256(0x00 || input)`,
//! `node = SHA-256(0x01 || left || right)`, and the empty tree's root is
//! `SHA-256("")`. The modules: `tree` (the incremental tree, O(log n) per
//! append), `proof` (inclusion and consistency proofs and their
//! verification), `note` (signed checkpoints in the C2SP format).

pub mod note;
pub mod proof;
#[cfg(test)]
mod tests;
pub mod tree;

use sha2::{Digest as _, Sha256};

/// A SHA-256 value: a leaf, an inner node or a root.
pub type Hash = [u8; 32];

/// The most levels a tree over u64 leaf indexes can have; bounds every proof
/// and every frontier.
pub const LEVELS_MAX: usize = 64;

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// RFC 9162 leaf hash of `input`.
pub fn leaf_hash(input: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(input);
    hasher.finalize().into()
}

/// RFC 9162 interior node hash.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The leaf of the record whose chain hash is `chain_hash`.
pub fn record_leaf(chain_hash: &clawback_events::Digest) -> Hash {
    leaf_hash(&chain_hash.0)
}

/// The largest power of two strictly less than `n` (`n >= 2`): where RFC
/// 9162 splits a tree of `n` leaves into its left and right subtrees.
pub(crate) fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// Standard base64 (RFC 4648 §4), as the checkpoint format and proof
/// bundles write hashes.
pub fn to_base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes standard base64 into exactly 32 bytes.
pub fn hash_from_base64(text: &str) -> Option<Hash> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.as_bytes())
        .ok()?;
    bytes.try_into().ok()
}
