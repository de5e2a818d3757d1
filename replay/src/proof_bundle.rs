//! Proof bundles: self-contained JSON files that prove, to someone without
//! the log, that one record is in it (inclusion) or that the log only grew
//! between two checkpoints (consistency).
//!
//! Why self-contained: the verifier may be a court, a customer or a
//! colleague holding only the log's public key. A bundle carries the
//! record's exact bytes, the proof path and the signed checkpoint; the
//! readable `event` is there for people and is checked against the bytes,
//! so it cannot say something the record does not. The shape is a public
//! interface (fields only ever added); hashes and bytes are standard base64.
//! What a verifier does with it is written out in docs/OPERATIONS.md.

use serde::{Deserialize, Serialize};

use clawback_events::record;

use crate::export::envelope_json;
use crate::log_tree::{Consistency, Inclusion};
use crate::merkle::note::{Checkpoint, NoteError, NoteVerifier};
use crate::merkle::proof::{ProofError, verify_consistency, verify_inclusion};
use crate::merkle::{Hash, hash_from_base64, record_leaf, to_base64};

pub const INCLUSION_FORMAT: &str = "clawback.inclusion-proof/v1";
pub const CONSISTENCY_FORMAT: &str = "clawback.consistency-proof/v1";
/// The largest bundle read: a record may be 32 MB, base64 makes it 43.
pub const BUNDLE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// Proves record `seq` is leaf `seq` of the tree a signed checkpoint names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InclusionBundle {
    pub format: String,
    pub seq: u64,
    pub tree_size: u64,
    /// The record's stored bytes (format, prev_hash, hash, body).
    pub record: String,
    /// `SHA-256(0x00 || the record's chain hash)`.
    pub leaf_hash: String,
    /// RFC 9162 inclusion path, leaf to root.
    pub inclusion_path: Vec<String>,
    /// The signed checkpoint note of size `tree_size`.
    pub checkpoint: String,
    /// The record decoded, as `audit export` writes it (checked against
    /// `record` by every verifier, never trusted on its own).
    pub event: serde_json::Value,
}

/// Proves the tree of one signed checkpoint is a prefix of another's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsistencyBundle {
    pub format: String,
    pub old_checkpoint: String,
    pub new_checkpoint: String,
    /// RFC 9162 consistency path from the old size to the new one.
    pub consistency_path: Vec<String>,
}

