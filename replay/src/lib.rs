//! Everything that reads the log back: rebuilding projections, snapshots and
//! restore, one session's timeline, audit verification and export.
//!
//! Nothing here writes to the log or calls the outside world: recorded
//! results are what is shown and fed back. This crate may read files
//! (snapshots) and the store, but never a clock for state: times come from
//! envelopes, and the only clock reading (a snapshot's creation time) is
//! passed in by the caller.

pub mod audit;
pub mod audit_tree;
pub mod diff;
pub mod export;
pub mod log_tree;
pub mod merkle;
pub mod proof_bundle;
pub mod rebuild;
pub mod session_state;
pub mod snapshot;
pub mod timeline;

#[cfg(test)]
mod diff_tests;
#[cfg(test)]
mod log_tree_tests;
#[cfg(test)]
mod tests;

pub use rebuild::{
    Progress, Restored, rebuild_after_recovery, rebuild_from, restore, restore_after_recovery,
};
pub use snapshot::{SnapshotError, SnapshotInfo, SnapshotStore};
