//! clawback's ground truth: the event vocabulary, the hash-chained record
//! format, the store boundary, and the log that appends with group commit.
//!
//! This crate knows nothing about the gateway protocol, the network or
//! tokio. Its one clock is injected ([`log::Clock`]), so tests and replays
//! control time.

pub mod archive;
pub mod envelope;
pub mod event;
pub mod log;
pub mod record;
pub mod recovery;
pub mod sealed;
pub mod store;
pub mod subscription;
#[cfg(test)]
mod tests;

pub use envelope::{Actor, Body, Digest, Envelope, NewEvent};
pub use event::Event;
pub use log::{AppendError, Clock, Committed, Log, LogConfig, SystemClock};
pub use recovery::{RecoveryError, RecoveryReport};
pub use subscription::{Subscription, SubscriptionError};