/// What a bundle proved.
#[derive(Debug, Clone, PartialEq)]
pub enum Verified {
    Inclusion {
        seq: u64,
        kind: String,
        stream: String,
        ts_ms: i64,
        checkpoint: Checkpoint,
    },
    Consistency {
        old: Checkpoint,
        new: Checkpoint,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(
        "not a clawback proof bundle: {0} (make one with `clawback audit prove` or `clawback audit consistency -o FILE`)"
    )]
    Unreadable(String),
    #[error("the checkpoint does not verify: {0}")]
    Checkpoint(#[from] NoteError),
    #[error("the record does not match the proof: {0}")]
    Record(String),
    #[error("the proof does not lead to the signed root: {0}")]
    Proof(#[from] ProofError),
}

impl InclusionBundle {
    /// The bundle for an inclusion proof and the checkpoint it was made
    /// against (whose root the caller compared with `inclusion.root`).
    pub fn new(inclusion: &Inclusion, checkpoint_note: &str) -> Result<InclusionBundle, String> {
        let envelope = record::decode(inclusion.seq, &inclusion.record)
            .map_err(|error| format!("record {} does not decode: {error}", inclusion.seq))?;
        Ok(InclusionBundle {
            format: INCLUSION_FORMAT.to_owned(),
            seq: inclusion.seq,
            tree_size: inclusion.tree_size,
            record: to_base64(&inclusion.record),
            leaf_hash: to_base64(&inclusion.leaf),
            inclusion_path: inclusion.path.iter().map(|hash| to_base64(hash)).collect(),
            checkpoint: checkpoint_note.to_owned(),
            event: envelope_json(&envelope),
        })
    }
}

impl ConsistencyBundle {
    pub fn new(consistency: &Consistency, old_note: &str, new_note: &str) -> ConsistencyBundle {
        ConsistencyBundle {
            format: CONSISTENCY_FORMAT.to_owned(),
            old_checkpoint: old_note.to_owned(),
            new_checkpoint: new_note.to_owned(),
            consistency_path: consistency
                .path
                .iter()
                .map(|hash| to_base64(hash))
                .collect(),
        }
    }
}

fn hashes(texts: &[String]) -> Result<Vec<Hash>, BundleError> {
    texts
        .iter()
        .map(|text| {
            hash_from_base64(text).ok_or_else(|| {
                BundleError::Unreadable(format!("proof hash {text:?} is not base64 of 32 bytes"))
            })
        })
        .collect()
}

/// Verifies a bundle of either kind with nothing but `key`.
pub fn verify_bundle(text: &str, key: &NoteVerifier) -> Result<Verified, BundleError> {
    if !text.trim_start().starts_with('{') && text.contains("\n\n\u{2014} ") {
        return Err(BundleError::Unreadable(
            "this is a signed checkpoint, not a bundle; compare it with the log by `clawback audit consistency --from FILE`".to_owned(),
        ));
    }
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|error| BundleError::Unreadable(format!("not JSON ({error})")))?;
    match value.get("format").and_then(|format| format.as_str()) {
        Some(INCLUSION_FORMAT) => {
            let bundle: InclusionBundle = serde_json::from_value(value)
                .map_err(|error| BundleError::Unreadable(error.to_string()))?;
            verify_inclusion_bundle(&bundle, key)
        }
        Some(CONSISTENCY_FORMAT) => {
            let bundle: ConsistencyBundle = serde_json::from_value(value)
                .map_err(|error| BundleError::Unreadable(error.to_string()))?;
            let old = Checkpoint::open(&bundle.old_checkpoint, key)?;
            let new = Checkpoint::open(&bundle.new_checkpoint, key)?;
            let path = hashes(&bundle.consistency_path)?;
            verify_consistency(old.size, new.size, &path, &old.root, &new.root)?;
            Ok(Verified::Consistency { old, new })
        }
        other => Err(BundleError::Unreadable(format!(
            "format is {other:?}, expected {INCLUSION_FORMAT:?} or {CONSISTENCY_FORMAT:?}"
        ))),
    }
}

fn verify_inclusion_bundle(
    bundle: &InclusionBundle,
    key: &NoteVerifier,
) -> Result<Verified, BundleError> {
    let checkpoint = Checkpoint::open(&bundle.checkpoint, key)?;
    if checkpoint.size != bundle.tree_size {
        return Err(BundleError::Record(format!(
            "the bundle says tree size {}, its checkpoint signs size {}",
            bundle.tree_size, checkpoint.size
        )));
    }
    let bytes = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(bundle.record.as_bytes())
            .map_err(|_| BundleError::Unreadable("record is not base64".to_owned()))?
    };
    // The chain rule: the record's hash covers its seq, its predecessor's
    // hash and its body; the leaf is that hash.
    let view = record::check(bundle.seq, &bytes).map_err(|error| {
        BundleError::Record(format!(
            "record {} fails its chain hash: {error}",
            bundle.seq
        ))
    })?;
    let leaf = record_leaf(&view.hash);
    if Some(leaf) != hash_from_base64(&bundle.leaf_hash) {
        return Err(BundleError::Record(format!(
            "the record's leaf is {}, the bundle says {}",
            to_base64(&leaf),
            bundle.leaf_hash
        )));
    }
    let path = hashes(&bundle.inclusion_path)?;
    verify_inclusion(bundle.seq, checkpoint.size, &leaf, &path, &checkpoint.root)?;
    let envelope = record::decode(bundle.seq, &bytes).map_err(|error| {
        BundleError::Record(format!(
            "the record is proven but does not decode with this clawback ({error}); upgrade clawback to read it"
        ))
    })?;
    if envelope_json(&envelope) != bundle.event {
        return Err(BundleError::Record(
            "the readable `event` differs from the proven record bytes".to_owned(),
        ));
    }
    Ok(Verified::Inclusion {
        seq: bundle.seq,
        kind: envelope.body.event.kind().to_owned(),
        stream: envelope.body.stream,
        ts_ms: envelope.body.ts_ms,
        checkpoint,
    })
}
