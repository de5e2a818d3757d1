//! `audit verify`: recompute every record's hash, check every link of the
//! chain, and check every snapshot against the chain and against the state
//! the log folds to.
//!
//! Chain verification reads raw record bytes and never decodes bodies, so it
//! runs at hashing speed. It stops at the first bad record, because every
//! later link depends on it, and reports exactly what differs. When there are
//! snapshots, the verified prefix is then folded through the reducers (the
//! two-thread rebuild, links only, since every hash was just checked) up to
//! each snapshot's seq, and the state hashes compared: a snapshot that matches the
//! chain but not the fold was written from diverged state (a reducer that is
//! not deterministic, or changed without a `STATE_FORMAT_VERSION` bump), and
//! restoring from it would silently carry that divergence forward.

use std::ops::ControlFlow;

use std::collections::BTreeMap;

use clawback_events::Digest;
use clawback_events::recovery::{RecoveryError, check_link};
use clawback_events::store::{LogStore, StoreError};
use clawback_projections::State;

use crate::audit_tree::{TreeAudit, TreeReport};
use crate::merkle::note::NoteVerifier;
use crate::rebuild::{Progress, RebuildError, rebuild_after_recovery};
use crate::snapshot::{SnapshotStore, check_against_log};

const PROGRESS_EVERY_RECORDS: u64 = 65_536;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFailure {
    pub seq: u64,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotCheck {
    pub file: String,
    pub next_seq: u64,
    /// `Ok` or the reason the snapshot does not match the log.
    pub result: Result<(), String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// Records whose hash and link were verified.
    pub records_verified: u64,
    pub records_total: u64,
    /// The hash of the last verified record.
    pub head_hash: Digest,
    pub first_failure: Option<AuditFailure>,
    pub snapshots: Vec<SnapshotCheck>,
    /// The Merkle tree over the verified records, and every checkpoint.
    pub tree: TreeReport,
}

impl AuditReport {
    pub fn is_ok(&self) -> bool {
        self.first_failure.is_none()
            && self.snapshots.iter().all(|check| check.result.is_ok())
            && self.tree.is_ok()
    }
}

impl std::fmt::Display for AuditReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.first_failure {
            None => writeln!(
                f,
                "chain: OK, {} records verified, head hash {}",
                self.records_verified,
                self.head_hash.to_hex()
            )?,
            Some(failure) => writeln!(
                f,
                "chain: FAILED at seq {}: {} ({} of {} records verified before it)",
                failure.seq, failure.detail, self.records_verified, self.records_total
            )?,
        }
        if self.snapshots.is_empty() {
            writeln!(f, "snapshots: none")?;
        }
        for check in &self.snapshots {
            match &check.result {
                Ok(()) => writeln!(
                    f,
                    "snapshot {}: OK (covers seqs below {})",
                    check.file, check.next_seq
                )?,
                Err(reason) => writeln!(f, "snapshot {}: FAILED: {reason}", check.file)?,
            }
        }
        writeln!(f, "{}", self.tree)?;
        write!(
            f,
            "{}",
            if self.is_ok() {
                "audit: OK"
            } else {
                "audit: FAILED"
            }
        )
    }
}

/// Verifies the whole chain of `store`, every snapshot in `snapshots`, and
/// every checkpoint against the Merkle tree of the verified records (their
/// signatures with `checkpoint_key`, when given).
pub fn verify(
    store: &dyn LogStore,
    snapshots: &SnapshotStore,
    checkpoint_key: Option<&NoteVerifier>,
    progress: Progress<'_>,
) -> Result<AuditReport, StoreError> {
    let mut tree = TreeAudit::new(store)?;
    let records_total = store.next_seq()?;
    let listed = snapshots
        .list()
        .map_err(|error| StoreError::Io(error.to_string()))?;
    let loaded: Vec<_> = listed
        .into_iter()
        .map(|info| {
            let header = snapshots
                .load(&info)
                .and_then(|(header, _)| {
                    check_against_log(&info.file_name, &header, store).map(|()| header)
                })
                .map_err(|error| error.to_string());
            (info, header)
        })
        .collect();
    let mut expected_prev = Digest::GENESIS;
    let mut expected_seq = 0u64;
    let mut first_failure = None;
    store.scan(0, &mut |seq, bytes| {
        let linked = check_link(seq, expected_seq, bytes, Some(&expected_prev));
        let hash = match linked {
            Ok(hash) => hash,
            Err(RecoveryError::Corrupt { seq, detail }) => {
                first_failure = Some(AuditFailure { seq, detail });
                return ControlFlow::Break(());
            }
            Err(other) => {
                first_failure = Some(AuditFailure {
                    seq,
                    detail: other.to_string(),
                });
                return ControlFlow::Break(());
            }
        };
        tree.push(hash);
        expected_prev = hash;
        expected_seq = seq + 1;
        if expected_seq.is_multiple_of(PROGRESS_EVERY_RECORDS) {
            progress(expected_seq, records_total);
        }
        ControlFlow::Continue(())
    })?;
    progress(expected_seq, records_total);
    if first_failure.is_none() && expected_seq != records_total {
        first_failure = Some(AuditFailure {
            seq: expected_seq,
            detail: format!("record is missing (the store reports {records_total} records)"),
        });
    }
    // The fold, up to each snapshot's seq within the verified prefix. The
    // chain pass has just checked these hashes, so the rebuild only checks
    // links (and runs on two threads).
    let verified_end = first_failure
        .as_ref()
        .map_or(expected_seq, |failure| failure.seq);
    let mut folded: BTreeMap<u64, Option<Digest>> = loaded
        .iter()
        .filter_map(|(_, header)| header.as_ref().ok().map(|h| (h.next_seq, None)))
        .collect();
    let mut state = State::default();
    for (&snapshot_seq, slot) in folded.iter_mut() {
        if snapshot_seq > verified_end {
            break;
        }
        match rebuild_after_recovery(store, &mut state, Some(snapshot_seq), 0, &mut |_, _| {}) {
            Ok(_) => *slot = Some(state.state_hash()),
            Err(RebuildError::Unreadable { seq, detail }) => {
                first_failure.get_or_insert(AuditFailure {
                    seq,
                    detail: format!("record cannot be decoded for the state fold: {detail}"),
                });
                break;
            }
            Err(RebuildError::Store(error)) => return Err(error),
        }
    }

    let mut checks = Vec::new();
    for (info, header) in loaded {
        let result =
            header.and_then(
                |header| match (&first_failure, folded.get(&header.next_seq)) {
                    // A snapshot past the first bad record cannot be vouched for.
                    (Some(failure), _) if header.next_seq > failure.seq => Err(format!(
                        "covers seqs up to {}, past the chain failure at seq {}",
                        header.next_seq - 1,
                        failure.seq
                    )),
                    (_, Some(Some(folded))) if *folded == header.state_hash => Ok(()),
                    (_, Some(Some(folded))) => Err(format!(
                        "state hash {} differs from {}, the state the log folds to at seq {}: \
                 the snapshot was not written by this build's reducers; delete it and \
                 run `clawback snapshot create`",
                        header.state_hash.short(),
                        folded.short(),
                        header.next_seq
                    )),
                    _ => Err(format!(
                        "the log could not be folded up to seq {}",
                        header.next_seq
                    )),
                },
            );
        checks.push(SnapshotCheck {
            file: info.file_name,
            next_seq: info.next_seq,
            result,
        });
    }
    Ok(AuditReport {
        records_verified: expected_seq,
        records_total,
        head_hash: expected_prev,
        first_failure,
        snapshots: checks,
        tree: tree.finish(verified_end, checkpoint_key),
    })
}
